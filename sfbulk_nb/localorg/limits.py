"""The org's daily allowances: counted as they are used, reported, and refused when gone.

    DailyApiRequests       every versioned REST / Bulk call (Sforce-Limit-Info: api-usage=n/max)
    DailyBulkApiBatches    Bulk ingest batches: one per 10,000 records a job processes (the
                           empty "parent" batch of a Bulk 2.0 upload does not count); shared
                           with Bulk 1.0, which the local org does not serve
    DailyBulkV2QueryJobs   Bulk 2.0 query jobs created

Salesforce counts over a rolling 24 hours; the local org counts per UTC day of its clock, so
a test moves to "tomorrow" by moving the clock. The counts live in the org's SQLite file
(they survive restarts; reset() forgets them); the allowances are the org's settings
(`LocalOrg(limits={...})`, `set_limits`), defaults as a Developer Edition-like org reports.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Mapping

from .errors import ApiError
from .store import Store

API_REQUESTS = "DailyApiRequests"
BULK_BATCHES = "DailyBulkApiBatches"
QUERY_JOBS = "DailyBulkV2QueryJobs"
DEFAULT_LIMITS = {API_REQUESTS: 100_000, BULK_BATCHES: 15_000, QUERY_JOBS: 10_000}
# Reported by /limits as Salesforce does, never used up here.
_FIXED = {"DailyBulkV2QueryFileStorageMB": 976562, "DataStorageMB": 5, "FileStorageMB": 20}

# Salesforce's answer to a call past DailyApiRequests (recorded in clients' captures).
TOTAL_REQUESTS_EXCEEDED = "TotalRequests Limit exceeded."
# Bulk 1.0 fails a batch past the allowance with `ExceededQuota : ApiBatchItems Limit
# exceeded` (seen in third-party captures). For Bulk 2.0 we follow the documented fate of a
# job past the daily records limit ("the remaining data isn't processed. The ingest job is
# marked as having failed") with Bulk 1.0's text as its errorMessage: UNCONFIRMED.
BATCHES_EXCEEDED = "ExceededQuota : ApiBatchItems Limit exceeded."
# UNCONFIRMED: Salesforce's answer to a query job create past DailyBulkV2QueryJobs is not
# documented; we answer like the other daily allowances (403 REQUEST_LIMIT_EXCEEDED), the
# message naming the allowance in the "<name> Limit exceeded." form of TotalRequests'.
QUERY_JOBS_EXCEEDED = "DailyBulkV2QueryJobs Limit exceeded."


def check_limits(limits: Mapping[str, int]) -> dict[str, int]:
    """`limits` as {name: allowance}, or ValueError naming what is wrong."""
    if not isinstance(limits, Mapping):
        raise ValueError(f"limits must be a dict like {{'{API_REQUESTS}': 200}}, not "
                         f"{type(limits).__name__}")
    out = {}
    for name, value in limits.items():
        if name not in DEFAULT_LIMITS:
            raise ValueError(f"{name!r} is not a limit the local org counts; use "
                             f"{', '.join(DEFAULT_LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"limit {name} must be a whole number of at least 0, not {value!r}")
        out[name] = value
    return out


class Limits:
    """The allowances of one org and what today has used of them."""

    def __init__(self, store: Store, limits: Mapping[str, int] | None = None, *,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        self.allowances = dict(DEFAULT_LIMITS)
        self.set(limits or {})

    def set(self, limits: Mapping[str, int]) -> None:
        """Change some allowances (the others keep theirs)."""
        self.allowances.update(check_limits(limits))

    def day(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%d")

    def used(self, name: str) -> int:
        return self.store.usage(self.day(), name)

    def take(self, name: str, amount: int = 1) -> bool:
        """Use `amount` of allowance `name`; False (nothing used) when too little is left."""
        return self.store.take_allowance(self.day(), name, amount, self.allowances[name])

    def limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info":
                f"api-usage={self.used(API_REQUESTS)}/{self.allowances[API_REQUESTS]}"}

    def count_api_call(self) -> dict[str, str]:
        """Count one API call; its Sforce-Limit-Info header, or the 403 once none is left."""
        if not self.take(API_REQUESTS):
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS_EXCEEDED,
                           self.limit_info())
        return self.limit_info()

    def take_query_job(self) -> None:
        if not self.take(QUERY_JOBS):
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", QUERY_JOBS_EXCEEDED)

    def report(self) -> dict[str, dict[str, int]]:
        """The `/limits` resource's body: {name: {"Max": n, "Remaining": n}}, sorted."""
        out = {name: {"Max": most, "Remaining": max(0, most - self.used(name))}
               for name, most in self.allowances.items()}
        out.update({name: {"Max": most, "Remaining": most} for name, most in _FIXED.items()})
        return dict(sorted(out.items()))
