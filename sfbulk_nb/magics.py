"""IPython magics: a thin shell over `api`. `%load_ext sfbulk_nb` registers them.

    %sf_connect local                          # or ALIAS, or --instance-url URL --token-env VAR
    res = %bulk_upsert df Account customExtIdField__c --nulls clear
    %bulk_insert df Contact --dry-run          # the LoadPlan: problems, jobs
    %bulk_upsert df Account customExtIdField__c --on-invalid skip
    %bulk_delete ids Account --hard
    res = %bulk_upsert exports/accounts.csv Account customExtIdField__c   # streamed
    %%soql accounts
    SELECT Id, Name FROM Account
    %bulk_jobs --object Account              # its jobs, newest first

Defaults are traitlets: `%config SFBulkMagics.parallel = 2` (also `progress`, `nulls`,
`on_invalid`, `api_version`). Bad arguments and library errors become a short `UsageError`, never a
traceback or a SystemExit.
"""
from __future__ import annotations

import argparse
import difflib
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import (Magics, line_cell_magic, line_magic, magics_class,
                                needs_local_scope)
from IPython.display import display
from IPython.utils.process import arg_split
from traitlets import Enum, Integer, Unicode, observe

from . import api, jobs, org as orgs
from .errors import SFBulkError, as_options
from .query import query_df
from .tables import ShownFrame, options


class _HelpShown(Exception):
    pass


# A load magic's DF with one of these endings names a file (to stream), not a variable.
_FILE_SUFFIXES = (".csv", ".tsv", ".txt")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (with the usage line) instead of exiting, and takes
    options only by their full names (`--token` must not pass for `--token-env`)."""

    def __init__(self, **kwargs: Any):
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{self.format_usage().strip()}\n{message}{self._did_you_mean(message)}")

    def _did_you_mean(self, message: str) -> str:
        """For a misspelt option (--paralel), the option it most likely means."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        said = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
        close = {w: difflib.get_close_matches(w.split("=")[0], known, n=1) for w in said}
        hints = [f"{w!r}: did you mean {c[0]}?" for w, c in close.items() if c]
        return ("\n" + "; ".join(hints)) if hints else ""

    def exit(self, status: int = 0, message: str | None = None):
        if status:
            raise UsageError(message or self.format_usage())
        raise _HelpShown  # -h printed the help


def _parse(parser: _Parser, line: str) -> argparse.Namespace | None:
    """The parsed line, or None when it asked for -h."""
    try:
        return parser.parse_args(arg_split(line, posix=True, strict=True))
    except ValueError as e:  # an unclosed quote
        raise UsageError(f"{parser.format_usage().strip()}\n{e}") from None
    except _HelpShown:
        return None


def _load_parser(name: str, *keys: str, hard: bool = False) -> _Parser:
    p = _Parser(prog=f"%{name}", description=f"{name.split('_')[1]} the rows of a DataFrame "
                "(or of a CSV file, streamed) with the Bulk API 2.0 and return the BulkResult "
                "(a file's: its StreamResult).")
    p.add_argument("df", metavar="DF", help="a DataFrame variable (delete: or ids), or the "
                   "path of a CSV file, read and sent a block at a time (never held whole)")
    p.add_argument("sobject", metavar="OBJECT", help="the object, e.g. Account")
    for key in keys:
        p.add_argument(key.lower(), metavar=key, help="the External ID field (or Id)")
    p.add_argument("--nulls", choices=api.NULL_POLICIES,
                   help="blank cells: keep (leave fields unchanged) or clear (#N/A)")
    p.add_argument("--on-invalid", choices=api.ON_INVALID,
                   help="rows with errors found before sending: stop and list them (raise), "
                   "leave them out (skip) or send them anyway (send)")
    p.add_argument("--dry-run", action="store_true",
                   help="check and encode only; return the LoadPlan (jobs, problems); of a "
                   "file: every problem of it by line (validate_csv)")
    if name in ("bulk_upsert", "bulk_update"):
        p.add_argument("--only-changed", action="store_true",
                       help="send only the cells that change their record (looks the records "
                       "up first); rows that change nothing come back 'unchanged'")
        p.add_argument("--if-unmodified-since", metavar="WHEN",
                       help="hold back rows whose record was modified after WHEN: a "
                       "query_df result's variable, or a time with its zone "
                       "(2026-12-01T09:00Z)")
    p.add_argument("--no-wait", action="store_true",
                   help="return at once; res.wait() finishes (the panel keeps updating)")
    p.add_argument("--parallel", type=int, metavar="N", help="jobs at once")
    files = p.add_argument_group("a CSV file (DF is a path)")
    files.add_argument("--results", metavar="PATH", help="where each line's outcome goes, "
                       ".csv or .parquet (default: beside the file, NAME.results.csv)")
    files.add_argument("--encoding", metavar="ENC", help="the file's encoding (default "
                       "UTF-8; an Excel export: cp1252)")
    files.add_argument("--sep", metavar="CHAR", help="the character between fields "
                       "(default ','; a European Excel export: ';')")
    if hard:
        p.add_argument("--hard", action="store_true",
                       help="hard delete: skip the Recycle Bin")
    return p


_PARSERS = {
    "upsert": _load_parser("bulk_upsert", "EXT_ID"),
    "insert": _load_parser("bulk_insert"),
    "update": _load_parser("bulk_update"),
    "delete": _load_parser("bulk_delete", hard=True),
}

_CONNECT = _Parser(prog="%sf_connect", description=(
    "Connect to an org and make it the default. TARGET is 'local' or an sf CLI alias; "
    "with neither TARGET nor --instance-url, SF_* environment variables, else the local org. "
    "A token is never typed here: --token-env names the environment variable holding it."))
_CONNECT.add_argument("target", nargs="?", metavar="local|ALIAS")
_CONNECT.add_argument("--instance-url", metavar="URL")
_CONNECT.add_argument("--token-env", metavar="VAR",
                      help="the NAME of an environment variable holding the access token")

_SOQL = _Parser(prog="%%soql", description=(
    "Run the cell's SOQL as a Bulk API 2.0 query; display the typed frame and store it in "
    "VAR (or return it). As a line magic the rest of the line is the SOQL."))
_SOQL.add_argument("var", nargs="?", metavar="VAR")
_SOQL.add_argument("--include-deleted", action="store_true",
                   help="queryAll: deleted and archived records too")


def _limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        limit = -1
    if limit < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, not {text!r}")
    return limit


_JOBS = _Parser(prog="%bulk_jobs", description=(
    "The default org's ingest jobs as a DataFrame, newest first: state, object, operation, "
    "rows processed and failed (asked of each job shown, one API call each), created (UTC) "
    "and id."))
_JOBS.add_argument("--object", metavar="OBJECT", help="only jobs on OBJECT, e.g. Account")
_JOBS.add_argument("--limit", type=_limit, default=20, metavar="N",
                   help="at most N jobs (0: all; default 20)")

# What to look at first; the id, needed only to act on a job, last.
_JOB_COLUMNS = ["state", "object", "operation", "processed", "failed", "created", "id"]


@magics_class
class SFBulkMagics(Magics):
    """%sf_connect, %bulk_upsert / insert / update / delete, %%soql and %bulk_jobs."""

    parallel = Integer(4, help="Jobs run at once by the bulk magics (--parallel).").tag(
        config=True)
    progress = Enum(("auto", "text", "none"), "auto", help=(
        "Progress of bulk runs and queries: auto (the widget in a kernel, else text), "
        "text, or none.")).tag(config=True)
    nulls = Enum(api.NULL_POLICIES, "keep", help=(
        "Blank cells: keep (leave the field unchanged) or clear (send #N/A).")).tag(
        config=True)
    on_invalid = Enum(api.ON_INVALID, "raise", help=(
        "Rows with errors found before sending: raise (send nothing, list the problems), "
        "skip (send the valid rows) or send (let the org judge them).")).tag(config=True)
    api_version = Unicode(None, allow_none=True, help=(
        "API version %sf_connect asks for, e.g. '62.0' (None: the org's latest).")).tag(
        config=True)

    display_limit = Integer(15, min=0, help=(
        "Rows a result frame (res.frame, %%soql) shows; 0: pandas decides. The same "
        "setting as sfb.options.display_limit.")).tag(config=True)

    @observe("display_limit")
    def _display_limit_changed(self, change: dict) -> None:
        options.display_limit = change["new"]  # one setting, however it is set

    @property
    def _progress(self) -> Any:
        return False if self.progress == "none" else self.progress

    # -- connecting ------------------------------------------------------------------

    @line_magic
    def sf_connect(self, line: str):
        """%sf_connect [local | ALIAS | --instance-url URL --token-env VAR]: connect and
        make the org the default of every sfbulk_nb call. `%sf_connect -h` for more."""
        args = _parse(_CONNECT, line)
        if args is None:
            return None
        version = self.api_version or None
        if any(value and "!" in value for value in (args.target, args.token_env)):
            # Salesforce session ids look like 00D...!AQ...: never accept one typed here,
            # nor repeat it (as "environment variable 00D...!AQ... is not set" would).
            raise UsageError("That looks like an access token. Put it in an environment "
                             "variable and pass its name: --instance-url URL --token-env VAR")
        with _short_errors():
            if args.instance_url or args.token_env:
                if not (args.instance_url and args.token_env) or args.target:
                    raise UsageError(f"{_CONNECT.format_usage().strip()}\n--instance-url "
                                     "and --token-env go together, without local|ALIAS")
                token = os.environ.get(args.token_env)
                if not token:
                    raise UsageError(f"environment variable {args.token_env} is not set: set "
                                     f"it before starting Jupyter, or in a cell with "
                                     f"os.environ[{args.token_env!r}] = getpass.getpass()")
                org = orgs.connect(instance_url=args.instance_url, access_token=token,
                                   api_version=version)
            elif args.target:
                org = orgs.connect(args.target, api_version=version)
            else:
                org = orgs.connect(api_version=version)
            print(f"Connected to {org.label} ({org.kind.upper()}, API v{org.api_version})")

    # -- loads ---------------------------------------------------------------------------

    @needs_local_scope
    @line_magic
    def bulk_upsert(self, line: str, local_ns: dict | None = None):
        """%bulk_upsert DF OBJECT EXT_ID [--nulls keep|clear] [--on-invalid raise|skip|send] [--dry-run] [--no-wait]
        [--parallel N]: insert or update rows matched on EXT_ID; returns the BulkResult."""
        return self._load("upsert", line, local_ns)

    @needs_local_scope
    @line_magic
    def bulk_insert(self, line: str, local_ns: dict | None = None):
        """%bulk_insert DF OBJECT [--nulls keep|clear] [--on-invalid raise|skip|send] [--dry-run] [--no-wait]
        [--parallel N]: create one record per row; returns the BulkResult."""
        return self._load("insert", line, local_ns)

    @needs_local_scope
    @line_magic
    def bulk_update(self, line: str, local_ns: dict | None = None):
        """%bulk_update DF OBJECT [--nulls keep|clear] [--on-invalid raise|skip|send] [--dry-run] [--no-wait]
        [--parallel N]: update records by DF's Id column; returns the BulkResult."""
        return self._load("update", line, local_ns)

    @needs_local_scope
    @line_magic
    def bulk_delete(self, line: str, local_ns: dict | None = None):
        """%bulk_delete DF OBJECT [--hard] [--dry-run] [--no-wait] [--parallel N]: delete
        records by Id (DF: a frame with an Id column, a Series or a list of ids)."""
        return self._load("delete", line, local_ns)

    def _load(self, operation: str, line: str, local_ns: dict | None):
        args = _parse(_PARSERS[operation], line)
        if args is None:
            return None
        options: dict[str, Any] = dict(nulls=args.nulls or self.nulls,
                                       on_invalid=args.on_invalid or self.on_invalid)
        path = self._file(args, local_ns)
        if path is not None:
            return self._load_file(operation, path, args, options)
        for name in ("results", "encoding", "sep"):
            if getattr(args, name) is not None:
                raise UsageError(f"--{name} is for a CSV file; {args.df} is a variable")
        data = self._variable(args.df, local_ns)
        if getattr(args, "only_changed", False):
            options["only_changed"] = True
        since = getattr(args, "if_unmodified_since", None)
        if since is not None:
            # A variable (a query_df result, a Timestamp) when one has that name.
            found = (local_ns or {}).get(since, self.shell.user_ns.get(since, since))
            options["if_unmodified_since"] = found
        parallel = self.parallel if args.parallel is None else args.parallel
        external_id = getattr(args, "ext_id", None)
        with _short_errors():
            if args.dry_run:
                if operation == "delete" and args.hard:
                    operation = "hardDelete"
                return api.dry_run(data, args.sobject, operation, external_id, **options)
            options.update(progress=self._progress, wait=not args.no_wait, parallel=parallel)
            if operation == "upsert":
                return api.upsert_df(data, args.sobject, external_id, **options)
            if operation == "insert":
                return api.insert_df(data, args.sobject, **options)
            if operation == "update":
                return api.update_df(data, args.sobject, **options)
            return api.delete_df(data, args.sobject, hard=args.hard, **options)

    def _variable(self, name: str, local_ns: dict | None) -> Any:
        for ns in (local_ns or {}, self.shell.user_ns):
            if name in ns:
                return ns[name]
        raise UsageError(f"no variable named {name!r} in the notebook; DF must be the name "
                         "of a DataFrame, or the path of a CSV file")

    def _file(self, args: argparse.Namespace, local_ns: dict | None) -> str | None:
        """DF as the path of a file to stream, or None for a variable. A variable wins
        over a file of the same name; a name that looks like a path but names no file
        is refused (rather than "no variable named 'data/accounts.csv'")."""
        name = args.df
        if any(name in ns for ns in (local_ns or {}, self.shell.user_ns)):
            return None
        if os.path.isfile(name):
            return name
        if os.sep in name or "/" in name or os.path.splitext(name)[1].lower() in _FILE_SUFFIXES:
            raise UsageError(f"no file at {name!r} (from {os.getcwd()}); DF is a DataFrame "
                             "variable or the path of a CSV file")
        return None

    def _load_file(self, operation: str, path: str, args: argparse.Namespace,
                   options: dict[str, Any]):
        """%bulk_upsert data.csv ...: the file streamed (sfbulk_nb.stream), its StreamResult
        returned. What needs a whole frame is refused with the way to get one."""
        from . import stream

        whole = [flag for flag, on in (("--no-wait", args.no_wait),
                                        ("--only-changed", getattr(args, "only_changed", False)),
                                        ("--if-unmodified-since",
                                         getattr(args, "if_unmodified_since", None)))
                 if on]
        if whole:
            raise UsageError(f"{', '.join(whole)} need(s) the rows in a DataFrame; a file is "
                             f"streamed. Read it first: df = pd.read_csv({path!r}, dtype=str, "
                             f"keep_default_na=False), then %bulk_{operation} df ...")
        if operation == "delete" and args.hard:
            operation = "hardDelete"
        file_options = {name: getattr(args, name) for name in ("results", "encoding", "sep")
                        if getattr(args, name) is not None}
        if args.dry_run:
            if args.results is not None:
                raise UsageError("--results with --dry-run: a dry run sends nothing, so it "
                                 "has no results")
            with _short_errors():
                # Every problem of the file by line, nothing sent (validate_csv).
                return stream.validate_csv(path, args.sobject, getattr(args, "ext_id", None),
                                           operation, progress=self._progress,
                                           **file_options, **options)
        parallel = self.parallel if args.parallel is None else args.parallel
        with _short_errors():
            return stream.load_csv(path, args.sobject, operation, getattr(args, "ext_id", None),
                                   progress=self._progress, parallel=parallel,
                                   **file_options, **options)

    # -- queries and jobs ----------------------------------------------------------------

    @line_cell_magic
    def soql(self, line: str, cell: str | None = None):
        """%%soql [VAR] [--include-deleted]: run the cell's SOQL as a Bulk API 2.0 query,
        display the typed DataFrame (its first `display_limit` rows) and store it in VAR
        (without VAR, return it).
        `df = %soql SELECT ...` runs one line."""
        if cell is None:
            args = argparse.Namespace(var=None, include_deleted=False)
            soql = line
        else:
            args = _parse(_SOQL, line)
            if args is None:
                return None
            soql = cell
        soql = soql.strip()
        if not soql:
            raise UsageError("no SOQL to run: put the query after %soql, or in the cell "
                             "under %%soql, e.g. SELECT Id, Name FROM Account")
        if args.var is not None and not args.var.isidentifier():
            raise UsageError(f"{_SOQL.format_usage().strip()}\nVAR must be a Python name, "
                             f"not {args.var!r}")
        with _short_errors():
            frame = ShownFrame.of(query_df(soql, include_deleted=args.include_deleted,
                                           progress=self._progress))
        if args.var is None:
            return frame
        self.shell.user_ns[args.var] = frame
        display(frame)
        return None

    @line_magic
    def bulk_jobs(self, line: str):
        """%bulk_jobs [--object OBJECT] [--limit N]: the default org's ingest jobs, newest
        first (20 unless --limit; 0: all), as a DataFrame of state, object, operation, rows
        processed and failed, created (UTC) and id. `%bulk_jobs -h` for more."""
        args = _parse(_JOBS, line)
        if args is None:
            return None
        with _short_errors():
            org = orgs.default_org()
            listed = pd.DataFrame(jobs.list_jobs(org), columns=["id", "object", "operation",
                                                                 "state", "createdDate"])
            if args.object:  # API names are case-insensitive
                listed = listed[listed["object"].str.lower() == args.object.lower()]
            listed = listed.assign(created=pd.to_datetime(listed["createdDate"], utc=True,
                                                          format="ISO8601"))
            # Jobs created in the same millisecond: the later id is the newer job.
            listed = listed.sort_values(["created", "id"], ascending=False)
            if args.limit:
                listed = listed.head(args.limit)
            # The list leaves the counters out (as Salesforce's does): ask each job shown,
            # for its state too, which may have moved on since the list.
            with ThreadPoolExecutor(max_workers=max(1, self.parallel)) as pool:
                infos = list(pool.map(lambda job_id: jobs.get(org, job_id), listed["id"]))
        now = pd.DataFrame([(i.state, i.processed, i.failed) for i in infos], index=listed.index,
                           columns=["state", "processed", "failed"])
        listed = listed.drop(columns="state").join(now.astype({"processed": "int64",
                                                               "failed": "int64"}))
        # Whole seconds, without the +00:00 every value would repeat: the table fits a
        # 100-column terminal.
        listed = listed.assign(created=listed["created"].dt.floor("s").dt.tz_localize(None))
        return listed[_JOB_COLUMNS].reset_index(drop=True)


@contextmanager
def _short_errors() -> Iterator[None]:
    """Library errors as a one-line UsageError: the message is the answer, not the stack,
    its advice in the magics' spelling (--on-invalid skip, not on_invalid='skip')."""
    try:
        yield
    except SFBulkError as e:
        raise UsageError(f"{type(e).__name__}: {as_options(str(e))}") from None


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(SFBulkMagics)
