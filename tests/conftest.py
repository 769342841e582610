"""Shared fixtures: one running local org per session, wiped before each test that asks."""
from __future__ import annotations

import time

import pytest
import requests

from sfbulk_nb.localorg import LocalOrg

API = "v66.0"


class BulkHttp:
    """Plain-requests access to an org's REST and Bulk 2.0 endpoints, for tests."""

    def __init__(self, org: LocalOrg, version: str = API):
        self.org = org
        self.version = version
        self.session = requests.Session()

    @property
    def base(self) -> str:
        return f"{self.org.instance_url}/services/data/{self.version}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.org.access_token}", **extra}

    def request(self, method: str, path: str, **kw) -> requests.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        url = path if path.startswith("http") else self.base + path
        return self.session.request(method, url, headers=headers, timeout=30, **kw)

    def create(self, obj: str, operation: str, **options) -> dict:
        r = self.request("POST", "/jobs/ingest", json={"object": obj, "operation": operation,
                                                       **options})
        assert r.status_code == 200, r.text
        return r.json()

    def upload(self, job_id: str, data: str | bytes) -> requests.Response:
        body = data.encode("utf-8") if isinstance(data, str) else data
        return self.request("PUT", f"/jobs/ingest/{job_id}/batches", data=body,
                            headers={"Content-Type": "text/csv"})

    def close(self, job_id: str) -> requests.Response:
        return self.request("PATCH", f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"})

    def info(self, job_id: str) -> dict:
        r = self.request("GET", f"/jobs/ingest/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(job_id)
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            assert time.monotonic() < deadline, f"job still {info['state']}"
            time.sleep(0.02)

    def results(self, job_id: str, kind: str) -> str:
        r = self.request("GET", f"/jobs/ingest/{job_id}/{kind}", headers={"Accept": "text/csv"})
        assert r.status_code == 200, r.text
        return r.content.decode("utf-8")

    def run(self, obj: str, operation: str, csv_text: str | bytes, **options) -> dict:
        """Create, upload, close and wait; returns the final JobInfo."""
        job = self.create(obj, operation, **options)
        assert self.upload(job["id"], csv_text).status_code == 201
        assert self.close(job["id"]).status_code == 200
        return self.wait(job["id"])

    def record(self, obj: str, record_id: str) -> dict | None:
        r = self.request("GET", f"/sobjects/{obj}/{record_id}")
        return r.json() if r.status_code == 200 else None


@pytest.fixture(autouse=True)
def journal(tmp_path_factory, monkeypatch):
    """Each test its own run journal (never the user's): runs of one test's frames must not
    be taken for another's unfinished runs."""
    folder = tmp_path_factory.mktemp("journal")
    monkeypatch.setenv("SFBULK_NB_JOURNAL", str(folder))
    return folder


@pytest.fixture(scope="session")
def session_org():
    with LocalOrg(seed=7) as org:
        yield org


@pytest.fixture
def org(session_org):
    session_org.reset()
    return session_org


@pytest.fixture
def api(org) -> BulkHttp:
    return BulkHttp(org)
