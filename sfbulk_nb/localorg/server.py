"""LocalOrg: the local org as a real HTTP server on 127.0.0.1, in a background thread.

    with LocalOrg() as org:                     # temp SQLite file, free port
        requests.get(org.instance_url + "/services/data/v66.0/limits",
                     headers={"Authorization": f"Bearer {org.access_token}"})

`LocalOrg(path=default_path())` keeps its records and jobs across restarts; so does a
named org, `LocalOrg(name="quickstart")`, a file of its own beside the default one (see
default_path). `reset()` empties an org.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import LocalOrgApp
from .catalog import (Catalog, SchemaError, SchemaImport, SObject, describe_files,
                      limitations)
from .engine import Engine
from .contention import Contention
from .faults import Faults
from .identity import Identity
from .rules import RuleError, ValidationRule
from .runner import JobFault, Runner
from .limits import API_REQUESTS, Limits, check_limits
from .queryjobs import QueryJobs
from .store import PRIVATE_DIR, Store, make_private


# A name becomes part of a file name: no separators, dots or spaces, and one spelling per
# file on case-insensitive file systems.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_name(name: str) -> str:
    """`name` if it can name a local org, else ValueError saying what can."""
    if not (isinstance(name, str) and _NAME.fullmatch(name)):
        raise ValueError(f"{name!r} cannot name a local org: use 1 to 64 lower-case letters, "
                         "digits, '-' and '_', starting with a letter or digit, e.g. "
                         "'quickstart'")
    return name


def default_path(name: str | None = None) -> Path:
    """Where a persistent local org lives.

    The default org: $SFBULK_NB_LOCALORG if set, else the user's data directory (e.g.
    ~/.local/share/sfbulk_nb/localorg.sqlite3). A named org sits beside it, the name after
    the default file's stem: localorg-quickstart.sqlite3 (with
    SFBULK_NB_LOCALORG=/work/org.sqlite3, /work/org-quickstart.sqlite3).
    """
    import platformdirs

    if os.environ.get("SFBULK_NB_LOCALORG"):
        path = Path(os.environ["SFBULK_NB_LOCALORG"])
    else:
        path = Path(platformdirs.user_data_dir("sfbulk_nb")) / "localorg.sqlite3"
    if name is None:
        return path
    return path.with_name(f"{path.stem}-{check_name(name)}{path.suffix}")


class _QuietHandler(WSGIRequestHandler):
    """No access log: a notebook should not fill with request lines."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class LocalOrg:
    """A Bulk API 2.0 org on SQLite.

    path: the SQLite file (None: a temporary file removed by stop()).
    name: a named org, kept in default_path(name); give a name or a path, not both.
    port: 0 picks a free port. Binds 127.0.0.1 only.
    pace: records processed per second (None: as fast as possible); pacing lets a demo
        watch a job move through its states.
    result_order: "shuffled" (default; Salesforce guarantees no order) or "input".
    limits: daily allowances that differ from the defaults, e.g. {"DailyApiRequests": 200}
        (DailyApiRequests, DailyBulkApiBatches, DailyBulkV2QueryJobs; see limits.py), so
        that running out can be rehearsed. `set_limits` changes them on a running org.
    schema: a schema folder (`sfb.snapshot_schema` writes one) to load: see load_schema;
        what it did is in `schema_import`.
    contention: the share of rows (0 to 1; 0, off, by default) that fail UNABLE_TO_LOCK_ROW
        when another queued ingest job writes children of the same parent record, drawn
        with `seed` (see localorg.contention); `set_contention` changes it.
    """

    def __init__(self, path: str | Path | None = None, port: int = 0, *,
                 name: str | None = None, pace: float | None = None, result_order: str = "shuffled",
                 seed: int | None = None, limits: dict[str, int] | None = None,
                 schema: str | Path | None = None, contention: float = 0.0,
                 clock: Callable[[], float] = time.time):
        limits = check_limits(limits or {})  # before any file is made
        self._tempdir = None
        self.name = name
        if name is not None:
            if path is not None:
                raise ValueError("give a local org a name or a path, not both")
            path = default_path(name)
        elif path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="sfbulk-localorg-")
            path = Path(self._tempdir.name) / "org.sqlite3"
        self.path = Path(path)
        # A folder made here is private (the org file in it holds secrets, see
        # store.make_private); one that exists may be a shared folder the user picked, and
        # keeps its permissions.
        self.path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        self.port = port
        self.catalog = Catalog(extra_dir=self.path.with_suffix(".objects"))
        make_private(self.catalog.extra_dir, PRIVATE_DIR)
        self.store = Store(self.path, self.catalog)
        self.identity = Identity(self.store, clock)
        self.faults = Faults()
        self.limits = Limits(self.store, limits, clock=clock)
        # Checked before the worker starts: a bad share is an argument error.
        self.contention = Contention(contention, seed)
        # One worker processes the jobs of every kind (see runner.py).
        self.runner = Runner(self.store, clock=clock, pace=pace)
        self.engine = Engine(self.store, self.catalog, self.runner, result_order=result_order,
                             seed=seed, faults=self.faults, limits=self.limits,
                             contention=self.contention)
        self.query_jobs = QueryJobs(self.engine)
        self.app = LocalOrgApp(self.store, self.engine, self.query_jobs, self.identity,
                               self.faults, self.limits, clock=clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._token: str | None = None
        try:
            self.schema_import = None if schema is None else self.load_schema(schema)
        except BaseException:
            self.stop()  # the file (a temporary one is removed) and the worker
            raise

    def __repr__(self) -> str:
        where = self.instance_url if self._server else "stopped"
        named = f" {self.name!r}" if self.name else ""
        return f"<LocalOrg{named} {where} db={str(self.path)!r}>"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "LocalOrg":
        if self._server is None:
            try:
                self._server = make_server("127.0.0.1", self.port, self.app, threaded=True,
                                           request_handler=_QuietHandler)
            except SystemExit:
                # werkzeug prints why it cannot bind (a port in use) and exits the process:
                # a library must raise instead.
                raise OSError(f"cannot listen on 127.0.0.1:{self.port}") from None
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="localorg-http", daemon=True)
            self._thread.start()
            self.runner.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None
        self.runner.stop()
        if self._tempdir is not None:
            self.store.close()
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> "LocalOrg":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty the org: a new org on the same file and port.

        Every record, job, token, refresh token, trusted JWT key and API-usage count is
        forgotten, and the org gets new credentials (password, client secret; connect()
        picks up the new token by itself, other clients log in again). Objects added with
        add_object() stay, empty, and so do validation rules. Ids start over, so the same loads give the same ids.
        Jobs being processed are waited for first (up to a minute)."""
        self.runner.wait_idle(timeout=60)
        self.faults.clear()
        self.runner.job_faults.clear()
        self.store.wipe()
        self.identity = Identity(self.store, self.identity.clock)
        self.app.identity = self.identity
        self._token = None

    # -- connection details -------------------------------------------------------------

    @property
    def instance_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local org is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def access_token(self) -> str:
        """A valid bearer token (a new one once the previous has expired)."""
        if self._token is None or self.store.token_user(self._token, self.identity.clock()) is None:
            self._token = self.identity.issue_token()[0]
        return self._token

    @property
    def username(self) -> str:
        return self.identity.credentials.username

    @property
    def password(self) -> str:
        return self.identity.credentials.password

    @property
    def client_id(self) -> str:
        return self.identity.credentials.client_id

    @property
    def client_secret(self) -> str:
        return self.identity.credentials.client_secret

    @property
    def org_id(self) -> str:
        return self.identity.credentials.org_id

    @property
    def user_id(self) -> str:
        return self.identity.credentials.user_id

    @property
    def api_calls_today(self) -> int:
        return self.limits.used(API_REQUESTS)

    def set_limits(self, limits: dict[str, int]) -> None:
        """Change daily allowances of this org (running or not), e.g.
        `set_limits({"DailyApiRequests": 10_000})` to let a rehearsal carry on after it ran
        out. The others keep theirs; today's use is kept (reset() forgets it)."""
        self.limits.set(limits)

    def limits_report(self) -> dict[str, dict[str, int]]:
        """What `GET /services/data/vXX.X/limits` answers, without using a call."""
        return self.limits.report()

    # -- objects and faults ---------------------------------------------------------------

    def add_object(self, describe: dict[str, Any] | str | Path) -> SObject:
        """Teach the org an object from describe JSON (a dict, or a path to a saved file).

        The describe is kept beside the org's database, so the object survives restarts.
        """
        if not isinstance(describe, dict):
            describe = json.loads(Path(describe).read_text(encoding="utf-8"))
        # Kept in a private folder: a describe saved from a real org shows that org's
        # custom objects and fields.
        self.catalog.extra_dir.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        obj = self.catalog.add(describe)
        self.store.ensure_table(obj)
        return obj

    def set_contention(self, rate: float, seed: int | None = None) -> None:
        """Rows of ingest jobs that write children of a parent another queued job also
        writes children of fail with UNABLE_TO_LOCK_ROW with probability ``rate`` (0: off,
        the default), and their jobs count ``retries`` (see localorg.contention)."""
        self.contention.set(rate, seed)

    def add_validation_rule(self, sobject: str, name: str, formula: str, message: str,
                            field: str | None = None, active: bool = True,
                            description: str | None = None) -> ValidationRule:
        """Add a validation rule: rows of ingest jobs (insert, update, upsert) for which
        `formula` (Salesforce's error condition formula, in the subset documented in
        sfbulk_nb.formula) is true fail with `FIELD_CUSTOM_VALIDATION_EXCEPTION:<message>:
        <field> --`. `field` is the error display field (None: the top of the page).

        The formula is checked now against the object's fields: an unknown field, bad
        syntax or a function outside the subset raises RuleError naming it. Rules are
        kept in the org file, listed by the Tooling API's ValidationRule, and survive
        reset() like added objects. An import from a real org can store the rules it
        fetched (sfbulk_nb.rules.fetch_rules) through this method."""
        return self.engine.rules.add(sobject, name, formula, message, field=field,
                                     active=active, description=description)

    def add_validation_rules(self, sobject: str, rules: Iterable[Any]) -> list[tuple[str, str]]:
        """Store rules read from another org (for an import of its shape), skipping
        those this org cannot evaluate: returns (rule name, why) for each skipped one and
        warns about it, so none is guessed at. A rule is anything with the attributes
        name, formula, message, field, active and description (sfbulk_nb.rules.Rule, as
        sfbulk_nb.rules.fetch_rules returns them); a rule of the same name is replaced."""
        skipped = []
        for rule in rules:
            try:
                self.engine.rules.add(sobject, rule.name, rule.formula, rule.message,
                                      field=rule.field, active=rule.active,
                                      description=getattr(rule, "description", None),
                                      replace=True)
            except RuleError as e:
                skipped.append((rule.name, str(e)))
                warnings.warn(f"skipped: {e}", stacklevel=2)
        return skipped

    def remove_validation_rule(self, sobject: str, name: str) -> None:
        self.engine.rules.remove(sobject, name)

    def validation_rules(self, sobject: str | None = None) -> list[ValidationRule]:
        """The org's validation rules (of one object, or all)."""
        return self.engine.rules.rules(sobject)
    def add_describes(self, describes: list[dict[str, Any]]) -> SchemaImport:
        """Teach the org several objects at once: all of them, or (SchemaError naming
        each problem) none. Objects of the same name are replaced, the others stay."""
        self.catalog.check(describes)
        added = [self.add_object(describe) for describe in describes]
        return SchemaImport([o.name for o in added], {o.name: limitations(o) for o in added})

    def load_schema(self, folder: str | Path) -> SchemaImport:
        """Teach the org every object of a schema folder: one describe JSON file per object
        (`<Object>.json`, as `sfb.snapshot_schema` writes), copied beside the org's file so
        they stay when it restarts. Shipped objects the folder does not have stay as they
        are; those it has are replaced by its describe. Validation rules are not part of a
        schema folder (yet): describes only."""
        folder = Path(folder)
        if not folder.is_dir():
            raise SchemaError(f"{folder} is not a folder; give the folder sfb.snapshot_schema "
                              "wrote, or any folder of describe JSON files (<Object>.json)")
        files = describe_files(folder)
        if not files:
            raise SchemaError(f"{folder} has no describe JSON files (<Object>.json); save "
                              "them with sfb.snapshot_schema(org, objects, path)")
        describes = []
        for path in files:
            try:
                describes.append(json.loads(path.read_text(encoding="utf-8")))
            except ValueError as e:
                raise SchemaError(f"{path} is not JSON ({e}); it should be the answer of "
                                  "GET /services/data/vXX.X/sobjects/<Object>/describe/") from None
        return self.add_describes(describes)

    def import_schema(self, org: Any, objects: Iterable[str] | None = None) -> SchemaImport:
        """Copy objects' describes from another org (an `sfb.connect(...)` Org: a real org,
        or another local one) into this one: see `sfbulk_nb.schema.fetch_describes` for
        which objects `objects=None` takes. The local org otherwise never uses the client;
        this convenience does, to fetch."""
        from ..schema import fetch_describes

        return self.add_describes(list(fetch_describes(org, objects).values()))

    def fail_next_job(self, message: str | None = None, after_records: int = 0) -> None:
        """The next job to be processed (ingest or query) ends Failed with `message` once
        it has processed `after_records` rows; the rest of an ingest job's rows are
        unprocessed. A job with fewer rows processes them all and still ends Failed."""
        fault = JobFault(after_records=after_records)
        if message:
            fault.message = message
        self.runner.job_faults.append(fault)

    def issue_refresh_token(self) -> str:
        """A refresh token for the org's user, as Salesforce's web-server flow gives one once
        the user approves the connected app (the local org has no login page for that flow;
        none of its token grants issues one). Use it with the `refresh_token` grant, e.g.
        `connect(refresh_token=..., client_id=org.client_id, login_url=org.instance_url)`."""
        return self.identity.issue_refresh_token()

    def register_jwt_key(self, public_key_pem: str | bytes) -> None:
        """Trust an RSA public key (PEM) for the JWT bearer flow, as uploading a certificate
        to the connected app does in Salesforce. Kept in the org file; reset() forgets it."""
        self.identity.register_jwt_key(public_key_pem)

    def expire_tokens(self) -> None:
        """Every issued token stops working (401 INVALID_SESSION_ID), as at session timeout."""
        self.store.expire_tokens(self.identity.clock())
        self._token = None

    def wait_idle(self, timeout: float | None = 60) -> bool:
        """Wait until every closed job has been processed."""
        return self.runner.wait_idle(timeout)
