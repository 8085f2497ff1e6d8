"""Relevance scores from a reranker's logits: one function the worker's tests and the gateway share."""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """0..1 relevance scores from one-label logits, as sentence-transformers' CrossEncoder.predict returns them."""
    # Clipped: beyond ±60 the float32 score is 0 or 1 anyway, and exp(800) would overflow.
    x = np.clip(logits.astype(np.float64), -60.0, 60.0)
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
