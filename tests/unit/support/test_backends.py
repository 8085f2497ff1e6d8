"""The backend parametrisation skips an engine exactly when importlib cannot find it."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import backends


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Pretend the named modules are not installed (find_spec answers None for them)."""
    real = importlib.util.find_spec

    def hide(*names: str) -> None:
        monkeypatch.setattr(
            backends.importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a)
        )

    return hide


def test_openvino_missing_is_skipped_with_a_reason(without) -> None:  # type: ignore[no-untyped-def]
    without("openvino")
    assert backends.missing_reason("mlx") is None
    assert backends.missing_reason("openvino") == (
        "openvino is not installed here (pyproject installs openvino on x86 only)"
    )
    mlx, openvino = backends.backend_params()
    assert mlx == "mlx"
    assert openvino.values == ("openvino",)
    [mark] = openvino.marks
    assert (mark.name, mark.kwargs["reason"]) == ("skip", backends.missing_reason("openvino"))


def test_every_installed_backend_runs(without) -> None:  # type: ignore[no-untyped-def]
    without()  # this machine's real answer for anything else, here nothing hidden
    installed = [b for b in backends.BACKENDS if importlib.util.find_spec(b) is not None]
    assert [p for p in backends.backend_params() if isinstance(p, str)] == installed
