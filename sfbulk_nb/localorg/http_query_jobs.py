"""Bulk API 2.0 query jobs over HTTP: create, get, list, abort, delete, and the result pages
(the jobs themselves: queryjobs.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from .responses import csv_response, job_list, json_body, json_response, list_filters

if TYPE_CHECKING:
    from .app import LocalOrgApp

RULES = [
    Rule("/services/data/<version>/jobs/query", endpoint="query_jobs", methods=["GET", "POST"]),
    Rule("/services/data/<version>/jobs/query/<job_id>", endpoint="query_job",
         methods=["GET", "PATCH", "DELETE"]),
    Rule("/services/data/<version>/jobs/query/<job_id>/results", endpoint="query_results",
         methods=["GET"]),
    # Documented as resultPages; Salesforce's own nextRecordsUrl spells it resultpages.
    Rule("/services/data/<version>/jobs/query/<job_id>/<any(resultPages, resultpages):_p>",
         endpoint="query_result_pages", methods=["GET"]),
]

# Query jobs (protocol notes 5.3): create, abort and list answer the first block, GET all.
_QUERY_KEYS = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp",
               "state", "concurrencyMode", "contentType", "apiVersion", "jobType",
               "lineEnding", "columnDelimiter")
_QUERY_GET_KEYS = _QUERY_KEYS + ("numberRecordsProcessed", "retries", "totalProcessingTime",
                                 "isPkChunkingSupported", "errorMessage")


def _query_job_json(job: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    full = {**job, "apiVersion": float(job["apiVersion"])}
    return {key: full.get(key) for key in keys if key != "errorMessage" or full.get(key)}


class QueryJobResource:
    def __init__(self, app: "LocalOrgApp"):
        self.query_jobs = app.query_jobs

    def on_query_jobs(self, request: Request, version: str, user_id: str, **_) -> Response:
        if request.method == "GET":
            jobs, locator = self.query_jobs.list_jobs(request.args.get("queryLocator"),
                                                      list_filters(request))
            return job_list([_query_job_json(j, _QUERY_KEYS) for j in jobs], locator,
                            f"/services/data/v{version}/jobs/query")
        job = self.query_jobs.create(json_body(request), float(version), user_id)
        return json_response(_query_job_json(job, _QUERY_KEYS))

    def on_query_job(self, request: Request, job_id: str, **_) -> Response:
        if request.method == "GET":
            return json_response(_query_job_json(self.query_jobs.get(job_id), _QUERY_GET_KEYS))
        if request.method == "DELETE":
            self.query_jobs.delete(job_id)
            return Response(status=204)
        body = json_body(request)
        state = body.get("state") if isinstance(body, dict) else None
        return json_response(_query_job_json(self.query_jobs.set_state(job_id, state),
                                             _QUERY_KEYS))

    def on_query_results(self, request: Request, version: str, job_id: str, **_) -> Response:
        page = self.query_jobs.results(job_id, version, request.args.get("locator"),
                                       request.args.get("maxRecords"))
        return csv_response(request, page.body, {
            "Sforce-NumberOfRecords": str(page.number_of_records),
            "Sforce-Locator": page.next_locator or "null"})

    def on_query_result_pages(self, request: Request, version: str, job_id: str,
                              **_) -> Response:
        locators, next_locator = self.query_jobs.result_pages(job_id, version,
                                                              request.args.get("locator"))
        base = f"/services/data/v{version}/jobs/query/{job_id}"
        return json_response({
            "resultPages": [{"resultUrl": f"{base}/results?locator={loc}"} for loc in locators],
            "nextRecordsUrl": None if next_locator is None else
            f"{base}/resultpages?locator={next_locator}",
            "done": next_locator is None})
