"""/collections bodies: create (into `CollectionSpec`), and the collection as the API shows it (the one
declaration: the handlers encode these Structs, openapi.py publishes them)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from gateway.api.schemas.common import MAX_DIMENSION, Pooling, choices
from gateway.services.collection_inputs import CollectionSpec
from gateway.storage import engine

Name = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(?!col_)(?!restore$)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        extra={
            "rule": "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit and not with 'col_' "
            "(ids do), and not 'restore' (/collections/restore restores a snapshot)"
        },
    ),
]
Metric = Annotated[Literal["cosine", "l2", "ip"], choices("cosine", "l2", "ip")]


class IndexBody(msgspec.Struct, forbid_unknown_fields=True):
    """HNSW parameters; each absent or null takes the storage.* default."""

    connectivity: Annotated[int, msgspec.Meta(ge=2, le=128)] | None = None
    expansion_add: Annotated[int, msgspec.Meta(ge=1, le=4096)] | None = None
    expansion_search: Annotated[int, msgspec.Meta(ge=1, le=4096)] | None = None


class CollectionBody(msgspec.Struct, forbid_unknown_fields=True):
    """POST /collections. The dimension comes from the model unless given (and then must agree)."""

    name: Name
    dimension: Annotated[int, msgspec.Meta(ge=1, le=MAX_DIMENSION)] | None = None
    metric: Metric | None = None
    model: str | None = None
    pooling: Pooling | None = None
    normalize: bool | None = None
    index: IndexBody | None = None

    def to_spec(self) -> CollectionSpec:
        """The collection service's input."""
        index = self.index or IndexBody()
        return CollectionSpec(
            name=self.name,
            dimension=self.dimension,
            metric=self.metric or "cosine",
            model=self.model,
            pooling=self.pooling,
            normalize=self.normalize,
            connectivity=index.connectivity,
            expansion_add=index.expansion_add,
            expansion_search=index.expansion_search,
        )


class IndexInfo(msgspec.Struct):
    connectivity: int
    expansion_add: int
    expansion_search: int
    dtype: str


class CollectionInfo(msgspec.Struct):
    id: str
    name: str
    dimension: int
    metric: str
    model: str
    pooling: str | None
    normalize: bool
    index: IndexInfo
    document_count: int
    created_at: float

    @classmethod
    def of(cls, info: engine.CollectionInfo, document_count: int) -> CollectionInfo:
        """A collection as the API shows it: what it is (fixed at creation) and how many documents it holds."""
        index = info.index
        return cls(
            id=info.id,
            name=info.name,
            dimension=info.dimension,
            metric=info.metric,
            model=info.model,
            pooling=info.pooling,
            normalize=info.normalize,
            index=IndexInfo(index.connectivity, index.expansion_add, index.expansion_search, index.dtype),
            document_count=document_count,
            created_at=info.created_at,
        )


class CollectionList(msgspec.Struct):
    collections: list[CollectionInfo]


class Deleted(msgspec.Struct):
    id: str
    deleted: bool
