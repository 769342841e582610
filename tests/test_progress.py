"""The progress model on its own: RunState folds events into what every display shows, and
TextProgress prints it. Pure: no widgets, no org, times passed in."""
from __future__ import annotations

import io

import pytest

from sfbulk_nb.progress import (ERROR, JOB_CREATED, JOB_FINISHED, JOB_UPDATED, JOB_UPLOADED,
                                RUN_FINISHED, RUN_STARTED, NOT_KNOWN, NOT_SENT, ProgressEvent, RunInfo,
                                RunState, TextProgress, duration, plural)

DOT = " \u00b7 "


def info(**fields) -> RunInfo:
    base = dict(kind="load", operation="insert", sobject="Contact", org_label="acme sandbox",
                org_kind="sandbox", rows=2000, job_count=2, run_id="r-1")
    return RunInfo(**(base | fields))


def ev(kind, run, **fields) -> ProgressEvent:
    return ProgressEvent(kind, run, **fields)


def two_jobs_half_way() -> RunState:
    """Two jobs of 1,000: the first done (10 failed), the second 500 in at 100 rows/s."""
    run = info()
    state = RunState(run)
    for e in [ev(RUN_STARTED, run, at=0.0),
              ev(JOB_CREATED, run, chunk=0, job_id="750A", state="Open", records=1000, at=1.0),
              ev(JOB_CREATED, run, chunk=1, job_id="750B", state="Open", records=1000, at=1.0),
              ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress", records=1000,
                 processed=0, at=2.0),
              ev(JOB_UPDATED, run, chunk=1, job_id="750B", state="InProgress", records=1000,
                 processed=0, at=2.0),
              ev(JOB_FINISHED, run, chunk=0, job_id="750A", state="JobComplete",
                 records=1000, processed=1000, failed=10, at=12.0),
              ev(JOB_UPDATED, run, chunk=1, job_id="750B", state="InProgress", records=1000,
                 processed=500, at=12.0)]:
        state.apply(e)
    return state


def test_counts_rate_and_time_left():
    state = two_jobs_half_way()
    assert (state.total, state.processed, state.failed, state.succeeded) == (2000, 1500, 10, 1490)
    assert state.fraction() == 0.75
    assert state.rate(now=12.0) == pytest.approx(150.0)  # 1,500 rows in the 10 s since
    assert state.seconds_left(now=12.0) == pytest.approx(500 / 150)
    assert state.status == "running"
    assert state.overall_text(now=12.0) == DOT.join(
        ["1,500 / 2,000 rows", "75%", "12 s elapsed", "~3.3 s left", "150 rows/s"])
    first, second = state.jobs
    assert first.finished and first.timing_text() == "took 11 s"
    assert second.seconds_left() == pytest.approx(10.0)  # 500 left at its own 50 rows/s
    assert second.counts_text() == "500 / 1,000 processed"
    assert first.counts_text() == "1,000 / 1,000 processed, 10 failed"


def test_a_finished_run_says_took_and_its_status():
    state = two_jobs_half_way()
    run = state.info
    state.apply(ev(JOB_FINISHED, run, chunk=1, job_id="750B", state="JobComplete",
                   records=1000, processed=1000, at=14.0))
    state.apply(ev(RUN_FINISHED, run, message="1,990 created, 10 failed", at=15.0))
    assert state.finished and state.status == "warning"
    assert state.seconds_left(now=99.0) is None
    assert state.overall_text(now=99.0) == DOT.join(
        ["2,000 / 2,000 rows", "100%", "took 15 s", "133 rows/s"])
    assert state.message == "1,990 created, 10 failed"


def test_no_rate_from_a_first_poll_that_finds_rows_done():
    # The first poll already finds 200 rows processed: a rate from it would claim
    # thousands a second. The rate counts from there, over at least a second.
    run = info(job_count=1, rows=1000)
    state = RunState(run)
    state.apply(ev(RUN_STARTED, run, at=0.0))
    state.apply(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                   records=1000, processed=200, at=1.0))
    assert state.rate(now=1.01) is None and state.seconds_left(now=1.01) is None
    assert "rows/s" not in state.overall_text(now=1.01)
    state.apply(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress",
                   records=1000, processed=400, at=3.0))
    assert state.rate(now=3.0) == pytest.approx(100.0)
    assert state.seconds_left(now=3.0) == pytest.approx(6.0)


def test_no_time_left_before_processing_starts_or_after_it_ends():
    run = info(job_count=1, rows=10)
    state = RunState(run)
    state.apply(ev(RUN_STARTED, run, at=0.0))
    job = state.apply(ev(JOB_CREATED, run, chunk=0, job_id="750A", state="Open", records=10,
                         at=0.5))
    state.apply(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="UploadComplete",
                   records=10, at=3.0))
    assert job.seconds_left() is None and job.timing_text() == "2.5 s elapsed, queued"
    assert state.overall_text(now=3.0) == DOT.join(["0 / 10 rows", "0%", "3.0 s elapsed"])
    state.apply(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="JobComplete",
                   records=10, processed=10, at=4.0))
    assert job.seconds_left() is None  # results still downloading: no "~0 s left"


@pytest.mark.parametrize("state_name,message,line", [
    ("Failed", "InvalidBatch : Field name not found : Region",
     "job 2 failed: InvalidBatch : Field name not found : Region"),
    ("Aborted", None, "job 2 was aborted"),
])
def test_a_bad_job_turns_the_run_red_at_once_with_its_reason(state_name, message, line):
    state = two_jobs_half_way()
    state.apply(ev(JOB_UPDATED, state.info, chunk=1, job_id="750B", state=state_name,
                   records=1000, processed=500, message=message, at=13.0))
    assert state.status == "danger" and not state.finished
    assert state.failures() == [line]
    assert state.jobs[1].bad and state.jobs[1].finished
    assert state.left == 500  # the rest of job 2 will not be processed
    state.apply(ev(RUN_FINISHED, state.info, message="...", at=14.0))
    assert state.left == 500 and state.fraction() == 0.75


def test_an_error_before_a_job_exists_marks_it_not_sent():
    run = info()
    state = RunState(run)
    state.apply(ev(RUN_STARTED, run, at=0.0))
    job = state.apply(ev(ERROR, run, chunk=1, message="No answer from the org", at=1.0))
    assert job.state == NOT_SENT and job.bad
    assert state.failures() == ["job 2 was not sent: No answer from the org"]
    state.apply(ev(ERROR, run, message="the run broke", at=2.0))
    assert state.error == "the run broke" and state.status == "danger"


def test_an_error_after_a_job_was_sent_leaves_it_not_known_until_asked_again():
    state = two_jobs_half_way()
    job = state.apply(ev(ERROR, state.info, chunk=1, message="poll timed out", at=13.0))
    assert job.state == NOT_KNOWN and job.error == "poll timed out"
    assert state.status == "danger"
    assert state.failures() == ["job 2 is not known yet: poll timed out"]
    # res.wait() reaches the org again and the job goes on.
    state.apply(ev(JOB_FINISHED, state.info, chunk=1, job_id="750B", state="JobComplete",
                   records=1000, processed=1000, at=20.0))
    assert job.error is None and not job.bad and state.failures() == []


def test_jobs_in_the_same_trouble_are_said_together():
    run = info(job_count=9, rows=9000)
    state = RunState(run)
    state.apply(ev(RUN_STARTED, run, at=0.0))
    for chunk in (0, 1, 2, 3, 5):
        state.apply(ev(JOB_FINISHED, run, chunk=chunk, job_id=f"750{chunk}", state="Aborted",
                       records=1000))
    for chunk in (6, 7, 8):
        state.apply(ev(ERROR, run, chunk=chunk, message="the run was aborted first"))
    state.apply(ev(JOB_FINISHED, run, chunk=4, job_id="7504", state="Failed", records=1000,
                   message="InvalidBatch : bad"))
    assert state.failures() == [
        "jobs 1\u20134, 6 were aborted",
        "job 5 failed: InvalidBatch : bad",
        "jobs 7\u20139 were not sent: the run was aborted first",
    ]


def test_follow_up_jobs_join_without_counting_rows_twice():
    state = two_jobs_half_way()
    run = state.info
    state.apply(ev(JOB_FINISHED, run, chunk=1, job_id="750B", state="JobComplete",
                   records=1000, processed=1000, failed=4, at=14.0))
    # Four rows of job 2 lost a lock race; they go again in a follow-up job 3.
    job = state.apply(ev(JOB_CREATED, run, chunk=2, job_id="750C", state="Open", records=4,
                         at=15.0))
    assert len(state.jobs) == 3 and job.records == 4
    assert (state.total, state.processed) == (2000, 2000)


def test_a_query_counts_the_rows_it_read():
    run = info(kind="query", operation="query", rows=0, job_count=1, run_id=None)
    state = RunState(run)
    state.apply(ev(RUN_STARTED, run, at=0.0))
    state.apply(ev(JOB_UPDATED, run, chunk=0, job_id="750Q", state="InProgress", at=1.0))
    assert state.overall_text(now=1.0) == "query: 0 rows so far"
    done = info(kind="query", operation="query", rows=1234, job_count=1, run_id=None)
    state.apply(ev(JOB_UPDATED, done, chunk=0, job_id="750Q", state="JobComplete",
                   processed=1234, records=1234, at=2.0))
    state.apply(ev(RUN_FINISHED, done, message="1,234 rows", at=2.5))
    assert state.overall_text(now=9.0) == "query: 1,234 rows in 2.5 s"
    assert state.headline() == "query of Contact on acme sandbox"
    assert state.status == "success"


def test_the_headline_names_what_where_and_the_run():
    assert RunState(info()).headline() == (
        "insert 2,000 rows into Contact on acme sandbox in 2 jobs, run r-1")
    assert RunState(info(rows=1, job_count=1, run_id=None)).headline() == (
        "insert 1 row into Contact on acme sandbox in 1 job")


@pytest.mark.parametrize("seconds,text", [
    (0.04, "0.0 s"), (9.94, "9.9 s"), (12.4, "12 s"), (59.4, "59 s"), (61, "1 min 01 s"),
    (3599, "59 min 59 s"), (3661, "1 h 01 min"), (-3, "0.0 s"),
])
def test_durations_read_naturally(seconds, text):
    assert duration(seconds) == text


def test_plural():
    assert (plural(1, "row"), plural(0, "row"), plural(12345, "job")) == (
        "1 row", "0 rows", "12,345 jobs")


def test_text_progress_prints_state_changes_not_every_poll():
    out = io.StringIO()
    text = TextProgress(out, clock=lambda: 20.0)
    run = info(job_count=1, rows=1000)
    text(ev(RUN_STARTED, run, at=0.0))
    text(ev(JOB_CREATED, run, chunk=0, job_id="750A", state="Open", records=1000, at=1.0))
    text(ev(JOB_UPLOADED, run, chunk=0, job_id="750A", records=1000, at=1.5))
    for done in (0, 0, 0):  # the same poll three times: one line
        text(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="InProgress", records=1000,
                processed=done, at=2.0))
    text(ev(JOB_UPDATED, run, chunk=0, job_id="750A", state="JobComplete", records=1000,
            processed=1000, failed=2, at=5.0))
    text(ev(JOB_FINISHED, run, chunk=0, job_id="750A", state="JobComplete", records=1000,
            processed=1000, failed=2, at=5.5))
    text(ev(RUN_FINISHED, run, message="998 created, 2 failed", at=6.0))
    assert out.getvalue().splitlines() == [
        "insert 1,000 rows into Contact on acme sandbox in 1 job, run r-1",
        "  job 1/1 750A: created, 1,000 rows",
        "  job 1/1 750A: InProgress, 0 / 1,000 processed",
        "  job 1/1 750A: JobComplete, 1,000 / 1,000 processed, 2 failed",
        "done: 1,000 / 1,000 rows \u00b7 100% \u00b7 took 6.0 s \u00b7 167 rows/s: "
        "998 created, 2 failed",
    ]


def test_text_progress_says_why_a_job_failed():
    out = io.StringIO()
    text = TextProgress(out)
    run = info(job_count=1, rows=2)
    text(ev(RUN_STARTED, run))
    text(ev(JOB_FINISHED, run, chunk=0, job_id="750A", state="Failed", records=2,
            message="InvalidBatch : Field name not found : Region"))
    text(ev(ERROR, run, message="the org went away"))
    assert out.getvalue().splitlines()[1:] == [
        "  job 1/1 750A: Failed: InvalidBatch : Field name not found : Region",
        "error: the org went away",
    ]
