"""gRPC EmbeddingService, health and reflection, against real worker processes and the generated stubs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.gateway import Gateway
from tests.support.grpc import channel, grpc_gateway
from tests.support.processes import WorkerProcess, free_port

TEXTS = ["hello world", "Machine learning is fun"]
SERVICE = "akidb.embedding.EmbeddingService"


async def _connected(gw: Gateway, worker: WorkerProcess) -> Gateway:
    try:
        await gw.wait_for_workers(1)
    except TimeoutError:
        pytest.fail(f"worker did not connect; its log:\n{worker.output()[-3000:]}")
    return gw


@pytest.fixture
async def gw(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    async with grpc_gateway(zmq_endpoint, str(tmp_path)) as gateway:
        yield await _connected(gateway, minilm_worker)


@pytest.fixture
async def stub(gw: Gateway) -> AsyncIterator[pb_grpc.EmbeddingServiceStub]:
    async with channel(gw) as ch:
        yield pb_grpc.EmbeddingServiceStub(ch)


async def _code_of(call) -> tuple[grpc.StatusCode, str, dict[str, str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details() or "", dict(err.value.trailing_metadata() or ())


async def test_embed_equals_rest_embed(gw: Gateway, stub: pb_grpc.EmbeddingServiceStub) -> None:
    resp = await stub.Embed(pb.EmbeddingRequest(texts=TEXTS))
    vectors = np.array([e.values for e in resp.embeddings], dtype=np.float32)
    assert vectors.shape == (2, 384)
    assert (resp.model, resp.dimension) == ("all-MiniLM-L6-v2", 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert resp.usage.total_tokens == 4 + 6

    rest = await gw.client.post("/embed", json={"texts": TEXTS})
    assert rest.status == 200, await rest.text()
    body = await rest.json()
    np.testing.assert_array_equal(vectors, np.array(body["embeddings"], dtype=np.float32))
    assert resp.usage.total_tokens == body["usage"]["total_tokens"]
    assert (
        await gw.metric("akidb_embedding_requests_total", model="all-MiniLM-L6-v2", status="ok", transport="grpc") == 1
    )
    assert await gw.metric("akidb_embedding_latency_seconds_count", transport="grpc") == 1


async def test_normalize_false_is_honoured_and_unset_means_true(stub: pb_grpc.EmbeddingServiceStub) -> None:
    raw = await stub.Embed(pb.EmbeddingRequest(texts=TEXTS, normalize=False))
    norms = np.linalg.norm(np.array([e.values for e in raw.embeddings]), axis=1)
    assert np.all(np.abs(norms - 1.0) > 0.01), norms  # mean-pooled MiniLM vectors are not unit length


async def test_get_model_info(stub: pb_grpc.EmbeddingServiceStub) -> None:
    for name in ("", "minilm", "all-MiniLM-L6-v2"):
        info = await stub.GetModelInfo(pb.ModelInfoRequest(model=name))
        assert (info.model, info.dimension, info.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    code, details, meta = await _code_of(stub.GetModelInfo(pb.ModelInfoRequest(model="nope")))
    assert code == grpc.StatusCode.NOT_FOUND and "'nope' is not served here" in details
    assert meta["akidb-error-code"] == "model_not_found"


async def test_invalid_input_has_rest_message(gw: Gateway, stub: pb_grpc.EmbeddingServiceStub) -> None:
    cases = [
        (pb.EmbeddingRequest(texts=[]), {"texts": []}),
        (pb.EmbeddingRequest(texts=["ok", ""]), {"texts": ["ok", ""]}),
        (pb.EmbeddingRequest(texts=["ok"], pooling="max"), {"texts": ["ok"], "pooling": "max"}),
    ]
    for msg, body in cases:
        code, details, meta = await _code_of(stub.Embed(msg))
        rest = await (await gw.client.post("/embed", json=body)).json()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details == rest["error"]["message"]
        assert meta["akidb-error-code"] == rest["error"]["code"] == "invalid_input"


async def test_unknown_model_is_not_found(stub: pb_grpc.EmbeddingServiceStub) -> None:
    code, details, _ = await _code_of(stub.Embed(pb.EmbeddingRequest(texts=TEXTS, model="no-such-model")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert "akidb-worker --model no-such-model" in details


async def test_no_worker_is_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with grpc_gateway(f"tcp://127.0.0.1:{free_port()}", str(tmp_path)) as lonely, channel(lonely) as ch:
        code, details, meta = await _code_of(pb_grpc.EmbeddingServiceStub(ch).Embed(pb.EmbeddingRequest(texts=TEXTS)))
        assert code == grpc.StatusCode.UNAVAILABLE and "no worker serves" in details
        assert (meta["akidb-error-code"], meta["retry-after"]) == ("no_worker", "1")
        health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert (await lonely.client.get("/ready")).status == 503  # the same answer as /ready


async def test_full_queue_is_unavailable(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with grpc_gateway(zmq_endpoint, str(tmp_path), "batching.max_queue_texts=1") as gw, channel(gw) as ch:
        await _connected(gw, minilm_worker)
        code, details, meta = await _code_of(pb_grpc.EmbeddingServiceStub(ch).Embed(pb.EmbeddingRequest(texts=TEXTS)))
        assert code == grpc.StatusCode.UNAVAILABLE and "queue is full" in details
        assert meta["akidb-error-code"] == "queue_full"


async def test_server_timeout_is_deadline_exceeded(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with grpc_gateway(zmq_endpoint, str(tmp_path), "server.request_timeout_s=0.001") as gw, channel(gw) as ch:
        await _connected(gw, minilm_worker)
        texts = [f"sentence number {i} about nothing much" for i in range(32)]
        code, details, meta = await _code_of(pb_grpc.EmbeddingServiceStub(ch).Embed(pb.EmbeddingRequest(texts=texts)))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "server.request_timeout_s" in details and meta["akidb-error-code"] == "timeout"


async def test_client_deadline_is_honoured(gw: Gateway, stub: pb_grpc.EmbeddingServiceStub) -> None:
    # ~5 s of work for one worker; the client gives it 0.3 s.
    texts = [f"text {i}: " + "a fairly long sentence that keeps the worker busy " * 4 for i in range(512)]
    started = time.perf_counter()
    code, _, _ = await _code_of(stub.Embed(pb.EmbeddingRequest(texts=texts), timeout=0.3))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - started < 1.5
    # The gateway gave up at the deadline too (not at server.request_timeout_s, 30 s): the call
    # ended within a second, and the chunks it had queued were released.
    for _ in range(40):
        if (
            await gw.metric("akidb_embedding_latency_seconds_count", transport="grpc")
            and not gw.dispatcher.batcher.queued_texts
        ):
            break
        await asyncio.sleep(0.05)
    assert await gw.metric("akidb_embedding_latency_seconds_bucket", transport="grpc", le="1.0") == 1
    assert gw.dispatcher.batcher.queued_texts == 0


async def test_health_mirrors_ready(gw: Gateway) -> None:
    async with channel(gw) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", SERVICE):
            resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        assert (await gw.client.get("/ready")).status == 200
        code, _, _ = await _code_of(health.Check(health_pb2.HealthCheckRequest(service="nope.Service")))
        assert code == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


async def test_reflection_lists_the_service(gw: Gateway) -> None:
    async with channel(gw) as ch:
        call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = {s.name for s in (await call.read()).list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE))
        files = (await call.read()).file_descriptor_response.file_descriptor_proto
        assert files and b"EmbeddingService" in files[0]
        await call.done_writing()
