"""Every notebook in notebooks/ runs top to bottom in a real kernel against a local org,
twice in a row on the same org folder (a new kernel each time, as after a restart), and
shows the same thing both times: each notebook empties its own named org first, so what
earlier runs left cannot change its counts."""
from __future__ import annotations

import difflib
import os
import re
import sqlite3
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def execute(path: Path, folder: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """path -> [(notebook, the secrets its org held), ...] of its two runs, made once per
    module, so the checks below share them."""
    done: dict[Path, list] = {}

    def run(path: Path) -> list:
        if path not in done:
            folder = tmp_path_factory.mktemp(path.stem)
            with pytest.MonkeyPatch.context() as env:
                # The kernel inherits this environment: its local orgs live in `folder`, and
                # no real org's credentials can leak in.
                env.setenv("SFBULK_NB_LOCALORG", str(folder / "org.sqlite3"))
                env.setenv("SFBULK_NB_JOURNAL", str(folder / "journal"))
                env.delenv("SFBULK_NB_PACE", raising=False)
                for name in list(os.environ):
                    if name.startswith("SF_"):
                        env.delenv(name)
                # A fresh org gets new credentials: each run's secrets are read after it.
                done[path] = [(nb, org_secrets(folder)) for nb in
                              (execute(path, folder) for _ in range(2))]
        return done[path]

    return run


def outputs(nb, kind: str) -> list[str]:
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.get("output_type") == "stream":
                found.append(out["text"])
            elif kind in out.get("data", {}):
                found.append(out["data"][kind])
    return found


def org_secrets(folder: Path) -> list[str]:
    """Every token, the password and the client secret of the local org files in a folder."""
    secrets = []
    files = sorted(folder.glob("*.sqlite3"))
    assert files
    for path in files:
        with sqlite3.connect(path) as db:
            tokens = [t for (t,) in db.execute("SELECT token FROM tokens")]
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                                   "('password', 'client_secret')"))
        assert tokens and len(meta) == 2
        secrets += tokens + list(meta.values())
    return secrets


# What may differ from one run to the next: where and when it ran, and how many calls the
# polling took. Counts, statuses, errors and ids (they start over in a fresh org) may not.
MASKS = [
    (re.compile(r"http://127\.0\.0\.1:\d+"), "http://127.0.0.1:PORT"),
    (re.compile(r"\br-\d{8}-\d{6}-[0-9a-f]+\b"), "RUN-ID"),
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "TIME"),
    (re.compile(r"\b\d\d:\d\d(?::\d\d)?\b"), "TIME"),
    # res.jobs: a job's processing time follows its creation time
    (re.compile(r"TIME(\s+)\d+\b"), r"TIME\1N"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|min)\b"), "N s"),
    (re.compile(r"\b[\d,]+ of [\d,]+ API calls"), "N of N API calls"),
    (re.compile(r"\b[\d,]+( (?:API|HTTP) calls| calls\b)"), r"N\1"),
    # Salesforce ids: 15 or 18 letters and digits, some of them digits
    (re.compile(r"\b(?=[0-9A-Za-z]*\d)[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?\b"), "ID"),
]


def shown(nb) -> list[str]:
    """The notebook's text and stream outputs, line by line, masked."""
    lines = []
    for text in outputs(nb, "text/plain") + outputs(nb, "stream"):
        for pattern, mask in MASKS:
            text = pattern.sub(mask, text)
        lines += [" ".join(line.split()) for line in text.splitlines()]
    return lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_twice_without_errors_and_shows_the_same_both_times(path, runs):
    (first, first_secrets), (second, second_secrets) = runs(path)
    for nb, secrets in ((first, first_secrets), (second, second_secrets)):
        errors = [out for cell in nb.cells for out in cell.get("outputs", [])
                  if out.get("output_type") == "error"]
        assert errors == []
        # No secret of the org the kernel used shows in any output or widget state.
        saved = nbformat.writes(nb)
        assert not [secret for secret in secrets if secret in saved]
    before, after = shown(first), shown(second)
    assert before == after, "\n".join(difflib.unified_diff(before, after, "first run",
                                                           "second run", lineterm=""))


def test_quickstart_shows_fresh_results_and_charts(runs):
    nb = runs(NOTEBOOKS[0])[-1][0]  # the second run: on an org the first one filled
    html = "\n".join(outputs(nb, "text/html"))
    assert "BulkResult" in html and "created" in html and "failed" in html
    assert len(outputs(nb, "image/png")) >= 2
    text = "\n".join(outputs(nb, "text/plain"))
    assert "Org LOCAL" in text
    # 2,000 new keys: created, failed or left out, none updated.
    counts = dict(re.findall(r"^(created|updated|failed|invalid)\s+(\d+)$", text, re.M))
    assert counts["updated"] == "0" and int(counts["created"]) > 1900
    assert sum(map(int, counts.values())) == 2000


def test_big_files_checks_the_whole_file_then_streams_it(runs):
    nb = runs(next(p for p in NOTEBOOKS if p.stem == "06_big_files"))[-1][0]
    text = "\n".join(outputs(nb, "text/plain") + outputs(nb, "stream"))
    # One refusal lists every problem of the file (not only its first block's), by line.
    assert "every line of the file was checked" in text
    assert "20,000 rows checked; nothing was sent" in "\n".join(outputs(nb, "text/html"))
    assert "100 rows at lines 257" in text and "rows at lines 22, 23" in text
    assert "NUMBER_ROUNDED" not in text  # "456934.0" keeps its value: no warning
    assert "19,800 created, 50 failed, 150 invalid" in text
    assert len(re.findall(r"updated\s+19800", text)) == 2  # chunks, then the magic's file
    # The panel, not red stderr lines, showed the loads.
    panels = [o for cell in nb.cells for o in cell.get("outputs", [])
              if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(panels) == 5
    assert not any(o.get("name") == "stderr" for cell in nb.cells
                   for o in cell.get("outputs", []))
