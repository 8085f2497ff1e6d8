"""The committed reference vectors (tests/fixtures/*.npz) and how to compare against them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY_QWEN3 = FIXTURES / "tiny-qwen3"
TINY_QWEN3_4BIT = FIXTURES / "tiny-qwen3-4bit"
# Cross-encoders (tests/fixtures/make_tiny_rerankers.py), keyed by the reference's prefix.
TINY_RERANKERS = {
    "bert": FIXTURES / "tiny-bert-reranker",
    "xlmr": FIXTURES / "tiny-xlmr-reranker",
    "qwen3": FIXTURES / "tiny-qwen3-reranker",
}
RERANK_DOCS_PER_QUERY = 10  # tiny_rerank_reference.npz: 20 queries, each with 10 documents in a row

# MiniLM reference (tests/fixtures/make_minilm_reference.py): the texts the tests name.
SYNONYMS = (0, 1)
UNRELATED = (2, 3)
FIRST_LONG = 24  # texts[24:] are 450, 1123 and 771 tokens before truncation

# Parity bars: full precision must match sentence-transformers to float rounding; reduced
# precision (bf16, int8) to the bar.
PARITY_F32 = 0.99999
PARITY_REDUCED = 0.999


def load(name: str) -> dict[str, np.ndarray]:
    """One fixture file's arrays, e.g. load("minilm_reference")."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays, whatever their norms."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def parity_bar(precision: str) -> float:
    """The cosine a backend announcing `precision` must reach."""
    return PARITY_F32 if precision in ("f32", "float32") else PARITY_REDUCED
