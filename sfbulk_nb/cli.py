"""The `sfbulk-nb` command."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from .localorg import LocalOrg, default_path

    org = LocalOrg(path=args.db or default_path(), port=args.port, pace=args.pace).start()
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
    from .localorg import LocalOrg, default_path
    from .localorg.catalog import SchemaError

    org = LocalOrg(path=args.db or default_path())
    try:
        for path in args.describe:
            obj = org.add_object(Path(path))
            print(f"Added {obj.name} (key prefix {obj.key_prefix}, {len(obj.fields)} fields) "
                  f"to {org.path}")
    except (OSError, ValueError, SchemaError) as e:
        print(f"sfbulk-nb: cannot add object: {e}", file=sys.stderr)
        return 2
    finally:
        org.stop()
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


def _demo(args: argparse.Namespace) -> int:
    from . import api, org as orgs
    from .sample import sample_accounts

    df = sample_accounts(args.rows)
    target = orgs.connect("local")
    print(f"Checking {len(df):,} sample accounts (with a few deliberate errors) before "
          f"sending them to the local org at {target.instance_url}")
    problems = api.validate_df(df, "Account", "customExtIdField__c", org=target)
    print(problems.summary_text())
    print("Upserting them; rows with errors are left out (on_invalid='skip') and marked "
          "invalid; warnings go to the org, which judges them")
    res = api.upsert_df(df, "Account", "customExtIdField__c", org=target, progress="text",
                        on_invalid="skip")
    _print_summary(res)
    res.frame.to_csv(args.results, index=False)
    print(f"Aligned result (your rows plus sf_id, sf_status, sf_error_*) written to {args.results}")
    return 0 if res.done and not res.exceptions else 1


class _CsvFile:
    """A CSV file as text: its encoding worked out, and where each record starts."""

    def __init__(self, path: str, encoding: str | None):
        from .errors import InputError

        raw = Path(path).read_bytes()
        self.path = path
        self.note = None
        if raw[:4] == b"PK\x03\x04":
            raise InputError(f"{path} is a zip file (an Excel .xlsx workbook?): save it as CSV "
                             "(UTF-8), or read it with pandas.read_excel and use upsert_df")
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff") and encoding is None:
            encoding, self.note = "utf-16", "read as UTF-16 (its byte order mark says so)"
        if encoding is not None:
            try:
                self.text = raw.decode(encoding)
            except (UnicodeDecodeError, LookupError) as e:
                raise InputError(f"{path} cannot be read as {encoding}: {e}") from None
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
        if "\x00" in self.text[:65536]:
            raise InputError(f"{path} holds NUL bytes: it looks like a binary file, not CSV "
                             "(or UTF-16 without a byte order mark: pass --encoding utf-16)")

    def frame(self):
        import io

        import pandas as pd

        # Every cell as text, exactly as in the file; empty cells are nulls (the --nulls
        # policy). index_col=False: rows ending in a delimiter must not shift the columns.
        return pd.read_csv(io.StringIO(self.text), dtype=str, keep_default_na=False,
                           na_values=[""], index_col=False)

    def line_of(self):
        """Row position -> the file line its record starts on (records may span lines)."""
        import csv
        import io

        starts = []
        reader = csv.reader(io.StringIO(self.text))
        before = 0
        for record in reader:
            if record:  # pandas skips blank lines too
                starts.append(before + 1)
            before = reader.line_num
        return lambda position: starts[position + 1] if position + 1 < len(starts) else position + 2


def _upsert(args: argparse.Namespace) -> int:
    from . import api, errors, org as orgs

    try:
        source = _CsvFile(args.file, args.encoding)
        if source.note:
            print(f"sfbulk-nb: {args.file}: {source.note}", file=sys.stderr)
        df = source.frame()
        target = orgs.connect(args.org) if args.org else orgs.connect()
        options = dict(org=target, nulls=args.nulls, on_invalid=args.on_invalid)
        if args.dry_run:
            plan = api.dry_run(df, args.object, "upsert", args.external_id, **options)
            print(repr(plan).split("\n", 1)[0])
            if len(plan.problems):
                print(plan.problems.summary_text(line_of=source.line_of()))
            return 0
        res = api.upsert_df(df, args.object, args.external_id, progress="text", **options)
    except errors.ValidationError as e:
        print(f"sfbulk-nb: nothing was sent: {e.note}.", file=sys.stderr)
        print(e.problems.summary_text(line_of=source.line_of()), file=sys.stderr)
        return 2
    except (OSError, ValueError, errors.SFBulkError) as e:
        print(f"sfbulk-nb: {e}", file=sys.stderr)
        return 2
    _print_summary(res)
    if args.results:
        res.frame.to_csv(args.results, index=False)
        print(f"Aligned result written to {args.results}")
    return 0 if res.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfbulk-nb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    localorg = commands.add_parser("localorg", help="run or manage the local org")
    sub = localorg.add_subparsers(dest="action", required=True)
    serve = sub.add_parser("serve", help="start the local org and wait for Ctrl-C")
    serve.add_argument("--port", type=int, default=8642)
    serve.add_argument("--db", help="SQLite file (default: the user data directory)")
    serve.add_argument("--pace", type=float, default=None,
                       help="records processed per second (default: as fast as possible)")
    serve.set_defaults(func=_serve)
    add = sub.add_parser("add-object",
                         help="teach the org an object from a saved describe JSON file")
    add.add_argument("describe", nargs="+", help="file(s) saved from GET .../sobjects/X/describe")
    add.add_argument("--db", help="SQLite file (default: the user data directory)")
    add.set_defaults(func=_add_object)
    demo = commands.add_parser("demo", help="upsert sample accounts into the local org")
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
                        help="check and plan only: print the jobs and problems, send nothing")
    upsert.set_defaults(func=_upsert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
