"""The command line through click's CliRunner: exit codes, stdout results, exact error lines."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from coreml_lstm import __version__
from coreml_lstm.cli import main

from .conftest import sine_table

FAST = ["--window", "8", "--hidden-size", "8", "--epochs", "3", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    csv = d / "sine.csv"
    sine_table(120).to_csv(csv, index=False)
    r = run("train", csv, "--target", "y0", "--time", "t", *FAST, "--out", d / "ckpt", "--export", d / "m.mlpackage", "--json")
    assert r.exit_code == 0, r.output
    return d, csv, json.loads(r.stdout)


def test_version_and_help():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = run("-h")
    assert r.exit_code == 0 and "verify" in r.output and "Example" in r.output


def test_train_json_and_files(trained):
    d, _, result = trained
    assert result["metrics"]["overall"]["rmse"] > 0
    assert (d / "ckpt" / "model.safetensors").is_file() and (d / "m.mlpackage" / "Manifest.json").is_file()


def test_inspect(trained):
    d, _, _ = trained
    r = run("inspect", d / "m.mlpackage", "--json")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["inputs"][0] == {**info["inputs"][0], "name": "window", "shape": [1, 8, 2], "dtype": "float32"}
    assert info["outputs"][0]["shape"] == [1, 1, 1] and info["outputs"][0]["dtype"] == "float32"
    assert info["deployment_target"] == "iOS16" and info["op_counts"]["lstm"] == 2
    assert info["toolkit"]["input_columns"] == ["y0", "driver"] and info["size_bytes"] > 1000
    text = run("inspect", d / "m.mlpackage").stdout
    assert "window           float32  (1, 8, 2)" in text


def test_verify_passes_then_fails_after_a_weight_change(trained, tmp_path):
    import shutil

    d, _, _ = trained
    r = run("verify", d / "ckpt", d / "m.mlpackage", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    executor = [c for c in report["checks"] if c["backend"] == "executor"]
    assert executor and all(c["status"] == "passed" for c in executor)
    assert all(c["status"] == "skipped" and "macOS" in c["reason"] for c in report["checks"] if c["backend"] == "coreml")
    # Mutation: change one stored weight (in the largest blob: a recurrent weight matrix) by far more
    # than the tolerance.
    bad = tmp_path / "bad.mlpackage"
    shutil.copytree(d / "m.mlpackage", bad)
    blob = bad / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    offsets = [i for i in range(64, len(data) - 4, 64) if data[i : i + 4] == (0xDEADBEEF).to_bytes(4, "little")]
    record = max(offsets, key=lambda o: int.from_bytes(data[o + 8 : o + 16], "little"))
    start = int.from_bytes(data[record + 16 : record + 24], "little")
    value = np.frombuffer(bytes(data[start : start + 4]), np.float32)[0]
    data[start : start + 4] = np.float32(value + 1.0).tobytes()
    blob.write_bytes(bytes(data))
    r = run("verify", d / "ckpt", bad)
    assert r.exit_code == 1
    assert "FAILED forecast [executor, fp32]" in r.stdout and "result: failed" in r.stdout


def test_predict_csv_matches_the_python_api(trained):
    from coreml_lstm import Forecaster

    d, csv, _ = trained
    r = run("predict", d / "m.mlpackage", "--csv", csv, "--backend", "executor")
    assert r.exit_code == 0, r.output
    from io import StringIO

    import pandas as pd

    got = pd.read_csv(StringIO(r.stdout))
    want = Forecaster.load(d / "ckpt").predict(csv)
    assert list(got.columns) == ["t", "y0_t+1"] == list(want.columns)
    np.testing.assert_allclose(got["y0_t+1"], want["y0_t+1"], atol=1e-4)


def test_run_with_intermediate_values(trained, tmp_path):
    d, _, _ = trained
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, window=np.ones((1, 8, 2), np.float32))
    out = tmp_path / "out.npz"
    r = run("run", d / "m.mlpackage", "--inputs", feeds, "--outputs", out, "--backend", "executor", "--intermediate")
    assert r.exit_code == 0, r.output
    with np.load(out) as z:
        assert "forecast" in z.files and len(z.files) > 10  # every named value of the program


def test_export_fp16_from_checkpoint(trained, tmp_path):
    d, _, _ = trained
    r = run("export", d / "ckpt", tmp_path / "h.mlpackage", "--precision", "fp16", "--target", "iOS17")
    assert r.exit_code == 0 and "fp16, iOS17" in r.stdout
    r = run("verify", d / "ckpt", tmp_path / "h.mlpackage")
    assert r.exit_code == 0 and "[executor, fp16]" in r.stdout


def test_errors_are_one_line_with_exit_1(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,y\n0,1\n1,x\n")
    r = CliRunner().invoke(main, ["train", str(bad), "--target", "y", "--time", "t", "--quiet"])
    assert r.exit_code == 1
    assert r.output == f"Error: {bad}: column 'y', row 2: non-numeric value 'x'\n"
    r = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path}: missing Manifest.json; not an .mlpackage\n"


def test_usage_errors_exit_2(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("t,y\n0,1\n")
    assert CliRunner().invoke(main, ["train", str(csv)]).exit_code == 2  # --target needed with a CSV
    assert CliRunner().invoke(main, ["train", "--cell", "transformer"]).exit_code == 2
    r = CliRunner().invoke(main, ["train", "--export", str(tmp_path / "m.mlmodel"), "--quiet"])
    assert r.exit_code == 1 and r.output.endswith("the output path must end in .mlpackage\n")
