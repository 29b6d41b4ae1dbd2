#!/usr/bin/env bash
# The test command (README, CI): install what is missing, then
#   1. build everything in build/ and run every test with the Python/ripser oracles required; then install the
#      Python package (python/) into a virtual environment in build/python-venv, as a user would (pip, with
#      Debian's torch and numpy seen through --system-site-packages), and run its pytest suite;
#   2. build the CPU tests and the CLI with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/
#      (-march=native, so the AVX-512 paths run; every finding is fatal) and run them;
#   3. build the libFuzzer targets with Clang in build-fuzz/ and run each for TOPOFR_FUZZ_SECONDS (30 s)
#      from the seed corpus in tests/fuzz/corpus/.
# TOPOFR_BUILD_DIR overrides the first build folder (default: build/; the others sit beside it).
# TOPOFR_STEPS picks steps (default "1 2 3"; TOPOFR_SANITIZERS=0 means "1"). docs/testing.md says what each
# step covers and how long it takes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/install_deps.sh"
build="${TOPOFR_BUILD_DIR:-$root/build}"
jobs=$(nproc)
steps="${TOPOFR_STEPS:-1 2 3}"
[ "${TOPOFR_SANITIZERS:-1}" = 0 ] && steps="1"
step() { echo "== run.sh: $* ($(date -u +%T))"; }
want() { [[ " $steps " == *" $1 "* ]]; }

if want 1; then
step "1/3 build and test ($build)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTOPOFR_BUILD_TESTS=ON
cmake --build "$build" -j"$jobs"
TOPOFR_REQUIRE_ORACLES=1 ctest --test-dir "$build" --output-on-failure -j"$jobs"
step "1/3 Python package: pip install ./python, pytest"
/usr/bin/python3 -m venv --system-site-packages "$build/python-venv"
"$build/python-venv/bin/pip" install -q --disable-pip-version-check --config-settings=build-dir="$build/python" "$root/python"
(cd "$build" && TOPOFR_REQUIRE_ORACLES=1 "$build/python-venv/bin/python" -m pytest -q -p no:cacheprovider -rs \
   "$root/python/tests")
fi

asan="$build-asan"
if want 2; then
step "2/3 ASan + UBSan build and test ($asan)"
cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=Release -DTOPOFR_SANITIZE="address;undefined" \
      -DTOPOFR_BUILD_TESTS=ON -DTOPOFR_BUILD_EXAMPLES=ON -DTOPOFR_BUILD_BENCHMARKS=OFF -DTOPOFR_INSTALL=OFF \
      -DTOPOFR_CUDA=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON
cmake --build "$asan" -j"$jobs"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
  TOPOFR_REQUIRE_ORACLES=1 ctest --test-dir "$asan" --output-on-failure -j"$jobs"
fi

fuzz="$build-fuzz"
if want 3; then
step "3/3 libFuzzer build and runs ($fuzz)"
cmake -S "$root" -B "$fuzz" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DTOPOFR_BUILD_FUZZERS=ON \
      -DTOPOFR_FUZZ_SECONDS="${TOPOFR_FUZZ_SECONDS:-30}" -DTOPOFR_BUILD_TESTS=OFF -DTOPOFR_BUILD_EXAMPLES=OFF \
      -DTOPOFR_BUILD_BENCHMARKS=OFF -DTOPOFR_INSTALL=OFF -DTOPOFR_CUDA=OFF
cmake --build "$fuzz" -j"$jobs"
ctest --test-dir "$fuzz" --output-on-failure -L fuzz -j"$jobs"
fi
step "done"
