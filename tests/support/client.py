"""The Python client (`client/akidb_client`) for server tests that drive it: it is its own package with
its own venv (`make client-setup`), so here it is imported from the checkout; its dependencies (httpx,
tqdm) are in the server's test extras."""

from __future__ import annotations

import sys

from tests.support.processes import ROOT

if str(ROOT / "client") not in sys.path:
    sys.path.insert(0, str(ROOT / "client"))

from akidb_client.aio import AsyncAkiDB

__all__ = ["AsyncAkiDB"]
