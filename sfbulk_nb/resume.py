"""Picking a run up again from its journal record: after a kernel restart, a crash, or in
another process.

    sfb.runs()                     # recent runs and their state
    res = sfb.resume("r-...", df)  # that run, with the frame it sent
    res = sfb.resume(df=df)        # the latest run of this frame

The frame is planned again with the run's options (the same checks give the same rows in
the same jobs, which is verified), the jobs the record names are attached to their
outcomes, and the result is rebuilt from the org's result files: rows of a job that was
closed are read back; rows of a job that never got past Open were never processed (the
job is aborted) and, like rows whose job was never created, come back not_sent, for
`res.retry()`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import daskload, errors, jobs, journal, memory
from . import plan as plan_stage
from .api import Run
from .bulkresult import BulkResult
from .org import Org, default_org
from .progress import reporter_for


def runs(limit: int = 20) -> pd.DataFrame:
    """The journal's recent runs, newest first: run_id, created, state (running / done /
    stopped: a streamed load that stopped part way, its stop_text() says where), org,
    object, operation, rows, jobs, and how many jobs reached each stage."""
    rows = []
    for record in journal.records()[:limit or None]:
        d = record.data
        stages = pd.Series([j.get("stage") for j in d.get("jobs", [])], dtype=object)
        # A stopped stream is over (its jobs in flight were seen to their end), not running.
        state = "stopped" if d.get("stream") and d.get("stop_reason") else d.get("state")
        rows.append({
            "run_id": record.run_id, "created": d.get("created"), "state": state,
            "org": d.get("org", {}).get("label"), "object": d.get("sobject"),
            "operation": d.get("operation"), "rows": d.get("rows"), "jobs": len(stages),
            "finished_jobs": int((stages == "finished").sum()),
            "unfinished_jobs": int(stages.isin(["uploaded", "closed"]).sum())})
    frame = pd.DataFrame(rows, columns=["run_id", "created", "state", "org", "object",
                                        "operation", "rows", "jobs", "finished_jobs",
                                        "unfinished_jobs"])
    frame["created"] = pd.to_datetime(frame["created"], utc=True, format="ISO8601")
    return frame


@memory.lean()
def resume(run_id: str | None = None, df: pd.DataFrame | None = None, *,
           org: Org | None = None, wait: bool = True, timeout: float | None = None,
           progress: Any = "auto") -> BulkResult:
    """Re-attach to a journalled run and rebuild its aligned result from the org (see the
    module docstring). ``df``: the frame the run sent (the journal keeps no data, only a
    fingerprint to check it by). Without ``run_id``, the latest run of ``df``. A run of a
    Dask frame is resumed with that Dask frame (partitioned the same way) and gives its
    outcome as a Dask frame, as the load did (sfbulk_nb.daskload)."""
    dask_frame = daskload.is_dask(df)
    if not isinstance(df, pd.DataFrame) and not dask_frame:
        raise errors.InputError(
            "resume needs the frame the run sent (the journal keeps no data): "
            "sfb.resume(run_id, df), or sfb.resume(df=df) for the latest run of df")
    if dask_frame and not wait:
        raise errors.InputError("wait=False is not available for a Dask frame's run")
    print_ = daskload.fingerprint(df) if dask_frame else journal.fingerprint(df)
    legacy_print = functools.cache(lambda: daskload.fingerprint(df, legacy=True) if dask_frame
                                   else journal.legacy_fingerprint(df))
    record = _find(run_id, print_, legacy_print)
    d = record.data
    if d.get("stream"):
        source = d["stream"].get("source") or "an iterable of frames"
        raise errors.InputError(
            f"run {record.run_id} was a streamed load ({source}): its rows' results are in "
            f"{d['stream'].get('results')}, "
            "and it cannot be resumed from a frame; send the rows it did not send again "
            "(upsert_csv(..., start_line=N) for a file)")
    if not journal.same_print(d["fingerprint"], print_, legacy_print):
        raise errors.InputError(f"this frame is not the one run {record.run_id} sent (its "
                                "values, index or columns differ); give that frame")
    org = org or default_org()
    if not journal.same_org(d, org):
        raise errors.InputError(f"run {record.run_id} ran on {d['org']['instance_url']}, not "
                                f"{org.instance_url}: connect to that org, or pass org=")
    options = dict(d["options"])
    lock_retries = options.pop("lock_retries", 2)
    # A run that looked its records up sent what that lookup found, which the journal
    # kept: asking the org again now would find the run's own writes.
    only_changed = options.pop("only_changed", False)
    undoable = options.pop("undoable", False)
    since = options.pop("if_unmodified_since", None)
    external_id = d["key"] if d["operation"] == "upsert" else None
    if dask_frame:
        plan, parts = daskload.make_plan(org, df, d["sobject"], d["operation"], external_id,
                                         plan_stage.LoadOptions(**options))
    else:
        plan = plan_stage.make_plan(org, df, d["sobject"], d["operation"], external_id,
                                    plan_stage.LoadOptions(**options))
    plan.options.only_changed = only_changed
    plan.options.undoable = undoable
    plan.options.if_unmodified_since = (None if since is None
                                        else plan_stage.changes.parse_since(since, "since"))
    if d.get("changes"):
        table = journal.load_changes(record.run_id)
        if table is None:
            raise errors.InputError(f"run {record.run_id}'s record of what it found in the org "
                                    f"({record.run_id}.changes.parquet) is gone, so its rows "
                                    "cannot be matched to what was sent")
        plan.changes = plan_stage.changes.ChangeSet.from_table(
            table, plan_stage.changes.comparable_columns(plan.sent_text.columns, plan.fields,
                                                         plan.key))
        plan.hold_back(plan.changes)
    bounds = [(c.positions.start, c.positions.stop) for c in plan.chunks]
    recorded = [(j["start"], j["stop"]) for j in d["jobs"][:len(d["rounds"][0]["jobs"])]]
    held = {k: v[0].tolist() for k, v in plan.held.items()}
    if (bounds != recorded or plan.invalid_positions.tolist() != d["skipped"]
            or held != d.get("held", {})):
        raise errors.InputError(
            f"the frame no longer plans into run {record.run_id}'s jobs (has the object's "
            "describe changed?), so its results cannot be matched to the rows")
    run = Run(plan, reporter=reporter_for(progress), lock_retries=lock_retries,
              fingerprint=print_, run_id=record.run_id)
    run.record = record
    _attach(run, record)
    run.emit("run_started")
    if wait:
        run.wait(timeout)
    else:
        run.start_waiting_in_background()
    if dask_frame:
        return daskload.outcome_frame(run.result(), parts, df.divisions)
    return run.result()


def _find(run_id: str | None, print_: str, legacy_print: Callable[[], str]) -> journal.Record:
    if run_id is not None:
        try:
            return journal.load(run_id)
        except KeyError:
            raise errors.InputError(f"the journal ({journal.journal_dir()}) has no run "
                                    f"{run_id!r}; sfb.runs() lists them") from None
    for record in journal.records():
        if journal.same_print(record.data.get("fingerprint"), print_, legacy_print):
            return record
    raise errors.InputError(f"the journal ({journal.journal_dir()}) has no run of this "
                            "frame; sfb.runs() lists the runs it has")


def _attach(run: Run, record: journal.Record) -> None:
    """The record's jobs onto the run's outcomes (follow-up rounds rebuilt as recorded)."""
    entries = record.data["jobs"]
    for extra in record.data["rounds"][1:]:
        rows = np.asarray(extra["rows"], np.int64)
        run.add_round(rows)
        expected = [(entries[j]["start"], entries[j]["stop"]) for j in extra["jobs"]]
        got = [(run.chunks[j].positions.start, run.chunks[j].positions.stop)
               for j in run.rounds[-1][1]]
        if got != expected:
            raise errors.InputError(f"run {record.run_id}'s follow-up jobs no longer match "
                                    "its rows")
    for i, entry in enumerate(entries):
        outcome = run.outcomes[i]
        outcome.job_id = entry.get("job_id")
        if outcome.job_id is None:
            outcome.error = ("NOT_SENT", "not sent: the run stopped before this job was "
                             "created; res.retry() sends these rows")
            continue
        if entry.get("stage") == "created":
            # Its upload or close may have happened after the record was written: the
            # org's state says which. An Open job was never processed.
            try:
                info = jobs.get(run.org, outcome.job_id, run.retry)
            except errors.SFBulkError as e:
                run._record(e, i)
                outcome.sent, outcome.finished = True, False
                outcome.error = ("NOT_KNOWN_YET", f"{e}; res.wait() asks the org again")
                continue
            if info.state == "Open":
                try:
                    run.infos[i] = jobs.abort(run.org, outcome.job_id, run.retry)
                except errors.SFBulkError:
                    pass  # never closed, it is never processed: it expires
                outcome.error = ("NOT_SENT", "not sent: the run stopped before this job was "
                                 "closed; res.retry() sends these rows")
                continue
            run.infos[i] = info
        outcome.sent, outcome.finished = True, False
