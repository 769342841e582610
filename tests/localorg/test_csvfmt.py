"""Tests for the local org's CSV layer (sfbulk_nb.localorg.csvfmt).

Every parsing case runs through the public function, the exact path alone and the fast path
alone: the fast path must either decline (return None) or agree with the exact path.
"""
from __future__ import annotations

import gc
import random
import re
import sys

import pytest

from sfbulk_nb.localorg import csvfmt
from sfbulk_nb.localorg.csvfmt import (
    DELIMITERS,
    LINE_ENDINGS,
    CsvFormatError,
    parse_upload,
    render_columns,
    render_header,
    render_rows,
)

FAST, EXACT = True, False  # whether the fast path takes an upload or leaves it to the exact one
# csv.reader refuses NUL before Python 3.11, so the exact path takes such uploads there.
FAST_FROM_311 = sys.version_info >= (3, 11)
LF_MISMATCH = "LineEnding is invalid on user data. Current LineEnding setting is LF"
CRLF_MISMATCH = "LineEnding is invalid on user data. Current LineEnding setting is CRLF"
NO_CONTENT = "No content found in the uploaded data"


def ok(header: list[str], *rows: list[str]) -> tuple[list[str], list[list[str]]]:
    return header, list(rows)


def bad(message: str) -> CsvFormatError:
    return CsvFormatError(f"ClientInputError : {message}")


def outcome(fn, *args):
    """fn's result, or the CsvFormatError it raised."""
    try:
        return fn(*args)
    except CsvFormatError as exc:
        return exc


def same(a, b) -> bool:
    if isinstance(a, CsvFormatError) or isinstance(b, CsvFormatError):
        return type(a) is type(b) and str(a) == str(b)
    return a == b


def streamed(data: bytes, delimiter: str, line_ending: str):
    """open_upload read back in batches of two rows, checked against its own row count and
    a resumed read; returns (header, rows) like parse_upload."""
    upload = csvfmt.open_upload(data, delimiter, line_ending)
    rows = [row for batch in upload.batches(2) for row in batch]
    assert upload.rows == len(rows)
    assert [row for batch in upload.batches(2, start=1) for row in batch] == rows[1:]
    return upload.header, rows


class PieceSource:
    """An upload where it is stored (csvfmt.UploadSource), remembering whether it was read
    whole (all of it asked for at once; Arrow's reader asks for 1 MB blocks)."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        self.read_whole = False

    def read(self, offset: int, length: int) -> bytes:
        self.read_whole |= offset == 0 and length == self.size > 0
        return self.data[offset:offset + length]


def from_pieces(data: bytes, delimiter: str, line_ending: str, read_size: int):
    """open_upload of an UploadSource read `read_size` bytes at a time, as `streamed`."""
    upload = csvfmt.open_upload(PieceSource(data), delimiter, line_ending, read_size=read_size)
    rows = [row for batch in upload.batches(2) for row in batch]
    assert upload.rows == len(rows)
    assert [row for batch in upload.batches(2, start=1) for row in batch] == rows[1:]
    return upload.header, rows


def read_whole(data: bytes, delimiter: str, line_ending: str, read_size: int) -> bool:
    """Whether open_upload read this upload whole rather than a piece at a time."""
    source = PieceSource(data)
    try:
        csvfmt.open_upload(source, delimiter, line_ending, read_size=read_size)
    except CsvFormatError:
        pass
    return source.read_whole


def check(data: bytes, expected, *, fast: bool, delimiter: str = "COMMA", line_ending: str = "LF"):
    """Assert the outcome of all six ways of parsing, and whether the fast path applies."""
    assert same(outcome(parse_upload, data, delimiter, line_ending), expected)
    assert same(outcome(streamed, data, delimiter, line_ending), expected)
    for read_size in (1, 4):  # read a piece at a time, every piece boundary tried
        assert same(outcome(from_pieces, data, delimiter, line_ending, read_size), expected)
    assert same(outcome(csvfmt._parse, data, delimiter, line_ending, False), expected)
    if isinstance(expected, CsvFormatError) and re.search("LineEnding|UTF-8", str(expected)):
        return  # rejected before either path runs
    text = data.decode("utf-8").removeprefix("\ufeff")
    records = csvfmt._records_fast(text, DELIMITERS[delimiter], LINE_ENDINGS[line_ending])
    assert (records is not None) == fast
    if records is not None:
        assert (records[0], records[1:]) == expected


LF_CASES = [
    # (id, upload, expected, which path takes it)
    ("simple", b"Name,City\nAcme,Milano\n", ok(["Name", "City"], ["Acme", "Milano"]), FAST),
    ("no-final-newline", b"Name,City\nAcme,Milano", ok(["Name", "City"], ["Acme", "Milano"]), FAST),
    ("trailing-blank-lines", b"Name\nAcme\n\n\n", ok(["Name"], ["Acme"]), FAST),
    ("header-only", b"Name,City\n", ok(["Name", "City"]), FAST),
    ("header-only-no-newline", b"Name,City", ok(["Name", "City"]), FAST),
    ("header-only-blank-after", b"Name\n\n", ok(["Name"]), FAST),
    ("leading-blank-line", b"\nx\r", ok([""], ["x\r"]), EXACT),
    ("blank-line-inside-one-column", b"Name\nA\n\nB\n", ok(["Name"], ["A"], [""], ["B"]), FAST),
    ("blank-line-inside-two-columns", b"A,B\n1,2\n\n3,4\n",
     bad("Wrong number of columns at line 3: expected 2, found 1"), EXACT),
    ("quoted-empty-last-line-kept", b'Name\nA\n""\n', ok(["Name"], ["A"], [""]), FAST),
    ("empty-values", b'A,B,C\n"",,x\n,,\n', ok(["A", "B", "C"], ["", "", "x"], ["", "", ""]), FAST),
    ("doubled-quotes", b'Name,Desc\n"The ""gold"" standard","""q"""\n',
     ok(["Name", "Desc"], ['The "gold" standard', '"q"']), FAST),
    ("quote-only-value", b'A\n""""\n', ok(["A"], ['"']), FAST),
    ("embedded-lf-in-quotes", b'A,B\n"l1\nl2",x\n', ok(["A", "B"], ["l1\nl2", "x"]), FAST),
    ("embedded-crlf-in-quotes", b'A,B\n"l1\r\nl2",x\n', ok(["A", "B"], ["l1\r\nl2", "x"]), FAST),
    ("lone-cr-unquoted", b"A,B\na\rb,x\n", ok(["A", "B"], ["a\rb", "x"]), EXACT),
    ("lone-cr-quoted", b'A,B\n"a\rb",x\n', ok(["A", "B"], ["a\rb", "x"]), FAST),
    ("crlf-rows-after-lf-header", b"A,B\n1,2\r\n3,4\r\n",
     ok(["A", "B"], ["1", "2\r"], ["3", "4\r"]), EXACT),
    ("cr-after-closing-quote", b'A\n"x"\r\n',
     bad("Unexpected character '\\r' after a closing quote at line 2"), EXACT),
    ("unicode", "Name,City\nJosé,東京\n😀 emoji,Zürich\n".encode(),
     ok(["Name", "City"], ["José", "東京"], ["😀 emoji", "Zürich"]), FAST),
    ("unicode-line-separators-are-data", "A\nx\u2028y\x85z\x0c\x0b\x1c\n".encode(),
     ok(["A"], ["x\u2028y\x85z\x0c\x0b\x1c"]), FAST),
    ("nul-is-data", b"A\nx\x00y\n", ok(["A"], ["x\x00y"]), FAST_FROM_311),
    ("bom-stripped", b"\xef\xbb\xbfName\nA\n", ok(["Name"], ["A"]), FAST),
    ("second-bom-kept", b"\xef\xbb\xbf\xef\xbb\xbfName\nA\n", ok(["\ufeffName"], ["A"]), FAST),
    # Read a piece at a time, a piece may start with it: it is data there all the same.
    ("bom-in-data-kept", b"A,B\n\xef\xbb\xbfx,y\n", ok(["A", "B"], ["\ufeffx", "y"]), FAST),
    ("bom-alone-in-a-row-is-a-value", b"A,B\n1,2\n\xef\xbb\xbf\n",
     bad("Wrong number of columns at line 3: expected 2, found 1"), EXACT),
    ("empty-body", b"", bad(NO_CONTENT), EXACT),
    ("bom-only", b"\xef\xbb\xbf", bad(NO_CONTENT), EXACT),
    ("blank-lines-only", b"\n\n", bad(NO_CONTENT), EXACT),
    ("invalid-utf8", b"A\n\xff\n", bad("Invalid UTF-8 byte 0xff at line 2"), EXACT),
    ("truncated-utf8", "A\né".encode()[:-1], bad("Invalid UTF-8 byte 0xc3 at line 2"), EXACT),
    ("crlf-file", b"Name,City\r\nAcme,Milano\r\n", bad(LF_MISMATCH), EXACT),
    ("crlf-file-quoted-header", b'"Name","City"\r\nA,B\r\n', bad(LF_MISMATCH), EXACT),
    ("crlf-after-quoted-lf-in-header", b'"Na\nme",B\r\nx,y\r\n', bad(LF_MISMATCH), EXACT),
    ("quote-inside-unquoted", b'A,B\nab"c,d\n',
     bad("Unexpected character '\"' in an unquoted value at line 2"), EXACT),
    ("space-before-opening-quote", b'A,B\n"John", "Smith"\n',
     bad("Unexpected character '\"' in an unquoted value at line 2"), EXACT),
    ("text-after-closing-quote", b'A,B\n"ab"c,d\n',
     bad("Unexpected character 'c' after a closing quote at line 2"), EXACT),
    ("space-after-closing-quote", b'A,B\n"ab" ,d\n',
     bad("Unexpected character ' ' after a closing quote at line 2"), EXACT),
    ("unterminated", b'A,B\nx,y\n"abc,d\n',
     bad("Unterminated quoted value starting at line 3"), EXACT),
    ("unterminated-after-doubled-quote", b'A\n"abc""',
     bad("Unterminated quoted value starting at line 2"), EXACT),
    ("quote-in-header", b'Na"me,B\nx,y\n',
     bad("Unexpected character '\"' in an unquoted value at line 1"), EXACT),
    ("error-line-counts-physical-lines", b'A,B\n"x\ny",1\nbad"q,2\n',
     bad("Unexpected character '\"' in an unquoted value at line 4"), EXACT),
    ("too-few-values", b"A,B,C\n1,2,3\n1,2\n",
     bad("Wrong number of columns at line 3: expected 3, found 2"), EXACT),
    ("too-many-values", b"A,B\n1,2,\n",
     bad("Wrong number of columns at line 2: expected 2, found 3"), EXACT),
    ("column-error-after-multiline-value", b'A,B\n"x\ny",1\n1\n',
     bad("Wrong number of columns at line 4: expected 2, found 1"), EXACT),
    ("values-not-trimmed", b"A,B\n a , b \n", ok(["A", "B"], [" a ", " b "]), FAST),
    ("header-as-sent", b' name ,CITY,"Quoted"\n1,2,3\n',
     ok([" name ", "CITY", "Quoted"], ["1", "2", "3"]), FAST),
    ("value-over-csv-field-limit", b"A\n" + b"x" * 200_000 + b"\n", ok(["A"], ["x" * 200_000]),
     EXACT),
]

CRLF_CASES = [
    ("simple", b"Name,City\r\nAcme,Milano\r\n", ok(["Name", "City"], ["Acme", "Milano"]), FAST),
    ("no-final-newline", b"Name,City\r\nAcme,Mi", ok(["Name", "City"], ["Acme", "Mi"]), FAST),
    ("trailing-blank-lines", b"A\r\nx\r\n\r\n\r\n", ok(["A"], ["x"]), FAST),
    ("header-only", b"Name,City\r\n", ok(["Name", "City"]), FAST),
    ("embedded-crlf-in-quotes", b'A,B\r\n"a\r\nb",x\r\n', ok(["A", "B"], ["a\r\nb", "x"]), FAST),
    ("lone-lf-unquoted", b"A,B\r\na\nb,x\r\n", ok(["A", "B"], ["a\nb", "x"]), EXACT),
    ("lone-lf-quoted", b'A,B\r\n"a\nb",x\r\n', ok(["A", "B"], ["a\nb", "x"]), FAST),
    ("lone-lf-at-end", b"A\r\nx\n", ok(["A"], ["x\n"]), EXACT),
    ("lone-cr-unquoted", b"A,B\r\na\rb,x\r\n", ok(["A", "B"], ["a\rb", "x"]), EXACT),
    ("lone-cr-quoted", b'A,B\r\n"a\rb",x\r\n', ok(["A", "B"], ["a\rb", "x"]), FAST),
    ("lf-after-closing-quote", b'A\r\n"x"\ny\r\n',
     bad("Unexpected character '\\n' after a closing quote at line 2"), EXACT),
    ("lf-file", b"Name,City\nAcme,Milano\n", bad(CRLF_MISMATCH), EXACT),
    ("lone-lf-in-header", b"Na\nme,B\r\nx,y\r\n", bad(CRLF_MISMATCH), EXACT),
    ("quoted-lf-in-header", b'"Na\nme",B\r\nx,y\r\n', ok(["Na\nme", "B"], ["x", "y"]), FAST),
]


@pytest.mark.parametrize(
    "line_ending, data, expected, fast",
    [("LF", *case[1:]) for case in LF_CASES] + [("CRLF", *case[1:]) for case in CRLF_CASES],
    ids=[f"lf-{case[0]}" for case in LF_CASES] + [f"crlf-{case[0]}" for case in CRLF_CASES],
)
def test_parse_cases(line_ending, data, expected, fast):
    check(data, expected, fast=fast, line_ending=line_ending)


@pytest.mark.parametrize("name", sorted(DELIMITERS))
def test_every_delimiter(name):
    d = DELIMITERS[name]
    others = "".join(c for c in DELIMITERS.values() if c != d)  # plain data for this job
    data = f'Name{d}City{d}Note\n"a{d}b"{d}x{others}y{d}"say ""{d}"" twice"\n'.encode()
    expected = (["Name", "City", "Note"], [[f"a{d}b", f"x{others}y", f'say "{d}" twice']])
    check(data, expected, fast=True, delimiter=name)


@pytest.mark.parametrize("name", sorted(DELIMITERS))
def test_every_delimiter_crlf_multiline(name):
    d = DELIMITERS[name]
    data = f'A{d}B\r\n"1\r\n2{d}3"{d}4\r\n'.encode()
    check(data, (["A", "B"], [[f"1\r\n2{d}3", "4"]]), fast=True, delimiter=name, line_ending="CRLF")


def test_unknown_settings_are_programming_errors():
    with pytest.raises(ValueError, match="columnDelimiter 'LF'") as info:
        parse_upload(b"A\n1\n", "LF", "COMMA")  # swapped arguments
    assert not isinstance(info.value, CsvFormatError)
    with pytest.raises(ValueError, match="lineEnding 'COMMA'"):
        render_rows([["1"]], "COMMA")
    with pytest.raises(ValueError, match="columnDelimiter 'Comma'"):
        render_header(["Name"], 0, "LF", "Comma")


def test_error_is_a_value_error_with_the_message_as_str():
    with pytest.raises(ValueError) as info:
        parse_upload(b"A\r\n1\r\n")
    assert isinstance(info.value, CsvFormatError)
    assert str(info.value) == f"ClientInputError : {LF_MISMATCH}"


@pytest.mark.parametrize("enabled", [True, False])
def test_parse_leaves_the_garbage_collector_as_it_found_it(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        parse_upload(b"A\n1\n")
        with pytest.raises(CsvFormatError):
            parse_upload(b'A\n"1\n')
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


# -- rendering ---------------------------------------------------------------------------------


def test_render_rows_quotes_every_value():
    rows = [["0018c00002FInboAAD", "true", 'say "hi"'], ["", "false", "a,b\nc"]]
    assert render_rows(rows) == '"0018c00002FInboAAD","true","say ""hi"""\n"","false","a,b\nc"\n'


def test_render_rows_settings():
    rows = [("1", "x|y"), ("2", "")]
    assert render_rows(rows, "CRLF", "PIPE") == '"1"|"x|y"\r\n"2"|""\r\n'
    assert render_rows(iter(rows), column_delimiter="TAB") == '"1"\t"x|y"\n"2"\t""\n'


def test_render_rows_empty():
    assert render_rows([]) == ""
    assert render_rows(iter([])) == ""


@pytest.mark.parametrize("line_ending", list(LINE_ENDINGS))
@pytest.mark.parametrize("delimiter", list(DELIMITERS))
def test_render_columns_writes_what_render_rows_writes(line_ending, delimiter):
    import pyarrow as pa

    rows = [["0018c00002FInboAAD", "true", 'say "hi"', ""], ["", "false", "a,b\nc\r\nd", "é ü"],
            ["x", "\x00\x1f", "`^|;\t", '"']]
    columns = [pa.array(list(column), pa.string()) for column in zip(*rows)]
    assert render_columns(columns, line_ending, delimiter) == render_rows(
        rows, line_ending, delimiter).encode()
    assert render_columns([pa.array([], pa.string())], line_ending, delimiter) == b""


def test_render_rows_values_holding_the_internal_separators():
    rows = [["a\x1fb", "\x1e"], ["\x1d\x1c", "\x00\x01"], ["\x02", "\x03\ue000\ue001"]]
    text = render_rows(rows)
    assert text == '"a\x1fb","\x1e"\n"\x1d\x1c","\x00\x01"\n"\x02","\x03\ue000\ue001"\n'


def test_render_rows_gives_up_only_when_every_separator_is_taken():
    every = "\x1f\x1e\x1d\x1c\x00\x01\x02\x03" + "".join(map(chr, range(0xE000, 0xF900)))
    assert render_rows([[every[:-2]]]) == f'"{every[:-2]}"\n'  # the last pair is still free
    with pytest.raises(ValueError, match="every candidate separator"):
        render_rows([[every]])


def test_render_rows_rejects_non_text_and_empty_rows():
    with pytest.raises(TypeError):
        render_rows([["1", 2]])
    with pytest.raises(ValueError, match="at least one value"):
        render_rows([["1"], []])


def test_render_header_protocol_examples():
    names = ["sf__Id", "sf__Created", "Name", "ShippingCity"]
    assert render_header(names, 2) == '"sf__Id","sf__Created",Name,ShippingCity\n'
    failed = render_header(["sf__Id", "sf__Error", "name"], 2, "CRLF")
    assert failed == '"sf__Id","sf__Error",name\r\n'
    assert render_header(["Name"], 0) == "Name\n"


def test_render_header_quotes_caller_names_only_when_needed():
    names = ["sf__Id", "a,b", 'q"', "x\ny", "c\rd", "", " spaced ", "a|b"]
    assert render_header(names, 1) == '"sf__Id","a,b","q""","x\ny","c\rd","", spaced ,a|b\n'
    assert render_header(["a,b", "a|b"], 0, column_delimiter="PIPE") == 'a,b|"a|b"\n'


# -- round trip and path agreement on generated data --------------------------------------------

NASTY = [
    '"', '""', ",", ";", "|", "^", "`", "\t", "\r", "\n", "\r\n", " ", "é", "東", "😀", "\x00",
    "\u2028", "\ufeff", "a", "Z", "0", "#N/A", "\x1f", "\x1e",
]


def nasty_value(rnd: random.Random) -> str:
    return "".join(rnd.choice(NASTY) for _ in range(rnd.randrange(0, 6)))


@pytest.mark.parametrize("line_ending", sorted(LINE_ENDINGS))
@pytest.mark.parametrize("delimiter", sorted(DELIMITERS))
def test_round_trip_nasty_values(delimiter, line_ending):
    rnd = random.Random(f"{delimiter}/{line_ending}")
    for width in (1, 2, 5):
        names = [nasty_value(rnd) for _ in range(width)]
        rows = [[nasty_value(rnd) for _ in range(width)] for _ in range(40)]
        if width == 1:
            rows.append([""])  # a last row holding one empty value must survive
        text = (render_header(names, 0, line_ending, delimiter)
                + render_rows(rows, line_ending, delimiter))
        data = text.encode()
        if text.startswith("\ufeff"):
            data = b"\xef\xbb\xbf" + data  # an upload's leading BOM is stripped, so send one
        # Quoted everywhere, so the fast path must take it (but for NUL before 3.11).
        check(data, (names, rows), fast=FAST_FROM_311 or "\x00" not in text,
              delimiter=delimiter, line_ending=line_ending)


@pytest.mark.parametrize("line_ending", sorted(LINE_ENDINGS))
@pytest.mark.parametrize("delimiter", ["COMMA", "TAB"])
def test_fast_path_never_disagrees_on_random_text(delimiter, line_ending):
    """Random short texts of the characters that matter: the fast path declines or agrees."""
    d = DELIMITERS[delimiter]
    alphabet = ['"', '"', d, d, "\r", "\n", "\r\n", "a", "b", " "]
    rnd = random.Random(f"fuzz/{delimiter}/{line_ending}")
    accepted = rejected = by_arrow = 0
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 16)))
        exact = outcome(csvfmt._records_exact, text, d, LINE_ENDINGS[line_ending])
        fast = csvfmt._records_fast(text, d, LINE_ENDINGS[line_ending])
        if fast is None:
            rejected += 1
        else:
            accepted += 1
            assert same(fast, exact), repr(text)
        data = text.encode()
        slow = outcome(csvfmt._parse, data, delimiter, line_ending, False)
        assert same(outcome(parse_upload, data, delimiter, line_ending), slow), repr(text)
        # open_upload may hand the text to Arrow's reader: it must decline or agree too.
        assert same(outcome(streamed, data, delimiter, line_ending), slow), repr(text)
        read_size = 1 + accepted % 7  # (not drawn from rnd: the texts stay as they were)
        assert same(outcome(from_pieces, data, delimiter, line_ending, read_size), slow), (
            repr(text), read_size)
        terminator = LINE_ENDINGS[line_ending]
        to_arrow = (csvfmt._fast_path_applies(text, d, terminator)
                    and csvfmt._arrow_header(text, d, terminator) is not None
                    and csvfmt._arrow_read(data, len(csvfmt._arrow_header(text, d, terminator)),
                                           d) is not None)
        by_arrow += to_arrow
        # Checked a piece at a time, the upload goes to Arrow's reader exactly when, read
        # whole, it would: it is read whole only when the text paths must read it.
        if len(data) > read_size:  # (else its one piece is all of it)
            assert read_whole(data, delimiter, line_ending, read_size) != to_arrow, (
                repr(text), read_size)
    assert accepted > 200 and rejected > 200  # both branches were exercised
    assert by_arrow > 10  # and Arrow took some (the round-trip test gives it many more)


def test_error_messages_name_the_line():
    upload = b"A,B\n" + b"1,2\n" * 10 + b'x,"y\n'
    with pytest.raises(CsvFormatError, match=re.escape("starting at line 12")):
        parse_upload(upload)


@pytest.mark.parametrize("line_ending", sorted(LINE_ENDINGS))
@pytest.mark.parametrize("delimiter", sorted(DELIMITERS))
def test_arrow_reader_takes_plain_headers_and_agrees_with_the_exact_path(delimiter, line_ending):
    """Uploads whose header is plain go to Arrow's reader; their rows hold every nasty value
    (quotes, delimiters, line breaks, unicode), and it must read them as the exact path."""
    rnd = random.Random(f"arrow/{delimiter}/{line_ending}")
    names = ["Name", "Description", "City"]
    rows = [[nasty_value(rnd) for _ in names] for _ in range(500)]
    text = (render_header(names, 0, line_ending, delimiter)
            + render_rows(rows, line_ending, delimiter))
    data = text.encode()
    terminator, d = LINE_ENDINGS[line_ending], DELIMITERS[delimiter]
    assert csvfmt._arrow_header(text, d, terminator) == names
    assert csvfmt._arrow_read(data, len(names), d).num_rows == len(rows)
    assert same(outcome(streamed, data, delimiter, line_ending), (names, rows))
    upload = csvfmt.open_upload(data, delimiter, line_ending)
    columns = [c for batch in upload.column_batches(150, start=7) for c in batch[:1]]
    assert [v for c in columns for v in c] == [r[0] for r in rows[7:]]
    for read_size in (1, 64, 1000):
        assert same(outcome(from_pieces, data, delimiter, line_ending, read_size), (names, rows))
        assert not read_whole(data, delimiter, line_ending, read_size)


def test_a_record_longer_than_a_piece_may_be_is_read_whole_the_same():
    """Quotes that span more than max_piece bytes: the upload is read whole instead."""
    long_value = "line\n" * 50
    data = f'Name,Description\nA,"{long_value}"\nB,short\n'.encode()
    expected = (["Name", "Description"], [["A", long_value], ["B", "short"]])
    source = PieceSource(data)
    upload = csvfmt.open_upload(source, read_size=16, max_piece=64)
    assert source.read_whole
    assert (upload.header, [r for b in upload.batches(10) for r in b]) == expected
    source = PieceSource(data)
    upload = csvfmt.open_upload(source, read_size=16, max_piece=1024)
    assert not source.read_whole
    assert (upload.header, [r for b in upload.batches(10) for r in b]) == expected


def test_a_big_upload_is_handed_out_in_batches_of_the_size_asked_from_any_start():
    """Several of Arrow's blocks (1 MB) and many pieces: batches keep their size across
    blocks, and a start (a job resumed after a restart) skips rows across them."""
    rows = [[f"Name {i}", f'"quoted, {i}"', "x" * (i % 50)] for i in range(40_000)]
    text = "A,B,C\n" + "".join(",".join(row) + "\n" for row in rows)
    expected = [[r[0], r[1][1:-1], r[2]] for r in rows]
    for start in (0, 1, 17_000, 39_999, 40_000):
        source = PieceSource(text.encode())
        upload = csvfmt.open_upload(source, read_size=4096)
        batches = list(upload.column_batches(10_000, start=start))
        assert not source.read_whole
        assert [len(b[0]) for b in batches][:-1] == [10_000] * (len(batches) - 1)
        assert [list(r) for b in batches for r in zip(*b)] == expected[start:]
        assert upload.rows == len(rows)


def test_a_ragged_row_at_the_end_of_a_big_upload_is_named_before_any_row_is_handed_out():
    data = ("A,B\n" + "1,2\n" * 30_000 + "3\n").encode()
    with pytest.raises(CsvFormatError, match="Wrong number of columns at line 30002"):
        csvfmt.open_upload(PieceSource(data), read_size=4096)
