"""The web console's static files (HTML, JS, CSS), served at /ui by gateway.routes.console."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
