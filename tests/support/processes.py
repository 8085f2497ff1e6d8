"""Real worker processes for tests: started with `python -m worker`, killed for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# One definition for tests and benchmarks; bench.procs imports only the standard library.
from bench.procs import free_port as free_port
from tests.support.keys import keys_dir, keys_setting

ROOT = Path(__file__).resolve().parents[2]

# Fast heartbeats so failover tests take seconds, not tens of seconds.
TEST_HEARTBEAT = ("heartbeat.interval_ms=200", "heartbeat.liveness=5")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: offline hub, this checkout importable first."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class LogDir:
    """Where children's log files go: the system's temp dir, unless a test session points it at its own."""

    path: Path | None = None

    @classmethod
    def use(cls, path: Path) -> None:
        """Put the logs of children started from now on in `path` (tests/conftest.py: pytest's temp dir,
        which pytest prunes to its last few runs, so logs never pile up in /tmp)."""
        cls.path = path


class ChildProcess:
    """A `python -m <module>` child with its output in a log file (kept after it stops), killed for real."""

    def __init__(self, module: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop; read back after)
            prefix=f"akidb-{module}-", suffix=".log", delete=False, dir=LogDir.path
        )
        self.cmd = [sys.executable, "-m", module, *args]
        self.proc = subprocess.Popen(
            self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env or child_env(), cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no goodbye, no shutdown hooks, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (as supervisord sends it), SIGKILL if that takes over `timeout`; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class WorkerProcess(ChildProcess):
    """One `akidb-worker` (`python -m worker`), with the session's CURVE keys (later `--set`s win)."""

    def __init__(self, endpoint: str, *args: str, env: dict[str, str] | None = None) -> None:
        sets = [a for kv in (*TEST_HEARTBEAT, keys_setting()) for a in ("--set", kv)]
        super().__init__("worker", ["--gateway", endpoint, *sets, *args], env)


class GatewayProcess(ChildProcess):
    """One `akidb-gateway` (`python -m gateway`) on a free port, so tests can restart or kill -9 it."""

    def __init__(self, endpoint: str, data_dir: str, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        sets = [a for kv in (*TEST_HEARTBEAT, "server.grpc_enabled=false", keys_setting()) for a in ("--set", kv)]
        addr = ["--host", "127.0.0.1", "--port", str(self.port), "--bind", endpoint, "--data-dir", data_dir]
        super().__init__("gateway", [*addr, *sets, *args])


class FakeWorkerProcess(ChildProcess):
    """`tests.support.fake_worker` as its own process: the real protocol, instant fake vectors, a real death."""

    def __init__(self, endpoint: str, *args: str) -> None:
        super().__init__("tests.support.fake_worker", ["--gateway", endpoint, "--keys-dir", str(keys_dir()), *args])
