"""Part 2: the layer z = Wᵀx, S = softmax(z), differentiated with respect to W."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum

from derive.derivations import result
from derive.model import (
    C,
    D,
    S,
    W,
    class_index,
    explicit_layer,
    explicit_softmax,
    explicit_vector,
    input_index,
    softmax,
    summation,
    x,
    y,
    z,
)
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
    MatrixResult,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import chain_rule, evaluate, pull_out_of_sums, sums_of


def explicit_chain_rule(sizes, stable: bool = False) -> tuple[Matrix, Matrix]:
    """DS · DZ with explicit matrices, and the shortcut S_t(δ_tc − S_c)x_j.

    Both are functions of independent logits z: the identity holds for every
    z, so in particular for z = Wᵀx.
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    xs = layer.x
    logits = explicit_vector("z", n_classes)
    dz_dw = layer.z.jacobian(layer.weights)  # (C, D*C), weights class-major as in the posts
    probabilities = explicit_softmax(logits)
    ds_dz = probabilities.jacobian(logits)  # (C, C)

    def entry(t: int, w: int) -> sp.Expr:
        c = w // n_inputs
        if stable and t == c:  # 1 − S_t written as the sum of the other probabilities
            others = sum(p for k, p in enumerate(probabilities) if k != t)
            return probabilities[t] * others * xs[w % n_inputs]
        return probabilities[t] * (int(t == c) - probabilities[c]) * xs[w % n_inputs]

    return ds_dz * dz_dw, Matrix(n_classes, n_inputs * n_classes, entry)


def explicit_stable_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DS · DZ, and the form the code computes: S_t Σ_{n≠t} S_n x_j where t = c."""
    return explicit_chain_rule(sizes, stable=True)


def explicit_column_sums(sizes) -> tuple[Matrix, Matrix]:
    """Σ_t ∂S_t/∂W_jc for every weight, with explicit matrices (a row, class-major), and zeros."""
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    logits = explicit_vector("z", n_classes)  # independent logits, as in explicit_chain_rule
    probabilities = explicit_softmax(logits)
    jacobian = probabilities.jacobian(logits) * layer.z.jacobian(layer.weights)  # (C, D*C)
    return sp.ones(1, n_classes) * jacobian, sp.zeros(1, n_inputs * n_classes)


def _is_x_times_softmax_jacobian(answer) -> bool:
    """The answer, with ∂S_t/∂z_c replaced by the softmax page's result, is this page's result."""
    t, c = class_index("t"), class_index("c")
    j = input_index("j")
    entry = result("softmax_jacobian", "jacobian", i=t, j=c)
    ours = result("layer_jacobian", "layer_jacobian", t=t, j=j, c=c)
    return sp.expand(answer.rhs.xreplace({Derivative(S[t], z[c]): entry}) - ours) == 0


def _jacobian_slices(fig, generated, posts) -> None:
    from derive.figures import margins, subscript

    jacobian = generated.layer_jacobian(posts.X, posts.W)  # [t, j, c]
    C, D, _ = jacobian.shape
    limit = np.abs(jacobian).max()
    # the colour bar in a column of its own: a layout matplotlib fits in one pass
    *axes, bar = fig.subplots(1, C + 1, gridspec_kw={"width_ratios": [1] * C + [0.08]})
    margins(fig, left=0.5, right=0.7, bottom=0.55, top=0.35, wspace=0.18)
    for t, ax in enumerate(axes):
        image = ax.imshow(jacobian[t], cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_title(f"t = {t + 1}: ∂S{subscript(t + 1)}/∂W", fontsize=9)
        ax.set_xticks(range(C), [f"{c + 1}" for c in range(C)], fontsize=7)
        ax.set_xlabel("class c", fontsize=8)
        if t:
            ax.set_yticks([])
    axes[0].set_yticks(range(D), [f"{j + 1}" for j in range(D)], fontsize=7)
    axes[0].set_ylabel("input j", fontsize=8)
    fig.colorbar(image, cax=bar)


def _layer_jacobian_heatmap(fig, generated, posts) -> None:
    from derive.figures import margins, subscript

    jacobian = generated.layer_jacobian(posts.X, posts.W)  # [t, j, c]
    C, D, _ = jacobian.shape
    class_major = jacobian.transpose(0, 2, 1).reshape(C, C * D)  # the posts' DL
    ax = fig.subplots()
    margins(fig, left=0.45, right=0.15, bottom=0.45, top=0.36)
    limit = np.abs(class_major).max()
    image = ax.imshow(class_major, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(
        range(C * D),
        [f"W{subscript(j + 1)}{subscript(c + 1)}" for c in range(C) for j in range(D)],
        fontsize=7,
        rotation=90,
    )
    ax.set_yticks(range(C), [f"S{subscript(t + 1)}" for t in range(C)])
    for c in range(1, C):
        ax.axvline(c * D - 0.5, color="black", linewidth=0.5)
    ax.set_title(r"$\partial S_t / \partial W_{jc}$ for the posts' example, weights class-major")
    fig.colorbar(image, ax=ax)


def derive():
    t, c, k = class_index("t"), class_index("c"), class_index("k")
    j = input_index("j")
    ds_dz = result("softmax_jacobian", "jacobian", i=t, j=k)  # ∂S_t/∂z_k

    d = input_index("d")  # the summation's own index: z_k = Σ_d W_dk x_d
    weight_delta = sp.diff(W[d, k], W[j, c])
    term_by_term = Sum(sp.diff(W[d, k] * x[d], W[j, c]), (d, 1, D))
    dz_dw = evaluate(sp.diff(summation(k), W[j, c]))
    chain_for_three = chain_rule(S[t], z, 3, W[j, c])
    chain = Sum(Derivative(S[t], z[k]) * Derivative(z[k], W[j, c]), (k, 1, C))
    chain_substituted = Sum(ds_dz * dz_dw, (k, 1, C))
    shortcut = sp.factor(evaluate(chain_substituted))
    same = shortcut.subs(KroneckerDelta(c, t), 1).subs(t, c)
    different = shortcut.subs(KroneckerDelta(c, t), 0)

    column_sum = Sum(shortcut, (t, 1, C))
    column_sum_evaluated = pull_out_of_sums(evaluate(column_sum))
    (outputs_total,) = sums_of(S, column_sum_evaluated)
    # The softmax Jacobian's cancellation-free form, on the diagonal block t = c.
    stable = result("softmax_jacobian", "stable_jacobian", i=t, j=c) * x[j]
    n = class_index("n")  # the sum of others' index, as on the softmax Jacobian's page
    others = result("softmax_jacobian", "one_minus_softmax", i=t)  # Σ_{n≠t} S_n

    steps = (
        Step(
            "One weight by another",
            "The weights are independent variables: $W_{dk}$ is $W_{jc}$ itself only when both "
            "its indices match ($d = j$ and $k = c$), so the derivative is a product of two deltas.",
            Derivative(W[d, k], W[j, c]),
            weight_delta,
            key="weight-by-weight",
        ),
        Step(
            "Derivative of the summation, term by term",
            "$z_k = \\sum_d W_{dk} x_d$ is differentiated term by term; $x_d$ does not depend on "
            "$W$, so each term gives {step:weight-by-weight}'s double delta times $x_d$.",
            Derivative(summation(k), W[j, c]),
            term_by_term,
            start="$z_k = \\sum_d W_{dk} x_d$",
        ),
        Step(
            "Collapse the sum over inputs",
            "$\\delta_{dj}$ keeps the single term $d = j$ ($j$ is in $1..D$); $\\delta_{ck}$ does "
            "not depend on $d$ and stays: $z_k$ depends on $W_{jc}$ only when $k = c$, with slope $x_j$.",
            term_by_term,
            dz_dw,
            key="logit-by-weight",
        ),
        Step(
            "Chain rule, as SymPy applies it (for C = 3)",
            "$W_{jc}$ reaches $S_t$ through every logit. SymPy, given $S_t$ as an unknown function "
            "of three unknown functions $z_1, z_2, z_3$ of $W_{jc}$, returns one term per logit.",
            *chain_for_three,
            start="$S_t$, which depends on $W_{jc}$ through the logits",
            checked="explicit",  # written for C = 3: checked at C = 3
            sizes=({"C": 3, "D": 2}, {"C": 3, "D": 3}),
        ),
        Step(
            "Substitute the two Jacobians",
            "With $C$ classes there is one such term for each $z_k$: the sum on the left. "
            "$\\partial S_t / \\partial z_k$ comes from the softmax Jacobian page, $\\partial z_k "
            "/ \\partial W_{jc}$ from {step:logit-by-weight}.",
            chain,
            chain_substituted,
            start="the chain rule for $C$ classes",
            checked="explicit",  # the sums' variables differ on the two sides: not cancelled in index form
        ),
        Step(
            "Collapse the sum",
            "The delta $\\delta_{kc}$ keeps the single term $k = c$.",
            chain_substituted,
            shortcut,
        ),
        Step(
            "The two cases",
            "When $t = c$ the delta is 1 and $S_t$ is $S_c$ (SymPy substitutes $t \\to c$); "
            "when $t \\ne c$ the delta is 0. Each line holds only under its condition.",
            shortcut,
            sp.Piecewise((same, sp.Eq(t, c)), (different, True)),
            checked="explicit",  # the checker does not split a Piecewise on t = c in index form
        ),
        Step(
            "Why the code computes it this way",
            "As for the softmax Jacobian: where $S_t$ rounds to 1, $1 - S_t$ is 0 in floating "
            "point, so on the block $t = c$ the code computes $S_t \\sum_{n \\ne t} S_n x_j$, "
            "which keeps every digit (the probabilities sum to 1).",
            shortcut,
            stable,
            relation="=>",
            given=((Sum(S[n], (n, 1, C)), sp.Integer(1)),),
            start=6,
        ),
    )
    identities = (
        Identity(
            "layer_jacobian",
            "the chain rule through the logits gives $S_t(\\delta_{tc} - S_c)\\,x_j$",
            long=chain_substituted,
            shortcut=shortcut,
            explicit=explicit_chain_rule,
            explicit_sizes=every(C=range(2, 6), D=range(1, 4)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "layer_jacobian_columns_sum_to_zero",
            "the derivatives of all outputs by one weight add up to 0",
            long=column_sum,
            shortcut=sp.Integer(0),
            assumptions={outputs_total: sp.Integer(1)},
            explicit=explicit_column_sums,
            explicit_sizes=every(C=range(2, 6), D=range(1, 3)),
            long_title="The sum over the outputs of the derivative by $W_{jc}$,",
            shortcut_title="zero,",
        ),
        Identity(
            "layer_jacobian_stable",
            "the form the code computes, $S_t(\\delta_{tc} \\sum_{n \\ne t} S_n - (1 - \\delta_{tc}) "
            "S_c)\\,x_j$, equals $S_t(\\delta_{tc} - S_c)\\,x_j$ given $\\sum_n S_n = 1$; with "
            "explicit matrices, it equals the chain-rule product",
            long=stable,
            shortcut=shortcut,
            assumptions={Sum(S[n], (n, 1, C)): sp.Integer(1)},
            explicit=explicit_stable_chain_rule,
            explicit_sizes=every(C=range(2, 6), D=range(1, 3)),
            long_title="The form the code computes, its sum evaluated,",
            shortcut_title="the shortcut,",
        ),
    )
    g = sp.IndexedBase("g")  # the gradient arriving at S from the loss
    vjp = Sum(g[t] * Derivative(S[t], W[j, c]), (t, 1, C))
    vjp_value = sp.factor(pull_out_of_sums(evaluate(Sum(g[t] * shortcut, (t, 1, C)))))
    cross_entropy_vjp = Sum(-y[t] / S[t] * shortcut, (t, 1, C))  # g_t = ∂XE/∂S_t = −y_t/S_t
    sections = (
        Section(
            "Vectorised, with shapes",
            "For one sample the derivative has three indices, so `layer_jacobian` returns an "
            "array of shape `(C, D, C)` (a batch adds a leading `B`): entry `[t, j, c]` is "
            "$\\partial S_t / \\partial W_{jc}$, with the indices counted from 0 in the code and "
            "from 1 in the maths. Each slice `[t]` is laid out like $W$ (inputs by classes); the "
            "figure below draws the five slices of the posts' example.\n\n"
            "| factor | shape |\n|---|---|\n| $x$ | $D$ |\n| $W$ | $D \\times C$ |\n"
            "| $z = W^T x$, $S$ | $C$ |\n| $\\partial S / \\partial z$ (softmax Jacobian) | $C \\times C$ |\n"
            "| $\\partial z / \\partial W$ | $C \\times D \\times C$ |\n"
            "| $\\partial S / \\partial W$ | $C \\times D \\times C$ (the posts flatten it to "
            "$C \\times CD$, class-major) |\n\n"
            "Training never needs this tensor. Backpropagation brings the gradient "
            "$g_t = \\partial L / \\partial S_t$ of a scalar loss and needs only the "
            "vector–Jacobian product, which SymPy collapses to an outer product: $x$ times "
            "the vector $g^T J$ of the softmax page, $D \\times C$ numbers, never $C \\times D "
            "\\times C$:",
            equations=((vjp, vjp_value),),
            text_after="With the cross-entropy, $g_t = -y_t/S_t$, and this becomes "
            "$x_j(S_c - y_c)$ because the labels add up to 1, $\\sum_t y_t = 1$ (without it, "
            "$x_j(S_c \\sum_t y_t - y_c)$): the exercise below, and the next page.",
        ),
    )
    exercises = (
        Exercise(
            "Write $\\partial S_t / \\partial W_{jc}$ with the entry $(t, c)$ of the softmax "
            "Jacobian. Why does the input index $j$ appear only in $x_j$?",
            sp.Eq(Derivative(S[t], W[j, c]), x[j] * Derivative(S[t], z[c])),
            _is_x_times_softmax_jacobian,
            answer="Because $W_{jc}$ enters only $z_c$, with slope $x_j$: the chain-rule sum keeps "
            "one term, $\\partial S_t / \\partial z_c$ times $x_j$.",
            title="The layer's Jacobian from the softmax Jacobian",
        ),
        Exercise(
            "The cross-entropy $XE = -\\sum_t y_t \\log S_t$ sends back "
            "$g_t = \\partial XE / \\partial S_t = -y_t / S_t$. Collapse the vector–Jacobian "
            "product $\\sum_t g_t \\, \\partial S_t / \\partial W_{jc}$. Which property of the "
            "labels does the short answer need?",
            sp.Eq(cross_entropy_vjp, x[j] * (S[c] - y[c])),
            Identity(
                "layer_jacobian_cross_entropy_vjp",
                "with $g_t = -y_t/S_t$, the vector–Jacobian product is $x_j(S_c - y_c)$, given "
                "$\\sum_t y_t = 1$",
                long=cross_entropy_vjp,
                shortcut=x[j] * (S[c] - y[c]),
                assumptions={Sum(y[t], (t, 1, C)): sp.Integer(1)},
                long_title="The vector–Jacobian product with the cross-entropy's $g$,",
                shortcut_title="$x_j(S_c - y_c)$,",
            ),
            answer="$-\\frac{y_t}{S_t} S_t(\\delta_{tc} - S_c) x_j = -y_t(\\delta_{tc} - S_c) x_j$: "
            "the $S_t$ cancels, and the sum over $t$ gives $x_j(S_c \\sum_t y_t - y_c)$. The labels "
            "add up to 1 (a one-hot $y$, or any distribution), so it is $x_j(S_c - y_c)$: the "
            "prediction minus the label, times the input. SymPy proves it for symbolic sizes, "
            "given $\\sum_t y_t = 1$.",
            title="The gradient of the cross-entropy, through the layer",
        ),
    )
    others_of = sp.IndexedBase("others")
    inputs_and_weights = (
        Param("x", x, ("D",), doc="inputs"),
        Param("W", W, ("D", "C"), batched=False, doc="weights, inputs x classes"),
    )
    kernels = (
        Kernel(
            name="summation",
            summary="The weighted sums z = Wᵀx of a layer with weights W of shape (D, C).",
            params=inputs_and_weights,
            body=(),
            returns=Assign(z, (c,), summation(c)),
            returns_doc="logits, shape (..., C)",
            reference="x @ W",
            conditioning="z_c = Σ_d W_dc x_d adds terms of both signs: where they cancel, z_c is "
            "small but its rounding error is relative to Σ_d |W_dc x_d|, so no bound in ulps of "
            "z_c holds (the norm-wise error, in ulps of the largest entry, stays small).",
        ),
        Kernel(
            name="summation_jacobian",
            summary="∂z_k/∂W_jc for z = Wᵀx: entry [k, j, c].",
            params=inputs_and_weights,
            body=(),
            returns=Assign(Derivative(z[k], W[j, c]), (k, j, c), dz_dw),
            notes="Only W's shape is used: z is linear in W, so its derivative does not depend on W.",
            returns_doc="shape (..., C, D, C); the posts' DZ (C·D, C), rows class-major, is "
            "`xp.permute_dims(summation_jacobian(x, W), (2, 1, 0)).reshape(C * D, C)`",
            derivative=DerivativeOf("summation(x, W)", wrt="W"),
        ),
        Kernel(
            name="layer_jacobian",
            summary="∂S_t/∂W_jc for S = softmax(Wᵀx): entry [t, j, c].",
            params=inputs_and_weights,
            body=(
                Assign(S, (t,), sp.Function("softmax")(sp.Function("summation")(x, W))),
                Assign(others_of, (t,), others),
            ),
            returns=Assign(
                Derivative(S[t], W[j, c]), (t, j, c), stable.xreplace({others: others_of[t]})
            ),
            math=stable,
            returns_doc="shape (..., C, D, C); the posts' DL (C, C·D), columns class-major, is "
            "`xp.permute_dims(layer_jacobian(x, W), (0, 2, 1)).reshape(C, C * D)`",
            derivative=DerivativeOf("softmax(summation(x, W))", wrt="W"),
            conditioning="It computes S = softmax(Wᵀx) itself, so it inherits the cancellation in "
            "z = Wᵀx and the rounding of z_i − max z in softmax.",
        ),
    )
    S_column, x_column = sp.MatrixSymbol("S", C, 1), sp.MatrixSymbol("x", D, 1)
    matrix_result = MatrixResult(
        group="one_layer",
        lhs=sp.MatrixSymbol("J_W", C, C * D),
        rhs=sp.kronecker_product(sp.DiagMatrix(S_column) - S_column * S_column.T, x_column.T),
        index_form=shortcut,
        entry=((t,), (c, j)),
        text="How each output moves with each weight, the weights in the posts' class-major "
        "order (column $(c - 1)D + j$): the softmax Jacobian, each entry times $x^T$ "
        "($\\otimes$: the Kronecker product).",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="layer_jacobian",
        title="The softmax layer's Jacobian",
        summary="How each output $S_t$ of the layer $S = \\operatorname{softmax}(W^T x)$ changes "
        "with each weight $W_{jc}$ (Part 2).",
        definitions=(
            Definition(
                z[k],
                summation(k),
                "the weighted sum for class $k$: $z = W^T x$. On this page "
                "$j$ and $d$ count inputs; $t$, $c$ and $k$ count classes.",
            ),
            Definition(S[t], softmax(t), "the softmax of the logits"),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "The hypothesis h = softmax(Wᵀx)",
                "softmax(summation(posts.X, posts.W))",
                printed="PART3_S",
                text="Part 2's example layer: 3 inputs `posts.X` and the weights `posts.W` of "
                "shape (3, 5). Its printout of $h$ was lost from the capture; Part 3 prints "
                "the same $h$ as $S$, and that is what we compare with.",
            ),
            Example(
                "DZ, weights class-major",
                "summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(15, 5)",
                printed="PART2_DZ",
                text="Part 2's $\\partial z / \\partial W$: one row per weight, in the posts' "
                "class-major order (row $c \\cdot D + j$, counted from 0, holds $W_{jc}$), one "
                "column per logit. Our array `[k, j, c]` is transposed and flattened into "
                "that layout.",
            ),
            Example(
                "DL = DS · DZᵀ",
                "layer_jacobian(posts.X, posts.W).transpose(0, 2, 1).reshape(5, 15)",
                printed="PART2_DL_SHORTCUT",
                text="Part 2's $\\partial S / \\partial W$, one row per output $S_t$, one "
                "column per weight (class-major), as printed by its shortcut version.",
            ),
        ),
        sections=sections,
        exercises=exercises,
        errata=(
            Erratum(
                "Part 2's long product DS · DZᵀ prints `0.0810` in row 2 where the shortcut "
                "version of the same entry prints `0.08105`: one digit was lost. The entry is:",
                "layer_jacobian(posts.X, posts.W)[1, 1, 1]",
            ),
            Erratum(
                "Part 2 says the matrix of derivatives of $z$ by the weights has dimensions "
                "$(K, ij)$, one row per logit, but the DZ it prints has one row per weight and one "
                "column per logit, $(ij, K)$: 15 rows and 5 columns for its 3 inputs and 5 classes. "
                "The printed layout is the one its product $DL = DS \\cdot DZ^T$ needs (with "
                "$(K, ij)$ it would be $DS \\cdot DZ$). The shape of our DZ in the posts' layout, "
                "the one the worked example above compares with the printout:",
                "summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(15, 5).shape",
            ),
            Erratum(
                "Part 2 ends by saying that to update each weight we should sum the adjustments "
                "in its column of DL, that is $\\sum_t \\partial S_t / \\partial W_{jc}$. That sum "
                "is always 0: the outputs of a softmax add up to 1 whatever the weights, so a "
                "change of any weight raises some outputs exactly as much as it lowers the "
                'others. SymPy proves it above ("the derivatives of all outputs by one weight '
                "add up to 0\", for symbolic sizes and with explicit matrices), and the posts' "
                "example shows it, up to rounding:",
                "layer_jacobian(posts.X, posts.W).sum(axis=0)",
                followed_by=(
                    (
                        "An update built that way never moves the weights. What training needs is "
                        "the derivative of one number, a loss that measures how wrong $S$ is: Part 3 "
                        "(the [cross-entropy gradient](cross-entropy.md)) weights each output's "
                        "derivative by $\\partial XE / \\partial S_t$ before summing.",
                        "",
                    ),
                ),
            ),
        ),
        figures=(
            Figure(
                "layer-jacobian-heatmap.svg",
                "The layer's Jacobian for the posts' example (the posts' DL): each block of three "
                "columns is one class; only the block of S_t's own class has positive entries, "
                "because every x_j > 0 here (the sign is that of S_t(δ_tc − S_c), times x_j).",
                _layer_jacobian_heatmap,
            ),
            Figure(
                "layer-jacobian-slices.svg",
                "The (C, D, C) array layer_jacobian(x, W) for the posts' example, one slice per "
                "output S_t: slice t is laid out like W, input j down, class c across. In slice t "
                "only column c = t is positive (again because every x_j > 0 here), and each "
                "column is x times one number, S_t(δ_tc − S_c).",
                _jacobian_slices,
            ),
        ),
        results={"summation_derivative": dz_dw, "layer_jacobian": shortcut},
    )
