"""REST resources, auth, limits, faults, persistence and pacing of the local org."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from sfbulk_nb.localorg import LocalOrg, engine
from tests.conftest import BulkHttp


def test_versions_are_public_and_listed(org):
    r = requests.get(f"{org.instance_url}/services/data/", timeout=10)
    assert r.status_code == 200 and "Sforce-Limit-Info" not in r.headers
    versions = r.json()
    assert versions[-1] == {"label": "Spring '26", "url": "/services/data/v66.0", "version": "66.0"}
    assert versions[0]["version"] == "31.0"


def test_missing_and_wrong_tokens_get_401_invalid_session(org):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = requests.get(f"{org.instance_url}/services/data/v66.0/jobs/ingest", headers=headers,
                         timeout=10)
        assert r.status_code == 401
        assert r.json() == [{"message": "Session expired or invalid",
                             "errorCode": "INVALID_SESSION_ID"}]
        assert r.headers["WWW-Authenticate"] == "Token"
        assert r.headers["Content-Type"] == "application/json;charset=UTF-8"


def test_expired_tokens_are_refused_and_a_new_one_works(api, org):
    old = org.access_token
    org.expire_tokens()
    r = requests.get(f"{api.base}/limits", headers={"Authorization": f"Bearer {old}"}, timeout=10)
    assert r.status_code == 401
    assert api.request("GET", "/limits").status_code == 200  # org.access_token is renewed


def test_password_and_client_credentials_grants(org):
    url = f"{org.instance_url}/services/oauth2/token"
    r = requests.post(url, data={"grant_type": "password", "client_id": org.client_id,
                                 "client_secret": org.client_secret, "username": org.username,
                                 "password": org.password}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at",
                         "signature"}
    assert body["access_token"].startswith(org.org_id[:15] + "!")
    assert body["instance_url"] == org.instance_url and body["token_type"] == "Bearer"
    assert body["id"] == f"{org.instance_url}/id/{org.org_id}/{org.user_id}"
    assert body["issued_at"].isdigit()
    ok = requests.get(f"{org.instance_url}/services/data/v66.0/limits", timeout=10,
                      headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200

    basic = requests.post(url, data={"grant_type": "client_credentials"},
                          auth=(org.client_id, org.client_secret), timeout=10)
    assert basic.status_code == 200

    bad = requests.post(url, data={"grant_type": "password", "client_id": org.client_id,
                                   "client_secret": org.client_secret, "username": org.username,
                                   "password": "wrong"}, timeout=10)
    assert (bad.status_code, bad.json()) == (
        400, {"error": "invalid_grant", "error_description": "authentication failure"})
    bad_client = requests.post(url, data={"grant_type": "client_credentials", "client_id": "x",
                                          "client_secret": "y"}, timeout=10)
    assert bad_client.json()["error"] == "invalid_client_id"


def test_identity_and_userinfo(api, org):
    info = api.request("GET", f"{org.instance_url}/services/oauth2/userinfo").json()
    assert info["user_id"] == org.user_id and info["organization_id"] == org.org_id
    assert info["preferred_username"] == org.username
    ident = api.request("GET", f"{org.instance_url}/id/{org.org_id}/{org.user_id}").json()
    assert ident["username"] == org.username
    user = api.record("User", org.user_id)
    assert user["Username"] == org.username and user["Name"] == "Local Analyst"
    assert api.record("Organization", org.org_id)["Name"] == "sfbulk_nb Local Org"


def test_limit_info_header_counts_calls(api, org):
    first = api.request("GET", "/limits")
    second = api.request("GET", "/limits")
    used1 = int(first.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert second.headers["Sforce-Limit-Info"] == f"api-usage={used1 + 1}/100000"
    limits = second.json()
    assert limits["DailyApiRequests"] == {"Max": 100000, "Remaining": 100000 - used1 - 1}


def test_daily_limit_exhausted_gives_403(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", limits={"DailyApiRequests": 3}) as org:
        api = BulkHttp(org)
        statuses = [api.request("GET", "/limits").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 403]
        r = api.request("GET", "/limits")
        assert r.json() == [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                             "message": "TotalRequests Limit exceeded."}]


def test_versions_out_of_range(api, org):
    assert api.request("GET", f"{org.instance_url}/services/data/v99.0/limits").status_code == 404
    assert api.request("GET", f"{org.instance_url}/services/data/v25.0/limits").status_code == 410
    assert api.request("GET", f"{org.instance_url}/services/data/vX/limits").status_code == 404
    assert api.request("GET", f"{org.instance_url}/services/data/v57.0/limits").status_code == 200


def test_unknown_path_and_method(api):
    r = api.request("GET", "/nothing/here")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    r = api.request("PUT", "/jobs/ingest")
    assert r.status_code == 405 and r.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_describe_and_global_describe(api):
    d = api.request("GET", "/sobjects/Account/describe/").json()
    assert d["name"] == "Account" and d["keyPrefix"] == "001"
    assert d["urls"]["describe"] == "/services/data/v66.0/sobjects/Account/describe"
    names = {f["name"]: f for f in d["fields"]}
    assert names["customExtIdField__c"]["externalId"] is True
    old = api.request(
        "GET", f"{api.org.instance_url}/services/data/v58.0/sobjects/Account/describe").json()
    assert old["urls"]["describe"] == "/services/data/v58.0/sobjects/Account/describe"
    everything = api.request("GET", "/sobjects").json()
    assert {"Account", "Contact", "Opportunity", "User"} <= {o["name"] for o in everything["sobjects"]}
    assert api.request("GET", "/sobjects/Nope/describe").status_code == 404


def test_record_by_external_id(api):
    api.run("Account", "insert", "Name,customExtIdField__c\nA,EXT-1\nB,TWIN\nC,TWIN\n")
    r = api.request("GET", "/sobjects/Account/customExtIdField__c/EXT-1")
    assert r.status_code == 200 and r.json()["Name"] == "A"
    r = api.request("GET", "/sobjects/Account/customExtIdField__c/EXT-1?fields=Name")
    assert set(r.json()) == {"attributes", "Name"}
    assert api.request("GET", "/sobjects/Account/customExtIdField__c/TWIN").status_code == 300
    assert api.request("GET", "/sobjects/Account/customExtIdField__c/nope").status_code == 404


def test_add_object_from_describe_survives_restart(tmp_path):
    account = json.loads((Path(engine.__file__).parent / "schema" / "Account.json").read_text())
    widget = {**account, "name": "Widget__c", "label": "Widget", "labelPlural": "Widgets",
              "keyPrefix": "a01", "custom": True, "childRelationships": []}
    path = tmp_path / "org.sqlite3"
    with LocalOrg(path) as org:
        org.add_object(widget)
        api = BulkHttp(org)
        info = api.run("Widget__c", "insert", "Name\nW1\n")
        assert info["numberRecordsProcessed"] == 1 and info["numberRecordsFailed"] == 0
    with LocalOrg(path) as org:
        api = BulkHttp(org)
        d = api.request("GET", "/sobjects/Widget__c/describe").json()
        assert d["keyPrefix"] == "a01"


def test_records_jobs_and_credentials_survive_restart(tmp_path):
    path = tmp_path / "org.sqlite3"
    with LocalOrg(path) as org:
        api = BulkHttp(org)
        info = api.run("Account", "insert", "Name\nKeep me\n")
        password, job_id = org.password, info["id"]
        rid = api.results(job_id, "successfulResults").split("\n")[1].split(",")[0].strip('"')
    with LocalOrg(path) as org:
        api = BulkHttp(org)
        assert org.password == password
        assert api.info(job_id)["state"] == "JobComplete"
        assert api.record("Account", rid)["Name"] == "Keep me"
        assert rid in api.results(job_id, "successfulResults")


def test_unfinished_job_resumes_after_restart(tmp_path):
    path = tmp_path / "org.sqlite3"
    org = LocalOrg(path, pace=50).start()
    api = BulkHttp(org)
    names = "\n".join(f"R{i}" for i in range(400))
    job = api.create("Account", "insert")
    api.upload(job["id"], f"Name\n{names}\n")
    api.close(job["id"])
    deadline = time.monotonic() + 30
    while api.info(job["id"]).get("numberRecordsProcessed", 0) < 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    org.stop()
    with LocalOrg(path) as again:
        api = BulkHttp(again)
        info = api.wait(job["id"])
        assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 400
        assert again.store.count_records(again.catalog.get("Account")) == 400


def test_paced_job_moves_through_states(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=1000) as org:
        api = BulkHttp(org)
        job = api.create("Account", "insert")
        api.upload(job["id"], "Name\n" + "\n".join(f"P{i}" for i in range(1000)) + "\n")
        api.close(job["id"])
        seen = []
        while True:
            info = api.info(job["id"])
            seen.append((info["state"], info.get("numberRecordsProcessed", 0)))
            if info["state"] == "JobComplete":
                break
            time.sleep(0.02)
        states = [s for s, _ in seen]
        assert "UploadComplete" in states and "InProgress" in states
        partial = [n for s, n in seen if s == "InProgress" and 0 < n < 1000]
        assert partial, seen


def test_injected_status_drop_and_delay(api, org):
    org.faults.add(status=503, path=r"/limits$", times=2)
    assert [api.request("GET", "/limits").status_code for _ in range(3)] == [503, 503, 200]
    org.faults.add(drop=True, path=r"/limits$")
    with pytest.raises(requests.ConnectionError):
        api.request("GET", "/limits")
    assert api.request("GET", "/limits").status_code == 200
    org.faults.add(delay=0.3, path=r"/limits$")
    start = time.monotonic()
    assert api.request("GET", "/limits").status_code == 200
    assert time.monotonic() - start >= 0.3


def test_faults_over_http_control_endpoint(api, org):
    control = f"{org.instance_url}/__localorg__/faults"
    assert requests.post(control, json={"status": 500}, timeout=10).status_code == 401
    r = api.request("POST", control, json={"status": 500, "method": "PUT", "path": "/batches$"})
    assert r.status_code == 200 and r.json()[0]["status"] == 500
    job = api.create("Account", "insert")
    assert api.upload(job["id"], "Name\nA\n").status_code == 500
    assert api.upload(job["id"], "Name\nA\n").status_code == 201
    api.request("POST", control, json={"status": 500, "times": None, "path": "/nowhere"})
    assert api.request("DELETE", control).json() == []
    assert api.request("POST", control, json={"bogus": 1}).status_code == 400


def test_fail_next_job_leaves_the_rest_unprocessed(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", result_order="input") as org:
        api = BulkHttp(org)
        org.fail_next_job("InvalidBatch : simulated outage")
        info = api.run("Account", "insert", "Name\nA\nB\n")
        assert info["state"] == "Failed"
        assert info["errorMessage"] == "InvalidBatch : simulated outage"
        assert api.results(info["id"], "unprocessedrecords") == 'Name\n"A"\n"B"\n'
        done = api.run("Account", "insert", "Name\nC\n")
        assert done["state"] == "JobComplete"
        # A completed job's upload is not kept (nothing serves it again); a failed one's is.
        assert org.store.job_data(done["id"]) is None
        assert org.store.job_data(info["id"]) == b"Name\nA\nB\n"
        assert api.results(done["id"], "unprocessedrecords") == "Name\n"
        assert api.upload(done["id"], "Name\nD\n").status_code == 400  # still one upload only


def test_upload_over_the_limit_is_refused(api, monkeypatch):
    monkeypatch.setattr(engine, "MAX_UPLOAD_BASE64", 1000)
    job = api.create("Account", "insert")
    r = api.upload(job["id"], "Name\n" + "x" * 800 + "\n")
    assert r.status_code == 413 and r.json()[0]["errorCode"] == "EXCEEDED_QUOTA"
    assert api.upload(job["id"], "Name\nsmall\n").status_code == 201


def test_repr_and_cli_output_keep_secrets_out_of_repr(org):
    assert org.password not in repr(org) and org.access_token not in repr(org)
    assert org.client_secret not in repr(org.identity.credentials)


def test_an_upload_kept_in_the_job_row_by_older_versions_is_still_processed(tmp_path):
    """Org files written before uploads moved to their own table keep them in jobs.data."""
    path = tmp_path / "org.sqlite3"
    with LocalOrg(path) as org:
        api = BulkHttp(org)
        job = api.create("Account", "insert")
        api.upload(job["id"], "Name\nOld\nFormat\n")
        with org.store.transaction() as conn:  # put it where an older version kept it
            conn.execute("UPDATE jobs SET data = ? WHERE id = ?",
                         (org.store.job_data(job["id"]), job["id"]))
            conn.execute("DELETE FROM job_upload_pieces")
        api.close(job["id"])
        info = api.wait(job["id"])
        assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 2
        assert org.store.count_records(org.catalog.get("Account")) == 2


def test_finished_jobs_expire_after_seven_days(tmp_path):
    """As Salesforce does: jobs of every kind and state, with their uploads and results, go
    seven days after they were created; except one the worker may be running."""
    now = [1_800_000_000.0]
    with LocalOrg(tmp_path / "o.sqlite3", clock=lambda: now[0]) as org:
        api = BulkHttp(org)
        old = api.run("Account", "insert", "Name\nA\n")
        old_query = api.request("POST", "/jobs/query",
                                json={"operation": "query", "query": "SELECT Id FROM Account"})
        assert old_query.status_code == 200
        org.engine.wait_idle(30)
        open_job = api.create("Account", "insert")  # never closed: goes too
        running = api.create("Account", "insert")
        org.store.update_job(running["id"], state="InProgress")  # as if the worker had it
        now[0] += 7 * 24 * 3600 - 60
        assert api.run("Account", "insert", "Name\nB\n")["state"] == "JobComplete"
        assert api.request("GET", f"/jobs/ingest/{old['id']}").status_code == 200  # not yet
        now[0] += 2 * 3600  # past seven days, and past the hourly sweep
        api.run("Account", "insert", "Name\nC\n")
        assert api.request("GET", f"/jobs/ingest/{old['id']}").status_code == 404
        assert api.request("GET", f"/jobs/query/{old_query.json()['id']}").status_code == 404
        assert org.store.query("SELECT COUNT(*) FROM job_results WHERE job_id IN (?, ?)",
                               (old["id"], old_query.json()["id"]))[0][0] == 0
        assert api.request("GET", f"/jobs/ingest/{open_job['id']}").status_code == 404
        assert api.request("GET", f"/jobs/ingest/{running['id']}").status_code == 200
        assert org.store.count_records(org.catalog.get("Account")) == 3  # records stay


def test_resources_by_version_list_identity_and_it_answers(api, org):
    r = api.request("GET", "")
    assert r.status_code == 200
    resources = r.json()
    assert resources["sobjects"] == "/services/data/v66.0/sobjects"
    assert resources["tooling"] == "/services/data/v66.0/tooling"
    assert resources["composite"] == "/services/data/v66.0/composite"
    # Absolute, as Salesforce lists it; the identity document it names answers.
    assert resources["identity"] == f"{org.instance_url}/id/{org.org_id}/{org.user_id}"
    ident = api.request("GET", resources["identity"])
    assert ident.status_code == 200 and ident.json()["user_id"] == org.user_id
