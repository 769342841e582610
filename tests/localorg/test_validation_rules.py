"""Validation rules in the local org: checked at add time, evaluated on ingest rows, and
listed by the Tooling API as Salesforce lists them."""
from __future__ import annotations

import csv
import io

import pytest

from sfbulk_nb.localorg.rules import RuleError


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture
def rules_org(org):
    yield org
    for rule in org.validation_rules():
        org.remove_validation_rule(rule.sobject, rule.name)


def failures(api, job_id) -> dict[str, str]:
    return {r["Name"]: r["sf__Error"] for r in rows(api.results(job_id, "failedResults"))}


def test_insert_rows_breaking_a_rule_fail_with_salesforces_error(api, rules_org):
    rules_org.add_validation_rule(
        "Account", "Revenue_Needs_Industry",
        "AND(AnnualRevenue > 1000000, ISBLANK(TEXT(Industry)))",
        "Big accounts need an industry.", field="Industry")
    rules_org.add_validation_rule("Account", "No_Test_Names", "BEGINS(Name, 'TEST')",
                                  "Test accounts are not allowed.")
    info = api.run("Account", "insert",
                   "Name,AnnualRevenue,Industry\n"
                   "Big,2000000,\n"
                   "BigOk,2000000,Banking\n"
                   "Small,10,\n"
                   "TEST one,10,\n")
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 2)
    assert failures(api, info["id"]) == {
        "Big": "FIELD_CUSTOM_VALIDATION_EXCEPTION:Big accounts need an industry.:Industry --",
        "TEST one": "FIELD_CUSTOM_VALIDATION_EXCEPTION:Test accounts are not allowed.:--",
    }
    assert {r["Name"] for r in rows(api.results(info["id"], "successfulResults"))} == {
        "BigOk", "Small"}


def test_other_errors_come_first_and_inactive_rules_do_nothing(api, rules_org):
    rules_org.add_validation_rule("Account", "Always", "TRUE", "never saved", active=False)
    rules_org.add_validation_rule("Account", "Short", "LEN(Name) < 3", "Name too short")
    info = api.run("Account", "insert", "Name,NumberOfEmployees\nab,x\nabc,1\nxy,2\n")
    errors = failures(api, info["id"])
    assert errors["ab"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD")
    assert errors["xy"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION:Name too short:--"
    assert "abc" not in errors


def test_update_sees_the_stored_record_ischanged_and_priorvalue(api, rules_org):
    info = api.run("Account", "insert",
                   "Name,NumberOfEmployees,customExtIdField__c\nA,10,a\nB,10,b\nC,10,c\nD,5,d\n")
    assert info["numberRecordsFailed"] == 0
    rules_org.add_validation_rule("Account", "No_Shrinking",
                                  "PRIORVALUE(NumberOfEmployees) > NumberOfEmployees",
                                  "Employees cannot go down.", field="NumberOfEmployees")
    rules_org.add_validation_rule("Account", "Name_Fixed", "AND(NOT(ISNEW()), ISCHANGED(Name))",
                                  "Name cannot change.", field="Name")
    # upsert: A shrinks, B keeps its count and only changes its phone (Name and
    # NumberOfEmployees come from the stored record), C renames itself, E is new.
    info = api.run("Account", "upsert",
                   "customExtIdField__c,Name,NumberOfEmployees,Phone\n"
                   "a,A,3,\nb,,,555\nc,C2,,\ne,E,1,\n",
                   externalIdFieldName="customExtIdField__c")
    failed = {r["customExtIdField__c"]: r["sf__Error"]
              for r in rows(api.results(info["id"], "failedResults"))}
    assert failed == {
        "a": "FIELD_CUSTOM_VALIDATION_EXCEPTION:Employees cannot go down.:NumberOfEmployees --",
        "c": "FIELD_CUSTOM_VALIDATION_EXCEPTION:Name cannot change.:Name --",
    }
    # #N/A clears the field: NULL > 5 is FALSE, so clearing is allowed.
    ok = rows(api.results(api.run("Account", "upsert", "customExtIdField__c,NumberOfEmployees\n"
                                  "d,#N/A\n", externalIdFieldName="customExtIdField__c")["id"],
                          "successfulResults"))
    assert [r["customExtIdField__c"] for r in ok] == ["d"]


def test_parent_fields_through_one_relationship(api, rules_org):
    info = api.run("Account", "insert",
                   "Name,Industry,customExtIdField__c\nBank,Banking,bank\nShop,Retail,shop\n")
    assert info["numberRecordsFailed"] == 0
    rules_org.add_validation_rule(
        "Contact", "Bank_Contacts_Need_Email",
        'AND(ISPICKVAL(Account.Industry, "Banking"), ISBLANK(Email))',
        "Contacts at banks need an email.", field="Email")
    info = api.run("Contact", "insert",
                   "LastName,Email,Account.customExtIdField__c\n"
                   "One,,bank\nTwo,two@example.com,bank\nThree,,shop\nFour,,\n")
    assert {r["LastName"]: r["sf__Error"] for r in rows(api.results(info["id"], "failedResults"))
            } == {"One": "FIELD_CUSTOM_VALIDATION_EXCEPTION:Contacts at banks need an email."
                         ":Email --"}


@pytest.mark.parametrize("args,message", [
    (("Account", "R", "ISNUMBER(Name)", "m"), "outside the supported subset: function "
                                             "ISNUMBER() is not supported"),
    (("Account", "R", "Nope__c > 1", "m"), "Field Nope__c does not exist"),
    (("Account", "R", "Owner.Manager.Name = 'x'", "m"), "more than one relationship hop"),
    (("Account", "R", "AND(TRUE", "m"), "is not valid: Syntax error"),
    (("Account", "R", "Industry = 'x'", "m"), "picklist field"),
    (("Account", "R", "TRUE", "m", "Nope__c"), "error display field 'Nope__c'"),
    (("Nothing__c", "R", "TRUE", "m"), "no object 'Nothing__c'"),
    (("Account", "bad name", "TRUE", "m"), "letters, digits and underscores"),
])
def test_rules_are_checked_when_added(rules_org, args, message):
    with pytest.raises(RuleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rules_org.add_validation_rule(*args)
    assert rules_org.validation_rules() == []


def test_a_rule_name_is_unique_per_object(rules_org):
    rules_org.add_validation_rule("Account", "R1", "TRUE", "m")
    with pytest.raises(RuleError, match="already has a validation rule named 'r1'"):
        rules_org.add_validation_rule("Account", "r1", "FALSE", "m")


def test_rules_survive_a_restart_of_the_org(tmp_path):
    from sfbulk_nb.localorg import LocalOrg
    path = tmp_path / "org.sqlite3"
    with LocalOrg(path) as first:
        first.add_validation_rule("Account", "Kept", "ISBLANK(Phone)", "Phone!", field="Phone")
    with LocalOrg(path) as second:
        (rule,) = second.validation_rules("account")
        assert (rule.name, rule.formula, rule.field, rule.active) == (
            "Kept", "ISBLANK(Phone)", "Phone", True)
        assert rule.id.startswith("03d") and len(rule.id) == 18


def tooling(api, soql):
    return api.request("GET", "/tooling/query", params={"q": soql})


def test_tooling_lists_rules_and_refuses_metadata_for_many_rows(api, rules_org):
    a = rules_org.add_validation_rule("Account", "Need_Phone", "ISBLANK(Phone)", "Phone!",
                                      field="Phone", description="why")
    rules_org.add_validation_rule("Account", "Off", "TRUE", "never", active=False)
    rules_org.add_validation_rule("Contact", "Need_Email", "ISBLANK(Email)", "Email!")

    r = tooling(api, "SELECT Id, ValidationName, Active, ErrorDisplayField, ErrorMessage, "
                     "EntityDefinition.QualifiedApiName FROM ValidationRule "
                     "WHERE EntityDefinition.QualifiedApiName = 'Account' AND Active = true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["size"], body["totalSize"], body["done"], body["entityTypeName"]) == (
        1, 1, True, "ValidationRule")
    assert body["records"] == [{
        "attributes": {"type": "ValidationRule",
                       "url": f"/services/data/v66.0/tooling/sobjects/ValidationRule/{a.id}"},
        "Id": a.id, "ValidationName": "Need_Phone", "Active": True, "ErrorDisplayField": "Phone",
        "ErrorMessage": "Phone!",
        "EntityDefinition": {"attributes": {
            "type": "EntityDefinition",
            "url": "/services/data/v66.0/tooling/sobjects/EntityDefinition/Account"},
            "QualifiedApiName": "Account"}}]

    many = tooling(api, "SELECT Id, Metadata FROM ValidationRule "
                        "WHERE EntityDefinition.QualifiedApiName = 'Account'")
    assert many.status_code == 400
    assert many.json() == [{"errorCode": "MALFORMED_QUERY", "message":
                            "When retrieving results with Metadata or FullName fields, the query "
                            "qualifications must specify no more than one row for retrieval. "
                            "Result size: 2"}]
    assert tooling(api, "SELECT FullName FROM ValidationRule").status_code == 400

    one = tooling(api, f"SELECT Id, FullName, Metadata FROM ValidationRule WHERE Id = '{a.id}'")
    assert one.status_code == 200, one.text
    (record,) = one.json()["records"]
    assert record["FullName"] == "Account.Need_Phone"
    assert record["Metadata"] == {
        "active": True, "description": "why", "errorConditionFormula": "ISBLANK(Phone)",
        "errorDisplayField": "Phone", "errorMessage": "Phone!", "shouldEvaluateOnClient": None,
        "urls": None}
    # a 15-character id finds the rule too
    assert tooling(api, f"SELECT Id FROM ValidationRule WHERE Id = '{a.id[:15]}'"
                   ).json()["size"] == 1


@pytest.mark.parametrize("soql,status,code", [
    ("SELECT Id FROM ApexClass", 400, "INVALID_TYPE"),
    ("SELECT Nope FROM ValidationRule", 400, "INVALID_FIELD"),
    ("SELECT Id FROM ValidationRule WHERE Id LIKE 'x'", 400, "MALFORMED_QUERY"),
    ("DELETE ValidationRule", 400, "MALFORMED_QUERY"),
])
def test_tooling_query_errors(api, rules_org, soql, status, code):
    r = tooling(api, soql)
    assert r.status_code == status and r.json()[0]["errorCode"] == code


def test_tooling_order_by_and_limit(api, rules_org):
    for name in ("Beta", "alpha", "Gamma"):
        rules_org.add_validation_rule("Account", name, "FALSE", "m")
    names = lambda soql: [r["ValidationName"] for r in tooling(api, soql).json()["records"]]  # noqa: E731
    assert names("SELECT ValidationName FROM ValidationRule ORDER BY ValidationName") == [
        "alpha", "Beta", "Gamma"]
    assert names("SELECT ValidationName FROM ValidationRule ORDER BY ValidationName DESC "
                 "LIMIT 2") == ["Gamma", "Beta"]
    # LIMIT 1 makes Metadata allowed: the query cannot return more than one row
    r = tooling(api, "SELECT Metadata FROM ValidationRule ORDER BY ValidationName LIMIT 1")
    assert r.status_code == 200 and r.json()["records"][0]["Metadata"]["errorMessage"] == "m"
