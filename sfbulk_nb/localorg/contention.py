"""Lock contention between concurrent ingest jobs, as Salesforce has it (off by default).

    LocalOrg(contention=0.3, seed=1)   # or org.set_contention(0.3, seed=1)

Salesforce locks a parent record while a child of it is written (Contacts of one Account,
line items of one Opportunity); two jobs processed at the same time that write children
of the same parent wait on each other, and a row that waits too long fails with
UNABLE_TO_LOCK_ROW. The local org processes one job at a time, so "at the same time" is
modelled as: the job being processed, and the other ingest jobs queued to be processed
(UploadComplete or InProgress). A row of a batch whose parent (a lookup written by id,
or a relationship column `Account.customExtIdField__c`) is also a parent in one of those
jobs fails with UNABLE_TO_LOCK_ROW with probability `rate`, drawn from a seeded random
generator. Each batch that had such rows adds one to the job's `retries`: Salesforce
documents `retries` as "the number of times that Salesforce attempted to save the results
of an operation ... due to a problem, such as lock contention" (UNCONFIRMED: how it counts
them; one per batch that met contention is our choice).

A job's parents are read from its upload once, when first needed, and forgotten when the
job is done.
"""
from __future__ import annotations

import random
import threading
from typing import Callable, Iterable

from . import csvfmt
from .records import Header


class Contention:
    def __init__(self, rate: float = 0.0, seed: int | None = None):
        self.set(rate, seed)
        self._parents: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def set(self, rate: float, seed: int | None = None) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"contention must be a share of rows between 0 and 1, not {rate!r}")
        self.rate = float(rate)
        self.random = random.Random(seed)

    @property
    def on(self) -> bool:
        return self.rate > 0

    @staticmethod
    def row_parents(header: Header, batch: list[list[str]]) -> list[tuple[str, ...]]:
        """Each row's parent keys: `<Object>:<id>` for a lookup written by id, `<Object>.
        <field>:<value>` for a relationship column (its parent by external id)."""
        columns = []
        for column, values in zip(header.columns, batch):
            if column.parent is not None and column.parent_key is not None:
                columns.append((f"{column.parent.name}.{column.parent_key.name}:", values, 0))
            elif column.field.type == "reference" and column.field.name != "Id":
                # An id's first 15 characters name its record (the rest is a checksum).
                columns.append(("id:", values, 15))
        size = len(batch[0]) if batch else 0
        return [tuple(tag + (values[i][:cut] if cut else values[i])
                      for tag, values, cut in columns if values[i] not in ("", "#N/A"))
                for i in range(size)]

    def job_parents(self, job_id: str,
                    read: Callable[[], tuple[Header, bytes | csvfmt.UploadSource, str, str]]
                    ) -> frozenset[str]:
        """Every parent key of a job's upload (read once; ``read`` gives the job's header,
        data (or where to read it: csvfmt.open_upload) and CSV options)."""
        with self._lock:
            found = self._parents.get(job_id)
        if found is not None:
            return found
        header, data, delimiter, ending = read()
        keys: set[str] = set()
        upload = csvfmt.open_upload(data, delimiter, ending)
        for batch in upload.column_batches(10_000):
            for row in self.row_parents(header, batch):
                keys.update(row)
        found = frozenset(keys)
        with self._lock:
            self._parents[job_id] = found
        return found

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._parents.pop(job_id, None)

    def locked_rows(self, rows: list[tuple[str, ...]], others: Iterable[frozenset[str]]
                    ) -> set[int]:
        """Which rows fail to lock: a parent shared with another job, then the dice."""
        busy = frozenset().union(*others)
        if not busy:
            return set()
        return {i for i, keys in enumerate(rows)
                if keys and any(k in busy for k in keys) and self.random.random() < self.rate}
