"""Checking a frame before sending vs encoding it (a script, not a test).

    python bench/bench_validate.py [--rows 1000000] [--repeat 3]

One frame of N rows x 10 Account columns (the upsert key, text, a restricted picklist,
Int64 with blanks, floats, booleans, dates, tz-aware datetimes, a phone and a city), timed
in the same run, best of --repeat:

* validate.check(df, describe, "upsert", key): every check of validate_df, no I/O (the
  describe is the shipped schema)
* encode.iter_chunks(df, field_types=...): the CSV of the same frame, every chunk taken
  (what a load sends)

The issue's target: validating costs no more than encoding (ratio <= 1). Also timed: the
same frame with every 50th row broken (bad picklist, Yes/No, US dates, $ amounts as
text...), where the checks also build their Problems frame and hints.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib import resources

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import report  # noqa: E402

from sfbulk_nb import encode, validate  # noqa: E402

KEY = "customExtIdField__c"
INDUSTRIES = ["Banking", "Technology", "Retail", "Healthcare", "Energy", "Education", "Media"]
CITIES = ["Paris", "Lyon", "Berlin", "Madrid", "Zürich", "Kraków", "Milano, IT"]


def account_describe() -> dict:
    path = resources.files("sfbulk_nb.localorg").joinpath("schema", "Account.json")
    return json.loads(path.read_text(encoding="utf-8"))


def make_frame(rows: int, seed: int = 0, broken_every: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    employees = pd.Series(rng.integers(1, 50_000, rows), dtype="Int64")
    employees[rng.random(rows) < 0.1] = pd.NA
    df = pd.DataFrame({
        KEY: pd.Series(np.arange(rows)).map("K{:08d}".format),
        "Name": pd.Series(np.arange(rows)).map("Account {}".format),
        "Industry": np.array(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), rows)],
        "NumberOfEmployees": employees,
        "AnnualRevenue": np.round(rng.lognormal(14, 1.5, rows)),
        "Active__c": rng.random(rows) < 0.8,
        "Founded__c": (pd.Timestamp("1950-01-01")
                       + pd.to_timedelta(rng.integers(0, 26_000, rows), unit="D")).date,
        "LastReviewed__c": pd.Series(pd.Timestamp("2024-01-01", tz="Europe/Paris")
                                     + pd.to_timedelta(rng.integers(0, 10**10, rows), unit="ms")),
        "Phone": pd.Series(rng.integers(10**9, 10**10, rows)).map("+33 {}".format),
        "BillingCity": np.array(CITIES)[rng.integers(0, len(CITIES), rows)],
    })
    if broken_every:
        bad = np.arange(0, rows, broken_every)
        for column in ("Industry", "Active__c", "Founded__c", "AnnualRevenue"):
            df[column] = df[column].astype(object)
        df.loc[bad, "Industry"] = "banking"
        df["Active__c"] = df["Active__c"].map({True: "Yes", False: "No"})
        df["Founded__c"] = pd.to_datetime(df["Founded__c"]).dt.strftime("%m/%d/%Y")
        df["AnnualRevenue"] = df["AnnualRevenue"].map("${:,.0f}".format)
    return df


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    describe = account_describe()
    types = {f["name"]: f["type"] for f in describe["fields"]}
    print(f"{args.rows:,} rows x 10 columns, best of {args.repeat}")
    for label, df in (("clean", make_frame(args.rows)),
                      ("messy (every 50th row broken, dates/flags/amounts as text)",
                       make_frame(args.rows, broken_every=50))):
        t_check, checked = best_of(args.repeat, lambda df=df: validate.check(
            df, describe, "upsert", KEY))
        t_encode, chunks = best_of(args.repeat, lambda df=df: list(encode.iter_chunks(
            df, field_types=types, max_bytes=100_000_000)))
        problems = len(checked.problems)
        print(f"\n{label}: {problems:,} problem(s) in {len(checked.problems.summary())} group(s)")
        print(f"  validate.check        {t_check:7.2f} s")
        print(f"  encode.iter_chunks    {t_encode:7.2f} s   "
              f"({sum(len(c.data) for c in chunks) / 1e6:,.0f} MB)")
        print(f"  ratio validate/encode {t_check / t_encode:7.2f}x  (target <= 1)")
        report(f"validate vs encode, {label.split(' ')[0]} frame (s)", t_check, t_encode,
               "<= 1" if label == "clean" else "")


if __name__ == "__main__":
    main()
