"""The NumPy fast path of the generated functions changes their speed, never their results.

NumPy arrays get ``FAST_NUMPY`` (NumPy with four wrappers bound to their C
cores), and a call whose shapes and dtypes passed the checks once skips them.
"""

import numpy as np
import pytest

from derive._runtime import FAST_NUMPY, namespace, prepare
from derive.generated import softmax, weight_grad

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
