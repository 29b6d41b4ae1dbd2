"""The class-sharded head's primitives (topofr.shard_range, localize_labels, partial_fc_sample, shard_stats,
combine_shard_stats, shard_entropy_eps_partial; C++ topofr/shard.hpp) on NumPy arrays and torch CPU tensors.

Oracles (none of them is the code under test):
* tests/oracles/arcface_oracle.py (float64 torch autograd of insightface's ArcFace head on the WHOLE N x C
  matrix): the combined lse, loss, p_gt, the eps entropy and the concatenated shard gradients;
* a NumPy float64 brute force of the per-shard statistics (max, sum_exp, sum_exp_z, target) from the oracle's
  logits, and of the eps = 0 entropy;
* the whole-matrix head topofr.margin_ce_forward / margin_ce_backward (another code path of the library);
* insightface's split and PartialFC_V2.sample written out in Python, with the keys from a plain-Python
  Philox4x32-10 (checked against Random123's known-answer vectors).
"""
import ctypes

import numpy as np
import pytest
import torch

import topofr
from conftest import arcface, check_kind, to_fw, to_np

MARGINS = {"arcface": topofr.CombinedMargin.arcface(64.0, 0.5), "cosface": topofr.CombinedMargin.cosface(30.0, 0.35),
           "straight": topofr.CombinedMargin(32.0, 0.9, 0.4, 0.15, True)}


def rel(a, b) -> float:
    a, b = np.asarray(to_np(a), np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def rtol(dtype) -> float:
    return 1e-5 if dtype == "float32" else 1e-12


# ---- shard_range ---------------------------------------------------------------------------------------------
def test_shard_range_is_insightfaces_split():
    # Oracle: partial_fc_v2.py's split, written out: num_local = C // W + (rank < C % W),
    # class_start = C // W * rank + min(rank, C % W).
    for classes in range(1, 14):
        for world in range(1, classes + 1):
            ends = 0
            for rank in range(world):
                r = topofr.shard_range(classes, world, rank)
                size = classes // world + (rank < classes % world)
                start = classes // world * rank + min(rank, classes % world)
                assert r == (start, start + size) and r.size == size and isinstance(r, topofr.ClassRange)
                assert r.begin == ends  # contiguous, a partition of [0, C)
                ends = r.end
            assert ends == classes


def test_shard_range_errors():
    with pytest.raises(topofr.Error, match=r"shard_range: classes: world > number of classes: world = 3"):
        topofr.shard_range(2, 3, 0)
    with pytest.raises(topofr.Error, match=r"shard_range: world: must be >= 1, got 0"):
        topofr.shard_range(5, 0, 0)
    with pytest.raises(topofr.Error, match=r"shard_range: rank: must be in \[0, world = 2\), got 2"):
        topofr.shard_range(5, 2, 2)
    with pytest.raises(TypeError, match="shard_range: rank: expected an integer"):
        topofr.shard_range(5, 2, 1.0)


# ---- localize_labels -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_localize_labels(fw, label_dtype):
    classes = 11
    y = np.array([0, 3, 4, 7, 10, -1, topofr.ignore_label, 5, 8])
    for world in (1, 2, 3):
        for rank in range(world):
            sh = topofr.shard_range(classes, world, rank)
            got = topofr.localize_labels(to_fw(y, fw, label_dtype), sh, classes)
            check_kind(got, fw, label_dtype)
            # Oracle: docs/api.md's rule, written out.
            want = [v - sh.begin if sh.begin <= v < sh.end else (-1 if v >= 0 else v) for v in y]
            np.testing.assert_array_equal(to_np(got), want)
    # out= the labels themselves (in place), and a plain tuple as the shard
    a = to_fw(y, fw, label_dtype)
    assert topofr.localize_labels(a, (4, 8), classes, out=a) is a
    np.testing.assert_array_equal(to_np(a), [-1, -1, 0, 3, -1, -1, -100, 1, -1])


def test_localize_labels_errors(fw):
    y = to_fw([0, 3, 11, 2], fw, "int64")
    keep = to_np(y).copy()
    with pytest.raises(topofr.Error, match=r"localize_labels: labels: element 2 is 11, expected -1, -100"):
        topofr.localize_labels(y, (0, 5), 11, out=y)
    np.testing.assert_array_equal(to_np(y), keep)  # checked before anything is written
    with pytest.raises(topofr.Error, match=r"localize_labels: labels: element 0 is -2"):
        topofr.localize_labels(to_fw([-2], fw, "int32"), (0, 5), 11)
    with pytest.raises(topofr.Error, match=r"localize_labels: shard: expected 0 <= begin <= end <= classes = 11"):
        topofr.localize_labels(to_fw([1], fw, "int32"), (3, 12), 11)
    with pytest.raises(TypeError, match=r"localize_labels: labels: expected int32 or int64"):
        topofr.localize_labels(to_fw([1.0], fw, "float32"), (0, 5), 11)
    with pytest.raises(TypeError, match=r"localize_labels: local: expected int64, got int32"):
        topofr.localize_labels(to_fw([1], fw, "int64"), (0, 5), 11, out=to_fw([0], fw, "int32"))
    with pytest.raises(TypeError, match=r"localize_labels: shard: expected a \(begin, end\) pair"):
        topofr.localize_labels(to_fw([1], fw, "int64"), 5, 11)


# ---- the sharded head against the whole-matrix head ----------------------------------------------------------
def head_case(c, seed=3):
    rng = np.random.default_rng(seed)
    n = 9
    cos = rng.uniform(-0.95, 0.95, (n, c))
    labels = rng.integers(0, c, n)
    labels[[2, 5]] = [-1, topofr.ignore_label]
    labels[0] = c - 1  # a target on the last (smaller) shard
    cos[1, labels[1]] = 0.97  # a confident row: p_gt near 1, tiny entropy
    return cos, labels, rng.random(n) + 0.5


def brute_stats(logits, local, lo, hi):
    """NumPy float64: [max, sum_exp, sum_exp_z, target] of the shard's logits (the oracle's margin logits with
    each row's margin only in its local label column: rows whose target lives elsewhere have plain s cos here)."""
    n = logits.shape[0]
    out = np.empty((n, 4))
    for i in range(n):
        z = logits[i, lo:hi]
        mx = z.max()
        e = np.exp(z - mx)
        out[i] = [mx, e.sum(), (e * (z - mx)).sum(), z[local[i]] if local[i] >= 0 else np.nan]
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("margin", list(MARGINS))
def test_sharded_head_equals_whole_head(tmp_path, fw, dtype, world, margin):
    m = MARGINS[margin]
    classes = 10  # W = 3: shards of 4, 3, 3 classes
    cos, labels, weights = head_case(classes)
    cosr = cos.astype(dtype)
    n = len(labels)
    o = arcface(tmp_path, cosr, labels, m, eps=1e-5, grad_scale=1 / n, weights=weights,
                straight_through=m.straight_through)
    whole = topofr.margin_ce_forward(to_fw(cosr, fw), to_fw(labels, fw), m)
    per_rank, locals_, shards = [], [], []
    for rank in range(world):
        sh = topofr.shard_range(classes, world, rank)
        loc = topofr.localize_labels(to_fw(labels, fw), sh, classes)
        c_loc = to_fw(cosr[:, sh.begin:sh.end], fw)
        st = topofr.shard_stats(c_loc, loc, m)
        check_kind(st, fw, "float64")
        assert tuple(st.shape) == (n, 4)
        # Oracle: the NumPy brute force on the oracle's logits (s rounded to the cosines' dtype, as the head does).
        want = brute_stats(o["logits"], to_np(loc), sh.begin, sh.end)
        np.testing.assert_array_equal(np.isnan(to_np(st)[:, 3]), np.isnan(want[:, 3]))
        ok = ~np.isnan(want)
        assert rel(to_np(st)[ok], want[ok]) <= (1e-6 if dtype == "float32" else 1e-12)
        per_rank.append(st)
        locals_.append((loc, c_loc))
        shards.append(sh)
    stacked = torch.stack(per_rank) if fw == "torch" else np.stack(per_rank)
    r = topofr.combine_shard_stats(stacked, dtype)
    for a in r:
        check_kind(a, fw, dtype)
    # Oracle: arcface_oracle on the whole matrix.
    assert rel(r.lse, o["lse"]) <= rtol(dtype)
    assert rel(r.loss, o["loss"]) <= rtol(dtype)
    assert rel(r.p_gt, o["pgt"]) <= rtol(dtype)
    assert np.all(to_np(r.loss)[[2, 5]] == 0) and np.all(to_np(r.p_gt)[[2, 5]] == 0)
    # eps = 0 entropy. Oracle: NumPy -sum p log p over the oracle's logits (0 log 0 = 0).
    z = o["logits"]
    p = np.exp(z - o["lse"][:, None])
    h0 = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(1)
    assert rel(r.entropy, h0) <= (1e-5 if dtype == "float32" else 1e-11)
    # ... and the whole-matrix head with entropy_eps = 0 (another code path of the library)
    w0 = topofr.margin_ce_forward(to_fw(cosr, fw), to_fw(labels, fw), m, entropy_eps=0.0)
    assert rel(r.entropy, to_np(w0.entropy)) <= (1e-5 if dtype == "float32" else 1e-11)
    assert rel(r.lse, to_np(whole.lse)) <= rtol(dtype) and rel(r.loss, to_np(whole.loss)) <= rtol(dtype)
    # eps > 0 entropy: the partials summed over the ranks and negated. Oracle: arcface_oracle's entropy.
    partial = sum(to_np(topofr.shard_entropy_eps_partial(c_loc, loc, r.lse, m, entropy_eps=1e-5))
                  for loc, c_loc in locals_)
    assert rel(-partial, o["entropy"]) <= rtol(dtype)
    # The backward: margin_ce_backward per shard with the local labels and the combined lse, concatenated.
    # Oracle: arcface_oracle's gradient of (1/N) sum_i w_i loss_i on the whole matrix.
    g = np.concatenate([to_np(topofr.margin_ce_backward(c_loc, loc, r.lse, to_fw(weights, fw, dtype), m,
                                                        grad_scale=1 / n)) for loc, c_loc in locals_], axis=1)
    assert rel(g, o["grad"]) <= rtol(dtype)
    if world == 1:  # one shard: the local labels are the global ones, the backward is the head's bitwise
        gw = topofr.margin_ce_backward(to_fw(cosr, fw), to_fw(labels, fw), r.lse, to_fw(weights, fw, dtype), m,
                                       grad_scale=1 / n)
        np.testing.assert_array_equal(g, to_np(gw))


def test_combine_is_rank_order_deterministic_and_out(fw):
    # Oracle: docs/api.md (rank order, identical inputs give bitwise identical outputs); out= arrays are the
    # caller's, any of them None.
    cos, labels, _ = head_case(7, seed=9)
    m = MARGINS["arcface"]
    stats = [to_np(topofr.shard_stats(cos[:, sh.begin:sh.end], topofr.localize_labels(labels, sh, 7), m))
             for sh in (topofr.shard_range(7, 3, r) for r in range(3))]
    per = to_fw(np.stack(stats), fw)
    a, b = topofr.combine_shard_stats(per), topofr.combine_shard_stats(per)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(to_np(x), to_np(y))
    lse = to_fw(np.zeros(len(labels)), fw, "float32")
    r = topofr.combine_shard_stats(per, out=(lse, None, None, None))
    assert r.lse is lse and r.loss is None and r.entropy is None
    np.testing.assert_allclose(to_np(lse), to_np(a.lse), rtol=1e-6)
    # a strided (W, N, 4) input is read from a contiguous copy
    wide = np.zeros((3, len(labels), 8))
    wide[:, :, :4] = np.stack(stats)
    with pytest.raises(topofr.Error, match="combine_shard_stats: per_rank"):
        topofr._core.combine_shard_stats(wide[:, :, :4], np.zeros(len(labels)), None, None, None)
    np.testing.assert_array_equal(to_np(topofr.combine_shard_stats(to_fw(wide, fw)[:, :, :4]).lse), to_np(a.lse))
    # torch dtypes name the output dtype too
    if fw == "torch":
        assert topofr.combine_shard_stats(per, torch.float32).lse.dtype == torch.float32


def test_shard_stats_out_is_zero_copy(fw):
    cos, labels, _ = head_case(5, seed=4)
    out = to_fw(np.full((len(labels), 4), 7.0), fw)
    r = topofr.shard_stats(to_fw(cos, fw), to_fw(labels, fw), out=out)
    assert r is out and not np.any(to_np(out) == 7.0)
    np.testing.assert_array_equal(to_np(out), to_np(topofr.shard_stats(cos, labels)))


def test_shard_errors(fw):
    cos, labels, _ = head_case(5, seed=4)
    c, y = to_fw(cos, fw), to_fw(labels, fw)
    with pytest.raises(topofr.Error, match=r"shard_stats: stats: expected shape \(N, 4\)"):
        topofr.shard_stats(c, y, out=to_fw(np.zeros((len(labels), 3)), fw))
    with pytest.raises(TypeError, match=r"shard_stats: stats: expected float64, got float32"):
        topofr.shard_stats(c, y, out=to_fw(np.zeros((len(labels), 4)), fw, "float32"))
    with pytest.raises(topofr.Error, match=r"shard_stats: stats: rows must be dense"):
        topofr.shard_stats(c, y, out=to_fw(np.zeros((len(labels), 8)), fw)[:, :4])
    bad = labels.copy()
    bad[0] = 5
    with pytest.raises(topofr.Error, match=r"shard_stats: labels"):
        topofr.shard_stats(c, to_fw(bad, fw))
    with pytest.raises(topofr.Error, match=r"shard_stats: margin"):
        topofr.shard_stats(c, y, topofr.CombinedMargin(s=-1.0))
    st = to_np(topofr.shard_stats(c, y))
    two = np.stack([st, st])  # both ranks claim the targets
    with pytest.raises(topofr.Error, match=r"combine_shard_stats: per_rank: row 0 has a target on ranks 0 and 1"):
        topofr.combine_shard_stats(to_fw(two, fw))
    broken = two.copy()
    broken[1, 3, 1] = 0.5  # sum_exp < 1
    broken[0, :, 3] = np.nan
    with pytest.raises(topofr.Error, match=r"combine_shard_stats: per_rank: rank 1 row 3"):
        topofr.combine_shard_stats(to_fw(broken, fw))
    with pytest.raises(topofr.Error, match=r"combine_shard_stats: per_rank: expected shape \(W, N, 4\)"):
        topofr.combine_shard_stats(to_fw(np.zeros((2, 3, 5)), fw))
    with pytest.raises(TypeError, match=r"combine_shard_stats: dtype: expected float32 or float64"):
        topofr.combine_shard_stats(to_fw(two[:1], fw), "int32")
    lse = topofr.combine_shard_stats(to_fw(st[None], fw)).lse
    with pytest.raises(topofr.Error, match=r"shard_entropy_eps_partial: entropy_eps"):
        topofr.shard_entropy_eps_partial(c, y, lse, entropy_eps=-1.0)
    with pytest.raises(topofr.Error, match=r"shard_entropy_eps_partial: lse_global"):
        topofr.shard_entropy_eps_partial(c, y, lse[:2])
    with pytest.raises(TypeError, match=r"shard_entropy_eps_partial: lse_global: expected float32"):
        topofr.shard_entropy_eps_partial(to_fw(cos, fw, "float32"), y, lse)


class FakeCUDA:
    """An array on a CUDA device as DLPack describes it, over host memory (no GPU needed): a hand-made DLPack
    capsule whose device is kDLCUDA. Only a CPU-only build may see it (it refuses it before any element is read);
    a CUDA build would hand its host pointer to a kernel."""

    class _Device(ctypes.Structure):
        _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]

    class _DType(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

    class _Tensor(ctypes.Structure):
        pass

    class _Managed(ctypes.Structure):
        pass

    _Tensor._fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DType),
                        ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                        ("byte_offset", ctypes.c_uint64)]
    _Deleter = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Managed))
    _Managed._fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _Deleter)]
    _noop = _Deleter(lambda _: None)
    _new_capsule = ctypes.pythonapi.PyCapsule_New
    _new_capsule.restype = ctypes.py_object
    _new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

    def __init__(self, a):
        self.a = np.ascontiguousarray(a)
        self.shape, self.dtype = self.a.shape, self.a.dtype
        self._shape = (ctypes.c_int64 * max(self.a.ndim, 1))(*self.a.shape)
        self._strides = (ctypes.c_int64 * max(self.a.ndim, 1))(*[st // self.a.itemsize for st in self.a.strides])
        code = {"i": 0, "f": 2}[self.a.dtype.kind]
        self._managed = self._Managed(self._Tensor(self.a.ctypes.data, self._Device(2, 0), self.a.ndim,
                                                   self._DType(code, self.a.itemsize * 8, 1), self._shape,
                                                   self._strides, 0), None, self._noop)

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    def __dlpack__(self, stream=None, **kwargs):
        return self._new_capsule(ctypes.addressof(self._managed), b"dltensor", None)


@pytest.mark.skipif(topofr.has_cuda(), reason="a CUDA build runs CUDA arrays (tests/test_cuda.py)")
@pytest.mark.parametrize("call", [
    lambda f: topofr.localize_labels(f(np.zeros(3, np.int64)), (0, 2), 4),
    lambda f: topofr.partial_fc_sample(f(np.zeros(3, np.int32)), (0, 2), num_sample=1),
    lambda f: topofr.shard_stats(f(np.zeros((1, 2))), np.zeros(1, np.int64)),
    lambda f: topofr.combine_shard_stats(f(np.zeros((1, 2, 4)))),
    lambda f: topofr.shard_entropy_eps_partial(f(np.zeros((1, 2))), np.zeros(1, np.int64), np.zeros(1)),
])
def test_cuda_arrays_need_a_cuda_build(call):
    # The sharded primitives dispatch as every block does: a CUDA array goes to the CUDA backend, which a
    # CPU-only build does not have (a TypeError naming the function and the argument, nothing read).
    with pytest.raises(TypeError, match=r"topofr\.\w+: \w+: is a CUDA array, but this topofr was built without "
                                        r"CUDA"):
        call(FakeCUDA)


def test_a_cuda_array_among_cpu_arrays_names_it():
    # The backend is the first array's; another array on the other side is a TypeError naming it.
    with pytest.raises(TypeError, match=r"topofr\.shard_stats: local_labels: is on cuda but the other arrays are "
                                        r"on cpu"):
        topofr.shard_stats(np.zeros((1, 2)), FakeCUDA(np.zeros(1, np.int64)))


# ---- partial_fc_sample ---------------------------------------------------------------------------------------
M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    """Philox4x32-10 (Salmon et al., SC'11), written from the paper's round function and Random123's constants."""
    x0, x1, x2, x3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * x0, 0xCD9E8D57 * x2
        x0, x1, x2, x3 = (p1 >> 32) ^ x1 ^ k0, p1 & M32, (p0 >> 32) ^ x3 ^ k1, p0 & M32
    return x0, x1, x2, x3


def key_uniform(seed, a, b):
    """counter_rng(seed, a, b).uniform(): docs/api.md's stream (key = seed's halves, counter = {0, lo(a), lo(b),
    hi(a) ^ hi(b)}), 53 bits from the first two words as Python's random.random()."""
    w = philox4x32_10((0, a & M32, b & M32, (a >> 32) ^ (b >> 32)), (seed & M32, seed >> 32))
    return ((w[0] >> 5) * 67108864 + (w[1] >> 6)) / 9007199254740992.0


def test_philox_known_answers():
    # Oracle: Random123's kat_vectors ("philox4x32 10" lines).
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)
    assert philox4x32_10((M32,) * 4, (M32, M32)) == (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)
    assert philox4x32_10((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0)) == \
        (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)


def pfc_sample(local, begin, c_local, num_sample, seed, step):
    """insightface PartialFC_V2.sample written out in torch: perm = keys, perm[positive] = 2, the top
    num_sample sorted (or the positives when they are more), labels mapped to their positions."""
    local = torch.as_tensor(local, dtype=torch.int64)
    positive = torch.unique(local[local >= 0], sorted=True)
    if num_sample - positive.numel() >= 0:
        perm = torch.tensor([key_uniform(seed, begin + j + 2 ** 32, step) for j in range(c_local)],
                            dtype=torch.float64)
        perm[positive] = 2.0
        index = torch.topk(perm, k=num_sample)[1].sort()[0]
    else:
        index = positive
    mapped = local.clone()
    pos = local >= 0
    mapped[pos] = torch.searchsorted(index, local[pos])
    return index.numpy(), mapped.numpy()


@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_partial_fc_sample_is_insightfaces(fw, label_dtype):
    classes = 29
    rng = np.random.default_rng(8)
    labels = rng.integers(0, classes, 16)
    labels[[3, 9]] = [-1, topofr.ignore_label]
    for world in (1, 2, 3):
        for rank in range(world):
            sh = topofr.shard_range(classes, world, rank)
            loc = topofr.localize_labels(to_fw(labels, fw, label_dtype), sh, classes)
            for rate in (0.1, 0.3, 1.0):
                for step in (0, 5):
                    r = topofr.partial_fc_sample(loc, sh, sample_rate=rate, seed=42, step=step)
                    num = max(1, int(rate * sh.size))
                    index, mapped = pfc_sample(to_np(loc), sh.begin, sh.size, num, 42, step)
                    assert r.count == len(index)
                    check_kind(r.index, fw, "int64")
                    check_kind(r.labels, fw, label_dtype)
                    np.testing.assert_array_equal(to_np(r.classes), index)
                    assert np.all(to_np(r.index)[r.count:] == -1) and len(r.index) == sh.size
                    np.testing.assert_array_equal(to_np(r.labels), mapped)
                    if rate == 1.0:
                        assert r.count == sh.size
                    same = topofr.partial_fc_sample(loc, sh, num_sample=num, seed=42, step=step)
                    np.testing.assert_array_equal(to_np(same.index), to_np(r.index))


def test_partial_fc_sample_in_place_and_errors(fw):
    sh = (10, 30)
    y = to_fw([0, 3, 3, 7, 19, -1, -100, 12], fw, "int32")
    r = topofr.partial_fc_sample(y, sh, num_sample=2, seed=1)  # 5 positives > 2: the positives
    assert r.count == 5 and to_np(r.classes).tolist() == [0, 3, 7, 12, 19]
    assert to_np(r.labels).tolist() == [0, 1, 1, 2, 4, -1, -100, 3]
    index = to_fw(np.zeros(20), fw, "int64")
    r2 = topofr.partial_fc_sample(y, sh, num_sample=2, seed=1, out=(index, y))  # sampled labels over the input
    assert r2.index is index and r2.labels is y and to_np(y).tolist() == [0, 1, 1, 2, 4, -1, -100, 3]
    z = to_fw([0], fw, "int64")
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: num_sample: must be in \[1, 20\].*got 21"):
        topofr.partial_fc_sample(z, sh, num_sample=21)
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: local_labels: element 0 is 20"):
        topofr.partial_fc_sample(to_fw([20], fw, "int64"), sh, num_sample=2)
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: shard"):
        topofr.partial_fc_sample(z, (5, 5), num_sample=1)
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: sample_rate: must be in \(0, 1\]"):
        topofr.partial_fc_sample(z, sh, sample_rate=1.5)
    with pytest.raises(TypeError, match=r"partial_fc_sample: num_sample: give exactly one"):
        topofr.partial_fc_sample(z, sh, num_sample=2, sample_rate=0.5)
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: index"):
        topofr.partial_fc_sample(z, sh, num_sample=2, out=(to_fw(np.zeros(19), fw, "int64"), z.clone()
                                                             if fw == "torch" else z.copy()))
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: seed: must be in"):
        topofr.partial_fc_sample(z, sh, num_sample=2, seed=-1)
