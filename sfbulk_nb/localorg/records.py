"""What one ingest batch does to the org's records: Salesforce's DML semantics.

`Header` reads a job's CSV header once (unknown or duplicate columns fail the whole job);
`apply_batch` then processes a batch given column by column: it converts whole columns
(cell by cell only where a column holds blanks, `#N/A` or a bad value), resolves ids,
external ids and relationship columns with one query per column per batch, decides each
row's fate (created, updated, deleted or a row error) in input order, and writes all
changes of the batch in one transaction. Rows are judged in chunks of 200, Salesforce's
DML chunk size, which is where duplicate keys in one upload collide.
"""
from __future__ import annotations

import itertools
from operator import itemgetter
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

from . import ids, objectrules
from .catalog import Catalog, Field, SObject
from .gcpause import gc_paused
from .rules import RowRules, ValidationRule
from .store import Store, case_insensitive_match
from .values import (BulkConverter, Converter, RowError, bulk_converter, converter,
                     default_for_create)

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
    bulk: BulkConverter | None = None  # the whole column at once, when its type has one
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
        return Column(index, name, f, convert=converter(f), bulk=bulk_converter(f))
    # `Relationship.KeyField`, or `ObjectType:Relationship.KeyField` for polymorphic lookups
    # (Bulk API guide, "Relationship Fields in a Header Row": `Lead:Who.Email`).
    rel_part, _, key_name = name.partition(".")
    parent_type, _, rel_name = rel_part.rpartition(":")
    if ":" in parent_type or "." in key_name:
        raise not_found
    lookup = obj.relationship(rel_name)
    # The two messages of the prefixed form are those a real org gave for
    # `Parent:Account.X` and `Account:Parent.X` on a single-target Parent (recorded in a
    # public write-up of Bulk 2.0 header errors); the others are Salesforce's usual one.
    if lookup is None:
        if parent_type:
            raise JobFailure(f"InvalidBatch : Unable to find relationship: {rel_name}")
        raise not_found
    targets = lookup.reference_to
    if parent_type:
        if len(targets) < 2:
            raise JobFailure("InvalidBatch : type is not needed for non polymorphic foreign "
                             f"key references: {lookup.describe['relationshipName']}")
        # A type the lookup cannot point at: "Field name not found" is UNCONFIRMED.
        parent_type = next((t for t in targets if t.lower() == parent_type.lower()), None)
        if parent_type is None:
            raise not_found
        parent = catalog.get(parent_type)
    elif len(targets) == 1:
        parent = catalog.get(targets[0])
    else:
        raise not_found  # polymorphic fields need the ObjectType: prefix (message UNCONFIRMED)
    key = parent.field(key_name) if parent else None
    if key is None or not key.is_key:
        raise not_found
    return Column(index, name, lookup, parent=parent, parent_key=key)


@dataclass
class BatchResult:
    failed: list[Sequence[str]] = field(default_factory=list)     # sf__Id, sf__Error, *row
    # The outcomes by row index: the error of each failed row, the record id of each row
    # that succeeded (in input order), the rows that created a record. A successful row's
    # result line is its id, whether it created the record and its cells: rendered by the
    # caller, a column at a time, only if it needs them (REST sObjects answers per record).
    errors: dict[int, RowError] = field(default_factory=dict)
    ids: dict[int, str] = field(default_factory=dict)
    created: set[int] = field(default_factory=set)


class _Folding:
    """Key normalisation for matching: case-folded where the field ignores case."""

    def __init__(self, obj: SObject, key: Field):
        # Ids are made canonical (18 characters) by the caller instead of folded.
        self.fold = key.name != "Id" and case_insensitive_match(obj, key.name)

    def __call__(self, value: str) -> str:
        return value.lower() if self.fold else value


class _Missing:
    """A blank cell: the field is left as it is (None, from `#N/A`, clears it)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def apply_batch(store: Store, header: Header, columns: Sequence[list[str]], *,
                external_id: str | None, user_id: str, now: str,
                locked: Collection[int] = (),
                on_commit: Callable[[sqlite3.Connection, BatchResult], None] | None = None,
                validation: Sequence[ValidationRule] = (),
                ) -> BatchResult:
    """Process one batch, given as its CSV columns (each a list of the cells' texts), and
    write its changes; returns the result rows.

    Rows whose index is in `locked` fail with UNABLE_TO_LOCK_ROW (an injected fault) unless
    they fail for a reason of their own. `on_commit(conn, result)` runs inside the batch's
    transaction, so whatever it records (results, job counters) commits together with the
    record changes or not at all. `validation` are the object's active validation rules,
    checked on rows that write and pass every other check.
    """
    with gc_paused():
        return _Batch(store, header, columns, external_id, user_id, now, locked,
                      validation).run(on_commit)


class _LockError(RowError):
    """Salesforce's lock-contention error (message as recorded in real results). It names
    no field, and field-less errors seen in real Bulk result files end `:--`, with no
    space (`UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--`,
    `ENTITY_IS_DELETED:entity is deleted:--`); Salesforce does not document the form."""

    def __init__(self, record_id: str | None):
        about = f" or 1 records: {record_id}" if record_id else ""
        super().__init__("UNABLE_TO_LOCK_ROW",
                         f"unable to obtain exclusive access to this record{about}")

    def render(self) -> str:
        return f"{self.code}:{self.message}:--"


def _pick(column: list[Any], rows: list[int], n: int) -> list[Any]:
    """The column's values at `rows` (ascending indexes); the column itself when that is
    every row."""
    return column if len(rows) == n else [column[i] for i in rows]


class _Batch:
    """One batch, held column by column: converting, matching and writing work on whole
    columns with C-speed builtins, and only the decisions that depend on a row's own
    outcome loop over rows."""

    def __init__(self, store: Store, header: Header, columns: Sequence[list[str]],
                 external_id: str | None, user_id: str, now: str, locked: Collection[int],
                 validation: Sequence[ValidationRule] = ()):
        self.store = store
        self.validation = validation
        self.locked = locked
        self.h = header
        self.obj = header.obj
        self.texts = columns
        self.n = n = len(columns[0]) if columns else 0
        self.op = header.operation
        self.external_id = external_id
        self.user_id = user_id
        self.now = now
        self.errors: list[RowError | None] = [None] * n
        # field name -> each row's stored value, None (cleared) or MISSING (left as it is)
        self.values: dict[str, list[Any]] = {}
        self.target: list[str | None] = [None] * n  # existing record id (update/delete/upsert)
        self.given_id: list[str | None] = [None] * n  # a well-formed Id the row named
        self._relationship_columns: list[Column] = []

    def _row(self, i: int) -> list[str]:
        return [column[i] for column in self.texts]

    def _column(self, index: int | None) -> list[str]:
        return self.texts[index] if index is not None else [""] * self.n

    # -- stage 1: cells -> values -----------------------------------------------------

    def _fail(self, i: int, error: RowError) -> None:
        if self.errors[i] is None:
            self.errors[i] = error

    def convert_cells(self) -> None:
        if self.op in ("delete", "hardDelete"):
            return  # only Id matters; other columns are echoed back untouched
        writable_flag = {"insert": "createable", "update": "updateable"}.get(self.op)
        for col in self.h.columns:
            if col.index in (self.h.id_column, self.h.key_column) and col.parent is None:
                continue
            f = col.field
            if writable_flag:
                writable = f.flag(writable_flag)
            else:  # upsert: a row may insert or update; judged per row later
                writable = f.flag("createable") or f.flag("updateable")
            texts = self.texts[col.index]
            if not writable:
                if any(texts):
                    for i, text in enumerate(texts):
                        if text:
                            self._fail(i, _not_writable(f))
                continue
            if col.convert is None:  # a relationship column: resolved by key in stage 2
                self._relationship_columns.append(col)
                continue
            self.values[f.name] = self._convert_column(col, texts)

    def _convert_column(self, col: Column, texts: list[str]) -> list[Any]:
        convert = col.convert
        if "" not in texts and CLEAR not in texts:
            # The common column: every cell holds a value. The bulk converter takes the
            # whole column when every cell is plainly well formed; otherwise one map()
            # converts them, and any bad cell sends the column down the cell-by-cell path
            # for its error.
            if col.bulk is not None:
                values = col.bulk(texts)
                if values is not None:
                    return values
            try:
                return list(map(convert, texts))
            except RowError:
                pass
        elif col.bulk is not None:
            # Blanks (left as they are) or #N/A (cleared) among values: the bulk converter
            # may still take the cells that hold values.
            filled = [i for i, text in enumerate(texts) if text and text != CLEAR]
            converted = col.bulk([texts[i] for i in filled]) if filled else []
            if converted is not None:
                values = [None if text == CLEAR else MISSING for text in texts]
                for i, value in zip(filled, converted):
                    values[i] = value
                return values
        values = [MISSING] * self.n
        for i, text in enumerate(texts):
            if not text:
                continue  # blank: the field is left as it is
            if text == CLEAR:
                values[i] = None
                continue
            try:
                values[i] = convert(text)
            except RowError as e:
                self._fail(i, e)
        return values

    # -- stage 2: references -----------------------------------------------------------

    def resolve_relationships(self) -> None:
        for col in self._relationship_columns:
            values = [MISSING] * self.n
            self.values[col.field.name] = values
            keys: dict[int, str] = {}
            for i, text in enumerate(self.texts[col.index]):
                if text == CLEAR:
                    values[i] = None
                elif text:
                    keys[i] = text
            fold = _Folding(col.parent, col.parent_key)
            if col.parent_key.name == "Id":
                normal = {i: ids.normalize(k) or k for i, k in keys.items()}
            else:
                normal = keys
            found = self.store.lookup(col.parent, col.parent_key.name,
                                      [fold(k) for k in normal.values()])
            for i, key in normal.items():
                matches = found.get(fold(key), [])
                if len(matches) == 1:
                    values[i] = matches[0][0]
                elif not matches:
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
            if col.parent is not None or f.type != "reference" or f.name not in self.values:
                continue
            wanted: dict[str, list[int]] = {}
            for i, v in enumerate(self.values[f.name]):
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

    def check_object_rules(self) -> None:
        rule = objectrules.RULES.get(self.obj.name)
        if rule is not None and self.op in ("insert", "upsert"):
            for i, error in rule(self.store, self.obj, self.values).items():
                self._fail(i, error)

    # -- stage 3: which record each row addresses --------------------------------------

    def find_targets(self) -> None:
        if self.op == "insert":
            if self.h.id_column is not None:
                for i, text in enumerate(self.texts[self.h.id_column]):
                    if text:
                        self._fail(i, RowError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                               "cannot specify Id in an insert call", ("Id",)))
            return
        if self.op == "upsert" and self.external_id.lower() != "id":
            if self.h.id_column is not None:
                # Rows are matched on the external id, so an Id would be a second, maybe
                # contradicting key: Salesforce refuses an Id in the body of an upsert by
                # external id (REST API guide, "Insert or Update (Upsert) a Record Using an
                # External ID"); the org used to ignore it silently.
                for i, text in enumerate(self.texts[self.h.id_column]):
                    if text:
                        self._fail(i, RowError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                               f"cannot specify Id in an upsert on {self.external_id}",
                                               ("Id",)))
            self._targets_by_external_id()
            return
        self._targets_by_id()

    def _targets_by_id(self) -> None:
        normal: dict[int, str] = {}
        for i, text in enumerate(self._column(self.h.id_column)):
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
        keys: list[str | None] = [None] * self.n
        for i, rid in normal.items():
            keys[i] = rid
        self._chunk_duplicates(keys, self.h.id_column, lambda v: f"Duplicate id in list: {v}")

    def _targets_by_external_id(self) -> None:
        key = self.obj.field(self.external_id)
        fold = _Folding(self.obj, key)
        texts = self._column(self.h.key_column)
        bulk = bulk_converter(key)
        # A key of spaces is no key: Salesforce keeps no leading or trailing whitespace in
        # a text value and no empty one (Apex guide, "Primitive Data Types": the SOAP API's
        # rules), so "  " is null like "".
        values = (bulk(texts) if bulk is not None and "" not in texts and CLEAR not in texts
                  and all(map(str.strip, texts)) else None)
        if values is not None:
            # Every row has a plainly valid key: fold them all at once.
            keys: list[str | None] = list(map(str.lower, texts)) if fold.fold else texts
        else:
            convert = converter(key)
            values = [MISSING] * self.n
            keys = [None] * self.n
            for i, text in enumerate(texts):
                if text in ("", CLEAR) or not text.strip():
                    # Apex/REST report a missing upsert key this way; Bulk presumably the same.
                    self._fail(i, RowError("MISSING_ARGUMENT", f"{key.name} not specified", ()))
                    continue
                try:
                    values[i] = convert(text)
                except RowError as e:
                    self._fail(i, e)
                    continue
                keys[i] = fold(text)
        self.values[key.name] = values
        # Rows are judged in order: a key inserted by an earlier chunk is updated by a
        # later one, as successive DML chunks do in Salesforce.
        self._key_index = self.store.record_ids(self.obj, key.name,
                                                [k for k in keys if k is not None])
        self._keys = keys
        self._key_field = key
        self._chunk_duplicates(keys, self.h.key_column,
                               lambda v: f"Duplicate external id specified: {v}")

    def _chunk_duplicates(self, keys: list[str | None], column: int | None, message) -> None:
        """Rows of one 200-row chunk sharing a key all fail (our reading of the
        DUPLICATE_VALUE behaviour; Salesforce does not document which rows fail)."""
        present = [k for k in keys if k is not None]
        if len(set(present)) == len(present):
            return  # no key repeats anywhere in the batch
        texts = self._column(column)
        for start in range(0, self.n, DML_CHUNK):
            seen: dict[str, list[int]] = {}
            for i in range(start, min(start + DML_CHUNK, self.n)):
                if keys[i] is not None:
                    seen.setdefault(keys[i], []).append(i)
            for rows in seen.values():
                if len(rows) > 1:
                    for i in rows:
                        self._fail(i, RowError("DUPLICATE_VALUE", message(texts[i]), ()))

    # -- stage 4: decide and write -----------------------------------------------------

    def run(self, on_commit) -> BatchResult:
        if self.op not in ("delete", "hardDelete"):
            self.convert_cells()
            self.resolve_relationships()
            self.check_lookups()
            self.check_object_rules()
        self.find_targets()
        return self.decide_and_write(on_commit)

    def decide_and_write(self, on_commit) -> BatchResult:
        obj, op, n, values = self.obj, self.op, self.n, self.values
        result = BatchResult()
        failed = result.failed
        writes = op in ("insert", "update", "upsert")
        upsert_by_key = op == "upsert" and self.external_id.lower() != "id"
        rules = _RowRules(self.store, obj, self.h, values)
        # An upsert key matched without case may differ in case from the stored one, and the
        # update then writes the new spelling; an exact match changes nothing.
        keep_key = (case_insensitive_match(obj, self._key_field.name) if upsert_by_key
                    else None)
        new_ids = (ids.make_ids(obj.key_prefix,
                                self.store.allocate_numbers(obj.key_prefix, n), n)
                   if op in ("insert", "upsert") else [])
        key_index = self._key_index if upsert_by_key else {}
        keys = self._keys if upsert_by_key else []
        errors, target, given_id, locked = self.errors, self.target, self.given_id, self.locked
        custom = self._custom_rules(key_index) if writes and self.validation else None
        inserted: list[int] = []
        updated: list[int] = []
        ok: list[int] = []
        ok_ids: list[str] = []
        plain = None
        if not locked and errors.count(None) == n and not (writes and rules.active) and (
                custom is None):
            plain = self._all_succeed(upsert_by_key, key_index, keys, new_ids)
        if plain is not None:
            inserted, updated, ok_ids = plain
            ok = list(range(n))
        for i in range(n if plain is None else 0):
            error = errors[i]
            rid = target[i]
            if error is None and upsert_by_key:
                matches = key_index.get(keys[i])
                if matches:
                    if len(matches) > 1:
                        error = RowError("DUPLICATE_EXTERNAL_ID",
                                         f"{self._key_field.label}: more than one record found "
                                         f"for external id field: [{', '.join(matches)}]", ())
                    else:
                        rid = matches[0]
            if error is None and i in locked:
                # The record written (a new one has no id yet: the message names none).
                error = _LockError(rid)
            creating = op == "insert" or (op == "upsert" and rid is None)
            if error is None and writes and rules.active:
                error = rules.check(i, rid, creating)
            if error is None and custom is not None:
                error = custom.check(i, rid, creating)
            if error is not None:
                failed.append((rid or given_id[i] or "", error.render(), *self._row(i)))
                result.errors[i] = error
                continue
            if creating:
                rid = new_ids[len(inserted)]
                inserted.append(i)
                if upsert_by_key:
                    key_index[keys[i]] = [rid]
            elif writes:
                updated.append(i)
            ok.append(i)
            ok_ids.append(rid)
            if rules.uniques is not None:
                rules.uniques.commit(i, rid)
        ids_of = dict(zip(ok, ok_ids))
        result.ids = ids_of
        result.created = set(inserted)
        with self.store.transaction() as conn:
            if inserted:
                self._insert(conn, inserted, [ids_of[i] for i in inserted])
            if updated:
                skip = self._key_field.name if keep_key is False else None
                self._update(conn, updated, [ids_of[i] for i in updated], skip)
            if not writes and ok:
                self.store.delete_records(conn, obj, ok_ids, hard=op == "hardDelete",
                                          stamp=self.now, user_id=self.user_id)
            if on_commit is not None:
                on_commit(conn, result)
        return result

    def _all_succeed(self, by_key: bool, key_index: dict[str, list[str]],
                     keys: list[str | None], new_ids: list[str]
                     ) -> tuple[list[int], list[int], list[str]] | None:
        """The common batch, decided a column at a time: no row failed a check so far and
        none can fail the per-row ones (no locks, rules or validation: the caller checked),
        and for an upsert by key, every key names at most one record and none repeats in
        the batch (a repeat must see the record its earlier row inserted). Returns the
        inserted and updated rows and every row's record id, in input order; None when
        the rows must be judged one by one, as the loop in decide_and_write does."""
        op, n = self.op, self.n
        rids = self.target
        if by_key:
            if len(set(keys)) != n:
                return None
            if not key_index:  # no key names a record: every row inserts
                return list(range(n)), [], new_ids[:n]
            matches = list(map(key_index.get, keys))
            if max(map(len, filter(None, matches)), default=1) > 1:
                return None
            rids = (list(map(itemgetter(0), matches)) if None not in matches
                    else [m[0] if m else None for m in matches])
        if op == "insert":
            return list(range(n)), [], new_ids[:n]
        if None not in rids:  # update, delete, or an upsert of existing records only
            return [], list(range(n)) if op in ("update", "upsert") else [], list(rids)
        inserted = [i for i, rid in enumerate(rids) if rid is None]
        updated = [i for i, rid in enumerate(rids) if rid is not None]
        fresh = iter(new_ids)
        return inserted, updated, [rid if rid is not None else next(fresh) for rid in rids]

    def _custom_rules(self, key_index: dict[str, list[str]]) -> RowRules:
        """The validation rules' row checker, with the records this batch may update."""
        targets = [t for t in self.target if t is not None]
        targets += [m for matches in key_index.values() for m in matches]
        return RowRules(self.store, self.obj, list(self.validation), self.values, MISSING,
                        targets, self.now)

    def _insert(self, conn, rows: list[int], record_ids: list[str]) -> None:
        obj, now, user, n = self.obj, self.now, self.user_id, self.n
        base = {f.name: default_for_create(f) for f in obj.data_fields}
        if "OwnerId" in base:
            base["OwnerId"] = user
        base.update({"IsDeleted": 0, "CreatedDate": now, "CreatedById": user,
                     "LastModifiedDate": now, "LastModifiedById": user, "SystemModstamp": now})
        given = {name: _pick(col, rows, n) for name, col in self.values.items()}
        derive = _name_deriver(obj)
        if derive:
            given["Name"] = derive.column(given, len(rows))
        given["Id"] = record_ids
        # Only the columns this batch fills: binding a NULL costs as much as a value.
        columns = [c for c in self.store.column_names(obj)
                   if c in given or base.get(c) is not None]
        data = []
        for c in columns:
            if c not in given:
                data.append(itertools.repeat(base[c]))
                continue
            col = given[c]
            if MISSING in col:
                default = base.get(c)
                col = [default if v is MISSING else v for v in col]
            data.append(col)
        self.store.insert_records(conn, obj, columns, zip(*data))

    def _update(self, conn, rows: list[int], record_ids: list[str], skip: str | None) -> None:
        obj, now, user, n = self.obj, self.now, self.user_id, self.n
        given = {name: _pick(col, rows, n) for name, col in self.values.items() if name != skip}
        derive = _name_deriver(obj)
        stamps = ("LastModifiedDate", "LastModifiedById", "SystemModstamp")
        if not any(MISSING in col for col in given.values()) and not (
                derive and derive.touched(given)):
            # Every row sets the same fields: one statement for the batch.
            data = [*given.values(), itertools.repeat(now), itertools.repeat(user),
                    itertools.repeat(now), record_ids]
            self.store.update_records(conn, obj, (*given, *stamps), zip(*data))
            return
        # A changed name part rebuilds Name from the record's other parts: read them at once.
        current = (self.store.get_fields(obj, record_ids, derive.parts)
                   if derive and derive.touched(given) else {})
        # Rows setting the same fields share one statement. A record updated twice in the
        # batch (its key in two 200-row chunks) must see its updates in row order, so then
        # only consecutive rows share one.
        in_order = len(set(record_ids)) < len(record_ids)
        runs: list[tuple[tuple[str, ...], list[list[Any]]]] = []
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for k, rid in enumerate(record_ids):
            vals = {name: col[k] for name, col in given.items() if col[k] is not MISSING}
            if derive and derive.touched(vals):
                current[rid] = {**current[rid], **vals}  # a later update of it sees this one
                vals["Name"] = derive.name(current[rid])
            names = (*vals, *stamps)
            row = [*vals.values(), now, user, now, rid]
            if not in_order:
                groups.setdefault(names, []).append(row)
            elif runs and runs[-1][0] == names:
                runs[-1][1].append(row)
            else:
                runs.append((names, [row]))
        for names, group in runs or groups.items():
            self.store.update_records(conn, obj, names, group)


class _RowRules:
    """The per-row checks of a write that depend on whether the row creates or updates:
    fields the operation may not write, required fields, unique fields. Worked out per
    column first, so a batch that cannot break them skips them row by row."""

    def __init__(self, store: Store, obj: SObject, header: Header, values: dict[str, list]):
        self.values = values
        self.fields = obj.fields
        header_fields = [c.field for c in header.columns]
        self.no_create = [f.name for f in header_fields
                          if not f.flag("createable") and not f.is_key and f.name in values]
        self.no_update = [f.name for f in header_fields
                          if not f.flag("updateable") and not f.is_key and f.name in values]
        self.required = [(f.name, values.get(f.name)) for f in obj.required_fields]
        # A create misses a required field the upload lacks or leaves blank; an update
        # only one it clears with #N/A.
        self.create_gaps = any(col is None or MISSING in col or None in col
                               for _, col in self.required)
        self.update_gaps = any(col is not None and None in col for _, col in self.required)
        uniques = _UniqueIndex(store, obj, values)
        self.uniques = uniques if uniques.fields else None
        self.active = bool(self.no_create or self.no_update or self.create_gaps
                           or self.update_gaps or self.uniques)

    def check(self, i: int, rid: str | None, creating: bool) -> RowError | None:
        values = self.values
        forbidden = self.no_create if creating else self.no_update
        for name in forbidden:
            if values[name][i] is not MISSING:
                return _not_writable(self.fields[name])
        if creating and self.create_gaps:
            missing = [name for name, col in self.required
                       if col is None or col[i] is MISSING or col[i] is None]
        elif not creating and self.update_gaps:
            missing = [name for name, col in self.required if col is not None and col[i] is None]
        else:
            missing = []
        if missing:
            return RowError("REQUIRED_FIELD_MISSING",
                            f"Required fields are missing: [{', '.join(missing)}]", missing)
        if self.uniques is not None:
            return self.uniques.claim(i, rid)
        return None

def _not_writable(f: Field) -> RowError:
    return RowError("INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {f.name}. Please check the security "
                    "settings of this field and verify that it is read/write for your profile "
                    "or permission set.", (f.name,))


class _UniqueIndex:
    """Unique fields: a value may be held by one live record (existing or from this batch)."""

    def __init__(self, store: Store, obj: SObject, values: dict[str, list[Any]]):
        self.fields = [f for f in obj.data_fields if f.flag("unique") and f.name in values]
        self.values = values
        self.owner: dict[tuple[str, str], str] = {}
        self.fold = {f.name: case_insensitive_match(obj, f.name) for f in self.fields}
        for f in self.fields:
            wanted = [v for v in values[f.name] if isinstance(v, str)]
            if not wanted:
                continue
            fold = self.fold[f.name]
            for key, matches in store.lookup(obj, f.name,
                                             [w.lower() if fold else w for w in wanted]).items():
                self.owner[(f.name, key)] = matches[0][0]

    def _keys(self, i: int):
        for f in self.fields:
            v = self.values[f.name][i]
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

    def name(self, record: dict[str, Any]) -> str | None:
        texts = [str(v) for v in map(record.get, self.parts) if v and v is not MISSING]
        return " ".join(texts) or None

    def column(self, given: dict[str, list[Any]], n: int) -> list[str | None]:
        """The Name of each new record, from the part columns (blank parts left out)."""
        parts = [given.get(p) or [None] * n for p in self.parts]
        return [self.name(dict(zip(self.parts, row))) for row in zip(*parts)]


# The order the parts of a person's Name are joined in ("First Middle Last Suffix"); the
# describe lists LastName first. Salutation is a component of the compound Name too, but
# the Name field reads "Ada Lovelace" without it (UNCONFIRMED: what the API returns for a
# contact with a salutation is not recorded here).
_NAME_ORDER = ("FirstName", "MiddleName", "LastName", "Suffix")


def _name_deriver(obj: SObject) -> _NameDeriver | None:
    name = obj.fields.get("Name")
    if name is None or name.flag("createable"):
        return None
    parts = {f.name for f in obj.fields.values() if f.describe.get("compoundFieldName") == "Name"}
    ordered = [p for p in _NAME_ORDER if p in parts]
    return _NameDeriver(ordered) if ordered else None
