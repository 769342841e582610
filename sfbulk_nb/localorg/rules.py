"""Validation rules: stored per object in the org's SQLite, checked on record writes.

A rule is Salesforce's: an error condition formula (true = the record is refused), a
message, and the field the message is shown at (or none: the top of the page). Formulas
are read by `sfbulk_nb.formula`, the language library the client reads them with too
(see its docstring for why the local org may share it). A rule is checked against the
object's fields when it is added, so a formula outside the subset or naming an unknown
field is refused then, never at load time.

Rules are configuration, like objects added with add_object(): reset() keeps them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from .. import formula as fl
from . import ids
from .catalog import Catalog, SObject
from .store import Store
from .values import RowError, default_for_create

KEY_PREFIX = "03d"  # ValidationRule ids in Salesforce start with 03d

_SCHEMA = """
CREATE TABLE IF NOT EXISTS validation_rules (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, object TEXT NOT NULL, name TEXT NOT NULL,
    active INTEGER NOT NULL, formula TEXT NOT NULL, message TEXT NOT NULL, field TEXT,
    description TEXT, UNIQUE (object COLLATE NOCASE, name COLLATE NOCASE))
"""


class RuleError(ValueError):
    """A rule that cannot be added: its formula, field or name is wrong."""


@dataclass
class ValidationRule:
    id: str
    sobject: str
    name: str
    active: bool
    formula: str
    message: str
    field: str | None
    description: str | None
    compiled: fl.Formula

    def error(self) -> RowError:
        return ValidationError(self.message, self.field)


class ValidationError(RowError):
    """FIELD_CUSTOM_VALIDATION_EXCEPTION, as recorded in real Bulk results
    (`FIELD_CUSTOM_VALIDATION_EXCEPTION:Type must contain a value.:Type --`, see
    bulk2-protocol.md 2.10). A rule showing its message at the top of the page names no
    field; field-less errors seen in real Bulk result files end `:--` (UNCONFIRMED for
    this code: no capture of a field-less validation error was found)."""

    def __init__(self, message: str, field: str | None):
        super().__init__("FIELD_CUSTOM_VALIDATION_EXCEPTION", message, (field,) if field else ())

    def render(self) -> str:
        return super().render() if self.fields else f"{self.code}:{self.message}:--"


def field_types(catalog: Catalog, obj: SObject):
    """The formula library's view of an object's fields: a path's describe type, parents
    through one (non-polymorphic) relationship included."""
    def lookup(path: tuple[str, ...]) -> str | None:
        if len(path) == 1:
            f = obj.field(path[0])
            return f.type if f is not None else None
        lookup_field = obj.relationship(path[0])
        if lookup_field is None or len(lookup_field.reference_to) != 1:
            return None
        parent = catalog.get(lookup_field.reference_to[0])
        f = parent.field(path[1]) if parent is not None else None
        return f.type if f is not None else None
    return lookup


class RuleBook:
    """Every object's validation rules, kept in memory after one read of the table."""

    def __init__(self, store: Store):
        self.store = store
        store.execute(_SCHEMA)
        self._rules: dict[str, list[ValidationRule]] = {}
        for row in store.query("SELECT * FROM validation_rules ORDER BY seq"):
            obj = store.catalog.get(row["object"])
            if obj is None:
                continue  # its object is gone from the catalog: nothing to check
            rule = self._make(obj, row["seq"], row["name"], bool(row["active"]),
                              row["formula"], row["message"], row["field"], row["description"])
            self._rules.setdefault(obj.name.lower(), []).append(rule)

    def _make(self, obj: SObject, seq: int, name: str, active: bool, formula: str,
              message: str, field: str | None, description: str | None) -> ValidationRule:
        try:
            compiled = fl.parse(formula).check(field_types(self.store.catalog, obj))
        except fl.FormulaError as e:
            kind = "is outside the supported subset" if isinstance(
                e, fl.UnsupportedFormula) else "is not valid"
            raise RuleError(f"validation rule {obj.name}.{name}: the formula {kind}: {e}") from None
        return ValidationRule(ids.make_ids(KEY_PREFIX, seq, 1)[0], obj.name, name, active,
                              formula, message, field, description, compiled)

    def add(self, sobject: str, name: str, formula: str, message: str,
            field: str | None = None, active: bool = True,
            description: str | None = None, replace: bool = False) -> ValidationRule:
        obj = self.store.catalog.get(sobject)
        if obj is None:
            raise RuleError(f"validation rule {name}: the org has no object {sobject!r}")
        if not name or not name.replace("_", "a").isalnum() or not name[0].isalpha():
            raise RuleError(f"validation rule {name!r}: a rule name is letters, digits and "
                            "underscores, starting with a letter")
        if not message:
            raise RuleError(f"validation rule {obj.name}.{name}: the error message is empty")
        if field is not None:
            f = obj.field(field)
            if f is None:
                raise RuleError(f"validation rule {obj.name}.{name}: the error display field "
                                f"{field!r} is not a field of {obj.name}")
            field = f.name
        clash = any(r.name.lower() == name.lower() for r in self.rules(obj.name))
        if clash and not replace:
            raise RuleError(f"{obj.name} already has a validation rule named {name!r}")
        # Checked before the row is written: a refused rule leaves nothing behind (and
        # the rule it would replace in place).
        self._make(obj, 0, name, active, formula, message, field, description)
        if clash:
            self.remove(obj.name, name)
        with self.store.transaction() as conn:
            seq = conn.execute(
                "INSERT INTO validation_rules (object, name, active, formula, message, field, "
                "description) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (obj.name, name, int(active), formula, message, field, description)).fetchone()[0]
        rule = self._make(obj, seq, name, active, formula, message, field, description)
        self._rules.setdefault(obj.name.lower(), []).append(rule)
        return rule

    def remove(self, sobject: str, name: str) -> None:
        rule = next((r for r in self.rules(sobject) if r.name.lower() == name.lower()), None)
        if rule is None:
            raise RuleError(f"{sobject} has no validation rule named {name!r}")
        self.store.execute("DELETE FROM validation_rules WHERE object = ? COLLATE NOCASE AND "
                           "name = ? COLLATE NOCASE", (rule.sobject, rule.name))
        self._rules[rule.sobject.lower()].remove(rule)

    def rules(self, sobject: str | None = None) -> list[ValidationRule]:
        if sobject is not None:
            return list(self._rules.get(sobject.lower(), []))
        return [r for rules in self._rules.values() for r in rules]

    def active(self, obj: SObject) -> list[ValidationRule]:
        return [r for r in self._rules.get(obj.name.lower(), ()) if r.active]


class RowRules:
    """The active rules of one batch's object, checked row by row for rows that passed
    every other check. The current records (for updates) and the parent records the
    rules read are fetched once for the batch."""

    def __init__(self, store: Store, obj: SObject, rules: list[ValidationRule],
                 values: dict[str, list[Any]], missing: Any, targets: Sequence[str], now: str):
        self.rules = rules
        self.obj = obj
        self.values = values
        self.missing = missing
        self.now = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else \
            datetime.now(timezone.utc)
        own: set[str] = set()
        parents: dict[str, set[str]] = {}
        for rule in rules:
            for path in rule.compiled.fields:
                if len(path) == 1:
                    own.add(obj.field(path[0]).name)
                else:
                    lookup = obj.relationship(path[0])
                    own.add(lookup.name)
                    parents.setdefault(lookup.name, set()).add(path[1])
        self.own = sorted(own)
        self.defaults = {name: default_for_create(obj.field(name)) for name in self.own}
        self.current = (store.get_fields(obj, sorted(set(targets)), self.own)
                        if targets and self.own else {})
        # relationship name -> (lookup field, parent object, fields read, id -> record)
        self.parents: list[tuple[str, str, SObject, list[str], dict[str, dict[str, Any]]]] = []
        for lookup_name, names in parents.items():
            lookup = obj.field(lookup_name)
            parent = store.catalog.get(lookup.reference_to[0])
            wanted = sorted(parent.field(n).name for n in names)
            rids = {v for v in values.get(lookup_name, ()) if isinstance(v, str)}
            rids.update(r[lookup_name] for r in self.current.values() if r[lookup_name])
            self.parents.append((lookup.describe["relationshipName"], lookup_name, parent, wanted,
                                 store.get_fields(parent, sorted(rids), wanted) if rids else {}))

    def check(self, i: int, rid: str | None, creating: bool) -> RowError | None:
        prior = None if creating else self.current.get(rid, {})
        record = {}
        for name in self.own:
            column = self.values.get(name)
            value = self.missing if column is None else column[i]
            if value is self.missing:
                value = self.defaults[name] if creating else prior.get(name)
            record[name] = value
        parents = {}
        for rel, lookup_name, _, _, found in self.parents:
            parents[rel] = found.get(record[lookup_name]) or {}
        for rule in self.rules:
            if rule.compiled.evaluate(record, prior=prior, parents=parents, is_new=creating,
                                      now=self.now):
                return rule.error()
        return None
