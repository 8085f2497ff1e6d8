"""OpenAI-compatible routes, driven by the official `openai` SDK against real worker processes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest

from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import free_port

TEXTS = ["hello world", "Machine learning is fun"]
MODEL = "all-MiniLM-L6-v2"


def sdk(gw: Gateway) -> openai.AsyncOpenAI:
    # No retries: a 5xx must surface at once, not after the SDK's backoff.
    return openai.AsyncOpenAI(base_url=str(gw.client.make_url("/v1")), api_key="not-checked", max_retries=0)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with sdk(gateway) as c:
        yield c


async def rest_vectors(gw: Gateway, texts: list[str]) -> np.ndarray:
    resp = await gw.client.post("/embed", json={"texts": texts})
    assert resp.status == 200, await resp.text()
    return np.array((await resp.json())["embeddings"], dtype=np.float32)


async def test_one_string(gateway: Gateway, client: openai.AsyncOpenAI) -> None:
    resp = await client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
    assert resp.object == "list" and resp.model == MODEL
    assert [(d.object, d.index) for d in resp.data] == [("embedding", 0)]
    got = np.array(resp.data[0].embedding, dtype=np.float32)
    np.testing.assert_array_equal(got, (await rest_vectors(gateway, ["hello world"]))[0])
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == 4


async def test_a_list_in_float_and_base64_equals_embed(gateway: Gateway, client: openai.AsyncOpenAI) -> None:
    expected = await rest_vectors(gateway, TEXTS)
    floats = await client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    np.testing.assert_array_equal(np.array([d.embedding for d in floats.data], dtype=np.float32), expected)
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 4 + 6

    raw = await client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="base64")
    decoded = np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in raw.data])  # type: ignore[arg-type]
    np.testing.assert_array_equal(decoded, expected)
    # The SDK's default: it asks for base64 itself and hands back floats.
    default = await client.embeddings.create(model="minilm", input=TEXTS)
    np.testing.assert_array_equal(np.array([d.embedding for d in default.data], dtype=np.float32), expected)
    assert default.model == MODEL  # an alias answers with the canonical name
    assert await gateway.metric("akidb_embedding_requests_total", model=MODEL, status="ok", transport="openai") >= 2


async def test_errors_are_the_sdks_own_exceptions(gateway: Gateway, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await client.embeddings.create(model="no-such-model", input="hi")
    assert (missing.value.code, missing.value.param, missing.value.type) == (
        "model_not_found",
        "model",
        "invalid_request_error",
    )
    # 400 dimension_mismatch, as the seed API specifies for a model that is not Matryoshka-trained.
    with pytest.raises(openai.BadRequestError) as cut:
        await client.embeddings.create(model=MODEL, input="hi", dimensions=128)
    assert cut.value.param == "dimensions" and "not trained Matryoshka-style" in cut.value.message
    assert cut.value.code == "dimension_mismatch"
    with pytest.raises(openai.BadRequestError) as tokens:
        await client.embeddings.create(model=MODEL, input=[[101, 7592, 102]])
    assert tokens.value.param == "input" and "token ids" in tokens.value.message
    with pytest.raises(openai.BadRequestError) as empty:
        await client.embeddings.create(model=MODEL, input=["ok", ""])
    assert "input[1] is empty" in empty.value.message


async def test_full_dimensions_are_accepted_for_any_model(client: openai.AsyncOpenAI) -> None:
    resp = await client.embeddings.create(model=MODEL, input="hi", dimensions=384, encoding_format="float")
    assert len(resp.data[0].embedding) == 384


async def test_models_list_and_retrieve(client: openai.AsyncOpenAI) -> None:
    listed = [m async for m in client.models.list()]
    assert [(m.id, m.object, m.owned_by) for m in listed] == [(MODEL, "model", "akidb")]
    assert (await client.models.retrieve("minilm")).id == MODEL
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("no-such-model")


async def test_error_body_shape_on_v1_routes_only(gateway: Gateway) -> None:
    resp = await gateway.client.post("/v1/embeddings", data=b"{", headers={"Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "invalid_json" and body["error"]["type"] == "invalid_request_error"
    resp = await gateway.client.get("/v1/nothing-here")
    assert resp.status == 404 and (await resp.json())["error"]["type"] == "invalid_request_error"
    resp = await gateway.client.post("/embed", json={"texts": []})
    assert set((await resp.json())["error"]) == {"code", "message"}  # our own shape elsewhere


async def test_no_worker_is_a_retryable_server_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(f"tcp://127.0.0.1:{free_port()}", str(tmp_path))
    async with running_gateway(cfg) as lonely, sdk(lonely) as c:
        with pytest.raises(openai.InternalServerError) as err:
            await c.embeddings.create(model=MODEL, input="hi")
        assert err.value.status_code == 503 and err.value.code == "no_worker" and err.value.type == "server_error"
        assert err.value.response.headers["Retry-After"] == "1"
