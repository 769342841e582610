"""The preview of a load (what it would change, cell by cell) vs a query_df of the same rows
and columns, against one local org server.

Setup: a fresh local org database loaded with N Account rows (bench_query's frame: 7
columns of every kind, keyed by customExtIdField__c). The analyst's frame is that frame
with 1% of the rows edited in two columns. Then, in this process, alternating:

  A preview   plan = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True);
              plan.diff(); plan.summary()  -- the lookup (one Bulk query of the object
              above 2,000 keys), the comparison of every cell, the diff frame, the summary
  B baseline  sfb.query_df("SELECT Id, <the same 8 columns> FROM Account")

Target (issue 14): A at most 2x B. Wall time, best of --repeat; the server runs in its own
process, so both include its query job.

    python bench/bench_preview.py [--rows 1000000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_query import API_VERSION, KEY, build_frame  # noqa: E402
from benchlib import report, start_server, stop_server  # noqa: E402

COLUMNS = [KEY, "Name", "NumberOfEmployees", "AnnualRevenue", "Active__c", "Founded__c",
           "LastReviewed__c", "Industry"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    import sfbulk_nb as sfb

    with tempfile.TemporaryDirectory() as tmp:
        server, url, token = start_server(Path(tmp) / "org.sqlite3")
        try:
            org = sfb.connect(instance_url=url, access_token=token, api_version=API_VERSION,
                              quiet=True)
            df = build_frame(args.rows)
            t0 = time.perf_counter()
            assert sfb.upsert_df(df, "Account", KEY, org=org, progress=False).ok
            print(f"loaded {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
            edited = df.copy()
            rng = np.random.default_rng(5)
            rows = rng.choice(len(df), size=max(1, len(df) // 100), replace=False)
            edited.loc[rows, "Name"] = edited.loc[rows, "Name"] + " (edited)"
            edited.loc[rows, "NumberOfEmployees"] = 1
            soql = f"SELECT Id, {', '.join(COLUMNS)} FROM Account"
            best = {"preview": float("inf"), "query_df": float("inf")}
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                frame = sfb.query_df(soql, org=org, progress=False)
                best["query_df"] = min(best["query_df"], time.perf_counter() - t0)
                assert len(frame) == len(df)
                del frame
                t0 = time.perf_counter()
                plan = sfb.dry_run(edited, "Account", "upsert", KEY, lookup=True, org=org)
                diff = plan.diff()
                summary = plan.summary()
                best["preview"] = min(best["preview"], time.perf_counter() - t0)
                assert summary.update == len(rows), summary
                changed_cells = len(diff)
                calls = plan.lookup_calls
                del plan, diff, summary
        finally:
            stop_server(server)
    ratio = best["preview"] / best["query_df"]
    print(f"rows {args.rows:,}, {len(rows):,} edited ({changed_cells:,} changed cells), "
          f"lookup {calls} API calls")
    print(f"{'path':<10} {'wall s':>8}")
    print(f"{'query_df':<10} {best['query_df']:>8.2f}")
    print(f"{'preview':<10} {best['preview']:>8.2f}   {ratio:.2f}x query_df (target <= 2x)")
    report("preview (lookup, diff, summary) vs query_df (s)", best["preview"], best["query_df"],
           "<= 2")


if __name__ == "__main__":
    main()
