"""Part 3: the cross-entropy loss XE = −Σ y log S, differentiated with respect to W."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy as sp
from sympy import Derivative, Matrix, Sum

from derive.derivations import result
from derive.figures import annotated_heatmap
from derive.floats import epsilon_ratio_log2, unicode_power, unicode_scientific
from derive.model import (
    C,
    D,
    S,
    W,
    class_index,
    cross_entropy,
    explicit_labels,
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
    LabelsForm,
    MatrixResult,
    OptionsForm,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import chain_rule, evaluate, pull_out_of_sums, sums_of


def explicit_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DXE · DS · DZ with explicit matrices, and the shortcut (S_c − y_c)x_j.

    The one-hot fact is imposed by writing the last label as 1 − Σ of the
    others; both sides are functions of independent logits z.
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    xs = layer.x
    logits = explicit_vector("z", n_classes)
    labels = explicit_labels(n_classes)
    probability_symbols = explicit_vector("S", n_classes, positive=True)
    loss = -sum(labels[c] * sp.log(probability_symbols[c]) for c in range(n_classes))
    probabilities = explicit_softmax(logits)
    dxe_ds = (
        Matrix([loss])
        .jacobian(probability_symbols)
        .subs(dict(zip(probability_symbols, probabilities)))
    )
    ds_dz = probabilities.jacobian(logits)
    dz_dw = layer.z.jacobian(layer.weights)  # weights class-major
    shortcut = Matrix(
        1,
        n_inputs * n_classes,
        lambda _, w: (probabilities[w // n_inputs] - labels[w // n_inputs]) * xs[w % n_inputs],
    )
    return dxe_ds * ds_dz * dz_dw, shortcut


def explicit_labels_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DXE · DS · DZ with y = e_ℓ written out, for every label ℓ, and (S_c − y_c)x_j with the same y.

    One row per label ℓ (0-based here): the chain rule of the loss −log S_ℓ,
    against the one-hot form of the shortcut with e_ℓ in place of y.
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    xs = layer.x
    logits = explicit_vector("z", n_classes)
    probability_symbols = explicit_vector("S", n_classes, positive=True)
    probabilities = explicit_softmax(logits)
    ds_dz = probabilities.jacobian(logits)
    dz_dw = layer.z.jacobian(layer.weights)  # weights class-major
    longs, shortcuts = [], []
    for label in range(n_classes):
        one_hot = [sp.Integer(int(c == label)) for c in range(n_classes)]
        loss = -sum(one_hot[c] * sp.log(probability_symbols[c]) for c in range(n_classes))
        dxe_ds = (
            Matrix([loss])
            .jacobian(probability_symbols)
            .subs(dict(zip(probability_symbols, probabilities)))
        )
        longs.append(dxe_ds * ds_dz * dz_dw)
        shortcuts.append(
            Matrix(
                1,
                n_inputs * n_classes,
                lambda _, w: (
                    (
                        probabilities[w // n_inputs] - one_hot[w // n_inputs]  # noqa: B023 - used at once
                    )
                    * xs[w % n_inputs]
                ),
            )
        )
    return Matrix.vstack(*longs), Matrix.vstack(*shortcuts)


# What the functions take as targets: the runtime checks that each row sums to 1.
LABEL_ROWS = "label rows summing to 1 (one-hot, or any distribution)"

# Said in the docstrings of the functions of S: the formula is computed as written.
LOSS_NOTE = (
    "A term whose y is 0 contributes 0 (the limit of y log S as y → 0; the code takes the log "
    "of 1 there instead of S), so a zero probability gives inf only where its y is not 0, and "
    "0 · log 0 is 0, as in scikit-learn's log_loss. Integer class labels take the label's "
    "entry, −log s_ℓ, without a one-hot row."
)

GRAD_NOTE = (
    "The derivative of the loss as `cross_entropy` computes it, where a term whose y is 0 "
    "is 0 whatever s: so the result is 0 where y_t is 0, at s_t = 0 too (the code divides "
    "−y_t by 1 there, never 0/0), and −y_t/s_t elsewhere. A probability of exactly 0 under "
    "a positive y_t (softmax of logits far apart) gives −inf; from the logits, "
    "`cross_entropy_from_logits_grad` never does."
)


def _collapsed_selection(derivative: sp.Expr, i: sp.Idx, t: sp.Idx) -> sp.Expr:
    """Σ_i of a selection whose every branch is 0 or a multiple of δ_it, as its term i = t:
    SymPy's derivative of the loss as computed, −Σ_i (0 where y_i = 0, δ_it y_i/S_i
    elsewhere), becomes (0 where y_t = 0, −y_t/S_t elsewhere)."""
    (total,) = derivative.atoms(Sum)
    delta = sp.KroneckerDelta(i, t)
    if total.function.xreplace({delta: 0}) != 0:
        raise ValueError(f"not a sum over a Kronecker delta δ_{i}{t}: {total}")
    return sp.piecewise_fold(derivative.xreplace({total: total.function.xreplace({i: t})}))


def _entropy_plus_divergence(answer) -> bool:
    """Both sides are sums over the same i, entering linearly: compare them term by term (y_i, S_i > 0)."""
    sums = answer.lhs.atoms(Sum) | answer.rhs.atoms(Sum)
    if len({total.limits for total in sums}) != 1:
        return False
    ((i, _, _),) = next(iter(sums)).limits
    positive = {y[i]: sp.Symbol("y_i", positive=True), S[i]: sp.Symbol("S_i", positive=True)}
    termwise = (answer.lhs - answer.rhs).xreplace({total: total.function for total in sums})
    return sp.simplify(sp.expand_log(termwise.xreplace(positive), force=True)) == 0


def _smoothed_targets(answer) -> bool:
    """(1 − ε)y + ε/C sums to 1 when y does, so the result S − y holds with it in place of y."""
    i, c = class_index("i"), class_index("c")
    epsilon = sp.Symbol("epsilon", positive=True)
    total = pull_out_of_sums(evaluate(Sum((1 - epsilon) * y[i] + epsilon / C, (i, 1, C))))
    (labels_total,) = sums_of(y, total)
    sums_to_one = sp.simplify(total.xreplace({labels_total: 1})) == 1
    return (
        sums_to_one and sp.expand(answer.rhs - (S[c] - ((1 - epsilon) * y[c] + epsilon / C))) == 0
    )


def _laplace_penalty(answer) -> bool:
    """The answer's two sides are equal (the logarithm expanded), and its right side minus the
    constant log(λ/2) is λ|W|: the L1 penalty."""
    decay, weight = sp.Symbol("lambda", positive=True), sp.Symbol("w", real=True)
    equal = sp.simplify(sp.expand_log(answer.lhs - answer.rhs, force=True)) == 0
    penalty = sp.simplify(answer.rhs + sp.log(decay / 2) - decay * sp.Abs(weight)) == 0
    return equal and penalty


def _gradient_check(fig, generated, posts) -> None:
    """Relative error of finite differences against weight_grad, against the step h."""
    steps = np.logspace(-13, -1, 49)

    def worst_relative_error(dtype, central: bool, h: float) -> float:
        x, W, y = posts.X.astype(dtype), posts.W.astype(dtype), posts.Y.astype(dtype)

        def loss(weights) -> float:
            return float(generated.cross_entropy_from_logits(generated.summation(x, weights), y))

        analytic = generated.weight_grad(x, W, y).astype(float)
        numeric = np.zeros_like(analytic)
        for index in np.ndindex(W.shape):
            up, down = W.copy(), W.copy()
            up[index] += dtype(h)
            if central:
                down[index] -= dtype(h)
            taken = float(up[index]) - float(down[index])  # the step as rounded in this dtype
            if taken == 0:
                return np.nan  # h is below the dtype's resolution at this weight: no step at all
            numeric[index] = (loss(up) - loss(down)) / taken
        denominator = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-300)
        return float(np.max(np.abs(analytic - numeric) / denominator))

    ax = fig.subplots()
    for dtype, central, style in (
        (np.float64, True, "-"),
        (np.float64, False, "--"),
        (np.float32, True, ":"),
    ):
        errors = [worst_relative_error(dtype, central, h) for h in steps]
        label = f"{'central' if central else 'forward'} differences, {np.dtype(dtype).name}"
        ax.loglog(steps, np.maximum(errors, 1e-17), style, label=label)  # nan: not drawn
    ax.axhline(1e-7, color="gray", linewidth=0.8)
    ax.text(steps[0], 1.5e-7, "1e-7 (CS231n: above this, suspicious)", fontsize=7, color="gray")
    ax.set_xlabel("step h")
    ax.set_ylabel("worst relative error over the 15 weights")
    ax.set_title("Finite differences against weight_grad, posts' example")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _gradient_heatmap(fig, generated, posts) -> None:
    from derive.figures import subscript

    gradient = generated.weight_grad(posts.X, posts.W, posts.Y)
    D, C = gradient.shape
    annotated_heatmap(
        fig,
        gradient,
        [f"class {c + 1}" for c in range(C)],
        [f"x{subscript(j + 1)}" for j in range(D)],
        r"$\partial XE/\partial W_{jc}$, laid out like $W$ (true class 3)",
    )


def weight_grad_options(X, W, Y, P, b, c, returned, error_share) -> OptionsForm:
    """weight_grad with PyTorch's options: Σ_b x_bj g_bc, g the options page's stable gradient
    of each sample; `reduce_samples` divides by the mean's denominator."""
    from derive.derivations.cross_entropy_options import (
        IGNORE_INDEX,
        LABEL_SMOOTHING,
        WEIGHT,
        a,
        kappa,
        option_params,
        w,
    )

    K, A = sp.IndexedBase("kappa"), sp.IndexedBase("a")
    P_others, A_others = sp.IndexedBase("others"), sp.IndexedBase("a_others")
    g = sp.IndexedBase("g")  # each sample's gradient in the logits
    coefficient = result("cross_entropy_options", "coefficient", c=c)
    stable = result("cross_entropy_options", "stable_gradient", j=c)
    (a_sum,) = [s for s in stable.atoms(Sum) if s.has(a)]
    (s_sum,) = [s for s in stable.atoms(Sum) if s.has(S)]
    batch = {y[c]: Y[b, c], kappa: K[b], a[c]: A[b, c], S[c]: P[b, c]}
    return OptionsForm(
        options=(WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING),
        params=option_params(w, K),
        body=(
            Assign(P, (b, c), sp.Function("softmax")(sp.Function("summation")(X, W))),
            Assign(A, (b, c), coefficient.xreplace(batch)),
            Assign(P_others, (b, c), _in_batch(s_sum, S, P, b)),
            Assign(A_others, (b, c), _in_batch(a_sum, a, A, b)),
            Assign(
                g,
                (b, c),
                stable.xreplace({a_sum: A_others[b, c], s_sum: P_others[b, c]}).xreplace(batch),
            ),
        ),
        returns=replace(returned, expression=returned.expression.xreplace({error_share: g})),
        reduction="mean",
        gradient=True,
        derivative=DerivativeOf(
            "cross_entropy_from_logits(summation(x, W), y, **options, reduction='mean')",
            wrt="W",
            kind="reduced",
        ),
    )


def _in_batch(total: Sum, base: sp.IndexedBase, rows: sp.IndexedBase, b: sp.Idx) -> Sum:
    """Σ_m f(base_m) as Σ_m f(rows_bm): the same sum for each sample b of a batch."""
    m = total.limits[0][0]
    return Sum(total.function.xreplace({base[m]: rows[b, m]}), *total.limits)


def derive():
    t, c, k = class_index("t"), class_index("c"), class_index("k")  # the loss sums over i
    j = input_index("j")
    ds_dw = result("layer_jacobian", "layer_jacobian", t=t, c=c, j=j)  # S_t(δ_tc − S_c)x_j

    loss = cross_entropy()
    XE = sp.Symbol("XE")
    # A term whose y_i is 0 is 0 (the limit), even where S_i is 0: the code takes log 1 there.
    i, ell = class_index("i"), class_index("ell")
    s_or_one = sp.IndexedBase("s_or_one")
    kept = sp.Piecewise((1, sp.Eq(y[i], 0)), (S[i], True))
    selected_loss = -Sum(y[i] * sp.log(s_or_one[i]), (i, 1, C))
    kept_loss = selected_loss.xreplace({s_or_one[i]: kept})
    at_label = loss.xreplace({y[i]: sp.KroneckerDelta(i, ell)})  # y = e_ℓ
    loss_at_label = evaluate(at_label)  # −log S_ℓ
    dxe_ds = evaluate(sp.diff(loss, S[t]))
    # The derivative of the loss as computed: 0 where y_t = 0 (that term is 0 · log 1, whatever
    # S_t), −y_t/S_t elsewhere; the code divides −y_t by the loss's own selection.
    dxe_ds_kept = _collapsed_selection(sp.diff(kept_loss, S[t]), i, t)
    kept_s = sp.IndexedBase("\\tilde{S}")  # the page's name for s_or_one
    dxe_ds_as_computed = -y[t] / kept_s[t]
    chain_for_three = chain_rule(XE, S, 3, W[j, c])
    chain = Sum(Derivative(XE, S[t]) * Derivative(S[t], W[j, c]), (t, 1, C))
    # kept apart (UnevaluatedExpr survives the build cache's pickling; Mul(evaluate=False) does not)
    substituted_uncancelled = Sum(sp.UnevaluatedExpr(dxe_ds) * sp.UnevaluatedExpr(ds_dw), (t, 1, C))
    chain_substituted = Sum(dxe_ds * ds_dw, (t, 1, C))
    collapsed = pull_out_of_sums(evaluate(chain_substituted))
    (labels_total,) = sums_of(y, collapsed)
    one_hot = {labels_total: sp.Integer(1)}
    shortcut = sp.factor(collapsed.xreplace(one_hot))

    # Class-index labels: y = e_ℓ, y_t = δ_tℓ. Σ_t δ_tℓ = 1 holds for 1 ≤ ℓ ≤ C: nothing to assume.
    ell = class_index("ell")
    as_labels = {y[t]: sp.KroneckerDelta(t, ell)}
    chain_with_labels = Sum(dxe_ds.xreplace(as_labels) * ds_dw, (t, 1, C))
    labels_shortcut = sp.factor(evaluate(chain_with_labels))
    one_hot_at_label = shortcut.xreplace({y[c]: sp.KroneckerDelta(c, ell)})

    B = sp.Symbol("B", integer=True, positive=True)
    b = sp.Idx("b", (1, B))
    X, P, Y = sp.IndexedBase("x"), sp.IndexedBase("S"), sp.IndexedBase("y")
    XE_b, Z_b, d = sp.IndexedBase("XE"), sp.IndexedBase("z"), input_index("d")
    # sample b's own loss, probabilities and logits (row b of X, S, Y, Z): the mean's names
    batched = (
        (XE_b[b], -Sum(Y[b, t] * sp.log(P[b, t]), (t, 1, C))),
        (P[b, c], sp.exp(Z_b[b, c]) / Sum(sp.exp(Z_b[b, k]), (k, 1, C))),
        (Z_b[b, c], Sum(W[d, c] * X[b, d], (d, 1, D))),
    )
    labels_sum = ((Sum(y[t], (t, 1, C)), sp.Integer(1)),)  # Σ_t y_t = 1
    batch_labels = ((Sum(Y[b, t], (t, 1, C)), sp.Integer(1)),)  # the same, for every sample b
    per_sample = shortcut.xreplace({S[c]: P[b, c], y[c]: Y[b, c], x[j]: X[b, j]})
    batch_mean = Sum(per_sample, (b, 1, B)) / B
    L = sp.Symbol("L")  # the mean loss of a batch

    # The vectorised forms: matrices of named shapes (a sample is a row of X, S, Y).
    ds_dz = result("softmax_jacobian", "jacobian", i=t, j=k)
    logit_sum = pull_out_of_sums(evaluate(Sum(dxe_ds * ds_dz, (t, 1, C))))
    (labels_in_logit_sum,) = sums_of(y, logit_sum)
    logit_grad = sp.expand(logit_sum.xreplace({labels_in_logit_sum: sp.Integer(1)}))  # S_k − y_k
    bias = sp.IndexedBase("beta")
    bias_grad = evaluate(Sum(logit_grad * sp.diff(summation(k) + bias[k], bias[c]), (k, 1, C)))
    decay = sp.Symbol("lambda", positive=True)
    penalty = decay / 2 * Sum(Sum(W[d, k] ** 2, (d, 1, D)), (k, 1, C))
    penalty_grad = evaluate(sp.diff(penalty, W[j, c]))
    # a Gaussian of mean 0 and variance 1/λ, for each weight: its −log is the penalty's term
    gaussian_prior = sp.sqrt(decay / (2 * sp.pi)) * sp.exp(-decay * W[d, k] ** 2 / 2)
    x_col, s_col, y_col = (sp.MatrixSymbol(n, m, 1) for n, m in (("x", D), ("S", C), ("y", C)))
    X_rows, S_rows, Y_rows = (sp.MatrixSymbol(n, B, m) for n, m in (("X", D), ("S", C), ("Y", C)))
    G = sp.MatrixSymbol("G", D, C)
    batch = X_rows.T * (S_rows - Y_rows) / B

    steps = (
        Step(
            "Derivative of the loss",
            "Differentiate the sum term by term: $\\partial S_i / \\partial S_t = \\delta_{it}$, so "
            "only the term $i = t$ survives, and $d(\\log S)/dS = 1/S$.",
            Derivative(loss, S[t]),
            dxe_ds,
            key="loss-derivative",
        ),
        Step(
            "Chain rule, as SymPy applies it (for C = 3)",
            "$W_{jc}$ reaches the loss through every output. SymPy, given $XE$ as an unknown "
            "function of three unknown functions $S_1, S_2, S_3$ of $W_{jc}$, returns one term "
            "per output.",
            *chain_for_three,
            start="the loss, which depends on $W_{jc}$ through the outputs",
            checked="explicit",  # written for C = 3: checked at C = 3
            sizes=({"C": 3, "D": 2},),
        ),
        Step(
            "Substitute the two Jacobians",
            "With $C$ classes there is one such term for each $S_t$: the sum on the left. "
            "$\\partial XE / \\partial S_t$ comes from {step:loss-derivative}, $\\partial S_t / "
            "\\partial W_{jc}$ from the layer page.",
            chain,
            substituted_uncancelled,
            start="the chain rule for $C$ classes",
        ),
        Step(
            "Cancel $S_t$",
            "$S_t$ divides and multiplies, and cancels. That needs $S_t \\neq 0$, which holds: "
            "every softmax output is $e^{z_t}$, positive, over a positive sum, so $S_t > 0$.",
            substituted_uncancelled,
            chain_substituted,
            key="cancel-s",
        ),
        Step(
            "Collapse the sum",
            "The delta keeps the term $t = c$; factors without $t$ leave the sum.",
            chain_substituted,
            collapsed,
        ),
        Step(
            "The targets sum to 1: Σ y = 1",
            "The only fact about $y$ used is that its entries add up to 1, not that it is "
            "one-hot. So the result holds for any target distribution: one-hot labels, soft "
            "targets, label-smoothed targets. SymPy cannot know it; it is supplied here, and only here.",
            collapsed,
            shortcut,
            relation="=>",
            given=labels_sum,
        ),
        Step(
            "Class-index labels: 1 subtracted at the label",
            "Training loops pass each sample's class $\\ell$, not a one-hot row: $y = e_\\ell$, "
            "$y_t = \\delta_{t\\ell}$. Put it into the chain rule and the delta collapses the sum with no "
            "assumption at all ($\\sum_t \\delta_{t\\ell} = 1$ for any class $\\ell$): $S - y$ is $S$ with 1 "
            "subtracted at the label, and no one-hot matrix needs to exist. The generated functions "
            "compute it so when given integer labels.",
            chain_with_labels,
            labels_shortcut,
            start="{step:cancel-s}'s sum with $y_t = \\delta_{t\\ell}$",
        ),
        Step(
            "Mean over a batch",
            "Name $L = \\frac{1}{B}\\sum_b XE_b$ the mean loss of a batch of $B$ samples, the "
            "number training minimises. The derivative of a mean is the mean of the "
            "derivatives, each sample $b$ with its own $x$, $S$ and $y$ (rows $b$ of $X$, $S$ "
            "and $Y$), and its own targets summing to 1.",
            Derivative(Sum(XE_b[b], (b, 1, B)) / B, W[j, c]),
            batch_mean,
            relation="=>",
            where=batched,
            given=batch_labels,
            start="the mean loss of a batch",
        ),
        Step(
            "Why the code takes the log of 1 where y is 0",
            "A probability of exactly 0 (softmax of logits far apart) has $\\log S_i = -\\infty$, "
            "and $0 \\cdot (-\\infty)$ is nan in floating point, although a term whose $y_i$ "
            "is 0 is 0 for every $S_i > 0$, and so is its limit as $S_i \\to 0$ "
            "($0 \\cdot \\log 0 = 0$, as in scikit-learn's `log_loss`). The code takes "
            "$\\log 1 = 0$ where $y_i = 0$ (`xp.where`) and $\\log S_i$ elsewhere: a zero "
            "probability gives $+\\infty$ only where its $y_i$ is not 0. With integer class "
            "labels, $y_i = \\delta_{i\\ell}$, the sum is one term, $-\\log S_\\ell$, gathered "
            "at the label (proved below).",
            loss,
            kept_loss,
            start="the loss",
            checked="numeric",  # a selection on y_i = 0: SymPy cannot decide it for symbolic y
        ),
        Step(
            "Its derivative where y is 0",
            "Differentiate the loss as the code computes it, not the formula: where $y_i = 0$ the "
            "term is $0 \\cdot \\log 1$, which does not depend on $S_i$, so its derivative is 0, "
            "at $S_i = 0$ too; elsewhere it is {step:loss-derivative}'s $-y_t / S_t$. SymPy differentiates the "
            "selection branch by branch, and the Kronecker delta keeps the term $i = t$. Written "
            "as in {step:loss-derivative}, $-y_t / S_t$ is $0/0$, nan, at $y_t = S_t = 0$.",
            Derivative(kept_loss, S[t]),
            dxe_ds_kept,
            start="the loss as the code computes it (the previous step)",
            checked="numeric",  # a selection on y_t = 0: SymPy cannot decide it for symbolic y
            key="derivative-as-computed",
        ),
        Step(
            "The gradient with the loss's selection",
            "The code divides $-y_t$ by the same selection as the loss, $\\tilde S_t$ (`s_or_one`): "
            "1 where $y_t = 0$ and $S_t$ elsewhere. That gives $-0/1 = 0$ there and $-y_t / S_t$ "
            "elsewhere, with one division and no $0/0$.",
            dxe_ds_kept,
            dxe_ds_as_computed,
            where=((kept_s[t], kept.xreplace({i: t})),),
            checked="numeric",  # a selection on y_t = 0: SymPy cannot decide it for symbolic y
            key="selection-gradient",
        ),
        Step(
            "The first branch, where the target is 0",
            "The first branch of {step:derivative-as-computed}'s derivative, checked on its own: with "
            "$y_t = 0$ the derivative of the loss as computed is 0 for any $S_t$ (the checks "
            "of {steps:derivative-as-computed and selection-gradient} draw $y$ away from 0, and so "
            "reach only the second).",
            Derivative(kept_loss, S[t]),
            sp.Integer(0),
            relation="=>",
            given=((y[t], 0),),
            start="the derivative of the loss as computed, where $y_t = 0$",
            checked="explicit",  # y_t = 0 substituted: the selection's first branch, exactly
        ),
        Step(
            "The likelihood of a data set is the summed loss",
            "Read $S_b$ as the probabilities the model gives sample $b$'s classes. With a "
            "one-hot $y_b$ the likelihood of its label is $\\prod_c S_{bc}^{y_{bc}}$, and the "
            "samples are independent, so the likelihood of the whole batch is a product over "
            "$b$. Its $-\\log$ turns products into sums: the summed cross-entropy. Minimising "
            "the loss is maximising the likelihood.",
            -sp.log(sp.Product(sp.Product(P[b, c] ** Y[b, c], (c, 1, C)), (b, 1, B))),
            Sum(XE_b[b], (b, 1, B)),
            where=batched,
            start="the negative log-likelihood of a batch",
            checked="numeric",  # logarithms of products: SymPy does not expand them unforced
        ),
        Step(
            "L2 as a Gaussian prior: the MAP estimate",
            "Give every weight an independent Gaussian prior of mean 0 and variance "
            "$1/\\lambda$. Its negative log is the L2 penalty $\\frac{\\lambda}{2}\\sum W^2$ "
            "plus a constant that does not depend on $W$: minimising the loss plus the "
            "penalty maximises likelihood times prior, the posterior's mode (maximum a "
            "posteriori, MAP). A larger $\\lambda$ is a narrower prior, and the penalty's "
            "gradient $\\lambda W_{jc}$ (below) pulls each weight towards its mean, 0.",
            -Sum(Sum(sp.log(gaussian_prior), (d, 1, D)), (k, 1, C)),
            penalty - D * C / 2 * sp.log(decay / (2 * sp.pi)),
            start="the negative log of the prior $\\prod_{d,k} \\mathcal{N}(W_{dk};\\, 0, 1/\\lambda)$",
            checked="numeric",  # the logarithm of a Gaussian: SymPy does not expand it unforced
        ),
    )
    identities = (
        Identity(
            "cross_entropy_labels",
            "with class-index labels, $y_i = \\delta_{i\\ell}$, the loss $-\\sum_i y_i \\log "
            "S_i$ is $-\\log S_\\ell$: the entry at the label",
            long=at_label,
            shortcut=loss_at_label,
            long_title="The loss with $y = e_\\ell$,",
            shortcut_title="the entry at the label,",
        ),
        Identity(
            "cross_entropy_weight_grad",
            "the chain rule through the outputs gives $(S_c - y_c)\\,x_j$, when $\\sum_i y_i = 1$",
            long=chain_substituted,
            shortcut=shortcut,
            assumptions=one_hot,
            explicit=explicit_chain_rule,
            explicit_sizes=every(C=range(2, 6), D=range(1, 4)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
    )
    identities += (
        Identity(
            "cross_entropy_weight_grad_labels",
            "with class-index labels, $y_t = \\delta_{t\\ell}$, the chain rule gives $(S_c - \\delta_{c\\ell})\\,x_j$: "
            "the one-hot shortcut $(S_c - y_c)\\,x_j$ at $y = e_\\ell$, with no assumption on $y$",
            long=chain_with_labels,
            shortcut=one_hot_at_label,
            explicit=explicit_labels_chain_rule,
            explicit_sizes=every(C=range(2, 6), D=range(1, 3)),
            long_title="The chain-rule product with $y = e_\\ell$,",
            shortcut_title="the one-hot shortcut at $y = e_\\ell$,",
        ),
    )
    error_share = sp.IndexedBase("error_share")  # each sample's share of the mean's error
    (sum_over_batch,) = batch_mean.atoms(Sum)
    share = (P[b, c] - Y[b, c]) / B
    L_b = sp.IndexedBase("ell")  # each sample's class label
    share_at_labels = share.xreplace({Y[b, c]: sp.KroneckerDelta(c, L_b[b])})
    as_computed = sum_over_batch.xreplace({sum_over_batch.function: X[b, j] * share})
    identities += (
        Identity(
            "weight_grad_as_computed",
            "dividing each sample's error by $B$ before the sum over the batch, as the code does, "
            "gives the batch mean",
            long=as_computed,
            shortcut=batch_mean,
            long_title="The sum the code computes,",
            shortcut_title="the mean of the per-sample gradients,",
        ),
    )
    probabilities_and_labels = (
        Param(
            "s", S, ("C",), doc="probabilities, e.g. the output of `softmax`", domain="probability"
        ),
        Param("y", y, ("C",), doc=LABEL_ROWS, one_hot=True),
    )
    returned = Assign(
        Derivative(L, W[j, c]),
        (j, c),
        sum_over_batch.xreplace({sum_over_batch.function: X[b, j] * error_share[b, c]}),
    )
    kernels = (
        Kernel(
            name="cross_entropy",
            summary="The categorical cross-entropy of probabilities s against targets y.",
            params=probabilities_and_labels,
            body=(Assign(s_or_one, (i,), kept),),
            returns=Assign(XE, (), selected_loss),
            math=loss,
            labels_form=LabelsForm(
                Param("y", ell, ("C",), doc="integer class labels", labels=True),
                body=(),
                returns=Assign(XE, (), loss_at_label),
            ),
            returns_doc="the loss of each sample, shape (...)",
            notes=LOSS_NOTE,
            reference="-(y * torch.log(s)).sum(dim=-1)",
        ),
        Kernel(
            name="cross_entropy_grad",
            summary="∂XE/∂S_t, the derivative of the cross-entropy with respect to the probabilities.",
            params=probabilities_and_labels,
            body=(Assign(s_or_one, (t,), kept.xreplace({i: t})),),
            returns=Assign(Derivative(XE, S[t]), (t,), -y[t] / s_or_one[t]),
            math=dxe_ds_kept,
            returns_doc="shape (..., C): the posts' `xe_dir(y, S)`",
            notes=GRAD_NOTE,
            derivative=DerivativeOf("cross_entropy(s, y)", wrt="s"),
        ),
        Kernel(
            name="weight_grad",
            summary="The gradient of the mean cross-entropy with respect to W, laid out like W.",
            params=(
                Param("x", X, ("D",), doc="inputs: one sample (D,) or a batch (..., D)"),
                Param("W", W, ("D", "C"), batched=False, doc="weights, inputs x classes"),
                Param("y", Y, ("C",), doc=f"{LABEL_ROWS}, with the batch shape of x", one_hot=True),
            ),
            body=(
                Assign(P, (b, c), sp.Function("softmax")(sp.Function("summation")(X, W))),
                # 1/B on the B x C errors, not on the D x C result: fewer divisions when D > B
                Assign(error_share, (b, c), share),
            ),
            returns=returned,
            math=batch_mean,
            matrix_form=batch,
            returns_doc="shape (D, C), like W; the posts' class-major vector is "
            "`weight_grad(x, W, y).T.ravel()`",
            flatten_batch=True,
            options_form=weight_grad_options(X, W, Y, P, b, c, returned, error_share),
            labels_form=LabelsForm(
                param=Param("y", L_b, ("C",), doc="integer class labels", labels=True),
                body=(
                    Assign(P, (b, c), sp.Function("softmax")(sp.Function("summation")(X, W))),
                    # S_bc − δ_{c ℓ_b}: 1 subtracted at each sample's label, in place in NumPy
                    Assign(error_share, (b, c), share_at_labels),
                ),
                returns=Assign(
                    Derivative(L, W[j, c]),
                    (j, c),
                    sum_over_batch.xreplace({sum_over_batch.function: X[b, j] * error_share[b, c]}),
                ),
            ),
            conditioning="Xᵀ(S − Y)/B adds terms of both signs over the batch and the classes: "
            "where they cancel, the error is relative to the sum of their magnitudes, not to the "
            "result (the norm-wise error stays small). "
            "S − Y is computed as written: for a sample predicted nearly certainly and correctly, "
            "S_c − 1 at its label is a rounding error of 1 (up to an ulp of 1), not the true "
            "−Σ_{k≠c} S_k (which cross_entropy_from_logits_grad computes); where the other "
            "samples' terms are smaller still (every sample such a one, or saturated hidden "
            "units), even the norm-wise error is of the order of the result.",
            derivative=DerivativeOf(
                "cross_entropy(softmax(summation(x, W)), y)", wrt="W", kind="batch_mean"
            ),
        ),
    )
    i = class_index("i")
    entropy = -Sum(y[i] * sp.log(y[i]), (i, 1, C))
    divergence = Sum(y[i] * sp.log(y[i] / S[i]), (i, 1, C))
    epsilon = sp.Symbol("epsilon", positive=True)
    exercises = (
        Exercise(
            "Give each weight a Laplace prior instead, of density "
            "$\\frac{\\lambda}{2} e^{-\\lambda |w|}$. Which penalty does the MAP estimate add "
            "to the loss?",
            sp.Eq(
                -sp.log(decay / 2 * sp.exp(-decay * sp.Abs(sp.Symbol("w", real=True)))),
                decay * sp.Abs(sp.Symbol("w", real=True)) - sp.log(decay / 2),
            ),
            _laplace_penalty,
            answer="Its negative log is $\\lambda |w| - \\log(\\lambda/2)$: the L1 penalty "
            "$\\lambda \\sum |W|$ plus a constant. Its gradient $\\lambda\\,\\mathrm{sign}(w)$ "
            "does not shrink with $w$, which is why L1 sets small weights exactly to 0 where "
            "L2 only makes them small. SymPy expands the logarithm and compares.",
            title="A Laplace prior",
        ),
        Exercise(
            "For a target distribution $y$ (entries positive, summing to 1), show that the "
            "cross-entropy is the entropy of $y$ plus the Kullback–Leibler divergence "
            "$\\mathrm{KL}(y \\,\\|\\, S) = \\sum_i y_i \\log(y_i / S_i)$. Why do both have the "
            "same gradient with respect to $W$?",
            sp.Eq(loss, entropy + divergence),
            _entropy_plus_divergence,
            answer="$\\log(y_i/S_i) = \\log y_i - \\log S_i$, term by term (SymPy checks it with "
            "$y_i, S_i > 0$). The entropy $-\\sum_i y_i \\log y_i$ does not depend on $W$, so its "
            "gradient is 0: minimising the cross-entropy minimises the divergence.",
            title="Cross-entropy, entropy and KL divergence",
        ),
        Exercise(
            "Label smoothing trains against $\\tilde y = (1 - \\varepsilon) y + \\varepsilon / C$ "
            "instead of a one-hot $y$. What is $\\partial XE / \\partial z_c$, and why does "
            "nothing on this page need to change?",
            sp.Eq(Derivative(XE, z[c]), S[c] - ((1 - epsilon) * y[c] + epsilon / C)),
            _smoothed_targets,
            answer="The derivation used only $\\sum_i y_i = 1$, and $\\tilde y$ sums to "
            "$(1 - \\varepsilon) + \\varepsilon = 1$ (SymPy checks it); so the gradient is "
            "$S - \\tilde y$, and $x_j(S_c - \\tilde y_c)$ with respect to the weights.",
            title="Label smoothing",
        ),
    )
    sections = (
        Section(
            "What S − y means",
            "The steps above show that the gradient with respect to $W_{jc}$ is $x_j$ times "
            "$S_c - y_c$, and "
            "the [page on the loss from the logits](cross-entropy-from-logits.md) shows that "
            "$S - y$ is exactly the gradient with respect to the logits $z$. It is *predicted "
            "minus observed*: $S$ is the distribution the model predicts, $y$ the one observed. "
            "The true class gets a negative entry when the model gives it less than all the "
            "probability, so gradient descent, which moves against the gradient, raises its "
            "logit; every other class gets a positive entry, the probability it wrongly took, "
            "and its logit is lowered. A perfect prediction, $S = y$, gives zero, and the "
            "entries always sum to 0, since both $S$ and $y$ sum to 1. For the posts' example "
            "(rows: $S$, $y$, and $S - y$ computed by `cross_entropy_from_logits_grad`):",
            call="np.stack([softmax(summation(posts.X, posts.W)), posts.Y, "
            "cross_entropy_from_logits_grad(summation(posts.X, posts.W), posts.Y)])",
            text_after="Why this loss: with a one-hot $y$, $XE = -\\log S_{\\text{true}}$, minus "
            "the log of the probability the model gives the class observed. Its sum over a "
            "data set is the negative log-likelihood of the labels, and its mean the average "
            "negative log-likelihood, so minimising either is maximum likelihood. For any target distribution, $XE$ is the entropy of $y$ "
            "plus the Kullback–Leibler divergence from $y$ to $S$ (exercise 1), and the "
            "entropy does not depend on the weights.",
            place="after_steps",
        ),
        Section(
            "A sanity check: the first loss is about log C",
            "With all weights 0, every logit is 0, every $S_i = 1/C$, and the loss is "
            "$-\\log(1/C) = \\log C$ whatever the label; small random weights give nearly the "
            "same. A model whose first loss is far from $\\log C$ has a bug or a poor "
            "initialisation. Computed by the generated functions for the posts' 5 classes: the "
            "loss with $W = 0$; the mean loss of 1000 random samples with weights of scale "
            "0.01; and $\\log 5$:",
            call="np.array([cross_entropy_from_logits(summation(posts.X, np.zeros((3, 5))), posts.Y), "
            "cross_entropy_from_logits(summation(np.random.default_rng(0).normal(size=(1000, 3)), "
            "0.01 * np.random.default_rng(1).normal(size=(3, 5))), "
            "np.random.default_rng(2).integers(5, size=1000)).mean(), np.log(5)])",
        ),
        Section(
            "Vectorised, with shapes",
            "Stack a batch of $B$ samples as rows: $X$ is $B \\times D$, and $S$ and $Y$ are "
            "$B \\times C$. The sum over $b$ in the step *Mean over a batch* is then a matrix "
            "product, and the "
            "gradient $G = \\partial L / \\partial W$, laid out like $W$, is below; for one "
            "sample ($B = 1$, with $x$, $S$, $y$ as columns) it is the outer product "
            "$x(S - y)^T$. These matrix forms were read off the index form entry by entry "
            "(entry $(j, c)$ of $X^T(S - Y)$ is $\\sum_b x_{bj}(S_{bc} - Y_{bc})$), not derived "
            "by SymPy's matrix calculus: the build checks the batch form entry by entry against "
            "the step *Mean over a batch* (the last section, *The result in matrix form*), and "
            "the last worked example against NumPy.",
            equations=(
                (G, batch),
                (sp.Derivative(XE, bias[c]), bias_grad),
                (sp.Derivative(penalty, W[j, c]), penalty_grad),
            ),
            text_after="The second line is the gradient for a bias $\\beta$ added to the "
            "logits, $z = W^T x + \\beta$, computed by SymPy through $\\partial XE / \\partial z_k = "
            "S_k - y_k$ and $\\partial z_k / \\partial \\beta_c = \\delta_{kc}$: the bias sees an input "
            "that is always 1, so its gradient over a batch is the column mean of $S - Y$. The "
            "third is the gradient of an L2 penalty added to the loss, $\\lambda W_{jc}$, to be "
            "added to $G$.\n\n"
            "| factor | shape |\n|---|---|\n| $X$ | $B \\times D$ |\n| $W$, $G$ | $D \\times C$ |\n"
            "| $Z = XW$, $S$, $Y$, $S - Y$ | $B \\times C$ |\n| $\\beta$ and its gradient | $C$ |\n\n"
            "Nothing of size $C \\times D \\times C$ is formed: the chain rule is applied as a "
            "vector–Jacobian product, and `weight_grad` costs two matrix products and a "
            "softmax.",
        ),
    )
    coarser = epsilon_ratio_log2("float32", "float64")  # for the gradient-check caption
    X_entries, Y_entries = sp.IndexedBase("X"), sp.IndexedBase("Y")  # the rows of X and Y
    matrix_result = MatrixResult(
        group="one_layer",
        lhs=sp.MatrixSymbol("\\nabla_{W} L", D, C),
        rhs=batch,
        index_form=batch_mean.xreplace({X: X_entries, Y: Y_entries}),
        entry=((j,), (c,)),
        text="The gradient of the mean loss of a batch: one matrix product of the inputs and "
        "the errors $S - Y$, laid out like $W$.",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="cross_entropy",
        title="The cross-entropy gradient",
        summary="How the loss $XE = -\\sum_i y_i \\log S_i$ of the layer changes with each weight (Part 3).",
        definitions=(
            Definition(
                XE,
                loss,
                "with $y$ the target distribution over the classes: "
                "$y_i \\ge 0$ and $\\sum_i y_i = 1$. In the posts $y$ is one-hot, 1 for the "
                "true class and 0 elsewhere; only $\\sum_i y_i = 1$ is used below. On this "
                "page $j$ and $d$ count inputs; $i$, $t$, $c$ and $k$ count classes; $b$ "
                "counts the samples of a batch.",
            ),
        ),
        where=((S[i], softmax(i)), (z[c], summation(c))),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "XE for class 3",
                "cross_entropy(softmax(summation(posts.X, posts.W)), posts.Y)",
                printed="PART3_XE",
                text="Part 3 continues Part 2's layer (`posts.X`, `posts.W`) and picks \"the "
                'third class": class 3 counting from 1, as on this site, which is `y[2] = 1` '
                "in NumPy, counting from 0 (`posts.Y`).",
            ),
            Example(
                "DXE = xe_dir(y, S)",
                "cross_entropy_grad(softmax(summation(posts.X, posts.W)), posts.Y)",
                printed="PART3_DXE",
                text="The derivative of the loss with respect to each output: $-y_t / S_t$, "
                "zero except for the true class.",
            ),
            Example(
                "The weight gradient, class-major",
                "weight_grad(posts.X, posts.W, posts.Y).T.ravel()",
                printed="PART3_WEIGHT_GRAD",
                text="Part 3 multiplies $DXE$ by the layer's Jacobian and prints the result "
                "reshaped (see the errata). Read in order, its 15 numbers are the gradient "
                "flattened class-major: ours, `.T.ravel()`.",
            ),
            Example(
                "A batch, against the matrix form",
                "weight_grad(np.stack([posts.X, posts.X[::-1]]), posts.W, np.stack([posts.Y, np.eye(5)[0]]))",
                reference="(lambda X, Y: X.T @ (np.exp(X @ posts.W) / np.exp(X @ posts.W).sum(axis=1, "
                "keepdims=True) - Y) / len(X))(np.stack([posts.X, posts.X[::-1]]), "
                "np.stack([posts.Y, np.eye(5)[0]]))",
                reference_title="X.T @ (S - Y) / B in NumPy",
                text="Two samples, the posts' $x$ with label 3 and $x$ reversed with label 1: "
                "the generated `weight_grad` against $X^T(S - Y)/B$ written directly in NumPy.",
            ),
        ),
        sections=sections,
        exercises=exercises,
        errata=(
            Erratum(
                "Part 3's last two matrices are the class-major gradient vector passed through "
                "`reshape(W.shape)`: their entries do not sit where the weights they belong to "
                "sit. Laid out like W, the gradient is the outer product of x and S − y:",
                "weight_grad(posts.X, posts.W, posts.Y)",
            ),
        ),
        figures=(
            Figure(
                "weight-gradient-heatmap.svg",
                "The weight gradient for the posts' example, in W's layout: only the true "
                "class's column is negative, because every x_j > 0 here (column c is x times "
                "S_c − y_c, negative only for the true class).",
                _gradient_heatmap,
            ),
            Figure(
                "gradient-check-error.svg",
                "Checking weight_grad by finite differences of cross_entropy_from_logits, for "
                "the posts' example: the worst relative error over the 15 weights against the "
                "step h. Too large a step leaves truncation error (falling as h² for central, h "
                "for forward differences); too small a step leaves rounding error (growing as "
                f"1/h); float32 rounds {unicode_power(2, coarser)} ≈ "
                f"{unicode_scientific(2.0**coarser)} times more coarsely (the ratio of the two "
                "machine epsilons).",
                _gradient_check,
            ),
        ),
        results={
            "loss_derivative": dxe_ds,
            "weight_grad": shortcut,
            "batch_mean": batch_mean,
            "weight_grad_labels": labels_shortcut,
        },
    )
