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
        monkeypatch.setattr(orgs, "_local_org", org)
        yield org


def test_demo_upserts_sample_accounts_and_writes_the_aligned_result(local, tmp_path, capsys):
    out_csv = tmp_path / "demo.csv"
    assert cli.main(["demo", "--rows", "500", "--results", str(out_csv)]) == 0
    out, err = capsys.readouterr()
    assert "Upserting 500 sample accounts" in out
    assert "created" in out and "failed" in out
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST [Industry]" in out
    assert "JobComplete" in err
    result = pd.read_csv(out_csv, dtype=str, keep_default_na=False)
    assert len(result) == 500 and {"sf_id", "sf_status"} <= set(result.columns)
    assert set(result["sf_status"]) == {"created", "failed"}
    # Run again: the same keys now update.
    assert cli.main(["demo", "--rows", "500", "--results", str(out_csv)]) == 0
    assert "updated" in set(pd.read_csv(out_csv, dtype=str)["sf_status"])


def test_upsert_a_csv_file_exits_1_when_rows_failed(local, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text('customExtIdField__c,Name,Industry\nF1,"Comma, Inc",Banking\nF2,Bad,Nope\n')
    results = tmp_path / "out.csv"
    code = cli.main(["upsert", str(data), "--object", "Account", "--external-id",
                     "customExtIdField__c", "--org", "local", "--results", str(results)])
    assert code == 1
    frame = pd.read_csv(results, dtype=str, keep_default_na=False)
    assert list(frame["Name"]) == ["Comma, Inc", "Bad"]
    assert list(frame["sf_status"]) == ["created", "failed"]
    good = tmp_path / "good.csv"
    good.write_text("customExtIdField__c,Name\nF1,Renamed\n")
    assert cli.main(["upsert", str(good), "--object", "Account", "--external-id",
                     "customExtIdField__c", "--org", "local"]) == 0
    missing = cli.main(["upsert", str(tmp_path / "nope.csv"), "--object", "Account",
                        "--external-id", "customExtIdField__c", "--org", "local"])
    assert missing == 2 and "nope.csv" in capsys.readouterr().err
