"""Re-embedding jobs: every stored text through a new model into a new index, then one swap.

A job runs as one asyncio task per collection. It walks the documents in key order, embeds a page of
texts (IN_FLIGHT batches of `batching.max_batch_size`, through the same `EmbeddingService` and batcher as
every request, so it shares workers fairly) while the previous page commits with the job's progress.
Inserts made during the job get keys above every older one, so the walk reaches them (see
`gateway.storage.reembed`); when none is left the writer thread swaps the new index and model in.

Progress (`last_key`, `done`) commits with each page's vectors, so a gateway restart resumes after the
last committed page: at most the pages in flight at the stop are embedded twice. Embedding errors a
restarted or busy worker causes (5xx, or its model not announced yet) are retried with backoff for up to RETRY_FOR_S.

On an engine several gateways share (`Reembedding.leased`: PostgreSQL), a job runs on the gateway holding
its lease. That gateway renews it while the job runs (`LeasePolicy`, its clock local); every other gateway
looks for lapsed leases every `scan_every_s` and takes such a job over, resuming after its last committed
page. A gateway that lost the lease stops: its writes would be refused by the job's fence anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter

from gateway.errors import ApiError, ModelNotFound, ModelNotServed
from gateway.services.collections import CollectionService
from gateway.services.embedding import EmbeddingService, EmbedRequest
from gateway.storage.engine import CANCELLED, FAILED, RUNNING, CollectionStore, JobRecord, Pending
from gateway.storage.errors import (
    CollectionNotFound,
    EngineUnavailable,
    JobConflict,
    LeaseLost,
    StorageError,
    VectorOnlyDocuments,
)
from gateway.storage.lease import Lease, LeasePolicy
from shared.config import Config

log = structlog.get_logger("gateway.services.reembed")

IN_FLIGHT = 4  # batches of max_batch_size per page: enough to keep several workers busy
RETRY_FOR_S = 300.0  # how long a page's embedding is retried on 5xx (a worker restarting) before the job fails
EMBED_TIMEOUT_S = 300.0  # one page: IN_FLIGHT batches queued behind other clients' requests


@dataclass
class Running:
    """A job this process runs: its task, its new index, and what it did since it (re)started."""

    job_id: str
    staged: Any  # the engine's new index, opaque here
    resumed_from: int
    started: float = field(default_factory=time.monotonic)
    embedded: int = 0
    task: asyncio.Task[None] | None = None


class ReembedJobs:
    """Start, watch, cancel and resume re-embedding jobs for the collection service's collections."""

    def __init__(
        self, cfg: Config, collections: CollectionService, embedding: EmbeddingService, registry: CollectorRegistry
    ) -> None:
        self.page_size = cfg.batching.max_batch_size * IN_FLIGHT
        self.collections = collections
        self.embedding = embedding
        self.running: dict[str, Running] = {}  # by collection id
        self.lease = LeasePolicy(cfg.storage.postgres.job_lease_s)
        self._adopting: asyncio.Task[None] | None = None
        self.texts = Counter(
            "akidb_reembed_texts_total",
            "Texts re-embedding jobs embedded in this process (a page redone after a restart counts again)",
            registry=registry,
        )

    # -- lifecycle ----------------------------------------------------------------------------
    async def resume(self) -> None:
        """Take up every job a previous gateway left running; on a full disk, once space returns."""
        if self.collections.catalogue.engine != "embedded":
            # Shared by several gateways: a job is taken up once its lease lapses, by whichever gateway
            # looks first (this one included, after a restart).
            self._adopting = asyncio.create_task(self._adopt_lapsed(), name="reembed-adopt")
            return
        for col in self.collections.opened():
            # Reading needs no job tables (a gateway started on a full disk writes nothing to read).
            for record in await col.reembedding().jobs():
                if record.state == RUNNING:
                    name = f"re-embedding job {record.id} of collection {col.info.name!r}"
                    await self.collections.deferred.attempt(name, functools.partial(self._resume, col, record))

    async def _resume(self, col: CollectionStore, record: JobRecord) -> None:
        """Take the job up here (claiming it where leased: `LeaseLost` if another gateway was first)."""
        if col.closed:
            raise CollectionNotFound(f"collection {col.info.name!r} was deleted", param="collection")
        jobs = col.reembedding()
        record = await jobs.mark_resumed(record)
        staged = await jobs.load_staged(record)
        log.info("reembed_resumed", collection=col.info.name, job=record.id, done=record.done)
        self._launch(col, record, Running(record.id, staged, resumed_from=record.done))

    async def _adopt_lapsed(self) -> None:
        """Take over, every `scan_every_s`, the running jobs whose gateway stopped renewing their lease."""
        while True:
            await asyncio.sleep(self.lease.scan_every_s)
            for col in self.collections.opened():
                if col.closed or col.info.id in self.running:
                    continue
                try:
                    for record in await col.reembedding().claimable():
                        await self._resume(col, record)
                except LeaseLost:
                    continue  # another gateway claimed it first
                except StorageError as exc:  # the database away, the collection deleted: next scan
                    log.warning("reembed_adopt_failed", collection=col.info.name, error=exc.message)

    async def close(self) -> None:
        """Stop every job where it is; the next start (or, leased, another gateway at once) resumes them."""
        if self._adopting is not None:
            self._adopting.cancel()
            await asyncio.gather(self._adopting, return_exceptions=True)
        held = [(r, self.collections.catalogue.find(cid)) for cid, r in self.running.items()]
        tasks = [r.task for r in self.running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for running, col in held:
            if col is not None and not col.closed:
                with contextlib.suppress(StorageError):
                    await col.reembedding().release(running.job_id)

    # -- API ----------------------------------------------------------------------------------
    async def start(self, ref: str, model: str, pooling: str | None, drop_vector_only: bool) -> dict[str, Any]:
        """Start re-embedding a collection with `model`; its status."""
        col = self.collections.get(ref)
        jobs = col.reembedding()  # 501 first where the engine has no jobs, whatever the workers
        try:
            info = self.embedding.resolve_model(model)  # 503 when no worker for it is connected right now
        except ModelNotFound as exc:
            # Here a 404 would say the collection is missing (and the collection's route answers 404 for that).
            raise ModelNotServed(exc.message, param="model") from None
        if col.info.id in self.running:
            raise JobConflict(
                f"collection {col.info.name!r} is already being re-embedded (job {self.running[col.info.id].job_id})"
            )
        await jobs.ensure_schema()
        job_id = "job_" + secrets.token_hex(8)
        record = await jobs.start(job_id, info.name, pooling or info.pooling, info.dimension, drop_vector_only)
        staged = jobs.new_staged(info.dimension)
        self._launch(col, record, Running(job_id, staged, resumed_from=0))
        log.info("reembed_started", collection=col.info.name, job=job_id, model=info.name, documents=record.total)
        return await self.status(col.info.id, job_id)

    async def status(self, ref: str, job_id: str) -> dict[str, Any]:
        """A job's state and progress."""
        col = self.collections.get(ref)
        jobs = col.reembedding()
        record = await jobs.job(job_id)
        running = self.running.get(col.info.id)
        if running is not None and running.job_id == record.id:
            # Until its task ends: the swap commits before the new index serves, and "done" means both.
            record = dataclasses.replace(record, state=RUNNING, finished_at=None)
        out = {
            "id": record.id,
            "collection": col.info.id,
            "model": record.model,
            "pooling": record.pooling,
            "dimension": record.dimension,
            "state": record.state,
            "error": record.error,
            "done": record.done,
            "total": record.total,
            "texts_per_s": None,
            "eta_s": None,
            "drop_vector_only": record.drop_vector_only,
            "vector_only": record.vector_only,
            "dropped": record.dropped,
            "resumed_from": record.resumed_from,
            "created_at": record.created_at,
            "finished_at": record.finished_at,
        }
        if record.state == RUNNING and running is not None and running.job_id == record.id:
            left = await jobs.remaining(record.last_key)
            rate = running.embedded / max(time.monotonic() - running.started, 1e-6)
            out.update(
                total=record.done + left,
                texts_per_s=round(rate, 1),
                eta_s=round(left / rate, 1) if rate > 0 else None,
            )
        elif record.finished_at is not None:
            out.update(texts_per_s=round(record.done / max(record.finished_at - record.created_at, 1e-6), 1), eta_s=0.0)
        return out

    async def cancel(self, ref: str, job_id: str) -> dict[str, Any]:
        """Cancel a running job: its new vectors go and the collection stays as it was."""
        col = self.collections.get(ref)
        jobs = col.reembedding()
        record = await jobs.job(job_id)
        if record.state != RUNNING:
            raise JobConflict(f"job {job_id} is {record.state} already; only a running job can be cancelled")
        running = self.running.get(col.info.id)
        if running is not None and running.job_id == job_id and running.task is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        # After a swap that was already under way this changes nothing: the status then says done.
        await jobs.finish(job_id, CANCELLED)
        log.info("reembed_cancelled", collection=col.info.name, job=job_id)
        return await self.status(col.info.id, job_id)

    # -- the job ------------------------------------------------------------------------------
    def _launch(self, col: CollectionStore, record: JobRecord, running: Running) -> None:
        self.running[col.info.id] = running
        running.task = asyncio.create_task(self._run(col, record, running), name=f"reembed-{record.id}")

    async def _run(self, col: CollectionStore, record: JobRecord, running: Running) -> None:
        try:
            if col.reembedding().leased:
                await self._walk_leased(col, record, running)
            else:
                await self._walk(col, record, running)
        except asyncio.CancelledError:
            raise
        except LeaseLost as exc:  # taken over, cancelled or ended elsewhere: the job is not this gateway's now
            log.info("reembed_lease_lost", collection=col.info.name, job=record.id, reason=exc.message)
        except CollectionNotFound:
            log.info("reembed_stopped_collection_deleted", job=record.id)
        except Exception as exc:
            if col.closed:  # deleted under the job: its reads fail on a closed database
                log.info("reembed_stopped_collection_deleted", job=record.id)
                return
            error = exc.message if isinstance(exc, ApiError | StorageError) else f"{type(exc).__name__}: {exc}"
            log.warning("reembed_failed", collection=col.info.name, job=record.id, error=error)
            with contextlib.suppress(Exception):
                await col.reembedding().finish(record.id, FAILED, error)
        finally:
            if self.running.get(col.info.id) is running:
                del self.running[col.info.id]

    async def _walk_leased(self, col: CollectionStore, record: JobRecord, running: Running) -> None:
        """The walk, with the lease renewed beside it; whichever ends first (`LeaseLost`) ends the other."""
        walk = asyncio.create_task(self._walk(col, record, running))
        renew = asyncio.create_task(self._keep_lease(col, record.id))
        try:
            await asyncio.wait({walk, renew}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (walk, renew):
                task.cancel()
            await asyncio.gather(walk, renew, return_exceptions=True)
        if walk.done() and not walk.cancelled() and walk.exception() is None:
            return
        first = walk if walk.done() and not walk.cancelled() else renew
        if not first.cancelled() and (exc := first.exception()) is not None:
            raise exc

    async def _keep_lease(self, col: CollectionStore, job_id: str) -> None:
        """Renew the job's lease on the policy's cadence; `LeaseLost` once it is gone or lapsed unrenewed."""
        jobs = col.reembedding()
        loop = asyncio.get_running_loop()
        lease = Lease("", 0, self.lease.expiry(loop.time()))  # granted (or claimed) just before the walk began
        while True:
            await asyncio.sleep(
                max(0.0, lease.expires_at - self.lease.lease_s + self.lease.renew_every_s - loop.time())
            )
            if not self.lease.renew_due(lease, loop.time()):
                continue
            asked = loop.time()
            try:
                await jobs.renew(job_id)
            except EngineUnavailable as exc:  # a blip: retry until the lease would have lapsed
                if self.lease.must_stop(lease, loop.time()):
                    raise LeaseLost(f"job {job_id}'s lease lapsed while the database was unreachable") from exc
                log.warning("reembed_lease_renewal_retried", job=job_id, error=exc.message)
                await asyncio.sleep(min(1.0, self.lease.renew_every_s / 4))
                continue
            lease = Lease("", 0, self.lease.expiry(asked))

    async def _walk(self, col: CollectionStore, record: JobRecord, running: Running) -> None:
        """Embed pages in key order, the next page embedding while the last one commits; then swap."""
        jobs = col.reembedding()
        after = record.last_key
        page = await jobs.pending(record.id, after, self.page_size)
        embedding = self._embed_page(col, record, page)
        while True:
            if not page.keys:
                done = dataclasses.replace(record, last_key=after)
                if await jobs.swap(done, running.staged, record.pooling):
                    await self.collections.count_documents(col)
                    return
                # Arrived meanwhile, or (several gateways writing) committed below the cursor, which the
                # swap moved back for them.
                after = min(after, (await jobs.job(record.id)).last_key)
                page = await jobs.pending(record.id, after, self.page_size)
                embedding = self._embed_page(col, record, page)
                continue
            try:
                keys, vectors = await embedding
                following = await jobs.pending(record.id, page.keys[-1], self.page_size)
            except BaseException:
                embedding.cancel()
                raise
            next_embedding = self._embed_page(col, record, following)
            try:
                await jobs.store_batch(record.id, running.staged, keys, vectors, page.keys[-1])
            except BaseException:
                next_embedding.cancel()
                raise
            after, page, embedding = page.keys[-1], following, next_embedding

    def _embed_page(
        self, col: CollectionStore, record: JobRecord, page: Pending
    ) -> asyncio.Task[tuple[list[int], np.ndarray]]:
        return asyncio.create_task(self._embed(col, record, page))

    async def _embed(self, col: CollectionStore, record: JobRecord, page: Pending) -> tuple[list[int], np.ndarray]:
        """The page's keys with text and their new vectors (unit length for cosine)."""
        keys = [k for k, t in zip(page.keys, page.texts, strict=True) if t is not None]
        texts = tuple(t for t in page.texts if t is not None)
        if len(keys) < len(page.keys) and not record.drop_vector_only:
            raise VectorOnlyDocuments(
                f"{len(page.keys) - len(keys)} document(s) stored with a vector and no text were inserted during "
                'the job; they cannot be re-embedded. Start again with "drop_vector_only": true to drop them'
            )
        if not texts:
            return keys, np.empty((0, record.dimension), dtype=np.float32)
        req = EmbedRequest(
            texts, model=record.model, pooling=record.pooling, normalize=col.info.normalize, input_type="document"
        )
        vectors = (await self._retrying(req)).astype(np.float32, copy=False)
        self.texts.inc(len(texts))
        if col.info.metric == "cosine":
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return keys, np.ascontiguousarray(vectors, dtype=np.float32)

    async def _retrying(self, req: EmbedRequest) -> np.ndarray:
        """Embed, retrying what a restarting or overloaded worker causes (5xx, its model gone) with backoff."""
        loop = asyncio.get_running_loop()
        give_up, delay = loop.time() + RETRY_FOR_S, 0.5
        while True:
            try:
                out = await self.embedding.embed(req, transport="reembed", timeout_s=EMBED_TIMEOUT_S)
                return out.vectors
            except ApiError as exc:
                # A model no worker announces (yet): after a gateway restart the workers reconnect later.
                retriable = exc.http_status >= 500 or isinstance(exc, ModelNotFound)
                if not retriable or loop.time() + delay > give_up:
                    raise
                log.warning("reembed_embedding_retried", model=req.model, error=exc.message, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
