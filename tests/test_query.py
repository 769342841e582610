"""query_df against a local org: typed frames from Bulk API 2.0 query jobs."""
from __future__ import annotations

import datetime as dt

import pandas as pd
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
