#!/usr/bin/env bash
# Compile-fail checks of the memory spaces of views (spaces.cpp): case 0 must compile, cases 1..7 must be
# rejected, each with a diagnostic about the view argument (not some unrelated error).
# Usage: check_spaces.sh <topofr include dir> <Eigen include dir> <tests/emu dir> [c++ compiler]
set -u
inc=$1 eigen=$2 emu=$3 cxx=${4:-g++}
here=$(cd "$(dirname "$0")" && pwd)
compile() {
  "$cxx" -std=c++17 -fsyntax-only -Wno-unknown-pragmas -DSPACE_CASE="$1" -I "$emu" -I "$inc" -isystem "$eigen" \
    "$here/spaces.cpp" 2>&1
}
fails=0
if ! out=$(compile 0); then
  echo "case 0 (device views to CUDA overloads, host views to CPU ones) must compile:"
  echo "$out" | head -30
  fails=$((fails + 1))
fi
for c in 1 2 3 4 5 6 7; do
  if out=$(compile $c); then
    echo "case $c compiled, but it passes a view of the wrong memory space"
    fails=$((fails + 1))
  elif ! echo "$out" | grep -Eq "no matching function|conversion from|could not convert|no viable"; then
    echo "case $c failed for another reason:"
    echo "$out" | head -20
    fails=$((fails + 1))
  else
    echo "case $c rejected, as it must be"
  fi
done
[ "$fails" -eq 0 ] || { echo "FAILED: $fails case(s)"; exit 1; }
