"""query_df against a local org: typed frames from Bulk API 2.0 query jobs."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.query import query_df


@pytest.fixture
def client(org):
    return sfb.connect(org)


@pytest.fixture
def accounts(client):
    df = pd.DataFrame({
        "customExtIdField__c": ["Q1", "Q2", "Q3"],
        "Name": ['Comma, "Quoted"', "multi\nline", "Plain"],
        "NumberOfEmployees": pd.array([10, None, 7], dtype="Int64"),
        "AnnualRevenue": [1500.0, None, 2.0],
        "Active__c": [True, False, True],
        "Founded__c": [dt.date(2001, 2, 3), None, dt.date(1999, 12, 31)],
        "LastReviewed__c": pd.to_datetime(["2024-01-31T10:00:00.123Z", None,
                                           "2020-06-01T00:00:00Z"], utc=True, format="ISO8601"),
        "Industry": ["Banking", None, "Technology"],
    })
    assert sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False).ok
    return df


def test_every_field_type_is_typed_from_describe(accounts):
    out = query_df("SELECT customExtIdField__c, Name, NumberOfEmployees, AnnualRevenue, "
                   "Active__c, Founded__c, LastReviewed__c, Industry, Id, CreatedDate "
                   "FROM Account ORDER BY customExtIdField__c", progress=False)
    assert dict(out.dtypes.astype(str)) == {
        "customExtIdField__c": "string", "Name": "string", "NumberOfEmployees": "Int64",
        "AnnualRevenue": "float64", "Active__c": "boolean",
        "Founded__c": "date32[day][pyarrow]", "LastReviewed__c": "datetime64[ms, UTC]",
        "Industry": "string", "Id": "string", "CreatedDate": "datetime64[ms, UTC]"}
    expected = accounts.set_index("customExtIdField__c")
    got = out.set_index("customExtIdField__c")
    assert list(got["Name"]) == list(expected["Name"])
    pd.testing.assert_series_equal(got["NumberOfEmployees"], expected["NumberOfEmployees"],
                                   check_names=False, check_index=False)
    assert got["AnnualRevenue"].isna().tolist() == [False, True, False]
    assert got["Active__c"].tolist() == [True, False, True]
    assert got["Founded__c"].iloc[0] == dt.date(2001, 2, 3) and pd.isna(got["Founded__c"].iloc[1])
    assert got["LastReviewed__c"].iloc[0] == pd.Timestamp("2024-01-31T10:00:00.123Z")
    assert pd.isna(got["Industry"].loc["Q2"])


def test_relationship_columns_are_named_as_in_the_soql(client, accounts, org):
    sfb.insert_df(pd.DataFrame({"LastName": ["Ada"], "Account.customExtIdField__c": ["Q1"]}),
                  "Contact", progress=False)
    out = query_df("SELECT LastName, Account.Name, Account.NumberOfEmployees, Owner.Email "
                   "FROM Contact", progress=False)
    assert list(out.columns) == ["LastName", "Account.Name", "Account.NumberOfEmployees",
                                 "Owner.Email"]
    assert out.loc[0, "Account.Name"] == 'Comma, "Quoted"'
    assert str(out.dtypes["Account.NumberOfEmployees"]) == "Int64"
    assert out.loc[0, "Owner.Email"] == "analyst@sfbulk-nb.local"


def test_empty_result_has_the_columns_and_dtypes(client):
    out = query_df("SELECT Id, NumberOfEmployees, Founded__c, Active__c FROM Account",
                   progress=False)
    assert len(out) == 0
    assert dict(out.dtypes.astype(str)) == {
        "Id": "string", "NumberOfEmployees": "Int64", "Founded__c": "date32[day][pyarrow]",
        "Active__c": "boolean"}


def test_pages_are_streamed_and_concatenated(client, org):
    sfb.insert_df(pd.DataFrame({"Name": [f"P{i:04d}" for i in range(2500)]}), "Account",
                  progress=False)
    calls = org.api_calls_today
    out = query_df("SELECT Name FROM Account ORDER BY Name", page_size=1000, progress=False)
    assert out["Name"].tolist() == [f"P{i:04d}" for i in range(2500)]
    # create, >= 1 poll, 3 result pages
    assert org.api_calls_today - calls >= 5


def test_a_paged_frame_equals_the_one_page_frame_with_nulls_in_every_typed_column(client):
    n = 60
    df = pd.DataFrame({
        "customExtIdField__c": [f"M{i:03d}" for i in range(n)],
        "Name": [f'Multi, "page" {i}' for i in range(n)],
        "NumberOfEmployees": pd.array([None if i % 3 == 0 else i * 10 for i in range(n)],
                                      dtype="Int64"),
        "AnnualRevenue": [None if i % 4 == 1 else i * 1000.0 for i in range(n)],
        "Active__c": [i % 2 == 0 for i in range(n)],
        "Founded__c": [None if i % 5 == 2 else dt.date(2000, 1, 1) + dt.timedelta(days=i)
                       for i in range(n)],
        "LastReviewed__c": pd.to_datetime(
            [None if i % 6 == 3 else f"2024-01-01T00:{i:02d}:07.500Z" for i in range(n)],
            utc=True, format="ISO8601"),
        "Industry": [None if i % 7 == 4 else "Banking" for i in range(n)],
    })
    assert sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False).ok
    soql = f"SELECT {', '.join(df.columns)} FROM Account ORDER BY customExtIdField__c"
    one_page = query_df(soql, progress=False)
    paged = query_df(soql, page_size=7, progress=False)  # 9 pages, the last one short
    pd.testing.assert_frame_equal(paged, one_page)
    text = pd.StringDtype("pyarrow")
    expected = df.astype({"customExtIdField__c": text, "Name": text, "Industry": text,
                          "Active__c": "boolean", "LastReviewed__c": "datetime64[ms, UTC]"})
    expected["Founded__c"] = pd.array(pa.array(df["Founded__c"], pa.date32()),
                                      dtype=pd.ArrowDtype(pa.date32()))
    pd.testing.assert_frame_equal(one_page, expected)


def test_frame_filled_from_sliced_chunks_equals_arrow_conversion():
    from sfbulk_nb.query import _Frame

    n = 100
    table = pa.table({
        "i": pa.array([None if k % 3 == 0 else k - 50 for k in range(n)], pa.int64()),
        "f": pa.array([None if k % 4 == 0 else k / 8 for k in range(n)], pa.float64()),
        "b": pa.array([None if k % 5 == 0 else k % 3 == 1 for k in range(n)], pa.bool_()),
        "t": pa.array([None if k % 6 == 0 else k * 86_400_123 for k in range(n)],
                      pa.timestamp("ms", tz="UTC")),
        "d": pa.array([None if k % 7 == 0 else k * 400 for k in range(n)], pa.date32()),
        "s": pa.array([None if k % 8 == 0 else f"v{k}" for k in range(n)], pa.large_string()),
    })
    frame = _Frame({"i": "int", "f": "double", "b": "boolean", "t": "datetime", "d": "date",
                    "s": "string"}, expected_rows=3)  # fewer than the pages hold: it grows
    start = 0
    for size in (1, 13, 0, 40, 46):  # pages whose chunks start mid-byte of Arrow's bitmaps
        frame.add(pa.Table.from_batches(table.slice(start, size).to_batches(max_chunksize=9),
                                        schema=table.schema))
        start += size
    expected = pd.DataFrame({
        "i": pd.array(table["i"].to_pylist(), dtype="Int64"),
        "f": table["f"].to_pandas(),
        "b": pd.array(table["b"].to_pylist(), dtype="boolean"),
        "t": pd.Series(table["t"].to_pylist(), dtype="datetime64[ms, UTC]"),
        "d": pd.array(table["d"], dtype=pd.ArrowDtype(pa.date32())),
        "s": pd.array(table["s"].to_pylist(), dtype=pd.StringDtype("pyarrow")),
    })
    pd.testing.assert_frame_equal(frame.to_pandas(), expected)


def test_include_deleted_runs_query_all(client, accounts):
    ids = query_df("SELECT Id FROM Account WHERE customExtIdField__c = 'Q3'", progress=False)
    sfb.delete_df(ids["Id"], "Account", progress=False)
    assert len(query_df("SELECT Id FROM Account", progress=False)) == 2
    everything = query_df("SELECT customExtIdField__c, IsDeleted FROM Account", progress=False,
                          include_deleted=True)
    assert dict(zip(everything["customExtIdField__c"], everything["IsDeleted"])) == {
        "Q1": False, "Q2": False, "Q3": True}


def test_round_trip_upsert_then_query_is_equal(client):
    df = pd.DataFrame({"customExtIdField__c": [f"R{i}" for i in range(50)],
                       "Name": [f"Round, trip {i}" for i in range(50)],
                       "NumberOfEmployees": pd.array(range(50), dtype="Int64")})
    sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False)
    back = query_df("SELECT customExtIdField__c, Name, NumberOfEmployees FROM Account",
                    progress=False)
    back = back.sort_values("NumberOfEmployees").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_soql_errors_are_request_errors(client):
    with pytest.raises(errors.RequestError) as e:
        query_df("SELECT Name FRM Account", progress=False)
    assert e.value.error_code == "MALFORMED_QUERY" and e.value.status == 400
    with pytest.raises(errors.RequestError) as e:
        query_df("SELECT Name FROM Nope", progress=False)
    assert e.value.error_code == "INVALID_TYPE"


def test_failed_query_job_raises_job_failed_error(client, org, monkeypatch):
    from sfbulk_nb import jobs

    real = jobs.get_query_job

    def failed(org_, job_id):
        info = real(org_, job_id)
        return jobs.JobInfo({**info.raw, "state": "Failed", "errorMessage": "too big"})

    monkeypatch.setattr(jobs, "get_query_job", failed)
    with pytest.raises(errors.JobFailedError, match="too big"):
        query_df("SELECT Name FROM Account", progress=False)


def test_text_progress_for_queries(client, accounts, capsys):
    query_df("SELECT Name FROM Account", progress="text")
    err = capsys.readouterr().err
    assert "query of Account on local org" in err and "3 rows" in err


def test_parsing_falls_back_to_arrows_default_pool(client, accounts, monkeypatch):
    from sfbulk_nb import query

    def no_jemalloc():
        raise pa.ArrowNotImplementedError("This Arrow build does not enable jemalloc")

    expected = query_df("SELECT customExtIdField__c, NumberOfEmployees, Name FROM Account "
                        "ORDER BY customExtIdField__c", progress=False)
    monkeypatch.setattr(pa, "jemalloc_memory_pool", no_jemalloc)
    query._memory_pool.cache_clear()
    try:
        assert query._memory_pool() is None  # a pyarrow built without jemalloc
        query._memory_pool.cache_clear()
        monkeypatch.undo()
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        assert query._memory_pool() is None  # the user's choice of pool stands
        out = query_df("SELECT customExtIdField__c, NumberOfEmployees, Name FROM Account "
                       "ORDER BY customExtIdField__c", progress=False)
        pd.testing.assert_frame_equal(out, expected)
    finally:
        query._memory_pool.cache_clear()


def test_a_semi_join_runs_in_a_bulk_query(client):
    accounts = pd.DataFrame({"Name": ["With", "Without"], "customExtIdField__c": ["S1", "S2"]})
    assert sfb.upsert_df(accounts, "Account", "customExtIdField__c", progress=False).ok
    contacts = pd.DataFrame({"LastName": ["Child"], "Account.customExtIdField__c": ["S1"]})
    assert sfb.insert_df(contacts, "Contact", progress=False).ok
    soql = "SELECT Name FROM Account WHERE Id {} (SELECT AccountId FROM Contact)"
    assert query_df(soql.format("IN"), progress=False)["Name"].tolist() == ["With"]
    assert query_df(soql.format("NOT IN"), progress=False)["Name"].tolist() == ["Without"]
