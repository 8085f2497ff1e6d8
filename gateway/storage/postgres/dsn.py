"""A DSN's password never leaves the process: `redacted` hides it in any text (an error, a log line).

Both libpq forms hold one: `postgresql://user:secret@host/db` and `host=h password=secret`. The password
parsed from the configured DSN is replaced wherever it appears, and the two shapes are masked too, for
text that quotes another DSN (a server's message, a changed config).
"""

from __future__ import annotations

import re

from psycopg import conninfo

HIDDEN = "[redacted]"
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(@)")
_KEY_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def password_of(dsn: str) -> str | None:
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
        return str(password) if password else None
    except Exception:  # an unparsable DSN: the shapes below still mask what looks like a password
        return None


def redacted(text: str, dsn: str | None = None) -> str:
    """`text` with the DSN's password (and anything shaped like a DSN password) replaced by `[redacted]`."""
    secret = password_of(dsn) if dsn else None
    if secret:
        text = text.replace(secret, HIDDEN)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + HIDDEN + m.group(2), text)
    return _KEY_PASSWORD.sub(lambda m: m.group(1) + HIDDEN, text)
