"""Retries of calls that failed without a usable answer, and reading JSON answers.

Shared by the Org (describes, versions, queries) and the Bulk protocol calls in jobs.py,
whose table says which calls may be repeated and how.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import errors

RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class Retrying:
    """Retries of a call that failed without a usable answer: up to `attempts` tries, the
    waits doubling from `base` to `cap` seconds with full jitter (a random share of each,
    so parallel jobs do not retry in step), at least the Retry-After Salesforce asked for.
    `sleep` and `random` are parameters so tests run in no time."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def call(self, attempt: Callable[[int], Any]) -> Any:
        """``attempt(n)`` for n = 0, 1, ... until it returns or fails for good."""
        for n in range(self.attempts):
            try:
                return attempt(n)
            except errors.TransportError as e:  # no answer, or one that cannot be read
                failure, wait = e, None
            except errors.RequestError as e:
                if e.status not in RETRY_STATUSES:
                    raise
                failure, wait = e, e.retry_after
            if n == self.attempts - 1:
                raise failure
            backoff = self.random() * min(self.cap, self.base * 2 ** n)
            self.sleep(max(backoff, wait or 0.0))
        raise AssertionError("unreachable")


def read_json(response: Any, method: str, path: str) -> Any:
    """The answer's JSON; a body that is not JSON (a proxy's HTML page, a cut-off body)
    is a BadResponseError, retried like no answer at all."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        start = response.text[:80].strip().replace("\n", " ")
        raise errors.BadResponseError(
            f"Salesforce answered {response.status_code} to {method} {path} with {kind} that is "
            f"not JSON ({start!r}...)") from None
