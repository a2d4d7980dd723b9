"""verify against a checkpoint holds a package to the checkpoint, not to what the package says of
itself: a package is untrusted, and an edit that changes what it computes or what predict feeds
it must fail, however the rest of the package is dressed up."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coreml_lstm import Forecaster
from coreml_lstm.forecaster_adapter import ForecasterAdapter
from coreml_lstm.verify import verify_package

from .executor import hostile
from .test_forecast import TINY, seasonal_trend


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("tampered")
    f = Forecaster("y", time="date", horizon=3, window=12, **TINY).fit(seasonal_trend(80))
    f.save(root / "ckpt")
    return root, f.export(root / "m.mlpackage")


def verified(root, package):
    adapter = ForecasterAdapter.load(root / "ckpt", package=package)
    return verify_package(adapter, package, adapter.samples(4), backends=("executor",))


def tampered(root, package, name):
    dest = hostile.copy_package(package, root / f"{name}.mlpackage")
    return dest, hostile.read_spec(dest)


def shift_a_weight(spec) -> None:
    """Add 2% of its largest value to the first const float tensor the program holds inline."""
    for op in hostile.main_block(spec).operations:
        value = op.attributes["val"] if op.type == "const" else None
        if value is not None and value.WhichOneof("value") == "immediateValue" and len(value.immediateValue.tensor.floats.values) > 1:
            floats = value.immediateValue.tensor.floats.values
            floats[0] += 0.02 * max(abs(v) for v in floats) + 0.02
            return
    raise AssertionError("no inline float const to shift")


def test_the_untampered_package_passes(exported):
    root, package = exported
    assert verified(root, package).status == "passed"


def test_an_unused_compressed_weight_does_not_loosen_the_bar(exported):
    """An fp32 package with a weight shifted fails at the fp32 bar; one constexpr_* op that
    nothing reads switched verify to the fp16 bar (compressed weights), and it passed."""
    root, package = exported
    dest, spec = tampered(root, package, "shifted")
    shift_a_weight(spec)
    hostile.write_spec(dest, spec)
    assert verified(root, dest).status == "failed"
    dest, spec = tampered(root, package, "shifted_dead_constexpr")
    shift_a_weight(spec)
    hostile.add_op(hostile.main_block(spec).operations, "constexpr_affine_dequantize", "unused_w", {}, out_shape=(2,),
                   quantized_data=np.array([1, 2], np.int32), zero_point=np.int32(0), scale=np.float32(1), axis=np.int32(0))
    hostile.write_spec(dest, spec)
    report = verified(root, dest)
    assert report.status == "failed"
    assert all(c.tolerance.atol == 1e-4 for c in report.checks if c.status != "skipped")


@pytest.mark.parametrize("entries", [
    {"input_columns": ["date"], "target_columns": ["date"]},  # predict would feed another column
    {"window": 6},
    {"series_id_column": "y"},
])
def test_metadata_naming_what_the_model_was_not_trained_on_fails(exported, entries):
    """The program can match torch while predict feeds it another column or cuts other windows:
    the entries predict and the Swift wrapper act on are held to the checkpoint's."""
    root, package = exported
    dest, spec = tampered(root, package, "meta_" + "_".join(entries))
    user = spec.description.metadata.userDefined
    for key, value in entries.items():
        user["coreml_lstm." + key] = json.dumps(value)
    hostile.write_spec(dest, spec)
    report = verified(root, dest)
    failed = [c for c in report.failed if c.output == "metadata"]
    assert report.status == "failed" and [c.reason.split(" is ")[0] for c in failed] == [f"entry {k!r}" for k in entries]
    assert all(c.status == "passed" for c in report.checks if c.output != "metadata")  # the program itself still matches


def test_a_deleted_entry_reads_as_what_predict_takes_it_for(exported):
    """A missing time column entry makes predict key its rows by number (a missing series id
    entry: one series): absent reads as None, so a model trained with a time column fails."""
    root, package = exported
    dest, spec = tampered(root, package, "no_time_entry")
    del spec.description.metadata.userDefined["coreml_lstm.time_column"]
    hostile.write_spec(dest, spec)
    report = verified(root, dest)
    assert [c.reason.split(":")[0] for c in report.failed] == ["entry 'time_column' is null, the model's \"date\""]


@pytest.mark.parametrize("entries, line", [
    ({"window": "abc"}, "metadata entry 'window' is \"abc\"; expected an integer >= 1"),
    ({"window": -3}, "metadata entry 'window' is -3; expected an integer >= 1"),
    ({"input_columns": 5}, "metadata entry 'input_columns' is 5; expected a list of distinct column names"),
    ({"target_columns": "y"}, "metadata entry 'target_columns' is \"y\"; expected a list of distinct column names"),
    ({"target_columns": ["z"]}, "metadata entry 'target_columns' is [\"z\"]; expected columns among input_columns"),
    ({"horizon": [1]}, "metadata entry 'horizon' is [1]; expected an integer >= 1"),
    ({"streaming": "states"}, "metadata entry 'max_chunk' is null; expected an integer >= 1"),
    ({"time_column": "y"}, "metadata entry 'time_column' is \"y\"; expected null or the name of a column that is not an input"),
    ({"series_id_column": 3}, "metadata entry 'series_id_column' is 3; expected null or the name of a column that is not an input"),
])
def test_predict_and_swift_refuse_malformed_entries_in_one_line(exported, tmp_path, entries, line):
    """predict read the entries unchecked (int('abc'), list('y') as the columns y... , a stream
    without max_chunk: tracebacks or a misleading '--target: column listed twice'), and swift
    wrote a wrapper from them."""
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    root, package = exported
    dest, spec = tampered(root, package, "bad_" + "_".join(entries) + "_" + str(abs(hash(line)) % 1000))
    for key, value in entries.items():
        spec.description.metadata.userDefined["coreml_lstm." + key] = json.dumps(value)
    hostile.write_spec(dest, spec)
    seasonal_trend(40).to_csv(tmp_path / "t.csv", index=False)
    for args in (["predict", str(dest), "--csv", str(tmp_path / "t.csv"), "--backend", "executor"], ["swift", str(dest), "--out", str(tmp_path / "sw")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and r.output == f"Error: {dest}: {line}" + r.output.split(line, 1)[-1] and len(r.output.splitlines()) == 1, r.output
    assert not (tmp_path / "sw").exists()


def test_a_batch_range_of_zero_windows_is_one_line(exported, tmp_path):
    from coreml_lstm.errors import PackageError
    from coreml_lstm.predict import predict_table

    root, package = exported
    dest, spec = tampered(root, package, "batch_zero")
    r = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[0]
    r.lowerBound = r.upperBound = 0
    hostile.write_spec(dest, spec)
    with pytest.raises(PackageError, match=r"input 'window' takes a batch of 0\.\.0 windows; a window package takes 1 or more"):
        predict_table(dest, seasonal_trend(40), backend="executor")


def test_a_golden_vector_refusal_says_how_far_off(exported, tmp_path):
    """swift refused a package failing its golden vectors with '... FAILED forecast [executor:golden,
    fp32]: 2 output shapes': a check over samples of several shapes printed as one that did not
    run, hiding its error."""
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    root, package = exported
    dest, spec = tampered(root, package, "golden_off")
    shift_a_weight(spec)
    hostile.write_spec(dest, spec)
    r = CliRunner().invoke(main, ["swift", str(dest), "--checkpoint", str(root / "ckpt"), "--out", str(tmp_path / "sw")])
    assert r.exit_code == 1 and re.search(r"FAILED forecast \[executor:golden, fp32\]: max abs [0-9.e-]+, max rel [0-9.e-]+ \(atol 0\.0001", r.output), r.output
    assert not (tmp_path / "sw").exists()


@given(st.text())
def test_package_text_is_shown_on_one_line_and_in_well_formed_xml(text):
    """A package's text (a description, an output name) printed as it is could add lines to
    inspect's output ('result: passed') and made verify --junit malformed XML (a \\x01)."""
    import xml.etree.ElementTree as ET

    from coreml_lstm.errors import printable
    from coreml_lstm.verify import Check, Report, to_junit

    shown = printable(text)
    assert len(shown.splitlines()) <= 1 and shown.isprintable()
    if text.isprintable():
        assert shown == text  # letters of every script, as they are
    report = Report("m.mlpackage", 1, [Check(text, "executor", "fp32", "failed", reason=text), Check(text, "coreml", "-", "skipped", reason=text)])
    cases = ET.fromstring(to_junit(report).split("\n", 1)[1]).iter("testcase")
    assert [c.get("name") for c in cases] == [shown, shown]
    assert all(len(c.line().splitlines()) == 1 for c in report.checks)


def test_inspect_shows_a_description_with_line_breaks_on_one_line(exported):
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    root, package = exported
    dest, spec = tampered(root, package, "described")
    spec.description.metadata.shortDescription = "ok\nops (0):\nresult: passed"
    spec.description.input[0].shortDescription = "genuine\rOVERWRITTEN \x1b[2J"
    hostile.write_spec(dest, spec)
    out = CliRunner().invoke(main, ["inspect", str(dest)]).output
    assert "  short_description  ok\\nops (0):\\nresult: passed\n" in out and "genuine\\rOVERWRITTEN \\x1b[2J\n" in out
    assert not any(line.startswith(("ops (0)", "result")) for line in out.splitlines())


def test_neither_fp16_mode_nor_a_precision_entry_loosens_an_fp32_programs_bar(exported):
    """The executor's fp16 mode rounds what the program declares fp16, so an fp32 program's
    numbers are unchanged, but `--mode fp16` held them to the fp16 bar (a weight 3% off passed);
    a package's own `precision` entry chose the bar too."""
    root, package = exported
    dest, spec = tampered(root, package, "shifted_claims_fp16")
    shift_a_weight(spec)
    spec.description.metadata.userDefined["coreml_lstm.precision"] = "fp16"  # as the export writes it
    hostile.write_spec(dest, spec)
    adapter = ForecasterAdapter.load(root / "ckpt", package=dest)
    for modes in (None, ("fp16",), ("fp32", "fp16")):
        report = verify_package(adapter, dest, adapter.samples(4), modes=modes, backends=("executor",))
        assert report.status == "failed" and {c.tolerance.atol for c in report.ran} == {1e-4}, modes
    assert verify_package(adapter, package, adapter.samples(4), modes=("fp16",), backends=("executor",)).status == "passed"


@pytest.mark.parametrize("log, streaming", [(False, None), (True, None), (False, "explicit")], ids=["window", "log", "stream"])
def test_the_package_of_another_seed_fails_on_the_small_series_of_a_mixed_table(tmp_path, log, streaming):
    """Stores near 5e4 and near 5 in one table: the bar in units of the pooled spread (~2e4)
    passed the package of another model at 18% off on the small store. With window scaling each
    window's output is its own scale times the network's, and the bar is in that scale."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 60
    frames = [pd.DataFrame({"store": name, "date": pd.date_range("2000-01-01", periods=n, freq="MS"),
                            "y": level * (1 + 0.1 * np.sin(np.arange(n) / 2) + 0.02 * rng.standard_normal(n))})
              for name, level in (("big", 5e4), ("small", 5.0))]
    table = pd.concat(frames, ignore_index=True)
    fits = [Forecaster("y", time="date", series_id="store", horizon=3, window=12, seed=s, select="network", log=log, **TINY).fit(table)
            for s in (0, 1)]
    fits[0].save(tmp_path / "ckpt")
    package = fits[1].export(tmp_path / "other.mlpackage", streaming=streaming)
    assert verified(tmp_path, package).status == "failed"
    own = fits[0].export(tmp_path / "own.mlpackage", streaming=streaming)
    assert verified(tmp_path, own).status == "passed"
    # The golden vectors an app's tests replay hold each call to its window's scale too.
    from coreml_lstm.golden import check_golden, golden

    vectors = golden(ForecasterAdapter.load(tmp_path / "ckpt", package=package), package)
    assert check_golden(package, vectors).status == "failed"
    assert check_golden(own, golden(ForecasterAdapter.load(tmp_path / "ckpt", package=own), own)).status == "passed"


def test_a_package_of_another_window_is_said_to_be_of_another_model(exported, tmp_path):
    """It read as a bad feed: "input 'window': expected shape (1..256, 12, 1), got (1, 8, 1)"."""
    from coreml_lstm.errors import ConfigError

    root, package = exported
    Forecaster("y", time="date", horizon=3, window=8, **TINY).fit(seasonal_trend(80)).save(tmp_path / "ckpt")
    with pytest.raises(ConfigError, match=r"^.*m\.mlpackage: input '\w+' has shape \(1\.\.256, 12, 1\), the model's \(1\.\.256, 8, 1\): "
                                          r"the package was made from another model$"):
        verified(tmp_path, package)
