"""Qwen3 through real workers: the tiny checkpoint against transformers, the 4-bit copy as qwen3-0.6b-4bit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import openai
import pytest
from tokenizers import Tokenizer

from shared import models
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support import references as refs
from tests.support.gateway import Gateway, running_gateway
from tests.support.grpc import channel, grpc_config
from tests.support.processes import WorkerProcess, free_port

REF = refs.load("tiny_qwen3_reference")
TEXTS = [str(t) for t in REF["texts"]]
ALIAS = "qwen3-0.6b-4bit"
ALIAS_REPO = "mlx-community/Qwen3-Embedding-0.6B-4bit-DWQ"
# The reference file's prompted text is this instruction + QUESTION, embedded by transformers.
PROMPTED = TEXTS.index(
    "Instruct: Given a web search query, retrieve relevant passages\nQuery: what is a vector database?"
)
QUESTION = "what is a vector database?"
QUERY_PROMPT = TEXTS[PROMPTED].removesuffix(QUESTION)
DOCUMENT_PROMPT = "Passage: "  # Qwen3 has none; set here to prove config reaches the worker
SHORT = "tiny-qwen3-short"  # the same weights with max_tokens 40, for truncation with a prompt
SHORT_MAX_TOKENS = 40
LONG = "Vector databases index embeddings for nearest-neighbour search. " * 20


@pytest.fixture(scope="module")
def qwen3_endpoint() -> str:
    """Its own endpoint, so these models never show up in the MiniLM tests' gateways."""
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def qwen3_workers(qwen3_endpoint: str) -> Iterator[dict[str, WorkerProcess]]:
    prompts = (
        "--set",
        f"embedding.query_prompt={QUERY_PROMPT}",
        "--set",
        f"embedding.document_prompt={DOCUMENT_PROMPT}",
    )
    workers = {
        "tiny-qwen3": WorkerProcess(qwen3_endpoint, "--backend", "mlx", "--model-path", str(refs.TINY_QWEN3), *prompts),
        SHORT: WorkerProcess(
            qwen3_endpoint,
            *("--backend", "mlx", "--model", SHORT, "--model-path", str(refs.TINY_QWEN3), *prompts),
            *("--set", f"embedding.max_tokens={SHORT_MAX_TOKENS}"),
        ),
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
    # f32 index: search scores compare exactly with vectors computed here. gRPC on for input_type there.
    async with running_gateway(grpc_config(qwen3_endpoint, str(tmp_path), "storage.index_dtype=f32")) as gw:
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
    # The registry's prompts: the model card's query instruction, nothing for documents.
    assert (row["query_prompt"], row["document_prompt"]) == (models.QWEN3_QUERY_PROMPT, "")
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


def vectors(body: dict[str, Any]) -> np.ndarray:
    return np.array(body["embeddings"], dtype=np.float32)


async def test_query_input_type_matches_transformers_on_the_prompted_text(qwen3_gateway: Gateway) -> None:
    """The worker prepends its query prompt exactly: transformers' embedding of the prompted string comes back."""
    query = await embed(qwen3_gateway, "tiny-qwen3", [QUESTION], input_type="query", normalize=False)
    assert refs.cosines(vectors(query), REF["pooled_last"][PROMPTED : PROMPTED + 1]).min() >= refs.PARITY_F32
    np.testing.assert_allclose(vectors(query)[0], REF["pooled_last"][PROMPTED], rtol=1e-4, atol=1e-4)
    prompted = await embed(qwen3_gateway, "tiny-qwen3", [QUERY_PROMPT + QUESTION], normalize=False)
    np.testing.assert_array_equal(vectors(query), vectors(prompted))  # the very same tokens
    # Usage counts the prompt's tokens too.
    assert query["usage"]["total_tokens"] == prompted["usage"]["total_tokens"] == int(REF["token_counts"][PROMPTED])
    plain = await embed(qwen3_gateway, "tiny-qwen3", [QUESTION], normalize=False)
    assert refs.cosines(vectors(plain), vectors(query)).max() < 0.99  # the prompt changed the embedding
    assert plain["usage"]["total_tokens"] < query["usage"]["total_tokens"]


async def test_document_input_type_and_the_prompts_on_models(qwen3_gateway: Gateway) -> None:
    texts = ["hello world", "A cat sleeps on the warm windowsill."]
    document = await embed(qwen3_gateway, "tiny-qwen3", texts, input_type="document")
    prompted = await embed(qwen3_gateway, "tiny-qwen3", [DOCUMENT_PROMPT + t for t in texts])
    np.testing.assert_array_equal(vectors(document), vectors(prompted))
    rows = {row["name"]: row for row in (await (await qwen3_gateway.client.get("/models")).json())["models"]}
    assert (rows["tiny-qwen3"]["query_prompt"], rows["tiny-qwen3"]["document_prompt"]) == (
        QUERY_PROMPT,
        DOCUMENT_PROMPT,
    )


async def test_grpc_and_openai_take_input_type_too(qwen3_gateway: Gateway) -> None:

    rest = vectors(await embed(qwen3_gateway, "tiny-qwen3", [QUESTION], input_type="query"))
    async with channel(qwen3_gateway) as ch:
        stub = pb_grpc.EmbeddingServiceStub(ch)
        resp = await stub.Embed(pb.EmbeddingRequest(texts=[QUESTION], model="tiny-qwen3", input_type="query"))
        info = await stub.GetModelInfo(pb.ModelInfoRequest(model="tiny-qwen3"))
    np.testing.assert_array_equal(np.array([e.values for e in resp.embeddings], dtype=np.float32), rest)
    assert (info.query_prompt, info.document_prompt) == (QUERY_PROMPT, DOCUMENT_PROMPT)
    base_url = str(qwen3_gateway.client.make_url("/v1"))
    async with openai.AsyncOpenAI(base_url=base_url, api_key="not-checked", max_retries=0) as client:
        out = await client.embeddings.create(
            model="tiny-qwen3", input=QUESTION, encoding_format="float", extra_body={"input_type": "query"}
        )
    np.testing.assert_array_equal(np.array(out.data[0].embedding, dtype=np.float32), rest[0])
    assert out.usage.total_tokens == int(REF["token_counts"][PROMPTED])


async def test_requests_with_other_prompts_at_once_each_get_their_own(qwen3_gateway: Gateway) -> None:
    """Concurrent plain, query and document requests for one text: the batcher never mixes their prompts."""
    calls = [
        embed(qwen3_gateway, "tiny-qwen3", [QUESTION] * 3, **({"input_type": kind} if kind else {}))
        for kind in (None, "query", "document") * 4
    ]
    bodies = await asyncio.gather(*calls)
    expected = {
        kind: vectors(await embed(qwen3_gateway, "tiny-qwen3", [prompt + QUESTION]))[0]
        for kind, prompt in ((None, ""), ("query", QUERY_PROMPT), ("document", DOCUMENT_PROMPT))
    }
    for kind, body in zip((None, "query", "document") * 4, bodies, strict=True):
        for row in vectors(body):
            np.testing.assert_allclose(row, expected[kind], rtol=1e-5, atol=1e-5)


async def test_truncation_cuts_the_text_never_the_prompt(qwen3_gateway: Gateway) -> None:
    tokenizer = Tokenizer.from_file(str(refs.TINY_QWEN3 / "tokenizer.json"))
    full = tokenizer.encode(QUERY_PROMPT + LONG)
    assert len(full.ids) > SHORT_MAX_TOKENS
    # The worker keeps the first max_tokens - 1 tokens (then <|endoftext|>): this is their text.
    kept = QUERY_PROMPT + LONG
    kept = kept[: full.offsets[SHORT_MAX_TOKENS - 2][1]]
    assert kept.startswith(QUERY_PROMPT) and len(kept) > len(QUERY_PROMPT)
    assert tokenizer.encode(kept).ids == [*full.ids[: SHORT_MAX_TOKENS - 1], full.ids[-1]]
    cut = await embed(qwen3_gateway, SHORT, [LONG], input_type="query")
    reference = await embed(qwen3_gateway, SHORT, [kept])
    np.testing.assert_array_equal(vectors(cut), vectors(reference))
    assert cut["usage"]["total_tokens"] == reference["usage"]["total_tokens"] == SHORT_MAX_TOKENS
    resp = await qwen3_gateway.client.post(
        "/embed", json={"texts": [LONG], "model": SHORT, "input_type": "query", "truncate": False}
    )
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "input_too_long", body
    assert f"texts[0] has {len(full.ids)} tokens" in body["error"]["message"]  # the prompt's tokens counted


def test_a_worker_whose_prompt_leaves_no_room_for_text_will_not_start(qwen3_endpoint: str) -> None:
    worker = WorkerProcess(
        qwen3_endpoint,
        *("--backend", "mlx", "--model", "tiny-qwen3-tight", "--model-path", str(refs.TINY_QWEN3)),
        *("--set", f"embedding.query_prompt={QUERY_PROMPT}", "--set", "embedding.max_tokens=8"),
    )
    try:
        code = worker.proc.wait(timeout=120)
    finally:
        worker.stop()
    assert code == 2, worker.output()[-2000:]
    assert "embedding.query_prompt: the prompt" in worker.output() and "max_tokens 8" in worker.output()


async def test_collections_embed_documents_and_queries_with_their_prompts(qwen3_gateway: Gateway) -> None:
    client = qwen3_gateway.client
    resp = await client.post("/collections", json={"name": "prompts", "model": "tiny-qwen3", "metric": "ip"})
    assert resp.status == 201, await resp.json()
    docs = [{"id": "cat", "text": "A cat sleeps on the warm windowsill."}, {"id": "db", "text": LONG}]
    assert (await client.post("/collections/prompts/documents", json={"documents": docs})).status in (200, 201)
    stored = await (await client.get("/collections/prompts/documents/cat?include_vector=true")).json()
    document = vectors(await embed(qwen3_gateway, "tiny-qwen3", [DOCUMENT_PROMPT + docs[0]["text"]]))[0]
    np.testing.assert_allclose(stored["vector"], document, rtol=1e-6, atol=1e-6)
    found = await (await client.post("/collections/prompts/search", json={"query": QUESTION, "k": 2})).json()
    query = vectors(await embed(qwen3_gateway, "tiny-qwen3", [QUERY_PROMPT + QUESTION]))[0]
    scores = {hit["id"]: hit["score"] for hit in found["results"]}
    assert scores["cat"] == pytest.approx(float(query @ document), abs=1e-5)
