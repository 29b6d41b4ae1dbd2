"""topofr's core bindings against the repository's independent oracles (tests/oracles), in float32 and
float64, with NumPy and torch inputs; zero-copy outputs; degenerate inputs. Every numerical check names
its oracle; no expected value is computed by topofr itself (consistency checks say so)."""
import math

import numpy as np
import pytest
import torch

import isa_oracle
import topofr
from conftest import (arcface, check_kind, isa_oracle as run_isa_oracle, need, persistence_oracle, ptr, reference,
                      rsp_oracle, run_oracle, separated_points, to_fw, to_np, tol)


def torch_dist(p, scale=1.0):
    """Oracle: the released code's distance matrix, torch.norm(x[:, None] - x, dim=2) in float64
    (isa_oracle.distance_matrix)."""
    return (isa_oracle.distance_matrix(torch.from_numpy(np.array(p, dtype=np.float64))) / scale).numpy()


def test_has_cuda_is_bool():
    assert isinstance(topofr.has_cuda(), bool)


def test_image_scale():
    # Oracle: docs/api.md, sqrt(4 C H W).
    assert topofr.image_scale(3, 112, 112) == pytest.approx(math.sqrt(4 * 3 * 112 * 112), rel=1e-15)


# ---- pairwise distances ------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_pairwise_distances(rng, fw, dtype, scale):
    p = rng.standard_normal((9, 5))
    d = topofr.pairwise_distances(to_fw(p, fw, dtype), scale=scale)
    check_kind(d, fw, dtype)
    dn = to_np(d)
    # Oracle: isa_oracle.distance_matrix (torch.norm, float64) on the same (rounded) points.
    np.testing.assert_allclose(dn, torch_dist(p.astype(dtype), scale), **tol(dtype, 4))
    assert np.array_equal(dn, dn.T) and np.all(np.diag(dn) == 0)  # docs: exactly symmetric, 0 diagonal


def test_pairwise_distances_batched(rng, fw, dtype):
    p = rng.standard_normal((3, 7, 4))
    d = topofr.pairwise_distances(to_fw(p, fw, dtype), scale=1.5)
    check_kind(d, fw, dtype)
    assert tuple(d.shape) == (3, 7, 7)
    for b in range(3):  # Oracle: isa_oracle.distance_matrix per cloud.
        np.testing.assert_allclose(to_np(d)[b], torch_dist(p[b].astype(dtype), 1.5), **tol(dtype, 4))


# ---- persistence -------------------------------------------------------------------------------------------
def tie_cases(rng):
    n = 8
    dup = rng.standard_normal((n, 3))
    dup[5] = dup[1]
    dup[7] = dup[1]
    grid = np.array([[i, j] for i in range(3) for j in range(3)], dtype=np.float64)  # many equal distances
    equal = np.ones((6, 6)) - np.eye(6)  # all off-diagonal distances equal
    return {
        "random": torch_dist(rng.standard_normal((10, 4))),
        "duplicates": torch_dist(dup),
        "grid": torch_dist(grid),
        "all_equal": equal,
        "n2": torch_dist(rng.standard_normal((2, 3))),
        "zeros": np.zeros((4, 4)),
    }


@pytest.mark.parametrize("case", ["random", "duplicates", "grid", "all_equal", "n2", "zeros"])
def test_persistence_pairs_vs_kruskal_and_gudhi(rng, fw, dtype, case):
    need(persistence_oracle, "gudhi")
    d = tie_cases(rng)[case].astype(dtype)
    pairs, deaths = topofr.persistence_pairs(to_fw(d, fw))
    check_kind(pairs, fw, "int32")
    check_kind(deaths, fw, dtype)
    # Oracle: reference.kruskal_pairs (the released union-find, stable sort): the exact ordered pairs.
    ref_pairs, ref_deaths = reference.kruskal_pairs(d.astype(np.float64), with_deaths=True)
    np.testing.assert_array_equal(to_np(pairs), ref_pairs)
    np.testing.assert_array_equal(to_np(deaths).astype(np.float64), ref_deaths)
    # Oracle: GUDHI's Rips complex (persistence_oracle.gudhi_deaths), sorted finite dim-0 deaths; GUDHI
    # leaves out the zero-length intervals that duplicate points give, so those are compared as a count.
    ours = np.sort(to_np(deaths).astype(np.float64))
    g = persistence_oracle.gudhi_deaths(d.astype(np.float64))
    g = g[g > 0]
    assert np.count_nonzero(ours == 0) == d.shape[0] - 1 - g.size
    np.testing.assert_allclose(ours[ours > 0], g, rtol=1e-12, atol=0)


def test_persistence_pairs_vs_ripser(rng):
    need(persistence_oracle, "gudhi")
    if __import__("shutil").which("ripser") is None:
        need(None, "the ripser program")
    d = torch_dist(rng.standard_normal((12, 3)))
    _, deaths = topofr.persistence_pairs(d)
    # Oracle: the ripser program (persistence_oracle.ripser_deaths; it prints ~7 significant digits).
    np.testing.assert_allclose(np.sort(deaths), persistence_oracle.ripser_deaths("ripser", d), rtol=1e-5)


def test_persistence_pairs_batched_is_per_matrix(rng, fw, dtype):
    cases = tie_cases(rng)
    mats = np.stack([cases["duplicates"], torch_dist(rng.standard_normal((8, 2))),
                     torch_dist(np.repeat(rng.standard_normal((4, 2)), 2, axis=0))]).astype(dtype)
    pairs, deaths = topofr.persistence_pairs(to_fw(mats, fw))
    assert tuple(pairs.shape) == (3, 7, 2) and tuple(deaths.shape) == (3, 7)
    for b in range(3):  # Oracle: reference.kruskal_pairs per matrix.
        ref_pairs, ref_deaths = reference.kruskal_pairs(mats[b].astype(np.float64), with_deaths=True)
        np.testing.assert_array_equal(to_np(pairs)[b], ref_pairs)
        np.testing.assert_array_equal(to_np(deaths)[b].astype(np.float64), ref_deaths)
    nod = topofr.persistence_pairs(to_fw(mats, fw), with_deaths=False)
    assert nod.deaths is None
    np.testing.assert_array_equal(to_np(nod.pairs), to_np(pairs))


@pytest.mark.parametrize("batched", [False, True])
def test_persistence_pairs_from_points(rng, fw, dtype, batched):
    clouds = np.stack([separated_points(rng, 9, 3) for _ in range(3)])
    pts = clouds if batched else clouds[0]
    r = topofr.persistence_pairs_from_points(to_fw(pts, fw, dtype), scale=2.0)
    check_kind(r.pairs, fw, "int32")
    check_kind(r.deaths, fw, dtype)
    assert tuple(r.pairs.shape) == pts.shape[:-1][:-1] + (8, 2)
    pb, db = (to_np(r.pairs), to_np(r.deaths)) if batched else (to_np(r.pairs)[None], to_np(r.deaths)[None])
    for b in range(pb.shape[0]):
        # Oracle: reference.kruskal_pairs on isa_oracle.distance_matrix / scale (distances well separated,
        # so float32 rounding cannot reorder them).
        ref_pairs, ref_deaths = reference.kruskal_pairs(torch_dist(clouds[b], 2.0), with_deaths=True)
        np.testing.assert_array_equal(pb[b], ref_pairs)
        np.testing.assert_allclose(db[b], ref_deaths, **tol(dtype, 2))
    # Consistency (docs/api.md: equal to the two calls in sequence), bit for bit.
    seq = topofr.persistence_pairs(topofr.pairwise_distances(to_fw(pts, fw, dtype), scale=2.0))
    np.testing.assert_array_equal(to_np(seq.pairs), to_np(r.pairs))
    np.testing.assert_array_equal(to_np(seq.deaths), to_np(r.deaths))


def test_persistence_from_points_duplicates(fw):
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    r = topofr.persistence_pairs_from_points(to_fw(pts, fw, "float64"))
    ref_pairs, ref_deaths = reference.kruskal_pairs(torch_dist(pts), with_deaths=True)  # Oracle: Kruskal
    np.testing.assert_array_equal(to_np(r.pairs), ref_pairs)
    np.testing.assert_allclose(to_np(r.deaths), ref_deaths, rtol=1e-15)


def test_empty_batch(fw):
    # B = 0 is a clean no-op: empty outputs of the right shape (documented here; docs/api.md names no error).
    pts = to_fw(np.empty((0, 5, 3)), fw, "float64")
    assert tuple(topofr.pairwise_distances(pts).shape) == (0, 5, 5)
    r = topofr.persistence_pairs_from_points(pts)
    assert tuple(r.pairs.shape) == (0, 4, 2) and tuple(r.deaths.shape) == (0, 4)
    r = topofr.persistence_pairs(to_fw(np.empty((0, 5, 5)), fw, "float64"))
    assert tuple(r.pairs.shape) == (0, 4, 2)
    im = topofr.rsp_perturb(to_fw(np.empty((0, 3, 4, 4)), fw, "float32"), probability=1.0)
    assert tuple(im.images.shape) == (0, 3, 4, 4) and tuple(im.kinds.shape) == (0,)


# ---- gather / scatter --------------------------------------------------------------------------------------
def test_gather_pairs(rng, fw, dtype):
    d = torch_dist(rng.standard_normal((6, 3))).astype(dtype)
    pairs = np.array([[0, 1], [2, 5], [0, 1], [3, 4]], dtype=np.int32)
    v = topofr.gather_pairs(to_fw(d, fw), to_fw(pairs, fw))
    check_kind(v, fw, dtype)
    np.testing.assert_array_equal(to_np(v), d[pairs[:, 0], pairs[:, 1]])  # Oracle: NumPy fancy indexing


def test_scatter_pairs_add_accumulates(rng, fw, dtype):
    pairs = np.array([[0, 1], [2, 5], [0, 1], [3, 4], [0, 1]], dtype=np.int32)
    vals = rng.standard_normal(5).astype(dtype)
    g0 = rng.standard_normal((6, 6)).astype(dtype)
    g = to_fw(g0, fw)
    p0 = ptr(g)
    r = topofr.scatter_pairs_add(to_fw(pairs, fw), to_fw(vals, fw), g)
    assert r is g and ptr(g) == p0
    expect = g0.copy()
    np.add.at(expect, (pairs[:, 0], pairs[:, 1]), vals)  # Oracle: np.add.at (repeated pairs accumulate)
    np.testing.assert_allclose(to_np(g), expect, **tol(dtype, 4))


# ---- ISA ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def isa_case(tmp_path_factory):
    rng = np.random.default_rng(7)
    x = separated_points(rng, 10, 6)
    z = separated_points(rng, 10, 3)
    return x, z, run_isa_oracle(tmp_path_factory.mktemp("isa"), x, z, 1.7, 0.8)


VARIANTS = ["symmetric", "sorted_deaths"]
REDUCTIONS = ["sum", "mean"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_isa_loss_from_points(isa_case, fw, dtype, variant, reduction):
    x, z, o = isa_case
    r = topofr.isa_loss_from_points(to_fw(x, fw, dtype), to_fw(z, fw, dtype), variant=variant,
                                    reduction=reduction, x_scale=1.7, z_scale=0.8, grad_z=True, grad_x=True)
    vi, ri = VARIANTS.index(variant), REDUCTIONS.index(reduction)
    check_kind(r.grad_z, fw, dtype)
    check_kind(r.grad_x, fw, dtype)
    # Oracle: isa_oracle.py (float64 torch autograd of the released TopologicalSignatureDistance).
    assert r.loss == pytest.approx(o["loss"][vi, ri], rel=1e-4 if dtype == "float32" else 1e-10)
    gscale = np.abs(o["grad_z"][vi, ri]).max()
    np.testing.assert_allclose(to_np(r.grad_z), o["grad_z"][vi, ri], **tol(dtype, gscale))
    np.testing.assert_allclose(to_np(r.grad_x), o["grad_x"][vi, ri], **tol(dtype, gscale))
    only_z = topofr.isa_loss_from_points(to_fw(x, fw, dtype), to_fw(z, fw, dtype), variant=variant,
                                         reduction=reduction, x_scale=1.7, z_scale=0.8)
    assert only_z.grad_x is None
    np.testing.assert_array_equal(to_np(only_z.grad_z), to_np(r.grad_z))


def test_isa_loss_from_points_image_batch(tmp_path, rng, fw, dtype):
    n, c, h, w = 8, 3, 4, 5
    x = separated_points(rng, n, c * h * w).reshape(n, c, h, w)
    z = separated_points(rng, n, 4)
    s = topofr.image_scale(c, h, w)
    o = run_isa_oracle(tmp_path, x, z, s, 1.0)  # Oracle: isa_oracle.py with X_SCALE = sqrt(4 C H W)
    for vi, variant in enumerate(VARIANTS):
        r = topofr.isa_loss_from_points(to_fw(x, fw, dtype), to_fw(z, fw, dtype), variant=variant, x_scale=s,
                                        grad_x=True)
        assert tuple(r.grad_x.shape) == (n, c, h, w)
        check_kind(r.grad_x, fw, dtype)
        assert r.loss == pytest.approx(o["loss"][vi, 1], rel=1e-4 if dtype == "float32" else 1e-10)
        gscale = max(np.abs(o["grad_z"][vi, 1]).max(), 1e-3)
        np.testing.assert_allclose(to_np(r.grad_z), o["grad_z"][vi, 1], **tol(dtype, gscale))
        np.testing.assert_allclose(to_np(r.grad_x).reshape(n, -1), o["grad_x"][vi, 1], **tol(dtype, gscale))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_isa_loss_dist(isa_case, fw, dtype, variant, reduction):
    x, z, o = isa_case
    dx, dz = torch_dist(x, 1.7).astype(dtype), torch_dist(z, 0.8).astype(dtype)
    vi, ri = VARIANTS.index(variant), REDUCTIONS.index(reduction)
    for given_pairs in (False, True):
        px = to_fw(o["pairs_x"].astype(np.int32), fw) if given_pairs else None
        pz = to_fw(o["pairs_z"].astype(np.int32), fw) if given_pairs else None
        r = topofr.isa_loss(to_fw(dx, fw), to_fw(dz, fw), px, pz, variant=variant, reduction=reduction,
                            grad_dist_x=True)
        # Oracle: isa_oracle.py's loss (same distances, its own Kruskal pairs).
        assert r.loss == pytest.approx(o["loss"][vi, ri], rel=1e-4 if dtype == "float32" else 1e-10)
        gz, gx = to_np(r.grad_dist_z).astype(np.float64), to_np(r.grad_dist_x).astype(np.float64)
        check_kind(r.grad_dist_z, fw, dtype)
        # Oracle: the chain rule through isa_oracle's distance matrix must give its grad_z:
        # dL/dz_i = sum_(u,v) G[u, v] (z_u - z_v) / (||z_u - z_v|| z_scale^2) with signs for i = u, v.
        for g, pts, s, key in ((gz, z, 0.8, "grad_z"), (gx, x, 1.7, "grad_x")):
            nz = np.argwhere(g != 0)
            assert np.all(nz[:, 0] < nz[:, 1])  # docs: upper triangle at the pairs only
            chain = np.zeros_like(pts)
            for u, v in nz:
                e = (pts[u] - pts[v]) / (np.linalg.norm(pts[u] - pts[v]) * s)
                chain[u] += g[u, v] * e / 1.0
                chain[v] -= g[u, v] * e / 1.0
            ref = o[key][vi, ri]
            np.testing.assert_allclose(chain, ref, **tol(dtype, np.abs(ref).max()))


# ---- GUM / SDS ---------------------------------------------------------------------------------------------
def entropies(rng, n=64):
    e = rng.gamma(2.0, 0.5, n)
    e[::7] += 4.0  # a hard-sample tail
    return e


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize("mode", ["reference", "robust"])
def test_gum_fit(rng, fw, dtype, symmetrize, mode):
    e = entropies(rng).astype(dtype)
    r = topofr.gum_fit(to_fw(e, fw), mode=mode, symmetrize=symmetrize)
    check_kind(r.hard_posterior, fw, dtype)
    # Oracle: reference.gauss_unif (the released GUM.py EM in NumPy); robust == reference on well-posed data.
    h, pi, sigma, c, it, conv, div = reference.gauss_unif(e.astype(np.float64), symmetrize=symmetrize)
    assert div == -1
    np.testing.assert_allclose(to_np(r.hard_posterior), h, **tol(dtype))
    assert r.pi == pytest.approx(pi, rel=1e-9) and r.sigma == pytest.approx(sigma, rel=1e-9)
    assert r.c == pytest.approx(c, rel=1e-9)
    assert (r.iterations, r.converged) == (it, conv)
    assert isinstance(r.iterations, int) and isinstance(r.converged, bool)


def test_gum_fit_max_iter_tol(rng):
    e = entropies(rng)
    r = topofr.gum_fit(e, max_iter=3, tol=1e-12)
    h, pi, sigma, c, it, conv, _ = reference.gauss_unif(e, max_iter=3, tol=1e-12)  # Oracle: gauss_unif
    assert (r.iterations, r.converged) == (3, False) == (it, conv)
    np.testing.assert_allclose(r.hard_posterior, h, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("symmetrize", [True, False])
@pytest.mark.parametrize("n", [1, 2, 8])
def test_gum_fit_all_equal(symmetrize, n):
    # Degenerate: all-equal entropies give a clean finite result (docs: errors only for empty/non-finite
    # input); it matches the oracle reference.gauss_unif.
    e = np.full(n, 0.3)
    r = topofr.gum_fit(e, symmetrize=symmetrize)
    h, pi, sigma, c, it, conv, div = reference.gauss_unif(e, symmetrize=symmetrize)
    assert div == -1 and np.all(np.isfinite(r.hard_posterior))
    np.testing.assert_allclose(r.hard_posterior, h, rtol=1e-9, atol=1e-12)
    assert (r.pi, r.iterations, r.converged) == (pytest.approx(pi), it, conv)


def test_gum_fit_mixed_precision_out(rng):
    e = entropies(rng)
    out = np.empty(e.shape, np.float32)
    r = topofr.gum_fit(e, out=out)
    assert r.hard_posterior is out
    np.testing.assert_allclose(out, reference.gauss_unif(e)[0], **tol("float32"))  # Oracle: gauss_unif


@pytest.mark.parametrize("focal", [True, False])
@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_sds_weights(rng, fw, dtype, focal, lam):
    h = rng.random(10).astype(dtype)
    p = rng.random(10).astype(dtype)
    w = topofr.sds_weights(to_fw(h, fw), to_fw(p, fw), lambda_=lam, focal=focal)
    check_kind(w, fw, dtype)
    # Oracle: docs/api.md / objective_oracle.py's omega = (1 + h)^lambda (1 - p_gt) (focal) or (1 + h)^lambda.
    hd, pd = h.astype(np.float64), p.astype(np.float64)
    expect = (1 + hd) ** lam * ((1 - pd) if focal else 1.0)
    np.testing.assert_allclose(to_np(w), expect, **tol(dtype, 2))
    if not focal:  # p_gt may be omitted without the focal term
        np.testing.assert_array_equal(to_np(topofr.sds_weights(to_fw(h, fw), None, lambda_=lam, focal=False)),
                                      to_np(w))


# ---- combined-margin head ----------------------------------------------------------------------------------
MARGINS = {"arcface": topofr.CombinedMargin.arcface(64.0, 0.5), "cosface": topofr.CombinedMargin.cosface(30.0, 0.35),
           "combined": topofr.CombinedMargin(32.0, 0.9, 0.4, 0.15)}


@pytest.fixture(scope="module")
def head_case():
    rng = np.random.default_rng(11)
    n, c = 12, 9
    cos = rng.uniform(-0.95, 0.95, (n, c))
    labels = rng.integers(0, c, n)
    labels[3] = -1  # target on another shard: loss 0, gradient s p
    labels[8] = topofr.ignore_label  # ignored: loss 0, zero gradient
    cos[0, labels[0]] = -0.9  # below the threshold (the x - m3 - sinmm branch) for the arcface margin
    cos[1, labels[1]] = 0.9
    return cos, labels, rng.random(n) + 0.5, rng.standard_normal((n, c))


@pytest.mark.parametrize("margin", list(MARGINS))
@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_margin_head(tmp_path, head_case, fw, dtype, margin, label_dtype):
    cos, labels, weights, gup = head_case
    m = MARGINS[margin]
    cosr = cos.astype(dtype)
    # Oracle: arcface_oracle.run (insightface's ArcFace generalised, float64 torch autograd).
    o = arcface(tmp_path, cosr, labels, m, eps=1e-5, grad_scale=1 / 12, weights=weights, gup=gup)
    c, y = to_fw(cosr, fw), to_fw(labels, fw, label_dtype)
    s = m.s
    lg = topofr.margin_logits(c, y, m)
    check_kind(lg, fw, dtype)
    np.testing.assert_allclose(to_np(lg), o["logits"], **tol(dtype, s))
    gl = topofr.margin_logits_backward(c, y, to_fw(gup, fw, dtype), m)
    check_kind(gl, fw, dtype)
    np.testing.assert_allclose(to_np(gl), o["glogits"], **tol(dtype, 10 * s))
    f = topofr.margin_ce_forward(c, y, m, entropy_eps=1e-5)
    for got, key in zip(f, ("loss", "entropy", "pgt", "lse")):
        check_kind(got, fw, dtype)
        np.testing.assert_allclose(to_np(got), o[key], **tol(dtype, 10 * s))
    assert np.all(to_np(f.loss)[[3, 8]] == 0) and np.all(to_np(f.p_gt)[[3, 8]] == 0)  # docs: labels -1, -100
    g = topofr.margin_ce_backward(c, y, f.lse, to_fw(weights, fw, dtype), m, grad_scale=1 / 12)
    check_kind(g, fw, dtype)
    np.testing.assert_allclose(to_np(g), o["grad"], **tol(dtype, s))
    assert np.all(to_np(g)[8] == 0)  # ignore_label: no gradient
    # label -1: weights * grad_scale * s * p (Oracle: softmax of the plain logits in float64, written here)
    z = s * cos[3].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(to_np(g)[3], weights[3] / 12 * s * p, **tol(dtype, s))
    assert to_np(g)[3].max() > 0
    # weights None means all 1: Oracle arcface_oracle with unit weights.
    o1 = arcface(tmp_path, cosr, labels, m, grad_scale=1.0, tag="unit")
    g1 = topofr.margin_ce_backward(c, y, f.lse, None, m)
    np.testing.assert_allclose(to_np(g1), o1["grad"], **tol(dtype, s))


@pytest.mark.parametrize("margin", ["arcface", "combined"])
def test_margin_head_straight_through(tmp_path, head_case, fw, dtype, margin):
    # straight_through=True: the target column's gradient is s (arcface_torch applies the margin under
    # torch.no_grad()); the forward is the exact head's. Oracle: arcface_oracle.py --straight-through, float64
    # torch autograd of logits = s (cos + (margin(cos) - cos).detach()).
    cos, labels, weights, gup = head_case
    exact = MARGINS[margin]
    m = exact._replace(straight_through=True)
    assert tuple(m)[:4] == tuple(exact)[:4] and m.straight_through and not exact.straight_through
    cosr = cos.astype(dtype)
    o = arcface(tmp_path, cosr, labels, m, eps=1e-5, grad_scale=1 / 12, weights=weights, gup=gup,
                straight_through=True)
    oe = arcface(tmp_path, cosr, labels, exact, eps=1e-5, grad_scale=1 / 12, weights=weights, gup=gup, tag="e")
    c, y, s = to_fw(cosr, fw), to_fw(labels, fw), m.s
    f = topofr.margin_ce_forward(c, y, m)
    fe = topofr.margin_ce_forward(c, y, exact)
    for got, want in zip(f, fe):  # the forward is the same code: bitwise equal
        np.testing.assert_array_equal(to_np(got), to_np(want))
    for got, key in zip(f, ("loss", "entropy", "pgt", "lse")):
        np.testing.assert_allclose(to_np(got), o[key], **tol(dtype, 10 * s))
    np.testing.assert_allclose(to_np(topofr.margin_logits(c, y, m)), o["logits"], **tol(dtype, s))
    gl = topofr.margin_logits_backward(c, y, to_fw(gup, fw, dtype), m)
    np.testing.assert_allclose(to_np(gl), o["glogits"], **tol(dtype, 10 * s))
    g = topofr.margin_ce_backward(c, y, f.lse, to_fw(weights, fw, dtype), m, grad_scale=1 / 12)
    np.testing.assert_allclose(to_np(g), o["grad"], **tol(dtype, s))
    # ... and differs from the exact gradient in the target columns only (rows 0 and 1 are on both branches).
    rows = [i for i in range(len(labels)) if labels[i] >= 0]
    other = np.ones_like(cos, dtype=bool)
    other[rows, labels[rows]] = False
    np.testing.assert_array_equal(o["grad"][other], oe["grad"][other])
    assert np.abs(o["grad"] - oe["grad"]).max() > 1e-3
    # a plain 5-tuple is a CombinedMargin, and the 4-field spelling stays the exact gradient
    np.testing.assert_array_equal(to_np(topofr.margin_ce_backward(c, y, f.lse, None, tuple(m))),
                                  to_np(topofr.margin_ce_backward(c, y, f.lse, None, m)))
    np.testing.assert_array_equal(to_np(topofr.margin_ce_backward(c, y, f.lse, None, tuple(exact)[:4])),
                                  to_np(topofr.margin_ce_backward(c, y, f.lse, None, exact)))


def test_objective_straight_through(tmp_path, head_case):
    # The objective's options carry the switch to C++: with ISA and SDS off, dL/dcos is the head's mean gradient.
    # Oracle: arcface_oracle.py --straight-through (grad_scale 1/N, unit weights).
    cos, labels, _, _ = head_case
    labels = np.where(labels == -1, 0, labels)  # the objective's head: any label; keep a plain batch
    m = topofr.CombinedMargin.arcface(straight_through=True)
    o = arcface(tmp_path, cos, labels, m, grad_scale=1 / len(labels), straight_through=True)
    obj = topofr.Objective(topofr.ObjectiveOptions(margin=m, use_isa=False, use_sds=False))
    z = np.random.default_rng(1).standard_normal((len(labels), 4))
    r = obj(z, z, cos, labels)
    np.testing.assert_allclose(r.grad_cos, o["grad"], rtol=1e-9, atol=1e-11 * 64)


def test_ignore_label_is_the_cpp_constant(fw):
    # Oracle: PyTorch's default ignore_index, and the C++ constant topofr::ignore_label as the extension exports it.
    assert topofr.ignore_label == -100 == topofr._core.ignore_label and "ignore_label" in topofr.__all__
    import torch.nn.functional as F
    import inspect
    assert inspect.signature(F.cross_entropy).parameters["ignore_index"].default == topofr.ignore_label


def test_partial_fc_shards(fw, dtype):
    # insightface Partial FC (recognition/arcface_torch/partial_fc_v2.py): on each shard the labels of other
    # shards' classes are -1, the softmax is normalised over all shards (the lse all-reduced), and the local
    # gradient is p - [j = y] scaled by 1/B. Oracle: torch autograd of F.cross_entropy on the whole (B, C)
    # matrix (mean over B), float64; the shards' gradients, concatenated, must equal it.
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(5)
    n, c, s = 10, 12, 16.0
    cos = rng.uniform(-0.9, 0.9, (n, c))
    labels = rng.integers(0, c, n)
    m = topofr.CombinedMargin.cosface(s, 0.2)
    ct = torch.tensor(cos, dtype=torch.float64, requires_grad=True)
    onehot = F.one_hot(torch.tensor(labels), c).bool()
    logits = s * torch.where(onehot, ct - 0.2, ct)
    F.cross_entropy(logits, torch.tensor(labels)).backward()
    bounds = [0, 5, 12]
    lses, local = [], []
    for k in range(2):
        lo, hi = bounds[k], bounds[k + 1]
        y = np.where((labels >= lo) & (labels < hi), labels - lo, -1)
        local.append(y)
        lses.append(to_np(topofr.margin_ce_forward(to_fw(cos[:, lo:hi], fw, dtype), to_fw(y, fw), m).lse))
    glse = np.logaddexp(lses[0].astype(np.float64), lses[1]).astype(dtype)
    g = np.concatenate([to_np(topofr.margin_ce_backward(to_fw(cos[:, bounds[k]:bounds[k + 1]], fw, dtype),
                                                        to_fw(local[k], fw), to_fw(glse, fw), None, m,
                                                        grad_scale=1 / n)) for k in range(2)], axis=1)
    np.testing.assert_allclose(g, ct.grad.numpy(), **tol(dtype, s))


def test_margin_ce_forward_optional_outputs(head_case, fw):
    cos, labels, _, _ = head_case
    c, y = to_fw(cos, fw, "float64"), to_fw(labels, fw)
    full = topofr.margin_ce_forward(c, y)
    loss = to_fw(np.full(12, np.nan), fw)
    r = topofr.margin_ce_forward(c, y, out=(loss, None, None, None))
    assert r.loss is loss and r.entropy is None
    np.testing.assert_array_equal(to_np(loss), to_np(full.loss))  # consistency: same pass, fewer outputs


# ---- RSP ---------------------------------------------------------------------------------------------------
KIND = {"none": -1, "blur": 0, "grayscale": 1, "color_jitter": 2, "erasing": 3}


def plan_row(d):
    return [KIND[d["kind"]], d["sigma"], d["brightness"], d["contrast"], d["saturation"], d["hue"], *d["order"],
            d["top"], d["left"], d["height"], d["width"]]


@pytest.mark.parametrize("channels", [3, 1])
def test_rsp_perturb_vs_torchvision(rng, fw, dtype, channels):
    need(rsp_oracle, "torchvision")
    n, h, w = 16, 12, 10
    im = rng.uniform(-1, 1, (n, channels, h, w)).astype(dtype)
    r = topofr.rsp_perturb(to_fw(im, fw), probability=0.9, seed=3, step=5)
    check_kind(r.images, fw, dtype)
    check_kind(r.kinds, fw, "int32")
    plans = [topofr.rsp_draw(i, channels, h, w, probability=0.9, seed=3, step=5) for i in range(n)]
    np.testing.assert_array_equal(to_np(r.kinds), [KIND[p["kind"]] for p in plans])
    assert len(set(to_np(r.kinds).tolist())) >= 4  # the case covers most kinds
    # Oracle: rsp_oracle.apply (torchvision 0.14's functional transforms) on each sample's drawn plan.
    x = torch.from_numpy(im)
    expect = torch.stack([rsp_oracle.apply(x[i], np.array(plan_row(plans[i]), dtype=np.float64))
                          for i in range(n)]).numpy()
    # torchvision builds the blur kernel in float32 even for float64 images: the C++ tests' tolerances
    # (tests/test_rsp.cpp: 1e-6 absolute for double, 1e-5 for float).
    np.testing.assert_allclose(to_np(r.images), expect, rtol=0, atol=1e-6 if dtype == "float64" else 1e-5)


def test_rsp_determinism_and_inplace(rng, fw):
    im = rng.uniform(-1, 1, (12, 3, 8, 8)).astype(np.float32)
    a = topofr.rsp_perturb(to_fw(im, fw), probability=1.0, seed=9, step=2)
    b = topofr.rsp_perturb(to_fw(im, fw), probability=1.0, seed=9, step=2)
    np.testing.assert_array_equal(to_np(a.images), to_np(b.images))
    np.testing.assert_array_equal(to_np(a.kinds), to_np(b.kinds))
    c = topofr.rsp_perturb(to_fw(im, fw), probability=1.0, seed=9, step=3)
    assert not np.array_equal(to_np(a.images), to_np(c.images))  # another step, another stream
    src = to_fw(im, fw)
    p0 = ptr(src)
    d = topofr.rsp_perturb(src, probability=1.0, seed=9, step=2, inplace=True)
    assert d.images is src and ptr(src) == p0
    np.testing.assert_array_equal(to_np(src), to_np(a.images))
    # not in place: the input is left alone
    src2 = to_fw(im, fw)
    topofr.rsp_perturb(src2, probability=1.0, seed=9, step=2)
    np.testing.assert_array_equal(to_np(src2), im)
    # probability 0: nothing changes
    z = topofr.rsp_perturb(to_fw(im, fw), probability=0.0)
    np.testing.assert_array_equal(to_np(z.images), im)
    assert np.all(to_np(z.kinds) == -1)


# ---- the objective -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def objective_problem():
    rng = np.random.default_rng(21)
    n, dx, dz, classes = 16, 6, 4, 10
    x = separated_points(rng, n, dx)
    z = separated_points(rng, n, dz)
    w = rng.standard_normal((classes, dz))
    cos = np.clip((z / np.linalg.norm(z, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1,
                                                                                        keepdims=True)).T,
                  -1, 1)
    labels = rng.integers(0, classes, n)
    cos[::3, :][np.arange(len(cos[::3])), labels[::3]] = 0.0
    for i in range(0, n, 3):
        cos[i, labels[i]] = 0.6 + 0.01 * (i % 7)
    return x, z, cos, labels


OBJECTIVE_CASES = {
    "paper": (lambda: topofr.ObjectiveOptions.paper(), ("symmetric", True, True, True)),
    "released_code": (lambda: topofr.ObjectiveOptions.released_code(), ("sorted_deaths", False, True, True)),
    "no_isa": (lambda: topofr.ObjectiveOptions(use_isa=False, alpha=0.3), ("symmetric", True, True, False)),
    "no_sds_scaled": (lambda: topofr.ObjectiveOptions(use_sds=False, alpha=0.5,
                                                      isa=topofr.ISAOptions(x_scale=2.0, z_scale=0.5)),
                      ("symmetric", True, False, True)),
}


@pytest.fixture(scope="module")
def objective_oracle_results(objective_problem, tmp_path_factory):
    x, z, cos, labels = objective_problem
    res = {}
    for name, (make, (variant, focal, sds, isa)) in OBJECTIVE_CASES.items():
        o = make()
        d = tmp_path_factory.mktemp("obj_" + name)
        for k, a in (("x", x), ("z", z), ("cos", cos), ("labels", labels)):
            np.save(d / f"{k}.npy", a)
        run_oracle("objective_oracle.py", [d, repr(o.alpha), repr(o.margin.s), repr(o.margin.m2), variant,
                                           int(focal), int(sds), int(isa), repr(o.isa.x_scale),
                                           repr(o.isa.z_scale)])
        res[name] = {k: np.load(d / f"{k}.npy") for k in ("grad_z", "grad_cos", "omega", "hard", "entropy",
                                                         "stats")}
    return res


@pytest.mark.parametrize("case", list(OBJECTIVE_CASES))
def test_objective(objective_problem, objective_oracle_results, fw, dtype, case):
    x, z, cos, labels = objective_problem
    o = objective_oracle_results[case]  # Oracle: objective_oracle.py (float64 torch autograd, NumPy GUM EM)
    obj = topofr.Objective(OBJECTIVE_CASES[case][0]())
    for _ in range(2):  # buffers reused between calls: same result
        r = obj(to_fw(x, fw, dtype), to_fw(z, fw, dtype), to_fw(cos, fw, dtype), to_fw(labels, fw))
        loss, loss_cls, l_sa, pi, sigma, hard_fraction = o["stats"]
        rel = 2e-4 if dtype == "float32" else 1e-9
        assert r.loss == pytest.approx(loss, rel=rel)
        assert r.loss_cls == pytest.approx(loss_cls, rel=rel)
        assert r.discrepancy == pytest.approx(l_sa, rel=rel, abs=1e-12)
        if OBJECTIVE_CASES[case][1][2]:
            assert r.pi == pytest.approx(pi, rel=1e-3 if dtype == "float32" else 1e-8)
        assert r.hard_fraction == pytest.approx(hard_fraction)
        for got, key, scale in ((r.grad_z, "grad_z", None), (r.grad_cos, "grad_cos", None),
                                (r.weights, "omega", 2), (r.hard_posterior, "hard", 1), (r.entropy, "entropy", 3)):
            check_kind(got, fw, dtype)
            ref = o[key]
            s = scale or max(np.abs(ref).max(), 1e-6)
            t = tol(dtype, s) if dtype == "float64" else dict(rtol=2e-3, atol=2e-3 * s)
            np.testing.assert_allclose(to_np(got), ref, **t)


def test_objective_image_batch_and_out(rng, fw):
    # Oracle: objective_oracle.py reads x as (n, C*H*W); an (n, C, H, W) batch with x_scale = image_scale.
    n, c, h, w, classes = 8, 3, 2, 3, 5
    x = separated_points(rng, n, c * h * w)
    z = separated_points(rng, n, 3)
    cos = rng.uniform(-0.8, 0.8, (n, classes))
    labels = rng.integers(0, classes, n)
    s = topofr.image_scale(c, h, w)
    opts = topofr.ObjectiveOptions.released_code(isa=topofr.ISAOptions(x_scale=s))
    opts.isa.variant = "sorted_deaths"
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        for k, a in (("x", x), ("z", z), ("cos", cos), ("labels", labels)):
            np.save(Path(d) / f"{k}.npy", a)
        run_oracle("objective_oracle.py", [d, "0.1", "64.0", "0.5", "sorted_deaths", 0, 1, 1, repr(s), "1.0"])
        stats = np.load(Path(d) / "stats.npy")
        gz_ref, gc_ref = np.load(Path(d) / "grad_z.npy"), np.load(Path(d) / "grad_cos.npy")
    gz, gc = to_fw(np.zeros((n, 3)), fw), to_fw(np.zeros((n, classes)), fw)
    pz, pc = ptr(gz), ptr(gc)
    r = topofr.Objective(opts)(to_fw(x.reshape(n, c, h, w), fw, "float64"), to_fw(z, fw), to_fw(cos, fw),
                               to_fw(labels, fw, "int32"), out=(gz, gc))
    assert r.grad_z is gz and r.grad_cos is gc and ptr(gz) == pz and ptr(gc) == pc
    assert r.loss == pytest.approx(stats[0], rel=1e-9)
    np.testing.assert_allclose(to_np(gz), gz_ref, **tol("float64", np.abs(gz_ref).max()))
    np.testing.assert_allclose(to_np(gc), gc_ref, **tol("float64", np.abs(gc_ref).max()))


# ---- zero copy ---------------------------------------------------------------------------------------------
def test_out_is_written_in_place(rng, fw, dtype):
    p = rng.standard_normal((7, 3))
    out = to_fw(np.full((7, 7), -1.0), fw, dtype)
    p0 = ptr(out)
    r = topofr.pairwise_distances(to_fw(p, fw, dtype), out=out)
    assert r is out and ptr(out) == p0
    np.testing.assert_allclose(to_np(out), torch_dist(p.astype(dtype)), **tol(dtype, 4))  # Oracle: torch.norm
    d = to_np(out).astype(np.float64)
    pairs = to_fw(np.full((6, 2), -7), fw, "int32")
    deaths = to_fw(np.full(6, -1.0), fw, dtype)
    pp, pd = ptr(pairs), ptr(deaths)
    r = topofr.persistence_pairs(out, out=(pairs, deaths))
    assert r.pairs is pairs and r.deaths is deaths and ptr(pairs) == pp and ptr(deaths) == pd
    np.testing.assert_array_equal(to_np(pairs), reference.kruskal_pairs(d))  # Oracle: Kruskal
    vals = to_fw(np.zeros(6), fw, dtype)
    pv = ptr(vals)
    assert topofr.gather_pairs(out, pairs, out=vals) is vals and ptr(vals) == pv
    np.testing.assert_array_equal(to_np(vals), to_np(deaths))
    gz = to_fw(np.full((7, 2), np.nan), fw, dtype)
    pg = ptr(gz)
    r = topofr.isa_loss_from_points(to_fw(p, fw, dtype), to_fw(p[:, :2], fw, dtype), out=(gz, None))
    assert r.grad_z is gz and ptr(gz) == pg and np.all(np.isfinite(to_np(gz)))
    # margin head outputs
    cos = rng.uniform(-0.9, 0.9, (5, 4))
    y = np.array([0, 1, -1, 3, 2])
    outs = tuple(to_fw(np.zeros(5), fw, dtype) for _ in range(4))
    ptrs = [ptr(a) for a in outs]
    f = topofr.margin_ce_forward(to_fw(cos, fw, dtype), to_fw(y, fw), out=outs)
    assert all(a is b for a, b in zip(f, outs)) and [ptr(a) for a in outs] == ptrs
    g = to_fw(np.zeros((5, 4)), fw, dtype)
    pg = ptr(g)
    assert topofr.margin_ce_backward(to_fw(cos, fw, dtype), to_fw(y, fw), f.lse, out=g) is g and ptr(g) == pg
    assert np.any(to_np(g) != 0)


def test_out_with_leading_dimension(rng, fw):
    # An output that is a row-strided view of a bigger array is written through the view, not a copy.
    p = rng.standard_normal((6, 3))
    big = to_fw(np.full((6, 10), 5.0), fw, "float64")
    view = big[:, 2:8]
    r = topofr.pairwise_distances(to_fw(p, fw), out=view)
    assert r is view
    bn = to_np(big)
    np.testing.assert_allclose(bn[:, 2:8], torch_dist(p), rtol=1e-12, atol=1e-14)  # Oracle: torch.norm
    assert np.all(bn[:, :2] == 5.0) and np.all(bn[:, 8:] == 5.0)  # nothing outside the view touched
    # an (n, C, H, W) gradient written into a leading-dimension view of a bigger batch
    x = separated_points(rng, 5, 12).reshape(5, 3, 2, 2)
    z = separated_points(rng, 5, 2)
    gbig = to_fw(np.zeros((10, 3, 2, 2)), fw, "float64")
    gv = gbig[::2]
    r = topofr.isa_loss_from_points(to_fw(x, fw), to_fw(z, fw), grad_x=True, out=(None, gv))
    ref = topofr.isa_loss_from_points(to_fw(x, fw), to_fw(z, fw), grad_x=True).grad_x  # consistency
    np.testing.assert_array_equal(to_np(gbig)[::2], to_np(ref))
    assert np.all(to_np(gbig)[1::2] == 0)


def test_strided_inputs_are_read_in_place(rng, fw, dtype):
    big = rng.standard_normal((8, 11))
    bigf = to_fw(big, fw, dtype)
    sub = bigf[:, 1:5]  # a row stride of 11: read through the view (the C++ views take a leading dimension)
    d = topofr.pairwise_distances(sub)
    np.testing.assert_allclose(to_np(d), torch_dist(big[:, 1:5].astype(dtype)), **tol(dtype, 4))  # Oracle
    # batched leading-dimension view: (B, n, d) out of (n, B, d)
    b3 = rng.standard_normal((6, 3, 4))
    v = to_fw(b3, fw, dtype).transpose(0, 1) if fw == "torch" else to_fw(b3, fw, dtype).transpose(1, 0, 2)
    r = topofr.persistence_pairs_from_points(v)
    for b in range(3):  # Oracle: Kruskal on torch.norm distances (well separated with this seed)
        np.testing.assert_array_equal(to_np(r.pairs)[b], reference.kruskal_pairs(torch_dist(b3[:, b])))
    # a strided last axis is read from a private copy, and still right
    d2 = topofr.pairwise_distances(bigf[:, ::2])
    np.testing.assert_allclose(to_np(d2), torch_dist(big[:, ::2].astype(dtype)), **tol(dtype, 4))
    # a broadcast input (stride 0)
    row = rng.standard_normal(3)
    bc = np.broadcast_to(row, (4, 3)).astype(dtype, copy=False)
    assert np.all(topofr.pairwise_distances(bc) == 0)


def test_no_copy_of_row_strided_input(rng):
    # The extension sees the caller's memory: mutating it between two calls changes the result, and the
    # view's data pointer is what _core receives (the Python layer makes no copy of a row-strided input).
    big = rng.standard_normal((6, 9))
    sub = big[:, :3]
    assert topofr._input(sub, "points") is sub
    t = torch.from_numpy(big.copy())[:, :3]
    assert topofr._input(t, "points").data_ptr() == t.data_ptr()


def test_gum_fit_out_aliases_entropy(rng, fw, dtype):
    e0 = entropies(rng, 32).astype(dtype)
    e = to_fw(e0, fw)
    p0 = ptr(e)
    r = topofr.gum_fit(e, out=e)
    assert r.hard_posterior is e and ptr(e) == p0
    np.testing.assert_allclose(to_np(e), reference.gauss_unif(e0.astype(np.float64))[0], **tol(dtype))  # Oracle


def test_sds_out_aliases_input(rng, fw):
    h0, p0_ = rng.random(6), rng.random(6)
    h = to_fw(h0, fw, "float64")
    w = topofr.sds_weights(h, to_fw(p0_, fw, "float64"), out=h)
    assert w is h
    np.testing.assert_allclose(to_np(h), (1 + h0) * (1 - p0_), rtol=1e-15)  # Oracle: docs formula


# ---- framework interplay -----------------------------------------------------------------------------------
def test_requires_grad_and_mixed_frameworks(rng):
    p = rng.standard_normal((6, 3))
    t = torch.tensor(p, requires_grad=True)
    d = topofr.pairwise_distances(t)
    assert isinstance(d, torch.Tensor) and not d.requires_grad
    np.testing.assert_allclose(d.numpy(), torch_dist(p), rtol=1e-12, atol=1e-14)  # Oracle: torch.norm
    cos = rng.uniform(-0.9, 0.9, (5, 4))
    y = np.array([0, 1, 2, 3, 0])
    # torch cosines, NumPy labels: output in torch (the first array's framework)
    a = topofr.margin_logits(torch.tensor(cos), y)
    b = topofr.margin_logits(cos, torch.tensor(y))
    assert isinstance(a, torch.Tensor) and isinstance(b, np.ndarray)
    np.testing.assert_array_equal(a.numpy(), b)
    # a NumPy out with torch inputs
    out = np.zeros((6, 6))
    assert topofr.pairwise_distances(t, out=out) is out
    np.testing.assert_array_equal(out, d.numpy())


def test_read_only_input(rng):
    p = rng.standard_normal((5, 3))
    p.flags.writeable = False
    np.testing.assert_allclose(topofr.pairwise_distances(p), torch_dist(p), rtol=1e-12, atol=1e-14)  # Oracle
    e = entropies(rng, 16)
    e.flags.writeable = False
    np.testing.assert_allclose(topofr.gum_fit(e).hard_posterior, reference.gauss_unif(e)[0], rtol=1e-9,
                               atol=1e-12)  # Oracle: gauss_unif


def test_more_outputs_in_place(rng, fw, dtype):
    clouds = np.stack([separated_points(rng, 5, 2) for _ in range(2)])
    for pts in (clouds, clouds[0]):
        lead = pts.shape[:-2]
        pairs = to_fw(np.zeros(lead + (4, 2)), fw, "int32")
        deaths = to_fw(np.zeros(lead + (4,)), fw, dtype)
        pp, pd = ptr(pairs), ptr(deaths)
        r = topofr.persistence_pairs_from_points(to_fw(pts, fw, dtype), out=(pairs, deaths))
        assert r.pairs is pairs and r.deaths is deaths and (ptr(pairs), ptr(deaths)) == (pp, pd)
        flat_p = to_np(pairs).reshape(-1, 4, 2)
        for b, c in enumerate(pts.reshape(-1, 5, 2)):  # Oracle: Kruskal on torch.norm distances
            np.testing.assert_array_equal(flat_p[b], reference.kruskal_pairs(torch_dist(c)))
    # isa_loss's dense gradients and margin_logits(_backward) into caller arrays
    x, z = separated_points(rng, 6, 3), separated_points(rng, 6, 2)
    dx, dz = to_fw(torch_dist(x), fw, dtype), to_fw(torch_dist(z), fw, dtype)
    gz, gx = to_fw(np.full((6, 6), 9.0), fw, dtype), to_fw(np.full((6, 6), 9.0), fw, dtype)
    p1, p2 = ptr(gz), ptr(gx)
    r = topofr.isa_loss(dx, dz, out=(gz, gx))
    assert r.grad_dist_z is gz and r.grad_dist_x is gx and (ptr(gz), ptr(gx)) == (p1, p2)
    assert np.count_nonzero(to_np(gz)) <= 2 * 5 and not np.any(to_np(gz) == 9)  # docs: overwritten, sparse
    cos, y = rng.uniform(-0.9, 0.9, (4, 3)), np.array([0, 2, 1, -1])
    lo, gc = to_fw(np.zeros((4, 3)), fw, dtype), to_fw(np.zeros((4, 3)), fw, dtype)
    p1, p2 = ptr(lo), ptr(gc)
    assert topofr.margin_logits(to_fw(cos, fw, dtype), to_fw(y, fw), out=lo) is lo and ptr(lo) == p1
    assert topofr.margin_logits_backward(to_fw(cos, fw, dtype), to_fw(y, fw), to_fw(np.ones((4, 3)), fw, dtype),
                                         out=gc) is gc and ptr(gc) == p2
    np.testing.assert_allclose(to_np(lo)[3], 64 * cos[3].astype(dtype), **tol(dtype, 64))  # docs: label -1 row


def test_isa_two_points(tmp_path, fw, dtype):
    x, z = np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[1.0], [2.5]])
    o = run_isa_oracle(tmp_path, x, z)  # Oracle: isa_oracle.py at n = 2 (a single pair)
    for vi, variant in enumerate(VARIANTS):
        r = topofr.isa_loss_from_points(to_fw(x, fw, dtype), to_fw(z, fw, dtype), variant=variant,
                                        reduction="sum", grad_x=True)
        assert r.loss == pytest.approx(o["loss"][vi, 0], rel=1e-6)
        np.testing.assert_allclose(to_np(r.grad_z), o["grad_z"][vi, 0], **tol(dtype, 10))
        np.testing.assert_allclose(to_np(r.grad_x), o["grad_x"][vi, 0], **tol(dtype, 10))


def test_isa_duplicate_points_is_clean(tmp_path, fw):
    # Duplicate points: zero distances have no gradient direction; the result must be finite (a clean
    # result, docs/api.md lists no error for them) and the loss equal to the oracle's.
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = np.array([[0.0], [1.0], [1.0], [3.0]])
    r = topofr.isa_loss_from_points(to_fw(x, fw), to_fw(z, fw), grad_x=True)
    assert np.all(np.isfinite(to_np(r.grad_x))) and np.all(np.isfinite(to_np(r.grad_z)))
    with np.errstate(all="ignore"):
        o = run_isa_oracle(tmp_path, x, z)  # Oracle: isa_oracle.py's loss (its gradients are NaN at 0 here)
    assert r.loss == pytest.approx(o["loss"][0, 1], rel=1e-12)


def test_row_strided_pairs_inputs(rng, fw):
    d = torch_dist(rng.standard_normal((6, 3)))
    pairs = reference.kruskal_pairs(d).astype(np.int32)  # Oracle: Kruskal pairs, NumPy indexing below
    big = np.zeros((5, 4), np.int32)
    big[:, :2] = pairs
    bigf = to_fw(big, fw)
    sub = bigf[:, :2]
    v = topofr.gather_pairs(to_fw(d, fw), sub)
    np.testing.assert_array_equal(to_np(v), d[pairs[:, 0], pairs[:, 1]])
    g = to_fw(np.zeros((6, 6)), fw)
    topofr.scatter_pairs_add(sub, to_fw(np.ones(5), fw), g)
    expect = np.zeros((6, 6))
    np.add.at(expect, (pairs[:, 0], pairs[:, 1]), 1.0)
    np.testing.assert_array_equal(to_np(g), expect)
    r = topofr.isa_loss(to_fw(d, fw), to_fw(d, fw), sub, sub)
    assert r.loss == 0.0  # identical filtrations: no discrepancy
    np.testing.assert_array_equal(to_np(big)[:, :2], pairs)  # inputs untouched


def test_threads_release_the_gil_and_agree(rng):
    # The GIL is released while a block runs: concurrent calls must give the sequential results.
    from concurrent.futures import ThreadPoolExecutor
    cases = [(rng.standard_normal((40, 8)), rng.standard_normal((40, 4))) for _ in range(8)]
    seq = [topofr.isa_loss_from_points(x, z, grad_x=True) for x, z in cases]
    with ThreadPoolExecutor(4) as ex:
        par = list(ex.map(lambda c: topofr.isa_loss_from_points(c[0], c[1], grad_x=True), cases))
    for a, b in zip(seq, par):
        assert a.loss == b.loss
        np.testing.assert_array_equal(a.grad_z, b.grad_z)
        np.testing.assert_array_equal(a.grad_x, b.grad_x)
