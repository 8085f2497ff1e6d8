"""GET /health, /ready and /models."""

from __future__ import annotations

import msgspec


class Health(msgspec.Struct):
    status: str
    workers: int


class StorageState(msgspec.Struct):
    writable: bool  # false from a write the disk refused until one succeeds
    deferred: list[str]  # start-up writes waiting for disk space (run, with no restart, once it returns)


class Ready(msgspec.Struct):
    status: str
    model: str
    workers: int
    storage: StorageState


class WorkerDetail(msgspec.Struct):
    """One live worker behind a model, with its own facts (never another worker's)."""

    worker_id: str
    host: str
    pid: int
    backend: str
    device: str
    precision: str


class ModelRow(msgspec.Struct):
    name: str
    dimension: int
    max_tokens: int
    kind: str  # "embed" (texts → vectors) or "rerank" (a cross-encoder scoring (query, document) pairs)
    pooling: str
    aliases: list[str]
    backend: str
    device: str
    precision: str
    workers: int
    default: bool  # the default of its kind: embedding.model_name, or rerank.default_model
    query_prompt: str  # before texts of `input_type: query` requests and text searches
    document_prompt: str  # before texts of `input_type: document` requests and inserted documents
    workers_detail: list[WorkerDetail]


class ModelList(msgspec.Struct):
    models: list[ModelRow]


class WorkerRow(msgspec.Struct):
    """One live worker process, as it announced itself."""

    worker_id: str
    host: str
    pid: int
    models: list[str]
    backend: str
    device: str
    precision: str
    capacity: int
    inflight: int


class WorkerList(msgspec.Struct):
    workers: list[WorkerRow]
    queue_depth: int
