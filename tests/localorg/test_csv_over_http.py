"""CSV edge cases, end to end: uploaded over HTTP, read back from the records and results."""
from __future__ import annotations

import csv
import io

import pytest

from sfbulk_nb.localorg.csvfmt import DELIMITERS

NASTY = ['comma, inside', 'quote " inside', 'new\nline', 'crlf\r\ninside', 'lone\rcr',
         'ünïcödé ✓ 日本 🎉', '  spaces kept  ', 'semi;colon|pipe^caret`back\ttab']


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def results(api, job_id: str, kind: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(api.results(job_id, kind), newline=""),
                           delimiter=delimiter))


def stored_descriptions(org) -> list[str]:
    return sorted(r[0] for r in org.store.query('SELECT Description FROM "sobj_Account"'))


@pytest.mark.parametrize("name", list(DELIMITERS))
def test_every_column_delimiter_round_trips_nasty_values(api, org, name):
    d = DELIMITERS[name]
    body = f"Name{d}Description\n" + "".join(
        f"{quote(f'N{i}')}{d}{quote(v)}\n" for i, v in enumerate(NASTY))
    info = api.run("Account", "insert", body, columnDelimiter=name)
    assert info["state"] == "JobComplete", info.get("errorMessage")
    assert info["numberRecordsFailed"] == 0 and info["columnDelimiter"] == name
    assert stored_descriptions(org) == sorted(NASTY)
    out = results(api, info["id"], "successfulResults", d)
    assert out[0] == ["sf__Id", "sf__Created", "Name", "Description"]
    assert sorted(r[3] for r in out[1:]) == sorted(NASTY)


def test_crlf_jobs_keep_lone_newlines_as_data(api, org):
    body = "Name,Description\r\nA,\"x\ny\"\r\nB,plain\r\n"
    info = api.run("Account", "insert", body, lineEnding="CRLF")
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 2
    assert stored_descriptions(org) == ["plain", "x\ny"]
    assert api.results(info["id"], "successfulResults").count("\r\n") == 3


def test_line_ending_mismatch_fails_the_job(api):
    info = api.run("Account", "insert", "Name\r\nA\r\n")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == ("ClientInputError : LineEnding is invalid on user data. "
                                    "Current LineEnding setting is LF")
    assert api.results(info["id"], "unprocessedrecords") == "Name\r\nA\r\n"


def test_bom_is_ignored(api, org):
    info = api.run("Account", "insert", "\ufeffName,Description\nA,b\n".encode("utf-8"))
    assert info["numberRecordsFailed"] == 0 and stored_descriptions(org) == ["b"]


def test_unquoted_lone_cr_is_data_in_lf_jobs(api, org):
    info = api.run("Account", "insert", "Name,Description\nA,x\ry\n")
    assert info["state"] == "JobComplete"
    assert stored_descriptions(org) == ["x\ry"]


def test_missing_final_newline_and_header_only(api):
    info = api.run("Account", "insert", "Name\nA\nB")
    assert info["numberRecordsProcessed"] == 2
    header_only = api.run("Account", "insert", "Name\n")
    assert header_only["state"] == "JobComplete" and header_only["numberRecordsProcessed"] == 0


def test_empty_body_fails_the_job(api):
    info = api.run("Account", "insert", b"")
    assert info["state"] == "Failed" and info["errorMessage"].startswith("ClientInputError")


def test_bad_quoting_and_ragged_rows_fail_the_job(api):
    for body in ('Name,Description\nA,"open\n', 'Name,Description\nA, "x"\n',
                 'Name,Description\nA\n'):
        info = api.run("Account", "insert", body)
        assert info["state"] == "Failed", body
        assert info["errorMessage"].startswith("ClientInputError"), info["errorMessage"]


def test_quoted_header_names_are_accepted(api):
    info = api.run("Account", "insert", '"Name","Description"\n"A","b"\n')
    assert info["numberRecordsFailed"] == 0
    assert api.results(info["id"], "successfulResults").split("\n")[0] == (
        '"sf__Id","sf__Created",Name,Description')


def test_invalid_utf8_fails_the_job(api):
    info = api.run("Account", "insert", b"Name\n\xff\xfe\n")
    assert info["state"] == "Failed"
