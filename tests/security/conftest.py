"""One gateway per test module, in this process, with the attacker suite's keys, gRPC on, and two teams'
collections (no worker: refusals come before any embedding, and the control answers are compared, not assumed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from gateway.api import keys
from tests.security.attack import KEYS, OPS, OTHER, OWN
from tests.support.gateway import Gateway, running_gateway
from tests.support.grpc import grpc_config
from tests.support.processes import free_port


@dataclass(frozen=True)
class Target:
    gw: Gateway
    port: int
    grpc_port: int
    other_id: str  # the other team's collection's id: a reference by id must be refused as well


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    data = tmp_path_factory.mktemp("security")
    setting = "auth.keys=" + json.dumps([k.record() for k in KEYS])
    cfg = grpc_config(f"tcp://127.0.0.1:{free_port()}", str(data), setting)
    async with running_gateway(cfg) as gw:
        ids = {}
        for name in (OTHER, OWN):
            resp = await gw.client.post("/collections", json={"name": name, "dimension": 3}, headers=OPS.header())
            assert resp.status == 201, await resp.text()
            ids[name] = (await resp.json())["id"]
            doc = {"documents": [{"id": "d1", "vector": [1, 0, 0], "text": f"{name} secret"}]}
            resp = await gw.client.post(f"/collections/{name}/documents", json=doc, headers=OPS.header())
            assert resp.status == 201, await resp.text()
        port = gw.client.server.port
        assert port is not None
        yield Target(gw, port, gw.app[keys.GRPC].port or 0, ids[OTHER])
