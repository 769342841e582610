"""The Salesforce CLI (`sf`), unmodified, against the local org.

sf is installed from the npm registry by `.ci/install-sfcli.sh` (pinned in
tests/interop/sfcli/package-lock.json, with its own Node 22). The test is slow (a minute
to install the first time, about 2 s per command): `-m "not slow"` skips it locally. In CI
(the CI variable set) a failure to install fails the test instead of skipping it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / ".ci" / "install-sfcli.sh"


@pytest.fixture(scope="session")
def sf_bin() -> str:
    try:
        out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True,
                             timeout=900, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        if os.environ.get("CI"):
            pytest.fail(f"could not install the sf CLI: {detail}")
        pytest.skip(f"sf CLI not installable here: {detail}")
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture
def sf(sf_bin, org, tmp_path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "SF_", "SFDX_"))}
    env.update(HOME=str(home), CI="true", NO_COLOR="1")

    def run(*args: str, check: bool = True, **extra_env: str) -> dict:
        proc = subprocess.run([sf_bin, *args, "--json"], cwd=work, capture_output=True,
                              text=True, timeout=180, env={**env, **extra_env})
        result = json.loads(proc.stdout)
        if check:
            assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        return result

    run("org", "login", "access-token", "--instance-url", org.instance_url, "--no-prompt",
        "--alias", "local", SF_ACCESS_TOKEN=org.access_token)
    run.work = work
    return run


def accounts(org) -> dict[str, dict]:
    rows = org.store.query('SELECT Id, Name, customExtIdField__c, Industry, IsDeleted '
                           'FROM "sobj_Account"')
    return {r["Id"]: dict(r) for r in rows}


def test_login_upsert_import_delete_and_results(sf, org):
    work: Path = sf.work
    (work / "accounts.csv").write_text(
        "Name,customExtIdField__c,Industry\n"
        + "".join(f'"Acme, {i}",EXT-{i},Banking\n' for i in range(50)))
    upsert = sf("data", "upsert", "bulk", "--sobject", "Account", "--file", "accounts.csv",
                "--external-id", "customExtIdField__c", "--wait", "10", "--target-org", "local")
    info = upsert["result"]["jobInfo"]
    assert info["state"] == "JobComplete" and info["numberRecordsProcessed"] == 50
    state = accounts(org)
    assert sorted(r["Name"] for r in state.values()) == sorted(f"Acme, {i}" for i in range(50))

    (work / "more.csv").write_text("Name\nPlain one\nPlain two\n")
    imported = sf("data", "import", "bulk", "--sobject", "Account", "--file", "more.csv",
                  "--wait", "10", "--target-org", "local")
    assert imported["result"]["processedRecords"] == 2
    assert imported["result"]["failedRecords"] == 0

    plain = [rid for rid, r in accounts(org).items() if r["Name"].startswith("Plain")]
    (work / "ids.csv").write_text("Id\n" + "".join(f"{rid}\n" for rid in plain))
    deleted = sf("data", "delete", "bulk", "--sobject", "Account", "--file", "ids.csv",
                 "--wait", "10", "--target-org", "local")
    assert deleted["result"]["jobInfo"]["numberRecordsProcessed"] == 2
    assert all(accounts(org)[rid]["IsDeleted"] == 1 for rid in plain)

    results = sf("data", "bulk", "results", "--job-id", info["id"], "--target-org", "local")
    assert results["result"]["processedRecords"] == 50
    saved = next(work.glob(f"{info['id']}-success-records.csv")).read_text()
    rows = list(csv.reader(io.StringIO(saved, newline="")))
    assert rows[0][:2] == ["sf__Id", "sf__Created"] and len(rows) == 51


def test_row_failures_and_unknown_jobs_are_reported(sf, org):
    (sf.work / "bad.csv").write_text("Name,Industry\nGood,Banking\nBad,Spaceflight\n")
    failed = sf("data", "import", "bulk", "--sobject", "Account", "--file", "bad.csv",
                "--wait", "10", "--target-org", "local", check=False)
    assert failed["status"] == 1 and "failed to process 1 record" in failed["message"]
    missing = sf("data", "bulk", "results", "--job-id", "750000000000000AAA", "--target-org",
                 "local", check=False)
    assert missing["status"] == 1 and "Can't find a bulk job" in missing["message"]


def test_export_bulk_runs_a_query_job(sf, org):
    names = [f'Acme, "{i}"' for i in range(300)]
    (sf.work / "in.csv").write_text(
        "Name\n" + "".join('"' + n.replace('"', '""') + '"\n' for n in names))
    sf("data", "import", "bulk", "--sobject", "Account", "--file", "in.csv", "--wait", "10",
       "--target-org", "local")
    exported = sf("data", "export", "bulk", "--query", "SELECT Id, Name, Phone FROM Account",
                  "--output-file", "out.csv", "--wait", "10", "--target-org", "local")
    assert exported["result"]["totalSize"] == 300
    rows = list(csv.reader(io.StringIO((sf.work / "out.csv").read_text(), newline="")))
    assert rows[0] == ["Id", "Name", "Phone"]
    assert sorted(r[1] for r in rows[1:]) == sorted(names)
    assert {r[2] for r in rows[1:]} == {""}
