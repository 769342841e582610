"""The live run panel as a person sees it: JupyterLab in a real (headless) chromium.

notebooks/05_live_progress.ipynb is opened in a JupyterLab on 127.0.0.1 and run with
Run > Run All Cells against a paced local org; the panel must go live through the job
states, end at JobComplete for every job with the right counts and full bars, and show no
broken-widget marker, with no request leaving the machine. Screenshots are kept in the
test's tmp_path (lab.png, panel.png, panel-live.png), with the sampled timeline
(timeline.json), the browser console and the time each step took (phases.json).

Needs Debian's chromium (`apt-get install chromium`) and the test extras (playwright,
jupyterlab); skipped when they are missing, except in CI (CI set), where it must run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from importlib.util import find_spec
from pathlib import Path

import nbformat
import pytest

import labdriver as lab
from sfbulk_nb.sample import INDUSTRIES, sample_accounts

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05_live_progress.ipynb"
BIG_FILES = ROOT / "notebooks" / "06_big_files.ipynb"
# What the notebook runs (checked against its source below): 3,000 sample rows in 3 jobs.
ROWS, SEED, MAX_RECORDS = 3000, 5, 1000
JOBS = ROWS // MAX_RECORDS
# records/second: ~1.3 s per job. The client polls a job 0.5, 1.25, 2.4, 4.1 s after closing
# it, and the org runs the jobs one after the other: at this pace each job is usually seen
# InProgress (at 1500/s a job often goes UploadComplete -> JobComplete between two polls).
PACE = 750
STEPS = ["Waiting", "Open", "UploadComplete", "InProgress", "JobComplete"]  # Waiting: not created yet

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
MISSING = [name for name, ok in ((f"chromium ({lab.CHROMIUM})", Path(lab.CHROMIUM).exists()),
                                 ("playwright", find_spec("playwright") is not None),
                                 ("jupyterlab", find_spec("jupyterlab") is not None))
           if not ok]
needs_browser = pytest.mark.skipif(
    bool(MISSING) and not IN_CI,
    reason=f"needs {', '.join(MISSING)} (apt-get install chromium; pip install -e '.[test]')")


def expected_failures() -> list[int]:
    """Rows per job that the org must reject, from the data itself: sample_accounts breaks
    a row by an Industry outside Account's restricted picklist (its valid rows never draw
    Manufacturing), a missing Name, or a Name over 255 characters."""
    df = sample_accounts(ROWS, seed=SEED)
    allowed = set(INDUSTRIES) - {"Manufacturing"}
    bad = (~df["Industry"].isin(allowed) | df["Name"].isna()
           | (df["Name"].str.len() > 255).fillna(False))
    return [int(bad.iloc[i * MAX_RECORDS:(i + 1) * MAX_RECORDS].sum()) for i in range(JOBS)]


TROUBLE_NOTEBOOK = "trouble.ipynb"
FAILED_JOB = "InvalidBatch : Field name not found : Region"
BIG_ROWS = 8000  # ~11 s at PACE: time to click Abort while the cell runs
TROUBLE_CELLS = [
    "import sfbulk_nb as sfb\n"
    "from sfbulk_nb.sample import sample_accounts\n"
    "org = sfb.connect('local')\n"
    f"org.local_org.fail_next_job({FAILED_JOB!r}, after_records=300)",
    # No external ids in the insert: the upsert below must find one record per id.
    "failed = sfb.insert_df(sample_accounts(1000, seed=11).drop(columns='customExtIdField__c'),"
    " 'Account', on_invalid='send')",
    f"big = sfb.upsert_df(sample_accounts({BIG_ROWS}, seed=12), 'Account', "
    "'customExtIdField__c', max_records=1000, on_invalid='send')\n"
    "print('returned', big.counts.to_dict())",
    "big",                                   # the result card
    "big.frame",                             # the aligned frame, at most 15 rows
    "import sfbulk_nb.plots\nsfbulk_nb.plots.dashboard(big)",
]

CLEANUP_NOTEBOOK = "cleanup_preview.ipynb"
LONG = "A very long description that goes on and on " * 12
CLEANUP_CELLS = [
    "import pandas as pd\n"
    "import sfbulk_nb as sfb\n"
    "from sfbulk_nb.sample import sample_accounts\n"
    "org = sfb.connect('local', name='cleanup-preview', fresh=True)\n"
    "base = sample_accounts(300, errors=False, seed=21)\n"
    "assert sfb.upsert_df(base, 'Account', 'customExtIdField__c', progress=False).ok\n"
    "accounts = sfb.query_df('SELECT Id, Name, Description FROM Account', progress=False)",
    "clean = accounts.copy()\n"
    "clean.loc[:40, 'Name'] = clean.loc[:40, 'Name'].str.upper()\n"
    f"clean.loc[:5, 'Description'] = {LONG!r}\n"
    "plan = sfb.dry_run(clean, 'Account', 'update', lookup=True)\n"
    "plan.summary(since=accounts)",
    "res = sfb.update_df(clean, 'Account', only_changed=True, if_unmodified_since=accounts, "
    "progress=False)\nres",
    "undone = res.undo(progress=False)\nundone",
]

BROKEN_NOTEBOOK = "broken_widgets.ipynb"
MISSING_MODULE = """\
import ipywidgets
from traitlets import Unicode

class NoSuchWidget(ipywidgets.DOMWidget):  # its JS module exists nowhere
    _model_module = Unicode("sfbulk-no-such-module").tag(sync=True)
    _view_module = Unicode("sfbulk-no-such-module").tag(sync=True)
    _model_name = Unicode("NoSuchModel").tag(sync=True)
    _view_name = Unicode("NoSuchView").tag(sync=True)

NoSuchWidget()
"""


def write_broken_notebook(path: Path) -> None:
    """The two ways a widget shows broken: its first cell displays a widget whose JS module
    is missing; its second holds saved widget outputs whose models are gone (what a notebook
    executed elsewhere shows), so only their text/plain can render."""
    view = {"model_id": "0" * 32, "version_major": 2, "version_minor": 0}
    saved = [nbformat.v4.new_output("display_data", data={
                 "application/vnd.jupyter.widget-view+json": view, "text/plain": text})
             for text in ("<RunPanel upsert Account on local org: 2,970 created, 30 failed>",
                          "VBox(children=(HTML(value='<b>State:</b> Open'), "
                          "IntProgress(value=0)))")]
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}},
        cells=[nbformat.v4.new_code_cell(MISSING_MODULE),
               nbformat.v4.new_code_cell("# outputs saved by another run", outputs=saved)])
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    work = tmp_path_factory.mktemp("jupyterlab")
    root = work / "notebooks"  # serve a copy: Lab marks notebooks dirty and autosaves
    root.mkdir()
    shutil.copy(NOTEBOOK, root)
    shutil.copy(BIG_FILES, root)
    write_broken_notebook(root / BROKEN_NOTEBOOK)
    nbformat.write(nbformat.v4.new_notebook(
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}},
        cells=[nbformat.v4.new_code_cell(c) for c in TROUBLE_CELLS]), root / TROUBLE_NOTEBOOK)
    nbformat.write(nbformat.v4.new_notebook(
        metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}},
        cells=[nbformat.v4.new_code_cell(c) for c in CLEANUP_CELLS]), root / CLEANUP_NOTEBOOK)
    env = lab.clean_env(SFBULK_NB_LOCALORG=str(work / "org.sqlite3"),
                        SFBULK_NB_PACE=str(PACE))
    with lab.jupyter_lab(root, work, env) as base:
        yield base


def test_notebook_is_what_this_test_expects():
    source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert f"sample_accounts({ROWS}, seed={SEED})" in source
    assert f"max_records={MAX_RECORDS}" in source
    assert 'on_invalid="send"' in source  # the org, not the checks, rejects the broken rows


@needs_browser
def test_run_all_shows_live_panel_to_job_complete(lab_url, tmp_path):
    failed = expected_failures()
    assert sum(failed) > 0  # the run must show failures, not only successes
    shot = tmp_path / "lab.png"
    phases, t0 = {}, time.monotonic()

    def phase(name):
        phases[name] = round(time.monotonic() - t0, 2)

    with lab.browser_page(timeout_s=60) as page:
        try:
            phase("browser")
            lab.open_notebook(page, lab_url, NOTEBOOK.name)
            phase("kernel idle")
            lab.run_menu(page, "Run All Cells")
            lab.wait_for_state(page, "InProgress")
            phase("first InProgress")
            page.locator(".sfbulk-run:visible").first.screenshot(path=tmp_path / "panel-live.png")
            lab.wait_finished(page, ("JobComplete", "Failed", "Aborted"), jobs=JOBS)
            phase("all cells done")
            page.screenshot(path=shot)
            page.locator(".sfbulk-run:visible").first.screenshot(path=tmp_path / "panel.png")
            panels = lab.panels(page)
            samples = lab.timeline(page)
            problems = lab.widget_problems(page)
            outputs = lab.output_texts(page)
        except Exception:
            lab.keep_failure(page, shot)
            raise
        finally:
            (tmp_path / "console.txt").write_text("\n".join(page.console))
        external = list(page.external_requests)
    phase("browser closed")
    (tmp_path / "timeline.json").write_text(json.dumps(samples, indent=1))
    (tmp_path / "phases.json").write_text(json.dumps(phases))

    assert problems == []
    assert external == []
    assert len(panels) == 1, panels
    panel = panels[0]
    text = panel["text"]
    assert "LOCAL" in text and "upsert" in text and "Account" in text
    assert f"{ROWS:,} rows" in text and f"{JOBS} jobs" in text
    # The overall line: all rows processed, some failed; the run's counts under it.
    assert f"{ROWS - sum(failed):,} created, {sum(failed):,} failed" in text
    assert panel["overallText"].startswith(f"{ROWS:,} / {ROWS:,} rows \u00b7 100% \u00b7 took ")
    assert panel["percent"] == 100.0 and panel["status"] == "warning"
    assert panel["overall"]["width"] >= 99.5
    assert panel["overall"]["failed"] == pytest.approx(100 * sum(failed) / ROWS, abs=0.01)
    assert panel["abort"] == []  # nothing left to stop
    # Laid out: nothing runs off the side, every job's bar starts at the same x, and no
    # text of a row is cut.
    assert panel["overflow"] <= 0, panel
    assert len(panel["barLefts"]) == 1, panel["barLefts"]

    assert len(panel["jobs"]) == JOBS
    for i, job in enumerate(panel["jobs"]):
        assert job["state"] == "JobComplete" and job["current"] == "JobComplete", job
        assert job["text"].startswith(f"#{i + 1} | JobComplete"), job
        counts = f"{MAX_RECORDS:,} / {MAX_RECORDS:,} processed"
        if failed[i]:
            counts += f", {failed[i]:,} failed"
        assert re.search(re.escape(counts) + r"(?![\d,])", job["text"]), (counts, job["text"])
        assert job["bar"]["width"] >= 99.5, job
        assert job["bar"]["failed"] == pytest.approx(100 * failed[i] / MAX_RECORDS, abs=0.01)
        assert "took " in job["text"]
        assert job["clipped"] == [], job

    # Live: every job moved forward through the states and was seen before its end; some
    # job was seen InProgress with its bar part-way, before JobComplete; so was the run.
    for i in range(JOBS):
        seen = lab.states_seen(samples, i)
        assert seen[-1] == "JobComplete" and len(seen) >= 2, seen
        assert [STEPS.index(s) for s in seen] == sorted(STEPS.index(s) for s in seen), seen
    in_progress = [(i, s["t"]) for s in samples for i, job in enumerate(s["panels"][0]["jobs"])
                   if job["state"] == "InProgress" and 0 < job["bar"]["width"] < 100]
    assert in_progress, "no job was seen InProgress with a part-way bar"
    assert all(any(s["t"] > t and s["panels"][0]["jobs"][i]["state"] == "JobComplete"
                   for s in samples) for i, t in in_progress)
    assert any(0 < s["panels"][0]["overall"]["width"] < 100 for s in samples)
    assert any(re.search(r"~[\d.]+ s left", job["text"]) for s in samples
               for job in s["panels"][0]["jobs"])
    # The overall line counted up: n / N rows, its percent, elapsed time, rows/s.
    live = [s["panels"][0]["overallText"] for s in samples
            if 0 < (s["panels"][0]["percent"] or 0) < 100]
    assert any(re.fullmatch(r"[\d,]+ / 3,000 rows \u00b7 \d+% \u00b7 [\d.]+ s elapsed"
                            r"( \u00b7 ~[\d.]+ s left)?( \u00b7 [\d,]+ rows/s)?", t)
               for t in live), live
    assert all(s["panels"][0]["overflow"] <= 0 for s in samples)
    assert all(j["clipped"] == [] for s in samples for j in s["panels"][0]["jobs"])
    # The notebook's last cell shows the same counts.
    assert any(re.search(rf"created\s+{ROWS - sum(failed)}\b", o)
               and re.search(rf"failed\s+{sum(failed)}\b", o) for o in outputs), outputs


@needs_browser
def test_a_failed_job_and_an_abort_click_as_the_user_sees_them(lab_url, tmp_path):
    """A job the org fails part-way shows why, red, its unprocessed rows amber; a click on
    Abort while a blocking upsert runs stops it: the cell returns, the jobs end Aborted,
    and the panel says what was left."""
    shot = tmp_path / "trouble.png"
    with lab.browser_page(timeout_s=90) as page:
        try:
            lab.open_notebook(page, lab_url, TROUBLE_NOTEBOOK)
            lab.run_menu(page, "Run All Cells")
            page.wait_for_function(
                """() => { const s = window.__panelSnapshot();
                           return s.length === 2
                             && s[1].jobs.some((j) => j.state === 'InProgress'); }""",
                polling=50)
            page.locator(".sfbulk-run:visible").nth(1).screenshot(
                path=tmp_path / "panel-before-abort.png")
            clicked_at = time.monotonic()
            page.locator(".sfbulk-run:visible").nth(1).get_by_role(
                "button", name="Abort").click()
            lab.wait_finished(page, ("JobComplete", "Failed", "Aborted", "Not sent",
                                     "Not known yet"), jobs=BIG_ROWS // 1000)
            stopped_in = time.monotonic() - clicked_at
            page.screenshot(path=shot)
            runs = page.locator(".sfbulk-run:visible")
            runs.nth(0).screenshot(path=tmp_path / "panel-failed-job.png")
            runs.nth(1).screenshot(path=tmp_path / "panel-aborted.png")
            page.locator(".sfbulk-result").first.screenshot(path=tmp_path / "card.png")
            page.locator(".sfbulk-table").last.screenshot(path=tmp_path / "frame.png")
            dashboard = page.locator(".jp-OutputArea-output img").last
            dashboard.screenshot(path=tmp_path / "dashboard.png")
            pictures = page.locator(".jp-OutputArea-output img").count()
            panels = lab.panels(page)
            overflowing = lab.overflowing_outputs(page)
            card = page.locator(".sfbulk-result").first.inner_text()
            frame_note = page.locator(".sfbulk-table-note").last.inner_text()
            outputs = lab.output_texts(page)
            problems = lab.widget_problems(page)
        except Exception:
            lab.keep_failure(page, shot)
            raise
        finally:
            (tmp_path / "console.txt").write_text("\n".join(page.console))
        external = list(page.external_requests)
    assert problems == [] and external == []
    failed, aborted = panels

    # The failed job: its state, its reason on its row and under the overall line, its
    # 700 unprocessed rows amber in its bar, the run red.
    [job] = failed["jobs"]
    assert job["state"] == "Failed" and job["current"] == "Failed"
    assert FAILED_JOB in job["text"]
    assert f"job 1 failed: {FAILED_JOB}" in failed["errors"]
    assert job["bar"]["left"] == pytest.approx(70.0, abs=0.01), job
    assert failed["status"] == "danger"
    assert failed["overflow"] <= 0 and job["clipped"] == [], failed

    # The abort: the blocking cell returned soon after the click, some jobs were aborted,
    # what they left is amber, and the button is gone.
    assert stopped_in < 30, stopped_in
    assert any("returned" in o for o in outputs), outputs
    states = [j["state"] for j in aborted["jobs"]]
    assert "Aborted" in states, states
    assert set(states) <= {"JobComplete", "Aborted", "Not sent"}, states
    assert aborted["overall"]["left"] > 0 and aborted["percent"] < 100, aborted
    assert aborted["abort"] == [], aborted
    assert aborted["overflow"] <= 0 and len(aborted["barLefts"]) == 1, aborted
    assert all(j["clipped"] == [] for j in aborted["jobs"]), aborted["jobs"]

    # The card, the frame and the dashboard: nothing of ours runs off its output sideways,
    # the card names the aborted jobs and previews the rows' outcome first; the frame says
    # how many rows it has; the dashboard is one picture (no "<Figure ...>" echo, no
    # second copy).
    assert overflowing == [], overflowing
    assert re.search(r"jobs? 1(\u2013\d+)? aborted", card), card
    assert "sf_status" in card and "job(s)" not in card
    assert f"first 5 of {BIG_ROWS:,} rows" in card
    assert frame_note.startswith(f"showing 15 of {BIG_ROWS:,} rows"), frame_note
    assert pictures == 1
    assert not any(o.lstrip().startswith(("<Figure", "<Axes")) for o in outputs), outputs


@needs_browser
def test_the_clean_up_preview_result_and_undo_as_the_user_sees_them(lab_url, tmp_path):
    """The preview of a push (changed cells per field, with a long value among the
    examples), the result of sending only the changes, and the undo: each fits its
    output and says what it did."""
    shot = tmp_path / "cleanup.png"
    with lab.browser_page(timeout_s=90) as page:
        try:
            lab.open_notebook(page, lab_url, CLEANUP_NOTEBOOK)
            lab.run_menu(page, "Run All Cells")
            page.locator(".sfbulk-undo").first.wait_for(state="visible", timeout=60_000)
            lab.wait_all_cells_done(page)
            page.screenshot(path=shot)
            page.locator(".sfbulk-preview").first.screenshot(path=tmp_path / "preview.png")
            page.locator(".sfbulk-result").first.screenshot(path=tmp_path / "only-changed.png")
            page.locator(".sfbulk-undo").first.screenshot(path=tmp_path / "undo.png")
            preview = page.locator(".sfbulk-preview").first.inner_text()
            card = page.locator(".sfbulk-result").first.inner_text()
            undo = page.locator(".sfbulk-undo").first.inner_text()
            overflowing = lab.overflowing_outputs(page)
            outputs = lab.output_texts(page)
        except Exception:
            lab.keep_failure(page, shot)
            raise
        finally:
            (tmp_path / "console.txt").write_text("\n".join(page.console))
        external = list(page.external_requests)
    assert external == []
    assert not any("Traceback" in o or "Error" in o for o in outputs), outputs
    assert overflowing == [], overflowing
    assert "41 would change their record" in preview and "259 unchanged" in preview
    assert "Name" in preview and "Description" in preview
    assert "41 updated" in card and "259 unchanged" in card and "259 rows not sent" in card
    assert "41 restored" in undo


@needs_browser
def test_a_streamed_file_shows_its_panel_from_check_to_end(lab_url, tmp_path):
    """notebooks/06_big_files.ipynb: the panel of upsert_csv goes through the check and the
    sending of a file (a bar of how far through it, jobs, outcomes), ends done with the
    counts, fits its output, and no text lines show on stderr."""
    shot = tmp_path / "big-files.png"
    with lab.browser_page(timeout_s=240) as page, lab.failure_kept(page, shot):
        lab.open_notebook(page, lab_url, BIG_FILES.name)
        lab.run_menu(page, "Run All Cells")
        live = page.locator(".sfbulk-stream:has-text('job')").first  # sending: jobs
        live.wait_for(state="visible")
        live_text = live.inner_text()
        live.scroll_into_view_if_needed()
        live.screenshot(path=tmp_path / "stream-live.png")
        lab.wait_all_cells_done(page)
        page.screenshot(path=shot)
        streams = page.locator(".sfbulk-stream")
        for k in range(streams.count()):
            streams.nth(k).screenshot(path=tmp_path / f"stream-{k}.png")
        texts = [streams.nth(k).inner_text() for k in range(streams.count())]
        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/"
                              "vnd.jupyter.stderr']").count()
        overflowing = lab.overflowing_outputs(page)
        problems = lab.widget_problems(page)
        outputs = lab.output_texts(page)
        external = list(page.external_requests)
    assert external == [] and problems == [] and overflowing == [], (problems, overflowing)
    assert stderr == 0
    assert not any("Traceback" in o for o in outputs), outputs
    assert "sending" in live_text, live_text
    validated, checked, sent, chunks, magic = texts
    assert "checked" in validated and "rows have errors" in validated
    assert "nothing was sent" in validated and "results in" not in validated
    assert "Nothing was sent: the file has problems" in checked
    assert "lines read to 20,001" in checked and "job" not in checked
    assert "done" in sent and "19,800 created" in sent and "4 jobs done" in sent
    assert "accounts_export.fixed.results.csv" in sent
    assert "done" in chunks and "19,800 updated" in chunks
    assert "done" in magic and "19,800 updated" in magic and "magic.results.csv" in magic


@needs_browser
def test_broken_widget_markers_are_caught(lab_url, tmp_path):
    """The check above must be able to fail: both kinds of broken widget are reported."""
    shot = tmp_path / "broken.png"
    with lab.browser_page(timeout_s=60) as page:
        try:
            lab.open_notebook(page, lab_url, BROKEN_NOTEBOOK)
            page.keyboard.press("Control+Enter")  # run the first cell only
            page.get_by_text("Click to show javascript error").first.wait_for()
            page.screenshot(path=shot)
            problems = lab.widget_problems(page)
        except Exception:
            lab.keep_failure(page, shot)
            raise
        external = list(page.external_requests)
    assert any(p.startswith("text: Click to show javascript error") for p in problems), problems
    assert any(p.startswith("plain repr: <RunPanel") for p in problems), problems
    assert any(p.startswith("plain repr: VBox(children=") for p in problems), problems
    assert external == []
