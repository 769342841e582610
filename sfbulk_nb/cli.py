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
    errs = res.errors
    if len(errs):
        print("errors by code and field:")
        for row in errs.itertuples():
            fields = f" [{row.fields}]" if isinstance(row.fields, str) and row.fields else ""
            message = row.message if len(row.message) <= 100 else row.message[:97] + "..."
            print(f"  {row.rows:>7,}  {row.code}{fields}: {message}")


def _demo(args: argparse.Namespace) -> int:
    from . import api, org as orgs
    from .sample import sample_accounts

    df = sample_accounts(args.rows)
    target = orgs.connect("local")
    print(f"Upserting {len(df):,} sample accounts (with a few deliberate errors) into the "
          f"local org at {target.instance_url}")
    res = api.upsert_df(df, "Account", "customExtIdField__c", org=target, progress="text")
    _print_summary(res)
    res.frame.to_csv(args.results, index=False)
    print(f"Aligned result (your rows plus sf_id, sf_status, sf_error_*) written to {args.results}")
    return 0 if res.done and not res.exceptions else 1


def _upsert(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import api, errors, org as orgs

    try:
        # Every cell as text, exactly as in the file; empty cells are nulls (the --nulls policy).
        df = pd.read_csv(args.file, dtype=str, keep_default_na=False, na_values=[""])
        target = orgs.connect(args.org) if args.org else orgs.connect()
        res = api.upsert_df(df, args.object, args.external_id, org=target, nulls=args.nulls,
                            progress="text")
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
    upsert.set_defaults(func=_upsert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
