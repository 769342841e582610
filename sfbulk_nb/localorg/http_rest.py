"""The REST basics over HTTP: API versions, the resource list, limits, describes and record
reads (record writes: sobjects_http.py)."""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from . import ids, values
from .catalog import SObject
from .errors import ApiError, not_found
from .responses import json_response

if TYPE_CHECKING:
    from .app import LocalOrgApp

LATEST_VERSION = "66.0"
OLDEST_VERSION = 31
RETIRED_FROM = 21
_RELEASES = {57: "Spring '23", 58: "Summer '23", 59: "Winter '24", 60: "Spring '24",
             61: "Summer '24", 62: "Winter '25", 63: "Spring '25", 64: "Summer '25",
             65: "Winter '26", 66: "Spring '26"}
_API_PATH = re.compile(r"/services/data/v[0-9]+\.[0-9]/")

RULES = [
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
]
PUBLIC = {"versions"}  # answered without a bearer token


def parse_version(text: str) -> str:
    """`v66.0` -> `66.0`; 410 for a retired version, 404 for one that never was."""
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


class RestResource:
    # The org's identity is read from the app on every call: reset() gives it a new one.
    def __init__(self, app: "LocalOrgApp"):
        self.app = app
        self.store = app.store

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
        resources["identity"] = request.host_url.rstrip("/") + self.app.identity.identity_path()
        return json_response(resources)

    def on_limits(self, request: Request, **_) -> Response:
        return json_response(self.app.limits.report())

    def _object(self, name: str) -> SObject:
        obj = self.store.catalog.get(name)
        if obj is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    @staticmethod
    def _describe(obj: SObject, version: str) -> dict[str, Any]:
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

    @staticmethod
    def record_json(obj: SObject, record: dict[str, Any], version: str,
                    fields: str | None) -> dict[str, Any]:
        """A record as REST answers it (`fields`: a comma-separated subset, or all)."""
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
        return json_response(self.record_json(sobj, record, version, request.args.get("fields")))

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
        return json_response(self.record_json(sobj, record, version, request.args.get("fields")))
