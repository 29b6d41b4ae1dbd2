#!/usr/bin/env python3
"""Independent oracle for topofr::objective: the whole TopoFR loss in float64 PyTorch autograd.

usage: objective_oracle.py DIR ALPHA S M VARIANT FOCAL USE_SDS USE_ISA X_SCALE Z_SCALE
Reads DIR/{x,z,cos,labels}.npy; writes DIR/{loss,grad_z,grad_cos,omega,hard,entropy}.npy and DIR/stats.npy
= [loss, loss_cls, l_sa, pi, sigma, hard_fraction].
Written from the method description alone (docs/fidelity.md): insightface ArcFace, softmax entropy with eps 1e-5, the released GUM EM
(reference.gauss_unif, NumPy), omega = (1+h)^lambda (1-p_gt), Kruskal pairs on the upper triangle with a
stable sort (reference.kruskal_pairs), the ISA loss of the paper (symmetric, 1/2) or the released code (sorted deaths), / n.
"""
import math
import sys

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit(77)

from reference import gauss_unif, kruskal_pairs  # noqa: E402  (tests/oracles/reference.py)

d = sys.argv[1]
alpha, s, m = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
variant, focal, use_sds, use_isa = sys.argv[5], sys.argv[6] == "1", sys.argv[7] == "1", sys.argv[8] == "1"
x_scale, z_scale = float(sys.argv[9]), float(sys.argv[10])
torch.set_default_dtype(torch.float64)

x = torch.tensor(np.load(f"{d}/x.npy").astype(np.float64))
z = torch.tensor(np.load(f"{d}/z.npy").astype(np.float64), requires_grad=True)
cos = torch.tensor(np.load(f"{d}/cos.npy").astype(np.float64), requires_grad=True)
y = torch.tensor(np.load(f"{d}/labels.npy").astype(np.int64))
n = cos.shape[0]

# ArcFace (insightface form) and the per-sample cross-entropy.
rows = torch.arange(n)
t = cos[rows, y]
sin_t = torch.sqrt(1.0 - t * t)
ctm = t * math.cos(m) - sin_t * math.sin(m)
final = torch.where(t > math.cos(math.pi - m), ctm, t - math.sin(math.pi - m) * m)
onehot = torch.zeros_like(cos, dtype=torch.bool)
onehot[rows, y] = True
logits = torch.where(onehot, final[:, None].expand_as(cos), cos) * s
loss_i = torch.nn.functional.cross_entropy(logits, y, reduction="none")
p = torch.softmax(logits, dim=1)
entropy = -(p * torch.log(p + 1e-5)).sum(dim=1)
p_gt = p[rows, y]


def gum(e):
    """The released GUM EM (reference.gauss_unif): gamma (= 1 - h), pi, sigma."""
    h, pi, sigma = gauss_unif(e)[:3]
    return 1.0 - h, pi, sigma


if use_sds:
    gamma, pi, sigma = gum(entropy.detach().numpy())
    hard = torch.tensor(1.0 - gamma)
    omega = (1.0 + hard) * ((1.0 - p_gt.detach()) if focal else 1.0)
else:
    pi, sigma = 0.0, 0.0
    hard = torch.zeros(n)
    omega = torch.ones(n)
loss_cls = (omega * loss_i).mean()


def dist(a, scale):
    return torch.norm(a[:, None, :] - a[None, :, :], dim=2) / scale


def kruskal(D):
    return kruskal_pairs(D.detach().numpy())


l_sa = torch.zeros(())
if use_isa:
    DX, DZ = dist(x, x_scale), dist(z, z_scale)
    px, pz = kruskal(DX), kruskal(DZ)
    sx, sz = DX[px[:, 0], px[:, 1]], DZ[pz[:, 0], pz[:, 1]]
    if variant == "symmetric":
        l_sa = 0.5 * (((sx - DZ[px[:, 0], px[:, 1]]) ** 2).sum() + ((sz - DX[pz[:, 0], pz[:, 1]]) ** 2).sum())
    else:
        l_sa = ((sx - sz) ** 2).sum()
    l_sa = l_sa / n
loss = loss_cls + alpha * l_sa
loss.backward()
hard_fraction = float((hard > 0.5).double().mean())
np.save(f"{d}/grad_z.npy", (z.grad if z.grad is not None else torch.zeros_like(z)).numpy())
np.save(f"{d}/grad_cos.npy", cos.grad.numpy())
np.save(f"{d}/omega.npy", omega.detach().numpy())
np.save(f"{d}/hard.npy", hard.numpy())
np.save(f"{d}/entropy.npy", entropy.detach().numpy())
np.save(f"{d}/stats.npy", np.array([loss.item(), loss_cls.item(), float(l_sa), pi, sigma, hard_fraction]))
