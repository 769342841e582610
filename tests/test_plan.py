"""Checks before sending, end to end against a local org: the plan stage, on_invalid, the
messy export an analyst gets, errors grouped for people, job failures shown, retry."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.sample import messy_accounts_csv
from tests.conftest import BulkHttp

KEY = "customExtIdField__c"


@pytest.fixture
def client(org):
    return sfb.connect(org)


def jobs_of(org) -> list[dict]:
    return BulkHttp(org).request("GET", "/jobs/ingest").json()["records"]


def test_a_messy_export_is_checked_in_one_pass_and_loads_after_the_hints(client, org):
    export = pd.read_csv(io.BytesIO(messy_accounts_csv(400, seed=11)))
    calls = org.api_calls_today
    problems = sfb.validate_df(export, "Account", KEY)
    assert org.api_calls_today == calls + 1  # the describe, nothing else
    summary = problems.summary()
    # Every kind of mess is reported, in at most one group per (column, problem).
    assert not summary.duplicated(["column", "code"]).any()
    found = set(zip(summary["column"].astype(str), summary["code"]))
    assert found >= {
        ("Account Name ", "INVALID_FIELD"), ("Region", "INVALID_FIELD"),
        ("Active", "INVALID_FIELD"), ("Annual Revenue", "INVALID_FIELD"),
        (KEY, "DUPLICATE_VALUE"), (KEY, "MISSING_ARGUMENT"),
        ("Account Name ", "STRING_TOO_LONG"), ("Active", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Founded", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Annual Revenue", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Employees", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ("Industry", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")}
    assert len(summary) <= 16
    # The hints, run in the summary's order, make the frame clean ...
    namespace = {"pd": pd, "np": np, "df": export}
    for hint in summary["hint"]:
        exec(hint, namespace)
    df = namespace["df"]
    assert len(sfb.validate_df(df, "Account", KEY)) == 0
    # ... and it loads in one job, every row created.
    res = sfb.upsert_df(df, "Account", KEY, progress=False)
    assert res.ok and len(res.jobs) == 1 and res.counts["created"] == len(df)
    assert len(df) > 350  # only the duplicated and blank keys were dropped


def test_by_default_nothing_is_sent_and_the_error_carries_the_problems(client, org):
    df = pd.DataFrame({KEY: ["a", "b", "c"], "Name": ["A", "B", "C"],
                       "Industry": ["Banking", "Nope", "Energy"]})
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_df(df, "Account", KEY, progress=False)
    assert isinstance(caught.value, errors.InputError)
    assert list(caught.value.problems["row"]) == [1]
    assert "on_invalid='skip'" in str(caught.value) and "fix: df['Industry']" in str(caught.value)
    assert jobs_of(org) == []


def test_skip_sends_the_valid_rows_and_marks_the_others_invalid(client, org):
    df = pd.DataFrame({KEY: ["a", "b", "c", "d"], "Name": ["A", "B", "C", "x" * 300],
                       "Industry": ["Banking", "Nope", "Energy", "Energy"]},
                      index=["w", "x", "y", "z"])
    res = sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="skip")
    frame = res.frame
    assert list(frame.index) == ["w", "x", "y", "z"]
    assert list(frame["sf_status"]) == ["created", "invalid", "created", "invalid"]
    assert list(frame["sf_error_code"].fillna("")) == [
        "", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "", "STRING_TOO_LONG"]
    assert frame.loc["x", "sf_error_fields"] == "Industry"
    assert frame.loc["x", "sf_error_message"].startswith("Industry: 'Nope' is not a value")
    assert frame["sf_job_id"].isna().tolist() == [False, True, False, True]
    assert len(res.invalid) == 2 and res.jobs["rows"].tolist() == [2]
    assert org.store.count_records(org.catalog.get("Account")) == 2
    assert set(res.errors["status"]) == {"invalid"}


def test_send_lets_the_org_judge_but_not_cells_that_have_no_csv_form(client, org):
    df = pd.DataFrame({KEY: ["a", "b"], "Name": ["A", "B"], "Industry": ["Banking", "Nope"]})
    res = sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="send")
    assert list(res.frame["sf_status"]) == ["created", "failed"]
    assert res.frame.loc[1, "sf_error_message"] == "Industry: bad value for restricted picklist field: Nope"
    lists = df.assign(Description=pd.Series(["ok", ["a", "list"]], dtype=object))
    with pytest.raises(errors.ValidationError, match="no CSV form") as caught:
        sfb.upsert_df(lists, "Account", KEY, progress=False, on_invalid="send")
    assert list(caught.value.problems["code"]) == ["INVALID_CELL_TYPE"]
    assert len(jobs_of(org)) == 1


def test_skip_cannot_skip_a_problem_of_a_whole_column(client, org):
    df = pd.DataFrame({KEY: ["a"], "Name": ["A"], "Region": ["EMEA"]})
    with pytest.raises(errors.ValidationError, match="whole column blocks every row"):
        sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="skip")
    assert jobs_of(org) == []


def test_a_job_that_fails_says_why_everywhere(client, org, capsys):
    """An unknown column fails the whole job: its reason reaches every row, the errors,
    the card and the text output (it hid in res.jobs before)."""
    df = pd.DataFrame({KEY: ["a", "b"], "Name": ["A", "B"], "Region": ["EMEA", "AMER"]})
    res = sfb.upsert_df(df, "Account", KEY, progress="text", on_invalid="send")
    reason = "InvalidBatch : Field name not found : Region"
    assert list(res.frame["sf_status"]) == ["unprocessed", "unprocessed"]
    assert list(res.frame["sf_error_code"]) == ["JOB_FAILED"] * 2
    assert list(res.frame["sf_error_message"]) == [reason] * 2
    assert res.errors.iloc[0][["status", "code", "message", "rows"]].tolist() == [
        "unprocessed", "JOB_FAILED", reason, 2]
    assert f"job 1 failed: {reason}" in repr(res) and f"job 1 failed: {reason}" in res._repr_html_()
    assert f"Failed: {reason}" in capsys.readouterr().err


def test_errors_group_values_for_people(client):
    df = pd.DataFrame({KEY: [f"E{i}" for i in range(6)], "Name": list("abcdef"),
                       "Active__c": ["Yes", "yes", "No", "NO", "true", "y"]})
    res = sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="send")
    errs = res.errors
    assert len(errs) == 1
    group = errs.iloc[0]
    assert (group["code"], group["fields"], group["rows"]) == ("INVALID_TYPE_ON_FIELD_IN_RECORD",
                                                               "Active__c", 5)
    assert group["message"] == "Active: value not of required type: \u2026"
    assert group["examples"] == ["Yes", "yes", "No"] and group["share"] == pytest.approx(5 / 6)


def test_dry_run_returns_the_plan_and_lookup_says_create_or_update(client, org):
    first = pd.DataFrame({KEY: ["L1", "L2"], "Name": ["A", "B"]})
    created = sfb.upsert_df(first, "Account", KEY, progress=False)
    df = pd.DataFrame({KEY: ["L1", "L3", "l2"], "Name": ["A2", "C", "b"]}, index=[10, 11, 12])
    calls = org.api_calls_today
    plan = sfb.dry_run(df, "Account", "upsert", KEY, lookup=True, max_records=2)
    assert isinstance(plan, sfb.LoadPlan) and plan.jobs["rows"].tolist() == [2, 1]
    existing = plan.existing
    assert existing["action"].tolist() == ["update", "create", "create"]  # the key is case-sensitive
    assert existing.loc[10, "Id"] == created.frame.loc[0, "sf_id"]
    assert plan.lookup_calls == 1 and org.api_calls_today == calls + 1  # one query (describe cached)
    assert "1 would update" in repr(plan) and "2 would create" in repr(plan)
    assert len(jobs_of(org)) == 1  # only the first upsert's job
    ids = pd.DataFrame({"Id": [created.frame.loc[0, "sf_id"], "0010L00000000ZZQAA"]})
    deleting = sfb.dry_run(ids, "Account", "delete", lookup=True)
    assert deleting.existing["action"].tolist() == ["delete", "missing"]


def test_unknown_objects_and_names_that_are_not_api_names(client, org):
    df = pd.DataFrame({"Name": ["x"]})
    with pytest.raises(errors.InputError, match=r"has no object 'Acount'; did you mean 'Account'"):
        sfb.insert_df(df, "Acount", progress=False)
    for bad in ("Account/../Contact", "Account?x=1", "Account describe"):
        with pytest.raises(errors.InputError, match="not a Salesforce API name"):
            sfb.insert_df(df, bad, progress=False)
    with pytest.raises(errors.InputError, match="not a Salesforce API name"):
        sfb.upsert_df(df, "Account", "Name/../x", progress=False)
    assert jobs_of(org) == [] and org.store.count_records(org.catalog.get("Contact")) == 0


def test_a_misspelt_option_names_the_valid_ones(client):
    with pytest.raises(errors.InputError, match=r"unknown option 'paralel' \(did you mean 'parallel'\?\)"):
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", paralel=2)
    with pytest.raises(errors.InputError, match="on_invalid must be one of"):
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", on_invalid="ignore")
    with pytest.raises(errors.InputError, match="progress must be"):
        sfb.insert_df(pd.DataFrame({"Name": ["x"]}), "Account", progress="fancy")


def test_the_key_column_may_differ_in_case(client):
    df = pd.DataFrame({KEY.lower(): ["C1", "C2"], "name": ["A", "B"]})
    res = sfb.upsert_df(df, "Account", KEY, progress=False)
    assert res.ok and list(res.frame["sf_status"]) == ["created", "created"]


def test_retry_sends_only_the_fixed_rows_and_merges_their_outcomes(client, org):
    df = pd.DataFrame({KEY: ["r1", "r2", "r3", "r4"], "Name": ["A", None, "C", "x" * 300],
                       "Industry": ["Banking", "Banking", "Nope", "Energy"]})
    res = sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="skip")
    assert list(res.frame["sf_status"]) == ["created", "failed", "invalid", "invalid"]
    with pytest.raises(errors.InputError, match="succeeded already"):
        res.retry(res.frame.iloc[[0]])
    fixed = pd.concat([res.failed, res.invalid])
    fixed["Name"] = fixed["Name"].fillna("Named now").str.slice(0, 50)
    fixed["Industry"] = fixed["Industry"].replace({"Nope": "Other"})
    again = res.retry(fixed)
    frame = again.frame
    assert again.ok and list(frame["sf_status"]) == ["created"] * 4
    assert list(frame.index) == [0, 1, 2, 3] and frame.loc[2, "Industry"] == "Other"
    assert frame.loc[0, "sf_id"] == res.frame.loc[0, "sf_id"]  # untouched rows keep theirs
    assert again.counts["created"] == 4 and len(again.jobs) == 2
    assert org.store.count_records(org.catalog.get("Account")) == 4
    assert "retry of 3 rows" in repr(again)


def test_repeated_keys_sent_anyway_get_each_their_outcome(client, org):
    # The check knows whether keys repeat: the run then keeps every column of the result
    # files to tell the rows apart (and reads only the key's when they do not).
    df = pd.DataFrame({KEY: ["r1", "r2", "r1"], "Name": ["First", "Second", "Third"]})
    plan = sfb.dry_run(df, "Account", "upsert", KEY, on_invalid="send")
    assert plan.key_repeats is True
    assert sfb.dry_run(df.iloc[:2], "Account", "upsert", KEY).key_repeats is False
    res = sfb.upsert_df(df, "Account", KEY, progress=False, on_invalid="send")
    # The org fails both rows of the repeated key, each matched to its own result row.
    assert list(res.frame["sf_status"]) == ["failed", "created", "failed"]
    assert list(res.frame["sf_error_message"].fillna("")) == [
        "Duplicate external id specified: r1", "", "Duplicate external id specified: r1"]
