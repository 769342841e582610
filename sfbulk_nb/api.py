"""The facade: DataFrame in, a BulkResult aligned row for row out.

    res = upsert_df(df, "Account", "customExtIdField__c")
    res = insert_df(df, "Contact"); update_df(df, "Account"); delete_df(ids, "Account")

A run checks the frame against the object's describe, formats every cell once, refuses
duplicate keys before anything is sent, splits the CSV into byte-exact chunks (one job
each), and runs up to `parallel` jobs at once: create, upload, close, poll, fetch the three
result CSVs. Results are joined back to the input by value (Bulk API 2.0 returns them in
no set order). Reaching `timeout` leaves jobs running; `res.wait()` carries on.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import pandas as pd

from . import encode, errors, jobs, results
from .bulkresult import BulkResult
from .org import Org, default_org
from .progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                       RUN_FINISHED, RUN_STARTED, ProgressEvent, reporter_for)

NULL_POLICIES = ("keep", "clear")


def upsert_df(df: pd.DataFrame, sobject: str, external_id: str, **options: Any) -> BulkResult:
    """Insert or update rows matched on `external_id` (an External ID field, or Id)."""
    return _run(df, sobject, "upsert", external_id, **options)


def insert_df(df: pd.DataFrame, sobject: str, **options: Any) -> BulkResult:
    """Create one record per row."""
    return _run(df, sobject, "insert", None, **options)


def update_df(df: pd.DataFrame, sobject: str, **options: Any) -> BulkResult:
    """Update records by their `Id` column; blank cells leave fields unchanged."""
    return _run(df, sobject, "update", "Id", **options)


def delete_df(df_or_ids: pd.DataFrame | pd.Series | Iterable[str], sobject: str, *,
              hard: bool = False, **options: Any) -> BulkResult:
    """Delete records by Id (`hard=True` skips the Recycle Bin; needs the Bulk API Hard
    Delete permission). Accepts a frame with an `Id` column, a Series or a list of ids."""
    return _run(id_frame(df_or_ids), sobject, "hardDelete" if hard else "delete", "Id",
                **options)


def id_frame(df_or_ids: pd.DataFrame | pd.Series | Iterable[str]) -> pd.DataFrame:
    """A frame with an `Id` column from a frame (as is), a Series or a list of ids."""
    if isinstance(df_or_ids, pd.DataFrame):
        return df_or_ids
    ids = df_or_ids if isinstance(df_or_ids, pd.Series) else pd.Series(list(df_or_ids))
    return pd.DataFrame({"Id": ids.astype("string") if len(ids) else ids.astype(object)})


def dry_run(df: pd.DataFrame, sobject: str, operation: str, external_id: str | None = None,
            **options: Any) -> pd.DataFrame:
    """Every check and the encoding of a load, without sending anything: one row per job
    that would run (rows, bytes). Raises the same InputError the real load would."""
    key = {"upsert": external_id, "update": "Id", "delete": "Id", "hardDelete": "Id"}.get(
        operation)
    if operation not in ("insert", "upsert", "update", "delete", "hardDelete"):
        raise errors.InputError(f"unknown operation {operation!r}")
    if operation == "upsert" and not external_id:
        raise errors.InputError("an upsert needs external_id")
    options.pop("wait", None)
    options.pop("timeout", None)
    options["progress"] = False  # nothing runs, so there is nothing to show
    if operation in ("delete", "hardDelete"):
        df = id_frame(df)
    run = _build(df, sobject, operation, key, **options)
    return pd.DataFrame({"rows": [c.records for c in run.chunks],
                         "bytes": [len(c.data) for c in run.chunks]})


def _run(df: pd.DataFrame, sobject: str, operation: str, key: str | None, *,
         wait: bool = True, timeout: float | None = None, **options: Any) -> BulkResult:
    run = _build(df, sobject, operation, key, **options)
    if wait:
        run.start(timeout=timeout)
    else:
        run.start_in_background()
    return run.result()


def _build(df: pd.DataFrame, sobject: str, operation: str, key: str | None, *,
         org: Org | None = None, nulls: Any = "keep", max_bytes: int = 100_000_000,
         max_records: int | None = None, parallel: int = 4, progress: Any = "auto",
         column_delimiter: str = "COMMA", line_ending: str = "LF", tz: str | None = None,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> "Run":
    if not isinstance(df, pd.DataFrame):
        raise errors.InputError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if parallel < 1:
        raise errors.InputError("parallel must be at least 1")
    org = org or default_org()
    return Run(org, df, sobject, operation, key, nulls=nulls, tz=tz, max_bytes=max_bytes,
               max_records=max_records, parallel=parallel, column_delimiter=column_delimiter,
               line_ending=line_ending, reporter=reporter_for(progress), clock=clock,
               sleep=sleep)


class Run:
    """One call of upsert_df & co: its chunks, jobs and outcomes. Resumable by wait()."""

    def __init__(self, org: Org, df: pd.DataFrame, sobject: str, operation: str,
                 key: str | None, *, nulls, tz, max_bytes, max_records, parallel,
                 column_delimiter, line_ending, reporter, clock, sleep):
        self.org = org
        self.df = df
        self.operation = operation
        self.reporter = reporter
        self.clock = clock
        self.sleep = sleep
        self.parallel = parallel
        self.column_delimiter = column_delimiter
        self.line_ending = line_ending
        self.calls_before = org.api_calls
        self.started = time.time()
        self.finished_at: float | None = None
        self.exceptions: list[BaseException] = []
        self._lock = threading.Lock()
        # For charts: when each job was first seen in each state, and every poll's counters.
        self.timeline_rows: list[dict[str, Any]] = []
        self.progress_rows: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._background_error: BaseException | None = None

        clash = [c for c in df.columns if c in results.STATUS_COLUMNS]
        if clash:
            raise errors.InputError(f"the frame already has result column(s) {clash}; drop or "
                                    "rename them (e.g. df.drop(columns=res.STATUS_COLUMNS))")
        describe = org.describe(sobject)
        self.sobject = describe["name"]
        fields = {f["name"].lower(): f for f in describe["fields"]}
        self.key = self._check_key(key, fields)
        to_send = df[["Id"]] if operation in ("delete", "hardDelete") else df
        field_types = {c: fields[c.lower()]["type"] for c in to_send.columns
                       if isinstance(c, str) and c.lower() in fields}
        self.key_case_insensitive = self._key_ignores_case(fields)
        # One preparation of the frame serves the texts (duplicate check, alignment) and
        # the CSV chunks.
        encoding = encode.Encoding(to_send, nulls=nulls, tz=tz, field_types=field_types)
        self.sent_text = encoding.text()
        dups = results.find_duplicate_keys(self.sent_text, operation, self.key,
                                           self.key_case_insensitive)
        if len(dups):
            raise errors.InputError(
                f"{len(dups)} row(s) cannot be sent: their {self.key} is blank or repeated, "
                "so their results could not be told apart. Fix or drop them:\n"
                + dups.head(20).to_string())
        self.chunks = list(encoding.chunks(
            column_delimiter=column_delimiter, line_ending=line_ending,
            max_bytes=max_bytes, max_records=max_records))
        self.chunk_bytes = [len(c.data) for c in self.chunks]
        self.outcomes = [results.JobOutcome(positions=c.positions, sent=False, finished=True)
                         for c in self.chunks]
        self._aligned: pd.DataFrame | None = None
        self.infos: list[jobs.JobInfo | None] = [None] * len(self.chunks)
        self.rows = len(df)

    @property
    def job_count(self) -> int:
        return len(self.chunks)

    def _check_key(self, key: str | None, fields: dict[str, dict]) -> str | None:
        if key is None:
            return None
        if key not in self.df.columns:
            raise errors.InputError(
                f"{self.operation} needs a {key!r} column; the frame has "
                f"{list(self.df.columns)[:20]}")
        f = fields.get(key.lower())
        if f is None:
            raise errors.InputError(f"{self.sobject} has no field {key!r}")
        if self.operation == "upsert" and key != "Id" and not (f.get("externalId")
                                                               or f.get("idLookup")):
            raise errors.InputError(f"{self.sobject}.{f['name']} is not an External ID field; "
                                    "upsert needs one (or Id)")
        return key

    def _key_ignores_case(self, fields: dict[str, dict]) -> bool:
        # Salesforce matches custom external ids without case only when the field is unique
        # and case-insensitive; ids always (their 18-character form is case-safe).
        if self.key is None:
            return False
        f = fields[self.key.lower()]
        if f["name"] == "Id" or not f.get("custom"):
            return True
        return bool(f.get("unique")) and not f.get("caseSensitive")

    # -- running ---------------------------------------------------------------------

    def emit(self, kind: str, **fields: Any) -> None:
        self._log(kind, fields)
        if self.reporter is not None:
            try:
                self.reporter(ProgressEvent(kind, self, **fields))
            except Exception:  # a broken display must never break the load
                self.reporter = None

    def _log(self, kind: str, fields: dict[str, Any]) -> None:
        job_id, state, chunk = fields.get("job_id"), fields.get("state"), fields.get("chunk")
        if job_id is None or state is None:
            return
        at = time.time()
        with self._lock:
            if not any(r["job_id"] == job_id and r["state"] == state
                       for r in self.timeline_rows):
                self.timeline_rows.append({"job_id": job_id, "chunk": chunk, "state": state,
                                           "at": at})
            if kind in (JOB_UPDATED, JOB_FINISHED):
                self.progress_rows.append({"job_id": job_id, "at": at,
                                           "processed": fields.get("processed", 0),
                                           "failed": fields.get("failed", 0)})

    def start(self, timeout: float | None) -> None:
        self.emit(RUN_STARTED)
        deadline = None if timeout is None else self.clock() + timeout
        with ThreadPoolExecutor(max_workers=min(self.parallel, max(1, self.job_count)),
                                thread_name_prefix="sfbulk-job") as pool:
            list(pool.map(lambda i: self._send_and_finish(i, deadline), range(self.job_count)))
        self._after()
        if self.exceptions and not any(o.sent for o in self.outcomes):
            raise self.exceptions[0]  # nothing reached Salesforce: the error is the answer

    def start_in_background(self) -> None:
        """Run the whole load in a thread (wait=False); `wait()` joins it."""
        def work() -> None:
            try:
                self.start(timeout=None)
            except BaseException as e:  # re-raised by wait()
                self._background_error = e

        self._thread = threading.Thread(target=work, name="sfbulk-run", daemon=True)
        self._thread.start()

    def _send_and_finish(self, i: int, deadline: float | None) -> None:
        chunk = self.chunks[i]
        job_id = None
        try:
            info = jobs.create_ingest_job(self.org, self.sobject, self.operation,
                                          external_id=self.key if self.operation == "upsert"
                                          else None, column_delimiter=self.column_delimiter,
                                          line_ending=self.line_ending)
            job_id = info.id
            self.outcomes[i].job_id = job_id
            self.emit(JOB_CREATED, chunk=i, job_id=job_id, state=info.state,
                      records=chunk.records)
            jobs.upload(self.org, job_id, chunk.data)
            # The bytes are Salesforce's now: keep only their size (for res.jobs).
            self.chunks[i] = dataclasses.replace(chunk, data=b"")
            self.emit(JOB_UPLOADED, chunk=i, job_id=job_id, records=chunk.records)
            self.infos[i] = jobs.close(self.org, job_id)
        except errors.SFBulkError as e:
            self._record(e, i)
            if job_id is not None:
                try:
                    jobs.abort(self.org, job_id)
                except errors.SFBulkError:
                    pass  # the rows are marked not_sent either way
            self.emit(ERROR, chunk=i, job_id=job_id, message=str(e))
            return
        self.outcomes[i].sent = True
        self.outcomes[i].finished = False
        self._finish(i, deadline, just_closed=True)

    def _finish(self, i: int, deadline: float | None, just_closed: bool = False) -> None:
        outcome = self.outcomes[i]
        chunk = self.chunks[i]
        remaining = None if deadline is None else max(0.0, deadline - self.clock())

        def update(info: jobs.JobInfo) -> None:
            self.infos[i] = info
            self.emit(JOB_UPDATED, chunk=i, job_id=info.id, state=info.state,
                      records=chunk.records, processed=info.processed, failed=info.failed)

        try:
            info = jobs.wait(self.org, outcome.job_id, timeout=remaining, clock=self.clock,
                             sleep=self.sleep, on_update=update, just_closed=just_closed)
            if not info.done:
                return
            with_rows = _result_kinds_with_rows(info)
            fetched = {kind: self._keep_needed(results.parse_result_csv(
                jobs.results(self.org, outcome.job_id, kind),
                column_delimiter=self.column_delimiter, line_ending=self.line_ending))
                if kind in with_rows else pd.DataFrame()
                for kind in jobs.RESULT_KINDS}
        except errors.SFBulkError as e:
            self._record(e, i)
            self.emit(ERROR, chunk=i, job_id=outcome.job_id, message=str(e))
            return
        outcome.successful = fetched["successfulResults"]
        outcome.failed = fetched["failedResults"]
        outcome.unprocessed = fetched["unprocessedrecords"]
        outcome.finished = True
        self.emit(JOB_FINISHED, chunk=i, job_id=outcome.job_id, state=info.state,
                  records=chunk.records, processed=info.processed, failed=info.failed)

    def _keep_needed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Only the columns alignment reads: the key and the sf__ columns (an insert matches
        on every column, so it keeps them all)."""
        if self.operation == "insert":
            return frame
        return frame[[c for c in frame.columns if c.startswith("sf__") or c == self.key]]

    def _record(self, e: BaseException, i: int) -> None:
        with self._lock:
            self.exceptions.append(e)

    def _after(self) -> None:
        if self.finished_at is None and all(o.finished for o in self.outcomes):
            self.finished_at = time.time()
            message = None
            if self.reporter is not None:
                counts = results.count_statuses(self.aligned())
                message = ", ".join(f"{n:,} {s}" for s, n in counts.items() if n) or "no rows"
            self.emit(RUN_FINISHED, message=message)

    @property
    def done(self) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return False
        return all(o.finished for o in self.outcomes)

    def wait(self, timeout: float | None = None) -> None:
        """Carry on polling jobs that were still running; fetch and align their results."""
        deadline = None if timeout is None else self.clock() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
            if self._background_error is not None:
                error, self._background_error = self._background_error, None
                raise error
            deadline = None if timeout is None else self.clock() + timeout
        pending = [i for i, o in enumerate(self.outcomes) if not o.finished]
        with ThreadPoolExecutor(max_workers=min(self.parallel, max(1, len(pending))),
                                thread_name_prefix="sfbulk-job") as pool:
            list(pool.map(lambda i: self._finish(i, deadline), pending))
        self._after()

    def abort(self) -> None:
        """Abort every job of the run that has not finished."""
        for i, outcome in enumerate(self.outcomes):
            if outcome.job_id and not outcome.finished:
                try:
                    self.infos[i] = jobs.abort(self.org, outcome.job_id)
                except errors.SFBulkError as e:
                    self._record(e, i)

    # -- results -----------------------------------------------------------------------

    def aligned(self) -> pd.DataFrame:
        """The status columns; computed once when the run is over (twice would double the
        peak memory of a big load)."""
        if self._aligned is not None:
            return self._aligned
        aligned = results.align(self.sent_text, self.operation, self.key, self.outcomes,
                                key_case_insensitive=self.key_case_insensitive)
        if self.finished_at is not None:
            self._aligned = aligned
        return aligned

    @property
    def api_calls(self) -> int:
        return self.org.api_calls - self.calls_before

    def result(self) -> BulkResult:
        return BulkResult(self)


def _result_kinds_with_rows(info: jobs.JobInfo) -> set[str]:
    """The result files that can hold rows, judged from the job's final counters; the others
    are not downloaded (two calls saved on a clean job). Unprocessed records exist only
    for jobs that ended Failed or Aborted."""
    kinds = set()
    if info.processed > info.failed:
        kinds.add("successfulResults")
    if info.failed:
        kinds.add("failedResults")
    if info.state != "JobComplete":
        kinds.add("unprocessedrecords")
    return kinds
