"""The preview of a load: what it would create, change and leave alone, as text and HTML.

    plan.summary()                  # ChangeSummary: counts, changed cells per field
    plan.summary(since=queried)     # also the rows someone modified in the org since
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .progress import plural
from .tables import table_html

if TYPE_CHECKING:
    from .changes import ChangeSet
    from .plan import LoadPlan

_EXAMPLES = 3  # before -> after pairs shown per field


@dataclass
class ChangeSummary:
    """What a load would do to the org's records, worked out by a lookup."""

    operation: str
    sobject: str
    rows: int  # rows the load would send
    create: int
    update: int  # rows that would change their record
    unchanged: int  # rows that would update a record to the values it has
    missing: int  # update rows whose Id is not a record
    held: dict[str, int]  # rows the plan holds back already, by status
    fields: pd.DataFrame  # field, cells, rows share, examples
    since: pd.Timestamp | None = None
    modified_since: pd.DataFrame | None = None  # row, Id, LastModifiedDate

    def _lines(self) -> list[str]:
        lines = [f"{self.operation} into {self.sobject}: {self.rows:,} rows to send — "
                 f"{self.create:,} would create, {self.update:,} would change their record, "
                 f"{self.unchanged:,} unchanged"
                 + (f", {self.missing:,} not found" if self.missing else "")]
        for status, n in self.held.items():
            if n:
                lines.append(f"held back: {plural(n, 'row')} {status}")
        if len(self.fields):
            lines.append("changed cells per field:")
            for r in self.fields.itertuples():
                lines.append(f"  {r.field}: {r.cells:,}  e.g. {r.examples}")
        if self.since is not None:
            n = 0 if self.modified_since is None else len(self.modified_since)
            lines.append(f"{plural(n, 'row')} whose record was modified after "
                         f"{_when(self.since)}" + (" (someone edited them since: "
                                                        "if_unmodified_since= holds them back)"
                                                        if n else ""))
        return lines

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        lines = self._lines()
        parts = ['<div class="sfbulk-preview" style="max-width:100%;overflow:hidden">',
                 f"<b>Preview</b>: {html.escape(lines[0])}"]
        parts += [f"<div>{html.escape(line)}</div>" for line in lines[1:]
                  if line.startswith("held back")]
        if len(self.fields):
            shown = self.fields.assign(share=[f"{v:.0%}" if v >= 0.01 or v == 0 else "<1%"
                                              for v in self.fields["share"]])
            shown = shown.rename(columns={"cells": "changed cells", "share": "of rows",
                                          "examples": "examples (before → after)"})
            parts.append(table_html(shown, "", fit=True, widths=(18, 12, 10, 60),
                                    index=False))
        if self.since is not None:
            parts += [f"<div>{html.escape(line)}</div>" for line in lines
                      if line.startswith(tuple("0123456789")) and "modified after" in line]
            if self.modified_since is not None and len(self.modified_since):
                parts.append(table_html(self.modified_since.head(10), "", fit=True,
                                        index=False))
        parts.append("</div>")
        return "".join(parts)


def summarize(plan: "LoadPlan", change_set: "ChangeSet | None", diff: pd.DataFrame,
              since: pd.Timestamp | None) -> ChangeSummary:
    existing = plan.existing
    actions = existing["action"].value_counts() if existing is not None else pd.Series(dtype=int)
    found = int(actions.get("update", 0))
    unchanged = 0 if change_set is None else len(change_set.unchanged_rows)
    held = {status: len(v[0]) for status, v in plan.held.items()}
    fields = _per_field(diff, found)
    modified = None
    if since is not None and change_set is not None:
        late = change_set.modified_after(since)
        rows = change_set.rows[late]
        modified = pd.DataFrame({
            "row": plan.looked_up_text.index[rows],
            "Id": pd.array(change_set.ids[late], dtype="string"),
            "LastModifiedDate": pd.to_datetime(change_set.modified[late]).tz_localize("UTC")})
    return ChangeSummary(plan.operation, plan.sobject, plan.rows_to_send,
                         int(actions.get("create", 0)), found - unchanged, unchanged,
                         int(actions.get("missing", 0)), held, fields, since, modified)


def _per_field(diff: pd.DataFrame, updating: int) -> pd.DataFrame:
    columns = ["field", "cells", "share", "examples"]
    if not len(diff):
        return pd.DataFrame({c: [] for c in columns})
    rows = []
    for field, group in diff.groupby("field", sort=False):
        pairs = list(dict.fromkeys(f"{_shown(b)} → {_shown(a)}"
                                   for b, a in zip(group["before"], group["after"])))
        rows.append({"field": field, "cells": len(group),
                     "share": len(group) / max(updating, 1),
                     "examples": "; ".join(pairs[:_EXAMPLES])})
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("cells", ascending=False, kind="stable").reset_index(drop=True)


def _shown(value: Any) -> str:
    """A value in quotes, so that spaces at its ends show ('  Berlin ' -> 'Berlin')."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "(blank)"
    text = str(value)
    return "'" + (text if len(text) <= 30 else text[:29] + "…") + "'"


def _when(at: pd.Timestamp) -> str:
    return at.tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
