"""End to end: a Bulk API 2.0 query of N Account rows into a DataFrame, sfbulk_nb vs
simple-salesforce.

Setup (once per run of the script): a fresh local org database is loaded with N Account
rows through sfbulk_nb's own upsert_df (in a setup subprocess), keyed by customExtIdField__c,
with mixed columns: Name (string; some with commas and quotes), NumberOfEmployees (int; some
null), AnnualRevenue (currency; some null), Active__c (boolean), Founded__c (date),
LastReviewed__c (datetime) and Industry (restricted picklist; some null). `--db FILE` keeps
the loaded database for later runs (it is reused when it already holds N Accounts).

Both clients then run the same query against the SAME server process
(`python -m sfbulk_nb.cli localorg serve`), each in its own fresh subprocess:

  A sfbulk_nb          sfb.query_df(SOQL, org=sfb.connect(...), progress=False)
                       (page size: the server's default, 50,000 rows)
  B simple-salesforce  pages = [pd.read_csv(io.StringIO(page)) for page in
                                sf.bulk2.Account.query(SOQL, max_records=50000)]
                       df = pd.concat(pages, ignore_index=True)
                       -- what a user writes. The frame is NOT typed afterwards: its dates
                       and datetimes stay text (pandas 3 `str`), the nullable int becomes
                       float64, and a user would still have to convert them; that work is
                       not counted.
  B' (--object-strings) the same as B with pandas' `future.infer_string` off: text columns
                       as Python str objects (dtype object), as every pandas before 3.0 reads
                       them. pandas 3 (this venv) reads text into Arrow-backed `str` columns,
                       which makes B far leaner than it is under pandas 2.

Measured in each client process:

  wall          time.perf_counter() around the path: create job, wait for it, read pages,
                build the frame. Polling differs: simple-salesforce sleeps `wait` (its
                default 5 s, --sf-wait) before its first status check, then polls about
                every `wait` s; sfbulk_nb first checks after 0.5 s, then backs off (x1.3,
                2 s cap: checks at 0.5, 1.15, 2.0, 3.1, 4.5, 6.4 s, then every 2 s). So the
                wall is mostly the server's job time plus where the job's end falls in each
                client's polling schedule: it can go either way from run to run.
  results wall  from the client's first GET .../results to the frame being returned: the
                part of the wall that is the client's download-and-parse work
  client CPU    time.process_time() of the client process around the path (all threads);
                "results CPU" is the same from the first GET .../results
  peak memory   VmHWM of the client process minus VmHWM of a baseline process that imported
                the same libraries (and patched requests the same way), nothing else. Both
                clients import pyarrow with pandas 3, and after the imports VmHWM equals
                VmRSS in both, so no import-time transient hides part of either peak.
  frame memory  df.memory_usage(deep=True).sum() of the final frame
  peak/frame    sfbulk_nb's peak memory as a multiple of its final frame

Targets: A faster than B (wall, results wall, CPU), A's peak memory at most half of B's,
A's peak memory within 3x its final frame.

    python bench/bench_query.py [--rows 1000000] [--repeat 1] [--sf-wait 5] [--db FILE]
                                [--object-strings]
    python bench/bench_query.py --rows 200000 --profile /tmp/prof   # cProfile each path

`--profile` uses cProfile (main thread only; it inflates CPU): don't read a profiled run's
table as figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's sfbulk_nb, wherever the script is run from
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (add_child_options, awkward_names, count_http_calls, median, print_machine, proc_status_mb,  # noqa: E402
                      report, run_measured, start_server, stop_server, vm_hwm_mb)
KEY = "customExtIdField__c"
API_VERSION = "66.0"
PAGE = 50_000
SOQL = ("SELECT Id, Name, customExtIdField__c, NumberOfEmployees, AnnualRevenue, Active__c, "
        "Founded__c, LastReviewed__c, Industry FROM Account")
CLIENTS = ("sfbulk_nb", "simple_salesforce")
OBJECT_CLIENT = "simple_salesforce_object"  # B', with --object-strings
ARROW_CLIENT = "sfbulk_nb_pyarrow"  # A', with --pyarrow: query_df(dtype_backend="pyarrow")
INDUSTRIES = ["Agriculture", "Banking", "Chemicals", "Energy", "Finance", "Food & Beverage",
              "Healthcare", "Media", "Not For Profit", "Retail", "Technology", "Utilities"]


# -- the data (loaded once, in a setup subprocess) -------------------------------------------

def build_frame(n: int, seed: int = 11):
    import datetime as dt

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = awkward_names(n)
    employees = pd.array(rng.integers(1, 50_000, n), dtype="Int64")
    employees[rng.random(n) < 0.05] = pd.NA
    revenue = np.round(rng.lognormal(14, 1.5, n), 2)
    revenue[rng.random(n) < 0.02] = np.nan
    epoch = dt.date(1950, 1, 1)
    founded = [epoch + dt.timedelta(days=int(d)) for d in rng.integers(0, 27_000, n)]
    reviewed = (pd.Timestamp("2015-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 10 * 365 * 86_400_000, n), unit="ms"))
    industry = pd.Series(np.array(INDUSTRIES, dtype=object)[rng.integers(0, len(INDUSTRIES), n)])
    industry[rng.random(n) < 0.1] = None
    return pd.DataFrame({
        KEY: [f"EXT-{i:08d}" for i in range(n)],
        "Name": names,
        "NumberOfEmployees": employees,
        "AnnualRevenue": revenue,
        "Active__c": rng.random(n) < 0.7,
        "Founded__c": founded,
        "LastReviewed__c": reviewed,
        "Industry": industry,
    })


def setup_child(args: argparse.Namespace) -> None:
    """Load N rows into the org at --url (a fresh database); prints one JSON line."""
    import sfbulk_nb as sfb

    df = build_frame(args.rows)
    org = sfb.connect(instance_url=args.url, access_token=args.token,
                      api_version=API_VERSION, quiet=True)
    t0 = time.perf_counter()
    res = sfb.upsert_df(df, "Account", KEY, org=org, progress=False)
    status = res.frame["sf_status"].value_counts()
    print(json.dumps({"wall_s": time.perf_counter() - t0, "jobs": len(res.jobs),
                      "ok": int(status.get("created", 0) + status.get("updated", 0))}))


# -- the two client paths (run inside a client subprocess) -----------------------------------

def path_sfbulk(url: str, token: str, sf_wait: float):
    import sfbulk_nb as sfb

    org = sfb.connect(instance_url=url, access_token=token, api_version=API_VERSION,
                      quiet=True)
    return sfb.query_df(SOQL, org=org, progress=False)


def path_sfbulk_pyarrow(url: str, token: str, sf_wait: float):
    import sfbulk_nb as sfb

    org = sfb.connect(instance_url=url, access_token=token, api_version=API_VERSION,
                      quiet=True)
    return sfb.query_df(SOQL, org=org, progress=False, dtype_backend="pyarrow")


def path_simple_salesforce_object(url: str, token: str, sf_wait: float):
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the option is deprecated in pandas 3
        pd.set_option("future.infer_string", False)
    return path_simple_salesforce(url, token, sf_wait)


def path_simple_salesforce(url: str, token: str, sf_wait: float):
    import io

    import pandas as pd
    from simple_salesforce import Salesforce

    sf = Salesforce(instance_url=url, session_id=token, version=API_VERSION)
    # simple-salesforce builds every URL with https://; the local org speaks plain http.
    for attr in ("base_url", "bulk2_url", "bulk_url", "apex_url", "oauth2_url", "tooling_url"):
        setattr(sf, attr, getattr(sf, attr).replace("https://", "http://", 1))
    pages = [pd.read_csv(io.StringIO(page))
             for page in sf.bulk2.Account.query(SOQL, max_records=PAGE, wait=sf_wait)]
    df = pd.concat(pages, ignore_index=True)
    del pages
    return df


# -- measuring (inside a subprocess) ---------------------------------------------------------

def frame_digest(df) -> str:
    """Row count, Ids and Names in order: both clients must have read the same rows."""
    import hashlib

    h = hashlib.sha256(str(len(df)).encode())
    for col in ("Id", "Name", KEY):
        h.update("\n".join(df[col].astype(str).tolist()).encode())
    return h.hexdigest()[:16]


def child(args: argparse.Namespace) -> None:
    """One client run (or a baseline) in this fresh process; prints one JSON line."""
    import re

    import pandas  # noqa: F401  imported by both paths and both baselines

    lib = args.child.split(":")[1]
    if lib.startswith("sfbulk_nb"):
        import sfbulk_nb  # noqa: F401
    else:
        import simple_salesforce  # noqa: F401

    first_results: dict[str, float] = {}

    def on_call(key: str) -> None:
        if key.endswith("/results") and not first_results:
            first_results.update(wall=time.perf_counter(), cpu=time.process_time())

    calls = count_http_calls(lambda path: re.sub(r"jobs/query/[^/]+", "jobs/query/{id}", path),
                             on_call)
    before = vm_hwm_mb()
    if args.child.startswith("baseline:"):
        print(json.dumps({"hwm_mb": before}))
        return
    path = {"sfbulk_nb": path_sfbulk, "simple_salesforce": path_simple_salesforce,
            OBJECT_CLIENT: path_simple_salesforce_object, ARROW_CLIENT: path_sfbulk_pyarrow}[lib]
    df, (cpu0, wall0), (cpu1, wall1) = run_measured(
        lambda: path(args.url, args.token, args.sf_wait), args.profile,
        f"query-{lib}-{args.rows}.prof")
    hwm = vm_hwm_mb()
    print(json.dumps({
        "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
        "results_wall_s": wall1 - first_results["wall"],
        "results_cpu_s": cpu1 - first_results["cpu"],
        "http_calls": sum(calls.values()), "status_polls": calls["GET jobs/query/{id}"],
        "http_by_endpoint": dict(calls), "hwm_mb": hwm, "hwm_before_path_mb": before,
        "rows": len(df), "frame_mb": int(df.memory_usage(deep=True).sum()) / 2**20,
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "digest": frame_digest(df)}))


# -- orchestration (the parent process) ------------------------------------------------------

def stored_accounts(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute('SELECT COUNT(*) FROM "sobj_Account" WHERE IsDeleted = 0'
                            ).fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def rest(url: str, token: str, method: str, path: str):
    import requests

    r = requests.request(method, f"{url}/services/data/v{API_VERSION}/{path}", timeout=120,
                         headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    return r.json() if r.content else None


def query_jobs_done(url: str, token: str) -> list[dict]:
    """Every query job on the org, with its processing time; then deletes them (their stored
    results would otherwise pile up in the database across runs)."""
    out = []
    for j in rest(url, token, "GET", "jobs/query")["records"]:
        info = rest(url, token, "GET", f"jobs/query/{j['id']}")
        out.append(info)
        rest(url, token, "DELETE", f"jobs/query/{j['id']}")
    return out


def run_child(mode: str, rows: int, *, url: str = "", token: str = "", sf_wait: float = 5,
              profile: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--rows", str(rows),
           "--url", url, "--token", token, "--sf-wait", str(sf_wait)]
    if profile:
        cmd += ["--profile", profile]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per client (alternating order); medians are reported")
    parser.add_argument("--sf-wait", type=float, default=5,
                        help="simple-salesforce's `wait` (its default: 5 seconds)")
    parser.add_argument("--db", help="database file to load (or reuse if it already holds "
                                     "--rows Accounts) and keep; default: a temporary one")
    parser.add_argument("--object-strings", action="store_true",
                        help="also run B' (simple-salesforce, text read as object columns, "
                             "as pandas < 3 does)")
    parser.add_argument("--pyarrow", action="store_true",
                        help="also run A' (query_df with dtype_backend='pyarrow')")
    parser.add_argument("--profile", help="directory for a cProfile of each client path")
    add_child_options(parser)
    args = parser.parse_args()
    if args.child == "setup":
        setup_child(args)
        return
    if args.child:
        child(args)
        return

    n = args.rows
    print_machine(n)
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "org.sqlite3"
        reuse = stored_accounts(db) == n
        if not reuse and db.exists():
            raise SystemExit(f"{db} exists and does not hold {n:,} Accounts; remove it first")
        proc, url, token = start_server(db)
        try:
            if reuse:
                print(f"setup: reusing {db} ({n:,} Accounts)", flush=True)
            else:
                setup = run_child("setup", n, url=url, token=token)
                print(f"setup: loaded {setup['ok']:,} Accounts with sfbulk_nb.upsert_df in "
                      f"{setup['wall_s']:.1f} s ({setup['jobs']} job(s))", flush=True)
                assert setup["ok"] == n, setup
            query_jobs_done(url, token)  # none should be there; clears any left over
            clients = (CLIENTS + ((OBJECT_CLIENT,) if args.object_strings else ())
                       + ((ARROW_CLIENT,) if args.pyarrow else ()))
            baseline = {lib: run_child(f"baseline:{lib}", n)["hwm_mb"] for lib in clients}
            runs: dict[str, list[dict]] = {lib: [] for lib in clients}
            for k in range(args.repeat):
                order = clients if k % 2 == 0 else clients[::-1]
                for lib in order:
                    load = os.getloadavg()[0]
                    r = run_child(f"client:{lib}", n, url=url, token=token,
                                  sf_wait=args.sf_wait, profile=args.profile)
                    done = query_jobs_done(url, token)
                    r["server_processing_s"] = sum(j.get("totalProcessingTime") or 0
                                                   for j in done) / 1000
                    r["peak_mb"] = r["hwm_mb"] - baseline[lib]
                    r["load1"] = load
                    runs[lib].append(r)
                    print(f"  run {k + 1} {lib}: wall {r['wall_s']:.2f} s (results "
                          f"{r['results_wall_s']:.2f} s), cpu {r['cpu_s']:.2f} s, peak "
                          f"+{r['peak_mb']:,.0f} MB, frame {r['frame_mb']:,.0f} MB, "
                          f"{r['http_calls']} HTTP calls ({r['status_polls']} polls), server "
                          f"job {r['server_processing_s']:.2f} s, load {load:.2f}", flush=True)
                    assert r["rows"] == n, r
            server_hwm = proc_status_mb(proc.pid, "VmHWM")
        finally:
            stop_server(proc)

    def fig(lib: str, key: str) -> float:
        return median([r[key] for r in runs[lib]])

    a, b = CLIENTS
    rows = [
        ("wall time (s)", "wall_s", "{:,.2f}", "A/B < 1", 1),
        ("  results phase wall (s)", "results_wall_s", "{:,.2f}", "A/B < 1", 1),
        ("client CPU (s)", "cpu_s", "{:,.2f}", "A/B < 1", 1),
        ("  results phase CPU (s)", "results_cpu_s", "{:,.2f}", "", None),
        ("peak memory over baseline (MB)", "peak_mb", "{:,.0f}", "A/B <= 0.5", 0.5),
        ("final frame memory (MB)", "frame_mb", "{:,.0f}", "", None),
        ("HTTP calls", "http_calls", "{:,.0f}", "", None),
        ("  of which job status polls", "status_polls", "{:,.0f}", "", None),
        ("server job processing (s)", "server_processing_s", "{:,.2f}", "", None),
    ]
    print()
    print(f"{n:,} Account rows x 9 columns, Bulk 2.0 query -> DataFrame; medians of "
          f"{args.repeat} run(s); simple-salesforce wait={args.sf_wait:g} s; load average "
          f"now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"baseline (imports only) VmHWM: sfbulk_nb {baseline[a]:,.0f} MB, "
          f"simple-salesforce {baseline[b]:,.0f} MB; server peak RSS {server_hwm:,.0f} MB")
    print("targets: A faster than B; A's peak memory at most half of B's; A's peak within 3x "
          "its final frame. B's frame is untyped (dates, datetimes as text; ints as float64).")
    extra = OBJECT_CLIENT in runs
    header = (f"{'':34} {'A sfbulk_nb':>13} {'B simple-sf':>13} {'A/B':>7}"
              + (f" {'B object':>10} {'A/B':>7}" if extra else "") + "  target (A vs B)")
    print(header)
    print("-" * len(header))
    for label, key, fmt, target, bound in rows:
        x, y = fig(a, key), fig(b, key)
        r = x / y if y else float("nan")
        verdict = ""
        if bound is not None:
            met = r < bound if target.endswith("< 1") else r <= bound
            verdict = f"{target}: {'MET' if met else 'MISSED'}"
            if target.endswith("< 1") and 0.95 <= r <= 1.05:
                verdict += " (within 5%: a tie)"
        line = f"{label:34} {fmt.format(x):>13} {fmt.format(y):>13} {r:>6.2f}x"
        if extra:
            z = fig(OBJECT_CLIENT, key)
            line += f" {fmt.format(z):>10} {x / z if z else float('nan'):>6.2f}x"
        print(f"{line}  {verdict}")
    ratio = fig(a, "peak_mb") / fig(a, "frame_mb")
    print(f"{'sfbulk_nb peak / its final frame':34} {ratio:>12.2f}x"
          f"{'':22}{' ' * 18 if extra else ''}  <= 3x: {'MET' if ratio <= 3 else 'MISSED'}")
    print("dtypes (first run):")
    cols = list(runs[a][0]["dtypes"])
    for c in cols:
        print(f"  {c:22} {runs[a][0]['dtypes'][c]:34} {runs[b][0]['dtypes'].get(c, '-'):10}"
              + (f" {runs[OBJECT_CLIENT][0]['dtypes'].get(c, '-')}" if extra else ""))
    print("HTTP calls by endpoint (first run):")
    for lib in clients:
        by = runs[lib][0]["http_by_endpoint"]
        print(f"  {lib:18} " + ", ".join(f"{k} x{v}" for k, v in by.items()))
    if ARROW_CLIENT in runs:
        print("A' (dtype_backend='pyarrow') vs B:")
        for label, key, fmt, _target, _bound in rows:
            x, y = fig(ARROW_CLIENT, key), fig(b, key)
            print(f"  {label:32} {fmt.format(x):>13} {fmt.format(y):>13} "
                  f"{x / y if y else float('nan'):>6.2f}x")
    report("query_df vs simple-salesforce: wall (s)", fig(a, "wall_s"), fig(b, "wall_s"), "< 1")
    report("query_df vs simple-salesforce: client CPU (s)", fig(a, "cpu_s"), fig(b, "cpu_s"),
           "<= 0.5")
    report("query_df vs simple-salesforce: peak memory (MB)", fig(a, "peak_mb"),
           fig(b, "peak_mb"), "<= 0.5")
    if ARROW_CLIENT in runs:
        report("query_df pyarrow vs simple-salesforce: peak memory (MB)",
               fig(ARROW_CLIENT, "peak_mb"), fig(b, "peak_mb"), "<= 0.45")
    same = {r["digest"] for lib in clients for r in runs[lib]}
    print(f"same rows (Id, Name, key, in order) in every frame: "
          f"{'yes' if len(same) == 1 else 'NO'}")


if __name__ == "__main__":
    main()
