"""`sfbulk-nb demo` and `sfbulk-nb upsert` against a local org."""
from __future__ import annotations

import pandas as pd
import pytest

from sfbulk_nb import cli, org as orgs
from sfbulk_nb.localorg import LocalOrg


@pytest.fixture
def local(tmp_path, monkeypatch):
    with LocalOrg(tmp_path / "org.sqlite3") as org:
        # connect("local") inside the CLI re-attaches to this org instead of the user's own.
        monkeypatch.setitem(orgs._local_orgs, None, org)
        yield org


@pytest.fixture
def demo_org(tmp_path, monkeypatch):
    """The demo's own org lives in tmp_path (never the user's data directory) and is
    started afresh; it is stopped after the test."""
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    monkeypatch.setattr(orgs, "_local_orgs", {})
    monkeypatch.setattr(orgs, "_default", None)
    yield tmp_path / "org-demo.sqlite3"
    for started in orgs._local_orgs.values():
        started.stop()


def test_demo_checks_then_upserts_sample_accounts_and_writes_the_aligned_result(
        demo_org, tmp_path, capsys):
    out_csv = tmp_path / "demo.csv"
    assert cli.main(["demo", "--rows", "500", "--results", str(out_csv)]) == 0
    out, err = capsys.readouterr()
    assert "Checking 500 sample accounts" in out and "a fresh local org 'demo'" in out
    # The checks name the picklist and length problems before anything is sent ...
    assert "Industry \u00b7 INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in out
    assert "fix: df['Industry'] = df['Industry'].replace(" in out
    # ... the rows with errors are left out, the org rejects the blank name of a new key.
    assert "invalid" in out and "failed" in out and "REQUIRED_FIELD_MISSING [Name]" in out
    assert "JobComplete" in err
    assert demo_org.exists()  # its own org, beside the default one
    result = pd.read_csv(out_csv, dtype=str, keep_default_na=False)
    assert len(result) == 500 and {"sf_id", "sf_status"} <= set(result.columns)
    assert set(result["sf_status"]) == {"created", "failed", "invalid"}
    # Run again: the demo's org starts fresh, so the same rows are created again (same ids:
    # they start over), and it says so with the same counts.
    assert cli.main(["demo", "--rows", "500", "--results", str(out_csv)]) == 0
    again = capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out_csv, dtype=str, keep_default_na=False),
                                  result)
    counts = [line for line in out.splitlines() if line.startswith("rows: ")]
    assert counts and counts == [line for line in again.splitlines() if line.startswith("rows: ")]


def upsert(*args: str) -> int:
    return cli.main(["upsert", *args, "--object", "Account", "--external-id",
                     "customExtIdField__c", "--org", "local"])


def test_upsert_a_csv_file_exits_1_when_rows_failed(local, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text('customExtIdField__c,Name,Industry\nF1,"Comma, Inc",Banking\nF2,,Banking\n')
    results = tmp_path / "out.csv"
    assert upsert(str(data), "--results", str(results)) == 1
    frame = pd.read_csv(results, dtype=str, keep_default_na=False)
    assert list(frame["Name"]) == ["Comma, Inc", ""]
    assert list(frame["sf_status"]) == ["created", "failed"]
    good = tmp_path / "good.csv"
    good.write_text("customExtIdField__c,Name\nF1,Renamed\n")
    assert upsert(str(good)) == 0
    missing = upsert(str(tmp_path / "nope.csv"))
    assert missing == 2 and "nope.csv" in capsys.readouterr().err


def test_problems_are_listed_with_file_line_numbers_and_nothing_is_sent(local, tmp_path, capsys):
    data = tmp_path / "in.csv"
    # Line 3's record spans two lines, so the bad value on the next record is on line 5.
    data.write_text('customExtIdField__c,Name,Industry\nL1,Fine,Banking\nL2,"Two\nlines",Banking\n'
                    "L3,Bad,Nope\n")
    assert upsert(str(data)) == 2
    err = capsys.readouterr().err
    assert "nothing was sent" in err and "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in err
    assert "at line 5" in err and "pd.read_csv(" in err
    assert local.store.count_records(local.catalog.get("Account")) == 0
    assert upsert(str(data), "--on-invalid", "skip") == 1
    assert "2 created, 1 invalid" in capsys.readouterr().out


def test_a_streamed_dry_run_lists_the_files_problems_by_line(local, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text('customExtIdField__c,Name,Industry\nL1,Fine,Banking\nL2,"Two\nlines",'
                    "Banking\nL3,Bad,Nope\n")
    assert upsert(str(data), "--stream", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Dry run: nothing was sent (3 rows checked" in out
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in out and "at line 5" in out
    assert "pd.read_csv(" in out
    assert local.store.count_records(local.catalog.get("Account")) == 0
    assert not list(tmp_path.glob("*.results.*"))


def test_windows_1252_files_are_read_and_said_so(local, tmp_path, capsys):
    data = tmp_path / "cp1252.csv"
    data.write_bytes("customExtIdField__c,Name\nW1,Café “Smart”\n".encode("cp1252"))
    assert upsert(str(data)) == 0
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Windows-1252" in err and "line 2" in err
    name = local.store.get_record(local.catalog.get("Account"),
                                  _only_id(local))["Name"]
    assert name == "Café “Smart”"
    assert upsert(str(data), "--encoding", "utf-8") == 2
    assert "cannot be read as utf-8" in capsys.readouterr().err


def test_excel_workbooks_binary_files_and_trailing_commas(local, tmp_path, capsys):
    book = tmp_path / "book.xlsx"
    book.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert upsert(str(book)) == 2
    assert "Excel" in capsys.readouterr().err
    binary = tmp_path / "data.csv"
    binary.write_bytes(b"a,b\n\x00\x01\x02,\x00\n")
    assert upsert(str(binary)) == 2
    assert "binary" in capsys.readouterr().err
    commas = tmp_path / "commas.csv"
    commas.write_text("customExtIdField__c,Name\nT1,Trailing,\nT2,Comma,\n")
    assert upsert(str(commas), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "upsert of 2 of 2 rows" in out
    assert upsert(str(commas)) == 0
    frame = local.store.count_records(local.catalog.get("Account"))
    assert frame == 2


def _only_id(local) -> str:
    import requests

    r = requests.get(f"{local.instance_url}/services/data/v66.0/query",
                     params={"q": "SELECT Id FROM Account"},
                     headers={"Authorization": f"Bearer {local.access_token}"}, timeout=30)
    return r.json()["records"][0]["Id"]


def test_advice_is_given_in_a_commands_spelling_and_pandas_code_is_left_alone():
    from sfbulk_nb.errors import as_options

    said = ("problems (on_invalid='raise'): pass on_invalid=\"skip\"; pass encoding=\"cp1252\" "
            "or pass sep=';'. df = pd.read_csv('a.csv', encoding='cp1252', sep=';')")
    assert as_options(said) == (
        "problems (--on-invalid raise): pass --on-invalid skip; pass --encoding cp1252 "
        "or pass --sep ';'. df = pd.read_csv('a.csv', encoding='cp1252', sep=';')")


def test_a_file_that_starts_with_excels_sep_line(local, tmp_path, capsys):
    """Excel's "sep=;" first line: the whole-file path says what it is and how to go on;
    --stream reads the file past it, lines numbered as in the file."""
    path = tmp_path / "sep.csv"
    path.write_bytes(b"sep=;\r\ncustomExtIdField__c;Name\r\nS1;One\r\n")
    assert upsert(str(path)) == 2
    err = capsys.readouterr().err
    assert "starts with Excel's separator line 'sep=;'" in err and "--stream" in err
    assert upsert(str(path), "--stream") == 0
    shown = "".join(capsys.readouterr())
    assert "line 3, 1 row, JobComplete" in shown and "upsert of 1 row into Account" in shown
    comma = tmp_path / "comma.csv"
    comma.write_bytes(b"sep=,\ncustomExtIdField__c,Name\nS2,Two\n")
    assert upsert(str(comma)) == 2
    assert "separator line 'sep=,'" in capsys.readouterr().err
