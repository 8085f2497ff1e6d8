"""structlog set-up shared by both processes: JSON lines in production, readable in a terminal.

Every line is redacted (`shared.redact`) on its way out, whichever logger wrote it: structlog events, stdlib
records (aiohttp's, asyncio's) and the traceback of an exception nobody caught.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

import structlog

from shared.redact import redact


def configure_logging(level: str = "info", fmt: str = "auto", process: str = "") -> None:
    """Route structlog (and stdlib logging) to stderr in the chosen format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if process:
        processors.insert(0, _static("process", process))
    # Tracebacks become text before the renderer, so the redaction sees them too.
    processors += [structlog.processors.format_exc_info, _redact_event]
    if use_json:
        processors.append(structlog.processors.JSONRenderer())
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    numeric = getattr(logging, level.upper())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(logging.BASIC_FORMAT))
    sys.excepthook = _redacted_excepthook


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter whose output (message and traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _redact_event(_logger: object, _name: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    return {key: _redacted(value) for key, value in event.items()}


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def _redacted_excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))


def _static(key: str, value: str) -> structlog.typing.Processor:
    def add(_logger: object, _name: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event.setdefault(key, value)
        return event

    return add
