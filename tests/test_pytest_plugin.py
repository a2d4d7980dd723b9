"""The pytest plugin in an app's own repository: a temporary project holding one module and one
package; `pytest` there passes, and fails with a readable table when the package is swapped.

The inner pytest loads the plugin by the module the ``pytest11`` entry point in pyproject.toml
names, with entry-point autoloading off: the same whether or not this checkout is installed."""

import shutil
import tomllib
from pathlib import Path

import pytest
import torch

import coreml_lstm

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

MODEL = '''
import torch
from torch import nn


class Keyword(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        y, _ = self.gru(x)
        return torch.softmax(self.fc(y[:, -1]), -1)


def build(seed=0):
    torch.manual_seed(seed)
    return Keyword().eval()
'''

TEST = '''
from model import build


def test_the_shipped_package_matches_the_model(coreml_parity):
    report = coreml_parity(build(), "keyword.mlpackage", samples=3)
    assert report.status == "passed"
'''


def entry_point() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["pytest11"]["coreml_lstm"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    namespace = {}
    exec(MODEL, namespace)
    for seed in (0, 1):
        coreml_lstm.convert(namespace["build"](seed), torch.randn(1, 12, 8), d / f"seed{seed}.mlpackage",
                            inputs={"x": (1, "1..30", 8)}, samples=1)
    return d


def project(pytester, packages, package: str):
    pytester.makepyfile(model=MODEL, test_keyword=TEST)
    shutil.copytree(packages / package, pytester.path / "keyword.mlpackage")


def test_the_entry_point_names_the_plugin_module():
    assert entry_point() == "coreml_lstm.pytest_plugin"


def test_pytest_with_the_plugin_passes(pytester, packages, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project(pytester, packages, "seed0.mlpackage")
    result = pytester.runpytest("-p", entry_point(), "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*coreml-lstm parity*", "PASSED*keyword.mlpackage"])


def test_a_swapped_package_fails_readably(pytester, packages, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project(pytester, packages, "seed1.mlpackage")
    result = pytester.runpytest("-p", entry_point(), "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: parity failed: keyword.mlpackage vs Keyword",
        "*status*output*input size*backend*mode*max abs*max rel*atol*rtol",
        "*FAILED*output*x (1, 1, 8)*executor*fp32*",
        "*skipped: the Core ML runtime needs macOS*",
    ])
    result.stdout.fnmatch_lines(["*coreml-lstm parity*", "FAILED*keyword.mlpackage"])


def test_a_check_that_could_not_run_is_listed_as_an_error(pytester, packages, monkeypatch):
    """A ConfigError (here: inputs naming no input of the package) ran no check: the summary
    lists the package as ERROR (it was left out, as if never checked)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    project(pytester, packages, "seed0.mlpackage")
    pytester.makepyfile(test_keyword=TEST.replace('samples=3)', 'inputs={"nope": [[0.0]]})'))
    result = pytester.runpytest("-p", entry_point(), "-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*coreml-lstm parity*", "ERROR*keyword.mlpackage"])
