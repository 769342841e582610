"""Loads bigger than memory: a CSV file, or an iterable of DataFrames, streamed block by
block into Bulk API 2.0 jobs, results streamed to a file.

    sfb.validate_csv("accounts.csv", "Account", "customExtIdField__c")  # nothing sent
    res = sfb.upsert_csv("accounts.csv", "Account", "customExtIdField__c")
    res                     # StreamResult: counts, errors, jobs; the rows are on disk
    res.path                # accounts.results.csv: line, key, sf_id, sf_status, sf_error_*
    res.frame(limit=1000)   # the first rows of the results file, as a DataFrame
    res = sfb.upsert_df(pd.read_csv("big.csv", chunksize=100_000), "Account", "Key__c",
                        results="big.results.parquet")

How it works. The file is read with pyarrow's streaming CSV reader (``pyarrow.csv.open_csv``)
in blocks of ``block_size`` bytes, every cell as text (an empty cell is a null: the
``nulls`` policy says what it sends). Each block goes through the same plan stage as a
frame (`plan.inspect`: describe, validate, format), and its rows' CSV bytes fill the
current job byte-exact up to ``max_bytes`` (5 MB by default, see STREAM_MAX_BYTES; up to
100 MB, the upload limit) and ``max_records`` (150 M, the job limit);
a full job is sent by the same runner as upsert_df (`api.Run`: create, upload, close,
poll, results, lock-contention follow-ups, every fault rule of the nothing-lost work).
At most ``parallel`` jobs are in flight: reading waits for the oldest to finish, so memory
holds about ``parallel + 1`` jobs' CSV bytes and key texts, plus one job's results being
matched, whatever the file's size (lower ``max_bytes`` to hold less); a load that sends
as it reads also 16 bytes per key sent (duplicates, below). Results are written to the results file as each job ends, in
job order, and never held.

Rules that differ from a frame:

- Line numbers. A file's rows are named by the line they start on (header = line 1; a
  quoted value may span lines); an iterable of frames' by their position in the stream
  (0-based, the index ``pd.read_csv(chunksize=)`` gives). Blank lines, and rows whose
  every cell is empty, are skipped.
- on_invalid="raise" (the default) with a file: the whole file is checked first, block by
  block, and nothing is sent if any row has a problem (ValidationError naming its lines).
  An iterable can be read only once: a block with a problem stops the run there; the
  rows before it were sent (their results are in the file), ``res.stopped_at`` names the
  first row not sent, and the error carries the result (``e.result``).
- Duplicate keys (upsert, update, delete). Within a block validation refuses them as for a
  frame. Across blocks each key is remembered as a 64-bit hash of its normalized text with
  its line (no key text is held; `seenkeys`). A file checked first (on_invalid="raise")
  keeps them on disk and sorts them at the end of the check, so its memory stays flat
  whatever its size; a repeat is an InputError naming both lines, nothing sent. A load
  that sends as it reads (on_invalid="skip" or "send", an iterable) keeps them in memory
  (16 bytes a key, 160 MB for 10 M keys): a key seen on an earlier line is a
  DUPLICATE_VALUE problem of the later row, not sent (status invalid), since two jobs
  holding one key race.
- Not supported: only_changed, if_unmodified_since, undoable, wait=False (they need the
  whole input).
- The file is read up to three times (a UTF-8 check, the checks of on_invalid="raise",
  the load), never held; a fourth time up to the first repeated key, to name it.
- If the run stops part way (a bad block of an iterable, an unreadable line, Ctrl-C),
  the results file holds every row read until then with its status (not_sent for rows
  read but not sent) and ``res.stopped_at`` / ``res.stop_reason`` say where and why;
  the rows after it were not read. The run's journal record (sfb.runs()) keeps the job
  ids and line ranges as they go.
"""
from __future__ import annotations

import codecs
import contextlib
import dataclasses
import hashlib
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import encode, errors, journal, memory, results, seenkeys
from . import plan as plan_stage
from . import api
from .api import Run
from .encode import Chunk
from .problems import ERROR, Problems
from .progress import plural
from .tables import ShownFrame

__all__ = ["StreamResult", "upsert_csv", "insert_csv", "update_csv", "delete_csv",
           "load_csv", "load_frames", "frames_of"]

BLOCK_SIZE = 1 << 20  # bytes of the file read at a time (a block's checks peak at ~10x)
# A streamed job's default size. Salesforce takes up to 100 MB an upload (max_bytes= says
# so), but the jobs in flight and matching a job's results to its rows cost memory in
# proportion (client peak over its imports, 1M rows in 100 MB jobs: ~1 GB; 3M rows in
# 10 MB jobs: 260 MB, 5M and 10M rows: 300 MB; 3M rows in 5 MB jobs: 187-189 MB, 7% more
# CPU, 6% more wall). A smaller job costs only its ~8 API calls (Bulk API 2.0 counts
# records in batches of 10,000 whatever the job's size): 10M rows are ~130 jobs.
STREAM_MAX_BYTES = 5_000_000
# Options a streamed load cannot honour: they compare or keep the whole input.
_WHOLE_INPUT_ONLY = ("only_changed", "if_unmodified_since", "undoable")
_LINE, _ROW = "line", "row"


# -- the public calls ----------------------------------------------------------------


def upsert_csv(path: str | Path, sobject: str, external_id: str, **options: Any) -> "StreamResult":
    """Upsert the rows of the CSV file at ``path`` matched on ``external_id``, streamed:
    the file is never held whole (see sfbulk_nb.stream).

    ``results``: where the results go, ``.csv`` or ``.parquet`` (default: beside the
    input, ``<name>.results.csv``): one row per input row with its ``line``, the key and
    sf_id, sf_status, sf_error_code, sf_error_message, sf_error_fields, sf_job_id,
    sf_attempts. ``encoding``: the file's (default UTF-8, with or without a byte order
    mark; UTF-16 by its mark); a file that is not UTF-8 is refused naming the first bad
    byte and its line (an Excel export: pass ``encoding="cp1252"``). ``sep``: the
    character between fields (default ","; a European Excel export: ";"). ``block_size``:
    bytes read at a time (1 MB). ``max_bytes``: a job's size (5 MB, see
    STREAM_MAX_BYTES; Salesforce takes up to 100,000,000). ``start_line``: send only the rows from that line on
    (carrying on after a run that stopped part way: its ``stop_text()`` names the line).
    The other options are upsert_df's (nulls, tz,
    on_invalid, max_bytes, max_records, parallel, org, progress, ...). Returns a
    `StreamResult` (counts, errors, jobs; ``.frame(limit=)`` reads the results file)."""
    return load_csv(path, sobject, "upsert", external_id, **options)


def insert_csv(path: str | Path, sobject: str, **options: Any) -> "StreamResult":
    """Create one record per row of the CSV file at ``path``, streamed (see upsert_csv)."""
    return load_csv(path, sobject, "insert", None, **options)


def update_csv(path: str | Path, sobject: str, **options: Any) -> "StreamResult":
    """Update records by the ``Id`` column of the CSV file at ``path``, streamed (see
    upsert_csv)."""
    return load_csv(path, sobject, "update", None, **options)


def delete_csv(path: str | Path, sobject: str, *, hard: bool = False,
               **options: Any) -> "StreamResult":
    """Delete the records whose ids are in the ``Id`` column of the CSV file at ``path``,
    streamed (see upsert_csv); ``hard=True`` skips the Recycle Bin."""
    if not isinstance(hard, (bool, np.bool_)):
        raise errors.InputError(f"hard must be True or False, not {hard!r}")
    return load_csv(path, sobject, "hardDelete" if hard else "delete", None, **options)


def load_csv(path: str | Path, sobject: str, operation: str, external_id: str | None, *,
             results: str | Path | None = None, encoding: str | None = None,
             sep: str = ",", block_size: int = BLOCK_SIZE, start_line: int | None = None,
             **options: Any) -> "StreamResult":
    """What upsert_csv & co do, for any operation. ``start_line``: send only the rows
    that start on that line or later (to carry on after a run stopped part way; keys of
    the lines before it are not checked for repeats)."""
    if start_line is not None and (not isinstance(start_line, (int, np.integer))
                                   or isinstance(start_line, bool) or start_line < 2):
        raise errors.InputError(f"start_line must be a line number from 2 (the first after "
                                f"the header), not {start_line!r}")
    source = CsvSource(path, encoding=encoding, sep=sep, block_size=block_size)
    target = Path(results) if results is not None else source.default_results()
    load = _StreamLoad(sobject, operation, external_id, target, label=_LINE,
                       fingerprint=source.fingerprint(), source=str(source.path), **options)

    load.title = f"{operation} {sobject} from {source.path.name}"
    load.fixes = fixes_text(path, encoding=encoding, sep=sep)
    blocks = _file_blocks(load, source, start_line)
    with memory.lean():
        if load.options.on_invalid == "raise":
            with _checking_file(load):
                load.check_all(blocks)  # nothing is sent unless every row passes
        return load.run(blocks())


def validate_csv(path: str | Path, sobject: str, external_id: str | None = None,
                 operation: str = "upsert", *, encoding: str | None = None, sep: str = ",",
                 block_size: int = BLOCK_SIZE, **options: Any) -> Problems:
    """Every problem of the CSV file at ``path`` for a load, nothing sent: validate_df for
    a file, read a block at a time (never whole), checked exactly as upsert_csv & co check
    it before sending. A `Problems` frame whose ``row`` column holds file lines; keys
    repeated anywhere in the file are DUPLICATE_VALUE problems of the later lines. Lists
    up to PROBLEMS_LISTED problem rows (warnings: WARNINGS_LISTED), where the check stops
    and its note says so. ``options``: the load's (nulls, tz, org, progress...)."""
    if operation == "upsert" and external_id is None:
        raise errors.InputError("validate_csv for an upsert needs external_id (or pass "
                                "operation='insert', 'update' or 'delete')")
    if operation not in plan_stage.OPERATIONS:
        raise errors.InputError(f"unknown operation {operation!r}; one of "
                                f"{', '.join(plan_stage.OPERATIONS)}")
    options.pop("on_invalid", None)  # a check only: nothing is sent whatever it finds
    options.pop("results", None)
    source = CsvSource(path, encoding=encoding, sep=sep, block_size=block_size)
    load = _StreamLoad(sobject, operation, external_id if operation == "upsert" else None,
                       None, label=_LINE, fingerprint=None, source=str(source.path),
                       check_only=True, **options)
    load.title += f" from {source.path.name}"
    blocks = _file_blocks(load, source)
    with memory.lean(), _checking_file(load):
        problems = load.validate_all(blocks)
    load._show(rows=load.checked_rows, last=load.checked_last, final=True, phase="checked",
               invalid=len(problems.invalid_positions()))
    return problems


def _file_blocks(load: "_StreamLoad", source: "CsvSource",
                 start_line: int | None = None) -> Callable[[], Iterator[pd.DataFrame]]:
    """The file's blocks, read afresh at each call (from ``start_line`` on), and how far
    through the file the reading is for the load's panel."""
    size = max(source.path.stat().st_size, 1)
    # Arrow reads the file a block of block_size bytes per batch: batches so far tell how
    # far through it the reading is (the reader's own position runs ahead, read-ahead).
    load.fraction_read = lambda: min(1.0, source.batches * source.block_size / size)

    def blocks() -> Iterator[pd.DataFrame]:
        source.batches = 0
        for block in source.blocks():
            if start_line is not None and block.index[0] < start_line:
                block = block[block.index >= start_line]
            if len(block):
                yield block

    return blocks


@contextlib.contextmanager
def _checking_file(load: "_StreamLoad") -> Iterator[None]:
    """A file's check before anything is sent: an error or Ctrl-C in it ends the panel
    saying nothing was sent, and Ctrl-C says where the check was."""
    try:
        yield
    except (errors.SFBulkError, OSError, KeyboardInterrupt) as e:
        first = ("interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt)
                 else str(e).split("\n", 1)[0])
        load._show(rows=load.checked_rows, last=load.checked_last, final=True,
                   stop_text=first if first.startswith("Nothing was sent")
                   else f"Nothing was sent: {first}")
        if isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt(f"Interrupted while checking the file (at {_LINE} "
                                    f"{load.checked_last}): nothing was sent") from None
        raise


def load_frames(frames: Iterable[pd.DataFrame], sobject: str, operation: str,
                external_id: str | None, *, results: str | Path | None = None,
                **options: Any) -> "StreamResult":
    """A load of an iterable of DataFrames (upsert_df & co hand one here): rows named by
    their position in the stream; results default to ``<run id>.results.csv`` in the
    current directory."""
    load = _StreamLoad(sobject, operation, external_id, None if results is None
                       else Path(results), label=_ROW, fingerprint=None, source=None,
                       **options)
    with memory.lean():
        return load.run(_positioned(frames, operation))


def frames_of(value: Any) -> tuple[Iterator[pd.DataFrame] | None, Any]:
    """(an iterator of DataFrames, None) when ``value`` is an iterable of them (a
    generator, ``pd.read_csv(chunksize=)``, a list of frames), else (None, ``value``) -- a
    one-shot iterator given back whole, its first item put back in front."""
    if isinstance(value, (pd.DataFrame, pd.Series, str, bytes, dict)) or not isinstance(
            value, Iterable):
        return None, value
    if isinstance(value, (list, tuple)):
        frames = bool(value) and all(isinstance(v, pd.DataFrame) for v in value)
        return (iter(value), None) if frames else (None, value)
    it = iter(value)
    again = it is not value  # a container, iterated afresh (a set, an index): given back
    try:
        first = next(it)
    except StopIteration:
        return None, value if again else []
    if isinstance(first, pd.DataFrame):
        return itertools.chain([first], it), None
    return None, value if again else itertools.chain([first], it)


def _positioned(frames: Iterable[pd.DataFrame], operation: str) -> Iterator[pd.DataFrame]:
    """The frames with their rows' positions in the stream as index; the columns must stay
    the same from frame to frame (they make one CSV header)."""
    from .api import id_frame

    at, columns = 0, None
    for frame in frames:
        if not isinstance(frame, pd.DataFrame):
            raise errors.InputError(f"the iterable yielded a {type(frame).__name__} after "
                                    f"{at:,} rows; every item must be a DataFrame")
        if operation in ("delete", "hardDelete"):
            frame = id_frame(frame)
        if columns is None:
            columns = list(frame.columns)
        elif list(frame.columns) != columns:
            raise errors.InputError(f"the frame starting at row {at:,} has columns "
                                    f"{list(frame.columns)}, the first had {columns}: every "
                                    "frame of the stream needs the same columns")
        frame = frame.set_axis(pd.RangeIndex(at, at + len(frame)), axis=0)
        at += len(frame)
        if len(frame):
            yield frame


# -- reading a CSV file in blocks -------------------------------------------------------


class CsvSource:
    """A CSV file read in blocks of text cells, each block's index the file lines its rows
    start on. Reading it twice gives the same blocks."""

    def __init__(self, path: str | Path, *, encoding: str | None = None, sep: str = ",",
                 block_size: int = BLOCK_SIZE):
        self.path = Path(path)
        # pandas' name for it: a European Excel export is separated by ";".
        if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n':
            raise errors.InputError(f"sep must be the one character that separates the file's "
                                    f"fields, e.g. ',' or ';' or '\\t', not {sep!r}")
        self.sep = sep
        if not isinstance(block_size, (int, np.integer)) or isinstance(block_size, bool) \
                or block_size < 1:
            raise errors.InputError(f"block_size must be a positive number of bytes, not "
                                    f"{block_size!r}")
        self.block_size = int(block_size)
        try:
            with open(self.path, "rb") as f:
                head = f.read(4)
                f.seek(0)
                # pyarrow needs the header line within the first block.
                self.block_size = max(self.block_size, len(f.readline(1 << 24)) + 1)
        except FileNotFoundError:
            raise errors.InputError(f"{path}: no such file; check the path (relative paths "
                                    f"start in {Path.cwd()})") from None
        except IsADirectoryError:
            raise errors.InputError(f"{path} is a directory; give the CSV file in it") from None
        if head[:4] == b"PK\x03\x04":
            raise errors.InputError(f"{path} is a zip file (an Excel .xlsx workbook?): save it "
                                    "as CSV (UTF-8), or read it with pandas.read_excel")
        if encoding is None and head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            encoding = "utf-16"  # its byte order mark says so
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except LookupError:
                raise errors.InputError(f"unknown encoding {encoding!r}; e.g. 'utf-8', "
                                        "'cp1252' (Excel on Windows), 'latin-1', 'utf-16'") from None
        self.encoding = encoding
        self.batches = 0  # batches read by blocks() so far (one per block_size bytes)
        if encoding is None:
            _check_utf8(self.path)
        # Excel writes "sep=;" as a first line where it wants the separator known: it
        # names the separator, and the header is the line after it.
        hinted = excel_sep_line(self.path, encoding)
        if hinted is not None and sep not in (",", hinted):
            raise errors.InputError(f"{path}'s first line, {'sep=' + hinted!r}, says its fields "
                                    f"are separated by {hinted!r}, not the {sep!r} passed: pass "
                                    f"sep={hinted!r}, or leave sep out")
        self.sep = hinted or sep
        self.skipped_lines = 0 if hinted is None else 1

    def default_results(self) -> Path:
        name = self.path.name
        stem = name[: -len(self.path.suffix)] if self.path.suffix else name
        return self.path.with_name(f"{stem}.results.csv")

    def fingerprint(self) -> str:
        stat = self.path.stat()
        text = f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return "file:" + hashlib.sha256(text.encode()).hexdigest()[:28]

    def _open(self, column_types=None, on_ragged=None):
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(block_size=self.block_size, use_threads=False,
                                 encoding=self.encoding or "utf8",
                                 skip_rows=self.skipped_lines)
        # Blank lines are read as rows (all cells null) so that line numbers stay exact;
        # they are dropped after counting.
        parse = pacsv.ParseOptions(delimiter=self.sep, newlines_in_values=True,
                                   ignore_empty_lines=False, invalid_row_handler=on_ragged)
        convert = pacsv.ConvertOptions(column_types=column_types, null_values=[""],
                                       strings_can_be_null=True)
        try:
            return pacsv.open_csv(self.path, read_options=read, parse_options=parse,
                                  convert_options=convert)
        except pa.ArrowInvalid as e:
            if "Empty CSV file" in str(e):
                raise errors.InputError(_no_rows(self.path) if self.path.stat().st_size else
                                        f"{self.path} is empty: a CSV file starts with a header "
                                        "line of field names (e.g. customExtIdField__c,Name)") from None
            raise errors.InputError(f"{self.path} cannot be read as CSV: {e}") from None

    def names(self) -> list[str]:
        """The header's names, without the empty ones a trailing comma leaves."""
        names = self._open(on_ragged=lambda row: "skip").schema.names
        while len(names) > 1 and not names[-1].strip():
            names = names[:-1]
        unnamed = [i + 1 for i, n in enumerate(names) if not n.strip()]
        if unnamed:
            raise errors.InputError(f"{self.path}, line {1 + self.skipped_lines}: column(s) "
                                    f"{unnamed} of the header have "
                                    "no name; name each column after its Salesforce field")
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise errors.InputError(f"{self.path}, line {1 + self.skipped_lines}: the header "
                                    f"names {twice} more than "
                                    "once; keep one column per field")
        other = [d for d in ",;\t|" if d != self.sep and d in names[0]]
        if len(names) == 1 and other:
            raise errors.InputError(f"{self.path} looks separated by {other[0]!r}, not "
                                    f"{self.sep!r} (its header is {names[0]!r}): pass "
                                    f"sep={other[0]!r}")
        return names

    def blocks(self) -> Iterator[pd.DataFrame]:
        names = self.names()
        every = self._open(on_ragged=lambda row: "skip").schema.names  # trailing commas too
        ragged: list[tuple[int, int, str]] = []

        def on_ragged(row) -> str:
            ragged.append((row.number, row.actual_columns, row.text))
            return "skip"

        reader = self._open({n: pa.string() for n in every}, on_ragged)
        # The line the next row starts on (after a "sep=" line and the header).
        line = 2 + self.skipped_lines + sum(n.count("\n") for n in names)
        rows = 0  # rows read so far, blank ones included
        while True:
            try:
                batch = reader.read_next_batch()
                self.batches += 1
            except StopIteration:
                batch = None
            except pa.ArrowInvalid as e:
                raise errors.InputError(f"{self.path}, after line {line - 1}: cannot be read "
                                        f"as CSV ({e})") from None
            n = 0 if batch is None else batch.num_rows
            spans = np.ones(n, np.int64)
            for column in ([] if batch is None else batch.columns):
                spans += _line_breaks(column)
            starts = line + np.concatenate([[0], np.cumsum(spans)[:-1]]) if n else spans
            if ragged:
                number, width, text = ragged[0]
                # Records are numbered from the file's first, the header 1 (a "sep=" line
                # before it counts too); blank and ragged ones count.
                before = (number - 2 - self.skipped_lines
                          - sum(1 for r in ragged if r[0] < number))
                # At the end of the file it is said whatever the count: never dropped unsaid.
                if before <= rows + n or batch is None:
                    at = (int(starts[before - rows]) if rows <= before < rows + n
                          else line + int(spans.sum()))
                    raise errors.InputError(
                        f"{self.path}, line {at}: {width} field(s) where the header has "
                        f"{len(names)} ({text[:80]!r}). Fix that line (a value holding a comma "
                        "goes in double quotes), or the header if it lacks a column")
            if batch is None:
                if not rows:
                    raise errors.InputError(_no_rows(self.path))
                return
            past = [batch.column(i) for i in range(len(names), len(every))]
            if past:  # columns a trailing comma made: empty, or a row with a value too many
                filled = np.zeros(n, bool)
                for column in past:
                    filled |= column.is_valid().to_numpy(zero_copy_only=False)
                if filled.any():
                    at = int(starts[np.flatnonzero(filled)[0]])
                    raise errors.InputError(
                        f"{self.path}, line {at}: a value past the header's {len(names)} "
                        "columns. Fix that line (a value holding a comma goes in double "
                        "quotes), or name the column in the header")
                batch = batch.select(range(len(names)))
            line += int(spans.sum())
            rows += n
            # Arrow-backed strings: a block's cells stay in Arrow buffers, not Python objects.
            frame = batch.to_pandas(types_mapper={pa.string(): pd.ArrowDtype(pa.string())}.get)
            frame.index = pd.Index(starts, name=_LINE)
            filled = frame.notna().any(axis=1).to_numpy()
            if not filled.all():
                frame = frame[filled]
            if len(frame):
                yield frame


def _panel_for(progress: Any) -> Any:
    """The notebook panel of a load with progress="auto" in a live kernel, else None (text
    lines, a callable, or nothing)."""
    from .progress import _in_kernel

    if progress not in ("auto", True) or not _in_kernel():
        return None
    try:
        from IPython.display import display

        from .stream_panel import StreamPanel  # ipywidgets, only in a kernel
    except ImportError:  # no ipywidgets: text lines
        return None
    panel = StreamPanel()
    display(panel)
    return panel


def fixes_text(path: str | Path, *, encoding: str | None = None, sep: str = ",") -> str:
    """How the fixes of a file's problems (pandas code for a frame ``df``) apply to it,
    read with its ``encoding`` and ``sep`` (and past an Excel "sep=" first line)."""
    path = str(path)
    fixed = Path(path).with_name(Path(path).stem + ".fixed.csv").name
    try:
        hinted = excel_sep_line(Path(path), encoding)
    except OSError:
        hinted = None
    sep = hinted or sep
    reading = "".join(f", {name}={value!r}" for name, value in
                      (("encoding", encoding), ("sep", sep if sep != "," else None),
                       ("skiprows", 1 if hinted else None))
                      if value is not None)
    written = (" (UTF-8, comma-separated: load it with neither)"
               if reading and (encoding is not None or sep != ",") else "")
    return (f"The fixes are pandas code for `df`, the file read as text: df = pd.read_csv("
            f"{path!r}, dtype=str, keep_default_na=False{reading}) (so blanks and '#N/A' "
            f"stay as written), then df.to_csv({fixed!r}, index=False) and load that "
            f"file{written}.")


def excel_sep_line(path: Path, encoding: str | None = None) -> str | None:
    """The separator a file's first line names when it is Excel's "sep=;" line, else
    None. Read as text in the file's encoding (a byte order mark skipped)."""
    with open(path, encoding=encoding or "utf-8-sig", errors="replace", newline="") as f:
        first = f.readline(16)
    match = re.fullmatch(r"sep=([^\r\n\"])(\r\n|\n|\r)?", first)
    return match.group(1) if match else None


def _no_rows(path: Path) -> str:
    return f"{path} has a header line but no data rows: nothing to send"


def _line_breaks(column: pa.Array) -> np.ndarray:
    """Per value, the line breaks it holds (\\n, \\r\\n or a lone \\r each count one)."""
    # Most columns hold none: one scan of the text bytes says so (three kernels otherwise).
    data = column.buffers()[2] if len(column.buffers()) > 2 else None
    raw = np.frombuffer(data, np.uint8) if data is not None else None
    if raw is None or not ((raw == 10).any() or (raw == 13).any()):
        return np.zeros(len(column), np.int64)
    column = pc.fill_null(column, "")
    lf = pc.count_substring(column, "\n")
    cr = pc.subtract(pc.count_substring(column, "\r"), pc.count_substring(column, "\r\n"))
    return pc.add(lf, cr).to_numpy(zero_copy_only=False).astype(np.int64)


def _check_utf8(path: Path, size: int = 1 << 20) -> None:
    """Refuses a file that is not UTF-8, naming its first bad byte, before anything is read
    (pyarrow's own error names no line)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    with open(path, "rb") as f:
        while True:
            data = f.read(size)
            held = decoder.getstate()[0]  # the start of a character cut by the last read
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:
                seen = held + data  # e.start counts from the held bytes
                at = offset - len(held) + e.start
                raw = seen[e.start] if e.start < len(seen) else 0
                lines += seen.count(b"\n", 0, e.start)
                raise errors.InputError(
                    f"{path}: byte 0x{raw:02x} at offset {at:,} (line {lines + 1}) is not "
                    "UTF-8. The file is in another encoding: an Excel CSV export is usually "
                    "Windows-1252, so pass encoding=\"cp1252\" (or the file's own, e.g. "
                    "\"latin-1\"), or save it as \"CSV UTF-8\"") from None
            if not data:
                return
            offset += len(data)
            lines += data.count(b"\n")


# -- the load -------------------------------------------------------------------------


@dataclasses.dataclass
class _Job:
    """Rows gathered for one Bulk job: their texts as sent, their CSV bytes, and the rows
    of the same stretch not sent (invalid), to be written with its results."""

    texts: list[pd.DataFrame] = dataclasses.field(default_factory=list)
    data: list[bytes] = dataclasses.field(default_factory=list)
    sizes: list[np.ndarray] = dataclasses.field(default_factory=list)  # bytes per row
    unsent: list[pd.DataFrame] = dataclasses.field(default_factory=list)
    records: int = 0
    size: int = 0


class _JobJournal:
    """What api.Run writes to its journal record, redirected to job ``index`` of the
    stream's record."""

    def __init__(self, record: journal.Record, index: int):
        self.record, self.index = record, index
        # Run deletes its record when no job could be created; the stream's must stay.
        self.path = record.path.with_suffix(".no-such-file")

    def job(self, i: int, **fields: Any) -> None:
        if i == 0:
            self.record.job(self.index, **fields)

    def add_jobs(self, jobs: list, round_rows: Any) -> None:
        pass  # lock-contention follow-ups of this job: its results say how they ended

    def finish(self) -> None:
        pass


class _JobRun(Run):
    """One job of a stream, run as upsert_df runs a frame's; its follow-up rounds resend
    rows cut from the job's own CSV bytes (the stream keeps no other copy of the rows'
    texts)."""

    data: bytes
    offsets: np.ndarray  # row i's line: data[offsets[i]:offsets[i + 1]]
    header: bytes
    # Shared by the stream's jobs: one at a time reads and matches its results (jobs of one
    # size finish together; each at once would hold them all).
    results_lock: Any  # an RLock

    def _fetch_results(self, job_id: str, info: Any) -> dict[str, pd.DataFrame]:
        with self.results_lock:
            return super()._fetch_results(job_id, info)

    def _follow_ups(self, deadline: float | None) -> None:
        with self.results_lock:
            super()._follow_ups(deadline)

    def _round_chunks(self, rows: np.ndarray) -> list[Chunk]:
        lines = [self.data[self.offsets[r]:self.offsets[r + 1]] for r in rows]
        return [Chunk(range(0, len(rows)), self.header + b"".join(lines))]

    def _align_round(self, k: int) -> pd.DataFrame:
        # A finished round is matched once: the follow-up check and the result both ask.
        cache = self.__dict__.setdefault("_rounds_aligned", {})
        if k not in cache:
            aligned = super()._align_round(k)
            if not all(self.outcomes[j].finished for j in self.rounds[k][1]):
                return aligned
            cache[k] = aligned
        return cache[k].copy()

    def release(self) -> None:
        """Drops the rows and results once written: a run sits in reference cycles (its
        threads), which only the garbage collector frees, at a time of its own."""
        self.plan = self.df = self.sent_text = self._aligned = None
        self.data, self.chunks, self.outcomes, self.rounds = b"", [], [], []
        self.__dict__.pop("_rounds_aligned", None)


@dataclasses.dataclass
class _Checks:
    """What the checks of every block found (_StreamLoad._check_blocks)."""

    rows: int = 0
    listed: int = 0  # problem rows kept
    frames: list = dataclasses.field(default_factory=list)
    column_order: dict | None = None
    blocked: bool = False  # an error: the load would send nothing
    stopped_at: Any = None  # the last row checked, when PROBLEMS_LISTED stopped the check
    later: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    earlier: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    _columns_seen: set = dataclasses.field(default_factory=set)

    def add(self, problems: Problems, warnings_listed: int) -> None:
        frame = pd.DataFrame(problems)
        # Warnings are listed only up to warnings_listed rows (a file may warn on every
        # row), then only errors; a whole column's problem once (every block has it).
        if self.listed >= warnings_listed:
            frame = frame[frame["severity"] == ERROR]
        whole = frame["position"].isna()
        if whole.any():
            said = [(c, k) in self._columns_seen for c, k in
                    zip(frame["column"].astype(str), frame["code"].astype(str))]
            self._columns_seen.update(zip(frame["column"].astype(str),
                                          frame["code"].astype(str)))
            frame = frame[~(whole & np.array(said, bool))]
        # Positions count from the input's first row (they tell rows apart).
        frame["position"] = frame["position"] + self.rows
        if len(frame):
            self.frames.append(frame)
            self.column_order = self.column_order or getattr(problems, "_column_order", None)
            self.listed += len(frame)

    def problems(self) -> Problems:
        if not self.frames:
            return Problems.from_blocks([], pd.RangeIndex(0))
        everything = Problems(pd.concat(self.frames, ignore_index=True))
        everything._column_order = self.column_order
        return everything

    def note(self, label: str) -> str:
        read = (f"the check stopped at {label} {self.stopped_at:,}, after "
                f"{self.listed:,} problems" if self.stopped_at is not None
                else f"{plural(self.rows, 'row')} checked")
        return f"{read}; nothing was sent"


class _StreamLoad:
    # Problem rows a file's check lists before it stops (some 500 bytes each in memory),
    # and the warnings among them.
    PROBLEMS_LISTED = 100_000
    WARNINGS_LISTED = 10_000

    def __init__(self, sobject: str, operation: str, external_id: str | None,
                 results_path: Path | None, *, label: str, fingerprint: str | None,
                 source: str | None, check_only: bool = False, **options: Any):
        """``check_only``: the input is checked, never sent (validate_csv): no results
        file is named, and no keys are kept for a load."""
        from . import api

        refused = [k for k in _WHOLE_INPUT_ONLY if options.get(k) not in (None, False)]
        if options.get("wait", True) is not True:
            refused.append("wait=False")
        if refused:
            raise errors.InputError(f"{', '.join(refused)} need(s) the whole input at once: "
                                    "not for a streamed load (read the rows into one "
                                    "DataFrame for that)")
        options.pop("wait", None)
        options.pop("force", None)  # no frame to find an unfinished run of
        options.setdefault("max_bytes", STREAM_MAX_BYTES)
        api._check_options(options)
        settings = api._run_settings(options)
        self.org = settings["org"]
        self.settings = settings
        self.options = plan_stage.LoadOptions(**options)
        plan_stage.check_change_options(operation, self.options)
        if operation not in plan_stage.OPERATIONS:
            raise errors.InputError(f"unknown operation {operation!r}; one of "
                                    f"{', '.join(plan_stage.OPERATIONS)}")
        encode._check_limits(self.options.max_bytes, self.options.max_records)
        self.sobject, self.operation, self.external_id = sobject, operation, external_id
        self.label = label
        self.run_id = journal.new_run_id()
        self.results_path = None if check_only else (
            results_path or Path.cwd() / f"{self.run_id}.results.csv")
        if self.results_path is not None:
            if source is not None and self.results_path.resolve() == Path(source).resolve():
                raise errors.InputError(f"results={str(results_path)!r} is the input file "
                                        "itself; name another file")
            _ResultsFile.check(self.results_path)
        self.fingerprint = fingerprint or f"stream:{self.run_id}"
        self.source = source
        self.fixes: str | None = None  # fixes_text of the file, set by load_csv
        # Keys met so far, to refuse a repeat (None: the whole input was checked first).
        self.seen: seenkeys.SeenKeys | None = None if check_only else seenkeys.SeenKeys()
        self.title = f"{'check ' if check_only else ''}{operation} {sobject}"
        self.fraction_read: Callable[[], float] | None = None  # a file's, set by load_csv
        self.panel = _panel_for(self.settings["progress"])
        self.phase = "sending"
        self.started = time.monotonic()
        self.checked_rows, self.checked_last = 0, None  # how far check_all got
        self.header: bytes | None = None
        self.key_column: Any = None

    # -- checking and planning a block ----------------------------------------------

    def _inspect(self, block: pd.DataFrame) -> plan_stage.Inspection:
        found = plan_stage.inspect(self.org, block, self.sobject, self.operation,
                                   self.external_id, self.options)
        self.sobject = found.describe["name"]
        self.key, self.key_case_insensitive = found.key, found.key_case_insensitive
        return found

    def _key_hashes(self, text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """The rows' key hashes, and which rows have a key at all (blank ones are
        validation's to report)."""
        keys = pa.array(text.to_numpy(object), pa.large_string())
        normalize = results._normalizer(self.operation, self.key, self.key_case_insensitive)
        if normalize is not None:
            keys = normalize(keys)
        values = keys.to_numpy(zero_copy_only=False)
        has = ~np.isin(values, ["", "#N/A"]) & pd.notna(values)
        return pd.util.hash_array(values.astype(object)).astype(np.uint64), has

    def _block_keys(self, block: pd.DataFrame, checked, rows: np.ndarray):
        """The hashes of the keys of ``rows`` (positions in the block), which of them have
        a key, and their labels."""
        text = pd.Series(checked.key_cells.at(rows).to_pandas())
        hashes, has = self._key_hashes(text)
        return hashes, has, block.index.to_numpy()[rows]

    def _repeats(self, block: pd.DataFrame, checked, rows: np.ndarray):
        """Rows (positions into ``rows``) whose key an earlier block sent, the labels they
        repeat, and their hashes and labels to remember."""
        if (self.seen is None or self.key is None or checked.key_column is None
                or not len(rows)):
            empty = np.zeros(0, np.int64)
            return empty, empty, np.zeros(0, np.uint64), empty
        hashes, has, labels = self._block_keys(block, checked, rows)
        earlier = self.seen.find(hashes)
        repeat = np.flatnonzero((earlier >= 0) & has)
        keep = has & (earlier < 0)
        return repeat, earlier[repeat], hashes[keep], labels[keep]

    def _repeat_problems(self, block, checked, rows, repeat, earlier, *,
                         sent: bool = True) -> Problems:
        """DUPLICATE_VALUE problems of the rows ``rows[repeat]``, whose keys rows
        ``earlier`` had (sent: by an earlier job; else: earlier in the input)."""
        column = checked.key_column
        index = block.index[rows[repeat]]
        keys = checked.key_cells.at(rows[repeat]).to_pylist()
        frame = pd.DataFrame({
            "row": list(index), "position": pd.array(rows[repeat], dtype="Int64"),
            "column": column, "field": self.key, "value": pd.array(keys, dtype="string"),
            "code": "DUPLICATE_VALUE",
            "message": pd.array([
                f"the key {k!r} was already sent on {self.label} {e} (an earlier block): two "
                "jobs holding one key race" if sent else
                f"the key {k!r} is on {self.label} {e} too (each key once: two jobs holding "
                "one key race)" for k, e in zip(keys, earlier)], dtype="string"),
            "hint": ("keep one line per key in the file, or merge the lines"
                     if self.label == _LINE else
                     "keep one row per key (df.drop_duplicates(subset=[key], keep='last')), "
                     "or merge the rows"), "severity": "error"})
        return frame

    def check_all(self, blocks: Callable[[], Iterable[pd.DataFrame]]) -> None:
        """Checks every block of ``blocks()`` as the load will, sending nothing, and raises
        ValidationError listing the problems of the whole input (on_invalid="raise"), so
        one round of fixes covers it: up to PROBLEMS_LISTED problem rows, where the check
        stops. A problem of a whole column (an unknown field, no key column) is the same in
        every block: the first block says it. A key that comes back anywhere in the input
        is an InputError naming both rows. Keys are remembered on disk
        (seenkeys.SpilledKeys: flat memory whatever the input's size), so the load that
        follows needs to remember none."""
        found = self._check_blocks(blocks, whole_input=False)
        if found.blocked:
            raise self._file_error(errors.ValidationError(found.problems()),
                                   stopped_at=found.stopped_at) from None
        if len(found.later):
            self._refuse_repeats(blocks, found.later, found.earlier)
        self.seen = None
        self.phase = "sending"

    def validate_all(self, blocks: Callable[[], Iterable[pd.DataFrame]]) -> Problems:
        """Every problem of the input, sending nothing (validate_csv): check_all's, as a
        Problems frame instead of an error, keys repeated across blocks included."""
        found = self._check_blocks(blocks, whole_input=True)
        problems = found.problems()
        # Rows a block's own check flagged already (both rows of a key repeated within it);
        # rows are labelled by line numbers here.
        flagged = problems.loc[problems["code"] == "DUPLICATE_VALUE", "row"]
        repeat = ~np.isin(found.later, flagged.to_numpy(np.int64))
        later, earlier = found.later[repeat], found.earlier[repeat]
        if len(later) and found.stopped_at is None:
            repeats = self._repeat_frames(blocks, later, earlier)
            problems = Problems(pd.concat([pd.DataFrame(problems), *repeats],
                                          ignore_index=True))
            problems._column_order = found.column_order
        problems._label = self.label
        problems._note = found.note(self.label)
        return problems

    def _check_blocks(self, blocks: Callable[[], Iterable[pd.DataFrame]], *,
                      whole_input: bool) -> "_Checks":
        """The checks of every block (see check_all). ``whole_input``: a problem of a whole
        column is listed once and the check goes on (validate_csv); else it raises at
        once, as the load would."""
        self.phase = "checking"
        found = _Checks()
        with seenkeys.SpilledKeys() as spilled:
            for block in blocks():
                self.checked_rows, self.checked_last = found.rows + len(block), block.index[-1]
                self._show(rows=self.checked_rows, last=self.checked_last)
                inspected = self._inspect(block)
                problems = inspected.checked.problems
                if not problems.ok:
                    try:
                        plan_stage._rows_to_send(problems, inspected.checked, "raise",
                                                 len(block), keyed=inspected.key is not None)
                    except errors.ValidationError as e:
                        if e.note != errors.ValidationError.ROWS_NOTE and not whole_input:
                            raise self._file_error(e) from None  # a whole column's
                    found.blocked = True
                if len(problems):
                    found.add(problems, self.WARNINGS_LISTED)
                found.rows += len(block)
                if found.blocked and found.listed >= self.PROBLEMS_LISTED:
                    found.stopped_at = block.index[-1]
                    break
                if self.key is not None and inspected.checked.key_column is not None:
                    hashes, has, labels = self._block_keys(block, inspected.checked,
                                                           np.arange(len(block)))
                    spilled.add(hashes[has], labels[has])
            if found.stopped_at is None:
                found.later, found.earlier = spilled.repeats()
        return found

    def _file_error(self, error: errors.ValidationError,
                    stopped_at: Any = None) -> errors.ValidationError:
        """check_all's ValidationError, told of a file: its rows named as lines, how far
        the check went, and how the fixes (pandas code) apply to a file."""
        if self.label != _LINE:
            return error
        read = (f"the check stopped at line {stopped_at:,}, after {self.PROBLEMS_LISTED:,} "
                "problems: fix these and check again" if stopped_at is not None else
                "every line of the file was checked")
        after = (f"(Rows are named by the line they start on; {read}.)\n"
                 f"{self.fixes or fixes_text('file.csv')} Or pass on_invalid='skip' to "
                 "send only the valid lines.")
        return errors.ValidationError(error.problems, error.note.replace("the frame", "the file"),
                                      label=_LINE, after=after)

    def _refuse_repeats(self, blocks: Callable[[], Iterable[pd.DataFrame]],
                        later: np.ndarray, earlier: np.ndarray) -> None:
        """Raises the InputError of check_all's repeated keys: the input is read again up
        to the first repeat, for its key's text (no key text was kept)."""
        for problems in self._repeat_frames(blocks, later, earlier):
            raise errors.InputError(_repeat_text(problems, self.label, total=len(later),
                                                 sent=False))
        raise errors.InputError(f"{self.label} {later[0]}: its key is on {self.label} "
                                f"{earlier[0]} too; keep one row per key")  # a changed file

    def _repeat_frames(self, blocks: Callable[[], Iterable[pd.DataFrame]],
                       later: np.ndarray, earlier: np.ndarray) -> Iterator[pd.DataFrame]:
        """The DUPLICATE_VALUE problems of the rows labelled ``later`` (whose keys the
        rows ``earlier`` had), a block's at a time: the input is read again for their
        keys' texts (no key text was kept), up to the last of them."""
        for block in blocks():
            if block.index[-1] < later[0]:
                continue
            if block.index[0] > later[-1]:
                return
            at = np.isin(block.index.to_numpy(), later)
            rows = np.flatnonzero(at)
            if not len(rows):
                continue
            checked = self._inspect(block).checked
            firsts = earlier[np.searchsorted(later, block.index.to_numpy()[rows])]
            yield self._repeat_problems(block, checked, rows, np.arange(len(rows)), firsts,
                                        sent=False)

    def _plan_block(self, block: pd.DataFrame):
        """A block's rows to send: (texts, csv bytes, row offsets) and the status frame
        of the rows it leaves out. Raises ValidationError as make_plan does."""
        found = self._inspect(block)
        checked = found.checked
        rows = np.arange(len(block))
        if not checked.problems.ok:
            rows = plan_stage._rows_to_send(checked.problems, checked, self.options.on_invalid,
                                            len(block), keyed=found.key is not None)
        repeat, earlier, hashes, labels = self._repeats(block, checked, rows)
        problems = checked.problems
        if len(repeat):
            if self.options.on_invalid == "raise":
                raise errors.InputError(_repeat_text(
                    self._repeat_problems(block, checked, rows, repeat, earlier), self.label))
            extra = self._repeat_problems(block, checked, rows, repeat, earlier)
            problems = Problems(pd.concat([pd.DataFrame(problems), extra], ignore_index=True))
            rows = np.delete(rows, repeat)
        if self.seen is not None:
            self.seen.add(hashes, labels)
        plan = plan_stage.LoadPlan(self.org, self.sobject, self.operation, self.key, block,
                                   self.options, problems, rows, block.iloc[:0], [])
        unsent = plan.invalid_status() if len(rows) < len(block) else None
        if unsent is not None and self._key_label() is not None:
            column = _column_or_none(block, self.key)
            if column is not None:
                unsent["_key"] = block.loc[unsent.index, column].to_numpy()
        if not len(rows):
            return None, unsent
        encoding = checked.encoding if len(rows) == len(block) else checked.encoding.select(rows)
        self.key_column = checked.key_column
        every = None if len(rows) == len(block) else rows
        if self.key_column is None:  # an insert is matched to its results on every column
            text = checked.text_frame(every)
        else:  # the others on their key: only its texts are kept
            cells = checked.key_cells
            keys = cells.text if every is None else cells.at(every)
            # Arrow-backed: a job's keys held as one buffer, not a Python string each.
            text = pd.DataFrame({self.key_column: pd.array(keys, dtype=pd.ArrowDtype(
                pa.large_string()))}, index=block.index if every is None else block.index[every])
        self.fields = list(checked.describes)
        try:
            header, data, starts = encoding.csv_rows(
                column_delimiter=self.options.column_delimiter,
                line_ending=self.options.line_ending)
            # Only for its check that every row fits in a job (the error names the row).
            encode._plan_chunks(starts, len(header), text.index, int(self.options.max_bytes),
                                None)
        except encode.EncodeError as e:
            raise errors.ValidationError(problems, note=f"the rows cannot be written as CSV: "
                                         f"{e}") from None
        if self.header is None:
            self.header = header
        return (text, data, starts), unsent

    # -- running --------------------------------------------------------------------

    def run(self, blocks: Iterable[pd.DataFrame]) -> "StreamResult":
        self.result = StreamResult(self)
        self.out = _ResultsFile(self.results_path, self.label, self._key_label())
        self.record = journal.start(
            self.run_id, org=self.org, sobject=self.sobject, operation=self.operation,
            key=self.external_id if self.operation == "upsert" else None,
            options=_jsonable(dataclasses.asdict(self.options)),
            fingerprint_text=self.fingerprint, rows=0, skipped=[], chunks=[])
        self.record.data["stream"] = {"source": self.source, "results": str(self.results_path),
                                      "label": self.label}
        self.record.save()
        self.pool = ThreadPoolExecutor(max_workers=self.settings["parallel"],
                                       thread_name_prefix="sfbulk-stream")
        self.inflight: list[tuple[Any, _Job, int]] = []
        self.job = _Job()
        self.calls_before = self.org.api_calls
        self.stop = threading.Event()
        self.live: dict[int, Run] = {}  # the runs of the jobs in flight
        self.results_lock = threading.RLock()  # a follow-up round fetches under it
        self._current_block: Any = None
        self._last_label: Any = None
        last_run = api._last_run  # each job's Run takes its place; a stream is no BulkResult
        error: BaseException | None = None
        try:
            try:
                for block in blocks:
                    self._take(block)
                self._flush()
            except (errors.SFBulkError, ValueError, OSError) as e:
                error = e
                self._stopped(f"{type(e).__name__}: {e}")
            except KeyboardInterrupt as e:
                self._interrupt()
                error = e
                self._stopped("interrupted (Ctrl-C)")
            self._drain()
        except KeyboardInterrupt as e:  # Ctrl-C while the jobs in flight finish
            self._interrupt()
            error = e
            if self.result.stop_reason is None:
                self._stopped("interrupted (Ctrl-C)")
            self._drain()
        finally:
            self.pool.shutdown(wait=True)
            api.set_last_run(last_run)
            self.out.close()
            self.result.finished_at = time.time()
            self.result.api_calls = self.org.api_calls - self.calls_before
            self.record.data.update(rows=self.result.rows, stopped_at=self.result.stopped_at,
                                    stop_reason=self.result.stop_reason)
            if self.result.stopped_at is None and not isinstance(error, KeyboardInterrupt):
                self.record.finish()
            else:
                self.record.save()
        self._show(final=True, stop_text=None if error is None and self.result.stopped_at is None
                   else self.result.stop_text())
        if error is not None:
            if not self.result.job_rows:  # no job was made: a run that never was
                self.record.path.unlink(missing_ok=True)
            if isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt(f"Interrupted: {self.result.stop_text()}") from None
            if self.result.jobs_run:  # not "nothing was sent": say what was
                body = (error.problems.summary_text(label=self.label)
                        if isinstance(error, errors.ValidationError) else str(error))
                error.args = (f"{self.result.stop_text()}.\n{body}",)
            if self.result.rows_sent == 0 and not self.result.jobs_run:
                self.out.remove_if_empty()
            error.result = self.result  # type: ignore[attr-defined]
            raise error
        self._report(f"{self.result!r}")
        return self.result

    def _stopped(self, reason: str) -> None:
        """Rows gathered but not sent go out as not_sent; the rest were never read. The
        first row not sent: the first gathered for the job, else the block being taken
        (None: the rows after the last one read)."""
        job, self.job = self.job, _Job()
        first_label = (job.texts[0].index[0] if job.texts
                       else job.unsent[0].index[0] if job.unsent else self._current_block)
        if job.texts:
            text = pd.concat(job.texts)
            status = _status_frame(text.index, "not_sent", "NOT_SENT",
                                   f"not sent: the run stopped first ({reason})")
            if self.key_column is not None and self._key_label() is not None:
                status["_key"] = text[self.key_column].to_numpy()
            job.unsent.append(status)
            self.result.not_sent_rows += len(text)
        if job.unsent:
            self._write(job, None)
        if self.result.stopped_at is None:
            self.result.stopped_at = _plain(first_label)
            self.result.stop_reason = reason

    def _key_label(self) -> str | None:
        if self.operation == "insert":
            return None
        return self.external_id if self.operation == "upsert" else "Id"

    def _take(self, block: pd.DataFrame) -> None:
        self.result.rows += len(block)
        self._current_block = block.index[0]
        self._last_label = block.index[-1]
        self._show()
        rows, unsent = self._plan_block(block)
        if unsent is not None:
            self.job.unsent.append(unsent)
            self.result.invalid_rows += len(unsent)
        if rows is None:
            self._current_block = None
            return
        text, data, starts = rows
        budget = int(self.options.max_bytes) - len(self.header)
        most = self.options.max_records or 150_000_000  # Bulk API 2.0: 150 M records a job
        start, n = 0, len(text)
        while start < n:
            self._current_block = text.index[start]  # the first row not in a job yet
            stop = int(np.searchsorted(starts, starts[start] + budget - self.job.size,
                                       side="right")) - 1
            stop = min(stop, start + most - self.job.records)
            if stop <= start:  # the job is full
                self._flush()
                continue
            self.job.texts.append(text.iloc[start:stop])
            self.job.data.append(data[int(starts[start]):int(starts[stop])])
            self.job.sizes.append(np.diff(starts[start:stop + 1]))
            self.job.records += stop - start
            self.job.size += int(starts[stop] - starts[start])
            start = stop
            if self.job.records >= most or self.job.size >= budget:
                self._flush()
        self._current_block = None

    def _flush(self) -> None:
        if not self.job.texts:
            if self.job.unsent:
                self._drain()  # the jobs before these rows first: the file stays in order
                job, self.job = self.job, _Job()
                self._write(job, None)
            return
        # Room first: the job's rows stay the load's (not_sent if it stops) until sent.
        while len(self.inflight) >= self.settings["parallel"]:
            self._finish_oldest()
        job, self.job = self.job, _Job()
        text = pd.concat(job.texts) if len(job.texts) > 1 else job.texts[0]
        data = self.header + b"".join(job.data)
        offsets = np.concatenate([[len(self.header)], len(self.header)
                                  + np.cumsum(np.concatenate(job.sizes))])
        job.texts = [text]
        job.data, job.sizes = [], []
        index = len(self.record.data["jobs"])
        labels = text.index
        self.record.data["jobs"].append({"job_id": None, "stage": None,
                                         "start": _plain(labels[0]), "stop": _plain(labels[-1]),
                                         "rows": len(text)})
        self.record.save()
        self.result.job_rows.append({"job_id": None, "first": _plain(labels[0]),
                                     "last": _plain(labels[-1]), "rows": len(text),
                                     "bytes": len(data), "state": None})
        future = self.pool.submit(self._run_job, text, data, offsets, index)
        self.inflight.append((future, job, index))

    def _run_job(self, text: pd.DataFrame, data: bytes, offsets: np.ndarray, index: int):
        n = len(text)
        plan = plan_stage.LoadPlan(
            self.org, self.sobject, self.operation, self.key, text, self.options,
            Problems.from_blocks([], text.index[:0]), np.arange(n), text,
            [Chunk(range(0, n), data)], self.key_case_insensitive, 0, fields=self.fields)
        run = _JobRun(plan, parallel=1, reporter=None, clock=self.settings["clock"],
                      sleep=self.settings["sleep"], lock_retries=self.settings["lock_retries"],
                      run_id=self.run_id)
        run.data, run.offsets, run.header = data, offsets, self.header
        run.results_lock = self.results_lock
        run.record = _JobJournal(self.record, index)  # type: ignore[assignment]
        self.live[index] = run
        if self.stop.is_set():
            run._no_new_jobs.set()
        try:
            run.start(self.settings["timeout"])
        except errors.SFBulkError:
            pass  # no job could be created: its rows come back not_sent, the error kept
        finally:
            self.live.pop(index, None)
        return run

    def _interrupt(self) -> None:
        """Ctrl-C, as for a frame: no job is created or closed any more and polling stops;
        jobs already closed keep running in the org (their rows come back pending)."""
        self.stop.set()
        for run in list(self.live.values()):
            run._no_new_jobs.set()
            run._stop.set()

    def _finish_oldest(self) -> None:
        future, job, index = self.inflight.pop(0)
        run = future.result()
        self._write(job, run, index)
        run.release()

    def _drain(self) -> None:
        while self.inflight:
            self._finish_oldest()

    def _write(self, job: _Job, run: Any, index: int | None = None) -> None:
        frames = list(job.unsent)
        if run is not None:
            with self.results_lock:
                aligned = run.aligned()
            text = job.texts[0]
            if self.key_column is not None and self._key_label() is not None:
                aligned = aligned.assign(_key=text[self.key_column].to_numpy())
            frames.append(aligned)
            info = run.infos[0]
            row = self.result.job_rows[index]
            row["job_id"] = run.outcomes[0].job_id
            row["state"] = info.state if info is not None else None
            self.result.exceptions += run.exceptions
            self.result.rows_sent += sum(len(o.positions) for o in run.outcomes[:1]
                                         if o.sent)
            self.result.jobs_run += 1
        if not frames:
            return
        out = pd.concat(frames) if len(frames) > 1 else frames[0]
        out = out.sort_index(kind="stable")
        self.result.add(out)
        self.out.write(out)
        self._show(final=False)
        if run is not None:
            row = self.result.job_rows[index]
            span = (f"{self.label} {row['first']}" if row["first"] == row["last"]
                    else f"{self.label}s {row['first']}-{row['last']}")
            self._report(f"job {index + 1} ({row['job_id']}): {span}, "
                         f"{plural(row['rows'], 'row')}, {row['state']}")

    def _show(self, *, rows: int | None = None, last: Any = None, final: bool = False,
              stop_text: str | None = None, phase: str | None = None,
              invalid: int = 0) -> None:
        """Feeds the notebook panel (when there is one) what the load has done so far.
        ``phase="checked"``: the end of validate_csv, ``invalid`` rows with errors."""
        if self.panel is None:
            return
        result = getattr(self, "result", None)
        if rows is None and result is not None:
            rows = result.rows
        if last is None and result is not None:
            last = self._last_label
        phase = phase or (self.phase if not final else ("stopped" if stop_text else "done"))
        fraction = self.fraction_read() if self.fraction_read is not None else None
        from .stream_panel import StreamProgress  # the panel's module: imported already

        try:
            self.panel(StreamProgress(
                title=self.title,
                results="" if self.results_path is None else str(self.results_path),
                phase=phase,
                label=self.label, rows=rows or 0, last_label=_plain(last),
                fraction=fraction, jobs_done=result.jobs_run if result else 0,
                jobs_running=len(getattr(self, "inflight", [])),
                counts=dict(result._counts) if result else (
                    {"invalid": invalid} if invalid else {}),
                elapsed=time.monotonic() - self.started, stop_text=stop_text), final=final)
        except Exception:  # a broken display must never break the load
            self.panel = None

    def _report(self, message: str) -> None:
        if self.panel is not None:
            return  # the panel says it
        progress = self.settings["progress"]
        if callable(progress):
            try:
                progress(message)
            except Exception:  # a broken display must never break the load
                self.settings["progress"] = False
        elif progress in ("auto", "text", True):
            print(message, file=sys.stderr, flush=True)


def _repeat_text(problems: pd.DataFrame, label: str, *, total: int | None = None,
                 sent: bool = True) -> str:
    """The error of repeated keys: the first, how many more (in its block, or ``total``
    in the input), and the fix."""
    first = problems.iloc[0]
    if total is not None:
        more = f" ({total - 1:,} more repeated key(s) in the file)" if total > 1 else ""
    else:
        more = f" ({len(problems) - 1:,} more in the block)" if len(problems) > 1 else ""
    done = "Nothing more was sent" if sent else "Nothing was sent"
    return (f"{label} {first['row']}, column {first['column']}: {first['message']}{more}. "
            f"{done}. Fix: {first['hint']}")


def _status_frame(index: pd.Index, status: str, code: str | None, message: str | None) -> pd.DataFrame:
    n = len(index)
    na = pd.array([pd.NA] * n, dtype="string")
    return pd.DataFrame({
        "sf_id": na, "sf_status": pd.array([status] * n, dtype="string"),
        "sf_error_code": pd.array([code] * n, dtype="string"),
        "sf_error_message": pd.array([message] * n, dtype="string"),
        "sf_error_fields": na, "sf_job_id": na,
        "sf_attempts": pd.array([0] * n, dtype="Int64")}, index=index)


def _column_or_none(frame: pd.DataFrame, key: str | None) -> Any:
    try:
        return plan_stage._column_of(frame, key) if key is not None else None
    except StopIteration:
        return None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
            for k, v in options.items()}


# -- the results file -------------------------------------------------------------------


class _ResultsFile:
    """The results, a job's rows at a time: CSV (one header line, UTF-8) or Parquet, by
    the name's extension."""

    @staticmethod
    def check(path: Path) -> None:
        if path.suffix.lower() not in (".csv", ".parquet"):
            raise errors.InputError(f"results={str(path)!r}: write .csv or .parquet (say which "
                                    "by the name's extension)")
        if path.is_dir():
            raise errors.InputError(f"results={str(path)!r} is a directory; give a file name")
        if not path.parent.is_dir():
            raise errors.InputError(f"results={str(path)!r}: the directory {path.parent} does "
                                    "not exist")

    def __init__(self, path: Path, label: str, key: str | None):
        self.path, self.label, self.key = path, label, key
        fields = [pa.field(label, pa.int64())]
        if key is not None:
            fields.append(pa.field(key, pa.large_string()))
        fields += [pa.field(c, pa.int64() if c == "sf_attempts" else pa.large_string())
                   for c in results.STATUS_COLUMNS]
        self.schema = pa.schema(fields)
        self.parquet = path.suffix.lower() == ".parquet"
        self.rows = 0
        if self.parquet:
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(path, self.schema)
        else:
            import pyarrow.csv as pacsv

            self.writer = pacsv.CSVWriter(path, self.schema)

    def write(self, frame: pd.DataFrame) -> None:
        columns = [pa.array(np.asarray(frame.index, np.int64), pa.int64())]
        if self.key is not None:
            key = frame["_key"] if "_key" in frame.columns else pd.Series([None] * len(frame))
            columns.append(pa.array(key.to_numpy(object), pa.large_string(), from_pandas=True))
        for c in results.STATUS_COLUMNS:
            columns.append(pa.array(frame[c].array, pa.int64() if c == "sf_attempts"
                                    else pa.large_string(), from_pandas=True))
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))
        self.rows += len(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def remove_if_empty(self) -> None:
        if not self.rows:
            self.path.unlink(missing_ok=True)


# -- the summary ------------------------------------------------------------------------


class StreamResult:
    """What a streamed load did: counts by status, errors grouped by code and field, one
    row per job; the rows themselves are in the results file (`path`, ``frame(limit=)``).
    """

    def __init__(self, load: _StreamLoad):
        self.path = load.results_path
        self.run_id = load.run_id
        self.sobject = load.sobject
        self.operation = load.operation
        self.label = load.label
        self.source = load.source
        self.started = time.time()
        self.finished_at: float | None = None
        self.rows = 0  # rows read (blank lines not counted)
        self.rows_sent = 0
        self.invalid_rows = 0
        self.not_sent_rows = 0
        self.jobs_run = 0
        self.api_calls = 0
        self.stopped_at: Any = None  # the first row not sent when the run stopped part way
        self.stop_reason: str | None = None
        self.exceptions: list[BaseException] = []
        self.job_rows: list[dict[str, Any]] = []
        self._counts = dict.fromkeys(results.STATUSES, 0)
        self._errors: dict[tuple, list] = {}

    def add(self, frame: pd.DataFrame) -> None:
        for status, n in frame["sf_status"].value_counts().items():
            self._counts[status] = self._counts.get(status, 0) + int(n)
        summary = results.summarize_errors(frame)
        for row in summary.itertuples(index=False):
            key = (row.status, row.code, row.fields, row.message)
            if key in self._errors:
                self._errors[key][0] += row.rows
                self._errors[key][2] = list(dict.fromkeys(self._errors[key][2] + row.examples))[:3]
            elif len(self._errors) < 1000:  # messages are grouped without their values
                self._errors[key] = [row.rows, _plain(row.example_index), list(row.examples)]

    @property
    def counts(self) -> pd.Series:
        """Rows by status (sfbulk_nb.results.STATUSES), every status listed."""
        return pd.Series(self._counts, dtype=np.int64, name="rows")

    @property
    def errors(self) -> pd.DataFrame:
        """Rows that went wrong, grouped by status, code, fields and message: ``rows``,
        ``first`` (the first line or row of the group) and up to three offending values."""
        rows = [{"status": k[0], "code": k[1], "fields": k[2], "message": k[3], "rows": v[0],
                 f"first_{self.label}": v[1], "examples": v[2]} for k, v in self._errors.items()]
        columns = ["status", "code", "fields", "message", "rows", f"first_{self.label}",
                   "examples"]
        # Shown a line a row, long values cut (a 300-character Name squeezed the message).
        return ShownFrame.of(pd.DataFrame(rows, columns=columns).sort_values(
            "rows", ascending=False, kind="stable").reset_index(drop=True))

    @property
    def jobs(self) -> pd.DataFrame:
        """One row per job: its id, the first and last line (or row) it carried, rows,
        bytes uploaded and final state."""
        return pd.DataFrame(self.job_rows, columns=["job_id", "first", "last", "rows",
                                                    "bytes", "state"]).rename(
            columns={"first": f"first_{self.label}", "last": f"last_{self.label}"})

    @property
    def ok(self) -> bool:
        """Every row read was written, and the run went to the end."""
        return self.stopped_at is None and not self.stop_reason and not any(
            self._counts.get(s) for s in results.ERROR_STATUSES) and not self.exceptions

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.started

    def frame(self, limit: int | None = None, status: str | None = None) -> pd.DataFrame:
        """The results file's rows as a DataFrame: the first ``limit`` (None: all, which
        reads the whole file into memory), optionally only those with sf_status
        ``status``."""
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
            raise errors.InputError(f"limit must be a whole number of rows or None, not {limit!r}")
        parts, got = [], 0
        for batch in self._batches():
            table = pa.Table.from_batches([batch])
            if status is not None:
                table = table.filter(pc.equal(table["sf_status"], status))
            if limit is not None:
                table = table.slice(0, limit - got)
            parts.append(table)
            got += table.num_rows
            if limit is not None and got >= limit:
                break
        if not parts:
            return pd.DataFrame()
        frame = pa.concat_tables(parts).to_pandas(types_mapper={
            pa.large_string(): pd.StringDtype(), pa.string(): pd.StringDtype(),
            pa.int64(): pd.Int64Dtype()}.get)
        return ShownFrame.of(frame)  # as a BulkResult's frame shows: a line a row

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if self.path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(self.path).iter_batches(batch_size=65_536)
            return
        import pyarrow.csv as pacsv

        names = pacsv.open_csv(self.path).schema.names
        types = {n: pa.int64() if n in (self.label, "sf_attempts") else pa.large_string()
                 for n in names}
        reader = pacsv.open_csv(self.path, convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True))
        yield from reader

    def raise_for_status(self) -> "StreamResult":
        """Raises RunError when rows went wrong or the run stopped part way."""
        if not self.ok:
            raise errors.RunError(f"{self!r}")
        return self

    def stop_text(self) -> str:
        if self.stopped_at is None and not self.stop_reason:
            return ""
        counts = (f"{self.rows_sent:,} sent, {self.not_sent_rows:,} read but not sent, "
                  f"{self.invalid_rows:,} invalid")
        if self.stopped_at is None:
            return (f"stopped: {self.stop_reason}. Every row read is in {self.path} with its "
                    f"status ({counts})")
        where = f"{self.label} {self.stopped_at}"
        again = f"; carry on with start_line={self.stopped_at}" if self.label == _LINE else ""
        return (f"stopped: {self.stop_reason}. The rows before {where} are in {self.path} "
                f"with their status ({counts}); from {where} on nothing was sent{again}")

    def __repr__(self) -> str:
        counts = ", ".join(f"{n:,} {s.replace('_', ' ')}" for s, n in self._counts.items() if n)
        head = (f"<StreamResult {self.operation} of {plural(self.rows, 'row')} into "
                f"{self.sobject}: "
                f"{counts or 'no rows'}; {len(self.job_rows)} job(s), {self.api_calls} API "
                f"calls; results in {self.path}>")
        lines = [head]
        if self.stop_reason:
            lines.append(self.stop_text())
        for row in self.errors.head(5).itertuples(index=False):
            lines.append(f"  {row.rows:>7,} {row.status} {row.code}"
                         f"{f' [{row.fields}]' if row.fields else ''}: {row.message[:100]} "
                         f"(first on {self.label} {getattr(row, f'first_{self.label}')})")
        return "\n".join(lines)
