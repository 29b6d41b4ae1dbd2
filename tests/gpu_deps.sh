#!/usr/bin/env bash
# tests/gpu_deps.sh [DEST] — copies what a CMake build of the GPU programs needs from this machine's Debian
# packages (run tests/install_deps.sh first) into DEST/usr (default .gpu-deps/): Eigen, Catch2 v2 and Google
# Benchmark (headers, CMake package files, libraries), the stb headers the trainer includes, and CLI11 and
# nlohmann-json (the CLI's and the trainer's command lines and report; header-only), mirroring
# /usr so that their relocatable CMake configs work from CMAKE_PREFIX_PATH=DEST/usr. For the lent GPU machine,
# which has nvcc, CMake and PyTorch but no Debian packages and no network. About 14 MiB (3 MiB as the
# deps.tar.xz that tests/gpu_prepare.sh puts in .gpu-carry/, which gpu_check.sh and gpu_train_check.sh read).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$root/.gpu-deps}
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
     /usr/include/benchmark "$lib/cmake/benchmark" "$lib"/libbenchmark.so* "$lib/libbenchmark_main.a" \
     /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_easy_font.h \
     /usr/include/CLI /usr/share/cmake/CLI11 /usr/include/nlohmann /usr/share/cmake/nlohmann_json
echo "gpu_deps: $(du -sh "$base" | cut -f1) in $base"
