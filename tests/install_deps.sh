#!/usr/bin/env bash
# Installs what topofr's build, tests, benchmarks and oracles need from Debian's packages (root, or sudo).
# Only missing packages are installed; `apt-get update` runs first when anything is missing.
set -euo pipefail
pkgs=(build-essential cmake libeigen3-dev catch2 libbenchmark-dev
      python3 python3-numpy python3-torch python3-torchvision python3-gudhi ripser
      libtorch-dev libstb-dev zlib1g-dev  # zlib: the trainer's checkpoint CRC check (LibTorch needs it too)
      libgloo-dev                      # the distributed trainer: headers of the Gloo process group (libtorch has its code)
      libcli11-dev nlohmann-json3-dev  # the CLI's and the trainer's command lines, the trainer's report
      python3-matplotlib python3-pil   # the trainer's plots; JPEG fixtures in test_train_support
      clang libclang-rt-14-dev         # tests/fuzz: libFuzzer and Clang's sanitizer runtimes
      python3-dev python3-venv python3-pip python3-pytest  # the Python package: its build, venv and tests
      )
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#pkgs[@]} packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
