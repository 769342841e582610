"""The Bulk API 2.0 ingest protocol: one thin function per endpoint, and `wait()`.

Status codes follow the protocol notes: create 200 (any 2xx accepted), upload 201, close and
abort 200, delete 204. `wait()` polls with backoff (0.5 s growing to 10 s), with the clock
and sleep injectable so tests run in milliseconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import errors
from .org import Org

TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")
_2XX = tuple(range(200, 300))


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


def create_ingest_job(org: Org, sobject: str, operation: str, *,
                      external_id: str | None = None, column_delimiter: str = "COMMA",
                      line_ending: str = "LF") -> JobInfo:
    body = {"object": sobject, "operation": operation, "contentType": "CSV",
            "columnDelimiter": column_delimiter, "lineEnding": line_ending}
    if external_id is not None:
        body["externalIdFieldName"] = external_id
    return JobInfo(org.request("POST", "jobs/ingest", json=body, expect=_2XX).json())


def upload(org: Org, job_id: str, data: bytes) -> None:
    org.request("PUT", f"jobs/ingest/{job_id}/batches", data=data, expect=(201,),
                headers={"Content-Type": "text/csv"})


def close(org: Org, job_id: str) -> JobInfo:
    return _set_state(org, job_id, "UploadComplete")


def abort(org: Org, job_id: str) -> JobInfo:
    return _set_state(org, job_id, "Aborted")


def _set_state(org: Org, job_id: str, state: str) -> JobInfo:
    try:
        return JobInfo(org.request("PATCH", f"jobs/ingest/{job_id}", json={"state": state}).json())
    except errors.RequestError as e:
        # A retried PATCH whose first attempt got through is refused as an invalid
        # transition; the job already moved on, which is what was asked.
        if e.error_code == "INVALIDJOBSTATE":
            info = get(org, job_id)
            if state == "UploadComplete" and info.state != "Open":
                return info
            if state == "Aborted" and info.done:
                return info
        raise


def get(org: Org, job_id: str) -> JobInfo:
    return JobInfo(org.request("GET", f"jobs/ingest/{job_id}").json())


def results(org: Org, job_id: str, kind: str) -> bytes:
    """One of the result CSVs, as bytes (gzip transfer is negotiated by requests)."""
    if kind not in RESULT_KINDS:
        raise ValueError(f"kind must be one of {RESULT_KINDS}")
    return org.request("GET", f"jobs/ingest/{job_id}/{kind}",
                       headers={"Accept": "text/csv"}).content


def delete(org: Org, job_id: str) -> None:
    org.request("DELETE", f"jobs/ingest/{job_id}", expect=(204,))


def list_jobs(org: Org) -> list[dict[str, Any]]:
    """Every ingest job of the org (all pages)."""
    out: list[dict[str, Any]] = []
    path = "jobs/ingest"
    while path:
        page = org.request("GET", path).json()
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


def wait(org: Org, job_id: str, *, timeout: float | None = None,
         backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep,
         on_update: Callable[[JobInfo], None] | None = None,
         poll: Callable[[Org, str], JobInfo] | None = None,
         just_closed: bool = False) -> JobInfo:
    """Poll until the job is terminal or `timeout` seconds pass; returns the last JobInfo
    (check `.done`). `on_update` sees every JobInfo polled; `poll` is the GET to use
    (ingest jobs by default, `get_query_job` for queries). `just_closed`: the job was
    closed a moment ago, so the first poll waits one interval (at once it would only
    find the state the close call returned)."""
    deadline = None if timeout is None else clock() + timeout
    delays = (backoff or Backoff()).intervals()
    poll = poll or get
    if just_closed:
        first = next(delays)
        sleep(first if deadline is None else max(0.0, min(first, deadline - clock())))
    while True:
        info = poll(org, job_id)
        if on_update is not None:
            on_update(info)
        if info.done:
            return info
        delay = next(delays)
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                return info
            delay = min(delay, remaining)
        sleep(delay)


# -- query jobs ------------------------------------------------------------------------


def create_query_job(org: Org, soql: str, *, include_deleted: bool = False,
                     column_delimiter: str = "COMMA", line_ending: str = "LF") -> JobInfo:
    body = {"operation": "queryAll" if include_deleted else "query", "query": soql,
            "contentType": "CSV", "columnDelimiter": column_delimiter,
            "lineEnding": line_ending}
    return JobInfo(org.request("POST", "jobs/query", json=body, expect=_2XX).json())


def get_query_job(org: Org, job_id: str) -> JobInfo:
    return JobInfo(org.request("GET", f"jobs/query/{job_id}").json())


@dataclass(frozen=True)
class ResultPage:
    data: bytearray  # the page's CSV
    records: int
    locator: str | None  # None on the last page (Salesforce sends the string "null")


def query_results_page(org: Org, job_id: str, *, locator: str | None = None,
                       max_records: int | None = None) -> ResultPage:
    params: dict[str, Any] = {}
    if locator:
        params["locator"] = locator
    if max_records:
        params["maxRecords"] = max_records
    response = org.request("GET", f"jobs/query/{job_id}/results", params=params,
                           headers={"Accept": "text/csv"}, stream=True)
    # One growing buffer: `response.content` would hold the body twice (its chunks, then
    # their join) at the moment the page is largest.
    data = bytearray()
    for chunk in response.iter_content(1 << 20):
        data += chunk
    next_locator = response.headers.get("Sforce-Locator")
    return ResultPage(data, int(response.headers.get("Sforce-NumberOfRecords") or 0),
                      None if next_locator in (None, "", "null") else next_locator)
