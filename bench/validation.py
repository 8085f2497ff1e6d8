"""Decode + validate two request bodies three ways, same run (issue 9: choose the request-model library).

    .venv/bin/python -m bench.validation            # 7 rounds, median µs per body
    .venv/bin/python -m bench.validation --rounds 3

(a) POST .../documents: 1,000 documents with 384-d vectors, through to float32 numpy rows;
(b) POST /embed: 32 texts, through to the service's input.

- today: orjson + the hand-written checks the gateway had (bench/validation_baseline.py);
- msgspec: the gateway's own path now (gateway/schemas: one typed decode, vectors to numpy in one call);
- pydantic: v2 models of the same shape (strict, extra=forbid), `model_validate_json`, numpy in one call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
import orjson

from bench import validation_baseline as today
from bench.backends import machine
from gateway.api.routes.documents import parse_insert
from gateway.api.schemas.common import decode
from gateway.api.schemas.embed import EmbedBody


def bodies() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(0)
    docs = [
        {"id": f"doc-{i}", "vector": rng.standard_normal(384).astype(np.float32).tolist(), "metadata": {"i": i}}
        for i in range(1000)
    ]
    texts = [f"text number {i}: a short sentence of the kind people search for" for i in range(32)]
    return orjson.dumps({"documents": docs}), orjson.dumps({"texts": texts, "model": "all-MiniLM-L6-v2"})


def pydantic_parsers() -> tuple[Callable[[bytes], Any], Callable[[bytes], Any]] | None:
    """Equivalent pydantic v2 models (None if pydantic is not installed)."""
    try:
        from pydantic import BaseModel, ConfigDict, Field
    except ImportError:
        return None
    strict = ConfigDict(strict=True, extra="forbid")

    class Doc(BaseModel):
        model_config = strict
        id: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^/\x00-\x1f\x7f]*$")] | None = None
        text: Annotated[str, Field(min_length=1)] | None = None
        vector: Annotated[list[float], Field(min_length=1, max_length=1 << 16)] | None = None
        metadata: dict[str, Any] | None = None

    class Batch(BaseModel):
        model_config = strict
        documents: Annotated[list[Doc], Field(min_length=1)]

    class Embed(BaseModel):
        model_config = strict
        texts: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
        model: str | None = None
        pooling: Literal["mean", "cls", "last"] | None = None
        normalize: bool | None = None
        truncate: bool | None = None

    def insert(raw: bytes) -> Any:
        docs = Batch.model_validate_json(raw).documents
        matrix = np.array([d.vector for d in docs], dtype=np.float32)
        if not np.isfinite(matrix).all():
            raise ValueError("non-finite")
        return docs, list(matrix)

    def embed(raw: bytes) -> Any:
        body = Embed.model_validate_json(raw)
        return tuple(body.texts), body.model, body.pooling, body.normalize, body.truncate

    return insert, embed


def median_us(fn: Callable[[bytes], Any], raw: bytes, rounds: int, per_round: int) -> float:
    fn(raw)  # first-call costs (decoders, caches) are not what a running gateway pays
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            fn(raw)
        samples.append((time.perf_counter() - start) / per_round * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    insert_raw, embed_raw = bodies()
    ways: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {
        "today (orjson + checks)": (
            lambda raw: today.parse_documents(orjson.loads(raw), 1000),
            lambda raw: today.parse_embed(orjson.loads(raw), 2048),
        ),
        "msgspec (gateway/schemas)": (
            lambda raw: parse_insert(raw, 1000),
            lambda raw: decode(raw, EmbedBody).to_request(2048),
        ),
    }
    if (pyd := pydantic_parsers()) is not None:
        ways["pydantic v2"] = pyd
    print(f"machine: {machine()}")
    print(f"bodies: (a) {len(insert_raw):,} bytes, (b) {len(embed_raw):,} bytes; median of {args.rounds} rounds\n")
    print("| way | (a) 1,000 docs × 384-d, µs | vs today | (b) /embed 32 texts, µs | vs today |")
    print("|---|---|---|---|---|")
    base: tuple[float, float] | None = None
    for name, (insert, embed) in ways.items():
        a = median_us(insert, insert_raw, args.rounds, 5)
        b = median_us(embed, embed_raw, args.rounds, 2000)
        base = base or (a, b)
        print(f"| {name} | {a:,.0f} | {a / base[0]:.2f}× | {b:,.2f} | {b / base[1]:.2f}× |")


if __name__ == "__main__":
    main()
