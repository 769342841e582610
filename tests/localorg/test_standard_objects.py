"""The shipped standard objects over HTTP: describes as Salesforce gives them (picklists,
compound fields, polymorphic lookups, key prefixes), loads and queries of each object,
polymorphic relationship columns, and the price book rules."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

import sfbulk_nb as sfb

PREFIXES = {"Lead": "00Q", "Case": "500", "Task": "00T", "Event": "00U", "Campaign": "701",
            "CampaignMember": "00v", "Product2": "01t", "Pricebook2": "01s",
            "PricebookEntry": "01u", "OpportunityLineItem": "00k"}


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def describe(api, obj: str) -> dict:
    r = api.request("GET", f"/sobjects/{obj}/describe")
    assert r.status_code == 200, r.text
    return r.json()


def fields(api, obj: str) -> dict[str, dict]:
    return {f["name"]: f for f in describe(api, obj)["fields"]}


def values(f: dict) -> list[str]:
    return [v["value"] for v in f["picklistValues"]]


def test_every_new_object_is_described_with_its_key_prefix(api):
    listed = {o["name"]: o["keyPrefix"]
              for o in api.request("GET", "/sobjects").json()["sobjects"]}
    for obj, prefix in PREFIXES.items():
        assert listed.get(obj) == prefix, obj
        assert describe(api, obj)["keyPrefix"] == prefix


def test_standard_picklist_values_are_salesforces(api):
    account = fields(api, "Account")
    industry = values(account["Industry"])
    assert "Manufacturing" in industry
    assert industry.index("Manufacturing") == industry.index("Machinery") + 1
    assert values(account["Rating"]) == ["Hot", "Warm", "Cold"]
    assert values(account["Ownership"]) == ["Public", "Private", "Subsidiary", "Other"]
    assert "Customer - Direct" in values(account["Type"])
    opportunity = fields(api, "Opportunity")
    assert values(opportunity["ForecastCategoryName"]) == [
        "Omitted", "Pipeline", "Best Case", "Commit", "Closed"]
    assert opportunity["ForecastCategoryName"]["restrictedPicklist"] is True
    assert values(fields(api, "Contact")["Salutation"]) == ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]
    lead = fields(api, "Lead")
    assert lead["Status"]["defaultValue"] == "Open - Not Contacted"
    assert values(lead["Industry"]) == industry


def test_compound_fields_are_described_as_salesforce_does(api):
    account = fields(api, "Account")
    billing = account["BillingAddress"]
    assert billing["type"] == "address" and billing["soapType"] == "urn:address"
    assert not billing["createable"] and not billing["updateable"]
    parts = [n for n, f in account.items() if f["compoundFieldName"] == "BillingAddress"]
    assert parts == ["BillingStreet", "BillingCity", "BillingState", "BillingPostalCode",
                     "BillingCountry", "BillingLatitude", "BillingLongitude",
                     "BillingGeocodeAccuracy"]
    assert fields(api, "Contact")["MailingAddress"]["type"] == "address"
    assert fields(api, "Lead")["Address"]["type"] == "address"
    assert {n for n, f in fields(api, "Contact").items()
            if f["compoundFieldName"] == "Name"} == {"FirstName", "LastName", "Salutation"}


def test_polymorphic_lookups_are_described(api):
    task = fields(api, "Task")
    who, what = task["WhoId"], task["WhatId"]
    assert (who["referenceTo"], who["relationshipName"], who["polymorphicForeignKey"]) == (
        ["Contact", "Lead"], "Who", True)
    assert what["relationshipName"] == "What" and what["polymorphicForeignKey"] is True
    assert {"Account", "Opportunity", "Case", "Campaign"} <= set(what["referenceTo"])
    assert fields(api, "Event")["WhoId"]["referenceTo"] == ["Contact", "Lead"]
    assert fields(api, "Lead")["OwnerId"]["referenceTo"] == ["Group", "User"]


def test_compound_fields_refused_in_bulk_ingest(api):
    info = api.run("Account", "insert", "Name,BillingAddress\nAcme,1 Main St\n")
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (1, 1)
    failed = rows(api.results(info["id"], "failedResults"))
    assert failed[0]["sf__Error"].startswith(
        "INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update fields: BillingAddress.")


def test_compound_fields_in_queries(api, org):
    api.run("Account", "insert", "Name,BillingCity,BillingPostalCode\nAcme,Paris,75001\nBare,,\n")
    r = api.request("GET", "/query", params={
        "q": "SELECT Name, BillingAddress FROM Account ORDER BY Name"})
    assert r.status_code == 200, r.text
    acme, bare = r.json()["records"]
    assert acme["BillingAddress"] == {
        "street": None, "city": "Paris", "state": None, "postalCode": "75001",
        "country": None, "latitude": None, "longitude": None, "geocodeAccuracy": None}
    assert bare["BillingAddress"] is None
    r = api.request("POST", "/jobs/query", json={
        "operation": "query", "query": "SELECT Name, BillingAddress FROM Account"})
    assert r.status_code == 400
    assert r.json()[0]["errorCode"] == "FUNCTIONALITY_NOT_ENABLED"


def test_standard_price_book_exists_in_a_new_org(api):
    r = api.request("GET", "/query", params={
        "q": "SELECT Name, IsStandard, IsActive FROM Pricebook2"})
    records = r.json()["records"]
    assert [(x["Name"], x["IsStandard"]) for x in records] == [("Standard Price Book", True)]


@pytest.fixture
def client(org):
    return sfb.connect(org)


def options(**extra):
    return dict(progress=False, **extra)


def inserted(client, df, obj):
    res = sfb.insert_df(df, obj, org=client, **options())
    assert list(res.frame["sf_status"]) == ["created"] * len(df), res.errors
    return list(res.frame["sf_id"])


def test_every_new_object_inserts_and_queries(client):
    account, = inserted(client, pd.DataFrame({"Name": ["Acme"], "customExtIdField__c": ["A1"]}),
                        "Account")
    contact, = inserted(client, pd.DataFrame({"LastName": ["Lovelace"], "FirstName": ["Ada"],
                                              "Salutation": ["Dr."]}), "Contact")
    lead, = inserted(client, pd.DataFrame({"LastName": ["Hopper"], "Company": ["Navy"],
                                           "Email": ["grace@example.com"]}), "Lead")
    inserted(client, pd.DataFrame({"Subject": ["Broken"], "AccountId": [account]}), "Case")
    inserted(client, pd.DataFrame({"Subject": ["Call"], "WhoId": [contact],
                                   "WhatId": [account]}), "Task")
    inserted(client, pd.DataFrame({"Subject": ["Meet"], "DurationInMinutes": [30],
                                   "ActivityDateTime": ["2026-01-05T10:00:00.000Z"],
                                   "WhoId": [lead]}), "Event")
    campaign, = inserted(client, pd.DataFrame({"Name": ["Spring"]}), "Campaign")
    inserted(client, pd.DataFrame({"CampaignId": [campaign], "LeadId": [lead]}),
             "CampaignMember")
    product, = inserted(client, pd.DataFrame({"Name": ["Widget"]}), "Product2")
    standard = sfb.query_df("SELECT Id FROM Pricebook2 WHERE IsStandard = true",
                            org=client)["Id"].iloc[0]
    entry, = inserted(client, pd.DataFrame({"Pricebook2Id": [standard], "Product2Id": [product],
                                            "UnitPrice": [10.0], "IsActive": [True]}),
                      "PricebookEntry")
    opportunity, = inserted(client, pd.DataFrame({"Name": ["Deal"], "StageName": ["Prospecting"],
                                                  "CloseDate": ["2026-06-30"]}), "Opportunity")
    inserted(client, pd.DataFrame({"OpportunityId": [opportunity], "PricebookEntryId": [entry],
                                   "Quantity": [2.0], "TotalPrice": [20.0]}),
             "OpportunityLineItem")
    for obj, prefix in PREFIXES.items():
        found = sfb.query_df(f"SELECT Id FROM {obj}", org=client)
        assert len(found) >= 1 and found["Id"].str.startswith(prefix).all(), obj
    task = sfb.query_df("SELECT Status, Priority, Who.Name, What.Name FROM Task", org=client)
    assert task.iloc[0].to_dict() == {"Status": "Not Started", "Priority": "Normal",
                                      "Who.Name": "Ada Lovelace", "What.Name": "Acme"}
    lead_status = sfb.query_df("SELECT Status FROM Lead", org=client)["Status"].iloc[0]
    assert lead_status == "Open - Not Contacted"


def test_polymorphic_relationship_columns_resolve_parents_by_type(client):
    inserted(client, pd.DataFrame({"Name": ["Acme", "Globex"],
                                   "customExtIdField__c": ["A1", "G1"]}), "Account")
    inserted(client, pd.DataFrame({"LastName": ["Lovelace"], "Email": ["ada@example.com"]}),
             "Contact")
    inserted(client, pd.DataFrame({"LastName": ["Hopper"], "Company": ["Navy"],
                                   "Email": ["grace@example.com"]}), "Lead")
    df = pd.DataFrame({"Subject": ["Call Ada", "Mail Grace", "Nobody", "Wrong type"],
                       "Account:What.customExtIdField__c": ["A1", "G1", "ZZ", "A1"],
                       "Contact:Who.Email": ["ada@example.com", None, None,
                                             "grace@example.com"]})
    df2 = pd.DataFrame({"Subject": ["Lead task"], "Lead:Who.Email": ["grace@example.com"]})
    res = sfb.insert_df(df, "Task", org=client, **options(on_invalid="send"))
    assert list(res.frame["sf_status"]) == ["created", "created", "failed", "failed"]
    assert res.frame["sf_error_message"].iloc[2] == (
        "Foreign key external ID: ZZ not found for field customExtIdField__c in entity Account")
    # grace@example.com is a Lead's e-mail, not a Contact's: no Contact parent.
    assert res.frame["sf_error_code"].iloc[3] == "INVALID_FIELD"
    assert "in entity Contact" in res.frame["sf_error_message"].iloc[3]
    inserted(client, df2, "Task")
    tasks = sfb.query_df("SELECT Subject, What.Name, Who.Name, WhoId FROM Task ORDER BY Subject",
                         org=client)
    got = {r.Subject: (r[1], r[2], str(r.WhoId)[:3]) for r in tasks.itertuples(index=False)}
    assert got["Call Ada"] == ("Acme", "Lovelace", "003")
    assert got["Mail Grace"][0] == "Globex"
    assert got["Lead task"][2] == "00Q"


def test_polymorphic_header_errors_fail_the_job_as_salesforce_does(api):
    api.run("Account", "insert", "Name,customExtIdField__c\nAcme,A1\n")
    cases = {
        # relationship and type swapped: "Account" is read as Task's Account relationship
        "What:Account.customExtIdField__c":
            "InvalidBatch : type is not needed for non polymorphic foreign key references: "
            "Account",
        "What:Nope.customExtIdField__c": "InvalidBatch : Unable to find relationship: Nope",
        "What.customExtIdField__c": "InvalidBatch : Field name not found : "
                                    "What.customExtIdField__c",
    }
    for header, message in cases.items():
        info = api.run("Task", "insert", f"Subject,{header}\nx,A1\n")
        assert (info["state"], info["errorMessage"]) == ("Failed", message), header


def test_validate_names_the_fix_for_an_inverted_polymorphic_column(client):
    df = pd.DataFrame({"Subject": ["x"], "What:Account.customExtIdField__c": ["A1"]})
    problems = sfb.validate_df(df, "Task", operation="insert", org=client)
    messages = " ".join(problems["message"])
    assert "write Account:What.customExtIdField__c" in messages
    assert "df.rename(columns={'What:Account.customExtIdField__c': " \
           "'Account:What.customExtIdField__c'})" in " ".join(problems["hint"])
    no_type = sfb.validate_df(pd.DataFrame({"Subject": ["x"], "Who.Email": ["a@b.co"]}), "Task",
                              operation="insert", org=client)
    assert "as in 'Contact:Who.Email'" in " ".join(no_type["message"])
    ok = sfb.validate_df(pd.DataFrame({"Subject": ["x"], "Lead:Who.Email": ["a@b.co"]}), "Task",
                         operation="insert", org=client)
    assert not len(ok[ok["severity"] == "error"])


def test_price_book_entries_need_the_standard_price_first(client):
    product, other = inserted(client, pd.DataFrame({"Name": ["Widget", "Gadget"]}), "Product2")
    custom, = inserted(client, pd.DataFrame({"Name": ["Partners"], "IsActive": [True]}),
                       "Pricebook2")
    standard = sfb.query_df("SELECT Id FROM Pricebook2 WHERE IsStandard = true",
                            org=client)["Id"].iloc[0]
    df = pd.DataFrame({"Pricebook2Id": [custom, standard, custom, standard],
                       "Product2Id": [product, product, product, product],
                       "UnitPrice": [8.0, 10.0, 9.0, 11.0]})
    res = sfb.insert_df(df, "PricebookEntry", org=client, **options(on_invalid="send"))
    assert list(res.frame["sf_status"]) == ["failed", "created", "created", "failed"]
    assert list(res.frame["sf_error_code"][[0, 3]]) == ["STANDARD_PRICE_NOT_DEFINED",
                                                        "DUPLICATE_VALUE"]
    assert res.frame["sf_error_message"].iloc[0] == "No standard price defined for this product"
    res = sfb.insert_df(pd.DataFrame({"Pricebook2.Name": ["Partners"], "Product2Id": [other],
                                      "UnitPrice": [1.0]}), "PricebookEntry", org=client,
                        **options(on_invalid="send"))
    assert res.frame["sf_error_code"].iloc[0] == "STANDARD_PRICE_NOT_DEFINED"


def test_compound_fields_in_a_retrieved_record(api):
    info = api.run("Account", "insert", "Name,BillingCity\nAcme,Paris\n")
    record_id = rows(api.results(info["id"], "successfulResults"))[0]["sf__Id"]
    record = api.record("Account", record_id)
    assert record["BillingAddress"]["city"] == "Paris" and record["ShippingAddress"] is None
    assert list(api.request("GET", f"/sobjects/Account/{record_id}",
                            params={"fields": "BillingAddress"}).json()) == [
        "attributes", "BillingAddress"]
