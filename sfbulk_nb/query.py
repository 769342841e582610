"""query_df: a Bulk API 2.0 query job into a DataFrame typed from the object's describe.

Pages are streamed (`maxRecords` per page, `Sforce-Locator` to the next), each parsed
straight into a typed Arrow table and poured into the frame at once: numbers, booleans and
datetimes into NumPy arrays sized for the whole result, text and dates kept as the pages'
Arrow chunks (which pandas wraps without a copy). No column is ever held twice, so peak
memory stays near the final frame plus one page.

Types: datetime -> tz-aware UTC datetime64, date -> date (Arrow date32), int -> Int64,
double/currency/percent -> float64, boolean -> nullable boolean, everything else ->
string. An empty CSV value is null; Salesforce has no empty strings.
"""
from __future__ import annotations

import functools
import numbers
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from . import errors, jobs, memory
from .org import Org, org_or_default
from .plan import close_field_names, close_object_names
from .progress import (JOB_CREATED, JOB_UPDATED, RUN_FINISHED, RUN_STARTED, ProgressEvent, RunInfo,
                       reporter_for)

# A query's rows are only useful once the job is done, and the caller is waiting for them:
# poll on a short cap (at most 2 s late) rather than ingest's 10 s.
QUERY_BACKOFF = jobs.Backoff(start=0.5, factor=1.3, cap=2.0)
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^",
               "BACKQUOTE": "`"}
_NUMBER = {"double", "currency", "percent"}
_INTEGER = {"int", "long"}


DTYPE_BACKENDS = ("numpy_nullable", "pyarrow")


@pd.api.extensions.register_dataframe_accessor("queried_at")
class _QueriedAt:
    """``df.queried_at``: when the query_df that made ``df`` (or the frame it was derived
    from: pandas carries ``attrs`` along) created its query job, UTC; so that
    ``upsert_df(..., if_unmodified_since=df.queried_at)`` reads as it means."""

    def __new__(cls, frame: pd.DataFrame):
        found = frame.attrs.get("queried_at")
        if found is None:
            raise AttributeError("queried_at: this frame does not come from sfb.query_df, so "
                                 "when its rows were read is not known")
        return found


@memory.lean()
def query_df(soql: str, org: Org | None = None, *, include_deleted: bool = False,
             page_size: int | None = None, progress: Any = "auto",
             timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep,
             dtype_backend: str = "numpy_nullable") -> pd.DataFrame:
    """Run `soql` as a Bulk API 2.0 query job and return every row as a typed DataFrame.

    include_deleted: queryAll (deleted and archived records too). page_size: rows per
    results page (Salesforce's default when None). Columns are named as in the SOQL
    (`Account.Name`). The frame's ``attrs["queried_at"]`` is when the query job was created
    (UTC): pass the frame, or that time, as ``if_unmodified_since=`` when the edited rows
    go back, and rows someone changed in the org since are not overwritten.

    dtype_backend, as pandas' readers take it: "numpy_nullable" (the default: Int64,
    float64, boolean, datetime64[ms, UTC], string) or "pyarrow" (every column an
    ArrowDtype: int64, double, bool, timestamp[ms, UTC], date32, string with 4-byte
    offsets -- the smaller frame, for users who want Arrow all the way)."""
    _check_soql(soql)
    if dtype_backend not in DTYPE_BACKENDS:
        raise errors.InputError(f"dtype_backend must be one of {', '.join(map(repr, DTYPE_BACKENDS))}"
                                f", not {dtype_backend!r}")
    org = org_or_default(org)
    jobs.check_timeout(timeout)
    if page_size is not None and (not isinstance(page_size, numbers.Integral)
                                  or isinstance(page_size, bool) or page_size < 1):
        raise errors.InputError(f"page_size must be a whole number of rows (1 or more) or None "
                                f"(Salesforce's default), not {page_size!r}")
    report = reporter_for(progress)
    sobject, rows = "?", 0
    calls = org.api_calls

    def emit(kind: str, **fields: Any) -> None:
        nonlocal report
        if report is not None:
            info = RunInfo("query", "query", sobject, org.label, org.kind, rows=rows)
            try:
                report(ProgressEvent(kind, info, api_calls=org.api_calls - calls,
                                     api_usage=org.api_usage, **fields))
            except Exception:  # a broken display must never break the query
                report = None

    # Taken before the job exists: the job reads the org at some moment after this, so a
    # record modified later than it was certainly modified after what the frame shows.
    queried_at = pd.Timestamp.now(tz="UTC")
    try:
        info = jobs.create_query_job(org, soql, include_deleted=include_deleted)
    except errors.RequestError as e:
        raise _with_hint(org, soql, e) from None
    sobject = info.raw.get("object", "?")
    emit(RUN_STARTED)
    emit(JOB_CREATED, chunk=0, job_id=info.id, state=info.state)
    info = jobs.wait(org, info.id, timeout=timeout, clock=clock, sleep=sleep,
                     poll=jobs.get_query_job, backoff=QUERY_BACKOFF,
                     on_update=lambda i: emit(JOB_UPDATED, chunk=0, job_id=i.id, state=i.state,
                                              processed=i.processed, records=i.processed),
                     just_closed=True)  # created a moment ago: not done yet
    if not info.done:
        raise errors.SFBulkError(f"query job {info.id} still {info.state} after {timeout} s; "
                                 "raise timeout= (the job keeps running on the server)")
    if info.state != "JobComplete":
        raise errors.JobFailedError(
            f"query job {info.id} ended {info.state}: {info.error_message or 'no message'}",
            job_id=info.id, state=info.state, error_message=info.error_message)
    delimiter = _DELIMITERS[info.raw.get("columnDelimiter", "COMMA")]
    frame: _Frame | None = None
    locator = None
    while True:
        page = jobs.query_results_page(org, info.id, locator=locator, max_records=page_size)
        names = _header(page.data, delimiter)
        if frame is None:
            types = _column_types(org, sobject, names)
            frame = _Frame(types, expected_rows=info.processed, backend=dtype_backend)
        if page.records:
            frame.add(_typed_table(page.data, names, frame.types, delimiter,
                                   backend=dtype_backend))
        rows += page.records
        locator = page.locator
        page = None  # the page's bytes go before the next one arrives
        if locator is None:
            break
    emit(RUN_FINISHED, message=f"{rows:,} rows")
    out = frame.to_pandas() if frame is not None else pd.DataFrame()
    out.attrs["queried_at"] = queried_at
    return out


@dataclass(frozen=True)
class QueryFile:
    """What query_to_file wrote: where, how many rows, when the query ran."""

    path: Path
    rows: int
    columns: tuple[str, ...]
    queried_at: pd.Timestamp
    api_calls: int

    def __repr__(self) -> str:
        return (f"<QueryFile {self.path}: {self.rows:,} rows x {len(self.columns)} columns, "
                f"queried at {self.queried_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"{self.api_calls:,} API calls>")


@memory.lean()
def query_to_file(soql: str, path: str | Path, org: Org | None = None, *,
                  include_deleted: bool = False, page_size: int | None = None,
                  timeout: float | None = None) -> QueryFile:
    """Run ``soql`` as a Bulk API 2.0 query job and stream its rows to ``path``, a page at a
    time, whatever the size: ``.csv`` gets the org's CSV as it is (one header line, UTF-8,
    LF), ``.parquet`` columns typed from the describe (as query_df's pyarrow backend).
    Memory stays at about one results page. The file is written beside its final name and
    renamed at the end, so a failed query leaves no half file under that name."""
    import pyarrow.parquet as pq

    _check_soql(soql)
    org = org_or_default(org)
    jobs.check_timeout(timeout)
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".csv", ".parquet"):
        raise errors.InputError(f"{path}: write .csv or .parquet (say which by the name's "
                                "extension)")
    if not path.parent.is_dir():
        raise errors.InputError(f"{path}: the directory {path.parent} does not exist")
    calls = org.api_calls
    queried_at = pd.Timestamp.now(tz="UTC")
    try:
        info = jobs.create_query_job(org, soql, include_deleted=include_deleted)
    except errors.RequestError as e:
        raise _with_hint(org, soql, e) from None
    info = jobs.wait(org, info.id, timeout=timeout, poll=jobs.get_query_job,
                     backoff=QUERY_BACKOFF, just_closed=True)
    if not info.done:
        raise errors.SFBulkError(f"query job {info.id} still {info.state} after {timeout} s; "
                                 "raise timeout= (the job keeps running on the server)")
    if info.state != "JobComplete":
        raise errors.JobFailedError(
            f"query job {info.id} ended {info.state}: {info.error_message or 'no message'}",
            job_id=info.id, state=info.state, error_message=info.error_message)
    sobject = info.raw.get("object", "?")
    delimiter = _DELIMITERS[info.raw.get("columnDelimiter", "COMMA")]
    partial = path.with_name(f".{path.name}.part")
    rows, names, types, locator, writer = 0, None, None, None, None
    try:
        with open(partial, "wb") as out:
            while True:
                page = jobs.query_results_page(org, info.id, locator=locator,
                                               max_records=page_size)
                if names is None:
                    names = _header(page.data, delimiter)
                    types = _column_types(org, sobject, names)
                if kind == ".csv":
                    data = page.data
                    if rows:  # the header once: later pages start with it too
                        end = data.find(b"\n")
                        data = data[end + 1:] if end >= 0 else b""
                    out.write(data)
                elif page.records:
                    table = _typed_table(page.data, names, types, delimiter, backend="pyarrow")
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema)
                    writer.write_table(table)
                rows += page.records
                locator = page.locator
                page = None
                if locator is None:
                    break
            if kind == ".parquet":
                if writer is None:  # no rows: an empty file with the columns, typed
                    schema = pa.schema([(n, _arrow_type(types.get(n, "string"), "pyarrow"))
                                        for n in names or []])
                    writer = pq.ParquetWriter(out, schema)
                writer.close()
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return QueryFile(path, rows, tuple(names or ()), queried_at, org.api_calls - calls)


def query_text(soql: str, org: Org, *, timeout: float | None = None) -> pa.Table:
    """Every row of ``soql`` as texts (large_string, null for no value), as the org wrote
    them: for code that compares values itself (changes.py), where typed columns would
    only be turned back into text. No progress display."""
    try:
        info = jobs.create_query_job(org, soql)
    except errors.RequestError as e:
        raise _with_hint(org, soql, e) from None
    info = jobs.wait(org, info.id, timeout=timeout, poll=jobs.get_query_job,
                     backoff=QUERY_BACKOFF, just_closed=True)
    if info.state != "JobComplete":
        raise errors.JobFailedError(
            f"query job {info.id} ended {info.state}: {info.error_message or 'no message'}",
            job_id=info.id, state=info.state, error_message=info.error_message)
    delimiter = _DELIMITERS[info.raw.get("columnDelimiter", "COMMA")]
    tables, names, locator = [], None, None
    while True:
        page = jobs.query_results_page(org, info.id, locator=locator)
        names = names or _header(page.data, delimiter)
        if page.records:
            tables.append(_typed_table(page.data, names, {}, delimiter))
        locator = page.locator
        if locator is None:
            break
    if not tables:
        return pa.table({n: pa.array([], pa.large_string()) for n in names or []})
    return pa.concat_tables(tables)


_EXAMPLE = "SELECT Id, Name FROM Account"
_AGGREGATE = re.compile(r"\b(?:COUNT|COUNT_DISTINCT|SUM|AVG|MIN|MAX)\s*\(|\bGROUP\s+BY\b", re.I)
_SUBQUERY = re.compile(r"\(\s*SELECT\b", re.I)


def _check_soql(soql: Any) -> None:
    if not isinstance(soql, str):
        raise errors.InputError(f"soql must be a SOQL string such as {_EXAMPLE!r}, not "
                                f"{type(soql).__name__}")
    if not soql.strip():
        raise errors.InputError(f"the SOQL is empty: give a query such as {_EXAMPLE!r}")


def _with_hint(org: Org, soql: str, error: errors.RequestError) -> errors.RequestError:
    """The org's refusal of a query, with what to do about it (Salesforce's own message
    names the problem, rarely the way out). Same class and attributes."""
    hint = _soql_hint(org, soql, str(error)) if error.status == 400 else None
    if hint is None:
        return error
    return type(error)(f"{error}\n{hint}", status=error.status, error_code=error.error_code,
                       method=error.method, path=error.path, retry_after=error.retry_after)


def _soql_hint(org: Org, soql: str, message: str) -> str | None:
    if _AGGREGATE.search(soql):
        return ("Bulk API 2.0 query jobs run no aggregate queries (COUNT(), SUM(), GROUP BY): "
                "select the rows and count or group them in pandas, e.g. "
                "len(query_df('SELECT Id FROM Account'))")
    sub = _SUBQUERY.search(soql)
    # Only a subquery in the SELECT list: a semi-join in WHERE (Id IN (SELECT ...)) runs.
    if sub and not re.search(r"\bFROM\b", soql[:sub.start()], re.I):
        return ("Bulk API 2.0 query jobs run no parent-to-child subqueries: query the child "
                "object and reach the parent through its relationship, e.g. "
                "SELECT Id, Account.Name FROM Contact")
    if soql.rstrip().endswith(";"):
        return "SOQL takes no ';' at the end: drop it"
    field = re.search(r"No such column '([^']+)' on entity '([^']+)'", message)
    if field:
        try:
            close = close_field_names(org.describe(field[2]), field[1])
        except errors.SFBulkError:
            close = []
        if close:
            return f"did you mean {', '.join(map(repr, close))}?"
        return f"org.describe({field[2]!r})['fields'] lists the fields of {field[2]}"
    sobject = re.search(r"sObject type '([^']+)' is not supported", message)
    if sobject:
        close = close_object_names(org, sobject[1])
        if close:
            return f"did you mean {', '.join(map(repr, close))}?"
        return "org.request('GET', 'sobjects').json() lists the org's objects"
    return (f"check the SOQL's form: SELECT field, ... FROM Object [WHERE ...] [ORDER BY ...] "
            f"[LIMIT n], e.g. {_EXAMPLE!r}")


def _header(data: bytes | bytearray, delimiter: str) -> list[str]:
    # Header names are field paths: never a delimiter or quote inside, so a split is exact.
    end = data.find(b"\n")
    line = (data if end < 0 else data[:end]).rstrip(b"\r").decode("utf-8-sig")
    if not line.strip():
        return []
    return [name.strip('"') for name in line.split(delimiter)]


def _column_types(org: Org, sobject: str, names: list[str]) -> dict[str, str]:
    """Each result column's describe type, following relationship paths (`Account.Name`)."""
    out = {}
    for name in names:
        out[name] = _path_type(org, sobject, name.split("."))
    return out


def _path_type(org: Org, sobject: str, parts: list[str]) -> str:
    try:
        describe = org.describe(sobject)
    except errors.NotFoundError:
        return "string"
    fields = describe["fields"]
    if len(parts) == 1:
        f = next((f for f in fields if f["name"].lower() == parts[0].lower()), None)
        return f["type"] if f else "string"
    rel = next((f for f in fields if (f.get("relationshipName") or "").lower()
                == parts[0].lower()), None)
    if rel is None or not rel.get("referenceTo"):
        return "string"
    return _path_type(org, rel["referenceTo"][0], parts[1:])


def _typed_table(data: bytes | bytearray, names: list[str], types: dict[str, str],
                 delimiter: str, backend: str = "numpy_nullable") -> pa.Table:
    """One results page, each column parsed straight to its final type (no text copy)."""
    column_types = {n: _arrow_type(types.get(n, "string"), backend) for n in names}
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),  # no copy of the page
            # One block per page (up to 16 MB): fewer, larger buffers to keep, and a page
            # is a few MB, so threads would cost more than they bring.
            read_options=pacsv.ReadOptions(use_threads=False,
                                           block_size=min(len(data) + 1, _MAX_BLOCK)),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, null_values=[""], true_values=["true"],
                false_values=["false"], strings_can_be_null=True,
                quoted_strings_can_be_null=True),
            memory_pool=_memory_pool())
    except pa.ArrowInvalid as e:
        raise errors.SFBulkError(f"a results page does not fit the describe types "
                                 f"{column_types}: {e}") from None


class _Frame:
    """The result frame, filled page by page so that no column is ever held twice.

    Integer, double, boolean and datetime values are copied out of each page's Arrow table
    into NumPy arrays sized once for the whole result (the job's record count), and the
    page's Arrow buffers go with the page; text and date columns keep the pages' Arrow
    chunks, which pandas wraps without a copy."""

    def __init__(self, types: dict[str, str], expected_rows: int = 0,
                 backend: str = "numpy_nullable"):
        self.types = types
        self.rows = 0
        self.columns = {name: _column(t, expected_rows, backend) for name, t in types.items()}

    def add(self, table: pa.Table) -> None:
        for name, column in zip(table.column_names, table.columns):
            self.columns[name].add(column, self.rows)
        self.rows += table.num_rows

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame({name: column.finish(self.rows)
                             for name, column in self.columns.items()}, copy=False)


class _ArrowColumn:
    """Text (pandas' Arrow-backed string) or date (ArrowDtype date32): the pages' chunks."""

    def __init__(self, arrow_type: pa.DataType, dtype: Any):
        self.type, self.dtype = arrow_type, dtype
        self.chunks: list[pa.Array] = []

    def add(self, column: pa.ChunkedArray, start: int) -> None:
        self.chunks.extend(column.chunks)

    def finish(self, rows: int) -> Any:
        return self.dtype.__from_arrow__(pa.chunked_array(self.chunks, self.type))


class _NumpyColumn:
    """Int64, float64, nullable boolean or UTC datetime64[ms]: one NumPy array for the whole
    result (plus a null mask for Int64 and boolean; NaN / NaT mark the others' nulls),
    grown only if the pages hold more rows than the job counted."""

    def __init__(self, kind: str, rows: int):
        self.kind = kind
        self.values = np.empty(rows, dtype=np.bool_ if kind == "boolean" else _NUMPY[kind])
        self.mask = np.empty(rows, dtype=np.bool_) if kind in ("int", "boolean") else None

    def add(self, column: pa.ChunkedArray, start: int) -> None:
        end = start + len(column)
        if end > len(self.values):
            self.values = _grown(self.values, end)
            self.mask = None if self.mask is None else _grown(self.mask, end)
        for chunk in column.chunks:
            # straight from the Arrow buffers: no Arrow allocation, no pandas conversion
            n, offset = len(chunk), chunk.offset
            if n == 0:
                continue
            validity, data = chunk.buffers()
            stop = start + n
            if self.kind == "boolean":
                self.values[start:stop] = _bits(data, offset, n)
            else:
                self.values[start:stop] = np.frombuffer(data, dtype=self.values.dtype,
                                                        count=n, offset=offset * 8)
            nulls = ~_bits(validity, offset, n) if chunk.null_count else None
            if self.mask is not None:
                self.mask[start:stop] = False if nulls is None else nulls
            elif nulls is not None:
                self.values[start:stop][nulls] = _NULL[self.kind]
            start = stop

    def finish(self, rows: int) -> Any:
        if len(self.values) != rows:  # the job's count was off: no oversized arrays kept
            self.values = self.values[:rows].copy()
            self.mask = None if self.mask is None else self.mask[:rows].copy()
        values, mask = self.values, self.mask
        if self.kind == "int":
            return pd.arrays.IntegerArray(values, mask)
        if self.kind == "boolean":
            return pd.arrays.BooleanArray(values, mask)
        if self.kind == "datetime":  # epoch milliseconds, wrapped without a copy
            return pd.array(values, dtype=pd.DatetimeTZDtype("ms", "UTC"), copy=False)
        return values


def _column(sf_type: str, rows: int, backend: str = "numpy_nullable") -> _ArrowColumn | _NumpyColumn:
    arrow_type = _arrow_type(sf_type, backend)
    if backend == "pyarrow":  # the pages' Arrow chunks, whatever the type: no copy at all
        return _ArrowColumn(arrow_type, pd.ArrowDtype(arrow_type))
    if arrow_type == pa.large_string():
        return _ArrowColumn(arrow_type, pd.StringDtype("pyarrow"))
    if arrow_type == pa.date32():
        return _ArrowColumn(arrow_type, pd.ArrowDtype(arrow_type))
    kind = "int" if sf_type in _INTEGER else "float" if sf_type in _NUMBER else sf_type
    return _NumpyColumn(kind, rows)


def _bits(bitmap: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """n booleans from an Arrow bitmap (least significant bit first), from bit `offset`."""
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=offset + n,
                         bitorder="little")
    return bits[offset:].view(np.bool_)


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    out = np.empty(max(size, 2 * len(array)), dtype=array.dtype)
    out[:len(array)] = array
    return out


@functools.cache
def _memory_pool() -> pa.MemoryPool | None:
    """Arrow's jemalloc pool, for the pages' parsing and so the frame's text and dates: it
    gives the freed pages' memory back to the next page far better than Arrow's default
    pool, mimalloc (1,000,000 rows: peak 140 vs 158 MB over the start for a 111 MB frame),
    and leaves the user's default pool alone."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return None  # the user chose Arrow's pool: theirs, then
    try:
        return pa.jemalloc_memory_pool()
    except (NotImplementedError, pa.ArrowException):
        return None  # a pyarrow built without jemalloc (Windows): the default pool


_MAX_BLOCK = 16 << 20
_NUMPY = {"int": np.int64, "float": np.float64, "datetime": np.int64}
_NULL = {"float": np.nan, "datetime": np.iinfo(np.int64).min}  # NaN, NaT


def _arrow_type(sf_type: str, backend: str = "numpy_nullable") -> pa.DataType:
    if sf_type in _INTEGER:
        return pa.int64()
    if sf_type in _NUMBER:
        return pa.float64()
    # pandas' own string dtype wants 8-byte offsets (large_string); an ArrowDtype column
    # keeps 4-byte ones, 4 bytes a value less (a results page is far below 2 GB).
    text = pa.string() if backend == "pyarrow" else pa.large_string()
    return {"boolean": pa.bool_(), "date": pa.date32(),
            "datetime": pa.timestamp("ms", tz="UTC")}.get(sf_type, text)
