"""Which embedding backend a test runs on when the backend is not what it tests."""

from __future__ import annotations

import importlib.util
import platform
import sys

import pytest


def fastest_backend() -> str:
    """MLX on Apple silicon; elsewhere OpenVINO where it is installed (else MLX, as before)."""
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return "openvino" if not apple and importlib.util.find_spec("openvino") else "mlx"


# Integration tests that need a worker but not a particular backend (storage, restarts) run once, on the
# fastest: `pytestmark = ONE_BACKEND`. It narrows the conftest's session-scoped `backend` fixture, so they
# share that backend's worker with the tests that do run on every backend.
ONE_BACKEND = pytest.mark.parametrize("backend", [fastest_backend()], indirect=True, scope="session")
