"""A run never raises after it has sent data, and retries only what cannot duplicate: each
reproduction of the nothing-lost issue, against the local org's fault injection."""
from __future__ import annotations

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp

JOB = r"/jobs/ingest/[^/]+$"
NO_WAIT = {"sleep": lambda seconds: None}  # retries and polls without waiting


@pytest.fixture
def client(org):
    return sfb.connect(org)


def names(n: int, prefix: str = "R") -> pd.DataFrame:
    return pd.DataFrame({"Name": [f"{prefix}{i}" for i in range(n)]})


def accounts(org) -> int:
    return org.store.count_records(org.catalog.get("Account"))


def ingest_jobs(org) -> list[dict]:
    return BulkHttp(org).request("GET", "/jobs/ingest").json()["records"]


def test_a_lost_answer_to_the_close_call_neither_raises_nor_duplicates(client, org):
    org.faults.add(after=True, drop=True, method="PATCH", path=JOB)
    res = sfb.insert_df(names(100), "Account", progress=False, **NO_WAIT)
    assert res.ok and res.counts["created"] == 100
    assert accounts(org) == 100
    assert [j["state"] for j in ingest_jobs(org)] == ["JobComplete"]


def test_a_lost_answer_to_the_upload_is_not_sent_twice(client, org):
    org.faults.add(after=True, drop=True, method="PUT", path="/batches$")
    res = sfb.insert_df(names(50), "Account", progress=False, **NO_WAIT)
    assert res.ok and accounts(org) == 50


def test_a_lost_answer_to_the_create_adopts_the_job_it_made(client, org):
    org.faults.add(after=True, drop=True, method="POST", path="/jobs/ingest$")
    res = sfb.insert_df(names(30), "Account", max_records=10, progress=False, **NO_WAIT)
    assert res.ok and accounts(org) == 30
    states = [j["state"] for j in ingest_jobs(org)]
    assert states == ["JobComplete"] * 3  # no orphan Open job was left behind


@pytest.mark.parametrize("status,headers", [(503, {}), (429, {"Retry-After": "0"})])
def test_a_refused_create_is_retried(client, org, status, headers):
    org.faults.add(status=status, method="POST", path="/jobs/ingest$", headers=headers)
    res = sfb.insert_df(names(5), "Account", progress=False, **NO_WAIT)
    assert res.ok and accounts(org) == 5 and len(ingest_jobs(org)) == 1


def test_html_instead_of_json_while_polling_is_read_again(client, org):
    org.faults.add(status=200, body="<html><body>Service maintenance</body></html>",
                   method="GET", path=JOB, times=3)
    res = sfb.insert_df(names(50), "Account", progress=False, **NO_WAIT)
    assert res.ok and res.counts["created"] == 50


def test_html_results_are_downloaded_again(client, org):
    org.faults.add(status=200, body="<html>maintenance</html>", method="GET",
                   path="/successfulResults$", times=2)
    res = sfb.insert_df(names(20), "Account", progress=False, **NO_WAIT)
    assert res.ok and res.counts["created"] == 20


def test_results_that_never_read_leave_rows_pending_with_the_reason(client, org):
    org.faults.add(status=200, body="<html>maintenance</html>", method="GET",
                   path="/successfulResults$", times=None)
    res = sfb.insert_df(names(20), "Account", progress=False, **NO_WAIT)
    # The call returned: rows are pending (their job finished; its results could not be
    # read), every view works, and the reason is on each row and in exceptions.
    assert not res.done and (res.frame["sf_status"] == "pending").all()
    assert res.frame["sf_error_code"].eq("NOT_KNOWN_YET").all()
    assert "not CSV" in res.frame["sf_error_message"].iloc[0]
    assert "pending" in repr(res) and "pending" in res._repr_html_()
    assert isinstance(res.exceptions[0], errors.BadResponseError)
    with pytest.raises(errors.BadResponseError):
        res.raise_for_status()
    assert accounts(org) == 20  # written, and not lost: wait() reads them once it can
    org.faults.clear()
    assert res.wait().ok and res.counts["created"] == 20


def test_results_that_belong_to_other_rows_make_the_rows_unknown(client, org):
    org.faults.add(status=200, body='"sf__Id","sf__Created",Name\n"001000000000001AAA","true","Other"\n',
                   method="GET", path="/successfulResults$", times=None)
    res = sfb.insert_df(names(3), "Account", progress=False, **NO_WAIT)
    frame = res.frame  # no AlignmentError from any view
    assert (frame["sf_status"] == "unknown").all()
    assert frame["sf_error_code"].eq("RESULTS_UNMATCHED").all()
    assert isinstance(res.exceptions[0], sfb.SFBulkError) and "unknown" in repr(res)


def test_a_cut_off_result_file_is_downloaded_again(client, org):
    org.faults.add(truncate=30, method="GET", path="/successfulResults$")
    res = sfb.insert_df(names(200), "Account", progress=False, **NO_WAIT)
    assert res.ok and res.counts["created"] == 200


def test_an_expired_pasted_token_leaves_the_run_pending_until_given_a_new_one(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=400) as local:
        pasted = sfb.Org(local.instance_url, local.access_token, api_version="66.0")
        res = sfb.insert_df(names(200), "Account", org=pasted, timeout=0.05, progress=False)
        assert not res.done
        local.expire_tokens()
        res.wait(timeout=5)  # every poll is refused: the rows stay pending, nothing raises
        assert not res.done and (res.frame["sf_status"] == "pending").all()
        assert isinstance(res.exceptions[-1], errors.AuthError)
        assert "set_token" in res.frame["sf_error_message"].iloc[0]
        fresh = sfb.Org(local.instance_url, local.access_token, api_version="66.0")
        assert res.wait(org=fresh).ok and res.counts["created"] == 200


def test_errors_before_any_job_exists_still_raise(client, org):
    org.faults.add(status=400, method="POST", path="/jobs/ingest$", error_code="INVALIDJOB",
                   message="InvalidJob : nope")
    with pytest.raises(errors.RequestError, match="InvalidJob : nope"):
        sfb.insert_df(names(3), "Account", progress=False)
    assert accounts(org) == 0


def test_a_failure_after_the_first_job_is_returned_not_raised(client, org):
    # The second job's create is refused for good: the first job's rows were written.
    org.faults.add(status=400, method="POST", path="/jobs/ingest$", error_code="INVALIDJOB",
                   message="InvalidJob : nope", times=None)
    org.faults.clear()
    first = {"n": 0}

    def reporter(event):
        if event.kind == "job_uploaded" and not first["n"]:
            first["n"] = 1
            org.faults.add(status=400, method="POST", path="/jobs/ingest$",
                           error_code="INVALIDJOB", message="InvalidJob : nope", times=None)

    res = sfb.insert_df(names(20), "Account", max_records=10, parallel=1, progress=reporter)
    assert res.frame["sf_status"].value_counts().to_dict() == {"created": 10, "not_sent": 10}
    assert res.frame["sf_error_code"].fillna("").tolist()[10:] == ["NOT_SENT"] * 10
    assert "InvalidJob : nope" in res.frame["sf_error_message"].iloc[15]
    with pytest.raises(errors.RequestError):
        res.raise_for_status()


def test_results_without_the_columns_sent_make_the_rows_unknown(client, org):
    # A byte order mark in a header: the org reads it as the file's and echoes "Name".
    res = sfb.insert_df(pd.DataFrame({"\ufeffName": ["a", "b"]}), "Account", progress=False,
                        on_invalid="send")
    assert (res.frame["sf_status"] == "unknown").all() and "unknown" in repr(res)
    assert accounts(org) == 2  # written: "unknown" says the result cannot tell which row


def test_rows_failed_by_lock_contention_are_sent_again(client, org):
    org.faults.lock_rows(share=0.3, seed=4, times=None)
    df = pd.DataFrame({"customExtIdField__c": [f"L{i}" for i in range(100)],
                       "Name": [f"Lock {i}" for i in range(100)]})
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False,
                        lock_retries=6, **NO_WAIT)
    frame = res.frame
    assert res.ok and (frame["sf_status"] == "created").all() and accounts(org) == 100
    assert frame["sf_attempts"].min() == 1 and frame["sf_attempts"].max() > 1
    assert frame["sf_id"].is_unique
    # Follow-up jobs one at a time, each carrying only the rows locked the round before.
    jobs = res.jobs
    assert jobs["rows"].iloc[0] == 100 and (jobs["rows"].iloc[1:] < 100).all()
    assert (frame["sf_attempts"] == 1).sum() == 100 - jobs["rows"].iloc[1]


def test_lock_retries_has_a_limit(client, org):
    org.faults.lock_rows(share=1.0, times=None)
    res = sfb.insert_df(names(5), "Account", progress=False, lock_retries=1, **NO_WAIT)
    assert (res.frame["sf_status"] == "failed").all()
    assert (res.frame["sf_error_code"] == "UNABLE_TO_LOCK_ROW").all()
    assert (res.frame["sf_attempts"] == 2).all() and len(res.jobs) == 2 and accounts(org) == 0
    none = sfb.insert_df(names(5, "N"), "Account", progress=False, lock_retries=0, **NO_WAIT)
    assert (none.frame["sf_attempts"] == 1).all() and len(none.jobs) == 1
