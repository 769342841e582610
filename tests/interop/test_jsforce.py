"""jsforce 3, unmodified, against the local org: identity, sObject create / retrieve / update /
upsert / destroy (one record and collections), Bulk 2.0 loads of every operation and a
Bulk 2.0 query, driven by tests/interop/jsforce/interop.js.

jsforce is installed from the npm registry by `.ci/install-jsforce.sh` (pinned in
tests/interop/jsforce/package-lock.json, with its own Node 22), which `.ci/run` calls.
Outside CI the test skips unless it is installed (`bash .ci/install-jsforce.sh`, ~30 s);
in CI (the CI variable set) the fixture installs it and a failure fails the test. The run
itself takes a few seconds.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / ".ci" / "install-jsforce.sh"
SCRIPT = REPO / "tests" / "interop" / "jsforce" / "interop.js"


@pytest.fixture(scope="session")
def node_bin() -> str:
    in_ci = bool(os.environ.get("CI"))
    env = {**os.environ, "JSFORCE_CHECK": "0" if in_ci else "1"}
    try:
        out = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True,
                             timeout=600, check=True, env=env)
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        if in_ci:
            pytest.fail(f"could not install jsforce: {detail}")
        pytest.skip(f"jsforce not installed here: {detail.strip()}")
    return out.stdout.strip().splitlines()[-1]


def accounts(org) -> dict[str, dict]:
    rows = org.store.query('SELECT Id, Name, customExtIdField__c, Industry, IsDeleted '
                           'FROM "sobj_Account"')
    return {r["Id"]: dict(r) for r in rows}


def test_jsforce_rest_and_bulk2_calls(node_bin, org):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SF_", "SFDX_"))}
    env.update(SF_INSTANCE_URL=org.instance_url, SF_ACCESS_TOKEN=org.access_token)
    proc = subprocess.run([node_bin, str(SCRIPT)], capture_output=True, text=True,
                          timeout=180, env=env, cwd=SCRIPT.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)

    assert out["identity"] == {"user_id": org.user_id, "organization_id": org.org_id,
                               "username": org.username}

    ids = out["ids"]
    assert out["createOne"] == {"id": ids["one"], "success": True, "errors": []}
    assert [r["success"] for r in out["createMany"]] == [True, True]
    assert out["retrieveOne"]["Id"] == ids["one"] and out["retrieveOne"]["Name"] == "JS One"
    assert [r["Name"] for r in out["retrieveMany"]] == ["JS One", "JS Two", "JS Three"]
    assert out["updateOne"] == {"id": ids["one"], "success": True, "errors": []}
    assert out["updateMany"][0]["success"] is True
    assert out["updateMany"][1]["errors"][0]["statusCode"] == \
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert out["upsertNew"]["created"] is True
    assert out["upsertOld"] == {"id": ids["one"], "success": True, "errors": [],
                                "created": False}
    assert out["destroyOne"] == {"id": ids["three"], "success": True, "errors": []}
    assert out["destroyMany"] == [{"id": ids["two"], "success": True, "errors": []}]
    assert out["createError"]["errorCode"] == "REQUIRED_FIELD_MISSING"

    assert out["bulkInsert"] == {
        "ok": 3, "failed": ["REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"]}
    assert out["bulkUpdate"] == {"ok": sorted([ids["a"], ids["b"]]), "failed": 0}
    assert out["bulkUpsert"] == [["B-A", "false"], ["B-Z", "true"]]
    assert out["bulkDelete"] == [ids["c"]]
    assert out["bulkQuery"] == [["Bulk A upserted", "B-A"], ["Bulk B", "B-B"],
                                ["Bulk Z", "B-Z"]]
    assert out["bulkHardDelete"]["ok"] == [out["bulkHardDelete"]["z"]]
    assert out["bulkHardDelete"]["failed"] == 0

    # What the org holds after it all.
    state = accounts(org)
    live = {r["Name"]: r for r in state.values() if not r["IsDeleted"]}
    assert set(live) == {"JS One upserted", "JS Upserted", "Bulk A upserted", "Bulk B"}
    assert out["bulkHardDelete"]["z"] not in state  # gone, not in the Recycle Bin
    assert live["JS One upserted"]["Id"] == ids["one"]
    assert live["JS One upserted"]["customExtIdField__c"] == "JS-1"
    assert live["Bulk B"]["Industry"] == "Banking"
    deleted = {r["Id"] for r in state.values() if r["IsDeleted"]}
    assert deleted == {ids["two"], ids["three"], ids["c"]}
