"""Fault injection: make the local org misbehave on purpose, from Python or over HTTP.

Reliability tests of any client use these instead of mocking `requests`:

    org.faults.add(status=503, method="PUT", path="/batches", times=2)
    org.faults.add(drop=True, path="/jobs/ingest$")       # connection closed, no response
    org.faults.add(delay=3.0, path="/successfulResults")   # slow response
    org.fail_next_job("InvalidBatch : simulated")          # the next job ends Failed
    org.expire_tokens()                                    # every token -> 401

Over HTTP: POST /__localorg__/faults with the same keys as JSON, DELETE to clear.
"""
from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Fault:
    method: str | None = None        # e.g. "PUT"; None matches any method
    path: str | None = None          # a regular expression searched in the request path
    status: int | None = None        # answer with this status ...
    error_code: str = "SERVER_UNAVAILABLE"
    message: str = "The local org was told to fail this request"
    body: str | None = None          # ... and this raw body instead of the JSON error
    drop: bool = False               # close the connection without answering
    delay: float = 0.0               # seconds to wait before handling the request normally
    times: int | None = 1            # how many requests it hits; None = until cleared
    hits: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or re.search(self.path, path) is not None))


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, **options: Any) -> Fault:
        fault = Fault(**options)
        if fault.path is not None:
            re.compile(fault.path)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, counted as used."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]
