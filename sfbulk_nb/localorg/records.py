"""What one ingest batch does to the org's records: Salesforce's DML semantics.

`Header` reads a job's CSV header once (unknown or duplicate columns fail the whole job);
`apply_batch` then processes rows: it converts cells, resolves ids, external ids and
relationship columns with one query per column per batch, decides each row's fate
(created, updated, deleted or a row error) in input order, and writes all changes of the
batch in one transaction. Rows are judged in chunks of 200, Salesforce's DML chunk size,
which is where duplicate keys in one upload collide.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from . import ids
from .catalog import Catalog, Field, SObject
from .gcpause import gc_paused
from .store import Store, case_insensitive_match
from .values import Converter, RowError, converter, default_for_create

DML_CHUNK = 200
CLEAR = "#N/A"


class JobFailure(Exception):
    """A problem with the whole upload; str() is the job's errorMessage."""


@dataclass
class Column:
    index: int
    header: str
    field: Field                      # the field written (for Rel.Key columns: the lookup)
    convert: Converter | None = None  # None for relationship columns (value is a parent key)
    parent: SObject | None = None
    parent_key: Field | None = None


@dataclass
class Header:
    """The meaning of each CSV column for one job."""

    obj: SObject
    operation: str
    names: list[str]
    columns: list[Column] = field(default_factory=list)
    id_column: int | None = None
    key_column: int | None = None     # upsert: the externalIdFieldName column

    @classmethod
    def parse(cls, catalog: Catalog, obj: SObject, operation: str, names: list[str],
              external_id: str | None) -> "Header":
        header = cls(obj, operation, names)
        seen: dict[str, str] = {}
        for index, name in enumerate(names):
            target = _resolve_column(catalog, obj, name, index)
            low = target.field.name.lower()
            if low in seen:
                # Our guess at the wording; Salesforce fails the job on a repeated column.
                raise JobFailure(f"InvalidBatch : Duplicate field name: {name}")
            seen[low] = name
            if target.field.name == "Id" and target.parent is None:
                header.id_column = index
            if (operation == "upsert" and external_id and target.parent is None
                    and target.field.name.lower() == external_id.lower()):
                header.key_column = index
            header.columns.append(target)
        return header


def _resolve_column(catalog: Catalog, obj: SObject, name: str, index: int) -> Column:
    not_found = JobFailure(f"InvalidBatch : Field name not found : {name}")
    if "." not in name:
        f = obj.field(name)
        if f is None:
            raise not_found
        return Column(index, name, f, convert=converter(f))
    # `Relationship.KeyField`, or `ParentType:Relationship.KeyField` for polymorphic lookups.
    rel_part, _, key_name = name.partition(".")
    parent_type, _, rel_name = rel_part.rpartition(":")
    lookup = obj.relationship(rel_name)
    if lookup is None or "." in key_name:
        raise not_found
    targets = lookup.reference_to
    if parent_type:
        if len(targets) < 2 or parent_type not in targets:
            raise not_found
        parent = catalog.get(parent_type)
    elif len(targets) == 1:
        parent = catalog.get(targets[0])
    else:
        raise not_found  # polymorphic fields need the ParentType: prefix
    key = parent.field(key_name) if parent else None
    if key is None or not key.is_key:
        raise not_found
    return Column(index, name, lookup, parent=parent, parent_key=key)


@dataclass
class BatchResult:
    succeeded: list[list[str]] = field(default_factory=list)  # sf__Id, sf__Created, *row
    failed: list[list[str]] = field(default_factory=list)     # sf__Id, sf__Error, *row


class _Folding:
    """Key normalisation for matching: case-folded where the field ignores case."""

    def __init__(self, obj: SObject, key: Field):
        # Ids are made canonical (18 characters) by the caller instead of folded.
        self.fold = key.name != "Id" and case_insensitive_match(obj, key.name)

    def __call__(self, value: str) -> str:
        return value.lower() if self.fold else value


def apply_batch(store: Store, header: Header, rows: Sequence[list[str]], *,
                external_id: str | None, user_id: str, now: str,
                on_commit: Callable[[sqlite3.Connection, BatchResult], None] | None = None,
                ) -> BatchResult:
    """Process one batch and write its changes; returns the result rows.

    `on_commit(conn, result)` runs inside the batch's transaction, so whatever it records
    (results, job counters) commits together with the record changes or not at all.
    """
    with gc_paused():
        return _Batch(store, header, rows, external_id, user_id, now).run(on_commit)


class _Batch:
    def __init__(self, store: Store, header: Header, rows: Sequence[list[str]],
                 external_id: str | None, user_id: str, now: str):
        self.store = store
        self.h = header
        self.obj = header.obj
        self.rows = rows
        self.op = header.operation
        self.external_id = external_id
        self.user_id = user_id
        self.now = now
        n = len(rows)
        self.errors: list[RowError | None] = [None] * n
        self.values: list[dict[str, Any]] = [{} for _ in range(n)]  # field name -> stored/None
        self.target: list[str | None] = [None] * n  # existing record id (update/delete/upsert)
        self.given_id: list[str | None] = [None] * n  # a well-formed Id the row named

    # -- stage 1: cells -> values -----------------------------------------------------

    def _fail(self, i: int, error: RowError) -> None:
        if self.errors[i] is None:
            self.errors[i] = error

    def convert_cells(self) -> None:
        if self.op in ("delete", "hardDelete"):
            return  # only Id matters; other columns are echoed back untouched
        writable_flag = {"insert": "createable", "update": "updateable"}.get(self.op)
        values = self.values
        for col in self.h.columns:
            if col.index in (self.h.id_column, self.h.key_column) and col.parent is None:
                continue
            f = col.field
            if writable_flag:
                writable = f.flag(writable_flag)
            else:  # upsert: a row may insert or update; judged per row later
                writable = f.flag("createable") or f.flag("updateable")
            name = f.name
            convert = col.convert
            texts = [row[col.index] for row in self.rows]
            if not writable:
                for i, text in enumerate(texts):
                    if text:
                        self._fail(i, _not_writable(f))
                continue
            if convert is None:  # a relationship column: resolved by key in stage 2
                for i, text in enumerate(texts):
                    if text:
                        values[i][name] = None if text == CLEAR else ("parent", col, text)
                continue
            if "" not in texts and CLEAR not in texts:
                # The common column: every cell holds a value. One map() converts them all;
                # any bad cell sends the column down the cell-by-cell path for its error.
                try:
                    for vals, value in zip(values, map(convert, texts)):
                        vals[name] = value
                    continue
                except RowError:
                    pass
            for i, text in enumerate(texts):
                if not text:
                    continue  # blank: the field is left as it is
                if text == CLEAR:
                    values[i][name] = None
                    continue
                try:
                    values[i][name] = convert(text)
                except RowError as e:
                    self._fail(i, e)

    # -- stage 2: references -----------------------------------------------------------

    def resolve_relationships(self) -> None:
        for col in self.h.columns:
            if col.parent is None:
                continue
            name = col.field.name
            fold = _Folding(col.parent, col.parent_key)
            keys = {}
            for i, vals in enumerate(self.values):
                v = vals.get(name)
                if isinstance(v, tuple) and v[1] is col:
                    keys[i] = v[2]
            if col.parent_key.name == "Id":
                normal = {i: ids.normalize(k) or k for i, k in keys.items()}
            else:
                normal = keys
            found = self.store.lookup(col.parent, col.parent_key.name,
                                      [fold(k) for k in normal.values()])
            for i, key in normal.items():
                matches = found.get(fold(key), [])
                if len(matches) == 1:
                    self.values[i][name] = matches[0][0]
                    continue
                del self.values[i][name]
                if not matches:
                    self._fail(i, RowError(
                        "INVALID_FIELD", f"Foreign key external ID: {keys[i]} not found for "
                        f"field {col.parent_key.name} in entity {col.parent.name}", ()))
                else:
                    self._fail(i, RowError(
                        "DUPLICATE_EXTERNAL_ID", f"{col.parent.name}: more than one record "
                        f"found for external id field: [{', '.join(m[0] for m in matches)}]",
                        ()))

    def check_lookups(self) -> None:
        """Direct id values in reference fields must point at existing records of a
        referenced object."""
        for col in self.h.columns:
            f = col.field
            if col.parent is not None or f.type != "reference":
                continue
            wanted: dict[str, list[int]] = {}
            for i, vals in enumerate(self.values):
                v = vals.get(f.name)
                if isinstance(v, str):
                    wanted.setdefault(v, []).append(i)
            by_prefix: dict[str, list[str]] = {}
            for rid in wanted:
                by_prefix.setdefault(rid[:3], []).append(rid)
            existing: set[str] = set()
            for prefix, rids in by_prefix.items():
                target = self.store.catalog.by_prefix(prefix)
                if target is None:
                    continue  # an object this org does not model (Profile, Group): accepted
                if target.name not in f.reference_to:
                    for rid in rids:
                        for i in wanted[rid]:
                            self._fail(i, RowError("FIELD_INTEGRITY_EXCEPTION",
                                                   f"{f.label}: id value of incorrect type: {rid}",
                                                   (f.name,)))
                    continue
                existing.update(self.store.lookup(target, "Id", rids))
            for rid, rows in wanted.items():
                if rid not in existing and self.store.catalog.by_prefix(rid[:3]) is not None:
                    for i in rows:
                        self._fail(i, RowError("INVALID_CROSS_REFERENCE_KEY",
                                               "invalid cross reference id", (f.name,)))

    # -- stage 3: which record each row addresses --------------------------------------

    def find_targets(self) -> None:
        if self.op == "insert":
            if self.h.id_column is not None:
                for i, row in enumerate(self.rows):
                    if row[self.h.id_column]:
                        self._fail(i, RowError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                               "cannot specify Id in an insert call", ("Id",)))
            return
        if self.op == "upsert" and self.external_id.lower() != "id":
            self._targets_by_external_id()
            return
        self._targets_by_id()

    def _targets_by_id(self) -> None:
        col = self.h.id_column
        raw = [row[col] if col is not None else "" for row in self.rows]
        normal: dict[int, str] = {}
        for i, text in enumerate(raw):
            if text == "":
                if self.op != "upsert":  # upsert on Id with no Id inserts
                    article = "an" if self.op == "update" else "a"
                    self._fail(i, RowError("MISSING_ARGUMENT",
                                           f"Id not specified in {article} {self.op} call", ()))
                continue
            rid = ids.normalize(text)
            if rid is None or rid[:3] != self.obj.key_prefix:
                self._fail(i, RowError("MALFORMED_ID",
                                       f"Record ID: id value of incorrect type: {text}", ("Id",)))
                continue
            normal[i] = rid
            self.given_id[i] = rid
        found = self.store.lookup(self.obj, "Id", normal.values(), include_deleted=True)
        for i, rid in normal.items():
            match = found.get(rid)
            if not match:
                self._fail(i, RowError("INVALID_CROSS_REFERENCE_KEY",
                                       "invalid cross reference id", ()))
            elif match[0][1]:
                self._fail(i, RowError("ENTITY_IS_DELETED", "entity is deleted", ()))
            else:
                self.target[i] = match[0][0]
        self._chunk_duplicates(normal,
                               lambda v: f"Duplicate id in list: {v}")

    def _targets_by_external_id(self) -> None:
        key = self.obj.field(self.external_id)
        fold = _Folding(self.obj, key)
        col = self.h.key_column
        convert = converter(key)
        keys: dict[int, str] = {}
        for i, row in enumerate(self.rows):
            text = row[col] if col is not None else ""
            if text in ("", CLEAR):
                # Apex/REST report a missing upsert key this way; Bulk presumably the same.
                self._fail(i, RowError("MISSING_ARGUMENT", f"{key.name} not specified", ()))
                continue
            try:
                self.values[i][key.name] = convert(text)
            except RowError as e:
                self._fail(i, e)
                continue
            keys[i] = fold(text)
        found = self.store.lookup(self.obj, key.name, keys.values())
        # Rows are judged in order: a key inserted by an earlier chunk is updated by a
        # later one, as successive DML chunks do in Salesforce.
        self._key_index = {k: [m[0] for m in v] for k, v in found.items()}
        self._keys = keys
        self._key_field = key
        self._chunk_duplicates(keys, lambda v: f"Duplicate external id specified: {v}")

    def _chunk_duplicates(self, keys: dict[int, str], message) -> None:
        """Rows of one 200-row chunk sharing a key all fail (our reading of the
        DUPLICATE_VALUE behaviour; Salesforce does not document which rows fail)."""
        for start in range(0, len(self.rows), DML_CHUNK):
            seen: dict[str, list[int]] = {}
            for i in range(start, min(start + DML_CHUNK, len(self.rows))):
                if i in keys:
                    seen.setdefault(keys[i], []).append(i)
            for key, rows in seen.items():
                if len(rows) > 1:
                    for i in rows:
                        text = self.rows[i][self.h.key_column if self.op == "upsert"
                                            and self.h.key_column is not None
                                            else self.h.id_column]
                        self._fail(i, RowError("DUPLICATE_VALUE", message(text), ()))

    # -- stage 4: decide and write -----------------------------------------------------

    def run(self, on_commit) -> BatchResult:
        if self.op not in ("delete", "hardDelete"):
            self.convert_cells()
            self.resolve_relationships()
            self.check_lookups()
        self.find_targets()
        return self.decide_and_write(on_commit)

    def decide_and_write(self, on_commit) -> BatchResult:
        obj, op = self.obj, self.op
        result = BatchResult()
        succeeded, failed = result.succeeded, result.failed
        inserts: list[tuple[str, dict[str, Any]]] = []
        updates: list[tuple[str, dict[str, Any]]] = []
        deletes: list[str] = []
        writes = op in ("insert", "update", "upsert")
        required = [f.name for f in obj.required_fields]
        # Columns of this upload that a create (or an update) may not write; usually none,
        # so the per-row check below costs nothing.
        header_fields = [c.field for c in self.h.columns]
        no_create = {f.name for f in header_fields if not f.flag("createable") and not f.is_key}
        no_update = {f.name for f in header_fields if not f.flag("updateable") and not f.is_key}
        uniques = _UniqueIndex(self.store, obj, self.values)
        if not uniques.fields:
            uniques = None
        upsert_by_key = op == "upsert" and self.external_id.lower() != "id"
        # An upsert key matched without case may differ in case from the stored one, and the
        # update then writes the new spelling; an exact match changes nothing.
        keep_key = (case_insensitive_match(obj, self._key_field.name) if upsert_by_key
                    else None)
        next_id = (ids.IdSequence(obj.key_prefix,
                                  self.store.allocate_numbers(obj.key_prefix, len(self.rows)))
                   if op in ("insert", "upsert") else None)
        for i, row in enumerate(self.rows):
            error = self.errors[i]
            vals = self.values[i]
            rid = self.target[i]
            if error is None and upsert_by_key:
                matches = self._key_index.get(self._keys[i])
                if matches:
                    if len(matches) > 1:
                        error = RowError("DUPLICATE_EXTERNAL_ID",
                                         f"{self._key_field.label}: more than one record found "
                                         f"for external id field: [{', '.join(matches)}]", ())
                    else:
                        rid = matches[0]
            creating = op == "insert" or (op == "upsert" and rid is None)
            if error is None and writes:
                forbidden = no_create if creating else no_update
                bad = forbidden and forbidden.intersection(vals)
                if bad:
                    error = _not_writable(obj.fields[next(iter(bad))])
                else:
                    missing = ([n for n in required if vals.get(n) is None] if creating else
                               [n for n in required if n in vals and vals[n] is None])
                    if missing:
                        error = RowError("REQUIRED_FIELD_MISSING",
                                         f"Required fields are missing: [{', '.join(missing)}]",
                                         missing)
                    elif uniques is not None:
                        error = uniques.claim(i, rid)
            if error is not None:
                failed.append([rid or self.given_id[i] or "", error.render(), *row])
                continue
            if not writes:
                deletes.append(rid)
                succeeded.append([rid, "false", *row])
                continue
            if creating:
                rid = next_id()
                inserts.append((rid, vals))
                succeeded.append([rid, "true", *row])
                if upsert_by_key:
                    self._key_index[self._keys[i]] = [rid]
            else:
                if keep_key is False:
                    # Matched exactly, so the stored key already holds this text: rewriting
                    # it would only churn its index.
                    vals.pop(self._key_field.name, None)
                updates.append((rid, vals))
                succeeded.append([rid, "false", *row])
            if uniques is not None:
                uniques.commit(i, rid)
        with self.store.transaction() as conn:
            self._write(conn, inserts, updates, deletes)
            if on_commit is not None:
                on_commit(conn, result)
        return result

    def _write(self, conn, inserts, updates, deletes) -> None:
        obj, now, user = self.obj, self.now, self.user_id
        derive = _name_deriver(obj)
        if inserts:
            base = {f.name: default_for_create(f) for f in obj.data_fields}
            if "OwnerId" in base:
                base["OwnerId"] = user
            base.update({"Id": None, "IsDeleted": 0, "CreatedDate": now, "CreatedById": user,
                         "LastModifiedDate": now, "LastModifiedById": user,
                         "SystemModstamp": now})
            # Only the columns this batch fills: binding a NULL costs as much as a value.
            written = {name for _, vals in inserts for name in vals}
            if derive:
                written.add("Name")
            columns = [c for c in self.store.column_names(obj)
                       if c in written or base.get(c) is not None or c == "Id"]
            position = {c: k for k, c in enumerate(columns)}
            template = [base.get(c) for c in columns]
            rows = []
            for rid, vals in inserts:
                if derive:
                    derive(vals)
                record = template.copy()
                record[0] = rid
                for name, value in vals.items():
                    record[position[name]] = value
                rows.append(record)
            self.store.insert_records(conn, obj, columns, rows)
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for rid, vals in updates:
            if derive and derive.touched(vals):
                current = self.store.get_record(obj, rid)
                merged = {**current, **vals}
                derive(merged)
                vals = {**vals, "Name": merged["Name"]}
            names = tuple(vals) + ("LastModifiedDate", "LastModifiedById", "SystemModstamp")
            groups.setdefault(names, []).append([*vals.values(), now, user, now, rid])
        for names, rows in groups.items():
            self.store.update_records(conn, obj, names, rows)
        if deletes:
            self.store.delete_records(conn, obj, deletes, hard=self.op == "hardDelete",
                                      stamp=now, user_id=user)


def _not_writable(f: Field) -> RowError:
    return RowError("INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.", (f.name,))


class _UniqueIndex:
    """Unique fields: a value may be held by one live record (existing or from this batch)."""

    def __init__(self, store: Store, obj: SObject, values: list[dict[str, Any]]):
        self.obj = obj
        self.fields = [f for f in obj.data_fields if f.flag("unique")]
        self.values = values
        self.owner: dict[tuple[str, str], str] = {}
        self.fold = {f.name: case_insensitive_match(obj, f.name) for f in self.fields}
        for f in self.fields:
            wanted = [v for vals in values if isinstance(v := vals.get(f.name), str)]
            if not wanted:
                continue
            fold = self.fold[f.name]
            for key, matches in store.lookup(obj, f.name,
                                             [w.lower() if fold else w for w in wanted]).items():
                self.owner[(f.name, key)] = matches[0][0]

    def _keys(self, i: int):
        for f in self.fields:
            v = self.values[i].get(f.name)
            if isinstance(v, str):
                yield f, (f.name, v.lower() if self.fold[f.name] else v)

    def claim(self, i: int, rid: str | None) -> RowError | None:
        for f, key in self._keys(i):
            holder = self.owner.get(key)
            if holder is not None and holder != rid:
                return RowError("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates "
                                f"value on record with id: {holder}", (f.name,))
        return None

    def commit(self, i: int, rid: str) -> None:
        for _, key in self._keys(i):
            self.owner[key] = rid


class _NameDeriver:
    """Person names (Contact, User): `Name` is built from the fields that declare
    `compoundFieldName: "Name"`, in describe order."""

    def __init__(self, parts: list[str]):
        self.parts = parts

    def touched(self, vals: dict[str, Any]) -> bool:
        return any(p in vals for p in self.parts)

    def __call__(self, record: dict[str, Any]) -> None:
        record["Name"] = " ".join(str(record[p]) for p in self.parts if record.get(p)) or None


def _name_deriver(obj: SObject) -> _NameDeriver | None:
    name = obj.fields.get("Name")
    if name is None or name.flag("createable"):
        return None
    parts = [f.name for f in obj.fields.values() if f.describe.get("compoundFieldName") == "Name"]
    # Salesforce shows "First Last"; the describe lists LastName first on Contact.
    parts.sort(key=lambda p: (p != "FirstName", p))
    return _NameDeriver(parts) if parts else None
