"""``sum_of_others``: Σ_{m≠i} a_m for each i, by either route, against sums written out.

NumPy over a few classes takes one matrix product with 1 − I; more classes, and
other libraries, take two cumulative sums. Both must give every entry's sum of
the others, with no subtraction (so a dominant entry loses none of the others'
digits), and keep the cumulative sums' values where an entry is infinite.
"""

import math

import array_api_strict
import numpy as np
import pytest

from derive._runtime import FAST_NUMPY, sum_of_others


def written_out(a: np.ndarray) -> np.ndarray:
    """Each row's sum of the others, term by term with math.fsum (exactly rounded)."""
    rows = a.reshape(-1, a.shape[-1])
    others = [
        [math.fsum(float(row[m]) for m in range(len(row)) if m != i) for i in range(len(row))]
        for row in rows
    ]
    return np.array(others).reshape(a.shape)


@pytest.mark.parametrize("classes", [1, 2, 3, 10, 16, 17, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_entry_gets_the_sum_of_the_others(classes, dtype):
    a = np.random.default_rng(classes).normal(size=(2, 5, classes)).astype(dtype)
    tolerance = 1e-13 if dtype == np.float64 else 1e-5
    for xp, array in ((FAST_NUMPY, a), (array_api_strict, array_api_strict.asarray(a))):
        others = np.asarray(sum_of_others(xp, array))
        assert others.shape == a.shape and others.dtype == a.dtype
        np.testing.assert_allclose(others, written_out(a), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("classes", [3, 40])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_dominant_entry_leaves_the_others_digits(classes, sign):
    # 1 + 1e-20 rounds to 1: a total minus the entry would give 0 for the dominant entry
    a = np.full((2, classes), 1e-20)
    a[0, 0] = sign
    a[1, -1] = sign
    others = sum_of_others(FAST_NUMPY, a)
    assert others[0, 0] == pytest.approx((classes - 1) * 1e-20, rel=1e-15)
    assert others[1, -1] == pytest.approx((classes - 1) * 1e-20, rel=1e-15)
    np.testing.assert_allclose(others, written_out(a), rtol=1e-15, atol=0)


@pytest.mark.parametrize("classes", [3, 40])
def test_an_infinite_entry_makes_only_the_others_infinite(classes):
    # 0 · inf is nan in a matrix product: the product route must not show it
    a = np.ones((2, classes))
    a[1, 1] = np.inf
    others = sum_of_others(FAST_NUMPY, a)
    np.testing.assert_array_equal(others[0], np.full(classes, classes - 1.0))
    assert others[1, 1] == classes - 1.0
    assert np.all(np.isposinf(np.delete(others[1], 1)))
