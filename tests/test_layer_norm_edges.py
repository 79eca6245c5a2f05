"""Layer normalisation at the edges of the floating-point range (issue 22's spirit).

Written as defined, (x_k − μ)² overflows for |x| beyond the square root of the
largest number and the sum for x near it: ``layer_norm([1.7e308, -1.7e308])``
returned [0, -0] with an overflow warning, where the answer is [1, -1]. The
references here are computed by mpmath at 60 digits from the exact input
values, never by the code under test; every call runs with warnings as errors.
"""

from __future__ import annotations

import warnings

import mpmath
import numpy as np
import pytest

from derive import generated

from registry import require

torch = require("torch")

EPS = 1e-5

# (dtype, vector): the reproducers of the issue, and vectors with a Jacobian not near 0
EDGES = [
    ("float64", [1.7e308, -1.7e308]),
    ("float64", [1e200, -1e200]),
    ("float64", [1.7e308, 1.7e308]),
    ("float64", [1.7e308, -1.7e308, 1e308]),
    ("float64", [-1.7e308, 3.0, 1e300, 1.6e308]),
    ("float64", [1e-300, -1e-300, 0.0]),
    ("float64", [0.0, 0.0, 0.0]),
    ("float32", [3e38, -3e38]),
    ("float32", [3e38, 3e38, -1e38]),
    ("float16", [60000.0, -60000.0]),
    ("float16", [60000.0, 60000.0, -30000.0]),
]


def _reference(x: np.ndarray, g: np.ndarray, eps: float = EPS):
    """x̂, its Jacobian, gᵀJ and σ, at 60 digits from the exact values of x, g and ε."""
    with mpmath.workdps(60):
        xs = [mpmath.mpf(float(v)) for v in x]
        gs = [mpmath.mpf(float(v)) for v in g]
        size = len(xs)
        mu = mpmath.fsum(xs) / size
        sigma = mpmath.sqrt(mpmath.fsum((v - mu) ** 2 for v in xs) / size + mpmath.mpf(eps))
        xhat = [(v - mu) / sigma for v in xs]
        jacobian = [
            [
                ((1 if a == b else 0) - mpmath.mpf(1) / size - xhat[a] * xhat[b] / size) / sigma
                for b in range(size)
            ]
            for a in range(size)
        ]
        vjp = [mpmath.fsum(gs[a] * jacobian[a][b] for a in range(size)) for b in range(size)]
        return (
            np.array([float(v) for v in xhat]),
            np.array([[float(v) for v in row] for row in jacobian]),
            np.array([float(v) for v in vjp]),
            float(sigma),
        )


def _quietly(function, *arguments):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return function(*arguments)


def _as_numpy(value) -> np.ndarray:
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().numpy()
    return np.asarray(value, dtype=np.float64)


def _close(name: str, got, expected: np.ndarray, scale: float, dtype: str) -> None:
    """Norm-wise: within 16 machine epsilons of ``scale`` (the size the entries are measured
    against), or a few of the dtype's smallest numbers where that is below them."""
    info = np.finfo(dtype)
    got = _as_numpy(got)
    tolerance = 16 * float(info.eps) * scale + 4 * float(info.smallest_subnormal)
    assert np.all(np.isfinite(got)), f"{name}: not finite: {got}"
    error = np.max(np.abs(got - expected))
    assert error <= tolerance, (
        f"{name} in {dtype}: got {got}, expected {expected} (error {error:.3g} > {tolerance:.3g})"
    )


def _inputs(library: str, dtype: str, vector: list):
    x = np.array(vector, dtype=dtype)
    g = np.linspace(-1.0, 2.0, len(vector)).astype(dtype)
    if library == "torch":
        return x, g, torch.from_numpy(x.copy()), torch.from_numpy(g.copy())
    return x, g, x.copy(), g.copy()


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "vector"), EDGES)
def test_layer_norm_is_right_near_the_largest_number(library, dtype, vector):
    x, g, xa, _ = _inputs(library, dtype, vector)
    xhat, _, _, _ = _reference(x, g)
    got = _quietly(generated.layer_norm, xa, EPS)
    assert got.dtype == xa.dtype
    _close("layer_norm", got, xhat, 1.0, dtype)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "vector"), EDGES)
def test_layer_norm_jacobian_and_vjp_are_right_near_the_largest_number(library, dtype, vector):
    x, g, xa, ga = _inputs(library, dtype, vector)
    _, jacobian, vjp, sigma = _reference(x, g)
    got_jacobian = _quietly(generated.layer_norm_jacobian, xa, EPS)
    got_vjp = _quietly(generated.layer_norm_vjp, xa, EPS, ga)
    _close("layer_norm_jacobian", got_jacobian, jacobian, 1 / sigma, dtype)
    _close("layer_norm_vjp", got_vjp, vjp, float(np.max(np.abs(g))) / sigma, dtype)


def test_the_issue_reproducer_gives_one_and_minus_one():
    got = _quietly(generated.layer_norm, np.array([1.7e308, -1.7e308]), EPS)
    np.testing.assert_array_equal(got, [1.0, -1.0])


def test_a_constant_vector_near_the_largest_number_is_zero():
    got = _quietly(generated.layer_norm, np.array([1.7e308, 1.7e308]), EPS)
    np.testing.assert_array_equal(got, [0.0, 0.0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ordinary_inputs_still_match_pytorch(dtype):
    rng = np.random.default_rng(22)
    x = (rng.normal(size=(4, 7)) * 3 + 1).astype(dtype)
    g = rng.normal(size=(4, 7)).astype(dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = torch.nn.functional.layer_norm(xt, (7,), eps=EPS)
    (grad,) = torch.autograd.grad(out, xt, torch.from_numpy(g.copy()))
    tolerance = {"float64": 1e-12, "float32": 2e-5}[dtype]
    np.testing.assert_allclose(
        _quietly(generated.layer_norm, x, EPS), out.detach().numpy(), rtol=0, atol=tolerance
    )
    np.testing.assert_allclose(
        _quietly(generated.layer_norm_vjp, x, EPS, g), grad.numpy(), rtol=0, atol=10 * tolerance
    )


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(
    ("dtype", "vector"),
    [
        ("float64", [1.7976931348623157e308, -1.0]),
        ("float64", [5e-324, 0.0]),
        ("float64", [0.0, 0.0]),
        ("float32", [3.4028235e38, 1.0]),
        ("float16", [65504.0, -1.0]),
        ("float16", [0.0, 6e-8]),
        ("float64", [3.0, -0.75, 1e-3]),
    ],
)
def test_vector_scale_is_a_power_of_two_within_a_factor_two(library, dtype, vector):
    """NumPy reads the exponent (frexp), PyTorch takes the array-API route (log₂, kept below
    the largest power of two): both give s = 2^e with max(max|x|, floor, tiny)/s in [1, 2)
    (or (1/2, 2] where log₂ rounds), never ∞ and never 0."""
    from derive._runtime import namespace, vector_scale

    x = np.array(vector, dtype=dtype)
    xa = torch.from_numpy(x.copy()) if library == "torch" else x
    floor = 1e-3
    s = float(_as_numpy(_quietly(vector_scale, namespace(xa), xa, floor)))
    info = np.finfo(dtype)
    least = max(
        float(np.max(np.abs(x.astype(np.float64)))),
        float(np.float16(floor) if dtype == "float16" else floor),
        float(info.smallest_normal),
    )
    assert np.isfinite(s) and s > 0
    assert np.log2(s) == round(np.log2(s)), f"{s} is not a power of two"
    assert 0.5 < least / s < 2, f"max {least} against s = {s}"


# -- a constant vector beside a tiny ε: σ/s rounds to 0 -------------------------------------
# σ/s = √ε/s for a constant vector, s the largest power of two for entries near the largest
# number: below half the smallest subnormal it rounded to 0 and x̂ was 0/0 = nan, where the
# exact x̂ is 0, the Jacobian (I − 1/K)/√ε and the VJP (g − mean g)/√ε.

TINY_EPS = [
    ("float64", 1e-32),  # the smallest power of ten that gave nan
    ("float64", 1e-40),
    ("float64", 5e-324),  # the smallest positive float64
    ("float32", 1e-15),
    ("float32", 1e-40),
    ("float16", 1e-8),  # σ/s rounds to 0 in float16 far sooner
    ("float16", 1e-20),  # √ε itself rounds to 0 in float16
]


def _constant(dtype: str, value: float, size: int = 4) -> np.ndarray:
    return np.full(size, value, dtype=dtype)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "eps"), TINY_EPS)
@pytest.mark.parametrize("scale", ["largest", "half of the largest", "one"])
def test_a_constant_vector_beside_a_tiny_eps_normalises_to_zero(library, dtype, eps, scale):
    big = float(np.finfo(dtype).max)
    value = {"largest": big, "half of the largest": big / 2, "one": 1.0}[scale]
    x = _constant(dtype, value)
    xa = torch.from_numpy(x.copy()) if library == "torch" else x
    got = _quietly(generated.layer_norm, xa, eps)
    assert got.dtype == xa.dtype
    np.testing.assert_array_equal(_as_numpy(got), np.zeros(4))


# where 1/√ε is finite in the dtype (in float16 not for ε = 1e-20: the Jacobian overflows there)
FINITE_JACOBIAN = [(d, e) for d, e in TINY_EPS if 1 / e**0.5 < float(np.finfo(d).max)]


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "eps"), FINITE_JACOBIAN)
def test_the_jacobian_and_vjp_of_a_constant_vector_beside_a_tiny_eps(library, dtype, eps):
    """(I − 1/K)/√ε and (g − mean g)/√ε, computed here from ε alone: the 60-digit reference of
    the tests above with σ = √ε exactly, for a constant vector."""
    x = _constant(dtype, float(np.finfo(dtype).max) / 2)
    g = np.linspace(-1.0, 2.0, 4).astype(dtype)
    xa, ga = (
        (torch.from_numpy(x.copy()), torch.from_numpy(g.copy())) if library == "torch" else (x, g)
    )
    sigma = eps**0.5
    jacobian = (np.eye(4) - 1 / 4) / sigma
    vjp = (g.astype(np.float64) - g.astype(np.float64).mean()) / sigma
    _close(
        "layer_norm_jacobian",
        _quietly(generated.layer_norm_jacobian, xa, eps),
        jacobian,
        1 / sigma,
        dtype,
    )
    _close("layer_norm_vjp", _quietly(generated.layer_norm_vjp, xa, eps, ga), vjp, 2 / sigma, dtype)


def test_the_smallest_eps_the_issue_found_gives_zero():
    # the note on issue 22: "a constant vector ~1e308 with ε < ~1e−30 gives nan (true 0)"
    got = _quietly(generated.layer_norm, np.full(4, 1e308), 1e-40)
    np.testing.assert_array_equal(got, np.zeros(4))


# -- a constant vector whose computed mean is an ulp away ------------------------------------
# Issue 22: for K not a power of two, the mean of K equal numbers can round an ulp away from
# them; every x − μ was then that ulp, and beside a small ε x̂ was far from 0 (below: what the
# code gave before the corrected two-pass mean, and what PyTorch gives). The exact x̂ is 0,
# the Jacobian (I − 1/K)/√ε and the VJP (g − mean g)/√ε, with σ = √ε.

ULP_AWAY = [
    ("float32", 768, 0.1, 1e-12),  # BERT's width and ε: −0.0149 everywhere (PyTorch: 0)
    ("float64", 3, 0.1, 1e-40),  # −0.99999974 (PyTorch: 0)
    ("float16", 9, 65504.0, 1e-5),  # 1.0 (PyTorch: 0.711)
    ("float16", 3, 0.1, 1e-5),  # 0.0193 (PyTorch: 9.5e-07)
    ("float32", 7, 0.3, 1e-30),  # 1.0
    ("float64", 768, 0.1, 1e-40),  # 0.99999974
]


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "size", "value", "eps"), ULP_AWAY)
def test_a_constant_vector_whose_mean_rounds_an_ulp_away_normalises_to_zero(
    library, dtype, size, value, eps
):
    x = np.full((2, size), value, dtype=dtype)
    xa = torch.from_numpy(x.copy()) if library == "torch" else x
    got = _quietly(generated.layer_norm, xa, eps)
    assert got.dtype == xa.dtype
    np.testing.assert_array_equal(_as_numpy(got), np.zeros(x.shape))


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize(("dtype", "size", "value", "eps"), ULP_AWAY)
def test_the_jacobian_and_vjp_of_a_constant_vector_whose_mean_rounds_away(
    library, dtype, size, value, eps
):
    """The Jacobian and the VJP read x̂ (and σ, from the same centred values): they were off
    by x̂_i x̂_j/(Kσ) and x̂·mean(g x̂)/σ where x̂ was off."""
    x = np.full(size, value, dtype=dtype)
    g = np.linspace(-1.0, 2.0, size).astype(dtype)
    xa, ga = (
        (torch.from_numpy(x.copy()), torch.from_numpy(g.copy())) if library == "torch" else (x, g)
    )
    sigma = eps**0.5
    wide = g.astype(np.float64)
    vjp = (wide - wide.mean()) / sigma
    _close("layer_norm_vjp", _quietly(generated.layer_norm_vjp, xa, eps, ga), vjp, 2 / sigma, dtype)
    if size <= 16:  # the Jacobian is K x K
        jacobian = (np.eye(size) - 1 / size) / sigma
        got = _quietly(generated.layer_norm_jacobian, xa, eps)
        _close("layer_norm_jacobian", got, jacobian, 1 / sigma, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_nearly_constant_vector_is_right_beside_a_tiny_eps(dtype):
    """Entries an ulp apart: x − μ is the size of the mean's own rounding error, which the
    second centring removes; compared with the 60-digit reference, entry-wise near 1."""
    base = np.array(0.1, dtype=dtype)
    up = np.nextafter(base, np.array(1, dtype=dtype))
    x = np.array([base, base, up, base, up, base, base], dtype=dtype)
    g = np.linspace(-1.0, 2.0, x.size).astype(dtype)
    xhat, _, _, _ = _reference(x, g, 1e-60)
    _close("layer_norm", _quietly(generated.layer_norm, x, 1e-60), xhat, 1.0, dtype)


@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("size", [16, 17, 32, 1000])
@pytest.mark.parametrize(("base", "eps"), [(1.0, 1e-12), (1000.0, 1e-5), (60000.0, 1e-5)])
def test_one_float16_entry_an_ulp_off_a_constant_vector(library, size, base, eps):
    """float16's square of an ulp of x/s (2⁻²² near 1) is below its smallest normal number:
    computed in float16, the variance underflowed and K = 32 gave 15.5 where 5.57 is right.
    float16 is computed in float32 and rounded once, as PyTorch does; compared norm-wise
    with the 60-digit reference, against the largest |x̂| (√(K − 1))."""
    x = np.full(size, base, dtype=np.float16)
    x[0] = np.nextafter(x[0], np.float16(np.inf))
    g = np.linspace(-1.0, 2.0, size).astype(np.float16)
    xhat, _, vjp, sigma = _reference(x, g, eps)
    xa, ga = (
        (torch.from_numpy(x.copy()), torch.from_numpy(g.copy())) if library == "torch" else (x, g)
    )
    got = _quietly(generated.layer_norm, xa, eps)
    assert got.dtype == xa.dtype
    _close("layer_norm", got, xhat, float(np.max(np.abs(xhat))), "float16")
    got_vjp = _quietly(generated.layer_norm_vjp, xa, eps, ga)
    assert got_vjp.dtype == xa.dtype
    _close("layer_norm_vjp", got_vjp, vjp, 2 * float(np.max(np.abs(xhat))) / sigma, "float16")
    if size <= 32:  # the Jacobian is K x K
        _, jacobian, _, _ = _reference(x, g, eps)
        got_jacobian = _quietly(generated.layer_norm_jacobian, xa, eps)
        assert got_jacobian.dtype == xa.dtype
        _close("layer_norm_jacobian", got_jacobian, jacobian, size / sigma, "float16")
