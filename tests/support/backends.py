"""The inference backends integration tests run on: skipped where this machine lacks the engine, and the
one a test runs on when the backend is not what it tests."""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

import pytest

# Each backend's name is also the module its engine installs as.
BACKENDS = ("mlx", "openvino")


def missing_reason(backend: str) -> str | None:
    """Why `backend` cannot run here, or None if its engine is installed."""
    if importlib.util.find_spec(backend) is None:
        # OpenVINO ships for x86 only (see pyproject), so on Apple silicon this is the normal case:
        # a worker asked for it would refuse to start, and the test would wait for it in vain.
        return f"{backend} is not installed here (pyproject installs openvino on x86 only)"
    return None


def backend_params() -> list[Any]:
    """BACKENDS as pytest params, each one whose engine is not installed marked skip with the reason."""
    return [
        pytest.param(name, marks=pytest.mark.skip(reason=why)) if (why := missing_reason(name)) else name
        for name in BACKENDS
    ]


def fastest_backend() -> str:
    """MLX on Apple silicon; elsewhere OpenVINO where it is installed (else MLX, as before)."""
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return "openvino" if not apple and missing_reason("openvino") is None else "mlx"


# Integration tests that need a worker but not a particular backend (storage, restarts) run once, on the
# fastest: `pytestmark = ONE_BACKEND`. It narrows the conftest's session-scoped `backend` fixture, so they
# share that backend's worker with the tests that do run on every backend.
ONE_BACKEND = pytest.mark.parametrize("backend", [fastest_backend()], indirect=True, scope="session")
