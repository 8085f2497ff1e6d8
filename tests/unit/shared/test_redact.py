"""Secrets never leave the process in text: the redaction itself, and every log path that goes through it."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from shared.keys_cli import make_api_key
from shared.redact import HIDDEN, looks_like_raw_key, redact
from tests.support.logs import captured_logs

KEY, _ = make_api_key("app", ["read"])
CURVE_SECRET = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"got {KEY!r}", "got '"),
        (f'    secret-key = "{CURVE_SECRET}"', "secret-key = "),
        ("postgresql://akidb:s3cr3t%40x@db.example:5432/akidb", "postgresql://akidb:"),
        ("storage.postgres.dsn: postgres://u:p@h/db?sslmode=require is wrong", "@h/db?sslmode=require is wrong"),
        ("host=db.example user=akidb password=s3cr3t dbname=akidb", "user=akidb password=[redacted] dbname=akidb"),
        ("dsn 'host=h PASSWORD = ' :p@ s3cr3t\\' ' port=5432'", "PASSWORD = [redacted] port=5432'"),
    ],
)
def test_secrets_are_hidden_and_the_rest_is_kept(text: str, kept: str) -> None:
    out = redact(text)
    assert HIDDEN in out and kept in out
    for secret in (KEY, CURVE_SECRET, "s3cr3t", ":p@"):
        assert secret not in out


def test_text_without_secrets_is_unchanged() -> None:
    plain = ("http://localhost:8080/embed", "tcp://127.0.0.1:5555", "akidb_ alone", "user@host", "a: b@c", "password")
    for text in plain:
        assert redact(text) == text
    assert looks_like_raw_key(KEY) and not looks_like_raw_key("akidb-gateway") and not looks_like_raw_key(3)


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the process writes to stderr once logging is configured (JSON lines)."""
    yield from captured_logs(monkeypatch)


def test_structlog_stdlib_and_uncaught_tracebacks_are_redacted(stderr: io.StringIO) -> None:
    dsn = "postgresql://akidb:hunter2@db/akidb"
    log = structlog.get_logger("test")
    log.info("connecting", dsn=dsn, nested={"keys": [KEY]})
    try:
        raise ValueError(f"bad value {KEY!r}")
    except ValueError:
        log.exception("failed")
        logging.getLogger("aiohttp.server").exception("Error handling request %s", dsn)
        sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    err = stderr.getvalue()
    lines = [line for line in err.splitlines() if line.startswith("{")]
    assert json.loads(lines[0])["dsn"] == f"postgresql://akidb:{HIDDEN}@db/akidb"
    assert "Traceback" in err and "bad value" in err and "Error handling request" in err
    assert KEY not in err and "hunter2" not in err
