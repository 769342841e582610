"""Drive a notebook in a real JupyterLab with Debian's chromium, offline (Playwright).

The recipe is /work/shared/browser-testing.md: a JupyterLab on 127.0.0.1 in a process group
of its own (its kernels die with it), a headless chromium whose every non-local request is
aborted and recorded, Run > Run All Cells once the kernel is really idle, and a sampler in
the page that records what the run panel shows every 50 ms.

Every wait is bounded; on a failure the page's PNG, HTML and console are kept next to the
screenshot that was asked for (`<name>.fail.png` ...).
"""
from __future__ import annotations

import contextlib

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import urlopen

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
VIEWPORT = {"width": 1280, "height": 1150}

# The two user settings that keep Lab quiet and complete: no news toast over the outputs,
# every cell attached to the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# Samples every run panel (`.sfbulk-run`) every 50 ms into window.__panelTimeline, keeping
# a sample only when what it shows changed.
SAMPLER = r"""
(() => {
  // A bar (.sfbulk-bar) as the widths in % of its segments: succeeded, failed, left
  // unprocessed; width is their sum (the part of the track that is filled).
  const bar = (el) => {
    const b = el && el.querySelector('.sfbulk-bar');
    if (!b) return null;
    const w = (cls) => parseFloat((b.querySelector('.' + cls) || {style: {}}).style.width || '0');
    const ok = w('sfbulk-seg-ok'), failed = w('sfbulk-seg-failed'), left = w('sfbulk-seg-left');
    return {ok, failed, left, width: ok + failed + left};
  };
  // A job row is display:contents (its cells sit in the panel's grid): its text is its
  // cells' texts, joined.
  const cells = (row) => Array.from(row.children).map((c) => c.innerText.trim())
    .filter((t) => t).join(' | ');
  window.__panelSnapshot = () => Array.from(document.querySelectorAll('.sfbulk-run'))
    .filter((run) => run.offsetParent !== null)
    .map((run) => {
      const overall = run.querySelector('.sfbulk-overall');
      const data = overall && overall.querySelector('[data-percent]');
      const lefts = Array.from(run.querySelectorAll('.sfbulk-job .sfbulk-bar'))
        .map((b) => Math.round(b.getBoundingClientRect().left));
      return {
        text: run.innerText,
        overall: bar(overall),
        overallText: ((overall && overall.querySelector('.sfbulk-overall-text')) || {}).innerText,
        percent: data ? parseFloat(data.getAttribute('data-percent')) : null,
        status: data ? data.getAttribute('data-status') : null,
        errors: Array.from(run.querySelectorAll('.sfbulk-error')).map((e) => e.innerText),
        // Layout: what overflows the panel sideways, and where each job's bar starts.
        overflow: run.scrollWidth - run.clientWidth,
        barLefts: Array.from(new Set(lefts)),
        abort: Array.from(run.querySelectorAll('button'))
          .filter((b) => b.offsetParent !== null).map((b) => b.innerText.trim()),
        jobs: Array.from(run.querySelectorAll('.sfbulk-job')).map((job) => {
          const st = job.querySelector('.sfbulk-state [data-state]');
          const cur = job.querySelector('.sfbulk-state .sfbulk-current');
          return {state: st ? st.getAttribute('data-state') : null,
                  current: cur ? cur.textContent.trim() : null,
                  bar: bar(job), text: cells(job),
                  // cells whose text does not fit (cut with an ellipsis)
                  clipped: Array.from(job.children)
                    .filter((c) => c.scrollWidth > c.clientWidth + 1)
                    .map((c) => c.innerText.trim())};
        }),
      };
    });
  window.__panelTimeline = [];
  const t0 = performance.now();
  let last = '';
  setInterval(() => {
    const panels = window.__panelSnapshot();
    if (!panels.length) return;
    const key = JSON.stringify(panels);
    if (key !== last) {
      last = key;
      window.__panelTimeline.push({t: Math.round(performance.now() - t0), panels});
    }
  }, 50);
})();
"""

# A widget that did not render: its JS module failed ("Click to show javascript error." in
# ipywidgets 8 / Lab 4, "Error displaying widget" in ipywidgets 7), or only its text/plain
# repr shows (an output made elsewhere, a missing widget manager).
BROKEN_TEXT = ("Click to show javascript error", "Error displaying widget",
               "Error rendering output")
PLAIN_REPR = re.compile(r"^(?:[A-Z]\w*\((?:children|value|description|layout|options)="
                        r"|<RunPanel\b)")

_PROBLEMS_JS = r"""
(args) => {
  const [broken, plain] = args;
  const re = new RegExp(plain);
  const out = [];
  const body = document.body.innerText;
  for (const b of broken) if (body.includes(b)) out.push('text: ' + b);
  document.querySelectorAll('.jp-OutputArea-output').forEach((o) => {
    const t = o.innerText.trim();
    if (re.test(t)) out.push('plain repr: ' + t.slice(0, 120));
    if (o.querySelector('[data-mime-type="application/vnd.jupyter.error"]')
        || /Traceback \(most recent call last\)|^\w+Error: /m.test(t))
      out.push('error output: ' + t.slice(0, 200));
  });
  return out;
}
"""

_KERNEL_IDLE_JS = r"""
() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem')).some((e) => {
  const t = e.textContent.trim();
  return !t.startsWith('No Kernel') && /\|\s*Idle$/.test(t);
})
"""

_ALL_CELLS_DONE_JS = r"""
() => {
  const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-InputPrompt'));
  return prompts.length > 0 && !prompts.some((p) => p.textContent.includes('[*]'));
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SF_* variable (no real org can be reached),
    plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SF_")}
    env.update(extra)
    return env


@contextmanager
def jupyter_lab(root: Path, work: Path, env: dict[str, str], *,
                start_timeout: float = 90) -> Iterator[str]:
    """A JupyterLab serving `root` on 127.0.0.1: yields its base URL; stops its process
    group (the server and its kernels) on exit. `work` holds its config, data, runtime,
    settings and log (`lab.log`)."""
    settings = work / "lab-user-settings"
    for name, values in LAB_SETTINGS.items():
        f = settings / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env = dict(env, JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_DATA_DIR=str(work / "data"),
               JUPYTER_RUNTIME_DIR=str(work / "runtime"), IPYTHONDIR=str(work / "ipython"))
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--PasswordIdentityProvider.hashed_password=",
           f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class="
           "jupyterlab.handlers.announcements.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly",
           f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={work / 'lab-workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = work / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            try:
                with urlopen(f"{base}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except (URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab not ready after {start_timeout:.0f} s:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session), SIGKILL after
    `grace` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the kernels too, should any outlive the server
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def browser_page(timeout_s: float = 60) -> Iterator[Any]:
    """A fresh headless chromium page; `page.external_requests` lists every request to a
    host other than this machine (all aborted), `page.console` the console lines."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS, timeout=timeout_s * 1000)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.external_requests = []
            page.console = []

            def route(r):
                url = r.request.url
                host = urlsplit(url).hostname or ""
                if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                    r.continue_()
                else:
                    page.external_requests.append(url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: page.console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: page.console.append(f"pageerror: {e}"))
            page.add_init_script(SAMPLER)
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def failure_kept(page: Any, out: Path) -> Iterator[None]:
    """Around a test's steps in the page: on a failure, what the page showed is kept
    (keep_failure); the console lines always, beside ``out`` (console.txt)."""
    try:
        yield
    except Exception:
        keep_failure(page, out)
        raise
    finally:
        (out.parent / "console.txt").write_text("\n".join(page.console))


def keep_failure(page: Any, out: Path) -> None:
    """Save what the page showed when something went wrong: PNG, HTML and console."""
    stem = out.with_suffix("")
    try:
        page.screenshot(path=f"{stem}.fail.png")
        Path(f"{stem}.fail.html").write_text(page.content())
    except Exception:  # the page may be gone; the console may still help
        pass
    Path(f"{stem}.fail.console.txt").write_text("\n".join(page.console))


def open_notebook(page: Any, base: str, notebook: str) -> None:
    """Open `notebook` in Lab (ignoring any saved layout), wait until its kernel is really
    idle (not the idle before any kernel exists), and make room: sidebar collapsed."""
    page.goto(f"{base}/lab/tree/{notebook}?reset", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible")
    page.wait_for_function(_KERNEL_IDLE_JS, polling=100)
    # Select the first cell, in command mode (keys act on cells, not on an editor).
    page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
    page.keyboard.press("Escape")
    if page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").count():
        page.keyboard.press("Control+b")


def run_menu(page: Any, item: str = "Run All Cells") -> None:
    """Run > `item` from Lab's menu bar (Run All Cells has no default shortcut)."""
    page.locator(".lm-MenuBar-itemLabel:text-is('Run')").click()
    page.locator(f".lm-Menu-itemLabel:text-is('{item}')").click()


def wait_finished(page: Any, finished_states: tuple[str, ...], jobs: int) -> None:
    """Until a run panel shows `jobs` job rows, all in a finished state; then until every
    cell has run and the kernel is idle again."""
    page.wait_for_function(
        """([done, jobs]) => {
             const s = window.__panelSnapshot ? window.__panelSnapshot() : [];
             return s.length > 0 && s[s.length - 1].jobs.length === jobs
               && s[s.length - 1].jobs.every((j) => done.includes(j.state));
           }""", arg=[list(finished_states), jobs], polling=50)
    page.wait_for_function(_ALL_CELLS_DONE_JS, polling=100)
    page.wait_for_function(_KERNEL_IDLE_JS, polling=100)


def wait_all_cells_done(page: Any) -> None:
    """Until every cell has run and the kernel is idle again."""
    page.wait_for_function(_ALL_CELLS_DONE_JS, polling=100)
    page.wait_for_function(_KERNEL_IDLE_JS, polling=100)


def wait_for_state(page: Any, state: str) -> None:
    page.wait_for_function(
        """(state) => (window.__panelSnapshot ? window.__panelSnapshot() : [])
             .some((r) => r.jobs.some((j) => j.state === state))""",
        arg=state, polling=50)


def widget_problems(page: Any) -> list[str]:
    """Broken-widget markers on the page (empty when every widget rendered)."""
    return page.evaluate(_PROBLEMS_JS, [list(BROKEN_TEXT), PLAIN_REPR.pattern])


def overflowing_outputs(page: Any) -> list[str]:
    """Outputs holding an sfbulk_nb display (panel, card, table) that are wider than the
    notebook shows: each as the start of its text and by how many pixels. A table wider
    than its output scrolls inside its own box, so its output does not overflow."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .filter((o) => o.querySelector(
            '.sfbulk-run, .sfbulk-result, .sfbulk-table, .sfbulk-preview, .sfbulk-undo, '
            + '.sfbulk-stream'))
        .concat(Array.from(document.querySelectorAll(
            '.sfbulk-run, .sfbulk-result, .sfbulk-preview, .sfbulk-undo, .sfbulk-stream')))
        .filter((o) => o.scrollWidth > o.clientWidth + 1)
        .map((o) => `${o.className}: ${o.scrollWidth - o.clientWidth}px: `
                    + o.innerText.slice(0, 60))""")


def panels(page: Any) -> list[dict]:
    return page.evaluate("() => window.__panelSnapshot()")


def timeline(page: Any) -> list[dict]:
    return page.evaluate("() => window.__panelTimeline")


def output_texts(page: Any) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
                              .map((o) => o.innerText)""")


def states_seen(samples: list[dict], job: int, panel: int = 0) -> list[str]:
    """The de-duplicated sequence of states job `job` showed in the sampled timeline."""
    seen: list[str] = []
    for sample in samples:
        runs = sample["panels"]
        if panel < len(runs) and job < len(runs[panel]["jobs"]):
            state = runs[panel]["jobs"][job]["state"]
            if state and (not seen or seen[-1] != state):
                seen.append(state)
    return seen
