"""An org's shape, saved so a local org can take it on: `snapshot_schema`.

    snap = sfb.snapshot_schema(prod, ["Account", "Contact", "Invoice__c"], "prod-schema")
    local = LocalOrg(name="rehearsal", schema="prod-schema")   # or connect("local", schema=...)

A schema folder is the local org's own format: one file per object, `<Object>.json`, holding
exactly what `GET /services/data/vXX.X/sobjects/<Object>/describe/` answered (fields, types,
lengths, picklists with their values and restrictedness, record types, required-ness,
external ids, relationships, key prefix, and whatever else the describe has: nothing is
dropped, so what the local org does not act on is still there and still served). Beside
them, `_snapshot.json` says where and when they were taken. Validation rules are not part
of a snapshot (yet): they can be added to the folder later without touching the describes.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from . import errors
from .org import Org, org_or_default

MANIFEST = "_snapshot.json"
_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SchemaSnapshot:
    """Where a snapshot was written and which objects it holds."""

    path: Path
    objects: tuple[str, ...]

    def __repr__(self) -> str:
        count = len(self.objects)
        return (f"<SchemaSnapshot {count} object{'' if count == 1 else 's'} in "
                f"{str(self.path)!r}: {', '.join(self.objects)}>")


def default_objects(org: Org) -> list[str]:
    """What a snapshot takes when not told: the objects the local org ships that the org
    has, and every custom object (`__c`) of the org, in the global describe's order."""
    shipped = {entry.name.removesuffix(".json").lower()
               for entry in resources.files("sfbulk_nb.localorg").joinpath("schema").iterdir()
               if entry.name.endswith(".json")}
    listed = org.get_json("sobjects").get("sobjects", [])
    return [o["name"] for o in listed
            if o["name"].lower() in shipped or (o.get("custom") and o["name"].endswith("__c"))]


def fetch_describes(org: Org | None = None, objects: Iterable[str] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """{object name: its describe JSON, as the org answered it}; `objects=None`: see
    default_objects. An object the org does not have is an InputError naming it (nothing
    is returned then: a snapshot is all the objects asked for, or none)."""
    org = org_or_default(org)
    if isinstance(objects, str):
        objects = [name.strip() for name in objects.split(",") if name.strip()]
    names = list(default_objects(org) if objects is None else objects)
    if not names:
        raise errors.InputError("no objects to snapshot: name them, e.g. "
                                "objects=['Account', 'Contact']")
    bad = [name for name in names if not (isinstance(name, str) and _API_NAME.match(name))]
    if bad:
        raise errors.InputError(f"{', '.join(map(repr, bad))}: not an object's API name "
                                "(letters, digits and _, e.g. Invoice__c)")
    describes: dict[str, dict[str, Any]] = {}
    missing = []
    for name in dict.fromkeys(names):
        try:
            describe = org.describe(name)
        except errors.NotFoundError:
            missing.append(name)
            continue
        # Saved under the name asked for when the org answers another spelling of it
        # that is no API name (a file name must not come from the answer unchecked).
        answered = describe.get("name")
        key = answered if isinstance(answered, str) and _API_NAME.match(answered) else name
        describes[key] = describe
    if missing:
        raise errors.InputError(f"{org.label} has no object {', '.join(map(repr, missing))} "
                                "(or this user cannot see it); check the API names, e.g. "
                                "Invoice__c for a custom object")
    return describes


def snapshot_schema(org: Org | None, objects: Iterable[str] | str | None,
                    path: str | os.PathLike) -> SchemaSnapshot:
    """Save the describes of `objects` (a list, or "Account,Contact"; None: see
    default_objects) of `org` (None: the default org) into the folder `path`, as a schema
    folder a local org can be started from (`LocalOrg(schema=path)`,
    `connect("local", schema=path)`). An object's earlier file in the folder is replaced;
    other files stay. Every describe is fetched before anything is written."""
    org = org_or_default(org)
    describes = fetch_describes(org, objects)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise errors.InputError(f"{folder} is a file; give a folder for the snapshot")
    # A new folder is private: a real org's describes show its custom objects and fields.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, describe in describes.items():
        (folder / f"{name}.json").write_text(json.dumps(describe, indent=2, ensure_ascii=False),
                                             encoding="utf-8")
    manifest = {"source": org.label, "apiVersion": org.api_version,
                "takenAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "objects": list(describes)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return SchemaSnapshot(folder, tuple(describes))
