"""The local org's object model, read from describe-shaped JSON.

Each object is exactly the JSON Salesforce returns for `GET /sobjects/{Object}/describe/`.
The files in `schema/` ship with the package; objects added later (for example a describe
saved from a real org) are kept beside the org's SQLite file, so every org can have its own.
Nothing else in the local org hard-codes an object or a field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# Columns the store keeps for every object whether or not the describe lists them (User,
# for one, has no IsDeleted in Salesforce).
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                 "LastModifiedById", "SystemModstamp")


# Salesforce's compound field types ("Compound Fields" in the Object Reference).
COMPOUND_TYPES = frozenset({"address", "location"})


class SchemaError(ValueError):
    """A describe JSON that the local org cannot use."""


@dataclass(frozen=True)
class Field:
    """One field of an object, with the describe properties the engine needs."""

    describe: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.type!r})"

    @property
    def name(self) -> str:
        return self.describe["name"]

    @property
    def label(self) -> str:
        return self.describe.get("label") or self.name

    @property
    def type(self) -> str:
        return self.describe["type"]

    @property
    def length(self) -> int:
        return int(self.describe.get("length") or 0)

    def flag(self, key: str) -> bool:
        return bool(self.describe.get(key))

    @property
    def required_on_create(self) -> bool:
        # The rule tools use (Salesforce documents no single rule): writable on create,
        # not nillable and not filled by the server.
        d = self.describe
        return bool(d.get("createable")) and not d.get("nillable") and not d.get("defaultedOnCreate")

    @property
    def is_key(self) -> bool:
        """Usable to match records: upsert key or a relationship column's parent field."""
        return self.name == "Id" or self.flag("externalId") or self.flag("idLookup")

    @property
    def picklist_values(self) -> frozenset[str]:
        return frozenset(v["value"] for v in self.describe.get("picklistValues") or ()
                         if v.get("active", True))

    @property
    def reference_to(self) -> tuple[str, ...]:
        return tuple(self.describe.get("referenceTo") or ())

    @property
    def default_value(self) -> Any:
        return self.describe.get("defaultValue")

    @property
    def is_compound(self) -> bool:
        """An address or geolocation field: a read-only view of its component fields
        (those whose compoundFieldName names it), with no storage of its own."""
        return self.type in COMPOUND_TYPES


class SObject:
    """An object's describe, indexed for case-insensitive field and relationship lookup."""

    def __init__(self, describe: dict[str, Any]):
        for key in ("name", "keyPrefix", "fields"):
            if key not in describe:
                raise SchemaError(f"describe JSON has no {key!r} key; save the full output of "
                                  "GET /services/data/vXX.X/sobjects/<Object>/describe/")
        self.describe = describe
        self.name: str = describe["name"]
        self.key_prefix: str = describe["keyPrefix"]
        self.fields: dict[str, Field] = {}
        self._by_lower: dict[str, Field] = {}
        self._relationships: dict[str, Field] = {}
        for raw in describe["fields"]:
            f = Field(raw)
            self.fields[f.name] = f
            self._by_lower[f.name.lower()] = f
            rel = raw.get("relationshipName")
            if rel and raw.get("type") == "reference":
                self._relationships[rel.lower()] = f
        if "id" not in self._by_lower:
            raise SchemaError(f"{self.name}: describe has no Id field")

    def __repr__(self) -> str:
        return f"SObject({self.name!r}, {len(self.fields)} fields)"

    def field(self, name: str) -> Field | None:
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        """The reference field behind a relationship name (`Account` -> AccountId)."""
        return self._relationships.get(name.lower())

    @property
    def data_fields(self) -> list[Field]:
        """Fields stored as columns: everything but the system fields and compound fields."""
        return [f for f in self.fields.values()
                if f.name not in SYSTEM_FIELDS and not f.is_compound]

    def components(self, compound: Field) -> list[tuple[str, Field]]:
        """The fields a compound field groups, each with its key in the compound's JSON
        value: the name without the compound's prefix, first letter lower-cased
        (BillingAddress: ("street", BillingStreet), ("postalCode", BillingPostalCode)...;
        Lead's Address: ("city", City))."""
        prefix = compound.name[:-len("Address")] if compound.name.endswith("Address") else ""
        out = []
        for f in self.fields.values():
            if f.describe.get("compoundFieldName") == compound.name:
                key = f.name[len(prefix):] if f.name.startswith(prefix) else f.name
                out.append((key[:1].lower() + key[1:], f))
        return out

    @property
    def required_fields(self) -> list[Field]:
        return [f for f in self.fields.values() if f.required_on_create]


class Catalog:
    """Every object the org knows: the shipped schema plus the org's own additions."""

    def __init__(self, extra_dir: Path | None = None):
        self.extra_dir = extra_dir
        self._objects: dict[str, SObject] = {}
        for entry in resources.files(__package__).joinpath("schema").iterdir():
            if entry.name.endswith(".json"):
                self._add(json.loads(entry.read_text(encoding="utf-8")))
        if extra_dir is not None and extra_dir.is_dir():
            for path in sorted(extra_dir.glob("*.json")):
                self._add(json.loads(path.read_text(encoding="utf-8")))

    def _add(self, describe: dict[str, Any]) -> SObject:
        obj = SObject(describe)
        clash = next((o for o in self._objects.values()
                      if o.key_prefix == obj.key_prefix and o.name != obj.name), None)
        if clash:
            raise SchemaError(f"{obj.name}: key prefix {obj.key_prefix!r} is already used by "
                              f"{clash.name}; give the object another keyPrefix")
        self._objects[obj.name.lower()] = obj
        return obj

    def add(self, describe: dict[str, Any]) -> SObject:
        """Add (or replace) an object, persisting its describe beside the org's database."""
        obj = self._add(describe)
        if self.extra_dir is not None:
            self.extra_dir.mkdir(parents=True, exist_ok=True)
            (self.extra_dir / f"{obj.name}.json").write_text(
                json.dumps(describe, indent=2), encoding="utf-8")
        return obj

    def get(self, name: str) -> SObject | None:
        return self._objects.get(name.lower())

    def by_prefix(self, key_prefix: str) -> SObject | None:
        return next((o for o in self._objects.values() if o.key_prefix == key_prefix), None)

    def __iter__(self):
        return iter(sorted(self._objects.values(), key=lambda o: o.name))
