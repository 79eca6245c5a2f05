"""Part 1: the Jacobian of softmax, ∂S_i/∂z_j = S_i(δ_ij − S_j) = diag(S) − S Sᵀ."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum, exp
from sympy.matrices.expressions.matexpr import MatrixElement

from derive.figures import annotated_heatmap
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, softmax, z
from derive.steps import (
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
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import Maximum, evaluate, pull_out_of_sums, sums_of


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
            if sp.expand((side.xreplace(plain) - quadratic).subs(C, n).doit()) != 0:
                return False
        on_ones = (jacobian * sp.ones(n, 1)).subs(s[n - 1], 1 - sum(s[:-1]))
        if sp.expand(on_ones) != sp.zeros(n, 1):
            return False
    return True


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
    jacobian = generated.softmax_jacobian(generated.softmax(generated.summation(posts.X, posts.W)))
    C = jacobian.shape[0]
    annotated_heatmap(
        fig,
        jacobian,
        [f"$z_{j + 1}$" for j in range(C)],
        [f"$S_{i + 1}$" for i in range(C)],
        r"$\partial S_i / \partial z_j$ for the posts' $x$ and $W$",
    )


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
    split = sp.expand(quotient)
    product_term = exp(z[i]) * exp(z[j]) / denominator**2
    product_in_S = product_term.subs({exp(z[i]): S[i] * denominator, exp(z[j]): S[j] * denominator})
    same = in_S.subs(KroneckerDelta(i, j), 1).subs(j, i)
    different = in_S.subs(KroneckerDelta(i, j), 0)
    cases = sp.Piecewise((same, sp.Eq(i, j)), (different, True))
    S_vector = sp.MatrixSymbol("S", C, 1)
    matrix_form = sp.DiagMatrix(S_vector) - S_vector * S_vector.T
    entry = MatrixElement(matrix_form, i, j)
    entry_value = matrix_form[i, j].xreplace({S_vector[i, 0]: S[i], S_vector[j, 0]: S[j]})
    if sp.expand(entry_value - in_S) != 0:  # the matrix form is read off entry by entry: check it
        raise ValueError(f"entry (i, j) of diag(S) - S S^T is {entry_value}, not {in_S}")
    J = sp.MatrixSymbol("J", C, C)

    row_sum = Sum(in_S, (j, 1, C))
    row_sum_evaluated = pull_out_of_sums(evaluate(row_sum))
    (outputs_total,) = sums_of(S, row_sum_evaluated)

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
            "The numerator is one exponential, $e^{z_i}$. Its derivative is $e^{z_i}$ times "
            "$\\partial z_i / \\partial z_j$, which is 1 when $i = j$ and 0 otherwise: the "
            "Kronecker delta $\\delta_{ij}$.",
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
            "Split the fraction",
            "Divide each term of the numerator by the denominator $h^2$.",
            quotient,
            split,
        ),
        Step(
            "The second fraction is a product of two outputs",
            "$e^{z_i}/\\sum_k e^{z_k}$ is $S_i$ and $e^{z_j}/\\sum_k e^{z_k}$ is $S_j$: "
            "write each exponential as $S$ times the sum, and the squared sum cancels.",
            product_term,
            product_in_S,
        ),
        Step(
            "In terms of S",
            "In the same way the first fraction, $e^{z_i}\\delta_{ij}/\\sum_k e^{z_k}$, is "
            "$S_i \\delta_{ij}$; then $S_i$ is factored out.",
            split,
            in_S,
        ),
        Step(
            "The two cases",
            "When $i = j$ the delta is 1 and $S_j$ is $S_i$ (SymPy substitutes $j \\to i$); "
            "when $i \\ne j$ the delta is 0. Each line holds only under its condition.",
            in_S,
            cases,
        ),
        Step(
            "One entry of the matrix diag(S) − S Sᵀ",
            "Take $S$ as a $C \\times 1$ column. Entry $(i, j)$ of $\\operatorname{diag}(S)$ is "
            "$S_i \\delta_{ij}$, and entry $(i, j)$ of the outer product $S S^T$ is $S_i S_j$. "
            "SymPy computes the entry of the difference; it is the result of step 6, expanded "
            "(the build checks that the two agree).",
            entry,
            entry_value,
        ),
        Step(
            "Matrix form",
            "Call $J$ the $C \\times C$ Jacobian, the matrix with entry $J_{ij} = \\partial S_i / "
            "\\partial z_j$. Step 6 gives every entry, and step 8 shows it is entry $(i, j)$ of "
            "$\\operatorname{diag}(S) - S S^T$, so the two matrices are equal. SymPy did not "
            "derive this matrix form (its matrix calculus is unreliable for this layer); it was "
            "read off entry by entry, and the explicit-matrix proof below checks it: for "
            "$C = 2, \\dots, 6$ SymPy differentiates a softmax of $C$ symbols and compares the "
            "whole Jacobian with $\\operatorname{diag}(S) - S S^T$.",
            J,
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
            "the derivative of softmax is $S_i(\\delta_{ij} - S_j)$, and its Jacobian is "
            "$\\operatorname{diag}(S) - S S^T$",
            long=sp.diff(S_i, z[j]),
            shortcut=in_S.subs({S[i]: S_i, S[j]: softmax(j)}),
            explicit=explicit_matrix_form,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The derivative SymPy computes directly from the definition,",
            shortcut_title="the result $S_i(\\delta_{ij} - S_j)$ with $S$ written out,",
        ),
        Identity(
            "softmax_shift",
            "shifting every logit by the same $m$ leaves softmax unchanged",
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
            "variance of $v$ when index $i$ is drawn with probability $S_i$. What does that say "
            "about the matrix?",
            sp.Eq(
                quadratic,
                Sum(values[i] ** 2 * S[i], (i, 1, C)) - Sum(values[i] * S[i], (i, 1, C)) ** 2,
            ),
            _variance_form,
            answer="Expanding, $\\sum_{ij} v_i S_i(\\delta_{ij} - S_j) v_j = \\sum_i S_i v_i^2 - "
            "(\\sum_i S_i v_i)^2 = E[v^2] - E[v]^2$, a variance, so never negative: the matrix is "
            "positive semi-definite, and the constant vector (variance 0) is in its null space. "
            "It is also the Hessian of the cross-entropy with respect to the logits (see the "
            "exercises of the page on the loss from the logits). Checked by SymPy with explicit "
            "matrices for $C = 2..5$.",
            title="The Jacobian is a covariance matrix",
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
            text_after="which is $E[v^2] - E[v]^2$ for an index drawn with probability $S_i$: a variance, "
            "never negative, so the loss is convex in the logits (the matrix is the covariance of the "
            "predicted distribution). Along $v = (1, \\ldots, 1)$, the shift that leaves softmax "
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
        ),
    )
