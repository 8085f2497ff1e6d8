"""The query path with a real worker: the embedding cache across front doors, batch search, and the gateway
as a real process on uvloop (and off it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest

from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.backends import ONE_BACKEND
from tests.support.gateway import Gateway
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

# Not about the embedding backend: run once, on the fastest installed one.
pytestmark = ONE_BACKEND
MODEL = "all-MiniLM-L6-v2"
JOBS = ("akidb_embedding_batch_size_count", {"model": MODEL})


async def post(gw: Gateway, path: str, body: Any, status: int = 200) -> Any:
    resp = await gw.client.post(path, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


def as_f32(rows: Any) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


async def test_a_repeated_text_is_served_from_the_cache_bitwise_without_a_job(gateway: Gateway) -> None:
    texts = ["the cache keeps what the worker made", "a second sentence"]
    first = await post(gateway, "/embed", {"texts": texts})
    jobs = await gateway.metric(*JOBS[:1], **JOBS[1])
    again = await post(gateway, "/embed", {"texts": texts})
    assert await gateway.metric(*JOBS[:1], **JOBS[1]) == jobs  # no job went to the worker
    assert as_f32(again["embeddings"]).tobytes() == as_f32(first["embeddings"]).tobytes()
    assert again["usage"]["total_tokens"] == first["usage"]["total_tokens"]
    assert await gateway.metric("akidb_embedding_cache_hits_total") == 2
    # The other front doors share it: OpenAI's route and a collection's text search send nothing either.
    oai = await post(gateway, "/v1/embeddings", {"input": texts[0], "model": MODEL})
    assert as_f32(oai["data"][0]["embedding"]).tobytes() == as_f32(first["embeddings"][0]).tobytes()
    assert oai["usage"]["prompt_tokens"] == first["usage"]["total_tokens"] - (await _tokens(gateway, texts[1]))
    await post(gateway, "/collections", {"name": "c"}, 201)
    await post(gateway, "/collections/c/documents", {"id": "d", "text": texts[1]}, 201)
    hits = await post(gateway, "/collections/c/search", {"query": texts[0], "k": 1})
    assert hits["results"][0]["id"] == "d" and await gateway.metric(*JOBS[:1], **JOBS[1]) == jobs


async def _tokens(gw: Gateway, text: str) -> int:
    return int((await post(gw, "/embed", {"texts": [text]}))["usage"]["total_tokens"])


async def test_a_batch_search_embeds_its_texts_in_one_job(gateway: Gateway) -> None:
    await post(gateway, "/collections", {"name": "b"}, 201)
    texts = ["cats purr", "dogs bark", "stocks fell sharply", "rain tomorrow"]
    await post(gateway, "/collections/b/documents", {"documents": [{"id": f"d{i}", "text": t} for i, t in
                                                                   enumerate(texts)]}, 201)  # fmt: skip
    jobs = await gateway.metric(*JOBS[:1], **JOBS[1])
    queries = [{"query": "a purring cat", "k": 1}, {"query": "barking dog", "k": 1}, {"query": "stock market", "k": 1}]
    out = await post(gateway, "/collections/b/search", {"queries": queries})
    assert [r[0]["id"] for r in out["results"]] == ["d0", "d1", "d2"]
    assert await gateway.metric(*JOBS[:1], **JOBS[1]) == jobs + 1


# -- the real process, on uvloop and off it ---------------------------------------------------


@contextlib.asynccontextmanager
async def gateway_process(zmq_endpoint: str, data_dir: Path, *sets: str) -> AsyncIterator[tuple[str, int, Any]]:
    grpc_port = free_port()
    on = ("server.grpc_enabled=true", f"server.grpc_port={grpc_port}", "heartbeat.liveness=25", *sets)
    proc = GatewayProcess(zmq_endpoint, str(data_dir), *[a for s in on for a in ("--set", s)])
    try:
        async with aiohttp.ClientSession() as session:
            end = asyncio.get_running_loop().time() + 90
            while True:
                assert proc.proc.poll() is None, proc.output()[-3000:]
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(proc.url + "/ready") as resp:
                        if resp.status == 200:
                            break
                assert asyncio.get_running_loop().time() < end, proc.output()[-3000:]
                await asyncio.sleep(0.1)
            yield proc.url, grpc_port, proc
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


async def _exercise(url: str, grpc_port: int) -> None:
    """HTTP embed, a collection with a batch search, and a gRPC embed: the ZeroMQ reader, storage threads
    and grpc.aio all on this loop."""
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/embed", json={"texts": ["hello loop"]}) as resp:
            assert resp.status == 200 and len((await resp.json())["embeddings"][0]) == 384
        async with s.post(url + "/collections", json={"name": "loop"}) as resp:
            assert resp.status == 201
        docs = {"documents": [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}]}
        async with s.post(url + "/collections/loop/documents", json=docs) as resp:
            assert resp.status == 201
        body = {"queries": [{"query": "alpha", "k": 1}, {"query": "beta", "k": 1}]}
        async with s.post(url + "/collections/loop/search", json=body) as resp:
            assert [r[0]["id"] for r in (await resp.json())["results"]] == ["a", "b"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
        reply = await pb_grpc.EmbeddingServiceStub(ch).Embed(pb.EmbeddingRequest(texts=["hello grpc"]))
        assert len(reply.embeddings) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("sets", "loop"), [((), "uvloop"), (("server.uvloop=false",), "asyncio")])
async def test_the_gateway_process_serves_on_its_event_loop(
    zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path, sets: tuple[str, ...], loop: str
) -> None:
    async with gateway_process(zmq_endpoint, tmp_path, *sets) as (url, grpc_port, proc):
        await _exercise(url, grpc_port)
        assert f'"loop": "{loop}"' in proc.output()  # logs are JSON lines off a terminal
