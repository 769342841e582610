"""The `sfbulk-nb` command."""
from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import threading
from pathlib import Path


def _org_path(args: argparse.Namespace) -> Path:
    """The local org a command works on: --db, --name, else the default one."""
    from .localorg import default_path

    return Path(args.db) if args.db else default_path(args.name)


def _serve(args: argparse.Namespace) -> int:
    import sqlite3

    from . import memory
    from .localorg import LocalOrg

    memory.serving_pool()  # this process only serves: its allocator can be chosen for it
    path = _org_path(args)
    try:
        org = LocalOrg(path=path, port=args.port, pace=args.pace, limits=dict(args.limit))
    except (OSError, sqlite3.Error) as e:
        print(f"sfbulk-nb: cannot open the local org's database {path}: {e}; pass --db the "
              "path of an SQLite file (a new one is made), e.g. --db org.sqlite3",
              file=sys.stderr)
        return 2
    try:
        org.start()
    except OSError as e:
        org.stop()
        print(f"sfbulk-nb: {e} (port {args.port}); pass another --port, or --port 0 for a "
              "free one", file=sys.stderr)
        return 2
    print(f"Local org running at {org.instance_url}  (database: {org.path})")
    print(f"  username:      {org.username}")
    print(f"  access token:  {org.access_token}")
    print("Use it with sfbulk_nb, simple-salesforce or the sf CLI. Press Ctrl-C to stop.",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    org.stop()
    print("Local org stopped.")
    return 0


def _add_object(args: argparse.Namespace) -> int:
    from .localorg import LocalOrg
    from .localorg.catalog import SchemaError

    org = LocalOrg(path=_org_path(args))
    try:
        for path in args.describe:
            obj = org.add_object(Path(path))
            print(f"Added {obj.name} (key prefix {obj.key_prefix}, {len(obj.fields)} fields) "
                  f"to {org.path}")
    except json.JSONDecodeError as e:
        print(f"sfbulk-nb: cannot add object: {path} is not JSON ({e}); save the whole answer "
              "of GET /services/data/vXX.X/sobjects/<Object>/describe/ to a file",
              file=sys.stderr)
        return 2
    except OSError as e:
        print(f"sfbulk-nb: cannot add object: {e}; give the path of a describe JSON file",
              file=sys.stderr)
        return 2
    except (ValueError, SchemaError) as e:
        print(f"sfbulk-nb: cannot add object: {e}", file=sys.stderr)
        return 2
    finally:
        org.stop()
    return 0


def _import_schema(args: argparse.Namespace) -> int:
    from . import errors, org as orgs
    from .localorg import LocalOrg, default_path
    from .localorg.catalog import SchemaError

    path = _org_path(args)
    if args.org == "local" and path == default_path():
        print("sfbulk-nb: --org local is the default local org, the one you import into; "
              "pass --name NAME (or --db FILE) for another local org", file=sys.stderr)
        return 2
    objects = None if args.objects is None else [n.strip() for n in args.objects.split(",")
                                                  if n.strip()]
    try:
        source = orgs.connect(args.org)
        target = LocalOrg(path=path)
        try:
            imported = target.import_schema(source, objects)
        finally:
            target.stop()
    except (errors.SFBulkError, SchemaError) as e:
        print(f"sfbulk-nb: cannot import the schema: {e}", file=sys.stderr)
        return 2
    print(f"Imported into the local org at {path} from {source.label} (a server running on "
          f"it sees them once restarted): {imported}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    import sqlite3

    from .localorg import LocalOrg

    path = _org_path(args)
    if not path.exists():
        print(f"No local org at {path}: nothing to reset.")
        return 0
    try:
        org = LocalOrg(path=path)
        try:
            org.reset()
        finally:
            org.stop()
    except (OSError, sqlite3.Error) as e:
        print(f"sfbulk-nb: cannot open the local org's database {path}: {e}; pass --db the "
              "path of a local org's SQLite file, or --name the name of a local org",
              file=sys.stderr)
        return 2
    print(f"Reset the local org at {path}: its records, jobs and tokens are gone and it has "
          "new credentials (objects added with add-object are kept, empty).")
    return 0


def _print_summary(res) -> None:
    print(repr(res).split("\n", 1)[0])
    counts = res.counts
    print("rows: " + ", ".join(f"{n:,} {s}" for s, n in counts.items() if n))
    for line in res.job_failures():
        print(line)
    errs = res.errors
    if len(errs):
        print("errors by code and field:")
        for row in errs.itertuples():
            fields = f" [{row.fields}]" if row.fields else ""
            message = row.message if len(row.message) <= 100 else row.message[:97] + "..."
            examples = f" (e.g. {', '.join(row.examples)})" if row.examples else ""
            print(f"  {row.rows:>7,} {row.status:<11} {row.code}{fields}: {message}{examples}")


DEMO_ORG = "demo"


def _demo(args: argparse.Namespace) -> int:
    from . import api, org as orgs
    from .sample import sample_accounts

    df = sample_accounts(args.rows)
    # An org of its own, emptied first: every run creates the same records.
    target = orgs.connect("local", name=DEMO_ORG, fresh=True)
    print(f"Checking {len(df):,} sample accounts (with a few deliberate errors) before "
          f"sending them to a fresh local org {DEMO_ORG!r} at {target.instance_url}")
    problems = api.validate_df(df, "Account", "customExtIdField__c", org=target)
    print(problems.summary_text())
    print("Upserting them; rows with errors are left out (on_invalid='skip') and marked "
          "invalid; warnings go to the org, which judges them")
    res = api.upsert_df(df, "Account", "customExtIdField__c", org=target, progress="text",
                        on_invalid="skip")
    _print_summary(res)
    res.frame.to_csv(args.results, index=False)
    print(f"Aligned result (your rows plus sf_id, sf_status, sf_error_*) written to {args.results}")
    print(f"The accounts stay in the org until the next demo: sfb.connect('local', "
          f"name={DEMO_ORG!r}) in Python")
    return 0 if res.done and not res.exceptions else 1


class _CsvFile:
    """A CSV file as text: its encoding worked out, its records checked against its header,
    and the file line each record starts on (records may span lines)."""

    def __init__(self, path: str, encoding: str | None):
        from .errors import InputError

        self.path = path
        self.note = None
        raw = _read_bytes(path)
        if raw[:4] == b"PK\x03\x04":
            raise InputError(f"{path} is a zip file (an Excel .xlsx workbook?): save it as CSV "
                             "(UTF-8), or read it with pandas.read_excel and use upsert_df")
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff") and encoding is None:
            encoding, self.note = "utf-16", "read as UTF-16 (its byte order mark says so)"
        if encoding is not None:
            try:
                self.text = raw.decode(encoding)
            except (UnicodeDecodeError, LookupError) as e:
                raise InputError(f"{path} cannot be read as {encoding}: {e}; pass the file's "
                                 "encoding with --encoding (e.g. utf-8, cp1252, utf-16)") from None
        else:
            try:
                self.text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = raw.count(b"\n", 0, e.start) + 1
                for fallback, name in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
                    try:
                        self.text = raw.decode(fallback)
                    except UnicodeDecodeError:
                        continue
                    self.note = (f"not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); read "
                                 f"as {name}. Pass --encoding to choose another")
                    break
        if "\x00" in self.text:
            raise InputError(f"{path} holds NUL bytes: it looks like a binary file, not CSV "
                             "(or UTF-16 without a byte order mark: pass --encoding utf-16)")
        self._scan()

    def _scan(self) -> None:
        """Reads the records with the csv module, to check them before pandas reads them:
        pandas fills a short row with blanks without a word, and counts lines its own way
        where a quoted value spans lines, so its errors name the wrong line."""
        import csv

        from .errors import InputError

        where = self.path
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, len(self.text) + 1))  # long text areas: 128 KB
        try:
            try:
                self._records(csv, strict=True)
            except csv.Error as e:
                if "unexpected end of data" in str(e):
                    raise InputError(
                        f"{where}, line {self._at}: a quote opens a value that is never "
                        "closed (the file ends inside it); close the quote, and write a "
                        'quote inside a value as two ("")') from None
                # Strict CSV refuses what pandas takes (text after a closing quote).
                self._records(csv, strict=False)
        except csv.Error as e:
            raise InputError(f"{where}, line {self._at}: not CSV ({e}); fix the line") from None
        finally:
            csv.field_size_limit(limit)
        if self.bad_count:
            raise InputError(self._ragged(len(self.names)))
        if not self.lines:
            raise InputError(f"{where} has a header line but no data rows: nothing to send")
        if self.trailing:
            self.note = "; ".join(filter(None, [self.note, (
                f"{self.trailing:,} row(s) end in empty fields past the header's "
                f"{len(self.names)} (a trailing comma); they are ignored")]))

    def _records(self, csv, *, strict: bool) -> None:
        """One pass over the records (blank lines skipped, as pandas skips them): the
        header's names, the file line each data record starts on, the records whose
        fields do not fit the header's."""
        import io

        reader = csv.reader(io.StringIO(self.text, newline=""), strict=strict)
        self._at = 1  # the file line the record being read starts on
        self.lines, self.bad, self.bad_count, self.trailing, self.fields = [], [], 0, 0, 0
        width = None
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):
                if width is None:
                    width = self._header(record)
                    self.header_end = reader.line_num  # the data starts after this line
                else:
                    self.lines.append(self._at)
                    if len(record) != width:
                        # Fields past the header's that are all empty: a trailing comma.
                        if len(record) < width or any(record[width:]):
                            self.bad_count += 1
                            if len(self.bad) < 5:  # the first few are named
                                self.bad.append((self._at, record))
                        else:
                            self.trailing += 1
                self.fields = max(self.fields, len(record))
            self._at = reader.line_num + 1
        if width is None:
            from .errors import InputError

            raise InputError(f"{self.path} is empty: an upsert file starts with a header line "
                             "of field names (e.g. customExtIdField__c,Name), then a line per row")

    def _header(self, header: list[str]) -> int:
        """Checks the header; its width (a trailing comma names no column)."""
        from .errors import InputError

        where = f"{self.path}, line {self._at}"
        line = ",".join(header)  # as written: "sep=," reads as two fields
        if self._at == 1 and re.fullmatch(r"sep=.", line):
            raise InputError(f"{self.path} starts with Excel's separator line {line!r} (the "
                             "header is the line after it): pass --stream, which reads such "
                             "a file, or drop that line")
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            sep = next(d for d in ";\t|" if d in header[0])
            raise InputError(f"{self.path} looks {'tab' if sep == chr(9) else repr(sep)}-"
                             f"separated (its header is {header[0]!r}); sfbulk-nb reads "
                             "comma-separated files: save it as CSV with commas, or read it "
                             "with pandas.read_csv(sep=...) and use upsert_df")
        width = len(header)
        while width > 1 and not header[width - 1].strip():
            width -= 1
        self.names = header[:width]
        unnamed = [i + 1 for i, name in enumerate(self.names) if not name.strip()]
        if unnamed:
            raise InputError(f"{where}: column(s) {unnamed} of the header have no name; name "
                             "each column after its Salesforce field, or remove the column")
        seen: dict[str, int] = {}
        for i, name in enumerate(self.names):
            if name in seen:
                raise InputError(f"{where}: the header names {name!r} twice (columns "
                                 f"{seen[name] + 1} and {i + 1}); keep one column per field")
            seen[name] = i
        return width

    def _ragged(self, width: int) -> str:
        def said(line: int, record: list[str]) -> str:
            if len(record) < width:
                return f"line {line} has {len(record)} (no {', '.join(self.names[len(record):])})"
            extra = [v for v in record[width:] if v]
            return f"line {line} has {len(record)} (extra: {', '.join(map(repr, extra[:3]))})"

        shown = "; ".join(said(line, record) for line, record in self.bad)
        more = f"; and {self.bad_count - len(self.bad):,} more" if self.bad_count > len(self.bad) else ""
        return (f"{self.path}: {self.bad_count:,} row(s) do not have the header's {width} fields: "
                f"{shown}{more}. Nothing was sent: fix those lines (a value holding a comma "
                "goes in double quotes), or the header if it lacks a column")

    def frame(self):
        import io

        import pandas as pd

        from .errors import InputError

        # Every cell as text, exactly as in the file; empty cells are nulls (the --nulls
        # policy). The rows after the header are read with the names given: pandas would
        # size its rows by the header's, and fields past it (all empty, checked above) go
        # into placeholder columns, then away.
        body = io.StringIO(self.text, newline="")
        for _ in range(self.header_end):
            body.readline()
        extra = [f"\x00{i}" for i in range(self.fields - len(self.names))]
        try:
            frame = pd.read_csv(body, dtype=str, keep_default_na=False, na_values=[""],
                                header=None, names=self.names + extra, index_col=False)
        except (ValueError, pd.errors.ParserError) as e:
            raise InputError(f"{self.path} cannot be read as CSV: {e}") from None
        if len(frame) != len(self.lines):  # pandas and the csv module disagree on a record
            raise InputError(f"{self.path}: its records could not be told apart the same way "
                             f"twice ({len(frame)} vs {len(self.lines)}); check the quotes")
        return frame.drop(columns=extra)

    def line_of(self):
        """Row position -> the file line its record starts on."""
        return lambda position: self.lines[position]


def _read_bytes(path: str) -> bytes:
    from .errors import InputError

    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path (relative paths start in "
                         f"{Path.cwd()})") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory; give the CSV file in it") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable, or copy it "
                         "somewhere you can read it") from None


# Files bigger than this are streamed (sfbulk_nb.stream) unless an option needs them whole.
STREAM_ABOVE = 64 << 20


def _streams(args: argparse.Namespace) -> bool:
    whole = args.only_changed or args.if_unmodified_since
    if args.stream and whole:
        from .errors import InputError

        raise InputError("--stream reads the file a block at a time; --only-changed and "
                         "--if-unmodified-since need it whole")
    if args.stream:
        return True
    try:
        return not whole and Path(args.file).stat().st_size > STREAM_ABOVE
    except OSError:
        return False  # the reading says what is wrong with the path


def _validate_streamed(args: argparse.Namespace) -> int:
    """--dry-run of a streamed file: every problem of it by line (validate_csv), nothing
    sent."""
    from . import errors, org as orgs, stream

    try:
        target = orgs.connect(args.org) if args.org else orgs.connect()
        problems = stream.validate_csv(args.file, args.object, args.external_id, org=target,
                                       nulls=args.nulls, encoding=args.encoding,
                                       block_size=args.block_size, progress=False)
    except (OSError, ValueError, errors.SFBulkError) as e:
        print(f"sfbulk-nb: {errors.as_options(str(e))}", file=sys.stderr)
        return 2
    print(f"Dry run: nothing was sent ({problems._note}).")
    print(problems.summary_text(rows_word="lines"))
    if len(problems):
        print(stream.fixes_text(args.file, encoding=args.encoding))
    return 0


def _upsert_streamed(args: argparse.Namespace) -> int:
    """The file read and sent a block at a time; results streamed to --results (default
    <name>.results.csv beside it)."""
    from . import errors, org as orgs, stream

    try:
        target = orgs.connect(args.org) if args.org else orgs.connect()
        res = stream.upsert_csv(args.file, args.object, args.external_id, org=target,
                                nulls=args.nulls, on_invalid=args.on_invalid,
                                results=args.results, encoding=args.encoding,
                                block_size=args.block_size, progress="text")
    except errors.ValidationError as e:
        note = errors.as_options(e.note)
        result = getattr(e, "result", None)
        print(f"sfbulk-nb: {result.stop_text() if result else 'nothing was sent'}: {note}.",
              file=sys.stderr)
        print(e.problems.summary_text(rows_word="lines", label="line"), file=sys.stderr)
        print(stream.fixes_text(args.file, encoding=args.encoding), file=sys.stderr)
        return 2
    except (OSError, ValueError, errors.SFBulkError) as e:
        result = getattr(e, "result", None)
        print(f"sfbulk-nb: {e}" + (f"\n{result.stop_text()}" if result else ""),
              file=sys.stderr)
        return 2
    print(repr(res))
    print(f"Results (line, key, sf_id, sf_status, sf_error_*) written to {res.path}")
    return 0 if res.ok else 1


def _upsert(args: argparse.Namespace) -> int:
    from . import api, errors, org as orgs, stream

    try:
        if _streams(args):
            return _validate_streamed(args) if args.dry_run else _upsert_streamed(args)
    except errors.InputError as e:
        print(f"sfbulk-nb: {e}", file=sys.stderr)
        return 2
    try:
        if args.results:
            _check_writable(args.results)  # before sending: a load is not undone
        source = _CsvFile(args.file, args.encoding)
        if source.note:
            print(f"sfbulk-nb: {args.file}: {source.note}", file=sys.stderr)
        df = source.frame()
        target = orgs.connect(args.org) if args.org else orgs.connect()
        options = dict(org=target, nulls=args.nulls, on_invalid=args.on_invalid,
                       only_changed=args.only_changed,
                       if_unmodified_since=args.if_unmodified_since)
        if args.dry_run:
            plan = api.dry_run(df, args.object, "upsert", args.external_id, **options)
            print(repr(plan).split("\n", 1)[0])
            if plan.changes is not None:
                print("\n".join(repr(plan.summary()).splitlines()[1:]))
            if len(plan.problems):
                print(plan.problems.summary_text(line_of=source.line_of()))
            return 0
        res = api.upsert_df(df, args.object, args.external_id, progress="text", **options)
    except errors.ValidationError as e:
        # The command's own spelling of the option the note names.
        note = errors.as_options(e.note)
        print(f"sfbulk-nb: nothing was sent: {note.replace('the frame', 'the file')}.",
              file=sys.stderr)
        print(e.problems.summary_text(line_of=source.line_of()), file=sys.stderr)
        print(stream.fixes_text(args.file, encoding=args.encoding), file=sys.stderr)
        return 2
    except (OSError, ValueError, errors.SFBulkError) as e:
        print(f"sfbulk-nb: {e}", file=sys.stderr)
        return 2
    _print_summary(res)
    if args.results:
        try:
            res.frame.to_csv(args.results, index=False)
        except OSError as e:
            print(f"sfbulk-nb: the load ran (above), but its result could not be written to "
                  f"{args.results}: {e}", file=sys.stderr)
            return 1
        print(f"Aligned result written to {args.results}")
    return 0 if res.ok else 1


def _check_writable(path: str) -> None:
    from .errors import InputError

    where = Path(path)
    if where.is_dir():
        raise InputError(f"--results {path} is a directory; give a file name, e.g. "
                         f"{where / 'results.csv'}")
    if not where.parent.is_dir():
        raise InputError(f"--results {path}: the directory {where.parent} does not exist; "
                         "create it, or write the result elsewhere")


def _port(text: str) -> int:
    # The socket layer takes 70000 as 70000 - 65536: the org would listen elsewhere.
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 1-65535, or 0 for a "
                                         "free one")
    return int(text)


def _pace(text: str) -> float:
    try:
        pace = float(text)
    except ValueError:
        pace = math.nan
    if not (0 < pace < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not a pace: give records per second, "
                                         "more than 0 (leave --pace out for full speed)")
    return pace


def _limit(text: str) -> tuple[str, int]:
    from .localorg.limits import check_limits

    name, _, value = text.partition("=")
    try:
        if not value.strip().isdigit():
            raise ValueError(f"give NAME=N, e.g. DailyApiRequests=200, not {text!r}")
        return next(iter(check_limits({name.strip(): int(value)}).items()))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _org_name(text: str) -> str:
    from .localorg.server import check_name

    try:
        return check_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _which_org(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group()
    where.add_argument("--name", type=_org_name,
                       help="a named local org, as connect('local', name=NAME) uses")
    where.add_argument("--db", help="the org's SQLite file (default: $SFBULK_NB_LOCALORG, "
                       "else localorg.sqlite3 in the user data directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfbulk-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    localorg = commands.add_parser("localorg", help="run or manage the local org")
    sub = localorg.add_subparsers(dest="action", required=True)
    serve = sub.add_parser("serve", help="start the local org and wait for Ctrl-C")
    serve.add_argument("--port", type=_port, default=8642, help="0 picks a free port")
    _which_org(serve)
    serve.add_argument("--pace", type=_pace, default=None,
                       help="records processed per second (default: as fast as possible)")
    serve.add_argument("--limit", type=_limit, action="append", default=[],
                       metavar="NAME=N", help="a daily allowance to rehearse running out of "
                       "(DailyApiRequests, DailyBulkApiBatches, DailyBulkV2QueryJobs); "
                       "repeat for several")
    serve.set_defaults(func=_serve)
    add = sub.add_parser("add-object",
                         help="teach the org an object from a saved describe JSON file")
    add.add_argument("describe", nargs="+", help="file(s) saved from GET .../sobjects/X/describe")
    _which_org(add)
    add.set_defaults(func=_add_object)
    about = ("copy objects' describes (fields, picklists, record types, ...) from an org "
             "into a local org, so loads are rehearsed against the same shape")
    schema = sub.add_parser("import-schema", help=about, description=about)
    schema.add_argument("--org", required=True,
                        help="the org to copy from: an sf CLI alias, or 'local'")
    schema.add_argument("--objects", help="comma-separated API names, e.g. Account,Contact "
                        "(default: the objects the local org ships, and every custom object)")
    _which_org(schema)
    schema.set_defaults(func=_import_schema)
    about = ("empty a local org: its records, jobs and tokens go and it gets new credentials; "
             "objects added with add-object stay (stop a server running on it first)")
    reset = sub.add_parser("reset", help=about, description=about)
    _which_org(reset)
    reset.set_defaults(func=_reset)
    demo = commands.add_parser("demo", help="upsert sample accounts into a fresh local org "
                               f"named {DEMO_ORG!r}")
    demo.add_argument("--rows", type=int, default=3000)
    demo.add_argument("--results", default="sfbulk-demo-results.csv",
                      help="where to write the aligned result CSV")
    demo.set_defaults(func=_demo)
    upsert = commands.add_parser("upsert", help="upsert a CSV file; exits 1 when rows failed")
    upsert.add_argument("file")
    upsert.add_argument("--object", required=True)
    upsert.add_argument("--external-id", required=True)
    upsert.add_argument("--org", help="'local', or an sf CLI alias (default: SF_* environment "
                        "variables, else the local org)")
    upsert.add_argument("--nulls", choices=("keep", "clear"), default="keep",
                        help="empty cells leave fields unchanged (keep) or clear them")
    upsert.add_argument("--results", help="write the aligned result CSV here")
    upsert.add_argument("--on-invalid", choices=("raise", "skip", "send"), default="raise",
                        help="rows with errors found before sending: stop and list them "
                        "(raise, the default), leave them out (skip), or send them anyway")
    upsert.add_argument("--encoding", help="the file's encoding (default: UTF-8, else "
                        "Windows-1252 or Latin-1, said when used)")
    upsert.add_argument("--dry-run", action="store_true",
                        help="check and plan only: print the jobs and problems, send nothing "
                        "(with --only-changed: what would change, field by field; with "
                        "--stream: every problem of the file by line, read a block at a time)")
    upsert.add_argument("--only-changed", action="store_true",
                        help="send only the cells that change their record (the records are "
                        "looked up first); rows that change nothing are not sent")
    upsert.add_argument("--if-unmodified-since", metavar="TIME",
                        help="do not overwrite records modified after TIME (ISO 8601 with its "
                        "zone, e.g. 2026-12-01T09:00:00Z): their rows are held back as conflicts")
    upsert.add_argument("--stream", action="store_true",
                        help="read and send the file a block at a time, never whole (the "
                        f"default for files over {STREAM_ABOVE >> 20} MB); results go to "
                        "--results, default <name>.results.csv beside the file, with each "
                        "row's line; the file must be UTF-8 unless --encoding says otherwise")
    upsert.add_argument("--block-size", type=int, default=1 << 20, metavar="BYTES",
                        help="with --stream: bytes read at a time (default 1 MB)")
    upsert.set_defaults(func=_upsert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
