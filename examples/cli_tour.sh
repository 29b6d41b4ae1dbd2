#!/usr/bin/env bash
# A tour of the `topofr` command-line tool: install what is missing, build the CLI, generate a
# small seeded batch (images, embeddings, cosines, labels) and run every block on it, printing what each
# returns. TOPOFR_BUILD_DIR overrides the build folder (default: build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/tests/install_deps.sh"
build="${TOPOFR_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target topofr_cli -j"$(nproc)"
cli="$build/examples/topofr"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
/usr/bin/python3 "$root/examples/make_demo_data.py" "$data"
set -x
"$cli" pairs --points "$data/images.npy" --out "$data/pairs.npy" --deaths "$data/deaths.npy" --repeat 20
"$cli" isa --x "$data/images.npy" --z "$data/z.npy" --loss-out "$data/isa.npy" --grad-out "$data/gz.npy"
"$cli" isa --x "$data/images.npy" --z "$data/z.npy" --variant sorted_deaths --loss-out "$data/isa2.npy"
"$cli" margin-ce --cos "$data/cos.npy" --labels "$data/labels.npy" --loss-out "$data/loss.npy" \
      --entropy-out "$data/entropy.npy" --pgt-out "$data/pgt.npy" --grad-out "$data/gcos.npy"
"$cli" gum --entropy "$data/entropy.npy" --out "$data/h.npy" --pi-out "$data/pi.npy"
"$cli" arcface --cos "$data/cos.npy" --labels "$data/labels.npy" --logits-out "$data/logits.npy"
