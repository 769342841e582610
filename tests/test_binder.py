"""The binder files do what repo2docker will run: install, seed the org, start paced."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BINDER = Path(__file__).resolve().parents[1] / "binder"


def test_requirements_install_the_package_itself():
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == ["."]


def test_post_build_runs_the_demo_into_its_own_local_org(tmp_path):
    # the console script sits next to this interpreter, as it does on binder's PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "HOME": str(tmp_path), "PATH": path}
    env.pop("SFBULK_NB_LOCALORG", None)
    done = subprocess.run(["bash", str(BINDER / "postBuild")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".sfbulk_nb" / "localorg-demo.sqlite3").exists()
    assert "1,000 sample accounts" in done.stdout and "a fresh local org 'demo'" in done.stdout


def test_start_sets_the_org_and_pace_then_runs_the_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SFBULK_NB_PACE"}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(["bash", str(BINDER / "start"), "bash", "-c",
                           "echo $SFBULK_NB_LOCALORG $SFBULK_NB_PACE"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == [f"{tmp_path}/.sfbulk_nb/localorg.sqlite3", "2000"]
