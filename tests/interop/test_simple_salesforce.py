"""simple-salesforce's bulk2 client, unmodified, against the local org.

simple-salesforce builds every URL with a hard-coded `https://`; the local org speaks plain
HTTP on 127.0.0.1, so the test points the client's base URL attributes at `http://`. That
is the only change: requests, paths, bodies and parsing are the library's own.
"""
from __future__ import annotations

import csv
import io

import pytest

simple_salesforce = pytest.importorskip("simple_salesforce")

N = 12_000  # more than one internal 10,000-record batch


@pytest.fixture
def sf(org):
    client = simple_salesforce.Salesforce(instance_url=org.instance_url,
                                          session_id=org.access_token, version="62.0")
    for attr in ("base_url", "bulk2_url", "bulk_url", "apex_url", "oauth2_url", "tooling_url"):
        setattr(client, attr, getattr(client, attr).replace("https://", "http://", 1))
    return client


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def accounts_in_org(org) -> dict[str, dict]:
    rows = org.store.query('SELECT Id, Name, customExtIdField__c, NumberOfEmployees, '
                           'BillingCity, IsDeleted FROM "sobj_Account"')
    return {r["Id"]: dict(r) for r in rows}


def test_bulk2_upsert_insert_update_delete_and_hard_delete(sf, org):
    records = [{"customExtIdField__c": f"EXT-{i:05d}", "Name": f"Account {i}",
                "NumberOfEmployees": str(i % 500), "BillingCity": f'City "{i % 7}", Ltd'}
               for i in range(N)]
    upserted = sf.bulk2.Account.upsert(records=records, external_id_field="customExtIdField__c",
                                       wait=0.1)
    assert [(r["numberRecordsProcessed"], r["numberRecordsFailed"]) for r in upserted] == [(N, 0)]
    job_id = upserted[0]["job_id"]
    ok = parse(sf.bulk2.Account.get_successful_records(job_id))
    assert len(ok) == N and {r["sf__Created"] for r in ok} == {"true"}
    id_by_key = {r["customExtIdField__c"]: r["sf__Id"] for r in ok}
    state = accounts_in_org(org)
    assert len(state) == N
    for rec in records:
        row = state[id_by_key[rec["customExtIdField__c"]]]
        assert (row["Name"], str(row["NumberOfEmployees"]), row["BillingCity"]) == (
            rec["Name"], rec["NumberOfEmployees"], rec["BillingCity"])
    failed_header = sf.bulk2.Account.get_failed_records(job_id).rstrip("\n").split(",")
    assert failed_header[:2] == ['"sf__Id"', '"sf__Error"']
    assert sorted(failed_header[2:]) == sorted(records[0])

    # Upsert again: every row now updates.
    again = sf.bulk2.Account.upsert(
        records=[{**r, "Name": r["Name"] + " v2"} for r in records],
        external_id_field="customExtIdField__c", wait=0.1)
    assert again[0]["numberRecordsFailed"] == 0
    assert {r["sf__Created"] for r in parse(
        sf.bulk2.Account.get_successful_records(again[0]["job_id"]))} == {"false"}

    inserted = sf.bulk2.Account.insert(
        records=[{"Name": f"Plain {i}"} for i in range(N)], wait=0.1)
    assert inserted[0]["numberRecordsProcessed"] == N
    new_ids = [r["sf__Id"] for r in parse(
        sf.bulk2.Account.get_successful_records(inserted[0]["job_id"]))]
    assert len(set(new_ids)) == N

    updated = sf.bulk2.Account.update(
        records=[{"Id": rid, "BillingCity": "Updated"} for rid in new_ids], wait=0.1)
    assert updated[0]["numberRecordsFailed"] == 0

    deleted = sf.bulk2.Account.delete(records=[{"Id": rid} for rid in new_ids[:6000]], wait=0.1)
    hard = sf.bulk2.Account.hard_delete(records=[{"Id": rid} for rid in new_ids[6000:]],
                                        wait=0.1)
    assert deleted[0]["numberRecordsFailed"] == hard[0]["numberRecordsFailed"] == 0

    state = accounts_in_org(org)
    assert len(state) == N + 6000  # hard-deleted rows are gone
    assert all(state[rid]["IsDeleted"] == 1 and state[rid]["BillingCity"] == "Updated"
               for rid in new_ids[:6000])
    assert all(row["Name"].endswith(" v2") for row in state.values() if row["customExtIdField__c"])
    assert all(row["IsDeleted"] == 0 for row in state.values() if row["customExtIdField__c"])


def test_bulk2_reports_row_failures_and_unprocessed_records(sf, org):
    result = sf.bulk2.Account.insert(
        records=[{"Name": "ok", "Industry": "Banking"}, {"Name": "bad", "Industry": "Nope"}],
        wait=0.1)
    assert result[0]["numberRecordsFailed"] == 1
    failed = parse(sf.bulk2.Account.get_failed_records(result[0]["job_id"]))
    assert failed[0]["sf__Error"].startswith("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:")
    assert parse(sf.bulk2.Account.get_unprocessed_records(result[0]["job_id"])) == []

    org.fail_next_job("InvalidBatch : simulated")
    with pytest.raises(simple_salesforce.exceptions.SalesforceOperationError,
                       match="InvalidBatch : simulated"):
        sf.bulk2.Account.insert(records=[{"Name": "x"}], wait=0.1)


def test_rest_record_calls(sf, org):
    account = sf.Account  # an SFType builds its own https:// URL, pointed at http:// here
    account.base_url = account.base_url.replace("https://", "http://", 1)
    created = account.create({"Name": "Rest one", "NumberOfEmployees": 5})
    assert created["success"] is True and created["errors"] == []
    rid = created["id"]
    assert account.update(rid, {"BillingCity": "Paris"}) == 204
    assert account.get(rid)["BillingCity"] == "Paris"
    assert account.upsert("customExtIdField__c/R-1", {"Name": "Rest two"}) == 201
    assert account.upsert("customExtIdField__c/R-1", {"Name": "Rest two b"}) == 200
    assert account.get_by_custom_id("customExtIdField__c", "R-1")["Name"] == "Rest two b"
    assert account.delete(rid) == 204
    with pytest.raises(simple_salesforce.exceptions.SalesforceMalformedRequest) as bad:
        account.create({"Industry": "Banking"})
    assert bad.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    state = accounts_in_org(org)
    assert state[rid]["IsDeleted"] == 1
    assert sorted(r["Name"] for r in state.values() if not r["IsDeleted"]) == ["Rest two b"]
