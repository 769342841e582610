"""`Problems`: what `validate_df` found, one row per problem, and its summary for people.

    problems = sfb.validate_df(df, "Account", "customExtIdField__c")
    problems                  # in a notebook: the summary, one line per (column, problem)
    problems.summary()        # the same as a frame: rows, examples, the fix
    problems[problems.severity == "error"]          # a plain DataFrame of the problems

Columns: ``row`` (the input's index label; missing for a problem of a whole column),
``position`` (0-based row position), ``column`` (as named in the input), ``field`` (the
Salesforce field it was matched to), ``value`` (the cell as it would be sent), ``code``
(Salesforce's error code where one exists), ``message``, ``hint`` (one line of pandas that
fixes the whole group) and ``severity`` (``error`` blocks the row, ``warning`` does not).

Hints are written to run in order: a summary lists column problems (renames, drops)
first, so the cell fixes after them name the columns as they will be by then.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .progress import plural

COLUMNS = ("row", "position", "column", "field", "value", "code", "message", "hint", "severity")
ERROR, WARNING = "error", "warning"
_LSTR = pa.large_string()
_SHOWN_VALUE = 60  # characters of a value quoted in a message or an example
_EXAMPLES = 3


@dataclass
class Block:
    """Problems of one check in one column: the validator's unit of output."""

    column: Any  # the column label as in the input
    field: str | None  # the Salesforce field it maps to
    code: str
    reason: str  # completes "<column>: '<value>' ..." (or the whole sentence of a column problem)
    hint: str
    severity: str = ERROR
    positions: np.ndarray | None = None  # None: the problem is the column itself
    values: pa.Array | None = None  # the cells' texts, aligned with positions
    order: int = 0  # the column's position in the frame (-1 before every column)


def quote(value: str) -> str:
    """A value as a message shows it: quoted, shortened."""
    value = str(value)
    if len(value) > _SHOWN_VALUE:
        value = value[: _SHOWN_VALUE - 1] + "\u2026"
    return f"'{value}'"


def _quoted(values: pa.Array) -> pa.Array:
    short = pc.utf8_length(values)
    long = pc.greater(short, _SHOWN_VALUE)
    if pc.any(long).as_py():
        cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, _SHOWN_VALUE - 1),
                                          pa.scalar("\u2026", _LSTR), pa.scalar("", _LSTR))
        values = pc.if_else(long, cut, values)
    q = pa.scalar("'", _LSTR)
    return pc.binary_join_element_wise(q, values, q, pa.scalar("", _LSTR))


class Problems(pd.DataFrame):
    """One row per problem (see the module docstring); shows as its summary.

    Selections and other operations return plain DataFrames of problems."""

    # _label: what the "row" column holds ("line": a file's, validate_csv); _note: how far
    # a file's check went.
    _metadata = ["_column_order", "_label", "_note"]
    _label = "row"
    _note: str | None = None

    @property
    def _constructor(self):
        return pd.DataFrame

    @classmethod
    def from_blocks(cls, blocks: list[Block], index: pd.Index) -> "Problems":
        """The problems of every block, in row order (a whole column's first), built a
        column at a time: a million problems are a few arrays, not a million rows."""
        sizes = np.array([1 if b.positions is None else len(b.positions) for b in blocks],
                         np.int64)
        block_of = np.repeat(np.arange(len(blocks)), sizes)
        positions = np.concatenate([np.full(1, -1, np.int64) if b.positions is None
                                    else np.asarray(b.positions, np.int64) for b in blocks]
                                   or [np.zeros(0, np.int64)])
        orders = np.array([b.order for b in blocks], np.int64)[block_of]
        order = np.lexsort((orders, positions, positions >= 0))
        block_of, positions = block_of[order], positions[order]
        values = pa.concat_arrays([_block_values(b) for b in blocks] or [pa.array([], _LSTR)])
        messages = pa.concat_arrays([_block_messages(b) for b in blocks] or [pa.array([], _LSTR)])
        if not (np.diff(order) == 1).all():  # else already in row order (one block, say)
            take = pa.array(order, pa.int64())
            values, messages = values.take(take), messages.take(take)
        cell = positions >= 0
        rows = np.full(len(positions), None, dtype=object)
        rows[cell] = index[positions[cell]]
        frame = pd.DataFrame({
            "row": rows,
            "position": pd.array(np.where(cell, positions, 0), dtype="Int64"),
            **{name: _categories([getattr(b, name) for b in blocks],
                                 block_of) for name in ("column", "field")},
            "value": pd.array(values, dtype="string"),
            "code": _categories([b.code for b in blocks], block_of),
            "message": pd.array(messages, dtype="string"),
            "hint": _categories([b.hint for b in blocks], block_of),
            "severity": _categories([b.severity for b in blocks], block_of),
        }, columns=list(COLUMNS))
        frame.loc[~cell, "position"] = pd.NA
        out = cls(frame)
        out._column_order = {str(b.column): b.order for b in blocks}
        return out

    # -- what it means for a load ------------------------------------------------------

    @property
    def errors(self) -> pd.DataFrame:
        return self[self["severity"] == ERROR]

    @property
    def warnings(self) -> pd.DataFrame:
        return self[self["severity"] == WARNING]

    @property
    def ok(self) -> bool:
        """No error (warnings do not block)."""
        return not (self["severity"] == ERROR).any()

    @property
    def blocks_every_row(self) -> bool:
        """An error of a whole column (an unknown field, a missing key column...): no row
        can be sent until it is fixed."""
        return bool(((self["severity"] == ERROR) & self["position"].isna()).any())

    def invalid_positions(self) -> np.ndarray:
        """Positions of the rows that have at least one error, ascending."""
        errors = self[(self["severity"] == ERROR) & self["position"].notna()]
        return np.unique(errors["position"].to_numpy(np.int64))

    def first_error_by_position(self) -> pd.DataFrame:
        """For each row with an error: its first error (code, message, field), by position."""
        errors = self[(self["severity"] == ERROR) & self["position"].notna()]
        first = errors.drop_duplicates("position")
        return pd.DataFrame({"code": first["code"].to_numpy(), "message": first["message"].to_numpy(),
                             "field": first["field"].to_numpy()},
                            index=first["position"].to_numpy(np.int64))

    # -- summary -----------------------------------------------------------------------

    def summary(self) -> pd.DataFrame:
        """One row per (column, code): severity, rows (how many; missing for a problem of
        the whole column), up to three example values, example_rows (index labels),
        problem (what is wrong) and hint. Column problems first, then errors before
        warnings, in the frame's column order."""
        names = ["column", "field", "code", "severity", "rows", "examples", "example_rows",
                 "problem", "hint"]
        if not len(self):
            return pd.DataFrame({n: pd.Series(dtype=object) for n in names})
        frame = pd.DataFrame(self)
        frame["_level"] = frame["position"].notna().astype(int)
        order = getattr(self, "_column_order", None) or {}
        frame["_order"] = [order.get(c, 1 << 30) for c in frame["column"].astype(object)]
        frame["_sev"] = (frame["severity"] != ERROR).astype(int)
        frame["_seq"] = np.arange(len(frame))
        out = []
        for (column, code), group in frame.groupby(["column", "code"], sort=False, dropna=False,
                                                   observed=True):
            first = group.iloc[0]
            cells = group[group["position"].notna()]
            examples = list(dict.fromkeys(cells["value"].dropna()))[:_EXAMPLES]
            out.append({
                "column": column, "field": first["field"], "code": code,
                "severity": ERROR if (group["severity"] == ERROR).any() else WARNING,
                "rows": cells["position"].nunique() if len(cells) else pd.NA,
                "examples": [quote(v) if v != "" else "(blank)" for v in examples],
                "example_rows": list(cells["row"].iloc[:_EXAMPLES]),
                "problem": _reason(first),
                "hint": first["hint"],
                "_key": (int(first["_level"]), int(group["_sev"].min()), int(first["_order"]),
                         int(first["_seq"])),
            })
        out.sort(key=lambda r: r.pop("_key"))
        summary = pd.DataFrame(out, columns=names)
        summary["rows"] = summary["rows"].astype("Int64")
        return summary

    def summary_text(self, *, limit: int = 25, line_of: Callable[[int], int] | None = None,
                     rows_word: str = "rows", label: str | None = None) -> str:
        """The summary as lines of text (the ValidationError message, the CLI's output).
        ``line_of`` maps a row position to a file line, for the CLI; ``label`` names what
        the rows' labels are ("line": a streamed file's rows are labelled by line; by
        default the frame's own, see validate_csv)."""
        label = label or self._label
        if not len(self):
            return "no problems"
        summary = self.summary()
        errors = self[self["severity"] == ERROR]
        bad_rows = errors["position"].dropna().nunique()
        head = []
        if len(errors):
            whole = errors["position"].isna().any()
            head.append("every row is blocked (a column problem)" if whole
                        else f"{plural(bad_rows, 'row')} {'has' if bad_rows == 1 else 'have'} errors")
        warned = (summary["severity"] == WARNING).sum()
        if warned:
            head.append(plural(warned, "warning group"))
        lines = [f"{plural(len(summary), 'problem group')}: " + ", ".join(head)]
        for row in summary.head(limit).itertuples(index=False):
            count = ("whole column" if pd.isna(row.rows)
                     else f"{row.rows:,} {rows_word if row.rows != 1 else rows_word.rstrip('s')}")
            where = ""
            if not pd.isna(row.rows):
                cells = self[(self["column"] == row.column) & (self["code"] == row.code)]
                positions = cells["position"].dropna().astype(int).unique()[:5]
                if line_of is not None:
                    named = [str(line_of(p)) for p in positions]
                    label = "line"
                else:
                    named = list(map(repr, cells["row"].iloc[:5].tolist()))
                where = f" at {label if len(named) == 1 else label + 's'} " + ", ".join(named)
                if len(cells["position"].dropna().unique()) > 5:
                    where += ", \u2026"
            example = f" e.g. {', '.join(row.examples)}" if row.examples else ""
            lines.append(f"- [{row.severity}] {row.column} \u00b7 {row.code} \u00b7 {count}{where}")
            lines.append(f"    {row.problem}{example}")
            lines.append(f"    fix: {row.hint}")
        if len(summary) > limit:
            lines.append(f"... and {plural(len(summary) - limit, 'more group')}: "
                         f"see .problems.summary()")
        return "\n".join(lines)

    def __repr__(self) -> str:
        note = f" ({self._note})" if self._note else ""
        return (f"<Problems: {plural(len(self), 'problem')}; a DataFrame, one row per "
                f"problem>{note}\n" + self.summary_text())

    def _repr_html_(self) -> str:
        return summary_html(self)


def _cut(text: str, limit: int) -> str:
    """Display text cut to ``limit`` characters (the full text stays in the frame)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _reason(first: pd.Series) -> str:
    """The message of a problem without its column and value: what the group has in common."""
    message = str(first["message"])
    if pd.isna(first["position"]):
        return message
    prefix = f"{first['column']}: {quote(first['value'])} "
    return message[len(prefix):] if message.startswith(prefix) else message


def _categories(per_block: list, block_of: np.ndarray) -> pd.Categorical:
    """A categorical column from one value per block (few distinct texts repeat over many
    problems: categories keep them small)."""
    texts = [None if v is None else str(v) for v in per_block]
    uniques = list(dict.fromkeys(t for t in texts if t is not None))
    code_of = {t: i for i, t in enumerate(uniques)}
    codes = np.array([-1 if t is None else code_of[t] for t in texts] or [0], np.int64)
    return pd.Categorical.from_codes(codes[block_of] if len(block_of) else block_of,
                                     categories=uniques)


def _block_values(b: Block) -> pa.Array:
    if b.positions is None:
        return pa.nulls(1, _LSTR)
    return b.values.cast(_LSTR) if b.values is not None else pa.nulls(len(b.positions), _LSTR)


def _block_messages(b: Block) -> pa.Array:
    column = str(b.column)
    if b.positions is None:
        return pa.array([b.reason], _LSTR)
    values = _block_values(b)
    if not values.null_count and not pc.any(pc.greater(pc.utf8_length(values),
                                                       _SHOWN_VALUE)).as_py():
        # Every value shown whole: "<column>: '<value>' <reason>" in one pass (a warning
        # on every row of a big frame made this a tenth of its checks).
        return pc.binary_join_element_wise(pa.scalar(f"{column}: '", _LSTR), values,
                                           pa.scalar(f"' {b.reason}", _LSTR),
                                           pa.scalar("", _LSTR))
    shown = pc.fill_null(_quoted(values), "blank")
    return pc.binary_join_element_wise(pa.scalar(f"{column}: ", _LSTR), shown,
                                       pa.scalar(f" {b.reason}", _LSTR), pa.scalar("", _LSTR))


# -- HTML ---------------------------------------------------------------------------------

_CELL = "padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere"
_COLOURS = {ERROR: "#cf222e", WARNING: "#9a6700"}


def summary_html(problems: Problems, *, title: str = "Problems found before sending") -> str:
    """The summary as a table that fits its output (fixed layout, wrapped, values cut)."""
    summary = problems.summary()
    note = getattr(problems, "_note", None)
    note = f" ({html.escape(note)})" if note else ""
    if not len(summary):
        return f"<div><b>No problems</b>: every row can be sent.{note}</div>"
    errors = problems[problems["severity"] == ERROR]
    bad_rows = errors["position"].dropna().nunique()
    head = (f"{plural(len(summary), 'group')} of problems; "
            + ("every row is blocked by a column problem" if errors["position"].isna().any()
               else f"{plural(bad_rows, 'row')} {'has' if bad_rows == 1 else 'have'} errors"))
    rows = []
    for r in summary.itertuples(index=False):
        colour = _COLOURS.get(r.severity, "#000")
        count = "all" if pd.isna(r.rows) else f"{r.rows:,}"
        label = getattr(problems, "_label", "row")
        if r.example_rows:  # where to look: "lines 997, 1374, …" of a file, rows of a frame
            more = ", \u2026" if not pd.isna(r.rows) and r.rows > len(r.example_rows) else ""
            count += (f"<br><small>{label}{'s' if len(r.example_rows) > 1 else ''} "
                      f"{html.escape(', '.join(map(str, r.example_rows)))}{more}</small>")
        rows.append(
            "<tr>"
            f'<td style="{_CELL}"><b>{html.escape(str(r.column))}</b>'
            + (f"<br><small>{html.escape(str(r.field))}</small>"
               if isinstance(r.field, str) and r.field != r.column else "")
            + "</td>"
            f'<td style="{_CELL}"><span style="color:{colour};font-weight:600">'
            f"{html.escape(r.code)}</span><br>{html.escape(_cut(r.problem, 300))}</td>"
            f'<td style="{_CELL};text-align:right">{count}</td>'
            f'<td style="{_CELL}">{html.escape(", ".join(r.examples))}</td>'
            f'<td style="{_CELL}"><code style="white-space:pre-wrap;overflow-wrap:anywhere">'
            f"{html.escape(_cut(r.hint, 300))}</code></td></tr>")
    widths = ("14%", "29%", "10%", "17%", "30%")
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    names = "".join(f'<th style="{_CELL}">{n}</th>'
                    for n in ("column", "problem", "rows", "examples", "fix"))
    return (f'<div class="sfbulk-problems" style="max-width:100%;overflow:hidden">'
            f"<b>{html.escape(title)}</b>: {html.escape(head)}{note}"
            f'<table style="table-layout:fixed;width:100%;border-collapse:collapse">'
            f"<colgroup>{cols}</colgroup><thead><tr>{names}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
