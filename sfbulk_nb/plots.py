"""Matplotlib charts of a bulk run: row outcomes, rows with errors, job states over time,
throughput, and a 2x2 dashboard of all four.

Every chart is ``f(res_or_data, ax=None, ...) -> Chart``: it draws on ``ax``, or on a new
figure sized for what it shows, and never calls ``plt.show()`` or changes rcParams.
``res`` is a BulkResult; each chart also takes the plain data it reads (``res.counts``,
``res.errors``, ``res.timeline``, ``res.progress_log``), so saved frames plot as well.

A Chart is the Axes drawn on (the dashboard's: its Figure) as far as code can tell:
attributes go to it (``chart.set_xlim(...)``, ``chart.patches``, ``chart.figure``) and
``chart.axes`` is the Axes itself, for a call that checks the type (``plt.sca(chart.axes)``).
What it adds is how a notebook shows it: as the picture of its figure, once, where a bare
Axes would echo ``<Axes: ...>`` above the picture and a bare Figure would show twice.

    from sfbulk_nb import plots
    plots.errors_by_code(res)
    plots.dashboard(res)

pyplot is imported only when a chart has to make a figure: importing pyplot selects a
backend, which importing this module must not do.
"""
from __future__ import annotations

import io
import math
import sys
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# One colour table for every view of a run (the HTML repr uses it too).
from .results import STATUS_COLOURS, STATUSES, count_statuses, summarize_errors

__all__ = ["Chart", "dashboard", "errors_by_code", "job_timeline", "outcomes", "plot", "throughput"]

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


class Chart:
    """What a chart returns: the Axes it drew on (the dashboard: its Figure), standing in
    for it, and shown in a notebook as the picture of its figure.

    Why not the Axes or Figure itself: a cell ending in an Axes echoes ``<Axes: ...>``
    above the picture, and one ending in a Figure shows it twice (as the cell's value, and
    again when the inline backend shows the figures pyplot made). An Axes cannot be made
    to display otherwise (``ax=`` is the caller's, of whatever class), so a Chart wraps it.
    Showing a Chart draws its whole figure and takes that figure off pyplot's list, so the
    inline backend does not show it again; after ``;`` nothing is shown of the Chart and
    the backend shows the figure as usual."""

    __slots__ = ("_artist",)

    def __init__(self, artist: Axes | Figure):
        object.__setattr__(self, "_artist", artist)

    def __getattr__(self, name: str) -> Any:
        # Dunders and display hooks stay the Chart's own: copy looks up __deepcopy__ on
        # the instance, and a Figure's _repr_html_ would show it a second way.
        if name.startswith(("__", "_repr_", "_ipython_")) or name == "_artist":
            raise AttributeError(name)
        return getattr(self._artist, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._artist, name, value)

    def __reduce__(self):
        return Chart, (self._artist,)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._artist)) | {"_repr_png_"})

    def __repr__(self) -> str:
        artist = self._artist
        title = artist.get_title() if isinstance(artist, Axes) else artist.get_suptitle()
        return f"<Chart: {type(artist).__name__} {title!r}>"

    def _repr_png_(self) -> bytes:
        # An Axes' figure may be a subfigure; the figure of a figure is its root.
        figure = self._artist.figure.figure
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")  # as the inline backend
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(figure)  # shown: the inline backend must not show it again
        return buffer.getvalue()


# ------------------------------------------------------------------------- charts


def outcomes(res: Any, ax: Axes | None = None) -> Chart:
    """Rows per status as horizontal bars, in ``STATUSES`` order; statuses with no rows
    are left out. ``res``: a BulkResult, a counts Series or an aligned frame."""
    counts = _counts(res)
    shown = counts[counts > 0]
    ax = _axes(ax, (7, 1.5 + 0.45 * max(len(shown), 1)))
    ax.set_title(f"Row outcomes ({_count(int(counts.sum()), 'row')})")
    if not len(shown):
        return _note(ax, "no rows")
    bars = ax.barh(np.arange(len(shown)), shown.to_numpy(), height=0.6,
                   color=[STATUS_COLOURS[s] for s in shown.index])
    ax.set_yticks(np.arange(len(shown)), [str(s) for s in shown.index])
    ax.bar_label(bars, [f"{n:,} ({p})" for n, p in zip(shown, _percents(shown))], padding=4)
    _style_bars(ax, "rows")
    return Chart(ax)


def errors_by_code(res: Any, ax: Axes | None = None, top: int = 10) -> Chart:
    """Rows with errors (failed, invalid, unprocessed with their job's reason ...) per
    status, error code and fields, the ``top`` largest groups as horizontal bars in their
    status's colour, largest at the top. ``res``: a BulkResult, its ``errors`` frame or an
    aligned frame."""
    groups = _error_groups(_errors(res))
    shown = groups.head(top)
    ax = _axes(ax, (8, 1.5 + 0.42 * max(len(shown), 1)))
    ax.set_title("Rows with errors")
    if not len(shown):
        return _note(ax, "no errors", STATUS_COLOURS["created"])
    bars = ax.barh(np.arange(len(shown)), shown["rows"].to_numpy(), height=0.6,
                   color=[STATUS_COLOURS.get(s, FAILED) for s in shown["status"]])
    ax.set_yticks(np.arange(len(shown)), list(shown["label"]))
    shares = _percents(groups["rows"])[: len(shown)]
    ax.bar_label(bars, [f"{n:,} {status} ({p})" for n, status, p
                        in zip(shown["rows"], shown["status"], shares)], padding=4)
    rest = groups.iloc[len(shown):]
    more = ""
    if len(rest):
        ax.set_title(f"Rows with errors (top {len(shown)} of {len(groups)} kinds)")
        more = f" (+{int(rest['rows'].sum()):,} in {_count(len(rest), 'more kind')})"
    _style_bars(ax, "rows" + more)
    return Chart(ax)


def job_timeline(res_or_timeline: Any, ax: Axes | None = None) -> Chart:
    """One row per job, ``#1`` for the first (its chunk; ``res.jobs`` lists them in this
    order), coloured by the state it was in (Open, UploadComplete, InProgress) until the
    next state was seen, and a diamond at the time it reached its final state (JobComplete,
    Failed, Aborted). A job still running when the timeline was taken stretches to the
    last event. ``res_or_timeline``: a BulkResult (its ``timeline``) or a frame of job_id,
    chunk (optional), state, at (epoch seconds)."""
    timeline = _frame(res_or_timeline, "timeline", ("job_id", "state", "at"))
    jobs, end = _job_segments(res_or_timeline, timeline)
    ax = _axes(ax, (9, 1.5 + 0.3 * max(len(jobs), 1)))
    ax.set_title("Job states over time")
    if not jobs:
        return _note(ax, "no job timeline recorded")
    seen = []
    for y, (_, segments, final) in enumerate(jobs):
        states = [state for _, _, state in segments] + ([final[1]] if final else [])
        seen += [s for s in states if s not in seen]
        ax.broken_barh([(start, width) for start, width, _ in segments], (y - 0.3, 0.6),
                       facecolors=[STATE_COLOURS.get(s, OTHER_STATE) for _, _, s in segments],
                       edgecolor="white", linewidth=0.8)
        if final:
            # A marker, not a bar: the final state is a moment, and a moment has no width
            # to draw. Unclipped, so that one at the right edge shows whole.
            ax.plot([final[0]], [y], marker="D", markersize=8, linestyle="none",
                    color=STATE_COLOURS.get(final[1], OTHER_STATE), markeredgecolor="white",
                    clip_on=False, zorder=3)
    ticks = np.arange(len(jobs))[:: math.ceil(len(jobs) / MAX_JOB_TICKS)]
    ax.set_yticks(ticks, [jobs[i][0] for i in ticks])
    ax.set_ylim(len(jobs) - 0.5, -0.5)
    ax.set_xlim(0, end or 1)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("job")
    order = [s for s in STATE_COLOURS if s in seen] + [s for s in seen if s not in STATE_COLOURS]
    ax.legend([Patch(color=STATE_COLOURS.get(s, OTHER_STATE)) for s in order], order,
              loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="state")
    _despine(ax)
    return Chart(ax)


def throughput(res_or_progress: Any, ax: Axes | None = None) -> Chart:
    """Records processed (successes and failures) and failed, summed over jobs, against
    seconds since the start: a dot per poll, a straight line between polls (the counters
    moved somewhere between them). ``res_or_progress``: a BulkResult (its
    ``progress_log``) or a frame of job_id, at (epoch seconds), processed, failed: one
    row per poll."""
    log = _frame(res_or_progress, "progress_log", ("job_id", "at", "processed", "failed"))
    ax = _axes(ax, (8, 4))
    ax.set_title("Records processed")
    if log is None or not len(log):
        return _note(ax, "no progress recorded")
    log = log.sort_values("at", kind="stable")
    origin, end = _span(res_or_progress, log)
    seconds = np.concatenate([[0.0], log["at"].to_numpy(float) - origin])
    processed, failed = (np.concatenate([[0], _running_total(log, c)]) for c in ("processed", "failed"))
    ax.plot(seconds, processed, marker="o", markersize=3, color=PROCESSED, linewidth=2,
            label=f"processed ({processed[-1]:,.0f})")
    ax.fill_between(seconds, processed, color=PROCESSED, alpha=0.12)
    ax.plot(seconds, failed, marker="o", markersize=3, color=FAILED, linewidth=2,
            label=f"failed ({failed[-1]:,.0f})")
    sent = _rows_sent(res_or_progress)
    if sent:
        ax.axhline(sent, color=MUTED, linestyle="--", linewidth=1, label=f"rows sent ({sent:,})")
    if seconds[-1] > 0:
        ax.set_title(f"Records processed ({processed[-1] / seconds[-1]:,.0f} rows/s)")
    ax.set_xlim(0, (end - origin) or 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("records")
    _count_axis(ax.yaxis)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _despine(ax)
    return Chart(ax)


_KINDS = {"outcomes": outcomes, "errors": errors_by_code, "timeline": job_timeline,
          "throughput": throughput}


def plot(res: Any, kind: str = "outcomes", ax: Axes | None = None, **options) -> Chart:
    """One chart by name: "outcomes", "errors", "timeline" or "throughput"."""
    try:
        chart = _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}, not {kind!r}") from None
    return chart(res, ax=ax, **options)


def dashboard(res: Any, fig: Figure | None = None) -> Chart:
    """The four charts of a BulkResult on one 2x2 figure (made with pyplot unless given);
    the Chart stands for that Figure (``.figure`` is the Figure itself)."""
    if fig is None:
        fig = _pyplot().figure(figsize=(14, 9), layout="constrained")
    # Subfigures, not a 2x2 grid: a grid lines up the axes of a column, so the long error
    # labels of one panel would squeeze the throughput panel under it.
    for panel, chart in zip(fig.subfigures(2, 2).flat, _KINDS.values()):
        chart(res, ax=panel.add_subplot())
    jobs = getattr(res, "jobs", None)
    fig.suptitle(f"Bulk run: {_count(int(_counts(res).sum()), 'row')}"
                 + (f" in {_count(len(jobs), 'job')}" if isinstance(jobs, pd.DataFrame) else ""),
                 fontsize="x-large", fontweight="bold")
    return Chart(fig)


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
    errors = _frame(res, "errors", ("status", "code", "fields", "message", "rows"))
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


Segment = tuple[float, float, str]  # start, width, state (seconds since the start)


def _job_segments(res: Any, timeline: pd.DataFrame | None
                  ) -> tuple[list[tuple[str, list[Segment], tuple[float, str] | None]], float]:
    """(label, [(start, width, state), ...], (time, final state) or None) per job, in
    chunk order, and the seconds from the start to the last event."""
    if timeline is None:
        return [], 0.0
    events = timeline.dropna(subset=["job_id", "at"])
    if not len(events):
        return [], 0.0
    events = events.sort_values("at", kind="stable").drop_duplicates(["job_id", "state"])
    origin, end = _span(res, events)
    chunks = events["chunk"] if "chunk" in events.columns else pd.Series(np.nan, index=events.index)
    first = (events.assign(_chunk=pd.to_numeric(chunks, errors="coerce"))
             .groupby("job_id", sort=False).agg(chunk=("_chunk", "first"), start=("at", "first"))
             .sort_values(["chunk", "start"], kind="stable"))
    jobs = []
    for n, (job_id, chunk) in enumerate(first["chunk"].items(), start=1):
        rows = events[events["job_id"] == job_id]
        starts = list(rows["at"].to_numpy(float) - origin)
        states = [str(s) for s in rows["state"]]
        final = (starts.pop(), states.pop()) if states[-1] in TERMINAL_STATES else None
        ends = starts[1:] + [final[0] if final else end - origin]
        label = f"#{int(chunk) + 1}" if pd.notna(chunk) else f"#{n}"
        jobs.append((label, [(s, e - s, state) for s, e, state in zip(starts, ends, states)], final))
    return jobs, end - origin


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
    """Rows per (status, code, fields), largest first, with a bar label; errors without a
    code are told apart by message."""
    def text(column):
        return errors[column].astype("object").where(errors[column].notna(), "").astype(str)
    code, fields, message = text("code"), text("fields"), text("message")
    head = code.where(code != "", message).replace("", "(no message)")
    groups = (pd.DataFrame({"status": text("status"), "head": head, "fields": fields,
                            "rows": errors["rows"].astype(np.int64)})
              .groupby(["status", "head", "fields"], sort=False)["rows"].sum().reset_index()
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


def _percents(counts: Any) -> list[str]:
    """Each count's share of their sum in whole percent, rounded so that the shares add up
    to 100 (largest remainder first); a share rounded to 0 or 100 that is neither says
    "<1%" or ">99%"."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    exact = counts * 100 / total
    whole = np.floor(exact).astype(np.int64)
    lost = 100 - int(whole.sum())  # to rounding down: a point each to the largest remainders
    whole[np.argsort(whole - exact, kind="stable")[:lost]] += 1
    return ["<1%" if p == 0 and n else ">99%" if p == 100 and n < total else f"{p}%"
            for n, p in zip(counts, whole)]


def _count(n: int, noun: str) -> str:
    """``1 row``, ``3,000 rows``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


# ------------------------------------------------------------------------- drawing


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Axes | Chart | None, size: tuple[float, float]) -> Axes:
    """``ax`` (the Axes of a Chart), or one on a new figure of ``size`` (width, height),
    no taller than a notebook cell shows at once."""
    if ax is not None:
        return ax.axes
    width, height = size
    return _pyplot().subplots(figsize=(width, min(height, 8)), layout="constrained")[1]


def _style_bars(ax: Axes, xlabel: str) -> None:
    """Largest/first bar at the top; the axis ends at the longest bar, whose label the
    layout makes room for beside it."""
    ax.invert_yaxis()
    ax.set_xlim(0, max(p.get_width() for p in ax.patches))
    _count_axis(ax.xaxis)
    ax.set_xlabel(xlabel)
    _despine(ax)


class _FewTicks(ticker.MaxNLocator):
    """Whole numbers, about five ticks, fewer on an axis too short for five labels."""

    def __init__(self):
        super().__init__(nbins=5, integer=True)

    def __call__(self):
        if self.axis is not None:
            self.set_params(nbins=min(5, max(1, self.axis.get_tick_space())))
        return super().__call__()


def _count_axis(axis) -> None:
    """Whole numbers with thousands separators, few enough not to run into each other."""
    axis.set_major_locator(_FewTicks())
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def _despine(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _note(ax: Axes, text: str, colour: str = MUTED) -> Chart:
    """A message in place of an empty chart."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize="large", color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return Chart(ax)
