"""The one job runner: a worker thread that processes the queued jobs of every kind.

    enqueue(id, kind) -> queue -> worker: the job InProgress -> its kind's processor(run)
                                          -> run.finish(JobComplete | Failed)

Ingest jobs (engine.py) and query jobs (queryjobs.py) register a processor for their kind
(`jobs.kind`); the runner owns what they share: the queue and its idle signal, the move to
InProgress, the pace, the injected job faults (fail_next_job), the end state, and the
expiry of old jobs. A processor records its progress only through the store
(`Store.record_progress`), in the transaction that commits a batch's results, so a job
survives a restart of the server: unfinished jobs are queued again on start, and a kind
registered with `restart=True` (query jobs) runs again from the start, the others resume
after their last committed batch.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from .store import Store

log = logging.getLogger(__name__)

PACED_STEP = 200  # rows a processor takes at a time when paced, so progress moves smoothly
RUNNABLE = ("UploadComplete", "InProgress")
# Salesforce deletes Bulk API jobs, their data and results, seven days after they were
# created (documented for Bulk API jobs and batches; our guess for 2.0 is the same). Without
# it, a long-lived org file grows by every upload and query result it ever held.
JOB_LIFESPAN = 7 * 24 * 3600
EXPIRY_SWEEP_EVERY = 3600


def sf_datetime(ts: float) -> str:
    """JobInfo dates: `2022-01-02T21:33:43.000+0000`."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


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


class Run:
    """One job being processed, as its kind's processor gets it: the job's row as it was
    queued (`job`), when processing started, and the runner's shared services."""

    def __init__(self, runner: "Runner", job: dict[str, Any], started: float):
        self.runner = runner
        self.job = job
        self.id: str = job["id"]
        self.started = started

    def step(self, size: int) -> int:
        """How many rows to take at a time: `size`, or PACED_STEP when paced."""
        return PACED_STEP if self.runner.pace else size

    def take_fault(self) -> JobFault | None:
        """The next injected job fault, now aimed at this job (None: there is none)."""
        faults = self.runner.job_faults
        return faults.popleft() if faults else None

    def keep_pace(self, processed: int) -> None:
        """When paced, sleep until `processed` records fit the pace since the start."""
        runner = self.runner
        if runner.pace:
            behind = (processed / runner.pace) - (runner.clock() - self.started)
            if behind > 0:
                runner.sleep(behind)

    def finish(self, state: str, message: str | None) -> None:
        """End the job JobComplete or Failed (unless it was aborted meanwhile)."""
        store, now = self.runner.store, self.runner.clock()
        done = store.set_job_state(self.id, state, ["InProgress"], errorMessage=message,
                                   totalProcessingTime=int((now - self.started) * 1000),
                                   systemModstamp=sf_datetime(now))
        if done and state == "JobComplete":
            # Every row has its result now; only Failed and Aborted jobs serve their upload
            # again (as unprocessed records), so a completed job's CSV is dead weight.
            store.drop_upload(self.id)


class Runner:
    """The worker thread and its queue of `(kind, job id)`."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, pace: float | None = None):
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.pace = pace
        self.job_faults: deque[JobFault] = deque()
        self._kinds: dict[str, tuple[Callable[[Run], None], bool]] = {}
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.idle = threading.Event()
        self.idle.set()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._last_sweep: float | None = None

    def register(self, kind: str, processor: Callable[[Run], None], *,
                 restart: bool = False) -> None:
        """Have the worker run `processor(run)` for queued jobs of this kind; with
        `restart`, a job resumed after a restart starts over (its results are dropped)."""
        self._kinds[kind] = (processor, restart)

    def start(self) -> None:
        self.expire_old_jobs()
        if self._worker is None:
            self._worker = threading.Thread(target=self._loop, name="localorg-jobs",
                                            daemon=True)
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

    def enqueue(self, job_id: str, kind: str) -> None:
        with self._pending_lock:
            self._pending += 1
            self.idle.clear()
        self._queue.put((kind, job_id))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued job has been processed (handy in tests)."""
        return self.idle.wait(timeout)

    def show_upload_complete(self) -> None:
        """When paced, leave a job in UploadComplete for a moment so watchers see it."""
        if self.pace:
            self.sleep(min(1.0, PACED_STEP / self.pace))

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            kind, job_id = item
            try:
                self._run(kind, job_id)
            except Exception:
                # A bug must not kill the worker. The job shows that it failed, the server's
                # log shows why (Python's error text is no message for a client).
                log.exception("job %s failed", job_id)
                self.store.fail_job(job_id, "InternalServerError : An unexpected error "
                                    "occurred while processing the job")
            finally:
                # Counted under a lock: a job enqueued while this one ran keeps idle clear.
                with self._pending_lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self.idle.set()

    def _run(self, kind: str, job_id: str) -> None:
        processor, restart = self._kinds[kind]
        job = self.store.get_job(job_id, kind)
        if job is None or job["state"] not in RUNNABLE:
            return
        if job["state"] == "UploadComplete":
            self.show_upload_complete()
        started = self.clock()  # the pace and totalProcessingTime count from here
        reset = {}
        if restart:
            self.store.clear_results(job_id)
            reset["numberRecordsProcessed"] = 0
        if not self.store.set_job_state(job_id, "InProgress", RUNNABLE, **reset,
                                        systemModstamp=sf_datetime(self.clock())):
            return
        processor(Run(self, job, started))
