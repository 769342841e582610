"""Daily allowances of the local org: counted, reported in /limits and Sforce-Limit-Info,
refused with Salesforce's errors once used up, settable, kept in the file, reset daily."""
from __future__ import annotations

import pytest

import sfbulk_nb as sfb
from sfbulk_nb import cli
from sfbulk_nb import org as orgs
from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp

DAY = 24 * 3600


class Clock:
    """A clock a test can move to tomorrow."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _csv(rows: int) -> str:
    return "Name\n" + "".join(f"a{i}\n" for i in range(rows))


def test_limits_report_the_allowances_and_what_is_left(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyApiRequests": 50}) as org:
        api = BulkHttp(org)
        r = api.request("GET", "/limits")
        limits = r.json()
        assert limits["DailyApiRequests"] == {"Max": 50, "Remaining": 49}  # itself counted
        assert r.headers["Sforce-Limit-Info"] == "api-usage=1/50"
        assert limits["DailyBulkApiBatches"] == {"Max": 15000, "Remaining": 15000}
        assert limits["DailyBulkV2QueryJobs"] == {"Max": 10000, "Remaining": 10000}
        assert limits["DailyBulkV2QueryFileStorageMB"]["Max"] == 976562
        assert org.limits_report()["DailyApiRequests"] == {"Max": 50, "Remaining": 49}


def test_ingest_batches_count_one_per_10000_rows(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3") as org:
        api = BulkHttp(org)
        assert api.run("Account", "insert", _csv(3))["state"] == "JobComplete"
        assert api.run("Account", "insert", _csv(10_001))["state"] == "JobComplete"
        empty = api.run("Account", "insert", "Name\n")  # only the parent batch: not counted
        assert empty["state"] == "JobComplete"
        assert org.limits_report()["DailyBulkApiBatches"]["Remaining"] == 15000 - 3


def test_a_job_past_the_batch_allowance_fails_and_leaves_the_rest_unprocessed(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyBulkApiBatches": 1}) as org:
        api = BulkHttp(org)
        # Created and closed while one batch is left: the second 10,000 rows find none.
        info = api.run("Account", "insert", _csv(10_005))
        assert info["state"] == "Failed"
        assert info["errorMessage"] == "ExceededQuota : ApiBatchItems Limit exceeded."
        assert info["numberRecordsProcessed"] == 10_000
        unprocessed = api.results(info["id"], "unprocessedrecords").splitlines()
        assert unprocessed == ["Name"] + [f'"a{i}"' for i in range(10_000, 10_005)]
        # Nothing left: the next job processes no row at all.
        info = api.run("Account", "insert", _csv(2))
        assert info["state"] == "Failed" and info["numberRecordsProcessed"] == 0
        assert org.limits_report()["DailyBulkApiBatches"] == {"Max": 1, "Remaining": 0}


def test_query_jobs_past_the_allowance_are_refused(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyBulkV2QueryJobs": 1}) as org:
        api = BulkHttp(org)
        body = {"operation": "query", "query": "SELECT Id FROM Account"}
        assert api.request("POST", "/jobs/query", json=body).status_code == 200
        r = api.request("POST", "/jobs/query", json=body)
        assert r.status_code == 403
        assert r.json() == [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                             "message": "DailyBulkV2QueryJobs Limit exceeded."}]
        assert "api-usage=" in r.headers["Sforce-Limit-Info"]  # the call itself counted
        # A query that does not compile uses none of the allowance.
        assert org.limits_report()["DailyBulkV2QueryJobs"] == {"Max": 1, "Remaining": 0}


def test_api_requests_run_out_then_reset_the_next_day(tmp_path):
    clock = Clock()
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyApiRequests": 2}, clock=clock) as org:
        api = BulkHttp(org)
        assert [api.request("GET", "/limits").status_code for _ in range(3)] == [200, 200, 403]
        refused = api.request("GET", "/jobs/ingest")
        assert refused.json() == [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                   "message": "TotalRequests Limit exceeded."}]
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=2/2"
        org.set_limits({"DailyApiRequests": 3})  # an admin raised it
        assert api.request("GET", "/limits").status_code == 200
        assert api.request("GET", "/limits").status_code == 403
        clock.now += DAY
        r = api.request("GET", "/limits")
        assert r.status_code == 200 and r.headers["Sforce-Limit-Info"] == "api-usage=1/3"


def test_usage_is_kept_in_the_file_and_forgotten_by_reset(tmp_path):
    path = tmp_path / "o.sqlite3"
    with LocalOrg(path) as org:
        BulkHttp(org).run("Account", "insert", _csv(1))
        used = org.api_calls_today
    with LocalOrg(path) as org:
        assert org.api_calls_today == used
        assert org.limits_report()["DailyBulkApiBatches"]["Remaining"] == 14999
        org.reset()
        assert org.api_calls_today == 0
        assert org.limits_report()["DailyBulkApiBatches"]["Remaining"] == 15000


@pytest.mark.parametrize("limits, says", [
    ({"DailyApiRequest": 5}, "not a limit the local org counts"),
    ({"DailyApiRequests": -1}, "at least 0"),
    ({"DailyApiRequests": 2.5}, "whole number"),
    (["DailyApiRequests"], "must be a dict"),
])
def test_bad_limits_are_refused(tmp_path, limits, says):
    with pytest.raises(ValueError, match=says):
        LocalOrg(tmp_path / "o.sqlite3", limits=limits)


@pytest.fixture
def named_orgs(tmp_path, monkeypatch):
    """connect("local", name=...) starts its orgs in tmp_path; they are stopped after."""
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    monkeypatch.setattr(orgs, "_local_orgs", {})
    monkeypatch.setattr(orgs, "_default", None)
    yield orgs._local_orgs
    for started in orgs._local_orgs.values():
        started.stop()


def test_connect_local_sets_the_allowances_of_a_named_org(named_orgs):
    sfb.connect("local", name="tight", limits={"DailyBulkV2QueryJobs": 3})
    local = named_orgs["tight"]
    assert local.limits_report()["DailyBulkV2QueryJobs"]["Max"] == 3
    sfb.connect("local", name="tight", limits={"DailyApiRequests": 500})  # already running
    assert local.limits_report()["DailyApiRequests"]["Max"] == 500
    assert local.limits_report()["DailyBulkV2QueryJobs"]["Max"] == 3
    with pytest.raises(sfb.ConfigError, match="not a limit the local org counts"):
        sfb.connect("local", name="tight", limits={"ApiRequests": 5})
    with pytest.raises(sfb.ConfigError, match="limits="):
        sfb.connect(instance_url="https://x.my.salesforce.com", access_token="t", limits={})


def test_serve_takes_limits(capsys):
    args = cli.build_parser().parse_args(["localorg", "serve", "--limit", "DailyApiRequests=200",
                                          "--limit", "DailyBulkApiBatches=0"])
    assert dict(args.limit) == {"DailyApiRequests": 200, "DailyBulkApiBatches": 0}
    for bad, says in (("DailyApiRequests", "give NAME=N"), ("Nope=3", "not a limit"),
                      ("DailyApiRequests=-1", "give NAME=N")):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["localorg", "serve", "--limit", bad])
        assert says in capsys.readouterr().err
