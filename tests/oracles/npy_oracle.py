#!/usr/bin/env python3
"""Oracle for topofr::npy::read / parse: what NumPy's own reader makes of each file.

usage: npy_oracle.py list.txt out.txt
  list.txt: one .npy path per line
  out.txt:  one line per path, "ACCEPT <dtype.str> <d0,d1,...>" (the shape, empty for a 0-d array) or
            "REFUSE <exception type>"; np.load(allow_pickle=False), NumPy's defaults.
"""
import sys

try:
    import numpy as np
except ImportError as e:  # the test reports a skipped oracle
    print(f"npy_oracle: {e}", file=sys.stderr)
    sys.exit(77)

import warnings

warnings.simplefilter("ignore")  # NumPy warns about overflowing shape products on the way to refusing them

with open(sys.argv[1]) as f:
    paths = [line.rstrip("\n") for line in f if line.strip()]
out = []
for p in paths:
    try:
        a = np.load(p, allow_pickle=False)
        out.append(f"ACCEPT {a.dtype.str} {','.join(str(d) for d in a.shape)}")
    except Exception as e:  # noqa: BLE001 — any refusal counts
        out.append(f"REFUSE {type(e).__name__}")
with open(sys.argv[2], "w") as f:
    f.write("\n".join(out) + "\n")
