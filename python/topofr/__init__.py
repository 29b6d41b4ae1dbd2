"""topofr: TopoFR's building blocks (NeurIPS 2024) for NumPy and PyTorch, exact and zero-copy.

Every function takes NumPy arrays or torch tensors (anything with ``__dlpack__``), float32 or float64, and
returns its outputs in the framework, dtype and device of its first array argument. ``out=`` writes into the
caller's arrays instead; they are never copied, so a result is always visible in them. Errors name the
argument: ``topofr.Error`` (a ``ValueError``) for shapes and values, ``TypeError`` for dtypes and devices.
``topofr.torch`` has the autograd functions and modules. docs/python.md is the guide; docs/api.md the C++ API
that each function mirrors.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._core import Error

__all__ = [
    "Error", "has_cuda", "image_scale", "pairwise_distances", "persistence_pairs", "persistence_pairs_from_points",
    "gather_pairs", "scatter_pairs_add", "isa_loss", "isa_loss_from_points", "gum_fit", "sds_weights",
    "CombinedMargin", "ignore_label", "margin_logits", "margin_logits_backward", "margin_ce_forward", "margin_ce_backward",
    "ClassRange", "shard_range", "localize_labels", "PartialFCSample", "partial_fc_sample", "shard_stats",
    "ShardCombined", "combine_shard_stats", "shard_entropy_eps_partial",
    "rsp_perturb", "rsp_draw", "GUMOptions", "ISAOptions", "ObjectiveOptions", "Objective",
    "Pairs", "ISAResult", "ISADistResult", "GUMResult", "MarginCEForward", "RSPResult", "ObjectiveResult",
]
__version__ = "0.1.0"

Array = Any  # numpy.ndarray or torch.Tensor (any object with __dlpack__)


def has_cuda() -> bool:
    """Whether this build of the extension was compiled with nvcc (CUDA arrays accepted)."""
    return bool(_core.has_cuda())


# ---- framework plumbing: inputs are seen in place, outputs are allocated where the first input lives ----------
def _torch():
    return sys.modules.get("torch")


def _is_torch(a) -> bool:
    t = _torch()
    return t is not None and isinstance(a, t.Tensor)


def _input(a, name: str):
    """An input as a DLPack-exportable array without copying, unless its last axis is strided, a stride is
    negative or rows overlap (then a contiguous copy, which the caller never sees: it is only read)."""
    if a is None:
        return None
    if _is_torch(a):
        a = a.detach()
        return a.contiguous() if _needs_copy(a.shape, a.stride()) else a
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__dlpack__"):
            return a
        a = np.asarray(a)
    return np.ascontiguousarray(a) if _needs_copy(a.shape, [s // a.itemsize for s in a.strides]) else a


def _needs_copy(shape, strides) -> bool:
    """Whether an array (strides in elements) is not a view the library takes: unit stride along the last axis,
    no negative stride, rows that do not overlap."""
    return (len(shape) > 0 and shape[-1] > 1 and strides[-1] != 1) or any(s < 0 for s in strides) or \
        _overlapping(shape, strides)


def _pairs_input(a, name: str):
    """An (m, 2) int32 pairs input: the extension sees it as a span of edges, so rows must be dense (stride 2);
    a row-strided one (a column slice of a wider array) is read from a contiguous copy."""
    a = _input(a, name)
    if a is not None and len(a.shape) == 2 and a.shape[0] > 1:
        if _is_torch(a):
            if a.stride(0) != a.shape[1]:
                a = a.contiguous()
        elif isinstance(a, np.ndarray) and a.strides[0] != a.shape[1] * a.itemsize:
            a = np.ascontiguousarray(a)
    return a


def _overlapping(shape, strides) -> bool:
    """Whether rows (or batch matrices) share memory, as in a broadcast (stride-0) input: the views need
    row stride >= row length, so such an input is read from a contiguous copy."""
    if len(shape) >= 2 and shape[-2] > 1 and strides[-2] < shape[-1]:
        return True
    return any(n > 1 and s == 0 for n, s in zip(shape, strides))


def _output(a, name: str):
    """A caller's output array, as is: the very object, so that out=... is returned as the caller's array (a
    tensor that requires grad is detached: same storage, so writes are visible)."""
    if a is None:
        return None
    if _is_torch(a):
        return a.detach() if a.requires_grad else a
    if not isinstance(a, np.ndarray) and not hasattr(a, "__dlpack__"):
        raise TypeError(f"topofr: {name}: an output must be a NumPy array or a torch tensor, got {type(a).__name__}")
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        raise Error(f"topofr: {name}: an output must be writable, got a read-only array")
    return a


def _is_cuda(a) -> bool:
    if _is_torch(a):
        return a.is_cuda
    dev = getattr(a, "__dlpack_device__", None)
    return dev is not None and not isinstance(a, np.ndarray) and dev()[0] in (2, 13)  # kDLCUDA, kDLCUDAManaged


class _TorchAllocator:
    """torch's CUDA caching allocator, handed to the library for its scratch memory (one cache, not two)."""

    def __init__(self, device):
        self.device = device

    def allocate(self, nbytes: int, stream: int) -> int:
        return _torch().cuda.caching_allocator_alloc(nbytes, self.device, stream)

    def free(self, ptr: int, nbytes: int, stream: int) -> None:
        _torch().cuda.caching_allocator_delete(ptr)


def _exec(ref, stream: Optional[int]) -> dict:
    """Where a CUDA call runs: `stream` (a cudaStream_t as int) if given, else torch's current stream of the
    array's device; scratch from torch's caching allocator for torch tensors, else from the library's pool."""
    if not _is_cuda(ref):
        return {}
    if _is_torch(ref):
        t = _torch()
        s = stream if stream is not None else t.cuda.current_stream(ref.device).cuda_stream
        return {"stream": int(s), "allocator": _TorchAllocator(ref.device.index)}
    return {"stream": int(stream or 0)}


_NP = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64}


def _dtype_name(a) -> str:
    return str(a.dtype).replace("torch.", "")


def _empty(like, shape, dtype: str):
    """An uninitialised array of `shape` in `like`'s framework and device; dtype 'float32' etc., or 'like'."""
    if dtype == "like":
        if not _is_torch(like):  # any NumPy dtype (float16, int64): the extension's check names the argument
            return np.empty(tuple(shape), dtype=like.dtype)
        dtype = _dtype_name(like)
    if _is_torch(like):
        t = _torch()
        if like.device.type == "cpu" and dtype in _NP and np.prod(shape) * np.dtype(_NP[dtype]).itemsize >= 1 << 20:
            # A large CPU tensor over NumPy's memory: NumPy asks the kernel for huge pages, so the first write
            # into a fresh 44 MB dL/dcos costs 3 ms instead of torch.empty's 22 ms of page faults (measured on
            # the development VM, docs/benchmarks.md). Still an ordinary tensor (only not resizable).
            return t.from_numpy(np.empty(tuple(shape), dtype=_NP[dtype]))
        return t.empty(tuple(shape), dtype=getattr(t, dtype), device=like.device)
    return np.empty(tuple(shape), dtype=_NP[dtype])


def _shape(a):
    return tuple(a.shape)


def _integer(v, fn: str, name: str, lo: int, hi: int) -> int:
    """An integer option in [lo, hi]: TypeError for a non-integer, topofr.Error outside the range, both naming
    it (instead of nanobind's 'incompatible function arguments')."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"topofr.{fn}: {name}: expected an integer, got {type(v).__name__}")
    if not lo <= int(v) <= hi:
        raise Error(f"topofr.{fn}: {name}: must be in [{lo}, {hi}], got {int(v)}")
    return int(v)


def _out_tuple(out, k: int, fn: str, what: str):
    """out= of a function with k outputs: a tuple or list of k arrays (or None where allowed)."""
    if not isinstance(out, (tuple, list)) or len(out) != k:
        raise TypeError(f"topofr.{fn}: out: expected a tuple {what}, got {type(out).__name__}")
    return out


def _byte_range(a):
    """[lo, hi) of the bytes an array (NumPy or torch, any strides) addresses; None when it has no element."""
    if _is_torch(a):
        if a.numel() == 0:
            return None
        item, p, strides = a.element_size(), a.data_ptr(), [st * a.element_size() for st in a.stride()]
    else:
        if not isinstance(a, np.ndarray) or a.size == 0:
            return None
        item, p, strides = a.itemsize, a.__array_interface__["data"][0], a.strides
    lo = p + sum(min(0, (n - 1) * st) for n, st in zip(a.shape, strides))
    hi = p + sum(max(0, (n - 1) * st) for n, st in zip(a.shape, strides)) + item
    return lo, hi


def _no_overlap(fn: str, out, out_name: str, **inputs):
    """docs/api.md: the margin head's outputs must not overlap its inputs (it reads them while writing; an
    aliased call would silently compute garbage or destroy the input)."""
    r = _byte_range(out) if out is not None else None
    if r is None:
        return
    for name, a in inputs.items():
        q = _byte_range(a) if a is not None else None
        if q is not None and r[0] < q[1] and q[0] < r[1]:
            raise Error(f"topofr.{fn}: {out_name}: must not overlap the input {name}")


_U64 = 2 ** 64 - 1
_I32 = 2 ** 31 - 1


def _flat_points(a, name: str, output: bool = False):
    """(n, ...) -> (n, prod(...)) as a view when the array is contiguous (an image batch N x C x H x W is the
    n x CHW point cloud the VR filtration sees). An output that cannot be viewed so is an error: reshape
    would copy it and the result would never reach the caller's array."""
    if len(a.shape) == 2:
        return a
    if len(a.shape) < 2:
        raise Error(f"topofr: {name}: expected (n, d) points or an (n, C, H, W) batch, got shape {_shape(a)}")
    n = a.shape[0]
    if not output:
        return a.reshape(n, -1)
    try:
        if _is_torch(a):
            return a.view(n, -1)
        v = a.view()
        v.shape = (n, -1)  # raises instead of copying
        return v
    except (RuntimeError, AttributeError, ValueError):
        raise Error(f"topofr: {name}: an output (n, C, H, W) batch must be contiguous (it is written in place), "
                    f"got strides {tuple(a.stride()) if _is_torch(a) else a.strides}") from None


def image_scale(c: int, h: int, w: int) -> float:
    """sqrt(4 C H W): the released code's divisor of input-space distances (isa x_scale for an image batch)."""
    return _core.image_scale(c, h, w)


# ---- distances, persistence, gathering ------------------------------------------------------------------------
def pairwise_distances(points: Array, *, scale: float = 1.0, out: Optional[Array] = None,
                       stream: Optional[int] = None) -> Array:
    """Euclidean distances ||x_i - x_j|| / scale of (n, d) points, or of each of B clouds (B, n, d).

    Exactly symmetric, 0 on the diagonal. Returns (n, n) or (B, n, n) in the points' dtype."""
    p = _input(points, "points")
    shape = _shape(p)
    if len(shape) not in (2, 3):
        raise Error(f"topofr.pairwise_distances: points: expected (n, d) or (B, n, d), got shape {shape}")
    out = _output(out, "out") if out is not None else _empty(p, shape[:-1] + (shape[-2],), "like")
    _core.pairwise_distances(p, out, scale, **_exec(p, stream))
    return out


class Pairs(NamedTuple):
    """0-dim persistence pairs (int32, (n-1, 2) or (B, n-1, 2), u < v, in filtration order) and their deaths."""
    pairs: Array
    deaths: Optional[Array]


def _pair_outputs(ref, lead: Tuple[int, ...], n: int, with_deaths: bool, out, fn: str, arg: str):
    if out is not None:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"topofr.{fn}: out: expected a tuple (pairs, deaths or None)")
        return _output(out[0], "out[0]"), _output(out[1], "out[1]")
    if n < 2:
        raise Error(f"topofr.{fn}: {arg}: expected at least 2 points, got {n}")
    pairs = _empty(ref, lead + (n - 1, 2), "int32")
    deaths = _empty(ref, lead + (n - 1,), "like") if with_deaths else None
    return pairs, deaths


def persistence_pairs(dist: Array, *, with_deaths: bool = True, out=None, stream: Optional[int] = None) -> Pairs:
    """The n-1 0-dim Vietoris-Rips persistence pairs of an (n, n) distance matrix, or of each of a (B, n, n)
    batch: the minimum spanning tree's edges (u < v), sorted by (dist(u, v), u*n + v) as the released code's
    union-find emits them, and their deaths dist(u, v).

    >>> pairs, deaths = topofr.persistence_pairs(dist)
    """
    d = _input(dist, "dist")
    shape = _shape(d)
    if len(shape) not in (2, 3):
        raise Error(f"topofr.persistence_pairs: dist: expected (n, n) or (B, n, n), got shape {shape}")
    pairs, deaths = _pair_outputs(d, shape[:-2], shape[-1], with_deaths, out, "persistence_pairs", "dist")
    _core.persistence_pairs(d, pairs, deaths, **_exec(d, stream))
    return Pairs(pairs, deaths)


def persistence_pairs_from_points(points: Array, *, scale: float = 1.0, with_deaths: bool = True,
                                  out=None, stream: Optional[int] = None) -> Pairs:
    """persistence_pairs(pairwise_distances(points) / scale) for (n, d) points or B clouds (B, n, d), without
    ever holding B distance matrices (one n x n scratch per thread)."""
    p = _input(points, "points")
    shape = _shape(p)
    single = len(shape) == 2
    if single:
        p = p[None]
    elif len(shape) != 3:
        raise Error(f"topofr.persistence_pairs_from_points: points: expected (n, d) or (B, n, d), got {shape}")
    b, n = p.shape[0], p.shape[1]
    if out is not None:
        pairs, deaths = _pair_outputs(p, (b,), n, with_deaths, out, "persistence_pairs_from_points", "points")
        cp = pairs[None] if single else pairs
        cd = (deaths[None] if single else deaths) if deaths is not None else None
    else:
        pairs, deaths = _pair_outputs(p, (b,), n, with_deaths, None, "persistence_pairs_from_points", "points")
        cp, cd = pairs, deaths
        if single:
            pairs = pairs[0]
            deaths = deaths[0] if deaths is not None else None
    _core.persistence_pairs_from_points(p, scale, cp, cd, **_exec(p, stream))
    return Pairs(pairs, deaths)


def gather_pairs(dist: Array, pairs: Array, *, out: Optional[Array] = None, stream: Optional[int] = None) -> Array:
    """values[k] = dist[u_k, v_k] for (m, 2) int32 pairs."""
    d, p = _input(dist, "dist"), _pairs_input(pairs, "pairs")
    out = _output(out, "out") if out is not None else _empty(d, (p.shape[0],), "like")
    _core.gather_pairs(d, p, out, **_exec(d, stream))
    return out


def scatter_pairs_add(pairs: Array, values: Array, grad_dist: Array, *, stream: Optional[int] = None) -> Array:
    """grad_dist[u_k, v_k] += values[k] in order (the adjoint of gather_pairs), in place; returns grad_dist."""
    _core.scatter_pairs_add(_pairs_input(pairs, "pairs"), _input(values, "values"), _output(grad_dist, "grad_dist"),
                            **_exec(grad_dist, stream))
    return grad_dist


# ---- ISA -------------------------------------------------------------------------------------------------------
class ISADistResult(NamedTuple):
    loss: float
    grad_dist_z: Optional[Array]  # dL/d dist_z (n, n), non-zero only at the pairs' (u, v) entries
    grad_dist_x: Optional[Array]


class ISAResult(NamedTuple):
    loss: float
    grad_z: Optional[Array]  # dL/dz, shaped like z
    grad_x: Optional[Array]  # dL/dx, shaped like x


def _pairs_of(dist, name: str):
    """isa_loss's own persistence pairs of a matrix; an error names isa_loss's argument."""
    try:
        return persistence_pairs(dist, with_deaths=False).pairs
    except Error as e:
        raise Error(f"topofr.isa_loss: {name}: {e}") from None


def isa_loss(dist_x: Array, dist_z: Array, pairs_x: Optional[Array] = None, pairs_z: Optional[Array] = None, *,
             variant: str = "symmetric", reduction: str = "mean", grad_dist_z: bool = True,
             grad_dist_x: bool = False, out=None, stream: Optional[int] = None) -> ISADistResult:
    """The ISA loss between two (n, n) distance matrices (already scaled) given their persistence pairs
    (computed here when None). variant 'symmetric' (the paper) or 'sorted_deaths' (the released code);
    reduction 'mean' or 'sum'. Gradients w.r.t. the matrices are dense (n, n), zero off the pairs.
    out=(grad_dist_z or None, grad_dist_x or None) writes them into the caller's arrays."""
    dx, dz = _input(dist_x, "dist_x"), _input(dist_z, "dist_z")
    px = _pairs_input(pairs_x, "pairs_x") if pairs_x is not None else _pairs_of(dx, "dist_x")
    pz = _pairs_input(pairs_z, "pairs_z") if pairs_z is not None else _pairs_of(dz, "dist_z")
    if out is not None:
        gz, gx = (_output(o, "out") for o in _out_tuple(out, 2, "isa_loss",
                                                         "(grad_dist_z or None, grad_dist_x or None)"))
    else:
        gz = _empty(dz, _shape(dz), "like") if grad_dist_z else None
        gx = _empty(dx, _shape(dx), "like") if grad_dist_x else None
    loss = _core.isa_loss(dx, dz, px, pz, variant, reduction, gz, gx, **_exec(dx, stream))
    return ISADistResult(loss, gz, gx)


def isa_loss_from_points(x: Array, z: Array, *, variant: str = "symmetric", reduction: str = "mean",
                         x_scale: float = 1.0, z_scale: float = 1.0, grad_z: bool = True, grad_x: bool = False,
                         out=None, stream: Optional[int] = None) -> ISAResult:
    """ISA between the VR filtrations of inputs x ((n, dx) or an (n, C, H, W) image batch) and embeddings z
    (n, dz): distances divided by x_scale (topofr.image_scale(C, H, W) reproduces the released code) and
    z_scale, their persistence pairs, the loss and the gradients w.r.t. the points, in one call."""
    xs = _input(x, "x")
    xf = _flat_points(xs, "x")
    zf = _input(z, "z")
    if out is not None:
        gz, gx = (_output(o, "out") for o in _out_tuple(out, 2, "isa_loss_from_points",
                                                         "(grad_z or None, grad_x or None)"))
        gxf = _flat_points(gx, "out[1]", output=True) if gx is not None else None
    else:
        gz = _empty(zf, _shape(zf), "like") if grad_z else None
        gx = _empty(xs, _shape(xs), "like") if grad_x else None
        gxf = _flat_points(gx, "grad_x", output=True) if gx is not None else None
    loss = _core.isa_loss_from_points(xf, zf, variant, reduction, x_scale, z_scale, gz, gxf, **_exec(xf, stream))
    return ISAResult(loss, gz, gx)


# ---- GUM / SDS -------------------------------------------------------------------------------------------------
class GUMResult(NamedTuple):
    hard_posterior: Array  # h_i = 1 - gamma_i, the posterior of the uniform (hard-sample) component
    pi: float              # weight of the Gaussian (clean) component
    sigma: float           # its variance on the standardised scale
    c: float               # the uniform density
    iterations: int
    converged: bool


def gum_fit(entropy: Array, *, mode: str = "reference", max_iter: int = 1000, tol: float = 1e-10,
            symmetrize: bool = True, out: Optional[Array] = None, stream: Optional[int] = None) -> GUMResult:
    """Fits the released code's Gaussian-uniform mixture to one batch's entropies by EM (mode 'reference', or
    'robust' which never diverges) and returns the hard-sample posterior h (out may alias entropy)."""
    e = _input(entropy, "entropy")
    h = _output(out, "out") if out is not None else _empty(e, _shape(e), "like")
    max_iter = _integer(max_iter, "gum_fit", "max_iter", -_I32 - 1, _I32)  # the range check is the C++ one
    pi, sigma, c, it, conv = _core.gum_fit(e, h, mode, max_iter, tol, symmetrize, **_exec(e, stream))
    return GUMResult(h, pi, sigma, c, it, conv)


def sds_weights(hard_posterior: Array, p_gt: Optional[Array] = None, *, lambda_: float = 1.0, focal: bool = True,
                out: Optional[Array] = None, stream: Optional[int] = None) -> Array:
    """The structure damage score omega_i = (1 + h_i)^lambda * (1 - p_gt_i) (focal, the paper) or
    (1 + h_i)^lambda (focal=False, the released code). A constant: no gradient flows through it."""
    h = _input(hard_posterior, "hard_posterior")
    out = _output(out, "out") if out is not None else _empty(h, _shape(h), "like")
    _core.sds_weights(h, _input(p_gt, "p_gt"), lambda_, focal, out, **_exec(h, stream))
    return out


# ---- the combined-margin head ----------------------------------------------------------------------------------
class CombinedMargin(NamedTuple):
    """Target logit s * (cos(m1 * theta + m2) - m3). ArcFace: m2 = 0.5 (the default); CosFace: m2 = 0, m3 = 0.35.

    straight_through picks the target column's gradient (the forward is the same): False (the default, TopoFR's
    ArcFace) differentiates the margin, s * f'(cos); True passes s straight through, as insightface's
    arcface_torch does by applying the margin under torch.no_grad()."""
    s: float = 64.0
    m1: float = 1.0
    m2: float = 0.5
    m3: float = 0.0
    straight_through: bool = False

    @staticmethod
    def arcface(s: float = 64.0, m: float = 0.5, straight_through: bool = False) -> "CombinedMargin":
        return CombinedMargin(s, 1.0, m, 0.0, straight_through)

    @staticmethod
    def cosface(s: float = 64.0, m: float = 0.35, straight_through: bool = False) -> "CombinedMargin":
        return CombinedMargin(s, 1.0, 0.0, m, straight_through)


def _margin(m) -> Tuple[float, float, float, float, bool]:
    """The margin as the extension takes it: (s, m1, m2, m3, straight_through); a plain 4- or 5-tuple is read
    as CombinedMargin's fields."""
    m = CombinedMargin(*m) if not isinstance(m, CombinedMargin) else m
    return (float(m.s), float(m.m1), float(m.m2), float(m.m3), bool(m.straight_through))


#: The label of an ignored row (-100, PyTorch's default ``ignore_index``; topofr::ignore_label in C++): loss 0,
#: p_gt 0, no margin and a zero gradient. The head's labels are a class in [0, C), -1 or ignore_label; -1 means
#: "the target class lives on another shard" (insightface Partial FC): loss 0 and p_gt 0 here, but its
#: gradient is the row's softmax p over this shard's classes (docs/api.md).
ignore_label: int = int(_core.ignore_label)


def margin_logits(cos: Array, labels: Array, margin=CombinedMargin(), *, out: Optional[Array] = None,
                  stream: Optional[int] = None) -> Array:
    """s * f(cos) in each row's label column, s * cos elsewhere ((N, C)). labels: (N,) int32/int64, each a class
    in [0, C), -1 (target on another shard) or ignore_label (-100); the last two have no margin in their row."""
    c, y = _input(cos, "cos"), _input(labels, "labels")
    out = _output(out, "out") if out is not None else _empty(c, _shape(c), "like")
    _no_overlap("margin_logits", out, "logits", cos=c, labels=y)
    _core.margin_logits(c, y, _margin(margin), out, **_exec(c, stream))
    return out


def margin_logits_backward(cos: Array, labels: Array, grad_logits: Array, margin=CombinedMargin(), *,
                           out: Optional[Array] = None, stream: Optional[int] = None) -> Array:
    """The adjoint of margin_logits: dL/dcos from dL/dlogits."""
    c, y, g = _input(cos, "cos"), _input(labels, "labels"), _input(grad_logits, "grad_logits")
    out = _output(out, "out") if out is not None else _empty(c, _shape(c), "like")
    _no_overlap("margin_logits_backward", out, "grad_cos", cos=c, labels=y, grad_logits=g)
    _core.margin_logits_backward(c, y, _margin(margin), g, out, **_exec(c, stream))
    return out


class MarginCEForward(NamedTuple):
    loss: Array     # per-sample cross-entropy of the margin logits (N,); 0 for labels -1 and ignore_label
    entropy: Array  # -sum_j p_ij log(p_ij + entropy_eps)
    p_gt: Array     # p_{i, y_i}; 0 for labels -1 and ignore_label
    lse: Array      # log sum_j exp(z_ij), for margin_ce_backward


def margin_ce_forward(cos: Array, labels: Array, margin=CombinedMargin(), *, entropy_eps: float = 1e-5,
                      out=None, stream: Optional[int] = None) -> MarginCEForward:
    """Pass 1 of the fused margin-softmax cross-entropy: per-row loss, entropy, p_gt and log-sum-exp, reading the
    (N, C) cosines once. out=(loss, entropy, p_gt, lse); any but loss may be None (not computed)."""
    c, y = _input(cos, "cos"), _input(labels, "labels")
    n = c.shape[0] if len(c.shape) == 2 else 0
    if out is None:
        out = tuple(_empty(c, (n,), "like") for _ in range(4))
    elif not isinstance(out, (tuple, list)) or len(out) != 4 or out[0] is None:
        raise TypeError("topofr.margin_ce_forward: out: expected a tuple (loss, entropy, p_gt, lse); only loss is "
                        "required")
    lo, en, pg, ls = (_output(o, "out") for o in out)
    for o, name in ((lo, "loss"), (en, "entropy"), (pg, "p_gt"), (ls, "lse")):
        _no_overlap("margin_ce_forward", o, name, cos=c, labels=y)
    _core.margin_ce_forward(c, y, _margin(margin), entropy_eps, lo, en, pg, ls, **_exec(c, stream))
    return MarginCEForward(lo, en, pg, ls)


def margin_ce_backward(cos: Array, labels: Array, lse: Array, weights: Optional[Array] = None,
                       margin=CombinedMargin(), *, grad_scale: float = 1.0, out: Optional[Array] = None,
                       stream: Optional[int] = None) -> Array:
    """Pass 2: grad_cos[i, j] = weights[i] * grad_scale * d loss_i / d cos[i, j] (weights None: all 1). With
    weights = omega (SDS) and grad_scale = 1/N this is the gradient of mean_i omega_i * loss_i. A row labelled -1
    (target on another shard) gets weights[i] * grad_scale * s * p_ij in every column, p_ij = exp(s cos_ij - lse_i):
    given the lse combined over all shards, Partial FC's local gradient; a row labelled ignore_label gets 0."""
    c, y, s = _input(cos, "cos"), _input(labels, "labels"), _input(lse, "lse")
    out = _output(out, "out") if out is not None else _empty(c, _shape(c), "like")
    w = _input(weights, "weights")
    _no_overlap("margin_ce_backward", out, "grad_cos", cos=c, labels=y, lse=s, weights=w)
    _core.margin_ce_backward(c, y, _margin(margin), s, w, grad_scale, out, **_exec(c, stream))
    return out


# ---- the class-sharded head (Partial FC primitives, topofr/shard.hpp; CUDA: topofr/cuda/shard.cuh) -----------
# Like every block: NumPy arrays or CPU tensors run on the CPU, CUDA tensors on their device (torch's current
# stream, or stream=), the outputs are allocated where the first array lives. On CUDA the values the CPU checks
# element by element (labels, cosines, lse_global, the stats) are checked on the device: a bad one is a
# topofr.Error when the call synchronises, with the device's description instead of the element's index.


class ClassRange(NamedTuple):
    """The classes [begin, end) of one rank (topofr::class_range)."""
    begin: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.begin


def _shard(shard, fn: str) -> ClassRange:
    """A (begin, end) pair of integers (a ClassRange, a tuple); the C++ checks its values."""
    if not isinstance(shard, (tuple, list)) or len(shard) != 2:
        raise TypeError(f"topofr.{fn}: shard: expected a (begin, end) pair (topofr.shard_range's result), got "
                        f"{type(shard).__name__}")
    b = _integer(shard[0], fn, "shard", -2 ** 63, 2 ** 63 - 1)
    e = _integer(shard[1], fn, "shard", -2 ** 63, 2 ** 63 - 1)
    return ClassRange(b, e)


def shard_range(classes: int, world: int, rank: int) -> ClassRange:
    """insightface's split of `classes` over `world` ranks: rank r owns classes // world + (r < classes % world)
    classes, from (classes // world) * r + min(r, classes % world). Errors: world < 1, rank outside [0, world),
    classes < world ("world > number of classes")."""
    args = [_integer(v, "shard_range", k, -2 ** 63, 2 ** 63 - 1)
            for k, v in (("classes", classes), ("world", world), ("rank", rank))]
    return ClassRange(*_core.shard_range(*args))


def localize_labels(labels: Array, shard, classes: int, *, out: Optional[Array] = None,
                    stream: Optional[int] = None) -> Array:
    """Global labels (N,) int32/int64 to this shard's: a class y in shard = (begin, end) -> y - begin, a class in
    [0, classes) on another shard -> -1, -1 and ignore_label (-100) unchanged; any other value is an error naming
    the element (on the CPU checked before anything is written; on CUDA found on the device, a bad label copied
    unchanged), so out may be labels itself. The output is on labels' device."""
    fn = "localize_labels"
    y = _input(labels, "labels")
    sh = _shard(shard, fn)
    out = _output(out, "out") if out is not None else _empty(y, _shape(y), "like")
    _core.localize_labels(y, sh.begin, sh.end, _integer(classes, fn, "classes", -2 ** 63, 2 ** 63 - 1), out,
                          **_exec(y, stream))
    return out


class PartialFCSample(NamedTuple):
    """partial_fc_sample's result: ``index`` (C_local,) int64, the sampled local classes in ascending order then
    -1 (``index[:count]`` = ``classes``); ``labels`` (N,), each local label's position in the sample (the labels of
    the N x count cosine matrix ``cos[:, classes]``; -1 and -100 unchanged); ``count``."""
    index: Array
    labels: Array
    count: int

    @property
    def classes(self) -> Array:
        """index[:count]: the sampled local classes, ascending."""
        return self.index[:self.count]


def partial_fc_sample(local_labels: Array, shard, *, num_sample: Optional[int] = None,
                      sample_rate: Optional[float] = None, seed: int = 0, step: int = 0,
                      out=None, stream: Optional[int] = None) -> PartialFCSample:
    """Partial FC's class sample on one rank (insightface PartialFC_V2.sample): every local class that is some
    row's target is kept, the other classes with the highest keys fill the sample up to num_sample (or
    max(1, int(sample_rate * C_local)), insightface's count); count = max(num_sample, number of positives). Keys
    come from a counter-based stream of (seed, shard.begin + j, step), so every rank can recompute every rank's
    sample. local_labels: (N,) int32/int64 (localize_labels' output); shard: this rank's (begin, end).
    out=(index (C_local,) int64, sampled_labels (N,) of local_labels' dtype; it may be local_labels itself).
    On CUDA the same sample as the CPU's (a stable sort of the same keys); the outputs are on local_labels'
    device and count, a Python int, is read when the call synchronises."""
    fn = "partial_fc_sample"
    y = _input(local_labels, "local_labels")
    sh = _shard(shard, fn)
    if (num_sample is None) == (sample_rate is None):
        raise TypeError(f"topofr.{fn}: num_sample: give exactly one of num_sample and sample_rate")
    if num_sample is None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.floating)) or \
                not 0.0 < float(sample_rate) <= 1.0:
            raise Error(f"topofr.{fn}: sample_rate: must be in (0, 1], got {sample_rate!r}")
        num_sample = max(1, int(float(sample_rate) * max(sh.size, 0)))
    num_sample = _integer(num_sample, fn, "num_sample", -2 ** 63, 2 ** 63 - 1)
    seed, step = _integer(seed, fn, "seed", 0, _U64), _integer(step, fn, "step", 0, _U64)
    if out is not None:
        index, sampled = (_output(o, "out") for o in _out_tuple(out, 2, fn, "(index, sampled_labels)"))
    else:
        index, sampled = _empty(y, (max(sh.size, 0),), "int64"), _empty(y, _shape(y), "like")
    count = _core.partial_fc_sample(y, sh.begin, sh.end, num_sample, seed, step, index, sampled, **_exec(y, stream))
    return PartialFCSample(index, sampled, int(count))


def shard_stats(cos: Array, local_labels: Array, margin=CombinedMargin(), *, out: Optional[Array] = None,
                stream: Optional[int] = None) -> Array:
    """Per-row softmax statistics of this shard's margin logits z (s f(cos) in the local label column, s cos
    elsewhere), in double: an (N, 4) float64 array whose columns are [max, sum_exp, sum_exp_z, target] (C++
    topofr::shard_row_stats; sum_exp_z = sum_j exp(z_j - max) (z_j - max); target = z_y, NaN when the row's label
    is not local). cos: (N, C_local) float32/float64; local_labels: (N,) from localize_labels. out: an (N, 4)
    float64 array with dense rows, written in place (the library writes the 4-double structs into it), on cos's
    device. On CUDA the row sums are reassociated (a block reduction): within a few ulp of the CPU's."""
    fn = "shard_stats"
    c, y = _input(cos, "cos"), _input(local_labels, "local_labels")
    n = c.shape[0] if len(c.shape) == 2 else 0
    out = _output(out, "out") if out is not None else _empty(c, (n, 4), "float64")
    _no_overlap(fn, out, "stats", cos=c, local_labels=y)
    _core.shard_stats(c, y, _margin(margin), out, **_exec(c, stream))
    return out


class ShardCombined(NamedTuple):
    lse: Optional[Array]      # the global log-sum-exp of each row (for margin_ce_backward)
    loss: Optional[Array]     # lse - target; 0 when the target is on no rank
    p_gt: Optional[Array]     # exp(target - lse); 0 when the target is on no rank
    entropy: Optional[Array]  # the eps = 0 entropy -sum_j p_j log p_j (shard_entropy_eps_partial for eps > 0)


def _dtype_str(dtype) -> str:
    name = str(getattr(dtype, "name", dtype)).replace("torch.", "")
    if dtype in (float, "float") or name == "double":
        name = "float64"
    if name == "float":
        name = "float32"
    return name


def combine_shard_stats(per_rank: Array, dtype: Any = "float64", *, out=None,
                        stream: Optional[int] = None) -> ShardCombined:
    """Combines the (W, N, 4) float64 statistics of W ranks (shard_stats' outputs stacked in rank order, e.g. an
    all-gather) in rank order 0..W-1, so every rank gets bitwise the same result: per row lse, loss, p_gt and the
    eps = 0 entropy, each (N,) of `dtype` ("float32"/"float64", a NumPy or torch dtype; the cosines' dtype), in
    per_rank's framework and on its device. out=(lse, loss, p_gt, entropy): the caller's arrays, any of them None
    (not computed). Errors: a non-finite max or sum_exp_z, sum_exp < 1, a row with a target on two ranks. On
    CUDA the same per-row code in the same rank order (every rank running it on the GPU agrees bitwise)."""
    fn = "combine_shard_stats"
    p = _input(per_rank, "per_rank")
    shape = _shape(p)
    if len(shape) == 3 and not _dense(p):
        p = p.contiguous() if _is_torch(p) else np.ascontiguousarray(p)
    n = shape[1] if len(shape) == 3 else 0
    if out is None:
        d = _dtype_str(dtype)
        if d not in ("float32", "float64"):
            raise TypeError(f"topofr.{fn}: dtype: expected float32 or float64, got {dtype!r}")
        outs = tuple(_empty(p, (n,), d) for _ in range(4))
    else:
        outs = tuple(_output(o, "out") for o in _out_tuple(out, 4, fn, "(lse, loss, p_gt, entropy), any None"))
    for o, name in zip(outs, ShardCombined._fields):
        _no_overlap(fn, o, name, per_rank=p)
    _core.combine_shard_stats(p, *outs, **_exec(p, stream))
    return ShardCombined(*outs)


def _dense(a) -> bool:
    """C-contiguous (the layout combine_shard_stats reads the W x N structs in)."""
    if _is_torch(a):
        return a.is_contiguous()
    if isinstance(a, np.ndarray):
        return a.flags.c_contiguous
    return True  # another DLPack array (CuPy, ...): not copied here; the extension checks its strides


def shard_entropy_eps_partial(cos: Array, local_labels: Array, lse_global: Array, margin=CombinedMargin(), *,
                              entropy_eps: float = 1e-5, out: Optional[Array] = None,
                              stream: Optional[int] = None) -> Array:
    """This shard's part of the eps > 0 entropy -sum_j p_j log(p_j + eps), which needs the global lse:
    partial_i = sum_{j local} p_ij log(p_ij + eps), p_ij = exp(z_ij - lse_global_i), in float64 (N,). Sum it over
    the ranks (an all-reduce) and negate to get the entropy. lse_global: combine_shard_stats' lse, cos's dtype.
    The output is on cos's device. (C++: the argument is `eps`.)"""
    fn = "shard_entropy_eps_partial"
    c, y, s = _input(cos, "cos"), _input(local_labels, "local_labels"), _input(lse_global, "lse_global")
    n = c.shape[0] if len(c.shape) == 2 else 0
    out = _output(out, "out") if out is not None else _empty(c, (n,), "float64")
    _no_overlap(fn, out, "partial", cos=c, local_labels=y, lse_global=s)
    _core.shard_entropy_eps_partial(c, y, _margin(margin), s, float(entropy_eps), out, **_exec(c, stream))
    return out


# ---- RSP -------------------------------------------------------------------------------------------------------
class RSPResult(NamedTuple):
    images: Array  # the perturbed batch (the input itself when inplace=True)
    kinds: Array   # int32 per sample: -1 none, 0 blur, 1 grayscale, 2 colour jitter, 3 erasing


def rsp_perturb(images: Array, *, probability: float = 0.2, seed: int = 0, step: int = 0,
                inplace: bool = False, stream: Optional[int] = None) -> RSPResult:
    """Random structure perturbation of a normalised (N, C, H, W) batch, C in {1, 3}: each sample is perturbed
    with `probability` by one of blur, grayscale, colour jitter or erasing, drawn from a counter-based stream
    keyed by (seed, sample, step), so the result does not depend on threads or devices. inplace=True writes
    into `images` (which must then be contiguous and writable); otherwise a perturbed copy is returned."""
    if inplace:
        im = _output(images, "images")
    else:
        src = _input(images, "images")
        im = src.clone() if _is_torch(src) else np.array(src, copy=True, order="C")
        if _is_torch(im):
            im = im.contiguous()
    kinds = _empty(im, (im.shape[0],) if len(im.shape) else (0,), "int32")
    seed, step = _integer(seed, "rsp_perturb", "seed", 0, _U64), _integer(step, "rsp_perturb", "step", 0, _U64)
    _core.rsp_perturb(im, probability, seed, step, kinds, **_exec(im, stream))
    return RSPResult(images if inplace else im, kinds)


def rsp_draw(sample: int, c: int, h: int, w: int, *, probability: float = 0.2, seed: int = 0,
             step: int = 0) -> dict:
    """Every random choice RSP makes for one sample (a pure function of seed, step, sample, H, W)."""
    sample = _integer(sample, "rsp_draw", "sample", 0, 2 ** 32 - 1)  # rsp_perturb's stream contract
    c = _integer(c, "rsp_draw", "c", 1, 3)
    h, w = _integer(h, "rsp_draw", "h", 1, 2 ** 62), _integer(w, "rsp_draw", "w", 1, 2 ** 62)
    seed, step = _integer(seed, "rsp_draw", "seed", 0, _U64), _integer(step, "rsp_draw", "step", 0, _U64)
    return _core.rsp_draw(sample, c, h, w, probability, seed, step)


# ---- the objective ---------------------------------------------------------------------------------------------
@dataclass
class GUMOptions:
    mode: str = "reference"  # or 'robust'
    max_iter: int = 1000
    tol: float = 1e-10
    symmetrize: bool = True


@dataclass
class ISAOptions:
    variant: str = "symmetric"  # the paper; 'sorted_deaths' is the released code
    reduction: str = "mean"
    x_scale: float = 1.0        # topofr.image_scale(C, H, W) reproduces the released code's input scaling
    z_scale: float = 1.0


@dataclass
class ObjectiveOptions:
    """L = (1/N) sum_i omega_i L_arc,i + alpha * L_sa (docs/api.md, 'The TopoFR objective')."""
    margin: CombinedMargin = CombinedMargin()
    alpha: float = 0.1
    lambda_: float = 1.0
    use_isa: bool = True
    use_sds: bool = True
    focal: bool = True
    entropy_eps: float = 1e-5
    gum: GUMOptions = field(default_factory=GUMOptions)
    isa: ISAOptions = field(default_factory=ISAOptions)

    @staticmethod
    def paper(**kw) -> "ObjectiveOptions":
        """The paper's formulas (the defaults)."""
        return ObjectiveOptions(**kw)

    @staticmethod
    def released_code(**kw) -> "ObjectiveOptions":
        """What the released training code computes: sorted-deaths ISA, no focal term."""
        o = ObjectiveOptions(focal=False, **kw)
        o.isa = replace(o.isa, variant="sorted_deaths")
        return o

    def _native(self):
        return _core.ObjectiveOptions(_margin(self.margin), self.alpha, self.lambda_, self.use_isa, self.use_sds,
                                      self.focal, self.entropy_eps, self.gum.mode, self.gum.max_iter, self.gum.tol,
                                      self.gum.symmetrize, self.isa.variant, self.isa.reduction, self.isa.x_scale,
                                      self.isa.z_scale)


class ObjectiveResult(NamedTuple):
    loss: float
    loss_cls: float
    discrepancy: float       # L_sa before alpha (0 when use_isa is off)
    pi: float
    sigma: float
    hard_fraction: float     # fraction of samples with h > 0.5
    gum_iterations: int
    grad_z: Array            # dL/dz
    grad_cos: Array          # dL/dcos
    sample_loss: Array       # per-sample margin cross-entropy
    entropy: Array
    p_gt: Array
    hard_posterior: Array
    weights: Array           # omega (SDS)


class Objective:
    """The whole TopoFR objective in one call: margin-CE forward, GUM on the entropies, SDS weights, the weighted
    CE backward and ISA between clean inputs x and embeddings z of the perturbed batch. Keeps its buffers between
    calls. The scalar type is the cosines'."""

    def __init__(self, options: Optional[ObjectiveOptions] = None):
        self.options = options if options is not None else ObjectiveOptions()
        self._obj = _core.Objective(self.options._native())

    def __call__(self, x: Array, z: Array, cos: Array, labels: Array, *, out=None,
                 stream: Optional[int] = None) -> ObjectiveResult:
        """x: (n, dx) or (n, C, H, W) clean inputs; z: (n, dz) embeddings; cos: (N, C) cosines (N = n);
        labels: (N,) int32/int64, as for margin_ce_backward (a class, -1 = target on another shard, or
        ignore_label). out=(grad_z, grad_cos) writes the gradients into the caller's arrays."""
        xf = _flat_points(_input(x, "x"), "x")
        zz, c, y = _input(z, "z"), _input(cos, "cos"), _input(labels, "labels")
        if out is not None:
            gz, gc = (_output(o, "out") for o in _out_tuple(out, 2, "Objective", "(grad_z, grad_cos)"))
            if gz is None or gc is None:
                raise TypeError("topofr.Objective: out: both grad_z and grad_cos are required")
        else:
            gz, gc = _empty(c, _shape(zz), "like"), _empty(c, _shape(c), "like")
        n = c.shape[0] if len(c.shape) == 2 else 0
        per = [_empty(c, (n,), "like") for _ in range(5)]
        r = self._obj(xf, zz, c, y, gz, gc, *per, **_exec(c, stream))
        return ObjectiveResult(r["loss"], r["loss_cls"], r["discrepancy"], r["pi"], r["sigma"], r["hard_fraction"],
                               r["gum_iterations"], gz, gc, *per)
