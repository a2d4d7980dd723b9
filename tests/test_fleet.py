"""verify --manifest: many packages in worker processes, one JUnit file, the failures named."""

from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from coreml_lstm import Forecaster
from coreml_lstm.cli import main
from coreml_lstm.errors import ConfigError
from coreml_lstm.fleet import Entry, Result, read_manifest, to_junit

from .conftest import FAST, sine_table

N = 20
BAD = 13


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """20 packages: copies of one small export, the weights of one of them damaged."""
    root = tmp_path_factory.mktemp("fleet")
    f = Forecaster("y0", time="t", **FAST).fit(sine_table())
    f.save(root / "ckpt")
    f.export(root / "model.mlpackage")
    rows = ["name,checkpoint,package"]
    for i in range(N):
        shutil.copytree(root / "model.mlpackage", root / f"m{i:02d}.mlpackage")
        rows.append(f"m{i:02d},ckpt,m{i:02d}.mlpackage")
    _damage(root / f"m{BAD}.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin")
    (root / "fleet.csv").write_text("\n".join(rows) + "\n")
    return root


def _damage(weights):
    """Set the first 64 values of the largest fp32 blob to 7.5 (the file stays well-formed)."""
    data = bytearray(weights.read_bytes())
    blobs, offset = [], 64  # after the file header, 64-byte records: sentinel, dtype, size, data offset
    while offset + 64 <= len(data) and struct.unpack_from("<I", data, offset)[0] == 0xDEADBEEF:
        dtype, size, start = struct.unpack_from("<IQQ", data, offset + 4)
        if dtype == 2:
            blobs.append((size, start))
        offset = (start + size + 63) // 64 * 64
    size, start = max(blobs)
    data[start : start + 256] = np.full(64, 7.5, np.float32).tobytes()
    weights.write_bytes(bytes(data))


def test_fleet_of_20_with_one_damaged_package(fleet, tmp_path):
    junit = tmp_path / "fleet.xml"
    result = CliRunner().invoke(main, ["verify", "--manifest", str(fleet / "fleet.csv"), "--jobs", "2", "--junit", str(junit), "--limit", "4"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    table = {line.split()[0]: line.split()[1] for line in lines if line.startswith("m") and len(line.split()) > 2}
    assert table == {f"m{i:02d}": ("FAILED" if i == BAD else "PASSED") for i in range(N)}
    assert lines[-1] == f"20 packages: 19 passed, 1 failed (not passed: m{BAD})"
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == [f"m{i:02d}" for i in range(N)]
    failing = [s.get("name") for s in suites if int(s.get("failures")) > 0]
    assert failing == [f"m{BAD}"]
    assert all(int(s.get("tests")) > 0 for s in suites)
    # Each pair's cases are its own to a dashboard keyed on classname + name, whatever the file names.
    keys = [(c.get("classname"), c.get("name")) for s in suites for c in s.iter("testcase")]
    assert len(set(keys)) == len(keys) and all(c.get("classname").startswith(s.get("name") + ".") for s in suites for c in s.iter("testcase"))
    assert ET.parse(junit).getroot().get("failures") == str(sum(int(s.get("failures")) for s in suites))


def test_a_package_that_cannot_load_is_an_error_not_a_pass(fleet, tmp_path):
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(fleet / "m00.mlpackage", broken)
    (broken / "Manifest.json").write_text("{")
    manifest = tmp_path / "two.json"
    manifest.write_text(json.dumps([{"checkpoint": str(fleet / "ckpt"), "package": str(fleet / "m00.mlpackage")},
                                    {"name": "broken", "checkpoint": str(fleet / "ckpt"), "package": str(broken)}]))
    junit = tmp_path / "two.xml"
    result = CliRunner().invoke(main, ["verify", "--manifest", str(manifest), "--junit", str(junit), "--limit", "2", "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert [r["status"] for r in out] == ["passed", "error"]
    assert out[1]["message"].startswith(str(broken))
    suite = ET.parse(junit).getroot().findall("testsuite")[1]
    assert suite.get("name") == "broken" and suite.get("errors") == "1" and suite.find("testcase/error") is not None


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("m.csv", "checkpoint,package\nc,p\n,q\n", "row 2: no checkpoint"),
        ("m.csv", "checkpoint,package,colour\nc,p,red\n", "row 1: unknown key 'colour'; keys are name, checkpoint, model, package, csv, mode"),
        ("m.csv", "name,checkpoint,package\na,c,p\na,c,q\n", "row 2: the name 'a' is also row 1's; names must differ"),
        ("m.json", '[{"model": "c", "package": "p", "mode": "fp8"}]', "item 1: mode 'fp8' is not one of fp32, fp16"),
        ("m.json", '{"pairs": 3}', 'expected a JSON list of objects (or {"pairs": [...]}) with checkpoint and package'),
        ("m.json", "[]", "the manifest lists no pairs"),
        ("m.txt", "x", "a manifest is a .csv or .json file"),
    ],
)
def test_manifest_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_manifest(path)
    assert str(e.value) == f"{path}: {message}"


def test_manifest_paths_are_relative_to_it(tmp_path):
    (tmp_path / "m.csv").write_text("model,package,csv\nruns/a,pk/a.mlpackage,data/x.csv\n")
    (entry,) = read_manifest(tmp_path / "m.csv")
    assert entry == Entry("pk/a.mlpackage", str(tmp_path / "runs/a"), str(tmp_path / "pk/a.mlpackage"), str(tmp_path / "data/x.csv"), None)


def test_manifest_and_arguments_do_not_mix(fleet):
    result = CliRunner().invoke(main, ["verify", str(fleet / "ckpt"), "--manifest", str(fleet / "fleet.csv")])
    assert result.exit_code == 2 and "--manifest: name the pairs" in result.output
    result = CliRunner().invoke(main, ["verify"])
    assert result.exit_code == 2 and "give MODEL and PACKAGE, or --manifest FILE" in result.output


def test_junit_of_an_error_has_one_error_case():
    xml = to_junit([Result(Entry("x", "c", "p"), "error", 0.5, message="p: not a package")])
    suite = ET.fromstring(xml).find("testsuite")
    assert suite.get("name") == "x" and suite.find("testcase/error").get("message") == "p: not a package"
    assert suite.find("testcase").get("classname") == "x.p"
