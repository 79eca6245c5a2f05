"""Layer normalisation over the last axis, without the affine part, from its forward
definition alone (derive.forward), written out in sums: the engine names the mean μ, the
variance σ², the scale σ = √(σ² + ε) and the output x̂ (derive.naming); the Jacobian and
the vector–Jacobian product a backward pass uses follow."""

import sympy as sp

from derive.forward import VectorForward
from derive.model import index, size

K = size("K")
i, j, k, k2 = index("i", K), index("j", K), index("k", K), index("k'", K)
x, g = sp.IndexedBase("x"), sp.IndexedBase("g")
eps = sp.Symbol("eps", real=True)


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
    numerics="Overflows only where $(x_k - \\mu)^2$ does (|x| beyond about $10^{154}$ in float64); "
    "ε > 0 keeps σ away from 0 for a constant vector.",
    conditioning="x_i − μ cancels for an entry near the mean: no entry-wise bound holds "
    "there, a norm-wise one does.",
    notation=(("i", "K"),),
)
