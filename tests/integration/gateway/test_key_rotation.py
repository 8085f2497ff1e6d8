"""Rotating API keys without a restart: auth.keys_file is re-read when it changes and on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
import structlog

from gateway.api import keys
from gateway.api.auth import READ, Rules
from gateway.api.key_rotation import KeysFileWatch, rotating, signature
from gateway.app import create_app
from shared.config import key_digest, load_config
from tests.support.gateway import GatewayFactory, eventually, make_config


def record(name: str, scopes: tuple[str, ...] = (READ,)) -> str:
    return json.dumps({"name": name, "sha256": key_digest(f"{name}-key"), "scopes": list(scopes)})


def write_keys(path: Path, *names: str) -> None:
    """Write the file the way an operator's tooling should: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    staged.write_text("".join(record(n) + "\n" for n in names))
    staged.replace(path)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-key"}


@pytest.mark.parametrize(
    ("ticks", "changes"),
    [
        ([(1, 10, 5), (1, 10, 5), (1, 10, 5)], [False, False, False]),
        ([(1, 10, 6)], [True]),  # touched or rewritten in place
        ([(2, 10, 5), (2, 10, 5)], [True, False]),  # replaced by rename: once per change
        ([None, None, (1, 10, 5)], [True, False, True]),  # gone (and refused), then back: read again
        ([(1, 11, 5)], [True]),
    ],
)
def test_the_watch_says_once_per_change(ticks: list[tuple[int, int, int] | None], changes: list[bool]) -> None:
    watch = KeysFileWatch((1, 10, 5))
    assert [watch.changed(t) for t in ticks] == changes


def test_signature_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert signature(tmp_path / "absent") is None
    (tmp_path / "k").write_text("x")
    assert signature(tmp_path / "k") is not None


async def test_a_changed_file_swaps_the_keys_from_the_next_request_on(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path, "old")
    inline = "auth.keys=" + f"[{record('ops')}]"
    async with start_gateway(inline, f"auth.keys_file={path}") as gw:
        rotation = gw.app[keys.KEY_ROTATION]
        assert (await gw.client.get("/collections", headers=bearer("old"))).status == 200
        assert (await gw.client.get("/collections", headers=bearer("new"))).status == 401

        with structlog.testing.capture_logs() as logs:
            write_keys(path, "new")
            await eventually(lambda: rotation.reloads == 1)
        assert (await gw.client.get("/collections", headers=bearer("old"))).status == 401
        assert (await gw.client.get("/collections", headers=bearer("new"))).status == 200
        assert (await gw.client.get("/collections", headers=bearer("ops"))).status == 200  # the config's own key stays
        (line,) = [e for e in logs if e["event"] == "keys_reloaded"]
        assert (line["added"], line["removed"], line["keys"], line["reason"]) == (["new"], ["old"], 2, "changed")


async def test_a_bad_file_is_logged_and_the_old_keys_stay(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path, "old")
    async with start_gateway(f"auth.keys_file={path}") as gw:
        rotation = gw.app[keys.KEY_ROTATION]
        for bad in ("{not json\n", record("old") + "\n" + record("old") + "\n", '{"name": "x", "sha256": "ab"}\n'):
            with structlog.testing.capture_logs() as logs:
                staged = path.with_suffix(".new")
                staged.write_text(bad)
                staged.replace(path)
                await eventually(lambda: any(e["event"] == "keys_file_rejected" for e in logs))
            (line,) = [e for e in logs if e["event"] == "keys_file_rejected"]
            assert line["keys_file"] == str(path) and line["error"] and line["log_level"] == "error"
            assert (await gw.client.get("/collections", headers=bearer("old"))).status == 200
        assert rotation.reloads == 0


async def test_an_emptied_file_refuses_everyone_instead_of_opening_the_gateway(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path, "old")
    async with start_gateway(f"auth.keys_file={path}") as gw:
        write_keys(path)
        await eventually(lambda: gw.app[keys.KEY_ROTATION].reloads == 1)
        assert (await gw.client.get("/collections")).status == 401
        assert (await gw.client.get("/collections", headers=bearer("old"))).status == 401
        assert (await gw.client.get("/health")).status == 200


async def test_sighup_rereads_the_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path, "old")
    rules = Rules.from_config(load_config(None, {}, [f"auth.keys_file={path}"]).auth)
    # An hour between polls: only the signal can explain a re-read within this test.
    async with rotating(rules, path, interval_s=3600) as rotation:
        loop = asyncio.get_running_loop()
        assert loop.remove_signal_handler(signal.SIGHUP)  # installed: sending the signal cannot kill the test run
        loop.add_signal_handler(signal.SIGHUP, rotation.reread.set)
        write_keys(path, "new")
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: rotation.reloads == 1)
        assert rules.table.lookup("new-key") is not None and rules.table.lookup("old-key") is None
    assert not loop.remove_signal_handler(signal.SIGHUP)  # and removed with the rotation


def test_rest_and_grpc_share_one_rules_object(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path, "old")
    app = create_app(
        make_config("tcp://127.0.0.1:1", str(tmp_path), "server.grpc_enabled=true", f"auth.keys_file={path}")
    )
    assert app[keys.GRPC].rules is app[keys.AUTH]
    assert app[keys.AUTH].table.lookup("old-key") is not None


def test_an_empty_keys_file_at_start_is_auth_on_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    write_keys(path)
    with structlog.testing.capture_logs() as logs:
        app = create_app(make_config("tcp://127.0.0.1:1", str(tmp_path), f"auth.keys_file={path}"))
    assert app[keys.AUTH].required and not app[keys.AUTH].table.enabled
    (line,) = [e for e in logs if e["event"] == "auth_no_keys"]
    assert line["log_level"] == "warning" and line["keys_file"] == str(path)
