#!/usr/bin/env python3
"""One TopoFR loss step from Python: the released code's path against the topofr package, same batch, same
process; optionally against the same objective called from C++ (bench/bench_objective.cpp).

usage: OMP_NUM_THREADS=2 python bench/bench_python.py [--cxx build/bench/bench_objective] [--repeats 7]
                              [--released-repeats 3] [--rounds 3] [--threads 2] [--json FILE]
Run it from outside the source tree (cd /tmp) so that `import topofr` finds the installed package.

The batch: B = 128 clean images 3 x 112 x 112 float32 in [-1, 1] (x), 512-d embeddings of the perturbed batch
(z, N(0, 1)), cosines 128 x 85,742 float32 (non-targets N(0, 0.1), targets U(0.2, 0.8)), int64 labels.
Options: the released code's (topofr.ObjectiveOptions.released_code(alpha=0.1), isa.x_scale =
sqrt(4 C H W)): ArcFace s = 64, m = 0.5, entropy eps 1e-5, the released GUM EM, omega = 1 + h (the released
script stores p_gt in an integer tensor, so its focal factor is 1), sorted-deaths ISA / B, alpha = 0.1.

1. released: what the released training step computes for the loss (docs/fidelity.md, ISA and objective
   sections), in float32 torch with autograd:
     - distances torch.norm(x[:, None] - x, dim=2) of the flattened images / sqrt(4 C H W) and of z
       (TopologicalSignatureDistance's _compute_distance_matrix, an n x n x d temporary);
     - the union-find persistence pairs of each matrix (tests/oracles/reference.py kruskal_pairs, the
       released PersistentHomologyCalculation re-typed), sig = M[pairs], L_sa = sum((sig_x - sig_z)^2) / B;
     - insightface ArcFace logits on the cosines, per-sample softmax CE, entropy -sum p log(p + 1e-5);
     - GUM (reference.gauss_unif, the released GUM.py EM re-typed, NumPy) on the entropies, omega = 1 + h;
     - L = mean(omega * CE) + 0.1 * L_sa, L.backward() (grads w.r.t. z and the cosines).
2. topofr.Objective(...)(x, z, cos, labels): loss, dL/dz and dL/dcos in one call (NumPy arrays; with
   preallocated out= gradients, and allocating them per call); torch tensors too; and
   topofr.torch.TopoFRLoss forward + backward when topofr.torch exists.
3. with --cxx: the C++ benchmark on the same batch (saved as .npy, TOPOFR_BENCH_DATA), --repeats
   repetitions per round; binding overhead = (Python median - C++ median) / C++ median.
Timing runs in --rounds rounds, each timing every path in turn (the released path spread over the rounds), so
that load from other processes weighs on all paths alike; the medians are over all rounds.
The losses of 1, 2 and 3 are checked to agree (<= 1e-4 relative) before anything is timed.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "oracles"))
from reference import gauss_unif, kruskal_pairs  # noqa: E402  (the released code's union-find and GUM EM)

import torch  # noqa: E402

import topofr  # noqa: E402

B, C, H, W, DZ, CLASSES = 128, 3, 112, 112, 512, 85742
S, M, ALPHA, EPS = 64.0, 0.5, 0.1, 1e-5


def make_batch(seed=1):
    g = np.random.default_rng(seed)
    x = g.uniform(-1, 1, (B, C, H, W)).astype(np.float32)
    z = g.standard_normal((B, DZ)).astype(np.float32)
    cos = np.clip(g.normal(0, 0.1, (B, CLASSES)), -1, 1).astype(np.float32)
    labels = g.integers(0, CLASSES, B).astype(np.int64)
    cos[np.arange(B), labels] = g.uniform(0.2, 0.8, B).astype(np.float32)
    return x, z, cos, labels


# ---- 1. the released code's path --------------------------------------------------------------------------------
def released_step(x, z_np, cos_np, labels):
    """The released training step's loss and its backward; returns (loss, dL/dz, dL/dcos)."""
    xt = torch.from_numpy(x)
    z = torch.from_numpy(z_np).clone().requires_grad_(True)
    cos = torch.from_numpy(cos_np).clone().requires_grad_(True)
    y = torch.from_numpy(labels)
    n = cos.shape[0]

    # ISA: TopologicalSignatureDistance, match_edges=None (sorted deaths), no 1/2, / batch size.
    xf = xt.view(n, -1)
    mx = torch.norm(xf[:, None] - xf, dim=2, p=2) / np.sqrt(4 * C * H * W)
    mz = torch.norm(z[:, None] - z, dim=2, p=2)
    px = torch.from_numpy(kruskal_pairs(mx.detach().numpy()))
    pz = torch.from_numpy(kruskal_pairs(mz.detach().numpy()))
    sig_x = mx[px[:, 0], px[:, 1]]
    sig_z = mz[pz[:, 0], pz[:, 1]]
    l_sa = ((sig_x - sig_z) ** 2).sum() / n

    # insightface ArcFace on the cosines, softmax CE per sample, entropy with eps 1e-5.
    rows = torch.arange(n)
    t = cos[rows, y]
    sin_t = torch.sqrt(1.0 - t * t)
    ctm = t * np.cos(M) - sin_t * np.sin(M)
    final = torch.where(t > np.cos(np.pi - M), ctm, t - np.sin(np.pi - M) * M)
    logits = cos.clone()
    logits[rows, y] = final
    logits = logits * S
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    with torch.no_grad():
        p = torch.softmax(logits, dim=1)
        entropy = -(p * torch.log(p + EPS)).sum(dim=1)

    # GUM on the entropies (released EM, NumPy), omega = (2 - gamma) = 1 + h; a constant.
    h = gauss_unif(entropy.numpy())[0]
    omega = torch.from_numpy((1.0 + h).astype(np.float32))
    loss = (omega * ce).mean() + ALPHA * l_sa
    loss.backward()
    return float(loss), z.grad, cos.grad


# ---- helpers ------------------------------------------------------------------------------------------------------
def timed(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, ts


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def machine():
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "topofr": topofr.__version__}


def run_cxx(path, data_dir, repeats, threads):
    env = dict(os.environ, TOPOFR_BENCH_DATA=data_dir, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([path, f"--benchmark_repetitions={repeats}", "--benchmark_format=json",
                          "--benchmark_report_aggregates_only=false"],
                         capture_output=True, text=True, check=True, env=env)
    js = json.loads(res.stdout)
    runs = [b for b in js["benchmarks"] if b.get("run_type") == "iteration"]
    times = [b["real_time"] for b in runs]  # ms (the benchmark's unit)
    assert all(b["time_unit"] == "ms" for b in runs)
    return statistics.median(times), times, runs[0]["loss"], [b["iterations"] for b in runs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cxx", help="path to build/bench/bench_objective (times the same batch from C++)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--released-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over all paths (3)")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    x, z, cos, labels = make_batch()
    opt = topofr.ObjectiveOptions.released_code(alpha=ALPHA, margin=topofr.CombinedMargin.arcface(S, M),
                                                entropy_eps=EPS)
    opt.isa = topofr.ISAOptions(variant="sorted_deaths", reduction="mean", x_scale=topofr.image_scale(C, H, W))
    obj = topofr.Objective(opt)
    gz, gc = np.empty_like(z), np.empty_like(cos)

    # ---- agreement before timing ----
    l_ref, gz_ref, gc_ref = released_step(x, z, cos, labels)
    r = obj(x, z, cos, labels, out=(gz, gc))
    checks = {"loss_released": l_ref, "loss_topofr": r.loss, "loss_rel_diff": rel(r.loss, l_ref),
              "grad_z_max_rel": float(np.abs(gz - gz_ref.numpy()).max() / np.abs(gz_ref.numpy()).max()),
              "grad_cos_max_rel": float(np.abs(gc - gc_ref.numpy()).max() / np.abs(gc_ref.numpy()).max()),
              "gum_iterations": r.gum_iterations}
    print(f"loss: released {l_ref:.6f}  topofr {r.loss:.6f}  rel diff {checks['loss_rel_diff']:.2e}; "
          f"max |grad diff| / max |grad|: z {checks['grad_z_max_rel']:.2e}, cos {checks['grad_cos_max_rel']:.2e}")
    if checks["loss_rel_diff"] > 1e-4:
        sys.exit("the released path and topofr disagree on the loss (> 1e-4 relative): not timing")

    xt, zt, ct, yt = (torch.from_numpy(a) for a in (x, z, cos, labels))
    tgz, tgc = torch.empty_like(zt), torch.empty_like(ct)
    tt = None
    try:
        import topofr.torch as tt  # noqa: F811
    except ImportError as e:
        print(f"topofr.torch: not available ({e}); TopoFRLoss not timed")

    # ---- timing: --rounds rounds, each timing every path in turn (the C++ bench included), so that a load
    # that comes and goes (a shared machine) weighs on all paths alike; medians over all rounds ----
    paths = {"topofr_numpy_out": lambda: obj(x, z, cos, labels, out=(gz, gc)),
             "topofr_numpy_alloc": lambda: obj(x, z, cos, labels),
             "topofr_torch_out": lambda: obj(xt, zt, ct, yt, out=(tgz, tgc))}
    if tt is not None:
        loss_fn = tt.TopoFRLoss(opt)
        z_req, c_req = zt.clone().requires_grad_(True), ct.clone().requires_grad_(True)

        def module_step():
            z_req.grad, c_req.grad = None, None
            loss_fn(xt, z_req, c_req, yt).backward()

        lm = loss_fn(xt, z_req, c_req, yt)
        checks["loss_torch_module"] = float(lm)
        checks["loss_torch_module_rel_diff"] = rel(float(lm), l_ref)
        paths["topofr_torch_TopoFRLoss_fwd_bwd"] = module_step
    times = {k: [] for k in list(paths) + ["released_torch"] + (["cxx_bench_objective"] if args.cxx else [])}
    loads = []
    data_dir = tempfile.TemporaryDirectory()
    if args.cxx:
        for name, a in (("x", x), ("z", z), ("cos", cos), ("labels", labels)):
            np.save(f"{data_dir.name}/{name}.npy", a)
    released_per_round = [args.released_repeats // args.rounds + (r < args.released_repeats % args.rounds)
                          for r in range(args.rounds)]
    for rnd in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for k, fn in paths.items():
            times[k] += timed(fn, args.repeats)[1]
        if args.cxx:
            med, ts, loss_cxx, _ = run_cxx(os.path.abspath(args.cxx), data_dir.name, args.repeats, args.threads)
            times["cxx_bench_objective"] += [t / 1e3 for t in ts]
            checks["loss_cxx"] = loss_cxx
            checks["loss_cxx_rel_diff"] = rel(loss_cxx, float(r.loss))
            if checks["loss_cxx_rel_diff"] > 1e-4:
                print("WARNING: the C++ benchmark's loss differs from the Python call's (> 1e-4 relative)")
        if released_per_round[rnd]:
            times["released_torch"] += timed(lambda: released_step(x, z, cos, labels), released_per_round[rnd],
                                             warmup=1 if rnd == 0 else 0)[1]
    data_dir.cleanup()
    results = {k: (statistics.median(v) * 1e3, v) for k, v in times.items() if v}
    cxx = results.pop("cxx_bench_objective", None)
    load_after = os.getloadavg()

    rows = []
    ref_ms = results["released_torch"][0]
    for k, (med, ts) in results.items():
        rows.append((k, med, len(ts), ref_ms / med))
    if cxx is not None:
        rows.append(("cxx_bench_objective", cxx[0], len(cxx[1]), ref_ms / cxx[0]))
    print(f"\nmachine: {machine()}; threads {args.threads}; load average before {load_before[0]:.2f}, "
          f"at each round {', '.join(f'{v:.2f}' for v in loads)}, after {load_after[0]:.2f}")
    print(f"{'path':36s} {'median ms':>10s} {'repeats':>8s} {'released / this':>16s}")
    for k, med, nrep, ratio in rows:
        print(f"{k:36s} {med:10.2f} {nrep:8d} {ratio:15.1f}x")
    out = {"machine": machine(), "threads": args.threads, "load_before": load_before, "load_after": load_after, "load_rounds": loads,
           "checks": checks, "median_ms": {k: v[0] for k, v in results.items()},
           "times_ms": {k: [t * 1e3 for t in v[1]] for k, v in results.items()}}
    if cxx is not None:
        out["median_ms"]["cxx_bench_objective"] = cxx[0]
        out["times_ms"]["cxx_bench_objective"] = [t * 1e3 for t in cxx[1]]
        for k in [k for k in results if k.startswith("topofr_")]:
            ov = (results[k][0] - cxx[0]) / cxx[0]
            out.setdefault("binding_overhead", {})[k] = ov
            print(f"binding overhead ({k} vs C++): {100 * ov:+.1f} % (goal <= 5 %)")
    print(f"ratio released / topofr (numpy, out=): {ref_ms / results['topofr_numpy_out'][0]:.0f}x (goal >= 100x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
