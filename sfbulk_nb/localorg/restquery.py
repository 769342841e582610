"""REST `/query` and `/queryAll`: SOQL results as Salesforce's JSON pages.

A page holds up to 2000 records (Salesforce's default; `Sforce-Query-Options: batchSize=N`
asks for 200..2000). A query that does not fit hands out a `nextRecordsUrl` ending in a
locator `<cursor>-<offset>`; the cursor remembers the compiled query in memory, like
Salesforce's server-side cursors (which also expire).

Aggregate queries answer AggregateResult records (`{"attributes": {"type":
"AggregateResult"}, "expr0": 4}`, no url) and COUNT() alone only `totalSize`, with an
empty `records`. Aggregate results page like other results here; Salesforce does not
queryMore them (what it does past 2000 groups is UNCONFIRMED). Parent-to-child
subqueries nest `{"totalSize", "done", "records"}` under the relationship name, or null.
"""
from __future__ import annotations

import itertools
import re
import secrets
import threading
from collections import OrderedDict
from typing import Any

from . import soql, values
from .errors import ApiError
from .store import Store

DEFAULT_BATCH = 2000
_MAX_CURSORS = 200


class RestQueries:
    def __init__(self, store: Store):
        self.store = store
        self._cursors: OrderedDict[str, soql.CompiledQuery] = OrderedDict()
        self._lock = threading.Lock()

    def first_page(self, text: str, *, include_deleted: bool, version: str,
                   batch_size: int | None) -> dict[str, Any]:
        try:
            query = soql.compile_query(text, self.store.catalog, include_deleted=include_deleted)
            soql.check(self.store, query)
        except soql.SoqlError as e:
            raise ApiError(400, e.code, e.message) from None
        return self._page(query, 0, version, batch_size, "queryAll" if include_deleted else "query")

    def next_page(self, locator: str, *, version: str, batch_size: int | None,
                  resource: str) -> dict[str, Any]:
        cursor, _, offset = locator.rpartition("-")
        with self._lock:
            query = self._cursors.get(cursor)
        # ASCII digits, few enough for islice (str.isdigit also passes "²", int() does not).
        if query is None or not re.fullmatch(r"[0-9]{1,18}", offset):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(query, int(offset), version, batch_size, resource, cursor)

    def _page(self, query: soql.CompiledQuery, offset: int, version: str,
              batch_size: int | None, resource: str, cursor: str | None = None) -> dict[str, Any]:
        total = soql.count(self.store, query)
        if query.count_only:
            return {"totalSize": total, "done": True, "records": []}
        size = max(200, min(batch_size or DEFAULT_BATCH, DEFAULT_BATCH))
        rows = list(itertools.islice(soql.execute(self.store, query, with_ids=True),
                                     offset, offset + size))
        if query.aggregate:
            records = [_aggregate_record(query, row) for row in rows]
        else:
            records = [self._record(query, row, version) for row in rows]
        page: dict[str, Any] = {"totalSize": total, "done": offset + len(rows) >= total,
                                "records": records}
        if not page["done"]:
            cursor = cursor or self._remember(query)
            page["nextRecordsUrl"] = (f"/services/data/v{version}/{resource}/"
                                      f"{cursor}-{offset + len(rows)}")
        return page

    def _record(self, query: soql.CompiledQuery, row: tuple, version: str) -> dict[str, Any]:
        """A record with its parent-to-child subqueries' results: each a nested query
        result, or null when the record has no such children. Child results come whole
        (done: true); Salesforce may page long ones with their own nextRecordsUrl."""
        record = _record(query, row, version)
        if query.children:
            record_id = row[len(query.columns) + query.id_paths.index(())]
            for name, child in query.children:
                rows = list(soql.execute(self.store, child, with_ids=True, parent_id=record_id))
                record[name] = {"totalSize": len(rows), "done": True, "records": [
                    self._record(child, r, version) for r in rows]} if rows else None
        return record

    def _remember(self, query: soql.CompiledQuery) -> str:
        cursor = "01gL0" + secrets.token_hex(6).upper()
        with self._lock:
            self._cursors[cursor] = query
            while len(self._cursors) > _MAX_CURSORS:
                self._cursors.popitem(last=False)
        return cursor


def _record(query: soql.CompiledQuery, row: tuple, version: str) -> dict[str, Any]:
    """One record as REST JSON: selected fields, parents nested under their relationship
    names (null when the lookup is empty), each object with its `attributes`."""
    width = len(query.columns)
    ids = dict(zip(query.id_paths, row[width:]))
    objects = {(): query.object.name}
    for column in query.columns:
        for depth in range(len(column.relationships)):
            key = tuple(r.lower() for r in column.relationships[:depth + 1])
            objects[key] = column.objects[depth + 1]
    record = _attributes(objects[()], ids.get(()), version)
    nodes: dict[tuple[str, ...], dict[str, Any] | None] = {(): record}
    for column, value in zip(query.columns, row):
        parent_key: tuple[str, ...] = ()
        target = record
        for rel in column.relationships:
            key = parent_key + (rel.lower(),)
            if key not in nodes:
                node = (_attributes(objects[key], ids[key], version)
                        if ids.get(key) is not None else None)
                nodes[key] = node
                if target is not None:
                    target[rel] = node
            target = nodes[key]
            parent_key = key
        if target is not None:
            target[column.field.name] = values.to_json(column.field, value)
    return record


def _aggregate_record(query: soql.CompiledQuery, row: tuple) -> dict[str, Any]:
    """An AggregateResult: its attributes carry a type and no url (no record is behind it),
    then one key per SELECT item, named by its alias, exprN or the grouped field's name."""
    record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
    for output, value in zip(query.outputs or (), row):
        record[output.name] = values.to_json(output.field, value)
    return record


def _attributes(sobject: str, record_id: str | None, version: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject,
                           "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}}

