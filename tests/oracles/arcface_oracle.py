#!/usr/bin/env python3
"""Oracle for the combined-margin ArcFace head: PyTorch autograd in float64 of the reference formula
(insightface's ArcFace, as TopoFR uses it), independent of the C++ implementation.

usage: arcface_oracle.py [--straight-through] PREFIX S M1 M2 M3 EPS GRAD_SCALE [PREFIX S M1 M2 M3 EPS GRAD_SCALE ...]

--straight-through: the margin is applied as insightface's arcface_torch does, under torch.no_grad(), so the
logits' derivative is s in every column (the forward values are the same).

(several cases per run: importing torch dominates the time.) For each case, reads PREFIX_cos.npy (N x C),
PREFIX_labels.npy (N), PREFIX_weights.npy (N) and PREFIX_gup.npy (N x C, an upstream gradient of the logits),
all as float64 / int64. Labels: a class in [0, C); -1 = the target class lives on another shard (insightface
Partial FC: the row's softmax still covers these classes); -100 = ignored row (PyTorch's ignore_index).
Writes (float64)
  PREFIX_logits.npy     N x C  s * margin logits (no margin in rows labelled -1 or -100)
  PREFIX_glogits.npy    N x C  d <gup, logits> / d cos            (margin_logits_backward)
  PREFIX_loss.npy       N      cross_entropy(reduction='none'), 0 for rows labelled -1 or -100
  PREFIX_entropy.npy    N      -sum p log(p + eps), p = softmax(logits)
  PREFIX_pgt.npy        N      p[y] (0 for rows labelled -1 or -100)
  PREFIX_lse.npy        N      logsumexp(logits)
  PREFIX_grad.npy       N x C  d (GRAD_SCALE * sum_i w_i g_i) / d cos   (margin_ce_backward), with g_i the
                               cross-entropy for a class label, logsumexp(logits_i) for -1 (this shard's
                               part of the row's loss: the target logit, on another shard, has no
                               derivative here), 0 for -100
"""
import math
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(77)


def margin_logits(cos, labels, s, m1, m2, m3):
    """insightface ArcFace (m1 = 1, m3 = 0), generalised to the combined margin cos(m1 theta + m2) - m3."""
    logits = cos.clone()
    idx = torch.where(labels >= 0)[0]
    x = cos[idx, labels[idx]]
    if m1 == 1.0:
        sin_theta = torch.sqrt(1.0 - torch.pow(x, 2))
        cos_theta_m = x * math.cos(m2) - sin_theta * math.sin(m2)  # cos(theta + m2)
    else:
        cos_theta_m = torch.cos(m1 * torch.acos(x) + m2)
    theta = math.cos(min(max((math.pi - m2) / m1, 0.0), math.pi))
    sinmm = math.sin(math.pi - m2) * m2
    final = torch.where(x > theta, cos_theta_m - m3, x - m3 - sinmm)
    logits[idx, labels[idx]] = final
    return logits * s


def run(prefix, s, m1, m2, m3, eps, grad_scale, straight_through=False):
    cos_np = np.load(prefix + "_cos.npy").astype(np.float64)
    labels = torch.from_numpy(np.load(prefix + "_labels.npy").astype(np.int64))
    w = torch.from_numpy(np.load(prefix + "_weights.npy").astype(np.float64))
    gup = torch.from_numpy(np.load(prefix + "_gup.npy").astype(np.float64))

    def head_logits(cos):
        if not straight_through:
            return margin_logits(cos, labels, s, m1, m2, m3)
        with torch.no_grad():  # arcface_torch: `with torch.no_grad(): ...` edits the logits in place
            shift = margin_logits(cos, labels, 1.0, m1, m2, m3) - cos
        return (cos + shift) * s

    cos = torch.tensor(cos_np, dtype=torch.float64, requires_grad=True)
    logits = head_logits(cos)
    (glogits,) = torch.autograd.grad((logits * gup).sum(), cos)

    cos = torch.tensor(cos_np, dtype=torch.float64, requires_grad=True)
    logits = head_logits(cos)
    target = torch.where(labels >= 0, labels, torch.full_like(labels, -100))
    loss = F.cross_entropy(logits, target, ignore_index=-100, reduction="none")
    other_shard = (labels == -1).to(torch.float64)
    g = loss + other_shard * torch.logsumexp(logits, dim=1)
    (grad,) = torch.autograd.grad((w * g).sum() * grad_scale, cos)

    with torch.no_grad():
        p = torch.softmax(logits, dim=1)
        entropy = -(p * torch.log(p + eps)).sum(dim=1)
        rows = torch.arange(p.shape[0])
        pgt = torch.where(labels >= 0, p[rows, labels.clamp(min=0)], torch.zeros_like(p[:, 0]))
        lse = torch.logsumexp(logits, dim=1)

    out = {"logits": logits, "glogits": glogits, "loss": loss, "entropy": entropy, "pgt": pgt, "lse": lse,
           "grad": grad}
    for name, t in out.items():
        np.save("%s_%s.npy" % (prefix, name), t.detach().numpy().astype(np.float64))


def main():
    args = sys.argv[1:]
    st = bool(args) and args[0] == "--straight-through"
    args = args[1:] if st else args
    if not args or len(args) % 7:
        sys.exit("usage: arcface_oracle.py [--straight-through] PREFIX S M1 M2 M3 EPS GRAD_SCALE [...]")
    for k in range(0, len(args), 7):
        run(args[k], *(float(a) for a in args[k + 1:k + 7]), straight_through=st)


if __name__ == "__main__":
    main()
