"""One worker serving two gateways: kill -9 (or SIGSTOP) one under load on the other.

The survivor's clients see no failed request and no latency step beyond about one job (the worker
runs jobs one at a time from both gateways' queues, and never waits on the lost one's socket); the
killed gateway restarts (the stopped one resumes) and the worker is back in its GET /workers within
5 s, by its usual backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.backends import fastest_backend
from tests.support.live import LiveClient, ready
from tests.support.processes import GatewayProcess, WorkerProcess, free_port

pytestmark = pytest.mark.slow
WORKER_ID = "two-gw"
REJOIN_S = 5.0
SERVES_S = 20.0  # at most a few backoffs of a worker that gave up on a gateway still starting
TEXTS = [f"sentence {i} about gateways, workers and the jobs between them" for i in range(8)]


async def worker_ids(client: LiveClient) -> list[str]:
    status, body = await client.call("GET", "/workers")
    return [w["worker_id"] for w in body["workers"]] if status == 200 else []


def link_log(worker: WorkerProcess) -> str:
    """The worker's log lines about its links, for a failure message."""
    wanted = ("gateway_lost", "worker_ready_sent", "jobs_abandoned", "send_dropped", "gateway_refused")
    return "\n".join(line for line in worker.output().splitlines() if any(w in line for w in wanted))[-4000:]


async def health(session: aiohttp.ClientSession, proc: GatewayProcess, within_s: float = 90) -> None:
    """Until the gateway process answers /health (it is up; no worker needed)."""
    end = time.monotonic() + within_s
    while True:
        assert proc.proc.poll() is None, f"gateway exited:\n{proc.output()[-3000:]}"
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(proc.url + "/health") as resp:
                if resp.status == 200:
                    return
        assert time.monotonic() < end, f"gateway not up:\n{proc.output()[-3000:]}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", ["kill", "stall"])
async def test_losing_one_gateway_costs_the_other_nothing(fault: str, tmp_path: Path) -> None:
    endpoints = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    # The embedding cache off: repeated texts must reach the worker, or there is no load on it.
    args = ("--set", "cache.max_bytes=0", "--set", "server.request_timeout_s=30")
    survivor = GatewayProcess(endpoints[0], str(tmp_path / "survivor"), *args)
    victim = GatewayProcess(endpoints[1], str(tmp_path / "victim"), *args)
    worker = WorkerProcess(",".join(endpoints), "--backend", fastest_backend(), "--worker-id", WORKER_ID)
    reborn: GatewayProcess | None = None
    try:
        async with ready(survivor) as client, ready(victim) as doomed:
            assert await worker_ids(client) == [WORKER_ID] and await worker_ids(doomed) == [WORKER_ID]
            phase = "before"
            took: dict[str, list[float]] = {"before": [], "after": []}
            failed: list[str] = []
            stop = asyncio.Event()

            async def load(c: LiveClient, record: bool) -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        status, body = await c.call("POST", "/embed", {"texts": TEXTS})
                    except aiohttp.ClientError as exc:
                        status, body = 0, str(exc)
                    if record:
                        took[phase].append(time.monotonic() - started)
                        if status != 200:
                            failed.append(f"{status}: {body}")
                    elif status == 0:
                        return  # the victim is dead: its clients stop

            tasks = [asyncio.create_task(load(client, True)) for _ in range(4)]
            tasks += [asyncio.create_task(load(doomed, False)) for _ in range(2)]
            await asyncio.sleep(3.0)
            phase = "after"
            # With jobs of both gateways in the worker's hands: kill -9, or SIGSTOP (a host that hangs).
            victim.proc.send_signal(signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
            await asyncio.sleep(1.5)  # past the worker's liveness for the lost one: it has let it go
            if fault == "kill":
                victim.proc.wait(timeout=10)
                reborn = GatewayProcess(endpoints[1], str(tmp_path / "victim"), *args)
            else:
                victim.proc.send_signal(signal.SIGCONT)
                reborn = victim
            async with aiohttp.ClientSession() as session:
                await health(session, reborn)
                up = time.monotonic()
                back = LiveClient(session, reborn.url)
                while WORKER_ID not in await worker_ids(back):
                    assert time.monotonic() - up < REJOIN_S, f"not back within {REJOIN_S} s:\n{link_log(worker)}"
                    await asyncio.sleep(0.05)
                rejoined_s = time.monotonic() - up
                # And it serves that gateway again, while the survivor's load goes on. (A gateway still
                # starting up may stay silent past the worker's liveness: then the worker lets it go
                # once more and is back after the next backoff, so this waits, and 503 means "not yet".)
                await asyncio.sleep(1.0)
                served = await back.call("POST", "/embed", {"texts": TEXTS})
                while served[0] == 503 and time.monotonic() - up < SERVES_S:
                    await asyncio.sleep(0.1)
                    served = await back.call("POST", "/embed", {"texts": TEXTS})
                assert served[0] == 200, f"{served}\n{link_log(worker)}"
            stop.set()
            await asyncio.gather(*tasks)
            assert await worker_ids(client) == [WORKER_ID]
    finally:
        victim.proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        worker.stop()
        survivor.stop()
        victim.stop()
        if reborn is not None and reborn is not victim:
            reborn.stop()
    before, after = took["before"], took["after"]
    job_s = statistics.median(before)  # one request here is one job (8 texts) plus its wait in the queue
    # Generous on purpose (a loaded 2-core machine): a worker that waited on the dead gateway's socket
    # would stall until the survivor's request timeout (30 s) and fail requests.
    bound = max(before) + 3 * job_s + 1.0
    print(
        f"\ntwo gateways, {fault}: {len(before)} + {len(after)} survivor requests, {len(failed)} failed; "
        f"median {job_s:.3f} s, worst before {max(before):.3f} s, worst after {max(after):.3f} s "
        f"(bound {bound:.2f} s); back in the restarted gateway's /workers after {rejoined_s:.2f} s"
    )
    assert failed == []
    assert before and after, "no load on the surviving gateway: the test proved nothing"
    assert max(after) <= bound, f"a survivor request took {max(after):.2f} s (bound {bound:.2f} s)"
