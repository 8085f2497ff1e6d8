"""Collection snapshots (backups): what the API shows of one, the list, and the restore query."""

from __future__ import annotations

import msgspec

from gateway.api.schemas.collections import Name


class SnapshotInfo(msgspec.Struct):
    """One stored collection snapshot; `name` is what GET/DELETE .../snapshots/{name} take."""

    name: str
    collection: str
    size: int
    created_at: float
    documents: int


class SnapshotList(msgspec.Struct):
    snapshots: list[SnapshotInfo]


class SnapshotDeleted(msgspec.Struct):
    name: str
    deleted: bool


class RestoreQuery(msgspec.Struct):
    """POST /collections/restore query parameters: the new collection's name (it must not exist)."""

    name: Name
