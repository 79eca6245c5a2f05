"""Every registered derivative against JAX's own autodiff (``jax.grad``, ``jax.jacrev``).

The generated forward functions run on JAX arrays and JAX differentiates them itself,
as the PyTorch check in test_derivatives.py does with autograd: a third, independent
route to each declared derivative. No function is named here.
"""

from __future__ import annotations

import numpy as np
import pytest

from numerical import assert_close
from registry import DERIVATIVES, convert, draw_values, evaluate, require

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
