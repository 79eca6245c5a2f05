"""PyTorch's cross-entropy options, derived: class weights, an ignored class, label smoothing,
and the reduction. Both kinds of target are one per-sample form, −Σ_c a_c log S_c."""

from __future__ import annotations

import sympy as sp
from sympy import Derivative, Matrix, Sum, exp, log

from derive.derivations import result
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, softmax, y, z
from derive.steps import (
    Definition,
    Derivation,
    Example,
    Identity,
    Option,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import evaluate, pull_out_of_sums

# The options, as symbols: ε the label smoothing, w_c the class weights, κ a sample's keep
# (0 where its label is ignore_index, else 1); a_c the coefficient of log S_c in the loss.
epsilon = sp.Symbol("epsilon", nonnegative=True)
w = sp.IndexedBase("w", shape=(C,))
kappa = sp.Symbol("kappa", nonnegative=True)
a = sp.IndexedBase("a", shape=(C,))
B = sp.Symbol("B", integer=True, positive=True)  # samples in the batch


WEIGHT = Option(
    "weight", None, "weights", "class weights w, shape (C,), non-negative (default: all 1)."
)
IGNORE_INDEX = Option(
    "ignore_index",
    None,
    "index",
    "a label whose samples are left out: loss and gradient 0, and not counted by the mean "
    "(class-index targets only; it need not be a class, PyTorch's usual is -100).",
)
LABEL_SMOOTHING = Option(
    "label_smoothing", 0.0, "fraction", "ε in [0, 1]: the targets become (1 − ε) y + ε/C."
)
REDUCTION = Option(
    "reduction",
    "none",
    "choice",
    "'none' (a value per sample), 'sum' or 'mean' (divided by the weights of the labels not "
    "ignored for class indices, by the number of samples for probability rows, as in "
    "PyTorch; a mean over no samples is a ValueError).",
    choices=("none", "mean", "sum"),
)


def option_params(weights, keep) -> tuple[Param, ...]:
    """The options forms' parameters after the kernel's: the weights, each sample's keep, ε."""
    return (
        Param("weight", weights, ("C",), batched=False, doc="class weights"),
        Param("keep", keep, (), doc="0 for an ignored sample, else 1"),
        Param("label_smoothing", epsilon, (), batched=False, doc="the label smoothing ε"),
    )


_Z = "np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -2.0, 0.5]])"
_W = "np.array([1.0, 2.0, 0.5])"
_LOG_S = f"(lambda Z: Z - np.log(np.exp(Z).sum(-1, keepdims=True)))({_Z})"
EXAMPLES = (
    Example(
        "Weights, label smoothing and an ignored label, averaged",
        f"cross_entropy_from_logits({_Z}, np.array([0, -100, 2]), weight={_W}, "
        "ignore_index=-100, label_smoothing=0.1, reduction='mean')",
        reference=f"(lambda L, w: (0.9 * (-w[0] * L[0, 0] - w[2] * L[2, 2]) + 0.1 / 3 * "
        f"(-(w * L[0]).sum() - (w * L[2]).sum())) / (w[0] + w[2]))({_LOG_S}, {_W})",
        reference_title="aten's two parts, over the weights of the labels kept, in NumPy by hand",
        text="Three samples, the second ignored: PyTorch's label part and smoothing part, "
        "divided by the weights of the two labels kept.",
    ),
    Example(
        "Probability rows: the mean divides by the number of samples",
        f"cross_entropy_from_logits({_Z}, np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], "
        f"[0.0, 0.0, 1.0]]), weight={_W}, reduction='mean')",
        reference=f"-({_W} * np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [0.0, 0.0, 1.0]]) * "
        f"{_LOG_S}).sum() / 3",
        reference_title="NumPy, written by hand",
        text="The same weights, but the mean is over the 3 samples, not over their weights.",
    ),
)


def smoothed(c: sp.Idx) -> sp.Expr:
    """t_c = (1 − ε) y_c + ε/C: the target mixed with the uniform distribution."""
    return (1 - epsilon) * y[c] + epsilon / C


def coefficient(c: sp.Idx) -> sp.Expr:
    """a_c = κ w_c ((1 − ε) y_c + ε/C)."""
    return kappa * w[c] * smoothed(c)


def others(base: sp.IndexedBase, j: sp.Idx, m: sp.Idx) -> sp.Expr:
    """Σ_{m≠j} base_m, written as the printer computes it without a subtraction."""
    return Sum((1 - sp.KroneckerDelta(j, m)) * base[m], (m, 1, C))


def _explicit_coefficients(n_classes: int) -> Matrix:
    return explicit_vector("a", n_classes)


def explicit_gradient(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of −Σ_c a_c log softmax(z)_c with free a_c, and S_j Σ_c a_c − a_j."""
    n = sizes["C"]
    logits, coefficients = explicit_vector("z", n), _explicit_coefficients(n)
    p = explicit_softmax(logits)
    loss = -sum(coefficients[c] * log(p[c]) for c in range(n))
    shortcut = Matrix([p[j] * sum(coefficients) - coefficients[j] for j in range(n)])
    return Matrix([loss]).jacobian(logits).T, shortcut


def explicit_stable_gradient(sizes) -> tuple[Matrix, Matrix]:
    """S_j Σ_{c≠j} a_c − a_j Σ_{m≠j} S_m and S_j Σ_c a_c − a_j, for an explicit softmax."""
    n = sizes["C"]
    coefficients = _explicit_coefficients(n)
    p = explicit_softmax(explicit_vector("z", n))
    stable = Matrix(
        [
            p[j] * sum(coefficients[c] for c in range(n) if c != j)
            - coefficients[j] * sum(p[m] for m in range(n) if m != j)
            for j in range(n)
        ]
    )
    return stable, Matrix([p[j] * sum(coefficients) - coefficients[j] for j in range(n)])


def explicit_class_index(sizes) -> tuple[Matrix, Matrix]:
    """For each label ℓ: −Σ_c w_c((1 − ε)δ_cℓ + ε/C) log S_c and PyTorch's two-part form."""
    n = sizes["C"]
    p = explicit_softmax(explicit_vector("z", n))
    weights = explicit_vector("w", n, positive=True)
    eps = sp.Symbol("epsilon", nonnegative=True)
    ours, torch = [], []
    for label in range(n):
        ours.append(
            -sum(weights[c] * ((1 - eps) * int(c == label) + eps / n) * log(p[c]) for c in range(n))
        )
        torch.append(
            (1 - eps) * weights[label] * -log(p[label])
            + eps / n * sum(weights[c] * -log(p[c]) for c in range(n))
        )
    return Matrix(ours), Matrix(torch)


def derive():
    c, j, k, m = (class_index(n) for n in ("c", "j", "k", "m"))
    ell = class_index("ell")  # a sample's class label
    b = sp.Idx("b", (1, B))
    XE = sp.Symbol("XE")

    # Both target kinds are −Σ_c a_c log S_c, each with its own coefficients.
    loss = -Sum(a[c] * log(S[c]), (c, 1, C))
    with_options = loss.xreplace({a[c]: coefficient(c)})
    # PyTorch (aten LossNLL.cpp), class index ℓ: the label's part and the smoothing part.
    torch_class_index = (1 - epsilon) * w[ell] * -log(S[ell]) + epsilon / C * Sum(
        w[c] * -log(S[c]), (c, 1, C)
    )
    at_label = with_options.xreplace({y[c]: sp.KroneckerDelta(c, ell), kappa: 1})
    # PyTorch, probability rows: the targets smoothed, then weighted.
    t_c = sp.IndexedBase("t")
    torch_probabilities = -Sum(w[c] * t_c[c] * log(S[c]), (c, 1, C))
    smoothed_sum = sp.collect(
        pull_out_of_sums(evaluate(Sum(smoothed(c), (c, 1, C)))), Sum(y[c], (c, 1, C))
    )

    # The gradient, for any coefficients: through the softmax Jacobian, by name.

    of_logits = -Sum(a[c] * (z[c] - log(Sum(exp(z[k]), (k, 1, C)))), (c, 1, C))
    differentiated = evaluate(sp.diff(of_logits, z[j]))
    gradient = differentiated.subs(exp(z[j]), S[j] * Sum(exp(z[k]), (k, 1, C)))
    gradient = sp.expand(sp.simplify(gradient))
    r = class_index("r")  # the coefficients' own index, apart from the c a renaming may use
    total = Sum(a[r], (r, 1, C))
    shortcut = S[j] * total - a[j]
    ds_dz = result("softmax_jacobian", "jacobian", i=r, j=j)  # S_r(δ_rj − S_j)
    chain = Sum(-a[r] / S[r] * ds_dz, (r, 1, C))
    if sp.simplify(gradient.xreplace({Sum(a[c], (c, 1, C)): total}) - shortcut) != 0:
        raise ValueError(f"the gradient came out as {gradient}, not {shortcut}")
    probabilities_others = result("softmax_jacobian", "one_minus_softmax", i=j)
    stable = S[j] * others(a, j, r) - a[j] * probabilities_others
    with_coefficients = {a[j]: coefficient(j), total: Sum(coefficient(c), (c, 1, C))}
    gradient_with_options = sp.factor_terms(
        sp.collect(pull_out_of_sums(evaluate(shortcut.xreplace(with_coefficients))), S[j])
    )

    ignored = {kappa: 0}
    ignored_loss = with_options.xreplace(ignored)
    ignored_gradient = shortcut.xreplace(with_coefficients)
    defaults = {kappa: 1, epsilon: 0}
    default_coefficient = coefficient(c).xreplace(defaults).xreplace({w[c]: 1})
    default_gradient = evaluate(
        shortcut.xreplace({a[j]: y[j], total: Sum(y[c], (c, 1, C))})
    ).xreplace({Sum(y[c], (c, 1, C)): 1})

    # The reduction: a mean divides the sum over the batch by a denominator that does not depend on z.
    K, ELL = sp.IndexedBase("kappa"), sp.IndexedBase("ell")
    share_total = Sum(K[b] * w[ELL[b]], (b, 1, B))  # PyTorch's N_w for class indices
    # a sample's share of the denominator: the weight of its one-hot row, Σ_c w_c y_c at y = e_ℓ
    denominator_labels = Sum(w[c] * y[c], (c, 1, C)).xreplace({y[c]: sp.KroneckerDelta(c, ell)})
    denominator_labels_value = evaluate(denominator_labels)
    Den = sp.Symbol("N_w")
    z_b = sp.IndexedBase("z")
    n = sp.Idx("n", (1, B))
    mean_loss = Sum(sp.Function("XE")(z_b[b, j]), (b, 1, B)) / Den
    mean_gradient = evaluate(sp.diff(mean_loss, z_b[n, j]))

    steps = (
        Step(
            "PyTorch's loss for a class index",
            "aten's `LossNLL.cpp` computes the label's part and the smoothing part separately: "
            "$(1 - \\epsilon)\\,w_\\ell$ times $-\\log S_\\ell$, plus $\\epsilon/C$ times the "
            "weighted sum of $-\\log S_c$ over every class. Put $y_c = \\delta_{c\\ell}$ (and "
            "$\\kappa = 1$) into the one form below: the delta collapses the first sum to the label.",
            torch_class_index,
            sp.collect(pull_out_of_sums(evaluate(at_label)), log(S[ell]) * w[ell]),
        ),
        Step(
            "PyTorch's loss for probability rows",
            "The targets are smoothed first, $t_c = (1 - \\epsilon) y_c + \\epsilon / C$, then "
            "weighted: the same coefficients $a_c = w_c t_c$, with no $\\kappa$ (probability rows "
            "cannot be ignored).",
            torch_probabilities,
            torch_probabilities.xreplace({t_c[c]: smoothed(c)}),
        ),
        Step(
            "The smoothed targets sum to 1",
            "$\\sum_c \\epsilon/C = \\epsilon$; with $\\sum_c y_c = 1$ the sum is 1: label "
            "smoothing moves mass between classes and keeps a distribution.",
            Sum(smoothed(c), (c, 1, C)),
            smoothed_sum,
        ),
        Step(
            "The gradient, for any coefficients",
            "Write $\\log S_c = z_c - \\log\\sum_k e^{z_k}$ and differentiate: the first term keeps "
            "$a_j$, the second gives $S_j$ times the sum of every coefficient. No assumption on "
            "$a$: this is why one gradient serves every option.",
            Derivative(XE, z[j]),
            shortcut,
        ),
        Step(
            "The same, through the softmax Jacobian",
            "$\\partial XE / \\partial S_r = -a_r / S_r$ times $\\partial S_r / \\partial z_j$ from the "
            "softmax page: the delta keeps $r = j$.",
            chain,
            evaluate(chain),
        ),
        Step(
            "Why the code computes it this way",
            "$\\sum_c a_c - a_j$ and $1 - S_j$ lose their digits where $a_j$ or $S_j$ is nearly "
            "all of the sum. Given $\\sum S = 1$, $S_j \\sum_c a_c - a_j = S_j \\sum_{c \\ne j} a_c "
            "- a_j \\sum_{m \\ne j} S_m$: sums of positive terms, no cancellation (both sums are "
            "computed by cumulative sums, in $O(C)$).",
            shortcut,
            stable,
        ),
        Step(
            "The options in the gradient",
            "Put in $a_c = \\kappa w_c ((1 - \\epsilon) y_c + \\epsilon/C)$.",
            shortcut,
            gradient_with_options,
        ),
    )
    identities = (
        Identity(
            "options_class_index",
            "with $y = e_\\ell$ the coefficient form is PyTorch's two-part loss for a class index",
            long=at_label,
            shortcut=torch_class_index,
            explicit=explicit_class_index,
            explicit_sizes=every(C=range(2, 5)),
            long_title="The coefficient form at $y = e_\\ell$,",
            shortcut_title="PyTorch's,",
        ),
        Identity(
            "smoothed_targets_sum",
            "the smoothed targets sum to 1 when the targets do",
            long=Sum(smoothed(c), (c, 1, C)),
            shortcut=sp.Integer(1),
            assumptions={Sum(y[c], (c, 1, C)): sp.Integer(1)},
            long_title="The sum of the smoothed targets,",
            shortcut_title="one,",
        ),
        Identity(
            "options_gradient",
            "the chain rule through the softmax gives $S_j \\sum_c a_c - a_j$ for any coefficients",
            long=chain,
            shortcut=shortcut,
            explicit=explicit_gradient,
            explicit_sizes=every(C=range(2, 6)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "options_gradient_stable",
            "the form the code computes equals $S_j \\sum_c a_c - a_j$ given $\\sum S = 1$",
            long=stable,
            shortcut=shortcut,
            assumptions={Sum(S[m], (m, 1, C)): sp.Integer(1)},
            explicit=explicit_stable_gradient,
            explicit_sizes=every(C=range(2, 6)),
            long_title="The form the code computes,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "options_ignored_loss",
            "an ignored sample ($\\kappa = 0$) adds nothing to the loss",
            long=ignored_loss,
            shortcut=sp.Integer(0),
            long_title="The loss at $\\kappa = 0$,",
            shortcut_title="zero,",
        ),
        Identity(
            "options_ignored_gradient",
            "and nothing to the gradient",
            long=ignored_gradient.xreplace(ignored),
            shortcut=sp.Integer(0),
            long_title="The gradient at $\\kappa = 0$,",
            shortcut_title="zero,",
        ),
        Identity(
            "options_defaults",
            "with the default options ($w = 1$, $\\epsilon = 0$, nothing ignored) and "
            "$\\sum y = 1$ the gradient is $S_j - y_j$, the from-logits page's",
            long=shortcut.xreplace({a[j]: default_coefficient.xreplace({c: j})}).xreplace(
                {total: Sum(default_coefficient, (c, 1, C))}
            ),
            shortcut=S[j] - y[j],
            assumptions={Sum(y[c], (c, 1, C)): sp.Integer(1)},
            long_title="The gradient with the defaults,",
            shortcut_title="$S_j - y_j$,",
        ),
        Identity(
            "options_mean_denominator",
            "a one-hot row's weight $\\sum_c w_c y_c$ at $y = e_\\ell$ is the weight of its label",
            long=denominator_labels,
            shortcut=w[ell],
            long_title="The weight of the one-hot row,",
            shortcut_title="the label's weight,",
        ),
    )
    sections = (
        Section(
            "Label smoothing",
            "`label_smoothing` $= \\epsilon$ mixes the target with the uniform distribution, "
            "$t_c = (1 - \\epsilon) y_c + \\epsilon/C$. For a class index PyTorch keeps the two "
            "parts apart (the label's, and $\\epsilon/C$ of every class's), which is the same "
            "loss (proved above). The smoothed targets still sum to 1:",
            equations=((Sum(smoothed(c), (c, 1, C)), smoothed_sum),),
            text_after="so with the default weights the gradient is still $S - t$. "
            "PyTorch once counted ignored samples in the smoothing part "
            "([pytorch#73205](https://github.com/pytorch/pytorch/issues/73205)); here an ignored "
            "sample's coefficients are all $\\kappa = 0$ times something, both parts at once.",
            place="after_steps",
        ),
        Section(
            "Class weights",
            "`weight` $= w$ multiplies each class's term, $a_c = w_c t_c$: the label's weight for "
            "the label's part, every class's own weight in the smoothing part (the combination "
            "of [pytorch#69339](https://github.com/pytorch/pytorch/issues/69339) and "
            "[#91383](https://github.com/pytorch/pytorch/issues/91383)). The gradient is the "
            "general one with these coefficients:",
            equations=((Derivative(XE, z[j]), gradient_with_options),),
            text_after="With weights, $\\sum_c a_c \\ne 1$ in general, so the gradient is not "
            "$S - a$: $S_j$ is scaled by the sample's total weight.",
            place="after_steps",
        ),
        Section(
            "An ignored sample",
            "`ignore_index` marks samples whose label is that class: $\\kappa = 0$ for them, so "
            "every coefficient is 0, and so are their loss and gradient:",
            equations=(
                (sp.Subs(with_options, kappa, 0), evaluate(ignored_loss)),
                (
                    sp.Subs(gradient_with_options, kappa, 0),
                    evaluate(ignored_gradient.xreplace(ignored)),
                ),
            ),
            text_after="Only class-index targets can be ignored. As in PyTorch, with probability "
            "rows a non-negative `ignore_index` is an error and a negative one changes nothing. "
            "An ignored label need not be a class (PyTorch's usual −100).",
            place="after_steps",
        ),
        Section(
            "The reduction, and the mean's denominator",
            '`reduction="sum"` adds the losses of the batch; `"mean"` divides that sum by a '
            "denominator $N_w$ that does not depend on the logits, so each sample's gradient is "
            "its own divided by $N_w$:",
            equations=(
                (Derivative(mean_loss, z_b[n, j]), mean_gradient),
                (denominator_labels, denominator_labels_value),
                (Den, share_total),
            ),
            text_after="For class indices each sample's share of $N_w$ is the weight of its "
            "one-hot row (the second line) times $\\kappa_b$, so PyTorch's $N_w$ is the third "
            "line, the sum of the weights of the labels not ignored, so the mean is a weighted average of the samples' losses "
            "(both of label smoothing's parts are divided by it). For probability rows there is "
            "no single class whose weight to take, and PyTorch divides by the number of "
            'samples $B$, whatever the weights. The gradient of `reduction="sum"` is each '
            "sample's own; `weight_grad` is the gradient of the mean.\n\n"
            "**A mean over no samples.** When every label is ignored (or weighs 0), $N_w = 0$: "
            "PyTorch returns nan. Here it is a `ValueError` naming the targets, as every mean "
            "over no samples is in this project; an empty batch is refused for every "
            'reduction (PyTorch returns 0 for `"sum"` and an empty array for `"none"`).',
            place="after_steps",
        ),
        Section(
            "The defaults",
            "With `weight=None`, `ignore_index=None`, `label_smoothing=0.0` and "
            '`reduction="none"` the coefficients are the targets, $a_c = y_c$, and the gradient '
            "is the from-logits page's $S_j - y_j$ (proved above, with $\\sum_c y_c = 1$):",
            equations=(
                (sp.Subs(coefficient(c), (kappa, epsilon, w[c]), (1, 0, 1)), default_coefficient),
                (sp.Subs(shortcut, a, y), default_gradient),
            ),
            text_after="the generated functions "
            "then run exactly as without options; the options' code is taken only when an "
            "option is set.",
            place="after_steps",
        ),
    )
    return Derivation(
        name="cross_entropy_options",
        title="Cross-entropy options",
        summary="PyTorch's `cross_entropy` options, derived: class weights, an ignored class, "
        "label smoothing and the reduction. Class indices and probability rows are one "
        "per-sample loss, $-\\sum_c a_c \\log S_c$, each with its own coefficients $a_c$; its "
        "gradient in the logits is $S_j \\sum_c a_c - a_j$ whatever the coefficients.",
        definitions=(
            Definition(
                XE,
                loss,
                "with $S = \\operatorname{softmax}(z)$ and coefficients $a_c \\ge 0$: "
                "$\\kappa$ is 0 for an ignored sample and 1 otherwise, $w$ the class weights, "
                "$\\epsilon$ the label smoothing.",
            ),
            Definition(
                a[c], coefficient(c), "for one-hot (class index) or probability targets $y$."
            ),
            Definition(S[c], softmax(c)),
        ),
        steps=steps,
        identities=identities,
        kernels=(),
        sections=sections,
        examples=EXAMPLES,
        results={
            "coefficient": coefficient(c),
            "gradient": shortcut,
            "stable_gradient": stable,
            "loss": loss,
        },
    )
