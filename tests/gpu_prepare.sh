#!/usr/bin/env bash
# tests/gpu_prepare.sh — run HERE (the development machine: nvcc, Debian packages, no GPU) before a GPU call.
# Builds every program the GPU check runs (CUDA tests, GPU benchmarks, gpu_probe) and fills the git-ignored
# folder .gpu-carry/ that travels to the lent GPU machine, where `bash tests/gpu_check.sh` only runs them:
#   .gpu-carry/bin/       gpu_probe, cuda_test_*, cuda_bench_* (sm_90 code + PTX: the lent H100/H200)
#   .gpu-carry/lib/       shared libraries they need that the GPU image may lack (Google Benchmark)
#   .gpu-carry/deps.tar.xz   Eigen, Catch2, Google Benchmark, stb: for a rebuild there and for the trainer check
#   .gpu-carry/manifest.txt  commit, source hash, flags, ldd, sizes: gpu_check.sh refuses stale programs
# The other machine's CPU is not this one's: host code is built for x86-64-v3 (AVX2 + FMA at most), never
# -march=native; the CUDA runtime is linked statically, so the programs need glibc >= 2.34, libstdc++ from
# GCC >= 12 and the NVIDIA driver there (Ubuntu 22.04 or newer). (A static libstdc++ would raise the glibc need
# to 2.36: arc4random, _dl_find_object.) Then, with the device tool:
#   run(command="bash tests/gpu_check.sh", carry=[".gpu-carry"], timeout_s=300)
# Options: --build DIR (default build-carry/), --arch 90 (CMAKE_CUDA_ARCHITECTURES; "80-real;90" also
# covers A100s, at twice the size), --no-deps
# (skip install_deps.sh), --jobs N.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-carry
arch="90"
jobs=$(nproc)
install=1
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-deps) install=0; shift ;;
    *) echo "gpu_prepare: unknown argument $1" >&2; exit 2 ;;
  esac
done
carry=$root/.gpu-carry
max_mib=48  # the device tool carries 64 MiB with the working tree: leave room for the tree

[ "$install" = 1 ] && bash "$root/tests/install_deps.sh"
command -v nvcc > /dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc > /dev/null || { echo "gpu_prepare: nvcc not found" >&2; exit 1; }
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}" "$build/CMakeCache.txt" && rm -rf "$build"

t0=$(date +%s)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DTOPOFR_CUDA=ON \
  "-DCMAKE_CUDA_ARCHITECTURES=$arch" -DTOPOFR_NATIVE=OFF -DTOPOFR_CUDA_RUNTIME=Static \
  "-DCMAKE_CXX_FLAGS=-march=x86-64-v3" "-DCMAKE_CUDA_FLAGS=-Xcompiler=-march=x86-64-v3" -DCMAKE_EXE_LINKER_FLAGS= \
  -DTOPOFR_BUILD_EXAMPLES=OFF -DTOPOFR_INSTALL=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON > "$root/.gpu-prepare-configure.log" && mv "$root/.gpu-prepare-configure.log" "$build/configure.log"
cmake --build "$build" -j "$jobs" --target gpu_check_targets
t1=$(date +%s)

rm -rf "$carry"
mkdir -p "$carry/bin" "$carry/lib"
progs=("$build/tests/gpu_probe" "$build"/tests/cuda_test_* "$build"/bench/cuda_bench_*)
cp "${progs[@]}" "$carry/bin/"
strip --strip-unneeded "$carry"/bin/* 2> /dev/null || true

# Libraries outside the base system (glibc, libm, ...) go to lib/; the GPU image has none of Debian's.
base='^(linux-vdso|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|ld-linux|libgcc_s\.so|libstdc\+\+\.so|libgomp\.so)'
for p in "$carry"/bin/*; do
  ldd "$p" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    [[ $name =~ $base ]] || cp -Ln "$path" "$carry/lib/$name"
  done
done
# libgomp (OpenMP for the CPU reference paths) is part of GCC, not always of a CUDA image.
gomp=$(g++ -print-file-name=libgomp.so.1)
[ -f "$gomp" ] && cp -L "$gomp" "$carry/lib/"
bash "$root/tests/gpu_deps.sh" "$build/gpu-deps" > /dev/null
tar -C "$build/gpu-deps" -cJf "$carry/deps.tar.xz" usr  # ~14 MiB of headers packs to ~3 MiB

glibc=$(for p in "$carry"/bin/*; do objdump -T "$p" 2> /dev/null; done | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)
{
  echo "commit: $(git -C "$root" rev-parse HEAD 2> /dev/null || echo unknown)"
  echo "dirty: $(git -C "$root" status --porcelain -- include tests bench cmake CMakeLists.txt 2> /dev/null | wc -l) changed file(s) under include tests bench cmake"
  echo "source_hash: $(bash "$root/tests/gpu_check.sh" --source-hash)"
  echo "built: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n), $((t1 - t0)) s"
  echo "cuda_architectures: $arch"
  echo "nvcc: $(nvcc --version | tail -n 1)"
  echo "host compiler: $(g++ --version | head -n 1); -march=x86-64-v3; static cudart"
  echo "needs libstdc++: $(for p in "$carry"/bin/*; do objdump -T "$p" 2> /dev/null; done | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -n 1)"
  echo "needs: $glibc, the NVIDIA driver (libcuda.so.1)"
  echo "size: $(du -sh "$carry" | cut -f1)"
  echo "programs: $(cd "$carry/bin" && echo *)"
  echo "ldd:"
  for p in "$carry"/bin/*; do
    echo "  $(basename "$p"): $(LD_LIBRARY_PATH=$carry/lib ldd "$p" | awk '{print $1}' | tr '\n' ' ')"
  done
} > "$carry/manifest.txt"

missing=$(for p in "$carry"/bin/*; do LD_LIBRARY_PATH=$carry/lib ldd "$p" | grep "not found" || true; done)
[ -z "$missing" ] || { echo "gpu_prepare: unresolved libraries: $missing" >&2; exit 1; }
size=$(du -sm "$carry" | cut -f1)
[ "$size" -le "$max_mib" ] || { echo "gpu_prepare: .gpu-carry is $size MiB (> $max_mib MiB)" >&2; exit 1; }
cat "$carry/manifest.txt" | head -n 10
echo "gpu_prepare: $size MiB in $carry; now: run(command=\"bash tests/gpu_check.sh\", carry=[\".gpu-carry\"], timeout_s=300); optional second call: bash tests/gpu_train_check.sh"
