"""The Bulk API 2.0 ingest protocol: one thin function per endpoint, and `wait()`.

Status codes follow the protocol notes: create 200 (any 2xx accepted), upload 201, close and
abort 200, delete 204. `wait()` polls with backoff (0.5 s growing to 10 s), with the clock
and sleep injectable so tests run in milliseconds.

Every call is retried (`Retrying`: exponential backoff with full jitter, Retry-After
honoured) when no answer came, the answer could not be read, or Salesforce said 429 or 5xx,
but only in ways that cannot do anything twice:

==============  ==============================================================================
call            after a failure whose answer may have been lost
==============  ==============================================================================
GET, DELETE     repeated as is: reading twice changes nothing
create (POST)   the org's recent Open jobs are looked at first: one that matches this create
                exactly (object, operation, key, delimiter, line ending), that no other call
                of the run knows and that was created since the call started is adopted;
                otherwise a new job is created (an abandoned empty Open job holds no rows)
upload (PUT)    repeated; "Found multipe contents for job" on a repeat means the first got
                through (the org takes one upload per job, so it refuses the second itself)
close, abort    the job's state is read first: a job already past Open (or done) was closed
(PATCH)         (or aborted) by the lost call
==============  ==============================================================================
"""
from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from . import download, errors
from .org import Org
from .retrying import Retrying, read_json

TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")
_2XX = tuple(range(200, 300))
# How far back (seconds) before its create call a job it adopts may have been created: the
# org's clock may run behind this machine's.
CLOCK_SKEW = 120.0
CLIENT_NAME = "sfbulk_nb"


@dataclass(frozen=True)
class JobInfo:
    """A job's state as the last call returned it; `raw` keeps every field."""

    raw: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return self.raw["id"]

    @property
    def state(self) -> str:
        return self.raw.get("state", "")

    @property
    def processed(self) -> int:
        # Salesforce omits the counters while a job is Open.
        return int(self.raw.get("numberRecordsProcessed") or 0)

    @property
    def failed(self) -> int:
        return int(self.raw.get("numberRecordsFailed") or 0)

    @property
    def error_message(self) -> str | None:
        return self.raw.get("errorMessage") or None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def __repr__(self) -> str:
        return (f"JobInfo(id={self.id!r}, state={self.state!r}, processed={self.processed}, "
                f"failed={self.failed})")


def _info(org: Org, method: str, path: str, **kwargs: Any) -> JobInfo:
    data = read_json(org.request(method, path, **kwargs), method, path)
    if not isinstance(data, dict) or "id" not in data:
        raise errors.BadResponseError(f"{method} {path} answered JSON that is no job: {str(data)[:80]}")
    return JobInfo(data)


def create_ingest_job(org: Org, sobject: str, operation: str, *,
                      external_id: str | None = None, column_delimiter: str = "COMMA",
                      line_ending: str = "LF", retry: Retrying | None = None,
                      known: Callable[[], set[str]] = set) -> JobInfo:
    """POST a job. ``known``: the ids of the jobs the caller has already (never adopted)."""
    body = {"object": sobject, "operation": operation, "contentType": "CSV",
            "columnDelimiter": column_delimiter, "lineEnding": line_ending}
    if external_id is not None:
        body["externalIdFieldName"] = external_id
    started = time.time()

    def attempt(n: int) -> JobInfo:
        if n:  # the last create may have made a job whose answer was lost
            adopted = _created_since(org, body, started, known())
            if adopted is not None:
                return adopted
        return _info(org, "POST", "jobs/ingest", json=body, expect=_2XX,
                     headers={"Sforce-Call-Options": f"client={CLIENT_NAME}"})

    return (retry or Retrying()).call(attempt)


def _created_since(org: Org, body: dict[str, Any], started: float,
                   known: set[str]) -> JobInfo | None:
    """The one Open job matching ``body`` created since ``started`` that ``known`` lacks,
    or None (none, or more than one: then adopting could take someone else's)."""
    found = []
    for job in list_jobs(org):
        if job.get("id") in known or job.get("state") != "Open":
            continue
        if any(job.get(k) != v for k, v in body.items() if k != "contentType"):
            continue
        created = _timestamp(job.get("createdDate"))
        if created is not None and created >= started - CLOCK_SKEW:
            found.append(job)
    return JobInfo(found[0]) if len(found) == 1 else None


def _timestamp(text: str | None) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() if text else None
    except ValueError:
        return None


def upload(org: Org, job_id: str, data: bytes, retry: Retrying | None = None) -> None:
    def attempt(n: int) -> None:
        try:
            org.request("PUT", f"jobs/ingest/{job_id}/batches", data=data, expect=(201,),
                        headers={"Content-Type": "text/csv"})
        except errors.RequestError as e:
            if n and e.error_code == "BULK_API_ERROR" and "contents" in str(e):
                return  # an earlier attempt's upload got through (its answer was lost)
            raise

    (retry or Retrying()).call(attempt)


def close(org: Org, job_id: str, retry: Retrying | None = None) -> JobInfo:
    return _set_state(org, job_id, "UploadComplete", retry)


def abort(org: Org, job_id: str, retry: Retrying | None = None) -> JobInfo:
    return _set_state(org, job_id, "Aborted", retry)


def _reached(info: JobInfo, state: str) -> bool:
    """Whether a job is where a PATCH to ``state`` would have taken it (or past it)."""
    return info.state != "Open" if state == "UploadComplete" else info.done


def _set_state(org: Org, job_id: str, state: str, retry: Retrying | None = None) -> JobInfo:
    def attempt(n: int) -> JobInfo:
        if n:  # the last PATCH may have got through with its answer lost
            info = get(org, job_id, retry)
            if _reached(info, state):
                return info
        try:
            return _info(org, "PATCH", f"jobs/ingest/{job_id}", json={"state": state})
        except errors.RequestError as e:
            # A retried PATCH whose first attempt got through is refused as an invalid
            # transition; the job already moved on, which is what was asked.
            if e.error_code == "INVALIDJOBSTATE":
                info = get(org, job_id, retry)
                if _reached(info, state):
                    return info
            raise

    return (retry or Retrying()).call(attempt)


def get(org: Org, job_id: str, retry: Retrying | None = None) -> JobInfo:
    return (retry or Retrying()).call(lambda n: _info(org, "GET", f"jobs/ingest/{job_id}"))


def results(org: Org, job_id: str, kind: str, retry: Retrying | None = None,
            parse: Callable[[bytes], Any] = bytes) -> Any:
    """One of the result CSVs (gzip transfer is negotiated by requests, unpacked by
    download.body), given to ``parse`` (bytes by default). An answer that is not CSV, or
    that ``parse`` cannot read (a body cut short), is downloaded again."""
    if kind not in RESULT_KINDS:
        raise ValueError(f"kind must be one of {RESULT_KINDS}")
    path = f"jobs/ingest/{job_id}/{kind}"

    def attempt(n: int) -> Any:
        response = org.request("GET", path, headers={"Accept": "text/csv"}, stream=True)
        kind_of = response.headers.get("Content-Type", "")
        if "html" in kind_of or "json" in kind_of:
            raise errors.BadResponseError(f"GET {path} answered {kind_of}, not CSV: "
                                          f"{response.text[:80]!r}")
        data = _whole_body(response, path)
        try:
            return parse(bytes(data) if parse is bytes else data)
        except ValueError as e:
            raise errors.BadResponseError(f"GET {path}: {e}") from None

    return (retry or Retrying()).call(attempt)


def _whole_body(response: Any, path: str) -> bytearray:
    """A CSV answer's body, unpacked; a body cut off is a BadResponseError, which the
    callers' Retrying reads again."""
    try:
        return download.body(response)
    except download.CutOff as e:
        raise errors.BadResponseError(f"GET {path}: the answer was cut off ({e})") from None


def delete(org: Org, job_id: str, retry: Retrying | None = None) -> None:
    (retry or Retrying()).call(
        lambda n: org.request("DELETE", f"jobs/ingest/{job_id}", expect=(204, 404) if n else (204,)))


def list_jobs(org: Org, retry: Retrying | None = None) -> list[dict[str, Any]]:
    """Every ingest job of the org (all pages)."""
    out: list[dict[str, Any]] = []
    path: str | None = "jobs/ingest"
    while path:
        page = (retry or Retrying()).call(
            lambda n, path=path: read_json(org.request("GET", path), "GET", path))
        out.extend(page.get("records", []))
        path = None if page.get("done", True) else page.get("nextRecordsUrl")
    return out


@dataclass
class Backoff:
    """Poll intervals: start, multiplied by `factor` after each poll, capped."""

    start: float = 0.5
    factor: float = 1.5
    cap: float = 10.0

    def intervals(self):
        delay = self.start
        while True:
            yield delay
            delay = min(self.cap, delay * self.factor)


def check_timeout(timeout: Any) -> float | None:
    """Seconds to wait (0: do not wait), or None: until done; anything else is an
    InputError before a job exists."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not timeout >= 0):
        raise errors.InputError(f"timeout must be a number of seconds (0 or more) or None "
                                f"(wait until done), not {timeout!r}")
    return timeout


def wait(org: Org, job_id: str, *, timeout: float | None = None,
         backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep,
         on_update: Callable[[JobInfo], None] | None = None,
         poll: Callable[[Org, str], JobInfo] | None = None,
         just_closed: bool = False, stop: Any = None, records: int | None = None) -> JobInfo:
    """Poll until the job is terminal or `timeout` seconds pass; returns the last JobInfo
    (check `.done`). `on_update` sees every JobInfo polled; `poll` is the GET to use
    (ingest jobs by default, `get_query_job` for queries). `just_closed`: the job was
    closed a moment ago, so the first poll waits one interval (at once it would only
    find the state the close call returned). ``stop`` (a threading.Event): once set, the
    next poll is the last. ``records``: the rows uploaded to the job; once it reports
    progress, the next poll is when its pace says it will be done (see _next_delay)."""
    backoff = backoff or Backoff()
    deadline = None if timeout is None else clock() + timeout
    delays = backoff.intervals()
    poll = poll or get
    if just_closed:
        first = next(delays)
        sleep(first if deadline is None else max(0.0, min(first, deadline - clock())))
    seen: tuple[float, int] | None = None  # (when, processed) of the first poll with progress
    while True:
        info = poll(org, job_id)
        now = clock()
        if on_update is not None:
            on_update(info)
        if info.done or (stop is not None and stop.is_set()):
            return info
        delay = next(delays)
        if records and info.processed:
            if seen is None or info.processed < seen[1]:
                seen = (now, info.processed)
            else:
                delay = _next_delay(backoff, delay, records, seen, now, info.processed)
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                return info
            delay = min(delay, remaining)
        sleep(delay)


def _next_delay(backoff: Backoff, planned: float, records: int, seen: tuple[float, int],
                now: float, processed: int) -> float:
    """When to poll a job that reports progress: when its pace since ``seen`` says the last
    record will be done (plus 5%), between the backoff's start and its cap. A job of a
    million rows at 90,000 rows/s is polled about 3 times instead of 6, and still seen
    done within about 5% of its end. No measurable pace yet (no progress since ``seen``):
    the planned backoff interval."""
    since, done_then = seen
    if processed <= done_then or now <= since:
        return planned
    rate = (processed - done_then) / (now - since)
    left = max(0, records - processed) / rate
    return min(backoff.cap, max(backoff.start, 1.05 * left))


# -- query jobs ------------------------------------------------------------------------


def create_query_job(org: Org, soql: str, *, include_deleted: bool = False,
                     column_delimiter: str = "COMMA", line_ending: str = "LF",
                     retry: Retrying | None = None) -> JobInfo:
    # A query reads only: a second job after a lost answer costs a job, never a change.
    body = {"operation": "queryAll" if include_deleted else "query", "query": soql,
            "contentType": "CSV", "columnDelimiter": column_delimiter,
            "lineEnding": line_ending}
    return (retry or Retrying()).call(
        lambda n: _info(org, "POST", "jobs/query", json=body, expect=_2XX))


def get_query_job(org: Org, job_id: str, retry: Retrying | None = None) -> JobInfo:
    return (retry or Retrying()).call(lambda n: _info(org, "GET", f"jobs/query/{job_id}"))


@dataclass(frozen=True)
class ResultPage:
    data: bytearray  # the page's CSV
    records: int
    locator: str | None  # None on the last page (Salesforce sends the string "null")


def query_results_page(org: Org, job_id: str, *, locator: str | None = None,
                       max_records: int | None = None,
                       retry: Retrying | None = None) -> ResultPage:
    params: dict[str, Any] = {}
    if locator:
        params["locator"] = locator
    if max_records:
        params["maxRecords"] = max_records
    path = f"jobs/query/{job_id}/results"

    def attempt(n: int) -> ResultPage:
        response = org.request("GET", path, params=params, headers={"Accept": "text/csv"},
                               stream=True)
        if "html" in response.headers.get("Content-Type", ""):
            raise errors.BadResponseError(f"GET {path} answered HTML, not CSV")
        data = _whole_body(response, path)
        next_locator = response.headers.get("Sforce-Locator")
        return ResultPage(data, int(response.headers.get("Sforce-NumberOfRecords") or 0),
                          None if next_locator in (None, "", "null") else next_locator)

    return (retry or Retrying()).call(attempt)
