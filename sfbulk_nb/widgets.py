"""The live panel of a bulk run in Jupyter: one ipywidgets box per run, updated in place.

    res = sfb.upsert_df(df, "Account", "customExtIdField__c")   # progress="auto" in a kernel
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=RunPanel())

`progress.reporter_for("auto")` imports this module only in a live kernel with ipywidgets,
and returns a `WidgetProgress`, which gives every run it sees start a `RunPanel` of its own.

Hooks for browser tests: the outer box has the CSS class `sfbulk-run`, each job row
`sfbulk-job`, and each row's state is an HTML widget of class `sfbulk-state` whose
`[data-state]` attribute (and `.sfbulk-current` chip) is the job's current state.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Callable

import ipywidgets as widgets

from .progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                       RUN_FINISHED, RUN_STARTED, ProgressEvent)

STEPS = ("Open", "UploadComplete", "InProgress", "JobComplete")
BAD_STATES = ("Failed", "Aborted")

_BADGES = {"production": ("PRODUCTION", "#cf222e"), "sandbox": ("SANDBOX", "#bf8700"),
           "local": ("LOCAL", "#57606a")}
_CHIP = {"done": "background:#dafbe1;color:#1a7f37",
         "current": "background:#ddf4ff;color:#0969da;font-weight:600",
         "pending": "color:#8c959f",
         "bad": "background:#ffebe9;color:#cf222e;font-weight:600"}
_BORDER = {"": "#0969da", "success": "#1a7f37", "warning": "#bf8700", "danger": "#cf222e"}
_RED = "#cf222e"


class JobRow(widgets.HBox):
    """One job of a run: its state steps, a bar of records processed, timing and id."""

    def __init__(self, chunk: int, job_count: int):
        self.chunk = chunk
        self.job_id: str | None = None
        self.state = "Waiting"
        self.reached = -1             # the furthest step of STEPS seen
        self.records = 0
        self.processed = 0
        self.failed = 0
        self.error: str | None = None
        self.created_at: float | None = None
        self.last_at: float | None = None
        self.finished_at: float | None = None
        self.rate_base: tuple[float, int] | None = None  # (at, processed) first InProgress
        self.title = widgets.HTML(f"job {chunk + 1}/{job_count}",
                                  layout=widgets.Layout(width="6.5em"))
        self.steps = widgets.HTML()
        self.steps.add_class("sfbulk-state")
        self.bar = widgets.IntProgress(value=0, min=0, max=1,
                                       layout=widgets.Layout(width="16em"))
        self.counts = widgets.HTML(layout=widgets.Layout(min_width="19em"))
        self.counts.add_class("sfbulk-counts")
        self.timing = widgets.HTML(layout=widgets.Layout(min_width="13em"))
        self.timing.add_class("sfbulk-timing")
        self.id_label = widgets.HTML()
        super().__init__([self.title, self.steps, self.bar, self.counts, self.timing,
                          self.id_label], layout=widgets.Layout(align_items="center"))
        self.add_class("sfbulk-job")

    # -- state from events -----------------------------------------------------------

    def take(self, e: ProgressEvent) -> bool:
        """Apply an event of this job; True when its state changed."""
        before = self.state
        self.last_at = e.at
        if e.job_id:
            self.job_id = e.job_id
        if e.kind == JOB_CREATED:
            self.created_at = e.at
        if e.kind == ERROR:
            self.error = e.message or "error"
            if self.job_id is None:
                self.state = "Not sent"
            return self.state != before
        if e.state:
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
        return self.state in BAD_STATES or self.state == "Not sent" or self.error is not None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None or self.bad

    @property
    def bar_style(self) -> str:
        if self.bad:
            return "danger"
        if self.state == "JobComplete":
            return "warning" if self.failed else "success"
        return ""

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

    # -- rendering -------------------------------------------------------------------

    def render(self) -> None:
        self.steps.value = self._steps_html()
        total = max(self.records, self.processed, 1)
        with self.bar.hold_sync():  # one comm message for the three traits
            self.bar.max = total
            self.bar.value = min(self.processed, total)
            self.bar.bar_style = self.bar_style
        self.counts.value = self._counts_html()
        self.timing.value = self._timing_text()
        self.id_label.value = (f'<code title="job id">{html.escape(self.job_id)}</code>'
                               if self.job_id else "")

    def _steps_html(self) -> str:
        # (name, look, is the current state)
        if self.state == "Not sent":
            chips = [("Not sent", "bad", True)]
        else:
            chips = []
            for i, step in enumerate(STEPS):
                if step == STEPS[-1] and self.state in BAD_STATES:
                    chips.append((self.state, "bad", True))
                elif step == self.state:
                    chips.append((step, "done" if step == STEPS[-1] else "current", True))
                else:
                    chips.append((step, "done" if i <= self.reached else "pending", False))
        parts = [f'<span class="sfbulk-step{" sfbulk-current" if current else ""}" '
                 f'style="padding:0 4px;border-radius:3px;{_CHIP[look]}">'
                 f"{html.escape(name)}</span>" for name, look, current in chips]
        return (f'<span data-state="{html.escape(self.state)}" '
                f'style="font-size:0.85em;white-space:nowrap">'
                + " &rsaquo; ".join(parts) + "</span>")

    def _counts_html(self) -> str:
        if self.error and (self.processed == 0 or self.state in BAD_STATES):
            return f'<span style="color:{_RED}" title="{html.escape(self.error)}">' \
                   f"{html.escape(_shorten(self.error))}</span>"
        if not self.records and not self.processed:
            return ""
        text = f"{self.processed:,} / {self.records or self.processed:,} processed"
        if self.failed:
            text += f', <span style="color:{_RED};font-weight:600">{self.failed:,} failed</span>'
        return text

    def _timing_text(self) -> str:
        if self.created_at is None or self.last_at is None:
            return ""
        elapsed = (self.finished_at or self.last_at) - self.created_at
        if self.finished:
            return f"took {_duration(elapsed)}"
        left = self.seconds_left()
        if left is not None:
            return f"{_duration(elapsed)} elapsed, ~{_duration(left)} left"
        if self.state in ("Open", "UploadComplete"):
            return f"{_duration(elapsed)} elapsed, queued"
        return f"{_duration(elapsed)} elapsed"


class RunPanel(widgets.VBox):
    """A bulk run's live panel, and the progress reporter that drives it.

    Pass it as `progress=` or let progress="auto" make one per run. It stays hidden until
    the run's first event (RUN_STARTED) builds it, and with `display=True` shows itself then
    unless it was displayed already. Events may come from any thread; each job re-renders at
    most once per `min_interval` seconds, but a state change and the end of a job or of the
    run always render.

    A run with wait=False starts on a thread of its own, whose output ipykernel may put under
    a later cell: display such a panel yourself first (`display(panel)`), as "auto" does.
    Abort reaches the kernel only while it is free, i.e. for such runs: a cell still waiting
    on its run holds the kernel, and the button's click waits behind it.
    """

    wants_ui_events = True  # see WidgetProgress; False where clicks need no help

    def __init__(self, *, display: bool = True, min_interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic):
        self.run: Any = None
        self.job_rows: list[JobRow] = []
        self.message_text = ""
        self.run_error: str | None = None
        self.finished = False
        self._display = display
        self._displayed = False
        self._min_interval = min_interval
        self._clock = clock
        self._last_render: dict[Any, float] = {}
        self._catch_up: dict[Any, threading.Timer] = {}
        self._lock = threading.RLock()
        self._calls_before = 0
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
        self.overall = widgets.IntProgress(value=0, min=0, max=1,
                                           layout=widgets.Layout(width="24em"))
        self.overall.add_class("sfbulk-overall")
        self.message = widgets.HTML()
        self.jobs_box = widgets.VBox()
        top = widgets.HBox([self.badge, self.header, self.calls, self.abort_button],
                           layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([top, widgets.HBox([self.overall, self.message]), self.jobs_box],
                         layout=widgets.Layout(padding="4px 8px", margin="4px 0",
                                               border_left=f"4px solid {_BORDER['']}",
                                               display="none"))
        self.add_class("sfbulk-run")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self._displayed = True  # by us, by the user or by WidgetProgress: once is enough
        return super()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        # The text/plain of the display: what a notebook shows where widgets cannot render.
        run = self.run
        if run is None:
            return "<RunPanel: waiting for a run>"
        label = getattr(getattr(run, "org", None), "label", "")
        summary = self.message_text if self.finished else self.status
        return (f"<RunPanel {getattr(run, 'operation', '')} {getattr(run, 'sobject', '')} "
                f"on {label}: {summary}>")

    # -- the reporter ------------------------------------------------------------------

    def __call__(self, e: ProgressEvent) -> None:
        with self._lock:
            if self.run is None or (e.kind == RUN_STARTED and e.run is not self.run):
                self._build(e.run)
            if e.kind == RUN_FINISHED:
                self.finished = True
                self.message_text = e.message or ""
            elif e.kind == ERROR and e.chunk is None:
                self.run_error = e.message or "error"
            elif e.chunk is not None and e.chunk < len(self.job_rows):
                row = self.job_rows[e.chunk]
                changed = row.take(e)
                self._render_job(row, force=changed or e.kind in (JOB_FINISHED, ERROR,
                                                                  JOB_CREATED, JOB_UPLOADED))
            self._render_run(force=e.kind in (RUN_STARTED, RUN_FINISHED, ERROR, JOB_FINISHED))
        if e.kind == RUN_STARTED and self._display and not self._displayed:
            from IPython.display import display
            display(self)

    def _build(self, run: Any) -> None:
        self.run = run
        self.finished = False
        self.run_error = None
        self.message_text = ""
        self._last_render.clear()
        count = int(getattr(run, "job_count", 1))
        self.job_rows = [JobRow(i, count) for i in range(count)]
        self.jobs_box.children = self.job_rows
        org = getattr(run, "org", None)
        self._calls_before = getattr(org, "api_calls", 0)
        kind = str(getattr(org, "kind", "production"))
        # An org of unknown kind gets the production badge: the careful reading.
        text, colour = _BADGES.get(kind, _BADGES["production"])
        self.badge.value = (f'<span style="background:{colour};color:white;font-weight:700;'
                            f'padding:1px 6px;border-radius:3px;font-size:0.85em" '
                            f'title="{html.escape(kind)} org">{text}</span>')
        can_abort = callable(getattr(run, "abort", None))
        self.abort_button.layout.display = None if can_abort else "none"
        self.abort_button.disabled = not can_abort
        self.abort_button.description = "Abort"
        self.layout.display = None

    # -- rendering -----------------------------------------------------------------------

    def _due(self, key: Any, force: bool) -> bool:
        now = self._clock()
        wait = self._min_interval - (now - self._last_render.get(key, float("-inf")))
        if not force and wait > 0:
            # A skipped update is not lost: one catch-up render follows the throttle window,
            # so the last counters of a burst of polls always reach the screen.
            if key not in self._catch_up:
                timer = threading.Timer(wait, self._catch_up_render, args=(key,))
                timer.daemon = True
                self._catch_up[key] = timer
                timer.start()
            return False
        self._last_render[key] = now
        return True

    def _catch_up_render(self, key: Any) -> None:
        with self._lock:
            self._catch_up.pop(key, None)
            if key == "run":
                self._render_run(force=True)
            elif isinstance(key, int) and key < len(self.job_rows):
                self._render_job(self.job_rows[key], force=True)

    def _render_job(self, row: JobRow, force: bool) -> None:
        if self._due(row.chunk, force):
            row.render()

    def _render_run(self, force: bool) -> None:
        if not self._due("run", force):
            return
        if self.finished:  # the end of a run always shows every job's last state
            for row in self.job_rows:
                row.render()
        run = self.run
        org = getattr(run, "org", None)
        label = html.escape(str(getattr(org, "label", "") or ""))
        rows = int(getattr(run, "rows", 0) or 0)
        jobs = len(self.job_rows)
        parts = [f"<b>{label}</b>", html.escape(str(getattr(run, "operation", ""))),
                 f"<b>{html.escape(str(getattr(run, 'sobject', '')))}</b>"]
        if rows or self.finished:  # a query learns its row count only at the end
            parts.append(f"{rows:,} rows")
        parts.append(f"{jobs} job{'s' if jobs != 1 else ''}")
        run_id = getattr(run, "run_id", None)
        if run_id and getattr(run, "operation", None) != "query":
            parts.append(f'<span style="color:#57606a" title="sfb.resume(run_id, df) picks it '
                         f'up again">run <code>{html.escape(run_id)}</code></span>')
        self.header.value = " &middot; ".join(parts)
        self.calls.value = self._calls_text()
        processed = sum(r.processed for r in self.job_rows)
        total = max(rows, sum(r.records for r in self.job_rows), processed, 1)
        status = self.status
        with self.overall.hold_sync():
            self.overall.max = total
            self.overall.value = min(processed, total)
            self.overall.bar_style = "" if status == "running" else status
        self.layout.border_left = f"4px solid {_BORDER['' if status == 'running' else status]}"
        self.message.value = self._message_html(status)
        if self.finished:
            self.abort_button.disabled = True

    def _calls_text(self) -> str:
        run = self.run
        org = getattr(run, "org", None)
        calls = getattr(run, "api_calls", None)
        if calls is None and org is not None:
            calls = getattr(org, "api_calls", 0) - self._calls_before
        text = f"&middot; {calls or 0:,} API calls"
        usage = getattr(org, "api_usage", None)
        if usage is not None:
            text += f' <span style="color:#57606a">({html.escape(str(usage))})</span>'
        return text

    def _message_html(self, status: str) -> str:
        failed = sum(r.failed for r in self.job_rows)
        parts = []
        if self.run_error:
            parts.append(f'<span style="color:{_RED}">{html.escape(self.run_error)}</span>')
        bad = [r for r in self.job_rows if r.bad]
        for r in bad[:3]:
            why = r.error or f"job {r.state}"
            parts.append(f'<span style="color:{_RED}">job {r.chunk + 1}: '
                         f"{html.escape(_shorten(why))}</span>")
        if self.finished:
            colour = {"success": "#1a7f37", "warning": "#9a6700"}.get(status, _RED)
            parts.append(f'<span style="color:{colour};font-weight:600">'
                         f"{html.escape(self.message_text or 'done')}</span>")
        elif failed:
            parts.append(f'<span style="color:{_RED}">{failed:,} rows failed so far</span>')
        return " &middot; ".join(parts)

    @property
    def status(self) -> str:
        """danger: a job failed or an error happened; warning: rows failed; success;
        or running until the run finishes. Also the overall bar's bar_style."""
        if self.run_error or any(r.bad for r in self.job_rows):
            return "danger"
        if not self.finished:
            return "running"
        return "warning" if any(r.failed for r in self.job_rows) else "success"

    # -- abort ---------------------------------------------------------------------------

    def _abort_clicked(self, _button: Any = None) -> None:
        run = self.run
        if run is None or self.abort_button.disabled:
            return
        self.abort_button.disabled = True
        self.abort_button.description = "Aborting..."
        run.abort()
        self.abort_button.description = "Abort sent"


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
        self._panels: dict[int, tuple[Any, RunPanel]] = {}
        self._lock = threading.Lock()
        if display:
            from IPython.display import display as show
            show(self._spare)

    def __call__(self, e: ProgressEvent) -> None:
        with self._lock:
            entry = self._panels.get(id(e.run))
            if entry is None or entry[0] is not e.run:
                panel, self._spare = self._spare or RunPanel(**self._options), None
                entry = self._panels[id(e.run)] = (e.run, panel)
        entry[1](e)

    @property
    def panels(self) -> list[RunPanel]:
        return [panel for _, panel in self._panels.values()]


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


def _duration(seconds: float) -> str:
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


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
