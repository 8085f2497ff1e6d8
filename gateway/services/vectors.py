"""Vectors for a collection, shared by the document and query services: embedded with its model, checked
against its dimension, scaled to unit length where its metric is cosine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from gateway.services.embedding import EmbeddingService, EmbedRequest
from gateway.storage.engine import CollectionInfo, CollectionStore
from gateway.storage.errors import DimensionMismatch, InvalidVector, ModelChanged


async def embed(
    embedding: EmbeddingService, info: CollectionInfo, texts: tuple[str, ...], input_type: str
) -> np.ndarray:
    """Documents embed with the model's document prompt, search texts with its query prompt."""
    req = EmbedRequest(texts, model=info.model, pooling=info.pooling, normalize=info.normalize, input_type=input_type)
    out = await embedding.embed(req, transport="collections")
    return out.vectors


T = TypeVar("T")
# A swap is one re-embedding job's last step; two in a row on one collection within one request is
# what the last try is for, and beyond that the client hears it.
SWAP_RETRIES = 2


async def again_after_swap(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt`, and again when a re-embedding swapped the collection's model in its middle.

    `ModelChanged` means nothing was stored or answered, so the request is simply made again under the
    collection's new description (its texts embedded with the new model). Refusing it with a 503 made a
    client retry what the gateway can: the hour-long soak saw 7 inserts refused at one swap.
    """
    for _ in range(SWAP_RETRIES):
        try:
            return await attempt()
        except ModelChanged:
            continue
    return await attempt()


def check_model(col: CollectionStore, info: CollectionInfo) -> None:
    """`ModelChanged` if a re-embedding swapped the collection's model while texts were embedded."""
    if col.info is not info:
        raise ModelChanged(f"collection {col.info.name!r} switched to model {col.info.model!r}; retry")


def prepare(info: CollectionInfo, rows: list[np.ndarray], what: str = "vector") -> np.ndarray:
    """Check each vector's length; for cosine, scale them to unit length (a zero vector has no direction)."""
    expected = info.dimension
    for vector in rows:
        if vector.shape != (expected,):
            if what == "embedding":
                raise DimensionMismatch(
                    f"model {info.model!r} made a {vector.shape[-1]}-dimensional vector but collection "
                    f"{info.name!r} holds {expected}; create the collection without a dimension",
                )
            raise DimensionMismatch(f"Vector dimension mismatch: got {vector.shape[-1]}, expected {expected}")
    matrix = np.stack(rows).astype(np.float32, copy=False)
    if info.metric != "cosine":
        return matrix
    norms = np.linalg.norm(matrix, axis=1)
    bad = ~(np.isfinite(norms) & (norms > 0))
    if bad.any():
        norm = float(norms[int(np.argmax(bad))])
        raise InvalidVector(f"{what} has length {norm}; a cosine collection needs a non-zero finite vector")
    return (matrix / norms[:, None]).astype(np.float32)
