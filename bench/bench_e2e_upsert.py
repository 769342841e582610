"""End to end: upsert a mixed-type DataFrame into the local org, sfbulk_nb vs simple-salesforce.

N rows of Account keyed by customExtIdField__c, 7 mixed columns besides the key: a string
(some values with commas and quotes), an int, a float (some NaN), a bool, dates
(`datetime.date`), tz-aware datetimes and a nullable Int64 (some NA). The org learns one
custom int field (`Rank__c`, for the nullable int) through `sfbulk-nb localorg add-object`,
the documented way to teach it fields.

Two client paths, each in its own fresh subprocess against the SAME server build, each on a
fresh database (so both runs insert every row):

  sfbulk_nb          sfb.upsert_df(df, "Account", "customExtIdField__c",
                                   org=sfb.connect(...), progress=False), then res.frame
  simple-salesforce  values made CSV-friendly (dates/datetimes -> isoformat, NaN/NA -> None)
                     -> df.to_dict("records") -> sf.bulk2.Account.upsert(records=...,
                     external_id_field=...) (its defaults: wait=5, concurrency=1) ->
                     get_successful_records / get_failed_records / get_unprocessed_records
                     per job -> pandas.read_csv each -> merge back onto the input frame on
                     the external id

The local org runs in its own process (`python -m sfbulk_nb.cli localorg serve`), so the
client figures are the client's alone:

  client CPU   time.process_time() of the client process around the path (all its threads)
  peak memory  VmHWM of the client process minus VmHWM of a baseline process that imported
               the same libraries and built the same DataFrame, nothing else
  HTTP calls   requests.adapters.HTTPAdapter.send calls made by the client (patched in the
               client process); cross-checked by the org's own api-usage counter
               (Sforce-Limit-Info / limits DailyApiRequests) read before and after
  wall         time.perf_counter() around the path (simple-salesforce sleeps `wait`=5 s
               before its first poll and polls about every 5 s: its documented default)

Targets: sfbulk_nb client CPU at least 3x less, peak memory at most half, HTTP calls no more.

    python bench/bench_e2e_upsert.py [--rows 1000000] [--repeat 1] [--sf-wait 5]
    python bench/bench_e2e_upsert.py --rows 200000 --profile /tmp/prof   # cProfile each path

HTTP calls depend on how long the org takes: both clients make a handful of fixed calls
(sfbulk_nb one more, the describe, and two fewer on a clean job: it skips the result files
the job's counters show empty), the rest are status polls. simple-salesforce polls every
~5 s; sfbulk_nb backs off from 0.5 s to a 10 s cap (checks at 0.5, 1.25, 2.4, 4.1, 6.6,
10.4, 16.1 s, ...), so it polls more for jobs shorter than ~45 s and less for longer
ones. The table shows the polls separately.
`--profile` uses cProfile, which sees only the main thread (sfbulk_nb's uploads, polls and
result parsing run in its job threads) and inflates CPU; don't read the table of a
profiled run as figures.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's sfbulk_nb, wherever the script is run from
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (add_child_options, awkward_names, count_http_calls, median, print_machine, proc_status_mb,  # noqa: E402
                      report, run_measured, start_server, vm_hwm_mb)
KEY = "customExtIdField__c"
API_VERSION = "66.0"
CLIENTS = ("sfbulk_nb", "simple_salesforce")


# -- the data --------------------------------------------------------------------------------

def build_frame(n: int, seed: int = 7):
    """N rows: the key plus 7 mixed columns (see the module docstring)."""
    import datetime as dt

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = awkward_names(n)
    revenue = np.round(rng.lognormal(14, 1.5, n), 2)
    revenue[rng.random(n) < 0.02] = np.nan
    epoch = dt.date(1950, 1, 1)
    founded = [epoch + dt.timedelta(days=int(d)) for d in rng.integers(0, 27_000, n)]
    reviewed = (pd.Timestamp("2015-01-01", tz="UTC")
                + pd.to_timedelta(rng.integers(0, 10 * 365 * 86_400_000, n), unit="ms")
                ).tz_convert("Europe/Paris")
    rank = pd.array(rng.integers(0, 100_000, n), dtype="Int64")
    rank[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame({
        KEY: [f"EXT-{i:08d}" for i in range(n)],
        "Name": names,                                              # string
        "NumberOfEmployees": rng.integers(1, 50_000, n),            # int64
        "AnnualRevenue": revenue,                                   # float64 with NaN
        "Active__c": rng.random(n) < 0.7,                           # bool
        "Founded__c": founded,                                      # datetime.date
        "LastReviewed__c": reviewed,                                # datetime64[ms, tz]
        "Rank__c": rank,                                            # Int64 with NA
    })


def account_with_rank() -> dict:
    """Account's shipped describe plus a nillable custom int field Rank__c."""
    describe = json.loads((ROOT / "sfbulk_nb/localorg/schema/Account.json").read_text())
    base = next(f for f in describe["fields"] if f["name"] == "NumberOfEmployees")
    describe["fields"].append({**base, "name": "Rank__c", "label": "Rank", "custom": True,
                               "digits": 9})
    return describe


# -- the two client paths (run inside a client subprocess) -----------------------------------

def path_sfbulk(df, url: str, token: str) -> dict:
    import sfbulk_nb as sfb

    org = sfb.connect(instance_url=url, access_token=token, api_version=API_VERSION,
                      quiet=True)
    res = sfb.upsert_df(df, "Account", KEY, org=org, progress=False)
    frame = res.frame  # the aligned result: df row for row plus sf_id, sf_status, ...
    status = frame["sf_status"].value_counts()
    return {"rows": len(frame), "created": int(status.get("created", 0)),
            "failed": int(len(frame) - status.get("created", 0) - status.get("updated", 0)),
            "ids": int(frame["sf_id"].notna().sum()), "jobs": len(res.jobs),
            "lib_api_calls": res.api_calls}


def path_simple_salesforce(df, url: str, token: str, wait: float) -> dict:
    import io

    import pandas as pd
    from simple_salesforce import Salesforce

    sf = Salesforce(instance_url=url, session_id=token)
    # simple-salesforce builds every URL with https://; the local org speaks plain http.
    for attr in ("base_url", "bulk2_url", "bulk_url", "apex_url", "oauth2_url", "tooling_url"):
        setattr(sf, attr, getattr(sf, attr).replace("https://", "http://", 1))

    # What a user does to get JSON/CSV-friendly records out of a typed frame.
    out = df.copy()
    out["Founded__c"] = out["Founded__c"].map(lambda d: d.isoformat())
    out["LastReviewed__c"] = out["LastReviewed__c"].map(lambda t: t.isoformat())
    out = out.astype(object).where(out.notna(), None)
    records = out.to_dict("records")
    del out

    jobs = sf.bulk2.Account.upsert(records=records, external_id_field=KEY, wait=wait)
    del records

    def read(text: str) -> pd.DataFrame:
        if not text.strip():  # an empty result file has no header line
            return pd.DataFrame()
        return pd.read_csv(io.StringIO(text))

    parts = []
    for job in jobs:
        job_id = job["job_id"]
        ok = read(sf.bulk2.Account.get_successful_records(job_id))
        bad = read(sf.bulk2.Account.get_failed_records(job_id))
        left = read(sf.bulk2.Account.get_unprocessed_records(job_id))
        if len(bad):
            bad = bad.assign(sf__Created=pd.NA)
        if len(left):
            left = left.assign(sf__Id=pd.NA, sf__Created=pd.NA, sf__Error="unprocessed")
        parts += [p for p in (ok, bad, left) if len(p)]
    results = pd.concat(parts, ignore_index=True)
    cols = [c for c in ("sf__Id", "sf__Created", "sf__Error") if c in results.columns]
    results[KEY] = results[KEY].astype(str)
    merged = df.merge(results[[KEY] + cols], on=KEY, how="left", validate="one_to_one")
    created = merged["sf__Created"].astype(str).str.lower().eq("true")
    return {"rows": len(merged), "created": int(created.sum()),
            "failed": int(merged["sf__Error"].notna().sum()) if "sf__Error" in merged else 0,
            "ids": int(merged["sf__Id"].notna().sum()), "jobs": len(jobs),
            "lib_api_calls": None}


# -- measuring (inside a subprocess) ---------------------------------------------------------

def child(args: argparse.Namespace) -> None:
    """One client run (or a baseline) in this fresh process; prints one JSON line."""
    import re

    import pandas  # noqa: F401  imported by both paths and both baselines

    lib = args.child.split(":")[1]
    if lib == "sfbulk_nb":
        import sfbulk_nb  # noqa: F401
    else:
        import simple_salesforce  # noqa: F401

    def name_path(path: str) -> str:
        path = re.sub(r"jobs/ingest/[^/]+", "jobs/ingest/{id}", path)
        return re.sub(r"/(unprocessedrecords|successfulResults|failedResults)/?$",
                      "/{results}", path, flags=re.IGNORECASE)

    calls = count_http_calls(name_path)
    df = build_frame(args.rows)
    before = vm_hwm_mb()
    if args.child.startswith("baseline:"):
        print(json.dumps({"hwm_mb": before}))
        return
    if lib == "sfbulk_nb":
        def path():
            return path_sfbulk(df, args.url, args.token)
    else:
        def path():
            return path_simple_salesforce(df, args.url, args.token, args.sf_wait)
    check, (cpu0, wall0), (cpu1, wall1) = run_measured(path, args.profile,
                                                      f"{lib}-{args.rows}.prof")
    print(json.dumps({"cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
                      "http_calls": sum(calls.values()),
                      "status_polls": calls["GET jobs/ingest/{id}"],
                      "http_by_endpoint": dict(calls),
                      "hwm_mb": vm_hwm_mb(), "hwm_before_path_mb": before, **check}))


# -- orchestration (the parent process) ------------------------------------------------------

def start_org(db: Path) -> tuple[subprocess.Popen, str, str]:
    """The local org with Account.Rank__c added (see account_with_rank)."""
    describe = db.with_name("Account-with-rank.json")
    describe.write_text(json.dumps(account_with_rank()))
    subprocess.run([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "add-object",
                    "--db", str(db), str(describe)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return start_server(db)


def api_usage(url: str, token: str) -> int:
    """The org's DailyApiRequests used so far (this read is itself a call)."""
    import requests

    r = requests.get(f"{url}/services/data/v{API_VERSION}/limits", timeout=60,
                     headers={"Authorization": f"Bearer {token}"})
    r.raise_for_status()
    d = r.json()["DailyApiRequests"]
    return d["Max"] - d["Remaining"]


def server_processing_s(url: str, token: str) -> float:
    """The jobs' totalProcessingTime as the org reports it (read after the client is done)."""
    import requests

    base = f"{url}/services/data/v{API_VERSION}/jobs/ingest"
    headers = {"Authorization": f"Bearer {token}"}
    ids = [j["id"] for j in requests.get(base, headers=headers, timeout=60).json()["records"]]
    return sum(requests.get(f"{base}/{i}", headers=headers, timeout=60).json()
               .get("totalProcessingTime", 0) for i in ids) / 1000


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


def run_client(lib: str, rows: int, sf_wait: float, profile: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        proc, url, token = start_org(Path(tmp) / "org.sqlite3")
        try:
            u0 = api_usage(url, token)
            u1 = api_usage(url, token)
            step = u1 - u0  # what one read of the counter adds
            result = run_child(f"client:{lib}", rows, url=url, token=token, sf_wait=sf_wait,
                               profile=profile)
            result["server_api_calls"] = api_usage(url, token) - u1 - step
            result["server_processing_s"] = server_processing_s(url, token)
            result["server_hwm_mb"] = proc_status_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        result["stored_digest"] = stored_digest(Path(tmp) / "org.sqlite3")
    return result


def stored_digest(db: Path) -> str:
    """A digest of the Account rows the org stored (system fields left out), to check that
    both clients wrote the same values."""
    import hashlib
    import sqlite3

    cols = [KEY, "Name", "NumberOfEmployees", "AnnualRevenue", "Active__c", "Founded__c",
            "LastReviewed__c", "Rank__c"]
    h = hashlib.sha256()
    conn = sqlite3.connect(db)
    try:
        for row in conn.execute(f'SELECT {", ".join(cols)} FROM "sobj_Account" '
                                f"WHERE IsDeleted = 0 ORDER BY {KEY}"):
            h.update(repr(row).encode())
    finally:
        conn.close()
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per client (alternating order); medians are reported")
    parser.add_argument("--sf-wait", type=float, default=5,
                        help="simple-salesforce's `wait` (its default: 5 seconds)")
    parser.add_argument("--profile", help="directory for a cProfile of each client path")
    add_child_options(parser)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    n = args.rows
    print_machine(n)
    baseline = {lib: run_child(f"baseline:{lib}", n)["hwm_mb"] for lib in CLIENTS}
    runs: dict[str, list[dict]] = {lib: [] for lib in CLIENTS}
    for k in range(args.repeat):
        order = CLIENTS if k % 2 == 0 else CLIENTS[::-1]
        for lib in order:
            r = run_client(lib, n, args.sf_wait, args.profile)
            r["peak_mb"] = r["hwm_mb"] - baseline[lib]
            runs[lib].append(r)
            print(f"  run {k + 1} {lib}: cpu {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s, "
                  f"peak +{r['peak_mb']:,.0f} MB, {r['http_calls']} HTTP calls "
                  f"(server counted {r['server_api_calls']}), {r['jobs']} job(s), "
                  f"{r['created']:,} created, {r['failed']:,} failed", flush=True)
            assert r["rows"] == n and r["created"] == n and r["ids"] == n, r

    def fig(lib: str, key: str) -> float:
        return median([r[key] for r in runs[lib]])

    a, b = "sfbulk_nb", "simple_salesforce"
    rows = [
        ("client CPU (s)", "cpu_s", "{:,.2f}", "B/A >= 3", lambda x, y: y / x, 3, True),
        ("peak memory over baseline (MB)", "peak_mb", "{:,.0f}", "A/B <= 0.5",
         lambda x, y: x / y, 0.5, False),
        ("HTTP calls (client-side count)", "http_calls", "{:,.0f}", "A/B <= 1",
         lambda x, y: x / y, 1, False),
        ("  of which job status polls", "status_polls", "{:,.0f}", "", None, None, None),
        ("API calls (server api-usage)", "server_api_calls", "{:,.0f}", "", None, None, None),
        ("wall time (s)", "wall_s", "{:,.2f}", "", lambda x, y: y / x, None, None),
    ]
    print()
    print(f"{n:,} rows x 7 mixed columns (+ key), upsert into Account by {KEY}; "
          f"medians of {args.repeat} run(s)")
    print(f"baseline (imports + DataFrame only) VmHWM: sfbulk_nb {baseline[a]:,.0f} MB, "
          f"simple-salesforce {baseline[b]:,.0f} MB")
    header = f"{'':34} {'A sfbulk_nb':>13} {'B simple-sf':>13} {'ratio':>9}  target"
    print(header)
    print("-" * len(header))
    for label, key, fmt, target, ratio, bound, higher in rows:
        x, y = fig(a, key), fig(b, key)
        r = ratio(x, y) if ratio else None
        verdict = ""
        if bound is not None:
            met = r >= bound if higher else r <= bound
            verdict = f"{target}: {'MET' if met else 'MISSED'}"
        elif ratio:
            verdict = "(B/A)"
        print(f"{label:34} {fmt.format(x):>13} {fmt.format(y):>13} "
              f"{'' if r is None else f'{r:.2f}x':>9}  {verdict}")
    print(f"{'server job processing (s)':34} {fig(a, 'server_processing_s'):>13,.2f} "
          f"{fig(b, 'server_processing_s'):>13,.2f}")
    print(f"{'jobs':34} {fig(a, 'jobs'):>13,.0f} {fig(b, 'jobs'):>13,.0f}")
    print(f"{'server peak RSS (MB)':34} {fig(a, 'server_hwm_mb'):>13,.0f} "
          f"{fig(b, 'server_hwm_mb'):>13,.0f}")
    print("HTTP calls by endpoint (first run):")
    for lib in CLIENTS:
        by = runs[lib][0]["http_by_endpoint"]
        print(f"  {lib:18} " + ", ".join(f"{k} x{v}" for k, v in by.items()))
    big = n >= 1_000_000
    report("upsert_df vs simple-salesforce: client CPU (s)", fig(a, "cpu_s"), fig(b, "cpu_s"),
           "<= 0.1" if big else "<= 0.2")
    report("upsert_df vs simple-salesforce: peak memory (MB)", fig(a, "peak_mb"),
           fig(b, "peak_mb"), "<= 0.33" if big else "<= 0.5")
    report("upsert_df vs simple-salesforce: HTTP calls", fig(a, "http_calls"),
           fig(b, "http_calls"), "<= 1")
    same = {r["stored_digest"] for lib in CLIENTS for r in runs[lib]}
    print(f"stored Account rows identical across clients: {'yes' if len(same) == 1 else 'NO'}")


if __name__ == "__main__":
    main()
