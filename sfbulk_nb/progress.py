"""Progress of a bulk run: its events, one pure model of what they add up to, and the text
renderer.

`api` (and `query`) publish `ProgressEvent`s to one callable and never import a UI module.
Every event carries a `RunInfo`, all a display may know of the run (no display reaches
into the run itself). `RunState` folds the events into counts, per-job states, times and
errors, with the numbers a display shows (`overall_text`: ``n / N rows · % · elapsed ·
time left · rows/s``, as tqdm prints). `TextProgress` and the ipywidgets panel of
`widgets` both draw a RunState. In a live Jupyter kernel "auto" shows the panel, imported
only then.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from .errors import InputError

Reporter = Callable[["ProgressEvent"], None]

RUN_STARTED = "run_started"
JOB_CREATED = "job_created"
JOB_UPLOADED = "job_uploaded"
JOB_UPDATED = "job_updated"      # a poll: state and counters
JOB_FINISHED = "job_finished"    # results fetched (or the job could not be sent)
RUN_FINISHED = "run_finished"
ERROR = "error"

STEPS = ("Open", "UploadComplete", "InProgress", "JobComplete")
BAD_STATES = ("Failed", "Aborted")
NOT_SENT = "Not sent"
NOT_KNOWN = "Not known yet"   # sent, but the org could not be asked how it went


@dataclass(frozen=True)
class RunInfo:
    """What a display may know of a run."""

    kind: str                         # "load" or "query"
    operation: str
    sobject: str
    org_label: str
    org_kind: str                     # local, sandbox, production
    rows: int = 0                     # rows to send (a query: rows read, known at its end)
    job_count: int = 1
    run_id: str | None = None
    abort: Callable[[], Any] | None = field(default=None, compare=False)


@dataclass
class ProgressEvent:
    kind: str
    run: RunInfo
    chunk: int | None = None          # which chunk/job of the run, 0-based
    job_id: str | None = None
    state: str | None = None
    records: int = 0                  # rows in this job
    processed: int = 0
    failed: int = 0
    message: str | None = None
    at: float = field(default_factory=time.time)
    api_calls: int | None = None      # the run's API calls so far
    api_usage: Any = None             # the org's daily usage (org.ApiUsage) when known


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {many or word + 's'}"


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class JobState:
    """One job of a run, as the events told it."""

    chunk: int
    job_id: str | None = None
    state: str = "Waiting"
    reached: int = -1                 # the furthest step of STEPS seen
    records: int = 0
    processed: int = 0
    failed: int = 0
    error: str | None = None
    created_at: float | None = None
    last_at: float | None = None
    finished_at: float | None = None
    rate_base: tuple[float, int] | None = None  # (at, processed) when first InProgress

    def apply(self, e: ProgressEvent) -> bool:
        """Take an event of this job; True when its state changed."""
        before = self.state
        self.last_at = e.at
        if e.job_id:
            self.job_id = e.job_id
        if e.kind == JOB_CREATED:
            self.created_at = e.at
        if e.kind == ERROR:
            self.error = e.message or "error"
            # The run gives up on the job here: before it was closed its rows were not sent
            # (api marks them so); after, they may be written and res.wait() asks again.
            if self.job_id is None or self.state in ("Waiting", "Open"):
                self.state = NOT_SENT
            elif self.state not in BAD_STATES:
                self.state = NOT_KNOWN
            return self.state != before
        if e.state:
            if self.state == NOT_KNOWN:
                self.error = None  # res.wait() reached the org again
            self.state = e.state
            if e.state in BAD_STATES and e.message:
                self.error = e.message  # the job's errorMessage: why it failed
            if e.state in STEPS:
                self.reached = max(self.reached, STEPS.index(e.state))
        if e.records:
            self.records = e.records
        if e.kind in (JOB_UPDATED, JOB_FINISHED):
            self.processed, self.failed = e.processed, e.failed
            if self.state == "InProgress" and self.rate_base is None:
                self.rate_base = (e.at, e.processed)
        if e.kind == JOB_FINISHED:
            self.finished_at = e.at
        return self.state != before

    @property
    def bad(self) -> bool:
        return self.state in BAD_STATES or self.state in (NOT_SENT, NOT_KNOWN)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None or self.bad

    @property
    def succeeded(self) -> int:
        return max(0, self.processed - self.failed)

    def seconds_left(self) -> float | None:
        # Only while records are being processed: after JobComplete the results are still
        # downloading, and "~0 s left" would mislead.
        if self.rate_base is None or self.last_at is None or self.state != "InProgress":
            return None
        at0, done0 = self.rate_base
        if self.last_at <= at0 or self.processed <= done0:
            return None
        rate = (self.processed - done0) / (self.last_at - at0)
        return max(0.0, (self.records - self.processed) / rate)

    def timing_text(self) -> str:
        if self.created_at is None or self.last_at is None:
            return ""
        elapsed = (self.finished_at or self.last_at) - self.created_at
        if self.finished:
            return f"took {duration(elapsed)}"
        left = self.seconds_left()
        if left is not None:
            return f"{duration(elapsed)} elapsed, ~{duration(left)} left"
        if self.state in ("Open", "UploadComplete"):
            return f"{duration(elapsed)} elapsed, queued"
        return f"{duration(elapsed)} elapsed"

    def counts_text(self) -> str:
        if not self.records and not self.processed:
            return ""
        text = f"{self.processed:,} / {self.records or self.processed:,} processed"
        return text + (f", {self.failed:,} failed" if self.failed else "")


# What a job in trouble did, said of one job and of several.
_TROUBLE = {"Failed": ("failed", "failed"), "Aborted": ("was aborted", "were aborted"),
            NOT_SENT: ("was not sent", "were not sent"),
            NOT_KNOWN: ("is not known yet", "are not known yet")}


def number_ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 4, 7] -> "1–4, 7"."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}\u2013{b}" if b > a + 1 else f"{a}, {b}"
                     for a, b in spans)


class RunState:
    """A run as its events tell it: the one model every display draws.

    Pure: no I/O, no widgets; `now` is a parameter where time matters."""

    def __init__(self, info: RunInfo):
        self.info = info
        self.jobs = [JobState(i) for i in range(info.job_count)]
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.message = ""                 # the final counts ("2,970 created, 30 failed")
        self.error: str | None = None     # an error of the run, not of a job
        self.api_calls = 0
        self.api_usage: Any = None
        self._rate_base: tuple[float, int] | None = None  # (at, processed): processing seen

    def apply(self, e: ProgressEvent) -> JobState | None:
        """Take an event; returns the job it changed, if any."""
        self.info = e.run  # a later event knows more (follow-up jobs, a query's rows)
        if e.api_calls is not None:
            self.api_calls = e.api_calls
        if e.api_usage is not None:
            self.api_usage = e.api_usage
        if e.kind == RUN_STARTED:
            self.started_at = self.started_at or e.at
        elif e.kind == RUN_FINISHED:
            self.finished_at = e.at
            self.message = e.message or ""
        elif e.kind == ERROR and e.chunk is None:
            self.error = e.message or "error"
        if e.chunk is None:
            return None
        while len(self.jobs) <= e.chunk:  # follow-up jobs (lock contention) join later
            self.jobs.append(JobState(len(self.jobs)))
        job = self.jobs[e.chunk]
        job.apply(e)
        if self._rate_base is None and (job.state == "InProgress" or job.processed):
            self._rate_base = (e.at, self.processed)
        return job

    # -- what a display shows --------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def is_query(self) -> bool:
        return self.info.kind == "query"

    @property
    def total(self) -> int:
        """Rows the run carries (a query's: those read so far)."""
        return max(self.info.rows, sum(j.records for j in self.jobs[:self.info.job_count]),
                   self.processed)

    @property
    def processed(self) -> int:
        # A follow-up job carries rows of an earlier one again: they count once.
        return sum(j.processed for j in self.jobs[:self.info.job_count]) if self.jobs else 0

    @property
    def failed(self) -> int:
        return sum(j.failed for j in self.jobs[:self.info.job_count])

    @property
    def succeeded(self) -> int:
        return max(0, self.processed - self.failed)

    @property
    def left(self) -> int:
        """Rows that will not be processed: the rest of a job that failed, was aborted or
        was not sent; once the run is over, every row not processed."""
        if self.finished:
            return max(0, self.total - self.processed)
        return sum(max(0, j.records - j.processed) for j in self.jobs[:self.info.job_count]
                   if j.bad)

    def elapsed(self, now: float) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or now) - self.started_at

    def rate(self, now: float) -> float | None:
        """Rows per second: over the whole run once it is over; while it runs, since
        processing was first seen, from at least a second of it (a first poll that finds
        rows already done would otherwise claim thousands a second)."""
        if self.finished:
            elapsed = self.elapsed(now)
            return self.processed / elapsed if elapsed > 0 and self.processed else None
        if self._rate_base is None:
            return None
        at0, done0 = self._rate_base
        window, done = now - at0, self.processed - done0
        return done / window if window >= 1.0 and done > 0 else None

    def seconds_left(self, now: float) -> float | None:
        rate = self.rate(now)
        if self.finished or rate is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.processed) / rate)

    @property
    def status(self) -> str:
        """danger: a job failed or an error happened; warning: rows failed; success; or
        running until the run finishes."""
        if self.error or any(j.bad for j in self.jobs):
            return "danger"
        if not self.finished:
            return "running"
        return "warning" if self.failed else "success"

    def fraction(self) -> float:
        return min(1.0, self.processed / self.total) if self.total else (
            1.0 if self.finished else 0.0)

    def overall_text(self, now: float) -> str:
        """One line: n / N rows · % · elapsed (took, once done) · time left · rows/s."""
        if self.is_query:
            if self.finished:
                return (f"query: {plural(self.info.rows, 'row')} in "
                        f"{duration(self.elapsed(now))}")
            return f"query: {plural(self.processed, 'row')} so far"
        parts = [f"{self.processed:,} / {self.total:,} rows", f"{self.fraction():.0%}"]
        if self.finished:
            parts.append(f"took {duration(self.elapsed(now))}")
        else:
            parts.append(f"{duration(self.elapsed(now))} elapsed")
            left = self.seconds_left(now)
            if left is not None:
                parts.append(f"~{duration(left)} left")
        rate = self.rate(now)
        if rate:
            parts.append(f"{rate:,.0f} rows/s")
        return " \u00b7 ".join(parts)

    def failures(self) -> list[str]:
        """One line per kind of trouble: the jobs that failed, were aborted, were not sent
        or are not known yet, with why (jobs of one reason together: "jobs 5–8 were not
        sent: ...")."""
        groups: dict[tuple[str, str], list[int]] = {}
        for j in self.jobs:
            if j.bad:
                reason = j.error or ("" if j.state == "Aborted" else "no reason given")
                groups.setdefault((j.state, reason), []).append(j.chunk + 1)
        lines = []
        for (state, reason), numbers in groups.items():
            one, many = _TROUBLE.get(state, _TROUBLE[NOT_SENT])
            head = (f"job {numbers[0]} {one}" if len(numbers) == 1
                    else f"jobs {number_ranges(numbers)} {many}")
            lines.append(f"{head}: {reason}" if reason else head)
        return lines

    def headline(self) -> str:
        """The run in one line: what, where, and how it went."""
        info = self.info
        if self.is_query:
            return f"query of {info.sobject} on {info.org_label}"
        head = (f"{info.operation} {plural(info.rows, 'row')} into {info.sobject} on "
                f"{info.org_label} in {plural(len(self.jobs), 'job')}")
        return head + (f", run {info.run_id}" if info.run_id else "")


class TextProgress:
    """Concise lines on a stream (stderr by default): one per job state change, not per
    poll, so a terminal or CI log stays readable."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.time):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.state: RunState | None = None
        self._last: dict[Any, str] = {}
        self._lock = threading.Lock()

    def __call__(self, e: ProgressEvent) -> None:
        with self._lock:
            if self.state is None or e.kind == RUN_STARTED:
                self.state = RunState(e.run)
                self._last.clear()
            job = self.state.apply(e)
            line = self._line(e, job)
            if line is None:
                return
            key = (e.chunk, e.kind if e.kind != JOB_UPDATED else "state")
            if self._last.get(key) == line:
                return
            self._last[key] = line
            print(line, file=self.stream, flush=True)

    def _line(self, e: ProgressEvent, job: JobState | None) -> str | None:
        state = self.state
        tag = f"job {e.chunk + 1}/{len(state.jobs)}" if e.chunk is not None else ""
        if e.kind == RUN_STARTED:
            return state.headline()
        if e.kind == JOB_CREATED:
            return f"  {tag} {e.job_id}: created" + ("" if state.is_query else f", {e.records:,} rows")
        if e.kind == JOB_UPDATED and state.is_query:
            return f"  {tag} {e.job_id}: {e.state}, {e.processed:,} rows"
        if e.kind == JOB_UPDATED:
            return f"  {tag} {e.job_id}: {e.state}, {job.counts_text()}"
        if e.kind == ERROR:
            return f"  {tag} error: {e.message}" if tag else f"error: {e.message}"
        if e.kind == JOB_FINISHED and e.state in BAD_STATES:
            return f"  {tag} {e.job_id}: {e.state}: {e.message or 'no reason given'}"
        if e.kind == RUN_FINISHED:
            done = state.overall_text(self.clock())
            return f"done: {done}" + (f": {e.message}" if e.message and not state.is_query else "")
        return None


def reporter_for(progress: Any) -> Reporter | None:
    """progress=False/None: silent; "text": text lines; "auto"/True: the widget panel in a
    live Jupyter kernel with ipywidgets, else text lines; a callable: itself.

    Call it where a run starts: in a kernel the (hidden) panel is placed in the calling cell
    at once, as a run with wait=False goes on in a thread of its own."""
    if progress is False or progress is None:
        return None
    if callable(progress):
        return progress
    if progress in ("auto", True) and _in_kernel():
        try:
            from .widgets import WidgetProgress
        except ImportError:
            pass  # no ipywidgets: text lines still show progress
        else:
            return WidgetProgress()
    if progress in ("auto", "text", True):
        return TextProgress()
    raise InputError(f"progress must be 'auto', 'text', False or a callable, not {progress!r}")


def _in_kernel() -> bool:
    """True inside a live Jupyter kernel (not a terminal IPython, not a plain script)."""
    if "IPython" not in sys.modules:  # a kernel has always imported it; don't import it here
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
