"""symmetric_kronecker_sum (derive._runtime), the printing of a SymmetricMatmulSum: Σ_b x_bj x_bk
w_bcd, entry [j, c, k, d], against a plain einsum, for every library the generated functions
take (NumPy through the pairs j ≤ k, c ≤ d; others through one product of all of them)."""

import numpy as np
import pytest

from derive._runtime import FAST_NUMPY, namespace, symmetric_kronecker_sum

from registry import require

# (B, D, C) with D·C ≥ 128, NumPy's pairs: every sample's pairs fit in the result's memory after
# the product, or they fit in a few products, or in too many (fresh pairs), or not one sample's
# (C = 1); D = 1; no samples. Then D·C < 128: one plain product.
PAIRS = [(6, 16, 8), (200, 16, 8), (1000, 16, 8), (3, 130, 1), (2, 1, 130), (1, 16, 8), (0, 16, 8)]
SIZES = PAIRS + [(6, 4, 7), (1, 1, 1), (3, 1, 2), (2, 5, 1)]


def _symmetric(rng, B, C, dtype):
    w = rng.normal(size=(B, C, C))
    return (w + w.transpose(0, 2, 1)).astype(dtype)


def _einsum(x, w):
    return np.einsum("bj,bk,bcd->jckd", x.astype(np.float64), x.astype(np.float64), w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("B", "D", "C"), SIZES)
def test_numpy_equals_the_einsum_and_is_exactly_symmetric(B, D, C, dtype):
    """Exactly: through the pairs by construction, and in the plain product here, where w is."""
    rng = np.random.default_rng(B + 10 * D + 100 * C)
    x, w = rng.normal(size=(B, D)).astype(dtype), _symmetric(rng, B, C, dtype)
    kept = x.copy(), w.copy()
    got = symmetric_kronecker_sum(FAST_NUMPY, x, w)
    assert got.shape == (D, C, D, C) and got.dtype == dtype and got.flags.c_contiguous
    expected = _einsum(x, w.astype(np.float64))
    scale = np.abs(expected).max()
    tolerance = 1e-13 if dtype == np.float64 else 1e-5
    assert np.abs(got - expected).max() <= tolerance * scale
    np.testing.assert_array_equal(got, got.transpose(2, 1, 0, 3))  # j ↔ k
    np.testing.assert_array_equal(got, got.transpose(0, 3, 2, 1))  # c ↔ d
    np.testing.assert_array_equal(x, kept[0])  # the arguments are left alone
    np.testing.assert_array_equal(w, kept[1])


def test_numpy_reads_only_the_class_pairs_c_at_most_d():
    """The entries c > d of w are never read: garbage there changes nothing."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(7, 16)), _symmetric(rng, 7, 8, np.float64)
    garbage = w.copy()
    below = np.tril_indices(8, -1)
    garbage[:, below[0], below[1]] = 1e300
    np.testing.assert_array_equal(
        symmetric_kronecker_sum(FAST_NUMPY, x, garbage), symmetric_kronecker_sum(FAST_NUMPY, x, w)
    )


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_numpy_dtypes_without_blas_take_the_plain_product(dtype):
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(5, 3)).astype(dtype), _symmetric(rng, 5, 2, dtype)
    got = symmetric_kronecker_sum(FAST_NUMPY, x, w)
    assert got.dtype == dtype and got.shape == (3, 2, 3, 2)
    expected = _einsum(x, w.astype(np.float64))
    assert np.abs(got.astype(np.float64) - expected).max() <= 1e-2 * np.abs(expected).max()


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize(("B", "D", "C"), [(6, 16, 8), (6, 4, 7)])
def test_other_libraries_equal_the_einsum(library, B, D, C):
    module = require(library)
    rng = np.random.default_rng(B + D + C)
    x, w = rng.normal(size=(B, D)), _symmetric(rng, B, C, np.float64)
    lx, lw = module.asarray(x), module.asarray(w)
    got = symmetric_kronecker_sum(namespace(lx, lw), lx, lw)
    assert type(got) is type(lx) and tuple(got.shape) == (D, C, D, C)
    got = np.asarray(got.numpy() if hasattr(got, "numpy") else np.from_dlpack(got))
    expected = _einsum(x, w)
    assert np.abs(got - expected).max() <= 1e-13 * np.abs(expected).max()
