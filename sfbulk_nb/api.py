"""The facade: DataFrame in, a BulkResult aligned row for row out.

    res = upsert_df(df, "Account", "customExtIdField__c")
    res = insert_df(df, "Contact"); update_df(df, "Account"); delete_df(ids, "Account")

A run checks the frame against the object's describe, formats every cell once, refuses
duplicate keys before anything is sent, splits the CSV into byte-exact chunks (one job
each), and runs up to `parallel` jobs at once: create, upload, close, poll, fetch the three
result CSVs. Results are joined back to the input by value (Bulk API 2.0 returns them in
no set order). Reaching `timeout` leaves jobs running; `res.wait()` carries on.

Each of them also takes a `dask.dataframe.DataFrame`: its partitions are checked and
encoded on the Dask workers, and the call returns the status columns as a Dask DataFrame
with the input's partitions (see sfbulk_nb.daskload).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import daskload, encode, errors, jobs, journal, memory, results
from . import plan as plan_stage
from .bulkresult import BulkResult
from .org import Org, org_or_default
from .problems import Problems
from .retrying import Retrying
from .progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                       RUN_FINISHED, RUN_STARTED, ProgressEvent, RunInfo, reporter_for)

NULL_POLICIES = ("keep", "clear")
ON_INVALID = plan_stage.ON_INVALID
# The options of a load: what the plan stage takes, and what running it takes.
_PLAN_OPTIONS = tuple(f.name for f in dataclasses.fields(plan_stage.LoadOptions))
_RUN_OPTIONS = ("org", "parallel", "progress", "wait", "timeout", "clock", "sleep",
                "lock_retries", "force")


# An iterable of DataFrames (a generator, pd.read_csv(chunksize=)) instead of a frame is
# streamed (sfbulk_nb.stream): the load returns a StreamResult whose rows are in a results
# file (`results=`, default <run id>.results.csv here), not an aligned BulkResult. A Dask
# DataFrame gives a Dask DataFrame of the status columns (sfbulk_nb.daskload).


def upsert_df(df: pd.DataFrame | Iterable[pd.DataFrame], sobject: str, external_id: str,
              **options: Any) -> BulkResult:
    """Insert or update rows matched on `external_id` (an External ID field, or Id). An
    iterable of frames is streamed: a StreamResult (see sfbulk_nb.stream). A Dask
    DataFrame gives a Dask DataFrame of the status columns (sfbulk_nb.daskload)."""
    return _run(df, sobject, "upsert", external_id, **options)


def insert_df(df: pd.DataFrame | Iterable[pd.DataFrame], sobject: str,
              **options: Any) -> BulkResult:
    """Create one record per row (an iterable of frames: streamed, see upsert_df)."""
    return _run(df, sobject, "insert", None, **options)


def update_df(df: pd.DataFrame | Iterable[pd.DataFrame], sobject: str,
              **options: Any) -> BulkResult:
    """Update records by their `Id` column; blank cells leave fields unchanged (an
    iterable of frames: streamed, see upsert_df)."""
    return _run(df, sobject, "update", None, **options)


def delete_df(df_or_ids: pd.DataFrame | pd.Series | Iterable[str], sobject: str, *,
              hard: bool = False, **options: Any) -> BulkResult:
    """Delete records by Id (`hard=True` skips the Recycle Bin; needs the Bulk API Hard
    Delete permission). Accepts a frame with an `Id` column, a Series or a list of ids
    (also a Dask frame or Series: sfbulk_nb.daskload)."""
    if not isinstance(hard, (bool, np.bool_)):
        # hard="no" is truthy: a typo here must not turn into a delete that skips the bin.
        raise errors.InputError(f"hard must be True or False, not {hard!r}")
    operation = "hardDelete" if hard else "delete"
    if daskload.is_dask(df_or_ids):
        return _run(df_or_ids, sobject, operation, None, **options)
    from .stream import frames_of

    frames, df_or_ids = frames_of(df_or_ids)
    if frames is not None:
        return _run(frames, sobject, operation, None, **options)
    return _run(id_frame(df_or_ids), sobject, operation, None, **options)


_IDS_HOW = "give the ids as a list, a Series or a frame with an Id column"


def id_frame(df_or_ids: pd.DataFrame | pd.Series | Iterable[str]) -> pd.DataFrame:
    """A frame with an `Id` column from a frame (as is), a Series or a list of ids."""
    if isinstance(df_or_ids, pd.DataFrame):
        return df_or_ids
    if isinstance(df_or_ids, (str, bytes)):
        raise errors.InputError(f"{_IDS_HOW}, not one {type(df_or_ids).__name__} (one id: "
                                "[the_id])")
    if isinstance(df_or_ids, Mapping):
        # Iterating a dict gives its keys: they would be sent as ids.
        raise errors.InputError(f"{_IDS_HOW}, not a {type(df_or_ids).__name__}; for a dict of "
                                "columns use pd.DataFrame(data)")
    if not isinstance(df_or_ids, Iterable):
        raise errors.InputError(f"{_IDS_HOW}, not {df_or_ids!r}")
    ids = df_or_ids if isinstance(df_or_ids, pd.Series) else pd.Series(list(df_or_ids))
    return pd.DataFrame({"Id": ids.astype("string") if len(ids) else ids.astype(object)})


@memory.lean()  # the checks allocate as much as the load's encoding
def validate_df(df: pd.DataFrame, sobject: str, external_id: str | None = None,
                operation: str = "upsert", org: Org | None = None, *, nulls: Any = "keep",
                tz: str | None = None, **options: Any) -> Problems:
    """Every problem of every row of ``df`` for a load, before anything is sent: a
    `Problems` frame, one row per problem, that shows as its summary with a fix per group
    (see sfbulk_nb.validate). ``external_id`` is the upsert key; update and delete match
    on Id. Only describes are fetched: the object's, its parents' for relationship columns,
    and the key prefixes of describeGlobal when a lookup field is written by id.
    ``options``: the load's other options (one set serves both calls), checked as the
    load checks them; ``column_delimiter`` and ``line_ending`` count here too.
    ``rules=True`` also checks the object's active validation rules (fetched through the
    Tooling API, see sfbulk_nb.rules) on the rows as they would be sent. A Dask frame is
    checked on its workers (sfbulk_nb.daskload), keys repeated across partitions included."""
    if operation == "upsert" and external_id is None:
        raise errors.InputError("validate_df for an upsert needs external_id (or pass "
                                "operation='insert', 'update' or 'delete')")
    dask_frame = daskload.is_dask(df)
    if operation in ("delete", "hardDelete") and not isinstance(df, pd.DataFrame) \
            and not dask_frame:
        df = id_frame(df)
    _check_options(options)
    org = _run_settings({**options, "org": org})["org"]
    plan_options = {k: v for k, v in options.items() if k in _PLAN_OPTIONS}
    if dask_frame:
        if plan_options.get("rules"):
            raise errors.InputError("rules=True cannot be used with a Dask frame yet; "
                                    "check df.compute() (a pandas frame) instead")
        return daskload.problems_of(org, df, sobject, operation, external_id,
                                    plan_stage.LoadOptions(nulls=nulls, tz=tz, **plan_options))
    found = plan_stage.inspect(org, df, sobject, operation, external_id,
                               plan_stage.LoadOptions(nulls=nulls, tz=tz, **plan_options))
    return found.checked.problems


@memory.lean()
def dry_run(df: pd.DataFrame, sobject: str, operation: str = "upsert",
            external_id: str | None = None, *, lookup: bool = False,
            **options: Any) -> plan_stage.LoadPlan:
    """Every check and the encoding of a load, without sending anything: the `LoadPlan`
    (`.jobs`: one row per job that would run; `.problems`). Raises what the real load
    would (ValidationError with on_invalid="raise"). ``lookup=True`` also asks the org
    which rows would create and which would update (`plan.existing`; a few queries).
    A Dask frame is checked and encoded on its workers, as its load would be."""
    dask_frame = daskload.is_dask(df)
    if operation in ("delete", "hardDelete") and not dask_frame:
        df = id_frame(df)
    _check_options(options)
    # Checked as the load would check them; nothing runs, so nothing uses them but org.
    org = _run_settings(options)["org"]
    if dask_frame:  # checked and encoded on the workers, as the load would
        plan = daskload.dry_run(org, df, sobject, operation, external_id, options)
    else:
        plan = plan_stage.make_plan(org, df, sobject, operation, external_id,
                                    plan_stage.LoadOptions(**options))
    if lookup and plan.existing is None:
        plan.lookup()
    return plan


def _check_options(options: dict[str, Any]) -> None:
    unknown = [k for k in options if k not in _PLAN_OPTIONS + _RUN_OPTIONS]
    if unknown:
        close = {k: difflib.get_close_matches(k, _PLAN_OPTIONS + _RUN_OPTIONS, n=1) for k in unknown}
        said = ", ".join(f"{k!r}" + (f" (did you mean {c[0]!r}?)" if c else "")
                         for k, c in close.items())
        raise errors.InputError(f"unknown option {said}; the options are "
                                f"{', '.join(sorted(_PLAN_OPTIONS + _RUN_OPTIONS))}")


def _run(df: pd.DataFrame | Iterable[pd.DataFrame], sobject: str, operation: str,
         external_id: str | None, **options: Any) -> BulkResult:
    with memory.lean():  # a big load's buffers from allocators that give them back
        return _run_load(df, sobject, operation, external_id, **options)


def _run_load(df: pd.DataFrame | Iterable[pd.DataFrame], sobject: str, operation: str,
              external_id: str | None, **options: Any) -> BulkResult:
    if daskload.is_dask(df):  # a Dask frame: checked and encoded on its workers
        return daskload.run(df, sobject, operation, external_id, **options)
    from .stream import frames_of, load_frames

    frames, df = frames_of(df)
    if frames is not None:
        return load_frames(frames, sobject, operation, external_id, **options)
    if "results" in options:
        raise errors.InputError("results= is for a streamed load (an iterable of frames, or "
                                "upsert_csv & co); a frame's result is returned: "
                                "res.frame.to_csv(path)")
    return start_run(df, sobject, operation, external_id, **options).result()


def start_run(df: pd.DataFrame, sobject: str, operation: str, external_id: str | None,
              **options: Any) -> "Run":
    """Plan a load and run it (to the end, to `timeout`, or in the background with
    wait=False); the Run behind a BulkResult."""
    _check_options(options)
    settings = _run_settings(options)
    org = settings["org"]
    plan = plan_stage.make_plan(org, df, sobject, operation, external_id,
                                plan_stage.LoadOptions(**options))
    return run_plan(plan, journal.fingerprint(df), settings,
                    legacy_print=lambda: journal.legacy_fingerprint(df))


def run_plan(plan: plan_stage.LoadPlan, print_: str, settings: dict[str, Any], *,
             legacy_print: Callable[[], str]) -> "Run":
    """Run a plan with the settings of _run_settings; ``print_``: the input's fingerprint
    (journal.fingerprint), which the journal keeps; ``legacy_print`` gives the one older
    versions kept (journal.same_print)."""
    org = plan.org
    if not settings["force"]:
        _refuse_unfinished(print_, org, plan, functools.cache(legacy_print))
    # The panel only once the plan stands: a load stopped by its checks shows none.
    run = Run(plan, parallel=settings["parallel"], reporter=reporter_for(settings["progress"]),
              clock=settings["clock"], sleep=settings["sleep"],
              lock_retries=settings["lock_retries"], fingerprint=print_)
    if settings["wait"]:
        run.start(timeout=settings["timeout"])
    else:
        run.start_in_background()
    return run


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _run_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Takes the options of running a load out of ``options`` (what remains is the plan's)
    and checks them: a wrong value is an InputError that says what it takes, before
    anything is sent."""
    settings = {"wait": options.pop("wait", True), "timeout": options.pop("timeout", None),
                "parallel": options.pop("parallel", 4),
                "lock_retries": options.pop("lock_retries", 2),
                "progress": options.pop("progress", "auto"),
                "clock": options.pop("clock", time.monotonic),
                "sleep": options.pop("sleep", time.sleep), "force": options.pop("force", False)}
    if not _whole(settings["parallel"]) or settings["parallel"] < 1:
        raise errors.InputError(f"parallel must be a whole number of at least 1, not "
                                f"{settings['parallel']!r}")
    if not _whole(settings["lock_retries"]) or settings["lock_retries"] < 0:
        raise errors.InputError(f"lock_retries must be a whole number of at least 0, not "
                                f"{settings['lock_retries']!r}")
    progress = settings["progress"]
    if not (progress in ("auto", "text", True, False, None) or callable(progress)):
        raise errors.InputError(f"progress must be 'auto', 'text', False or a callable, not "
                                f"{progress!r}")
    # wait="no" and force="no" are truthy: a typo must not flip what the run does.
    for name in ("wait", "force"):
        if not isinstance(settings[name], (bool, np.bool_)):
            raise errors.InputError(f"{name} must be True or False, not {settings[name]!r}")
    jobs.check_timeout(settings["timeout"])
    for name in ("clock", "sleep"):
        if not callable(settings[name]):
            raise errors.InputError(f"{name} must be a function, not {settings[name]!r}")
    settings["org"] = org_or_default(options.pop("org", None))
    return settings


def _refuse_unfinished(print_: str, org: Org, plan: plan_stage.LoadPlan,
                       legacy_print: Callable[[], str]) -> None:
    """Sending a frame again while the journal has a run of it that did not finish (a
    kernel restart, a timeout, a run still going) would send its rows twice."""
    for record in journal.records(state=journal.RUNNING):
        d = record.data
        # The fingerprint last: an old record's needs the frame hashed the old way.
        if (journal.same_org(d, org)
                and d.get("sobject") == plan.sobject and d.get("operation") == plan.operation
                and journal.same_print(d.get("fingerprint"), print_, legacy_print)):
            raise errors.RunInProgressError(
                f"run {record.run_id} of this same frame ({plan.operation} into {plan.sobject}, "
                f"started {d.get('created')}) has not finished, so its rows may be written "
                f"already. Nothing was sent. Pick it up with sfb.resume({record.run_id!r}, df) "
                f"(or res.wait() if you still have its result), or pass force=True to send "
                f"every row again", run_id=record.run_id)


_last_run: "Run | None" = None


def set_last_run(run: "Run") -> None:
    global _last_run
    _last_run = run


def last_result() -> BulkResult | None:
    """The result of the latest load of this process (None before any): for a run
    interrupted with Ctrl-C, or one whose cell's value was not kept."""
    return _last_run.result() if _last_run is not None else None


def _ui_poller():
    """jupyter-ui-poll's event handler, when this is a kernel it can work in."""
    from .progress import _in_kernel

    if not _in_kernel():  # a panel shown in a terminal IPython or a test: no messages
        return None
    from IPython import get_ipython

    if not hasattr(get_ipython().kernel, "do_one_iteration"):
        return None  # ipykernel 7 has no such step (widgets.route_clicks_off_the_main_thread)
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:
        return None
    return ui_events()


class Run:
    """One call of upsert_df & co: executes a LoadPlan's jobs and keeps their outcomes.
    Resumable by wait(). The constructor does no I/O and no encoding."""

    def __init__(self, plan: plan_stage.LoadPlan, *, parallel: int = 4,
                 reporter: Callable[[ProgressEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, lock_retries: int = 2,
                 fingerprint: str | None = None, run_id: str | None = None):
        self.plan = plan
        # The journal record (journal.py): written before the first job when the run has
        # a fingerprint of its input, which resume() needs to find and check it.
        self.run_id = run_id or journal.new_run_id()
        self.fingerprint = fingerprint
        self.record: journal.Record | None = None
        self.org = plan.org
        self.df = plan.df
        self.sobject = plan.sobject
        self.operation = plan.operation
        self.key = plan.key
        # The key's column as sent (results echo the caller's spelling of the header).
        self.key_column = (plan_stage._column_of(plan.sent_text, plan.key)
                           if plan.key is not None and len(plan.sent_text.columns) else None)
        self.key_case_insensitive = plan.key_case_insensitive
        # Rows sharing a key (sent with on_invalid="send") are matched to their results by
        # all their cells: then the result files keep every column.
        # No key repeats among the checked rows: none among those sent (a subset, as checked).
        self._keep_all_columns = plan.key_repeats is not False and results.keys_repeat(
            plan.sent_text, plan.operation, self.key_column or plan.key,
            plan.key_case_insensitive)
        self.column_delimiter = plan.options.column_delimiter
        self.line_ending = plan.options.line_ending
        self.sent_text = plan.sent_text
        self.chunks = list(plan.chunks)
        self.reporter = reporter
        self.clock = clock
        # Abort or Ctrl-C: no job is created or closed any more. Ctrl-C: no waiting either
        # (a wait in progress ends at once when time.sleep is the clock's sleep).
        self._no_new_jobs = threading.Event()
        self._stop = threading.Event()
        self.sleep = self._stop.wait if sleep is time.sleep else sleep
        self.retry = Retrying(sleep=self.sleep)
        self.parallel = parallel
        self.calls_before = self.org.api_calls - plan.describe_calls
        self.started = time.time()
        self.finished_at: float | None = None
        self.exceptions: list[BaseException] = []
        self._lock = threading.Lock()
        # Jobs are created one at a time: a create whose answer was lost looks for its job
        # among the org's Open jobs, and must know every other job of the run by then.
        self._create_lock = threading.Lock()
        # For charts: when each job was first seen in each state, and every poll's counters.
        self.timeline_rows: list[dict[str, Any]] = []
        self.progress_rows: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._background_error: BaseException | None = None
        self.chunk_bytes = [len(c.data) for c in self.chunks]
        self.outcomes = [results.JobOutcome(positions=c.positions, sent=False, finished=True)
                         for c in self.chunks]
        self._aligned: pd.DataFrame | None = None
        self.infos: list[jobs.JobInfo | None] = [None] * len(self.chunks)
        self.rows = len(self.df)
        # Rounds of jobs: the plan's, then follow-ups for rows failed by lock contention.
        # Each: (the sent rows it carries, None for all; the indexes of its jobs), and its
        # jobs' positions index into those rows.
        self.lock_retries = lock_retries
        self.rounds: list[tuple[np.ndarray | None, list[int]]] = [
            (None, list(range(len(self.chunks))))]

    @property
    def job_count(self) -> int:
        return len(self.chunks)

    # -- running ---------------------------------------------------------------------

    @property
    def info(self) -> RunInfo:
        """What a display may know of the run (progress.RunInfo)."""
        return RunInfo("load", self.operation, self.sobject, self.org.label, self.org.kind,
                       rows=len(self.plan.positions), job_count=len(self.chunks),
                       run_id=self.run_id, abort=self.abort)

    def emit(self, kind: str, **fields: Any) -> None:
        self._log(kind, fields)
        if self.reporter is not None:
            try:
                self.reporter(ProgressEvent(kind, self.info, api_calls=self.api_calls,
                                            api_usage=self.org.api_usage, **fields))
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

    def _journal(self, i: int, **fields: Any) -> None:
        if self.record is not None:
            self.record.job(i, **fields)

    def _open_journal(self) -> None:
        """Write the run's record before its first job is created (see journal.py)."""
        if self.record is not None or self.fingerprint is None:
            return
        options = dataclasses.asdict(self.plan.options)
        options["lock_retries"] = self.lock_retries
        if options["if_unmodified_since"] is not None:
            options["if_unmodified_since"] = options["if_unmodified_since"].isoformat()
        self.record = journal.start(
            self.run_id, org=self.org, sobject=self.sobject, operation=self.operation,
            key=self.key, options=options, fingerprint_text=self.fingerprint, rows=self.rows,
            skipped=self.plan.invalid_positions.tolist(),
            chunks=[(c.positions.start, c.positions.stop) for c in self.chunks],
            held={k: v[0].tolist() for k, v in self.plan.held.items()},
            changes=(self.plan.changes.to_table() if self.plan.looks_up_before_sending
                     and self.plan.changes is not None else None))

    def start(self, timeout: float | None) -> None:
        """Run the load while the calling thread waits (see _foreground)."""
        self._foreground(lambda: self._start_work(timeout))

    def start_in_background(self) -> None:
        """Run the whole load in a thread (wait=False); `wait()` joins it."""
        self._in_background(lambda: self._start_work(None))

    def start_waiting_in_background(self) -> None:
        """Carry on with the run's unfinished jobs in a thread (resume with wait=False)."""
        self._in_background(lambda: self._wait_work(None))

    def _start_work(self, timeout: float | None) -> None:
        self._open_journal()
        self.emit(RUN_STARTED)
        deadline = None if timeout is None else self.clock() + timeout
        self._each_job(self._send_and_finish, range(self.job_count), deadline)
        self._follow_ups(deadline)
        self._after()
        if self.exceptions and not any(o.job_id for o in self.outcomes):
            # No job exists: nothing can have been written, and the error is the answer.
            # Once one does, the result is returned and keeps every error (exceptions).
            if self.record is not None:
                self.record.path.unlink(missing_ok=True)  # a run that never was
            raise self.exceptions[0]

    def _wait_work(self, timeout: float | None) -> None:
        deadline = None if timeout is None else self.clock() + timeout
        self._each_job(self._finish, [i for i, o in enumerate(self.outcomes) if not o.finished],
                       deadline)
        self._follow_ups(deadline)
        self._after()

    def _each_job(self, step: Callable[..., None], indexes, deadline: float | None) -> None:
        indexes = list(indexes)
        with ThreadPoolExecutor(max_workers=min(self.parallel, max(1, len(indexes))),
                                thread_name_prefix="sfbulk-job") as pool:
            list(pool.map(lambda i: self._guarded(step, i, deadline), indexes))

    def _in_background(self, work: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                work()
            except BaseException as e:  # re-raised by wait()
                self._background_error = e

        set_last_run(self)
        self._thread = threading.Thread(target=guarded, name="sfbulk-run", daemon=True)
        self._thread.start()

    def _foreground(self, work: Callable[[], None]) -> None:
        """Do ``work`` on a thread of its own while the calling thread waits for it. The
        waiting thread stays free: a Ctrl-C (or the notebook's stop button) reaches it
        (see _interrupted), and in a kernel with the live panel it handles the panel's
        messages, so Abort works while the cell runs (a cell's thread would otherwise see
        the click only when the cell ends; jupyter-ui-poll does the handling)."""
        self._in_background(work)
        poll = _ui_poller() if getattr(self.reporter, "wants_ui_events", False) else None
        try:
            with poll if poll is not None else contextlib.nullcontext() as handle:
                while self._thread.is_alive():
                    if handle is not None:
                        handle(20)  # at most 20 widget messages, then look again
                    self._thread.join(0.05)
        except KeyboardInterrupt:
            self._interrupted()
        if self._background_error is not None:
            error, self._background_error = self._background_error, None
            raise error

    def _interrupted(self) -> None:
        """Ctrl-C during a run: no job is created or closed any more and polling stops,
        but jobs already closed keep running in the org (only Abort stops those). The
        run stays reachable (sfb.last_result()) and says how to carry on."""
        self._stop.set()
        self._no_new_jobs.set()
        self._thread.join()
        self._stop.clear()
        running = [f"job {i + 1} ({o.job_id})" for i, o in enumerate(self.outcomes)
                   if o.sent and not o.finished]
        not_sent = sum(len(o.positions) for o in self.outcomes if not o.sent)
        lines = ["Interrupted. " + (f"Still running in the org: {', '.join(running)}."
                                    if running else "No job is running in the org.")]
        if not_sent:
            lines.append(f"{not_sent:,} row(s) were not sent.")
        lines.append("res = sfb.last_result(); res.wait() carries on"
                     + (", res.abort() stops the jobs" if running else "")
                     + ("; res.retry() sends the rows not sent" if not_sent else "") + ".")
        message = " ".join(lines)
        print(message, file=sys.stderr)
        raise KeyboardInterrupt(message)

    def _guarded(self, step: Callable[..., None], i: int, *args: Any) -> None:
        """One job's step; an error that is no SFBulkError (a bug) is kept like any other,
        as a RunError, instead of ending the whole run."""
        try:
            step(i, *args)
        except Exception as e:  # noqa: BLE001 - kept on the result, raised by raise_for_status
            error = errors.RunError(f"job {i + 1}: unexpected {type(e).__name__}: {e}")
            error.__cause__ = e
            self._record(error, i)
            outcome = self.outcomes[i]
            if outcome.sent:
                outcome.error = ("NOT_KNOWN_YET", f"{error}; res.wait() asks the org again")
            else:
                outcome.error = ("NOT_SENT", f"not sent: {error}")
            self.emit(ERROR, chunk=i, job_id=outcome.job_id, message=str(error))

    def _known_jobs(self) -> set[str]:
        with self._lock:
            return {o.job_id for o in self.outcomes if o.job_id}

    def _send_and_finish(self, i: int, deadline: float | None) -> None:
        chunk = self.chunks[i]
        outcome = self.outcomes[i]
        if self._no_new_jobs.is_set():
            outcome.error = ("NOT_SENT", "not sent: the run was aborted or interrupted "
                             "before this job was created; res.retry() sends these rows")
            self.emit(ERROR, chunk=i, message="the run was aborted or interrupted first")
            return
        try:
            with self._create_lock:
                info = jobs.create_ingest_job(
                    self.org, self.sobject, self.operation,
                    external_id=self.key if self.operation == "upsert" else None,
                    column_delimiter=self.column_delimiter, line_ending=self.line_ending,
                    retry=self.retry, known=self._known_jobs)
                outcome.job_id = info.id
                self._journal(i, job_id=info.id, stage="created")
        except errors.SFBulkError as e:
            self._not_sent(i, e)
            return
        self.emit(JOB_CREATED, chunk=i, job_id=outcome.job_id, state=info.state,
                  records=chunk.records)
        try:
            jobs.upload(self.org, outcome.job_id, chunk.data, retry=self.retry)
        except errors.SFBulkError as e:
            # An Open job is never processed, uploaded or not: its rows are not sent. Abort
            # it so that it does not linger (if that fails too, it expires unprocessed).
            self._not_sent(i, e, abort=True)
            return
        if self._no_new_jobs.is_set():  # uploaded, but not closed: it would never run
            self._not_sent(i, errors.SFBulkError("the run was aborted or interrupted before "
                                                 "this job was closed"), abort=True)
            return
        # The bytes are Salesforce's now: keep only their size (for res.jobs), here and in
        # the plan, which is this run's alone (holding them doubled a load's peak memory).
        self.chunks[i] = dataclasses.replace(chunk, data=b"")
        if i < len(self.plan.chunks) and self.plan.chunks[i] is chunk:
            self.plan.chunks[i] = self.chunks[i]
        self.emit(JOB_UPLOADED, chunk=i, job_id=outcome.job_id, records=chunk.records)
        self._journal(i, stage="uploaded")
        # From here the rows may be written: they are never marked not sent again.
        outcome.sent = True
        outcome.finished = False
        if not self._close(i):
            return
        self._finish(i, deadline, just_closed=True)

    def _not_sent(self, i: int, e: errors.SFBulkError, abort: bool = False) -> None:
        """Job i's rows were not sent. ``abort``: its job exists, Open: abort it so it does
        not linger (if that fails too, it expires unprocessed: an Open job never runs)."""
        if abort:
            try:
                self.infos[i] = jobs.abort(self.org, self.outcomes[i].job_id, retry=self.retry)
            except errors.SFBulkError:
                pass
        self._record(e, i)
        self.outcomes[i].error = ("NOT_SENT", f"not sent: {e}")
        self.emit(ERROR, chunk=i, job_id=self.outcomes[i].job_id, message=str(e))

    def _close(self, i: int) -> bool:
        """Close job i (UploadComplete). False when that could not be done nor ruled out:
        the rows stay pending, and wait() tries again."""
        outcome = self.outcomes[i]
        try:
            self.infos[i] = jobs.close(self.org, outcome.job_id, retry=self.retry)
            self._journal(i, stage="closed")
            return True
        except errors.SFBulkError as e:
            self._pending(i, e)
            return False

    def _pending(self, i: int, e: errors.SFBulkError) -> None:
        """Job i's outcome is not known (the org could not be asked): its rows stay pending
        with the reason, and wait() asks again."""
        self._record(e, i)
        self.outcomes[i].error = ("NOT_KNOWN_YET", f"{e}; res.wait() asks the org again")
        self.emit(ERROR, chunk=i, job_id=self.outcomes[i].job_id, message=str(e))

    def _finish(self, i: int, deadline: float | None, just_closed: bool = False) -> None:
        outcome = self.outcomes[i]
        chunk = self.chunks[i]
        remaining = None if deadline is None else max(0.0, deadline - self.clock())

        def update(info: jobs.JobInfo) -> None:
            self.infos[i] = info
            self.emit(JOB_UPDATED, chunk=i, job_id=info.id, state=info.state,
                      records=chunk.records, processed=info.processed, failed=info.failed)

        info = self.infos[i]
        if info is None or info.state == "Open":  # its close was not known to have worked
            if not self._close(i):
                return
            just_closed = True
        try:
            info = jobs.wait(self.org, outcome.job_id, timeout=remaining, clock=self.clock,
                             sleep=self.sleep, on_update=update, just_closed=just_closed,
                             poll=lambda org, job_id: jobs.get(org, job_id, self.retry),
                             stop=self._stop, records=chunk.records)
            if not info.done:
                return
            fetched = self._fetch_results(outcome.job_id, info)
        except errors.SFBulkError as e:
            self._pending(i, e)
            return
        outcome.successful = fetched["successfulResults"]
        outcome.failed = fetched["failedResults"]
        outcome.unprocessed = fetched["unprocessedrecords"]
        outcome.error = None
        if info.state != "JobComplete":
            # Rows a Failed or Aborted job never processed carry its reason.
            outcome.error = (f"JOB_{info.state.upper()}", job_error_text(info))
        outcome.finished = True
        self._journal(i, stage="finished", state=info.state)
        self.emit(JOB_FINISHED, chunk=i, job_id=outcome.job_id, state=info.state,
                  records=chunk.records, processed=info.processed, failed=info.failed,
                  message=info.error_message)

    def _fetch_results(self, job_id: str, info: jobs.JobInfo) -> dict[str, pd.DataFrame]:
        """A finished job's three result files, parsed (the empty ones not downloaded)."""
        with_rows = _result_kinds_with_rows(info)

        def parse(data: bytes) -> pd.DataFrame:
            return results.parse_result_csv(
                data, column_delimiter=self.column_delimiter, line_ending=self.line_ending,
                keep=self._needed)

        return {kind: jobs.results(self.org, job_id, kind, self.retry, parse)
                if kind in with_rows else pd.DataFrame() for kind in jobs.RESULT_KINDS}

    def _needed(self, column: str) -> bool:
        """Whether alignment reads a result column: the key and the sf__ columns (an insert
        matches on every column, and so do rows sharing a key: then it reads them all).
        The others are never parsed."""
        return (self.operation == "insert" or self._keep_all_columns
                or column.startswith("sf__") or column == self.key_column)

    def _record(self, e: BaseException, i: int) -> None:
        with self._lock:
            self.exceptions.append(e)

    def _after(self) -> None:
        if self.finished_at is None and all(o.finished for o in self.outcomes):
            self.finished_at = time.time()
            if self.record is not None:
                self.record.finish()
            message = None
            if self.reporter is not None:
                counts = results.count_statuses(self.aligned())
                message = ", ".join(f"{n:,} {s.replace('_', ' ')}"
                                    for s, n in counts.items() if n) or "no rows"
            self.emit(RUN_FINISHED, message=message)

    @property
    def done(self) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return False
        return all(o.finished for o in self.outcomes)

    def wait(self, timeout: float | None = None, org: Org | None = None) -> None:
        """Carry on polling jobs that were still running; fetch and align their results.
        ``org``: carry on with another connection (a new session after the old expired)."""
        jobs.check_timeout(timeout)
        if org is not None:
            self.org = org_or_default(org)
        if self._thread is not None and self._thread.is_alive():  # wait=False: join it
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
        if self._background_error is not None:
            error, self._background_error = self._background_error, None
            raise error
        self._no_new_jobs.clear()  # an interrupt stopped the work; this carries on with it
        if not self.done or self.finished_at is None:
            self._foreground(lambda: self._wait_work(timeout))

    def abort(self) -> None:
        """Abort every job of the run that has not finished; jobs not created yet never are
        (their rows come back not_sent)."""
        self._no_new_jobs.set()
        for i, outcome in enumerate(self.outcomes):
            if outcome.job_id and not outcome.finished:
                try:
                    self.infos[i] = jobs.abort(self.org, outcome.job_id, retry=self.retry)
                except errors.SFBulkError as e:
                    self._record(e, i)

    # -- results -----------------------------------------------------------------------

    @memory.lean()  # res.frame runs after upsert_df has returned: its buffers too
    def aligned(self) -> pd.DataFrame:
        """The status columns; computed once when the run is over (twice would double the
        peak memory of a big load). A follow-up round's outcomes replace the earlier ones
        of its rows."""
        if self._aligned is not None:
            return self._aligned
        aligned = self._align_round(0)
        attempts = self._sent_in_round(0)
        for k in range(1, len(self.rounds)):
            rows = self.rounds[k][0]
            again = self._align_round(k)
            aligned.iloc[rows] = again.to_numpy()
            attempts[rows] += self._sent_in_round(k)
        aligned["sf_attempts"] = pd.array(attempts, dtype="Int64")
        skipped, status = self.plan.unsent_status()
        if len(skipped):
            # Rows not sent for their errors (on_invalid="skip") or held back (unchanged,
            # conflict), back in input order.
            both = pd.concat([aligned, status])
            aligned = both.iloc[np.argsort(np.concatenate([self.plan.positions, skipped]),
                                           kind="stable")]
        if self.finished_at is not None:
            self._aligned = aligned
        return aligned

    def _round_text(self, k: int) -> pd.DataFrame:
        rows = self.rounds[k][0]
        return self.sent_text if rows is None else self.sent_text.iloc[rows]

    def _sent_in_round(self, k: int) -> np.ndarray:
        """For each row of round k, 1 when the job that carried it was sent, else 0
        (by whole chunks: a Python loop over a million rows cost 0.1 s)."""
        sent = np.zeros(len(self._round_text(k)), np.int64)
        for j in self.rounds[k][1]:
            if self.outcomes[j].sent:
                sent[results._positions(self.outcomes[j].positions, len(sent))] = 1
        return sent

    def _align_round(self, k: int) -> pd.DataFrame:
        outcomes = [self.outcomes[j] for j in self.rounds[k][1]]
        text = self._round_text(k)
        while True:
            try:
                return results.align(text, self.operation, self.key_column or self.key,
                                     outcomes, key_case_insensitive=self.key_case_insensitive)
            except results.AlignmentError as e:
                self._unmatched(e, outcomes, len(text))

    def _unmatched(self, e: "results.AlignmentError", outcomes: list, rows: int) -> None:
        """Results that do not pair up with the rows make their jobs' rows unknown (their
        results are kept out), instead of an error from every view of the result."""
        job_of = np.full(rows, -1, np.int64)
        for j, o in enumerate(outcomes):
            job_of[np.asarray(o.positions, np.int64)] = j
        culprits = set(job_of[e.positions].tolist()) | {j for j, _, _ in e.result_rows}
        if not culprits:  # the results as a whole do not fit (a column they lack)
            culprits = {j for j, o in enumerate(outcomes)
                        if o.finished and o.sent and not o.unknown}
        if not culprits or all(outcomes[j].unknown for j in culprits):
            raise AssertionError(f"alignment keeps failing for known jobs: {e}") from e
        for j in sorted(culprits):
            o = outcomes[j]
            o.successful = o.failed = o.unprocessed = None
            o.unknown = True
            o.error = ("RESULTS_UNMATCHED", f"the job's results could not be matched to its "
                       f"rows: {str(e)[:300]}")
        self._record(e, 0)

    # -- lock contention ---------------------------------------------------------------

    def _follow_ups(self, deadline: float | None) -> None:
        """Rows failed by lock contention (results.TRANSIENT_ERRORS) are sent again, in a
        follow-up round of jobs run one at a time, up to `lock_retries` rounds: lock
        contention comes from concurrent work on the same records, so a later, serial try
        usually gets through."""
        while len(self.rounds) <= self.lock_retries and not self._no_new_jobs.is_set():
            last = len(self.rounds) - 1
            if not all(self.outcomes[j].finished for j in self.rounds[last][1]):
                return  # wait() comes back when the round is over
            if not results.has_transient_failures([self.outcomes[j]
                                                   for j in self.rounds[last][1]]):
                return  # aligning every row to find none would double a run's CPU
            status = self._align_round(last)
            again = np.flatnonzero(((status["sf_status"] == "failed")
                                    & status["sf_error_code"].isin(results.TRANSIENT_ERRORS))
                                   .to_numpy(dtype=bool, na_value=False))
            if not len(again):
                return
            earlier = self.rounds[last][0]
            jobs_of_round = self.add_round(again if earlier is None else earlier[again])
            if self.record is not None:
                self.record.add_jobs([{"job_id": None, "stage": None,
                                       "start": self.chunks[i].positions.start,
                                       "stop": self.chunks[i].positions.stop}
                                      for i in jobs_of_round], self.rounds[-1][0].tolist())
            for i in jobs_of_round:
                self._guarded(self._send_and_finish, i, deadline)

    def add_round(self, rows: np.ndarray) -> list[int]:
        """A follow-up round of jobs for the sent rows at ``rows``: their texts encoded
        again (the same bytes as first sent). Returns the new jobs' indexes."""
        chunks = self._round_chunks(rows)
        with self._lock:
            first = len(self.chunks)
            self.chunks += chunks
            self.chunk_bytes += [len(c.data) for c in chunks]
            self.outcomes += [results.JobOutcome(positions=c.positions, sent=False,
                                                 finished=True) for c in chunks]
            self.infos += [None] * len(chunks)
            self.rounds.append((rows, list(range(first, len(self.chunks)))))
            self._aligned = None
        return list(range(first, len(self.chunks)))

    def _round_chunks(self, rows: np.ndarray) -> list[encode.Chunk]:
        """The chunks of a follow-up round's rows (positions index into ``rows``)."""
        return list(encode.iter_chunks(
            self.sent_text.iloc[rows], column_delimiter=self.column_delimiter,
            line_ending=self.line_ending, max_bytes=self.plan.options.max_bytes,
            max_records=self.plan.options.max_records))

    @property
    def api_calls(self) -> int:
        return self.org.api_calls - self.calls_before

    def result(self) -> BulkResult:
        return BulkResult(self)


def job_error_text(info: jobs.JobInfo) -> str:
    """Why a job ended Failed or Aborted, for its unprocessed rows and the displays."""
    if info.error_message:
        limit = errors.limit_name(info.error_message)  # a job stopped by a daily allowance
        return info.error_message + (f" ({errors.limit_advice(limit)})" if limit else "")
    return "the job was aborted" if info.state == "Aborted" else f"the job ended {info.state}"


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
