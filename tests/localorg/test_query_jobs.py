"""Bulk API 2.0 query jobs over HTTP: the lifecycle and its status codes and key sets,
results paging with locators, value rendering, errors, pacing, and simple-salesforce."""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import time
import tracemalloc
from pathlib import Path

import pytest

from sfbulk_nb.localorg import LocalOrg, engine, ids, queryjobs
from tests.conftest import BulkHttp

CREATE_KEYS = ["id", "operation", "object", "createdById", "createdDate", "systemModstamp",
               "state", "concurrencyMode", "contentType", "apiVersion", "jobType",
               "lineEnding", "columnDelimiter"]
GET_KEYS = CREATE_KEYS + ["numberRecordsProcessed", "retries", "totalProcessingTime",
                          "isPkChunkingSupported"]
DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
TERMINAL = ("JobComplete", "Failed", "Aborted")


def create(api: BulkHttp, soql: str, operation: str = "query", **options):
    return api.request("POST", "/jobs/query",
                       json={"operation": operation, "query": soql, **options})


def info(api: BulkHttp, job_id: str) -> dict:
    r = api.request("GET", f"/jobs/query/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait(api: BulkHttp, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (job := info(api, job_id))["state"] not in TERMINAL:
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.02)
    return job


def run(api: BulkHttp, soql: str, operation: str = "query", timeout: float = 120,
        **options) -> dict:
    r = create(api, soql, operation, **options)
    assert r.status_code == 200, r.text
    return wait(api, r.json()["id"], timeout)


def results(api: BulkHttp, job_id: str, **params):
    return api.request("GET", f"/jobs/query/{job_id}/results", params=params,
                       headers={"Accept": "text/csv"})


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def insert_accounts(org: LocalOrg, names: list[str], description: str | None = None) -> list[str]:
    """Accounts written straight to the store: test data in bulk, faster than a job."""
    obj = org.catalog.get("Account")
    new_ids = org.store.allocate_ids("001", len(names))
    with org.store.transaction() as conn:
        org.store.insert_records(conn, obj, ["Id", "Name", "OwnerId", "Active__c", "Description"],
                                 [(i, n, org.user_id, 0, description)
                                  for i, n in zip(new_ids, names)])
    return new_ids


@pytest.fixture
def paced(tmp_path):
    with LocalOrg(tmp_path / "paced.sqlite3", pace=200) as org:
        yield org


# -- lifecycle ----------------------------------------------------------------------------


def test_create_get_and_list_status_codes_and_key_sets(api, org):
    api.run("Account", "insert", "Name\nA\nB\n")
    r = create(api, "SELECT Id, Name FROM Account")
    assert r.status_code == 200
    job = r.json()
    assert list(job) == CREATE_KEYS
    assert re.fullmatch(r"750\w{15}", job["id"]) and ids.to18(job["id"][:15]) == job["id"]
    assert (job["operation"], job["object"], job["state"], job["jobType"]) == (
        "query", "Account", "UploadComplete", "V2Query")
    assert job["createdById"] == org.user_id and DATE.fullmatch(job["createdDate"])
    assert job["apiVersion"] == 66.0 and isinstance(job["apiVersion"], float)
    assert (job["concurrencyMode"], job["contentType"], job["lineEnding"],
            job["columnDelimiter"]) == ("Parallel", "CSV", "LF", "COMMA")

    done = wait(api, job["id"])
    assert list(done) == GET_KEYS
    assert (done["state"], done["numberRecordsProcessed"], done["retries"]) == ("JobComplete", 2, 0)
    assert done["isPkChunkingSupported"] is True and done["totalProcessingTime"] >= 0

    listed = api.request("GET", "/jobs/query").json()
    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    assert [list(j) for j in listed["records"]] == [CREATE_KEYS]
    assert listed["records"][0]["id"] == job["id"]
    # Query and ingest jobs live apart.
    assert job["id"] not in {j["id"] for j in api.request("GET", "/jobs/ingest").json()["records"]}
    assert api.request("GET", f"/jobs/ingest/{job['id']}").status_code == 404
    ingest_id = api.request("GET", "/jobs/ingest").json()["records"][0]["id"]
    assert api.request("GET", f"/jobs/query/{ingest_id}").json() == NOT_FOUND


def test_list_pages_and_filters(api, monkeypatch):
    monkeypatch.setattr(engine, "LIST_PAGE_SIZE", 2)
    made = [create(api, "SELECT Id FROM Account").json()["id"] for _ in range(3)]
    first = api.request("GET", "/jobs/query").json()
    assert first["done"] is False and len(first["records"]) == 2
    assert first["nextRecordsUrl"].startswith("/services/data/v66.0/jobs/query?queryLocator=")
    second = api.request("GET", first["nextRecordsUrl"].replace("/services/data/v66.0", "")).json()
    assert second == {"done": True, "records": second["records"], "nextRecordsUrl": None}
    assert [j["id"] for j in first["records"] + second["records"]] == made
    assert len(api.request("GET", "/jobs/query?jobType=V2Query").json()["records"]) == 2
    assert api.request("GET", "/jobs/query?jobType=V2Ingest").json()["records"] == []
    assert api.request("GET", "/jobs/query?isPkChunkingEnabled=true").json()["records"] == []


def test_abort_and_delete_follow_the_query_job_rules(paced):
    api = BulkHttp(paced)
    job = create(api, "SELECT Id FROM Account").json()
    r = api.request("DELETE", f"/jobs/query/{job['id']}")
    assert (r.status_code, r.json()) == (400, [{"errorCode": "API_ERROR", "message":
        "Error encountered when deleting the job because the job is not terminated"}])
    r = api.request("PATCH", f"/jobs/query/{job['id']}", json={"state": "UploadComplete"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    r = api.request("PATCH", f"/jobs/query/{job['id']}", json={"state": "Aborted"})
    assert r.status_code == 200
    assert list(r.json()) == CREATE_KEYS and r.json()["state"] == "Aborted"
    again = api.request("PATCH", f"/jobs/query/{job['id']}", json={"state": "Aborted"})
    assert (again.status_code, again.json()) == (400, [{"errorCode": "INVALIDJOBSTATE",
                                                         "message": "Aborting already Completed Job not allowed"}])
    paced.wait_idle()
    assert info(api, job["id"])["state"] == "Aborted"  # the worker leaves it alone
    r = api.request("DELETE", f"/jobs/query/{job['id']}")
    assert r.status_code == 204 and r.content == b""
    for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/results"),
                         ("GET", "/resultPages")]:
        r = api.request(method, f"/jobs/query/{job['id']}{path}", json={"state": "Aborted"})
        assert (r.status_code, r.json()) == (404, NOT_FOUND), (method, path)


def test_finished_jobs_cannot_be_aborted_and_can_be_deleted(api):
    job = run(api, "SELECT Id FROM Account")
    r = api.request("PATCH", f"/jobs/query/{job['id']}", json={"state": "Aborted"})
    assert (r.status_code, r.json()) == (400, [{"errorCode": "INVALIDJOBSTATE",
                                                "message": "Aborting already Completed Job not allowed"}])
    assert api.request("DELETE", f"/jobs/query/{job['id']}").status_code == 204
    assert results(api, job["id"]).status_code == 404
    unknown = ids.make_id("750", 999_999)
    assert api.request("GET", f"/jobs/query/{unknown}").json() == NOT_FOUND


def test_a_paced_org_shows_the_job_in_progress(paced):
    insert_accounts(paced, [f"A{i:03d}" for i in range(300)])
    api = BulkHttp(paced)
    job = create(api, "SELECT Id FROM Account").json()
    seen = []
    while not seen or seen[-1][0] not in TERMINAL:
        now = info(api, job["id"])
        seen.append((now["state"], now["numberRecordsProcessed"]))
        time.sleep(0.05)
    states = [s for s, _ in seen]
    assert states[0] == "UploadComplete" and states[-1] == "JobComplete"
    assert "InProgress" in states
    assert any(0 < n < 300 for s, n in seen if s == "InProgress"), seen
    assert seen[-1][1] == 300


def test_aborting_a_running_job_stops_it(paced):
    insert_accounts(paced, [f"A{i:03d}" for i in range(600)])
    api = BulkHttp(paced)
    job = create(api, "SELECT Id FROM Account").json()
    while info(api, job["id"])["state"] != "InProgress":
        time.sleep(0.02)
    r = api.request("PATCH", f"/jobs/query/{job['id']}", json={"state": "Aborted"})
    assert r.status_code == 200 and r.json()["state"] == "Aborted"
    paced.wait_idle()
    final = info(api, job["id"])
    assert final["state"] == "Aborted" and final["numberRecordsProcessed"] < 600
    r = results(api, job["id"])
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOBSTATE"


def test_results_only_once_complete(paced):
    api = BulkHttp(paced)
    job = create(api, "SELECT Id FROM Account").json()
    for path in ("results", "resultPages"):
        r = api.request("GET", f"/jobs/query/{job['id']}/{path}")
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOBSTATE", path


def test_a_failed_job_has_no_results_and_says_why(api, org):
    org.fail_next_job("InternalServerError : told to fail")
    job = run(api, "SELECT Id FROM Account")
    assert job["state"] == "Failed"
    assert job["errorMessage"] == "InternalServerError : told to fail"
    assert results(api, job["id"]).status_code == 400
    assert api.request("DELETE", f"/jobs/query/{job['id']}").status_code == 204


def test_a_job_interrupted_by_a_restart_runs_again(tmp_path):
    path = tmp_path / "restart.sqlite3"
    with LocalOrg(path) as org:
        insert_accounts(org, [f"A{i:04d}" for i in range(4500)])
        job = run(BulkHttp(org), "SELECT Name FROM Account ORDER BY Name")
        # As if the server had stopped in the middle of the job.
        org.store.update_job(job["id"], state="InProgress", numberRecordsProcessed=2000)
    with LocalOrg(path) as org:
        api = BulkHttp(org)
        again = wait(api, job["id"])
        assert (again["state"], again["numberRecordsProcessed"]) == ("JobComplete", 4500)
        names = [r[0] for r in rows(results(api, job["id"]).text)[1:]]
        assert names == [f"A{i:04d}" for i in range(4500)]


# -- results paging -------------------------------------------------------------------------


def test_results_page_with_max_records_and_locators(api, org):
    names = [f"N{i:02d}" for i in range(25)]
    insert_accounts(org, names)
    job = run(api, "SELECT Id, Name FROM Account ORDER BY Name")
    got, pages, locator = [], [], None
    while len(pages) < 5:
        params = {"maxRecords": 10, **({"locator": locator} if locator else {})}
        r = results(api, job["id"], **params)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
        page = rows(r.text)
        assert page[0] == ["Id", "Name"]  # the header on every page
        assert r.text.startswith('"Id","Name"\n')
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(page) - 1
        pages.append(len(page) - 1)
        got += [name for _, name in page[1:]]
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == [10, 10, 5] and got == names

    first = results(api, job["id"], maxRecords=10)
    second_locator = first.headers["Sforce-Locator"]
    again = [results(api, job["id"], maxRecords=10, locator=second_locator).content
             for _ in range(2)]
    assert again[0] == again[1] and rows(again[0].decode())[1][1] == "N10"
    # A locator is a place in the results: another page size may be asked from it.
    rest = results(api, job["id"], maxRecords=100, locator=second_locator)
    assert rest.headers["Sforce-Locator"] == "null" and rest.headers["Sforce-NumberOfRecords"] == "15"
    whole = results(api, job["id"])
    assert whole.headers["Sforce-Locator"] == "null"
    assert [r[1] for r in rows(whole.text)[1:]] == names


def test_default_page_holds_50000_records(api, org):
    insert_accounts(org, [f"A{i:06d}" for i in range(50_001)])
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    first = results(api, job["id"])
    assert first.headers["Sforce-NumberOfRecords"] == "50000"
    assert first.text.count("\n") == 50_001  # header + rows
    last = results(api, job["id"], locator=first.headers["Sforce-Locator"])
    assert last.headers["Sforce-NumberOfRecords"] == "1" and last.headers["Sforce-Locator"] == "null"
    assert last.text == '"Name"\n"A050000"\n'


def test_empty_results_have_the_header_only(api):
    job = run(api, "SELECT Id, Name FROM Account")
    r = results(api, job["id"])
    assert r.text == '"Id","Name"\n'
    assert (r.headers["Sforce-NumberOfRecords"], r.headers["Sforce-Locator"]) == ("0", "null")


def test_bad_locators_and_max_records_are_refused(api, org):
    insert_accounts(org, ["A", "B"])
    job = run(api, "SELECT Id FROM Account")
    for locator in ("nonsense!", "null", queryjobs.encode_locator(2), queryjobs.encode_locator(99)):
        r = results(api, job["id"], locator=locator)
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR", locator
    for size in ("0", "-1", "ten"):
        r = results(api, job["id"], maxRecords=size)
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "API_ERROR", size


def test_results_are_stored_and_served_in_chunks(api, org):
    insert_accounts(org, [f"A{i:05d}" for i in range(5000)])
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    stored = org.store.query("SELECT seq, LENGTH(body) FROM job_results WHERE job_id = ? AND "
                             "kind = 'queryResults' ORDER BY seq", (job["id"],))
    assert [r[0] for r in stored] == list(range(0, 5000, queryjobs.CHUNK_ROWS))
    r = api.request("GET", f"/jobs/query/{job['id']}/results", stream=True)
    assert r.headers.get("Transfer-Encoding") == "chunked"  # streamed, not built whole
    assert [x[0] for x in rows(r.content.decode())[1:]] == [f"A{i:05d}" for i in range(5000)]


def test_results_are_gzipped_when_asked(api, org):
    insert_accounts(org, ["Gzip"])
    job = run(api, "SELECT Name FROM Account")
    r = api.request("GET", f"/jobs/query/{job['id']}/results", stream=True,
                    headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Sforce-NumberOfRecords"] == "1"
    assert gzip.decompress(r.raw.read(decode_content=False)) == b'"Name"\n"Gzip"\n'
    plain = api.request("GET", f"/jobs/query/{job['id']}/results",
                        headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.content == b'"Name"\n"Gzip"\n'


def test_results_need_the_api_version_of_the_create_call(api, org):
    insert_accounts(org, ["A"])
    job = run(api, "SELECT Name FROM Account")
    other = BulkHttp(org, "v62.0")
    for path in ("results", "resultPages"):
        r = other.request("GET", f"/jobs/query/{job['id']}/{path}")
        assert r.status_code == 409 and r.json()[0]["errorCode"] == "API_ERROR", path
    assert other.request("GET", f"/jobs/query/{job['id']}").status_code == 200


def test_result_pages_lists_page_urls_five_at_a_time(api, org, monkeypatch):
    monkeypatch.setattr(queryjobs, "DEFAULT_PAGE_SIZE", 2)
    names = [f"N{i:02d}" for i in range(11)]
    insert_accounts(org, names)
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    first = api.request("GET", f"/jobs/query/{job['id']}/resultPages").json()
    assert list(first) == ["resultPages", "nextRecordsUrl", "done"]
    assert first["done"] is False and len(first["resultPages"]) == 5
    base = f"/services/data/v66.0/jobs/query/{job['id']}"
    assert all(p["resultUrl"].startswith(f"{base}/results?locator=") for p in first["resultPages"])
    assert first["nextRecordsUrl"].startswith(f"{base}/resultpages?locator=")
    second = api.request("GET", first["nextRecordsUrl"].replace("/services/data/v66.0", "")).json()
    assert second["done"] is True and second["nextRecordsUrl"] is None
    assert len(second["resultPages"]) == 1
    got = []
    for page in first["resultPages"] + second["resultPages"]:
        r = api.request("GET", api.org.instance_url + page["resultUrl"])
        got += [r[0] for r in rows(r.text)[1:]]
    assert got == names


def test_result_pages_needs_api_58(org):
    old = BulkHttp(org, "v57.0")
    job = run(old, "SELECT Name FROM Account")
    assert old.request("GET", f"/jobs/query/{job['id']}/resultPages").json() == NOT_FOUND
    assert results(old, job["id"]).status_code == 200


# -- rendering --------------------------------------------------------------------------------


def _gadget_describe() -> dict:
    account = json.loads((Path(engine.__file__).parent / "schema" / "Account.json").read_text())
    template = next(f for f in account["fields"] if f["name"] == "Founded__c")
    keep = [f for f in account["fields"] if f["name"] in (
        "Id", "IsDeleted", "Name", "OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate",
        "LastModifiedById", "SystemModstamp")]

    def field(name: str, type_: str, **extra) -> dict:
        return {**template, "name": name, "label": name, "type": type_, **extra}

    custom = [
        field("Text__c", "string", length=255),
        field("Flag__c", "boolean", nillable=False, defaultedOnCreate=True, defaultValue=False),
        field("Count__c", "int", digits=9),
        field("Big__c", "long", digits=18),
        field("Ratio__c", "double", precision=18, scale=6),
        field("Price__c", "currency", precision=18, scale=2),
        field("Share__c", "percent", precision=5, scale=2),
        field("Day__c", "date"),
        field("Moment__c", "datetime"),
        field("Clock__c", "time"),
        field("Notes__c", "textarea", length=32000),
        field("Parent__c", "reference", referenceTo=["Account"], relationshipName="Parent__r"),
    ]
    return {**account, "name": "Gadget__c", "label": "Gadget", "labelPlural": "Gadgets",
            "keyPrefix": "a07", "custom": True, "childRelationships": [],
            "fields": keep + custom}


def test_every_field_type_renders_in_salesforce_csv_form(tmp_path):
    with LocalOrg(tmp_path / "types.sqlite3") as org:
        org.add_object(_gadget_describe())
        api = BulkHttp(org)
        parent = api.run("Account", "insert", "Name\nParent Co\n")
        parent_id = rows(api.results(parent["id"], "successfulResults"))[1][0]
        loaded = api.run(
            "Gadget__c", "insert",
            "Name,Text__c,Flag__c,Count__c,Big__c,Ratio__c,Price__c,Share__c,Day__c,Moment__c,"
            "Clock__c,Notes__c,Parent__c\n"
            f'Full,"say ""hi"", ok",true,42,9007199254740993,0.00001,1234.5,12.5,2024-01-31,'
            f'2024-01-31T12:00:00+02:00,10:00,"line1\nline2",{parent_id}\n'
            "Empty,,,,,,,,,,,,\n")
        assert loaded["numberRecordsFailed"] == 0, api.results(loaded["id"], "failedResults")
        job = run(api, "SELECT Name, Text__c, Flag__c, Count__c, Big__c, Ratio__c, Price__c, "
                       "Share__c, Day__c, Moment__c, Clock__c, Notes__c, Parent__c, "
                       "Parent__r.Name FROM Gadget__c ORDER BY Name DESC")
        text = results(api, job["id"]).text
    assert text == (
        '"Name","Text__c","Flag__c","Count__c","Big__c","Ratio__c","Price__c","Share__c",'
        '"Day__c","Moment__c","Clock__c","Notes__c","Parent__c","Parent__r.Name"\n'
        f'"Full","say ""hi"", ok","true","42","9007199254740993","0.00001","1234.5","12.5",'
        f'"2024-01-31","2024-01-31T10:00:00.000Z","10:00:00.000Z","line1\nline2",'
        f'"{parent_id}","Parent Co"\n'
        '"Empty",,"false",,,,,,,,,,,\n')


def test_relationship_columns_and_nulls(api):
    api.run("Account", "insert", "Name,customExtIdField__c\nParent,P1\n")
    api.run("Contact", "insert",
            "LastName,Account.customExtIdField__c\nLovelace,P1\nOrphan,\n")
    job = run(api, "SELECT LastName, Phone, Account.Name, Account.Owner.Email FROM Contact "
                   "ORDER BY LastName")
    assert results(api, job["id"]).text == (
        '"LastName","Phone","Account.Name","Account.Owner.Email"\n'
        '"Lovelace",,"Parent","analyst@sfbulk-nb.local"\n'
        '"Orphan",,,\n')
    # One column holding null: "" rather than an empty line that CSV readers would skip.
    single = run(api, "SELECT Phone FROM Contact")
    body = results(api, single["id"]).text
    assert body == '"Phone"\n""\n""\n'
    assert len(list(csv.DictReader(io.StringIO(body)))) == 2


def test_delimiter_and_line_ending_of_the_job(api, org):
    insert_accounts(org, ["A;1"])
    job = run(api, "SELECT Name, Description FROM Account", columnDelimiter="SEMICOLON",
              lineEnding="CRLF")
    assert (job["columnDelimiter"], job["lineEnding"]) == ("SEMICOLON", "CRLF")
    assert results(api, job["id"]).text == '"Name";"Description"\r\n"A;1";\r\n'


def test_columns_are_alphabetical_before_api_50(org):
    insert_accounts(org, ["A"])
    old = BulkHttp(org, "v49.0")
    job = run(old, "SELECT Name, Id, AccountNumber FROM Account")
    header = rows(results(old, job["id"]).text)[0]
    assert header == ["AccountNumber", "Id", "Name"]
    job = run(BulkHttp(org, "v50.0"), "SELECT Name, Id, AccountNumber FROM Account")
    assert rows(results(BulkHttp(org, "v50.0"), job["id"]).text)[0] == ["Name", "Id", "AccountNumber"]


def test_query_all_includes_deleted_records(api):
    loaded = api.run("Account", "insert", "Name\nGone\nKept\n")
    gone = next(r[0] for r in rows(api.results(loaded["id"], "successfulResults")) if r[2] == "Gone")
    api.run("Account", "delete", f"Id\n{gone}\n")
    live = run(api, "SELECT Name, IsDeleted FROM Account ORDER BY Name")
    assert rows(results(api, live["id"]).text)[1:] == [["Kept", "false"]]
    everything = run(api, "SELECT Name, IsDeleted FROM Account ORDER BY Name", "queryAll")
    assert everything["operation"] == "queryAll"
    assert rows(results(api, everything["id"]).text)[1:] == [["Gone", "true"], ["Kept", "false"]]


# -- create errors -----------------------------------------------------------------------------


def test_soql_errors_at_create_match_the_rest_api(api):
    for soql in ("SELECT Name FRM Account", "SELECT Bogus FROM Account",
                 "SELECT Id FROM ScratchOrgInfo", ""):
        r = create(api, soql)
        rest = api.request("GET", "/query", params={"q": soql})
        assert r.status_code == 400 and rest.status_code == 400
        assert r.json() == rest.json(), soql
    assert create(api, "SELECT Bogus FROM Account").json()[0]["errorCode"] == "INVALID_FIELD"
    missing = api.request("POST", "/jobs/query", json={"operation": "query"})
    assert missing.status_code == 400 and missing.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert api.request("GET", "/jobs/query").json()["records"] == []  # nothing was created


def test_count_and_offset_are_refused(api):
    for soql in ("SELECT COUNT() FROM Account", "SELECT Id FROM Account LIMIT 5 OFFSET 1"):
        r = create(api, soql)
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "API_ERROR", soql
    assert create(api, "SELECT Id FROM Account LIMIT 5").status_code == 200


def test_create_body_validation(api):
    cases = [
        ({"operation": "merge", "query": "SELECT Id FROM Account"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'merge' supplied for property: 'operation'"}),
        ({"operation": "query", "query": "SELECT Id FROM Account", "contentType": "JSON"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'JSON' supplied for property: 'contentType'"}),
        ({"operation": "query", "query": "SELECT Id FROM Account", "columnDelimiter": "DASH"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'DASH' supplied for property: 'columnDelimiter'"}),
        ({"operation": "query", "query": "SELECT Id FROM Account", "lineEnding": "CR"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'CR' supplied for property: 'lineEnding'"}),
    ]
    for body, error in cases:
        r = api.request("POST", "/jobs/query", json=body)
        assert (r.status_code, r.json()) == (400, [error])
    r = api.request("POST", "/jobs/query", data="[1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


# -- clients and scale --------------------------------------------------------------------------


def test_simple_salesforce_reads_every_page(org):
    simple_salesforce = pytest.importorskip("simple_salesforce")
    sf = simple_salesforce.Salesforce(instance_url=org.instance_url,
                                      session_id=org.access_token, version="62.0")
    for attr in ("base_url", "bulk2_url"):  # it builds https:// URLs; the local org is http
        setattr(sf, attr, getattr(sf, attr).replace("https://", "http://", 1))
    names = [f"Acct {i:04d}, \"Ltd\"" for i in range(2500)]
    new_ids = insert_accounts(org, names)
    pages = list(sf.bulk2.Account.query("SELECT Id, Name FROM Account", max_records=1000,
                                        wait=0.1))
    assert len(pages) == 3
    parsed = [list(csv.DictReader(io.StringIO(page, newline=""))) for page in pages]
    assert [len(p) for p in parsed] == [1000, 1000, 500]
    assert sorted((r["Id"], r["Name"]) for p in parsed for r in p) == sorted(zip(new_ids, names))

    BulkHttp(org).run("Account", "delete", f"Id\n{new_ids[0]}\n")
    live = "".join(sf.bulk2.Account.query("SELECT Id FROM Account", max_records=5000, wait=0.1))
    every = "".join(sf.bulk2.Account.query_all("SELECT Id FROM Account", max_records=5000,
                                               wait=0.1))
    assert new_ids[0] not in live and new_ids[0] in every


@pytest.mark.slow
def test_a_million_rows_stream_in_bounded_memory(tmp_path):
    description = "x" * 100
    with LocalOrg(tmp_path / "big.sqlite3") as org:
        for start in range(0, 1_000_000, 100_000):
            insert_accounts(org, [f"A{i:07d}" for i in range(start, start + 100_000)],
                            description)
        api = BulkHttp(org)
        tracemalloc.start()
        try:
            job = run(api, "SELECT Id, Name, Description FROM Account", timeout=600)
            total, locator, size = 0, None, 0
            while locator != "null" and total < 2_000_000:
                r = results(api, job["id"], **({"locator": locator} if locator else {}))
                total += int(r.headers["Sforce-NumberOfRecords"])
                size += len(r.content)
                locator = r.headers["Sforce-Locator"]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert total == 1_000_000 and size > 130_000_000
    assert peak < 60_000_000, f"peak {peak / 1e6:.0f} MB for {size / 1e6:.0f} MB of results"


def test_text_columns_render_as_cell_by_cell_quoting_would():
    """The one-string column renderer against the plain rule (quote, double quotes, null ->
    empty unquoted), including data holding its own placeholder characters."""
    def plain(values):
        return ["" if v is None else '"' + str(v).replace('"', '""') + '"' for v in values]

    cases = [("a", 'b"c', None, "", "x,y", "\n", '""'), (None,), (), ("\x1f", "a"),
             ("\x1e", None), (1, "a"), ("é", None, None), ('"\x1e"', None)]
    for values in cases:
        assert queryjobs._text_column(values) == plain(values), values
