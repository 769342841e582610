"""An upload is stored in pieces and a job reads it back a piece at a time (store.py,
csvfmt.open_upload): the same results, counters and records as an upload read whole, and
a job stopped halfway resumes after a restart."""
from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from collections.abc import Iterator

import pytest

from sfbulk_nb.localorg import LocalOrg, csvfmt, engine, http_ingest, store
from tests.conftest import BulkHttp

# Enough rows for three internal batches of 10,000 and several of Arrow's 1 MB blocks.
ROWS = 25_000
HEADER = "customExtIdField__c,Name,NumberOfEmployees,BillingCity,Description"


def upsert_csv(rows: int = ROWS, bad_every: int = 997) -> str:
    """An upsert of `rows` Accounts, every `bad_every`-th with a bad number (a failed row),
    values quoted with commas, quotes and line breaks among them."""
    lines = [HEADER]
    for i in range(rows):
        employees = "many" if i % bad_every == 0 else str(i % 5000)
        lines.append(f'EXT-{i:06d},"Account, {i}",{employees},"City ""{i % 97}""",'
                     f'"line one\nline two of row {i}"')
    return "\n".join(lines) + "\n"


def outcome(org: LocalOrg, job_id: str) -> dict:
    """What a client can see of a finished job, and the records it wrote."""
    api = BulkHttp(org)
    info = api.info(job_id)
    records = org.store.query(
        'SELECT Id, customExtIdField__c, Name, NumberOfEmployees, BillingCity, Description '
        'FROM "sobj_Account" ORDER BY Id')
    return {
        "counters": {k: info[k] for k in ("state", "numberRecordsProcessed",
                                          "numberRecordsFailed", "errorMessage")
                     if k in info},
        "results": {kind: api.results(job_id, kind) for kind in engine.RESULT_KINDS},
        "records": [tuple(r) for r in records],
    }


def run_job(org: LocalOrg, data: str) -> str:
    api = BulkHttp(org)
    info = api.run("Account", "upsert", data, externalIdFieldName="customExtIdField__c")
    return info["id"]


@pytest.fixture
def small_pieces(monkeypatch):
    """Store uploads in 64 KB pieces, so a test upload spans many."""
    monkeypatch.setattr(store, "UPLOAD_PIECE", 64 * 1024)


def test_a_stored_upload_reads_back_any_range_across_its_pieces(tmp_path, small_pieces):
    data = bytes(range(256)) * 1000  # 256,000 bytes: four pieces, the last one short
    with LocalOrg(tmp_path / "o.sqlite3") as org:
        job = BulkHttp(org).create("Account", "insert")
        org.store.save_upload(job["id"], data, "2026-01-01T00:00:00.000+0000")
        assert org.store.query("SELECT COUNT(*) FROM job_upload_pieces")[0][0] == 4
        stored = org.store.upload(job["id"])
        assert stored.size == len(data)
        for offset, length in ((0, 10), (65_530, 20), (1, 200_000), (250_000, 10_000),
                               (0, len(data)), (len(data), 5)):
            assert stored.read(offset, length) == data[offset:offset + length]
        assert org.store.job_data(job["id"]) == data
        org.store.drop_upload(job["id"])
        assert org.store.upload(job["id"]) is None
        assert org.store.query("SELECT COUNT(*) FROM job_upload_pieces")[0][0] == 0


def test_an_empty_upload_still_fails_its_job_for_having_no_content(api, org):
    job = api.create("Account", "insert")
    org.store.save_upload(job["id"], b"", "2026-01-01T00:00:00.000+0000")
    api.close(job["id"])
    info = api.wait(job["id"])
    assert (info["state"], info["errorMessage"]) == (
        "Failed", "ClientInputError : No content found in the uploaded data")


def test_an_upload_kept_whole_by_the_previous_version_is_still_processed(tmp_path):
    """Org files written before uploads were kept in pieces hold them in job_uploads."""
    with LocalOrg(tmp_path / "org.sqlite3") as org:
        api = BulkHttp(org)
        job = api.create("Account", "insert")
        api.upload(job["id"], "Name\nOld\nFormat\n")
        with org.store.transaction() as conn:  # put it where the previous version kept it
            conn.execute("INSERT INTO job_uploads (job_id, data) VALUES (?, ?)",
                         (job["id"], org.store.job_data(job["id"])))
            conn.execute("DELETE FROM job_upload_pieces")
        api.close(job["id"])
        info = api.wait(job["id"])
        assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 2
        assert org.store.count_records(org.catalog.get("Account")) == 2
        assert org.store.query("SELECT COUNT(*) FROM job_uploads")[0][0] == 0  # dropped


def test_a_job_read_a_piece_at_a_time_ends_as_one_read_whole(tmp_path, small_pieces,
                                                              monkeypatch):
    """Byte for byte: the result files (shuffled by the same seed), the counters and the
    records, against the same job with its upload read whole (as before pieces)."""
    data = upsert_csv()
    with LocalOrg(tmp_path / "pieces.sqlite3", seed=7) as org:
        by_pieces = outcome(org, run_job(org, data))
    with monkeypatch.context() as whole:
        whole.setattr(csvfmt, "_checked_in_pieces", lambda *args: None)
        with LocalOrg(tmp_path / "whole.sqlite3", seed=7) as org:
            read_whole = outcome(org, run_job(org, data))
    assert by_pieces == read_whole
    assert by_pieces["counters"] == {"state": "JobComplete", "numberRecordsProcessed": ROWS,
                                     "numberRecordsFailed": 26}
    assert len(by_pieces["records"]) == ROWS - 26


# The stop is an exception in the job worker's thread, which pytest reports.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_stopped_halfway_resumes_after_a_restart(tmp_path, small_pieces, monkeypatch):
    """A job whose server stops after two committed batches of 10,000 rows: restarted, it
    goes on from row 20,000 (across Arrow's blocks and the upload's pieces), and ends as
    the same job run in one go."""
    data = upsert_csv()
    with LocalOrg(tmp_path / "one_go.sqlite3", result_order="input") as org:
        in_one_go = outcome(org, run_job(org, data))

    path = tmp_path / "restarted.sqlite3"
    batches = []
    real_apply = engine.apply_batch

    def stop_after_two(*args, **kwargs):
        if len(batches) == 2:
            raise SystemExit("the server stops")  # a BaseException: nothing of it commits
        batches.append(1)
        return real_apply(*args, **kwargs)

    with monkeypatch.context() as stopping:
        stopping.setattr(engine, "apply_batch", stop_after_two)
        with LocalOrg(path, result_order="input") as org:
            api = BulkHttp(org)
            job = api.create("Account", "upsert", externalIdFieldName="customExtIdField__c")
            api.upload(job["id"], data)
            api.close(job["id"])
            org.engine.wait_idle(60)
            stopped = api.info(job["id"])
    assert (stopped["state"], stopped["numberRecordsProcessed"]) == ("InProgress", 20_000)

    with LocalOrg(path, result_order="input") as org:
        BulkHttp(org).wait(job["id"])
        resumed = outcome(org, job["id"])
    assert resumed == in_one_go


def test_a_bad_row_at_the_end_of_a_big_upload_fails_the_job_before_any_row_is_written(
        api, org, small_pieces):
    data = upsert_csv() + "EXT-X,too,few\n"
    info = api.run("Account", "upsert", data, externalIdFieldName="customExtIdField__c")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == (
        f"ClientInputError : Wrong number of columns at line {2 * ROWS + 2}: expected 5, "
        "found 3")
    assert org.store.count_records(org.catalog.get("Account")) == 0
    unprocessed = list(csv.reader(io.StringIO(api.results(info["id"], "unprocessedrecords"),
                                              newline="")))
    assert len(unprocessed) == 1 + ROWS + 1


# -- the PUT --------------------------------------------------------------------------------


def put(api: BulkHttp, job_id: str, body, **headers: str):
    return api.request("PUT", f"/jobs/ingest/{job_id}/batches", data=body,
                       headers={"Content-Type": "text/csv", **headers})


def test_every_kind_of_body_is_kept_as_sent_and_no_spooled_copy_stays(tmp_path, small_pieces):
    """With its length, in chunks of unknown length, gzip: the upload is kept as sent,
    whether it spans pieces or not; the body spooled on its way in is gone, after a
    refused PUT too."""
    data = upsert_csv(3000).encode()  # about 300 KB: five pieces of 64 KB
    with LocalOrg(tmp_path / "org.sqlite3") as org:
        api = BulkHttp(org)
        files = set(tmp_path.iterdir())
        for body, headers in ((data, {}), (b"Name\nshort\n", {}),
                              (iter([data[:1000], data[1000:]]), {}),  # chunked
                              (gzip.compress(data), {"Content-Encoding": "gzip"})):
            job = api.create("Account", "insert")
            assert put(api, job["id"], body, **headers).status_code == 201
            sent = gzip.decompress(body) if headers else (
                data if isinstance(body, Iterator) else body)
            assert org.store.job_data(job["id"]) == sent
            assert put(api, job["id"], b"Name\nagain\n").status_code == 400  # one upload
            assert put(api, job["id"], b"not gzip", **{"Content-Encoding": "gzip"}
                       ).status_code == 400
            assert org.store.job_data(job["id"]) == sent
        assert set(tmp_path.iterdir()) == files


def test_the_put_never_holds_the_upload_in_memory(tmp_path, monkeypatch):
    """Python's peak memory while the server handles a 12 MB PUT: a few pieces of 1 MB."""
    handle = http_ingest.IngestResource.on_upload
    peaks = []

    def measured(*args, **kwargs):
        tracemalloc.reset_peak()
        try:
            return handle(*args, **kwargs)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])

    monkeypatch.setattr(http_ingest.IngestResource, "on_upload", measured)
    data = upsert_csv(150_000).encode()
    with LocalOrg(tmp_path / "org.sqlite3") as org:  # made after the patch: it serves it
        api = BulkHttp(org)
        job = api.create("Account", "insert")
        tracemalloc.start()
        try:
            assert put(api, job["id"], data).status_code == 201
        finally:
            tracemalloc.stop()
    assert peaks[0] < len(data) / 3, f"peak {peaks[0] >> 10} KB for {len(data) >> 10} KB"
