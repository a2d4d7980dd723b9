"""Verify a fleet of packages: many (checkpoint, package) pairs from a manifest, in parallel.

Each pair runs through the ``verify`` command itself, in a worker process, so a fleet checks
exactly what ``coreml-lstm verify CHECKPOINT PACKAGE`` checks, for every kind of model that
command accepts. The results become one JUnit file with a test suite per package and a summary
table; the CLI exits 1 if any pair failed or could not be checked.

A manifest is a CSV file with a header, or a JSON list of objects (or ``{"pairs": [...]}``), with
``checkpoint`` (or ``model``) and ``package`` and, optionally, ``name`` (default: the package
path as written), ``csv`` (a table to compare on) and ``mode`` (fp32 or fp16). Relative paths
are taken from the manifest's folder.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ConfigError

KEYS = ("name", "checkpoint", "model", "package", "csv", "mode")
MODES = ("fp32", "fp16")
MAX_ENTRIES = 100_000  # a bound on what a manifest may ask for


@dataclass(frozen=True)
class Entry:
    name: str
    checkpoint: str
    package: str
    csv: str | None = None
    mode: str | None = None


@dataclass
class Result:
    entry: Entry
    status: str  # passed | failed | skipped | error (the pair could not be checked)
    seconds: float
    samples: int | None = None
    checks: list[dict] = field(default_factory=list)
    message: str = ""  # the error line, for status "error"
    junit: str | None = field(default=None, repr=False)  # the verify command's JUnit XML

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for c in self.checks:
            out[c["status"]] = out.get(c["status"], 0) + 1
        return out

    def worst(self) -> float | None:
        errors = [c["max_abs"] for c in self.checks if c.get("max_abs") is not None]
        return max(errors) if errors else None

    def to_dict(self) -> dict:
        return {"entry": asdict(self.entry), "status": self.status, "seconds": round(self.seconds, 3), "samples": self.samples,
                "message": self.message, "checks": self.checks}


# -- the manifest ----------------------------------------------------------------------------


def read_manifest(path: str | Path) -> list[Entry]:
    """The pairs of a CSV or JSON manifest.

    Raises:
        ConfigError: unreadable, not CSV or JSON, empty, an unknown key, a missing checkpoint or
            package, a bad mode, or two pairs with the same name (one line naming the row).
    """
    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read the manifest ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{label}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if isinstance(data, dict):
            data = data.get("pairs")
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise ConfigError(f"{label}: expected a JSON list of objects (or {{\"pairs\": [...]}}) with checkpoint and package")
        rows = [(f"item {i + 1}", d) for i, d in enumerate(data)]
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            raise ConfigError(f"{label}: the manifest is empty")
        rows = [(f"row {i + 1}", {k.strip(): (v or "").strip() for k, v in r.items() if k is not None}) for i, r in enumerate(reader)]
    else:
        raise ConfigError(f"{label}: a manifest is a .csv or .json file")
    if not rows:
        raise ConfigError(f"{label}: the manifest lists no pairs")
    if len(rows) > MAX_ENTRIES:
        raise ConfigError(f"{label}: {len(rows)} pairs; at most {MAX_ENTRIES}")
    base = path.parent
    entries, names = [], {}
    for where, row in rows:
        unknown = sorted(k for k in row if k not in KEYS)
        if unknown:
            raise ConfigError(f"{label}: {where}: unknown key {unknown[0]!r}; keys are {', '.join(KEYS)}")
        model = row.get("checkpoint") or row.get("model")
        package = row.get("package")
        for key, value in (("checkpoint", model), ("package", package)):
            if not value or not isinstance(value, str):
                raise ConfigError(f"{label}: {where}: no {key}")
        mode = row.get("mode") or None
        if mode is not None and mode not in MODES:
            raise ConfigError(f"{label}: {where}: mode {mode!r} is not one of {', '.join(MODES)}")
        name = str(row.get("name") or package)
        if name in names:
            raise ConfigError(f"{label}: {where}: the name {name!r} is also {names[name]}'s; names must differ")
        names[name] = where
        table = row.get("csv") or None
        entries.append(Entry(name, str(base / model), str(base / package), str(base / table) if table else None, mode))
    return entries


# -- running ---------------------------------------------------------------------------------


def verify_entry(entry: Entry, options: tuple[str, ...] = ()) -> Result:
    """Run ``coreml-lstm verify`` on one pair in this process and collect its report and JUnit XML.

    Args:
        entry: the pair.
        options: further verify options for every pair (e.g. ``("--limit", "16")``).
    """
    import click

    from .cli import main

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coreml-lstm-fleet-") as tmp:
        junit = Path(tmp) / "verify.xml"
        args = ["verify", entry.checkpoint, entry.package, "--json", "--junit", str(junit), *options]
        if entry.csv:
            args += ["--csv", entry.csv]
        if entry.mode:
            args += ["--mode", entry.mode]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                returned = main.main(args, prog_name="coreml-lstm", standalone_mode=False)
                code = returned if isinstance(returned, int) else 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except click.ClickException as exc:
                print(f"Error: {exc.format_message()}", file=err)
                code = exc.exit_code
            except Exception as exc:  # a bug, not the pair's fault: still one line, and the fleet goes on
                print(f"Error: {type(exc).__name__}: {exc}", file=err)
                code = 1
        seconds = time.perf_counter() - start
        xml = junit.read_text() if junit.is_file() else None
    try:
        report = json.loads(out.getvalue())
    except json.JSONDecodeError:
        report = None
    if report is None:
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        message = next((line for line in reversed(lines) if line.startswith("Error:")), lines[-1] if lines else f"verify exited {code}")
        return Result(entry, "error", seconds, message=message.removeprefix("Error: "))
    return Result(entry, report["status"], seconds, report.get("samples"), report.get("checks", []), junit=xml)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)  # the workers share the cores


def run_fleet(entries: list[Entry], *, jobs: int = 1, options: tuple[str, ...] = (), on_result=None) -> list[Result]:
    """Verify every pair, ``jobs`` at a time in worker processes; results in manifest order.

    Args:
        on_result: called with each result as it arrives (for progress lines).
    """
    if jobs < 1:
        raise ConfigError(f"jobs: must be >= 1, got {jobs!r}")
    if jobs == 1 or len(entries) == 1:
        results = []
        for e in entries:
            results.append(verify_entry(e, options))
            if on_result:
                on_result(results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn: a fresh interpreter per worker, never a fork of a process that may hold torch's threads
    context = multiprocessing.get_context("spawn")
    results: list[Result | None] = [None] * len(entries)
    with ProcessPoolExecutor(max_workers=min(jobs, len(entries)), mp_context=context, initializer=_worker_init, initargs=(threads,)) as pool:
        futures = {pool.submit(verify_entry, e, options): i for i, e in enumerate(entries)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # the worker itself died (killed, out of memory)
                results[i] = Result(entries[i], "error", 0.0, message=f"the worker process failed ({type(exc).__name__}: {exc})")
            if on_result:
                on_result(results[i])
    return results


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status in ("failed", "error")]


# -- reporting -------------------------------------------------------------------------------


def to_junit(results: list[Result]) -> str:
    """One ``<testsuites>`` with a ``<testsuite>`` per pair, named by the pair's name.

    A pair that ran keeps the verify command's test cases (one per output and check; skipped
    checks stay ``<skipped>``); a pair that could not be checked is one ``<error>`` test case.
    Every case's classname starts with the pair's name (unique in a manifest): two stores'
    ``model.mlpackage`` are two tests to a dashboard, not one that passed and failed.
    """
    root = ET.Element("testsuites", name="coreml-lstm verify --manifest")
    for r in results:
        suite = None
        if r.junit:
            parsed = ET.fromstring(r.junit)
            suite = parsed if parsed.tag == "testsuite" else parsed.find("testsuite")
        if suite is None:
            suite = ET.Element("testsuite", tests="1", failures="0", errors="1", skipped="0")
            case = ET.SubElement(suite, "testcase", classname=Path(r.entry.package).name, name="verify")
            ET.SubElement(case, "error", message=r.message, type="VerifyError").text = r.message
        suite.set("name", r.entry.name)
        for case in suite.iter("testcase"):
            case.set("classname", f"{r.entry.name}.{case.get('classname')}")
        suite.set("time", f"{r.seconds:.3f}")
        properties = suite.find("properties")
        if properties is None:
            properties = ET.Element("properties")
            suite.insert(0, properties)
        ET.SubElement(properties, "property", name="checkpoint", value=r.entry.checkpoint)
        if properties.find("property[@name='package']") is None:
            ET.SubElement(properties, "property", name="package", value=r.entry.package)
        root.append(suite)
    totals = {k: sum(int(s.get(k, "0")) for s in root) for k in ("tests", "failures", "errors", "skipped")}
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def format_table(results: list[Result]) -> str:
    """One line per pair (status, checks passed / failed / skipped, worst max abs error, seconds)
    and a closing count; an error's message follows its line."""
    width = max([len("package"), *(len(r.entry.name) for r in results)])
    lines = [f"{'package':<{width}}  {'status':<7} {'pass':>5} {'fail':>5} {'skip':>5} {'max |error|':>12} {'seconds':>8}"]
    for r in results:
        c = r.counts()
        worst = "" if r.worst() is None else f"{r.worst():.3g}"
        lines.append(f"{r.entry.name:<{width}}  {r.status.upper():<7} {c['passed']:>5} {c['failed']:>5} {c['skipped']:>5} {worst:>12} {r.seconds:>8.2f}")
        if r.status == "error":
            lines.append(f"{'':<{width}}  {r.message}")
    bad = failed(results)
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "error", "skipped")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "passed")
    lines.append(f"{len(results)} packages: {summary}" + (f" (not passed: {', '.join(r.entry.name for r in bad)})" if bad else ""))
    return "\n".join(lines)
