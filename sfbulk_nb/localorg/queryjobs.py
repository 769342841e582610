"""Bulk API 2.0 query jobs: creation, the state machine, processing and paged CSV results.

    create -> UploadComplete -> (worker) InProgress -> JobComplete | Failed
    PATCH Aborted from UploadComplete or InProgress; DELETE once JobComplete, Failed or Aborted

The runner's worker (runner.py) runs the job (`QueryJobs.process`, registered for the kind
"query", from the start again after a restart). It
reads the query's rows in chunks of CHUNK_ROWS (PACED_STEP when the org is paced), renders
each chunk to CSV and commits it together with the job's counter, so neither the job nor a
million-row result is ever held in memory whole. A stored chunk (job_results kind
"queryResults", seq = number of its first row) comes with the byte offsets of its rows
(kind "queryResultIndex"), so a page of any size at any offset is cut from the chunks without
parsing CSV, and is streamed to the client chunk by chunk. Rows keep the query's order, so
every read of a locator returns the same rows.

Choices where Salesforce's behaviour is unrecorded (protocol notes 5.3, 5.4; ours unless
marked):

- Values are rendered as Salesforce's CSV forms: booleans `true`/`false`, numbers in plain
  decimal notation (never an exponent: `1500.0`, `0.25`; whole-number fields `42`), dates
  `2024-01-31`, datetimes `2024-01-31T10:00:00.000Z`, times `10:00:00.000Z`, ids in 18
  characters. Every value is quoted, and so is every header name (`"Id","Account.Name"`).
- A null is an empty, unquoted field (`"a",,"c"`); `""` would be an empty string, which
  Salesforce never stores, so a reader can tell the two apart. The one exception: a row of a
  single column whose value is null is written `""`, because an empty line is skipped by
  csv.DictReader and pandas and the row would be lost.
- A page holds DEFAULT_PAGE_SIZE (50,000) rows unless `maxRecords` says otherwise (the
  value of Salesforce's examples and simple-salesforce's default). Without `maxRecords` a
  page also stops before its rows pass DEFAULT_PAGE_BYTES, so wide rows give pages of fewer
  rows, as Salesforce's do (it documents that the server picks the page size when
  maxRecords is not given; its actual rule and threshold are UNCONFIRMED: 10 MB of CSV is
  ours). A page holds at least one row, however long; rows are never split. Locators are the row
  offset of the page, base64-encoded without padding (`MTAwMDA` is row 10000), the form of
  the locators in Salesforce's examples; clients must treat them as opaque.
- Results of a job that is not JobComplete: 400 INVALIDJOBSTATE. Results asked with another
  API version than the job's: 409 (documented status; the body is ours).
- Aggregate queries (COUNT(), COUNT(f), SUM..., GROUP BY), parent-to-child subqueries and
  OFFSET, which Bulk API 2.0 documents as unsupported, are refused at create with 400
  API_ERROR; subqueries and aggregates with Salesforce's recorded "Aggregate Relationships
  not supported in Bulk V2 Query with CSV content type", OFFSET in words of ours. Semi-joins
  and anti-joins (`Id IN (SELECT ...)`) run as in REST.
- A failed job carries `errorMessage` on GET, as ingest jobs do.
- isPkChunkingSupported is true for every object.
"""
from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import itertools
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from . import csvfmt, ids, soql
from .catalog import Field
from .engine import Engine, csv_options, job_operation
from .runner import Run, sf_datetime
from .errors import ApiError, invalid_state, not_found

OPERATIONS = ("query", "queryAll")
KIND = "query"
DEFAULT_PAGE_SIZE = 50_000
DEFAULT_PAGE_BYTES = 10 * 1024 * 1024  # UNCONFIRMED threshold, see the module docstring
CHUNK_ROWS = 2000
RESULT_PAGES_PER_RESPONSE = 5  # "up to five URIs in one response"
RESULT_PAGES_SINCE = 58.0
COLUMN_ORDER_SINCE = 50.0  # before: columns in alphabetical order
ABORTABLE = ("UploadComplete", "InProgress")
TERMINATED = ("JobComplete", "Failed", "Aborted")
_RESULTS = "queryResults"
_INDEX = "queryResultIndex"
_DIGITS = re.compile(r"[0-9]+\Z")


@dataclass
class ResultPage:
    """One page of results: its row count, the next page's locator (None on the last
    page) and the CSV body, produced a chunk at a time."""

    number_of_records: int
    next_locator: str | None
    body: Iterator[bytes]


class QueryJobs:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.catalog = engine.catalog
        self.runner = engine.runner
        self.runner.register(KIND, self.process, restart=True)

    # -- API operations -----------------------------------------------------------------

    def create(self, body: Any, api_version: float, user_id: str) -> dict[str, Any]:
        self.runner.expire_old_jobs()
        operation = job_operation(body, OPERATIONS)
        delimiter, line_ending = csv_options(body)
        text = body.get("query")
        if text is not None and not isinstance(text, str):
            raise ApiError(400, "API_ERROR", f"Invalid value: '{text}' supplied for property: "
                           "'query'")
        query = self._compile(text or "", operation, self._now())
        self.engine.limits.take_query_job()  # a query that does not compile uses none
        job_id = self.store.allocate_ids(ids.JOB_PREFIX, 1)[0]
        now = sf_datetime(self.runner.clock())
        self.store.insert_job({
            "id": job_id, "kind": KIND, "operation": operation, "object": query.object.name,
            "createdById": user_id, "createdDate": now, "systemModstamp": now,
            "state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": api_version, "jobType": "V2Query", "lineEnding": line_ending,
            "columnDelimiter": delimiter, "query": text,
        })
        self.runner.enqueue(job_id, KIND)
        return self.get(job_id)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id, KIND)
        if job is None:
            raise not_found()
        job["isPkChunkingSupported"] = True
        return job

    def list_jobs(self, locator: str | None, filters: dict[str, Any]
                  ) -> tuple[list[dict], str | None]:
        return self.engine.list_jobs(locator, filters, KIND)

    def set_state(self, job_id: str, state: Any) -> dict[str, Any]:
        self.get(job_id)
        if state != "Aborted":
            raise ApiError(400, "INVALIDJOBSTATE" if isinstance(state, str) else "API_ERROR",
                           f"Invalid value: '{state}' supplied for property: 'state'; only "
                           "Aborted can be set on a query job")
        if not self.store.set_job_state(job_id, "Aborted", ABORTABLE,
                                        systemModstamp=sf_datetime(self.runner.clock())):
            raise invalid_state("Aborting already Completed Job not allowed")
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        if self.get(job_id)["state"] not in TERMINATED:
            raise ApiError(400, "API_ERROR", "Error encountered when deleting the job because "
                           "the job is not terminated")
        self.store.delete_job(job_id)

    def results(self, job_id: str, version: str, locator: str | None,
                max_records: str | None) -> ResultPage:
        job = self._complete_job(job_id, version)
        size, max_bytes = DEFAULT_PAGE_SIZE, DEFAULT_PAGE_BYTES
        if max_records is not None:
            if not _DIGITS.match(max_records) or len(max_records) > 18 or int(max_records) < 1:
                raise ApiError(400, "API_ERROR", f"Invalid value: '{max_records}' supplied for "
                               "parameter: 'maxRecords'; it must be a positive integer")
            size, max_bytes = int(max_records), None
        total = job["numberRecordsProcessed"]
        first = self._offset(locator, total)
        end = self._page_end(job_id, first, min(total, first + size), max_bytes)
        return ResultPage(end - first, encode_locator(end) if end < total else None,
                          self._page_body(job, first, end))

    def result_pages(self, job_id: str, version: str, locator: str | None
                     ) -> tuple[list[str], str | None]:
        """Locators of up to five result pages of the default size, and the locator of the
        next set of pages (None when these are the last)."""
        if float(version) < RESULT_PAGES_SINCE:
            raise not_found()
        job = self._complete_job(job_id, version)
        total = job["numberRecordsProcessed"]
        first = self._offset(locator, total)
        starts = [first]  # pages cut as a GET of results without maxRecords cuts them
        while len(starts) <= RESULT_PAGES_PER_RESPONSE and starts[-1] < total:
            start = starts[-1]
            starts.append(self._page_end(job_id, start, min(total, start + DEFAULT_PAGE_SIZE),
                                         DEFAULT_PAGE_BYTES))
        pages = starts[:RESULT_PAGES_PER_RESPONSE]
        if len(pages) > 1 and pages[-1] >= total:
            pages.pop()  # an empty result still has its one (header-only) page
        stop = starts[len(pages)] if len(starts) > len(pages) else total
        return [encode_locator(s) for s in pages], encode_locator(stop) if stop < total else None

    # -- processing (the runner's worker) -------------------------------------------------

    def process(self, run: Run) -> None:
        """Run a query job the runner has put InProgress (with its results cleared)."""
        store, job, job_id, started = self.store, run.job, run.id, run.started
        try:
            query = self._compile(job["query"], job["operation"], self._now())
        except ApiError as e:  # the schema changed since the job was created
            run.finish("Failed", f"InvalidBatch : {e.message}")
            return
        renderer = _Renderer(query.columns, job)
        store.set_result_header(job_id, renderer.names)
        fault = run.take_fault()
        step = run.step(CHUNK_ROWS)
        processed = 0
        with contextlib.closing(soql.execute(store, query)) as rows:
            while True:
                # A job fault stops the job at its row count, within a chunk if need be.
                take = step if fault is None else min(step, fault.after_records - processed)
                batch = list(itertools.islice(rows, take))
                if not batch:
                    break
                body, index = renderer.chunk(batch)
                now = self.runner.clock()
                with store.transaction() as conn:
                    live = store.record_progress(
                        conn, job_id, processed=processed + len(batch),
                        total_ms=int((now - started) * 1000), stamp=sf_datetime(now),
                        only_in_progress=True)
                    if live:
                        store.add_results(conn, job_id, _RESULTS, processed, body)
                        store.add_results(conn, job_id, _INDEX, processed, index)
                if not live:
                    return  # aborted (or deleted) while running
                processed += len(batch)
                run.keep_pace(processed)
        if fault is not None:
            run.finish("Failed", fault.message)
            return
        run.finish("JobComplete", None)

    # -- helpers ------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.runner.clock(), timezone.utc)

    def _compile(self, text: str, operation: str, now: datetime) -> soql.CompiledQuery:
        try:
            query = soql.compile_query(text, self.catalog, include_deleted=operation == "queryAll",
                                       now=now)
            soql.check(self.store, query)
            offset = soql.parse(text).offset
        except soql.SoqlError as e:
            raise ApiError(400, e.code, e.message) from None
        if query.count_only or query.aggregate or query.children:
            # Recorded for a parent-to-child subquery (salesforcer's tests against a real
            # org). Bulk queries answer aggregate functions with the same "Aggregate
            # Relationships" message (Data Loader's tests); that Bulk 2.0 words it this
            # way for them too is UNCONFIRMED.
            raise ApiError(400, "API_ERROR", "Aggregate Relationships not supported in Bulk "
                           "V2 Query with CSV content type")
        if offset is not None:
            raise ApiError(400, "API_ERROR", "OFFSET is not supported in Bulk V2 Query")
        if any(c.field.is_compound for c in query.columns):
            # The message Bulk API 1.0 gives in a failed batch ("InvalidBatch : Failed to
            # process query: FUNCTIONALITY_NOT_ENABLED: Selecting compound data not
            # supported in Bulk Query"); that Bulk 2.0 refuses the job create call with it
            # is UNCONFIRMED.
            raise ApiError(400, "FUNCTIONALITY_NOT_ENABLED",
                           "Selecting compound data not supported in Bulk Query")
        return query

    def _complete_job(self, job_id: str, version: str) -> dict[str, Any]:
        job = self.get(job_id)
        if float(job["apiVersion"]) != float(version):
            raise ApiError(409, "API_ERROR", "The results of a query job must be requested with "
                           f"the API version that created it (v{float(job['apiVersion']):.1f})")
        if job["state"] != "JobComplete":
            raise invalid_state(f"The query job {job_id} is {job['state']}; its results are "
                                "available once it is JobComplete")
        return job

    @staticmethod
    def _offset(locator: str | None, total: int) -> int:
        if not locator:
            return 0
        offset = decode_locator(locator)
        if offset is None or (offset >= total and offset != 0):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", f"invalid query locator: {locator}")
        return offset

    def _page_end(self, job_id: str, first: int, end: int, max_bytes: int | None) -> int:
        """Where a page from row `first` stops: at `end`, or earlier once its rows would
        pass `max_bytes` (never before first + 1). Reads only the stored row offsets."""
        if max_bytes is None:
            return end
        position, used = first, 0
        while position < end:
            found = self.store.result_chunks(job_id, _INDEX, position, position + 1)
            if not found:
                return end  # the job was deleted meanwhile: the body will say so
            seq, index = found[0]
            offsets = [int(o) for o in index.decode("ascii").split(",")]
            start, stop = position - seq, min(end - seq, len(offsets) - 1)
            # The last row boundary within the bytes left.
            fits = bisect.bisect_right(offsets, offsets[start] + max_bytes - used,
                                       start, stop + 1) - 1
            if fits < stop:
                return max(seq + fits, first + 1)
            used += offsets[stop] - offsets[start]
            position = seq + stop
        return end

    def _page_body(self, job: dict[str, Any], first: int, end: int) -> Iterator[bytes]:
        """The header, then the rows first..end-1 cut from the stored chunks, one chunk
        read at a time."""
        terminator = csvfmt.LINE_ENDINGS[job["lineEnding"]]
        delimiter = csvfmt.DELIMITERS[job["columnDelimiter"]]
        names = json.loads(job["resultHeader"] or "[]")
        yield (delimiter.join(map(_text, names)) + terminator).encode("utf-8")
        position = first
        while position < end:
            found = self.store.result_chunks(job["id"], _INDEX, position, position + 1)
            chunk = self.store.result_chunks(job["id"], _RESULTS, position, position + 1)
            if not found or not chunk:
                return  # the job was deleted while its page was being read
            seq, index = found[0]
            offsets = index.decode("ascii").split(",")
            stop = min(end - seq, len(offsets) - 1)
            yield chunk[0][1][int(offsets[position - seq]):int(offsets[stop])]
            position = seq + stop


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode("ascii")).decode("ascii").rstrip("=")


def decode_locator(locator: str) -> int | None:
    if len(locator) > 24:  # the longest encodes an 18-digit offset; int() balks at 4301
        return None
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    if not _DIGITS.match(text) or encode_locator(int(text)) != locator:
        return None
    return int(text)


# -- rendering ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def _number(value: Any) -> str:
    text = repr(float(value))
    if "e" in text:  # repr switches to an exponent from 1e16 and below 1e-4; keep digits
        text = format(Decimal(text), "f")
    return f'"{text}"'


# Column renderers: a column's stored values -> its CSV cells (null: an empty, unquoted
# cell). One list comprehension per column instead of one function call per cell.

# Control characters that stand for "next cell" and "null" while a text column is quoted as
# one string (checked absent from the data first).
_NEXT, _NULL = "\x1f", "\x1e"


def _text_column(values: Sequence[Any]) -> list[str]:
    # The whole column is joined, its quotes doubled and its cells quoted by three
    # replace() calls over one string, then split: no Python work per cell.
    nulls = values.count(None)
    try:
        body = _NEXT.join([_NULL if v is None else v for v in values] if nulls else values)
    except TypeError:  # a value that is not text
        body = None
    if body is None or body.count(_NEXT) != len(values) - 1 or body.count(_NULL) != nulls:
        return ["" if v is None else _text(v) for v in values]
    if '"' in body:
        body = body.replace('"', '""')
    body = '"' + body.replace(_NEXT, f'"{_NEXT}"') + '"'
    if nulls:
        body = body.replace(f'"{_NULL}"', "")
    return body.split(_NEXT)


def _boolean_column(values: Sequence[Any]) -> list[str]:
    return ["" if v is None else '"true"' if v else '"false"' for v in values]


def _integer_column(values: Sequence[Any]) -> list[str]:
    return ["" if v is None else f'"{int(v)}"' for v in values]


def _number_column(values: Sequence[Any]) -> list[str]:
    cells = ["" if v is None else f'"{float(v)!r}"' for v in values]
    if "e" in "".join(cells):  # rare: only those cells go through _number
        cells = ["" if v is None else _number(v) for v in values]
    return cells


_FORMATS: dict[str, Callable[[Sequence[Any]], list[str]]] = {
    "boolean": _boolean_column, "int": _integer_column, "long": _integer_column,
    "double": _number_column, "currency": _number_column, "percent": _number_column,
}


def _formatter(f: Field) -> Callable[[Sequence[Any]], list[str]]:
    return _FORMATS.get(f.type, _text_column)


class _Renderer:
    """Rows of stored values -> CSV lines in the job's delimiter and line ending."""

    def __init__(self, columns: Sequence[soql.Column], job: dict[str, Any]):
        order = list(range(len(columns)))
        if float(job["apiVersion"]) < COLUMN_ORDER_SINCE:
            order.sort(key=lambda i: columns[i].path.lower())
        self.order = order
        self.names = [columns[i].path for i in order]
        self.formats = [_formatter(columns[i].field) for i in order]
        self.delimiter = csvfmt.DELIMITERS[job["columnDelimiter"]]
        self.terminator = csvfmt.LINE_ENDINGS[job["lineEnding"]]

    def chunk(self, rows: Sequence[tuple]) -> tuple[bytes, str]:
        """The CSV of `rows`, and the byte offsets of each row's start and of the end."""
        columns = list(zip(*rows))
        cells = [f(columns[i]) for i, f in zip(self.order, self.formats)]
        lines = list(map(self.delimiter.join, zip(*cells)))
        if len(cells) == 1:
            lines = [line or '""' for line in lines]  # an empty line would be skipped
        terminator = self.terminator
        text = terminator.join(lines) + terminator
        data = text.encode("utf-8")
        if len(data) == len(text):  # ASCII: characters are bytes
            sizes = map(len(terminator).__add__, map(len, lines))
        else:
            sizes = (len(line.encode("utf-8")) + len(terminator) for line in lines)
        offsets = itertools.accumulate(sizes, initial=0)
        return data, ",".join(map(str, offsets))
