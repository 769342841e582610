"""What the HTTP modules share: JSON and CSV answers in Salesforce's content types, the
request's JSON body, and the job lists of ingest and query jobs."""
from __future__ import annotations

import json
import zlib
from typing import Any, Iterable, Iterator

from werkzeug.wrappers import Request, Response

from .errors import ApiError

JSON_TYPE = "application/json;charset=UTF-8"
CSV_TYPE = "text/csv; charset=UTF-8"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers, content_type=JSON_TYPE)


def json_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def csv_response(request: Request, body: Iterable[bytes],
                 headers: dict[str, str] | None = None) -> Response:
    """A CSV body (byte strings, sent as they are produced), gzipped when asked."""
    headers = dict(headers or {})
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        body = _gzipped(body)
        headers["Content-Encoding"] = "gzip"
    return Response(body, content_type=CSV_TYPE, headers=headers)


def _gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # with gzip framing
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()


def list_filters(request: Request) -> dict[str, str]:
    """The job list's filters: `jobType`, `concurrencyMode`, `isPkChunkingEnabled`."""
    filters = {}
    if request.args.get("jobType"):
        filters["jobType"] = request.args["jobType"]
    if request.args.get("concurrencyMode"):
        filters["concurrencyMode"] = request.args["concurrencyMode"]
    if request.args.get("isPkChunkingEnabled", "").lower() == "true":
        filters["jobType"] = "PkChunking"  # a Bulk 1.0 notion: never true of Bulk 2.0 jobs
    return filters


def job_list(records: list[dict[str, Any]], locator: str | None, path: str) -> Response:
    return json_response({
        "done": locator is None, "records": records,
        "nextRecordsUrl": None if locator is None else f"{path}?queryLocator={locator}"})
