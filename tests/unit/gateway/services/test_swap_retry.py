"""A request a re-embedding's swap interrupted is made again under the new model, a bounded number of times."""

from __future__ import annotations

import pytest

from gateway.services.vectors import SWAP_RETRIES, again_after_swap
from gateway.storage.errors import ModelChanged


def attempts_failing(times: int) -> tuple[list[int], object]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise ModelChanged("swapped; retry")
        return "stored"

    return calls, attempt


@pytest.mark.parametrize("swaps", [0, 1, SWAP_RETRIES])
async def test_a_request_interrupted_by_swaps_is_made_again_until_it_goes_through(swaps: int) -> None:
    calls, attempt = attempts_failing(swaps)
    assert await again_after_swap(attempt) == "stored"  # type: ignore[arg-type]
    assert len(calls) == swaps + 1


async def test_swaps_beyond_the_retries_reach_the_client() -> None:
    calls, attempt = attempts_failing(SWAP_RETRIES + 1)
    with pytest.raises(ModelChanged):
        await again_after_swap(attempt)  # type: ignore[arg-type]
    assert len(calls) == SWAP_RETRIES + 1


async def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await again_after_swap(attempt)
    assert calls == [1]
