"""topofr.torch.distributed: a class-sharded (Partial FC) margin head over ``torch.distributed``.

:class:`ShardedMarginCE` is insightface's Partial FC (``recognition/arcface_torch/partial_fc_v2.py``) built from
topofr's sharded primitives: each rank holds the weight of its share of the classes (``C // W + (rank < C % W)``
rows, insightface's split), the batch's embeddings and labels are all-gathered, and each rank computes the
cosines of the whole batch against its classes (or against Partial FC's class sample of them). The softmax
statistics of the shards (``topofr.shard_stats``, 4 doubles per row) are all-gathered and combined in rank
order (``topofr.combine_shard_stats``), so every rank gets bitwise the same log-sum-exp, loss, p_gt and entropy;
the SDS weights come from the GUM fit of those global entropies, as in :class:`topofr.torch.MarginCE`. The
backward is ``topofr.margin_ce_backward`` with the local labels and the combined lse (each rank's shard of the
single-process gradient); the gradient w.r.t. the all-gathered embeddings is summed over the ranks and each
rank keeps its own rows (a reduce-scatter where the backend has one, else an all-reduce and a slice).

Any backend that has ``all_gather`` and ``all_reduce`` works: Gloo with CPU tensors (tested with 2 and 3 ranks),
NCCL with CUDA tensors (the sharded primitives run on the tensors' device, on torch's current stream; every
collective, including the small gathers of the labels and batch sizes, stays on that device, since NCCL cannot
gather CPU tensors). The CUDA path has not run on a GPU yet (its test in python/tests/test_cuda.py is a 1-rank group).
"""
from typing import Any, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

import topofr as _tf
from topofr import CombinedMargin, GUMOptions

from . import MarginCEStats, _last_stats, _margin_tuple, _sds_kernel

__all__ = ["ShardedMarginCE", "all_gather_with_grad"]


def _world(group) -> Tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("topofr.torch.distributed: torch.distributed is not initialised: call "
                           "torch.distributed.init_process_group(...) first")
    return dist.get_world_size(group), dist.get_rank(group)


# Backends whose reduce_scatter_tensor raised "does not support" (torch 1.13's Gloo): all_reduce and slice there.
_NO_REDUCE_SCATTER: set = set()


def _sum_rows(g: Tensor, group: Any, rank: int, rows: int) -> Tensor:
    """Rows [rank * rows, (rank + 1) * rows) of the sum over the ranks of g: a reduce-scatter where the backend
    has one (NCCL; Gloo in recent torch), half the traffic of the all_reduce + slice used otherwise. Every rank
    runs the same backend, and an unsupported collective fails before sending anything, so all ranks take the
    same path."""
    backend = str(dist.get_backend(group))
    reduce_scatter = getattr(dist, "reduce_scatter_tensor", None)
    if reduce_scatter is not None and backend not in _NO_REDUCE_SCATTER:
        out = torch.empty((rows,) + tuple(g.shape[1:]), dtype=g.dtype, device=g.device)
        try:
            reduce_scatter(out, g, op=dist.ReduceOp.SUM, group=group)
            return out
        except RuntimeError as e:
            if "does not support" not in str(e):
                raise
            _NO_REDUCE_SCATTER.add(backend)
    g = g.clone()
    dist.all_reduce(g, op=dist.ReduceOp.SUM, group=group)
    return g[rank * rows:(rank + 1) * rows]


class _AllGather(torch.autograd.Function):
    """all_gather along dim 0 (equal shapes on every rank); backward: the gradient of the gathered tensor summed
    over the ranks, this rank's rows (_sum_rows)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor, group: Any) -> Tensor:  # type: ignore[override]
        world, rank = _world(group)
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous(), group=group)
        ctx.group, ctx.rank, ctx.rows = group, rank, t.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor):  # type: ignore[override]
        return _sum_rows(grad.contiguous(), ctx.group, ctx.rank, ctx.rows), None


def all_gather_with_grad(t: Tensor, group: Any = None) -> Tensor:
    """The (W * B, ...) concatenation of every rank's (B, ...) tensor, in rank order, differentiable: the
    backward sums the gathered gradient over the ranks and returns this rank's rows."""
    return _AllGather.apply(t, group)


def _all_gather(t: Tensor, group: Any) -> Tensor:
    world, _ = _world(group)
    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous(), group=group)
    return torch.stack(parts)


class _ShardedCEFunction(torch.autograd.Function):
    """Per-row global cross-entropy from this rank's cosines (N, C_local) and local labels: the statistics of
    every shard all-gathered and combined in rank order. Returns (loss, entropy, p_gt, lse), all (N,) and
    identical on every rank; only loss is differentiable, its backward is this rank's part of the gradient
    (margin_ce_backward with the combined lse), weighted by the upstream gradient."""

    @staticmethod
    def forward(ctx: Any, cos: Tensor, local_labels: Tensor, margin: Tuple, entropy_eps: float,
                group: Any) -> Tuple[Tensor, Tensor, Tensor, Tensor]:  # type: ignore[override]
        m = CombinedMargin(*margin)
        cd = cos.detach()
        stats = _tf.shard_stats(cd, local_labels, m)                      # (N, 4) float64
        per_rank = _all_gather(stats, group)                              # (W, N, 4), rank order
        lse, loss, p_gt, entropy = _tf.combine_shard_stats(per_rank, cd.dtype)
        if entropy_eps > 0:  # log(p + eps) needs every p_j: one more reduction (N doubles)
            partial = _tf.shard_entropy_eps_partial(cd, local_labels, lse, m, entropy_eps=entropy_eps)
            dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=group)
            entropy = (-partial).to(cd.dtype)
        ctx.save_for_backward(cd, local_labels, lse)
        ctx.margin = m
        ctx.mark_non_differentiable(entropy, p_gt, lse)
        return loss, entropy, p_gt, lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: Tensor, _ge: Any, _gp: Any, _gl: Any):  # type: ignore[override]
        cos, labels, lse = ctx.saved_tensors
        g = _tf.margin_ce_backward(cos, labels, lse, grad_loss.to(cos.dtype).contiguous(), ctx.margin)
        return g, None, None, None, None


class ShardedMarginCE(nn.Module):
    """Partial FC's class-sharded margin head with TopoFR's SDS weighting, over ``torch.distributed``.

    ``ShardedMarginCE(embedding_size, num_classes, margin=CombinedMargin(), sample_rate=1.0, sds=True, ...)``
    holds ``self.weight``, the (C_local, embedding_size) rows of this rank's classes ``self.shard`` =
    ``topofr.shard_range(num_classes, W, rank)`` (insightface's split). ``forward(local_embeddings (B, D),
    local_labels (B,))`` returns the GLOBAL loss mean_i omega_i loss_i over the all-gathered batch of N = W B
    rows (the same value on every rank), where loss_i is the margin cross-entropy over all C classes (or over
    the union of the ranks' class samples when ``sample_rate < 1``) and omega the SDS weights of
    :class:`topofr.torch.MarginCE` from the global entropies (``sds=False``: omega = 1). Every rank must call
    forward and backward (both communicate); B must be the same on every rank.

    The backward gives ``self.weight`` this rank's rows of the single-process gradient and each rank's
    embeddings their rows of it (the gathered gradient is all-reduced). Labels are global classes in
    [0, num_classes) or ``topofr.ignore_label`` (-100).

    Devices: the module computes where its weight lives (``.cuda()`` it for CUDA, with an NCCL group); the
    embeddings must be on the weight's device, the labels are moved there (a CPU label tensor is accepted).

    Options: ``margin`` (a topofr.CombinedMargin; ``straight_through=True`` is arcface_torch's gradient),
    ``entropy_eps`` (the entropy -sum p log(p + eps); eps > 0 costs one all-reduce of N doubles), ``sds``,
    ``lambda_``, ``focal``, ``gum`` (a topofr.GUMOptions) as in MarginCE; ``sample_rate`` in (0, 1] with ``seed``:
    Partial FC's class sample (``topofr.partial_fc_sample``, step = the forward-call counter ``self.step``, or
    ``forward(..., step=k)``); ``group``: the process group (None: the default one); ``dtype``: the weight's.
    ``self.last`` holds a :class:`topofr.torch.MarginCEStats` of the last call (global entropy, p_gt, GUM
    posterior and weights); ``self.last_sample`` the local classes sampled in the last call (None without
    sampling).
    """

    def __init__(self, embedding_size: int, num_classes: int,
                 margin: Union[CombinedMargin, Tuple[Any, ...]] = CombinedMargin(), sample_rate: float = 1.0,
                 sds: bool = True, entropy_eps: float = 1e-5, lambda_: float = 1.0, focal: bool = True,
                 gum: Optional[GUMOptions] = None, seed: int = 0, group: Any = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        world, rank = _world(group)
        if not 0.0 < float(sample_rate) <= 1.0:
            raise _tf.Error(f"topofr.torch.distributed.ShardedMarginCE: sample_rate: must be in (0, 1], "
                            f"got {sample_rate}")
        if int(num_classes) < world:
            raise _tf.Error(f"topofr.torch.distributed.ShardedMarginCE: num_classes: world size {world} > number "
                            f"of classes {int(num_classes)}: every rank must own at least one class")
        self.world, self.rank, self.group = world, rank, group
        self.num_classes, self.embedding_size = int(num_classes), int(embedding_size)
        self.shard = _tf.shard_range(self.num_classes, world, rank)
        self.margin = CombinedMargin(*_margin_tuple(margin))
        self.sample_rate, self.seed, self.step = float(sample_rate), int(seed), 0
        self.entropy_eps = float(entropy_eps)
        self.sds, self.lambda_, self.focal = bool(sds), float(lambda_), bool(focal)
        self.gum = gum if gum is not None else GUMOptions()
        # insightface's initialisation: N(0, 0.01)
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (self.shard.size, self.embedding_size), dtype=dtype))
        self._last: Any = None
        self.last_sample: Optional[Tensor] = None

    @property
    def last(self) -> Optional[MarginCEStats]:
        """The MarginCEStats of the last forward call (global, identical on every rank; None before the first)."""
        return _last_stats(self)

    def forward(self, local_embeddings: Tensor, local_labels: Tensor, step: Optional[int] = None) -> Tensor:
        """local_embeddings: (B, D) of this rank; local_labels: (B,) int32/int64 global classes or -100.
        Returns the global 0-d loss (the weight's dtype)."""
        fn = "topofr.torch.distributed.ShardedMarginCE"
        for t, name in ((local_embeddings, "local_embeddings"), (local_labels, "local_labels")):
            if not isinstance(t, Tensor):
                raise TypeError(f"{fn}: {name}: expected a torch.Tensor, got {type(t).__name__}")
        device = self.weight.device
        if local_embeddings.device != device:
            raise TypeError(f"{fn}: local_embeddings: is on {local_embeddings.device}, but the weight is on "
                            f"{device} (move the module or the embeddings)")
        local_labels = local_labels.to(device)  # its gather runs on the weight's device (NCCL: CUDA only)
        if local_embeddings.dim() != 2 or local_embeddings.shape[1] != self.embedding_size:
            raise _tf.Error(f"{fn}: local_embeddings: expected (B, {self.embedding_size}), got "
                            f"{tuple(local_embeddings.shape)}")
        if local_labels.shape != (local_embeddings.shape[0],):
            raise _tf.Error(f"{fn}: local_labels: expected ({local_embeddings.shape[0]},), got "
                            f"{tuple(local_labels.shape)}")
        if step is None:
            step = self.step
            self.step += 1
        # Every rank's batch size, so that a mismatch is an error on every rank rather than a hang.
        sizes = _all_gather(torch.tensor([local_embeddings.shape[0]], dtype=torch.int64, device=device),
                            self.group).flatten()
        if not bool((sizes == sizes[0]).all()):
            raise _tf.Error(f"{fn}: local_embeddings: the batch size must be the same on every rank, got "
                            f"{sizes.tolist()}")
        embeddings = all_gather_with_grad(local_embeddings.to(self.weight.dtype), self.group)
        labels = _all_gather(local_labels, self.group).flatten()
        local = _tf.localize_labels(labels, self.shard, self.num_classes)
        weight = self.weight
        self.last_sample = None
        if self.sample_rate < 1.0:
            sample = _tf.partial_fc_sample(local, self.shard, sample_rate=self.sample_rate, seed=self.seed,
                                           step=int(step))
            self.last_sample = sample.classes
            weight = weight[sample.classes]
            local = sample.labels
        cos = F.linear(F.normalize(embeddings), F.normalize(weight)).clamp(-1.0, 1.0)
        loss, entropy, p_gt, _ = _ShardedCEFunction.apply(cos, local, _margin_tuple(self.margin),
                                                          self.entropy_eps, self.group)
        if self.sds:  # omega is a constant (stop-gradient), as in MarginCE: identical on every rank
            hard, omega, stats = _sds_kernel(entropy, p_gt, self.gum.mode, int(self.gum.max_iter),
                                             float(self.gum.tol), bool(self.gum.symmetrize), self.lambda_,
                                             self.focal)
        else:
            hard, omega = torch.zeros_like(entropy), torch.ones_like(entropy)
            stats = torch.zeros(3, dtype=torch.float64)
        self._last = (entropy, p_gt, hard, omega, stats)
        return (omega.detach() * loss).mean()

    def extra_repr(self) -> str:
        return (f"embedding_size={self.embedding_size}, num_classes={self.num_classes}, world={self.world}, "
                f"rank={self.rank}, shard=[{self.shard.begin}, {self.shard.end}), margin={tuple(self.margin)}, "
                f"sample_rate={self.sample_rate}, sds={self.sds}")
