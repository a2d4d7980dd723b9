"""The same command with the same seed writes the same bytes on CPU: checkpoints, packages, Swift.

Nothing written holds a timestamp or a random identifier (coremltools' conversion date and its
Manifest.json UUIDs are replaced, protobuf maps are written in sorted order).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coreml_lstm.cli import main

from .conftest import sine_table
from .test_cli_classify import labelled_table

TINY = ["--window", "8", "--hidden-size", "8", "--epochs", "2", "--quiet"]


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path (hidden ones too: nothing may be left over)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def assert_same(a: Path, b: Path) -> None:
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    different = [name for name in fa if fa[name] != fb[name]]
    assert not different, f"differ between two runs: {different}"


def no_timestamps(root: Path) -> None:
    today = [datetime.date.today().isoformat(), (datetime.date.today() - datetime.timedelta(days=1)).isoformat()]
    for name, data in files(root).items():
        assert not any(day.encode() in data for day in today), f"{name} holds a date"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("repro")
    sine_table(120).to_csv(d / "s.csv", index=False)
    labelled_table("long", "int").to_csv(d / "c.csv", index=False)
    return d


@pytest.mark.parametrize("task", ["forecast", "classify"])
def test_train_and_export_twice_give_the_same_bytes(table, tmp_path, task):
    if task == "forecast":
        args = ["train", table / "s.csv", "--target", "y0", "--time", "t", *TINY, "--seed", "3"]
    else:
        args = ["train", table / "c.csv", "--task", "classify", "--series-id", "series_id", "--time", "t",
                "--hidden-size", "4", "--epochs", "2", "--quiet", "--seed", "3"]
    for k in ("a", "b"):
        (tmp_path / k).mkdir()
        run(*args, "--out", tmp_path / k / "ckpt", "--export", tmp_path / k / "m.mlpackage")
    assert_same(tmp_path / "a" / "ckpt", tmp_path / "b" / "ckpt")
    assert_same(tmp_path / "a" / "m.mlpackage", tmp_path / "b" / "m.mlpackage")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["ckpt", "m.mlpackage"]  # no lock or temporary left
    no_timestamps(tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "m.mlpackage" / "Manifest.json").read_text())
    assert len(set(manifest["itemInfoEntries"])) == 2  # identifiers still unique within the package
    # Exporting the checkpoint again (a second process would too) gives the same package.
    run("export", tmp_path / "a" / "ckpt", tmp_path / "again.mlpackage")
    assert_same(tmp_path / "a" / "m.mlpackage", tmp_path / "again.mlpackage")


def test_swift_twice_gives_the_same_files(table, tmp_path):
    run("train", table / "s.csv", "--target", "y0", "--time", "t", *TINY, "--out", tmp_path / "ckpt", "--export", tmp_path / "m.mlpackage")
    for k in ("a", "b"):
        run("swift", tmp_path / "m.mlpackage", "--out", tmp_path / k, "--checkpoint", tmp_path / "ckpt")
    assert_same(tmp_path / "a", tmp_path / "b")
    assert len(files(tmp_path / "a")) == 3


def test_another_seed_gives_other_weights(table, tmp_path):
    """The comparison above can fail: a different seed changes the checkpoint's weights."""
    for seed in ("1", "2"):
        run("train", table / "s.csv", "--target", "y0", "--time", "t", *TINY, "--seed", seed, "--out", tmp_path / seed)
    assert (tmp_path / "1" / "model.safetensors").read_bytes() != (tmp_path / "2" / "model.safetensors").read_bytes()
