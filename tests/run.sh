#!/usr/bin/env bash
# The test command (README, CI): install what is missing, build everything, run every test with the
# Python/ripser oracles required. TOPOFR_BUILD_DIR overrides the build folder (default: build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/install_deps.sh"
build="${TOPOFR_BUILD_DIR:-$root/build}"
jobs=$(nproc)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$jobs"
TOPOFR_REQUIRE_ORACLES=1 ctest --test-dir "$build" --output-on-failure -j"$jobs"
