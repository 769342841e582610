"""A load in a live kernel, driven as a notebook front end drives it: the panel's Abort
button clicked while the cell still runs, and the kernel interrupted mid-run."""
from __future__ import annotations

import os
import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

from sfbulk_nb.localorg import LocalOrg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP = """
import pandas as pd, sfbulk_nb as sfb
org = sfb.connect(instance_url={url!r}, access_token={token!r}, api_version="66.0")
df = pd.DataFrame({{"Name": [f"K{{i:05d}}" for i in range(3000)]}})
"""


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", ROOT)
    monkeypatch.setenv("SFBULK_NB_JOURNAL", str(tmp_path / "journal"))
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_cell(kc, code: str, timeout: float = 120) -> dict:
    """Execute ``code`` and wait for its reply; returns the reply content."""
    msg_id = kc.execute(code)
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"]


def output_text(kc, msg_id_prefix=None, timeout=1.0) -> str:
    text = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return "".join(text)
        content = msg["content"]
        if msg["msg_type"] == "stream":
            text.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            text.append("\n".join(content["traceback"]))


def test_abort_works_while_the_cell_still_waits(kernel, tmp_path):
    km, kc = kernel
    with LocalOrg(tmp_path / "o.sqlite3", pace=600) as local:
        assert run_cell(kc, SETUP.format(url=local.instance_url,
                                         token=local.access_token))["status"] == "ok"
        output_text(kc)
        msg_id = kc.execute("res = sfb.insert_df(df, 'Account', max_records=1000)\n"
                            "print('returned', res.counts.to_dict())")
        # Find the panel's Abort button among the widgets the cell opens, and click it as
        # the browser would, while the cell is still running.
        button, deadline = None, time.monotonic() + 60
        while button is None and time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "comm_open":
                state = msg["content"]["data"].get("state", {})
                if state.get("_model_name") == "ButtonModel" and state.get("description") == "Abort":
                    button = msg["content"]["comm_id"]
        assert button is not None
        time.sleep(1.0)  # the first job is processing, the others queued
        kc.session.send(kc.shell_channel.socket, "comm_msg",
                        {"comm_id": button, "data": {"method": "custom",
                                                     "content": {"event": "click"}}})
        text = []
        while True:
            msg = kc.get_iopub_msg(timeout=120)
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id):
                break
        printed = "".join(text)
        assert "returned" in printed, printed
        states = [j["state"] for j in local.store.list_jobs("ingest", 0, 100, {})]
        assert "Aborted" in states
        # Not every row was written, and the result says which were not.
        written = local.store.count_records(local.catalog.get("Account"))
        assert written < 3000
        reply = run_cell(kc, "assert (res.frame['sf_status'] == 'created').sum() == "
                             f"{written}, res.counts")
        assert reply["status"] == "ok", reply


def test_an_interrupted_run_keeps_going_and_is_reachable(kernel, tmp_path):
    km, kc = kernel
    with LocalOrg(tmp_path / "o.sqlite3", pace=1500) as local:
        assert run_cell(kc, SETUP.format(url=local.instance_url,
                                         token=local.access_token))["status"] == "ok"
        output_text(kc)
        msg_id = kc.execute("sfb.insert_df(df, 'Account', max_records=1000, progress='text')")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the jobs are closed (text progress says)
            msg = kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "stream" and "UploadComplete" in msg["content"]["text"]:
                break
        km.interrupt_kernel()
        error = None
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["msg_type"] == "error":
                error = "\n".join(msg["content"]["traceback"])
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id):
                break
        assert error is not None and "KeyboardInterrupt" in error
        assert "sfb.last_result()" in error and "Still running in the org" in error
        reply = run_cell(kc, "res = sfb.last_result(); res.wait()\n"
                             "assert res.done and res.counts['created'] + res.counts['not_sent']"
                             " == 3000, res.counts\n"
                             "assert res.counts['created'] > 0\n"
                             "print(res.counts.to_dict())")
        assert reply["status"] == "ok", reply
        written = local.store.count_records(local.catalog.get("Account"))
        reply = run_cell(kc, f"assert res.counts['created'] == {written}")
        assert reply["status"] == "ok", reply
