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
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

KEEP_DAYS = 7
RUNNING, DONE = "running", "done"
# How far a job got, in order: a job past "uploaded" may have written rows.
STAGES = ("created", "uploaded", "closed", "finished")


def journal_dir() -> Path:
    if os.environ.get("SFBULK_NB_JOURNAL"):
        return Path(os.environ["SFBULK_NB_JOURNAL"])
    import platformdirs

    return Path(platformdirs.user_data_dir("sfbulk_nb")) / "runs"


# Fingerprints written from version 2 on start with this; older records hold 32 hex digits.
PRINT_VERSION = "2:"


def fingerprint(df: pd.DataFrame) -> str:
    """A hash of a frame's values, index and column names: the same frame (its values)
    gives the same text, in any process.

    Each column's values are hashed as Arrow lays them out (value bytes, lengths and null
    positions, fed to SHA-256 without a copy): ~0.13 s for 1M rows x 8 columns, where
    pandas' per-value hash took ~0.8 s (a tenth of a whole upsert's CPU). Columns Arrow
    cannot hold go through pandas' hash, and cells pandas cannot hash through their reprs.
    """
    digest = hashlib.sha256(repr([PRINT_VERSION, [str(c) for c in df.columns],
                                  df.shape]).encode())
    index = df.index
    if isinstance(index, pd.RangeIndex):
        digest.update(repr(("range", index.start, index.stop, index.step)).encode())
    else:
        _hash_values(digest, index)
    for i in range(df.shape[1]):
        _hash_values(digest, df.iloc[:, i])
    return PRINT_VERSION + digest.hexdigest()[:32]


def legacy_fingerprint(df: pd.DataFrame) -> str:
    """The fingerprint versions before PRINT_VERSION wrote: kept so that their unfinished
    runs are still found (and not sent twice) after an upgrade."""
    digest = hashlib.sha256(repr([str(c) for c in df.columns]).encode())
    digest.update(repr(df.shape).encode())
    try:
        hashes = pd.util.hash_pandas_object(df, index=True)
    except (TypeError, ValueError, UnicodeError):
        for row in df.itertuples():
            digest.update(repr(row).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]
    digest.update(np.ascontiguousarray(hashes.to_numpy(np.uint64)).tobytes())
    return digest.hexdigest()[:32]


def same_print(recorded: str | None, print_: str, legacy: Callable[[], str]) -> bool:
    """Whether a record's fingerprint is of the frame whose fingerprint is ``print_``;
    ``legacy`` gives the frame's legacy_fingerprint, worked out only for an old record."""
    if recorded == print_:
        return True
    return (bool(recorded) and not recorded.startswith(PRINT_VERSION) and ":" not in recorded
            and recorded == legacy())


def _hash_values(digest: Any, values: pd.Series | pd.Index) -> None:
    try:
        _hash_arrow(digest, pa.array(values, from_pandas=True))
        return
    except (pa.ArrowException, TypeError, ValueError):
        pass  # objects of mixed kinds, categories, nested values: pandas' hash below
    digest.update(b"pandas")
    try:
        hashes = pd.util.hash_pandas_object(values, index=False).to_numpy(np.uint64)
        digest.update(np.ascontiguousarray(hashes).tobytes())
    except (TypeError, ValueError, UnicodeError):
        # Cells pandas cannot hash (lists, lone surrogates): their reprs, one by one.
        for value in values:
            digest.update(repr(value).encode("utf-8", "surrogatepass"))
            digest.update(b"\0")


def _hash_arrow(digest: Any, array: pa.Array | pa.ChunkedArray) -> None:
    """An Arrow column's type, then per chunk its null positions and its values' bytes
    (texts: their lengths and bytes). Values under nulls are left out (Arrow leaves them
    undefined). Raises TypeError for types it does not lay out here."""
    digest.update(str(array.type).encode())
    kind = array.type
    texts = (pa.types.is_string(kind) or pa.types.is_large_string(kind)
             or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))
    flat = not texts and not pa.types.is_boolean(kind) and kind.num_fields == 0 and \
        not pa.types.is_dictionary(kind) and kind.bit_width % 8 == 0
    if not (texts or flat or pa.types.is_boolean(kind)):
        raise TypeError(f"no flat layout for {kind}")
    for chunk in array.chunks if isinstance(array, pa.ChunkedArray) else [array]:
        nulls = chunk.null_count
        digest.update(f"|{len(chunk)}|{nulls}|".encode())
        if not len(chunk):
            continue
        if nulls:
            digest.update(np.asarray(chunk.is_null()).tobytes())
        if pa.types.is_boolean(kind):
            digest.update(np.asarray(chunk.fill_null(False) if nulls else chunk).tobytes())
        elif texts:
            lengths = pc.binary_length(chunk)
            digest.update(np.asarray(lengths.fill_null(0) if nulls else lengths).tobytes())
            wide = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
            offsets = np.frombuffer(chunk.buffers()[1], np.int64 if wide else np.int32)
            first, last = offsets[chunk.offset], offsets[chunk.offset + len(chunk)]
            if last > first:
                digest.update(memoryview(chunk.buffers()[2])[int(first):int(last)])
        else:
            width = kind.bit_width // 8
            raw = memoryview(chunk.buffers()[1])[chunk.offset * width:
                                                 (chunk.offset + len(chunk)) * width]
            if nulls:
                cells = np.frombuffer(raw, np.uint8).reshape(len(chunk), width).copy()
                cells[np.asarray(chunk.is_null())] = 0
                raw = memoryview(cells).cast("B")
            digest.update(raw)


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


def records(state: str | None = None) -> list[Record]:
    """Every record in the journal (or only those in ``state``), newest first."""
    folder = journal_dir()
    found = []
    for path in folder.glob("r-*.json") if folder.is_dir() else ():
        try:
            text = path.read_text(encoding="utf-8")
            # Records are written by json.dumps(indent=1): one that cannot be in the state
            # asked for is not parsed (a week of loads is hundreds of records).
            if state is not None and f'"state": {json.dumps(state)}' not in text:
                continue
            record = Record(path, json.loads(text))
        except (OSError, ValueError):
            continue  # a record being replaced, or damaged: not a run to list
        if state is None or record.data.get("state") == state:
            found.append(record)
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
