"""query_df's dtype_backend and query_to_file, against a local org: the same rows and
values whatever the form, and a file written page by page."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.sample import sample_accounts

SOQL = ("SELECT Id, Name, customExtIdField__c, NumberOfEmployees, AnnualRevenue, Active__c, "
        "Founded__c, CreatedDate, Industry FROM Account ORDER BY customExtIdField__c")


@pytest.fixture
def loaded(org):
    sfb.connect(org)
    df = sample_accounts(1200, errors=False, seed=3)
    df.loc[0, "Name"] = 'Comma, "quote" and\nnew line'
    assert sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False).ok
    return df


def test_pyarrow_backend_gives_the_same_values_as_arrow_types(loaded):
    plain = sfb.query_df(SOQL, progress=False)
    arrow = sfb.query_df(SOQL, progress=False, dtype_backend="pyarrow")
    assert all(isinstance(t, pd.ArrowDtype) for t in arrow.dtypes)
    assert arrow["Name"].dtype.pyarrow_dtype == pa.string()  # 4-byte offsets
    assert arrow["NumberOfEmployees"].dtype.pyarrow_dtype == pa.int64()
    assert arrow["CreatedDate"].dtype.pyarrow_dtype == pa.timestamp("ms", tz="UTC")
    for column in plain.columns:
        assert plain[column].astype(object).where(plain[column].notna(), None).tolist() == \
            arrow[column].astype(object).where(arrow[column].notna(), None).tolist(), column
    assert arrow.memory_usage(deep=True).sum() < plain.memory_usage(deep=True).sum()
    assert arrow.attrs["queried_at"] is not None
    with pytest.raises(errors.InputError, match="dtype_backend must be one of"):
        sfb.query_df(SOQL, dtype_backend="arrow")


@pytest.mark.parametrize("page_size", [None, 250])
def test_query_to_csv_streams_every_page_with_one_header(loaded, tmp_path, page_size):
    out = sfb.query_to_file(SOQL, tmp_path / "accounts.csv", page_size=page_size)
    assert out.rows == len(loaded) and out.columns[0] == "Id"
    text = (tmp_path / "accounts.csv").read_text(encoding="utf-8")
    assert text.count("customExtIdField__c") == 1  # the header, once
    back = pd.read_csv(tmp_path / "accounts.csv", keep_default_na=False)
    assert len(back) == len(loaded)
    assert back.loc[back["customExtIdField__c"] == loaded.loc[0, "customExtIdField__c"],
                    "Name"].item() == 'Comma, "quote" and\nnew line'
    assert "1,200 rows" in repr(out)


def test_query_to_parquet_is_typed_like_query_df(loaded, tmp_path):
    out = sfb.query_to_file(SOQL, tmp_path / "accounts.parquet", page_size=300)
    table = pq.read_table(out.path)
    assert table.num_rows == len(loaded)
    assert table.schema.field("NumberOfEmployees").type == pa.int64()
    assert table.schema.field("Active__c").type == pa.bool_()
    frame = sfb.query_df(SOQL, progress=False, dtype_backend="pyarrow")
    assert table.to_pandas(types_mapper=pd.ArrowDtype).equals(frame)


def test_query_to_file_refuses_what_it_cannot_write_and_leaves_no_half_file(org, tmp_path):
    sfb.connect(org)
    with pytest.raises(errors.InputError, match=r"\.csv or \.parquet"):
        sfb.query_to_file(SOQL, tmp_path / "accounts.xlsx")
    with pytest.raises(errors.InputError, match="does not exist"):
        sfb.query_to_file(SOQL, tmp_path / "nowhere" / "a.csv")
    with pytest.raises(errors.SFBulkError):
        sfb.query_to_file("SELECT Nope FROM Account", tmp_path / "bad.csv")
    assert list(tmp_path.iterdir()) == []
    empty = sfb.query_to_file("SELECT Id, Name FROM Account", tmp_path / "empty.parquet")
    assert empty.rows == 0 and pq.read_table(empty.path).column_names == ["Id", "Name"]
