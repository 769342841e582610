"""The local org's module layout holds: jobs are written only by the store (so progress is
recorded in one place), one runner processes every kind of job, and the HTTP layer stays
split by resource."""
from __future__ import annotations

import re
from pathlib import Path

import sfbulk_nb.localorg as localorg
from sfbulk_nb.localorg import app

PACKAGE = Path(localorg.__file__).parent
# SQL that writes a jobs table: the job rows, their uploads and their results.
JOB_WRITE = re.compile(r"\b(UPDATE|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|REPLACE\s+INTO)"
                       r"\s+\"?(jobs|job_uploads|job_upload_pieces|job_results)\b", re.IGNORECASE)


def job_writes(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if JOB_WRITE.search(line)]


def test_the_guard_sees_job_writes():
    assert job_writes('conn.execute("UPDATE jobs SET numberRecordsProcessed = ? WHERE id = ?")')
    assert job_writes('"INSERT OR REPLACE INTO job_uploads (job_id, data) VALUES (?, ?)"')
    assert job_writes("delete from job_results where job_id = ?")
    assert job_writes('"INSERT INTO job_upload_pieces (job_id, piece, data) VALUES (?, ?, ?)"')
    assert not job_writes('"SELECT id FROM jobs WHERE state = ?"')
    assert not job_writes('"UPDATE jobsets SET x = 1"')


def test_only_the_store_writes_jobs():
    found = {path.name: job_writes(path.read_text(encoding="utf-8"))
             for path in PACKAGE.glob("*.py") if path.name != "store.py"}
    assert {name: lines for name, lines in found.items() if lines} == {}
    assert job_writes((PACKAGE / "store.py").read_text(encoding="utf-8"))  # still found there


def test_one_worker_thread_runs_jobs():
    """Only the runner starts a job worker (server.py starts the HTTP thread)."""
    starts = {path.name for path in PACKAGE.glob("*.py")
              if re.search(r"threading\.Thread\(|queue\.Queue\(", path.read_text("utf-8"))}
    assert starts == {"runner.py", "server.py"}


def test_ingest_and_query_jobs_share_the_runner():
    with localorg.LocalOrg() as org:
        assert set(org.runner._kinds) == {"ingest", "query"}
        assert org.engine.runner is org.query_jobs.runner is org.runner


def test_app_only_assembles_the_resources():
    source = (PACKAGE / "app.py").read_text(encoding="utf-8")
    assert "def on_" not in source and "Rule(" not in source
    with localorg.LocalOrg() as org:
        owners = {getattr(org.app, "on_" + rule.endpoint).__self__.__class__.__module__
                  for rule in app._URLS.iter_rules()}
    assert owners == {f"sfbulk_nb.localorg.{name}" for name in (
        "http_auth", "http_rest", "http_query", "http_ingest", "http_query_jobs",
        "http_control", "sobjects_http")}
