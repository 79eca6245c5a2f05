"""No RuntimeWarning where an overflow inside a function gives the right result (issue 22
item 5): logits so far apart that z − max z overflows to −∞ (e^−∞ = 0 is the right term),
tanh_grad at |z| beyond half the dtype's range. A function declares why its overflow is
meant (`Kernel.overflow`); the shift z − max z is silenced wherever it is computed, so every
layer reaching such logits is quiet too; any other overflow still warns, and so does every
other kind of warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import derive.generated as generated
from derive._runtime import quiet_divide, quiet_overflow, subtract_maximum

from registry import BY_NAME, draw, require

QUIETED = [k for k in BY_NAME.values() if k.overflow]
# The widest logits a dtype holds, a row apart by more than its range.
EXTREMES = {"float64": 1.7e308, "float16": 60000.0}


def _numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _extreme_arguments(kernel, dtype: str) -> list:
    """Each real argument as rows [big, −big] (two classes, two samples); labels class 0, a
    temperature 1; anything else drawn from its domain."""
    big = EXTREMES[dtype]
    arguments = []
    for p in kernel.params:
        shape = (2,) * p.batched + tuple(2 for _ in p.axes)
        if not p.axes and not p.batched:
            arguments.append(1.0)
        elif p.domain == "real":
            arguments.append(np.resize(np.array([big, -big], dtype=dtype), shape))
        elif p.domain == "one_hot":
            arguments.append(np.eye(2, dtype=dtype)[[0, 0]])
        else:
            sizes = dict.fromkeys("CDHK", 2)
            arguments.append(draw(p, (2,), sizes, np.random.default_rng(0)).astype(dtype))
    return arguments


def test_the_functions_the_issue_found_declare_their_overflow():
    assert {k.name for k in QUIETED} >= {
        "softmax",
        "log_softmax",
        "cross_entropy_from_logits",
        "cross_entropy_from_logits_grad",
        "cross_entropy_from_logits_hessian",
        "log_softmax_jacobian",
        "softmax_temperature",
        "tanh_grad",
    }


def _no_warning_and_no_nan(kernel, arguments) -> None:
    """``kernel``'s function on ``arguments`` warns nothing and gives no nan."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = getattr(generated, kernel.name)(*arguments)
    for value in result if isinstance(result, tuple) else (result,):
        assert not np.any(np.isnan(value)), f"{kernel.name}: nan on {arguments}"


@pytest.mark.parametrize("dtype", sorted(EXTREMES))
@pytest.mark.parametrize("kernel", QUIETED, ids=lambda k: k.name)
def test_a_declared_overflow_raises_no_warning(kernel, dtype):
    arguments = _extreme_arguments(kernel, dtype)
    _no_warning_and_no_nan(kernel, arguments)


def _logits_weights(kernel):
    """The matrix that makes a layer's logits (axes (..., C), not batched: W, W2), if any."""
    for p in kernel.params:
        if len(p.axes) == 2 and p.axes[-1] == "C" and not p.batched and p.domain == "real":
            return p
    return None


LAYERS = [k for k in BY_NAME.values() if _logits_weights(k) is not None]


def _extreme_layer_arguments(kernel, dtype: str) -> list:
    """Arguments whose logits are [big, −big] with no overflow on the way: x = e₁, every
    matrix before the logits' weights the unit E₁₁ and every bias 0 (so h is a multiple of e₁
    for any activation), the logits' weights' first row [big, −big]; labels class 0, numbers
    1, any later parameter (a direction V) drawn from its domain."""
    big, rng = EXTREMES[dtype], np.random.default_rng(0)
    logits_weights, before = _logits_weights(kernel), True
    arguments = []
    for p in kernel.params:
        shape = (2,) * p.batched + tuple(2 for _ in p.axes)
        if p is logits_weights:
            value, before = np.zeros(shape, dtype), False
            value[0] = [big, -big]
        elif not p.axes and not p.batched:
            value = 1.0
        elif p.domain == "one_hot":
            value = np.eye(2, dtype=dtype)[[0, 0]]
        elif before and p.domain == "real":
            value = np.zeros(shape, dtype)  # a bias: 0
            if p.batched:  # x = e₁ in each sample
                value[..., 0] = 1
            elif len(p.axes) == 2:  # W₁ = E₁₁
                value[0, 0] = 1
        else:
            value = draw(p, (2,), dict.fromkeys("CDHK", 2), rng).astype(dtype)
        arguments.append(value)
    return arguments


def test_every_layer_reaches_extreme_logits_without_overflow_on_the_way():
    """The construction is right: the logits the layer computes are exactly [big, −big]."""
    assert {"weight_grad", "layer_jacobian", "weight_hvp", "weight_hessian"} <= {
        k.name for k in LAYERS
    }
    assert "newton_step" in {k.name for k in LAYERS}
    assert any(k.name.startswith("mlp_grads") for k in LAYERS)
    for kernel in LAYERS:
        if kernel.name.startswith("mlp_logits") or kernel.name == "summation":
            logits = getattr(generated, kernel.name)(*_extreme_layer_arguments(kernel, "float64"))
            assert np.all(logits[..., 0] >= 1e308) and np.all(logits[..., 1] <= -1e308)


@pytest.mark.parametrize("dtype", sorted(EXTREMES))
@pytest.mark.parametrize("kernel", LAYERS, ids=lambda k: k.name)
def test_a_layer_whose_logits_span_the_range_raises_no_warning(kernel, dtype):
    """The six functions the last stop found warning (weight_grad, layer_jacobian, weight_hvp,
    weight_hessian, newton_step, mlp_grads) and every other layer: z − max z is silenced where
    it is computed, so a function need not declare it."""
    arguments = _extreme_layer_arguments(kernel, dtype)
    _no_warning_and_no_nan(kernel, arguments)


def test_subtract_maximum_silences_overflow_only_and_keeps_the_callers_settings():
    z = np.array([1.7e308, -1.7e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shifted = subtract_maximum(np, z, z.max())
    np.testing.assert_array_equal(shifted, [0.0, -np.inf])
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        subtract_maximum(np, np.array([np.inf]), np.inf)  # inf − inf: invalid, still raised
    assert np.geterr()["over"] == "warn"
    with pytest.warns(RuntimeWarning, match="overflow"):  # after it, NumPy warns again
        z - 1.7e308
    mine = np.array([3.0, 1.0])
    subtract_maximum(np, mine, 3.0, owned=False)
    np.testing.assert_array_equal(mine, [3.0, 1.0])  # not given away: not written


def test_quiet_divide_silences_its_one_division_and_keeps_the_callers_settings():
    shifted = np.array([0.0, -1.0, -(2.0**127)], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quotient = quiet_divide(np, shifted, np.float32(0.0), owned=False)  # T rounded to 0
    np.testing.assert_array_equal(np.isnan(quotient), [True, False, False])  # 0/0: selected away
    np.testing.assert_array_equal(quotient[1:], [-np.inf, -np.inf])
    np.testing.assert_array_equal(shifted, [0.0, -1.0, -(2.0**127)])  # not given away: kept
    assert np.geterr()["divide"] == "warn"
    with pytest.warns(RuntimeWarning, match="divide by zero"):  # after it, NumPy warns again
        shifted[1:] / np.float32(0.0)


def test_a_temperature_that_rounds_to_0_in_the_logits_dtype_gives_the_argmax_without_warning():
    """T below float32's smallest number is 0 there (a float64 T is a Python float, and float16
    is computed in float32): (z − max z)/T is −∞ but at the maximum, whose 0/0 the code writes
    0; the quotient is the one division that may do so."""
    T = float(np.finfo(np.float32).smallest_subnormal) / 4
    z = np.array([[1.0, 3.0, -2.0], [5.0, 5.0, 0.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = generated.softmax_temperature(z, T)
    np.testing.assert_array_equal(got, [[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_temperature_beyond_float16s_largest_number_keeps_a_masked_logit_at_0(library):
    """T = 10³⁰ is ∞ in float16, where a −∞ logit's −∞/∞ was nan and the row [nan, nan]:
    float16 is computed in float32, where T is finite and e^{−∞/T} = 0."""
    z = np.array([[-np.inf, 0.0], [-np.inf, 2.0], [1.0, 0.0]], dtype=np.float16)
    logits = z if library == "numpy" else require("torch").from_numpy(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = generated.softmax_temperature(logits, 1e30)
    assert got.dtype == logits.dtype
    np.testing.assert_array_equal(np.asarray(got), [[0.0, 1.0], [0.0, 1.0], [0.5, 0.5]])


def _cases(big: float) -> list:
    """(function, arguments, the exact result rounded to the dtype): the issue's reproducers,
    with their limits worked by hand (S = [1, 0]; log S_2 = −2·big, beyond the range)."""
    z = [big, -big]
    return [
        ("softmax", (z,), [1.0, 0.0]),
        ("log_softmax", (z,), [0.0, -np.inf]),
        ("cross_entropy_from_logits", (z, 0), 0.0),
        ("cross_entropy_from_logits", (z, [1.0, 0.0]), 0.0),
        ("cross_entropy_from_logits_grad", (z, 0), [0.0, 0.0]),
        ("cross_entropy_from_logits_hessian", (z,), [[0.0, 0.0], [0.0, 0.0]]),
        ("log_softmax_jacobian", (z,), [[0.0, 0.0], [-1.0, 1.0]]),  # δ_ij − S_j
        ("softmax_temperature", (z, 1.0), [1.0, 0.0]),
        ("tanh_grad", ([big, -big],), [0.0, 0.0]),
    ]


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", sorted(EXTREMES))
@pytest.mark.parametrize("case", range(len(_cases(1.0))), ids=lambda i: _cases(1.0)[i][0])
def test_the_issues_extreme_logits_give_the_limit_without_a_warning(case, dtype, library):
    name, arguments, expected = _cases(EXTREMES[dtype])[case]
    floats = np.array(arguments[0], dtype=dtype)
    given = [floats, *(np.asarray(a) if isinstance(a, list) else a for a in arguments[1:])]
    given = [
        a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in given
    ]
    if library == "torch":
        given = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in given]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _numpy(getattr(generated, name)(*given))
    np.testing.assert_array_equal(got, np.array(expected, dtype=dtype))


def test_tanh_grad_of_the_issues_scalar_is_zero_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert generated.tanh_grad(np.array(1e308)) == 0.0


def test_a_function_without_a_declared_overflow_still_warns():
    """x·W beyond float64's range is inf, not the product: the warning says something."""
    assert not BY_NAME["summation"].overflow
    with pytest.warns(RuntimeWarning, match="overflow"):
        generated.summation(np.array([1e308, 1e308]), np.ones((2, 3)))


def test_quiet_overflow_silences_overflow_only_and_keeps_the_callers_settings():
    def overflow_then_divide(x):
        return x * x, np.divide(x, 0.0)

    quiet = quiet_overflow(overflow_then_divide)
    big = np.array([1e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="divide by zero"):
            quiet(big)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        squared, divided = quiet(big)  # the caller's divide="ignore" is kept inside
    assert squared[0] == np.inf and divided[0] == np.inf
    with np.errstate(divide="raise"), pytest.raises(FloatingPointError):
        quiet(big)
    with pytest.warns(RuntimeWarning, match="overflow"):  # outside the call, NumPy warns again
        big * big
    assert np.geterr()["over"] == "warn"
