"""The hyperbolic tangent and its derivative 1 − tanh², computed without cancellation."""

from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp
from sympy import Abs, Derivative, exp

from derive.figures import curves
from derive.floats import latex_scientific, smallest_normal
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
small = sp.Symbol("e", positive=True)  # e^{-2|z|}, at most 1
th = sp.Function("tanh")(z)  # tanh z as the page's steps name it, defined by its exponentials
sig = sp.Function("sigma")(z)  # the sigmoid, for an exercise


# The same as the sigmoid page's; a copy, so that this page depends on no other module
# (the build caches a page by its module and the derivations whose results it uses).
def _through_the_sigmoid(answer: sp.Eq) -> bool:
    """True if both sides of the answer, tanh and σ written out, are the same function of z."""
    if not isinstance(answer, sp.Eq):
        return False
    meanings = {
        sp.Function("tanh"): lambda a: (exp(a) - exp(-a)) / (exp(a) + exp(-a)),
        sp.Function("sigma"): lambda a: 1 / (1 + exp(-a)),
    }
    sides = list(answer.args)
    for function, meaning in meanings.items():
        sides = [side.replace(function, meaning) for side in sides]
    return sides[0] != sides[1] and vanishes(sides[0] - sides[1])


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-4, 4, 161)
    curves(
        fig,
        t,
        {"tanh z": generated.tanh(t), "1 − tanh² z": generated.tanh_grad(t)},
        xlabel="z",
        title="tanh and its derivative (1 at z = 0)",
    )


def derive() -> Derivation:
    definition = (exp(z) - exp(-z)) / (exp(z) + exp(-z))
    derivative = sp.diff(sp.tanh(z), z)  # SymPy's own rule for tanh: 1 - tanh(z)**2
    from_definition = sp.diff(definition, z)  # the quotient rule, as SymPy writes it
    in_tanh = 1 - th**2
    multiplied_out = 4 / (exp(z) + exp(-z)) ** 2
    # 1 - tanh² = 4e^{-2|z|}/(1 + e^{-2|z|})²: no subtraction of nearly equal numbers.
    stable_derivative = 4 * exp(-2 * Abs(z)) / (1 + exp(-2 * Abs(z))) ** 2
    steps = (
        Step(
            "Differentiate",
            "The quotient rule on $(e^z - e^{-z})/(e^z + e^{-z})$: the numerator's derivative is "
            "the denominator and the denominator's is the numerator, so the derivative is "
            "$1$ minus the numerator times itself over the denominator squared.",
            Derivative(definition, z),
            from_definition,
        ),
        Step(
            "In terms of tanh",
            "The fraction left is $\\tanh z$ itself, squared.",
            from_definition,
            in_tanh,
        ),
        Step(
            "Multiply out",
            "Over the common denominator, $(e^z + e^{-z})^2 - (e^z - e^{-z})^2 = 4$: the squares "
            "of $e^{\\pm z}$ cancel and the cross terms add up.",
            in_tanh,
            multiplied_out,
            key="multiply-out",
        ),
        Step(
            "Stable derivative",
            "$1 - \\tanh^2 z$ is 0 once $\\tanh z$ rounds to $\\pm 1$ ($|z| > 19$ in "
            "float64), although the true value is about $4e^{-2|z|}$. Dividing numerator and "
            "denominator by $e^{2|z|}$ leaves only $e^{-2|z|} \\le 1$, for either sign of $z$. SymPy "
            "proves it exactly on each side of zero below.",
            multiplied_out,
            stable_derivative,
            checked="numeric",  # |z|: proved on each side of zero below
        ),
    )
    identities = on_each_side_of_zero(
        Identity(
            "tanh_derivative_stable",
            "the stable derivative equals $4/(e^z + e^{-z})^2$",
            long=stable_derivative,
            shortcut=multiplied_out,
            long_title="The stable form,",
            shortcut_title="$1 - \\tanh^2 z$ multiplied out,",
        ),
        z,
    )
    exercises = (
        Exercise(
            "Show that $\\tanh z = 2\\sigma(2z) - 1$, with $\\sigma$ the "
            "[sigmoid](sigmoid.md). From it, write $\\tanh'$ through $\\sigma'$.",
            sp.Eq(th, 2 * sig.subs(z, 2 * z) - 1),
            _through_the_sigmoid,
            answer="$2\\sigma(2z) - 1 = (2 - 1 - e^{-2z})/(1 + e^{-2z}) = (1 - e^{-2z})/(1 + e^{-2z})$; "
            "multiplying numerator and denominator by $e^{z}$ gives $(e^z - e^{-z})/(e^z + e^{-z})$. "
            "By the chain rule, $\\tanh'(z) = 4\\sigma'(2z)$: at most $4 \\cdot 1/4 = 1$, at "
            "$z = 0$. A tanh is a sigmoid stretched to $(-1, 1)$ and made twice as steep. SymPy "
            "writes both sides out and finds their difference 0.",
            title="A sigmoid in disguise",
        ),
        Exercise(
            "Differentiate once more: show that $\\tanh''(z) = -2\\tanh z\\,(1 - \\tanh^2 z)$. "
            "Where is the slope largest, and what is it there?",
            sp.Eq(Derivative(th, (z, 2)), -2 * th * (1 - th**2)),
            Identity(
                "tanh_second_derivative",
                "$\\tanh''(z) = -2\\tanh z\\,(1 - \\tanh^2 z)$",
                long=Derivative(definition, (z, 2)),
                shortcut=-2 * definition * (1 - definition**2),
                long_title="The second derivative of the definition,",
                shortcut_title="$-2\\tanh z\\,(1 - \\tanh^2 z)$,",
            ),
            answer="The chain rule on $1 - \\tanh^2$: $-2\\tanh z \\cdot \\tanh' z$. It vanishes "
            "only where $\\tanh z = 0$, at $z = 0$, where the slope is largest: $1 - 0 = 1$. So, "
            "unlike a sigmoid's ($1/4$), a tanh passes a gradient on undiminished near 0. SymPy "
            "differentiates the definition twice and finds the difference 0.",
            title="The second derivative",
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
            overflow="Where |z| exceeds half the dtype's range (1e308 in float64), −2|z| overflows to −∞, and e^{−∞} = 0 gives the right gradient 0",
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
        lhs=sp.MatrixSymbol("\\tanh'(Z)", batch_size, hidden),
        rhs=ones - sp.HadamardProduct(A, A),
        index_form=derivative.xreplace({z: Z_entries[b, k]}),
        entry=((b,), (k,)),
        where=((A_entries[b, k], sp.tanh(Z_entries[b, k])),),
        text="Entrywise on a batch of pre-activations $Z$, from the outputs $A = \\tanh(Z)$ "
        "alone ($\\circ$: the entrywise product).",
    )
    return Derivation(
        sections=(
            Section(
                "Why these steps are written by hand",
                "These steps are written by hand, not generated from a forward definition "
                "(`derive.differentiate`, which makes the SiLU, GELU, Huber and layer "
                "normalisation pages). It would find $1 - \\tanh^2 z$ by the quotient rule, but "
                "not {step:multiply-out}'s multiplying out to $4/(e^z + e^{-z})^2$, nor the stable "
                "derivative with $e^{-2|z|}$ that keeps its digits where $\\tanh z$ rounds to "
                "$\\pm 1$: choices of form it does not make.",
                place="after_steps",
            ),
        ),
        matrix_result=matrix_result,
        name="tanh",
        title="The hyperbolic tangent",
        summary="$\\tanh z$, the activation of many hidden layers, and its derivative $1 - \\tanh^2 z$.",
        definitions=(Definition(th, definition, "for any real $z$, elementwise"),),
        steps=steps,
        identities=identities,
        exercises=exercises,
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
                f"$4e^{{-40}} \\approx {latex_scientific(4 * mpmath.exp(-40), 2)}$ and "
                f"$4e^{{-600}} \\approx {latex_scientific(4 * mpmath.exp(-600))}$, "
                "small but well inside float64's range (its smallest normal number is about "
                f"${smallest_normal()}$): the stable form returns both.",
            ),
        ),
        figures=(
            Figure("tanh.svg", "tanh and its derivative, from the generated functions.", _draw),
        ),
        results={"tanh": sp.tanh(z), "derivative": derivative},
    )
