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


def differences_written_out(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Σ_{m≠i} w_m (a_i − a_m) for each i, term by term in float64 with math.fsum."""
    rows_w, rows_a = w.reshape(-1, w.shape[-1]), a.reshape(-1, a.shape[-1])
    return np.array(
        [
            [
                math.fsum(
                    float(rw[m]) * (float(ra[i]) - float(ra[m])) for m in range(len(rw)) if m != i
                )
                for i in range(len(rw))
            ]
            for rw, ra in zip(rows_w, rows_a)
        ]
    ).reshape(w.shape)


@pytest.mark.parametrize("classes", [3, 16, 17, 40])
@pytest.mark.parametrize("signs", ["probabilities", "both signs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_each_entry_gets_its_weighted_differences_from_the_others(classes, signs, dtype):
    from derive._runtime import sum_of_weighted_differences

    rng = np.random.default_rng(classes)
    w = rng.uniform(0.0, 1.0, (2, 5, classes))
    if signs == "probabilities":
        w /= w.sum(axis=-1, keepdims=True)
    else:
        w -= 0.5
    w, a = w.astype(dtype), rng.normal(size=(2, 5, classes)).astype(dtype)
    expected = differences_written_out(w, a)
    # a few ulps of the terms' magnitudes Σ_{m≠i} |w_m| (|a_i| + |a_m|), in float64
    weights, values = np.abs(w).astype(np.float64), np.abs(a).astype(np.float64)
    others = weights.sum(-1, keepdims=True) - weights
    scale = values * others + (weights * values).sum(-1, keepdims=True) - weights * values
    for xp, (ww, aa) in (
        (FAST_NUMPY, (w, a)),
        (array_api_strict, (array_api_strict.asarray(w), array_api_strict.asarray(a))),
    ):
        got = np.asarray(sum_of_weighted_differences(xp, ww, aa))
        assert got.shape == w.shape and got.dtype == w.dtype
        assert np.all(np.abs(got - expected) <= 8 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("classes", [3, 40])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_dominant_weight_keeps_the_digits_of_its_entrys_differences(classes, sign):
    # w_0 = 1 - 1e-12 (1 - w_0 is all the others): a_0 Σ_m w_m − Σ_m w_m a_m would cancel
    # to the rounding of a_0 (1e-16) where the true value is about 1e-12
    from derive._runtime import sum_of_weighted_differences

    rng = np.random.default_rng(classes)
    w = np.full((2, classes), 1e-12 / (classes - 1))
    w[:, 0] = sign * (1.0 - 1e-12)
    a = rng.normal(size=(2, classes))
    got = sum_of_weighted_differences(FAST_NUMPY, w, a)
    np.testing.assert_allclose(got[:, 0], differences_written_out(w, a)[:, 0], rtol=1e-13)
    np.testing.assert_allclose(got, differences_written_out(w, a), rtol=1e-13, atol=1e-15)


def test_an_infinite_entry_gives_the_sums_of_others_values():
    from derive._runtime import sum_of_weighted_differences

    w = np.full((2, 40), 1 / 40)
    a = np.ones((2, 40))
    a[1, 3] = np.inf
    got = sum_of_weighted_differences(FAST_NUMPY, w, a)
    expected = a * sum_of_others(FAST_NUMPY, w) - sum_of_others(FAST_NUMPY, w * a)
    np.testing.assert_array_equal(got, expected)
    assert got[1, 3] == np.inf and np.all(np.delete(got[1], 3) == -np.inf)


@pytest.mark.parametrize("classes", [3, 17, 40])
@pytest.mark.parametrize("dominant", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_share_is_the_weighted_differences_over_n_and_the_total_squared(
    classes, dominant, dtype
):
    # w as the softmax's exponentials e^{z − max z}: in (0, 1], the largest 1; with a dominant
    # entry (the others 1e-6 of it) NumPy takes the sums of others, else a − ā
    from derive._runtime import share_of_weighted_differences

    rng = np.random.default_rng(classes)
    w = rng.uniform(0.0, 1.0, (2, 5, classes))
    w[..., 0] = 1.0
    if dominant:
        w[..., 1:] *= 1e-6
    w, a = w.astype(dtype), rng.normal(size=(2, 5, classes)).astype(dtype)
    n = 6  # not a power of two: the division rounds
    weights, values = w.astype(np.float64), np.abs(a).astype(np.float64)
    divisor = n * weights.sum(-1, keepdims=True) ** 2
    expected = weights * differences_written_out(w, a) / divisor
    # a few ulps of the terms' magnitudes w_i Σ_{m≠i} w_m (|a_i| + |a_m|) / (n (Σ_m w_m)²)
    others = weights.sum(-1, keepdims=True) - weights
    terms = values * others + (weights * values).sum(-1, keepdims=True) - weights * values
    scale = weights * terms / divisor
    for xp, (ww, aa) in (
        (FAST_NUMPY, (w, a)),
        (array_api_strict, (array_api_strict.asarray(w), array_api_strict.asarray(a))),
    ):
        got = np.asarray(share_of_weighted_differences(xp, ww, aa, n))
        assert got.shape == w.shape and got.dtype == w.dtype
        assert np.all(np.abs(got - expected) <= 16 * np.finfo(dtype).eps * scale)


@pytest.mark.parametrize("owned", [False, True])
def test_the_share_is_written_into_a_only_when_owned(owned):
    from derive._runtime import share_of_weighted_differences

    rng = np.random.default_rng(0)
    w, a = rng.uniform(0.0, 1.0, (4, 40)), rng.normal(size=(4, 40))
    before = a.copy()
    got = share_of_weighted_differences(FAST_NUMPY, w, a, 4, owned=owned)
    assert (got is a) == owned
    if not owned:
        np.testing.assert_array_equal(a, before)
