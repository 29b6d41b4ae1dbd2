#!/usr/bin/python3
"""topofr-train's figures, drawn with matplotlib (Agg) from the trainer's outputs.

    plot.py [--missing-ok] LOG_CSV TOPOLOGY_JSON OUT_DIR

LOG_CSV is the trainer's log.csv (columns step, loss, loss_cls, loss_isa, ce_unweighted, ...);
TOPOLOGY_JSON its topology.json ({"loss", "alpha", "use_isa", "deaths": {"input X", "latent, untrained",
"latent, trained"}, "discrepancy_trained", "discrepancy_untrained"}). Writes into OUT_DIR:

  loss.png                    loss curves: loss, L_cls (weighted), ArcFace CE (unweighted), alpha * L_sa
  persistence.png             0-dim persistence deaths of one evaluation batch in filtration order, each
                              space's deaths divided by its largest (the scales differ by orders of magnitude)
  discrepancy.png             histogram (20 bins) of the per-batch ISA value, trained network
  discrepancy_untrained.png   the same, untrained network

Exit status: 0 written; 2 bad input (one line naming the file); 3 matplotlib missing (with --missing-ok
nothing is printed: the trainer says it in one line).
"""
import csv
import json
import math
import os
import sys

FIGSIZE = (8.0, 5.6)  # 800 x 560 pixels at 100 dpi
DPI = 100
BINS = 20


def finite(values):
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def histogram_figure(plt, path, title, xlabel, values):
    """Histogram robust to degenerate data: no values, non-finite values, all equal, or a spread far below
    the values' magnitude (1.3253e13 +- 0.004: the bins are computed on offsets from the smallest value,
    which is named in the axis label, so that no bin edge or tick is below the values' precision)."""
    vals = finite(values)
    dropped = len(values) - len(vals)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    if dropped:
        ax.text(0.99, 0.98, f"{dropped} non-finite value{'s' if dropped > 1 else ''} not shown", ha="right",
                va="top", transform=ax.transAxes, fontsize=9)
    if not vals:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    else:
        lo, hi = min(vals), max(vals)
        ref = 0.0
        if lo != 0 and (hi - lo) < 1e-6 * max(abs(lo), abs(hi)):
            ref = lo  # plot offsets: exact (Sterbenz) for values this close
            xlabel = f"{xlabel} \u2212 {ref:.10g}"
        offs = [v - ref for v in vals]
        olo, ohi = min(offs), max(offs)
        if ohi - olo <= 0 or not math.isfinite(ohi - olo):
            half = 0.5 if olo == 0 else 0.5 * abs(olo)
            if not math.isfinite(half) or half == 0:
                half = 0.5
            olo, ohi = olo - half, ohi + half
        width = (ohi - olo) / BINS
        edges = [olo + k * width for k in range(BINS)] + [ohi]
        counts = [0] * BINS
        for v in offs:
            k = int((v - olo) / width) if width > 0 else 0
            counts[min(max(k, 0), BINS - 1)] += 1
        ax.bar(edges[:-1], counts, width=[edges[k + 1] - edges[k] for k in range(BINS)], align="edge",
               color="tab:blue", edgecolor="white", linewidth=0.5)
        ax.set_xlim(edges[0], edges[-1])
        ax.ticklabel_format(axis="x", useOffset=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def lines_figure(plt, path, title, xlabel, ylabel, series):
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    any_named = False
    for name, xs, ys in series:
        pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, linewidth=2)
        any_named = any_named or bool(name)
    if any_named:
        ax.legend()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def read_log(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            try:
                rows.append({k: float(r[k]) for k in ("step", "loss", "loss_cls", "loss_isa", "ce_unweighted")})
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: line {len(rows) + 2}: bad row ({e})") from None
    return rows


def main(argv):
    missing_ok = "--missing-ok" in argv
    args = [a for a in argv if a != "--missing-ok"]
    if len(args) != 3:
        print("usage: plot.py [--missing-ok] LOG_CSV TOPOLOGY_JSON OUT_DIR", file=sys.stderr)
        return 2
    log_path, topo_path, out = args
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        if not missing_ok:
            print(f"plot.py: matplotlib is not available ({e}); Debian: apt-get install python3-matplotlib",
                  file=sys.stderr)
        return 3
    try:
        rows = read_log(log_path)
        with open(topo_path, encoding="utf-8") as f:
            topo = json.load(f)
        alpha = float(topo.get("alpha", 0))
        use_isa = bool(topo.get("use_isa", False))
        deaths = topo.get("deaths", {})
        disc_t = topo.get("discrepancy_trained", [])
        disc_u = topo.get("discrepancy_untrained", [])
    except (OSError, ValueError) as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 2

    steps = [r["step"] for r in rows]
    curves = [("loss", steps, [r["loss"] for r in rows]),
              ("L_cls (weighted)", steps, [r["loss_cls"] for r in rows]),
              ("ArcFace CE (unweighted)", steps, [r["ce_unweighted"] for r in rows])]
    if use_isa:
        curves.append(("alpha * L_sa", steps, [alpha * r["loss_isa"] for r in rows]))
    lines_figure(plt, os.path.join(out, "loss.png"), f"training loss ({topo.get('loss', '')})", "step", "loss",
                 curves)

    def rank(name):
        d = finite(deaths.get(name, []))
        top = max(max(d), 1e-300) if d else 1.0
        return name, [float(k + 1) for k in range(len(d))], [v / top for v in d]

    lines_figure(plt, os.path.join(out, "persistence.png"), "persistence deaths, one eval batch",
                 "pair (filtration order)", "death / largest death",
                 [rank("input X"), rank("latent, untrained"), rank("latent, trained")])
    histogram_figure(plt, os.path.join(out, "discrepancy.png"),
                     "topological discrepancy (ISA) per evaluation batch, trained", "ISA value", disc_t)
    histogram_figure(plt, os.path.join(out, "discrepancy_untrained.png"),
                     "topological discrepancy (ISA) per evaluation batch, untrained", "ISA value", disc_u)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
