"""Matplotlib charts of a bulk run: row outcomes, failures by error, job states over time,
throughput, and a 2x2 dashboard of all four.

Every chart is ``f(res_or_data, ax=None, ...) -> Axes``: it draws on ``ax``, or on a new
figure sized for what it shows, and never calls ``plt.show()`` or changes rcParams.
``res`` is a BulkResult; each chart also takes the plain data it reads (``res.counts``,
``res.errors``, ``res.timeline``, ``res.progress_log``), so saved frames plot as well.

    from sfbulk_nb import plots
    plots.errors_by_code(res)
    plots.dashboard(res);       # a Figure: end the line with ";" or it shows twice inline

pyplot is imported only when a chart has to make a figure: importing pyplot selects a
backend, which importing this module must not do.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# One colour table for every view of a run (the HTML repr uses it too).
from .results import STATUS_COLOURS, STATUSES, count_statuses, summarize_errors

__all__ = ["dashboard", "errors_by_code", "job_timeline", "outcomes", "plot", "throughput"]

FAILED = STATUS_COLOURS["failed"]
MUTED = STATUS_COLOURS["pending"]
# Processed counts successes and failures alike, so it gets neither green nor red.
PROCESSED = "#0969da"
STATE_COLOURS = {
    "Open": "#afb8c1",
    "UploadComplete": MUTED,
    "InProgress": PROCESSED,
    "JobComplete": STATUS_COLOURS["created"],
    "Failed": FAILED,
    "Aborted": STATUS_COLOURS["not_sent"],
}
OTHER_STATE = "#d0d7de"
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
LABEL_WIDTH = 44  # characters of an error label; longer ones crowd out the bars
MAX_JOB_TICKS = 30


# ------------------------------------------------------------------------- charts


def outcomes(res: Any, ax: Axes | None = None) -> Axes:
    """Rows per status as horizontal bars, in ``STATUSES`` order; statuses with no rows
    are left out. ``res``: a BulkResult, a counts Series or an aligned frame."""
    counts = _counts(res)
    total = int(counts.sum())
    shown = counts[counts > 0]
    ax = _axes(ax, (7, 1.5 + 0.45 * max(len(shown), 1)))
    ax.set_title(f"Row outcomes ({total:,} rows)")
    if not len(shown):
        return _note(ax, "no rows")
    bars = ax.barh(np.arange(len(shown)), shown.to_numpy(), height=0.6,
                   color=[STATUS_COLOURS[s] for s in shown.index])
    ax.set_yticks(np.arange(len(shown)), [str(s) for s in shown.index])
    ax.bar_label(bars, [f"{n:,} ({_share(n, total)})" for n in shown], padding=4)
    _style_bars(ax, "rows")
    return ax


def errors_by_code(res: Any, ax: Axes | None = None, top: int = 10) -> Axes:
    """Failed rows per error code and fields, the ``top`` largest as horizontal bars,
    largest at the top. ``res``: a BulkResult, its ``errors`` frame or an aligned frame."""
    groups = _error_groups(_errors(res))
    shown = groups.head(top)
    ax = _axes(ax, (8, 1.5 + 0.42 * max(len(shown), 1)))
    ax.set_title("Failed rows by error")
    if not len(shown):
        return _note(ax, "no failed rows", STATUS_COLOURS["created"])
    failed = int(groups["rows"].sum())
    bars = ax.barh(np.arange(len(shown)), shown["rows"].to_numpy(), height=0.6, color=FAILED)
    ax.set_yticks(np.arange(len(shown)), list(shown["label"]))
    ax.bar_label(bars, [f"{n:,} ({_share(n, failed)})" for n in shown["rows"]], padding=4)
    rest = groups.iloc[len(shown):]
    if len(rest):
        ax.set_title(f"Failed rows by error (top {len(shown)} of {len(groups)})")
    _style_bars(ax, "failed rows" + (f" (+{int(rest['rows'].sum()):,} in {len(rest)} more)" if len(rest) else ""))
    return ax


def job_timeline(res_or_timeline: Any, ax: Axes | None = None) -> Axes:
    """One row per job, coloured by the state it was in (Open, UploadComplete, InProgress)
    until the next state was seen; the final state is a short cap at its time. A job
    still running when the timeline was taken stretches to its last event.
    ``res_or_timeline``: a BulkResult (its ``timeline``) or a frame of job_id, chunk
    (optional), state, at (epoch seconds)."""
    timeline = _frame(res_or_timeline, "timeline", ("job_id", "state", "at"))
    jobs = _job_segments(res_or_timeline, timeline)
    ax = _axes(ax, (9, 1.5 + 0.3 * max(len(jobs), 1)))
    ax.set_title("Job states over time")
    if not jobs:
        return _note(ax, "no job timeline recorded")
    seen = []
    for y, (_, segments) in enumerate(jobs):
        states = [state for _, _, state in segments]
        seen += [s for s in states if s not in seen]
        ax.broken_barh([(start, width) for start, width, _ in segments], (y - 0.3, 0.6),
                       facecolors=[STATE_COLOURS.get(s, OTHER_STATE) for s in states],
                       edgecolor="white", linewidth=0.8)
    ticks = np.arange(len(jobs))[:: math.ceil(len(jobs) / MAX_JOB_TICKS)]
    ax.set_yticks(ticks, [jobs[i][0] for i in ticks])
    ax.set_ylim(len(jobs) - 0.5, -0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since start")
    order = [s for s in STATE_COLOURS if s in seen] + [s for s in seen if s not in STATE_COLOURS]
    ax.legend([Patch(color=STATE_COLOURS.get(s, OTHER_STATE)) for s in order], order,
              loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="state")
    _despine(ax)
    return ax


def throughput(res_or_progress: Any, ax: Axes | None = None) -> Axes:
    """Records processed (successes and failures) and failed, summed over jobs, against
    seconds since the start. ``res_or_progress``: a BulkResult (its ``progress_log``)
    or a frame of job_id, at (epoch seconds), processed, failed: one row per poll."""
    log = _frame(res_or_progress, "progress_log", ("job_id", "at", "processed", "failed"))
    ax = _axes(ax, (8, 4))
    ax.set_title("Records processed")
    if log is None or not len(log):
        return _note(ax, "no progress recorded")
    log = log.sort_values("at", kind="stable")
    origin, _ = _span(res_or_progress, log)
    seconds = np.concatenate([[0.0], log["at"].to_numpy(float) - origin])
    processed, failed = (np.concatenate([[0], _running_total(log, c)]) for c in ("processed", "failed"))
    ax.step(seconds, processed, where="post", color=PROCESSED, linewidth=2,
            label=f"processed ({processed[-1]:,.0f})")
    ax.fill_between(seconds, processed, step="post", color=PROCESSED, alpha=0.12)
    ax.step(seconds, failed, where="post", color=FAILED, linewidth=2, label=f"failed ({failed[-1]:,.0f})")
    sent = _rows_sent(res_or_progress)
    if sent:
        ax.axhline(sent, color=MUTED, linestyle="--", linewidth=1, label=f"rows sent ({sent:,})")
    if seconds[-1] > 0:
        ax.set_title(f"Records processed ({processed[-1] / seconds[-1]:,.0f} rows/s)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("records")
    _count_axis(ax.yaxis)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _despine(ax)
    return ax


_KINDS = {"outcomes": outcomes, "errors": errors_by_code, "timeline": job_timeline,
          "throughput": throughput}


def plot(res: Any, kind: str = "outcomes", ax: Axes | None = None, **options) -> Axes:
    """One chart by name: "outcomes", "errors", "timeline" or "throughput"."""
    try:
        chart = _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}, not {kind!r}") from None
    return chart(res, ax=ax, **options)


def dashboard(res: Any, fig: Figure | None = None) -> Figure:
    """The four charts of a BulkResult on one 2x2 figure (made with pyplot unless given)."""
    if fig is None:
        fig = _pyplot().figure(figsize=(14, 9), layout="constrained")
    # Subfigures, not a 2x2 grid: a grid lines up the axes of a column, so the long error
    # labels of one panel would squeeze the throughput panel under it.
    for panel, chart in zip(fig.subfigures(2, 2).flat, _KINDS.values()):
        chart(res, ax=panel.add_subplot())
    jobs = getattr(res, "jobs", None)
    fig.suptitle(f"Bulk run: {int(_counts(res).sum()):,} rows"
                 + (f" in {len(jobs)} job(s)" if isinstance(jobs, pd.DataFrame) else ""),
                 fontsize="x-large", fontweight="bold")
    return fig


# ------------------------------------------------------------------------- data


def _counts(res: Any) -> pd.Series:
    if isinstance(res, pd.DataFrame):
        return count_statuses(res)
    counts = res if isinstance(res, pd.Series) else getattr(res, "counts", None)
    if not isinstance(counts, pd.Series):
        raise TypeError(f"expected a BulkResult, a counts Series or an aligned frame, not {type(res).__name__}")
    unknown = [s for s in counts.index if s not in STATUSES]
    if unknown:
        raise ValueError(f"counts are indexed by statuses, not {unknown!r}")
    return counts.reindex(list(STATUSES), fill_value=0)


def _errors(res: Any) -> pd.DataFrame:
    if isinstance(res, pd.DataFrame) and "sf_status" in res.columns:
        return summarize_errors(res)
    errors = _frame(res, "errors", ("code", "fields", "message", "rows"))
    if errors is None:
        raise TypeError(f"expected a BulkResult, an errors frame or an aligned frame, not {type(res).__name__}")
    return errors


def _frame(res: Any, attribute: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
    """``res`` if it is a frame, else its ``attribute`` (None when it has none)."""
    data = res if isinstance(res, pd.DataFrame) else getattr(res, attribute, None)
    if data is None:
        return None
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValueError(f"a {attribute} frame needs columns {list(columns)}; missing {missing}")
    return data


def _span(res: Any, data: pd.DataFrame) -> tuple[float, float]:
    """First and last event time. For a BulkResult both event logs count, so that its
    timeline and throughput charts share the same zero."""
    frames = [data] if isinstance(res, pd.DataFrame) else [
        f for f in (getattr(res, "timeline", None), getattr(res, "progress_log", None))
        if isinstance(f, pd.DataFrame) and "at" in f.columns and len(f)]
    at = pd.concat([f["at"] for f in frames or [data]]).astype(float)
    return float(at.min()), float(at.max())


def _job_segments(res: Any, timeline: pd.DataFrame | None) -> list[tuple[str, list[tuple[float, float, str]]]]:
    """(label, [(start, width, state), ...]) per job, in chunk order."""
    if timeline is None:
        return []
    events = timeline.dropna(subset=["job_id", "at"])
    if not len(events):
        return []
    events = events.sort_values("at", kind="stable").drop_duplicates(["job_id", "state"])
    origin, end = _span(res, events)
    cap = (end - origin) * 0.015 or 0.1  # the final state: visible, yet clearly a point
    chunks = events["chunk"] if "chunk" in events.columns else pd.Series(np.nan, index=events.index)
    first = (events.assign(_chunk=pd.to_numeric(chunks, errors="coerce"))
             .groupby("job_id", sort=False).agg(chunk=("_chunk", "first"), start=("at", "first"))
             .sort_values(["chunk", "start"], kind="stable"))
    jobs = []
    for job_id, chunk in first["chunk"].items():
        rows = events[events["job_id"] == job_id]
        starts = rows["at"].to_numpy(float) - origin
        states = [str(s) for s in rows["state"]]
        last_end = starts[-1] + cap if states[-1] in TERMINAL_STATES else end - origin
        ends = np.append(starts[1:], max(last_end, starts[-1] + cap))
        label = f"#{int(chunk) + 1} {job_id}" if pd.notna(chunk) else str(job_id)
        jobs.append((label, list(zip(starts, ends - starts, states))))
    return jobs


def _running_total(log: pd.DataFrame, column: str) -> np.ndarray:
    """Sum over jobs of each job's latest counter, after each poll (log sorted by time)."""
    value = pd.to_numeric(log[column], errors="coerce").fillna(0).astype(float)
    return (value - value.groupby(log["job_id"].to_numpy()).shift(fill_value=0)).cumsum().to_numpy()


def _rows_sent(res: Any) -> int:
    jobs = getattr(res, "jobs", None) if not isinstance(res, pd.DataFrame) else None
    if not isinstance(jobs, pd.DataFrame) or "rows" not in jobs.columns:
        return 0
    return int(pd.to_numeric(jobs["rows"], errors="coerce").fillna(0).sum())


def _error_groups(errors: pd.DataFrame) -> pd.DataFrame:
    """Rows per (code, fields), largest first, with a bar label; errors without a code
    are told apart by message."""
    def text(column):
        return errors[column].astype("object").where(errors[column].notna(), "").astype(str)
    code, fields, message = text("code"), text("fields"), text("message")
    head = code.where(code != "", message).replace("", "(no message)")
    groups = (pd.DataFrame({"head": head, "fields": fields, "rows": errors["rows"].astype(np.int64)})
              .groupby(["head", "fields"], sort=False)["rows"].sum().reset_index()
              .sort_values("rows", ascending=False, kind="stable").reset_index(drop=True))
    groups["label"] = [_error_label(h, f) for h, f in zip(groups["head"], groups["fields"])]
    return groups


def _error_label(head: str, fields: str, width: int = LABEL_WIDTH) -> str:
    """``CODE [f1, f2]``; when too long, fewer fields and a count of the rest, then the
    code itself cut with an ellipsis."""
    names = [f.strip() for f in fields.split(",") if f.strip()]
    for keep in range(len(names), 0, -1):
        more = len(names) - keep
        label = f"{head} [{', '.join(names[:keep])}{f', +{more}' if more else ''}]"
        if len(label) <= width:
            return label
    suffix = f" [{names[0]}{f', +{len(names) - 1}' if len(names) > 1 else ''}]" if names else ""
    room = max(width - len(suffix), width // 2)
    head = head if len(head) <= room else head[: room - 1] + "…"
    label = head + suffix
    return label if len(label) <= width else label[: width - 1] + "…"


def _share(n: int, total: int) -> str:
    share = n / total
    if 0 < share < 0.01:
        return "<1%"
    if 0.99 < share < 1:
        return ">99%"
    return f"{share:.0%}"


# ------------------------------------------------------------------------- drawing


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax``, or one on a new figure of ``size`` (width, height), no taller than a
    notebook cell shows at once."""
    if ax is not None:
        return ax
    width, height = size
    return _pyplot().subplots(figsize=(width, min(height, 8)), layout="constrained")[1]


def _style_bars(ax: Axes, xlabel: str) -> None:
    """Largest/first bar at the top, room right of the bars for their labels."""
    ax.invert_yaxis()
    ax.set_xlim(0, ax.get_xlim()[1] * 1.3)
    _count_axis(ax.xaxis)
    ax.set_xlabel(xlabel)
    _despine(ax)


def _count_axis(axis) -> None:
    """Whole numbers with thousands separators, few enough not to run into each other."""
    axis.set_major_locator(ticker.MaxNLocator(nbins=5, integer=True))
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def _despine(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _note(ax: Axes, text: str, colour: str = MUTED) -> Axes:
    """A message in place of an empty chart."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize="large", color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return ax
