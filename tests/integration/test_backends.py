"""Which backend a worker runs, as READY and GET /models report it, and bad choices at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, make_config, running_gateway
from tests.support.processes import ROOT, WorkerProcess, child_env, free_port
from worker.backends import cpu, select

DEVICES = {"openvino": ("cpu",), "mlx": ("cpu+openblas", "cpu+reference-blas", "metal", "cuda")}


async def test_models_shows_the_backend_device_and_precision(gateway: Gateway, backend: str) -> None:
    resp = await gateway.client.get("/models")
    row = (await resp.json())["models"][0]
    assert row["backend"] == backend
    assert row["device"] in DEVICES[backend]
    assert row["precision"] in ("f32", "bf16")
    (info,) = gateway.workers.workers()  # the one worker's own facts
    assert (info.backend, info.device, info.precision) == (row["backend"], row["device"], row["precision"])


def start_worker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A worker that must fail before it loads anything; its exit code and output."""
    cmd = [sys.executable, "-m", "worker", "--gateway", f"tcp://127.0.0.1:{free_port()}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(**(env or {})), cwd=ROOT, timeout=60)


@pytest.mark.parametrize(
    ("args", "env", "key"),
    [
        (
            ("--set", "embedding.backend=tensorrt"),
            {},
            "embedding.backend: 'tensorrt' is not one of auto, mlx, openvino",
        ),
        ((), {"AKIDB_EMBEDDING__PRECISION": "fp8"}, "embedding.precision: 'fp8' is not one of auto, f32, bf16"),
        (("--backend", "onnx"), {}, "argument --backend: invalid choice: 'onnx'"),
        (("--precision", "int8"), {}, "argument --precision: invalid choice: 'int8'"),
    ],
)
def test_unknown_backend_or_precision_stops_the_worker_naming_the_key(
    args: tuple[str, ...], env: dict[str, str], key: str
) -> None:
    done = start_worker(*args, env=env)
    assert done.returncode == 2
    assert key in done.stderr


def test_openvino_for_a_family_it_does_not_serve_stops_the_worker(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3", "max_position_embeddings": 512}))
    done = start_worker("--backend", "openvino", "--model", "tiny-qwen3", "--model-path", str(tmp_path))
    assert done.returncode == 2
    assert "embedding.backend: openvino does not serve qwen3 models" in done.stdout + done.stderr


async def test_auto_resolves_as_documented_on_this_machine(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    worker = WorkerProcess(endpoint)  # no --backend: embedding.backend is auto
    try:
        async with running_gateway(make_config(endpoint, str(tmp_path))) as gw:
            await gw.wait_for_workers(1)
            row = (await (await gw.client.get("/models")).json())["models"][0]
    finally:
        worker.stop()
    x86_cpu_only = select.is_x86() and sys.platform != "darwin" and not select.mlx_has_gpu()
    assert row["backend"] == ("openvino" if x86_cpu_only else "mlx")
    if x86_cpu_only:
        # bf16 only with AMX or AVX512-BF16; the AVX2-only EPYC this suite runs on gets f32.
        assert row["precision"] == ("bf16" if cpu.has_native_bf16(cpu.cpu_flags()) else "f32")
