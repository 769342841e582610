"""Frames as a notebook shows them: at most `options.display_limit` rows, with a note of how
many there are, in a table that fits its output (values cut with an ellipsis, dates and
ids on one line, never a horizontal scroll).

    sfb.options.display_limit = 50      # or %config SFBulkMagics.display_limit = 50
    res.frame                           # shows 50 rows: "showing 50 of 20,000 rows"
    res.frame.head(200)                 # a plain DataFrame: pandas' own display

`res.frame` and the results of `%%soql` are `ShownFrame`s: DataFrames in every way, but
their own display is this one; anything derived from them (a selection, `.head()`, a
computed column) is a plain DataFrame again, as jupysql's result sets are. A limit of 0
leaves the display to pandas.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

import pandas as pd
from traitlets import HasTraits, Int

_MUTED = "#57606a"
# A cell: one line, cut with an ellipsis past its column's share of the width.
_CELL = ("white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:24em;"
         "padding:1px 8px;text-align:left;vertical-align:top")


class Options(HasTraits):
    """sfbulk_nb's display settings (`sfb.options`); checked when set."""

    display_limit = Int(15, min=0, help=(
        "Rows a result frame (res.frame, %%soql) shows in a notebook; 0: pandas decides."))


options = Options()


class ShownFrame(pd.DataFrame):
    """A DataFrame that shows at most `options.display_limit` rows, and says how many it
    has. Derived frames are plain DataFrames (`_constructor`)."""

    _metadata = ["_first_columns"]

    @property
    def _constructor(self):
        return pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, first: Sequence[Any] = ()) -> "ShownFrame":
        """``frame`` as a ShownFrame (no copy: copy-on-write shares its data) whose display
        puts the columns ``first`` first."""
        shown = cls(frame, copy=False)
        shown._first_columns = [c for c in first if c in frame.columns]
        return shown

    def _preview(self) -> tuple[pd.DataFrame, str | None]:
        limit = options.display_limit
        first = getattr(self, "_first_columns", None) or []
        plain = pd.DataFrame(self, copy=False)
        if first:
            plain = plain[first + [c for c in plain.columns if c not in first]]
        if not limit or len(plain) <= limit:
            return plain, None
        return plain.head(limit), (f"showing {limit:,} of {len(plain):,} rows "
                                   f"(sfb.options.display_limit; .head(n) shows n)")

    def __repr__(self) -> str:
        head, note = self._preview()
        if note is None and not options.display_limit:
            return pd.DataFrame.__repr__(self)
        text = repr(head)
        return f"{text}\n\n[{note}]" if note else text

    def _repr_html_(self) -> str | None:
        head, note = self._preview()
        if note is None and not options.display_limit:
            return pd.DataFrame._repr_html_(self)
        return table_html(head, note)


def table_html(frame: pd.DataFrame, note: str | None = None, *, fit: bool = False,
               widths: Sequence[int] | None = None, index: bool = True) -> str:
    """``frame`` (a few rows) as an HTML table: every cell one line (dates and ids too),
    cut with an ellipsis past 24em, the whole value in its tooltip. ``fit``: the columns
    share the output's width (fixed layout) and it never scrolls; else a table wider than
    the output scrolls sideways, as pandas' own does. ``widths``: with ``fit``, each
    column's share of the width in percent (the index column, when shown, first).
    ``note=""``: no note under the table."""
    layout = "table-layout:fixed;width:100%" if fit else "max-width:none"
    columns = ""
    if fit and widths:
        columns = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + "</colgroup>"
    header = "".join(f'<th style="{_CELL};border-bottom:1px solid #d0d7de">'
                     f"{html.escape(str(c))}</th>" for c in frame.columns)
    index_head = f'<th style="{_CELL};border-bottom:1px solid #d0d7de"></th>' if index else ""
    rows = []
    for label, values in zip(frame.index, frame.itertuples(index=False, name=None)):
        cells = "".join(_cell(v) for v in values)
        head = (f'<th style="{_CELL};color:{_MUTED};font-weight:normal">'
                f"{html.escape(str(label))}</th>" if index else "")
        rows.append(f"<tr>{head}{cells}</tr>")
    shape = f"{len(frame):,} rows \u00d7 {len(frame.columns):,} columns"
    foot = ("" if note == "" else
            f'<div class="sfbulk-table-note" style="color:{_MUTED};font-size:0.9em">'
            f"{html.escape(note or shape)}</div>")
    return (f'<div class="sfbulk-table" style="max-width:100%;'
            f'overflow-x:{"hidden" if fit else "auto"}">'
            f'<table style="border-collapse:collapse;font-size:0.9em;{layout}">{columns}'
            f"<thead><tr>{index_head}{header}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table>{foot}</div>")


def _cell(value: Any) -> str:
    if _missing(value):
        return f'<td style="{_CELL};color:{_MUTED}">&lt;NA&gt;</td>'
    shown = html.escape(str(value))
    return f'<td style="{_CELL}" title="{shown}">{shown}</td>'


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array in a cell: not missing
        return False
