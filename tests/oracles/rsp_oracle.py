#!/usr/bin/env python3
"""Oracle for topofr::rsp_apply: applies given RSP plans with torchvision's own functions.

usage: rsp_oracle.py images.npy plans.npy out.npy [images2.npy plans2.npy out2.npy ...]
  images: N x C x H x W (float32 or float64), normalised to [-1, 1]
  plans:  N x 14 float64 rows [kind, sigma, brightness, contrast, saturation, hue,
          order0, order1, order2, order3, top, left, height, width]  (kind: -1 none, 0 blur,
          1 grayscale, 2 colour jitter, 3 erasing)
  out:    the perturbed images, same shape and dtype.
Blur, grayscale and jitter run on img * 0.5 + 0.5 and are mapped back with Normalize(0.5, 0.5), as in
the released TopoFR training code; erasing writes 0 into the normalised image (timm, mode 'const').
"""
import sys

try:
    import numpy as np
    import torch
    import torchvision.transforms.functional as F
except ImportError as e:  # the test reports a skipped oracle
    print(f"rsp_oracle: {e}", file=sys.stderr)
    sys.exit(77)


def apply(x, p):
    kind = int(p[0])
    if kind == -1:
        return x.clone()
    if kind == 3:
        y = x.clone()
        top, left, h, w = (int(v) for v in p[10:14])
        y[:, top:top + h, left:left + w] = 0
        return y
    z = x * 0.5 + 0.5
    if kind == 0:
        s = float(p[1])
        z = F.gaussian_blur(z, kernel_size=[5, 9], sigma=[s, s])
    elif kind == 1:
        z = F.rgb_to_grayscale(z, num_output_channels=3)
        z = z.expand(x.shape).clone()
    elif kind == 2:
        b, c, s, h = (float(v) for v in p[2:6])
        for o in (int(v) for v in p[6:10]):
            if o == 0:
                z = F.adjust_brightness(z, b)
            elif o == 1:
                z = F.adjust_contrast(z, c)
            elif o == 2:
                z = F.adjust_saturation(z, s)
            else:
                z = F.adjust_hue(z, h)
    else:
        raise ValueError(f"bad kind {kind}")
    return F.normalize(z, mean=[0.5] * x.shape[0], std=[0.5] * x.shape[0])


def main():
    args = sys.argv[1:]
    assert args and len(args) % 3 == 0, "expected triples: images.npy plans.npy out.npy"
    for k in range(0, len(args), 3):
        images = np.load(args[k])
        plans = np.load(args[k + 1])
        assert images.ndim == 4 and plans.shape == (images.shape[0], 14), (images.shape, plans.shape)
        x = torch.from_numpy(images)
        out = torch.stack([apply(x[i], plans[i]) for i in range(x.shape[0])])
        np.save(args[k + 2], out.numpy().astype(images.dtype))


if __name__ == "__main__":
    main()
