"""REST /query aggregates (COUNT, COUNT_DISTINCT, SUM/AVG/MIN/MAX, GROUP BY, HAVING),
parent-to-child subqueries, and semi-joins / anti-joins in REST and Bulk 2.0 query jobs,
against answers computed by hand from the records below.

    Accounts   Acme (Manufacturing, 100 employees)  Globex (Technology, 50)
               Initech (Manufacturing, 10)          Empty (no industry, no employees)
    Contacts   Smith, Jones -> Acme;  Brown -> Globex;  Orphan (no account)
    Opportunities  Big (Acme, Closed Won, 1000)   Small (Acme, Prospecting, 500)
                   Deal (Globex, Closed Won, 250) Lost (Initech, Closed Lost, no amount)
"""
from __future__ import annotations

import pytest

from tests.localorg.test_query_jobs import results, rows, run


@pytest.fixture
def data(api):
    api.run("Account", "insert",
            "Name,Industry,NumberOfEmployees,customExtIdField__c\n"
            "Acme,Manufacturing,100,A1\nGlobex,Technology,50,A2\n"
            "Initech,Manufacturing,10,A3\nEmpty,,,A4\n")
    api.run("Contact", "insert", "LastName,Account.customExtIdField__c\n"
                                 "Smith,A1\nJones,A1\nBrown,A2\nOrphan,\n")
    job = api.run("Opportunity", "insert",
                  "Name,StageName,CloseDate,Amount,Account.customExtIdField__c\n"
                  "Big,Closed Won,2024-01-10,1000,A1\nSmall,Prospecting,2024-02-10,500,A1\n"
                  "Deal,Closed Won,2024-03-10,250,A2\nLost,Closed Lost,2024-04-10,,A3\n")
    assert job["numberRecordsFailed"] == 0
    ids = {r["Name"]: r["Id"] for r in q(api, "SELECT Id, Name FROM Account")["records"]}
    return ids


def q(api, soql: str) -> dict:
    r = api.request("GET", "/query", params={"q": soql})
    assert r.status_code == 200, r.text
    return r.json()


def refused(api, soql: str) -> dict:
    r = api.request("GET", "/query", params={"q": soql})
    assert r.status_code == 400, r.text
    return r.json()[0]


def values(body: dict) -> list[dict]:
    """The records without their attributes, which are checked apart."""
    return [{k: v for k, v in r.items() if k != "attributes"} for r in body["records"]]


AGG = {"type": "AggregateResult"}


# -- aggregates ----------------------------------------------------------------------------


def test_count_alone_answers_total_size_only(api, data):
    assert q(api, "SELECT COUNT() FROM Contact") == {"totalSize": 4, "done": True,
                                                     "records": []}
    assert q(api, "SELECT COUNT() FROM Contact WHERE AccountId != null")["totalSize"] == 3


def test_count_of_a_field_counts_its_values_and_unaliased_items_are_expr_n(api, data):
    body = q(api, "SELECT COUNT(Id), COUNT(AccountId), COUNT_DISTINCT(AccountId) FROM Contact")
    assert body["totalSize"] == 1 and body["done"] is True
    assert body["records"] == [{"attributes": AGG, "expr0": 4, "expr1": 3, "expr2": 2}]


def test_sum_avg_min_max_skip_nulls_and_aliases_name_the_keys(api, data):
    body = q(api, "SELECT SUM(Amount) total, AVG(Amount), MIN(Amount), MAX(Amount) top, "
                  "MIN(CloseDate) FROM Opportunity")
    (record,) = values(body)
    # Amounts 1000, 500, 250 and one null: AVG is 1750 / 3, not 1750 / 4.
    assert record == {"total": 1750.0, "expr0": pytest.approx(1750 / 3), "expr1": 250.0,
                      "top": 1000.0, "expr2": "2024-01-10"}
    assert list(record) == ["total", "expr0", "expr1", "top", "expr2"]  # SELECT order


def test_an_aggregate_over_no_records_is_one_row(api, data):
    body = q(api, "SELECT COUNT(Id), SUM(Amount) FROM Opportunity WHERE Name = 'none'")
    assert values(body) == [{"expr0": 0, "expr1": None}]


def test_group_by_one_field(api, data):
    body = q(api, "SELECT StageName, COUNT(Id), SUM(Amount) FROM Opportunity "
                  "GROUP BY StageName ORDER BY StageName")
    assert body["totalSize"] == 3
    assert all(r["attributes"] == AGG for r in body["records"])
    assert values(body) == [
        {"StageName": "Closed Lost", "expr0": 1, "expr1": None},
        {"StageName": "Closed Won", "expr0": 2, "expr1": 1250.0},
        {"StageName": "Prospecting", "expr0": 1, "expr1": 500.0}]


def test_group_by_a_parent_field_names_it_by_the_field(api, data):
    body = q(api, "SELECT Account.Name, COUNT(Id) n, MAX(Amount) FROM Opportunity "
                  "GROUP BY Account.Name ORDER BY Account.Name")
    assert values(body) == [{"Name": "Acme", "n": 2, "expr0": 1000.0},
                            {"Name": "Globex", "n": 1, "expr0": 250.0},
                            {"Name": "Initech", "n": 1, "expr0": None}]


def test_group_by_two_fields(api, data):
    body = q(api, "SELECT Account.Industry, StageName, COUNT(Id) FROM Opportunity "
                  "GROUP BY Account.Industry, StageName ORDER BY Account.Industry, StageName")
    assert values(body) == [
        {"Industry": "Manufacturing", "StageName": "Closed Lost", "expr0": 1},
        {"Industry": "Manufacturing", "StageName": "Closed Won", "expr0": 1},
        {"Industry": "Manufacturing", "StageName": "Prospecting", "expr0": 1},
        {"Industry": "Technology", "StageName": "Closed Won", "expr0": 1}]


def test_having_filters_groups_and_order_by_takes_an_aggregate(api, data):
    body = q(api, "SELECT AccountId, COUNT(Id) FROM Opportunity GROUP BY AccountId "
                  "HAVING COUNT(Id) > 1")
    assert values(body) == [{"AccountId": data["Acme"], "expr0": 2}]
    body = q(api, "SELECT Account.Name, SUM(Amount) s FROM Opportunity GROUP BY Account.Name "
                  "HAVING SUM(Amount) >= 250 ORDER BY SUM(Amount) DESC")
    assert values(body) == [{"Name": "Acme", "s": 1500.0}, {"Name": "Globex", "s": 250.0}]
    body = q(api, "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry "
                  "HAVING Industry != null AND COUNT(Id) < 2")
    assert values(body) == [{"Industry": "Technology", "expr0": 1}]


def test_count_with_group_by_counts_the_groups(api, data):
    assert q(api, "SELECT COUNT() FROM Opportunity GROUP BY StageName")["totalSize"] == 3


def test_aggregate_errors(api, data):
    cases = {
        "SELECT Name, COUNT(Id) FROM Account":
            ("MALFORMED_QUERY", "Field must be grouped or aggregated: Name"),
        "SELECT Name n FROM Account":
            ("MALFORMED_QUERY", "Only aggregate expressions use field aliasing"),
        "SELECT SUM(Name) FROM Account":
            ("MALFORMED_QUERY", "field Name does not support aggregate operator SUM"),
        "SELECT Amount, COUNT(Id) FROM Opportunity GROUP BY Amount":
            ("MALFORMED_QUERY", "field 'Amount' can not be grouped in a query call"),
        "SELECT Name FROM Account WHERE COUNT(Id) > 1":
            ("MALFORMED_QUERY", "Aggregate functions are only allowed"),
        "SELECT COUNT(Id) c, MAX(Name) c FROM Account":
            ("MALFORMED_QUERY", "duplicate alias: c"),
    }
    for soql, (code, message) in cases.items():
        error = refused(api, soql)
        assert error["errorCode"] == code and message in error["message"], (soql, error)
    located = refused(api, "SELECT SUM(Name) FROM Account")["message"]
    assert "ERROR at Row:1:Column:8" in located


def test_bulk_query_jobs_refuse_aggregates_and_subqueries(api, data):
    message = "Aggregate Relationships not supported in Bulk V2 Query with CSV content type"
    for soql in ("SELECT COUNT() FROM Account", "SELECT COUNT(Id) FROM Account",
                 "SELECT Industry, MAX(NumberOfEmployees) FROM Account GROUP BY Industry",
                 "SELECT Name, (SELECT LastName FROM Contacts) FROM Account"):
        r = api.request("POST", "/jobs/query", json={"operation": "query", "query": soql})
        assert (r.status_code, r.json()) == (400, [{"errorCode": "API_ERROR",
                                                    "message": message}]), soql


def test_bulk_query_jobs_refuse_compound_fields(api, data):
    r = api.request("POST", "/jobs/query",
                    json={"operation": "query", "query": "SELECT BillingAddress FROM Account"})
    assert (r.status_code, r.json()) == (400, [{
        "errorCode": "FUNCTIONALITY_NOT_ENABLED",
        "message": "Selecting compound data not supported in Bulk Query"}])


# -- parent-to-child subqueries ---------------------------------------------------------------


def test_child_records_nest_under_the_relationship_name_or_null(api, data):
    body = q(api, "SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) "
                  "FROM Account ORDER BY Name")
    assert body["totalSize"] == 4
    by_name = {r["Name"]: r["Contacts"] for r in body["records"]}
    assert by_name["Empty"] is None and by_name["Initech"] is None
    acme = by_name["Acme"]
    assert acme["totalSize"] == 2 and acme["done"] is True
    assert [c["LastName"] for c in acme["records"]] == ["Jones", "Smith"]
    first = acme["records"][0]
    assert first["attributes"]["type"] == "Contact"
    assert first["attributes"]["url"].startswith("/services/data/v66.0/sobjects/Contact/003")
    assert [c["LastName"] for c in by_name["Globex"]["records"]] == ["Brown"]


def test_a_child_subquery_filters_and_reaches_parents(api, data):
    body = q(api, "SELECT Name, (SELECT Name, Amount, Account.Name FROM Opportunities "
                  "WHERE StageName = 'Closed Won') FROM Account WHERE Name IN ('Acme', 'Initech') "
                  "ORDER BY Name")
    acme, initech = body["records"]
    (big,) = acme["Opportunities"]["records"]
    assert (big["Name"], big["Amount"], big["Account"]["Name"]) == ("Big", 1000.0, "Acme")
    assert initech["Opportunities"] is None


def test_an_unknown_child_relationship_is_refused(api, data):
    error = refused(api, "SELECT Name, (SELECT LastName FROM Contactz) FROM Account")
    assert error["errorCode"] == "INVALID_TYPE"
    assert "Didn't understand relationship 'Contactz' in FROM part of query call" in \
        error["message"]


# -- semi-joins and anti-joins ----------------------------------------------------------------

SEMI_JOINS = {
    # Id semi-join (parent to child) and its anti-join.
    "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact) ORDER BY Name":
        ["Acme", "Globex"],
    "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact) ORDER BY Name":
        ["Empty", "Initech"],
    "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity "
    "WHERE StageName = 'Closed Won') ORDER BY Name": ["Acme", "Globex"],
    # Two of them, with AND and an ordinary condition.
    "SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact) AND Id NOT IN "
    "(SELECT AccountId FROM Opportunity WHERE StageName = 'Prospecting') AND Name != 'x'":
        ["Globex"],
    # Reference-field semi-join (child to parent): a null lookup is kept by NOT IN.
    "SELECT LastName FROM Contact WHERE AccountId IN (SELECT Id FROM Account "
    "WHERE Industry = 'Manufacturing') ORDER BY LastName": ["Jones", "Smith"],
    "SELECT LastName FROM Contact WHERE AccountId NOT IN (SELECT Id FROM Account "
    "WHERE Industry = 'Manufacturing') ORDER BY LastName": ["Brown", "Orphan"],
    # Child to child, and a parent path inside the sub-select's WHERE.
    "SELECT Name FROM Opportunity WHERE AccountId IN (SELECT AccountId FROM Contact "
    "WHERE LastName = 'Brown')": ["Deal"],
    "SELECT Name FROM Opportunity WHERE AccountId IN (SELECT AccountId FROM Contact "
    "WHERE Account.NumberOfEmployees > 60) ORDER BY Name": ["Big", "Small"],
}


def test_semi_and_anti_joins_in_rest(api, data):
    for soql, expected in SEMI_JOINS.items():
        body = q(api, soql)
        assert [next(v for k, v in r.items() if k != "attributes")
                for r in body["records"]] == expected, soql


def test_semi_and_anti_joins_in_bulk_query_jobs(api, data):
    for soql, expected in SEMI_JOINS.items():
        job = run(api, soql)
        assert job["state"] == "JobComplete", (soql, job)
        r = results(api, job["id"])
        assert [row[0] for row in rows(r.text)[1:]] == expected, soql


def test_semi_join_restrictions(api, data):
    base = "SELECT Name FROM Account WHERE "
    cases = {
        "Name = 'x' OR Id IN (SELECT AccountId FROM Contact)":
            ("MALFORMED_QUERY", "Semi join sub-selects are not allowed with the 'OR' operator"),
        "Id IN (SELECT AccountId FROM Contact WHERE Id IN (SELECT ContactId FROM Case))":
            ("MALFORMED_QUERY", "Nesting of semi join sub-selects is not supported"),
        "Id IN (SELECT AccountId FROM Contact) AND Id IN (SELECT AccountId FROM Opportunity) "
        "AND Id IN (SELECT AccountId FROM Case)":
            ("MALFORMED_QUERY", "Maximum 2 semi join sub-selects are allowed"),
        "NOT (Id IN (SELECT AccountId FROM Contact))":
            ("MALFORMED_QUERY", "NOT operator"),
        "Id IN (SELECT AccountId FROM Contact ORDER BY LastName)":
            ("MALFORMED_QUERY", "not allowed in semi join sub-selects"),
        "Id IN (SELECT AccountId FROM Contact LIMIT 5)":
            ("MALFORMED_QUERY", "not allowed in semi join sub-selects"),
        "Name IN (SELECT AccountId FROM Contact)":
            ("INVALID_FIELD", "Id or reference field, not 'Name'"),
        "Id IN (SELECT LastName FROM Contact)":
            ("INVALID_FIELD", "not 'LastName'"),
        "Id IN (SELECT Account.OwnerId FROM Contact)":
            ("INVALID_FIELD", "not 'Account.OwnerId'"),
        "OwnerId IN (SELECT AccountId FROM Contact)":
            ("INVALID_FIELD", "do not reference the same object"),
        "Id IN (SELECT AccountId, LastName FROM Contact)":
            ("MALFORMED_QUERY", "exactly one Id or reference field"),
        "Id IN (SELECT AccountId FROM Nothing__c)":
            ("INVALID_TYPE", "sObject type 'Nothing__c' is not supported"),
    }
    for where, (code, message) in cases.items():
        error = refused(api, base + where)
        assert error["errorCode"] == code and message in error["message"], (where, error)
    error = refused(api, base + "Name = 'x' OR Id IN (SELECT AccountId FROM Contact)")
    assert "ERROR at Row:1:Column:53" in error["message"]  # at the sub-select's SELECT
