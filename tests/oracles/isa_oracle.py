#!/usr/bin/env python3
"""Oracle for the ISA loss: PyTorch autograd in float64, written after the released TopoFR code
(TopologicalSignatureDistance + _compute_distance_matrix), independent of the C++ implementation.

usage: isa_oracle.py X.npy Z.npy X_SCALE Z_SCALE OUT_PREFIX [PAIRS_X.npy PAIRS_Z.npy]

X (n x dx) and Z (n x dz) are read as float64. Without PAIRS_*, the 0-dim persistence pairs are computed
here by the released code's Kruskal (stable sort of the row-major upper triangle, union-find). Writes
  OUT_PREFIX_pairs_x.npy, OUT_PREFIX_pairs_z.npy   int64 (n-1) x 2, the pairs used
  OUT_PREFIX_loss.npy    float64 2 x 2            [variant][reduction]
  OUT_PREFIX_grad_z.npy  float64 2 x 2 x n x dz   dL/dZ
  OUT_PREFIX_grad_x.npy  float64 2 x 2 x n x dx   dL/dX
with variant 0 = symmetric (paper, with 1/2), 1 = sorted_deaths (code default); reduction 0 = sum,
1 = mean (divided by n).
"""
import sys

try:
    import numpy as np
    import torch
except ImportError:
    sys.exit(77)

from reference import kruskal_pairs  # noqa: E402  (tests/oracles/reference.py)


def distance_matrix(x):
    # Exactly the released code: torch.norm(x[:, None] - x, dim=2, p=2).
    return torch.norm(x[:, None] - x, dim=2, p=2)


def main():
    if len(sys.argv) not in (6, 8):
        sys.exit(__doc__)
    x_np = np.load(sys.argv[1]).astype(np.float64)
    z_np = np.load(sys.argv[2]).astype(np.float64)
    x_scale, z_scale, out = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    n = x_np.shape[0]
    x_np = x_np.reshape(n, -1)
    z_np = z_np.reshape(n, -1)

    with torch.no_grad():
        dx0 = (distance_matrix(torch.from_numpy(x_np)) / x_scale).numpy()
        dz0 = (distance_matrix(torch.from_numpy(z_np)) / z_scale).numpy()
    if len(sys.argv) == 8:
        px = np.load(sys.argv[6]).astype(np.int64).reshape(-1, 2)
        pz = np.load(sys.argv[7]).astype(np.int64).reshape(-1, 2)
    else:
        px, pz = kruskal_pairs(dx0), kruskal_pairs(dz0)
    np.save(out + "_pairs_x.npy", px)
    np.save(out + "_pairs_z.npy", pz)

    loss = np.zeros((2, 2))
    grad_z = np.zeros((2, 2) + z_np.shape)
    grad_x = np.zeros((2, 2) + x_np.shape)
    for variant in range(2):
        for red in range(2):
            x = torch.tensor(x_np, requires_grad=True)
            z = torch.tensor(z_np, requires_grad=True)
            m1 = distance_matrix(x) / x_scale
            m2 = distance_matrix(z) / z_scale
            sig1 = m1[(px[:, 0], px[:, 1])]
            sig2 = m2[(pz[:, 0], pz[:, 1])]
            if variant == 0:  # match_edges='symmetric', with the paper's 1/2
                sig1_2 = m2[(px[:, 0], px[:, 1])]
                sig2_1 = m1[(pz[:, 0], pz[:, 1])]
                l = 0.5 * (((sig1 - sig1_2) ** 2).sum() + ((sig2_1 - sig2) ** 2).sum())
            else:  # match_edges=None (code default): sorted deaths compared element-wise
                l = ((sig1 - sig2) ** 2).sum()
            if red == 1:
                l = l / n
            l.backward()
            loss[variant, red] = l.item()
            grad_z[variant, red] = z.grad.numpy()
            grad_x[variant, red] = x.grad.numpy()
    np.save(out + "_loss.npy", loss)
    np.save(out + "_grad_z.npy", grad_z)
    np.save(out + "_grad_x.npy", grad_x)


if __name__ == "__main__":
    main()
