"""Cost of checking a CQL2 filter: the `cql2` package's parse + validate() (the old path) against
the API's own path (limits scan, parse, compile_cql2), per nesting depth of `NOT (...)`.

Each case runs in a fresh process so that its peak RSS is its own; the validator's schema is
compiled on first use, which the first request of every API worker paid.

    python -m benchmarks.filter_parse [--depths 0,10,50,100] [--json filter_parse.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

# validate: cql2.parse_text(...).validate(), what the API did; api: engine.params' check now.
CASES = ("validate", "api")
WARM_REPEATS = 3


def _filter(depth: int) -> str:
    return "NOT (" * depth + "\"grid:row\" = 1 AND caption LIKE '%river%'" + ")" * depth


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_one(case: str, depth: int) -> dict[str, object]:
    """In this process: seconds, outcome and peak-RSS growth of one check (imports excluded)."""
    import cql2

    from geomelt.engine.errors import ApiError
    from geomelt.engine.params import _normalise_cql2

    text = _filter(depth)

    def check() -> str:
        try:
            if case == "validate":
                cql2.parse_text(text).validate()
            else:
                _normalise_cql2(text, "cql2-text")
        except (cql2.ValidationError, ApiError) as exc:
            return f"refused: {str(exc)[:40]}"
        return "accepted"

    before_mb = _peak_mb()
    start = time.perf_counter()
    outcome = check()
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(WARM_REPEATS):
        check()
    return {
        "case": case,
        "depth": depth,
        "first_s": first_s,
        "warm_s": (time.perf_counter() - start) / WARM_REPEATS,
        "peak_rss_growth_mb": _peak_mb() - before_mb,
        "outcome": outcome,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="0,10,50,100")
    parser.add_argument("--json", type=Path, default=Path("filter_parse.json"))
    parser.add_argument("--one", nargs=2, metavar=("CASE", "DEPTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run_one(args.one[0], int(args.one[1]))))
        return
    rows = []
    for depth in (int(d) for d in args.depths.split(",")):
        for case in CASES:
            command = [sys.executable, "-m", "benchmarks.filter_parse", "--one", case, str(depth)]
            run = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603 - our own module
            output = run.stdout
            rows.append(json.loads(output))
    print(f"{'case':<10} {'depth':>5} {'first s':>9} {'warm s':>9} {'RSS growth MB':>14}  outcome")
    for row in rows:
        print(
            f"{row['case']:<10} {row['depth']:>5} {row['first_s']:>9.4f} {row['warm_s']:>9.4f} "
            f"{row['peak_rss_growth_mb']:>14.1f}  {row['outcome']}"
        )
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
