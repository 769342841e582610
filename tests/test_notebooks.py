"""Every notebook in notebooks/ runs top to bottom in a real kernel against a local org."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def execute(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    # The kernel inherits this environment: its local org lives in tmp_path, and no real
    # org's credentials can leak in.
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    for name in list(os.environ):
        if name.startswith("SF_"):
            monkeypatch.delenv(name)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def outputs(nb, kind: str) -> list[str]:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.get("output_type") == "stream":
                found.append(out["text"])
            elif kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    nb = execute(path, tmp_path, monkeypatch)
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.get("output_type") == "error"]
    assert errors == []
    # No secret of the org the kernel used shows in any output or widget state.
    saved = nbformat.writes(nb)
    for secret in org_secrets(tmp_path / "org.sqlite3"):
        assert secret not in saved


def org_secrets(path) -> list[str]:
    """Every token, the password and the client secret a local org file holds."""
    with sqlite3.connect(path) as db:
        tokens = [t for (t,) in db.execute("SELECT token FROM tokens")]
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                               "('password', 'client_secret')"))
    assert tokens and len(meta) == 2
    return tokens + list(meta.values())


def test_quickstart_shows_results_and_charts(tmp_path, monkeypatch):
    nb = execute(NOTEBOOKS[0], tmp_path, monkeypatch)
    html = "\n".join(outputs(nb, "text/html"))
    assert "BulkResult" in html and "created" in html and "failed" in html
    assert len(outputs(nb, "image/png")) >= 2
    text = "\n".join(outputs(nb, "text/plain"))
    assert "Org LOCAL" in text
