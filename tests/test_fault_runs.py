"""Property-based runs under random faults: whatever the network and the org do, a load
returns a result, writes each row at most once, and says of each row what the org holds.

Each example draws a frame (inserts or upserts, some keys already in the org), a load's
options (jobs per frame, parallel jobs, lock retries) and a handful of faults from the local
org's injector: 5xx and 429 answers, dropped connections, answers lost after the org acted,
HTML bodies where JSON or CSV belongs, cut-off bodies, and lock contention on a share of
rows. Then the faults are cleared, the run is waited on, and the org is read back.

`tests/test_fault_runs.py -m slow` runs many more examples; FAULT_RUNS=N sets the number.
"""
from __future__ import annotations

import itertools
import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.org import default_retry

KEY = "customExtIdField__c"
NO_WAIT = {"sleep": lambda seconds: None}
FAULTS = {
    "503": dict(status=503),
    "429": dict(status=429, headers={"Retry-After": "0"}),
    "drop": dict(drop=True),
    "lost create": dict(after=True, drop=True, method="POST", path=r"/jobs/ingest$"),
    "lost upload": dict(after=True, drop=True, method="PUT", path=r"/batches$"),
    "lost close": dict(after=True, drop=True, method="PATCH"),
    "html": dict(status=200, body="<html><body>Maintenance</body></html>", method="GET"),
    "cut off": dict(truncate=25, method="GET", path=r"Results$"),
}
TOTALS = {"runs": 0, "rows": 0, "faults fired": 0, "rows lost": 0, "rows duplicated": 0}
_serial = itertools.count()


@st.composite
def loads(draw):
    operation = draw(st.sampled_from(["insert", "upsert"]))
    rows = draw(st.integers(1, 60))
    existing = draw(st.integers(0, rows)) if operation == "upsert" else 0
    faults = draw(st.lists(st.tuples(st.sampled_from(sorted(FAULTS)),
                                     st.sampled_from([0.1, 0.25, 0.5]),
                                     st.integers(0, 10_000)), max_size=3))
    locks = draw(st.sampled_from([0.0, 0.0, 0.2, 0.5]))
    options = dict(max_records=draw(st.sampled_from([None, 7, 25])),
                   parallel=draw(st.integers(1, 3)),
                   lock_retries=draw(st.integers(0, 3)))
    return operation, rows, existing, faults, locks, options


def run_under_faults(org, operation, rows, existing, faults, locks, options) -> None:
    tag = f"F{next(_serial):05d}"
    keys = [f"{tag}-{i}" for i in range(rows)]
    names = [f"{tag} name {i}" for i in range(rows)]
    if existing:  # some keys are in the org already: an upsert updates them
        seed = pd.DataFrame({KEY: keys[:existing], "Name": [f"{n} (old)" for n in names[:existing]]})
        assert sfb.upsert_df(seed, "Account", KEY, progress=False, **NO_WAIT).ok
    before = read(org, tag)
    for name, rate, seed in faults:
        org.faults.add(**FAULTS[name], rate=rate, seed=seed, times=None)
    if locks:
        org.faults.lock_rows(share=locks, seed=rows, times=None)
    df = pd.DataFrame({"Name": names}) if operation == "insert" else pd.DataFrame(
        {KEY: keys, "Name": names})
    try:
        if operation == "insert":
            res = sfb.insert_df(df, "Account", progress=False, **options, **NO_WAIT)
        else:
            res = sfb.upsert_df(df, "Account", KEY, progress=False, **options, **NO_WAIT)
    except errors.SFBulkError:
        res = None  # allowed only when no job exists: checked below
    finally:
        fired = sum(f.get("hits", 0) for f in org.faults.describe() if isinstance(f, dict))
        org.faults.clear()
    TOTALS["runs"] += 1
    TOTALS["rows"] += rows
    TOTALS["faults fired"] += fired
    if res is None:
        assert read(org, tag).equals(before), "an error was raised after rows were written"
        return
    if not res.done:
        res.wait()  # with the faults gone, whatever was left to learn is learnt
    after = read(org, tag)
    frame = res.frame
    assert len(frame) == rows and res.done
    by_name = after.groupby("Name").size()
    duplicated = int((by_name > 1).sum())
    TOTALS["rows duplicated"] += duplicated
    assert duplicated == 0, f"rows written twice: {list(by_name[by_name > 1].index)}"
    written = set(after["Name"])
    lost = 0
    for row in frame.itertuples():
        status = row.sf_status
        if status in ("created", "updated"):
            lost += row.Name not in written
            record = after[after["Name"] == row.Name]
            lost += len(record) != 1 or record["Id"].iloc[0] != row.sf_id
            was_there = operation == "upsert" and row.Index < existing
            assert status == ("updated" if was_there else "created")
        elif status in ("failed", "not_sent"):
            lost += row.Name in written  # written, but the result says it was not
            assert status != "failed" or row.sf_error_code
        else:
            lost += 1  # pending or unknown after the faults were cleared and waited on
    TOTALS["rows lost"] += lost
    assert lost == 0, frame[["Name", "sf_status", "sf_error_code", "sf_error_message"]]
    if not locks and not faults:
        assert res.ok


def read(org, tag: str) -> pd.DataFrame:
    """This example's live Account records: Id, key, Name (read from the org's store)."""
    from sfbulk_nb.localorg.store import table_name

    rows = org.store.query(f"SELECT Id, {KEY}, Name FROM {table_name(org.catalog.get('Account'))} "
                           "WHERE IsDeleted = 0 AND Name LIKE ?", (f"{tag}%",))
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["Id", KEY, "Name"])
    return frame.sort_values("Id").reset_index(drop=True)


EXAMPLES = int(os.environ.get("FAULT_RUNS", "200"))


@pytest.mark.timeout(1800)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(load=loads())
def test_no_row_is_lost_or_written_twice(org, load):
    connect_without_waits(org)
    run_under_faults(org, *load)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=5 * EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(load=loads())
def test_no_row_is_lost_or_written_twice_at_random(org, load):
    connect_without_waits(org)
    run_under_faults(org, *load)


def connect_without_waits(org) -> None:
    """The default org, with urllib3's retries as usual but without their backoff waits
    (the runs' own retries wait nothing either: NO_WAIT)."""
    sfb.org.set_default(sfb.Org(org.instance_url, org.access_token, api_version="66.0",
                                renew=lambda: org.access_token, kind="local",
                                retry=default_retry().new(backoff_factor=0)))


def test_report(capsys):
    """The totals of the runs above (pytest -s shows them): faults fired, rows lost and
    written twice (both 0, as the runs assert)."""
    with capsys.disabled():
        print("\nfault runs:", ", ".join(f"{k} {v:,}" for k, v in TOTALS.items()))
    assert TOTALS["rows lost"] == 0 and TOTALS["rows duplicated"] == 0
