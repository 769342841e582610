"""Loads of Dask DataFrames (sfbulk_nb.daskload) against the local org, on a two-process
distributed cluster and on Dask's threaded scheduler."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb import journal as run_journal
from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

KEY = "customExtIdField__c"
NO_WAIT = {"sleep": lambda seconds: None}
EDGES = ["plain", "a,b", 'say "hi"', "two\nlines", "carriage\rreturn", "crlf\r\nend",
         "ünïcödé ☃ 𝄞", " padded ", '"', ",", "", None]
WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local, set_as_default=False) as client:
        # The workers must run this checkout's package, not another installed copy.
        where = client.run(lambda: __import__("sfbulk_nb").__file__)
        assert all(Path(f).resolve().is_relative_to(WORKTREE) for f in where.values()), where
        yield client


@pytest.fixture(params=["distributed", "threads"])
def scheduler(request):
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield "threads"
        return
    client = request.getfixturevalue("cluster")
    with dask.config.set(scheduler="dask.distributed"), client.as_current():
        yield "distributed"


@pytest.fixture
def client_org(org):
    sfb.connect(org)
    return org


def frame(n: int = 36) -> pd.DataFrame:
    names = [EDGES[i % len(EDGES)] for i in range(n)]
    names = [f"{i}:{v}" if v else v for i, v in enumerate(names)]
    return pd.DataFrame({KEY: [f"K{i:03d}" for i in range(n)], "Name": names,
                         "NumberOfEmployees": pd.array([i if i % 5 else pd.NA for i in range(n)],
                                                       dtype="Int64")},
                        index=pd.Index(np.arange(n) * 10 + 1000, name="row"))


def stored(org) -> pd.DataFrame:
    found = sfb.query_df(f"SELECT Id, {KEY}, Name FROM Account", progress=False)
    return found.set_index(KEY)


def ingest_jobs(org) -> list[dict]:
    return BulkHttp(org).request("GET", "/jobs/ingest").json()["records"]


def test_upsert_of_a_dask_frame_matches_pandas_and_keeps_partitions(client_org, scheduler):
    org = client_org
    pdf = frame()
    ddf = dd.from_pandas(pdf, npartitions=4)
    out = sfb.upsert_df(ddf, "Account", KEY, max_records=5, parallel=3, progress=False)
    assert isinstance(out, dd.DataFrame)
    assert out.npartitions == ddf.npartitions and out.divisions == ddf.divisions
    assert list(out.columns) == list(sfb.BulkResult.STATUS_COLUMNS)
    assert (out.map_partitions(len).compute().tolist()
            == ddf.map_partitions(len).compute().tolist())
    got = out.compute()
    pd.testing.assert_index_equal(got.index, pdf.index)
    # Every record is in the org, with its text exactly as written (quotes, newlines, \r).
    records = stored(org)
    created = got["sf_status"] == "created"
    assert created.sum() == len(records) == pdf["Name"].fillna("").ne("").sum()
    sent = pdf[created.to_numpy()]
    assert records.loc[sent[KEY], "Name"].tolist() == sent["Name"].tolist()
    assert records.loc[sent[KEY], "Id"].tolist() == got.loc[created, "sf_id"].tolist()
    # The same rows as a pandas frame: the same outcome, row for row.
    org.reset()
    expected = sfb.upsert_df(pdf, "Account", KEY, progress=False).frame
    for column in ("sf_status", "sf_error_code", "sf_error_fields", "sf_error_message",
                   "sf_attempts"):
        pd.testing.assert_series_equal(got[column], expected[column])
    # And again: now every valid row updates its record.
    again = sfb.upsert_df(ddf, "Account", KEY, progress=False).compute()
    assert set(again.loc[created, "sf_status"]) == {"updated"}
    assert (again.loc[created, "sf_id"] == stored(org).loc[sent[KEY], "Id"].to_numpy()).all()


def test_a_bad_cell_in_partition_2_is_refused_before_anything_is_sent(client_org, scheduler):
    pdf = frame(30)
    pdf.loc[1230, "Name"] = "x" * 300  # row 23: partition 2 of 3 (0-based)
    ddf = dd.from_pandas(pdf, npartitions=3)
    assert 1230 in ddf.partitions[2].compute().index
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_df(ddf, "Account", KEY, progress=False)
    message = str(caught.value)
    assert "Nothing was sent" in message and "partition 2" in message
    assert "STRING_TOO_LONG" in message and "1230" in message
    problems = caught.value.problems
    assert problems.loc[problems["code"] == "STRING_TOO_LONG", "row"].tolist() == [1230]
    assert problems.loc[problems["code"] == "STRING_TOO_LONG", "position"].tolist() == [23]
    assert ingest_jobs(client_org) == []
    # on_invalid="skip" sends the others, and the row comes back invalid where it was.
    out = sfb.upsert_df(ddf, "Account", KEY, on_invalid="skip", progress=False).compute()
    assert out.loc[1230, "sf_status"] == "invalid"
    assert out.loc[1230, "sf_error_code"] == "STRING_TOO_LONG"
    assert (out.drop(index=1230)["sf_status"].isin(["created", "failed"])).all()


def test_duplicate_keys_across_partitions_are_refused(client_org, scheduler):
    pdf = frame(30)
    pdf.loc[1250, KEY] = "K002"  # partition 2 repeats partition 0's key
    ddf = dd.from_pandas(pdf, npartitions=3)
    with pytest.raises(errors.ValidationError) as caught:
        sfb.upsert_df(ddf, "Account", KEY, progress=False)
    problems = caught.value.problems
    duplicates = problems[problems["code"] == "DUPLICATE_VALUE"]
    assert duplicates["row"].tolist() == [1020, 1250]
    assert "partitions 0, 2" in str(caught.value)
    assert ingest_jobs(client_org) == []
    # validate_df and dry_run say the same of a Dask frame, without raising or sending.
    found = sfb.validate_df(ddf, "Account", KEY)
    pd.testing.assert_frame_equal(pd.DataFrame(found), pd.DataFrame(problems))
    plan = sfb.dry_run(ddf, "Account", "upsert", KEY, on_invalid="skip", max_records=4)
    assert plan.jobs["rows"].sum() == 28 and plan.invalid_positions.tolist() == [2, 25]
    assert ingest_jobs(client_org) == []
    out = sfb.upsert_df(ddf, "Account", KEY, on_invalid="skip", progress=False).compute()
    assert out.loc[[1020, 1250], "sf_status"].tolist() == ["invalid", "invalid"]
    assert out.loc[[1020, 1250], "sf_error_code"].tolist() == ["DUPLICATE_VALUE"] * 2
    sent = out.drop(index=[1020, 1250])
    assert sent["sf_status"].isin(["created", "failed"]).all()
    assert (sent["sf_status"] == "created").sum() == len(stored(client_org))
    # on_invalid="send" sends both, and each row gets its own outcome.
    client_org.reset()
    out = sfb.upsert_df(ddf, "Account", KEY, on_invalid="send", progress=False).compute()
    assert sorted(out.loc[[1020, 1250], "sf_status"]) == ["created", "updated"]
    assert out.loc[1020, "sf_id"] == out.loc[1250, "sf_id"]


@pytest.mark.parametrize("on_invalid", ["raise", "skip"])
def test_the_chunks_are_the_bytes_pandas_sends(client_org, scheduler, on_invalid):
    pdf = frame(40)
    if on_invalid == "skip":  # a bad cell, and a key in two partitions: re-encoded
        pdf.loc[1050, "Name"] = "x" * 300
        pdf.loc[1350, KEY] = "K002"
    ddf = dd.from_pandas(pdf, npartitions=4)
    options = {"on_invalid": on_invalid, "max_records": 7}
    expected = sfb.dry_run(pdf, "Account", "upsert", KEY, **options)
    got = sfb.dry_run(ddf, "Account", "upsert", KEY, **options)

    def rows(plan):
        return b"".join(c.data.partition(b"\n")[2] for c in plan.chunks)

    assert {c.data.partition(b"\n")[0] for c in got.chunks} == {
        expected.chunks[0].data.partition(b"\n")[0]}
    assert rows(got) == rows(expected) and b"\r" in rows(got)
    assert got.positions.tolist() == expected.positions.tolist()
    assert sum(c.records for c in got.chunks) == len(expected.positions)


def test_a_fault_injected_run_loses_nothing(client_org):
    org = client_org
    org.faults.add(after=True, drop=True, method="PATCH", path=r"/jobs/ingest/[^/]+$")
    org.faults.add(after=True, drop=True, method="PUT", path="/batches$")
    org.faults.add(after=True, drop=True, method="POST", path="/jobs/ingest$")
    org.faults.add(status=503, method="GET", path=r"/jobs/ingest/[^/]+$", times=3)
    org.faults.add(truncate=30, method="GET", path="/successfulResults$")
    pdf = frame(40).dropna(subset=["Name"])
    pdf = pdf[pdf["Name"] != ""]
    ddf = dd.from_pandas(pdf, npartitions=4)
    with dask.config.set(scheduler="threads"):
        out = sfb.upsert_df(ddf, "Account", KEY, max_records=4, progress=False,
                            **NO_WAIT).compute()
    assert (out["sf_status"] == "created").all() and len(out) == len(pdf)
    assert len(stored(org)) == len(pdf)
    jobs = ingest_jobs(org)
    assert {j["state"] for j in jobs} == {"JobComplete"}
    processed = [BulkHttp(org).info(j["id"])["numberRecordsProcessed"] for j in jobs]
    assert sum(processed) == len(pdf)  # no row sent twice
    (record,) = run_journal.records()
    assert record.data["state"] == run_journal.DONE
    assert sorted(j["job_id"] for j in record.data["jobs"]) == sorted(j["id"] for j in jobs)
    assert sfb.last_result().ok


def test_a_dask_run_cut_short_resumes_from_its_journal(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", pace=3000) as local:
        sfb.connect(local)
        ddf = dd.from_pandas(pd.DataFrame({"Name": [f"T{i}" for i in range(1500)]}),
                            npartitions=3)
        with dask.config.set(scheduler="threads"):
            first = sfb.insert_df(ddf, "Account", timeout=0.05, progress=False).compute()
            assert (first["sf_status"] == "pending").any()
            run_id = sfb.last_result().run_id
            with pytest.raises(errors.RunInProgressError):  # the same frame, unfinished
                sfb.insert_df(ddf, "Account", progress=False)
            with pytest.raises(errors.InputError, match="not the one"):
                sfb.resume(run_id, ddf.repartition(npartitions=2))
            again = sfb.resume(run_id, ddf, progress=False)
        assert again.divisions == ddf.divisions
        out = again.compute()
        assert (out["sf_status"] == "created").all() and len(out) == 1500
        assert local.store.count_records(local.catalog.get("Account")) == 1500


def test_insert_update_and_delete_of_dask_frames(client_org):
    pdf = pd.DataFrame({"Name": [f"N{i}" for i in range(12)]})
    ddf = dd.from_pandas(pdf, npartitions=3)
    with dask.config.set(scheduler="threads"):
        inserted = sfb.insert_df(ddf, "Account", progress=False)
        ids = inserted["sf_id"]
        assert inserted["sf_status"].eq("created").all().compute()
        changed = ddf.assign(Id=ids, Name=ddf["Name"] + "!")
        updated = sfb.update_df(changed, "Account", progress=False).compute()
        assert updated["sf_status"].eq("updated").all()
        assert sorted(stored(client_org)["Name"]) == sorted(f"N{i}!" for i in range(12))
        deleted = sfb.delete_df(ids, "Account", progress=False).compute()
    assert deleted["sf_status"].eq("deleted").all() and len(stored(client_org)) == 0


def test_the_result_behind_a_dask_load_retries_its_failed_rows(client_org):
    pdf = frame(12)  # the last two rows have no Name: the org fails them
    ddf = dd.from_pandas(pdf, npartitions=3)
    with dask.config.set(scheduler="threads"):
        out = sfb.upsert_df(ddf, "Account", KEY, progress=False).compute()
    res = sfb.last_result()
    pd.testing.assert_frame_equal(pd.DataFrame(res.frame), out)
    assert res.failed.index.tolist() == [1100, 1110]
    with pytest.raises(errors.InputError, match="Dask frame"):
        res.retry()
    fixed = pdf.loc[res.failed.index].assign(Name="named now")
    again = res.retry(fixed)
    assert again.ok and again.frame.loc[[1100, 1110], "sf_status"].eq("created").all()
    assert len(stored(client_org)) == 12


def test_workers_never_receive_the_token(client_org, cluster, monkeypatch):
    """What goes to the workers is the tasks' payload: it holds the describe and the
    options, never the Org and its access token."""
    sent = []
    compute = dask.compute

    def spy(*args, **kwargs):
        sent.append(cloudpickle.dumps((args, kwargs)))
        return compute(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", spy)
    ddf = dd.from_pandas(frame(12), npartitions=2)
    with dask.config.set(scheduler="dask.distributed"), cluster.as_current():
        sfb.upsert_df(ddf, "Account", KEY, progress=False).compute()
    token = client_org.access_token
    assert sent and token and all(token.encode() not in payload for payload in sent)
    assert all(b"sfbulk_nb.org" not in payload and b"Secret" not in payload
               for payload in sent)
    # What the workers need is there: the describe (fields the frame lacks) and the options.
    assert b"Described" in sent[0] and b"LoadOptions" in sent[0] and b"BillingCity" in sent[0]
    assert pickle.loads(sent[0])  # the payload is what was shipped: plain, loadable data


def test_options_a_dask_load_cannot_take_are_refused_before_anything_is_sent(client_org):
    ddf = dd.from_pandas(frame(6), npartitions=2)
    for options in ({"only_changed": True}, {"wait": False}, {"rules": True}):
        with pytest.raises(errors.InputError):
            sfb.upsert_df(ddf, "Account", KEY, progress=False, **options)
    assert ingest_jobs(client_org) == []


def test_importing_the_package_does_not_import_dask():
    code = "import sys, sfbulk_nb; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=WORKTREE, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_on_a_cluster_the_outcome_frame_is_not_shipped_in_the_graph(client_org, cluster):
    """The outcome's partitions are scattered to the workers: computing the frame sends a
    small graph, and distributed never warns of a large one (it did from ~100,000 rows at
    its default threshold, 10 MB; the object's describe goes to the workers once, some
    20-300 kB)."""
    import warnings

    pdf = frame(5000)  # some 400 kB of outcome: past the threshold set below
    ddf = cluster.persist(dd.from_pandas(pdf, npartitions=4))  # the input on the workers
    with dask.config.set({"scheduler": "dask.distributed",
                          "distributed.admin.large-graph-warning-threshold": "200kB"}), \
            cluster.as_current(), warnings.catch_warnings():
        warnings.simplefilter("error")  # the large-graph warning fails the test
        out = sfb.upsert_df(ddf, "Account", KEY, progress=False)
        got = out.compute()
        assert out.npartitions == 4 and out.divisions == ddf.divisions
        assert (got["sf_status"] == sfb.last_result().frame["sf_status"]).all()
        assert len(cluster.who_has()) >= 4  # the pieces live on the workers
    pd.testing.assert_index_equal(got.index, pdf.index)
