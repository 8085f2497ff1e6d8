"""What a secret looks like in text, and the one function that hides it before text leaves the process.

Config errors, log lines and tracebacks all pass through `redact`, so a raw API key pasted in the wrong place,
a CURVE secret key read from a certificate, or the password of a database URL never reach stdout, stderr or a
log file. It only recognises shapes (the `akidb_` prefix, pyzmq's `secret-key = "..."`, a database DSN's password
in either of libpq's forms: `scheme://user:pw@` and `password=pw`); code that holds a secret of another shape must
not put it in a message at all. The PostgreSQL engine also hides its own DSN's password wherever it appears
(`gateway.storage.postgres.dsn.redacted`, which ends here).
"""

from __future__ import annotations

import re

# `akidb-keys api` prefixes every key with this, so people and secret scanners can tell an AkiDB key apart.
RAW_KEY_PREFIX = "akidb_"
HIDDEN = "[redacted]"
RAW_KEY_HINT = "looks like a raw key; store its sha256 (`akidb-keys api`)"

_RAW_KEY = re.compile(re.escape(RAW_KEY_PREFIX) + r"[A-Za-z0-9_\-]{8,}")
_CURVE_SECRET = re.compile(r"""(secret[-_]key\s*[=:]\s*["']?)[^"'\s]+""", re.IGNORECASE)
# scheme://user:password@host: the password is everything after the first ':' of the user part.
_DSN_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(@)")
# libpq's key=value form: password=secret, or password='a quoted \' secret'.
_KEY_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with raw API keys, CURVE secret keys and DSN passwords replaced by `[redacted]`."""
    text = _RAW_KEY.sub(HIDDEN, text)
    text = _CURVE_SECRET.sub(lambda m: m.group(1) + HIDDEN, text)
    text = _DSN_PASSWORD.sub(lambda m: m.group(1) + HIDDEN + m.group(2), text)
    return _KEY_PASSWORD.sub(lambda m: m.group(1) + HIDDEN, text)


def looks_like_raw_key(value: object) -> bool:
    """A string that is (or holds) an AkiDB API key as `akidb-keys api` prints it."""
    return isinstance(value, str) and _RAW_KEY.search(value) is not None
