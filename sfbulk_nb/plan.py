"""The plan stage of a load: describe -> validate -> format -> duplicate keys -> chunks.

    plan = make_plan(org, df, "Account", "upsert", "customExtIdField__c")
    plan.problems            # every problem of every row (validate.py)
    plan.jobs                # one row per job that would run: rows, bytes
    plan.lookup()            # optional: which rows would create, which update (queries)

A `LoadPlan` does no I/O but the describe fetches (the object's, and the parents' of
relationship columns; describeGlobal only to name close matches of an unknown object);
`api.Run` executes one. `lookup()` is the one step that asks the org about records, and
says how many API calls it used.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

import pyarrow.compute as pc

from . import changes, encode, errors, results, rules, validate
from .encode import Chunk
from .org import Org
from .problems import Problems, summary_html
from .progress import plural

if TYPE_CHECKING:
    from . import changes_view

OPERATIONS = ("insert", "upsert", "update", "delete", "hardDelete")
ON_INVALID = ("raise", "skip", "send")
# An API name: what Salesforce allows for objects and fields (custom ones end in __c, __r,
# __mdt...). Checked before a name goes into a URL: "Account/../Contact" must not.
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass
class LoadOptions:
    nulls: Any = "keep"
    tz: str | None = None
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    max_bytes: int = 100_000_000
    max_records: int | None = None
    on_invalid: str = "raise"
    # Send only the cells that change their record (update/upsert; looks up first).
    only_changed: bool = False
    # Hold back rows whose record was modified in the org after this time (status
    # "conflict"): a time with its zone, or a query_df result (its attrs["queried_at"]).
    if_unmodified_since: Any = None
    # Look the records up and keep their values in the journal, so res.undo() can put
    # them back (only_changed and if_unmodified_since do too).
    undoable: bool = False
    rules: bool = False  # also check the org's active validation rules (sfbulk_nb.rules)


@dataclass
class LoadPlan:
    """Everything a load will do, worked out before any job exists."""

    org: Org
    sobject: str  # the object's API name, as describe spells it
    operation: str
    key: str | None  # the field rows are matched on (upsert/update/delete), else None
    df: pd.DataFrame  # the input
    options: LoadOptions
    problems: Problems
    positions: np.ndarray  # the input rows that will be sent (positions, ascending)
    sent_text: pd.DataFrame  # their cells as sent
    chunks: list[Chunk]  # one per job; positions index into the sent rows
    key_case_insensitive: bool = False
    describe_calls: int = 0
    existing: pd.DataFrame | None = field(default=None, repr=False)  # from lookup()
    # Per sent column, the field it writes (None: not a field); from validation.
    fields: list = field(default_factory=list, repr=False)
    # From lookup() of an update or upsert: the rows that would update, cell by cell.
    changes: "changes.ChangeSet | None" = field(default=None, repr=False)
    lookup_calls: int = 0
    # The sent cells as the lookup compared them (only_changed then blanks some).
    looked_up_text: pd.DataFrame | None = field(default=None, repr=False)
    # Rows not sent although valid, by status: "unchanged" (only_changed) and "conflict"
    # (if_unmodified_since); input positions, with a message per row for conflicts.
    held: dict = field(default_factory=dict, repr=False)
    # Whether two checked rows share a key (validate.Checked.key_repeats): False spares
    # the run working it out again; None: not known.
    key_repeats: bool | None = field(default=None, repr=False)

    # -- what it will do ---------------------------------------------------------------

    @property
    def rows(self) -> int:
        return len(self.df)

    @property
    def rows_to_send(self) -> int:
        return len(self.positions)

    @property
    def invalid_positions(self) -> np.ndarray:
        """Rows with an error that will not be sent (on_invalid="skip")."""
        keep = np.zeros(len(self.df), bool)
        keep[self.positions] = True
        for positions, _, _ in self.held.values():
            keep[positions] = True
        return np.flatnonzero(~keep)

    @property
    def held_positions(self) -> np.ndarray:
        """Valid rows not sent: unchanged (only_changed) or conflicts (if_unmodified_since)."""
        found = [p for p, _, _ in self.held.values()]
        return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def unsent_status(self) -> tuple[np.ndarray, pd.DataFrame]:
        """The input positions of every row not sent, and their status columns (in that
        order): invalid rows, then held ones."""
        parts, frames = [self.invalid_positions], [self.invalid_status()]
        for status, (positions, ids, messages) in self.held.items():
            if not len(positions):
                continue
            n = len(positions)
            na = pd.array([pd.NA] * n, dtype="string")
            frame = pd.DataFrame({
                "sf_id": pd.array(ids, dtype="string"),
                "sf_status": pd.array([status] * n, dtype="string"),
                "sf_error_code": (pd.array(["CONFLICT"] * n, dtype="string")
                                  if messages else na),
                "sf_error_message": pd.array(messages, dtype="string") if messages else na,
                "sf_error_fields": na, "sf_job_id": na,
                "sf_attempts": pd.array([0] * n, dtype="Int64")},
                columns=list(results.STATUS_COLUMNS))
            frame.index = self.df.index[positions]
            parts.append(np.asarray(positions, np.int64))
            frames.append(frame)
        return np.concatenate(parts), pd.concat(frames) if len(frames) > 1 else frames[0]

    @property
    def job_count(self) -> int:
        return len(self.chunks)

    @property
    def jobs(self) -> pd.DataFrame:
        """One row per job that would run: rows and bytes (header included)."""
        return pd.DataFrame({"rows": [c.records for c in self.chunks],
                             "bytes": [len(c.data) for c in self.chunks]},
                            columns=["rows", "bytes"])

    def invalid_status(self) -> pd.DataFrame:
        """The status columns of the rows not sent because of their errors."""
        skipped = self.invalid_positions
        first = self.problems.first_error_by_position().reindex(skipped)
        na = pd.array([pd.NA] * len(skipped), dtype="string")
        frame = pd.DataFrame({
            "sf_id": na, "sf_status": pd.array(["invalid"] * len(skipped), dtype="string"),
            "sf_error_code": pd.array(first["code"].astype(object), dtype="string"),
            "sf_error_message": pd.array(first["message"].astype(object), dtype="string"),
            "sf_error_fields": pd.array(first["field"].astype(object), dtype="string"),
            "sf_job_id": na, "sf_attempts": pd.array([0] * len(skipped), dtype="Int64")},
            columns=list(results.STATUS_COLUMNS))
        frame.index = self.df.index[skipped]
        return frame

    # -- would insert vs would update -----------------------------------------------------

    def lookup(self) -> pd.DataFrame:
        """Ask the org which keys of the rows to send already exist: a frame indexed like
        the input (the rows to send) with ``action`` (``create`` or ``update``; update/
        delete rows whose Id does not exist: ``missing``) and ``Id`` (the existing
        record). An update or upsert also reads the current values of the columns it
        sends (`diff()`, `summary()`). REST queries of the keys for a few thousand rows,
        else one Bulk query of the object; `lookup_calls` says how many API calls it
        took. Kept as `existing`."""
        if self.operation == "insert":
            actions = pd.DataFrame({"action": "create", "Id": pd.NA},
                                   index=self.df.index[self.positions])
            self.existing, self.lookup_calls = actions, 0
            self.changes = None
            return actions
        before = self.org.api_calls
        column = _column_of(self.sent_text, self.key)
        keys = changes.text_array(self.sent_text[column])
        normal = self._key_normal
        updating = self.operation in ("upsert", "update")
        compared = (changes.comparable_columns(self.sent_text.columns, self.fields, self.key)
                    if updating else [])
        found = changes.fetch_current(self.org, self.sobject, self.key,
                                      sorted(set(keys.to_pylist()) - {"", "#N/A"}),
                                      [c.path for c in compared])
        record_of, change_set = changes.compute(
            self.sent_text, normal(keys), found,
            normal(pc.fill_null(found.column(self.key).combine_chunks(), "")), compared)
        ids = pd.Series(found.column("Id").combine_chunks().to_numpy(zero_copy_only=False),
                        dtype=object)
        has = record_of >= 0
        id_of = pd.array(np.where(has, ids.to_numpy()[np.maximum(record_of, 0)]
                                  if len(ids) else None, None), dtype="string")
        missing = "missing" if self.operation != "upsert" else "create"
        action = np.where(has, "update", missing)
        if self.operation in ("delete", "hardDelete"):
            action = np.where(has, "delete", "missing")
        self.existing = pd.DataFrame({"action": action, "Id": id_of},
                                     index=self.sent_text.index)
        if updating:
            change_set.inputs = self.positions[change_set.rows]
        self.changes = change_set if updating else None
        self.looked_up_text = self.sent_text
        self.lookup_calls = self.org.api_calls - before
        return self.existing

    def _key_normal(self, values: pa.Array) -> pa.Array:
        """Keys in the form the org matches them in (ids: 18 characters; case-insensitive
        external ids: lower case)."""
        normalize = results._normalizer(self.operation, self.key, self.key_case_insensitive)
        values = values.cast(pa.large_string())
        return normalize(values) if normalize is not None else values

    @property
    def looks_up_before_sending(self) -> bool:
        return (bool(self.options.only_changed) or bool(self.options.undoable)
                or self.options.if_unmodified_since is not None)

    def hold_back(self, change_set: "changes.ChangeSet | None") -> None:
        """Apply only_changed and if_unmodified_since with ``change_set`` (a lookup's, or
        the one a run's journal kept): rows whose record was modified after the time are
        held back as conflicts, rows that change nothing as unchanged, and the rows still
        sent carry only their changed cells (blank leaves a field as it is). Re-encodes
        the chunks when anything changed."""
        if change_set is None or not len(change_set.rows):
            return
        sent = self.sent_text
        hold = np.zeros(len(sent), bool)
        messages: dict[int, str] = {}
        ids: dict[int, str] = {}
        conflict_rows = np.zeros(0, np.int64)
        since = self.options.if_unmodified_since
        if since is not None:
            late = change_set.modified_after(since)
            conflict_rows = change_set.rows[late]
            for r, at in zip(conflict_rows, change_set.modified[late]):
                messages[int(r)] = (
                    f"the record was modified in the org at {_iso(at)}, after "
                    f"if_unmodified_since ({_iso(since)}): not sent, so that edit is kept; "
                    "query it again to see it")
            hold[conflict_rows] = True
        unchanged_rows = np.zeros(0, np.int64)
        text = sent
        if self.options.only_changed:
            compared_positions = {c.position for c in change_set.compared}
            key_position = sent.columns.get_loc(_column_of(sent, self.key))
            others = [p for p in range(sent.shape[1])
                      if p not in compared_positions and p != key_position]
            # A cell that cannot be compared (a polymorphic relationship column) may
            # change its record: a row with one filled is sent.
            unknown = np.zeros(len(change_set.rows), bool)
            for p in others:
                unknown |= sent.iloc[change_set.rows, p].to_numpy(object) != ""
            quiet = ~change_set.changed.any(axis=1) & ~unknown
            unchanged_rows = change_set.rows[quiet & ~hold[change_set.rows]]
            hold[unchanged_rows] = True
            text = sent.copy()
            for j, c in enumerate(change_set.compared):
                same = change_set.rows[~change_set.changed[:, j]]
                if len(same):
                    text.iloc[same, c.position] = ""
        for r, i in zip(change_set.rows, change_set.ids):
            ids[int(r)] = i
        if not hold.any() and text is sent:
            return
        self.held = {
            "conflict": (self.positions[conflict_rows],
                         [ids[int(r)] for r in conflict_rows],
                         [messages[int(r)] for r in conflict_rows]),
            "unchanged": (self.positions[unchanged_rows],
                          [ids[int(r)] for r in unchanged_rows], None)}
        keep = np.flatnonzero(~hold)
        self.positions = self.positions[keep]
        self.sent_text = text.iloc[keep]
        self.chunks = _chunks_of_text(self.sent_text, self.options) if len(keep) else []

    # -- what would change -------------------------------------------------------------

    def _looked_up(self) -> "changes.ChangeSet | None":
        if self.existing is None:
            self.lookup()
        return self.changes

    def diff(self) -> pd.DataFrame:
        """One row per cell that would change a record: ``row`` (the input's index label),
        ``Id``, the key (upsert), ``field``, ``before`` (the org's value) and ``after``
        (what is sent; <NA>: cleared by #N/A), compared as Salesforce would store them
        (see sfbulk_nb.changes). Rows that would create a record are not listed (every
        cell is new): `summary()` counts them. Runs `lookup()` first when it has not
        run (a few API calls)."""
        change_set = self._looked_up()
        key = [self.key] if self.key not in (None, "Id") else []
        columns = ["row", "Id", *key, "field", "before", "after"]
        if change_set is None or not change_set.changed.any():
            return pd.DataFrame({c: pd.Series([], dtype="string" if c != "row" else object)
                                 for c in columns})
        r, c = np.nonzero(change_set.changed)
        sent = self.looked_up_text
        rows = change_set.rows[r]
        after = np.empty(len(r), object)
        before = np.empty(len(r), object)
        for j, compared in enumerate(change_set.compared):
            at = c == j
            if not at.any():
                continue
            after[at] = sent.iloc[rows[at], compared.position].to_numpy(object)
            before[at] = np.asarray(change_set.before[j].take(pa.array(r[at])).to_pylist(),
                                    dtype=object)
        out = {"row": sent.index[rows], "Id": pd.array(change_set.ids[r], dtype="string")}
        if key:
            out[self.key] = pd.array(sent.iloc[rows][_column_of(sent, self.key)].to_numpy(object),
                                     dtype="string")
        out["field"] = pd.array([_field_name(change_set.compared[j]) for j in c], dtype="string")
        out["before"] = pd.array(before, dtype="string")
        out["after"] = pd.array(np.where(after == changes.CLEAR, None, after), dtype="string")
        return pd.DataFrame(out, columns=columns)

    def summary(self, since: Any = None) -> "changes_view.ChangeSummary":
        """What the load would do to the org: rows to create, to update, unchanged (every
        cell equal to the org's), changed cells per field with a few examples, and with
        ``since`` (a time with its zone, or a query_df result) the rows whose record was
        modified in the org after it: someone else edited them since."""
        from . import changes_view

        change_set = self._looked_up()
        stamp = changes.parse_since(since, "since") if since is not None else None
        return changes_view.summarize(self, change_set, self.diff(), stamp)

    # -- display -----------------------------------------------------------------------

    def _headline(self) -> str:
        skipped = len(self.df) - self.rows_to_send
        head = (f"{self.operation} of {self.rows_to_send:,} of {len(self.df):,} rows into "
                f"{self.sobject} ({self.org.kind} org) in {plural(self.job_count, 'job')}, "
                f"{int(self.jobs['bytes'].sum()):,} bytes")
        if skipped:
            head += f"; {plural(skipped, 'invalid row')} would be skipped"
        if self.existing is not None:
            counts = self.existing["action"].value_counts()
            head += "; " + (", ".join(f"{n:,} would {a}" if a != "missing" else f"{n:,} not found"
                                      for a, n in counts.items()) or "no rows to look up")
            head += f" (lookup: {plural(self.lookup_calls, 'API call')})"
            if self.changes is not None:
                changing = len(self.changes.rows) - len(self.changes.unchanged_rows)
                head += (f"; {changing:,} would change their record "
                         f"({plural(int(self.changes.changed.sum()), 'cell')}), "
                         f"{len(self.changes.unchanged_rows):,} unchanged")
            for status, (positions, _, _) in self.held.items():
                if len(positions):
                    head += f"; {plural(len(positions), 'row')} {status} held back"
        return head

    def __repr__(self) -> str:
        lines = [f"<LoadPlan {self._headline()}>"]
        if len(self.problems):
            lines.append(self.problems.summary_text())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        parts = [f'<div class="sfbulk-plan" style="max-width:100%;overflow:hidden">'
                 f"<b>LoadPlan</b>: {html.escape(self._headline())}"]
        if len(self.problems):
            parts.append(summary_html(self.problems))
        parts.append("</div>")
        return "".join(parts)


def _iso(at: Any) -> str:
    return pd.Timestamp(at).tz_localize("UTC").isoformat() if pd.Timestamp(at).tzinfo is None \
        else pd.Timestamp(at).tz_convert("UTC").isoformat()


def _chunks_of_text(text: pd.DataFrame, options: LoadOptions) -> list[Chunk]:
    """The jobs' CSV of cell texts as they are sent (after only_changed blanked some)."""
    columns = [encode.text_column(str(name), changes.text_array(text.iloc[:, i]))
               for i, name in enumerate(text.columns)]
    encoding = encode.Encoding(text, columns=columns)
    return list(encoding.chunks(column_delimiter=options.column_delimiter,
                                line_ending=options.line_ending, max_bytes=options.max_bytes,
                                max_records=options.max_records))


def _field_name(compared: "changes.Compared") -> str:
    return compared.path if "." in compared.path else compared.field["name"]


def _column_of(frame: pd.DataFrame, key: str) -> Any:
    """The frame's column that holds ``key`` (same name, else the one ignoring case)."""
    if key in frame.columns:
        return key
    return next(c for c in frame.columns if isinstance(c, str) and c.lower() == key.lower())


# -- making a plan -----------------------------------------------------------------------


def check_api_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _API_NAME.match(name):
        raise errors.InputError(
            f"{what} {name!r} is not a Salesforce API name (letters, digits and underscores, "
            f"starting with a letter, e.g. Account or Invoice__c)")
    return name


def describe_object(org: Org, sobject: str) -> dict:
    """The object's describe; an unknown object is an InputError naming close matches."""
    check_api_name(sobject, "object")
    try:
        return org.describe(sobject)
    except errors.NotFoundError:
        pass
    close = close_object_names(org, sobject)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise errors.InputError(f"{org.label} has no object {sobject!r}{hint}")


def close_object_names(org: Org, name: str) -> list[str]:
    """The org's objects whose API name or label is close to ``name`` (describeGlobal);
    none when the org cannot be asked: the suggestion is a courtesy."""
    names = {}
    try:
        for o in org.get_json("sobjects").get("sobjects", []):
            names[o["name"].lower()] = o["name"]
            if o.get("label"):
                names.setdefault(o["label"].lower(), o["name"])
    except errors.SFBulkError:
        return []
    close = difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.6)
    return list(dict.fromkeys(names[c] for c in close))


def close_field_names(describe: dict, name: str) -> list[str]:
    """The object's fields whose API name or label is close to ``name``."""
    names = {}
    for f in describe.get("fields", []):
        names[f["name"].lower()] = f["name"]
        if f.get("label"):
            names.setdefault(f["label"].lower(), f["name"])
    close = difflib.get_close_matches(name.lower(), list(names), n=3, cutoff=0.6)
    return list(dict.fromkeys(names[c] for c in close))


def _key_for(operation: str, external_id: str | None) -> str | None:
    if operation == "upsert":
        if not external_id:
            raise errors.InputError("an upsert needs external_id (an External ID field, or Id)")
        return external_id
    return None if operation == "insert" else "Id"


def _check_key_field(describe: dict, operation: str, key: str | None) -> str | None:
    """The key's API name; an argument error when the object cannot match on it."""
    if key is None:
        return None
    check_api_name(key, "external_id" if operation == "upsert" else "key")
    fields = {f["name"].lower(): f for f in describe["fields"]}
    f = fields.get(key.lower())
    keys = [g["name"] for g in describe["fields"] if g.get("externalId")]
    if f is None:
        raise errors.InputError(f"{describe['name']} has no field {key!r}; its External ID "
                                f"fields: {', '.join(keys) or 'none'} (or Id)")
    if operation == "upsert" and f["name"] != "Id" and not (f.get("externalId") or f.get("idLookup")):
        raise errors.InputError(f"{describe['name']}.{f['name']} is not an External ID field; "
                                f"upsert needs one ({', '.join(keys) or 'none'}) or Id")
    return f["name"]


def _key_ignores_case(describe: dict, key: str | None) -> bool:
    # Salesforce matches custom external ids without case only when the field is unique
    # and case-insensitive; ids always (their 18-character form is case-safe).
    if key is None:
        return False
    f = next(f for f in describe["fields"] if f["name"] == key)
    if f["name"] == "Id" or not f.get("custom"):
        return True
    return bool(f.get("unique")) and not f.get("caseSensitive")


def _parents(org: Org, describe: dict, columns) -> dict[str, dict]:
    """Describes of the objects relationship columns point at (fetched once per Org)."""
    rels = {f["relationshipName"].lower(): f for f in describe["fields"]
            if f.get("relationshipName") and f.get("type") == "reference"}
    out = {}
    for column in columns:
        if not isinstance(column, str) or "." not in column:
            continue
        rel_part = column.partition(".")[0]
        parent_type, _, rel_name = rel_part.rpartition(":")
        lookup = rels.get(rel_name.lower())
        if lookup is None:
            continue
        targets = lookup.get("referenceTo") or []
        parent = parent_type or (targets[0] if len(targets) == 1 else None)
        if parent and parent in targets and _API_NAME.match(parent) and parent not in out:
            try:
                out[parent] = org.describe(parent)
            except errors.NotFoundError:
                pass  # an object this org does not describe: the org judges the column
    return out


def _key_prefixes(org: Org, describe: dict, operation: str, columns) -> dict[str, str] | None:
    """Which object each key prefix belongs to, when the frame writes a lookup field by id
    (an id of another object fails the row); one describeGlobal per Org."""
    if operation in ("delete", "hardDelete"):
        return None
    lookups = {f["name"].lower() for f in describe["fields"] if f.get("type") == "reference"}
    if not any(isinstance(c, str) and c.strip().lower() in lookups for c in columns):
        return None
    try:
        return org.key_prefixes()
    except errors.SFBulkError:
        return None  # the check is a courtesy: the org judges the ids anyway


@dataclass
class Inspection:
    """The plan stage up to its checks: the object, the key, what validation found."""

    describe: dict
    key: str | None
    key_case_insensitive: bool
    checked: validate.Checked
    describe_calls: int


@dataclass
class Described:
    """What a load's checks need from the org, fetched once: the object's describe, the
    key, the parents' describes of relationship columns and the key prefixes. Plain data
    (no Org, no token): it can be shipped to the workers that check a Dask frame's
    partitions (sfbulk_nb.daskload)."""

    describe: dict = field(repr=False)
    operation: str
    key: str | None
    key_case_insensitive: bool
    parents: dict = field(repr=False)
    prefixes: dict | None = field(repr=False)
    describe_calls: int = 0

    def check(self, df: pd.DataFrame, options: LoadOptions) -> validate.Checked:
        """Every problem of ``df`` (no I/O; the org's validation rules are not checked)."""
        return validate.check(df, self.describe, self.operation, self.key, nulls=options.nulls,
                              tz=options.tz, column_delimiter=options.column_delimiter,
                              parents=self.parents,
                              key_case_insensitive=self.key_case_insensitive,
                              key_prefixes=self.prefixes)


def check_arguments(operation: str, options: LoadOptions) -> None:
    if operation not in OPERATIONS:
        raise errors.InputError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    if options.on_invalid not in ON_INVALID:
        raise errors.InputError(f"on_invalid must be one of {', '.join(map(repr, ON_INVALID))}; "
                                f"got {options.on_invalid!r}")


def describe_load(org: Org, columns, sobject: str, operation: str,
                  external_id: str | None = None,
                  options: LoadOptions | None = None) -> Described:
    """Check the load's arguments and fetch the describes its checks need for a frame
    with ``columns``."""
    options = options or LoadOptions()
    check_arguments(operation, options)
    encode._option(options.line_ending, encode.LINE_ENDINGS, "line_ending")
    encode._check_limits(options.max_bytes, options.max_records)
    key = _key_for(operation, external_id)
    calls = org.api_calls
    describe = describe_object(org, sobject)
    key = _check_key_field(describe, operation, key)
    parents = _parents(org, describe, columns)
    case_insensitive = _key_ignores_case(describe, key)
    prefixes = _key_prefixes(org, describe, operation, columns)
    return Described(describe, operation, key, case_insensitive, parents, prefixes,
                     org.api_calls - calls)


def inspect(org: Org, df: pd.DataFrame, sobject: str, operation: str,
            external_id: str | None = None, options: LoadOptions | None = None) -> Inspection:
    """Describe and validate: every problem of ``df`` for the load, nothing encoded."""
    options = options or LoadOptions()
    check_arguments(operation, options)
    if not isinstance(df, pd.DataFrame):
        raise errors.InputError(encode.not_a_frame(df))
    calls = org.api_calls
    described = describe_load(org, df.columns, sobject, operation, external_id, options)
    checked = described.check(df, options)
    if options.rules:
        checked = rules.add_rule_problems(org, described.describe, operation, checked)
    return Inspection(described.describe, described.key, described.key_case_insensitive,
                      checked, org.api_calls - calls)


def make_plan(org: Org, df: pd.DataFrame, sobject: str, operation: str,
              external_id: str | None = None, options: LoadOptions | None = None) -> LoadPlan:
    """Check ``df`` and work out the jobs of a load; raises ValidationError when
    ``options.on_invalid`` says the problems found stop the load."""
    options = options or LoadOptions()
    check_change_options(operation, options)
    found = inspect(org, df, sobject, operation, external_id, options)
    checked = found.checked
    problems = checked.problems
    positions, sent_text, chunks = rows_and_chunks(checked, options, len(df),
                                                   keyed=found.key is not None)
    plan = LoadPlan(org, found.describe["name"], operation, found.key, df, options, problems,
                    positions, sent_text, chunks, found.key_case_insensitive,
                    found.describe_calls, fields=list(checked.describes),
                    key_repeats=checked.key_repeats)
    if plan.looks_up_before_sending:
        plan.lookup()
        plan.hold_back(plan.changes)
    return plan


def rows_and_chunks(checked: validate.Checked, options: LoadOptions, n: int,
                    keyed: bool) -> tuple[np.ndarray, pd.DataFrame, list[Chunk]]:
    """The rows of a checked frame of ``n`` rows that ``options.on_invalid`` lets through
    (positions), their texts as sent, and their CSV chunks. Raises ValidationError when
    the problems stop the load."""
    problems = checked.problems
    positions = np.arange(n)
    if not problems.ok:
        positions = _rows_to_send(problems, checked, options.on_invalid, n, keyed=keyed)
    every = None if len(positions) == n else positions
    texts = checked.texts(every)
    sent_text = checked.text_frame(every, texts)
    # The chunks from the texts a run keeps anyway: each value is rendered once.
    encoding = checked.encoding.rendered(texts, every)
    try:
        chunks = list(encoding.chunks(column_delimiter=options.column_delimiter,
                                      line_ending=options.line_ending, max_bytes=options.max_bytes,
                                      max_records=options.max_records)) if len(positions) else []
    except encode.EncodeError as e:  # a header name no CSV can carry (on_invalid="send")
        raise errors.ValidationError(problems, note=f"the frame cannot be written as CSV: {e}") from None
    return positions, sent_text, chunks


def check_change_options(operation: str, options: LoadOptions) -> None:
    """only_changed and if_unmodified_since: what they take, and the loads they fit."""
    for name in ("only_changed", "undoable"):
        if not isinstance(getattr(options, name), (bool, np.bool_)):
            # only_changed="no" is truthy: a typo must not change what is sent.
            raise errors.InputError(f"{name} must be True or False, not "
                                    f"{getattr(options, name)!r}")
    if options.undoable and operation in ("delete", "hardDelete"):
        raise errors.InputError("a delete cannot be undone with the Bulk API (it has no "
                                "undelete): undoable=True is for insert, update and upsert; "
                                "deleted records stay in the Recycle Bin for 15 days")
    if options.undoable and operation == "insert":
        options.undoable = False  # every insert can be undone: its records are deleted
    wanted = [n for n, v in (("only_changed", options.only_changed),
                             ("undoable", options.undoable),
                             ("if_unmodified_since", options.if_unmodified_since is not None))
              if v]
    if wanted and operation not in ("upsert", "update"):
        raise errors.InputError(f"{' and '.join(wanted)} compare rows with the records they "
                                f"change: for update and upsert, not {operation}")
    if options.if_unmodified_since is not None:
        options.if_unmodified_since = changes.parse_since(options.if_unmodified_since,
                                                          "if_unmodified_since")


def _rows_to_send(problems: Problems, checked: validate.Checked, on_invalid: str,
                  n: int, keyed: bool) -> np.ndarray:
    if on_invalid == "raise":
        raise errors.ValidationError(problems)
    if checked.encoding is None:
        raise errors.ValidationError(problems, note="a column cannot be sent at all, whatever "
                                     "on_invalid says: fix it first")
    if keyed and checked.key_column is None:
        # Without its key no row can be matched to a record, nor its result to the row.
        raise errors.ValidationError(problems, note="the frame has no key column, whatever "
                                     "on_invalid says: fix it first")
    if on_invalid == "send":
        if len(checked.unsendable):
            raise errors.ValidationError(
                checked.unsendable,
                note="these cells have no CSV form, so on_invalid='send' cannot send them")
        return np.arange(n)
    if problems.blocks_every_row:
        raise errors.ValidationError(problems, note="a problem of a whole column blocks every "
                                     "row, so on_invalid='skip' would send nothing")
    invalid = problems.invalid_positions()
    keep = np.ones(n, bool)
    keep[invalid] = False
    return np.flatnonzero(keep)

