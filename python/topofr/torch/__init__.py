"""topofr.torch: TopoFR's losses as PyTorch autograd functions and modules, with the library's own gradients.

Every backward pass here is a gradient the C++ library computed in the forward call (ISA, the fused
margin cross-entropy, the whole TopoFR objective), never a re-derivation by autograd:

* :func:`isa_loss` / :class:`ISALoss` -- the topological structure alignment loss L_sa between the
  Vietoris-Rips filtrations of the inputs x and the embeddings z (gradients w.r.t. both).
* :func:`margin_ce` / :class:`MarginCE` -- the combined-margin (ArcFace / CosFace) softmax cross-entropy, and
  the same weighted by the structure damage score (SDS) from the Gaussian-uniform mixture (GUM) fit of the
  prediction entropies.
* :class:`TopoFRLoss` -- the whole objective L = (1/N) sum_i omega_i L_arc,i + alpha L_sa in one library call.
* :class:`RSP` -- random structure perturbation of an image batch (no gradient).
* ``topofr.torch.distributed`` (a submodule, imported on first use of ``topofr.torch.distributed``):
  ``ShardedMarginCE``, Partial FC's class-sharded margin head with SDS weights over ``torch.distributed``.

Inputs are float32 or float64 tensors (the outputs have the inputs' dtype); labels int32 or int64. CPU tensors
are seen zero-copy through DLPack; CUDA tensors are passed through as they are (an extension built without CUDA
raises a TypeError naming the argument). Errors name the argument: ``topofr.Error`` (a ValueError) for shapes
and values, ``TypeError`` for dtypes and devices.

Where ``torch >= 2.4`` the kernels are also registered as ``torch.library`` custom ops ``topofr::isa_loss``,
``topofr::margin_ce`` and ``topofr::objective`` (with fake implementations and autograd formulas; helpers
``topofr::margin_ce_backward`` and ``topofr::sds_weights``), so that ``torch.compile(fullgraph=True)`` traces
through every function and module here; on older torch the same kernels run inside ``torch.autograd.Function``.
Both paths call the same ``_*_kernel`` functions below.

Paper vs released code: ISA ``variant="symmetric"`` with the paper's 1/2 is the paper, ``"sorted_deaths"`` the
released code; SDS ``focal=True`` (the (1 - p_gt) factor) is the paper, ``focal=False`` the released code; an
image batch's input distances divided by ``topofr.image_scale(C, H, W)`` (``x_scale``) are the released code's.
``TopoFRLoss.paper()`` and ``TopoFRLoss.released_code()`` build the two settings.
"""

import itertools
import os
import re
import weakref
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

import topofr as _tf
from topofr import CombinedMargin, GUMOptions, ObjectiveOptions, ObjectiveResult

__all__ = ["isa_loss", "ISALoss", "margin_ce", "MarginCE", "MarginCEStats", "TopoFRLoss", "RSP", "custom_ops_enabled"]


def _torch_version() -> Tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", torch.__version__)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


#: Whether this torch has torch.library.custom_op (2.4 and later) and the ops below were registered.
_HAS_CUSTOM_OP: bool = _torch_version() >= (2, 4) and hasattr(torch.library, "custom_op")
#: Whether the public functions dispatch to the custom ops (True where registered; tests may flip it to exercise
#: the autograd.Function path, and TOPOFR_TORCH_NO_CUSTOM_OPS=1 turns it off at import).
_USE_CUSTOM_OPS: bool = _HAS_CUSTOM_OP and os.environ.get("TOPOFR_TORCH_NO_CUSTOM_OPS", "") not in ("1", "true")


def custom_ops_enabled() -> bool:
    """Whether the public functions run as ``torch.library`` custom ops (torch >= 2.4) rather than as
    ``torch.autograd.Function``s."""
    return _HAS_CUSTOM_OP and _USE_CUSTOM_OPS


def _times(grad: Tensor, t: Tensor) -> Tensor:
    """grad * t for a backward pass, where t is the library's gradient made by this call's forward. On the CPU,
    an upstream gradient of exactly 1 (what loss.backward() sends) returns t itself: at TopoFR's shape dL/dcos
    is 44 MB, and a second such tensor per step costs more than the whole objective (docs/benchmarks.md).
    Only plain tensors are looked at, so tracing (fake or functional tensors, CUDA) always multiplies."""
    if type(grad) is torch.Tensor and grad.device.type == "cpu" and grad.numel() == 1 and float(grad) == 1.0:
        return t.detach()  # an alias without the forward's history (a custom op's saved outputs have one)
    return grad * t


def _grad_wanted(t: Tensor) -> bool:
    return torch.is_grad_enabled() and t.requires_grad


#: (s, m1, m2, m3, straight_through): a CombinedMargin as plain values (what a custom op's arguments can be).
MarginTuple = Tuple[float, float, float, float, bool]


def _margin_tuple(margin: Any) -> MarginTuple:
    m = margin if isinstance(margin, CombinedMargin) else CombinedMargin(*margin)
    return (float(m.s), float(m.m1), float(m.m2), float(m.m3), bool(m.straight_through))


def _check_tensor(t: Any, fn: str, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"topofr.torch.{fn}: {name}: expected a torch.Tensor, got {type(t).__name__}")


# ---- the kernels: the only places that call the library; both the Function and the custom-op path use them -----
def _isa_kernel(x: Tensor, z: Tensor, variant: str, reduction: str, x_scale: float, z_scale: float,
                want_gx: bool, want_gz: bool) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
    """(loss 0-d in z's dtype, dL/dx shaped like x or None, dL/dz shaped like z or None)."""
    r = _tf.isa_loss_from_points(x, z, variant=variant, reduction=reduction, x_scale=x_scale, z_scale=z_scale,
                                 grad_z=want_gz, grad_x=want_gx)
    loss = torch.tensor(r.loss, dtype=z.dtype, device=z.device)
    return loss, r.grad_x, r.grad_z


def _margin_ce_kernel(cos: Tensor, labels: Tensor, margin: MarginTuple,
                      entropy_eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-row (loss, entropy, p_gt, lse), each (N,) in cos's dtype."""
    f = _tf.margin_ce_forward(cos, labels, CombinedMargin(*margin), entropy_eps=entropy_eps)
    return f.loss, f.entropy, f.p_gt, f.lse


def _margin_ce_backward_kernel(cos: Tensor, labels: Tensor, lse: Tensor, grad_loss: Tensor,
                               margin: MarginTuple) -> Tensor:
    """grad_cos[i, j] = grad_loss[i] * d loss_i / d cos[i, j] (the library's pass 2, grad_scale = 1)."""
    return _tf.margin_ce_backward(cos, labels, lse, grad_loss.to(cos.dtype), CombinedMargin(*margin), grad_scale=1.0)


def _sds_kernel(entropy: Tensor, p_gt: Tensor, mode: str, max_iter: int, tol: float, symmetrize: bool,
                lambda_: float, focal: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """GUM fit of the entropies and the SDS weights: (hard posterior h (N,), omega (N,), float64 [pi, sigma,
    hard_fraction])."""
    g = _tf.gum_fit(entropy, mode=mode, max_iter=max_iter, tol=tol, symmetrize=symmetrize)
    omega = _tf.sds_weights(g.hard_posterior, p_gt, lambda_=lambda_, focal=focal)
    n = max(int(entropy.shape[0]), 1)
    hard_fraction = float((g.hard_posterior > 0.5).sum()) / n
    return g.hard_posterior, omega, torch.tensor([g.pi, g.sigma, hard_fraction], dtype=torch.float64)


def _objective_kernel(objective: _tf.Objective, x: Tensor, z: Tensor, cos: Tensor,
                      labels: Tensor) -> ObjectiveResult:
    """One call of the library's objective: loss, gradients w.r.t. z and cos, and the diagnostics."""
    return objective(x, z, cos, labels)


def _stats_tensor(r: ObjectiveResult) -> Tensor:
    return torch.tensor([r.loss, r.loss_cls, r.discrepancy, r.pi, r.sigma, r.hard_fraction, r.gum_iterations],
                        dtype=torch.float64)


def _result_from_stats(stats: Tensor, grad_z: Tensor, grad_cos: Tensor, per: Tuple[Tensor, ...]) -> ObjectiveResult:
    s = stats.detach().cpu().tolist()
    return ObjectiveResult(s[0], s[1], s[2], s[3], s[4], s[5], int(s[6]), grad_z, grad_cos, *per)


# ---- the autograd.Function path (every torch) ------------------------------------------------------------------
class _ISAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, z: Tensor, variant: str, reduction: str, x_scale: float, z_scale: float,
                grad_on: bool) -> Tensor:  # type: ignore[override]
        want_gx = grad_on and ctx.needs_input_grad[0]
        want_gz = grad_on and ctx.needs_input_grad[1]
        loss, gx, gz = _isa_kernel(x, z, variant, reduction, x_scale, z_scale, want_gx, want_gz)
        ctx.grads = (gx, gz)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        gx, gz = ctx.grads
        return (_times(grad, gx) if gx is not None else None, _times(grad, gz) if gz is not None else None,
                None, None, None, None, None)


class _MarginCEFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, cos: Tensor, labels: Tensor, s: float, m1: float, m2: float, m3: float,
                straight_through: bool, entropy_eps: float):  # type: ignore[override]
        margin = (s, m1, m2, m3, straight_through)
        loss, entropy, p_gt, lse = _margin_ce_kernel(cos, labels, margin, entropy_eps)
        ctx.margin = margin
        ctx.save_for_backward(cos, labels)
        ctx.lse = lse
        ctx.mark_non_differentiable(entropy, p_gt)
        return loss, entropy, p_gt

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor, grad_entropy: Any, grad_p_gt: Any):  # type: ignore[override]
        cos, labels = ctx.saved_tensors
        g = _margin_ce_backward_kernel(cos, labels, ctx.lse, grad_loss, ctx.margin)
        return g, None, None, None, None, None, None, None


class _ObjectiveFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, z: Tensor, cos: Tensor, labels: Tensor, objective: _tf.Objective,
                sink: Dict[str, Any]) -> Tensor:  # type: ignore[override]
        r = _objective_kernel(objective, x, z, cos, labels)
        sink["result"] = r
        ctx.grads = (r.grad_z, r.grad_cos)
        return torch.tensor(r.loss, dtype=cos.dtype, device=cos.device)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        gz, gc = ctx.grads
        return None, _times(grad, gz), _times(grad, gc), None, None, None


# ---- the torch.library path (torch >= 2.4) ---------------------------------------------------------------------
#: Objectives the custom op reaches by handle (an op's arguments can only be tensors and plain values).
_OBJECTIVES: "weakref.WeakValueDictionary[int, _tf.Objective]" = weakref.WeakValueDictionary()
_HANDLES = itertools.count(1)

if _HAS_CUSTOM_OP:  # pragma: no cover - only on torch >= 2.4
    @torch.library.custom_op("topofr::isa_loss", mutates_args=())
    def _isa_op(x: Tensor, z: Tensor, variant: str, reduction: str, x_scale: float, z_scale: float,
                want_gx: bool, want_gz: bool) -> Tuple[Tensor, Tensor, Tensor]:
        loss, gx, gz = _isa_kernel(x, z, variant, reduction, x_scale, z_scale, want_gx, want_gz)
        # An op returns tensors only: an unrequested gradient is an empty tensor.
        gx = gx if gx is not None else x.new_empty((0,))
        gz = gz if gz is not None else z.new_empty((0,))
        return loss, gx, gz

    @_isa_op.register_fake
    def _(x, z, variant, reduction, x_scale, z_scale, want_gx, want_gz):
        return (z.new_empty(()), x.new_empty(x.shape) if want_gx else x.new_empty((0,)),
                z.new_empty(z.shape) if want_gz else z.new_empty((0,)))

    def _isa_setup(ctx, inputs, output):
        ctx.want = (inputs[6], inputs[7])
        ctx.save_for_backward(output[1], output[2])

    @once_differentiable  # the library has no second derivatives
    def _isa_backward(ctx, grad, _gx, _gz):
        gx, gz = ctx.saved_tensors
        return (_times(grad, gx) if ctx.want[0] else None, _times(grad, gz) if ctx.want[1] else None,
                None, None, None, None, None, None)

    _isa_op.register_autograd(_isa_backward, setup_context=_isa_setup)

    @torch.library.custom_op("topofr::margin_ce", mutates_args=())
    def _margin_ce_op(cos: Tensor, labels: Tensor, s: float, m1: float, m2: float, m3: float,
                      straight_through: bool, entropy_eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return _margin_ce_kernel(cos, labels, (s, m1, m2, m3, straight_through), entropy_eps)

    @_margin_ce_op.register_fake
    def _(cos, labels, s, m1, m2, m3, straight_through, entropy_eps):
        n = cos.shape[0]
        return tuple(cos.new_empty((n,)) for _ in range(4))

    def _margin_ce_setup(ctx, inputs, output):
        ctx.margin = tuple(inputs[2:7])
        ctx.save_for_backward(inputs[0], inputs[1], output[3])

    @once_differentiable  # the library has no second derivatives
    def _margin_ce_backward(ctx, grad_loss, _ge, _gp, _gl):
        cos, labels, lse = ctx.saved_tensors
        return (torch.ops.topofr.margin_ce_backward(cos, labels, lse, grad_loss, *ctx.margin),
                None, None, None, None, None, None, None)

    _margin_ce_op.register_autograd(_margin_ce_backward, setup_context=_margin_ce_setup)

    @torch.library.custom_op("topofr::margin_ce_backward", mutates_args=())
    def _margin_ce_backward_op(cos: Tensor, labels: Tensor, lse: Tensor, grad_loss: Tensor, s: float, m1: float,
                               m2: float, m3: float, straight_through: bool) -> Tensor:
        return _margin_ce_backward_kernel(cos, labels, lse, grad_loss.contiguous(), (s, m1, m2, m3, straight_through))

    @_margin_ce_backward_op.register_fake
    def _(cos, labels, lse, grad_loss, s, m1, m2, m3, straight_through):
        return cos.new_empty(cos.shape)

    @torch.library.custom_op("topofr::sds_weights", mutates_args=())
    def _sds_op(entropy: Tensor, p_gt: Tensor, mode: str, max_iter: int, tol: float, symmetrize: bool,
                lambda_: float, focal: bool) -> Tuple[Tensor, Tensor, Tensor]:
        return _sds_kernel(entropy, p_gt, mode, max_iter, tol, symmetrize, lambda_, focal)

    @_sds_op.register_fake
    def _(entropy, p_gt, mode, max_iter, tol, symmetrize, lambda_, focal):
        return (entropy.new_empty(entropy.shape), entropy.new_empty(entropy.shape),
                entropy.new_empty((3,), dtype=torch.float64, device="cpu"))

    @torch.library.custom_op("topofr::objective", mutates_args=())
    def _objective_op(x: Tensor, z: Tensor, cos: Tensor, labels: Tensor, handle: int) -> Tuple[
            Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        r = _objective_kernel(_OBJECTIVES[handle], x, z, cos, labels)
        loss = torch.tensor(r.loss, dtype=cos.dtype, device=cos.device)
        return (loss, r.grad_z, r.grad_cos, r.sample_loss, r.entropy, r.p_gt, r.hard_posterior, r.weights,
                _stats_tensor(r))

    @_objective_op.register_fake
    def _(x, z, cos, labels, handle):
        n = cos.shape[0]
        return ((cos.new_empty(()), cos.new_empty(z.shape), cos.new_empty(cos.shape))
                + tuple(cos.new_empty((n,)) for _ in range(5))
                + (cos.new_empty((7,), dtype=torch.float64, device="cpu"),))

    def _objective_setup(ctx, inputs, output):
        ctx.save_for_backward(output[1], output[2])

    @once_differentiable  # the library has no second derivatives
    def _objective_backward(ctx, g, *_unused):
        gz, gc = ctx.saved_tensors
        return None, _times(g, gz), _times(g, gc), None, None

    _objective_op.register_autograd(_objective_backward, setup_context=_objective_setup)


# ---- the public API ---------------------------------------------------------------------------------------------
def isa_loss(x: Tensor, z: Tensor, *, variant: str = "symmetric", reduction: str = "mean", x_scale: float = 1.0,
             z_scale: float = 1.0) -> Tensor:
    """The ISA (topological structure alignment) loss L_sa between inputs x and embeddings z.

    x: (n, dx) points or an (n, C, H, W) image batch (seen as n points of dimension CHW); z: (n, dz); both
    float32 or float64, the same dtype. Distances are Euclidean, divided by x_scale and z_scale
    (``x_scale=topofr.image_scale(C, H, W)`` is the released code's input scaling). The 0-dim persistence pairs
    of each filtration are the released code's Kruskal pairs.

    variant: "symmetric" (the paper: 1/2 (||D_x[pi_x] - D_z[pi_x]||^2 + ||D_z[pi_z] - D_x[pi_z]||^2)) or
    "sorted_deaths" (the released code: ||D_x[pi_x] - D_z[pi_z]||^2, deaths in filtration order);
    reduction "mean" (divided by n) or "sum".

    Returns a 0-d tensor in z's dtype. Differentiable w.r.t. x and z: the backward pass returns the library's
    gradients (the pairs are piecewise constant, so this is the gradient almost everywhere), computed in the
    forward call only for the arguments that need one.
    """
    _check_tensor(x, "isa_loss", "x")
    _check_tensor(z, "isa_loss", "z")
    want_gx, want_gz = _grad_wanted(x), _grad_wanted(z)
    if custom_ops_enabled():
        return torch.ops.topofr.isa_loss(x, z, variant, reduction, float(x_scale), float(z_scale), want_gx,
                                         want_gz)[0]
    return _ISAFunction.apply(x, z, variant, reduction, float(x_scale), float(z_scale), torch.is_grad_enabled())


class ISALoss(nn.Module):
    """:func:`isa_loss` as a module: ``ISALoss(variant, reduction, x_scale, z_scale)(x, z)`` -> 0-d tensor.

    variant "symmetric" is the paper, "sorted_deaths" the released code (which also used
    ``x_scale=topofr.image_scale(C, H, W)`` on image batches)."""

    def __init__(self, variant: str = "symmetric", reduction: str = "mean", x_scale: float = 1.0,
                 z_scale: float = 1.0) -> None:
        super().__init__()
        self.variant, self.reduction = variant, reduction
        self.x_scale, self.z_scale = float(x_scale), float(z_scale)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """x: (n, dx) or (n, C, H, W); z: (n, dz); returns the 0-d loss (z's dtype)."""
        return isa_loss(x, z, variant=self.variant, reduction=self.reduction, x_scale=self.x_scale,
                        z_scale=self.z_scale)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, reduction={self.reduction!r}, x_scale={self.x_scale}, z_scale={self.z_scale}"


def margin_ce(cos: Tensor, labels: Tensor, margin: Union[CombinedMargin, Tuple[float, ...]] = CombinedMargin(),
              entropy_eps: float = 1e-5) -> Tuple[Tensor, Tensor, Tensor]:
    """The combined-margin softmax cross-entropy, per sample.

    cos: (N, C) cosines, float32 or float64; labels: (N,) int32 or int64, each a class in [0, C), -1 or
    ``topofr.ignore_label`` (-100). The logits are s * cos, with s * (cos(m1 theta + m2) - m3) in each row's label
    column (``margin``, a topofr.CombinedMargin; the default is ArcFace s = 64, m = 0.5, as in TopoFR). With
    ``margin.straight_through`` the target column's gradient is s instead of s f'(cos) (insightface's arcface_torch
    applies the margin under torch.no_grad()); the forward is the same.

    -100 (``topofr.ignore_label``, PyTorch's default ignore_index) ignores the row: loss 0, p_gt 0, no gradient.
    -1 means "the target class lives on another shard" (insightface Partial FC): loss 0 and p_gt 0 here, but the
    row's softmax still covers these classes, so its gradient is g_i * s * p_ij, the gradient of the row's
    log-sum-exp (the part of its loss that lives on this shard). The loss VALUE of such a row is 0 while its
    gradient is not: torch.autograd.gradcheck does not apply to -1 rows (docs/fidelity.md).

    Returns (loss, entropy, p_gt), each (N,) in cos's dtype: the cross-entropy of each row, the entropy
    -sum_j p_ij log(p_ij + entropy_eps) of its softmax and the probability of its label. Only ``loss`` is
    differentiable (w.r.t. cos): its backward is the library's fused pass 2, d(sum_i g_i loss_i)/d cos with g
    the upstream gradient. entropy and p_gt carry no gradient (they feed the SDS weights, a constant).
    """
    _check_tensor(cos, "margin_ce", "cos")
    _check_tensor(labels, "margin_ce", "labels")
    s, m1, m2, m3, st = _margin_tuple(margin)
    if custom_ops_enabled():
        loss, entropy, p_gt, _ = torch.ops.topofr.margin_ce(cos, labels, s, m1, m2, m3, st, float(entropy_eps))
        return loss, entropy.detach(), p_gt.detach()
    return _MarginCEFunction.apply(cos, labels, s, m1, m2, m3, st, float(entropy_eps))


class MarginCEStats(NamedTuple):
    """What :class:`MarginCE` saw in its last call (all (N,) tensors are detached)."""
    entropy: Tensor
    p_gt: Tensor
    hard_posterior: Tensor  # h_i, the GUM posterior of the uniform (hard) component; 0 when sds=False
    weights: Tensor         # omega_i; 1 when sds=False
    pi: float               # the GUM Gaussian weight (0 when sds=False)
    sigma: float            # its variance on the standardised scale (0 when sds=False)
    hard_fraction: float    # fraction of samples with h_i > 0.5


def _last_stats(module: Any) -> Optional["MarginCEStats"]:
    """module._last as a MarginCEStats: kept as tensors by forward, turned into numbers (one host sync) when
    asked for, then cached."""
    last = module._last
    if last is None or isinstance(last, MarginCEStats):
        return last
    entropy, p_gt, hard, omega, stats = last
    pi, sigma, hard_fraction = stats.tolist()
    module._last = MarginCEStats(entropy, p_gt, hard, omega, pi, sigma, hard_fraction)
    return module._last


class MarginCE(nn.Module):
    """The SDS-weighted margin cross-entropy: mean_i omega_i * loss_i (TopoFR's L_cls).

    forward(cos (N, C) float32/float64, labels (N,) int32/int64) -> 0-d tensor in cos's dtype.
    omega_i = (1 + h_i)^lambda_ * (1 - p_gt_i) (``focal=True``, the paper) or (1 + h_i)^lambda_ (``focal=False``,
    the released code), with h the hard-sample posterior of the Gaussian-uniform mixture fitted to the batch's
    entropies (``gum``: a topofr.GUMOptions; mode "reference" is the released EM). omega is a constant: no
    gradient flows through it (as in the paper and the released code), so the gradient w.r.t. cos is
    (1/N) sum_i omega_i d loss_i / d cos. ``sds=False``: omega = 1 (the plain margin loss, the ablation).
    ``self.last`` holds a :class:`MarginCEStats` of the last call.
    """

    def __init__(self, margin: Union[CombinedMargin, Tuple[float, ...]] = CombinedMargin(),
                 entropy_eps: float = 1e-5, sds: bool = True, lambda_: float = 1.0, focal: bool = True,
                 gum: Optional[GUMOptions] = None) -> None:
        super().__init__()
        self.margin = CombinedMargin(*_margin_tuple(margin))
        self.entropy_eps = float(entropy_eps)
        self.sds, self.lambda_, self.focal = bool(sds), float(lambda_), bool(focal)
        self.gum = gum if gum is not None else GUMOptions()
        self._last: Any = None

    @property
    def last(self) -> Optional[MarginCEStats]:
        """The MarginCEStats of the last forward call (None before the first)."""
        return _last_stats(self)

    def forward(self, cos: Tensor, labels: Tensor) -> Tensor:
        """cos: (N, C); labels: (N,); returns mean_i omega_i loss_i (0-d, cos's dtype)."""
        loss, entropy, p_gt = margin_ce(cos, labels, self.margin, self.entropy_eps)
        if self.sds:
            args = (entropy, p_gt, self.gum.mode, int(self.gum.max_iter), float(self.gum.tol),
                    bool(self.gum.symmetrize), self.lambda_, self.focal)
            if custom_ops_enabled():
                hard, omega, stats = torch.ops.topofr.sds_weights(*args)
            else:
                hard, omega, stats = _sds_kernel(*args)
        else:
            hard, omega = torch.zeros_like(entropy), torch.ones_like(entropy)
            stats = torch.zeros(3, dtype=torch.float64)
        self._last = (entropy, p_gt, hard, omega, stats)
        return (omega.detach() * loss).mean()

    def extra_repr(self) -> str:
        return f"margin={tuple(self.margin)}, sds={self.sds}, lambda_={self.lambda_}, focal={self.focal}"


class TopoFRLoss(nn.Module):
    """The whole TopoFR objective L = (1/N) sum_i omega_i L_arc,i + alpha * L_sa, in ONE library call.

    forward(x, z, cos, labels): x (n, dx) or (n, C, H, W) the clean inputs, z (n, dz) the embeddings of the
    perturbed batch, cos (N, C) its cosines (N = n), labels (N,) int32/int64; x, z and cos of one dtype,
    float32 or float64. Returns the 0-d loss in cos's dtype. The backward pass returns the library's dL/dz
    and dL/dcos (times the upstream gradient); x and labels get no gradient. The SDS weights omega are a
    constant (stop-gradient), as in the paper and the released code.

    options: a topofr.ObjectiveOptions (default: the paper). ``TopoFRLoss.paper(**kw)`` and
    ``TopoFRLoss.released_code(**kw)`` (sorted-deaths ISA, no focal term) build the two settings.
    ``self.last`` is the topofr.ObjectiveResult of the last call (losses, GUM pi / sigma / hard fraction,
    the per-sample loss, entropy, p_gt, hard posterior and weights, and the gradients).
    """

    def __init__(self, options: Optional[ObjectiveOptions] = None) -> None:
        super().__init__()
        self.options = options if options is not None else ObjectiveOptions()
        self._objective = _tf.Objective(self.options)
        self._handle = next(_HANDLES)
        _OBJECTIVES[self._handle] = self._objective
        self._last: Any = None

    def __getstate__(self) -> Dict[str, Any]:
        # The native objective (scratch buffers only) is rebuilt from the options: copy.deepcopy and pickle work,
        # and a copy gets its own handle.
        state = self.__dict__.copy()
        state.pop("_objective", None)
        state["_last"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)
        self._objective = _tf.Objective(self.options)
        self._handle = next(_HANDLES)
        _OBJECTIVES[self._handle] = self._objective

    @classmethod
    def paper(cls, **kw: Any) -> "TopoFRLoss":
        """The paper's objective (symmetric ISA with 1/2, focal SDS); keywords are ObjectiveOptions fields."""
        return cls(ObjectiveOptions.paper(**kw))

    @classmethod
    def released_code(cls, **kw: Any) -> "TopoFRLoss":
        """What the released training code computes (sorted-deaths ISA, omega = (1 + h)^lambda); keywords are
        ObjectiveOptions fields (set isa=ISAOptions(..., x_scale=topofr.image_scale(C, H, W)) for its input
        scaling of image batches)."""
        return cls(ObjectiveOptions.released_code(**kw))

    @property
    def last(self) -> Optional[ObjectiveResult]:
        """The topofr.ObjectiveResult of the last forward call (None before the first)."""
        if self._last is None or isinstance(self._last, ObjectiveResult):
            return self._last
        stats, gz, gc, per = self._last
        self._last = _result_from_stats(stats, gz, gc, per)
        return self._last

    def forward(self, x: Tensor, z: Tensor, cos: Tensor, labels: Tensor) -> Tensor:
        """x: (n, dx) or (n, C, H, W); z: (n, dz); cos: (N, C); labels: (N,). Returns the 0-d loss."""
        for t, name in ((x, "x"), (z, "z"), (cos, "cos"), (labels, "labels")):
            _check_tensor(t, "TopoFRLoss", name)
        if custom_ops_enabled():
            out = torch.ops.topofr.objective(x, z, cos, labels, self._handle)
            self._last = (out[8], out[1].detach(), out[2].detach(), tuple(o.detach() for o in out[3:8]))
            return out[0]
        sink: Dict[str, Any] = {}
        loss = _ObjectiveFunction.apply(x, z, cos, labels, self._objective, sink)
        self._last = sink["result"]
        return loss

    def extra_repr(self) -> str:
        o = self.options
        return (f"alpha={o.alpha}, use_isa={o.use_isa}, use_sds={o.use_sds}, focal={o.focal}, "
                f"isa={o.isa.variant!r}/{o.isa.reduction!r}")


class RSP(nn.Module):
    """Random structure perturbation of a normalised (N, C, H, W) image batch, C in {1, 3} (no gradient).

    Each sample is perturbed with ``probability`` by one of blur, grayscale, colour jitter or random erasing,
    drawn from a counter-based stream keyed by (seed, sample, step): the same as ``topofr.rsp_perturb``.
    forward(images, step=None) returns a perturbed copy (float32/float64, the input is not modified); with
    step None an internal counter is used and incremented, one step per such call. ``self.last_kinds`` holds
    the int32 kinds of the last call (-1 none, 0 blur, 1 grayscale, 2 colour jitter, 3 erasing). Applied in
    train and eval mode alike.
    """

    def __init__(self, probability: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.probability, self.seed = float(probability), int(seed)
        self.step = 0
        self.last_kinds: Optional[Tensor] = None

    def forward(self, images: Tensor, step: Optional[int] = None) -> Tensor:
        """images: (N, C, H, W); step: the RSP step (None: the internal counter). Returns the perturbed copy."""
        _check_tensor(images, "RSP", "images")
        if step is None:
            step = self.step
            self.step += 1
        with torch.no_grad():
            r = _tf.rsp_perturb(images, probability=self.probability, seed=self.seed, step=int(step))
        self.last_kinds = r.kinds
        return r.images

    def extra_repr(self) -> str:
        return f"probability={self.probability}, seed={self.seed}"


def __getattr__(name: str) -> Any:
    """``topofr.torch.distributed`` (the class-sharded head over torch.distributed) is imported on first use."""
    if name == "distributed":
        import importlib
        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
