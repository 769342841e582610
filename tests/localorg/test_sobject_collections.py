"""sObject Collections over HTTP: create, update, retrieve and delete up to 200 records,
per-record results in order, allOrNone rolling back."""
from __future__ import annotations

ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled "
               "back because not all records were valid and the request was using AllOrNone "
               "header", "fields": []}


def account(name=None, **fields):
    record = {"attributes": {"type": "Account"}, **fields}
    if name is not None:
        record["Name"] = name
    return record


def count(api, obj="Account") -> int:
    return api.request("GET", "/query", params={"q": f"SELECT COUNT() FROM {obj}"}
                       ).json()["totalSize"]


def test_composite_lists_sobjects(api):
    assert api.request("GET", "/composite").json() == {
        "sobjects": "/services/data/v66.0/composite/sobjects"}


def test_create_mixed_types_in_order_with_partial_success(api):
    body = {"allOrNone": False, "records": [
        account("A1"), account(Industry="Banking"),
        {"attributes": {"type": "Contact"}, "LastName": "Lovelace"}, account("A2")]}
    r = api.request("POST", "/composite/sobjects", json=body)
    assert r.status_code == 200, r.text
    results = r.json()
    assert [x["success"] for x in results] == [True, False, True, True]
    assert results[1] == {"success": False, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Name]",
        "fields": ["Name"]}]}
    assert results[0]["errors"] == [] and results[0]["id"].startswith("001")
    assert results[2]["id"].startswith("003")
    assert api.record("Account", results[3]["id"])["Name"] == "A2"
    assert (count(api), count(api, "Contact")) == (2, 1)


def test_all_or_none_rolls_every_record_back(api):
    body = {"allOrNone": True, "records": [
        account("A1"), {"attributes": {"type": "Contact"}, "LastName": "Kept?"},
        account("A2", Industry="Not one")]}
    results = api.request("POST", "/composite/sobjects", json=body).json()
    assert results[0] == {"success": False, "errors": [ROLLED_BACK]}
    assert results[1] == {"success": False, "errors": [ROLLED_BACK]}
    assert results[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert (count(api), count(api, "Contact")) == (0, 0)
    # The same records without the bad one all commit.
    ok = api.request("POST", "/composite/sobjects",
                     json={"allOrNone": True, "records": body["records"][:2]}).json()
    assert [x["success"] for x in ok] == [True, True]
    assert (count(api), count(api, "Contact")) == (1, 1)


def test_update_retrieve_and_delete(api):
    created = api.request("POST", "/composite/sobjects",
                          json={"records": [account("U1"), account("U2")]}).json()
    ids = [x["id"] for x in created]
    r = api.request("PATCH", "/composite/sobjects", json={"allOrNone": False, "records": [
        account("U1 renamed", id=ids[0]), account(None, id=ids[1], Name=None),
        account("No id")]})
    assert r.status_code == 200
    results = r.json()
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"

    missing = "001000000000000AAA"
    got = api.request("GET", "/composite/sobjects/Account",
                      params={"ids": ",".join([ids[0], missing, ids[1]]),
                              "fields": "Id,Name"})
    assert got.status_code == 200
    first, none, second = got.json()
    assert none is None
    assert first == {"attributes": {"type": "Account",
                                    "url": f"/services/data/v66.0/sobjects/Account/{ids[0]}"},
                     "Id": ids[0], "Name": "U1 renamed"}
    assert second["Name"] == "U2"
    posted = api.request("POST", "/composite/sobjects/Account",
                         json={"ids": [ids[1]], "fields": ["Name"]}).json()
    assert [x["Name"] for x in posted] == ["U2"]
    assert api.request("GET", "/composite/sobjects/Account",
                       params={"ids": ids[0]}).status_code == 400
    assert api.request("GET", "/composite/sobjects/Account",
                       params={"ids": ids[0], "fields": "Nope"}).status_code == 400

    r = api.request("DELETE", "/composite/sobjects",
                    params={"ids": f"{ids[0]},{ids[0][:15]}x,{ids[1]}", "allOrNone": "false"})
    assert r.status_code == 200
    deleted = r.json()
    assert deleted[0] == {"id": ids[0], "success": True, "errors": []}
    assert deleted[1]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert deleted[2]["success"] is True
    assert count(api) == 0


def test_delete_all_or_none_and_deleted_records(api):
    ids = [x["id"] for x in api.request("POST", "/composite/sobjects", json={
        "records": [account("D1"), account("D2")]}).json()]
    assert api.request("DELETE", f"/sobjects/Account/{ids[1]}").status_code == 204
    results = api.request("DELETE", "/composite/sobjects",
                          params={"ids": ",".join(ids), "allOrNone": "true"}).json()
    assert results[0] == {"success": False, "errors": [ROLLED_BACK]}
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert count(api) == 1


def test_request_limits(api):
    too_many = {"records": [account(f"N{i}") for i in range(201)]}
    r = api.request("POST", "/composite/sobjects", json=too_many)
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    untyped = api.request("POST", "/composite/sobjects", json={"records": [{"Name": "x"}]})
    assert untyped.status_code == 400
    eleven_chunks = {"records": [account("A") if i % 2 else
                                 {"attributes": {"type": "Contact"}, "LastName": "C"}
                                 for i in range(11)]}
    assert api.request("POST", "/composite/sobjects", json=eleven_chunks).status_code == 400
    assert count(api) == 0
    # One request, one API call, however many records.
    r = api.request("POST", "/composite/sobjects", json={"records": [account("x")] * 200})
    used = int(r.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0])
    assert [x["success"] for x in r.json()] == [True] * 200
    r = api.request("GET", "/limits")
    assert int(r.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0]) == used + 1
