#!/usr/bin/env bash
# Compiles the public CPU headers the way an add_subdirectory/FetchContent consumer does (topofr with -I,
# so its warnings are not silenced as a system header's would be; Eigen with -isystem), every block
# instantiated (instantiate.hpp), with -Werror:
#   clang++ -Wall -Wextra -Wconversion -Wsign-conversion, with and without -fopenmp
#   g++     -Wall -Wextra,                                  with and without -fopenmp
# over umbrella.cpp (<topofr/topofr.hpp>) and each.cpp (every public CPU header, npy.hpp included).
# Usage: check_warnings.sh <topofr include dir> <Eigen include dir> [g++]. Exit 77 (skip) without clang++.
set -u
inc=$1 eigen=$2 gxx=${3:-g++}
here=$(cd "$(dirname "$0")" && pwd)
command -v clang++ >/dev/null 2>&1 || { echo "clang++ not found: skipped"; exit 77; }
fails=0
run() {
  echo "+ $*"
  if ! "$@"; then fails=$((fails + 1)); fi
}
for tu in umbrella each; do
  for omp in "" -fopenmp; do
    run clang++ -std=c++17 -Wall -Wextra -Wconversion -Wsign-conversion -Werror -fsyntax-only $omp \
      -isystem "$eigen" -I "$inc" "$here/$tu.cpp"
    if command -v "$gxx" >/dev/null 2>&1; then
      run "$gxx" -std=c++17 -Wall -Wextra -Werror -fsyntax-only $omp -isystem "$eigen" -I "$inc" "$here/$tu.cpp"
    fi
  done
done
if [ "$fails" -ne 0 ]; then
  echo "FAILED: $fails compilation(s) warned"
  exit 1
fi
echo "headers compile warning-free"
