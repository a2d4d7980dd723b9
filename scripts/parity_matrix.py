"""The whole conversion matrix: every case converted, saved, run by the executor, compared with torch.

    python scripts/parity_matrix.py            # all cases
    python scripts/parity_matrix.py --fast     # the CI subset
    python scripts/parity_matrix.py -k gru     # cases whose name contains "gru"

Prints one row per case (max abs / rel error, the bar, pass or FAIL) and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import sys
import time

from coreml_lstm.zoo import cases, run_case


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="only the CI subset")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    args = ap.parse_args()
    selected = [c for c in cases() if (c.fast or not args.fast) and args.k in c.name]
    print(f"{'case':<34} {'target':<6} {'prec':<5} {'max abs':>10} {'max rel':>10} {'bar':>7}  result")
    failures = 0
    start = time.perf_counter()
    for case in selected:
        try:
            r = run_case(case)
            status = "pass" if r.passed else "FAIL"
            row = f"{case.name:<34} {case.target:<6} {case.precision:<5} {r.max_abs:>10.3g} {r.max_rel:>10.3g} {case.bar:>7g}  {status}"
            if r.detail:
                row += f"  ({r.detail})"
        except Exception as exc:  # a case that cannot even run is a failure, with the reason
            status, row = "FAIL", f"{case.name:<34} {case.target:<6} {case.precision:<5} {'-':>10} {'-':>10} {case.bar:>7g}  FAIL ({type(exc).__name__}: {exc})"
        failures += status == "FAIL"
        print(row, flush=True)
    print(f"{len(selected) - failures} passed, {failures} failed in {time.perf_counter() - start:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
