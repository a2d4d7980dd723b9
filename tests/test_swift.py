"""Generated Swift: it parses (tree-sitter's Swift grammar), it names exactly the package's
features, and its golden vectors replay through the executor within tolerance."""

import json
import re

import pytest
import tree_sitter
import tree_sitter_swift
from click.testing import CliRunner

from coreml_lstm import Forecaster, executor
from coreml_lstm.cli import main
from coreml_lstm.errors import PackageError
from coreml_lstm.golden import check_golden, read_golden
from coreml_lstm.swift import identifier, type_name

from .conftest import FAST, sine_table

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def syntax_errors(source: bytes) -> list:
    found = []

    def walk(node):
        if node.type == "ERROR" or node.is_missing:
            found.append((node.start_point, node.text[:80]))
        for child in node.children:
            walk(child)

    walk(PARSER.parse(source).root_node)
    return found


def feature_enum(source: bytes, name: str) -> dict[str, str]:
    """{identifier: string literal} of the `<name>Feature` enum, read from the syntax tree."""
    tree = PARSER.parse(source)
    enums = [n for n in _nodes(tree.root_node) if n.type == "class_declaration" and _name(n) == f"{name}Feature"]
    assert len(enums) == 1
    out = {}
    for prop in (n for n in _nodes(enums[0]) if n.type == "property_declaration"):
        ident = next(n for n in _nodes(prop) if n.type == "simple_identifier").text.decode()
        literal = next(n for n in _nodes(prop) if n.type == "line_string_literal").text.decode()
        out[ident] = literal.strip('"')
    return out


def _nodes(node):
    yield node
    for child in node.children:
        yield from _nodes(child)


def _name(node) -> str:
    ident = node.child_by_field_name("name")
    return ident.text.decode() if ident is not None else ""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("swift")
    point = Forecaster("y0", time="t", **FAST).fit(sine_table(120))
    mixture = Forecaster("y0", time="t", head="mixture", mixtures=2, **FAST).fit(sine_table(150))
    gru = Forecaster("y0", time="t", cell="gru", **FAST).fit(sine_table(120))
    point.save(d / "point")
    mixture.save(d / "mixture")
    gru.save(d / "gru")
    return d


CASES = {
    "point": ("point", []),
    "mixture-explicit": ("mixture", ["--streaming", "explicit", "--max-chunk", "16"]),
    "mixture-states": ("mixture", ["--streaming", "states", "--target", "iOS18", "--max-chunk", "16"]),
    "gru-explicit": ("gru", ["--streaming", "explicit", "--max-chunk", "16"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_swift_parses_names_the_features_and_golden_vectors_replay(models, tmp_path, case):
    ckpt, options = CASES[case]
    package = tmp_path / f"{case}.mlpackage"
    r = CliRunner().invoke(main, ["export", str(models / ckpt), str(package), "--swift", str(tmp_path / "ios"), *options, "--json"])
    assert r.exit_code == 0, r.output
    written = sorted(json.loads(r.stdout)["swift"])
    name = type_name(package)
    assert [p.rsplit("/", 1)[1] for p in written] == sorted([f"{name}.swift", f"{name}Tests.swift", f"{name}.golden.json"])

    program = executor.load(package)
    declared = {t.name for t in program.inputs} | {t.name for t in program.outputs} | {s.name for s in program.states}
    for path in written:
        if path.endswith(".swift"):
            source = open(path, "rb").read()
            assert syntax_errors(source) == [], path
    wrapper = open(tmp_path / "ios" / f"{name}.swift", "rb").read()
    features = feature_enum(wrapper, name)
    assert set(features.values()) == declared
    assert all(identifier(v) == k for k, v in features.items())
    # Every feature the code uses goes through the enum and exists in the package.
    used = set(re.findall(rf"{name}Feature\.(\w+)".encode(), wrapper))
    assert {u.decode() for u in used} <= set(features)
    if program.states:
        assert b"makeState()" in wrapper and b"using: state" in wrapper
    if any(t.name == "h_in" for t in program.inputs):
        assert b"hIn = hOut" in wrapper and b"func reset() throws" in wrapper
        assert (b"cIn = cOut" in wrapper) == any(t.name == "c_in" for t in program.inputs)
    if any(t.name == "weights" for t in program.outputs):
        assert b"public struct Mixture" in wrapper and b"func quantile" in wrapper

    golden = read_golden(tmp_path / "ios" / f"{name}.golden.json")
    window = any(t.name == "window" for t in program.inputs)
    # A window package: three windows, then the three in one call (it takes a batch).
    assert len(golden["calls"]) == 3 + window and golden["stateful"] == bool(program.states)
    if window:
        assert [c["inputs"]["window"]["shape"][0] for c in golden["calls"]] == [1, 1, 1, 3]
        assert b"public func predict(windows: [[[Float]]]) throws -> Output" in wrapper and b"public let maxBatch = 256" in wrapper
    report = check_golden(package, golden)
    assert report.status == "passed", [c.line() for c in report.checks]
    assert {c.output for c in report.checks} == {t.name for t in program.outputs}


def test_golden_vectors_catch_a_changed_expectation(models, tmp_path):
    package = tmp_path / "p.mlpackage"
    assert CliRunner().invoke(main, ["export", str(models / "point"), str(package), "--swift", str(tmp_path)]).exit_code == 0
    golden = read_golden(tmp_path / "P.golden.json")
    golden["calls"][1]["outputs"]["forecast"]["data"][0] += 0.01
    report = check_golden(package, golden)
    assert report.status == "failed" and [c.output for c in report.failed] == ["forecast"]


def test_swift_command_without_checkpoint_writes_the_wrapper_only(models, tmp_path):
    package = tmp_path / "only.mlpackage"
    Forecaster.load(models / "point").export(package)
    r = CliRunner().invoke(main, ["swift", str(package), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Only.swift"]
    assert syntax_errors((tmp_path / "out" / "Only.swift").read_bytes()) == []


def test_the_syntax_check_sees_errors():
    assert syntax_errors(b"public struct A { let x: Int = \n }\n")
    assert syntax_errors(b"import CoreML\nstruct A { let x: Int = 1 }\n") == []


def test_bad_golden_file(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(PackageError, match="format 'other', expected 'coreml-lstm golden 1'"):
        read_golden(path)


def test_type_names():
    assert type_name("models/sunspots-fp16.mlpackage") == "SunspotsFp16"
    assert type_name("3d.mlpackage") == "Model3d"
    assert identifier("h_in") == "hIn" and identifier("window") == "window"


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    from coreml_lstm.classify import SequenceClassifier, TextClassifier

    from .test_classify import TINY, gestures, reviews

    d = tmp_path_factory.mktemp("swift-cls")
    SequenceClassifier(series_id="id", time="t", **TINY).fit(gestures()).save(d / "seq")
    TextClassifier(**TINY).fit(reviews()).save(d / "text")
    return d


@pytest.mark.parametrize("kind", ["seq", "text"])
def test_classifier_swift_parses_names_the_features_and_golden_vectors_replay(classifiers, tmp_path, kind):
    package = tmp_path / f"{kind}-clf.mlpackage"
    r = CliRunner().invoke(main, ["export", str(classifiers / kind), str(package), "--swift", str(tmp_path / "ios")])
    assert r.exit_code == 0, r.output
    name = type_name(package)
    program = executor.load(package)
    declared = {t.name for t in program.inputs} | {t.name for t in program.outputs}
    for file in (f"{name}.swift", f"{name}Tests.swift"):
        assert syntax_errors((tmp_path / "ios" / file).read_bytes()) == [], file
    wrapper = (tmp_path / "ios" / f"{name}.swift").read_bytes()
    assert set(feature_enum(wrapper, name).values()) == declared
    assert b"public struct Prediction" in wrapper and b"func top(_ k: Int)" in wrapper
    assert b"max(by:" not in wrapper and b"where probabilities[index] > probabilities[best]" in wrapper  # ties: the first class, as predict
    golden = read_golden(tmp_path / "ios" / f"{name}.golden.json")
    assert len({c["inputs"][program.inputs[0].name]["shape"][1] for c in golden["calls"]}) >= 2  # two lengths
    report = check_golden(package, golden)
    assert report.status == "passed", [c.line() for c in report.checks]
    if kind == "text":
        assert b"public struct Tokenizer" in wrapper and b"make(int32: ids" in wrapper
        assert golden["calls"][0]["inputs"]["tokens"]["dtype"] == "int32"
        from coreml_lstm.classify import load_classifier

        tok = load_classifier(classifiers / "text").tokenizer_
        assert [p["ids"] for p in golden["tokenizer"]] == [tok.encode(p["text"]) for p in golden["tokenizer"]]
        assert any(1 in p["ids"] for p in golden["tokenizer"])  # out-of-vocabulary words are probed
        tests = (tmp_path / "ios" / f"{name}Tests.swift").read_bytes()
        assert b"testTokenizerFollowsTheStoredRules" in tests and b'forResource: "text-clf.vocab"' in tests
    tests = (tmp_path / "ios" / f"{name}Tests.swift").read_bytes()
    assert f'forResource: "{kind}-clf", withExtension: "mlmodelc"'.encode() in tests


def test_swift_with_another_models_checkpoint_names_the_package(models, tmp_path):
    """swift --checkpoint of another model fed its inputs to the executor unchecked ('unknown
    input ...; the model's inputs are ...', naming neither file); it says what verify says."""
    package = tmp_path / "mixture.mlpackage"
    assert CliRunner().invoke(main, ["export", str(models / "mixture"), str(package)]).exit_code == 0
    r = CliRunner().invoke(main, ["swift", str(package), "--checkpoint", str(models / "point"), "--out", str(tmp_path / "ios")])
    assert r.exit_code == 1 and r.output.startswith(f"Error: {package}: has no output 'forecast'; its outputs are ") and len(r.output.splitlines()) == 1, r.output
    assert not (tmp_path / "ios").exists()
