"""The installed console scripts: help, and config errors that name the key and exit non-zero."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, child_env

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    assert path, f"{name} is not installed in {BIN}; run `make setup`"
    return path


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an installed console script from the checkout to its end (this worktree's code: child_env)."""
    return subprocess.run([script(name), *args], capture_output=True, text=True, timeout=60, env=child_env(), cwd=ROOT)


@pytest.mark.parametrize("name", ["akidb-gateway", "akidb-worker"])
def test_help(name: str) -> None:
    out = subprocess.run([script(name), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--config FILE" in out.stdout and "--set KEY=VALUE" in out.stdout


@pytest.mark.parametrize("name", ["akidb-gateway", "akidb-worker"])
def test_a_bad_config_exits_2_naming_the_key(name: str, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("batching:\n  max_batch_size: -1\n")
    out = subprocess.run(
        [script(name), "--config", str(cfg)], capture_output=True, text=True, timeout=60, env=child_env(), cwd=ROOT
    )
    assert out.returncode == 2
    assert "batching.max_batch_size: -1 is below the minimum of 1" in out.stderr


def test_an_unknown_backend_is_a_startup_error() -> None:
    out = run_script("akidb-worker", "--set", "embedding.backend=tpu")
    assert out.returncode == 2
    assert "embedding.backend: 'tpu' is not one of auto, mlx, openvino" in out.stderr


def test_a_damaged_key_file_at_start_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    keys = tmp_path / "data" / "keys"
    keys.mkdir(parents=True, mode=0o700)
    (keys / "gateway.key_secret").write_bytes(b"")  # a crash of an older version, or a disk that lost it
    args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path / "data"), "--bind", "tcp://127.0.0.1:0"]
    out = run_script("akidb-gateway", *args, "--set", "server.grpc_enabled=false")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.startswith("akidb-gateway:")]
    assert "zmq.server_key:" in line and "remove it (and gateway.key) and restart" in line
