"""The logistic sigmoid σ(z) = 1/(1 + e^{−z}) and its derivative σ(1 − σ), computed stably."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Piecewise, exp

from derive.figures import curves
from derive.floats import overflow_exponent
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
sigma = sp.Symbol("sigma", positive=True)  # σ(z), a number in (0, 1)
small = sp.Symbol("e", positive=True)  # e^{-|z|}, at most 1: never overflows
sig = sp.Function("sigma")(z)  # σ(z), as the definition names it


def _sigmoid() -> sp.Expr:
    return 1 / (1 + exp(-z))


def _at_most_a_quarter(answer: sp.Eq) -> bool:
    """True if the answer writes 1/4 − σ(1 − σ) as a square that vanishes only at z = 0."""
    if not isinstance(answer, sp.Eq) or not (answer.rhs.is_Pow and answer.rhs.exp == 2):
        return False
    gap = sp.Rational(1, 4) - sp.diff(_sigmoid(), z)  # 1/4 − σ'(z), from the definition
    written_out = {sigma: _sigmoid()}
    return (
        vanishes(answer.lhs.xreplace(written_out) - gap)
        and sp.expand(answer.lhs - answer.rhs) == 0
        and sp.solve(answer.rhs.base.xreplace(written_out), z) == [0]
    )


def _symmetric(answer: sp.Eq) -> bool:
    """True if both sides of the answer, σ written out, are the same function of z."""
    if not isinstance(answer, sp.Eq):
        return False
    sides = [
        side.replace(sp.Function("sigma"), lambda a: 1 / (1 + exp(-a))) for side in answer.args
    ]
    return sides[0] != sides[1] and vanishes(sides[0] - sides[1])


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-8, 8, 321)
    curves(
        fig,
        t,
        {
            "σ(z)": generated.sigmoid(t),
            "σ′(z) = σ(1 − σ)": generated.sigmoid_grad(t),
        },
        xlabel="z",
        title="The sigmoid and its derivative (at most 1/4, at z = 0)",
    )


def derive() -> Derivation:
    sigmoid = 1 / (1 + exp(-z))
    derivative = sp.diff(sigmoid, z)
    in_sigma = sp.factor(sp.simplify(derivative.subs(exp(-z), (1 - sigma) / sigma)))  # -σ(σ - 1)
    in_sigma = sp.Mul(
        *[sp.expand(-f) if f.has(sigma) and f != sigma else f for f in sp.Mul.make_args(-in_sigma)],
        evaluate=False,
    )  # σ(1 - σ), same product
    # Both branches use e^{-|z|} <= 1, so neither overflows for any z.
    stable = Piecewise((1 / (1 + exp(-Abs(z))), z >= 0), (exp(-Abs(z)) / (1 + exp(-Abs(z))), True))
    stable_derivative = exp(-Abs(z)) / (1 + exp(-Abs(z))) ** 2
    steps = (
        Step(
            "Differentiate",
            "Chain rule on $(1 + e^{-z})^{-1}$: the outer power gives "
            "$-(1 + e^{-z})^{-2}$, the inner $e^{-z}$ gives $-e^{-z}$.",
            Derivative(sigmoid, z),
            derivative,
        ),
        Step(
            "In terms of σ",
            "From $\\sigma = 1/(1 + e^{-z})$: $e^{-z} = (1 - \\sigma)/\\sigma$; substitute and "
            "simplify.",
            derivative,
            in_sigma,
            where=((sigma, sigmoid),),
        ),
        Step(
            "Stable evaluation",
            f"For $z < 0$, $e^{{-z}}$ overflows once $-z > {overflow_exponent()}$ (float64); multiplying "
            "numerator and denominator by $e^{z}$ gives $e^{z}/(1 + e^{z})$. Both branches are written "
            "with $e^{-|z|} \\le 1$, so nothing overflows. For $z \\ge 0$ the first branch is the "
            "definition itself; for $z < 0$ SymPy proves the second exactly below.",
            sigmoid,
            stable,
            start="the definition of $\\sigma$",
            checked="numeric",  # proved on each side of zero below
            key="stable-evaluation",
        ),
        Step(
            "Stable derivative",
            "$1 - \\sigma$ computed as a subtraction loses everything once $\\sigma$ "
            "rounds to 1 (from $z \\approx 37$ in float64); written with $e^{-|z|}$ it keeps every digit. "
            "SymPy proves it exactly on each side of zero below.",
            in_sigma,
            stable_derivative,
            where=((sigma, sigmoid),),
            start=2,
            checked="numeric",  # proved on each side of zero below
            key="stable-derivative",
        ),
    )
    identities = (
        *on_each_side_of_zero(
            Identity(
                "sigmoid_stable",
                "the stable form equals the sigmoid",
                long=stable,
                shortcut=sigmoid,
                long_title="The stable form,",
                shortcut_title="the sigmoid,",
            ),
            z,
        ),
        *on_each_side_of_zero(
            Identity(
                "sigmoid_derivative_stable",
                "the stable derivative equals $\\sigma(1 - \\sigma)$",
                long=stable_derivative,
                shortcut=in_sigma.subs(sigma, sigmoid),
                long_title="The stable derivative,",
                shortcut_title="$\\sigma(1 - \\sigma)$,",
            ),
            z,
        ),
    )
    exercises = (
        Exercise(
            "Show that $\\sigma'(z) \\le 1/4$ for every $z$, with equality only at $z = 0$. "
            "(Hint: write $1/4 - \\sigma(1 - \\sigma)$ as a square.)",
            sp.Eq(sp.Rational(1, 4) - in_sigma, (sigma - sp.Rational(1, 2)) ** 2),
            _at_most_a_quarter,
            answer="Expanding, $(\\sigma - 1/2)^2 = \\sigma^2 - \\sigma + 1/4 = 1/4 - \\sigma(1 - "
            "\\sigma)$, a square, so never negative: $\\sigma' \\le 1/4$, with equality exactly "
            "where $\\sigma = 1/2$, that is at $z = 0$. A gradient through a sigmoid is at least four "
            "times smaller than the one arriving at it, which is why deep stacks of sigmoids learn "
            "slowly. SymPy checks that the left side is $1/4 - \\sigma'(z)$ with $\\sigma'$ "
            "differentiated from the definition, that the two sides expand to the same polynomial in "
            "$\\sigma$, and that the square vanishes only at $z = 0$.",
            title="The slope is at most 1/4",
        ),
        Exercise(
            "Differentiate once more: show that $\\sigma''(z) = \\sigma(1 - \\sigma)(1 - 2\\sigma)$. "
            "Where is the sigmoid steepest?",
            sp.Eq(Derivative(sig, (z, 2)), sig * (1 - sig) * (1 - 2 * sig)),
            Identity(
                "sigmoid_second_derivative",
                "$\\sigma''(z) = \\sigma(1 - \\sigma)(1 - 2\\sigma)$",
                long=Derivative(sigmoid, (z, 2)),
                shortcut=sigmoid * (1 - sigmoid) * (1 - 2 * sigmoid),
                long_title="The second derivative of the definition,",
                shortcut_title="$\\sigma(1 - \\sigma)(1 - 2\\sigma)$,",
            ),
            answer="By the product rule on $\\sigma' = \\sigma - \\sigma^2$: $\\sigma'' = \\sigma' - "
            "2\\sigma\\sigma' = \\sigma'(1 - 2\\sigma)$. It vanishes only where $\\sigma = 1/2$, "
            "at $z = 0$, where the slope is largest ($1/4$): positive before, negative after. SymPy "
            "differentiates the definition twice and finds the difference 0.",
            title="The second derivative",
        ),
        Exercise(
            "Show that $\\sigma(-z) = 1 - \\sigma(z)$. What does it say about the derivative, and "
            "about the stable form's branch for $z < 0$?",
            sp.Eq(sp.Function("sigma")(-z), 1 - sig),
            _symmetric,
            answer="$\\sigma(-z) = 1/(1 + e^{z}) = e^{-z}/(e^{-z} + 1) = 1 - \\sigma(z)$. "
            "Differentiating, $-\\sigma'(-z) = -\\sigma'(z)$: the derivative is even, the same at "
            "$\\pm z$. The stable branch for $z < 0$ is this identity: $\\sigma(z) = 1 - "
            "\\sigma(|z|) = e^{-|z|}/(1 + e^{-|z|})$, written without subtracting. SymPy writes "
            "$\\sigma$ out on both sides and finds them equal.",
            title="Symmetry",
        ),
    )
    argument = (Param("z", z, doc="any real numbers", batched=True),)
    kernels = (
        Kernel(
            name="sigmoid",
            summary="The logistic sigmoid 1/(1 + e^(−z)), elementwise, without overflow for any z.",
            params=argument,
            body=(Assign(small, (), exp(-Abs(z))),),
            returns=Assign(sp.Symbol("sigma"), (), stable.subs(exp(-Abs(z)), small)),
            math=sigmoid,
            returns_doc="numbers in [0, 1], the shape of z",
            reference="torch.sigmoid(z)",
        ),
        Kernel(
            name="sigmoid_grad",
            summary="dσ/dz = σ(z)(1 − σ(z)), elementwise, accurate where σ rounds to 0 or 1.",
            params=argument,
            body=(Assign(small, (), exp(-Abs(z))),),
            returns=Assign(
                Derivative(sp.Function("sigma")(z), z),
                (),
                stable_derivative.subs(exp(-Abs(z)), small),
            ),
            math=in_sigma.subs(sigma, sp.Function("sigma")(z)),
            returns_doc="the derivative at each z, the shape of z",
            derivative=DerivativeOf("sigmoid(z)", wrt="z", kind="elementwise"),
        ),
    )
    # On a batch of pre-activations Z (B × H), entrywise: A = f(Z)
    batch_size, hidden = (
        sp.Symbol("B", integer=True, positive=True),
        sp.Symbol("H", integer=True, positive=True),
    )
    b, k = sp.Idx("b", (1, batch_size)), sp.Idx("k", (1, hidden))
    Z_entries, A_entries = sp.IndexedBase("Z"), sp.IndexedBase("A")
    A = sp.MatrixSymbol("A", batch_size, hidden)
    ones = sp.OneMatrix(batch_size, hidden)
    matrix_result = MatrixResult(
        group="activations",
        lhs=sp.MatrixSymbol("\\sigma'(Z)", batch_size, hidden),
        rhs=sp.HadamardProduct(A, ones - A),
        index_form=derivative.xreplace({z: Z_entries[b, k]}),
        entry=((b,), (k,)),
        where=((A_entries[b, k], sigmoid.xreplace({z: Z_entries[b, k]})),),
        text="Entrywise on a batch of pre-activations $Z$, from the outputs $A = \\sigma(Z)$ "
        "alone ($\\circ$: the entrywise product); backpropagation multiplies it into the "
        "gradient arriving at $A$, entry by entry.",
    )
    return Derivation(
        sections=(
            Section(
                "Why these steps are written by hand",
                "These steps are written by hand, not generated from a forward definition "
                "(`derive.differentiate`, which makes the SiLU, GELU, Huber and layer "
                "normalisation pages). The differentiator reaches $\\sigma(1 - \\sigma)$ too (the "
                "SiLU page shows it doing so), but not what "
                "{steps:stable-evaluation and stable-derivative} teach: which equal form keeps the "
                "digits where $1 - \\sigma$ rounds to 0, proved on each side of zero. It writes a "
                "stable form only where a module gives one, and only for a named value, not for "
                "the derivative.",
                place="after_steps",
            ),
        ),
        matrix_result=matrix_result,
        name="sigmoid",
        title="The sigmoid",
        summary="The logistic function $\\sigma(z) = 1/(1 + e^{-z})$ of binary classifiers and gates, "
        "and its derivative $\\sigma(1 - \\sigma)$.",
        definitions=(Definition(sig, sigmoid, "for any real $z$, elementwise"),),
        steps=steps,
        identities=identities,
        exercises=exercises,
        kernels=kernels,
        examples=(
            Example(
                "A few values",
                "sigmoid(np.array([-3.0, -0.5, 0.0, 0.5, 3.0]))",
                reference="1 / (1 + np.exp(-np.array([-3.0, -0.5, 0.0, 0.5, 3.0])))",
                text="Against the definition computed directly with NumPy, where it does not overflow.",
            ),
            Example(
                "Far out, quietly",
                "sigmoid(np.array([-1000.0, 1000.0])), sigmoid_grad(np.array([-40.0, 40.0]))",
                text="No overflow warning at ±1000; the derivative at ±40 keeps its tiny value "
                "($e^{-40} \\approx 4.2 \\cdot 10^{-18}$). Computed as written, $\\sigma(1 - \\sigma)$ "
                "gives 0 at $+40$, where $\\sigma$ rounds to 1 and $1 - \\sigma$ to 0; at $-40$ it is "
                "still right, $\\sigma \\approx 4.2 \\cdot 10^{-18}$ times $1 - \\sigma = 1$.",
            ),
        ),
        figures=(
            Figure(
                "sigmoid.svg",
                "The sigmoid and its derivative, from the generated functions.",
                _draw,
            ),
        ),
        results={"sigmoid": sigmoid, "derivative": in_sigma.subs(sigma, sigmoid)},
    )
