#!/usr/bin/env bash
# Prepares .gpu-deps/ (git-ignored) for tests/gpu_check.sh and tests/gpu_train_check.sh on a lent GPU machine,
# which has nvcc, CMake and PyTorch but no Debian packages and no network: copies the headers, CMake package files
# and libraries of Eigen, Catch2 v2 and Google Benchmark, and the three stb headers the trainer includes, from this
# machine (run tests/install_deps.sh first), mirroring /usr so that their relocatable CMake configs work from
# CMAKE_PREFIX_PATH=.gpu-deps/usr (the trainer finds stb/stb_image.h under it too). About 14 MiB.
# Then, with the device tool: run(command="bash tests/gpu_check.sh", carry=[".gpu-deps"], timeout_s=540), or
# run(command="bash tests/gpu_train_check.sh", carry=[".gpu-deps"], timeout_s=240).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.gpu-deps/usr"
rm -rf "$root/.gpu-deps"
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
     /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h /usr/include/stb/stb_easy_font.h
echo "gpu_deps: $(du -sh "$root/.gpu-deps" | cut -f1) in $root/.gpu-deps"
