"""Benchmark sfbulk_nb.encode.encode_csv against pyarrow.csv.write_csv (a script, not a test).

    /work/venv/bin/python bench/bench_encode.py [--rows 1000000] [--repeat 3]

Builds one frame of N rows x 7 mixed columns (strings with some commas and quotes,
int64, float64, bool, datetime.date objects, tz-aware datetimes, nullable Int64 with
NAs), then in the same run times, best of --repeat:

* encode_csv(df)
* pyarrow.csv.write_csv(pa.Table.from_pandas(df)) into memory (conversion included)

and prints the ratio (target: encode_csv within 2x of pyarrow). pyarrow spends most
of its time on the tz-aware column, so the same pair is also timed without it (the
harder comparison), and iter_chunks at 10 MB per chunk is timed as well.

Peak memory is measured for each in a fresh child process, so that neither the other
runs nor allocator caching skew it: a thread samples the process RSS (psutil) every
millisecond while the call runs, and the peak increase over the RSS just before the
call is reported, also as a multiple of the CSV size. iter_chunks is measured twice:
with every chunk kept (worst case) and streamed (each chunk dropped once taken).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import report  # noqa: E402

from sfbulk_nb.encode import encode_csv, iter_chunks  # noqa: E402


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "beta", "gamma, delta", 'say "hi"', "plain text value", "Zürich", "x"])
    names = pd.Series(words[rng.integers(0, len(words), rows)]) + pd.Series(np.arange(rows).astype(str))
    score = pd.Series(rng.integers(0, 1000, rows), dtype="Int64")
    score[rng.random(rows) < 0.2] = pd.NA
    return pd.DataFrame(
        {
            "Name": names,
            "Count__c": rng.integers(-(10**9), 10**9, rows),
            "Amount__c": rng.normal(0, 1e4, rows).round(3),
            "Active__c": rng.random(rows) < 0.5,
            "Start__c": (pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 9000, rows), unit="D")).date,
            "Seen__c": pd.Series(
                pd.Timestamp("2020-01-01", tz="America/New_York")
                + pd.to_timedelta(rng.integers(0, 10**11, rows), unit="ms")
            ),
            "Score__c": score,
        }
    )


def run_ours(df: pd.DataFrame) -> bytes:
    return encode_csv(df)


def run_pyarrow(df: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_pandas(df), sink)
    return sink.getvalue()


def run_chunks_kept(df: pd.DataFrame) -> list[bytes]:
    """iter_chunks at 10 MB per chunk, every chunk kept: the worst case for memory."""
    return [c.data for c in iter_chunks(df, max_bytes=10_000_000)]


def run_chunks_streamed(df: pd.DataFrame) -> int:
    """iter_chunks at 10 MB per chunk, each dropped once taken, as an uploader would."""
    return sum(len(c.data) for c in iter_chunks(df, max_bytes=10_000_000))


RUNNERS = {
    "encode_csv": run_ours,
    "iter_chunks, chunks kept": run_chunks_kept,
    "iter_chunks, streamed": run_chunks_streamed,
    "pyarrow": run_pyarrow,
}


def size_of(out) -> int:
    if isinstance(out, int):
        return out
    if isinstance(out, list):
        return sum(len(part) for part in out)
    return len(out)


def best_of(fn, df, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(df)
        times.append(time.perf_counter() - start)
        del out
    return min(times)


def peak_rss_child(which: str, rows: int) -> None:
    """Child process: build the frame, run one encoder once, print JSON."""
    import psutil

    df = make_frame(rows)
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = RUNNERS[which](df)
    peak = max(peak, proc.memory_info().rss)
    done.set()
    sampler.join()
    print(json.dumps({"peak_increase": peak - baseline, "csv_bytes": size_of(out)}))


def measure_memory(which: str, rows: int) -> dict:
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", which, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peak_rss_child(args.child, args.rows)
        return

    start = time.perf_counter()
    df = make_frame(args.rows)
    print(f"frame: {args.rows:,} rows x {df.shape[1]} columns, built in {time.perf_counter() - start:.2f}s")
    print(df.dtypes.to_string())
    ours_bytes = len(run_ours(df))
    arrow_bytes = len(run_pyarrow(df))
    print(f"CSV size: encode_csv {ours_bytes / 1e6:.1f} MB, pyarrow {arrow_bytes / 1e6:.1f} MB")

    ours = best_of(run_ours, df, args.repeat)
    arrow = best_of(run_pyarrow, df, args.repeat)
    print(f"encode_csv           best of {args.repeat}: {ours:.3f}s")
    print(f"pyarrow write_csv    best of {args.repeat}: {arrow:.3f}s")
    ratio = ours / arrow
    print(f"ratio encode_csv / pyarrow: {ratio:.2f}x ({'within' if ratio <= 2 else 'OVER'} the 2x target)")
    report("encode_csv vs pyarrow write_csv (s)", ours, arrow, "<= 2")

    # pyarrow spends most of its time formatting the zoned timestamps; the same
    # comparison without that column is the harder one for encode_csv.
    rest = df.drop(columns=["Seen__c"])
    ours_rest = best_of(run_ours, rest, args.repeat)
    arrow_rest = best_of(run_pyarrow, rest, args.repeat)
    print(
        f"without the tz-aware column: encode_csv {ours_rest:.3f}s, pyarrow {arrow_rest:.3f}s, "
        f"ratio {ours_rest / arrow_rest:.2f}x"
    )
    chunked = best_of(run_chunks_kept, df, args.repeat)
    print(f"iter_chunks (10 MB chunks) best of {args.repeat}: {chunked:.3f}s")

    for which in RUNNERS:
        mem = measure_memory(which, args.rows)
        print(
            f"peak RSS increase, {which:<24}: {mem['peak_increase'] / 1e6:6.1f} MB "
            f"= {mem['peak_increase'] / mem['csv_bytes']:.2f}x its CSV ({mem['csv_bytes'] / 1e6:.1f} MB)"
        )


if __name__ == "__main__":
    main()
