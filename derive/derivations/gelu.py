"""GELU, exact: z Φ(z), Φ the standard normal distribution function, from its forward
definition alone (derive.forward); Φ is computed with erfc, which keeps its digits for
very negative z where 1 + erf(z/√2) cancels to 0."""

import sympy as sp

from derive.forward import Forward

z = sp.Symbol("z", real=True)
Phi = sp.Function("Phi")(z)

FORWARD = Forward(
    name="gelu",
    title="GELU, exact",
    summary="The Gaussian error linear unit $z\\,\\Phi(z)$, with $\\Phi$ the standard normal "
    "distribution function written with $\\operatorname{erf}$ (PyTorch's "
    '`gelu(approximate="none")`).',
    expression=z * Phi,
    wrt=z,
    names=((Phi, (1 + sp.erf(z / sp.sqrt(2))) / 2),),
    # kept unevaluated (also through a pickle): SymPy would rewrite erfc(-x) as 2 - erfc(x),
    # the cancellation avoided here
    stable=((Phi, sp.erfc(sp.UnevaluatedExpr(-z / sp.sqrt(2))) / 2),),
    numerics="Φ is computed as erfc(−z/√2)/2, never 1 + erf: for z below about −6, 1 + erf "
    "rounds to 0 in float64 and the definition returns 0 where GELU is a tiny negative number "
    "(PyTorch's own gelu does, too); nothing overflows, $e^{-z^2/2}$ only underflows to 0.",
    conditioning="erfc amplifies the rounding of its argument z/√2 by about z² (its "
    "condition number): a few ulps for |z| of a few, more far out; PyTorch's own gelu is worse.",
    grad_conditioning="Φ + zφ cancels for negative z, and the derivative crosses 0 near "
    "z = -0.75: no entry-wise bound holds there.",
    reference='torch.nn.functional.gelu(z, approximate="none")',
)
