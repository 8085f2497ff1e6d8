"""Qwen3 through real workers: the tiny checkpoint against transformers, the 4-bit copy as qwen3-0.6b-4bit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from tests.support import references as refs
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import WorkerProcess, free_port

REF = refs.load("tiny_qwen3_reference")
TEXTS = [str(t) for t in REF["texts"]]
ALIAS = "qwen3-0.6b-4bit"
ALIAS_REPO = "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ"


@pytest.fixture(scope="module")
def qwen3_endpoint() -> str:
    """Its own endpoint, so these models never show up in the MiniLM tests' gateways."""
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def qwen3_workers(qwen3_endpoint: str) -> Iterator[dict[str, WorkerProcess]]:
    workers = {
        "tiny-qwen3": WorkerProcess(qwen3_endpoint, "--backend", "mlx", "--model-path", str(refs.TINY_QWEN3)),
        ALIAS: WorkerProcess(
            qwen3_endpoint, "--backend", "mlx", "--model", ALIAS, "--model-path", str(refs.TINY_QWEN3_4BIT)
        ),
    }
    yield workers
    for worker in workers.values():
        worker.stop()


@pytest.fixture
async def qwen3_gateway(
    qwen3_endpoint: str, qwen3_workers: dict[str, WorkerProcess], tmp_path
) -> AsyncIterator[Gateway]:  # type: ignore[no-untyped-def]
    async with running_gateway(make_config(qwen3_endpoint, str(tmp_path))) as gw:
        for name, worker in qwen3_workers.items():
            try:
                await gw.wait_for_workers(1, model=name)
            except TimeoutError:
                pytest.fail(f"{name} worker did not connect; its log:\n{worker.output()[-3000:]}")
        yield gw


async def embed(gw: Gateway, model: str, texts: list[str], **options: Any) -> dict[str, Any]:
    resp = await gw.client.post("/embed", json={"texts": texts, "model": model, **options})
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


async def test_tiny_qwen3_matches_transformers(qwen3_gateway: Gateway) -> None:
    """One request, so texts of different lengths share right-padded passes: padding must not leak."""
    body = await embed(qwen3_gateway, "tiny-qwen3", TEXTS, normalize=False)
    got = np.array(body["embeddings"], dtype=np.float32)
    assert body["model"] == "tiny-qwen3" and body["dimension"] == 64
    assert refs.cosines(got, REF["pooled_last"]).min() >= refs.PARITY_F32
    np.testing.assert_allclose(got, REF["pooled_last"], rtol=1e-4, atol=1e-4)
    assert body["usage"]["total_tokens"] == int(REF["token_counts"].sum())


async def test_tiny_qwen3_defaults_to_last_token_and_normalises(qwen3_gateway: Gateway) -> None:
    got = np.array((await embed(qwen3_gateway, "tiny-qwen3", TEXTS))["embeddings"])
    assert refs.cosines(got, REF["embeddings"]).min() >= refs.PARITY_F32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


async def test_tiny_qwen3_mean_pooling(qwen3_gateway: Gateway) -> None:
    got = np.array((await embed(qwen3_gateway, "tiny-qwen3", TEXTS, pooling="mean", normalize=False))["embeddings"])
    assert refs.cosines(got, REF["pooled_mean"]).min() >= refs.PARITY_F32


async def test_4bit_copy_serves_as_the_alias(qwen3_gateway: Gateway) -> None:
    rows = {row["name"]: row for row in (await (await qwen3_gateway.client.get("/models")).json())["models"]}
    row = rows[ALIAS]
    config = json.loads((refs.TINY_QWEN3_4BIT / "config.json").read_text())
    assert row["dimension"] == config["hidden_size"] == 64  # read from the config, not assumed
    assert (row["pooling"], row["max_tokens"], row["precision"], row["workers"]) == ("last", 8192, "int4", 1)
    assert ALIAS_REPO in row["aliases"]
    for name in (ALIAS, ALIAS_REPO):
        body = await embed(qwen3_gateway, name, TEXTS)
        assert body["model"] == ALIAS and body["dimension"] == 64
        assert np.array(body["embeddings"]).shape == (len(TEXTS), 64)


async def test_4bit_copy_matches_mlx_lms_own_loader(qwen3_gateway: Gateway) -> None:
    """The worker quantises the same layers mlx-lm's converter did and reads them back the same way."""
    import mlx.core as mx
    from mlx_lm.utils import load as mlx_lm_load

    model, tokenizer = mlx_lm_load(str(refs.TINY_QWEN3_4BIT))
    expected = []
    for text in TEXTS:
        hidden = model.model(mx.array([tokenizer.encode(text)]))
        expected.append(np.array(hidden[0, -1].astype(mx.float32)))
    got = np.array((await embed(qwen3_gateway, ALIAS, TEXTS, normalize=False))["embeddings"])
    assert refs.cosines(got, np.stack(expected)).min() >= 0.9999
    # Quantised, so close to the f32 model but not equal to it: the 4-bit weights really are in use.
    assert 0.8 < refs.cosines(got, REF["pooled_last"]).min() < 0.999
