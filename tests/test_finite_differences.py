"""Every Jacobian and gradient against central finite differences, at random
sizes (C up to 20, D up to 10) and batch shapes, drawn by hypothesis."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numerical import assert_close, central_jacobian

from derive.generated import (
    cross_entropy,
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    cross_entropy_grad,
    layer_jacobian,
    log_softmax,
    softmax,
    softmax_jacobian,
    summation,
    summation_jacobian,
    weight_grad,
)

# -- the helper itself, on functions whose derivatives are known --------------------------

def test_central_jacobian_of_a_known_function():
    A = np.arange(6.0).reshape(2, 3)
    v = np.array([0.3, -1.2, 2.0])
    numeric = central_jacobian(lambda u: A @ np.sin(u), v)
    assert_close(numeric, A * np.cos(v), what="d(A sin v)/dv")
    matrix = np.array([[1.0, -2.0], [0.5, 3.0]])  # a matrix argument: shape f.shape + at.shape
    assert_close(central_jacobian(lambda m: np.sum(m**3), matrix), 3 * matrix**2, what="d sum(m^3)/dm")


def test_assert_close_names_the_worst_entry_with_both_values():
    numeric = np.zeros((2, 3))
    analytic = numeric.copy()
    analytic[1, 2], analytic[0, 0] = 0.5, 1e-3
    with pytest.raises(AssertionError, match=r"^f: .* at \(1, 2\): analytic 0\.5, numeric 0\.0 \(2 of 6"):
        assert_close(analytic, numeric, what="f")


# -- the generated functions at random sizes -------------------------------------------------

BATCHES = st.sampled_from([(), (3,), (2, 3)])


@st.composite
def layers(draw):
    """A random layer: batch shape, x (..., D), W (D, C), one-hot y (..., C)."""
    batch = draw(BATCHES)
    n_classes = draw(st.integers(2, 20))
    n_inputs = draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(size=batch + (n_inputs,))
    W = rng.normal(scale=0.7, size=(n_inputs, n_classes))
    y = np.eye(n_classes)[rng.integers(n_classes, size=batch)]
    return x, W, y


def per_sample(batch_shape):
    return np.ndindex(batch_shape) if batch_shape else [()]


FAST = settings(max_examples=60, deadline=None)


@FAST
@given(layers())
def test_softmax_jacobian(layer):
    x, W, _ = layer
    z = summation(x, W)
    ours = softmax_jacobian(softmax(z))
    for b in per_sample(z.shape[:-1]):
        assert_close(ours[b], central_jacobian(softmax, z[b]), what=f"softmax_jacobian{b}")


@FAST
@given(layers())
def test_summation_jacobian(layer):
    x, W, _ = layer
    ours = summation_jacobian(x, W)
    for b in per_sample(x.shape[:-1]):
        numeric = central_jacobian(lambda w, b=b: summation(x[b], w), W)
        assert_close(ours[b], numeric, what=f"summation_jacobian{b}")


@FAST
@given(layers())
def test_layer_jacobian(layer):
    x, W, _ = layer
    ours = layer_jacobian(x, W)
    for b in per_sample(x.shape[:-1]):
        numeric = central_jacobian(lambda w, b=b: softmax(summation(x[b], w)), W)
        assert_close(ours[b], numeric, what=f"layer_jacobian{b}")


@FAST
@given(layers())
def test_cross_entropy_grad(layer):
    x, W, y = layer
    s = softmax(summation(x, W))
    ours = cross_entropy_grad(s, y)
    for b in per_sample(s.shape[:-1]):
        numeric = central_jacobian(lambda p, b=b: cross_entropy(p, y[b]), s[b], floor=1e-6)
        assert_close(ours[b], numeric, rtol=1e-5, what=f"cross_entropy_grad{b}")


@FAST
@given(layers())
def test_weight_grad_is_the_gradient_of_the_mean_loss(layer):
    x, W, y = layer

    def mean_loss(w):
        return np.mean(cross_entropy(softmax(summation(x, w)), y))

    assert_close(weight_grad(x, W, y), central_jacobian(mean_loss, W), what="weight_grad")


@FAST
@given(layers())
def test_from_logits_gradient_and_log_softmax(layer):
    x, W, y = layer
    z = summation(x, W)
    ours = cross_entropy_from_logits_grad(z, y)
    log_s = log_softmax(z)
    for b in per_sample(z.shape[:-1]):
        numeric = central_jacobian(lambda v, b=b: cross_entropy_from_logits(v, y[b]), z[b])
        assert_close(ours[b], numeric, what=f"cross_entropy_from_logits_grad{b}")
        # d log S_i / d z_j = δ_ij − S_j: the softmax Jacobian divided by S_i
        numeric_log = central_jacobian(log_softmax, z[b])
        assert_close(np.eye(z.shape[-1]) - np.exp(log_s[b])[None, :], numeric_log,
                     what=f"log_softmax{b}")


def every_output(x, W, y):
    z = summation(x, W)
    s = softmax(z)
    return {
        "summation": z, "softmax": s, "softmax_jacobian": softmax_jacobian(s),
        "summation_jacobian": summation_jacobian(x, W), "layer_jacobian": layer_jacobian(x, W),
        "cross_entropy": cross_entropy(s, y), "cross_entropy_grad": cross_entropy_grad(s, y),
        "weight_grad": weight_grad(x, W, y), "log_softmax": log_softmax(z),
        "cross_entropy_from_logits": cross_entropy_from_logits(z, y),
        "cross_entropy_from_logits_grad": cross_entropy_from_logits_grad(z, y),
    }


@settings(max_examples=15, deadline=None)
@given(layers())
def test_float32_in_float32_out(layer):
    single = every_output(*(a.astype(np.float32) for a in layer))
    double = every_output(*layer)
    for name, value in single.items():
        assert value.dtype == np.float32, f"{name} returned {value.dtype}"
        # and as accurate as float32 allows
        assert_close(value, double[name], rtol=1e-4, atol=1e-5, what=f"{name} in float32 vs float64")


@settings(max_examples=15, deadline=None)
@given(layers(), st.sampled_from([1e3, 1e5, 1e300]))
def test_softmax_is_finite_and_normalised_for_large_logits(layer, scale):
    x, W, _ = layer
    z = summation(x, W)
    z = z / np.maximum(np.abs(z).max(), 1e-12) * scale
    s = softmax(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)
