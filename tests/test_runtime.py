"""The NumPy fast path of the generated functions changes their speed, never their results.

NumPy arrays get ``FAST_NUMPY`` (NumPy with four wrappers bound to their C
cores), and a call whose shapes and dtypes passed the checks once skips them
(``checked_numpy``), except those of the values: it must refuse whatever the
full checks refuse, with the same error.
"""

import sys

import numpy as np
import pytest

import derive.generated as generated
from derive import _runtime
from derive._runtime import FAST_NUMPY, namespace, prepare
from derive.generated import (
    cross_entropy_from_logits_grad,
    softmax,
    softmax_jacobian,
    weight_grad,
)

from registry import BY_NAME, draw_all

rng = np.random.default_rng(7)
a = rng.normal(size=(2, 3, 4))


def test_numpy_arrays_get_the_fast_namespace_and_others_do_not():
    assert namespace(a, a) is FAST_NUMPY
    assert namespace([1.0, 2.0]) is not FAST_NUMPY  # lists go through array-api-compat
    assert FAST_NUMPY.exp is np.exp  # everything but the four is NumPy itself


@pytest.mark.parametrize(
    "keywords", [{}, {"axis": -1}, {"axis": (0, 2)}, {"axis": 1, "keepdims": True}]
)
def test_fast_reductions_are_numpys(keywords):
    np.testing.assert_array_equal(FAST_NUMPY.sum(a, **keywords), np.sum(a, **keywords))
    np.testing.assert_array_equal(FAST_NUMPY.max(a, **keywords), np.max(a, **keywords))


@pytest.mark.parametrize("shape", [(256, 10), (4, 64, 3), (64, 16), (1000, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_over_a_short_last_axis_of_many_rows_are_numpys(shape, dtype, keepdims):
    """These take the column-by-column route; a transposed view goes in as well."""
    z = rng.normal(size=shape).astype(dtype)
    for array in (z, z[..., ::-1], np.asfortranarray(z)):  # and two views that are not C-contiguous
        fast_max = FAST_NUMPY.max(array, axis=-1, keepdims=keepdims)
        np.testing.assert_array_equal(fast_max, np.max(array, axis=-1, keepdims=keepdims))
        fast_sum = FAST_NUMPY.sum(array, axis=-1, keepdims=keepdims)
        exact = np.sum(array.astype(np.float64), axis=-1, keepdims=keepdims)
        assert fast_sum.dtype == dtype and fast_sum.shape == exact.shape
        np.testing.assert_allclose(fast_sum, exact, rtol=1e-5 if dtype == np.float32 else 1e-13)


def test_the_short_axis_max_propagates_nan_as_numpys():
    z = rng.normal(size=(128, 10))
    z[5, 3] = np.nan
    fast = FAST_NUMPY.max(z, axis=-1)
    assert np.isnan(fast[5]) and np.isfinite(np.delete(fast, 5)).all()


def test_fast_reshape_and_transpose_are_numpys():
    np.testing.assert_array_equal(FAST_NUMPY.reshape(a, (-1, 4)), np.reshape(a, (-1, 4)))
    assert not np.shares_memory(FAST_NUMPY.reshape(a, (6, 4), copy=True), a)
    assert np.shares_memory(FAST_NUMPY.reshape(a, (6, 4)), a)
    np.testing.assert_array_equal(FAST_NUMPY.matrix_transpose(a), np.matrix_transpose(a))
    with pytest.raises(ValueError):
        FAST_NUMPY.matrix_transpose(np.ones(3))
    with pytest.raises(ValueError):
        FAST_NUMPY.max(np.ones((2, 0)), axis=-1)  # no identity, as np.max


def test_shapes_that_passed_once_still_fail_when_they_change():
    x, W, y = np.ones((4, 3)), np.ones((3, 5)), np.eye(5)[[0, 1, 2, 3]]
    weight_grad(x, W, y)  # passes, and is remembered
    with pytest.raises(ValueError, match=r"^W: expected shape \(D, C\) with D = 3"):
        weight_grad(x, np.ones((4, 5)), y)
    with pytest.raises(ValueError, match=r"^y: expected batch shape \(4,\)"):
        weight_grad(x, W, y[:3])


def test_a_remembered_shape_with_another_dtype_is_checked_again():
    specs = {"z": "(..., C)"}
    (floats,) = prepare(FAST_NUMPY, z=(np.ones((2, 3)), specs["z"]))
    (converted,) = prepare(FAST_NUMPY, z=(np.ones((2, 3), dtype=np.int64), specs["z"]))
    assert floats.dtype == converted.dtype == np.float64
    with pytest.raises(TypeError, match="^z: expected real numbers"):
        prepare(FAST_NUMPY, z=(np.ones((2, 3), dtype=complex), specs["z"]))


def test_integer_labels_are_converted_on_every_call():
    x, W = np.ones((2, 3)), np.ones((3, 4))
    np.testing.assert_array_equal(
        weight_grad(x, W, np.array([0, 1])), weight_grad(x, W, np.eye(4)[[0, 1]])
    )
    np.testing.assert_array_equal(
        weight_grad(x, W, np.array([0, 1])), weight_grad(x, W, np.eye(4)[[0, 1]])
    )
    with pytest.raises(ValueError, match="^y: expected class labels in 0..3"):
        weight_grad(x, W, np.array([0, 4]))  # same shape and dtype as a call that passed


def test_results_are_the_same_on_both_paths():
    z = rng.normal(size=(5, 7)).astype(np.float32)
    fast = softmax(z)
    compat = softmax(z.tolist())  # a list: the array-api-compat namespace, float64
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, compat, rtol=1e-6)


def test_mixed_dtypes_run_in_the_common_dtype_on_both_paths():
    x32, W64 = np.ones((4, 3), dtype=np.float32), np.ones((3, 5))
    for _ in range(2):  # the second call replays the conversion the first worked out
        assert weight_grad(x32, W64, np.array([0, 1, 2, 3])).dtype == np.float64
        (x, W) = prepare(FAST_NUMPY, x=(x32, "(..., D)"), W=(W64, "(D, C)"))
        assert x.dtype == W.dtype == np.float64
        assert x32.dtype == np.float32  # the argument itself is not changed


def test_one_hot_labels_take_the_dtype_of_the_values():
    x32, W32 = np.ones((4, 3), dtype=np.float32), np.ones((3, 5), dtype=np.float32)
    for _ in range(2):
        assert weight_grad(x32, W32, np.eye(5)[[0, 1, 2, 3]]).dtype == np.float32


def test_label_rows_are_checked_on_every_call_of_a_remembered_shape():
    x, W, y = np.ones((4, 3)), np.ones((3, 5)), np.eye(5)[[0, 1, 2, 3]]
    weight_grad(x, W, y)
    weight_grad(x, W, y)  # a remembered shape
    bad = y.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^y: expected .*row 2 sums to nan$"):
        weight_grad(x, W, bad)
    bad = y.astype(np.float32) * 2
    for _ in range(2):
        with pytest.raises(ValueError, match=r"^y: expected .*row 0 sums to 2$"):
            weight_grad(x, W, bad)


# ------------------------------------- a NumPy call seen before: one fused runtime call


def full_checks(monkeypatch, function):
    """``function`` with its NumPy fast path turned off: every call runs the full checks."""
    monkeypatch.setattr(sys.modules[function.__module__], "checked_numpy", lambda *a: None)
    return function


def outcome(function, *arguments):
    """What a call gives: its result, or the type and message of its error."""
    try:
        return function(*arguments)
    except (TypeError, ValueError) as error:
        return type(error), str(error)


def full_outcome(monkeypatch, function, *arguments):
    """``outcome`` of the call with the full checks, the fast path restored after."""
    with monkeypatch.context() as patched:
        return outcome(full_checks(patched, function), *arguments)


def refused_alike(monkeypatch, match, function, *arguments):
    """The call raises a ValueError matching ``match``, with the full checks' type and message."""
    with pytest.raises(ValueError, match=match):
        function(*arguments)
    assert outcome(function, *arguments) == full_outcome(monkeypatch, function, *arguments)


def assert_same(fast, full):
    if isinstance(full, tuple) and isinstance(full[0], type):  # an error
        assert fast == full
        return
    for a, b in zip(
        fast if isinstance(fast, tuple) else [fast], full if isinstance(full, tuple) else [full]
    ):
        assert type(a) is type(b) and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def registry_arguments(kernel, dtype, labels: bool) -> list:
    values = draw_all({p.name: p for p in kernel.params}, (3, 2), np.random.default_rng(5))
    for p in kernel.params:
        if p.domain == "one_hot" and labels:
            values[p.name] = np.argmax(values[p.name], axis=-1)
        elif p.axes or p.batched:
            values[p.name] = values[p.name].astype(dtype)
        else:
            values[p.name] = float(values[p.name])
    return [values[p.name] for p in kernel.params]


# every generated function, and those with one-hot targets again with class labels
CALLS = [(name, False) for name in sorted(BY_NAME)] + [
    (name, True) for name in sorted(BY_NAME) if any(p.one_hot for p in BY_NAME[name].params)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, labels", CALLS, ids=[f"{n}{'-labels' * l}" for n, l in CALLS])
def test_a_call_seen_before_gives_what_the_full_checks_give(monkeypatch, name, labels, dtype):
    kernel = BY_NAME[name]
    arguments = registry_arguments(kernel, dtype, labels)
    function = getattr(generated, name)
    first, again = function(*arguments), function(*arguments)  # the second one is remembered
    with monkeypatch.context() as patched:
        full = full_checks(patched, function)(*arguments)
    assert_same(first, full)
    assert_same(again, full)


def test_a_remembered_call_runs_no_full_checks(monkeypatch):
    x, W, y = np.ones((4, 3)), np.ones((3, 5)), np.array([0, 1, 2, 3])
    expected = weight_grad(x, W, np.eye(5)[y])  # remembered, as the class labels below are
    weight_grad(x, W, y)
    module = sys.modules[weight_grad.__module__]

    def refuse(*arguments, **keywords):
        raise AssertionError("the full checks ran")

    for check in ("namespace", "is_class_labels", "prepare"):
        monkeypatch.setattr(module, check, refuse)
    monkeypatch.setattr(_runtime, "prepare", refuse)
    np.testing.assert_array_equal(weight_grad(x, W, y), expected)
    np.testing.assert_array_equal(weight_grad(x, W, np.eye(5)[y]), expected)


@pytest.mark.parametrize(
    "dtype, classes, bad",
    [
        (np.int64, 5, -1),
        (np.int64, 5, 5),
        (np.int64, 5, np.iinfo(np.int64).min),
        (np.int8, 300, -1),  # int8 labels are all below C; a negative one still fails
        (np.int16, 5, -32768),
        (np.uint16, 5, 65535),
        (np.uint64, 5, 2**63 + 1),  # int64 makes it negative; still out of range
        (np.uint64, 5, 2**64 - 1),
    ],
)
def test_a_remembered_shape_with_a_label_out_of_range_raises_the_same_error(
    monkeypatch, dtype, classes, bad
):
    z = rng.normal(size=(4, classes))
    good = np.array([0, 1, 2, 3], dtype=dtype)
    function = cross_entropy_from_logits_grad
    function(z, good), function(z, good)
    labels = good.copy()
    labels[2] = bad
    refused_alike(
        monkeypatch, rf"^y: expected class labels in 0..{classes - 1}, got", function, z, labels
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32])
def test_narrow_labels_of_a_remembered_shape_do_not_wrap(dtype):
    """uint8 label 255 with C = 300 is class 255 only; int8 ones are all below 300."""
    z = rng.normal(size=(3, 300))
    labels = np.array([5, 120, min(np.iinfo(dtype).max, 299)], dtype=dtype)
    wide = labels.astype(np.int64)
    for _ in range(2):
        np.testing.assert_array_equal(
            cross_entropy_from_logits_grad(z, labels), cross_entropy_from_logits_grad(z, wide)
        )


@pytest.mark.parametrize(
    "row, message",
    [
        ([np.nan, 1, 0, 0, 0], "row 2 sums to nan"),
        ([0, 0, 0, 0, 0], "row 2 sums to 0"),
        ([0, 0, 2, 0, 0], "row 2 sums to 2"),
        ([1, 0, 0, 0, np.inf], "row 2 sums to inf"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_remembered_shape_with_a_bad_row_raises_the_same_error(monkeypatch, row, message, dtype):
    x, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    y = np.eye(5, dtype=dtype)[[0, 1, 2, 3]]
    weight_grad(x, W, y), weight_grad(x, W, y)
    bad = y.copy()
    bad[2] = row
    refused_alike(
        monkeypatch,
        rf"^y: expected one-hot or probability rows .*{message}$",
        weight_grad,
        x,
        W,
        bad,
    )
    with _runtime.trusted_labels(), np.errstate(invalid="ignore"):  # no row check on either path
        assert_same(weight_grad(x, W, bad), full_checks(monkeypatch, weight_grad)(x, W, bad))


# one short row is checked as Python floats: min and sum, which a nan anywhere must not fool
@pytest.mark.parametrize(
    "row, message",
    [
        ([np.nan, 1, 0, 0, 0], "the row sums to nan"),
        ([1, 0, 0, 0, np.nan], "the row sums to nan"),
        ([0, 0, 0, 0, 0], "the row sums to 0"),
        ([0, 0, 2, 0, 0], "the row sums to 2"),
        ([1, 0, 0, 0, np.inf], "the row sums to inf"),
        ([-np.inf, 1, 0, 0, 1], "the row sums to -inf"),
        ([-0.5, 1.5, 0, 0, 0], "the row has -0.5"),
        ([0.5, 0.5, 0, 0, -0.0], None),  # -0 is not negative: the row passes on both paths
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_one_remembered_row_with_a_bad_entry_raises_the_same_error(
    monkeypatch, row, message, dtype
):
    x, W = rng.normal(size=3), rng.normal(size=(3, 5))
    y = np.eye(5, dtype=dtype)[2]
    weight_grad(x, W, y), weight_grad(x, W, y)
    if dtype is np.int64 and not all(float(v).is_integer() for v in row):
        return  # an integer row holds no nan, inf or fraction
    bad = np.array(row).astype(dtype)
    if message is None:
        assert_same(weight_grad(x, W, bad), full_checks(monkeypatch, weight_grad)(x, W, bad))
        return
    refused_alike(
        monkeypatch,
        rf"^y: expected one-hot or probability rows .*{message}$",
        weight_grad,
        x,
        W,
        bad,
    )


@pytest.mark.parametrize(
    "bad", [[0.5, np.nan, 0.5], [np.nan, 0.5, 2.0], [0.5, 1.5, 0], [-0.5, 0, 1], [0, np.inf, 1]]
)
def test_short_values_in_the_unit_interval_of_a_remembered_shape_are_checked(monkeypatch, bad):
    function = generated.binary_cross_entropy_grad
    p, y = np.array([0.2, 0.5, 0.9]), np.array([0.0, 1.0, 1.0])
    function(p, y), function(p, y)
    for arguments in [(np.array(bad), y), (p, np.array(bad))]:
        refused_alike(monkeypatch, r"^[py]: expected", function, *arguments)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_row_at_the_edge_of_the_tolerance_gets_the_same_answer_on_both_paths(
    monkeypatch, dtype
):
    x, W = rng.normal(size=3).astype(dtype), rng.normal(size=(3, 5)).astype(dtype)
    y = np.eye(5, dtype=dtype)[1]
    weight_grad(x, W, y)
    tolerance = _runtime._row_tolerance(np, [dtype], 5)
    answers = []
    for scale in np.linspace(0.98, 1.02, 41):
        bad = y.copy()
        bad[1] = dtype(1) + dtype(tolerance * scale)
        fast = outcome(weight_grad, x, W, bad)
        full = full_outcome(monkeypatch, weight_grad, x, W, bad)
        assert_same(fast, full)
        answers.append(isinstance(full, np.ndarray))
    assert any(answers) and not all(answers)  # both sides of the edge were tried


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_at_the_edge_of_the_tolerance_get_the_same_answer_on_both_paths(monkeypatch, dtype):
    x, W = rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=(3, 5)).astype(dtype)
    y = np.eye(5, dtype=dtype)[[0, 1, 2, 3]]
    weight_grad(x, W, y)
    tolerance = _runtime._row_tolerance(np, [dtype], 5)
    answers = []
    for scale in np.linspace(0.98, 1.02, 41):
        bad = y.copy()
        bad[1, 1] = dtype(1) + dtype(tolerance * scale)
        fast = outcome(weight_grad, x, W, bad)
        full = full_outcome(monkeypatch, weight_grad, x, W, bad)
        assert_same(fast, full)
        answers.append(isinstance(full, np.ndarray))
    assert any(answers) and not all(answers)  # both sides of the edge were tried


def test_a_remembered_shape_in_another_dtype_or_shape_is_checked_again():
    x, W, y = np.ones((4, 3)), np.ones((3, 5)), np.array([0, 1, 2, 3])
    weight_grad(x, W, y), weight_grad(x, W, y)
    assert weight_grad(x.astype(np.float32), W.astype(np.float32), y).dtype == np.float32
    assert weight_grad(x.astype(np.float32), W, y).dtype == np.float64
    with pytest.raises(TypeError, match="^y: expected integer class labels or one-hot rows"):
        weight_grad(x, W, y.astype(bool))
    with pytest.raises(ValueError, match=r"^y: expected integer class labels of shape \(4,\)"):
        weight_grad(x, W, y[:3])
    with pytest.raises(ValueError, match=r"^W: expected shape \(D, C\) with D = 3"):
        weight_grad(x, np.ones((4, 5)), y)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_subclasses_and_views_take_the_full_checks_or_give_the_same_result():
    s = softmax(rng.normal(size=(1, 3)))  # softmax_jacobian checks that its rows sum to 1
    softmax_jacobian(s), softmax_jacobian(s)
    jacobian = softmax_jacobian(np.matrix(s))  # a matrix of a remembered shape: converted
    assert type(jacobian) is np.ndarray and jacobian.shape == (1, 3, 3)
    x, W, y = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), np.array([0, 1, 2, 0, 1, 2])
    expected = weight_grad(x, W, y)
    x_strided = np.repeat(x, 2, axis=0)[::2]
    read_only = W.copy()
    read_only.flags.writeable = False
    for _ in range(2):
        np.testing.assert_array_equal(weight_grad(x_strided, read_only, y), expected)
        np.testing.assert_array_equal(weight_grad(np.asfortranarray(x), W, y[::1]), expected)


def test_a_single_sample_with_a_zero_dimensional_label():
    z = rng.normal(size=5)
    for _ in range(2):
        np.testing.assert_array_equal(
            cross_entropy_from_logits_grad(z, np.array(3)),
            cross_entropy_from_logits_grad(z, np.eye(5)[3]),
        )
    with pytest.raises(ValueError, match="^y: expected class labels in 0..4, got labels from 5"):
        cross_entropy_from_logits_grad(z, np.array(5))
    with pytest.raises(ValueError, match="^y: expected class labels in 0..4, got labels from -1"):
        cross_entropy_from_logits_grad(z, np.array(-1))


def test_the_memory_of_calls_seen_is_bounded(monkeypatch):
    monkeypatch.setattr(_runtime, "_SEEN_MOST", 8)
    _runtime._SEEN.clear()  # calls of these shapes seen by earlier tests would not be added
    for batch in range(1, 30):
        z = rng.normal(size=(batch, 4))
        for _ in range(2):
            np.testing.assert_array_equal(softmax(z), softmax(z.tolist()))
        assert len(_runtime._SEEN) <= 8


@pytest.mark.parametrize("dtype", [np.int64, np.uint8])
def test_integer_rows_of_a_remembered_shape_are_checked_as_floats(monkeypatch, dtype):
    x, W = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 5)).astype(np.float32)
    y = np.eye(5, dtype=dtype)[[0, 1, 2, 3]]
    expected = weight_grad(x, W, y.astype(np.float32))
    for _ in range(2):
        np.testing.assert_array_equal(weight_grad(x, W, y), expected)
    for row, message in [
        ([0, 0, 0, 0, 0], "row 3 sums to 0"),
        ([0, 255, 0, 0, 2], "row 3 sums to 257"),
    ]:
        bad = y.copy()
        bad[3] = row
        refused_alike(monkeypatch, rf"^y: expected one-hot .*{message}$", weight_grad, x, W, bad)


@pytest.mark.parametrize("classes", [2, 5, 32, 33, 200])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_sum_of_the_others_adds_every_other_entry_without_subtracting(classes, dtype):
    """Both routes (one product with the off-diagonal ones up to 32 classes, cumulative sums
    above, and always outside NumPy) against each row's other entries added by `math.fsum`;
    a last entry that is nearly all of the row keeps the others' tiny sum."""
    import math

    import array_api_compat.numpy

    from derive._runtime import sum_of_others

    rng = np.random.default_rng(classes)
    a = rng.uniform(0.0, 1e-9, (3, classes)).astype(dtype)
    a[:, -1] = 1.0
    expected = np.array(
        [[math.fsum(np.delete(row, i).astype(np.float64)) for i in range(classes)] for row in a]
    )
    for xp in (FAST_NUMPY, array_api_compat.numpy):
        got = sum_of_others(xp, a)
        assert got.shape == a.shape and got.dtype == a.dtype
        np.testing.assert_allclose(got, expected, rtol=classes * np.finfo(dtype).eps)
        assert np.all(got[:, -1] > 0)  # Σ − a_C would give 0 here


def test_fast_numpys_eye_is_numpys_made_once_and_read_only():
    from derive._runtime import off_diagonal

    for args, options in [((3,), {}), ((4,), {"dtype": np.float32}), ((3, 4, 1), {})]:
        got = FAST_NUMPY.eye(*args, **options)
        expected = np.eye(*args, **options)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert FAST_NUMPY.eye(5, dtype=np.float64) is FAST_NUMPY.eye(5, dtype=np.float64)
    assert not FAST_NUMPY.eye(5).flags.writeable
    ones = off_diagonal(FAST_NUMPY, 4, np.dtype(np.float32))
    assert ones.dtype == np.float32 and not ones.flags.writeable
    np.testing.assert_array_equal(ones, [[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]])


def _where_reference(full, diagonal, axes):
    """δ_ij D + (1 − δ_ij) O by NumPy's where on broadcast arrays: what with_diagonal must equal."""
    first, second = axes
    size = max(full.shape[first], full.shape[second])
    gap, after = [1] * (second - first - 1), [1] * (-second - 1)
    eye = np.eye(size, dtype=bool).reshape((size, *gap, size, *after))
    return np.where(eye, np.expand_dims(diagonal, second), full)


@pytest.mark.parametrize("axes", [(-2, -1), (-3, -1), (-3, -2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_with_diagonal_writes_the_diagonal_over_an_owned_full_array_and_copies_one_it_does_not_own(
    axes, dtype
):
    from derive._runtime import with_diagonal

    rng = np.random.default_rng(3)
    shape = {(-2, -1): (2, 3, 4, 4), (-3, -1): (2, 4, 3, 4), (-3, -2): (2, 4, 4, 3)}[axes]
    full = rng.normal(size=shape).astype(dtype)
    diagonal = rng.normal(size=np.delete(shape, len(shape) + axes[1])).astype(dtype)
    expected = _where_reference(full, diagonal, axes)
    kept = full.copy()
    got = with_diagonal(FAST_NUMPY, full, diagonal, 4, axes, owned=False)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(full, kept)  # not owned: left alone
    assert not np.shares_memory(got, full) and got.dtype == dtype
    owned = with_diagonal(FAST_NUMPY, full, diagonal, 4, axes)
    assert owned is full  # owned: written in place
    np.testing.assert_array_equal(owned, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_with_diagonal_writes_over_one_owned_matrix_and_copies_one_it_does_not_own(dtype):
    from derive._runtime import with_diagonal

    rng = np.random.default_rng(6)
    full, diagonal = rng.normal(size=(4, 4)).astype(dtype), rng.normal(size=4).astype(dtype)
    expected = _where_reference(full, diagonal, (-2, -1))
    kept = full.copy()
    got = with_diagonal(FAST_NUMPY, full, diagonal, 4, (-2, -1), owned=False)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(full, kept)
    owned = with_diagonal(FAST_NUMPY, full, diagonal, 4, (-2, -1))
    assert owned is full
    np.testing.assert_array_equal(owned, expected)
    transposed = with_diagonal(FAST_NUMPY, kept.T, diagonal, 4, (-2, -1))  # not C-contiguous
    np.testing.assert_array_equal(transposed, _where_reference(kept.T, diagonal, (-2, -1)))


@pytest.mark.parametrize(
    "a_shape, b_shape, dtypes",
    [
        ((5,), (5,), (np.float64, np.float64)),
        ((5,), (3,), (np.float32, np.float32)),
        ((5,), (5,), (np.float16, np.float16)),
        ((5,), (5,), (np.float32, np.float64)),
        ((2, 5), (2, 5), (np.float64, np.float64)),
        ((2, 5), (5,), (np.float32, np.float32)),
    ],
)
def test_outer_product_is_the_broadcast_product(a_shape, b_shape, dtypes):
    from derive._runtime import outer_product

    rng = np.random.default_rng(8)
    a = rng.normal(size=a_shape).astype(dtypes[0])
    b = rng.normal(size=b_shape).astype(dtypes[1])
    a[1] = np.inf
    b[..., 2] = 0.0
    with np.errstate(invalid="ignore"):  # inf * 0 is nan on both
        expected = a[..., :, None] * b[..., None, :]
        got = outer_product(FAST_NUMPY, a, b)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_with_diagonal_broadcasts_where_the_diagonal_spans_more_than_the_full_array():
    from derive._runtime import with_diagonal

    rng = np.random.default_rng(4)
    full = rng.normal(size=(3, 3))  # O without a batch, D with one: the result is (5, 3, 3)
    diagonal = rng.normal(size=(5, 3))
    got = with_diagonal(FAST_NUMPY, full.copy(), diagonal, 3, (-2, -1))
    assert got.shape == (5, 3, 3)
    np.testing.assert_array_equal(got, _where_reference(full, diagonal, (-2, -1)))
    mixed = with_diagonal(FAST_NUMPY, full.astype(np.float32), diagonal, 3, (-2, -1))
    assert mixed.dtype == np.float64  # promoted as the product would be, never cast down


def test_with_diagonal_in_other_libraries_is_a_selection():
    import array_api_strict as xp

    from derive._runtime import with_diagonal

    rng = np.random.default_rng(5)
    full, diagonal = rng.normal(size=(2, 3, 4, 3)), rng.normal(size=(2, 3, 4))
    got = with_diagonal(xp, xp.asarray(full), xp.asarray(diagonal), 3, (-3, -1))
    np.testing.assert_array_equal(np.asarray(got), _where_reference(full, diagonal, (-3, -1)))


@pytest.mark.parametrize("axes", [(-2, -1), (-3, -2)])
def test_with_diagonal_selects_on_the_right_axes_where_it_cannot_write(axes):
    from derive._runtime import with_diagonal

    rng = np.random.default_rng(6)
    shape = {(-2, -1): (2, 3, 3), (-3, -2): (3, 3, 2)}[axes]
    full = np.broadcast_to(rng.normal(size=shape), (4, *shape))  # read-only: the where path
    diagonal = rng.normal(size=(5, 1, *np.delete(shape, len(shape) + axes[1])))
    got = with_diagonal(FAST_NUMPY, full, diagonal, 3, axes)
    assert got.shape == (5, 4, *shape)
    np.testing.assert_array_equal(got, _where_reference(full, diagonal, axes))


def test_with_diagonal_of_one_matrix_writes_its_diagonal_only():
    from derive._runtime import with_diagonal

    rng = np.random.default_rng(7)
    full, diagonal = rng.normal(size=(4, 4)), rng.normal(size=4)
    expected = _where_reference(full, diagonal, (-2, -1))
    got = with_diagonal(FAST_NUMPY, full, diagonal, 4, (-2, -1))
    assert got is full
    np.testing.assert_array_equal(got, expected)
