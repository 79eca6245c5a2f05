"""The size-generic generated functions agree with SymPy differentiating the
layer written out with explicit matrices (no index form, no shortcut)."""

import numpy as np
import pytest
import sympy as sp

from derive.generated import (
    cross_entropy,
    cross_entropy_grad,
    layer_jacobian,
    softmax,
    softmax_jacobian,
    summation,
    summation_jacobian,
    weight_grad,
)
from derive.model import explicit_layer

SIZES = [(1, 2), (3, 5), (4, 6), (2, 7)]  # (D, C); (2, 7) is outside the proofs' range


def evaluate(expr, layer, x, W, y):
    """SymPy's expression evaluated exactly at these numbers, then as floats."""
    values = {s: sp.Float(v, 30) for s, v in zip(layer.x, x)}
    values |= {
        layer.W[j, c]: sp.Float(W[j, c], 30) for j in range(W.shape[0]) for c in range(W.shape[1])
    }
    values |= {s: sp.Float(v, 30) for s, v in zip(layer.y, y)}
    return np.array(sp.Matrix(expr).evalf(20, subs=values).tolist(), dtype=float)


@pytest.fixture(params=SIZES, ids=[f"D{d}-C{c}" for d, c in SIZES])
def case(request):
    D, C = request.param
    rng = np.random.default_rng(D * 100 + C)
    x, W = rng.normal(size=D), rng.normal(size=(D, C))
    y = np.eye(C)[rng.integers(C)]
    return explicit_layer(D, C), x, W, y


def test_summation_and_softmax(case):
    layer, x, W, y = case
    np.testing.assert_allclose(
        summation(x, W), evaluate(layer.z, layer, x, W, y).ravel(), rtol=1e-13
    )
    np.testing.assert_allclose(
        softmax(summation(x, W)), evaluate(layer.S, layer, x, W, y).ravel(), rtol=1e-13
    )


def test_softmax_jacobian_is_the_jacobian_of_explicit_softmax(case):
    layer, x, W, y = case
    logits = sp.Matrix(sp.symbols(f"u_0:{len(layer.z)}"))
    exps = logits.applyfunc(sp.exp)
    jacobian = (exps / sum(exps)).jacobian(logits)
    z = summation(x, W)
    expected = np.array(jacobian.evalf(20, subs=dict(zip(logits, z))).tolist(), dtype=float)
    np.testing.assert_allclose(softmax_jacobian(softmax(z)), expected, rtol=1e-12, atol=1e-15)


def test_summation_and_layer_jacobians_by_weight_class_major(case):
    layer, x, W, y = case
    D, C = W.shape
    dz = evaluate(layer.z.jacobian(layer.weights), layer, x, W, y)  # (C, C*D)
    ds = evaluate(layer.S.jacobian(layer.weights), layer, x, W, y)
    ours_dz = summation_jacobian(x, W).transpose(0, 2, 1).reshape(C, C * D)
    ours_ds = layer_jacobian(x, W).transpose(0, 2, 1).reshape(C, C * D)
    np.testing.assert_allclose(ours_dz, dz, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ours_ds, ds, rtol=1e-12, atol=1e-15)


def test_cross_entropy_and_its_gradients(case):
    layer, x, W, y = case
    D, C = W.shape
    s = softmax(summation(x, W))
    (expected_loss,) = evaluate(sp.Matrix([layer.XE]), layer, x, W, y).ravel()
    np.testing.assert_allclose(cross_entropy(s, y), expected_loss, rtol=1e-13)
    probabilities = sp.Matrix(sp.symbols(f"p_0:{C}", positive=True))
    loss = -sum(layer.y[c] * sp.log(probabilities[c]) for c in range(C))
    grad_s = sp.Matrix([loss]).jacobian(probabilities)
    values = {layer.y[c]: y[c] for c in range(C)} | dict(zip(probabilities, s))
    expected = np.array(grad_s.evalf(20, subs=values).tolist(), dtype=float).ravel()
    np.testing.assert_allclose(cross_entropy_grad(s, y), expected, rtol=1e-13)
    grad_w = evaluate(sp.Matrix([layer.XE]).jacobian(layer.weights), layer, x, W, y).ravel()
    np.testing.assert_allclose(weight_grad(x, W, y).T.ravel(), grad_w, rtol=1e-11, atol=1e-15)
