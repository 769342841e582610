"""The live panel of a streamed load (upsert_csv & co, an iterable of frames) in a notebook:
how far through the input it is, the jobs, the outcomes so far, and where the results go.

A streamed load in a kernel with progress="auto" shows this instead of a text line per
job (stderr lines, which a notebook shows on a red background as if they were errors).
It is fed `StreamProgress` snapshots by the load (stream.py) and renders at most once per
``min_interval`` seconds, except the last one (`final=True`), which always renders.
"""
from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ipywidgets as widgets

from .results import ERROR_STATUSES, STATUS_COLOURS

# The outcome counts shown, in this order, with the colours of every other display.
_SHOWN = tuple((name, STATUS_COLOURS[name]) for name in (
    "created", "updated", "deleted", "failed", "invalid", "unknown", "unprocessed",
    "not_sent", "pending"))


@dataclass
class StreamProgress:
    """What a streamed load has done so far (one snapshot)."""

    title: str  # e.g. "upsert Account from accounts.csv"
    results: str  # the results file
    phase: str  # "checking", "sending", "done", "stopped" or "checked" (validate_csv)
    label: str  # "line" (a file) or "row" (an iterable)
    rows: int  # rows read so far
    last_label: object  # the label (line / position) of the last row read
    fraction: float | None  # of the input read in this phase, when its size is known
    jobs_done: int
    jobs_running: int
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    stop_text: str | None = None


class StreamPanel(widgets.VBox):
    """The panel; call it with a StreamProgress. Safe from any thread."""

    def __init__(self, *, min_interval: float = 0.3,
                 clock: Callable[[], float] = time.monotonic):
        self._min_interval = min_interval
        self._clock = clock
        self._last = float("-inf")
        self._lock = threading.Lock()
        self.header = widgets.HTML()
        # description_width "initial": "sending ~45%" whole, not cut to the default width.
        self.bar = widgets.FloatProgress(value=0, min=0, max=1, bar_style="info",
                                         style={"description_width": "initial"},
                                         layout=widgets.Layout(width="auto"))
        self.line = widgets.HTML()
        super().__init__([self.header, self.bar, self.line])
        self.add_class("sfbulk-stream")

    def __call__(self, p: StreamProgress, final: bool = False) -> None:
        with self._lock:
            now = self._clock()
            if not final and now - self._last < self._min_interval:
                return
            self._last = now
            self._render(p)

    def _render(self, p: StreamProgress) -> None:
        self.header.value = f"<b>{html.escape(p.title)}</b>" + (
            f" &rarr; results in <code>{html.escape(p.results)}</code>" if p.results
            else " &middot; nothing is sent")
        if p.phase == "checked":  # validate_csv's end: every row checked, none sent
            self.bar.value = 1
            self.bar.bar_style = "warning" if _bad(p.counts) else "success"
            self.bar.description = "checked"
        elif p.phase in ("done", "stopped"):
            self.bar.value = 1
            self.bar.bar_style = "success" if p.phase == "done" and not _bad(p.counts) else (
                "danger" if p.phase == "stopped" else "warning")
            self.bar.description = p.phase
        else:
            self.bar.value = p.fraction if p.fraction is not None else 0
            self.bar.bar_style = "info"
            read = f" ~{p.fraction:.0%}" if p.fraction is not None else ""
            self.bar.description = f"{p.phase}{read}"
        where = (f"{p.label}s read to {p.last_label:,}" if isinstance(p.last_label, int)
                 else f"{p.rows:,} rows read")
        if p.phase == "checking":
            parts = [where, "checking every row before sending anything"]
        elif p.phase == "checked":
            bad = p.counts.get("invalid", 0)
            parts = [where, f"<span style='color:{STATUS_COLOURS['invalid']}'>{bad:,} "
                     f"{'row has' if bad == 1 else 'rows have'} errors</span>" if bad
                     else "no errors", "nothing was sent"]
        elif p.phase == "stopped" and not p.jobs_done and not any(p.counts.values()):
            parts = [where]  # stopped before any job: by the check, or at once
        else:
            jobs = f"{p.jobs_done:,} job{'s' if p.jobs_done != 1 else ''} done"
            if p.jobs_running:
                jobs += f", {p.jobs_running} running"
            parts = [f"{p.rows:,} rows", where, jobs]
            parts += [f"<span style='color:{colour}'>{p.counts[name]:,} {name}</span>"
                      for name, colour in _SHOWN if p.counts.get(name)]
        parts.append(f"{p.elapsed:,.1f} s")
        text = " &middot; ".join(parts)
        if p.stop_text:
            text += f"<br><b>{html.escape(p.stop_text)}</b>"
        self.line.value = f"<span class='sfbulk-stream-line'>{text}</span>"


def _bad(counts: dict[str, int]) -> bool:
    return any(counts.get(k) for k in ERROR_STATUSES)
