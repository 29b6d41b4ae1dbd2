"""Shared fixtures of the topofr core-binding tests.

The expected values come from the repository's independent oracles (tests/oracles/*.py, imported from the
repo root two levels above python/tests, never copied): reference.py (the released code's union-find
Kruskal and GUM EM), persistence_oracle.py (GUDHI, ripser), isa_oracle.py / arcface_oracle.py /
objective_oracle.py (float64 PyTorch autograd) and rsp_oracle.py (torchvision). The script-style oracles
(isa, objective) are run in-process through runpy with their own command line, on .npy files in tmp_path,
so that torch is imported once for the whole suite.
"""
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
ORACLES = REPO / "tests" / "oracles"
if str(ORACLES) not in sys.path:
    sys.path.insert(0, str(ORACLES))

# Re-exported to the tests (from conftest import reference, ...).
import reference  # noqa: E402,F401
import arcface_oracle  # noqa: E402
try:  # the oracle scripts exit 77 when their module (gudhi, torchvision) is missing: those tests skip
    import persistence_oracle  # noqa: E402,F401
except SystemExit:
    persistence_oracle = None
try:
    import rsp_oracle  # noqa: E402,F401
except SystemExit:
    rsp_oracle = None


def need(oracle, what):
    """Skips a test whose oracle's module is missing; with TOPOFR_REQUIRE_ORACLES=1 (tests/run.sh, as for the
    C++ tests) a missing oracle fails instead, so that CI cannot pass by skipping."""
    if oracle is None:
        if os.environ.get("TOPOFR_REQUIRE_ORACLES") == "1":
            pytest.fail(f"oracle unavailable: {what} is not installed (TOPOFR_REQUIRE_ORACLES=1)")
        pytest.skip(f"oracle unavailable: {what} is not installed")

FRAMEWORKS = ("numpy", "torch")
DTYPES = ("float32", "float64")


@pytest.fixture(params=FRAMEWORKS)
def fw(request):
    return request.param


@pytest.fixture(params=DTYPES)
def dtype(request):
    return request.param


def to_fw(a, fw, dtype=None):
    """A NumPy array as `fw` ('numpy' or 'torch'), converted to `dtype` when given (float or int names)."""
    a = np.asarray(a)
    if dtype is not None:
        a = a.astype(dtype)
    a = np.ascontiguousarray(a)
    return torch.from_numpy(a.copy()) if fw == "torch" else a.copy()


def to_np(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def check_kind(result, fw, dtype):
    """The output lives in the input's framework and has the given dtype name."""
    if fw == "torch":
        assert isinstance(result, torch.Tensor), type(result)
        assert result.dtype == getattr(torch, dtype)
    else:
        assert isinstance(result, np.ndarray), type(result)
        assert result.dtype == np.dtype(dtype)


def tol(dtype, scale=1.0):
    """assert_allclose keyword arguments for a result of magnitude ~scale computed in `dtype`."""
    if dtype == "float32":
        return dict(rtol=3e-4, atol=3e-5 * scale)
    return dict(rtol=1e-9, atol=1e-11 * scale)


def ptr(a):
    """The data pointer of a NumPy array or a torch tensor."""
    if isinstance(a, torch.Tensor):
        return a.data_ptr()
    return a.__array_interface__["data"][0]


def run_oracle(script, argv):
    """Runs tests/oracles/<script> as __main__ with the given arguments, in this process."""
    saved_argv, saved_dtype = sys.argv, torch.get_default_dtype()
    sys.argv = [str(ORACLES / script)] + [str(a) for a in argv]
    try:
        runpy.run_path(str(ORACLES / script), run_name="__main__")
    finally:
        sys.argv = saved_argv
        torch.set_default_dtype(saved_dtype)  # objective_oracle sets float64 globally


def isa_oracle(tmp_path, x, z, x_scale=1.0, z_scale=1.0):
    """isa_oracle.py on float64 copies of x, z: {'loss': [variant][red], 'grad_z', 'grad_x', 'pairs_x', ...};
    variant 0 symmetric, 1 sorted_deaths; red 0 sum, 1 mean."""
    np.save(tmp_path / "x.npy", np.asarray(x, dtype=np.float64))
    np.save(tmp_path / "z.npy", np.asarray(z, dtype=np.float64))
    prefix = tmp_path / "isa"
    run_oracle("isa_oracle.py", [tmp_path / "x.npy", tmp_path / "z.npy", repr(float(x_scale)),
                                 repr(float(z_scale)), prefix])
    return {k: np.load(f"{prefix}_{k}.npy") for k in ("loss", "grad_z", "grad_x", "pairs_x", "pairs_z")}


def arcface(tmp_path, cos, labels, margin, eps=1e-5, grad_scale=1.0, weights=None, gup=None, tag="a",
            straight_through=False):
    """arcface_oracle.run on float64 copies: logits, glogits, loss, entropy, pgt, lse, grad.
    straight_through: the oracle's --straight-through (arcface_torch's margin under torch.no_grad())."""
    cos = np.asarray(cos, dtype=np.float64)
    prefix = str(tmp_path / tag)
    np.save(prefix + "_cos.npy", cos)
    np.save(prefix + "_labels.npy", np.asarray(labels, dtype=np.int64))
    np.save(prefix + "_weights.npy", np.ones(cos.shape[0]) if weights is None else np.asarray(weights, np.float64))
    np.save(prefix + "_gup.npy", np.zeros_like(cos) if gup is None else np.asarray(gup, np.float64))
    s, m1, m2, m3 = tuple(margin)[:4]
    arcface_oracle.run(prefix, float(s), float(m1), float(m2), float(m3), float(eps), float(grad_scale),
                       straight_through=bool(straight_through))
    return {k: np.load(f"{prefix}_{k}.npy") for k in ("logits", "glogits", "loss", "entropy", "pgt", "lse", "grad")}


def separated_points(rng, n, d, min_gap=1e-3, scale=1.0):
    """Random points whose pairwise distances are all at least min_gap apart (no near-ties, so float32
    and float64 filtrations order the edges the same way)."""
    for _ in range(1000):
        p = rng.standard_normal((n, d)) * scale
        dist = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
        w = np.sort(dist[np.triu_indices(n, 1)])
        if w[0] > min_gap * scale and np.min(np.diff(w)) > min_gap * scale:
            return p
    raise AssertionError("no separated point set found")


@pytest.fixture
def rng():
    return np.random.default_rng(20241201)
