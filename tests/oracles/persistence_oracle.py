#!/usr/bin/env python3
"""Oracle for VR 0-dim persistence: the sorted finite dim-0 death times of a distance matrix.

usage: persistence_oracle.py D.npy gudhi_out.npy [ripser_program ripser_out.npy]

* GUDHI: RipsComplex(distance_matrix=D) -> SimplexTree (max_dimension 1) -> finite dim-0 deaths.
* ripser (optional): the program run as `ripser --format distance --dim 1` on D written as text
  (`--dim 0` aborts on an assertion in Debian's build); the dim-0 intervals [0, d) are parsed.
Both write float64 arrays of the n-1 finite deaths in increasing order. Exits 77 when a module is missing.
"""
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gudhi
except ImportError:
    sys.exit(77)


def gudhi_deaths(d):
    st = gudhi.RipsComplex(distance_matrix=d.tolist()).create_simplex_tree(max_dimension=1)
    st.compute_persistence()
    return np.sort([death for dim, (birth, death) in st.persistence() if dim == 0 and np.isfinite(death)])


def ripser_deaths(program, d):
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        for row in d:
            f.write(" ".join(repr(float(v)) for v in row) + "\n")
        f.flush()
        out = subprocess.run([program, "--format", "distance", "--dim", "1", f.name], check=True,
                             capture_output=True, text=True).stdout
    deaths, in_dim0 = [], False
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("persistence intervals in dim"):
            in_dim0 = line.endswith("dim 0:")
        elif in_dim0 and line.startswith("[") and not line.endswith(" )"):
            deaths.append(float(line[1:-1].split(",")[1]))
    return np.sort(np.array(deaths, dtype=np.float64))


def main():
    d = np.load(sys.argv[1]).astype(np.float64)
    np.save(sys.argv[2], gudhi_deaths(d).astype(np.float64))
    if len(sys.argv) >= 5:
        np.save(sys.argv[4], ripser_deaths(sys.argv[3], d))


if __name__ == "__main__":
    main()
