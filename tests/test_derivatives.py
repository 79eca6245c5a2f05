"""Every registered derivative, by three routes, with no function named here.

A kernel that declares ``derivative=DerivativeOf(of, wrt)`` is checked:

* against central finite differences of ``of`` (NumPy, float64);
* against PyTorch autograd of ``of`` (the generated forward functions run on
  torch tensors, and torch differentiates them itself);
* in float32: same dtype out, close to the float64 result.

A kernel with options (``options_form``) is checked the same way a second time,
called with every option set away from its default (``registry.OPTION_VIEWS``),
against the derivative its options form declares.

A kernel that declares ``reference`` (its value in PyTorch's own operations)
is compared with it in float64 and float32. Sizes, batch shapes and values are
drawn at random from each parameter's declared domain.
"""

from __future__ import annotations

import numpy as np
import pytest

from numerical import assert_close, central_jacobian
from registry import (
    DERIVATIVES,
    REFERENCES,
    convert,
    draw_all,
    draw_values,
    evaluate,
    require,
    variables,
)

torch = require("torch")
from torch.autograd.functional import jacobian  # noqa: E402

SEEDS = range(3)
BATCHES = {
    "jacobian": [()],
    "elementwise": [(), (3,), (2, 3)],
    "batch_mean": [(1,), (4,), (2, 3)],
    "reduced": [(1,), (4,), (2, 3)],
}


def cases(kernels, batches_of):
    return [
        pytest.param(k, batch, seed, id=f"{k.id}-batch{batch}-seed{seed}")
        for k in kernels
        for batch in batches_of(k)
        for seed in SEEDS
    ]


DERIVATIVE_CASES = cases(DERIVATIVES, lambda k: BATCHES[k.derivative.kind])


def numeric_derivative(kernel, values, function) -> np.ndarray:
    """The derivative ``kernel`` claims to compute, of ``function`` (NumPy or torch route)."""
    d = kernel.derivative
    if d.kind in ("jacobian", "reduced"):
        return function(lambda v: evaluate(d.of, {**values, d.wrt: v}), values[d.wrt])
    reduce = np.sum if d.kind == "elementwise" else np.mean
    return function(lambda v: reduce(evaluate(d.of, {**values, d.wrt: v})), values[d.wrt])


@pytest.mark.parametrize(("kernel", "batch", "seed"), DERIVATIVE_CASES)
def test_derivative_equals_central_differences(kernel, batch, seed):
    rng = np.random.default_rng(seed)
    values = draw_values(kernel, batch, rng)
    ours = np.asarray(evaluate(kernel.call, values))
    d = kernel.derivative
    floor = (
        0.1
        if any(p.domain == "probability" for p in variables(kernel).values() if p.name == d.wrt)
        else 1.0
    )

    def differences(f, at):
        return central_jacobian(lambda v: np.asarray(f(v)), at, floor=floor)

    numeric = numeric_derivative(kernel, values, differences)
    assert_close(
        ours, numeric, rtol=1e-6, atol=1e-8, what=f"{kernel.call} vs differences of {d.of}"
    )


@pytest.mark.parametrize(("kernel", "batch", "seed"), DERIVATIVE_CASES)
def test_derivative_equals_pytorch_autograd(kernel, batch, seed):
    rng = np.random.default_rng(seed)
    values = draw_values(kernel, batch, rng)
    ours = np.asarray(evaluate(kernel.call, values))
    d = kernel.derivative
    tensors = convert(values, torch.as_tensor)

    def of(v):
        return evaluate(d.of, {**tensors, d.wrt: v})

    if d.kind in ("jacobian", "reduced"):
        reference = jacobian(of, tensors[d.wrt])
    elif d.kind == "elementwise":
        reference = jacobian(lambda v: of(v).sum(), tensors[d.wrt])
    else:
        reference = jacobian(lambda v: of(v).mean(), tensors[d.wrt])
    assert_close(
        ours,
        reference.numpy(),
        rtol=1e-10,
        atol=1e-12,
        what=f"{kernel.call} vs torch autograd of {d.of}",
    )


@pytest.mark.parametrize(("kernel", "batch", "seed"), DERIVATIVE_CASES)
def test_derivative_in_float32_keeps_float32_and_agrees(kernel, batch, seed):
    rng = np.random.default_rng(seed)
    values = draw_values(kernel, batch, rng)
    single = convert(values, lambda v: v.astype(np.float32) if v.dtype.kind == "f" else v)
    ours = evaluate(kernel.call, single)
    assert ours.dtype == np.float32, f"{kernel.call}: float32 in, {ours.dtype} out"
    assert_close(
        ours,
        evaluate(kernel.call, values),
        rtol=2e-4,
        atol=2e-5,
        what=f"{kernel.call} float32 vs float64",
    )


REFERENCE_CASES = cases(
    REFERENCES, lambda k: [(), (3,), (2, 3)] if any(p.batched for p in k.params) else [()]
)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("kernel", "batch", "seed"), REFERENCE_CASES)
def test_value_equals_pytorchs_own_operations(kernel, batch, seed, dtype):
    rng = np.random.default_rng(seed)
    values = {name: v.astype(dtype) for name, v in draw_all(variables(kernel), batch, rng).items()}
    ours = evaluate(kernel.call, values)
    reference = eval(
        kernel.reference,
        {"torch": torch},  # the registry's own strings
        {name: torch.as_tensor(v) for name, v in values.items()},
    )
    assert ours.dtype == np.dtype(dtype)
    tolerance = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=2e-6, atol=1e-6)
    assert_close(ours, reference.numpy(), **tolerance, what=f"{kernel.name} vs {kernel.reference}")


def test_the_registry_declares_derivatives_and_references():
    """The checks above are not empty, and each declaration names real variables."""
    assert len(DERIVATIVES) >= 5 and len(REFERENCES) >= 4
    for kernel in DERIVATIVES:
        assert kernel.derivative.wrt in variables(kernel), kernel.name


# -- the helper itself, on functions whose derivatives are known --------------------------


def test_central_jacobian_of_a_known_function():
    A = np.arange(6.0).reshape(2, 3)
    v = np.array([0.3, -1.2, 2.0])
    numeric = central_jacobian(lambda u: A @ np.sin(u), v)
    assert_close(numeric, A * np.cos(v), what="d(A sin v)/dv")
    matrix = np.array([[1.0, -2.0], [0.5, 3.0]])  # a matrix argument: shape f.shape + at.shape
    assert_close(
        central_jacobian(lambda m: np.sum(m**3), matrix), 3 * matrix**2, what="d sum(m^3)/dm"
    )


def test_assert_close_names_the_worst_entry_with_both_values():
    numeric = np.zeros((2, 3))
    analytic = numeric.copy()
    analytic[1, 2], analytic[0, 0] = 0.5, 1e-3
    with pytest.raises(
        AssertionError, match=r"^f: .* at \(1, 2\): analytic 0\.5, numeric 0\.0 \(2 of 6"
    ):
        assert_close(analytic, numeric, what="f")
