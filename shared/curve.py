"""CURVE key files for the worker link: where they live, how they are made, how they are read.

The files are ZeroMQ certificates in pyzmq's own format (`zmq.auth.load_certificate` reads
them): `<name>.key` holds a public key, `<name>.key_secret` the pair. Everything made here is
created with mode 0600 in folders with mode 0700 and never overwritten, so a local user who
cannot read the files cannot join as a worker, even over loopback.

One machine needs nothing from the user: on first start the gateway makes its own pair and a
pair for the workers on its host, and puts that pair's public key in the folder of accepted
workers (only then: a key removed from that folder later stays removed). Workers started with
the same config (same `storage.data_dir`, or `zmq.keys_dir`) find that pair.
"""

from __future__ import annotations

import datetime
import errno
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from shared.config import Config

GATEWAY_NAME = "gateway"
LOCAL_WORKER_NAME = "local-worker"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
FILE_MODE = 0o600
WORK_PREFIX = ".making-"  # a pair being made; no `*.key` glob matches it
DIR_MODE = 0o700


class CurveKeyError(Exception):
    """A key file that is missing, unreadable or malformed; the message names the config key."""


@dataclass(frozen=True)
class KeyPaths:
    """Every CURVE file either process uses, resolved from the config's `zmq.*` keys."""

    keys_dir: Path
    server_key: Path  # the gateway's pair (its secret key)
    server_public_key: Path  # the gateway's public key, as a worker reads it
    workers_dir: Path  # the public keys of the workers the gateway accepts
    worker_key: Path  # this worker's pair
    local_worker_key: Path  # the pair the gateway makes for workers on its own host

    @property
    def local_worker_public(self) -> Path:
        return _public_of(self.local_worker_key)


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # z85, 40 bytes
    secret: bytes


@dataclass(frozen=True)
class WorkerKeys:
    """What a worker's DEALER needs: its own pair and the gateway's public key."""

    pair: KeyPair
    server_public: bytes


def key_paths(cfg: Config) -> KeyPaths:
    """The files the config names, with their defaults under `zmq.keys_dir` (else `<storage.data_dir>/keys`)."""
    z = cfg.zmq
    keys_dir = Path(z.keys_dir) if z.keys_dir else Path(cfg.storage.data_dir) / "keys"
    server_key = Path(z.server_key) if z.server_key else keys_dir / f"{GATEWAY_NAME}{SECRET_SUFFIX}"
    local = keys_dir / f"{LOCAL_WORKER_NAME}{SECRET_SUFFIX}"
    return KeyPaths(
        keys_dir=keys_dir,
        server_key=server_key,
        server_public_key=Path(z.server_public_key) if z.server_public_key else _public_of(server_key),
        workers_dir=Path(z.workers_dir) if z.workers_dir else keys_dir / "workers",
        worker_key=Path(z.worker_key) if z.worker_key else local,
        local_worker_key=local,
    )


def create_pair(folder: str | Path, name: str) -> tuple[Path, Path]:
    """Make `<name>.key` and `<name>.key_secret` in `folder` (0600); FileExistsError if the pair exists."""
    folder = Path(folder)
    _make_dir(folder)
    public, secret = zmq.curve_keypair()
    secret_path = folder / f"{name}{SECRET_SUFFIX}"
    public_path = folder / f"{name}{PUBLIC_SUFFIX}"
    # The secret first, exclusively: whoever wins it writes the matching public file.
    _write_new(secret_path, _certificate(public, secret))
    try:
        _write_new(public_path, _certificate(public, None))
    except OSError:
        secret_path.unlink(missing_ok=True)  # a secret without its public file would be taken as a made pair
        raise
    return public_path, secret_path


def ensure_gateway_keys(paths: KeyPaths) -> KeyPair:
    """The gateway's pair, made on first start with a pair for local workers (accepted from then on).

    Each pair is made whole in a temporary folder and renamed into place, the secret last: a pair whose secret
    file exists is complete (a missing public half is written again from it). The local workers' public key
    is accepted before their pair is moved in, so a crash in between can never leave a pair nobody accepts.
    A state this cannot complete is a `CurveKeyError` saying what to remove, never a traceback.
    """
    try:
        for folder in {paths.keys_dir, paths.server_key.parent}:
            _sweep_work(folder)
        if not paths.server_key.exists():
            if paths.server_key.suffix != SECRET_SUFFIX:
                raise CurveKeyError(
                    f"zmq.server_key: {paths.server_key} does not exist (a pair file ends in .key_secret)"
                )
            _make_in_place(paths.server_key, accept_in=None)
        _make_dir(paths.workers_dir)
        if not paths.local_worker_key.exists():
            _make_in_place(paths.local_worker_key, accept_in=paths.workers_dir)
        _complete(paths.local_worker_key, "zmq.keys_dir (the local workers' pair)")
        _complete(paths.server_key, "zmq.server_key")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            # Only a first start makes keys, and workers need them as files: nothing to serve them with yet.
            raise CurveKeyError(
                f"zmq.keys_dir: no space left to make the gateway's CURVE keys in {paths.keys_dir} "
                f"({exc.strerror}); free space on that disk and start again (no half-written key was left)"
            ) from None
        raise CurveKeyError(
            f"zmq.keys_dir: cannot make the CURVE keys in {paths.keys_dir} ({exc.strerror or exc}); "
            "make the folder writable by the gateway's user, or set zmq.keys_dir"
        ) from None
    return load_pair(paths.server_key, "zmq.server_key")


def _make_in_place(secret_path: Path, accept_in: Path | None) -> None:
    """Make a pair in a temporary folder next to `secret_path`, then rename it in: public, then secret."""
    name = secret_path.name.removesuffix(SECRET_SUFFIX)
    _make_dir(secret_path.parent)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=secret_path.parent))
    try:
        public_path, made_secret = create_pair(work, name)
        if accept_in is not None:
            _replace_atomically(accept_in / public_path.name, public_path.read_bytes())
        # A public file without its secret is a half-made pair from before: replacing it completes it.
        os.replace(public_path, _public_of(secret_path))
        os.replace(made_secret, secret_path)
        fsync_dir(secret_path.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _complete(secret_path: Path, knob: str) -> None:
    """Check a pair file holds both keys, and write its public half again if only the secret exists."""
    public_path = _public_of(secret_path)
    try:
        public, secret = _load(secret_path, knob)
        if secret is None:
            raise CurveKeyError(f"{knob}: {secret_path} holds no secret key")
    except CurveKeyError as exc:
        raise CurveKeyError(
            f"{exc}; remove it (and {public_path.name}) and restart: the gateway makes a new pair "
            "(remote workers then need its new public key)"
        ) from None
    if secret_path.suffix == SECRET_SUFFIX and not public_path.exists():
        _replace_atomically(public_path, _certificate(public, None))


def _replace_atomically(path: Path, data: bytes) -> None:
    """`path` holds `data` or what it held before, never a part: written under a temporary name, then renamed."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_new(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _sweep_work(keys_dir: Path) -> None:
    """Remove the temporary folders a crash left while making a pair (they may hold secret keys)."""
    if keys_dir.is_dir():
        for work in keys_dir.glob(f"{WORK_PREFIX}*"):
            shutil.rmtree(work, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_pair(path: Path, knob: str) -> KeyPair:
    """A public + secret key from a `.key_secret` file; CurveKeyError naming `knob` if it cannot."""
    public, secret = _load(path, knob)
    if secret is None:
        raise CurveKeyError(f"{knob}: {path} holds no secret key (use the .key_secret file of the pair)")
    return KeyPair(public, secret)


def load_public(path: Path, knob: str) -> bytes:
    """A public key from a `.key` (or `.key_secret`) file."""
    return _load(path, knob)[0]


def load_worker_keys(paths: KeyPaths) -> WorkerKeys:
    """The worker's pair and the gateway's public key."""
    return WorkerKeys(
        load_pair(paths.worker_key, "zmq.worker_key"), load_public(paths.server_public_key, "zmq.server_public_key")
    )


def missing_worker_keys(paths: KeyPaths) -> list[Path]:
    """The worker's key files that do not exist (yet: the gateway makes the local ones on first start)."""
    return [p for p in (paths.worker_key, paths.server_public_key) if not p.exists()]


def _load(path: Path, knob: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except PermissionError:
        raise CurveKeyError(f"{knob}: {path} is not readable by this user") from None
    except OSError as exc:
        raise CurveKeyError(f"{knob}: {path} cannot be read ({exc})") from None
    except ValueError as exc:
        raise CurveKeyError(f"{knob}: {path} is not a CURVE key file ({exc})") from None


def _public_of(secret_path: Path) -> Path:
    return secret_path.with_name(secret_path.name.removesuffix(SECRET_SUFFIX) + PUBLIC_SUFFIX)


def _make_dir(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (whatever the umask); FileExistsError rather than overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "short write", str(path))
    except OSError:
        os.close(fd)
        # A half-written key file would stop every later start ("not a CURVE key file"); none is better.
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _certificate(public: bytes, secret: bytes | None) -> bytes:
    """pyzmq's certificate layout, so `zmq.auth.load_certificate(s)` read what we write."""
    kind = "Secret" if secret else "Public"
    lines = [
        f"#   ****  Generated on {datetime.datetime.now():%Y-%m-%d %H:%M:%S} by AkiDB  ****",
        f"#   ZeroMQ CURVE {kind} Certificate",
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS." if secret else "#   Copy it to the gateway's zmq.workers_dir.",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return ("\n".join(lines) + "\n").encode()
