"""The generated functions run on any array-API library and return its arrays.

Tested here: NumPy, PyTorch (CPU), array-api-strict, Dask and JAX (CPU). Each
result is of the input's library and dtype and equals NumPy's float64 result.
"""

import numpy as np
import pytest

import derive.generated as generated

from registry import KERNELS, OPTION_VIEWS, call, convert, draw_all, draw_options, require

torch = require("torch")
strict = require("array_api_strict")
dask_array = require("dask.array")
jax = require("jax")
jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64
jnp = jax.numpy

rng = np.random.default_rng(11)
X = rng.normal(size=(6, 4))
W = rng.normal(size=(4, 7))
LABELS = rng.integers(7, size=6)
Y = np.eye(7)[LABELS]
Z = X @ W
S = np.exp(Z) / np.exp(Z).sum(axis=-1, keepdims=True)


def arguments(kernel, rng) -> tuple[tuple, dict]:
    """A kernel's arguments, drawn from the domain each parameter declares, and its options."""
    values = draw_all({p.name: p for p in kernel.params}, (6,), rng)
    options = draw_options(kernel, values, rng) if kernel.options_view else {}
    return tuple(values.values()), options


# Every generated function's arguments; a function with options also with every option set.
CALLS = {k.id: arguments(k, np.random.default_rng(n)) for n, k in enumerate(KERNELS + OPTION_VIEWS)}
BY_ID = {k.id: k for k in KERNELS + OPTION_VIEWS}


LIBRARIES = {  # name: (asarray, array type, the float dtype its float arrays are given in)
    "numpy-float32": (np.asarray, np.ndarray, "float32"),
    "torch-float64": (torch.asarray, torch.Tensor, "float64"),
    "torch-float32": (torch.asarray, torch.Tensor, "float32"),
    "array-api-strict": (strict.asarray, type(strict.asarray(1.0)), "float64"),
    "dask": (lambda a: dask_array.from_array(a, chunks=2), dask_array.Array, "float64"),
    "jax-float64": (jnp.asarray, jax.Array, "float64"),
    "jax-float32": (jnp.asarray, jax.Array, "float32"),
}


def to_numpy(array):
    if hasattr(array, "compute"):  # dask: run the graph
        array = array.compute()
    if isinstance(array, (jax.Array, np.generic)):
        return np.asarray(array)
    return np.from_dlpack(array)


def _solves(kernel) -> bool:
    from derive.sympy_tools import DenseSolve

    return any(a.expression.has(DenseSolve) for a in (*kernel.body, kernel.returns))


# Dask's linalg.solve needs square chunks (its LU works chunk by chunk); a dense solve on
# arrays chunked by the batch is refused by Dask itself, with a message that says so.
DASK_CANNOT = {k.id for k in KERNELS if _solves(k)}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", CALLS)
def test_same_library_same_dtype_same_numbers(name, library):
    asarray, kind, dtype = LIBRARIES[library]

    def to_library(a):  # float arrays in the library's float dtype, integer labels as they are
        return asarray(a.astype(dtype) if a.dtype.kind == "f" else a)

    args, options = CALLS[name]
    converted = [to_library(a) for a in args], convert(options, to_library)
    if library == "dask" and name in DASK_CANNOT:
        with pytest.raises(ValueError, match="square matrix"):
            to_numpy(call(BY_ID[name], *converted[0], **converted[1]))
        return
    result = call(BY_ID[name], *converted[0], **converted[1])
    expected = call(BY_ID[name], *args, **options)
    # a NumPy reduction to one number gives a NumPy scalar, as np.sum does
    assert isinstance(result, kind) or (kind is np.ndarray and isinstance(result, np.generic)), (
        type(result)
    )
    assert str(result.dtype).endswith(dtype)
    tolerance = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(to_numpy(result), expected, rtol=tolerance, atol=tolerance)


def test_dask_batch_larger_than_a_chunk_gives_numpys_gradient_lazily():
    x = rng.normal(size=(1000, 4))
    labels = rng.integers(7, size=1000)
    y = np.eye(7)[labels]
    lazy = generated.weight_grad(
        dask_array.from_array(x, chunks=(128, 4)),
        dask_array.from_array(W),
        dask_array.from_array(labels, chunks=128),
    )
    assert isinstance(lazy, dask_array.Array)
    np.testing.assert_allclose(lazy.compute(), generated.weight_grad(x, W, y), rtol=1e-12)


def test_mixed_libraries_are_refused():
    with pytest.raises(TypeError, match="different array libraries"):
        generated.summation(X, torch.asarray(W))


def test_mixed_libraries_are_refused_by_the_argument_that_differs():
    with pytest.raises(
        TypeError,
        match=r"^W: expected an array of the same library as x \(numpy\.ndarray\), got torch\.Tensor",
    ):
        generated.summation(X, torch.asarray(W))
    with pytest.raises(
        TypeError,
        match=r"^y: expected an array of the same library as x \(torch\.Tensor\), got numpy\.ndarray",
    ):
        generated.weight_grad(torch.asarray(X), torch.asarray(W), LABELS)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lists_and_scalars_take_the_dtype_of_the_tensors_beside_them(dtype):
    x = torch.tensor([1.0], dtype=getattr(torch, dtype))
    result = generated.summation(x, [[0.1]])
    assert result.dtype == x.dtype
    assert result.item() == torch.tensor(0.1, dtype=x.dtype).item()  # 0.1 rounded once, in dtype
    assert generated.summation([[1.0, 2.0]], torch.ones(2, 3, dtype=x.dtype)).dtype == x.dtype
    labels = generated.weight_grad(x, [[0.5, 0.5]], 1)  # a Python int label for one sample
    assert labels.dtype == x.dtype


def test_lists_alone_are_float64_in_every_library():
    assert generated.softmax([1.0, 2.0]).dtype == np.float64
    result = generated.summation([[0.1]], strict.asarray([[1.0]], dtype=strict.float64))
    assert result.dtype == strict.float64


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("wide", ["float32", "float64"])
def test_half_precision_tensors_are_promoted_to_the_common_dtype(half, wide):
    half, wide = getattr(torch, half), getattr(torch, wide)
    x, w = torch.asarray(X, dtype=half), torch.asarray(W, dtype=wide)
    assert torch.result_type(x, w) == wide
    for name, arguments in {
        "summation": (x, w),
        "layer_jacobian": (x, w),
        "weight_grad": (x, w, LABELS_T),
        "cross_entropy": (torch.asarray(S, dtype=wide), torch.asarray(Y, dtype=half)),
    }.items():
        result = getattr(generated, name)(*arguments)
        assert result.dtype == wide, name
        expected = getattr(generated, name)(*(a.to(wide) for a in arguments[:2]), *arguments[2:])
        torch.testing.assert_close(result, expected)


LABELS_T = torch.asarray(LABELS)


def test_integer_tensors_take_the_float_dtype_beside_them():
    x = torch.asarray(X, dtype=torch.float32)
    assert generated.summation(x, torch.ones(4, 7, dtype=torch.int64)).dtype == torch.float32
    assert generated.summation(torch.ones(2, 4, dtype=torch.int32), x.T).dtype == torch.float32
    integers = torch.ones(2, 4, dtype=torch.int32), torch.ones(4, 7, dtype=torch.int64)
    assert generated.summation(*integers).dtype == torch.float64  # no floats: float64
