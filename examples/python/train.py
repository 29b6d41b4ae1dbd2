#!/usr/bin/env python3
"""Train a small face-recognition IResNet with TopoFR in plain PyTorch, using the topofr package's loss
(topofr.torch.TopoFRLoss: ArcFace + SDS weights + ISA in one library call) and RSP (topofr.torch.RSP), then
verify on held-out identities — the Python counterpart of topofr-train (examples/train, docs/train.md).

What one step does (as topofr-train):
  x      = a batch of clean images (random horizontal flips), shape (B, 3, S, S), values in [-1, 1]
  x_pert = RSP(x): each image perturbed with probability --xi (blur, grayscale, colour jitter, erasing)
  z      = IResNet(x_pert)                                   (B, 512) embeddings
  cos    = F.linear(F.normalize(z), F.normalize(W))          (B, classes) cosines of a normalised classifier
  loss   = TopoFRLoss(x, z_isa, cos, labels)                 L = mean_i omega_i ArcFace_i + alpha * L_sa(x, z_isa)
           z_isa = F.normalize(z) (topofr-train's default --isa-latent normalized, distances / 2) or z (raw)
  SGD (momentum 0.9, weight decay 5e-4), linear warm-up then polynomial decay, as topofr-train.

Data: without --data, topofr-train's built-in synthetic identities (topofr._data.synthetic_identities: the
same generator, examples/train/synthetic.hpp, so the same images for the same --seed); with --data DIR, an
image folder DIR/<identity>/<image>.{pgm,png,jpg,jpeg} (e.g. the ORL faces), read with PIL, converted to gray,
resized (bilinear, antialiased) and replicated to 3 channels. A fraction --holdout of the identities is held
out (topofr-train's split, topofr._data.split_by_identity) and verified before and after training with
topofr-train's protocol (topofr._data.verify: all genuine pairs, as many seeded impostor pairs, cosine
similarity of flip-summed embeddings, 10-fold accuracy at the best threshold, AUC, TAR at FAR 1e-2 / 1e-3),
plus the topological discrepancy (the paper's ISA between input and embedding batches, raw embeddings).

Usage:
  python examples/python/train.py                      # synthetic faces, 300 steps (about a minute on 2 cores)
  python examples/python/train.py --steps 5            # smoke run
  python examples/python/train.py --data ~/orl_faces --image-size 56x48 --steps 150
  python examples/python/train.py --released-code      # the released code's objective (sorted deaths, raw z)
  python examples/python/train.py --loss arcface       # ablation: arcface | arcface+isa | arcface+sds | topofr
Outputs: DIR/log.csv (per step) and DIR/report.json (--out DIR, default topofr-train-py-out; --report PATH),
with the same sections as topofr-train's report: configuration, data, verification, verification_untrained,
topology, topology_untrained, training, wall_time_s.
Needs: torch, numpy, the topofr package with topofr.torch (pip install ./python), PIL for --data.
"""
import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import topofr
import topofr.torch as tt
from topofr import _data


# ---- the model: insightface's IResNet (examples/train/iresnet.hpp) ------------------------------------------------
def conv(cin, cout, k, stride):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN, plus a conv1x1 + BN shortcut when the shape changes."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin, eps=1e-5), conv(cin, planes, 3, 1)
        self.bn2, self.prelu = nn.BatchNorm2d(planes, eps=1e-5), nn.PReLU(planes)
        self.conv2, self.bn3 = conv(planes, planes, 3, stride), nn.BatchNorm2d(planes, eps=1e-5)
        self.down = None
        if stride != 1 or cin != planes:
            self.down = nn.Sequential(conv(cin, planes, 1, stride), nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.down(x) if self.down is not None else x)


class IResNet(nn.Module):
    LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}

    def __init__(self, depth=18, width=0.25, height=48, width_px=48, embedding=512, dropout=0.0):
        super().__init__()
        ch = lambda base: max(4, int(round(base * width)))  # noqa: E731
        c0 = ch(64)
        self.conv1, self.bn1, self.prelu = conv(3, c0, 3, 1), nn.BatchNorm2d(c0, eps=1e-5), nn.PReLU(c0)
        cin, h, w, stages = c0, height, width_px, []
        for base, blocks in zip((64, 128, 256, 512), self.LAYERS[depth]):
            planes = ch(base)
            stages.append(nn.Sequential(*[IBasicBlock(cin if b == 0 else planes, planes, 2 if b == 0 else 1)
                                          for b in range(blocks)]))
            cin, h, w = planes, (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.bn2, self.dropout = nn.BatchNorm2d(cin, eps=1e-5), nn.Dropout(dropout)
        self.fc = nn.Linear(cin * h * w, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=1e-5)
        # insightface: conv weights ~ N(0, 0.1); the embedding BN has a fixed unit scale.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad_(False)

    def forward(self, x):
        x = self.stages(self.prelu(self.bn1(self.conv1(x))))
        return self.features(self.fc(self.dropout(self.bn2(x)).flatten(1)))


class NormClassifier(nn.Module):
    """cos(i, j) = <z_i / |z_i|, W_j / |W_j|>, W ~ N(0, 0.01) (insightface's partial FC)."""

    def __init__(self, embedding, classes):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, embedding) * 0.01)

    def forward(self, z):
        return F.linear(F.normalize(z, dim=1), F.normalize(self.weight, dim=1)).clamp(-1.0, 1.0)


# ---- data ------------------------------------------------------------------------------------------------------------
IMAGE_EXT = (".pgm", ".png", ".jpg", ".jpeg")


def load_image_folder(root, height, width):
    """DIR/<identity>/<image>: identities the subfolders sorted by name (hidden ones skipped), images their
    *.pgm/png/jpg/jpeg files sorted by name; gray (BT.601), bilinear (antialiased) resize, gray / 127.5 - 1,
    replicated to 3 channels. Returns (images (N, 3, H, W) float32, labels int64, identity names)."""
    from PIL import Image

    ids = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    if not ids:
        sys.exit(f"--data {root}: no identity subfolders (expected DIR/<identity>/<image>)")
    images, labels, names = [], [], []
    for d in ids:
        files = sorted(f for f in os.listdir(os.path.join(root, d))
                       if not f.startswith(".") and f.lower().endswith(IMAGE_EXT))
        if not files:
            print(f"warning: --data {root}: identity folder '{d}' has no image, dropped", file=sys.stderr)
            continue
        for f in files:
            with Image.open(os.path.join(root, d, f)) as im:
                g = im.convert("L").convert("F").resize((width, height), Image.BILINEAR)
            images.append(np.asarray(g, dtype=np.float32) / 127.5 - 1.0)
            labels.append(len(names))
        names.append(d)
    x = np.repeat(np.stack(images)[:, None], 3, axis=1)
    return np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64), names


def parse_size(s):
    h, _, w = s.partition("x")
    h, w = int(h), int(w or h)
    if not (16 <= h <= 1024 and 16 <= w <= 1024):
        raise argparse.ArgumentTypeError(f"expected S or HxW with each in [16, 1024], got '{s}'")
    return h, w


# ---- evaluation (topofr-train's evaluate()) ---------------------------------------------------------------------------
@torch.no_grad()
def evaluate(net, x_eval, y_eval, args):
    """Verification on flip-summed embeddings (topofr._data.verify, topofr-train's protocol) and the topological
    discrepancy: the held-out set cut into batches of --batch in 8 seeded orders, the paper's ISA (symmetric,
    mean, inputs / sqrt(4CHW), raw embeddings) of each batch."""
    t0 = time.perf_counter()
    net.eval()
    plain, both = [], []
    for b in range(0, len(x_eval), args.batch):
        xb = torch.from_numpy(x_eval[b:b + args.batch])
        z = net(xb)
        plain.append(z)
        both.append(z + net(torch.flip(xb, dims=[3])))
    net.train()
    plain = torch.cat(plain).contiguous().numpy()
    both = torch.cat(both).contiguous().numpy()
    ver = _data.verify(both, y_eval, args.seed)
    n, nb = len(x_eval), max(2, min(args.batch, len(x_eval)))
    scale = topofr.image_scale(*x_eval.shape[1:])
    disc = []
    for rep in range(8):
        perm = np.random.default_rng([args.seed, rep, 2]).permutation(n)
        for b in range(0, n - nb + 1, nb):
            idx = perm[b:b + nb]
            disc.append(topofr.isa_loss_from_points(x_eval[idx], plain[idx], variant="symmetric", x_scale=scale,
                                                    grad_z=False).loss)
    d = np.asarray(disc, dtype=np.float64)
    topo = {"discrepancy_mean": float(d.mean()), "discrepancy_std": float(d.std()),
            "discrepancy_median": float(np.median(d)), "batches": len(d), "isa_variant": "symmetric"}
    return ver, topo, time.perf_counter() - t0


# ---- training --------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    a = ap.add_argument
    a("--data", help="image folder, one subfolder per identity (default: synthetic identities)")
    a("--identities", type=int, default=32, help="synthetic data: identities (32)")
    a("--per-identity", type=int, default=16, help="synthetic data: images per identity (16)")
    a("--holdout", type=float, default=0.25, help="fraction of identities held out for verification (0.25)")
    a("--image-size", type=parse_size, default=(48, 48), help="S or HxW (48; the paper uses 112)")
    a("--depth", type=int, default=18, choices=sorted(IResNet.LAYERS), help="IResNet depth (18)")
    a("--width", type=float, default=0.25, help="channel multiplier (0.25)")
    a("--embedding", type=int, default=512, help="embedding size (512)")
    a("--dropout", type=float, default=0.0, help="dropout before the FC layer (0)")
    a("--loss", default="topofr", choices=["arcface", "arcface+isa", "arcface+sds", "topofr"],
      help="the paper's ablation (topofr); RSP is on exactly when ISA is")
    a("--alpha", type=float, default=0.1, help="ISA weight (0.1)")
    a("--lambda", dest="lambda_", type=float, default=1.0, help="SDS exponent (1)")
    a("--xi", type=float, default=0.2, help="RSP probability (0.2)")
    a("--s", type=float, default=64.0, help="logit scale (64)")
    a("--m", type=float, default=0.5, help="ArcFace margin (0.5)")
    a("--isa-variant", default="symmetric", choices=["symmetric", "sorted_deaths"])
    a("--isa-latent", default="normalized", choices=["normalized", "raw"],
      help="normalized (unit embeddings, distances / 2; topofr-train's default) | raw (the paper's)")
    a("--released-code", action="store_true", help="sorted_deaths ISA on the raw embedding, no focal term")
    a("--steps", type=int, default=300, help="training steps (300)")
    a("--batch", type=int, default=32, help="batch size (32)")
    a("--lr", type=float, default=0.1, help="SGD learning rate (0.1; momentum 0.9, weight decay 5e-4)")
    a("--warmup", type=int, default=-1, help="warm-up steps (default: 5%% of --steps)")
    a("--seed", type=int, default=1, help="seed of data, split, init, flips, RSP (1)")
    a("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    a("--out", default="topofr-train-py-out", help="log.csv and report.json (default topofr-train-py-out)")
    a("--report", help="JSON report (default: OUT/report.json)")
    a("--no-progress", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    if args.released_code:
        args.isa_variant, args.isa_latent = "sorted_deaths", "raw"
    if args.warmup < 0:
        args.warmup = args.steps // 20
    if args.steps < 1 or args.batch < 2:
        ap.error("--steps must be >= 1 and --batch >= 2")
    args.report = args.report or os.path.join(args.out, "report.json")
    return args


def main(argv=None):
    wall0 = time.perf_counter()
    args = parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    height, width = args.image_size
    os.makedirs(args.out, exist_ok=True)

    # ---- data and the held-out split ----
    if args.data:
        x_all, y_all, names = load_image_folder(args.data, height, width)
    else:
        x_all, y_all = _data.synthetic_identities(args.identities, args.per_identity, height, args.seed, width)
        names = [f"synthetic_{k}" for k in range(args.identities)]
    tr_idx, ev_idx, y_tr, y_ev = _data.split_by_identity(y_all, args.holdout, args.seed)
    x_tr, x_ev = np.ascontiguousarray(x_all[tr_idx]), np.ascontiguousarray(x_all[ev_idx])
    classes = int(y_tr.max()) + 1
    if len(x_tr) < args.batch:
        sys.exit(f"--batch {args.batch} exceeds the {len(x_tr)} training images")
    print(f"data: {'SYNTHETIC faces (built-in generator, seed %d)' % args.seed if not args.data else args.data}, "
          f"{len(x_all)} images of {len(names)} identities at {height}x{width}; training on {len(x_tr)} images / "
          f"{classes} identities, verifying on {len(x_ev)} images / {int(y_ev.max()) + 1} held-out identities",
          file=sys.stderr)

    # ---- model, head, loss, optimiser ----
    torch.manual_seed(args.seed)
    net = IResNet(args.depth, args.width, height, width, args.embedding, args.dropout)
    head = NormClassifier(args.embedding, classes)
    use_isa = args.loss in ("arcface+isa", "topofr")
    use_sds = args.loss in ("arcface+sds", "topofr")
    unit_latent = args.isa_latent == "normalized"
    isa = topofr.ISAOptions(variant=args.isa_variant, reduction="mean", x_scale=topofr.image_scale(3, height, width),
                            z_scale=2.0 if unit_latent else 1.0)
    options = topofr.ObjectiveOptions(margin=topofr.CombinedMargin.arcface(args.s, args.m), alpha=args.alpha,
                                      lambda_=args.lambda_, use_isa=use_isa, use_sds=use_sds,
                                      focal=not args.released_code, entropy_eps=1e-5, isa=isa)
    loss_fn = tt.TopoFRLoss(options)
    rsp = tt.RSP(probability=args.xi, seed=args.seed)
    params = [p for p in net.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=5e-4)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"model: IResNet-{args.depth} width {args.width} ({nparams} parameters), embedding {args.embedding}, "
          f"loss {args.loss}{' (released-code mode)' if args.released_code else ''}, {threads} threads",
          file=sys.stderr)

    ver_before, topo_before, _ = evaluate(net, x_ev, y_ev, args)

    # ---- training ----
    per_epoch = len(x_tr) // args.batch
    log_rows, step_ms, topo_ms = [], [], []
    perm, perm_epoch = None, -1
    train0 = time.perf_counter()
    net.train()
    for step in range(args.steps):
        t0 = time.perf_counter()
        lr = (args.lr * (step + 1) / (args.warmup + 1) if step < args.warmup else
              args.lr * (1.0 - (step - args.warmup) / max(1, args.steps - args.warmup)) ** 2)
        for g in opt.param_groups:
            g["lr"] = lr
        epoch, k = divmod(step, per_epoch)
        if epoch != perm_epoch:  # a fresh seeded permutation per epoch; the tail of an epoch is dropped
            perm, perm_epoch = np.random.default_rng([args.seed, epoch, 1]).permutation(len(x_tr)), epoch
        idx = perm[k * args.batch:(k + 1) * args.batch]
        xb = x_tr[idx]
        flip = np.random.default_rng([args.seed, step, 3]).random(len(idx)) < 0.5  # random horizontal flip
        xb[flip] = xb[flip][..., ::-1]
        x = torch.from_numpy(np.ascontiguousarray(xb))
        y = torch.from_numpy(y_tr[idx])

        r0 = time.perf_counter()
        xp = rsp(x, step=step) if use_isa else x  # the classifier and ISA's latent side see the perturbed batch
        t_topo = time.perf_counter() - r0
        z = net(xp)
        cos = head(z)
        r0 = time.perf_counter()
        loss = loss_fn(x, F.normalize(z, dim=1) if unit_latent else z, cos, y)
        t_topo += time.perf_counter() - r0  # the whole objective (head CE, GUM, SDS and ISA), forward
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv, last = float(loss), loss_fn.last
        if not math.isfinite(lv):
            sys.exit(f"loss is not finite at step {step + 1} (lower --lr?)")
        ms = (time.perf_counter() - t0) * 1e3
        step_ms.append(ms)
        topo_ms.append(t_topo * 1e3)
        ce = float(np.asarray(last.sample_loss).mean())
        log_rows.append([step + 1, epoch, lr, lv, last.loss_cls, last.discrepancy, ce, last.pi, last.hard_fraction,
                         ms, t_topo * 1e3, 1e3 * args.batch / ms])
        done = step + 1
        if not args.no_progress and (done % max(1, args.steps // 20) == 0 or done == args.steps):
            eta = (time.perf_counter() - train0) / done * (args.steps - done)
            print(f"step {done}/{args.steps} | loss {lv:.4f} (cls {last.loss_cls:.4f}, isa {last.discrepancy:.4f}) | "
                  f"{1e3 * args.batch / ms:.1f} img/s | ETA {eta:.0f}s", file=sys.stderr)
    train_seconds = time.perf_counter() - train0

    ver_after, topo_after, _ = evaluate(net, x_ev, y_ev, args)

    # ---- report ----
    log_path = os.path.join(args.out, "log.csv")
    with open(log_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "lr", "loss", "loss_cls", "loss_isa", "ce_unweighted", "gum_pi", "hard_fraction",
                    "step_ms", "topology_ms", "images_per_s"])
        w.writerows(log_rows)

    def pct(v):
        return "n/a" if not (isinstance(v, float) and math.isfinite(v)) else f"{100 * v:.2f}%"

    print(f"\nverification on {len(x_ev)} held-out images of {int(y_ev.max()) + 1} identities "
          f"({ver_after['genuine_pairs']} genuine / {ver_after['impostor_pairs']} impostor pairs, 10-fold):")
    print(f"  {'network':10s} {'accuracy':>9s} {'+-':>7s} {'AUC':>7s} {'TAR@FAR=1e-2':>12s} {'TAR@FAR=1e-3':>12s} "
          f"{'topo. discrepancy':>18s}")
    for name, v, t in (("untrained", ver_before, topo_before), ("trained", ver_after, topo_after)):
        print(f"  {name:10s} {pct(v['accuracy']):>9s} {pct(v['accuracy_std']):>7s} {v['auc']:7.4f} "
              f"{pct(v['tar_at_far_1e-2']):>12s} {pct(v['tar_at_far_1e-3']):>12s} {t['discrepancy_mean']:18.5g}")

    steady = step_ms[5:] or step_ms
    steady_topo = topo_ms[5:] or topo_ms
    nan_to_none = lambda d: {k: (None if isinstance(v, float) and not math.isfinite(v) else v)  # noqa: E731
                             for k, v in d.items()}
    cfg = {k: v for k, v in vars(args).items() if k not in ("report", "out", "no_progress")}
    cfg.update(data=args.data or "synthetic", synthetic=not args.data, image_size=[height, width], threads=threads,
               torch_version=torch.__version__, topofr_version=topofr.__version__)
    cfg["lambda"] = cfg.pop("lambda_")
    report = {
        "configuration": cfg,
        "data": {"images": len(x_all), "identities": len(names), "train_images": len(x_tr),
                 "train_identities": classes, "eval_images": len(x_ev), "eval_identities": int(y_ev.max()) + 1},
        "verification": nan_to_none(ver_after),
        "verification_untrained": nan_to_none(ver_before),
        "topology": topo_after,
        "topology_untrained": topo_before,
        "training": {"steps": args.steps, "final_loss": log_rows[-1][3], "step_ms_median": float(np.median(steady)),
                     "topology_ms_median": float(np.median(steady_topo)),
                     "images_per_s": 1e3 * args.batch / float(np.median(steady)), "train_seconds": train_seconds},
        "wall_time_s": time.perf_counter() - wall0,
        "outputs": [log_path],
    }
    d = os.path.dirname(args.report)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"report: {args.report} (wall time {report['wall_time_s']:.1f} s; outputs in {args.out})")
    return report


if __name__ == "__main__":
    main()
