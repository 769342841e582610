"""DataFrame -> Bulk API 2.0 CSV bytes: formatting, null policy, byte-exact chunks.

Formatting is chosen from the pandas dtype, refined by an optional ``field_types``
hint (column -> Salesforce describe type, matched case-insensitively; keys that are
not columns are ignored so a whole describe map can be passed):

=====================================  =============================================
values                                 CSV text
=====================================  =============================================
datetimes (datetime64, tz-aware or     UTC ``YYYY-MM-DDTHH:MM:SS.sssZ``, truncated
naive, pyarrow timestamps, datetime    (floored) to the millisecond Salesforce keeps.
objects)                               Naive values are taken as UTC unless ``tz``
                                       names the zone they are in.
datetimes with field type ``date``     ``YYYY-MM-DD``: the wall-clock date of the
                                       value as given (its own zone; ``tz`` ignored),
                                       never shifted by a UTC conversion.
dates (``datetime.date`` objects,      ``YYYY-MM-DD``, no zone involved.
pyarrow date32/date64)
booleans (bool, nullable boolean)      ``true`` / ``false``
integers (int/uint, nullable Int64)    digits, no ``.0``
floats                                 the shortest text that round-trips, never in
                                       exponent notation (``1e20`` ->
                                       ``100000000000000000000``, ``1.5e-7`` ->
                                       ``0.00000015``); integral floats print
                                       without ``.0`` (``12``), which every
                                       Salesforce number field accepts. With field
                                       type ``int`` every value must be integral.
                                       Infinities are an error.
decimals (``decimal.Decimal``)         Arrow's exact plain text
strings                                the text itself, UTF-8
categoricals                           formatted by the type of their categories
=====================================  =============================================

Nulls (None, NaN, pd.NA, NaT) become the null text of the column's policy:
``"keep"`` -> blank (Salesforce leaves the field unchanged) or ``"clear"`` -> ``#N/A``
(Salesforce sets the field to null). An empty string ``""`` is *not* a null: it is
written blank whatever the policy, and Salesforce treats a blank as "no value sent".

Quoting: a value is quoted only when it contains the column delimiter, ``"``, ``\\n``
or ``\\r`` (a lone ``\\r`` too), with quotes doubled, as in the protocol notes. Only
string columns can need it: numbers, dates and booleans never contain a delimiter.
Quoting every string was measured too (1,000,000 rows, 29% of them needing quotes):
that step alone is ~15% faster, but the whole encode took the same time because the
output is larger, so quote-when-needed was kept for its smaller uploads and because
an empty string stays an unquoted blank (except in a one-column frame, where a blank row
is written ``""``: an empty line would be skipped). Header names are written unquoted, so names
that would need quoting are rejected. Every line, the last included, ends with the
line ending.

Why not ``pyarrow.csv.write_csv``: its "needed" style quotes every string value
(plain and empty ones alike) and every header name, "none" refuses values with a
quote or line break, timestamps come out as ``2024-01-01 12:00:00.000000-0500`` and
floats in exponent form; so all the formatting here would be needed anyway, and its
zoned-timestamp formatting alone takes longer than this whole encoder. The CSV is
assembled instead from Arrow string arrays: each column is formatted with
pyarrow.compute or numpy, the columns are joined row-wise, and the data buffer of
the joined array is the CSV text with row offsets for free (used for byte-exact
chunking). Per-cell Python work is limited to a type scan of object columns of dates
(to catch datetimes among them) and to naming the offending cell in an error.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import io
from collections.abc import Iterator, Mapping
import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype

from .errors import InputError

__all__ = [
    "COLUMN_DELIMITERS",
    "LINE_ENDINGS",
    "Chunk",
    "EncodeError",
    "encode_csv",
    "format_frame",
    "iter_chunks",
]

COLUMN_DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_NULL_TEXT = {"keep": "", "clear": "#N/A"}
_RESERVED_PREFIX = "sf__"
# Rows are formatted in slices so the per-column temporaries stay small next to the
# finished CSV text.
_BATCH_ROWS = 65_536
_LSTR = pa.large_string()

_MS_PER_DAY = 86_400_000
# 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z: the four-digit years the
# fixed-width formats below can write.
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999
_MIN_DAY, _MAX_DAY = -719_162, 2_932_896
# Separators in place, digit slots zero: digits are written then shifted to ASCII.
_TIMESTAMP_TEMPLATE = np.frombuffer(b"\0\0\0\0-\0\0-\0\0T\0\0:\0\0:\0\0.\0\0\0Z", np.uint8)
_DIGIT_SLOTS = np.flatnonzero(_TIMESTAMP_TEMPLATE == 0)

_FLOAT_EXP = r"^(?P<sign>-?)(?P<lead>\d)(?:\.(?P<frac>\d+))?e\+?(?P<exp>-?\d+)$"


class EncodeError(InputError):
    """The frame cannot be encoded as Bulk API 2.0 CSV; the message names the column,
    the row and the fix."""


@dataclass(frozen=True)
class CellProblem:
    """Cells of one column that cannot be encoded, found by lenient planning."""

    positions: np.ndarray  # row positions (0-based) of the cells
    code: str  # Salesforce's error code where one fits, else our own
    reason: str  # what is wrong, completing "the value ..."
    hint: str  # one line of pandas that fixes the column


@dataclass(frozen=True)
class Chunk:
    """One Bulk job's worth of CSV."""

    positions: range  # row positions (0-based, into the frame) in this chunk, contiguous
    data: bytes  # the CSV bytes to upload, header included

    @property
    def records(self) -> int:
        return len(self.positions)


# --------------------------------------------------------------------------- public


class Encoding:
    """A frame checked and prepared once, for both its cell texts and its CSV chunks
    (a load needs both: the texts to refuse duplicate keys and to align results, the
    chunks to send)."""

    def __init__(self, df, *, nulls="keep", tz=None, field_types=None, columns=None):
        self.df = df
        self.columns = _prepare(df, nulls, tz, field_types) if columns is None else columns

    def column_text(self, i: int) -> pa.Array:
        """Column ``i`` as the exact cell texts sent (null policy applied), large_string."""
        col = self.columns[i]
        return pc.fill_null(col.render(col.values), col.null_text)

    def text(self) -> pd.DataFrame:
        """What format_frame returns."""
        out = pd.DataFrame({i: self.column_text(i).to_pandas() for i in range(len(self.columns))})
        out.index = self.df.index
        out.columns = self.df.columns
        return out

    def select(self, positions) -> "Encoding":
        """The same encoding for only the rows at ``positions`` (ascending)."""
        take = pa.array(np.asarray(positions, np.int64))
        columns = [dataclasses.replace(c, values=c.values.take(take)) for c in self.columns]
        return Encoding(self.df.iloc[np.asarray(positions, np.int64)], columns=columns)

    def rendered(self, texts: list[pa.Array], positions=None) -> "Encoding":
        """The same encoding with its cells rendered already: ``texts`` per column, as
        column_text gives them (of the rows at ``positions`` only, if given). Its chunks
        then only quote and join, instead of rendering every value a second time."""
        columns = [dataclasses.replace(c, values=t, render=_identity, null_text="")
                   for c, t in zip(self.columns, texts)]
        df = self.df if positions is None else self.df.iloc[np.asarray(positions, np.int64)]
        return Encoding(df, columns=columns)

    def chunks(self, *, column_delimiter="COMMA", line_ending="LF", max_bytes=100_000_000,
               max_records=None) -> Iterator[Chunk]:
        """What iter_chunks returns (same checks, same errors)."""
        _check_limits(max_bytes, max_records)
        enc = _Encoder(self.df, None, None, None, column_delimiter, line_ending,
                       columns=self.columns)
        return _chunks(enc, self.df.index, max_bytes, max_records)

    def csv_rows(self, *, column_delimiter="COMMA", line_ending="LF") -> tuple[bytes, bytes, np.ndarray]:
        """The header line, the rows' CSV without it, and the offset each row starts at in
        that (one more: its size), for filling jobs across frames (sfbulk_nb.stream)."""
        enc = _Encoder(self.df, None, None, None, column_delimiter, line_ending,
                       columns=self.columns)
        segments, starts = _segments(enc)
        return enc.header, b"".join(segments), starts


def format_frame(df, *, nulls="keep", tz=None, field_types=None) -> pd.DataFrame:
    """Every cell as the exact text that goes into the CSV (before CSV quoting).

    Strings throughout, null policy applied ('' or '#N/A'); index and columns of
    ``df`` kept. Result alignment compares this against echoed result values.
    """
    return Encoding(df, nulls=nulls, tz=tz, field_types=field_types).text()


def encode_csv(
    df,
    *,
    nulls="keep",
    tz=None,
    field_types=None,
    column_delimiter="COMMA",
    line_ending="LF",
) -> bytes:
    """The whole frame as one CSV (header line included)."""
    enc = _Encoder(df, nulls, tz, field_types, column_delimiter, line_ending)
    # Batches are appended as they are made and dropped, so the finished CSV is the
    # only full copy held (BytesIO hands over its buffer without copying it).
    out = io.BytesIO()
    out.write(enc.header)
    for lines in enc.batches():
        out.write(_line_bytes(lines)[0])
    return out.getvalue()


def iter_chunks(
    df,
    *,
    nulls="keep",
    tz=None,
    field_types=None,
    column_delimiter="COMMA",
    line_ending="LF",
    max_bytes=100_000_000,
    max_records=None,
) -> Iterator[Chunk]:
    """Split the frame's CSV into chunks, one per Bulk job.

    Each chunk holds the header line plus whole rows, at most ``max_bytes`` bytes in
    all (header counted) and at most ``max_records`` rows. Chunks follow frame order,
    so concatenating them without their repeated headers gives ``encode_csv(df)``.
    The frame is encoded and every limit checked when this is called, before the
    first chunk is taken, so nothing has been sent when an error is raised. The
    encoded text is released as chunks are taken. A frame with no rows gives no
    chunks.
    """
    _check_limits(max_bytes, max_records)
    enc = _Encoder(df, nulls, tz, field_types, column_delimiter, line_ending)
    return _chunks(enc, df.index, max_bytes, max_records)


def _check_limits(max_bytes, max_records) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes <= 0:
        raise EncodeError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if max_records is not None and (
        isinstance(max_records, bool)
        or not isinstance(max_records, (int, np.integer))
        or max_records <= 0
    ):
        raise EncodeError(f"max_records must be a positive integer or None, got {max_records!r}")


def _segments(enc: "_Encoder") -> tuple[list[memoryview | None], np.ndarray]:
    """The rows' CSV in segments, and row_starts: [i] the byte offset of row i in the data
    after the header, [n] the data's size."""
    segments: list[memoryview | None] = []
    row_starts = [np.zeros(1, np.int64)]
    size = 0
    for lines in enc.batches():
        data, ends = _line_bytes(lines)
        segments.append(data)
        row_starts.append(ends + size)
        size += len(data)
    return segments, np.concatenate(row_starts)


def _chunks(enc: "_Encoder", index, max_bytes, max_records) -> Iterator[Chunk]:
    segments, starts = _segments(enc)
    bounds = _plan_chunks(starts, len(enc.header), index, int(max_bytes), max_records)
    return _emit_chunks(enc.header, segments, starts, bounds)


# ------------------------------------------------------------------- CSV assembly


class _Encoder:
    """A validated frame, ready to be turned into CSV lines batch by batch."""

    def __init__(self, df, nulls, tz, field_types, column_delimiter, line_ending, columns=None):
        self.delimiter = _option(column_delimiter, COLUMN_DELIMITERS, "column_delimiter")
        self.eol = _option(line_ending, LINE_ENDINGS, "line_ending")
        if columns is None:
            columns = _prepare(df, nulls, tz, field_types, delimiter=self.delimiter)
        else:  # prepared already (Encoding): only the delimiter's own name check is left
            _check_names(df.columns, self.delimiter)
        self.columns = columns
        self.header = (self.delimiter.join(c.name for c in self.columns) + self.eol).encode("utf-8")
        self.specials = np.frombuffer(('"\r\n' + self.delimiter).encode("ascii"), np.uint8)
        self.rows = len(df)

    def batches(self) -> Iterator[pa.Array]:
        """CSV lines, line ending included, one string per row, in row slices."""
        for start in range(0, self.rows, _BATCH_ROWS):
            length = min(_BATCH_ROWS, self.rows - start)
            parts = []
            for col in self.columns:
                text = pc.fill_null(col.render(col.values.slice(start, length)), col.null_text)
                if col.is_text:
                    text = _quote(text, self.specials)
                parts.append(text)
            if len(parts) == 1:
                # A one-column row with a blank value would be an empty line, which CSV
                # readers (Salesforce's too) skip: quote it so the row still exists.
                parts[0] = pc.if_else(pc.equal(parts[0], ""), pa.scalar('""', _LSTR), parts[0])
            parts[-1] = _concat(parts[-1], pa.scalar(self.eol, _LSTR))
            yield pc.binary_join_element_wise(*parts, pa.scalar(self.delimiter, _LSTR))


def _offsets_and_data(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A large_string array's offsets and the bytes its values span (views, no copy)."""
    offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset : text.offset + len(text) + 1]
    data = text.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets, data[offsets[0] : offsets[-1]]


def _line_bytes(lines: pa.Array) -> tuple[memoryview, np.ndarray]:
    """The bytes of all lines (a view, no copy) and the end offset of each line in it."""
    offsets, data = _offsets_and_data(lines)
    return memoryview(data), offsets[1:] - offsets[0]


def _quote(text: pa.Array, specials: np.ndarray) -> pa.Array:
    """Quote (doubling quotes) the values holding any of the ``specials`` bytes."""
    offsets, data = _offsets_and_data(text)
    # UTF-8 never uses ASCII byte values inside a multi-byte character, so scanning
    # the bytes finds exactly the special characters (twice as fast as a regex).
    hit = data == specials[0]
    for byte in specials[1:]:
        hit |= data == byte
    if not hit.any():
        return text
    rows = np.searchsorted(offsets, np.flatnonzero(hit) + offsets[0], side="right") - 1
    needed = np.zeros(len(text), bool)
    needed[rows] = True
    needed = pa.array(needed)
    escaped = pc.replace_substring(pc.filter(text, needed), '"', '""')
    quote = pa.scalar('"', _LSTR)
    return pc.replace_with_mask(text, needed, _concat(quote, escaped, quote))


def _plan_chunks(starts, header_size, index, max_bytes, max_records) -> list[tuple[int, int]]:
    n = len(starts) - 1
    budget = max_bytes - header_size
    if n and budget <= 0:
        raise EncodeError(
            f"the CSV header line alone is {header_size} bytes, which leaves no room "
            f"for rows within max_bytes={max_bytes}; raise max_bytes or send fewer columns"
        )
    sizes = np.diff(starts)
    too_big = np.flatnonzero(sizes > budget)
    if len(too_big):
        pos = int(too_big[0])
        more = f" ({len(too_big) - 1} more rows are too large as well)" if len(too_big) > 1 else ""
        raise EncodeError(
            f"{_row(index, pos)} is {int(sizes[pos])} bytes of CSV, but a chunk of "
            f"max_bytes={max_bytes} has room for {budget} bytes of rows after its "
            f"{header_size}-byte header{more}; raise max_bytes (Salesforce accepts "
            f"up to 100,000,000 per job) or shorten that row's values"
        )
    bounds = []
    start = 0
    while start < n:
        stop = int(np.searchsorted(starts, starts[start] + budget, side="right")) - 1
        if max_records is not None:
            stop = min(stop, start + int(max_records))
        bounds.append((start, stop))
        start = stop
    return bounds


def _emit_chunks(header, segments, row_starts, bounds) -> Iterator[Chunk]:
    seg_starts = np.concatenate([[0], np.cumsum([len(s) for s in segments])])
    for start, stop in bounds:
        lo, hi = int(row_starts[start]), int(row_starts[stop])
        first = int(np.searchsorted(seg_starts, lo, side="right")) - 1
        pieces = [header]
        i = first
        while hi > seg_starts[i]:
            seg_lo = int(seg_starts[i])
            pieces.append(segments[i][max(lo, seg_lo) - seg_lo : min(hi, int(seg_starts[i + 1])) - seg_lo])
            i += 1
        data = b"".join(pieces)
        del pieces
        # Segments wholly before this chunk's end will not be read again; dropping
        # them lets the encoded text shrink as chunks are handed out.
        for j in range(first, i if hi == seg_starts[i] else i - 1):
            segments[j] = None
        yield Chunk(range(start, stop), data)


# --------------------------------------------------------------- column planning


@dataclass
class _Column:
    name: str
    values: pa.Array  # whole column, prepared for render
    render: Callable[[pa.Array], pa.Array]  # slice of values -> large_string, nulls kept
    is_text: bool  # may contain characters that need CSV quoting
    null_text: str

    @property
    def kind(self) -> str:
        """What the cells hold, which fixes the form of their text: text, boolean, integer,
        decimal, float, date, datetime or null."""
        if self.is_text:
            return "text"
        if self.render is _format_millis:
            return "datetime"
        if self.render is _format_float:
            return "float"
        if self.render is _all_null:
            return "null"
        t = self.values.type
        return ("boolean" if pa.types.is_boolean(t) else "integer" if pa.types.is_integer(t)
                else "decimal" if pa.types.is_decimal(t) else "date")


def text_column(name: str, texts: pa.Array) -> _Column:
    """A column of cell texts, sent as they are (CSV quoting applied where needed)."""
    return _Column(name, texts, _identity, True, "")


def not_a_frame(value) -> str:
    """What to say when a load gets something other than a DataFrame: what it got, and
    how to make one of it."""
    got = type(value).__name__
    if value is None:
        fix = "pass the DataFrame itself (a function that changes a frame in place returns None)"
    elif isinstance(value, pd.Series):
        fix = "make it a frame with series.to_frame() (its name becomes the field)"
    elif isinstance(value, (dict, list, tuple)):
        fix = f"build one first: pd.DataFrame(data) takes a {got} of columns or of rows"
    else:
        fix = "build one first with pd.DataFrame(...)"
    return f"expected a pandas DataFrame, got {got}: {fix}"


def _prepare(df, nulls, tz, field_types, delimiter=None) -> list[_Column]:
    if not isinstance(df, pd.DataFrame):
        raise EncodeError(not_a_frame(df))
    names = _check_names(df.columns, delimiter)
    policy = _null_policy(nulls, names)
    tz = _check_tz(tz)
    types = {}
    if field_types is not None:
        if not isinstance(field_types, Mapping):
            raise EncodeError(f"field_types must be a dict of column -> Salesforce type, got {type(field_types).__name__}")
        types = {str(k).lower(): str(v).lower() for k, v in field_types.items()}
    return [prepare_column(name, df.iloc[:, i], nulls=policy[name], tz=tz,
                           field_type=types.get(name.lower()))
            for i, name in enumerate(names)]


def _option(value, choices, what):
    if value not in choices:
        raise EncodeError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return choices[value]


def _check_names(columns, delimiter) -> list[str]:
    if len(columns) == 0:
        raise EncodeError("the frame has no columns; a Bulk job needs at least one field")
    names = list(columns)
    seen: dict[str, str] = {}
    for pos, name in enumerate(names):
        if not isinstance(name, str):
            raise EncodeError(
                f"column {pos} is named {name!r} ({type(name).__name__}); Bulk CSV headers are "
                f"Salesforce field names, so every column name must be a string "
                f"(rename it, e.g. df.columns = df.columns.map(str), or flatten a MultiIndex)"
            )
        if not name.strip():
            raise EncodeError(f"column {pos} has an empty name {name!r}; name it after the Salesforce field")
        if name != name.strip() or any(c in name for c in '"\r\n' + (delimiter or "")):
            raise EncodeError(
                f"column name {name!r} contains whitespace at an end, a quote, a line break or "
                f"the column delimiter; Salesforce field names cannot, so rename the column"
            )
        if name.lower().startswith(_RESERVED_PREFIX):
            raise EncodeError(
                f"column {name!r} uses the reserved {_RESERVED_PREFIX!r} prefix, which Salesforce "
                f"uses for result columns; drop or rename it before sending"
            )
        key = name.lower()
        if key in seen:
            same = "appears twice" if seen[key] == name else f"and {seen[key]!r} name the same field (names are case-insensitive)"
            raise EncodeError(f"column {name!r} {same}; keep one of them")
        seen[key] = name
    return names


def _null_policy(nulls, names) -> dict[str, str]:
    if isinstance(nulls, str):
        if nulls not in _NULL_TEXT:
            raise EncodeError(f"nulls must be 'keep', 'clear' or a dict of column -> 'keep'/'clear'; got {nulls!r}")
        return dict.fromkeys(names, nulls)
    if not isinstance(nulls, Mapping):
        raise EncodeError(f"nulls must be 'keep', 'clear' or a dict of column -> 'keep'/'clear'; got {nulls!r}")
    unknown = [k for k in nulls if k not in names]
    if unknown:
        raise EncodeError(f"nulls names columns that are not in the frame: {unknown!r}")
    bad = {k: v for k, v in nulls.items() if v not in _NULL_TEXT}
    if bad:
        raise EncodeError(f"nulls values must be 'keep' or 'clear'; got {bad!r}")
    return {name: nulls.get(name, "keep") for name in names}


def _check_tz(tz):
    if tz is None:
        return None
    if not isinstance(tz, (str, _dt.tzinfo)):
        # pandas reads a number as a fixed offset in seconds: tz=5 is not 5 hours.
        raise EncodeError(f"tz must be a time zone name such as 'Europe/Paris' (or a tzinfo), "
                          f"not {tz!r}")
    try:
        pd.Timestamp(0).tz_localize(tz)
    except Exception as exc:
        raise EncodeError(f"tz={tz!r} is not a time zone pandas knows ({exc}); use an IANA name such as 'Europe/Paris'") from None
    return tz


def prepare_column(name, series, *, nulls="keep", tz=None, field_type=None, problems=None):
    """One column prepared for encoding (a `_Column`).

    With ``problems`` (a list) planning is lenient: cells that cannot be encoded are
    appended to it as `CellProblem`s and planned as nulls, so validation learns every bad
    cell in one pass; without it the first bad cell raises EncodeError. A column that
    cannot be encoded at all (an unsupported dtype) raises either way."""
    values, render, is_text = _plan_column(name, series, _check_tz(tz), field_type, problems)
    return _Column(name, values, render, is_text, _NULL_TEXT[nulls])


def _reject(problems, positions, code, reason, hint, message) -> None:
    """Strict planning raises ``message(first position)``; lenient planning records every
    position (the caller then plans them as nulls)."""
    positions = np.asarray(positions, np.int64)
    if problems is None:
        raise EncodeError(message(int(positions[0])))
    problems.append(CellProblem(positions, code, reason, hint))


def _null_at(arr: pa.Array, mask: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.scalar(None, arr.type), arr)


def _plan_column(name, series, tz, field_type, problems=None):
    arr = _to_arrow(name, series, problems)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_null(t):
        return arr, _all_null, False
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return arr.cast(_LSTR), _identity, True
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        return arr, _cast_text, False
    if pa.types.is_floating(t):
        return _prepare_float(name, arr, series.index, field_type, problems), _format_float, False
    if pa.types.is_date(t):
        arr = arr.cast(pa.date32())
        arr = _check_range(name, arr, arr.cast(pa.int32()), _MIN_DAY, _MAX_DAY, series.index,
                           "date", problems)
        return arr, _cast_text, False
    if pa.types.is_timestamp(t):
        if field_type == "date":
            # Arrow casts a zoned timestamp to the date on the wall clock of its zone,
            # which is what the user sees; the UTC date would move late-evening values
            # west of UTC onto the next day.
            days = arr.cast(pa.date32())
            days = _check_range(name, days, days.cast(pa.int32()), _MIN_DAY, _MAX_DAY,
                                series.index, "date", problems)
            return days, _cast_text, False
        return _utc_millis(name, arr, tz, series.index, problems), _format_millis, False
    raise EncodeError(
        f"column {name!r} has type {t} ({series.dtype}), which has no Bulk CSV form; "
        f"convert it to strings, numbers, booleans, dates or datetimes first"
    )


def _to_arrow(name, series, problems=None) -> pa.Array:
    dtype = series.dtype
    if dtype.kind == "c":
        raise EncodeError(f"column {name!r} holds complex numbers ({dtype}); Salesforce has no such field type, convert or drop it")
    if dtype == object:  # noqa: E721  (numpy object dtype; .kind would also take StringDtype)
        if problems is not None:
            series = _screen_objects(name, series, problems)
        arr = _object_to_arrow(name, series, problems)
    else:
        try:
            arr = pa.array(series, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise EncodeError(
                f"column {name!r} has dtype {dtype}, which cannot be encoded ({exc}); "
                f"convert it to strings, numbers, booleans, dates or datetimes first"
            ) from None
    if isinstance(arr, pa.ChunkedArray):
        if pa.types.is_string(arr.type):
            arr = arr.cast(_LSTR)
        arr = arr.combine_chunks()
    return arr


_OBJECT_KINDS = {
    "string": _LSTR,
    "empty": pa.null(),
    "boolean": pa.bool_(),
    "integer": None,
    "floating": pa.float64(),
    "mixed-integer-float": pa.float64(),
    "decimal": None,
    "datetime": None,
    "datetime64": None,
    "date": pa.date32(),
}


def _object_to_arrow(name, series, problems=None) -> pa.Array:
    kind = infer_dtype(series, skipna=True)
    if kind not in _OBJECT_KINDS:
        _object_error(name, series, kind)
    if kind == "date":
        # infer_dtype calls a mix of dates and datetimes "date"; Arrow would then drop
        # the times without a word.
        objects = series.to_numpy()
        # NaT (a null) is a datetime subclass: .dt.date leaves it where dates are blank.
        if any(issubclass(t, _dt.datetime) and t is not _NAT for t in set(map(type, objects))):
            pos = next(i for i, v in enumerate(objects)
                       if isinstance(v, _dt.datetime) and v is not pd.NaT)
            raise EncodeError(
                f"column {name!r} mixes dates and datetimes ({_row(series.index, pos)} holds "
                f"{objects[pos]!r}); make it all dates (pd.to_datetime(...).dt.date) or all datetimes"
            )
    if kind == "datetime":
        # Arrow would read naive values among aware ones as UTC, whatever tz says.
        objects = series.to_numpy()
        aware = [(pos, v.tzinfo is not None) for pos, v in enumerate(objects) if isinstance(v, _dt.datetime)]
        odd = next((pos for pos, flag in aware if flag != aware[0][1]), None)
        if odd is not None:
            raise EncodeError(
                f"column {name!r} mixes time-zone-aware and naive datetimes ({_row(series.index, aware[0][0])} "
                f"holds {objects[aware[0][0]]!r}, {_row(series.index, odd)} holds {objects[odd]!r}); give "
                f"them all a zone (or none and pass tz=...)"
            )
    try:
        return pa.array(series, type=_OBJECT_KINDS[kind], from_pandas=True)
    except UnicodeEncodeError:
        bad = [pos for pos, value in enumerate(series.to_numpy())
               if isinstance(value, str) and not _is_utf8(value)]
        _reject(problems, bad, "INVALID_CHARACTER",
                "holds text that is not valid Unicode (a lone surrogate), which cannot be written as UTF-8",
                f"df[{name!r}] = df[{name!r}].str.encode('utf-8', 'replace').str.decode('utf-8')",
                lambda pos: f"column {name!r} at {_row(series.index, pos)} holds text that is not valid "
                            f"Unicode (a lone surrogate) and cannot be written as UTF-8; fix that value")
        series = series.copy()
        series.iloc[bad] = None
        return _object_to_arrow(name, series)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(
            f"column {name!r} holds {kind} values that cannot be encoded ({exc}); "
            f"convert the column to one plain type first"
        ) from None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _value_kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


_NAT = type(pd.NaT)
# infer_dtype's "date" skips NaN, so a float among these is a blank.
_PLAIN_DATE_TYPES = {_dt.date, _NAT, type(None), float}
_SENDABLE_KINDS = ("text", "number", "boolean", "date", "naive datetime", "zoned datetime")


def _cell_kind(value) -> str:
    """What a cell of an object column is, for the lenient screen: 'null', a sendable kind
    ('text', 'number', 'boolean', 'date', 'naive datetime', 'zoned datetime'), or the type
    name of a value with no CSV form."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return "null"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, float, np.integer, np.floating, decimal.Decimal)):
        return "number"
    if isinstance(value, _dt.datetime):
        return "zoned datetime" if value.tzinfo is not None else "naive datetime"
    if isinstance(value, np.datetime64):
        return "naive datetime"
    if isinstance(value, _dt.date):
        return "date"
    return type(value).__name__


def _screen_objects(name, series, problems) -> pd.Series:
    """Lenient planning of an object column: cells with no CSV form, and cells of another
    kind than most of the column's, are recorded and planned as nulls."""
    kind = infer_dtype(series, skipna=True)
    if kind in ("string", "empty", "boolean", "integer", "floating", "mixed-integer-float",
                "decimal", "datetime64"):
        return series  # one plain kind: nothing to screen
    objects = series.to_numpy()
    if kind == "date" and set(map(type, objects)) <= _PLAIN_DATE_TYPES:
        return series  # dates and blanks (what .dt.date makes): no cell to look at
    kinds = pd.Series(list(map(_cell_kind, objects)), dtype=object)
    filled = kinds[kinds != "null"]
    sendable = filled[filled.isin(_SENDABLE_KINDS)]
    unsendable = filled[~filled.isin(_SENDABLE_KINDS)]
    bad: list[int] = []
    for type_name, cells in unsendable.groupby(unsendable, sort=False):
        positions = cells.index.to_numpy()
        _reject(problems, positions, "INVALID_CELL_TYPE",
                f"is a {type_name}, which has no Bulk CSV form (a cell holds one value)",
                _flatten_hint(name, type_name), None)
        bad.extend(positions)
    if len(sendable):
        counts = sendable.value_counts(sort=False)
        main = counts.index[int(np.argmax(counts.to_numpy()))]  # first of the most frequent
        for kind, cells in sendable[sendable != main].groupby(sendable[sendable != main], sort=False):
            positions = cells.index.to_numpy()
            _reject(problems, positions, "MIXED_TYPES",
                    f"is a {kind} in a column of {main} values, so the column has no one CSV form",
                    _mixed_hint(name, main), None)
            bad.extend(positions)
    if not bad:
        return series
    series = series.copy()
    series.iloc[sorted(bad)] = None
    return series


def _flatten_hint(name, type_name) -> str:
    if type_name in ("list", "tuple", "set", "ndarray"):
        return (f"df[{name!r}] = df[{name!r}].map(lambda v: ';'.join(map(str, v)) "
                f"if isinstance(v, (list, tuple, set)) else v)")
    if type_name in ("bytes", "bytearray"):
        return f"df[{name!r}] = df[{name!r}].str.decode('utf-8')"
    return f"df[{name!r}] = df[{name!r}].astype('string')"


def _mixed_hint(name, main) -> str:
    if main == "number":
        return f"df[{name!r}] = pd.to_numeric(df[{name!r}], errors='coerce')  # non-numbers become blank"
    if main in ("date", "naive datetime", "zoned datetime"):
        conversion = ".dt.date" if main == "date" else ""
        return f"df[{name!r}] = pd.to_datetime(df[{name!r}], errors='coerce'){conversion}"
    return f"df[{name!r}] = df[{name!r}].astype('string')"


def _object_error(name, series, kind):
    first_type = first_pos = None
    for pos, value in enumerate(series.to_numpy()):
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
            continue
        if isinstance(value, (list, tuple, dict, set, np.ndarray)):
            raise EncodeError(
                f"column {name!r} holds a {type(value).__name__} at {_row(series.index, pos)}; a Bulk CSV "
                f"cell is one value: flatten the column (e.g. join the items into a string) or drop it"
            )
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(
                f"column {name!r} holds bytes at {_row(series.index, pos)}; decode it to text first "
                f"(e.g. df[{name!r}].str.decode('utf-8')) or base64-encode it for a base64 field"
            )
        if isinstance(value, (_dt.time, _dt.timedelta, np.timedelta64, pd.Period, pd.Interval, complex)):
            raise EncodeError(
                f"column {name!r} holds a {type(value).__name__} at {_row(series.index, pos)}, which has "
                f"no Bulk CSV form; convert the column to strings, numbers, dates or datetimes first"
            )
        kind_of_value = _value_kind(value)
        if first_type is None:
            first_type, first_pos = kind_of_value, pos
        elif kind_of_value != first_type:
            raise EncodeError(
                f"column {name!r} mixes value types: {_row(series.index, pos)} holds {value!r} "
                f"({type(value).__name__}) but {_row(series.index, first_pos)} holds a {first_type}; "
                f"make the column one type, e.g. df[{name!r}] = df[{name!r}].astype('string')"
            )
    raise EncodeError(
        f"column {name!r} holds values pandas infers as {kind!r}, which have no Bulk CSV form; "
        f"make the column one plain type (e.g. df[{name!r}].astype('string'))"
    )


# ------------------------------------------------------------------ value formats


def _identity(values: pa.Array) -> pa.Array:
    return values


def _all_null(values: pa.Array) -> pa.Array:
    return pa.nulls(len(values), _LSTR)


def _cast_text(values: pa.Array) -> pa.Array:
    return values.cast(_LSTR)


def _prepare_float(name, arr, index, field_type, problems=None) -> pa.Array:
    # NaN is a null (pandas' view), also in Arrow-backed columns where it is a value.
    nan = pc.fill_null(pc.is_nan(arr), False)
    if pc.any(nan).as_py():
        arr = _null_at(arr, nan)
    infinite = pc.fill_null(pc.is_inf(arr), False)
    if pc.any(infinite).as_py():
        _reject(problems, _true_positions(infinite), "NUMBER_OUTSIDE_VALID_RANGE",
                "is infinite; Salesforce numbers must be finite",
                f"df[{name!r}] = df[{name!r}].replace([np.inf, -np.inf], np.nan)",
                lambda pos: f"column {name!r} at {_row(index, pos)} is {arr[pos].as_py()}; Salesforce "
                            f"numbers must be finite: replace infinities (e.g. "
                            f"df[{name!r}].replace([np.inf, -np.inf], np.nan))")
        arr = _null_at(arr, infinite)
    if field_type in ("int", "long"):
        fractional = pc.fill_null(pc.not_equal(pc.floor(arr), arr), False)
        if pc.any(fractional).as_py():
            _reject(problems, _true_positions(fractional), "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"has a fraction, but the field is a whole number ({field_type})",
                    f"df[{name!r}] = df[{name!r}].round().astype('Int64')",
                    lambda pos: f"column {name!r} is a Salesforce {field_type} field but "
                                f"{_row(index, pos)} holds {arr[pos].as_py()!r}; round the column "
                                f"(e.g. df[{name!r}].round()) or fix that value")
            arr = _null_at(arr, fractional)
    return arr


def _format_float(values: pa.Array) -> pa.Array:
    text = values.cast(_LSTR)  # shortest round-trip digits; exponent form for some
    has_exp = pc.fill_null(pc.match_substring(text, "e"), False)
    if not pc.any(has_exp).as_py():
        return text
    return pc.replace_with_mask(text, has_exp, _expand_exponent(pc.filter(text, has_exp)))


def _expand_exponent(text: pa.Array) -> pa.Array:
    """'1.5e-7' -> '0.00000015', '1e+20' -> '100000000000000000000' (same digits)."""
    parts = pc.extract_regex(text, _FLOAT_EXP)
    sign, lead, frac = parts.field("sign"), parts.field("lead"), parts.field("frac")
    exp = pc.cast(parts.field("exp"), pa.int64())
    digits = _concat(lead, frac)
    n_frac = pc.utf8_length(frac)
    zero = pa.scalar("0", _LSTR)
    # exp >= fraction digits: an integer, zeros appended
    whole = _concat(sign, digits, pc.binary_repeat(zero, pc.max_element_wise(pc.subtract(exp, n_frac), 0)))
    # exp < 0: leading "0." and zeros
    small = _concat(sign, pa.scalar("0.", _LSTR), pc.binary_repeat(zero, pc.max_element_wise(pc.subtract(pc.negate(exp), 1), 0)), digits)
    out = pc.if_else(pc.less(exp, 0), small, whole)
    # 0 <= exp < fraction digits: the point moves inside the digits. Few exponents
    # can do this (Arrow prints up to 17 digits), so slice per exponent value.
    inside = pc.and_(pc.greater_equal(exp, 0), pc.less(exp, n_frac))
    if pc.any(inside).as_py():
        for e in pc.unique(pc.filter(exp, inside)).to_pylist():
            mask = pc.and_(inside, pc.equal(exp, e))
            d = pc.filter(digits, mask)
            moved = _concat(
                pc.filter(sign, mask),
                pc.utf8_slice_codeunits(d, 0, e + 1),
                pa.scalar(".", _LSTR),
                pc.utf8_slice_codeunits(d, e + 1),
            )
            out = pc.replace_with_mask(out, mask, moved)
    return out


def _concat(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, pa.scalar("", _LSTR))


def _utc_millis(name, arr, tz, index, problems=None) -> pa.Array:
    """Timestamps as int64 UTC milliseconds (floored), nulls kept."""
    unit = arr.type.unit
    if arr.type.tz is None and tz is not None:
        arr = _localize(name, arr, tz, index, problems)
    raw = arr.cast(pa.int64())
    values = pc.fill_null(raw, 0).to_numpy()
    per_ms = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}[unit]
    millis = values * 1000 if per_ms is None else np.floor_divide(values, per_ms)
    mask = None if raw.null_count == 0 else raw.is_null().to_numpy(zero_copy_only=False)
    result = pa.array(millis, pa.int64(), mask=mask)
    return _check_range(name, result, result, _MIN_MS, _MAX_MS, index, "datetime", problems)


def _localize(name, arr, tz, index, problems=None) -> pa.Array:
    naive = pd.DatetimeIndex(arr.to_numpy(zero_copy_only=False))
    local = naive.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    lost = np.flatnonzero(np.asarray(local.isna()) & ~np.asarray(naive.isna()))
    if len(lost):
        # Lenient planning keeps these as the nulls tz_localize made of them.
        _reject(problems, lost, "AMBIGUOUS_LOCAL_TIME",
                f"does not exist or is ambiguous in {tz} (a daylight-saving change)",
                f"df[{name!r}] = df[{name!r}].dt.tz_localize({str(tz)!r}, ambiguous='NaT', "
                f"nonexistent='shift_forward')",
                lambda pos: f"column {name!r} at {_row(index, pos)} holds {naive[pos]}, which does not "
                            f"exist or is ambiguous in {tz} (a daylight-saving change); localize the "
                            f"column yourself, e.g. df[{name!r}].dt.tz_localize({str(tz)!r}, "
                            f"ambiguous=..., nonexistent=...)")
    return pa.array(local.tz_convert("UTC"))


def _format_millis(values: pa.Array) -> pa.Array:
    """int64 UTC milliseconds -> 'YYYY-MM-DDTHH:MM:SS.sssZ' (fixed width, built in numpy:
    Arrow's strftime is several times slower)."""
    n = len(values)
    millis = pc.fill_null(values, 0).to_numpy()
    days, tod = np.divmod(millis, _MS_PER_DAY)
    date = pa.array(days.astype(np.int32), pa.date32())
    year = pc.year(date).to_numpy()
    out = np.empty((24, n), np.uint8)  # position-major, so each write is contiguous
    out[:] = _TIMESTAMP_TEMPLATE[:, None]
    century, year2 = np.divmod(year, 100)
    sec, ms = np.divmod(tod, 1000)
    minute, s = np.divmod(sec, 60)
    h, mi = np.divmod(minute, 60)
    for pos, part in (
        (0, century),
        (2, year2),
        (5, pc.month(date).to_numpy()),
        (8, pc.day(date).to_numpy()),
        (11, h),
        (14, mi),
        (17, s),
    ):
        part = part.astype(np.uint8)
        np.floor_divide(part, 10, out=out[pos])
        np.remainder(part, 10, out=out[pos + 1])
    ms = ms.astype(np.uint16)
    out[20] = ms // 100
    out[21] = ms // 10 % 10
    out[22] = ms % 10
    out[_DIGIT_SLOTS] += ord("0")
    data = np.ascontiguousarray(out.T)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int64)
    validity = None if values.null_count == 0 else values.is_valid().buffers()[1]
    return pa.Array.from_buffers(
        _LSTR, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=values.null_count
    )


def _check_range(name, values: pa.Array, ints: pa.Array, low, high, index, what, problems=None):
    """``values`` with the cells whose ``ints`` fall outside [low, high] rejected."""
    bad = pc.fill_null(pc.or_(pc.less(ints, low), pc.greater(ints, high)), False)
    if not pc.any(bad).as_py():
        return values
    _reject(problems, _true_positions(bad), "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"is a {what} outside years 1-9999, which Salesforce cannot store",
            f"df[{name!r}] = df[{name!r}].where(df[{name!r}].dt.year.between(1, 9999))",
            lambda pos: f"column {name!r} at {_row(index, pos)} holds a {what} outside years 1-9999, "
                        f"which Salesforce cannot store; fix or blank that value")
    return _null_at(values, bad)


# ------------------------------------------------------------------------ helpers


def _true_positions(mask: pa.Array) -> np.ndarray:
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _row(index, pos: int) -> str:
    return f"row {pos} (index label {index[pos]!r})"
