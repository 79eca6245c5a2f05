"""The loss from the logits: log-softmax, and ∂XE/∂z = S − y, computed without log(0)."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, Matrix, Sum, exp, log
from sympy.codegen.cfunctions import log1p

from derive.derivations import result
from derive.floats import overflow_exponent
from derive.model import (
    C,
    S,
    class_index,
    cross_entropy,
    explicit_labels,
    explicit_softmax,
    explicit_vector,
    softmax,
    y,
    z,
)
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
    LabelsForm,
    MatrixResult,
    OptionsForm,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import Maximum, chain_rule, evaluate, pull_out_of_sums, sums_of

# What the functions take as targets: the runtime checks that each row sums to 1.
LABEL_ROWS = "label rows summing to 1 (one-hot, or any distribution)"


def explicit_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DXE · DS with explicit matrices, and the shortcut S − y (Σ y = 1 imposed)."""
    n_classes = sizes["C"]
    logits = explicit_vector("z", n_classes)
    labels = explicit_labels(n_classes)
    probabilities = explicit_softmax(logits)
    loss = -sum(labels[c] * log(probabilities[c]) for c in range(n_classes))
    return Matrix([loss]).jacobian(logits), (probabilities - labels).T


def explicit_hessian(sizes) -> tuple[Matrix, Matrix]:
    """The Hessian of the explicit loss with respect to the logits (Σ y = 1 imposed), and diag(S) − S Sᵀ."""
    n_classes = sizes["C"]
    logits = explicit_vector("z", n_classes)
    labels = explicit_labels(n_classes)
    probabilities = explicit_softmax(logits)
    loss = -sum(labels[c] * log(probabilities[c]) for c in range(n_classes))
    gradient = Matrix([loss]).jacobian(logits)
    return gradient.T.jacobian(logits), sp.diag(*probabilities) - probabilities * probabilities.T


def _log_sum_exp_above_max(answer) -> bool:
    """With a = b + u, u ≥ 0 (the other order is the same by symmetry): both sides agree, and are > 0."""
    a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)
    gap = sp.Symbol("u", nonnegative=True)
    larger_first = {a: b + gap}
    lhs, rhs = (side.xreplace(larger_first) for side in (answer.lhs, answer.rhs))
    return sp.simplify(sp.expand_log(lhs - rhs, force=True)) == 0 and bool(rhs.is_positive)


def explicit_stable_grad(sizes) -> tuple[Matrix, Matrix]:
    """S_j(1 − y_j) − y_j Σ_{k≠j} S_k and S_j − y_j, for an explicit softmax and free labels."""
    n_classes = sizes["C"]
    p = explicit_softmax(explicit_vector("z", n_classes))
    labels = explicit_vector("y", n_classes)
    stable = Matrix(
        [
            p[j] * (1 - labels[j]) - labels[j] * sum(p[k] for k in range(n_classes) if k != j)
            for j in range(n_classes)
        ]
    )
    return stable, p - labels


def _naive_against_stable(fig, generated, posts) -> None:
    gaps = np.logspace(0, 4, 200)
    logits = np.stack([gaps, np.zeros_like(gaps), np.zeros_like(gaps)], axis=-1)
    labels = np.ones(len(gaps), dtype=int)  # the true class has the smaller logit
    with np.errstate(all="ignore"):
        naive = generated.cross_entropy(generated.softmax(logits), labels)
    stable = generated.cross_entropy_from_logits(logits, labels)
    ax = fig.subplots()
    ax.loglog(gaps, stable, label="cross_entropy_from_logits(z, y)", linewidth=3, alpha=0.6)
    finite = np.isfinite(naive)
    ax.loglog(gaps[finite], naive[finite], "--", label="cross_entropy(softmax(z), y)")
    if not finite.all():
        first = gaps[~finite][0]
        ax.axvline(first, color="red", linewidth=0.8)
        ax.text(
            first, stable.max() / 10, f"  naive: inf from\n  z₁ − z₂ = {first:.0f}", color="red"
        )
    ax.set_xlabel("logit gap z₁ − z₂ (true class 2)")
    ax.set_ylabel("loss")
    ax.set_title("The loss from the logits stays finite (float64)")
    ax.legend(fontsize=8)


def _below_and_other_maxima(shifted_k, exp_k, k) -> tuple[sp.Expr, sp.Expr]:
    """Σ_k e^{s_k} − 1 without a subtraction: the terms below the maximum (s_k < 0), and the
    other maxima (each e^0 = 1, one fewer than there are)."""
    below = Sum(sp.Piecewise((0, sp.Eq(shifted_k, 0)), (exp_k, True)), (k, 1, C))
    maxima = Sum(sp.Piecewise((exp_k, sp.Eq(shifted_k, 0)), (0, True)), (k, 1, C))
    return below, maxima - 1


def options_forms(z, y, i, j, log_s, log_s_labelled, others_of) -> tuple[OptionsForm, OptionsForm]:
    """The loss and its gradient with PyTorch's options, from the options page's results."""
    from derive.derivations.cross_entropy_options import (
        IGNORE_INDEX,
        LABEL_SMOOTHING,
        REDUCTION,
        WEIGHT,
        a,
        kappa,
        option_params,
        w,
    )

    coefficient = result("cross_entropy_options", "coefficient", c=i)  # a_i = κ w_i t_i
    a_others = sp.IndexedBase("a_others")
    stable = result("cross_entropy_options", "stable_gradient")  # S_j Σ_{c≠j} a_c − a_j Σ_{n≠j} S_n
    (a_sum,) = [s for s in stable.atoms(Sum) if s.has(a)]
    (s_sum,) = [s for s in stable.atoms(Sum) if s.has(S)]
    params = option_params(w, kappa)
    loss = OptionsForm(
        options=(WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING, REDUCTION),
        params=params,
        body=(
            Assign(a, (i,), coefficient),
            Assign(log_s, (i,), sp.Function("log_softmax")(z)),
            # 0 · (−inf) would be nan: a class with no coefficient is left out
            Assign(log_s_labelled, (i,), sp.Piecewise((0, sp.Eq(a[i], 0)), (log_s[i], True))),
        ),
        returns=Assign(sp.Symbol("XE"), (), -Sum(a[i] * log_s_labelled[i], (i, 1, C))),
    )
    gradient = OptionsForm(
        options=(WEIGHT, IGNORE_INDEX, LABEL_SMOOTHING, REDUCTION),
        params=params,
        body=(
            Assign(a, (j,), coefficient.xreplace({i: j})),
            Assign(S, (j,), sp.Function("softmax")(z)),
            Assign(others_of, (j,), s_sum),
            Assign(a_others, (j,), a_sum),
        ),
        returns=Assign(
            Derivative(sp.Symbol("XE"), z[j]),
            (j,),
            stable.xreplace({a_sum: a_others[j], s_sum: others_of[j]}),
        ),
        gradient=True,
        derivative=DerivativeOf(
            "cross_entropy_from_logits(z, y, **options)", wrt="z", kind="reduced"
        ),
    )
    return loss, gradient


def derive():
    i, j, k = class_index("i"), class_index("j"), class_index("k")
    XE = sp.Symbol("XE")
    log_sum_exp = log(Sum(exp(z[k]), (k, 1, C)))
    log_softmax = sp.expand_log(log(softmax(i)), force=True)

    shift = sp.Symbol("m", real=True)
    shifted_log_sum_exp = shift + log(Sum(exp(z[k] - shift), (k, 1, C)))
    unshifted = sp.expand_log(pull_out_of_sums(sp.expand(shifted_log_sum_exp)), force=True)
    stable_log_softmax = log_softmax.xreplace({log_sum_exp: shifted_log_sum_exp})
    # After the shift the largest term is e^0 = 1, and log(1 + r) loses the digits of a tiny r
    # (where one class is nearly certain, log S of it is about −r); log1p(r) keeps them. r is the
    # sum of the other terms: those below the maximum, plus 1 for each other logit equal to it.
    below, other_maxima = _below_and_other_maxima(z[k] - shift, exp(z[k] - shift), k)
    log1p_form = log1p(below + other_maxima)
    accurate_log_softmax = z[i] - shift - log1p_form

    loss = cross_entropy()
    loss_of_logits = loss.xreplace({log(S[i]): log_softmax})
    pulled = pull_out_of_sums(sp.expand(loss_of_logits))
    (labels_total,) = sums_of(y, pulled)
    one_hot = {labels_total: sp.Integer(1)}
    loss_one_hot = pulled.xreplace(one_hot)
    gradient = evaluate(sp.diff(loss_one_hot, z[j]))
    gradient_in_S = gradient.subs(exp(z[j]), S[j] * Sum(exp(z[k]), (k, 1, C)))

    # Selecting the label's entry instead of multiplying by y: 0 · (−inf) would be nan.
    log_s = sp.IndexedBase("log_s")
    # (a Sum folds a factor into the Piecewise, so the selection is computed first, by itself)
    log_s_labelled = sp.IndexedBase("log_s_labelled")
    selection = sp.Piecewise((0, sp.Eq(y[i], 0)), (log_s[i], True))
    selected = -Sum(y[i] * log_s_labelled[i], (i, 1, C))
    # At the true class S_j − 1 loses its digits where S_j rounds to 1; −Σ_{n≠j} S_n keeps them.
    other = class_index("n")  # its index (m is the logits' maximum)
    others = result("softmax_jacobian", "one_minus_softmax", i=j)  # Σ_{n≠j} S_n
    stable_gradient = S[j] * (1 - y[j]) - y[j] * others

    t = class_index("t")
    chain = Sum((-y[t] / S[t]) * S[t] * (sp.KroneckerDelta(t, j) - S[j]), (t, 1, C))

    # The same gradient by the route through S: the chain rule, as the second proof checks it.
    dxe_ds = evaluate(sp.diff(loss, S[t]))  # −y_t/S_t
    ds_dz = result("softmax_jacobian", "jacobian", i=t, j=j)  # S_t(δ_tj − S_j)
    chain_for_three = chain_rule(XE, S, 3, z[j])
    chain_written = Sum(Derivative(XE, S[t]) * Derivative(S[t], z[j]), (t, 1, C))
    uncancelled = Sum(
        sp.UnevaluatedExpr(dxe_ds) * sp.UnevaluatedExpr(ds_dz), (t, 1, C)
    )  # not cancelled yet
    through_S = pull_out_of_sums(evaluate(Sum(dxe_ds * ds_dz, (t, 1, C))))
    (labels_through_S,) = sums_of(y, through_S)
    through_S_result = sp.expand(through_S.xreplace({labels_through_S: sp.Integer(1)}))
    if sp.expand(through_S_result - gradient_in_S) != 0:
        raise ValueError(f"the route through S gives {through_S_result}, not {gradient_in_S}")

    l = class_index("l")  # the maximum's own index, apart from the sum's k
    m_of_z = Maximum(z[l], (l, 1, C))
    stable_loss = loss.xreplace({log(S[i]): stable_log_softmax.subs(shift, m_of_z)})
    n = class_index("n")  # the second logit, apart from the sum's k
    second = Derivative(XE, z[j], z[n])
    hessian_entry = result("softmax_jacobian", "jacobian", i=j, j=n)  # S_j(δ_jn − S_n)
    a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)
    exercises = (
        Exercise(
            "Show that $\\log(e^a + e^b) > \\max(a, b)$ for all real $a$, $b$: log-sum-exp is a "
            "smooth maximum that always lies above the maximum. By how much at most?",
            sp.Eq(log(exp(a) + exp(b)) - sp.Max(a, b), log(1 + exp(-sp.Abs(a - b)))),
            _log_sum_exp_above_max,
            answer="Take $e^{\\max}$ out of the sum: the excess is $\\log(1 + e^{-|a - b|})$, "
            "positive and at most $\\log 2$ (when $a = b$). With $C$ terms it is at most "
            "$\\log C$. SymPy checks the identity for $a \\ge b$ (the other case is the same "
            "with $a$ and $b$ swapped) and that the right side is positive.",
            title="Log-sum-exp lies above the maximum",
        ),
        Exercise(
            "Differentiate $\\partial XE / \\partial z_j = S_j - y_j$ once more, by $z_n$. What is "
            "the Hessian of the loss with respect to the logits, and what does it say about the "
            "loss as a function of $z$?",
            sp.Eq(second, hessian_entry),
            Identity(
                "cross_entropy_logit_hessian",
                "the Hessian of the loss in the logits is the softmax Jacobian",
                long=sp.diff(gradient, z[n]),
                shortcut=hessian_entry.subs({S[j]: softmax(j), S[n]: softmax(n)}),
                explicit=explicit_hessian,
                explicit_sizes=every(C=range(2, 5)),
            ),
            answer="$y$ does not depend on $z$, so the second derivative is the derivative of "
            "$S_j$: the softmax Jacobian, $\\operatorname{diag}(S) - S S^T$, the covariance "
            "matrix of the predicted distribution (an exercise of the softmax page). It is "
            "positive semi-definite, so the loss is convex in $z$; its null space is the shift "
            "direction $(1, \\dots, 1)$, along which the loss does not change. SymPy proves it in "
            "index form and with explicit matrices for $C = 2..4$.",
            title="The second derivative is the softmax covariance",
        ),
    )
    sections = (
        Section(
            "PyTorch's options",
            "`cross_entropy_from_logits` and `cross_entropy_from_logits_grad` also take "
            "PyTorch's keyword-only `weight`, `ignore_index`, `label_smoothing` and `reduction`, "
            "with the semantics of `torch.nn.functional.cross_entropy`, but not its defaults: "
            'here `reduction="none"` (a loss per sample) and `ignore_index=None` (nothing '
            'ignored), where PyTorch\'s are `"mean"` and −100. The '
            "[options page](cross-entropy-options.md) derives them: every option changes only "
            "the coefficients $a_c$ of $-\\sum_c a_c \\log S_c$, and the gradient is "
            "$S_j \\sum_c a_c - a_j$, this page's $S_j - y_j$ when $a = y$. With the defaults the "
            "code below runs unchanged.",
        ),
        Section(
            "Vectorised, with shapes",
            "For a batch, the logits $Z = XW$ are $B \\times C$, one row per sample, and so are "
            "$S$, $Y$ and the gradient: for the mean loss $L = \\frac{1}{B} \\sum_b XE_b$ it is "
            "$(S - Y)/B$, row $b$ being sample $b$'s gradient $S_b - y_b$, divided by $B$.\n\n"
            "| factor | shape |\n|---|---|\n| $Z$, $\\log S$, $S$, $Y$ | $B \\times C$ |\n"
            "| $m$ (each row's maximum) | $B$ |\n| $XE$ | $B$ |\n"
            "| $\\partial L / \\partial Z = (S - Y)/B$ | $B \\times C$ |\n\n"
            "This is the vector–Jacobian product of the two routes above in one step: "
            "the $C \\times C$ softmax Jacobian is never formed. Backpropagation into $W$ "
            "multiplies by $X^T$ (the [cross-entropy page](cross-entropy.md)).",
        ),
    )
    labels_sum = ((Sum(y[t], (t, 1, C)), sp.Integer(1)),)  # Σ_t y_t = 1
    steps = (
        Step(
            "Log of a quotient",
            "$\\log(a/b) = \\log a - \\log b$, and $\\log e^{z_i} = z_i$.",
            log(softmax(i)),
            log_softmax,
            start="the logarithm of the softmax",
            checked="numeric",  # a logarithm's identity: SymPy does not expand it unforced
            key="log-softmax",
        ),
        Step(
            "Stable log-sum-exp",
            "Take $e^{m}$ out of every term of the sum, and out of the logarithm as $m$: the "
            "value is unchanged, for any number $m$. The generated code computes the left side, "
            "with $m = \\max_l z_l$: then no exponential exceeds $e^0 = 1$, so none overflows, and "
            "the largest term is exactly 1, so the logarithm's argument is at least 1, never 0.",
            shifted_log_sum_exp,
            unshifted,
            start="the log-sum-exp, its logits shifted by $m$ and $m$ added back",
        ),
        Step(
            "Why the code computes the log-sum-exp with log1p",
            "After the shift the largest term is $e^0 = 1$, so the sum is $1 + r$. Where one class "
            "is nearly certain, $r$ is tiny and $\\log S$ of that class is about $-r$; rounding "
            "$1 + r$ first loses the digits of $r$ (to $\\log 1 = 0$ once $r < 10^{-16}$). "
            "$\\operatorname{log1p}(r) = \\log(1 + r)$ keeps them. $r$ is the sum of the terms "
            "below the maximum, plus 1 for every other logit equal to it (a tie), each term selected, "
            "never subtracted.",
            log(Sum(exp(z[k] - shift), (k, 1, C))),
            log1p_form,
            start="the logarithm of the shifted sum",
            checked="numeric",  # selections on z_k = m: proved in index form below
        ),
        Step(
            "The loss in terms of the logits",
            "Substitute $\\log S_i$ from {step:log-softmax}; no logarithm of a probability remains.",
            loss,
            loss_of_logits,
            start="the loss",
            checked="numeric",  # the logarithm of the softmax, as in step log-softmax
        ),
        Step("Out of the sums", "Factors without $i$ leave the sums.", loss_of_logits, pulled),
        Step(
            "The targets sum to 1: Σ y = 1",
            "Only this is used, not that $y$ is one-hot: the result holds for soft and "
            "label-smoothed targets too.",
            pulled,
            loss_one_hot,
            relation="=>",
            given=((Sum(y[i], (i, 1, C)), sp.Integer(1)),),
            key="targets-sum-to-one",
        ),
        Step(
            "Derivative with respect to the logits",
            "The derivative of $\\log \\sum_k e^{z_k}$ is the softmax; the delta in "
            "$\\sum_i y_i \\delta_{ij}$ keeps $y_j$.",
            Derivative(loss_one_hot, z[j]),
            gradient,
            start="the loss of {step:targets-sum-to-one}, differentiated by $z_j$",
        ),
        Step("In terms of S", "$e^{z_j} / \\sum_k e^{z_k}$ is $S_j$.", gradient, gradient_in_S),
        Step(
            "The route through S: chain rule, as SymPy applies it (for C = 3)",
            "The same gradient, the way the cross-entropy page goes: $z_j$ reaches the loss "
            "through every output. SymPy, given $XE$ as an unknown function of three unknown "
            "functions $S_1, S_2, S_3$ of $z_j$, returns one term per output.",
            *chain_for_three,
            start="the loss, which depends on $z_j$ through the outputs",
            checked="explicit",  # written for C = 3: checked at C = 3
            sizes=({"C": 3},),
        ),
        Step(
            "The route through S: substitute",
            "With $C$ classes, one term per $S_t$; $\\partial XE / \\partial S_t = -y_t/S_t$ and "
            "$\\partial S_t / \\partial z_j$ from the softmax Jacobian page.",
            chain_written,
            uncancelled,
            start="the chain rule for $C$ classes",
        ),
        Step(
            "The route through S: cancel, collapse, Σ y = 1",
            "$S_t$ cancels ($S_t > 0$: a softmax output is never 0 in exact arithmetic); the "
            "delta keeps $t = j$; $\\sum_t y_t = 1$. The result is the one of the step *In terms "
            "of S*: the second proof below checks this route with explicit matrices.",
            uncancelled,
            through_S_result,
            relation="=>",
            given=labels_sum,
        ),
        Step(
            "Why the code selects the label's entry",
            "A logit of $-\\infty$ marks an impossible class, as in PyTorch: there $\\log S_i = "
            "-\\infty$, and $0 \\cdot (-\\infty)$ is nan in floating point although $y_i = 0$. The "
            "code selects $\\log S_i$ only where $y_i \\ne 0$ (`xp.where`), 0 elsewhere, so such a "
            "class adds nothing unless it is the label's (then the loss is $+\\infty$). For finite "
            "logits `log_softmax` is finite, however far apart they are (it never forms "
            "$\\log 0$), and the selection changes nothing.",
            loss.xreplace({log(S[i]): log_s[i]}),
            selected.xreplace({log_s_labelled[i]: selection}),
            where=((log_s[i], log(S[i])),),
            start="the loss, with $\\log S$ computed by `log_softmax`",
            checked="numeric",  # a selection on y_i = 0: SymPy cannot decide it for symbolic y
        ),
        Step(
            "Why the code computes $S_j - y_j$ this way",
            "At the true class $S_j - 1$ is 0 in floating point once $S_j$ rounds to 1. Given "
            "$\\sum S = 1$, $S_j - 1 = -\\sum_{n \\ne j} S_n$, a sum of positive terms. For a "
            "one-hot $y$ nothing is subtracted at all: each entry is $S_j$ off the label and "
            "$-\\sum_{n \\ne j} S_n$ at it. For soft targets the two products are subtracted, "
            "and cancel where the entry is small next to them: its error is then relative to "
            "the products, not to it.",
            gradient_in_S,
            stable_gradient,
            relation="=>",
            given=((Sum(S[other], (other, 1, C)), sp.Integer(1)),),
            start=8,
        ),
        Step(
            "The likelihood view: log-sum-exp is the log-partition",
            "Read the logits as unnormalised log-probabilities: $S_i = e^{z_i}/Z$ with the "
            "partition function $Z = \\sum_k e^{z_k}$, so $-\\log S_y = \\log Z - z_y$, and the "
            "likelihood of a dataset, a product over its samples, becomes the summed "
            "cross-entropy under $-\\log$. The log-partition's gradient is the model's own "
            "distribution: $\\partial \\log Z / \\partial z_j = S_j$, the expected value "
            "$E_S[e_j]$ of the one-hot vector $e_j$. The loss's gradient $S_j - y_j$ is therefore "
            "expected minus observed, zero when the model's expectation matches the data.",
            Derivative(log_sum_exp, z[j]),
            S[j],
            where=((S[i], softmax(i)),),
            start="the log-partition $\\log \\sum_k e^{z_k}$",
        ),
        Step(
            "Expected minus observed",
            "The one-hot vector $e_k$ of class $k$ has entry $j$ equal to $\\delta_{kj}$; its "
            "expected value under the model, $E_S[e] = \\sum_k S_k e_k$, has entry $j$ equal to "
            "$S_j$. So the gradient of the loss, $\\partial \\log Z / \\partial z_j - y_j$ "
            "(the observed target's $-z_y$ term gives $-y_j$), is $E_S[e]_j - y_j$: what the "
            "model expects minus what was observed, the form every exponential-family model's "
            "log-likelihood gradient takes.",
            Sum(S[k] * sp.KroneckerDelta(k, j), (k, 1, C)) - y[j],
            gradient_in_S,
            start="the expected one-hot vector under $S$, minus the observed $y$",
        ),
    )
    identities = (
        Identity(
            "log_sum_exp_log1p",
            "$\\operatorname{log1p}$ of the terms below the maximum plus the other maxima equals "
            "the log-sum-exp of the shifted logits (the two selections add up to every term; "
            "$\\operatorname{log1p}(r) = \\log(1 + r)$), in index form for every $C$",
            long=log1p_form,
            shortcut=log(Sum(exp(z[k] - shift), (k, 1, C))),
            long_title="What the code computes,",
            shortcut_title="the shifted log-sum-exp,",
        ),
        Identity(
            "cross_entropy_logit_grad",
            "the route through $S$ gives $S_j - y_j$ too, when $\\sum_t y_t = 1$; with explicit "
            "matrices for $C = 2, \\dots, 6$",
            long=chain,
            shortcut=gradient_in_S,
            assumptions={Sum(y[t], (t, 1, C)): sp.Integer(1)},
            explicit=explicit_chain_rule,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "logit_grad_stable",
            "the form the code computes, $S_j(1 - y_j) - y_j \\sum_{n \\ne j} S_n$, equals "
            "$S_j - y_j$ given $\\sum_n S_n = 1$ (for any labels $y$); with $S$ written out, for "
            "$C = 2, \\dots, 6$, without the assumption",
            long=stable_gradient,
            shortcut=gradient_in_S,
            assumptions={Sum(S[other], (other, 1, C)): sp.Integer(1)},
            explicit=explicit_stable_grad,
            explicit_sizes=every(C=range(2, 7)),
            long_title="The form the code computes, its sum evaluated,",
            shortcut_title="$S_j - y_j$,",
        ),
    )

    z_max, shifted = sp.Symbol("z_max"), sp.IndexedBase("shifted")
    exp_shifted, ties = sp.IndexedBase("exp_shifted"), sp.Symbol("other_maxima")
    others_of = sp.IndexedBase("others")
    logits_and_labels = (
        Param("z", z, ("C",), doc="logits"),
        Param("y", y, ("C",), doc=LABEL_ROWS, one_hot=True),
    )
    # Class-index labels, y_i = δ_iℓ: the loss is −log S_ℓ (one entry gathered), the gradient S − e_ℓ.
    ell = class_index("ell")
    labels_param = Param("y", ell, ("C",), doc="integer class labels", labels=True)
    loss_at_labels = evaluate(
        selected.xreplace({y[i]: sp.KroneckerDelta(i, ell), log_s_labelled: log_s})
    )  # −log_s[ℓ]
    gradient_at_labels = stable_gradient.xreplace({y[j]: sp.KroneckerDelta(j, ell)})
    identities += (
        Identity(
            "cross_entropy_from_logits_labels",
            "with class-index labels, $y_i = \\delta_{i\\ell}$, the loss $-\\sum_i y_i \\log S_i$ "
            "is $-\\log S_\\ell$: one entry of `log_softmax(z)`, gathered at the label",
            long=loss.xreplace({y[i]: sp.KroneckerDelta(i, ell), log(S[i]): log_s[i]}),
            shortcut=loss_at_labels,
            long_title="The loss with $y = e_\\ell$, its sum evaluated,",
            shortcut_title="the entry at the label,",
        ),
        Identity(
            "logit_grad_stable_labels",
            "with $y_j = \\delta_{j\\ell}$, the form the code computes equals $S_j - "
            "\\delta_{j\\ell}$ (given $\\sum_n S_n = 1$): $S$ with 1 subtracted at the label",
            long=gradient_at_labels,
            shortcut=gradient_in_S.xreplace({y[j]: sp.KroneckerDelta(j, ell)}),
            assumptions={Sum(S[other], (other, 1, C)): sp.Integer(1)},
            long_title="The form the code computes at $y = e_\\ell$,",
            shortcut_title="$S_j - \\delta_{j\\ell}$,",
        ),
    )
    loss_options, gradient_options = options_forms(z, y, i, j, log_s, log_s_labelled, others_of)
    kernels = (
        Kernel(
            name="log_softmax",
            overflow=SHIFT_OVERFLOW,
            summary="log S over the last axis, computed from the logits without forming log(0).",
            params=(Param("z", z, ("C",), doc="logits"),),
            body=(
                Assign(z_max, (), Maximum(z[k], (k, 1, C))),
                Assign(shifted, (i,), z[i] - z_max),
                Assign(exp_shifted, (i,), exp(shifted[i])),
                Assign(ties, (), _below_and_other_maxima(shifted[k], exp_shifted[k], k)[1]),
            ),
            returns=Assign(
                log(S[i]),
                (i,),
                shifted[i]
                - log1p(_below_and_other_maxima(shifted[k], exp_shifted[k], k)[0] + ties),
            ),
            math=accurate_log_softmax.subs(shift, m_of_z),
            returns_doc="log-probabilities, shape (..., C); finite for finite logits",
            reference="torch.log_softmax(z, dim=-1)",
            conditioning="log S of a nearly certain class is about −Σ_{k} e^{z_k − max z} over the "
            "others, and each term inherits the rounding of z_k − max z: about |z_k − max z|/2 "
            "ulps. Every other entry is good to a few ulps.",
        ),
        Kernel(
            name="cross_entropy_from_logits",
            overflow=SHIFT_OVERFLOW,
            summary="The cross-entropy of softmax(z) against targets y, from the logits.",
            params=logits_and_labels,
            body=(
                Assign(log_s, (i,), sp.Function("log_softmax")(z)),
                Assign(log_s_labelled, (i,), selection),
            ),
            returns=Assign(XE, (), selected),
            labels_form=LabelsForm(
                labels_param,
                body=(Assign(log_s, (i,), sp.Function("log_softmax")(z)),),
                returns=Assign(XE, (), loss_at_labels),
            ),
            math=stable_loss,
            returns_doc="the loss of each sample, shape (...) (reduction 'none'), or its sum or mean, "
            "shape (): finite for finite logits; a logit of "
            "-inf marks an impossible class (as in PyTorch), and gives +inf only where it is the label's",
            options_form=loss_options,
            reference="torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), "
            "y.reshape(-1, y.shape[-1]), reduction='none').reshape(z.shape[:-1])",
            conditioning="As log_softmax: the loss of a nearly certain, correct prediction is "
            "about Σ_k e^{z_k − max z} over the other classes, good to about |z_k − max z|/2 ulps.",
        ),
        Kernel(
            name="cross_entropy_from_logits_grad",
            overflow=SHIFT_OVERFLOW,
            summary="∂XE/∂z_j = S_j − y_j: the gradient of the cross-entropy with respect to the logits.",
            params=logits_and_labels,
            body=(Assign(S, (j,), sp.Function("softmax")(z)), Assign(others_of, (j,), others)),
            returns=Assign(
                Derivative(XE, z[j]), (j,), stable_gradient.xreplace({others: others_of[j]})
            ),
            labels_form=LabelsForm(
                labels_param,
                body=(Assign(S, (j,), sp.Function("softmax")(z)), Assign(others_of, (j,), others)),
                returns=Assign(
                    Derivative(XE, z[j]), (j,), gradient_at_labels.xreplace({others: others_of[j]})
                ),
            ),
            math=gradient_in_S,
            returns_doc="the gradient of the reduced loss, shape (..., C): each sample's own "
            "(reductions 'none' and 'sum'), divided by the mean's denominator for 'mean'",
            options_form=gradient_options,
            derivative=DerivativeOf("cross_entropy_from_logits(z, y)", wrt="z"),
            conditioning="It is computed from softmax(z), and inherits its error: about "
            "|z_j − max z|/2 ulps for an entry far below the largest.",
        ),
    )
    matrix_result = MatrixResult(
        group="numerics",
        lhs=sp.MatrixSymbol("\\nabla_{z} \\mathit{XE}", C, 1),
        rhs=sp.MatrixSymbol("S", C, 1) - sp.MatrixSymbol("y", C, 1),
        index_form=gradient_in_S,
        entry=((j,), ()),
        text="The loss computed from the logits, never taking $\\log 0$; its gradient with "
        "respect to the logits is predicted minus observed.",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="cross_entropy_from_logits",
        title="The cross-entropy from the logits",
        summary="The loss and its gradient computed from $z$ directly. Computed as written, "
        "$-\\sum_i y_i \\log \\operatorname{softmax}(z)_i$ fails in two ways: an unshifted softmax "
        f"overflows ($e^{{z}}$ is `inf` in float64 once $z > {overflow_exponent()}$, and `inf/inf` is "
        "`nan`); a shifted "
        "softmax cannot overflow, but the probability of a class whose logit is far below the "
        "largest underflows to 0, and then $-\\log 0 = \\infty$. From the logits, neither happens.",
        where=((S[i], softmax(i)),),
        definitions=(
            Definition(
                XE,
                loss,
                "with $S = \\operatorname{softmax}(z)$ and $y$ a target "
                "distribution ($\\sum_i y_i = 1$; one-hot in the posts). On this page every "
                "index ($i$, $j$, $k$, $l$, $n$, $t$) counts classes.",
            ),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "XE for class 3, from the logits",
                "cross_entropy_from_logits(summation(posts.X, posts.W), posts.Y)",
                printed="PART3_XE",
                text="Part 3's loss, for its layer (`posts.X`, `posts.W`) and its third class "
                "(`y[2] = 1` in NumPy's 0-based count), computed here from the logits: it "
                "agrees with the post's, computed through $S$.",
            ),
        ),
        sections=sections,
        exercises=exercises,
        figures=(
            Figure(
                "naive-against-stable.svg",
                "The loss computed through the probabilities, cross_entropy(softmax(z), y): the "
                "softmax is shifted and does not overflow, but once the true class's logit is "
                "about 745 below the largest, its probability underflows to 0 and the loss is "
                "−log 0 = inf. Computed from the logits, it grows linearly and stays finite.",
                _naive_against_stable,
            ),
        ),
        results={"log_softmax": log_softmax, "logit_grad": gradient_in_S},
    )
