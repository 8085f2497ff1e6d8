"""Benchmark texts from Debian's package descriptions: "short" summaries (~12 tokens) and "bodies" (~83).

apt keeps each package's one-line summary and its long description in the lists under
/var/lib/apt/lists: in `*_Packages` files, or (Debian's default) in `*_i18n_Translation-en`
files. Either way a `Description:`/`Description-en:` field's first line is the summary and
its continuation lines are the body. Lists are compressed (lz4, gz, xz); apt's own helper
reads them all. If no list holds long descriptions, `ensure_lists` runs
`apt-get update -o Acquire::Languages=en` (root only) to fetch them.

    python -m bench.corpus short 5      # print five summaries
"""

from __future__ import annotations

import glob
import os
import random
import subprocess
import sys
from collections.abc import Iterator

LISTS = "/var/lib/apt/lists"
APT_HELPER = "/usr/lib/apt/apt-helper"
KINDS = ("short", "bodies")


def _list_files() -> list[str]:
    files = glob.glob(f"{LISTS}/*_i18n_Translation-en*") + glob.glob(f"{LISTS}/*_Packages*")
    return sorted(f for f in files if not f.endswith((".diff", ".IndexDiff")))


def read(path: str) -> str:
    """A list file's text, decompressed by apt itself (it knows every format apt stores)."""
    out = subprocess.run([APT_HELPER, "cat-file", path], capture_output=True, text=True, errors="replace")
    return out.stdout if out.returncode == 0 else ""


def translation_files() -> list[str]:
    """The English translation lists only: every stanza there is a package with its description."""
    return [f for f in _list_files() if "_i18n_Translation-en" in f]


def descriptions(text: str) -> Iterator[tuple[str, list[str]]]:
    """(summary, body lines without their one-space indent) for every stanza that has a Description field."""
    for stanza in text.split("\n\n"):
        lines = stanza.split("\n")
        for i, line in enumerate(lines):
            if line.startswith(("Description:", "Description-en:")):
                body: list[str] = []
                for cont in lines[i + 1 :]:
                    if not cont.startswith(" "):
                        break
                    body.append(cont[1:])
                yield line.split(":", 1)[1].strip(), body
                break


def ensure_lists() -> None:
    """Fetch the English descriptions with apt if no list here has any (needs root)."""
    if any("Translation-en" in f for f in _list_files()):
        return
    if os.geteuid() != 0:
        raise RuntimeError(
            "no package descriptions in /var/lib/apt/lists; run: apt-get update -o Acquire::Languages=en"
        )
    subprocess.run(["apt-get", "update", "-qq", "-o", "Acquire::Languages=en"], check=True)


def load(kind: str, n: int = 2000, seed: int = 0) -> list[str]:
    """`n` distinct texts of one kind ("short" or "bodies"), the same ones on every call with the same seed."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    ensure_lists()
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    for path in _list_files():
        for summary, lines in descriptions(read(path)):
            # " ." is a paragraph break in Debian's format; keep the words only.
            body = " ".join(line.strip() for line in lines if line.strip() != ".")
            if body and summary not in seen:
                seen.add(summary)
                pairs.append((summary, body))
    if len(pairs) < n:
        raise RuntimeError(f"only {len(pairs)} package descriptions found in {LISTS}, wanted {n}")
    pairs.sort()  # list order differs between mirrors and runs; sorting makes the sample reproducible
    random.Random(seed).shuffle(pairs)
    return [p[0] if kind == "short" else p[1] for p in pairs[:n]]


if __name__ == "__main__":
    for t in load(sys.argv[1] if len(sys.argv) > 1 else "short", int(sys.argv[2]) if len(sys.argv) > 2 else 5):
        print(t)
