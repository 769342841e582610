"""The live panel of a streamed load (sfbulk_nb.stream_panel): in a kernel, upsert_csv
shows it instead of text lines, through checking, sending and the end or a stop."""
from __future__ import annotations

import IPython
import pandas as pd
import pytest

import sfbulk_nb as sfb
from sfbulk_nb import errors
from sfbulk_nb.results import STATUS_COLOURS
from sfbulk_nb.stream_panel import StreamPanel, StreamProgress

KEY = "customExtIdField__c"


class KernelShell:
    kernel = object()


@pytest.fixture
def kernel(monkeypatch):
    """A live kernel as sfbulk_nb sees one; what display() was given."""
    shown = []

    def display(obj):
        obj._repr_mimebundle_()  # rendered, as a frontend would
        shown.append(obj)

    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    monkeypatch.setattr("IPython.display.display", display)
    return shown


def write(path, n: int, bad_line: int | None = None) -> None:
    rows = [f"{KEY},Name,NumberOfEmployees"]
    rows += [f"P{i},Name {i},{'many' if i + 2 == bad_line else i}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")


def snapshot(**changes) -> StreamProgress:
    base = dict(title="upsert Account from a.csv", results="a.results.csv", phase="sending",
                label="line", rows=500, last_label=501, fraction=0.5, jobs_done=1,
                jobs_running=2, counts={"created": 400, "failed": 3}, elapsed=2.5)
    return StreamProgress(**{**base, **changes})


def test_the_panel_renders_each_phase():
    clock = [0.0]
    panel = StreamPanel(min_interval=1, clock=lambda: clock[0])
    panel(snapshot(phase="checking", fraction=0.25))
    assert panel.bar.value == 0.25 and panel.bar.description == "checking ~25%"
    assert "checking every row before sending anything" in panel.line.value
    assert "a.results.csv" in panel.header.value
    clock[0] = 0.5
    panel(snapshot())  # too soon after the last render: skipped
    assert panel.bar.description == "checking ~25%"
    clock[0] = 2
    panel(snapshot())
    assert panel.bar.description == "sending ~50%"
    assert "lines read to 501" in panel.line.value and "1 job done, 2 running" in panel.line.value
    assert "400 created" in panel.line.value and "3 failed" in panel.line.value
    panel(snapshot(phase="done", jobs_running=0), final=True)  # the last one always renders
    assert panel.bar.value == 1 and panel.bar.bar_style == "warning"  # 3 failed
    panel(snapshot(phase="stopped", stop_text="stopped at line 7 <b>"), final=True)
    assert panel.bar.bar_style == "danger" and "stopped at line 7 &lt;b&gt;" in panel.line.value
    # Rows whose outcome is not known are counted, in the colour every display gives them.
    panel(snapshot(phase="done", counts={"created": 10, "unknown": 4}), final=True)
    assert "4 unknown" in panel.line.value and STATUS_COLOURS["unknown"] in panel.line.value
    assert panel.bar.bar_style == "warning"


def test_upsert_csv_in_a_kernel_shows_the_panel_not_text_lines(org, kernel, tmp_path, capsys):
    path = tmp_path / "accounts.csv"
    write(path, 300)
    res = sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org), max_records=100,
                         block_size=2000, sleep=lambda s: None)
    assert res.ok and len(res.jobs) == 3
    assert capsys.readouterr().err == ""  # no stderr lines (a notebook shows them red)
    [panel] = kernel
    assert isinstance(panel, StreamPanel)
    assert panel.bar.description == "done" and panel.bar.bar_style == "success"
    assert "300 created" in panel.line.value and "3 jobs done" in panel.line.value
    assert "lines read to 301" in panel.line.value
    assert "upsert Account from accounts.csv" in panel.header.value


def test_a_file_refused_by_its_check_says_so_on_the_panel(org, kernel, tmp_path):
    path = tmp_path / "accounts.csv"
    write(path, 50, bad_line=40)
    with pytest.raises(errors.ValidationError):
        sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org), block_size=300)
    [panel] = kernel
    assert panel.bar.bar_style == "danger"
    assert "Nothing was sent: the file has problems" in panel.line.value
    assert "lines read to 51" in panel.line.value and "job" not in panel.line.value


def test_a_files_check_alone_ends_checked_with_its_rows_in_error(org, kernel, tmp_path):
    path = tmp_path / "accounts.csv"
    write(path, 50, bad_line=40)
    problems = sfb.validate_csv(path, "Account", KEY, org=sfb.connect(org), block_size=300)
    assert list(problems["row"]) == [40]
    [panel] = kernel
    assert panel.bar.description == "checked" and panel.bar.bar_style == "warning"
    assert "1 row has errors" in panel.line.value and "nothing was sent" in panel.line.value
    assert "lines read to 51" in panel.line.value
    assert "nothing is sent" in panel.header.value and "results in" not in panel.header.value
    kernel.clear()
    write(path, 20)
    assert len(sfb.validate_csv(path, "Account", KEY, org=sfb.connect(org))) == 0
    [panel] = kernel
    assert panel.bar.bar_style == "success" and "no errors" in panel.line.value


def test_an_iterable_of_frames_counts_rows(org, kernel):
    frames = (pd.DataFrame({KEY: [f"F{i}-{k}" for k in range(50)], "Name": "n"})
              for i in range(3))
    res = sfb.upsert_df(frames, "Account", KEY, org=sfb.connect(org), sleep=lambda s: None)
    assert res.ok
    [panel] = kernel
    assert "150 rows" in panel.line.value and panel.bar.description == "done"
    res.path.unlink()


def test_progress_false_or_text_shows_no_panel(org, kernel, tmp_path, capsys):
    path = tmp_path / "accounts.csv"
    write(path, 10)
    sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org), progress="text")
    assert kernel == [] and "job 1" in capsys.readouterr().err


def test_ctrl_c_during_a_streamed_load_leaves_the_panel_saying_where_it_stopped(
        org, kernel, tmp_path, monkeypatch):
    path = tmp_path / "accounts.csv"
    write(path, 300)
    calls = []
    render = StreamPanel.__call__

    def interrupting(self, p, final=False):
        calls.append(p.phase)
        if calls.count(phase) == 3 and not final:  # Ctrl-C lands in the main thread, here
            raise KeyboardInterrupt
        render(self, p, final)

    monkeypatch.setattr(StreamPanel, "__call__", interrupting)
    phase = "checking"  # nothing sent yet
    with pytest.raises(KeyboardInterrupt, match=r"while checking the file \(at line \d+\): "
                       "nothing was sent"):
        sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org), block_size=400)
    assert kernel[0].bar.bar_style == "danger" and "Nothing was sent" in kernel[0].line.value
    calls.clear()
    with pytest.raises(KeyboardInterrupt, match=r"while checking the file \(at line \d+\): "
                       "nothing was sent"):  # a check alone says the same
        sfb.validate_csv(path, "Account", KEY, org=sfb.connect(org), block_size=400)
    assert kernel[1].bar.bar_style == "danger" and "Nothing was sent" in kernel[1].line.value
    del kernel[1]
    calls.clear()
    phase = "sending"
    with pytest.raises(KeyboardInterrupt, match="start_line="):
        sfb.upsert_csv(path, "Account", KEY, org=sfb.connect(org), max_records=20,
                       block_size=400, parallel=1, sleep=lambda s: None)
    panel = kernel[1]
    assert panel.bar.description == "stopped" and panel.bar.bar_style == "danger"
    assert "start_line=" in panel.line.value and "interrupted" in panel.line.value
