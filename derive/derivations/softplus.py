"""Softplus log(1 + e^z), a smooth ReLU, whose derivative is the sigmoid."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Max, exp, log
from sympy.codegen.cfunctions import log1p

from derive.derivations import result
from derive.figures import curves
from derive.proofs import vanishes
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
from derive.sympy_tools import on_each_side_of_zero

z = sp.Symbol("z", real=True)
small = sp.Symbol("e", positive=True)  # e^{-|z|}, at most 1
sp_f = sp.Function("softplus")
beta = sp.Symbol("beta", positive=True)  # PyTorch's sharpness
sharp = log(1 + exp(beta * z)) / beta


def _odd_part(answer: sp.Eq) -> bool:
    """True if both sides, softplus written out, are the same function of z."""
    if not isinstance(answer, sp.Eq):
        return False
    sides = [side.replace(sp_f, lambda a: log(1 + exp(a))) for side in answer.args]
    return sides[0] != sides[1] and vanishes(sides[0] - sides[1])


def _sharpened(answer: sp.Eq) -> bool:
    """True if the answer is the derivative of the sharp softplus, and that softplus tends to
    max(z, 0) as β → ∞ on each side of zero."""
    if not isinstance(answer, sp.Eq) or not isinstance(answer.lhs, Derivative):
        return False
    a = sp.Symbol("a", positive=True)
    function = answer.lhs.expr
    limits = [sp.limit(function.subs(z, value), beta, sp.oo) for value in (a, -a)]
    return sp.simplify(answer.lhs.doit() - answer.rhs) == 0 and limits == [a, 0]


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
        xlabel="z",
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
            "$\\log(1 + e^{-|z|})$, never overflows (the code uses `log1p`). For $z \\le 0$ it is "
            "the definition itself; for $z > 0$, $\\log(1 + e^z) = z + \\log(e^{-z} + 1)$, proved "
            "exactly below.",
            softplus,
            stable,
            start="the definition of softplus",
            checked="numeric",  # max and |z|: proved exactly for z > 0 below
        ),
    )
    identities = on_each_side_of_zero(
        Identity(
            "softplus_stable",
            "the stable form equals softplus",
            long=stable,
            shortcut=softplus,
            long_title="The stable form,",
            shortcut_title="softplus, $\\log(1 + e^z)$,",
        ),
        z,
    )
    exercises = (
        Exercise(
            "Show that $\\operatorname{softplus}(z) - \\operatorname{softplus}(-z) = z$. What does it "
            "say about the graph, and about the derivatives at $z$ and $-z$?",
            sp.Eq(sp_f(z) - sp_f(-z), z),
            _odd_part,
            answer="$\\log(1 + e^z) - \\log(1 + e^{-z}) = \\log\\big(e^z (e^{-z} + 1)/(1 + e^{-z})\\big) "
            "= z$. Far to the right softplus is $z$ plus what it is far to the left, a tiny "
            "$\\log(1 + e^{-z})$: it hugs $\\max(z, 0)$ on both sides. Differentiating, "
            "$\\sigma(z) + \\sigma(-z) = 1$, the sigmoid's symmetry. SymPy writes softplus out on "
            "the left and finds the difference 0.",
            title="Softplus minus its mirror image",
        ),
        Exercise(
            "PyTorch's softplus takes a sharpness $\\beta > 0$: $\\log(1 + e^{\\beta z})/\\beta$. "
            "Show that its derivative is $\\sigma(\\beta z)$, and that as $\\beta \\to \\infty$ it "
            "tends to $\\max(z, 0)$.",
            sp.Eq(Derivative(sharp, z), sigmoid.subs(z, beta * z)),
            _sharpened,
            answer="The chain rule gives $\\beta e^{\\beta z}/(1 + e^{\\beta z})/\\beta = "
            "1/(1 + e^{-\\beta z}) = \\sigma(\\beta z)$. For $z > 0$, $\\log(1 + e^{\\beta z})/\\beta = "
            "z + \\log(1 + e^{-\\beta z})/\\beta \\to z$; for $z < 0$ it tends to 0. The larger "
            "$\\beta$, the closer to a ReLU, and the steeper its derivative, a sigmoid tending to the "
            "step function. SymPy checks the derivative, and the limit for $z = a$ and $z = -a$ "
            "($a > 0$).",
            title="A sharper softplus",
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
            returns_doc="non-negative numbers (0 in float64 for z below about -745), the shape of z",
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
    # On a batch of pre-activations Z (B × H), entrywise: A = f(Z)
    batch_size, hidden = (
        sp.Symbol("B", integer=True, positive=True),
        sp.Symbol("H", integer=True, positive=True),
    )
    b, k = sp.Idx("b", (1, batch_size)), sp.Idx("k", (1, hidden))
    Z_entries = sp.IndexedBase("Z")
    A = sp.MatrixSymbol("\\sigma(Z)", batch_size, hidden)
    matrix_result = MatrixResult(
        group="activations",
        lhs=sp.MatrixSymbol("\\operatorname{softplus}'(Z)", batch_size, hidden),
        rhs=A,
        index_form=derivative.xreplace({z: Z_entries[b, k]}),
        entry=((b,), (k,)),
        where=((sp.IndexedBase("\\sigma(Z)")[b, k], sigmoid.xreplace({z: Z_entries[b, k]})),),
        text="Entrywise on a batch of pre-activations $Z$: the sigmoid of each entry.",
    )
    return Derivation(
        sections=(
            Section(
                "Why these steps are written by hand",
                "These steps are written by hand, not generated from a forward definition (`derive.differentiate`, which makes the SiLU, GELU, Huber and layer normalisation pages). It would find the sigmoid as the derivative, but not the stable evaluation $\\max(z, 0) + \\log(1 + e^{-|z|})$ with its proof on each side of zero, which is what this page is for.",
                place="after_steps",
            ),
        ),
        matrix_result=matrix_result,
        name="softplus",
        title="Softplus",
        summary="$\\log(1 + e^z)$, a smooth ReLU whose derivative is the sigmoid.",
        definitions=(
            Definition(sp.Function("softplus")(z), softplus, "for any real $z$, elementwise"),
        ),
        steps=steps,
        identities=identities,
        exercises=exercises,
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
