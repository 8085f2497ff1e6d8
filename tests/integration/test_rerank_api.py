"""POST /rerank, POST /v1/rerank and gRPC Rerank against a REAL worker process serving the committed tiny BERT
cross-encoder (random weights, the real architecture and tokenizer) under ms-marco-MiniLM-L-6-v2's name.

Shapes and sorting, scores equal to the in-process reranker's (sigmoid and raw), pairs split across jobs,
every bad input a 4xx naming its field, 503 on a full queue, and no lost request when a worker is killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.config import Config, EmbeddingConfig
from shared.proto import embedding_pb2 as pb
from shared.proto import embedding_pb2_grpc as pb_grpc
from tests.support.backends import ONE_BACKEND
from tests.support.fake_worker import FakeWorker
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.grpc import GRPC_ON, channel
from tests.support.processes import WorkerProcess, free_port
from worker.backends.select import build_reranker
from worker.loader import locate
from worker.reranker import Reranker, sigmoid

pytestmark = ONE_BACKEND

RERANKER = "ms-marco-MiniLM-L-6-v2"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "tiny-bert-reranker"
QUERY = "how do cats sleep"
DOCS = [
    "Cats sleep for most of the day, often sixteen hours.",
    "The stock market closed higher on Tuesday.",
    "A kitten naps in the sun after eating.",
    "Dogs bark at the mail carrier.",
    "Sleeping cats curl up to keep warm.",
    "Quantum computers use qubits.",
]


def reranker_worker(endpoint: str, backend: str, worker_id: str) -> WorkerProcess:
    # f32, so its scores can be held to the in-process reranker's at f32 to 1e-4.
    args = ("--model", RERANKER, "--model-path", str(FIXTURE), "--precision", "f32", "--worker-id", worker_id)
    return WorkerProcess(endpoint, "--backend", backend, *args)


@pytest.fixture(scope="module")
def rerank_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def worker(rerank_endpoint: str, backend: str) -> Iterator[WorkerProcess]:
    proc = reranker_worker(rerank_endpoint, backend, "rr-0")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def in_process(backend: str) -> Reranker:
    """The same fixture, backend and precision in this process: what the worker's scores must equal."""
    embedding = replace(EmbeddingConfig(), model_name=RERANKER, model_path=str(FIXTURE), precision="f32")
    return build_reranker(backend, locate(embedding), replace(Config(), embedding=embedding))


async def connected(gw: Gateway, worker: WorkerProcess, count: int = 1) -> Gateway:
    try:
        await gw.wait_for_workers(count, model=RERANKER)
    except TimeoutError:
        pytest.fail(f"reranker worker did not connect; its log:\n{worker.output()[-3000:]}")
    return gw


@pytest.fixture
async def gw(rerank_endpoint: str, worker: WorkerProcess, tmp_path: Path) -> AsyncIterator[Gateway]:
    cfg = make_config(rerank_endpoint, str(tmp_path), "rerank.max_documents=8", *GRPC_ON)
    async with running_gateway(cfg) as gateway:
        yield await connected(gateway, worker)


async def post(gw: Gateway, path: str, body: Any) -> tuple[int, Any]:
    resp = await gw.client.post(path, json=body)
    return resp.status, await resp.json()


async def test_rerank_answers_every_text_best_first_with_its_index(gw: Gateway) -> None:
    status, body = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS})
    assert status == 200, body
    assert sorted(r["index"] for r in body) == list(range(len(DOCS)))
    scores = [r["score"] for r in body]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert all(set(r) == {"index", "score"} for r in body)  # no text unless return_text
    status, echoed = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS, "return_text": True})
    assert [r["text"] for r in echoed] == [DOCS[r["index"]] for r in echoed]


async def test_scores_equal_the_in_process_reranker_sigmoid_and_raw(gw: Gateway, in_process: Reranker) -> None:
    want = in_process.score([(QUERY, d) for d in DOCS]).logits
    _, scored = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS})
    _, raw = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True})
    by_index = lambda rows: np.array([r["score"] for r in sorted(rows, key=lambda r: r["index"])])  # noqa: E731
    np.testing.assert_allclose(by_index(raw), want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(by_index(scored), sigmoid(want), atol=1e-4, rtol=0)
    assert [r["index"] for r in raw] == [int(i) for i in np.argsort(-want, kind="stable")]


async def test_v1_rerank_in_cohere_shape_with_top_n_and_documents(gw: Gateway) -> None:
    _, tei = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS})
    body = {"model": RERANKER, "query": QUERY, "documents": DOCS, "top_n": 3, "return_documents": True}
    status, out = await post(gw, "/v1/rerank", body)
    assert status == 200, out
    assert out["model"] == RERANKER and out["usage"]["total_tokens"] > len(DOCS) * 3
    assert [r["index"] for r in out["results"]] == [r["index"] for r in tei[:3]]
    assert [r["document"] for r in out["results"]] == [{"text": DOCS[r["index"]]} for r in out["results"]]
    np.testing.assert_allclose([r["relevance_score"] for r in out["results"]], [r["score"] for r in tei[:3]])
    _, bare = await post(gw, "/v1/rerank", {"query": QUERY, "documents": DOCS})  # the default reranker, all, no text
    assert len(bare["results"]) == len(DOCS) and all("document" not in r for r in bare["results"])


async def test_more_pairs_than_max_batch_size_are_split_across_jobs(
    rerank_endpoint: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    docs = [f"document {i} about cats and sleep" for i in range(10)]
    cfg = make_config(rerank_endpoint, str(tmp_path), "batching.max_batch_size=4")
    async with running_gateway(cfg) as gw:
        await connected(gw, worker)
        status, split = await post(gw, "/rerank", {"query": QUERY, "texts": docs, "raw_scores": True})
        assert status == 200, split
        assert await gw.metric("akidb_embedding_batch_size_count", model=RERANKER) == 3  # 4 + 4 + 2 pairs
    cfg = make_config(rerank_endpoint, str(tmp_path / "whole"))
    async with running_gateway(cfg) as gw:
        await connected(gw, worker)
        _, whole = await post(gw, "/rerank", {"query": QUERY, "texts": docs, "raw_scores": True})
    assert [r["index"] for r in split] == [r["index"] for r in whole]
    np.testing.assert_allclose([r["score"] for r in split], [r["score"] for r in whole], atol=1e-4)


LONG = "cats " * 600
BAD = [
    ("/rerank", {"texts": DOCS}, "query"),
    ("/rerank", {"query": "", "texts": DOCS}, "query"),
    ("/rerank", {"query": QUERY, "texts": []}, "texts"),
    ("/rerank", {"query": QUERY, "texts": ["fine", ""]}, "texts[1]"),
    ("/rerank", {"query": QUERY, "texts": ["a"] * 9}, "rerank.max_documents"),
    ("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": "yes"}, "raw_scores"),
    ("/rerank", {"query": QUERY, "texts": DOCS, "colour": 1}, "colour"),
    ("/rerank", {"query": QUERY, "texts": [LONG], "truncate": False}, "texts[0]"),
    ("/rerank", {"query": QUERY, "texts": DOCS, "model": "all-MiniLM-L6-v2"}, "is an embedding model"),
    ("/v1/rerank", {"query": QUERY, "documents": []}, "documents"),
    ("/v1/rerank", {"query": QUERY, "documents": [""]}, "documents[0]"),
    ("/v1/rerank", {"query": QUERY, "documents": ["a"] * 9}, "rerank.max_documents"),
    ("/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
    ("/v1/rerank", {"query": QUERY, "documents": DOCS, "model": "all-MiniLM-L6-v2"}, "is an embedding model"),
    ("/embed", {"texts": ["x"], "model": RERANKER}, "is a reranker"),
]


async def test_bad_input_is_a_4xx_naming_the_field(gw: Gateway, rerank_endpoint: str) -> None:
    embedder = await FakeWorker(rerank_endpoint, "embedder").start()  # an embedding model to name wrongly
    try:
        await gw.wait_for_workers(1)
        for path, body, named in BAD:
            status, out = await post(gw, path, body)
            assert status == 400, (path, body, out)
            message = out["error"]["message"]
            assert named in message, (path, body, message)
        status, out = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS, "model": "no-such-reranker"})
        assert status == 404 and "no-such-reranker" in out["error"]["message"]
        # Every refusal is counted, those of the body too; a made-up model name adds no series of its own.
        labels = {"model": RERANKER, "status": "invalid_input", "transport": "http"}
        assert await gw.metric("akidb_rerank_requests_total", **labels) == 11  # BAD's bodies that name no model
        unknown = {"model": "unknown", "status": "model_not_found", "transport": "http"}
        assert await gw.metric("akidb_rerank_requests_total", **unknown) == 1
    finally:
        await embedder.close()


async def test_a_full_queue_is_503_with_retry_after(
    rerank_endpoint: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    # Chunks of 4 pairs: the worker takes two at once (its capacity), the queue holds 8 more pairs, and the
    # fifth chunk of the same request finds it full, all before the worker can answer (one loop turn).
    settings = ("batching.max_batch_size=4", "batching.max_queue_texts=8", "rerank.max_documents=40")
    async with running_gateway(make_config(rerank_endpoint, str(tmp_path), *settings)) as gw:
        await connected(gw, worker)
        resp = await gw.client.post("/rerank", json={"query": QUERY, "texts": [f"d{i}" for i in range(40)]})
        assert resp.status == 503 and resp.headers["Retry-After"]
        assert (await resp.json())["error"]["code"] == "queue_full"
        status, _ = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS})  # the queue drains; all is well
        assert status == 200


async def test_grpc_rerank_is_the_rest_routes_twin(gw: Gateway) -> None:
    _, tei = await post(gw, "/rerank", {"query": QUERY, "texts": DOCS, "return_text": True})
    async with channel(gw) as ch:
        stub = pb_grpc.RerankServiceStub(ch)
        out = await stub.Rerank(pb.RerankRequest(query=QUERY, texts=DOCS, return_text=True))
        assert out.model == RERANKER and out.usage.total_tokens > 0
        assert [(r.index, r.text) for r in out.results] == [(r["index"], r["text"]) for r in tei]
        np.testing.assert_allclose([r.score for r in out.results], [r["score"] for r in tei], atol=1e-6)
        with pytest.raises(Exception) as refused:
            await stub.Rerank(pb.RerankRequest(query=QUERY, texts=["fine", ""]))
        assert refused.value.code().name == "INVALID_ARGUMENT" and "texts[1]" in refused.value.details()  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_kill_9_a_reranker_mid_load_and_every_request_succeeds(
    endpoint: str, backend: str, tmp_path: Path
) -> None:
    workers = [reranker_worker(endpoint, backend, f"rfo-{i}") for i in range(2)]
    try:
        cfg = make_config(endpoint, str(tmp_path), "server.request_timeout_s=120")
        async with running_gateway(cfg) as gw:
            await connected(gw, workers[0], count=2)
            texts = [f"{LONG[: 40 * (i + 1)]} document {i}" for i in range(32)]  # long pairs: jobs take a while

            async def one() -> int:
                resp = await gw.client.post("/rerank", json={"query": QUERY, "texts": texts})
                body = await resp.json()
                assert resp.status == 200, body
                assert sorted(r["index"] for r in body) == list(range(len(texts)))
                return resp.status

            requests = [asyncio.create_task(one()) for _ in range(30)]
            for _ in range(1000):
                held = [w for w in gw.workers.workers() if w.worker_id == "rfo-0" and w.inflight]
                if held:
                    break
                await asyncio.sleep(0.005)
            assert held, "the victim never got a job"
            workers[0].kill()
            assert await asyncio.gather(*requests) == [200] * 30
            assert await gw.metric("akidb_jobs_requeued_total") >= 1
    finally:
        for w in workers:
            w.stop()
