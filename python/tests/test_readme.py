"""The README's PyTorch example runs as written (oracle: it must run, and its loss must be finite and equal to
the same objective recomputed by topofr.Objective on the same tensors)."""
import math
import pathlib
import re

import pytest

torch = pytest.importorskip("torch")

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_pytorch_example_runs(capsys):
    text = README.read_text()
    section = text.split("## Use it from PyTorch", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's PyTorch section should hold one python block"
    scope = {}
    torch.manual_seed(0)
    exec(compile(blocks[0], str(README), "exec"), scope)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert all(math.isfinite(float(v)) for v in line.split()[1:])
    # The module's loss is the library's objective on the same tensors.
    import topofr

    x, z, cos, y, loss = (scope[k] for k in ("x", "z", "cos", "y", "loss"))
    ref = topofr.Objective(scope["loss_fn"].options)(x, z.detach(), cos.detach(), y)
    assert loss.item() == pytest.approx(ref.loss, rel=1e-6)
