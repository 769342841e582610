"""The run panel, through its widgets' traits (no browser): events in, bars and texts out."""
from __future__ import annotations

import subprocess
import sys
import threading

import IPython.display
import ipywidgets
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import progress
from sfbulk_nb.progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                                RUN_FINISHED, RUN_STARTED, ProgressEvent)
from sfbulk_nb.widgets import RunPanel, WidgetProgress

TOKEN = "00Dxx0000000001!AQ4AQFakeSecretTokenValue"


class FakeOrg:
    def __init__(self, kind="local", label="local org"):
        self.kind = kind
        self.label = label
        self.api_calls = 0
        self.api_usage = None
        self._token = TOKEN
        self.instance_url = "https://example.my.salesforce.com"


class FakeRun:
    """The attributes of api.Run the panel reads."""

    def __init__(self, org=None, job_count=1, rows=1000, operation="upsert"):
        self.org = org or FakeOrg()
        self.sobject = "Account"
        self.operation = operation
        self.rows = rows
        self.job_count = job_count
        self.api_calls = 0
        self.aborted = 0

    def abort(self):
        self.aborted += 1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def feed(panel, run, *events):
    for kind, fields in events:
        panel(ProgressEvent(kind, run, **fields))


def one_job(run, *, final_state="JobComplete", failed=0, records=1000):
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


def panel_for(**options):
    return RunPanel(display=False, min_interval=0, **options)


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
    run, panel = FakeRun(), panel_for()
    events = one_job(run)
    feed(panel, run, *events[:2])
    row = panel.job_rows[0]
    assert 'data-state="Open"' in row.steps.value
    assert panel.status == "running" and panel.overall.bar_style == ""
    feed(panel, run, *events[2:6])
    assert 'data-state="InProgress"' in row.steps.value
    assert (row.bar.value, row.bar.max, row.bar.bar_style) == (400, 1000, "")
    assert row.counts.value == "400 / 1,000 processed"
    # 400 records in the 4 s since processing started: 600 left at 100/s.
    assert row.timing.value == "6.0 s elapsed, ~6.0 s left"
    assert row.seconds_left() == pytest.approx(6.0)
    assert "<code" in row.id_label.value and "750A" in row.id_label.value
    feed(panel, run, *events[6:], (RUN_FINISHED, dict(message="1,000 created")))
    assert 'data-state="JobComplete"' in row.steps.value
    assert row.steps.value.count("#1a7f37") == 4  # every step done
    assert (row.bar.value, row.bar.max, row.bar.bar_style) == (1000, 1000, "success")
    assert row.timing.value == "took 10 s"
    assert panel.status == "success"
    assert (panel.overall.value, panel.overall.max) == (1000, 1000)
    assert panel.overall.bar_style == "success"
    assert "#1a7f37" in panel.layout.border_left
    assert "1,000 created" in panel.message.value
    assert panel.abort_button.disabled
    assert repr(panel) == "<RunPanel upsert Account on local org: 1,000 created>"


def test_failed_rows_show_red_counts_and_an_amber_run():
    run, panel = FakeRun(), panel_for()
    feed(panel, run, *one_job(run, failed=12),
         (RUN_FINISHED, dict(message="988 created, 12 failed")))
    row = panel.job_rows[0]
    assert row.bar.bar_style == "warning"
    assert "12 failed" in row.counts.value and "#cf222e" in row.counts.value
    assert panel.status == "warning" and panel.overall.bar_style == "warning"
    assert "#bf8700" in panel.layout.border_left


def test_a_failed_job_is_red_in_its_steps_and_the_run():
    run, panel = FakeRun(), panel_for()
    events = one_job(run, final_state="Failed", records=1000)
    feed(panel, run, *events[:5])
    panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="Failed",
                        records=1000, processed=0, at=103.0))
    row = panel.job_rows[0]
    assert 'data-state="Failed"' in row.steps.value
    assert "sfbulk-current" in row.steps.value and ">Failed</span>" in row.steps.value
    assert ">JobComplete<" not in row.steps.value
    assert row.bar.bar_style == "danger"
    assert panel.status == "danger"  # red at once, before the run ends
    panel(ProgressEvent(JOB_FINISHED, run, chunk=0, job_id="750A", state="Failed",
                        records=1000, at=103.5))
    panel(ProgressEvent(RUN_FINISHED, run, message="1,000 unprocessed"))
    assert panel.overall.bar_style == "danger"
    assert "job 1: job Failed" in panel.message.value


def test_a_job_that_could_not_be_sent_and_a_run_error_are_red():
    run, panel = FakeRun(job_count=2, rows=2000), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (ERROR, dict(chunk=1, message="No answer from https://x to POST /jobs/ingest")))
    row = panel.job_rows[1]
    assert 'data-state="Not sent"' in row.steps.value
    assert row.bar.bar_style == "danger"
    assert "No answer" in row.counts.value
    assert panel.status == "danger" and panel.overall.bar_style == "danger"
    other = panel_for()
    feed(other, run, (RUN_STARTED, {}), (ERROR, dict(message="the run broke")))
    assert other.status == "danger" and "the run broke" in other.message.value


@pytest.mark.parametrize("kind,text,colour", [
    ("production", "PRODUCTION", "#cf222e"),
    ("sandbox", "SANDBOX", "#bf8700"),
    ("local", "LOCAL", "#57606a"),
    ("unheard-of", "PRODUCTION", "#cf222e"),  # unknown: the careful reading
])
def test_the_badge_names_the_kind_of_org(kind, text, colour):
    run, panel = FakeRun(org=FakeOrg(kind=kind, label="acme.my.salesforce.com")), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    assert text in panel.badge.value and colour in panel.badge.value
    assert "acme.my.salesforce.com" in panel.header.value
    assert "upsert" in panel.header.value and "Account" in panel.header.value
    assert "1,000 rows" in panel.header.value and "1 job" in panel.header.value


def test_api_calls_and_daily_usage_are_in_the_header():
    run, panel = FakeRun(), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    assert "0 API calls" in panel.calls.value
    run.api_calls = 7
    run.org.api_usage = sfb.ApiUsage(1234, 15000)
    feed(panel, run, one_job(run)[1])
    assert "7 API calls" in panel.calls.value
    assert "1,234 of 15,000 API calls used today" in panel.calls.value


def test_abort_calls_run_abort_once_and_disables_itself():
    run, panel = FakeRun(), panel_for()
    feed(panel, run, *one_job(run)[:5])
    assert not panel.abort_button.disabled
    panel.abort_button.click()
    panel.abort_button.click()
    assert run.aborted == 1
    assert panel.abort_button.disabled


def test_a_run_without_abort_hides_the_button():
    class QueryRun:  # like query._QueryRun
        org = FakeOrg()
        sobject, operation, rows, job_count = "Account", "query", 0, 1

    run, panel = QueryRun(), panel_for()
    feed(panel, run, (RUN_STARTED, {}),
         (JOB_CREATED, dict(chunk=0, job_id="750Q", state="UploadComplete")))
    assert panel.abort_button.layout.display == "none" and panel.abort_button.disabled
    assert "rows" not in panel.header.value  # unknown until the query ends
    run.rows = 3
    feed(panel, run, (JOB_UPDATED, dict(chunk=0, job_id="750Q", state="JobComplete",
                                        processed=3, records=3)),
         (RUN_FINISHED, dict(message="3 rows")))
    assert "3 rows" in panel.header.value and panel.status == "success"


def test_updates_are_throttled_but_the_final_state_always_renders():
    clock = Clock()
    run, panel = FakeRun(), RunPanel(display=False, min_interval=0.1, clock=clock)
    feed(panel, run, *one_job(run)[:5])
    row = panel.job_rows[0]
    for done in range(10, 500, 10):  # a burst of polls within one interval
        panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                            records=1000, processed=done, at=103.0))
    assert row.bar.value == 0  # the state change rendered; the burst did not
    clock.now += 0.15
    panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                        records=1000, processed=600, at=104.0))
    assert row.bar.value == 600
    panel(ProgressEvent(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                        records=1000, processed=999, at=104.05))
    assert row.bar.value == 600
    panel(ProgressEvent(JOB_FINISHED, run, chunk=0, job_id="750A", state="JobComplete",
                        records=1000, processed=1000, at=104.1))
    panel(ProgressEvent(RUN_FINISHED, run, message="1,000 created"))
    assert row.bar.value == 1000 and row.bar.bar_style == "success"
    assert panel.overall.value == 1000 and panel.overall.bar_style == "success"


def test_css_classes_for_browser_tests():
    run, panel = FakeRun(job_count=3, rows=3000), panel_for()
    feed(panel, run, (RUN_STARTED, {}))
    assert "sfbulk-run" in panel._dom_classes
    assert len(panel.job_rows) == 3
    assert all("sfbulk-job" in row._dom_classes for row in panel.job_rows)
    assert all("sfbulk-state" in row.steps._dom_classes for row in panel.job_rows)
    assert list(panel.jobs_box.children) == panel.job_rows


def test_no_token_in_any_widget():
    run, panel = FakeRun(org=FakeOrg(kind="production", label="acme.my.salesforce.com")), \
        panel_for()
    feed(panel, run, *one_job(run, failed=3), (RUN_FINISHED, dict(message="done")))
    states = all_states(panel)
    assert len(states) > 10
    assert TOKEN not in repr(states) and "AQ4AQ" not in repr(states)


def test_a_real_upsert_drives_the_panel(client, org):
    df = pd.DataFrame({"customExtIdField__c": [f"W-{i}" for i in range(250)],
                       "Name": [f"Acct {i}" for i in range(250)],
                       "Industry": ["Banking"] * 248 + ["Nope", "Nope"]})
    panel = panel_for()
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", max_records=100,
                        progress=panel, on_invalid="send")  # the org rejects the two rows
    assert len(panel.job_rows) == 3
    assert [r.state for r in panel.job_rows] == ["JobComplete"] * 3
    assert [r.bar.max for r in panel.job_rows] == [100, 100, 50]
    assert [r.bar.value for r in panel.job_rows] == [100, 100, 50]
    assert sum(r.failed for r in panel.job_rows) == 2
    assert panel.status == "warning" and panel.overall.bar_style == "warning"
    assert f"{res.api_calls} API calls" in panel.calls.value
    assert {r.job_id for r in panel.job_rows} == set(res.jobs["job_id"])
    assert "LOCAL" in panel.badge.value
    assert org.access_token not in repr(all_states(panel))


def test_a_failed_job_shows_its_reason_in_its_row_and_the_header(client, org):
    org.fail_next_job("InvalidBatch : Field name not found : Region")
    panel = panel_for()
    res = sfb.insert_df(pd.DataFrame({"Name": ["a", "b"]}), "Account", progress=panel)
    row = panel.job_rows[0]
    assert row.state == "Failed" and row.error == "InvalidBatch : Field name not found : Region"
    assert "Field name not found : Region" in row.counts.value
    assert "job 1: InvalidBatch : Field name not found : Region" in panel.message.value
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
    assert panel.status == "success" and panel.job_rows[0].state == "JobComplete"


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
    run, panel = FakeRun(), RunPanel(min_interval=0)
    assert panel.layout.display == "none" and shown == []
    feed(panel, run, (RUN_STARTED, {}), one_job(run)[1])
    assert panel.layout.display is None and shown == [panel]
    mine = RunPanel()
    shown.clear()
    IPython.display.display(mine)  # the user shows it first: it does not show itself again
    feed(mine, run, (RUN_STARTED, {}))
    assert shown == [mine]


def test_widget_progress_shows_its_panel_in_the_calling_cell_at_once(shown):
    reporter = WidgetProgress(min_interval=0)
    assert len(shown) == 1  # before any event: a run on a thread may start after the cell
    first, second = FakeRun(), FakeRun(rows=5)

    def started_on_a_thread():
        reporter(ProgressEvent(RUN_STARTED, first))

    worker = threading.Thread(target=started_on_a_thread)
    worker.start()
    worker.join()
    reporter(ProgressEvent(RUN_STARTED, second))
    reporter(ProgressEvent(JOB_CREATED, first, chunk=0, job_id="750A", state="Open",
                           records=1000))
    assert len(reporter.panels) == 2 and shown == reporter.panels
    assert reporter.panels[0].run is first and reporter.panels[1].run is second
    assert reporter.panels[0].job_rows[0].job_id == "750A"
    assert reporter.panels[1].job_rows[0].job_id is None


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


@pytest.fixture
def client(org):
    return sfb.connect(org)


def test_throttled_updates_catch_up_after_the_window():
    # Polls of several jobs arrive in a burst; the run bar must end on the last counters
    # even when no later event comes to render them.
    panel = RunPanel(display=False, min_interval=0.05)
    run = FakeRun(job_count=2, rows=2000)
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
    assert panel.overall.value == 900
    assert panel.job_rows[0].bar.value == 600
