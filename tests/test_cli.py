#!/usr/bin/env python3
"""Tests of the `topofr` command-line tool: usage: test_cli.py /path/to/topofr

Every numerical output is compared with an oracle written here, independently of the library:
  pairs      a double-precision Kruskal (stable argsort of the upper triangle, union-find)
  isa        PyTorch autograd (float64) of the ISA loss of the paper and the released code (docs/fidelity.md)
  gum        a NumPy EM written from the released GUM.py (docs/fidelity.md)
  arcface    PyTorch autograd of the insightface combined-margin (ArcFace / CosFace) logits
  margin-ce  PyTorch autograd of cross-entropy, entropy (docs/fidelity.md) and p_gt of the margin softmax
and every invalid-input class must exit non-zero with exactly one stderr line naming the argument.
Exit 77 when torch is missing (after the torch-free checks), unless TOPOFR_REQUIRE_ORACLES is set.
"""
import atexit
import math
import os
import re
import io
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracles"))
import reference  # noqa: E402  (tests/oracles/reference.py: the shared Kruskal and GUM oracles)

try:
    import torch
    torch.set_default_dtype(torch.float64)
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

BIN = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="topofr_cli_")
atexit.register(shutil.rmtree, TMP, True)
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
        print("FAIL:", what, flush=True)


def path(name):
    return os.path.join(TMP, name)


def save(name, a):
    p = path(name)
    np.save(p, a)
    return p


def run(*args):
    return subprocess.run([BIN, *[str(a) for a in args]], capture_output=True, encoding="utf-8", errors="replace",
                          timeout=120)


def ok(*args):
    """Runs a command that must succeed; returns its stdout."""
    p = run(*args)
    check(p.returncode == 0 and p.stderr == "",
          f"{' '.join(map(str, args))}: rc={p.returncode} stderr={p.stderr.strip()!r}")
    return p.stdout


def bad(args, *names, code=2):
    """Runs a command that must fail with exit `code` and ONE stderr line `topofr <sub>: ...` naming
    each of `names`."""
    p = run(*args)
    lines = p.stderr.splitlines()
    sub = str(args[0])
    what = f"{' '.join(map(str, args))}: rc={p.returncode} stderr={p.stderr!r}"
    check(p.returncode == code, what + f" (expected exit {code})")
    check(len(lines) == 1 and lines[0].startswith(f"topofr {sub}: "), what + " (expected one 'topofr <sub>:' line)")
    for n in names:
        check(n in p.stderr, what + f" (should name {n!r})")
    return p.stderr


def load(p):
    return np.load(p, allow_pickle=False)


def close(a, b, rtol, atol=0.0):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def raw_npy(name, descr, shape, data, fortran=False):
    """A hand-made .npy whose header says whatever we want (to lie about the shape, say)."""
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    p = path(name)
    with open(p, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode() + data)
    return p


# ---------------------------------------------------------------------------------------------------
# Oracles

def cdist(x):
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def kruskal(d):
    """0-dim VR persistence pairs: the released code's Kruskal (tests/oracles/reference.py)."""
    return reference.kruskal_pairs(d)


def gum_oracle(e, symmetrize=True, max_iter=1000, tol=1e-10):
    """GUM EM of the released GUM.py (tests/oracles/reference.py): returns (h = 1 - gamma, pi)."""
    with np.errstate(all="ignore"):
        h, pi = reference.gauss_unif(e, symmetrize, max_iter, tol)[:2]
    return h, pi


def isa_oracle(x, z, xs, zs, variant, reduction):
    """Loss, dL/dz, dL/dx by torch autograd; the pairs come from the Python Kruskal."""
    n = len(x)
    X = torch.tensor(np.asarray(x, np.float64).reshape(n, -1), requires_grad=True)
    Z = torch.tensor(np.asarray(z, np.float64).reshape(n, -1), requires_grad=True)
    gx = torch.tensor(kruskal(cdist(x) / xs))
    gz = torch.tensor(kruskal(cdist(z) / zs))

    def m(P, g, s):
        return (P[g[:, 0]] - P[g[:, 1]]).norm(dim=1) / s

    if variant == "symmetric":
        L = 0.5 * (((m(X, gx, xs) - m(Z, gx, zs)) ** 2).sum() + ((m(Z, gz, zs) - m(X, gz, xs)) ** 2).sum())
    else:
        L = ((m(X, gx, xs) - m(Z, gz, zs)) ** 2).sum()
    if reduction == "mean":
        L = L / n
    L.backward()
    return L.item(), Z.grad.numpy().reshape(np.shape(z)), X.grad.numpy().reshape(np.shape(x))


def margin_torch(C, y, s, m1, m2, m3):
    """insightface CombinedMarginLoss: ArcFace (m1 = 1, m3 = 0, with its threshold) or CosFace (m3 > 0)."""
    logits = C.clone()
    idx = torch.nonzero(y >= 0).flatten()  # -1 (target on another shard) and -100 (ignored): no margin
    t = C[idx, y[idx]]
    if m1 == 1.0 and m3 == 0.0:
        sin_t = torch.sqrt(1 - t ** 2)
        cos_tm = t * math.cos(m2) - sin_t * math.sin(m2)
        final = torch.where(t > math.cos(math.pi - m2), cos_tm, t - math.sin(math.pi - m2) * m2)
    else:
        assert m1 == 1.0 and m2 == 0.0
        final = t - m3
    logits = logits.index_put((idx, y[idx]), final)
    return logits * s


def head_torch(C, yt, s, m1, m2, m3, st):
    """The margin logits; st (--margin-grad straight-through): the margin added under torch.no_grad(), as
    insightface's arcface_torch does, so autograd sees s * cos."""
    if not st:
        return margin_torch(C, yt, s, m1, m2, m3)
    with torch.no_grad():
        shift = margin_torch(C, yt, 1.0, m1, m2, m3) - C
    return (C + shift) * s


def arcface_oracle(cos, y, g, s, m1, m2, m3, st=False):
    C = torch.tensor(np.asarray(cos, np.float64), requires_grad=True)
    logits = head_torch(C, torch.tensor(y.astype(np.int64)), s, m1, m2, m3, st)
    logits.backward(torch.tensor(np.asarray(g, np.float64)))
    return logits.detach().numpy(), C.grad.numpy()


def margin_ce_oracle(cos, y, w, s, m1, m2, m3, eps, st=False):
    C = torch.tensor(np.asarray(cos, np.float64), requires_grad=True)
    yt = torch.tensor(y.astype(np.int64))
    logits = head_torch(C, yt, s, m1, m2, m3, st)
    lse = torch.logsumexp(logits, 1)
    p = torch.softmax(logits, dim=1)
    rows, valid, yc = torch.arange(len(y)), yt >= 0, yt.clamp(min=0)
    zero = torch.zeros(len(y))
    loss = torch.where(valid, lse - logits[rows, yc], zero)  # labels -1 and -100: no loss here
    # The differentiated function: a -1 row (target on another shard, insightface Partial FC) contributes its
    # lse, whose gradient is this shard's p; a -100 row (ignored) contributes nothing.
    term = loss + torch.where(yt == -1, lse, zero)
    (torch.tensor(w) * term).mean().backward()
    ent = -(p * torch.log(p + eps)).sum(1)
    return (loss.detach().numpy(), ent.detach().numpy(), torch.where(valid, p[rows, yc], zero).detach().numpy(),
            lse.detach().numpy(), C.grad.numpy())


# ---------------------------------------------------------------------------------------------------
# pairs

def test_pairs():
    rng = np.random.default_rng(1)
    out, deaths = path("P.npy"), path("d.npy")

    def pairs_case(label, *args, D=None, dtol=0.0):
        """Runs `pairs args --out --deaths` and compares with Kruskal on D (the oracle's distances)."""
        stdout = ok("pairs", *args, "--out", out, "--deaths", deaths)
        check("pairs: n=" in stdout and "deaths:" in stdout, f"pairs {label}: summary lines, got {stdout!r}")
        P, dd = load(out), load(deaths)
        want = kruskal(D)
        check(P.dtype == np.int32 and P.shape == (len(D) - 1, 2), f"pairs {label}: int32 (n-1, 2), got {P.dtype} {P.shape}")
        check(np.array_equal(P, want), f"pairs {label}: ordered pair list differs from Kruskal")
        check(close(dd, D[want[:, 0], want[:, 1]], dtol), f"pairs {label}: deaths differ from dist(u, v)")
        return P, dd

    # Random cloud: --dist in float64 and float32 (the oracle sorts the very same values).
    x = rng.normal(size=(60, 5))
    D = cdist(x)
    pairs_case("random --dist f64", "--dist", save("D.npy", D), D=D)
    D32 = D.astype(np.float32)
    _, dd = pairs_case("random --dist f32", "--dist", save("D32.npy", D32), D=D32.astype(np.float64))
    check(dd.dtype == np.float32, "pairs: deaths in the input's dtype float32")
    _, dd = pairs_case("random --dist f32 --dtype float64", "--dist", path("D32.npy"), "--dtype", "float64",
                       D=D32.astype(np.float64))
    check(dd.dtype == np.float64, "pairs: --dtype float64 gives float64 deaths")
    # Random cloud: --points with a scale (distances computed by the tool).
    pairs_case("random --points --scale", "--points", save("X.npy", x), "--scale", 2.5, D=cdist(x) / 2.5, dtol=1e-12)
    pairs_case("random --points f32 --dtype float64", "--points", save("X32.npy", x.astype(np.float32)), "--dtype",
               "float64", D=cdist(x.astype(np.float32)), dtol=1e-12)
    # Lattice: many exact ties (integer coordinates: every method computes the distances exactly).
    g = np.stack(np.meshgrid(np.arange(6), np.arange(5)), -1).reshape(-1, 2).astype(np.float64)
    g = g[rng.permutation(len(g))]
    pairs_case("lattice --dist", "--dist", save("Dl.npy", cdist(g)), D=cdist(g))
    pairs_case("lattice --points", "--points", save("Xl.npy", g), D=cdist(g))
    pairs_case("lattice --points f32", "--points", save("Xl32.npy", g.astype(np.float32)), D=cdist(g), dtol=1e-6)
    g3 = np.stack(np.meshgrid(np.arange(3), np.arange(3), np.arange(3)), -1).reshape(-1, 3).astype(np.float64)
    pairs_case("3-d lattice --points", "--points", save("Xl3.npy", g3), D=cdist(g3))
    # Duplicated points: zero distances, tied.
    dup = np.repeat(rng.normal(size=(15, 4)), 2, axis=0)[rng.permutation(30)]
    pairs_case("duplicates --dist", "--dist", save("Dd.npy", cdist(dup)), D=cdist(dup))
    pairs_case("duplicates --points", "--points", save("Xd.npy", dup), D=cdist(dup), dtol=1e-12)
    # All points equal, and n = 2.
    same = np.ones((7, 3))
    pairs_case("all equal", "--points", save("Xs.npy", same), D=cdist(same))
    two = np.array([[0.0, 0.0], [3.0, 4.0]])
    P, dd = pairs_case("n=2", "--points", save("X2.npy", two), D=cdist(two))
    check(abs(dd[0] - 5.0) < 1e-15, "pairs n=2: death 5")
    # Image batch (N, C, H, W) as points.
    img = rng.uniform(-1, 1, size=(12, 3, 4, 5))
    pairs_case("image batch --points", "--points", save("Xi.npy", img), D=cdist(img), dtol=1e-12)
    # --repeat
    stdout = ok("pairs", "--points", path("X.npy"), "--out", out, "--repeat", 3)
    check(re.search(r"^median_ms=[0-9.eE+-]+$", stdout, re.M) is not None, f"pairs --repeat: median_ms=, got {stdout!r}")

    # Bad input.
    X, Dp = path("X.npy"), path("D.npy")
    bad(["pairs", "--dist", save("rect.npy", np.ones((3, 4))), "--out", out], "--dist", "(3, 4)")
    bad(["pairs", "--dist", save("one.npy", np.zeros((1, 1))), "--out", out], "--dist")
    bad(["pairs", "--dist", save("cube.npy", np.zeros((2, 2, 2))), "--out", out], "--dist")
    bad(["pairs", "--points", save("p1.npy", np.ones((1, 3))), "--out", out], "--points")
    bad(["pairs", "--points", save("p3.npy", np.ones((4, 3, 2))), "--out", out], "--points")
    for label, v in (("nan", np.nan), ("inf", np.inf), ("neg", -1.0)):
        Dbad = D.copy()
        Dbad[3, 7] = Dbad[7, 3] = v
        bad(["pairs", "--dist", save(f"D{label}.npy", Dbad), "--out", out], "dist")
    xn = x.copy()
    xn[4, 2] = np.nan
    bad(["pairs", "--points", save("Xnan.npy", xn), "--out", out], "points")
    for s in ("0", "-1", "nan", "inf", "abc", "1x"):
        bad(["pairs", "--points", X, "--scale", s, "--out", out], "--scale", s)
    bad(["pairs", "--dist", Dp, "--scale", "2", "--out", out], "--scale")
    bad(["pairs", "--dist", Dp, "--points", X, "--out", out], "--dist", "--points")
    bad(["pairs", "--out", out], "--dist", "--points")
    bad(["pairs", "--dist", Dp], "--out")
    bad(["pairs", "--dist", Dp, "--out"], "--out", "missing")
    bad(["pairs", "--dist", Dp, "--out", "--deaths", deaths], "--out", "missing")
    bad(["pairs", "--dist", Dp, "--out", out, "--out", path("P2.npy")], "--out", "more than once")
    bad(["pairs", "--dist", Dp, "--out", out, "--bogus", "1"], "--bogus")
    bad(["pairs", "--dist", Dp, "--out", out, "stray"], "stray")
    bad(["pairs", "--dist", Dp, "--out", Dp], "--out", "--dist", Dp)
    bad(["pairs", "--dist", Dp, "--out", out, "--deaths", out], "--deaths", "--out")
    bad(["pairs", "--dist", Dp, "--out", out, "--repeat", "0"], "--repeat")
    bad(["pairs", "--dist", Dp, "--out", out, "--repeat", "two"], "--repeat", "two")
    bad(["pairs", "--dist", Dp, "--out", out, "--dtype", "float16"], "--dtype", "float16")
    bad(["pairs", "--dist", Dp, "--out", out, "--device", "tpu"], "--device", "tpu")
    bad(["pairs", "--dist", Dp, "--out", out, "--device", "cuda"], "--device", "CUDA")
    # Malformed files.
    good = open(Dp, "rb").read()
    with open(path("trunc.npy"), "wb") as f:
        f.write(good[:-5])
    bad(["pairs", "--dist", path("trunc.npy"), "--out", out], "--dist", "trunc.npy", "truncated")
    with open(path("trail.npy"), "wb") as f:
        f.write(good + b"\0" * 8)
    bad(["pairs", "--dist", path("trail.npy"), "--out", out], "--dist", "trail.npy")
    bad(["pairs", "--dist", raw_npy("lie.npy", "<f8", "(5, 5)", np.zeros(16).tobytes()), "--out", out], "--dist", "lie.npy")
    bad(["pairs", "--dist", save("int.npy", np.zeros((4, 4), np.int32)), "--out", out], "--dist", "<i4")
    bad(["pairs", "--dist", save("big.npy", D.astype(">f4")), "--out", out], "--dist", ">f4")
    bad(["pairs", "--dist", save("f16.npy", D.astype(np.float16)), "--out", out], "--dist", "<f2")
    bad(["pairs", "--dist", save("fort.npy", np.asfortranarray(D[:, :5][:5, :] + np.arange(5)[:, None])), "--out", out],
        "--dist", "Fortran")
    with open(path("junk.npy"), "wb") as f:
        f.write(b"this is not an npy file at all")
    bad(["pairs", "--dist", path("junk.npy"), "--out", out], "--dist", "junk.npy")
    # Corrupted headers and sizes: never a crash, always exit 0 or 2 (a byte flip may still be valid).
    small = open(save("small.npy", cdist(rng.normal(size=(6, 2)))), "rb").read()
    for k in range(40):
        b = bytearray(small[:rng.integers(8, len(small) + 1)] if k % 4 == 0 else small)
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(0, min(len(b), 128))] = rng.integers(0, 256)
        with open(path("fuzz.npy"), "wb") as f:
            f.write(bytes(b))
        p = run("pairs", "--dist", path("fuzz.npy"), "--out", out)
        check(p.returncode in (0, 2) and p.stderr.count("\n") == (p.returncode != 0),
              f"pairs: corrupted file #{k}: rc={p.returncode} stderr={p.stderr!r}")
    bad(["pairs", "--dist", path("missing.npy"), "--out", out], "--dist", "missing.npy", code=1)
    bad(["pairs", "--dist", Dp, "--out", path("no_such_dir/P.npy")], "--out", "no_such_dir", code=1)
    check(not os.path.exists(path("no_such_dir")), "pairs: no directory created on failure")


# ---------------------------------------------------------------------------------------------------
# isa

def test_isa(oracle):
    rng = np.random.default_rng(2)
    L, G, GX = path("L.npy"), path("G.npy"), path("GX.npy")
    x, z = rng.normal(size=(24, 6)), rng.normal(size=(24, 3))
    X, Z = save("ix.npy", x), save("iz.npy", z)
    img = rng.uniform(-1, 1, size=(16, 3, 4, 4))
    zi = rng.normal(size=(16, 5))
    XI, ZI = save("ixi.npy", img), save("izi.npy", zi)

    if oracle:
        def isa_case(label, xa, za, xp, zp, xs, zs, variant, reduction, extra=(), rtol=1e-10, dtype=np.float64):
            stdout = ok("isa", "--x", xp, "--z", zp, "--variant", variant, "--reduction", reduction, *extra,
                        "--loss-out", L, "--grad-out", G, "--grad-x-out", GX)
            check("isa: n=" in stdout and "grad:" in stdout, f"isa {label}: summary lines, got {stdout!r}")
            want_l, want_gz, want_gx = isa_oracle(xa, za, xs, zs, variant, reduction)
            got_l, got_gz, got_gx = load(L), load(G), load(GX)
            check(got_l.shape == (1,) and got_l.dtype == dtype, f"isa {label}: loss shape (1,) {dtype}, got {got_l.shape} {got_l.dtype}")
            check(close(got_l, [want_l], rtol), f"isa {label}: loss {got_l} vs torch {want_l}")
            scale = np.abs(want_gz).max()
            check(got_gz.shape == np.shape(za) and close(got_gz, want_gz, rtol, rtol * scale),
                  f"isa {label}: dL/dz differs from torch autograd (max err {np.abs(got_gz - want_gz).max()})")
            scale = np.abs(want_gx).max()
            check(got_gx.shape == np.shape(xa) and close(got_gx, want_gx, rtol, rtol * scale),
                  f"isa {label}: dL/dx differs from torch autograd")

        isa_case("symmetric mean", x, z, X, Z, 1.0, 1.0, "symmetric", "mean")
        isa_case("symmetric sum scaled", x, z, X, Z, 2.0, 0.5, "symmetric", "sum", ("--x-scale", 2, "--z-scale", 0.5))
        isa_case("sorted_deaths sum", x, z, X, Z, 1.0, 1.0, "sorted_deaths", "sum")
        isa_case("sorted_deaths mean scaled", x, z, X, Z, 3.0, 1.5, "sorted_deaths", "mean", ("--x-scale", 3, "--z-scale", 1.5))
        # Image batch: default x-scale sqrt(4*C*H*W) (docs/fidelity.md), z-scale 1.
        isa_case("image batch default scale", img, zi, XI, ZI, math.sqrt(4 * 3 * 4 * 4), 1.0, "symmetric", "mean")
        isa_case("image batch sorted_deaths", img, zi, XI, ZI, math.sqrt(4 * 48), 1.0, "sorted_deaths", "mean")
        isa_case("image batch --x-scale overrides", img, zi, XI, ZI, 7.0, 1.0, "symmetric", "sum", ("--x-scale", 7))
        # Latent as an image batch too: G has Z's 4-d shape.
        z4 = rng.normal(size=(16, 2, 2, 2))
        isa_case("4-d latent", img, z4, XI, save("iz4.npy", z4), math.sqrt(4 * 48), 1.0, "symmetric", "mean")
        # n = 2
        isa_case("n=2", x[:2], z[:2], save("ix2.npy", x[:2]), save("iz2.npy", z[:2]), 1.0, 1.0, "symmetric", "mean")
        # float32 (inputs in float32; the oracle uses the same float32 values in double)
        x32, z32 = x.astype(np.float32), z.astype(np.float32)
        isa_case("float32", x32, z32, save("ix32.npy", x32), save("iz32.npy", z32), 1.0, 1.0, "symmetric", "mean",
                 rtol=1e-4, dtype=np.float32)
        isa_case("float32 --dtype float64", x32, z32, path("ix32.npy"), path("iz32.npy"), 1.0, 1.0, "sorted_deaths", "sum",
                 ("--dtype", "float64"), rtol=1e-10)
        # Identical spaces: zero loss and zero gradient.
        ok("isa", "--x", X, "--z", save("ixc.npy", x.copy()), "--loss-out", L, "--grad-out", G)
        check(load(L)[0] == 0 and not np.any(load(G)), "isa: identical spaces give loss 0 and gradient 0")

    ok("isa", "--x", X, "--z", Z, "--loss-out", L)
    stdout = ok("isa", "--x", X, "--z", Z, "--loss-out", L, "--repeat", 2)
    check(re.search(r"^median_ms=[0-9.eE+-]+$", stdout, re.M) is not None, "isa --repeat: median_ms=")
    # Bad input.
    bad(["isa", "--x", save("ix3.npy", np.ones((4, 3, 2))), "--z", Z, "--loss-out", L], "--x", "(4, 3, 2)")
    bad(["isa", "--x", X, "--z", save("iz1.npy", np.ones(24)), "--loss-out", L], "--z")
    bad(["isa", "--x", X, "--z", save("izn.npy", z[:10]), "--loss-out", L], "--z", "10")
    bad(["isa", "--x", save("ix1.npy", x[:1]), "--z", save("iz1b.npy", z[:1]), "--loss-out", L], "--x")
    zn = z.copy()
    zn[3, 1] = np.nan
    bad(["isa", "--x", X, "--z", save("iznan.npy", zn), "--loss-out", L], "z")
    xn = x.copy()
    xn[0, 0] = np.inf
    bad(["isa", "--x", save("ixinf.npy", xn), "--z", Z, "--loss-out", L], "x")
    for s in ("0", "-2", "nan"):
        bad(["isa", "--x", X, "--z", Z, "--x-scale", s, "--loss-out", L], "--x-scale")
        bad(["isa", "--x", X, "--z", Z, "--z-scale", s, "--loss-out", L], "--z-scale")
    bad(["isa", "--x", X, "--z", Z, "--variant", "paper", "--loss-out", L], "--variant", "paper")
    bad(["isa", "--x", X, "--z", Z, "--reduction", "max", "--loss-out", L], "--reduction", "max")
    bad(["isa", "--x", X, "--z", Z], "--loss-out")
    bad(["isa", "--z", Z, "--loss-out", L], "--x")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", L, "--grad-out", Z], "--grad-out", "--z")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", X], "--loss-out", "--x")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", L, "--grad-out", L], "--grad-out", "--loss-out")
    bad(["isa", "--x", save("ixi32.npy", np.ones((24, 6), np.int64)), "--z", Z, "--loss-out", L], "--x", "<i8")
    bad(["isa", "--x", X, "--z", save("izbig.npy", z.astype(">f8")), "--loss-out", L], "--z", ">f8")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", L, "--x-scale"], "--x-scale", "missing")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", L, "--frobnicate"], "--frobnicate")
    bad(["isa", "--x", X, "--z", Z, "--loss-out", L, "--device", "cuda"], "CUDA")


# ---------------------------------------------------------------------------------------------------
# gum

def test_gum():
    rng = np.random.default_rng(3)
    H, PI, G = path("H.npy"), path("pi.npy"), path("gamma.npy")

    def gum_case(label, e, *extra, symmetrize=True, atol=1e-8, dtype=np.float64):
        p = save(f"e_{len(e)}_{label.replace(' ', '_')}.npy", e)
        stdout = ok("gum", "--entropy", p, "--out", H, "--pi-out", PI, "--gamma-out", G, *extra)
        check("gum: n=" in stdout and "pi:" in stdout, f"gum {label}: summary lines, got {stdout!r}")
        want_h, want_pi = gum_oracle(e, symmetrize)
        h, pi = load(H), load(PI)
        check(h.shape == (len(e),) and h.dtype == dtype, f"gum {label}: h shape ({len(e)},) {dtype}, got {h.shape} {h.dtype}")
        check(close(h, want_h, 0, atol), f"gum {label}: h differs from the NumPy EM (max err {np.abs(h - want_h).max()})")
        check(pi.shape == (1,) and close(pi, [want_pi], 0, atol), f"gum {label}: pi {pi} vs NumPy EM {want_pi}")
        gamma = load(G)
        check(gamma.shape == (len(e),) and close(gamma, 1 - want_h, 0, atol),
              f"gum {label}: --gamma-out differs from the NumPy EM's gamma")

    # Entropies: mostly small (clear samples) plus a spread of large ones (hard samples).
    e = np.concatenate([np.abs(rng.normal(0, 0.3, 50)), rng.uniform(0, 6, 14)])[rng.permutation(64)]
    gum_case("mixture", e)
    gum_case("mixture no-symmetrize", e, "--no-symmetrize", symmetrize=False)
    gum_case("odd n", e[:33])
    gum_case("odd n no-symmetrize", e[:33], "--no-symmetrize", symmetrize=False)
    gum_case("uniform", rng.uniform(0, 4, 40))
    gum_case("n=2", np.array([0.1, 2.0]))
    gum_case("n=1", np.array([0.4]))
    gum_case("all equal", np.full(10, 0.7))
    gum_case("all equal no-symmetrize", np.full(10, 0.7), "--no-symmetrize", symmetrize=False)
    e32 = e.astype(np.float32)
    gum_case("float32 --dtype float64", e32, "--dtype", "float64")
    gum_case("float32", e32, atol=2e-3, dtype=np.float32)
    # robust mode: no oracle of its own; a probability per sample.
    ok("gum", "--entropy", save("er.npy", e), "--out", H, "--mode", "robust")
    h = load(H)
    check(h.shape == (64,) and np.all(np.isfinite(h)) and np.all((h >= 0) & (h <= 1)), "gum robust: h in [0, 1]")
    stdout = ok("gum", "--entropy", path("er.npy"), "--out", H, "--repeat", 3)
    check(re.search(r"^median_ms=[0-9.eE+-]+$", stdout, re.M) is not None, "gum --repeat: median_ms=")
    # Bad input.
    E = path("er.npy")
    bad(["gum", "--entropy", save("e2d.npy", np.ones((4, 4))), "--out", H], "--entropy", "(4, 4)")
    for label, v in (("nan", np.nan), ("inf", np.inf)):
        eb = e.copy()
        eb[5] = v
        bad(["gum", "--entropy", save(f"e{label}.npy", eb), "--out", H], "entropy")
    bad(["gum", "--entropy", save("e0.npy", np.ones(0)), "--out", H], "entropy")
    bad(["gum", "--entropy", save("eint.npy", np.ones(8, np.int32)), "--out", H], "--entropy", "<i4")
    bad(["gum", "--entropy", E, "--out", H, "--mode", "fast"], "--mode", "fast")
    bad(["gum", "--entropy", E, "--out", H, "--max-iter", "0"], "--max-iter")
    bad(["gum", "--entropy", E, "--out", H, "--max-iter", "99999999999"], "--max-iter", "99999999999")
    bad(["gum", "--entropy", E, "--out", H, "--max-iter", "1e3"], "--max-iter", "1e3")
    bad(["gum", "--entropy", E, "--out", H, "--tol", "-1"], "--tol")
    bad(["gum", "--entropy", E, "--out", H, "--no-symmetrize=yes"], "--no-symmetrize")
    bad(["gum", "--entropy", E, "--out", E], "--out", "--entropy")
    bad(["gum", "--entropy", E, "--out", H, "--pi-out", H], "--pi-out", "--out")
    bad(["gum", "--entropy", E], "--out")
    bad(["gum", "--entropy", E, "--out", H, "--entropy", E], "--entropy", "more than once")
    bad(["gum", "--entropy", raw_npy("elie.npy", "<f8", "(9,)", np.zeros(8).tobytes()), "--out", H], "--entropy", "elie.npy")
    bad(["gum", "--entropy", raw_npy("efort.npy", "<f8", "(8,)", np.zeros(8).tobytes(), fortran=True), "--out", H],
        "--entropy", "Fortran")


# ---------------------------------------------------------------------------------------------------
# arcface and margin-ce

def cosines(rng, n, c):
    return np.clip(rng.uniform(-0.95, 0.95, size=(n, c)), -0.999, 0.999)


def test_arcface(oracle):
    rng = np.random.default_rng(4)
    n, c = 12, 9
    cos = cosines(rng, n, c)
    cos[0, 3] = -0.95  # below cos(pi - m): insightface's fallback branch
    y = rng.integers(0, c, n)
    y[0] = 3
    y[5] = -1  # class in another shard
    y[9] = -100  # ignored row
    gin = rng.normal(size=(n, c))
    Cp, Y32, Y64, Gp = save("c.npy", cos), save("y32.npy", y.astype(np.int32)), save("y64.npy", y), save("g.npy", gin)
    LO, GO = path("lo.npy"), path("go.npy")
    if oracle:
        for label, yp, margins, kw in (
                ("arcface default int32", Y32, (), dict(s=64, m1=1, m2=0.5, m3=0)),
                ("arcface int64 s=30 m2=0.3", Y64, ("--s", 30, "--m2", 0.3), dict(s=30, m1=1, m2=0.3, m3=0)),
                ("cosface", Y64, ("--m2", 0, "--m3", 0.35), dict(s=64, m1=1, m2=0.0, m3=0.35)),
                ("arcface --margin-grad straight-through", Y64, ("--margin-grad", "straight-through"),
                 dict(s=64, m1=1, m2=0.5, m3=0, st=True))):
            stdout = ok("arcface", "--cos", Cp, "--labels", yp, *margins, "--logits-out", LO, "--grad-in", Gp, "--grad-out", GO)
            check("arcface: N=" in stdout and "grad:" in stdout, f"{label}: summary lines, got {stdout!r}")
            want_l, want_g = arcface_oracle(cos, y, gin, **kw)
            check(close(load(LO), want_l, 1e-12, 1e-12), f"{label}: logits differ from torch")
            check(close(load(GO), want_g, 1e-10, 1e-10), f"{label}: dL/dcos differs from torch autograd "
                  f"(max err {np.abs(load(GO) - want_g).max()})")
            # The margin-ce head on the same data.
            w = rng.uniform(0.5, 2.0, n)
            yy = y  # row 5 (-1): zero loss and p_gt, gradient w p / N; row 9 (-100): zero loss, p_gt and gradient
            Yy, W = save("yy.npy", yy), save("w.npy", w)
            outs = [path(f"ce_{k}.npy") for k in ("loss", "ent", "pgt", "lse", "grad")]
            stdout = ok("margin-ce", "--cos", Cp, "--labels", Yy, *margins, "--weights", W, "--entropy-eps", 1e-5,
                        "--loss-out", outs[0], "--entropy-out", outs[1], "--pgt-out", outs[2], "--lse-out", outs[3],
                        "--grad-out", outs[4])
            check(stdout.count("\n") == 5, f"margin-ce {label}: one summary line per output, got {stdout!r}")
            want = margin_ce_oracle(cos, yy, w, eps=1e-5, **kw)
            for name, o, wv in zip(("loss", "entropy", "p_gt", "lse", "grad"), outs, want):
                got = load(o)
                check(close(got, wv, 1e-9, 1e-12), f"margin-ce {label}: {name} differs from torch "
                      f"(max err {np.abs(got - wv).max() if got.shape == wv.shape else got.shape})")
            g = load(outs[4])
            check(np.all(g[9] == 0) and np.all(g[5] > 0), f"margin-ce {label}: -100 row no gradient, -1 row w p / N")
            # Default weights (1) and eps.
            ok("margin-ce", "--cos", Cp, "--labels", Yy, *margins, "--loss-out", outs[0], "--entropy-out", outs[1],
               "--pgt-out", outs[2], "--grad-out", outs[4])
            want = margin_ce_oracle(cos, yy, np.ones(n), eps=1e-5, **kw)
            check(close(load(outs[4]), want[4], 1e-9, 1e-12), f"margin-ce {label}: default-weight grad differs from torch")
        # float32 cosines: computed in float32.
        ok("arcface", "--cos", save("c32.npy", cos.astype(np.float32)), "--labels", Y32, "--logits-out", LO)
        want_l, _ = arcface_oracle(cos.astype(np.float32), y, gin, 64, 1, 0.5, 0)
        check(load(LO).dtype == np.float32 and close(load(LO), want_l, 1e-5, 1e-4), "arcface float32: logits vs torch")
    # cos = +-1 at the label: finite gradient (no oracle can take the derivative there; it must not be inf/NaN).
    edge = cosines(rng, 2, 4)
    edge[0, 1], edge[1, 2] = 1.0, -1.0
    ok("arcface", "--cos", save("ce.npy", edge), "--labels", save("ye.npy", np.array([1, 2])), "--logits-out", LO,
       "--grad-in", save("ge.npy", np.ones((2, 4))), "--grad-out", GO)
    check(np.all(np.isfinite(load(GO))) and np.all(np.isfinite(load(LO))), "arcface: finite at cos = +-1")
    stdout = ok("arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--repeat", 2)
    check(re.search(r"^median_ms=[0-9.eE+-]+$", stdout, re.M) is not None, "arcface --repeat: median_ms=")

    # Bad input (arcface).
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--margin-grad", "straight"], "--margin-grad", "straight")
    bad(["arcface", "--cos", save("c1.npy", np.zeros(5)), "--labels", Y32, "--logits-out", LO], "--cos")
    bad(["arcface", "--cos", Cp, "--labels", save("yshort.npy", y[:5].astype(np.int32)), "--logits-out", LO], "--labels", "(5,)")
    bad(["arcface", "--cos", Cp, "--labels", save("y2d.npy", y.reshape(3, 4)), "--logits-out", LO], "--labels")
    yb = y.copy()
    yb[2] = c
    bad(["arcface", "--cos", Cp, "--labels", save("ybig.npy", yb), "--logits-out", LO], "labels", str(c))
    for v in (-2, -99, -101):
        yb[2] = v
        bad(["arcface", "--cos", Cp, "--labels", save("yneg.npy", yb), "--logits-out", LO], "labels", str(v),
            "expected -1 (target on another shard), -100 (ignored)")
        bad(["margin-ce", "--cos", Cp, "--labels", save("yneg.npy", yb), "--loss-out", path("l.npy"), "--entropy-out",
             path("e.npy"), "--pgt-out", path("p.npy")], "labels", str(v))
    bad(["arcface", "--cos", Cp, "--labels", save("yf.npy", y.astype(np.float64)), "--logits-out", LO], "--labels", "<f8")
    for label, v in (("out", 1.5), ("out2", -1.01), ("nan", np.nan)):
        cb = cos.copy()
        cb[1, 1] = v
        bad(["arcface", "--cos", save(f"c{label}.npy", cb), "--labels", Y32, "--logits-out", LO], "cos")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--grad-in", Gp], "--grad-out")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--grad-out", GO], "--grad-in")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--grad-in", save("gs.npy", gin[:3]), "--grad-out", GO],
        "--grad-in")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--s", "big"], "--s", "big")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--s", "0"], "margin.s")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--m2", "nan"], "--m2", "nan")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--m2"], "--m2", "missing")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", Y32], "--logits-out", "--labels")
    bad(["arcface", "--cos", Cp, "--labels", Y32], "--logits-out")
    bad(["arcface", "--cos", Cp, "--labels", Y32, "--logits-out", LO, "--weights", Gp], "--weights")

    # Bad input (margin-ce).
    Yy = save("yy.npy", np.where(y < 0, 0, y))
    o = ["--loss-out", path("m1.npy"), "--entropy-out", path("m2.npy"), "--pgt-out", path("m3.npy")]
    ok("margin-ce", "--cos", Cp, "--labels", Yy, *o)
    stdout = ok("margin-ce", "--cos", Cp, "--labels", Yy, *o, "--grad-out", path("m4.npy"), "--repeat", 2)
    check(re.search(r"^median_ms=[0-9.eE+-]+$", stdout, re.M) is not None, "margin-ce --repeat: median_ms=")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, "--loss-out", path("m1.npy"), "--entropy-out", path("m2.npy")], "--pgt-out")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--weights", save("wshort.npy", np.ones(3))], "--weights", "(3,)")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--weights", save("wint.npy", np.ones(n, np.int64))], "--weights", "<i8")
    bad(["margin-ce", "--cos", Cp, "--labels", save("ybig2.npy", np.full(n, c)), *o], "labels")
    bad(["margin-ce", "--cos", Cp, "--labels", save("yf2.npy", np.zeros(n, np.float32)), *o], "--labels", "<f4")
    bad(["margin-ce", "--cos", path("cout.npy"), "--labels", Yy, *o], "cos")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--entropy-eps", "x"], "--entropy-eps")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--grad-out", Cp], "--grad-out", "--cos")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, "--loss-out", path("m1.npy"), "--entropy-out", path("m1.npy"),
         "--pgt-out", path("m3.npy")], "--entropy-out", "--loss-out")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--m1", "1", "--m1", "1"], "--m1", "more than once")
    bad(["margin-ce", "--cos", Cp, "--labels", Yy, *o, "--device", "cuda"], "CUDA")
    with open(Cp, "rb") as f:
        good = f.read()
    with open(path("ctrunc.npy"), "wb") as f:
        f.write(good[:100])
    bad(["margin-ce", "--cos", path("ctrunc.npy"), "--labels", Yy, *o], "--cos", "ctrunc.npy")

# ---------------------------------------------------------------------------------------------------
# Regressions of issue 10 (one block per row of the issue's table; numbers in the labels).

def test_issue10():
    rng = np.random.default_rng(10)
    out, deaths = path("r_P.npy"), path("r_d.npy")
    x = rng.normal(size=(9, 3))
    X = save("r_x.npy", x)

    # Row 2: an output that is a FIFO or a character device is written in place, never replaced by a
    # regular file. Oracle: the bytes read from the FIFO are the .npy written to a regular file by the same
    # command (numpy parses both).
    ok("pairs", "--points", X, "--out", out, "--deaths", deaths)
    want = load(deaths)
    fifo = path("r_fifo")
    os.mkfifo(fifo)
    got = {}

    def reader():
        with open(fifo, "rb") as f:
            got["bytes"] = f.read()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    ok("pairs", "--points", X, "--out", out, "--deaths", fifo)
    t.join(10)
    check(stat.S_ISFIFO(os.lstat(fifo).st_mode), "row 2: --deaths FIFO is still a FIFO after the write")
    check("bytes" in got and np.array_equal(np.load(io.BytesIO(got["bytes"])), want),
          "row 2: the FIFO's reader got the deaths .npy (numpy-parsed, equal to the regular-file output)")
    check(not [f for f in os.listdir(TMP) if ".tmp-topofr-" in f], "row 2: no temporary file left behind")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # A private null device in the temp dir (never the real /dev/null).
        node = path("r_null")
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        ok("pairs", "--points", X, "--out", out, "--deaths", node)
        check(stat.S_ISCHR(os.lstat(node).st_mode), "row 2: --deaths character device is still a device node")
        ok("pairs", "--points", X, "--out", node)
        check(stat.S_ISCHR(os.lstat(node).st_mode), "row 2: --out character device is still a device node")
    # Outputs that cannot be replaced: a directory is refused (exit 1), nothing created.
    os.mkdir(path("r_dir"))
    bad(["pairs", "--points", X, "--out", path("r_dir")], "--out", "r_dir", code=1)

    # Row 3: C*H*W that would overflow 64 bits. The reader follows NumPy's size rule (itemsize x the product
    # of the non-zero dimensions <= 2^63 - 1; oracle: np.load refuses this file too), so the shape is refused
    # when read, with the flag and the shape named; the CLI's own overflow-checked C*H*W stays as a backstop.
    T = 2 ** 40
    huge = raw_npy("r_huge4.npy", "<f8", f"(0, {T}, {T}, {T})", b"")
    try:
        np.load(huge)
        check(False, "row 3: numpy refuses the (0, 2^40, 2^40, 2^40) file")
    except ValueError:
        pass
    bad(["pairs", "--points", huge, "--out", out], "--points", "too large", str(T))
    bad(["isa", "--x", huge, "--z", X, "--loss-out", path("r_L.npy")], "--x", "too large", str(T))
    bad(["isa", "--x", X, "--z", huge, "--loss-out", path("r_L.npy")], "--z", "too large", str(T))

    # Row 4: points of dimension 0 are refused by every command (no n*n allocation, no overflow).
    for shape in (f"({T}, 0)", "(3000000000, 0)", "(8, 0)"):
        p0 = raw_npy("r_d0.npy", "<f8", shape, b"")
        bad(["pairs", "--points", p0, "--out", out], "--points", shape, "dimension 0")
        bad(["isa", "--x", p0, "--z", p0, "--loss-out", path("r_L.npy")], "--x", shape, "dimension 0")
    bad(["pairs", "--points", raw_npy("r_i0.npy", "<f4", "(5, 3, 0, 2)", b""), "--out", out], "--points", "dimension 0")

    # Row 8: --dist that is not symmetric, or whose diagonal is not 0. Oracle: numpy's max |A - A^T|.
    D = cdist(x)
    A = D.copy()
    A[6, 2] += 43.8
    Ap = save("r_asym.npy", A)
    asym = np.abs(A - A.T)
    wi, wj = np.unravel_index(np.argmax(np.triu(asym, 1)), A.shape)
    p = run("pairs", "--dist", Ap, "--out", out)
    check(p.returncode == 0 and p.stderr.count("\n") == 1 and "warning" in p.stderr and "--dist" in p.stderr
          and "not symmetric" in p.stderr and f"({wi}, {wj})" in p.stderr and "43.8" in p.stderr,
          f"row 8: asymmetric --dist warns once with max |D - D^T| (numpy: {asym.max()}) at ({wi}, {wj}), got {p.stderr!r}")
    check(np.array_equal(load(out), kruskal(np.triu(A, 1) + np.triu(A, 1).T)), "row 8: the upper triangle is used")
    bad(["pairs", "--dist", Ap, "--out", out, "--asymmetric", "error"], "--dist", "r_asym.npy", "not symmetric",
        "43.8")
    ok("pairs", "--dist", Ap, "--out", out, "--asymmetric", "ignore")  # ok(): no stderr at all
    ok("pairs", "--dist", save("r_sym.npy", D), "--out", out, "--asymmetric", "error")
    for label, v in (("nan", np.nan), ("neg", -5.0)):
        B = D.copy()
        B[4, 4] = v
        Bp = save(f"r_diag{label}.npy", B)
        p = run("pairs", "--dist", Bp, "--out", out)
        check(p.returncode == 0 and p.stderr.count("\n") == 1 and "diagonal" in p.stderr and "D[4, 4]" in p.stderr,
              f"row 8: diagonal {label} warns once naming D[4, 4], got {p.stderr!r}")
        bad(["pairs", "--dist", Bp, "--out", out, "--asymmetric", "error"], "--dist", "diagonal", "D[4, 4]")
    bad(["pairs", "--dist", Ap, "--out", out, "--asymmetric", "maybe"], "--asymmetric", "maybe")
    bad(["pairs", "--points", X, "--out", out, "--asymmetric", "error"], "--asymmetric")

    # Row 9: float32 points around 1e30: finite distances, but the loss overflows float32 (numpy: the
    # float64 loss exceeds float32's max).
    x9 = (rng.normal(size=(10, 3)) * 1e30).astype(np.float32)
    z9 = rng.normal(size=(10, 2)).astype(np.float32)
    check(np.all(np.isfinite(cdist(x9))) and (cdist(x9) ** 2).sum() > np.finfo(np.float32).max,
          "row 9 oracle: numpy's distances are finite, their squares overflow float32")
    X9, Z9 = save("r_x9.npy", x9), save("r_z9.npy", z9)
    bad(["isa", "--x", X9, "--z", Z9, "--loss-out", path("r_L.npy")], "loss", "not finite", "r_x9.npy", "r_z9.npy",
        "float32", "--dtype float64")
    check(not os.path.exists(path("r_L.npy")), "row 9: no loss file written")
    stdout = ok("isa", "--x", X9, "--z", Z9, "--loss-out", path("r_L.npy"), "--dtype", "float64")
    check(np.isfinite(load(path("r_L.npy"))[0]), "row 9: --dtype float64 gives a finite loss")

    # Row 10: a NaN in --grad-in is an error naming the flag, the file and the index.
    n, c = 4, 5
    cos = cosines(rng, n, c)
    g = np.ones((n, c))
    g[1, 2] = np.nan
    Cp, Yp = save("r_cos.npy", cos), save("r_y.npy", np.arange(n))
    for label, v in (("nan", np.nan), ("inf", -np.inf)):
        g[1, 2] = v
        bad(["arcface", "--cos", Cp, "--labels", Yp, "--logits-out", path("r_lo.npy"), "--grad-in",
             save(f"r_g{label}.npy", g), "--grad-out", path("r_go.npy")], "--grad-in", f"r_g{label}.npy", "(1, 2)",
            "not finite")
    check(not os.path.exists(path("r_go.npy")), "row 10: no gradient file written")

    # Row 13: N = 0 (and C = 0) is the same clear error for arcface and margin-ce.
    o = ["--loss-out", path("r_m1.npy"), "--entropy-out", path("r_m2.npy"), "--pgt-out", path("r_m3.npy")]
    for shape, what in (((0, 5), "no samples"), ((3, 0), "no classes")):
        C0 = save("r_c0.npy", np.zeros(shape))
        Y0 = save("r_y0.npy", np.zeros(shape[0], np.int64))
        bad(["arcface", "--cos", C0, "--labels", Y0, "--logits-out", path("r_lo0.npy")], "--cos", what, str(shape))
        bad(["margin-ce", "--cos", C0, "--labels", Y0, *o, "--grad-out", path("r_m4.npy")], "--cos", what, str(shape))
        bad(["margin-ce", "--cos", C0, "--labels", Y0, *o], "--cos", what)
    check(not os.path.exists(path("r_lo0.npy")), "row 13: arcface with N = 0 writes nothing")

    # Row 14: the error names --points (the flag given) and says what overflowed.
    x14 = rng.normal(size=(6, 3)) * 1e200
    with np.errstate(over="ignore"):
        d14 = np.sqrt(((x14[:, None] - x14[None]) ** 2).sum(-1))
    check(not np.all(np.isfinite(d14)),
          "row 14 oracle: numpy's float64 distances of these points overflow")
    p14 = save("r_x14.npy", x14)
    e = bad(["pairs", "--points", p14, "--out", out], "--points", "r_x14.npy", "overflows float64")
    check("dist:" not in e and "persistence_pairs" not in e, f"row 14: no blame on `dist`, got {e!r}")
    x14b = rng.normal(size=(6, 3)) * 1e300
    e = bad(["pairs", "--points", save("r_x14b.npy", x14b), "--out", out, "--dtype", "float32"], "--points",
            "r_x14b.npy", "out of range for float32")
    check("not finite" not in e, f"row 14: a finite value is not called 'not finite', got {e!r}")
    bad(["isa", "--x", path("r_x14b.npy"), "--z", path("r_x14b.npy"), "--loss-out", path("r_L.npy"), "--dtype",
         "float32"], "--x", "out of range for float32")


def test_top_level():
    p = run("--help")
    check(p.returncode == 0 and all(s in p.stdout for s in ("pairs", "isa", "gum", "arcface", "margin-ce")),
          "topofr --help lists every subcommand")
    for sub in ("pairs", "isa", "gum", "arcface", "margin-ce"):
        p = run(sub, "--help")
        check(p.returncode == 0 and "--device" in p.stdout and "--dtype" in p.stdout, f"topofr {sub} --help")
    p = run("isa", "--help")
    check("sqrt(4*C*H*W)" in p.stdout, "isa --help documents the image-batch default x-scale")
    p = run("frobnicate")
    check(p.returncode == 2 and p.stderr.count("\n") == 1 and "frobnicate" in p.stderr, "unknown subcommand")
    p = run()
    check(p.returncode == 2 and p.stderr.count("\n") == 1, "no subcommand: one stderr line, exit 2")


def main():
    test_top_level()
    test_pairs()
    test_gum()
    test_isa(HAVE_TORCH)
    test_arcface(HAVE_TORCH)
    test_issue10()
    print(f"{checks} checks, {len(failures)} failures")
    if failures:
        sys.exit(1)
    if not HAVE_TORCH:
        msg = "torch is missing: the isa/arcface/margin-ce oracles did not run"
        if os.environ.get("TOPOFR_REQUIRE_ORACLES"):
            print("FAIL:", msg)
            sys.exit(1)
        print("SKIP:", msg)
        sys.exit(77)


if __name__ == "__main__":
    main()
