"""Which allocators a big load's buffers come from, so that the process's memory stays
near what the load holds.

A load allocates and frees buffers of a few hundred KB to tens of MB over and over (a
block's cells, a job's CSV bytes, a result file, the frames that match it), from several
threads. With the allocators' defaults the process keeps far more than that: glibc's
malloc maps a big request that its heap has no room for only until the first such block
is freed, then raises its threshold (up to 32 MB) and grows per-thread heaps for later
ones, which fragment and are rarely given back; Arrow's default pool (mimalloc) keeps
freed pages for reuse. Measured (bench/bench_upsert_csv.py, 1,000,000 rows, client peak over its imports):
423-515 MB with the defaults, 339-349 MB with malloc's threshold fixed, 210-220 MB with
the threshold fixed and Arrow on the system pool (malloc), for 8% more CPU (the mmap
calls). upsert_df at 200,000 rows, aligning its results on the system pool too (they are
aligned when `res.frame` is first read, after the call has returned): client CPU 0.74-0.78
vs 0.87 s, peak over the frame 105 vs 167 MB (mimalloc decommits freed pages after its
purge delay of milliseconds, and the next big buffer faults them in again). So while a
load, its checks (validate_df, dry_run) or the alignment of its results runs (`lean()`):

- Arrow's default pool is the system pool; the one before comes back when the last load
  ends (Arrow buffers remember the pool they came from, so a switch is safe at any time).
- glibc's mmap threshold is fixed at MMAP_THRESHOLD (256 KB, near glibc's own starting
  value of 128 KB) for the rest of the process, as ``MALLOC_MMAP_THRESHOLD_=262144``
  would: blocks that big no longer grow the heaps; they are mapped, and unmapped when
  freed. glibc has no way to restore
  the sliding threshold, so this one is not undone (it costs an mmap call per big
  allocation, nothing else).

Left alone: a process not on glibc (macOS, Windows, musl); a user who set
``MALLOC_MMAP_THRESHOLD_`` or ``ARROW_DEFAULT_MEMORY_POOL`` (their choice stands); and
everything when ``SFBULK_NB_ALLOCATORS=keep`` is set.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading
from collections.abc import Iterator

import pyarrow as pa

MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>

_lock = threading.Lock()
_loads = 0  # loads running now (threads may run several)
_pool_before: pa.MemoryPool | None = None
_threshold_fixed = False


def wanted() -> bool:
    """False when the user asked sfbulk_nb to leave the allocators alone."""
    return os.environ.get("SFBULK_NB_ALLOCATORS", "").strip().lower() != "keep"


def _pool_is_ours() -> bool:
    """Whether sfbulk_nb may choose Arrow's pool: the user chose none."""
    return wanted() and not os.environ.get("ARROW_DEFAULT_MEMORY_POOL")


def fix_mmap_threshold() -> bool:
    """Fixes glibc malloc's mmap threshold at MMAP_THRESHOLD, once per process. True if it
    is fixed (by this call or an earlier one); False where there is no glibc or the user
    chose a threshold."""
    global _threshold_fixed
    if _threshold_fixed:
        return True
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _threshold_fixed = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return _threshold_fixed


@contextlib.contextmanager
def lean() -> Iterator[None]:
    """The allocators of a big load while the block runs (see the module's docstring).
    Nests, and may be entered by several threads: the pool comes back when the last ends."""
    global _loads, _pool_before
    if not wanted():
        yield
        return
    with _lock:
        fix_mmap_threshold()
        if _loads == 0 and _pool_is_ours():
            _pool_before = pa.default_memory_pool()
            pa.set_memory_pool(pa.system_memory_pool())
        _loads += 1
    try:
        yield
    finally:
        with _lock:
            _loads -= 1
            if _loads == 0 and _pool_before is not None:
                pa.set_memory_pool(_pool_before)
                _pool_before = None


def serving_pool() -> str | None:
    """Arrow's pool for a process that only serves the local org (`sfbulk-nb localorg
    serve`), for good: jemalloc where this pyarrow has it (it keeps freed pages a while and
    reuses them), else the system pool. Measured (bench/bench_localorg_upsert.py, a 1M-row,
    70.8 MB upload): server peak 234 MB, 110 MB over idle, vs 255 and 131 MB on mimalloc,
    same throughput. The backend's name, or None where the user's choice stands (as
    lean()). Not for a LocalOrg started inside a notebook: that process is the user's."""
    if not _pool_is_ours():
        return None
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # built without jemalloc (Windows wheels)
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
    return pool.backend_name
