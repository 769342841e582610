"""The local org against hostile or broken input and its own secrets: private files, gzip
bombs, garbage locators, deep SOQL, and 500s that do not leak Python internals."""
from __future__ import annotations

import base64
import gzip
import logging
import os
import stat
import tracemalloc
import zlib

import pytest

from sfbulk_nb.localorg import LocalOrg, engine
from tests.conftest import BulkHttp

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the usual umask, which made org files world-readable
    yield
    os.umask(old)


# -- the org file ----------------------------------------------------------------------------


@posix_only
def test_a_new_org_file_and_its_folder_are_private(tmp_path, umask_022):
    path = tmp_path / "new" / "org.sqlite3"
    with LocalOrg(path) as org:
        BulkHttp(org).run("Account", "insert", "Name\nSecret Customer\n")
        org.add_object({"name": "Thing__c", "keyPrefix": "a0T", "fields": [
            {"name": "Id", "type": "id"}, {"name": "Name", "type": "string"}]})
        assert mode(path.parent) == 0o700
        for suffix in ("", "-wal", "-shm"):
            assert mode(f"{path}{suffix}") == 0o600, suffix
        assert mode(path.with_suffix(".objects")) == 0o700


@posix_only
def test_existing_org_files_are_tightened_and_a_shared_folder_is_not(tmp_path, umask_022):
    path = tmp_path / "org.sqlite3"
    with LocalOrg(path) as org:
        org.add_object({"name": "Thing__c", "keyPrefix": "a0T", "fields": [
            {"name": "Id", "type": "id"}]})
    files = [f for f in (path, f"{path}-wal", f"{path}-shm") if os.path.exists(f)]
    for loose in files:
        os.chmod(loose, 0o644)  # as older versions left them
    os.chmod(path.with_suffix(".objects"), 0o755)
    os.chmod(tmp_path, 0o755)
    with LocalOrg(path):
        assert [mode(f) for f in files] == [0o600] * len(files)
        assert mode(path.with_suffix(".objects")) == 0o700
        assert mode(tmp_path) == 0o755  # the user's folder: not ours to change


# -- gzip uploads ----------------------------------------------------------------------------


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(size >> 20)) + packer.flush()


def put_gzip(api: BulkHttp, job_id: str, body: bytes):
    return api.request("PUT", f"/jobs/ingest/{job_id}/batches", data=body,
                       headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})


def test_a_gzip_upload_is_unpacked(api):
    job = api.create("Account", "insert")
    assert put_gzip(api, job["id"], gzip.compress(b"Name\nZipped\n")).status_code == 201
    api.close(job["id"])
    assert api.wait(job["id"])["numberRecordsProcessed"] == 1


def test_a_gzip_bomb_is_refused_within_the_upload_limit(api, monkeypatch):
    monkeypatch.setattr(engine, "MAX_UPLOAD_BASE64", 4 << 20)  # 3 MB of CSV
    bomb = gzip_of_zeros(256 << 20)  # 256 KB that unpack to 256 MB
    job = api.create("Account", "insert")
    tracemalloc.start()
    try:
        r = put_gzip(api, job["id"], bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 413 and r.json()[0]["errorCode"] == "EXCEEDED_QUOTA"
    assert peak < 32 << 20, f"peak {peak >> 20} MB"
    assert put_gzip(api, job["id"], b"not gzip at all").status_code == 400
    assert put_gzip(api, job["id"], gzip.compress(b"Name\nAfter\n")).status_code == 201


# -- garbage locators and options ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ingest", "query"])
@pytest.mark.parametrize("locator", ["01gL0000000000AAAA-" + "9" * 30, "x-" + "9" * 5000,
                                     "01gL0000000000AAAA--5", "01gL0000000000AAAA-\u00b2",
                                     "nonsense"],
                         ids=["beyond-64-bits", "5000-digits", "negative", "not-ascii", "text"])
def test_a_garbage_job_list_locator_is_a_400(api, kind, locator):
    r = api.request("GET", f"/jobs/{kind}", params={"queryLocator": locator})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_garbage_query_result_locators_and_sizes_are_400s(api, org):
    api.run("Account", "insert", "Name\nA\nB\n")
    job = api.request("POST", "/jobs/query",
                      json={"operation": "query", "query": "SELECT Name FROM Account"}).json()
    org.wait_idle()
    results = f"/jobs/query/{job['id']}/results"
    huge = base64.b64encode(b"9" * 5000).decode().rstrip("=")
    for params in ({"locator": huge}, {"locator": "%%%"}, {"maxRecords": "9" * 5000},
                   {"maxRecords": "\u00b2"}):
        r = api.request("GET", results, params=params)
        assert r.status_code == 400, (params, r.text)
    r = api.request("GET", f"/jobs/query/{job['id']}/resultPages", params={"locator": huge})
    assert r.status_code == 400
    assert api.request("GET", results, params={"maxRecords": "1"}).status_code == 200


def test_garbage_rest_query_locators_are_400s(api):
    api.run("Account", "insert", "Name\n" + "".join(f"R{i}\n" for i in range(201)))
    first = api.request("GET", "/query", params={"q": "SELECT Name FROM Account"},
                        headers={"Sforce-Query-Options": "batchSize=200"}).json()
    cursor = first["nextRecordsUrl"].rpartition("/")[2].rpartition("-")[0]
    for offset in ("9" * 30, "9" * 5000, "\u00b2", "-1"):
        r = api.request("GET", f"/query/{cursor}-{offset}")
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert api.request("GET", first["nextRecordsUrl"].split("/v66.0")[1]).json()["done"]


def test_a_garbage_batch_size_is_ignored(api):
    r = api.request("GET", "/query", params={"q": "SELECT Id FROM Account"},
                    headers={"Sforce-Query-Options": "batchSize=\u00b2"})
    assert r.status_code == 200


# -- hostile SOQL ----------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "SELECT Id FROM Account WHERE " + "(" * depth + "Name = 'a'" + ")" * depth


def alternating(depth: int) -> str:
    """Each level a NOT and an AND/OR group: the deepest SQL per level of parentheses."""
    where = "Name != 'a'"
    for level in range(depth // 2):
        where = f"Name != 'b' {'AND' if level % 2 else 'OR'} (NOT ({where}))"
    return "SELECT Id FROM Account WHERE " + where


def create_query_job(api: BulkHttp, soql: str):
    return api.request("POST", "/jobs/query", json={"operation": "query", "query": soql})


@pytest.mark.parametrize("soql", [nested(10_000), nested(21), alternating(22)],
                         ids=["10000-parentheses", "21-parentheses", "22-not-and-or"])
def test_too_deeply_nested_soql_is_malformed(api, soql):
    for r in (api.request("GET", "/query", params={"q": soql}), create_query_job(api, soql)):
        assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY", r.text


def test_soql_at_the_nesting_limit_and_long_chains_run(api):
    for soql in (nested(20), alternating(20),
                 "SELECT Id FROM Account WHERE " + " OR ".join(["Name = 'a'"] * 3000)):
        r = api.request("GET", "/query", params={"q": soql})
        assert r.status_code == 200, r.text[:300]


def test_soql_beyond_sqlite_or_salesforce_limits_is_a_400(api):
    # Within the nesting limit, but every level's long OR chain nests the SQL further.
    where = "Name = 'a'"
    for _ in range(20):
        where = " OR ".join(["Name = 'b'"] * 40) + f" OR ({where})"
    soql = "SELECT Id FROM Account WHERE " + where
    for r in (api.request("GET", "/query", params={"q": soql}), create_query_job(api, soql)):
        assert r.status_code == 400, r.text
        assert r.json()[0]["errorCode"] == "QUERY_TOO_COMPLICATED"
    too_long = "SELECT Id FROM Account WHERE Name = '" + "x" * 100_000 + "'"
    r = create_query_job(api, too_long)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY"
    huge_number = "SELECT Id FROM Account WHERE NumberOfEmployees = " + "1" * 5000
    assert api.request("GET", "/query", params={"q": huge_number}).status_code == 200


# -- unexpected errors -----------------------------------------------------------------------


def test_a_bug_answers_500_without_python_internals(api, org, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail at /home/someone/org.sqlite3")

    monkeypatch.setattr(org.app, "on_limits", broken)
    with caplog.at_level(logging.ERROR, logger="sfbulk_nb.localorg.app"):
        r = api.request("GET", "/limits")
    assert r.status_code == 500
    [error] = r.json()
    assert error["errorCode"] == "UNKNOWN_EXCEPTION"
    assert error["message"].startswith("An unexpected error occurred. Please include this "
                                       "ErrorId if you contact support: ")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    error_id = error["message"].rpartition(": ")[2]
    [record] = [rec for rec in caplog.records if error_id in rec.getMessage()]
    assert "secret detail" in caplog.text and record.exc_info is not None


def test_a_bug_in_the_worker_fails_the_job_without_python_internals(api, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(engine, "apply_batch", broken)
    with caplog.at_level(logging.ERROR, logger="sfbulk_nb.localorg.engine"):
        info = api.run("Account", "insert", "Name\nA\n")
    assert info["state"] == "Failed" and "secret" not in info["errorMessage"]
    assert info["errorMessage"].startswith("InternalServerError : ")
    assert "secret detail" in caplog.text
