"""Requests refused while their body is read, or at the OpenAI route's model check, still count in
akidb_embedding_requests_total with their status and in the latency histogram (error-rate dashboards)."""

from __future__ import annotations

import grpc

from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.grpc import GRPC_ON, channel

MODEL = "all-MiniLM-L6-v2"  # the default model: the label when a body names none


async def counted(gw: Gateway, status: str, transport: str, model: str = MODEL) -> float:
    return await gw.metric("akidb_embedding_requests_total", model=model, status=status, transport=transport)


async def timed(gw: Gateway, transport: str) -> float:
    return await gw.metric("akidb_embedding_latency_seconds_count", transport=transport)


async def test_rest_refusals_are_counted_and_timed(start_gateway: GatewayFactory) -> None:
    async with start_gateway("server.max_body_bytes=1024") as gw:
        cases = [
            ({"json": {"texts": []}}, 400, "invalid_input"),
            ({"data": b"{", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
            ({"data": b'{"texts": ["' + b"a" * 2000 + b'"]}', "headers": {"Content-Type": "application/json"}}, 413,
             "payload_too_large"),
            ({"data": b'{"texts": ["a"]}', "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
        ]  # fmt: skip
        for n, (kwargs, status, code) in enumerate(cases, start=1):
            resp = await gw.client.post("/embed", **kwargs)
            assert resp.status == status
            assert await counted(gw, code, "http") == 1, code
            assert await timed(gw, "http") == n


async def test_a_refused_body_names_its_model_when_it_can(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        assert (await gw.client.post("/embed", json={"texts": [], "model": "made-up"})).status == 400
        assert await counted(gw, "invalid_input", "http", model="unknown") == 1


async def test_openai_refusals_and_its_model_check_are_counted(start_gateway: GatewayFactory) -> None:
    async with start_gateway() as gw:
        resp = await gw.client.post("/v1/embeddings", json={"input": "a"})
        assert resp.status == 400
        assert await counted(gw, "invalid_input", "openai") == 1
        # No worker serves the default model here: the model check refuses before any embedding.
        resp = await gw.client.post("/v1/embeddings", json={"input": "a", "model": MODEL})
        assert resp.status == 503
        assert await counted(gw, "no_worker", "openai") == 1
        resp = await gw.client.post("/v1/embeddings", json={"input": "a", "model": "nope"})
        assert resp.status == 404
        assert await counted(gw, "model_not_found", "openai", model="unknown") == 1
        assert await timed(gw, "openai") == 3


async def test_grpc_invalid_argument_is_counted(start_gateway: GatewayFactory) -> None:
    async with start_gateway(*GRPC_ON) as gw, channel(gw) as ch:
        stub = pb_grpc.EmbeddingServiceStub(ch)
        try:
            await stub.Embed(pb.EmbeddingRequest(texts=["ok", ""]))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            raise AssertionError("an empty text was accepted")
        assert await counted(gw, "invalid_input", "grpc") == 1
        assert await timed(gw, "grpc") == 1
