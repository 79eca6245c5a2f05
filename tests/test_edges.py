"""The edges of the generated functions' domains (issue 22): no silent wrong answer.

Narrow label dtypes with ``ignore_index``, options given as arrays, empty
batches, preconditions (Σ s = 1, label rows without negative entries, BCE's
p and y in [0, 1]), and the cases where a formula written plainly loses
precision, overflows or gives 0 · log 0. Expected values come from NumPy
written out here, from PyTorch, or from the limits the issue states, never
from the function under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from derive import generated

from registry import BY_NAME, KERNELS, call, draw_all, require

torch = require("torch")

# Every function with PyTorch's cross-entropy options: none is listed by hand.
WITH_OPTIONS = [k for k in BY_NAME.values() if k.options_form is not None]


def _option_arguments(kernel, labels: np.ndarray, classes: int) -> list:
    """The kernel's arguments for these class labels, the others drawn from the registry."""
    values = draw_all(
        {p.name: p for p in kernel.params},
        labels.shape,
        np.random.default_rng(5),
        sizes={"C": classes, "D": 3, "H": 3, "K": 3},
    )
    return [labels if p.one_hot else values[p.name] for p in kernel.params]


def _torch(arguments: list, labels_dtype=None) -> list:
    return [
        torch.from_numpy(a).to(labels_dtype) if a.dtype.kind in "iu" else torch.from_numpy(a)
        for a in arguments
    ]


def _numpy(value) -> np.ndarray:
    return np.asarray(value.detach() if hasattr(value, "detach") else value)


# (labels dtype, labels, ignore_index, classes): an ignore_index the dtype cannot hold, which
# wraps to a label that is present when compared in the labels' own dtype
NOT_HELD = [
    ("uint8", [156, 1], -100, 200),
    ("int16", [1, 0], 65537, 3),
    ("int8", [1, 0], 257, 3),
    ("uint8", [0, 2], 256, 3),
]


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype, labels, ignore, classes", NOT_HELD)
def test_an_ignore_index_the_labels_dtype_cannot_hold_ignores_nothing(
    kernel, library, dtype, labels, ignore, classes
):
    wide = np.array(labels, dtype=np.int64)
    arguments = _option_arguments(kernel, wide, classes)
    expected = call(kernel, *arguments, ignore_index=ignore)  # int64: nothing wraps
    narrow = [a.astype(dtype) if a is wide else a for a in arguments]
    if library == "torch":
        narrow = _torch(narrow, getattr(torch, dtype))
    got = call(kernel, *narrow, ignore_index=ignore)
    np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=1e-12)


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_an_invalid_narrow_label_is_not_taken_for_an_ignore_index_it_wraps_to(kernel, library):
    labels = np.array([-1, 1], dtype=np.int8)  # -1 is 255 in uint8: never the ignored 255
    arguments = _option_arguments(kernel, labels, 3)
    if library == "torch":
        arguments = _torch(arguments, torch.int8)
    with pytest.raises(
        ValueError, match=r"^y: expected class labels in 0\.\.2, got labels from -1"
    ):
        call(kernel, *arguments, ignore_index=255)


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_an_ignore_index_held_by_a_narrow_dtype_still_ignores(kernel, library):
    labels = np.array([2, 1, 2], dtype=np.uint8)
    arguments = _option_arguments(kernel, labels, 3)
    wide = [a.astype(np.int64) if a is labels else a for a in arguments]
    if library == "torch":
        arguments = _torch(arguments, torch.uint8)
    options = {"ignore_index": 2}
    if "reduction" in {o.name for o in kernel.options_form.options}:
        options["reduction"] = "none"
    got = call(kernel, *arguments, **options)
    expected = call(kernel, *wide, **options)
    np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=1e-12)


# -- options given as arrays, labels given as NumPy scalars ---------------------------------


ARRAY_OPTIONS = [
    ("label_smoothing", np.array([0.1, 0.2]), r"^label_smoothing: expected a single number"),
    ("reduction", np.array(["mean", "sum"]), r"^reduction: expected one of"),
    ("reduction", np.array("sum"), r"^reduction: expected one of"),
]


@pytest.mark.parametrize(
    "kernel, option, value, message",
    [
        (kernel, *case)
        for kernel in WITH_OPTIONS
        for case in ARRAY_OPTIONS
        if case[0] in {o.name for o in kernel.options_form.options}
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_an_option_given_as_an_array_is_named(kernel, option, value, message):
    arguments = _option_arguments(kernel, np.array([0, 1]), 3)
    with pytest.raises((TypeError, ValueError), match=message):
        call(kernel, *arguments, **{option: value})


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
def test_a_smoothing_given_as_a_numpy_scalar_works(kernel):
    arguments = _option_arguments(kernel, np.array([0, 1]), 3)
    expected = call(kernel, *arguments, label_smoothing=0.25)
    np.testing.assert_allclose(
        call(kernel, *arguments, label_smoothing=np.float32(0.25)), expected, rtol=1e-7
    )


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
@pytest.mark.parametrize("label", [np.int64(1), np.int32(1), np.uint8(1)])
def test_a_numpy_integer_label_beside_torch_tensors_works_as_a_python_int(kernel, label):
    arguments = _option_arguments(kernel, np.array(1), 3)
    tensors = [torch.from_numpy(a) for a in arguments]
    with_int = [
        1 if a.ndim == 0 and a.dtype.kind in "iu" else t for a, t in zip(arguments, tensors)
    ]
    with_numpy = [
        label if a.ndim == 0 and a.dtype.kind in "iu" else t for a, t in zip(arguments, tensors)
    ]
    np.testing.assert_array_equal(
        _numpy(call(kernel, *with_numpy)), _numpy(call(kernel, *with_int))
    )


def _no_warnings(function, *arguments, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return function(*arguments, **options)


__all__ = ["generated", "_no_warnings"]


# -- newton_step's linear solve -----------------------------------------------------------

NEWTON_X = np.array([[1.0, -0.5], [0.3, 0.8], [-1.2, 0.4]])
NEWTON_W = np.array([[0.1, -0.2, 0.3], [0.0, 0.2, -0.1]])
NEWTON_Y = np.array([0, 2, 1])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_newton_step_works_in_float16_as_in_float32(library):
    convert = (lambda a: a) if library == "numpy" else torch.from_numpy
    x16, W16 = (convert(a.astype(np.float16)) for a in (NEWTON_X, NEWTON_W))
    x32, W32 = (convert(a.astype(np.float16).astype(np.float32)) for a in (NEWTON_X, NEWTON_W))
    y = convert(NEWTON_Y)
    half = generated.newton_step(x16, W16, y, 0.5)
    assert str(half.dtype).endswith("float16")
    single = _numpy(generated.newton_step(x32, W32, y, 0.5))
    np.testing.assert_allclose(_numpy(half).astype(np.float32), single, rtol=4e-3, atol=1e-3)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("scale, l2", [(1.0, 1e-300), (1e10, 1e-3)])
def test_newton_step_on_a_singular_system_names_l2(library, scale, l2):
    convert = (lambda a: a) if library == "numpy" else torch.from_numpy
    x, W, y = convert(NEWTON_X[:, :1] * scale), convert(np.zeros((1, 3))), convert(NEWTON_Y)
    with pytest.raises(ValueError, match=r"^l2: the penalised Hessian .* is singular"):
        generated.newton_step(x, W, y, l2)


@pytest.mark.parametrize("l2", [np.inf, float("inf")])
def test_newton_step_with_an_infinite_penalty_is_named(l2):
    with pytest.raises(ValueError, match=r"^l2: expected a finite penalty"):
        generated.newton_step(NEWTON_X, NEWTON_W, NEWTON_Y, l2)


# -- precision at the ends of (0, 1) --------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, p", [(np.float32, 1e-8), (np.float32, 3e-6), (np.float64, 1e-17), (np.float64, 1e-300)]
)
def test_binary_cross_entropy_keeps_a_small_p_under_y_zero(dtype, p):
    p = np.array([p], dtype)
    exact = p.astype(np.float64) + p.astype(np.float64) ** 2 / 2  # -log(1 - p), to p³
    got = generated.binary_cross_entropy(p, np.zeros_like(p))
    np.testing.assert_allclose(got, exact, rtol=4 * np.finfo(dtype).eps)


# -- softmax with a temperature: shift by the maximum, then divide --------------------------


@pytest.mark.parametrize(
    "library, dtype, z, T, expected",
    [
        ("numpy", "float64", [1e308, -1e308], 0.5, [1.0, 0.0]),
        ("numpy", "float16", [700.0, 0.0], 0.01, [1.0, 0.0]),
        ("numpy", "float64", [1.0, 2.0], 1e-309, [0.0, 1.0]),
        ("numpy", "float32", [-3e38, 3e38], 1e-30, [0.0, 1.0]),
        ("torch", "float32", [3e36, 0.0], 1e-3, [1.0, 0.0]),
        ("torch", "float16", [600.0, -600.0], 1e-4, [1.0, 0.0]),
    ],
)
def test_softmax_temperature_of_extreme_logits_is_the_one_hot_limit(library, dtype, z, T, expected):
    logits = np.array(z, dtype=dtype)
    if library == "torch":
        logits = torch.from_numpy(logits)
    got = _numpy(generated.softmax_temperature(logits, T))
    np.testing.assert_array_equal(got, np.array(expected, dtype=dtype))


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(
    "dtype, z, T",
    [
        ("float16", [60000.0, -60000.0, 0.0], 1e30),  # T rounds to ∞ in float16, z₂ − z₁ to −∞
        ("float64", [1.7e308, -1.7e308, 0.0], float("inf")),
        ("float32", [3e38, -3e38, 0.0], 1e39),
    ],
)
def test_softmax_temperature_of_logits_wider_than_the_dtype_is_uniform_when_hot(
    library, dtype, z, T
):
    """z_k − max z overflows to −∞ and T is ∞ in the logits' dtype: the T → ∞ limit, not nan."""
    logits = np.array(z, dtype=dtype)
    if library == "torch":
        logits = torch.from_numpy(logits)
    got = _numpy(generated.softmax_temperature(logits, T))
    np.testing.assert_allclose(got, np.full(3, 1 / 3), rtol=np.finfo(dtype).eps)


# -- no avoidable overflow ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, p, y",
    [
        ("float64", [[1e308, 0.0, 0.0]], [[0.0, 0.0, 0.0]]),
        ("float64", [[-1e308, 0.0, 5.0]], [[0.0, 0.0, 0.0]]),
        ("float16", [[40000.0, 0.0]], [[0.0, 0.0]]),
        ("float32", [[3e38, 1.0]], [[0.0, 1.0]]),
    ],
)
def test_mean_squared_error_grad_does_not_overflow_where_the_gradient_is_finite(dtype, p, y):
    p, y = np.array(p, dtype), np.array(y, dtype)
    exact = 2 * (p.astype(np.longdouble) - y) / p.shape[-1]  # finite in every case here
    assert np.all(np.isfinite(exact.astype(dtype)))
    got = _no_warnings(generated.mean_squared_error_grad, p, y)
    np.testing.assert_allclose(got.astype(np.longdouble), exact, rtol=2 * np.finfo(dtype).eps)


# -- preconditions: Σ s = 1, no negative label entry, p and y in [0, 1] ----------------------

# Every function whose formula needs its argument's rows to sum to 1, or its values in [0, 1]
ROWS_SUMMING_TO_ONE = [
    (k, p.name) for k in BY_NAME.values() for p in k.params if p.check == "probabilities"
]
IN_UNIT_INTERVAL = [
    (k, p.name) for k in BY_NAME.values() for p in k.params if p.check == "in [0, 1]"
]
WITH_LABEL_ROWS = [k for k in BY_NAME.values() if any(p.one_hot for p in k.params)]


def _arguments(kernel, batch=(2,), classes=3) -> dict:
    params = {p.name: p for p in kernel.params}
    return draw_all(
        params, batch, np.random.default_rng(11), sizes={"C": classes, "D": 3, "H": 3, "K": 3}
    )


def test_the_preconditions_are_declared_where_the_issue_found_them():
    assert {k.name for k, _ in ROWS_SUMMING_TO_ONE} >= {
        "softmax_jacobian",
        "softmax_temperature_jacobian",
    }
    assert {k.name for k, _ in IN_UNIT_INTERVAL} >= {"binary_cross_entropy"}


@pytest.mark.parametrize("kernel, name", ROWS_SUMMING_TO_ONE, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(
    "rows, message",
    [
        ([[0.5, 0.5, 0.5]], r"summing to 1 \(within .*\), but row 0 sums to 1\.5"),
        ([[0.2, 0.3, 0.4], [0.2, 0.3, 0.5]], r"summing to 1 \(within .*\), but row 0 sums to 0\.9"),
        ([[2.0, -0.5, -0.5]], r"with no negative entry, but row 0 has -0\.5"),
    ],
)
def test_unnormalised_softmax_outputs_are_named(kernel, name, library, rows, message):
    values = _arguments(kernel, batch=(len(rows),))
    values[name] = np.array(rows)
    arguments = [values[p.name] for p in kernel.params]
    if library == "torch":
        arguments = [torch.from_numpy(a) if a.ndim else a for a in arguments]
    for _ in range(2):  # the first call, then a NumPy call of a shape seen before
        with pytest.raises(ValueError, match=rf"^{name}: expected probability rows .*{message}"):
            call(kernel, *arguments)


@pytest.mark.parametrize("kernel, name", ROWS_SUMMING_TO_ONE, ids=lambda v: getattr(v, "name", v))
def test_a_normalised_row_passes_after_an_unnormalised_one_of_the_same_shape(kernel, name):
    values = _arguments(kernel, batch=(1,))
    good = [values[p.name] for p in kernel.params]
    call(kernel, *good)  # the shape and dtype are seen passing
    bad = [np.array([[0.5, 0.5, 0.5]]) if p.name == name else values[p.name] for p in kernel.params]
    with pytest.raises(ValueError, match=rf"^{name}: "):
        call(kernel, *bad)
    call(kernel, *good)


@pytest.mark.parametrize("kernel", WITH_LABEL_ROWS, ids=lambda k: k.name)
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_label_rows_with_a_negative_entry_are_named_even_if_they_sum_to_one(kernel, library):
    values = _arguments(kernel, batch=(2,), classes=2)
    arguments = [
        np.array([[0.0, 1.0], [2.0, -1.0]]) if p.one_hot else values[p.name] for p in kernel.params
    ]
    if library == "torch":
        arguments = [torch.from_numpy(a) if a.ndim else a for a in arguments]
    for _ in range(2):
        with pytest.raises(
            ValueError,
            match=r"^y: expected one-hot or probability rows with no negative entry, but row 1 has -1",
        ):
            call(kernel, *arguments)


@pytest.mark.parametrize("kernel, name", IN_UNIT_INTERVAL, ids=lambda v: getattr(v, "name", v))
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [1.5, -0.25, np.nan])
def test_binary_probabilities_and_targets_outside_zero_one_are_named(kernel, name, library, bad):
    values = _arguments(kernel, batch=(3,))
    values[name] = np.array([0.5, bad, 0.25])
    arguments = [values[p.name] for p in kernel.params]
    if library == "torch":
        arguments = [torch.from_numpy(a) for a in arguments]
    for _ in range(2):
        with pytest.raises(
            ValueError, match=rf"^{name}: expected values in \[0, 1\], got 1 outside"
        ):
            call(kernel, *arguments)


@pytest.mark.parametrize("kernel, name", IN_UNIT_INTERVAL, ids=lambda v: getattr(v, "name", v))
def test_zero_and_one_are_in_the_unit_interval(kernel, name):
    values = _arguments(kernel, batch=(2,))
    values[name] = np.array([0.0, 1.0])
    call(kernel, *[values[p.name] for p in kernel.params])  # no error (the result may be inf)


# -- empty batches: an empty answer where nothing is averaged --------------------------------

PER_SAMPLE = [k for k in KERNELS if not k.flatten_batch and any(p.batched for p in k.params)]
AVERAGED = [k for k in BY_NAME.values() if k.flatten_batch]


def _batch_of(kernel, batch: tuple, library: str, dtype: str) -> list:
    values = draw_all(
        {p.name: p for p in kernel.params},
        batch,
        np.random.default_rng(2),
        sizes={"C": 3, "D": 2, "H": 2, "K": 3},
    )
    arguments = [
        v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
        for v in (values[p.name] for p in kernel.params)
    ]
    if library == "torch":
        arguments = [
            torch.from_numpy(a) if isinstance(a, np.ndarray) and a.ndim else a for a in arguments
        ]
    return arguments


def _results(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("kernel", PER_SAMPLE, ids=lambda k: k.id)
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [(0,), (2, 0)])
def test_an_empty_batch_gives_an_empty_result_of_the_batch_shape_and_dtype(
    kernel, library, dtype, batch
):
    one = _results(call(kernel, *_batch_of(kernel, (1,), library, dtype)))
    for _ in range(2):  # the full checks, then a NumPy call of a shape seen before
        empty = _results(_no_warnings(call, kernel, *_batch_of(kernel, batch, library, dtype)))
        for got, single in zip(empty, one, strict=True):
            assert tuple(got.shape) == batch + tuple(single.shape[1:])
            assert got.dtype == single.dtype


@pytest.mark.parametrize(
    "kernel", [k for k in PER_SAMPLE if any(p.one_hot for p in k.params)], ids=lambda k: k.id
)
def test_an_empty_batch_of_integer_labels_gives_an_empty_result(kernel):
    arguments = _batch_of(kernel, (0,), "numpy", "float64")
    labels = [
        np.zeros(0, dtype=np.uint8) if p.one_hot else a for p, a in zip(kernel.params, arguments)
    ]
    for _ in range(2):
        np.testing.assert_array_equal(call(kernel, *labels), call(kernel, *arguments))


@pytest.mark.parametrize("kernel", AVERAGED, ids=lambda k: k.name)
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_mean_over_no_samples_is_named(kernel, library):
    arguments = _batch_of(kernel, (0,), library, "float64")
    first = next(p.name for p in kernel.params if p.batched)
    for _ in range(2):
        with pytest.raises(ValueError, match=rf"^{first}: expected at least one sample"):
            call(kernel, *arguments)


def test_the_issues_empty_batch_gives_tensorflows_shapes():
    z = np.zeros((0, 2, 4), np.float32)
    loss = generated.cross_entropy_from_logits(z, z)
    gradient = generated.cross_entropy_from_logits_grad(z, z)
    assert (loss.shape, loss.dtype, gradient.shape, gradient.dtype) == (
        (0, 2),
        np.float32,
        (0, 2, 4),
        np.float32,
    )


@pytest.mark.parametrize("kernel", WITH_OPTIONS, ids=lambda k: k.name)
def test_an_empty_batch_with_options_sums_to_zero_and_refuses_a_mean(kernel):
    arguments = _option_arguments(kernel, np.zeros(0, dtype=np.int64), 3)
    reductions = {o.name for o in kernel.options_form.options}
    if "reduction" in reductions:
        none = call(kernel, *arguments, reduction="none", label_smoothing=0.1)
        assert none.shape[0] == 0
        total = call(kernel, *arguments, reduction="sum", label_smoothing=0.1)
        assert np.all(np.asarray(total) == 0)
    with pytest.raises(
        ValueError, match=r"^(y: reduction 'mean' over no samples|x: expected at least one sample)"
    ):
        call(
            kernel, *arguments, reduction="mean", label_smoothing=0.1
        ) if "reduction" in reductions else call(kernel, *arguments, label_smoothing=0.1)


# -- 0 · log 0 = 0 -------------------------------------------------------------------------


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("labels", ["integers", "uint8", "one-hot"])
def test_a_certain_right_prediction_costs_nothing(library, labels):
    # scikit-learn's log_loss test: log_loss(eye(3) labels, eye(3)) is 0
    s = np.eye(3)
    y = {
        "integers": np.array([0, 1, 2]),
        "uint8": np.arange(3, dtype=np.uint8),
        "one-hot": np.eye(3),
    }[labels]
    if library == "torch":
        s, y = torch.from_numpy(s), torch.from_numpy(y)
    for _ in range(2):
        np.testing.assert_array_equal(
            _numpy(_no_warnings(generated.cross_entropy, s, y)), [0.0, 0.0, 0.0]
        )


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_certain_binary_prediction_costs_nothing_and_a_certain_wrong_one_inf(library, dtype):
    # p = y = 1 and p = y = 0 were nan (0 · log 0); PyTorch's binary_cross_entropy gives 0 too
    p = np.array([1.0, 0.0, 1.0, 0.0, 0.5], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype)
    if library == "torch":
        p, y = torch.from_numpy(p), torch.from_numpy(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log 0 where the answer is inf
        got = _numpy(generated.binary_cross_entropy(p, y))
    np.testing.assert_array_equal(got[:4], [0.0, 0.0, np.inf, np.inf])
    assert got.dtype == dtype and got[4] == np.asarray(np.log(2), dtype=dtype)
    np.testing.assert_array_equal(
        _numpy(_no_warnings(generated.binary_cross_entropy, p[:2], y[:2])), [0.0, 0.0]
    )


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_zero_probability_is_inf_only_where_its_target_is_not_zero(library):
    s = np.array([[0.0, 0.25, 0.75], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]])
    y = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    expected = [
        -(0.5 * np.log(0.25) + 0.5 * np.log(0.75)),
        np.inf,
        -np.log(0.5),
    ]
    if library == "torch":
        s, y = torch.from_numpy(s), torch.from_numpy(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log 0 where the answer is inf
        np.testing.assert_allclose(_numpy(generated.cross_entropy(s, y)), expected, rtol=1e-15)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gradient_is_zero_where_a_zero_probability_has_a_zero_target(library, dtype):
    # the loss takes 0 · log 0 = 0, so a term whose y is 0 does not depend on s: its
    # derivative is 0, at s = 0 too, where −y/s was 0/0 = nan with a RuntimeWarning
    s, y = np.array([0.0, 1.0], dtype=dtype), np.array([0.0, 1.0], dtype=dtype)
    if library == "torch":
        s, y = torch.from_numpy(s), torch.from_numpy(y)
    got = _no_warnings(generated.cross_entropy_grad, s, y)
    assert str(got.dtype).removeprefix("torch.") == dtype
    np.testing.assert_array_equal(_numpy(got), [0.0, -1.0])


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gradient_with_zero_probabilities_matches_differences_of_the_loss(library, dtype):
    """Rows with zeros under zero targets: −y/s where y > 0 and 0 where y = 0 (NumPy written
    out), the central differences of `cross_entropy` in each s_t, and, in torch, autograd of
    the loss; none of them reads `cross_entropy_grad`."""
    s = np.array([[0.0, 0.25, 0.75], [0.5, 0.0, 0.5], [0.0, 0.0, 1.0]], dtype=dtype)
    y = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    written = np.where(y > 0, -y / np.where(y > 0, s, 1), 0.0)
    h = 2.0**-12  # a power of two: s ± h is exact, so is the difference quotient's step
    differences = np.zeros_like(s, dtype=np.float64)
    for index in np.ndindex(s.shape):
        up, down = s.copy(), s.copy()
        up[index] += h
        down[index] -= h
        loss = generated.cross_entropy
        change = loss(up[index[0]], y[index[0]]) - loss(down[index[0]], y[index[0]])
        differences[index] = float(change) / (2 * h)
    arguments = (s, y) if library == "numpy" else (torch.from_numpy(s), torch.from_numpy(y))
    got = _numpy(_no_warnings(generated.cross_entropy_grad, *arguments))
    tolerance = {"float32": 1e-3, "float64": 1e-6}[dtype]  # O(h²) truncation, rounding of XE
    np.testing.assert_array_equal(got, written.astype(dtype))
    np.testing.assert_allclose(got, differences, rtol=tolerance, atol=tolerance)
    if library == "torch":
        leaf = torch.from_numpy(s.copy()).requires_grad_(True)
        generated.cross_entropy(leaf, torch.from_numpy(y)).sum().backward()
        np.testing.assert_array_equal(got, leaf.grad.numpy())


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_binary_gradient_at_a_certain_target_is_the_limit_not_nan(library, dtype):
    """The loss takes 0 · log 0 = 0, so where y = 0 it is −log1p(−p), whose derivative is
    1/(1 − p): 1 at p = 0; where y = 1 it is −log p, derivative −1/p: −1 at p = 1. Written as
    (p − y)/(p(1 − p)) both were 0/0 = nan with a RuntimeWarning. Checked against each
    branch written out in NumPy, one-sided differences of `binary_cross_entropy` and, in
    torch, autograd of the loss; none of them reads `binary_cross_entropy_grad`."""
    p = np.array([0.0, 1.0, 0.25, 0.5, 1e-30, 0.75], dtype=dtype)
    y = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.75], dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):  # branches not selected divide by 0
        written = np.select([y == 0, y == 1], [1 / (1 - p), -1 / p], (p - y) / (p * (1 - p)))
    arguments = (p, y) if library == "numpy" else (torch.from_numpy(p), torch.from_numpy(y))
    got = _no_warnings(generated.binary_cross_entropy_grad, *arguments)
    assert str(got.dtype).removeprefix("torch.") == dtype
    got = _numpy(got)
    np.testing.assert_array_equal(got[:2], [1.0, -1.0])
    np.testing.assert_allclose(got, written, rtol=4 * np.finfo(dtype).eps)
    h = 2.0**-20  # one-sided at p = 0 and p = 1, where p ± h leaves [0, 1]
    loss = generated.binary_cross_entropy
    for index, side in ((0, 1.0), (1, -1.0)):
        step = np.array(p[index] + side * h, dtype=np.float64)
        change = loss(step, np.float64(y[index])) - loss(np.float64(p[index]), np.float64(y[index]))
        np.testing.assert_allclose(got[index], side * float(change) / h, rtol=1e-5)
    if library == "torch":
        leaf = torch.from_numpy(p.copy()).requires_grad_(True)
        generated.binary_cross_entropy(leaf, torch.from_numpy(y)).sum().backward()
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("dtype, T", [("float16", 1e-30), ("float32", 1e-300), ("float16", 5e-324)])
def test_a_temperature_that_rounds_to_zero_in_the_dtype_gives_the_limit(library, dtype, T):
    logits = np.array([[1.0, 2.0, 2.0], [0.5, 0.0, -3.0]], dtype=dtype)
    if library == "torch":
        logits = torch.from_numpy(logits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1/0 where T rounds to 0: the limit is meant
        got = _numpy(generated.softmax_temperature(logits, T))
    np.testing.assert_array_equal(got, np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], dtype=dtype))
