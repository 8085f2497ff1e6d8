"""Re-embedding on PostgreSQL: leased jobs, the new generation's vectors, and the swap (sans asyncio).

Tables (schema migration 2):

  akidb_jobs             one row per job: the new model, state, `last_key` (every document up to it has its
                         new vector), and the lease: `holder`, `lease_expires` (the database's clock) and `fence`
  akidb_reembed_vectors  the new generation: one vector per (job, document key), primary key on both, so a
                         document never has two however many gateways have held the job

Exactly one gateway runs a job: the one whose `fence` the row holds. Every write a holder makes (a page of
vectors with the cursor, a renewal, the swap, a failure) is an UPDATE of the job row that names its fence
first; it takes the row's lock, so a take-over (which moves the fence on) and a stale holder's write are
ordered, and the stale one matches no row and is refused (`LeaseLost`). A page's vectors commit with the
cursor in that transaction, so whoever takes over resumes after the last committed page.

Documents inserted during the job get higher keys (an identity column), so the walk reaches them. Two
inserts can commit in the other order than their keys, so a key below the cursor may appear after the
walk passed it: the swap, holding the table's exclusive lock, looks for any document without a new vector
and, if there is one, moves the cursor back before it and lets the job walk again (pages skip documents
that already have one).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from gateway.storage.engine import CANCELLED, DONE, FAILED, RUNNING, CollectionInfo, JobRecord, Pending
from gateway.storage.errors import JobConflict, JobNotFound, LeaseLost, VectorOnlyDocuments
from gateway.storage.lease import Lease, LeasePolicy
from gateway.storage.postgres.schema import bump_generation, create_vector_index, drop_vector_index, table_of

__all__ = ["CANCELLED", "DONE", "FAILED", "JobTable", "PgReembedding"]

COLUMNS = (
    "id, model, pooling, dimension, drop_vector_only, state, error, last_key, done, total, vector_only, dropped, "
    "resumed_from, created_at, finished_at"
)
NOW = "extract(epoch from clock_timestamp())"  # the database's clock: one for every gateway


def _record(row: tuple[Any, ...]) -> JobRecord:
    return JobRecord(*row)


class JobTable:
    """One collection's jobs in `akidb_jobs`, and this gateway's leases on them (blocking calls: run on a thread)."""

    def __init__(self, pool: ConnectionPool[Any], info: CollectionInfo, holder: str, policy: LeasePolicy) -> None:
        self.pool = pool
        self.info = info
        self.holder = holder
        self.policy = policy
        self.table = table_of(info.id)
        self.leases: dict[str, Lease] = {}  # jobs this gateway holds, by job id

    # -- reads --------------------------------------------------------------------------------
    def jobs(self) -> list[JobRecord]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM akidb_jobs WHERE collection_id = %s ORDER BY created_at", (self.info.id,)
            ).fetchall()
        return [_record(r) for r in rows]

    def job(self, job_id: str) -> JobRecord:
        with self.pool.connection() as conn:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM akidb_jobs WHERE id = %s AND collection_id = %s", (job_id, self.info.id)
            ).fetchone()
        if row is None:
            raise JobNotFound(f"collection {self.info.name!r} has no job {job_id!r}", param="job_id")
        return _record(row)

    def remaining(self, after_key: int) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {t} WHERE key > %s").format(t=self.table), (after_key,))
            found = row.fetchone()
        return int(found[0]) if found else 0

    def claimable(self) -> list[JobRecord]:
        """Running jobs of this collection whose lease lapsed: a gateway died holding them."""
        with self.pool.connection() as conn:
            rows = conn.execute(
                f"SELECT {COLUMNS}, lease_expires, {NOW} FROM akidb_jobs WHERE collection_id = %s AND state = %s",
                (self.info.id, RUNNING),
            ).fetchall()
        return [_record(r[:-2]) for r in rows if self.policy.claimable(r[5], r[-2], r[-1])]

    def pending(self, job_id: str, after_key: int, limit: int) -> Pending:
        """Up to `limit` documents above `after_key` without a new vector yet, in key order."""
        stmt = sql.SQL(
            "SELECT d.key, d.text FROM {t} AS d WHERE d.key > %s AND NOT EXISTS "
            "(SELECT 1 FROM akidb_reembed_vectors AS r WHERE r.job_id = %s AND r.key = d.key) ORDER BY d.key LIMIT %s"
        ).format(t=self.table)
        with self.pool.connection() as conn:
            rows = conn.execute(stmt, (after_key, job_id, limit)).fetchall()
        return Pending([int(r[0]) for r in rows], [r[1] for r in rows])

    # -- the lease ----------------------------------------------------------------------------
    def start(self, job_id: str, model: str, pooling: str | None, dimension: int, drop: bool) -> JobRecord:
        """Record a new running job held by this gateway: `JobConflict` if one runs (whichever gateway started
        it), `VectorOnlyDocuments` if documents without text exist and `drop` is not set."""
        with self.pool.connection() as conn:
            try:
                with conn.transaction():
                    running = conn.execute(
                        "SELECT id FROM akidb_jobs WHERE collection_id = %s AND state = %s", (self.info.id, RUNNING)
                    ).fetchone()
                    if running is not None:
                        raise self._conflict(running[0])
                    counts = conn.execute(
                        sql.SQL("SELECT count(*), count(*) FILTER (WHERE text IS NULL) FROM {t}").format(t=self.table)
                    ).fetchone()
                    total, vector_only = (int(counts[0]), int(counts[1])) if counts else (0, 0)
                    if vector_only and not drop:
                        raise VectorOnlyDocuments(
                            f"{vector_only} document(s) in collection {self.info.name!r} were stored with a vector "
                            "and no text, so they cannot be re-embedded; delete them, or send "
                            '"drop_vector_only": true to drop them at the swap',
                            param="drop_vector_only",
                        )
                    row = conn.execute(
                        "INSERT INTO akidb_jobs (id, collection_id, model, pooling, dimension, drop_vector_only, "
                        "state, total, vector_only, created_at, holder, lease_expires, fence) "
                        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {NOW} + %s, 1) RETURNING lease_expires",
                        (
                            job_id,
                            self.info.id,
                            model,
                            pooling,
                            dimension,
                            drop,
                            RUNNING,
                            total,
                            vector_only,
                            time.time(),
                            self.holder,
                            self.policy.lease_s,
                        ),
                    ).fetchone()
            except psycopg.errors.UniqueViolation:  # another gateway started one between our check and insert
                raise self._conflict("started by another gateway") from None
        assert row is not None
        self.leases[job_id] = Lease(self.holder, 1, float(row[0]))
        return self.job(job_id)

    def _conflict(self, running: str) -> JobConflict:
        return JobConflict(
            f"collection {self.info.name!r} is already being re-embedded (job {running}); "
            f"wait for it or cancel it with DELETE /collections/{self.info.id}/jobs/<job id>"
        )

    def claim(self, record: JobRecord) -> JobRecord:
        """Take over a job whose lease lapsed, moving its fence on; `LeaseLost` if another gateway was first."""
        with self.pool.connection() as conn:
            row = conn.execute(
                f"UPDATE akidb_jobs SET holder = %s, fence = fence + 1, lease_expires = {NOW} + %s, "
                "resumed_from = done WHERE id = %s AND state = %s AND "
                f"(lease_expires IS NULL OR lease_expires <= {NOW}) RETURNING fence, lease_expires",
                (self.holder, self.policy.lease_s, record.id, RUNNING),
            ).fetchone()
        if row is None:
            raise LeaseLost(f"job {record.id} was taken over by another gateway, or ended")
        self.leases[record.id] = Lease(self.holder, int(row[0]), float(row[1]))
        return self.job(record.id)

    def renew(self, job_id: str) -> None:
        """Extend this gateway's lease; `LeaseLost` if the job was taken over, cancelled or ended."""
        with self.pool.connection() as conn:
            row = conn.execute(
                f"UPDATE akidb_jobs SET lease_expires = {NOW} + %s WHERE id = %s AND state = %s AND fence = %s "
                "RETURNING lease_expires",
                (self.policy.lease_s, job_id, RUNNING, self._fence(job_id)),
            ).fetchone()
        if row is None:
            self.leases.pop(job_id, None)
            raise LeaseLost(f"job {job_id} is no longer this gateway's: taken over, cancelled or ended")
        self.leases[job_id] = dataclasses.replace(self.leases[job_id], expires_at=float(row[0]))

    def release(self, job_id: str) -> None:
        """Let the lease lapse now (a gateway stopping cleanly), so another gateway takes the job at once."""
        fence = self.leases.pop(job_id, None)
        if fence is None:
            return
        with self.pool.connection() as conn:
            conn.execute(
                f"UPDATE akidb_jobs SET lease_expires = {NOW} WHERE id = %s AND state = %s AND fence = %s",
                (job_id, RUNNING, fence.fence),
            )

    def _fence(self, job_id: str) -> int:
        lease = self.leases.get(job_id)
        if lease is None:
            raise LeaseLost(f"this gateway holds no lease on job {job_id}")
        return lease.fence

    def _hold(self, conn: Any, job_id: str, sets: str = "", params: tuple[Any, ...] = ()) -> None:
        """Lock the job row if this gateway still holds it (renewing the lease on the way); `LeaseLost` if not."""
        row = conn.execute(
            f"UPDATE akidb_jobs SET lease_expires = {NOW} + %s{sets} WHERE id = %s AND state = %s AND fence = %s "
            "RETURNING lease_expires",
            (self.policy.lease_s, *params, job_id, RUNNING, self._fence(job_id)),
        ).fetchone()
        if row is None:
            self.leases.pop(job_id, None)
            raise LeaseLost(f"job {job_id} is no longer this gateway's: taken over, cancelled or ended")

    # -- the holder's writes ------------------------------------------------------------------
    def store_batch(self, job_id: str, keys: list[int], vectors: np.ndarray, last_key: int) -> None:
        """Commit a page's new vectors with the cursor, if this gateway still holds the job."""
        with self.pool.connection() as conn, conn.transaction():
            self._hold(conn, job_id)
            added = 0
            if keys:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO akidb_reembed_vectors (job_id, key, embedding) VALUES (%s, %s, %s) "
                        "ON CONFLICT (job_id, key) DO NOTHING",
                        [(job_id, k, np.asarray(v, np.float32)) for k, v in zip(keys, vectors, strict=True)],
                    )
                    added = max(cur.rowcount, 0)
            conn.execute(
                "UPDATE akidb_jobs SET last_key = %s, done = done + %s WHERE id = %s", (last_key, added, job_id)
            )

    def finish(self, job_id: str, state: str, error: str | None) -> None:
        """End a running job (cancelled: by any gateway; failed: only by its holder), dropping its new vectors."""
        with self.pool.connection() as conn, conn.transaction():
            fenced = sql.SQL(" AND fence = %s") if state == FAILED else sql.SQL("")
            params: tuple[Any, ...] = (state, error, time.time(), job_id, RUNNING)
            if state == FAILED:
                params = (*params, self._fence(job_id))
            ended = conn.execute(
                sql.SQL(
                    "UPDATE akidb_jobs SET state = %s, error = %s, finished_at = %s, holder = NULL, "
                    "lease_expires = NULL WHERE id = %s AND state = %s{}"
                ).format(fenced),
                params,
            ).rowcount
            if ended:  # else it ended already, or (failed) another gateway holds it now: its vectors stay
                conn.execute("DELETE FROM akidb_reembed_vectors WHERE job_id = %s", (job_id,))
        self.leases.pop(job_id, None)

    def swap(self, record: JobRecord, pooling: str | None) -> CollectionInfo | None:
        """Make the new generation the collection's in one transaction; its new description, or None if
        documents lack a new vector (the job walks again from the cursor this moved back)."""
        info = dataclasses.replace(self.info, model=record.model, dimension=record.dimension, pooling=pooling)
        t = self.table
        with self.pool.connection() as conn, conn.transaction():
            # Rewriting the column and building the index grow with the collection: not bounded by the
            # per-statement timeout that protects requests (those waiting on the lock still are).
            conn.execute("SET LOCAL statement_timeout = 0")
            self._hold(conn, record.id)
            # Writers wait from here to the commit: no document can arrive between the check and the swap.
            conn.execute(sql.SQL("LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE").format(t=t))
            missing = conn.execute(
                sql.SQL(
                    "SELECT min(d.key) FROM {t} AS d WHERE (d.text IS NOT NULL OR NOT %s) AND NOT EXISTS "
                    "(SELECT 1 FROM akidb_reembed_vectors AS r WHERE r.job_id = %s AND r.key = d.key)"
                ).format(t=t),
                (record.drop_vector_only, record.id),
            ).fetchone()
            if missing is not None and missing[0] is not None:
                first = int(missing[0])
                conn.execute(
                    "UPDATE akidb_jobs SET last_key = least(last_key, %s) WHERE id = %s", (first - 1, record.id)
                )
                return None
            dropped = conn.execute(sql.SQL("DELETE FROM {t} WHERE text IS NULL").format(t=t)).rowcount
            drop_vector_index(conn, self.info.id)
            conn.execute(sql.SQL("ALTER TABLE {t} ALTER COLUMN embedding DROP NOT NULL").format(t=t))
            conn.execute(
                sql.SQL("ALTER TABLE {t} ALTER COLUMN embedding TYPE vector({d}) USING NULL").format(
                    t=t, d=sql.Literal(record.dimension)
                )
            )
            conn.execute(
                sql.SQL(
                    "UPDATE {t} AS d SET embedding = r.embedding, generated = true FROM akidb_reembed_vectors AS r "
                    "WHERE r.job_id = %s AND r.key = d.key"
                ).format(t=t),
                (record.id,),
            )
            conn.execute(sql.SQL("ALTER TABLE {t} ALTER COLUMN embedding SET NOT NULL").format(t=t))
            create_vector_index(conn, self.info.id, record.dimension, self.info.metric, self.info.index)
            conn.execute("UPDATE akidb_collections SET info = %s WHERE id = %s", (json.dumps(asdict(info)), info.id))
            conn.execute("DELETE FROM akidb_reembed_vectors WHERE job_id = %s", (record.id,))
            conn.execute(
                "UPDATE akidb_jobs SET state = %s, dropped = %s, total = done, finished_at = %s, holder = NULL, "
                "lease_expires = NULL WHERE id = %s",
                (DONE, max(dropped, 0), time.time(), record.id),
            )
            bump_generation(conn)
        self.leases.pop(record.id, None)
        return info


class PgReembedding:
    """`Reembedding` over a `JobTable`: each call on the engine's threads (`run`), leased to this gateway.

    The new generation lives in the database, so there is no staged index in memory (`staged` is None),
    and a job this gateway resumes is one it took over (`mark_resumed` claims it)."""

    leased = True

    def __init__(
        self,
        table: JobTable,
        run: Callable[..., Awaitable[Any]],
        swapped: Callable[[CollectionInfo], Awaitable[None]],
    ) -> None:
        self.table = table
        self._run = run
        self._swapped = swapped  # tells the catalogue, so this gateway serves the new description at once

    async def ensure_schema(self) -> None:
        return None  # the jobs tables are a migration, made at start

    async def jobs(self) -> list[JobRecord]:
        return await self._run(self.table.jobs)

    async def job(self, job_id: str) -> JobRecord:
        return await self._run(self.table.job, job_id)

    async def remaining(self, after_key: int) -> int:
        return await self._run(self.table.remaining, after_key)

    async def start(self, job_id: str, model: str, pooling: str | None, dimension: int, drop: bool) -> JobRecord:
        return await self._run(self.table.start, job_id, model, pooling, dimension, drop)

    async def claimable(self) -> list[JobRecord]:
        return await self._run(self.table.claimable)

    async def mark_resumed(self, record: JobRecord) -> JobRecord:
        return await self._run(self.table.claim, record)

    async def renew(self, job_id: str) -> None:
        await self._run(self.table.renew, job_id)

    async def release(self, job_id: str) -> None:
        await self._run(self.table.release, job_id)

    async def pending(self, job_id: str, after_key: int, limit: int) -> Pending:
        return await self._run(self.table.pending, job_id, after_key, limit)

    def new_staged(self, dimension: int) -> None:
        return None

    async def load_staged(self, record: JobRecord) -> None:
        return None

    async def store_batch(self, job_id: str, staged: Any, keys: list[int], vectors: np.ndarray, last_key: int) -> None:
        await self._run(self.table.store_batch, job_id, keys, vectors, last_key)

    async def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        await self._run(self.table.finish, job_id, state, error)

    async def swap(self, record: JobRecord, staged: Any, pooling: str | None) -> bool:
        info = await self._run(self.table.swap, record, pooling)
        if info is None:
            return False
        await self._swapped(info)
        return True
