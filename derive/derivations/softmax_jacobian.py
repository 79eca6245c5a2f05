"""Part 1: the Jacobian of softmax, ∂S_i/∂z_j = S_i(δ_ij − S_j) = diag(S) − S Sᵀ."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum, exp

from derive.figures import annotated_heatmap
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, softmax, z
from derive.steps import (
    Assign,
    Definition,
    DerivativeOf,
    Derivation,
    Erratum,
    Example,
    Figure,
    Identity,
    Kernel,
    Param,
    Step,
    every,
)
from derive.sympy_tools import Maximum, evaluate, pull_out_of_sums


def explicit_matrix_form(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of an explicit softmax of C logits, and diag(S) − S Sᵀ."""
    logits = explicit_vector("z", sizes["C"])
    probabilities = explicit_softmax(logits)
    jacobian = probabilities.jacobian(logits)
    return jacobian, sp.diag(*probabilities) - probabilities * probabilities.T


def _others(probabilities: Matrix, i: int) -> sp.Expr:
    """Σ_{k≠i} S_k for explicit probabilities."""
    return sum(p for k, p in enumerate(probabilities) if k != i)


def explicit_one_minus_softmax(sizes) -> tuple[Matrix, Matrix]:
    """Σ_{k≠i} S_k and 1 − S_i for an explicit softmax of C logits."""
    probabilities = explicit_softmax(explicit_vector("z", sizes["C"]))
    others = Matrix([_others(probabilities, i) for i in range(sizes["C"])])
    return others, Matrix([1 - p for p in probabilities])


def explicit_stable_form(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of an explicit softmax, and the form the code computes with S written out."""
    logits = explicit_vector("z", sizes["C"])
    p = explicit_softmax(logits)
    stable = Matrix(sizes["C"], sizes["C"],
                    lambda i, j: p[i] * _others(p, i) if i == j else -p[i] * p[j])
    return p.jacobian(logits), stable


def _jacobian_heatmap(fig, generated, posts) -> None:
    jacobian = generated.softmax_jacobian(generated.softmax(generated.summation(posts.X, posts.W)))
    C = jacobian.shape[0]
    annotated_heatmap(fig, jacobian, [f"$z_{j + 1}$" for j in range(C)], [f"$S_{i + 1}$" for i in range(C)],
                      r"$\partial S_i / \partial z_j$ for the posts' $x$ and $W$")


def _along_a_line(fig, generated, posts) -> None:
    t = np.linspace(-4, 4, 161)
    logits = np.stack([t, np.zeros_like(t), -0.5 * t], axis=-1)  # a line through 3 logits
    s = generated.softmax(logits)
    jacobian = generated.softmax_jacobian(s)
    left, right = fig.subplots(1, 2, sharex=True)
    for i in range(3):
        left.plot(t, s[:, i], label=f"$S_{i + 1}$")
        right.plot(t, jacobian[:, i, 0], label=rf"$\partial S_{i + 1}/\partial z_1$")
    left.set_title(r"softmax along $z = (t, 0, -t/2)$")
    right.set_title(r"one column of the Jacobian")
    for ax in (left, right):
        ax.set_xlabel("$t$")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)


def derive():
    i, j, k = class_index("i"), class_index("j"), class_index("k")
    numerator = exp(z[i])
    denominator = Sum(exp(z[k]), (k, 1, C))
    S_i = softmax(i)

    d_numerator = evaluate(sp.diff(numerator, z[j]))
    d_denominator = evaluate(sp.diff(denominator, z[j]))
    quotient = (d_numerator * denominator - numerator * d_denominator) / denominator**2
    in_S = sp.factor(
        sp.expand(quotient).subs({exp(z[i]): S[i] * denominator, exp(z[j]): S[j] * denominator})
    )
    same = in_S.subs(KroneckerDelta(i, j), 1).subs(j, i)
    different = in_S.subs(KroneckerDelta(i, j), 0)
    S_vector = sp.MatrixSymbol("S", C, 1)
    matrix_form = sp.DiagMatrix(S_vector) - S_vector * S_vector.T

    # Where S_i rounds to 1, 1 − S_i is 0 in floating point; the sum of the others keeps its digits.
    m = class_index("m")
    others = Sum((1 - KroneckerDelta(i, m)) * S[m], (m, 1, C))  # Σ_{m≠i} S_m
    probabilities_sum_to_one = {Sum(S[m], (m, 1, C)): sp.Integer(1)}
    stable = S[i] * (KroneckerDelta(i, j) * others - (1 - KroneckerDelta(i, j)) * S[j])

    shift = sp.Symbol("m", real=True)
    shifted = exp(z[i] - shift) / Sum(exp(z[k] - shift), (k, 1, C))
    unshifted = sp.simplify(pull_out_of_sums(sp.expand(shifted)))

    steps = (
        Step(
            "Numerator",
            "Only the $i$-th exponential depends on $z_j$, and only when $i = j$: "
            "$\\partial z_i / \\partial z_j$ is the Kronecker delta $\\delta_{ij}$.",
            Derivative(numerator, z[j]),
            d_numerator,
        ),
        Step(
            "Denominator",
            "Every term of the sum is differentiated; the deltas pick the single "
            "term $k = j$ (the sum of deltas collapses, $j$ being in $1..C$).",
            Derivative(denominator, z[j]),
            d_denominator,
        ),
        Step(
            "Quotient rule",
            "For $f = g/h$: $f' = (g'h - g h')/h^2$, with $g$ the numerator and $h$ the denominator.",
            Derivative(S_i, z[j]),
            quotient,
        ),
        Step(
            "In terms of S",
            "Replace each $e^{z_i} / \\sum_k e^{z_k}$ by the softmax output $S_i$ it is, and factor.",
            quotient,
            in_S,
        ),
        Step("Case i = j", "The delta is 1.", in_S, same),
        Step("Case i ≠ j", "The delta is 0.", in_S, different),
        Step(
            "Matrix form",
            "$S_i \\delta_{ij}$ is the diagonal matrix of $S$; $S_i S_j$ is the outer product $S S^T$.",
            in_S,
            matrix_form,
        ),
        Step(
            "Stable evaluation",
            "Multiplying numerator and denominator by $e^{-m}$ changes nothing; "
            "with $m = \\max_k z_k$ no exponential exceeds 1, so none overflows.",
            shifted,
            unshifted,
        ),
        Step(
            "Why the code computes 1 − S_i as a sum",
            "When one probability is close to 1, $S_i$ rounds to 1.0 in floating point and "
            "$1 - S_i$ comes out as 0, although its true value is tiny but not 0. The probabilities "
            "add up to 1, so $1 - S_i$ is the sum of the others: positive terms, no subtraction, "
            "every digit kept.",
            1 - S[i],
            others,
        ),
        Step(
            "The Jacobian without cancellation",
            "On the diagonal ($\\delta_{ij} = 1$) the code computes $S_i \\sum_{m \\ne i} S_m$ "
            "instead of $S_i(1 - S_i)$; off it, $-S_i S_j$ has no subtraction to lose digits in. "
            "The rows of the Jacobian still sum to 0, and a gradient passed back through it keeps "
            "its small components.",
            in_S,
            stable,
        ),
    )
    identities = (
        Identity(
            "softmax_jacobian",
            "The derivative SymPy computes directly equals S_i(δ_ij − S_j); "
            "written out for explicit sizes, the Jacobian equals diag(S) − S Sᵀ.",
            long=sp.diff(S_i, z[j]),
            shortcut=in_S.subs({S[i]: S_i, S[j]: softmax(j)}),
            explicit=explicit_matrix_form,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The derivative SymPy computes directly,",
            shortcut_title="S_i(δ_ij − S_j) with S written out,",
        ),
        Identity(
            "softmax_shift",
            "Shifting every logit by the same m leaves softmax unchanged.",
            long=shifted,
            shortcut=S_i,
            long_title="Softmax of the shifted logits,",
            shortcut_title="softmax of the logits,",
        ),
        Identity(
            "one_minus_softmax",
            "Given Σ S = 1, the sum of the other probabilities Σ_{m≠i} S_m equals 1 − S_i.",
            long=others,
            shortcut=1 - S[i],
            assumptions=probabilities_sum_to_one,
            explicit=explicit_one_minus_softmax,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The sum of the other probabilities,",
            shortcut_title="one minus the probability,",
        ),
        Identity(
            "softmax_jacobian_stable",
            "The form the code computes, S_i(δ_ij Σ_{m≠i} S_m − (1 − δ_ij) S_j), equals "
            "S_i(δ_ij − S_j) given Σ S = 1; with S written out, it equals the Jacobian SymPy "
            "computes directly.",
            long=stable,
            shortcut=in_S,
            assumptions=probabilities_sum_to_one,
            explicit=explicit_stable_form,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The form the code computes, its sum evaluated,",
            shortcut_title="S_i(δ_ij − S_j),",
        ),
    )

    z_max = sp.Symbol("z_max")
    exp_shifted = sp.IndexedBase("exp_shifted")
    others_of = sp.IndexedBase("others")  # Σ_{m≠i} S_m, one per class
    kernels = (
        Kernel(
            name="softmax",
            summary="Softmax over the last axis, shifted by the maximum so it cannot overflow.",
            params=(Param("z", z, ("C",), doc="logits"),),
            body=(
                Assign(z_max, (), Maximum(z[k], (k, 1, C))),
                Assign(exp_shifted, (i,), sp.fraction(shifted)[0].subs(shift, z_max)),
            ),
            returns=Assign(S, (i,), exp_shifted[i] / Sum(exp_shifted[k], (k, 1, C))),
            returns_doc="probabilities, each in (0, 1), summing to 1 over the last axis",
            math=S_i,
            reference="torch.softmax(z, dim=-1)",
            conditioning="An entry of S far below the largest one: the code rounds z_i − max z, and e^x turns that "
            "absolute error into a relative error |z_i − max z| times larger, so the entry is good to "
            "about |z_i − max z|/2 ulps (hundreds for logits in the thousands); PyTorch and SciPy "
            "round the same difference.",
        ),
        Kernel(
            name="softmax_jacobian",
            summary="The Jacobian of softmax, from its output: entry [i, j] is ∂S_i/∂z_j.",
            params=(Param("s", S, ("C",), doc="the output of `softmax`", domain="probability"),),
            body=(Assign(others_of, (i,), others),),
            returns=Assign(Derivative(S[i], z[j]), (i, j), stable.xreplace({others: others_of[i]})),
            math=stable,
            matrix_form=matrix_form,
            returns_doc="the Jacobian, shape (..., C, C): the posts' `sm_dir(S)`",
            derivative=DerivativeOf("softmax(z)", wrt="z", call="softmax_jacobian(softmax(z))"),
            conditioning="Each entry is a product of softmax outputs, and inherits their error: "
            "about |z_i − max z|/2 ulps for an entry far below the largest.",
        ),
    )
    return Derivation(
        name="softmax_jacobian",
        title="The softmax Jacobian",
        summary="How each softmax output $S_i$ changes with each logit $z_j$ (Part 1).",
        definitions=(
            Definition(S[i], S_i, "the softmax of the logits $z$, for $i = 1..C$"),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example("Part 1: the Jacobian for the post's S", "softmax_jacobian(posts.PART1_S)",
                    printed="PART1_JACOBIAN"),
            Example("Part 2: DS = sm_dir(h)", "softmax_jacobian(softmax(summation(posts.X, posts.W)))",
                    printed="PART2_DS"),
        ),
        figures=(
            Figure("softmax-jacobian-heatmap.svg",
                   "The softmax Jacobian at the posts' hypothesis h: positive on the diagonal, "
                   "negative off it, every row summing to 0.", _jacobian_heatmap),
            Figure("softmax-along-a-line.svg",
                   "Softmax and one column of its Jacobian along a line of logits.", _along_a_line),
        ),
        results={"softmax": S_i, "jacobian": in_S, "matrix_form": matrix_form,
                 "one_minus_softmax": others, "stable_jacobian": stable},
        errata=(
            Erratum(
                "Part 1 prints `array([0.97337094, 0.85251098, ...])` as the softmax output, "
                "but it is a random input: its entries do not sum to 1, and its softmax is not "
                "the S used afterwards. The S behind the Jacobian shown has rows of its "
                "Jacobian summing to 0, as every softmax Jacobian's must:",
                "softmax_jacobian(posts.PART1_S).sum(axis=-1)",
            ),
        ),
    )
