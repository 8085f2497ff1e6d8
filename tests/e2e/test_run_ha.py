"""`make run-ha`'s supervisord file: PostgreSQL, two gateways on it and one worker serving both."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_supervisord import wait_for
from tests.support.processes import ROOT, child_env, free_port

BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy"


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return 0, None


def copy_deploy(tmp: Path) -> dict[str, str]:
    """The shipped files with their ports free here and `var/` in `tmp`; the gateways' URLs."""
    ports = {old: str(free_port()) for old in ("8081", "8082", "5561", "5562", "9091", "9092")}
    for name in ("akidb-ha-a.yaml", "akidb-ha-b.yaml", "akidb-ha-worker.yaml"):
        text = (DEPLOY / name).read_text().replace("./var", str(tmp))
        for old, new in ports.items():
            text = text.replace(old, new)
        (tmp / name).write_text(text)
    conf = (DEPLOY / "supervisord-ha.conf").read_text()
    conf = conf.replace("%(here)s/../.venv/bin", str(BIN)).replace("%(here)s/../var", str(tmp))
    conf = conf.replace("%(here)s/akidb-ha", str(tmp / "akidb-ha")).replace("%(here)s/..", str(ROOT))
    (tmp / "supervisord-ha.conf").write_text(conf)
    return {g: f"http://127.0.0.1:{ports[p]}" for g, p in (("a", "8081"), ("b", "8082"))}


@pytest.mark.slow
def test_two_gateways_share_one_database_and_one_worker(tmp_path: Path) -> None:
    urls = copy_deploy(tmp_path)
    (tmp_path / "log").mkdir()
    (tmp_path / "run").mkdir()
    env = child_env()
    keys = subprocess.run(
        [sys.executable, "-m", "scripts.pg_dev", "keys", "--config", str(tmp_path / "akidb-ha-a.yaml")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keys.returncode == 0, keys.stderr
    conf = str(tmp_path / "supervisord-ha.conf")
    sup = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", conf], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for url in urls.values():
            wait_for(lambda url=url: call(url + "/ready")[0] == 200, timeout=180)
        a, b = urls["a"], urls["b"]
        workers = [call(u + "/workers")[1]["workers"] for u in (a, b)]
        assert [w["worker_id"] for w in workers[0]] == [w["worker_id"] for w in workers[1]] != []
        assert call(a + "/collections", "POST", {"name": "ha", "model": "all-MiniLM-L6-v2"})[0] == 201
        wait_for(lambda: call(b + "/collections/ha")[0] == 200, timeout=10)
        status, _ = call(
            b + "/collections/ha/documents", "POST", {"documents": [{"id": "1", "text": "a cat on a mat"}]}
        )
        assert status == 201
        status, found = call(a + "/collections/ha/search", "POST", {"query": "kitten", "k": 1})
        assert status == 200 and [h["id"] for h in found["results"]] == ["1"], found
    finally:
        subprocess.run([str(BIN / "supervisorctl"), "-c", conf, "shutdown"], env=env, capture_output=True, timeout=60)
        sup.wait(timeout=90)
    assert "postgres_stopped" in (tmp_path / "log" / "postgres.log").read_text()
