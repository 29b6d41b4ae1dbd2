#!/usr/bin/env python3
"""The two reference algorithms the oracles share, written once (imported by gum_oracle.py, isa_oracle.py,
objective_oracle.py, tests/test_cli.py and bench/compare_reference.py):

  kruskal_pairs(d)    the released TopoFR code's 0-dim persistence (PersistentHomologyCalculation), re-typed:
                      Kruskal over np.triu_indices_from (diagonal included), a stable argsort of the weights,
                      a recursive union-find with path compression merging the younger component into the
                      older; pairs emitted as (min, max) in that order, with their weights (the deaths).
  gauss_unif(e, ...)  the released GUM.py EM (docs/fidelity.md), elementwise and unfused (no sklearn, no
                      scipy), so that it shares no arithmetic shortcuts with the C++ kernels.

NumPy only. (The C++ tests' own transcription of the same Kruskal is topofr::test::reference_pairs in
tests/support.hpp.)
"""
import sys

import numpy as np

sys.setrecursionlimit(max(sys.getrecursionlimit(), 100000))


class UnionFind:
    def __init__(self, n):
        self.parent = np.arange(n, dtype=int)

    def find(self, u):
        if self.parent[u] == u:
            return u
        self.parent[u] = self.find(self.parent[u])
        return self.parent[u]

    def merge(self, u, v):
        if u != v:
            self.parent[self.find(u)] = self.find(v)


def kruskal_pairs(d, with_deaths=False):
    """The n-1 persistence pairs of the n x n matrix d (int64, (n-1) x 2, u < v), and their deaths
    (float64) when with_deaths. Only the upper triangle is read."""
    d = np.asarray(d)
    n = d.shape[0]
    uf = UnionFind(n)
    iu = np.triu_indices_from(d)
    w = d[iu]
    order = np.argsort(w, kind="stable")
    pairs, deaths = [], []
    for k in order:
        u, v = int(iu[0][k]), int(iu[1][k])
        younger, older = uf.find(u), uf.find(v)
        if younger == older:
            continue
        if younger > older:
            uf.merge(v, u)
        else:
            uf.merge(u, v)
        pairs.append((min(u, v), max(u, v)))
        deaths.append(float(w[k]))
        if len(pairs) == n - 1:
            break
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return (pairs, np.array(deaths, dtype=np.float64)) if with_deaths else pairs


def scale_like_sklearn(x):
    """sklearn.preprocessing.scale of one column, step for step."""
    std = np.std(x)  # population std (ddof 0), of the data as given
    if std < 10 * np.finfo(np.float64).eps:  # sklearn's _handle_zeros_in_scale: constant -> unscaled
        std = 1.0
    xr = x - np.mean(x)
    mean_1 = np.mean(xr)
    if abs(mean_1) > 1e-8:  # sklearn re-centres when centring lost precision (not np.allclose(mean_1, 0))
        xr = xr - mean_1
    xr = xr / std
    mean_2 = np.mean(xr)
    if abs(mean_2) > 1e-8:
        xr = xr - mean_2
    return xr


def gauss_unif(entropy, symmetrize=True, max_iter=1000, tol=1e-10, ratios=None):
    x = np.array(entropy, dtype=np.float64).reshape(-1)
    n = x.shape[0]
    if symmetrize:
        for k in range(n // 2):
            x[2 * k] = -x[2 * k]
    eps = scale_like_sklearn(x)
    sigma = np.mean(eps ** 2)
    pi, c, log_like0 = 0.1, 0.2, 0.0
    gamma = None
    iterations, converged, diverged_at = 0, False, -1
    for it in range(max_iter):
        iterations = it + 1
        var = sigma + 1e-3
        phi = np.exp(-0.5 * eps ** 2 / var) / np.sqrt(2 * np.pi * var)
        gamma = phi * pi / (phi * pi + (1 - pi) * c)
        n1 = np.sum(gamma)
        sigma = np.sum(gamma * eps ** 2) / n1
        pi_new = n1 / n
        pi = pi_new if pi_new <= 0.5 else 0.5
        c1 = 1 / n1 * np.sum((1 - gamma) / (1 - pi + 1e-10) * eps)
        c2 = 1 / n1 * np.sum((1 - gamma) / (1 - pi + 1e-10) * eps ** 2)
        d = 3 * c2 - c1 ** 2
        if ratios is not None and c2 > 0:
            ratios.append(c1 ** 2 / c2)
        if abs(d) < 0.001:
            c = 0.001
        elif d < 0:  # the released code would take sqrt of a negative number here: NaN from now on
            diverged_at = it
            break
        else:
            c = 1.0 / (2 * np.sqrt(d) + 1e-10)
        log_like = np.sum(pi * phi + (1 - pi) * c)
        if abs(log_like - log_like0) < tol:
            converged = True
            break
        log_like0 = log_like
    return 1 - gamma, pi, sigma, c, iterations, converged, diverged_at
