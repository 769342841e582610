"""Benchmark result parsing and alignment (sfbulk_nb.results); a script, not a test.

Builds, in memory, a sent frame of N rows (default 1,000,000) and the result CSVs
Salesforce would return for it, split over several jobs, rows shuffled within each
result file, every value quoted as Salesforce does; about 5% of the rows fail (with
sf__Error texts that name the key, so most error texts are distinct). Then times:

- parse_result_csv over every result file (Arrow), next to pandas.read_csv with
  dtype=str, keep_default_na=False, na_filter=False as the yardstick;
- align for an upsert (unique external ids) and for an insert (5 columns, 10% of the
  rows exact copies of another row, so outcomes of identical rows are interchangeable);
- align for an update keyed by 15-character ids echoed as sent.

Each aligned result is checked against the known outcome of every row.

    /work/venv/bin/python bench/bench_align.py [--rows N] [--jobs K] [--repeat R]
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sfbulk_nb.results import JobOutcome, align, count_statuses, parse_result_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import report, timed  # noqa: E402

FAIL_RATE = 0.05


def result_csv(prefix: list[str], frame: pd.DataFrame) -> bytes:
    """A result file as Salesforce writes it: sf__ names quoted, the caller's names
    not, every value quoted."""
    header = ",".join([f'"{p}"' for p in prefix] + list(frame.columns[len(prefix):]))
    body = frame.to_csv(index=False, header=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    return (header + "\n" + body).encode()


def make_sent(n: int, rng: np.random.Generator, duplicate_share: float) -> pd.DataFrame:
    i = np.arange(n)
    if duplicate_share:
        # A share of the rows copy an earlier row exactly.
        copies = rng.random(n) < duplicate_share
        i = np.where(copies, rng.integers(0, np.maximum(i, 1)), i)
    cities = np.array(["Milano", "Zürich", "東京", "São Paulo", "Kraków, PL", ""])
    descriptions = np.array(["", "plain", 'The "gold" standard', "Line one\nLine two", "semi;colon|pipe"])
    return pd.DataFrame(
        {
            "Ext__c": pd.Series(i).map("EXT-{:08d}".format).to_numpy(),
            "Name": pd.Series(i).map("Company {}".format).to_numpy(),
            "BillingCity": cities[i % len(cities)],
            "AnnualRevenue": (i * 37 % 100_000).astype(str),
            "Description": descriptions[i % len(descriptions)],
        }
    ).astype("str")


def make_results(sent: pd.DataFrame, operation: str, jobs: int, rng: np.random.Generator, id_column: str | None):
    """Outcomes with result CSV bytes, plus the expected status of every row."""
    n = len(sent)
    failed = rng.random(n) < FAIL_RATE
    created = rng.random(n) < 0.5 if operation == "upsert" else np.full(n, operation == "insert")
    ids = pd.Series(np.arange(n)).map("001{:012d}AAA".format).to_numpy()
    expected = np.where(failed, "failed", np.where(created, "created", "updated"))
    bounds = np.linspace(0, n, jobs + 1).astype(int)
    raw = []
    for j in range(jobs):
        rows = np.arange(bounds[j], bounds[j + 1])
        ok = rows[~failed[rows]]
        bad = rows[failed[rows]]
        rng.shuffle(ok)
        rng.shuffle(bad)
        succ = pd.concat(
            [pd.DataFrame({"sf__Id": ids[ok], "sf__Created": np.where(created[ok], "true", "false")}),
             sent.iloc[ok].reset_index(drop=True)], axis=1)
        key = sent[id_column or "Name"].to_numpy()[bad]
        errors = pd.Series(key).map("DUPLICATE_VALUE:duplicate value found: {} duplicates value on record: Name --".format)
        fail = pd.concat(
            [pd.DataFrame({"sf__Id": np.full(len(bad), ""), "sf__Error": errors.to_numpy()}),
             sent.iloc[bad].reset_index(drop=True)], axis=1)
        raw.append((range(bounds[j], bounds[j + 1]), f"750{j:012d}AAA",
                    result_csv(["sf__Id", "sf__Created"], succ), result_csv(["sf__Id", "sf__Error"], fail)))
    return raw, expected


def bench(label, sent, operation, key, raw, expected, repeat):
    size = sum(len(s) + len(f) for _, _, s, f in raw)
    t_parse, outcomes = timed(lambda: [
        JobOutcome(pos, job, successful=parse_result_csv(s), failed=parse_result_csv(f))
        for pos, job, s, f in raw], repeat)
    t_pandas, _ = timed(lambda: [
        pd.read_csv(io.BytesIO(b), dtype=str, keep_default_na=False, na_filter=False)
        for _, _, s, f in raw for b in (s, f)], 1)
    t_align, aligned = timed(lambda: align(sent, operation, key, outcomes), repeat)
    # Identical rows may swap outcomes: compare the statuses per distinct row text.
    group = sent.groupby(list(sent.columns), sort=False).ngroup().to_numpy()
    def per_group(statuses):
        return pd.DataFrame({"g": group, "s": np.asarray(statuses)}).value_counts().sort_index()
    assert per_group(aligned["sf_status"]).equals(per_group(expected)), "wrong statuses"
    counts = count_statuses(aligned)
    print(f"{label}: {len(sent):,} rows, {len(raw)} jobs, {size / 1e6:.0f} MB of results "
          f"({counts['created']:,} created, {counts['updated']:,} updated, {counts['failed']:,} failed)")
    print(f"  parse_result_csv (Arrow)      {t_parse:7.3f} s")
    print(f"  pandas.read_csv dtype=str     {t_pandas:7.3f} s   (yardstick, not used)")
    print(f"  align                         {t_align:7.3f} s")
    report(f"{label}: parse_result_csv + align vs pandas.read_csv (s)", t_parse + t_align,
           t_pandas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    print(f"best of {args.repeat}")

    sent = make_sent(args.rows, rng, 0.0)
    raw, expected = make_results(sent, "upsert", args.jobs, rng, "Ext__c")
    bench("upsert by Ext__c", sent, "upsert", "Ext__c", raw, expected, args.repeat)

    sent = make_sent(args.rows, rng, 0.10)
    raw, expected = make_results(sent, "insert", args.jobs, rng, None)
    bench("insert, 10% identical rows", sent, "insert", None, raw, expected, args.repeat)

    ids15 = pd.Series(np.arange(args.rows)).map("001{:012d}".format).to_numpy()
    sent = pd.DataFrame({"Id": ids15, "Name": sent["Name"].to_numpy()}).astype("str")
    raw, expected = make_results(sent, "update", args.jobs, rng, "Id")
    bench("update by 15-char Id", sent, "update", None, raw, expected, args.repeat)


if __name__ == "__main__":
    main()
