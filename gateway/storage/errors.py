"""Storage's own exceptions. Storage knows nothing of HTTP or gRPC: `gateway.errors` maps these to API errors.

`param` names the request field at fault where there is one, for the API error that carries it on.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base: storage cannot do what was asked; the message says why and what to change.

    Raised as is, it means the data directory cannot be used now (another gateway holds it).
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class CollectionNotFound(StorageError):
    """No collection by that id or name, or it was deleted meanwhile."""


class DocumentNotFound(StorageError):
    """No document with that id in the collection."""


class CollectionExists(StorageError):
    """A collection with that name already exists."""


class InvalidFilter(StorageError):
    """A metadata filter that does not compile; the message names the filter path at fault."""


class DimensionMismatch(StorageError):
    """A vector's length differs from the collection's dimension (or the model's)."""


class InvalidVector(StorageError):
    """A vector the collection's metric cannot use: zero or non-finite for cosine."""


class KeywordSyntaxError(StorageError):
    """A keyword query in FTS5 syntax (`keyword_syntax: fts5`) that FTS5 cannot parse; the message quotes SQLite's."""


class DataDirUnusable(StorageError):
    """The data directory, or a file in it, cannot be used at start-up: unwritable, uncreatable or corrupt.

    The message names the path and what to change; the gateway exits with status 2.
    """


class StorageFull(StorageError):
    """A write the disk has no room for: nothing of it was stored. The message names the data dir and its free space."""


class FulltextPending(StorageError):
    """A keyword or hybrid search of a collection whose full-text index waits for disk space to be built."""


class ModelChanged(StorageError):
    """A re-embedding swapped the collection's model while this request was embedded for the old one: retry."""


class JobConflict(StorageError):
    """The collection is already being re-embedded, or the job asked to cancel has ended."""


class JobNotFound(StorageError):
    """No job with that id in the collection."""


class LeaseLost(StorageError):
    """This gateway no longer holds a re-embedding job's lease: another took it over, or it was cancelled or ended."""


class VectorOnlyDocuments(StorageError):
    """Documents stored with a vector and no text cannot be re-embedded; the message says how many."""


class SnapshotNotFound(StorageError):
    """No collection snapshot by that name for the collection."""


class SnapshotInvalid(StorageError):
    """An uploaded collection snapshot that is truncated, altered or not one: the message says which."""


class UnstorableValue(StorageError):
    """A value the storage engine cannot hold (PostgreSQL: a NUL character in a text); the message says which."""


class EngineUnsupported(StorageError):
    """This storage engine cannot do what was asked (yet); the message names the engine and the feature."""


class EngineUnavailable(StorageError):
    """The storage engine's database cannot be reached or gave up on the statement: retry later."""
