"""`kill -9` of the gateway while it writes a collection snapshot: no half file is ever listed.

A real gateway process on a real disk (no worker: the documents carry their vectors). The snapshot is paced
with `storage.snapshot_rate_mb_s` so the kill lands while the file is being written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import numpy as np

from tests.support.http import call
from tests.support.processes import GatewayProcess, free_port

DIM = 64
SLOW = ("--set", "storage.snapshot_rate_mb_s=0.3")


def wait_healthy(proc: GatewayProcess, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while True:
        assert proc.proc.poll() is None, f"gateway exited:\n{proc.output()[-3000:]}"
        try:
            if call(proc.url, "GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < end, f"gateway not up after {timeout}s:\n{proc.output()[-3000:]}"
        time.sleep(0.1)


def load(proc: GatewayProcess, n: int) -> None:
    assert call(proc.url, "POST", "/collections", body={"name": "c", "dimension": DIM, "metric": "l2"})[0] == 201
    vectors = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    for start in range(0, n, 500):
        docs = [
            {"id": f"d{i}", "text": f"text {i} " * 20, "vector": vectors[i].tolist()} for i in range(start, start + 500)
        ]
        status, _, body = call(proc.url, "POST", "/collections/c/documents", body={"documents": docs})
        assert status == 201, body


def test_kill_9_mid_snapshot_leaves_no_snapshot_listed_and_the_next_one_works(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = GatewayProcess(endpoint, str(data_dir), *SLOW)
    folder = data_dir / "snapshots" / "c"
    try:
        wait_healthy(proc)
        load(proc, 3000)  # about 1.5 MB to write: about 5 s at 0.3 MB/s

        def snapshot() -> None:
            with contextlib.suppress(OSError):  # the gateway is killed under it
                call(proc.url, "POST", "/collections/c/snapshots")

        threading.Thread(target=snapshot, daemon=True).start()
        end = time.monotonic() + 30
        while not [p for p in folder.glob(".*.tmp") if p.stat().st_size > 100_000]:
            assert time.monotonic() < end, "the snapshot file never started growing"
            time.sleep(0.02)
        proc.kill()
        left = sorted(p.name for p in folder.iterdir())
        assert any(name.endswith(".akidb-snapshot.tmp") for name in left), left  # killed mid-write
        assert not [name for name in left if name.endswith(".akidb-snapshot")], left
    finally:
        proc.stop()

    again = GatewayProcess(endpoint, str(data_dir), port=proc.port)
    try:
        wait_healthy(again)
        status, _, body = call(again.url, "GET", "/collections/c/snapshots")
        assert status == 200 and body == {"snapshots": []}
        assert sorted(p.name for p in folder.iterdir()) == []  # the half file and the work folder were swept
        assert call(again.url, "GET", "/collections/c")[2]["document_count"] == 3000
        status, _, made = call(again.url, "POST", "/collections/c/snapshots")
        assert status == 201 and made["documents"] == 3000
        assert [s["name"] for s in call(again.url, "GET", "/collections/c/snapshots")[2]["snapshots"]] == [made["name"]]
    finally:
        again.stop()
