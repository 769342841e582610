"""Charts of a bulk run (sfbulk_nb.plots), drawn from literal frames shaped like a
BulkResult's: what is drawn (bars, labels, colours, segments, lines), not pixels, plus a
PNG render of each figure."""
from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from IPython.core.formatters import DisplayFormatter  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sfbulk_nb import plots  # noqa: E402
from sfbulk_nb.results import ALIGN_COLUMNS, STATUS_COLOURS, count_statuses, summarize_errors  # noqa: E402

NOTES = Path("/work/notes")
GREEN, RED, AMBER, GREY = "#1a7f37", "#cf222e", "#9a6700", "#57606a"
T0 = 1_760_000_000.0
JOB_A, JOB_B, JOB_C = "750xx000000001AAAA", "750xx000000002AAAA", "750xx000000003AAAA"

# (status, code, message, fields, job) per row: 8 created, 5 updated, 6 failed in three
# groups, 2 unprocessed (job C failed), 1 not sent.
ROWS = (
    [("created", None, None, None, JOB_A)] * 8
    + [("updated", None, None, None, JOB_A)] * 5
    + [("failed", "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name", JOB_A)] * 3
    + [("failed", "INVALID_EMAIL_ADDRESS", "invalid email address: x", "Email__c", JOB_B)] * 2
    + [("failed", "DUPLICATE_VALUE", "duplicate value found", "", JOB_B)]
    + [("unprocessed", None, None, None, JOB_C)] * 2
    + [("not_sent", None, None, None, None)]
)


def aligned(rows=ROWS) -> pd.DataFrame:
    index = pd.Index([f"r{i}" for i in range(len(rows))], name="row")
    status = pd.DataFrame(
        {
            "sf_id": [None] * len(rows),
            "sf_status": [r[0] for r in rows],
            "sf_error_code": [r[1] for r in rows],
            "sf_error_message": [r[2] for r in rows],
            "sf_error_fields": [r[3] for r in rows],
            "sf_job_id": [r[4] for r in rows],
        },
        index=index,
    ).astype("string")
    assert tuple(status.columns) == ALIGN_COLUMNS
    data = pd.DataFrame({"Name": [f"n{i}" for i in range(len(rows))]}, index=index)
    return pd.concat([data, status], axis=1)


TIMELINE = pd.DataFrame(
    {
        "job_id": [JOB_A, JOB_B, JOB_A, JOB_B, JOB_A, JOB_C, JOB_B, JOB_A, JOB_C, JOB_B, JOB_C],
        "chunk": [0, 1, 0, 1, 0, 2, 1, 0, 2, 1, 2],
        "state": ["Open", "Open", "UploadComplete", "UploadComplete", "InProgress", "Open",
                  "InProgress", "JobComplete", "UploadComplete", "JobComplete", "Failed"],
        "at": T0 + np.array([0.0, 0.2, 1.0, 1.3, 2.0, 2.5, 3.0, 6.0, 3.5, 8.0, 9.0]),
    }
)

PROGRESS = pd.DataFrame(
    {
        "job_id": [JOB_A, JOB_B, JOB_A, JOB_B, JOB_A, JOB_B, JOB_C],
        "at": T0 + np.array([2.5, 3.5, 4.5, 5.5, 6.0, 8.0, 9.0]),
        "processed": [4, 0, 10, 2, 16, 3, 0],
        "failed": [1, 0, 2, 1, 3, 3, 0],
    }
)


def result(frame=None, timeline=TIMELINE, progress=PROGRESS) -> SimpleNamespace:
    """What the charts read of a BulkResult, built the way BulkResult builds it."""
    frame = aligned() if frame is None else frame
    jobs = pd.DataFrame({"job_id": [JOB_A, JOB_B, JOB_C], "state": ["JobComplete", "JobComplete", "Failed"],
                         "rows": [16, 3, 2]})
    return SimpleNamespace(frame=frame, counts=count_statuses(frame), errors=summarize_errors(frame),
                           jobs=jobs, timeline=timeline, progress_log=progress)


@pytest.fixture
def ax():
    fig = Figure(figsize=(8, 5), layout="constrained")
    return fig.add_subplot()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def png(fig, dpi=80) -> bytes:
    """Render the figure; fail unless the image has real content."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    assert data.startswith(b"\x89PNG") and len(data) > 5_000
    pixels = mpimg.imread(io.BytesIO(data))
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10
    return data


def ytick_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def top_to_bottom(ax):
    """The bars in the order a reader sees them."""
    return sorted(ax.patches, key=lambda p: p.get_y())[:: 1 if ax.yaxis_inverted() else -1]


# ----------------------------------------------------------------------- outcomes


def inside_figure(ax) -> bool:
    """Every text of the axes (bar labels, tick labels) lies within its figure."""
    fig = ax.figure
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out
    renderer = canvas.get_renderer()
    box = fig.bbox
    texts = list(ax.texts) + ax.get_yticklabels() + ax.get_xticklabels()
    return all(box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1
               for e in (t.get_window_extent(renderer) for t in texts if t.get_text()))


def test_outcomes_bars_are_the_counts_in_status_order(ax):
    chart = plots.outcomes(result(), ax=ax)
    assert chart.axes is ax
    bars = top_to_bottom(ax)
    assert [b.get_width() for b in bars] == [8, 5, 6, 2, 1]
    assert ytick_labels(ax) == ["created", "updated", "failed", "unprocessed", "not_sent"]
    assert ax.yaxis_inverted()  # first status at the top
    assert [to_hex(b.get_facecolor()) for b in bars] == [GREEN, GREEN, RED, AMBER, AMBER]
    assert [t.get_text() for t in ax.texts] == ["8 (36%)", "5 (23%)", "6 (27%)", "2 (9%)", "1 (5%)"]
    assert ax.get_title() == "Row outcomes (22 rows)"
    assert ax.get_xlabel() == "rows"
    # the axis ends at the longest bar; its label sits beside it, inside the figure
    assert ax.get_xlim() == (0, 8)
    assert inside_figure(ax)
    png(ax.figure)


def test_outcomes_show_invalid_and_unknown_in_their_colours(ax):
    rows = ([("created", None, None, None, JOB_A)] * 3
            + [("invalid", "STRING_TOO_LONG", "Name: 'x' is longer", "Name", None)] * 2
            + [("unknown", None, None, None, JOB_A)])
    plots.outcomes(aligned(rows), ax=ax)
    assert ytick_labels(ax) == ["created", "invalid", "unknown"]
    assert [to_hex(b.get_facecolor()) for b in top_to_bottom(ax)] == [
        STATUS_COLOURS["created"], STATUS_COLOURS["invalid"], STATUS_COLOURS["unknown"]]
    assert [t.get_text() for t in ax.texts] == ["3 (50%)", "2 (33%)", "1 (17%)"]
    assert ax.get_title() == "Row outcomes (6 rows)"


def test_outcomes_takes_counts_or_an_aligned_frame():
    frame = aligned()
    a = plots.outcomes(frame)
    b = plots.outcomes(count_statuses(frame))
    assert isinstance(a.figure, Figure) and a.figure is not b.figure
    assert [p.get_width() for p in a.patches] == [p.get_width() for p in b.patches]
    pending = pd.Series({"pending": 1_500, "created": 3}, name="rows")
    c = plots.outcomes(pending)
    assert ytick_labels(c) == ["created", "pending"]
    assert [t.get_text() for t in c.texts] == ["3 (<1%)", "1,500 (>99%)"]
    assert to_hex(top_to_bottom(c)[1].get_facecolor()) == GREY
    one = plots.outcomes(pd.Series({"created": 1}))
    assert one.get_title() == "Row outcomes (1 row)"


def test_percentages_add_up_to_100():
    percents = plots._percents
    assert percents([8, 5, 6, 2, 1]) == ["36%", "23%", "27%", "9%", "5%"]
    assert percents([1, 1, 1]) == ["34%", "33%", "33%"]  # ties: the first gets the point
    assert percents([1] * 7) == ["15%"] * 2 + ["14%"] * 5
    assert percents([5]) == ["100%"]
    # a share rounded to 0 or 100 that is not says so
    assert percents([2271, 7, 700, 22]) == ["76%", "<1%", "23%", "1%"]
    assert percents([1500, 3]) == [">99%", "<1%"]


def test_outcomes_refuses_what_is_not_a_result():
    with pytest.raises(ValueError, match="statuses"):
        plots.outcomes(pd.Series({"ok": 3}))
    with pytest.raises(TypeError, match="BulkResult"):
        plots.outcomes(42)


def test_outcomes_of_nothing_says_so(ax):
    plots.outcomes(aligned(rows=[]), ax=ax)
    assert not ax.patches
    assert [t.get_text() for t in ax.texts] == ["no rows"]


# ------------------------------------------------------------------------- errors


def test_errors_by_code_largest_first_with_fields(ax):
    assert plots.errors_by_code(result(), ax=ax).axes is ax
    assert ytick_labels(ax) == ["REQUIRED_FIELD_MISSING [Name]", "INVALID_EMAIL_ADDRESS [Email__c]",
                                "DUPLICATE_VALUE"]
    bars = top_to_bottom(ax)
    assert [b.get_width() for b in bars] == [3, 2, 1]
    assert {to_hex(b.get_facecolor()) for b in bars} == {RED}
    assert [t.get_text() for t in ax.texts] == ["3 failed (50%)", "2 failed (33%)", "1 failed (17%)"]
    assert ax.get_title() == "Rows with errors"
    assert ax.get_xlabel() == "rows"
    assert ax.get_xlim() == (0, 3)
    assert inside_figure(ax)
    png(ax.figure)


def test_errors_group_by_status_code_and_fields_across_messages(ax):
    # Messages that name the record differ row by row; the chart counts the code.
    rows = [("failed", "DUPLICATE_VALUE", f"duplicate value found: id {i}", "Email__c", JOB_A) for i in range(4)]
    rows += [("failed", "DUPLICATE_VALUE", "duplicate value found", "Phone", JOB_A)] * 5
    rows += [("invalid", "DUPLICATE_VALUE", "Phone: 'x' is in 2 rows", "Phone", None)] * 2
    rows += [("unprocessed", "JOB_FAILED", "InvalidBatch : outage", None, JOB_B)] * 6
    rows += [("failed", None, "Upsert failed. First exception on row 0", None, JOB_A)]
    plots.errors_by_code(aligned(rows), ax=ax)
    assert ytick_labels(ax) == ["JOB_FAILED", "DUPLICATE_VALUE [Phone]", "DUPLICATE_VALUE [Email__c]",
                                "DUPLICATE_VALUE [Phone]", "Upsert failed. First exception on row 0"]
    bars = top_to_bottom(ax)
    assert [b.get_width() for b in bars] == [6, 5, 4, 2, 1]
    assert [to_hex(b.get_facecolor()) for b in bars] == [AMBER, RED, RED, RED, RED]
    assert [t.get_text() for t in ax.texts] == ["6 unprocessed (33%)", "5 failed (28%)",
                                                "4 failed (22%)", "2 invalid (11%)", "1 failed (6%)"]


def test_errors_chart_needs_the_status_of_each_group():
    with pytest.raises(ValueError, match="missing \\['status'\\]"):
        plots.errors_by_code(summarize_errors(aligned()).drop(columns="status"))


def test_errors_top_n_and_the_rest_in_the_axis_label(ax):
    rows = []
    for i in range(14):
        rows += [("failed", f"CODE_{i:02d}", "m", "F", JOB_A)] * (20 - i)
    plots.errors_by_code(aligned(rows), ax=ax, top=10)
    assert len(ax.patches) == 10
    assert ytick_labels(ax)[0] == "CODE_00 [F]" and ytick_labels(ax)[-1] == "CODE_09 [F]"
    assert [b.get_width() for b in top_to_bottom(ax)] == list(range(20, 10, -1))
    assert ax.get_title() == "Rows with errors (top 10 of 14 kinds)"
    assert ax.get_xlabel() == "rows (+34 in 4 more kinds)"
    plots.errors_by_code(aligned(rows[:-7]), ax=ax.figure.add_subplot(2, 1, 2), top=12)
    assert ax.figure.axes[-1].get_xlabel() == "rows (+8 in 1 more kind)"


def test_error_labels_are_cut_sensibly():
    label = plots._error_label
    assert label("REQUIRED_FIELD_MISSING", "Name") == "REQUIRED_FIELD_MISSING [Name]"
    assert label("REQUIRED_FIELD_MISSING", "") == "REQUIRED_FIELD_MISSING"
    many = "BillingStreet,BillingCity,BillingPostalCode,BillingCountry"
    assert label("REQUIRED_FIELD_MISSING", many) == "REQUIRED_FIELD_MISSING [BillingStreet, +3]"
    long_code = "FIELD_CUSTOM_VALIDATION_EXCEPTION_WITH_A_VERY_LONG_NAME"
    cut = label(long_code, many)
    assert len(cut) <= plots.LABEL_WIDTH and cut.endswith("[BillingStreet, +3]") and "…" in cut
    message = "Upsert failed. " + "x" * 100
    assert len(label(message, "")) == plots.LABEL_WIDTH and label(message, "").endswith("…")


def test_no_errors_is_said_not_drawn(ax):
    clean = aligned([("created", None, None, None, JOB_A)] * 3)
    for data in (result(clean), clean, summarize_errors(clean)):
        ax.clear()
        plots.errors_by_code(data, ax=ax)
        assert not ax.patches
        assert [t.get_text() for t in ax.texts] == ["no errors"]
        assert ax.get_title() == "Rows with errors"
        assert not ax.get_xticks().size and not ax.get_yticks().size
    png(ax.figure)


# ----------------------------------------------------------------------- timeline


def segments(ax) -> list[list[tuple[float, float, str]]]:
    """Per job row, top to bottom: (start, width, colour) of each segment."""
    rows = []
    for coll in sorted(ax.collections, key=lambda c: c.get_paths()[0].vertices[:, 1].min()):
        colours = [to_hex(c) for c in coll.get_facecolors()]
        spans = [(p.vertices[:, 0].min(), np.ptp(p.vertices[:, 0])) for p in coll.get_paths()]
        rows.append([(round(s, 6), round(w, 6), c) for (s, w), c in zip(spans, colours)])
    return rows


def final_states(ax) -> list[tuple[float, float, str]]:
    """(time, job row, colour) of each final-state marker."""
    return [(float(m.get_xdata()[0]), float(m.get_ydata()[0]), to_hex(m.get_color()))
            for m in ax.get_lines() if m.get_marker() == "D"]


def test_timeline_one_row_per_job_one_segment_per_state(ax):
    assert plots.job_timeline(result(), ax=ax).axes is ax
    rows = segments(ax)
    assert [len(r) for r in rows] == [3, 3, 2]
    a, b, c = rows
    assert a == [(0.0, 1.0, plots.STATE_COLOURS["Open"]), (1.0, 1.0, GREY),
                 (2.0, 4.0, plots.STATE_COLOURS["InProgress"])]
    assert b[0][:2] == (0.2, 1.1) and b[-1][:2] == (3.0, 5.0)
    assert [s[2] for s in c] == [plots.STATE_COLOURS["Open"], GREY]
    # the final state is a moment: a marker that shows however short the run, not clipped
    # at the right edge where the axis ends
    assert final_states(ax) == [(6.0, 0.0, GREEN), (8.0, 1.0, GREEN), (9.0, 2.0, RED)]
    assert not any(m.get_clip_on() for m in ax.get_lines())
    assert ax.get_xlim() == (0, 9.0)
    assert ytick_labels(ax) == ["#1", "#2", "#3"]
    assert ax.get_ylabel() == "job"
    assert ax.get_title() == "Job states over time"
    assert ax.get_xlabel() == "seconds since start"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Open", "UploadComplete", "InProgress", "JobComplete", "Failed"]
    png(ax.figure)


def test_timeline_of_jobs_seen_only_when_done(ax):
    # A fast org: the job is seen Open, then already JobComplete, the last event of the
    # run, where the axis ends; its final state still shows.
    done = pd.DataFrame({"job_id": [JOB_A, JOB_A], "chunk": [0, 0], "state": ["Open", "JobComplete"],
                         "at": [T0, T0 + 0.5]})
    plots.job_timeline(done, ax=ax)
    assert segments(ax) == [[(0.0, 0.5, plots.STATE_COLOURS["Open"])]]
    assert final_states(ax) == [(0.5, 0.0, GREEN)]
    assert ax.get_xlim() == (0, 0.5)


def test_timeline_from_a_frame_orders_jobs_by_chunk_and_stretches_running_jobs(ax):
    shuffled = TIMELINE.sample(frac=1, random_state=3)
    # job C is still open when the timeline was taken; a repeated state is drawn once
    running = shuffled[shuffled["state"] != "Failed"]
    running = pd.concat([running, running[running["state"] == "Open"].head(1)])
    plots.job_timeline(running, ax=ax)
    rows = segments(ax)
    assert [len(r) for r in rows] == [3, 3, 2]
    # its last state runs to the last event of the timeline (8 s)
    assert rows[2][-1][:2] == (3.5, 4.5)
    assert [y for _, y, _ in final_states(ax)] == [0.0, 1.0]


def test_timeline_without_chunks_or_events():
    frame = TIMELINE.drop(columns="chunk")
    ax = plots.job_timeline(frame)
    assert ytick_labels(ax) == ["#1", "#2", "#3"]  # in order of their first event
    assert final_states(ax)[0][:2] == (6.0, 0.0)
    empty = plots.job_timeline(result(timeline=TIMELINE.iloc[:0]))
    assert [t.get_text() for t in empty.texts] == ["no job timeline recorded"]
    older = SimpleNamespace(counts=count_statuses(aligned()))  # a result without a timeline
    assert [t.get_text() for t in plots.job_timeline(older).texts] == ["no job timeline recorded"]
    with pytest.raises(ValueError, match="missing \\['state'\\]"):
        plots.job_timeline(TIMELINE.drop(columns="state"))


def test_timeline_thins_tick_labels_of_many_jobs(ax):
    n = 75
    many = pd.DataFrame({"job_id": [f"750{i:015d}" for i in range(n)] * 2, "chunk": list(range(n)) * 2,
                         "state": ["InProgress"] * n + ["JobComplete"] * n,
                         "at": T0 + np.r_[np.arange(n), np.arange(n) + 5.0]})
    plots.job_timeline(many, ax=ax)
    assert len(ax.collections) == n
    assert len(ax.get_yticks()) <= plots.MAX_JOB_TICKS
    assert ytick_labels(ax)[:2] == ["#1", "#4"]


# --------------------------------------------------------------------- throughput


def test_throughput_sums_the_latest_counter_of_each_job(ax):
    assert plots.throughput(result(), ax=ax).axes is ax
    processed, failed = ax.get_lines()[:2]
    # time zero is the first timeline event, so the panels of one result line up
    assert list(processed.get_xdata()) == [0.0, 2.5, 3.5, 4.5, 5.5, 6.0, 8.0, 9.0]
    assert list(processed.get_ydata()) == [0, 4, 4, 10, 12, 18, 19, 19]
    assert list(failed.get_ydata()) == [0, 1, 1, 2, 3, 4, 6, 6]
    assert to_hex(failed.get_color()) == RED
    # a dot per poll and a straight line between them, not a staircase
    assert processed.get_drawstyle() == "default" and processed.get_marker() == "o"
    sent = ax.get_lines()[2]
    assert list(sent.get_ydata()) == [21, 21] and to_hex(sent.get_color()) == GREY
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "processed (19)", "failed (6)", "rows sent (21)"]
    assert ax.get_title() == "Records processed (2 rows/s)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("seconds since start", "records")
    assert ax.get_xlim() == (0, 9.0)
    assert ax.get_ylim()[0] == 0
    png(ax.figure)


def test_throughput_from_a_frame_starts_at_its_first_poll(ax):
    plots.throughput(PROGRESS, ax=ax)
    processed = ax.get_lines()[0]
    assert list(processed.get_xdata()) == [0.0, 0.0, 1.0, 2.0, 3.0, 3.5, 5.5, 6.5]
    assert processed.get_ydata()[-1] == 19
    assert ax.get_xlim() == (0, 6.5)
    assert len(ax.get_lines()) == 2  # no rows-sent line without the jobs


def test_throughput_without_polls_says_so():
    ax = plots.throughput(result(progress=PROGRESS.iloc[:0]))
    assert [t.get_text() for t in ax.texts] == ["no progress recorded"]
    assert not ax.get_lines()


# ---------------------------------------------------------------- plot, dashboard


@pytest.mark.parametrize("kind, title", [("outcomes", "Row outcomes (22 rows)"),
                                         ("errors", "Rows with errors"),
                                         ("timeline", "Job states over time"),
                                         ("throughput", "Records processed (2 rows/s)")])
def test_plot_dispatches_by_kind(ax, kind, title):
    assert plots.plot(result(), kind, ax=ax).axes is ax
    assert ax.get_title() == title


def test_plot_passes_options_and_refuses_unknown_kinds(ax):
    plots.plot(result(), "errors", ax=ax, top=1)
    assert len(ax.patches) == 1
    with pytest.raises(ValueError, match="'outcomes', 'errors', 'timeline', 'throughput'"):
        plots.plot(result(), "pie")


def test_dashboard_four_panels_and_png():
    before = dict(matplotlib.rcParams)
    dash = plots.dashboard(result())
    fig = dash.figure
    assert isinstance(fig, Figure) and dash.axes == fig.axes
    assert [a.get_title() for a in fig.axes] == ["Row outcomes (22 rows)", "Rows with errors",
                                                 "Job states over time", "Records processed (2 rows/s)"]
    assert dash.get_suptitle() == "Bulk run: 22 rows in 3 jobs"
    data = png(fig, dpi=100)
    assert dict(matplotlib.rcParams) == before
    if NOTES.is_dir():  # kept for a look by eye
        (NOTES / "plots-dashboard.png").write_bytes(data)


def test_dashboard_draws_on_a_given_figure_and_degrades_without_logs():
    fig = Figure(figsize=(12, 8), layout="constrained")
    one = aligned([("created", None, None, None, JOB_A)])
    jobs = pd.DataFrame({"job_id": [JOB_A], "rows": [1]})
    assert plots.dashboard(SimpleNamespace(counts=count_statuses(one), errors=summarize_errors(one),
                                           jobs=jobs), fig=fig).figure is fig
    assert [t.get_text() for a in fig.axes[1:] for t in a.texts] == [
        "no errors", "no job timeline recorded", "no progress recorded"]
    assert fig.get_suptitle() == "Bulk run: 1 row in 1 job"
    png(fig)


# -------------------------------------------------------------------------- Chart


def test_a_chart_is_used_as_its_axes(ax):
    chart = plots.plot(result(), "outcomes", ax=ax)
    assert isinstance(chart, plots.Chart) and chart.axes is ax and chart.figure is ax.figure
    chart.set_xlabel("my rows")  # methods, and attributes both ways
    assert ax.get_xlabel() == "my rows" and list(chart.patches) == list(ax.patches)
    chart.zorder = 5
    assert ax.zorder == 5
    assert "set_xlim" in dir(chart) and "_repr_png_" in dir(chart)
    with pytest.raises(AttributeError):
        assert chart.no_such_attribute is None  # never reached
    # another chart drawn on it draws on the Axes
    ax.clear()
    assert plots.plot(result(), "errors", ax=chart).axes is ax
    assert ax.get_title() == "Rows with errors"
    assert copy.copy(chart).axes is ax
    again = pickle.loads(pickle.dumps(chart))
    assert isinstance(again, plots.Chart) and again.get_title() == "Rows with errors"
    assert repr(chart) == "<Chart: Axes 'Rows with errors'>"


def test_a_notebook_shows_a_chart_as_its_picture_once():
    formatter = DisplayFormatter()
    chart = plots.plot(result(), "timeline")  # a pyplot figure, as in a notebook
    assert plt.fignum_exists(chart.figure.number)
    bundle, _ = formatter.format(chart)
    assert bundle["image/png"].startswith(b"\x89PNG")
    assert not bundle["text/plain"].startswith("<Axes")
    # shown: pyplot lets it go, so the inline backend does not show it a second time
    assert not plt.fignum_exists(chart.figure.number)
    shown = mpimg.imread(io.BytesIO(bundle["image/png"]))
    assert shown.shape[1] > 300
    dash = plots.dashboard(result())
    bundle, _ = formatter.format(dash)
    assert set(bundle) == {"image/png", "text/plain"}
    assert bundle["text/plain"] == "<Chart: Figure 'Bulk run: 22 rows in 3 jobs'>"
    assert not plt.get_fignums()
    # a figure of the caller's own, drawn on with ax=, is shown whole
    fig = Figure(figsize=(10, 3), layout="constrained")
    left, right = fig.subplots(1, 2)
    chart = plots.outcomes(result(), ax=right)
    width = mpimg.imread(io.BytesIO(formatter.format(chart)[0]["image/png"])).shape[1]
    assert width > 10 * fig.dpi * 0.8


def test_in_a_kernel_each_chart_shows_once(tmp_path, monkeypatch):
    """What the inline backend and a cell's value do together, in a real kernel: one
    picture per cell, and no ``<Axes: ...>`` or ``<Figure ...>`` echo."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SFBULK_NB_LOCALORG", str(tmp_path / "org.sqlite3"))
    cells = [
        "import matplotlib.pyplot as plt\nimport sfbulk_nb as sfb\nfrom sfbulk_nb import plots\n"
        "from sfbulk_nb.sample import sample_accounts\nsfb.connect('local')\n"
        "res = sfb.upsert_df(sample_accounts(60, seed=1), 'Account', 'customExtIdField__c',"
        " progress=False, on_invalid='skip')",
        "res.plot('outcomes')",
        "res.plot('errors');",
        "plots.dashboard(res)",
        "plots.dashboard(res);",
        "fig, axs = plt.subplots(1, 2)\nres.plot('outcomes', ax=axs[0])\nres.plot('timeline', ax=axs[1])",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells[1:]:
        outputs = [o for o in cell.outputs if o.get("output_type") != "stream"]
        assert [sorted(o["data"]) for o in outputs] == [["image/png", "text/plain"]], cell.source
        text = outputs[0]["data"]["text/plain"]
        assert not text.startswith("<Axes"), cell.source


def test_importing_plots_leaves_pyplot_alone():
    code = "import sys, sfbulk_nb.plots; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"
