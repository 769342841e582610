"""Undo a load: put back the values a run changed and delete the records it created.

    res = sfb.upsert_df(df, "Account", KEY, only_changed=True)  # or undoable=True
    res.undo()                     # or, after a kernel restart, sfb.undo(res.run_id)

What a run changed comes from its journal: a run that looked its records up before
sending (only_changed, if_unmodified_since, undoable) kept their values in
``<run>.changes.parquet``; which rows it updated and which records it created, from its
jobs' result files in the org (kept there for 7 days). So undo needs no frame. A record
modified again after the run ended is not touched (its row comes back ``refused``, with
when), unless ``force=True``. An insert run is undone by deleting what it created. A
delete run cannot be undone: the Bulk API has no undelete.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import changes, errors, jobs, journal, memory, results
from .org import Org, default_org
from .tables import table_html

_CLEAR = changes.CLEAR


@dataclass
class UndoResult:
    """What undo did, one row per record (``frame``): ``row`` (the run's input row, when
    known), ``Id``, ``action`` (restore / delete), ``status`` (restored, deleted, refused,
    failed), ``message``. ``restored`` and ``deleted``: the BulkResults of its two loads."""

    run_id: str
    frame: pd.DataFrame
    restored: Any = None
    deleted: Any = None

    @property
    def ok(self) -> bool:
        return bool(self.frame["status"].isin(["restored", "deleted"]).all())

    @property
    def counts(self) -> pd.Series:
        return self.frame["status"].value_counts()

    def _headline(self) -> str:
        counts = ", ".join(f"{n:,} {s}" for s, n in self.counts.items()) or "nothing to undo"
        return f"undo of run {self.run_id}: {counts}"

    def __repr__(self) -> str:
        lines = [f"<UndoResult {self._headline()}>"]
        refused = self.frame[self.frame["status"] != self.frame["action"].map(
            {"restore": "restored", "delete": "deleted"})]
        for r in refused.head(5).itertuples():
            lines.append(f"  {r.Id} {r.status}: {r.message}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        bad = self.frame[~self.frame["status"].isin(["restored", "deleted"])]
        parts = ['<div class="sfbulk-undo" style="max-width:100%;overflow:hidden">',
                 f"<b>UndoResult</b>: {html.escape(self._headline())}"]
        if len(bad):
            parts.append(table_html(bad.head(10), fit=True))
        parts.append("</div>")
        return "".join(parts)


@memory.lean()
def undo(run_id: str, *, org: Org | None = None, force: bool = False,
         progress: Any = "auto", labels: pd.Index | None = None) -> UndoResult:
    """Undo run ``run_id`` (see the module docstring). ``labels``: the run's input index,
    to name rows by label (res.undo() passes it)."""
    if not isinstance(force, (bool, np.bool_)):
        raise errors.InputError(f"force must be True or False, not {force!r}")
    try:
        record = journal.load(run_id)
    except KeyError:
        raise errors.InputError(f"the journal ({journal.journal_dir()}) has no run "
                                f"{run_id!r}; sfb.runs() lists them") from None
    d = record.data
    org = org or default_org()
    if not journal.same_org(d, org):
        raise errors.InputError(f"run {run_id} ran on {d['org']['instance_url']}, not "
                                f"{org.instance_url}: connect to that org, or pass org=")
    operation, sobject = d["operation"], d["sobject"]
    if operation in ("delete", "hardDelete"):
        raise errors.InputError(f"run {run_id} deleted records, and a delete cannot be undone "
                                "with the Bulk API (it has no undelete); soft-deleted records "
                                "can be restored from the org's Recycle Bin for 15 days")
    if d.get("state") != journal.DONE:
        raise errors.InputError(f"run {run_id} has not finished, so what it changed is not "
                                "known yet: res.wait() (or sfb.resume) first, then undo")
    if d.get("undone") and not force:
        raise errors.InputError(f"run {run_id} was undone already ({d['undone']}); undoing "
                                "again would put back the same values: force=True to do it")
    table = journal.load_changes(run_id) if d.get("changes") else None
    if operation != "insert" and table is None:
        raise errors.InputError(
            f"run {run_id} kept no record of the values it changed, so they cannot be put "
            f"back: a load is undoable when it looks its records up first (undoable=True, "
            f"only_changed=True or if_unmodified_since=)")
    written = _written(org, record)
    created = written[written["created"]]
    updated = set(written.loc[~written["created"], "Id"])
    rows = []
    restore = None
    if table is not None:
        change_set = changes.ChangeSet.from_table(table, changes.ChangeSet.compared_of(table))
        restore, refused = _restore_frame(org, sobject, change_set, updated,
                                          pd.Timestamp(d["finished"]), force)
        rows += refused
    restored = deleted = None
    if restore is not None and len(restore):
        from .api import update_df

        restored = update_df(restore.drop(columns=["__input"]), sobject, org=org,
                             progress=progress, force=True)
        status = restored.frame
        for input_, (_, r) in zip(restore["__input"], status.iterrows()):
            ok = r["sf_status"] == "updated"
            rows.append({"input": input_, "Id": r["Id"], "action": "restore",
                         "status": "restored" if ok else "failed",
                         "message": None if ok else r["sf_error_message"]})
    if len(created):
        from .api import delete_df

        deleted = delete_df(created["Id"].tolist(), sobject, org=org, progress=progress,
                            force=True)
        for id_, (_, r) in zip(created["Id"], deleted.frame.iterrows()):
            ok = r["sf_status"] == "deleted"
            rows.append({"input": None, "Id": id_, "action": "delete",
                         "status": "deleted" if ok else "failed",
                         "message": None if ok else r["sf_error_message"]})
    frame = pd.DataFrame(rows, columns=["input", "Id", "action", "status", "message"])
    if labels is not None:
        known = frame["input"].notna()
        frame["row"] = pd.Series([labels[int(i)] if ok else None
                                  for i, ok in zip(frame["input"], known)], dtype=object)
    else:
        frame["row"] = frame["input"]
    frame = frame[["row", "Id", "action", "status", "message"]].astype(
        {"Id": "string", "action": "string", "status": "string", "message": "string"})
    with record._lock:
        record.data["undone"] = journal._now()
    record.save()
    return UndoResult(run_id, frame, restored, deleted)


def _written(org: Org, record: journal.Record) -> pd.DataFrame:
    """The records the run's jobs wrote: Id, and whether the row created it."""
    found = []
    for entry in record.data["jobs"]:
        if not entry.get("job_id") or entry.get("stage") != "finished":
            continue
        frame = jobs.results(org, entry["job_id"], "successfulResults",
                             parse=results.parse_result_csv)
        if len(frame):
            found.append(pd.DataFrame({
                "Id": frame["sf__Id"].astype(str).to_numpy(),
                "created": frame["sf__Created"].astype(str).str.lower().eq("true").to_numpy()}))
    if not found:
        return pd.DataFrame({"Id": pd.Series([], dtype=object),
                             "created": pd.Series([], dtype=bool)})
    return pd.concat(found, ignore_index=True)


def _restore_frame(org: Org, sobject: str, change_set: changes.ChangeSet, updated: set[str],
                   finished: pd.Timestamp, force: bool) -> tuple[pd.DataFrame, list[dict]]:
    """The update that puts back the run's changed cells (Id, the fields: the old value,
    #N/A to clear, blank to leave), and the rows refused for being modified since."""
    ids18 = results._id18_upper(pa.array([str(i) for i in change_set.ids], pa.large_string()))
    wrote = set(results._id18_upper(pa.array(sorted(updated), pa.large_string())).to_pylist())
    mine = np.array([i in wrote for i in ids18.to_pylist()], bool) & change_set.changed.any(axis=1)
    picked = np.flatnonzero(mine)
    refused: list[dict] = []
    if not len(picked):
        return pd.DataFrame(), refused
    now = changes.fetch_current(org, sobject, "Id", [str(change_set.ids[i]) for i in picked], [])
    modified = dict(zip(results._id18_upper(now.column("Id").combine_chunks()).to_pylist(),
                        changes.modified_times(now.column("LastModifiedDate").combine_chunks())))
    end = np.datetime64(finished.tz_convert(None).to_datetime64(), "ns")
    keep = []
    for i in picked:
        at = modified.get(ids18[int(i)].as_py())
        if at is None:
            refused.append({"input": change_set.inputs[i], "Id": change_set.ids[i],
                            "action": "restore", "status": "refused",
                            "message": "the record is gone from the org (deleted since?)"})
        elif at > end and not force:
            refused.append({"input": change_set.inputs[i], "Id": change_set.ids[i],
                            "action": "restore", "status": "refused",
                            "message": f"the record was modified at {pd.Timestamp(at).isoformat()}Z, "
                                       f"after the run ended: undo would overwrite that edit "
                                       "(force=True to do it anyway)"})
        else:
            keep.append(i)
    columns: dict[str, Any] = {"Id": [str(change_set.ids[i]) for i in keep]}
    for j, compared in enumerate(change_set.compared):
        if not change_set.changed[keep, j].any():
            continue
        before = change_set.before[j].to_pylist()
        values = []
        for i in keep:
            if not change_set.changed[i, j]:
                values.append("")  # not changed by the run: leave it
            elif before[i] is None:
                values.append(_CLEAR)
            else:
                values.append(_restorable(before[i], compared.field))
        columns[compared.path] = values
    frame = pd.DataFrame(columns, dtype=object)
    frame["__input"] = [change_set.inputs[i] for i in keep]
    return frame, refused


def _restorable(text: str, field: dict) -> str:
    """A value as the org gave it, in the form a load sends (datetimes in UTC with Z)."""
    if field.get("type") == "datetime":
        return pd.Timestamp(text).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return text
