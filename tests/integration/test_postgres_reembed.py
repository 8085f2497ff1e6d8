"""The PostgreSQL engine's re-embedding jobs at the storage level: two gateways' job tables on one real
database, the lease's fence refusing a stale holder, one vector per document in the new generation, and
the swap sending the job back for a document committed below its cursor. No worker: vectors are given.

PostgreSQL only: the embedded engine has one gateway per data directory, so nothing there is leased
(its jobs are tested through the API in test_reembed.py, on both engines)."""

from __future__ import annotations

import asyncio

import numpy as np
import psycopg
import pytest

from gateway.storage.engine import DONE, FAILED, RUNNING, Catalogue
from gateway.storage.errors import JobConflict, LeaseLost
from gateway.storage.lease import LeasePolicy
from gateway.storage.postgres.engine import PgStore
from gateway.storage.postgres.reembed import JobTable
from tests.integration.test_engine_congruence import describe, doc

NEW_DIM = 4


# PostgreSQL only, by name: see the docstring.
pytestmark = pytest.mark.parametrize("engine", ["postgres"], indirect=True)


@pytest.fixture
def dsn(engine_settings: tuple[str, ...]) -> str:
    """The test's database (the `catalogue` fixture's)."""
    return dict(s.split("=", 1) for s in engine_settings)["storage.postgres.dsn"]


def gateway(store: PgStore, name: str, lease_s: float = 30.0) -> JobTable:
    """Another gateway's view of the store's jobs: its own holder id and leases, the same database."""
    return JobTable(store.docs.pool, store.info, name, LeasePolicy(lease_s))


def lapse(dsn: str, job_id: str) -> None:
    """As if the holder died a lease ago."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE akidb_jobs SET lease_expires = 0 WHERE id = %s", (job_id,))


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, NEW_DIM)).astype(np.float32)


async def stored(catalogue: Catalogue, n: int) -> PgStore:
    store = await catalogue.create(describe("c"))
    await store.upsert([doc(f"d{i}", i, f"text {i}") for i in range(n)])
    assert isinstance(store, PgStore)
    return store


async def test_a_stale_holder_is_fenced_off_after_a_take_over(catalogue: Catalogue, dsn: str) -> None:
    store = await stored(catalogue, 6)
    a, b = gateway(store, "gw-a"), gateway(store, "gw-b")
    record = await asyncio.to_thread(a.start, "job_1", "m2", None, NEW_DIM, False)
    with pytest.raises(JobConflict):  # one running job per collection, whichever gateway asks
        await asyncio.to_thread(b.start, "job_2", "m2", None, NEW_DIM, False)
    pending = await asyncio.to_thread(a.pending, "job_1", 0, 3)
    await asyncio.to_thread(a.store_batch, "job_1", pending.keys, vectors(3), pending.keys[-1])

    assert await asyncio.to_thread(b.claimable) == []  # a's lease runs
    with pytest.raises(LeaseLost):
        await asyncio.to_thread(b.claim, record)
    lapse(dsn, "job_1")
    [lapsed] = await asyncio.to_thread(b.claimable)
    taken = await asyncio.to_thread(b.claim, lapsed)
    assert (taken.resumed_from, taken.last_key) == (3, pending.keys[-1])
    with pytest.raises(LeaseLost):  # a second claimant loses the race
        await asyncio.to_thread(a.claim, lapsed)

    # The old holder, back from a pause: every write it tries is refused, and nothing of it is stored.
    rest = await asyncio.to_thread(b.pending, "job_1", taken.last_key, 10)
    a_fence = a.leases["job_1"]
    for write in (
        lambda: a.store_batch("job_1", rest.keys, vectors(3, seed=9), rest.keys[-1]),
        lambda: a.renew("job_1"),
        lambda: a.swap(taken, None),
    ):
        a.leases["job_1"] = a_fence  # each time as a holder that has not noticed yet
        with pytest.raises(LeaseLost):
            await asyncio.to_thread(write)
    a.leases["job_1"] = a_fence
    await asyncio.to_thread(a.finish, "job_1", FAILED, "stale")  # a failure it reports changes nothing
    after = await asyncio.to_thread(b.job, "job_1")
    assert (after.state, after.done, after.error) == (RUNNING, 3, None)

    # The new holder stores the rest; a page stored twice adds nothing to the new generation.
    await asyncio.to_thread(b.store_batch, "job_1", rest.keys, vectors(3, seed=1), rest.keys[-1])
    await asyncio.to_thread(b.store_batch, "job_1", rest.keys, vectors(3, seed=2), rest.keys[-1])
    assert (await asyncio.to_thread(b.job, "job_1")).done == 6
    info = await asyncio.to_thread(b.swap, await asyncio.to_thread(b.job, "job_1"), None)
    assert info is not None and (info.model, info.dimension) == ("m2", NEW_DIM)
    final = await asyncio.to_thread(b.job, "job_1")
    assert (final.state, final.done, final.total) == (DONE, 6, 6)
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f'SELECT count(*), min(vector_dims(embedding)), bool_and(generated) FROM "akidb_docs_{store.info.id}"'
        ).fetchone()
        left = conn.execute("SELECT count(*) FROM akidb_reembed_vectors").fetchone()
    assert row == (6, NEW_DIM, True) and left == (0,)


async def test_a_document_committed_below_the_cursor_sends_the_job_back(catalogue: Catalogue, dsn: str) -> None:
    store = await stored(catalogue, 4)
    a = gateway(store, "gw-a")
    record = await asyncio.to_thread(a.start, "job_1", "m2", None, NEW_DIM, False)
    pending = await asyncio.to_thread(a.pending, "job_1", 0, 10)
    await asyncio.to_thread(a.store_batch, "job_1", pending.keys, vectors(4), pending.keys[-1])
    # Another gateway's insert whose key is below the cursor but which committed after the walk passed
    # it (keys are drawn at insert, commits land in any order): made here by taking a key from the walk.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM akidb_reembed_vectors WHERE job_id = %s AND key = %s", ("job_1", pending.keys[1]))
    walked = await asyncio.to_thread(a.job, "job_1")
    assert await asyncio.to_thread(a.swap, walked, None) is None  # not swapped: a document lacks its vector
    back = await asyncio.to_thread(a.job, "job_1")
    assert back.last_key == pending.keys[1] - 1 and back.state == RUNNING
    again = await asyncio.to_thread(a.pending, "job_1", back.last_key, 10)
    assert again.keys == [pending.keys[1]]  # only the one without a new vector, not its neighbours
    await asyncio.to_thread(a.store_batch, "job_1", again.keys, vectors(1), pending.keys[-1])
    assert await asyncio.to_thread(a.swap, await asyncio.to_thread(a.job, "job_1"), None) is not None
    assert record.total == 4 and (await asyncio.to_thread(a.job, "job_1")).state == DONE


async def test_a_released_lease_is_taken_at_once(catalogue: Catalogue) -> None:
    store = await stored(catalogue, 2)
    a, b = gateway(store, "gw-a"), gateway(store, "gw-b")
    await asyncio.to_thread(a.start, "job_1", "m2", None, NEW_DIM, False)
    assert await asyncio.to_thread(b.claimable) == []
    await asyncio.to_thread(a.release, "job_1")  # a gateway stopping cleanly: no need to wait out its lease
    [record] = await asyncio.to_thread(b.claimable)
    assert (await asyncio.to_thread(b.claim, record)).state == RUNNING
