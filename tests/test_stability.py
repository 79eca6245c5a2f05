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
    np.testing.assert_allclose(
        cross_entropy_from_logits(z, y), cross_entropy(softmax(z), y), rtol=1e-13
    )
    np.testing.assert_allclose(log_softmax(z), np.log(softmax(z)), rtol=1e-13, atol=1e-15)


def test_masked_logits_work_as_in_pytorch():
    """A logit of −inf marks an impossible class: PyTorch gives 0.3133 here, and +inf for a
    row that masks its own label."""
    z = np.array([[2.0, 1.0, -np.inf], [2.0, 1.0, -np.inf]])
    loss = cross_entropy_from_logits(z, np.array([0, 2]))
    np.testing.assert_allclose(loss[0], 0.31326168751822286, rtol=1e-15)
    assert loss[1] == np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_loss_is_finite_where_log_softmax_underflows_to_minus_inf(dtype):
    big = np.finfo(dtype).max / 2
    z = np.array([[big, -big, 0.0]], dtype=dtype)  # z - max(z) overflows to -inf for class 2
    with np.errstate(over="ignore"):
        loss = cross_entropy_from_logits(z, np.array([0]))
    assert loss.dtype == dtype and np.isfinite(loss).all()
    assert loss[0] == 0


def test_no_digit_is_lost_where_a_probability_rounds_to_one():
    from derive.generated import layer_jacobian, softmax_jacobian

    z = np.array([40.0, 0.0, -1.0])
    s = softmax(z)
    assert s[0] == 1.0  # so 1 - s[0] would be 0
    others = np.exp(-40.0) + np.exp(-41.0)  # true 1 - S_0, to a relative 1e-17
    np.testing.assert_allclose(softmax_jacobian(s)[0, 0], others, rtol=1e-14)
    np.testing.assert_allclose(
        cross_entropy_from_logits_grad(z, np.array(0))[0], -others, rtol=1e-14
    )
    x, W = (
        np.array([1.0, 2.0]),
        np.array([[20.0, 0.0, -0.5], [10.0, 0.0, -0.25]]),
    )  # z = (40, 0, -1)
    np.testing.assert_allclose(layer_jacobian(x, W)[0, :, 0], others * x, rtol=1e-14)
