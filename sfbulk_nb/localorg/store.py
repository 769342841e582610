"""SQLite persistence for the local org: records, jobs, results, tokens and API usage.

One table per object (`"sobj_<Object>"`, one column per describe field) so that later
SOQL can run as SQL over typed columns. All values reach SQLite as bound parameters; the
only names spliced into SQL are object and field names, and those come from the catalog
and are checked against `_NAME_RE` first.

One connection, shared by the HTTP threads and the job worker under a lock: SQLite
serialises writers anyway, and a single connection keeps transactions simple.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import tempfile
import threading
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

from . import ids, values
from .catalog import SYSTEM_FIELDS, Catalog, SObject

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# SQLite allows 32766 bound parameters; stay well below so `IN (...)` lists stay cheap.
PARAM_CHUNK = 900
UPLOAD_PIECE = 1 << 20  # bytes of an upload in each row of job_upload_pieces

JOB_COLUMNS = (
    "id", "kind", "operation", "object", "createdById", "createdDate", "systemModstamp",
    "state", "externalIdFieldName", "concurrencyMode", "contentType", "apiVersion",
    "jobType", "lineEnding", "columnDelimiter", "numberRecordsProcessed",
    "numberRecordsFailed", "retries", "totalProcessingTime", "apiActiveProcessingTime",
    "apexProcessingTime", "errorMessage", "assignmentRuleId", "query",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (prefix TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, user_id TEXT NOT NULL, issued_at REAL NOT NULL,
    expires_at REAL NOT NULL, refresh_token TEXT);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token TEXT PRIMARY KEY, user_id TEXT NOT NULL, issued_at REAL NOT NULL);
-- What each daily allowance (limits.py) has used, per UTC day. (Files of older versions
-- counted API calls in a table api_usage: that day's count starts again here.)
CREATE TABLE IF NOT EXISTS daily_usage (
    day TEXT NOT NULL, name TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (day, name));
DROP TABLE IF EXISTS api_usage;
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, operation TEXT, object TEXT,
    createdById TEXT, createdDate TEXT, systemModstamp TEXT, state TEXT,
    externalIdFieldName TEXT, concurrencyMode TEXT, contentType TEXT, apiVersion REAL,
    jobType TEXT, lineEnding TEXT, columnDelimiter TEXT,
    numberRecordsProcessed INTEGER DEFAULT 0, numberRecordsFailed INTEGER DEFAULT 0,
    retries INTEGER DEFAULT 0, totalProcessingTime INTEGER DEFAULT 0,
    apiActiveProcessingTime INTEGER DEFAULT 0, apexProcessingTime INTEGER DEFAULT 0,
    errorMessage TEXT, assignmentRuleId TEXT, query TEXT,
    data BLOB, uploaded INTEGER DEFAULT 0, rowsProcessedUpTo INTEGER DEFAULT 0,
    resultHeader TEXT);
-- An upload lives apart from its job row: SQLite rewrites a whole row on every UPDATE and
-- walks a big value's overflow pages to read the columns after it, so a job row holding
-- 70 MB of CSV made every counter update and every status read cost 70 MB of I/O.
-- (jobs.data is only read for files written before this table existed.)
CREATE TABLE IF NOT EXISTS job_uploads (job_id TEXT PRIMARY KEY, data BLOB NOT NULL);
-- Where uploads are kept now, in pieces of UPLOAD_PIECE bytes: a job reads its upload a
-- piece at a time, each found by its key. (One blob read in pieces walks its chain of
-- overflow pages from the start on every read: 0.2 s for each pass over 70 MB, where a
-- job reads its upload three times. job_uploads is only read for files written before.)
CREATE TABLE IF NOT EXISTS job_upload_pieces (
    job_id TEXT NOT NULL, piece INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (job_id, piece));
CREATE TABLE IF NOT EXISTS job_results (
    job_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (job_id, kind, seq));
"""


def make_private(path: Path, mode: int) -> None:
    """Take every permission but the owner's (`mode`: PRIVATE_FILE or PRIVATE_DIR) from a
    file or folder of the org, if it exists and is ours.

    The org file holds the password, client secret, live tokens and every record loaded;
    files made by older versions carry the umask's permissions, often world-readable. A
    file someone else owns is left alone: chmod would fail on it anyway. (On Windows chmod
    only sets the read-only flag: nothing to do.)"""
    if os.name != "posix":
        return
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    current = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.getuid() and current & ~mode:
        os.chmod(path, current & mode)


def quote_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"not a valid Salesforce API name: {name!r}")
    return f'"{name}"'


def table_name(obj: SObject) -> str:
    return quote_name("sobj_" + obj.name)


def case_insensitive_match(obj: SObject, field_name: str) -> bool:
    """Whether matching on this key ignores case.

    Ids and standard lookup fields (Name, Email) match regardless of case; a custom
    external id only when it is unique and declared case-insensitive (Apex "Upserting
    Records"); otherwise matching is exact.
    """
    f = obj.field(field_name)
    if f is None or f.name == "Id" or not f.flag("custom"):
        return True
    return f.flag("unique") and not f.flag("caseSensitive")


class Store:
    """The org's SQLite file. Thread-safe through one lock around one connection."""

    def __init__(self, path: str | Path, catalog: Catalog):
        self.path = str(path)
        self.catalog = catalog
        self.lock = threading.RLock()
        # Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files
        # it creates the database file's permissions.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
        for suffix in ("", "-wal", "-shm"):
            make_private(Path(self.path + suffix), PRIVATE_FILE)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL without fsync: a crash of the process (kernel restart, Ctrl-C) loses nothing,
        # only an OS crash or power cut could; a local test org trades that for speed.
        self.conn.execute("PRAGMA synchronous=OFF")
        # Upserts probe the key indexes of big tables: keep them in memory (64 MB).
        self.conn.execute("PRAGMA cache_size=-65536")
        self.conn.executescript(_SCHEMA)
        # Files written before refresh tokens existed have no tokens.refresh_token column.
        if "refresh_token" not in {r[1] for r in self.conn.execute("PRAGMA table_info(tokens)")}:
            self.conn.execute("ALTER TABLE tokens ADD COLUMN refresh_token TEXT")
        self._indexed: set[tuple[str, str]] = set()
        for obj in catalog:
            self.ensure_table(obj)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # -- plumbing -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; inside another one (same thread: the lock is held), a
        savepoint, so a caller can make several writes all-or-none (sObject collections)."""
        with self.lock:
            if self.conn.in_transaction:
                name = f"nested_{id(object())}"
                self.conn.execute(f"SAVEPOINT {name}")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                    raise
                self.conn.execute(f"RELEASE {name}")
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            cur = self.conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.lock:
            return self.conn.execute(sql, params).rowcount

    # -- meta and ids ---------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def allocate_numbers(self, prefix: str, count: int) -> int:
        """Reserve `count` record numbers for a key prefix; returns the first."""
        with self.lock:
            self.conn.execute("INSERT OR IGNORE INTO counters(prefix, next) VALUES (?, 1)",
                              (prefix,))
            return self.conn.execute(
                "UPDATE counters SET next = next + ? WHERE prefix = ? RETURNING next - ?",
                (count, prefix, count)).fetchone()[0]

    make_ids = staticmethod(ids.make_ids)

    def allocate_ids(self, prefix: str, count: int) -> list[str]:
        """`count` fresh 18-character ids with the given key prefix."""
        return ids.make_ids(prefix, self.allocate_numbers(prefix, count), count)

    # -- object tables --------------------------------------------------------------

    def ensure_table(self, obj: SObject) -> None:
        """Create the object's table, or add columns for fields new in its describe."""
        table = table_name(obj)
        with self.lock:
            cols = [f"{quote_name(f.name)} {values.sql_type(f)}" for f in obj.data_fields]
            # WITHOUT ROWID: records are stored in the Id index itself, one B-tree less to
            # write per insert (measured: 8.3 -> 5.1 us a row). Rows holding very long
            # text read a little slower this way; record rows are mostly small. (Tables
            # made by older versions keep their rowid.)
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (Id TEXT PRIMARY KEY, "
                "IsDeleted INTEGER NOT NULL DEFAULT 0, CreatedDate TEXT, CreatedById TEXT, "
                "LastModifiedDate TEXT, LastModifiedById TEXT, SystemModstamp TEXT"
                + "".join(", " + c for c in cols) + ") WITHOUT ROWID")
            have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
            for f in obj.data_fields:
                if f.name not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN "
                                      f"{quote_name(f.name)} {values.sql_type(f)}")
            for f in obj.data_fields:
                # Upsert keys and unique fields are probed on every load; standard lookup
                # fields (Name, Email) only by relationship columns, so their index is made
                # on first use (see lookup) and plain loads do not pay for it.
                if f.flag("externalId") or f.flag("unique"):
                    self._ensure_index(obj, f.name)

    def _ensure_index(self, obj: SObject, field_name: str) -> None:
        key = (obj.name, field_name)
        if key in self._indexed:
            return
        collate = " COLLATE NOCASE" if case_insensitive_match(obj, field_name) else ""
        index = quote_name(f"ix_{obj.name}_{field_name}")
        with self.lock:
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table_name(obj)} "
                              f"({quote_name(field_name)}{collate})")
        self._indexed.add(key)

    def column_names(self, obj: SObject) -> list[str]:
        return list(SYSTEM_FIELDS) + [f.name for f in obj.data_fields]

    def lookup(self, obj: SObject, field_name: str, keys: Iterable[str], *,
               include_deleted: bool = False) -> dict[str, list[tuple[str, int]]]:
        """Map each key (case-folded when the field matches without case) to the
        `(Id, IsDeleted)` of every record holding it.

        Ids are looked up exactly, on the primary key: callers pass them in canonical
        18-character form (ids.normalize), which is what makes them case-insensitive."""
        fold, rows = self._lookup_rows(obj, field_name, keys, include_deleted)
        found: dict[str, list[tuple[str, int]]] = {}
        for key, rid, deleted in rows:
            found.setdefault(key.lower() if fold else key, []).append((rid, deleted))
        return found

    def record_ids(self, obj: SObject, field_name: str,
                   keys: Iterable[str]) -> dict[str, list[str]]:
        """As `lookup`, live records only, mapping each key to their Ids: an upsert's
        matching, built with C-speed builtins when no key is held twice (the usual case)."""
        fold, rows = self._lookup_rows(obj, field_name, keys, False)
        found = list(map(str.lower, map(itemgetter(0), rows)) if fold
                     else map(itemgetter(0), rows))
        if len(set(found)) == len(found):
            return dict(zip(found, map(list, zip(map(itemgetter(1), rows)))))
        index: dict[str, list[str]] = {}
        for key, (_, rid, _) in zip(found, rows):
            index.setdefault(key, []).append(rid)
        return index

    def _lookup_rows(self, obj: SObject, field_name: str, keys: Iterable[str],
                     include_deleted: bool) -> tuple[bool, list[tuple[str, str, int]]]:
        """Whether the field matches without case, and the `(key, Id, IsDeleted)` of every
        record holding one of `keys`."""
        name = obj.field(field_name).name
        fold = name != "Id" and case_insensitive_match(obj, name)
        if name != "Id":
            self._ensure_index(obj, name)
        col = quote_name(name)
        collate = " COLLATE NOCASE" if fold else ""
        where_deleted = "" if include_deleted else " AND IsDeleted = 0"
        rows: list[tuple[str, str, int]] = []
        unique_keys = list(dict.fromkeys(keys))
        with self.lock:
            for start in range(0, len(unique_keys), PARAM_CHUNK):
                part = unique_keys[start:start + PARAM_CHUNK]
                sql = (f"SELECT {col}, Id, IsDeleted FROM {table_name(obj)} WHERE {col}{collate} "
                       f"IN ({','.join('?' * len(part))}){where_deleted}")
                rows += self.conn.execute(sql, part).fetchall()
        return fold, rows

    def get_record(self, obj: SObject, record_id: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM {table_name(obj)} WHERE Id = ?", (record_id,))
        return dict(rows[0]) if rows else None

    def get_fields(self, obj: SObject, record_ids: Sequence[str],
                   fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Some fields of many records at once: Id -> {field: value}."""
        cols = ",".join(quote_name(f) for f in fields)
        out: dict[str, dict[str, Any]] = {}
        with self.lock:
            for start in range(0, len(record_ids), PARAM_CHUNK):
                part = record_ids[start:start + PARAM_CHUNK]
                for row in self.conn.execute(
                        f"SELECT Id, {cols} FROM {table_name(obj)} WHERE Id IN "
                        f"({','.join('?' * len(part))})", part):
                    out[row[0]] = dict(zip(fields, row[1:]))
        return out

    def insert_records(self, conn: sqlite3.Connection, obj: SObject, columns: Sequence[str],
                       rows: Iterable[Sequence[Any]]) -> None:
        cols = ",".join(quote_name(c) for c in columns)
        conn.executemany(f"INSERT INTO {table_name(obj)} ({cols}) VALUES "
                         f"({','.join('?' * len(columns))})", rows)

    def update_records(self, conn: sqlite3.Connection, obj: SObject, columns: Sequence[str],
                       rows: Iterable[Sequence[Any]]) -> None:
        """Rows are the new values for `columns` followed by the record's Id."""
        sets = ",".join(f"{quote_name(c)} = ?" for c in columns)
        conn.executemany(f"UPDATE {table_name(obj)} SET {sets} WHERE Id = ?", rows)

    def delete_records(self, conn: sqlite3.Connection, obj: SObject, record_ids: Sequence[str],
                       *, hard: bool, stamp: str, user_id: str) -> None:
        if hard:
            conn.executemany(f"DELETE FROM {table_name(obj)} WHERE Id = ?",
                             [(i,) for i in record_ids])
        else:
            conn.executemany(
                f"UPDATE {table_name(obj)} SET IsDeleted = 1, LastModifiedDate = ?, "
                "SystemModstamp = ?, LastModifiedById = ? WHERE Id = ?",
                [(stamp, stamp, user_id, i) for i in record_ids])

    def count_records(self, obj: SObject, *, include_deleted: bool = False) -> int:
        where = "" if include_deleted else " WHERE IsDeleted = 0"
        return self.query(f"SELECT COUNT(*) FROM {table_name(obj)}{where}")[0][0]

    # -- jobs -----------------------------------------------------------------------

    def insert_job(self, job: dict[str, Any]) -> None:
        cols = [c for c in JOB_COLUMNS if c in job]
        self.execute(f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                     [job[c] for c in cols])

    def get_job(self, job_id: str, kind: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT {','.join(JOB_COLUMNS)}, uploaded, rowsProcessedUpTo, "
                          "resultHeader FROM jobs WHERE id = ? AND kind = ?", (job_id, kind))
        return dict(rows[0]) if rows else None

    def update_job(self, job_id: str, **changes: Any) -> None:
        """Set columns of a job's row as they are (tests stage a job's state with it)."""
        sets = ",".join(f"{quote_name(k)} = ?" for k in changes)
        self.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*changes.values(), job_id])

    def set_job_state(self, job_id: str, state: str, from_states: Sequence[str],
                      **changes: Any) -> bool:
        """Move a job to `state` (with `changes` to its other columns) only while it is in
        one of `from_states`, atomically; False when it was not."""
        changes = {"state": state, **changes}
        sets = ",".join(f"{quote_name(k)} = ?" for k in changes)
        return self.execute(
            f"UPDATE jobs SET {sets} WHERE id = ? AND state IN "
            f"({','.join('?' * len(from_states))})",
            [*changes.values(), job_id, *from_states]) == 1

    def fail_job(self, job_id: str, message: str) -> None:
        """A job ends Failed whatever its state (the worker met a bug while running it)."""
        self.execute("UPDATE jobs SET state = 'Failed', errorMessage = ? WHERE id = ?",
                     (message, job_id))

    def set_result_header(self, job_id: str, names: Sequence[str]) -> None:
        self.execute("UPDATE jobs SET resultHeader = ? WHERE id = ?",
                     (json.dumps(list(names)), job_id))

    def set_job_retries(self, job_id: str, retries: int) -> None:
        self.execute("UPDATE jobs SET retries = ? WHERE id = ?", (retries, job_id))

    def record_progress(self, conn: sqlite3.Connection, job_id: str, *, processed: int,
                        total_ms: int, stamp: str, failed: int | None = None,
                        rows_up_to: int | None = None, active_ms: int | None = None,
                        only_in_progress: bool = False) -> bool:
        """A job's counters after a batch, in the caller's transaction (the one committing
        the batch's results): `processed` and `failed` rows, the upload's rows done
        (`rows_up_to`, where a resumed job starts again), its processing time and
        `active_ms` more of API-active time. With `only_in_progress`, only while the job is
        InProgress: False when it was aborted (or deleted) meanwhile."""
        changes: dict[str, Any] = {"numberRecordsProcessed": processed}
        if failed is not None:
            changes["numberRecordsFailed"] = failed
        if rows_up_to is not None:
            changes["rowsProcessedUpTo"] = rows_up_to
        changes["totalProcessingTime"] = total_ms
        sets = [f"{k} = ?" for k in changes]
        params = list(changes.values())
        if active_ms is not None:
            sets.append("apiActiveProcessingTime = apiActiveProcessingTime + ?")
            params.append(active_ms)
        sets.append("systemModstamp = ?")
        params += [stamp, job_id]
        where = " AND state = 'InProgress'" if only_in_progress else ""
        return conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?{where}",
                            params).rowcount == 1

    def spool(self) -> BinaryIO:
        """A temporary file beside the org's file, for a request body on its way in: it is
        read whole before it is kept (save_upload), and a 70 MB upload held in memory was
        the server's peak. Unlinked when closed, or by the system if the process dies."""
        return tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(self.path)))

    def save_upload(self, job_id: str, data: bytes | bytearray | BinaryIO, stamp: str) -> None:
        """Keep a job's uploaded data (bytes, or a file read from its start), in pieces,
        and mark the job uploaded, in one transaction. (Each piece is bound as it is:
        SQLite copies a bound blob twice, so binding the upload whole held it three times
        at the server's peak.)"""
        with self.transaction() as conn:
            _delete_uploads(conn, [job_id])
            # An empty upload is one empty piece: the job has data, none of it content.
            conn.executemany(
                "INSERT INTO job_upload_pieces (job_id, piece, data) VALUES (?, ?, ?)",
                ((job_id, k, piece) for k, piece in enumerate(_pieces(data, UPLOAD_PIECE))))
            conn.execute("UPDATE jobs SET uploaded = 1, systemModstamp = ? WHERE id = ?",
                         (stamp, job_id))

    def drop_upload(self, job_id: str) -> None:
        with self.transaction() as conn:
            _delete_uploads(conn, [job_id])

    def upload(self, job_id: str) -> "StoredUpload | bytes | None":
        """A job's uploaded data, to be read a piece at a time (csvfmt.UploadSource); as
        bytes if an older version stored it; None when it has none."""
        size, pieces = self.query("SELECT IFNULL(SUM(length(data)), 0), COUNT(*) FROM "
                                  "job_upload_pieces WHERE job_id = ?", (job_id,))[0]
        if pieces:
            return StoredUpload(self, job_id, size)
        return self._older_upload(job_id)

    def job_data(self, job_id: str) -> bytes | None:
        """A job's uploaded data, whole; None when it has none."""
        pieces = self.query("SELECT data FROM job_upload_pieces WHERE job_id = ? ORDER BY piece",
                            (job_id,))
        if pieces:
            return b"".join(row[0] for row in pieces)
        return self._older_upload(job_id)

    def _older_upload(self, job_id: str) -> bytes | None:
        """An upload where older versions kept it: job_uploads, or earlier still jobs.data."""
        rows = self.query("SELECT data FROM job_uploads WHERE job_id = ?", (job_id,))
        if not rows:
            rows = self.query("SELECT data FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    def upload_piece(self, job_id: str, piece: int) -> bytes:
        rows = self.query("SELECT data FROM job_upload_pieces WHERE job_id = ? AND piece = ?",
                          (job_id, piece))
        if not rows:
            raise LookupError(f"job {job_id} has no upload piece {piece}")
        return rows[0][0]

    def list_jobs(self, kind: str, after_seq: int, limit: int,
                  filters: dict[str, Any]) -> list[dict[str, Any]]:
        where = ["kind = ?", "seq > ?"]
        params: list[Any] = [kind, after_seq]
        for key, value in filters.items():
            where.append(f"{quote_name(key)} = ?")
            params.append(value)
        rows = self.query(f"SELECT seq, {','.join(JOB_COLUMNS)} FROM jobs WHERE "
                          f"{' AND '.join(where)} ORDER BY seq LIMIT ?", [*params, limit])
        return [dict(r) for r in rows]

    def delete_jobs_created_before(self, created_before: str) -> int:
        """Delete every job (of any kind) created before `created_before` (a JobInfo date,
        which sorts as text), with its upload and results, except jobs the worker may be
        running; returns how many."""
        with self.transaction() as conn:
            doomed = [r[0] for r in conn.execute(
                "SELECT id FROM jobs WHERE createdDate < ? AND state NOT IN "
                "('UploadComplete', 'InProgress')", (created_before,))]
            _delete_jobs(conn, doomed)
        return len(doomed)

    def delete_job(self, job_id: str) -> None:
        with self.transaction() as conn:
            _delete_jobs(conn, [job_id])

    def unfinished_jobs(self) -> list[tuple[str, str]]:
        """`(kind, id)` of every job the worker still has to process, oldest first."""
        return [(r[0], r[1]) for r in self.query(
            "SELECT kind, id FROM jobs WHERE state IN ('UploadComplete', 'InProgress') "
            "ORDER BY seq")]

    def add_results(self, conn: sqlite3.Connection, job_id: str, kind: str, seq: int,
                    body: str | bytes) -> None:
        if body:
            data = body.encode("utf-8") if isinstance(body, str) else body
            conn.execute("INSERT INTO job_results(job_id, kind, seq, body) VALUES (?, ?, ?, ?)",
                         (job_id, kind, seq, data))

    def clear_results(self, job_id: str) -> None:
        self.execute("DELETE FROM job_results WHERE job_id = ?", (job_id,))

    def result_chunks(self, job_id: str, kind: str, first: int, end: int
                      ) -> list[tuple[int, bytes]]:
        """`(seq, body)` of the stored pieces that hold items `first` to `end - 1`, for
        results stored in pieces whose seq is the number of their first item."""
        return [(r[0], r[1]) for r in self.query(
            "SELECT seq, body FROM job_results WHERE job_id = ? AND kind = ? AND seq < ? "
            "AND seq >= IFNULL((SELECT MAX(seq) FROM job_results WHERE job_id = ? AND kind = ? "
            "AND seq <= ?), 0) ORDER BY seq", (job_id, kind, end, job_id, kind, first))]

    def result_bodies(self, job_id: str, kind: str) -> list[bytes]:
        return [r[0] for r in self.query(
            "SELECT body FROM job_results WHERE job_id = ? AND kind = ? ORDER BY seq",
            (job_id, kind))]

    # -- tokens and usage -----------------------------------------------------------

    def add_token(self, token: str, user_id: str, issued_at: float, expires_at: float,
                  refresh_token: str | None = None) -> None:
        """An access token; `refresh_token` is the one it was issued for, if any."""
        self.execute("INSERT INTO tokens(token, user_id, issued_at, expires_at, refresh_token) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (token, user_id, issued_at, expires_at, refresh_token))

    def add_refresh_token(self, token: str, user_id: str, issued_at: float) -> None:
        self.execute("INSERT INTO refresh_tokens(token, user_id, issued_at) VALUES (?, ?, ?)",
                     (token, user_id, issued_at))

    def refresh_token_user(self, token: str) -> str | None:
        rows = self.query("SELECT user_id FROM refresh_tokens WHERE token = ?", (token,))
        return rows[0][0] if rows else None

    def revoke_token(self, token: str) -> bool:
        """Revoke an access token, or a refresh token with every access token issued for it.
        False when no such token exists."""
        with self.transaction() as conn:
            gone = conn.execute("DELETE FROM tokens WHERE token = ? OR refresh_token = ?",
                                (token, token)).rowcount
            gone += conn.execute("DELETE FROM refresh_tokens WHERE token = ?", (token,)).rowcount
        return gone > 0

    def token_user(self, token: str, now: float) -> str | None:
        rows = self.query("SELECT user_id FROM tokens WHERE token = ? AND expires_at > ?",
                          (token, now))
        return rows[0][0] if rows else None

    def expire_tokens(self, now: float) -> None:
        self.execute("UPDATE tokens SET expires_at = ? WHERE expires_at > ?", (now, now))

    def take_allowance(self, day: str, name: str, amount: int, maximum: int) -> bool:
        """Use `amount` of allowance `name` on `day` if that keeps it within `maximum`
        (in one transaction: concurrent requests cannot both take the last of it)."""
        with self.transaction() as conn:
            used = self._usage(conn, day, name)
            if used + amount > maximum:
                return False
            conn.execute("INSERT INTO daily_usage(day, name, used) VALUES (?, ?, ?) "
                         "ON CONFLICT(day, name) DO UPDATE SET used = used + excluded.used",
                         (day, name, amount))
            return True

    def usage(self, day: str, name: str) -> int:
        with self.lock:
            return self._usage(self.conn, day, name)

    @staticmethod
    def _usage(conn: sqlite3.Connection, day: str, name: str) -> int:
        row = conn.execute("SELECT used FROM daily_usage WHERE day = ? AND name = ?",
                           (day, name)).fetchone()
        return row[0] if row else 0

    def wipe(self) -> None:
        """Remove every record, job, token and counter (the org's users are re-seeded)."""
        with self.transaction() as conn:
            for obj in self.catalog:
                conn.execute(f"DELETE FROM {table_name(obj)}")
            for table in ("meta", "counters", "tokens", "refresh_tokens", "daily_usage", "jobs",
                          "job_results", "job_uploads", "job_upload_pieces"):
                conn.execute(f"DELETE FROM {table}")


class StoredUpload:
    """A job's upload in the store, read a piece at a time (csvfmt.UploadSource), so the
    server never holds it whole (a SELECT of one blob would hold it twice: SQLite's copy and
    Python's)."""

    def __init__(self, store: Store, job_id: str, size: int):
        self.store = store
        self.job_id = job_id
        self.size = size

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        parts = []
        while offset < end:
            piece, skip = divmod(offset, UPLOAD_PIECE)
            part = self.store.upload_piece(self.job_id, piece)[skip:skip + end - offset]
            parts.append(part)
            offset += len(part)
        return b"".join(parts)


def _delete_jobs(conn: sqlite3.Connection, job_ids: Sequence[str]) -> None:
    """Delete jobs with their results and uploads (inside the caller's transaction)."""
    for start in range(0, len(job_ids), PARAM_CHUNK):
        part = job_ids[start:start + PARAM_CHUNK]
        marks = ",".join("?" * len(part))
        for table, column in (("job_results", "job_id"), ("job_uploads", "job_id"),
                              ("job_upload_pieces", "job_id"), ("jobs", "id")):
            conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", part)


def _pieces(data: bytes | bytearray | BinaryIO, size: int) -> Iterator[bytes | memoryview]:
    """`data` in pieces of `size` bytes (the last may be shorter; at least one piece)."""
    if isinstance(data, (bytes, bytearray)):
        view = memoryview(data)
        for start in range(0, max(len(view), 1), size):
            yield view[start:start + size]
        return
    data.seek(0)
    piece = data.read(size)
    yield piece
    while len(piece) == size and (piece := data.read(size)):
        yield piece


def _delete_uploads(conn: sqlite3.Connection, job_ids: Sequence[str]) -> None:
    """Delete jobs' uploads, wherever they are kept (inside the caller's transaction)."""
    for start in range(0, len(job_ids), PARAM_CHUNK):
        part = job_ids[start:start + PARAM_CHUNK]
        marks = ",".join("?" * len(part))
        conn.execute(f"DELETE FROM job_upload_pieces WHERE job_id IN ({marks})", part)
        conn.execute(f"DELETE FROM job_uploads WHERE job_id IN ({marks})", part)
        conn.execute(f"UPDATE jobs SET data = NULL WHERE id IN ({marks}) AND data IS NOT NULL",
                     part)
