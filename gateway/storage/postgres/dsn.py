"""A DSN's password never leaves the process: `redacted` hides it in any text (an error, a log line).

Both libpq forms hold one: `postgresql://user:secret@host/db` and `host=h password=secret`. The password
parsed from the configured DSN is replaced wherever it appears, whatever surrounds it (a server's message
could quote it bare); then `shared.redact.redact`, the one place that knows what a DSN password looks like,
masks both shapes, for text that quotes another DSN. Every log line passes through that function as well.
"""

from __future__ import annotations

from psycopg import conninfo

from shared.redact import HIDDEN, redact


def password_of(dsn: str) -> str | None:
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
        return str(password) if password else None
    except Exception:  # an unparsable DSN: `redact` still masks what looks like a password
        return None


def redacted(text: str, dsn: str | None = None) -> str:
    """`text` with the DSN's password (and anything shaped like a DSN password) replaced by `[redacted]`."""
    secret = password_of(dsn) if dsn else None
    if secret:
        text = text.replace(secret, HIDDEN)
    return redact(text)
