"""GET /health, /ready and /models."""

from __future__ import annotations

import msgspec


class Health(msgspec.Struct):
    status: str
    workers: int


class Ready(msgspec.Struct):
    status: str
    model: str
    workers: int


class ModelRow(msgspec.Struct):
    name: str
    dimension: int
    max_tokens: int
    pooling: str
    aliases: list[str]
    backend: str
    device: str
    precision: str
    workers: int
    default: bool


class ModelList(msgspec.Struct):
    models: list[ModelRow]
