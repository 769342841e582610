"""A catalogue of bad input, at every entry point: the load functions, validate_df and
dry_run, query_df, the magics and the `sfbulk-nb` command.

Each case ends in an error of the package's tree (at the magic boundary an IPython
UsageError; from the command a non-zero exit with a message on stderr) whose text names
what is wrong and says what to do, or in a clear row error of the aligned result. None
crashes with a raw Python error (KeyError, TypeError, pandas' or pyarrow's), and none
writes silently: every case checks the org's records and job list.
"""
from __future__ import annotations

import json
import re
import socket

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import sfbulk_nb as sfb
from sfbulk_nb import cli, errors, org as orgs
from sfbulk_nb.encode import EncodeError
from sfbulk_nb.localorg.ids import make_id
from tests.conftest import BulkHttp

KEY = "customExtIdField__c"
GOOD = pd.DataFrame({KEY: ["K-1", "K-2"], "Name": ["Alpha", "Beta"]})
ACCOUNT_ID = make_id("001", 424242)  # well formed, never created
CONTACT_ID = make_id("003", 424242)
TOKEN = "00D5g000004XyZa!AQ4AQLq3.notARealToken"


def writes(org) -> tuple[int, int, int]:
    """What a case could have written: Account and Contact records, ingest jobs."""
    jobs = BulkHttp(org).request("GET", "/jobs/ingest").json()["records"]
    return (org.store.count_records(org.catalog.get("Account")),
            org.store.count_records(org.catalog.get("Contact")), len(jobs))


def says(text: str, problem: str, fix: str) -> None:
    """The message names the problem and says what to do about it."""
    assert re.search(problem, text, re.S), f"no {problem!r} in:\n{text}"
    assert re.search(fix, text, re.S), f"no fix {fix!r} in:\n{text}"
    assert "Traceback" not in text


def with_(**columns) -> pd.DataFrame:
    return GOOD.assign(**columns)


def upsert(df, **options):
    return sfb.upsert_df(df, "Account", KEY, progress=False, **options)


@pytest.fixture
def client(org):
    return sfb.connect(org)


# -- the Python API ----------------------------------------------------------------------

S = errors.InputError
V = errors.ValidationError
E = EncodeError
Q = errors.RequestError

API_CASES = [
    # what df is
    pytest.param(lambda: upsert({KEY: ["K-1"], "Name": ["A"]}), S, r"expected a pandas DataFrame, got dict",
                 r"pd\.DataFrame\(data\)", id="upsert-dict"),
    pytest.param(lambda: upsert([{KEY: "K-1", "Name": "A"}]), S, r"got list", r"pd\.DataFrame\(data\)",
                 id="upsert-list-of-dicts"),
    pytest.param(lambda: upsert(GOOD[KEY]), S, r"got Series", r"series\.to_frame\(\)", id="upsert-series"),
    pytest.param(lambda: upsert(None), S, r"got NoneType", r"pass the DataFrame itself", id="upsert-none"),
    pytest.param(lambda: sfb.insert_df({"Name": ["A"]}, "Account", progress=False), S, r"got dict",
                 r"pd\.DataFrame\(data\)", id="insert-dict"),
    pytest.param(lambda: sfb.update_df([["001"]], "Account", progress=False), S, r"got list",
                 r"pd\.DataFrame", id="update-list"),
    pytest.param(lambda: upsert(pd.DataFrame()), V, r"the frame has no columns",
                 r"fix: df = pd\.DataFrame\(\{'Name'", id="upsert-empty-frame"),
    # the object and the key
    pytest.param(lambda: sfb.upsert_df(GOOD, "Acount", KEY, progress=False), S, r"no object 'Acount'",
                 r"did you mean 'Account'", id="object-misspelt"),
    pytest.param(lambda: sfb.upsert_df(GOOD, "Account?x=1", KEY, progress=False), S,
                 r"object 'Account\?x=1' is not a Salesforce API name", r"e\.g\. Account",
                 id="object-with-query"),
    pytest.param(lambda: sfb.upsert_df(GOOD, "Account/../Contact", KEY, progress=False), S,
                 r"'Account/\.\./Contact' is not a Salesforce API name", r"letters, digits and underscores",
                 id="object-with-path"),
    pytest.param(lambda: sfb.insert_df(GOOD[["Name"]], "Account Name", progress=False), S,
                 r"'Account Name' is not a Salesforce API name", r"e\.g\. Account", id="object-with-space"),
    pytest.param(lambda: sfb.upsert_df(GOOD, None, KEY, progress=False), S, r"object None is not",
                 r"e\.g\. Account", id="object-none"),
    pytest.param(lambda: sfb.upsert_df(GOOD, "Account", "Nope__c", progress=False), S,
                 r"Account has no field 'Nope__c'", r"External ID fields: customExtIdField__c",
                 id="external-id-unknown"),
    pytest.param(lambda: sfb.upsert_df(GOOD.assign(Industry="Banking"), "Account", "Industry",
                                       progress=False), S,
                 r"Account\.Industry is not an External ID field",
                 r"upsert needs one \(customExtIdField__c\) or Id", id="external-id-not-external"),
    pytest.param(lambda: sfb.upsert_df(GOOD, "Account", None, progress=False), S,
                 r"upsert needs external_id", r"an External ID field, or Id", id="external-id-none"),
    pytest.param(lambda: upsert(GOOD[["Name"]]), V, r"needs a 'customExtIdField__c' column",
                 r"fix: df\['customExtIdField__c'\] = ", id="key-column-missing"),
    # misspelt and wrong options
    pytest.param(lambda: upsert(GOOD, paralel=2), S, r"unknown option 'paralel'",
                 r"did you mean 'parallel'", id="option-paralel"),
    pytest.param(lambda: upsert(GOOD, nulls="none"), S, r"nulls must be .*got 'none'",
                 r"'keep', 'clear' or a dict", id="option-nulls-none"),
    pytest.param(lambda: upsert(GOOD, nulls={"Nope": "clear"}), S, r"not in the frame: \['Nope'\]",
                 r"its columns are \['customExtIdField__c', 'Name'\]", id="option-nulls-unknown-column"),
    pytest.param(lambda: upsert(GOOD, on_invalid="ignore"), S, r"got 'ignore'",
                 r"one of 'raise', 'skip', 'send'", id="option-on-invalid-ignore"),
    pytest.param(lambda: sfb.upsert_df(GOOD, "Account", KEY, progress="fancy"), S, r"not 'fancy'",
                 r"'auto', 'text', False or a callable", id="option-progress-fancy"),
    pytest.param(lambda: upsert(GOOD, max_bytes=0), E, r"max_bytes .* got 0",
                 r"must be a positive integer", id="option-max-bytes-0"),
    pytest.param(lambda: upsert(GOOD, max_records=0), E, r"max_records .* got 0",
                 r"positive integer or None", id="option-max-records-0"),
    pytest.param(lambda: upsert(GOOD, tz="Mars/Olympus"), E, r"tz='Mars/Olympus' is not a time zone",
                 r"an IANA name such as 'Europe/Paris'", id="option-tz-mars"),
    pytest.param(lambda: upsert(GOOD, tz=5), E, r"not 5", r"a time zone name such as 'Europe/Paris'",
                 id="option-tz-number"),
    pytest.param(lambda: upsert(GOOD, column_delimiter=","), S, r"got ','",
                 r"one of BACKQUOTE, CARET, COMMA", id="option-column-delimiter-comma"),
    pytest.param(lambda: upsert(GOOD, lock_retries=-1), S, r"not -1", r"whole number of at least 0",
                 id="option-lock-retries-negative"),
    pytest.param(lambda: upsert(GOOD, parallel=0), S, r"not 0", r"whole number of at least 1",
                 id="option-parallel-0"),
    pytest.param(lambda: upsert(GOOD, timeout="10"), S, r"not '10'", r"a number of seconds \(0 or more\)",
                 id="option-timeout-text"),
    pytest.param(lambda: upsert(GOOD, wait="no"), S, r"wait must be True or False, not 'no'",
                 r"True or False", id="option-wait-text"),
    pytest.param(lambda: upsert(GOOD, org="local"), S, r"org must be an Org, not a str",
                 r"org=sfb\.connect\('local'\)", id="option-org-text"),
    # columns
    pytest.param(lambda: upsert(pd.DataFrame([["K-1", "A", "B"]], columns=[KEY, "Name", "Name"])), V,
                 r"columns 'Name' and 'Name' both write Account\.Name", r"keep one.*df\.drop",
                 id="columns-duplicate"),
    pytest.param(lambda: upsert(pd.DataFrame([["K-1", "A", 1]], columns=[KEY, "Name", 0])), V,
                 r"column 2 is named 0 \(int\)", r"df\.columns = df\.columns\.map\(str\)",
                 id="columns-not-strings"),
    pytest.param(lambda: upsert(pd.DataFrame(
        [["K-1", "A"]], columns=pd.MultiIndex.from_tuples([(KEY, "x"), ("Name", "y")]))), V,
                 r"named \('customExtIdField__c', 'x'\) \(tuple\)", r"fix: ", id="columns-multiindex"),
    pytest.param(lambda: upsert(with_(sf_status="created")), V, r"'sf_status' is a result column",
                 r"df\.drop\(columns=\['sf_status'\]\)", id="columns-result-columns"),
    # cells
    pytest.param(lambda: upsert(with_(Name=[["x"], ["y"]])), V, r"is a list, which has no Bulk CSV form",
                 r"';'\.join", id="cells-lists"),
    pytest.param(lambda: upsert(with_(Name=[{"a": 1}, {"b": 2}])), V, r"is a dict, which has no Bulk CSV",
                 r"astype\('string'\)", id="cells-dicts"),
    pytest.param(lambda: upsert(with_(Name=[b"x", b"y"])), V, r"is a bytes, which has no Bulk CSV",
                 r"\.str\.decode\('utf-8'\)", id="cells-bytes"),
    pytest.param(lambda: upsert(with_(AnnualRevenue=[1 + 2j, 3j])), V, r"holds complex numbers",
                 r"convert or drop it", id="cells-complex"),
    pytest.param(lambda: upsert(with_(AnnualRevenue=pd.to_timedelta([1, 2], unit="D"))), V,
                 r"has type duration", r"convert it to strings, numbers", id="cells-timedelta"),
    pytest.param(lambda: upsert(with_(AnnualRevenue=[np.inf, 1.0])), V, r"is infinite",
                 r"replace\(\[np\.inf, -np\.inf\], np\.nan\)", id="cells-inf"),
    pytest.param(lambda: upsert(with_(Name=pd.Series(["x", 1], dtype=object))), V,
                 r"is a number in a column of text values", r"astype\('string'\)", id="cells-mixed-types"),
    pytest.param(lambda: upsert(with_(Name=["x" * 100_000, "y"])), V,
                 r"longer than the 255 characters Name takes", r"str\.slice\(0, 255\)",
                 id="cells-very-long"),
    pytest.param(lambda: upsert(with_(Name=pd.Series(["a\ud800b", "y"], dtype=object))), V,
                 r"not valid Unicode \(a lone surrogate\)", r"\.str\.encode\('utf-8', 'replace'\)",
                 id="cells-lone-surrogate"),
    pytest.param(lambda: upsert(with_(Name=["a\x00b", "y"])), V, r"holds a NUL character",
                 r"str\.replace\('\\x00', ''", id="cells-nul"),
    pytest.param(lambda: upsert(with_(NumberOfEmployees=["ten", "5"])), V, r"is not a number",
                 r"pd\.to_numeric", id="cells-text-in-int-field"),
    pytest.param(lambda: sfb.insert_df(pd.DataFrame({"LastName": pd.Series([pd.NaT, pd.NaT])}),
                                       "Contact", progress=False), V,
                 r"LastName · REQUIRED_FIELD_MISSING.*is blank", r"fix: df = df\[df\['LastName'\]\.notna",
                 id="cells-nat-only-required-insert"),
    # update and delete
    pytest.param(lambda: sfb.update_df(GOOD, "Account", progress=False), V,
                 r"update needs a 'Id' column", r"fix: df\['Id'\] = ", id="update-without-id"),
    pytest.param(lambda: sfb.update_df(pd.DataFrame({"Id": ["nope"], "Name": ["x"]}), "Account",
                                       progress=False), V, r"'nope'.*is not a Salesforce id|is not a Salesforce id.*'nope'",
                 r"fix: df = df\[~df\['Id'\]\.isin", id="update-malformed-id"),
    pytest.param(lambda: sfb.delete_df(["hello", "world"], "Account", progress=False), V,
                 r"is not a Salesforce id", r"fix: df = df\[~df\['Id'\]\.isin\(\['hello', 'world'\]\)\]",
                 id="delete-not-ids"),
    pytest.param(lambda: sfb.delete_df([CONTACT_ID], "Account", progress=False), V,
                 r"is the id of another object: Account ids start with 001",
                 r"str\.startswith\('001'\)", id="delete-ids-of-another-object"),
    pytest.param(lambda: sfb.delete_df([1, 2, 3], "Account", progress=False), V,
                 r"is not a Salesforce id .* e\.g\. '1'", r"fix: ", id="delete-list-of-ints"),
    pytest.param(lambda: sfb.delete_df(None, "Account", progress=False), S, r"not None",
                 r"give the ids as a list, a Series or a frame", id="delete-none"),
    pytest.param(lambda: sfb.delete_df({"Id": [ACCOUNT_ID]}, "Account", progress=False), S,
                 r"not a dict", r"pd\.DataFrame\(data\)", id="delete-dict"),
    pytest.param(lambda: sfb.delete_df(ACCOUNT_ID, "Account", progress=False), S, r"not one str",
                 r"\[the_id\]", id="delete-one-string"),
    pytest.param(lambda: sfb.delete_df(7, "Account", progress=False), S, r"not 7",
                 r"give the ids as a list", id="delete-int"),
    pytest.param(lambda: sfb.delete_df([ACCOUNT_ID], "Account", hard="no", progress=False), S,
                 r"hard must be True or False, not 'no'", r"True or False", id="delete-hard-text"),
    pytest.param(lambda: sfb.delete_df(pd.DataFrame({"Name": ["x"]}), "Account", progress=False), V,
                 r"delete needs a 'Id' column", r"fix: df\['Id'\] = ", id="delete-frame-without-id"),
    # validate_df and dry_run
    pytest.param(lambda: sfb.validate_df({"a": [1]}, "Account", KEY), S, r"got dict",
                 r"pd\.DataFrame\(data\)", id="validate-dict"),
    pytest.param(lambda: sfb.validate_df(GOOD, "Account"), S, r"validate_df for an upsert needs external_id",
                 r"operation='insert', 'update' or 'delete'", id="validate-no-external-id"),
    pytest.param(lambda: sfb.validate_df(GOOD, "Account", KEY, operation="merge"), S,
                 r"unknown operation 'merge'", r"one of insert, upsert, update, delete", id="validate-operation"),
    pytest.param(lambda: sfb.validate_df(GOOD, "Account", KEY, nuls="clear"), S, r"unknown option 'nuls'",
                 r"did you mean 'nulls'", id="validate-option-misspelt"),
    pytest.param(lambda: sfb.validate_df(GOOD, "Acount", KEY), S, r"no object 'Acount'",
                 r"did you mean 'Account'", id="validate-object-misspelt"),
    pytest.param(lambda: sfb.validate_df(GOOD, "Account", KEY, tz="Mars/Olympus"), E,
                 r"not a time zone", r"'Europe/Paris'", id="validate-tz"),
    pytest.param(lambda: sfb.dry_run(GOOD, "Account", "merge", KEY), S, r"unknown operation 'merge'",
                 r"one of insert, upsert", id="dry-run-operation"),
    pytest.param(lambda: sfb.dry_run(GOOD[KEY], "Account", "upsert", KEY), S, r"got Series",
                 r"to_frame\(\)", id="dry-run-series"),
    pytest.param(lambda: sfb.dry_run(GOOD, "Account", "upsert", KEY, progress="fancy"), S,
                 r"not 'fancy'", r"'auto', 'text', False", id="dry-run-progress-fancy"),
    pytest.param(lambda: sfb.dry_run(GOOD, "Account", "upsert", KEY, paralel=2), S,
                 r"unknown option 'paralel'", r"did you mean 'parallel'", id="dry-run-option-misspelt"),
    pytest.param(lambda: sfb.dry_run(None, "Account", "delete"), S, r"not None",
                 r"give the ids as a list", id="dry-run-delete-none"),
    pytest.param(lambda: sfb.dry_run(GOOD.iloc[:, :0].assign(Name=["A", "B"]), "Account", "upsert", KEY), V,
                 r"needs a 'customExtIdField__c' column", r"fix: ", id="dry-run-key-missing"),
    # query_df
    pytest.param(lambda: sfb.query_df("SELEC Id FROM Account", progress=False), Q, r"MALFORMED_QUERY",
                 r"SELECT field, \.\.\. FROM Object", id="query-syntax"),
    pytest.param(lambda: sfb.query_df("SELECT Id, Nme FROM Account", progress=False), Q,
                 r"No such column 'Nme'", r"did you mean 'Name'", id="query-unknown-field"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Acount", progress=False), Q,
                 r"sObject type 'Acount' is not supported", r"did you mean 'Account'",
                 id="query-unknown-object"),
    pytest.param(lambda: sfb.query_df("SELECT COUNT() FROM Account", progress=False), Q,
                 r"COUNT\(\)", r"len\(query_df\('SELECT Id FROM Account'\)\)", id="query-count"),
    pytest.param(lambda: sfb.query_df("SELECT COUNT(Id) FROM Account", progress=False), Q,
                 r"Aggregate Relationships not supported", r"no aggregate queries",
                 id="query-count-id"),
    pytest.param(lambda: sfb.query_df("SELECT Id, (SELECT Id FROM Contacts) FROM Account",
                                      progress=False), Q,
                 r"Aggregate Relationships not supported", r"SELECT Id, Account\.Name FROM Contact",
                 id="query-subquery"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account WHERE Id IN (SELECT Nme FROM "
                                      "Contact)", progress=False), Q,
                 r"No such column 'Nme'", r"did you mean 'Name'", id="query-semi-join-field"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account;", progress=False), Q, r"';'",
                 r"no ';' at the end: drop it", id="query-semicolon"),
    pytest.param(lambda: sfb.query_df("", progress=False), S, r"the SOQL is empty",
                 r"such as 'SELECT Id, Name FROM Account'", id="query-empty"),
    pytest.param(lambda: sfb.query_df("  \n ", progress=False), S, r"the SOQL is empty",
                 r"SELECT Id, Name FROM Account", id="query-blank"),
    pytest.param(lambda: sfb.query_df(None, progress=False), S, r"not NoneType",
                 r"a SOQL string such as", id="query-none"),
    pytest.param(lambda: sfb.query_df(GOOD, progress=False), S, r"not DataFrame",
                 r"a SOQL string such as", id="query-dataframe"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account", progress="fancy"), S,
                 r"not 'fancy'", r"'auto', 'text', False", id="query-progress-fancy"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account", progress=False, page_size=0), S,
                 r"not 0", r"a whole number of rows \(1 or more\) or None", id="query-page-size-0"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account", progress=False, timeout="5"), S,
                 r"not '5'", r"number of seconds", id="query-timeout-text"),
    pytest.param(lambda: sfb.query_df("SELECT Id FROM Account", org="local", progress=False), S,
                 r"not a str", r"org=sfb\.connect\('local'\)", id="query-org-text"),
]


@pytest.mark.parametrize("call, error, problem, fix", API_CASES)
def test_bad_input_to_the_api_is_an_error_that_says_what_to_do(client, org, call, error, problem,
                                                               fix):
    before = writes(org)
    with pytest.raises(error) as caught:
        call()
    says(str(caught.value), problem, fix)
    assert writes(org) == before


def test_cells_with_no_csv_form_are_not_also_called_blank(client, org):
    # They stand in as blanks once reported: "Name is blank" would be a second, false report.
    with pytest.raises(errors.ValidationError) as caught:
        upsert(with_(Name=[["x"], "y"]))
    assert list(caught.value.problems["code"]) == ["INVALID_CELL_TYPE"]


# -- row errors: the org refuses rows, and the aligned result says which and why ------------


def _nat_names():
    return upsert(with_(Name=pd.Series([pd.NaT, pd.NaT])))


def _unknown_ids_deleted():
    return sfb.delete_df([ACCOUNT_ID], "Account", progress=False)


def _unknown_ids_updated():
    return sfb.update_df(pd.DataFrame({"Id": [ACCOUNT_ID], "Name": ["x"]}), "Account",
                         progress=False)


def _missing_parent():
    return sfb.insert_df(pd.DataFrame({"LastName": ["Ng"], f"Account.{KEY}": ["NOPE"]}),
                         "Contact", progress=False)


def _mixed_skipped():
    df = pd.DataFrame({KEY: ["K-1", "K-2", "K-3"],
                       "Name": pd.Series(["Alpha", 2, "Gamma"], dtype=object)})
    return upsert(df, on_invalid="skip")


ROW_CASES = [
    # (call, sf_status per row, sf_error_code per row, message, records written)
    pytest.param(_nat_names, ["failed", "failed"], "REQUIRED_FIELD_MISSING",
                 r"Required fields are missing: \[Name\]", (0, 0), id="nat-only-required-upsert"),
    pytest.param(_unknown_ids_deleted, ["failed"], "INVALID_CROSS_REFERENCE_KEY",
                 r"invalid cross reference id", (0, 0), id="delete-unknown-ids"),
    pytest.param(_unknown_ids_updated, ["failed"], "INVALID_CROSS_REFERENCE_KEY",
                 r"invalid cross reference id", (0, 0), id="update-unknown-ids"),
    pytest.param(_missing_parent, ["failed"], "INVALID_FIELD",
                 r"Foreign key external ID: NOPE not found", (0, 0), id="relationship-to-missing-parent"),
    pytest.param(_mixed_skipped, ["created", "invalid", "created"], "MIXED_TYPES",
                 r"is a number in a column of text values", (2, 0), id="mixed-types-skipped"),
]


@pytest.mark.parametrize("call, statuses, code, message, written", ROW_CASES)
def test_rows_the_org_refuses_are_clear_row_errors(client, org, call, statuses, code, message,
                                                   written):
    res = call()
    frame = res.frame
    assert list(frame["sf_status"]) == statuses
    bad = frame[frame["sf_status"].isin(["failed", "invalid"])]
    assert set(bad["sf_error_code"]) == {code}
    assert bad["sf_error_message"].str.contains(message).all()
    assert not res.ok and code in repr(res)
    assert writes(org)[:2] == written


def test_the_warning_before_an_upsert_of_blank_required_names(client, org):
    res = _nat_names()
    assert "REQUIRED_FIELD_MISSING" in set(res.problems["code"])  # said before sending too


@pytest.mark.parametrize("call", [
    pytest.param(lambda: upsert(GOOD.iloc[:0]), id="upsert"),
    pytest.param(lambda: sfb.insert_df(GOOD.iloc[:0][["Name"]], "Account", progress=False), id="insert"),
    pytest.param(lambda: sfb.update_df(pd.DataFrame({"Id": pd.Series([], dtype=str)}), "Account",
                                       progress=False), id="update"),
    pytest.param(lambda: sfb.delete_df([], "Account", progress=False), id="delete"),
])
def test_zero_rows_run_no_job_and_say_so(client, org, call):
    res = call()
    assert res.done and res.ok and len(res.frame) == 0
    assert list(res.jobs) == ["job_id", "state", "rows", "bytes", "processed", "failed",
                              "created", "processing_ms", "error_message"] and res.jobs.empty
    assert set(res.frame.columns) >= {"sf_id", "sf_status", "sf_error_code", "sf_job_id"}
    assert re.search(r"of 0 rows .* 0 jobs, 1 API call,", repr(res)) and repr(res).endswith("no rows")
    assert res.counts.sum() == 0 and res.errors.empty
    assert writes(org) == (0, 0, 0)


def test_a_dry_run_of_zero_rows_with_lookup(client, org):
    plan = sfb.dry_run(GOOD.iloc[:0], "Account", "upsert", KEY, lookup=True)
    assert plan.jobs.empty and "no rows to look up" in repr(plan)


# -- the magics --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sfbulk_nb")
    return ip


@pytest.fixture
def ip(shell, org, monkeypatch):
    monkeypatch.setitem(orgs._local_orgs, None, org)
    monkeypatch.setattr(orgs, "_default", None)
    magics = shell.magics_manager.registry["SFBulkMagics"]
    saved = magics.progress
    magics.progress = "none"
    shell.run_line_magic("sf_connect", "local")
    names = {"df": GOOD.copy(), "d": {KEY: ["K-1"]}, "s": GOOD[KEY], "ints": [1, 2],
             "nokey": GOOD[["Name"]]}
    shell.user_ns.update(names)
    yield shell
    magics.progress = saved
    for name in names:
        shell.user_ns.pop(name, None)


LINE = "line"
CELL = "cell"
MAGIC_CASES = [
    pytest.param(LINE, "bulk_upsert", f"nope Account {KEY}", r"no variable named 'nope'",
                 r"the name of a DataFrame", id="upsert-missing-variable"),
    pytest.param(LINE, "bulk_upsert", f"d Account {KEY}", r"got dict", r"pd\.DataFrame\(data\)",
                 id="upsert-dict-variable"),
    pytest.param(LINE, "bulk_upsert", f"s Account {KEY}", r"got Series", r"to_frame\(\)",
                 id="upsert-series-variable"),
    pytest.param(LINE, "bulk_upsert", f"df Acount {KEY}", r"no object 'Acount'",
                 r"did you mean 'Account'", id="upsert-object-misspelt"),
    pytest.param(LINE, "bulk_upsert", f"df 'Account?x=1' {KEY}", r"not a Salesforce API name",
                 r"e\.g\. Account", id="upsert-object-with-query"),
    pytest.param(LINE, "bulk_upsert", "df Account", r"required: EXT_ID",
                 r"usage: %bulk_upsert", id="upsert-without-external-id"),
    pytest.param(LINE, "bulk_upsert", "df Account Nope__c", r"no field 'Nope__c'",
                 r"External ID fields: customExtIdField__c", id="upsert-unknown-external-id"),
    pytest.param(LINE, "bulk_upsert", f"nokey Account {KEY}", r"needs a 'customExtIdField__c' column",
                 r"fix: df\['customExtIdField__c'\]", id="upsert-key-column-missing"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} --paralel 2",
                 r"unrecognized arguments: --paralel", r"did you mean --parallel\?", id="flag-misspelt"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} --parallel two",
                 r"invalid int value: 'two'", r"--parallel N", id="flag-parallel-text"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} --parallel 0", r"not 0",
                 r"whole number of at least 1", id="flag-parallel-0"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} --nulls none", r"invalid choice: 'none'",
                 r"choose from 'keep', 'clear'", id="flag-nulls-none"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} --on-invalid ignore",
                 r"invalid choice: 'ignore'", r"choose from 'raise', 'skip', 'send'",
                 id="flag-on-invalid-ignore"),
    pytest.param(LINE, "bulk_upsert", f"df Account {KEY} 'unclosed", r"No closing quotation",
                 r"usage: %bulk_upsert", id="unclosed-quote"),
    pytest.param(LINE, "bulk_insert", "d Account", r"got dict", r"pd\.DataFrame\(data\)",
                 id="insert-dict-variable"),
    pytest.param(LINE, "bulk_insert", "df Account --hard", r"unrecognized arguments: --hard",
                 r"usage: %bulk_insert", id="insert-hard"),
    pytest.param(LINE, "bulk_update", "df Account", r"update needs a 'Id' column",
                 r"fix: df\['Id'\] = ", id="update-without-id"),
    pytest.param(LINE, "bulk_delete", "ints Account", r"is not a Salesforce id",
                 r"fix: df = df\[~df\['Id'\]\.isin", id="delete-ints"),
    pytest.param(LINE, "bulk_delete", "d Account", r"not a dict", r"pd\.DataFrame\(data\)",
                 id="delete-dict-variable"),
    pytest.param(LINE, "bulk_delete", "df Account --hard yes", r"unrecognized arguments: yes",
                 r"usage: %bulk_delete", id="delete-hard-with-value"),
    pytest.param(CELL, "soql", ("", "SELEC Id FROM Account"), r"MALFORMED_QUERY",
                 r"SELECT field, \.\.\. FROM Object", id="soql-syntax"),
    pytest.param(CELL, "soql", ("x", "SELECT Nme FROM Account"), r"No such column 'Nme'",
                 r"did you mean 'Name'", id="soql-unknown-field"),
    pytest.param(CELL, "soql", ("x", "SELECT Id FROM Acount"), r"'Acount' is not supported",
                 r"did you mean 'Account'", id="soql-unknown-object"),
    pytest.param(CELL, "soql", ("x", "SELECT COUNT() FROM Account"), r"COUNT\(\)",
                 r"len\(query_df", id="soql-count"),
    pytest.param(CELL, "soql", ("x", "  \n  "), r"no SOQL to run", r"SELECT Id, Name FROM Account",
                 id="soql-empty-cell"),
    pytest.param(LINE, "soql", "", r"no SOQL to run", r"SELECT Id, Name FROM Account",
                 id="soql-empty-line"),
    pytest.param(CELL, "soql", ("1x", "SELECT Id FROM Account"), r"VAR must be a Python name, not '1x'",
                 r"usage: %%soql", id="soql-bad-variable"),
    pytest.param(CELL, "soql", ("x --bogus", "SELECT Id FROM Account"), r"unrecognized arguments: --bogus",
                 r"usage: %%soql", id="soql-bad-flag"),
    pytest.param(LINE, "sf_connect", TOKEN, r"looks like an access token",
                 r"--token-env VAR", id="connect-token-typed"),
    pytest.param(LINE, "sf_connect", f"--instance-url https://x.my.salesforce.com --token-env {TOKEN}",
                 r"looks like an access token", r"pass its name", id="connect-token-as-variable-name"),
    pytest.param(LINE, "sf_connect", f"--token {TOKEN}", r"unrecognized arguments: --token",
                 r"did you mean --token-env\?", id="connect-token-flag"),
    pytest.param(LINE, "sf_connect", "--instance-url https://x.my.salesforce.com", r"go together",
                 r"--token-env", id="connect-url-without-token"),
    pytest.param(LINE, "sf_connect", "--instance-url https://x.my.salesforce.com --token-env "
                 "SFBULK_NB_NO_SUCH_VAR", r"SFBULK_NB_NO_SUCH_VAR is not set",
                 r"os\.environ\['SFBULK_NB_NO_SUCH_VAR'\] = getpass\.getpass\(\)", id="connect-unset-variable"),
    pytest.param(LINE, "sf_connect", "local extra", r"unrecognized arguments: extra",
                 r"usage: %sf_connect", id="connect-extra-argument"),
    pytest.param(LINE, "bulk_jobs", "--limit x", r"--limit: expected a whole number of at least 0, not 'x'", r"--limit N",
                 id="jobs-limit-text"),
    pytest.param(LINE, "bulk_jobs", "--bogus", r"unrecognized arguments: --bogus",
                 r"usage: %bulk_jobs", id="jobs-bad-flag"),
]


@pytest.mark.parametrize("kind, magic, arguments, problem, fix", MAGIC_CASES)
def test_bad_input_to_the_magics_is_a_usage_error_that_says_what_to_do(ip, org, kind, magic,
                                                                       arguments, problem, fix):
    before = writes(org)
    with pytest.raises(UsageError) as caught:
        if kind == LINE:
            ip.run_line_magic(magic, arguments)
        else:
            ip.run_cell_magic(magic, *arguments)
    says(str(caught.value), problem, fix)
    assert TOKEN not in str(caught.value)  # a token typed by mistake is never repeated
    assert writes(org) == before


# -- the command -------------------------------------------------------------------------

MISSING = object()
DIRECTORY = object()
HEADER = f"{KEY},Name,Industry\n"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def local(org, monkeypatch):
    # connect("local") in the command re-attaches to the test's org.
    monkeypatch.setitem(orgs._local_orgs, None, org)
    monkeypatch.setattr(orgs, "_default", None)
    return org


def _file(tmp_path, content, name="in.csv") -> str:
    path = tmp_path / name
    if content is DIRECTORY:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not MISSING:
        path.write_text(content, encoding="utf-8")
    return str(path)


UPSERT = ["--object", "Account", "--external-id", KEY, "--org", "local"]
CLI_CASES = [
    # (file content, arguments after the file, exit code, problem, fix)
    pytest.param(MISSING, UPSERT, 2, r"in\.csv: no such file", r"check the path", id="missing-file"),
    pytest.param(DIRECTORY, UPSERT, 2, r"in\.csv is a directory", r"give the CSV file in it",
                 id="directory"),
    pytest.param(b"PK\x03\x04" + b"\x00" * 100, UPSERT, 2, r"is a zip file \(an Excel \.xlsx",
                 r"save it as CSV \(UTF-8\)", id="excel-xlsx"),
    pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), UPSERT, 2, r"holds NUL bytes.*binary file",
                 r"pass --encoding utf-16", id="binary"),
    pytest.param(f"{KEY},Name\nU1,Zoë\n".encode("utf-16-le"), UPSERT, 2, r"holds NUL bytes",
                 r"UTF-16 without a byte order mark: pass --encoding utf-16", id="utf-16-without-bom"),
    pytest.param("", UPSERT, 2, r"is empty", r"starts with a header line of field names",
                 id="empty-file"),
    pytest.param("\n\n  \n", UPSERT, 2, r"is empty", r"a header line of field names", id="blank-lines-only"),
    pytest.param(HEADER, UPSERT, 2, r"has a header line but no data rows", r"nothing to send",
                 id="header-only"),
    pytest.param(HEADER + "R1,One,Banking\nR2,Two,Banking,Extra,More\nR3,Three,Energy\n", UPSERT, 2,
                 r"line 3 has 5 \(extra: 'Extra', 'More'\)", r"fix those lines \(a value holding a comma",
                 id="ragged-more-fields"),
    pytest.param(HEADER + "R1,One,Banking\nR2,Two\nR3,Three,Energy\n", UPSERT, 2,
                 r"line 3 has 2 \(no Industry\)", r"fix those lines", id="ragged-fewer-fields"),
    # The record on line 2 spans three lines: the bad record starts on file line 5.
    pytest.param(HEADER + 'R1,"Multi\nline\nname",Banking\nR2,Two,Banking,Extra\n', UPSERT, 2,
                 r"line 5 has 4 \(extra: 'Extra'\)", r"fix those lines", id="ragged-after-quoted-newlines"),
    pytest.param(HEADER + 'R1,"Multi\nline",Banking\nR2,Two\n', UPSERT, 2,
                 r"line 4 has 2 \(no Industry\)", r"fix those lines", id="ragged-short-after-quoted-newlines"),
    pytest.param(HEADER + "\n\nR1,One,Banking\n\nR2,Two,Banking,x\n", UPSERT, 2,
                 r"line 6 has 4", r"fix those lines", id="ragged-after-blank-lines"),
    pytest.param(HEADER + "".join(f"R{i},N,Banking,x\n" for i in range(8)), UPSERT, 2,
                 r"8 row\(s\) do not have the header's 3 fields: line 2 .* and 3 more",
                 r"fix those lines", id="ragged-many"),
    pytest.param(f"{KEY},Name,Name\nD1,A,B\n", UPSERT, 2,
                 r"line 1: the header names 'Name' twice \(columns 2 and 3\)", r"keep one column per field",
                 id="duplicate-header"),
    pytest.param(f"{KEY},,Name\nD1,x,A\n", UPSERT, 2, r"column\(s\) \[2\] of the header have no name",
                 r"name each column after its Salesforce field", id="header-without-name"),
    pytest.param(f'{KEY},Name\nQ1,"never closed\nQ2,x\n', UPSERT, 2,
                 r"line 2: a quote opens a value that is never closed", r"close the quote",
                 id="unclosed-quote"),
    pytest.param(f"{KEY};Name\nS1;Semi\n", UPSERT, 2, r"looks ';'-separated",
                 r"save it as CSV with commas", id="semicolon-separated"),
    pytest.param(f"{KEY},Name\nG1,Good\n", ["--object", "Acount", "--external-id", KEY, "--org", "local"],
                 2, r"no object 'Acount'", r"did you mean 'Account'", id="wrong-object"),
    pytest.param(f"{KEY},Name\nG1,Good\n", ["--object", "Account?x=1", "--external-id", KEY, "--org",
                                             "local"], 2, r"not a Salesforce API name", r"e\.g\. Account",
                 id="object-with-query"),
    pytest.param(f"{KEY},Name\nG1,Good\n", ["--object", "Account", "--external-id", "Nope__c", "--org",
                                             "local"], 2, r"no field 'Nope__c'",
                 r"External ID fields: customExtIdField__c", id="wrong-external-id"),
    pytest.param("Industry,Name\nBanking,Good\n", ["--object", "Account", "--external-id", "Industry",
                                                     "--org", "local"], 2,
                 r"Industry is not an External ID field", r"upsert needs one", id="not-an-external-id"),
    pytest.param(f"{KEY},Name\nG1,Good\n", UPSERT + ["--nulls", "maybe"], 2,
                 r"invalid choice: 'maybe'", r"choose from 'keep', 'clear'", id="nulls-maybe"),
    pytest.param(f"{KEY},Name\nG1,Good\n", UPSERT + ["--encoding", "klingon"], 2,
                 r"cannot be read as klingon", r"pass the file's encoding with --encoding",
                 id="unknown-encoding"),
    pytest.param(f"{KEY},Name\nW1,Café\n".encode("cp1252"), UPSERT + ["--encoding", "utf-8"], 2,
                 r"cannot be read as utf-8", r"--encoding \(e\.g\. utf-8, cp1252", id="wrong-encoding"),
    pytest.param(f"{KEY},Name\nG1,Good\n", UPSERT + ["--results", "no/such/dir/out.csv"], 2,
                 r"the directory no/such/dir does not exist", r"create it", id="results-directory-missing"),
    pytest.param(HEADER + 'L1,"Two\nlines",Banking\nL2,Bad,Nope\n', UPSERT, 2,
                 r"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST.*at line 4",
                 r"--on-invalid skip.*fix: df\['Industry'\]", id="problems-name-file-lines"),
]


@pytest.mark.parametrize("content, arguments, code, problem, fix", CLI_CASES)
def test_bad_input_to_the_command_exits_non_zero_and_says_what_to_do(
        local, tmp_path, monkeypatch, capsys, content, arguments, code, problem, fix):
    monkeypatch.chdir(tmp_path)
    path = _file(tmp_path, content)
    before = writes(local)
    got, out, err = run_cli(["upsert", path, *arguments], capsys)
    assert got == code, (out, err)
    says(err, problem, fix)
    assert writes(local) == before


HANDLED = [
    # (file content, stored names, a note on stderr): the right data, said how it was read
    pytest.param(f"{KEY},Name\nT1,Trailing,\nT2,Comma,\n", ["Trailing", "Comma"],
                 r"2 row\(s\) end in empty fields past the header's 2 \(a trailing comma\)",
                 id="rows-end-in-a-comma"),
    pytest.param(f"{KEY},Name\nT1,Trailing\nT2,Comma,,\n", ["Trailing", "Comma"],
                 r"1 row\(s\) end in empty fields", id="some-rows-end-in-commas"),
    pytest.param(f"{KEY},Name,\nT1,Trailing,\nT2,Comma,\n", ["Trailing", "Comma"],
                 r"2 row\(s\) end in empty fields", id="header-and-rows-end-in-a-comma"),
    pytest.param(f"{KEY},Name\nL1,Café\n".encode("latin-1"), ["Café"],
                 r"not UTF-8 \(byte 0xe9 on line 2\); read as Windows-1252", id="latin-1"),
    pytest.param(f"{KEY},Name\nW1,“Smart” – Quotes\n".encode("cp1252"), ["“Smart” – Quotes"],
                 r"not UTF-8 \(byte 0x93 on line 2\).*Pass --encoding", id="windows-1252"),
    pytest.param(f"{KEY},Name\nU1,Zoë\n".encode("utf-16"), ["Zoë"], r"read as UTF-16",
                 id="utf-16-with-bom"),
    pytest.param(f'{KEY},Name\nQ1,"Two\nlines"\nQ2,"Say ""hi"""\n', ["Two\nlines", 'Say "hi"'], r"^$",
                 id="quoted-newlines-and-quotes"),
    pytest.param(f"\ufeff{KEY},Name\nB1,Bom\n", ["Bom"], r"^$", id="utf-8-bom"),
]


@pytest.mark.parametrize("content, names, note", HANDLED)
def test_files_the_command_reads_right_and_says_how(local, tmp_path, capsys, content, names,
                                                    note):
    path = _file(tmp_path, content)
    code, out, err = run_cli(["upsert", path, *UPSERT], capsys)
    assert code == 0, (out, err)
    notes = "\n".join(line for line in err.splitlines() if line.startswith("sfbulk-nb:"))
    assert re.search(note, notes), notes
    stored = BulkHttp(local).request("GET", "/query", params={
        "q": f"SELECT Name, {KEY} FROM Account"}).json()["records"]
    assert sorted(r["Name"] for r in stored) == sorted(names)


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


LOCALORG_CASES = [
    # (arguments with {tmp} and {port}, a file to make, exit code, problem, fix)
    pytest.param(["localorg"], None, 2, r"required: action", r"\{serve,add-object,import-schema,reset\}",
                 id="no-action"),
    pytest.param(["localorg", "serve", "--port", "70000"], None, 2, r"'70000' is not a port",
                 r"give 1-65535, or 0 for a free one", id="serve-port-too-big"),
    pytest.param(["localorg", "serve", "--port", "-1"], None, 2, r"'-1' is not a port",
                 r"0 for a free one", id="serve-port-negative"),
    pytest.param(["localorg", "serve", "--pace", "0"], None, 2, r"'0' is not a pace",
                 r"leave --pace out for full speed", id="serve-pace-0"),
    pytest.param(["localorg", "serve", "--port", "0", "--db", "{tmp}/adir"], ("adir", DIRECTORY), 2,
                 r"cannot open the local org's database .*adir", r"pass --db the path of an SQLite file",
                 id="serve-db-directory"),
    pytest.param(["localorg", "serve", "--port", "0", "--db", "{tmp}/x.csv"], ("x.csv", "a,b\n1,2\n"), 2,
                 r"file is not a database", r"pass --db the path of an SQLite file", id="serve-db-not-sqlite"),
    pytest.param(["localorg", "serve", "--port", "{port}", "--db", "{tmp}/org.sqlite3"], None, 2,
                 r"cannot listen on 127\.0\.0\.1:\d+", r"pass another --port", id="serve-port-in-use"),
    pytest.param(["localorg", "add-object", "{tmp}/nope.json", "--db", "{tmp}/org.sqlite3"], None, 2,
                 r"No such file or directory", r"give the path of a describe JSON file",
                 id="add-object-missing-file"),
    pytest.param(["localorg", "add-object", "{tmp}/d.json", "--db", "{tmp}/org.sqlite3"],
                 ("d.json", "Name,Id\n"), 2, r"d\.json is not JSON", r"GET /services/data/vXX\.X/sobjects",
                 id="add-object-not-json"),
    pytest.param(["localorg", "add-object", "{tmp}/d.json", "--db", "{tmp}/org.sqlite3"],
                 ("d.json", json.dumps([1, 2])), 2, r"must be an object, not a list", r"save the full output of GET",
                 id="add-object-not-a-describe"),
    pytest.param(["localorg", "add-object", "{tmp}/adir", "--db", "{tmp}/org.sqlite3"],
                 ("adir", DIRECTORY), 2, r"Is a directory", r"give the path of a describe JSON file",
                 id="add-object-directory"),
    pytest.param(["localorg", "reset", "--name", "../org"], None, 2, r"'\.\./org' cannot name a local org",
                 r"use 1 to 64 lower-case letters, digits, '-' and '_'", id="reset-name-a-path"),
    pytest.param(["localorg", "serve", "--name", "My Org"], None, 2, r"'My Org' cannot name a local org",
                 r"e\.g\. 'quickstart'", id="serve-name-with-a-space"),
    pytest.param(["localorg", "reset", "--name", "demo", "--db", "{tmp}/org.sqlite3"], None, 2,
                 r"argument --db: not allowed with argument --name", r"\[--name NAME \| --db DB\]",
                 id="reset-name-and-db"),
    pytest.param(["localorg", "reset", "--db", "{tmp}/adir"], ("adir", DIRECTORY), 2,
                 r"cannot open the local org's database .*adir", r"pass --db the path of a local org",
                 id="reset-db-directory"),
    pytest.param(["localorg", "reset", "--db", "{tmp}/x.csv"], ("x.csv", "a,b\n1,2\n"), 2,
                 r"file is not a database", r"or --name the name of a local org", id="reset-db-not-sqlite"),
]


@pytest.mark.parametrize("arguments, make, code, problem, fix", LOCALORG_CASES)
def test_bad_input_to_localorg_exits_non_zero_and_says_what_to_do(
        tmp_path, busy_port, capsys, arguments, make, code, problem, fix):
    if make is not None:
        _file(tmp_path, make[1], make[0])
    argv = [a.format(tmp=tmp_path, port=busy_port) for a in arguments]
    got, out, err = run_cli(argv, capsys)
    assert got == code, (out, err)
    says(err, problem, fix)
    assert not list(tmp_path.glob("org.objects/*"))  # no object was added
