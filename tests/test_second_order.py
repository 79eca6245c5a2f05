"""The second-order functions against PyTorch's own second derivatives, and the
structure the second-order page proves: symmetric, positive semi-definite, and a
null space of dimension D."""

from __future__ import annotations

import numpy as np
import pytest

from derive.generated import (
    cross_entropy_from_logits_hessian,
    newton_step,
    softmax,
    weight_grad,
    weight_hessian,
    weight_hvp,
)

from numerical import assert_close, central_jacobian
from registry import require

torch = require("torch")

SIZES = [(1, 2, 2), (5, 3, 4), (7, 4, 3), (20, 6, 5)]  # (B, D, C)


def mean_loss(x, y):
    return lambda w: torch.nn.functional.cross_entropy(x @ w, y)


def draw(B, D, C, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(B, D)).astype(dtype),
        rng.normal(size=(D, C)).astype(dtype),
        np.eye(C, dtype=dtype)[rng.integers(C, size=B)],
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("B", "D", "C"), SIZES)
def test_weight_hessian_equals_torch_func_hessian(B, D, C, dtype):
    x, W, y = draw(B, D, C, B + D + C, dtype)
    reference = torch.func.hessian(mean_loss(torch.as_tensor(x), torch.as_tensor(y)))(
        torch.as_tensor(W)
    )
    ours = weight_hessian(x, W)
    assert ours.dtype == dtype and ours.shape == (D, C, D, C)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert_close(ours, reference.numpy(), **tolerance, what="weight_hessian vs torch.func.hessian")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_logit_hessian_equals_torch_func_hessian(batch, dtype):
    rng = np.random.default_rng(len(batch))
    z = rng.normal(size=batch + (5,)).astype(dtype)
    y = np.eye(5, dtype=dtype)[rng.integers(5, size=batch)]
    flat_z, flat_y = torch.as_tensor(z.reshape(-1, 5)), torch.as_tensor(y.reshape(-1, 5))
    reference = torch.stack(
        [
            torch.func.hessian(lambda v: torch.nn.functional.cross_entropy(v, t))(v)  # noqa: B023 - used at once
            for v, t in zip(flat_z, flat_y)
        ]
    ).reshape(batch + (5, 5))
    ours = cross_entropy_from_logits_hessian(z)
    assert ours.dtype == dtype
    tolerance = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-7)
    assert_close(ours, reference.numpy(), **tolerance, what="logit Hessian vs torch.func.hessian")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("B", "D", "C"), SIZES)
def test_weight_hvp_equals_pytorch_double_backward(B, D, C, dtype):
    x, W, y = draw(B, D, C, 10 + B, dtype)
    V = np.random.default_rng(B).normal(size=(D, C)).astype(dtype)
    w = torch.as_tensor(W).requires_grad_()
    (grad,) = torch.autograd.grad(
        mean_loss(torch.as_tensor(x), torch.as_tensor(y))(w), w, create_graph=True
    )
    (reference,) = torch.autograd.grad(grad, w, grad_outputs=torch.as_tensor(V))
    ours = weight_hvp(x, W, V)
    assert ours.dtype == dtype
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert_close(ours, reference.numpy(), **tolerance, what="weight_hvp vs double backward")
    n = D * C
    assert_close(
        ours,
        (weight_hessian(x, W).reshape(n, n) @ V.reshape(n)).reshape(D, C),
        **tolerance,
        what="weight_hvp vs weight_hessian @ V",
    )


@pytest.mark.parametrize(("B", "D", "C"), [(30, 3, 4), (50, 5, 3), (40, 2, 6)])
def test_weight_hessian_is_psd_with_a_null_space_of_dimension_D(B, D, C):
    x, W, _ = draw(B, D, C, 7 * B)
    hessian = weight_hessian(x, W).reshape(D * C, D * C)
    assert_close(hessian, hessian.T, rtol=0, atol=1e-15, what="symmetry")
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert eigenvalues.min() >= -1e-12, eigenvalues
    assert (np.abs(eigenvalues) < 1e-10).sum() == D, eigenvalues
    assert eigenvalues[D] > 1e-6, f"more than D null directions: {eigenvalues}"
    shifted = W + np.random.default_rng(0).normal(size=(D, 1))  # W + a1ᵀ: a null direction
    null = shifted - W
    assert_close(weight_hvp(x, W, null), np.zeros((D, C)), rtol=0, atol=1e-14, what="H (a1ᵀ)")


@pytest.mark.parametrize(("B", "D", "C"), SIZES)
def test_weight_hessian_equals_differences_of_weight_grad(B, D, C):
    x, W, y = draw(B, D, C, 3 * B + C)
    numeric = central_jacobian(lambda w: weight_grad(x, w, y), W)
    assert_close(
        weight_hessian(x, W),
        numeric,
        rtol=1e-6,
        atol=1e-8,
        what="weight_hessian vs differences of weight_grad",
    )


@pytest.mark.parametrize(("B", "D", "C"), [(10, 3, 2), (30, 4, 5)])
def test_newton_step_solves_the_penalized_system(B, D, C):
    x, W, y = draw(B, D, C, B)
    l2 = 0.1
    step = newton_step(x, W, y, l2)
    n = D * C
    system = weight_hessian(x, W).reshape(n, n) + l2 * np.eye(n)
    assert_close(
        system @ step.reshape(n),
        -(weight_grad(x, W, y) + l2 * W).reshape(n),
        rtol=1e-10,
        atol=1e-12,
        what="(H + l2 I) vec(ΔW) = -vec(g + l2 W)",
    )
    assert (
        newton_step(x.astype(np.float32), W.astype(np.float32), y.astype(np.float32), l2).dtype
        == np.float32
    )


def test_newton_step_refuses_l2_at_or_below_zero_and_large_systems():
    x, W, y = draw(4, 3, 2, 0)
    for l2 in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"^l2: expected a penalty > 0"):
            newton_step(x, W, y, l2)
    with pytest.raises(ValueError, match=r"expected D\*C <= 4096, got D\*C = 4100"):
        newton_step(np.ones((2, 410)), np.zeros((410, 10)), np.array([0, 1]), 1.0)


def test_newton_converges_on_iris_in_a_few_steps():
    require("sklearn")  # a docs dependency
    import derive.generated as generated
    from derive.derivations.second_order import newton_against_gradient_descent

    runs = newton_against_gradient_descent(generated)
    newton, descent = runs.values()
    assert newton["converged"] and newton["iterations"] <= 15
    assert descent["converged"] and descent["iterations"] > 10 * newton["iterations"]
    assert abs(newton["loss"][-1] - descent["loss"][-1]) < 1e-12
    assert descent["loss_at"][-1] == descent["iterations"]  # the last loss is kept


def test_iris_is_read_as_scikit_learn_loads_it():
    require("sklearn")
    from sklearn.datasets import load_iris

    from derive.derivations.second_order import iris

    inputs, labels = iris(standardized=False)
    data = load_iris()
    np.testing.assert_array_equal(inputs[:, :-1], data.data)
    np.testing.assert_array_equal(inputs[:, -1], 1.0)
    np.testing.assert_array_equal(labels, data.target)


# -- JAX: jax.hessian and jax.jvp of jax.grad, at random sizes -----------------------------

RANDOM_SIZES = [
    tuple(int(n) for n in np.random.default_rng(seed).integers((1, 1, 2), (12, 6, 6)))
    for seed in range(3)
]


def jax_mean_loss(jnp, x, y):
    return lambda w: -jnp.mean(jnp.sum(y * jax_log_softmax(x @ w), axis=-1))


def jax_log_softmax(z):
    import jax

    return jax.nn.log_softmax(z, axis=-1)


@pytest.fixture(scope="module")
def jax():
    jax = require("jax")
    jax.config.update("jax_enable_x64", True)  # as tests/test_jax.py: float64 stays float64
    return jax


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("B", "D", "C"), RANDOM_SIZES)
def test_weight_hessian_equals_jax_hessian(jax, B, D, C, dtype):
    jnp = jax.numpy
    x, W, y = draw(B, D, C, 100 + B + D + C, dtype)
    reference = jax.hessian(jax_mean_loss(jnp, jnp.asarray(x), jnp.asarray(y)))(jnp.asarray(W))
    assert reference.dtype == dtype
    ours = weight_hessian(x, W)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert_close(ours, np.asarray(reference), **tolerance, what="weight_hessian vs jax.hessian")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [(), (4,)])
def test_logit_hessian_equals_jax_hessian(jax, batch, dtype):
    jnp = jax.numpy
    rng = np.random.default_rng(3 + len(batch))
    C = int(rng.integers(2, 7))
    z = rng.normal(size=batch + (C,)).astype(dtype)
    y = np.eye(C, dtype=dtype)[rng.integers(C, size=batch)]

    def loss(v, t):
        return -jnp.sum(t * jax_log_softmax(v))

    flat = [
        jax.hessian(loss)(jnp.asarray(v), jnp.asarray(t))
        for v, t in zip(z.reshape(-1, C), y.reshape(-1, C))
    ]
    reference = np.stack([np.asarray(h) for h in flat]).reshape(batch + (C, C))
    tolerance = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-7)
    assert_close(
        cross_entropy_from_logits_hessian(z), reference, **tolerance, what="logit Hessian vs jax"
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("B", "D", "C"), RANDOM_SIZES)
def test_weight_hvp_equals_jax_jvp_of_grad(jax, B, D, C, dtype):
    jnp = jax.numpy
    x, W, y = draw(B, D, C, 200 + B, dtype)
    V = np.random.default_rng(D).normal(size=(D, C)).astype(dtype)
    grad = jax.grad(jax_mean_loss(jnp, jnp.asarray(x), jnp.asarray(y)))
    _, reference = jax.jvp(grad, (jnp.asarray(W),), (jnp.asarray(V),))
    assert reference.dtype == dtype
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert_close(weight_hvp(x, W, V), np.asarray(reference), **tolerance, what="weight_hvp vs jax")


# -- accuracy where conditioning allows: entries that are sums of terms of one sign --------


def _relative_error(computed, true) -> float:
    """The largest |computed − true| / |true| over the nonzero true entries, at 50 digits."""
    import mpmath

    with mpmath.workdps(50):
        return max(
            float(abs(mpmath.mpf(float(c)) - mpmath.mpf(t)) / abs(mpmath.mpf(t)))
            for c, t in zip(np.ravel(computed), np.ravel(true))
            if t != 0
        )


@pytest.mark.parametrize(("B", "scale"), [(1, 2), (1, 3), (3, 2), (3, 3)])
def test_weight_hessian_is_accurate_where_no_term_cancels(B, scale):
    """Nearly saturated samples (the largest S between 0.96 and 0.998 here, where S_c(1 − S_c)
    computed as a difference lost up to 175 ulps): the entries with j = k (and, for one sample,
    every entry) are sums of B terms of one sign. Each term is x_j x_k S_c (S_d, or O_c, a sum
    of C − 1 probabilities) / B with at most four roundings, so to first order its relative
    error is at most twice the probabilities' own (softmax's conditioning, measured on the same
    inputs) plus (4 + C − 2 + B − 1) units of rounding: a bound in relative error, which (unlike
    one in ulps of the entry) does not depend on where each number sits between two powers of 2."""
    from derive import accuracy, derivations

    rng = np.random.default_rng(B * 10 + scale)
    D, C = 3, 4
    x, W = rng.normal(size=(B, D)), rng.normal(size=(D, C)) * scale
    exact = (derivations.kernels(), {"C": C, "D": D})
    values = {"x": x, "W": W}
    true_s = accuracy.evaluate("softmax(summation(x, W))", values, exact=exact)
    softmax_error = _relative_error(softmax(x @ W), true_s)
    true = accuracy.evaluate("weight_hessian(x, W)", values, exact=exact)
    ours = weight_hessian(x, W)
    keep = np.ones((D, C, D, C), bool) if B == 1 else np.eye(D, dtype=bool)[:, None, :, None]
    keep = np.broadcast_to(keep, ours.shape)
    rounding = np.finfo(np.float64).eps / 2
    assert _relative_error(ours[keep], true[keep]) <= 2 * softmax_error + (C + B + 1) * rounding
