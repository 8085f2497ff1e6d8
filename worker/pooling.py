"""Pooling and normalisation as pure functions over (batch, tokens, hidden) arrays.

`xp` is the array module (numpy or mlx.core), so a GPU backend pools on the device and
only the pooled rows cross to the host. Rows are right-padded: real tokens come first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.config import POOLINGS


def pool(hidden: Any, mask: Any, how: str, xp: Any) -> Any:
    """Reduce each sequence's hidden states to one vector."""
    if how == "mean":
        weights = mask[..., None].astype(hidden.dtype)
        total = (hidden * weights).sum(axis=1)
        return total / xp.maximum(weights.sum(axis=1), 1e-9)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        last = mask.astype(xp.int32).sum(axis=1) - 1
        return xp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
    raise ValueError(f"unknown pooling {how!r}; use one of {', '.join(POOLINGS)}")


def l2_normalize(rows: np.ndarray) -> np.ndarray:
    """Unit-length rows; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)
