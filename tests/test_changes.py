"""Safe clean-up against a local org: the preview of what a load would change (plan.diff,
plan.summary), sending only what changed, and holding back rows edited since a query."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import changes, errors
from tests.conftest import BulkHttp

KEY = "customExtIdField__c"


@pytest.fixture
def client(org):
    return sfb.connect(org)


def accounts(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        KEY: [f"K{i:05d}" for i in range(n)],
        "Name": [f"Account {i}" for i in range(n)],
        "NumberOfEmployees": pd.array([i * 10 for i in range(n)], dtype="Int64"),
        "AnnualRevenue": [1200.0 + i for i in range(n)],
        "Industry": ["Energy" if i % 2 else "Banking" for i in range(n)],
        "Description": [f"line one\nline {i}, \"quoted\"" for i in range(n)],
    })


def query(soql: str) -> pd.DataFrame:
    return sfb.query_df(soql, progress=False)


def edits(base: pd.DataFrame) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """The base frame with 30 real changes in it, and the (key, field) of each."""
    df = base.copy()
    changed = set()
    for i in range(0, 30, 3):
        df.loc[i, "Name"] = f"Renamed {i}"
        changed.add((df.loc[i, KEY], "Name"))
    for i in range(1, 30, 3):
        df.loc[i, "NumberOfEmployees"] = 7
        changed.add((df.loc[i, KEY], "NumberOfEmployees"))
    for i in range(2, 30, 3):
        df.loc[i, "Industry"] = "Chemicals"
        changed.add((df.loc[i, KEY], "Industry"))
    return df, changed


def test_diff_lists_exactly_the_changed_cells(client):
    base = accounts(200)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df, changed = edits(base)
    # Equal after formatting, so no change: a float for an integer field, a number
    # written with more decimals than the org keeps, a blank (leaves the field as is).
    df["NumberOfEmployees"] = df["NumberOfEmployees"].astype("float64")
    df.loc[50, "AnnualRevenue"] = 1250.0000001
    df.loc[60, "Description"] = np.nan
    plan = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True)
    diff = plan.diff()
    assert list(diff.columns) == ["row", "Id", KEY, "field", "before", "after"]
    assert set(zip(diff[KEY], diff["field"])) == changed
    first = diff[diff["row"] == 0].iloc[0]
    assert (first["field"], first["before"], first["after"]) == ("Name", "Account 0", "Renamed 0")
    assert first["Id"] == plan.existing.loc[0, "Id"]
    summary = plan.summary()
    assert (summary.create, summary.update, summary.unchanged) == (0, 30, 170)
    assert dict(zip(summary.fields["field"], summary.fields["cells"])) == {
        "Name": 10, "NumberOfEmployees": 10, "Industry": 10}
    assert "'Banking' → 'Chemicals'" in summary.fields.set_index("field").loc["Industry", "examples"]
    assert "30 would change their record" in repr(plan)
    html = plan.summary()._repr_html_()
    assert "Preview" in html and "NumberOfEmployees" in html


def test_clearing_and_new_rows_in_the_preview(client):
    base = accounts(20)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df = base.copy()
    df.loc[3, "Description"] = np.nan  # with the clear policy: #N/A, a change
    df.loc[4, "Industry"] = np.nan
    new = pd.DataFrame({KEY: ["NEW1"], "Name": ["Fresh"], "Industry": ["Energy"]})
    df = pd.concat([df, new], ignore_index=True)
    plan = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True, nulls="clear")
    diff = plan.diff()
    cleared = diff.set_index("field").loc[["Description", "Industry"]]
    assert cleared["after"].isna().all() and cleared["before"].notna().all()
    assert set(diff["row"]) == {3, 4}
    summary = plan.summary()
    assert (summary.create, summary.update, summary.unchanged) == (1, 2, 18)
    # A blank over an empty field is no change under either policy.
    again = sfb.dry_run(df.iloc[:1].assign(Description=np.nan), "Account", "upsert", KEY,
                        lookup=True, nulls="clear")
    base_first = base.iloc[:1].assign(Description=np.nan)
    assert sfb.upsert_df(base_first, "Account", KEY, nulls="clear", progress=False).ok
    assert len(sfb.dry_run(df.iloc[:1].assign(Description=np.nan), "Account", "upsert", KEY,
                           lookup=True, nulls="clear").diff()) == 0
    assert len(again.diff()) == 1


def test_only_changed_sends_the_changed_rows_and_cells(client, org):
    base = accounts(300)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df, changed = edits(base)
    before = query(f"SELECT {KEY}, Name, NumberOfEmployees, Industry, LastModifiedDate "
                   "FROM Account").set_index(KEY)
    res = sfb.upsert_df(df, "Account", KEY, only_changed=True, progress=False)
    assert res.ok
    counts = res.counts
    assert counts["updated"] == 30 and counts["unchanged"] == 270
    assert res.frame.loc[100, "sf_id"]  # unchanged rows name their record
    # The job carried the 30 changed rows only.
    info = BulkHttp(org).request("GET", f"/jobs/ingest/{res.jobs['job_id'].iloc[0]}").json()
    assert info["numberRecordsProcessed"] == 30
    after = query(f"SELECT {KEY}, Name, NumberOfEmployees, Industry, LastModifiedDate "
                  "FROM Account").set_index(KEY)
    for key, field in changed:
        assert after.loc[key, field] == df.set_index(KEY).loc[key, field]
    untouched = sorted(set(base[KEY]) - {k for k, _ in changed})
    assert (after.loc[untouched, "LastModifiedDate"]
            == before.loc[untouched, "LastModifiedDate"]).all()


def test_only_changed_sends_only_the_changed_cells(client, org):
    base = accounts(5)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df = base.copy()
    df.loc[2, "Name"] = "Only this"
    plan = sfb.dry_run(df, "Account", "upsert", KEY, only_changed=True)
    assert plan.rows_to_send == 1
    body = plan.chunks[0].data.decode()
    header, row = body.splitlines()[0], body.splitlines()[1]
    assert header.split(",")[:2] == [KEY, "Name"]
    assert row == "K00002,Only this,,,,"


def test_if_unmodified_since_holds_back_rows_edited_after_the_query(client, org):
    base = accounts(50)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    queried = query(f"SELECT Id, {KEY}, Name FROM Account ORDER BY {KEY}")
    assert queried.attrs["queried_at"].tzinfo is not None
    assert queried.queried_at == queried.attrs["queried_at"]  # the spelling
    assert queried[["Name"]].copy().queried_at == queried.queried_at  # carried along
    with pytest.raises(AttributeError, match="does not come from sfb.query_df"):
        _ = pd.DataFrame({"a": [1]}).queried_at
    # Someone else edits two records after the analyst's query.
    other = pd.DataFrame({KEY: ["K00003", "K00007"], "Name": ["Theirs 3", "Theirs 7"]})
    assert sfb.upsert_df(other, "Account", KEY, progress=False).ok
    mine = queried.drop(columns=["Id"]).copy()
    mine["Name"] = mine["Name"] + " (mine)"
    preview = sfb.dry_run(mine, "Account", "upsert", KEY, lookup=True).summary(since=queried)
    assert len(preview.modified_since) == 2
    res = sfb.upsert_df(mine, "Account", KEY, if_unmodified_since=queried.queried_at,
                        progress=False)
    assert not res.ok
    assert res.counts["conflict"] == 2 and res.counts["updated"] == 48
    conflicts = res.frame[res.frame["sf_status"] == "conflict"]
    assert set(conflicts[KEY]) == {"K00003", "K00007"}
    assert conflicts["sf_error_message"].str.contains("modified in the org").all()
    names = query(f"SELECT {KEY}, Name FROM Account").set_index(KEY)["Name"]
    assert names["K00003"] == "Theirs 3" and names["K00010"] == "Account 10 (mine)"
    assert "CONFLICT" in set(res.errors["code"])


def test_the_options_are_checked_before_anything_is_sent(client):
    df = accounts(3)
    with pytest.raises(errors.InputError, match="no time zone"):
        sfb.upsert_df(df, "Account", KEY, if_unmodified_since="2026-12-01 09:00")
    with pytest.raises(errors.InputError, match="only_changed must be True or False"):
        sfb.upsert_df(df, "Account", KEY, only_changed="yes")
    with pytest.raises(errors.InputError, match="for update and upsert, not insert"):
        sfb.insert_df(df, "Account", only_changed=True)
    with pytest.raises(errors.InputError, match="only query_df results"):
        sfb.upsert_df(df, "Account", KEY, if_unmodified_since=df)


@pytest.mark.parametrize("field,before,after,change", [
    ({"type": "double", "scale": 2}, "1200.0", "1200", False),
    ({"type": "double", "scale": 2}, "1200.0", "1200.004", False),  # rounded to the scale
    ({"type": "double", "scale": 2}, "1200.0", "1200.005", True),  # half up
    ({"type": "int"}, "12", "12", False),
    ({"type": "boolean"}, "true", "TRUE", False),
    ({"type": "boolean"}, "true", "false", True),
    ({"type": "date"}, "2024-05-01", "2024-05-01", False),
    ({"type": "datetime"}, "2024-05-01T10:00:00.000+0000", "2024-05-01T10:00:00Z", False),
    ({"type": "datetime"}, "2024-05-01T10:00:00.000+0000", "2024-05-01T12:00:00+02:00", False),
    ({"type": "datetime"}, "2024-05-01T10:00:00.000Z", "2024-05-01T10:00:01.000Z", True),
    ({"type": "reference"}, "001000000000001AAA", "001000000000001", False),
    ({"type": "reference"}, "001000000000001AAA", "001000000000002", True),
    ({"type": "picklist"}, "Prospect", "prospect", True),  # stored as sent
    ({"type": "multipicklist"}, "A;B", "B;A", False),
    ({"type": "string"}, "Acme", "Acme ", True),
    ({"type": "string"}, None, "", False),  # blank sends nothing
    ({"type": "string"}, "Acme", "", False),
    ({"type": "string"}, "Acme", "#N/A", True),  # clears
    ({"type": "string"}, None, "#N/A", False),  # empty already
    ({"type": "string"}, None, "x", True),
])
def test_cells_are_compared_as_salesforce_stores_them(field, before, after, change):
    got = changes.changed_cells(pa.array([after], pa.large_string()),
                                pa.array([before], pa.large_string()), field)
    assert got.tolist() == [change]


def test_many_keys_are_looked_up_with_one_bulk_query(client, org, monkeypatch):
    base = accounts(120)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    other = pd.DataFrame({KEY: ["ZZ1", "ZZ2"], "Name": ["Not in the frame", "Nor this"]})
    assert sfb.upsert_df(other, "Account", KEY, progress=False).ok
    df, changed = edits(base)
    rest = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True)
    monkeypatch.setattr(changes, "REST_LOOKUP_KEYS", 50)
    bulk = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True)
    pd.testing.assert_frame_equal(rest.diff(), bulk.diff())
    assert set(zip(bulk.diff()[KEY], bulk.diff()["field"])) == changed
    pd.testing.assert_frame_equal(rest.existing, bulk.existing)
    assert bulk.lookup_calls <= 6  # create, a poll or two, the results page


def test_a_run_that_sent_only_changes_resumes_from_its_journal(client, org):
    base = accounts(40)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df, changed = edits(base)
    res = sfb.upsert_df(df, "Account", KEY, only_changed=True, progress=False)
    assert res.counts["updated"] == 30
    # After a kernel restart: the org holds the new values now, so planning again from the
    # org would call every row unchanged; the journal's record of the lookup is used.
    again = sfb.resume(res.run_id, df, progress=False)
    pd.testing.assert_frame_equal(again.frame, res.frame)


def test_the_result_says_what_only_changed_saved(client):
    base = accounts(30)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df = base.copy()
    df.loc[0, "Name"] = "New name"
    res = sfb.upsert_df(df, "Account", KEY, only_changed=True, progress=False)
    assert res.saved == {"rows": 29, "bulk_batches": 0, "lookup_calls": 1}
    assert "29 rows not sent (29 unchanged); the lookup took 1 API call" in repr(res)
    assert "29 unchanged" in repr(res)
    assert sfb.upsert_df(df, "Account", KEY, progress=False).saved is None


def test_magic_and_cli_take_only_changed(client, org, tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    base = accounts(10)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df = base.copy()
    df.loc[1, "Name"] = "Magic"
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sfbulk_nb")
    ip.user_ns.update(df=df, queried=query(f"SELECT {KEY}, Name FROM Account"))
    res = ip.run_line_magic("bulk_upsert", f"df Account {KEY} --only-changed "
                            "--if-unmodified-since queried")
    assert res.counts["updated"] == 1 and res.counts["unchanged"] == 9


def test_cli_previews_and_sends_only_changes(tmp_path, monkeypatch, capsys):
    from sfbulk_nb import cli

    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    path = tmp_path / "accounts.csv"
    base = accounts(10)
    base.to_csv(path, index=False)
    command = ["upsert", str(path), "--object", "Account", "--external-id", KEY,
               "--org", "local"]
    assert cli.main(command) == 0
    base.assign(Name=base["Name"].where(base.index != 2, "From the CLI")).to_csv(path, index=False)
    capsys.readouterr()
    assert cli.main([*command, "--only-changed", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 would change their record" in out and "Name: 1" in out
    assert "'Account 2' → 'From the CLI'" in out
    assert cli.main([*command, "--only-changed"]) == 0
    out = capsys.readouterr().out
    assert "1 updated, 9 unchanged" in out
    assert cli.main([*command, "--if-unmodified-since", "yesterday"]) == 2
    assert "if_unmodified_since must be a time" in capsys.readouterr().err


def test_undo_restores_every_before_value_and_deletes_created_rows(client):
    base = accounts(100)
    base.loc[5, "Description"] = np.nan  # empty in the org: undo clears it again
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    snapshot = query(f"SELECT Id, {KEY}, Name, NumberOfEmployees, AnnualRevenue, Industry, "
                     "Description FROM Account").set_index(KEY).sort_index()
    df, changed = edits(base)
    df.loc[5, "Description"] = "Now filled"
    df.loc[6, "AnnualRevenue"] = 99.5
    df = pd.concat([df, pd.DataFrame({KEY: ["NEW1", "NEW2"], "Name": ["N1", "N2"]})],
                   ignore_index=True)
    res = sfb.upsert_df(df, "Account", KEY, undoable=True, progress=False)
    assert res.ok and res.counts["created"] == 2 and res.counts["updated"] == 100
    undone = res.undo(progress=False)
    assert undone.ok, undone
    counts = undone.counts
    assert counts["restored"] == 30 and counts["deleted"] == 2  # rows 5 and 6 are among them
    assert set(undone.frame.loc[undone.frame["action"] == "restore", "row"]) == set(range(30))
    after = query(f"SELECT Id, {KEY}, Name, NumberOfEmployees, AnnualRevenue, Industry, "
                  "Description FROM Account").set_index(KEY).sort_index()
    pd.testing.assert_frame_equal(after, snapshot)
    with pytest.raises(errors.InputError, match="undone already"):
        res.undo(progress=False)


def test_undo_refuses_rows_edited_after_the_run(client):
    base = accounts(40)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    df, _ = edits(base)
    res = sfb.upsert_df(df, "Account", KEY, only_changed=True, progress=False)
    import time

    time.sleep(0.05)  # the other edit lands visibly after the run
    assert sfb.upsert_df(pd.DataFrame({KEY: ["K00000"], "Name": ["Someone else"]}),
                         "Account", KEY, progress=False).ok
    undone = sfb.undo(res.run_id, progress=False)  # by id: no frame needed
    refused = undone.frame[undone.frame["status"] == "refused"]
    assert refused["Id"].tolist() == [res.frame.loc[0, "sf_id"]]
    assert refused["message"].str.contains("modified at").all()
    names = query(f"SELECT {KEY}, Name FROM Account").set_index(KEY)["Name"]
    assert names["K00000"] == "Someone else" and names["K00003"] == "Account 3"
    forced = sfb.undo(res.run_id, force=True, progress=False)
    assert forced.counts.get("restored") == 30  # the same values again, and the refused one
    assert query(f"SELECT {KEY}, Name FROM Account WHERE {KEY} = 'K00000'")["Name"][0] == \
        "Account 0"


def test_undo_says_what_it_cannot_do(client):
    base = accounts(5)
    ins = sfb.insert_df(base.drop(columns=[KEY]), "Account", progress=False)
    assert sfb.undo(ins.run_id, progress=False).counts["deleted"] == 5  # an insert: deleted
    res = sfb.upsert_df(base, "Account", KEY, progress=False)
    with pytest.raises(errors.InputError, match="kept no record of the values"):
        res.undo(progress=False)
    gone = sfb.delete_df(res.frame["sf_id"].tolist(), "Account", progress=False)
    with pytest.raises(errors.InputError, match="no undelete"):
        gone.undo(progress=False)
    with pytest.raises(errors.InputError, match="no undelete"):
        sfb.delete_df(["001000000000001AAA"], "Account", undoable=True)


def test_ten_thousand_accounts_three_hundred_changed_end_to_end(client, org):
    """The issue's figure: 10,000 accounts, 300 changed in pandas (some cleared with the
    clear policy, others rewritten to values equal after formatting, which are no change),
    a few new ones; diff, only_changed, undo, all through the Bulk lookup."""
    base = accounts(10_000)
    assert sfb.upsert_df(base, "Account", KEY, progress=False).ok
    cols = f"Id, {KEY}, Name, NumberOfEmployees, AnnualRevenue, Industry, Description"
    snapshot = query(f"SELECT {cols} FROM Account").set_index(KEY).sort_index()
    df = base.copy()
    rng = np.random.default_rng(3)
    picked = rng.choice(len(df), size=300, replace=False)
    expected = set()
    for n, i in enumerate(picked):
        key = df.loc[i, KEY]
        if n % 3 == 0:
            df.loc[i, "Name"] = f"Renamed {i}"
            expected.add((key, "Name"))
        elif n % 3 == 1:
            df.loc[i, "Description"] = np.nan  # cleared: #N/A under the clear policy
            expected.add((key, "Description"))
        else:
            df.loc[i, "AnnualRevenue"] = df.loc[i, "AnnualRevenue"] + 1
            expected.add((key, "AnnualRevenue"))
    # Not changes: the same numbers as floats, revenue written with more decimals.
    df["NumberOfEmployees"] = df["NumberOfEmployees"].astype("float64")
    untouched = np.setdiff1d(np.arange(len(df)), picked)[:50]
    df.loc[untouched, "AnnualRevenue"] = df.loc[untouched, "AnnualRevenue"] + 0.0001
    new = pd.DataFrame({KEY: [f"NEW{i}" for i in range(5)], "Name": ["New"] * 5,
                        "Description": ["d"] * 5})
    df = pd.concat([df, new], ignore_index=True)
    options = dict(nulls={"Description": "clear"})
    plan = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True, **options)
    diff = plan.diff()
    assert set(zip(diff[KEY], diff["field"])) == expected
    assert plan.summary().create == 5
    res = sfb.upsert_df(df, "Account", KEY, only_changed=True, progress=False, **options)
    assert res.counts["updated"] == 300 and res.counts["created"] == 5
    assert res.counts["unchanged"] == 10_000 - 300
    processed = sum(BulkHttp(org).request("GET", f"/jobs/ingest/{j}").json()
                    ["numberRecordsProcessed"] for j in res.jobs["job_id"])
    assert processed == 305  # the changed rows and the new ones, nothing else
    undone = res.undo(progress=False)
    assert undone.ok and undone.counts["restored"] == 300 and undone.counts["deleted"] == 5
    after = query(f"SELECT {cols} FROM Account").set_index(KEY).sort_index()
    pd.testing.assert_frame_equal(after, snapshot)


def test_undo_after_a_kernel_restart_finds_the_local_org_by_its_file(tmp_path, monkeypatch):
    """A local org gets a new port every start: the journal knows it by its file, so undo
    (and resume) work from a new process."""
    import subprocess
    import sys

    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    first = (
        "import sfbulk_nb as sfb\n"
        "from sfbulk_nb.sample import sample_accounts\n"
        "sfb.connect('local')\n"
        "df = sample_accounts(30, errors=False)\n"
        "assert sfb.upsert_df(df, 'Account', 'customExtIdField__c', progress=False).ok\n"
        "df.loc[3, 'Name'] = 'Changed'\n"
        "res = sfb.upsert_df(df, 'Account', 'customExtIdField__c', only_changed=True,"
        " progress=False)\n"
        "print(res.run_id)\n")
    second = (
        "import sys\n"
        "import sfbulk_nb as sfb\n"
        "sfb.connect('local')\n"
        "undone = sfb.undo(sys.argv[1], progress=False)\n"
        "assert undone.ok and undone.counts['restored'] == 1, undone\n"
        "name = sfb.query_df(\"SELECT Name FROM Account WHERE customExtIdField__c = "
        "'ACME-000003'\", progress=False)['Name'][0]\n"
        "print(name)\n")
    run = subprocess.run([sys.executable, "-c", first], capture_output=True, text=True,
                         timeout=120, check=True)
    run_id = run.stdout.strip().splitlines()[-1]
    again = subprocess.run([sys.executable, "-c", second, run_id], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("Account 3 Madrid")
