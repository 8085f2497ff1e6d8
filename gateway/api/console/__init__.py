"""The web console's static files (HTML, JS, CSS), served at /ui by gateway.api.routes.console."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
# The console's files and their media types: a fixed list, so no path from a URL reaches the disk.
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
ASSET_TYPES = tuple(dict.fromkeys(ASSETS.values()))
