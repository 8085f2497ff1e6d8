"""Start the real stack (gateway + workers) as child processes for a benchmark, and read their RSS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback TCP port that is free right now (for a Stack's HTTP, ZeroMQ or gRPC port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler(threading.Thread):
    """Samples the summed RSS of some pids every `every_s`; `peak_mb` is the largest sum seen."""

    def __init__(self, pids: list[int], every_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.every_s = every_s
        self.peak_mb = 0.0
        self.per_pid_peak: dict[int, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0.0
            for pid in self.pids:
                mb = rss_mb(pid)
                total += mb
                self.per_pid_peak[pid] = max(self.per_pid_peak.get(pid, 0.0), mb)
            self.peak_mb = max(self.peak_mb, total)
            self._halt.wait(self.every_s)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_mb


class Stack:
    """`akidb-gateway` + N `akidb-worker`s on loopback ports, torn down on exit.

    `curve=True` (the product's default): the gateway makes its keys in a throwaway
    `zmq.keys_dir` that the workers share, as on one machine. `curve=False` runs both sides
    with `zmq.allow_insecure`, to measure what CURVE costs. `security_args` are the flags a
    stand-in worker (`bench.instant_worker`) needs to match.

    The embedding cache is off unless `cache=True`: most benchmarks measure the embedding path and
    repeat their texts, which the cache would answer without a worker (a later `--set
    cache.max_bytes=...` in `gateway_args` still wins, as `bench.cache` does).

    `root` runs another checkout's gateway and workers (e.g. a worktree of an older commit, for a
    before/after in one sitting) with only the flags every version takes: no CURVE, no cache setting,
    nothing of this checkout's config.
    """

    def __init__(
        self,
        workers: int = 1,
        worker_args: tuple[str, ...] = (),
        gateway_args: tuple[str, ...] = (),
        http_port: int = 18080,
        zmq_port: int = 15555,
        env: dict[str, str] | None = None,
        curve: bool = True,
        cache: bool = False,
        api_key: str | None = None,
        root: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        self.zmq = f"tcp://127.0.0.1:{zmq_port}"
        self.root = root or ROOT  # also the processes' working directory: `python -m` looks there first
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(self.root), **(env or {})}
        self.n_workers = workers
        self.api_key = api_key  # with keys configured, /models (the readiness probe) needs one
        self.keys_dir = tempfile.mkdtemp(prefix="akidb-bench-keys-")
        security = ("--set", f"zmq.keys_dir={self.keys_dir}") if curve else ("--set", "zmq.allow_insecure=true")
        self.security_args: tuple[str, ...] = ("--keys-dir", self.keys_dir) if curve else ("--insecure",)
        self.worker_args = (*security, *worker_args)
        gateway_addr = ("--port", str(http_port), "--bind", self.zmq, "--host", "127.0.0.1")
        no_cache = () if cache else ("--set", "cache.max_bytes=0")
        if root is not None:  # an older checkout knows none of these
            security, no_cache, self.security_args = (), (), ()
            self.worker_args = worker_args
        self.gateway_args = (*gateway_addr, *security, *no_cache, *gateway_args)
        self.procs: list[subprocess.Popen[bytes]] = []  # the gateway first, then the workers
        self.log_dir = log_dir  # each process's output appended to <name>.log there; else discarded

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        if self.log_dir is None:
            path = Path(os.devnull)
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"{name}.log"
        with path.open("ab") as log:  # the child has its own copy of the descriptor
            return subprocess.Popen([sys.executable, "-m", *args], env=self.env, stdout=log, stderr=log, cwd=self.root)

    def _spawn_gateway(self) -> subprocess.Popen[bytes]:
        return self._spawn("gateway", ["gateway", *self.gateway_args])

    def _spawn_worker(self, i: int) -> subprocess.Popen[bytes]:
        return self._spawn(f"worker-{i}", ["worker", "--gateway", self.zmq, *self.worker_args])

    def add_worker(self, name: str, *args: str) -> None:
        """One more worker with its own arguments (another model) beside the stack's: wait_ready counts it."""
        self.procs.append(self._spawn(name, ["worker", "--gateway", self.zmq, *self.worker_args, *args]))

    def restart_gateway(self) -> None:
        """kill -9 the gateway and start it again with the same arguments (its workers reconnect)."""
        self.procs[0].kill()
        self.procs[0].wait()
        self.procs[0] = self._spawn_gateway()

    def restart_worker(self, i: int = 0) -> None:
        """Start worker `i` again if it has exited (as supervisord does for a crashed worker)."""
        proc = self.procs[1 + i]
        if proc.poll() is not None:
            self.procs[1 + i] = self._spawn_worker(i)

    def __enter__(self) -> Stack:
        self.procs.append(self._spawn_gateway())
        for i in range(self.n_workers):
            self.procs.append(self._spawn_worker(i))
        try:
            self.wait_ready(self.n_workers)
        except BaseException:
            self.__exit__()  # no orphan gateway holding the data directory's lock
            raise
        return self

    def wait_ready(self, workers: int, timeout: float = 120) -> None:
        end = time.time() + timeout
        while time.time() < end:
            try:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                with urllib.request.urlopen(
                    urllib.request.Request(self.url + "/models", headers=headers), timeout=2
                ) as r:
                    import json

                    models = json.load(r)["models"]
                    if models and sum(m["workers"] for m in models) >= workers:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("stack did not become ready")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.keys_dir, ignore_errors=True)
