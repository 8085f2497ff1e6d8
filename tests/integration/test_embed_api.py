"""POST /embed against a real worker: shapes, batching, and every bad input."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from tests.support.gateway import Gateway


async def test_shapes_norms_and_dimension(gateway: Gateway) -> None:
    texts = ["hello world", "Machine learning is fun", "é 🙂 中文"]
    resp = await gateway.client.post("/embed", json={"texts": texts})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    vectors = np.array(body["embeddings"], dtype=np.float32)
    assert vectors.shape == (3, 384) and body["dimension"] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["total_tokens"] > 3 * 2  # every text has [CLS] and [SEP] at least
    assert isinstance(body["usage"]["duration_ms"], int)
    assert resp.headers["X-Request-ID"]


async def test_normalize_false_keeps_the_raw_norm(gateway: Gateway) -> None:
    resp = await gateway.client.post("/embed", json={"texts": ["hello world"], "normalize": False})
    raw = np.array((await resp.json())["embeddings"][0])
    assert abs(np.linalg.norm(raw) - 1.0) > 0.05


async def test_concurrent_requests_share_worker_jobs(gateway: Gateway) -> None:
    before_jobs = await gateway.metric("akidb_embedding_batch_size_count", model="all-MiniLM-L6-v2")
    n = 24
    responses = await asyncio.gather(
        *(gateway.client.post("/embed", json={"texts": [f"sentence number {i}"]}) for i in range(n))
    )
    assert all(r.status == 200 for r in responses)
    jobs = await gateway.metric("akidb_embedding_batch_size_count", model="all-MiniLM-L6-v2") - before_jobs
    assert jobs < n  # some requests rode in the same job
    # and each caller got the vector of its own text
    single = await (await gateway.client.post("/embed", json={"texts": ["sentence number 7"]})).json()
    mine = await responses[7].json()
    np.testing.assert_allclose(mine["embeddings"][0], single["embeddings"][0], atol=1e-5)


async def test_more_texts_than_a_batch_are_split_not_refused(gateway: Gateway) -> None:
    texts = [f"text {i}" for i in range(100)]
    resp = await gateway.client.post("/embed", json={"texts": texts})
    assert resp.status == 200
    vectors = np.array((await resp.json())["embeddings"])
    assert vectors.shape == (100, 384)
    one = await (await gateway.client.post("/embed", json={"texts": ["text 99"]})).json()
    np.testing.assert_allclose(vectors[99], one["embeddings"][0], atol=1e-5)


async def test_input_type_changes_nothing_for_a_model_without_prompts(gateway: Gateway) -> None:
    """MiniLM is symmetric: its prompts are empty, so query and document vectors are the plain ones, bit for bit."""
    texts = ["hello world", "Machine learning is fun"]
    bodies = []
    for extra in ({}, {"input_type": "query"}, {"input_type": "document"}, {"input_type": None}):
        resp = await gateway.client.post("/embed", json={"texts": texts, **extra})
        assert resp.status == 200, await resp.text()
        bodies.append(await resp.json())
    for body in bodies[1:]:
        assert body["embeddings"] == bodies[0]["embeddings"] and body["usage"] == {
            **bodies[0]["usage"],
            "duration_ms": body["usage"]["duration_ms"],
        }
    (row,) = [m for m in (await (await gateway.client.get("/models")).json())["models"] if m["default"]]
    assert (row["query_prompt"], row["document_prompt"]) == ("", "")


BAD_BODIES = [
    ({"texts": []}, 400, "invalid_input", "at least one text"),
    ({"texts": ["ok", 3]}, 400, "invalid_input", "texts[1] must be a string"),
    ({"texts": "just a string"}, 400, "invalid_input", "must be a list of strings"),
    ({"texts": ["ok", ""]}, 400, "invalid_input", "texts[1] is empty"),
    ({}, 400, "invalid_input", "texts is required"),
    ({"texts": ["a"], "model": "no-such-model"}, 404, "model_not_found", "no-such-model"),
    ({"texts": ["a"], "model": 7}, 400, "invalid_input", "model must be a string"),
    ({"texts": ["a"], "pooling": "max"}, 400, "invalid_input", "pooling must be one of mean, cls, last"),
    ({"texts": ["a"], "normalize": "yes"}, 400, "invalid_input", "normalize must be true or false"),
    ({"texts": ["a"], "normalise": True}, 400, "invalid_input", "unknown field(s) normalise"),
    ({"texts": ["a"], "input_type": "search_query"}, 400, "invalid_input", "input_type must be one of query, document"),
    (["a", "b"], 400, "invalid_input", "must be a JSON object"),
    ({"texts": ["a"] * 2049}, 400, "invalid_input", "over the limit of 2048"),
]


@pytest.mark.parametrize(("body", "status", "code", "message"), BAD_BODIES)
async def test_bad_bodies_are_4xx_with_a_json_error(gateway: Gateway, body, status, code, message) -> None:  # type: ignore[no-untyped-def]
    resp = await gateway.client.post("/embed", json=body)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert message in error["message"]


async def test_malformed_json_wrong_type_and_oversized_bodies(gateway: Gateway) -> None:
    cases = [
        (dict(data=b'{"texts": [', headers={"Content-Type": "application/json"}), 400, "invalid_json"),
        (dict(data=b"", headers={"Content-Type": "application/json"}), 400, "invalid_json"),
        (dict(data=b'{"texts": ["a"]}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (
            dict(data=b"texts=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
            415,
            "unsupported_media_type",
        ),
        (
            dict(
                data=io.BytesIO(b'{"texts": ["' + b"a" * (17 * 1024 * 1024) + b'"]}'),
                headers={"Content-Type": "application/json"},
            ),
            413,
            "payload_too_large",
        ),
    ]
    for kwargs, status, code in cases:
        resp = await gateway.client.post("/embed", **kwargs)
        assert resp.status == status, (kwargs.get("headers"), await resp.text())
        assert (await resp.json())["error"]["code"] == code


async def test_unknown_routes_and_methods_answer_json(gateway: Gateway) -> None:
    resp = await gateway.client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await gateway.client.get("/embed")
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_made_up_model_names_share_one_metrics_label(gateway: Gateway) -> None:
    """A client can send any model name; each must not become a time series of its own."""
    for name in ("no-such-model-1", "no-such-model-2"):
        resp = await gateway.client.post("/embed", json={"texts": ["a"], "model": name})
        assert resp.status == 404
    labels = {"status": "model_not_found", "transport": "http"}
    assert await gateway.metric("akidb_embedding_requests_total", model="unknown", **labels) == 2
    assert await gateway.metric("akidb_embedding_requests_total", model="no-such-model-1", **labels) == 0


async def test_health_ready_models_metrics(gateway: Gateway) -> None:
    assert (await (await gateway.client.get("/health")).json())["status"] == "ok"
    ready = await gateway.client.get("/ready")
    assert ready.status == 200 and (await ready.json())["workers"] == 1
    (model,) = (await (await gateway.client.get("/models")).json())["models"]
    assert model["name"] == "all-MiniLM-L6-v2" and model["dimension"] == 384
    assert model["max_tokens"] == 256 and model["pooling"] == "mean" and model["workers"] == 1
    assert model["kind"] == "embed"
    await gateway.client.post("/embed", json={"texts": ["count me"]})
    text = await (await gateway.client.get("/metrics")).text()
    for name in (
        'akidb_embedding_requests_total{model="all-MiniLM-L6-v2",status="ok",transport="http"}',
        "akidb_embedding_latency_seconds_bucket",
        "akidb_embedding_batch_size_bucket",
        "akidb_embedding_queue_depth",
        'akidb_workers_connected{model="all-MiniLM-L6-v2"} 1.0',
    ):
        assert name in text
