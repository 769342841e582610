"""What the benchmarks share: a local org server in its own process, and memory readings.

The server runs as `sfbulk-nb localorg serve` in a separate process, so client CPU time and
peak memory are the client's own, and the server's peak RSS is its own.
"""
from __future__ import annotations

import signal
import socket
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
