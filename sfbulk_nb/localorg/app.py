"""The local org's HTTP layer (a werkzeug WSGI app): routes, parsing, response shapes.

No business rules here: the engine, store and identity decide; this module only speaks
Salesforce's wire format (status codes, JSON key sets per call, CSV bodies, error arrays,
`Sforce-Limit-Info`).
"""
from __future__ import annotations

import gzip
import json
import logging
import re
import secrets
import socket
import time
import zlib
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import ids, tooling, values
from .engine import (MAX_UPLOAD_BASE64, RESULT_KINDS, Engine, check_upload_size,
                     upload_too_large)
from .errors import ApiError, not_found
from .faults import Fault, Faults
from .identity import Identity
from .limits import Limits
from .queryjobs import QueryJobs
from .responses import JSON_TYPE, json_response
from .restquery import RestQueries
from .runner import JobFault
from .sobjects_http import RULES as SOBJECT_RULES
from .sobjects_http import SObjectResource
from .store import Store

log = logging.getLogger(__name__)

LATEST_VERSION = "66.0"
OLDEST_VERSION = 31
RETIRED_FROM = 21
_RELEASES = {57: "Spring '23", 58: "Summer '23", 59: "Winter '24", 60: "Spring '24",
             61: "Summer '24", 62: "Winter '25", 63: "Spring '25", 64: "Summer '25",
             65: "Winter '26", 66: "Spring '26"}
CSV_TYPE = "text/csv; charset=UTF-8"
_GUNZIP_PIECE = 1024 * 1024  # a gzip upload is unpacked this much at a time

_CREATE_KEYS = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp",
                "state", "externalIdFieldName", "concurrencyMode", "contentType", "apiVersion",
                "contentUrl", "lineEnding", "columnDelimiter")
_PATCH_KEYS = _CREATE_KEYS[:11]
_LIST_KEYS = _PATCH_KEYS + ("jobType", "lineEnding", "columnDelimiter")
_GET_KEYS = _PATCH_KEYS + ("jobType", "contentUrl", "lineEnding", "columnDelimiter",
                           "numberRecordsProcessed", "numberRecordsFailed", "retries",
                           "totalProcessingTime", "apiActiveProcessingTime",
                           "apexProcessingTime", "errorMessage", "assignmentRuleId")
# Query jobs (protocol notes 5.3): create, abort and list answer the first block, GET all.
_QUERY_KEYS = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp",
               "state", "concurrencyMode", "contentType", "apiVersion", "jobType",
               "lineEnding", "columnDelimiter")
_QUERY_GET_KEYS = _QUERY_KEYS + ("numberRecordsProcessed", "retries", "totalProcessingTime",
                                 "isPkChunkingSupported", "errorMessage")

_URLS = Map([
    Rule("/services/oauth2/token", endpoint="token", methods=["POST"]),
    Rule("/services/oauth2/userinfo", endpoint="userinfo", methods=["GET", "POST"]),
    Rule("/services/oauth2/revoke", endpoint="revoke", methods=["GET", "POST"]),
    Rule("/id/<org_key>/<user_key>", endpoint="identity", methods=["GET", "POST"]),
    Rule("/services/data", endpoint="versions", methods=["GET"]),
    Rule("/services/data/<version>", endpoint="resources", methods=["GET"]),
    Rule("/services/data/<version>/limits", endpoint="limits", methods=["GET"]),
    Rule("/services/data/<version>/sobjects", endpoint="global_describe", methods=["GET"]),
    Rule("/services/data/<version>/sobjects/<obj>", endpoint="sobject_info", methods=["GET"]),
    Rule("/services/data/<version>/sobjects/<obj>/describe", endpoint="describe",
         methods=["GET"]),
    Rule("/services/data/<version>/sobjects/<obj>/<record_id>", endpoint="record",
         methods=["GET"]),
    Rule("/services/data/<version>/sobjects/<obj>/<field>/<path:value>",
         endpoint="record_by_key", methods=["GET"]),
    Rule("/services/data/<version>/<any(query, queryAll):resource>", endpoint="query",
         methods=["GET"]),
    Rule("/services/data/<version>/<any(query, queryAll):resource>/<locator>",
         endpoint="query_more", methods=["GET"]),
    Rule("/services/data/<version>/tooling/query", endpoint="tooling_query", methods=["GET"]),
    Rule("/services/data/<version>/jobs/ingest", endpoint="ingest_jobs",
         methods=["GET", "POST"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>", endpoint="ingest_job",
         methods=["GET", "PATCH", "DELETE"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>/batches", endpoint="upload",
         methods=["PUT"]),
    Rule("/services/data/<version>/jobs/ingest/<job_id>/<kind>", endpoint="results",
         methods=["GET"]),
    Rule("/services/data/<version>/jobs/query", endpoint="query_jobs", methods=["GET", "POST"]),
    Rule("/services/data/<version>/jobs/query/<job_id>", endpoint="query_job",
         methods=["GET", "PATCH", "DELETE"]),
    Rule("/services/data/<version>/jobs/query/<job_id>/results", endpoint="query_results",
         methods=["GET"]),
    # Documented as resultPages; Salesforce's own nextRecordsUrl spells it resultpages.
    Rule("/services/data/<version>/jobs/query/<job_id>/<any(resultPages, resultpages):_p>",
         endpoint="query_result_pages", methods=["GET"]),
    Rule("/__localorg__/faults", endpoint="faults", methods=["GET", "POST", "DELETE"]),
    Rule("/__localorg__/expire-tokens", endpoint="expire_tokens", methods=["POST"]),
    Rule("/__localorg__/fail-next-job", endpoint="fail_next_job", methods=["POST"]),
    Rule("/__localorg__/lock-rows", endpoint="lock_rows", methods=["POST"]),
    *SOBJECT_RULES,
], strict_slashes=False, merge_slashes=False)

_PUBLIC = {"token", "versions", "revoke"}
_API_PATH = re.compile(r"/services/data/v[0-9]+\.[0-9]/")


def error_response(e: ApiError) -> Response:
    if e.code.islower():  # OAuth errors have their own shape
        return json_response({"error": e.code, "error_description": e.message}, e.status)
    return json_response(e.body(), e.status, e.headers)


class LocalOrgApp:
    """The WSGI application. `limits` counts the calls (Sforce-Limit-Info, `/limits`)."""

    def __init__(self, store: Store, engine: Engine, identity: Identity, faults: Faults,
                 limits: Limits, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.engine = engine
        self.identity = identity
        self.faults = faults
        self.limits = limits
        self.clock = clock
        self.queries = RestQueries(store)
        self.query_jobs = QueryJobs(engine)
        self.sobjects = SObjectResource(store, engine, clock, self._record_json)

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
        fault = None if path.startswith("/__localorg__") else self.faults.take(request.method, path)
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
                version = _parse_version(args.pop("version"))
            user_id = None
            if endpoint not in _PUBLIC:
                user_id = self.identity.user_for(request.headers.get("Authorization"))
            if version is not None:
                limit_header = self.limits.count_api_call()
            handler = (getattr(self, "on_" + endpoint, None)
                       or getattr(self.sobjects, "on_" + endpoint))
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

    # -- OAuth and identity ------------------------------------------------------------

    def on_token(self, request: Request, **_) -> Response:
        basic = None
        if request.authorization and request.authorization.type == "basic":
            basic = (request.authorization.username or "", request.authorization.password or "")
        token, issued = self.identity.grant(request.form.to_dict(), basic,
                                            request.host_url.rstrip("/"))
        issued_at = str(int(issued * 1000))
        return json_response({
            "access_token": token,
            "instance_url": request.host_url.rstrip("/"),
            "id": request.host_url.rstrip("/") + self.identity.identity_path(),
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": self.identity.signature(issued_at),
        })

    def on_revoke(self, request: Request, **_) -> Response:
        # POST form `token=`, or a GET with ?token= (Salesforce accepts both).
        self.identity.revoke(request.values.get("token", ""))
        return Response(status=200)

    def _user_json(self) -> dict[str, Any]:
        creds = self.identity.credentials
        user = self.store.get_record(self.store.catalog.get("User"), creds.user_id) or {}
        return {"user_id": creds.user_id, "organization_id": creds.org_id,
                "username": creds.username, "email": user.get("Email"),
                "first_name": user.get("FirstName"), "last_name": user.get("LastName"),
                "display_name": user.get("Name"), "language": "en_US", "locale": "en_US",
                "timezone": "GMT", "active": True, "user_type": "STANDARD"}

    def _urls(self, request: Request) -> dict[str, str]:
        base = request.host_url.rstrip("/") + "/services/data/v{version}/"
        return {"rest": base, "sobjects": base + "sobjects/", "query": base + "query/",
                "search": base + "search/", "recent": base + "recent/",
                "profile": request.host_url + self.identity.credentials.user_id}

    def on_identity(self, request: Request, org_key: str, user_key: str, **_) -> Response:
        creds = self.identity.credentials
        if (org_key, user_key) != (creds.org_id, creds.user_id):
            raise not_found()
        info = self._user_json()
        return json_response({
            "id": request.host_url.rstrip("/") + self.identity.identity_path(),
            "asserted_user": True, "user_id": creds.user_id, "organization_id": creds.org_id,
            "username": creds.username, "nick_name": "analyst", "display_name":
            info["display_name"], "email": info["email"], "email_verified": True,
            "first_name": info["first_name"], "last_name": info["last_name"],
            "timezone": "GMT", "active": True, "user_type": "STANDARD", "language": "en_US",
            "locale": "en_US", "utcOffset": 0, "is_lightning_login_user": False,
            "urls": self._urls(request)})

    def on_userinfo(self, request: Request, **_) -> Response:
        creds = self.identity.credentials
        info = self._user_json()
        return json_response({
            "sub": request.host_url.rstrip("/") + self.identity.identity_path(),
            "user_id": creds.user_id, "organization_id": creds.org_id,
            "preferred_username": creds.username, "nickname": "analyst",
            "name": info["display_name"], "email": info["email"], "email_verified": True,
            "given_name": info["first_name"], "family_name": info["last_name"],
            "zoneinfo": "GMT", "locale": "en_US", "language": "en_US", "active": True,
            "user_type": "STANDARD", "utcOffset": 0, "is_app_installed": True,
            "urls": self._urls(request)})

    # -- versions, resources, limits, describe ----------------------------------------

    def on_versions(self, request: Request, **_) -> Response:
        return json_response([
            {"label": _RELEASES.get(v, f"v{v}.0"), "url": f"/services/data/v{v}.0",
             "version": f"{v}.0"}
            for v in range(OLDEST_VERSION, int(float(LATEST_VERSION)) + 1)])

    def on_resources(self, request: Request, version: str, **_) -> Response:
        base = f"/services/data/v{version}/"
        resources = {name: base + name for name in
                     ("composite", "jobs", "limits", "query", "queryAll", "sobjects",
                      "tooling")}
        # Salesforce lists the user's identity URL here, absolute (REST API guide, "List
        # Available REST Resources"); jsforce's identity() reads it from this map.
        resources["identity"] = request.host_url.rstrip("/") + self.identity.identity_path()
        return json_response(resources)

    def on_limits(self, request: Request, **_) -> Response:
        return json_response(self.limits.report())

    def _object(self, name: str):
        obj = self.store.catalog.get(name)
        if obj is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def _describe(self, obj, version: str) -> dict[str, Any]:
        # The URLs name the version asked for (a describe saved from another org names
        # the version it was fetched with).
        text = _API_PATH.sub(f"/services/data/v{version}/", json.dumps(obj.describe))
        return json.loads(text)

    def on_global_describe(self, request: Request, version: str, **_) -> Response:
        keys = ("activateable", "createable", "custom", "customSetting", "deletable",
                "deprecatedAndHidden", "feedEnabled", "keyPrefix", "label", "labelPlural",
                "layoutable", "mergeable", "mruEnabled", "name", "queryable", "replicateable",
                "retrieveable", "searchable", "triggerable", "undeletable", "updateable", "urls")
        return json_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {k: v for k, v in self._describe(obj, version).items() if k in keys}
            for obj in self.store.catalog]})

    def on_sobject_info(self, request: Request, version: str, obj: str, **_) -> Response:
        describe = self._describe(self._object(obj), version)
        summary = {k: v for k, v in describe.items()
                   if k not in ("fields", "childRelationships", "recordTypeInfos")}
        return json_response({"objectDescribe": summary, "recentItems": []})

    def on_describe(self, request: Request, version: str, obj: str, **_) -> Response:
        return json_response(self._describe(self._object(obj), version))

    def _record_json(self, obj, record: dict[str, Any], version: str, fields: str | None):
        wanted = None
        if fields:
            wanted = {f.strip().lower() for f in fields.split(",")}
        out: dict[str, Any] = {"attributes": {
            "type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}"}}
        for name, value in record.items():
            f = obj.field(name)
            if f is None or (wanted is not None and name.lower() not in wanted):
                continue
            out[f.name] = values.to_json(f, value) if name != "IsDeleted" else bool(value)
        for f in obj.fields.values():  # compound fields: built from their components
            if f.is_compound and (wanted is None or f.name.lower() in wanted):
                parts = {key: values.to_json(part, record.get(part.name))
                         for key, part in obj.components(f)}
                out[f.name] = parts if any(v is not None for v in parts.values()) else None
        return out

    def on_record(self, request: Request, version: str, obj: str, record_id: str, **_):
        sobj = self._object(obj)
        rid = ids.normalize(record_id)
        record = self.store.get_record(sobj, rid) if rid else None
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return json_response(self._record_json(sobj, record, version, request.args.get("fields")))

    def on_record_by_key(self, request: Request, version: str, obj: str, field: str,
                         value: str, **_) -> Response:
        sobj = self._object(obj)
        key = sobj.field(field)
        if key is None or not key.is_key:
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or "
                           f"is not accessible: {field}")
        lookup_value = (ids.normalize(value) or value) if key.name == "Id" else value
        found = self.store.lookup(sobj, key.name, [lookup_value])
        matches = next(iter(found.values()), [])
        if not matches:
            raise not_found()
        if len(matches) > 1:
            return json_response([f"/services/data/v{version}/sobjects/{sobj.name}/{m[0]}"
                                  for m in matches], 300)
        record = self.store.get_record(sobj, matches[0][0])
        return json_response(self._record_json(sobj, record, version, request.args.get("fields")))

    # -- REST query -------------------------------------------------------------------

    def on_query(self, request: Request, version: str, resource: str, **_) -> Response:
        text = request.args.get("q")
        if text is None:
            raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        return json_response(self.queries.first_page(
            text, include_deleted=resource == "queryAll", version=version,
            batch_size=_batch_size(request)))

    def on_query_more(self, request: Request, version: str, resource: str, locator: str,
                      **_) -> Response:
        return json_response(self.queries.next_page(locator, version=version,
                                                    batch_size=_batch_size(request),
                                                    resource=resource))

    def on_tooling_query(self, request: Request, version: str, **_) -> Response:
        text = request.args.get("q")
        if text is None:
            raise ApiError(400, "MALFORMED_QUERY", "SOQL statements cannot be empty or null")
        return json_response(tooling.query(self.engine.rules, text, version))

    # -- ingest jobs -----------------------------------------------------------------

    def _job_json(self, job: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
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

    def on_ingest_jobs(self, request: Request, version: str, user_id: str, **_) -> Response:
        if request.method == "GET":
            jobs, locator = self.engine.list_jobs(request.args.get("queryLocator"),
                                                  _list_filters(request))
            return _job_list([self._job_json(j, _LIST_KEYS) for j in jobs], locator,
                             f"/services/data/v{version}/jobs/ingest")
        if request.mimetype == "multipart/form-data":
            return self._multipart_create(request, version, user_id)
        job = self.engine.create_job(_json_body(request), float(version), user_id)
        return json_response(self._job_json(job, _CREATE_KEYS))

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
        return json_response(self._job_json(job, _CREATE_KEYS))

    def on_ingest_job(self, request: Request, job_id: str, **_) -> Response:
        if request.method == "GET":
            return json_response(self._job_json(self.engine.get_job(job_id), _GET_KEYS))
        if request.method == "DELETE":
            self.engine.delete_job(job_id)
            return Response(status=204)
        body = _json_body(request)
        state = body.get("state") if isinstance(body, dict) else None
        return json_response(self._job_json(self.engine.set_state(job_id, state), _PATCH_KEYS))

    def on_upload(self, request: Request, job_id: str, **_) -> Response:
        self.engine.get_job(job_id)
        if request.content_length is not None:
            check_upload_size(request.content_length)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            data = _gunzipped(request.stream)
        else:
            data = request.get_data(cache=False)
        self.engine.upload(job_id, data)
        return Response(status=201)

    def on_results(self, request: Request, job_id: str, kind: str, **_) -> Response:
        canonical = {k.lower(): k for k in RESULT_KINDS}.get(kind.lower())
        # Documented spellings, plus `unprocessedRecords` as simple-salesforce sends it.
        if canonical is None or (kind != canonical and kind != "unprocessedRecords"):
            raise not_found()
        return _csv_response(request, [self.engine.results(job_id, canonical)])

    # -- query jobs ------------------------------------------------------------------

    @staticmethod
    def _query_job_json(job: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        full = {**job, "apiVersion": float(job["apiVersion"])}
        return {key: full.get(key) for key in keys if key != "errorMessage" or full.get(key)}

    def on_query_jobs(self, request: Request, version: str, user_id: str, **_) -> Response:
        if request.method == "GET":
            jobs, locator = self.query_jobs.list_jobs(request.args.get("queryLocator"),
                                                      _list_filters(request))
            return _job_list([self._query_job_json(j, _QUERY_KEYS) for j in jobs], locator,
                             f"/services/data/v{version}/jobs/query")
        job = self.query_jobs.create(_json_body(request), float(version), user_id)
        return json_response(self._query_job_json(job, _QUERY_KEYS))

    def on_query_job(self, request: Request, job_id: str, **_) -> Response:
        if request.method == "GET":
            return json_response(self._query_job_json(self.query_jobs.get(job_id),
                                                      _QUERY_GET_KEYS))
        if request.method == "DELETE":
            self.query_jobs.delete(job_id)
            return Response(status=204)
        body = _json_body(request)
        state = body.get("state") if isinstance(body, dict) else None
        return json_response(self._query_job_json(self.query_jobs.set_state(job_id, state),
                                                  _QUERY_KEYS))

    def on_query_results(self, request: Request, version: str, job_id: str, **_) -> Response:
        page = self.query_jobs.results(job_id, version, request.args.get("locator"),
                                       request.args.get("maxRecords"))
        return _csv_response(request, page.body, {
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

    # -- control -----------------------------------------------------------------------

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
        _arm(request, lambda **options: self.engine.job_faults.append(JobFault(**options)))
        return Response(status=204)


def _arm(request: Request, make: Callable[..., Any]) -> None:
    """Call `make` with a control request's JSON object (none: no options); what it
    refuses is a 400."""
    options = _json_body(request) if request.get_data() else {}
    if not isinstance(options, dict):
        raise ApiError(400, "INVALID_FAULT", "The request body must be a JSON object")
    try:
        make(**options)
    except (TypeError, ValueError) as e:
        raise ApiError(400, "INVALID_FAULT", str(e)) from None


def _list_filters(request: Request) -> dict[str, str]:
    """The job list's filters: `jobType`, `concurrencyMode`, `isPkChunkingEnabled`."""
    filters = {}
    if request.args.get("jobType"):
        filters["jobType"] = request.args["jobType"]
    if request.args.get("concurrencyMode"):
        filters["concurrencyMode"] = request.args["concurrencyMode"]
    if request.args.get("isPkChunkingEnabled", "").lower() == "true":
        filters["jobType"] = "PkChunking"  # a Bulk 1.0 notion: never true of Bulk 2.0 jobs
    return filters


def _job_list(records: list[dict[str, Any]], locator: str | None, path: str) -> Response:
    return json_response({
        "done": locator is None, "records": records,
        "nextRecordsUrl": None if locator is None else f"{path}?queryLocator={locator}"})


def _csv_response(request: Request, body: Iterable[bytes],
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


def _gunzipped(stream: BinaryIO) -> bytes:
    """A gzip request body, unpacked a piece at a time and refused (413, as an oversized
    upload) as soon as it outgrows the upload limit: a 1 MB gzip of zeros unpacks to 1 GB,
    and unpacking it whole first would hold all of it."""
    pieces = []
    size = 0
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as unpacked:
            while piece := unpacked.read(_GUNZIP_PIECE):
                size += len(piece)
                check_upload_size(size)
                pieces.append(piece)
    except (OSError, EOFError, zlib.error):
        # Salesforce's answer to a bad gzip body is not recorded; 400 is our guess.
        raise ApiError(400, "API_ERROR", "The request body is not valid gzip data "
                       "(Content-Encoding: gzip)") from None
    return b"".join(pieces)


def _batch_size(request: Request) -> int | None:
    """`Sforce-Query-Options: batchSize=500`."""
    for part in request.headers.get("Sforce-Query-Options", "").split(","):
        name, _, value = part.strip().partition("=")
        # ASCII digits, not str.isdigit (true of "²", which int() refuses); long values
        # would only be clamped to the maximum anyway.
        if name.strip() == "batchSize" and re.fullmatch(r"[0-9]{1,9}", value.strip()):
            return int(value)
    return None


def _parse_version(text: str) -> str:
    m = re.fullmatch(r"v(\d+)\.(\d)", text)
    if not m:
        raise not_found()
    major = int(m.group(1))
    if RETIRED_FROM <= major < OLDEST_VERSION:
        raise ApiError(410, "API_DISABLED_FOR_ORG",
                       f"API version {major}.0 has been retired; use v{OLDEST_VERSION}.0 or later")
    if not OLDEST_VERSION <= major <= float(LATEST_VERSION) or m.group(2) != "0":
        raise not_found()
    return f"{major}.0"


def _json_body(request: Request) -> Any:
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        raise ApiError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


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
