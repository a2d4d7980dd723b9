"""Classification through the command line: train --task, export, verify (and --junit), predict."""

import json

import pytest
from click.testing import CliRunner

from coreml_lstm.cli import main

from .conftest import heavy_imports
from .test_classify import gestures, reviews

TINY = ["--hidden-size", "8", "--epochs", "15", "--patience", "15", "--batch-size", "16", "--lr", "1e-2", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    d = tmp_path_factory.mktemp("cls")
    gestures().to_csv(d / "g.csv", index=False)
    r = run("train", d / "g.csv", "--task", "classify", "--series-id", "id", "--time", "t", "--bidirectional", *TINY,
            "--out", d / "ckpt", "--export", d / "g.mlpackage", "--json")
    assert r.exit_code == 0, r.output
    return d, json.loads(r.stdout)


def test_train_classify_reports_accuracy_and_writes_a_classifier(sequence):
    d, result = sequence
    assert result["task"] == "classify" and 0 <= result["metrics"]["accuracy"] <= 1
    assert result["metrics"]["classes"] == ["down", "flat", "up"]
    info = json.loads(run("inspect", d / "g.mlpackage", "--json").stdout)
    assert {o["name"] for o in info["outputs"]} >= {"probabilities"}


def test_verify_and_predict_a_classifier(sequence, tmp_path):
    from junitparser import JUnitXml

    d, _ = sequence
    r = run("verify", d / "ckpt", d / "g.mlpackage", "--junit", tmp_path / "v.xml")
    assert r.exit_code == 0, r.output
    assert "result: passed" in r.stdout
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "v.xml"))))
    assert suite.tests >= 2 and suite.failures == 0
    r = run("predict", d / "g.mlpackage", "--csv", d / "g.csv", "--top-k", "2", "--backend", "executor")
    assert r.exit_code == 0, r.output
    header = r.stdout.splitlines()[0].split(",")
    assert header == ["id", "label", "top1", "top1_p", "top2", "top2_p"]
    assert len(r.stdout.splitlines()) == 1 + 48


def test_predicting_with_a_classifier_package_imports_neither_torch_nor_the_converter(sequence):
    d, _ = sequence
    assert heavy_imports("predict", d / "g.mlpackage", "--csv", d / "g.csv", "--backend", "executor") == []
    assert heavy_imports("inspect", d / "g.mlpackage") == []


def test_text_classify_end_to_end(tmp_path):
    reviews().to_csv(tmp_path / "r.csv", index=False)
    r = run("train", tmp_path / "r.csv", "--task", "text-classify", *TINY, "--out", tmp_path / "ckpt", "--export", tmp_path / "r.mlpackage")
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.stdout and "confusion" in r.stdout
    assert (tmp_path / "r.vocab.json").is_file()
    r = run("verify", tmp_path / "ckpt", tmp_path / "r.mlpackage", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "passed"
    # A text of emoji only (no word tokens) is predicted, not an error failing the whole table.
    (tmp_path / "new.csv").write_text("text\ngreat value\n\U0001f44d\U0001f44d\n?!\n", encoding="utf-8")
    r = run("predict", tmp_path / "r.mlpackage", "--csv", tmp_path / "new.csv")
    assert r.exit_code == 0, r.output
    assert len(r.stdout.strip().splitlines()) == 4, r.stdout
    # The row key is the file's data row: a blank line is a blank text (it was skipped, and the
    # rows after it named one less); blank lines at the end are none.
    (tmp_path / "new.csv").write_text("text\ngreat value\n\nawful\n\n\n", encoding="utf-8")
    r = run("predict", tmp_path / "r.mlpackage", "--csv", tmp_path / "new.csv")
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path / 'new.csv'}: column 'text', row 2: empty text\n", r.output
    (tmp_path / "new.csv").write_text("text\ngreat value\nawful\n\n\n", encoding="utf-8")
    r = run("predict", tmp_path / "r.mlpackage", "--csv", tmp_path / "new.csv")
    assert r.exit_code == 0 and [line.split(",")[0] for line in r.stdout.splitlines()] == ["row", "1", "2"], r.output


def test_option_conflicts_are_usage_errors(tmp_path):
    gestures(12).to_csv(tmp_path / "g.csv", index=False)
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--target", "a")
    assert r.exit_code == 2 and "--target: only with --task forecast" in r.output
    r = run("train", tmp_path / "g.csv", "--label", "label", "--target", "a")
    assert r.exit_code == 2 and "--label: only with --task classify or text-classify" in r.output
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--cell", "rnn")
    assert r.exit_code == 2 and "--cell must be lstm or gru" in r.output
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--conv", "8,x")
    assert r.exit_code == 2 and "is not a comma-separated list of integers" in r.output


@pytest.mark.parametrize("option", [["--window", "5"], ["--horizon", "2"], ["--mixtures", "2"], ["--mixtures", "3"], ["--calibrate"],
                                    ["--missing", "drop"], ["--scaling", "window"]])
@pytest.mark.parametrize("task", ["classify", "text-classify"])
def test_forecast_only_options_are_refused_by_classifiers(tmp_path, task, option):
    gestures(12).to_csv(tmp_path / "g.csv", index=False)
    r = run("train", tmp_path / "g.csv", "--task", task, *option, *QUICK, "--out", tmp_path / "ckpt")  # were accepted and ignored
    flag = "--calibrate/--no-calibrate" if option[0] == "--calibrate" else option[0]
    assert r.exit_code == 2 and f"Error: {flag}: only with --task forecast" in r.output, r.output
    assert not (tmp_path / "ckpt").exists()


def test_a_classifier_refuses_the_plateau_schedule_and_takes_cosine(tmp_path):
    gestures(12).to_csv(tmp_path / "g.csv", index=False)
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--schedule", "plateau", *QUICK, "--out", tmp_path / "ckpt")  # was turned into none
    assert r.exit_code == 2 and "Error: --schedule plateau: only with --task forecast; a classifier takes none or cosine" in r.output
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--schedule", "cosine", *QUICK, "--out", tmp_path / "ckpt")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["train"]["schedule"] == "cosine"


def test_train_warns_of_classes_without_validation_samples_and_of_no_validation_at_all(tmp_path):
    (tmp_path / "w.csv").write_text("label,t0,t1\n" + "a,0,1\nb,1,0\n" * 4 + "c,5,5\n")  # 'c': one sample, all in training
    r = run("train", tmp_path / "w.csv", "--task", "classify", "--layout", "wide", *QUICK, "--out", tmp_path / "ckpt", "--json")
    assert r.exit_code == 0, r.output
    line = "no validation samples of class 'c'"
    assert any(w.startswith(line) for w in json.loads(r.stdout)["warnings"])
    assert json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["metrics"]["no_samples"] == ["c"]
    r = CliRunner().invoke(main, ["train", str(tmp_path / "w.csv"), "--task", "classify", "--layout", "wide", *QUICK, "--out", str(tmp_path / "c2")])
    assert f"warning: {line}" in r.stderr
    (tmp_path / "one.csv").write_text("label,t0\na,0\nb,1\n")  # one sample per class: nothing to validate on (printed nothing)
    r = CliRunner().invoke(main, ["train", str(tmp_path / "one.csv"), "--task", "classify", "--layout", "wide", *QUICK, "--out", str(tmp_path / "c3")])
    assert r.exit_code == 0, r.output
    assert "validation metrics: none (no validation samples)" in r.stdout and "warning: no validation samples: " in r.stderr


def test_one_column_in_two_roles_is_refused(tmp_path):
    gestures(12).to_csv(tmp_path / "g.csv", index=False)
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--series-id", "label", "--label", "label", *QUICK, "--out", tmp_path / "ckpt")
    assert r.exit_code == 1 and r.output == "Error: --series-id: column 'label' is also the label column\n", r.output  # was one class per sample
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--series-id", "id", "--time", "id", *QUICK, "--out", tmp_path / "ckpt")
    assert r.exit_code == 1 and r.output == "Error: --time: column 'id' is also the series id column\n", r.output
    gestures(12).rename(columns={"id": "label", "label": "activity"}).to_csv(tmp_path / "g.csv", index=False)
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--series-id", "label", "--label", "activity", *QUICK, "--out", tmp_path / "ckpt")
    assert r.exit_code == 1 and r.output == ("Error: --series-id: column 'label' is named as a predict output column (label, top1, top1_p, top2, ...); "
                                             "rename the series id column\n"), r.output  # predict's label column overwrote the ids


def test_classifier_bad_input_is_one_line(tmp_path):
    frame = gestures(12)
    frame["label"] = "up"
    frame.to_csv(tmp_path / "one.csv", index=False)
    r = run("train", tmp_path / "one.csv", "--task", "classify", "--series-id", "id", *TINY)
    assert r.exit_code == 1
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1 and "one class" in r.output


def test_compare_a_classifier(sequence):
    d, _ = sequence
    r = run("compare", d / "ckpt", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["variant"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"fp32", "fp16", "int8", "palettize6", "palettize4", "prune50"}
    assert all(row["metric"] == "accuracy" and row["output"] == "probabilities" for row in rows.values())
    assert rows["fp32"]["max_abs_error"] < 1e-4 and rows["fp32"]["rmse"] == rows["fp32"]["torch_rmse"]
    assert rows["int8"]["weights_bytes"] < rows["fp32"]["weights_bytes"]
    assert "accuracy" in run("compare", d / "ckpt").stdout


# -- labels of every type survive training, saving, loading and the package ------------------

LABELS = {"int": (1, 2), "float": (0.5, 1.5), "str": ("one", "two")}
# A CSV's labels are text: integers written as Python writes them become int, anything else stays its string.
FROM_CSV = {"int": ([1, 2], "int"), "float": (["0.5", "1.5"], "str"), "str": (["one", "two"], "str")}
QUICK = ["--hidden-size", "4", "--num-layers", "1", "--epochs", "1", "--quiet"]


def labelled_table(layout: str, kind: str, n: int = 16, seed: int = 0):
    """A table as UCR/UEA files are usually converted: long ``series_id,t,c0,label`` or wide
    ``label,t0,...``; the labels ``LABELS[kind]``, the class readable from the values."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    a, b = LABELS[kind]
    if layout == "long":
        rows = [(s, t, float(np.sin(t * (1 + s % 2)) + 0.1 * rng.normal()), (a, b)[s % 2]) for s in range(n) for t in range(10)]
        return pd.DataFrame(rows, columns=["series_id", "t", "c0", "label"])
    rows = [[(a, b)[s % 2]] + list(np.sin(np.arange(10) * (1 + s % 2)) + 0.1 * rng.normal(size=10)) for s in range(n)]
    return pd.DataFrame(rows, columns=["label"] + [f"t{i}" for i in range(10)])


@pytest.mark.parametrize("validation", [False, True], ids=["split", "validation"])
@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize("kind", ["int", "float", "str"])
def test_labels_of_every_type_train_save_and_predict_as_read(tmp_path, kind, layout, validation):
    from coreml_lstm.classify import load_classifier

    frame = labelled_table(layout, kind)
    frame.to_csv(tmp_path / "train.csv", index=False)
    args = ["train", tmp_path / "train.csv", "--task", "classify", "--layout", layout, *QUICK, "--out", tmp_path / "ckpt"]
    if layout == "long":
        args += ["--series-id", "series_id", "--time", "t"]
    if validation:
        labelled_table(layout, kind, n=6, seed=1).to_csv(tmp_path / "val.csv", index=False)
        args += ["--validation", tmp_path / "val.csv"]
    r = run(*args, "--json")  # the saving of integer labels raised TypeError (numpy int64 in JSON)
    assert r.exit_code == 0, r.output
    want, want_type = FROM_CSV[kind]
    assert json.loads(r.stdout)["metrics"]["classes"] == want
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["classes"] == want and config["label_type"] == want_type
    clf = load_classifier(tmp_path / "ckpt")
    assert clf.classes_ == want and all(type(c) is type(want[0]) for c in clf.classes_)
    predicted = clf.predict(tmp_path / "train.csv")
    assert predicted and all(type(p) is type(want[0]) and p in want for p in predicted)


@pytest.mark.parametrize("kind", ["int", "float", "str"])
def test_the_package_gives_back_labels_as_read(tmp_path, kind):
    labelled_table("long", kind).to_csv(tmp_path / "train.csv", index=False)
    r = run("train", tmp_path / "train.csv", "--task", "classify", "--series-id", "series_id", "--time", "t", *QUICK,
            "--out", tmp_path / "ckpt", "--export", tmp_path / "m.mlpackage")
    assert r.exit_code == 0, r.output
    r = run("predict", tmp_path / "m.mlpackage", "--csv", tmp_path / "train.csv", "--backend", "executor", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    want, _ = FROM_CSV[kind]
    assert len(rows) == 16 and all(type(row["label"]) is type(want[0]) and row["label"] in want for row in rows)
    assert {row["top1"] for row in rows} | {row["top2"] for row in rows} == set(want)


@pytest.mark.parametrize("labels, want, output_type", [
    (("007", "7", "1.0"), ["007", "1.0", "7"], "stringType"),  # "007" and "7" were one class 7, "1.0" the int 1
    (("-3", "0", "42"), [-3, 0, 42], "int64Type"),
], ids=["text", "integers"])
def test_csv_labels_keep_their_text_through_the_checkpoint_and_the_package(tmp_path, labels, want, output_type):
    import numpy as np

    from coreml_lstm.classify import load_classifier

    from .test_classify import spec_of

    rng = np.random.default_rng(0)
    lines = ["id,t,c0,label"] + [f"s{s},{t},{np.sin(t * (1 + s % 3)) + 0.1 * rng.normal():.4f},{labels[s % 3]}" for s in range(12) for t in range(6)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    r = run("train", tmp_path / "train.csv", "--task", "classify", "--series-id", "id", "--time", "t", *QUICK,
            "--out", tmp_path / "ckpt", "--export", tmp_path / "m.mlpackage")
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["classes"] == want and config["label_type"] == ("int" if output_type == "int64Type" else "str")
    clf = load_classifier(tmp_path / "ckpt")
    assert clf.classes_ == want and clf.evaluate(tmp_path / "train.csv")["n"] == 12
    spec = spec_of(tmp_path / "m.mlpackage")
    assert spec.description.output[0].name == "classLabel" and spec.description.output[0].type.WhichOneof("Type") == output_type
    r = run("predict", tmp_path / "m.mlpackage", "--csv", tmp_path / "train.csv", "--backend", "executor", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 12 and all(row["label"] in want and type(row["label"]) is type(want[0]) for row in rows)
    from coreml_lstm.classify import evaluate_package

    assert evaluate_package(tmp_path / "m.mlpackage", tmp_path / "train.csv", backend="executor")["n"] == 12  # the CSV's labels are the classes


def test_plot_backtest_and_forecaster_load_on_a_classifier_checkpoint_say_what_it_is(sequence):
    from coreml_lstm import Forecaster
    from coreml_lstm.errors import ConfigError

    d, _ = sequence
    ckpt = d / "ckpt"
    line = (f"Error: {ckpt}: is a classifier checkpoint; plot and backtest are for forecasters "
            "(a classifier checkpoint takes export, verify, compare and swift; predict takes its package)\n")
    for args in (("plot", ckpt), ("plot", ckpt, "--backtest", d / "g.csv"), ("backtest", ckpt, d / "g.csv")):
        r = run(*args)  # TypeError: DataConfig.__init__() got an unexpected keyword argument 'label'
        assert r.exit_code == 1 and r.output == line, r.output
    with pytest.raises(ConfigError) as e:
        Forecaster.load(ckpt)
    assert str(e.value) == f"{ckpt}: is a classifier checkpoint, not a forecaster's; load it with coreml_lstm.classify.load_classifier (its predict, evaluate and export work on it)"


@pytest.mark.parametrize("style", ["explicit", "states"])
def test_a_classifier_export_refuses_streaming(sequence, tmp_path, style):
    from coreml_lstm.classify import load_classifier
    from coreml_lstm.errors import ConfigError

    d, _ = sequence
    why = "streaming exports are for forecasters; a classifier's package takes a whole sequence per call"
    r = run("export", d / "ckpt", tmp_path / "s.mlpackage", "--streaming", style)  # was written without state and reported as done
    assert r.exit_code == 1 and r.output == f"Error: --streaming {style}: {why}\n", r.output
    with pytest.raises(ConfigError) as e:
        load_classifier(d / "ckpt").export(tmp_path / "s.mlpackage", streaming=style, target="iOS18")
    assert str(e.value) == f"streaming: {style}: {why}"
    assert not (tmp_path / "s.mlpackage").exists()


def test_duplicate_channels_are_one_line(tmp_path):
    (tmp_path / "g.csv").write_text("id,t,a,label\ns0,0,1,x\ns1,0,2,y\n")
    r = run("train", tmp_path / "g.csv", "--task", "classify", "--channel", "a", "--channel", "a", *QUICK, "--out", tmp_path / "ckpt")
    assert r.exit_code == 1 and r.output == "Error: --channel: column 'a' is listed twice\n", r.output


def test_predict_missing_is_for_forecasters(sequence):
    d, _ = sequence
    r = run("predict", d / "g.mlpackage", "--csv", d / "g.csv", "--missing", "ffill")
    assert r.exit_code == 1 and r.output == "Error: --missing ffill: only for forecaster packages; a classifier's samples must be complete\n"
    r = run("predict", d / "g.mlpackage", "--csv", d / "g.csv", "--last")  # was ignored
    assert r.exit_code == 1 and r.output == "Error: --last: only for forecaster packages; a classifier gives one prediction per sample\n"
