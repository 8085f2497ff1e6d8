"""Collapsed stacks (py-spy's `--format raw`): read them, rank frames by own time, draw a flame graph SVG.

py-spy writes either an SVG or raw stacks per run, not both; from the raw stacks we get both the
ranking (which the SVG cannot give back) and the picture, from one sampling of the process.
"""

from __future__ import annotations

import html
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field

_LINE = re.compile(r"^(.*) (\d+)$")
_LINENO = re.compile(r":\d+\)$")


def read_collapsed(text: str) -> Counter[tuple[str, ...]]:
    """`frame;frame;leaf count` lines (root first) as {stack: samples}."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            stacks[tuple(m.group(1).split(";"))] += int(m.group(2))
    return stacks


def function_of(frame: str) -> str:
    """`handler (gateway/api/routes/search.py:23)` → `handler (gateway/api/routes/search.py)`: lines join."""
    return _LINENO.sub(")", frame)


def top_frames(stacks: Counter[tuple[str, ...]], n: int) -> list[dict[str, object]]:
    """The n functions with the most own time (samples where they are the leaf), with their total share."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        own[function_of(stack[-1])] += count
        for fn in {function_of(f) for f in stack}:  # once per stack, however deep the recursion
            inclusive[fn] += count
    return [
        {"own_pct": round(100 * c / total, 1), "total_pct": round(100 * inclusive[fn] / total, 1), "function": fn}
        for fn, c in own.most_common(n)
    ]


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def svg(stacks: Counter[tuple[str, ...]], title: str, width: int = 1400, row: int = 17) -> str:
    """A flame graph (root at the bottom); hover a box for its samples and share."""
    root = _Node("all")
    for stack, count in stacks.items():
        root.count += count
        node = root
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
    depth = _depth(root)
    height = (depth + 1) * row + 40
    total = root.count or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
        f'font-size="11"><rect width="100%" height="100%" fill="#fdfdf6"/>',
        f'<text x="10" y="20" font-size="14">{html.escape(title)} ({total} samples)</text>',
    ]

    def draw(node: _Node, x: float, level: int) -> None:
        w = node.count / total * (width - 20)
        if w < 0.5:  # too thin to see: leave it (and its children) out
            return
        y = height - (level + 1) * row - 5
        hue = zlib.crc32(function_of(node.name).encode()) % 60
        label = html.escape(node.name[: max(0, int(w / 6.6) - 1)])
        tip = html.escape(f"{node.name}: {node.count} samples, {100 * node.count / total:.1f}%")
        out.append(
            f'<g><title>{tip}</title><rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" '
            f'fill="hsl({hue},85%,62%)" rx="2"/><text x="{x + 3:.1f}" y="{y + row - 5}">{label}</text></g>'
        )
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, x, level + 1)
            x += child.count / total * (width - 20)

    draw(root, 10.0, 0)
    out.append("</svg>")
    return "\n".join(out)


def _depth(node: _Node) -> int:
    return 1 + max((_depth(c) for c in node.children.values()), default=0)
