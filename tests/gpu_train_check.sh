#!/usr/bin/env bash
# tests/gpu_train_check.sh — the trainer's GPU check: does topofr-train's CUDA path (LibTorch's stream and caching
# allocator -> the library's CUDA blocks) agree with its CPU path, and does it train? Run from anywhere:
#   bash tests/gpu_train_check.sh             # on a GPU machine with a CUDA PyTorch/LibTorch and nvcc
#   bash tests/gpu_train_check.sh --dry-run   # anywhere: configure + build what can be built, GPU steps SKIPPED
# Steps: configure (Ninja, Release, the GPU's own architecture), build ONLY topofr-train and
# topofr-train-gpu-check (examples/train/gpu_parity.cpp: CPU<->CUDA parity of the losses and gradients, stream
# and error handling, 50 training steps on CUDA), run the check, then a short `topofr-train --device cuda` run.
# Writes gpu-train-check.md (PASS / FAIL / INCOMPLETE / SKIPPED per step, seconds, the check's own table) into
# $OUT when set (the device tool's output folder), else into the build folder; logs next to it.
# Never hangs: every step has a timeout and the whole script keeps within GPU_TRAIN_BUDGET seconds (default 220,
# for a 4-minute call); a step that times out or no longer fits is INCOMPLETE. Exit status 0 when every step
# that ran passed.
# LibTorch: TOPOFR_TORCH_PREFIX (a folder holding Torch/TorchConfig.cmake, e.g. torch/share/cmake), else
# `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'`, else CMake's default search (Debian's).
# The lent GPU machines have no Debian packages: run `bash tests/gpu_prepare.sh` here first (its
# .gpu-carry/deps.tar.xz holds Eigen and the stb headers the trainer needs; `bash tests/gpu_deps.sh` alone fills
# .gpu-deps/ instead), e.g. with the device tool, after the main check:
#   run(command="bash tests/gpu_train_check.sh", carry=[".gpu-carry"], timeout_s=240)
# Other knobs: GPU_TRAIN_BUILD (build folder, default build-gpu-train), GPU_TRAIN_JOBS (default nproc),
# GPU_TRAIN_CMAKE_ARGS (extra configure arguments, word-split; e.g. -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined
# to link against a wheel's libraries without their CUDA dependencies), GPU_TRAIN_ARCH (CUDA architectures).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
DRY=0
for a in "$@"; do
  case $a in
    --dry-run) DRY=1 ;;
    *) echo "usage: bash tests/gpu_train_check.sh [--dry-run]" >&2; exit 2 ;;
  esac
done
BUILD=${GPU_TRAIN_BUILD:-$ROOT/build-gpu-train}
DEST=${OUT:-$BUILD}
if [ "$DRY" = 1 ]; then BUDGET=${GPU_TRAIN_BUDGET:-1200}; else BUDGET=${GPU_TRAIN_BUDGET:-220}; fi
JOBS=${GPU_TRAIN_JOBS:-$(nproc 2>/dev/null || echo 4)}
mkdir -p "$BUILD" "$DEST"
LOGS=$DEST/gpu-train-check-logs
mkdir -p "$LOGS"
REPORT=$DEST/gpu-train-check.md
START=$(date +%s)
RESULTS=()
BAD=0
CURRENT=""
CHECK_TABLE=""
SMOKE_LINES=""
read -r -a EXTRA <<< "${GPU_TRAIN_CMAKE_ARGS:-}"

elapsed() { echo $(( $(date +%s) - START )); }

write_report() {
  {
    echo "# topofr-train GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); mode: $([ "$DRY" = 1 ] && echo 'dry run (no GPU steps)' || echo GPU)"
    echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
    echo "- GPU: ${GPU_LINE:-none}"
    echo "- nvcc: ${NVCC_LINE:-none}; CUDA architectures: ${ARCH:-?}"
    echo "- LibTorch: ${TORCH_LINE:-?}"
    echo "- build: $BUILD, $JOBS jobs; total $(elapsed) s of a $BUDGET s budget"
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    printf '%s\n' "${RESULTS[@]}"
    [ -n "$CURRENT" ] && echo "| $CURRENT | INCOMPLETE (interrupted) | |"
    echo
    echo "## topofr-train-gpu-check"
    echo
    if [ -n "$CHECK_TABLE" ]; then printf '%s\n' "$CHECK_TABLE"; else echo "(did not run)"; fi
    if [ -n "$SMOKE_LINES" ]; then
      echo
      echo "## topofr-train --device cuda (smoke run)"
      echo
      printf '%s\n' "$SMOKE_LINES"
    fi
    echo
    echo "Logs: $LOGS"
  } > "$REPORT"
}
trap write_report EXIT
trap 'exit 3' TERM INT   # the EXIT trap still writes the report, with the running step INCOMPLETE

# step NAME LIMIT_S CMD...: CMD with a timeout clipped to the budget left, logged to $LOGS/NAME.log.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$(( BUDGET - $(elapsed) ))
  if [ "$left" -lt 10 ]; then
    RESULTS+=("| $name | INCOMPLETE (time budget spent) | 0 |")
    BAD=1
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0 rc dt
  t0=$(date +%s)
  CURRENT=$name
  write_report
  timeout -k 5 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  rc=$?
  CURRENT=""
  dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    RESULTS+=("| $name | PASS | $dt |")
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    RESULTS+=("| $name | INCOMPLETE (timed out after $limit s) | $dt |")
    BAD=1
  else
    RESULTS+=("| $name | FAIL (rc $rc; $(grep -v '^\s*$' "$LOGS/$name.log" | tail -n 3 | tr '\n|' ' /' | cut -c1-300)) | $dt |")
    BAD=1
  fi
  write_report
  return $rc
}
skip() { RESULTS+=("| $1 | SKIPPED ($2) | 0 |"); }
finish() { write_report; exit $BAD; }

# 1. What is here: a GPU, nvcc, a LibTorch.
GPU_LINE=""
HAVE_GPU=0
if [ "$DRY" = 0 ] && command -v nvidia-smi > /dev/null 2>&1; then
  GPU_LINE=$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -n 1)
  [ -n "$GPU_LINE" ] && HAVE_GPU=1
fi
if [ "$HAVE_GPU" = 1 ]; then ARCH=${GPU_TRAIN_ARCH:-native}; else ARCH=${GPU_TRAIN_ARCH:-80-real;90}; fi
NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$NVCC" ] && NVCC_LINE=$("$NVCC" --version | tail -n 2 | head -n 1)
TORCH_PREFIX=${TOPOFR_TORCH_PREFIX:-}
if [ -z "$TORCH_PREFIX" ]; then
  TORCH_PY=$(timeout 90 python3 -c 'import torch; print(torch.utils.cmake_prefix_path); print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null)
  if [ -n "$TORCH_PY" ]; then
    TORCH_PREFIX=$(printf '%s\n' "$TORCH_PY" | sed -n 1p)
    TORCH_LINE="python3's torch $(printf '%s\n' "$TORCH_PY" | sed -n 2p), $TORCH_PREFIX"
  fi
fi
[ -z "${TORCH_LINE:-}" ] && TORCH_LINE=${TORCH_PREFIX:-"CMake's default search"}
PREFIX=$TORCH_PREFIX
if [ -d "$ROOT/.gpu-deps/usr" ]; then
  PREFIX="$PREFIX${PREFIX:+;}$ROOT/.gpu-deps/usr"
elif [ -f "$ROOT/.gpu-carry/deps.tar.xz" ]; then  # the one carry of tests/gpu_prepare.sh
  mkdir -p "$BUILD/deps" && tar -C "$BUILD/deps" -xJf "$ROOT/.gpu-carry/deps.tar.xz" &&
    PREFIX="$PREFIX${PREFIX:+;}$BUILD/deps/usr"
fi

if [ ! -x "$NVCC" ]; then
  skip configure "no nvcc"
  BAD=1
  finish
fi
if [ "$DRY" = 0 ] && [ "$HAVE_GPU" = 0 ]; then
  skip gpu "nvidia-smi found no GPU; use --dry-run to build only"
  BAD=1
fi

# 2. Configure and build only the trainer and the check program.
GEN=()
command -v ninja > /dev/null 2>&1 && GEN=(-G Ninja)
step configure 90 cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DTOPOFR_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" "-DCMAKE_CUDA_ARCHITECTURES=$ARCH" "-DCMAKE_PREFIX_PATH=$PREFIX" \
  -DTOPOFR_BUILD_TESTS=OFF -DTOPOFR_BUILD_BENCHMARKS=OFF -DTOPOFR_INSTALL=OFF "${EXTRA[@]}" || finish
grep -E 'topofr: topofr-train|LibTorch not found|stb headers' "$LOGS/configure.log" | sed 's/^-- //' > "$LOGS/configure.summary"
TORCH_LINE="$TORCH_LINE; $(head -n 1 "$LOGS/configure.summary")"
HAVE_TRAIN=0; HAVE_CHECK=0
[ -d "$BUILD/examples/train/CMakeFiles/topofr-train.dir" ] && HAVE_TRAIN=1
[ -d "$BUILD/examples/train/CMakeFiles/topofr-train-gpu-check.dir" ] && HAVE_CHECK=1
if [ "$HAVE_TRAIN" = 0 ]; then
  RESULTS+=("| targets | FAIL (topofr-train not configured: $(tr '\n|' ' /' < "$LOGS/configure.summary")) | 0 |")
  BAD=1
  finish
fi
TARGETS=(topofr-train)
if [ "$HAVE_CHECK" = 1 ]; then TARGETS+=(topofr-train-gpu-check); fi
# 170 s on the GPU machine's 16 cores (two LibTorch translation units and one nvcc one, in parallel); a dry run
# on a small shared machine gets what is left of its budget.
if [ "$DRY" = 1 ]; then BUILD_LIMIT=$BUDGET; else BUILD_LIMIT=170; fi
step build "$BUILD_LIMIT" cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"
BUILD_RC=$?
if [ "$HAVE_CHECK" = 0 ]; then
  skip "build topofr-train-gpu-check" "not configured: needs a CUDA LibTorch (torch_cuda) and nvcc"
fi

# 3. The check program, then the real trainer on CUDA.
if [ "$DRY" = 1 ]; then
  skip check "dry run"
  skip smoke "dry run"
  finish
fi
if [ "$HAVE_GPU" = 0 ] || [ "$HAVE_CHECK" = 0 ] || [ "$BUILD_RC" != 0 ]; then
  why="no GPU"; [ "$HAVE_CHECK" = 0 ] && why="no CUDA LibTorch"; [ "$BUILD_RC" != 0 ] && why="build failed"
  skip check "$why"; skip smoke "$why"
  BAD=1
  finish
fi
step check 120 "$BUILD/examples/train/topofr-train-gpu-check" --steps 50
CHECK_TABLE=$(grep -E '^\||^RESULT' "$LOGS/check.log")
step smoke 75 "$BUILD/examples/train/topofr-train" --device cuda --identities 8 --per-identity 8 --image-size 32 \
  --batch 16 --steps 30 --checkpoint-every 15 --no-progress --out "$BUILD/smoke"
if [ -f "$BUILD/smoke/report.json" ]; then
  SMOKE_LINES=$(python3 - "$BUILD/smoke/report.json" "$BUILD/smoke/log.csv" <<'EOF' 2>/dev/null
import csv, json, sys
r = json.load(open(sys.argv[1]))
t, v, v0 = r["training"], r["verification"], r["verification_untrained"]
rows = list(csv.DictReader(open(sys.argv[2])))
print(f"- {t['steps']} steps, loss {float(rows[0]['loss']):.4g} (step 1) -> {t['final_loss']:.4g}; "
      f"median step {t['step_ms_median']:.1f} ms, topology {t['topology_ms_median']:.1f} ms")
print(f"- held-out verification accuracy {v0['accuracy']:.3f} (untrained) -> {v['accuracy']:.3f}")
EOF
)
fi
finish
