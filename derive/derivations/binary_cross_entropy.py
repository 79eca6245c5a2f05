"""Binary cross-entropy of a probability, and of a logit through the sigmoid, computed stably."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Max, exp, log
from sympy.codegen.cfunctions import log1p

from derive.derivations import result
from derive.figures import curves
from derive.model import C, S, class_index, softmax
from derive.model import z as z_vector
from derive.steps import (
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
)
from derive.sympy_tools import on_each_side_of_zero

p = sp.Symbol("p", positive=True)  # a predicted probability
y = sp.Symbol("y", real=True)  # the target, in [0, 1]
z = sp.Symbol("z", real=True)  # a logit: p = σ(z)
L = sp.Symbol("L")
small = sp.Symbol("e", positive=True)  # e^{-|z|}, at most 1
sig = sp.Function("sigma")(z)  # σ(z) as the page writes it; its meaning is the sigmoid page's
p_or_one = sp.Symbol("p_or_one", positive=True)  # p, or 1 where y = 0: log p is then 0
p_or_zero = sp.Symbol("p_or_zero", nonnegative=True)  # p, or 0 where y = 1: log1p(−p) is then 0
# the gradient's numerator is p_selected − y: 1 where y = 0, −1 where y = 1, p − y elsewhere
p_selected = sp.Symbol("p_selected", nonnegative=True)

NAIVE_NOTE = (
    "log(1 − p) is computed as log1p(−p): for a small p, 1 − p rounds away p's digits (float32 "
    "p = 1e−8 gives log(1 − p) = 0; log1p(−p) gives −1e−8). "
    "A term whose weight (y or 1 − y) is 0 is 0, even where its logarithm is log 0 (the "
    "limit 0 · log 0 = 0, as in scikit-learn's `log_loss`): p = y = 1 gives 0, not nan. A "
    "probability of exactly 0 or 1 against a target that gives its logarithm weight gives inf; "
    "PyTorch's `binary_cross_entropy` clamps the logarithm at -100 instead. From logits, "
    "`binary_cross_entropy_from_logits` needs neither."
)


GRAD_NOTE = (
    "The derivative of the loss as `binary_cross_entropy` computes it, where a term whose "
    "weight is 0 is 0 whatever p: so where y = 0 it is 1/(1 − p), 1 at p = 0 too, and where "
    "y = 1 it is −1/p, −1 at p = 1 too (the code selects numerator and denominator as the "
    "loss selects its logarithms, never 0/0); elsewhere (p − y)/(p(1 − p)). At p = 0 or 1 "
    "against a target that gives that logarithm weight the result is ±inf, with NumPy's "
    "warning. PyTorch's backward of `binary_cross_entropy` divides by max(p(1 − p), 1e−12) "
    "instead: 0 where p = y, about (p − y)·1e12 elsewhere. From logits, "
    "`binary_cross_entropy_from_logits_grad` (σ(z) − y) is finite for every z."
)


def _minimised_at(answer: sp.Eq) -> bool:
    """True if the loss's derivative in p vanishes at the answer and its second derivative there
    is 1/(y(1 − y)), positive for y in (0, 1): the answer is the minimum."""
    loss = -(y * log(p) + (1 - y) * log(1 - p))
    if not isinstance(answer, sp.Eq) or answer.lhs != p:
        return False
    first = sp.simplify(sp.diff(loss, p).subs(p, answer.rhs))
    second = sp.simplify(sp.diff(loss, p, 2).subs(p, answer.rhs) - 1 / (y * (1 - y)))
    return first == 0 and second == 0


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-6, 6, 241)
    curves(
        fig,
        t,
        {
            "loss, y = 1": generated.binary_cross_entropy_from_logits(t, np.ones_like(t)),
            "loss, y = 0": generated.binary_cross_entropy_from_logits(t, np.zeros_like(t)),
            "gradient σ(z) − y, y = 1": generated.binary_cross_entropy_from_logits_grad(
                t, np.ones_like(t)
            ),
        },
        xlabel="logit z",
        title="Binary cross-entropy from the logit, and its gradient",
    )


def _branches(derivative: sp.Piecewise) -> sp.Piecewise:
    """SymPy's derivative of the selections as the page shows it: a branch whose condition
    cannot hold (y = 0 and y = 1) left out, and y written as its value where the condition
    fixes it (−y/p is −1/p where y = 1)."""
    kept = []
    for value, condition in derivative.args:
        if condition.simplify() is sp.false:
            continue
        if isinstance(condition, sp.Eq):
            value = value.subs(condition.lhs, condition.rhs)
        kept.append((value, condition))
    return sp.Piecewise(*kept)


def derive() -> Derivation:
    loss = -(y * log(p) + (1 - y) * log(1 - p))
    d_loss = (p - y) / (p * (1 - p))  # the kernel's form; SymPy's derivative (step derivative-in-p)
    sigmoid = result("sigmoid", "sigmoid")  # 1/(1 + e^{-z}), in the same symbol z
    of_sigma = ((sig, sigmoid),)  # σ(z) on the page, written out for the checks
    log_p = sp.expand_log(log(sigmoid), force=True)  # −log(1 + e^{−z})
    log_not_p = -log(1 + exp(z))  # 1 − σ(z) = 1/(1 + e^{z})
    with_sigma = loss.subs(p, sig)  # the loss of p = σ(z)
    substituted = -(y * log_p + (1 - y) * log_not_p)
    of_logit = (1 - y) * z + log(1 + exp(-z))  # log(1 + e^z) = z + log(1 + e^{−z})
    stable = Max(z, 0) - y * z + log(1 + exp(-Abs(z)))
    with_log1p = loss.subs(log(1 - p), log1p(-p))
    kept_p = sp.Piecewise((1, sp.Eq(y, 0)), (p, True))
    kept_not_p = sp.Piecewise((0, sp.Eq(y, 1)), (p, True))
    selected = -y * log(p_or_one) - (1 - y) * log1p(-p_or_zero)  # the code's form
    kept_loss = selected.xreplace({p_or_one: kept_p, p_or_zero: kept_not_p})
    # its derivative, branch by branch: 1/(1 − p) where y = 0, −1/p where y = 1
    d_kept = _branches(sp.piecewise_fold(sp.diff(kept_loss, p)))
    kept_selected = sp.Piecewise((1, sp.Eq(y, 0)), (0, sp.Eq(y, 1)), (p, True))
    d_as_computed = (p_selected - y) / (p_or_one * (1 - p_or_zero))
    selections = ((p_or_one, kept_p), (p_or_zero, kept_not_p), (p_selected, kept_selected))
    # the page's names for the code's three selections: p₊ (p, or 1), p₋ (p, or 0), p̃
    shown = {
        p_or_one: sp.Symbol("p_{+}", positive=True),
        p_or_zero: sp.Symbol("p_{-}", nonnegative=True),
        p_selected: sp.Symbol("\\tilde{p}", nonnegative=True),
    }
    gradient = sp.diff(of_logit, z)  # 1 − y − e^{−z}/(1 + e^{−z})
    gradient_in_sigma = sig - y
    # Why the code computes them this way: max(z, 0) − y z is z(1 − y) for z > 0, computed as
    # a difference that cancels where y ≈ 1; split by sign, every term is ≥ 0 for y in [0, 1].
    nonnegative = (1 - y) * Max(z, 0) + y * Max(-z, 0) + log(1 + exp(-Abs(z)))
    # σ(z) − y rounds σ(z), near 1 for z > 0, before subtracting: use the smaller probability
    # q = σ(−|z|) = e^{−|z|}/(1 + e^{−|z|}), and (1 − y) − q for z ≥ 0.
    q, not_y = sp.Symbol("q", positive=True), sp.Symbol("not_y", real=True)
    smaller = small / (1 + small)
    gradient_split = sp.Piecewise((q - y, z < 0), (not_y - q, True))
    gradient_split_written = gradient_split.xreplace({q: smaller, not_y: 1 - y}).subs(
        small, exp(-Abs(z))
    )
    i, k = class_index("i"), class_index("k")
    two_class_softmax = (S[i], softmax(i))  # S_i = e^{z_i}/Σ_k e^{z_k}, checked at C = 2
    difference = z_vector[1] - z_vector[2]
    two_class_loss = -(y * log(S[1]) + (1 - y) * log(S[2]))
    a = sp.Symbol("a", real=True)  # one shift added to every logit
    shifted_softmax = exp(z_vector[i] + a) / sp.Sum(exp(z_vector[k] + a), (k, 1, C))
    steps = (
        Step(
            "Derivative with respect to p",
            "$d \\log p / dp = 1/p$ and $d \\log(1 - p)/dp = -1/(1 - p)$; "
            "over a common denominator, $-y(1 - p) + (1 - y)p = p - y$.",
            Derivative(loss, p),
            d_loss,
            key="derivative-in-p",
        ),
        Step(
            "log p through the sigmoid",
            "With $p = \\sigma(z) = 1/(1 + e^{-z})$: the log of a reciprocal.",
            log(sig),
            log_p,
            where=of_sigma,
            start="$p = \\sigma(z)$, for a logit $z$",
            key="log-p",
        ),
        Step(
            "log(1 − p) through the sigmoid",
            "$1 - \\sigma(z) = e^{-z}/(1 + e^{-z})$, which is "
            "$1/(1 + e^{z})$: the log of a reciprocal again.",
            log(1 - sig),
            log_not_p,
            where=of_sigma,
            start="$1 - p = 1 - \\sigma(z)$",
            checked="numeric",  # a logarithm's identity: SymPy does not cancel it unforced
            key="log-one-minus-p",
        ),
        Step(
            "The loss of a logit",
            "Substitute both logs ({steps:log-p and log-one-minus-p}) into the loss of $p = "
            "\\sigma(z)$.",
            with_sigma,
            substituted,
            where=of_sigma,
            start="the loss of $p = \\sigma(z)$",
            checked="numeric",  # logarithms of the sigmoid: SymPy does not cancel them unforced
        ),
        Step(
            "One logarithm",
            "Take $e^{z}$ out of $1 + e^{z}$: $\\log(1 + e^{z}) = z + \\log(1 + e^{-z})$, and "
            "the two $\\log(1 + e^{-z})$ terms add up to one.",
            substituted,
            of_logit,
            checked="numeric",  # a logarithm's identity: SymPy does not cancel it unforced
            key="one-logarithm",
        ),
        Step(
            "Stable evaluation",
            "For $z \\ll 0$, $e^{-z}$ overflows. Take $\\max(-z, 0)$ out of "
            "$\\log(1 + e^{-z})$: what is left is $\\log(1 + e^{-|z|})$, whose argument lies in $(1, 2]$ "
            "(the code uses `log1p`, exact for tiny $e^{-|z|}$). SymPy proves it exactly on each side "
            "of zero below.",
            of_logit,
            stable,
            checked="numeric",  # proved on each side of zero below
        ),
        Step(
            "Why the code computes the loss as three non-negative terms",
            "For $z > 0$ the stable form computes $z - y z$: where $y$ is close to 1 these are "
            "two nearly equal numbers, and their difference $z(1 - y)$ keeps few of their digits. "
            "Split by the sign of $z$ instead: $\\max(z, 0) - y z = (1 - y)\\max(z, 0) + "
            "y \\max(-z, 0)$, and for $y \\in [0, 1]$ each term, like the logarithm, is "
            "$\\geq 0$: a sum of non-negative numbers loses no digits ($1 - y$ is exact for "
            "$y \\geq 1/2$). For $z < 0$ both sides are $-yz + \\log(1 + e^{-|z|})$; SymPy "
            "proves the case $z > 0$ exactly below.",
            stable,
            nonnegative,
            checked="numeric",  # proved on each side of zero below
        ),
        Step(
            "Gradient with respect to the logit",
            "The term in $z$ gives $1 - y$, and $\\log(1 + e^{-z})$ gives $-e^{-z}/(1 + e^{-z})$.",
            Derivative(of_logit, z),
            gradient,
            start="{step:one-logarithm}'s loss of a logit",
        ),
        Step(
            "In terms of σ",
            "$1 - e^{-z}/(1 + e^{-z}) = 1/(1 + e^{-z}) = \\sigma(z)$: the gradient is the "
            "prediction minus the target, as for softmax.",
            gradient,
            gradient_in_sigma,
            where=of_sigma,
        ),
        Step(
            "Why the code computes the gradient from the smaller probability",
            "For $z > 0$, $\\sigma(z)$ is close to 1 and is rounded before $y$ is subtracted: "
            "where $\\sigma(z) \\approx y$ the rounding error of $\\sigma(z)$ is all that is "
            "left. With $q = \\sigma(-|z|) = e^{-|z|}/(1 + e^{-|z|}) \\leq 1/2$, "
            "$\\sigma(z) = 1 - q$ for $z \\geq 0$, so the gradient is $(1 - y) - q$: $q$ is "
            "small and carries its own digits, $1 - y$ is exact for $y \\geq 1/2$. For "
            "$z < 0$, $\\sigma(z) = q$ already. SymPy proves it exactly on each side of zero below.",
            gradient_in_sigma,
            gradient_split_written,
            where=of_sigma,
            checked="numeric",  # proved on each side of zero below
        ),
        Step(
            "Why the code computes log(1 − p) with log1p",
            "For a small $p$, $1 - p$ rounds to a number with fewer of $p$'s digits, and to "
            "exactly 1 below half an ulp of 1 ($p = 10^{-8}$ in float32): $\\log(1 - p)$ is then "
            "0 where the true value is about $-p$. $\\operatorname{log1p}(x) = \\log(1 + x)$ "
            "without forming $1 + x$, so the code computes $\\operatorname{log1p}(-p)$, which "
            "keeps every digit of a small $p$.",
            log(1 - p),
            log1p(-p),
            start="$\\log(1 - p)$ in the loss",
            checked="numeric",  # log1p is a function SymPy evaluates, not an identity it rewrites
            key="log1p",
        ),
        Step(
            "Why the code takes 0 · log 0 as 0",
            "A probability of exactly 0 or 1 has a logarithm of $-\\infty$, and $0 \\cdot "
            "(-\\infty)$ is nan in floating point, although a term whose weight ($y$ or $1 - y$) "
            "is 0 is 0 for every $p$ in $(0, 1)$, and so is its limit ($0 \\cdot \\log 0 = 0$, "
            "as in scikit-learn's `log_loss`). The code takes $\\log 1$ where $y = 0$ and "
            "$\\operatorname{log1p}(-0)$ where $y = 1$ (`xp.where`): $p = y = 1$ costs 0, and a "
            "certain probability gives $+\\infty$ only against a target that gives its "
            "logarithm weight.",
            with_log1p,
            kept_loss,
            start="the loss, with {step:log1p}'s log1p",
            checked="numeric",  # a selection on y = 0 and y = 1: SymPy cannot decide it for symbolic y
            key="loss-as-computed",
        ),
        Step(
            "Its derivative where y is 0 or 1",
            "Differentiate the loss as the code computes it, not the formula: where $y = 0$ "
            "only $-\\operatorname{log1p}(-p)$ is left, whose derivative $1/(1 - p)$ is 1 at "
            "$p = 0$; where $y = 1$ only $-\\log p$, whose derivative $-1/p$ is $-1$ at $p = 1$. "
            "Written as in {step:derivative-in-p}, $(p - y)/(p(1 - p))$ is $0/0$, nan, at both "
            "of those points. SymPy differentiates the selections branch by branch.",
            Derivative(kept_loss, p),
            d_kept,
            start="{step:loss-as-computed}'s loss",
            checked="numeric",  # a selection on y = 0 and y = 1: SymPy cannot decide it for symbolic y
            key="derivative-as-computed",
        ),
        Step(
            "The gradient with the loss's selections",
            "The code selects numerator and denominator as the loss selects its logarithms "
            "(`xp.where`): $\\tilde p$ is 1 where $y = 0$, 0 where $y = 1$ and $p$ elsewhere, "
            "$p_+$ is $p$ or 1 where $y = 0$, $p_-$ is $p$ or 0 where $y = 1$. So the numerator "
            "is 1, $-1$ or $p - y$ and the denominator $1 - p$, $p$ or $p(1 - p)$: one "
            "division, never $0/0$, and elsewhere the same operations as $(p - y)/(p(1 - p))$, "
            "which keeps the digits of $p - y$ where $p$ is close to $y$ (the last branch of "
            "{step:derivative-as-computed} subtracts two nearly equal numbers there).",
            d_kept,
            d_as_computed.xreplace(shown),
            where=tuple((shown[name], value) for name, value in selections),
            checked="numeric",  # a selection on y = 0 and y = 1: SymPy cannot decide it for symbolic y
            key="selection-gradient",
        ),
        Step(
            "Where the target is 0",
            "The first branch of {step:derivative-as-computed}'s derivative, checked on its "
            "own (the checks of {steps:derivative-as-computed and selection-gradient} draw $y$ "
            "away from 0 and 1, and so reach only the last branch).",
            Derivative(kept_loss, p),
            1 / (1 - p),
            relation="=>",
            given=((y, 0),),
            start="the derivative of the loss as computed, where $y = 0$",
        ),
        Step(
            "Where the target is 1",
            "The second branch, checked on its own the same way.",
            Derivative(kept_loss, p),
            -1 / p,
            relation="=>",
            given=((y, 1),),
            start="the derivative of the loss as computed, where $y = 1$",
        ),
        # Binary as C = 2: the softmax of two logits is the sigmoid of their difference
        Step(
            "Two classes: softmax is the sigmoid of the difference",
            "Divide the numerator and the denominator of $S_1$ by $e^{z_1}$: "
            "$S_1 = 1/(1 + e^{-(z_1 - z_2)})$. Only the difference of the two logits matters.",
            S[1],
            sig.xreplace({z: difference}),
            where=(*of_sigma, two_class_softmax),
            start="the softmax of $C = 2$ logits $z_1, z_2$",
            checked="explicit",
            sizes=({"C": 2},),
        ),
        Step(
            "Binary cross-entropy is the two-class cross-entropy",
            "With targets $(y, 1 - y)$ for the two classes, the cross-entropy "
            "$-\\sum_i y_i \\log S_i$ is the binary cross-entropy of $p = S_1 = \\sigma(z)$, "
            "$z = z_1 - z_2$ (and $S_2 = 1 - S_1$). So everything on this page is the softmax "
            "page's results at $C = 2$, and the gradient $\\sigma(z) - y$ is $S_1 - y_1$.",
            two_class_loss,
            loss.subs(p, sig.xreplace({z: difference})),
            where=(*of_sigma, two_class_softmax),
            start="the cross-entropy of $C = 2$ classes with targets $(y, 1 - y)$",
            checked="numeric",  # logarithms of the softmax: SymPy does not cancel them unforced
            sizes=({"C": 2},),
        ),
        Step(
            "Only differences of logits are identified",
            "Adding the same $a$ to every logit multiplies the numerator and the denominator "
            "of $S_i$ by $e^{a}$: softmax sees only differences, so of $C$ logits only $C - 1$ "
            "can be learned from data (fix one, and the binary case keeps the single logit "
            "$z = z_1 - z_2$). On the [second-order page](second-order.md) this is the Hessian's "
            "null space: the steps *Singular: the direction of ones* and *Singular in W*, where "
            "the loss is flat along $W + a\\mathbf{1}^T$.",
            shifted_softmax,
            S[i],
            where=(two_class_softmax,),
            start="the softmax of $C$ logits, each shifted by $a$",
            # e^{z_k + a} = e^{z_k} e^{a} comes out of the sum: for every C at once
        ),
    )
    identities = (
        # for z > 0 only: for z < 0 SymPy evaluates both sides to the same expression
        *on_each_side_of_zero(
            Identity(
                "binary_cross_entropy_nonnegative",
                "the three non-negative terms equal the stable form",
                long=nonnegative,
                shortcut=stable,
                long_title="The sum of non-negative terms,",
                shortcut_title="the stable form,",
            ),
            z,
        ),
        *on_each_side_of_zero(
            Identity(
                "binary_cross_entropy_logit_grad_split",
                "the gradient from the smaller probability equals $\\sigma(z) - y$",
                long=gradient_split_written,
                shortcut=sigmoid - y,
                long_title="The form the code computes,",
                shortcut_title="$\\sigma(z) - y$,",
            ),
            z,
        ),
        *on_each_side_of_zero(
            Identity(
                "binary_cross_entropy_stable",
                "the stable form equals the loss of $p = \\sigma(z)$",
                long=stable,
                shortcut=loss.subs(p, sigmoid),
                long_title="The stable form,",
                shortcut_title="the loss of $p = \\sigma(z)$,",
            ),
            z,
        ),
    )
    curvature = sigmoid * (1 - sigmoid)
    exercises = (
        Exercise(
            "Differentiate the loss of a logit once more. Show that $\\partial^2 L / \\partial z^2 "
            "= \\sigma(z)(1 - \\sigma(z))$. What does it say about $L$ as a function of $z$, and "
            "how large can it be?",
            sp.Eq(Derivative(L, z, 2), sig * (1 - sig)),
            Identity(
                "binary_cross_entropy_logit_curvature",
                "the second derivative of the loss of a logit is $\\sigma(z)(1 - \\sigma(z))$",
                long=sp.diff(of_logit, z, 2),
                shortcut=curvature,
                long_title="The second derivative,",
                shortcut_title="$\\sigma(1 - \\sigma)$,",
            ),
            answer="The gradient $\\sigma(z) - y$ depends on $y$ only through the constant $-y$, so "
            "its derivative is the sigmoid's, $\\sigma(1 - \\sigma)$ (the sigmoid page): "
            "positive for every $z$ and every target, so the loss is convex in $z$; at most "
            "$1/4$, at $z = 0$, so a gradient step of size below 8 cannot overshoot the minimum. "
            "SymPy proves the identity in $z$.",
            title="The curvature of the loss of a logit",
        ),
        Exercise(
            "For a target $y \\in (0, 1)$ (a soft label), which prediction $p$ minimises the "
            "loss? Is the minimum 0?",
            sp.Eq(p, y),
            _minimised_at,
            answer="{Step:derivative-in-p}'s derivative $(p - y)/(p(1 - p))$ vanishes only at $p = "
            "y$, and the second derivative there is $1/(y(1 - y)) > 0$ (SymPy checks both): a "
            "minimum. Its value is the binary entropy $-y \\log y - (1 - y)\\log(1 - y)$, positive "
            "unless $y$ is 0 or 1: a soft target's loss never reaches 0, and only the divergence "
            "from $y$ to $p$ is minimised.",
            title="The best prediction for a soft target",
        ),
        Exercise(
            "With two classes, $S_1 = \\sigma(z_1 - z_2)$. What is $S_2$ as a sigmoid? Why must "
            "the two-class softmax gradient $S_1 - y_1$ with respect to $z_1$ be the negative of "
            "its gradient with respect to $z_2$?",
            sp.Eq(S[2], sig.xreplace({z: z_vector[2] - z_vector[1]})),
            Identity(
                "binary_as_two_classes_second",
                "the second class's probability is $\\sigma(z_2 - z_1) = 1 - \\sigma(z_1 - z_2)$",
                long=exp(z_vector[2]) / (exp(z_vector[1]) + exp(z_vector[2])),
                shortcut=sigmoid.xreplace({z: z_vector[2] - z_vector[1]}),
                long_title="The softmax's second output,",
                shortcut_title="the sigmoid of the other difference,",
            ),
            answer="Divide by $e^{z_2}$: $S_2 = 1/(1 + e^{-(z_2 - z_1)}) = \\sigma(z_2 - z_1)$, "
            "which is $1 - S_1$. The loss depends on the logits only through $z_1 - z_2$, so "
            "raising $z_1$ and lowering $z_2$ by the same amount do the same: "
            "$\\partial L/\\partial z_2 = -\\partial L/\\partial z_1$, and the gradients "
            "sum to 0, the direction of ones the Hessian cannot see. SymPy proves the identity.",
            title="The other class",
        ),
    )
    probabilities = (
        Param(
            "p",
            p,
            doc="predicted probabilities, in [0, 1] (checked; 0 or 1 gives inf where its logarithm has weight)",
            domain="probability",
            check="in [0, 1]",
        ),
        Param(
            "y",
            y,
            doc="targets in [0, 1] (checked), the shape of p",
            domain="target",
            check="in [0, 1]",
        ),
    )
    logits = (
        Param("z", z, doc="logits, any real numbers"),
        Param("y", y, doc="targets in [0, 1], the shape of z", domain="target"),
    )
    kernels = (
        Kernel(
            name="binary_cross_entropy",
            summary="−(y log p + (1 − y) log(1 − p)), elementwise, no reduction.",
            params=probabilities,
            body=(Assign(p_or_one, (), kept_p), Assign(p_or_zero, (), kept_not_p)),
            returns=Assign(L, (), selected),
            math=loss,
            returns_doc="the loss of each entry, the shape of p",
            notes=NAIVE_NOTE,
            reference="torch.nn.functional.binary_cross_entropy(p, y, reduction='none')",
        ),
        Kernel(
            name="binary_cross_entropy_grad",
            summary="∂L/∂p = (p − y)/(p(1 − p)), elementwise; 1/(1 − p) where y = 0 and −1/p where y = 1.",
            params=probabilities,
            body=tuple(Assign(name, (), value) for name, value in selections),
            returns=Assign(Derivative(L, p), (), d_as_computed),
            math=d_kept,
            returns_doc="the shape of p",
            notes=GRAD_NOTE,
            derivative=DerivativeOf("binary_cross_entropy(p, y)", wrt="p", kind="elementwise"),
        ),
        Kernel(
            name="binary_cross_entropy_from_logits",
            summary="The binary cross-entropy of σ(z) against y, from the logits, stable for any z.",
            params=logits,
            body=(Assign(small, (), exp(-Abs(z))),),
            returns=Assign(L, (), nonnegative.subs(log(1 + exp(-Abs(z))), log1p(small))),
            math=nonnegative,
            returns_doc="the loss of each entry, the shape of z; finite for every finite z",
            reference="torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction='none')",
        ),
        Kernel(
            name="binary_cross_entropy_from_logits_grad",
            summary="∂L/∂z = σ(z) − y, elementwise.",
            params=logits,
            body=(
                Assign(small, (), exp(-Abs(z))),
                Assign(q, (), smaller),
                Assign(not_y, (), 1 - y),
            ),
            returns=Assign(Derivative(L, z), (), gradient_split),
            math=gradient_split_written,
            returns_doc="the shape of z",
            derivative=DerivativeOf(
                "binary_cross_entropy_from_logits(z, y)", wrt="z", kind="elementwise"
            ),
        ),
    )
    batch_size = sp.Symbol("B", integer=True, positive=True)
    b = sp.Idx("b", (1, batch_size))
    logit_rows, targets = sp.IndexedBase("z"), sp.IndexedBase("y")
    at_sample = {z: logit_rows[b], y: targets[b]}
    matrix_result = MatrixResult(
        group="losses",
        lhs=sp.MatrixSymbol("\\nabla_{z} L", batch_size, 1),
        rhs=sp.MatrixSymbol("\\sigma(z)", batch_size, 1) - sp.MatrixSymbol("y", batch_size, 1),
        index_form=(sigmoid - y).xreplace(at_sample),
        entry=((b,), ()),
        where=((sp.IndexedBase("\\sigma(z)")[b], sigmoid.xreplace(at_sample)),),
        text="For a column of $B$ logits, each sample's own loss: predicted minus observed, as "
        "for the softmax (the two-class softmax, on this page).",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="binary_cross_entropy",
        title="Binary cross-entropy",
        summary="The loss of a yes/no prediction $p$ against a target $y$, its gradient, and the same "
        "from a logit $z$ with $p = \\sigma(z)$, where the gradient is simply $\\sigma(z) - y$.",
        definitions=(
            Definition(
                L,
                loss,
                "for a probability $p \\in (0, 1)$ and a target $y \\in [0, 1]$, elementwise",
            ),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        exercises=exercises,
        examples=(
            Example(
                "A confident mistake",
                "binary_cross_entropy(np.array([0.9, 0.1]), np.array([0.0, 0.0]))",
                reference="-np.log(1 - np.array([0.9, 0.1]))",
                text="Predicting 0.9 when the target is 0 costs $-\\log 0.1$.",
            ),
            Example(
                "Far from zero, from the logits",
                "binary_cross_entropy_from_logits(np.array([-1e4, 1e4, 40.0]), np.array([1.0, 0.0, 1.0]))",
                text="Finite for logits of $\\pm 10^4$ (the loss is then about $|z|$), and $e^{-40}$ "
                "for a confident right answer, where $-\\log \\sigma(40)$ computed through $p$ gives 0.",
            ),
        ),
        figures=(
            Figure(
                "binary-cross-entropy.svg",
                "The loss of a logit for both targets, and its gradient.",
                _draw,
            ),
        ),
        results={"loss": loss, "of_logit": of_logit, "logit_grad": sigmoid - y},
    )
