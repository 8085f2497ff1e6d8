"""Pooling and normalisation: the same answers from numpy and from mlx.core, padding ignored."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from worker.pooling import POOLINGS, l2_normalize, pool

# Two right-padded rows: 3 real tokens, then 1 real token; padding holds huge values that
# must never leak into a pooled vector.
HIDDEN = np.array(
    [
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [900.0, 900.0]],
        [[7.0, -8.0], [900.0, 900.0], [900.0, 900.0], [900.0, 900.0]],
    ],
    dtype=np.float32,
)
MASK = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=np.int32)
EXPECTED = {
    "mean": [[3.0, 4.0], [7.0, -8.0]],
    "cls": [[1.0, 2.0], [7.0, -8.0]],
    "last": [[5.0, 6.0], [7.0, -8.0]],
}


@pytest.mark.parametrize("how", POOLINGS)
def test_pool_numpy_ignores_padding(how: str) -> None:
    np.testing.assert_allclose(pool(HIDDEN, MASK, how, np), EXPECTED[how])


@pytest.mark.parametrize("how", POOLINGS)
def test_pool_mlx_matches_numpy(how: str) -> None:
    rows = pool(mx.array(HIDDEN), mx.array(MASK), how, mx)
    np.testing.assert_allclose(np.array(rows), EXPECTED[how], rtol=1e-6)


def test_last_reads_each_rows_own_last_token() -> None:
    hidden = np.arange(2 * 5 * 1, dtype=np.float32).reshape(2, 5, 1)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    assert pool(hidden, mask, "last", np)[:, 0].tolist() == [4.0, 6.0]


def test_mean_of_an_all_padding_row_is_zero_not_nan() -> None:
    rows = pool(HIDDEN[:1], np.zeros((1, 4), dtype=np.int32), "mean", np)
    assert rows.tolist() == [[0.0, 0.0]]


def test_unknown_pooling_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown pooling 'max'; use one of mean, cls, last"):
        pool(HIDDEN, MASK, "max", np)


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows() -> None:
    rows = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.0]])
    assert not np.isnan(rows).any()
