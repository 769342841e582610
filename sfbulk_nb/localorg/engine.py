"""Ingest jobs: the state machine, the one upload, and their processing (by the runner).

    create -> Open --PUT once--> Open --PATCH UploadComplete--> UploadComplete
           -> (runner) InProgress -> JobComplete | Failed          PATCH Aborted from any
                                                                   unfinished state

The runner's worker (runner.py) takes closed jobs from its queue and hands them to
`Engine.process`, which works in internal batches of 10,000 rows (200 when paced, so
progress moves smoothly). Every batch commits its record changes, its result rows and the
job's counters in one transaction, so a job survives a restart of the server: unfinished
jobs are queued again on start and resume after the last committed batch.
"""
from __future__ import annotations

import json
import os
import random
import re
from datetime import datetime, timezone
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

from . import csvfmt, ids
from .catalog import Catalog
from .errors import ApiError, invalid_state, not_found
from .contention import Contention
from .faults import Faults
from .limits import BATCHES_EXCEEDED, BULK_BATCHES, Limits
from .records import BatchResult, Header, JobFailure, apply_batch
from .rules import RuleBook
from .runner import Run, Runner, sf_datetime
from .store import Store

KIND = "ingest"
BATCH_SIZE = 10_000
LIST_PAGE_SIZE = 1000
# Salesforce refuses uploads over 150 MB once base64 encoded (the protocol notes, 4.6).
MAX_UPLOAD_BASE64 = 150 * 1024 * 1024
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
UNFINISHED = ("Open", "UploadComplete", "InProgress")
RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")


def record_datetime(ts: float) -> str:
    """Record audit fields, in the store's datetime form."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Engine:
    """Ingest jobs: their API operations, and `process`, the runner's processor for them."""

    def __init__(self, store: Store, catalog: Catalog, runner: Runner, *,
                 result_order: str = "shuffled", seed: int | None = None,
                 faults: Faults | None = None, limits: Limits | None = None,
                 contention: Contention | None = None):
        if result_order not in ("shuffled", "input"):
            raise ValueError("result_order must be 'shuffled' or 'input'")
        self.store = store
        self.catalog = catalog
        self.runner = runner
        self.rules = RuleBook(store)
        self.clock = runner.clock
        self.result_order = result_order
        self.random = random.Random(seed)
        self.job_faults = runner.job_faults  # the runner's: for a job of any kind
        self.faults = faults or Faults()  # for its row locks
        self.limits = limits or Limits(store, clock=self.clock)
        self.contention = contention or Contention()
        runner.register(KIND, self.process)

    @property
    def pace(self) -> float | None:
        return self.runner.pace

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the runner has processed every queued job (of any kind)."""
        return self.runner.wait_idle(timeout)

    # -- API operations -----------------------------------------------------------------

    def create_job(self, body: Any, api_version: float, user_id: str) -> dict[str, Any]:
        self.runner.expire_old_jobs()
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
            "id": job_id, "kind": KIND, "operation": operation, "object": obj.name,
            "createdById": user_id, "createdDate": now, "systemModstamp": now, "state": "Open",
            "externalIdFieldName": external_id, "concurrencyMode": "Parallel",
            "contentType": "CSV", "apiVersion": api_version, "jobType": "V2Ingest",
            "lineEnding": line_ending, "columnDelimiter": delimiter,
            "assignmentRuleId": body.get("assignmentRuleId"),
        }
        self.store.insert_job(job)
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id, KIND)
        if job is None:
            raise not_found()
        return job

    def upload(self, job_id: str, data: bytes | bytearray | BinaryIO) -> None:
        """Keep a job's one upload: its bytes, or a file (a request body spooled to disk,
        Store.spool) holding them."""
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
        check_upload_size(upload_size(data))
        self.store.save_upload(job_id, data, sf_datetime(self.clock()))

    def set_state(self, job_id: str, state: Any) -> dict[str, Any]:
        job = self.get_job(job_id)
        now = sf_datetime(self.clock())
        if state == "UploadComplete":
            if not self.store.set_job_state(job_id, "UploadComplete", ["Open"],
                                            systemModstamp=now):
                raise invalid_state(f"Invalid state transition from {job['state']} to "
                                    "UploadComplete")
            self.runner.enqueue(job_id, KIND)
        elif state == "Aborted":
            if not self.store.set_job_state(job_id, "Aborted", UNFINISHED, systemModstamp=now):
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
                  kind: str = KIND) -> tuple[list[dict], str | None]:
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

    def process(self, run: Run) -> None:
        """Process an ingest job the runner has put InProgress, after its last committed
        batch."""
        job, job_id, started = run.job, run.id, run.started
        try:
            if not job["uploaded"]:
                # Our guess at the wording: closing a job without data fails it.
                raise JobFailure("InvalidBatch : No data uploaded for this job")
            # Validated whole first (a bad file fails the job before any row is written),
            # then read a batch at a time so a big job never holds all its rows at once;
            # both read the stored upload a piece at a time (see csvfmt.open_upload).
            upload = csvfmt.open_upload(self.store.upload(job_id), job["columnDelimiter"],
                                        job["lineEnding"])
            names = upload.header
            obj = self.catalog.get(job["object"])
            header = Header.parse(self.catalog, obj, job["operation"], names,
                                  job["externalIdFieldName"])
        except (csvfmt.CsvFormatError, JobFailure) as e:
            self._finish(run, "Failed", str(e))
            return
        self.store.set_result_header(job_id, names)
        step = run.step(BATCH_SIZE)
        fault = run.take_fault()
        position = job["rowsProcessedUpTo"]
        processed, failed = job["numberRecordsProcessed"], job["numberRecordsFailed"]
        # A job fault stops processing at its row count, within a batch if need be.
        stop = None if fault is None else position + max(0, fault.after_records - processed)
        retries = job["retries"] or 0
        for batch in upload.column_batches(step, start=position):
            if self.store.get_job(job_id, KIND)["state"] != "InProgress":
                return  # aborted (or deleted) while running
            if stop is not None:
                if position >= stop:
                    break
                batch = [column[:stop - position] for column in batch]
            # Each internal batch of BATCH_SIZE rows uses one of the day's batches as it
            # starts (a paced step is a part of one); none left fails the job, the rest
            # of its rows unprocessed (see limits.py).
            if position % BATCH_SIZE == 0 and not self.limits.take(BULK_BATCHES):
                self._finish(run, "Failed", BATCHES_EXCEEDED)
                return
            batch_started = self.clock()
            now = self.clock()
            seq = position

            size = len(batch[0])

            # Called within this iteration (apply_batch's transaction): the defaults pin
            # this batch's values all the same.
            def save_results(conn, outcome, end=position + size, seq=seq, size=size,
                             batch_started=batch_started, texts=batch):
                nonlocal processed, failed
                if self.result_order == "shuffled":
                    self._shuffle(outcome.failed)
                opts = {"line_ending": job["lineEnding"],
                        "column_delimiter": job["columnDelimiter"]}
                self.store.add_results(conn, job_id, "successfulResults", seq,
                                       self._successful_results(outcome, texts, opts))
                self.store.add_results(conn, job_id, "failedResults", seq,
                                       csvfmt.render_rows(outcome.failed, **opts))
                processed += size
                failed += len(outcome.failed)
                elapsed = int((self.clock() - started) * 1000)
                active = int((self.clock() - batch_started) * 1000)
                self.store.record_progress(conn, job_id, processed=processed, failed=failed,
                                           rows_up_to=end, total_ms=elapsed, active_ms=active,
                                           stamp=sf_datetime(self.clock()))

            locked = self.faults.locked_rows(size)
            if self.contention.on:
                contended = self.contention.locked_rows(
                    self.contention.row_parents(header, batch), self._other_jobs_parents(job_id))
                if contended:
                    locked |= contended
                    retries += 1
                    self.store.set_job_retries(job_id, retries)
            apply_batch(self.store, header, batch, external_id=job["externalIdFieldName"],
                        user_id=job["createdById"], now=record_datetime(now),
                        locked=locked, on_commit=save_results,
                        validation=self.rules.active(obj))
            position += size
            run.keep_pace(processed)
        if fault is not None:
            self._finish(run, "Failed", fault.message)
            return
        self._finish(run, "JobComplete", None)

    def _successful_results(self, outcome: BatchResult, texts: list[list[str]],
                            opts: dict[str, str]) -> bytes:
        """The successful rows' result lines (sf__Id, sf__Created, the row's cells), picked
        and shuffled by Arrow a column at a time."""
        rows = list(outcome.ids)
        if not rows:
            return b""
        created = outcome.created
        if len(created) in (0, len(rows)):  # all updated, or all inserted: one flag
            flags = pa.repeat(pa.scalar("true" if created else "false"), len(rows))
        else:
            flags = pa.array(["true" if i in created else "false" for i in rows], pa.string())
        columns = [pa.array(list(outcome.ids.values()), pa.string()), flags]
        picked: Any = rows
        if self.result_order == "shuffled":
            order = np.random.default_rng(self.random.getrandbits(64)).permutation(len(rows))
            columns = [column.take(order) for column in columns]
            picked = np.asarray(rows)[order]
        columns += [pa.array(column, pa.string()).take(picked) for column in texts]
        return csvfmt.render_columns(columns, **opts)

    def _shuffle(self, rows: list) -> None:
        """Shuffle result rows in place, reproducibly for a seeded org. NumPy's permutation:
        random.shuffle draws one Python-level random number per row (0.1 s per 100,000)."""
        if len(rows) > 1:
            order = np.random.default_rng(self.random.getrandbits(64)).permutation(len(rows))
            rows[:] = map(rows.__getitem__, order.tolist())

    def _finish(self, run: Run, state: str, message: str | None) -> None:
        self.contention.forget(run.id)
        run.finish(state, message)

    def _other_jobs_parents(self, job_id: str) -> list[frozenset[str]]:
        """The parent keys of the other ingest jobs waiting to be processed (contention)."""
        found = []
        for kind, other in self.store.unfinished_jobs():
            if kind != KIND or other == job_id:
                continue

            def read(other: str = other):
                job = self.store.get_job(other, KIND)
                data = self.store.upload(other) or b""
                names = csvfmt.open_upload(data, job["columnDelimiter"], job["lineEnding"]).header
                header = Header.parse(self.catalog, self.catalog.get(job["object"]),
                                      job["operation"], names, job["externalIdFieldName"])
                return header, data, job["columnDelimiter"], job["lineEnding"]

            try:
                found.append(self.contention.job_parents(other, read))
            except Exception:  # noqa: BLE001 - a job whose upload fails parsing fails on its own
                continue
        return found


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


def upload_size(data: bytes | bytearray | BinaryIO) -> int:
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    return data.seek(0, os.SEEK_END)


def check_upload_size(size: int) -> None:
    if 4 * ((size + 2) // 3) > MAX_UPLOAD_BASE64:
        raise upload_too_large()
