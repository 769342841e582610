"""The local org's own control endpoints (`/__localorg__/...`): arm or clear faults, expire
tokens, fail the next job, lock rows. Tests and demos use them from outside the process;
the same levers exist on LocalOrg."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .errors import ApiError
from .responses import json_body, json_response
from .runner import JobFault

if TYPE_CHECKING:
    from .app import LocalOrgApp

RULES = [
    Rule("/__localorg__/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
    Rule("/__localorg__/expire-tokens", endpoint="expire_tokens", methods=["POST"]),
    Rule("/__localorg__/fail-next-job", endpoint="fail_next_job", methods=["POST"]),
    Rule("/__localorg__/lock-rows", endpoint="lock_rows", methods=["POST"]),
]
PREFIX = "/__localorg__"  # injected faults never act on these paths


class ControlResource:
    def __init__(self, app: "LocalOrgApp"):
        self.store = app.store
        self.faults = app.faults
        self.runner = app.engine.runner
        self.clock = app.clock

    def on_faults(self, request: Request, **_) -> Response:
        if request.method == "POST":
            _arm(request, self.faults.add)
        elif request.method == "DELETE":
            self.faults.clear()
        return json_response(self.faults.describe())

    def on_expire_tokens(self, request: Request, **_) -> Response:
        self.store.expire_tokens(self.clock())
        return Response(status=204)

    def on_lock_rows(self, request: Request, **_) -> Response:
        _arm(request, self.faults.lock_rows)
        return json_response(self.faults.describe())

    def on_fail_next_job(self, request: Request, **_) -> Response:
        _arm(request, lambda **options: self.runner.job_faults.append(JobFault(**options)))
        return Response(status=204)


def _arm(request: Request, make: Callable[..., Any]) -> None:
    """Call `make` with a control request's JSON object (none: no options); what it
    refuses is a 400."""
    options = json_body(request) if request.get_data() else {}
    if not isinstance(options, dict):
        raise ApiError(400, "INVALID_FAULT", "The request body must be a JSON object")
    try:
        make(**options)
    except (TypeError, ValueError) as e:
        raise ApiError(400, "INVALID_FAULT", str(e)) from None
