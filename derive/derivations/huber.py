"""The Huber loss: quadratic for residuals within δ, linear beyond, from its forward
definition alone (derive.forward); PyTorch's `huber_loss(reduction="none")`."""

import sympy as sp

from derive.forward import Forward

p, y, delta = sp.symbols("p y delta", real=True)
r = sp.Function("r", real=True)(p)  # the residual

FORWARD = Forward(
    name="huber",
    title="The Huber loss",
    summary="Half the squared residual $r = p - y$ where $|r| \\le \\delta$, and "
    "$\\delta(|r| - \\delta/2)$ beyond: a squared error that grows only linearly for outliers.",
    expression=sp.Piecewise(
        (r**2 / 2, sp.Abs(r) <= delta), (delta * (sp.Abs(r) - delta / 2), True)
    ),
    wrt=p,
    arguments=(p, y),
    parameters=((delta, "positive", (1e-3, 1e3)),),
    names=((r, p - y),),
    numerics="No exponentials: nothing overflows; the two pieces meet where |r| = δ, where the "
    "value and the derivative agree.",
    reference='torch.nn.functional.huber_loss(p, y, reduction="none", delta=delta)',
    group="losses",
)
