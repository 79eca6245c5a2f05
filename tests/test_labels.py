"""Integer class labels are accepted wherever one-hot y is, with the same result."""

import numpy as np
import pytest

from derive.generated import (
    cross_entropy,
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    softmax,
    weight_grad,
)

from registry import KERNELS, call, draw_all, require

rng = np.random.default_rng(7)
X = rng.normal(size=(2, 3, 4))  # batch (2, 3), D = 4
W = rng.normal(size=(4, 6))  # C = 6
LABELS = rng.integers(6, size=(2, 3))
ONE_HOT = np.eye(6)[LABELS]
Z = X @ W
S = softmax(Z)


def _labelled(kernel):
    """``kernel`` called with these labels as ``y``, its other arguments drawn from the registry."""
    values = draw_all(
        {p.name: p for p in kernel.params if not p.one_hot},
        LABELS.shape,
        np.random.default_rng(3),
        sizes={"C": 6, "D": 4, "H": 3, "K": 3},
    )
    values.update({"x": X, "W": W, "z": Z, "s": S})
    return lambda y: call(kernel, *[y if p.one_hot else values[p.name] for p in kernel.params])


# Every generated function that takes labels: none is listed by hand.
CALLS = {k.id: _labelled(k) for k in KERNELS if any(p.one_hot for p in k.params)}


@pytest.mark.parametrize("name", CALLS)
def test_labels_give_the_same_result_as_one_hot(name):
    np.testing.assert_array_equal(CALLS[name](LABELS), CALLS[name](ONE_HOT))


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("bad", [6, -1])
def test_a_label_outside_the_classes_is_named(name, bad):
    labels = LABELS.copy()
    labels[1, 2] = bad
    with pytest.raises(ValueError, match=r"^y: expected class labels in 0\.\.5, got labels from"):
        CALLS[name](labels)


def test_a_single_sample_takes_a_scalar_label():
    np.testing.assert_array_equal(weight_grad(X[0, 0], W, 4), weight_grad(X[0, 0], W, np.eye(6)[4]))


def test_labels_keep_float32():
    assert weight_grad(X.astype(np.float32), W.astype(np.float32), LABELS).dtype == np.float32


def test_labels_of_the_wrong_batch_shape_are_refused():
    with pytest.raises(ValueError, match=r"^y: expected .*integer class labels of shape \(2, 3\)"):
        weight_grad(X, W, LABELS[:, :2])


# Narrow integer dtypes: labels are compared with the classes in int64, so a uint8 label
# cannot wrap around at 256 (nor an int8 one at 128) and mark a second class.


@pytest.mark.parametrize(
    ("dtype", "classes"),
    [
        (np.uint8, 300),
        (np.int8, 300),
        (np.uint16, 70000),
        (np.int16, 70000),
        (np.uint32, 300),
        (np.uint64, 300),
    ],
)
def test_narrow_integer_labels_mark_one_class_for_any_number_of_classes(dtype, classes):
    z = np.zeros((2, classes))
    labels = np.array([1, 100], dtype=dtype)
    grad = cross_entropy_from_logits_grad(z, labels)
    np.testing.assert_array_equal(np.argwhere(grad < 0), [[0, 1], [1, 100]])
    np.testing.assert_array_equal(grad, cross_entropy_from_logits_grad(z, labels.astype(np.int64)))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64"])
def test_narrow_torch_labels_mark_one_class(dtype):
    torch = require("torch")
    z = torch.zeros(2, 300, dtype=torch.float64)
    labels = torch.tensor([1, 100], dtype=getattr(torch, dtype))
    grad = cross_entropy_from_logits_grad(z, labels)
    assert torch.nonzero(grad < 0).tolist() == [[0, 1], [1, 100]]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "int64"])
def test_narrow_array_api_strict_labels_mark_one_class(dtype):
    strict = require("array_api_strict")
    z = strict.zeros((2, 300))
    labels = strict.asarray([1, 100], dtype=getattr(strict, dtype))
    grad = np.from_dlpack(cross_entropy_from_logits_grad(z, labels))
    np.testing.assert_array_equal(np.argwhere(grad < 0), [[0, 1], [1, 100]])


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_negative_narrow_labels_are_out_of_range(library):
    labels = np.array([1, -100], dtype=np.int8)
    z = np.zeros((2, 300))
    if library == "torch":
        torch = require("torch")
        labels, z = torch.asarray(labels), torch.asarray(z)
    with pytest.raises(
        ValueError, match=r"^y: expected class labels in 0\.\.299, got labels from -100 to 1$"
    ):
        cross_entropy_from_logits(z, labels)


@pytest.mark.parametrize("name", CALLS)
def test_boolean_labels_are_refused_by_name(name):
    with pytest.raises(TypeError, match=r"^y: expected .*got dtype bool"):
        CALLS[name](LABELS > 2)
    with pytest.raises(TypeError, match=r"^y: expected .*got dtype bool"):
        CALLS[name](ONE_HOT > 0)


@pytest.mark.parametrize("name", CALLS)
def test_float_labels_of_the_batch_shape_say_the_dtype(name):
    with pytest.raises(TypeError, match=r"^y: expected integer class labels .*got dtype float64$"):
        CALLS[name](LABELS.astype(np.float64))


@pytest.mark.parametrize("name", CALLS)
def test_nan_in_one_hot_rows_is_named(name):
    y = ONE_HOT.copy()
    y[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match=r"^y: expected .*summing to 1.*row \(1, 0\) sums to nan$"):
        CALLS[name](y)


@pytest.mark.parametrize("name", CALLS)
def test_rows_that_do_not_sum_to_one_are_named(name):
    y = ONE_HOT.copy()
    y[0, 2, 0] += 0.5
    with pytest.raises(
        ValueError, match=r"^y: expected .*summing to 1.*row \(0, 2\) sums to 1\.5$"
    ):
        CALLS[name](y)
    y = ONE_HOT.copy()
    y[1, 1] = 0  # a row of zeros: no class at all
    with pytest.raises(ValueError, match=r"^y: expected .*row \(1, 1\) sums to 0$"):
        CALLS[name](y)


def test_a_single_row_that_does_not_sum_to_one_is_named():
    with pytest.raises(ValueError, match=r"^y: expected .*summing to 1.*the row sums to 2$"):
        cross_entropy(S[0, 0], np.ones(6) / 3)
    y = np.eye(6)[[0, 1, 2, 3, 4]]
    y[4] *= 0.9
    with pytest.raises(ValueError, match=r"^y: expected .*row 4 sums to 0\.9$"):
        cross_entropy(np.full((5, 6), 1 / 6), y)


def test_probability_rows_within_rounding_are_accepted():
    smoothed = ONE_HOT * 0.9 + 0.1 / 6  # label smoothing: rows sum to 1 up to rounding
    cross_entropy(S, smoothed)
    soft32 = softmax(Z.astype(np.float32) * 3)  # float32 rows: their sums are off by ~1e-7
    cross_entropy(S.astype(np.float32), soft32)
    wide = softmax(rng.normal(size=(4, 1000)))  # C = 1000: the tolerance grows with C
    cross_entropy(wide, wide)
    with pytest.raises(ValueError, match="^y: "):
        cross_entropy(S.astype(np.float32), soft32 * (1 + 1e-4))


def test_trusted_labels_skips_the_row_checks_and_restores_them():
    import derive

    y = ONE_HOT * 2
    with derive.trusted_labels():
        np.testing.assert_allclose(cross_entropy(S, y), 2 * cross_entropy(S, ONE_HOT))
        with pytest.raises(ValueError, match=r"^y: expected class labels in 0\.\.5"):
            cross_entropy(
                S, LABELS + 6
            )  # integer labels are still checked: out of range is not a value
    with pytest.raises(ValueError, match="^y: expected .*summing to 1"):
        cross_entropy(S, y)
    assert derive.check_labels(False) is True
    try:
        cross_entropy(S, y)
    finally:
        assert derive.check_labels(True) is False
    with pytest.raises(ValueError, match="^y: expected .*summing to 1"):
        cross_entropy(S, y)


def test_labels_in_torch_and_array_api_strict_are_checked_too():
    torch = require("torch")
    strict = require("array_api_strict")
    y = ONE_HOT.copy()
    y[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^y: .*row \(1, 2\) sums to nan$"):
        cross_entropy(torch.asarray(S), torch.asarray(y))
    with pytest.raises(ValueError, match=r"^y: .*row \(1, 2\) sums to nan$"):
        cross_entropy(strict.asarray(S), strict.asarray(y))


def test_integer_one_hot_rows_are_checked_like_float_ones():
    cross_entropy(S, ONE_HOT.astype(np.uint8))
    multi_hot = ONE_HOT.astype(np.uint8)
    multi_hot[1, 0, :2] = 1
    for _ in range(2):
        with pytest.raises(ValueError, match=r"^y: expected .*row \(1, 0\) sums to [23]$"):
            cross_entropy(S, multi_hot)


def test_half_precision_label_rows_beside_float32_are_accepted():
    soft16 = softmax(Z).astype(np.float16)  # rows off by up to ~C · 2**-11
    assert cross_entropy(S.astype(np.float32), soft16).dtype == np.float32


def test_label_rows_that_require_grad_are_checked_too():
    torch = require("torch")
    y = torch.asarray(ONE_HOT * 2).requires_grad_()
    with pytest.raises(ValueError, match=r"^y: .*row \(0, 0\) sums to 2$"):
        cross_entropy(torch.asarray(S), y)
