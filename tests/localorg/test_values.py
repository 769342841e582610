"""Column-at-a-time converters must agree with the per-cell converters they stand in for:
the same stored values when they take a column, and a refusal (None) whenever some cell
would fail or needs the per-cell path."""
from __future__ import annotations

import random

import pytest

from sfbulk_nb.localorg import values
from sfbulk_nb.localorg.catalog import Catalog, Field

CATALOG = Catalog()


def field(obj: str, name: str) -> Field:
    return CATALOG.get(obj).field(name)


def per_cell(f: Field, texts: list[str]) -> list | None:
    convert = values.converter(f)
    try:
        return list(map(convert, texts))
    except values.RowError:
        return None


def assert_agrees(f: Field, texts: list[str]) -> bool:
    """True when the bulk converter took the column."""
    bulk = values.bulk_converter(f)(texts)
    expected = per_cell(f, texts)
    if expected is None:
        assert bulk is None, texts
    if bulk is None:
        return False
    # repr: 1 and 1.0, 0.0 and -0.0 must not pass for each other
    assert list(map(repr, bulk)) == list(map(repr, expected)), texts
    return True


NUMBER_CELLS = ["0", "-0", "12", "12.", "12.5", "12.49", "-12.5", "0.5", "-0.5", "-0.4",
                "2.675", "1e3", ".5", "+3", " 3", "3 ", "x", "99999999999999999.5",
                "999999999999999999", "1" * 19, "١٢", "12.345678901234567890123"]


@pytest.mark.parametrize("obj,name", [("Account", "AnnualRevenue"),
                                      ("Account", "NumberOfEmployees"),
                                      ("Opportunity", "Amount")])
def test_numbers(obj, name):
    f = field(obj, name)
    rnd = random.Random(name)
    taken = 0
    for _ in range(400):
        texts = [rnd.choice(NUMBER_CELLS) for _ in range(rnd.randrange(1, 4))]
        taken += assert_agrees(f, texts)
    for text in NUMBER_CELLS:
        assert_agrees(f, [text])
    assert taken > 20


def test_rounding_is_half_away_from_zero_exactly():
    f = field("Account", "AnnualRevenue")  # currency, scale 0
    texts = ["0.5", "1.5", "2.5", "-2.5", "2.4999999999999999999", "-0.4", "123456789.5"]
    assert values.bulk_converter(f)(texts) == [1.0, 2.0, 3.0, -3.0, 2.0, 0.0, 123456790.0]
    assert_agrees(f, texts)


BOOLEAN_CELLS = ["true", "false", "TRUE", "False", "1", "0", "tRuE", "yes", "", " true"]


def test_booleans():
    f = field("Account", "Active__c")
    rnd = random.Random("bool")
    for _ in range(300):
        assert_agrees(f, [rnd.choice(BOOLEAN_CELLS) for _ in range(rnd.randrange(1, 4))])
    assert values.bulk_converter(f)(["tRuE"]) is None  # odd spellings go cell by cell


def test_strings_lengths_and_restricted_picklists():
    name = field("Account", "AccountNumber")
    limit = name.length
    assert_agrees(name, ["a" * limit, "é" * limit, "😀"])
    assert values.bulk_converter(name)(["a" * limit, "a" * (limit + 1)]) is None
    industry = field("Account", "Industry")
    allowed = sorted(industry.picklist_values)
    assert assert_agrees(industry, allowed[:3])
    assert values.bulk_converter(industry)([allowed[0], allowed[0].upper() + "x"]) is None
    email = field("Contact", "Email")
    assert values.bulk_converter(email) is None  # checked cell by cell


DATE_CELLS = ["2024-02-29", "2023-02-29", "2024-13-01", "2024-1-01", "20240101",
              "0000-01-01", "9999-12-31", "٢٠٢٤-٠١-٠١", "2024-01-01T00:00:00"]


def test_dates():
    f = field("Account", "Founded__c")
    for text in DATE_CELLS:
        assert_agrees(f, [text])
    assert values.bulk_converter(f)(["2024-02-29", "1999-12-31"]) == ["2024-02-29", "1999-12-31"]


DATETIME_CELLS = ["2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z",
                  "2024-01-01T24:00:00.000Z", "2024-01-01T23:60:00.000Z",
                  "0999-01-01T00:00:00.000Z", "2024-01-01T00:00:00Z",
                  "2024-01-01T01:00:00.000+01:00", "2024-01-01T00:00:00.123456Z",
                  "2024-01-01 00:00:00.000Z", "9999-12-31T23:59:59.999Z"]


def test_datetimes():
    f = field("Account", "LastReviewed__c")
    rnd = random.Random("datetime")
    for text in DATETIME_CELLS:
        assert_agrees(f, [text])
    taken = sum(assert_agrees(f, [rnd.choice(DATETIME_CELLS) for _ in range(2)])
                for _ in range(200))
    assert taken > 5


def test_types_without_a_bulk_converter_go_cell_by_cell():
    assert values.bulk_converter(field("Contact", "AccountId")) is None  # reference


@pytest.mark.parametrize("text,stored", [
    ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z"),
    ("2024-01-01T00:00:00.1Z", "2024-01-01T00:00:00.100Z"),
    ("2024-01-01T00:00:00.12Z", "2024-01-01T00:00:00.120Z"),
    ("2024-01-01T00:00:00.1234Z", "2024-01-01T00:00:00.123Z"),
    ("2024-01-01T00:00:00.98765+01:00", "2023-12-31T23:00:00.987Z"),
    ("2024-01-01T00:00:00.123456789-0530", "2024-01-01T05:30:00.123Z"),
])
def test_datetime_fractions_of_any_length_are_kept_to_the_millisecond(text, stored):
    # (Python 3.10's fromisoformat takes only 3 or 6 fraction digits.)
    assert values.converter(field("Account", "LastReviewed__c"))(text) == stored
