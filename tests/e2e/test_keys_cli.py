"""`akidb-keys`: an API key the gateway accepts, and CURVE key pairs that are private and never overwritten."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
import zmq.auth

from gateway.api.auth import KeyTable
from shared.config import ApiKeyEntry, load_config
from tests.support.processes import ROOT, child_env


def keys(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.keys_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        cwd=cwd,
    )


def test_the_console_script_is_registered() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["akidb-keys"] == "shared.keys_cli:main"


def test_api_prints_a_key_once_and_a_config_line_that_accepts_it(tmp_path: Path) -> None:
    out = keys("api", "--name", "app", "--scopes", "read,write")
    assert out.returncode == 0, out.stderr
    key = re.search(r"^  (akidb_\S+)$", out.stdout, re.M)
    assert key, out.stdout
    assert out.stdout.count(key.group(1)) == 1  # the key itself appears once; the config lines hold its hash
    yaml_line = next(line for line in out.stdout.splitlines() if line.strip().startswith("- {name: app"))
    config = tmp_path / "akidb.yaml"
    config.write_text("auth:\n  keys:\n  " + yaml_line.strip() + "\n")
    table = load_config(config).auth.keys
    json_line = json.loads(out.stdout.strip().splitlines()[-1])
    assert table == (ApiKeyEntry("app", json_line["sha256"], ("read", "write")),)

    assert KeyTable(table).lookup(key.group(1)) == table[0]
    assert yaml.safe_load(yaml_line.strip())[0]["scopes"] == ["read", "write"]
    assert keys("api", "--name", "app").stdout != out.stdout  # a new random key each time


def test_api_collections_makes_a_scoped_record_both_config_lines_accept(tmp_path: Path) -> None:
    out = keys("api", "--name", "team-a", "--scopes", "read,admin", "--collections", "team-a-*, *-shared")
    assert out.returncode == 0, out.stderr
    yaml_line = next(line for line in out.stdout.splitlines() if line.strip().startswith("- {name: team-a"))
    config = tmp_path / "akidb.yaml"
    config.write_text("auth:\n  keys:\n  " + yaml_line.strip() + "\n")
    (entry,) = load_config(config).auth.keys
    assert entry.collections == ("team-a-*", "*-shared")
    lines = tmp_path / "keys.jsonl"
    lines.write_text(out.stdout.strip().splitlines()[-1] + "\n")
    assert load_config(None, {}, [f"auth.keys_file={lines}"]).auth.keys == (entry,)
    assert keys("api", "--name", "app", "--collections", " , ").returncode == 2


def test_api_refuses_unknown_scopes_and_odd_names() -> None:
    assert keys("api", "--name", "app", "--scopes", "read,root").returncode == 2
    assert keys("api", "--name", "../etc", "--scopes", "read").returncode == 2


def test_curve_makes_a_private_pair_and_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    out = keys("curve", "--name", "mac-studio-2", "--dir", str(folder))
    assert out.returncode == 0, out.stderr
    public, secret = folder / "mac-studio-2.key", folder / "mac-studio-2.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o600  # every key file is private, as the gateway makes them
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    pub, sec = zmq.auth.load_certificate(secret)
    assert sec is not None and zmq.auth.load_certificate(public) == (pub, None)
    before = secret.read_bytes()

    again = keys("curve", "--name", "mac-studio-2", "--dir", str(folder))
    assert again.returncode == 1 and "never overwritten" in again.stderr
    assert secret.read_bytes() == before
