"""The one exception tree of sfbulk_nb.

    SFBulkError
    ├── ConfigError           connect() could not work out which org or credentials to use
    ├── InputError            the DataFrame or arguments cannot be sent (names rows/columns)
    │   ├── ValidationError   checks before sending found problems (.problems); nothing sent
    │   └── RunInProgressError  a run of the same frame has not finished (.run_id); resume it
    ├── AuthError             login refused, or a session expired and could not be renewed
    ├── TransportError        no HTTP answer (connection refused or dropped, timeouts)
    │   └── BadResponseError  an answer that cannot be read (HTML for JSON, cut off)
    ├── RequestError          Salesforce answered with an error (.status, .error_code)
    │   ├── NotFoundError     404: unknown job, object or record
    │   └── LimitExceededError  a daily allowance of the org is used up (.limit names it)
    ├── JobFailedError        a job ended Failed or Aborted (.job_id, .error_message)
    ├── AlignmentError        result rows and input rows do not pair up (results.py)
    └── RunError              a run met an unexpected error (the original in __cause__)

Every HTTP error response becomes one of these in `from_response`, and nowhere else.
Messages never contain access tokens, passwords or client secrets.
"""
from __future__ import annotations

import re
from typing import Any


class SFBulkError(Exception):
    """Root of every error sfbulk_nb raises."""


class ConfigError(SFBulkError):
    pass


class InputError(SFBulkError, ValueError):
    pass


class ValidationError(InputError):
    """The frame's problems stop the load before any job exists. `problems` is the
    `Problems` frame (one row per problem); the message is its summary."""

    # The note of problems of some rows (the others: of a whole column, the same in any
    # part of the input).
    ROWS_NOTE = ("the frame has problems (on_invalid='raise'): apply the fixes, or pass "
                 "on_invalid='skip' to send only the valid rows")

    def __init__(self, problems: Any, note: str | None = None, *, label: str = "row",
                 after: str | None = None):
        """``label``: what the problems' row labels are (a streamed file's: "line");
        ``after``: a closing paragraph (how to apply the fixes to a file)."""
        self.problems = problems
        self.note = note or self.ROWS_NOTE
        super().__init__(f"Nothing was sent: {self.note}.\n{problems.summary_text(label=label)}"
                         + (f"\n{after}" if after else ""))


class RunInProgressError(InputError):
    """The journal has an unfinished run of the same frame into the same object: sending it
    again could write its rows twice. `run_id` names it for `sfb.resume(run_id, df)`."""

    def __init__(self, message: str, *, run_id: str):
        super().__init__(message)
        self.run_id = run_id


class AuthError(SFBulkError):
    pass


class TransportError(SFBulkError):
    pass


class BadResponseError(TransportError):
    """Salesforce (or a proxy before it) answered something that is not what the call
    returns: an HTML page instead of JSON, a CSV cut off. Worth retrying, like no answer."""


class RunError(SFBulkError):
    """A run met an error that is not one of the above (a bug); it is kept on the result
    and raised by raise_for_status() with the original as its __cause__."""


class RequestError(SFBulkError):
    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None,
                 method: str | None = None, path: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.method = method
        self.path = path
        self.retry_after = retry_after  # seconds, from a Retry-After header (429, 503)


class NotFoundError(RequestError):
    pass


class LimitExceededError(RequestError):
    """A daily allowance of the org is used up; `limit` names it as `GET .../limits` does
    (DailyApiRequests, DailyBulkV2QueryJobs, ...), None when the answer does not say."""

    def __init__(self, message: str, *, limit: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.limit = limit


# Salesforce's limit errors say "<name> Limit exceeded." with an internal name for some
# allowances; the name `/limits` reports them under is the one a user can look up.
_LIMIT_NAMES = {"TotalRequests": "DailyApiRequests", "ApiBatchItems": "DailyBulkApiBatches"}


def limit_name(message: str | None) -> str | None:
    """The `/limits` name of the allowance a limit error's message is about, if it says."""
    found = re.search(r"(\w+) Limit exceeded", message or "")
    if found is None:
        return None
    return _LIMIT_NAMES.get(found.group(1), found.group(1))


def limit_advice(limit: str | None) -> str:
    """What to say about a used-up allowance, naming it."""
    which = f"the org's daily allowance {limit}" if limit else "a daily allowance of the org"
    return (f"{which} is used up; the rows it stopped can be sent once it resets (Salesforce "
            "counts the last 24 hours; GET /services/data/vXX.X/limits shows what is left) or "
            "an admin raises it")


class JobFailedError(SFBulkError):
    def __init__(self, message: str, *, job_id: str, state: str, error_message: str | None):
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.error_message = error_message


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(errorCode, message) from Salesforce's error shapes: a list of objects, an object,
    or OAuth's {"error", "error_description"}."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error")
        message = body.get("message") or body.get("error_description")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def from_response(response: Any, *, method: str, path: str) -> SFBulkError:
    """The exception for an HTTP error response (`response` is a requests.Response); `path`
    may be a whole URL (a login goes to another host than the API calls)."""
    status = response.status_code
    try:
        code, message = _error_fields(response.json())
    except ValueError:
        code, message = None, None
    if message is None:
        text = response.text.strip()
        message = text[:300] if text else response.reason or "no details"
    where = f"{method} {path}"
    detail = f"{code}: {message}" if code else message
    if path.endswith("/services/oauth2/token") and status in (400, 401, 403):
        return AuthError(f"Salesforce refused the login ({detail}) on {where}")
    if status == 401:
        return AuthError(f"Salesforce refused the session ({detail}) on {where}; give the "
                         "org a new access token with org.set_token(...), or connect again")
    kwargs = dict(status=status, error_code=code, method=method, path=path,
                  retry_after=_seconds(response.headers.get("Retry-After")))
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        limit = limit_name(message)
        advice = limit_advice(limit)
        return LimitExceededError(f"{advice[0].upper()}{advice[1:]} ({detail} on {where})",
                                  limit=limit, **kwargs)
    if status == 404:
        return NotFoundError(f"Not found: {detail} ({where})", **kwargs)
    return RequestError(f"Salesforce answered {status} to {where}: {detail}", **kwargs)


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (its delta-seconds form; an HTTP date is rare from Salesforce
    and taken as unknown)."""
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


# A Python keyword as the library's messages advise it ("pass on_invalid='skip'") and the
# option a command line takes for it (the magics, sfbulk-nb).
_KEYWORDS_AS_OPTIONS = (
    (re.compile(r"on_invalid=(['\"])(\w+)\1"), r"--on-invalid \2"),
    (re.compile(r"\bpass encoding=(['\"])([\w.-]+)\1"), r"pass --encoding \2"),
    (re.compile(r"\bpass sep=(['\"])(.)\1"), r"pass --sep '\2'"),
)


def as_options(text: str) -> str:
    """A message's advice in a command's spelling: ``pass on_invalid='skip'`` ->
    ``--on-invalid skip``, ``pass encoding="cp1252"`` -> ``pass --encoding cp1252``,
    ``pass sep=';'`` -> ``pass --sep ';'``. Pandas code in the message (``read_csv(...,
    sep=';')``) is left as it is."""
    for pattern, option in _KEYWORDS_AS_OPTIONS:
        text = pattern.sub(option, text)
    return text
