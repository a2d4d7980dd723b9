"""diagnose: the first op where an fp16 package departs from its fp32 maths, built on purpose."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import coreml_lstm
import coreml_lstm.executor as ex
from coreml_lstm.cli import main
from coreml_lstm.diagnose import FP16_MAX, diagnose


class Overflow(nn.Module):
    """A squared intermediate of up to 400**2 = 160000: beyond fp16's largest value (65504)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.tanh(self.fc1(x)) * 400.0  # (1, 8, 16), |h| <= 400: fine in fp16
        return self.fc2(h * h / 1000.0)


@pytest.fixture(scope="module")
def overflow(tmp_path_factory):
    torch.manual_seed(0)
    module = Overflow().eval()
    x = torch.randn(1, 8, 8) * 3
    path, report = coreml_lstm.convert(module, x, tmp_path_factory.mktemp("diag") / "o.mlpackage", precision="fp16", target="iOS17", samples=1)
    assert report.status == "failed"  # the overflow reaches the output
    return module, path, x.numpy()


def test_diagnose_names_the_op_where_fp16_first_exceeds_the_tolerance(overflow):
    module, path, x = overflow
    result = diagnose(path, {"x": x}, module=module)
    first = result.first()[0]
    # The op computing h * h: its fp32 value is torch's squared intermediate, and it overflows fp16.
    with torch.no_grad():
        h = torch.tanh(module.fc1(torch.as_tensor(x))) * 400.0
    env = ex.load(path).run({"x": x}, mode="fp32", intermediate=True)
    np.testing.assert_allclose(env[first.name], (h * h).numpy(), rtol=5e-2)  # fp16 weights, fp32 maths
    assert first.op == "mul" and first.max_value > FP16_MAX and not np.isfinite(first.max_abs)
    assert "overflows fp16" in first.note
    # Every op before it is within the tolerance, and the one scaling by 400 is among them.
    before = [d for d in result.ops if d.index < first.index]
    assert before and not any(d.exceeds for d in before)
    assert any(d.max_value > 300 for d in before)
    lines = result.lines()
    assert f"the error starts at mul {first.name!r}: keep that layer in fp32 (convert --fp32-module NAME) or scale its values" in lines
    # torch's submodules, matched where the converter kept a value computed from them.
    matched = {m.module: m for m in result.torch}
    assert set(matched) == {"fc1", "fc2"}
    assert matched["fc1"].value is not None and matched["fc1"].max_abs < 5e-2


def test_diagnose_from_the_command_line(overflow, tmp_path):
    _, path, x = overflow
    np.savez(tmp_path / "feeds.npz", x=x)
    r = CliRunner().invoke(main, ["diagnose", str(path), "--inputs", str(tmp_path / "feeds.npz"), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["departing"] >= 1 and result["first"][0]["op"] == "mul" and "overflows fp16" in result["first"][0]["note"]
    r = CliRunner().invoke(main, ["diagnose", str(path)])  # random inputs inside the declared shape
    assert r.exit_code == 0 and "op(s) where fp16 departs (program order):" in r.stdout
    assert r.stdout.splitlines()[0].startswith(f"diagnose {path}: fp16 vs fp32 mode on 3 sample(s)")
