"""Smoke test of examples/python/train.py: a few steps on tiny synthetic data (well under 30 s on 2 cores); the
report must have the trainer's sections and finite metrics."""
import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("topofr.torch")
pytest.importorskip("topofr._data")

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python", "train.py")


@pytest.mark.parametrize("extra", [[], ["--released-code"]])
def test_example_trains_and_reports(tmp_path, extra):
    report = tmp_path / "report.json"
    cmd = [sys.executable, SCRIPT, "--steps", "5", "--identities", "8", "--per-identity", "4", "--image-size", "32",
           "--batch", "8", "--embedding", "64", "--threads", "2", "--out", str(tmp_path / "out"),
           "--report", str(report), "--no-progress"] + extra
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    r = json.loads(report.read_text())
    for key in ("configuration", "data", "verification", "verification_untrained", "topology", "topology_untrained",
                "training", "wall_time_s"):
        assert key in r, key
    for section in ("verification", "verification_untrained"):
        v = r[section]
        for k in ("accuracy", "accuracy_std", "threshold", "auc"):
            assert math.isfinite(v[k]), (section, k, v[k])
        assert 0.0 <= v["accuracy"] <= 1.0 and 0.0 <= v["auc"] <= 1.0
        assert v["genuine_pairs"] > 0 and v["impostor_pairs"] > 0
    for section in ("topology", "topology_untrained"):
        assert math.isfinite(r[section]["discrepancy_mean"]) and r[section]["batches"] > 0
    assert r["training"]["steps"] == 5 and math.isfinite(r["training"]["final_loss"])
    assert r["data"]["eval_identities"] == 2 and r["data"]["train_identities"] == 6
    assert (tmp_path / "out" / "log.csv").read_text().count("\n") == 6  # header + 5 steps
    assert r["configuration"]["released_code"] == bool(extra)


def test_example_image_folder(tmp_path):
    """--data DIR: one subfolder per identity, PGM and PNG, gray replicated to 3 channels."""
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    rng = np.random.default_rng(0)
    for k in range(6):
        os.makedirs(tmp_path / "faces" / f"s{k}")
        base = rng.integers(0, 256, (40, 36))
        for j in range(4):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "faces" / f"s{k}" / f"{j}.{'pgm' if j % 2 else 'png'}")
    (tmp_path / "faces" / "s0" / "notes.txt").write_text("not an image")
    report = tmp_path / "report.json"
    cmd = [sys.executable, SCRIPT, "--data", str(tmp_path / "faces"), "--holdout", "0.34", "--steps", "3",
           "--image-size", "20x16", "--batch", "4", "--embedding", "32", "--threads", "2", "--out",
           str(tmp_path / "out"), "--report", str(report), "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    r = json.loads(report.read_text())
    assert r["data"]["images"] == 24 and r["data"]["identities"] == 6 and r["data"]["eval_identities"] == 2
    assert r["configuration"]["synthetic"] is False
    assert math.isfinite(r["verification"]["accuracy"]) and math.isfinite(r["training"]["final_loss"])
