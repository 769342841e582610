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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
