"""Collection snapshot and restore time, over the HTTP API of a real gateway process.

    python -m bench.snapshots [--docs 100000] [--batch 1000] [--root PATH] [--python PATH] [--vectors FILE.npy]

Starts `python -m gateway` from --root on a fresh data dir (no worker: the documents carry their vectors),
fills a collection with --docs documents (the vectors of --vectors, default /tmp/vectors-100k.npy if it
exists (bench.collection_corpus makes it, see bench/README.md), else random unit vectors; and a short
text each), then times:

- snapshot: POST /collections/bench/snapshots (SQLite online backup + the index, one checked file)
- download: GET the file (streamed)
- restore:  POST /collections/restore?name=copy with the file streamed up: receive, verify every checksum,
            unpack, open (the index snapshot is loaded and nothing is rebuilt)
- a snapshot taken while another client inserts, and that client's insert p50/p99 meanwhile (and without).

It checks that the restored collection holds every document and answers a search as the original does.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import orjson

from bench.snapshot_latency import HERE, percentiles, request, start_gateway

DEFAULT_VECTORS = Path("/tmp/vectors-100k.npy")


def vectors(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    path = args.vectors or (DEFAULT_VECTORS if DEFAULT_VECTORS.exists() else None)
    if path is not None:
        matrix = np.load(path).astype(np.float32)
        if len(matrix) >= args.docs:
            return matrix[: args.docs], str(path)
    matrix = np.random.default_rng(0).standard_normal((args.docs, args.dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True), "random"


def insert(url: str, collection: str, rows: np.ndarray, start: int) -> float:
    docs = [{"id": f"d{start + i}", "text": f"package {start + i}: a short summary line", "vector": v}
            for i, v in enumerate(rows)]  # fmt: skip
    payload = orjson.dumps({"documents": docs}, option=orjson.OPT_SERIALIZE_NUMPY)
    began = time.perf_counter()
    status, text = request(f"{url}/collections/{collection}/documents", payload, "POST")
    assert status == 201, text[:500]
    return time.perf_counter() - began


def upload(url: str, path: Path, name: str) -> tuple[int, dict[str, Any]]:
    """POST the file as the body, streamed from disk (http.client reads a file object in blocks)."""
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=3600)
    with open(path, "rb") as f:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size)}
        conn.request("POST", f"/collections/restore?name={name}", body=f, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())


def download(url: str, path: str, target: Path) -> None:
    parts = urlparse(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=3600)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()[:500]
    with open(target, "wb") as out:
        while chunk := resp.read(1 << 20):
            out.write(chunk)


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - began, out


def run(args: argparse.Namespace) -> dict[str, Any]:
    matrix, source = vectors(args)
    data_dir = Path(tempfile.mkdtemp(prefix="akidb-snapshots-bench-"))
    log = data_dir.with_suffix(".log")
    proc, url = start_gateway(args.root, args.python, data_dir, 10_000, log)
    try:
        body = orjson.dumps({"name": "bench", "dimension": int(matrix.shape[1])})
        assert request(url + "/collections", body, "POST")[0] == 201
        for start in range(0, args.docs, args.batch):
            insert(url, "bench", matrix[start : start + args.batch], start)

        snap_s, (status, text) = timed(request, url + "/collections/bench/snapshots", None, "POST")
        assert status == 201, text
        made = json.loads(text)
        file = data_dir.parent / f"{made['name']}.akidb-snapshot"
        down_s, _ = timed(download, url, f"/collections/bench/snapshots/{made['name']}", file)
        restore_s, (status, restored) = timed(upload, url, file, "copy")
        assert status == 201, restored
        assert restored["document_count"] == args.docs, restored
        query = orjson.dumps({"vector": matrix[args.docs // 2], "k": 10}, option=orjson.OPT_SERIALIZE_NUMPY)
        same = [
            [h["id"] for h in json.loads(request(f"{url}/collections/{c}/search", query, "POST")[1])["results"]]
            for c in ("bench", "copy")
        ]
        assert same[0] == same[1], same

        # A snapshot under load: another client inserts meanwhile; its latencies, and the snapshot's time.
        extra = np.random.default_rng(1).standard_normal((100, matrix.shape[1])).astype(np.float32)
        baseline = [insert(url, "bench", extra, 20_000_000 + n * 100) for n in range(30)]
        latencies: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            n = 0
            while not stop.is_set():
                latencies.append(insert(url, "bench", extra, 10_000_000 + n * 100))
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.5)
        loaded_s, (status, text) = timed(request, url + "/collections/bench/snapshots", None, "POST")
        stop.set()
        thread.join()
        assert status == 201, text
        file.unlink()
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "docs": args.docs,
        "dimension": int(matrix.shape[1]),
        "vectors": source,
        "snapshot_bytes": made["size"],
        "snapshot_s": round(snap_s, 2),
        "download_s": round(down_s, 2),
        "restore_s": round(restore_s, 2),
        "snapshot_under_inserts_s": round(loaded_s, 2),
        "inserts_100_docs_without_snapshot": percentiles(baseline),
        "inserts_100_docs_during_snapshot": percentiles(latencies),
        "gateway_log": str(log),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=HERE, help="checkout whose gateway to run (default: this one)")
    p.add_argument("--python", default=sys.executable, help="interpreter with that checkout's dependencies")
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--dim", type=int, default=384, help="with random vectors")
    p.add_argument("--vectors", type=Path, help=f".npy of at least --docs rows (default: {DEFAULT_VECTORS} if present)")
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
