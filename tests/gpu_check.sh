#!/usr/bin/env bash
# tests/gpu_check.sh — the one command for the GPU check (issue 3, item 8). Run from anywhere:
#   bash tests/gpu_check.sh
# On a machine with a GPU and nvcc it configures a CUDA build in build-gpu/ for the machine's architecture,
# builds the CUDA tests and benchmarks, runs `ctest -L cuda`, every cuda_bench_* with a short minimum time, and
# compute-sanitizer memcheck and racecheck on each CUDA test binary, then writes ONE summary file,
# gpu-check-summary.md, into $OUT when set (the device tool's output folder), else into build-gpu/.
# It never hangs: every step has a timeout, and the whole script keeps within GPU_CHECK_BUDGET seconds
# (default 450, under the 8-minute target on an H100 with 16 cores); steps that no longer fit are skipped
# and reported as such. Without a GPU (CI) it configures and builds for the default architectures and
# reports the run steps as skipped. Exit status: 0 when no step failed.
# On a lent device machine (no packages, no network): run tests/gpu_deps.sh here first and carry .gpu-deps.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
BUILD=${GPU_CHECK_BUILD:-$ROOT/build-gpu}
DEST=${OUT:-$BUILD}
BUDGET=${GPU_CHECK_BUDGET:-450}
JOBS=$(nproc 2>/dev/null || echo 4)
mkdir -p "$BUILD" "$DEST"
LOGS=$DEST/gpu-check-logs
mkdir -p "$LOGS"
SUMMARY=$DEST/gpu-check-summary.md
START=$(date +%s)
RESULTS=()   # "| step | result | seconds |" rows
FAILED=0
BENCH_MD=""

elapsed() { echo $(( $(date +%s) - START )); }

write_summary() {
  {
    echo "# topofr GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
    echo "- GPU: ${GPU_LINE:-none}"
    echo "- CUDA architectures: ${ARCH:-?}; build dir: $BUILD; total $(elapsed) s of a $BUDGET s budget"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${RESULTS[@]}"
    echo
    echo "## Benchmark medians (manual time: cudaEvent around each call)"
    echo
    if [ -n "$BENCH_MD" ]; then
      echo "| benchmark | median | bytes/s | items/s |"
      echo "|---|---|---|---|"
      printf '%s' "$BENCH_MD"
    else
      echo "(none ran)"
    fi
    echo
    echo "Logs: $LOGS"
  } > "$SUMMARY"
}
trap write_summary EXIT

# step NAME LIMIT_S CMD...: runs CMD with a timeout (clipped to what is left of the budget), logs to
# $LOGS/NAME.log, records PASS / FAIL (rc) / TIMEOUT / SKIPPED.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$(( BUDGET - $(elapsed) ))
  if [ "$left" -lt 15 ]; then
    RESULTS+=("| $name | SKIPPED (time budget spent) | 0 |")
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0 rc
  t0=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    RESULTS+=("| $name | PASS | $dt |")
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    RESULTS+=("| $name | TIMEOUT after ${limit} s | $dt |")
    FAILED=1
  else
    RESULTS+=("| $name | FAIL (rc $rc; tail: $(tail -n 3 "$LOGS/$name.log" | tr '\n|' ' /' | cut -c1-200)) | $dt |")
    FAILED=1
  fi
  return $rc
}

skip() { RESULTS+=("| $1 | SKIPPED ($2) | 0 |"); }

# 1. The GPU.
GPU_LINE=""
HAVE_GPU=0
if command -v nvidia-smi > /dev/null 2>&1; then
  GPU_LINE=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
  [ -n "$GPU_LINE" ] && HAVE_GPU=1
fi
# native: the architecture of the GPU present (CMake >= 3.24); without one, the project's default.
if [ "$HAVE_GPU" = 1 ]; then ARCH=${GPU_CHECK_ARCH:-native}; else ARCH=${GPU_CHECK_ARCH:-80-real;90}; fi

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ ! -x "$NVCC" ]; then
  skip configure "no nvcc"
  exit 1
fi

# 2. Configure and build the CUDA tests and benchmarks only. The lent machine has no Debian packages:
#    tests/gpu_deps.sh (run beforehand where they are installed) copies Eigen, Catch2 and Google Benchmark
#    into .gpu-deps/, carried with the call.
DEPS=()
if [ -d "$ROOT/.gpu-deps/usr" ]; then DEPS=("-DCMAKE_PREFIX_PATH=$ROOT/.gpu-deps/usr"); fi
step configure 150 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTOPOFR_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCH" -DTOPOFR_BUILD_EXAMPLES=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON "${DEPS[@]}" || exit 1
TARGETS=()
for f in "$ROOT"/tests/cuda/test_*.cu; do [ -e "$f" ] && TARGETS+=("cuda_$(basename "$f" .cu)"); done
BENCHES=()
for f in "$ROOT"/bench/cuda/bench_*.cu; do [ -e "$f" ] && BENCHES+=("cuda_$(basename "$f" .cu)"); done
# Keep going past a target that fails to compile: the others still run (the failure is in the summary).
if [ -f "$BUILD/build.ninja" ]; then KEEP=(-k 0); else KEEP=(-k); fi
step build 300 cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" "${BENCHES[@]}" -- "${KEEP[@]}"

if [ "$HAVE_GPU" != 1 ]; then
  for s in ctest memcheck racecheck benchmarks; do skip "$s" "no GPU"; done
  exit $FAILED
fi

# 3. The CUDA tests.
step ctest 150 ctest --test-dir "$BUILD" -L cuda --output-on-failure --timeout 120

# 4. Benchmarks, before the sanitizers (the numbers matter most if the budget runs short):
#    medians of 3 short repetitions, JSON for the summary.
for b in "${BENCHES[@]}"; do
  exe=$BUILD/bench/$b
  if [ ! -x "$exe" ]; then skip "$b" "not built"; continue; fi
  step "$b" 120 "$exe" --benchmark_min_time=0.02 --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true --benchmark_out="$LOGS/$b.json" --benchmark_out_format=json
  if [ -s "$LOGS/$b.json" ]; then
    BENCH_MD+=$(python3 - "$LOGS/$b.json" <<'EOF' 2>/dev/null
import json, sys
def si(v, unit):
    for p, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= p: return f"{v / p:.3g} {s}{unit}"
    return f"{v:.3g} {unit}"
for r in json.load(open(sys.argv[1])).get("benchmarks", []):
    if r.get("aggregate_name") != "median": continue
    t = r.get("real_time", 0.0); u = r.get("time_unit", "ns")
    bps = si(r["bytes_per_second"], "B/s") if "bytes_per_second" in r else ""
    ips = si(r["items_per_second"], "/s") if "items_per_second" in r else ""
    print(f"| {r['run_name']} | {t:.4g} {u} | {bps} | {ips} |")
EOF
)
    BENCH_MD+=$'\n'
  fi
done

# 5. compute-sanitizer on each CUDA test binary (TOPOFR_GPU_SANITIZER shrinks the tests' largest cases).
SAN=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$SAN" ] && [ -x "$c" ] && SAN=$c
done
export TOPOFR_GPU_SANITIZER=1
for tool in memcheck racecheck; do
  if [ -z "$SAN" ]; then skip "$tool" "compute-sanitizer not found"; continue; fi
  for t in "${TARGETS[@]}"; do
    exe=$BUILD/tests/$t
    if [ ! -x "$exe" ]; then skip "$tool $t" "not built"; continue; fi
    step "$tool-$t" 60 "$SAN" --tool "$tool" --error-exitcode 3 "$exe"
  done
done
unset TOPOFR_GPU_SANITIZER

exit $FAILED
