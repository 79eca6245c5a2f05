"""PyTorch's cross-entropy options, derived: class weights, an ignored class, label smoothing,
and the reduction. Both kinds of target are one per-sample form, −Σ_c a_c log S_c."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp
from sympy import Derivative, Matrix, Sum, exp, log

from derive.derivations import result
from derive.model import (
    C,
    D,
    S,
    class_index,
    explicit_softmax,
    explicit_vector,
    input_index,
    softmax,
    x,
    y,
    z,
)
from derive.proofs import vanishes
from derive.steps import (
    Definition,
    Derivation,
    Example,
    Exercise,
    Figure,
    Identity,
    MatrixResult,
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
    "weight",
    None,
    "weights",
    "class weights w, shape (C,), non-negative (checked outside `jax.jit`; default: all 1).",
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
    "PyTorch; a mean over no samples is a ValueError, nan under `jax.jit`).",
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


def others(base: sp.IndexedBase, j: sp.Idx, n: sp.Idx) -> sp.Expr:
    """Σ_{n≠j} base_n, written as the printer computes it without a subtraction."""
    return Sum((1 - sp.KroneckerDelta(j, n)) * base[n], (n, 1, C))


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
    """S_j Σ_{c≠j} a_c − a_j Σ_{n≠j} S_n and S_j Σ_c a_c − a_j, for an explicit softmax."""
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


def _smoothed_optimum(answer) -> bool:
    """True if the answer's logit gap z_1 − z_2 makes the two-class smoothed loss (label 1, no
    weights) stationary: its derivative in z_1, from the definition, vanishes there."""
    first, second = z[1], z[2]
    if not isinstance(answer, sp.Eq) or sp.expand(answer.lhs - (first - second)) != 0:
        return False
    p = explicit_softmax(Matrix([first, second]))
    targets = (1 - epsilon + epsilon / 2, epsilon / 2)  # (1 − ε)δ_c1 + ε/2
    loss = -sum(t * log(q) for t, q in zip(targets, p))
    slope = sp.diff(loss, first).xreplace({first: second + answer.rhs})
    return vanishes(slope) and answer.rhs.has(epsilon)


# -- figures: where the loss is minimised, and calibration -----------------------------------


def separable_toy():
    """Three well-separated clusters of 20 points in the plane, and a constant 1 (the bias)."""
    rng = np.random.default_rng(0)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    labels = np.repeat(np.arange(3), 20)
    points = centres[labels] + 0.4 * rng.standard_normal((60, 2))
    return np.hstack([points, np.ones((60, 1))]), labels


def train_separable(generated, penalty: float, steps: int = 2000, rate: float = 1.0) -> dict:
    """Gradient descent on the separable toy set, mean cross-entropy + (penalty/2)‖W‖², from 0:
    ‖W‖ after every step, the loss (without the penalty) at every tenth, the last weights."""
    inputs, labels = separable_toy()
    one_hot = np.eye(3)[labels]
    weights = np.zeros((3, 3))
    norms, losses = [0.0], []
    for step in range(steps):
        if step % 10 == 0:
            losses.append(
                generated.cross_entropy_from_logits(
                    generated.summation(inputs, weights), labels
                ).mean()
            )
        weights = weights - rate * (
            generated.weight_grad(inputs, weights, one_hot) + penalty * weights
        )
        norms.append(np.linalg.norm(weights))
    return {"norm": np.array(norms), "loss": np.array(losses), "every": 10, "weights": weights}


def _weights_grow(fig, generated, posts) -> None:
    from derive.figures import margins

    left, right = fig.subplots(1, 2)
    margins(fig, left=0.4, right=0.15, bottom=0.62, top=0.35, wspace=0.2)
    for penalty in (0.0, 1e-2):
        run = train_separable(generated, penalty)
        name = "no penalty" if penalty == 0 else f"l₂ = {penalty:g}"
        steps = np.arange(len(run["norm"]))
        left.semilogx(steps[1:], run["norm"][1:], label=f"{name}: {run['norm'][-1]:.2f} at the end")
        right.loglog(np.arange(len(run["loss"])) * run["every"] + 1, run["loss"], label=name)
    left.set_title("‖W‖ after each step", fontsize=9)
    right.set_title("mean loss (without the penalty)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("gradient-descent step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


def digits():
    """scikit-learn's bundled digits (8 x 8 images, 10 classes): pixels / 16, and a constant 1.

    Read from the file scikit-learn ships, as ``load_digits`` reads it, without importing it.
    """
    import importlib.util

    (package,) = importlib.util.find_spec("sklearn").submodule_search_locations
    table = np.loadtxt(Path(package) / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    pixels, labels = table[:, :-1] / 16, table[:, -1].astype(np.int64)
    return np.hstack([pixels, np.ones((len(pixels), 1))]), labels


CALIBRATION_RUNS = (  # (name, training samples, penalty, steps, rate)
    ("l₂ = 0.01, 1000 training images, 200 steps", 1000, 1e-2, 200, 1.0),
    ("no penalty, 100 training images, 3000 steps", 100, 0.0, 3000, 4.0),
)


def reliability(confidence, correct, bins: int = 10) -> tuple:
    """Per bin of confidence: the mean confidence, the accuracy and the share of samples; and
    the expected calibration error, Σ share · |accuracy − confidence|."""
    which = np.clip((confidence * bins).astype(int), 0, bins - 1)
    kept = [k for k in range(bins) if np.any(which == k)]
    mean = np.array([confidence[which == k].mean() for k in kept])
    accuracy = np.array([correct[which == k].mean() for k in kept])
    share = np.array([np.mean(which == k) for k in kept])
    return mean, accuracy, share, float(np.sum(share * np.abs(accuracy - mean)))


def _calibration(fig, generated, posts) -> None:
    inputs, labels = digits()
    order = np.random.default_rng(0).permutation(len(labels))
    test = order[1000:]
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8, label="calibrated")
    for name, n, penalty, steps, rate in CALIBRATION_RUNS:
        train = order[:n]
        images, one_hot = inputs[train], np.eye(10)[labels[train]]  # gathered once, not per step
        weights = np.zeros((inputs.shape[1], 10))
        for _ in range(steps):
            gradient = generated.weight_grad(images, weights, one_hot) + penalty * weights
            weights = weights - rate * gradient
        probabilities = generated.softmax(generated.summation(inputs[test], weights))
        confidence = probabilities.max(axis=1)
        correct = probabilities.argmax(axis=1) == labels[test]
        mean, accuracy, share, error = reliability(confidence, correct)
        ax.plot(
            mean,
            accuracy,
            "o-",
            label=f"{name}: accuracy {correct.mean():.2f}, mean confidence "
            f"{confidence.mean():.2f}, ECE {error:.3f}",
        )
    ax.set_xlabel("confidence (largest probability), mean per bin of width 0.1")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"digits: reliability on the {len(test)} held-out images", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


WEIGHTED_TARGET = (
    sp.Rational(1, 2),
    sp.Rational(1, 2),
)  # t: an input seen with each label half the time
WEIGHTS = (3, 1)  # w: class 1 weighs 3
OPTIMUM = sp.Symbol("S_1^*")  # the exercise's answer names it


def _weighted_optimum(answer) -> bool:
    """True if the answer's S_1 makes the two-class loss −Σ_c w_c t_c log S_c stationary: its
    derivative in z_1 (from the definition, z_2 = 0, z_1 = log(S_1/(1 − S_1))) vanishes."""
    if not isinstance(answer, sp.Eq) or answer.lhs != OPTIMUM or not 0 < answer.rhs < 1:
        return False
    first = sp.Symbol("z_1", real=True)
    p = explicit_softmax(Matrix([first, 0]))
    loss = -sum(wc * tc * log(pc) for wc, tc, pc in zip(WEIGHTS, WEIGHTED_TARGET, p))
    slope = sp.diff(loss, first).xreplace({first: log(answer.rhs / (1 - answer.rhs))})
    return vanishes(slope)


GAP = sp.Symbol("z_\\ell - z_c")  # the second exercise's answer names it


def _smoothed_gap(answer) -> bool:
    """True if, at C = 2..4, logits with z_ℓ − z_c equal to the answer for every c ≠ ℓ make every
    entry of the smoothed loss's gradient (from its definition) vanish, for symbolic ε."""
    if not isinstance(answer, sp.Eq) or answer.lhs != GAP:
        return False
    for n in range(2, 5):
        logits = explicit_vector("z", n)
        gap = answer.rhs.xreplace({C: n})
        p = explicit_softmax(logits)
        targets = [(1 - epsilon) * int(c == 0) + epsilon / n for c in range(n)]  # ℓ: the first
        loss = -sum(t * log(q) for t, q in zip(targets, p))
        at = {logits[0]: gap, **{logits[c]: 0 for c in range(1, n)}}
        for c in range(n):
            slope = sp.diff(loss, logits[c]).xreplace(at)
            if not vanishes(slope):
                return False
    return answer.rhs.has(epsilon)


def optimum_steps(shortcut, total, j, k, c, r, ell) -> tuple[Step, ...]:
    """Where the loss is smallest: never 0 for one-hot targets; S = t with smoothing (or any
    target distribution); S ∝ w ⊙ t with class weights; reached by finite logits only when
    every target is positive."""
    q = sp.IndexedBase("q")  # a target distribution: every q_c ≥ 0, Σ_c q_c = 1
    t_c = sp.IndexedBase("t")  # the smoothed targets
    smoothed_where = ((t_c[r], smoothed(r)),)  # t_r through y and ε
    weights_optimum = w[j] * t_c[j] / Sum(w[r] * t_c[r], (r, 1, C))
    weighted = {a[j]: w[j] * t_c[j], total: Sum(w[r] * t_c[r], (r, 1, C))}
    return (
        Step(
            "One-hot targets: the loss is never 0",
            "For a sample of class $\\ell$ with no options the loss is $-\\log S_\\ell$; "
            "divide numerator and denominator of $S_\\ell$ by $e^{z_\\ell}$. The sum has the "
            "term $k = \\ell$, which is 1, and every other term is positive: the loss is "
            "$\\log$ of a number above 1, **positive for every finite $z$**. It approaches 0 "
            "only as every $z_k - z_\\ell \\to -\\infty$: the infimum is not a minimum.",
            -log(S[ell]),
            log(Sum(exp(z[k] - z[ell]), (k, 1, C))),
            start="the loss of one sample of class $\\ell$, no options",
            checked="numeric",  # SymPy does not pull e^{-z_ℓ} into the sum in index form
            key="never-zero",
        ),
        Step(
            "The expected loss over the labels",
            "Draw the label $\\ell$ with probability $q_\\ell$ (the conditional distribution "
            "of the label given the input). The expected one-hot loss is the cross-entropy with "
            "the target $q$: the delta keeps $c = \\ell$.",
            Sum(q[ell] * -Sum(sp.KroneckerDelta(c, ell) * log(S[c]), (c, 1, C)), (ell, 1, C)),
            -Sum(q[c] * log(S[c]), (c, 1, C)),
            start="the mean over labels drawn from $q$",
            key="expected-loss",
        ),
        Step(
            "Any target distribution: the gradient vanishes at S = q",
            "The gradient for coefficients $a = q$ with $\\sum_r q_r = 1$, at $S = q$. The "
            "gradient $S_j \\sum_r a_r - a_j$ vanishes only there (solve it for $S_j$), and "
            "the loss is convex in $z$ (its Hessian is $\\sum_r a_r$ times $\\mathrm{diag}(S) "
            "- S S^T$, positive semi-definite: the [second-order page](second-order.md)), so "
            "$S = q$ is **the minimum**. The loss is a *proper scoring rule*: its expectation "
            "is smallest when the model's probabilities are the labels' own, which is what "
            "makes a model trained with it able to be calibrated.",
            shortcut.xreplace({a[j]: q[j], total: Sum(q[r], (r, 1, C))}).xreplace({S[j]: q[j]}),
            sp.Integer(0),
            relation="=>",
            given=((Sum(q[r], (r, 1, C)), sp.Integer(1)),),
            start="the gradient ({step:gradient}) with $a = q$, at $S = q$",
            key="optimum",
        ),
        Step(
            "Label smoothing: the optimum is S = t",
            "With smoothing and no weights the coefficients are the smoothed targets $t$, which "
            "sum to 1 ({step:smoothed-targets-sum}): {step:optimum} with $q = t$. Every $t_c "
            "\\ge \\epsilon/C > 0$, so the optimum has finite logits ({step:finite-logits}).",
            shortcut.xreplace({a[j]: t_c[j], total: Sum(t_c[r], (r, 1, C))}).xreplace(
                {S[j]: t_c[j]}
            ),
            sp.Integer(0),
            relation="=>",
            given=((Sum(y[r], (r, 1, C)), sp.Integer(1)),),
            where=smoothed_where,
            start="the gradient ({step:gradient}) with $a = t$, at $S = t$",
            checked="explicit",  # Σ_r ε/C is left a sum of 1s in index form
            key="smoothing-optimum",
        ),
        Step(
            "Class weights: the optimum is S ∝ w ⊙ t",
            "With class weights $a_c = w_c t_c$, which need not sum to 1. The gradient "
            "$S_j \\sum_r w_r t_r - w_j t_j$ vanishes exactly at $S_j = w_j t_j / \\sum_r "
            "w_r t_r$ (and the loss is $\\sum_r w_r t_r$ times the cross-entropy with that "
            "target, convex): what is proved is that, **for one input whose target (or "
            "label distribution) is $t$, with its logits free**, the weighted loss is smallest "
            "where the probabilities are $t$ reweighted by $w$ and renormalised. With a one-hot "
            "$t$ that is $e_\\ell$ whatever $w$: a weight changes nothing about one sample's "
            "optimum, only how hard it pulls against the others when they share weights (a "
            "model that cannot give every input its own logits).",
            # unevaluated, so the page shows the product before it cancels
            sp.UnevaluatedExpr(weights_optimum) * weighted[total] - weighted[a[j]],
            sp.Integer(0),
            start="the gradient ({step:gradient}) with $a = w \\odot t$, at $S_j = w_j t_j / "
            "\\sum_r w_r t_r$",
            key="weighted-optimum",
        ),
        Step(
            "Reached with finite logits when every target is positive",
            "$z_c = \\log q_c$ gives $S = q$ (any constant may be added to every logit). A "
            "target with a zero entry, a one-hot row, has no finite logits: $\\log 0 = "
            "-\\infty$, {step:never-zero} again.",
            # unevaluated, so the page shows e^{log q} before it cancels
            exp(sp.UnevaluatedExpr(log(q[j]))) / Sum(exp(sp.UnevaluatedExpr(log(q[k]))), (k, 1, C)),
            q[j],
            relation="=>",
            given=((Sum(q[k], (k, 1, C)), sp.Integer(1)),),
            start="the softmax at $z_c = \\log q_c$",
            checked="explicit",  # log of an unsigned q is not cancelled in index form
            key="finite-logits",
        ),
    )


# -- how fast ‖W‖ grows on separable data ----------------------------------------------------

scale = sp.Symbol("s", positive=True)  # how far along a separating direction: W = sU
margin = sp.Symbol("gamma", positive=True)  # the separating direction's margin
flow_time = sp.Symbol("tau", positive=True)  # gradient flow's time: steps times step size
LOSS_AT = sp.Symbol("\\varepsilon", positive=True)  # the exercise's target loss
REACHED = sp.Symbol("s_\\varepsilon")  # the exercise's answer names the scale


def _scale_for_loss(answer) -> bool:
    """True if the answer's scale s puts the loss log(1 + e^{−sγ}) along the ray exactly at ε,
    for symbolic ε > 0 and γ > 0."""
    if not isinstance(answer, sp.Eq) or answer.lhs != REACHED:
        return False
    along = log(1 + exp(-scale * margin)).xreplace({scale: answer.rhs})
    return vanishes(along - LOSS_AT)


def growth_steps(k, ell) -> tuple[Step, ...]:
    """On separable data: the logit gaps of W = sU scale with s, so along a separating direction
    of margin γ the loss of a sample at the margin is log(1 + e^{−sγ}) ~ e^{−sγ}, never 0; and
    gradient flow on that loss moves s like log(τ)/γ."""
    U, m = sp.IndexedBase("U"), sp.IndexedBase("mu")  # a direction shaped like W; the margins
    j = input_index("d")  # inputs: j counts classes on this page
    gap = Sum(scale * U[j, k] * x[j], (j, 1, D)) - Sum(scale * U[j, ell] * x[j], (j, 1, D))
    along = sp.Function("s")(flow_time)  # s as gradient flow moves it
    on_ray = log(1 + exp(-scale * margin))
    slope = ((Derivative(along, flow_time), margin / (1 + exp(margin * along))),)
    elapsed = sp.Symbol("\\tau(s)")  # the time gradient flow takes to reach s, from s = 0
    return (
        Step(
            "Along a separating direction, the logit gaps scale",
            "Let a direction $U$ (shaped like $W$) separate the data: for every sample, $\\mu_k = "
            "\\sum_d (U_{d\\ell} - U_{dk}) x_d \\ge \\gamma > 0$ for each class $k \\ne \\ell$, "
            "the sample's label. The logits of $W = sU$ are linear in $s$: every gap $z_k - "
            "z_\\ell$ is $-s \\mu_k$, so {step:never-zero}'s loss $\\log(1 + \\sum_{k \\ne \\ell} "
            "e^{z_k - z_\\ell})$ falls toward 0 as $s$ grows, for every sample at once.",
            gap,
            -scale * m[k],
            where=((m[k], Sum((U[j, ell] - U[j, k]) * x[j], (j, 1, D))),),
            start="the gap $z_k - z_\\ell$ at $W = sU$",
            key="logit-gaps",
        ),
        Step(
            "The loss along the ray is about $e^{-s\\gamma}$, never 0",
            "Take a sample at the margin with two classes (or the one other class whose gap is "
            "$\\gamma$): its loss along the ray is $\\log(1 + e^{-s\\gamma})$, positive for every "
            "finite $s$ ({step:never-zero}). Its ratio to $e^{-s\\gamma}$ tends to 1: the loss "
            "vanishes exponentially in $s$, so each halving of it costs the same length $\\log 2 / "
            "\\gamma$ more. With $C$ classes and any samples, $\\log(1 + u) \\le u$ bounds the "
            "mean loss by $(C - 1) e^{-s\\gamma}$ (an inequality the page states, not a checked "
            "step).",
            sp.Limit(on_ray * exp(scale * margin), scale, sp.oo),
            sp.Integer(1),
            start="the loss along the ray over $e^{-s\\gamma}$, as $s \\to \\infty$",
            key="loss-along-ray",
        ),
        Step(
            "The loss pushes s outward, ever more weakly",
            "Gradient flow (gradient descent with infinitesimal steps; $\\tau$ counts steps "
            "times the step size) on this loss moves $s$ at the speed $-\\partial L / "
            "\\partial s$: positive for every $s$, so $s$ never stops growing, but falling "
            "like $\\gamma e^{-s\\gamma}$.",
            -Derivative(on_ray, scale),
            margin / (1 + exp(margin * scale)),
            start="the speed $ds/d\\tau = -\\partial L/\\partial s$ of gradient flow along the ray",
            key="outward-speed",
        ),
        Step(
            "A quantity that grows exactly like τ",
            "Along the flow, $s + (e^{\\gamma s} - 1)/\\gamma$ grows at the constant rate "
            "$\\gamma$: from $s(0) = 0$, $s + (e^{\\gamma s} - 1)/\\gamma = \\gamma \\tau$ "
            "exactly. So $e^{\\gamma s} \\le 1 + \\gamma^2 \\tau$: $s$ can grow no faster "
            "than $\\log(1 + \\gamma^2\\tau)/\\gamma$.",
            Derivative(along + (exp(margin * along) - 1) / margin, flow_time),
            margin,
            relation="=>",
            given=slope,
            start="the rate of change of $s + (e^{\\gamma s} - 1)/\\gamma$",
            key="grows-like-time",
        ),
        Step(
            "So ‖W‖ grows like log(τ)/γ",
            "Invert {step:grows-like-time}: reaching $s$ takes $\\tau(s) = (s + (e^{\\gamma s} - 1)/"
            "\\gamma)/\\gamma$. As $s \\to \\infty$ (and with it $\\tau$), $\\log(\\gamma^2 "
            "\\tau)/\\gamma - s \\to 0$: $s = \\|W\\|$ (for a unit $U$) grows like $\\log(\\tau)"
            "/\\gamma$, without bound and ever more slowly.",
            sp.Limit(log(margin**2 * elapsed) / margin - scale, scale, sp.oo),
            sp.Integer(0),
            where=((elapsed, (scale + (exp(margin * scale) - 1) / margin) / margin),),
            start="$\\log(\\gamma^2 \\tau(s))/\\gamma - s$, as $s \\to \\infty$",
            key="norm-grows",
        ),
    )


def derive():
    c, j, k, other = (class_index(n) for n in ("c", "j", "k", "n"))  # other: Σ_{n≠j} S_n
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
    # PyTorch, probability rows: the targets smoothed, then weighted.
    t_c = sp.IndexedBase("t")
    torch_probabilities = -Sum(w[c] * t_c[c] * log(S[c]), (c, 1, C))
    smoothed_sum = sp.collect(
        pull_out_of_sums(evaluate(Sum(smoothed(c), (c, 1, C)))), Sum(y[c], (c, 1, C))
    )
    targets_sum = ((Sum(y[c], (c, 1, C)), sp.Integer(1)),)  # Σ_c y_c = 1
    smoothed_total = sp.simplify(smoothed_sum.xreplace({Sum(y[c], (c, 1, C)): sp.Integer(1)}))

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
    through_jacobian = sp.collect(pull_out_of_sums(evaluate(chain)), S[j])
    if sp.simplify(gradient.xreplace({Sum(a[c], (c, 1, C)): total}) - shortcut) != 0:
        raise ValueError(f"the gradient came out as {gradient}, not {shortcut}")
    probabilities_others = result("softmax_jacobian", "one_minus_softmax", i=j)
    stable = S[j] * others(a, j, r) - a[j] * probabilities_others
    with_coefficients = {a[j]: coefficient(j), total: Sum(coefficient(r), (r, 1, C))}
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
    K, Y = sp.IndexedBase("kappa"), sp.IndexedBase("y")
    # PyTorch's N_w for class indices: Σ_b of the weight of sample b's target row (zeros if ignored)
    share_total = Sum(Sum(w[c] * Y[b, c], (c, 1, C)), (b, 1, B))
    # a sample's share of the denominator: the weight of its one-hot row, Σ_c w_c y_c at y = e_ℓ
    denominator_labels = Sum(w[c] * y[c], (c, 1, C)).xreplace({y[c]: sp.KroneckerDelta(c, ell)})
    denominator_labels_value = evaluate(denominator_labels)
    Den = sp.Symbol("N_w")
    z_b, XE_b, S_b, A_b = (sp.IndexedBase(n) for n in ("z", "XE", "S", "a"))
    sample = sp.Idx("b'", (1, B))  # one sample, apart from the sum's b
    # sample b's loss, probabilities and coefficients: functions of its own row z_b
    batched = (
        (XE_b[b], -Sum(A_b[b, c] * log(S_b[b, c]), (c, 1, C))),
        (S_b[b, c], exp(z_b[b, c]) / Sum(exp(z_b[b, k]), (k, 1, C))),
        (A_b[b, c], K[b] * w[c] * ((1 - epsilon) * Y[b, c] + epsilon / C)),
    )
    mean_loss = Sum(XE_b[b], (b, 1, B)) / Den
    # SymPy differentiates the mean with each sample's loss written out through its row
    row_loss = -Sum(A_b[b, c] * (z_b[b, c] - log(Sum(exp(z_b[b, k]), (k, 1, C)))), (c, 1, C))
    mean_gradient = sp.diff(Sum(row_loss, (b, 1, B)) / Den, z_b[sample, j])
    for _ in range(2):  # the deltas of b and b', then of the classes
        mean_gradient = evaluate(pull_out_of_sums(sp.expand(evaluate(mean_gradient))))
    mean_gradient = sp.factor_terms(
        sp.expand(
            mean_gradient.subs(
                exp(z_b[sample, j]), S_b[sample, j] * Sum(exp(z_b[sample, k]), (k, 1, C))
            )
        )
    )

    steps = (
        Step(
            "PyTorch's loss for a class index",
            "Put $y_c = \\delta_{c\\ell}$ (the one-hot row of the label $\\ell$) and $\\kappa = 1$ "
            "into the coefficient form: the delta collapses the first part of the sum to the "
            "label. What is left is what aten's `LossNLL.cpp` computes for a class index, "
            "keeping two parts apart: $(1 - \\epsilon)\\,w_\\ell$ times $-\\log S_\\ell$, plus "
            "$\\epsilon/C$ times the weighted sum of $-\\log S_c$ over every class.",
            with_options,
            torch_class_index,
            where=((y[c], sp.KroneckerDelta(c, ell)), (kappa, sp.Integer(1))),
            key="class-index-loss",
        ),
        Step(
            "PyTorch's loss for probability rows",
            "The targets are smoothed first, $t_c = (1 - \\epsilon) y_c + \\epsilon / C$, then "
            "weighted: the same coefficients $a_c = w_c t_c$, with no $\\kappa$ (probability rows "
            "cannot be ignored).",
            torch_probabilities,
            torch_probabilities.xreplace({t_c[c]: smoothed(c)}),
            where=((t_c[c], smoothed(c)),),
            start="PyTorch's loss for probability rows",
        ),
        Step(
            "The smoothed targets sum to 1",
            "$\\sum_c \\epsilon/C = \\epsilon$, and with $\\sum_c y_c = 1$ the rest is "
            "$1 - \\epsilon$: label smoothing moves mass between classes and keeps a distribution.",
            Sum(smoothed(c), (c, 1, C)),
            smoothed_total,
            relation="=>",
            given=targets_sum,
            start="the sum of the smoothed targets",
            checked="explicit",  # in index form Σ_c ε/C is left as a sum of 1s: not cancelled
            key="smoothed-targets-sum",
        ),
        Step(
            "The gradient, for any coefficients",
            "Write $\\log S_c = z_c - \\log\\sum_k e^{z_k}$ and differentiate: the first term keeps "
            "$a_j$, the second gives $S_j$ times the sum of every coefficient. No assumption on "
            "$a$: this is why one gradient serves every option (the first proof below checks it "
            "with the coefficients left free).",
            Derivative(XE, z[j]),
            shortcut,
            start="the loss",
            checked="explicit",  # the sums' variables differ on the two sides: not matched in index form
            key="gradient",
        ),
        Step(
            "The same, through the softmax Jacobian",
            "$\\partial XE / \\partial S_r = -a_r / S_r$ times $\\partial S_r / \\partial z_j = "
            "S_r(\\delta_{rj} - S_j)$ from the softmax page: $S_r$ cancels, and the delta keeps "
            "$r = j$.",
            Sum(Derivative(XE, S[r]) * Derivative(S[r], z[j]), (r, 1, C)),
            through_jacobian,
            start="the chain rule through $S$",
        ),
        Step(
            "Why the code computes it this way",
            "$\\sum_c a_c - a_j$ and $1 - S_j$ lose their digits where $a_j$ or $S_j$ is nearly "
            "all of the sum. Given $\\sum S = 1$, $S_j \\sum_c a_c - a_j = S_j \\sum_{c \\ne j} a_c "
            "- a_j \\sum_{n \\ne j} S_n$: each sum adds terms of one sign, so neither loses digits "
            "(both are computed in $O(C)$ without subtracting an entry from a sum it is nearly all of). With a class index and no smoothing "
            "only $a_\\ell$ is nonzero, so each entry is one product: $-a_\\ell \\sum_{n \\ne \\ell} "
            "S_n$ at the label, $S_j a_\\ell$ elsewhere, and nothing is subtracted at all. With "
            "smoothing or soft targets the two products are subtracted, and cancel where the "
            "entry is small next to them: its error is then relative to the products, not to it.",
            shortcut,
            stable,
            relation="=>",
            given=((Sum(S[other], (other, 1, C)), sp.Integer(1)),),
        ),
        Step(
            "The options in the gradient",
            "Put in $a_c = \\kappa w_c ((1 - \\epsilon) y_c + \\epsilon/C)$.",
            shortcut,
            gradient_with_options,
            start=4,
        ),
        Step(
            "The mean's gradient",
            '`reduction="mean"` divides the sum of the batch\'s losses by a denominator $N_w$ '
            "that does not depend on the logits. Each sample's loss $XE_b$ depends only on its "
            "own row $z_b$, so only the term $b = b'$ depends on $z_{b'j}$: each sample's "
            "gradient is its own, divided by $N_w$.",
            Derivative(mean_loss, z_b[sample, j]),
            mean_gradient,
            where=batched,
            start="the mean over a batch",
            key="mean-gradient",
        ),
    )
    steps += optimum_steps(shortcut, total, j, k, c, r, ell)
    steps += growth_steps(k, ell)
    identities = (
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
            assumptions={Sum(S[other], (other, 1, C)): sp.Integer(1)},
            explicit=explicit_stable_gradient,
            explicit_sizes=every(C=range(2, 6)),
            long_title="The form the code computes,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "smoothed_targets_sum",
            "the smoothed targets sum to 1 when the targets do, for every $C$",
            long=Sum(smoothed(c), (c, 1, C)),
            shortcut=sp.Integer(1),
            assumptions={Sum(y[c], (c, 1, C)): sp.Integer(1)},
            long_title="The sum of the smoothed targets,",
            shortcut_title="one,",
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
    # exercises: a class weight scales its samples' gradient; smoothing keeps the logits finite
    weighted = {kappa: 1, epsilon: 0}
    at_class = {y[j]: sp.KroneckerDelta(j, ell), y[r]: sp.KroneckerDelta(r, ell)}
    weighted_gradient = shortcut.xreplace(
        {
            a[j]: coefficient(j).xreplace(weighted),
            total: Sum(coefficient(r).xreplace(weighted), (r, 1, C)),
        }
    ).xreplace(at_class)
    gap = z[1] - z[2]
    exercises = (
        Exercise(
            "With class weights $w$ and no smoothing, a sample of class $\\ell$ has coefficients "
            "$a_c = w_c \\delta_{c\\ell}$. What is its gradient $\\partial XE / \\partial z_j$, "
            "and what does a class weight do to training?",
            sp.Eq(Derivative(XE, z[j]), w[ell] * (S[j] - sp.KroneckerDelta(j, ell))),
            Identity(
                "options_weighted_class_gradient",
                "with $a_c = w_c \\delta_{c\\ell}$ the gradient $S_j \\sum_r a_r - a_j$ is "
                "$w_\\ell (S_j - \\delta_{j\\ell})$",
                long=weighted_gradient,
                shortcut=w[ell] * (S[j] - sp.KroneckerDelta(j, ell)),
                long_title="The gradient with $a_c = w_c \\delta_{c\\ell}$,",
                shortcut_title="$w_\\ell (S_j - \\delta_{j\\ell})$,",
            ),
            answer="$\\sum_r a_r = w_\\ell$ and $a_j = w_\\ell \\delta_{j\\ell}$, so the gradient is "
            "$w_\\ell (S_j - \\delta_{j\\ell})$: the unweighted gradient scaled by the weight of the "
            "sample's class. A sample of a class of weight 2 pushes as hard as two copies of it "
            "(for the sum; the mean also divides by $N_w$). SymPy proves it for symbolic $C$.",
            title="A class weight scales its samples' gradient",
        ),
        Exercise(
            "Take $C = 2$, the label class 1, no weights, and label smoothing $\\epsilon > 0$. "
            "For which logit gap $z_1 - z_2$ is the loss smallest? What happens as "
            "$\\epsilon \\to 0$?",
            sp.Eq(gap, log((2 - epsilon) / epsilon)),
            _smoothed_optimum,
            answer="The gradient in $z_1$ is $S_1 - t_1$ with $t_1 = 1 - \\epsilon/2$, zero where "
            "$S_1 = \\sigma(z_1 - z_2) = 1 - \\epsilon/2$, that is at $z_1 - z_2 = "
            "\\log((2 - \\epsilon)/\\epsilon)$: a finite gap, so a smoothed model stops pushing its "
            "logits apart. As $\\epsilon \\to 0$ the gap grows without bound, as it does without "
            "smoothing, where the loss only approaches its infimum 0. SymPy differentiates the "
            "two-class loss from its definition and finds the slope 0 at the answer's gap.",
            title="Smoothing keeps the logits finite",
        ),
    )
    exercises += (
        Exercise(
            "An input is seen with label 1 half the time and label 2 half the time, so its "
            "target is $t = (1/2, 1/2)$, and class 1 has weight $w_1 = 3$, class 2 weight "
            "$w_2 = 1$. Which probability $S_1$ minimises its weighted loss? Is the model still "
            "calibrated?",
            sp.Eq(OPTIMUM, sp.Rational(3, 4)),
            _weighted_optimum,
            answer="$S \\propto w \\odot t = (3/2, 1/2)$, so $S_1 = 3/4$ (the step *Class "
            "weights: the optimum is S ∝ w ⊙ t*). The label is 1 half the time, so a "
            "probability of 3/4 is over-confident by design: class weights trade calibration "
            "for recall of the heavier class. SymPy writes the two-class loss out, "
            "differentiates it and finds the slope 0 at the logits of the answer.",
            title="Class weights move the optimum",
        ),
        Exercise(
            "With $C$ classes, a label $\\ell$ and label smoothing $\\epsilon > 0$, the "
            "smoothed loss is smallest at $S = t$. What is the logit gap $z_\\ell - z_c$ "
            "there, for each $c \\ne \\ell$?",
            sp.Eq(GAP, log((C * (1 - epsilon) + epsilon) / epsilon)),
            _smoothed_gap,
            answer="At the optimum $S_\\ell / S_c = t_\\ell / t_c = (1 - \\epsilon + "
            "\\epsilon/C) / (\\epsilon / C)$, and $S_\\ell / S_c = e^{z_\\ell - z_c}$. The "
            "gap is finite for every $\\epsilon > 0$ and grows like $\\log(C/\\epsilon)$ as "
            "$\\epsilon \\to 0$. SymPy writes the smoothed loss out at $C = 2..4$ for a "
            "symbolic $\\epsilon$ and finds every entry of its gradient 0 at these logits.",
            title="The logits at the smoothed optimum",
        ),
        Exercise(
            "Along a separating direction with margin $\\gamma$, a sample at the margin has "
            "the loss $\\log(1 + e^{-s\\gamma})$ at $W = sU$. How far along, $s_\\varepsilon$, "
            "must the weights go for that loss to be $\\varepsilon$? How does it grow as "
            "$\\varepsilon \\to 0$?",
            sp.Eq(REACHED, log(1 / (exp(LOSS_AT) - 1)) / margin),
            _scale_for_loss,
            answer="$\\log(1 + e^{-s\\gamma}) = \\varepsilon$ gives $e^{-s\\gamma} = "
            "e^{\\varepsilon} - 1$, so $s_\\varepsilon = \\log(1/(e^{\\varepsilon} - 1))/"
            "\\gamma$, about $\\log(1/\\varepsilon)/\\gamma$ for small $\\varepsilon$: each "
            "factor of 10 off the loss costs the same distance $\\log(10)/\\gamma$ more, and "
            "a zero loss is infinitely far. SymPy puts the answer into the loss and finds "
            "$\\varepsilon$, for symbolic $\\varepsilon$ and $\\gamma$.",
            title="How far the weights go for a given loss",
        ),
    )
    sections = (
        Section(
            "Where the loss is minimised",
            "{Steps:never-zero to finite-logits} answer where the loss is smallest. With one-hot "
            "targets it has no minimum: it is positive for every finite $z$ ({step:never-zero}) "
            "and reaches its infimum 0 only as the label's logit runs away from the others. On "
            "data a linear model can separate, scaling a separating $W$ up lowers the loss of "
            "every sample, so gradient descent grows $\\|W\\|$ without bound (roughly like the "
            "logarithm of the number of steps: the next section), while an L2 penalty "
            "$\\frac{l_2}{2}\\|W\\|^2$ stops it at a finite minimum (the first figure, drawn from "
            "`weight_grad` while this page was built). With a target distribution $q$ that has no "
            "zero (label smoothing's $t$, or the distribution of an input's labels, "
            "{step:expected-loss}) the minimum is $S = q$ ({steps:optimum and smoothing-optimum}), "
            "reached with finite logits $z = \\log q$ ({step:finite-logits}). Class weights move "
            "it to $S \\propto w \\odot t$ ({step:weighted-optimum}).\n\n"
            "**Calibration.** {Step:optimum} makes the cross-entropy a proper scoring rule: in "
            "expectation over the labels it is smallest when the predicted probabilities are the "
            "true ones, so a model that could reach its minimum would be *calibrated*: of the "
            "inputs it gives probability 0.8, 80% would carry that label. A real model is not: its "
            "family is limited, it is fitted on a finite sample, and a penalty pulls its logits "
            "toward 0 (under-confident), while fitting a small sample too closely pushes them "
            "apart (over-confident). The reliability diagram (the second figure) measures it on "
            "held-out data: the samples are binned by their largest probability, and each bin's "
            "accuracy is plotted against its mean confidence; the expected calibration error (ECE) "
            "is the gap averaged over the samples.",
            place="after_steps",
        ),
        Section(
            "How fast the weights grow on separable data",
            "{Steps:logit-gaps to norm-grows} prove what can be proved in closed form. Along a "
            "direction $U$ that separates the data with margin $\\gamma > 0$, every logit gap of "
            "$W = sU$ is $-s$ times a margin ({step:logit-gaps}), so the loss of a sample at the "
            "margin is $\\log(1 + e^{-s\\gamma})$: never 0, and equal to $e^{-s\\gamma}$ to first "
            "order ({step:loss-along-ray}). Gradient flow on that loss pushes $s$ outward at a "
            "speed that never reaches 0 ({step:outward-speed}); $s + (e^{\\gamma s} - 1)/\\gamma$ "
            "grows exactly like $\\gamma\\tau$ ({step:grows-like-time}), so $s - "
            "\\log(\\gamma^2\\tau)/\\gamma \\to 0$ ({step:norm-grows}): the norm grows like the "
            "logarithm of the time, without bound.\n\n"
            "**What is proved, and what is only shown.** The steps prove it for one sample at the "
            "margin (two classes, or every sample at the same margin, which is the same loss), for "
            "gradient flow, with $W$ kept on the ray $sU$. Gradient descent on a real data set, "
            "with many samples at different margins and a finite step, also leaves the ray: that "
            "its weights still grow like $\\log t$, and turn toward the direction of the largest "
            "margin (the hard-margin SVM's), is Soudry et al.'s theorem (*The implicit bias of "
            "gradient descent on separable data*, JMLR 2018), not proved here. The first figure "
            "shows the growth on the toy data: with the step count on a logarithmic axis, "
            "$\\|W\\|$ rises about linearly.",
            place="after_steps",
        ),
        Section(
            "Label smoothing",
            "`label_smoothing` $= \\epsilon$ mixes the target with the uniform distribution, "
            "$t_c = (1 - \\epsilon) y_c + \\epsilon/C$. For a class index PyTorch keeps the two "
            "parts apart (the label's, and $\\epsilon/C$ of every class's), which is the same "
            "loss ({step:class-index-loss}). The smoothed targets still sum to 1 when the targets do:",
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
            "the label's part, every class's own weight in the smoothing part. The gradient is "
            "the general one with these coefficients (the step *The options in the gradient*):",
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
            "its own divided by $N_w$ ({step:mean-gradient}). For class indices a sample's share "
            "of $N_w$ is the weight of its target row, $\\sum_c w_c y_{bc}$: a kept sample's row "
            "is $e_{\\ell_b}$, and its share the weight of its label (the first line, proved "
            "below); an ignored sample's row is zeros, and its share 0. So PyTorch's $N_w$ is",
            equations=(
                (denominator_labels, denominator_labels_value),
                (Den, share_total),
            ),
            text_after="the sum of $w_{\\ell_b}$ over the samples kept. It never takes $w$ at an "
            "ignored label, which need not be a class: PyTorch once did, indexing $w_{-100}$ when "
            "weights, label smoothing and an ignored label were combined "
            "([pytorch#69339](https://github.com/pytorch/pytorch/issues/69339), "
            "[#91383](https://github.com/pytorch/pytorch/issues/91383)). Without smoothing a "
            "kept sample's loss is $w_{\\ell_b}(-\\log S_{b\\ell_b})$, so the mean, "
            "$\\sum_b w_{\\ell_b}(-\\log S_{b\\ell_b}) / \\sum_b w_{\\ell_b}$ over the samples kept, "
            "is the average of the unweighted losses $-\\log S_{b\\ell_b}$ with weights "
            "$w_{\\ell_b}$, not the plain mean of the weighted losses. With smoothing, both of its "
            "parts are divided by the same $N_w$. For probability rows there is no single class "
            "whose weight to take, and PyTorch divides by the number of samples $B$, whatever "
            'the weights. The gradient of `reduction="sum"` is each sample\'s own; `weight_grad` '
            "is the gradient of the mean.\n\n"
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
    a_column, S_column = sp.MatrixSymbol("a", C, 1), sp.MatrixSymbol("S", C, 1)
    matrix_result = MatrixResult(
        group="losses",
        lhs=sp.MatrixSymbol("\\nabla_{z} \\mathit{XE}", C, 1),
        rhs=S_column * (sp.OneMatrix(1, C) * a_column) - a_column,
        index_form=shortcut,
        entry=((j,), ()),
        text="Class weights, an ignored class and label smoothing only change the "
        "coefficients $a$: the gradient is $S$ times their total, minus $a$ ($\\mathbf{1}^T a$: their total).",
    )
    figures = (
        Figure(
            "separable-weights-grow.svg",
            "Gradient descent (step size 1, from W = 0, `weight_grad`) on 60 points in three "
            "well-separated clusters, mean cross-entropy with and without an L2 penalty. "
            "Without it the loss keeps falling toward 0 and ‖W‖ keeps growing (the x axis is "
            "logarithmic: roughly like log t); with l2 = 0.01 both settle.",
            _weights_grow,
        ),
        Figure(
            "calibration-digits.svg",
            "Reliability diagram of two softmax regressions on scikit-learn's digits (8 x 8 "
            "images, 10 classes), trained by gradient descent with `weight_grad` and evaluated "
            "on the same held-out images (those not trained on) with `softmax`: a penalised one is "
            "under-confident (above the diagonal), one fitted closely to 100 images "
            "over-confident (below it).",
            _calibration,
        ),
    )
    return Derivation(
        figures=figures,
        matrix_result=matrix_result,
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
        exercises=exercises,
        examples=EXAMPLES,
        results={
            "coefficient": coefficient(c),
            "gradient": shortcut,
            "stable_gradient": stable,
            "loss": loss,
        },
    )
