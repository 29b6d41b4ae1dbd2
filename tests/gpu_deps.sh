#!/usr/bin/env bash
# tests/gpu_deps.sh [DEST] — copies what a CMake build of the CUDA tests and benchmarks needs from this
# machine's Debian packages (Eigen, Catch2 v2, Google Benchmark: headers, CMake package files, libraries) into
# DEST/usr (default .gpu-carry/deps), mirroring /usr so that their relocatable CMake configs work from
# CMAKE_PREFIX_PATH=DEST/usr. For the lent GPU machine, which has nvcc, CMake and PyTorch but no Debian packages
# and no network: tests/gpu_check.sh rebuilds from it when the carried programs cannot be used. About 11 MiB.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$root/.gpu-carry/deps}
dest="$base/usr"
rm -rf "$base"
copy() {  # copy PATH (file or folder, links resolved) to the same place under $dest
  for p in "$@"; do
    mkdir -p "$dest/$(dirname "${p#/usr/}")"
    cp -rL "$p" "$dest/${p#/usr/}"
  done
}
lib=/usr/lib/x86_64-linux-gnu
copy /usr/include/eigen3 /usr/share/eigen3/cmake \
     /usr/include/catch2 /usr/lib/cmake/Catch2 /usr/lib/libCatch2WithMain.a \
     /usr/include/benchmark "$lib/cmake/benchmark" "$lib"/libbenchmark.so* "$lib/libbenchmark_main.a"
echo "gpu_deps: $(du -sh "$base" | cut -f1) in $base"
