"""Tests for sfbulk_nb.encode: DataFrame -> Bulk API 2.0 CSV."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import pathlib

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from sfbulk_nb.encode import (
    COLUMN_DELIMITERS,
    LINE_ENDINGS,
    Chunk,
    EncodeError,
    encode_csv,
    format_frame,
    iter_chunks,
)

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "encode"

NASTY = [
    "plain",
    "comma, inside",
    'quote " inside',
    '"fully quoted"',
    "line\nbreak",
    "crlf\r\nbreak",
    "lone\rcr",
    "trailing cr\r",
    "\nleading newline",
    "tab\there",
    "pipe|here",
    "caret^here",
    "semi;colon",
    "back`quote",
    "  spaces kept  ",
    "Zürich – 東京 – emoji 🚀",
    "",
    "#N/A",
    '"',
    '""',
    ",",
]


def to_dt(values) -> pd.DatetimeIndex:
    return pd.to_datetime(values, format="ISO8601")


def cells(series, **options) -> list[str]:
    """The formatted text of one column."""
    return format_frame(pd.DataFrame({"X": series}), **options)["X"].tolist()


def read_csv_rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


# ---------------------------------------------------------------------- datetimes


def test_tz_aware_datetime_converted_to_utc_with_milliseconds():
    s = pd.Series(to_dt(["2024-07-01 12:34:56.789", "2024-01-15 08:00:00"]).tz_localize("Europe/Paris"))
    assert cells(s) == ["2024-07-01T10:34:56.789Z", "2024-01-15T07:00:00.000Z"]


def test_naive_datetime_taken_as_utc():
    s = pd.Series(to_dt(["2024-07-01 12:34:56.5"]))
    assert cells(s) == ["2024-07-01T12:34:56.500Z"]


def test_naive_datetime_in_named_dst_zone():
    s = pd.Series(to_dt(["2024-07-01 12:00", "2024-01-15 12:00"]))
    # New York is UTC-4 in summer (EDT) and UTC-5 in winter (EST)
    assert cells(s, tz="America/New_York") == ["2024-07-01T16:00:00.000Z", "2024-01-15T17:00:00.000Z"]


def test_tz_option_does_not_touch_tz_aware_values():
    s = pd.Series(to_dt(["2024-07-01 12:00"]).tz_localize("UTC"))
    assert cells(s, tz="America/New_York") == ["2024-07-01T12:00:00.000Z"]


def test_naive_time_that_does_not_exist_in_tz_names_the_row():
    s = pd.Series(to_dt(["2024-03-09 02:30", "2024-03-10 02:30"]), index=["a", "b"])
    with pytest.raises(EncodeError, match=r"'X'.*row 1 \(index label 'b'\).*tz_localize"):
        cells(s, tz="America/New_York")


def test_ambiguous_naive_time_in_tz_is_an_error():
    s = pd.Series(to_dt(["2024-11-03 01:30"]))
    with pytest.raises(EncodeError, match="ambiguous"):
        cells(s, tz="America/New_York")


def test_unknown_tz_is_an_error():
    with pytest.raises(EncodeError, match="Mars/Olympus"):
        cells(pd.Series(to_dt(["2024-01-01"])), tz="Mars/Olympus")


def test_datetime_sub_millisecond_is_floored_also_before_1970():
    s = pd.Series(to_dt(["2024-01-01 12:00:00.1239", "1969-12-31 23:59:59.9995"]))
    assert cells(s) == ["2024-01-01T12:00:00.123Z", "1969-12-31T23:59:59.999Z"]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime_every_numpy_unit(unit):
    s = pd.Series(to_dt(["2024-02-29 23:59:59", None])).dt.as_unit(unit)
    assert cells(s) == ["2024-02-29T23:59:59.000Z", ""]


def test_datetime_extremes_of_four_digit_years():
    s = pd.Series(np.array(["0001-01-01T00:00:00", "9999-12-31T23:59:59.999"], dtype="datetime64[ms]"))
    assert cells(s) == ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"]


def test_datetime_beyond_year_9999_is_an_error():
    s = pd.Series(np.array(["2024-01-01", "10000-01-01"], dtype="datetime64[s]"))
    with pytest.raises(EncodeError, match=r"'X' at row 1 .*years 1-9999"):
        cells(s)


def test_pyarrow_timestamp_dtype():
    s = pd.Series([pd.Timestamp("2024-03-10 00:05", tz="UTC"), None], dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC")))
    assert cells(s) == ["2024-03-10T00:05:00.000Z", ""]


def test_datetime_objects_in_object_column():
    minus5 = dt.timezone(dt.timedelta(hours=-5))
    paris = pd.Timestamp("2024-07-01 12:00", tz="Europe/Paris")
    aware = pd.Series([dt.datetime(2024, 3, 10, 0, 5, tzinfo=minus5), None, paris], dtype=object)
    naive = pd.Series([dt.datetime(2024, 3, 10, 0, 5), None], dtype=object)
    assert cells(aware) == ["2024-03-10T05:05:00.000Z", "", "2024-07-01T10:00:00.000Z"]
    assert cells(naive) == ["2024-03-10T00:05:00.000Z", ""]
    assert cells(naive, tz="America/New_York") == ["2024-03-10T05:05:00.000Z", ""]


def test_datetime_just_after_midnight_in_negative_zone_converts_to_utc():
    s = pd.Series(to_dt(["2024-03-10 00:05", "2024-03-09 23:30"]).tz_localize("America/Los_Angeles"))
    assert cells(s) == ["2024-03-10T08:05:00.000Z", "2024-03-10T07:30:00.000Z"]


def test_nat_is_blank_or_na():
    s = pd.Series(to_dt(["2024-01-01", None]))
    assert cells(s) == ["2024-01-01T00:00:00.000Z", ""]
    assert cells(s, nulls="clear") == ["2024-01-01T00:00:00.000Z", "#N/A"]


# -------------------------------------------------------------------------- dates


def test_date_objects():
    s = pd.Series([dt.date(2024, 3, 10), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)], dtype=object)
    assert cells(s) == ["2024-03-10", "", "0001-01-01", "9999-12-31"]


def test_dates_never_shift_with_a_negative_offset_tz():
    # The classic bug: a date read as midnight UTC and shown in a zone west of UTC
    # becomes the day before.
    s = pd.Series([dt.date(2024, 3, 10), dt.date(2024, 1, 1)], dtype=object)
    assert cells(s, tz="America/Los_Angeles") == ["2024-03-10", "2024-01-01"]
    assert cells(s, tz="Pacific/Kiritimati") == ["2024-03-10", "2024-01-01"]


def test_pyarrow_date32_dtype():
    s = pd.Series([dt.date(2024, 3, 10), None], dtype=pd.ArrowDtype(pa.date32()))
    assert cells(s) == ["2024-03-10", ""]


def test_date_field_type_formats_datetime64_as_date():
    s = pd.Series(to_dt(["2024-03-10 00:05", "2024-03-10 23:59", None]))
    assert cells(s, field_types={"X": "date"}) == ["2024-03-10", "2024-03-10", ""]


def test_date_field_type_uses_the_wall_date_of_tz_aware_values():
    # 23:30 in Los Angeles is already the next day in UTC; 00:05 in Tokyo is still
    # the previous day in UTC. Neither may shift.
    la = pd.Series(to_dt(["2024-03-09 23:30", "2024-03-10 00:05"]).tz_localize("America/Los_Angeles"))
    tokyo = pd.Series(to_dt(["2024-03-10 00:05"]).tz_localize("Asia/Tokyo"))
    assert cells(la, field_types={"X": "date"}) == ["2024-03-09", "2024-03-10"]
    assert cells(tokyo, field_types={"X": "date"}) == ["2024-03-10"]


def test_date_field_type_ignores_tz_option():
    s = pd.Series(to_dt(["2024-03-10 00:05"]))
    assert cells(s, tz="America/Los_Angeles", field_types={"X": "date"}) == ["2024-03-10"]


def test_date_field_type_floors_pre_1970_times():
    s = pd.Series(to_dt(["1969-12-31 12:00"]))
    assert cells(s, field_types={"X": "date"}) == ["1969-12-31"]


def test_field_types_match_case_insensitively_and_extra_keys_are_ignored():
    df = pd.DataFrame({"closeDate": to_dt(["2024-03-10 13:00"])})
    out = format_frame(df, field_types={"CloseDate": "DATE", "Other__c": "int"})
    assert out["closeDate"].tolist() == ["2024-03-10"]


def test_dates_from_dt_date_keep_their_blanks():
    """.dt.date leaves NaT where a date is blank; NaT is a datetime subclass, but a null."""
    dates = pd.to_datetime(pd.Series(["2024-02-29", None, "1999-12-31"])).dt.date
    out = format_frame(pd.DataFrame({"D": dates}), nulls="clear")
    assert out["D"].tolist() == ["2024-02-29", "#N/A", "1999-12-31"]


def test_mixed_dates_and_datetimes_is_an_error():
    s = pd.Series([dt.date(2020, 1, 1), dt.datetime(2020, 1, 1, 5)], dtype=object)
    with pytest.raises(EncodeError, match=r"'X' mixes dates and datetimes \(row 1"):
        cells(s)


# ----------------------------------------------------------------------- booleans


def test_booleans():
    assert cells(pd.Series([True, False])) == ["true", "false"]
    assert cells(pd.Series([True, None, False], dtype="boolean")) == ["true", "", "false"]
    assert cells(pd.Series([True, None], dtype="boolean"), nulls="clear") == ["true", "#N/A"]
    assert cells(pd.Series([True, None, False], dtype=object)) == ["true", "", "false"]


# ------------------------------------------------------------------------ numbers


def test_integers_have_no_decimal_point():
    assert cells(pd.Series([1, -2, 0, 2**62])) == ["1", "-2", "0", str(2**62)]
    assert cells(pd.Series([1, None, 3], dtype="Int64")) == ["1", "", "3"]
    assert cells(pd.Series([2**63 + 5], dtype="uint64")) == [str(2**63 + 5)]
    assert cells(pd.Series([7], dtype="int8")) == ["7"]
    assert cells(pd.Series([1, None], dtype="int64[pyarrow]")) == ["1", ""]
    assert cells(pd.Series([10**15, None], dtype=object)) == ["1000000000000000", ""]


def test_float_column_with_int_field_type():
    s = pd.Series([3.0, np.nan, -12.0, 1e20])
    assert cells(s, field_types={"X": "int"}) == ["3", "", "-12", "100000000000000000000"]


def test_non_integral_float_for_int_field_names_the_row():
    s = pd.Series([3.0, 2.5], index=["a", "b"])
    with pytest.raises(EncodeError, match=r"'X' is a Salesforce int field but row 1 \(index label 'b'\) holds 2\.5"):
        cells(s, field_types={"X": "int"})


@pytest.mark.parametrize(
    "value, text",
    [
        (1e20, "100000000000000000000"),
        (1.5e-7, "0.00000015"),
        (-1.5e-7, "-0.00000015"),
        (0.1, "0.1"),
        (12.0, "12"),
        (-12.5, "-12.5"),
        (1e15, "1000000000000000"),
        (1234567890123456.7, "1234567890123456.8"),
        (1.2345678901234567e16, "12345678901234568"),
        (123456789012345678.0, "123456789012345680"),
        (5e-324, "0." + "0" * 323 + "5"),
        (1e-6, "0.000001"),
        (0.000123, "0.000123"),
    ],
)
def test_floats_shortest_round_trip_without_exponent(value, text):
    assert cells(pd.Series([value])) == [text]


def test_float_max_has_no_exponent():
    (text,) = cells(pd.Series([np.finfo(np.float64).max]))
    assert "e" not in text and float(text) == np.finfo(np.float64).max and len(text) == 309


def test_floats_match_numpy_positional_repr_over_all_magnitudes():
    rng = np.random.default_rng(42)
    values = rng.standard_normal(4000) * 10.0 ** rng.integers(-320, 306, 4000)
    values = np.concatenate([values, np.round(values * 1e3) / 1e3, [0.0, -0.0, 1.0, 0.5]])
    values = values[np.isfinite(values)]
    texts = cells(pd.Series(values))
    for value, text in zip(values, texts):
        assert "e" not in text
        assert float(text) == value
        assert text == np.format_float_positional(value, unique=True, trim="-")


def test_float32_uses_its_own_shortest_repr():
    s = pd.Series([0.1, 1e20, 3.0], dtype="float32")
    assert cells(s) == ["0.1", "100000000000000000000", "3"]


def test_nan_is_null_also_in_arrow_float_columns():
    assert cells(pd.Series([1.5, np.nan])) == ["1.5", ""]
    arrow = pd.Series(pd.array(pa.array([1.5, float("nan"), None]), dtype=pd.ArrowDtype(pa.float64())))
    assert cells(arrow, nulls="clear") == ["1.5", "#N/A", "#N/A"]


def test_infinity_is_an_error_naming_the_row():
    with pytest.raises(EncodeError, match=r"'X' at row 2 \(index label 2\) is -inf"):
        cells(pd.Series([1.0, 2.0, -np.inf]))


def test_decimals():
    s = pd.Series([decimal.Decimal("1.50"), None, decimal.Decimal("-3.25")], dtype=object)
    assert cells(s) == ["1.50", "", "-3.25"]


# ------------------------------------------------------------------------ strings


def test_strings_and_empty_strings():
    s = pd.Series(["a", "", None, "é"])
    assert cells(s) == ["a", "", "", "é"]
    # an empty string is a blank, not a null: only the None becomes #N/A
    assert cells(s, nulls="clear") == ["a", "", "#N/A", "é"]


@pytest.mark.parametrize("dtype", [object, "string", "str", pd.ArrowDtype(pa.string()), "category"])
def test_string_dtypes(dtype):
    s = pd.Series(["a,b", None, 'c"d'], dtype=dtype)
    assert cells(s, nulls="clear") == ["a,b", "#N/A", 'c"d']
    # one column: a blank is written "" so the row is not an empty line (readers skip those)
    assert encode_csv(pd.DataFrame({"X": s})) == b'X\n"a,b"\n""\n"c""d"\n'
    assert encode_csv(pd.DataFrame({"X": s, "Y": 1})) == b'X,Y\n"a,b",1\n,1\n"c""d",1\n'


def test_categorical_of_numbers_formats_as_numbers():
    s = pd.Series([1.5, None, 1e20], dtype="category")
    assert cells(s) == ["1.5", "", "100000000000000000000"]


def test_quoting_only_where_needed_with_comma():
    df = pd.DataFrame({"Name": ["plain", "a,b", 'say "hi"', "l1\nl2", "r1\r\nr2", "lone\rcr", "", "pipe|x", "tab\tx"]})
    assert encode_csv(df) == (
        b"Name\n"
        b"plain\n"
        b'"a,b"\n'
        b'"say ""hi"""\n'
        b'"l1\nl2"\n'
        b'"r1\r\nr2"\n'
        b'"lone\rcr"\n'
        b'""\n'
        b"pipe|x\n"
        b"tab\tx\n"
    )


@pytest.mark.parametrize("name, char", sorted(COLUMN_DELIMITERS.items()))
def test_value_holding_the_delimiter_is_quoted(name, char):
    df = pd.DataFrame({"A": [f"x{char}y", "plain"], "B": [1, 2]})
    assert encode_csv(df, column_delimiter=name) == f'A{char}B\n"x{char}y"{char}1\nplain{char}2\n'.encode()


@pytest.mark.parametrize("line_ending", sorted(LINE_ENDINGS))
@pytest.mark.parametrize("name", sorted(COLUMN_DELIMITERS))
def test_nasty_strings_round_trip_through_csv_module(name, line_ending):
    df = pd.DataFrame(
        {
            "Name": NASTY,
            "Other__c": list(reversed(NASTY)),
            "Count__c": range(len(NASTY)),
            "Account.customExtIdField__c": [f"ext-{i},{i}" for i in range(len(NASTY))],
        }
    )
    data = encode_csv(df, column_delimiter=name, line_ending=line_ending)
    eol = LINE_ENDINGS[line_ending].encode()
    assert data.endswith(eol)
    rows = read_csv_rows(data, COLUMN_DELIMITERS[name])
    assert rows[0] == list(df.columns)
    assert rows[1:] == format_frame(df).values.tolist()
    assert [r[0] for r in rows[1:]] == NASTY


def test_line_ending_crlf_ends_every_line():
    df = pd.DataFrame({"A": ["x", "y"], "B": [1, None]})
    assert encode_csv(df, line_ending="CRLF") == b"A,B\r\nx,1\r\ny,\r\n"


def test_utf8_bytes():
    df = pd.DataFrame({"Name": ["Zürich 東京 🚀"]})
    assert encode_csv(df) == "Name\nZürich 東京 🚀\n".encode("utf-8")


def test_relationship_column_passes_through():
    df = pd.DataFrame({"LastName": ["Smith"], "Account.customExtIdField__c": ["ACME-1"]})
    assert encode_csv(df) == b"LastName,Account.customExtIdField__c\nSmith,ACME-1\n"


def test_all_null_object_column():
    df = pd.DataFrame({"A": [None, None], "B": ["x", "y"]})
    assert encode_csv(df, nulls="clear") == b"A,B\n#N/A,x\n#N/A,y\n"


# -------------------------------------------------------------------- null policy


def null_frame():
    return pd.DataFrame(
        {
            "S": ["a", None, ""],
            "I": pd.array([1, None, 3], dtype="Int64"),
            "F": [1.5, np.nan, 2.0],
            "D": to_dt(["2024-01-01", None, "2024-01-03"]),
        }
    )


def test_nulls_keep_writes_blanks():
    assert encode_csv(null_frame()) == (
        b"S,I,F,D\n"
        b"a,1,1.5,2024-01-01T00:00:00.000Z\n"
        b",,,\n"
        b",3,2,2024-01-03T00:00:00.000Z\n"
    )


def test_nulls_clear_writes_na_but_empty_string_stays_blank():
    assert encode_csv(null_frame(), nulls="clear") == (
        b"S,I,F,D\n"
        b"a,1,1.5,2024-01-01T00:00:00.000Z\n"
        b"#N/A,#N/A,#N/A,#N/A\n"
        b",3,2,2024-01-03T00:00:00.000Z\n"
    )


def test_nulls_per_column_default_keep():
    out = format_frame(null_frame(), nulls={"I": "clear", "D": "clear", "S": "keep"})
    expected = pd.DataFrame(
        {
            "S": ["a", "", ""],
            "I": ["1", "#N/A", "3"],
            "F": ["1.5", "", "2"],
            "D": ["2024-01-01T00:00:00.000Z", "#N/A", "2024-01-03T00:00:00.000Z"],
        }
    )
    pdt.assert_frame_equal(out, expected, check_dtype=False)


@pytest.mark.parametrize(
    "nulls, message",
    [
        ("blank", "nulls must be"),
        ({"Nope": "clear"}, r"not in the frame: \['Nope'\]"),
        ({"S": "null"}, r"'keep' or 'clear'.*'S'"),
        (None, "nulls must be"),
    ],
)
def test_bad_null_policy(nulls, message):
    with pytest.raises(EncodeError, match=message):
        format_frame(null_frame(), nulls=nulls)


# ------------------------------------------------------------------- format_frame


def test_format_frame_keeps_index_and_columns_and_gives_strings():
    df = pd.DataFrame({"B": [True, False], "A": [1, 2]}, index=pd.Index(["x", "y"], name="key"))
    out = format_frame(df)
    pdt.assert_index_equal(out.index, df.index)
    pdt.assert_index_equal(out.columns, df.columns)
    assert all(pd.api.types.is_string_dtype(t) for t in out.dtypes)
    assert out.loc["y", "B"] == "false" and out.loc["x", "A"] == "1"


def test_format_frame_equals_parsed_csv():
    df = pd.DataFrame({"S": NASTY, "N": np.arange(len(NASTY), dtype=float) / 4})
    rows = read_csv_rows(encode_csv(df))
    assert rows[1:] == format_frame(df).values.tolist()


def test_golden_file():
    df = pd.DataFrame(
        {
            "Name": ["Acme, Inc.", 'The "Best" Co', "Multi\nline", "", None],
            "customExtIdField__c": ["A-1", "A-2", "A-3", "A-4", "A-5"],
            "NumberOfEmployees": pd.array([10, None, 0, 12000, 5], dtype="Int64"),
            "AnnualRevenue": [912260031.0, np.nan, 1.5e-7, 1e20, 0.25],
            "IsActive__c": pd.array([True, False, None, True, False], dtype="boolean"),
            "Founded__c": [dt.date(1999, 12, 31), None, dt.date(2024, 2, 29), dt.date(1900, 1, 1), dt.date(2000, 1, 1)],
            "LastSeen__c": to_dt(
                ["2024-03-10 01:59:59.999", "2024-03-10 03:00", None, "2024-11-03 12:00", "1970-01-01"]
            ).tz_localize("America/New_York"),
            "Owner.Email": ["a@x.com", "b@x.com", "c@x.com", "d@x.com", "e@x.com"],
        }
    )
    for name, options in {
        "accounts_comma_lf.csv": {},
        "accounts_semicolon_crlf_clear.csv": {"column_delimiter": "SEMICOLON", "line_ending": "CRLF", "nulls": "clear"},
    }.items():
        assert encode_csv(df, **options) == (FIXTURES / name).read_bytes(), name


# ---------------------------------------------------------------------- chunking


def chunk_frame(rows=500, seed=1):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 60, rows)
    return pd.DataFrame(
        {
            "Name": ["x" * n + ("," if n % 3 == 0 else "") for n in lengths],
            "N": rng.integers(0, 10**6, rows),
        },
        index=[f"r{i}" for i in range(rows)],
    )


def check_chunks(df, chunks, max_bytes, max_records=None, **options):
    full = encode_csv(df, **options)
    header = full[: full.index(LINE_ENDINGS[options.get("line_ending", "LF")].encode()) + len(LINE_ENDINGS[options.get("line_ending", "LF")])]
    assert chunks and all(isinstance(c, Chunk) for c in chunks)
    assert [c.positions.start for c in chunks] == [0] + [c.positions.stop for c in chunks[:-1]]
    assert chunks[-1].positions.stop == len(df)
    for c in chunks:
        assert c.data.startswith(header)
        assert len(c.data) <= max_bytes
        assert c.records == len(c.positions) >= 1
        if max_records is not None:
            assert c.records <= max_records
        assert c.data == encode_csv(df.iloc[c.positions.start : c.positions.stop], **options)
    assert header + b"".join(c.data[len(header) :] for c in chunks) == full
    # greedy: the next row would not have fitted
    for c, nxt in zip(chunks, chunks[1:]):
        first_of_next = encode_csv(df.iloc[nxt.positions.start : nxt.positions.start + 1], **options)[len(header) :]
        assert len(c.data) + len(first_of_next) > max_bytes or c.records == max_records


@pytest.mark.parametrize("max_bytes", [200, 333, 1000, 4096])
def test_chunks_are_byte_exact(max_bytes):
    df = chunk_frame()
    check_chunks(df, list(iter_chunks(df, max_bytes=max_bytes)), max_bytes)


def test_chunk_may_be_exactly_max_bytes():
    df = pd.DataFrame({"A": ["aaaa", "bbbb", "cccc"]})  # header 2 bytes, rows 5 bytes
    chunks = list(iter_chunks(df, max_bytes=12))
    assert [c.data for c in chunks] == [b"A\naaaa\nbbbb\n", b"A\ncccc\n"]
    assert [len(c.data) for c in chunks] == [12, 7]


def test_chunks_by_max_records():
    df = chunk_frame(rows=103)
    chunks = list(iter_chunks(df, max_records=10))
    assert [c.records for c in chunks] == [10] * 10 + [3]
    check_chunks(df, chunks, 100_000_000, max_records=10)


def test_chunks_by_both_limits_crlf_tab():
    df = chunk_frame(rows=300)
    options = {"column_delimiter": "TAB", "line_ending": "CRLF", "nulls": "clear"}
    chunks = list(iter_chunks(df, max_bytes=700, max_records=9, **options))
    check_chunks(df, chunks, 700, max_records=9, **options)


def test_chunks_cross_internal_batches(monkeypatch):
    import sfbulk_nb.encode as encode

    monkeypatch.setattr(encode, "_BATCH_ROWS", 7)
    df = chunk_frame(rows=200)
    for max_bytes in (90, 250, 10_000):
        check_chunks(df, list(iter_chunks(df, max_bytes=max_bytes)), max_bytes)
    assert encode_csv(df) == b"".join(
        encode_csv(df.iloc[i : i + 1]) if i == 0 else encode_csv(df.iloc[i : i + 1])[len(b"Name,N\n") :]
        for i in range(len(df))
    )


def test_batch_size_does_not_change_the_output(monkeypatch):
    import sfbulk_nb.encode as encode

    rng = np.random.default_rng(3)
    n = 100
    df = pd.DataFrame(
        {
            "S": [NASTY[i % len(NASTY)] if i % 5 else None for i in range(n)],
            "F": np.where(rng.random(n) < 0.2, np.nan, rng.standard_normal(n) * 10.0 ** rng.integers(-9, 20, n)),
            "T": pd.Series(pd.Timestamp("1960-01-01", tz="Asia/Kolkata") + pd.to_timedelta(rng.integers(0, 10**12, n), unit="ms")).where(
                rng.random(n) > 0.2
            ),
            "D": [dt.date(2000, 1, 1) + dt.timedelta(days=int(d)) if d % 4 else None for d in rng.integers(0, 9000, n)],
            "I": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 99, n)), dtype="Int64"),
            "B": pd.array(np.where(rng.random(n) < 0.3, None, rng.random(n) < 0.5), dtype="boolean"),
        }
    )
    options = {"nulls": {"T": "clear", "I": "clear"}, "column_delimiter": "CARET", "line_ending": "CRLF"}
    whole = encode_csv(df, **options)
    monkeypatch.setattr(encode, "_BATCH_ROWS", 7)
    assert encode_csv(df, **options) == whole
    assert read_csv_rows(whole, "^")[1:] == format_frame(df, nulls=options["nulls"]).values.tolist()


def test_one_chunk_when_everything_fits():
    df = chunk_frame(rows=20)
    (chunk,) = iter_chunks(df)
    assert chunk.positions == range(0, 20) and chunk.data == encode_csv(df)


def test_oversize_row_names_position_label_and_fix():
    df = pd.DataFrame({"Name": ["short", "x" * 500, "y" * 600, "ok"]}, index=["a", "big", "bigger", "d"])
    with pytest.raises(EncodeError) as info:
        iter_chunks(df, max_bytes=100)
    message = str(info.value)
    assert "row 1 (index label 'big')" in message
    assert "501 bytes" in message and "max_bytes=100" in message
    assert "1 more rows" in message and "raise max_bytes" in message


def test_errors_are_raised_before_any_chunk_is_taken():
    df = pd.DataFrame({"Name": ["a"] * 10 + ["x" * 500]})
    with pytest.raises(EncodeError, match="row 10"):
        iter_chunks(df, max_bytes=100)  # not iterated


def test_header_larger_than_max_bytes():
    df = pd.DataFrame({"A_very_long_field_name__c": [1]})
    with pytest.raises(EncodeError, match="header line alone"):
        iter_chunks(df, max_bytes=10)


def test_empty_frame():
    df = pd.DataFrame({"A": pd.Series([], dtype="Int64"), "B": pd.Series([], dtype=str)})
    assert encode_csv(df) == b"A,B\n"
    assert list(iter_chunks(df)) == []
    assert format_frame(df).shape == (0, 2)


@pytest.mark.parametrize("bad", [{"max_bytes": 0}, {"max_bytes": "10"}, {"max_records": 0}, {"max_records": 1.5}, {"max_bytes": True}])
def test_bad_limits(bad):
    with pytest.raises(EncodeError, match=next(iter(bad))):
        iter_chunks(chunk_frame(rows=3), **bad)


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "columns, message",
    [
        ([0, "B"], r"column 0 is named 0 \(int\).*must be a string"),
        ([("A", "x"), "B"], r"column 0 is named \('A', 'x'\)"),
        (["A", "A"], r"'A' appears twice"),
        (["Name", "name"], r"'name' and 'Name' name the same field"),
        (["A", ""], r"column 1 has an empty name"),
        (["A", "  "], r"column 1 has an empty name"),
        (["sf__Id", "B"], r"'sf__Id' uses the reserved 'sf__' prefix"),
        (["A", "SF__Created"], r"'SF__Created' uses the reserved"),
        (["A,B", "C"], r"'A,B' contains"),
        (["A\nB", "C"], r"contains"),
        ([" A", "C"], r"whitespace"),
    ],
)
def test_bad_column_names(columns, message):
    df = pd.DataFrame([[1, 2]], columns=columns)
    with pytest.raises(EncodeError, match=message):
        encode_csv(df)


def test_column_name_with_other_delimiter_is_fine():
    df = pd.DataFrame({"A,B": [1]})
    assert encode_csv(df, column_delimiter="PIPE") == b"A,B\n1\n"
    with pytest.raises(EncodeError, match="delimiter"):
        encode_csv(pd.DataFrame({"A|B": [1]}), column_delimiter="PIPE")


def test_no_columns():
    with pytest.raises(EncodeError, match="no columns"):
        encode_csv(pd.DataFrame(index=[1, 2]))


def test_not_a_dataframe():
    with pytest.raises(EncodeError, match="expected a pandas DataFrame, got dict"):
        encode_csv({"A": [1]})


@pytest.mark.parametrize(
    "values, message",
    [
        (pd.Series([1 + 2j, 3j]), r"column 'X' holds complex numbers"),
        (pd.Series([[1, 2], [3]], dtype=object), r"column 'X' holds a list at row 0 \(index label 'r0'\)"),
        (pd.Series(["a", {"k": 1}], dtype=object), r"column 'X' holds a dict at row 1 \(index label 'r1'\)"),
        (pd.Series(["a", b"raw"], dtype=object), r"column 'X' holds bytes at row 1"),
        (pd.Series([None, b"raw"], dtype=object), r"column 'X' holds bytes at row 1"),
        (pd.Series(["a", 1], dtype=object), r"'X' mixes value types: row 1 \(index label 'r1'\) holds 1 \(int\) but row 0"),
        (pd.Series([True, "yes"], dtype=object), r"'X' mixes value types: row 1"),
        (pd.Series(pd.to_timedelta([1, 2], unit="D")), r"column 'X' has type duration"),
        (pd.Series([dt.time(1), dt.time(2)], dtype=object), r"column 'X' holds a time at row 0"),
        (pd.Series(pd.period_range("2020-01", periods=2, freq="M")), r"column 'X' has type"),
        (pd.Series(["ok", "bad \ud800"], dtype=object), r"column 'X' at row 1 .*lone surrogate"),
        (
            pd.Series([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)], dtype=object),
            r"column 'X' mixes time-zone-aware and naive datetimes \(row 0 .* row 1 \(index label 'r1'\)",
        ),
        (pd.Series([2**70, 1], dtype=object), r"column 'X' holds integer values that cannot be encoded"),
    ],
)
def test_unsupported_values_name_column_and_row(values, message):
    values.index = ["r0", "r1"]
    df = pd.DataFrame({"Name": ["a", "b"], "X": values}, index=values.index)
    with pytest.raises(EncodeError, match=message):
        encode_csv(df)
    with pytest.raises(EncodeError, match=message):
        iter_chunks(df)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"column_delimiter": ","}, "column_delimiter must be one of BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON, TAB"),
        ({"column_delimiter": "comma"}, "column_delimiter"),
        ({"line_ending": "CR"}, "line_ending must be one of LF, CRLF"),
    ],
)
def test_bad_csv_options(options, message):
    with pytest.raises(EncodeError, match=message):
        encode_csv(pd.DataFrame({"A": [1]}), **options)


def test_encode_error_is_a_value_error():
    assert issubclass(EncodeError, ValueError)


# ------------------------------------------- why pyarrow.csv.write_csv is not used


def test_pyarrow_write_csv_needed_style_is_not_bulk_shaped():
    """Pins the pyarrow behaviour behind the choice of a custom writer: its "needed"
    style quotes every string (plain ones and empty ones too) and every header name,
    and its "none" style refuses a quote or line break rather than quoting it."""
    table = pa.table({"s": ["plain", "", "lone\rcr", 'q"x', None], "i": [1, 2, 3, 4, 5]})
    sink = io.BytesIO()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style="needed"))
    assert sink.getvalue() == b'"s","i"\n"plain",1\n"",2\n"lone\rcr",3\n"q""x",4\n,5\n'
    with pytest.raises(pa.ArrowInvalid):
        pa_csv.write_csv(table, io.BytesIO(), pa_csv.WriteOptions(quoting_style="none"))


def test_one_encoding_gives_the_texts_and_the_chunks_of_the_two_functions():
    from sfbulk_nb.encode import Encoding

    df = pd.DataFrame({"Name": ["a,b", None, 'say "hi"', "x"], "N": pd.array([1, None, 3, 4],
                                                                           dtype="Int64")})
    enc = Encoding(df, nulls="clear")
    pd.testing.assert_frame_equal(enc.text(), format_frame(df, nulls="clear"))
    got = [(c.positions, c.data) for c in enc.chunks(max_bytes=32, line_ending="CRLF")]
    want = [(c.positions, c.data) for c in iter_chunks(df, nulls="clear", max_bytes=32,
                                                       line_ending="CRLF")]
    assert got == want and len(got) > 1
    with pytest.raises(EncodeError, match="column delimiter"):
        Encoding(pd.DataFrame({"a;b": [1]})).chunks(column_delimiter="SEMICOLON")
    with pytest.raises(EncodeError, match="max_bytes"):
        enc.chunks(max_bytes=0)


def test_encode_errors_belong_to_the_package_exception_tree():
    import sfbulk_nb

    assert issubclass(EncodeError, sfbulk_nb.InputError)
    assert issubclass(EncodeError, sfbulk_nb.SFBulkError) and issubclass(EncodeError, ValueError)
