"""Fault injection against a running local org: random faults, answers lost after the server
acted, cut and non-JSON bodies, headers on fault answers, row-lock contention and jobs told
to fail part way."""
from __future__ import annotations

import csv
import http.client
import io
import re
from urllib.parse import urlsplit

import pytest
import requests

from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp

LOCK_ERROR = re.compile(r"UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record"
                        r"( or 1 records: (\w{18}))?:--")


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def names_csv(names) -> str:
    return "Name\n" + "".join(f"{n}\n" for n in names)


def job_ids(api: BulkHttp) -> list[str]:
    return [j["id"] for j in api.request("GET", "/jobs/ingest").json()["records"]]


# -- random faults ---------------------------------------------------------------------------


def test_a_seeded_random_fault_hits_the_same_requests_every_run(api, org):
    def run(seed: int) -> list[int]:
        org.faults.clear()
        org.faults.add(status=503, path=r"/limits$", rate=0.3, seed=seed, times=None)
        return [api.request("GET", "/limits").status_code for _ in range(40)]

    first = run(seed=11)
    assert run(seed=11) == first
    assert set(first) == {200, 503}  # a rate, not every request; times=None keeps firing
    assert 3 <= first.count(503) <= 25
    assert run(seed=12) != first


def test_a_random_fault_over_http_with_times(api, org):
    control = f"{org.instance_url}/__localorg__/faults"
    r = api.request("POST", control, json={"status": 500, "path": "/limits$", "rate": 0.5,
                                           "seed": 4, "times": 3})
    assert r.status_code == 200 and r.json()[0]["rate"] == 0.5
    codes = [api.request("GET", "/limits").status_code for _ in range(40)]
    assert codes.count(500) == 3 and codes[-1] == 200
    assert api.request("GET", control).json() == []  # spent faults are gone


@pytest.mark.parametrize("options", [{"rate": 1.5}, {"rate": "often"}, {"body": "<html/>"},
                                     {"status": 42}, {"headers": {"Retry-After": 1}},
                                     {"truncate": -1}, {"times": 0}, {"path": "("}])
def test_bad_fault_options_are_refused(api, org, options):
    r = api.request("POST", f"{org.instance_url}/__localorg__/faults", json=options)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FAULT", r.text
    with pytest.raises(ValueError):
        org.faults.add(**options)


# -- answers lost after the server acted ----------------------------------------------------


def test_answers_lost_after_the_server_acted(api, org):
    """Each step of a load commits although its answer never reaches the client."""
    org.faults.add(after=True, drop=True, method="POST", path=r"/jobs/ingest$")
    with pytest.raises(requests.ConnectionError):
        api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    [job_id] = job_ids(api)
    assert api.info(job_id)["state"] == "Open"

    org.faults.add(after=True, drop=True, method="PUT", path=r"/batches$")
    with pytest.raises(requests.ConnectionError):
        api.upload(job_id, names_csv(["Kept"]))
    again = api.upload(job_id, names_csv(["Kept"]))
    assert again.status_code == 400 and "Found multipe contents" in again.text  # stored

    org.faults.add(after=True, status=503, method="PATCH")
    assert api.close(job_id).status_code == 503
    assert api.wait(job_id)["state"] == "JobComplete"
    assert org.store.count_records(org.catalog.get("Account")) == 1


def test_a_fault_before_handling_leaves_no_trace(api, org):
    org.faults.add(drop=True, method="POST", path=r"/jobs/ingest$")
    with pytest.raises(requests.ConnectionError):
        api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    org.faults.add(status=200, body="<html><body>Down for maintenance</body></html>")
    r = api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert job_ids(api) == []


def test_a_real_answer_replaced_by_html(api, org):
    org.faults.add(after=True, status=200, body="<html><body>Maintenance</body></html>",
                   method="POST", path=r"/jobs/ingest$")
    r = api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        r.json()
    assert len(job_ids(api)) == 1


def test_a_slow_answer_after_the_server_acted(api, org):
    org.faults.add(after=True, delay=1.0, method="POST", path=r"/jobs/ingest$")
    with pytest.raises(requests.Timeout):
        api.session.post(f"{api.base}/jobs/ingest", headers=api.headers(), timeout=0.3,
                         json={"object": "Account", "operation": "insert"})
    assert len(job_ids(api)) == 1


# -- cut bodies and headers ------------------------------------------------------------------


def raw_get(org, path: str, token: str) -> http.client.HTTPResponse:
    parts = urlsplit(org.instance_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    return conn.getresponse()


def test_a_truncated_body_keeps_its_length_and_stops(api, org):
    info = api.run("Account", "insert", names_csv(f"Row {i}" for i in range(50)))
    path = f"/services/data/v66.0/jobs/ingest/{info['id']}/successfulResults"
    whole = api.results(info["id"], "successfulResults").encode()
    org.faults.add(truncate=100, path="/successfulResults$")
    response = raw_get(org, path, org.access_token)
    assert response.status == 200 and int(response.headers["Content-Length"]) == len(whole)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == whole[:100]

    org.faults.add(truncate=10, path=f"/jobs/ingest/{info['id']}$")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.request("GET", f"/jobs/ingest/{info['id']}")
    assert api.info(info["id"])["state"] == "JobComplete"


def test_a_truncated_fault_answer(api, org):
    org.faults.add(status=503, body="<html>Service Unavailable</html>", truncate=6)
    response = raw_get(org, "/services/data/v66.0/limits", org.access_token)
    assert response.status == 503
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == b"<html>"


@pytest.mark.parametrize("status", [429, 503])
def test_fault_answers_carry_headers(api, org, status):
    org.faults.add(status=status, headers={"Retry-After": "1"}, path="/limits$")
    r = api.request("GET", "/limits")
    assert r.status_code == status and r.headers["Retry-After"] == "1"
    assert r.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert api.request("GET", "/limits").status_code == 200


# -- row lock contention ---------------------------------------------------------------------


def lock_outcome(api: BulkHttp, names: list[str]) -> tuple[dict, set[str], list[list[str]]]:
    info = api.run("Account", "insert", names_csv(names))
    failed = rows(api.results(info["id"], "failedResults"))[1:]
    succeeded = rows(api.results(info["id"], "successfulResults"))[1:]
    return info, {r[2] for r in succeeded}, failed


def test_a_share_of_rows_fails_to_lock_reproducibly(api, org):
    names = [f"Lock {i}" for i in range(300)]
    org.faults.lock_rows(share=0.2, seed=5)
    info, ok, failed = lock_outcome(api, names)
    assert 20 <= len(failed) <= 100
    assert info["numberRecordsProcessed"] == 300 and info["numberRecordsFailed"] == len(failed)
    assert all(LOCK_ERROR.fullmatch(r[1]) for r in failed) and {r[0] for r in failed} == {""}
    account = org.catalog.get("Account")
    assert org.store.count_records(account) == len(ok) == 300 - len(failed)

    org.reset()
    org.faults.lock_rows(share=0.2, seed=5)
    assert {r[2] for r in lock_outcome(api, names)[2]} == {r[2] for r in failed}


def test_locked_updates_name_their_record_and_change_nothing(api, org):
    created = api.run("Account", "insert", names_csv(["Before"]))
    [[record_id, *_]] = rows(api.results(created["id"], "successfulResults"))[1:]
    org.faults.lock_rows(times=1)
    info = api.run("Account", "update", f"Id,Name\n{record_id},After\n")
    [failed] = rows(api.results(info["id"], "failedResults"))[1:]
    assert failed[:2] == [record_id, "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to "
                          f"this record or 1 records: {record_id}:--"]
    assert api.record("Account", record_id)["Name"] == "Before"
    again = api.run("Account", "update", f"Id,Name\n{record_id},After\n")  # the lock is spent
    assert again["numberRecordsFailed"] == 0
    assert api.record("Account", record_id)["Name"] == "After"


def test_row_locks_over_http(api, org):
    control = f"{org.instance_url}/__localorg__"
    r = api.request("POST", f"{control}/lock-rows", json={"share": 1, "times": 2})
    assert r.status_code == 200
    assert r.json() == [{"lock_rows": {"seed": None, "times": 2, "hits": 0, "share": 1}}]
    info, ok, failed = lock_outcome(api, ["A", "B", "C"])
    assert len(failed) == 2 and len(ok) == 1 and info["numberRecordsFailed"] == 2
    assert api.request("GET", f"{control}/faults").json() == []
    assert api.request("POST", f"{control}/lock-rows", json={"share": 2}).status_code == 400
    assert api.request("POST", f"{control}/lock-rows", json={"rows": 1}).status_code == 400
    api.request("POST", f"{control}/lock-rows", json={"share": 1})
    assert api.request("DELETE", f"{control}/faults").json() == []
    assert lock_outcome(api, ["D"])[2] == []


# -- jobs that fail part way -----------------------------------------------------------------


def test_a_small_job_fails_after_the_records_asked(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", result_order="input") as org:
        api = BulkHttp(org)
        names = [f"R{i}" for i in range(50)]
        org.fail_next_job("InvalidBatch : simulated", after_records=20)
        info = api.run("Account", "insert", names_csv(names))
        assert info["state"] == "Failed" and info["errorMessage"] == "InvalidBatch : simulated"
        assert info["numberRecordsProcessed"] == 20
        assert len(rows(api.results(info["id"], "successfulResults"))) == 21
        assert rows(api.results(info["id"], "unprocessedrecords")) == [["Name"]] + [
            [n] for n in names[20:]]
        assert org.store.count_records(org.catalog.get("Account")) == 20

        # Fewer rows than asked: all processed, and the job still ends Failed.
        org.fail_next_job(after_records=20)
        short = api.run("Account", "insert", names_csv(["S1", "S2"]))
        assert short["state"] == "Failed" and short["numberRecordsProcessed"] == 2
        assert api.results(short["id"], "unprocessedrecords") == "Name\n"


def test_a_query_job_fails_after_the_records_asked(api, org):
    api.run("Account", "insert", names_csv(f"Q{i}" for i in range(50)))
    r = api.request("POST", f"{org.instance_url}/__localorg__/fail-next-job",
                    json={"after_records": 20})
    assert r.status_code == 204
    job = api.request("POST", "/jobs/query",
                      json={"operation": "query", "query": "SELECT Name FROM Account"}).json()
    org.wait_idle()
    info = api.request("GET", f"/jobs/query/{job['id']}").json()
    assert info["state"] == "Failed" and info["numberRecordsProcessed"] == 20


@pytest.mark.parametrize("options", [{"bogus": 1}, {"after_records": -1},
                                     {"after_records": "ten"}, {"message": 5}])
def test_bad_fail_next_job_options_are_refused(api, org, options):
    r = api.request("POST", f"{org.instance_url}/__localorg__/fail-next-job", json=options)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FAULT"
    assert not org.engine.job_faults
