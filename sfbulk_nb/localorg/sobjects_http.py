"""REST sObject writes and sObject Collections: the HTTP layer of record DML.

    POST   sobjects/{Object}                  create                 201 {"id","success","errors"}
    PATCH  sobjects/{Object}/{Id}             update                 204
    DELETE sobjects/{Object}/{Id}             delete                 204
    PATCH  sobjects/{Object}/{Field}/{Value}  upsert by external id  201 / 200 (204 before 46.0) / 300
    DELETE sobjects/{Object}/{Field}/{Value}  delete by external id  204 / 300
    POST / PATCH / DELETE  composite/sobjects create / update / delete up to 200 records
    GET / POST composite/sobjects/{Object}    retrieve by ids

Every write goes through `records.apply_batch`, the code ingest jobs use: a JSON record
becomes a row of CSV-like cells, so field conversion, required fields, restricted picklists,
lookups, unique fields and validation rules give the same row errors as a Bulk job. What is
REST's own lives here: the JSON to cells mapping, per-record result shapes, allOrNone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from . import ids
from .catalog import SObject
from .engine import Engine, record_datetime
from .errors import ApiError, not_found
from .records import CLEAR, Header, JobFailure, apply_batch
from .responses import json_response
from .store import Store
from .values import RowError

RULES = [
    Rule("/services/data/<version>/sobjects/<obj>", endpoint="sobject_create",
         methods=["POST"]),
    Rule("/services/data/<version>/sobjects/<obj>/<record_id>", endpoint="record_write",
         methods=["PATCH", "DELETE"]),
    Rule("/services/data/<version>/sobjects/<obj>/<field>/<path:value>",
         endpoint="record_upsert", methods=["PATCH", "DELETE"]),
    Rule("/services/data/<version>/composite", endpoint="composite", methods=["GET"]),
    Rule("/services/data/<version>/composite/sobjects", endpoint="collection",
         methods=["POST", "PATCH", "DELETE"]),
    Rule("/services/data/<version>/composite/sobjects/<obj>", endpoint="collection_retrieve",
         methods=["GET", "POST"]),
]

COLLECTION_MAX = 200       # records per sObject Collections write (REST API guide)
RETRIEVE_MAX = 2000        # ids per collections retrieve (REST API guide: "up to 2,000")
MAX_CHUNKS = 10            # runs of one type per create/update (REST API guide)
# The UpsertResult gains `created` and an update answers 200 instead of 204 from API 46.0
# (REST API guide, "Insert or Update (Upsert) a Record Using an External ID").
UPSERT_RESULT_FROM = 46.0
ROLLED_BACK = RowError("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not "
                       "all records were valid and the request was using AllOrNone header")


@dataclass
class Outcome:
    """One record's fate: its id and whether it was created, or its error."""

    id: str | None = None
    created: bool = False
    error: RowError | None = None


class _RolledBack(Exception):
    """Raised inside an allOrNone request's transaction to undo it."""


def _bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _cell(value: Any) -> str:
    """A JSON value as the cell text the ingest converters read. null and "" clear the
    field (REST stores no empty string); a cell of the literal text `#N/A` would clear it
    too, unlike Salesforce (the ingest marker; rare enough to accept)."""
    if value is None or value == "":
        return CLEAR
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    if isinstance(value, (int, str)):
        return str(value)
    raise _bad_request("JSON_PARSER_ERROR", f"Cannot deserialize instance of a field value "
                       f"from {type(value).__name__} value: {json.dumps(value)[:80]}")


class Writer:
    """JSON records -> one ingest batch per object -> per-record outcomes."""

    def __init__(self, store: Store, engine: Engine, clock: Callable[[], float]):
        self.store = store
        self.engine = engine
        self.clock = clock

    def columns(self, obj: SObject, records: list[dict[str, Any]]) -> dict[str, list[str]]:
        """Header name -> cells, in first-seen order; a field named in some records only
        is blank (left as it is) in the others."""
        columns: dict[str, list[str]] = {}
        for i, record in enumerate(records):
            for key, value in record.items():
                if key == "attributes":
                    continue
                name, text = self._column(obj, key, value)
                column = columns.setdefault(name, [""] * len(records))
                column[i] = text
        return columns

    def _column(self, obj: SObject, key: str, value: Any) -> tuple[str, str]:
        if isinstance(value, dict):
            # A parent by its external id: {"Account": {"customExtIdField__c": "X"}}, with
            # {"attributes": {"type": "Account"}} for a polymorphic lookup (REST API guide,
            # "Insert or Update Records Using Friendly URLs" / Bulk's Type:Rel.Field).
            lookup = obj.relationship(key)
            fields = [k for k in value if k != "attributes"]
            if lookup is None or len(fields) != 1:
                raise _bad_request("INVALID_FIELD", f"No such column '{key}' on sobject of "
                                   f"type {obj.name}")
            kind = (value.get("attributes") or {}).get("type")
            prefix = f"{kind}:" if kind and len(lookup.reference_to) > 1 else ""
            name = f"{prefix}{lookup.describe['relationshipName']}.{fields[0]}"
            return name, _cell(value[fields[0]])
        f = obj.field(key)
        if f is None:
            # Salesforce's answer to an unknown field in a REST body.
            raise _bad_request("INVALID_FIELD",
                               f"No such column '{key}' on sobject of type {obj.name}")
        return f.name, _cell(value)

    def apply(self, obj: SObject, operation: str, records: list[dict[str, Any]], user_id: str,
              external_id: str | None = None) -> list[Outcome]:
        columns = self.columns(obj, records)
        if "Id" not in columns:
            # An empty column keeps the row count when a record names no field at all
            # ({} on create: REQUIRED_FIELD_MISSING, as Salesforce answers); a blank Id is
            # what an insert expects.
            columns["Id"] = [""] * len(records)
        try:
            header = Header.parse(self.store.catalog, obj, operation, list(columns),
                                  external_id)
        except JobFailure as e:
            raise _bad_request("INVALID_FIELD", str(e).removeprefix("InvalidBatch : ")) from None
        result = apply_batch(self.store, header, list(columns.values()),
                             external_id=external_id, user_id=user_id,
                             now=record_datetime(self.clock()),
                             validation=self.engine.rules.active(obj))
        return [Outcome(error=result.errors[i]) if i in result.errors
                else Outcome(result.ids[i], i in result.created) for i in range(len(records))]


def _errors_body(error: RowError) -> list[dict[str, Any]]:
    """A single-record call's error array (REST API guide, "Status Codes and Error
    Responses": message, errorCode, fields)."""
    return [{"message": error.message, "errorCode": error.code, "fields": list(error.fields)}]


def _result(outcome: Outcome, upsert: bool = False) -> dict[str, Any]:
    """A SaveResult / UpsertResult / DeleteResult as sObject Collections answer it: errors
    carry `statusCode` there, not `errorCode`."""
    if outcome.error is None:
        out: dict[str, Any] = {"id": outcome.id, "success": True, "errors": []}
        if upsert:
            out["created"] = outcome.created
        return out
    e = outcome.error
    return {"success": False, "errors": [{"statusCode": e.code, "message": e.message,
                                          "fields": list(e.fields)}]}


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        raise _bad_request("JSON_PARSER_ERROR", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("JSON_PARSER_ERROR", "The request body must be a JSON object")
    return body


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() == "true"


class SObjectResource:
    """The handlers (`on_<endpoint>`, called by the app with the route's arguments)."""

    def __init__(self, store: Store, engine: Engine, clock: Callable[[], float],
                 record_json: Callable[[SObject, dict, str, str | None], dict[str, Any]]):
        self.store = store
        self.writer = Writer(store, engine, clock)
        self.record_json = record_json

    def _object(self, name: str) -> SObject:
        obj = self.store.catalog.get(name)
        if obj is None:
            raise not_found()
        return obj

    def _live_record(self, obj: SObject, record_id: str) -> str:
        """The 18-character id of a live record of `obj`, or Salesforce's 404s."""
        rid = ids.normalize(record_id)
        record = self.store.get_record(obj, rid) if rid else None
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return rid

    # -- one record -------------------------------------------------------------------

    def on_sobject_create(self, request: Request, user_id: str, obj: str, **_) -> Response:
        sobj = self._object(obj)
        outcome = self.writer.apply(sobj, "insert", [_json_object(request)], user_id)[0]
        if outcome.error is not None:
            return json_response(_errors_body(outcome.error), 400)
        return json_response({"id": outcome.id, "success": True, "errors": []}, 201)

    def on_record_write(self, request: Request, user_id: str, obj: str, record_id: str,
                        **_) -> Response:
        sobj = self._object(obj)
        rid = self._live_record(sobj, record_id)
        if request.method == "DELETE":
            outcome = self.writer.apply(sobj, "delete", [{"Id": rid}], user_id)[0]
        else:
            body = _json_object(request)
            given = next((v for k, v in body.items() if k.lower() == "id"), None)
            if given is not None and ids.normalize(str(given)) != rid:
                # UNCONFIRMED: Salesforce's answer to a body Id other than the URL's.
                raise _bad_request("INVALID_FIELD", f"The Id in the request body ({given}) "
                                   f"is not the Id in the URL ({record_id})")
            body = {k: v for k, v in body.items() if k.lower() != "id"}
            outcome = self.writer.apply(sobj, "update", [{**body, "Id": rid}], user_id)[0]
        if outcome.error is not None:
            return json_response(_errors_body(outcome.error), 400)
        return Response(status=204)

    def on_record_upsert(self, request: Request, version: str, user_id: str, obj: str,
                         field: str, value: str, **_) -> Response:
        sobj = self._object(obj)
        key = sobj.field(field)
        if key is None or not key.is_key:
            raise ApiError(404, "NOT_FOUND", "Provided external ID field does not exist or "
                           f"is not accessible: {field}")
        lookup_value = (ids.normalize(value) or value) if key.name == "Id" else value
        matches = next(iter(self.store.lookup(sobj, key.name, [lookup_value]).values()), [])
        if len(matches) > 1:
            return json_response([f"/services/data/v{version}/sobjects/{sobj.name}/{m[0]}"
                                  for m in matches], 300)
        if request.method == "DELETE":
            if not matches:
                raise not_found()
            return self.on_record_write(request, user_id=user_id, obj=obj,
                                        record_id=matches[0][0])
        body = _json_object(request)
        given = next((v for k, v in body.items() if k.lower() == key.name.lower()), None)
        if given is not None and str(given) != value:
            # UNCONFIRMED: Salesforce's answer to a key in the body other than the URL's.
            raise _bad_request("INVALID_FIELD", f"The {key.name} in the request body "
                               f"({given}) is not the value in the URL ({value})")
        body = {k: v for k, v in body.items() if k.lower() != key.name.lower()}
        outcome = self.writer.apply(sobj, "upsert", [{**body, key.name: value}], user_id,
                                    external_id=key.name)[0]
        if outcome.error is not None:
            return json_response(_errors_body(outcome.error), 400)
        newer = float(version) >= UPSERT_RESULT_FROM
        result = _result(outcome, upsert=newer)
        if outcome.created:
            return json_response(result, 201)
        return json_response(result, 200) if newer else Response(status=204)

    # -- sObject Collections ----------------------------------------------------------

    def on_composite(self, request: Request, version: str, **_) -> Response:
        # Only the sObject Collections resource is served (no tree, batch or graph).
        return json_response({"sobjects": f"/services/data/v{version}/composite/sobjects"})

    def on_collection(self, request: Request, user_id: str, **_) -> Response:
        if request.method == "DELETE":
            record_ids = [i for i in request.args.get("ids", "").split(",") if i]
            if not record_ids:
                raise _bad_request("MISSING_ARGUMENT", "ids parameter is required")
            self._check_count(len(record_ids), COLLECTION_MAX)
            runs = self._delete_runs(record_ids)
            all_or_none = _flag(request.args.get("allOrNone"))
            operation = "delete"
        else:
            body = _json_object(request)
            records = body.get("records")
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise _bad_request("JSON_PARSER_ERROR", "records must be a list of sObjects")
            self._check_count(len(records), COLLECTION_MAX)
            runs = self._typed_runs(records)
            all_or_none = body.get("allOrNone") is True
            operation = "insert" if request.method == "POST" else "update"
        outcomes = self._run(operation, runs, user_id, all_or_none)
        return json_response([_result(o) for o in outcomes])

    @staticmethod
    def _check_count(n: int, limit: int) -> None:
        if n > limit:
            # UNCONFIRMED wording: the SOAP API's for more records than a call takes.
            raise _bad_request("EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit "
                               f"more than {limit} records into this call")

    def _typed_runs(self, records: list[dict[str, Any]]):
        """Consecutive records of one type are one chunk (REST API guide: {account1,
        account2, contact1, account3} is three chunks; at most ten)."""
        runs: list[tuple[SObject, list[Any]]] = []
        for record in records:
            kind = (record.get("attributes") or {}).get("type")
            if not isinstance(kind, str):
                # UNCONFIRMED wording; the guide requires the attributes map with a type.
                raise _bad_request("INVALID_TYPE", "Each sObject in records needs an "
                                   "attributes map with its type")
            obj = self.store.catalog.get(kind)
            if obj is None:
                raise _bad_request("INVALID_TYPE", f"sObject type '{kind}' is not supported.")
            if runs and runs[-1][0] is obj:
                runs[-1][1].append(record)
            else:
                runs.append((obj, [record]))
        self._check_chunks(len(runs))
        return runs

    def _delete_runs(self, record_ids: list[str]):
        """Ids grouped by the object their key prefix names, in order; an id of no known
        object is a MALFORMED_ID result of its own (None as its object)."""
        runs: list[tuple[SObject | None, list[Any]]] = []
        for text in record_ids:
            rid = ids.normalize(text)
            obj = self.store.catalog.by_prefix(rid[:3]) if rid else None
            item = {"Id": rid} if obj is not None else text
            if runs and runs[-1][0] is obj:
                runs[-1][1].append(item)
            else:
                runs.append((obj, [item]))
        self._check_chunks(sum(1 for obj, _ in runs if obj is not None))
        return runs

    @staticmethod
    def _check_chunks(n: int) -> None:
        if n > MAX_CHUNKS:
            # UNCONFIRMED wording; the limit of ten chunks is documented.
            raise _bad_request("INVALID_BATCH_REQUEST", f"The request has {n} chunks of "
                               f"records of one type; at most {MAX_CHUNKS} are allowed")

    def _run(self, operation: str, runs, user_id: str, all_or_none: bool) -> list[Outcome]:
        outcomes: list[Outcome] = []

        def write() -> None:
            for obj, items in runs:
                if obj is None:
                    outcomes.extend(Outcome(error=RowError("MALFORMED_ID", f"malformed id {t}"))
                                    for t in items)
                else:
                    outcomes.extend(self.writer.apply(obj, operation, items, user_id))
            if all_or_none and any(o.error is not None for o in outcomes):
                raise _RolledBack

        if not all_or_none:
            write()
            return outcomes
        try:
            # One transaction around every chunk (each batch a savepoint in it), undone
            # as a whole when a record fails.
            with self.store.transaction():
                write()
        except _RolledBack:
            return [o if o.error is not None else Outcome(error=ROLLED_BACK) for o in outcomes]
        return outcomes

    def on_collection_retrieve(self, request: Request, version: str, obj: str,
                               **_) -> Response:
        sobj = self._object(obj)
        if request.method == "POST":
            body = _json_object(request)
            record_ids, fields = body.get("ids"), body.get("fields")
            if not (isinstance(record_ids, list) and isinstance(fields, list)):
                raise _bad_request("JSON_PARSER_ERROR", "The body needs ids and fields lists")
            record_ids, fields = [str(i) for i in record_ids], [str(f) for f in fields]
        else:
            record_ids = [i for i in request.args.get("ids", "").split(",") if i]
            fields = [f for f in request.args.get("fields", "").split(",") if f]
        if not record_ids or not fields:
            # Both are required (REST API guide, "Get Records Using sObject Collections");
            # the error's wording is UNCONFIRMED.
            raise _bad_request("MISSING_ARGUMENT", "ids and fields are required")
        self._check_count(len(record_ids), RETRIEVE_MAX)
        for name in fields:
            if sobj.field(name) is None:
                raise _bad_request("INVALID_FIELD", f"No such column '{name}' on entity "
                                   f"'{sobj.name}'")
        out = []
        for text in record_ids:
            rid = ids.normalize(text)
            record = self.store.get_record(sobj, rid) if rid else None
            # A record that does not exist (or is deleted) is null in its place.
            out.append(None if record is None or record["IsDeleted"] else
                       self.record_json(sobj, record, version, ",".join(fields)))
        return json_response(out)
