"""Ingest jobs over HTTP: create (JSON or multipart), upload, close or abort, get, list,
delete, and the three result CSVs (the jobs themselves: engine.py)."""
from __future__ import annotations

import gzip
import json
import shutil
import zlib
from typing import TYPE_CHECKING, Any, BinaryIO

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .engine import RESULT_KINDS, check_upload_size
from .errors import ApiError, not_found
from .responses import csv_response, job_list, json_body, json_response, list_filters

if TYPE_CHECKING:
    from .app import LocalOrgApp

RULES = [
    Rule("/services/data/<version>/jobs/ingest", endpoint="ingest_jobs",
         methods=["GET", "POST"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>", endpoint="ingest_job",
         methods=["GET", "PATCH", "DELETE"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>/batches", endpoint="upload",
         methods=["PUT"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>/<kind>", endpoint="results",
         methods=["GET"]),
]

_BODY_PIECE = 1024 * 1024  # an upload is read (and a gzip one unpacked) this much at a time
# The JobInfo keys each call answers with (protocol notes 2.3, 2.4).
_CREATE_KEYS = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp",
                "state", "externalIdFieldName", "concurrencyMode", "contentType", "apiVersion",
                "contentUrl", "lineEnding", "columnDelimiter")
_PATCH_KEYS = _CREATE_KEYS[:11]
_LIST_KEYS = _PATCH_KEYS + ("jobType", "lineEnding", "columnDelimiter")
_GET_KEYS = _PATCH_KEYS + ("jobType", "contentUrl", "lineEnding", "columnDelimiter",
                           "numberRecordsProcessed", "numberRecordsFailed", "retries",
                           "totalProcessingTime", "apiActiveProcessingTime",
                           "apexProcessingTime", "errorMessage", "assignmentRuleId")


def _job_json(job: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    version = f"{float(job['apiVersion']):.1f}"
    full = {**job, "contentUrl": f"services/data/v{version}/jobs/ingest/{job['id']}/batches",
            "apiVersion": float(job["apiVersion"])}
    out = {}
    for key in keys:
        value = full.get(key)
        if key in ("externalIdFieldName", "errorMessage", "assignmentRuleId") and not value:
            continue
        if key.startswith("numberRecords") and job["state"] == "Open":
            continue  # absent on Open jobs, as in Salesforce's own example
        out[key] = value
    return out


class IngestResource:
    def __init__(self, app: "LocalOrgApp"):
        self.engine = app.engine

    def on_ingest_jobs(self, request: Request, version: str, user_id: str, **_) -> Response:
        if request.method == "GET":
            jobs, locator = self.engine.list_jobs(request.args.get("queryLocator"),
                                                  list_filters(request))
            return job_list([_job_json(j, _LIST_KEYS) for j in jobs], locator,
                            f"/services/data/v{version}/jobs/ingest")
        if request.mimetype == "multipart/form-data":
            return self._multipart_create(request, version, user_id)
        job = self.engine.create_job(json_body(request), float(version), user_id)
        return json_response(_job_json(job, _CREATE_KEYS))

    def _multipart_create(self, request: Request, version: str, user_id: str) -> Response:
        # Job JSON may come as a plain form field or as a file part with its own type.
        job_part = request.form.get("job")
        if job_part is None and "job" in request.files:
            job_part = request.files["job"].read().decode("utf-8")
        content = request.files.get("content")
        data = content.read() if content is not None else request.form.get("content", "").encode()
        if job_part is None:
            raise ApiError(400, "INVALIDJOB", "InvalidJob : the multipart request has no 'job' part")
        try:
            body = json.loads(job_part)
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR", "The 'job' part is not valid JSON") from None
        job = self.engine.create_job(body, float(version), user_id)
        self.engine.upload(job["id"], data)
        job = self.engine.set_state(job["id"], "UploadComplete")
        return json_response(_job_json(job, _CREATE_KEYS))

    def on_ingest_job(self, request: Request, job_id: str, **_) -> Response:
        if request.method == "GET":
            return json_response(_job_json(self.engine.get_job(job_id), _GET_KEYS))
        if request.method == "DELETE":
            self.engine.delete_job(job_id)
            return Response(status=204)
        body = json_body(request)
        state = body.get("state") if isinstance(body, dict) else None
        return json_response(_job_json(self.engine.set_state(job_id, state), _PATCH_KEYS))

    def on_upload(self, request: Request, job_id: str, **_) -> Response:
        self.engine.get_job(job_id)
        if request.content_length is not None:
            check_upload_size(request.content_length)
        # Spooled to disk as it comes, then kept a piece at a time: the server never holds
        # the upload whole (it was the server's peak memory, 70 MB more at 1M rows).
        with self.engine.store.spool() as spool:
            if request.headers.get("Content-Encoding", "").lower() == "gzip":
                _gunzip(request.stream, spool)
            else:
                shutil.copyfileobj(request.stream, spool, _BODY_PIECE)
            self.engine.upload(job_id, spool)
        return Response(status=201)

    def on_results(self, request: Request, job_id: str, kind: str, **_) -> Response:
        canonical = {k.lower(): k for k in RESULT_KINDS}.get(kind.lower())
        # Documented spellings, plus `unprocessedRecords` as simple-salesforce sends it.
        if canonical is None or (kind != canonical and kind != "unprocessedRecords"):
            raise not_found()
        return csv_response(request, [self.engine.results(job_id, canonical)])


def _gunzip(stream: BinaryIO, out: BinaryIO) -> None:
    """Unpack a gzip request body into `out` a piece at a time, refused (413, as an
    oversized upload) as soon as it outgrows the upload limit: a 1 MB gzip of zeros unpacks
    to 1 GB."""
    size = 0
    with gzip.GzipFile(fileobj=stream, mode="rb") as unpacked:
        while piece := _unpacked_piece(unpacked):
            size += len(piece)
            check_upload_size(size)
            out.write(piece)


def _unpacked_piece(unpacked: gzip.GzipFile) -> bytes:
    try:
        return unpacked.read(_BODY_PIECE)
    except (OSError, EOFError, zlib.error):
        # Salesforce's answer to a bad gzip body is not recorded; 400 is our guess.
        raise ApiError(400, "API_ERROR", "The request body is not valid gzip data "
                       "(Content-Encoding: gzip)") from None
