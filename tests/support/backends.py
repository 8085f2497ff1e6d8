"""The inference backends integration tests run on, skipped where this machine lacks the engine."""

from __future__ import annotations

import importlib.util
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
