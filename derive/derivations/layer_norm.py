"""Layer normalisation over the last axis, without the affine part, from its forward
definition alone (derive.forward), written out in sums: the engine names the mean μ, the
variance σ², the scale σ = √(σ² + ε) and the output x̂ (derive.naming); the Jacobian and
the vector–Jacobian product a backward pass uses follow."""

import numpy as np
import sympy as sp

from derive.floats import latex_scientific
from derive.forward import VectorForward
from derive.model import index, size
from derive.naming import SCALED_BY as s

K = size("K")
i, j, k, k2 = index("i", K), index("j", K), index("k", K), index("k'", K)
x, g = sp.IndexedBase("x"), sp.IndexedBase("g")
eps = sp.Symbol("eps", real=True)


def _scale_rounds_to_zero_below(dtype: str) -> float:
    """The ε below which σ/s = √ε/s of a constant vector of entries near the largest number
    rounds to 0 in ``dtype``: s is the largest power of two, and √ε/s is at most half the
    smallest subnormal number (which rounds to 0, to even)."""
    info = np.finfo(dtype)
    largest_power_of_two = float(info.max) / (2 - float(info.eps))
    return (largest_power_of_two * float(info.smallest_subnormal) / 2) ** 2


_ROUNDS_TO_ZERO = ", ".join(
    f"${latex_scientific(_scale_rounds_to_zero_below(d), 2)}$ in {d}"
    for d in ("float64", "float32", "float16")
)


VECTOR_FORWARD = VectorForward(
    name="layer_norm",
    title="Layer normalisation",
    summary="Each vector along the last axis shifted to mean 0 and scaled to variance 1 "
    "(with $\\varepsilon$ added to the variance), PyTorch's `layer_norm` without its affine "
    "part; its Jacobian, and the vector–Jacobian product of a backward pass.",
    expression=(x[i] - sp.Sum(x[k], (k, 1, K)) / K)
    / sp.sqrt(sp.Sum((x[k] - sp.Sum(x[k2], (k2, 1, K)) / K) ** 2, (k, 1, K)) / K + eps),
    wrt=x[j],
    cotangent=g,
    parameters=((eps, "positive", (1e-8, 1.0)),),
    reference="torch.nn.functional.layer_norm(x, x.shape[-1:], eps=float(eps))",
    scaled=((eps, eps / s**2),),  # x̂ is the same for x/s with ε/s²: the code scales each vector
    numerics="Each vector is divided by $s$, a power of two near $\\max(\\max_k |x_k|, "
    "\\sqrt{\\varepsilon})$, before anything is summed or squared ({steps:divide-by-scale to rounds-to-zero}): every "
    "$|x_k/s| < 2$, so no sum or square overflows, and the function, its Jacobian and its VJP "
    "are finite and right for every finite input, up to the largest number "
    f"(${latex_scientific(float(np.finfo(np.float64).max))}$ in float64, "
    f"${latex_scientific(float(np.finfo(np.float32).max))}$ in float32, "
    f"${float(np.finfo(np.float16).max):.0f}$ in float16). Written as defined, $(x_k - \\mu)^2$ "
    "would overflow for $|x|$ beyond about "
    f"${latex_scientific(np.sqrt(float(np.finfo(np.float64).max)))}$ in float64 and give "
    "$\\hat x = 0$ (the mean itself, for entries near the largest number). Dividing by a power "
    "of two is exact. σ is computed as $\\operatorname{hypot}(s\\sqrt{\\sigma^2/s^2}, "
    "\\sqrt{\\varepsilon})$, where $\\varepsilon/s^2$ beside $\\sigma^2/s^2$ would underflow to 0 "
    "for a constant vector far larger than $\\sqrt{\\varepsilon}$ and leave $0/0$: "
    "$\\sigma = \\sqrt{\\varepsilon}$ there, as defined. σ/s itself, which $\\hat x$ divides by, "
    "rounds to 0 for such a vector of entries near the largest number where ε is below "
    f"about {_ROUNDS_TO_ZERO}; every x/s − μ/s is 0 there too, and the code divides by σ/s "
    "kept at least the smallest normal number ({step:rounds-to-zero}), so $\\hat x = 0$ as defined, "
    "not $0/0$. "
    "A constant vector's $x/s - \\mu/s$ is computed as exactly 0 ({step:centre-twice}), "
    "where the computed mean alone can be an ulp away from the entries: $\\hat x = 0$ for "
    "any ε, as defined. "
    "ε > 0 keeps σ away from 0 for a "
    "constant vector, and the floor $\\sqrt{\\varepsilon}$ keeps $s$ above 0 for a vector of "
    "zeros. The Jacobian and the VJP multiply by $1/\\sigma$, computed once per vector "
    "($\\sigma \\ge \\sqrt{\\varepsilon}$ keeps it finite for any $\\varepsilon$ above the "
    "reciprocal of the largest number squared: "
    f"${latex_scientific(float(np.finfo(np.float16).max) ** -2)}$ in float16), rather than "
    "divide each entry; "
    "$\\hat x$ divides by $\\sigma/s$, whose reciprocal would overflow for a constant vector "
    "of huge entries and turn $\\hat x = 0$ into $0 \\cdot \\infty$. "
    "float16 is computed in float32 and the result rounded once, as PyTorch does on the CPU: "
    "float16's squares of an ulp of $x/s$ ($2^{-22}$ for entries near 1) fall below its "
    "smallest normal number ($2^{-14}$), so the variance of a vector with one entry an ulp off "
    "the others would underflow.",
    conditioning="x_i − μ cancels for an entry near the mean: no entry-wise bound holds "
    "there, a norm-wise one does.",
    float16_in_float32="float16 has too few exponents for its digits; the square of an "
    "ulp of x/s (2⁻²² for entries near 1) is below its smallest normal number (2⁻¹⁴), so the "
    "variance of a nearly constant vector underflows",
    notation=(("i", "K"),),
)
