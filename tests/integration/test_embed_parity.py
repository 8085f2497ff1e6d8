"""MiniLM through the real gateway and a real worker, against sentence-transformers' vectors.

Written against the `gateway` fixture alone, so every backend in conftest.BACKENDS is held to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gateway.api import keys
from gateway.services.embedding import EmbedRequest
from tests.support import references as refs
from tests.support.gateway import Gateway

MODEL = "all-MiniLM-L6-v2"
REF = refs.load("minilm_reference")
POOLING_REF = refs.load("minilm_pooling_reference")
TEXTS = [str(t) for t in REF["texts"]]
LONG = TEXTS[refs.FIRST_LONG :]


async def embed(gateway: Gateway, texts: list[str], **options: Any) -> dict[str, Any]:
    resp = await gateway.client.post("/embed", json={"texts": texts, **options})
    body = await resp.json()
    assert resp.status == 200, body
    return dict(body)


async def served(gateway: Gateway) -> dict[str, Any]:
    """This model's /models row (backend, device, precision)."""
    resp = await gateway.client.get("/models")
    rows = (await resp.json())["models"]
    return next(row for row in rows if row["name"] == MODEL)


async def test_parity_with_sentence_transformers(gateway: Gateway) -> None:
    body = await embed(gateway, TEXTS)
    got = np.array(body["embeddings"], dtype=np.float32)
    assert got.shape == REF["embeddings"].shape
    cos = refs.cosines(got, REF["embeddings"])
    row = await served(gateway)
    bar = refs.parity_bar(row["precision"])
    worst = int(cos.argmin())
    assert cos.min() >= bar, f"{row['backend']}/{row['precision']}: texts[{worst}] cosine {cos[worst]:.7f} < {bar}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


async def test_token_counts_are_the_tokenizers(gateway: Gateway) -> None:
    body = await embed(gateway, TEXTS)
    assert body["usage"]["total_tokens"] == int(REF["token_counts"].sum())
    # Per text, through the one embedding path the HTTP handler uses.
    out = await gateway.app[keys.EMBEDDING].embed(EmbedRequest(texts=tuple(TEXTS)))
    assert out.token_counts == REF["token_counts"].tolist()


async def test_a_synonym_pair_scores_above_an_unrelated_pair(gateway: Gateway) -> None:
    got = np.array((await embed(gateway, TEXTS[:4]))["embeddings"])
    (a, b), (c, d) = refs.SYNONYMS, refs.UNRELATED
    synonyms, unrelated = float(got[a] @ got[b]), float(got[c] @ got[d])
    assert synonyms > 0.7 > unrelated, (synonyms, unrelated)
    assert synonyms > max(float(got[a] @ got[c]), float(got[a] @ got[d]))


@pytest.mark.parametrize("pooling", ["cls", "last", "mean"])
async def test_pooling_without_normalisation(gateway: Gateway, pooling: str) -> None:
    texts = [str(t) for t in POOLING_REF["texts"]]
    got = np.array((await embed(gateway, texts, pooling=pooling, normalize=False))["embeddings"])
    expected = POOLING_REF[pooling]
    bar = refs.parity_bar((await served(gateway))["precision"])
    assert refs.cosines(got, expected).min() >= bar
    # Not normalised: the raw lengths come through.
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(expected, axis=1), rtol=1e-2)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-2)


async def test_pooling_cls_normalised(gateway: Gateway) -> None:
    texts = [str(t) for t in POOLING_REF["texts"]]
    got = np.array((await embed(gateway, texts, pooling="cls"))["embeddings"])
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert refs.cosines(got, POOLING_REF["cls"]).min() >= refs.PARITY_REDUCED
    assert refs.cosines(got, POOLING_REF["mean"]).min() < 0.99  # a different vector, not mean relabelled


async def test_truncation_embeds_the_first_256_tokens_and_counts_it(gateway: Gateway) -> None:
    before = await gateway.metric("akidb_embedding_truncated_texts_total", model=MODEL)
    body = await embed(gateway, ["hello world", *LONG])
    got = np.array(body["embeddings"], dtype=np.float32)
    expected = REF["embeddings"][refs.FIRST_LONG :]
    bar = refs.parity_bar((await served(gateway))["precision"])
    assert refs.cosines(got[1:], expected).min() >= bar
    assert body["usage"]["total_tokens"] == 4 + 256 * len(LONG)
    after = await gateway.metric("akidb_embedding_truncated_texts_total", model=MODEL)
    assert after - before == len(LONG)


async def test_truncate_false_refuses_a_long_text_naming_it(gateway: Gateway) -> None:
    before = await gateway.metric("akidb_embedding_truncated_texts_total", model=MODEL)
    resp = await gateway.client.post("/embed", json={"texts": ["hello world", LONG[0]], "truncate": False})
    body = await resp.json()
    assert 400 <= resp.status < 500, body
    assert body["error"]["code"] == "input_too_long"
    message = body["error"]["message"]
    assert "texts[1]" in message and f"{REF['input_tokens'][refs.FIRST_LONG]} tokens" in message
    assert "256" in message  # the limit it is over
    assert await gateway.metric("akidb_embedding_truncated_texts_total", model=MODEL) == before


async def test_truncate_false_accepts_a_text_at_the_limit(gateway: Gateway) -> None:
    at_limit, over = "word " * 254, "word " * 255  # + [CLS] and [SEP]: 256 and 257 tokens
    body = await embed(gateway, [at_limit], truncate=False)
    assert body["usage"]["total_tokens"] == 256
    resp = await gateway.client.post("/embed", json={"texts": [at_limit, over], "truncate": False})
    assert 400 <= resp.status < 500
    assert "texts[1] has 257 tokens" in (await resp.json())["error"]["message"]
