"""REST /query and /queryAll over HTTP: Salesforce's JSON shape, paging, errors."""
from __future__ import annotations


def q(api, soql: str, resource: str = "query", **kw):
    return api.request("GET", f"/{resource}", params={"q": soql}, **kw)


def test_records_with_attributes_and_nested_parents(api, org):
    parent = api.run("Account", "insert", "Name,customExtIdField__c\nParent,P1\n")
    api.run("Contact", "insert",
            "LastName,Email,Account.customExtIdField__c\nLovelace,ada@example.com,P1\nOrphan,,\n")
    r = q(api, "SELECT LastName, Account.Name, Account.Owner.Email FROM Contact ORDER BY LastName")
    assert r.status_code == 200
    body = r.json()
    assert body["totalSize"] == 2 and body["done"] is True and "nextRecordsUrl" not in body
    first, second = body["records"]
    assert first["attributes"]["type"] == "Contact"
    assert first["attributes"]["url"].startswith("/services/data/v66.0/sobjects/Contact/003")
    assert first["LastName"] == "Lovelace"
    assert first["Account"]["Name"] == "Parent"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert first["Account"]["Owner"]["Email"] == "analyst@sfbulk-nb.local"
    assert second["LastName"] == "Orphan" and second["Account"] is None
    assert parent["numberRecordsProcessed"] == 1


def test_organization_query_the_sf_cli_makes(api, org):
    r = q(api, "SELECT Name, InstanceName, IsSandbox, TrialExpirationDate, NamespacePrefix, "
               "OrganizationType FROM Organization")
    body = r.json()
    assert body["totalSize"] == 1
    record = body["records"][0]
    assert record["IsSandbox"] is False and record["TrialExpirationDate"] is None
    assert record["attributes"]["url"].endswith(org.org_id)


def test_count_and_paging(api):
    api.run("Account", "insert", "Name\n" + "".join(f"A{i:04d}\n" for i in range(450)))
    count = q(api, "SELECT COUNT() FROM Account").json()
    assert count == {"totalSize": 450, "done": True, "records": []}
    page = q(api, "SELECT Name FROM Account ORDER BY Name",
             headers={"Sforce-Query-Options": "batchSize=200"}).json()
    names = [r["Name"] for r in page["records"]]
    assert page["done"] is False and len(names) == 200
    while not page["done"]:
        page = api.request("GET", page["nextRecordsUrl"].replace("/services/data/v66.0", ""),
                           headers={"Sforce-Query-Options": "batchSize=200"}).json()
        names += [r["Name"] for r in page["records"]]
    assert names == [f"A{i:04d}" for i in range(450)]


def test_query_all_includes_deleted(api):
    info = api.run("Account", "insert", "Name\nGone\nKept\n")
    rows = api.results(info["id"], "successfulResults").splitlines()[1:]
    gone = next(r.split(",")[0].strip('"') for r in rows if "Gone" in r)
    api.run("Account", "delete", f"Id\n{gone}\n")
    assert q(api, "SELECT Name FROM Account").json()["totalSize"] == 1
    everything = q(api, "SELECT Name, IsDeleted FROM Account ORDER BY Name", "queryAll").json()
    assert [(r["Name"], r["IsDeleted"]) for r in everything["records"]] == [
        ("Gone", True), ("Kept", False)]


def test_errors_are_salesforce_shaped(api):
    bad_type = q(api, "SELECT Id FROM ScratchOrgInfo limit 1")
    assert bad_type.status_code == 400 and bad_type.json()[0]["errorCode"] == "INVALID_TYPE"
    malformed = q(api, "SELECT Name FRM Account")
    assert malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:" in malformed.json()[0]["message"]
    assert q(api, "SELECT Bogus FROM Account").json()[0]["errorCode"] == "INVALID_FIELD"
    assert api.request("GET", "/query/nonsense-10").json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
