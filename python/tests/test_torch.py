"""Tests of topofr.torch: gradients (gradcheck and the library's own), forward values against the repository's
independent float64 oracles (tests/oracles), edge cases, a training step, RSP, and torch >= 2.4's custom ops
(each test runs on the autograd.Function path and, where torch >= 2.4, on the torch.library path too).

Run from outside the source tree so that the installed package is imported:
    cd /tmp && python -m pytest -q <repo>/python/tests/test_torch.py
"""
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import topofr  # noqa: E402
import topofr.torch as tt  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORACLES = REPO / "tests" / "oracles"
sys.path.insert(0, str(ORACLES))
import arcface_oracle  # noqa: E402  (tests/oracles/arcface_oracle.py)
import isa_oracle  # noqa: E402  (tests/oracles/isa_oracle.py)
import reference  # noqa: E402  (tests/oracles/reference.py: kruskal_pairs, gauss_unif)

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True, params=["function", "custom_op"])
def path(request, monkeypatch):
    """Every test on both dispatch paths: torch.autograd.Function, and torch.library custom ops (torch >= 2.4)."""
    if request.param == "custom_op":
        if not tt._HAS_CUSTOM_OP:
            pytest.skip("torch.library.custom_op needs torch >= 2.4")
        monkeypatch.setattr(tt, "_USE_CUSTOM_OPS", True)
    else:
        monkeypatch.setattr(tt, "_USE_CUSTOM_OPS", False)
    return request.param


def rel_err(a, b) -> float:
    """Norm-wise relative error of a against the reference b."""
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def tol(dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-12


def points(n, d, seed, dtype=torch.float64, shape=None):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, d, generator=g, dtype=torch.float64)
    if shape is not None:
        t = t.reshape(shape)
    return t.to(dtype)


def cosines(n, c, seed, dtype=torch.float64, lo=-0.7, hi=0.7):
    """Cosines away from +-1 and from ArcFace's kink at cos(pi - m) (< -0.87 for m = 0.5)."""
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(n, c, generator=g, dtype=torch.float64)).to(dtype)


def labels_for(n, c, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    return torch.randint(0, c, (n,), generator=g)


# ---- oracle runners ----------------------------------------------------------------------------------------------
def run_isa_oracle(tmp_path, x, z, x_scale=1.0, z_scale=1.0):
    """isa_oracle.py (the released TopologicalSignatureDistance in float64 autograd): loss[variant][reduction],
    grad_z, grad_x with variant 0 = symmetric, 1 = sorted_deaths; reduction 0 = sum, 1 = mean."""
    np.save(tmp_path / "x.npy", x.detach().numpy())
    np.save(tmp_path / "z.npy", z.detach().numpy())
    out = str(tmp_path / "isa")
    argv = sys.argv
    sys.argv = ["isa_oracle.py", str(tmp_path / "x.npy"), str(tmp_path / "z.npy"), repr(x_scale), repr(z_scale), out]
    try:
        isa_oracle.main()
    finally:
        sys.argv = argv
    return {k: np.load(f"{out}_{k}.npy") for k in ("loss", "grad_z", "grad_x")}


def run_arcface_oracle(tmp_path, cos, labels, margin, eps=1e-5, weights=None, grad_scale=1.0):
    """arcface_oracle.run (insightface's ArcFace in float64 autograd): loss, entropy, pgt, lse, grad of
    grad_scale * sum_i w_i loss_i."""
    n, c = cos.shape
    prefix = str(tmp_path / "arc")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    np.save(prefix + "_cos.npy", cos.detach().numpy())
    np.save(prefix + "_labels.npy", labels.numpy())
    np.save(prefix + "_weights.npy", w)
    np.save(prefix + "_gup.npy", np.zeros((n, c)))
    m = topofr.CombinedMargin(*margin)
    arcface_oracle.run(prefix, *(float(v) for v in tuple(m)[:4]), eps, grad_scale,
                       straight_through=m.straight_through)  # the oracle's --straight-through
    return {k: np.load(f"{prefix}_{k}.npy") for k in ("loss", "entropy", "pgt", "lse", "grad")}


def run_objective_oracle(tmp_path, x, z, cos, labels, alpha, s, m, variant, focal, use_sds, use_isa, x_scale=1.0,
                         z_scale=1.0):
    """objective_oracle.py (the whole TopoFR loss in float64 autograd, omega detached; reference.gauss_unif and
    reference.kruskal_pairs). It is a script: run in-process with its argv; it sets torch's default dtype, which
    is restored."""
    d = tmp_path / "obj"
    d.mkdir(exist_ok=True)
    # (the oracle takes x as n points: an image batch is flattened to n x CHW, as the library sees it)
    for name, a in (("x", x.reshape(x.shape[0], -1)), ("z", z), ("cos", cos), ("labels", labels)):
        np.save(d / f"{name}.npy", a.detach().numpy())
    argv, default = sys.argv, torch.get_default_dtype()
    sys.argv = ["objective_oracle.py", str(d), repr(alpha), repr(s), repr(m), variant, str(int(focal)),
                str(int(use_sds)), str(int(use_isa)), repr(x_scale), repr(z_scale)]
    try:
        runpy.run_path(str(ORACLES / "objective_oracle.py"), run_name="objective_oracle")
    finally:
        sys.argv = argv
        torch.set_default_dtype(default)
    r = {k: np.load(d / f"{k}.npy") for k in ("grad_z", "grad_cos", "omega", "hard", "entropy", "stats")}
    r.update(dict(zip(["loss", "loss_cls", "l_sa", "pi", "sigma", "hard_fraction"], r.pop("stats"))))
    return r


# ---- ISA ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["symmetric", "sorted_deaths"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_isa_gradcheck(variant, reduction):
    # Oracle: finite differences (torch.autograd.gradcheck) of the forward; random points, no ties.
    x = points(7, 5, 1).requires_grad_()
    z = points(7, 3, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: tt.isa_loss(a, b, variant=variant, reduction=reduction,
                                                              x_scale=1.3, z_scale=0.7), (x, z))


def test_isa_gradcheck_image_batch():
    # Oracle: gradcheck, x an (n, C, H, W) batch seen as n points of dimension CHW.
    x = points(6, 12, 3, shape=(6, 3, 2, 2)).requires_grad_()
    z = points(6, 4, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: tt.isa_loss(a, b, x_scale=topofr.image_scale(3, 2, 2)), (x, z))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("image", [False, True])
def test_isa_vs_oracle(tmp_path, dtype, image):
    # Oracle: tests/oracles/isa_oracle.py (released TopologicalSignatureDistance, float64 autograd, Kruskal pairs
    # of reference.kruskal_pairs); loss and both gradients, both variants and both reductions.
    n = 12
    x = points(n, 48, 5, dtype, shape=(n, 3, 4, 4) if image else None)
    z = points(n, 8, 6, dtype)
    xs = topofr.image_scale(3, 4, 4) if image else 1.0
    ref = run_isa_oracle(tmp_path, x, z, x_scale=xs, z_scale=1.5)
    for vi, variant in enumerate(["symmetric", "sorted_deaths"]):
        for ri, reduction in enumerate(["sum", "mean"]):
            xg, zg = x.clone().requires_grad_(), z.clone().requires_grad_()
            loss = tt.ISALoss(variant, reduction, x_scale=xs, z_scale=1.5)(xg, zg)
            assert loss.dtype == dtype and loss.dim() == 0
            loss.backward()
            assert rel_err(loss, ref["loss"][vi, ri]) <= tol(dtype)
            assert rel_err(zg.grad, ref["grad_z"][vi, ri]) <= tol(dtype)
            assert rel_err(xg.grad.reshape(n, -1), ref["grad_x"][vi, ri]) <= tol(dtype)
            assert xg.grad.dtype == dtype and xg.grad.shape == x.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_isa_backward_is_library_gradient(dtype):
    # Oracle: topofr.isa_loss_from_points (the library's gradients), times the upstream gradient, bit for bit.
    x = points(9, 6, 7, dtype).requires_grad_()
    z = points(9, 4, 8, dtype).requires_grad_()
    loss = tt.isa_loss(x, z, variant="sorted_deaths", reduction="sum", z_scale=2.0)
    g = torch.tensor(2.5, dtype=dtype)
    loss.backward(g)
    lib = topofr.isa_loss_from_points(x.detach(), z.detach(), variant="sorted_deaths", reduction="sum", z_scale=2.0,
                                      grad_x=True, grad_z=True)
    assert loss.item() == lib.loss
    assert torch.equal(x.grad, g * lib.grad_x)
    assert torch.equal(z.grad, g * lib.grad_z)


def test_isa_only_needed_gradients():
    # Oracle: autograd's own bookkeeping (x.grad stays None when x does not require grad; no graph under no_grad).
    x, z = points(6, 3, 9), points(6, 2, 10).requires_grad_()
    loss = tt.isa_loss(x, z)
    loss.backward()
    assert x.grad is None and z.grad is not None and torch.isfinite(z.grad).all()
    with torch.no_grad():
        assert tt.isa_loss(x, z).grad_fn is None
    x2 = points(6, 3, 9).requires_grad_()
    tt.isa_loss(x2, points(6, 2, 10)).backward()
    assert x2.grad is not None and x2.grad.abs().sum() > 0


# ---- margin CE ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("margin", [topofr.CombinedMargin(), topofr.CombinedMargin.cosface(30.0, 0.35),
                                    topofr.CombinedMargin(16.0, 1.2, 0.2, 0.1)])
def test_margin_ce_gradcheck(margin):
    # Oracle: gradcheck of the per-sample loss w.r.t. cos (cos away from +-1 and the margin's kink).
    cos = cosines(5, 7, 11).requires_grad_()
    y = labels_for(5, 7, 11)
    assert torch.autograd.gradcheck(lambda c: tt.margin_ce(c, y, margin)[0], (cos,))


@pytest.mark.parametrize("margin", [topofr.CombinedMargin(), topofr.CombinedMargin(16.0, 1.2, 0.2, 0.1)])
def test_margin_ce_gradcheck_other_shard_and_ignored_rows(margin):
    # Oracle: gradcheck (finite differences). Rows labelled ignore_label have loss 0 and no gradient: plain
    # gradcheck. A row labelled -1 (target on another shard) has loss 0 here but the gradient of its lse (what
    # Partial FC's local gradient is): gradcheck of loss + [y = -1] lse.detach() sees the lse's value in its
    # finite differences and only the library's backward in the analytic gradient, so it passes iff that backward
    # is d lse / d cos (nonzero).
    cos = cosines(6, 7, 14).requires_grad_()
    y = labels_for(6, 7, 14)
    y[1], y[4] = -1, topofr.ignore_label
    other = (y == -1).to(torch.float64)

    def f(c):
        loss = tt.margin_ce(c, y, margin)[0]
        return loss + other * torch.logsumexp(margin.s * c, dim=1).detach()

    assert torch.autograd.gradcheck(f, (cos,))
    loss = tt.margin_ce(cos, y, margin)[0]
    assert loss[1] == 0 and loss[4] == 0
    (grad,) = torch.autograd.grad(loss.sum(), cos)
    assert torch.all(grad[1] > 0) and torch.all(grad[4] == 0)
    yi = y.clone()
    yi[1] = topofr.ignore_label  # both rows ignored: the plain gradcheck applies
    assert torch.autograd.gradcheck(lambda c: tt.margin_ce(c, yi, margin)[0], (cos,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [topofr.CombinedMargin(), topofr.CombinedMargin.cosface(),
                                    topofr.CombinedMargin(32.0, 1.2, 0.2, 0.1)])
def test_margin_ce_vs_oracle(tmp_path, dtype, margin):
    # Oracle: tests/oracles/arcface_oracle.py (insightface ArcFace + F.cross_entropy, float64 autograd); an
    # row labelled -1 (target on another shard: the oracle differentiates its lse) and an ignored row included.
    n, c = 10, 13
    cos = cosines(n, c, 12, dtype, lo=-0.95, hi=0.95)
    y = labels_for(n, c, 12)
    y[3] = -1
    y[6] = topofr.ignore_label
    w = torch.linspace(0.5, 2.0, n, dtype=torch.float64)
    ref = run_arcface_oracle(tmp_path, cos, y, margin, weights=w.numpy())
    cg = cos.clone().requires_grad_()
    loss, entropy, p_gt = tt.margin_ce(cg, y, margin)
    assert loss.dtype == entropy.dtype == p_gt.dtype == dtype and loss.shape == (n,)
    assert not entropy.requires_grad and not p_gt.requires_grad
    (w.to(dtype) * loss).sum().backward()
    assert rel_err(loss, ref["loss"]) <= tol(dtype)
    assert rel_err(entropy, ref["entropy"]) <= tol(dtype)
    assert rel_err(p_gt, ref["pgt"]) <= tol(dtype)
    assert rel_err(cg.grad, ref["grad"]) <= tol(dtype)
    assert torch.all(cg.grad[6] == 0) and cg.grad[3].abs().max() > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("margin", [topofr.CombinedMargin.arcface(straight_through=True),
                                    topofr.CombinedMargin(32.0, 1.2, 0.2, 0.1, True)])
def test_margin_ce_straight_through_vs_oracle(tmp_path, dtype, margin):
    # straight_through: the target column's gradient is s, as arcface_torch's margin under torch.no_grad().
    # Oracle: arcface_oracle.py --straight-through (float64 autograd of s (cos + (margin(cos) - cos).detach()));
    # the forward equals the exact margin's (the same code), the module's gradient is the oracle's too.
    n, c = 10, 13
    cos = cosines(n, c, 15, dtype, lo=-0.95, hi=0.95)
    y = labels_for(n, c, 15)
    y[3], y[6] = -1, topofr.ignore_label
    ref = run_arcface_oracle(tmp_path, cos, y, margin)
    exact = margin._replace(straight_through=False)
    cg = cos.clone().requires_grad_()
    loss, entropy, p_gt = tt.margin_ce(cg, y, margin)
    loss.sum().backward()
    le, ee, pe = tt.margin_ce(cos, y, exact)
    assert torch.equal(loss.detach(), le) and torch.equal(entropy, ee) and torch.equal(p_gt, pe)
    assert rel_err(loss, ref["loss"]) <= tol(dtype)
    assert rel_err(cg.grad, ref["grad"]) <= tol(dtype)
    ce = cos.clone().requires_grad_()
    tt.margin_ce(ce, y, exact)[0].sum().backward()
    assert rel_err(cg.grad, ce.grad.detach().numpy()) > 1e-3  # the switch changes the gradient
    mod = tt.MarginCE(margin, sds=False)
    assert mod.margin.straight_through
    cm = cos.clone().requires_grad_()
    mod(cm, y).backward()
    assert rel_err(cm.grad, ref["grad"] / n) <= tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_margin_ce_backward_is_library_gradient(dtype):
    # Oracle: topofr.margin_ce_forward / margin_ce_backward with weights = the upstream gradient, grad_scale 1.
    cos = cosines(8, 6, 13, dtype).requires_grad_()
    y = labels_for(8, 6, 13).to(torch.int32)
    loss, _, _ = tt.margin_ce(cos, y)
    up = torch.linspace(-1, 3, 8, dtype=dtype)
    loss.backward(up)
    f = topofr.margin_ce_forward(cos.detach(), y)
    assert torch.equal(loss.detach(), f.loss)
    assert torch.equal(cos.grad, topofr.margin_ce_backward(cos.detach(), y, f.lse, up))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sds,focal,lambda_", [(True, True, 1.0), (True, False, 1.0), (True, True, 2.0),
                                               (False, True, 1.0)])
def test_margin_ce_module_vs_oracle(tmp_path, dtype, sds, focal, lambda_):
    # Oracle: arcface_oracle (per-sample loss, entropy, p_gt; the gradient of (1/N) sum omega_i loss_i) and
    # reference.gauss_unif (the released GUM EM) for h, pi, sigma; omega = (1 + h)^lambda (1 - p_gt) (focal) or
    # (1 + h)^lambda, as a constant.
    n, c = 32, 6
    margin = topofr.CombinedMargin(8.0, 1.0, 0.3, 0.0)  # a small scale: entropies spread over the batch
    cos = cosines(n, c, 14, dtype, lo=-0.9, hi=0.9)
    y = labels_for(n, c, 14)
    ref = run_arcface_oracle(tmp_path, cos, y, margin)
    if sds:
        h, pi, sigma = reference.gauss_unif(ref["entropy"])[:3]
        omega = (1 + h) ** lambda_ * ((1 - ref["pgt"]) if focal else 1.0)
    else:
        h, pi, sigma, omega = np.zeros(n), 0.0, 0.0, np.ones(n)
    ref_grad = run_arcface_oracle(tmp_path, cos, y, margin, weights=omega, grad_scale=1.0 / n)["grad"]
    m = tt.MarginCE(margin, sds=sds, lambda_=lambda_, focal=focal)
    cg = cos.clone().requires_grad_()
    loss = m(cg, y)
    loss.backward()
    assert loss.dtype == dtype and loss.dim() == 0
    assert rel_err(loss, np.mean(omega * ref["loss"])) <= tol(dtype)
    assert rel_err(cg.grad, ref_grad) <= tol(dtype)
    last = m.last
    assert rel_err(last.hard_posterior, h) <= tol(dtype)  # (all 0 when sds=False)
    assert rel_err(last.weights, omega) <= tol(dtype)
    assert abs(last.pi - pi) <= tol(dtype) and abs(last.sigma - sigma) <= tol(dtype)
    assert last.hard_fraction == float(np.mean(h > 0.5))
    if sds:
        assert 0 < last.hard_fraction < 1  # a non-degenerate fit, so the comparison means something


# ---- the whole objective -----------------------------------------------------------------------------------------
OBJECTIVE_CASES = [("paper", True, True), ("released_code", True, True), ("paper", False, True),
                   ("paper", True, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("setting,use_sds,use_isa", OBJECTIVE_CASES)
def test_topofr_loss_vs_oracle(tmp_path, dtype, setting, use_sds, use_isa):
    # Oracle: tests/oracles/objective_oracle.py (float64 autograd of the whole loss with omega detached,
    # reference.gauss_unif and reference.kruskal_pairs), on an image batch with the released code's x scale.
    n, c = 16, 5
    x = points(n, 48, 15, dtype, shape=(n, 3, 4, 4))
    z = points(n, 8, 16, dtype)
    cos = cosines(n, c, 17, dtype, lo=-0.9, hi=0.9)
    y = labels_for(n, c, 17)
    s, m, alpha = 8.0, 0.5, 0.3
    xs = topofr.image_scale(3, 4, 4)
    isa = topofr.ISAOptions(x_scale=xs, z_scale=2.0)
    build = tt.TopoFRLoss.paper if setting == "paper" else tt.TopoFRLoss.released_code
    crit = build(margin=topofr.CombinedMargin.arcface(s, m), alpha=alpha, use_sds=use_sds, use_isa=use_isa, isa=isa)
    if setting == "released_code":
        assert crit.options.isa.variant == "sorted_deaths" and not crit.options.focal
        assert crit.options.isa.x_scale == xs
    ref = run_objective_oracle(tmp_path, x, z, cos, y, alpha, s, m, crit.options.isa.variant, crit.options.focal,
                               use_sds, use_isa, xs, 2.0)
    zg, cg = z.clone().requires_grad_(), cos.clone().requires_grad_()
    loss = crit(x, zg, cg, y)
    assert loss.dtype == dtype and loss.dim() == 0
    loss.backward()
    t = tol(dtype)
    assert rel_err(loss, ref["loss"]) <= t
    assert rel_err(zg.grad, ref["grad_z"]) <= t  # (all 0 when use_isa=False)
    assert rel_err(cg.grad, ref["grad_cos"]) <= t
    r = crit.last
    assert isinstance(r, topofr.ObjectiveResult)
    assert rel_err(r.loss_cls, ref["loss_cls"]) <= t
    assert abs(r.discrepancy - ref["l_sa"]) <= t * max(1.0, abs(ref["l_sa"]))
    assert abs(r.pi - ref["pi"]) <= t and abs(r.sigma - ref["sigma"]) <= t
    assert r.hard_fraction == ref["hard_fraction"]
    assert rel_err(r.weights, ref["omega"]) <= t
    assert rel_err(r.entropy, ref["entropy"]) <= t


@pytest.mark.parametrize("variant", ["symmetric", "sorted_deaths"])
def test_topofr_loss_gradcheck_without_sds(variant):
    # Oracle: gradcheck w.r.t. z and cos of the whole loss with use_sds=False (with SDS the weights are a
    # stop-gradient, which finite differences cannot see: test_topofr_loss_vs_oracle covers that case).
    x, z = points(6, 5, 18), points(6, 3, 19).requires_grad_()
    cos = cosines(6, 4, 20).requires_grad_()
    y = labels_for(6, 4, 20)
    opts = topofr.ObjectiveOptions(margin=topofr.CombinedMargin.arcface(16.0, 0.5), alpha=0.7, use_sds=False,
                                   isa=topofr.ISAOptions(variant=variant))
    crit = tt.TopoFRLoss(opts)
    assert torch.autograd.gradcheck(lambda a, b: crit(x, a, b, y), (z, cos))


@pytest.mark.parametrize("dtype", DTYPES)
def test_topofr_loss_backward_is_library_gradient(dtype):
    # Oracle: topofr.Objective(...).grad_z / grad_cos times the upstream gradient, bit for bit.
    x, z = points(10, 6, 21, dtype), points(10, 4, 22, dtype).requires_grad_()
    cos = cosines(10, 5, 23, dtype).requires_grad_()
    y = labels_for(10, 5, 23)
    crit = tt.TopoFRLoss()
    loss = crit(x, z, cos, y)
    g = torch.tensor(1.75, dtype=dtype)
    loss.backward(g)
    r = topofr.Objective(topofr.ObjectiveOptions())(x, z.detach(), cos.detach(), y)
    assert torch.equal(loss.detach(), torch.tensor(r.loss, dtype=dtype))
    assert torch.equal(z.grad, g * r.grad_z)
    assert torch.equal(cos.grad, g * r.grad_cos)
    assert x.grad is None
    assert torch.equal(crit.last.grad_z, r.grad_z) and crit.last.loss == r.loss


def test_topofr_loss_copies():
    # Oracle: the original module's result (a deep copy or an unpickled module computes the same loss).
    import copy
    import pickle

    x, z, cos = points(6, 4, 49), points(6, 3, 50), cosines(6, 4, 51)
    y = labels_for(6, 4, 51)
    crit = tt.TopoFRLoss.released_code(alpha=0.2)
    expect = crit(x, z, cos, y)
    for other in (copy.deepcopy(crit), pickle.loads(pickle.dumps(crit))):
        assert other._handle != crit._handle and other.options == crit.options
        assert torch.equal(other(x, z, cos, y), expect) and other.last.loss == crit.last.loss


# ---- edge cases --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_two_points(tmp_path, dtype):
    # Oracle: isa_oracle (n = 2: one pair) and objective_oracle.
    x, z = points(2, 3, 24, dtype), points(2, 2, 25, dtype)
    ref = run_isa_oracle(tmp_path, x, z)
    zg = z.clone().requires_grad_()
    loss = tt.isa_loss(x, zg, reduction="sum")
    loss.backward()
    assert rel_err(loss, ref["loss"][0, 0]) <= tol(dtype)
    assert rel_err(zg.grad, ref["grad_z"][0, 0]) <= tol(dtype)
    cos, y = cosines(2, 3, 26, dtype), torch.tensor([0, 2])
    ref = run_objective_oracle(tmp_path, x, z, cos, y, 0.1, 64.0, 0.5, "symmetric", True, True, True)
    assert rel_err(tt.TopoFRLoss()(x, z, cos, y), ref["loss"]) <= tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_duplicate_points(dtype):
    # Oracle: finiteness (ties in the filtration and zero distances: loss and gradients must stay finite).
    x = points(8, 4, 27, dtype)
    x[3] = x[1]
    x[5] = x[1]
    z = points(8, 3, 28, dtype)
    z[2] = z[6]
    z[4] = z[6]
    for variant in ("symmetric", "sorted_deaths"):
        xg, zg = x.clone().requires_grad_(), z.clone().requires_grad_()
        loss = tt.isa_loss(xg, zg, variant=variant)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(xg.grad).all() and torch.isfinite(zg.grad).all()
    zg, cg = z.clone().requires_grad_(), cosines(8, 4, 29, dtype).requires_grad_()
    loss = tt.TopoFRLoss()(x, zg, cg, labels_for(8, 4, 29))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(zg.grad).all() and torch.isfinite(cg.grad).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_labels_all_the_same(tmp_path, dtype):
    # Oracle: objective_oracle (and finiteness of MarginCE's GUM fit).
    n = 12
    x, z, cos = points(n, 5, 30, dtype), points(n, 3, 31, dtype), cosines(n, 4, 32, dtype)
    y = torch.full((n,), 2, dtype=torch.int64)
    ref = run_objective_oracle(tmp_path, x, z, cos, y, 0.1, 64.0, 0.5, "symmetric", True, True, True)
    assert rel_err(tt.TopoFRLoss()(x, z, cos, y), ref["loss"]) <= tol(dtype)
    cg = cos.clone().requires_grad_()
    loss = tt.MarginCE()(cg, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(cg.grad).all()


def test_bad_arguments():
    # Oracle: the documented error contract (TypeError for dtypes, topofr.Error naming the argument for shapes).
    x, z, cos = points(5, 3, 33), points(5, 2, 34), cosines(5, 4, 35)
    y = labels_for(5, 4, 35)
    with pytest.raises(TypeError, match="labels"):
        tt.margin_ce(cos, y.to(torch.float32))
    with pytest.raises(TypeError, match="labels"):
        tt.MarginCE()(cos, y.to(torch.float64))
    with pytest.raises(TypeError, match="labels"):
        tt.TopoFRLoss()(x, z, cos, y.to(torch.float32))
    with pytest.raises(topofr.Error, match="z"):
        tt.isa_loss(x, points(6, 2, 36))
    with pytest.raises(topofr.Error, match="z"):
        tt.TopoFRLoss()(x, points(6, 2, 36), cos, y)
    with pytest.raises(topofr.Error, match="labels"):
        tt.margin_ce(cos, y[:4])
    with pytest.raises(TypeError, match="z"):
        tt.TopoFRLoss()(x, z.float(), cos, y)
    with pytest.raises(TypeError, match="x"):
        tt.isa_loss(x.numpy(), z)
    with pytest.raises(topofr.Error, match="variant"):
        tt.isa_loss(x, z, variant="paper")


def test_inputs_not_modified():
    # Oracle: copies taken before the calls (requires_grad inputs are only read).
    x = points(8, 12, 37, shape=(8, 3, 2, 2)).requires_grad_()
    z, cos = points(8, 3, 38).requires_grad_(), cosines(8, 5, 39).requires_grad_()
    y = labels_for(8, 5, 39)
    before = [t.detach().clone() for t in (x, z, cos, y)]
    (tt.isa_loss(x, z) + tt.margin_ce(cos, y)[0].sum() + tt.MarginCE()(cos, y) + tt.TopoFRLoss()(x, z, cos, y)
     ).backward()
    for t, b in zip((x, z, cos, y), before):
        assert torch.equal(t.detach(), b)


def test_double_backward_is_refused():
    # Oracle: once_differentiable's contract (the library has no second derivatives).
    z = points(5, 2, 40).requires_grad_()
    (g,) = torch.autograd.grad(tt.isa_loss(points(5, 3, 41), z), z, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_training_step_decreases_loss():
    # Oracle: SGD on a tiny model must lower the TopoFR loss over a few steps (the gradients point downhill).
    torch.manual_seed(0)
    n, d_in, d_emb, classes = 24, 10, 6, 4
    x = torch.randn(n, d_in)
    y = torch.arange(n) % classes
    embed = torch.nn.Linear(d_in, d_emb)
    head = torch.nn.Parameter(torch.randn(classes, d_emb))
    crit = tt.TopoFRLoss.paper(margin=topofr.CombinedMargin.arcface(16.0, 0.3), alpha=0.5)
    opt = torch.optim.SGD(list(embed.parameters()) + [head], lr=0.05)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        z = embed(x)
        cos = torch.nn.functional.normalize(z) @ torch.nn.functional.normalize(head).t()
        loss = crit(x, z, cos, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert 0 <= crit.last.hard_fraction <= 1


# ---- RSP ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_rsp_matches_library(dtype):
    # Oracle: topofr.rsp_perturb for the same (seed, step).
    g = torch.Generator().manual_seed(42)
    images = torch.randn(16, 3, 8, 8, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    before = images.detach().clone()
    rsp = tt.RSP(probability=0.6, seed=7)
    for step in (None, None, 5):
        expect_step = rsp.step if step is None else step
        out = rsp(images, step)
        lib = topofr.rsp_perturb(before, probability=0.6, seed=7, step=expect_step)
        assert torch.equal(out, lib.images) and torch.equal(rsp.last_kinds, lib.kinds)
        assert out.dtype == dtype and not out.requires_grad
        assert torch.equal(images.detach(), before)
    assert rsp.step == 2
    assert (rsp.last_kinds >= 0).any()  # something was perturbed


@pytest.mark.skipif(not torch.cuda.is_available() or topofr.has_cuda(), reason="needs CUDA torch, CPU-only topofr")
def test_cuda_tensors_without_cuda_build():
    # Oracle: the documented contract (CUDA tensors are passed through; a CPU-only build raises TypeError).
    z = points(5, 2, 52).cuda()
    with pytest.raises(TypeError, match="CUDA"):
        tt.isa_loss(points(5, 3, 53).cuda(), z)


# ---- torch >= 2.4 ------------------------------------------------------------------------------------------------
def test_torch_compile(path):
    # Oracle: the eager result of the same function (torch.compile must trace around the custom ops).
    if path != "custom_op":
        pytest.skip("torch.compile is tested on the custom-op path (torch >= 2.4) only")
    x, z = points(8, 5, 43), points(8, 3, 44)
    cos, y = cosines(8, 4, 45), labels_for(8, 4, 45)
    crit, head = tt.TopoFRLoss(), tt.MarginCE(topofr.CombinedMargin.arcface(8.0, 0.5))

    def f(a, b, c):
        return tt.isa_loss(a, b) + tt.margin_ce(c, y)[0].mean() + crit(a, b, c, y) + head(c, y)

    grads = []
    for fn in (f, torch.compile(f, backend="aot_eager", fullgraph=True)):  # fullgraph: no graph break anywhere
        b, c = z.clone().requires_grad_(), cos.clone().requires_grad_()
        out = fn(x, b, c)
        out.backward()
        grads.append((out.detach(), b.grad, c.grad))
    for e, k in zip(*grads):
        assert torch.allclose(e, k, rtol=1e-12, atol=1e-12)


def test_opcheck(path):
    # Oracle: torch.library.opcheck (schema, fake tensors and autograd registration of each op).
    if path != "custom_op":
        pytest.skip("opcheck applies to the custom-op path (torch >= 2.4) only")
    x, z = points(6, 5, 46), points(6, 3, 47)
    cos, y = cosines(6, 4, 48), labels_for(6, 4, 48)
    crit = tt.TopoFRLoss()
    torch.library.opcheck(torch.ops.topofr.isa_loss.default, (x, z, "symmetric", "mean", 1.0, 1.0, True, True))
    torch.library.opcheck(torch.ops.topofr.margin_ce.default, (cos, y, 64.0, 1.0, 0.5, 0.0, False, 1e-5))
    torch.library.opcheck(torch.ops.topofr.margin_ce.default, (cos, y, 64.0, 1.0, 0.5, 0.0, True, 1e-5))
    torch.library.opcheck(torch.ops.topofr.objective.default, (x, z, cos, y, crit._handle))
    loss, entropy, p_gt, lse = torch.ops.topofr.margin_ce(cos, y, 64.0, 1.0, 0.5, 0.0, False, 1e-5)
    torch.library.opcheck(torch.ops.topofr.margin_ce_backward.default, (cos, y, lse, loss, 64.0, 1.0, 0.5, 0.0, False))
    torch.library.opcheck(torch.ops.topofr.sds_weights.default,
                          (entropy, p_gt, "reference", 1000, 1e-10, True, 1.0, True))
