"""BulkResult: what a bulk run returns, aligned row for row with the input frame."""
from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import results
from .errors import JobFailedError

if TYPE_CHECKING:
    from .api import Run

_SUCCESS = ("created", "updated", "deleted")

class BulkResult:
    """The input frame plus each row's fate, and the run's jobs and API usage.

    frame: the input (same index, columns and values) plus sf_id, sf_status, sf_error_code,
    sf_error_message, sf_error_fields, sf_job_id. sf_status is one of created, updated,
    deleted, failed, unprocessed, not_sent (never reached Salesforce) or pending (its job
    was still running when the call returned; `wait()` carries on).
    """

    STATUS_COLUMNS = results.STATUS_COLUMNS

    def __init__(self, run: "Run"):
        self._run = run
        self._frame: pd.DataFrame | None = None

    # -- the rows ------------------------------------------------------------------------

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            status = self._run.aligned()
            self._frame = pd.concat([self._run.df, status], axis=1)
        return self._frame

    def _where(self, statuses) -> pd.DataFrame:
        return self.frame[self.frame["sf_status"].isin(statuses)]

    @property
    def succeeded(self) -> pd.DataFrame:
        return self._where(_SUCCESS)

    @property
    def failed(self) -> pd.DataFrame:
        return self._where(("failed",))

    @property
    def unprocessed(self) -> pd.DataFrame:
        return self._where(("unprocessed", "not_sent"))

    @property
    def counts(self) -> pd.Series:
        return results.count_statuses(self.frame)

    @property
    def errors(self) -> pd.DataFrame:
        return results.summarize_errors(self.frame)

    @property
    def ok(self) -> bool:
        return self.done and bool(self.frame["sf_status"].isin(_SUCCESS).all())

    # -- the run -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._run.done

    def wait(self, timeout: float | None = None) -> "BulkResult":
        """Keep polling unfinished jobs (up to `timeout` seconds) and refresh the rows."""
        self._run.wait(timeout)
        self._frame = None
        return self

    def abort(self) -> "BulkResult":
        """Abort the run's unfinished jobs."""
        self._run.abort()
        return self

    def raise_for_status(self) -> "BulkResult":
        """Raise JobFailedError if a job ended Failed or Aborted (row failures alone do not
        raise: they are in `failed`)."""
        for info in self._run.infos:
            if info is not None and info.state in ("Failed", "Aborted"):
                raise JobFailedError(
                    f"Job {info.id} ended {info.state}: {info.error_message or 'no message'}",
                    job_id=info.id, state=info.state, error_message=info.error_message)
        return self

    @property
    def exceptions(self) -> list[BaseException]:
        """Errors met on the way (a job that could not be sent, a poll that failed)."""
        return list(self._run.exceptions)

    @property
    def jobs(self) -> pd.DataFrame:
        rows = []
        for chunk, size, outcome, info in zip(self._run.chunks, self._run.chunk_bytes,
                                              self._run.outcomes, self._run.infos):
            raw = info.raw if info is not None else {}
            rows.append({
                "job_id": outcome.job_id, "state": raw.get("state"), "rows": chunk.records,
                "bytes": size, "processed": raw.get("numberRecordsProcessed"),
                "failed": raw.get("numberRecordsFailed"), "created": raw.get("createdDate"),
                "processing_ms": raw.get("totalProcessingTime"),
                "error_message": raw.get("errorMessage")})
        return pd.DataFrame(rows)

    @property
    def timeline(self) -> pd.DataFrame:
        """When each job was first seen in each state: job_id, chunk, state, at (epoch s)."""
        return pd.DataFrame(list(self._run.timeline_rows),
                            columns=["job_id", "chunk", "state", "at"])

    @property
    def progress_log(self) -> pd.DataFrame:
        """Every poll's counters: job_id, at (epoch s), processed, failed."""
        return pd.DataFrame(list(self._run.progress_rows),
                            columns=["job_id", "at", "processed", "failed"])

    @property
    def api_calls(self) -> int:
        """HTTP calls this run made (retries included)."""
        return self._run.api_calls

    @property
    def api_usage(self):
        """The org's daily usage from the last Sforce-Limit-Info header (or None)."""
        return self._run.org.api_usage

    @property
    def elapsed(self) -> float:
        return (self._run.finished_at or time.time()) - self._run.started

    # -- display -------------------------------------------------------------------------

    def plot(self, kind: str = "outcomes", ax=None, **options: Any):
        """A chart of this run: kind "outcomes", "errors", "timeline" or "throughput"
        (see sfbulk_nb.plots); returns the matplotlib Axes."""
        from . import plots  # matplotlib only when a chart is asked for

        return plots.plot(self, kind, ax=ax, **options)

    def _summary(self) -> tuple[str, list[tuple[str, int]]]:
        run = self._run
        head = (f"{run.operation} of {run.rows:,} rows into {run.sobject} "
                f"({run.org.kind} org), {run.job_count} job(s), {self.api_calls} API calls, "
                f"{self.elapsed:.1f} s" + ("" if self.done else ", STILL RUNNING"))
        return head, [(s, int(n)) for s, n in self.counts.items() if n]

    def __repr__(self) -> str:
        head, counts = self._summary()
        lines = [f"<BulkResult {head}>", "  " + ", ".join(f"{n:,} {s}" for s, n in counts)]
        errs = self.errors
        for row in errs.head(5).itertuples():
            lines.append(f"  {row.rows:,} x {row.code} [{row.fields}]: {row.message}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head, counts = self._summary()
        badges = " ".join(
            f'<span style="color:{results.STATUS_COLOURS.get(s, "#000")};font-weight:600">{n:,} {s}</span>'
            for s, n in counts)
        parts = [f"<div><b>BulkResult</b>: {html.escape(head)}<br>{badges}"]
        errs = self.errors
        if len(errs):
            parts.append("<br><b>Top errors</b>" + errs.head(10).to_html(index=False))
        parts.append("</div>")
        return "".join(parts)
