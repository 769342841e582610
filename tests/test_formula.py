"""The formula subset against hand-computed answers, blanks and nulls included."""
import re
from datetime import date, datetime, timezone

import pytest

from sfbulk_nb.formula import FormulaError, UnsupportedFormula, parse

TYPES = {
    ("name",): "string", ("phone",): "phone", ("industry",): "picklist",
    ("amount",): "currency", ("employees",): "int", ("rate",): "percent",
    ("active__c",): "boolean", ("closedate",): "date", ("lastseen__c",): "datetime",
    ("tags__c",): "multipicklist", ("account", "industry"): "picklist",
    ("account", "name"): "string",
}
NOW = datetime(2026, 12, 1, 10, 30, tzinfo=timezone.utc)


def types(path):
    return TYPES.get(tuple(p.lower() for p in path))


def ev(text, record=None, **kw):
    kw.setdefault("now", NOW)
    return parse(text).check(types).evaluate(record or {}, **kw)


@pytest.mark.parametrize("text,record,expected", [
    # arithmetic and precedence
    ("1 + 2 * 3 = 7", {}, True),
    ("(1 + 2) * 3 = 9", {}, True),
    ("2 ^ 3 ^ 1 = 8", {}, True),
    ("10 / 4 = 2.5", {}, True),
    ("-Amount = -5", {"Amount": 5}, True),
    ("7 - 2 - 1 = 4", {}, True),
    # null propagation: a blank number makes the sum blank, and comparisons with blank fail
    ("Amount + 1 = 1", {"Amount": None}, False),
    ("Amount + 1 <> 1", {"Amount": None}, False),
    ("ISNULL(Amount + 1)", {"Amount": None}, True),
    ("Amount > 0", {"Amount": None}, False),
    ("1 / 0 = 0", {}, False),
    ("Amount * 2 = 10", {"Amount": "5"}, True),
    ("ISNULL(Amount * 2)", {"Amount": None}, True),
    ("ISNULL(-Amount)", {}, True),
    ("ISNULL(2 ^ Amount)", {}, True),
    ("ISNULL(Amount / 2)", {}, True),
    ("ISNULL(CloseDate + 1)", {}, True),
    ("Employees - 1 = 2", {"Employees": 3}, True),
    # comparisons
    ("Amount == 5 && Employees != 3", {"Amount": "5.0", "Employees": 4}, True),
    ("Amount <> 5 || Employees < 3", {"Amount": 5, "Employees": 2}, True),
    ("Amount <= 5", {"Amount": 5}, True),
    ("Amount >= 6", {"Amount": 5}, False),
    ("Name = \"acme\"", {"Name": "Acme"}, False),  # text comparison is case-sensitive
    ("Name = \"Acme\"", {"Name": "Acme"}, True),
    ("Name = \"\"", {"Name": None}, True),  # blank text is ""
    ("Active__c = TRUE", {"Active__c": "true"}, True),
    ("Active__c", {"Active__c": 0}, False),
    # percent fields are decimals
    ("Rate = 0.1", {"Rate": 10}, True),
    # text operators
    ("Name & \"-\" & Phone = \"A-1\"", {"Name": "A", "Phone": "1"}, True),
    ("Name + \"x\" = \"x\"", {"Name": None}, True),
    # logic
    ("AND(TRUE, NOT(FALSE), OR(FALSE, TRUE))", {}, True),
    ("AND(TRUE, FALSE)", {}, False),
    ("OR(FALSE, FALSE)", {}, False),
    ("IF(Amount > 10, \"big\", \"small\") = \"small\"", {"Amount": 3}, True),
    ("IF(ISBLANK(Amount), 0, Amount) = 0", {"Amount": None}, True),
    ("CASE(Employees, 1, \"one\", 2, \"two\", \"many\") = \"two\"", {"Employees": 2}, True),
    ("CASE(Employees, 1, \"one\", 2, \"two\", \"many\") = \"many\"", {"Employees": None}, True),
    ("CASE(Industry, \"Banking\", 1, 0) = 1", {"Industry": "Banking"}, True),
    # blanks and nulls
    ("ISBLANK(Name)", {"Name": ""}, True),
    ("ISBLANK(Name)", {"Name": " "}, False),  # a space is a value (Help, ISBLANK)
    ("ISBLANK(Amount)", {"Amount": 0}, False),
    ("ISBLANK(Amount)", {}, True),
    ("ISBLANK(CloseDate)", {"CloseDate": None}, True),
    ("ISNULL(Name)", {"Name": None}, False),  # text is never null
    ("ISNULL(Amount)", {"Amount": None}, True),
    ("ISNULL(CloseDate)", {}, True),
    ("ISNULL(NULL)", {}, True),
    # text functions
    ("LEN(Name) = 4", {"Name": "Acme"}, True),
    ("LEN(Name) = 0", {"Name": None}, True),
    ("BEGINS(Name, \"Ac\")", {"Name": "Acme"}, True),
    ("BEGINS(Name, \"ac\")", {"Name": "Acme"}, False),
    ("CONTAINS(Name, \"cm\")", {"Name": "Acme"}, True),
    ("CONTAINS(Name, \"CM\")", {"Name": "Acme"}, False),
    ("REGEX(Phone, \"[0-9]{3}\")", {"Phone": "123"}, True),
    ("REGEX(Phone, \"[0-9]{3}\")", {"Phone": "1234"}, False),  # the whole text must match
    ("REGEX(Phone, \"\\\\d+\")", {"Phone": "42"}, True),
    ("ISPICKVAL(Industry, \"Banking\")", {"Industry": "Banking"}, True),
    ("ISPICKVAL(Industry, \"Banking\")", {"Industry": None}, False),
    ("ISPICKVAL(Industry, \"\")", {"Industry": None}, True),
    ("TEXT(Industry) = \"Banking\"", {"Industry": "Banking"}, True),
    ("ISBLANK(TEXT(Industry))", {}, True),
    ("TEXT(Amount) = \"12.5\"", {"Amount": 12.5}, True),
    ("TEXT(Employees) = \"3\"", {"Employees": "3"}, True),
    ("TEXT(Amount) = \"\"", {"Amount": None}, True),
    ("TEXT(CloseDate) = \"2026-01-31\"", {"CloseDate": "2026-01-31"}, True),
    ("TEXT(LastSeen__c) = \"2026-01-31 12:00:00Z\"",
     {"LastSeen__c": "2026-01-31T13:00:00.000+01:00"}, True),
    ("VALUE(Phone) = 12.5", {"Phone": " 12.5 "}, True),
    ("ISNULL(VALUE(Phone))", {"Phone": ""}, True),
    # dates
    ("CloseDate < TODAY()", {"CloseDate": "2026-11-30"}, True),
    ("CloseDate + 1 = TODAY()", {"CloseDate": "2026-11-30"}, True),
    ("TODAY() - CloseDate = 2", {"CloseDate": date(2026, 11, 29)}, True),
    ("LastSeen__c < NOW()", {"LastSeen__c": "2026-12-01T10:00:00.000Z"}, True),
    ("NOW() - LastSeen__c = 0.5", {"LastSeen__c": "2026-11-30T22:30:00Z"}, True),
    # names are case-insensitive, comments are skipped
    ("and(isblank(NAME), /* note */ true)", {"name": ""}, True),
    # a parent field through one relationship
    ("ISPICKVAL(Account.Industry, \"Banking\")", {}, False),
])
def test_operators_and_functions(text, record, expected):
    assert ev(text, record) is expected


def test_parent_fields_read_the_parent_record():
    parents = {"Account": {"Industry": "Banking", "Name": "Acme"}}
    assert ev('ISPICKVAL(Account.Industry, "Banking")', {}, parents=parents) is True
    assert ev('account.name = "Acme"', {}, parents=parents) is True
    assert ev('ISBLANK(Account.Name)', {}, parents={}) is True


def test_isnew_ischanged_priorvalue():
    prior = {"Amount": 5, "Name": "Old", "Industry": "Banking"}
    assert ev("ISNEW()", {}, is_new=True) is True
    assert ev("ISNEW()", {}, prior=prior) is False
    assert ev("ISCHANGED(Name)", {"Name": "New"}, prior=prior) is True
    assert ev("ISCHANGED(Name)", {"Name": "Old"}, prior=prior) is False
    # ISCHANGED is FALSE on a new record (Help, ISCHANGED)
    assert ev("ISCHANGED(Name)", {"Name": "New"}, is_new=True) is False
    # blank -> value, and zero -> blank, are changes
    assert ev("ISCHANGED(Amount)", {"Amount": None}, prior={"Amount": 0}) is True
    assert ev("ISCHANGED(Amount)", {"Amount": 1}, prior={"Amount": None}) is True
    assert ev("ISCHANGED(Amount)", {"Amount": "5.00"}, prior=prior) is False
    assert ev("PRIORVALUE(Amount) > Amount", {"Amount": 3}, prior=prior) is True
    # PRIORVALUE on a new record is the current value (Help, PRIORVALUE)
    assert ev('PRIORVALUE(Name) = "New"', {"Name": "New"}, is_new=True) is True
    assert ev('ISPICKVAL(PRIORVALUE(Industry), "Banking")', {"Industry": "Energy"},
              prior=prior) is True
    assert ev("ISCHANGED(Industry)", {"Industry": "Energy"}, prior=prior) is True


def test_referenced_fields_and_needs():
    f = parse("AND(ISCHANGED(Name), Account.Industry = 'x', Amount > 1)")
    assert f.fields == {("Name",), ("Account", "Industry"), ("Amount",)}
    assert f.parent_fields == {("Account", "Industry")}
    assert f.needs_prior
    assert not parse("Amount > 1").needs_prior


@pytest.mark.parametrize("text,message", [
    ("ISNUMBER(Name)", "function ISNUMBER() is not supported"),
    ("INCLUDES(Tags__c, 'a')", "function INCLUDES() is not supported"),
    ("Account.Owner.Name = 'x'", "more than one relationship hop"),
    ("$User.Id = 'x'", "global variable $User"),
    ("ISBLANK(Tags__c)", "field Tags__c of type multipicklist is not supported"),
    ("Name < 'b'", "ordering text"),
])
def test_outside_the_subset_is_refused_by_name(text, message):
    with pytest.raises(UnsupportedFormula, match=re.escape(message)):
        parse(text).check(types)


@pytest.mark.parametrize("text,message", [
    ("AND(TRUE", "formula ends"),
    ("1 +", "formula ends"),
    ("Name = 'a' )", "unexpected"),
    ("Nope__c > 1", "Field Nope__c does not exist"),
    ("Industry = 'Banking'", "picklist field"),
    ("ISBLANK(Industry)", "picklist field"),
    ("CASE(Employees, 1, 'one')", "CASE"),
    ("IF(TRUE, 1)", "Expected 3, received 2"),
    ("Amount + 1", "incompatible with expected data type"),
    ("Name = 1", "Incorrect parameter type"),
    ("LEN(Amount) > 1", "Incorrect parameter type for LEN()"),
    ("TEXT(Name) = 'a'", "TEXT()"),
    ("ISPICKVAL(Industry, Name)", "text literal"),
    ("ISCHANGED(Account.Name)", "field of the record"),
    ("REGEX(Name, '[')", "invalid regular expression"),
    ("Name = 'a' # 1", "Syntax error"),
    ("", "empty"),
])
def test_bad_formulas_are_refused_clearly(text, message):
    with pytest.raises(FormulaError, match=re.escape(message)):
        parse(text).check(types)


def test_evaluate_needs_check_first():
    with pytest.raises(FormulaError, match="check"):
        parse("TRUE").evaluate({})

