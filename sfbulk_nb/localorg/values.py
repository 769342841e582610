"""Cell text -> stored value, per describe field type, with Salesforce's row errors.

Each field gets one converter, built once per job, so the per-cell work is a single call.
Stored forms (what SQLite holds and what reads render back): strings as text, booleans as
0/1, int as integer, double/currency/percent as float, dates as `YYYY-MM-DD`, datetimes
as UTC `YYYY-MM-DDTHH:MM:SS.sssZ`, ids as 18 characters.
"""
from __future__ import annotations

import json
import operator
import re
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable

from . import ids
from .catalog import Field

Converter = Callable[[str], Any]
# A whole column at once: the values, or None when some cell needs the per-cell converter
# (to convert it the slow way or to name its error). Never raises.
BulkConverter = Callable[[list[str]], "list[Any] | None"]


class RowError(Exception):
    """A record-level failure, rendered in results as `CODE:message:fields --`."""

    def __init__(self, code: str, message: str, fields: tuple[str, ...] | list[str] = ()):
        super().__init__(code, message, tuple(fields))
        self.code = code
        self.message = message
        self.fields = tuple(fields)

    def render(self) -> str:
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


def type_error(f: Field, text: str) -> RowError:
    return RowError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{f.label}: value not of required type: {text}", (f.name,))


# ASCII digits only: Bulk reads values by their XML Schema types (xsd:int, xsd:double,
# xsd:date...; its errors say "not a valid value for the type xsd:dateTime"), whose forms
# are written in 0-9. Python's \d, int() and float() also take other scripts' digits
# ("١٢", "１２"), which the org used to accept by accident.
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# Salesforce documents `yyyy-MM-ddTHH:mm:ss.SSS` with `Z` or `+/-HH:mm`; the fraction is
# optional. A datetime without an offset is read as UTC (our guess; Bulk 1.0 did so).
_DATETIME_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?\Z")
_TIME_RE = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]{1,3})?)?Z?\Z")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+\Z")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


def format_datetime(dt: datetime) -> str:
    """UTC `YYYY-MM-DDTHH:MM:SS.sssZ`, the form the store keeps."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime | None:
    m = _DATETIME_RE.match(text)
    if not m:
        return None
    date, clock, frac, offset = m.groups()
    if offset not in (None, "Z") and int(offset[-2:]) > 59:
        return None  # Python reads "+05:60" as six hours; no offset has a minute 60
    # Six fraction digits (beyond them truncated): Python 3.10's fromisoformat takes only
    # three or six.
    micros = (frac or ".")[1:7].ljust(6, "0")
    zone = "+00:00" if offset in (None, "Z") else (
        offset if ":" in offset else offset[:3] + ":" + offset[3:])
    try:
        dt = datetime.fromisoformat(f"{date}T{clock}.{micros}{zone}")
        # In UTC, "0001-01-01T00:30:00+01:00" is in year 0: no datetime holds it, and the
        # OverflowError of converting it used to fail the whole job as an internal error.
        dt.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    return dt


def _string(f: Field) -> Converter:
    limit = f.length
    restricted = f.flag("restrictedPicklist")
    allowed = f.picklist_values
    email = f.type == "email"
    multi = f.type == "multipicklist"
    label, name = f.label, f.name

    def convert(text: str) -> str:
        if limit and len(text) > limit:
            raise RowError("STRING_TOO_LONG",
                           f"{label}: data value too large: {text} (max length={limit})", (name,))
        if restricted:
            values = text.split(";") if multi else (text,)
            if any(v not in allowed for v in values):
                raise RowError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                               f"{label}: bad value for restricted picklist field: {text}",
                               (name,))
        if email and not _EMAIL_RE.match(text):
            raise RowError("INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {text}",
                           (name,))
        return text

    return convert


def _boolean(f: Field) -> Converter:
    def convert(text: str) -> int:
        low = text.lower()
        if low in _TRUE:
            return 1
        if low in _FALSE:
            return 0
        raise type_error(f, text)

    return convert


def _int(f: Field) -> Converter:
    # Salesforce rejects `12.0` for an int field: a client that sends floats is caught here.
    digits = int(f.describe.get("digits") or 18)
    bound = 10 ** digits

    def convert(text: str) -> int:
        if not _INT_RE.match(text):
            raise type_error(f, text)
        value = int(text)
        if abs(value) >= bound:
            raise _out_of_range(f, text)
        return value

    return convert


def _number(f: Field) -> Converter:
    precision = int(f.describe.get("precision") or 18)
    scale = int(f.describe.get("scale") or 0)
    bound = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)
    # Below this a float is under the bound whatever its rounding (a float of a text is
    # off by at most one part in 2**53); nearer, only Decimal tells: 18 nines are no 1e18.
    float_bound = float(bound) * (1 - 2.0 ** -50)

    def convert(text: str) -> float:
        if not _NUMBER_RE.match(text):
            raise type_error(f, text)
        dot = text.find(".")
        if (dot < 0 or len(text) - dot - 1 <= scale) and "e" not in text and "E" not in text:
            # No rounding needed: skip Decimal, which costs ten times as much per cell.
            value = float(text)
            if abs(value) < float_bound:
                return value
        try:
            # Salesforce rounds half up to the field's scale.
            value = Decimal(text).quantize(quantum, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise _out_of_range(f, text) from None
        if abs(value) >= bound:
            raise _out_of_range(f, text)
        return float(value)

    return convert


def _out_of_range(f: Field, text: str) -> RowError:
    return RowError("NUMBER_OUTSIDE_VALID_RANGE",
                    f"{f.label}: value outside of valid range on numeric field: {text}", (f.name,))


def _date(f: Field) -> Converter:
    def convert(text: str) -> str:
        if _DATE_RE.match(text):
            try:
                datetime.strptime(text, "%Y-%m-%d")
                return text
            except ValueError:
                pass
        raise type_error(f, text)

    return convert


def _datetime(f: Field) -> Converter:
    def convert(text: str) -> str:
        dt = parse_datetime(text)
        if dt is None:
            raise type_error(f, text)
        return format_datetime(dt)

    return convert


def _time(f: Field) -> Converter:
    def convert(text: str) -> str:
        m = _TIME_RE.match(text)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            raise type_error(f, text)
        ms = (m.group(4) or ".000")[1:].ljust(3, "0")
        return f"{m.group(1)}:{m.group(2)}:{m.group(3) or '00'}.{ms}Z"

    return convert


def _reference(f: Field) -> Converter:
    def convert(text: str) -> str:
        value = ids.normalize(text)
        if value is None:
            raise RowError("MALFORMED_ID", f"{f.label}: id value of incorrect type: {text}",
                           (f.name,))
        return value

    return convert


_BUILDERS: dict[str, Callable[[Field], Converter]] = {
    "boolean": _boolean,
    "int": _int,
    "long": _int,
    "double": _number,
    "currency": _number,
    "percent": _number,
    "date": _date,
    "datetime": _datetime,
    "time": _time,
    "reference": _reference,
    "id": _reference,
}


def converter(f: Field) -> Converter:
    """The text -> stored value function for one field (raises RowError)."""
    return _BUILDERS.get(f.type, _string)(f)


def bulk_converter(f: Field) -> BulkConverter | None:
    """A column-at-a-time converter for the common, well-formed cells of `f`'s type, or None
    when the type has none. It accepts a column only when every cell is a value the
    per-cell converter would turn into exactly the same thing, checked with C-speed
    builtins (map, max, set) instead of one Python call per cell."""
    builder = _BULK_BUILDERS.get(f.type, _bulk_string if f.type not in _BUILDERS else None)
    return builder(f) if builder else None


def _bulk_string(f: Field) -> BulkConverter | None:
    if f.type in ("email", "multipicklist"):
        return None
    limit = f.length
    allowed = f.picklist_values if f.flag("restrictedPicklist") else None

    def convert(texts: list[str]) -> list[str] | None:
        if limit and max(map(len, texts)) > limit:
            return None
        if allowed is not None and not allowed.issuperset(texts):
            return None
        return texts[:]

    return convert


# The spellings a boolean column almost always holds; anything else goes cell by cell.
_BOOL_CELLS = {"true": 1, "false": 0, "TRUE": 1, "FALSE": 0, "True": 1, "False": 0,
               "1": 1, "0": 0}


def _bulk_boolean(f: Field) -> BulkConverter:
    def convert(texts: list[str]) -> list[int] | None:
        values = list(map(_BOOL_CELLS.get, texts))
        return None if None in values else values

    return convert


_PLAIN_INT_RE = re.compile(r"-?[0-9]{1,18}\Z")


def _bulk_int(f: Field) -> BulkConverter:
    bound = 10 ** int(f.describe.get("digits") or 18)

    def convert(texts: list[str]) -> list[int] | None:
        if not all(map(_PLAIN_INT_RE.match, texts)):
            return None
        values = list(map(int, texts))
        if max(values) >= bound or min(values) <= -bound:
            return None
        return values

    return convert


def _bulk_number(f: Field) -> BulkConverter:
    precision = int(f.describe.get("precision") or 18)
    scale = int(f.describe.get("scale") or 0)
    float_bound = float(Decimal(10) ** (precision - scale))
    # Plain decimals with at most `scale` fraction digits: no rounding, so float() of the
    # text is the per-cell converter's value too.
    fraction = f"(?:\\.[0-9]{{0,{scale}}})?" if scale else r"\.?"
    plain = re.compile(f"-?[0-9]{{1,{precision}}}{fraction}\\Z")
    # Any plain decimal (a column mixing whole and rounded amounts too): rounded as the
    # per-cell converter rounds, with the Decimal calls mapped over the column.
    decimal_text = re.compile(f"-?[0-9]{{1,{precision}}}(?:\\.[0-9]*)?\\Z")
    quantize = operator.methodcaller("quantize", Decimal(1).scaleb(-scale), ROUND_HALF_UP)

    def convert(texts: list[str]) -> list[float] | None:
        if all(map(plain.match, texts)):
            values = list(map(float, texts))
        elif all(map(decimal_text.match, texts)):
            values = list(map(float, map(quantize, map(Decimal, texts))))
        else:
            return None
        if max(values) >= float_bound or min(values) <= -float_bound:
            return None
        return values

    return convert


# ASCII digits only: date.fromisoformat and strptime may disagree about other digits.
_ASCII_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _bulk_date(f: Field) -> BulkConverter:
    def convert(texts: list[str]) -> list[str] | None:
        if not all(map(_ASCII_DATE_RE.match, texts)):
            return None
        try:
            list(map(date.fromisoformat, texts))  # a real calendar date, as strptime checks
        except ValueError:
            return None
        return texts[:]

    return convert


# The store's own datetime form (what sfbulk_nb's client sends): UTC, milliseconds, years
# 1000-9999 (strftime would not pad smaller years back to four digits).
_STORED_DATETIME_RE = re.compile(
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")


def _bulk_datetime(f: Field) -> BulkConverter:
    def convert(texts: list[str]) -> list[str] | None:
        if not all(map(_STORED_DATETIME_RE.match, texts)):
            return None
        try:  # a real date and time of day, as the per-cell converter checks
            list(map(datetime.fromisoformat, [text[:-1] for text in texts]))
        except ValueError:
            return None
        return texts[:]

    return convert


_BULK_BUILDERS: dict[str, Callable[[Field], BulkConverter | None]] = {
    "boolean": _bulk_boolean,
    "int": _bulk_int,
    "long": _bulk_int,
    "double": _bulk_number,
    "currency": _bulk_number,
    "percent": _bulk_number,
    "date": _bulk_date,
    "datetime": _bulk_datetime,
}


def sql_type(f: Field) -> str:
    """The SQLite column affinity that keeps the stored form."""
    return {"boolean": "INTEGER", "int": "INTEGER", "long": "INTEGER", "double": "REAL",
            "currency": "REAL", "percent": "REAL"}.get(f.type, "TEXT")


def default_for_create(f: Field) -> Any:
    """What the server fills into a field that an insert leaves empty."""
    if f.type == "boolean":
        return 1 if str(f.default_value).lower() == "true" else 0
    if f.type in ("picklist", "multipicklist") and f.flag("defaultedOnCreate"):
        # The picklist's default value (Task.Status "Not Started", Lead.Status "Open - Not
        # Contacted"): the field's defaultValue, else the value flagged as default.
        return f.default_value or next((v["value"] for v in f.describe.get("picklistValues")
                                        or () if v.get("defaultValue")), None)
    return None


def to_json(f: Field, stored: Any) -> Any:
    """A stored value as the REST API renders it in JSON."""
    if stored is None:
        return None
    if f.type == "boolean":
        return bool(stored)
    if f.type == "datetime":
        return stored[:-1] + "+0000"
    if f.type in ("int", "long"):
        return int(stored)
    if f.type in ("address", "location"):
        return json.loads(stored)  # built by the query as a JSON object (soql._compound_sql)
    return stored
