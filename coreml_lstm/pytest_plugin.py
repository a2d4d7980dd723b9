"""pytest plugin (entry point ``pytest11: coreml_lstm``): the ``coreml_parity`` fixture.

    def test_package(coreml_parity):
        coreml_parity(build_model(), "ios/Model.mlpackage")            # raises with a table on failure

The fixture is :func:`coreml_lstm.testing.assert_parity`; the terminal summary lists every
package checked in the session with its status. Importing the plugin costs nothing: torch and
the converter load only when a test calls the fixture.
"""

from __future__ import annotations

import pytest

_CHECKED = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_CHECKED] = []


@pytest.fixture
def coreml_parity(request):
    """Check a package against its torch module: ``coreml_parity(module, package, inputs=None, **options)``."""
    from .testing import assert_parity

    checked = request.config.stash[_CHECKED]

    def check(module, package, inputs=None, **options):
        from .errors import CoreMLLSTMError

        try:
            report = assert_parity(module, package, inputs, **options)
        except AssertionError:
            checked.append((str(package), "failed"))
            raise
        except CoreMLLSTMError:  # no check ran (a bad option, a module that fails on the inputs): listed as such
            checked.append((str(package), "error"))
            raise
        checked.append((str(package), report.status))
        return report

    return check


def pytest_terminal_summary(terminalreporter, config):
    checked = config.stash.get(_CHECKED, [])
    if not checked:
        return
    terminalreporter.section("coreml-lstm parity")
    for package, status in checked:
        terminalreporter.write_line(f"{status.upper():<7} {package}")
