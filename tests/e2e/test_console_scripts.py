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
    out = subprocess.run(
        [script("akidb-worker"), "--set", "embedding.backend=tpu"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=ROOT,
    )
    assert out.returncode == 2
    assert "embedding.backend: 'tpu' is not one of auto, mlx, openvino" in out.stderr
