"""upsert_df and friends against a running local org (results come back shuffled)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import api, errors
from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp


@pytest.fixture
def client(org):
    return sfb.connect(org)


def read_back(org, sobject: str, ids) -> pd.DataFrame:
    http = BulkHttp(org)
    # object dtype keeps the JSON values as they came (None, bool, int), unconverted
    return pd.DataFrame([http.record(sobject, i) for i in ids], dtype=object).drop(
        columns="attributes")


def test_upsert_round_trips_every_dtype(client, org):
    df = pd.DataFrame({
        "customExtIdField__c": ["K-1", "K-2", "K-3"],
        "Name": ['Comma, "quoted"', "new\nline and lone\rcr", "ünïcödé ✓ 日本"],
        "NumberOfEmployees": pd.array([10, None, 3_000_000], dtype="Int64"),
        "AnnualRevenue": [1234.0, 1e12, 25.0],  # currency(18, 0): whole amounts
        "Active__c": [True, False, True],
        "Founded__c": [dt.date(1999, 12, 31), dt.date(2024, 2, 29), dt.date(1900, 1, 1)],
        "LastReviewed__c": pd.to_datetime(["2024-03-10 01:30:00", "2024-11-03 23:59:59.123",
                                           "2000-01-01 00:00:00"], format="ISO8601")
                              .tz_localize("America/New_York"),
        "Industry": ["Banking", "Technology", None],
    })
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False)
    assert res.ok and res.done
    assert list(res.frame.columns) == list(df.columns) + list(res.STATUS_COLUMNS)
    pd.testing.assert_frame_equal(res.frame[df.columns], df)
    assert list(res.frame["sf_status"]) == ["created"] * 3
    back = read_back(org, "Account", res.frame["sf_id"]).set_index("customExtIdField__c")
    for _, row in df.iterrows():
        got = back.loc[row["customExtIdField__c"]]
        assert got["Name"] == row["Name"]
        assert (got["NumberOfEmployees"] is None if pd.isna(row["NumberOfEmployees"])
                else got["NumberOfEmployees"] == row["NumberOfEmployees"])
        assert got["AnnualRevenue"] == row["AnnualRevenue"]
        assert got["Active__c"] is bool(row["Active__c"])
        assert got["Founded__c"] == row["Founded__c"].isoformat()
        expected = row["LastReviewed__c"].tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        assert got["LastReviewed__c"] == expected + "+0000"
    assert back.loc["K-3", "Industry"] is None


def test_null_policy_keep_and_clear(client, org):
    base = pd.DataFrame({"customExtIdField__c": ["N1", "N2"], "Name": ["A", "B"],
                         "Phone": ["111", "222"], "BillingCity": ["Paris", "Rome"]})
    first = sfb.upsert_df(base, "Account", "customExtIdField__c", progress=False)
    nulls = pd.DataFrame({"customExtIdField__c": ["N1", "N2"], "Phone": [None, None],
                          "BillingCity": [np.nan, np.nan]})
    sfb.upsert_df(nulls, "Account", "customExtIdField__c", progress=False)  # keep
    back = read_back(org, "Account", first.frame["sf_id"])
    assert list(back["Phone"]) == ["111", "222"] and list(back["BillingCity"]) == ["Paris", "Rome"]
    sfb.upsert_df(nulls, "Account", "customExtIdField__c", nulls={"Phone": "clear"},
                  progress=False)
    back = read_back(org, "Account", first.frame["sf_id"])
    assert list(back["Phone"]) == [None, None] and list(back["BillingCity"]) == ["Paris", "Rome"]
    sfb.upsert_df(nulls, "Account", "customExtIdField__c", nulls="clear", progress=False)
    assert list(read_back(org, "Account", first.frame["sf_id"])["BillingCity"]) == [None, None]


def test_alignment_for_every_operation(client, org):
    df = pd.DataFrame({"customExtIdField__c": [f"A{i:03d}" for i in range(250)],
                       "Name": [f"Name {i}" for i in range(250)],
                       "Industry": ["Banking" if i % 7 else "Nope" for i in range(250)]},
                      index=pd.RangeIndex(1000, 1250))
    # on_invalid="send": the org judges the bad picklist values (the checks would stop them)
    up = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False, on_invalid="send")
    frame = up.frame
    assert frame.index.equals(df.index)
    bad = frame["Industry"] == "Nope"
    assert (frame.loc[bad, "sf_status"] == "failed").all()
    assert (frame.loc[bad, "sf_error_code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST").all()
    assert (frame.loc[bad, "sf_error_fields"] == "Industry").all()
    assert frame.loc[bad, "sf_id"].isna().all()
    assert (frame.loc[~bad, "sf_status"] == "created").all()
    # Each created id really holds that row's name.
    names = read_back(org, "Account", frame.loc[~bad, "sf_id"])["Name"]
    assert list(names) == list(frame.loc[~bad, "Name"])
    assert up.counts["created"] == (~bad).sum() and up.counts["failed"] == bad.sum()
    assert up.errors.iloc[0]["rows"] == bad.sum()

    ids = frame.loc[~bad, ["sf_id"]].rename(columns={"sf_id": "Id"})
    ids["Name"] = [f"Renamed {i}" for i in range(len(ids))]
    upd = sfb.update_df(ids, "Account", progress=False)
    assert (upd.frame["sf_status"] == "updated").all()
    assert (upd.frame["sf_id"] == ids["Id"]).all()

    gone = sfb.delete_df(ids["Id"].iloc[:10], "Account", progress=False)
    assert (gone.frame["sf_status"] == "deleted").all()
    assert list(gone.frame["sf_id"]) == list(ids["Id"].iloc[:10])


def test_insert_aligns_duplicate_identical_rows(client, org):
    df = pd.DataFrame({"Name": ["Same", "Same", "Same", "Other", "Bad"],
                       "Industry": ["Banking", "Banking", "Banking", "Banking", "Nope"]})
    res = sfb.insert_df(df, "Account", progress=False, on_invalid="send")
    frame = res.frame
    assert list(frame["sf_status"]) == ["created"] * 4 + ["failed"]
    assert frame["sf_id"].iloc[:4].nunique() == 4
    assert list(read_back(org, "Account", frame["sf_id"].iloc[:4])["Name"]) == list(df["Name"][:4])


def test_duplicate_keys_are_refused_before_sending(client, org):
    df = pd.DataFrame({"customExtIdField__c": ["X", "Y", "X"], "Name": ["a", "b", "c"]})
    calls = org.api_calls_today
    with pytest.raises(errors.ValidationError, match="more than one row") as e:
        sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False)
    assert "'X'" in str(e.value)
    assert list(e.value.problems["row"]) == [0, 2]
    assert org.api_calls_today == calls + 1  # the describe only: no job was created
    assert BulkHttp(org).request("GET", "/jobs/ingest").json()["records"] == []


def test_forced_split_runs_several_jobs_in_parallel(client, org):
    df = pd.DataFrame({"customExtIdField__c": [f"S{i:05d}" for i in range(3000)],
                       "Name": [f"Split {i}" for i in range(3000)]})
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", max_bytes=8_000, parallel=3,
                        progress=False)
    jobs_frame = res.jobs
    assert len(jobs_frame) > 5 and (jobs_frame["bytes"] <= 8_000).all()
    assert jobs_frame["rows"].sum() == 3000 and (jobs_frame["state"] == "JobComplete").all()
    assert res.ok and res.frame["sf_job_id"].nunique() == len(jobs_frame)
    assert org.store.count_records(org.catalog.get("Account")) == 3000
    # create, upload, close, >=1 poll and 1 result download per job (a clean job's failed
    # and unprocessed files are known empty from its counters), plus one describe
    assert res.api_calls >= 1 + 5 * len(jobs_frame)
    assert res.api_usage is not None and res.api_usage.limit == 100_000


def test_max_records_limits_rows_per_job(client):
    df = pd.DataFrame({"Name": [f"R{i}" for i in range(25)]})
    res = sfb.insert_df(df, "Account", max_records=10, progress=False)
    assert list(res.jobs["rows"]) == [10, 10, 5] and res.ok


def test_timeout_returns_a_pending_result_that_wait_finishes(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=2000) as local:
        sfb.connect(local)
        df = pd.DataFrame({"Name": [f"T{i}" for i in range(3000)]})
        res = sfb.insert_df(df, "Account", timeout=0.2, progress=False)
        assert not res.done and (res.frame["sf_status"] == "pending").all()
        res.wait()
        assert res.done and res.ok and (res.frame["sf_status"] == "created").all()


def test_aborted_jobs_are_said_together_in_the_result(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=500) as local:
        sfb.connect(local)
        df = pd.DataFrame({"Name": [f"A{i}" for i in range(3000)]})
        res = sfb.insert_df(df, "Account", max_records=1000, timeout=0.3, progress=False)
        res.abort().wait()
        aborted = [i + 1 for i, info in enumerate(res._run.infos)
                   if info is not None and info.state == "Aborted"]
        assert len(aborted) >= 2, res.jobs  # the org works one job at a time
        numbers = f"{aborted[0]}\u2013{aborted[-1]}" if len(aborted) > 2 else \
            f"{aborted[0]}, {aborted[1]}"
        assert res.job_failures() == [f"jobs {numbers} aborted"]
        assert "3 jobs" in repr(res) and "job(s)" not in repr(res)
        assert f"jobs {numbers} aborted" in res._repr_html_()


def test_upload_failure_aborts_the_job_and_marks_rows_not_sent(client, org):
    # More failures than the five tries of an upload: it gives up on that job.
    org.faults.add(status=500, method="PUT", path="/batches$", times=5)
    df = pd.DataFrame({"Name": [f"U{i}" for i in range(30)]})
    res = sfb.insert_df(df, "Account", max_records=10, parallel=1, progress=False,
                        sleep=lambda seconds: None)
    statuses = res.frame["sf_status"].value_counts().to_dict()
    assert statuses == {"not_sent": 10, "created": 20}
    aborted = [j for j in BulkHttp(org).request("GET", "/jobs/ingest").json()["records"]
               if j["state"] == "Aborted"]
    assert len(aborted) == 1
    assert isinstance(res.exceptions[0], errors.RequestError) and res.exceptions[0].status == 500
    assert not res.ok


def test_failed_job_rows_are_unprocessed_and_raise_for_status(client, org):
    org.fail_next_job("InvalidBatch : simulated")
    res = sfb.insert_df(pd.DataFrame({"Name": ["a", "b"]}), "Account", progress=False)
    assert list(res.frame["sf_status"]) == ["unprocessed", "unprocessed"]
    with pytest.raises(errors.JobFailedError, match="InvalidBatch : simulated") as e:
        res.raise_for_status()
    assert e.value.job_id == res.frame["sf_job_id"].iloc[0] and e.value.state == "Failed"


def test_auth_error_when_the_token_cannot_be_renewed(org):
    client = sfb.Org(org.instance_url, "00Dbogus!token", kind="local")
    with pytest.raises(errors.AuthError, match="INVALID_SESSION_ID") as e:
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", org=client, progress=False)
    assert "00Dbogus" not in str(e.value)


def test_expired_token_is_renewed_transparently(client, org):
    org.expire_tokens()
    assert sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", progress=False).ok


def test_not_found_request_limit_and_transport_errors(org, tmp_path):
    client = sfb.connect(org)
    with pytest.raises(errors.InputError, match="has no object 'Nope__c'"):
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Nope__c", progress=False)
    org.faults.add(status=400, method="POST", path="/jobs/ingest$", error_code="INVALIDJOB",
                   message="InvalidJob : nope")
    with pytest.raises(errors.RequestError, match="InvalidJob : nope") as e:
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", progress=False)
    assert (e.value.status, e.value.error_code) == (400, "INVALIDJOB")
    # Every create dropped: after its tries the error is raised (no job exists).
    org.faults.add(drop=True, method="POST", path="/jobs/ingest$", times=None)
    with pytest.raises(errors.TransportError):
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", org=client, progress=False,
                      sleep=lambda seconds: None)
    org.faults.clear()
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyApiRequests": 1}) as small:
        sfb.connect(small)  # the describe is the day's one call: the create is refused
        with pytest.raises(errors.LimitExceededError):
            sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", progress=False)


def test_input_errors_name_the_problem(client):
    with pytest.raises(errors.InputError, match="needs a 'Id' column"):
        sfb.update_df(pd.DataFrame({"Name": ["x"]}), "Account", progress=False)
    with pytest.raises(errors.InputError, match="not an External ID"):
        sfb.upsert_df(pd.DataFrame({"Phone": ["1"]}), "Account", "Phone", progress=False)
    with pytest.raises(errors.InputError, match="result column"):
        sfb.insert_df(pd.DataFrame({"Name": ["x"], "sf_status": ["y"]}), "Account",
                      progress=False)
    with pytest.raises(errors.ConfigError):
        sfb.connect(instance_url="http://127.0.0.1:1")


def test_text_progress_reports_each_job(client, capsys):
    sfb.insert_df(pd.DataFrame({"Name": ["a", "b"]}), "Account", progress="text")
    err = capsys.readouterr().err
    assert "insert 2 rows into Account" in err and "JobComplete" in err and "2 created" in err


def test_repr_and_html_summaries(client):
    res = sfb.insert_df(pd.DataFrame({"Name": ["a", None]}), "Account", progress=False,
                        on_invalid="send")
    text = repr(res)
    assert "1 created" in text and "1 failed" in text and "REQUIRED_FIELD_MISSING" in text
    assert "REQUIRED_FIELD_MISSING" in res._repr_html_()


@pytest.mark.slow
def test_one_million_row_upsert(client, org):
    n = 1_000_000
    df = pd.DataFrame({"customExtIdField__c": [f"M{i:07d}" for i in range(n)],
                       "Name": [f"Account {i}" for i in range(n)],
                       "NumberOfEmployees": np.arange(n) % 5000})
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False)
    assert res.ok and res.counts["created"] == n
    assert res.frame["sf_id"].is_unique
    sample = res.frame.sample(20, random_state=1)
    back = read_back(org, "Account", sample["sf_id"])
    assert list(back["customExtIdField__c"]) == list(sample["customExtIdField__c"])


def test_timeline_and_progress_log_record_each_job(client):
    res = sfb.insert_df(pd.DataFrame({"Name": [f"L{i}" for i in range(30)]}), "Account",
                        max_records=10, progress=False)
    timeline = res.timeline
    assert set(timeline["job_id"]) == set(res.jobs["job_id"])
    for _, states in timeline.groupby("job_id")["state"]:
        assert states.iloc[0] == "Open" and states.iloc[-1] == "JobComplete"
        assert states.is_unique
    log = res.progress_log
    assert list(log.columns) == ["job_id", "at", "processed", "failed"]
    assert log.groupby("job_id")["processed"].max().tolist() == [10, 10, 10]


def test_wait_false_returns_at_once_and_finishes_in_the_background(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=3000) as local:
        sfb.connect(local)
        df = pd.DataFrame({"Name": [f"B{i}" for i in range(1500)]})
        res = sfb.insert_df(df, "Account", wait=False, progress=False)
        assert not res.done
        assert res.wait().done and res.ok
        assert (res.frame["sf_status"] == "created").all()


def test_wait_false_reraises_an_error_that_stopped_everything(org):
    client = sfb.Org(org.instance_url, "00Dbogus!token", kind="local")
    client._describes["account"] = {"name": "Account", "fields": [
        {"name": "Name", "type": "string", "createable": True, "updateable": True,
         "nillable": True}]}  # skip the describe call: fail at job creation
    res = sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", org=client, wait=False,
                        progress=False)
    with pytest.raises(errors.AuthError):
        res.wait()


def test_dry_run_checks_and_plans_without_sending(client, org):
    df = pd.DataFrame({"customExtIdField__c": [f"D{i}" for i in range(100)], "Name": "x"})
    plan = api.dry_run(df, "Account", "upsert", "customExtIdField__c", max_records=40)
    assert list(plan.jobs["rows"]) == [40, 40, 20] and (plan.jobs["bytes"] > 0).all()
    assert BulkHttp(org).request("GET", "/jobs/ingest").json()["records"] == []
    with pytest.raises(errors.ValidationError, match="more than one row"):
        api.dry_run(pd.concat([df, df]), "Account", "upsert", "customExtIdField__c")


def test_result_plot_draws_on_the_given_axes(client):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    res = sfb.insert_df(pd.DataFrame({"Name": ["a", None, "c"]}), "Account", progress=False,
                        on_invalid="send")
    ax = Figure().subplots()
    chart = res.plot("outcomes", ax=ax)  # a plots.Chart: used as the Axes, shown as a picture
    assert chart.axes is ax
    assert [t.get_text() for t in chart.get_yticklabels()] == ["created", "failed"]
    assert chart._repr_png_().startswith(b"\x89PNG")
    assert res.plot("errors").get_title()


def test_a_frame_that_cannot_be_encoded_is_an_input_error(client, org):
    with pytest.raises(sfb.InputError, match="'Name'"):
        sfb.insert_df(pd.DataFrame({"Name": [complex(1, 2)]}), "Account", progress=False)
    assert BulkHttp(org).request("GET", "/jobs/ingest").json()["records"] == []


def test_result_files_the_counters_show_empty_are_not_downloaded(client, org, monkeypatch):
    from sfbulk_nb import jobs

    asked = []
    real = jobs.results

    def results(o, job_id, kind, *args):
        asked.append(kind)
        return real(o, job_id, kind, *args)

    monkeypatch.setattr(jobs, "results", results)
    clean = pd.DataFrame({"customExtIdField__c": ["a", "b"], "Name": ["A", "B"]})
    assert sfb.upsert_df(clean, "Account", "customExtIdField__c", org=client, progress=None).ok
    assert asked == ["successfulResults"]
    asked.clear()
    mixed = pd.DataFrame({"customExtIdField__c": ["c", "d"], "Name": ["C", None]})
    res = sfb.upsert_df(mixed, "Account", "customExtIdField__c", org=client, progress=None)
    assert sorted(asked) == ["failedResults", "successfulResults"]
    assert list(res.frame["sf_status"]) == ["created", "failed"]
    asked.clear()
    all_bad = pd.DataFrame({"customExtIdField__c": ["e"], "Name": [None]})
    res = sfb.upsert_df(all_bad, "Account", "customExtIdField__c", org=client, progress=None)
    assert asked == ["failedResults"] and list(res.frame["sf_status"]) == ["failed"]
    asked.clear()
    org.fail_next_job("InvalidBatch : simulated")
    res = sfb.upsert_df(clean, "Account", "customExtIdField__c", org=client, progress=None)
    assert asked == ["unprocessedrecords"]  # Failed before any row: only unprocessed rows
    assert list(res.frame["sf_status"]) == ["unprocessed", "unprocessed"]


def test_a_just_closed_job_is_first_polled_after_one_interval(client, monkeypatch):
    """Polling at once after the close call would only see the state the close returned."""
    import time

    from sfbulk_nb import jobs

    events = []
    real_get, real_close = jobs.get, jobs.close
    monkeypatch.setattr(jobs, "get",
                        lambda o, j, *a: events.append("poll") or real_get(o, j, *a))
    monkeypatch.setattr(jobs, "close",
                        lambda o, j, *a, **k: events.append("close") or real_close(o, j, *a, **k))

    def sleep(seconds):
        events.append(("sleep", seconds))
        time.sleep(seconds)

    df = pd.DataFrame({"customExtIdField__c": ["a"], "Name": ["A"]})
    assert sfb.upsert_df(df, "Account", "customExtIdField__c", org=client, progress=None,
                         sleep=sleep).ok
    after_close = events[events.index("close") + 1:]
    assert after_close[:2] == [("sleep", jobs.Backoff().start), "poll"]
