"""A real AkiDB gateway and worker for the client's tests, run by the server's own Python.

The client's venv holds none of the server's dependencies: the processes run with the interpreter
named by AKIDB_SERVER_PYTHON (the Makefile sets it), else the repo's .venv.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = ["--set", "heartbeat.interval_ms=200", "--set", "heartbeat.liveness=5"]


def server_python() -> str:
    """The interpreter with the server installed."""
    return os.environ.get("AKIDB_SERVER_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m gateway` + `python -m worker` on loopback ports, with a temporary data directory."""

    def __init__(self) -> None:
        self.data = tempfile.TemporaryDirectory(prefix="akidb-client-test-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = endpoint = f"tcp://127.0.0.1:{free_port()}"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
        env.pop("AKIDB_URL", None)
        env.pop("AKIDB_API_KEY", None)
        self.env = env
        self.logs: list[Path] = []
        gateway = ["--host", "127.0.0.1", "--port", str(self.port), "--bind", endpoint, "--data-dir", self.data.name]
        self.procs = [
            self._start("gateway", [*gateway, *HEARTBEAT, "--set", "server.grpc_enabled=false"], env),
        ]
        self.add_worker()

    def add_worker(self, *args: str, log_name: str = "worker") -> subprocess.Popen[bytes]:
        """Start one more worker on this gateway (`args`: e.g. --model-path DIR for a reranker)."""
        # The worker finds the local worker keys the gateway makes in its data directory (CURVE is on).
        worker = ["--gateway", self.endpoint, "--set", f"storage.data_dir={self.data.name}", *HEARTBEAT, *args]
        proc = self._start("worker", worker, self.env, log_name)
        self.procs.append(proc)
        return proc

    def _start(
        self, module: str, args: list[str], env: dict[str, str], log_name: str | None = None
    ) -> subprocess.Popen[bytes]:
        log = Path(self.data.name) / f"{log_name or module}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            return subprocess.Popen(
                [server_python(), "-m", module, *args], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
            )

    def wait_ready(self, timeout: float = 180) -> None:
        """Until GET /ready is 200 (the worker loaded its model and connected)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args} exited with {p.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs if log.exists()
        )

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.data.cleanup()


_shared: Server | None = None


def shared() -> Server:
    """The session's server, started (and waited for) on first use."""
    global _shared
    if _shared is None:
        srv = Server()
        try:
            srv.wait_ready()
        except BaseException:
            srv.stop()
            raise
        _shared = srv
    return _shared


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
