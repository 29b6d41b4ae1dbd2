#!/usr/bin/env python3
"""Generates the demo inputs for examples/demo.sh (seeded): an image batch, embeddings, cosines, labels."""
import sys
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
n, c, h, w, d, classes = 64, 3, 32, 32, 128, 1000
ids = rng.integers(0, 8, n)                                   # 8 identities
proto = rng.uniform(-1, 1, (8, c, h, w)).astype(np.float32)   # one prototype image per identity
images = np.clip(proto[ids] + 0.3 * rng.standard_normal((n, c, h, w)), -1, 1).astype(np.float32)
centres = rng.standard_normal((8, d))
z = (centres[ids] + 1.5 * rng.standard_normal((n, d))).astype(np.float32)  # noisy: some hard samples
zn = z / np.linalg.norm(z, axis=1, keepdims=True)
wcls = rng.standard_normal((classes, d))
wcls[:8] = centres
wcls /= np.linalg.norm(wcls, axis=1, keepdims=True)
cos = np.clip(zn @ wcls.T, -1, 1).astype(np.float32)
np.save(f"{out}/images.npy", images)
np.save(f"{out}/z.npy", z)
np.save(f"{out}/cos.npy", cos)
np.save(f"{out}/labels.npy", ids.astype(np.int64))
print(f"demo data: images {images.shape}, embeddings {z.shape}, cosines {cos.shape}, labels {ids.shape} in {out}")
