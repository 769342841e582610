"""The magics through a real IPython shell, against a running local org."""
from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import sfbulk_nb as sfb
from sfbulk_nb import jobs, org as orgs
from sfbulk_nb.bulkresult import BulkResult
from tests.conftest import BulkHttp

ACCOUNTS = pd.DataFrame({"customExtIdField__c": ["M-1", "M-2", "M-3"],
                         "Name": ["Alpha", "Beta", "Gamma"],
                         "NumberOfEmployees": pd.array([10, 20, 30], dtype="Int64"),
                         "Industry": ["Banking", "Nope", "Energy"]})


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sfbulk_nb")
    return ip


@pytest.fixture
def ip(shell, org, monkeypatch):
    """The shell with `%sf_connect local` pointing at the test's org, quiet progress, and
    the magics' settings and the default org restored afterwards."""
    monkeypatch.setitem(orgs._local_orgs, None, org)
    monkeypatch.setattr(orgs, "_default", None)
    magics = shell.magics_manager.registry["SFBulkMagics"]
    saved = {name: getattr(magics, name) for name in ("parallel", "progress", "nulls",
                                                      "api_version", "on_invalid",
                                                      "display_limit")}
    limit = sfb.options.display_limit
    shell.run_line_magic("config", "SFBulkMagics.progress = 'none'")
    # ACCOUNTS has a bad picklist value that these tests want the org to judge.
    shell.run_line_magic("config", "SFBulkMagics.on_invalid = 'send'")
    shell.user_ns["df"] = ACCOUNTS.copy()
    yield shell
    for name, value in saved.items():
        setattr(magics, name, value)
    sfb.options.display_limit = limit
    for name in ("df", "res", "accounts", "out"):
        shell.user_ns.pop(name, None)


def run(shell, cell: str):
    """Run a cell as a user would; fail on any error in it."""
    result = shell.run_cell(cell)
    if result.error_in_exec is not None or result.error_before_exec is not None:
        raise result.error_in_exec or result.error_before_exec
    return result.result


def test_load_ext_registers_the_magics(shell):
    magics = shell.magics_manager.magics
    assert {"sf_connect", "bulk_upsert", "bulk_insert", "bulk_update", "bulk_delete",
            "bulk_jobs", "soql"} <= set(magics["line"])
    assert "soql" in magics["cell"]
    shell.run_line_magic("load_ext", "sfbulk_nb")  # loading again is harmless


def test_sf_connect_local(ip, org, capsys):
    ip.run_line_magic("sf_connect", "local")
    assert sfb.default_org().instance_url == org.instance_url
    assert sfb.default_org().kind == "local"
    assert "Connected to local org (LOCAL, API v66.0)" in capsys.readouterr().out


def test_sf_connect_takes_the_token_only_from_an_environment_variable(ip, org, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("MY_SF_TOKEN", org.access_token)
    ip.run_line_magic("sf_connect", f"--instance-url {org.instance_url} --token-env "
                      "MY_SF_TOKEN")
    assert sfb.default_org().instance_url == org.instance_url
    assert org.access_token not in capsys.readouterr().out
    with pytest.raises(UsageError, match="NOPE_TOKEN is not set"):
        ip.run_line_magic("sf_connect", f"--instance-url {org.instance_url} --token-env "
                          "NOPE_TOKEN")
    with pytest.raises(UsageError, match="go together"):
        ip.run_line_magic("sf_connect", f"--instance-url {org.instance_url}")
    with pytest.raises(UsageError, match="unrecognized arguments: --token"):
        ip.run_line_magic("sf_connect", "--token abc")
    with pytest.raises(UsageError, match="looks like an access token"):
        ip.run_line_magic("sf_connect", "00D5g000004XyZa!AQ4AQLq3.fake")


def test_api_version_setting_is_used_by_sf_connect(ip):
    run(ip, "%config SFBulkMagics.api_version = '62.0'")
    ip.run_line_magic("sf_connect", "local")
    assert sfb.default_org().api_version == "62.0"


def test_res_equals_bulk_upsert_returns_the_aligned_result(ip, org):
    run(ip, "%sf_connect local")
    run(ip, "res = %bulk_upsert df Account customExtIdField__c")
    res = ip.user_ns["res"]
    assert isinstance(res, BulkResult) and res.done
    assert list(res.frame["sf_status"]) == ["created", "failed", "created"]
    assert res.frame.loc[1, "sf_error_code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    again = run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert list(again.frame["sf_status"]) == ["updated", "failed", "updated"]
    record = BulkHttp(org).record("Account", res.frame.loc[0, "sf_id"])
    assert record["Name"] == "Alpha" and record["NumberOfEmployees"] == 10


def test_nulls_clear_by_option_and_by_config(ip, org):
    run(ip, "%sf_connect local")
    first = run(ip, "%bulk_upsert df Account customExtIdField__c")
    record_id = first.frame.loc[0, "sf_id"]
    ip.user_ns["df"] = pd.DataFrame({"customExtIdField__c": ["M-1"], "Name": ["Alpha"],
                                     "NumberOfEmployees": pd.array([None], dtype="Int64")})
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert BulkHttp(org).record("Account", record_id)["NumberOfEmployees"] == 10  # kept
    run(ip, "%bulk_upsert df Account customExtIdField__c --nulls clear")
    assert BulkHttp(org).record("Account", record_id)["NumberOfEmployees"] is None
    ip.user_ns["df"] = ACCOUNTS.iloc[[0]][["customExtIdField__c", "NumberOfEmployees"]]
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert BulkHttp(org).record("Account", record_id)["NumberOfEmployees"] == 10
    ip.user_ns["df"] = pd.DataFrame({"customExtIdField__c": ["M-1"],
                                     "NumberOfEmployees": pd.array([None], dtype="Int64")})
    run(ip, "%config SFBulkMagics.nulls = 'clear'")
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert BulkHttp(org).record("Account", record_id)["NumberOfEmployees"] is None
    run(ip, "%bulk_upsert df Account customExtIdField__c --nulls keep")  # option wins


def test_insert_update_and_delete(ip, org):
    run(ip, "%sf_connect local")
    ip.user_ns["df"] = pd.DataFrame({"LastName": ["Ng", "Okafor"], "Email": ["a@x.io", None]})
    inserted = run(ip, "%bulk_insert df Contact")
    assert list(inserted.frame["sf_status"]) == ["created", "created"]
    ids = list(inserted.frame["sf_id"])
    ip.user_ns["df"] = pd.DataFrame({"Id": ids, "LastName": ["Ng-Smith", "Okafor"]})
    updated = run(ip, "%bulk_update df Contact")
    assert list(updated.frame["sf_status"]) == ["updated", "updated"]
    assert BulkHttp(org).record("Contact", ids[0])["LastName"] == "Ng-Smith"
    ip.user_ns["ids"] = ids[:1]
    deleted = run(ip, "%bulk_delete ids Contact")
    assert list(deleted.frame["sf_status"]) == ["deleted"]
    assert BulkHttp(org).record("Contact", ids[0]) is None
    ip.user_ns["df"] = pd.DataFrame({"Id": ids[1:]})
    hard = run(ip, "%bulk_delete df Contact --hard")
    assert list(hard.frame["sf_status"]) == ["deleted"]
    assert hard.jobs.loc[0, "job_id"] in {j["id"] for j in jobs.list_jobs(sfb.default_org())
                                          if j["operation"] == "hardDelete"}


def test_checks_before_sending_stop_skip_or_send(ip, org):
    run(ip, "%sf_connect local")
    run(ip, "%config SFBulkMagics.on_invalid = 'raise'")
    with pytest.raises(UsageError, match="ValidationError: Nothing was sent") as caught:
        ip.run_line_magic("bulk_upsert", "df Account customExtIdField__c")
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in str(caught.value)
    assert "fix: df['Industry']" in str(caught.value)
    assert jobs.list_jobs(sfb.default_org()) == []
    skipped = run(ip, "%bulk_upsert df Account customExtIdField__c --on-invalid skip")
    assert list(skipped.frame["sf_status"]) == ["created", "invalid", "created"]
    sent = run(ip, "%bulk_upsert df Account customExtIdField__c --on-invalid send")
    assert list(sent.frame["sf_status"]) == ["updated", "failed", "updated"]


def test_dry_run_returns_the_plan_and_sends_nothing(ip, org):
    run(ip, "%sf_connect local")
    plan = run(ip, "%bulk_upsert df Account customExtIdField__c --dry-run")
    assert list(plan.jobs.columns) == ["rows", "bytes"] and plan.jobs["rows"].sum() == 3
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in plan._repr_html_()
    ip.user_ns["ids"] = ["001000000000001AAA"]
    assert run(ip, "%bulk_delete ids Account --hard --dry-run").jobs["rows"].sum() == 1
    assert jobs.list_jobs(sfb.default_org()) == []
    with pytest.raises(UsageError, match="InputError: Contact has no field"):
        ip.run_line_magic("bulk_upsert", "df Contact customExtIdField__c --dry-run")


def test_no_wait_returns_at_once_and_wait_finishes(ip):
    run(ip, "%sf_connect local")
    res = run(ip, "%bulk_upsert df Account customExtIdField__c --no-wait")
    res.wait()
    assert res.done and res.counts["created"] == 2


def test_parallel_from_config_and_option(ip):
    run(ip, "%sf_connect local")
    assert run(ip, "%bulk_upsert df Account customExtIdField__c")._run.parallel == 4
    run(ip, "%config SFBulkMagics.parallel = 2")
    assert run(ip, "%bulk_upsert df Account customExtIdField__c")._run.parallel == 2
    res = run(ip, "%bulk_upsert df Account customExtIdField__c --parallel 3")
    assert res._run.parallel == 3


def test_progress_setting(ip, capsys):
    run(ip, "%sf_connect local")
    capsys.readouterr()
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert "JobComplete" not in capsys.readouterr().err
    run(ip, "%config SFBulkMagics.progress = 'text'")
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    assert "JobComplete, 3 / 3 processed, 1 failed" in capsys.readouterr().err


def test_soql_cell_stores_a_typed_frame_in_var(ip, capsys):
    run(ip, "%sf_connect local")
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    capsys.readouterr()
    out = run(ip, "%%soql accounts\nSELECT customExtIdField__c, Name, NumberOfEmployees\n"
                  "FROM Account ORDER BY customExtIdField__c")
    assert out is None
    accounts = ip.user_ns["accounts"]
    assert list(accounts["customExtIdField__c"]) == ["M-1", "M-3"]
    assert str(accounts["NumberOfEmployees"].dtype) == "Int64"
    assert list(accounts["NumberOfEmployees"]) == [10, 30]
    assert "Gamma" in capsys.readouterr().out  # displayed too
    frame = run(ip, "%%soql\nSELECT Name FROM Account WHERE customExtIdField__c = 'M-1'")
    assert list(frame["Name"]) == ["Alpha"]
    run(ip, "out = %soql SELECT Id FROM Account")
    assert len(ip.user_ns["out"]) == 2


def test_soql_results_show_the_display_limit(ip):
    run(ip, "%sf_connect local")
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    run(ip, "%config SFBulkMagics.display_limit = 1")
    assert sfb.options.display_limit == 1  # one setting, however it is set
    frame = run(ip, "%%soql\nSELECT Name FROM Account ORDER BY Name")
    assert isinstance(frame, sfb.ShownFrame) and len(frame) == 2
    assert "showing 1 of 2 rows" in frame._repr_html_()
    run(ip, "%%soql accounts\nSELECT Name FROM Account")
    assert isinstance(ip.user_ns["accounts"], sfb.ShownFrame)
    assert type(ip.user_ns["accounts"].head(1)) is pd.DataFrame


def test_soql_errors_are_short(ip):
    run(ip, "%sf_connect local")
    with pytest.raises(UsageError, match="VAR must be a Python name"):
        ip.run_cell_magic("soql", "not-a-name", "SELECT Id FROM Account")
    with pytest.raises(UsageError, match="no SOQL"):
        ip.run_cell_magic("soql", "accounts", "  \n")
    with pytest.raises(UsageError, match="Error"):
        ip.run_cell_magic("soql", "accounts", "SELECT Nope__c FROM Account")


def test_bulk_jobs_lists_the_org_jobs_newest_first(ip):
    run(ip, "%sf_connect local")
    first = run(ip, "%bulk_upsert df Account customExtIdField__c")
    second = run(ip, "%bulk_upsert df Account customExtIdField__c")
    frame = run(ip, "%bulk_jobs")
    assert list(frame["id"]) == [second.jobs.loc[0, "job_id"], first.jobs.loc[0, "job_id"]]
    assert list(frame.columns) == ["state", "object", "operation", "processed", "failed",
                                   "created", "id"]
    assert list(frame["state"]) == ["JobComplete", "JobComplete"]
    assert list(frame["operation"]) == ["upsert", "upsert"]
    # the counters the list leaves out, from each job: one bad picklist value per run
    assert list(frame["processed"]) == [3, 3] and list(frame["failed"]) == [1, 1]
    assert str(frame["created"].dtype).startswith("datetime64")  # UTC, whole seconds
    assert (frame["created"] == frame["created"].dt.floor("s")).all()
    assert len(run(ip, "%bulk_jobs --limit 1")) == 1


def test_bulk_jobs_of_one_object_fit_a_terminal(ip):
    run(ip, "%sf_connect local")
    run(ip, "%bulk_upsert df Account customExtIdField__c")
    ip.user_ns["contacts"] = pd.DataFrame({"LastName": ["Ng", "Ode"]})
    contact = run(ip, "%bulk_insert contacts Contact")
    frame = run(ip, "%bulk_jobs --object contact")  # API names know no case
    assert list(frame["id"]) == [contact.jobs.loc[0, "job_id"]]
    assert list(frame["object"]) == ["Contact"]
    assert len(run(ip, "%bulk_jobs --object Account")) == 1
    assert run(ip, "%bulk_jobs --object Lead").empty
    everything = run(ip, "%bulk_jobs --limit 0")
    assert len(everything) == 2
    assert max(len(line) for line in everything.to_string().splitlines()) <= 100
    ip.user_ns.pop("contacts")


@pytest.mark.parametrize("limit", ["-1", "x"])
def test_bulk_jobs_limit_is_a_count(ip, limit):
    with pytest.raises(UsageError, match="usage: %bulk_jobs") as caught:
        ip.run_line_magic("bulk_jobs", f"--limit {limit}")
    assert f"expected a whole number of at least 0, not '{limit}'" in str(caught.value)


@pytest.mark.parametrize("line,message", [
    ("df Account", "the following arguments are required: EXT_ID"),
    ("df Account customExtIdField__c --parallel x", "invalid int value: 'x'"),
    ("df Account customExtIdField__c --nulls maybe", "invalid choice: 'maybe'"),
    ("df Account customExtIdField__c --bogus", "unrecognized arguments: --bogus"),
    ("'df Account", "No closing quotation"),
])
def test_bad_arguments_raise_usage_error_with_the_usage_line(ip, line, message):
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("bulk_upsert", line)
    assert str(caught.value).startswith("usage: %bulk_upsert")
    assert message in str(caught.value)


def test_unknown_variable_and_library_errors_are_usage_errors(ip, capsys):
    run(ip, "%sf_connect local")
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        ip.run_line_magic("bulk_upsert", "nope Account customExtIdField__c")
    with pytest.raises(UsageError, match="InputError: Account has no field 'Nope__c'"):
        ip.run_line_magic("bulk_upsert", "df Account Nope__c")
    ip.user_ns["df"] = ACCOUNTS.assign(Nope__c=1)
    with pytest.raises(UsageError, match="InputError: Account has no field 'Nope__c'"):
        ip.run_line_magic("bulk_upsert", "df Account Nope__c")
    with pytest.raises(UsageError, match="parallel must be a whole number of at least 1"):
        ip.run_line_magic("bulk_upsert", "df Account customExtIdField__c --parallel 0")
    with pytest.raises(UsageError, match="InputError: local org has no object 'NoSuchObject__c'"):
        ip.run_line_magic("bulk_insert", "df NoSuchObject__c")
    capsys.readouterr()
    result = ip.run_cell("%bulk_insert df NoSuchObject__c")
    assert isinstance(result.error_in_exec, UsageError)
    err = capsys.readouterr()
    assert "Traceback" not in err.out + err.err and "UsageError" in err.out + err.err


def test_help_prints_and_returns_nothing(ip, capsys):
    assert ip.run_line_magic("bulk_upsert", "-h") is None
    out = capsys.readouterr().out
    assert "usage: %bulk_upsert" in out and "--dry-run" in out
    assert ip.run_line_magic("bulk_jobs", "-h") is None
    out = " ".join(capsys.readouterr().out.split())  # however argparse wraps it
    assert "usage: %bulk_jobs [-h] [--object OBJECT] [--limit N]" in out and "created (UTC)" in out


def test_a_csv_file_is_streamed_by_the_load_magics(ip, org, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accounts.csv").write_text(
        "customExtIdField__c;Name;NumberOfEmployees\nF-1;Alpha, Inc.;10\nF-2;Béta;20\n",
        encoding="cp1252")
    run(ip, "%sf_connect local")
    res = run(ip, "res = %bulk_upsert accounts.csv Account customExtIdField__c "
                  "--sep ';' --encoding cp1252 --results out.parquet")
    res = ip.user_ns["res"]
    assert res.ok and res.counts["created"] == 2
    outcome = pd.read_parquet(tmp_path / "out.parquet")
    assert list(outcome["line"]) == [2, 3] and list(outcome["sf_status"]) == ["created"] * 2
    names = run(ip, "%soql SELECT Name FROM Account WHERE customExtIdField__c LIKE 'F-%'")
    assert sorted(names["Name"]) == ["Alpha, Inc.", "Béta"]
    # A file's refusal lists its lines and says nothing was sent.
    (tmp_path / "bad.csv").write_text("customExtIdField__c,Name,NumberOfEmployees\n"
                                      "F-3,Gamma,lots\nF-4,,5\n")
    with pytest.raises(UsageError, match=r"(?s)ValidationError: Nothing was sent.*line 2.*bad.fixed.csv"):
        ip.run_line_magic("bulk_upsert", "bad.csv Account customExtIdField__c "
                                         "--on-invalid raise")


@pytest.mark.parametrize("line,message", [
    ("accounts.csv Account customExtIdField__c --only-changed",
     r"--only-changed need\(s\) the rows in a DataFrame.*pd.read_csv\('accounts.csv'"),
    ("accounts.csv Account customExtIdField__c --dry-run --results r.csv",
     "a dry run sends nothing"),
    ("missing/accounts.csv Account customExtIdField__c", "no file at 'missing/accounts.csv'"),
    ("nope.csv Account customExtIdField__c", "no file at 'nope.csv'"),
    ("df Account customExtIdField__c --sep ';'", "--sep is for a CSV file; df is a variable"),
])
def test_what_a_streamed_file_cannot_do_is_said(ip, tmp_path, monkeypatch, line, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accounts.csv").write_text("customExtIdField__c,Name\nF-1,Alpha\n")
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("bulk_upsert", line)


def test_the_magics_give_advice_in_their_own_spelling(ip, org, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "export.csv").write_bytes("customExtIdField__c;Name\nX-1;Café\n"
                                          .encode("cp1252"))
    run(ip, "%sf_connect local")
    with pytest.raises(UsageError, match="pass --encoding cp1252"):
        ip.run_line_magic("bulk_upsert", "export.csv Account customExtIdField__c")
    with pytest.raises(UsageError, match="pass --sep ';'"):
        ip.run_line_magic("bulk_upsert", "export.csv Account customExtIdField__c "
                                         "--encoding cp1252")
    ip.user_ns["df"] = ACCOUNTS.assign(NumberOfEmployees=["many", "2", "3"])
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("bulk_upsert", "df Account customExtIdField__c --on-invalid raise")
    assert "pass --on-invalid skip" in str(caught.value)
    assert "on_invalid=" not in str(caught.value)


def test_a_dry_run_of_a_file_lists_its_problems_and_sends_nothing(ip, org, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "accounts.csv").write_text("customExtIdField__c,Name,Industry\n"
                                           "D-1,Alpha,Banking\nD-2,Beta,Nope\n")
    run(ip, "%sf_connect local")
    problems = run(ip, "%bulk_upsert accounts.csv Account customExtIdField__c --dry-run")
    assert isinstance(problems, sfb.Problems)
    assert list(problems["row"]) == [3] and "nothing was sent" in repr(problems)
    assert run(ip, "%soql SELECT Id FROM Account WHERE customExtIdField__c LIKE 'D-%'").empty
