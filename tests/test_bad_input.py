"""Wrong shapes raise a ValueError that names the argument and the expected
shape; nothing broadcasts silently into a wrong result."""

import numpy as np
import pytest

from derive.generated import (
    cross_entropy,
    cross_entropy_from_logits,
    cross_entropy_grad,
    layer_jacobian,
    softmax,
    softmax_jacobian,
    summation,
    summation_jacobian,
    weight_grad,
)

from registry import require

x = np.ones((4, 3))  # a batch of 4 samples, D = 3
W = np.ones((3, 5))  # D = 3, C = 5
y = np.eye(5)[[0, 1, 2, 3]]  # (4, 5)
s = np.full((4, 5), 0.2)


def raises(argument: str, expected: str, got: tuple):
    """The error names the argument first, says what was expected and what came."""
    pattern = rf"^{argument}: expected .*{expected}.*got {got}$".replace("(", r"\(").replace(
        ")", r"\)"
    )
    return pytest.raises(ValueError, match=pattern)


def call(f, x, W):
    """f(x, W); for weight_grad, with a one-hot y that fits x and W's last axis."""
    if f is weight_grad:
        return f(x, W, np.eye(W.shape[-1])[np.zeros(x.shape[:-1], dtype=int)])
    return f(x, W)


X_AND_W = [summation, summation_jacobian, layer_jacobian, weight_grad]


@pytest.mark.parametrize("f", X_AND_W)
def test_W_with_the_wrong_number_of_inputs(f):
    with raises("W", "shape (D, C) with D = 3 as in x.shape", (4, 5)):
        call(f, x, np.ones((4, 5)))


@pytest.mark.parametrize("f", X_AND_W)
def test_W_that_is_not_a_matrix(f):
    with raises("W", "shape (D, C)", (3,)):
        call(f, x, np.ones(3))
    with raises("W", "shape (D, C)", (2, 3, 5)):
        call(f, x, np.ones((2, 3, 5)))


@pytest.mark.parametrize("f", [summation, summation_jacobian, layer_jacobian])
def test_x_without_an_input_axis(f):
    with raises("x", "shape (..., D)", ()):
        f(np.float64(1.0), W)


def test_weight_grad_x_without_an_input_axis():
    with raises("x", "shape (..., D)", ()):
        weight_grad(np.float64(1.0), W, np.eye(5)[0])


def test_weight_grad_y_with_another_batch_shape_does_not_broadcast():
    with raises("y", "batch shape (4,) as in x", (5, 5)):
        weight_grad(x, W, np.eye(5))


def test_weight_grad_y_with_another_number_of_classes():
    with raises("y", "with C = 5 as in W.shape", (4, 6)):
        weight_grad(x, W, np.ones((4, 6)))


def test_weight_grad_y_whose_batch_would_broadcast_against_x_is_refused():
    with raises("y", "batch shape (2, 4) as in x", (4, 5)):
        weight_grad(np.ones((2, 4, 3)), W, y)
    with raises("y", "batch shape (4,) as in x", (1, 5)):
        weight_grad(x, W, np.eye(5)[[0]])


def test_weight_grad_a_batch_of_y_for_one_x_is_refused():
    with raises("y", "batch shape () as in x", (4, 5)):
        weight_grad(np.ones(3), W, y)


def test_weight_grad_single_y_for_a_batch_is_refused():
    with raises("y", "batch shape (4,) as in x", (5,)):
        weight_grad(x, W, np.eye(5)[0])


@pytest.mark.parametrize("f", [cross_entropy, cross_entropy_grad, cross_entropy_from_logits])
def test_cross_entropy_y_that_does_not_match(f):
    with raises("y", "with C = 5 as in", (4, 4)):
        f(s, np.ones((4, 4)))
    with raises("y", "batch shape (4,) as in", (1, 5)):
        f(s, np.ones((1, 5)))


@pytest.mark.parametrize("f", [cross_entropy, cross_entropy_grad])
def test_cross_entropy_one_s_for_a_batch_of_y_is_refused(f):
    with raises("y", "batch shape () as in s", (4, 5)):
        f(s[0], y)


@pytest.mark.parametrize("f", [cross_entropy, cross_entropy_grad])
def test_cross_entropy_s_without_a_class_axis(f):
    with raises("s", "shape (..., C)", ()):
        f(np.float64(0.5), y)


def test_softmax_of_a_scalar():
    with raises("z", "shape (..., C)", ()):
        softmax(np.float64(1.0))


def test_softmax_of_nothing():
    with raises("z", "with C > 0", (0,)):
        softmax(np.ones(0))


def test_softmax_jacobian_of_a_scalar():
    with raises("s", "shape (..., C)", ()):
        softmax_jacobian(np.float64(0.5))


def test_complex_input_is_refused_by_name():
    with pytest.raises(TypeError, match="^z: expected real numbers"):
        softmax(np.ones(3, dtype=complex))


def test_integer_and_list_input_become_float():
    np.testing.assert_allclose(softmax([0, 0]), [0.5, 0.5])
    assert summation([[1, 2, 3]], W).dtype == np.float64


# Anything that is not an array of real numbers is refused by the argument's name, saying
# what was expected, however NumPy or the array library would have failed on it.
NOT_NUMBERS = {
    "None": (None, "got None"),
    "dict": ({"a": 1.0}, "got dict"),
    "str": ("1.0 2.0", "got str"),
    "object": (object(), "got object"),
    "bool": (np.array([[True, False]]), "got dtype bool"),
    "bool list": ([[True, False]], "got dtype bool"),
    "datetime": (np.array(["2026-01-01"], dtype="datetime64[D]"), "got dtype datetime64"),
}


@pytest.mark.parametrize("what", NOT_NUMBERS)
def test_what_is_not_an_array_of_numbers_is_refused_by_name(what):
    value, got = NOT_NUMBERS[what]
    with pytest.raises(TypeError, match=rf"^z: expected .*{got}"):
        softmax(value)
    with pytest.raises(TypeError, match=rf"^W: expected .*{got}"):
        summation(x, value)


@pytest.mark.parametrize("what", ["None", "dict", "str", "object", "bool list"])
def test_what_is_not_an_array_of_numbers_beside_torch_is_refused_by_name(what):
    torch = require("torch")
    value, got = NOT_NUMBERS[what]
    with pytest.raises(TypeError, match=rf"^W: expected .*{got}"):
        summation(torch.ones(4, 3), value)
    with pytest.raises(TypeError, match=rf"^y: expected .*{got}"):
        cross_entropy(torch.full((4, 5), 0.2), value)


def test_a_ragged_list_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^z: expected shape \(\.\.\., C\), got a ragged list"):
        softmax([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"^W: expected shape \(D, C\), got a ragged list"):
        summation(x, [[1.0] * 5, [1.0] * 5, [1.0] * 4])


def test_bool_values_are_refused_not_taken_as_zero_and_one():
    with pytest.raises(TypeError, match="^z: expected real numbers, got dtype bool"):
        softmax(np.array([True, False]))
    with pytest.raises(TypeError, match="^x: expected real numbers, got dtype bool"):
        weight_grad(x > 0, W, y)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_and_other_ndarray_subclasses_are_plain_arrays():
    s = [[0.2, 0.3, 0.5]]
    assert softmax_jacobian(np.matrix(s)).shape == (1, 3, 3)
    np.testing.assert_array_equal(softmax_jacobian(np.matrix(s)), softmax_jacobian(np.array(s)))
    assert type(softmax_jacobian(np.matrix(s))) is np.ndarray
    assert summation(np.matrix(x), np.matrix(W)).shape == (4, 5)
    np.testing.assert_array_equal(weight_grad(np.matrix(x), W, np.matrix(y)), weight_grad(x, W, y))


def test_masked_arrays_are_refused_rather_than_unmasked():
    with pytest.raises(TypeError, match="^z: expected .*got a masked array"):
        softmax(np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 0, 1]))


# A batch of no samples is an empty result where nothing is averaged (tests/test_edges.py);
# a mean over the samples (weight_grad, the Hessians, newton_step) needs one.


def test_weight_grad_with_an_empty_batch_says_x():
    for y in (np.ones((0, 5)), np.zeros(0, dtype=int)):
        with pytest.raises(
            ValueError,
            match=r"^x: expected at least one sample \(the result is a mean over the samples\), "
            r"got shape \(0, 3\)$",
        ):
            weight_grad(np.ones((0, 3)), W, y)


def test_a_single_sample_batch_shape_is_still_taken():
    assert weight_grad(x[0], W, y[0]).shape == (3, 5)
    assert weight_grad(x[0], W, 2).shape == (3, 5)
    assert cross_entropy(s[0], y[0]).shape == ()
    assert softmax(np.ones(5)).shape == (5,)
