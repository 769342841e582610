"""An object's validation rules, fetched from an org and checked on a frame before sending.

    rules = sfb.fetch_rules(org, "Account")      # the active rules, through the Tooling API
    problems = sfb.validate_df(df, "Account", "customExtIdField__c", rules=True)

Fetching takes 1 + N calls: the Tooling API returns a rule's `Metadata` (where its error
condition formula is) only to a query that can return one row, so the ids are listed
first and each rule is then read on its own (`RuleSet.api_calls` counts them).

Checking evaluates each rule's formula (sfbulk_nb.formula, the same library the local
org uses) on every row that has no other error, as the row would be sent: the texts of
its cells after formatting and the null policy. A row whose record makes a rule true
gets a FIELD_CUSTOM_VALIDATION_EXCEPTION problem with the rule's message, as the org
would answer. What the frame alone cannot tell is not guessed: a rule that reads a parent
record, the stored record (ISCHANGED, PRIORVALUE on update or upsert; ISNEW on upsert), or
on update/upsert a field the frame does not send, is skipped, and the problems say which
and why (a warning); so is a formula outside the supported subset. On insert a record is
new: ISNEW() is true, ISCHANGED() false and PRIORVALUE() the value itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from . import formula as fl
from .org import Org
from .problems import ERROR, WARNING, Block
from .progress import plural

CODE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
SKIPPED = "VALIDATION_RULE_NOT_CHECKED"
_LIST = ("SELECT Id, ValidationName FROM ValidationRule "
         "WHERE EntityDefinition.QualifiedApiName = '{sobject}'{active}")
_ONE = ("SELECT Id, ValidationName, Active, ErrorDisplayField, ErrorMessage, Metadata "
        "FROM ValidationRule WHERE Id = '{id}'")


@dataclass(frozen=True)
class Rule:
    """One validation rule as the org keeps it: true `formula` refuses the record."""

    name: str
    formula: str
    message: str
    field: str | None = None  # the error display field; None: the top of the page
    active: bool = True
    description: str | None = None
    id: str | None = None


@dataclass
class RuleSet:
    sobject: str
    rules: list[Rule] = field(default_factory=list)
    api_calls: int = 0

    def __iter__(self):
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)


def _soql_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def fetch_rules(org: Org, sobject: str, *, active_only: bool = True) -> RuleSet:
    """The validation rules of ``sobject`` (the active ones unless ``active_only=False``),
    read through the Tooling API: one query for the ids, then one per rule for its
    Metadata (Salesforce refuses Metadata to a query that may return several rows)."""
    calls = org.api_calls
    listed = org.get_json("tooling/query", params={"q": _LIST.format(
        sobject=_soql_text(sobject), active=" AND Active = true" if active_only else "")})
    rules = []
    for record in listed.get("records", []):
        (one,) = org.get_json("tooling/query", params={
            "q": _ONE.format(id=_soql_text(record["Id"]))})["records"]
        meta = one.get("Metadata") or {}
        rules.append(Rule(
            name=one["ValidationName"], formula=meta.get("errorConditionFormula") or "",
            message=meta.get("errorMessage") or one.get("ErrorMessage") or "",
            field=meta.get("errorDisplayField") or one.get("ErrorDisplayField"),
            active=bool(one.get("Active")), description=meta.get("description"), id=one["Id"]))
    return RuleSet(sobject, rules, org.api_calls - calls)


# -- checking a frame -------------------------------------------------------------------

def _field_types(describe: dict):
    by_name = {f["name"].lower(): f["type"] for f in describe["fields"]}

    def lookup(path: tuple[str, ...]) -> str | None:
        return by_name.get(path[0].lower()) if len(path) == 1 else None
    return lookup


@dataclass
class _Prepared:
    rule: Rule
    compiled: fl.Formula
    fields: list[str]            # the record's fields it reads, describe spelling
    columns: list[int]           # their frame columns


def check_rules(checked, describe: dict, operation: str, rules, *,
                now=None) -> list[Block]:
    """Problems (as validate.Block) of the rows of a validated frame (`validate.Checked`)
    that ``rules`` refuse, and a warning for each rule that cannot be checked here."""
    if operation not in ("insert", "update", "upsert") or checked.encoding is None:
        return []
    df = checked.encoding.df
    column_of = {name.lower(): i for i, name in enumerate(checked.fields) if name}
    defaults = {f["name"].lower(): f for f in describe["fields"]}
    types = _field_types(describe)
    blocks: list[Block] = []
    usable: list[_Prepared] = []
    for rule in rules:
        if not rule.active:
            continue
        try:
            compiled = fl.parse(rule.formula)
            # A parent's fields are typed by the parent's describe: the rule is skipped
            # before its types matter.
            why = _why_not(compiled, operation, column_of)
            if why is None:
                compiled.check(types)
        except fl.FormulaError as e:
            why = f"its formula cannot be evaluated here: {e}"
        if why is not None:
            blocks.append(Block(f"rule {rule.name}", rule.field, SKIPPED,
                                f"validation rule {rule.name} was not checked: {why}; the org "
                                "still applies it", f"# check rule {rule.name} by hand: "
                                f"{' '.join(rule.formula.split())}", WARNING, order=-1))
            continue
        own = sorted({p[0] for p in compiled.fields}, key=str.lower)
        usable.append(_Prepared(rule, compiled, own, [column_of.get(f.lower()) for f in own]))
    if not usable:
        return blocks
    texts = [checked.cells[i].text.to_pylist() if checked.cells[i] is not None else None
             for i in range(len(checked.cells))]
    skip = set(checked.problems.invalid_positions().tolist())
    creating = operation == "insert"
    failing: dict[int, list[int]] = {}
    unsure: dict[int, int] = {}
    for pos in range(len(df)):
        if pos in skip:
            continue
        for k, p in enumerate(usable):
            record, known = _record(p, texts, pos, creating, defaults)
            if not known:
                unsure[k] = unsure.get(k, 0) + 1
                continue
            if p.compiled.evaluate(record, is_new=creating, now=now):
                failing.setdefault(k, []).append(pos)
                break  # the org reports one error per row: the first rule it breaks
    for k, p in enumerate(usable):
        rule = p.rule
        if k in failing:
            blocks.append(_failure_block(rule, p, failing[k], checked, texts, column_of))
        if k in unsure:
            blocks.append(Block(f"rule {rule.name}", rule.field, SKIPPED,
                                f"validation rule {rule.name} was not checked on "
                                f"{plural(unsure[k], 'row')} whose cells for "
                                f"{', '.join(p.fields)} are "
                                "blank (a blank leaves the stored value, which only the org "
                                "knows)", "# fill those cells to have the rule checked",
                                WARNING, order=-1))
    return blocks


def _why_not(compiled: fl.Formula, operation: str, column_of: dict[str, int]) -> str | None:
    if compiled.parent_fields:
        names = ", ".join(sorted(".".join(p) for p in compiled.parent_fields))
        return f"it reads the parent record ({names}), which only the org has"
    if operation == "insert":
        return None
    if compiled.needs_prior:
        return f"it compares with the stored record (ISCHANGED / PRIORVALUE) on {operation}"
    if operation == "upsert" and "ISNEW" in compiled.functions:
        return "ISNEW() depends on whether each upsert row creates or updates"
    missing = sorted({p[0] for p in compiled.fields if p[0].lower() not in column_of})
    if missing:
        return (f"it reads {', '.join(missing)}, which the frame does not send, so the "
                f"stored value counts on {operation}")
    return None


def _record(p: _Prepared, texts, pos: int, creating: bool,
            defaults: dict[str, dict]) -> tuple[dict[str, Any], bool]:
    record: dict[str, Any] = {}
    for name, col in zip(p.fields, p.columns):
        text = texts[col][pos] if col is not None and texts[col] is not None else ""
        if text == "#N/A":
            record[name] = None
        elif text:
            record[name] = text
        elif creating:
            record[name] = _default(defaults[name.lower()])
        else:
            return record, False
    return record, True


def _default(f: dict) -> Any:
    if f["type"] == "boolean":
        return str(f.get("defaultValue")).lower() == "true"
    return None


def _failure_block(rule: Rule, p: _Prepared, positions: list[int], checked, texts,
                   column_of: dict[str, int]) -> Block:
    shown = column_of.get((rule.field or "").lower())
    if shown is None:
        shown = next((c for c in p.columns if c is not None), None)
    columns = checked.encoding.df.columns
    column = columns[shown] if shown is not None else f"rule {rule.name}"
    values = (pa.array([texts[shown][i] for i in positions], pa.large_string())
              if shown is not None else None)
    hint = (f"df = df.drop(index=problems.loc[problems.field == {rule.field or rule.name!r}, "
            f"'row'])  # or change them so that {' '.join(rule.formula.split())} is false")
    return Block(column, rule.field or rule.name, CODE,
                 f"breaks validation rule {rule.name}: {rule.message}", hint, ERROR,
                 np.asarray(positions, np.int64), values,
                 order=shown if shown is not None else -1)


def add_rule_problems(org: Org, describe: dict, operation: str, checked):
    """`checked` with the problems of the org's active rules for the object added."""
    if operation not in ("insert", "update", "upsert") or checked.encoding is None:
        return checked
    found = fetch_rules(org, describe["name"])
    return checked.with_blocks(check_rules(checked, describe, operation, found.rules))
