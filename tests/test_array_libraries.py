"""The generated functions run on any array-API library and return its arrays.

Tested here: NumPy, PyTorch (CPU), array-api-strict, Dask and JAX (CPU). Each
result is of the input's library and dtype and equals NumPy's float64 result.
"""

import numpy as np
import pytest
from registry import KERNELS, draw_all, require

import derive.generated as generated
from registry import require

torch = require("torch")
strict = require("array_api_strict")
dask_array = require("dask.array")
jax = require("jax")
jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64
jnp = jax.numpy

rng = np.random.default_rng(11)
X = rng.normal(size=(6, 4))
W = rng.normal(size=(4, 7))
Y = np.eye(7)[rng.integers(7, size=6)]
# Every generated function's arguments, drawn from the domain each parameter declares.
CALLS = {k.name: tuple(draw_all({p.name: p for p in k.params}, (6,), np.random.default_rng(n)).values())
         for n, k in enumerate(KERNELS)}


LIBRARIES = {
    "numpy-float32": (lambda a: a.astype(np.float32), np.ndarray, "float32"),
    "torch-float64": (torch.asarray, torch.Tensor, "float64"),
    "torch-float32": (lambda a: torch.asarray(a, dtype=torch.float32), torch.Tensor, "float32"),
    "array-api-strict": (strict.asarray, type(strict.asarray(1.0)), "float64"),
    "dask": (lambda a: dask_array.from_array(a, chunks=2), dask_array.Array, "float64"),
    "jax-float64": (jnp.asarray, jax.Array, "float64"),
    "jax-float32": (lambda a: jnp.asarray(a, dtype=jnp.float32), jax.Array, "float32"),
}


def to_numpy(array):
    if hasattr(array, "compute"):  # dask: run the graph
        array = array.compute()
    return np.asarray(array) if isinstance(array, jax.Array) else np.from_dlpack(array)


def _solves(kernel) -> bool:
    from derive.sympy_tools import DenseSolve

    return any(a.expression.has(DenseSolve) for a in (*kernel.body, kernel.returns))


# Dask's linalg.solve needs square chunks (its LU works chunk by chunk); a dense solve on
# arrays chunked by the batch is refused by Dask itself, with a message that says so.
DASK_CANNOT = {k.name for k in KERNELS if _solves(k)}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", CALLS)
def test_same_library_same_dtype_same_numbers(name, library):
    if library == "dask" and name in DASK_CANNOT:
        with pytest.raises(ValueError, match="square matrix"):
            to_numpy(getattr(generated, name)(*(LIBRARIES[library][0](a) for a in CALLS[name])))
        return
    convert, kind, dtype = LIBRARIES[library]
    function = getattr(generated, name)
    result = function(*(convert(a) for a in CALLS[name]))
    expected = function(*CALLS[name])
    assert isinstance(result, kind), type(result)
    assert str(result.dtype).endswith(dtype)
    tolerance = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(to_numpy(result), expected, rtol=tolerance, atol=tolerance)


def test_dask_batch_larger_than_a_chunk_gives_numpys_gradient_lazily():
    x = rng.normal(size=(1000, 4))
    labels = rng.integers(7, size=1000)
    y = np.eye(7)[labels]
    lazy = generated.weight_grad(dask_array.from_array(x, chunks=(128, 4)), dask_array.from_array(W),
                                 dask_array.from_array(labels, chunks=128))
    assert isinstance(lazy, dask_array.Array)
    np.testing.assert_allclose(lazy.compute(), generated.weight_grad(x, W, y), rtol=1e-12)


def test_mixed_libraries_are_refused():
    with pytest.raises(TypeError, match="different array libraries"):
        generated.summation(X, torch.asarray(W))
