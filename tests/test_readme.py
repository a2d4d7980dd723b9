"""The README's "Your own model" section runs as written: its Python blocks in order (one
namespace, in a scratch directory), then its `coreml-lstm` commands, then the pytest example."""

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from coreml_lstm.cli import main
from coreml_lstm.testing import assert_parity

from .test_swift import syntax_errors

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"### {title}\n")
    end = text.index("\n### ", start + 1)
    return text[start:end]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_your_own_model_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = section("Your own model")
    python, bash = blocks(text, "python"), blocks(text, "bash")
    assert len(python) == 4 and len(bash) == 1
    namespace = {"__name__": "readme"}
    for code in python:
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["report"].status == "passed"
    assert "passed" in capsys.readouterr().out
    # The pytest example, with the fixture the plugin provides.
    namespace["test_the_shipped_package_matches_the_model"](coreml_parity=assert_parity)
    for line in bash[0].splitlines():
        args = shlex.split(line, comments=True)
        assert args[0] == "coreml-lstm"
        r = CliRunner().invoke(main, args[1:])
        assert r.exit_code == 0, f"{line}\n{r.output}"
    assert (tmp_path / "har-cli.mlpackage" / "Manifest.json").is_file() and (tmp_path / "reports" / "har.xml").is_file()
    written = sorted(p.name for p in (tmp_path / "ios").iterdir())
    assert written == ["Har.golden.json", "Har.swift", "HarTests.swift"]
    swift = (tmp_path / "ios" / "Har.swift").read_bytes()
    assert syntax_errors(swift) == [] and syntax_errors((tmp_path / "ios" / "HarTests.swift").read_bytes()) == []
    assert b"public func predict(x: [Float], xShape: [Int]) throws -> Output" in swift and b"public let probabilities: Tensor" in swift
