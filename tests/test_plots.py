"""Charts of a bulk run (sfbulk_nb.plots), drawn from literal frames shaped like a
BulkResult's: what is drawn (bars, labels, colours, segments, lines), not pixels, plus a
PNG render of each figure."""
from __future__ import annotations

import io
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
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sfbulk_nb import plots  # noqa: E402
from sfbulk_nb.results import ALIGN_COLUMNS, count_statuses, summarize_errors  # noqa: E402

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


def test_outcomes_bars_are_the_counts_in_status_order(ax):
    assert plots.outcomes(result(), ax=ax) is ax
    bars = top_to_bottom(ax)
    assert [b.get_width() for b in bars] == [8, 5, 6, 2, 1]
    assert ytick_labels(ax) == ["created", "updated", "failed", "unprocessed", "not_sent"]
    assert ax.yaxis_inverted()  # first status at the top
    assert [to_hex(b.get_facecolor()) for b in bars] == [GREEN, GREEN, RED, AMBER, AMBER]
    assert [t.get_text() for t in ax.texts] == ["8 (36%)", "5 (23%)", "6 (27%)", "2 (9%)", "1 (5%)"]
    assert ax.get_title() == "Row outcomes (22 rows)"
    assert ax.get_xlabel() == "rows"
    # the count labels fit inside the axes
    assert ax.get_xlim()[1] >= 8 * 1.25
    png(ax.figure)


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
    assert plots.errors_by_code(result(), ax=ax) is ax
    assert ytick_labels(ax) == ["REQUIRED_FIELD_MISSING [Name]", "INVALID_EMAIL_ADDRESS [Email__c]",
                                "DUPLICATE_VALUE"]
    bars = top_to_bottom(ax)
    assert [b.get_width() for b in bars] == [3, 2, 1]
    assert {to_hex(b.get_facecolor()) for b in bars} == {RED}
    assert [t.get_text() for t in ax.texts] == ["3 (50%)", "2 (33%)", "1 (17%)"]
    assert ax.get_title() == "Failed rows by error"
    assert ax.get_xlabel() == "failed rows"
    png(ax.figure)


def test_errors_group_by_code_and_fields_across_messages(ax):
    # Messages that name the record differ row by row; the chart counts the code.
    rows = [("failed", "DUPLICATE_VALUE", f"duplicate value found: id {i}", "Email__c", JOB_A) for i in range(4)]
    rows += [("failed", "DUPLICATE_VALUE", "duplicate value found", "Phone", JOB_A)] * 5
    rows += [("failed", None, "Upsert failed. First exception on row 0", None, JOB_A)]
    plots.errors_by_code(aligned(rows), ax=ax)
    assert ytick_labels(ax) == ["DUPLICATE_VALUE [Phone]", "DUPLICATE_VALUE [Email__c]",
                                "Upsert failed. First exception on row 0"]
    assert [b.get_width() for b in top_to_bottom(ax)] == [5, 4, 1]


def test_errors_top_n_and_the_rest_in_the_axis_label(ax):
    rows = []
    for i in range(14):
        rows += [("failed", f"CODE_{i:02d}", "m", "F", JOB_A)] * (20 - i)
    plots.errors_by_code(aligned(rows), ax=ax, top=10)
    assert len(ax.patches) == 10
    assert ytick_labels(ax)[0] == "CODE_00 [F]" and ytick_labels(ax)[-1] == "CODE_09 [F]"
    assert [b.get_width() for b in top_to_bottom(ax)] == list(range(20, 10, -1))
    assert ax.get_title() == "Failed rows by error (top 10 of 14)"
    assert ax.get_xlabel() == "failed rows (+34 in 4 more)"


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


def test_no_failed_rows_is_said_not_drawn(ax):
    clean = aligned([("created", None, None, None, JOB_A)] * 3)
    for data in (result(clean), clean, summarize_errors(clean)):
        ax.clear()
        plots.errors_by_code(data, ax=ax)
        assert not ax.patches
        assert [t.get_text() for t in ax.texts] == ["no failed rows"]
        assert ax.get_title() == "Failed rows by error"
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


def test_timeline_one_row_per_job_one_segment_per_state(ax):
    assert plots.job_timeline(result(), ax=ax) is ax
    rows = segments(ax)
    assert [len(r) for r in rows] == [4, 4, 3]
    a, b, c = rows
    cap = 9.0 * 0.015
    assert a == [(0.0, 1.0, plots.STATE_COLOURS["Open"]), (1.0, 1.0, GREY),
                 (2.0, 4.0, plots.STATE_COLOURS["InProgress"]), (6.0, cap, GREEN)]
    assert b[0][:2] == (0.2, 1.1) and b[-1] == (8.0, cap, GREEN)
    assert [s[2] for s in c] == [plots.STATE_COLOURS["Open"], GREY, RED]
    assert ytick_labels(ax) == [f"#1 {JOB_A}", f"#2 {JOB_B}", f"#3 {JOB_C}"]
    assert ax.get_title() == "Job states over time"
    assert ax.get_xlabel() == "seconds since start"
    assert ax.get_xlim()[0] == 0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["Open", "UploadComplete", "InProgress", "JobComplete", "Failed"]
    png(ax.figure)


def test_timeline_from_a_frame_orders_jobs_by_chunk_and_stretches_running_jobs(ax):
    shuffled = TIMELINE.sample(frac=1, random_state=3)
    # job C is still open when the timeline was taken; a repeated state is drawn once
    running = shuffled[shuffled["state"] != "Failed"]
    running = pd.concat([running, running[running["state"] == "Open"].head(1)])
    plots.job_timeline(running, ax=ax)
    rows = segments(ax)
    assert [len(r) for r in rows] == [4, 4, 2]
    # its last state runs to the last event of the timeline (8 s)
    assert rows[2][-1][:2] == (3.5, 4.5)


def test_timeline_without_chunks_or_events():
    frame = TIMELINE.drop(columns="chunk")
    ax = plots.job_timeline(frame)
    assert ytick_labels(ax) == [JOB_A, JOB_B, JOB_C]  # in order of their first event
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
    assert ytick_labels(ax)[:2] == [f"#1 750{0:015d}", f"#4 750{3:015d}"]


# --------------------------------------------------------------------- throughput


def test_throughput_sums_the_latest_counter_of_each_job(ax):
    assert plots.throughput(result(), ax=ax) is ax
    processed, failed = ax.get_lines()[:2]
    # time zero is the first timeline event, so the panels of one result line up
    assert list(processed.get_xdata()) == [0.0, 2.5, 3.5, 4.5, 5.5, 6.0, 8.0, 9.0]
    assert list(processed.get_ydata()) == [0, 4, 4, 10, 12, 18, 19, 19]
    assert list(failed.get_ydata()) == [0, 1, 1, 2, 3, 4, 6, 6]
    assert to_hex(failed.get_color()) == RED
    assert processed.get_drawstyle() == "steps-post"
    sent = ax.get_lines()[2]
    assert list(sent.get_ydata()) == [21, 21] and to_hex(sent.get_color()) == GREY
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "processed (19)", "failed (6)", "rows sent (21)"]
    assert ax.get_title() == "Records processed (2 rows/s)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("seconds since start", "records")
    assert ax.get_ylim()[0] == 0
    png(ax.figure)


def test_throughput_from_a_frame_starts_at_its_first_poll(ax):
    plots.throughput(PROGRESS, ax=ax)
    processed = ax.get_lines()[0]
    assert list(processed.get_xdata()) == [0.0, 0.0, 1.0, 2.0, 3.0, 3.5, 5.5, 6.5]
    assert processed.get_ydata()[-1] == 19
    assert len(ax.get_lines()) == 2  # no rows-sent line without the jobs


def test_throughput_without_polls_says_so():
    ax = plots.throughput(result(progress=PROGRESS.iloc[:0]))
    assert [t.get_text() for t in ax.texts] == ["no progress recorded"]
    assert not ax.get_lines()


# ---------------------------------------------------------------- plot, dashboard


@pytest.mark.parametrize("kind, title", [("outcomes", "Row outcomes (22 rows)"),
                                         ("errors", "Failed rows by error"),
                                         ("timeline", "Job states over time"),
                                         ("throughput", "Records processed (2 rows/s)")])
def test_plot_dispatches_by_kind(ax, kind, title):
    assert plots.plot(result(), kind, ax=ax) is ax
    assert ax.get_title() == title


def test_plot_passes_options_and_refuses_unknown_kinds(ax):
    plots.plot(result(), "errors", ax=ax, top=1)
    assert len(ax.patches) == 1
    with pytest.raises(ValueError, match="'outcomes', 'errors', 'timeline', 'throughput'"):
        plots.plot(result(), "pie")


def test_dashboard_four_panels_and_png():
    before = dict(matplotlib.rcParams)
    fig = plots.dashboard(result())
    assert isinstance(fig, Figure)
    assert [a.get_title() for a in fig.axes] == ["Row outcomes (22 rows)", "Failed rows by error",
                                                 "Job states over time", "Records processed (2 rows/s)"]
    assert fig.get_suptitle() == "Bulk run: 22 rows in 3 job(s)"
    data = png(fig, dpi=100)
    assert dict(matplotlib.rcParams) == before
    if NOTES.is_dir():  # kept for a look by eye
        (NOTES / "plots-dashboard.png").write_bytes(data)


def test_dashboard_draws_on_a_given_figure_and_degrades_without_logs():
    fig = Figure(figsize=(12, 8), layout="constrained")
    clean = aligned([("created", None, None, None, JOB_A)] * 3)
    assert plots.dashboard(SimpleNamespace(counts=count_statuses(clean), errors=summarize_errors(clean)),
                           fig=fig) is fig
    assert [t.get_text() for a in fig.axes[1:] for t in a.texts] == [
        "no failed rows", "no job timeline recorded", "no progress recorded"]
    assert fig.get_suptitle() == "Bulk run: 3 rows"
    png(fig)


def test_importing_plots_leaves_pyplot_alone():
    code = "import sys, sfbulk_nb.plots; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "False"
