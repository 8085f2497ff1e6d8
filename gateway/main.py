"""`akidb-gateway`: serve the HTTP (and gRPC) APIs and dispatch embeddings to workers."""

from __future__ import annotations

import asyncio
import os
import sys

import structlog
from aiohttp import web

from gateway.api.tls import ssl_context
from gateway.app import create_app
from gateway.storage.errors import DataDirUnusable, StorageError
from shared.cli import CommandLine
from shared.config import ConfigError
from shared.curve import CurveKeyError
from shared.logs import configure_logging
from shared.redact import redact

log = structlog.get_logger("gateway.main")


def command_line() -> CommandLine:
    """`akidb-gateway`'s arguments: --config, --set, and shortcuts for the listen addresses and data."""
    cli = CommandLine("akidb-gateway", "AkiDB gateway: HTTP/gRPC APIs, batching, workers over ZeroMQ, vector storage.")
    cli.shortcut("--host", "server.host", help="HTTP listen address (default 0.0.0.0)")
    cli.shortcut("--port", "server.port", type=int, help="HTTP port (default 8080)")
    cli.shortcut(
        "--bind", "zmq.bind", metavar="ENDPOINT", help="ZeroMQ endpoint workers connect to (default tcp://0.0.0.0:5555)"
    )
    cli.shortcut("--data-dir", "storage.data_dir", metavar="DIR", help="where collections are stored (default ./data)")
    return cli


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
    cfg = command_line().config(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        tls = ssl_context(cfg.server)
    except ConfigError as exc:
        print(f"akidb-gateway: config error: {redact(str(exc))}", file=sys.stderr)
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
            # aiohttp closes a connection with no complete request head this long after it opened (or after
            # its last response): the bound on slow headers. Bodies are bounded in gateway/api/slow_clients.py.
            keepalive_timeout=cfg.server.header_timeout_s,
            # A client that disconnects cancels its handler, so its queued texts are skipped (and counted)
            # instead of embedded for nobody. Writes are safe: a commit under way finishes on its thread.
            handler_cancellation=True,
            loop=event_loop(cfg.server.uvloop),
        )
    except (StorageError, CurveKeyError) as exc:
        print(f"akidb-gateway: {redact(str(exc))}", file=sys.stderr)
        # 2: the data directory needs an operator (like a config error); 1: another gateway holds it.
        return 2 if isinstance(exc, DataDirUnusable) else 1
    return 0
