"""GELU, exact: z Φ(z), Φ the standard normal distribution function, from its forward
definition alone (derive.forward); Φ is computed with erfc, which keeps its digits for
very negative z where 1 + erf(z/√2) cancels to 0."""

import math

import numpy as np
import sympy as sp

from derive.floats import latex_scientific
from derive.forward import Forward

_SQUARE_OVERFLOWS = math.sqrt(float(np.finfo(np.float64).max))  # z² is ∞ beyond it

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
    "(PyTorch's own gelu does, too). In the derivative, $z^2$ overflows to $\\infty$ for "
    f"$|z|$ above ${latex_scientific(_SQUARE_OVERFLOWS)}$ in float64, and "
    "$e^{-\\infty} = 0$ is the value of $e^{-z^2/2}$ there: the result is right.",
    conditioning="erfc amplifies the rounding of its argument z/√2 by about z² (its "
    "condition number): a few ulps for |z| of a few, more far out; PyTorch's own gelu is worse.",
    grad_conditioning="Φ + zφ cancels for negative z, and the derivative crosses 0 near "
    "z = -0.75: no entry-wise bound holds there.",
    reference='torch.nn.functional.gelu(z, approximate="none")',
    grad_overflow="z² overflows to ∞ for |z| above the square root of the dtype's largest number, "
    "and e^{−∞} = 0 is the right factor there",
)
