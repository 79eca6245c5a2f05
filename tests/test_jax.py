"""Every registered derivative against JAX's own autodiff (``jax.grad``, ``jax.jacrev``).

The generated forward functions run on JAX arrays and JAX differentiates them itself,
as the PyTorch check in test_derivatives.py does with autograd: a third, independent
route to each declared derivative. No function is named here.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pytest

from numerical import assert_close
from registry import (
    DERIVATIVES,
    KERNELS,
    OPTION_VIEWS,
    call,
    convert,
    draw_all,
    draw_options,
    draw_values,
    evaluate,
    require,
)

jax = require("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

# JAX compiles every operation for every new shape: one batch shape and seed per kind keeps
# this file to seconds (test_derivatives.py covers more shapes with PyTorch).
BATCHES = {"jacobian": [()], "elementwise": [(3,)], "batch_mean": [(4,)], "reduced": [(4,)]}
CASES = [
    pytest.param(k, batch, seed, id=f"{k.id}-batch{batch}-seed{seed}")
    for k in DERIVATIVES
    for batch in BATCHES[k.derivative.kind]
    for seed in range(1)
]


@pytest.mark.parametrize(("kernel", "batch", "seed"), CASES)
def test_derivative_equals_jax_autodiff(kernel, batch, seed):
    rng = np.random.default_rng(seed)
    values = draw_values(kernel, batch, rng)
    ours = np.asarray(evaluate(kernel.call, values))
    d = kernel.derivative
    arrays = convert(values, jnp.asarray)

    def of(v):
        return evaluate(d.of, {**arrays, d.wrt: v})

    if d.kind == "jacobian":
        reference = jax.jacrev(of)(arrays[d.wrt])
    elif d.kind == "reduced":
        reference = jax.grad(of)(arrays[d.wrt])
    elif d.kind == "elementwise":
        reference = jax.grad(lambda v: jnp.sum(of(v)))(arrays[d.wrt])
    else:
        reference = jax.grad(lambda v: jnp.mean(of(v)))(arrays[d.wrt])
    assert_close(
        ours,
        np.asarray(reference),
        rtol=1e-10,
        atol=1e-12,
        what=f"{kernel.call} vs jax autodiff of {d.of}",
    )


@pytest.mark.parametrize("kernel", DERIVATIVES, ids=[k.id for k in DERIVATIVES])
def test_the_derivative_itself_runs_on_jax_and_returns_jax_arrays(kernel):
    values = draw_values(
        kernel, (2,) if kernel.derivative.kind != "jacobian" else (), np.random.default_rng(5)
    )
    result = evaluate(kernel.call, convert(values, jnp.asarray))
    assert isinstance(result, jax.Array)
    assert_close(
        np.asarray(result),
        np.asarray(evaluate(kernel.call, values)),
        rtol=1e-12,
        atol=1e-14,
        what=f"{kernel.call} on JAX vs NumPy",
    )


# -- as JAX users call them: under jax.jit, in JAX's default 32-bit mode and in 64-bit -----

# Every generated function (each part of one that returns several), and each function with
# options again with every option set; the arguments drawn from the domains the registry declares.
FUNCTIONS = KERNELS + OPTION_VIEWS
PRECISIONS = {"float32": False, "float64": True}  # dtype: jax_enable_x64


def _arguments(kernel, seed: int) -> tuple[list, dict]:
    values = draw_all({p.name: p for p in kernel.params}, (5,), np.random.default_rng(seed))
    options = (
        draw_options(kernel, values, np.random.default_rng(seed)) if kernel.options_view else {}
    )
    return list(values.values()), options


def _in(dtype: str, value):
    """A NumPy argument as JAX's: floats in ``dtype``, integer labels as JAX makes them."""
    if isinstance(value, np.ndarray):
        return jnp.asarray(value.astype(dtype) if value.dtype.kind == "f" else value)
    return value


def _jit_call(kernel, dtype: str, arguments: list, options: dict):
    """The kernel's function under ``jax.jit``: every argument traced (scalars such as ``T``
    too) and the class weights; the other options (``reduction``, ``ignore_index``,
    ``label_smoothing``) are Python values, static under jit, as a JAX user closes over them."""
    traced_options = {k: v for k, v in options.items() if isinstance(v, np.ndarray)}
    static = {k: v for k, v in options.items() if k not in traced_options}
    function = jax.jit(lambda a, o: call(kernel, *a, **o, **static))
    return function(
        [_in(dtype, a) for a in arguments], convert(traced_options, partial(_in, dtype))
    )


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("kernel", FUNCTIONS, ids=[k.id for k in FUNCTIONS])
def test_every_function_runs_under_jit_without_a_warning(kernel, dtype):
    arguments, options = _arguments(kernel, seed=FUNCTIONS.index(kernel))
    expected = call(kernel, *arguments, **options)  # NumPy, float64, every check run
    with jax.enable_x64(PRECISIONS[dtype]), warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX warns when asked for a dtype its mode lacks
        result = _jit_call(kernel, dtype, arguments, options)
    assert isinstance(result, jax.Array), type(result)
    assert result.dtype == dtype
    tolerance = 1e-12 if dtype == "float64" else 1e-4
    assert_close(
        np.asarray(result, dtype=np.float64),
        expected,
        rtol=tolerance,
        atol=tolerance,
        what=f"{kernel.id} under jax.jit in {dtype} vs NumPy float64",
    )


LABELLED = [k for k in FUNCTIONS if any(p.domain == "one_hot" for p in k.params)]


@pytest.mark.parametrize("kernel", LABELLED, ids=[k.id for k in LABELLED])
def test_label_checks_run_outside_jit_only(kernel):
    """A label row that does not sum to 1 raises when called, and is not read under jit
    (its values are unknown while tracing), as the docstrings say."""
    arguments, options = _arguments(kernel, seed=3)
    position = next(i for i, p in enumerate(kernel.params) if p.domain == "one_hot")
    if arguments[position].dtype.kind != "f":  # class labels (an options view): one out of range
        arguments[position] = arguments[position] + 100
        message = "expected class labels in"
    else:
        arguments[position] = 2 * arguments[position]
        message = "summing to 1"
    with pytest.raises(ValueError, match=message):
        call(kernel, *[_in("float64", a) for a in arguments], **convert(options, jnp.asarray))
    with jax.enable_x64(True):
        result = _jit_call(kernel, "float64", arguments, options)
    assert isinstance(result, jax.Array)


SHAPED = [k for k in KERNELS if any(p.axes for p in k.params)]  # not the elementwise ones


@pytest.mark.parametrize("kernel", SHAPED, ids=[k.id for k in SHAPED])
def test_shapes_are_still_checked_under_jit(kernel):
    arguments, options = _arguments(kernel, seed=4)
    first = next(i for i, p in enumerate(kernel.params) if p.axes)
    arguments[first] = arguments[first][(0,) * arguments[first].ndim]  # one number: shape ()
    with pytest.raises(ValueError, match=f"^{kernel.params[first].name}: expected"):
        with jax.enable_x64(True):
            _jit_call(kernel, "float64", arguments, options)


# Each function's gradient under jit with respect to all its float arguments at once (one
# compilation per function): the sum of its result differentiated by JAX through the generated code.
DIFFERENTIABLE = [
    k for k in FUNCTIONS if any(p.domain not in ("one_hot", "labels") for p in k.params)
]


@pytest.mark.parametrize("kernel", DIFFERENTIABLE, ids=[k.id for k in DIFFERENTIABLE])
def test_every_function_differentiates_under_jit(kernel):
    arguments, options = _arguments(kernel, seed=5)
    floats = [i for i, p in enumerate(kernel.params) if p.domain not in ("one_hot", "labels")]
    static = {k: v for k, v in options.items() if not isinstance(v, np.ndarray)}
    weights = {k: jnp.asarray(v) for k, v in options.items() if isinstance(v, np.ndarray)}

    def total(points, others):
        values = dict(zip(floats, points)) | others
        return jnp.sum(
            call(kernel, *[values[i] for i in range(len(arguments))], **weights, **static)
        )

    with jax.enable_x64(True):
        points = [jnp.asarray(arguments[i]) for i in floats]
        others = {i: jnp.asarray(a) for i, a in enumerate(arguments) if i not in floats}
        gradients = jax.jit(jax.grad(total))(points, others)
        # the same derivative by central differences along one random direction
        rng = np.random.default_rng(6)
        direction = [jnp.asarray(rng.normal(size=p.shape)) for p in points]
        h = 1e-6
        ahead = total([p + h * d for p, d in zip(points, direction)], others)
        behind = total([p - h * d for p, d in zip(points, direction)], others)
    assert [g.shape for g in gradients] == [p.shape for p in points]
    assert_close(
        sum(float(jnp.sum(g * d)) for g, d in zip(gradients, direction)),
        float((ahead - behind) / (2 * h)),
        rtol=1e-5,
        atol=1e-6,
        what=f"jit(grad) of sum({kernel.id}) along a random direction vs central differences",
    )
