"""A CSV file into the local org: `upsert_csv` (streamed) vs simple-salesforce's
`bulk2.Account.upsert(csv_file=...)`, client peak memory first.

A file of N Account rows is generated (key, Name with commas and quotes, Description with
commas, quotes and line breaks in some rows, NumberOfEmployees, AnnualRevenue). Each
client, in its own fresh subprocess, against its own fresh local org (run by
`sfbulk-nb localorg serve` in a third process, so the figures are the client's):

  sfbulk_nb          sfb.upsert_csv(path, "Account", KEY, results=<tmp>/results.csv)
                     (results streamed to a file: line, key, status columns)
  simple-salesforce  sf.bulk2.Account.upsert(csv_file=path, external_id_field=KEY) (its
                     defaults: wait=5, concurrency=1), then each job's successful / failed
                     / unprocessed records written to files (get_*_records(job, file=))

  peak memory  VmHWM (peak RSS) of the client process minus VmHWM right before the path
               (after the imports)
  client CPU   time.process_time() of the client process around the path
  wall         time.perf_counter() around the path

    python bench/bench_upsert_csv.py [--rows 1000000] [--sf-wait 5] [--max-mb 100]

`--max-mb` sets upsert_csv's job size (max_bytes, in MB; default: its own, 10 MB; 100 is
the Bulk API 2.0 upload limit): its peak memory is about (parallel + 1) jobs' bytes and
keys plus one job's results being matched, whatever the file's size.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's sfbulk_nb, wherever the script is run from
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import add_child_options, print_machine, report, start_server, stop_server, vm_hwm_mb  # noqa: E402

KEY = "customExtIdField__c"
API_VERSION = "66.0"
CLIENTS = ("sfbulk_nb", "simple_salesforce")
CEILING_MB = 300  # upsert_csv's client peak over its imports, at any file size


def names(k: int) -> str:
    """As benchlib.awkward_names: a fifth hold the comma or quotes CSV must escape."""
    return (f'Acme, "Intl" {k}' if k % 10 == 0 else f"Account {k}, Ltd" if k % 10 == 5
            else f"Account {k}")


def write_file(path: Path, n: int, block: int = 100_000) -> int:
    """N rows written a block at a time (this process never holds the file)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    for start in range(0, n, block):
        stop = min(n, start + block)
        i = np.arange(start, stop)
        description = np.where(i % 7 == 0, "two\nlines, with \"quotes\"",
                               np.where(i % 3 == 0, "", "plain text description"))
        pd.DataFrame({
            KEY: [f"EXT-{k:08d}" for k in i],
            "Name": [names(k) for k in i],
            "Description": description,
            "NumberOfEmployees": rng.integers(1, 50_000, len(i)),
            "AnnualRevenue": np.round(rng.lognormal(14, 1.5, len(i)), 2),
        }).to_csv(path, mode="w" if start == 0 else "a", header=start == 0, index=False)
    return path.stat().st_size


def path_sfbulk(path: str, url: str, token: str, out: Path, max_mb: int) -> dict:
    import sfbulk_nb as sfb

    org = sfb.connect(instance_url=url, access_token=token, api_version=API_VERSION,
                      quiet=True)
    size = {"max_bytes": max_mb * 1_000_000} if max_mb else {}
    res = sfb.upsert_csv(path, "Account", KEY, org=org, progress=False,
                         results=out / "results.csv", **size)
    return {"created": int(res.counts["created"]), "rows": res.rows, "jobs": len(res.jobs)}


def path_simple_salesforce(path: str, url: str, token: str, out: Path, wait: float) -> dict:
    from simple_salesforce import Salesforce

    sf = Salesforce(instance_url=url, session_id=token)
    # simple-salesforce builds every URL with https://; the local org speaks plain http.
    for attr in ("base_url", "bulk2_url", "bulk_url", "apex_url", "oauth2_url", "tooling_url"):
        setattr(sf, attr, getattr(sf, attr).replace("https://", "http://", 1))
    jobs = sf.bulk2.Account.upsert(csv_file=path, external_id_field=KEY, wait=wait)
    created = 0
    for k, job in enumerate(jobs):
        ok = out / f"ok-{k}.csv"
        sf.bulk2.Account.get_successful_records(job["job_id"], file=str(ok))
        sf.bulk2.Account.get_failed_records(job["job_id"], file=str(out / f"bad-{k}.csv"))
        sf.bulk2.Account.get_unprocessed_records(job["job_id"], file=str(out / f"left-{k}.csv"))
        created += job.get("numberRecordsProcessed", 0) - job.get("numberRecordsFailed", 0)
    return {"created": created, "rows": None, "jobs": len(jobs)}


def child(args: argparse.Namespace) -> None:
    import time

    lib = args.child
    if lib == "sfbulk_nb":
        import sfbulk_nb  # noqa: F401
    else:
        import simple_salesforce  # noqa: F401
    import pandas  # noqa: F401  both import it
    out = Path(args.out)
    before = vm_hwm_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    if lib == "sfbulk_nb":
        check = path_sfbulk(args.file, args.url, args.token, out, args.max_mb)
    else:
        check = path_simple_salesforce(args.file, args.url, args.token, out, args.sf_wait)
    print(json.dumps({"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
                      "peak_mb": vm_hwm_mb() - before, "hwm_mb": vm_hwm_mb(), **check}))


def run_client(lib: str, file: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-csv-") as tmp:
        proc, url, token = start_server(Path(tmp) / "org.sqlite3")
        try:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", lib,
                   "--file", str(file), "--url", url, "--token", token, "--out", tmp,
                   "--sf-wait", str(args.sf_wait), "--max-mb", str(args.max_mb)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                raise RuntimeError(f"{lib} failed:\n{done.stderr[-4000:]}")
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="ignored: one run per client")
    parser.add_argument("--sf-wait", type=float, default=5)
    parser.add_argument("--max-mb", type=int, default=0, help="job size in MB (0: default)")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help="comma-separated: sfbulk_nb, simple_salesforce")
    add_child_options(parser, "file", "out")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    n = args.rows
    print_machine(n)
    with tempfile.TemporaryDirectory(prefix="bench-csv-file-") as tmp:
        file = Path(tmp) / "accounts.csv"
        size = write_file(file, n)
        print(f"file: {size / 1e6:,.1f} MB", flush=True)
        runs = {}
        for lib in args.clients.split(","):
            try:
                r = runs[lib] = run_client(lib, file, args)
            except RuntimeError as e:  # e.g. simple-salesforce's chunk over 100 MB
                print(f"  {lib}: FAILED: {str(e).strip().splitlines()[-1]}", flush=True)
                continue
            print(f"  {lib}: peak +{r['peak_mb']:,.0f} MB, cpu {r['cpu_s']:.2f} s, wall "
                  f"{r['wall_s']:.2f} s, {r['jobs']} job(s), {r['created']:,} created",
                  flush=True)
            assert r["created"] == n, r
    if "sfbulk_nb" in runs:  # the issue's ceiling, whatever the file's size
        report(f"upsert_csv peak memory over imports vs {CEILING_MB} MB, {n:,} rows (MB)",
               runs["sfbulk_nb"]["peak_mb"], CEILING_MB, "< 1")
    if set(runs) != set(CLIENTS):
        return
    a, b = runs["sfbulk_nb"], runs["simple_salesforce"]
    print()
    print(f"{'':28} {'A upsert_csv':>13} {'B simple-sf':>13} {'A/B':>7}")
    for label, key in (("peak memory over imports (MB)", "peak_mb"), ("client CPU (s)", "cpu_s"),
                       ("wall (s)", "wall_s")):
        print(f"{label:28} {a[key]:>13,.2f} {b[key]:>13,.2f} {a[key] / b[key]:>6.2f}x")
    report("upsert_csv vs simple-salesforce csv_file: peak memory (MB)", a["peak_mb"],
           b["peak_mb"], "<= 1")
    report("upsert_csv vs simple-salesforce csv_file: client CPU (s)", a["cpu_s"], b["cpu_s"])


if __name__ == "__main__":
    main()
