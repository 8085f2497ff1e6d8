"""Workers under CURVE (issue 10): who may join is decided at the handshake, on real sockets.

A real worker process with an accepted key serves; a peer with an unknown key, and a plain
DEALER without CURVE, each send a valid READY and would answer jobs, yet never get one while
concurrent /embed calls all come back from the real worker. Removing a key cuts that worker
off and refuses its reconnect; putting it back lets it in again, with no gateway restart.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
from structlog.testing import capture_logs

from gateway.api import keys
from shared.config import load_config
from shared.curve import KeyPair, WorkerKeys, key_paths
from shared.protocol import ModelInfo
from tests.support.backends import ONE_BACKEND
from tests.support.fake_worker import FakeWorker
from tests.support.gateway import Gateway, eventually, make_config, running_gateway
from tests.support.keys import keys_dir, local_worker_keys
from tests.support.processes import TEST_HEARTBEAT, WorkerProcess, free_port

MODEL = "all-MiniLM-L6-v2"
# An impostor that announces the real model, dimension and all, so only the handshake stops it.
IMPOSTOR_MODEL = ModelInfo(MODEL, 384, 256, "mean", ("minilm",), "openvino", "cpu", "f32")
LOCAL_KEY = "local-worker.key"


async def embed_many(gw: Gateway, n: int = 24) -> list[list[float]]:
    """`n` concurrent /embed calls; every one must succeed. Their vectors, one per call."""

    async def one(i: int) -> list[float]:
        resp = await gw.client.post("/embed", json={"texts": [f"a sentence about curve {i}"]})
        body = await resp.json()
        assert resp.status == 200, body
        return list(body["embeddings"][0])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def refused(gw: Gateway, reason: str) -> float:
    value = gw.app[keys.REGISTRY].get_sample_value("akidb_worker_auth_refused_total", {"reason": reason})
    return float(value or 0.0)


@pytest.fixture
async def guarded(zmq_endpoint: str, minilm_worker: WorkerProcess, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose accepted folder is this test's own copy, holding only the local workers' key."""
    accepted = tmp_path / "accepted"
    accepted.mkdir()
    shutil.copy(keys_dir() / "workers" / LOCAL_KEY, accepted / LOCAL_KEY)
    cfg = make_config(zmq_endpoint, str(tmp_path / "data"), f"zmq.workers_dir={accepted}")
    async with running_gateway(cfg) as gw:
        try:
            await gw.wait_for_workers(1)
        except TimeoutError:
            pytest.fail(f"worker did not connect; its log:\n{minilm_worker.output()[-3000:]}")
        yield gw


@ONE_BACKEND
async def test_only_accepted_keys_join_and_a_removed_key_is_cut_off_without_restart(
    guarded: Gateway, zmq_endpoint: str, tmp_path: Path
) -> None:
    gw = guarded
    accepted = tmp_path / "accepted"
    server_public = local_worker_keys().server_public
    public, secret = zmq.curve_keypair()
    strangers = {
        "unknown_key": FakeWorker(
            zmq_endpoint, "stranger", model=IMPOSTOR_MODEL, curve=WorkerKeys(KeyPair(public, secret), server_public)
        ),
        "handshake_failed": FakeWorker(zmq_endpoint, "plain", model=IMPOSTOR_MODEL, insecure=True),
    }
    for reason, stranger in strangers.items():
        with capture_logs() as logs:
            await stranger.start()
            await eventually(lambda reason=reason: refused(gw, reason) >= 1, timeout=10)  # type: ignore[misc]
            vectors = await embed_many(gw)
        assert all(len(v) == 384 for v in vectors)  # the real model's rows; the stranger's have 4 columns
        assert stranger.jobs == [], reason
        assert gw.workers.live_workers(MODEL) == 1
        # A worker retries a refused handshake with backoff, as the real one does: one line per try.
        lines = [e for e in logs if e["event"] == "worker_refused"]
        assert lines and {e["reason"] for e in lines} == {reason}
        line = lines[0]
        if reason == "unknown_key":
            assert line["peer"] == "127.0.0.1"  # ZAP names the peer's address
        await stranger.close()

    # Removing the key: the connected worker is forgotten at its next frame, and its reconnect is refused.
    before = refused(gw, "unknown_key")
    (accepted / LOCAL_KEY).unlink()
    await eventually(lambda: gw.workers.live_workers(MODEL) == 0, timeout=10)
    assert (await gw.client.post("/embed", json={"texts": ["x"]})).status == 503
    await eventually(lambda: refused(gw, "unknown_key") > before, timeout=20)
    assert gw.workers.live_workers(MODEL) == 0

    # Putting it back lets the same worker in again at its next reconnect.
    shutil.copy(keys_dir() / "workers" / LOCAL_KEY, accepted / LOCAL_KEY)
    await gw.wait_for_workers(1, timeout=60)
    assert len(await embed_many(gw, 4)) == 4


@ONE_BACKEND
async def test_a_fresh_gateway_with_default_config_makes_keys_and_admits_only_its_local_worker(
    tmp_path: Path, backend: str
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    data = tmp_path / "data"
    # No zmq.* key but the endpoints: the defaults, keys under <data_dir>/keys.
    base = [f"zmq.bind={endpoint}", f"storage.data_dir={data}", *TEST_HEARTBEAT, "server.grpc_enabled=false"]
    cfg = load_config(None, {}, base)
    # The worker starts first, as under supervisord, and waits for the keys the gateway makes.
    worker = WorkerProcess(
        endpoint, "--backend", backend, "--set", "zmq.keys_dir=none", "--set", f"storage.data_dir={data}"
    )
    plain = FakeWorker(endpoint, "plain", model=IMPOSTOR_MODEL, insecure=True)
    try:
        async with running_gateway(cfg) as gw:
            try:
                await gw.wait_for_workers(1, timeout=120)
            except TimeoutError:
                pytest.fail(f"worker did not connect; its log:\n{worker.output()[-3000:]}")
            paths = key_paths(cfg)
            for path in (
                paths.server_key,
                paths.server_public_key,
                paths.local_worker_key,
                paths.workers_dir / LOCAL_KEY,
            ):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(paths.keys_dir.stat().st_mode) == 0o700
            await plain.start()
            await eventually(lambda: refused(gw, "handshake_failed") >= 1, timeout=10)
            vectors = await embed_many(gw)
            assert all(len(v) == 384 for v in vectors) and plain.jobs == []
            (row,) = (await (await gw.client.get("/models")).json())["models"]
            assert row["workers"] == 1
            assert [w["pid"] for w in row["workers_detail"]] == [worker.pid]
    finally:
        await plain.close()
        worker.stop()
    # Keys are never overwritten: a second start keeps the pair the worker trusts.
    first = paths.server_key.read_bytes()
    async with running_gateway(cfg):
        pass
    assert paths.server_key.read_bytes() == first


async def test_allow_insecure_turns_curve_off_and_says_so_at_every_start(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = make_config(endpoint, str(tmp_path), "zmq.allow_insecure=true")
    for _ in range(2):
        with capture_logs() as logs:
            async with running_gateway(cfg) as gw:
                plain = await FakeWorker(endpoint, "plain", insecure=True).start()
                await gw.wait_for_workers(1, timeout=10)
                assert (await gw.client.post("/embed", json={"texts": ["x"]})).status == 200
                await plain.close()
        assert [e["event"] for e in logs if e["log_level"] == "warning"].count("curve_off") == 1
    assert not (tmp_path / "keys").exists()  # no keys made when CURVE is off


@ONE_BACKEND
async def test_a_real_worker_announcing_a_known_model_with_another_dimension_is_refused_and_stops(
    tmp_path: Path, backend: str
) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    async with running_gateway(make_config(endpoint, str(tmp_path))) as gw:
        first = await FakeWorker(endpoint, "first").start()  # MiniLM's name with 4 dimensions
        await gw.wait_for_workers(1, timeout=10)
        with capture_logs() as logs:
            worker = WorkerProcess(endpoint, "--backend", backend)
            try:
                code = await asyncio.to_thread(worker.proc.wait, 180)
            finally:
                worker.stop()
        assert code == 2, worker.output()[-3000:]
        assert "gateway_refused_worker" in worker.output()
        (line,) = [e for e in logs if e["event"] == "worker_refused_model"]
        assert "dimension 4" in line["reason"] and "384" in line["reason"]
        (row,) = (await (await gw.client.get("/models")).json())["models"]
        assert row["dimension"] == 4 and row["backend"] == "fake"
        assert [w["worker_id"] for w in row["workers_detail"]] == ["first"]
        await first.close()
