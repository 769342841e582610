"""Benchmark the local org's CSV layer (sfbulk_nb.localorg.csvfmt); a script, not a test.

Generates an upload of mixed data in memory (default 1,000,000 rows x 7 columns, written by
csv.writer the way clients quote), then times:

- parse_upload (fast path), for an LF and a CRLF job;
- the exact path alone (what parse_upload falls back to);
- render_rows over the parsed rows;
- csv.reader over the same text, as the yardstick for the ratios.

    /work/venv/bin/python bench/bench_csvparse.py [--rows N] [--repeat K] [--ascii]

One emoji makes Python store the whole text with 4 bytes per character, which slows every
pass over it; --ascii replaces the non-ASCII characters to show the difference.
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from pathlib import Path

from sfbulk_nb.localorg import csvfmt
from sfbulk_nb.localorg.gcpause import gc_paused

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import report, timed  # noqa: E402

HEADER = [
    "Name", "BillingCity", "AnnualRevenue", "NumberOfEmployees", "CloseDate", "IsActive__c",
    "Description",
]
CITIES = ["Milano", "Zürich", "東京", "São Paulo", "Kraków", "New York", "Reykjavík", ""]
DESCRIPTIONS = [
    "",
    "Lorem ipsum dolor sit amet",
    'The "gold" standard, since 1999',
    "Line one\nLine two",
    "Café ☕ and 🚀 launch",
    "semi;colon|pipe^caret`tick\ttab",
    "windows\r\nbreak inside quotes",
]


def make_text(rows: int, line_ending: str, ascii_only: bool = False, seed: int = 7) -> str:
    """A CSV upload of `rows` data rows, quoted minimally by csv.writer."""
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_ending)
    writer.writerow(HEADER)
    for i in range(rows):
        writer.writerow([
            f"Acme, Inc. #{i}" if i % 3 == 0 else f"Company {i}",
            rnd.choice(CITIES),
            f"{rnd.random() * 1e9:.2f}",
            str(rnd.randrange(1, 100_000)),
            f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
            "true" if i % 2 else "false",
            rnd.choice(DESCRIPTIONS),
        ])
    text = out.getvalue()
    return text.encode("ascii", "replace").decode() if ascii_only else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ascii", action="store_true", help="replace non-ASCII characters")
    args = parser.parse_args()
    n, k = args.rows, args.repeat

    text = make_text(n, "\n", args.ascii)
    data = text.encode("utf-8")
    crlf_data = make_text(n, "\r\n", args.ascii).encode("utf-8")
    print(f"{n:,} rows x {len(HEADER)} columns, {len(data) / 1e6:.1f} MB"
          f"{' (ASCII only)' if args.ascii else ''}; best of {k}")

    def csv_reader():
        return list(csv.reader(io.StringIO(text, newline="")))

    def csv_reader_gc_paused():
        with gc_paused():
            return list(csv.reader(io.StringIO(text, newline="")))

    t_csv, expected = timed(csv_reader, k)
    t_csv_nogc, _ = timed(csv_reader_gc_paused, k)
    t_fast, (header, rows) = timed(lambda: csvfmt.parse_upload(data), k)
    assert [header] + rows == expected, "fast path disagrees with csv.reader"
    t_crlf, (_, crlf_rows) = timed(lambda: csvfmt.parse_upload(crlf_data, line_ending="CRLF"), k)
    assert crlf_rows == rows, "CRLF upload parsed differently"
    del crlf_rows
    for blob, ending in ((data, "\n"), (crlf_data, "\r\n")):
        assert csvfmt._records_fast(blob.decode(), ",", ending), "parse_upload left the fast path"
    t_exact, (_, exact_rows) = timed(lambda: csvfmt._parse(data, "COMMA", "LF", fast=False), k)
    assert exact_rows == rows, "exact path disagrees with the fast path"
    del exact_rows, expected
    t_render, rendered = timed(lambda: csvfmt.render_rows(rows), k)
    assert csvfmt.parse_upload((csvfmt.render_header(header, 0) + rendered).encode())[1] == rows

    def line(label: str, seconds: float) -> None:
        print(f"{label:<44} {seconds:7.3f} s  {n / seconds:>12,.0f} rows/s  "
              f"x{seconds / t_csv:5.2f} of csv.reader")

    line("csv.reader (list, gc on) [yardstick]", t_csv)
    line("csv.reader (list, gc paused)", t_csv_nogc)
    line("parse_upload LF, fast path (incl. decode)", t_fast)
    line("parse_upload CRLF, fast path (incl. decode)", t_crlf)
    line("parse_upload LF, exact path forced", t_exact)
    line("render_rows (7 values/row)", t_render)
    report("local org upload parsing (fast path) vs csv.reader (s)", t_fast, t_csv)


if __name__ == "__main__":
    main()
