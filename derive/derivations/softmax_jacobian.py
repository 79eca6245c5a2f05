"""Part 1: the Jacobian of softmax, ∂S_i/∂z_j = S_i(δ_ij − S_j) = diag(S) − S Sᵀ."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum, exp

from derive.figures import annotated_heatmap
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, softmax, z
from derive.proofs import vanishes
from derive.steps import (
    SHIFT_OVERFLOW,
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Erratum,
    Example,
    Exercise,
    Figure,
    Identity,
    Kernel,
    MatrixResult,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import Maximum, evaluate, pull_out_of_sums, sums_of, written_sums


def explicit_matrix_form(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of an explicit softmax of C logits, and diag(S) − S Sᵀ."""
    logits = explicit_vector("z", sizes["C"])
    probabilities = explicit_softmax(logits)
    jacobian = probabilities.jacobian(logits)
    return jacobian, sp.diag(*probabilities) - probabilities * probabilities.T


def explicit_row_sums(sizes) -> tuple[Matrix, Matrix]:
    """The row sums of the Jacobian of an explicit softmax, and zeros."""
    logits = explicit_vector("z", sizes["C"])
    jacobian = explicit_softmax(logits).jacobian(logits)
    return jacobian * sp.ones(sizes["C"], 1), sp.zeros(sizes["C"], 1)


def _variance_form(answer) -> bool:
    """Both sides of the answer, written out for C = 2..5, equal vᵀ(diag(S) − S Sᵀ)v; and (diag(S) − S Sᵀ)·1 = 0."""
    values = sp.IndexedBase("v")
    for n in range(2, 6):
        s = Matrix([S[m] for m in range(1, n + 1)])
        v = Matrix([values[m] for m in range(1, n + 1)])
        jacobian = Matrix(n, n, lambda a, b: s[a] if a == b else 0) - s * s.T  # noqa: B023 - used at once
        quadratic = (v.T * jacobian * v)[0]
        for side in (answer.lhs, answer.rhs):
            plain = {ix: sp.Symbol(str(ix.label), integer=True) for ix in side.atoms(sp.Idx)}
            if sp.expand(written_sums((side.xreplace(plain) - quadratic).xreplace({C: n}))) != 0:
                return False
        on_ones = (jacobian * sp.ones(n, 1)).subs(s[n - 1], 1 - sum(s[:-1]))
        if sp.expand(on_ones) != sp.zeros(n, 1):
            return False
    return True


def _two_classes(answer) -> bool:
    """The answer's matrix, S_1 and S_2 written out, is the Jacobian of a softmax of two logits,
    and its entries are ±σ'(z_1 − z_2), σ the sigmoid."""
    logits = explicit_vector("z", 2)
    p = explicit_softmax(logits)
    shortcut = Matrix(answer.rhs).xreplace({S[1]: p[0], S[2]: p[1]})
    if not all(vanishes(e) for e in p.jacobian(logits) - shortcut):
        return False
    difference = logits[0] - logits[1]
    sigmoid_slope = sp.diff(1 / (1 + exp(-difference)), logits[0])
    return vanishes(shortcut[0, 0] - sigmoid_slope)


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
    stable = Matrix(
        sizes["C"], sizes["C"], lambda i, j: p[i] * _others(p, i) if i == j else -p[i] * p[j]
    )
    return p.jacobian(logits), stable


def _jacobian_heatmap(fig, generated, posts) -> None:
    from derive.figures import subscript

    jacobian = generated.softmax_jacobian(generated.softmax(generated.summation(posts.X, posts.W)))
    C = jacobian.shape[0]
    annotated_heatmap(
        fig,
        jacobian,
        [f"z{subscript(j + 1)}" for j in range(C)],
        [f"S{subscript(i + 1)}" for i in range(C)],
        "∂Sᵢ/∂zⱼ for the posts' x and W",
    )


def _along_a_line(fig, generated, posts) -> None:
    from derive.figures import margins, subscript

    t = np.linspace(-4, 4, 161)
    logits = np.stack([t, np.zeros_like(t), -0.5 * t], axis=-1)  # a line through 3 logits
    s = generated.softmax(logits)
    jacobian = generated.softmax_jacobian(s)
    left, right = fig.subplots(1, 2, sharex=True)
    margins(fig, left=0.5, right=0.15, bottom=0.6, top=0.36, wspace=0.24)
    for i in range(3):
        left.plot(t, s[:, i], label=f"S{subscript(i + 1)}")
        right.plot(t, jacobian[:, i, 0], label=f"∂S{subscript(i + 1)}/∂z₁")
    left.set_title("softmax along z = (t, 0, −t/2)")
    right.set_title("one column of the Jacobian")
    for ax in (left, right):
        ax.set_xlabel("t")
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
    split = sp.expand(quotient)  # SymPy shows the product term first, then the delta term
    product_term = exp(z[i]) * exp(z[j]) / denominator**2
    delta_term = exp(z[i]) * KroneckerDelta(i, j) / denominator
    if sp.expand(split - (delta_term - product_term)) != 0:
        raise ValueError(
            f"the split fraction is {split}, not the delta term minus the product term"
        )
    # the product term written with S, the delta term not yet
    product_in_S = delta_term - S[i] * S[j]
    same = in_S.subs(KroneckerDelta(i, j), 1).subs(j, i)
    different = in_S.subs(KroneckerDelta(i, j), 0)
    cases = sp.Piecewise((same, sp.Eq(i, j)), (different, True))
    S_vector = sp.MatrixSymbol("S", C, 1)
    matrix_form = sp.DiagMatrix(S_vector) - S_vector * S_vector.T
    J = sp.IndexedBase("J")  # the Jacobian, entry by entry: J_ij = ∂S_i/∂z_j

    row_sum = Sum(in_S, (j, 1, C))
    row_sum_evaluated = pull_out_of_sums(evaluate(row_sum))
    (outputs_total,) = sums_of(S, row_sum_evaluated)

    # Where S_i rounds to 1, 1 − S_i is 0 in floating point; the sum of the others keeps its digits.
    n = class_index("n")  # not m, the logits' maximum (derive/notation.py)
    others = Sum((1 - KroneckerDelta(i, n)) * S[n], (n, 1, C))  # Σ_{n≠i} S_n
    probabilities_sum_to_one = {Sum(S[n], (n, 1, C)): sp.Integer(1)}
    stable = S[i] * (KroneckerDelta(i, j) * others - (1 - KroneckerDelta(i, j)) * S[j])

    shift = sp.Symbol("m", real=True)
    shifted = exp(z[i] - shift) / Sum(exp(z[k] - shift), (k, 1, C))

    sum_to_one = ((Sum(S[n], (n, 1, C)), sp.Integer(1)),)  # the probabilities add up to 1
    steps = (
        Step(
            "Numerator",
            "The numerator is one exponential, $e^{z_i}$. Its derivative is $e^{z_i}$ times "
            "$\\partial z_i / \\partial z_j$, which is 1 when $i = j$ and 0 otherwise: the "
            "Kronecker delta $\\delta_{ij}$.",
            Derivative(numerator, z[j]),
            d_numerator,
            key="numerator",
        ),
        Step(
            "Denominator",
            "Every term of the sum is differentiated; the deltas pick the single "
            "term $k = j$ (the sum of deltas collapses, $j$ being in $1..C$).",
            Derivative(denominator, z[j]),
            d_denominator,
            start="the denominator $\\sum_k e^{z_k}$",
            key="denominator",
        ),
        Step(
            "Quotient rule",
            "For $f = g/h$: $f' = (g'h - g h')/h^2$, with $g$ the numerator and $h$ the "
            "denominator, and their derivatives from {steps:numerator and denominator}.",
            Derivative(S_i, z[j]),
            quotient,
            start="the definition of $S_i$, the numerator over the denominator",
        ),
        Step(
            "Split the fraction",
            "Divide each term of the numerator by the denominator $h^2$: SymPy shows the product "
            "term first and the delta term second.",
            quotient,
            split,
        ),
        Step(
            "The product term is a product of two outputs",
            "In the product term, $e^{z_i}/\\sum_k e^{z_k}$ is $S_i$ and $e^{z_j}/\\sum_k e^{z_k}$ "
            "is $S_j$: write each exponential as $S$ times the sum, and the squared sum cancels.",
            split,
            product_in_S,
        ),
        Step(
            "In terms of S",
            "In the same way the delta term, $e^{z_i}\\delta_{ij}/\\sum_k e^{z_k}$, is "
            "$S_i \\delta_{ij}$; then $S_i$ is factored out.",
            product_in_S,
            in_S,
            key="in-terms-of-s",
        ),
        Step(
            "The two cases",
            "When $i = j$ the delta is 1 and $S_j$ is $S_i$ (SymPy substitutes $j \\to i$); "
            "when $i \\ne j$ the delta is 0. Each line holds only under its condition.",
            in_S,
            cases,
            checked="explicit",  # the checker does not split a Piecewise on i = j in index form
        ),
        Step(
            "One entry of the matrix diag(S) − S Sᵀ",
            "Take $S$ as a $C \\times 1$ column. Entry $(i, j)$ of $\\operatorname{diag}(S)$ is "
            "$S_i \\delta_{ij}$, and entry $(i, j)$ of the outer product $S S^T$ is $S_i S_j$: the "
            "result of {step:in-terms-of-s} is entry $(i, j)$ of the matrix on the right (the "
            "build compares it with every entry).",
            in_S,
            matrix_form,
            start=6,
            checked="explicit",  # a matrix's entries: compared at explicit sizes
            entry=((i,), (j,)),
            key="matrix-entry",
        ),
        Step(
            "Matrix form",
            "Call $J$ the $C \\times C$ Jacobian, the matrix with entry $J_{ij} = \\partial S_i / "
            "\\partial z_j$. {Step:in-terms-of-s} gives every entry, and {step:matrix-entry} shows "
            "it is entry $(i, j)$ of $\\operatorname{diag}(S) - S S^T$, so the two matrices are "
            "equal: $J = \\operatorname{diag}(S) - S S^T$. SymPy did not derive this matrix form "
            "(its matrix calculus is unreliable for this layer); it was read off entry by entry. "
            "The build checks each entry $J_{ij}$, differentiated directly, against the matrix, "
            "and the explicit-matrix proof below compares whole Jacobians for $C = 2, \\dots, 6$.",
            J[i, j],
            matrix_form,
            where=((J[i, j], Derivative(S[i], z[j])),),
            start="the Jacobian, entry by entry",
            checked="explicit",  # a matrix's entries: compared at explicit sizes
            entry=((i,), (j,)),
        ),
        Step(
            "Stable evaluation",
            "Multiplying numerator and denominator by $e^{-m}$ changes nothing; "
            "with $m = \\max_k z_k$ no exponential exceeds 1, so none overflows. SymPy "
            "pulls $e^{-m}$ out of the sum and cancels it, for any number $m$.",
            shifted,
            S[i],
            start="softmax of the logits shifted by $m$",
        ),
        Step(
            "Why the code computes $1 - S_i$ as a sum",
            "When one probability is close to 1, $S_i$ rounds to 1.0 in floating point and "
            "$1 - S_i$ comes out as 0, although its true value is tiny but not 0. The probabilities "
            "add up to 1, so $1 - S_i$ is the sum of the others: positive terms, no subtraction, "
            "every digit kept.",
            1 - S[i],
            others,
            relation="=>",
            given=sum_to_one,
            start="$1 - S_i$",
        ),
        Step(
            "The Jacobian without cancellation",
            "On the diagonal ($\\delta_{ij} = 1$) the code computes $S_i \\sum_{n \\ne i} S_n$ "
            "instead of $S_i(1 - S_i)$; off it, $-S_i S_j$ has no subtraction to lose digits in. "
            "The rows of the Jacobian still sum to 0, and a gradient passed back through it keeps "
            "its small components.",
            in_S,
            stable,
            relation="=>",
            given=sum_to_one,
            start=6,
        ),
    )
    identities = (
        Identity(
            "softmax_jacobian",
            "the derivative of softmax is $S_i(\\delta_{ij} - S_j)$ for every $C$, and its "
            "Jacobian is $\\operatorname{diag}(S) - S S^T$ (with explicit matrices, for "
            "$C = 2, \\dots, 6$)",
            long=sp.diff(S_i, z[j]),
            shortcut=in_S.subs({S[i]: S_i, S[j]: softmax(j)}),
            explicit=explicit_matrix_form,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The derivative SymPy computes directly from the definition,",
            shortcut_title="the result $S_i(\\delta_{ij} - S_j)$ with $S$ written out,",
        ),
        Identity(
            "one_minus_softmax",
            "given $\\sum_n S_n = 1$, the sum of the other probabilities, $\\sum_{n \\ne i} S_n$, "
            "equals $1 - S_i$; with $S$ written out, for $C = 2, \\dots, 6$, without the assumption",
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
            "the form the code computes, $S_i(\\delta_{ij} \\sum_{n \\ne i} S_n - (1 - \\delta_{ij}) "
            "S_j)$, equals $S_i(\\delta_{ij} - S_j)$ given $\\sum_n S_n = 1$; with $S$ written out, "
            "it equals the Jacobian SymPy computes directly",
            long=stable,
            shortcut=in_S,
            assumptions=probabilities_sum_to_one,
            explicit=explicit_stable_form,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The form the code computes, its sum evaluated,",
            shortcut_title="$S_i(\\delta_{ij} - S_j)$,",
        ),
    )

    g = sp.IndexedBase("g")  # the gradient arriving at S from later layers
    vjp = Sum(g[i] * Derivative(S[i], z[j]), (i, 1, C))
    vjp_value = pull_out_of_sums(evaluate(Sum(g[i] * in_S, (i, 1, C))))
    values = sp.IndexedBase("v")
    quadratic = Sum(Sum(values[i] * in_S * values[j], (j, 1, C)), (i, 1, C))
    exercises = (
        Exercise(
            "Each row of the Jacobian sums to 0: show $\\sum_j \\partial S_i / \\partial z_j = 0$. "
            "Why must it, without computing anything?",
            sp.Eq(row_sum, row_sum_evaluated.xreplace({outputs_total: 1})),
            Identity(
                "softmax_jacobian_rows_sum_to_zero",
                "the rows of the softmax Jacobian sum to 0",
                long=row_sum,
                shortcut=sp.Integer(0),
                assumptions={outputs_total: sp.Integer(1)},
                explicit=explicit_row_sums,
                explicit_sizes=every(C=range(2, 6)),
            ),
            answer="Adding the same number to every logit changes no output (the shift step), so "
            "moving all logits together, the direction $(1, \\dots, 1)$, has derivative 0. "
            "Computed: the sum collapses to $S_i - S_i \\sum_j S_j$, which is 0 because "
            "$\\sum_j S_j = 1$. SymPy proves it for symbolic $C$ and, with explicit matrices, "
            "for $C = 2..5$.",
            title="The rows sum to zero",
        ),
        Exercise(
            "For any vector $v$, show that $v^T (\\operatorname{diag}(S) - S S^T) v$ is the "
            "variance of $v_I$ when the class $I$ is drawn with probability $S_I$. What does that "
            "say about the matrix?",
            sp.Eq(
                quadratic,
                Sum(values[i] ** 2 * S[i], (i, 1, C)) - Sum(values[i] * S[i], (i, 1, C)) ** 2,
            ),
            _variance_form,
            answer="Expanding, $\\sum_{ij} v_i S_i(\\delta_{ij} - S_j) v_j = \\sum_i S_i v_i^2 - "
            "(\\sum_i S_i v_i)^2 = E[v_I^2] - E[v_I]^2$, a variance, so never negative: the matrix "
            "is positive semi-definite, and the constant vector (variance 0) is in its null space. "
            "In fact it is the covariance matrix of the one-hot vector $e_I$ with $I \\sim S$: "
            "$E[e_I] = S$ and $E[e_I e_I^T] = \\operatorname{diag}(S)$, and $v^T e_I = v_I$. "
            "It is also the Hessian of the cross-entropy with respect to the logits (see the "
            "exercises of the page on the loss from the logits). Checked by SymPy with explicit "
            "matrices for $C = 2..5$.",
            title="The Jacobian is a covariance matrix",
        ),
    )
    two = Matrix(2, 2, lambda r, s: Derivative(S[r + 1], z[s + 1]))
    exercises = (
        *exercises,
        Exercise(
            "Write the Jacobian out for $C = 2$. Why is it one number times a fixed matrix, and "
            "which function of $z_1 - z_2$ is that number the derivative of?",
            sp.Eq(
                sp.ImmutableMatrix(two),
                S[1] * S[2] * sp.ImmutableMatrix([[1, -1], [-1, 1]]),
                evaluate=False,
            ),
            _two_classes,
            answer="With $S_2 = 1 - S_1$, every entry of $S_i(\\delta_{ij} - S_j)$ is "
            "$\\pm S_1 S_2$: the diagonal $S_1(1 - S_1)$, off it $-S_1 S_2$. Two classes have one "
            "degree of freedom: $S_1 = e^{z_1}/(e^{z_1} + e^{z_2}) = \\sigma(z_1 - z_2)$, the "
            "sigmoid of the difference of the logits, and $S_1 S_2 = \\sigma(1 - \\sigma)$ is "
            "the sigmoid's derivative. SymPy differentiates a softmax of two symbols and compares "
            "every entry, and compares $S_1 S_2$ with $\\sigma'(z_1 - z_2)$.",
            title="Two classes",
        ),
    )
    quadratic_value = sp.expand(pull_out_of_sums(evaluate(sp.expand(quadratic))))
    sections = (
        Section(
            "The second-order view",
            "The same matrix is the Hessian of the cross-entropy with respect to the logits, "
            "$\\partial^2 XE / \\partial z_i \\partial z_j = S_i(\\delta_{ij} - S_j)$ (proved on the "
            "[second-order page](second-order.md)). Seen from a direction $v$, SymPy evaluates "
            "its quadratic form to",
            equations=((quadratic, quadratic_value),),
            text_after="which is $E[v_I^2] - E[v_I]^2$ for a class $I$ drawn with probability $S_I$: a "
            "variance, never negative, so the loss is convex in the logits. The matrix is the "
            "covariance matrix of the one-hot vector $e_I$ with $I \\sim S$ ($E[e_I] = S$, "
            "$E[e_I e_I^T] = \\operatorname{diag}(S)$). Along $v = (1, \\ldots, 1)$, the shift that leaves softmax "
            "unchanged, the variance is 0: that direction is in the null space, which is why the "
            "Hessian with respect to $W$ is singular and Newton's method needs a penalty "
            "(the second-order page).",
        ),
        Section(
            "Vectorised, with shapes",
            "For one sample, $S$ is a vector of $C$ probabilities and the Jacobian is "
            "$C \\times C$; for a batch, the generated `softmax_jacobian` returns shape "
            "`(B, C, C)`, one matrix per sample.\n\n"
            "| factor | shape |\n|---|---|\n| $z$, $S$ | $C$ (batch: $B \\times C$) |\n"
            "| $\\operatorname{diag}(S)$, $S S^T$, $J$ | $C \\times C$ (batch: $B \\times C \\times C$) |\n\n"
            "To train, nobody builds $J$. Backpropagation needs only the vector–Jacobian "
            "product: given the gradient $g = \\partial L / \\partial S$ arriving from above, "
            "the gradient with respect to the logits is $g^T J$, and SymPy collapses it to "
            "$C$ numbers computed in $O(C)$ instead of $O(C^2)$:",
            equations=((vjp, vjp_value),),
            text_after="In array form, `s * (g - (g * s).sum(-1, keepdims=True))`.",
        ),
    )

    z_max = sp.Symbol("z_max")
    exp_shifted = sp.IndexedBase("exp_shifted")
    others_of = sp.IndexedBase("others")  # Σ_{n≠i} S_n, one per class
    kernels = (
        Kernel(
            name="softmax",
            overflow=SHIFT_OVERFLOW,
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
            params=(
                Param(
                    "s",
                    S,
                    ("C",),
                    doc="the output of `softmax`: each row sums to 1 (checked)",
                    domain="probability",
                    check="probabilities",
                ),
            ),
            body=(Assign(others_of, (i,), others),),
            returns=Assign(Derivative(S[i], z[j]), (i, j), stable.xreplace({others: others_of[i]})),
            math=stable,
            matrix_form=matrix_form,
            returns_doc="the Jacobian, shape (..., C, C): the posts' `sm_dir(S)`",
            notes="The diagonal is computed as s_i Σ_{n≠i} s_n, which is s_i(1 − s_i) only where s sums "
            "to 1 (it keeps the digits 1 − s_i loses): so s is checked, and a row that does not "
            "sum to 1 within 16·C·ε (ε of float32, or of s's dtype if coarser), or that has a "
            "negative entry, is a ValueError naming s; `derive.check_labels(False)` skips the check.",
            derivative=DerivativeOf("softmax(z)", wrt="z", call="softmax_jacobian(softmax(z))"),
            conditioning="Each entry is a product of softmax outputs, and inherits their error: "
            "about |z_i − max z|/2 ulps for an entry far below the largest.",
        ),
    )
    matrix_result = MatrixResult(
        group="one_layer",
        lhs=sp.MatrixSymbol("J", C, C),
        rhs=matrix_form,
        index_form=in_S,
        entry=((i,), (j,)),
        text="How each output moves with each logit: $J_{ij} = \\partial S_i / \\partial z_j$, "
        "a diagonal matrix minus an outer product, never needed in full by a gradient.",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="softmax_jacobian",
        title="The softmax Jacobian",
        summary="How each softmax output $S_i$ changes with each logit $z_j$ (Part 1).",
        definitions=(
            Definition(
                S[i],
                S_i,
                "the softmax of the logits $z$, for $i = 1..C$. On this page "
                "$i$, $j$ and $k$ all count classes.",
            ),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "Part 1: the Jacobian for the post's S",
                "softmax_jacobian(posts.PART1_S)",
                printed="PART1_JACOBIAN",
                text="Part 1 works from five softmax outputs $S$ alone (no $x$, $W$ or label "
                "enters this example). Four of them are printed in full by the post's `div` "
                "lines; the fifth is printed only to 8 decimals, so `posts.PART1_S` takes it "
                "as 1 minus the other four, which is what a softmax output must be (and it "
                "agrees with the printed `0.23190508`).",
            ),
            Example(
                "Part 2: DS = sm_dir(h)",
                "softmax_jacobian(softmax(summation(posts.X, posts.W)))",
                printed="PART2_DS",
                text="Part 2 takes the softmax of the logits $z = W^T x$ of its 3 inputs and 5 "
                "classes (`posts.X`, `posts.W`), the hypothesis $h$, and prints its Jacobian.",
            ),
        ),
        sections=sections,
        exercises=exercises,
        figures=(
            Figure(
                "softmax-jacobian-heatmap.svg",
                "The softmax Jacobian at the posts' hypothesis h: positive on the diagonal "
                "(S_i(1 − S_i) > 0), negative off it (−S_i S_j < 0), every row summing to 0.",
                _jacobian_heatmap,
            ),
            Figure(
                "softmax-along-a-line.svg",
                "Softmax and one column of its Jacobian along a line of logits.",
                _along_a_line,
            ),
        ),
        results={
            "softmax": S_i,
            "jacobian": in_S,
            "matrix_form": matrix_form,
            "one_minus_softmax": others,
            "stable_jacobian": stable,
        },
        errata=(
            Erratum(
                "Part 1 prints `array([0.97337094, 0.85251098, ...])` and calls it the softmax "
                "output. It cannot be one: the entries of a softmax output sum to 1, and these sum to",
                "posts.array(posts.PART1_INPUT).sum()",
                followed_by=(
                    (
                        "Nor is its softmax the $S$ the post uses next. Below, the first "
                        "four entries of its softmax, then the first four entries of the post's "
                        "$S$ as its `div` lines print them in full (nothing here is inferred):",
                        "np.stack([softmax(posts.array(posts.PART1_INPUT))[:4], posts.PART1_S[:4]])",
                    ),
                    (
                        "They differ. The array looks like the random input "
                        "`x = np.random.random([5])` of another run; the Jacobian the post prints "
                        "belongs to the $S$ of its `div` lines (the first worked example agrees "
                        "with it).",
                        "",
                    ),
                ),
            ),
            Erratum(
                "Part 1 writes $\\delta$ for the partial derivative, "
                "$\\frac{\\delta S_i}{\\delta x_j}$, the letter the derivation needs for the "
                "Kronecker delta $\\delta_{ij}$ (1 if $i = j$, else 0). This page writes "
                "$\\partial S_i / \\partial z_j$ for the derivative and keeps $\\delta$ for the "
                "Kronecker delta (and calls the logits $z$ where the post writes $x$).",
            ),
            Erratum(
                "Part 1's general Jacobian puts $\\sigma(x_j) - \\sigma(x_j)\\sigma(x_i)$ at the "
                "general position $(i, j)$ (and $\\sigma(x_j)$ at the general position of its "
                "diagonal matrix), where $\\sigma(x_i)$ is the post's name for the softmax output "
                "$S_i$. That is the formula of the diagonal, $i = j$, only: off the diagonal the "
                "entry is $-S_i S_j$, the post's own case $i \\ne j$, and in general it is "
                "$S_i(\\delta_{ij} - S_j)$. For the post's $S$, entry $(1, 2)$ of the Jacobian, "
                "then the post's general formula at the same $(i, j)$:",
                "softmax_jacobian(posts.PART1_S)[0, 1], "
                "posts.PART1_S[1] - posts.PART1_S[1] * posts.PART1_S[0]",
            ),
        ),
    )
