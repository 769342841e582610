"""A daily allowance running out in the middle of a load: the run does not raise once a job
exists, loses nothing, says which rows were not sent and which limit stopped them, and
carries on (res.wait(), res.retry(sleep=_nap), sfb.resume) once the allowance is raised or reset."""
from __future__ import annotations

import time

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.localorg import LocalOrg

ROWS = 6


def _nap(seconds: float) -> None:
    """Polling's waits, short: the local org answers in milliseconds."""
    time.sleep(min(seconds, 0.01))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"Name": [f"limit {i}" for i in range(ROWS)]})


def _names_in_org(client) -> list[str]:
    found = sfb.query_df("SELECT Name FROM Account WHERE Name LIKE 'limit %'", client,
                         progress=False, sleep=_nap)
    return sorted(found["Name"]) if len(found) else []


@pytest.fixture
def local(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3") as org:
        yield org, sfb.connect(org)


# Calls left after the describe: the allowance runs out at a create, an upload, a close,
# while polling or fetching results, of the first job or a later one (three jobs of two
# rows, one at a time).
@pytest.mark.parametrize("calls_left", [1, 2, 3, 4, 6, 9])
def test_api_requests_running_out_mid_run_lose_nothing(local, calls_left):
    org, client = local
    df = _frame()
    sfb.validate_df(df, "Account", operation="insert", org=client)  # the describe: cached
    org.set_limits({"DailyApiRequests": org.api_calls_today + calls_left})
    res = sfb.insert_df(df, "Account", org=client, max_records=2, parallel=1, progress=False,
                         sleep=_nap)
    frame = res.frame
    assert set(frame["sf_status"]) <= {"created", "not_sent", "pending"}
    stopped = frame[frame["sf_status"] != "created"]
    assert len(stopped), "the allowance should stop some rows"
    assert stopped["sf_error_message"].str.contains("daily allowance DailyApiRequests is "
                                                    "used up").all()
    assert isinstance(res.exceptions[0], errors.LimitExceededError)
    assert res.exceptions[0].limit == "DailyApiRequests"

    org.set_limits({"DailyApiRequests": 100_000})  # an admin raised it
    res.wait()  # jobs whose outcome was not known are asked again
    assert set(res.frame["sf_status"]) <= {"created", "not_sent"}
    if (res.frame["sf_status"] == "not_sent").any():
        res = res.retry(sleep=_nap)
    assert (res.frame["sf_status"] == "created").all()
    # Every row written exactly once: nothing lost, nothing sent twice.
    assert _names_in_org(client) == sorted(df["Name"])


def test_a_run_stopped_by_the_limit_resumes_in_a_new_session(local):
    org, client = local
    df = _frame()
    sfb.validate_df(df, "Account", operation="insert", org=client)
    # create, upload, close: the first job is running when the allowance is gone.
    org.set_limits({"DailyApiRequests": org.api_calls_today + 3})
    res = sfb.insert_df(df, "Account", org=client, max_records=2, parallel=1, progress=False,
                         sleep=_nap)
    assert (res.frame["sf_status"] == "pending").sum() == 2
    org.set_limits({"DailyApiRequests": 100_000})
    again = sfb.resume(df=df, org=client, progress=False)  # as after a kernel restart
    statuses = again.frame["sf_status"]
    assert (statuses == "created").sum() == 2 and (statuses == "not_sent").sum() == 4
    assert (again.retry(sleep=_nap).frame["sf_status"] == "created").all()
    assert _names_in_org(client) == sorted(df["Name"])


def test_bulk_batches_running_out_fail_a_job_and_name_the_limit(local):
    org, client = local
    org.set_limits({"DailyBulkApiBatches": 2})  # one batch per job of two rows
    res = sfb.insert_df(_frame(), "Account", org=client, max_records=2, parallel=1,
                        progress=False, sleep=_nap)
    frame = res.frame
    assert list(frame["sf_status"]) == ["created"] * 4 + ["unprocessed"] * 2
    message = frame["sf_error_message"].iloc[-1]
    assert message.startswith("ExceededQuota : ApiBatchItems Limit exceeded.")
    assert "daily allowance DailyBulkApiBatches is used up" in message
    with pytest.raises(errors.JobFailedError, match="ApiBatchItems"):
        res.raise_for_status()
    org.set_limits({"DailyBulkApiBatches": 15_000})
    assert (res.retry(sleep=_nap).frame["sf_status"] == "created").all()
    assert _names_in_org(client) == sorted(_frame()["Name"])


def test_query_jobs_running_out_raise_with_the_limit_named(local):
    org, client = local
    org.set_limits({"DailyBulkV2QueryJobs": 0})
    with pytest.raises(errors.LimitExceededError,
                       match="daily allowance DailyBulkV2QueryJobs is used up") as e:
        sfb.query_df("SELECT Id FROM Account", client, progress=False, sleep=_nap)
    assert e.value.limit == "DailyBulkV2QueryJobs" and e.value.status == 403
