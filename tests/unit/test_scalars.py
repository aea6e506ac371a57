"""costmodel.scalars gives numpy's value, as a numpy float64, for every pair of numbers."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from costmodel import scalars

SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-308, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
NUMBERS = SPECIAL + [0, 1, -3, 2**53 + 1, np.float64(0.5), np.float64(-0.0), np.int64(7)]


def _same(x, y) -> bool:
    """The same float64, bit for bit (NaN equal to NaN, signed zeros apart)."""
    return np.asarray(x, dtype=np.float64).tobytes() == np.asarray(y, dtype=np.float64).tobytes()


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_extremes_match_numpy(name):
    mine, theirs = getattr(scalars, name), getattr(np, name)
    with np.errstate(all="ignore"):
        for a, b in itertools.product(NUMBERS, repeat=2):
            got, want = mine(a, b), theirs(a, b)
            assert np.result_type(got) == np.result_type(want), (a, b)
            assert _same(got, want), (a, b, got, want)
            if isinstance(a, float) or isinstance(b, float):
                assert type(got) is np.float64  # numpy's arithmetic rules after it


def test_where_matches_numpy():
    with np.errstate(all="ignore"):
        for c, a, b in itertools.product([True, False, np.bool_(True), np.bool_(False)], NUMBERS, NUMBERS):
            got, want = scalars.where(c, a, b), np.where(c, a, b)
            assert np.result_type(got) == np.result_type(want), (c, a, b)
            assert _same(got, want), (c, a, b, got, want)


def test_arrays_and_integers_go_to_numpy():
    a = np.array([1.0, np.nan, -0.0])
    assert _same(scalars.maximum(a, 0.0), np.maximum(a, 0.0))
    assert _same(scalars.where(a > 0, a, 2.0), np.where(a > 0, a, 2.0))
    assert scalars.maximum(2, 3).dtype == np.maximum(2, 3).dtype  # integers: numpy's integer result
    assert scalars.where(True, 1, 2).dtype == np.where(True, 1, 2).dtype


def test_division_by_zero_keeps_numpy_rules():
    with np.errstate(divide="ignore"):
        assert 1.0 / scalars.maximum(0.0, -1.0) == math.inf  # a Python float would raise


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
def test_random_floats_match_numpy(a, b, c):
    assert _same(scalars.maximum(a, b), np.maximum(a, b))
    assert _same(scalars.minimum(a, b), np.minimum(a, b))
    assert _same(scalars.where(c, a, b), np.where(c, a, b))


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 1), (2, 4), (1, 3, 1), (5, 2, 7)])
def test_max_last_is_numpys_max_over_the_last_axis(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=shape)
    a.flat[0] = math.nan if a.size > 2 else -0.0
    got, want = scalars.max_last(a), np.max(a, axis=-1, keepdims=True)
    assert got.shape == want.shape and _same(got, want)
    if shape[-1] == 1:  # one rank: nothing to reduce, the array itself
        assert got is a
