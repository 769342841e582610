"""What a load would change in the org: the current values of the cells it sends, compared
with what it sends as Salesforce would see them.

    plan = sfb.dry_run(df, "Account", "upsert", "customExtIdField__c", lookup=True)
    plan.diff()        # one row per changed cell: row, Id, key, field, before, after
    plan.summary()     # rows to create / update / unchanged, changed cells per field

Both sides are compared in one canonical form per field type, so what Salesforce would
store the same is no change: ``1200`` and ``1200.0`` (numbers, rounded half up to the
field's scale), ``true`` and ``TRUE``, a date and the same date written by a datetime
column, ``2024-05-01T10:00:00Z`` and ``...+0000``, a 15- and an 18-character id. Text,
picklists included, is compared exactly: Salesforce stores an unrestricted picklist's
value as sent, so ``prospect`` over ``Prospect`` is a change. A blank cell sends nothing
(no change); ``#N/A`` clears the field (a change unless it is empty already).

Current values come from REST queries of the keys for a few thousand rows, else from one
Bulk query of the object's records (a Bulk query job's cost does not grow with the rows).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import errors, results
from .org import Org

CLEAR = "#N/A"
# Up to this many keys, REST queries of the keys (a few hundred per call) cost fewer calls
# and less time than a Bulk query job (create, polls, results); above it, one Bulk query.
REST_LOOKUP_KEYS = 2_000
# SOQL reads at most 100,000 characters, and a REST query's URL is best kept under 16 KB.
_URL_BUDGET = 12_000
_LSTR = pa.large_string()
_TEXT_TYPES = ("string", "textarea", "picklist", "email", "phone", "url", "encryptedstring",
               "combobox")
_NUMBER_TYPES = ("int", "double", "currency", "percent", "long")


@dataclass(frozen=True)
class Compared:
    """A sent column whose current value can be read back: its position among the sent
    columns, its name in the frame, the SOQL path that reads it, and its field."""

    position: int
    column: Any
    path: str
    field: dict


def comparable_columns(columns, fields: list[dict | None], key: str | None) -> list[Compared]:
    """The sent columns a diff can compare: fields (not the key, not Id) and relationship
    columns of a single-type lookup (``Account.customExtIdField__c``: read back through
    the relationship). A polymorphic column (``Account:What.X``) names a type the record's
    parent may not have: it is always sent as it is."""
    out = []
    for position, (column, f) in enumerate(zip(columns, fields)):
        if f is None or not isinstance(column, str):
            continue
        if "." in column:
            rel, _, name = column.partition(".")
            if ":" in rel or "." in name:
                continue
            out.append(Compared(position, column, f"{rel}.{name}", {"type": "string"}))
            continue
        if f["name"] == "Id" or (key is not None and f["name"].lower() == key.lower()):
            continue
        out.append(Compared(position, column, f["name"], f))
    return out


# -- reading the current values ------------------------------------------------------------


def fetch_current(org: Org, sobject: str, key: str, keys: list[str],
                  paths: list[str]) -> pa.Table:
    """The org's records of ``keys`` (texts of the ``key`` field): a table of texts (null
    for no value) with columns ``Id``, ``key``, each of ``paths`` and LastModifiedDate.
    REST queries for a few keys, else one Bulk query job of every record of the object
    (whose rows are then matched by the caller)."""
    select = list(dict.fromkeys(["Id", key, *paths, "LastModifiedDate"]))
    if len(keys) <= REST_LOOKUP_KEYS:
        rows = []
        for soql in key_batches(keys, sobject, key, select):
            for record in _query_all(org, soql):
                rows.append([_json_text(_walk(record, p)) for p in select])
        return pa.table([pa.array([r[i] for r in rows], _LSTR) for i in range(len(select))],
                        names=select)
    from .query import query_text  # the Bulk query path: one job, every record

    where = "" if key == "Id" else f" WHERE {key} != null"
    table = query_text(f"SELECT {', '.join(select)} FROM {sobject}{where}", org)
    return table.rename_columns(select)


def key_batches(keys: list[str], sobject: str, key: str, select: list[str]):
    """SOQL statements selecting ``select`` of the records of ``keys``, each within the
    URL budget."""
    head = f"SELECT {', '.join(select)} FROM {sobject} WHERE {key} IN ("
    batch: list[str] = []
    size = len(head)
    for k in keys:
        literal = "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if batch and size + len(literal) * 3 > _URL_BUDGET:  # URL encoding grows ~3x
            yield head + ",".join(batch) + ")"
            batch, size = [], len(head)
        batch.append(literal)
        size += len(literal) * 3 + 1
    if batch:
        yield head + ",".join(batch) + ")"


def _query_all(org: Org, soql: str):
    page = org.get_json("query", params={"q": soql})
    while True:
        yield from page.get("records", [])
        if page.get("done", True) or not page.get("nextRecordsUrl"):
            return
        page = org.get_json(page["nextRecordsUrl"])


def _walk(record: dict, path: str) -> Any:
    """A REST record's value at ``Parent.Field`` (None when the parent is empty)."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    return value


def _json_text(value: Any) -> str | None:
    """A REST query value as the text a Bulk query would give."""
    if value is None or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- comparing -----------------------------------------------------------------------------


def canonical(text: pa.Array, field: dict) -> pa.Array:
    """``text`` (large_string, null or '' for no value) in the form two values Salesforce
    would store alike share (see the module docstring); null for no value."""
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, _LSTR), text.cast(_LSTR))
    kind = field.get("type")
    if kind == "boolean":
        return pc.utf8_lower(text)
    if kind in _NUMBER_TYPES:
        scale = 0 if kind in ("int", "long") else int(field.get("scale") or 0)
        return _numbers(text, scale)
    if kind == "date":
        return pc.utf8_slice_codeunits(text, 0, 10)
    if kind == "datetime":
        return _instants(text)
    if kind in ("id", "reference"):
        return results._id18_upper(text)
    if kind == "multipicklist":
        # Salesforce keeps a multi-select's values as a set: the order written is not kept.
        return pa.array([None if v is None else ";".join(sorted(v.split(";")))
                         for v in text.to_pylist()], _LSTR)
    if kind == "time":
        return pc.utf8_slice_codeunits(pc.utf8_rtrim(text, characters="Z"), 0, 12)
    return text


def _numbers(text: pa.Array, scale: int) -> pa.Array:
    shaped = pc.match_substring_regex(text, r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
    shaped = pc.fill_null(shaped, False)
    if not pc.all(pc.or_(shaped, pc.is_null(text))).as_py():
        return text  # a value that is no number (the org rejects it): compared as text
    numbers = pc.cast(text, pa.float64())
    # The org rounds half up (away from zero) to the field's scale before it stores.
    rounded = pc.round(numbers, ndigits=scale, round_mode="half_towards_infinity")
    return pc.cast(rounded, _LSTR)


def _instants(text: pa.Array) -> pa.Array:
    """Datetimes as their instant: milliseconds since 1970 UTC, as text."""
    values = pd.Series(text.to_pandas(), dtype=object)
    try:
        times = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return text  # not datetimes the org would take: compared as text
    millis = times.dt.floor("ms").to_numpy("datetime64[ms]").astype(np.int64)
    return pc.if_else(pc.is_null(text), pa.scalar(None, _LSTR),
                      pa.array(millis).cast(_LSTR))


def changed_cells(after: pa.Array, before: pa.Array, field: dict) -> np.ndarray:
    """Which cells of ``after`` (texts as sent) would change ``before`` (the org's texts,
    null for no value): blank sends nothing, #N/A clears."""
    after = after.cast(_LSTR)
    sent = pc.fill_null(pc.not_equal(after, ""), False)
    clears = pc.fill_null(pc.equal(after, CLEAR), False)
    new = canonical(pc.if_else(clears, pa.scalar(None, _LSTR), after), field)
    old = canonical(before.cast(_LSTR), field)
    differs = pc.fill_null(pc.not_equal(new, old), True)  # a null on one side only
    both_null = pc.and_(pc.is_null(new), pc.is_null(old))
    changed = pc.and_(sent, pc.and_not(differs, both_null))
    return changed.to_numpy(zero_copy_only=False)


def parse_since(value: Any, what: str) -> pd.Timestamp:
    """A time with its zone (a naive time would be read in some zone, silently)."""
    if isinstance(value, pd.DataFrame):
        found = value.attrs.get("queried_at")
        if found is None:
            raise errors.InputError(f"{what}: this frame does not say when it was queried "
                                    "(only query_df results do); give a time, e.g. "
                                    "pd.Timestamp('2026-12-01 09:00', tz='UTC')")
        value = found
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise errors.InputError(f"{what} must be a time, e.g. pd.Timestamp('2026-12-01 "
                                f"09:00', tz='UTC'), not {value!r}") from None
    if stamp is pd.NaT:
        raise errors.InputError(f"{what} must be a time, not {value!r}")
    if stamp.tzinfo is None:
        raise errors.InputError(f"{what} {value!r} has no time zone, so it could mean any of "
                                f"24 hours: give one, e.g. pd.Timestamp({str(stamp)!r}, "
                                "tz='UTC') (a query_df result's attrs['queried_at'] has one)")
    return stamp.tz_convert(dt.timezone.utc)


def modified_times(texts: pa.Array) -> np.ndarray:
    """LastModifiedDate texts as UTC times (datetime64[ns], NaT where none)."""
    times = pd.to_datetime(pd.Series(texts.to_pandas(), dtype=object), utc=True,
                           format="ISO8601", errors="coerce")
    return times.dt.tz_convert(None).to_numpy("datetime64[ns]")


# -- what a lookup found -------------------------------------------------------------------


@dataclass
class ChangeSet:
    """The rows of a load that would update an existing record, and which of their cells
    would change it. ``rows`` index the sent rows (ascending); ``changed[i, j]``: row i's
    cell of ``compared[j]`` changes the record; ``before[j]``: the org's texts of
    compared[j] for those rows; ``modified``: their LastModifiedDate (UTC)."""

    rows: np.ndarray
    ids: np.ndarray  # object: the records' Ids
    compared: list[Compared]
    before: list[pa.Array]
    changed: np.ndarray
    modified: np.ndarray  # datetime64[ns] UTC, NaT when unknown
    inputs: np.ndarray | None = None  # the rows' positions in the input frame

    @classmethod
    def empty(cls, compared: list[Compared]) -> "ChangeSet":
        return cls(np.zeros(0, np.int64), np.zeros(0, object), compared,
                   [pa.array([], _LSTR) for _ in compared], np.zeros((0, len(compared)), bool),
                   np.zeros(0, "datetime64[ns]"), np.zeros(0, np.int64))

    @property
    def unchanged_rows(self) -> np.ndarray:
        """Rows (into the sent rows) none of whose compared cells changes the record."""
        return self.rows[~self.changed.any(axis=1)] if self.changed.size else self.rows.copy()

    def modified_after(self, since: pd.Timestamp) -> np.ndarray:
        """Which of ``rows`` had their record modified after ``since``."""
        if not len(self.modified):
            return np.zeros(0, bool)
        return self.modified > np.datetime64(since.tz_convert(None).to_datetime64(), "ns")

    # -- kept on disk for resume and undo ------------------------------------------------

    def to_table(self) -> pa.Table:
        columns = {"row": pa.array(self.rows, pa.int64()),
                   "input": pa.array(self.rows if self.inputs is None else self.inputs,
                                     pa.int64()),
                   "Id": pa.array(self.ids.tolist(), _LSTR),
                   "modified": pa.array(self.modified, pa.timestamp("ns"))}
        for j in range(len(self.compared)):
            columns[f"before_{j}"] = self.before[j]
            columns[f"changed_{j}"] = pa.array(self.changed[:, j], pa.bool_())
        # What each compared column is, for undo (which runs without the frame).
        fields = [{"path": c.path, "type": c.field.get("type"), "scale": c.field.get("scale")}
                  for c in self.compared]
        return pa.table(columns).replace_schema_metadata({"compared": json.dumps(fields)})

    @classmethod
    def from_table(cls, table: pa.Table, compared: list[Compared]) -> "ChangeSet":
        n = table.num_rows
        changed = np.zeros((n, len(compared)), bool)
        for j in range(len(compared)):
            changed[:, j] = table.column(f"changed_{j}").to_numpy()
        return cls(table.column("row").to_numpy(), np.array(table.column("Id").to_pylist(),
                                                             dtype=object),
                   compared, [table.column(f"before_{j}").combine_chunks()
                              for j in range(len(compared))],
                   changed, table.column("modified").to_numpy().astype("datetime64[ns]"),
                   table.column("input").to_numpy())

    @staticmethod
    def compared_of(table: pa.Table) -> list[Compared]:
        """The compared columns a kept table names (no frame needed: for undo)."""
        fields = json.loads(table.schema.metadata[b"compared"])
        return [Compared(j, f["path"], f["path"],
                         {"name": f["path"], "type": f["type"], "scale": f["scale"]})
                for j, f in enumerate(fields)]


def text_array(values: pd.Series) -> pa.Array:
    """A column of sent texts (strings, no nulls) as large_string (pandas' Arrow-backed
    strings are taken without a copy to Python objects)."""
    arr = pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.fill_null(arr.cast(_LSTR), "")


def compute(sent_text: pd.DataFrame, key_texts: pa.Array, found: pa.Table,
            found_keys: pa.Array, compared: list[Compared]) -> tuple[np.ndarray, ChangeSet]:
    """Match the sent rows to the org's records (``found_keys``: the records' keys in the
    same normal form as ``key_texts``) and compare their cells. Returns, per sent row, the
    index of its record in ``found`` (-1: none) and the ChangeSet of the matched rows."""
    if not len(found_keys):
        return np.full(len(key_texts), -1, np.int64), ChangeSet.empty(compared)
    # The first record of each key (keys are unique in the org; a case-insensitive match
    # of two spellings is the org's to refuse).
    found_at = pc.index_in(key_texts, value_set=found_keys.cast(_LSTR))
    record_of = pc.fill_null(found_at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    blank = pc.fill_null(pc.is_in(key_texts, pa.array(["", CLEAR], _LSTR)), True)
    record_of[blank.to_numpy(zero_copy_only=False)] = -1
    rows = np.flatnonzero(record_of >= 0)
    if not len(rows):
        return record_of, ChangeSet.empty(compared)
    take = pa.array(record_of[rows])
    before = [found.column(c.path).combine_chunks().take(take) for c in compared]
    changed = np.zeros((len(rows), len(compared)), bool)
    for j, c in enumerate(compared):
        after = text_array(sent_text.iloc[rows, c.position])
        changed[:, j] = changed_cells(after, before[j], c.field)
    modified = modified_times(found.column("LastModifiedDate").combine_chunks().take(take))
    ids = np.array(found.column("Id").combine_chunks().take(take).to_pylist(), dtype=object)
    return record_of, ChangeSet(rows, ids, compared, before, changed, modified)
