"""`sfbulk-nb localorg serve` and `add-object` from a shell."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from sfbulk_nb.localorg import engine


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


def test_add_object_from_a_saved_describe(tmp_path):
    account = json.loads((Path(engine.__file__).parent / "schema" / "Account.json").read_text())
    gadget = {**account, "name": "Gadget__c", "label": "Gadget", "keyPrefix": "a02",
              "custom": True, "childRelationships": []}
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
