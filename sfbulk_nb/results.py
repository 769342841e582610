"""Result CSVs -> one DataFrame aligned row for row with the frame that was sent.

Bulk API 2.0 returns ``successfulResults``, ``failedResults`` and ``unprocessedrecords``
in no set order, and a row-number column cannot be sent along, so every result row is
joined back to an input row by the values it echoes (protocol notes §3):

==========================  ===============================================================
operation                   a result row belongs to the input row of the same job with
==========================  ===============================================================
upsert                      the same external id text; case-insensitively when the caller
                            says the field matches that way (``key_case_insensitive``).
                            Upsert on ``Id`` matches as ids (below).
update, delete, hardDelete  the same record id: 15- and 18-character forms and any case of
                            an 18-character id are one id (the 3-character suffix encodes
                            the case of the first 15). Text that is not an id shape is
                            compared exactly.
insert                      the same text in every column. Identical rows are
                            interchangeable: each gets one of the outcomes of that text,
                            every outcome used once.
==========================  ===============================================================

Keyed operations refuse duplicate keys before sending (``find_duplicate_keys``). If
duplicates were sent all the same (an old run, a bypassed check, blank Ids of an upsert on
``Id``, which insert), rows sharing a key are told apart by their full text, as inserts are.

Salesforce echoes some values as it parsed them rather than as sent (the documented
example: ``912260031`` came back as ``9.12260031E8``). So rows and result rows left over
by the exact join get a second join in which number-shaped texts compare by numeric
value. The local org echoes byte for byte and never needs it.

Everything is vectorised: key texts are dictionary-encoded with Arrow, the occurrences of
a key are ranked with numpy, and (job, key, occurrence) triples are paired through a hash
index, so a million rows align in one to three seconds (bench/bench_align.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .encode import COLUMN_DELIMITERS, LINE_ENDINGS
from .errors import SFBulkError

__all__ = [
    "STATUSES",
    "STATUS_COLUMNS",
    "AlignmentError",
    "JobOutcome",
    "align",
    "count_statuses",
    "find_duplicate_keys",
    "parse_result_csv",
    "split_sf_error",
    "split_sf_errors",
    "summarize_errors",
]

# What align() gives each row; a run adds sf_attempts (how many jobs carried the row: a row
# failed by lock contention is sent again in a follow-up job).
ALIGN_COLUMNS = ("sf_id", "sf_status", "sf_error_code", "sf_error_message", "sf_error_fields", "sf_job_id")
STATUS_COLUMNS = ALIGN_COLUMNS + ("sf_attempts",)
# Row errors that say nothing about the row itself, only that the org was busy with it:
# Salesforce's lock contention (two jobs or triggers updating the same parent or record).
TRANSIENT_ERRORS = ("UNABLE_TO_LOCK_ROW",)
# pending: the row's job had not finished when its results were read; wait on it later.
# invalid: the row had an error found before sending, and on_invalid="skip" left it out.
# unknown: its job finished, but its results could not be read or matched to the rows.
# unchanged: only_changed found every cell equal to its record's, so it was not sent.
# conflict: its record was modified after if_unmodified_since, so it was not sent.
STATUSES = ("created", "updated", "deleted", "failed", "unprocessed", "not_sent", "pending",
            "invalid", "unknown", "unchanged", "conflict")
# One colour per status for every display (HTML summary, widget, charts): green succeeded,
# red failed, amber never processed, grey still running.
STATUS_COLOURS = {"created": "#1a7f37", "updated": "#1a7f37", "deleted": "#1a7f37",
                  "failed": "#cf222e", "unprocessed": "#9a6700", "not_sent": "#9a6700",
                  "pending": "#57606a", "invalid": "#cf222e", "unknown": "#8250df",
                  "unchanged": "#57606a", "conflict": "#bc4c00"}
OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")

(_CREATED, _UPDATED, _DELETED, _FAILED, _UNPROCESSED, _NOT_SENT, _PENDING, _INVALID,
 _UNKNOWN, _UNCHANGED, _CONFLICT) = range(len(STATUSES))
_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")
_LSTR = pa.large_string()
_BOM = b"\xef\xbb\xbf"
# Arrow's default 1 MB blocks cut a million-row result into ~100 chunks, which makes
# to_pandas ten times slower; 4 MB reads as fast and converts in one go.
_BLOCK_SIZE = 4 << 20
# Texts that mean "no value" in a key cell: blank, or the null text of the "clear" policy.
_NULL_TEXTS = ("", "#N/A")
_SHOWN = 10  # examples named in an error message


class AlignmentError(SFBulkError, ValueError):
    """Result rows and input rows do not pair up: results are missing, extra, or belong
    to other data. ``positions`` holds the input row positions left without a result,
    ``result_rows`` (job index, result kind, row number) the results left without a row."""

    def __init__(self, message, positions=(), result_rows=()):
        super().__init__(message)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.result_rows = list(result_rows)


@dataclass
class JobOutcome:
    """What one Bulk job did to its share of the input rows."""

    positions: range  # rows of the input (0-based positions) this job carried
    job_id: str | None = None  # None when the job was never created
    sent: bool = True  # False: data never reached Salesforce -> rows are not_sent
    finished: bool = True  # False: still running -> rows without a result are pending
    successful: pd.DataFrame | None = None  # parsed successfulResults
    failed: pd.DataFrame | None = None  # parsed failedResults
    unprocessed: pd.DataFrame | None = None  # parsed unprocessedrecords
    # (code, message) for the rows this job left unprocessed or never sent: why the job
    # failed, was aborted, or could not be sent, or why its outcome is not known yet.
    error: tuple[str, str] | None = None
    unknown: bool = False  # finished, but its results could not be matched to its rows

    def _frames(self):
        return zip(_KINDS, (self.successful, self.failed, self.unprocessed))


# ----------------------------------------------------------------- result CSV parsing


def parse_result_csv(data: bytes, *, column_delimiter: str = "COMMA", line_ending: str = "LF",
                     keep: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A result CSV as a frame of text: every value a string ('' for blanks, never NaN,
    never a number), header names as sent.

    ``column_delimiter`` and ``line_ending`` are the job's setting names (``"COMMA"``,
    ``"TAB"``, ``"CRLF"``, ...). Records end at the job's line ending only: with ``LF``
    a lone ``\\r`` is data, with ``CRLF`` a lone ``\\r`` or ``\\n`` is. An empty body
    gives an empty frame without columns; a header alone, an empty frame with them.

    Arrow's CSV reader does the work (about 4x faster than pandas' C parser on a
    million rows); it ends records at any line break outside quotes, so input holding
    an unquoted line break that is data for the job's line ending goes through an exact
    field scanner instead. Salesforce quotes every value, so that only happens with
    unusual input.

    ``keep``: which columns to read, by header name (all when None): a result file echoes
    every column sent, and alignment reads only a few; the others are never parsed.
    """
    delimiter = _setting(COLUMN_DELIMITERS, column_delimiter, "column_delimiter")
    eol = _setting(LINE_ENDINGS, line_ending, "line_ending")
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)  # a memoryview, say; a download's bytearray is read as it is
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip(b"\r\n"):
        return pd.DataFrame()
    if data.count(b'"') % 2:
        # Arrow would take an unclosed quote as running to the end: a cut-off download.
        raise ValueError("result CSV is malformed: a quoted value is never closed (was the download cut off?)")
    header, body_start = _first_record(data, delimiter, eol)
    wanted = [i for i, name in enumerate(header) if keep is None or keep(name)]
    if not _ANYTHING.search(data, body_start):  # (no copy of the body to find out)
        return _text_frame({i: [] for i in wanted}, [header[i] for i in wanted])
    if _stray_line_breaks(data, eol):
        frame = _parse_exact(data, header, body_start, delimiter, eol)
        return frame.iloc[:, wanted] if len(wanted) < len(header) else frame
    return _parse_arrow(data, header, delimiter, wanted)


_ANYTHING = re.compile(rb"[^\r\n]")


def _setting(table: dict[str, str], name: str, what: str) -> str:
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(f"{what} must be one of {', '.join(table)}; got {name!r}") from None


def _text_frame(columns: dict, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({i: pd.Series(values, dtype="str") for i, values in columns.items()})
    frame.columns = names  # positional first: header names may repeat
    return frame


@functools.cache
def _field_pattern(delimiter: str, eol: str) -> re.Pattern[bytes]:
    """One field (quoted or plain) and what ends it. UTF-8 never uses ASCII bytes
    inside a multi-byte character, so scanning bytes is exact."""
    d = re.escape(delimiter.encode())
    if eol == "\n":
        plain = rb'[^' + d + rb'"\n]*'
    else:  # only \r\n ends a record; a lone \r or \n is data
        plain = rb'(?:[^' + d + rb'"\r]|\r(?!\n))*'
    return re.compile(rb'(?:"([^"]*(?:""[^"]*)*)"|(' + plain + rb'))(' + d + rb"|" + re.escape(eol.encode()) + rb"|\Z)")


def _iter_records(data: bytes, delimiter: str, eol: str, pos: int = 0):
    """(values, end offset) of each record from ``pos``; blank lines skipped."""
    pattern = _field_pattern(delimiter, eol)
    sep_delim = delimiter.encode()
    row: list[str] = []
    size = len(data)
    while pos < size:
        m = pattern.match(data, pos)
        if m is None:
            line = data.count(b"\n", 0, pos) + 1
            raise ValueError(
                f"result CSV is malformed near line {line} (byte {pos}): a quoted value must be "
                f"followed by the delimiter or the line ending; check column_delimiter/line_ending"
            )
        quoted, plain, sep = m.groups()
        try:
            row.append(quoted.replace(b'""', b'"').decode() if quoted is not None else plain.decode())
        except UnicodeDecodeError as exc:
            raise ValueError(f"result CSV is not valid UTF-8 near byte {pos}: {exc}") from None
        pos = m.end()
        if sep == sep_delim:
            if pos == size:  # a trailing delimiter ends with an empty last value
                row.append("")
            else:
                continue
        if row != [""] or quoted is not None:
            yield row, pos
        row = []


def _first_record(data: bytes, delimiter: str, eol: str) -> tuple[list[str], int]:
    return next(_iter_records(data, delimiter, eol))


def _stray_line_breaks(data: bytes, eol: str) -> bool:
    """Whether an unquoted \\r or \\n is data for this line ending (Arrow would end a
    record there). Quote parity tells inside from outside: doubled quotes keep it."""
    if eol == "\n":
        if b"\r" not in data:
            return False
        buf = np.frombuffer(data, np.uint8)
        candidates = np.flatnonzero(buf == 13)
    else:
        crlf = data.count(b"\r\n")
        if data.count(b"\r") == crlf and data.count(b"\n") == crlf:
            return False
        buf = np.frombuffer(data, np.uint8)
        cr = np.flatnonzero(buf == 13)
        lf = np.flatnonzero(buf == 10)
        lone_cr = cr[(cr + 1 >= len(buf)) | (buf[np.minimum(cr + 1, len(buf) - 1)] != 10)]
        lone_lf = lf[(lf == 0) | (buf[np.maximum(lf - 1, 0)] != 13)]
        candidates = np.concatenate([lone_cr, lone_lf])
    if not len(candidates):
        return False
    quotes = np.flatnonzero(buf == 34)
    return bool((np.searchsorted(quotes, candidates) % 2 == 0).any())


def _parse_arrow(data: bytes, header: list[str], delimiter: str,
                 wanted: list[int] | None = None) -> pd.DataFrame:
    # Columns named by position: header names may repeat, and only the wanted are read.
    wanted = list(range(len(header))) if wanted is None else wanted
    positional = [f"c{i}" for i in range(len(header))]
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in positional},
        include_columns=[positional[i] for i in wanted],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, double_quote=True)
    block = _BLOCK_SIZE
    while True:
        try:
            table = pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(block_size=block, column_names=positional,
                                               skip_rows=1),
                parse_options=parse, convert_options=convert
            )
            break
        except pa.ArrowInvalid as exc:
            # A row longer than a block cannot be read in blocks: one block then.
            if block <= len(data) and "straddl" in str(exc):
                block = min(len(data) + 1, 2**31 - 1)
                continue
            raise ValueError(f"result CSV could not be parsed: {exc}") from None
    frame = table.to_pandas()
    frame.columns = [header[i] for i in wanted]
    return frame


def _parse_exact(data: bytes, header: list[str], start: int, delimiter: str, eol: str) -> pd.DataFrame:
    columns: dict[int, list[str]] = {i: [] for i in range(len(header))}
    width = len(header)
    for number, (row, _) in enumerate(_iter_records(data, delimiter, eol, start), start=1):
        if len(row) != width:
            raise ValueError(f"result CSV row {number} has {len(row)} values, but the header names {width} columns")
        for i, value in enumerate(row):
            columns[i].append(value)
    return _text_frame(columns, header)


# ------------------------------------------------------------------- sf__Error texts

_STATUS_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_FIELD_NAME = r"[^\W\d]\w*(?:\.\w+)*"
_FIELD_LIST = re.compile(rf"{_FIELD_NAME}(?:\s*,\s*{_FIELD_NAME})*")


def split_sf_error(text: str) -> tuple[str, str, str]:
    """``"CODE:message:f1,f2 --"`` -> ``("CODE", "message", "f1,f2")``.

    The message may itself hold ``:``: the fields are what follows the last ``:``, if
    that is a list of field names (or nothing), else there are none. A missing part
    comes back as ``''``; text that does not start with an upper-case status code is
    all message.
    """
    text = "" if text is None else str(text).strip()
    if text.endswith("--"):
        text = text[:-2].rstrip()
    code, colon, rest = text.partition(":")
    if not _STATUS_CODE.fullmatch(code):
        return "", text, ""
    message, colon, fields = rest.rpartition(":")
    if colon and (not fields or _FIELD_LIST.fullmatch(fields)):
        return code, message, fields
    return code, rest, ""


def split_sf_errors(errors: pd.Series) -> pd.DataFrame:
    """``split_sf_error`` over a Series: columns code, message, fields (string dtype, NA
    where the error is NA), same index. Each distinct text is split once."""
    parts = _split_errors(_text(errors, keep_nulls=True))
    return pd.DataFrame(
        {name: pd.array(part, dtype="string") for name, part in zip(("code", "message", "fields"), parts)},
        index=errors.index,
    )


def _split_errors(errors: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    encoded = pc.dictionary_encode(errors)
    parts = [split_sf_error(text) for text in encoded.dictionary.to_pylist()]
    return tuple(pa.array([p[i] for p in parts], _LSTR).take(encoded.indices) for i in range(3))


# ----------------------------------------------------------------------- alignment


def align(
    sent_text: pd.DataFrame,
    operation: str,
    key: str | None,
    outcomes: list[JobOutcome],
    *,
    key_case_insensitive: bool = False,
) -> pd.DataFrame:
    """Each input row's fate: a frame with ``sent_text``'s index and ``ALIGN_COLUMNS``
    (string dtype, NA where a column does not apply).

    ``sent_text`` is the text sent (``encode.format_frame``), ``key`` the external id
    field of an upsert (``Id`` or None for update/delete; ignored for insert). Every row
    must be carried by exactly one outcome. Raises ``AlignmentError`` when a finished,
    sent job left rows without a result or a result row matches no input row.
    """
    op = _operation(operation)
    if not isinstance(sent_text, pd.DataFrame):
        raise TypeError(f"sent_text must be a DataFrame of sent text, got {type(sent_text).__name__}")
    n = len(sent_text)
    outcomes = list(outcomes)
    job_of = _job_of_rows(outcomes, n)
    spec = _MatchSpec.make(sent_text, op, key, key_case_insensitive)

    sent_jobs = np.array([o.sent for o in outcomes], bool)
    for j, o in enumerate(outcomes):
        if (not o.sent or o.unknown) and any(f is not None and len(f) for _, f in o._frames()):
            raise ValueError(f"outcome {j} (job {o.job_id}) has sent=False or unknown=True but "
                             "carries result rows")
    left_pos = np.flatnonzero(sent_jobs[job_of])
    left_job = job_of[left_pos]
    results = _Results.collect(outcomes, op)

    # Pass 1: exact texts. Pass 2: what is left over, with numbers compared by value.
    match = np.full(len(left_pos), -1, np.int64)
    right_used = np.zeros(results.size, bool)
    left_sel, right_sel = np.arange(len(left_pos)), np.arange(results.size)
    for lenient in (False, True):
        if not len(left_sel) or not len(right_sel):
            break
        kl, kr = spec.keys(
            left_pos[left_sel], left_job[left_sel], results, right_sel, len(outcomes), lenient
        )
        found = _pair(kl, kr)
        hit = found >= 0
        match[left_sel[hit]] = right_sel[found[hit]]
        right_used[right_sel[found[hit]]] = True
        left_sel, right_sel = left_sel[~hit], np.flatnonzero(~right_used)

    # Rows of a job whose results are known to be unreadable (unknown) have none to miss.
    finished = np.array([o.finished and not o.unknown for o in outcomes], bool)
    missing = left_pos[(match < 0) & finished[left_job]]
    extra = np.flatnonzero(~right_used)
    if len(missing) or len(extra):
        raise _alignment_error(sent_text, outcomes, job_of, missing, extra, results, spec)

    status = np.where(sent_jobs[job_of], _PENDING, _NOT_SENT).astype(np.int64)
    status[np.array([o.unknown for o in outcomes], bool)[job_of]] = _UNKNOWN
    row_result = np.full(n, -1, np.int64)
    row_result[left_pos] = match
    has = row_result >= 0
    status[has] = results.status[row_result[has]]
    pick = pa.array(row_result, mask=~has)
    job_ids = pa.array([o.job_id for o in outcomes], _LSTR)
    code = results.error_code.take(pick)
    message = results.error_message.take(pick)
    # A job's own reason goes to its rows that have none: unprocessed or never sent.
    why = [o.error for o in outcomes]
    if any(why):
        job_codes = pa.array([w[0] if w else None for w in why], _LSTR).take(pa.array(job_of))
        job_messages = pa.array([w[1] if w else None for w in why], _LSTR).take(pa.array(job_of))
        left_out = pa.array(np.isin(status, (_UNPROCESSED, _NOT_SENT, _PENDING, _UNKNOWN)))
        code = pc.if_else(left_out, job_codes, code)
        message = pc.if_else(left_out, job_messages, message)
    columns = {
        "sf_id": results.sf_id.take(pick),
        "sf_status": pa.array(STATUSES, _LSTR).take(pa.array(status)),
        "sf_error_code": code,
        "sf_error_message": message,
        "sf_error_fields": results.error_fields.take(pick),
        "sf_job_id": job_ids.take(pa.array(job_of)),
    }
    return pd.DataFrame({c: pd.array(columns[c], dtype="string") for c in ALIGN_COLUMNS}, index=sent_text.index)


def _operation(operation: str) -> str:
    by_lower = {op.lower(): op for op in OPERATIONS}
    op = by_lower.get(str(operation).lower())
    if op is None:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}; got {operation!r}")
    return op


def _positions(positions, n: int) -> np.ndarray:
    if isinstance(positions, range):
        pos = np.arange(positions.start, positions.stop, positions.step, dtype=np.int64)
    else:
        pos = np.asarray(list(positions), dtype=np.int64)
    if len(pos) and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"outcome positions {positions!r} fall outside the {n} rows sent")
    return pos


def _job_of_rows(outcomes: list[JobOutcome], n: int) -> np.ndarray:
    """The index of the outcome carrying each row; every row exactly once."""
    positions = [_positions(o.positions, n) for o in outcomes]
    job_of = np.full(n, -1, np.int64)
    for j, pos in enumerate(positions):
        job_of[pos] = j
    counts = np.bincount(np.concatenate(positions or [np.zeros(0, np.int64)]), minlength=n)
    twice = np.flatnonzero(counts > 1)
    if len(twice):
        raise AlignmentError(f"rows at positions {_some(twice)} are carried by more than one outcome", twice)
    orphans = np.flatnonzero(counts == 0)
    if len(orphans):
        raise AlignmentError(
            f"rows at positions {_some(orphans)} are carried by no outcome; give every chunk an "
            f"outcome (sent=False for one never sent)",
            orphans,
        )
    return job_of


def _some(values) -> str:
    values = list(values)
    more = f", ... ({len(values)} in all)" if len(values) > _SHOWN else ""
    return f"[{', '.join(map(str, values[:_SHOWN]))}{more}]"


def _find_column(columns, name: str, where: str) -> int:
    """Position of ``name`` among ``columns``: exact, else the one case-insensitive match."""
    names = [str(c) for c in columns]
    exact = [i for i, c in enumerate(names) if c == name]
    if len(exact) == 1:
        return exact[0]
    folded = [i for i, c in enumerate(names) if c.lower() == name.lower()]
    # AlignmentError (a ValueError): result files without the columns sent cannot be
    # paired with the rows, which a run reports as unknown rows instead of failing.
    if len(exact) > 1 or len(folded) > 1:
        raise AlignmentError(f"{where} has more than one column named {name!r}")
    if not folded:
        raise AlignmentError(f"{where} has no column {name!r} (columns: {', '.join(names)})")
    return folded[0]


def _text(values, keep_nulls: bool = False) -> pa.Array:
    """A Series (or Arrow array) as one large_string Arrow array; nulls become ''."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, from_pandas=True)
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(_LSTR)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count and not keep_nulls:
        arr = pc.fill_null(arr, "")
    return arr


def _is_id_key(op: str, key: str | None) -> bool:
    return op in ("update", "delete", "hardDelete") or (op == "upsert" and str(key).lower() == "id")


def _key_position(sent_text: pd.DataFrame, op: str, key: str | None) -> int:
    if op == "upsert" and not key:
        raise ValueError("an upsert needs key= (the external id field name)")
    return _find_column(sent_text.columns, key or "Id", "sent_text")


# -- key normalisation ------------------------------------------------------------------

_ID_SUFFIX = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", np.uint8)
_ID_WEIGHTS = np.array([1, 2, 4, 8, 16], np.uint8)


def _id18_upper(values: pa.Array) -> pa.Array:
    """Ids in one form: 15-character ids get their 3-character suffix, every id-shaped
    text is upper-cased (the suffix of an 18-character id carries the case). Other text
    is left as it is."""
    length = pc.binary_length(values)
    alnum = pc.ascii_is_alnum(values)
    is15 = pc.and_(pc.equal(length, 15), alnum)
    is18 = pc.and_(pc.equal(length, 18), alnum)
    out = pc.if_else(is18, pc.ascii_upper(values), values)
    if not pc.any(is15).as_py():
        return out
    short = pc.filter(values, is15)
    offsets = np.frombuffer(short.buffers()[1], np.int64)[short.offset : short.offset + len(short) + 1]
    raw = np.frombuffer(short.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 15)
    upper = ((raw >= 65) & (raw <= 90)).reshape(-1, 3, 5).astype(np.uint8)
    suffix = _ID_SUFFIX[upper @ _ID_WEIGHTS]
    full = np.concatenate([raw, suffix], axis=1)
    full = np.where((full >= 97) & (full <= 122), full - 32, full).astype(np.uint8)
    m = len(full)
    ids = pa.Array.from_buffers(
        _LSTR, m, [None, pa.py_buffer(np.arange(0, 18 * (m + 1), 18, dtype=np.int64)), pa.py_buffer(full.tobytes())]
    )
    return pc.replace_with_mask(out, is15, ids)


def _numbers_by_value(values: pa.Array) -> pa.Array:
    """Number-shaped texts in one canonical form (``9.12260031E8`` -> ``912260031``)."""
    is_number = pc.match_substring_regex(values, r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
    if not pc.any(is_number).as_py():
        return values
    canonical = pc.cast(pc.filter(values, is_number), pa.float64()).cast(_LSTR)
    return pc.replace_with_mask(values, is_number, canonical)


def _normalizer(op: str, key: str | None, case_insensitive: bool):
    if _is_id_key(op, key):
        return _id18_upper
    if op == "upsert" and case_insensitive:
        return pc.utf8_lower
    return None


# -- matching -----------------------------------------------------------------------------


class _Results:
    """All result rows of all outcomes, in one table."""

    def __init__(self, frames, job, status, sf_id, error):
        self.frames = frames  # (job index, kind, frame, first row in this table)
        self.job = job
        self.size = len(job)
        self.status = status
        self.sf_id = sf_id
        self.error_code, self.error_message, self.error_fields = error

    @classmethod
    def collect(cls, outcomes: list[JobOutcome], op: str) -> _Results:
        frames, jobs, statuses, ids, errors = [], [], [], [], []
        start = 0
        for j, o in enumerate(outcomes):
            if not o.sent:
                continue
            for kind, frame in o._frames():
                if frame is None or not len(frame):
                    continue
                rows = len(frame)
                frames.append((j, kind, frame, start))
                start += rows
                jobs.append(np.full(rows, j, np.int64))
                where = f"{kind} of job {o.job_id or f'#{j}'}"
                ids.append(_result_text(frame, "sf__Id", where, optional=True))
                errors.append(pa.nulls(rows, _LSTR))
                if kind == "failedResults":
                    statuses.append(np.full(rows, _FAILED))
                    errors[-1] = _result_text(frame, "sf__Error", where)
                elif kind == "unprocessedrecords":
                    statuses.append(np.full(rows, _UNPROCESSED))
                elif op in ("delete", "hardDelete"):
                    statuses.append(np.full(rows, _DELETED))
                elif op == "insert":
                    statuses.append(np.full(rows, _CREATED))
                else:
                    created = pc.equal(pc.ascii_lower(_result_text(frame, "sf__Created", where)), "true")
                    statuses.append(np.where(created.to_numpy(zero_copy_only=False), _CREATED, _UPDATED))
        if not frames:
            empty = pa.array([], _LSTR)
            return cls([], np.zeros(0, np.int64), np.zeros(0, np.int64), empty, (empty, empty, empty))
        sf_id = pa.concat_arrays(ids)
        sf_id = pc.if_else(pc.equal(sf_id, ""), pa.scalar(None, _LSTR), sf_id)
        error = _split_errors(pa.concat_arrays(errors))
        return cls(frames, np.concatenate(jobs), np.concatenate(statuses), sf_id, error)

    def column(self, name: str, rows: np.ndarray) -> pa.Array:
        """The echoed text of the sent column ``name`` for the given result rows."""
        parts = []
        for j, kind, frame, _start in self.frames:
            pos = _find_column(frame.columns, name, f"{kind} of outcome {j}")
            parts.append(_text(frame.iloc[:, pos]))
        return _take(pa.concat_arrays(parts), rows)

    def where(self, rows: np.ndarray) -> list[tuple[int, str, int]]:
        """(outcome index, result kind, row number in that file) of result rows."""
        starts = np.array([start for *_, start in self.frames], np.int64)
        files = np.searchsorted(starts, rows, side="right") - 1
        return [(self.frames[f][0], self.frames[f][1], int(r - starts[f])) for f, r in zip(files, rows)]


def has_transient_failures(outcomes: list[JobOutcome]) -> bool:
    """Whether any failed result row of these outcomes names a TRANSIENT_ERRORS code: only
    those rows make a follow-up round, and telling needs no alignment of the rows."""
    for o in outcomes:
        if o.unknown or o.failed is None or not len(o.failed):
            continue
        errors = pc.utf8_ltrim_whitespace(
            _result_text(o.failed, "sf__Error", "failed results", optional=True))
        # A superset of split_sf_error's code (a longer code with this start): alignment
        # then reads the codes exactly.
        if any(pc.any(pc.starts_with(errors, code)).as_py() for code in TRANSIENT_ERRORS):
            return True
    return False


def _take(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """values.take(rows), without the copy when rows are all of them in order."""
    if len(rows) == len(values) and (not len(rows) or (rows[0] == 0 and
                                                         (np.diff(rows) == 1).all())):
        return values
    return values.take(pa.array(rows, pa.int64()))


def _has(frame: pd.DataFrame, name: str) -> bool:
    return any(str(c).lower() == name.lower() for c in frame.columns)


def _result_text(frame: pd.DataFrame, name: str, where: str, optional: bool = False) -> pa.Array:
    """A result column's text; a missing optional column reads as blanks (sf__Id is
    absent from unprocessed records and blank on failed inserts)."""
    if optional and not _has(frame, name):
        return pa.repeat(pa.scalar("", _LSTR), len(frame))
    return _text(frame.iloc[:, _find_column(frame.columns, name, where)])


@dataclass
class _MatchSpec:
    sent: pd.DataFrame
    key_columns: list[int]  # columns whose text identifies a row
    normalize: object  # key text -> comparable text, or None for exact
    keyed: bool  # upsert/update/delete: duplicates are told apart by full text

    @classmethod
    def make(cls, sent: pd.DataFrame, op: str, key: str | None, case_insensitive: bool) -> _MatchSpec:
        if op == "insert":
            return cls(sent, list(range(sent.shape[1])), None, False)
        return cls(sent, [_key_position(sent, op, key)], _normalizer(op, key, case_insensitive), True)

    def _codes(self, columns, left_pos, results, right_rows, normalize, lenient, codes, card):
        for c in columns:
            name = str(self.sent.columns[c])
            left = _take(_text(self.sent.iloc[:, c]), left_pos)
            right = results.column(name, right_rows)
            both = pa.concat_arrays([left, right])
            if normalize is not None:
                both = normalize(both)
            if lenient:
                both = _numbers_by_value(both)
            encoded = pc.dictionary_encode(both)
            codes, card = _combine(codes, card, encoded.indices.to_numpy().astype(np.int64), len(encoded.dictionary))
        return codes, card

    def keys(self, left_pos, left_job, results, right_rows, n_jobs, lenient):
        """Integer keys for the given input rows and result rows: equal keys match."""
        nl = len(left_pos)
        codes = np.concatenate([left_job, results.job[right_rows]])
        codes, card = self._codes(self.key_columns, left_pos, results, right_rows, self.normalize, lenient, codes, max(n_jobs, 1))
        if self.keyed:
            # Rows sharing a key within a job: tell them apart by all their text.
            left_keys = codes[:nl]
            dup = pd.Series(left_keys).duplicated(keep=False).to_numpy()
            if dup.any():
                shared = np.isin(codes, left_keys[dup])
                full, full_card = self._codes(range(self.sent.shape[1]), left_pos, results, right_rows, None, lenient, np.zeros(len(codes), np.int64), 1)
                codes, card = _combine(codes, card, np.where(shared, full + 1, 0), full_card + 1)
        return codes[:nl], codes[nl:]


def _combine(a: np.ndarray, a_card: int, b: np.ndarray, b_card: int) -> tuple[np.ndarray, int]:
    """One code per (a, b) pair; re-numbered first when the product could overflow."""
    if a_card * b_card >= 2**62:
        a, uniques = pd.factorize(a)
        a_card = len(uniques)
    return a * b_card + b, a_card * b_card


def _rank(keys: np.ndarray) -> np.ndarray:
    """Occurrence number of each key among equal keys (0, 1, ...), in array order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(len(keys), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    steps = np.arange(len(keys))
    ranks_sorted = steps - np.maximum.accumulate(np.where(first, steps, 0))
    ranks = np.empty(len(keys), np.int64)
    ranks[order] = ranks_sorted
    return ranks


def _once_each(codes: np.ndarray, card: int) -> bool:
    return not len(codes) or int(np.bincount(codes, minlength=card).max()) <= 1


def _pair(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """For each left key, the right row with the same key and occurrence number, or -1:
    equal keys pair up one to one, the surplus on either side stays unpaired."""
    if not len(left) or not len(right):
        return np.full(len(left), -1, np.int64)
    codes, uniques = pd.factorize(np.concatenate([left, right]))
    cl, cr = codes[: len(left)], codes[len(left) :]
    if _once_each(cl, len(uniques)) and _once_each(cr, len(uniques)):
        # Every key once on each side (an upsert's keys, as the checks before sending
        # make them): a look-up table pairs them, no ranking needed.
        at = np.full(len(uniques), -1, np.int64)
        at[cr] = np.arange(len(cr))
        return at[cl]
    rl, rr = _rank(left), _rank(right)
    width = int(max(rl.max(), rr.max())) + 1
    codes = codes.astype(np.int64) * width
    return pd.Index(codes[len(left) :] + rr).get_indexer(codes[: len(left)] + rl)


def _alignment_error(sent, outcomes, job_of, missing, extra, results, spec) -> AlignmentError:
    parts = []
    if len(missing):
        jobs = sorted({outcomes[j].job_id or f"#{j}" for j in job_of[missing]})
        labels = list(sent.index[missing[:_SHOWN]])
        parts.append(
            f"{len(missing)} input row(s) of finished jobs got no result row: positions "
            f"{_some(missing.tolist())}, index labels {labels!r}, in "
            f"{'job' if len(jobs) == 1 else 'jobs'} {', '.join(map(str, jobs))}. "
            f"The result CSVs are incomplete or not all downloaded"
        )
    result_rows = results.where(extra)
    if len(extra):
        names = [str(sent.columns[c]) for c in spec.key_columns]
        described = []
        for j, kind, number in result_rows[:_SHOWN]:
            frame = next(f for jj, k, f, _ in results.frames if jj == j and k == kind)
            values = {n: frame.iat[number, _find_column(frame.columns, n, kind)] for n in names if _has(frame, n)}
            described.append(f"job {outcomes[j].job_id or f'#{j}'} {kind} row {number} {values}")
        parts.append(
            f"{len(extra)} result row(s) match no input row of their job: {'; '.join(described)}"
            f"{'; ...' if len(extra) > _SHOWN else ''}. The results belong to other data, or "
            f"sent_text is not the text that was sent"
        )
    return AlignmentError(". ".join(parts), positions=missing, result_rows=result_rows)


# ------------------------------------------------------------------ duplicate keys


def find_duplicate_keys(
    sent_text: pd.DataFrame, operation: str, key: str | None = None, key_case_insensitive: bool = False
) -> pd.DataFrame:
    """Rows whose key would make the results ambiguous or the rows fail; empty when fine.

    One row per offending input row, indexed by its index label: ``position``, ``key``
    (the text sent), ``count`` (rows sharing that key; for blanks, the number of blank
    keys) and ``reason``: ``"duplicate"`` (same key as another row, compared as Salesforce
    matches: ids in 18-character form, case-insensitively when asked) or ``"blank"``
    (no key: empty, whitespace or ``#N/A``). Inserts have no key: always empty. An upsert
    on ``Id`` inserts the rows without an Id, so blanks are fine there.
    """
    op = _operation(operation)
    empty_index = sent_text.index[:0]
    if op == "insert" or not len(sent_text):
        return _duplicates_frame(empty_index, [], [], [], [])
    text = _text(sent_text.iloc[:, _key_position(sent_text, op, key)])
    positions, key_text, counts, reasons = duplicate_keys(text, op, key, key_case_insensitive)
    return _duplicates_frame(sent_text.index[positions], positions, key_text, counts, reasons)


@dataclass(frozen=True)
class KeyCodes:
    """A key column's texts as alignment compares them, one code per distinct key."""

    codes: pa.Array  # int32 per row (null for a null text)
    distinct: int

    @classmethod
    def of(cls, text: pa.Array, operation: str, key: str | None,
           key_case_insensitive: bool = False) -> "KeyCodes":
        normalize = _normalizer(_operation(operation), key, key_case_insensitive)
        encoded = pc.dictionary_encode(normalize(text) if normalize is not None else text)
        return cls(encoded.indices, len(encoded.dictionary))

    @property
    def repeat(self) -> bool:
        """Whether two rows share a key (keys_repeat: blank keys too)."""
        return self.distinct + min(self.codes.null_count, 1) < len(self.codes)


def duplicate_keys(text: pa.Array, operation: str, key: str | None,
                   key_case_insensitive: bool = False, coded: KeyCodes | None = None):
    """find_duplicate_keys on the key column's texts (large_string): positions, key
    texts, counts and reasons of the offending rows. ``coded``: KeyCodes.of the same
    texts, when the caller has them."""
    op = _operation(operation)
    stripped = pc.utf8_trim_whitespace(text)
    blank = pc.is_in(stripped, pa.array(_NULL_TEXTS, _LSTR)).to_numpy(zero_copy_only=False)
    coded = coded or KeyCodes.of(text, op, key, key_case_insensitive)
    codes = coded.codes.to_numpy(zero_copy_only=False)
    present = np.flatnonzero(~blank)
    counts = np.bincount(codes[present], minlength=coded.distinct)[codes[present]]
    dup = present[counts > 1]
    dup_counts = counts[counts > 1]
    # Group the rows sharing a key together, groups in order of their first row.
    first = pd.Series(dup).groupby(codes[dup]).transform("min").to_numpy() if len(dup) else dup
    order = np.lexsort((dup, first))
    dup, dup_counts = dup[order], dup_counts[order]
    blanks = np.flatnonzero(blank) if not (op == "upsert" and _is_id_key(op, key)) else np.zeros(0, np.int64)
    positions = np.concatenate([dup, blanks]).astype(np.int64)
    key_text = text.take(pa.array(positions)).to_pylist()
    return (positions, key_text, np.concatenate([dup_counts, np.full(len(blanks), len(blanks))]),
            ["duplicate"] * len(dup) + ["blank"] * len(blanks))


def keys_repeat(sent_text: pd.DataFrame, operation: str, key: str | None = None,
                key_case_insensitive: bool = False) -> bool:
    """Whether two rows send one key (blank keys included), compared as alignment compares
    them. Alignment then tells those rows apart by all their cells, so the result files
    must keep every column."""
    op = _operation(operation)
    if op == "insert" or not len(sent_text):
        return False
    try:
        text = _text(sent_text.iloc[:, _key_position(sent_text, op, key)])
    except ValueError:  # no key column: alignment reports that
        return False
    return KeyCodes.of(text, op, key, key_case_insensitive).repeat


def _duplicates_frame(index, positions, keys, counts, reasons) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": np.asarray(positions, np.int64),
            "key": pd.array(list(keys), dtype="string"),
            "count": np.asarray(counts, np.int64),
            "reason": pd.array(list(reasons), dtype="string"),
        },
        index=index,
    )


# ---------------------------------------------------------------------- summaries


# The value Salesforce (and the local org) puts into its row error messages, so that rows
# differing only in their bad value group together: (pattern, template). The value is
# group 2; the template keeps the rest of the text and marks where the value was.
_VALUE_IN_MESSAGE = (
    (r"^(.*: value not of required type: )(.*)()$", r"\1…"),
    (r"^(.*: data value too large: )(.*)( \(max length=\d+\))$", r"\1…\3"),
    (r"^(.*: bad value for restricted picklist field: )(.*)()$", r"\1…"),
    (r"^(.*: invalid email address: )(.*)()$", r"\1…"),
    (r"^(.*: id value of incorrect type: )(.*)()$", r"\1…"),
    (r"^(.*: value outside of valid range on numeric field: )(.*)()$", r"\1…"),
    (r"^(Duplicate external id specified: )(.*)()$", r"\1…"),
    (r"^(Duplicate id in list: )(.*)()$", r"\1…"),
    (r"^(Foreign key external ID: )(.*)( not found for field .*)$", r"\1…\3"),
    (r"^(duplicate value found: .* duplicates value on record with id: )(.*)()$", r"\1…"),
    (r"^(.*: more than one record found for external id field: )(\[.*\])()$", r"\1…"),
    # sfbulk_nb's own checks: "<column>: '<value>' <what is wrong>"
    (r"^([^:]*: )'(.*?)'( .*)$", r"\1…\3"),
)
# The statuses of rows that did not go through (a load with any is not ok).
ERROR_STATUSES = ("failed", "invalid", "unprocessed", "not_sent", "pending", "unknown",
                  "conflict")
_SHORT = 60


def _short(text: str) -> str:
    return text if len(text) <= _SHORT else text[: _SHORT - 1] + "…"


def summarize_errors(aligned: pd.DataFrame, examples: int = 3) -> pd.DataFrame:
    """Rows that went wrong, grouped for people: by status, error code, fields and the
    message with the offending value taken out (``…`` marks where it was), so that
    ``Yes``, ``yes`` and ``No`` in one boolean column are one group. Columns: status,
    code, fields, message, rows, share (of all rows), examples (up to ``examples``
    distinct offending values) and example_index (the first index label of the group);
    largest group first (ties in order of first appearance). Rows failed by the org,
    rows found invalid before sending, and rows a Failed or Aborted job (or a job that
    could not be sent) left undone, with that job's reason."""
    status = aligned["sf_status"]
    bad = status.isin(ERROR_STATUSES).to_numpy() & (
        (status == "failed") | (status == "invalid") | aligned["sf_error_code"].notna()).to_numpy()
    wrong = aligned[bad]
    columns = ["status", "code", "fields", "message", "rows", "share", "examples", "example_index"]
    if not len(wrong):
        out = pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
        out["rows"] = out["rows"].astype(np.int64)
        out["share"] = out["share"].astype(float)
        out["examples"] = out["examples"].astype(object)
        out["example_index"] = aligned.index[:0]
        return out
    message = _text(wrong["sf_error_message"].fillna(""))
    template, value = message, pa.nulls(len(message), _LSTR)
    for pattern, replacement in _VALUE_IN_MESSAGE:
        hit = pc.and_(pc.match_substring_regex(message, pattern), pc.is_null(value))
        if not pc.any(hit).as_py():
            continue
        template = pc.if_else(hit, pc.replace_substring_regex(message, pattern, replacement), template)
        value = pc.if_else(hit, pc.replace_substring_regex(message, pattern, r"\2"), value)
    frame = pd.DataFrame({
        "status": wrong["sf_status"].astype(object).to_numpy(),
        "code": wrong["sf_error_code"].fillna("").astype(object).to_numpy(),
        "fields": wrong["sf_error_fields"].fillna("").astype(object).to_numpy(),
        "message": template.to_numpy(zero_copy_only=False),
        "value": pd.Series(value.to_pylist(), dtype=object),
        "_first": np.arange(len(wrong)),
    })
    keys = ["status", "code", "fields", "message"]
    groups = frame.groupby(keys, sort=False, dropna=False)
    summary = groups["_first"].agg(["size", "min"]).reset_index()
    shown = groups["value"].agg(lambda v: [_short(x) for x in dict.fromkeys(
        x for x in v if isinstance(x, str))][:examples])
    summary = summary.merge(shown.rename("examples").reset_index(), on=keys, how="left")
    summary = summary.sort_values(["size", "min"], ascending=[False, True], kind="stable")
    summary = summary.reset_index(drop=True)
    return pd.DataFrame({
        "status": summary["status"].astype("string"),
        "code": summary["code"].astype("string"),
        "fields": summary["fields"].astype("string"),
        "message": summary["message"].astype("string"),
        "rows": summary["size"].astype(np.int64),
        "share": summary["size"].to_numpy() / max(len(aligned), 1),
        "examples": summary["examples"],
        "example_index": wrong.index[summary["min"].to_numpy(np.int64)],
    })


def count_statuses(aligned: pd.DataFrame) -> pd.Series:
    """Rows per status, every status in ``STATUSES`` order (0 when absent)."""
    counts = aligned["sf_status"].value_counts(dropna=False)
    unknown = [s for s in counts.index if s not in STATUSES]
    if unknown:
        raise ValueError(f"sf_status holds values that are not statuses: {unknown!r}")
    return counts.reindex(list(STATUSES), fill_value=0).astype(np.int64).rename("rows").rename_axis("sf_status")
