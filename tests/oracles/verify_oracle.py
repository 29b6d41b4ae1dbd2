#!/usr/bin/env python3
"""Independent NumPy implementation of the verification protocol of examples/train/verify.hpp
(docs/train.md), used by tests/test_train_support.cpp.

usage: verify_oracle.py DIR
  reads  DIR/emb.npy (n x dim float32), DIR/labels.npy (n int64), DIR/pairs.npy (P x 2 int64, genuine first),
         DIR/genuine.npy (1 int64), DIR/sim.npy (P float64: the similarities the C++ code computed)
  checks the pairs (all genuine pairs in lexicographic order; impostors distinct, i < j, different labels,
         min(genuine, all impostors) of them) and the similarities (own cosine, to 1e-12)
  writes DIR/expected.npy = [accuracy, accuracy_std, threshold, auc, tar@1e-2, tar@1e-3, genuine, impostor]
Threshold search and AUC are brute force (every candidate threshold evaluated on every training pair; AUC
from all genuine x impostor comparisons), not the C++ sweep and rank sums.
"""
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(77)


def main(d):
    emb = np.load(os.path.join(d, "emb.npy")).astype(np.float64)
    labels = np.load(os.path.join(d, "labels.npy")).astype(np.int64)
    pairs = np.load(os.path.join(d, "pairs.npy")).astype(np.int64).reshape(-1, 2)
    g = int(np.load(os.path.join(d, "genuine.npy")).reshape(-1)[0])
    sim = np.load(os.path.join(d, "sim.npy")).astype(np.float64)
    n = len(labels)

    # Pairs.
    iu, ju = np.triu_indices(n, 1)
    same = labels[iu] == labels[ju]
    gen_expected = np.stack([iu[same], ju[same]], 1)  # lexicographic (triu_indices is row-major)
    assert g == len(gen_expected), (g, len(gen_expected))
    assert np.array_equal(pairs[:g], gen_expected), "genuine pairs differ"
    imp = pairs[g:]
    total_imp = int((~same).sum())
    assert len(imp) == min(g, total_imp), (len(imp), g, total_imp)
    assert np.all(imp[:, 0] < imp[:, 1]), "impostor pair not ordered"
    assert np.all(labels[imp[:, 0]] != labels[imp[:, 1]]), "impostor pair with equal labels"
    assert len({(int(a), int(b)) for a, b in imp}) == len(imp), "duplicate impostor pair"

    # Similarities: own cosine; then the C++ values are used so that near-ties cannot flip a comparison.
    a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    own = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.max(np.abs(own - sim)) < 1e-12, np.max(np.abs(own - sim))
    s = sim

    p = len(s)
    y = np.arange(p) < g
    ni = p - g
    k = min(10, g, ni)
    fold = np.where(y, np.arange(p), np.arange(p) - g) % k
    accs, thrs = [], []
    for f in range(k):
        tr, te = fold != f, fold == f
        u = np.unique(s[tr])
        cands = np.concatenate([[u[0] - 1.0], (u[:-1] + u[1:]) / 2, [u[-1] + 1.0]])
        correct = ((s[tr][None, :] > cands[:, None]) == y[tr][None, :]).sum(1)
        t = cands[int(np.argmax(correct))]  # first maximum = smallest threshold on ties
        accs.append(np.mean((s[te] > t) == y[te]))
        thrs.append(t)
    accs = np.array(accs)

    gs, im = s[:g], s[g:]
    auc = np.mean(gs[:, None] > im[None, :]) + 0.5 * np.mean(gs[:, None] == im[None, :])

    def tar(den):
        if ni < den:
            return np.nan
        t = np.sort(im)[::-1][ni // den]
        return np.mean(gs > t)

    out = np.array([accs.mean(), accs.std(), np.mean(thrs), auc, tar(100), tar(1000), g, ni], dtype=np.float64)
    np.save(os.path.join(d, "expected.npy"), out)


if __name__ == "__main__":
    main(sys.argv[1])
