"""The live panel of a bulk run in Jupyter: one ipywidgets box per run, drawn from the
run's `progress.RunState` and updated in place.

    res = sfb.upsert_df(df, "Account", "customExtIdField__c")   # progress="auto" in a kernel
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=RunPanel())

`progress.reporter_for("auto")` imports this module only in a live kernel with ipywidgets,
and returns a `WidgetProgress`, which gives every run it sees start a `RunPanel` of its own.

The panel: a header (the org's badge LOCAL / SANDBOX / PRODUCTION, what runs where, the run
id, API calls, Abort), one overall line (a bar of rows succeeded / failed and ``n / N rows ·
% · elapsed · time left · rows/s``, then ``took`` once done), and a grid of jobs with fixed
columns (number, state, a bar of three segments: succeeded green, failed red, left
unprocessed amber; counts; timing; job id), a failed job's reason on a line of its own.
A finished query shrinks to one line. The widget reads nothing of the run but its events.

Hooks for browser tests: the outer box has the CSS class `sfbulk-run`, the overall line
`sfbulk-overall`, each job row `sfbulk-job`; a row's state is in `.sfbulk-state
[data-state]` (and its `.sfbulk-current` chip); bars are `.sfbulk-bar` with segments
`.sfbulk-seg-ok`, `.sfbulk-seg-failed`, `.sfbulk-seg-left` (widths in %); a job's reason is
`.sfbulk-error`.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Callable

import ipywidgets as widgets

from .progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPLOADED, RUN_FINISHED,
                       RUN_STARTED, STEPS, JobState, ProgressEvent, RunState, plural)

_BADGES = {"production": ("PRODUCTION", "#cf222e"), "sandbox": ("SANDBOX", "#bf8700"),
           "local": ("LOCAL", "#57606a")}
_BORDER = {"running": "#0969da", "success": "#1a7f37", "warning": "#bf8700",
           "danger": "#cf222e"}
_OK, _RED, _AMBER, _GREY, _MUTED = "#2da44e", "#cf222e", "#d4a72c", "#eaeef2", "#57606a"
_CHIP = {"done": "background:#dafbe1;color:#116329",
         "current": "background:#ddf4ff;color:#0550ae;font-weight:600",
         "bad": "background:#ffebe9;color:#a40e26;font-weight:600",
         "pending": "background:#f6f8fa;color:#424a53"}
# Fixed columns: every job row lines up whatever its texts (state, counts, timing, id). The
# rows are `display:contents`, so their cells share one grid: a text column is as wide as
# its widest cell in any row, and the bars take what is left.
_GRID = ("display:grid;grid-template-columns:auto auto minmax(6em,1fr) auto auto auto;"
         "column-gap:0.9em;row-gap:0;align-items:center;font-size:0.9em;line-height:1.6;"
         "max-width:100%")
_CELL = "white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_MAX_JOB_ROWS = 12


class RunPanel(widgets.VBox):
    """A bulk run's live panel, and the progress reporter that drives it.

    Pass it as `progress=` or let progress="auto" make one per run. It stays hidden until
    the run's first event (RUN_STARTED) builds it, and with `display=True` shows itself then
    unless it was displayed already. Events may come from any thread; the jobs grid
    re-renders at most once per `min_interval` seconds, but a state change and the end of a
    job or of the run always render (a skipped update gets one catch-up render).

    A run with wait=False starts on a thread of its own, whose output ipykernel may put under
    a later cell: display such a panel yourself first (`display(panel)`), as "auto" does.
    """

    wants_ui_events = True  # see WidgetProgress; False where clicks need no help

    def __init__(self, *, display: bool = True, min_interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], float] = time.time):
        self.state: RunState | None = None
        self._display = display
        self._displayed = False
        self._min_interval = min_interval
        self._clock = clock
        self._now = now
        self._last_render = float("-inf")
        self._catch_up: threading.Timer | None = None
        self._drawn: dict[int, str] = {}  # each job's state as last drawn
        self._lock = threading.RLock()
        self.badge = widgets.HTML()
        self.header = widgets.HTML()
        self.calls = widgets.HTML()
        self.calls.add_class("sfbulk-calls")
        self.abort_button = widgets.Button(description="Abort", icon="stop",
                                           tooltip="Abort every unfinished job of this run",
                                           layout=widgets.Layout(width="auto"))
        self.abort_button.on_click(self._abort_clicked)
        if route_clicks_off_the_main_thread(self.abort_button):
            self.wants_ui_events = False
        # No width="100%": the widgets' own margins would push it past the panel's edge.
        self.overall = widgets.HTML()
        self.overall.add_class("sfbulk-overall")
        self.jobs = widgets.HTML()
        self.jobs.add_class("sfbulk-jobs")
        top = widgets.HBox([self.badge, self.header, self.calls, self.abort_button],
                           layout=widgets.Layout(align_items="center", flex_flow="row wrap",
                                                 grid_gap="0.5em"))
        super().__init__([top, self.overall, self.jobs],
                         layout=widgets.Layout(padding="4px 8px", margin="4px 0",
                                               border_left=f"4px solid {_BORDER['running']}",
                                               display="none", max_width="100%",
                                               overflow="hidden"))
        self.add_class("sfbulk-run")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._displayed = True  # by us, by the user or by WidgetProgress: once is enough
        return super()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        # The text/plain of the display: what a notebook shows where widgets cannot render.
        state = self.state
        if state is None:
            return "<RunPanel: waiting for a run>"
        summary = state.message if state.finished else state.status
        return (f"<RunPanel {state.info.operation} {state.info.sobject} on "
                f"{state.info.org_label}: {summary}>")

    @property
    def status(self) -> str:
        return self.state.status if self.state is not None else "running"

    # -- the reporter ------------------------------------------------------------------

    def __call__(self, e: ProgressEvent) -> None:
        with self._lock:
            if self.state is None or e.kind == RUN_STARTED:
                self.state = RunState(e.run)
                self.abort_button.description = "Abort"
                self.abort_button.disabled = e.run.abort is None
                self.layout.display = None
            job = self.state.apply(e)
            force = e.kind in (RUN_STARTED, RUN_FINISHED, ERROR, JOB_CREATED, JOB_UPLOADED,
                               JOB_FINISHED) or (job is not None
                                                 and job.state != self._drawn.get(job.chunk))
            self._render(force)
        if e.kind == RUN_STARTED and self._display and not self._displayed:
            from IPython.display import display
            display(self)

    def _render(self, force: bool) -> None:
        now = self._clock()
        wait = self._min_interval - (now - self._last_render)
        if not force and wait > 0:
            # A skipped update is not lost: one catch-up render follows the throttle window,
            # so the last counters of a burst of polls always reach the screen.
            if self._catch_up is None:
                self._catch_up = threading.Timer(wait, self._catch_up_render)
                self._catch_up.daemon = True
                self._catch_up.start()
            return
        self._last_render = now
        self._draw()

    def _catch_up_render(self) -> None:
        with self._lock:
            self._catch_up = None
            self._last_render = self._clock()
            self._draw()

    # -- drawing -------------------------------------------------------------------------

    def _draw(self) -> None:
        state = self.state
        info = state.info
        now = self._now()
        self._drawn = {j.chunk: j.state for j in state.jobs}
        text, colour = _BADGES.get(info.org_kind, _BADGES["production"])
        # An org of unknown kind gets the production badge: the careful reading.
        self.badge.value = (f'<span style="background:{colour};color:white;font-weight:700;'
                            f'padding:1px 6px;border-radius:3px;font-size:0.85em" '
                            f'title="{html.escape(info.org_kind)} org">{text}</span>')
        self.header.value = self._header_html()
        usage = (f' <span style="color:{_MUTED}">({html.escape(str(state.api_usage))})</span>'
                 if state.api_usage is not None else "")
        self.calls.value = f"&middot; {plural(state.api_calls, 'API call')}{usage}"
        status = state.status
        self.layout.border_left = f"4px solid {_BORDER[status]}"
        if state.finished or info.abort is None:
            self.abort_button.layout.display = "none"  # nothing left to stop
        self.overall.value = self._overall_html(now)
        if state.is_query and state.finished:
            self.jobs.value = ""  # a finished query is one line
            self.jobs.layout.display = "none"
        else:
            self.jobs.value = self._jobs_html()

    def _header_html(self) -> str:
        state, info = self.state, self.state.info
        parts = [f"<b>{html.escape(info.org_label)}</b>", html.escape(info.operation),
                 f"<b>{html.escape(info.sobject)}</b>"]
        if not state.is_query:
            parts += [plural(info.rows, "row"), plural(len(state.jobs), "job")]
            if info.run_id:
                parts.append(f'<span style="color:{_MUTED}" title="sfb.resume(run_id, df) '
                             f'picks it up again">run <code>{html.escape(info.run_id)}</code></span>')
        if state.finished:
            parts.append(f'<span style="color:{_MUTED}">done</span>')
        return " &middot; ".join(parts)

    def _overall_html(self, now: float) -> str:
        state = self.state
        total = max(state.total, 1)
        colour = {"success": "#1a7f37", "warning": "#9a6700"}.get(state.status, _RED)
        lines = [f'<div style="display:flex;align-items:center;gap:0.8em;max-width:100%">'
                 f'<div style="flex:0 0 22em;max-width:40%">'
                 f"{_bar(state.succeeded, state.failed, state.left, total)}</div>"
                 f'<span class="sfbulk-overall-text" style="{_CELL}">'
                 f"{html.escape(state.overall_text(now))}</span></div>"]
        for line in state.failures()[:3]:
            lines.append(f'<div class="sfbulk-error" style="color:{_RED};overflow-wrap:anywhere">'
                         f"{html.escape(line)}</div>")
        if state.error:
            lines.append(f'<div class="sfbulk-error" style="color:{_RED};overflow-wrap:anywhere">'
                         f"{html.escape(state.error)}</div>")
        if state.finished and state.message and not state.is_query:
            lines.append(f'<div style="color:{colour};font-weight:600">'
                         f"{html.escape(state.message)}</div>")
        elif state.failed and not state.finished:
            lines.append(f'<div style="color:{_RED}">{state.failed:,} rows failed so far</div>')
        return (f'<div data-percent="{state.fraction() * 100:.1f}" data-status="{state.status}" '
                f'style="line-height:1.6">' + "".join(lines) + "</div>")

    def _jobs_html(self) -> str:
        jobs = self.state.jobs
        shown, more = jobs, ""
        if len(jobs) > _MAX_JOB_ROWS:
            # A run of hundreds of jobs: the rows that need an eye (failed, under way) and
            # one line for the rest, so each render stays small over the comm channel.
            shown = [j for j in jobs if j.bad or (not j.finished and j.state != "Waiting")]
            shown = shown[:_MAX_JOB_ROWS]
            done = sum(1 for j in jobs if j.finished and not j.bad)
            waiting = sum(1 for j in jobs if j.state == "Waiting")
            hidden = len(jobs) - len(shown)
            parts = [f"{done:,} done" if done else "", f"{waiting:,} waiting" if waiting else ""]
            more = (f'<span class="sfbulk-more" style="grid-column:1 / -1;color:{_MUTED}">'
                    f"+ {plural(hidden, 'more job')}: {', '.join(p for p in parts if p)}"
                    f"</span>") if hidden else ""
        rows, last = [], None
        for job in shown:
            # Jobs in a row that share a reason (jobs 5-8 not sent: the run was aborted)
            # say it once, under the first; the overall line names them all.
            reason = (job.state, job.error) if job.error else None
            rows.append(_job_html(job, len(jobs), say_error=reason != last))
            last = reason
        return f'<div class="sfbulk-grid" style="{_GRID}">{"".join(rows)}{more}</div>'

    # -- abort ---------------------------------------------------------------------------

    def _abort_clicked(self, _button: Any = None) -> None:
        state = self.state
        if state is None or self.abort_button.disabled or state.info.abort is None:
            return
        self.abort_button.disabled = True
        self.abort_button.description = "Aborting\u2026"
        state.info.abort()
        self.abort_button.description = "Abort sent"


def _bar(ok: int, failed: int, left: int, total: int) -> str:
    """One bar of three segments: succeeded (green), failed (red), left unprocessed
    (amber); the rest, not processed yet, is the grey track."""
    def width(n: int) -> str:
        return f"{100 * n / total:.2f}" if total else "0"

    return (f'<div class="sfbulk-bar" style="display:flex;height:0.8em;background:{_GREY};'
            f'border-radius:3px;overflow:hidden;width:100%">'
            f'<span class="sfbulk-seg-ok" style="background:{_OK};width:{width(ok)}%"></span>'
            f'<span class="sfbulk-seg-failed" style="background:{_RED};width:{width(failed)}%">'
            f"</span>"
            f'<span class="sfbulk-seg-left" style="background:{_AMBER};width:{width(left)}%">'
            f"</span></div>")


def _job_html(job: JobState, count: int, say_error: bool = True) -> str:
    total = max(job.records, job.processed, 1)
    left = total - job.processed if job.bad else 0  # a job never created: all amber
    current = job.state
    look = ("bad" if job.bad else "done" if current == STEPS[-1]
            else "current" if current in STEPS else "pending")
    steps = "".join(
        f'<span title="{s}" style="display:inline-block;width:0.45em;height:0.45em;'
        f'margin-right:1px;border-radius:50%;background:'
        f'{_OK if i <= job.reached else "#d0d7de"}"></span>' for i, s in enumerate(STEPS))
    state = (f'<span class="sfbulk-state" style="{_CELL}"><span data-state="{html.escape(current)}">'
             f'<span class="sfbulk-current" style="padding:0 4px;border-radius:3px;{_CHIP[look]}">'
             f"{html.escape(current)}</span> {steps}</span></span>")
    counts = html.escape(job.counts_text())
    if job.failed:
        counts = counts.replace(f"{job.failed:,} failed",
                                f'<span style="color:{_RED};font-weight:600">{job.failed:,} failed</span>')
    job_id = f"<code>{html.escape(job.job_id)}</code>" if job.job_id else ""
    cells = [f'<span title="job {job.chunk + 1} of {count}" style="{_CELL}">#{job.chunk + 1}</span>',
             state, _bar(job.succeeded, job.failed, left, total),
             f'<span class="sfbulk-counts" style="{_CELL}">{counts}</span>',
             f'<span class="sfbulk-timing" style="{_CELL}">{html.escape(job.timing_text())}</span>',
             f'<span style="{_CELL}">{job_id}</span>']
    row = f'<div class="sfbulk-job" style="display:contents">{"".join(cells)}'
    if say_error and job.error and (job.bad or job.state == "InProgress"):
        row += (f'<span class="sfbulk-error" style="grid-column:2 / -1;color:{_RED};'
                f'overflow-wrap:anywhere;white-space:normal">{html.escape(job.error)}</span>')
    return row + "</div>"


class WidgetProgress:
    """The progress="auto" reporter in a kernel: a RunPanel for each run it sees.

    `wants_ui_events`: a run waited on in the cell handles the panel's messages meanwhile
    (api.Run._foreground), so its Abort button works during a blocking call.

    It is made by the call that starts a run, in the caller's cell, and displays its first
    panel (hidden until the run starts) right then, so the panel is in that cell even when the
    run starts on a thread of its own (wait=False)."""

    def __init__(self, *, display: bool = True, **panel_options: Any):
        self._options = dict(panel_options, display=display)
        self._spare: RunPanel | None = RunPanel(**self._options)
        self.wants_ui_events = self._spare.wants_ui_events
        self._panels: list[tuple[Any, RunPanel]] = []  # (run id, panel), newest last
        self._lock = threading.Lock()
        if display:
            from IPython.display import display as show
            show(self._spare)

    def __call__(self, e: ProgressEvent) -> None:
        with self._lock:
            if e.kind == RUN_STARTED or not self._panels:
                panel, self._spare = self._spare or RunPanel(**self._options), None
                self._panels.append((e.run.run_id, panel))
            else:
                panel = next((p for key, p in reversed(self._panels) if key == e.run.run_id),
                             self._panels[-1][1])
        panel(e)

    @property
    def panels(self) -> list[RunPanel]:
        return [panel for _, panel in self._panels]


_subshell_id: str | None = None


def route_clicks_off_the_main_thread(button: widgets.Button) -> bool:
    """Have ``button``'s clicks handled while the cell that made it still runs.

    ipykernel 7 handles a cell's code and the widgets' messages on one thread, so a click
    on Abort would wait for the load it means to stop. Its messages are sent instead to a
    subshell of the kernel (ipykernel 7's threads for concurrent messages), made once per
    kernel. This leans on two internals of ipykernel 7 (making a subshell from the shell
    channel's thread, and a comm's reply route); where they are missing (ipykernel 6, no
    kernel) it returns False, and the run handles the panel's messages itself
    (api.Run._foreground, with jupyter-ui-poll)."""
    global _subshell_id
    try:
        from IPython import get_ipython

        kernel = get_ipython().kernel
        channel = kernel.shell_channel_thread
        if not getattr(kernel, "_supports_kernel_subshells", False) or button.comm is None:
            return False
        if _subshell_id is None or _subshell_id not in channel.manager.list_subshell():
            made, done = [], threading.Event()

            def make() -> None:  # subshells are made on the shell channel's own thread
                made.append(channel.manager._create_subshell())
                done.set()

            channel.io_loop.add_callback(make)
            if not done.wait(5):
                return False
            _subshell_id = made[0]
        subshell = _subshell_id
        button.comm._reply_subshell_for = lambda data, default: subshell
        return True
    except Exception:  # noqa: BLE001 - any other kernel: the fallback
        return False
