"""Result CSVs -> aligned frame (sfbulk_nb.results): parsing, sf__Error splitting, joining
shuffled results back to input rows, duplicate-key checks, summaries; plus one run of
each operation through the local org, whose results come back shuffled."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from sfbulk_nb import results as R
from sfbulk_nb.results import (
    ALIGN_COLUMNS,
    STATUSES,
    AlignmentError,
    JobOutcome,
    align,
    count_statuses,
    find_duplicate_keys,
    parse_result_csv,
    split_sf_error,
    split_sf_errors,
    summarize_errors,
)

FIXTURES = Path(__file__).parent / "fixtures" / "results"
EXT = "customExtIdField__c"
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}


# ------------------------------------------------------------------------ helpers


def text_frame(columns: dict, index=None) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in columns.items()}).set_axis(
        index if index is not None else pd.RangeIndex(len(next(iter(columns.values())))), axis=0
    )


def result_csv(header: list[str], rows: list[list[str]], delimiter: str = ",", eol: str = "\n") -> bytes:
    """A result file as Salesforce writes it: sf__ names quoted, the caller's not, every
    value quoted with quotes doubled."""
    names = [f'"{h}"' if h.startswith("sf__") else h for h in header]
    lines = [delimiter.join(names)]
    lines += [delimiter.join('"' + v.replace('"', '""') + '"' for v in row) for row in rows]
    return (eol.join(lines) + eol).encode("utf-8")


def successes(columns: list[str], rows: list[list[str]]) -> pd.DataFrame:
    return parse_result_csv(result_csv(["sf__Id", "sf__Created", *columns], rows))


def failures(columns: list[str], rows: list[list[str]]) -> pd.DataFrame:
    return parse_result_csv(result_csv(["sf__Id", "sf__Error", *columns], rows))


def aligned_frame(rows: list[tuple], index) -> pd.DataFrame:
    """Expected align() output from (sf_id, status, code, message, fields, job) tuples."""
    columns = list(zip(*rows)) if rows else [[]] * len(ALIGN_COLUMNS)
    return pd.DataFrame(
        {name: pd.array(list(values), dtype="string") for name, values in zip(ALIGN_COLUMNS, columns)},
        index=index,
    )


def shuffled(rows: list, seed: int) -> list:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def id18(id15: str) -> str:
    suffix = ""
    for start in (0, 5, 10):
        value = sum(1 << i for i, ch in enumerate(id15[start : start + 5]) if "A" <= ch <= "Z")
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[value]
    return id15 + suffix


# --------------------------------------------------------------- parse_result_csv


def test_parse_salesforce_quoting_fixture():
    frame = parse_result_csv((FIXTURES / "upsert_job1_successfulResults.csv").read_bytes())
    expected = text_frame(
        {
            "sf__Id": ["001Dn00000QrStUIAV", "001Dn00000AbCdEIAV"],
            "sf__Created": ["true", "false"],
            EXT: ["EXT-3", "EXT-1"],
            "Name": ['The "Best" Co', "Acme, Inc."],
            "Description": ["Line1\nLine2", "Plain"],
        }
    )
    assert_frame_equal(frame, expected)


def test_parse_keeps_every_value_as_text():
    values = ["", "NA", "null", "NaN", "#N/A", "0012", "9.12260031E8", "1e5", "true", "  padded  ", "001Dn00000AbCdE"]
    data = result_csv(["sf__Id", "sf__Created", "Name"], [["", "true", v] for v in values])
    frame = parse_result_csv(data)
    assert_frame_equal(frame, text_frame({"sf__Id": [""] * len(values), "sf__Created": ["true"] * len(values), "Name": values}))
    assert not frame.isna().any().any()


def test_parse_unicode_and_embedded_specials():
    values = ["Zürich, 東京", 'say "hi"', '""', "a\nb", "a\r\nb", "lone\rcr", "🚀 launch", ",", '"', "\n"]
    frame = parse_result_csv(result_csv(["sf__Id", "sf__Error", "Name"], [["", "E:m: --", v] for v in values]))
    assert frame["Name"].tolist() == values
    assert list(frame.columns) == ["sf__Id", "sf__Error", "Name"]


@pytest.mark.parametrize("setting", list(DELIMITERS))
@pytest.mark.parametrize("line_ending, eol", [("LF", "\n"), ("CRLF", "\r\n")])
def test_parse_every_delimiter_and_line_ending(setting, line_ending, eol):
    d = DELIMITERS[setting]
    values = [f"a{d}b", "x\ny", "x\r\ny", "lone\rcr", 'q"q', "plain", ""]
    data = result_csv(["sf__Id", "sf__Created", "Name", "Other"], [[f"id{i}", "true", v, d] for i, v in enumerate(values)], d, eol)
    frame = parse_result_csv(data, column_delimiter=setting, line_ending=line_ending)
    expected = text_frame(
        {"sf__Id": [f"id{i}" for i in range(len(values))], "sf__Created": ["true"] * len(values), "Name": values, "Other": [d] * len(values)}
    )
    assert_frame_equal(frame, expected)


def test_parse_unquoted_lone_cr_is_data_with_lf():
    # Salesforce quotes every value, but the line ending decides what ends a record.
    frame = parse_result_csv(b'Name,Other\nab\rc,"x"\n\nd,e\r\n', line_ending="LF")
    assert_frame_equal(frame, text_frame({"Name": ["ab\rc", "d"], "Other": ["x", "e\r"]}))


@pytest.mark.parametrize("stray", [b"", b"\r"])
def test_parse_single_column_keeps_quoted_blanks_and_skips_blank_lines(stray):
    # An unprocessed-records file of one column; an unquoted \r sends it down the exact path.
    frame = parse_result_csv(b'Name\n""\n\nx' + stray + b'\n""\n')
    assert_frame_equal(frame, text_frame({"Name": ["", "x" + stray.decode(), ""]}))


def test_parse_unquoted_lone_lf_and_cr_are_data_with_crlf():
    frame = parse_result_csv(b'Name,Other\r\nab\nc,x\ry\r\n"q","r"\r\n', line_ending="CRLF")
    assert_frame_equal(frame, text_frame({"Name": ["ab\nc", "q"], "Other": ["x\ry", "r"]}))


@pytest.mark.parametrize("eol, setting", [("\n", "LF"), ("\r\n", "CRLF")])
def test_parse_arrow_and_exact_paths_agree(eol, setting):
    values = ['a,b', 'q"q', "x\ny", "x\r\ny", "lone\rcr", "Café ☕", ""]
    data = result_csv(["sf__Id", "sf__Created", "Name"], [[str(i), "false", v] for i, v in enumerate(values)], ",", eol)
    header, start = R._first_record(data, ",", eol)
    assert_frame_equal(R._parse_arrow(data, header, ","), R._parse_exact(data, header, start, ",", eol))


@pytest.mark.parametrize("eol, setting", [("\n", "LF"), ("\r\n", "CRLF")])
@pytest.mark.parametrize("stray", [False, True])
def test_parse_keeps_only_the_columns_asked_for(eol, setting, stray):
    # stray: a lone line break that is data for the job's line ending (the exact scanner)
    odd = ("x\ry" if eol == "\n" else "x\ny") if stray else "plain"
    header = ["sf__Id", "sf__Created", "Name", "Name", "Key__c"]
    rows = [["001A", "true", 'a,"b"', "dup", "K1"], ["001B", "false", odd, "dup2", "K2"]]
    data = result_csv(header, rows, ",", eol)
    if stray:  # unquoted, as some tools write it
        data = data.replace(f'"{odd}"'.encode(), odd.encode())
    keep = {"sf__Id", "Key__c"}.__contains__
    frame = parse_result_csv(data, line_ending=setting, keep=keep)
    assert list(frame.columns) == ["sf__Id", "Key__c"]
    assert frame.values.tolist() == [["001A", "K1"], ["001B", "K2"]]
    both = parse_result_csv(data, line_ending=setting, keep=lambda c: c == "Name")
    assert list(both.columns) == ["Name", "Name"]
    assert both.iloc[:, 0].tolist() == ['a,"b"', odd] and both.iloc[:, 1].tolist() == ["dup", "dup2"]
    empty = parse_result_csv(result_csv(header, [], ",", eol), line_ending=setting, keep=keep)
    assert list(empty.columns) == ["sf__Id", "Key__c"] and len(empty) == 0


def test_parse_header_only_gives_empty_frame_with_columns():
    frame = parse_result_csv(b'"sf__Id","sf__Error",Name,Description\n')
    assert list(frame.columns) == ["sf__Id", "sf__Error", "Name", "Description"]
    assert len(frame) == 0
    # text columns: pandas 3's str; object (of str) under pandas 2
    assert all(pd.api.types.is_string_dtype(t) for t in frame.dtypes)


@pytest.mark.parametrize("body", [b"", b"\n", b"\xef\xbb\xbf"])
def test_parse_empty_body_gives_empty_frame(body):
    frame = parse_result_csv(body)
    assert frame.shape == (0, 0)


def test_parse_strips_bom_and_reads_crlf_header():
    frame = parse_result_csv(b'\xef\xbb\xbf"sf__Id","sf__Created",Name\r\n"1","true","n"\r\n', line_ending="CRLF")
    assert_frame_equal(frame, text_frame({"sf__Id": ["1"], "sf__Created": ["true"], "Name": ["n"]}))


def test_parse_row_longer_than_a_read_block(monkeypatch):
    monkeypatch.setattr(R, "_BLOCK_SIZE", 1000)
    big = "x\n" * 5000 + '"'
    frame = parse_result_csv(result_csv(["sf__Id", "sf__Created", "Description"], [["1", "true", big], ["2", "false", "y"]]))
    assert frame["Description"].tolist() == [big, "y"]


def test_parse_without_final_line_ending():
    frame = parse_result_csv(b'"sf__Id","sf__Created",Name\n"1","true","a"\n"2","false","b"')
    assert frame["Name"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "data, line_ending, match",
    [
        (b'Name,Other\n"a","c\n', "LF", "never closed"),
        (b'Name,Other\na\rb,"c"x\n', "LF", "malformed"),
        (b'"sf__Id","sf__Created",Name\n"1","true"\n', "LF", "columns|values"),
        (b'"sf__Id","sf__Created",Name\r\n"1","true","a"\r\n', "LF", "malformed"),
        (b'"sf__Id","sf__Created",Name\n"1","true","a"\n', "CRLF", "malformed"),
    ],
)
def test_parse_rejects_malformed_csv(data, line_ending, match):
    with pytest.raises(ValueError, match=match):
        parse_result_csv(data, line_ending=line_ending)


@pytest.mark.parametrize("kwargs", [{"column_delimiter": ","}, {"column_delimiter": "COLON"}, {"line_ending": "CR"}])
def test_parse_rejects_unknown_settings(kwargs):
    with pytest.raises(ValueError, match="must be one of"):
        parse_result_csv(b"Name\n", **kwargs)


# ------------------------------------------------------------------ split_sf_error


@pytest.mark.parametrize(
    "text, expected",
    [
        ("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --", ("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name")),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION:Type must contain a value.:Type --", ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Type must contain a value.", "Type")),
        (
            "INVALID_FIELD:Failed to deserialize field at col 0. Due to, '2018-09-28' is not a valid value for the type xsd:dateTime:CreatedDate --",
            ("INVALID_FIELD", "Failed to deserialize field at col 0. Due to, '2018-09-28' is not a valid value for the type xsd:dateTime", "CreatedDate"),
        ),
        ("DUPLICATE_VALUE:Duplicate external id specified: X: --", ("DUPLICATE_VALUE", "Duplicate external id specified: X", "")),
        ("DUPLICATE_VALUE:Duplicate external id specified: a:b: --", ("DUPLICATE_VALUE", "Duplicate external id specified: a:b", "")),
        ("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName, Company]:LastName,Company --", ("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName, Company]", "LastName,Company")),
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION:Type must contain a value.:Type", ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Type must contain a value.", "Type")),
        ("ENTITY_IS_DELETED:entity is deleted:--", ("ENTITY_IS_DELETED", "entity is deleted", "")),
        ("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id --", ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", "")),
        ("MALFORMED_ID:Record ID: id value of incorrect type: 001xx --", ("MALFORMED_ID", "Record ID: id value of incorrect type: 001xx", "")),
        ("UNABLE_TO_LOCK_ROW", ("UNABLE_TO_LOCK_ROW", "", "")),
        ("STRING_TOO_LONG:Name: data value too large: line1\nline2 (max length=255):Name --", ("STRING_TOO_LONG", "Name: data value too large: line1\nline2 (max length=255)", "Name")),
        ("something went wrong: badly --", ("", "something went wrong: badly", "")),
        ("", ("", "", "")),
    ],
)
def test_split_sf_error(text, expected):
    assert split_sf_error(text) == expected


def test_split_sf_errors_series():
    errors = pd.Series(
        ["FIELD_CUSTOM_VALIDATION_EXCEPTION:Type must contain a value.:Type --", None, "UNABLE_TO_LOCK_ROW", "FIELD_CUSTOM_VALIDATION_EXCEPTION:Type must contain a value.:Type --"],
        index=["a", "b", "c", "d"],
        dtype="string",
    )
    expected = pd.DataFrame(
        {
            "code": pd.array(["FIELD_CUSTOM_VALIDATION_EXCEPTION", None, "UNABLE_TO_LOCK_ROW", "FIELD_CUSTOM_VALIDATION_EXCEPTION"], dtype="string"),
            "message": pd.array(["Type must contain a value.", None, "", "Type must contain a value."], dtype="string"),
            "fields": pd.array(["Type", None, "", "Type"], dtype="string"),
        },
        index=["a", "b", "c", "d"],
    )
    assert_frame_equal(split_sf_errors(errors), expected)


# ------------------------------------------------------------------------ align


def upsert_sent() -> pd.DataFrame:
    return text_frame(
        {
            EXT: ["EXT-1", "EXT-2", "EXT-3", "EXT-4", "EXT-5", "EXT-6"],
            "Name": ["Acme, Inc.", "", 'The "Best" Co', "Zürich AG", "Café ☕", "Kraków"],
            "Description": ["Plain", "n/a", "Line1\nLine2", "semi;colon|pipe", "x", ""],
        },
        index=pd.Index(["r0", "r1", "r2", "r3", "r4", "r5"], name="row"),
    )


def fixture_outcome(job: str, positions: range) -> JobOutcome:
    def read(kind):
        return parse_result_csv((FIXTURES / f"upsert_{job}_{kind}.csv").read_bytes())

    return JobOutcome(positions, f"750{job}", successful=read("successfulResults"), failed=read("failedResults"))


def test_align_upsert_two_jobs_from_fixtures():
    sent = upsert_sent()
    out = align(sent, "upsert", EXT, [fixture_outcome("job1", range(0, 3)), fixture_outcome("job2", range(3, 6))])
    expected = aligned_frame(
        [
            ("001Dn00000AbCdEIAV", "updated", None, None, None, "750job1"),
            (None, "failed", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name", "750job1"),
            ("001Dn00000QrStUIAV", "created", None, None, None, "750job1"),
            ("001Dn00000XyZ12IAF", "updated", None, None, None, "750job2"),
            ("001Dn00000FaIlSIAV", "failed", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Revenue rule: set it: now", "AnnualRevenue", "750job2"),
            ("001Dn00000mNoPqIAK", "created", None, None, None, "750job2"),
        ],
        sent.index,
    )
    assert_frame_equal(out, expected)


def test_align_results_belong_to_their_own_job():
    # The same results, but handed to the wrong jobs: every key is found in the wrong job.
    sent = upsert_sent()
    with pytest.raises(AlignmentError) as err:
        align(sent, "upsert", EXT, [fixture_outcome("job2", range(0, 3)), fixture_outcome("job1", range(3, 6))])
    assert err.value.positions.tolist() == [0, 1, 2, 3, 4, 5]
    assert len(err.value.result_rows) == 6


@pytest.mark.parametrize("seed", range(5))
def test_align_upsert_shuffled_many_jobs_matches_truth(seed):
    rng = random.Random(seed)
    n = 600
    sent = text_frame({EXT: [f"K{i:04d}" for i in range(n)], "Name": [f"N{i % 7}" for i in range(n)]}, index=np.arange(n) * 10 + 5)
    truth = [rng.choice(["created", "updated", "failed"]) for _ in range(n)]
    bounds = [0, 150, 151, 420, n]
    outcomes = []
    for j in range(len(bounds) - 1):
        rows = list(range(bounds[j], bounds[j + 1]))
        ok = [[f"001{i:012d}AAA", "true" if truth[i] == "created" else "false", f"K{i:04d}", f"N{i % 7}"] for i in rows if truth[i] != "failed"]
        bad = [["", f"FIELD_INTEGRITY_EXCEPTION:bad {i}:Name --", f"K{i:04d}", f"N{i % 7}"] for i in rows if truth[i] == "failed"]
        outcomes.append(
            JobOutcome(range(bounds[j], bounds[j + 1]), f"750J{j}", successful=successes([EXT, "Name"], shuffled(ok, seed + j)), failed=failures([EXT, "Name"], shuffled(bad, seed - j)))
        )
    out = align(sent, "upsert", EXT, outcomes)
    expected = aligned_frame(
        [
            (
                None if truth[i] == "failed" else f"001{i:012d}AAA",
                truth[i],
                "FIELD_INTEGRITY_EXCEPTION" if truth[i] == "failed" else None,
                f"bad {i}" if truth[i] == "failed" else None,
                "Name" if truth[i] == "failed" else None,
                f"750J{next(j for j in range(4) if bounds[j] <= i < bounds[j + 1])}",
            )
            for i in range(n)
        ],
        sent.index,
    )
    assert_frame_equal(out, expected)


def test_align_upsert_key_case_insensitive():
    sent = text_frame({EXT: ["abc-1", "Abc-2"], "Name": ["a", "b"]})
    # Echoes in another case than sent: only a case-insensitive field matches them.
    ok = successes([EXT, "Name"], [["001000000000002AAA", "true", "ABC-2", "b"], ["001000000000001AAA", "false", "ABC-1", "a"]])
    out = align(sent, "upsert", EXT, [JobOutcome(range(2), "750A", successful=ok)], key_case_insensitive=True)
    assert out["sf_id"].tolist() == ["001000000000001AAA", "001000000000002AAA"]
    assert out["sf_status"].tolist() == ["updated", "created"]
    with pytest.raises(AlignmentError):
        align(sent, "upsert", EXT, [JobOutcome(range(2), "750A", successful=ok)])


def test_align_upsert_case_sensitive_keys_differing_in_case_stay_apart():
    sent = text_frame({EXT: ["abc", "ABC"], "Name": ["lower", "upper"]})
    ok = successes([EXT, "Name"], [["001000000000002AAA", "true", "ABC", "upper"], ["001000000000001AAA", "true", "abc", "lower"]])
    out = align(sent, "upsert", EXT, [JobOutcome(range(2), "750A", successful=ok)])
    assert out["sf_id"].tolist() == ["001000000000001AAA", "001000000000002AAA"]


def test_align_upsert_key_column_matched_case_insensitively_by_name():
    sent = text_frame({EXT: ["k1"], "Name": ["a"]})
    ok = successes([EXT.lower(), "Name"], [["001000000000001AAA", "true", "k1", "a"]])
    out = align(sent, "upsert", EXT, [JobOutcome(range(1), "750A", successful=ok)])
    assert out["sf_status"].tolist() == ["created"]


def test_align_update_by_id_15_and_18_char_forms_and_case():
    a15, b15, c15, d15 = "001Dn00000aBcDe", "001Dn00000AbCdE", "001Dn00000QrStU", "001Dn00000mNoPq"
    sent = text_frame({"Id": [a15, b15, id18(c15).lower(), d15], "Name": ["a", "b", "c", "d"]}, index=list("abcd"))
    # a15 and b15 differ only in case: two different records.
    ok = successes(
        ["Id", "Name"],
        [
            [id18(b15), "false", b15, "b"],  # echoed as sent
            [id18(c15), "false", id18(c15).lower(), "c"],  # 18-char lower-case, as sent
            [id18(a15), "false", id18(a15), "a"],  # echoed in its 18-char form
        ],
    )
    bad = failures(["Id", "Name"], [[id18(d15), "ENTITY_IS_DELETED:entity is deleted:--", d15, "d"]])
    out = align(sent, "update", None, [JobOutcome(range(4), "750U", successful=ok, failed=bad)])
    expected = aligned_frame(
        [
            (id18(a15), "updated", None, None, None, "750U"),
            (id18(b15), "updated", None, None, None, "750U"),
            (id18(c15), "updated", None, None, None, "750U"),
            (id18(d15), "failed", "ENTITY_IS_DELETED", "entity is deleted", "", "750U"),
        ],
        sent.index,
    )
    assert_frame_equal(out, expected)
    assert id18(a15) != id18(b15)


@pytest.mark.parametrize("operation", ["delete", "hardDelete"])
def test_align_delete_operations(operation):
    ids = ["001000000000001", "001000000000002AAA", "001000000000003"]
    sent = text_frame({"Id": ids})
    ok = successes(["Id"], [[id18(ids[2]), "false", ids[2]], [id18(ids[0]), "false", ids[0]]])
    bad = failures(["Id"], [["001000000000002AAA", "ENTITY_IS_DELETED:entity is deleted:--", ids[1]]])
    out = align(sent, operation, "Id", [JobOutcome(range(3), "750D", successful=ok, failed=bad)])
    assert out["sf_status"].tolist() == ["deleted", "failed", "deleted"]
    assert out["sf_id"].tolist() == ["001000000000001AAA", "001000000000002AAA", "001000000000003AAA"]
    assert out["sf_error_code"].isna().tolist() == [True, False, True]


def test_align_insert_identical_rows_share_outcomes():
    same = ["Acme", "Milano"]
    sent = text_frame(
        {"Name": ["Acme", "Other", "Acme", "Acme", "Acme"], "BillingCity": ["Milano", "Roma", "Milano", "Milano", "Torino"]},
        index=["a", "b", "c", "d", "e"],
    )
    ok = successes(
        ["Name", "BillingCity"],
        [["001000000000011AAA", "true", *same], ["001000000000012AAA", "true", "Acme", "Torino"], ["001000000000010AAA", "true", *same]],
    )
    bad = failures(
        ["Name", "BillingCity"],
        [["", "DUPLICATES_DETECTED:Use one of these records?:--", *same], ["", "REQUIRED_FIELD_MISSING:Required fields are missing: [Region__c]:Region__c --", "Other", "Roma"]],
    )
    out = align(sent, "insert", None, [JobOutcome(range(5), "750I", successful=ok, failed=bad)])
    # The three identical rows (a, c, d) got the three outcomes of that text, each once.
    group = out.loc[["a", "c", "d"]]
    assert sorted(group["sf_status"]) == ["created", "created", "failed"]
    assert sorted(group["sf_id"].dropna()) == ["001000000000010AAA", "001000000000011AAA"]
    assert group.loc[group["sf_status"] == "failed", "sf_error_code"].tolist() == ["DUPLICATES_DETECTED"]
    assert out.loc["e", "sf_id"] == "001000000000012AAA"
    assert out.loc["b", "sf_status"] == "failed" and out.loc["b", "sf_error_fields"] == "Region__c"
    assert pd.isna(out.loc["b", "sf_id"])


def test_align_insert_needs_every_column_to_match():
    sent = text_frame({"Name": ["Acme", "Acme"], "Phone": ["1", "2"]})
    ok = successes(["Name", "Phone"], [["001000000000002AAA", "true", "Acme", "2"], ["001000000000001AAA", "true", "Acme", "1"]])
    out = align(sent, "insert", None, [JobOutcome(range(2), "750I", successful=ok)])
    assert out["sf_id"].tolist() == ["001000000000001AAA", "001000000000002AAA"]


def test_align_insert_numbers_echoed_as_parsed():
    # Salesforce echoes some numbers as it parsed them (protocol notes §3.2).
    sent = text_frame({"Name": ["Lorem", "Lorem", "Ipsum"], "AnnualRevenue": ["912260031", "5", "912260031"]})
    ok = successes(
        ["Name", "AnnualRevenue"],
        [["001000000000002AAA", "true", "Lorem", "5.0"], ["001000000000003AAA", "true", "Ipsum", "9.12260031E8"], ["001000000000001AAA", "true", "Lorem", "9.12260031E8"]],
    )
    out = align(sent, "insert", None, [JobOutcome(range(3), "750I", successful=ok)])
    assert out["sf_id"].tolist() == ["001000000000001AAA", "001000000000002AAA", "001000000000003AAA"]


def test_align_unprocessed_not_sent_and_pending():
    sent = text_frame({EXT: [f"K{i}" for i in range(8)]}, index=[f"r{i}" for i in range(8)])
    failed_job = JobOutcome(
        range(0, 3),
        "750F",
        successful=successes([EXT], [["001000000000001AAA", "true", "K0"]]),
        failed=failures([EXT], []),
        unprocessed=parse_result_csv(result_csv([EXT], [["K2"], ["K1"]])),
    )
    never_sent = JobOutcome(range(3, 5), None, sent=False)
    upload_failed = JobOutcome(range(5, 6), "750X", sent=False)
    running = JobOutcome(range(6, 8), "750R", finished=False, successful=successes([EXT], [["001000000000007AAA", "false", "K7"]]))
    out = align(sent, "upsert", EXT, [failed_job, never_sent, upload_failed, running])
    expected = aligned_frame(
        [
            ("001000000000001AAA", "created", None, None, None, "750F"),
            (None, "unprocessed", None, None, None, "750F"),
            (None, "unprocessed", None, None, None, "750F"),
            (None, "not_sent", None, None, None, None),
            (None, "not_sent", None, None, None, None),
            (None, "not_sent", None, None, None, "750X"),
            (None, "pending", None, None, None, "750R"),
            ("001000000000007AAA", "updated", None, None, None, "750R"),
        ],
        sent.index,
    )
    assert_frame_equal(out, expected)


def test_align_missing_results_raise_naming_positions():
    sent = text_frame({EXT: ["K0", "K1", "K2", "K3"]}, index=["a", "b", "c", "d"])
    ok = successes([EXT], [["001000000000001AAA", "true", "K1"], ["001000000000003AAA", "true", "K3"]])
    with pytest.raises(AlignmentError, match=r"2 input row\(s\).*positions \[0, 2\].*\['a', 'c'\].*750A") as err:
        align(sent, "upsert", EXT, [JobOutcome(range(4), "750A", successful=ok)])
    assert err.value.positions.tolist() == [0, 2]
    # The same rows of a job still running are pending, not an error.
    out = align(sent, "upsert", EXT, [JobOutcome(range(4), "750A", finished=False, successful=ok)])
    assert out["sf_status"].tolist() == ["pending", "created", "pending", "created"]


def test_align_result_row_matching_no_input_raises():
    sent = text_frame({EXT: ["K0", "K1"]})
    ok = successes([EXT], [["001000000000001AAA", "true", "K1"], ["001000000000009AAA", "true", "K9"], ["001000000000000AAA", "true", "K0"]])
    with pytest.raises(AlignmentError, match=r"1 result row\(s\).*successfulResults row 1.*K9") as err:
        align(sent, "upsert", EXT, [JobOutcome(range(2), "750A", successful=ok)])
    assert err.value.result_rows == [(0, "successfulResults", 1)]
    assert err.value.positions.tolist() == []


def test_align_uses_each_result_row_once():
    # Two results for one row: one of them is left over.
    sent = text_frame({EXT: ["K0"]})
    ok = successes([EXT], [["001000000000001AAA", "true", "K0"]])
    bad = failures([EXT], [["", "UNABLE_TO_LOCK_ROW:locked:--", "K0"]])
    with pytest.raises(AlignmentError, match="1 result row"):
        align(sent, "upsert", EXT, [JobOutcome(range(1), "750A", successful=ok, failed=bad)])


def test_align_duplicate_keys_sent_anyway_are_told_apart_by_their_text():
    # An upsert on Id inserts the rows without an Id: several blank keys in one job.
    sent = text_frame({"Id": ["", "001000000000005", ""], "Name": ["new one", "old", "new two"]})
    ok = successes(
        ["Id", "Name"],
        [["001000000000008AAA", "true", "", "new two"], ["001000000000005AAA", "false", "001000000000005", "old"], ["001000000000007AAA", "true", "", "new one"]],
    )
    out = align(sent, "upsert", "Id", [JobOutcome(range(3), "750A", successful=ok)])
    assert out["sf_id"].tolist() == ["001000000000007AAA", "001000000000005AAA", "001000000000008AAA"]
    assert out["sf_status"].tolist() == ["created", "updated", "created"]


def test_align_rows_must_belong_to_exactly_one_outcome():
    sent = text_frame({EXT: ["K0", "K1", "K2"]})
    with pytest.raises(AlignmentError, match=r"positions \[2\].*no outcome"):
        align(sent, "upsert", EXT, [JobOutcome(range(0, 2), None, sent=False)])
    with pytest.raises(AlignmentError, match=r"positions \[1\].*more than one"):
        align(sent, "upsert", EXT, [JobOutcome(range(0, 2), None, sent=False), JobOutcome(range(1, 3), None, sent=False)])
    with pytest.raises(ValueError, match="outside"):
        align(sent, "upsert", EXT, [JobOutcome(range(0, 4), None, sent=False)])


def test_align_rejects_results_on_unsent_outcome_and_bad_arguments():
    sent = text_frame({EXT: ["K0"]})
    ok = successes([EXT], [["001000000000001AAA", "true", "K0"]])
    with pytest.raises(ValueError, match="sent=False"):
        align(sent, "upsert", EXT, [JobOutcome(range(1), "750A", sent=False, successful=ok)])
    with pytest.raises(ValueError, match="operation"):
        align(sent, "merge", EXT, [JobOutcome(range(1), "750A", successful=ok)])
    with pytest.raises(ValueError, match="key="):
        align(sent, "upsert", None, [JobOutcome(range(1), "750A", successful=ok)])
    with pytest.raises(ValueError, match="no column 'Missing__c'"):
        align(sent, "upsert", "Missing__c", [JobOutcome(range(1), "750A", successful=ok)])


def test_align_result_missing_the_key_column_raises():
    sent = text_frame({EXT: ["K0"]})
    ok = successes(["Name"], [["001000000000001AAA", "true", "K0"]])
    with pytest.raises(ValueError, match="successfulResults.*no column"):
        align(sent, "upsert", EXT, [JobOutcome(range(1), "750A", successful=ok)])


def test_align_empty_input():
    sent = text_frame({EXT: []})
    out = align(sent, "upsert", EXT, [])
    assert_frame_equal(out, aligned_frame([], sent.index))


# --------------------------------------------------------------- find_duplicate_keys


def duplicates_frame(rows: list[tuple], index) -> pd.DataFrame:
    columns = list(zip(*rows)) if rows else [[], [], [], []]
    return pd.DataFrame(
        {
            "position": np.array(columns[0], np.int64),
            "key": pd.array(list(columns[1]), dtype="string"),
            "count": np.array(columns[2], np.int64),
            "reason": pd.array(list(columns[3]), dtype="string"),
        },
        index=index,
    )


def test_find_duplicate_keys_upsert_case_sensitive_and_not():
    sent = text_frame({EXT: ["B", "a", "A", "b", "A", ""]}, index=["p", "q", "r", "s", "t", "u"])
    exact = find_duplicate_keys(sent, "upsert", EXT)
    assert_frame_equal(exact, duplicates_frame([(2, "A", 2, "duplicate"), (4, "A", 2, "duplicate"), (5, "", 1, "blank")], pd.Index(["r", "t", "u"])))
    folded = find_duplicate_keys(sent, "upsert", EXT, key_case_insensitive=True)
    assert_frame_equal(
        folded,
        duplicates_frame(
            [(0, "B", 2, "duplicate"), (3, "b", 2, "duplicate"), (1, "a", 3, "duplicate"), (2, "A", 3, "duplicate"), (4, "A", 3, "duplicate"), (5, "", 1, "blank")],
            pd.Index(["p", "s", "q", "r", "t", "u"]),
        ),
    )


def test_find_duplicate_keys_update_ids_and_blanks():
    a15 = "001Dn00000AbCdE"
    sent = text_frame({"Id": [a15, "001Dn00000abcde", id18(a15).lower(), "  ", "#N/A", ""]})
    out = find_duplicate_keys(sent, "update")
    assert_frame_equal(
        out,
        duplicates_frame(
            [(0, a15, 2, "duplicate"), (2, id18(a15).lower(), 2, "duplicate"), (3, "  ", 3, "blank"), (4, "#N/A", 3, "blank"), (5, "", 3, "blank")],
            pd.Index([0, 2, 3, 4, 5]),
        ),
    )


def test_find_duplicate_keys_empty_when_fine():
    sent = text_frame({"Id": ["001000000000001", "001000000000002"], "Name": ["x", "x"]})
    for operation, key in [("delete", None), ("hardDelete", "id"), ("update", "Id"), ("upsert", "Name")]:
        out = find_duplicate_keys(sent, operation, key)
        if operation == "upsert":
            assert out["position"].tolist() == [0, 1]
        else:
            assert_frame_equal(out, duplicates_frame([], sent.index[:0]))


def test_find_duplicate_keys_insert_and_upsert_by_id():
    sent = text_frame({"Id": ["", "", "001000000000001", "001000000000001AAA"]})
    assert len(find_duplicate_keys(sent, "insert")) == 0
    out = find_duplicate_keys(sent, "upsert", "Id")  # blank Ids insert: fine
    assert out["position"].tolist() == [2, 3]
    assert out["reason"].tolist() == ["duplicate", "duplicate"]
    with pytest.raises(ValueError, match="key="):
        find_duplicate_keys(sent, "upsert", None)


# -------------------------------------------------------------- summaries


def test_summarize_errors_groups_rows_that_differ_only_in_their_value():
    aligned = aligned_frame(
        [
            (None, "failed", "UNABLE_TO_LOCK_ROW", "", "", "750A"),
            (None, "failed", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name", "750A"),
            ("001000000000001AAA", "created", None, None, None, "750A"),
            (None, "failed", "INVALID_TYPE_ON_FIELD_IN_RECORD", "Active: value not of required type: Yes", "Active__c", "750A"),
            (None, "failed", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name", "750B"),
            (None, "failed", "INVALID_TYPE_ON_FIELD_IN_RECORD", "Active: value not of required type: no", "Active__c", "750B"),
            (None, "failed", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name", "750B"),
            (None, "failed", "INVALID_TYPE_ON_FIELD_IN_RECORD", "Active: value not of required type: Yes", "Active__c", "750B"),
            (None, "unprocessed", None, None, None, "750B"),
            (None, "unprocessed", "JOB_FAILED", "InvalidBatch : Field name not found : Region", None, "750C"),
            (None, "invalid", "STRING_TOO_LONG", "Name: 'xxxxx' is longer than the 3 characters Name takes", "Name", None),
            (None, "failed", "STRING_TOO_LONG", "Account Name: data value too large: " + "y" * 70 + " (max length=255)", "Name", "750C"),
        ],
        pd.Index(range(9, 21)),
    )
    summary = summarize_errors(aligned)
    assert list(summary.columns) == ["status", "code", "fields", "message", "rows", "share",
                                     "examples", "example_index"]
    assert list(summary["code"]) == ["REQUIRED_FIELD_MISSING", "INVALID_TYPE_ON_FIELD_IN_RECORD",
                                     "UNABLE_TO_LOCK_ROW", "JOB_FAILED", "STRING_TOO_LONG",
                                     "STRING_TOO_LONG"]
    assert list(summary["rows"]) == [3, 3, 1, 1, 1, 1]
    typed = summary.iloc[1]
    assert typed["message"] == "Active: value not of required type: \u2026"
    assert typed["examples"] == ["Yes", "no"] and typed["example_index"] == 12
    assert typed["share"] == pytest.approx(3 / 12)
    assert summary.iloc[3]["status"] == "unprocessed"
    assert summary.iloc[3]["message"] == "InvalidBatch : Field name not found : Region"
    assert summary.iloc[4]["message"] == "Name: \u2026 is longer than the 3 characters Name takes"
    assert summary.iloc[4]["status"] == "invalid" and summary.iloc[4]["examples"] == ["xxxxx"]
    long = summary.iloc[5]
    assert long["message"] == "Account Name: data value too large: \u2026 (max length=255)"
    assert long["examples"] == ["y" * 59 + "\u2026"]


def test_summarize_errors_without_failures():
    aligned = aligned_frame([("001000000000001AAA", "created", None, None, None, "750A")], pd.Index(["a"]))
    summary = summarize_errors(aligned)
    assert list(summary.columns) == ["status", "code", "fields", "message", "rows", "share",
                                     "examples", "example_index"]
    assert len(summary) == 0


def test_count_statuses_lists_every_status():
    aligned = aligned_frame(
        [(None, s, None, None, None, None) for s in ["failed", "created", "failed", "pending", "created", "created"]],
        pd.RangeIndex(6),
    )
    expected = pd.Series([3, 0, 0, 2, 0, 0, 1, 0, 0, 0, 0], index=pd.Index(STATUSES, name="sf_status"), name="rows", dtype=np.int64)
    assert_series_equal(count_statuses(aligned), expected)
    aligned.loc[0, "sf_status"] = "exploded"
    with pytest.raises(ValueError, match="exploded"):
        count_statuses(aligned)


# ------------------------------------------------------- through the local org


def run_jobs(api, sent: pd.DataFrame, operation: str, key: str | None, rows_per_job: int) -> list[JobOutcome]:
    """Send ``sent`` in jobs of ``rows_per_job`` rows; the org shuffles its results."""
    from sfbulk_nb.encode import iter_chunks

    outcomes = []
    options = {"externalIdFieldName": key} if operation == "upsert" else {}
    for chunk in iter_chunks(sent, max_records=rows_per_job):
        info = api.run("Account", operation, chunk.data, **options)
        assert info["state"] == "JobComplete", info

        def read(kind, job=info["id"]):
            return parse_result_csv(api.results(job, kind).encode("utf-8"))

        outcomes.append(JobOutcome(chunk.positions, info["id"], successful=read("successfulResults"), failed=read("failedResults")))
    return outcomes


def test_local_org_upsert_update_delete_round_trip(api):
    names = ["Acme, Inc.", "", 'The "Best" Co', "Line1\nLine2", "Zürich", "", "Kraków", "Plain"] * 5
    sent = text_frame({EXT: [f"ext-{i:02d}" for i in range(40)], "Name": names}, index=[f"r{i}" for i in range(40)])
    out = align(sent, "upsert", EXT, run_jobs(api, sent, "upsert", EXT, 15))
    no_name = sent["Name"] == ""
    assert (out.loc[~no_name, "sf_status"] == "created").all()
    assert (out.loc[no_name, "sf_status"] == "failed").all()
    assert set(out.loc[no_name, "sf_error_code"]) == {"REQUIRED_FIELD_MISSING"}
    for label in ["r0", "r2", "r3"]:
        record = api.record("Account", out.loc[label, "sf_id"])
        assert record[EXT] == sent.loc[label, EXT] and record["Name"] == sent.loc[label, "Name"]

    # Update by 15-character ids (the org echoes them as sent), one id that does not exist.
    created = out[out["sf_status"] == "created"]
    ids = [i[:15] for i in created["sf_id"]] + ["001000000000000"]
    update = text_frame({"Id": ids, "Name": [f"renamed {i}" for i in range(len(ids))]})
    updated = align(update, "update", None, run_jobs(api, update, "update", None, 7))
    assert updated["sf_status"].tolist() == ["updated"] * len(created) + ["failed"]
    assert updated["sf_id"].tolist()[:-1] == created["sf_id"].tolist()
    assert api.record("Account", created["sf_id"].iloc[4])["Name"] == "renamed 4"

    deleted = align(update[["Id"]], "delete", "Id", run_jobs(api, update[["Id"]], "delete", None, 9))
    assert count_statuses(deleted)[["deleted", "failed"]].tolist() == [len(created), 1]
    assert deleted["sf_id"].tolist()[:-1] == created["sf_id"].tolist()


def test_local_org_insert_with_identical_rows(api):
    sent = text_frame({"Name": ["Same", "Same", "", "Same", "Other", ""], "Description": ["d", "d", "x", "d", "d", "x"]})
    out = align(sent, "insert", None, run_jobs(api, sent, "insert", None, 4))
    assert out["sf_status"].tolist() == ["created", "created", "failed", "created", "created", "failed"]
    assert out["sf_id"].notna().sum() == 4 and out["sf_id"].dropna().is_unique
    for label in [0, 1, 3, 4]:
        assert api.record("Account", out.loc[label, "sf_id"])["Name"] == sent.loc[label, "Name"]


def test_has_transient_failures_reads_the_failed_rows_codes():
    locked = failures([EXT], [["", "VALIDATION:x:--", "K0"], ["", " UNABLE_TO_LOCK_ROW:busy:--", "K1"]])
    other = failures([EXT], [["", "DUPLICATE_VALUE:dup:Name --", "K2"]])
    ok = successes([EXT], [["001000000000001AAA", "true", "K3"]])
    assert R.has_transient_failures([JobOutcome(range(2), "750A", failed=locked)])
    assert not R.has_transient_failures([JobOutcome(range(1), "750B", failed=other, successful=ok)])
    assert not R.has_transient_failures([JobOutcome(range(1), "750C"),
                                         JobOutcome(range(1), "750D", successful=ok)])
    # A job whose results are unknown has no rows to send again.
    assert not R.has_transient_failures([JobOutcome(range(2), "750E", failed=locked, unknown=True)])
