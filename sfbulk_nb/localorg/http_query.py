"""SOQL over REST: `query`, `queryAll`, their next pages, and the Tooling API's query (the
queries themselves: restquery.py, tooling.py)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from . import tooling
from .errors import ApiError
from .responses import json_response
from .restquery import RestQueries

if TYPE_CHECKING:
    from .app import LocalOrgApp

RULES = [
    Rule("/services/data/<version>/<any(query, queryAll):resource>", endpoint="query",
         methods=["GET"]),
    Rule("/services/data/<version>/<any(query, queryAll):resource>/<locator>",
         endpoint="query_more", methods=["GET"]),
    Rule("/services/data/<version>/tooling/query", endpoint="tooling_query", methods=["GET"]),
]


class QueryResource:
    def __init__(self, app: "LocalOrgApp"):
        self.queries = RestQueries(app.store)
        self.rules = app.engine.rules

    def on_query(self, request: Request, version: str, resource: str, **_) -> Response:
        return json_response(self.queries.first_page(
            _soql(request), include_deleted=resource == "queryAll", version=version,
            batch_size=_batch_size(request)))

    def on_query_more(self, request: Request, version: str, resource: str, locator: str,
                      **_) -> Response:
        return json_response(self.queries.next_page(locator, version=version,
                                                    batch_size=_batch_size(request),
                                                    resource=resource))

    def on_tooling_query(self, request: Request, version: str, **_) -> Response:
        return json_response(tooling.query(self.rules, _soql(request), version))


def _soql(request: Request) -> str:
    text = request.args.get("q")
    if text is None:
        raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
    return text


def _batch_size(request: Request) -> int | None:
    """`Sforce-Query-Options: batchSize=500`."""
    for part in request.headers.get("Sforce-Query-Options", "").split(","):
        name, _, value = part.strip().partition("=")
        # ASCII digits, not str.isdigit (true of "²", which int() refuses); long values
        # would only be clamped to the maximum anyway.
        if name.strip() == "batchSize" and re.fullmatch(r"[0-9]{1,9}", value.strip()):
            return int(value)
    return None
