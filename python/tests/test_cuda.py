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
