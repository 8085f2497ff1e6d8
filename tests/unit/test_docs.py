"""Docs that must not drift from the code."""

from __future__ import annotations

from scripts.config_reference import table
from tests.support.processes import ROOT


def test_readme_config_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-reference:start")
    body = readme[readme.index("\n", start) + 1 : readme.index("<!-- config-reference:end -->")]
    assert body.strip() == table().strip(), "run: python scripts/config_reference.py and paste it into README.md"
