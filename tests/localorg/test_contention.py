"""Lock contention between concurrent ingest jobs (LocalOrg(contention=...)): rows that
write children of a parent another queued job also writes children of fail with
UNABLE_TO_LOCK_ROW at the seeded rate, jobs count retries, and the client's follow-up
rounds (lock_retries) get every row in."""
from __future__ import annotations

import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb.localorg import LocalOrg
from tests.conftest import BulkHttp


def accounts_and_contacts(org, parents: int, per_parent: int):
    client = sfb.connect(org)
    ext = [f"P{i}" for i in range(parents)]
    assert sfb.upsert_df(pd.DataFrame({"customExtIdField__c": ext, "Name": ext}), "Account",
                         "customExtIdField__c", progress=False).ok
    contacts = pd.DataFrame({
        "LastName": [f"C{p}-{k}" for p in range(parents) for k in range(per_parent)],
        "Account.customExtIdField__c": [f"P{p}" for p in range(parents)
                                        for _ in range(per_parent)]})
    return client, contacts


def run_concurrently(api: BulkHttp, jobs_csv: list[str]) -> list[dict]:
    """Create, upload and close every job before any is processed: they are queued
    together, as parallel jobs are in Salesforce."""
    created = [api.create("Contact", "insert") for _ in jobs_csv]
    for job, data in zip(created, jobs_csv):
        assert api.upload(job["id"], data).status_code == 201
    for job in created:
        assert api.close(job["id"]).status_code == 200
    return [api.wait(job["id"]) for job in created]


def test_jobs_writing_children_of_the_same_parents_fail_rows_to_lock(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", contention=0.5, seed=3, pace=20_000) as org:
        _, contacts = accounts_and_contacts(org, parents=5, per_parent=40)
        api = BulkHttp(org)
        half = len(contacts) // 2
        # Both jobs write contacts of every one of the five accounts.
        csvs = [contacts.iloc[0::2].to_csv(index=False), contacts.iloc[1::2].to_csv(index=False)]
        infos = run_concurrently(api, csvs)
        failed = [api.results(i["id"], "failedResults") for i in infos]
        locked = sum(text.count("UNABLE_TO_LOCK_ROW") for text in failed)
        # The first job met the second (queued, same parents): about half its rows failed.
        assert infos[0]["numberRecordsFailed"] == failed[0].count("UNABLE_TO_LOCK_ROW")
        assert 0.3 * half < locked < 0.7 * half, locked
        assert infos[0]["retries"] >= 1
        # The second job ran alone (the first was done): no contention left.
        assert infos[1]["numberRecordsFailed"] == 0 and infos[1]["retries"] == 0


def test_children_of_different_parents_do_not_contend(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", contention=1.0, seed=3, pace=20_000) as org:
        _, contacts = accounts_and_contacts(org, parents=4, per_parent=30)
        api = BulkHttp(org)
        first = contacts[contacts["Account.customExtIdField__c"].isin(["P0", "P1"])]
        second = contacts[contacts["Account.customExtIdField__c"].isin(["P2", "P3"])]
        infos = run_concurrently(api, [first.to_csv(index=False), second.to_csv(index=False)])
        assert [i["numberRecordsFailed"] for i in infos] == [0, 0]


def test_the_client_gets_every_row_in_with_its_follow_up_rounds(tmp_path):
    with LocalOrg(tmp_path / "o.sqlite3", contention=0.4, seed=5, pace=20_000) as org:
        client, contacts = accounts_and_contacts(org, parents=3, per_parent=100)
        res = sfb.insert_df(contacts, "Contact", max_records=60, parallel=4, lock_retries=4,
                            progress=False)
        assert res.ok, res.counts
        assert res.frame["sf_attempts"].max() > 1  # some rows went again
        assert org.store.count_records(org.catalog.get("Contact")) == len(contacts)


def test_contention_is_off_by_default_and_checked(tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        LocalOrg(tmp_path / "x.sqlite3", contention=2)
    with LocalOrg(tmp_path / "o.sqlite3", pace=20_000) as org:
        _, contacts = accounts_and_contacts(org, parents=2, per_parent=50)
        infos = run_concurrently(BulkHttp(org), [contacts.to_csv(index=False)] * 2)
        assert [i["numberRecordsFailed"] for i in infos] == [0, 0]
