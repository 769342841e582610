"""Tooling API `/tooling/query` for ValidationRule: the one Tooling object the local org has.

The query language is the small part of SOQL clients use to list rules:
`SELECT <fields> FROM ValidationRule [WHERE a = 'x' [AND b IN ('y', ...)]] [ORDER BY f
[ASC|DESC]] [LIMIT n]`.
Fields: Id, ValidationName, Active, Description, ErrorDisplayField, ErrorMessage,
EntityDefinitionId, EntityDefinition.QualifiedApiName / DeveloperName, NamespacePrefix,
FullName and Metadata. As in Salesforce, Metadata and FullName may only be selected by a
query that can return one row at most: a client lists the ids first, then reads the
Metadata one rule at a time.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import ApiError
from .rules import RuleBook, ValidationRule

_QUERY = re.compile(
    r"\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w.]+)(?:\s+(?P<direction>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>[0-9]+))?\s*\Z",
    re.IGNORECASE | re.DOTALL)
_CONDITION = re.compile(
    r"\s*(?P<field>[\w.]+)\s*(?:(?P<eq>=)\s*(?P<value>'(?:[^'\\]|\\.)*'|\w+)"
    r"|IN\s*\((?P<values>[^)]*)\))\s*\Z", re.IGNORECASE | re.DOTALL)
_SIMPLE = {
    "id": "Id", "validationname": "ValidationName", "active": "Active",
    "description": "Description", "errordisplayfield": "ErrorDisplayField",
    "errormessage": "ErrorMessage", "entitydefinitionid": "EntityDefinitionId",
    "namespaceprefix": "NamespacePrefix", "fullname": "FullName", "metadata": "Metadata",
}
_ENTITY = {"entitydefinition.qualifiedapiname": "QualifiedApiName",
           "entitydefinition.developername": "DeveloperName"}


def _malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    raise _malformed(f"unexpected token: '{text}'")


def _developer_name(sobject: str) -> str:
    return sobject[:-3] if sobject.endswith("__c") else sobject


def _value(rule: ValidationRule, path: str) -> Any:
    low = path.lower()
    if low in _ENTITY:
        return rule.sobject if _ENTITY[low] == "QualifiedApiName" else _developer_name(
            rule.sobject)
    return {
        "id": rule.id, "validationname": rule.name, "active": rule.active,
        "description": rule.description, "errordisplayfield": rule.field,
        "errormessage": rule.message,
        # UNCONFIRMED for custom objects, whose EntityDefinitionId is an 01I id in
        # Salesforce; standard objects are identified by their name.
        "entitydefinitionid": rule.sobject, "namespaceprefix": None,
        "fullname": f"{rule.sobject}.{rule.name}",
    }[low]


def _metadata(rule: ValidationRule) -> dict[str, Any]:
    return {"active": rule.active, "description": rule.description,
            "errorConditionFormula": rule.formula, "errorDisplayField": rule.field,
            "errorMessage": rule.message, "shouldEvaluateOnClient": None, "urls": None}


def query(book: RuleBook, text: str, version: str) -> dict[str, Any]:
    m = _QUERY.match(text or "")
    if m is None:
        raise _malformed("unexpected token: the query is not SELECT ... FROM ...")
    if m["object"].lower() != "validationrule":
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{m['object']}' is not supported.")
    fields = [f.strip() for f in m["fields"].split(",")]
    for f in fields:
        if f.lower() not in _SIMPLE and f.lower() not in _ENTITY:
            raise ApiError(400, "INVALID_FIELD", f"No such column '{f}' on entity "
                           "'ValidationRule'. If you are attempting to use a custom field, be "
                           "sure to append the '__c' after the custom field name. Please "
                           "reference your WSDL or the describe call for the appropriate names.")
    rules = book.rules()
    if m["where"]:
        for part in re.split(r"\s+AND\s+", m["where"], flags=re.IGNORECASE):
            c = _CONDITION.match(part)
            if c is None or (c["field"].lower() not in _SIMPLE and
                             c["field"].lower() not in _ENTITY) or c["field"].lower() in (
                                 "metadata", "fullname"):
                raise _malformed(f"unexpected token: '{part.strip()}'")
            wanted = ([_literal(c["value"])] if c["eq"] else
                      [_literal(v) for v in c["values"].split(",")])
            rules = [r for r in rules if _matches(_value(r, c["field"]), wanted)]
    if m["order"]:
        if m["order"].lower() not in _SIMPLE and m["order"].lower() not in _ENTITY or m[
                "order"].lower() == "metadata":
            raise _malformed(f"unexpected token: 'ORDER BY {m['order']}'")
        # Nulls first ascending, as SOQL sorts them by default.
        rules = sorted(rules, key=lambda r: (_value(r, m["order"]) is not None,
                                             str(_value(r, m["order"])).lower()),
                       reverse=(m["direction"] or "").upper() == "DESC")
    if m["limit"] is not None:
        rules = rules[:int(m["limit"])]
    if len(rules) > 1 and any(f.lower() in ("metadata", "fullname") for f in fields):
        # Salesforce's wording (seen in tool issue threads, e.g. for FieldDefinition). Its
        # "Result size: N" suggests the rows found count, after LIMIT (UNCONFIRMED).
        raise _malformed("When retrieving results with Metadata or FullName fields, the query "
                         "qualifications must specify no more than one row for retrieval. "
                         f"Result size: {len(rules)}")
    return {"size": len(rules), "totalSize": len(rules), "done": True, "queryLocator": None,
            "entityTypeName": "ValidationRule",
            "records": [_record(r, fields, version) for r in rules]}


def _matches(value: Any, wanted: list[Any]) -> bool:
    if isinstance(value, str):
        # Ids compare on their 15-character form; names without case, as SOQL does.
        return any(isinstance(w, str) and (value.lower() == w.lower() or
                                           (len(w) == 15 and value[:15] == w))
                   for w in wanted)
    return value in wanted


def _record(rule: ValidationRule, fields: list[str], version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": {
        "type": "ValidationRule",
        "url": f"/services/data/v{version}/tooling/sobjects/ValidationRule/{rule.id}"}}
    entity: dict[str, Any] | None = None
    for f in fields:
        low = f.lower()
        if low in _ENTITY:
            if entity is None:
                entity = out["EntityDefinition"] = {"attributes": {
                    "type": "EntityDefinition",
                    "url": f"/services/data/v{version}/tooling/sobjects/EntityDefinition/"
                           f"{rule.sobject}"}}
            entity[_ENTITY[low]] = _value(rule, f)
        elif low == "metadata":
            out["Metadata"] = _metadata(rule)
        else:
            out[_SIMPLE[low]] = _value(rule, f)
    return out
