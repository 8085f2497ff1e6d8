"""What both MLX encoders share: the precisions they load in, and pooling on the device."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from worker.pooling import pool

DTYPES = {"f32": mx.float32, "bf16": mx.bfloat16}


def pooled_rows(hidden: mx.array, mask: mx.array, pooling: str) -> np.ndarray:
    """Pool the hidden states in float32 on the device; only the (batch, dimension) rows reach the host."""
    rows = pool(hidden.astype(mx.float32), mask, pooling, mx)
    mx.eval(rows)
    return np.array(rows, dtype=np.float32)
