"""Local org throughput: upsert N Account rows (7 columns) through the HTTP API.

The server runs in its own process (`sfbulk-nb localorg serve`), so its peak RSS is its
own. Reported: records/second of processing (close -> JobComplete) for a first upsert
(every row inserts) and a second one (every row updates), and the server's peak RSS, whole
and over its idle RSS (measured once it has started, before any job: the idle server alone
is near twice a 1M-row upload), with the peak of the first upload's PUT alone. The
baseline, measured in the same run on the same machine: the same rows written with a bare
`sqlite3.executemany` into a table with the same indexes, the floor any SQLite-backed
server pays.

    python bench/bench_localorg_upsert.py [--rows 1000000]
"""
from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import proc_status_mb, report, start_server, stop_server  # noqa: E402

COLUMNS = ["customExtIdField__c", "Name", "AccountNumber", "NumberOfEmployees",
           "AnnualRevenue", "BillingCity", "Active__c"]


def make_rows(n: int, seed: int = 1) -> list[list[str]]:
    rnd = random.Random(seed)
    return [[f"EXT-{i:07d}", f"Account {i}", f"AN{rnd.randint(1, 10**8)}",
             str(rnd.randint(1, 50_000)), f"{rnd.randint(1, 10**7)}.5", f"City, {i % 977}",
             "true" if i % 2 else "false"] for i in range(n)]


def to_csv(rows: list[list[str]], suffix: str = "") -> bytes:
    def cell(v: str) -> str:
        return f'"{v}"' if "," in v else v
    lines = [",".join(COLUMNS)]
    lines += [",".join(cell(v + suffix if k == 1 else v) for k, v in enumerate(r)) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def run_job(base: str, headers: dict, data: bytes, server_pid: int
            ) -> tuple[float, dict, float]:
    """(seconds from close to the job's end, its final JobInfo, the server's peak RSS in MB
    once the upload was received, before the job ran)."""
    job = requests.post(f"{base}/jobs/ingest", headers=headers, timeout=60, json={
        "object": "Account", "operation": "upsert",
        "externalIdFieldName": "customExtIdField__c"}).json()
    r = requests.put(f"{base}/jobs/ingest/{job['id']}/batches", data=data, timeout=600,
                     headers={**headers, "Content-Type": "text/csv"})
    r.raise_for_status()
    upload_peak = proc_status_mb(server_pid)
    requests.patch(f"{base}/jobs/ingest/{job['id']}", json={"state": "UploadComplete"},
                   headers=headers, timeout=60).raise_for_status()
    start = time.perf_counter()
    while True:
        info = requests.get(f"{base}/jobs/ingest/{job['id']}", headers=headers, timeout=60).json()
        if info["state"] in ("JobComplete", "Failed", "Aborted"):
            return time.perf_counter() - start, info, upload_peak
        time.sleep(0.1)


def sqlite_baseline(rows: list[list[str]], path: Path) -> float:
    """Seconds for a bare executemany of the same rows, with the same indexes."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (Id TEXT PRIMARY KEY, ext TEXT, Name TEXT, num TEXT, "
                 "emp INTEGER, rev REAL, city TEXT, active INTEGER)")
    conn.execute("CREATE INDEX t_ext ON t(ext)")
    conn.execute("CREATE INDEX t_name ON t(Name COLLATE NOCASE)")
    start = time.perf_counter()
    for k in range(0, len(rows), 10_000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?)",
                         ((f"id{k + j:012d}", r[0], r[1], r[2], int(r[3]), float(r[4]), r[5],
                           r[6] == "true") for j, r in enumerate(rows[k:k + 10_000])))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    rows = make_rows(args.rows)
    first, second = to_csv(rows), to_csv(rows, suffix=" v2")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = sqlite_baseline(rows, Path(tmp) / "baseline.sqlite3")
        proc, url, token = start_server(Path(tmp) / "org.sqlite3")
        try:
            base = f"{url}/services/data/v66.0"
            headers = {"Authorization": f"Bearer {token}"}
            idle = proc_status_mb(proc.pid, "VmRSS")
            t_insert, info1, upload_peak = run_job(base, headers, first, proc.pid)
            t_update, info2, _ = run_job(base, headers, second, proc.pid)
            rss = proc_status_mb(proc.pid)
        finally:
            stop_server(proc)
    n = args.rows
    print(f"rows: {n:,}  CSV: {len(first) / 1e6:.1f} MB  cores: {os.cpu_count()}")
    print(f"baseline sqlite executemany: {n / baseline:,.0f} rows/s")
    for label, t, info in (("upsert (all inserts)", t_insert, info1),
                           ("upsert (all updates)", t_update, info2)):
        assert info["state"] == "JobComplete" and info["numberRecordsFailed"] == 0, info
        print(f"{label}: {n / t:,.0f} records/s  ({t:.1f} s; server totalProcessingTime "
              f"{info['totalProcessingTime'] / 1000:.1f} s; "
              f"{(n / t) / (n / baseline):.2f}x the sqlite baseline)")
    print(f"server peak RSS: {rss:,.0f} MB; idle {idle:,.0f} MB, so {rss - idle:,.0f} MB "
          f"over idle ({(rss - idle) / (len(first) / 2**20):.2f}x the upload); peak once the "
          f"first upload was received: {upload_peak:,.0f} MB")
    report("local org inserts vs sqlite executemany (rows/s)", n / t_insert, n / baseline,
           ">= 0.8")
    report("local org updates vs sqlite executemany (rows/s)", n / t_update, n / baseline,
           ">= 0.8")
    report("local org server peak RSS vs upload size (MB)", rss, len(first) / 2**20, "<= 2")


if __name__ == "__main__":
    main()
