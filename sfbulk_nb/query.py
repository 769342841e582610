"""query_df: a Bulk API 2.0 query job into a DataFrame typed from the object's describe.

Pages are streamed (`maxRecords` per page, `Sforce-Locator` to the next), each parsed
straight into a typed Arrow table; the tables are concatenated once at the end, so peak
memory stays near the final frame plus one page.

Types: datetime -> tz-aware UTC datetime64, date -> date (Arrow date32), int -> Int64,
double/currency/percent -> float64, boolean -> nullable boolean, everything else ->
string. An empty CSV value is null; Salesforce has no empty strings.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from . import errors, jobs
from .org import Org, default_org
from .progress import (JOB_CREATED, JOB_UPDATED, RUN_FINISHED, RUN_STARTED, ProgressEvent,
                       reporter_for)

# A query's rows are only useful once the job is done, and the caller is waiting for them:
# poll on a short cap (at most 2 s late) rather than ingest's 10 s.
QUERY_BACKOFF = jobs.Backoff(start=0.5, factor=1.3, cap=2.0)
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "SEMICOLON": ";", "PIPE": "|", "CARET": "^",
               "BACKQUOTE": "`"}
_NUMBER = {"double", "currency", "percent"}
_INTEGER = {"int", "long"}


def query_df(soql: str, org: Org | None = None, *, include_deleted: bool = False,
             page_size: int | None = None, progress: Any = "auto",
             timeout: float | None = None, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> pd.DataFrame:
    """Run `soql` as a Bulk API 2.0 query job and return every row as a typed DataFrame.

    include_deleted: queryAll (deleted and archived records too). page_size: rows per
    results page (Salesforce's default when None). Columns are named as in the SOQL
    (`Account.Name`)."""
    org = org or default_org()
    run = _QueryRun(org)
    report = reporter_for(progress)

    def emit(kind: str, **fields: Any) -> None:
        nonlocal report
        if report is not None:
            try:
                report(ProgressEvent(kind, run, **fields))
            except Exception:  # a broken display must never break the query
                report = None

    info = jobs.create_query_job(org, soql, include_deleted=include_deleted)
    run.sobject = info.raw.get("object", "?")
    emit(RUN_STARTED)
    emit(JOB_CREATED, chunk=0, job_id=info.id, state=info.state)
    info = jobs.wait(org, info.id, timeout=timeout, clock=clock, sleep=sleep,
                     poll=jobs.get_query_job, backoff=QUERY_BACKOFF,
                     on_update=lambda i: emit(JOB_UPDATED, chunk=0, job_id=i.id, state=i.state,
                                              processed=i.processed, records=i.processed))
    if not info.done:
        raise errors.SFBulkError(f"query job {info.id} still {info.state} after {timeout} s; "
                                 "raise timeout= (the job keeps running on the server)")
    if info.state != "JobComplete":
        raise errors.JobFailedError(
            f"query job {info.id} ended {info.state}: {info.error_message or 'no message'}",
            job_id=info.id, state=info.state, error_message=info.error_message)
    delimiter = _DELIMITERS[info.raw.get("columnDelimiter", "COMMA")]
    tables: list[pa.Table] = []
    types: dict[str, str] | None = None
    locator = None
    while True:
        page = jobs.query_results_page(org, info.id, locator=locator, max_records=page_size)
        names = _header(page.data, delimiter)
        if types is None:
            types = _column_types(org, run.sobject, names)
        if page.records:
            tables.append(_typed_table(page.data, names, types, delimiter))
        run.rows += page.records
        locator = page.locator
        if locator is None:
            break
    emit(RUN_FINISHED, message=f"{run.rows:,} rows")
    return _to_pandas(tables, types or {})


@dataclass
class _QueryRun:
    """What the text progress needs to know about a query."""

    org: Org
    sobject: str = "?"
    operation: str = "query"
    rows: int = 0
    job_count: int = 1


def _header(data: bytes, delimiter: str) -> list[str]:
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


def _typed_table(data: bytes, names: list[str], types: dict[str, str],
                 delimiter: str) -> pa.Table:
    """One results page, each column parsed straight to its final type (no text copy)."""
    column_types = {n: _arrow_type(types.get(n, "string")) for n in names}
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            # a page is a few MB: threads cost more than they bring
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types, null_values=[""], true_values=["true"],
                false_values=["false"], strings_can_be_null=True,
                quoted_strings_can_be_null=True))
    except pa.ArrowInvalid as e:
        raise errors.SFBulkError(f"a results page does not fit the describe types "
                                 f"{column_types}: {e}") from None


_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
                 pa.large_string(): pd.StringDtype("pyarrow"),
                 pa.date32(): pd.ArrowDtype(pa.date32())}


def _to_pandas(tables: list[pa.Table], types: dict[str, str]) -> pd.DataFrame:
    if not tables:
        schema = pa.schema([(name, _arrow_type(t)) for name, t in types.items()])
        tables = [schema.empty_table()]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    tables.clear()  # the caller's pages too: self_destruct can then free them as it converts
    return table.to_pandas(types_mapper=_PANDAS_TYPES.get, self_destruct=True)


def _arrow_type(sf_type: str) -> pa.DataType:
    if sf_type in _INTEGER:
        return pa.int64()
    if sf_type in _NUMBER:
        return pa.float64()
    return {"boolean": pa.bool_(), "date": pa.date32(),
            "datetime": pa.timestamp("ms", tz="UTC")}.get(sf_type, pa.large_string())
