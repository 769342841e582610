"""The allocators a load runs with (sfbulk_nb.memory): Arrow's system pool while a load
runs, then the user's pool back; glibc's mmap threshold fixed; both left alone on request."""
from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pandas as pd
import pyarrow as pa
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import memory

KEY = "customExtIdField__c"
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")


@pytest.fixture
def user_pool(monkeypatch):
    """The pool the user had: mimalloc (Arrow's default) where the build has it."""
    monkeypatch.delenv("SFBULK_NB_ALLOCATORS", raising=False)
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool()
    try:
        pool = pa.mimalloc_memory_pool()
    except NotImplementedError:
        pool = pa.jemalloc_memory_pool()
    pa.set_memory_pool(pool)
    yield pool
    pa.set_memory_pool(before)


def test_a_load_runs_on_the_system_pool_and_gives_the_users_pool_back(org, user_pool, tmp_path):
    seen = []
    df = pd.DataFrame({KEY: ["A1", "A2"], "Name": ["One", "Two"]})
    res = sfb.upsert_df(df, "Account", KEY, org=sfb.connect(org),
                        progress=lambda event: seen.append(pa.default_memory_pool().backend_name))
    assert res.ok and seen and set(seen) == {"system"}
    assert pa.default_memory_pool().backend_name == user_pool.backend_name

    path = tmp_path / "a.csv"
    path.write_text(f"{KEY},Name\nB1,One\nB2,Two\n")
    seen.clear()
    res = sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org),
                         progress=lambda message: seen.append(pa.default_memory_pool().backend_name))
    assert res.ok and set(seen) == {"system"}
    assert pa.default_memory_pool().backend_name == user_pool.backend_name


def test_the_results_aligned_after_the_call_and_the_checks_run_on_the_system_pool_too(
        org, user_pool, monkeypatch):
    """res.frame aligns the results when first read, after upsert_df has returned; on
    mimalloc that alone cost 12% of a 200,000-row load's CPU (bench_e2e_upsert)."""
    from sfbulk_nb import results

    seen, align = [], results.align

    def watched(*args, **kwargs):
        seen.append(pa.default_memory_pool().backend_name)
        return align(*args, **kwargs)

    monkeypatch.setattr(results, "align", watched)
    df = pd.DataFrame({KEY: ["A1", "A2"], "Name": ["One", "Two"]})
    res = sfb.upsert_df(df, "Account", KEY, org=sfb.connect(org), progress=False)
    assert not seen and pa.default_memory_pool().backend_name == user_pool.backend_name
    assert list(res.frame["sf_status"]) == ["created", "created"]
    assert seen == ["system"]
    assert pa.default_memory_pool().backend_name == user_pool.backend_name

    from sfbulk_nb import validate
    seen.clear()
    check = validate.check
    monkeypatch.setattr(validate, "check", lambda *a, **k: (
        seen.append(pa.default_memory_pool().backend_name), check(*a, **k))[1])
    assert sfb.validate_df(df, "Account", KEY, org=sfb.connect(org)).ok
    sfb.dry_run(df, "Account", "upsert", KEY, org=sfb.connect(org))
    assert seen == ["system", "system"]
    assert pa.default_memory_pool().backend_name == user_pool.backend_name


def test_a_failed_load_gives_the_pool_back_too(org, user_pool):
    with pytest.raises(sfb.ValidationError):
        sfb.upsert_df(pd.DataFrame({KEY: ["A1"], "NoSuchField__c": [1]}), "Account", KEY,
                      org=sfb.connect(org), progress=False)
    assert pa.default_memory_pool().backend_name == user_pool.backend_name


def test_loads_nest_and_the_last_to_end_restores(user_pool):
    with memory.lean():
        with memory.lean():
            assert pa.default_memory_pool().backend_name == "system"
        assert pa.default_memory_pool().backend_name == "system"  # the outer load still runs
    assert pa.default_memory_pool().backend_name == user_pool.backend_name


@pytest.mark.parametrize("env", [{"SFBULK_NB_ALLOCATORS": "keep"},
                                 {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}])
def test_the_users_choice_stands(user_pool, monkeypatch, env):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with memory.lean():
        assert pa.default_memory_pool().backend_name == user_pool.backend_name


# mallopt is for the whole process and cannot be undone: the probe runs in a process of its own.
_THRESHOLD_PROBE = textwrap.dedent("""
    import ctypes

    class Info(ctypes.Structure):  # glibc's struct mallinfo2
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                    "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    from sfbulk_nb import memory

    def mapped_after_allocating():
        # Bigger than all the heap's free bytes: it cannot fit in a hole left before.
        size = libc.mallinfo2().fordblks + (2 << 20)
        assert size < 30 << 20
        before = libc.mallinfo2().hblks
        block = bytearray(size)  # a big block: mapped, or from the heap?
        after = libc.mallinfo2().hblks
        del block
        return after > before

    big = bytearray(30 << 20)
    del big  # freeing a 30 MB mapped block raises glibc's sliding threshold to 30 MB
    default = mapped_after_allocating()
    assert memory.fix_mmap_threshold() and memory.fix_mmap_threshold()  # once is enough
    big = bytearray(30 << 20)
    del big
    print(default, mapped_after_allocating())
""")


@glibc_only
def test_a_fixed_threshold_maps_big_blocks_after_a_bigger_one_was_freed():
    done = subprocess.run([sys.executable, "-c", _THRESHOLD_PROBE], capture_output=True,
                          text=True, check=True)
    default, fixed = done.stdout.split()
    # Fixed: a big block is mapped (and unmapped when freed), even after a bigger one was
    # freed; with glibc's default it comes from the heap (the memory that fragments and
    # stays), where the process's heap can grow (seen so when this runs alone).
    assert fixed == "True", done.stdout


@glibc_only
def test_a_threshold_the_user_set_stands(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(64 << 20))
    done = subprocess.run([sys.executable, "-c", "from sfbulk_nb import memory; "
                           "print(memory.fix_mmap_threshold())"], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_a_served_local_org_keeps_its_own_pool_unless_the_user_chose(user_pool, monkeypatch):
    """`sfbulk-nb localorg serve` is a process of its own: jemalloc (or the system pool)
    for good; the user's choice of pool stands."""
    name = memory.serving_pool()
    assert name in ("jemalloc", "system")
    assert pa.default_memory_pool().backend_name == name
    pa.set_memory_pool(user_pool)
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    assert memory.serving_pool() is None
    assert pa.default_memory_pool().backend_name == user_pool.backend_name
