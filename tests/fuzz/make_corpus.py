#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/ (committed; rerun only to change it).

npy/: valid files of each dtype, 0-d, empty, format 2.0 and 3.0, and edge-case headers (a duplicated
key, an unknown key, a non-tuple shape, a Python 2 long, a huge empty shape, comments). No .npy suffix
(the repository ignores *.npy). blocks/: one input per (scalar type, block) for fuzz_blocks, with small
matching shapes and values in [-1, 1] as the decoder reads them.
"""
import os
import random
import struct

here = os.path.dirname(os.path.abspath(__file__))


def npy(header, data=b"", major=1):
    h = header.encode("latin1")
    pre = b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<H" if major == 1 else "<I", len(h))
    return pre + h + data


def std(descr, shape, data, major=1):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return npy(h, data, major)


F = "{'descr': '<f4', 'fortran_order': False, 'shape': "
seeds = {
    "f4_2x3": std("<f4", "(2, 3)", struct.pack("<6f", 0, 1, 2, 3, 4, 5)),
    "f8_4": std("<f8", "(4,)", struct.pack("<4d", 0.5, -1, float("inf"), float("nan"))),
    "i4_3": std("<i4", "(3,)", struct.pack("<3i", 1, -2, 3)),
    "i8_2x1": std("<i8", "(2, 1)", struct.pack("<2q", 7, -7)),
    "f4_scalar": std("<f4", "()", struct.pack("<f", 1.5)),
    "f4_empty": std("<f4", "(0, 5)", b""),
    "f4_v2": std("<f4", "(1,)", struct.pack("<f", 2), major=2),
    "f4_v3": std("<f4", "(1,)", struct.pack("<f", 2), major=3),
    "dup_shape": npy(F + "(5, 8), 'shape': (8, 5), }", bytes(160)),
    "unknown_key": npy(F + "(1,), 'x': 1}", bytes(4)),
    "shape_int": npy(F + "(40), }", bytes(160)),
    "py2_long": npy(F + "(2L, 1L), }", bytes(8)),
    "huge_empty": npy(F + "(0, 1073741824, 1073741824)}"),
    "comments": npy("# c\n{'descr': \"<f4\", # d\n 'fortran_order': (False), 'shape': (0x1, +1_0,)}", bytes(40)),
    "fortran": npy("{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}", bytes(4)),
    "bigendian": std(">f4", "(1,)", bytes(4)),
    "truncated": std("<f8", "(4,)", bytes(20)),
}
os.makedirs(os.path.join(here, "corpus", "npy"), exist_ok=True)
for name, b in seeds.items():
    with open(os.path.join(here, "corpus", "npy", name), "wb") as f:
        f.write(b)

rng = random.Random(1)
os.makedirs(os.path.join(here, "corpus", "blocks"), exist_ok=True)
for t, tname in ((1, "f32"), (0, "f64")):
    for k in range(14):
        b = bytearray([t, k])
        for _ in range(120):  # dimensions, flags and values: small bytes, then values in [-1, 1]
            b += bytes([rng.choice([2, 3, 4, 5, 6, 8, 15, 16, 17])])
        with open(os.path.join(here, "corpus", "blocks", f"{tname}_block{k:02d}"), "wb") as f:
            f.write(bytes(b))
