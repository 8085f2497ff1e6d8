"""Collection snapshots (backups) and restores, above the storage engine's `Backups` and the collection service.

A snapshot is written on a thread while the collection keeps serving. A restore receives the upload into a
temporary file under the data directory (never whole in memory), then verifies and unpacks it into a new
collection through the collection service, which creates it atomically or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.errors import PayloadTooLarge
from gateway.services.collections import CollectionService
from gateway.storage.backup import BackupInfo, Backups, unpack
from gateway.storage.datadir import refused_when_full
from gateway.storage.engine import CollectionStore
from shared.config import Config


class SnapshotService:
    """Create, list, find and delete a collection's snapshots; restore one as a new collection."""

    def __init__(self, cfg: Config, collections: CollectionService) -> None:
        self.collections = collections
        self.backups = Backups(
            collections.catalogue.data_root, cfg.storage.snapshot_rate_mb_s, cfg.storage.snapshot_hmac_key
        )
        self.max_restore_bytes = cfg.storage.max_restore_bytes

    async def start(self) -> None:
        """Remove what a crash left of snapshots being written or uploads being received."""
        await asyncio.to_thread(self.backups.sweep)

    async def create(self, ref: str) -> BackupInfo:
        """Snapshot a collection now; the collection keeps serving reads and writes meanwhile."""
        store = self.collections.get(ref)
        # Shielded: a client that leaves does not leave a half-made snapshot (the thread finishes or cleans up).
        return await asyncio.shield(store.export_snapshot(self.backups))

    def list(self, ref: str) -> list[BackupInfo]:
        """The collection's stored snapshots, oldest first."""
        return self.backups.list(self.collections.get(ref).info.name)

    def path(self, ref: str, name: str) -> Path:
        """The file of one stored snapshot (`SnapshotNotFound` otherwise)."""
        return self.backups.path(self.collections.get(ref).info.name, name)

    async def delete(self, ref: str, name: str) -> None:
        collection = self.collections.get(ref).info.name
        await asyncio.to_thread(self.backups.delete, collection, name)

    async def restore(self, name: str, chunks: AsyncIterator[bytes]) -> CollectionStore:
        """Receive an upload to a temporary file, then create collection `name` from it if every check holds
        (`gateway.storage.snapshot_trust`: the upload is treated as hostile)."""
        self.collections.catalogue.check_restorable()  # before a long upload: 501 if the engine cannot
        self.collections.check_name_free(name)  # before a long upload, and again when creating
        with self.backups.upload_file() as path:
            await self._receive(chunks, path)
            return await self.collections.restore(name, lambda staging: self._unpack(path, staging))

    def _unpack(self, path: Path, staging: Path) -> str:
        # The staged bytes are bounded too: a member may claim more than the upload held.
        return unpack(path, staging, self.max_restore_bytes, self.backups.hmac_key).info_json

    async def _receive(self, chunks: AsyncIterator[bytes], path: Path) -> None:
        received = 0
        with refused_when_full(self.backups.root):  # a full disk mid-upload is 507, and the file goes
            out = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > self.max_restore_bytes:
                        raise PayloadTooLarge(
                            f"snapshot upload is over {self.max_restore_bytes} bytes (storage.max_restore_bytes)"
                        )
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
