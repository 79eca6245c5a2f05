"""Part 1: the Jacobian of softmax, ∂S_i/∂z_j = S_i(δ_ij − S_j) = diag(S) − S Sᵀ."""

from __future__ import annotations

import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum, exp

from derive.model import C, S, class_index, softmax, z
from derive.steps import Assign, Definition, Derivation, Erratum, Example, Identity, Kernel, Param, Step
from derive.sympy_tools import Maximum, evaluate, pull_out_of_sums


def explicit_matrix_form(n_inputs: int, n_classes: int) -> tuple[Matrix, Matrix]:
    """The Jacobian of an explicit softmax of C logits, and diag(S) − S Sᵀ."""
    logits = Matrix(sp.symbols(f"z_0:{n_classes}", real=True))
    exps = logits.applyfunc(exp)
    probabilities = exps / sum(exps)
    jacobian = probabilities.jacobian(logits)
    return jacobian, sp.diag(*probabilities) - probabilities * probabilities.T


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
    )
    identities = (
        Identity(
            "softmax_jacobian",
            "The derivative SymPy computes directly equals S_i(δ_ij − S_j); "
            "written out for explicit sizes, the Jacobian equals diag(S) − S Sᵀ.",
            long=sp.diff(S_i, z[j]),
            shortcut=in_S.subs({S[i]: S_i, S[j]: softmax(j)}),
            explicit=explicit_matrix_form,
            explicit_sizes=tuple((1, c) for c in range(2, 7)),  # softmax has no inputs x
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
    )

    z_max = sp.Symbol("z_max")
    exp_shifted = sp.IndexedBase("exp_shifted")
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
        ),
        Kernel(
            name="softmax_jacobian",
            summary="The Jacobian of softmax, from its output: entry [i, j] is ∂S_i/∂z_j.",
            params=(Param("s", S, ("C",), doc="the output of `softmax`"),),
            body=(),
            returns=Assign(Derivative(S[i], z[j]), (i, j), in_S),
            matrix_form=matrix_form,
            returns_doc="the Jacobian, shape (..., C, C): the posts' `sm_dir(S)`",
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
                    "PART1_JACOBIAN"),
            Example("Part 2: DS = sm_dir(h)", "softmax_jacobian(softmax(summation(posts.X, posts.W)))",
                    "PART2_DS"),
        ),
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
