#!/usr/bin/env python3
"""Independent NumPy oracle for topofr::gum_fit (the released GUM.py `gauss_unif` EM, docs/fidelity.md).

The EM itself is reference.gauss_unif (shared with the objective and CLI oracles): written from the
algorithm's description, elementwise and unfused (no sklearn, no scipy).

  gum_oracle.py ENTROPY.npy OUT_PREFIX [--no-symmetrize] [--max-iter N] [--tol T]
      writes OUT_PREFIX_h.npy (float64, h = 1 - gamma of the last E-step) and OUT_PREFIX_params.npy
      (float64: pi, sigma, c, iterations, converged, diverged_at (-1 when it did not diverge)).
  gum_oracle.py --search-divergent OUT.npy [TRIALS]
      random search (Cauchy, heavy-tailed, clustered, uniform; n = 2..39; symmetrised or not) for an input
      on which the reference EM hits 3*C2 - C1^2 <= -0.001; writes the first one found, else prints the
      largest C1^2 / C2 seen (docs/math.md proves C1^2 <= 2 C2, so none exists).
"""
import sys

try:
    import numpy as np
except ImportError:
    sys.exit(77)

from reference import gauss_unif  # noqa: E402  (tests/oracles/reference.py)


def search_divergent(out, trials):
    rng = np.random.default_rng(5)
    worst = 0.0
    for trial in range(trials):
        n = int(rng.integers(2, 40))
        kind = trial % 4
        if kind == 0:
            x = rng.standard_cauchy(n)
        elif kind == 1:
            x = rng.exponential(1, n) ** rng.uniform(1, 6)
        elif kind == 2:
            x = rng.choice([0.0, 1.0, 3.0, 50.0], n) + rng.random(n) * 1e-3
        else:
            x = rng.random(n)
        ratios = []
        with np.errstate(all="ignore"):
            res = gauss_unif(x, symmetrize=bool(trial % 2), max_iter=200, ratios=ratios)
        worst = max([worst] + ratios)
        if res[6] >= 0:
            np.save(out, x)
            print("found after", trial + 1, "trials: x =", list(x), "diverged at iteration", res[6])
            return
    print("no divergent input in", trials, "trials; max C1^2/C2 =", worst)


def main(argv):
    if argv[1] == "--search-divergent":
        search_divergent(argv[2], int(argv[3]) if len(argv) > 3 else 20000)
        return
    entropy = np.load(argv[1])
    prefix = argv[2]
    symmetrize, max_iter, tol = True, 1000, 1e-10
    i = 3
    while i < len(argv):
        if argv[i] == "--no-symmetrize":
            symmetrize = False
        elif argv[i] == "--max-iter":
            i += 1
            max_iter = int(argv[i])
        elif argv[i] == "--tol":
            i += 1
            tol = float(argv[i])
        else:
            sys.exit("unknown option " + argv[i])
        i += 1
    with np.errstate(all="ignore"):
        h, pi, sigma, c, iterations, converged, diverged_at = gauss_unif(entropy, symmetrize, max_iter, tol)
    np.save(prefix + "_h.npy", np.asarray(h, dtype=np.float64))
    np.save(prefix + "_params.npy",
            np.array([pi, sigma, c, iterations, 1.0 if converged else 0.0, diverged_at], dtype=np.float64))


if __name__ == "__main__":
    main(sys.argv)
