"""The run journal and resume: a run survives a kernel restart or a killed process, and a
frame whose run did not finish is not sent twice."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb import journal as run_journal
from sfbulk_nb.localorg import LocalOrg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def names(n: int, prefix: str = "J") -> pd.DataFrame:
    return pd.DataFrame({"Name": [f"{prefix}{i:05d}" for i in range(n)]})


def accounts(org) -> pd.Series:
    import requests

    out, url = [], f"{org.instance_url}/services/data/v66.0/query"
    params = {"q": "SELECT Name FROM Account"}
    while url:
        page = requests.get(url, params=params, timeout=30,
                            headers={"Authorization": f"Bearer {org.access_token}"}).json()
        out += [r["Name"] for r in page["records"]]
        url = page.get("nextRecordsUrl") and org.instance_url + page["nextRecordsUrl"]
        params = None
    return pd.Series(out, dtype=object)


def test_a_run_is_journalled_privately_without_secrets(org, journal):
    client = sfb.connect(org)
    res = sfb.upsert_df(pd.DataFrame({"customExtIdField__c": ["A"], "Name": ["a"]}), "Account",
                        "customExtIdField__c", progress=False)
    record = journal / f"{res._run.run_id}.json"
    data = json.loads(record.read_text())
    assert data["state"] == "done" and data["sobject"] == "Account" and data["key"] == "customExtIdField__c"
    assert data["jobs"][0]["stage"] == "finished" and data["jobs"][0]["job_id"] == res.jobs["job_id"][0]
    assert org.access_token not in record.read_text() and "a" not in data["jobs"][0]
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    runs = sfb.runs()
    assert runs.iloc[0]["run_id"] == res._run.run_id and runs.iloc[0]["state"] == "done"
    assert runs.iloc[0]["rows"] == 1 and runs.iloc[0]["finished_jobs"] == 1
    assert res._run.run_id in repr(res)
    client.close()


def test_a_frame_whose_run_did_not_finish_is_not_sent_twice(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=500) as local:
        sfb.connect(local)
        df = names(400)
        first = sfb.insert_df(df, "Account", timeout=0.05, progress=False)
        assert not first.done
        with pytest.raises(errors.RunInProgressError, match="has not finished") as caught:
            sfb.insert_df(df, "Account", progress=False)
        assert caught.value.run_id == first._run.run_id
        assert f"sfb.resume({first._run.run_id!r}, df)" in str(caught.value)
        sfb.insert_df(df.head(2), "Account", progress=False)  # another frame is no trouble
        again = sfb.resume(first._run.run_id, df)  # in the same process too
        assert again.ok and again.counts["created"] == 400
        assert first.wait().ok  # the first result finishes the same run
        assert len(accounts(local)) == 402


def test_resume_checks_the_frame_and_names_the_way(org):
    sfb.connect(org)
    df = names(3)
    res = sfb.insert_df(df, "Account", progress=False)
    with pytest.raises(errors.InputError, match="needs the frame"):
        sfb.resume(res._run.run_id)
    with pytest.raises(errors.InputError, match="not the one run"):
        sfb.resume(res._run.run_id, names(3, "X"))
    with pytest.raises(errors.InputError, match="has no run 'r-nope'"):
        sfb.resume("r-nope", df)
    again = sfb.resume(df=df)  # the latest run of this frame: done, so read back as it was
    assert again.ok and list(again.frame["sf_id"]) == list(res.frame["sf_id"])
    assert len(accounts(org)) == 3  # nothing sent again


def test_the_fingerprint_follows_values_not_layout():
    import datetime as dt

    import numpy as np

    frame = pd.DataFrame({
        "text": pd.Series(["a", "b,c", None, "ünï"], dtype="string"),
        "int": pd.array([1, None, 3, 4], dtype="Int64"),
        "float": [1.5, np.nan, 0.0, -2.0],
        "flag": [True, False, True, False],
        "day": [dt.date(2020, 1, 1), None, dt.date(2021, 2, 3), dt.date(1999, 12, 31)],
        "when": pd.to_datetime(["2020-01-01", None, "2021-01-01", "2022-01-01"]).tz_localize("UTC"),
        "mixed": ["x", 1, None, 2.5],  # objects Arrow cannot hold: pandas' hash
        "odd": pd.Series(["lone \ud800", "b", "c", "d"], dtype=object),  # nor pandas': reprs
    })
    print_ = run_journal.fingerprint(frame)
    assert print_.startswith(run_journal.PRINT_VERSION)
    assert run_journal.fingerprint(frame.copy()) == print_
    # A slice of a longer column (an offset into its buffers) hashes as the same values.
    longer = pd.concat([frame.iloc[:1], frame]).iloc[1:].set_axis(frame.index)
    assert run_journal.fingerprint(longer) == print_
    # Values under a null do not count; every cell, the index and the names do.
    other_int = frame.assign(int=pd.array([1, None, 3, 4], dtype="Int64"))
    other_int["int"].array._data[1] = 99
    assert run_journal.fingerprint(other_int) == print_
    for column in frame.columns:
        changed = frame.copy()
        changed.loc[3, column] = changed.loc[0, column]
        assert run_journal.fingerprint(changed) != print_, column
    assert run_journal.fingerprint(frame.set_axis([5, 6, 7, 8])) != print_
    assert run_journal.fingerprint(frame.rename(columns={"text": "Text"})) != print_


def test_a_run_journalled_by_an_older_version_is_still_found(tmp_path):
    """Records written before PRINT_VERSION hold the old fingerprint: a frame whose run
    did not finish is still refused, and resumed."""
    with LocalOrg(tmp_path / "o.sqlite3", pace=500) as local:
        sfb.connect(local)
        df = names(300)
        first = sfb.insert_df(df, "Account", timeout=0.05, progress=False)
        record = run_journal.load(first._run.run_id)
        record.data["fingerprint"] = run_journal.legacy_fingerprint(df)
        record.save()
        assert ":" not in record.data["fingerprint"]
        with pytest.raises(errors.RunInProgressError, match="has not finished"):
            sfb.insert_df(df, "Account", progress=False)
        again = sfb.resume(df=df)
        assert again._run.run_id == first._run.run_id
        assert again.wait().ok and again.counts["created"] == 300
        assert len(accounts(local)) == 300


SCRIPT = """
import os, sys
import pandas as pd
import sfbulk_nb as sfb
org = sfb.connect(instance_url=os.environ["ORG_URL"], access_token=os.environ["ORG_TOKEN"])
df = pd.DataFrame({"Name": [f"K{i:05d}" for i in range(600)]})
print("started", flush=True)
sfb.insert_df(df, "Account", max_records=200, parallel=1, progress=False)
print("finished", flush=True)
"""


def test_a_killed_run_is_resumed_from_another_process_without_duplicates(tmp_path, journal):
    """The process dies with one job closed and processing; resuming reads that job's
    results from the org, and the rows of the jobs it never created come back not_sent,
    for retry(): every row created once."""
    with LocalOrg(tmp_path / "o.sqlite3", pace=250) as local:
        script = tmp_path / "load.py"
        script.write_text(textwrap.dedent(SCRIPT))
        env = dict(os.environ, ORG_URL=local.instance_url, ORG_TOKEN=local.access_token,
                   PYTHONPATH=ROOT)
        child = subprocess.Popen([sys.executable, str(script)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                records = journal_records()
                if records and records[0].data["jobs"][0]["stage"] == "closed":
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the child never closed its first job: " + child.stdout.read().decode())
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(30)
        record = journal_records()[0]
        assert record.data["state"] == "running"
        sfb.connect(local)
        df = pd.DataFrame({"Name": [f"K{i:05d}" for i in range(600)]})
        with pytest.raises(errors.RunInProgressError):
            sfb.insert_df(df, "Account", max_records=200, parallel=1, progress=False)
        res = sfb.resume(df=df)
        assert res.done and res._run.run_id == record.run_id
        counts = res.counts
        assert counts["created"] == 200 and counts["not_sent"] == 400
        assert (res.frame["sf_status"].iloc[:200] == "created").all()
        again = res.retry()
        assert again.ok and again.counts["created"] == 600
        names_in_org = accounts(local)
        assert len(names_in_org) == 600 and names_in_org.is_unique
        assert run_journal.load(record.run_id).data["state"] == "done"


def journal_records():
    return run_journal.records()


def test_records_of_one_state_are_read_by_their_state(journal):
    from types import SimpleNamespace

    org = SimpleNamespace(instance_url="http://x", kind="local", label="x", org_key="k")
    def start(run_id, **options):
        return run_journal.start(run_id, org=org, sobject="Account", operation="insert",
                                 key=None, options=options, fingerprint_text="2:ab", rows=1,
                                 skipped=[], chunks=[(0, 1)])
    running = start("r-20261207-000001-aaaaaa")
    done = start("r-20261207-000002-bbbbbb", note='"state": "running"')  # says it, is not
    done.finish()
    assert [r.run_id for r in run_journal.records(state=run_journal.RUNNING)] == [running.run_id]
    assert [r.run_id for r in run_journal.records(state=run_journal.DONE)] == [done.run_id]
    assert len(run_journal.records()) == 2
