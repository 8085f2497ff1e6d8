"""The shipped supervisord.conf: one gateway, N workers, and a crashed worker comes back."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, child_env, free_port

BIN = Path(sys.executable).parent


def models(url: str) -> list[dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url + "/models", timeout=2) as r:
            return list(json.load(r)["models"])
    except OSError:
        return []


def wait_for(condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise TimeoutError("condition not met")
        time.sleep(0.2)


class Supervisor:
    def __init__(self, tmp: Path, workers: int, **env: str) -> None:
        # The real file, with its paths pointed at this venv and a throwaway var/ folder.
        text = (ROOT / "supervisord.conf").read_text()
        text = text.replace("%(here)s/.venv/bin", str(BIN)).replace("%(here)s/var", str(tmp))
        text = text.replace("%(here)s", str(ROOT))
        (tmp / "log").mkdir()
        (tmp / "run").mkdir()
        self.conf = tmp / "supervisord.conf"
        self.conf.write_text(text)
        http, zmq_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{http}"
        self.env = child_env(
            AKIDB_WORKERS=str(workers),
            AKIDB_SERVER__HOST="127.0.0.1",
            AKIDB_SERVER__PORT=str(http),
            AKIDB_SERVER__GRPC_PORT=str(free_port()),
            AKIDB_ZMQ__BIND=f"tcp://127.0.0.1:{zmq_port}",
            AKIDB_ZMQ__CONNECT=f"tcp://127.0.0.1:{zmq_port}",
            AKIDB_STORAGE__DATA_DIR=str(tmp / "data"),
            AKIDB_HEARTBEAT__INTERVAL_MS="200",
            **env,
        )
        self.proc = subprocess.Popen(
            [str(BIN / "supervisord"), "-n", "-c", str(self.conf)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(tmp_path, workers=2)
    yield sup
    sup.stop()


def live_workers(url: str) -> int:
    return sum(m["workers"] for m in models(url))


@pytest.mark.slow
def test_two_workers_start_and_a_killed_worker_is_restarted(supervisor: Supervisor) -> None:
    wait_for(lambda: live_workers(supervisor.url) == 2)
    req = urllib.request.Request(
        supervisor.url + "/embed", data=b'{"texts": ["supervised"]}', headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert len(json.load(r)["embeddings"][0]) == 384
    pid = int(supervisor.ctl("pid", "worker:worker-0"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: supervisor.ctl("pid", "worker:worker-0") not in ("", "0", str(pid)))
    wait_for(lambda: live_workers(supervisor.url) == 2)  # the new one registered, the dead one expired
    wait_for(lambda: "RUNNING" in supervisor.ctl("status", "worker:worker-0"))
    logs = sorted(p.name for p in supervisor.conf.parent.joinpath("log").iterdir())
    assert {"gateway.log", "worker-0.log", "worker-1.log"} <= set(logs)


@pytest.mark.slow
def test_the_control_socket_is_private_and_start_logs_no_unexpected_crit(supervisor: Supervisor) -> None:
    sock = supervisor.conf.parent / "run" / "supervisor.sock"
    wait_for(sock.exists, timeout=30)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700  # no other local user can stop or start processes
    assert "gateway" in supervisor.ctl("status")  # and its owner still can
    log = (supervisor.conf.parent / "log" / "supervisord.log").read_text()
    crit = [line.split(" CRIT ", 1)[1] for line in log.splitlines() if " CRIT " in line]
    # supervisord's generic notices: no password on the socket (its mode is the gate, see supervisord.conf),
    # and running as root (only when the tests do).
    expected = ("Server 'unix_http_server' running without any HTTP authentication", "Supervisor is running as root")
    assert all(line.startswith(expected) for line in crit), crit


@pytest.mark.slow
def test_a_raw_key_in_the_environment_reaches_no_log_file(tmp_path: Path) -> None:
    """Under supervisord every line the processes write lands in var/log/: a raw API key where a key record
    belongs stops the gateway (and the workers, which read the same config) without reaching any file."""
    from shared.keys_cli import make_api_key
    from shared.redact import RAW_KEY_HINT

    key, _ = make_api_key("app", ["read"])
    sup = Supervisor(tmp_path, workers=1, AKIDB_AUTH__KEYS=key)
    gateway_log = tmp_path / "log" / "gateway.log"
    try:
        wait_for(lambda: gateway_log.exists() and RAW_KEY_HINT in gateway_log.read_text(), timeout=60)
        wait_for(lambda: "FATAL" in sup.ctl("status", "gateway"), timeout=60)  # every retry said the same
    finally:
        sup.stop()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != sup.conf]
    assert gateway_log in files and (tmp_path / "log" / "supervisord.log") in files
    for path in files:
        assert key.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_the_smoke_test_script_passes() -> None:
    out = subprocess.run(
        [str(ROOT / "scripts" / "smoke-test.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**child_env(), "PYTHON": sys.executable},
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "smoke test passed" in out.stdout
