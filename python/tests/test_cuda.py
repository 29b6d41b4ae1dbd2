"""CUDA arrays through topofr: every block on torch CUDA tensors against the same call on the CPU (oracle:
CPU<->CUDA parity; the CPU results are themselves checked against the independent oracles in test_api.py).

Runs only where a GPU is visible and the extension was built with nvcc; with TOPOFR_REQUIRE_GPU=1 (the GPU check,
tests/gpu_check.sh) a missing GPU or a CPU-only build is a failure, never a skip."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import topofr  # noqa: E402

_require = os.environ.get("TOPOFR_REQUIRE_GPU") == "1"
_ready = torch.cuda.is_available() and topofr.has_cuda()
if not _ready:
    why = "no CUDA device visible to torch" if not torch.cuda.is_available() else "topofr built without CUDA"
    if _require:
        pytest.fail(f"TOPOFR_REQUIRE_GPU=1 but {why}", pytrace=False)
    pytestmark = pytest.mark.skip(reason=why)

DTYPES = [torch.float32, torch.float64]


def rng(seed=0):
    return np.random.default_rng(seed)


def cuda(a, dtype=None):
    return torch.as_tensor(a, dtype=dtype).cuda()


def close(a, b, dtype, rtol32=1e-5, rtol64=1e-12, atol=0.0):
    a = a.detach().cpu().double().numpy() if torch.is_tensor(a) else np.asarray(a, dtype=np.float64)
    b = b.detach().cpu().double().numpy() if torch.is_tensor(b) else np.asarray(b, dtype=np.float64)
    rtol = rtol32 if dtype == torch.float32 else rtol64
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def cosines(n, c, seed=1):
    return np.clip(rng(seed).uniform(-0.9, 0.9, (n, c)), -1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distances_and_pairs(dtype):
    x = rng().standard_normal((4, 50, 32))
    xc = cuda(x, dtype)
    d_cpu = topofr.pairwise_distances(xc.cpu(), scale=2.0)
    d_gpu = topofr.pairwise_distances(xc, scale=2.0)
    assert d_gpu.is_cuda and d_gpu.dtype == dtype
    close(d_gpu, d_cpu, dtype, atol=1e-6)
    p_cpu = topofr.persistence_pairs(d_cpu.double())
    p_gpu = topofr.persistence_pairs(d_gpu.double())
    assert torch.equal(p_gpu.pairs.cpu(), p_cpu.pairs)
    close(p_gpu.deaths, p_cpu.deaths, torch.float64)
    f_cpu = topofr.persistence_pairs_from_points(xc.cpu().double())
    f_gpu = topofr.persistence_pairs_from_points(xc.double())
    assert torch.equal(f_gpu.pairs.cpu(), f_cpu.pairs)
    close(f_gpu.deaths, f_cpu.deaths, torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_scatter(dtype):
    d = cuda(topofr.pairwise_distances(rng(2).standard_normal((30, 8))), dtype)
    pairs = topofr.persistence_pairs(d).pairs
    v = topofr.gather_pairs(d, pairs)
    close(v, topofr.gather_pairs(d.cpu(), pairs.cpu()), dtype)
    g = torch.zeros_like(d)
    topofr.scatter_pairs_add(pairs, v, g)
    gc = torch.zeros_like(d.cpu())
    topofr.scatter_pairs_add(pairs.cpu(), v.cpu(), gc)
    close(g, gc, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["symmetric", "sorted_deaths"])
def test_isa(dtype, variant):
    x = cuda(rng(3).uniform(-1, 1, (24, 3, 8, 8)), dtype)
    z = cuda(rng(4).standard_normal((24, 16)), dtype)
    kw = dict(variant=variant, x_scale=topofr.image_scale(3, 8, 8), grad_x=True)
    r_gpu = topofr.isa_loss_from_points(x, z, **kw)
    r_cpu = topofr.isa_loss_from_points(x.cpu(), z.cpu(), **kw)
    close(r_gpu.loss, r_cpu.loss, dtype, rtol32=1e-4)
    close(r_gpu.grad_z, r_cpu.grad_z, dtype, rtol32=1e-4, atol=1e-6)
    close(r_gpu.grad_x, r_cpu.grad_x, dtype, rtol32=1e-4, atol=1e-6)
    dx = topofr.pairwise_distances(x.reshape(24, -1), scale=kw["x_scale"])
    dz = topofr.pairwise_distances(z)
    m_gpu = topofr.isa_loss(dx, dz, variant=variant, grad_dist_x=True)
    m_cpu = topofr.isa_loss(dx.cpu(), dz.cpu(), variant=variant, grad_dist_x=True)
    close(m_gpu.loss, m_cpu.loss, dtype, rtol32=1e-4)
    close(m_gpu.grad_dist_z, m_cpu.grad_dist_z, dtype, rtol32=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gum_sds(dtype):
    e = cuda(rng(5).gamma(2.0, 1.0, 128), dtype)
    g_gpu, g_cpu = topofr.gum_fit(e), topofr.gum_fit(e.cpu())
    assert g_gpu.iterations == g_cpu.iterations and g_gpu.converged == g_cpu.converged
    close(g_gpu.hard_posterior, g_cpu.hard_posterior, dtype, rtol32=1e-4, atol=1e-6)
    p = cuda(rng(6).uniform(0, 1, 128), dtype)
    close(topofr.sds_weights(g_gpu.hard_posterior, p), topofr.sds_weights(g_gpu.hard_posterior.cpu(), p.cpu()),
          dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int64])
def test_head(dtype, label_dtype):
    cos = cuda(cosines(64, 1000), dtype)
    y = cuda(rng(7).integers(-1, 1000, 64), label_dtype)
    m = topofr.CombinedMargin.arcface()
    close(topofr.margin_logits(cos, y, m), topofr.margin_logits(cos.cpu(), y.cpu(), m), dtype)
    f_gpu, f_cpu = topofr.margin_ce_forward(cos, y, m), topofr.margin_ce_forward(cos.cpu(), y.cpu(), m)
    for a, b in zip(f_gpu, f_cpu):
        close(a, b, dtype, rtol32=1e-5, atol=1e-6)
    w = cuda(rng(8).uniform(0.5, 2, 64), dtype)
    close(topofr.margin_ce_backward(cos, y, f_gpu.lse, w, m, grad_scale=1 / 64),
          topofr.margin_ce_backward(cos.cpu(), y.cpu(), f_cpu.lse, w.cpu(), m, grad_scale=1 / 64),
          dtype, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rsp_is_bitwise_the_cpu(dtype):
    im = cuda(rng(9).uniform(-1, 1, (16, 3, 20, 24)), dtype)
    a = topofr.rsp_perturb(im, probability=1.0, seed=3, step=11)
    b = topofr.rsp_perturb(im.cpu(), probability=1.0, seed=3, step=11)
    assert torch.equal(a.kinds.cpu(), b.kinds)
    close(a.images, b.images, dtype, rtol32=1e-5, rtol64=1e-12, atol=1e-6)


@pytest.mark.parametrize("options", [topofr.ObjectiveOptions.paper, topofr.ObjectiveOptions.released_code])
def test_objective(options):
    x = cuda(rng(10).uniform(-1, 1, (32, 3, 8, 8)), torch.float32)
    z = cuda(rng(11).standard_normal((32, 24)), torch.float32)
    cos = cuda(cosines(32, 500, 12), torch.float32)
    y = cuda(rng(13).integers(0, 500, 32), torch.int64)
    o = options()
    o.isa.x_scale = topofr.image_scale(3, 8, 8)
    r_gpu = topofr.Objective(o)(x, z, cos, y)
    r_cpu = topofr.Objective(o)(x.cpu(), z.cpu(), cos.cpu(), y.cpu())
    close(r_gpu.loss, r_cpu.loss, torch.float32, rtol32=1e-4)
    close(r_gpu.grad_cos, r_cpu.grad_cos, torch.float32, rtol32=1e-4, atol=1e-7)
    close(r_gpu.grad_z, r_cpu.grad_z, torch.float32, rtol32=1e-4, atol=1e-6)
    close(r_gpu.weights, r_cpu.weights, torch.float32, rtol32=1e-4)


def test_out_is_written_in_place_on_the_callers_stream():
    x = cuda(rng(14).standard_normal((64, 16)), torch.float32)
    out = torch.empty(64, 64, device="cuda")
    ptr = out.data_ptr()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):  # topofr takes torch's current stream
        d = topofr.pairwise_distances(x, out=out)
    assert d is out and out.data_ptr() == ptr
    close(out, topofr.pairwise_distances(x.cpu()), torch.float32, atol=1e-5)
    # An explicit stream handle is accepted too.
    d2 = topofr.pairwise_distances(x, stream=s.cuda_stream)
    close(d2, out, torch.float32)


def test_mixing_devices_names_the_argument():
    d = cuda(topofr.pairwise_distances(rng(15).standard_normal((8, 3))), torch.float64)
    with pytest.raises(TypeError, match="pairs"):
        topofr.persistence_pairs(d, out=(torch.empty(7, 2, dtype=torch.int32), None))


def test_device_found_values_become_errors():
    cos = cuda(cosines(8, 50), torch.float32)
    cos[3, 7] = float("nan")
    y = cuda(np.arange(8), torch.int64)
    with pytest.raises(topofr.Error, match="margin_ce_forward"):
        topofr.margin_ce_forward(cos, y)


def test_torch_modules_on_cuda():
    # Oracle: the same modules on the CPU (CPU<->CUDA parity of the autograd path, incl. the custom ops).
    import topofr.torch as tt

    x = cuda(rng(16).uniform(-1, 1, (32, 3, 8, 8)), torch.float32)
    y = cuda(rng(17).integers(0, 200, 32), torch.int64)
    results = []
    for dev in ("cuda", "cpu"):
        z = cuda(rng(18).standard_normal((32, 24)), torch.float32).to(dev).requires_grad_()
        cos = cuda(cosines(32, 200, 19), torch.float32).to(dev).requires_grad_()
        loss_fn = tt.TopoFRLoss.paper(isa=topofr.ISAOptions(x_scale=topofr.image_scale(3, 8, 8)))
        loss = loss_fn(x.to(dev), z, cos, y.to(dev))
        loss.backward()
        isa = tt.ISALoss(variant="sorted_deaths")(x.to(dev), z)
        results.append((loss.detach(), z.grad, cos.grad, isa.detach()))
    (lg, zg, cg, ig), (lc, zc, cc, ic) = results
    assert lg.is_cuda and zg.is_cuda and cg.is_cuda
    close(lg, lc, torch.float32, rtol32=1e-4)
    close(zg, zc, torch.float32, rtol32=1e-4, atol=1e-6)
    close(cg, cc, torch.float32, rtol32=1e-4, atol=1e-7)
    close(ig, ic, torch.float32, rtol32=1e-4)
    if tt.custom_ops_enabled():  # torch >= 2.4: the custom op traced by torch.compile, on CUDA tensors
        z = cuda(rng(18).standard_normal((32, 24)), torch.float32)
        f = torch.compile(lambda a, b: tt.isa_loss(a, b, variant="sorted_deaths"), fullgraph=True,
                          backend="aot_eager")
        close(f(x, z), ic, torch.float32, rtol32=1e-4)


# ---- the class-sharded head (topofr/cuda/shard.cuh) ------------------------------------------------------------
# Oracle: the same call on the CPU (itself checked against the whole-matrix oracles in test_shard.py), with the C++
# CUDA test's tolerances (tests/cuda/test_shard.cu): localize_labels and partial_fc_sample identical,
# combine_shard_stats within 1e-13 relative (CUDA's exp/log vs the C library's), shard_stats and
# shard_entropy_eps_partial within 1e-12 (the row sums are reassociated by the block reduction).
def near(got, want, rel, floor=1e-300):
    """|got - want| <= rel * max(|want|, floor) elementwise, or both NaN."""
    g = got.detach().cpu().double().numpy() if torch.is_tensor(got) else np.asarray(got, np.float64)
    w = want.detach().cpu().double().numpy() if torch.is_tensor(want) else np.asarray(want, np.float64)
    assert g.shape == w.shape
    both_nan = np.isnan(g) & np.isnan(w)
    ok = both_nan | (np.abs(g - w) <= rel * np.maximum(np.abs(w), floor))
    assert ok.all(), f"{int((~ok).sum())} of {ok.size} differ, e.g. got {g[~ok][:4]}, want {w[~ok][:4]}"


SHARD_MARGINS = [topofr.CombinedMargin.arcface(64.0, 0.5), topofr.CombinedMargin.cosface(30.0, 0.35),
                 topofr.CombinedMargin(32.0, 0.9, 0.4, 0.15, True)]


def shard_labels(n, classes, seed, label_dtype):
    y = rng(seed).integers(0, classes, n)
    y[3], y[11] = topofr.ignore_label, -1
    return cuda(y, label_dtype)


@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int64])
def test_shard_labels_and_sample_are_the_cpus(label_dtype):
    n, classes, world = 200, 1003, 3
    y = shard_labels(n, classes, 20, label_dtype)
    for rank in range(world):
        sh = topofr.shard_range(classes, world, rank)
        loc = topofr.localize_labels(y, sh, classes)
        assert loc.is_cuda and loc.dtype == label_dtype
        loc_cpu = topofr.localize_labels(y.cpu(), sh, classes)
        assert torch.equal(loc.cpu(), loc_cpu)
        for kw in (dict(sample_rate=0.3), dict(num_sample=1), dict(num_sample=sh.size)):
            s_gpu = topofr.partial_fc_sample(loc, sh, seed=5, step=7 + rank, **kw)
            s_cpu = topofr.partial_fc_sample(loc_cpu, sh, seed=5, step=7 + rank, **kw)
            assert isinstance(s_gpu.count, int) and s_gpu.count == s_cpu.count
            assert s_gpu.index.is_cuda and s_gpu.index.dtype == torch.int64 and s_gpu.labels.dtype == label_dtype
            assert torch.equal(s_gpu.index.cpu(), s_cpu.index)
            assert torch.equal(s_gpu.labels.cpu(), s_cpu.labels)
            assert torch.equal(s_gpu.classes.cpu(), s_cpu.classes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("margin", range(len(SHARD_MARGINS)))
def test_shard_stats_combine_and_eps_partial_against_the_cpu(dtype, label_dtype, margin):
    m = SHARD_MARGINS[margin]
    n, classes, world = 96, 1003, 3
    cos = cuda(cosines(n, classes, 21), dtype)
    y = shard_labels(n, classes, 22, label_dtype)
    stats_gpu, stats_cpu, shards = [], [], []
    for rank in range(world):
        sh = topofr.shard_range(classes, world, rank)
        loc = topofr.localize_labels(y, sh, classes)
        part = cos[:, sh.begin:sh.end]  # a column slice: row stride `classes`, seen in place
        st = topofr.shard_stats(part, loc, m)
        assert st.is_cuda and st.dtype == torch.float64 and st.shape == (n, 4)
        want = topofr.shard_stats(part.cpu(), loc.cpu(), m)
        near(st, want, 1e-12)
        stats_gpu.append(st)
        stats_cpu.append(want)
        shards.append((part, loc))
    # combine_shard_stats on the CPU's gathered stats: the same per-row code, exp/log ulps apart.
    per_cpu = torch.stack(stats_cpu)
    c_gpu = topofr.combine_shard_stats(per_cpu.cuda(), dtype)
    c_cpu = topofr.combine_shard_stats(per_cpu, dtype)
    fl = 2.5e-7 if dtype == torch.float32 else 0.0  # double results rounded to float: one float ulp
    for name, g, w in zip(topofr.ShardCombined._fields, c_gpu, c_cpu):
        assert g.is_cuda and g.dtype == dtype
        floor = 1.0 if name in ("loss", "entropy") else 1e-300  # near 0: absolute
        near(g, w, max(fl, 1e-13), floor)
    # ... and on the device's own stats, the whole device pipeline against the CPU's.
    c_dev = topofr.combine_shard_stats(torch.stack(stats_gpu), dtype)
    near(c_dev.lse, c_cpu.lse, 1e-6 if dtype == torch.float32 else 1e-12)
    # shard_entropy_eps_partial with the combined lse (the CPU's, so only the partial differs).
    for eps in (1e-5, 0.0):
        for part, loc in shards:
            p_gpu = topofr.shard_entropy_eps_partial(part, loc, c_cpu.lse.cuda(), m, entropy_eps=eps)
            p_cpu = topofr.shard_entropy_eps_partial(part.cpu(), loc.cpu(), c_cpu.lse, m, entropy_eps=eps)
            assert p_gpu.is_cuda and p_gpu.dtype == torch.float64
            near(p_gpu, p_cpu, 1e-12)


def test_shard_primitives_on_a_side_stream_into_out():
    n, classes = 64, 300
    cos = cuda(cosines(n, classes, 23), torch.float64)
    y = shard_labels(n, classes, 24, torch.int64)
    sh = topofr.shard_range(classes, 2, 1)
    part = cos[:, sh.begin:sh.end].contiguous()
    loc_out = torch.empty_like(y)
    index_out, sampled_out = torch.empty(sh.size, dtype=torch.int64, device="cuda"), torch.empty_like(y)
    st_out = torch.empty(n, 4, dtype=torch.float64, device="cuda")
    lse_out, ent_out = torch.empty(n, dtype=torch.float64, device="cuda"), torch.empty(n, dtype=torch.float64,
                                                                                          device="cuda")
    partial_out = torch.empty(n, dtype=torch.float64, device="cuda")
    ptrs = [a.data_ptr() for a in (loc_out, index_out, sampled_out, st_out, lse_out, ent_out, partial_out)]
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())  # the inputs were made on the default stream
    with torch.cuda.stream(s):  # torch's current stream
        loc = topofr.localize_labels(y, sh, classes, out=loc_out)
        smp = topofr.partial_fc_sample(loc, sh, num_sample=50, seed=1, step=2, out=(index_out, sampled_out))
        st = topofr.shard_stats(part, loc, out=st_out)
    # an explicit stream= handle
    comb = topofr.combine_shard_stats(st[None], out=(lse_out, None, None, ent_out), stream=s.cuda_stream)
    partial = topofr.shard_entropy_eps_partial(part, loc, comb.lse, out=partial_out, stream=s.cuda_stream)
    torch.cuda.current_stream().wait_stream(s)
    assert loc is loc_out and smp.index is index_out and smp.labels is sampled_out and st is st_out
    assert comb.lse is lse_out and comb.entropy is ent_out and comb.loss is None and partial is partial_out
    assert ptrs == [a.data_ptr() for a in (loc_out, index_out, sampled_out, st_out, lse_out, ent_out, partial_out)]
    loc_cpu = topofr.localize_labels(y.cpu(), sh, classes)
    assert torch.equal(loc_out.cpu(), loc_cpu)
    s_cpu = topofr.partial_fc_sample(loc_cpu, sh, num_sample=50, seed=1, step=2)
    assert smp.count == s_cpu.count and torch.equal(index_out.cpu(), s_cpu.index)
    assert torch.equal(sampled_out.cpu(), s_cpu.labels)
    st_cpu = topofr.shard_stats(part.cpu(), loc_cpu)
    near(st_out, st_cpu, 1e-12)
    c_cpu = topofr.combine_shard_stats(st_cpu[None])
    near(lse_out, c_cpu.lse, 1e-12)
    near(partial_out, topofr.shard_entropy_eps_partial(part.cpu(), loc_cpu, c_cpu.lse), 1e-12)


def test_shard_device_found_values_become_errors():
    n, classes = 8, 50
    cos = cuda(cosines(n, classes, 25), torch.float32)
    y = cuda(np.arange(n), torch.int64)
    bad = cos.clone()
    bad[2, 5] = 1.5  # a cosine outside [-1, 1]
    with pytest.raises(topofr.Error, match="shard_stats"):
        topofr.shard_stats(bad, y)
    lse = topofr.combine_shard_stats(topofr.shard_stats(cos, y)[None], torch.float32).lse
    with pytest.raises(topofr.Error, match="shard_entropy_eps_partial"):
        topofr.shard_entropy_eps_partial(bad, y, lse)
    with pytest.raises(topofr.Error, match="localize_labels"):
        topofr.localize_labels(cuda([0, 7, 50], torch.int64), (0, 25), classes)  # 50 is not a class
    st = topofr.shard_stats(cos, y)
    with pytest.raises(topofr.Error, match="combine_shard_stats"):  # a target on both ranks
        topofr.combine_shard_stats(torch.stack([st, st]))
    # The host checks are the CPU's, with the same messages.
    with pytest.raises(topofr.Error, match=r"partial_fc_sample: num_sample: must be in \[1, 25\]"):
        topofr.partial_fc_sample(y, (0, 25), num_sample=26)
    with pytest.raises(TypeError, match="shard_stats: local_labels: is on cpu but the other arrays are on cuda"):
        topofr.shard_stats(cos, y.cpu())


def test_sharded_margin_ce_on_cuda_one_rank(tmp_path):
    # A 1-rank group in this process (NCCL when torch has it, else Gloo, which gathers CUDA tensors too) against
    # the same module on the CPU in a Gloo group of its own: loss, diagnostics and gradients.
    import torch.distributed as dist

    import topofr.torch as tt
    import topofr.torch.distributed  # noqa: F401  (tt.distributed)

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the CPU group (and a Gloo default group): loopback
    backend = "nccl" if dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, init_method=f"file://{tmp_path / 'store'}", world_size=1, rank=0)
    try:
        cpu_group = dist.new_group([0], backend="gloo")
        g = torch.Generator().manual_seed(3)
        emb = torch.randn(24, 12, generator=g, dtype=torch.float64)
        labels = torch.randint(0, 40, (24,), generator=g)
        labels[2] = topofr.ignore_label
        weight = torch.randn(40, 12, generator=g, dtype=torch.float64)
        margin = topofr.CombinedMargin(16.0, 1.0, 0.3, 0.0)
        for sample_rate, cpu_labels in ((1.0, False), (0.5, True)):
            res = {}
            for dev, group in (("cpu", cpu_group), ("cuda", None)):
                head = tt.distributed.ShardedMarginCE(12, 40, margin, sample_rate=sample_rate, seed=7,
                                                      dtype=torch.float64, group=group).to(dev)
                with torch.no_grad():
                    head.weight.copy_(weight)
                e = emb.clone().to(dev).requires_grad_()  # a leaf on each device
                loss = head(e, labels if cpu_labels else labels.to(dev))  # CPU labels are moved to the weight
                loss.backward()
                last = head.last
                res[dev] = (loss.detach(), e.grad, head.weight.grad, last.entropy, last.p_gt, last.weights,
                            head.last_sample)
            (lg, eg, wg, hg, pg, og, sg), (lc, ec, wc, hc, pc, oc, sc) = res["cuda"], res["cpu"]
            assert lg.is_cuda and eg.is_cuda and wg.is_cuda and hg.is_cuda
            if sample_rate < 1.0:
                assert sg.is_cuda and torch.equal(sg.cpu(), sc)
            for a, b in ((lg, lc), (eg, ec), (wg, wc), (hg, hc), (pg, pc), (og, oc)):
                a, b = a.detach().cpu().double(), b.detach().double()
                assert float((a - b).norm()) <= 1e-11 * max(float(b.norm()), 1e-300)
    finally:
        dist.destroy_process_group()
