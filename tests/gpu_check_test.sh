#!/usr/bin/env bash
# CTest gpu_check_dry_run: runs `tests/gpu_check.sh --dry-run` on this (GPU-less) machine over the build's
# programs and checks its summary: every step present, GPU steps SKIPPED, the programs load, a test that
# requires a GPU fails (exit 2) instead of skipping, and nothing FAILED. Usage: gpu_check_test.sh BUILD_DIR OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1 out=$2
rm -rf "$out"
rc=0
bash "$root/tests/gpu_check.sh" --dry-run --bin "$build" --out "$out" --budget 300 > "$out.log" 2>&1 || rc=$?
s=$out/gpu-check-summary.md
fail() { echo "gpu_check_test: $*"; echo "--- summary:"; cat "$s" 2> /dev/null; exit 1; }
[ -f "$s" ] || fail "no summary written (rc $rc)"
[ "$rc" = 0 ] || fail "gpu_check.sh --dry-run exited $rc"
grep -q '^\*\*RESULT: PASS\*\*' "$s" || fail "RESULT is not PASS"
! grep -q '| FAIL' "$s" || fail "a step FAILED"
grep -q '^| probe | SKIPPED (no GPU' "$s" || fail "probe row missing or not SKIPPED"
grep -q '^| programs | PASS' "$s" || fail "programs row missing or not PASS"
grep -q '^| require-gpu | PASS' "$s" || fail "require-gpu row missing or not PASS"
for p in "$build"/tests/cuda_test_*; do
  t=$(basename "$p")
  grep -q "^| test:$t | SKIPPED" "$s" || fail "row test:$t missing or not SKIPPED"
  grep -q "^| memcheck:$t | SKIPPED" "$s" || fail "row memcheck:$t missing"
done
for p in "$build"/bench/cuda_bench_*; do
  grep -q "^| bench:$(basename "$p") | SKIPPED" "$s" || fail "row bench:$(basename "$p") missing or not SKIPPED"
done
grep -q '^| racecheck:cuda_test_persistence | SKIPPED' "$s" || fail "racecheck rows missing"
echo "gpu_check_test: summary OK ($(grep -c '^| ' "$s") table rows)"
