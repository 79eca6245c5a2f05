"""The hyperbolic tangent and its derivative 1 − tanh², computed without cancellation."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, exp

from derive.figures import curves
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Example,
    Figure,
    Identity,
    Kernel,
    Param,
    Step,
)
from derive.sympy_tools import on_each_side_of_zero

z = sp.Symbol("z", real=True)
small = sp.Symbol("e", positive=True)  # e^{-2|z|}, at most 1


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-4, 4, 161)
    curves(
        fig,
        t,
        {r"$\tanh z$": generated.tanh(t), r"$1 - \tanh^2 z$": generated.tanh_grad(t)},
        xlabel="$z$",
        title="tanh and its derivative (1 at z = 0)",
    )


def derive() -> Derivation:
    definition = (exp(z) - exp(-z)) / (exp(z) + exp(-z))
    derivative = sp.diff(sp.tanh(z), z)  # SymPy's own rule for tanh
    from_definition = sp.diff(definition, z)
    # 1 - tanh² = 4e^{-2|z|}/(1 + e^{-2|z|})²: no subtraction of nearly equal numbers.
    stable_derivative = 4 * exp(-2 * Abs(z)) / (1 + exp(-2 * Abs(z))) ** 2
    steps = (
        Step(
            "Differentiate",
            "SymPy's rule for $\\tanh$: its derivative is $1 - \\tanh^2$.",
            Derivative(sp.tanh(z), z),
            derivative,
        ),
        Step(
            "From the exponentials",
            "The quotient rule on $(e^z - e^{-z})/(e^z + e^{-z})$ gives the same "
            "function (proved below).",
            Derivative(definition, z),
            sp.simplify(from_definition),
        ),
        Step(
            "Stable derivative",
            "$1 - \\tanh^2 z$ is 0 once $\\tanh z$ rounds to $\\pm 1$ ($|z| > 19$ in "
            "float64), although the true value is about $4e^{-2|z|}$. Multiplying out "
            "$1 - \\tanh^2 = 4/(e^{z} + e^{-z})^2$ and dividing by $e^{2|z|}$ leaves only $e^{-2|z|} \\le 1$.",
            derivative,
            stable_derivative,
        ),
    )
    identities = (
        Identity(
            "tanh_derivative",
            "the derivative of the definition in exponentials is $1 - \\tanh^2 z$",
            long=from_definition,
            shortcut=derivative.rewrite(exp),
            long_title="The quotient rule on the exponentials,",
            shortcut_title="$1 - \\tanh^2 z$,",
        ),
        *on_each_side_of_zero(
            Identity(
                "tanh_derivative_stable",
                "the stable derivative equals $1 - \\tanh^2 z$",
                long=stable_derivative,
                shortcut=derivative.rewrite(exp),
                long_title="The stable form,",
                shortcut_title="$1 - \\tanh^2 z$,",
            ),
            z,
        ),
    )
    argument = (Param("z", z, doc="any real numbers"),)
    kernels = (
        Kernel(
            name="tanh",
            summary="The hyperbolic tangent, elementwise.",
            params=argument,
            body=(),
            returns=Assign(sp.Symbol("tanh_z"), (), sp.tanh(z)),
            returns_doc="numbers in [-1, 1], the shape of z",
            reference="torch.tanh(z)",
        ),
        Kernel(
            name="tanh_grad",
            summary="d tanh/dz = 1 − tanh²(z), elementwise, accurate where tanh rounds to ±1.",
            params=argument,
            body=(Assign(small, (), exp(-2 * Abs(z))),),
            returns=Assign(
                Derivative(sp.tanh(z), z), (), stable_derivative.subs(exp(-2 * Abs(z)), small)
            ),
            math=derivative,
            returns_doc="the derivative at each z, the shape of z",
            derivative=DerivativeOf("tanh(z)", wrt="z", kind="elementwise"),
        ),
    )
    return Derivation(
        name="tanh",
        title="The hyperbolic tangent",
        summary="$\\tanh z$, the activation of many hidden layers, and its derivative $1 - \\tanh^2 z$.",
        definitions=(Definition(sp.tanh(z), definition, "for any real $z$, elementwise"),),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "The derivative at a few points",
                "tanh_grad(np.array([-2.0, 0.0, 0.5, 2.0]))",
                reference="1 - np.tanh(np.array([-2.0, 0.0, 0.5, 2.0])) ** 2",
                text="Against $1 - \\tanh^2$ computed directly with NumPy, where that is accurate.",
            ),
            Example(
                "Where 1 − tanh² cancels",
                "tanh_grad(np.array([20.0, 300.0]))",
                text="$1 - \\tanh^2 z$ computed as written gives 0 for both; the true values are about "
                "$4e^{-40} \\approx 1.7 \\cdot 10^{-17}$ and $4e^{-600}$ (below the smallest float64).",
            ),
        ),
        figures=(
            Figure("tanh.svg", "tanh and its derivative, from the generated functions.", _draw),
        ),
        results={"tanh": sp.tanh(z), "derivative": derivative},
    )
