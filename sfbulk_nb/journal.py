"""The run journal: what each load sent where, on disk, so that a kernel restart or a crash
loses no run.

    sfb.runs()                      # recent runs: id, when, org, object, rows, state
    res = sfb.resume("r-...", df)   # re-attach to a run, rebuild its aligned result
    res = sfb.resume(df=df)         # the latest run of this frame

A run's record is written before its first job is created, and again whenever a job is
created, has its data uploaded or closed, or finishes. It holds the org (its URL, never a
token), the object, operation, key and options, a fingerprint of the input frame, and for
each job its id, how far it got and which rows it carries (ranges of positions). It holds
no data of the frame: resuming needs the same frame again, and refuses another (the
fingerprint). A run that looked its records up before sending (only_changed,
if_unmodified_since) also keeps what it found, in ``<run>.changes.parquet`` beside the
record: the org's values of the cells it compared (the before-values undo restores), and
which cells it sent.

Records live in ``$SFBULK_NB_JOURNAL`` or the user data directory
(``~/.local/share/sfbulk_nb/runs``), one JSON file per run, private to the user (0600 in a
0700 folder), replaced atomically; records older than `KEEP_DAYS` days (a Bulk job's own
lifetime) are dropped when a run starts.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KEEP_DAYS = 7
RUNNING, DONE = "running", "done"
# How far a job got, in order: a job past "uploaded" may have written rows.
STAGES = ("created", "uploaded", "closed", "finished")


def journal_dir() -> Path:
    if os.environ.get("SFBULK_NB_JOURNAL"):
        return Path(os.environ["SFBULK_NB_JOURNAL"])
    import platformdirs

    return Path(platformdirs.user_data_dir("sfbulk_nb")) / "runs"


def fingerprint(df: pd.DataFrame) -> str:
    """A hash of a frame's values, index and column names: the same frame (its values)
    gives the same text, in any process."""
    digest = hashlib.sha256(repr([str(c) for c in df.columns]).encode())
    digest.update(repr(df.shape).encode())
    try:
        hashes = pd.util.hash_pandas_object(df, index=True)
    except (TypeError, ValueError, UnicodeError):
        # Cells pandas cannot hash (lists, lone surrogates): their reprs, one by one.
        for row in df.itertuples():
            digest.update(repr(row).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]
    digest.update(np.ascontiguousarray(hashes.to_numpy(np.uint64)).tobytes())
    return digest.hexdigest()[:32]


def new_run_id() -> str:
    return time.strftime("r-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


class Record:
    """One run's journal record: a dict kept in sync with its file."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data
        self._lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    def save(self) -> None:
        with self._lock:
            _write_private(self.path, json.dumps(self.data, indent=1))

    def job(self, index: int, **fields: Any) -> None:
        """Record what job ``index`` of the run has reached (and save)."""
        with self._lock:
            self.data["jobs"][index].update(fields)
        self.save()

    def add_jobs(self, jobs: list[dict[str, Any]], round_rows: list[int] | None) -> None:
        with self._lock:
            start = len(self.data["jobs"])
            self.data["jobs"] += jobs
            self.data["rounds"].append({"rows": round_rows,
                                        "jobs": list(range(start, len(self.data["jobs"])))})
        self.save()

    def finish(self) -> None:
        with self._lock:
            self.data["state"] = DONE
            self.data["finished"] = _now()
        self.save()


def start(run_id: str, *, org: Any, sobject: str, operation: str, key: str | None,
          options: dict[str, Any], fingerprint_text: str, rows: int, skipped: list[int],
          chunks: list[tuple[int, int]], held: dict[str, list[int]] | None = None,
          changes: Any = None) -> Record:
    """The record of a new run, saved. ``changes``: the lookup's ChangeSet as an Arrow
    table, kept beside the record (written first: a record that names it has it)."""
    folder = journal_dir()
    _sweep(folder)
    if changes is not None:
        _write_private_table(folder / f"{run_id}.changes.parquet", changes)
    data = {
        "run_id": run_id, "created": _now(), "state": RUNNING, "finished": None,
        "org": {"instance_url": org.instance_url, "kind": org.kind, "label": org.label,
                "key": org.org_key},
        "sobject": sobject, "operation": operation, "key": key, "options": options,
        "fingerprint": fingerprint_text, "rows": rows, "skipped": skipped,
        "held": held or {}, "changes": changes is not None,
        "jobs": [{"job_id": None, "stage": None, "start": a, "stop": b} for a, b in chunks],
        "rounds": [{"rows": None, "jobs": list(range(len(chunks)))}],
    }
    record = Record(folder / f"{run_id}.json", data)
    record.save()
    return record


def same_org(data: dict[str, Any], org: Any) -> bool:
    """Whether a record's run ran on ``org``: the same key (a local org's file, whatever its
    port now), or the same URL (one connected by URL and token has no file to go by)."""
    saved = data.get("org", {})
    return ((saved.get("key") is not None and saved["key"] == org.org_key)
            or saved.get("instance_url") == org.instance_url)


def load(run_id: str) -> Record:
    path = journal_dir() / f"{run_id}.json"
    try:
        return Record(path, json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise KeyError(run_id) from None


def load_changes(run_id: str):
    """The Arrow table of the lookup a run kept (see start), or None."""
    import pyarrow.parquet as pq

    path = journal_dir() / f"{run_id}.changes.parquet"
    return pq.read_table(path) if path.exists() else None


def records() -> list[Record]:
    """Every record in the journal, newest first."""
    folder = journal_dir()
    found = []
    for path in folder.glob("r-*.json") if folder.is_dir() else ():
        try:
            found.append(Record(path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue  # a record being replaced, or damaged: not a run to list
    return sorted(found, key=lambda r: (r.data.get("created") or "", r.run_id), reverse=True)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically (a reader sees the old or the new record, whole), private
    to the user: the journal names the org and the objects a user loads."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_private_table(path: Path, table: Any) -> None:
    """``table`` as Parquet at ``path``, atomically and private to the user (it holds the
    org's values of the records a run changed)."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pq.write_table(table, f)
    os.replace(tmp, path)


def _sweep(folder: Path) -> None:
    """Drop records older than KEEP_DAYS: their jobs, and results, are gone from the org."""
    if not folder.is_dir():
        return
    cutoff = time.time() - KEEP_DAYS * 86_400
    for path in [*folder.glob("r-*.json"), *folder.glob("r-*.changes.parquet")]:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
