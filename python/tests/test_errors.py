"""Bad arguments: a wrong dtype is a TypeError naming the argument; a wrong shape or value is topofr.Error
(a ValueError) naming it; an output that cannot be written in place is refused and left unchanged (never
silently written to a copy). Argument names in messages are those of the C++ API (docs/api.md), e.g.
pairwise_distances' out= is 'dist'."""
import math

import numpy as np
import pytest
import torch

import topofr
from conftest import to_fw, to_np


def raises_naming(exc, arg, fn, *args, **kw):
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    assert arg in str(info.value), str(info.value)
    return info.value


def test_error_is_value_error():
    assert issubclass(topofr.Error, ValueError)
    assert isinstance(topofr.has_cuda(), bool)


@pytest.fixture
def pts():
    return np.random.default_rng(3).standard_normal((6, 3))


@pytest.fixture
def head():
    rng = np.random.default_rng(4)
    return rng.uniform(-0.9, 0.9, (5, 4)), np.array([0, 1, -1, 3, 2])


# ---- dtypes: TypeError naming the argument ----------------------------------------------------------------
@pytest.mark.parametrize("bad", ["int64", "int32", "float16"])
def test_wrong_point_dtype(fw, pts, bad):
    p = to_fw(pts * 10, fw, bad)
    raises_naming(TypeError, "points", topofr.pairwise_distances, p)
    raises_naming(TypeError, "points", topofr.persistence_pairs_from_points, p)
    raises_naming(TypeError, "x", topofr.isa_loss_from_points, p, to_fw(pts, fw, "float64"))
    raises_naming(TypeError, "dist", topofr.persistence_pairs, to_fw(np.ones((4, 4)), fw, bad))


def test_wrong_dtypes_named(fw, pts, head):
    cos, y = head
    raises_naming(TypeError, "labels", topofr.margin_logits, to_fw(cos, fw), to_fw(y, fw, "float64"))
    raises_naming(TypeError, "labels", topofr.margin_ce_forward, to_fw(cos, fw), to_fw(y, fw, "float32"))
    raises_naming(TypeError, "cos", topofr.margin_logits, to_fw(cos, fw, "float16"), to_fw(y, fw))
    raises_naming(TypeError, "z", topofr.isa_loss_from_points, to_fw(pts, fw), to_fw(pts, fw, "float32"))
    raises_naming(TypeError, "entropy", topofr.gum_fit, to_fw([1, 2, 3], fw, "int64"))
    raises_naming(TypeError, "hard_posterior", topofr.sds_weights, to_fw([1, 0], fw, "int32"), None, focal=False)
    raises_naming(TypeError, "images", topofr.rsp_perturb, to_fw(np.zeros((1, 3, 4, 4)), fw, "float16"))
    d = topofr.pairwise_distances(to_fw(pts, fw))
    raises_naming(TypeError, "pairs", topofr.gather_pairs, d, to_fw([[0, 1]], fw, "int64"))
    raises_naming(TypeError, "dist", topofr.pairwise_distances, to_fw(pts, fw), out=to_fw(np.zeros((6, 6)), fw,
                                                                                           "float32"))
    raises_naming(TypeError, "x", topofr.Objective(), to_fw(pts, fw), to_fw(pts, fw), to_fw(cos[:6], fw, "float32"),
                  to_fw(y, fw))


def test_output_must_be_an_array(pts):
    raises_naming(TypeError, "out", topofr.pairwise_distances, pts, out=[[0.0] * 6] * 6)
    raises_naming(TypeError, "grad_dist", topofr.scatter_pairs_add, np.array([[0, 1]], np.int32), np.ones(1),
                  [[0.0] * 2] * 2)


# ---- shapes and values: topofr.Error naming the argument ---------------------------------------------------
def test_shapes(fw, pts, head):
    p = to_fw(pts, fw)
    raises_naming(topofr.Error, "points", topofr.pairwise_distances, to_fw(np.ones(3), fw))
    raises_naming(topofr.Error, "points", topofr.pairwise_distances, to_fw(np.ones((0, 3)), fw))
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, p, out=to_fw(np.zeros((5, 6)), fw))
    raises_naming(topofr.Error, "dist", topofr.persistence_pairs, to_fw(np.ones((4, 3)), fw))
    raises_naming(topofr.Error, "dist", topofr.persistence_pairs, to_fw(np.ones(4), fw))
    raises_naming(topofr.Error, "pairs", topofr.persistence_pairs, topofr.pairwise_distances(p),
                  out=(to_fw(np.zeros((4, 2)), fw, "int32"), None))
    raises_naming(topofr.Error, "z", topofr.isa_loss_from_points, p, p[:5])
    cos, y = head
    raises_naming(topofr.Error, "labels", topofr.margin_logits, to_fw(cos, fw), to_fw(y[:4], fw))
    raises_naming(topofr.Error, "hard_posterior", topofr.gum_fit, to_fw(np.ones(4), fw),
                  out=to_fw(np.zeros(3), fw))
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, to_fw(np.zeros((2, 2, 4, 4)), fw, "float32"))
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, to_fw(np.zeros((2, 4, 4)), fw, "float32"))


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points(fw, n):
    raises_naming(topofr.Error, "dist", topofr.persistence_pairs, to_fw(np.zeros((n, n)), fw, "float64"))
    raises_naming(topofr.Error, "points", topofr.persistence_pairs_from_points, to_fw(np.zeros((n, 2)), fw,
                                                                                        "float64"))
    raises_naming(topofr.Error, "x", topofr.isa_loss_from_points, to_fw(np.zeros((n, 2)), fw, "float64"),
                  to_fw(np.zeros((n, 2)), fw, "float64"))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite(fw, pts, bad):
    p = pts.copy()
    p[2, 1] = bad
    raises_naming(topofr.Error, "points", topofr.pairwise_distances, to_fw(p, fw))
    raises_naming(topofr.Error, "points", topofr.persistence_pairs_from_points, to_fw(p, fw))
    raises_naming(topofr.Error, "x", topofr.isa_loss_from_points, to_fw(p, fw), to_fw(pts, fw))
    raises_naming(topofr.Error, "z", topofr.isa_loss_from_points, to_fw(pts, fw), to_fw(p, fw))
    d = np.ones((4, 4)) - np.eye(4)
    d[1, 3] = bad
    raises_naming(topofr.Error, "dist", topofr.persistence_pairs, to_fw(d, fw))
    raises_naming(topofr.Error, "entropy", topofr.gum_fit, to_fw([0.1, bad, 0.3], fw))
    im = np.zeros((2, 3, 4, 4))
    im[1, 0, 2, 2] = bad
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, to_fw(im, fw))


def test_negative_distance(fw):
    d = np.ones((4, 4)) - np.eye(4)
    d[0, 2] = -0.5
    e = raises_naming(topofr.Error, "dist", topofr.persistence_pairs, to_fw(d, fw))
    assert "(0, 2)" in str(e)
    raises_naming(topofr.Error, "dist_x", topofr.isa_loss, to_fw(d, fw), to_fw(np.abs(d), fw))
    raises_naming(topofr.Error, "dist_z", topofr.isa_loss, to_fw(np.abs(d), fw), to_fw(d, fw))
    # with the pairs given, the C++ check of the matrices themselves names them
    pairs = to_fw([[0, 1], [1, 2], [2, 3]], fw, "int32")
    raises_naming(topofr.Error, "dist_z", topofr.isa_loss, to_fw(np.abs(d), fw), to_fw(d, fw), pairs, pairs)


def test_values(fw, head):
    cos, y = head
    c = to_fw(cos, fw)
    raises_naming(topofr.Error, "labels", topofr.margin_logits, c, to_fw([0, 1, 4, 3, 2], fw))
    raises_naming(topofr.Error, "labels", topofr.margin_ce_forward, c, to_fw([0, 1, -2, 3, 2], fw))
    # Every label but -1 (target on another shard), -100 (topofr.ignore_label) and [0, C) is rejected, naming the
    # element, its value and the accepted values (oracle: the documented message, docs/api.md).
    for bad in (-2, -99, -101, 4, -(2 ** 31)):
        with pytest.raises(topofr.Error) as e:
            topofr.margin_ce_backward(c, to_fw([0, 1, bad, 3, 2], fw), to_fw(np.zeros(5), fw))
        assert (f"labels: element 2 is {bad}, expected -1 (target on another shard), -100 (ignored) or a class in "
                "[0, 4)") in str(e.value)
    ok = to_fw([0, -1, topofr.ignore_label, 3, -1], fw)
    topofr.margin_logits(c, ok)
    topofr.margin_ce_backward(c, ok, topofr.margin_ce_forward(c, ok).lse)
    bad = cos.copy()
    bad[1, 1] = 1.5
    raises_naming(topofr.Error, "cos", topofr.margin_ce_forward, to_fw(bad, fw), to_fw(y, fw))
    raises_naming(topofr.Error, "margin", topofr.margin_logits, c, to_fw(y, fw), topofr.CombinedMargin(s=-1.0))
    raises_naming(topofr.Error, "p_gt", topofr.sds_weights, to_fw([0.1, 0.2], fw), to_fw([0.5, 1.5], fw))
    raises_naming(topofr.Error, "p_gt", topofr.sds_weights, to_fw([0.1, 0.2], fw), None, focal=True)
    raises_naming(topofr.Error, "hard_posterior", topofr.sds_weights, to_fw([0.1, -0.2], fw), None, focal=False)
    raises_naming(topofr.Error, "entropy", topofr.gum_fit, to_fw(np.zeros(0), fw))
    raises_naming(topofr.Error, "probability", topofr.rsp_perturb, to_fw(np.zeros((1, 3, 4, 4)), fw),
                  probability=1.5)
    raises_naming(topofr.Error, "scale", topofr.pairwise_distances, to_fw(np.ones((3, 2)), fw), scale=0.0)
    raises_naming(topofr.Error, "pairs", topofr.gather_pairs, to_fw(np.zeros((3, 3)), fw),
                  to_fw([[1, 0]], fw, "int32"))
    raises_naming(topofr.Error, "pairs", topofr.scatter_pairs_add, to_fw([[0, 3]], fw, "int32"), to_fw([1.0], fw),
                  to_fw(np.zeros((3, 3)), fw))


def test_bad_strings(pts, fw):
    p = to_fw(pts, fw)
    raises_naming(topofr.Error, "variant", topofr.isa_loss_from_points, p, p, variant="paper")
    raises_naming(topofr.Error, "reduction", topofr.isa_loss_from_points, p, p, reduction="avg")
    d = topofr.pairwise_distances(p)
    raises_naming(topofr.Error, "variant", topofr.isa_loss, d, d, variant="x")
    raises_naming(topofr.Error, "reduction", topofr.isa_loss, d, d, reduction="none")
    raises_naming(topofr.Error, "mode", topofr.gum_fit, to_fw([0.1, 0.2], fw), mode="fast")
    raises_naming(topofr.Error, "variant", topofr.Objective,
                  topofr.ObjectiveOptions(isa=topofr.ISAOptions(variant="paper")))
    raises_naming(topofr.Error, "mode", topofr.Objective,
                  topofr.ObjectiveOptions(gum=topofr.GUMOptions(mode="x")))
    raises_naming(topofr.Error, "alpha", topofr.Objective, topofr.ObjectiveOptions(alpha=-1.0))


# ---- outputs that cannot be written in place: refused, and left unchanged ----------------------------------
def sentinel_strided(fw, shape, dtype="float64"):
    """A non-contiguous output view (every other element of the last axis) of a base filled with 7."""
    base = to_fw(np.full(shape + (2,), 7.0), fw, dtype)
    return base, base[..., 0]


def test_non_contiguous_outputs_refused(pts, fw):
    p = to_fw(pts, fw)
    base, out = sentinel_strided(fw, (6, 6))
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, p, out=out)
    assert np.all(to_np(base) == 7)
    tr = to_fw(np.full((6, 6), 7.0), fw)
    tr = tr.t() if fw == "torch" else tr.T
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, p, out=tr)
    assert np.all(to_np(tr) == 7)
    d = topofr.pairwise_distances(p)
    pbase = to_fw(np.full((5, 4), 7), fw, "int32")
    raises_naming(topofr.Error, "pairs", topofr.persistence_pairs, d, out=(pbase[:, ::2], None))
    assert np.all(to_np(pbase) == 7)
    base, dout = sentinel_strided(fw, (5,))
    raises_naming(topofr.Error, "deaths", topofr.persistence_pairs, d,
                  out=(to_fw(np.zeros((5, 2)), fw, "int32"), dout))
    assert np.all(to_np(base) == 7)
    base, h = sentinel_strided(fw, (4,))
    raises_naming(topofr.Error, "hard_posterior", topofr.gum_fit, to_fw([0.1, 0.5, 0.2, 0.9], fw), out=h)
    assert np.all(to_np(base) == 7)
    base, g = sentinel_strided(fw, (6, 3))
    raises_naming(topofr.Error, "grad_z", topofr.isa_loss_from_points, p, p, out=(g, None))
    assert np.all(to_np(base) == 7)
    base, g = sentinel_strided(fw, (6, 6))
    raises_naming(topofr.Error, "grad_dist", topofr.scatter_pairs_add, to_fw([[0, 1]], fw, "int32"),
                  to_fw([1.0], fw), g)
    assert np.all(to_np(base) == 7)


def test_non_contiguous_image_gradient_refused(fw):
    rng = np.random.default_rng(8)
    x, z = to_fw(rng.standard_normal((5, 3, 2, 2)), fw), to_fw(rng.standard_normal((5, 2)), fw)
    base = to_fw(np.full((5, 2, 2, 3), 7.0), fw)
    gx = base.permute(0, 3, 1, 2) if fw == "torch" else base.transpose(0, 3, 1, 2)  # (5, 3, 2, 2), not a view
    raises_naming(topofr.Error, "out[1]", topofr.isa_loss_from_points, x, z, grad_x=True, out=(None, gx))
    assert np.all(to_np(base) == 7)


def test_rsp_inplace_non_contiguous_refused(fw):
    base = to_fw(np.full((2, 3, 4, 4, 2), 0.5), fw, "float32")
    im = base[..., 0]
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, im, probability=1.0, inplace=True)
    assert np.all(to_np(base) == 0.5)
    # not in place, a strided batch is read from a private copy and works
    r = topofr.rsp_perturb(im, probability=1.0)
    assert tuple(r.images.shape) == (2, 3, 4, 4) and np.all(to_np(base) == 0.5)


def test_margin_outputs_non_contiguous(head, fw):
    cos, y = head
    base, out = sentinel_strided(fw, (5, 4))
    raises_naming(topofr.Error, "logits", topofr.margin_logits, to_fw(cos, fw), to_fw(y, fw), out=out)
    raises_naming(topofr.Error, "grad_cos", topofr.margin_ce_backward, to_fw(cos, fw), to_fw(y, fw),
                  to_fw(np.zeros(5), fw), out=out)
    assert np.all(to_np(base) == 7)
    b2, loss = sentinel_strided(fw, (5,))
    raises_naming(topofr.Error, "loss", topofr.margin_ce_forward, to_fw(cos, fw), to_fw(y, fw),
                  out=(loss, None, None, None))
    assert np.all(to_np(b2) == 7)


# ---- read-only arrays --------------------------------------------------------------------------------------
def test_read_only_output_refused(pts):
    out = np.full((6, 6), 7.0)
    out.flags.writeable = False
    raises_naming(topofr.Error, "out", topofr.pairwise_distances, pts, out=out)
    assert np.all(out == 7)
    e = np.array([0.1, 0.4, 0.3])
    e.flags.writeable = False
    raises_naming(topofr.Error, "out", topofr.gum_fit, e, out=e)
    im = np.zeros((1, 3, 4, 4), np.float32)
    im.flags.writeable = False
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, im, probability=1.0, inplace=True)
    g = np.zeros((3, 3))
    g.flags.writeable = False
    raises_naming(topofr.Error, "grad_dist", topofr.scatter_pairs_add, np.array([[0, 1]], np.int32), np.ones(1), g)
    assert np.all(g == 0)


def test_read_only_and_requires_grad_inputs(pts):
    p = pts.copy()
    p.flags.writeable = False
    r = topofr.isa_loss_from_points(p, p[:, :2])
    assert r.grad_z.flags.writeable
    t = torch.tensor(pts, requires_grad=True)
    r = topofr.isa_loss_from_points(t, t[:, :2], grad_x=True)
    assert isinstance(r.grad_x, torch.Tensor) and not r.grad_x.requires_grad
    # an out tensor that requires grad is written through its storage
    out = torch.zeros(6, 6, dtype=torch.float64, requires_grad=True)
    topofr.pairwise_distances(pts, out=out)
    assert out.detach().abs().sum() > 0


def test_scalar_options():
    raises_naming(topofr.Error, "C, H and W", topofr.image_scale, 0, 4, 4)
    raises_naming(topofr.Error, "max_iter", topofr.gum_fit, np.array([0.1, 0.2]), max_iter=0)
    raises_naming(topofr.Error, "tol", topofr.gum_fit, np.array([0.1, 0.2]), tol=-1.0)
    raises_naming(topofr.Error, "x_scale", topofr.isa_loss_from_points, np.eye(3), np.eye(3), x_scale=0.0)
    raises_naming(topofr.Error, "lambda", topofr.sds_weights, np.array([0.1]), None, focal=False,
                  lambda_=math.nan)


def test_negative_and_overlapping_outputs_refused(pts):
    from numpy.lib.stride_tricks import as_strided
    base = np.full((6, 6), 7.0)
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, pts, out=base[::-1])
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, pts, out=as_strided(base, (6, 6), (0, 8)))
    raises_naming(topofr.Error, "dist", topofr.pairwise_distances, np.stack([pts, pts]),
                  out=as_strided(base, (2, 6, 6), (0, 48, 8)))
    assert np.all(base == 7)
    # a negative-stride input is read from a copy and is fine
    np.testing.assert_array_equal(topofr.pairwise_distances(pts[::-1]), topofr.pairwise_distances(pts[::-1].copy()))


def test_aliasing_rules(pts, head, fw):
    p, z = to_fw(pts, fw), to_fw(pts[:, :2], fw)
    # docs/api.md: a gradient must not alias its points or the other gradient
    raises_naming(topofr.Error, "grad_z", topofr.isa_loss_from_points, p, z, out=(z, None))
    g = to_fw(np.zeros((6, 3)), fw)
    raises_naming(topofr.Error, "grad_x", topofr.isa_loss_from_points, p, to_fw(pts, fw), out=(g, g))
    # the margin head's outputs must not overlap its inputs; refused before anything is written
    cos, y = head
    c, yy = to_fw(cos, fw), to_fw(y, fw)
    raises_naming(topofr.Error, "logits", topofr.margin_logits, c, yy, out=c)
    np.testing.assert_array_equal(to_np(c), cos)
    gl = to_fw(np.ones((5, 4)), fw)
    raises_naming(topofr.Error, "grad_cos", topofr.margin_logits_backward, c, yy, gl, out=gl)
    assert np.all(to_np(gl) == 1)
    f = topofr.margin_ce_forward(c, yy)
    raises_naming(topofr.Error, "grad_cos", topofr.margin_ce_backward, c, yy, f.lse, out=c)
    np.testing.assert_array_equal(to_np(c), cos)
    flat = to_fw(cos.reshape(-1).copy(), fw)
    c2 = flat.reshape(5, 4)
    raises_naming(topofr.Error, "loss", topofr.margin_ce_forward, c2, yy, out=(flat[:5], None, None, None))
    # allowed aliasing (docs/api.md): gum_fit and sds_weights may overwrite their input, isa_loss a gradient
    # its own distance matrix
    dz = topofr.pairwise_distances(z)
    r = topofr.isa_loss(topofr.pairwise_distances(p), dz, out=(dz, None))
    assert r.grad_dist_z is dz


def test_integer_options_named():
    im = np.zeros((1, 3, 4, 4), np.float32)
    raises_naming(topofr.Error, "seed", topofr.rsp_perturb, im, seed=-1)
    raises_naming(TypeError, "seed", topofr.rsp_perturb, im, seed=1.5)
    raises_naming(topofr.Error, "step", topofr.rsp_perturb, im, step=2 ** 64)
    raises_naming(topofr.Error, "max_iter", topofr.gum_fit, np.array([0.1, 0.2]), max_iter=2 ** 40)
    raises_naming(TypeError, "max_iter", topofr.gum_fit, np.array([0.1, 0.2]), max_iter=10.0)
    raises_naming(topofr.Error, "sample", topofr.rsp_draw, -1, 3, 4, 4)
    raises_naming(topofr.Error, "sample", topofr.rsp_draw, 2 ** 32, 3, 4, 4)
    raises_naming(topofr.Error, "h", topofr.rsp_draw, 0, 3, 0, 4)
    assert topofr.rsp_draw(2 ** 32 - 1, 3, 4, 4, seed=2 ** 64 - 1, step=2 ** 64 - 1)["kind"] in (
        "none", "blur", "grayscale", "color_jitter", "erasing")


def test_out_tuples(pts, head):
    z = pts[:, :2]
    raises_naming(TypeError, "out", topofr.isa_loss_from_points, pts, z, out=np.zeros((6, 2)))
    d = topofr.pairwise_distances(pts)
    raises_naming(TypeError, "out", topofr.isa_loss, d, d, out=np.zeros((6, 6)))
    raises_naming(TypeError, "out", topofr.persistence_pairs, d, out=np.zeros((5, 2), np.int32))
    cos, y = head
    raises_naming(TypeError, "out", topofr.margin_ce_forward, cos, y, out=(None, np.zeros(5), None, None))
    raises_naming(TypeError, "out", topofr.margin_ce_forward, cos, y, out=(np.zeros(5),) * 3)
    raises_naming(TypeError, "out", topofr.Objective(), pts, z, cos[:, :], y, out=(np.zeros((6, 2)),))


def test_nothing_written_when_checks_fail(fw):
    # docs/api.md: gum_fit writes nothing when it throws; rsp_perturb checks every argument (here a
    # non-finite value in the last sample) before writing anything.
    h = to_fw(np.full(3, 7.0), fw)
    raises_naming(topofr.Error, "entropy", topofr.gum_fit, to_fw([0.1, 0.2, math.nan], fw), out=h)
    assert np.all(to_np(h) == 7)
    im0 = np.random.default_rng(1).uniform(-1, 1, (4, 3, 6, 6)).astype(np.float32)
    im0[3, 2, 5, 5] = math.inf
    im = to_fw(im0, fw)
    raises_naming(topofr.Error, "images", topofr.rsp_perturb, im, probability=1.0, inplace=True)
    np.testing.assert_array_equal(to_np(im), im0)
