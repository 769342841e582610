"""`sfbulk-nb localorg serve`, `add-object` and `reset` from a shell."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from sfbulk_nb import cli
from sfbulk_nb.localorg import LocalOrg, engine
from tests.conftest import BulkHttp


def test_serve_prints_url_and_token_and_stops_on_ctrl_c(tmp_path):
    db = tmp_path / "org.sqlite3"
    proc = subprocess.Popen([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "serve",
                             "--port", "0", "--db", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[0].split("running at ")[1].split()[0]
        token = lines[2].split("access token:")[1].strip()
        assert url.startswith("http://127.0.0.1:")
        r = requests.get(f"{url}/services/data/v66.0/limits", timeout=10,
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Local org stopped." in out
    assert db.exists()


def gadget_describe() -> dict:
    account = json.loads((Path(engine.__file__).parent / "schema" / "Account.json").read_text())
    return {**account, "name": "Gadget__c", "label": "Gadget", "keyPrefix": "a02",
            "custom": True, "childRelationships": []}


def test_add_object_from_a_saved_describe(tmp_path):
    gadget = gadget_describe()
    path = tmp_path / "Gadget__c.json"
    path.write_text(json.dumps(gadget))
    db = tmp_path / "org.sqlite3"
    done = subprocess.run([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "add-object",
                           str(path), "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Added Gadget__c (key prefix a02" in done.stdout
    assert (tmp_path / "org.objects" / "Gadget__c.json").exists()
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "X"}')
    failed = subprocess.run([sys.executable, "-m", "sfbulk_nb.cli", "localorg", "add-object",
                             str(broken), "--db", str(db)], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode == 2 and "keyPrefix" in failed.stderr


def test_reset_empties_a_named_org_and_keeps_the_objects_added_to_it(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    with LocalOrg(name="quickstart") as org:
        assert org.path == tmp_path / "org-quickstart.sqlite3"  # beside the default org
        org.add_object(gadget_describe())
        http = BulkHttp(org)
        assert http.run("Gadget__c", "insert", "Name\nG1\n")["state"] == "JobComplete"
        assert http.run("Account", "insert", "Name\nA1\n")["state"] == "JobComplete"
        password = org.password
    assert cli.main(["localorg", "reset", "--name", "quickstart"]) == 0
    assert f"Reset the local org at {org.path}" in capsys.readouterr().out
    with LocalOrg(name="quickstart") as org:
        http = BulkHttp(org)
        assert http.request("GET", "/jobs/ingest").json()["records"] == []
        for name in ("Account", "Gadget__c"):
            assert org.store.count_records(org.catalog.get(name)) == 0
        assert org.password != password
    # --db names the file; one that is not there is left alone.
    assert cli.main(["localorg", "reset", "--db", str(org.path)]) == 0
    missing = tmp_path / "nope.sqlite3"
    assert cli.main(["localorg", "reset", "--db", str(missing)]) == 0
    assert "nothing to reset" in capsys.readouterr().out and not missing.exists()
