"""A worker that cannot load its model, or whose model fails mid-job, says so and exits non-zero; it never hangs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import references as refs
from tests.support.gateway import make_config, running_gateway
from tests.support.processes import FakeWorkerProcess, WorkerProcess, free_port

EXIT_WAIT_S = 90  # a worker that gets this far without exiting is hanging


def run_to_exit(*args: str) -> tuple[int, str]:
    """Start a worker with no gateway listening; its exit code and output."""
    worker = WorkerProcess(f"tcp://127.0.0.1:{free_port()}", "--backend", "mlx", *args)
    try:
        code = worker.proc.wait(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail(f"worker still running after {EXIT_WAIT_S}s:\n{worker.output()[-3000:]}")
    return code, worker.output()


def copy_tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(refs.TINY_QWEN3, folder)
    return folder


def test_missing_folder(tmp_path: Path) -> None:
    code, out = run_to_exit("--model-path", str(tmp_path / "nowhere"))
    assert code != 0
    assert "model_load_failed" in out and "embedding.model_path" in out and "is not a folder" in out


def test_model_missing_offline_names_the_fixes(tmp_path: Path) -> None:
    code, out = run_to_exit("--model", "qwen3-0.6b-4bit", "--set", f"embedding.cache_dir={tmp_path}")
    assert code != 0
    assert "not in the local Hugging Face cache" in out
    assert "embedding.model_path" in out and "auto_download" in out


def test_corrupt_weights(tmp_path: Path) -> None:
    folder = copy_tiny(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not-json")
    code, out = run_to_exit("--model-path", str(folder))
    assert code != 0
    assert "cannot read" in out and "download the model again" in out


def test_truncated_weights(tmp_path: Path) -> None:
    """A download cut short: the header promises more bytes than the file has."""
    folder = copy_tiny(tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    code, out = run_to_exit("--model-path", str(folder))
    assert code != 0
    assert "model_load_failed" in out and "model.safetensors" in out


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    folder = copy_tiny(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    code, out = run_to_exit("--model-path", str(folder))
    assert code != 0
    assert "do not fit a Qwen3 model" in out


def test_corrupt_tokenizer(tmp_path: Path) -> None:
    folder = copy_tiny(tmp_path)
    (folder / "tokenizer.json").write_text("{")
    code, out = run_to_exit("--model-path", str(folder))
    assert code != 0
    assert "cannot load the tokenizer" in out


async def test_a_model_failure_mid_job_reaches_the_caller_as_502_before_the_worker_exits(tmp_path: Path) -> None:
    """The worker's own ERROR(internal) arrives before its DISCONNECT: the caller hears 502, not a requeue.

    The fake worker runs the real worker's compute loop and IO thread; only its model is fake, and
    fails on demand (the real model cannot be made to fail by a test).
    """
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    worker = FakeWorkerProcess(endpoint, "--fail-on", "CRASH-NOW")
    try:
        cfg = make_config(endpoint, str(tmp_path), "server.request_timeout_s=20")
        async with running_gateway(cfg) as gw:
            try:
                await gw.wait_for_workers(1)
            except TimeoutError:
                pytest.fail(f"worker did not connect; its log:\n{worker.output()[-3000:]}")
            assert (await gw.client.post("/embed", json={"texts": ["fine"]})).status == 200
            resp = await gw.client.post("/embed", json={"texts": ["then CRASH-NOW please"]})
            body = await resp.json()
            assert resp.status == 502 and body["error"]["code"] == "worker_error", body
            assert "the fake model fails on 'CRASH-NOW'" in body["error"]["message"]
            assert worker.proc.wait(timeout=30) == 1  # and then it exits, for its supervisor to restart
            assert await gw.metric("akidb_jobs_requeued_total") == 0  # nothing was left to requeue
    finally:
        worker.stop()
