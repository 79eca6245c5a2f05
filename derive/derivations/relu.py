"""The rectified linear unit max(z, 0) and its derivative, with the choice made at z = 0."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Heaviside, Max, Ne, sign

from derive.figures import curves
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Example,
    Exercise,
    Figure,
    Identity,
    Kernel,
    MatrixResult,
    Param,
    Section,
    Step,
)

z = sp.Symbol("z", real=True)
a = sp.Symbol("a", positive=True)  # a positive number: z = a, z = -a are the two sides of zero
by_abs = (z + Abs(z)) / 2  # max(z, 0), written with |z|


def _through_abs(answer: sp.Eq) -> bool:
    """True if the form differentiated is max(z, 0) on each side of zero, and the answer is its
    derivative: 1 for z > 0, 0 for z < 0, and SymPy's 1/2 at z = 0."""
    if not isinstance(answer, sp.Eq) or not isinstance(answer.lhs, Derivative):
        return False
    form, derivative = answer.lhs.expr, answer.rhs
    agrees = all(
        sp.simplify(form.subs(z, value) - Max(value, 0)) == 0 for value in (a, -a, sp.Integer(0))
    )
    computed = sp.simplify(answer.lhs.doit() - derivative) == 0
    values = [derivative.subs(z, value) for value in (a, -a, sp.Integer(0))]
    return agrees and computed and values == [1, 0, sp.Rational(1, 2)]


def _times_the_mask(answer: sp.Eq) -> bool:
    """True if the two sides agree for z > 0, z < 0 and z = 0, whatever value θ(0) is given."""
    if not isinstance(answer, sp.Eq):
        return False
    at_zero = sp.Symbol("theta_0")
    sides = [side.replace(Heaviside, lambda x, *_: Heaviside(x, at_zero)) for side in answer.args]
    return all(
        sp.simplify(sides[0].subs(z, value) - sides[1].subs(z, value)) == 0
        for value in (a, -a, sp.Integer(0))
    )


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-2, 2, 401)
    curves(
        fig,
        t,
        {"relu(z)": generated.relu(t), "relu_grad(z)": generated.relu_grad(t)},
        xlabel="z",
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
            "writes the slope as the step function $\\theta(z)$, and takes $\\theta(0) = 1/2$.",
            Derivative(relu, z),
            derivative,
        ),
        Step(
            "The value at z = 0",
            "At $z = 0$ the graph has a corner: the slope from the left is 0, from "
            "the right 1, so no derivative exists there. Any number in $[0, 1]$ is a subgradient; "
            "SymPy's $\\theta(0) = 1/2$ is one. The code chooses the value 0 at $z = 0$, as PyTorch "
            "and most libraries do, so that a gradient is never half-on: the right side, "
            "$\\theta(z, 0)$, is the step function whose value at 0 is 0. Away from 0 the two are "
            "the same function.",
            derivative,
            chosen,
            relation="convention",
            given=(Ne(z, 0),),
            checked="numeric",  # a relation z ≠ 0: only a numeric check can use it
            key="value-at-zero",
        ),
    )
    # On each side of zero (z = ±a, a > 0) both derivatives are the numbers 1 and 0 as soon as
    # SymPy knows the sign: a proof box would say only 1 = 1. What is proved is the corner.
    step = sp.Symbol("epsilon", real=True)  # a step away from z = 0
    slope = (relu.subs(z, step) - relu.subs(z, 0)) / step
    identities = (
        Identity(
            "relu_slope_from_the_left",
            "at $z = 0$ the slope from the left is 0, the value the code chooses",
            long=sp.Limit(slope, step, 0, "-"),
            shortcut=chosen.subs(z, 0),
            long_title="The difference quotient at $z = 0$, from the left,",
            shortcut_title="the code's value $\\theta(0)$,",
        ),
        Identity(
            "relu_slope_from_the_right",
            "at $z = 0$ the slope from the right is 1",
            long=sp.Limit(slope, step, 0, "+"),
            shortcut=sp.Integer(1),
            long_title="The difference quotient at $z = 0$, from the right,",
            shortcut_title="",
        ),
    )
    exercises = (
        Exercise(
            "Show that $\\max(z, 0) = (z + |z|)/2$, and differentiate that form instead. What "
            "does it give at $z = 0$, and what does that say about the value of the derivative "
            "there?",
            sp.Eq(Derivative(by_abs, z), (1 + sign(z)) / 2),
            _through_abs,
            answer="For $z > 0$, $(z + z)/2 = z$; for $z < 0$, $(z - z)/2 = 0$. SymPy differentiates "
            "$|z|$ to $\\operatorname{sign} z$, so the derivative is $(1 + \\operatorname{sign} z)/2$: "
            "1 for $z > 0$, 0 for $z < 0$, and $1/2$ at $z = 0$, where $\\operatorname{sign} 0 = 0$. "
            "An autograd system differentiating this formula (PyTorch's derivative of $|z|$ is "
            "$\\operatorname{sign} z$) gives $1/2$ at 0, where `torch.relu` gives 0: at a corner the "
            "value comes from how the function is written, not from the function, which is why the "
            "code states its choice. SymPy checks the two forms agree on each side "
            "of zero, the derivative, and its value at 0.",
            title="The same function, another formula",
        ),
        Exercise(
            "Show that $\\max(z, 0) = z\\,\\theta(z)$ for every $z$, with the code's $\\theta(0) = 0$. "
            "Does the value chosen at $z = 0$ matter here? Why is this useful in a backward pass?",
            sp.Eq(relu, z * chosen),
            _times_the_mask,
            answer="For $z > 0$ both sides are $z$, for $z < 0$ both are 0, and at $z = 0$ both are "
            "0 whatever value $\\theta(0)$ is given, since it is multiplied by $z = 0$. So the 0/1 mask "
            "$\\theta(z)$ alone gives both the forward value ($z$ times the mask) and the backward "
            "pass (the incoming gradient times the mask): a layer can keep just the mask. SymPy "
            "checks the two sides for $z > 0$, $z < 0$ and $z = 0$, with $\\theta(0)$ left as a "
            "symbol.",
            title="The mask",
        ),
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
    # On a batch of pre-activations Z (B × H), entrywise: A = f(Z)
    batch_size, hidden = (
        sp.Symbol("B", integer=True, positive=True),
        sp.Symbol("H", integer=True, positive=True),
    )
    b, k = sp.Idx("b", (1, batch_size)), sp.Idx("k", (1, hidden))
    Z_entries = sp.IndexedBase("Z")
    A = sp.MatrixSymbol("\\mathbb{1}[Z > 0]", batch_size, hidden)
    matrix_result = MatrixResult(
        group="activations",
        lhs=sp.MatrixSymbol("\\operatorname{relu}'(Z)", batch_size, hidden),
        rhs=A,
        index_form=chosen.xreplace({z: Z_entries[b, k]}),
        entry=((b,), (k,)),
        where=((sp.IndexedBase("\\mathbb{1}[Z > 0]")[b, k], Heaviside(Z_entries[b, k], 0)),),
        text="Entrywise on a batch of pre-activations $Z$: 1 where an entry is positive, else 0 "
        "(at 0 by the convention above); backpropagation passes the gradient through where "
        "$Z > 0$ and stops it elsewhere.",
    )
    return Derivation(
        sections=(
            Section(
                "Why these steps are written by hand",
                "These steps are written by hand, not generated from a forward definition "
                "(`derive.differentiate`, which makes the SiLU, GELU, Huber and layer "
                "normalisation pages). It differentiates each piece away from 0 (slope 0, slope "
                "1), and says nothing about the corner at 0: which value the code takes there is a "
                "convention (a subgradient), which {step:value-at-zero} explains and a rule cannot "
                "choose.",
                place="after_steps",
            ),
        ),
        matrix_result=matrix_result,
        name="relu",
        title="ReLU",
        summary="The rectified linear unit $\\max(z, 0)$ and the derivative a training loop uses for it.",
        definitions=(Definition(sp.Function("relu")(z), relu, "for any real $z$, elementwise"),),
        steps=steps,
        identities=identities,
        exercises=exercises,
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
