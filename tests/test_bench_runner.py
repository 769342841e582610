"""`python -m bench` runs the benchmarks and gathers their figures into one table (the
figures themselves are not judged here: tests assert behaviour, not timings)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_runner_prints_each_figure_against_its_baseline_and_target(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--rows", "3000", "--quick",
                           "--only", "encode,validate", "--logs", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "encode_csv vs pyarrow write_csv (s)" in out
    assert "validate vs encode, clean frame (s)" in out
    line = next(li for li in out.splitlines() if "encode_csv vs pyarrow" in li)
    assert "<= 2" in line and ("MET" in line or "MISSED" in line)
    assert (tmp_path / "bench_encode.log").read_text()  # each script's own output kept


def test_an_unknown_benchmark_is_named():
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no benchmark nope" in done.stderr
