"""Parity checks for an app team's own test suite.

    from coreml_lstm.testing import assert_parity

    def test_the_shipped_package_matches_the_model():
        assert_parity(build_model(), "ios/Model.mlpackage")

:func:`assert_parity` runs :func:`coreml_lstm.verify` (the executor everywhere, Core ML too on
macOS) and raises ``AssertionError`` with a readable table of the checks when any failed or
none ran. The pytest plugin (:mod:`coreml_lstm.pytest_plugin`, registered as ``coreml_lstm``)
offers it as the ``coreml_parity`` fixture.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["assert_parity", "format_report"]


def assert_parity(module, package, inputs=None, **options):
    """Check a package against its torch module; raise AssertionError (with the table) unless it passes.

    Args:
        module: the torch module the package was converted from.
        package: the ``.mlpackage``.
        inputs: feeds (``{name: array}`` or a list of them); default: random inputs inside
            every flexible range.
        options: :func:`coreml_lstm.verify` options (``samples``, ``shapes``, ``mode``, ``atol``, ``rtol``).

    Returns:
        The :class:`~coreml_lstm.verify.Report` when it passed.
    """
    from .user_model import verify

    report = verify(module, package, inputs, **options)
    if report.status != "passed":
        what = "failed" if report.status == "failed" else "did not run (every check was skipped)"
        raise AssertionError(f"parity {what}: {Path(str(package)).name} vs {type(module).__name__}\n" + format_report(report))
    return report


def format_report(report) -> str:
    """The checks of a report as a fixed-width table, failures first."""
    rows = sorted(report.checks, key=lambda c: {"failed": 0, "passed": 1, "skipped": 2}[c.status])
    head = ("status", "output", "input size", "backend", "mode", "max abs", "max rel", "atol", "rtol")
    table = [head]
    for c in rows:
        tol = c.tolerance
        num = (lambda v: "-" if v is None else f"{v:.3g}")
        table.append((c.status.upper(), c.output, c.size or "-", c.backend, c.mode, num(c.max_abs), num(c.max_rel),
                      num(tol.atol) if tol else "-", num(tol.rtol) if tol else "-"))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    notes = [f"{c.status} {c.label} [{c.backend}]: {c.reason}" for c in rows if c.reason and c.status != "passed"]
    skipped = {c.reason for c in rows if c.status == "skipped"}
    return "\n".join(lines + [n for n in notes if not n.startswith("skipped")] + [f"skipped: {r}" for r in sorted(skipped)])
