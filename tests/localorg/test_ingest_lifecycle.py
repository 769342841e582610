"""The ingest job lifecycle over HTTP with plain requests: status codes, JobInfo key sets,
result CSV headers and quoting, ids."""
from __future__ import annotations

import csv
import io
import re

from sfbulk_nb.localorg import ids

ID18 = re.compile(r"[0-9A-Za-z]{15}[A-Z0-5]{3}")
CREATE_KEYS = ["id", "operation", "object", "createdById", "createdDate", "systemModstamp",
               "state", "concurrencyMode", "contentType", "apiVersion", "contentUrl",
               "lineEnding", "columnDelimiter"]
PATCH_KEYS = ["id", "operation", "object", "createdById", "createdDate", "systemModstamp",
              "state", "concurrencyMode", "contentType", "apiVersion"]
DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def assert_valid_id(value: str, prefix: str) -> None:
    assert ID18.fullmatch(value), value
    assert value.startswith(prefix)
    assert ids.to18(value[:15]) == value


def test_insert_lifecycle_status_codes_and_jobinfo(api, org):
    r = api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    assert r.status_code == 200
    job = r.json()
    assert list(job) == CREATE_KEYS
    assert_valid_id(job["id"], "750")
    assert job["state"] == "Open" and job["operation"] == "insert" and job["object"] == "Account"
    assert job["createdById"] == org.user_id
    assert DATE.fullmatch(job["createdDate"]) and DATE.fullmatch(job["systemModstamp"])
    assert job["apiVersion"] == 66.0 and isinstance(job["apiVersion"], float)
    assert job["contentUrl"] == f"services/data/v66.0/jobs/ingest/{job['id']}/batches"
    assert (job["concurrencyMode"], job["contentType"], job["lineEnding"],
            job["columnDelimiter"]) == ("Parallel", "CSV", "LF", "COMMA")

    open_info = api.info(job["id"])
    assert "numberRecordsProcessed" not in open_info and open_info["jobType"] == "V2Ingest"

    up = api.upload(job["id"], "Name,NumberOfEmployees\nAcme,10\n\"Quote \"\"Co\"\", Ltd\",20\n")
    assert up.status_code == 201 and up.content == b""
    closed = api.close(job["id"])
    assert closed.status_code == 200
    assert list(closed.json()) == PATCH_KEYS and closed.json()["state"] == "UploadComplete"

    info = api.wait(job["id"])
    assert info["state"] == "JobComplete"
    assert list(info) == [
        "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
        "concurrencyMode", "contentType", "apiVersion", "jobType", "contentUrl", "lineEnding",
        "columnDelimiter", "numberRecordsProcessed", "numberRecordsFailed", "retries",
        "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"]
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"], info["retries"]) == (2, 0, 0)
    assert info["apexProcessingTime"] == 0

    text = api.results(job["id"], "successfulResults")
    lines = text.split("\n")
    assert lines[0] == '"sf__Id","sf__Created",Name,NumberOfEmployees'
    assert text.endswith("\n")
    body = sorted(lines[1:-1], key=lambda line: line.split(",")[2])
    assert re.fullmatch(r'"001\w{15}","true","Acme","10"', body[0])
    assert body[1].endswith(',"true","Quote ""Co"", Ltd","20"')
    parsed = rows(text)[1:]
    for sf_id, _created, name, employees in parsed:
        assert_valid_id(sf_id, "001")
        record = api.record("Account", sf_id)
        assert record["Name"] == name and record["NumberOfEmployees"] == int(employees)
        assert record["attributes"] == {
            "type": "Account", "url": f"/services/data/v66.0/sobjects/Account/{sf_id}"}
    assert api.results(job["id"], "failedResults") == '"sf__Id","sf__Error",Name,NumberOfEmployees\n'
    assert api.results(job["id"], "unprocessedrecords") == "Name,NumberOfEmployees\n"


def test_result_paths_with_and_without_slash_and_both_spellings(api):
    info = api.run("Account", "insert", "Name\nA\n")
    for kind in ("successfulResults/", "failedResults", "unprocessedrecords/", "unprocessedRecords"):
        r = api.request("GET", f"/jobs/ingest/{info['id']}/{kind}")
        assert r.status_code == 200, kind
        assert r.headers["Content-Type"].startswith("text/csv")
    assert api.request("GET", f"/jobs/ingest/{info['id']}/nonsense").status_code == 404


def test_results_are_gzipped_when_asked(api):
    info = api.run("Account", "insert", "Name\nA\nB\n")
    r = api.request("GET", f"/jobs/ingest/{info['id']}/successfulResults",
                    headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.text.startswith('"sf__Id","sf__Created",Name\n')


def test_upsert_creates_then_updates_and_echoes_header_case(api):
    first = api.run("Account", "upsert", "customExtIdField__c,name\nK1,One\nK2,Two\n",
                    externalIdFieldName="customExtIdField__c")
    assert first["externalIdFieldName"] == "customExtIdField__c"
    created = {r[2]: r for r in rows(api.results(first["id"], "successfulResults"))[1:]}
    assert rows(api.results(first["id"], "successfulResults"))[0] == [
        "sf__Id", "sf__Created", "customExtIdField__c", "name"]
    assert {r[1] for r in created.values()} == {"true"}

    second = api.run("Account", "upsert", "customExtIdField__c,Name\nK1,One renamed\nK3,Three\n",
                     externalIdFieldName="customExtIdField__c")
    out = {r[2]: r for r in rows(api.results(second["id"], "successfulResults"))[1:]}
    assert out["K1"][1] == "false" and out["K1"][0] == created["K1"][0]
    assert out["K3"][1] == "true"
    assert api.record("Account", created["K1"][0])["Name"] == "One renamed"


def test_upsert_with_several_existing_matches_fails_the_row(api):
    api.run("Account", "insert", "Name,customExtIdField__c\nA,DUP\nB,DUP\n")
    info = api.run("Account", "upsert", "customExtIdField__c,Name\nDUP,C\n",
                   externalIdFieldName="customExtIdField__c")
    assert info["numberRecordsFailed"] == 1
    failed = rows(api.results(info["id"], "failedResults"))
    assert failed[1][0] == ""
    assert re.fullmatch(r"DUPLICATE_EXTERNAL_ID:customExtIdField: more than one record found for "
                        r"external id field: \[001\w{15}, 001\w{15}\]: --", failed[1][1]), failed[1][1]


def test_upsert_duplicate_key_in_one_chunk_fails_every_copy(api):
    info = api.run("Account", "upsert", "customExtIdField__c,Name\nX,A\nX,B\nY,C\n",
                   externalIdFieldName="customExtIdField__c")
    failed = rows(api.results(info["id"], "failedResults"))[1:]
    assert sorted(r[3] for r in failed) == ["A", "B"]
    assert {r[1] for r in failed} == {"DUPLICATE_VALUE:Duplicate external id specified: X: --"}
    assert info["numberRecordsProcessed"] == 3 and info["numberRecordsFailed"] == 2


def test_upsert_case_rules_follow_the_field(api):
    # customExtIdField__c is not unique: matching is exact, so "k1" is a new record.
    api.run("Account", "upsert", "customExtIdField__c,Name\nK1,A\n",
            externalIdFieldName="customExtIdField__c")
    info = api.run("Account", "upsert", "customExtIdField__c,Name\nk1,B\n",
                   externalIdFieldName="customExtIdField__c")
    assert rows(api.results(info["id"], "successfulResults"))[1][1] == "true"
    # Contact_Ext_Id__c is unique and case-insensitive: "c1" matches "C1".
    api.run("Contact", "upsert", "Contact_Ext_Id__c,LastName\nC1,Ada\n",
            externalIdFieldName="Contact_Ext_Id__c")
    info = api.run("Contact", "upsert", "Contact_Ext_Id__c,LastName\nc1,Lovelace\n",
                   externalIdFieldName="Contact_Ext_Id__c")
    updated = rows(api.results(info["id"], "successfulResults"))[1]
    assert updated[1] == "false"
    record = api.record("Contact", updated[0])
    assert (record["Contact_Ext_Id__c"], record["LastName"]) == ("c1", "Lovelace")


def test_upsert_with_blank_key_fails_the_row(api):
    info = api.run("Account", "upsert", "customExtIdField__c,Name\n,A\n",
                   externalIdFieldName="customExtIdField__c")
    assert rows(api.results(info["id"], "failedResults"))[1][1] == (
        "MISSING_ARGUMENT:customExtIdField__c not specified: --")


def test_update_blank_keeps_and_na_clears(api):
    info = api.run("Account", "insert", "Name,Phone,BillingCity\nAcme,123,Paris\n")
    rid = rows(api.results(info["id"], "successfulResults"))[1][0]
    upd = api.run("Account", "update", f"Id,Phone,BillingCity\n{rid},,#N/A\n")
    out = rows(api.results(upd["id"], "successfulResults"))
    assert out[1][:2] == [rid, "false"]
    record = api.record("Account", rid)
    assert record["Phone"] == "123" and record["BillingCity"] is None


def test_update_errors_for_unknown_malformed_and_missing_ids(api):
    unknown = ids.make_id("001", 999_999)
    contact_id = ids.make_id("003", 5)
    info = api.run("Account", "update",
                   f"Id,Name\n{unknown},A\nnot-an-id,B\n,C\n{contact_id},D\n")
    errors = {r[3]: (r[0], r[1]) for r in rows(api.results(info["id"], "failedResults"))[1:]}
    assert errors["A"] == (unknown, "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id: --")
    assert errors["B"] == ("", "MALFORMED_ID:Record ID: id value of incorrect type: not-an-id:Id --")
    assert errors["C"] == ("", "MISSING_ARGUMENT:Id not specified in an update call: --")
    assert errors["D"][1].startswith("MALFORMED_ID:")


def test_update_accepts_15_character_and_lower_case_18_character_ids(api):
    info = api.run("Account", "insert", "Name\nA\nB\n")
    a, b = sorted(r[0] for r in rows(api.results(info["id"], "successfulResults"))[1:])
    upd = api.run("Account", "update", f"Id,Name\n{a[:15]},A2\n{b.lower()},B2\n")
    assert upd["numberRecordsFailed"] == 0
    assert api.record("Account", a)["Name"] == "A2" and api.record("Account", b)["Name"] == "B2"


def test_delete_then_hard_delete(api, org):
    info = api.run("Account", "insert", "Name\nA\nB\n")
    a, b = sorted(r[0] for r in rows(api.results(info["id"], "successfulResults"))[1:])
    deleted = api.run("Account", "delete", f"Id\n{a}\n")
    assert rows(api.results(deleted["id"], "successfulResults"))[1] == [a, "false", a]
    r = api.request("GET", f"/sobjects/Account/{a}")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    again = api.run("Account", "delete", f"Id\n{a}\n")
    assert rows(api.results(again["id"], "failedResults"))[1][1] == "ENTITY_IS_DELETED:entity is deleted: --"
    hard = api.run("Account", "hardDelete", f"Id\n{b}\n")
    assert hard["numberRecordsFailed"] == 0
    assert org.store.get_record(org.catalog.get("Account"), b) is None
    assert org.store.get_record(org.catalog.get("Account"), a)["IsDeleted"] == 1


def test_row_errors_use_salesforce_codes_and_format(api):
    long_name = "x" * 256
    csv_text = (
        "Name,NumberOfEmployees,Industry,Active__c,Founded__c,LastReviewed__c,AnnualRevenue\n"
        ",1,,,,,\n"
        f"{long_name},1,,,,,\n"
        "A,1.5,,,,,\n"
        "B,,Spaceflight,,,,\n"
        "C,,,maybe,,,\n"
        "D,,,,2024-02-30,,\n"
        "E,,,,,2024-01-01,\n"
        "F,,,,,,12abc\n"
        "G,2,Banking,true,2024-02-29,2024-01-01T10:00:00+02:00,1.5E3\n")
    info = api.run("Account", "insert", csv_text)
    assert info["numberRecordsProcessed"] == 9 and info["numberRecordsFailed"] == 8
    errors = {r[2]: r[1] for r in rows(api.results(info["id"], "failedResults"))[1:]}
    assert errors[""] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert errors[long_name] == (f"STRING_TOO_LONG:Account Name: data value too large: {long_name} "
                                 "(max length=255):Name --")
    assert errors["A"] == ("INVALID_TYPE_ON_FIELD_IN_RECORD:Employees: value not of required "
                           "type: 1.5:NumberOfEmployees --")
    assert errors["B"] == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST:Industry: bad value for "
                           "restricted picklist field: Spaceflight:Industry --")
    assert errors["C"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:") and errors["C"].endswith(":Active__c --")
    assert errors["D"].endswith("value not of required type: 2024-02-30:Founded__c --")
    assert errors["E"].endswith("value not of required type: 2024-01-01:LastReviewed__c --")
    assert errors["F"].endswith(":AnnualRevenue --")
    ok = rows(api.results(info["id"], "successfulResults"))[1]
    record = api.record("Account", ok[0])
    assert record["Active__c"] is True and record["Founded__c"] == "2024-02-29"
    assert record["LastReviewed__c"] == "2024-01-01T08:00:00.000+0000"
    assert record["AnnualRevenue"] == 1500.0 and record["Industry"] == "Banking"


def test_insert_defaults_owner_audit_fields_and_checkbox(api, org):
    info = api.run("Account", "insert", "Name\nA\n")
    rid = rows(api.results(info["id"], "successfulResults"))[1][0]
    record = api.record("Account", rid)
    assert record["OwnerId"] == org.user_id and record["CreatedById"] == org.user_id
    assert record["Active__c"] is False and record["IsDeleted"] is False
    assert DATE.fullmatch(record["CreatedDate"])


def test_unique_field_duplicates_and_email(api):
    api.run("Contact", "insert", "LastName,Contact_Ext_Id__c\nA,U1\n")
    info = api.run("Contact", "insert", "LastName,Contact_Ext_Id__c,Email\nB,u1,\nC,U2,not-an-email\n")
    errors = {r[2]: r[1] for r in rows(api.results(info["id"], "failedResults"))[1:]}
    assert re.fullmatch(r"DUPLICATE_VALUE:duplicate value found: Contact_Ext_Id__c duplicates "
                        r"value on record with id: 003\w{15}:Contact_Ext_Id__c --", errors["B"])
    assert errors["C"] == "INVALID_EMAIL_ADDRESS:Email: invalid email address: not-an-email:Email --"


def test_relationship_column_resolves_parent_external_id(api):
    parent = api.run("Account", "insert", "Name,customExtIdField__c\nParent,P1\nTwin1,TW\nTwin2,TW\n")
    pid = {r[2]: r[0] for r in rows(api.results(parent["id"], "successfulResults"))[1:]}["Parent"]
    info = api.run("Contact", "insert",
                   "LastName,FirstName,Account.customExtIdField__c\nLovelace,Ada,P1\nB,,NOPE\nC,,TW\n")
    ok = rows(api.results(info["id"], "successfulResults"))[1:]
    assert len(ok) == 1
    contact = api.record("Contact", ok[0][0])
    assert contact["AccountId"] == pid and contact["Name"] == "Ada Lovelace"
    errors = {r[2]: r[1] for r in rows(api.results(info["id"], "failedResults"))[1:]}
    assert errors["B"] == ("INVALID_FIELD:Foreign key external ID: NOPE not found for field "
                           "customExtIdField__c in entity Account: --")
    assert errors["C"].startswith("DUPLICATE_EXTERNAL_ID:Account: more than one record found")


def test_lookup_by_id_must_exist_and_be_of_the_right_type(api):
    parent = api.run("Account", "insert", "Name\nP\n")
    pid = rows(api.results(parent["id"], "successfulResults"))[1][0]
    missing = ids.make_id("001", 424242)
    info = api.run("Contact", "insert",
                   f"LastName,AccountId\nA,{pid}\nB,{missing}\nC,{ids.make_id('006', 1)}\nD,bad\n")
    errors = {r[2]: r[1] for r in rows(api.results(info["id"], "failedResults"))[1:]}
    assert errors["B"] == "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:AccountId --"
    assert errors["C"].startswith("FIELD_INTEGRITY_EXCEPTION:Account ID: id value of incorrect type")
    assert errors["D"].startswith("MALFORMED_ID:")
    assert info["numberRecordsFailed"] == 3


def test_read_only_field_is_a_row_error(api):
    info = api.run("Account", "insert", "Name,CreatedDate\nA,2020-01-01T00:00:00Z\nB,\n")
    errors = rows(api.results(info["id"], "failedResults"))[1:]
    assert len(errors) == 1 and errors[0][1].startswith(
        "INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update fields: CreatedDate.")


def test_job_fails_on_unknown_or_duplicate_column_and_keeps_rows_unprocessed(api):
    info = api.run("Account", "insert", "Name,Bogus__c\nA,1\nB,2\n")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Bogus__c"
    assert info["numberRecordsProcessed"] == 0
    assert api.results(info["id"], "unprocessedrecords") == 'Name,Bogus__c\n"A","1"\n"B","2"\n'
    dup = api.run("Account", "insert", "Name,name\nA,B\n")
    assert dup["state"] == "Failed" and "Duplicate field name" in dup["errorMessage"]


def test_second_upload_is_refused_with_the_real_message(api):
    job = api.create("Account", "insert")
    assert api.upload(job["id"], "Name\nA\n").status_code == 201
    r = api.upload(job["id"], "Name\nB\n")
    assert r.status_code == 400
    assert r.json() == [{"errorCode": "BULK_API_ERROR", "message":
                         f"Found multipe contents for job: <{job['id'][:15]}>, please 'Close' / "
                         "'Abort' / 'Delete' the current Job then create a new Job and make sure "
                         "you only do 'PUT' once on a given Job."}]


def test_abort_delete_and_unknown_jobs(api):
    job = api.create("Account", "insert")
    api.upload(job["id"], "Name\nA\nB\n")
    r = api.request("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    assert r.status_code == 200 and r.json()["state"] == "Aborted"
    assert api.results(job["id"], "unprocessedrecords") == 'Name\n"A"\n"B"\n'
    again = api.request("PATCH", f"/jobs/ingest/{job['id']}", json={"state": "Aborted"})
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    assert api.request("DELETE", f"/jobs/ingest/{job['id']}").status_code == 204
    gone = api.request("GET", f"/jobs/ingest/{job['id']}")
    assert gone.status_code == 404
    assert gone.json() == [{"errorCode": "NOT_FOUND",
                            "message": "The requested resource does not exist"}]
    open_job = api.create("Account", "insert")
    r = api.request("DELETE", f"/jobs/ingest/{open_job['id']}")
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "API_ERROR"
    done = api.run("Account", "insert", "Name\nZ\n")
    r = api.close(done["id"])
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALIDJOBSTATE"


def test_close_without_upload_fails_the_job(api):
    job = api.create("Account", "insert")
    api.close(job["id"])
    info = api.wait(job["id"])
    assert info["state"] == "Failed" and "No data" in info["errorMessage"]


def test_create_job_validation_errors(api):
    cases = [
        ({"object": "Nope", "operation": "insert"},
         {"errorCode": "INVALIDJOB", "message": "InvalidJob : Unable to find object: Nope"}),
        ({"object": "Account", "operation": "merge"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'merge' supplied for property: 'operation'"}),
        ({"object": "Account", "operation": "upsert", "externalIdFieldName": "Phone"},
         {"errorCode": "INVALIDJOB", "message":
          "InvalidJob : Field name provided, Phone does not match an External ID for Account"}),
        ({"object": "Account", "operation": "insert", "contentType": "JSON"},
         {"errorCode": "API_ERROR", "message": "Invalid value: 'JSON' supplied for property: 'contentType'"}),
    ]
    for body, error in cases:
        r = api.request("POST", "/jobs/ingest", json=body)
        assert (r.status_code, r.json()) == (400, [error])


def test_multipart_create_uploads_and_closes_in_one_call(api):
    files = {
        "job": (None, '{"object":"Account","operation":"insert"}', "application/json"),
        "content": ("content", "Name\nMulti\n", "text/csv"),
    }
    r = api.request("POST", "/jobs/ingest", files=files)
    assert r.status_code == 200 and r.json()["state"] == "UploadComplete"
    info = api.wait(r.json()["id"])
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 1


def test_list_jobs_pages_by_1000(api):
    for _ in range(1001):
        api.request("POST", "/jobs/ingest", json={"object": "Account", "operation": "insert"})
    first = api.request("GET", "/jobs/ingest").json()
    assert first["done"] is False and len(first["records"]) == 1000
    assert "numberRecordsProcessed" not in first["records"][0]
    second = api.request("GET", first["nextRecordsUrl"].replace("/services/data/v66.0", "")).json()
    assert second == {"done": True, "records": second["records"], "nextRecordsUrl": None}
    assert len(second["records"]) == 1
    seen = {j["id"] for j in first["records"]} | {j["id"] for j in second["records"]}
    assert len(seen) == 1001


def test_results_come_back_shuffled(api):
    names = [f"N{i:04d}" for i in range(300)]
    info = api.run("Account", "insert", "Name\n" + "\n".join(names) + "\n")
    got = [r[2] for r in rows(api.results(info["id"], "successfulResults"))[1:]]
    assert sorted(got) == names and got != names


def test_input_order_is_an_option(tmp_path):
    from sfbulk_nb.localorg import LocalOrg
    from tests.conftest import BulkHttp

    with LocalOrg(tmp_path / "o.sqlite3", result_order="input") as org:
        api = BulkHttp(org)
        names = [f"N{i:04d}" for i in range(300)]
        info = api.run("Account", "insert", "Name\n" + "\n".join(names) + "\n")
        assert [r[2] for r in rows(api.results(info["id"], "successfulResults"))[1:]] == names


def test_numbers_round_half_up_to_the_field_scale_and_respect_the_range(api):
    csv_text = ("Name,StageName,CloseDate,Amount\n"
                "A,Prospecting,2024-01-01,10.255\nB,Prospecting,2024-01-01,2.5\n"
                "C,Prospecting,2024-01-01,1.5E3\nD,Prospecting,2024-01-01,10000000000000000\n")
    info = api.run("Opportunity", "insert", csv_text)
    ok = {r[2]: r[0] for r in rows(api.results(info["id"], "successfulResults"))[1:]}
    assert api.record("Opportunity", ok["A"])["Amount"] == 10.26
    assert api.record("Opportunity", ok["B"])["Amount"] == 2.5
    assert api.record("Opportunity", ok["C"])["Amount"] == 1500.0
    failed = rows(api.results(info["id"], "failedResults"))[1:]
    assert [r[2] for r in failed] == ["D"]
    assert failed[0][1].startswith("NUMBER_OUTSIDE_VALID_RANGE:Amount: value outside of valid range")
    rounded = api.run("Account", "insert", "Name,AnnualRevenue\nR,2.5\n")
    rid = rows(api.results(rounded["id"], "successfulResults"))[1][0]
    assert api.record("Account", rid)["AnnualRevenue"] == 3.0  # currency(18, 0): half up


def test_one_upsert_mixing_creates_updates_blanks_clears_and_bad_cells_over_two_batches(api):
    """Column-wise processing with every kind of cell in one job: rows that create and rows
    that update, blank cells (left alone / defaulted), #N/A (cleared), a bad cell among good
    ones, and keys created in the first 10,000-row batch updated in the second."""
    first = api.run("Account", "insert",
                    "customExtIdField__c,Name,Phone,BillingCity\nOLD-1,Old one,111,Paris\n"
                    "OLD-2,Old two,222,Rome\n")
    assert first["numberRecordsFailed"] == 0
    lines = ["customExtIdField__c,Name,Phone,BillingCity,NumberOfEmployees,Active__c"]
    lines += [f"NEW-{i},New {i},,City {i},{i},{'true' if i % 2 else ''}" for i in range(10_000)]
    lines += ["OLD-1,,#N/A,,7,", "OLD-2,Renamed,,#N/A,12.5,true",  # a bad int: this row fails
              "NEW-3,New three again,333,#N/A,,false", "NEW-4,,,,,TRUE"]
    info = api.run("Account", "upsert", "\n".join(lines) + "\n",
                   externalIdFieldName="customExtIdField__c")
    assert info["numberRecordsProcessed"] == 10_004 and info["numberRecordsFailed"] == 1
    failed = rows(api.results(info["id"], "failedResults"))[1:]
    assert [(r[1], r[2]) for r in failed] == [(
        "INVALID_TYPE_ON_FIELD_IN_RECORD:Employees: value not of required type: 12.5:"
        "NumberOfEmployees --", "OLD-2")]
    ok = rows(api.results(info["id"], "successfulResults"))[1:]
    assert len(ok) == 10_003
    # every NEW key created once; OLD-1, then NEW-3 and NEW-4 (created in batch 1) updated
    assert sorted(r[2] for r in ok if r[1] == "false") == ["NEW-3", "NEW-4", "OLD-1"]
    assert len({r[0] for r in ok if r[1] == "true"}) == 10_000
    succeeded = {r[2]: r for r in ok}
    by_key = {r[2]: r[0] for r in rows(api.results(first["id"], "successfulResults"))[1:]}

    old1 = api.record("Account", by_key["OLD-1"])
    assert (old1["Name"], old1["Phone"], old1["BillingCity"], old1["NumberOfEmployees"]) == (
        "Old one", None, "Paris", 7)
    old2 = api.record("Account", by_key["OLD-2"])  # failed: untouched
    assert (old2["Name"], old2["Phone"], old2["BillingCity"]) == ("Old two", "222", "Rome")
    new = {key: api.record("Account", succeeded[key][0]) for key in ("NEW-2", "NEW-3", "NEW-4")}
    assert (new["NEW-2"]["Phone"], new["NEW-2"]["Active__c"], new["NEW-2"]["BillingCity"]) == (
        None, False, "City 2")
    assert (new["NEW-3"]["Name"], new["NEW-3"]["Phone"], new["NEW-3"]["BillingCity"],
            new["NEW-3"]["NumberOfEmployees"], new["NEW-3"]["Active__c"]) == (
        "New three again", "333", None, 3, False)
    assert (new["NEW-4"]["Name"], new["NEW-4"]["Active__c"]) == ("New 4", True)


def test_contact_name_follows_its_parts_on_update(api):
    info = api.run("Contact", "insert", "LastName,FirstName,Email\nLovelace,Ada,a@x.org\n"
                   "Hopper,Grace,g@x.org\nTuring,Alan,t@x.org\n")
    ids_ = {r[2]: r[0] for r in rows(api.results(info["id"], "successfulResults"))[1:]}
    upd = api.run("Contact", "update",
                  f"Id,FirstName,LastName,Email\n{ids_['Lovelace']},Augusta,,\n"
                  f"{ids_['Hopper']},#N/A,,\n{ids_['Turing']},,,alan@x.org\n")
    assert upd["numberRecordsFailed"] == 0
    names = {k: api.record("Contact", rid)["Name"] for k, rid in ids_.items()}
    assert names == {"Lovelace": "Augusta Lovelace", "Hopper": "Hopper", "Turing": "Alan Turing"}


def test_a_record_updated_twice_in_one_batch_ends_with_the_later_row(api):
    """Its key in two 200-row chunks of one batch, with different blank cells: the updates
    apply in row order whatever fields the rows in between set."""
    api.run("Account", "insert", "customExtIdField__c,Name,Phone\nK1,K1 v0,100\nK3,K3 v0,300\n")
    lines = ["customExtIdField__c,Name,Phone", "K3,K3 v1,301", "K1,K1 v1,"]
    lines += [f"F{i},Filler {i},{i}" for i in range(300)]
    lines += ["K1,K1 v2,102"]  # a later chunk: updates the same record again
    info = api.run("Account", "upsert", "\n".join(lines) + "\n",
                   externalIdFieldName="customExtIdField__c")
    assert info["numberRecordsFailed"] == 0
    k1 = api.request("GET", "/sobjects/Account/customExtIdField__c/K1").json()
    assert (k1["Name"], k1["Phone"]) == ("K1 v2", "102")
