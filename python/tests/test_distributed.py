"""topofr.torch.distributed.ShardedMarginCE over torch.distributed (Gloo on 127.0.0.1), 2 and 3 ranks spawned
with torch.multiprocessing, against the single-process head on the concatenated batch with the full weight.

Oracle: topofr.torch.MarginCE (itself tested against tests/oracles/arcface_oracle.py and reference.gauss_unif in
test_torch.py) on cos = normalize(all embeddings) @ normalize(full weight)^T, clamped as the module does, with
torch autograd through the normalisations; for a class sample, the same on the union of the ranks' sampled
classes (which every rank recomputes: topofr.partial_fc_sample is a function of (seed, step, shard, labels)).
Compared: the loss, the diagnostics (global entropy, p_gt, GUM posterior, SDS weights, pi, sigma), the gradient
w.r.t. each rank's embeddings and w.r.t. each rank's shard of the weight: <= 1e-12 relative in float64,
<= 1e-5 in float32. Each world size is one spawn (every case runs in it), under a timeout so nothing hangs.
"""
import os
import socket
import time
import traceback

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import topofr  # noqa: E402
import topofr.torch as tt  # noqa: E402
import topofr.torch.distributed  # noqa: E402,F401  (tt.distributed)

TIMEOUT_S = 120  # the whole spawn of one world size (it takes a few seconds)

# (name, dtype, classes, batch per rank, margin, sample_rate, sds, entropy_eps)
CASES = [
    ("arcface_sds_f64", torch.float64, 11, 8, topofr.CombinedMargin(16.0, 1.0, 0.3, 0.0), 1.0, True, 1e-5),
    ("cosface_plain_eps0_f64", torch.float64, 7, 5, topofr.CombinedMargin.cosface(30.0, 0.35), 1.0, False, 0.0),
    ("straight_through_f64", torch.float64, 10, 6, topofr.CombinedMargin.arcface(16.0, 0.5, True), 1.0, True,
     1e-5),
    ("arcface_sds_f32", torch.float32, 11, 8, topofr.CombinedMargin(16.0, 1.0, 0.3, 0.0), 1.0, True, 1e-5),
    ("sample_f64", torch.float64, 40, 6, topofr.CombinedMargin(16.0, 1.0, 0.3, 0.0), 0.3, True, 1e-5),
    ("sample_f32", torch.float32, 40, 6, topofr.CombinedMargin(16.0, 1.0, 0.3, 0.0), 0.5, False, 1e-5),
]


def rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def case_data(world, dtype, classes, batch, embedding=12, seed=0):
    """The whole batch and the full weight, from a seed: every rank makes the same ones."""
    g = torch.Generator().manual_seed(1000 * world + classes + seed)
    emb = torch.randn(world * batch, embedding, generator=g, dtype=torch.float64).to(dtype)
    labels = torch.randint(0, classes, (world * batch,), generator=g)
    labels[3] = topofr.ignore_label  # an ignored row
    weight = torch.randn(classes, embedding, generator=g, dtype=torch.float64).to(dtype)
    return emb, labels, weight


def run_case(world, rank, name, dtype, classes, batch, margin, sample_rate, sds, eps):
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    emb, labels, weight = case_data(world, dtype, classes, batch)
    # ---- the sharded head on this rank
    head = tt.distributed.ShardedMarginCE(emb.shape[1], classes, margin, sample_rate=sample_rate, sds=sds,
                                          entropy_eps=eps, seed=7, dtype=dtype)
    sh = head.shard
    assert sh == topofr.shard_range(classes, world, rank)
    with torch.no_grad():
        head.weight.copy_(weight[sh.begin:sh.end])
    mine = emb[rank * batch:(rank + 1) * batch].clone().requires_grad_()
    loss = head(mine, labels[rank * batch:(rank + 1) * batch])
    loss.backward()
    assert head.step == 1 and loss.dtype == dtype and loss.dim() == 0
    # ---- the oracle: the single-process head on the whole batch and the full weight (or the sampled union)
    cols = torch.arange(classes)
    if sample_rate < 1.0:
        parts = []
        for r in range(world):
            s = topofr.shard_range(classes, world, r)
            loc = topofr.localize_labels(labels, s, classes)
            parts.append(s.begin + topofr.partial_fc_sample(loc, s, sample_rate=sample_rate, seed=7, step=0).classes)
        cols = torch.cat(parts)
        assert len(cols) < classes
        assert torch.equal(head.last_sample + sh.begin, parts[rank])
    ref_labels = labels.clone()
    ok = labels >= 0
    ref_labels[ok] = torch.searchsorted(cols, labels[ok])
    assert torch.equal(cols[ref_labels[ok]], labels[ok])  # every target is sampled
    e = emb.clone().requires_grad_()
    w = weight.clone().requires_grad_()
    cos = F.linear(F.normalize(e), F.normalize(w[cols])).clamp(-1.0, 1.0)
    ref = tt.MarginCE(margin, entropy_eps=eps, sds=sds)
    ref_loss = ref(cos, ref_labels)
    ref_loss.backward()
    # ---- compare
    errs = {"loss": rel(loss, ref_loss),
            "grad_embeddings": rel(mine.grad, e.grad[rank * batch:(rank + 1) * batch]),
            "grad_weight": rel(head.weight.grad, w.grad[sh.begin:sh.end])}
    a, b = head.last, ref.last
    for f in ("entropy", "p_gt", "hard_posterior", "weights"):
        errs[f] = rel(getattr(a, f), getattr(b, f))
    for f in ("pi", "sigma"):
        errs[f] = abs(getattr(a, f) - getattr(b, f)) / max(abs(getattr(b, f)), 1.0)
    assert a.hard_fraction == b.hard_fraction, (name, a.hard_fraction, b.hard_fraction)
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"{name} rank {rank}: {bad} > {tol}"
    assert float(head.weight.grad.abs().sum()) > 0 and float(mine.grad.abs().sum()) > 0
    if sds:
        assert 0 < b.hard_fraction < 1 or b.pi > 0  # a non-degenerate fit, so the comparison means something
    # the loss is the same on every rank (bitwise): gather and compare
    got = [torch.empty_like(loss) for _ in range(world)]
    dist.all_gather(got, loss.detach())
    assert all(torch.equal(g, got[0]) for g in got)


def worker(rank, world, port, result_dir):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    status = "ok"
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=world, rank=rank,
                                timeout=__import__("datetime").timedelta(seconds=60))
        for case in CASES:
            run_case(world, rank, *case)
        # W > C is refused on every rank, before any communication (no hang)
        try:
            tt.distributed.ShardedMarginCE(4, world - 1, dtype=torch.float64)
            status = "W > C was accepted"
        except topofr.Error as err:
            msg = str(err)
            if "world size" not in msg or "number of classes" not in msg or "ShardedMarginCE" not in msg:
                status = f"unclear W > C message: {msg}"
        # a batch size that differs between ranks is an error on every rank, not a hang
        head = tt.distributed.ShardedMarginCE(4, 5, dtype=torch.float64)
        try:
            head(torch.randn(2 + rank, 4, dtype=torch.float64), torch.zeros(2 + rank, dtype=torch.int64))
            status = "unequal batch sizes were accepted"
        except topofr.Error as err:
            if "same on every rank" not in str(err):
                status = f"unclear batch-size message: {err}"
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:  # noqa: B902 - reported to the parent, which fails the test with it
        status = traceback.format_exc()
    with open(os.path.join(result_dir, f"rank{rank}.txt"), "w") as f:
        f.write(status)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_available() -> bool:
    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.skipif(not gloo_available(), reason="torch.distributed with the Gloo backend is not available")
@pytest.mark.parametrize("world", [2, 3])
def test_sharded_margin_ce_equals_single_process(tmp_path, monkeypatch, world):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the ranks share the machine's cores
    ctx = mp.spawn(worker, args=(world, free_port(), str(tmp_path)), nprocs=world, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"{world} ranks did not finish within {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:  # only the processes this test started
            if p.is_alive():
                p.kill()
                p.join(5)
    for rank in range(world):
        status = (tmp_path / f"rank{rank}.txt").read_text()
        assert status == "ok", f"rank {rank}:\n{status}"


def test_needs_an_initialised_process_group():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        tt.distributed.ShardedMarginCE(4, 10)


def test_all_gather_with_grad_single_rank(tmp_path):
    # W = 1 in this process (Gloo, a file store): the gather is the identity and its backward the gradient.
    if not gloo_available():
        pytest.skip("torch.distributed with the Gloo backend is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", world_size=1, rank=0)
    try:
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        y = tt.distributed.all_gather_with_grad(x)
        assert torch.equal(y, x)
        (y * 2).sum().backward()
        assert torch.equal(x.grad, torch.full_like(x, 2.0))
        head = tt.distributed.ShardedMarginCE(4, 6, dtype=torch.float64)
        assert head.shard == (0, 6) and head.weight.shape == (6, 4)
        with pytest.raises(TypeError, match="ShardedMarginCE: local_embeddings: expected a torch.Tensor"):
            head(np.zeros((2, 4)), torch.zeros(2, dtype=torch.int64))
        # The module runs where its weight is (CPU here, CUDA after .cuda()): other embeddings are named.
        with pytest.raises(TypeError, match=r"ShardedMarginCE: local_embeddings: is on meta, but the weight is on "
                                            r"cpu"):
            head(torch.zeros(2, 4, dtype=torch.float64, device="meta"), torch.zeros(2, dtype=torch.int64))
        with pytest.raises(topofr.Error, match=r"ShardedMarginCE: local_embeddings: expected \(B, 4\)"):
            head(torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, dtype=torch.int64))
        with pytest.raises(topofr.Error, match=r"ShardedMarginCE: sample_rate"):
            tt.distributed.ShardedMarginCE(4, 6, sample_rate=0.0)
    finally:
        dist.destroy_process_group()


def test_the_installed_package_ships_the_subpackage():
    # topofr.torch is a package: topofr.torch.distributed must sit next to the extension that was installed
    # (python/CMakeLists.txt installs _core into topofr/, pyproject's wheel.packages copies the Python tree).
    from pathlib import Path
    assert Path(tt.distributed.__file__).parent == Path(tt.__file__).parent
    assert Path(tt.__file__).parent.parent == Path(topofr._core.__file__).parent
    assert tt.distributed.ShardedMarginCE.__module__ == "topofr.torch.distributed"
