"""The command line through click's CliRunner: exit codes, stdout results, exact error lines."""

import json
from io import StringIO

import numpy as np
import pytest
from click.testing import CliRunner

from coreml_lstm import __version__
from coreml_lstm.cli import main

from .conftest import heavy_imports, sine_table

# The original (global) scaling: a 3-epoch window-scaled model can stay at its classical start,
# whose recurrent head is zero, and then a changed recurrent weight (the verify test) changes nothing.
FAST = ["--window", "8", "--hidden-size", "8", "--epochs", "3", "--quiet", "--scaling", "global"]


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


def d_windows(d):
    """The validation windows of the fixture's checkpoint."""
    from coreml_lstm.checkpoint import Checkpoint

    return Checkpoint.load(d / "ckpt").validation_x


def mutated_copy(package, tmp_path):
    """A copy of ``package`` with one stored weight (in the largest blob: a recurrent weight
    matrix) moved by far more than the tolerance."""
    import shutil

    bad = tmp_path / "bad.mlpackage"
    shutil.copytree(package, bad)
    blob = bad / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    offsets = [i for i in range(64, len(data) - 4, 64) if data[i : i + 4] == (0xDEADBEEF).to_bytes(4, "little")]
    record = max(offsets, key=lambda o: int.from_bytes(data[o + 8 : o + 16], "little"))
    start = int.from_bytes(data[record + 16 : record + 24], "little")
    value = np.frombuffer(bytes(data[start : start + 4]), np.float32)[0]
    data[start : start + 4] = np.float32(value + 1.0).tobytes()
    blob.write_bytes(bytes(data))
    return bad


def test_an_export_path_under_a_file_is_refused_before_training(trained, tmp_path):
    d, csv, _ = trained
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(main, ["train", str(csv), "--target", "y0", "--time", "t", *FAST, "--out", str(tmp_path / "ckpt"),
                                  "--export", str(tmp_path / "afile" / "x.mlpackage")])
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path / 'afile' / 'x.mlpackage'}: {tmp_path / 'afile'} is a file, not a folder to write the package in\n"
    assert not (tmp_path / "ckpt").exists()  # refused before training


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
    assert info["inputs"][0] == {**info["inputs"][0], "name": "window", "shape": [-1, 8, 2], "shape_range": [[1, 256], [8, 8], [2, 2]], "dtype": "float32"}
    assert info["outputs"][0]["dtype"] == "float32"
    assert info["deployment_target"] == "iOS16" and info["op_counts"]["lstm"] == 2
    assert info["toolkit"]["input_columns"] == ["y0", "driver"] and info["size_bytes"] > 1000
    text = run("inspect", d / "m.mlpackage").stdout
    assert "window           float32  (1..256, 8, 2)  B windows (1 to 256) of the last 8 rows of [y0, driver]" in text
    assert "forecast         float32  (set by the inputs)  Predictions of [y0] for the next 1 step(s) in original units; shape (B, 1, 1)." in text


def test_verify_passes_then_fails_after_a_weight_change(trained, tmp_path):
    d, _, _ = trained
    r = run("verify", d / "ckpt", d / "m.mlpackage", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    executor = [c for c in report["checks"] if c["backend"] == "executor"]
    assert executor and all(c["status"] == "passed" for c in executor)
    assert all(c["status"] == "skipped" and "macOS" in c["reason"] for c in report["checks"] if c["backend"] == "coreml")
    bad = mutated_copy(d / "m.mlpackage", tmp_path)
    r = run("verify", d / "ckpt", bad)
    assert r.exit_code == 1
    assert "FAILED forecast [executor, fp32]" in r.stdout and "result: failed" in r.stdout


def test_verify_junit_reads_back_with_a_junit_parser(trained, tmp_path):
    from junitparser import Failure, JUnitXml, Skipped

    d, _, _ = trained
    good = tmp_path / "good.xml"
    assert run("verify", d / "ckpt", d / "m.mlpackage", "--junit", good).exit_code == 0
    suite = next(iter(JUnitXml.fromfile(str(good))))
    cases = {(c.classname, c.name): c for c in suite}
    # One window a call, the validation windows in one call, 256 in one call (the batch range's ends).
    executor = ["forecast", f"forecast (batch {len(d_windows(d))})", "forecast (batch 256)"]
    assert suite.tests == len(cases) == 4 and suite.failures == 0 and suite.skipped == 1
    assert all(cases[("m.mlpackage.executor.fp32", name)].is_passed for name in executor)
    assert isinstance(cases[("m.mlpackage.coreml.-", "forecast")].result[0], Skipped)

    bad_xml = tmp_path / "bad.xml"
    r = run("verify", d / "ckpt", mutated_copy(d / "m.mlpackage", tmp_path), "--junit", bad_xml)
    assert r.exit_code == 1
    suite = next(iter(JUnitXml.fromfile(str(bad_xml))))
    assert suite.failures == 3
    failed = [c for c in suite if c.result and isinstance(c.result[0], Failure)]
    assert [(c.classname, c.name) for c in failed] == [("bad.mlpackage.executor.fp32", name) for name in executor]
    assert "max abs" in failed[0].result[0].message


def test_export_compressed_and_compare(trained, tmp_path):
    d, _, _ = trained
    r = run("export", d / "ckpt", tmp_path / "q.mlpackage", "--compress", "int8", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(run("inspect", tmp_path / "q.mlpackage", "--json").stdout)
    assert info["op_counts"]["constexpr_affine_dequantize"] >= 2 and info["toolkit"]["compression"] == "int8"
    r = run("compare", d / "ckpt", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["variant"]: row for row in json.loads(r.stdout)}
    assert list(rows) == ["fp32", "fp16", "int8", "palettize6", "palettize4", "prune50"]
    assert rows["fp32"]["size_ratio"] == 1 and rows["fp32"]["max_abs_error"] < 1e-4
    # This model is tiny (hidden 8): the program's fixed size dominates the package and each blob's
    # 64-byte header and alignment the weights; the demo model's table is in the README.
    assert rows["int8"]["size_bytes"] < rows["fp32"]["size_bytes"]
    assert rows["int8"]["weights_bytes"] < 0.75 * rows["fp32"]["weights_bytes"]
    assert rows["palettize4"]["weights_bytes"] < rows["int8"]["weights_bytes"]
    assert 0 < rows["int8"]["max_abs_error"] < rows["palettize4"]["max_abs_error"]
    assert abs(rows["fp32"]["rmse"] - rows["fp32"]["torch_rmse"]) < 1e-4
    text = run("compare", d / "ckpt").stdout
    assert "palettize4" in text and "RMSE" in text


def test_predict_csv_matches_the_python_api(trained):
    from coreml_lstm import Forecaster

    d, csv, _ = trained
    r = run("predict", d / "m.mlpackage", "--csv", csv, "--top-k", "2")  # was ignored
    assert r.exit_code == 1 and r.output == "Error: --top-k: only for classifier packages; a forecaster predicts values, not classes\n"
    r = run("predict", d / "m.mlpackage", "--csv", csv, "--backend", "executor")
    assert r.exit_code == 0, r.output
    from io import StringIO

    import pandas as pd

    got = pd.read_csv(StringIO(r.stdout))
    want = Forecaster.load(d / "ckpt").predict(csv)
    assert list(got.columns) == ["t", "y0_t+1"] == list(want.columns)
    np.testing.assert_allclose(got["y0_t+1"], want["y0_t+1"], atol=1e-4)


@pytest.mark.parametrize("command", ["inspect", "predict", "run"])
def test_reading_a_package_imports_neither_torch_nor_the_converter(trained, tmp_path, command):
    """inspect, predict and run read a package with the executor alone: importing torch and
    coremltools took seconds on every call."""
    d, csv, _ = trained
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, window=np.ones((1, 8, 2), np.float32))
    args = {"inspect": ["inspect", d / "m.mlpackage"], "predict": ["predict", d / "m.mlpackage", "--csv", csv, "--last"],
            "run": ["run", d / "m.mlpackage", "--inputs", feeds]}[command]
    assert heavy_imports(*args) == []


def test_run_with_intermediate_values(trained, tmp_path):
    d, _, _ = trained
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, window=np.ones((1, 8, 2), np.float32))
    out = tmp_path / "out.npz"
    r = run("run", d / "m.mlpackage", "--inputs", feeds, "--outputs", out, "--backend", "executor", "--intermediate")
    assert r.exit_code == 0, r.output
    with np.load(out) as z:
        assert "forecast" in z.files and len(z.files) > 10  # every named value of the program


def test_outputs_files_never_hold_pickles(tmp_path):
    """Strings are stored as strings; a dictionary output goes to .json, and .npz refuses it
    with a line that names it, writing nothing."""
    from coreml_lstm.errors import ConfigError
    from coreml_lstm.runner import read_arrays, write_arrays

    out = {"label": "walking", "labels": np.array(["a", "bc"], dtype=object), "p": np.ones((2, 3), np.float16)}
    write_arrays(tmp_path / "o.npz", out)
    with np.load(tmp_path / "o.npz", allow_pickle=False) as z:
        assert str(z["label"]) == "walking" and z["labels"].tolist() == ["a", "bc"] and z["p"].dtype == np.float16
    probs = {**out, "probabilities": {"walking": 0.9, "running": 0.1}}
    with pytest.raises(ConfigError, match=r"p\.npz: output 'probabilities' is a dict, not an array of numbers or strings; write \.json instead"):
        write_arrays(tmp_path / "p.npz", probs)
    assert not list(tmp_path.glob("p*"))
    write_arrays(tmp_path / "p.json", probs)
    assert json.loads((tmp_path / "p.json").read_text())["probabilities"] == {"walking": 0.9, "running": 0.1}
    assert read_arrays(tmp_path / "o.npz")["labels"].tolist() == ["a", "bc"]


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


# Every path a command reads, missing: one line `Error: ...`, exit 1, never click's usage block.
MISSING_PATHS = [
    ("run", "{missing}", "--inputs", "{feeds}"),
    ("run", "{package}", "--inputs", "{missing}"),
    ("inspect", "{missing}"),
    ("diagnose", "{missing}"),
    ("diagnose", "{package}", "--inputs", "{missing}"),
    ("predict", "{missing}", "--csv", "{csv}"),
    ("predict", "{package}", "--csv", "{missing}"),
    ("verify", "{ckpt}", "{missing}"),
    ("verify", "{missing}", "{package}"),
    ("verify", "--manifest", "{missing}"),
    ("verify", "{ckpt}", "{package}", "--csv", "{missing}"),
    ("verify", "{ckpt}", "{package}", "--inputs", "{missing}"),
    ("export", "{missing}", "{out}"),
    ("swift", "{missing}", "--out", "{dir}"),
    ("swift", "{package}", "--out", "{dir}", "--checkpoint", "{missing}"),
    ("compare", "{missing}"),
    ("plot", "{missing}"),
    ("plot", "{ckpt}", "--backtest", "{missing}"),
    ("backtest", "{missing}", "{csv}"),
    ("backtest", "{ckpt}", "{missing}"),
    ("train", "{missing}", "--target", "y0", "--quiet"),
    ("train", "{csv}", "--target", "y0", "--validation", "{missing}", "--quiet"),
    ("train", "{missing}", "--task", "classify", "--quiet"),
    ("convert", "{missing}", "{out}", "--input", "x:1,4,2"),
]


@pytest.mark.parametrize("args", MISSING_PATHS, ids=[" ".join(a) for a in MISSING_PATHS])
def test_a_missing_path_is_one_line_error_for_every_command(trained, tmp_path, args):
    d, csv, _ = trained
    missing = tmp_path / "no such thing.mlpackage"
    np.savez(tmp_path / "feeds.npz", x=np.zeros((1, 8, 2), np.float32))
    names = dict(missing=missing, feeds=tmp_path / "feeds.npz", package=d / "m.mlpackage", ckpt=d / "ckpt", csv=csv,
                 out=tmp_path / "o.mlpackage", dir=tmp_path / "swift")
    r = CliRunner().invoke(main, [a.format(**names) for a in args])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1 and "Usage" not in r.output, r.output
    assert str(missing) in r.output
    assert not (tmp_path / "o.mlpackage").exists() and not (tmp_path / "swift").exists()


def test_a_path_of_the_wrong_kind_is_one_line_error(trained):
    d, csv, _ = trained
    r = CliRunner().invoke(main, ["swift", str(csv), "--out", str(d / "s")])
    assert r.exit_code == 1 and r.output == f"Error: {csv}: is a file; PACKAGE takes a directory\n"
    r = CliRunner().invoke(main, ["backtest", str(d / "ckpt"), str(d)])
    assert r.exit_code == 1 and r.output == f"Error: {d}: is a directory; CSV takes a file\n"
    r = CliRunner().invoke(main, ["run", str(d / "nope.mlpackage"), "--inputs", str(csv)])
    assert r.exit_code == 1 and r.output == f"Error: {d / 'nope.mlpackage'}: no such file or directory (PACKAGE)\n"


def test_predict_json_writes_times_as_iso_text_and_steps_as_integers(trained, tmp_path):
    import pandas as pd

    d, csv, _ = trained
    r = run("predict", d / "m.mlpackage", "--csv", csv, "--backend", "executor", "--json", "--last")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["t"] == 119 and type(row["t"]) is int
    table = sine_table(120).assign(date=pd.date_range("2020-07-01", periods=120, freq="D")).drop(columns="t")
    table.to_csv(tmp_path / "daily.csv", index=False)
    r = run("train", tmp_path / "daily.csv", "--target", "y0", "--time", "date", *FAST, "--horizon", "2", "--out", tmp_path / "ckpt",
            "--export", tmp_path / "daily.mlpackage")
    assert r.exit_code == 0, r.output
    args = ("predict", tmp_path / "daily.mlpackage", "--csv", tmp_path / "daily.csv", "--backend", "executor", "--last")
    (row,) = json.loads(run(*args, "--json").stdout)
    assert row["date"] == "2020-10-28"  # was 1603843200000, epoch milliseconds
    assert run(*args).stdout.splitlines()[1].startswith("2020-10-28,")


@pytest.mark.parametrize("times, want", [
    (["2020-10-26", "2020-10-27"], ["2020-10-26", "2020-10-27"]),
    (["2020-10-26 06:00", "2020-10-26 07:30:15"], ["2020-10-26T06:00:00", "2020-10-26T07:30:15"]),
    (["2021-07-19 00:00-04:00", None], ["2021-07-19T00:00:00-04:00", None]),
], ids=["dates", "times", "aware"])
def test_records_json_times(times, want):
    import pandas as pd

    from coreml_lstm.predict import records_json

    stamps = pd.to_datetime(pd.Series(times), format="mixed")
    assert [r["when"] for r in json.loads(records_json(pd.DataFrame({"when": stamps, "y": [1.0, 2.0]})))] == want


def test_predict_missing_cells_error_drop_or_ffill_as_train_does(trained, tmp_path):
    """The error told a predict user to use --missing drop or ffill, which predict did not have."""
    import pandas as pd

    d, _, _ = trained
    table = sine_table(120)
    holey = table.copy()
    holey.loc[59, "y0"] = np.nan  # CSV row 60
    holey.to_csv(tmp_path / "holey.csv", index=False)
    args = ("predict", d / "m.mlpackage", "--csv", tmp_path / "holey.csv", "--backend", "executor")
    r = run(*args)
    assert r.exit_code == 1
    assert r.output == f"Error: {tmp_path / 'holey.csv'}: column 'y0', row 60: missing value (use --missing drop or --missing ffill to accept empty cells)\n"
    dropped = pd.read_csv(StringIO(run(*args, "--missing", "drop").stdout))
    assert len(dropped) == 119 - 8 + 1 and 59 not in dropped["t"].tolist()
    table.loc[59, "y0"] = table.loc[58, "y0"]
    table.to_csv(tmp_path / "filled.csv", index=False)
    filled = run(*args, "--missing", "ffill", "--json").stdout
    assert filled == run("predict", d / "m.mlpackage", "--csv", tmp_path / "filled.csv", "--backend", "executor", "--json").stdout


def test_train_and_export_check_the_package_they_write(trained, tmp_path, monkeypatch):
    """train --export and export run the package once through the executor: one that does not
    compute what the model does (here: an executor off by one) is not reported as written and fine."""
    from coreml_lstm.executor.program import Program

    d, csv, result = trained
    assert result["check"]["status"] == "passed" and {c["size"] for c in result["check"]["checks"]} >= {"", "batch 256"}
    good = Program.predict

    def off_by_one(self, feeds, **kw):
        return {k: v + 1.0 for k, v in good(self, feeds, **kw).items()}

    monkeypatch.setattr(Program, "predict", off_by_one)
    r = CliRunner().invoke(main, ["export", str(d / "ckpt"), str(tmp_path / "e.mlpackage")])
    assert r.exit_code == 1 and "FAILED forecast [executor, fp32]" in r.stdout, r.output
    assert r.stderr.startswith(f"Error: {tmp_path / 'e.mlpackage'}: the package written does not compute what the model does")
    r = CliRunner().invoke(main, ["train", str(csv), "--target", "y0", "--time", "t", *FAST, "--out", str(tmp_path / "c"), "--export", str(tmp_path / "t.mlpackage")])
    assert r.exit_code == 1 and "FAILED forecast [executor, fp32]" in r.stdout and "package: " in r.stdout, r.output
    assert (tmp_path / "t.mlpackage").is_dir() and (tmp_path / "c" / "config.json").is_file()  # kept, for verify


def test_predict_out_naming_a_directory_is_refused(trained, tmp_path):
    d, csv, _ = trained
    (tmp_path / "existing").mkdir()
    out = f"{tmp_path / 'newdir'}/"  # wrote a file named newdir
    r = CliRunner().invoke(main, ["predict", str(d / "m.mlpackage"), "--csv", str(csv), "--out", out])
    assert r.exit_code == 2 and f"--out {out}: names a directory; give the CSV's file name ({tmp_path / 'newdir' / 'forecasts.csv'})" in r.output, r.output
    assert not (tmp_path / "newdir").exists()
    r = CliRunner().invoke(main, ["predict", str(d / "m.mlpackage"), "--csv", str(csv), "--out", str(tmp_path / "existing")])
    assert r.exit_code == 2 and "is a directory" in r.output
    r = CliRunner().invoke(main, ["predict", str(d / "m.mlpackage"), "--csv", str(csv), "--out", str(tmp_path / "existing" / "f.csv")])
    assert r.exit_code == 0 and (tmp_path / "existing" / "f.csv").read_text().count("\n") > 10


@pytest.mark.parametrize("name, damage, line", [
    ("config.json", lambda c: "[1]", "config.json: unreadable checkpoint file (TypeError: "),
    ("config.json", lambda c: json.dumps({k: v for k, v in json.loads(c).items() if k != "model"}), "config.json: no entry 'model'; "),
    ("config.json", lambda c: json.dumps({**json.loads(c), "data": {**json.loads(c)["data"], "window": "24"}}),
     "config.json: window: must be an integer >= 1, got '24'"),
    ("metrics.json", lambda c: "{oops", "metrics.json: unreadable checkpoint file (JSONDecodeError: "),
    ("metrics.json", lambda c: "[1]", "metrics.json: unreadable checkpoint file (AttributeError: "),
    ("validation.safetensors", lambda c: c[:5], "validation.safetensors: unreadable checkpoint file (SafetensorError: "),
])
def test_a_damaged_checkpoint_file_is_one_line_naming_it(trained, tmp_path, name, damage, line):
    """A checkpoint's files read outside the first try (validation windows, metrics) or indexed
    unchecked (config entries) were tracebacks from export and verify; a bad value named the CLI
    option (--window) the user never gave, not the file holding it."""
    import shutil

    d, _, _ = trained
    ckpt = shutil.copytree(d / "ckpt", tmp_path / "ckpt")
    path = ckpt / name
    if name.endswith(".safetensors"):
        path.write_bytes(damage(path.read_bytes()))
    else:
        path.write_text(damage(path.read_text()))
    for args in (["export", ckpt, tmp_path / "m.mlpackage"], ["verify", ckpt, d / "m.mlpackage"]):
        r = run(*args)
        assert r.exit_code == 1 and r.output.startswith(f"Error: {path}: ") and line in r.output and len(r.output.splitlines()) == 1, r.output
    assert not (tmp_path / "m.mlpackage").exists()


def test_backtest_and_verify_read_a_table_with_empty_cells_as_their_advice_says(trained, tmp_path):
    """Both said 'use --missing drop or --missing ffill', which neither command had: backtest
    takes --missing (default: as trained), verify --csv leaves the rows out (any complete window
    compares the package with torch)."""
    import pandas as pd

    d, csv, _ = trained
    table = pd.read_csv(csv)
    table.loc[60, "y0"] = float("nan")
    table.to_csv(tmp_path / "gap.csv", index=False)
    r = run("backtest", d / "ckpt", tmp_path / "gap.csv", "--origins", "2")
    assert r.exit_code == 1 and "missing value (use --missing drop or --missing ffill" in r.output
    r = run("backtest", d / "ckpt", tmp_path / "gap.csv", "--origins", "2", "--missing", "ffill", "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["origins"]) == 2
    r = run("verify", d / "ckpt", d / "m.mlpackage", "--csv", tmp_path / "gap.csv")
    assert r.exit_code == 0 and "result: passed" in r.output, r.output


def test_compare_for_ios15_compares_what_it_can_take(trained):
    """compare --target iOS15 (offered by --help) exported fp32 and fp16, then stopped at int8
    with an error: no table. The compressions need iOS16; they are left out with a note."""
    d, _, _ = trained
    r = run("compare", d / "ckpt", "--target", "iOS15", "--json")
    assert r.exit_code == 0, r.output
    assert [row["variant"] for row in json.loads(r.stdout)] == ["fp32", "fp16"]
    notes = [line for line in r.stderr.splitlines() if line.startswith("note: not compared: ")]
    assert len(notes) == 4 and all("iOS16" in line for line in notes)
