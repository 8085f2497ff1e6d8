"""Talking to a gateway process over real HTTP: wait until it is ready, then call it and read its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tests.support.processes import GatewayProcess


class LiveClient:
    """JSON calls that return (status, body), and one sample from /metrics."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs = {"data": io.BytesIO(orjson.dumps(body)), "headers": {"Content-Type": "application/json"}}
        async with self.session.request(method, self.url + path, **kwargs) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The body of a call that must answer `status`."""
        got, data = await self.call(method, path, body)
        assert got == status, f"{method} {path}: {got} {data}"
        return data

    async def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample in /metrics (labels given as keywords, in the order exposed); None if absent."""
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "") + " "
        async with self.session.get(self.url + "/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith(wanted):
                    return float(line.split()[-1])
        return None


@contextlib.asynccontextmanager
async def ready(proc: GatewayProcess, within_s: float = 90) -> AsyncIterator[LiveClient]:
    """A client once the gateway process answers /ready (a worker is connected)."""
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        while True:
            assert proc.proc.poll() is None, f"gateway exited:\n{proc.output()[-3000:]}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(proc.url + "/ready") as resp:
                    if resp.status == 200:
                        break
            assert loop.time() < end, f"gateway not ready:\n{proc.output()[-3000:]}"
            await asyncio.sleep(0.1)
        yield LiveClient(session, proc.url)
