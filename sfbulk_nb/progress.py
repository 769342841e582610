"""Progress events of a bulk run, and the concise text renderer.

`api` publishes `ProgressEvent`s to one callable; it never imports a UI module. The text
renderer prints one line per job state change (not per poll), so a terminal or CI log stays
readable. In a live Jupyter kernel "auto" shows the ipywidgets panel of `widgets` instead,
imported only then.
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


@dataclass
class ProgressEvent:
    kind: str
    run: Any                          # the api run (object, operation, rows, jobs so far)
    chunk: int | None = None          # which chunk/job of the run, 0-based
    job_id: str | None = None
    state: str | None = None
    records: int = 0                  # rows in this job
    processed: int = 0
    failed: int = 0
    message: str | None = None
    at: float = field(default_factory=time.time)


class TextProgress:
    """Concise lines on a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self._last: dict[Any, str] = {}
        self._lock = threading.Lock()

    def __call__(self, e: ProgressEvent) -> None:
        line = self._line(e)
        if line is None:
            return
        with self._lock:
            key = (e.chunk, e.kind if e.kind != JOB_UPDATED else "state")
            if self._last.get(key) == line:
                return
            self._last[key] = line
            print(line, file=self.stream, flush=True)

    def _line(self, e: ProgressEvent) -> str | None:
        run = e.run
        tag = f"job {e.chunk + 1}/{run.job_count}" if e.chunk is not None else ""
        query = run.operation == "query"
        if e.kind == RUN_STARTED:
            if query:
                return f"query of {run.sobject} on {run.org.label}"
            return (f"{run.operation} {run.rows:,} rows into {run.sobject} on "
                    f"{run.org.label} in {run.job_count} job(s), run {run.run_id}")
        if e.kind == JOB_CREATED:
            return f"  {tag} {e.job_id}: created" + ("" if query else f", {e.records:,} rows")
        if e.kind == JOB_UPDATED and query:
            return f"  {tag} {e.job_id}: {e.state}, {e.processed:,} rows"
        if e.kind == JOB_UPDATED:
            return (f"  {tag} {e.job_id}: {e.state}, {e.processed:,}/{e.records:,} processed"
                    + (f", {e.failed:,} failed" if e.failed else ""))
        if e.kind == ERROR:
            return f"  {tag} error: {e.message}"
        if e.kind == JOB_FINISHED and e.state in ("Failed", "Aborted"):
            return f"  {tag} {e.job_id}: {e.state}: {e.message or 'no reason given'}"
        if e.kind == RUN_FINISHED:
            return f"done: {e.message}"
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
