#!/usr/bin/env bash
# tests/gpu_python_check.sh — the Python package on the lent GPU machine, as a second device call after
# tests/gpu_check.sh (same carried .gpu-carry/, for its Eigen):
#   run(command="bash tests/gpu_python_check.sh", carry=[".gpu-carry"], timeout_s=300)
# That machine's python3 has PyTorch with CUDA, numpy, nanobind, scikit-build-core, CMake, ninja and pytest,
# but no network: the package is built THERE with nvcc for the local GPU (pip --no-build-isolation), then
#   python/tests/test_cuda.py   every block on CUDA tensors vs the CPU (TOPOFR_REQUIRE_GPU=1: no skips)
#   python/tests/test_torch.py  the autograd modules, and the torch.library custom ops / torch.compile path
#                               (torch >= 2.4 there; Debian's 1.13 here never runs it)
# and writes $OUT/gpu-python-summary.md (OUT unset: build-gpu-python/) with the logs beside it.
#   --python PY   the interpreter (default python3)    --carry DIR   (default .gpu-carry)
#   --budget S    total seconds (default 260)           --cpu-only    build without CUDA (a dry run here)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD PY=python3 CARRY=$ROOT/.gpu-carry BUDGET=260 CUDA=ON DEST=${OUT:-$ROOT/build-gpu-python}
while [ $# -gt 0 ]; do
  case $1 in
    --python) PY=$2; shift 2 ;;
    --carry) CARRY=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --cpu-only) CUDA=OFF; shift ;;
    *) echo "gpu_python_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DEST/logs"
START=$(date +%s)
SUMMARY=$DEST/gpu-python-summary.md
ROWS=() NFAIL=0
row() { ROWS+=("| $1 | $2 | $3 | $(printf '%s' "$4" | tr '\n|' ' /' | cut -c1-300) |"); case $2 in FAIL*) NFAIL=$((NFAIL + 1)) ;; esac; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
finish() {
  {
    echo "# topofr Python package on the GPU: $([ "$NFAIL" = 0 ] && echo PASS || echo FAIL)"
    echo
    echo "- date: $(date -u '+%F %T UTC'); GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2> /dev/null | head -n 1)"
    echo "- python: $("$PY" -c 'import sys, torch, numpy; print(sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__)' 2>&1 | tail -n 1)"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown); CUDA half: $CUDA"
    echo
    echo "| step | result | s | detail |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
  } > "$SUMMARY"
  cat "$SUMMARY"
}
trap finish EXIT

deps=$DEST/deps
if [ -f "$CARRY/deps.tar.xz" ]; then
  rm -rf "$deps" && mkdir -p "$deps" && tar -C "$deps" -xJf "$CARRY/deps.tar.xz"
fi
site=$DEST/site
rm -rf "$site"
arch=native
[ "$CUDA" = OFF ] && arch=90
t0=$(date +%s)
timeout -k 5 $(($(left) - 100)) "$PY" -m pip install -q --no-build-isolation --no-deps --no-compile --target "$site" \
  --config-settings=build-dir="$DEST/build" \
  --config-settings=cmake.define.CMAKE_PREFIX_PATH="$deps/usr" \
  --config-settings=cmake.define.TOPOFR_CUDA=$CUDA \
  --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=$arch \
  --config-settings=cmake.define.TOPOFR_NATIVE=ON "$ROOT/python" > "$DEST/logs/build.log" 2>&1
rc=$?
if [ $rc != 0 ]; then
  row build FAIL $(($(date +%s) - t0)) "rc $rc: $(grep -m3 -E 'error|Error' "$DEST/logs/build.log")"
  exit 1
fi
row build PASS $(($(date +%s) - t0)) "pip install --no-build-isolation ./python (TOPOFR_CUDA=$CUDA) into $site"

export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ "$CUDA" = ON ] && export TOPOFR_REQUIRE_GPU=1
for t in test_cuda test_torch; do
  t0=$(date +%s)
  (cd "$DEST" && timeout -k 5 $(($(left) - 10)) "$PY" -m pytest -q -p no:cacheprovider -rs \
     "$ROOT/python/tests/$t.py") > "$DEST/logs/$t.log" 2>&1
  rc=$?
  last=$(grep -E "passed|failed|error|skipped" "$DEST/logs/$t.log" | tail -n 1)
  case $rc in
    0) row "$t" PASS $(($(date +%s) - t0)) "$last" ;;
    124) row "$t" "INCOMPLETE (time limit)" $(($(date +%s) - t0)) "$last" ;;
    *) row "$t" FAIL $(($(date +%s) - t0)) "rc $rc: $last; $(grep -m2 -E '^(FAILED|ERROR)' "$DEST/logs/$t.log")" ;;
  esac
done
[ "$NFAIL" = 0 ]
