"""Every Jacobian and gradient against central finite differences, at random
sizes (C up to 20, D up to 10) and batch shapes, drawn by hypothesis."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
from numerical import assert_close, central_jacobian

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
        numeric = central_jacobian(lambda w: summation(x[b], w), W)
        assert_close(ours[b], numeric, what=f"summation_jacobian{b}")


@FAST
@given(layers())
def test_layer_jacobian(layer):
    x, W, _ = layer
    ours = layer_jacobian(x, W)
    for b in per_sample(x.shape[:-1]):
        numeric = central_jacobian(lambda w: softmax(summation(x[b], w)), W)
        assert_close(ours[b], numeric, what=f"layer_jacobian{b}")


@FAST
@given(layers())
def test_cross_entropy_grad(layer):
    x, W, y = layer
    s = softmax(summation(x, W))
    ours = cross_entropy_grad(s, y)
    for b in per_sample(s.shape[:-1]):
        numeric = central_jacobian(lambda p: cross_entropy(p, y[b]), s[b], floor=1e-6)
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
        numeric = central_jacobian(lambda v: cross_entropy_from_logits(v, y[b]), z[b])
        assert_close(ours[b], numeric, what=f"cross_entropy_from_logits_grad{b}")
        # d log S_i / d z_j = δ_ij − S_j: the softmax Jacobian divided by S_i
        numeric_log = central_jacobian(log_softmax, z[b])
        assert_close(np.eye(z.shape[-1]) - np.exp(log_s[b])[None, :], numeric_log,
                     what=f"log_softmax{b}")


@settings(max_examples=15, deadline=None)
@given(layers())
def test_float32_in_float32_out(layer):
    x, W, y = (a.astype(np.float32) for a in layer)
    z = summation(x, W)
    s = softmax(z)
    outputs = [z, s, softmax_jacobian(s), summation_jacobian(x, W), layer_jacobian(x, W),
               cross_entropy(s, y), cross_entropy_grad(s, y), weight_grad(x, W, y),
               log_softmax(z), cross_entropy_from_logits(z, y), cross_entropy_from_logits_grad(z, y)]
    assert all(o.dtype == np.float32 for o in outputs), [o.dtype for o in outputs]


@settings(max_examples=15, deadline=None)
@given(layers(), st.sampled_from([1e3, 1e5, 1e300]))
def test_softmax_is_finite_and_normalised_for_large_logits(layer, scale):
    x, W, _ = layer
    z = summation(x, W)
    z = z / np.maximum(np.abs(z).max(), 1e-12) * scale
    s = softmax(z)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)
