"""`akidb-gateway`: serve the HTTP (and gRPC) APIs and dispatch embeddings to workers."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import structlog
from aiohttp import web

from gateway.app import create_app
from gateway.storage.errors import StorageError
from gateway.tls import ssl_context
from shared.config import ConfigError, load_config
from shared.logs import configure_logging

log = structlog.get_logger("gateway.main")


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


def event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """The gateway's loop: uvloop's (libuv) when asked for and installed, else asyncio's own."""
    name = "asyncio"
    loop: asyncio.AbstractEventLoop | None = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # not a dependency on Windows: fall back, and say so
            name = "asyncio (uvloop is not installed)"
        else:
            loop, name = uvloop.new_event_loop(), "uvloop"
    log.info("event_loop", loop=name)
    return loop or asyncio.new_event_loop()


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
        tls = ssl_context(cfg.server)
    except ConfigError as exc:
        print(f"akidb-gateway: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.logging.level, cfg.logging.format, process="gateway")
    try:
        web.run_app(
            create_app(cfg),
            host=cfg.server.host,
            port=cfg.server.port,
            access_log=None,
            print=None,
            ssl_context=tls,
            loop=event_loop(cfg.server.uvloop),
        )
    except StorageError as exc:
        print(f"akidb-gateway: {exc}", file=sys.stderr)
        return 1
    return 0
