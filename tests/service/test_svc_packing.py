"""A job's stored features (service/packing.py): narrower, and every value back bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.contract import FEATURES
from service.packing import pack_columns, unpack_columns


def bits(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float64).view(np.uint64)


@settings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 40), st.integers(1, 8)),
        # whole numbers, halves and every other double, NaN, infinities, -0.0 and subnormals included
        elements=st.one_of(
            st.integers(-(2**40), 2**40).map(float), st.integers(-600, 600).map(lambda n: n / 2), st.floats()
        ),
    )
)
def test_every_value_comes_back_bit_for_bit(matrix: np.ndarray) -> None:
    unpacked = unpack_columns(pack_columns(matrix))
    assert unpacked.shape == matrix.shape and unpacked.dtype == np.float64
    np.testing.assert_array_equal(bits(unpacked), bits(matrix))


def test_contract_rows_take_under_half_the_bytes_of_float64() -> None:
    rng = np.random.default_rng(3)
    rows = np.column_stack(
        [rng.integers(spec.minimum, spec.maximum + 1, 10_000).astype(float) for spec in FEATURES if spec.integer]
        + [np.round(rng.uniform(1, 5, 10_000) * 2) / 2, rng.uniform(6, 10, 10_000).round(2)]
    )
    packed = pack_columns(rows)
    assert len(packed) < 0.5 * rows.nbytes
    np.testing.assert_array_equal(bits(unpack_columns(packed)), bits(rows))


def test_a_signed_zero_and_a_fraction_keep_their_column_wide() -> None:
    matrix = np.array([[0.0, 1.0], [-0.0, 2.5], [3.0, 1e300]])
    np.testing.assert_array_equal(bits(unpack_columns(pack_columns(matrix))), bits(matrix))
