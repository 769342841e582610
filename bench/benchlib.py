"""What the benchmarks share: a local org server in its own process, and memory readings.

The server runs as `sfbulk-nb localorg serve` in a separate process, so client CPU time and
peak memory are the client's own, and the server's peak RSS is its own.
"""
from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def report(what: str, value: float, baseline: float, target: str = "",
           higher_is_better: bool = False) -> None:
    """One figure of a benchmark against its baseline of the same run, for bench/run_all.py:
    appended as a JSON line to $SFBULK_BENCH_REPORT when it is set (else nothing).
    ``target``: e.g. "<= 0.5" (the ratio value / baseline)."""
    import json
    import os

    path = os.environ.get("SFBULK_BENCH_REPORT")
    if not path:
        return
    script = Path(sys.argv[0]).stem
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"bench": script, "what": what, "value": value,
                            "baseline": baseline, "target": target}) + "\n")


def print_machine(rows: int) -> None:
    """The line every benchmark starts with: rows, cores and the load it ran under."""
    print(f"rows: {rows:,}  cores: {os.cpu_count()}  load average: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def add_child_options(parser, *extra: str) -> None:
    """The hidden options a benchmark passes to its own client subprocess: --child (which
    path), --url and --token (the local org), and ``extra`` ones (e.g. "file", "out")."""
    import argparse

    parser.add_argument("--child", help=argparse.SUPPRESS)
    for name in ("url", "token", *extra):
        parser.add_argument(f"--{name}", default="", help=argparse.SUPPRESS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status_mb(pid: int | str, key: str = "VmHWM") -> float:
    """A /proc/<pid>/status memory figure in MB (VmHWM: peak resident set)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def vm_hwm_mb() -> float:
    """This process's peak resident set, in MB."""
    return proc_status_mb("self")


def start_server(db: Path, port: int | None = None) -> tuple[subprocess.Popen, str, str]:
    """Start a local org on `db`; returns (process, instance URL, access token)."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "serve",
                             "--port", str(port), "--db", str(db)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    token = None
    for line in proc.stdout:
        if "access token:" in line:
            token = line.split("access token:")[1].strip()
            break
    if token is None:
        proc.kill()
        raise RuntimeError("the local org did not start")
    return proc, f"http://127.0.0.1:{port}", token


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn, repeat: int):
    """(best seconds, last result) over `repeat` runs, each after a full collection."""
    import gc
    import time

    best, result = float("inf"), None
    for _ in range(repeat):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def awkward_names(n: int) -> list[str]:
    """Account names, a fifth of them holding the comma or quotes that CSV must escape."""
    names = []
    for i in range(n):
        if i % 10 == 0:
            names.append(f'Acme, "Intl" {i}')
        elif i % 10 == 5:
            names.append(f"Account {i}, Ltd")
        else:
            names.append(f"Account {i}")
    return names


def count_http_calls(name_path, on_call=None):
    """Count this process's HTTP requests from now on, by `METHOD path` (the path without
    `/services/data/vXX.X/`, then passed through `name_path` to fold ids into `{id}`).
    `on_call(key)` runs for each request, under the counter's lock. Returns the Counter."""
    import collections
    import re
    import threading
    from urllib.parse import urlsplit

    import requests.adapters

    calls: collections.Counter = collections.Counter()
    lock = threading.Lock()
    send = requests.adapters.HTTPAdapter.send

    def counting_send(self, request, *a, **kw):
        path = name_path(re.sub(r"^/services/data/v[\d.]+/", "", urlsplit(request.url).path))
        key = f"{request.method} {path}"
        with lock:
            calls[key] += 1
            if on_call is not None:
                on_call(key)
        return send(self, request, *a, **kw)

    requests.adapters.HTTPAdapter.send = counting_send
    return calls


def run_measured(fn, profile_dir: str | None, profile_name: str):
    """fn() timed in process CPU and wall clock, under cProfile when `profile_dir` is set
    (dumped to profile_dir/profile_name). Returns (result, (cpu0, wall0), (cpu1, wall1))."""
    import time

    profiler = None
    if profile_dir:
        import cProfile
        profiler = cProfile.Profile()
    start = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    result = fn()
    if profiler:
        profiler.disable()
    end = time.process_time(), time.perf_counter()
    if profiler:
        out = Path(profile_dir)
        out.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(out / profile_name)
    return result, start, end
