"""Convert and verify every user-style model (tests/user_models.py) for every target and precision.

    python scripts/user_models.py                    # the whole product, a table on stdout
    python scripts/user_models.py --model tagger --target iOS17 --precision fp16

Each case: coreml_lstm.convert (trace, convert, save, then the executor against torch on random
inputs inside every flexible range). A case coremltools (or convert's own checks) refuses prints
the one-line reason; a case whose program uses an op the executor has no kernel for prints the
op; a kernel that fails on the program prints the op and the error. Exit 1 if any check failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coreml_lstm.errors import CoreMLLSTMError, ExportError, PackageError  # noqa: E402
from tests.user_models import MODELS, PRECISIONS, TARGETS  # noqa: E402


def run(model, target: str, precision: str, directory: Path) -> tuple[str, str]:
    import coreml_lstm

    module, examples = model.build()
    path = directory / f"{model.name}-{target}-{precision}.mlpackage"
    try:
        path, report = coreml_lstm.convert(module, examples, path, inputs=model.inputs, outputs=model.outputs, states=model.states,
                                           precision=precision, target=target, compress=model.compress, samples=model.samples)
    except PackageError as exc:  # a kernel that exists but fails on this program
        return "executor", str(exc)
    except ExportError as exc:
        return "refused", str(exc)
    except CoreMLLSTMError as exc:  # convert's own checks (e.g. states before iOS18)
        return "refused", str(exc)
    skipped = [c.reason for c in report.checks if c.backend == "executor" and c.status == "skipped"]
    if skipped:
        return "no kernel", skipped[0].removeprefix("the executor cannot run this program: ").split(";")[0]
    ran = report.ran
    worst = max((c.max_abs for c in ran if c.max_abs is not None), default=float("nan"))
    failed = [c.label for c in report.failed]
    return report.status, f"max abs {worst:.2e}" + (f"; failed: {', '.join(failed)}" if failed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a model name (substring; repeat)")
    parser.add_argument("--target", action="append", choices=TARGETS)
    parser.add_argument("--precision", action="append", choices=PRECISIONS)
    args = parser.parse_args()
    chosen = [m for m in MODELS if not args.model or any(s in m.name for s in args.model)]
    bad = 0
    with tempfile.TemporaryDirectory() as scratch:
        for model in chosen:
            for target, precision in model.configs():
                if (args.target and target not in args.target) or (args.precision and precision not in args.precision):
                    continue
                t = time.perf_counter()
                status, detail = run(model, target, precision, Path(scratch))
                bad += status == "failed"
                print(f"{model.name:<26} {target:<6} {precision:<5} {status:<10} {time.perf_counter() - t:5.1f}s  {detail}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
