#!/usr/bin/env python3
"""Times `topofr pairs --repeat` against the released TopoFR code's union-find on the same matrix, and checks
that both give the identical ordered list of pairs.

usage: /usr/bin/python3 bench/compare_reference.py path/to/topofr [n=2048]

The reference is the released code's algorithm (docs/fidelity.md), re-typed once in tests/oracles/reference.py: Kruskal over
np.triu_indices_from (diagonal included), a stable argsort of the weights, a recursive union-find with path
compression merging the younger component into the older, pairs emitted as (min, max).
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracles"))
from reference import kruskal_pairs as reference_pairs  # noqa: E402  (the shared transcription)


def main():
    cli = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
    rng = np.random.default_rng(2048)
    x = rng.standard_normal((n, 64))
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/d.npy", d)
        t0 = time.perf_counter()
        ref = reference_pairs(d)
        t_ref = time.perf_counter() - t0
        res = subprocess.run([cli, "pairs", "--dist", f"{tmp}/d.npy", "--out", f"{tmp}/p.npy", "--repeat", "21"],
                             capture_output=True, text=True, check=True)
        median_ms = float(res.stdout.split("median_ms=")[1].split()[0])
        ours = np.load(f"{tmp}/p.npy")
    same = ours.shape == ref.shape and bool((ours == ref).all())
    print(f"n={n}: released union-find {t_ref * 1e3:.1f} ms, topofr pairs median {median_ms:.3f} ms, "
          f"ratio {t_ref * 1e3 / median_ms:.0f}x, identical pairs: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
