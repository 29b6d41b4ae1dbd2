#!/usr/bin/env bash
# The main job: install what is missing, build the LibTorch training driver, and train a small IResNet with
# the full TopoFR objective on the built-in SYNTHETIC face identities (procedural faces, deterministic from the
# seed; no real images are shipped), then print the verification report on held-out identities.
# Real data: build/examples/train/topofr-train --data DIR (one subfolder per identity); see docs/train.md.
# Extra arguments are passed to topofr-train. TOPOFR_BUILD_DIR overrides the build folder (default: build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/install_deps.sh"
build="${TOPOFR_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target topofr-train -j"$(nproc)"
out="$build/train-demo"
"$build/examples/train/topofr-train" --out "$out" --report "$out/report.json" "$@"
echo "report: $out/report.json, plots and log in $out/"
