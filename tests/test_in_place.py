"""Updates in place (``derive._runtime.in_place``): the same numbers as the plain path, bit
for bit; no input written, no output sharing an input's memory; the plain path for libraries
without in-place updates (array_api_strict, JAX)."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import derive.generated as generated
from derive import _runtime
from derive._runtime import in_place
from tests.registry import KERNELS, draw_all, require

MODULES = [
    importlib.import_module(f"derive.generated.{m.name}")
    for m in pkgutil.iter_modules(generated.__path__)
]
IN_PLACE_MODULES = [m for m in MODULES if hasattr(m, "in_place")]


def plain(function, a, *others, owned=True):
    return function(a, *others)


def outputs(result) -> list:
    return list(result) if isinstance(result, tuple) else [result]


def cases(kernel, dtype):
    """The kernel's arguments (scalars as floats), and with integer labels if it takes them."""
    rng = np.random.default_rng(7)
    values = draw_all({p.name: p for p in kernel.params}, (6, 3), rng)
    arguments = []
    for p in kernel.params:
        value = values[p.name]
        if not p.axes and not p.batched:
            arguments.append(abs(float(value)) + 0.5)  # a temperature, a penalty: positive
        else:
            arguments.append(value.astype(dtype))
    yield "rows", arguments
    one_hot = [i for i, p in enumerate(kernel.params) if p.one_hot]
    if kernel.labels_form is not None and one_hot:
        (i,) = one_hot
        labels = arguments[:i] + [np.argmax(arguments[i], axis=-1)] + arguments[i + 1 :]
        yield "labels", labels


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_in_place_matches_the_plain_path_and_leaves_inputs_alone(kernel, dtype, monkeypatch):
    function = getattr(generated, kernel.name)
    for kind, arguments in cases(kernel, dtype):
        before = [a.copy() if isinstance(a, np.ndarray) else a for a in arguments]
        fast = outputs(function(*arguments))
        for old, new in zip(before, arguments):
            if isinstance(old, np.ndarray):
                np.testing.assert_array_equal(new, old, err_msg=f"{kind}: an input was written")
        for result in fast:
            for argument in arguments:
                if isinstance(argument, np.ndarray):
                    assert not np.shares_memory(result, argument), f"{kind}: output aliases input"
        with monkeypatch.context() as patch:
            for module in (*IN_PLACE_MODULES, _runtime):
                patch.setattr(module, "in_place", plain)
            slow = outputs(function(*arguments))
        for a, b in zip(fast, slow):
            assert a.dtype == b.dtype and a.shape == b.shape
            # bit for bit: the same ufunc loop on the same numbers, only the output buffer differs
            assert np.array_equal(a, b, equal_nan=True), f"{kind}: in place differs from plain"


def test_the_training_step_updates_its_temporaries_in_place(monkeypatch):
    """weight_grad writes z − max z, exp, the normalisation and 1/B into its own temporaries:
    z = xW is given to the softmax (``fresh=True``), the only array the step allocates."""
    writes = []

    def recording(function, a, *others, owned=True):
        result = in_place(function, a, *others, owned=owned)
        writes.append((function.__name__, result is a))
        return result

    for module in (*IN_PLACE_MODULES, _runtime):  # _runtime's: z − max z (subtract_maximum)
        monkeypatch.setattr(module, "in_place", recording)
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(64, 5)), rng.normal(size=(5, 4))  # 256 numbers: written in place
    labels = rng.integers(4, size=64)
    generated.weight_grad(x, W, labels)
    expected = [("subtract", True), ("exp", True), ("divide", True)]
    assert writes == [*expected, ("divide", True)]
    writes.clear()
    generated.weight_grad(x, W, np.eye(4)[labels])
    assert writes == [*expected, ("subtract", True), ("divide", True)]
    writes.clear()
    z = x @ W
    generated.softmax(z)  # the caller's z: never given away
    assert writes[0] == ("subtract", False)


def test_in_place_writes_only_where_shape_and_dtype_allow():
    a = np.linspace(0.0, 1.0, 300).reshape(100, 3)
    assert in_place(np.exp, a) is a
    single = np.ones((100, 3), dtype=np.float32)
    wider = in_place(np.divide, single, np.full((100, 1), 3.0))  # float64 divisor: float64 result
    assert wider.dtype == np.float64 and not np.shares_memory(wider, single)
    np.testing.assert_array_equal(single, 1)
    column = np.ones((300, 1))
    larger = in_place(np.subtract, column, np.ones((300, 3)))  # the result does not fit
    assert larger.shape == (300, 3) and not np.shares_memory(larger, column)
    np.testing.assert_array_equal(column, 1)
    frozen = np.ones(300)
    frozen.flags.writeable = False
    assert in_place(np.exp, frozen) is not frozen
    integers = np.arange(300)
    assert in_place(np.exp, integers).dtype == np.float64
    np.testing.assert_array_equal(integers, np.arange(300))


def test_a_small_temporary_is_not_written_in_place():
    """Below 256 numbers the plain call: `out=` costs more than a new array of that size."""
    small = np.linspace(0.0, 1.0, 255)
    result = in_place(np.exp, small)
    assert result is not small and not np.shares_memory(result, small)
    np.testing.assert_array_equal(small, np.linspace(0.0, 1.0, 255))
    np.testing.assert_array_equal(result, np.exp(np.linspace(0.0, 1.0, 255)))


@pytest.mark.parametrize("library", ["array_api_strict", "jax.numpy"])
def test_libraries_without_in_place_updates_take_the_plain_path(library):
    xp = require(library)
    if library == "jax.numpy":
        require("jax").config.update("jax_enable_x64", True)
    a = xp.asarray([[0.5, 1.0], [2.0, -1.0]], dtype=xp.float64)
    kept = np.asarray(a).copy()
    result = in_place(xp.exp, a)
    assert result is not a
    np.testing.assert_array_equal(np.asarray(a), kept)
    np.testing.assert_allclose(np.asarray(result), np.exp(kept), rtol=1e-15)
    x = xp.asarray(np.random.default_rng(1).normal(size=(8, 3)))
    W = xp.asarray(np.random.default_rng(2).normal(size=(3, 4)))
    labels = xp.asarray(np.arange(8) % 4)
    np.testing.assert_allclose(
        np.asarray(generated.weight_grad(x, W, labels)),
        generated.weight_grad(np.asarray(x), np.asarray(W), np.asarray(labels)),
        rtol=1e-12,
        atol=1e-15,
    )


def test_the_fused_label_row_test_agrees_with_the_row_by_row_one():
    """Σ(sum − 1)² ≤ tol² passes exact rows; rows each within tol pass through the fallback."""
    tolerance = 1e-3
    exact = np.eye(4)[[0, 1, 2, 3, 1]]
    assert _runtime._rows_pass(exact, tolerance)
    near = exact * (1 + 0.9e-3)  # every row 0.9 tol off: Σ² = 5 (0.9 tol)² > tol², still good
    assert _runtime._rows_pass(near, tolerance)
    for bad in (exact * (1 + 1.1e-3), np.where(exact == 1, np.nan, 0.0), exact[:, ::-1] * 0):
        assert not _runtime._rows_pass(bad, tolerance)
    one_off = exact.copy()
    one_off[3, 0] = 1.0  # two classes marked in row 3
    assert not _runtime._rows_pass(one_off, tolerance)
    assert _runtime._rows_pass(np.array([0.25, 0.75]), tolerance)  # one unbatched row


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_division_by_a_power_of_two_is_the_division_bit_for_bit(dtype):
    """``in_place(np.divide, a, B)`` multiplies by 1/B when B is a power of two: the same
    numbers as the division, subnormal results included; any other divisor divides."""
    rng = np.random.default_rng(3)
    tiny = np.finfo(dtype).smallest_normal
    # above _RECIPROCAL_FROM numbers, where in_place takes the product form at all
    a = np.concatenate([rng.normal(size=2000), [3 * tiny, 5 * tiny, 7e-3, -1.0]]).astype(dtype)
    assert a.size >= _runtime._RECIPROCAL_FROM
    for divisor in (64, 256, 1024.0, 0.5, 3, 6, 100.0):
        result = in_place(np.divide, a.copy(), divisor)
        assert result.dtype == a.dtype
        assert np.array_equal(result, a / divisor), divisor
    # a divisor whose product form would round differently: the division is kept
    thirds = np.full(2000, 1.0, dtype=dtype)
    assert np.array_equal(in_place(np.divide, thirds.copy(), 3), thirds / 3)
    assert _runtime._as_product(a, (64,))[0] is np.multiply
    for kept in (3, 100.0, 64.0, np.int64(64), 2**70, -64):
        assert _runtime._as_product(a, (kept,))[0] is np.divide, kept
    assert _runtime._as_product(a.astype(np.float16), (64,))[0] is np.divide


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_division_by_one_is_the_owned_operand_itself(dtype):
    """The mean over one sample: x/1 is x bit for bit (nan, ±inf, −0, subnormals), so an owned
    temporary is returned as it is; one its caller did not give away is divided into a new
    array, and an integer array still becomes a float one."""
    tiny = np.finfo(dtype).smallest_subnormal
    a = np.array([np.nan, np.inf, -np.inf, -0.0, tiny, 1.5, -3.0], dtype=dtype)
    assert in_place(np.divide, a, 1) is a
    assert np.array_equal(in_place(np.divide, a, 1), a / 1, equal_nan=True)
    assert np.signbit(in_place(np.divide, a, 1)[3])
    kept = in_place(np.divide, a, 1, owned=False)
    assert kept is not a and not np.shares_memory(kept, a)
    assert np.array_equal(kept, a, equal_nan=True) and kept.dtype == a.dtype
    integers = np.arange(5)
    assert in_place(np.divide, integers, 1).dtype == np.float64
    assert in_place(np.divide, a, np.ones(1, dtype)) is not a  # only the int 1


@pytest.mark.parametrize("at_zero", [0, 1])
def test_the_step_function_writes_into_its_argument_only_when_owned(at_zero):
    """`heaviside` gives the numbers of ``astype(z > 0)`` (``>=`` with 1 at 0), nan as 0, and
    writes into z only when told it owns it."""
    z = np.array([-2.0, -0.0, 0.0, 1e-300, 3.0, np.nan, -np.inf, np.inf] * 40, dtype=np.float32)
    expected = (z > 0 if at_zero == 0 else z >= 0).astype(np.float32)
    kept = z.copy()
    result = _runtime.heaviside(np, z, at_zero, np.dtype(np.float32))
    assert result.dtype == np.float32 and np.array_equal(result, expected)
    assert result is not z and np.array_equal(z, kept, equal_nan=True)
    written = _runtime.heaviside(np, z, at_zero, np.dtype(np.float32), owned=True)
    assert written is z and np.array_equal(z, expected)


def test_a_name_assigned_again_is_overwritten_only_after_its_last_read():
    """centred = x − μ; m = Σ centred/K; centred = centred − m; y = centred/σ: the third line
    may write into the old ``centred`` (nothing reads that value after it), the second may
    not (the third reads it), and the last may write into the new one."""
    import sympy as sp

    from derive.codegen import _owned
    from derive.steps import Assign

    K = sp.Symbol("K", integer=True, positive=True)
    k = sp.Idx("k", (1, K))
    x, centred, y = sp.IndexedBase("x"), sp.IndexedBase("centred"), sp.IndexedBase("y")
    mu, m, sigma = sp.symbols("mu m sigma", real=True)
    body = [
        Assign(centred, (k,), x[k] - mu),
        Assign(m, (), sp.Sum(centred[k], (k, 1, K)) / K),
        Assign(centred, (k,), centred[k] - m),
        Assign(y, (k,), centred[k] / sigma),
    ]
    order = [a.expression for a in body]
    owned = _owned(body, order, assigned=["centred", "m", "centred", "y"])
    assert ["centred" in o for o in owned] == [False, False, True, True]
    # without knowing what each line assigns, no read of centred is its last
    assert not any("centred" in o for o in _owned(body, order)[:3])
