"""The contract between the client's checks (validate.py) and the local org.

For every rule validate.py implements: a cell `validate_df` calls an error is rejected by
the org with the same `sf_error_code`, and a cell it passes is accepted. Each object and
operation gets one frame of many rows, each row carrying one deliberately good or bad cell
(its other cells valid), generated per field type from the describe. The frame is sent as
text (dtype=str, so cells go as written) with on_invalid="send", so the org judges every
row, and validate's codes for each row are compared with the org's. The org reports one
error per row (its first), so a row has one bad cell; where validate finds several, the
org's must be among them. Each case also names the code both sides should give, so the two
cannot drift the same wrong way unnoticed.

Checks only one side can make are covered by what they are, at the end: the client-only
ones (cells with no CSV form, NUL), and the org-only ones that need the org's records.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
import time
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Callable

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.localorg import LocalOrg
from sfbulk_nb.localorg import ids as org_ids

SCHEMA = {p.name[:-5]: json.loads(p.read_text(encoding="utf-8"))
          for p in resources.files("sfbulk_nb.localorg").joinpath("schema").iterdir()
          if p.name.endswith(".json")}
STRING_TYPES = ("string", "textarea", "phone", "url", "combobox", "encryptedstring")
CLEAR = "#N/A"
TYPE = "INVALID_TYPE_ON_FIELD_IN_RECORD"
LONG = "STRING_TOO_LONG"
RANGE = "NUMBER_OUTSIDE_VALID_RANGE"
MALFORMED = "MALFORMED_ID"
REQUIRED = "REQUIRED_FIELD_MISSING"
READ_ONLY = "INVALID_FIELD_FOR_INSERT_UPDATE"
RESTRICTED = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
NOT_DEFINED = "PICKLIST_VALUE_NOT_DEFINED"
ROUNDED = "NUMBER_ROUNDED"
# Characters Python's re takes as \s or Unicode calls a separator (both sides spell them
# out): an e-mail address holds none of them.
SPACES = [chr(c) for c in range(0x3001)
          if re.match(r"\s", chr(c)) or unicodedata.category(chr(c)).startswith("Z")]


# -- a probe object: the field types the shipped schema lacks --------------------------------


def _field(name: str, type_: str, **props) -> dict:
    template = next(f for f in SCHEMA["Contact"]["fields"] if f["name"] == "Contact_Ext_Id__c")
    f = copy.deepcopy(template)
    f.update({"name": name, "label": name.removesuffix("__c").replace("_", " "), "type": type_,
              "custom": name.endswith("__c"), "externalId": False, "idLookup": False,
              "unique": False, "length": 0, "nillable": True, "createable": True,
              "updateable": True, "soapType": "xsd:string"})
    f.update(props)
    return f


def _picklist(*values: str, inactive: tuple[str, ...] = ()) -> list[dict]:
    return [{"active": v not in inactive, "defaultValue": False, "label": v, "validFor": None,
             "value": v} for v in values + inactive]


PROBE = {
    **{k: v for k, v in SCHEMA["Contact"].items() if k != "fields"},
    "name": "Probe__c", "label": "Probe", "labelPlural": "Probes", "custom": True,
    # A key prefix with letters, so the case of an 18-character id's prefix matters.
    "keyPrefix": "a0P",
    "fields": [
        _field("Id", "id", length=18, createable=False, updateable=False, nillable=False,
               defaultedOnCreate=True, idLookup=True, custom=False),
        _field("Name", "string", length=80, nillable=False, idLookup=True, custom=False),
        # Unique and case-sensitive: matched with case, "K1" and "k1" are two keys.
        _field("Probe_Key__c", "string", length=20, externalId=True, idLookup=True,
               unique=True, caseSensitive=True),
        # (Any multipicklist column crashed validate: fixed, with these two.)
        _field("Tags__c", "multipicklist", length=4099, restrictedPicklist=True,
               picklistValues=_picklist("Red", "Green", "Blue", inactive=("Gone",))),
        _field("Labels__c", "multipicklist", length=4099,
               picklistValues=_picklist("Alpha", "Beta")),
        _field("Ratio__c", "double", precision=5, scale=2, soapType="xsd:double"),
        _field("Count__c", "long", digits=18, soapType="xsd:long"),
        _field("Starts__c", "time", soapType="xsd:time"),
        _field("Seen__c", "datetime", soapType="xsd:dateTime"),
        _field("Level__c", "picklist", length=255, restrictedPicklist=True,
               picklistValues=_picklist("Low", "High", inactive=("Retired",))),
        _field("Once__c", "string", length=20, updateable=False),   # set at creation only
        _field("Later__c", "string", length=20, createable=False),  # set by updates only
        _field("Account__c", "reference", length=18, referenceTo=["Account"],
               relationshipName="Account__r", soapType="tns:ID"),
    ],
}
DESCRIBES = {**{k: v for k, v in SCHEMA.items() if k != "Organization"}, "Probe__c": PROBE}
# Organization is left out: no field of it is createable or updateable (nothing to load).


def fields(sobject: str) -> list[dict]:
    return DESCRIBES[sobject]["fields"]


def field(sobject: str, name: str) -> dict:
    return next(f for f in fields(sobject) if f["name"] == name)


def required(f: dict) -> bool:
    return bool(f.get("createable")) and not f.get("nillable") and not f.get("defaultedOnCreate")


def upsert_key(sobject: str) -> str:
    """The upsert key: the object's External ID field, else Id."""
    return next((f["name"] for f in fields(sobject) if f.get("externalId")), "Id")


# -- the org and its records -------------------------------------------------------------------


_tags = itertools.count(1)


def tag() -> str:
    """A short text no other cell of this module holds (unique fields stay unique)."""
    return "k" + _base36(next(_tags))


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def fill(start: str, length: int, ch: str = "a") -> str:
    return start + ch * (length - len(start))


PROFILE_ID = org_ids.make_id("00e", 1)  # Profile is not modelled: any well-formed id does


class Org:
    """The running org, a client, and records made on demand (one insert job per call)."""

    def __init__(self, local: LocalOrg):
        self.local = local
        self.client = sfb.connect(local)
        # The org finishes a job at once: poll every few milliseconds, not with backoff.
        self.options = dict(org=self.client, progress=False,
                            sleep=lambda seconds: time.sleep(min(seconds, 0.005)))
        self.parent: dict[str, dict] = {}  # one record per object, to point lookups at
        self.pools: dict[str, list[dict[str, str]]] = {}

    def valid(self, f: dict) -> str:
        """A value of f's type that the org takes."""
        start = tag()
        kind = f["type"]
        if kind in STRING_TYPES:
            return start[: f.get("length") or None]
        if kind == "email":
            return f"{start}@example.com"
        if kind in ("picklist", "multipicklist"):
            return next(v["value"] for v in f["picklistValues"] if v["active"])
        if kind == "boolean":
            return "true"
        if kind in ("int", "long", "double", "currency", "percent"):
            return "1"
        if kind == "date":
            return "2024-01-15"
        if kind == "datetime":
            return "2024-01-15T10:00:00.000Z"
        if kind == "time":
            return "10:00:00.000Z"
        if kind == "address":  # compound fields are read-only: only its refusal is tested
            return "1 Main St"
        if kind == "reference":
            target = f["referenceTo"][0]
            if target == "User":
                return self.local.user_id
            if target not in DESCRIBES:
                return PROFILE_ID
            return self.parent_record(target)["Id"]
        raise AssertionError(f"no valid value for {kind}")

    def new_row(self, sobject: str) -> dict[str, str]:
        """The required fields of a new record, valid."""
        row = {f["name"]: self.valid(f) for f in fields(sobject) if required(f)}
        if sobject == "PricebookEntry":
            # A price in the standard price book, of a product of its own: any other would
            # fail (objectrules: the standard price first, a product once per price book).
            row.update(Pricebook2Id=self.parent_record("Pricebook2")["Id"],
                       Product2Id=self.take("Product2", 1)[0]["Id"])
        if not row:  # nothing required (Task): one writable text field, so a job has a column
            f = next(f for f in fields(sobject) if f.get("createable") and f["type"] in STRING_TYPES)
            row[f["name"]] = self.valid(f)
        return row

    def make(self, sobject: str, n: int, **extra: Callable[[], str]) -> list[dict[str, str]]:
        """n new records (their cells and Id)."""
        if not n:
            return []
        rows = [{**self.new_row(sobject), **{k: v() for k, v in extra.items()}} for _ in range(n)]
        res = sfb.insert_df(pd.DataFrame(rows, dtype=str), sobject, **self.options)
        assert list(res.frame["sf_status"]) == ["created"] * n, res.errors
        return [{**row, "Id": rid} for row, rid in zip(rows, res.frame["sf_id"])]

    def make_keyed(self, sobject: str, n: int) -> list[dict[str, str]]:
        key = upsert_key(sobject)
        extra = {key: tag} if key != "Id" else {}
        return self.make(sobject, n, **extra)

    def take(self, sobject: str, n: int) -> list[dict[str, str]]:
        """n existing records no row has used yet (made a few hundred at a time: one
        insert job serves many frames)."""
        pool = self.pools.setdefault(sobject, [])
        if len(pool) < n:
            pool += self.make_keyed(sobject, max(n - len(pool), 400))
        taken, pool[:] = pool[:n], pool[n:]
        return taken

    def parent_record(self, sobject: str) -> dict[str, str]:
        if sobject == "Pricebook2" and sobject not in self.parent:  # the standard one
            self.parent[sobject] = sfb.query_df(
                "SELECT Id, Name FROM Pricebook2 WHERE IsStandard = true",
                org=self.client).iloc[0].to_dict()
        if sobject not in self.parent:
            self.parent[sobject] = self.make_keyed(sobject, 1)[0]
        return self.parent[sobject]


@pytest.fixture(scope="module")
def org():
    # An org of its own: the probe object stays out of the shared session org.
    with LocalOrg(seed=11) as local:
        local.add_object(PROBE)
        yield Org(local)


# -- cases -----------------------------------------------------------------------------------


ANY = "(any)"  # a case with no expectation: only the contract holds (the randomized pass)


@dataclass
class Case:
    """One row: one deliberately good or bad cell; the other cells valid."""

    column: str
    value: str | None | Callable[[dict], str]  # callable: of the row's existing record
    expect: str | None  # the org's code (None: the row is accepted)
    client: str | None = "same"  # validate's error code ("same": expect; None: no error)
    warn: str | None = None  # a warning validate gives as well
    why: str = ""
    existing: bool = False  # update/upsert/delete: the row addresses an existing record
    copies: int = 1  # rows sharing the key (duplicates)

    def __post_init__(self):
        if self.client == "same":
            self.client = self.expect


def ok(column, value, why="", **kw) -> Case:
    return Case(column, value, None, why=why, **kw)


def bad(column, value, code, why="", **kw) -> Case:
    return Case(column, value, code, why=why, **kw)


def string_cases(f: dict) -> list[Case]:
    n, length = f["name"], f.get("length") or 0
    out = [ok(n, lambda _: f" {tag()} ", "spaces are kept")] if not length or length >= 8 else []
    if length:
        out += [ok(n, lambda _: fill(tag(), length), "at the limit"),
                bad(n, lambda _: fill(tag(), length + 1), LONG, "one over"),
                ok(n, lambda _: fill(tag(), length, "é"), "multi-byte at the limit"),
                bad(n, lambda _: fill(tag(), length + 1, "日"), LONG, "multi-byte over"),
                # Both sides count code points (Salesforce may count UTF-16 units).
                ok(n, lambda _: fill(tag(), length, "😀"), "astral at the limit")]
    return out


def email_cases(f: dict) -> list[Case]:
    n, length = f["name"], f["length"]
    out = [ok(n, lambda _: f"{tag()}@example.com"), ok(n, lambda _: f"{tag()}@x.c"),
           ok(n, lambda _: fill(tag(), length - 7) + "@ex.com", "at the limit"),
           bad(n, lambda _: fill(tag(), length - 6) + "@ex.com", LONG, "one over"),
           bad(n, lambda _: f" {tag()}@example.com", "INVALID_EMAIL_ADDRESS", "leading space"),
           bad(n, lambda _: f"{tag()}@example", "INVALID_EMAIL_ADDRESS", "no dot"),
           bad(n, lambda _: f"{tag()}@@example.com", "INVALID_EMAIL_ADDRESS", "two @"),
           bad(n, "example.com", "INVALID_EMAIL_ADDRESS", "no @"),
           ok(n, lambda _: f"{tag()}\u200b@example.com", "zero-width space is no space")]
    out += [bad(n, lambda _, s=s: f"{tag()}{s}x@example.com", "INVALID_EMAIL_ADDRESS",
                f"space U+{ord(s):04X}") for s in SPACES]
    return out


def picklist_cases(f: dict) -> list[Case]:
    n = f["name"]
    values = [v["value"] for v in f["picklistValues"] if v["active"]]
    inactive = [v["value"] for v in f["picklistValues"] if not v["active"]]
    if not values:  # a picklist shipped without values (Product2.Family): any text is new
        return [ok(n, "Anything", "no values defined: nothing to check it against")]
    first, second = values[0], (values + values)[1]
    multi = f["type"] == "multipicklist"
    wrong = [(first.upper() if first.upper() != first else first.lower(), "wrong case"),
             ("Nope", "unknown"), (f" {first}", "leading space")] + [
             (v, "inactive") for v in inactive]
    if multi:
        wrong += [(f"{first};{second.lower()}", "one part wrong case"),
                  (f"{first}; {second}", "space after ;"), (f"{first};", "empty part")]
    out = [ok(n, first)] + ([ok(n, f"{first};{second}"), ok(n, f"{second};{first}")]
                            if multi else [])
    for value, why in wrong:
        if f.get("restrictedPicklist"):
            out.append(bad(n, value, RESTRICTED, why))
        else:
            out.append(ok(n, value, why, warn=NOT_DEFINED))
    if not multi:
        over = fill(first, f["length"] + 1)
        out.append(Case(n, over, LONG, why="over the length", warn=None if f.get(
            "restrictedPicklist") else NOT_DEFINED))
    return out


def boolean_cases(f: dict) -> list[Case]:
    n = f["name"]
    return ([ok(n, v) for v in ("true", "FALSE", "True", "1", "0")]
            + [bad(n, v, TYPE) for v in ("Yes", "y", "t", "on", "2", " true", "true ", "ｔｒｕｅ")])


def int_cases(f: dict) -> list[Case]:
    n, digits = f["name"], f.get("digits") or 18
    return ([ok(n, v) for v in ("12", "+5", "-5", "0", "-0", "007", "9" * digits, "-" + "9" * digits,
                                "000" + "9" * digits)]
            + [bad(n, v, RANGE, "digits limit") for v in ("1" + "0" * digits, "-1" + "0" * digits)]
            + [bad(n, v, TYPE) for v in ("12.0", " 7", "7 ", "1e3", "1,000", "5.", "+", "--5",
                                          "0x1F",
                                          "١٢", "１２",  # the org took other digits: fixed
                                          "1.5e999")])  # crashed validate's hint: fixed


def number_cases(f: dict) -> list[Case]:
    n, p, s = f["name"], f["precision"], f["scale"]
    whole = p - s  # digits before the point
    # At the limit both sides used floats: 18 nines read as 1e18 (validate and the org
    # fixed; these and the cases around the limit below hold them to Decimal).
    out = [ok(n, v) for v in ("1e1", "1E+1", ".5", "5.", "-.5", "+5", "12", "-0", "1e-400",
                              "0" * 20 + "1", "9" * whole, "-" + "9" * whole)]
    out += [ok(n, "0." + "1" * s)] if s else []
    out += [ok(n, "1." + "1" * (s + 1), "more decimals than the scale", warn=ROUNDED),
            ok(n, "9" * whole + "." + "4" + "9" * s, "rounds down under the limit", warn=ROUNDED),
            ok(n, "9" * whole + "." + "9" * s + "0", "trailing zero at the limit",
               warn=None),
            bad(n, "9" * whole + "." + "9" * s + "5", RANGE, "rounds up to the limit"),
            bad(n, "1" + "0" * whole, RANGE), bad(n, "-1" + "0" * whole, RANGE),
            bad(n, f"1e{whole}", RANGE), bad(n, "1e400", RANGE), bad(n, "-1e400", RANGE)]
    if s:
        out.append(ok(n, "9" * whole + "." + "9" * s, "precision and scale at the limit"))
    out += [bad(n, v, TYPE) for v in ("1,000", "1 000", "$5", "5%", "1e", "e3", ".", "-", "NaN",
                                      "inf", "1.2.3", " 5", "1_000", "(5)",
                                      "١٢")]  # the org took other digits: fixed
    return out


def date_cases(f: dict) -> list[Case]:
    n = f["name"]
    return ([ok(n, v) for v in ("2024-02-29", "0001-01-01", "9999-12-31", "1970-01-01")]
            + [bad(n, v, TYPE) for v in (
                "2023-02-29", "2024-2-3", "10/17/1974", "17.10.1974", "45000", "2024-02-29Z",
                "2024-02-29T00:00:00Z", " 2024-02-29", "2024-13-01", "2024-00-10",
                "２０２４-０２-２９", "20240229", "2024-02-29 ",
                "2023-02-29", "0000-01-01")])  # validate passed these two (Arrow): fixed


def datetime_cases(f: dict) -> list[Case]:
    n = f["name"]
    good = ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00.000Z", "2024-03-01T10:00:00+01:00",
            "2024-03-01T10:00:00+0100", "2024-03-01T10:00:00-05:30", "2024-03-01T10:00:00",
            "2024-03-01T10:00:00+23:59", "2024-03-01T10:00:00-00:00", "2024-02-29T23:59:59Z",
            "2024-03-01T10:00:00.5+01:00"]
    good += ["2024-03-01T10:00:00." + "1234567890"[:k] + "Z" for k in range(1, 10)]
    worse = ["2024-03-01T10:00:00.1234567890Z", "2024-03-01T24:00:00Z", "2024-03-01T23:60:00Z",
             "2024-03-01T23:59:60Z", "2024-03-01 10:00:00", "2024-03-01T10:00Z", "2024-03-01",
             "2024-03-01T10:00:00+01", "2024-03-01T10:00:00+24:00",
             "2024-03-01T10:00:00+05:60",  # the org took minute 60 as an hour: fixed
             "2024-02-30T10:00:00Z",  # validate passed it (Arrow's strptime): fixed
             "2024-03-01t10:00:00z", "2024-03-01T10:00:00 Z",
             "10/17/1974 10:00", "45000.5", "2024-03-01T10:00:00.Z", "2024-03-01T1:00:00Z",
             "2024-03-01T10:00:00+01:00:00",
             # In UTC these fall outside years 1-9999: validate passed them and the org
             # failed the whole job on them (OverflowError): both fixed.
             "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"]
    return [ok(n, v) for v in good] + [bad(n, v, TYPE) for v in worse]


def time_cases(f: dict) -> list[Case]:
    n = f["name"]
    return ([ok(n, v) for v in ("10:00:00", "10:00", "10:00:00.123", "10:00:00Z", "23:59:59.999Z",
                                "00:00", "10:00:00.1")]
            + [bad(n, v, TYPE) for v in ("24:00:00", "10:60:00", "1:00:00", "10:00:00.1234",
                                          "10:00:00+01:00", "10h00", "10:00:60", "10",
                                          "１０:00")])  # the org took other digits: fixed


def id_variants() -> list[tuple[Callable[[str], str], str]]:
    """Spellings of an existing 18-character id the org reads as that id."""
    return [(lambda r: r, "18 characters"), (lambda r: r[:15], "15 characters"),
            (lambda r: r[:15] + r[15:].lower(), "lower-case suffix"),
            # Probe__c's prefix a0P became a0p: validate called it another object's id (fixed).
            (lambda r: r.lower(), "all lower case (the suffix restores the case)")]


def malformed() -> list[tuple[Callable[[str], str], str]]:
    """Spellings of an id that no org reads as an id."""
    def digit_as_letter(rid: str) -> str:
        digit = next(i for i, c in enumerate(rid[:15]) if c.isdigit())
        suffix = list(rid[15:])
        bits = org_ids._SUFFIX.index(suffix[digit // 5]) | 1 << digit % 5
        suffix[digit // 5] = org_ids._SUFFIX[bits]
        return rid[:15] + "".join(suffix)

    return [(digit_as_letter, "checksum marks a digit upper-case"),
            (lambda r: r[:15] + "99A", "suffix outside the alphabet"),
            (lambda r: r[:17], "17 characters"), (lambda r: r[:14], "14 characters"),
            (lambda r: " " + r, "leading space"), (lambda r: r + " ", "trailing space"),
            (lambda r: r[:3] + "-" + r[4:], "a dash")]


def reference_cases(org: Org, f: dict) -> list[Case]:
    n = f["name"]
    target = f["referenceTo"][0]
    rid = org.valid(f)
    # (An all-lower-case id of an object the org does not model is no id it can restore.)
    out = [ok(n, v(rid), why) for v, why in id_variants()[: None if target in DESCRIBES else 3]]
    out += [bad(n, v(rid), MALFORMED, why) for v, why in malformed()]
    # validate passed an id of another object (it knew no key prefixes): fixed.
    other = "Contact" if target != "Contact" else "Account"
    other_id = org.parent_record(other)["Id"]
    out += [bad(n, v(other_id), "FIELD_INTEGRITY_EXCEPTION", f"an id of {other}, {why}")
            for v, why in id_variants()]
    return out


def key_id_cases(org: Org, sobject: str, op: str) -> list[Case]:
    """The Id column of an update, a delete or an upsert on Id: the row's record's id."""
    other = "Contact" if sobject != "Contact" else "Account"
    other_id = org.parent_record(other)["Id"]
    out = [ok("Id", lambda r, v=v: v(r["Id"]), why, existing=True) for v, why in id_variants()]
    out += [bad("Id", lambda r, v=v: v(r["Id"]), MALFORMED, why, existing=True)
            for v, why in malformed()]
    out += [bad("Id", other_id, MALFORMED, f"an id of {other}"),
            # (Rows sharing a key crashed the alignment of on_invalid="send": fixed.)
            bad("Id", lambda r: r["Id"], "DUPLICATE_VALUE", "twice", existing=True, copies=2),
            bad("Id", lambda r, copy: r["Id"] if copy == 0 else r["Id"][:15], "DUPLICATE_VALUE",
                "as 18 and as 15 characters", existing=True, copies=2)]
    if op == "upsert":  # an upsert on Id creates the rows without one
        out.append(ok("Id", "", "blank: a new record"))
    else:
        out += [bad("Id", "", "MISSING_ARGUMENT", "blank")]
    return out


def cases_for(org: Org, sobject: str, op: str) -> list[Case]:
    """Every case of one object and operation, generated from the describe."""
    if op == "delete":
        return key_id_cases(org, sobject, op)
    key = upsert_key(sobject) if op == "upsert" else "Id" if op == "update" else None
    flag = {"insert": ("createable",), "update": ("updateable",),
            "upsert": ("createable", "updateable")}[op]
    out: list[Case] = []
    for f in fields(sobject):
        n = f["name"]
        if n == key or n == "Id":
            continue
        writable = any(f.get(k) for k in flag)
        if not writable:
            value = org.valid(f)
            out += [bad(n, value, READ_ONLY, "read-only"), bad(n, CLEAR, READ_ONLY, "read-only")]
            continue
        if op == "upsert" and bool(f.get("createable")) != bool(f.get("updateable")):
            out += conditional_write_cases(org, f)
            continue
        out += value_cases(org, f)
        if required(f):
            out += required_cases(org, f, op)
        else:
            out.append(ok(n, CLEAR, "clears the field"))
    out += relationship_cases(org, sobject, op)
    if op == "insert":
        out.append(bad("Id", lambda _: org.parent_record(sobject)["Id"], READ_ONLY, "Id on insert"))
    elif op == "update" or key == "Id":
        out += key_id_cases(org, sobject, op)
    else:
        out += upsert_key_cases(org, sobject, key)
    return out


def value_cases(org: Org, f: dict) -> list[Case]:
    kind = f["type"]
    if kind in STRING_TYPES:
        return string_cases(f)
    return {"email": email_cases, "picklist": picklist_cases, "multipicklist": picklist_cases,
            "boolean": boolean_cases, "int": int_cases, "long": int_cases,
            "double": number_cases, "currency": number_cases, "percent": number_cases,
            "date": date_cases, "datetime": datetime_cases, "time": time_cases,
            "reference": lambda f: reference_cases(org, f)}[kind](f)


def required_cases(org: Org, f: dict, op: str) -> list[Case]:
    n = f["name"]
    if op == "insert":
        return [bad(n, "", REQUIRED, "blank"), bad(n, CLEAR, REQUIRED, "#N/A"),
                bad(n, None, REQUIRED, "null, nulls='keep'")]
    if op == "update":
        return [ok(n, "", "blank leaves it", existing=True),
                bad(n, CLEAR, REQUIRED, "#N/A clears it", existing=True),
                ok(n, None, "null, nulls='keep'", existing=True)]
    # upsert: a blank fails only the rows that create (validate warns); #N/A clears the
    # field, which fails updates too (validate only warned of it: fixed).
    return [Case(n, "", REQUIRED, client=None, warn=REQUIRED, why="blank, new key"),
            ok(n, "", "blank, existing key", warn=REQUIRED, existing=True),
            bad(n, CLEAR, REQUIRED, "#N/A, new key"),
            bad(n, CLEAR, REQUIRED, "#N/A, existing key", existing=True)]


def conditional_write_cases(org: Org, f: dict) -> list[Case]:
    """A field writable on create only (or update only), in an upsert: validate warns, and
    the org rejects exactly the rows of the other kind."""
    n = f["name"]
    creates_ok = bool(f.get("createable"))
    return [Case(n, lambda _: org.valid(f), None if creates_ok else READ_ONLY, client=None,
                 warn=READ_ONLY, why="new key"),
            Case(n, lambda _: org.valid(f), READ_ONLY if creates_ok else None, client=None,
                 warn=READ_ONLY, why="existing key", existing=True)]


def relationship_cases(org: Org, sobject: str, op: str) -> list[Case]:
    out = []
    flag = {"insert": ("createable",), "update": ("updateable",),
            "upsert": ("createable", "updateable")}[op]
    for f in fields(sobject):
        target = (f.get("referenceTo") or [None])[0]
        if f["type"] != "reference" or not f.get("relationshipName") or target not in DESCRIBES:
            continue
        parent = org.parent_record(target)
        for key in fields(target):
            if not (key["name"] == "Id" or key.get("externalId") or key.get("idLookup")):
                continue
            if key["name"] not in parent:
                continue
            column = f"{f['relationshipName']}.{key['name']}"
            if len(f["referenceTo"]) > 1:  # polymorphic: ObjectType:Relationship.Key
                column = f"{target}:{column}"
            if any(f.get(k) for k in flag):
                out += [ok(column, parent[key["name"]], "an existing parent"),
                        bad(column, CLEAR, REQUIRED, "clears a required lookup") if required(f)
                        else ok(column, CLEAR, "clears the lookup")]
            else:
                out.append(bad(column, parent[key["name"]], READ_ONLY, "read-only lookup"))
    return out


def upsert_key_cases(org: Org, sobject: str, key: str) -> list[Case]:
    f = field(sobject, key)
    out = [ok(key, lambda _: tag(), "a new key"),
           ok(key, lambda r: r[key], "an existing key", existing=True),
           bad(key, "", "MISSING_ARGUMENT", "blank"), bad(key, CLEAR, "MISSING_ARGUMENT", "#N/A"),
           # Spaces are no key (the org used to store "  " as one).
           bad(key, lambda _: " " * (len(tag()) % 3 + 1), "MISSING_ARGUMENT", "spaces only"),
           # Both sides refuse an Id beside the external id (the org used to ignore it).
           bad("Id", lambda _: org.parent_record(sobject)["Id"], READ_ONLY,
               "an Id beside the external id"),
           bad(key, lambda _: tag(), "DUPLICATE_VALUE", "twice", copies=2)]
    if f.get("length"):
        out += [ok(key, lambda _: fill(tag(), f["length"]), "at the limit"),
                bad(key, lambda _: fill(tag(), f["length"] + 1), LONG, "one over")]
    # Keys match without case only on unique, case-insensitive fields (and standard ones).
    folds = not f.get("custom") or (f.get("unique") and not f.get("caseSensitive"))
    same = tag()
    out.append(Case(key, lambda _, copy: same if copy == 0 else same.upper(),
                    "DUPLICATE_VALUE" if folds else None, why="same key in another case",
                    copies=2))
    return out


# -- running a case list -----------------------------------------------------------------------


@dataclass
class Row:
    case: Case
    cells: dict[str, str | None]
    creates: bool


def build(org: Org, sobject: str, op: str, cases: list[Case]) -> list[Row]:
    """The rows of the cases: the required fields of a new record, or the key of an
    existing one (a record of its own per row), and the case's cell."""
    key = upsert_key(sobject) if op == "upsert" else "Id"
    needs_record = (lambda c: True) if op in ("update", "delete") else (
        (lambda c: c.existing) if op == "upsert" else (lambda c: False))
    records = iter(org.take(sobject, sum(c.copies for c in cases if needs_record(c))))
    rows = []
    # Duplicates first: the org fails repeated keys within one 200-row DML chunk only (the
    # client refuses them anywhere; test_repeated_keys_in_other_chunks covers the rest).
    for case in sorted(cases, key=lambda c: c.copies == 1):
        record = next(records) if needs_record(case) else None
        value = case.value
        if callable(value) and _arity(value) == 1:
            value = value(record)  # once: the copies of a duplicate share it
        for copy_no in range(case.copies):
            if op in ("update", "delete"):
                cells: dict[str, str | None] = {"Id": record["Id"]}
            elif op == "upsert":
                new_key = "" if key == "Id" else tag()
                # An existing record's row leaves out the required fields that are
                # writable on create only (PricebookEntry.Pricebook2Id): they would fail it.
                cells = {key: record[key] if record else new_key,
                         **{k: v for k, v in org.new_row(sobject).items()
                            if record is None or field(sobject, k).get("updateable")}}
            else:
                cells = org.new_row(sobject)
            if written(sobject, case.column) != case.column:
                # A relationship column stands in for its lookup field (a required one is
                # in the new row): both would fail the job ("Duplicate field name").
                cells.pop(written(sobject, case.column), None)
            cells[case.column] = value(record, copy_no) if callable(value) else value
            rows.append(Row(case, cells, op == "insert" or (op == "upsert" and not record)))
    return rows


def _arity(fn) -> int:
    return fn.__code__.co_argcount - len(fn.__defaults__ or ())


def frame(rows: list[Row]) -> pd.DataFrame:
    columns = list(dict.fromkeys(c for row in rows for c in row.cells))
    data = {c: [row.cells.get(c, "") for row in rows] for c in columns}
    return pd.DataFrame(data, dtype=str)  # None stays a null: the null policy decides


def load(org: Org, df: pd.DataFrame, sobject: str, op: str, nulls: dict | str = "keep"):
    """The org's results for the frame, sent whatever the checks say; ``res.problems`` is
    what validate_df says of it (test_validate_df_is_what_a_load_checks)."""
    key = upsert_key(sobject) if op == "upsert" else None
    options = dict(org.options, on_invalid="send", nulls=nulls)
    if op == "upsert":
        return sfb.upsert_df(df, sobject, key, **options)
    return {"insert": sfb.insert_df, "update": sfb.update_df, "delete": sfb.delete_df}[op](
        df, sobject, **options)


def by_position(problems, severity: str) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    found = problems[(problems["severity"] == severity) & problems["position"].notna()]
    for pos, code, fld in zip(found["position"], found["code"], found["field"]):
        out.setdefault(int(pos), []).append((str(code), str(fld)))
    return out


def compare(sobject: str, op: str, rows: list[Row], problems, res,
            org_only: frozenset[str] = frozenset()) -> list[str]:
    """One line per row where validate and the org disagree (or a case misses its aim).
    ``org_only``: codes the org may give a row validate passes (checks that need records)."""
    assert not len(problems[problems["position"].isna() & (problems["severity"] == "error")]), \
        problems[problems["position"].isna()]
    errors_at, warnings_at = by_position(problems, "error"), by_position(problems, "warning")
    statuses = res.frame["sf_status"].tolist()
    codes = res.frame["sf_error_code"].tolist()
    out = []
    for pos, row in enumerate(rows):
        case = row.case
        client = {code for code, _ in errors_at.get(pos, [])}
        warned = warnings_at.get(pos, [])
        status = statuses[pos]
        org_code = codes[pos] if status == "failed" else None
        problem = None
        if status not in ("created", "updated", "deleted", "failed"):
            problem = f"the org left the row {status}"
        elif client and org_code not in client:
            problem = "validate rejects it, the org " + (f"says {org_code}" if org_code else "takes it")
        elif not client and org_code and org_code not in org_only and not _warned_of(
                org_code, warned, row, sobject):
            problem = "validate passes it, the org rejects it"
        elif case.expect == ANY or (case.expect is None and org_code in org_only):
            pass
        elif org_code != case.expect:
            problem = f"the org should say {case.expect}"
        elif case.client and case.client not in client:
            problem = f"validate should say {case.client}"
        elif case.warn and case.warn not in {c for c, _ in warned}:
            problem = f"validate should warn {case.warn}"
        if problem:
            value = row.cells.get(case.column)
            shown = repr(value if value is None or len(value) < 50 else value[:47] + "...")
            out.append(f"{sobject} {op} {case.column}={shown} ({case.why}): {problem}; "
                       f"validate {sorted(client) or 'ok'}"
                       f"{' warns ' + str(sorted({c for c, _ in warned})) if warned else ''}, "
                       f"org {status} {org_code or ''}")
    return out


def _warned_of(code: str, warned: list[tuple[str, str]], row: Row, sobject: str) -> bool:
    """Whether a warning said the org may refuse the row this way, and the row is the kind
    the warning names: a required field left blank fails rows that create; a field
    writable on create only (update only) fails rows that update (create)."""
    for warn_code, fld in warned:
        if warn_code != code:
            continue
        if code == REQUIRED and row.creates:
            return True
        if code == READ_ONLY and not field(sobject, fld).get(
                "createable" if row.creates else "updateable"):
            return True
    return False


def written(sobject: str, column: str) -> str:
    """The field a column writes: a relationship column writes its lookup field."""
    if "." not in column:
        return column
    rel = column.partition(".")[0].rpartition(":")[2]
    return next(f["name"] for f in fields(sobject) if f.get("relationshipName") == rel)


def frames_of(sobject: str, cases: list[tuple[Case, str]]) -> list[tuple[list[Case], dict]]:
    """The (case, null policy) pairs split into frames, each with its nulls= argument, so
    that in a frame no two columns write one field (the org fails the whole job on that:
    AccountId beside Account.customExtIdField__c) and a column's null cells share one
    policy."""
    frames: list[tuple[dict[str, str], dict[str, str], list[Case]]] = []
    required_fields = {f["name"] for f in fields(sobject) if required(f)}
    for case, policy in cases:
        target = written(sobject, case.column)
        # A relationship column for a required lookup replaces the field every other row
        # carries (rows_of drops it from its own rows only): such cases go in frames alone.
        alone = target in required_fields and target != case.column
        for columns, nulls, part in frames:
            if columns.get(target, case.column) != case.column:
                continue
            if alone != any(written(sobject, c.column) in required_fields
                            and written(sobject, c.column) != c.column for c in part) or (
                    alone and any(c.column != case.column for c in part)):
                continue
            if case.value is None and nulls.get(case.column, policy) != policy:
                continue
            columns[target] = case.column
            if case.value is None:
                nulls[case.column] = policy
            part.append(case)
            break
        else:
            frames.append(({target: case.column},
                           {case.column: policy} if case.value is None else {}, [case]))
    return [(part, nulls) for _, nulls, part in frames]


GROUPS = [(s, op) for s in DESCRIBES for op in ("insert", "update", "upsert", "delete")]
# Object rules that depend on the records already there (localorg/objectrules.py): validate
# cannot know them; the cases that share a product or price book meet them.
ORG_ONLY = {"PricebookEntry": frozenset({"STANDARD_PRICE_NOT_DEFINED", "DUPLICATE_VALUE"})}


@pytest.mark.parametrize("sobject,op", GROUPS, ids=[f"{s}-{op}" for s, op in GROUPS])
def test_validate_and_org_agree(org, sobject, op):
    cases = [(c, "keep") for c in cases_for(org, sobject, op)]
    # A null cell goes as "" with nulls="keep" (as the blank cases do) and as #N/A with
    # nulls="clear": the null cases go once more, cleared.
    cases += [(Case(c.column, None, REQUIRED, why="null, nulls='clear'", existing=c.existing),
               "clear") for c, _ in cases if c.value is None]
    failures = []
    for part, nulls in frames_of(sobject, cases):
        rows = build(org, sobject, op, part)
        df = frame(rows)
        res = load(org, df, sobject, op, {c: p for c, p in nulls.items() if p != "keep"})
        failures += compare(sobject, op, rows, res.problems, res,
                            org_only=ORG_ONLY.get(sobject, frozenset()))
    assert not failures, f"{len(failures)} disagreement(s):\n" + "\n".join(failures)


def test_validate_df_is_what_a_load_checks(org):
    """The contract is validate_df's: a load's problems are the same frame."""
    rows = build(org, "Contact", "upsert", cases_for(org, "Contact", "upsert")[:60])
    df = frame(rows)
    problems = sfb.validate_df(df, "Contact", "Contact_Ext_Id__c", org=org.client)
    res = load(org, df, "Contact", "upsert")
    assert len(problems) > 10
    pd.testing.assert_frame_equal(pd.DataFrame(problems), pd.DataFrame(res.problems))


# -- checks of whole columns: the org fails the job, or the client sends nothing ---------------


def column_cases(org: Org) -> list[tuple[str, dict[str, str], str, str]]:
    """(why, extra columns of a Contact insert, validate's code, the job's errorMessage)."""
    parent = org.parent_record("Account")
    key = parent["customExtIdField__c"]
    return [
        ("not a field", {"Nope__c": "x"}, "INVALID_FIELD", "Field name not found"),
        ("a field's label", {"First Name": "x"}, "INVALID_FIELD", "Field name not found"),
        ("no such relationship", {"Nope.Id": "x"}, "INVALID_FIELD", "Field name not found"),
        ("a parent field that is no external id", {"Account.Phone": "x"}, "INVALID_FIELD",
         "Field name not found"),
        ("no such parent field", {"Account.Nope__c": "x"}, "INVALID_FIELD", "Field name not found"),
        ("a grandparent", {"Account.Owner.Username": "x"}, "INVALID_FIELD", "Field name not found"),
        # validate used to pass these three (fixed in validate.py):
        ("a ParentType: prefix on a lookup to one object",
         {"Account:Account.customExtIdField__c": key}, "INVALID_FIELD", "type is not needed for non polymorphic"),
        ("a lookup beside its relationship column",
         {"AccountId": parent["Id"], "Account.customExtIdField__c": key}, "DUPLICATE_FIELD",
         "Duplicate field name"),
        ("two columns of one relationship",
         {"Account.Id": parent["Id"], "Account.customExtIdField__c": key}, "DUPLICATE_FIELD",
         "Duplicate field name"),
        ("a ParentType: prefix naming another object",
         {"Contact:Account.customExtIdField__c": key}, "INVALID_FIELD", "type is not needed for non polymorphic"),
    ]


def test_column_problems_fail_the_job(org):
    for why, extra, code, message in column_cases(org):
        df = pd.DataFrame({"LastName": [tag(), tag()], **{c: [v, v] for c, v in extra.items()}},
                          dtype=str)
        res = load(org, df, "Contact", "insert")
        columns = res.problems[res.problems["position"].isna()]
        assert code in set(columns[columns["severity"] == "error"]["code"]), why
        assert list(res.frame["sf_status"]) == ["unprocessed"] * 2, why
        assert message in res.jobs["error_message"].iloc[0], why


@pytest.mark.parametrize("op,columns,code", [
    ("insert", ["LastName", "lastname"], "DUPLICATE_FIELD"),  # no CSV header holds both
    ("insert", ["LastName", "sf__Id"], "INVALID_FIELD"),  # Salesforce's result columns
    ("insert", ["LastName "], "INVALID_FIELD"),  # no field name ends with a space
    ("upsert", ["LastName"], "MISSING_ARGUMENT"),  # no key: no row can be matched
    ("update", ["LastName"], "MISSING_ARGUMENT"),  # (on_invalid="send" used to crash)
    ("delete", ["LastName"], "MISSING_ARGUMENT"),
])
def test_column_problems_no_upload_can_carry_send_nothing(org, op, columns, code):
    df = pd.DataFrame([["a"] * len(columns)], columns=columns, dtype=str)
    problems = sfb.validate_df(df, "Contact", "Contact_Ext_Id__c" if op == "upsert" else None,
                               operation=op, org=org.client)
    assert code in set(problems[problems["position"].isna()]["code"])
    jobs = org.local.store.list_jobs("ingest", 0, 10_000, {})
    with pytest.raises(errors.ValidationError, match="Nothing was sent"):
        load(org, df, "Contact", op)
    assert len(org.local.store.list_jobs("ingest", 0, 10_000, {})) == len(jobs)


# -- checks only the client makes ----------------------------------------------------------------


@pytest.mark.parametrize("cell,code", [
    (5, "MIXED_TYPES"),  # a number among texts: the column has no one CSV form
    (["x"], "INVALID_CELL_TYPE"),  # a list: no CSV form at all
    ("a\ud800", "INVALID_CHARACTER"),  # a lone surrogate: no UTF-8 form
])
def test_cells_without_a_csv_form_are_never_sent(org, cell, code):
    df = pd.DataFrame({"Name": [tag(), cell, tag()]}, dtype=object)
    problems = sfb.validate_df(df, "Account", operation="insert", org=org.client)
    assert code in set(problems[problems["position"] == 1]["code"])
    with pytest.raises(errors.ValidationError, match="no CSV form"):
        sfb.insert_df(df, "Account", on_invalid="send", **org.options)
    res = sfb.insert_df(df, "Account", on_invalid="skip", **org.options)
    assert list(res.frame["sf_status"]) == ["created", "invalid", "created"]


def test_infinity_is_never_sent(org):
    df = pd.DataFrame({"Name": [tag(), tag()], "AnnualRevenue": [1.0, float("inf")]})
    problems = sfb.validate_df(df, "Account", operation="insert", org=org.client)
    assert list(problems["code"]) == [RANGE] and list(problems["position"]) == [1]
    with pytest.raises(errors.ValidationError, match="no CSV form"):
        sfb.insert_df(df, "Account", on_invalid="send", **org.options)


def test_nul_is_refused_by_the_client_only(org):
    """Salesforce cannot store NUL (validate's INVALID_CHARACTER); the local org keeps it as
    data (its CSV reader's tests say so), so the client is the only judge here."""
    df = pd.DataFrame({"Name": [tag(), tag() + "\x00"]})
    problems = sfb.validate_df(df, "Account", operation="insert", org=org.client)
    assert list(zip(problems["position"], problems["code"])) == [(1, "INVALID_CHARACTER")]
    res = sfb.insert_df(df, "Account", on_invalid="skip", **org.options)
    assert list(res.frame["sf_status"]) == ["created", "invalid"]


# -- checks only the org makes: they need its records --------------------------------------------


def test_checks_that_need_the_orgs_records(org):
    """validate_df reads no records, so these rows pass it; the org refuses them. (A load's
    plan.lookup() asks the org which keys exist, for the cases that matter most.)"""
    gone = org.make("Account", 1)[0]
    sfb.delete_df([gone["Id"]], "Account", **org.options)
    twin = "twin-" + tag()
    twins = org.make("Account", 2, customExtIdField__c=lambda: twin)
    taken = org.take("Contact", 1)[0]
    unknown_account = org_ids.make_id("001", 10**9)
    cases = [  # (object, operation, row cells, the org's code)
        ("Contact", "insert", {"Account.customExtIdField__c": "no-such-key"}, "INVALID_FIELD"),
        ("Contact", "insert", {"AccountId": unknown_account}, "INVALID_CROSS_REFERENCE_KEY"),
        ("Contact", "insert", {"Contact_Ext_Id__c": taken["Contact_Ext_Id__c"]}, "DUPLICATE_VALUE"),
        ("Account", "update", {"Id": unknown_account}, "INVALID_CROSS_REFERENCE_KEY"),
        ("Account", "update", {"Id": gone["Id"]}, "ENTITY_IS_DELETED"),
        ("Account", "upsert", {"customExtIdField__c": twins[0]["customExtIdField__c"]},
         "DUPLICATE_EXTERNAL_ID"),
    ]
    for sobject, op, cells, code in cases:
        row = {} if op == "update" else org.new_row(sobject)
        df = pd.DataFrame([{**row, **cells}], dtype=str)
        res = load(org, df, sobject, op)
        assert res.problems.ok, (cells, res.problems)
        assert list(res.frame["sf_error_code"]) == [code], cells


def test_repeated_keys_in_other_chunks(org):
    """The client refuses a key sent twice anywhere (results could not be told apart, and
    which row wins is not documented); the org, like Salesforce's 200-row DML chunks, fails
    repeats within a chunk only, and a later chunk updates what an earlier one made."""
    rows = [{**org.new_row("Account"), "customExtIdField__c": tag()} for _ in range(230)]
    rows[220]["customExtIdField__c"] = rows[0]["customExtIdField__c"]
    res = load(org, pd.DataFrame(rows, dtype=str), "Account", "upsert")
    refused = res.problems[res.problems["code"] == "DUPLICATE_VALUE"]
    assert list(refused["position"]) == [0, 220]
    assert res.frame["sf_status"].iloc[[0, 220]].tolist() == ["created", "updated"]


# -- a randomized pass ----------------------------------------------------------------------------

# Each type's forms, in ASCII digits; mutate() then puts other characters in them.
FORMS = {
    "number": r"[+-]?[0-9]{0,19}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,3})?",
    "date": r"[0-9]{4}-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])",
    "datetime": r"[0-9]{4}-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])T[0-2][0-9]:[0-6][0-9]:[0-6][0-9]"
                r"(\.[0-9]{0,10})?(Z|[+-][0-2][0-9]:?[0-6][0-9])?",
    "time": r"[0-2][0-9]:[0-6][0-9](:[0-6][0-9])?(\.[0-9]{0,4})?Z?",
    "boolean": r"(true|false|TRUE|False|yes|no|[01tfyn])",
    "email": r"[a-z.@]{0,3}@[a-z.]{1,4}\.[a-z.]{0,3}",
}
KIND = {"int": "number", "long": "number", "double": "number", "currency": "number",
        "percent": "number", "date": "date", "datetime": "datetime", "time": "time",
        "boolean": "boolean", "email": "email"}
RANDOM_FIELDS = {
    "Probe__c": ["Count__c", "Ratio__c", "Starts__c", "Seen__c", "Tags__c", "Labels__c",
                 "Level__c", "Account__c"],
    "Account": ["Founded__c", "Active__c", "NumberOfEmployees", "AnnualRevenue"],
    "Contact": ["Email", "Birthdate"],
}
# What a mutation puts in: other scripts' digits and spaces, signs, separators, letters.
TRICKY = ["٣", "３", "𝟗", " ", "\u00a0", "\u2007", "\u3000", "\t", "-", "+", ".", ",", "e",
          ":", "T", "Z", "t", "0", "9", "a", "A", ";", "@", "é", ""]


def mutate(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A form, as is, with one character replaced, inserted or dropped, or junk."""
    def edit(t):
        text, at, new, keep = t
        at = at % (len(text) + 1)
        return text[:at] + new + text[at + (0 if keep else 1):]

    return st.one_of(core, core, st.tuples(core, st.integers(0, 40), st.sampled_from(TRICKY),
                                           st.booleans()).map(edit),
                     st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                             max_size=4))


def cell_texts(org: Org, f: dict) -> st.SearchStrategy[str]:
    """Texts near a field's forms (NUL and lone surrogates left out: the client alone
    judges those)."""
    if f["type"] in ("picklist", "multipicklist"):
        values = [v["value"] for v in f["picklistValues"]]
        part = st.sampled_from(values + [v.lower() for v in values] + [" " + values[0], "", "x"])
        core = (st.lists(part, min_size=1, max_size=3).map(";".join)
                if f["type"] == "multipicklist" else part)
    elif f["type"] == "reference":
        ids = [org.parent_record("Account")["Id"], org.parent_record("Contact")["Id"],
               org_ids.make_id("zzz", 1)]
        core = st.sampled_from([i for r in ids for i in (r, r[:15], r.lower(), r.upper())])
    else:
        core = st.from_regex(FORMS[KIND[f["type"]]], fullmatch=True)
    return mutate(core)


@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_random_cells_agree(org, data):
    """Cells drawn near each type's forms: whatever validate says of one, the org agrees. An
    id of no record may pass validate and fail the org (INVALID_CROSS_REFERENCE_KEY: that
    needs the org's records)."""
    sobject = data.draw(st.sampled_from(sorted(RANDOM_FIELDS)))
    cells = data.draw(st.lists(st.sampled_from(RANDOM_FIELDS[sobject]).flatmap(
        lambda n: st.tuples(st.just(n), cell_texts(org, field(sobject, n)))), min_size=1, max_size=60))
    rows = build(org, sobject, "insert", [Case(n, v, ANY) for n, v in cells])
    res = load(org, frame(rows), sobject, "insert")
    failures = compare(sobject, "insert", rows, res.problems, res,
                       org_only=frozenset({"INVALID_CROSS_REFERENCE_KEY"}))
    assert not failures, "\n".join(failures)
