"""Tests for the local org's SOQL subset (sfbulk_nb.localorg.soql), clause by clause,
against a small org in a temporary SQLite file."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from sfbulk_nb.localorg.catalog import Catalog
from sfbulk_nb.localorg.soql import SoqlError, compile_query, count, execute
from sfbulk_nb.localorg.store import Store

# Half an hour into 2024-03-01 UTC: TODAY is 2024-03-01, YESTERDAY the leap day.
NOW = datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)
STAMP = "2024-01-10T08:00:00.000Z"
FIELD_HINT = ("If you are attempting to use a custom field, be sure to append the '__c' after "
              "the custom field name. Please reference your WSDL or the describe call for the "
              "appropriate names.")
RELATIONSHIP_HINT = ("If you are attempting to use a custom relationship, be sure to append "
                     "the '__r' after the custom relationship name. Please reference your WSDL "
                     "or the describe call for the appropriate names.")


def add(store: Store, obj_name: str, **fields) -> str:
    obj = store.catalog.get(obj_name)
    record_id = store.allocate_ids(obj.key_prefix, 1)[0]
    row = {"Id": record_id, "IsDeleted": 0, "CreatedDate": STAMP, "LastModifiedDate": STAMP,
           "SystemModstamp": STAMP, **fields}
    with store.transaction() as conn:
        store.insert_records(conn, obj, list(row), [list(row.values())])
    return record_id


@pytest.fixture(scope="module")
def org(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("soql") / "org.db", Catalog())
    ada = add(store, "User", Username="ada@example.com", LastName="Lovelace", FirstName="Ada",
              Name="Ada Lovelace", Email="ada@example.com", IsActive=1)
    acme = add(store, "Account", Name="Acme", Industry="Technology", AnnualRevenue=1000000.5,
               NumberOfEmployees=50, Active__c=1, Founded__c="2024-03-01",
               LastReviewed__c="2024-03-01T00:00:00.000Z", BillingCity="Paris",
               BillingCountry="France", OwnerId=ada)
    globex = add(store, "Account", Name="Globex", Industry="Energy", AnnualRevenue=250000.0,
                 NumberOfEmployees=1200, Active__c=0, Founded__c="2024-02-29",
                 LastReviewed__c="2024-02-29T23:59:59.999Z", BillingCountry="USA")
    add(store, "Account", Name="initech", Founded__c="2024-03-02", BillingCity="Austin",
        BillingCountry="USA")
    add(store, "Account", Name="O'Brien & Sons", Industry="Retail", AnnualRevenue=10.0,
        NumberOfEmployees=3, Active__c=1, Founded__c="2024-01-15",
        LastReviewed__c="2023-06-01T12:00:00.000Z", BillingCity="Dublin",
        BillingCountry="Line1\nLine2")
    add(store, "Account", Name="50% Off_Sale", Industry="Retail", NumberOfEmployees=-3,
        Active__c=0, Founded__c="2023-12-31", BillingCountry='Tab\t"q" back\\slash')
    add(store, "Account", Name="x' OR 1=1 --", Active__c=0)
    add(store, "Account", Name="Café", Industry="Food", AnnualRevenue=5.25, NumberOfEmployees=7,
        Active__c=0, BillingCity="Lyon", BillingCountry="France")
    gone = add(store, "Account", Name="Gone Corp", IsDeleted=1, Industry="Technology",
               AnnualRevenue=99.0, NumberOfEmployees=1, Active__c=1, Founded__c="2024-03-01",
               BillingCity="Paris", BillingCountry="France")
    add(store, "Contact", LastName="Smith", Name="Jane Smith", AccountId=acme,
        Email="jane@acme.com")
    add(store, "Contact", LastName="Jones", Name="Bob Jones", AccountId=globex)
    add(store, "Contact", LastName="Orphan", Name="Olly Orphan")
    add(store, "Contact", LastName="Ghost", Name="Gary Ghost", AccountId=gone)
    add(store, "Contact", LastName="Leted", Name="Dee Leted", AccountId=acme, IsDeleted=1)
    yield SimpleNamespace(store=store, ada=ada, acme=acme, globex=globex, gone=gone)
    store.close()


def rows(org, soql: str, **kw) -> list[tuple]:
    return list(execute(org.store, compile_query(soql, org.store.catalog, now=NOW, **kw)))


def names(org, where: str, **kw) -> set[str]:
    return {r[0] for r in rows(org, f"SELECT Name FROM Account WHERE {where}", **kw)}


def error(org, soql: str, **kw) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        compile_query(soql, org.store.catalog, now=NOW, **kw)
    return info.value


def located(query: str, column: int, detail: str, row: int = 1) -> str:
    """Salesforce's message shape; `column` (1-based) is counted by hand in each test."""
    return f"\n{query}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{detail}"


ALL = {"Acme", "Globex", "initech", "O'Brien & Sons", "50% Off_Sale", "x' OR 1=1 --", "Café"}


# -- SELECT ---------------------------------------------------------------------------


def test_plain_fields_come_back_in_their_stored_form(org):
    assert rows(org, "SELECT Id, Name, NumberOfEmployees, Active__c, AnnualRevenue, Founded__c, "
                     "LastReviewed__c FROM Account WHERE Name = 'Acme'") == [
        (org.acme, "Acme", 50, 1, 1000000.5, "2024-03-01", "2024-03-01T00:00:00.000Z")]


def test_parent_field_through_a_lookup_is_none_when_the_lookup_is_empty(org):
    assert rows(org, "SELECT Name, Account.Name FROM Contact ORDER BY Name") == [
        ("Bob Jones", "Globex"), ("Gary Ghost", None), ("Jane Smith", "Acme"),
        ("Olly Orphan", None)]


def test_parent_path_two_levels_deep(org):
    assert rows(org, "SELECT Name, Account.Owner.Email, Account.Owner.Name FROM Contact "
                     "WHERE AccountId != null ORDER BY Name") == [
        ("Bob Jones", None, None), ("Gary Ghost", None, None),
        ("Jane Smith", "ada@example.com", "Ada Lovelace")]


def test_owner_relationship_on_account(org):
    assert rows(org, "SELECT Owner.Email, CreatedBy.Name FROM Account WHERE Name = 'Acme'") == [
        ("ada@example.com", None)]


def test_columns_carry_schema_case_relationships_and_objects(org):
    q = compile_query("select id, account.name, ACCOUNT.OWNER.EMAIL from contact",
                      org.store.catalog)
    assert q.object.name == "Contact"
    assert [(c.path, c.field.name, c.relationships, c.objects) for c in q.columns] == [
        ("Id", "Id", (), ("Contact",)),
        ("Account.Name", "Name", ("Account",), ("Contact", "Account")),
        ("Account.Owner.Email", "Email", ("Account", "Owner"), ("Contact", "Account", "User"))]
    assert not q.count_only and q.limit is None and q.offset == 0


def test_a_field_may_be_prefixed_with_the_queried_object(org):
    q = compile_query("SELECT Account.Name FROM Account WHERE Account.Name = 'Acme'",
                      org.store.catalog)
    assert [c.path for c in q.columns] == ["Name"]
    assert list(execute(org.store, q)) == [("Acme",)]


def test_count_alone(org):
    q = compile_query("SELECT COUNT() FROM Account", org.store.catalog)
    assert q.count_only and q.columns == []
    assert list(execute(org.store, q)) == [(7,)]
    assert count(org.store, q) == 7


@pytest.mark.parametrize("soql, kw, expected", [
    ("SELECT COUNT() FROM Account WHERE Industry = 'Retail'", {}, 2),
    ("SELECT count() FROM Account WHERE Industry = 'Retail' LIMIT 1", {}, 1),
    ("SELECT COUNT() FROM Account", {"include_deleted": True}, 8),
    ("SELECT COUNT() FROM Contact", {}, 4),
    ("SELECT COUNT() FROM Contact", {"include_deleted": True}, 5),
])
def test_count_with_filters_limit_and_deleted_rows(org, soql, kw, expected):
    q = compile_query(soql, org.store.catalog, **kw)
    assert list(execute(org.store, q)) == [(expected,)]
    assert count(org.store, q) == expected


# -- WHERE: operators ---------------------------------------------------------------


@pytest.mark.parametrize("where, expected", [
    ("Industry = 'Retail'", {"O'Brien & Sons", "50% Off_Sale"}),
    # SOQL's != keeps records whose field is null.
    ("Industry != 'Retail'", {"Acme", "Globex", "initech", "x' OR 1=1 --", "Café"}),
    ("Industry <> 'Retail'", {"Acme", "Globex", "initech", "x' OR 1=1 --", "Café"}),
    ("NumberOfEmployees < 7", {"O'Brien & Sons", "50% Off_Sale"}),
    ("NumberOfEmployees <= 7", {"O'Brien & Sons", "50% Off_Sale", "Café"}),
    ("NumberOfEmployees > 50", {"Globex"}),
    ("NumberOfEmployees >= 50", {"Acme", "Globex"}),
    ("Name LIKE 'g%'", {"Globex"}),
    ("Industry IN ('Energy', 'Food')", {"Globex", "Café"}),
    ("Industry NOT IN ('Energy', 'Food')",
     {"Acme", "initech", "O'Brien & Sons", "50% Off_Sale", "x' OR 1=1 --"}),
    ("Industry IN ('Energy', null)", {"Globex", "initech", "x' OR 1=1 --"}),
    ("Industry not in ('Energy', null)", {"Acme", "O'Brien & Sons", "50% Off_Sale", "Café"}),
])
def test_comparison_operators(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("Name LIKE 'ACME'", {"Acme"}),                        # case-insensitive
    ("Name LIKE '_lobex'", {"Globex"}),                    # _ is one character
    ("Name LIKE '%\\%%'", {"50% Off_Sale"}),               # \% is a percent sign
    ("Name LIKE '50\\% Off\\_Sale'", {"50% Off_Sale"}),
    ("Name LIKE '50_ Off_Sal_'", {"50% Off_Sale"}),
    ("Name LIKE 'Globe\\_'", set()),                       # \_ is not a wildcard
    ("Name LIKE 'x\\' OR%'", {"x' OR 1=1 --"}),
    ("Name LIKE '%'", ALL),
])
def test_like_wildcards_and_escapes(org, where, expected):
    assert names(org, where) == expected


# -- WHERE: AND, OR, NOT and parentheses --------------------------------------------


@pytest.mark.parametrize("where, expected", [
    ("Industry = 'Retail' AND NumberOfEmployees > 0", {"O'Brien & Sons"}),
    ("Industry = 'Energy' OR Industry = 'Food'", {"Globex", "Café"}),
    ("Industry = 'Energy' OR Industry = 'Food' OR Name = 'Acme'", {"Globex", "Café", "Acme"}),
    ("(Industry = 'Retail' OR Industry = 'Energy') AND NumberOfEmployees > 0",
     {"O'Brien & Sons", "Globex"}),
    ("Industry = 'Retail' OR (Industry = 'Energy' AND NumberOfEmployees > 0)",
     {"O'Brien & Sons", "50% Off_Sale", "Globex"}),
    ("(Industry = 'Retail' OR Industry = 'Energy') AND (NumberOfEmployees < 0 OR "
     "Active__c = false)", {"Globex", "50% Off_Sale"}),
    ("((Industry = 'Food'))", {"Café"}),
    ("NOT Industry = 'Retail'", {"Acme", "Globex", "initech", "x' OR 1=1 --", "Café"}),
    ("NOT (Industry = 'Retail' OR Industry = 'Energy')",
     {"Acme", "initech", "x' OR 1=1 --", "Café"}),
    ("(NOT Name LIKE '%a%') AND Industry != null", {"Globex", "O'Brien & Sons"}),
    ("NOT (NOT Industry = 'Food')", {"Café"}),
])
def test_logical_operators_and_parentheses(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, column, token", [
    # SOQL has no precedence between AND and OR: mixing them needs parentheses.
    ("Name = 'x' AND Industry = 'y' OR Active__c = true", 60, "OR"),
    ("Name = 'x' OR Industry = 'y' AND Active__c = true", 59, "AND"),
    ("NOT Name = 'x' AND Industry = 'y'", 45, "AND"),
])
def test_mixing_and_with_or_needs_parentheses(org, where, column, token):
    soql = f"SELECT Id FROM Account WHERE {where}"
    e = error(org, soql)
    assert (e.code, e.message) == (
        "MALFORMED_QUERY", located(soql, column, f"unexpected token: '{token}'"))


# -- WHERE: null, booleans, numbers, strings ----------------------------------------


@pytest.mark.parametrize("where, expected", [
    ("BillingCity = null", {"Globex", "50% Off_Sale", "x' OR 1=1 --"}),
    ("BillingCity != null", {"Acme", "initech", "O'Brien & Sons", "Café"}),
    ("BillingCity != 'Paris'", ALL - {"Acme"}),
    ("BillingCity < 'M'", {"initech", "O'Brien & Sons", "Café"}),
    ("NOT BillingCity < 'M'", {"Acme", "Globex", "50% Off_Sale", "x' OR 1=1 --"}),
    ("AnnualRevenue = NULL", {"initech", "50% Off_Sale", "x' OR 1=1 --"}),
])
def test_null(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("Active__c = true", {"Acme", "O'Brien & Sons"}),
    ("Active__c = TRUE", {"Acme", "O'Brien & Sons"}),
    ("Active__c = false", ALL - {"Acme", "O'Brien & Sons"}),   # initech's null is false
    ("Active__c != false", {"Acme", "O'Brien & Sons"}),
    # Salesforce documents that a boolean compared with null means false.
    ("Active__c = null", ALL - {"Acme", "O'Brien & Sons"}),
    ("Active__c != null", {"Acme", "O'Brien & Sons"}),
])
def test_booleans(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("AnnualRevenue = 1000000.5", {"Acme"}),
    ("AnnualRevenue > 10", {"Acme", "Globex"}),
    ("AnnualRevenue < 10.5", {"O'Brien & Sons", "Café"}),
    ("AnnualRevenue = 5.25", {"Café"}),
    ("NumberOfEmployees = -3", {"50% Off_Sale"}),
    ("NumberOfEmployees > -4 AND NumberOfEmployees < 4", {"O'Brien & Sons", "50% Off_Sale"}),
    ("NumberOfEmployees IN (3, 7)", {"O'Brien & Sons", "Café"}),
    ("NumberOfEmployees < 99999999999999999999", ALL - {"initech", "x' OR 1=1 --"}),
])
def test_numbers(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("Name = 'O\\'Brien & Sons'", {"O'Brien & Sons"}),
    ("BillingCountry = 'Line1\\nLine2'", {"O'Brien & Sons"}),
    ("BillingCountry = 'Line1\\NLine2'", {"O'Brien & Sons"}),
    ("BillingCountry = 'Tab\\t\\\"q\\\" back\\\\slash'", {"50% Off_Sale"}),
    ("BillingCountry = 'tab\\t\"Q\" BACK\\\\SLASH'", {"50% Off_Sale"}),
    ("Name = 'Caf\\u00e9'", {"Café"}),
    ("Name = 'Line1\\rLine2'", set()),
])
def test_string_escapes(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("Name = 'acme'", {"Acme"}),
    ("Name = 'ACME'", {"Acme"}),
    ("Name IN ('GLOBEX', 'acme')", {"Acme", "Globex"}),
    ("Industry != 'technology'", ALL - {"Acme"}),
    ("Name < 'b'", {"50% Off_Sale", "Acme"}),  # a binary comparison would add Café, Globex...
])
def test_text_comparisons_ignore_case(org, where, expected):
    assert names(org, where) == expected


def test_keywords_and_field_names_ignore_case(org):
    q = compile_query("select name, ACCOUNT.name from CONTACT where account.NAME = 'acme' "
                      "order by NAME asc nulls last limit 5", org.store.catalog)
    assert [c.path for c in q.columns] == ["Name", "Account.Name"]
    assert list(execute(org.store, q)) == [("Jane Smith", "Acme")]
    assert names(org, "NaMe LiKe 'acm%' AnD Active__c = TrUe") == {"Acme"}


def test_ids_match_in_15_and_18_character_form(org):
    assert names(org, f"Id = '{org.acme[:15]}'") == {"Acme"}
    assert names(org, f"Id = '{org.acme[:15].swapcase()}'") == set()  # 15 characters: exact
    assert names(org, f"Id = '{org.acme.lower()}'") == {"Acme"}  # 18 characters: any case
    assert rows(org, f"SELECT Name FROM Contact WHERE AccountId IN ('{org.acme}', "
                     f"'{org.globex[:15]}') ORDER BY Name") == [("Bob Jones",), ("Jane Smith",)]


def test_relationship_paths_in_where(org):
    def contacts(where: str, **kw) -> list[str]:
        return [r[0] for r in rows(org, f"SELECT Name FROM Contact WHERE {where} ORDER BY Name",
                                   **kw)]

    assert contacts("Account.Industry = 'technology'") == ["Jane Smith"]
    assert contacts("Account.Owner.Email = 'ada@example.com'") == ["Jane Smith"]
    # A missing parent (none, or deleted) reads as null, so the child still matches.
    assert contacts("Account.Name = null") == ["Gary Ghost", "Olly Orphan"]
    assert contacts("Account.Name = null", include_deleted=True) == ["Olly Orphan"]


# -- WHERE: dates and datetimes -----------------------------------------------------


@pytest.mark.parametrize("where, expected", [
    ("Founded__c = 2024-03-01", {"Acme"}),
    ("Founded__c > 2024-02-29", {"Acme", "initech"}),
    ("Founded__c = TODAY", {"Acme"}),
    ("Founded__c = YESTERDAY", {"Globex"}),
    ("Founded__c = TOMORROW", {"initech"}),
    ("Founded__c = LAST_N_DAYS:1", {"Acme", "Globex"}),  # includes today
    ("Founded__c = LAST_N_DAYS:0", {"Acme"}),
    ("Founded__c = NEXT_N_DAYS:1", {"initech"}),         # starts tomorrow
    ("Founded__c = THIS_MONTH", {"Acme", "initech"}),
    ("Founded__c = LAST_MONTH", {"Globex"}),
    ("Founded__c = LAST_N_MONTHS:2", {"Globex", "O'Brien & Sons"}),
    ("Founded__c = THIS_YEAR", {"Acme", "Globex", "initech", "O'Brien & Sons"}),
    ("Founded__c = LAST_YEAR", {"50% Off_Sale"}),
    ("Founded__c = LAST_N_YEARS:1", {"50% Off_Sale"}),
    ("Founded__c < THIS_YEAR", {"50% Off_Sale"}),
    ("Founded__c <= LAST_MONTH", {"Globex", "O'Brien & Sons", "50% Off_Sale"}),
    ("Founded__c > LAST_MONTH", {"Acme", "initech"}),
    ("Founded__c >= THIS_MONTH", {"Acme", "initech"}),
    ("Founded__c != THIS_MONTH",
     {"Globex", "O'Brien & Sons", "50% Off_Sale", "x' OR 1=1 --", "Café"}),
    ("Founded__c IN (YESTERDAY, tomorrow)", {"Globex", "initech"}),
])
def test_date_literals_on_a_date_field(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("where, expected", [
    ("LastReviewed__c = 2024-03-01T00:00:00Z", {"Acme"}),
    ("LastReviewed__c = 2024-03-01T00:00:00.000Z", {"Acme"}),
    ("LastReviewed__c = 2024-03-01T01:00:00+01:00", {"Acme"}),
    ("LastReviewed__c = 2024-02-29T19:00:00-05:00", {"Acme"}),
    ("LastReviewed__c > 2024-02-29T23:59:59Z", {"Acme", "Globex"}),  # .999 is after :59
    ("LastReviewed__c < 2024-02-29T23:59:59.999Z", {"O'Brien & Sons"}),
    ("LastReviewed__c = TODAY", {"Acme"}),
    ("LastReviewed__c = YESTERDAY", {"Globex"}),
    ("LastReviewed__c = LAST_N_DAYS:1", {"Acme", "Globex"}),
    ("LastReviewed__c >= TODAY", {"Acme"}),
    ("LastReviewed__c < YESTERDAY", {"O'Brien & Sons"}),
    ("LastReviewed__c = THIS_YEAR", {"Acme", "Globex"}),
    ("LastReviewed__c = LAST_YEAR", {"O'Brien & Sons"}),
])
def test_datetime_values_and_date_literals_on_a_datetime_field(org, where, expected):
    assert names(org, where) == expected


@pytest.mark.parametrize("now, today, yesterday", [
    (datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=timezone.utc), "Globex", set()),
    (datetime(2024, 3, 1, 0, 0, tzinfo=timezone.utc), "Acme", {"Globex"}),
    # 20:30 in New York on the 29th is already the 1st in UTC.
    (datetime(2024, 2, 29, 20, 30, tzinfo=timezone(timedelta(hours=-5))), "Acme", {"Globex"}),
    (datetime(2024, 3, 1, 0, 30), "Acme", {"Globex"}),  # naive: read as UTC
])
def test_date_literals_follow_the_utc_day_of_now(org, now, today, yesterday):
    def find(literal):
        return {r[0] for r in execute(org.store, compile_query(
            f"SELECT Name FROM Account WHERE LastReviewed__c = {literal}", org.store.catalog,
            now=now))}

    assert find("TODAY") == {today}
    assert find("YESTERDAY") == yesterday


# -- ORDER BY, LIMIT, OFFSET ----------------------------------------------------------


def employees(org, order: str) -> list:
    return [r[1] for r in rows(org, f"SELECT Name, NumberOfEmployees FROM Account ORDER BY "
                                    f"{order}")]


@pytest.mark.parametrize("order, expected", [
    ("NumberOfEmployees", [None, None, -3, 3, 7, 50, 1200]),           # ASC: nulls first
    ("NumberOfEmployees ASC", [None, None, -3, 3, 7, 50, 1200]),
    ("NumberOfEmployees DESC", [1200, 50, 7, 3, -3, None, None]),      # DESC: nulls last
    ("NumberOfEmployees ASC NULLS LAST", [-3, 3, 7, 50, 1200, None, None]),
    ("NumberOfEmployees DESC NULLS FIRST", [None, None, 1200, 50, 7, 3, -3]),
])
def test_order_by_nulls(org, order, expected):
    assert employees(org, order) == expected


def test_order_by_text_ignores_case(org):
    assert [r[0] for r in rows(org, "SELECT Name FROM Account ORDER BY Name")] == [
        "50% Off_Sale", "Acme", "Café", "Globex", "initech", "O'Brien & Sons", "x' OR 1=1 --"]


def test_order_by_several_keys(org):
    assert [r[0] for r in rows(org, "SELECT Name FROM Account ORDER BY Industry, Name DESC")] == [
        "x' OR 1=1 --", "initech", "Globex", "Café", "O'Brien & Sons", "50% Off_Sale", "Acme"]


def test_order_by_a_parent_field(org):
    assert rows(org, "SELECT Name FROM Contact ORDER BY Account.Name NULLS LAST, Name") == [
        ("Jane Smith",), ("Bob Jones",), ("Gary Ghost",), ("Olly Orphan",)]


@pytest.mark.parametrize("clause, expected", [
    ("LIMIT 3", ["50% Off_Sale", "Acme", "Café"]),
    ("LIMIT 2 OFFSET 2", ["Café", "Globex"]),
    ("OFFSET 5", ["O'Brien & Sons", "x' OR 1=1 --"]),
    ("LIMIT 0", []),
    ("LIMIT 10 OFFSET 7", []),
])
def test_limit_and_offset(org, clause, expected):
    q = compile_query(f"SELECT Name FROM Account ORDER BY Name {clause}", org.store.catalog)
    assert [r[0] for r in execute(org.store, q)] == expected
    assert count(org.store, q) == len(expected)


def test_limit_and_offset_are_reported(org):
    q = compile_query("SELECT Name FROM Account LIMIT 4 OFFSET 3", org.store.catalog)
    assert (q.limit, q.offset) == (4, 3)


# -- queryAll -------------------------------------------------------------------------


def test_deleted_records_only_with_include_deleted(org):
    assert names(org, "Industry = 'Technology'") == {"Acme"}
    assert names(org, "Industry = 'Technology'", include_deleted=True) == {"Acme", "Gone Corp"}
    assert rows(org, "SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true") == []
    assert rows(org, "SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true",
                include_deleted=True) == [("Gone Corp", 1)]


def test_a_deleted_parent_shows_only_with_include_deleted(org):
    soql = "SELECT Account.Name FROM Contact WHERE Name = 'Gary Ghost'"
    assert rows(org, soql) == [(None,)]
    assert rows(org, soql, include_deleted=True) == [("Gone Corp",)]


# -- errors ---------------------------------------------------------------------------


def test_unexpected_token_has_salesforce_shape(org):
    e = error(org, "SELECT Name FRM Account")
    assert e.code == "MALFORMED_QUERY"
    assert e.message == ("\nSELECT Name FRM Account\n            ^\nERROR at Row:1:Column:13\n"
                         "unexpected token: 'FRM'")


def test_unknown_field(org):
    e = error(org, "SELECT Bogus FROM Account")
    assert e.code == "INVALID_FIELD"
    assert e.message == (
        "\nSELECT Bogus FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Bogus' "
        "on entity 'Account'. If you are attempting to use a custom field, be sure to append "
        "the '__c' after the custom field name. Please reference your WSDL or the describe call "
        "for the appropriate names.")


def test_unknown_object(org):
    e = error(org, "SELECT Bogus FROM Nope")
    assert e.code == "INVALID_TYPE"
    assert e.message == (
        "\nSELECT Bogus FROM Nope\n                  ^\nERROR at Row:1:Column:19\nsObject type "
        "'Nope' is not supported. If you are attempting to use a custom object, be sure to "
        "append the '__c' after the entity name. Please reference your WSDL or the describe "
        "call for the appropriate names.")


def test_error_on_a_later_line_reports_that_row(org):
    soql = "SELECT Id\nFROM Account\nWHERE Bogus__c = 1"
    e = error(org, soql)
    assert (e.code, e.message) == ("INVALID_FIELD", located(
        "WHERE Bogus__c = 1", 7, f"No such column 'Bogus__c' on entity 'Account'. {FIELD_HINT}",
        row=3))


@pytest.mark.parametrize("soql, message", [
    # Salesforce names a wrong first keyword without a position.
    ("SELEKT Name FROM Account", "unexpected token: SELEKT"),
    ("", "SOQL statements cannot be empty or null"),
    ("  \n\t ", "SOQL statements cannot be empty or null"),
])
def test_unpositioned_malformed_queries(org, soql, message):
    e = error(org, soql)
    assert (e.code, e.message) == ("MALFORMED_QUERY", message)


@pytest.mark.parametrize("soql, column, detail", [
    ("SELECT Id FROM Account WHERE", 29, "unexpected token: '<EOF>'"),
    ("SELECT Id, FROM Account", 12, "unexpected token: 'FROM'"),
    ("SELECT COUNT(), Name FROM Account", 15, "unexpected token: ','"),
    ("SELECT Name FROM Account LIMIT -1", 32, "unexpected token: '-1'"),
    ("SELECT Name FROM Account LIMIT 2.5", 32, "unexpected token: '2.5'"),
    ("SELECT Name FROM Account LIMIT 2147483648", 32, "unexpected token: '2147483648'"),
    ("SELECT Name FROM Account WHERE Founded__c = LAST_N_DAYS:99999999", 45,
     "unexpected token: 'LAST_N_DAYS:99999999'"),
    ("SELECT Name FROM Account WHERE Name LIKE null", 42, "unexpected token: 'null'"),
    ("SELECT Name FROM Account WHERE Name IN ()", 41, "unexpected token: ')'"),
    ("SELECT Name FROM Account WHERE Name = ('a')", 39, "unexpected token: '('"),
    ("SELECT Name FROM Account WHERE Founded__c = LAST_N_DAYS", 56, "unexpected token: '<EOF>'"),
    ("SELECT Name FROM Account ORDER BY Name NULLS", 45, "unexpected token: '<EOF>'"),
    ("SELECT Name FROM Account ORDER Name", 32, "unexpected token: 'Name'"),
    ("SELECT Name FROM Account WHERE Name = 'a' 'b'", 43, "unexpected token: ''b''"),
    ("SELECT Name FROM Account WHERE Name = 'abc", 39, "unexpected token: '''"),
    ("SELECT Name FROM Account WHERE Name = 'a\\q'", 41,
     "Invalid string literal 'a\\q'. Illegal character sequence '\\q' in string literal."),
    # \% and \_ only mean something inside LIKE.
    ("SELECT Name FROM Account WHERE Name = 'a\\%'", 41,
     "Invalid string literal 'a\\%'. Illegal character sequence '\\%' in string literal."),
    ("SELECT Name FROM Account WHERE Founded__c = 2024-02-30", 45, "Invalid date: 2024-02-30"),
    ("SELECT Name FROM Account WHERE CreatedDate = 2024-13-01T00:00:00Z", 46,
     "Invalid datetime: 2024-13-01T00:00:00Z"),
    ("SELECT Name FROM Account WHERE CreatedDate = 2024-01-01T10:00", 46,
     "Invalid datetime: 2024-01-01T10:00"),
    ("SELECT Name FROM Account WHERE Name = $x", 39,
     "line 1:38 no viable alternative at character '$'"),
])
def test_malformed_queries_point_at_the_offending_token(org, soql, column, detail):
    e = error(org, soql)
    assert (e.code, e.message) == ("MALFORMED_QUERY", located(soql, column, detail))


@pytest.mark.parametrize("soql, code, column, detail", [
    ("SELECT Name, Acount.Name FROM Contact", "INVALID_FIELD", 14,
     f"Didn't understand relationship 'Acount' in field path. {RELATIONSHIP_HINT}"),
    ("SELECT Account.Bogus FROM Contact", "INVALID_FIELD", 8,
     f"No such column 'Bogus' on entity 'Account'. {FIELD_HINT}"),
    ("SELECT Account FROM Contact", "INVALID_FIELD", 8,
     f"No such column 'Account' on entity 'Contact'. {FIELD_HINT}"),
    # User.ProfileId points at Profile, which this org's catalog does not have.
    ("SELECT Owner.Profile.Name FROM Account", "INVALID_FIELD", 8,
     f"Didn't understand relationship 'Profile' in field path. {RELATIONSHIP_HINT}"),
    ("SELECT Name.Foo FROM Account", "INVALID_FIELD", 8,
     f"Didn't understand relationship 'Name' in field path. {RELATIONSHIP_HINT}"),
    ("SELECT Id FROM Account WHERE Bogus = 1", "INVALID_FIELD", 30,
     f"No such column 'Bogus' on entity 'Account'. {FIELD_HINT}"),
    ("SELECT Id FROM Account ORDER BY Owner.Bogus", "INVALID_FIELD", 33,
     f"No such column 'Bogus' on entity 'User'. {FIELD_HINT}"),
    ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "INVALID_FIELD", 50,
     "value of filter criterion for field 'NumberOfEmployees' must be of type int and should "
     "not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", 37,
     "value of filter criterion for field 'Name' must be of type string and should be "
     "enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Active__c = 'true'", "INVALID_FIELD", 42,
     "value of filter criterion for field 'Active__c' must be of type boolean and should not "
     "be enclosed in quotes"),
    # A date value filters date fields only, a dateTime value dateTime fields only.
    ("SELECT Id FROM Account WHERE Founded__c = 2024-03-01T00:00:00Z", "INVALID_FIELD", 43,
     "value of filter criterion for field 'Founded__c' must be of type date and should not be "
     "enclosed in quotes"),
    ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01", "INVALID_FIELD", 44,
     "value of filter criterion for field 'CreatedDate' must be of type dateTime and should "
     "not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Name LIKE 'a%' AND AnnualRevenue LIKE '1%'", "INVALID_FIELD",
     68, "value of filter criterion for field 'AnnualRevenue' must be of type double and "
         "should not be enclosed in quotes"),
    ("SELECT Id FROM Account WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", 35,
     "invalid ID field: abc"),
    ("SELECT Id FROM Contact WHERE AccountId IN ('001000000000000', 'nope')",
     "INVALID_QUERY_FILTER_OPERATOR", 63, "invalid ID field: nope"),
    ("SELECT Id FROM Account WHERE Id LIKE '001%'", "INVALID_QUERY_FILTER_OPERATOR", 30,
     "invalid operator on id field"),
    ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD", 30,
     "field 'Description' can not be filtered in a query call"),
    ("SELECT Id FROM Account ORDER BY Description", "INVALID_FIELD", 33,
     "field 'Description' can not be sorted in a query call"),
])
def test_semantic_errors(org, soql, code, column, detail):
    e = error(org, soql)
    assert (e.code, e.message) == (code, located(soql, column, detail))


@pytest.mark.parametrize("soql, code, message", [
    ("SELECT Name, name FROM Account", "INVALID_FIELD", "duplicate field selected: Name"),
    ("SELECT Account.Name, account.NAME FROM Contact", "INVALID_FIELD",
     "duplicate field selected: Account.Name"),
    ("SELECT Name FROM Account OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE",
     "Maximum SOQL offset allowed is 2000"),
])
def test_unpositioned_errors(org, soql, code, message):
    e = error(org, soql)
    assert (e.code, e.message) == (code, message)


def test_soql_error_is_an_exception_with_code_and_message():
    e = SoqlError("MALFORMED_QUERY", "unexpected token: X")
    assert isinstance(e, Exception)
    assert str(e) == "MALFORMED_QUERY: unexpected token: X"


# -- injection ------------------------------------------------------------------------


def test_an_escaped_quote_stays_inside_the_string(org):
    assert names(org, "Name = 'x\\' OR 1=1 --'") == {"x' OR 1=1 --"}
    assert names(org, "Name = 'y\\' OR 1=1 --'") == set()


def test_doubled_quotes_end_the_string_and_are_refused(org):
    soql = "SELECT Name FROM Account WHERE Name = 'x''); DROP TABLE sobj_Account; --'"
    e = error(org, soql)
    assert (e.code, e.message) == ("MALFORMED_QUERY", located(
        soql, 42, "unexpected token: ''); DROP TABLE sobj_Account; --''"))
    assert org.store.count_records(org.store.catalog.get("Account")) == 7


@pytest.mark.parametrize("soql, column, char", [
    ("SELECT Name FROM Account; DROP TABLE sobj_Account", 25, ";"),
    ('SELECT "Name" FROM Account', 8, '"'),
    ("SELECT Name FROM Account WHERE Name = 'a' /* x */", 43, "/"),
])
def test_sql_punctuation_is_not_soql(org, soql, column, char):
    e = error(org, soql)
    assert (e.code, e.message) == ("MALFORMED_QUERY", located(
        soql, column, f"line 1:{column - 1} no viable alternative at character '{char}'"))


def test_sql_table_names_are_not_objects(org):
    assert error(org, "SELECT Id FROM sobj_Account").code == "INVALID_TYPE"


def test_values_reach_sqlite_only_as_parameters(org):
    q = compile_query("SELECT Name FROM Account WHERE Name = 'Robert\\'); DROP TABLE x;--' OR "
                      "BillingCity LIKE '%\\\" OR \"1\"=\"1%' OR NumberOfEmployees IN (42, -7)",
                      org.store.catalog)
    for fragment in ("Robert", "DROP", "1\"=\"1", "42", "-7"):
        assert fragment not in q.sql
    assert q.params == ["Robert'); DROP TABLE x;--", '%" OR "1"="1%', 42, -7]
    assert list(execute(org.store, q)) == []


# -- streaming ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("soql-big") / "big.db", Catalog())
    obj = store.catalog.get("Account")
    record_ids = store.allocate_ids(obj.key_prefix, 12_345)
    with store.transaction() as conn:
        store.insert_records(conn, obj, ["Id", "Name", "NumberOfEmployees"],
                             [(rid, f"Account {n}", n) for n, rid in enumerate(record_ids)])
    yield store
    store.close()


def lock_is_free(store: Store) -> bool:
    """Whether another thread can take the store's lock now."""
    got: list[bool] = []

    def probe():
        got.append(store.lock.acquire(timeout=5))
        if got[0]:
            store.lock.release()

    other = threading.Thread(target=probe)
    other.start()
    other.join()
    return got == [True]


def test_a_large_result_streams_without_holding_the_lock(big):
    stream = execute(big, compile_query("SELECT Id, NumberOfEmployees FROM Account",
                                        big.catalog))
    first = next(stream)
    assert lock_is_free(big)  # the job worker can use the store between chunks
    rest = list(stream)
    assert first[1] == 0 and len(rest) == 12_344
    assert [r[1] for r in rest[-2:]] == [12_343, 12_344]


def test_closing_a_stream_early_leaves_the_store_usable(big):
    stream = execute(big, compile_query("SELECT Id FROM Account", big.catalog))
    next(stream)
    stream.close()
    assert lock_is_free(big)
    assert count(big, compile_query("SELECT COUNT() FROM Account", big.catalog)) == 12_345


@pytest.mark.parametrize("soql, expected", [
    ("SELECT Id FROM Account", 12_345),
    ("SELECT Id FROM Account LIMIT 10 OFFSET 2000", 10),
    ("SELECT Id FROM Account WHERE NumberOfEmployees >= 12000", 345),
    ("SELECT COUNT() FROM Account WHERE NumberOfEmployees < 100", 100),
])
def test_count_on_a_large_table(big, soql, expected):
    assert count(big, compile_query(soql, big.catalog)) == expected
