"""BulkResult: what a bulk run returns, aligned row for row with the input frame."""
from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import memory, results
from .errors import InputError, JobFailedError
from .progress import number_ranges, plural
from .tables import ShownFrame, table_html

if TYPE_CHECKING:
    from .api import Run

_SUCCESS = ("created", "updated", "deleted")
_BULK_BATCH = 10_000  # records per batch of a Bulk API 2.0 ingest job
_RETRYABLE = ("failed", "invalid", "unprocessed", "not_sent")
_CELL = "padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere"


class BulkResult:
    """The input frame plus each row's fate, and the run's jobs and API usage.

    frame: the input (same index, columns and values) plus sf_id, sf_status, sf_error_code,
    sf_error_message, sf_error_fields, sf_job_id. sf_status is one of created, updated,
    deleted, failed, unprocessed (its job ended Failed or Aborted first: the job's reason is
    in sf_error_message), not_sent (never reached Salesforce), pending (its job was still
    running when the call returned; `wait()` carries on) or invalid (an error found
    before sending; on_invalid="skip" left the row out).
    """

    STATUS_COLUMNS = results.STATUS_COLUMNS

    def __init__(self, run: "Run", previous: "BulkResult | None" = None):
        self._run = run
        self._previous = previous  # the result a retry() merges its outcomes into
        self._frame: pd.DataFrame | None = None
        self._errors: pd.DataFrame | None = None

    # -- the rows ------------------------------------------------------------------------

    @property
    def frame(self) -> pd.DataFrame:
        """The input, row for row, with the status columns. It shows at most
        `sfb.options.display_limit` rows in a notebook (a `tables.ShownFrame`; what is
        derived from it is a plain DataFrame)."""
        if self._frame is None:
            with memory.lean():  # after the load's call has returned: its buffers too
                frame = pd.concat([self._run.df, self._run.aligned()], axis=1)
            if self._previous is not None:
                frame = _merge_retried(self._previous.frame, frame)
            frame = ShownFrame.of(frame)
            if self.done:
                self._frame = frame
            return frame
        return self._frame

    def _where(self, statuses) -> pd.DataFrame:
        return self.frame[self.frame["sf_status"].isin(statuses)]

    @property
    def succeeded(self) -> pd.DataFrame:
        return self._where(_SUCCESS)

    @property
    def failed(self) -> pd.DataFrame:
        """Rows the org refused (sf_error_* says why)."""
        return self._where(("failed",))

    @property
    def invalid(self) -> pd.DataFrame:
        """Rows with an error found before sending, left out by on_invalid="skip"."""
        return self._where(("invalid",))

    @property
    def unprocessed(self) -> pd.DataFrame:
        return self._where(("unprocessed", "not_sent"))

    @property
    def counts(self) -> pd.Series:
        return results.count_statuses(self.frame)

    @property
    def errors(self) -> pd.DataFrame:
        """What went wrong, grouped for people (see results.summarize_errors): failed,
        invalid, and unprocessed rows with their job's reason."""
        if self._errors is not None:
            return self._errors
        # Shown a line a row, long values cut, the whole value in a cell's tooltip.
        errors = ShownFrame.of(results.summarize_errors(self.frame))
        if self.done:
            self._errors = errors
        return errors

    @property
    def problems(self):
        """What the checks before sending found (warnings included): a `Problems` frame."""
        return self._run.plan.problems

    @property
    def ok(self) -> bool:
        return self.done and bool(self.frame["sf_status"].isin(_SUCCESS + ("unchanged",)).all())

    # -- the run -------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id in the journal (sfb.runs(), sfb.resume(), sfb.undo())."""
        return self._run.run_id

    @property
    def done(self) -> bool:
        return self._run.done

    def wait(self, timeout: float | None = None, org=None) -> "BulkResult":
        """Keep polling unfinished jobs (up to `timeout` seconds) and refresh the rows.
        ``org``: carry on with another connection (after a session expired that could not
        be renewed: connect again, or org.set_token(...))."""
        self._run.wait(timeout, org=org)
        self._frame = self._errors = None
        return self

    def abort(self) -> "BulkResult":
        """Abort the run's unfinished jobs."""
        self._run.abort()
        return self

    def retry(self, fixed: pd.DataFrame | None = None, **options: Any) -> "BulkResult":
        """Send again only the rows that failed, were invalid or were never processed.

        ``fixed``: those rows, edited (e.g. ``res.failed`` after a fix; its index labels
        say which rows they are, its sf_* columns are ignored); without it every such row
        is sent again as it was. Options are the load's own unless given. Returns a
        result whose frame is this one with the retried rows' values and outcomes
        replaced, so counts, errors and charts cover the whole load."""
        from . import api  # the facade runs the retry like any load

        if not self.done:
            raise InputError("the run is still going: res.wait() first, then retry")
        frame = self.frame
        if not frame.index.is_unique:
            raise InputError("retry needs an input frame whose index labels are unique (it "
                             "matches rows by label); use df.reset_index(drop=True) first")
        retryable = frame[frame["sf_status"].isin(_RETRYABLE)]
        if fixed is None:
            if self._run.df.shape[1] == 0 and len(retryable):
                # A Dask frame's load: the rows stayed on the workers (sfbulk_nb.daskload).
                raise InputError("this load's rows are in its Dask frame: pass them as a "
                                 "pandas frame with their index labels, e.g. "
                                 "res.retry(ddf.compute().loc[res.failed.index])")
            fixed = retryable
        if not isinstance(fixed, pd.DataFrame):
            raise InputError(f"fixed must be a DataFrame of the rows to retry, not "
                             f"{type(fixed).__name__}")
        unknown = fixed.index.difference(frame.index)
        if len(unknown):
            raise InputError(f"{len(unknown)} row(s) of fixed are not rows of this load "
                             f"(index labels {list(unknown[:10])}); retry matches rows by label")
        done_already = fixed.index.difference(retryable.index)
        if len(done_already):
            raise InputError(
                f"{len(done_already)} row(s) of fixed succeeded already (index labels "
                f"{list(done_already[:10])}); sending them again would repeat their change")
        data = fixed.drop(columns=[c for c in results.STATUS_COLUMNS if c in fixed.columns])
        plan = self._run.plan
        settings = {"nulls": plan.options.nulls, "tz": plan.options.tz,
                    "column_delimiter": plan.options.column_delimiter,
                    "line_ending": plan.options.line_ending,
                    "max_bytes": plan.options.max_bytes, "max_records": plan.options.max_records,
                    "on_invalid": plan.options.on_invalid, "org": self._run.org,
                    "parallel": self._run.parallel, "progress": False, **options}
        if isinstance(settings["nulls"], dict):
            settings["nulls"] = {c: p for c, p in settings["nulls"].items() if c in data.columns}
        run = api.start_run(data, plan.sobject, plan.operation,
                            plan.key if plan.operation == "upsert" else None, **settings)
        return BulkResult(run, previous=self)

    def undo(self, force: bool = False, progress: Any = "auto"):
        """Put back the values this run changed and delete the records it created (see
        sfbulk_nb.undo): an UndoResult, one row per record. Rows whose record was
        modified again after the run are refused unless ``force=True``. Needs a run that
        looked its records up first (undoable=True, only_changed=True or
        if_unmodified_since=), or an insert; a delete cannot be undone."""
        from .undo import undo

        if not self.done:
            raise InputError("the run is still going: res.wait() first, then undo")
        return undo(self.run_id, org=self._run.org, force=force, progress=progress,
                    labels=self._run.df.index)

    def raise_for_status(self) -> "BulkResult":
        """Raise JobFailedError if a job ended Failed or Aborted, else the first error met
        on the way (a job that could not be sent or asked about, results that could not be
        read); row failures alone do not raise: they are in `failed`."""
        for info in self._run.infos:
            if info is not None and info.state in ("Failed", "Aborted"):
                raise JobFailedError(
                    f"Job {info.id} ended {info.state}: {info.error_message or 'no message'}",
                    job_id=info.id, state=info.state, error_message=info.error_message)
        if self.exceptions:
            raise self.exceptions[0]
        return self

    @property
    def exceptions(self) -> list[BaseException]:
        """Errors met on the way (a job that could not be sent, a poll that failed)."""
        earlier = self._previous.exceptions if self._previous is not None else []
        return earlier + list(self._run.exceptions)

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
        jobs = pd.DataFrame(rows, columns=["job_id", "state", "rows", "bytes", "processed",
                                           "failed", "created", "processing_ms",
                                           "error_message"])
        if self._previous is not None:
            jobs = pd.concat([self._previous.jobs, jobs], ignore_index=True)
        return jobs

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
        (see sfbulk_nb.plots); returns a plots.Chart, used as the matplotlib Axes
        (``.axes`` is the Axes itself) and shown in a notebook as the chart's picture."""
        from . import plots  # matplotlib only when a chart is asked for

        return plots.plot(self, kind, ax=ax, **options)

    def job_failures(self) -> list[str]:
        """One line per reason jobs ended Failed or Aborted: "job 2 failed: <its reason>";
        jobs of one reason together ("jobs 1–4 aborted")."""
        from .api import job_error_text

        groups: dict[tuple[str, str], list[int]] = {}
        for i, info in enumerate(self._run.infos):
            if info is not None and info.state in ("Failed", "Aborted"):
                reason = info.error_message or ("" if info.state == "Aborted"
                                                else job_error_text(info))
                groups.setdefault((info.state.lower(), reason), []).append(i + 1)
        lines = []
        for (state, reason), numbers in groups.items():
            head = (f"job {numbers[0]} {state}" if len(numbers) == 1
                    else f"jobs {number_ranges(numbers)} {state}")
            lines.append(f"{head}: {reason}" if reason else head)
        return lines

    def _summary(self) -> tuple[str, list[tuple[str, int]]]:
        run = self._run
        what = "retry" if self._previous is not None else run.operation
        where = "from" if run.operation in ("delete", "hardDelete") else "into"
        head = (f"{what} of {plural(run.rows, 'row')} {where} {run.sobject} "
                f"({run.org.kind} org), run {run.run_id}, {plural(run.job_count, 'job')}, "
                f"{plural(self.api_calls, 'API call')}, "
                f"{self.elapsed:.1f} s" + ("" if self.done else ", STILL RUNNING"))
        return head, [(s, int(n)) for s, n in self.counts.items() if n]

    @property
    def saved(self) -> dict[str, int] | None:
        """What only_changed saved: ``rows`` not sent (unchanged), the ``bulk_batches``
        they would have used (Salesforce counts a batch per 10,000 records of a job
        against DailyBulkApiBatches), and the ``lookup_calls`` spent finding them. None
        for a load that did not look its records up."""
        plan = self._run.plan
        if not plan.looks_up_before_sending:
            return None
        held = int(sum(len(p) for p, _, _ in plan.held.values()))
        sent = plan.rows_to_send

        def batches(rows: int) -> int:
            return -(-rows // _BULK_BATCH)

        return {"rows": held, "bulk_batches": batches(sent + held) - batches(sent),
                "lookup_calls": int(plan.lookup_calls)}

    def _saved_line(self) -> str | None:
        saved = self.saved
        if not saved:
            return None
        held = {s: len(p) for s, (p, _, _) in self._run.plan.held.items() if len(p)}
        why = ", ".join(f"{n:,} {s}" for s, n in held.items())
        batches = (f"{plural(saved['bulk_batches'], 'Bulk batch', 'Bulk batches')} saved; "
                   if saved["bulk_batches"] else "")
        return (f"{plural(saved['rows'], 'row')} not sent" + (f" ({why})" if why else "")
                + f"; {batches}the lookup took {plural(saved['lookup_calls'], 'API call')}")

    def __repr__(self) -> str:
        head, counts = self._summary()
        lines = [f"<BulkResult {head}>",
                 "  " + (", ".join(f"{n:,} {s}" for s, n in counts) or "no rows")]
        if self._saved_line():
            lines.append(f"  {self._saved_line()}")
        lines += [f"  {line}" for line in self.job_failures()]
        for row in self.errors.head(5).itertuples():
            fields = f" [{row.fields}]" if row.fields else ""
            lines.append(f"  {row.rows:,} x {row.code}{fields}: {_short(row.message, 100)}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head, counts = self._summary()
        badges = " ".join(
            f'<span style="color:{results.STATUS_COLOURS.get(s, "#000")};font-weight:600">{n:,} {s}</span>'
            for s, n in counts)
        parts = [f'<div class="sfbulk-result" style="max-width:100%;overflow:hidden">'
                 f"<b>BulkResult</b>: {html.escape(head)}<br>{badges}"]
        for line in self.job_failures():
            parts.append(f'<br><span style="color:#cf222e;font-weight:600">'
                         f"{html.escape(line)}</span>")
        if self._saved_line():
            parts.append(f"<br>{html.escape(self._saved_line())}")
        errs = self.errors
        if len(errs):
            parts.append("<br><b>Top errors</b>" + _errors_table(errs.head(10)))
        parts.append("<br><b>Rows</b>" + self._preview_html())
        parts.append("</div>")
        return "".join(parts)

    def _preview_html(self, rows: int = 5, own_columns: int = 4) -> str:
        """The first rows, their outcome first (sf_status, sf_id, the error) and a few of
        their own columns, in a table that fits the card."""
        frame = self.frame
        outcome = ["sf_status", "sf_id", "sf_error_code", "sf_error_message"]
        own = [c for c in frame.columns if c not in results.STATUS_COLUMNS][:own_columns]
        head = pd.DataFrame(frame, copy=False).head(rows)[outcome + own]
        note = (f"first {len(head):,} of {len(frame):,} rows, {len(frame.columns):,} "
                f"columns: res.frame has them all")
        return table_html(head, note, fit=True)


def _short(text: Any, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _errors_table(errs: pd.DataFrame) -> str:
    """Error groups as a table that fits its output: fixed layout, wrapped, values cut."""
    widths = ("11%", "20%", "10%", "33%", "8%", "18%")
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    names = "".join(f'<th style="{_CELL}">{n}</th>' for n in
                    ("status", "code", "fields", "message", "rows", "examples"))
    rows = []
    for r in errs.itertuples(index=False):
        colour = results.STATUS_COLOURS.get(r.status, "#000")
        examples = ", ".join(_short(e, 40) for e in r.examples)
        rows.append(
            f'<tr><td style="{_CELL};color:{colour}">{html.escape(r.status)}</td>'
            f'<td style="{_CELL}">{html.escape(r.code)}</td>'
            f'<td style="{_CELL}">{html.escape(r.fields)}</td>'
            f'<td style="{_CELL}">{html.escape(_short(r.message, 200))}</td>'
            f'<td style="{_CELL};text-align:right">{r.rows:,}<br><small>{r.share:.0%}</small></td>'
            f'<td style="{_CELL}">{html.escape(examples)}</td></tr>')
    return (f'<table style="table-layout:fixed;width:100%;border-collapse:collapse">'
            f"<colgroup>{cols}</colgroup><thead><tr>{names}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _merge_retried(before: pd.DataFrame, retried: pd.DataFrame) -> pd.DataFrame:
    """``before`` with the retried rows (by label) replaced by their new values and
    outcomes, in ``before``'s row order."""
    kept = before.drop(index=retried.index)
    retried = retried.assign(sf_attempts=retried["sf_attempts"]
                             + before.loc[retried.index, "sf_attempts"])
    merged = pd.concat([kept, retried])
    order = np.argsort(before.index.get_indexer(merged.index), kind="stable")
    merged = merged.iloc[order]
    columns = [c for c in before.columns if c in merged.columns and c not in results.STATUS_COLUMNS]
    columns += [c for c in merged.columns if c not in columns and c not in results.STATUS_COLUMNS]
    return merged[columns + list(results.STATUS_COLUMNS)]
