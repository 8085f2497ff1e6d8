"""`akidb-gateway`: serve the HTTP (and gRPC) APIs and dispatch embeddings to workers."""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from gateway.app import create_app
from gateway.storage.errors import StorageError
from shared.config import ConfigError, load_config
from shared.curve import CurveKeyError
from shared.logs import configure_logging


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="akidb-gateway",
        description="AkiDB gateway: HTTP/gRPC APIs, batching, workers over ZeroMQ, vector storage.",
        epilog="Every config key can also be set as AKIDB_<SECTION>__<KEY> or with --set section.key=value.",
    )
    p.add_argument("--config", metavar="FILE", help="YAML config file (see README: Configuration)")
    p.add_argument("--host", help="HTTP listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080)")
    p.add_argument("--bind", metavar="ENDPOINT", help="ZeroMQ endpoint workers connect to (default tcp://0.0.0.0:5555)")
    p.add_argument("--data-dir", metavar="DIR", help="where collections are stored (default ./data)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    flags = {
        "server.host": args.host,
        "server.port": args.port,
        "zmq.bind": args.bind,
        "storage.data_dir": args.data_dir,
    }
    overrides = [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.set)
    try:
        cfg = load_config(args.config, os.environ, overrides)
    except ConfigError as exc:
        print(f"akidb-gateway: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.logging.level, cfg.logging.format, process="gateway")
    try:
        web.run_app(create_app(cfg), host=cfg.server.host, port=cfg.server.port, access_log=None, print=None)
    except (StorageError, CurveKeyError) as exc:
        print(f"akidb-gateway: {exc}", file=sys.stderr)
        return 1
    return 0
