#!/usr/bin/env bash
# tests/gpu_check.sh — the GPU check, made to return trustworthy numbers from ONE device call of a few
# minutes. Run on the lent GPU machine after tests/gpu_prepare.sh filled .gpu-carry/ here:
#   run(command="bash tests/gpu_check.sh", carry=[".gpu-carry"], timeout_s=300)
# It only RUNS what was built here (a rebuild there happens only when the carried programs are stale or do
# not load: one parallel Ninja build of gpu_check_targets for the local GPU, limited to 120 s), in this order,
# each step with a timeout inside a total budget (default 220 s):
#   probe       nvidia-smi and gpu_probe: a GPU that nvidia-smi lists but the CUDA runtime cannot use FAILS
#   programs    the carried programs match this tree (manifest source hash) and load (ldd)
#   test:*      every CUDA test with TOPOFR_REQUIRE_GPU=1: a missing device or any failure is FAIL, never a skip
#   bench:*     the GPU benchmarks (medians of 5), every row copied into the summary
#   memcheck:*, racecheck:*   compute-sanitizer on every test / a chosen subset (TOPOFR_GPU_SANITIZER=1
#               shrinks their largest cases); a sanitizer run cut by its time limit is INCOMPLETE, not FAIL
# and writes ONE summary, $OUT/gpu-check-summary.md (OUT unset: build-gpu-check/), with PASS / FAIL /
# INCOMPLETE / SKIPPED per step, then the logs beside it in gpu-check-logs/. Exit status: 0 when nothing FAILED.
#
#   --dry-run       run every step here, without a GPU: the GPU steps must report SKIPPED (no GPU), the
#                   programs must load, and a CUDA test with TOPOFR_REQUIRE_GPU=1 must fail (exit 2), not skip
#   --bin DIR       take the programs from a build folder (DIR/tests, DIR/bench) instead of .gpu-carry
#   --carry DIR     the carried folder (default .gpu-carry)     --budget S   total seconds (default 220)
#   --out DIR       where the summary goes                      --source-hash   print the tree's hash, exit
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD

# The hash of everything the carried programs are built from (no git needed: the GPU machine may have none).
source_hash() {
  find include tests bench cmake CMakeLists.txt -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

DRY=0 BIN="" CARRY=$ROOT/.gpu-carry BUDGET=220 DEST=${OUT:-$ROOT/build-gpu-check}
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1; shift ;;
    --bin) BIN=$2; shift 2 ;;
    --carry) CARRY=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --out) DEST=$2; shift 2 ;;
    --source-hash) source_hash; exit 0 ;;
    *) echo "gpu_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DEST"
LOGS=$DEST/gpu-check-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
SUMMARY=$DEST/gpu-check-summary.md
START=$(date +%s)
ROWS=()       # "| step | result | s | detail |"
BENCH_MD=""   # benchmark median rows
NFAIL=0 NINCOMPLETE=0
GPU_LINE="" PROBE="" ORIGIN="" HAVE_GPU=0

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(elapsed))); }
row() {  # row STEP RESULT SECONDS DETAIL
  ROWS+=("| $1 | $2 | $3 | $(printf '%s' "$4" | tr '\n|' ' /' | cut -c1-240) |")
  case $2 in FAIL*) NFAIL=$((NFAIL + 1)) ;; INCOMPLETE*) NINCOMPLETE=$((NINCOMPLETE + 1)) ;; esac
}

write_summary() {
  local result=PASS
  [ "$NINCOMPLETE" -gt 0 ] && result=INCOMPLETE
  [ "$NFAIL" -gt 0 ] && result=FAIL
  {
    echo "# topofr GPU check$([ "$DRY" = 1 ] && echo ' (dry run, no GPU expected)')"
    echo
    echo "**RESULT: $result** — $NFAIL failed, $NINCOMPLETE incomplete; $(elapsed) s of a $BUDGET s budget"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host: $(uname -n); CPU: $(grep -m1 'model name' /proc/cpuinfo 2> /dev/null | cut -d: -f2- | sed 's/^ //')"
    echo "- GPU (nvidia-smi): ${GPU_LINE:-none}"
    echo "- CUDA runtime (gpu_probe): ${PROBE:-not run}"
    echo "- tree: source hash $(source_hash)$(git -C "$ROOT" rev-parse --short HEAD > /dev/null 2>&1 && echo ", commit $(git -C "$ROOT" rev-parse --short HEAD)")"
    echo "- programs: ${ORIGIN:-none}"
    echo
    echo "| step | result | s | detail |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "## Benchmarks (median of 5; time by cudaEvents around each call)"
    echo
    if [ -n "$BENCH_MD" ]; then
      echo "| benchmark | median | bytes/s | items/s |"
      echo "|---|---|---|---|"
      printf '%s' "$BENCH_MD"
    else
      echo "(none ran)"
    fi
    echo
    echo "Logs: gpu-check-logs/ beside this file (one per step)."
  } > "$SUMMARY"
}
trap write_summary EXIT

# run_step STEP LIMIT CMD...: runs CMD under a timeout clipped to the budget, output to $LOGS/STEP.log.
# Sets RC (124 = timed out, 125 = not run: budget spent) and DT.
run_step() {
  local step=$1 limit=$2
  shift 2
  local l
  l=$(left)
  if [ "$l" -lt 10 ]; then RC=125 DT=0; return; fi
  [ "$limit" -gt "$((l - 5))" ] && limit=$((l - 5))
  local t0
  t0=$(date +%s)
  timeout -k 5 "$limit" "$@" > "$LOGS/${step//[:\/]/_}.log" 2>&1
  RC=$?
  [ "$RC" = 137 ] && RC=124
  DT=$(($(date +%s) - t0))
}
log_of() { echo "$LOGS/${1//[:\/]/_}.log"; }

# ---- probe: what nvidia-smi and the CUDA runtime see ----------------------------------------------------
if command -v nvidia-smi > /dev/null 2>&1; then
  GPU_LINE=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.sm,clocks.max.sm \
    --format=csv,noheader 2> /dev/null | head -n 1)
fi
if [ -n "$BIN" ]; then
  PROGS=$BIN/tests BENCHDIR=$BIN/bench ORIGIN="build folder $BIN"
else
  PROGS=$CARRY/bin BENCHDIR=$CARRY/bin ORIGIN="carried $CARRY ($(grep -m1 '^built:' "$CARRY/manifest.txt" 2> /dev/null | cut -d' ' -f2-))"
  export LD_LIBRARY_PATH=$CARRY/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
probe() {
  if [ ! -x "$PROGS/gpu_probe" ]; then PROBE="gpu_probe missing" RC=127 DT=0; return 1; fi
  run_step probe 30 "$PROGS/gpu_probe"
  PROBE=$(tr '\n' ';' < "$(log_of probe)" | sed 's/;$//')
  return "$RC"
}
probe
if [ "$RC" = 0 ]; then
  HAVE_GPU=1
  row probe PASS "$DT" "$PROBE"
elif [ -n "$GPU_LINE" ]; then
  row probe "FAIL" "$DT" "nvidia-smi lists '$GPU_LINE' but the CUDA runtime cannot use it: $PROBE"
elif [ "$DRY" = 1 ]; then
  row probe "SKIPPED (no GPU: expected in a dry run)" "$DT" "$PROBE"
else
  row probe FAIL "$DT" "no GPU visible to the CUDA runtime: $PROBE"
fi

# ---- programs: carried programs must match this tree and load; else rebuild here (GPU machines only) ----
rebuild() {
  local b=$ROOT/build-gpu deps=()
  if [ -f "$CARRY/deps.tar.xz" ]; then  # Eigen, Catch2, Google Benchmark from the development machine
    mkdir -p "$b/deps" && tar -C "$b/deps" -xJf "$CARRY/deps.tar.xz" && deps=("-DCMAKE_PREFIX_PATH=$b/deps/usr")
  fi
  local gen=()
  command -v ninja > /dev/null && gen=(-G Ninja)
  run_step rebuild 120 bash -c "cmake -S '$ROOT' -B '$b' ${gen[*]} -DCMAKE_BUILD_TYPE=Release -DTOPOFR_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=native -DTOPOFR_BUILD_EXAMPLES=OFF -DTOPOFR_INSTALL=OFF \
    -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON ${deps[*]} && cmake --build '$b' -j $(nproc) --target gpu_check_targets"
  if [ "$RC" = 0 ]; then
    row rebuild PASS "$DT" "built gpu_check_targets for the local GPU in $b"
    PROGS=$b/tests BENCHDIR=$b/bench ORIGIN="rebuilt here in $b (the carried programs could not be used)"
    return 0
  fi
  row rebuild "$([ "$RC" = 124 ] && echo INCOMPLETE || echo FAIL)" "$DT" "$(tail -n 3 "$(log_of rebuild)")"
  return 1
}
why=""
if [ -z "$BIN" ]; then
  want=$(source_hash)
  have=$(awk '/^source_hash:/ {print $2}' "$CARRY/manifest.txt" 2> /dev/null)
  if [ ! -f "$CARRY/manifest.txt" ]; then why="no $CARRY/manifest.txt (run tests/gpu_prepare.sh first)"
  elif [ "$have" != "$want" ]; then why="stale: built from source hash $have, this tree is $want"
  fi
fi
if [ -z "$why" ]; then
  unresolved=$(for p in "$PROGS"/gpu_probe "$PROGS"/cuda_test_* "$BENCHDIR"/cuda_bench_*; do
    [ -x "$p" ] && ldd "$p" 2> /dev/null | grep "not found" | sed "s|^|$(basename "$p"): |"; done)
  [ -n "$unresolved" ] && why="libraries not found: $unresolved"
fi
if [ -z "$why" ]; then
  row programs PASS 0 "$ORIGIN"
elif [ "$HAVE_GPU" = 1 ] || [ -n "$GPU_LINE" ]; then
  row programs "REBUILD" 0 "$why"  # not a failure by itself: the rebuild's row says whether it worked
  if rebuild && [ "$HAVE_GPU" = 0 ]; then
    probe && HAVE_GPU=1 && row probe-rebuilt PASS "$DT" "$PROBE"
  fi
else
  row programs FAIL 0 "$why"
fi

TESTS=()
for p in "$PROGS"/cuda_test_*; do [ -x "$p" ] && TESTS+=("$(basename "$p")"); done
BENCHES=()
for p in "$BENCHDIR"/cuda_bench_*; do [ -x "$p" ] && BENCHES+=("$(basename "$p")"); done
[ ${#TESTS[@]} -gt 0 ] || row tests FAIL 0 "no cuda_test_* programs in $PROGS"

# ---- tests ----------------------------------------------------------------------------------------------
catch_line() { grep -E "^(All tests passed|test cases:)" "$1" | tail -n 1; }
for t in "${TESTS[@]}"; do
  if [ "$HAVE_GPU" = 1 ]; then
    TOPOFR_REQUIRE_GPU=1 run_step "test:$t" 90 "$PROGS/$t"
  else
    run_step "test:$t" 60 "$PROGS/$t"
  fi
  detail=$(catch_line "$(log_of "test:$t")")
  case $RC in
    0) row "test:$t" PASS "$DT" "$detail" ;;
    77) if [ "$HAVE_GPU" = 0 ] && [ "$DRY" = 1 ]; then row "test:$t" "SKIPPED (no GPU: expected in a dry run)" "$DT" ""
        else row "test:$t" FAIL "$DT" "skipped (exit 77) although a GPU is required"; fi ;;
    124) row "test:$t" "INCOMPLETE (time limit)" "$DT" "$detail" ;;
    125) row "test:$t" "INCOMPLETE (budget spent, not run)" 0 "" ;;
    *) if [ "$HAVE_GPU" = 0 ] && [ "$DRY" = 1 ]; then row "test:$t" FAIL "$DT" "rc $RC without a GPU (expected 77): $(tail -n 2 "$(log_of "test:$t")")"
       else row "test:$t" FAIL "$DT" "rc $RC; $detail; $(grep -m1 -E 'FAILED|error' "$(log_of "test:$t")")"; fi ;;
  esac
done
# Without a GPU, a test run that REQUIRES one must fail (exit 2), never read as a skip (77).
if [ "$HAVE_GPU" = 0 ] && [ ${#TESTS[@]} -gt 0 ]; then
  TOPOFR_REQUIRE_GPU=1 run_step require-gpu 30 "$PROGS/${TESTS[0]}"
  if [ "$RC" = 2 ]; then row require-gpu PASS "$DT" "${TESTS[0]} with TOPOFR_REQUIRE_GPU=1 and no device exits 2"
  else row require-gpu FAIL "$DT" "${TESTS[0]} with TOPOFR_REQUIRE_GPU=1 and no device exits $RC (expected 2)"; fi
fi

# ---- benchmarks -----------------------------------------------------------------------------------------
bench_rows() {  # JSON -> markdown rows of the medians
  python3 - "$1" << 'EOF' 2> /dev/null
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
}
for b in "${BENCHES[@]}"; do
  if [ "$HAVE_GPU" = 0 ]; then
    run_step "bench:$b" 30 "$BENCHDIR/$b"
    if [ "$RC" = 0 ]; then row "bench:$b" "SKIPPED (no GPU$([ "$DRY" = 1 ] && echo ': expected in a dry run'))" "$DT" "the program starts"
    else row "bench:$b" FAIL "$DT" "rc $RC: $(tail -n 2 "$(log_of "bench:$b")")"; fi
    continue
  fi
  json=$LOGS/${b}.json
  run_step "bench:$b" 80 "$BENCHDIR/$b" --benchmark_min_time=0.05 --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true "--benchmark_out=$json" --benchmark_out_format=json
  rows=""
  [ -s "$json" ] && rows=$(bench_rows "$json")
  [ -n "$rows" ] && BENCH_MD+="$rows"$'\n'
  n=$(printf '%s' "$rows" | grep -c '^|')
  case $RC in
    0) if grep -q "ERROR OCCURRED" "$(log_of "bench:$b")"; then row "bench:$b" FAIL "$DT" "$n rows; $(grep -m1 'ERROR OCCURRED' "$(log_of "bench:$b")")"
       else row "bench:$b" PASS "$DT" "$n median rows"; fi ;;
    124) row "bench:$b" "INCOMPLETE (time limit)" "$DT" "$n median rows before the limit" ;;
    125) row "bench:$b" "INCOMPLETE (budget spent, not run)" 0 "" ;;
    *) row "bench:$b" FAIL "$DT" "rc $RC: $(tail -n 2 "$(log_of "bench:$b")")" ;;
  esac
done

# ---- compute-sanitizer ----------------------------------------------------------------------------------
SAN=$(command -v compute-sanitizer || true)
for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  [ -z "$SAN" ] && [ -x "$c" ] && SAN=$c
done
RACE_SUBSET="cuda_test_persistence cuda_test_gum cuda_test_isa cuda_test_objective cuda_test_shard"  # the kernels with barriers
sanitize() {  # sanitize TOOL TEST
  local step="$1:$2"
  if [ "$HAVE_GPU" = 0 ]; then row "$step" "SKIPPED (no GPU$([ "$DRY" = 1 ] && echo ': expected in a dry run'))" 0 ""; return; fi
  if [ -z "$SAN" ]; then row "$step" "SKIPPED (compute-sanitizer not found)" 0 ""; return; fi
  TOPOFR_REQUIRE_GPU=1 TOPOFR_GPU_SANITIZER=1 run_step "$step" 60 "$SAN" --tool "$1" --error-exitcode 3 "$PROGS/$2"
  case $RC in
    0) row "$step" PASS "$DT" "$(grep -m1 'ERROR SUMMARY' "$(log_of "$step")")" ;;
    124) row "$step" "INCOMPLETE (time limit: not a finding)" "$DT" "" ;;
    125) row "$step" "INCOMPLETE (budget spent, not run)" 0 "" ;;
    *) row "$step" FAIL "$DT" "rc $RC: $(grep -m1 -E 'ERROR SUMMARY|Invalid|Race|FAILED' "$(log_of "$step")")" ;;
  esac
}
for t in "${TESTS[@]}"; do sanitize memcheck "$t"; done
for t in $RACE_SUBSET; do
  [[ " ${TESTS[*]} " == *" $t "* ]] && sanitize racecheck "$t"
done

[ "$NFAIL" = 0 ]
