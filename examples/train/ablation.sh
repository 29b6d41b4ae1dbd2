#!/usr/bin/env bash
# The paper's ablation (docs/results.md): the four --loss settings x three seeds on the synthetic default and,
# when given, an image folder (e.g. the ORL faces). Prints a Markdown table (mean ± std over seeds).
# usage: bash examples/train/ablation.sh BUILD_DIR OUT_DIR [IMAGE_FOLDER]
set -euo pipefail
build=$1 out=$2 data=${3:-}
train="$build/examples/train/topofr-train"
mkdir -p "$out"
sets=(synthetic)
[ -n "$data" ] && sets+=(folder)
for set in "${sets[@]}"; do
  for loss in arcface arcface+isa arcface+sds topofr; do
    for seed in 1 2 3; do
      dir="$out/$set-$loss-$seed"
      [ -f "$dir/report.json" ] && continue
      args=(--loss "$loss" --seed "$seed" --out "$dir" --no-progress)
      [ "$set" = folder ] && args+=(--data "$data")
      echo "== $set $loss seed $seed" >&2
      "$train" "${args[@]}" > "$dir.log" 2>&1 || { echo "failed: see $dir.log" >&2; exit 1; }
    done
  done
done
/usr/bin/python3 - "$out" "${sets[@]}" <<'PY'
import json, statistics, sys
out, sets = sys.argv[1], sys.argv[2:]
def stat(v):
    return f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}"
for s in sets:
    print(f"\n| {s} | accuracy | AUC | TAR@FAR=1e-2 | discrepancy | untrained accuracy | wall s |")
    print("|---|---|---|---|---|---|---|")
    for loss in ["arcface", "arcface+isa", "arcface+sds", "topofr"]:
        r = [json.load(open(f"{out}/{s}-{loss}-{k}/report.json")) for k in (1, 2, 3)]
        acc = [x["verification"]["accuracy"] for x in r]
        auc = [x["verification"]["auc"] for x in r]
        tar = [x["verification"].get("tar_at_far_1e-2") for x in r]
        tar = stat(tar) if all(t is not None for t in tar) else "n/a"
        dis = [x["topology"]["discrepancy_mean"] for x in r]
        un = [x["verification_untrained"]["accuracy"] for x in r]
        wall = [x.get("wall_time_s", float("nan")) for x in r]
        print(f"| {loss} | {stat(acc)} | {stat(auc)} | {tar} | {stat(dis)} | {stat(un)} | {statistics.mean(wall):.0f} |")
PY
