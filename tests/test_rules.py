"""Validation rules end to end: the local org refuses rows over HTTP, the client fetches
the rules through the Tooling API and flags the same rows before sending."""
from __future__ import annotations

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors

CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"


@pytest.fixture
def client(org):
    yield sfb.connect(org)
    for rule in org.validation_rules():
        org.remove_validation_rule(rule.sobject, rule.name)


def add_account_rules(org):
    org.add_validation_rule("Account", "Revenue_Needs_Industry",
                            "AND(AnnualRevenue > 1000000, ISBLANK(TEXT(Industry)))",
                            "Big accounts need an industry.", field="Industry")
    org.add_validation_rule("Account", "No_Test_Names", "BEGINS(Name, 'TEST')",
                            "Test accounts are not allowed.")
    org.add_validation_rule("Account", "Employees_Sane",
                            "OR(NumberOfEmployees < 0, NumberOfEmployees > 1000000)",
                            "Employees must be between 0 and 1,000,000.",
                            field="NumberOfEmployees")


FRAME = pd.DataFrame({
    "customExtIdField__c": ["k1", "k2", "k3", "k4", "k5", "k6"],
    "Name": ["Big", "BigOk", "TEST one", "Fine", "Many", "Blank"],
    "AnnualRevenue": [2_000_000.0, 2_000_000.0, 10.0, None, 5.0, None],
    "Industry": [None, "Banking", None, None, "Energy", None],
    "NumberOfEmployees": pd.array([1, 2, 3, 4, 2_000_000, None], dtype="Int64"),
})
VIOLATING = {"k1": "Big accounts need an industry.", "k3": "Test accounts are not allowed.",
             "k5": "Employees must be between 0 and 1,000,000."}


def test_fetch_rules_reads_ids_then_metadata_one_at_a_time(client, org):
    add_account_rules(org)
    org.add_validation_rule("Account", "Off", "TRUE", "never", active=False)
    org.add_validation_rule("Contact", "Other", "ISBLANK(Email)", "Email!")
    found = sfb.fetch_rules(client, "Account")
    assert [r.name for r in found] == ["Revenue_Needs_Industry", "No_Test_Names",
                                       "Employees_Sane"]
    assert found.api_calls == 1 + 3
    first = found.rules[0]
    assert (first.formula, first.message, first.field, first.active) == (
        "AND(AnnualRevenue > 1000000, ISBLANK(TEXT(Industry)))",
        "Big accounts need an industry.", "Industry", True)
    assert found.rules[1].field is None
    assert len(sfb.fetch_rules(client, "Account", active_only=False)) == 4
    assert len(sfb.fetch_rules(client, "Opportunity")) == 0


def test_the_org_refuses_exactly_the_violating_rows(client, org):
    add_account_rules(org)
    res = sfb.upsert_df(FRAME, "Account", "customExtIdField__c", progress=False)
    frame = res.frame.set_index("customExtIdField__c")
    failed = frame[frame["sf_status"] == "failed"]
    assert set(failed.index) == set(VIOLATING)
    assert (failed["sf_error_code"] == CODE).all()
    assert failed["sf_error_message"].to_dict() == VIOLATING
    assert failed.loc["k1", "sf_error_fields"] == "Industry"
    assert set(frame.index[frame["sf_status"] == "created"]) == {"k2", "k4", "k6"}


def test_validate_df_with_rules_flags_the_rows_the_org_refuses(client, org):
    add_account_rules(org)
    problems = sfb.validate_df(FRAME, "Account", "customExtIdField__c", operation="insert",
                               rules=True)
    flagged = problems[problems["code"] == CODE]
    assert dict(zip(FRAME["customExtIdField__c"].iloc[flagged["position"].astype(int)],
                    flagged["message"].str.split(": ", n=2).str[-1])) == VIOLATING
    row = flagged[flagged["field"] == "Industry"].iloc[0]
    assert row["column"] == "Industry" and row["severity"] == "error"
    assert "breaks validation rule Revenue_Needs_Industry" in row["message"]
    assert "problems.field == 'Industry'" in row["hint"]
    # a rule without a display field is named by the rule
    assert set(flagged["field"]) == {"Industry", "No_Test_Names", "NumberOfEmployees"}
    # parity: what the org then refuses is what was flagged
    res = sfb.insert_df(FRAME, "Account", progress=False)
    refused = set(res.frame.loc[res.frame["sf_status"] == "failed", "customExtIdField__c"])
    assert refused == set(FRAME["customExtIdField__c"].iloc[flagged["position"].astype(int)])
    # without rules=True nothing is fetched or flagged
    assert not (sfb.validate_df(FRAME, "Account", "customExtIdField__c")["code"] == CODE).any()


def test_rules_only_judge_rows_without_other_errors(client, org):
    add_account_rules(org)
    df = pd.DataFrame({"Name": ["TEST " + "x" * 300, "TEST two"]})
    problems = sfb.validate_df(df, "Account", operation="insert", rules=True)
    assert problems.loc[problems["position"] == 0, "code"].tolist() == ["STRING_TOO_LONG"]
    assert problems.loc[problems["position"] == 1, "code"].tolist() == [CODE]


def test_rules_the_frame_cannot_decide_are_skipped_with_a_note(client, org):
    org.add_validation_rule("Account", "Name_Fixed", "ISCHANGED(Name)", "Name cannot change.")
    org.add_validation_rule("Contact", "Bank_Email",
                            'AND(ISPICKVAL(Account.Industry, "Banking"), ISBLANK(Email))',
                            "Banks need email.")
    org.add_validation_rule("Account", "Phone_Needed", "ISBLANK(Phone)", "Phone!")
    org.add_validation_rule("Account", "Employees_Positive", "NumberOfEmployees < 1",
                            "Employees!", field="NumberOfEmployees")
    df = pd.DataFrame({"customExtIdField__c": ["a", "b", "c"], "Name": ["A", "B", "C"],
                       "NumberOfEmployees": pd.array([0, None, 5], dtype="Int64")})
    problems = sfb.validate_df(df, "Account", "customExtIdField__c", rules=True)
    notes = problems[problems["code"] == "VALIDATION_RULE_NOT_CHECKED"]
    text = "\n".join(notes["message"])
    assert "Name_Fixed was not checked: it compares with the stored record" in text
    assert "Phone_Needed was not checked: it reads Phone, which the frame does not send" in text
    assert "Employees_Positive was not checked on 1 row whose" in text
    assert (notes["severity"] == "warning").all()
    assert problems.loc[problems["code"] == CODE, "position"].tolist() == [0]
    # on insert the same rules are decided: ISCHANGED is false on a new record
    inserted = sfb.validate_df(df.drop(columns="customExtIdField__c"), "Account",
                               operation="insert", rules=True)
    assert sorted(inserted.loc[inserted["code"] == CODE, "position"].tolist()) == [0, 1, 2]
    contacts = sfb.validate_df(pd.DataFrame({"LastName": ["x"]}), "Contact",
                               operation="insert", rules=True)
    assert "it reads the parent record (Account.Industry)" in "".join(contacts["message"])


def test_formulas_outside_the_subset_are_skipped_not_guessed(client, org):
    from sfbulk_nb import rules
    df = pd.DataFrame({"Name": ["a"]})
    found = [rules.Rule("Odd", "ISNUMBER(Name)", "m")]
    checked = sfb.api.plan_stage.inspect(client, df, "Account", "insert").checked
    blocks = rules.check_rules(checked, client.describe("Account"), "insert", found)
    assert [b.code for b in blocks] == ["VALIDATION_RULE_NOT_CHECKED"]
    assert "function ISNUMBER() is not supported" in blocks[0].reason


def test_a_load_with_rules_true_stops_before_sending(client, org):
    add_account_rules(org)
    # k1's Industry is blank: an upsert may update a record whose stored Industry counts,
    # so that rule is not decided for it; k3 and k5 break rules whatever is stored.
    with pytest.raises(errors.ValidationError, match="Test accounts are not allowed"):
        sfb.upsert_df(FRAME, "Account", "customExtIdField__c", rules=True, progress=False)
    plan = sfb.dry_run(FRAME, "Account", "upsert", "customExtIdField__c", rules=True,
                       on_invalid="skip")
    assert plan.rows_to_send == 4


def test_rules_fetched_from_one_org_are_stored_in_another(client, org):
    """What an import of a real org's shape does: fetch, then store what can be run."""
    from sfbulk_nb.localorg import LocalOrg
    add_account_rules(org)
    odd = sfb.rules.Rule("Odd", "ISNUMBER(Name)", "not a number", active=True)
    with LocalOrg() as other:
        fetched = sfb.fetch_rules(client, "Account")
        with pytest.warns(UserWarning, match="Odd.*ISNUMBER"):
            skipped = other.add_validation_rules("Account", [*fetched, odd])
        assert [name for name, _ in skipped] == ["Odd"]
        assert [r.name for r in other.validation_rules("Account")] == [r.name for r in fetched]
        # a second import replaces the rules of the same name
        assert other.add_validation_rules("Account", fetched) == []
        assert len(other.validation_rules("Account")) == 3
        res = sfb.insert_df(FRAME, "Account", org=sfb.connect(other), progress=False)
        refused = res.frame.loc[res.frame["sf_status"] == "failed", "customExtIdField__c"]
        assert set(refused) == set(VIOLATING)


def test_update_df_meets_ischanged_and_priorvalue_rules(client, org):
    created = sfb.insert_df(pd.DataFrame({"Name": ["A", "B", "C"],
                                          "NumberOfEmployees": [10, 10, 10]}),
                            "Account", progress=False)
    ids = created.frame["sf_id"].tolist()
    org.add_validation_rule("Account", "Name_Fixed", "ISCHANGED(Name)", "Name cannot change.",
                            field="Name")
    org.add_validation_rule("Account", "No_Shrinking",
                            "PRIORVALUE(NumberOfEmployees) > NumberOfEmployees",
                            "Employees cannot go down.", field="NumberOfEmployees")
    df = pd.DataFrame({"Id": ids, "Name": ["A", "B2", "C"],
                       "NumberOfEmployees": [11, 10, 9]})
    problems = sfb.validate_df(df, "Account", operation="update", rules=True)
    assert not (problems["code"] == CODE).any()  # only the org knows the stored values
    assert problems["message"].str.contains("compares with the stored record").sum() == 2
    res = sfb.update_df(df, "Account", progress=False)
    frame = res.frame
    assert frame["sf_status"].tolist() == ["updated", "failed", "failed"]
    assert frame["sf_error_message"].tolist()[1:] == ["Name cannot change.",
                                                      "Employees cannot go down."]
