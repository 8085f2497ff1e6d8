"""In-process speed of one embedding engine: shared by bench/raw.py (AkiDB backends) and
bench/st_baseline.py (sentence-transformers). Standard library and numpy only, so it runs in
either environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

Embed = Callable[[Sequence[str]], np.ndarray]


def throughput(embed: Embed, texts: Sequence[str], batch: int = 32) -> tuple[float, np.ndarray]:
    """Texts per second embedding `texts` in `batch`-sized calls (as 32-text requests arrive); and the rows."""
    embed(texts[:batch])  # first-call costs (shapes, allocations) are not throughput
    rows = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        rows.append(embed(texts[i : i + batch]))
    seconds = time.perf_counter() - start
    return len(texts) / seconds, np.concatenate(rows)


def single_latency_ms(embed: Embed, texts: Sequence[str], repeats: int = 30) -> float:
    """Median milliseconds to embed one short text on its own."""
    samples = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        embed([texts[i % len(texts)]])
        if i >= 3:
            samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples))


def measure(embed: Embed, short: Sequence[str], bodies: Sequence[str]) -> tuple[dict[str, float], np.ndarray]:
    """Short texts/s and bodies/s at batch 32, one short text's latency; and every row (short then bodies)."""
    short_rate, short_rows = throughput(embed, short)
    body_rate, body_rows = throughput(embed, bodies)
    figures = {
        "short_per_s": round(short_rate, 1),
        "bodies_per_s": round(body_rate, 1),
        "single_short_ms": round(single_latency_ms(embed, short), 2),
    }
    return figures, np.concatenate([short_rows, body_rows]).astype(np.float32)
