"""REST sObject writes over HTTP: create, update, delete, upsert by external id, with the
row checks ingest jobs make and Salesforce's REST shapes."""
from __future__ import annotations

import pytest


def ext_key(value: str) -> str:
    return f"/sobjects/Account/customExtIdField__c/{value}"


@pytest.fixture
def rules_org(org):
    yield org
    for rule in org.validation_rules():
        org.remove_validation_rule(rule.sobject, rule.name)


def test_create_read_update_delete_one_account(api, org):
    r = api.request("POST", "/sobjects/Account",
                    json={"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 12,
                          "AnnualRevenue": 1500.4, "Active__c": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "success", "errors"}
    assert body["success"] is True and body["errors"] == []
    rid = body["id"]
    assert len(rid) == 18 and rid.startswith("001")
    record = api.record("Account", rid)
    assert (record["Name"], record["Industry"], record["NumberOfEmployees"],
            record["AnnualRevenue"], record["Active__c"]) == ("Acme", "Banking", 12, 1500, True)
    assert record["OwnerId"] == org.user_id and record["CreatedById"] == org.user_id

    r = api.request("PATCH", f"/sobjects/Account/{rid}", json={"Industry": None, "Name": "Acme 2"})
    assert r.status_code == 204 and r.content == b""
    record = api.record("Account", rid)
    assert (record["Name"], record["Industry"], record["NumberOfEmployees"]) == ("Acme 2", None, 12)

    r = api.request("DELETE", f"/sobjects/Account/{rid[:15]}")
    assert r.status_code == 204
    gone = api.request("GET", f"/sobjects/Account/{rid}")
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    again = api.request("DELETE", f"/sobjects/Account/{rid}")
    assert again.status_code == 404
    assert again.json() == [{"errorCode": "ENTITY_IS_DELETED", "message": "entity is deleted"}]
    patch_deleted = api.request("PATCH", f"/sobjects/Account/{rid}", json={"Name": "x"})
    assert patch_deleted.status_code == 404


def test_create_errors_are_salesforces_error_arrays(api):
    cases = [
        ({"Industry": "Banking"}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]",
         ["Name"]),
        ({}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]),
        ({"Name": "x", "Industry": "Not an industry"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
         None, ["Industry"]),
        ({"Name": "x", "NumberOfEmployees": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", None,
         ["NumberOfEmployees"]),
        ({"Name": "x", "ParentId": "001000000000000AAA"}, "INVALID_CROSS_REFERENCE_KEY",
         "invalid cross reference id", ["ParentId"]),
        ({"Name": "x", "CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         None, ["CreatedDate"]),
        ({"Name": "x", "Id": "001000000000000AAA"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         "cannot specify Id in an insert call", ["Id"]),
    ]
    for body, code, message, fields in cases:
        r = api.request("POST", "/sobjects/Account", json=body)
        assert r.status_code == 400, (body, r.text)
        [error] = r.json()
        assert set(error) == {"message", "errorCode", "fields"}
        assert (error["errorCode"], error["fields"]) == (code, fields), body
        if message:
            assert error["message"] == message
    assert api.request("GET", "/query", params={"q": "SELECT COUNT() FROM Account"}
                       ).json()["totalSize"] == 0


def test_unknown_fields_objects_and_bodies(api):
    r = api.request("POST", "/sobjects/Account", json={"Name": "x", "Nope__c": 1})
    assert r.status_code == 400
    assert r.json() == [{"errorCode": "INVALID_FIELD",
                         "message": "No such column 'Nope__c' on sobject of type Account"}]
    assert api.request("POST", "/sobjects/Nope", json={"Name": "x"}).status_code == 404
    bad = api.request("POST", "/sobjects/Account", data=b"[1]",
                      headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    missing = api.request("PATCH", "/sobjects/Account/001000000000000AAA", json={"Name": "x"})
    assert missing.status_code == 404 and missing.json()[0]["errorCode"] == "NOT_FOUND"
    assert api.request("DELETE", "/sobjects/Account/garbage").status_code == 404


def test_update_keeps_unnamed_fields_and_checks_like_ingest(api):
    rid = api.request("POST", "/sobjects/Account",
                      json={"Name": "Keep", "Industry": "Banking"}).json()["id"]
    r = api.request("PATCH", f"/sobjects/Account/{rid}", json={"Name": None})
    assert r.status_code == 400
    assert r.json() == [{"message": "Required fields are missing: [Name]",
                         "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Name"]}]
    r = api.request("PATCH", f"/sobjects/Account/{rid}", json={"Id": "001000000000009AAA",
                                                                "Name": "x"})
    assert r.status_code == 400
    assert api.record("Account", rid)["Name"] == "Keep"


def test_relationship_by_external_id_in_a_create(api):
    parent = api.request("POST", "/sobjects/Account",
                         json={"Name": "Parent", "customExtIdField__c": "P-1"}).json()["id"]
    r = api.request("POST", "/sobjects/Contact",
                    json={"LastName": "Lovelace", "Account": {"customExtIdField__c": "P-1"}})
    assert r.status_code == 201, r.text
    assert api.record("Contact", r.json()["id"])["AccountId"] == parent
    r = api.request("POST", "/sobjects/Contact",
                    json={"LastName": "Nobody", "Account": {"customExtIdField__c": "P-404"}})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"


def test_upsert_by_external_id_creates_then_updates(api):
    r = api.request("PATCH", ext_key("K-1"), json={"Name": "First"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created == {"id": created["id"], "success": True, "errors": [], "created": True}
    r = api.request("PATCH", ext_key("K-1"), json={"Name": "Second"})
    assert r.status_code == 200
    assert r.json() == {"id": created["id"], "success": True, "errors": [], "created": False}
    assert api.record("Account", created["id"])["Name"] == "Second"
    # Before API 46.0 an update answers 204 and a create has no `created`.
    old = api.request("PATCH", f"{api.org.instance_url}/services/data/v45.0{ext_key('K-1')}",
                      json={"Name": "Third"})
    assert old.status_code == 204
    new = api.request("PATCH", f"{api.org.instance_url}/services/data/v45.0{ext_key('K-2')}",
                      json={"Name": "Other"})
    assert new.status_code == 201 and "created" not in new.json()
    # The key in the body may repeat the URL's value, not contradict it.
    same = api.request("PATCH", ext_key("K-1"), json={"Name": "4", "customExtIdField__c": "K-1"})
    assert same.status_code == 200
    assert api.request("PATCH", ext_key("K-1"), json={"customExtIdField__c": "K-9"}
                       ).status_code == 400
    bad = api.request("PATCH", ext_key("K-3"), json={"Industry": "Banking"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert api.request("PATCH", "/sobjects/Account/Industry/x", json={}).status_code == 404


def test_upsert_and_delete_with_several_matches_answer_300(api):
    api.run("Account", "insert", "Name,customExtIdField__c\nA,DUP\nB,DUP\n")
    for method in ("PATCH", "DELETE"):
        r = api.request(method, ext_key("DUP"), json={"Name": "C"})
        assert r.status_code == 300
        assert len(r.json()) == 2
        assert all(u.startswith("/services/data/v66.0/sobjects/Account/001") for u in r.json())


def test_delete_by_external_id(api):
    rid = api.request("PATCH", ext_key("GONE"), json={"Name": "Gone"}).json()["id"]
    assert api.request("DELETE", ext_key("GONE")).status_code == 204
    assert api.request("GET", f"/sobjects/Account/{rid}").status_code == 404
    assert api.request("DELETE", ext_key("NEVER")).status_code == 404


def test_validation_rules_apply_to_rest_writes(api, rules_org):
    rules_org.add_validation_rule("Account", "No_Test_Names", "BEGINS(Name, 'TEST')",
                                  "Test accounts are not allowed.", field="Name")
    r = api.request("POST", "/sobjects/Account", json={"Name": "TEST one"})
    assert r.status_code == 400
    assert r.json() == [{"message": "Test accounts are not allowed.",
                         "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Name"]}]
    rid = api.request("POST", "/sobjects/Account", json={"Name": "Fine"}).json()["id"]
    r = api.request("PATCH", f"/sobjects/Account/{rid}", json={"Name": "TEST two"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert api.record("Account", rid)["Name"] == "Fine"


def test_each_write_counts_one_api_request(api, org):
    org.set_limits({"DailyApiRequests": 3})
    try:
        first = api.request("POST", "/sobjects/Account", json={"Name": "One"})
        assert first.headers["Sforce-Limit-Info"] == "api-usage=1/3"
        rid = first.json()["id"]
        assert api.request("PATCH", f"/sobjects/Account/{rid}", json={"Name": "Two"}
                           ).headers["Sforce-Limit-Info"] == "api-usage=2/3"
        assert api.request("DELETE", f"/sobjects/Account/{rid}").status_code == 204
        refused = api.request("POST", "/sobjects/Account", json={"Name": "Three"})
        assert refused.status_code == 403
        assert refused.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        org.set_limits({"DailyApiRequests": 100_000})
