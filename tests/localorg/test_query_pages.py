"""Bulk 2.0 query result pages sized by bytes as well as rows when maxRecords is not given,
seen by GET results, by resultPages and by the client's query_df."""
from __future__ import annotations

import pytest

import sfbulk_nb as sfb
from sfbulk_nb.localorg import queryjobs
from sfbulk_nb.query import query_df
from tests.localorg.test_query_jobs import insert_accounts, results, rows, run

# Rows of `SELECT Name` are `"<name>"\n`: a 27-character name makes a 30-byte row.
SHORT = [f"a{i}" + "x" * 25 for i in range(5)]
LONG = "b" + "x" * 199  # a 203-byte row, more than a page's bytes on its own
LAST = [f"c{i}" + "x" * 25 for i in range(2)]
NAMES = SHORT + [LONG] + LAST
# With 100 bytes a page: 3 rows of 30 (a 4th would make 120); then a3, a4 (60, and b
# would pass 100); b alone, however long; then c0, c1.
PAGES = [3, 2, 1, 2]


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(queryjobs, "DEFAULT_PAGE_BYTES", 100)
    monkeypatch.setattr(queryjobs, "CHUNK_ROWS", 2)  # page ends fall inside stored chunks


def read_pages(api, job_id: str, **params) -> list[list[str]]:
    pages, locator = [], None
    while True:
        r = results(api, job_id, **params, **({"locator": locator} if locator else {}))
        assert r.status_code == 200, r.text
        body = rows(r.text)
        assert body[0] == ["Name"]
        assert int(r.headers["Sforce-NumberOfRecords"]) == len(body) - 1
        pages.append([row[0] for row in body[1:]])
        locator = r.headers["Sforce-Locator"]
        if locator == "null":
            return pages


def test_pages_stop_before_their_bytes_pass_the_limit(api, org, small_pages):
    insert_accounts(org, NAMES)
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    pages = read_pages(api, job["id"])
    assert [len(p) for p in pages] == PAGES
    assert sum(pages, []) == NAMES


def test_max_records_alone_sizes_the_page(api, org, small_pages):
    insert_accounts(org, NAMES)
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    pages = read_pages(api, job["id"], maxRecords=4)
    assert [len(p) for p in pages] == [4, 4] and sum(pages, []) == NAMES


def test_result_pages_cut_the_same_pages(api, org, small_pages):
    insert_accounts(org, NAMES)
    job = run(api, "SELECT Name FROM Account ORDER BY Name")
    listed = api.request("GET", f"/jobs/query/{job['id']}/resultPages").json()
    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    got = []
    for page in listed["resultPages"]:
        r = api.request("GET", org.instance_url + page["resultUrl"])
        got.append([row[0] for row in rows(r.text)[1:]])
    assert [len(p) for p in got] == PAGES and sum(got, []) == NAMES


def test_query_df_reads_every_byte_sized_page(org, small_pages):
    sfb.connect(org)
    insert_accounts(org, NAMES)
    calls = org.api_calls_today
    out = query_df("SELECT Name FROM Account ORDER BY Name", progress=False)
    assert out["Name"].tolist() == NAMES
    assert org.api_calls_today - calls >= 2 + len(PAGES)  # create, poll(s), four pages
