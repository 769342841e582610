"""Result frames in a notebook: at most `options.display_limit` rows, a note of how many
there are, one line per cell; the card's preview puts the outcome first."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from traitlets import TraitError

import sfbulk_nb as sfb
from sfbulk_nb.tables import ShownFrame, options, table_html


@pytest.fixture(autouse=True)
def default_limit():
    before = options.display_limit
    yield
    options.display_limit = before


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "Name": [f"Acct {i}" for i in range(n)],
        "CreatedDate": pd.date_range("2026-01-01 09:30", periods=n, freq="h", tz="UTC"),
        "Note": [None if i % 3 == 0 else "x" * (i % 5) for i in range(n)],
    })


def body_rows(markup: str) -> int:
    return markup.split("<tbody>")[1].count("<tr>")


def test_a_long_frame_shows_the_limit_and_says_how_many_it_has():
    shown = ShownFrame.of(frame(20_000))
    markup = shown._repr_html_()
    assert body_rows(markup) == 15
    assert "showing 15 of 20,000 rows" in markup
    assert "showing 15 of 20,000 rows" in repr(shown)
    assert len(repr(shown).splitlines()) < 25
    options.display_limit = 3
    assert body_rows(shown._repr_html_()) == 3
    assert "showing 3 of 20,000 rows" in repr(shown)


def test_a_short_frame_shows_every_row_and_its_shape():
    markup = ShownFrame.of(frame(4))._repr_html_()
    assert body_rows(markup) == 4
    assert "4 rows \u00d7 3 columns" in markup and "showing" not in markup


def test_limit_zero_leaves_the_display_to_pandas():
    options.display_limit = 0
    shown = ShownFrame.of(frame(100))
    assert shown._repr_html_() == pd.DataFrame(shown)._repr_html_()
    assert repr(shown) == repr(pd.DataFrame(shown))


def test_the_limit_is_checked():
    with pytest.raises(TraitError):
        options.display_limit = -1
    with pytest.raises(TraitError):
        options.display_limit = "ten"


def test_what_is_derived_is_a_plain_dataframe_and_the_data_is_the_same():
    df = frame(50)
    shown = ShownFrame.of(df)
    assert isinstance(shown, pd.DataFrame)
    pd.testing.assert_frame_equal(pd.DataFrame(shown), df)
    for derived in (shown[shown["Note"].isna()], shown.head(20), shown.assign(x=1),
                    shown[["Name"]], shown.copy()):
        assert type(derived) is pd.DataFrame


def test_cells_are_one_line_escaped_and_missing_values_are_marked():
    df = pd.DataFrame({"When": pd.to_datetime(["2026-03-01 12:00"]).tz_localize("UTC"),
                       "Text": ["<b>a, \"b\"\nc</b>"], "Gone": [pd.NA]})
    markup = ShownFrame.of(df)._repr_html_()
    cells = re.findall(r"<td style=\"([^\"]*)\"[^>]*>([^<]*)</td>", markup)
    assert all("white-space:nowrap" in style and "text-overflow:ellipsis" in style
               for style, _ in cells)
    assert cells[0][1] == "2026-03-01 12:00:00+00:00"  # a date on one line, not wrapped
    assert "<b>a" not in markup and "&lt;b&gt;a, &quot;b&quot;" in markup
    assert cells[2][1] == "&lt;NA&gt;"


def test_first_columns_lead_the_display():
    shown = ShownFrame.of(frame(3).assign(sf_status="created"), first=["sf_status", "nope"])
    header = shown._repr_html_().split("</thead>")[0]
    assert header.index("sf_status") < header.index("Name")
    assert list(shown.columns)[-1] == "sf_status"  # the frame itself is not reordered


def test_a_fitting_table_never_scrolls():
    markup = table_html(frame(2), fit=True)
    assert "table-layout:fixed;width:100%" in markup and "overflow-x:hidden" in markup
    assert "overflow-x:auto" in table_html(frame(2))


@pytest.fixture
def client(org):
    return sfb.connect(org)


def test_res_frame_is_shown_with_the_limit_and_the_card_previews_the_outcome(client):
    df = pd.DataFrame({"customExtIdField__c": [f"T-{i}" for i in range(40)],
                       "Name": [f"Acct {i}" for i in range(40)]})
    df.loc[1, "Name"] = None
    res = sfb.upsert_df(df, "Account", "customExtIdField__c", progress=False,
                        on_invalid="send")
    assert isinstance(res.frame, ShownFrame)
    assert "showing 15 of 40 rows" in res.frame._repr_html_()
    assert type(res.failed) is pd.DataFrame
    card = res._repr_html_()
    preview = card.split("<b>Rows</b>")[1]
    header = preview.split("</thead>")[0]
    assert [header.index(c) for c in ("sf_status", "sf_id", "sf_error_code",
                                      "sf_error_message", "customExtIdField__c")] == sorted(
        header.index(c) for c in ("sf_status", "sf_id", "sf_error_code", "sf_error_message",
                                  "customExtIdField__c"))
    assert body_rows(preview) == 5 and "first 5 of 40 rows" in preview
    assert "REQUIRED_FIELD_MISSING" in preview
    assert "table-layout:fixed;width:100%" in preview
