"""A raw API key put where its record belongs, by every way config arrives, never appears in anything the
gateway writes: stdout, stderr, or a file under its data directory. It is refused with a message naming the place."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shared.keys_cli import make_api_key
from shared.redact import RAW_KEY_HINT
from tests.e2e.test_console_scripts import run_script, script
from tests.support.processes import child_env

KEY, RECORD = make_api_key("app", ["read"])

# (how it arrives, the place the message names): each writes its config under `inputs` and returns the arguments
# and environment that carry it.
WAYS = {
    "yaml list": ("auth:\n  keys:\n    - {key}\n", "auth.keys[0] in"),
    "yaml scalar": ("auth:\n  keys: {key}\n", "auth.keys in"),
    "yaml record field": ("auth:\n  keys:\n    - {{name: app, sha256: {key}, scopes: [read]}}\n", "auth.keys[0] in"),
    "environment": ("AKIDB_AUTH__KEYS", "environment variable AKIDB_AUTH__KEYS"),
    "--set": ("--set", "command line"),
    "keys file line": ("{key}\n", "line 1"),
    "keys file yaml list": ("- {key}\n", "auth.keys[0] in"),
}


def arrange(way: str, inputs: Path) -> tuple[list[str], dict[str, str]]:
    template, _ = WAYS[way]
    env = child_env()
    if way == "environment":
        return [], {**env, "AKIDB_AUTH__KEYS": KEY}
    if way == "--set":
        return ["--set", f"auth.keys={KEY}"], env
    path = inputs / ("keys.txt" if way.startswith("keys file") else "akidb.yaml")
    path.write_text(template.format(key=KEY))
    flag = ["--set", f"auth.keys_file={path}"] if way.startswith("keys file") else ["--config", str(path)]
    return flag, env


def written(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("way", list(WAYS))
def test_a_raw_key_in_a_records_place_is_refused_without_echoing_it(way: str, tmp_path: Path) -> None:
    inputs, run = tmp_path / "inputs", tmp_path / "run"
    inputs.mkdir()
    run.mkdir()
    args, env = arrange(way, inputs)
    data = ["--set", f"storage.data_dir={run / 'data'}", "--set", f"zmq.keys_dir={run / 'keys'}"]
    out = subprocess.run([script("akidb-gateway"), *args, *data], capture_output=True, timeout=60, env=env, cwd=run)
    stderr = out.stderr.decode()
    assert out.returncode == 2, stderr
    assert RAW_KEY_HINT in stderr and WAYS[way][1] in stderr, stderr
    assert "Traceback" not in stderr
    everything = out.stdout + out.stderr + written(run)
    assert KEY.encode() not in everything
    assert KEY[len("akidb_") :].encode() not in everything  # nor its body without the prefix


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--set", f"server.port={KEY}"], "server.port: '[redacted]' is not an integer"),
        (["--port", KEY], "argument --port: invalid int value: '[redacted]'"),
    ],
)
def test_a_raw_key_where_a_number_belongs_is_not_echoed(args: list[str], said: str) -> None:
    """Not a record's place, but the value is still quoted by the error: the redaction hides it."""
    out = run_script("akidb-gateway", *args)
    assert out.returncode == 2
    assert said in out.stderr
    assert KEY not in out.stdout + out.stderr
