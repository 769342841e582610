"""The local org's CSV layer: parse uploaded job data, render result CSVs.

Pure functions on bytes and str; the HTTP layer decides what to do with the text and the
errors. Salesforce's rules (protocol notes §2.2, §3.2, §4.3):

- UTF-8, values optionally enclosed in ``"`` with ``""`` for a literal quote; inside quotes
  the delimiter and any line break are data. Values are never trimmed.
- Records end at the job's ``lineEnding`` only: with ``LF`` a lone ``\\r`` is data, with
  ``CRLF`` a lone ``\\n`` (or ``\\r``) is data, quoted or not.
- Result files quote every value; the caller's header names are echoed as sent.

Parsing has two paths that must agree exactly. The fast path hands the text to the C
``csv`` reader once ``_records_fast`` has checked that the reader cannot read it differently
from Salesforce. The exact path is a value-by-value scanner; it handles every other input
and produces every error message, with its line number.

A job's upload (``open_upload``) is read from where it is stored, a piece at a time, each
piece ending with a record: when those checks pass on every piece, Arrow's CSV reader reads
it a piece at a time, and no more than a piece of it is held. Any other upload is read
whole, as text, by the paths above (which name its errors).
"""
from __future__ import annotations

import csv
import functools
import heapq
import io
import itertools
import re
import sys
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv

from .gcpause import gc_paused

__all__ = [
    "DELIMITERS",
    "LINE_ENDINGS",
    "CsvFormatError",
    "Upload",
    "UploadSource",
    "open_upload",
    "parse_upload",
    "render_columns",
    "render_header",
    "render_rows",
]

DELIMITERS = {
    "BACKQUOTE": "`", "CARET": "^", "COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}

_BOM = "\ufeff"
# Bytes of a stored upload read at a time; a piece checked at a time ends at a record's end,
# so it is this plus the rest of the record it cuts.
READ_SIZE = 1 << 20
# A piece longer than this (a record spanning 16 MB, or quotes that never close) is not
# worth cutting further: the upload is then read whole instead.
MAX_PIECE = 16 << 20
# Our guess at the wording: Salesforce's text for an empty upload is not recorded.
_NO_CONTENT = "ClientInputError : No content found in the uploaded data"

_start = re.Match.start
_LF = re.compile(r"\n")
_CR = re.compile(r"\r")
# Written to start with the character sought, so the engine can skip ahead to it quickly.
_LONE_LF = re.compile(r"\n(?<!\r\n)")
_LONE_CR = re.compile(r"\r(?!\n)")

# Possessive quantifiers (Python 3.11+) let the regex engine drop its backtracking state on
# multi-megabyte inputs; the patterns below match the same text without them, only slower.
_POSSESSIVE = "+" if sys.version_info >= (3, 11) else ""


class CsvFormatError(ValueError):
    """The upload is not valid CSV for the job's settings.

    ``str(e)`` is the job's ``errorMessage``, in Salesforce's style, e.g.
    ``ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF``.
    """


def parse_upload(
    data: bytes, column_delimiter: str = "COMMA", line_ending: str = "LF"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an uploaded CSV; every row has exactly as many values as the header.

    ``column_delimiter`` and ``line_ending`` are the job's setting names (``"COMMA"``,
    ``"CRLF"``, ...). Raises ``CsvFormatError`` when the upload is not valid for them.
    """
    return _parse(data, column_delimiter, line_ending, fast=True)


def render_rows(
    rows: Iterable[Sequence[str]], line_ending: str = "LF", column_delimiter: str = "COMMA"
) -> str:
    """Data lines of a result CSV: every value quoted, each line ended by the line ending.

    Returns ``""`` for no rows. Values must be ``str``.
    """
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return ""
    if not all(rows):
        raise ValueError("a result row needs at least one value")
    # Join everything with two separator characters that occur in no value, so quotes can be
    # doubled with one replace over the whole text instead of one call per value.
    separators = sum(map(len, rows)) - len(rows)
    for value_sep, row_sep in _separator_pairs():
        body = row_sep.join(map(value_sep.join, rows))
        if body.count(value_sep) == separators and body.count(row_sep) == len(rows) - 1:
            break
    else:
        raise ValueError("the values use every candidate separator character")
    body = (
        body.replace('"', '""')
        .replace(value_sep, f'"{delimiter}"')
        .replace(row_sep, f'"{terminator}"')
    )
    return f'"{body}"{terminator}'


def render_columns(
    columns: Sequence[pa.Array], line_ending: str = "LF", column_delimiter: str = "COMMA"
) -> bytes:
    """``render_rows``' lines, UTF-8 encoded, for rows given column by column as Arrow
    string arrays of one length (no nulls): Arrow's CSV writer quotes them in C, about 3x
    faster than render_rows for a batch of result rows. (Its line ending is settable only
    in recent pyarrow: CRLF lines go through render_rows.)"""
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    if not columns or not len(columns[0]):
        return b""
    if terminator != "\n":
        rows = list(zip(*(column.to_pylist() for column in columns)))
        return render_rows(rows, line_ending, column_delimiter).encode()
    table = pa.Table.from_arrays(list(columns), names=[str(k) for k in range(len(columns))])
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, delimiter=delimiter,
                                                   quoting_style="all_valid"))
    return out.getvalue()


def render_header(
    names: Sequence[str],
    quoted_prefix_count: int,
    line_ending: str = "LF",
    column_delimiter: str = "COMMA",
) -> str:
    """Header line of a result CSV, line ending included.

    The first ``quoted_prefix_count`` names (``sf__Id``, ``sf__Created`` / ``sf__Error``) are
    quoted; the caller's own column names follow unquoted, as Salesforce echoes them
    (``"sf__Id","sf__Created",Name,ShippingCity``). A caller's name that would not survive
    unquoted (delimiter, quote, line break, or empty) is quoted so the file stays parseable.
    """
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    unsafe = re.compile(f'[{re.escape(delimiter)}"\\r\\n]|\\A\\Z')
    fields = [_quote(name) for name in names[:quoted_prefix_count]]
    # Our guess: whether a name the caller quoted comes back quoted is unrecorded; only the
    # names that need quotes get them.
    fields += [
        _quote(name) if unsafe.search(name) else name for name in names[quoted_prefix_count:]
    ]
    return delimiter.join(fields) + terminator


def _parse(
    data: bytes, column_delimiter: str, line_ending: str, fast: bool
) -> tuple[list[str], list[list[str]]]:
    """parse_upload, with the fast path optional so tests and benchmarks can compare both."""
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    text = _decode(data)
    _check_line_ending(text, line_ending)
    with gc_paused():
        records = _records_fast(text, delimiter, terminator) if fast else None
        if records is None:
            records = _records_exact(text, delimiter, terminator)
    return records[0], records[1:]


class UploadSource(Protocol):
    """An upload where it is stored (the local org's SQLite file), read a piece at a time."""

    size: int

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the end)."""


class _BytesSource:
    """An upload held in memory, as an UploadSource."""

    def __init__(self, data: bytes | bytearray):
        self.data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset:offset + length])


class Upload:
    """A validated upload whose rows are read batch by batch, so a million-row job never
    holds all its rows as Python lists at once.

    Built from one of two readers: `rows(size, start)` yielding lists of rows, or
    `columns(size, start)` yielding lists of columns; the other form is derived."""

    def __init__(self, header: list[str], rows: int, *, row_reader=None, column_reader=None):
        self.header = header
        self.rows = rows
        self._rows = row_reader
        self._columns = column_reader

    def batches(self, size: int, start: int = 0) -> Iterator[list[list[str]]]:
        """The data rows from row `start` on (0 = first row after the header), `size` at a
        time."""
        if self._rows is not None:
            return self._rows(size, start)
        return (list(map(list, zip(*columns))) for columns in self._columns(size, start))

    def column_batches(self, size: int, start: int = 0) -> Iterator[list[list[str]]]:
        """As `batches`, each batch given as its columns (one list of texts per header
        name), the form the ingest engine processes."""
        if self._columns is not None:
            return self._columns(size, start)
        width = len(self.header)
        return ([list(column) for column in zip(*batch)] if batch else [[]] * width
                for batch in self._rows(size, start))


def open_upload(data: bytes | bytearray | UploadSource, column_delimiter: str = "COMMA",
                line_ending: str = "LF", *, read_size: int = READ_SIZE,
                max_piece: int = MAX_PIECE) -> Upload:
    """Validate an upload completely (every error parse_upload would raise is raised here,
    before any row is handed out) and return it for reading in batches.

    `data` is the upload's bytes, or an UploadSource to read it from a piece at a time
    (`read_size` bytes a read): an upload that Arrow's reader takes (`_checked_in_pieces`)
    is then checked and read a piece at a time, never held whole."""
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    source = _BytesSource(data) if isinstance(data, (bytes, bytearray)) else data
    pieces = functools.partial(_record_pieces, source, read_size, max_piece)
    shape = _checked_in_pieces(pieces, delimiter, terminator, line_ending)
    if shape is not None:
        header, count = shape
        return Upload(header, count, column_reader=functools.partial(
            _arrow_column_batches, pieces, len(header), delimiter))
    return _open_whole(source.read(0, source.size), delimiter, terminator, line_ending)


def _open_whole(data: bytes, delimiter: str, terminator: str, line_ending: str) -> Upload:
    """open_upload for an upload read whole (as text, unless Arrow's reader takes it)."""
    text = _decode(data)
    _check_line_ending(text, line_ending)
    with gc_paused():
        fast = _fast_path_applies(text, delimiter, terminator)
        header = _arrow_header(text, delimiter, terminator) if fast else None
    if header is not None:
        del text  # checked: Arrow reads the bytes, and a big upload need not be held twice
        table = _arrow_read(data, len(header), delimiter)
        if table is not None:
            return Upload(header, table.num_rows,
                          column_reader=functools.partial(_table_columns, table))
        text = _decode(data)
    with gc_paused():
        shape = _stream_shape(text, delimiter) if fast else None
    if shape is not None:
        header, count = shape

        def from_reader(size: int, start: int) -> Iterator[list[list[str]]]:
            rows = itertools.islice(_stream_rows(text, delimiter), 1 + start, 1 + count)
            while True:
                with gc_paused():
                    batch = list(itertools.islice(rows, size))
                if not batch:
                    return
                yield batch

        return Upload(header, count, row_reader=from_reader)
    with gc_paused():
        records = _records_exact(text, delimiter, terminator)

    def from_list(size: int, start: int) -> Iterator[list[list[str]]]:
        for k in range(1 + start, len(records), size):
            yield records[k:k + size]

    return Upload(records[0], len(records) - 1, row_reader=from_list)


def _arrow_header(text: str, delimiter: str, terminator: str) -> list[str] | None:
    """The header when Arrow's C CSV reader (threaded, straight into columns) reads this
    text exactly as csv.reader does, else None.

    On top of what makes csv.reader exact (`_fast_path_applies`, checked by the caller),
    Arrow needs: a header on one physical line (it is skipped as a line), more than one
    column, and no empty line outside quotes (Arrow reads one as a row of empty values;
    csv.reader's path drops trailing ones and reports the others as ragged rows). A
    ragged row makes `_arrow_read` give up instead."""
    if _blank_line_outside_quotes(text, terminator):
        return None
    return _header_line(text, delimiter, terminator)


def _blank_line_outside_quotes(text: str, terminator: str) -> bool:
    """Whether an empty line (two line endings in a row) is outside quotes."""
    blank = terminator * 2
    return blank in text and _first_outside_quotes(
        text, map(_start, re.finditer(re.escape(blank), text))) is not None


def _header_line(text: str, delimiter: str, terminator: str) -> list[str] | None:
    """The header as Arrow's reader needs it: on the first physical line (Arrow skips it as
    a line) and more than one column; else None."""
    end = text.find(terminator)
    first_line = text[:end]
    # Arrow skips the header as a physical line, blind to quotes: it must hold no other
    # line break character.
    if end < 0 or "\r" in first_line or "\n" in first_line:
        return None
    try:
        header = next(_stream_rows(first_line, delimiter), None)
    except csv.Error:
        return None
    return header if header is not None and len(header) > 1 else None


def _arrow_read(data: bytes, width: int, delimiter: str, *, skip_header: bool = True,
                kept: int | None = None) -> pa.Table | None:
    """Every data row of an upload `_arrow_header` accepted (or of a piece of it after the
    first, `skip_header=False`), as a table of text columns (the first `kept` of them; all
    by default); None when a row is ragged (csv.reader's path then names it)."""
    names = [str(k) for k in range(width)]
    try:
        return pacsv.read_csv(
            pa.BufferReader(data),
            # One thread: as fast for a piece of 1 MB, and the other core is left to the
            # HTTP threads.
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(skip_header),
                                           use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
                newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                include_columns=names[:kept], check_utf8=False))  # the caller decoded it
    except pa.ArrowInvalid:
        return None


def _arrow_column_batches(pieces: Callable[[], Iterator[bytes]], width: int, delimiter: str,
                          size: int, start: int) -> Iterator[list[list[str]]]:
    """The data rows from row `start` on, `size` at a time, each batch as its columns:
    Arrow's reader reads the upload a piece at a time (checked by `_checked_in_pieces`, so
    every piece reads) and its tables are cut to `size` rows."""
    tables = (_arrow_read(piece, width, delimiter, skip_header=k == 0)
              for k, piece in enumerate(pieces()))
    for table in _rebatched(tables, size, start):
        with gc_paused():
            batch = [column.to_pylist() for column in table.columns]
        yield batch


def _rebatched(tables: Iterable[pa.Table], size: int, start: int) -> Iterator[pa.Table]:
    """The rows of `tables` from row `start` on, as tables of `size` rows (the last one
    may be shorter)."""
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        if start >= table.num_rows:
            start -= table.num_rows
            continue
        table, start = table.slice(start), 0
        held.append(table)
        count += table.num_rows
        if count >= size:
            table = pa.concat_tables(held)
            cut = 0
            while count - cut >= size:
                yield table.slice(cut, size)
                cut += size
            held, count = [table.slice(cut)], count - cut
    if count:
        yield pa.concat_tables(held)


# -- an upload checked a piece at a time --------------------------------------------------------


class _PieceTooLong(Exception):
    """No record ends within MAX_PIECE bytes."""


def _checked_in_pieces(pieces: Callable[[], Iterator[bytes]], delimiter: str, terminator: str,
                       line_ending: str) -> tuple[list[str], int] | None:
    """(header, data row count), when every check the whole upload would go through on its
    way to Arrow's reader (`_open_whole`) passes, made a piece at a time; else None (then
    the upload is read whole, which takes it the same way or names its error).

    Each piece ends at a line feed outside quotes (`_record_pieces`), so each piece is
    checked as if it were a whole text: quotes are counted from an even number, no quoted
    value crosses into the next piece, and the first line break outside quotes (where
    `_check_line_ending` looks) and the header line are in the first piece. Only an empty
    line split between two pieces is looked for across them. Arrow's reader reads every
    piece here, keeping one column, so every row's width is checked before a job writes
    any row."""
    header = None
    count = 0
    previous = ""
    try:
        for piece in pieces():
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError:
                return None  # pieces end at line feeds, never inside a character
            first = header is None
            if not first and piece.startswith(_BOM.encode()):
                return None  # Arrow's reader would drop it as a BOM: it is data here
            if first:
                text = text.removeprefix(_BOM)
                try:
                    _check_line_ending(text, line_ending)
                except CsvFormatError:
                    return None
                header = _header_line(text, delimiter, terminator)
                if header is None:
                    return None
            if (not _fast_path_applies(text, delimiter, terminator)
                    or _blank_line_outside_quotes(text, terminator)
                    or (previous.endswith(terminator) and text.startswith(terminator))):
                return None
            previous = text[-len(terminator):]
            del text
            table = _arrow_read(piece, len(header), delimiter, skip_header=first, kept=1)
            if table is None:
                return None
            count += table.num_rows
    except _PieceTooLong:
        return None
    return (header, count) if header is not None else None


def _record_pieces(source: UploadSource, read_size: int, max_piece: int) -> Iterator[bytes]:
    """The upload's bytes, read `read_size` at a time, in pieces that each end at a line
    feed with an even number of quotes before it (outside quotes, when quoting is valid;
    when it is not, a piece fails its checks anyway) or at the end of the upload. Raises
    _PieceTooLong when no such line feed comes within `max_piece` bytes."""
    pending = bytearray()
    quotes = 0  # in pending, up to `scanned`
    scanned = 0  # pending's bytes already searched for a cut, without one
    for offset in range(0, source.size, read_size):
        pending += source.read(offset, read_size)
        cut = _last_line_feed_outside_quotes(pending, scanned, quotes)
        if cut < 0:
            quotes += pending.count(b'"', scanned)
            scanned = len(pending)
            if scanned > max_piece:
                raise _PieceTooLong
            continue
        yield bytes(pending[:cut + 1])
        del pending[:cut + 1]
        quotes, scanned = 0, 0
    if pending:
        yield bytes(pending)


def _last_line_feed_outside_quotes(data: bytearray, start: int, quotes_before: int) -> int:
    """The position of the last line feed at or after `start` with an even number of
    quotes before it (`quotes_before` of them before `start`), or -1."""
    quotes = quotes_before + data.count(b'"', start)
    end = len(data)
    while (line_feed := data.rfind(b"\n", start, end)) >= 0:
        quotes -= data.count(b'"', line_feed, end)
        if quotes % 2 == 0:
            return line_feed
        end = line_feed
    return -1


def _table_columns(table: pa.Table, size: int, start: int) -> Iterator[list[list[str]]]:
    for k in range(start, table.num_rows, size):
        with gc_paused():
            batch = [column.to_pylist() for column in table.slice(k, size).columns]
        yield batch


def _lines(text: str) -> Iterator[str]:
    """The text in pieces ending at each line feed, for csv.reader. Not io.StringIO: it
    would hold a second copy of the whole upload at four bytes a character. A quoted value
    spanning pieces is read across them, its line breaks kept as data."""
    find = text.find
    start = 0
    while True:
        end = find("\n", start)
        if end < 0:
            if start < len(text):
                yield text[start:]
            return
        yield text[start:end + 1]
        start = end + 1


def _stream_rows(text: str, delimiter: str) -> Iterator[list[str]]:
    """csv.reader's records with _drop_blank_lines applied on the fly: an empty line is a
    row of one empty value unless only empty lines follow it."""
    blanks = 0
    for record in csv.reader(_lines(text), delimiter=delimiter, strict=True):
        if not record:
            blanks += 1
            continue
        for _ in range(blanks):
            yield [""]
        blanks = 0
        yield record


def _stream_shape(text: str, delimiter: str) -> tuple[list[str], int] | None:
    """(header, data row count) when every record has the header's width, read without
    keeping the rows; None when the exact path must decide (and name the error)."""
    rows = _stream_rows(text, delimiter)
    try:
        header = next(rows, None)
        if header is None:
            return None
        width = len(header)
        count = 0
        for record in rows:
            if len(record) != width:
                return None
            count += 1
    except csv.Error:
        return None  # a value over csv.field_size_limit(), or NUL on Python 3.10
    return header, count


def _setting(table: dict[str, str], name: str, key: str) -> str:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {key} {name!r}; expected one of {', '.join(table)}") from None


def _decode(data: bytes) -> str:
    data = bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        line = data.count(b"\n", 0, exc.start) + 1
        # Our guess at the wording: Salesforce's text for undecodable bytes is not recorded.
        raise CsvFormatError(
            f"ClientInputError : Invalid UTF-8 byte 0x{bad:02x} at line {line}"
        ) from None
    if text.startswith(_BOM):
        text = text[1:]  # our guess: BOM handling is unrecorded; clients strip it themselves
    if not text:
        raise CsvFormatError(_NO_CONTENT)
    return text


def _check_line_ending(text: str, line_ending: str) -> None:
    """Reject a file whose header line does not end with the job's line ending.

    The header ends at the first line feed outside quotes.
    """
    end = _first_outside_quotes(text, map(_start, _LF.finditer(text)))
    if end is None:
        return  # a header without any line break: nothing to compare
    is_crlf = end > 0 and text[end - 1] == "\r"
    if is_crlf != (line_ending == "CRLF"):
        raise CsvFormatError(
            "ClientInputError : LineEnding is invalid on user data. "
            f"Current LineEnding setting is {line_ending}"
        )


# -- fast path ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _quoting_shape(delimiter: str) -> re.Pattern[str]:
    """Spans the whole text when every quote belongs to a quoted value that is a whole field.

    A quoted value starts right after a delimiter, a line feed or the start of the text,
    may hold anything, doubled quotes included, and ends before a delimiter, a line break
    or the end of the text; outside them no quote may appear.
    """
    d = re.escape(delimiter)
    p = _POSSESSIVE
    quoted = f'"(?<![^{d}\\n]")[^"]*(?:""[^"]*)*"(?=[{d}\\r\\n]|\\Z)'
    return re.compile(f'(?:[^"]+{p}|{quoted})*{p}')


def _fast_path_applies(text: str, delimiter: str, terminator: str) -> bool:
    """Whether csv.reader(strict=True) reads this text exactly as Salesforce does.

    Two things must hold. Every quote belongs to a well-placed quoted value: csv.reader
    would keep a stray quote as data, strict mode or not (and raises on text after a
    closing quote, which the exact path then names: declined here already, so Arrow's
    reader, which would append that text, can rely on this check too). Every line break
    that is data for this job (``\\r`` for LF, a lone ``\\r`` or ``\\n`` for CRLF) is inside
    quotes: csv.reader ends a record at any of them outside quotes.
    """
    if '"' in text and _quoting_shape(delimiter).match(text).end() != len(text):
        return False
    return _first_outside_quotes(text, _data_breaks(text, terminator)) is None


def _records_fast(text: str, delimiter: str, terminator: str) -> list[list[str]] | None:
    """All records via csv.reader, or None when the exact path must decide."""
    if not _fast_path_applies(text, delimiter, terminator):
        return None
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=True)
    try:
        records = list(reader)
    except csv.Error:
        return None  # a value over csv.field_size_limit(), or NUL on Python 3.10
    _drop_blank_lines(records)
    if not records or set(map(len, records)) != {len(records[0])}:
        return None
    return records


def _data_breaks(text: str, terminator: str) -> Iterator[int]:
    """Positions, in order, of the line break characters that are data for this job."""
    if terminator == "\n":
        return map(_start, _CR.finditer(text))
    return heapq.merge(map(_start, _LONE_CR.finditer(text)), map(_start, _LONE_LF.finditer(text)))


# -- exact path --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _field_pattern(delimiter: str, terminator: str) -> re.Pattern[str]:
    """One value and what ends it: groups (quoted body, unquoted value, separator)."""
    d = re.escape(delimiter)
    if terminator == "\n":
        plain = f'[^{d}"\\n]*'
    else:
        plain = f'[^{d}"\\r]*(?:\\r(?!\\n)[^{d}"\\r]*)*'
    ending = re.escape(terminator)
    return re.compile(f'(?:"([^"]*(?:""[^"]*)*)"|({plain}))({d}|{ending}|\\Z)')


_CLOSED_QUOTE = re.compile(r'"[^"]*(?:""[^"]*)*"(?!")')


def _records_exact(text: str, delimiter: str, terminator: str) -> list[list[str]]:
    """All records, scanned value by value (whole lines when they hold no quote).

    Raises CsvFormatError naming the line of the first problem.
    """
    match = _field_pattern(delimiter, terminator).match
    records: list[list[str]] = []
    starts: list[int] = []
    start = 0
    while True:
        starts.append(start)
        end = text.find(terminator, start)
        stop = len(text) if end < 0 else end
        if text.find('"', start, stop) < 0:
            # No quote before the line ending: the record is this line, whatever else it holds.
            line = text[start:stop]
            records.append(line.split(delimiter) if line else [])
            if end < 0:
                break
            start = end + len(terminator)
            continue
        record: list[str] = []
        pos = start
        while True:
            m = match(text, pos)
            if m is None:
                raise _quote_error(text, pos)
            quoted, plain, separator = m.groups()
            record.append(plain if quoted is None else quoted.replace('""', '"'))
            pos = m.end()
            if separator != delimiter:
                break
        records.append(record)
        if not separator:
            break
        start = pos
    _drop_blank_lines(records)
    if not records:
        raise CsvFormatError(_NO_CONTENT)
    width = len(records[0])
    for record, start in zip(records, starts):
        if len(record) != width:
            # Our guess at the wording: Salesforce's text for a ragged row is not recorded.
            raise CsvFormatError(
                f"ClientInputError : Wrong number of columns at line {_line(text, start)}: "
                f"expected {width}, found {len(record)}"
            )
    return records


def _quote_error(text: str, pos: int) -> CsvFormatError:
    """Why the value starting at ``pos`` is malformed. The wording is our guess."""
    if text.startswith('"', pos):
        closed = _CLOSED_QUOTE.match(text, pos)
        if closed is None:
            return CsvFormatError(
                f"ClientInputError : Unterminated quoted value starting at line {_line(text, pos)}"
            )
        bad, where = closed.end(), "after a closing quote"
    else:
        # The unquoted value stopped at neither a delimiter, a line ending nor the end, so
        # it stopped at a quote.
        bad, where = text.index('"', pos), "in an unquoted value"
    return CsvFormatError(
        f"ClientInputError : Unexpected character {text[bad]!r} {where} at line {_line(text, bad)}"
    )


# -- shared helpers ----------------------------------------------------------------------------


def _drop_blank_lines(records: list[list[str]]) -> None:
    """Drop empty lines at the end; an empty line elsewhere is a row of one empty value.

    Blank lines arrive as empty lists, which is how csv.reader reports them.
    """
    while records and not records[-1]:
        records.pop()
    if [] in records:
        records[:] = [record or [""] for record in records]


def _first_outside_quotes(text: str, positions: Iterable[int]) -> int | None:
    """The first of the ascending ``positions`` outside quotes, or None.

    In validly quoted text a position is outside quotes exactly when an even number of
    quotes precede it (each quoted value holds an even number of them).
    """
    quotes = start = 0
    for pos in positions:
        quotes += text.count('"', start, pos)
        if quotes % 2 == 0:
            return pos
        start = pos
    return None


def _line(text: str, pos: int) -> int:
    """1-based line of ``pos``, counting line feeds as a text editor does."""
    return text.count("\n", 0, pos) + 1


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _separator_pairs() -> Iterator[tuple[str, str]]:
    """Candidate pairs of separator characters for render_rows, the most likely free first.

    The ASCII unit and record separators keep a Latin-1 text in its compact storage; the
    later, rarer candidates only matter for data that holds those control characters.
    """
    candidates = [chr(c) for c in (0x1F, 0x1E, 0x1D, 0x1C, 0x00, 0x01, 0x02, 0x03)]
    candidates += [chr(c) for c in range(0xE000, 0xF900)]
    return zip(candidates[::2], candidates[1::2])
