"""CURVE key files: made 0600, never overwritten, read back by pyzmq, errors that name the knob."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from shared.config import load_config
from shared.curve import CurveKeyError, create_pair, ensure_gateway_keys, key_paths, load_pair, load_worker_keys


def paths(tmp_path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    return key_paths(load_config(None, {}, [f"storage.data_dir={tmp_path}", *overrides]))


def test_defaults_live_under_the_data_dir_and_each_can_be_set(tmp_path: Path) -> None:
    p = paths(tmp_path)
    assert p.server_key == tmp_path / "keys" / "gateway.key_secret"
    assert p.server_public_key == tmp_path / "keys" / "gateway.key"
    assert p.workers_dir == tmp_path / "keys" / "workers"
    assert p.worker_key == p.local_worker_key == tmp_path / "keys" / "local-worker.key_secret"
    q = paths(tmp_path, "zmq.keys_dir=/k", "zmq.worker_key=/w/m.key_secret", "zmq.server_public_key=/w/g.key")
    assert (q.server_key, q.worker_key, q.server_public_key) == (
        Path("/k/gateway.key_secret"),
        Path("/w/m.key_secret"),
        Path("/w/g.key"),
    )


def test_first_start_makes_both_pairs_0600_and_accepts_the_local_one_and_never_overwrites(tmp_path: Path) -> None:
    p = paths(tmp_path)
    server = ensure_gateway_keys(p)
    for f in (p.server_key, p.server_public_key, p.local_worker_key, p.workers_dir / "local-worker.key"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(p.keys_dir.stat().st_mode) == 0o700
    worker = load_worker_keys(p)
    assert worker.server_public == server.public
    assert list(zmq.auth.load_certificates(p.workers_dir)) == [worker.pair.public]  # pyzmq reads our files
    (p.workers_dir / "local-worker.key").unlink()  # the operator removed it: a restart does not bring it back
    assert ensure_gateway_keys(p) == server
    assert not (p.workers_dir / "local-worker.key").exists()
    with pytest.raises(FileExistsError):
        create_pair(p.keys_dir, "gateway")
    assert load_pair(p.server_key, "zmq.server_key") == server


def test_unusable_files_name_the_knob(tmp_path: Path) -> None:
    public_file, _ = create_pair(tmp_path, "w")
    with pytest.raises(CurveKeyError, match=r"zmq.worker_key: .*holds no secret key"):
        load_pair(public_file, "zmq.worker_key")
    with pytest.raises(CurveKeyError, match=r"zmq.worker_key: .*cannot be read"):
        load_pair(tmp_path / "nope.key_secret", "zmq.worker_key")
    (tmp_path / "junk.key_secret").write_text("hello\n")
    with pytest.raises(CurveKeyError, match="not a CURVE key file"):
        load_pair(tmp_path / "junk.key_secret", "zmq.worker_key")


# ---- first start is atomic: a crash at any step leaves a state the next start completes ----------------------


class Crash(BaseException):
    """The process dies here (BaseException: nothing on the way catches it)."""


def crash_at(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the `step`-th file write or rename of key making raise `Crash`."""
    count = 0

    def dying(real):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            if count == step:
                raise Crash
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "write", dying(os.write))
    monkeypatch.setattr(os, "replace", dying(os.replace))


def assert_complete(p) -> None:  # type: ignore[no-untyped-def]
    """Both pairs whole, their public files matching, the local workers' key accepted."""
    server = ensure_gateway_keys(p)
    worker = load_worker_keys(p)
    assert worker.server_public == server.public
    assert zmq.auth.load_certificate(p.local_worker_public)[0] == worker.pair.public
    assert list(zmq.auth.load_certificates(p.workers_dir)) == [worker.pair.public]
    assert not list(p.keys_dir.glob(".*")), "no temporary file or folder is left"


def test_a_crash_at_any_step_of_the_first_start_is_completed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = 0
    for step in range(1, 50):
        p = paths(tmp_path / str(step))
        with monkeypatch.context() as m:
            crash_at(step, m)
            try:
                ensure_gateway_keys(p)
            except Crash:
                steps = step
            else:
                break
        assert_complete(p)
    assert steps >= 8, "every write and rename of both pairs was a crash point"


@pytest.mark.parametrize(
    "leftover",
    [
        "workers/local-worker.key",  # accepted, then the pair never moved in
        "local-worker.key",  # the public half moved in, not the secret
        "gateway.key",
    ],
)
def test_a_public_key_left_without_its_secret_is_replaced_not_a_traceback(tmp_path: Path, leftover: str) -> None:
    p = paths(tmp_path)
    stale, _ = create_pair(tmp_path / "elsewhere", "stale")
    (p.keys_dir / leftover).parent.mkdir(parents=True, exist_ok=True)
    (p.keys_dir / leftover).write_bytes(stale.read_bytes())
    (p.keys_dir / ".making-x").mkdir()  # a crash's temporary folder, maybe holding a secret: swept
    (p.keys_dir / ".making-x" / "gateway.key_secret").write_text("secret")
    assert_complete(p)


def test_a_secret_without_its_public_half_gets_it_back(tmp_path: Path) -> None:
    p = paths(tmp_path)
    server = ensure_gateway_keys(p)
    p.server_public_key.unlink()
    p.local_worker_public.unlink()
    assert ensure_gateway_keys(p) == server
    assert_complete(p)


def test_a_damaged_secret_or_unusable_folder_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    p = paths(tmp_path)
    ensure_gateway_keys(p)
    p.server_key.write_bytes(b"")  # e.g. a disk that lost the file's data
    with pytest.raises(CurveKeyError, match=r"zmq.server_key: .*remove it \(and gateway.key\) and restart") as err:
        ensure_gateway_keys(p)
    assert "\n" not in str(err.value)
    (tmp_path / "file").write_text("")
    with pytest.raises(CurveKeyError, match=r"zmq.keys_dir: cannot make the CURVE keys in .*file/keys"):
        ensure_gateway_keys(paths(tmp_path, f"zmq.keys_dir={tmp_path / 'file' / 'keys'}"))


@pytest.mark.parametrize("writes_before_full", [0, 1, 2, 3, 4])
def test_a_first_start_on_a_full_disk_says_so_and_leaves_no_half_made_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writes_before_full: int
) -> None:
    """Whichever key file the disk refuses, the next start (with room) makes a complete, accepted set."""
    p = paths(tmp_path)
    real_write, calls = os.write, []

    def write(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) > writes_before_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(CurveKeyError, match="no space left to make the gateway's CURVE keys"):
        ensure_gateway_keys(p)
    monkeypatch.setattr(os, "write", real_write)
    server = ensure_gateway_keys(p)
    worker = load_worker_keys(p)
    assert worker.server_public == server.public
    assert list(zmq.auth.load_certificates(p.workers_dir)) == [worker.pair.public]
