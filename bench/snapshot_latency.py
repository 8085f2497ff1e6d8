"""Insert latency across index snapshot boundaries, against any checkout, over the HTTP API only.

    python -m bench.snapshot_latency [--root PATH] [--python PATH] [--docs 100000] [--batch 1000]
                                     [--snapshot-every 10000]

Starts `python -m gateway` from --root (default: this checkout) with --python (default: this interpreter)
on a fresh data dir, creates a collection with a given dimension (no worker needed: the vectors are the
caller's), then inserts --docs random unit vectors in sequential batches of --batch, timing each request.
Reports p50/p99/max of all inserts and, apart, of the inserts that crossed a multiple of --snapshot-every
(where a gateway that snapshots inside the write path makes that insert pay for the save). Run it on the
old commit and on the new one, on a quiet machine, and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.procs import free_port

HERE = Path(__file__).resolve().parents[1]


def request(url: str, body: bytes | None = None, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_gateway(root: Path, python: str, data_dir: Path, snapshot_every: int, log: Path) -> tuple[Any, str]:
    port = free_port()
    cmd = [python, "-m", "gateway", "--host", "127.0.0.1", "--port", str(port),
           "--bind", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(data_dir),
           "--set", f"storage.snapshot_every={snapshot_every}", "--set", "server.grpc_enabled=false",
           "--set", "logging.format=json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited:\n{log.read_text()[-3000:]}")
        try:
            if request(url + "/health")[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gateway never answered /health:\n{log.read_text()[-3000:]}")


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000
    if not len(a):
        return {}
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="akidb-snapbench-"))
    log = data_dir.with_suffix(".log")
    proc, url = start_gateway(args.root, args.python, data_dir, args.snapshot_every, log)
    crossing: list[float] = []
    others: list[float] = []
    try:
        status, text = request(url + "/collections", orjson.dumps({"name": "bench", "dimension": args.dim}), "POST")
        assert status == 201, text
        rng = np.random.default_rng(0)
        for b in range(args.docs // args.batch):
            vectors = rng.standard_normal((args.batch, args.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            docs = [{"id": f"d{b}-{i}", "vector": vectors[i]} for i in range(args.batch)]
            payload = orjson.dumps({"documents": docs}, option=orjson.OPT_SERIALIZE_NUMPY)
            started = time.perf_counter()
            status, text = request(url + "/collections/bench/documents", payload, "POST")
            took = time.perf_counter() - started
            assert status == 201, text[:500]
            before, after = b * args.batch, (b + 1) * args.batch
            (crossing if after // args.snapshot_every > before // args.snapshot_every else others).append(took)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    saved = log.read_text().count("index_snapshot_saved")
    shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "root": str(args.root),
        "docs": args.docs,
        "batch": args.batch,
        "snapshot_every": args.snapshot_every,
        "all": percentiles(crossing + others),
        "crossing_snapshot_every": percentiles(crossing),
        "other_inserts": percentiles(others),
        "snapshots_saved": saved,
        "gateway_log": str(log),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=HERE, help="checkout whose gateway to run (default: this one)")
    p.add_argument("--python", default=sys.executable, help="interpreter with that checkout's dependencies")
    p.add_argument("--docs", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--snapshot-every", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=384)
    print(json.dumps(run(p.parse_args()), indent=2))


if __name__ == "__main__":
    main()
