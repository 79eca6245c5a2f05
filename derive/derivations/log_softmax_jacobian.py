"""The Jacobian of log-softmax: ∂ log S_i/∂z_j = δ_ij − S_j."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, exp, log

from derive.derivations import result
from derive.figures import annotated_heatmap
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, y, z
from derive.steps import (
    SHIFT_OVERFLOW,
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
    Step,
    every,
)
from derive.sympy_tools import evaluate


def explicit_jacobian(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of log(softmax(z)) written out, and I − 1 Sᵀ."""
    n = sizes["C"]
    logits = explicit_vector("z", n)
    probabilities = explicit_softmax(logits)
    long = probabilities.applyfunc(log).jacobian(logits)
    return long, sp.eye(n) - sp.ones(n, 1) * probabilities.T


def explicit_row_sums(sizes) -> tuple[Matrix, Matrix]:
    """The row sums of the Jacobian of log(softmax(z)) written out, and zeros."""
    n = sizes["C"]
    logits = explicit_vector("z", n)
    jacobian = explicit_softmax(logits).applyfunc(log).jacobian(logits)
    return jacobian * sp.ones(n, 1), sp.zeros(n, 1)


def _draw(fig, generated, posts) -> None:
    from derive.figures import subscript

    jacobian = generated.log_softmax_jacobian(np.array([2.0, 1.0, 0.1]))
    annotated_heatmap(
        fig,
        jacobian,
        [f"z{subscript(j + 1)}" for j in range(3)],
        [f"log S{subscript(i + 1)}" for i in range(3)],
        "∂log Sᵢ/∂zⱼ for z = (2, 1, 0.1): every row is eᵢ − S",
    )


def derive() -> Derivation:
    i, j, k = class_index("i"), class_index("j"), class_index("k")
    log_softmax = result("cross_entropy_from_logits", "log_softmax", i=i)  # z_i − log Σ_k e^{z_k}
    derivative = evaluate(sp.diff(log_softmax, z[j]))
    in_S = derivative.subs(exp(z[j]), S[j] * sp.Sum(exp(z[k]), (k, 1, C)))
    n = class_index("n")  # not m, the logits' maximum
    others = result("softmax_jacobian", "one_minus_softmax", i=i)  # Σ_{n≠i} S_n, proved = 1 − S_i
    stable = KroneckerDelta(i, j) * others - (1 - KroneckerDelta(i, j)) * S[j]
    steps = (
        Step(
            "Differentiate",
            "$\\partial z_i/\\partial z_j = \\delta_{ij}$; the derivative of "
            "$\\log \\sum_k e^{z_k}$ is $e^{z_j}/\\sum_k e^{z_k}$.",
            Derivative(log_softmax, z[j]),
            derivative,
        ),
        Step(
            "In terms of S",
            "$e^{z_j}/\\sum_k e^{z_k}$ is $S_j$: no division by $S_i$, unlike "
            "$\\partial S_i/\\partial z_j$ divided by $S_i$.",
            derivative,
            in_S,
        ),
        Step(
            "Why the code computes it this way",
            "On the diagonal, $1 - S_i$ is 0 in floating point "
            "once $S_i$ rounds to 1; given $\\sum_n S_n = 1$ it is $\\sum_{n \\ne i} S_n$ (proved on the "
            "softmax Jacobian's page), which keeps every digit.",
            in_S,
            stable,
            relation="=>",
            given=((sp.Sum(S[n], (n, 1, C)), sp.Integer(1)),),
        ),
    )
    identities = (
        Identity(
            "log_softmax_jacobian",
            "the derivative of $\\log S_i$ is $\\delta_{ij} - S_j$",
            long=sp.diff(log_softmax, z[j]),
            shortcut=in_S.subs(S[j], result("softmax_jacobian", "softmax", i=j)),
            explicit=explicit_jacobian,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The derivative of log-softmax,",
            shortcut_title="$\\delta_{ij} - S_j$ with $S$ written out,",
        ),
    )
    # Exercises: the rows sum to 0 (the shift), and the cross-entropy's gradient in one line.
    row_sum = sp.Sum(in_S, (j, 1, C))
    cross_entropy_gradient = -sp.Sum(y[i] * in_S, (i, 1, C))  # ∂(−Σ_i y_i log S_i)/∂z_j
    exercises = (
        Exercise(
            "Show that each row of the log-softmax Jacobian sums to 0, "
            "$\\sum_j \\partial \\log S_i / \\partial z_j = 0$. Why must it, without computing?",
            sp.Eq(row_sum, 0),
            Identity(
                "log_softmax_jacobian_rows_sum_to_zero",
                "the rows of the log-softmax Jacobian sum to 0, given $\\sum_j S_j = 1$",
                long=row_sum,
                shortcut=sp.Integer(0),
                assumptions={sp.Sum(S[j], (j, 1, C)): sp.Integer(1)},
                explicit=explicit_row_sums,
                explicit_sizes=every(C=range(2, 6)),
                long_title="The sum of a row,",
                shortcut_title="zero,",
            ),
            answer="Adding the same number $a$ to every logit leaves every $S_i$, so every "
            "$\\log S_i$, unchanged: the derivative along $(1, \\dots, 1)$, the row sum, is 0. "
            "Computed: $\\sum_j (\\delta_{ij} - S_j) = 1 - \\sum_j S_j = 0$. SymPy proves it "
            "for symbolic $C$ given $\\sum_j S_j = 1$, and with $S$ written out for $C = 2..5$.",
            title="The rows sum to zero",
        ),
        Exercise(
            "The cross-entropy is $XE = -\\sum_i y_i \\log S_i$. Use the log-softmax Jacobian to "
            "find $\\partial XE / \\partial z_j$, and say what the labels must satisfy.",
            sp.Eq(cross_entropy_gradient, S[j] - y[j]),
            Identity(
                "log_softmax_cross_entropy_gradient",
                "$-\\sum_i y_i (\\delta_{ij} - S_j) = S_j - y_j$, given $\\sum_i y_i = 1$",
                long=cross_entropy_gradient,
                shortcut=S[j] - y[j],
                assumptions={sp.Sum(y[i], (i, 1, C)): sp.Integer(1)},
                long_title="The labels times the log-softmax Jacobian,",
                shortcut_title="$S_j - y_j$,",
            ),
            answer="$XE$ is linear in the $\\log S_i$, so $\\partial XE / \\partial z_j = "
            "-\\sum_i y_i (\\delta_{ij} - S_j) = -y_j + S_j \\sum_i y_i$, which is $S_j - y_j$ "
            "when the labels add up to 1: no division by $S_i$ anywhere, which is why losses are "
            "computed from log-softmax. SymPy proves it for symbolic $C$.",
            title="The cross-entropy's gradient in one line",
        ),
    )
    kernels = (
        Kernel(
            name="log_softmax_jacobian",
            overflow=SHIFT_OVERFLOW,
            summary="∂ log S_i/∂z_j = δ_ij − S_j: the Jacobian of log-softmax, from the logits.",
            params=(Param("z", z, ("C",), doc="logits"),),
            body=(
                Assign(S, (j,), sp.Function("softmax")(z)),
                Assign(sp.IndexedBase("others"), (i,), others),
            ),
            returns=Assign(
                Derivative(log(S[i]), z[j]),
                (i, j),
                stable.xreplace({others: sp.IndexedBase("others")[i]}),
            ),
            math=in_S,
            returns_doc="shape (..., C, C)",
            derivative=DerivativeOf("log_softmax(z)", wrt="z"),
            conditioning="The entries −S_j are softmax outputs, and inherit their error: about "
            "|z_j − max z|/2 ulps for an entry far below the largest (as softmax's).",
        ),
    )
    matrix_result = MatrixResult(
        group="numerics",
        lhs=sp.MatrixSymbol("J_{\\log S}", C, C),
        rhs=sp.Identity(C) - sp.OneMatrix(C, 1) * sp.MatrixSymbol("S", C, 1).T,
        index_form=in_S,
        entry=((i,), (j,)),
        text="The Jacobian of log-softmax: the identity minus $S^T$ in every row "
        "($\\mathbf{1}$: a column of ones).",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="log_softmax_jacobian",
        title="The log-softmax Jacobian",
        summary="How each log-probability $\\log S_i$ changes with each logit: $\\delta_{ij} - S_j$, "
        "every row the same $S$ subtracted from a one-hot row.",
        definitions=(Definition(log(S[i]), log_softmax, "with $S = \\operatorname{softmax}(z)$"),),
        where=((S[i], result("softmax_jacobian", "softmax", i=i)),),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "Rows are e_i − S",
                "log_softmax_jacobian(np.array([2.0, 1.0, 0.1]))",
                reference="np.eye(3) - softmax(np.array([2.0, 1.0, 0.1]))",
                text="Against the identity matrix minus the softmax, written with NumPy.",
            ),
        ),
        figures=(
            Figure("log-softmax-jacobian.svg", "The log-softmax Jacobian for three logits.", _draw),
        ),
        exercises=exercises,
        results={"jacobian": in_S},
    )
