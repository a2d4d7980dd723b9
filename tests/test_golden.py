"""Golden files from anyone (golden.read_golden, check_golden): a damaged or hostile file is one
PackageError line naming the file and the entry, never a KeyError, TypeError or ValueError."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coreml_lstm.executor as ex
from coreml_lstm.errors import CoreMLLSTMError, FeedError, PackageError
from coreml_lstm.executor import limits
from coreml_lstm.golden import FORMAT, check_golden, read_golden, write_golden
from coreml_lstm.zoo import Case, convert, lstm

from .strategies import examples


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A small LSTM package and a golden file of two calls that it passes (its outputs are the executor's)."""
    d = tmp_path_factory.mktemp("golden")
    _, feeds, package, _ = convert(Case("lstm-range", lstm(1), flexible="range"), d)
    program = ex.load(package)
    calls = []
    for x in (feeds["x"], feeds["x"][:, :3]):
        y = program.predict({"x": x})["y"]
        calls.append({"inputs": {"x": {"shape": list(x.shape), "dtype": "float32", "data": x.astype(np.float64).ravel().tolist()}},
                      "outputs": {"y": {"shape": list(y.shape), "dtype": "float32", "data": y.astype(np.float64).ravel().tolist()}}})
    golden = {"format": FORMAT, "package": package.name, "precision": "fp32", "tolerance": {"atol": 1e-4, "rtol": 1e-4},
              "units": {"y": 1.0}, "stateful": False, "calls": calls}
    path = write_golden(d / "M.golden.json", golden)
    return package, golden, path


def test_a_good_golden_file_replays_from_the_file_or_the_dict(made):
    package, golden, path = made
    assert read_golden(path) == golden
    for given_ in (golden, path, str(path)):
        report = check_golden(package, given_)
        assert report.status == "passed" and [c.output for c in report.checks] == ["y"], report


def _set(entry_path, value):
    def edit(g):
        target = g
        for key in entry_path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[entry_path[-1]]
        else:
            target[entry_path[-1]] = value
        return g
    return edit


_DELETE = object()
C0X = ("calls", 0, "inputs", "x")
C1Y = ("calls", 1, "outputs", "y")
DAMAGE = {
    "an array": (lambda g: [g], "not a golden-vector file (a JSON object is expected, got an array)"),
    "no format": (_set(("format",), _DELETE), "format null, expected 'coreml-lstm golden 1'"),
    "precision": (_set(("precision",), "fp8"), "'precision' is 'fp8', not one of fp32, fp16"),
    "no tolerance": (_set(("tolerance",), _DELETE), "'tolerance' is missing"),
    "tolerance a number": (_set(("tolerance",), 0.1), "'tolerance' is a number, not an object with atol and rtol"),
    "tolerance extra": (_set(("tolerance", "ztol"), 1), "'tolerance' has 'ztol'; it holds atol and rtol only"),
    "atol text": (_set(("tolerance", "atol"), "0.1"), "'tolerance.atol' is a string, not a number"),
    "rtol negative": (_set(("tolerance", "rtol"), -1), "'tolerance.rtol' is -1, not a finite number >= 0"),
    "stateful text": (_set(("stateful",), "no"), "'stateful' is a string, not true or false"),
    "units a list": (_set(("units",), [1]), "'units' is an array, not an object of output names and numbers"),
    "unit zero": (_set(("units", "y"), 0), "'units.y' is 0, not a finite number > 0"),
    "no calls": (_set(("calls",), _DELETE), "'calls' is missing"),
    "calls an object": (_set(("calls",), {}), "'calls' is an object, not an array"),
    "call a number": (_set(("calls", 1), 3), "'calls[1]' is an integer, not an object with inputs and outputs"),
    "no inputs": (_set(("calls", 0, "inputs"), _DELETE), "'calls[0].inputs' is missing"),
    "array a list": (_set(C0X, [1, 2]), "'calls[0].inputs.x' is an array, not an object with shape and data"),
    "no shape": (_set((*C0X, "shape"), _DELETE), "'calls[0].inputs.x.shape' is missing"),
    "shape text": (_set((*C0X, "shape"), "1,2"), "'calls[0].inputs.x.shape' is '1,2', not an array of sizes"),
    "shape negative": (_set((*C0X, "shape"), [2, -1]), "'calls[0].inputs.x.shape' is [2, -1], not an array of sizes"),
    "shape huge": (_set((*C1Y, "shape"), [1 << 40, 1 << 40]), "'calls[1].outputs.y' of shape (1099511627776, 1099511627776) would need"),
    "data short": (_set((*C0X, "shape"), [1, 1, 2]), "'calls[0].inputs.x.data' holds 70 values for shape (1, 1, 2)"),
    "data text": (_set((*C0X, "data"), "abc"), "'calls[0].inputs.x.data' is a string, not an array of numbers"),
    "data null": (lambda g: (g["calls"][1]["outputs"]["y"]["data"].__setitem__(0, None), g)[1], "'calls[1].outputs.y.data[0]' is null, not a number"),
    "data bool": (lambda g: (g["calls"][0]["inputs"]["x"]["data"].__setitem__(4, True), g)[1], "'calls[0].inputs.x.data[4]' is true, not a number"),
    "dtype": (_set((*C0X, "dtype"), "float64"), "'calls[0].inputs.x.dtype' is 'float64', not one of float32, int32"),
    "int data a float": (_set((*C1Y, "dtype"), "int32"), "'calls[1].outputs.y.data[0]' is "),
    "unknown input": (lambda g: (g["calls"][0]["inputs"].__setitem__("z", g["calls"][0]["inputs"].pop("x")), g)[1],
                      "calls[0].inputs: unknown input 'z'; the model's inputs are x"),
    "input shape": (_set((*C0X, "shape"), [7, 2, 5]), "calls[0].inputs: input 'x': expected shape (2, 1..64, 5), got (7, 2, 5)"),
    "unknown output": (lambda g: (g["calls"][1]["outputs"].__setitem__("q", g["calls"][1]["outputs"].pop("y")), g)[1],
                       "'calls[1].outputs.q' is not an output of the package (its outputs: y)"),
    "stateful lie": (_set(("stateful",), True), "'stateful' is true but the package has no states"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_a_damaged_golden_file_is_one_line_naming_the_file_and_the_entry(made, tmp_path, name):
    package, golden, _ = made
    edit, line = DAMAGE[name]
    path = tmp_path / "bad.golden.json"
    path.write_text(json.dumps(edit(copy.deepcopy(golden))))
    with pytest.raises(CoreMLLSTMError) as info:
        check_golden(package, path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {line}"), message
    assert isinstance(info.value, (PackageError, FeedError))


@pytest.mark.parametrize("raw, line", [
    (b'{"format": "\xff"}', "not UTF-8 text (byte 0xff at line 1)"),
    (b'{"format": ', "invalid JSON at line 1: Expecting value"),
    (b"[" * 100_000, "nested too deeply to read"),
    (b'{"calls": [{"inputs": {"x": {"shape": [1], "data": [1' + b"0" * 30 + b']}}}]}', "format null"),
])
def test_a_golden_file_that_is_not_json_is_one_line(tmp_path, raw, line):
    path = tmp_path / "g.json"
    path.write_bytes(raw)
    with pytest.raises(PackageError) as info:
        read_golden(path)
    assert str(info.value).startswith(f"{path}: {line}"), str(info.value)


def test_an_integer_beyond_int64_is_named(made, tmp_path):
    package, golden, _ = made
    g = copy.deepcopy(golden)
    g["calls"][0]["inputs"]["x"]["data"][2] = 1 << 70
    path = tmp_path / "g.json"
    path.write_text(json.dumps(g))
    with pytest.raises(PackageError, match=r"'calls\[0\]\.inputs\.x\.data\[2\]' is the integer 1180591620717411303424, beyond int64$"):
        read_golden(path)


def test_integer_outputs_are_compared_exactly(made, tmp_path):
    """An output the file says is int32 (torch's argmax, a count) is compared exactly: 104 for
    100 is another class, however wide the fp16 bar (5e-2 of 100 is 5)."""
    package, golden, _ = made
    g = copy.deepcopy(golden)
    y = g["calls"][0]["outputs"]["y"]
    g["tolerance"] = {"atol": 5e-2, "rtol": 5e-2}
    g["calls"] = g["calls"][:1]
    program = ex.load(package)
    got = program.predict({"x": np.asarray(g["calls"][0]["inputs"]["x"]["data"], np.float32).reshape(g["calls"][0]["inputs"]["x"]["shape"])})["y"]
    y["data"] = [int(round(v)) for v in got.ravel()]
    y["dtype"] = "int32"
    y["data"][0] += 1
    report = check_golden(package, g)
    assert report.status == "failed" and "values differ (integer output, compared exactly)" in report.checks[0].reason, report


def test_the_arrays_together_are_bounded(made, tmp_path, monkeypatch):
    package, golden, path = made
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 1000 * 32)  # the file itself may be 1000 bytes... not this one
    with pytest.raises(PackageError, match=r"bytes of JSON, more than the 1000 a golden file may be"):
        read_golden(path)
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 700)  # x and y of call 0 (70 and 6 float64 values), not x of call 1 (30) too
    with pytest.raises(PackageError, match=r"^golden vectors: 'calls\[1\]\.inputs\.x' takes the arrays to 848 bytes, more than the 700 bytes a run may hold"):
        check_golden(package, golden)


golden_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["shape", "data", "dtype", "x", "y", "atol", "rtol"]), inner, max_size=3),
    max_leaves=20,
)
ENTRIES = ["format", "precision", "tolerance", "units", "stateful", "calls"]


@settings(max_examples=examples(80))
@given(entry=st.sampled_from(ENTRIES + [("calls", 0), ("calls", 0, "inputs"), C0X, (*C0X, "shape"), (*C0X, "data"), C1Y, ("calls", 1, "outputs")]),
       value=golden_values)
def test_random_damage_to_a_golden_file_is_a_report_or_one_line(made, tmp_path_factory, entry, value):
    package, golden, _ = made
    g = copy.deepcopy(golden)
    entry = entry if isinstance(entry, tuple) else (entry,)
    _set(entry, value)(g)
    path = tmp_path_factory.mktemp("g") / "g.json"
    path.write_text(json.dumps(g))
    try:
        check_golden(package, path)
    except CoreMLLSTMError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"{path}: "), str(exc)
