"""validate.py's checks on small frames against the shipped describes (no org needed),
and the Problems frame they come back in."""
from __future__ import annotations

import datetime as dt
import json
import re
from html import unescape
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from sfbulk_nb import validate
from sfbulk_nb.errors import InputError
from sfbulk_nb.problems import COLUMNS, Problems

KEY = "customExtIdField__c"


def describe(obj: str) -> dict:
    schema = resources.files("sfbulk_nb.localorg").joinpath("schema", f"{obj}.json")
    return json.loads(schema.read_text(encoding="utf-8"))


def check(df, obj="Account", op="upsert", key=KEY, **options) -> Problems:
    if op in ("update", "delete", "hardDelete"):
        key = "Id"
    if op == "insert":
        key = None
    parents = {name: describe(name) for name in ("Account", "User")}
    return validate.check(df, describe(obj), op, key, parents=parents, **options).problems


def codes(problems: Problems, column=None) -> list[str]:
    rows = problems if column is None else problems[problems["column"] == column]
    return list(rows["code"].astype(str))


def accounts(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({KEY: [f"K{i}" for i in range(n)], "Name": [f"N{i}" for i in range(n)],
                         **columns})


def test_a_clean_frame_has_no_problems():
    df = accounts(Industry=["Banking", "Energy"], NumberOfEmployees=[1, 2],
                  AnnualRevenue=[10.0, 20.0], Active__c=[True, False],
                  Founded__c=[dt.date(2000, 1, 1), None],
                  LastReviewed__c=pd.to_datetime(["2024-01-01", None], utc=True))
    problems = check(df)
    assert len(problems) == 0 and problems.ok
    assert list(problems.columns) == list(COLUMNS)
    assert "no problems" in repr(problems)
    assert "No problems" in problems._repr_html_()


# -- columns -------------------------------------------------------------------------------


@pytest.mark.parametrize("header,target,why", [
    ("Account Name", "Name", "label"),             # the label
    ("annual_revenue", "AnnualRevenue", "API name"),  # spelled another way
    ("Name ", "Name", "API name"),                  # a trailing space from an export
    ("\ufeffName", "Name", "API name"),             # a byte order mark kept in the header
    ("\u00ef\u00bb\u00bfName", "Name", "API name"),  # the BOM read as Windows-1252
    ("Founded", "Founded__c", "API name"),          # a custom field without __c
    ("Employees", "NumberOfEmployees", "label"),
    ("Industy", "Industry", "closest"),             # a typo
])
def test_misnamed_columns_get_a_rename_to_the_field(header, target, why):
    df = pd.DataFrame({KEY: ["K1"], header: ["1"]})
    problems = check(df)
    head = problems[problems["code"] == "INVALID_FIELD"]
    assert list(head["code"]) == ["INVALID_FIELD"] and head.iloc[0]["field"] == target
    assert head.iloc[0]["hint"] == f"df = df.rename(columns={{{header!r}: {target!r}}})"
    assert problems.blocks_every_row


def test_case_alone_is_not_a_problem():
    assert len(check(pd.DataFrame({KEY.lower(): ["K1"], "name": ["A"], "INDUSTRY": ["Banking"]}))) == 0


def test_unknown_columns_are_dropped_by_their_hint_and_block_every_row():
    problems = check(accounts(Region=["EMEA"], **{"Nonsense Col": ["x"]}))
    assert codes(problems) == ["INVALID_FIELD", "INVALID_FIELD"]
    assert problems.iloc[0]["hint"] == "df = df.drop(columns=['Region'])"
    assert "Field name not found" in problems.iloc[0]["message"]


def test_a_column_pandas_named_for_a_blank_header_cell_is_said_as_such():
    """An Excel export with a comma at the end of every line reads as a last column
    'Unnamed: 2' of blanks: drop it. A blank header cell over values: name it."""
    import io

    text = f"{KEY},Name,\nK1,One,\nK2,Two,\n"
    trailing = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    problems = check(trailing)
    assert codes(problems) == ["INVALID_FIELD"] and problems.iloc[0]["column"] == "Unnamed: 2"
    message = problems.iloc[0]["message"]
    assert "no name in the file's header" in message and "end of every line" in message
    assert message.endswith("and it is empty: drop it")
    assert problems.iloc[0]["hint"] == "df = df.drop(columns=['Unnamed: 2'])"
    exec(problems.iloc[0]["hint"], {}, scope := {"df": trailing})  # the fix works as written
    assert not check(scope["df"]).errors.shape[0]

    middle = pd.read_csv(io.StringIO(f"{KEY},,Name\nK1,,One\nK2,x,Two\n"))
    problems = check(middle)
    message = problems.iloc[0]["message"]
    assert codes(problems) == ["INVALID_FIELD"] and "end of every line" not in message
    assert "holds values (row 1 first): name it" in message
    assert problems.iloc[0]["hint"].startswith("df = df.rename(columns={'Unnamed: 1': ")
    # A column merely called so by the user, not by pandas' pattern: an unknown field.
    assert "has no field 'Unnamed'" in check(accounts(Unnamed=["x", "y"])).iloc[0]["message"]


def test_long_numbers_excel_saved_in_scientific_notation_are_caught():
    """Excel shows 123456789012 as 1.23457E+11 and saves it so in CSV: the digits past
    the 6th are gone before pandas sees the file. On the key an error (the row would
    create a record under another key), on another text field a warning."""
    import io

    text = (f"{KEY},Name,AccountNumber\n1.23457E+11,One,4.5679E+15\n"
            "123456789013,Two,00123\n-2.5e-03,Three,1E+05x\n")
    as_text = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    problems = check(as_text)
    found = sorted(zip(problems["column"], problems["row"], problems["severity"]))
    assert found == [("AccountNumber", 0, "warning"), (KEY, 0, "error"), (KEY, 2, "error")]
    assert set(problems["code"].astype(str)) == {"NUMBER_IN_SCIENTIFIC_NOTATION"}
    assert "the digits past the 6th are lost" in problems.iloc[0]["message"]
    assert problems.iloc[0]["hint"].startswith("# the digits are gone: format the column "
                                               "as Text")
    # Read with pandas' defaults, the key is a float: 1.23457E+11 is 123457000000.
    as_numbers = pd.read_csv(io.StringIO(text.replace("-2.5e-03", "120000000000")))
    assert as_numbers[KEY].dtype == "float64"
    problems = check(as_numbers)
    keyed = problems[problems["column"] == KEY]
    assert list(keyed["row"]) == [0, 2] and set(keyed["severity"]) == {"error"}
    assert "123457000000" in keyed.iloc[0]["message"]
    # Floats that are not Excel's rounding are keys as good as any.
    plain = accounts(**{KEY: [123456789013.0, 42.0, 7.5]})
    assert "NUMBER_IN_SCIENTIFIC_NOTATION" not in codes(check(plain))
    # Picklists and numbers are not text: '1E+05' in a number field is a number.
    assert "NUMBER_IN_SCIENTIFIC_NOTATION" not in codes(check(accounts(
        AnnualRevenue=["1E+05", "2.5E+06"])))


def test_excels_sep_line_read_as_the_header_is_said_as_such():
    import io

    text = f"sep=;\n{KEY};Name\nK1;One\n"
    problems = check(pd.read_csv(io.StringIO(text)))
    problems = problems[problems["column"] == "sep=;"]  # beside: no key, no Name
    assert codes(problems) == ["INVALID_FIELD"]
    assert "is Excel's separator line, read as the header" in problems.iloc[0]["message"]
    hint = problems.iloc[0]["hint"]
    assert hint == "# read the file again past it: df = pd.read_csv(path, sep=';', skiprows=1)"
    again = pd.read_csv(io.StringIO(text), sep=";", skiprows=1)  # the hint, with the path
    assert len(check(again)) == 0


def test_first_bytes_skip_empty_values_and_follow_a_slice():
    import pyarrow as pa

    text = pa.array(["zero", "", "#two", "3", "", "+five"], pa.large_string())
    assert bytes(validate._first_bytes(text)) == b"z#3+"
    assert bytes(validate._first_bytes(text.slice(2, 3))) == b"#3"
    assert bytes(validate._first_bytes(text.slice(4))) == b"+"
    assert len(validate._first_bytes(pa.array([], pa.large_string()))) == 0


def test_excel_errors_and_a_written_na_that_clears_are_said_before_sending():
    """What a sheet leaves in an export: '#REF!' & co where a formula failed (written as
    text: a warning; on the key an error), and '#N/A' where a lookup found nothing,
    which the Bulk API reads as "clear this field" on the record a row updates."""
    df = accounts(Phone=["#N/A", "555"], BillingCity=["#REF!", "Paris"],
                  Description=["#DIV/0!", "#VALUE!"], NumberOfEmployees=["#N/A", "3"])
    problems = check(df)
    found = sorted(zip(problems["column"], problems["row"], problems["code"].astype(str),
                       problems["severity"]))
    assert found == [
        ("BillingCity", 0, "EXCEL_ERROR_VALUE", "warning"),
        ("Description", 0, "EXCEL_ERROR_VALUE", "warning"),
        ("Description", 1, "EXCEL_ERROR_VALUE", "warning"),
        ("NumberOfEmployees", 0, "CLEARS_FIELD", "warning"),
        ("Phone", 0, "CLEARS_FIELD", "warning")]
    hints = dict(zip(problems["column"], problems["hint"]))
    assert hints["Description"].startswith(
        "df['Description'] = df['Description'].replace(['#DIV/0!', '#VALUE!'], '')")
    scope = {"df": df.copy()}
    for hint in dict.fromkeys(problems["hint"]):
        exec(hint, {}, scope)  # each fix runs as written, and leaves nothing to say
    assert len(check(scope["df"])) == 0
    assert "clears Phone on the record it updates" in problems.loc[
        problems["column"] == "Phone", "message"].iloc[0]
    # An insert clears nothing; a null sent as #N/A by nulls="clear" is the caller's choice.
    assert "CLEARS_FIELD" not in codes(check(df, op="insert"))
    assert codes(check(accounts(Phone=[None, "555"]), nulls="clear")) == []
    # On the key an Excel error is an error: the row would write under that key.
    keyed = check(accounts(**{KEY: ["#REF!", "K2"]}))
    assert list(zip(keyed["code"].astype(str), keyed["severity"])) == [
        ("EXCEL_ERROR_VALUE", "error")]


def test_result_columns_non_string_names_and_two_columns_for_one_field():
    df = accounts(sf_status=["created"])
    df[0] = ["x"]
    df["NAME"] = ["again"]
    problems = check(df)
    messages = " | ".join(problems["message"])
    assert "is a result column" in messages and "must be a string" in messages
    dup = problems[problems["code"] == "DUPLICATE_FIELD"]
    assert list(dup["column"]) == ["NAME"] and dup.iloc[0]["hint"] == "df = df.drop(columns=['NAME'])"


def test_relationship_columns_need_an_external_id_of_the_parent():
    contact = pd.DataFrame({"LastName": ["Ng", "Ok"], "Account.customExtIdField__c": ["A-1", "A-2"]})
    assert len(check(contact, "Contact", "insert")) == 0
    bad = check(contact.rename(columns={"Account.customExtIdField__c": "Account.Phone"}),
                "Contact", "insert")
    assert codes(bad) == ["INVALID_FIELD"] and "External ID" in bad.iloc[0]["message"]
    assert bad.iloc[0]["hint"] == "df = df.rename(columns={'Account.Phone': 'Account.customExtIdField__c'})"
    nope = check(contact.rename(columns={"Account.customExtIdField__c": "Acct.Name"}), "Contact", "insert")
    assert codes(nope) == ["INVALID_FIELD"] and "no relationship 'Acct'" in nope.iloc[0]["message"]


def test_a_missing_key_column_is_named_and_sf_id_is_renamed_for_a_delete():
    problems = check(pd.DataFrame({"Name": ["x"]}))
    assert codes(problems) == ["MISSING_ARGUMENT"] and f"needs a '{KEY}' column" in problems.iloc[0]["message"]
    from_result = check(pd.DataFrame({"sf_id": ["001000000000001AAA"]}), op="delete")
    assert codes(from_result) == ["MISSING_ARGUMENT"]
    assert from_result.iloc[0]["hint"] == "df = df.rename(columns={'sf_id': 'Id'})"


# -- writability and required fields --------------------------------------------------------


def test_fields_the_operation_cannot_write():
    created = pd.DataFrame({"LastName": ["Ng"], "Name": ["Full Name"], "CreatedDate": ["2024-01-01T00:00:00Z"]})
    problems = check(created, "Contact", "insert")
    assert codes(problems) == ["INVALID_FIELD_FOR_INSERT_UPDATE"] * 2
    assert set(problems["hint"]) == {"df = df.drop(columns=['Name'])", "df = df.drop(columns=['CreatedDate'])"}
    blank = pd.DataFrame({"LastName": ["Ng"], "CreatedDate": [None]})
    assert len(check(blank, "Contact", "insert")) == 0  # a blank cell writes nothing
    cleared = check(blank, "Contact", "insert", nulls="clear")  # #N/A writes (clears) it
    assert codes(cleared) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    with_id = check(pd.DataFrame({"Name": ["A"], "Id": ["001000000000001AAA"]}), op="insert")
    assert codes(with_id) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]


def test_required_fields_on_insert_upsert_and_update():
    assert codes(check(pd.DataFrame({"Phone": ["1"]}), op="insert")) == ["REQUIRED_FIELD_MISSING"]
    blank = check(pd.DataFrame({"Name": ["A", None, ""]}), op="insert")
    assert codes(blank) == ["REQUIRED_FIELD_MISSING"] * 2 and list(blank["row"]) == [1, 2]
    upsert = check(accounts(Phone=["1", "2"]).assign(Name=["A", None]))
    assert codes(upsert) == ["REQUIRED_FIELD_MISSING"] and upsert.iloc[0]["severity"] == "warning"
    assert upsert.ok  # warnings do not block
    ids = ["0010L0000000001QAA", "0010L0000000002QAA"]
    update = check(pd.DataFrame({"Id": ids, "Name": ["A", None]}), op="update", nulls="clear")
    assert codes(update) == ["REQUIRED_FIELD_MISSING"] and update.iloc[0]["row"] == 1
    assert len(check(pd.DataFrame({"Id": ids, "Name": ["A", None]}), op="update")) == 0


# -- values ------------------------------------------------------------------------------------


def test_text_longer_than_the_field_counts_characters_not_bytes():
    problems = check(accounts(BillingCity=["é" * 40, "é" * 41]))
    assert codes(problems) == ["STRING_TOO_LONG"] and list(problems["row"]) == [1]
    assert problems.iloc[0]["hint"] == "df['BillingCity'] = df['BillingCity'].str.slice(0, 40)"


def test_restricted_picklist_values_map_to_the_closest_valid_value():
    problems = check(accounts(Industry=["banking", " Energy", "Technolgy", "Spaceflight", "Banking"]))
    assert codes(problems) == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"] * 4
    hint = problems.iloc[0]["hint"]
    assert hint.startswith("df['Industry'] = df['Industry'].replace({")
    namespace = {"df": pd.DataFrame({"Industry": ["banking", " Energy", "Technolgy", "Spaceflight"]})}
    namespace["pd"] = pd
    exec(hint, namespace)
    assert namespace["df"]["Industry"].tolist()[:3] == ["Banking", "Energy", "Technology"]
    assert pd.isna(namespace["df"]["Industry"].iloc[3])


def test_an_unrestricted_picklist_value_is_a_warning():
    opp = pd.DataFrame({"Name": ["O"], "StageName": ["prospecting"], "CloseDate": ["2024-01-01"]})
    problems = check(opp, "Opportunity", "insert")
    assert codes(problems) == ["PICKLIST_VALUE_NOT_DEFINED"] and problems.ok
    assert "'prospecting': 'Prospecting'" in problems.iloc[0]["hint"]


def test_multipicklist_values_are_checked_one_by_one():
    d = describe("Account")
    d["fields"].append({"name": "Regions__c", "type": "multipicklist", "createable": True,
                        "updateable": True, "nillable": True, "restrictedPicklist": True,
                        "length": 255, "picklistValues": [{"value": v, "active": True}
                                                          for v in ("EMEA", "AMER", "APAC")]})
    df = accounts(Regions__c=["EMEA;APAC", "EMEA;emea", "AMER"])
    found = validate.check(df, d, "upsert", KEY).problems
    assert codes(found) == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"] and list(found["row"]) == [1]
    namespace = {"df": df.copy()}
    namespace["pd"] = pd
    exec(found.iloc[0]["hint"], namespace)
    assert namespace["df"]["Regions__c"].tolist() == ["EMEA;APAC", "EMEA;EMEA", "AMER"]


@pytest.mark.parametrize("values,fixed", [
    (["$1,200.50", "3,279", "12"], [1201.0, 3279.0, 12.0]),      # currency, thousands, half up
    (["1.234,56", "12,5"], [1235.0, 13.0]),                       # European decimals
    (["(1,000)", "2,000"], [-1000.0, 2000.0]),                    # accounting negatives
    (["1 200", "300"], [1200.0, 300.0]),                          # a space as separator
])
def test_number_texts_from_exports_get_one_line_that_converts_them(values, fixed):
    problems = check(accounts(AnnualRevenue=values))
    assert set(codes(problems)) == {"INVALID_TYPE_ON_FIELD_IN_RECORD"}
    namespace = {"df": pd.DataFrame({"AnnualRevenue": values})}
    namespace["pd"] = pd
    exec(problems.iloc[0]["hint"], namespace)  # includes the rounding to scale 0
    assert namespace["df"]["AnnualRevenue"].tolist() == fixed


def test_integers_reject_fractions_and_too_many_digits():
    problems = check(accounts(NumberOfEmployees=["12.0", "3,279", "7", "1" * 19]))
    assert codes(problems) == ["INVALID_TYPE_ON_FIELD_IN_RECORD"] * 2 + ["NUMBER_OUTSIDE_VALID_RANGE"]
    assert problems.iloc[0]["hint"].endswith(".astype('Int64')")
    floats = check(accounts(NumberOfEmployees=[1.0, 2.5]))
    assert codes(floats) == ["INVALID_TYPE_ON_FIELD_IN_RECORD"] and list(floats["row"]) == [1]


def test_numbers_beyond_precision_and_decimals_the_field_rounds():
    opp = pd.DataFrame({"Name": ["a", "b", "c"], "StageName": ["Prospecting"] * 3,
                        "CloseDate": ["2024-01-01"] * 3,
                        "Amount": ["1e16", "12.345", "99"], "Probability": ["5", "50", "1000"]})
    problems = check(opp, "Opportunity", "insert")
    got = dict(zip(zip(problems["column"].astype(str), problems["row"]), problems["code"].astype(str)))
    assert got == {("Amount", 0): "NUMBER_OUTSIDE_VALID_RANGE", ("Amount", 1): "NUMBER_ROUNDED",
                   ("Probability", 2): "NUMBER_OUTSIDE_VALID_RANGE"}
    assert problems[problems["code"] == "NUMBER_ROUNDED"].iloc[0]["severity"] == "warning"


def test_trailing_zeros_are_no_rounding():
    # A whole amount written as a float ("456934.0": pandas' to_csv, spreadsheets) in a
    # field of no decimals keeps its value; "12.5" does not.
    problems = check(accounts(AnnualRevenue=["456934.0", "3.000", "100", "12.5", "7.50"]))
    rounded = problems[problems["code"] == "NUMBER_ROUNDED"]
    assert rounded["row"].tolist() == [3, 4]


def test_booleans_spelt_as_words():
    problems = check(accounts(Active__c=["Yes", "no", "TRUE", "0", "Y", "maybe"]))
    assert list(problems["row"]) == [0, 1, 4, 5]
    namespace = {"df": pd.DataFrame({"Active__c": ["Yes", "no", "TRUE", "0", "Y", "maybe"]})}
    namespace["pd"] = pd
    exec(problems.iloc[0]["hint"], namespace)
    assert namespace["df"]["Active__c"].tolist()[:5] == [True, False, True, False, True]
    assert "'maybe'" in problems.iloc[0]["message"]


@pytest.mark.parametrize("values,seen,converted", [
    (["10/17/1974", "1/2/1980"], "US month/day/year", [dt.date(1974, 10, 17), dt.date(1980, 1, 2)]),
    (["17/10/1974", "2/1/1980"], "day/month/year", [dt.date(1974, 10, 17), dt.date(1980, 1, 2)]),
    (["17.10.1974"], "day.month.year", [dt.date(1974, 10, 17)]),
    (["27319", "44927"], "Excel serial", [dt.date(1974, 10, 17), dt.date(2023, 1, 1)]),
    (["1974-10-17 00:00:00"], "with a time", [dt.date(1974, 10, 17)]),
])
def test_dates_in_the_format_they_were_seen(values, seen, converted):
    problems = check(accounts(Founded__c=values))
    assert set(codes(problems)) == {"INVALID_TYPE_ON_FIELD_IN_RECORD"}
    assert seen in problems.iloc[0]["message"] and "YYYY-MM-DD" in problems.iloc[0]["message"]
    namespace = {"df": pd.DataFrame({"Founded__c": values})}
    namespace["pd"] = pd
    exec(problems.iloc[0]["hint"], namespace)
    assert namespace["df"]["Founded__c"].tolist() == converted


@pytest.mark.parametrize("field, values, converted", [
    ("Founded__c", ["2020-01-02", "03/04/2020", "31/01/2020"],
     [dt.date(2020, 1, 2), dt.date(2020, 4, 3), dt.date(2020, 1, 31)]),
    ("LastReviewed__c", ["2020-01-02T10:00:00Z", "03/04/2020 10:30", "31/01/2020 23:59"],
     [pd.Timestamp("2020-01-02 10:00", tz="UTC"), pd.Timestamp("2020-04-03 10:30", tz="UTC"),
      pd.Timestamp("2020-01-31 23:59", tz="UTC")]),
])
def test_a_column_mixing_good_dates_and_day_first_ones_is_fixed_without_swapping(
        field, values, converted):
    # The good ones stay as they are; the day-first ones are read day first (03/04 is April).
    problems = check(accounts(**{field: values}))
    assert list(problems["row"]) == [1, 2] and "day/month/year" in problems.iloc[0]["message"]
    namespace = {"df": pd.DataFrame({field: values}), "pd": pd}
    exec(problems.iloc[0]["hint"], namespace)
    assert namespace["df"][field].tolist() == converted


def test_ambiguous_day_month_order_is_said():
    problems = check(accounts(Founded__c=["01/02/2020", "03/04/2021"]))
    assert "also reads as day/month" in problems.iloc[0]["message"]


def test_impossible_dates_and_datetimes():
    problems = check(accounts(Founded__c=["2024-02-29", "2023-02-29", "2024-2-3"],
                              LastReviewed__c=["2024-03-01T10:00:00Z", "2024-03-01T25:00:00Z",
                                               "2024-03-01 10:00:00"]))
    got = list(zip(problems["column"].astype(str), problems["row"]))
    assert got == [("Founded__c", 1), ("LastReviewed__c", 1), ("Founded__c", 2),
                   ("LastReviewed__c", 2)]
    assert "taken as UTC" in problems[problems["column"] == "LastReviewed__c"].iloc[0]["message"]


def test_emails_and_ids():
    contacts = pd.DataFrame({"LastName": ["a", "b", "c"], "Email": ["a@x.io", " b@x.io", "c at x"],
                             "AccountId": ["0010L0000000001QAA", "001abc", "0010L0000000001QAB"]})
    problems = check(contacts, "Contact", "insert")
    got = sorted(zip(problems["column"].astype(str), problems["row"], problems["code"].astype(str)))
    assert got == [("AccountId", 1, "MALFORMED_ID"), ("AccountId", 2, "MALFORMED_ID"),
                   ("Email", 1, "INVALID_EMAIL_ADDRESS"), ("Email", 2, "INVALID_EMAIL_ADDRESS")]


def test_update_ids_of_another_object_and_bad_checksums():
    ids = ["0010L0000000001QAA", "0030L0000000001QAA", "0010l0000000002qaa", "0010L0000000003ZZZ"]
    problems = check(pd.DataFrame({"Id": ids, "Name": ["x"] * 4}), op="update")
    assert list(zip(problems["row"], problems["code"].astype(str))) == [
        (1, "MALFORMED_ID"), (3, "MALFORMED_ID")]  # the lower-case 18-character form is fine
    assert "another object" in problems.iloc[0]["message"]


def test_blank_and_repeated_keys():
    problems = check(pd.DataFrame({KEY: ["a", "b", "a", None, "  "], "Name": list("vwxyz")}))
    assert list(zip(problems["row"], problems["code"].astype(str))) == [
        (0, "DUPLICATE_VALUE"), (2, "DUPLICATE_VALUE"), (3, "MISSING_ARGUMENT"), (4, "MISSING_ARGUMENT")]
    ids = check(pd.DataFrame({"Id": ["0010L0000000001QAA", "0010L0000000001qaa"]}), op="delete")
    assert codes(ids) == ["DUPLICATE_VALUE"] * 2  # one record, two spellings


def test_the_check_says_whether_keys_repeat_as_alignment_compares_them():
    def repeats(keys, op="upsert", key=KEY, **options):
        df = pd.DataFrame({key: keys, "Name": [f"n{i}" for i in range(len(keys))]})
        return validate.check(df, describe("Account"), op, key, **options).key_repeats

    assert repeats(["a", "b", "c"]) is False
    assert repeats(["a", "b", "a"]) is True
    assert repeats(["a", "", ""]) is True  # blank keys are one key to alignment
    assert repeats(["a", "A"]) is False
    assert repeats(["a", "A"], key_case_insensitive=True) is True
    # Ids in their 15- and 18-character forms are one record.
    assert repeats(["0010L0000000001", "0010L0000000001QAA"], op="update", key="Id") is True
    df = pd.DataFrame({"Name": ["a", "a"]})
    assert validate.check(df, describe("Account"), "insert", None).key_repeats is None


# -- cells that cannot be sent ----------------------------------------------------------------


def test_cells_with_no_csv_form_are_found_one_by_one():
    df = accounts(Description=["ok", ["a", "b"], b"raw", {"k": 1}],
                  BillingCity=["Paris", "Lyon", 5, "Oslo"],
                  # object dtype: pandas' own string dtype cannot hold a lone surrogate
                  Phone=pd.Series(["1", "2\x00", "3", "bad \ud800"], dtype=object),
                  AnnualRevenue=[1.0, np.inf, 2.0, 3.0])
    found = validate.check(df, describe("Account"), "upsert", KEY)
    got = sorted(zip(found.problems["column"].astype(str), found.problems["row"],
                     found.problems["code"].astype(str)))
    assert got == [("AnnualRevenue", 1, "NUMBER_OUTSIDE_VALID_RANGE"),
                   ("BillingCity", 2, "MIXED_TYPES"),
                   ("Description", 1, "INVALID_CELL_TYPE"), ("Description", 2, "INVALID_CELL_TYPE"),
                   ("Description", 3, "INVALID_CELL_TYPE"),
                   ("Phone", 1, "INVALID_CHARACTER"), ("Phone", 3, "INVALID_CHARACTER")]
    # The cells no CSV can carry are apart: on_invalid="send" cannot send them.
    assert sorted(found.unsendable["row"]) == [1, 1, 2, 2, 3, 3]
    assert found.encoding is not None  # the other rows can still be sent


def test_a_column_of_an_unsupported_dtype_is_a_column_problem():
    problems = check(accounts(Phone=pd.to_timedelta([1, 2], unit="D")))
    assert codes(problems) == ["INVALID_CELL_TYPE"] and problems.blocks_every_row


def test_dates_from_dt_date_with_blanks_are_fine():
    founded = pd.to_datetime(pd.Series(["2020-01-02", None])).dt.date
    assert len(check(accounts(Founded__c=founded))) == 0


def test_arguments_are_input_errors_not_problems():
    with pytest.raises(InputError, match="nulls must be"):
        check(accounts(Phone=["1"]), nulls="sometimes")
    with pytest.raises(InputError, match="column_delimiter"):
        check(accounts(Phone=["1"]), column_delimiter=",")
    with pytest.raises(InputError, match="time zone"):
        check(accounts(Phone=["1"]), tz="Mars/Olympus")


# -- the Problems frame -------------------------------------------------------------------------


def test_one_row_per_problem_in_row_order_and_a_summary_per_column_and_code():
    df = accounts(Active__c=["Yes", "no", "true"], Industry=["banking", "Banking", "Nope"])
    problems = check(df)
    assert list(zip(problems["row"], problems["column"].astype(str))) == [
        (0, "Active__c"), (0, "Industry"), (1, "Active__c"), (2, "Industry")]
    summary = problems.summary()
    assert list(summary.columns) == ["column", "field", "code", "severity", "rows", "examples",
                                     "example_rows", "problem", "hint"]
    assert list(summary["rows"]) == [2, 2] and summary.iloc[0]["examples"] == ["'Yes'", "'no'"]
    assert summary.iloc[1]["example_rows"] == [0, 2]
    # Selections are plain frames of problems, shown as such.
    assert type(problems[problems["code"] == "X"]) is pd.DataFrame
    assert type(problems.head()) is pd.DataFrame


def test_summary_lists_column_fixes_first_so_hints_run_in_order():
    df = pd.DataFrame({KEY: ["K1", "K2"], "Account Name ": ["x" * 300, "ok"], "Active": ["Yes", "No"]})
    hints = list(check(df).summary()["hint"])
    assert hints == ["df = df.rename(columns={'Account Name ': 'Name'})",
                     "df = df.rename(columns={'Active': 'Active__c'})",
                     "df['Name'] = df['Name'].str.slice(0, 255)",
                     "df['Active__c'] = df['Active__c'].astype('string').str.strip().str.lower()"
                     ".map({'0': False, '1': True, 'false': False, 'no': False, 'true': True, "
                     "'yes': True})"]


def test_html_summary_fits_its_output():
    df = accounts(Name=["N" * 5000, "ok"], Industry=["x" * 3000, "Banking"])
    html = check(df)._repr_html_()
    assert "table-layout:fixed;width:100%" in html and "overflow-wrap:anywhere" in html
    assert "N" * 100 not in html  # values are cut; long hints too (the frame keeps them)
    for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, flags=re.S):
        assert len(unescape(re.sub(r"<[^>]+>", "", cell))) <= 300


def test_summary_text_counts_rows_and_names_lines_when_asked():
    problems = check(accounts(Industry=["Nope", "Banking", "Nope"]))
    text = problems.summary_text()
    assert "2 rows have errors" in text and "2 rows at rows 0, 2" in text
    assert "at lines 2, 4" in problems.summary_text(line_of=lambda position: position + 2)


@pytest.mark.parametrize("nulls", ["keep", "clear"])
@pytest.mark.parametrize("delimiter", ["COMMA", "SEMICOLON"])
def test_chunks_from_the_rendered_texts_are_the_bytes_rendered_from_values(nulls, delimiter):
    # A load sends chunks made from the texts the checks rendered (each value rendered
    # once): the same bytes as rendering the values while encoding.
    n = 40
    df = pd.DataFrame({
        KEY: [f"K{i}" for i in range(n)],
        "Name": ['a "quoted", name', "line\nbreak", "cr\rhere", "ünïcödé ☃", "semi;colon", ""]
                * 6 + ["x"] * 4,
        "NumberOfEmployees": pd.array([1, None, 3, 40_000] * 10, dtype="Int64"),
        "AnnualRevenue": [1.5, np.nan, 1e-7, 123456789.25] * 10,
        "Active__c": [True, False, None, True] * 10,
        "Founded__c": [dt.date(2020, 1, 2), None, dt.date(1999, 12, 31), dt.date(1, 1, 1)] * 10,
        "LastReviewed__c": pd.to_datetime(["2021-03-04 05:06:07.123", None,
                                           "1970-01-01 00:00:00.000", "2038-01-19 03:14:08.000"] * 10
                                          ).tz_localize("Europe/Paris"),
    })
    checked = validate.check(df, describe("Account"), "upsert", KEY, nulls=nulls,
                             column_delimiter=delimiter)
    options = dict(column_delimiter=delimiter, line_ending="CRLF", max_bytes=900)
    for positions in (None, np.array([0, 3, 4, 17, 39])):
        values = checked.encoding if positions is None else checked.encoding.select(positions)
        expected = [(c.positions, c.data) for c in values.chunks(**options)]
        rendered = checked.encoding.rendered(checked.texts(positions), positions)
        assert [(c.positions, c.data) for c in rendered.chunks(**options)] == expected
        assert len(expected) > (1 if positions is None else 0)
