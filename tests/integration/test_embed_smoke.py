"""The embedding path end to end: real worker, real model, real sockets."""

from __future__ import annotations

import numpy as np

from tests.support.gateway import Gateway


async def test_embed_returns_normalised_384_dim_vectors(gateway: Gateway) -> None:
    resp = await gateway.client.post("/embed", json={"texts": ["hello world", "Machine learning is fun"]})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    vectors = np.array(body["embeddings"])
    assert vectors.shape == (2, 384)
    assert body["dimension"] == 384
    assert body["model"] == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["total_tokens"] == 4 + 6  # [CLS] hello world [SEP]; [CLS] machine learning is fun [SEP]
