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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import encode, errors, results, rules, validate
from .encode import Chunk
from .org import Org
from .problems import Problems, summary_html
from .progress import plural

OPERATIONS = ("insert", "upsert", "update", "delete", "hardDelete")
ON_INVALID = ("raise", "skip", "send")
# An API name: what Salesforce allows for objects and fields (custom ones end in __c, __r,
# __mdt...). Checked before a name goes into a URL: "Account/../Contact" must not.
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# SOQL reads at most 100,000 characters, and a REST query's URL is best kept under 16 KB.
_LOOKUP_URL_BUDGET = 12_000


@dataclass
class LoadOptions:
    nulls: Any = "keep"
    tz: str | None = None
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    max_bytes: int = 100_000_000
    max_records: int | None = None
    on_invalid: str = "raise"
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
        return np.flatnonzero(~keep)

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
        record). Runs REST queries in batches of keys; `lookup_calls` says how many
        API calls it took. Kept as `existing`."""
        if self.operation == "insert":
            actions = pd.DataFrame({"action": "create", "Id": pd.NA},
                                   index=self.df.index[self.positions])
            self.existing, self.lookup_calls = actions, 0
            return actions
        before = self.org.api_calls
        keys = self.sent_text[_column_of(self.sent_text, self.key)].astype(str)
        normalize = results._normalizer(self.operation, self.key, self.key_case_insensitive)

        def normal(values: list[str]) -> list[str]:
            arr = pa.array(values, pa.large_string())
            return (normalize(arr) if normalize is not None else arr).to_pylist()

        found: dict[str, str] = {}
        for batch in _key_batches(sorted(set(keys) - {"", "#N/A"}), self.sobject, self.key):
            records = list(_query_all(self.org, batch))
            matched = normal([str(r.get(self.key) or "") for r in records])
            found.update(zip(matched, (r["Id"] for r in records)))
        ids = pd.Series(normal(keys.tolist()), index=keys.index).map(found)
        missing = "missing" if self.operation != "upsert" else "create"
        action = np.where(ids.notna(), "update", missing)
        if self.operation in ("delete", "hardDelete"):
            action = np.where(ids.notna(), "delete", "missing")
        self.existing = pd.DataFrame({"action": action, "Id": ids.astype("string")},
                                     index=self.sent_text.index)
        self.lookup_calls = self.org.api_calls - before
        return self.existing

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


def _column_of(frame: pd.DataFrame, key: str) -> Any:
    """The frame's column that holds ``key`` (same name, else the one ignoring case)."""
    if key in frame.columns:
        return key
    return next(c for c in frame.columns if isinstance(c, str) and c.lower() == key.lower())


def _key_batches(keys: list[str], sobject: str, key: str):
    """SOQL statements selecting the records of ``keys``, each within the URL budget."""
    fields = "Id" if key == "Id" else f"Id, {key}"
    head = f"SELECT {fields} FROM {sobject} WHERE {key} IN ("
    batch: list[str] = []
    size = len(head)
    for k in keys:
        literal = "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if batch and size + len(literal) * 3 > _LOOKUP_URL_BUDGET:  # URL encoding grows ~3x
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


def inspect(org: Org, df: pd.DataFrame, sobject: str, operation: str,
            external_id: str | None = None, options: LoadOptions | None = None) -> Inspection:
    """Describe and validate: every problem of ``df`` for the load, nothing encoded."""
    options = options or LoadOptions()
    if operation not in OPERATIONS:
        raise errors.InputError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    if options.on_invalid not in ON_INVALID:
        raise errors.InputError(f"on_invalid must be one of {', '.join(map(repr, ON_INVALID))}; "
                                f"got {options.on_invalid!r}")
    if not isinstance(df, pd.DataFrame):
        raise errors.InputError(encode.not_a_frame(df))
    encode._option(options.line_ending, encode.LINE_ENDINGS, "line_ending")
    encode._check_limits(options.max_bytes, options.max_records)
    key = _key_for(operation, external_id)
    calls = org.api_calls
    describe = describe_object(org, sobject)
    key = _check_key_field(describe, operation, key)
    parents = _parents(org, describe, df.columns)
    case_insensitive = _key_ignores_case(describe, key)
    prefixes = _key_prefixes(org, describe, operation, df.columns)
    checked = validate.check(df, describe, operation, key, nulls=options.nulls, tz=options.tz,
                             column_delimiter=options.column_delimiter, parents=parents,
                             key_case_insensitive=case_insensitive, key_prefixes=prefixes)
    if options.rules:
        checked = rules.add_rule_problems(org, describe, operation, checked)
    return Inspection(describe, key, case_insensitive, checked, org.api_calls - calls)


def make_plan(org: Org, df: pd.DataFrame, sobject: str, operation: str,
              external_id: str | None = None, options: LoadOptions | None = None) -> LoadPlan:
    """Check ``df`` and work out the jobs of a load; raises ValidationError when
    ``options.on_invalid`` says the problems found stop the load."""
    options = options or LoadOptions()
    found = inspect(org, df, sobject, operation, external_id, options)
    checked = found.checked
    problems = checked.problems
    positions = np.arange(len(df))
    if not problems.ok:
        positions = _rows_to_send(problems, checked, options.on_invalid, len(df),
                                  keyed=found.key is not None)
    encoding = checked.encoding
    if len(positions) < len(df):
        encoding = encoding.select(positions)
        sent_text = checked.text_frame(positions)
    else:
        sent_text = checked.text_frame()
    try:
        chunks = list(encoding.chunks(column_delimiter=options.column_delimiter,
                                      line_ending=options.line_ending, max_bytes=options.max_bytes,
                                      max_records=options.max_records)) if len(positions) else []
    except encode.EncodeError as e:  # a header name no CSV can carry (on_invalid="send")
        raise errors.ValidationError(problems, note=f"the frame cannot be written as CSV: {e}") from None
    return LoadPlan(org, found.describe["name"], operation, found.key, df, options, problems,
                    positions, sent_text, chunks, found.key_case_insensitive, found.describe_calls)


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

