"""Every benchmark, one table: each figure against its baseline measured in the same run.

    python -m bench                   # every benchmark at its own default size (1M rows)
    python -m bench --quick           # 100,000 rows, one repeat: minutes, not an hour
    python -m bench --rows 200000     # one size for all
    python -m bench --only query,preview

Each script runs in its own process (as it would alone) and appends its figures to a
report file (benchlib.report); this prints them as one table: the figure, its baseline,
the ratio and the target where the project has one (MET / MISSED). The scripts' own
output goes to bench-logs/<script>.log for the details. A ratio is only meaningful
within its run: these machines are noisy, so no absolute time is compared across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# script, extra arguments (what the script needs beyond --rows / --repeat)
BENCHES = [
    ("bench_encode", []),
    ("bench_validate", []),
    ("bench_align", []),
    ("bench_csvparse", []),
    ("bench_localorg_upsert", []),
    ("bench_e2e_upsert", []),
    ("bench_upsert_csv", []),
    ("bench_query", ["--pyarrow"]),
    ("bench_preview", []),
]
# Scripts that take no --repeat (they repeat through their clients' own runs).
_NO_REPEAT = {"bench_localorg_upsert"}


def _met(ratio: float, target: str) -> str:
    if not target:
        return ""
    op, _, bound = target.partition(" ")
    bound_value = float(bound)
    ok = {"<=": ratio <= bound_value, "<": ratio < bound_value,
          ">=": ratio >= bound_value, ">": ratio > bound_value}[op]
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows for every benchmark (default: each "
                        "script's own, 1,000,000 for most)")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 rows and one repeat (unless --rows says otherwise)")
    parser.add_argument("--only", help="comma-separated script names, with or without "
                        "the bench_ prefix")
    parser.add_argument("--logs", default="bench-logs", help="folder for each script's output")
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else None)
    chosen = BENCHES
    if args.only:
        wanted = {w.strip().removeprefix("bench_") for w in args.only.split(",")}
        chosen = [b for b in BENCHES if b[0].removeprefix("bench_") in wanted]
        unknown = wanted - {b[0].removeprefix("bench_") for b in chosen}
        if unknown:
            parser.error(f"no benchmark {', '.join(sorted(unknown))}; there are "
                         f"{', '.join(b[0].removeprefix('bench_') for b in BENCHES)}")
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        report.touch()
        failures = []
        for script, extra in chosen:
            command = [sys.executable, str(HERE / f"{script}.py"), *extra]
            if rows:
                command += ["--rows", str(rows)]
            if args.quick and script not in _NO_REPEAT:
                command += ["--repeat", "1"]
            started = time.perf_counter()
            print(f"{script} ...", end=" ", flush=True)
            with open(logs / f"{script}.log", "w", encoding="utf-8") as log:
                done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, "SFBULK_BENCH_REPORT": str(report)})
            took = time.perf_counter() - started
            print(f"{'done' if done.returncode == 0 else 'FAILED'} in {took:,.0f} s",
                  flush=True)
            if done.returncode:
                failures.append(script)
        figures = [json.loads(line) for line in report.read_text().splitlines() if line]
    print()
    print(f"{'benchmark':<22} {'figure':<62} {'value':>10} {'baseline':>10} {'ratio':>7}  "
          "target")
    for f in figures:
        ratio = f["value"] / f["baseline"] if f["baseline"] else float("nan")
        target = f["target"]
        verdict = _met(ratio, target)
        print(f"{f['bench'].removeprefix('bench_'):<22} {f['what']:<62} {f['value']:>10,.2f} "
              f"{f['baseline']:>10,.2f} {ratio:>6.2f}x  {target} {verdict}".rstrip())
    if failures:
        print(f"\nfailed (see {logs}/): {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
