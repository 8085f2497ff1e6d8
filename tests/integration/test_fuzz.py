"""schemathesis against /openapi.json on a real gateway process with a real worker, every check
(`--checks all`) and every phase, the stateful one included: no 5xx, no hang, responses (status, media
type, body, headers) as the document says, schema-invalid input refused and schema-valid input accepted
(or refused for state, with a documented 409), resources just created found.

The repository's schemathesis.toml is the one configuration: a user running `schemathesis run` in the
checkout gets the same. It runs once per storage engine: bad input stays a 4xx on PostgreSQL too, and the
contract (statuses, bodies, links) is the same whichever engine holds the collections."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.engines import BOTH_ENGINES
from tests.support.processes import ROOT, GatewayProcess, WorkerProcess, child_env, free_port

# Bounded so the run takes a couple of minutes on 2 busy cores; the seed makes a failure reproducible.
EXAMPLES = 60
SEED = 424242
CONFIG = ROOT / "schemathesis.toml"


def wait_ready(url: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{url}/ready not 200 within {timeout}s")
        time.sleep(0.2)


def wait_for_reranker(url: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url + "/models", timeout=5) as resp:
            models = json.load(resp)["models"]
        if any(m["kind"] == "rerank" and m["workers"] for m in models):
            return
        if time.monotonic() > end:
            raise TimeoutError(f"no reranker in {url}/models within {timeout}s")
        time.sleep(0.2)


@pytest.mark.slow
@BOTH_ENGINES
def test_schemathesis_finds_nothing(tmp_path: Path, engine_settings: tuple[str, ...]) -> None:
    # One run: the backend does not change the HTTP surface. OpenVINO where it is installed (x86).
    backend = "openvino" if importlib.util.find_spec("openvino") else "mlx"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    worker = WorkerProcess(endpoint, "--backend", backend)
    # /rerank, /v1/rerank and search's rerank get a real reranker too (the committed tiny cross-encoder).
    fixture = ROOT / "tests" / "fixtures" / "tiny-bert-reranker"
    reranker = WorkerProcess(
        endpoint, "--backend", backend, "--model", "ms-marco-MiniLM-L-6-v2", "--model-path", str(fixture)
    )
    gateway = GatewayProcess(endpoint, str(tmp_path / "data"), *[a for kv in engine_settings for a in ("--set", kv)])
    try:
        wait_ready(gateway.url)
        wait_for_reranker(gateway.url)
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{gateway.url}/openapi.json",
        ]
        cmd += ["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"]
        cmd += ["--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1"]
        cmd += ["--request-timeout", "30", "--max-response-time", "30", "--no-shrink", "--generation-allow-x00", "true"]
        done = subprocess.run(cmd, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=600)
    finally:
        gateway.stop()
        worker.stop()
        reranker.stop()
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:] + gateway.output()[-3000:]
    # Each phase ran (a phase that silently did nothing would pass too), and nothing failed.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in done.stdout, done.stdout[-12000:]
    assert "failure" not in done.stdout.rsplit("Seed:", 1)[-1], done.stdout[-3000:]
