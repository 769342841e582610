"""The local org's HTTP layer (a werkzeug WSGI app): the URL map and the dispatch.

No business rules here, and no resource's answers either: each resource has its module,
with its URL rules and its `on_<endpoint>` handlers, and this one assembles them.

    http_auth.py        OAuth token, revoke, identity URL, userinfo
    http_rest.py        versions, resources, limits, describes, record reads
    sobjects_http.py    record writes, sObject Collections
    http_query.py       REST query / queryAll and the Tooling API's query
    http_ingest.py      ingest jobs
    http_query_jobs.py  query jobs
    http_control.py     /__localorg__/ control endpoints (faults, tokens, job faults)

What the dispatch does for every request: match the URL, parse the API version, check
the bearer token, count the call (`Sforce-Limit-Info`), render errors in Salesforce's
shape, and apply injected faults (faults.py).
"""
from __future__ import annotations

import logging
import secrets
import socket
import time
from typing import Callable, Iterator

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from . import http_auth, http_control, http_ingest, http_query, http_query_jobs, http_rest
from .engine import MAX_UPLOAD_BASE64, Engine, upload_too_large
from .errors import ApiError, not_found
from .faults import Fault, Faults
from .identity import Identity
from .limits import Limits
from .queryjobs import QueryJobs
from .responses import JSON_TYPE, json_response
from .sobjects_http import RULES as SOBJECT_RULES
from .sobjects_http import SObjectResource
from .store import Store

log = logging.getLogger(__name__)

_URLS = Map([*http_auth.RULES, *http_rest.RULES, *http_query.RULES, *http_ingest.RULES,
             *http_query_jobs.RULES, *http_control.RULES, *SOBJECT_RULES],
            strict_slashes=False, merge_slashes=False)
_PUBLIC = http_auth.PUBLIC | http_rest.PUBLIC


def error_response(e: ApiError) -> Response:
    if e.code.islower():  # OAuth errors have their own shape
        return json_response({"error": e.code, "error_description": e.message}, e.status)
    return json_response(e.body(), e.status, e.headers)


class LocalOrgApp:
    """The WSGI application. `limits` counts the calls (Sforce-Limit-Info, `/limits`).

    Every endpoint's handler is an attribute `on_<endpoint>`, bound from its resource."""

    def __init__(self, store: Store, engine: Engine, query_jobs: QueryJobs, identity: Identity,
                 faults: Faults, limits: Limits, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.engine = engine
        self.query_jobs = query_jobs
        self.identity = identity  # replaced by LocalOrg.reset(); resources read it here
        self.faults = faults
        self.limits = limits
        self.clock = clock
        rest = http_rest.RestResource(self)
        resources = [http_auth.AuthResource(self), rest, http_query.QueryResource(self),
                     http_ingest.IngestResource(self), http_query_jobs.QueryJobResource(self),
                     http_control.ControlResource(self),
                     SObjectResource(store, engine, clock, rest.record_json)]
        for rule in _URLS.iter_rules():
            name = "on_" + rule.endpoint
            handler = next(getattr(r, name) for r in resources if hasattr(r, name))
            setattr(self, name, handler)

    def __call__(self, environ, start_response):
        request = Request(environ)
        # Cap form parsing (multipart create) at the upload limit.
        request.max_content_length = MAX_UPLOAD_BASE64
        response = self.dispatch(request)
        if response is None:
            # A dropped connection: nothing may be written. werkzeug takes a
            # ConnectionError from the app as the client's doing and logs nothing (an empty
            # answer would log an AssertionError traceback for every dropped request).
            raise ConnectionResetError("the connection was dropped by a fault")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response | None:
        """The answer to a request, or None when the connection was dropped (nothing may
        be written then); injected faults act here (see faults.py)."""
        path = request.path.rstrip("/") or "/"
        fault = None if path.startswith(http_control.PREFIX) else self.faults.take(
            request.method, path)
        if fault is None:
            return self._handle(request, path)
        if fault.delay and not fault.after:
            time.sleep(fault.delay)
        response = self._handle(request, path) if fault.handles_request else None
        if fault.delay and fault.after:
            time.sleep(fault.delay)
        if fault.drop:
            _drop_connection(request)
            return None
        if fault.status is not None:
            response = _fault_response(fault)
        response.headers.update(fault.headers or {})
        if fault.truncate is not None:
            response = _truncated(response, fault.truncate, request)
        return response

    def _handle(self, request: Request, path: str) -> Response:
        adapter = _URLS.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match(path)
        except Exception as e:  # NotFound, MethodNotAllowed
            return self._routing_error(request, e)
        limit_header: dict[str, str] = {}
        try:
            version = None
            if "version" in args:
                version = http_rest.parse_version(args.pop("version"))
            user_id = None
            if endpoint not in _PUBLIC:
                user_id = self.identity.user_for(request.headers.get("Authorization"))
            if version is not None:
                limit_header = self.limits.count_api_call()
            handler = getattr(self, "on_" + endpoint)
            response = handler(request, version=version, user_id=user_id, **args)
        except ApiError as e:
            response = error_response(e)
        except RequestEntityTooLarge:
            response = error_response(upload_too_large())
        except Exception:
            # A bug answers like Salesforce's own 500s: JSON with an ErrorId, not Python's
            # error text (which can quote paths, SQL and values); the traceback goes to the
            # server's log under the same ErrorId.
            error_id = f"{secrets.randbelow(10**10)}-{secrets.randbelow(10**6)}"
            log.exception("ErrorId %s: %s %s failed", error_id, request.method, path)
            response = error_response(ApiError(
                500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this "
                f"ErrorId if you contact support: {error_id}"))
        response.headers.update(limit_header)
        return response

    def _routing_error(self, request: Request, e: Exception) -> Response:
        allowed = getattr(e, "valid_methods", None)
        if allowed:
            return json_response([{"errorCode": "METHOD_NOT_ALLOWED", "message":
                                   f"HTTP Method '{request.method}' not allowed. Allowed are "
                                   f"{','.join(sorted(allowed))}"}], 405)
        return error_response(not_found())


def _fault_response(fault: Fault) -> Response:
    """A fault's own answer: its raw body, or Salesforce's error array."""
    if fault.body is None:
        return json_response([{"errorCode": fault.error_code, "message": fault.message}],
                             fault.status)
    start = fault.body.lstrip()[:1]
    content_type = ("text/html; charset=utf-8" if start == "<" else JSON_TYPE if start in ("[", "{")
                    else "text/plain; charset=utf-8")
    return Response(fault.body, status=fault.status, content_type=content_type)


def _truncated(response: Response, size: int, request: Request) -> Response:
    """The answer with its full Content-Length but only `size` bytes of its body, after
    which the connection closes: the length tells the client the body was cut short."""
    body = response.get_data()
    cut = Response(_cut(body[:size], request), status=response.status,
                   headers=response.headers, direct_passthrough=True)
    cut.headers.pop("Transfer-Encoding", None)
    cut.headers["Content-Length"] = str(len(body))
    return cut


def _cut(part: bytes, request: Request) -> Iterator[bytes]:
    yield part  # the server writes and flushes it before asking for more
    _drop_connection(request)


def _drop_connection(request: Request) -> None:
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
