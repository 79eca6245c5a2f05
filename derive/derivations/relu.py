"""The rectified linear unit max(z, 0) and its derivative, with the choice made at z = 0."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, Heaviside, Max

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


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-2, 2, 401)
    curves(
        fig,
        t,
        {"relu(z)": generated.relu(t), "relu_grad(z)": generated.relu_grad(t)},
        xlabel="$z$",
        title="ReLU and the derivative used for it (0 at z = 0)",
    )


def derive() -> Derivation:
    relu = Max(z, 0)
    derivative = sp.diff(relu, z)  # SymPy: Heaviside(z), with Heaviside(0) = 1/2
    chosen = Heaviside(z, 0)  # the value at 0 is a choice; PyTorch takes 0
    steps = (
        Step(
            "Differentiate",
            "Away from 0, $\\max(z, 0)$ is $z$ (slope 1) or $0$ (slope 0): SymPy "
            "writes the slope as the step function $\\theta(z)$.",
            Derivative(relu, z),
            derivative,
        ),
        Step(
            "The value at z = 0",
            "At $z = 0$ the graph has a corner: the slope from the left is 0, from "
            "the right 1, so no derivative exists there. Any number in $[0, 1]$ is a subgradient; SymPy's "
            "$\\theta(0) = 1/2$ is one, PyTorch and most libraries take 0, and so does the code, so that a "
            "gradient is never half-on.",
            derivative,
            chosen,
        ),
    )
    identities = on_each_side_of_zero(
        Identity(
            "relu_derivative",
            "away from 0, the derivative the code uses is the one SymPy computes",
            long=derivative,
            shortcut=chosen,
            long_title="SymPy's derivative,",
            shortcut_title="the one the code uses,",
        ),
        z,
    )
    argument = (Param("z", z, doc="any real numbers"),)
    kernels = (
        Kernel(
            name="relu",
            summary="max(z, 0), elementwise.",
            params=argument,
            body=(),
            returns=Assign(sp.Symbol("relu_z"), (), relu),
            returns_doc="the shape of z",
            reference="torch.relu(z)",
        ),
        Kernel(
            name="relu_grad",
            summary="The derivative of max(z, 0): 1 where z > 0, else 0 (also at z = 0, as PyTorch).",
            params=argument,
            body=(),
            returns=Assign(Derivative(relu, z), (), chosen),
            returns_doc="0.0 or 1.0 at each z, the shape and dtype of z",
            derivative=DerivativeOf("relu(z)", wrt="z", kind="elementwise"),
        ),
    )
    return Derivation(
        name="relu",
        title="ReLU",
        summary="The rectified linear unit $\\max(z, 0)$ and the derivative a training loop uses for it.",
        definitions=(Definition(sp.Function("relu")(z), relu, "for any real $z$, elementwise"),),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "At and around the corner",
                "relu_grad(np.array([-1.0, 0.0, 1e-300, 2.0]))",
                reference="(np.array([-1.0, 0.0, 1e-300, 2.0]) > 0).astype(float)",
                text="0 at $z = 0$, as PyTorch's autograd gives for `torch.relu`.",
            ),
        ),
        figures=(
            Figure("relu.svg", "ReLU and its derivative, from the generated functions.", _draw),
        ),
        results={"relu": relu, "derivative": chosen},
    )
