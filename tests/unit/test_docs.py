"""Docs that must not drift from the code."""

from __future__ import annotations

import re

from scripts.config_reference import table
from scripts.security_reference import BLOCKS
from tests.support.processes import ROOT


def test_readme_config_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-reference:start")
    body = readme[readme.index("\n", start) + 1 : readme.index("<!-- config-reference:end -->")]
    assert body.strip() == table().strip(), "run: python scripts/config_reference.py and paste it into README.md"


def test_security_docs_open_routes_and_scope_table_are_current() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    for name, make in BLOCKS.items():
        start = doc.index(f"<!-- {name}:start")
        body = doc[doc.index("\n", start) + 1 : doc.index(f"<!-- {name}:end -->")]
        assert body.strip() == make().strip(), "run: make docs (python -m scripts.security_reference --write ...)"


def test_relative_links_in_the_docs_are_closed_and_point_at_files() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target, end in re.findall(r"\]\(([^)\s]*)(\)|\s|$)", doc.read_text(), flags=re.MULTILINE):
            path = target.split("#")[0]
            if end != ")":
                broken.append(f"{doc.name}: ']({target}' is not closed")
            elif path and not re.match(r"[a-z]+:", path) and not (doc.parent / path).exists():
                broken.append(f"{doc.name}: {target} does not exist")
    assert broken == []
