"""CURVE keys for tests: one folder per test session, made the way a gateway makes it on first start.

Every test gateway and worker points `zmq.keys_dir` at it, so the secure default (CURVE with the
local-workers pair) is what the suite exercises, and a session-long worker process can serve
each test's fresh gateway.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from shared.config import load_config
from shared.curve import KeyPaths, WorkerKeys, ensure_gateway_keys, key_paths, load_worker_keys


@functools.cache
def keys_dir() -> Path:
    """The session's key folder, made (with the gateway's and the local workers' pairs) on first use."""
    folder = Path(tempfile.mkdtemp(prefix="akidb-test-keys-"))
    atexit.register(shutil.rmtree, folder, True)
    ensure_gateway_keys(paths_in(folder))
    return folder


def paths_in(folder: Path) -> KeyPaths:
    return key_paths(load_config(None, {}, [f"zmq.keys_dir={folder}"]))


def keys_setting() -> str:
    """The override that points a gateway or worker at the session's keys."""
    return f"zmq.keys_dir={keys_dir()}"


def local_worker_keys() -> WorkerKeys:
    """What a worker on the gateway's host uses: the local pair and the gateway's public key."""
    return load_worker_keys(paths_in(keys_dir()))
