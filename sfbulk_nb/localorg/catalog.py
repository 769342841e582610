"""The local org's object model, read from describe-shaped JSON.

Each object is exactly the JSON Salesforce returns for `GET /sobjects/{Object}/describe/`.
The files in `schema/` ship with the package; objects added later (for example a describe
saved from a real org) are kept beside the org's SQLite file, so every org can have its own.
Nothing else in the local org hard-codes an object or a field.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# Columns the store keeps for every object whether or not the describe lists them (User,
# for one, has no IsDeleted in Salesforce).
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                 "LastModifiedById", "SystemModstamp")


API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
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
        if not isinstance(describe, dict):
            raise SchemaError(f"describe JSON must be an object, not a {type(describe).__name__}; "
                              "save the full output of GET /services/data/vXX.X/sobjects/"
                              "<Object>/describe/")
        for key in ("name", "keyPrefix", "fields"):
            if key not in describe:
                raise SchemaError(f"describe JSON has no {key!r} key; save the full output of "
                                  "GET /services/data/vXX.X/sobjects/<Object>/describe/")
        bad = [n for n in [describe["name"]] + [f.get("name") for f in describe["fields"]]
               if not (isinstance(n, str) and API_NAME.match(n))]
        if bad:
            # Names become file names and SQL column names: only API names may.
            raise SchemaError(f"{describe['name']!r}: {', '.join(map(repr, bad))} is not an API "
                              "name (a letter, then letters, digits and _)")
        prefix = describe["keyPrefix"]
        if not (isinstance(prefix, str) and len(prefix) == 3 and prefix.isalnum()):
            # Salesforce describes some objects (sharing, feeds, virtual ones) with no
            # prefix; the local org makes every record id from one.
            raise SchemaError(f"{describe['name']}: keyPrefix is {prefix!r}, the local org "
                              "needs 3 letters or digits to make its record ids; set one "
                              "(unused by other objects) in the JSON, or leave the object out")
        self.describe = describe
        self.name: str = describe["name"]
        self.key_prefix: str = prefix
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
            for path in describe_files(extra_dir):
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

    def check(self, describes: list[dict[str, Any]]) -> None:
        """SchemaError naming every describe that could not be added as a whole: each
        object valid, no key prefix used by two objects (objects of the same name replace
        each other)."""
        problems = []
        prefixes = {o.key_prefix: o.name for o in self._objects.values()}
        adding: dict[str, str] = {}
        for describe in describes:
            try:
                obj = SObject(describe)
            except SchemaError as e:
                problems.append(str(e))
                continue
            adding[obj.key_prefix] = obj.name
        replaced = {name.lower() for name in adding.values()}
        for prefix, name in adding.items():
            other = prefixes.get(prefix)
            if other and other != name and other.lower() not in replaced:
                problems.append(f"{name}: key prefix {prefix!r} is already used by {other}; "
                                "give the object another keyPrefix")
        if problems:
            raise SchemaError("; ".join(problems))

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


@dataclass
class SchemaImport:
    """Objects a local org was taught from describes, and per object what of its describe
    the org keeps but does not act on (see `limitations`)."""

    objects: list[str]
    notes: dict[str, list[str]]

    def __str__(self) -> str:
        count = len(self.objects)
        lines = [f"{count} object{'' if count == 1 else 's'}: {', '.join(self.objects)}"]
        for name, notes in self.notes.items():
            if notes:
                lines.append(f"{name}: kept in its describe but not enforced here:")
                lines.extend(f"  - {note}" for note in notes)
        return "\n".join(lines)


def describe_files(folder: Path) -> list[Path]:
    """The describe JSON files of a schema folder, one per object; names starting with
    `_` are the folder's own notes (a snapshot's `_snapshot.json`), not objects."""
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("_"))


# Field types the local org checks and stores as Salesforce does (values.py); other types
# are kept in the describe and stored as text, unchecked.
MODELLED_TYPES = frozenset({
    "id", "reference", "string", "textarea", "phone", "url", "email", "picklist",
    "multipicklist", "combobox", "encryptedstring", "boolean", "int", "long", "double", "currency", "percent",
    "date", "datetime", "time"})


def limitations(obj: SObject) -> list[str]:
    """What of an object's describe the local org keeps (and serves) but does not act on,
    one line each, so a rehearsal knows where it is not the real org."""
    notes = []
    for f in obj.fields.values():
        d = f.describe
        if d.get("calculated"):
            kind = "formula" if d.get("calculatedFormula") else "roll-up or computed"
            notes.append(f"{f.name}: a {kind} field, read-only here and never computed "
                         "(reads give null)")
        elif f.type in ("address", "location"):
            notes.append(f"{f.name}: a compound {f.type} field, not assembled from its "
                         "component fields (reads give null); load the components")
        elif f.type not in MODELLED_TYPES:
            notes.append(f"{f.name}: type {f.type!r} is stored as text, unchecked")
        if d.get("dependentPicklist") and d.get("controllerName"):
            notes.append(f"{f.name}: its values' dependency on {d['controllerName']} "
                         "(validFor) is not enforced")
        if f.type == "encryptedstring":
            notes.append(f"{f.name}: encrypted text is stored and shown unmasked")
        if d.get("autoNumber"):
            notes.append(f"{f.name}: an auto-number field, never numbered here")
    record_types = [r for r in obj.describe.get("recordTypeInfos") or () if not r.get("master")]
    if record_types:
        count = len(record_types)
        notes.append(f"{count} record type{'' if count == 1 else 's'} described; their "
                     "picklist value sets and defaults are not applied to RecordTypeId")
    return notes
