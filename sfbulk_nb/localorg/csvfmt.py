"""The local org's CSV layer: parse uploaded job data, render result CSVs.

Pure functions on bytes and str; the HTTP layer decides what to do with the text and the
errors. Salesforce's rules (protocol notes §2.2, §3.2, §4.3):

- UTF-8, values optionally enclosed in ``"`` with ``""`` for a literal quote; inside quotes
  the delimiter and any line break are data. Values are never trimmed.
- Records end at the job's ``lineEnding`` only: with ``LF`` a lone ``\\r`` is data, with
  ``CRLF`` a lone ``\\n`` (or ``\\r``) is data, quoted or not.
- Result files quote every value; the caller's header names are echoed as sent.

Parsing has two paths that must agree exactly. The fast path hands the text to the C
``csv`` reader, which is only right when nothing it would read differently from Salesforce
is present; one regular expression proves that up front (see ``_fast_path_shape``). The
exact path is a field-by-field scanner; it handles every other input and produces every
error message, with its line number.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import re
import sys
from typing import Iterable, Iterator, Sequence

__all__ = [
    "DELIMITERS",
    "LINE_ENDINGS",
    "CsvFormatError",
    "parse_upload",
    "render_header",
    "render_rows",
]

DELIMITERS = {"BACKQUOTE": "`", "CARET": "^", "COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "TAB": "\t"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}

_BOM = "\ufeff"

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
    fields += [_quote(name) if unsafe.search(name) else name for name in names[quoted_prefix_count:]]
    return delimiter.join(fields) + terminator


def _parse(
    data: bytes, column_delimiter: str, line_ending: str, fast: bool
) -> tuple[list[str], list[list[str]]]:
    """parse_upload, with the fast path optional so tests and benchmarks can compare both."""
    delimiter = _setting(DELIMITERS, column_delimiter, "columnDelimiter")
    terminator = _setting(LINE_ENDINGS, line_ending, "lineEnding")
    text = _decode(data)
    _check_line_ending(text, line_ending)
    with _gc_paused():
        records = _records_fast(text, delimiter, terminator) if fast else None
        if records is None:
            records = _records_exact(text, delimiter, terminator)
    return records[0], records[1:]


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
        text = text[1:]
    if not text:
        # Our guess at the wording: Salesforce's text for an empty upload is not recorded.
        raise CsvFormatError("ClientInputError : No content found in the uploaded data")
    return text


def _check_line_ending(text: str, line_ending: str) -> None:
    """Reject a file whose header line does not end with the job's line ending.

    The header ends at its first line feed outside quotes; with valid quoting a position is
    outside quotes exactly when an even number of quotes precede it.
    """
    quotes = start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return  # a header without any line break: nothing to compare
        quotes += text.count('"', start, end)
        if quotes % 2 == 0:
            break
        start = end + 1
    is_crlf = end > 0 and text[end - 1] == "\r"
    if is_crlf != (line_ending == "CRLF"):
        raise CsvFormatError(
            "ClientInputError : LineEnding is invalid on user data. "
            f"Current LineEnding setting is {line_ending}"
        )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # A large upload allocates millions of lists and strings but no reference cycles; the
    # cyclic collector would walk them over and over and triple the parse time.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- fast path ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _fast_path_shape(delimiter: str, terminator: str) -> re.Pattern[str]:
    """A pattern that spans the whole text only if csv.reader reads it like Salesforce.

    The text must split into quoted values and runs outside quotes. A quoted value starts
    right after a delimiter, a line feed or the start of the text and may hold anything
    (doubled quotes, delimiters, line breaks). A run outside quotes holds no quote
    (csv.reader would keep a stray quote as data, strict mode or not) and no line break other
    than the job's line ending (csv.reader ends a record at any ``\\r`` or ``\\n``). Given
    that, csv.reader(strict=True) ends records and values at the same places as Salesforce
    and reads quoted values the same way; text after a closing quote makes it raise.
    """
    d = re.escape(delimiter)
    p = _POSSESSIVE
    quoted = f'"(?<![^{d}\\n]")[^"]*(?:""[^"]*)*"'
    if terminator == "\n":
        outside = f'[^"\\r]+{p}'
    else:
        outside = f'[^"\\r\\n]+{p}|\\r\\n'
    return re.compile(f"(?:{outside}|{quoted})*{p}")


def _records_fast(text: str, delimiter: str, terminator: str) -> list[list[str]] | None:
    """All records via csv.reader, or None when the exact path must decide."""
    if _fast_path_shape(delimiter, terminator).match(text).end() != len(text):
        return None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        records = list(reader)
    except csv.Error:
        return None  # a value over csv.field_size_limit(), or NUL on Python 3.10
    _drop_blank_lines(records)
    if not records or set(map(len, records)) != {len(records[0])}:
        return None
    return records


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
    """All records, scanned value by value; raises CsvFormatError naming the line."""
    match = _field_pattern(delimiter, terminator).match
    records: list[list[str]] = []
    starts: list[int] = []
    record: list[str] = []
    start = pos = 0
    while True:
        m = match(text, pos)
        if m is None:
            raise _quote_error(text, pos)
        quoted, plain, separator = m.groups()
        record.append(plain if quoted is None else quoted.replace('""', '"'))
        pos = m.end()
        if separator == delimiter:
            continue
        blank = quoted is None and not plain and len(record) == 1
        records.append([] if blank else record)
        starts.append(start)
        if not separator:
            break
        record, start = [], pos
    _drop_blank_lines(records)
    if not records:
        raise CsvFormatError("ClientInputError : No content found in the uploaded data")
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
