"""The storage engines a collection test runs against, and how a test that holds for one of them says why."""

from __future__ import annotations

import pytest

ENGINES = ("embedded", "postgres")
# A module whose collection tests hold for every storage engine: `pytestmark = [..., BOTH_ENGINES]`. Its
# `gateway` and `start_gateway` fixtures then run once per engine (PostgreSQL on a fresh database per test).
BOTH_ENGINES = pytest.mark.parametrize("engine", ENGINES, indirect=True)


def only_on(engine: str, actual: str, why: str) -> None:
    """Skip a test that holds for one engine only, naming the engine feature it is about."""
    if actual != engine:
        pytest.skip(f"{engine} engine only: {why}")
