"""Keeps one gateway's view of the catalogue in step with the other gateways on the database.

Every catalogue change commits with a generation bump and a NOTIFY on `akidb_catalogue`
(`schema.bump_generation`). The watcher LISTENs on its own connection and, on a notification or after
`interval_s` without one, compares the generation with the one it last saw and reloads the view if it
moved: a notification lost with a dropped connection is caught by the next check, so a create, delete or
change by another gateway is seen here within about `interval_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog
from psycopg import sql

from gateway.storage.errors import StorageError
from gateway.storage.postgres.dsn import redacted
from gateway.storage.postgres.schema import CHANNEL

log = structlog.get_logger("gateway.storage")


class CatalogueWatcher:
    """Reload the view whenever the catalogue's generation moves (`run` is one long-lived task)."""

    def __init__(
        self,
        dsn: str,
        generation: Callable[[], Awaitable[int]],
        reload: Callable[[], Awaitable[None]],
        interval_s: float = 0.5,
    ) -> None:
        self.dsn = dsn
        self.generation = generation
        self.reload = reload
        self.interval_s = interval_s
        self.seen = 0

    async def check(self) -> None:
        """Reload if another gateway (or this one) changed the catalogue since the last check."""
        current = await self.generation()
        if current != self.seen:
            await self.reload()
            self.seen = current

    async def run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, StorageError, OSError) as exc:
                # The database went away: the view stays as it was, and requests meet the error themselves.
                log.warning("catalogue_watch_lost", error=redacted(str(exc), self.dsn), retry_in_s=self.interval_s)
                await asyncio.sleep(self.interval_s)

    async def _listen(self) -> None:
        conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        async with conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            while True:
                await self.check()  # first: whatever changed before LISTEN took effect
                async for _ in conn.notifies(timeout=self.interval_s, stop_after=1):
                    pass
