"""Every status /openapi.json lists for a route is produced here, by a request that should produce it.

The table below must hold exactly the document's (method, path, status) triples: a status the document
lists that no request produces fails the test, and so does a produced status it does not list. Most run
against the real gateway with a real worker; 502/503/504 need a worker that fails, none, or a slow one
(fake workers that speak the real protocol: these are gateway-level outcomes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.api.openapi import document
from shared.protocol import Error, Job, Message
from tests.support.fake_worker import RERANKER, FakeWorker
from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import WorkerProcess, free_port

LIMIT = 65536  # server.max_body_bytes here, so a 413 costs little to send
BIG = {"texts": ["a" * (LIMIT + 1)]}
PLAIN = "text/plain"  # a body sent with this Content-Type: 415
SNAPSHOT = "snapshot of c"  # a body that is a fresh snapshot file of collection c (application/octet-stream)
RESTORE_LIMIT = 262144  # storage.max_restore_bytes here
ZEROS = "zeros"  # RESTORE_LIMIT + 1 zero bytes (application/octet-stream): 413
SNAP = "{snap}"  # in a URL: the name of a fresh snapshot of c
MINILM = "all-MiniLM-L6-v2"

# (method, path, status) -> (setup, method, url, body). Setups: real (the real worker), none (no worker),
# failing (a worker that fails every job), slow (a worker slower than server.request_timeout_s).
EMBED, OAI, DOCS, SEARCH = "/embed", "/v1/embeddings", "/collections/c/documents", "/collections/c/search"
CASES: dict[tuple[str, str, int], tuple[str, str, str, Any]] = {
    ("get", "/health", 200): ("real", "get", "/health", None),
    ("get", "/ready", 200): ("real", "get", "/ready", None),
    ("get", "/ready", 503): ("none", "get", "/ready", None),
    ("get", "/models", 200): ("real", "get", "/models", None),
    ("get", "/metrics", 200): ("real", "get", "/metrics", None),
    ("get", "/openapi.json", 200): ("real", "get", "/openapi.json", None),
    ("get", "/docs", 200): ("real", "get", "/docs", None),
    ("get", "/docs/{file}", 200): ("real", "get", "/docs/swagger-ui.css", None),
    ("get", "/docs/{file}", 404): ("real", "get", "/docs/nope.js", None),
    ("get", "/workers", 200): ("real", "get", "/workers", None),
    ("get", "/ui", 200): ("real", "get", "/ui", None),
    ("get", "/ui/", 200): ("real", "get", "/ui/", None),
    ("get", "/ui/static/{file}", 200): ("real", "get", "/ui/static/app.js", None),
    ("get", "/ui/static/{file}", 404): ("real", "get", "/ui/static/nope.js", None),
    ("get", "/v1/models", 200): ("real", "get", "/v1/models", None),
    ("get", "/v1/models/{model}", 200): ("real", "get", f"/v1/models/{MINILM}", None),
    ("get", "/v1/models/{model}", 404): ("real", "get", "/v1/models/nope", None),
    ("post", "/collections", 201): ("real", "post", "/collections", {"name": "new"}),
    ("post", "/collections", 400): ("real", "post", "/collections", {"name": 5}),
    ("post", "/collections", 404): ("real", "post", "/collections", {"name": "x", "model": "nope", "dimension": 3}),
    ("post", "/collections", 409): ("real", "post", "/collections", {"name": "c"}),
    ("post", "/collections", 413): ("real", "post", "/collections", {"name": "a" * LIMIT}),
    ("post", "/collections", 415): ("real", "post", "/collections", PLAIN),
    ("post", "/collections", 503): ("none", "post", "/collections", {"name": "x"}),
    ("get", "/collections", 200): ("real", "get", "/collections", None),
    ("get", "/collections/{collection}", 200): ("real", "get", "/collections/c", None),
    ("get", "/collections/{collection}", 404): ("real", "get", "/collections/nope", None),
    ("get", "/collections/{collection}/documents", 200): ("real", "get", DOCS, None),
    ("get", "/collections/{collection}/documents", 400): ("real", "get", DOCS + "?limit=0", None),
    ("get", "/collections/{collection}/documents", 404): ("real", "get", "/collections/nope/documents", None),
    ("get", "/collections/{collection}/documents/{doc_id}", 200): ("real", "get", DOCS + "/d", None),
    ("get", "/collections/{collection}/documents/{doc_id}", 400): (
        "real", "get", DOCS + "/d?include_vector=maybe", None),
    ("get", "/collections/{collection}/documents/{doc_id}", 404): ("real", "get", DOCS + "/missing", None),
    ("delete", "/collections/{collection}/documents/{doc_id}", 200): ("real", "delete", DOCS + "/d2", None),
    ("delete", "/collections/{collection}/documents/{doc_id}", 404): ("real", "delete", DOCS + "/missing", None),
    ("delete", "/collections/{collection}", 200): ("real", "delete", "/collections/gone", None),
    ("post", "/collections/{collection}/snapshots", 201): ("real", "post", "/collections/c/snapshots", None),
    ("post", "/collections/{collection}/snapshots", 404): ("real", "post", "/collections/nope/snapshots", None),
    ("get", "/collections/{collection}/snapshots", 200): ("real", "get", "/collections/c/snapshots", None),
    ("get", "/collections/{collection}/snapshots", 404): ("real", "get", "/collections/nope/snapshots", None),
    ("get", "/collections/{collection}/snapshots/{name}", 200): (
        "real", "get", f"/collections/c/snapshots/{SNAP}", None),
    ("get", "/collections/{collection}/snapshots/{name}", 404): ("real", "get", "/collections/c/snapshots/nope", None),
    ("delete", "/collections/{collection}/snapshots/{name}", 200): (
        "real", "delete", f"/collections/c/snapshots/{SNAP}", None),
    ("delete", "/collections/{collection}/snapshots/{name}", 404): (
        "real", "delete", "/collections/c/snapshots/nope", None),
    ("post", "/collections/restore", 201): ("real", "post", "/collections/restore?name=back", SNAPSHOT),
    ("post", "/collections/restore", 400): ("real", "post", "/collections/restore", SNAPSHOT),
    ("post", "/collections/restore", 409): ("real", "post", "/collections/restore?name=c", SNAPSHOT),
    ("post", "/collections/restore", 413): ("real", "post", "/collections/restore?name=big", ZEROS),
    ("post", "/collections/restore", 415): ("real", "post", "/collections/restore?name=x", PLAIN),
    ("delete", "/collections/{collection}", 404): ("real", "delete", "/collections/nope", None),
}  # fmt: skip
for _path, _ok, _good, _bad, _unknown in [
    (EMBED, 200, {"texts": ["a"]}, {"texts": []}, {"texts": ["a"], "model": "nope"}),
    (OAI, 200, {"input": "a", "model": MINILM}, {"input": []}, {"input": "a", "model": "nope"}),
    (DOCS, 201, {"text": "a"}, {"text": 5}, None),
    (SEARCH, 200, {"query": "a"}, {}, None),
    (
        "/rerank",
        200,
        {"query": "a", "texts": ["b"]},
        {"query": "a", "texts": []},
        {"query": "a", "texts": ["b"], "model": "nope"},
    ),
    (
        "/v1/rerank",
        200,
        {"query": "a", "documents": ["b"]},
        {"query": "a", "documents": []},
        {"query": "a", "documents": ["b"], "model": "nope"},
    ),
]:
    _other = _path.replace("/c/", "/nope/")
    CASES.update({
        ("post", _path.replace("/c/", "/{collection}/"), status): case
        for status, case in [
            (_ok, ("real", "post", _path, _good)),
            (400, ("real", "post", _path, _bad)),
            (404, ("real", "post", _other, _good) if _unknown is None else ("real", "post", _path, _unknown)),
            (413, ("real", "post", _path, BIG)),
            (415, ("real", "post", _path, PLAIN)),
            (502, ("failing", "post", _path, _good)),
            (503, ("none", "post", _path, _good)),
            (504, ("slow", "post", _path, _good)),
        ]
    })  # fmt: skip
# A `dimensions` over the model's: the model's fact, not the body's shape.
CASES[("post", OAI, 400)] = ("real", "post", OAI, {"input": "a", "model": MINILM, "dimensions": 65536})
# A vector of another length than the collection's.
CASES[("post", "/collections/{collection}/documents", 400)] = ("real", "post", DOCS, {"vector": [1.0, 2.0]})
CASES[("post", "/collections/{collection}/search", 400)] = ("real", "post", SEARCH, {"vector": [1.0, 2.0]})
# Re-embedding: {job} is the job the setup started (real: finished; slow: stuck on the slow worker).
REEMBED, JOB = "/collections/c/reembed", "/collections/c/jobs/{job}"
CASES.update({
    ("post", "/collections/{collection}/reembed", 202): ("real", "post", REEMBED, {"model": MINILM}),
    ("post", "/collections/{collection}/reembed", 400): ("real", "post", REEMBED, {"model": 5}),
    ("post", "/collections/{collection}/reembed", 404): (
        "real", "post", "/collections/nope/reembed", {"model": MINILM}),
    ("post", "/collections/{collection}/reembed", 409): ("slow", "post", REEMBED, {"model": MINILM}),
    ("post", "/collections/{collection}/reembed", 413): ("real", "post", REEMBED, BIG),
    ("post", "/collections/{collection}/reembed", 415): ("real", "post", REEMBED, PLAIN),
    ("post", "/collections/{collection}/reembed", 503): ("none", "post", REEMBED, {"model": MINILM}),
    ("get", "/collections/{collection}/jobs/{job_id}", 200): ("real", "get", JOB, None),
    ("get", "/collections/{collection}/jobs/{job_id}", 404): ("real", "get", "/collections/c/jobs/job_nope", None),
    ("delete", "/collections/{collection}/jobs/{job_id}", 409): ("real", "delete", JOB, None),
    ("delete", "/collections/{collection}/jobs/{job_id}", 404): ("real", "delete", "/collections/c/jobs/nope", None),
    ("delete", "/collections/{collection}/jobs/{job_id}", 200): ("slow", "delete", JOB, None),
})  # fmt: skip
JOBS: dict[str, str] = {}  # setup kind -> the re-embedding job it started


class FailingWorker(FakeWorker):
    """Fails every job as a crashed engine would report it (and, unlike a real one, stays to fail the next)."""

    def reply(self, job: Job) -> Message | None:
        return Error(job.job_id, "internal", "the engine failed")


def documented() -> set[tuple[str, str, int]]:
    doc = document("test")
    return {(m, p, int(s)) for p, ops in doc["paths"].items() for m, op in ops.items() for s in op["responses"]}


def test_the_table_holds_exactly_the_documented_statuses() -> None:
    assert set(CASES) == documented()


@contextlib.asynccontextmanager
async def setup(kind: str, zmq_endpoint: str, data_dir: Path) -> AsyncIterator[Gateway]:
    """A gateway for one kind of case, with collection c (documents d and d2) and collection gone."""
    endpoint = zmq_endpoint if kind == "real" else f"tcp://127.0.0.1:{free_port()}"
    overrides = [f"server.max_body_bytes={LIMIT}", f"storage.max_restore_bytes={RESTORE_LIMIT}"]
    if kind == "slow":
        overrides.append("server.request_timeout_s=0.5")
    async with running_gateway(make_config(endpoint, str(data_dir / kind), *overrides)) as gw:
        workers: list[FakeWorker] = []
        if kind == "failing":
            workers = [FailingWorker(endpoint), FailingWorker(endpoint, "failing-reranker", model=RERANKER)]
        elif kind == "slow":
            workers = [FakeWorker(endpoint, delay=5), FakeWorker(endpoint, "slow-reranker", delay=5, model=RERANKER)]
        elif kind == "real":  # the real embedder, and a reranker that speaks the real protocol
            workers = [FakeWorker(endpoint, "reranker", model=RERANKER)]
        for worker in workers:
            await worker.start()
        try:
            if kind != "none":
                await gw.wait_for_workers(1)
                await gw.wait_for_workers(1, model=RERANKER.name)
            await gw.client.post(
                "/collections", json={"name": "c", "dimension": 384} if kind == "none" else {"name": "c"}
            )
            if kind == "real":
                await gw.client.post("/collections", json={"name": "gone"})
                resp = await gw.client.post(
                    DOCS, json={"documents": [{"id": "d", "text": "x"}, {"id": "d2", "text": "y"}]}
                )
                assert resp.status == 201, await resp.text()
            if kind == "slow":  # a document with text (and a vector: no embedding) for the job to embed
                dimension = (await (await gw.client.get("/collections/c")).json())["dimension"]
                resp = await gw.client.post(DOCS, json={"id": "t", "text": "x", "vector": [1.0] * dimension})
                assert resp.status == 201, await resp.text()
            if kind in ("real", "slow"):
                resp = await gw.client.post("/collections/c/reembed", json={"model": MINILM, "pooling": "cls"})
                assert resp.status == 202, await resp.text()
                JOBS[kind] = (await resp.json())["id"]
            if kind == "real":  # finished before the cases run: its cancel is a 409
                for _ in range(600):
                    async with gw.client.get(JOB.format(job=JOBS[kind])) as resp:
                        if (await resp.json())["state"] != "running":
                            break
                    await asyncio.sleep(0.05)
            yield gw
        finally:
            for worker in workers:
                await worker.close()


async def fresh_snapshot(gw: Gateway) -> str:
    async with gw.client.post("/collections/c/snapshots") as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["name"])


async def send(gw: Gateway, method: str, url: str, body: Any) -> int:
    kwargs: dict[str, Any] = {}
    if SNAP in url:
        url = url.replace(SNAP, await fresh_snapshot(gw))
    if body == SNAPSHOT:
        async with gw.client.get(f"/collections/c/snapshots/{await fresh_snapshot(gw)}") as resp:
            kwargs = {"data": await resp.read(), "headers": {"Content-Type": "application/octet-stream"}}
    elif body == ZEROS:
        kwargs = {"data": bytes(RESTORE_LIMIT + 1), "headers": {"Content-Type": "application/octet-stream"}}
    elif body == PLAIN:
        kwargs = {"data": b"{}", "headers": {"Content-Type": PLAIN}}
    elif body is not None:
        kwargs = {"json": body}
    async with getattr(gw.client, method)(url, **kwargs) as resp:
        await resp.read()
        return int(resp.status)


@pytest.mark.parametrize("kind", ["real", "none", "failing", "slow"])
async def test_each_documented_status_is_produced(
    kind: str, zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path
) -> None:
    cases = [(key, case) for key, case in CASES.items() if case[0] == kind]
    async with setup(kind, zmq_endpoint, tmp_path) as gw:
        for (method, path, status), (_, verb, url, body) in cases:
            url = url.format(job=JOBS.get(kind, ""), snap=SNAP)  # {snap} stays for `send` to fill
            assert await send(gw, verb, url, body) == status, (method, path, url, body)
