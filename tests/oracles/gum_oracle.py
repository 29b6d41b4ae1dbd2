#!/usr/bin/env python3
"""Independent NumPy oracle for topofr::gum_fit (the released GUM.py `gauss_unif` EM, docs/fidelity.md).

Written from the algorithm's description, elementwise and unfused (no sklearn, no scipy), so that it
shares no arithmetic shortcuts with the C++ kernel.

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
