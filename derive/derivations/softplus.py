"""Softplus log(1 + e^z), a smooth ReLU, whose derivative is the sigmoid."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Max, exp, log
from sympy.codegen.cfunctions import log1p

from derive.derivations import result
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
small = sp.Symbol("e", positive=True)  # e^{-|z|}, at most 1


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-5, 5, 201)
    curves(
        fig,
        t,
        {
            "softplus(z)": generated.softplus(t),
            "softplus_grad(z)": generated.softplus_grad(t),
            "relu(z)": generated.relu(t),
        },
        xlabel="$z$",
        title="Softplus, a smooth ReLU",
    )


def derive() -> Derivation:
    softplus = log(1 + exp(z))
    derivative = sp.diff(softplus, z)
    sigmoid = result("sigmoid", "sigmoid")  # 1/(1 + e^{-z}), proved on the sigmoid's page
    stable = Max(z, 0) + log(1 + exp(-Abs(z)))  # e^{z} overflows for z > 709; e^{-|z|} never does
    steps = (
        Step(
            "Differentiate",
            "The chain rule on $\\log(1 + e^z)$.",
            Derivative(softplus, z),
            derivative,
        ),
        Step(
            "It is the sigmoid", "Divide numerator and denominator by $e^z$.", derivative, sigmoid
        ),
        Step(
            "Stable evaluation",
            "Take $\\max(z, 0)$ out of the logarithm: what is left, "
            "$\\log(1 + e^{-|z|})$, never overflows (the code uses `log1p`).",
            softplus,
            stable,
        ),
    )
    identities = (
        Identity(
            "softplus_derivative",
            "the derivative of softplus is the sigmoid",
            long=derivative,
            shortcut=sigmoid,
        ),
        *on_each_side_of_zero(
            Identity(
                "softplus_stable", "the stable form equals softplus", long=stable, shortcut=softplus
            ),
            z,
        ),
    )
    argument = (Param("z", z, doc="any real numbers"),)
    kernels = (
        Kernel(
            name="softplus",
            summary="log(1 + e^z), elementwise, without overflow for any z.",
            params=argument,
            body=(Assign(small, (), exp(-Abs(z))),),
            returns=Assign(
                sp.Symbol("softplus_z"), (), stable.subs(log(1 + exp(-Abs(z))), log1p(small))
            ),
            math=softplus,
            returns_doc="positive numbers, the shape of z",
            reference="torch.nn.functional.softplus(z)",
        ),
        Kernel(
            name="softplus_grad",
            summary="d softplus/dz = σ(z), elementwise.",
            params=argument,
            body=(),
            returns=Assign(Derivative(softplus, z), (), sp.Function("sigmoid")(z)),
            math=sigmoid,
            returns_doc="numbers in [0, 1], the shape of z",
            derivative=DerivativeOf("softplus(z)", wrt="z", kind="elementwise"),
        ),
    )
    return Derivation(
        name="softplus",
        title="Softplus",
        summary="$\\log(1 + e^z)$, a smooth ReLU whose derivative is the sigmoid.",
        definitions=(
            Definition(sp.Function("softplus")(z), softplus, "for any real $z$, elementwise"),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "A few values",
                "softplus(np.array([-2.0, 0.0, 2.0]))",
                reference="np.log1p(np.exp(np.array([-2.0, 0.0, 2.0])))",
            ),
        ),
        figures=(Figure("softplus.svg", "Softplus, its derivative and ReLU.", _draw),),
        results={"softplus": softplus},
    )
