"""SiLU (swish): z/(1 + exp(-z)), from its forward definition alone (derive.forward).

Made with
    python -m derive new silu --forward "z/(1 + exp(-z))" --wrt z --title "SiLU (swish)" --reference "torch.nn.functional.silu(z)"
The steps, the page and the functions silu, silu_grad follow from the definition.
"""

import sympy as sp

from derive.forward import Forward

z = sp.Symbol("z", real=True)

FORWARD = Forward(
    name="silu",
    title="SiLU (swish)",
    summary="$\\frac{z}{1 + e^{- z}}$, differentiated step by step by the engine.",
    expression=sp.parse_expr("z/(1 + exp(-z))", {"z": z}),
    wrt=z,
    arguments=(z,),
    parameters=(),
    numerics="σ is computed by the generated `sigmoid`, written with $e^{-|z|}$: no overflow for "
    "any z. The derivative's $1 - \\sigma$ rounds to 0 for z above about 37 (float64), where "
    "$z(1 - \\sigma)$ is below $10^{-14}$ next to 1: relative accuracy is kept.",
    grad_conditioning="The derivative crosses 0 near z = -1.28, where 1 + z(1 - σ) cancels: "
    "no entry-wise bound holds there.",
    reference="torch.nn.functional.silu(z)",
)
