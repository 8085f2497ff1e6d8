"""The queue's bookkeeping: what goes into a job, what is skipped, what it counts."""

from __future__ import annotations

import asyncio

import pytest

from gateway.dispatch.batcher import Batcher, Pending


def chunk(loop: asyncio.AbstractEventLoop, n: int, pooling: str = "mean", model: str = "m") -> Pending:
    return Pending(model, tuple(f"t{i}" for i in range(n)), pooling, True, 10.0, 0.0, loop.create_future())


async def test_take_fills_up_to_max_batch_size_in_order() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=8, max_queue_texts=100)
    items = [chunk(loop, n) for n in (3, 4, 2, 1)]
    for item in items:
        b.add(item)
    assert b.queued_texts == 10 and b.ready_texts("m") == 10
    first = b.take("m")
    assert first == [items[0], items[1], items[3]]  # 3+4+1; the 2 would overflow
    assert b.take("m") == [items[2]]
    assert b.queued_texts == 0 and b.head("m") is None


async def test_only_chunks_with_the_heads_options_share_a_job() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    mean, cls, mean2 = chunk(loop, 1), chunk(loop, 1, "cls"), chunk(loop, 1)
    for item in (mean, cls, mean2):
        b.add(item)
    assert b.ready_texts("m") == 2
    assert b.take("m") == [mean, mean2]
    assert b.take("m") == [cls]


async def test_abandoned_chunks_are_skipped_and_uncounted() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=5)
    gone, kept = chunk(loop, 3), chunk(loop, 2)
    b.add(gone)
    b.add(kept)
    assert not b.has_room(1)
    gone.future.cancel()
    assert b.purge("m") == 3
    assert b.has_room(3) and b.head("m") is kept
    assert b.take("m") == [kept]


async def test_purge_reaches_past_the_head() -> None:
    # A purge that stopped at a live head left `take` to drop the rest without counting them.
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    live, gone, later = chunk(loop, 1), chunk(loop, 4), chunk(loop, 2)
    for c in (live, gone, later):
        b.add(c)
    gone.future.cancel()
    assert b.purge("m") == 4  # behind a live head
    assert b.queued_texts == 3
    later.future.cancel()
    assert b.purge_all() == 2
    assert b.queued_texts == 1


async def test_requeue_puts_lost_work_first_and_drops_abandoned() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    waiting = chunk(loop, 1)
    b.add(waiting)
    lost_a, lost_b, lost_gone = chunk(loop, 2), chunk(loop, 2), chunk(loop, 2)
    lost_gone.future.cancel()
    b.requeue([lost_a, lost_gone, lost_b])
    assert b.take("m") == [lost_a, lost_b, waiting]


@pytest.mark.parametrize("n", [1, 40])
async def test_a_chunk_larger_than_the_batch_still_goes_alone(n: int) -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    big = chunk(loop, n)
    b.add(big)
    assert b.take("m") == [big]


async def test_models_have_separate_queues() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    a, other = chunk(loop, 1), chunk(loop, 1, model="other")
    b.add(a)
    b.add(other)
    assert sorted(b.models()) == ["m", "other"]
    assert b.take_all("other") == [other]
    assert b.take("m") == [a]


async def test_a_suspect_rides_alone_and_joins_no_other_job() -> None:
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    suspect, fresh, other = chunk(loop, 1), chunk(loop, 1), chunk(loop, 1)
    suspect.deaths = 1
    b.add(suspect)
    b.add(fresh)
    assert b.batch_full("m")  # nothing can join it: no reason to wait for the window
    assert b.take("m") == [suspect]
    b.add(other)
    late = chunk(loop, 1)
    late.deaths = 1
    b.add(late)
    assert b.ready_texts("m") == 2 and not b.batch_full("m")
    assert b.take("m") == [fresh, other]
    assert b.take("m") == [late]


async def test_chunks_with_another_prompt_never_share_a_job() -> None:
    """A job carries one prompt for all its texts: a query chunk must not ride with a document chunk."""
    loop = asyncio.get_running_loop()
    b = Batcher(max_batch_size=32, max_queue_texts=100)
    plain, query, plain2, query2 = (
        chunk(loop, 1),
        Pending("m", ("q",), "mean", True, 10.0, 0.0, loop.create_future(), prompt="Query: "),
        chunk(loop, 2),
        Pending("m", ("q2",), "mean", True, 10.0, 0.0, loop.create_future(), prompt="Query: "),
    )
    for item in (plain, query, plain2, query2):
        b.add(item)
    assert b.ready_texts("m") == 3
    assert b.take("m") == [plain, plain2]
    assert b.take("m") == [query, query2]
    assert b.queued_texts == 0
