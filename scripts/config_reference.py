"""Print the configuration reference (every key, its default, its environment variable) as Markdown."""

from __future__ import annotations

import sys
from pathlib import Path

from shared.config import ENV_PREFIX, describe


def table() -> str:
    lines = ["| key | default | meaning | environment variable |", "|---|---|---|---|"]
    for key, default, kind, meaning in describe():
        env = ENV_PREFIX + "__".join(part.upper() for part in key.split("."))
        if isinstance(default, tuple):
            default = ",".join(default)
        shown = "—" if default is None else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        lines.append(f"| `{key}` | {shown} | {meaning} ({kind}) | `{env}` |")
    return "\n".join(lines)


def write(readme: Path) -> None:
    """Replace the generated block between the README's config-reference markers."""
    text = readme.read_text()
    start = text.index("\n", text.index("<!-- config-reference:start")) + 1
    end = text.index("<!-- config-reference:end -->")
    readme.write_text(text[:start] + table() + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write(Path(sys.argv[2]))
    else:
        print(table())
