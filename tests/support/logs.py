"""What the process logs, captured through the gateway's own logging set-up (`shared.logs`), for tests that
check what a log line holds (a secret must not reach one)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from shared.logs import configure_logging


def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Yield what the process writes to stderr once logging is configured (JSON lines); put logging back after.
    A fixture body: `yield from captured_logs(monkeypatch)`."""
    hook, text = sys.excepthook, io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(sys, "stderr", text)
    configure_logging("debug", "json", process="test")
    yield text
    sys.excepthook = hook
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level
