"""Ingest jobs: the state machine, the one upload, and processing off the request thread.

    create -> Open --PUT once--> Open --PATCH UploadComplete--> UploadComplete
           -> (worker) InProgress -> JobComplete | Failed          PATCH Aborted from any
                                                                   unfinished state

A worker thread takes closed jobs from a queue and processes them in internal batches of
10,000 rows (200 when paced, so progress moves smoothly). Every batch commits its record
changes, its result rows and the job's counters in one transaction, so a job survives a
restart of the server: unfinished jobs are queued again on start and resume after the last
committed batch.

The same worker runs every kind of job: each queue entry names its kind (`jobs.kind`), and
a kind's processor is registered with `register` (query jobs: `queryjobs.py`).
"""
from __future__ import annotations

import json
import logging
import queue
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from . import csvfmt, ids
from .catalog import Catalog
from .errors import ApiError, invalid_state, not_found
from .contention import Contention
from .faults import Faults
from .limits import BATCHES_EXCEEDED, BULK_BATCHES, Limits
from .records import Header, JobFailure, apply_batch
from .rules import RuleBook
from .store import Store

log = logging.getLogger(__name__)

BATCH_SIZE = 10_000
PACED_STEP = 200
LIST_PAGE_SIZE = 1000
# Salesforce deletes Bulk API jobs, their data and results, seven days after they were
# created (documented for Bulk API jobs and batches; our guess for 2.0 is the same). Without
# it, a long-lived org file grows by every upload and query result it ever held.
JOB_LIFESPAN = 7 * 24 * 3600
EXPIRY_SWEEP_EVERY = 3600
# Salesforce refuses uploads over 150 MB once base64 encoded (the protocol notes, 4.6).
MAX_UPLOAD_BASE64 = 150 * 1024 * 1024
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
UNFINISHED = ("Open", "UploadComplete", "InProgress")
RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")


def sf_datetime(ts: float) -> str:
    """JobInfo dates: `2022-01-02T21:33:43.000+0000`."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def record_datetime(ts: float) -> str:
    """Record audit fields, in the store's datetime form."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class JobFault:
    """Make the next processed job end Failed once it has processed `after_records` rows
    (all of its rows, if it has fewer: the job still ends Failed, with nothing
    unprocessed, so a client always sees the failure it asked for)."""

    message: str = "InternalServerError : the local org was told to fail this job"
    after_records: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.message, str):
            raise ValueError("message must be a string")
        if not isinstance(self.after_records, int) or self.after_records < 0:
            raise ValueError("after_records must be a whole number of at least 0")


class Engine:
    def __init__(self, store: Store, catalog: Catalog, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, pace: float | None = None,
                 result_order: str = "shuffled", seed: int | None = None,
                 faults: Faults | None = None, limits: Limits | None = None,
                 contention: Contention | None = None):
        if result_order not in ("shuffled", "input"):
            raise ValueError("result_order must be 'shuffled' or 'input'")
        self.store = store
        self.catalog = catalog
        self.rules = RuleBook(store)
        self.clock = clock
        self.sleep = sleep
        self.pace = pace
        self.result_order = result_order
        self.random = random.Random(seed)
        self.job_faults: deque[JobFault] = deque()
        self.faults = faults or Faults()  # for its row locks
        self.limits = limits or Limits(store, clock=clock)
        self.contention = contention or Contention()
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._processors: dict[str, Callable[[str], None]] = {"ingest": self._process}
        self._worker: threading.Thread | None = None
        self.idle = threading.Event()
        self.idle.set()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._last_sweep: float | None = None

    # -- worker -----------------------------------------------------------------------

    def start(self) -> None:
        self.expire_old_jobs()
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="localorg-jobs", daemon=True)
            self._worker.start()
            for kind, job_id in self.store.unfinished_jobs():
                self.enqueue(job_id, kind)

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
            self._worker = None

    def expire_old_jobs(self) -> None:
        """Delete jobs past their lifespan (not those the worker may be running); runs at
        most once an hour, on start and when jobs are created."""
        now = self.clock()
        if self._last_sweep is not None and now - self._last_sweep < EXPIRY_SWEEP_EVERY:
            return
        self._last_sweep = now
        self.store.delete_jobs_created_before(sf_datetime(now - JOB_LIFESPAN))

    def register(self, kind: str, processor: Callable[[str], None]) -> None:
        """Have the worker run `processor(job_id)` for queued jobs of this kind."""
        self._processors[kind] = processor

    def enqueue(self, job_id: str, kind: str = "ingest") -> None:
        with self._pending_lock:
            self._pending += 1
            self.idle.clear()
        self._queue.put((kind, job_id))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued job has been processed (handy in tests)."""
        return self.idle.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, job_id = item
            try:
                self._processors[kind](job_id)
            except Exception:
                # A bug must not kill the worker. The job shows that it failed, the server's
                # log shows why (Python's error text is no message for a client).
                log.exception("job %s failed", job_id)
                self.store.update_job(job_id, state="Failed", errorMessage="InternalServerError "
                                      ": An unexpected error occurred while processing the job")
            finally:
                # Counted under a lock: a job enqueued while this one ran keeps idle clear.
                with self._pending_lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self.idle.set()

    # -- API operations -----------------------------------------------------------------

    def create_job(self, body: Any, api_version: float, user_id: str) -> dict[str, Any]:
        self.expire_old_jobs()
        operation = job_operation(body, OPERATIONS)
        obj = self.catalog.get(str(body.get("object") or ""))
        if obj is None:
            raise ApiError(400, "INVALIDJOB",
                           f"InvalidJob : Unable to find object: {body.get('object') or ''}")
        delimiter, line_ending = csv_options(body)
        external_id = body.get("externalIdFieldName")
        if operation == "upsert":
            key = obj.field(str(external_id or ""))
            if key is None or not key.is_key:
                raise ApiError(400, "INVALIDJOB", "InvalidJob : Field name provided, "
                               f"{external_id or ''} does not match an External ID for {obj.name}")
            external_id = key.name
        else:
            external_id = None
        job_id = self.store.allocate_ids(ids.JOB_PREFIX, 1)[0]
        now = sf_datetime(self.clock())
        job = {
            "id": job_id, "kind": "ingest", "operation": operation, "object": obj.name,
            "createdById": user_id, "createdDate": now, "systemModstamp": now, "state": "Open",
            "externalIdFieldName": external_id, "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": api_version, "jobType": "V2Ingest",
            "lineEnding": line_ending, "columnDelimiter": delimiter,
            "assignmentRuleId": body.get("assignmentRuleId"),
        }
        self.store.insert_job(job)
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id, "ingest")
        if job is None:
            raise not_found()
        return job

    def upload(self, job_id: str, data: bytes) -> None:
        job = self.get_job(job_id)
        if job["uploaded"]:
            # The real message, typo and 15-character id included (protocol notes 2.5).
            raise ApiError(400, "BULK_API_ERROR",
                           f"Found multipe contents for job: <{job_id[:15]}>, please 'Close' / "
                           "'Abort' / 'Delete' the current Job then create a new Job and make "
                           "sure you only do 'PUT' once on a given Job.")
        if job["state"] != "Open":
            raise invalid_state(f"Job {job_id} is not in the Open state; data can only be "
                                "uploaded to an Open job")
        check_upload_size(len(data))
        self.store.save_upload(job_id, data, uploaded=1, systemModstamp=sf_datetime(self.clock()))

    def set_state(self, job_id: str, state: Any) -> dict[str, Any]:
        job = self.get_job(job_id)
        now = sf_datetime(self.clock())
        if state == "UploadComplete":
            if not self.store.set_job_state_if(job_id, ["Open"], state="UploadComplete",
                                               systemModstamp=now):
                raise invalid_state(f"Invalid state transition from {job['state']} to "
                                    "UploadComplete")
            self.enqueue(job_id)
        elif state == "Aborted":
            if not self.store.set_job_state_if(job_id, list(UNFINISHED), state="Aborted",
                                               systemModstamp=now):
                raise invalid_state("Aborting already Completed Job not allowed")
        else:
            raise ApiError(400, "INVALIDJOBSTATE" if isinstance(state, str) else "API_ERROR",
                           f"Invalid value: '{state}' supplied for property: 'state'; only "
                           "UploadComplete and Aborted can be set")
        return self.get_job(job_id)

    def delete_job(self, job_id: str) -> None:
        job = self.get_job(job_id)
        if job["state"] in ("Open", "InProgress"):
            raise ApiError(400, "API_ERROR", "Error encountered when deleting the job because "
                           "the job is not terminated")
        self.store.delete_job(job_id)

    def list_jobs(self, locator: str | None, filters: dict[str, Any],
                  kind: str = "ingest") -> tuple[list[dict], str | None]:
        after = 0
        if locator:
            # Ours look like Salesforce's `01gR0000000opRTIAY-2000`; the number after the
            # dash is a job's seq, which SQLite holds in 64 bits.
            match = re.fullmatch(r"[0-9A-Za-z]{1,18}-([0-9]{1,18})", locator)
            if match is None:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            after = int(match.group(1))
        jobs = self.store.list_jobs(kind, after, LIST_PAGE_SIZE + 1, filters)
        more = len(jobs) > LIST_PAGE_SIZE
        jobs = jobs[:LIST_PAGE_SIZE]
        next_locator = f"01gL0000000000AAAA-{jobs[-1]['seq']}" if more else None
        return jobs, next_locator

    def results(self, job_id: str, kind: str) -> bytes:
        job = self.get_job(job_id)
        names = json.loads(job["resultHeader"]) if job["resultHeader"] else []
        opts = {"line_ending": job["lineEnding"], "column_delimiter": job["columnDelimiter"]}
        if kind == "unprocessedrecords":
            return self._unprocessed(job, names, opts)
        prefix = ["sf__Id", "sf__Created" if kind == "successfulResults" else "sf__Error"]
        bodies = self.store.result_bodies(job_id, kind)
        if self.result_order == "shuffled":
            self.random.shuffle(bodies)
        return csvfmt.render_header(prefix + names, 2, **opts).encode() + b"".join(bodies)

    def _unprocessed(self, job: dict[str, Any], names: list[str], opts: dict[str, str]) -> bytes:
        if job["state"] not in ("Failed", "Aborted") or not job["uploaded"]:
            return csvfmt.render_header(names, 0, **opts).encode() if names else b""
        data = self.store.job_data(job["id"])
        try:
            upload = csvfmt.open_upload(data, job["columnDelimiter"], job["lineEnding"])
        except csvfmt.CsvFormatError:
            return data  # nothing of it could be read: all of it is unprocessed, as sent
        parts = [csvfmt.render_header(upload.header, 0, **opts).encode()]
        for batch in upload.batches(BATCH_SIZE, start=job["rowsProcessedUpTo"]):
            parts.append(csvfmt.render_rows(batch, **opts).encode())
        return b"".join(parts)

    # -- processing -------------------------------------------------------------------

    def _process(self, job_id: str) -> None:
        job = self.store.get_job(job_id, "ingest")
        if job is None or job["state"] not in ("UploadComplete", "InProgress"):
            return
        if job["state"] == "UploadComplete":
            self.show_upload_complete()
        started = self.clock()
        if not self.store.set_job_state_if(job_id, ["UploadComplete", "InProgress"],
                                           state="InProgress",
                                           systemModstamp=sf_datetime(self.clock())):
            return
        try:
            if not job["uploaded"]:
                # Our guess at the wording: closing a job without data fails it.
                raise JobFailure("InvalidBatch : No data uploaded for this job")
            # Validated whole first (a bad file fails the job before any row is written),
            # then read a batch at a time so a big job never holds all its rows at once.
            upload = csvfmt.open_upload(self.store.job_data(job_id), job["columnDelimiter"],
                                        job["lineEnding"])
            names = upload.header
            obj = self.catalog.get(job["object"])
            header = Header.parse(self.catalog, obj, job["operation"], names,
                                  job["externalIdFieldName"])
        except (csvfmt.CsvFormatError, JobFailure) as e:
            self.finish(job_id, started, "Failed", str(e))
            return
        self.store.update_job(job_id, resultHeader=json.dumps(names))
        step = PACED_STEP if self.pace else BATCH_SIZE
        fault = self.job_faults.popleft() if self.job_faults else None
        position = job["rowsProcessedUpTo"]
        processed, failed = job["numberRecordsProcessed"], job["numberRecordsFailed"]
        # A job fault stops processing at its row count, within a batch if need be.
        stop = None if fault is None else position + max(0, fault.after_records - processed)
        retries = job["retries"] or 0
        for batch in upload.column_batches(step, start=position):
            if self.store.get_job(job_id, "ingest")["state"] != "InProgress":
                return  # aborted (or deleted) while running
            if stop is not None:
                if position >= stop:
                    break
                batch = [column[:stop - position] for column in batch]
            # Each internal batch of BATCH_SIZE rows uses one of the day's batches as it
            # starts (a paced step is a part of one); none left fails the job, the rest
            # of its rows unprocessed (see limits.py).
            if position % BATCH_SIZE == 0 and not self.limits.take(BULK_BATCHES):
                self.finish(job_id, started, "Failed", BATCHES_EXCEEDED)
                return
            batch_started = self.clock()
            now = self.clock()
            seq = position

            size = len(batch[0])

            # Called within this iteration (apply_batch's transaction): the defaults pin
            # this batch's values all the same.
            def save_results(conn, outcome, end=position + size, seq=seq, size=size,
                             batch_started=batch_started):
                nonlocal processed, failed
                if self.result_order == "shuffled":
                    self.random.shuffle(outcome.succeeded)
                    self.random.shuffle(outcome.failed)
                opts = {"line_ending": job["lineEnding"],
                        "column_delimiter": job["columnDelimiter"]}
                self.store.add_results(conn, job_id, "successfulResults", seq,
                                       csvfmt.render_rows(outcome.succeeded, **opts))
                self.store.add_results(conn, job_id, "failedResults", seq,
                                       csvfmt.render_rows(outcome.failed, **opts))
                processed += size
                failed += len(outcome.failed)
                elapsed = int((self.clock() - started) * 1000)
                conn.execute(
                    "UPDATE jobs SET numberRecordsProcessed = ?, numberRecordsFailed = ?, "
                    "rowsProcessedUpTo = ?, totalProcessingTime = ?, "
                    "apiActiveProcessingTime = apiActiveProcessingTime + ?, systemModstamp = ? "
                    "WHERE id = ?",
                    (processed, failed, end, elapsed,
                     int((self.clock() - batch_started) * 1000), sf_datetime(self.clock()),
                     job_id))

            locked = self.faults.locked_rows(size)
            if self.contention.on:
                contended = self.contention.locked_rows(
                    self.contention.row_parents(header, batch), self._other_jobs_parents(job_id))
                if contended:
                    locked |= contended
                    retries += 1
                    self.store.update_job(job_id, retries=retries)
            apply_batch(self.store, header, batch, external_id=job["externalIdFieldName"],
                        user_id=job["createdById"], now=record_datetime(now),
                        locked=locked, on_commit=save_results,
                        validation=self.rules.active(obj))
            position += size
            self.keep_pace(started, processed)
        if fault is not None:
            self.finish(job_id, started, "Failed", fault.message)
            return
        self.finish(job_id, started, "JobComplete", None)

    def _other_jobs_parents(self, job_id: str) -> list[frozenset[str]]:
        """The parent keys of the other ingest jobs waiting to be processed (contention)."""
        found = []
        for kind, other in self.store.unfinished_jobs():
            if kind != "ingest" or other == job_id:
                continue

            def read(other: str = other):
                job = self.store.get_job(other, "ingest")
                data = self.store.job_data(other) or b""
                names = csvfmt.open_upload(data, job["columnDelimiter"], job["lineEnding"]).header
                header = Header.parse(self.catalog, self.catalog.get(job["object"]),
                                      job["operation"], names, job["externalIdFieldName"])
                return header, data, job["columnDelimiter"], job["lineEnding"]

            try:
                found.append(self.contention.job_parents(other, read))
            except Exception:  # noqa: BLE001 - a job whose upload fails parsing fails on its own
                continue
        return found

    def show_upload_complete(self) -> None:
        """When paced, leave a job in UploadComplete for a moment so watchers see it."""
        if self.pace:
            self.sleep(min(1.0, PACED_STEP / self.pace))

    def keep_pace(self, started: float, processed: int) -> None:
        """When paced, sleep until `processed` records fit the pace since `started`."""
        if self.pace:
            behind = (processed / self.pace) - (self.clock() - started)
            if behind > 0:
                self.sleep(behind)

    def finish(self, job_id: str, started: float, state: str, message: str | None) -> None:
        self.contention.forget(job_id)
        now = self.clock()
        done = self.store.set_job_state_if(job_id, ["InProgress"], state=state,
                                           errorMessage=message,
                                           totalProcessingTime=int((now - started) * 1000),
                                           systemModstamp=sf_datetime(now))
        if done and state == "JobComplete":
            # Every row has its result now; only Failed and Aborted jobs serve their upload
            # again (as unprocessed records), so a completed job's CSV is dead weight.
            self.store.drop_upload(job_id)


def job_operation(body: Any, allowed: tuple[str, ...]) -> str:
    """A create body's `operation`, once the body is a JSON object and the operation is one
    this kind of job allows."""
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    operation = body.get("operation")
    if operation not in allowed:
        raise ApiError(400, "API_ERROR",
                       f"Invalid value: '{operation or ''}' supplied for property: 'operation'")
    return operation


def csv_options(body: dict[str, Any]) -> tuple[str, str]:
    """A create body's `columnDelimiter` and `lineEnding` (defaults filled in), once it and
    its `contentType` are checked: the same rules for every kind of job."""
    content_type = body.get("contentType", "CSV")
    if content_type != "CSV":
        raise ApiError(400, "API_ERROR",
                       f"Invalid value: '{content_type}' supplied for property: 'contentType'")
    delimiter = body.get("columnDelimiter", "COMMA")
    if delimiter not in csvfmt.DELIMITERS:
        raise ApiError(400, "API_ERROR", f"Invalid value: '{delimiter}' supplied for "
                       "property: 'columnDelimiter'")
    line_ending = body.get("lineEnding", "LF")
    if line_ending not in csvfmt.LINE_ENDINGS:
        raise ApiError(400, "API_ERROR",
                       f"Invalid value: '{line_ending}' supplied for property: 'lineEnding'")
    return delimiter, line_ending


def upload_too_large() -> ApiError:
    # 413 and the code are our guess; Salesforce documents the limit, not the refusal.
    return ApiError(413, "EXCEEDED_QUOTA",
                    "The data uploaded for this job is larger than 150 MB once base64 "
                    "encoded (about 100 MB of CSV); split it into several jobs")


def check_upload_size(size: int) -> None:
    if 4 * ((size + 2) // 3) > MAX_UPLOAD_BASE64:
        raise upload_too_large()
