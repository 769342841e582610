"""The run panel, through its widgets' traits (no browser): events in, HTML out.

The panel draws a `progress.RunState` (tested on its own in test_progress.py) as HTML; these
tests read that HTML back through the class hooks the browser test also uses."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from html.parser import HTMLParser

import IPython.display
import ipywidgets
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import progress
from sfbulk_nb.progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                                RUN_FINISHED, RUN_STARTED, ProgressEvent, RunInfo)
from sfbulk_nb.widgets import RunPanel, WidgetProgress

TOKEN = "00Dxx0000000001!AQ4AQFakeSecretTokenValue"


class Aborts:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1


def info(*, kind="load", operation="upsert", rows=1000, job_count=1, org_kind="local",
         org_label="local org", abort=None, run_id=None) -> RunInfo:
    return RunInfo(kind=kind, operation=operation, sobject="Account", org_label=org_label,
                   org_kind=org_kind, rows=rows, job_count=job_count, run_id=run_id,
                   abort=abort)


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def feed(panel, run, *events):
    for kind, fields in events:
        panel(ProgressEvent(kind, run, **fields))


def one_job(*, final_state="JobComplete", failed=0, records=1000):
    """A job's life: created at t=100, queued, processing at 100 records/s, finished."""
    return [
        (RUN_STARTED, dict(at=99.0)),
        (JOB_CREATED, dict(chunk=0, job_id="750A", state="Open", records=records, at=100.0)),
        (JOB_UPLOADED, dict(chunk=0, job_id="750A", records=records, at=100.5)),
        (JOB_UPDATED, dict(chunk=0, job_id="750A", state="UploadComplete", records=records,
                           at=101.0)),
        (JOB_UPDATED, dict(chunk=0, job_id="750A", state="InProgress", records=records,
                           processed=0, at=102.0)),
        (JOB_UPDATED, dict(chunk=0, job_id="750A", state="InProgress", records=records,
                           processed=400, failed=min(failed, 400), at=106.0)),
        (JOB_UPDATED, dict(chunk=0, job_id="750A", state=final_state, records=records,
                           processed=records, failed=failed, at=110.0)),
        (JOB_FINISHED, dict(chunk=0, job_id="750A", state=final_state, records=records,
                            processed=records, failed=failed, at=110.2)),
    ]


def panel_for(now=106.0, **options):
    """A panel that renders every event, its wall clock stopped at `now`."""
    return RunPanel(display=False, min_interval=0, now=Clock(now), **options)


class _Reader(HTMLParser):
    """The panel's HTML back as data: every element with a class, its attributes, its
    text and its inline style."""

    def __init__(self):
        super().__init__()
        self.stack: list[dict] = []
        self.found: list[dict] = []

    def handle_starttag(self, tag, attrs):
        node = dict(attrs, tag=tag, text="", depth=len(self.stack))
        self.stack.append(node)
        self.found.append(node)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for node in self.stack:
            node["text"] += data


def nodes(markup: str, cls: str) -> list[dict]:
    reader = _Reader()
    reader.feed(markup)
    return [n for n in reader.found if cls in (n.get("class") or "").split()]


def widths(bar: str) -> tuple[float, float, float]:
    """The widths in % of a bar's three segments: succeeded, failed, left."""
    out = []
    for seg in ("sfbulk-seg-ok", "sfbulk-seg-failed", "sfbulk-seg-left"):
        style = nodes(bar, seg)[0]["style"]
        out.append(float(re.search(r"width:([\d.]+)%", style).group(1)))
    return tuple(out)


def job_rows(panel) -> list[dict]:
    """Each job row of the grid: number, state, bar widths, counts, timing, id, error."""
    rows = []
    for chunk in re.split(r'(?=<div class="sfbulk-job")', panel.jobs.value)[1:]:
        cells = _Reader()
        cells.feed(chunk)
        state = nodes(chunk, "sfbulk-state")[0]
        errors = nodes(chunk, "sfbulk-error")
        rows.append(dict(
            number=cells.found[1]["text"],
            state=re.search(r'data-state="([^"]*)"', chunk).group(1),
            state_text=state["text"].strip(),
            bar=widths(chunk),
            counts=nodes(chunk, "sfbulk-counts")[0]["text"],
            timing=nodes(chunk, "sfbulk-timing")[0]["text"],
            job_id=re.search(r"<code>([^<]*)</code>", chunk).group(1)
            if "<code>" in chunk else None,
            error=errors[0]["text"] if errors else None,
            cells=sum(1 for n in cells.found if n["depth"] == 1),
            html=chunk))
    return rows


def overall_text(panel) -> str:
    return nodes(panel.overall.value, "sfbulk-overall-text")[0]["text"]


def errors(panel) -> list[str]:
    return [n["text"] for n in nodes(panel.overall.value, "sfbulk-error")]


def all_states(widget) -> list[dict]:
    """The serialised state of the widget and every widget below it (what goes over the
    comm channel to the browser)."""
    states = [widget.get_state()]
    for value in list(widget.keys):
        child = getattr(widget, value)
        if isinstance(child, ipywidgets.Widget) and child is not widget:
            states.append(child.get_state())
    for child in getattr(widget, "children", ()):
        states.extend(all_states(child))
    return states


def test_a_successful_job_walks_the_steps_and_ends_green():
    run, panel = info(abort=Aborts()), panel_for()
    events = one_job()
    feed(panel, run, *events[:2])
    [row] = job_rows(panel)
    assert row["state"] == "Open" and row["number"] == "#1"
    assert panel.status == "running" and "#0969da" in panel.layout.border_left
    feed(panel, run, *events[2:6])
    [row] = job_rows(panel)
    assert row["state"] == "InProgress" and row["state_text"] == "InProgress"
    assert row["bar"] == (40.0, 0.0, 0.0)
    assert row["counts"] == "400 / 1,000 processed"
    # 400 records in the 4 s since processing started: 600 left at 100/s.
    assert row["timing"] == "6.0 s elapsed, ~6.0 s left"
    assert row["job_id"] == "750A"
    assert overall_text(panel) == ("400 / 1,000 rows \u00b7 40% \u00b7 7.0 s elapsed \u00b7 "
                                   "~6.0 s left \u00b7 100 rows/s")
    assert 'data-percent="40.0"' in panel.overall.value
    assert panel.abort_button.layout.display != "none"
    feed(panel, run, *events[6:], (RUN_FINISHED, dict(message="1,000 created", at=110.3)))
    [row] = job_rows(panel)
    assert row["state"] == "JobComplete"
    assert row["html"].count("#2da44e") >= 4 + 1  # every step done, and the bar
    assert row["bar"] == (100.0, 0.0, 0.0)
    assert row["timing"] == "took 10 s"
    assert panel.status == "success" and "#1a7f37" in panel.layout.border_left
    assert overall_text(panel).startswith("1,000 / 1,000 rows \u00b7 100% \u00b7 took 11 s")
    assert "1,000 created" in panel.overall.value
    assert "done" in panel.header.value
    assert panel.abort_button.layout.display == "none"  # nothing left to stop
    assert repr(panel) == "<RunPanel upsert Account on local org: 1,000 created>"


def test_failed_rows_show_red_counts_and_an_amber_run():
    run, panel = info(), panel_for()
    feed(panel, run, *one_job(failed=12),
         (RUN_FINISHED, dict(message="988 created, 12 failed")))
    [row] = job_rows(panel)
    assert row["bar"] == (98.8, 1.2, 0.0)
    assert "12 failed" in row["counts"] and "#cf222e" in row["html"]
    assert panel.status == "warning" and "#bf8700" in panel.layout.border_left
    assert widths(panel.overall.value) == (98.8, 1.2, 0.0)


def test_a_failed_job_is_red_with_its_reason_and_its_unprocessed_rows():
    run, panel = info(), panel_for()
    feed(panel, run, *one_job()[:5])
    feed(panel, run, (JOB_UPDATED, dict(chunk=0, job_id="750A", state="Failed", records=1000,
                                        processed=0, at=103.0,
                                        message="InvalidBatch : Field name not found : Region")))
    [row] = job_rows(panel)
    assert row["state"] == "Failed" and "sfbulk-current" in row["html"]
    assert ">JobComplete<" not in row["html"]
    assert row["bar"] == (0.0, 0.0, 100.0)  # every row left unprocessed: amber
    assert row["error"] == "InvalidBatch : Field name not found : Region"
    assert panel.status == "danger"  # red at once, before the run ends
    feed(panel, run, (JOB_FINISHED, dict(chunk=0, job_id="750A", state="Failed", records=1000,
                                         at=103.5)),
         (RUN_FINISHED, dict(message="1,000 unprocessed")))
    assert errors(panel) == ["job 1 failed: InvalidBatch : Field name not found : Region"]
    assert "#cf222e" in panel.layout.border_left


def test_a_job_that_could_not_be_sent_and_a_run_error_are_red():
    run, panel = info(job_count=2, rows=2000), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (ERROR, dict(chunk=1, message="No answer from https://x to POST /jobs/ingest")))
    rows = job_rows(panel)
    assert [r["state"] for r in rows] == ["Waiting", "Not sent"]
    assert rows[1]["error"] == "No answer from https://x to POST /jobs/ingest"
    assert rows[1]["bar"] == (0.0, 0.0, 100.0)  # none of its rows will be processed
    feed(panel, run, (RUN_FINISHED, dict(message="2,000 not sent")))
    assert widths(panel.overall.value) == (0.0, 0.0, 100.0)
    assert panel.status == "danger"
    assert errors(panel) == ["job 2 was not sent: No answer from https://x to POST /jobs/ingest"]
    other = panel_for()
    feed(other, run, (RUN_STARTED, {}), (ERROR, dict(message="the run broke")))
    assert other.status == "danger" and errors(other) == ["the run broke"]


@pytest.mark.parametrize("kind,text,colour", [
    ("production", "PRODUCTION", "#cf222e"),
    ("sandbox", "SANDBOX", "#bf8700"),
    ("local", "LOCAL", "#57606a"),
    ("unheard-of", "PRODUCTION", "#cf222e"),  # unknown: the careful reading
])
def test_the_badge_names_the_kind_of_org(kind, text, colour):
    run, panel = info(org_kind=kind, org_label="acme.my.salesforce.com"), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    assert text in panel.badge.value and colour in panel.badge.value
    assert "acme.my.salesforce.com" in panel.header.value
    assert "upsert" in panel.header.value and "Account" in panel.header.value
    assert "1,000 rows" in panel.header.value and "1 job" in panel.header.value


def test_the_run_id_is_in_the_header_for_resume():
    run, panel = info(run_id="20261201-0930-ab12"), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    assert "20261201-0930-ab12" in panel.header.value and "sfb.resume" in panel.header.value


def test_api_calls_and_daily_usage_are_in_the_header():
    run, panel = info(), panel_for()
    feed(panel, run, (RUN_STARTED, dict(api_calls=0)))
    assert "0 API calls" in panel.calls.value
    feed(panel, run, (JOB_CREATED, dict(chunk=0, job_id="750A", state="Open", records=1000,
                                        api_calls=7, api_usage=sfb.ApiUsage(1234, 15000))))
    assert "7 API calls" in panel.calls.value
    assert "1,234 of 15,000 API calls used today" in panel.calls.value


def test_abort_calls_run_abort_once_and_disables_itself():
    aborts = Aborts()
    run, panel = info(abort=aborts), panel_for()
    feed(panel, run, *one_job()[:5])
    assert not panel.abort_button.disabled
    panel.abort_button.click()
    panel.abort_button.click()
    assert aborts.calls == 1
    assert panel.abort_button.disabled and panel.abort_button.description == "Abort sent"


def test_a_query_has_no_abort_and_ends_as_one_line():
    run, panel = info(kind="query", operation="query", rows=0), panel_for()
    feed(panel, run, (RUN_STARTED, dict(at=100.0)),
         (JOB_CREATED, dict(chunk=0, job_id="750Q", state="UploadComplete", at=100.1)))
    assert panel.abort_button.layout.display == "none"
    assert "rows" not in panel.header.value  # unknown until the query ends
    assert overall_text(panel) == "query: 0 rows so far"
    done = info(kind="query", operation="query", rows=3)
    feed(panel, done, (JOB_UPDATED, dict(chunk=0, job_id="750Q", state="JobComplete",
                                         processed=3, records=3, at=101.0)),
         (RUN_FINISHED, dict(message="3 rows", at=101.5)))
    assert overall_text(panel) == "query: 3 rows in 1.5 s"
    assert panel.status == "success"
    assert panel.jobs.layout.display == "none" and panel.jobs.value == ""


def test_updates_are_throttled_but_the_final_state_always_renders():
    clock = Clock()
    run = info()
    panel = RunPanel(display=False, min_interval=0.1, clock=clock, now=Clock(104.0))
    feed(panel, run, *one_job()[:5])
    for done in range(10, 500, 10):  # a burst of polls within one interval
        panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                            records=1000, processed=done, at=103.0))
    assert job_rows(panel)[0]["counts"] == "0 / 1,000 processed"  # the state change only
    clock.now += 0.15
    panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                        records=1000, processed=600, at=104.0))
    assert job_rows(panel)[0]["counts"] == "600 / 1,000 processed"
    panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                        records=1000, processed=999, at=104.05))
    assert job_rows(panel)[0]["counts"] == "600 / 1,000 processed"
    panel(ProgressEvent(JOB_FINISHED, run, chunk=0, job_id="750A", state="JobComplete",
                        records=1000, processed=1000, at=104.1))
    panel(ProgressEvent(RUN_FINISHED, run, message="1,000 created"))
    assert job_rows(panel)[0]["bar"] == (100.0, 0.0, 0.0)
    assert panel.status == "success" and 'data-percent="100.0"' in panel.overall.value


def test_throttled_updates_catch_up_after_the_window():
    # Polls of several jobs arrive in a burst; the bars must end on the last counters even
    # when no later event comes to render them.
    panel = RunPanel(display=False, min_interval=0.05)
    run = info(job_count=2, rows=2000)
    feed(panel, run, (RUN_STARTED, {}),
         (JOB_UPDATED, dict(chunk=0, job_id="750A", state="InProgress", records=1000,
                            processed=100)),
         (JOB_UPDATED, dict(chunk=1, job_id="750B", state="InProgress", records=1000,
                            processed=300)),
         (JOB_UPDATED, dict(chunk=0, job_id="750A", state="InProgress", records=1000,
                            processed=600)))
    done = threading.Event()
    threading.Timer(0.3, done.set).start()
    done.wait(2)
    assert overall_text(panel).startswith("900 / 2,000 rows \u00b7 45%")
    assert job_rows(panel)[0]["counts"] == "600 / 1,000 processed"


def test_every_job_row_has_the_same_columns_for_the_browser():
    run, panel = info(job_count=3, rows=3000), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (JOB_CREATED, dict(chunk=0, job_id="750A", state="Open", records=1000)))
    assert "sfbulk-run" in panel._dom_classes
    assert "sfbulk-overall" in panel.overall._dom_classes
    rows = job_rows(panel)
    assert [r["number"] for r in rows] == ["#1", "#2", "#3"]
    assert [r["state"] for r in rows] == ["Open", "Waiting", "Waiting"]
    # Six cells a row in a grid of six fixed columns: the rows line up.
    assert "grid-template-columns" in panel.jobs.value
    assert [r["cells"] for r in rows] == [6, 6, 6]


def test_a_run_of_many_jobs_lists_the_live_ones_and_counts_the_rest():
    run, panel = info(job_count=40, rows=40_000), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    for chunk in range(30):
        feed(panel, run, (JOB_FINISHED, dict(chunk=chunk, job_id=f"750{chunk:03d}",
                                             state="JobComplete", records=1000,
                                             processed=1000)))
    feed(panel, run, (JOB_UPDATED, dict(chunk=30, job_id="750030", state="InProgress",
                                        records=1000, processed=10)),
         (JOB_FINISHED, dict(chunk=31, job_id="750031", state="Failed", records=1000,
                             message="InvalidBatch : bad")))
    rows = job_rows(panel)
    assert [r["number"] for r in rows] == ["#31", "#32"]
    assert nodes(panel.jobs.value, "sfbulk-more")[0]["text"] == "+ 38 more jobs: 30 done, 8 waiting"
    assert len(panel.jobs.value) < 10_000  # small whatever the run's size
    assert overall_text(panel).startswith("30,010 / 40,000 rows")


def test_follow_up_jobs_join_the_grid_without_counting_rows_twice():
    run, panel = info(job_count=1, rows=1000), panel_for()
    feed(panel, run, *one_job(failed=3)[:-1])
    follow = info(job_count=1, rows=1000)
    feed(panel, follow, (JOB_CREATED, dict(chunk=1, job_id="750F", state="Open", records=3)))
    rows = job_rows(panel)
    assert [r["number"] for r in rows] == ["#1", "#2"]
    assert overall_text(panel).startswith("1,000 / 1,000 rows")


def test_jobs_in_a_row_with_one_reason_say_it_once():
    run, panel = info(job_count=4, rows=4000), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (JOB_FINISHED, dict(chunk=0, job_id="750A", state="JobComplete", records=1000,
                             processed=1000)),
         *[(ERROR, dict(chunk=c, message="the run was aborted or interrupted first"))
           for c in (1, 2, 3)])
    assert [r["error"] for r in job_rows(panel)] == [
        None, "the run was aborted or interrupted first", None, None]
    assert errors(panel) == ["jobs 2\u20134 were not sent: the run was aborted or interrupted "
                             "first"]
    assert [r["bar"] for r in job_rows(panel)][1:] == [(0.0, 0.0, 100.0)] * 3


def test_text_is_escaped():
    run, panel = info(), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (JOB_FINISHED, dict(chunk=0, job_id="750A", state="Failed", records=1,
                             message="<script>alert(1)</script>")))
    assert "<script>" not in panel.jobs.value + panel.overall.value
    assert "&lt;script&gt;" in panel.jobs.value


def test_no_token_in_any_widget():
    run = info(org_kind="production", org_label="acme.my.salesforce.com")
    panel = panel_for()
    feed(panel, run, *one_job(failed=3), (RUN_FINISHED, dict(message="done")))
    states = all_states(panel)
    assert len(states) > 5
    assert TOKEN not in repr(states) and "AQ4AQ" not in repr(states)


@pytest.fixture
def client(org):
    return sfb.connect(org)


def test_a_real_upsert_drives_the_panel(client, org):
    df = pd.DataFrame({"customExtIdField__c": [f"W-{i}" for i in range(250)],
                       "Name": [f"Acct {i}" for i in range(250)],
                       "Industry": ["Banking"] * 248 + ["Nope", "Nope"]})
    panel = panel_for()
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", max_records=100,
                        progress=panel, on_invalid="send")  # the org rejects the two rows
    rows = job_rows(panel)
    assert [r["state"] for r in rows] == ["JobComplete"] * 3
    assert [r["counts"] for r in rows] == ["100 / 100 processed", "100 / 100 processed",
                                           "50 / 50 processed, 2 failed"]
    assert rows[2]["bar"] == (96.0, 4.0, 0.0)
    assert panel.status == "warning"
    assert overall_text(panel).startswith("250 / 250 rows \u00b7 100% \u00b7 took")
    assert f"{res.api_calls} API calls" in panel.calls.value
    assert {r["job_id"] for r in rows} == set(res.jobs["job_id"])
    assert "LOCAL" in panel.badge.value
    assert org.access_token not in repr(all_states(panel))


def test_a_failed_job_shows_its_reason_in_its_row_and_the_overall_line(client, org):
    org.fail_next_job("InvalidBatch : Field name not found : Region")
    panel = panel_for()
    res = sfb.insert_df(pd.DataFrame({"Name": ["a", "b"]}), "Account", progress=panel)
    [row] = job_rows(panel)
    assert row["state"] == "Failed"
    assert row["error"] == "InvalidBatch : Field name not found : Region"
    assert errors(panel) == ["job 1 failed: InvalidBatch : Field name not found : Region"]
    assert panel.status == "danger"
    assert res.job_failures() == ["job 1 failed: InvalidBatch : Field name not found : Region"]
    assert "job 1 failed: InvalidBatch" in res._repr_html_()


def test_a_background_run_updates_the_panel_from_its_thread(client, org):
    df = pd.DataFrame({"customExtIdField__c": ["B-1", "B-2"], "Name": ["a", "b"]})
    panel = panel_for()
    threads = {}

    def spy(e):
        threads.setdefault(e.kind, threading.current_thread().name)
        panel(e)

    res = sfb.upsert_df(df, "Account", "customExtIdField__c", wait=False, progress=spy)
    res.wait()
    assert threads[RUN_STARTED] == "sfbulk-run"
    assert threads[JOB_FINISHED].startswith("sfbulk-job")
    assert panel.status == "success" and job_rows(panel)[0]["state"] == "JobComplete"


@pytest.fixture
def shown(monkeypatch):
    """What IPython.display.display was given (rendering each, as a frontend would)."""
    seen = []

    def display(obj):
        obj._repr_mimebundle_()
        seen.append(obj)

    monkeypatch.setattr("IPython.display.display", display)
    return seen


def test_a_panel_is_hidden_until_its_run_starts_and_shown_once(shown):
    run, panel = info(), RunPanel(min_interval=0)
    assert panel.layout.display == "none" and shown == []
    feed(panel, run, (RUN_STARTED, {}), one_job()[1])
    assert panel.layout.display is None and shown == [panel]
    mine = RunPanel()
    shown.clear()
    IPython.display.display(mine)  # the user shows it first: it does not show itself again
    feed(mine, run, (RUN_STARTED, {}))
    assert shown == [mine]


def test_widget_progress_shows_its_panel_in_the_calling_cell_at_once(shown):
    reporter = WidgetProgress(min_interval=0)
    assert len(shown) == 1  # before any event: a run on a thread may start after the cell
    first, second = info(run_id="run-1"), info(rows=5, run_id="run-2")

    def started_on_a_thread():
        reporter(ProgressEvent(RUN_STARTED, first))

    worker = threading.Thread(target=started_on_a_thread)
    worker.start()
    worker.join()
    reporter(ProgressEvent(RUN_STARTED, second))
    reporter(ProgressEvent(JOB_CREATED, first, chunk=0, job_id="750A", state="Open",
                           records=1000))
    assert len(reporter.panels) == 2 and shown == reporter.panels
    assert [p.state.info.run_id for p in reporter.panels] == ["run-1", "run-2"]
    assert job_rows(reporter.panels[0])[0]["job_id"] == "750A"
    assert job_rows(reporter.panels[1])[0]["job_id"] is None


def test_auto_progress_is_the_widget_only_in_a_kernel(monkeypatch, shown):
    assert isinstance(progress.reporter_for("auto"), progress.TextProgress)
    assert isinstance(progress.reporter_for("text"), progress.TextProgress)

    class KernelShell:
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    assert isinstance(progress.reporter_for("auto"), WidgetProgress)
    assert isinstance(progress.reporter_for(True), WidgetProgress)
    assert isinstance(progress.reporter_for("text"), progress.TextProgress)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    monkeypatch.delitem(sys.modules, "sfbulk_nb.widgets")
    assert isinstance(progress.reporter_for("auto"), progress.TextProgress)


def test_importing_the_library_imports_no_ui():
    code = ("import sys, sfbulk_nb, sfbulk_nb.api, sfbulk_nb.query, sfbulk_nb.progress; "
            "print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
