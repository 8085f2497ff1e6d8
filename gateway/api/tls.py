"""TLS for both front doors from server.tls_cert_file / server.tls_key_file: HTTPS and gRPC on their ports."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from shared.config import ConfigError, ServerConfig


def ssl_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The HTTPS context, or None when no certificate is configured (plain HTTP)."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"server.tls_cert_file / server.tls_key_file: cannot load {server.tls_cert_file} with "
            f"{server.tls_key_file}: {exc}"
        ) from None
    return context


def server_credentials(server: ServerConfig) -> grpc.ServerCredentials | None:
    """gRPC's TLS credentials from the same files, or None for a plain port."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return None
    cert, key = _read(server.tls_cert_file, "tls_cert_file"), _read(server.tls_key_file, "tls_key_file")
    return grpc.ssl_server_credentials([(key, cert)])


def _read(path: str, knob: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"server.{knob}: cannot read {path}: {exc.strerror}") from None
