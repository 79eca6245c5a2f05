"""The from-logits path stays finite where the naive composition does not."""

import numpy as np
import pytest

from derive.generated import (
    cross_entropy,
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    cross_entropy_grad,
    log_softmax,
    softmax,
)

CASES = [(np.float64, 1e4), (np.float32, 1e3)]


@pytest.mark.parametrize("dtype, scale", CASES, ids=["float64-1e4", "float32-1e3"])
def test_naive_composition_breaks_where_the_stable_loss_does_not(dtype, scale):
    z = np.array([[scale, -scale, 0.0], [-scale, scale, scale / 2]], dtype=dtype)
    y = np.array([[0, 1, 0], [1, 0, 0]], dtype=dtype)  # the true class has the smallest logit

    with np.errstate(all="ignore"):
        naive_loss = cross_entropy(softmax(z), y)
        naive_grad = cross_entropy_grad(softmax(z), y)
    assert not np.all(np.isfinite(naive_loss)), "the naive loss was expected to overflow"
    assert not np.all(np.isfinite(naive_grad))

    loss = cross_entropy_from_logits(z, y)
    grad = cross_entropy_from_logits_grad(z, y)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    # -log S_true = logsumexp(z) - z_true, which is max(z) - z_true up to e^-huge
    np.testing.assert_allclose(loss, [2 * scale, 2 * scale], rtol=1e-6)
    np.testing.assert_allclose(grad, softmax(z) - y, rtol=1e-6)


@pytest.mark.parametrize("dtype, scale", CASES, ids=["float64-1e4", "float32-1e3"])
def test_log_softmax_is_finite_and_normalised(dtype, scale):
    z = np.array([scale, 0.0, -scale, scale], dtype=dtype)
    log_s = log_softmax(z)
    assert log_s.dtype == dtype and np.all(np.isfinite(log_s))
    np.testing.assert_allclose(np.sum(np.exp(log_s)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(log_s[0], -np.log(2), rtol=1e-6)


def test_softmax_of_huge_logits_is_finite_and_sums_to_one():
    z = np.array([1e300, 1e300, -1e300])
    s = softmax(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [0.5, 0.5, 0.0])


def test_from_logits_matches_the_composition_where_both_are_finite():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 7))
    y = np.eye(7)[rng.integers(7, size=6)]
    np.testing.assert_allclose(cross_entropy_from_logits(z, y), cross_entropy(softmax(z), y), rtol=1e-13)
    np.testing.assert_allclose(log_softmax(z), np.log(softmax(z)), rtol=1e-13, atol=1e-15)
