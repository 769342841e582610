"""Fault injection: make the local org misbehave on purpose, from Python or over HTTP.

Reliability tests of any client use these instead of mocking `requests`:

    org.faults.add(status=503, method="PUT", path="/batches", times=2)
    org.faults.add(status=429, headers={"Retry-After": "1"})  # the next request, any path
    org.faults.add(drop=True, path="/jobs/ingest$")            # connection closed, no answer
    org.faults.add(delay=3.0, path="/successfulResults")       # slow answer
    org.faults.add(status=503, rate=0.2, seed=1, times=None)   # flaky: about 1 call in 5
    org.faults.add(after=True, drop=True, method="POST", path="/jobs/ingest$")
                                             # the job is created, then the answer is lost
    org.faults.add(truncate=100, path="/failedResults")   # 100 bytes, then the line dies
    org.faults.add(after=True, status=200, body="<html>Down for maintenance</html>")
    org.faults.lock_rows(share=0.1, seed=1)  # 1 ingest row in 10 fails UNABLE_TO_LOCK_ROW
    org.fail_next_job("InvalidBatch : simulated", after_records=20)
    org.expire_tokens()                      # every token -> 401
    org.faults.clear()                       # request faults and row locks

Over HTTP, with the org's bearer token: POST /__localorg__/faults with the keys of `add`
as a JSON object, POST /__localorg__/lock-rows with those of `lock_rows`; GET
/__localorg__/faults lists both kinds, DELETE clears them. POST /__localorg__/fail-next-job
({"message", "after_records"}) and POST /__localorg__/expire-tokens do the rest.

A request fault hits requests whose method and path (a regular expression searched in
the path; the control endpoints are never hit) match, each with probability `rate`, for
`times` hits (None: until cleared); the first armed fault that hits wins. What it does:

- by default, before the request is handled, which then never happens: `drop` closes the
  connection without an answer; `status` answers with Salesforce's error array
  (`error_code`, `message`) or with the raw `body` (HTML when it starts with `<`, JSON
  when it starts with `[` or `{`, else plain text). A fault with only a `delay` slows the
  request down, then handles it.
- `after=True`: the request is handled first and what it did is committed (job created,
  upload stored, job closed); then the answer is lost: dropped, replaced by `status` and
  `body`, or held back for `delay` seconds. This is the "server acted, client never heard"
  case that retries must survive.
- `truncate=N`: the answer (the real one, so the request is handled, or the fault's own
  `status`/`body`) goes out with its full Content-Length but only N bytes of body, then the
  connection closes: a client sees an incomplete read.
- `headers` are added to the answer, e.g. `{"Retry-After": "1"}` on a 429 or 503.

Randomness is reproducible: every fault and row lock draws from its own
`random.Random(seed)`, so a seeded fault hits the same requests of the same sequence on
every run (seed None: different every run).

A row lock makes a `share` of the rows of processed ingest jobs fail with
`UNABLE_TO_LOCK_ROW` (not written, counted in numberRecordsFailed, listed in
failedResults), for `times` rows (None: until cleared).
"""
from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class _Odds:
    """Something that hits at a rate, from its own seeded random numbers, a number of
    times."""

    seed: int | None = None
    times: int | None = 1            # how many hits; None = until cleared
    hits: int = field(default=0, init=False)
    _random: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self.times is None or (isinstance(self.times, int) and self.times >= 1),
               "times must be a whole number of at least 1, or None")
        self._random = random.Random(self.seed)

    def roll(self, rate: float) -> bool:
        """Whether this one hits (counted when it does); rate 1 draws no number, so a
        plain fault leaves a seeded sequence alone."""
        if rate < 1 and self._random.random() >= rate:
            return False
        self.hits += 1
        return True

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def describe(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_random"}


@dataclass
class Fault(_Odds):
    method: str | None = None        # e.g. "PUT"; None matches any method
    path: str | None = None          # a regular expression searched in the request path
    status: int | None = None        # answer with this status ...
    error_code: str = "SERVER_UNAVAILABLE"
    message: str = "The local org was told to fail this request"
    body: str | None = None          # ... and this raw body instead of the JSON error
    headers: dict[str, str] | None = None  # added to the answer
    drop: bool = False               # close the connection without answering
    delay: float = 0.0               # seconds to wait (before handling, or after if `after`)
    after: bool = False              # handle the request first, then lose its answer
    truncate: int | None = None      # send only this many bytes of the body, then close
    rate: float = 1.0                # probability that a matching request is hit

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.method is None or isinstance(self.method, str), "method must be a string")
        _check(self.path is None or isinstance(self.path, str), "path must be a string")
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as e:
                raise ValueError(f"path is not a regular expression: {e}") from None
        _check(self.status is None or (isinstance(self.status, int) and 100 <= self.status < 600),
               "status must be an HTTP status code")
        _check(self.body is None or isinstance(self.body, str), "body must be a string")
        _check(self.body is None or self.status is not None, "a body needs a status")
        _check(self.headers is None or (isinstance(self.headers, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items())),
            "headers must map names to strings")
        _check(_number(self.delay) and self.delay >= 0, "delay must be a number of seconds")
        _check(self.truncate is None or (isinstance(self.truncate, int) and self.truncate >= 0),
               "truncate must be a number of bytes")
        _check(_number(self.rate) and 0 <= self.rate <= 1, "rate must be between 0 and 1")

    @property
    def handles_request(self) -> bool:
        """Whether the request is handled before the fault answers: after-faults, and
        faults that only delay or cut the real answer."""
        return self.after or (self.status is None and not self.drop)

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method.upper() == method)
                and (self.path is None or re.search(self.path, path) is not None))


@dataclass
class RowLock(_Odds):
    """Ingest rows that fail with UNABLE_TO_LOCK_ROW, as under lock contention."""

    times: int | None = None         # how many rows it fails; None = until cleared
    share: float = 1.0               # probability that a processed row fails

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(_number(self.share) and 0 <= self.share <= 1, "share must be between 0 and 1")


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._row_locks: list[RowLock] = []

    def add(self, **options: Any) -> Fault:
        """Arm a request fault (the keys are Fault's fields; see the module docstring)."""
        fault = Fault(**options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def lock_rows(self, share: float = 1.0, *, seed: int | None = None,
                  times: int | None = None) -> RowLock:
        """Make a `share` of processed ingest rows fail with UNABLE_TO_LOCK_ROW, for
        `times` rows (None: until cleared)."""
        lock = RowLock(seed=seed, times=times, share=share)
        with self._lock:
            self._row_locks.append(lock)
        return lock

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._row_locks.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault that hits this request, counted as used."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path) and fault.roll(fault.rate):
                    if fault.spent:
                        self._faults.remove(fault)
                    return fault
        return None

    def locked_rows(self, count: int) -> set[int]:
        """Which of a batch's `count` rows (by index) fail to lock."""
        with self._lock:
            locked: set[int] = set()
            for lock in list(self._row_locks):
                for i in range(count):
                    if lock.spent:
                        break
                    if i not in locked and lock.roll(lock.share):
                        locked.add(i)
                if lock.spent:
                    self._row_locks.remove(lock)
            return locked

    def describe(self) -> list[dict[str, Any]]:
        """The armed request faults, then the row locks (as `{"lock_rows": {...}}`)."""
        with self._lock:
            return ([f.describe() for f in self._faults]
                    + [{"lock_rows": lock.describe()} for lock in self._row_locks])


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
