"""Checking a gradient by finite differences: the central and forward differences' errors, the
step that balances rounding against truncation, and what a difference measures at a kink."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Abs, Derivative, Max, Rational, Subs, exp, sinh, sqrt

from derive.model import C, D
from derive.steps import Definition, Derivation, Example, Exercise, MatrixResult, Section, Step

w = sp.Symbol("w", real=True)  # the one weight nudged, every other fixed
h = sp.Symbol("h", positive=True)  # the step
d = sp.Symbol("d", positive=True)  # the distance of a kink from the point, below the step
eps = sp.Symbol("varepsilon", positive=True)  # the machine epsilon
L = sp.Symbol("L", real=True, nonzero=True)  # the loss's value
M = sp.Symbol("M", positive=True)  # the size of the derivative that truncation leaves
a_, n_ = sp.symbols("a n", real=True)  # the analytic and numeric derivatives
coefficients = sp.symbols("p_0:5", real=True)
f = sp.Function("f")
relu = sp.Function("relu")
rel = sp.Function("rel")
quartic = sum(c * w**k for k, c in enumerate(coefficients))  # any polynomial of degree ≤ 4

# the total error of a difference quotient with step h: rounding, then truncation
central_error = eps * Abs(L) / h + M * h**2 / 6
forward_error = eps * Abs(L) / h + M * h / 2
central_step = (3 * eps * Abs(L) / M) ** Rational(1, 3)
forward_step = sqrt(2 * eps * Abs(L) / M)
BEST_FORWARD = sp.Symbol("h_{\\mathrm{forward}}^{*}", positive=True)

TOLERANCES = (
    "| tool | step | tolerance | dtype |\n"
    "|---|---|---|---|\n"
    "| PyTorch `torch.autograd.gradcheck` | `eps=1e-6` | `atol=1e-5`, `rtol=1e-3` | float64 |\n"
    "| JAX `jax.test_util.check_grads` | its default | `1e-5` | float64 |\n"
    "| JAX `check_grads` | its default | `2e-3` | float32 |\n"
    "| CS231n's notes | central, about `1e-5` | relative error below `1e-7` is good; above "
    "`1e-4` is suspicious for a smooth function; above `1e-2`, probably wrong | float64 |"
)
"""Other tools' defaults: facts about them, stated as they document them."""

STEP_TEXT = "1e-5"  # the example's step, as its code writes it
STEP = float(STEP_TEXT)
EXAMPLE = f"""import numpy as np
from derive.generated import cross_entropy_from_logits, summation, weight_grad

rng = np.random.default_rng(0)
x, W = rng.normal(size=(8, 3)), rng.normal(size=(3, 5))  # a batch of 8, D = 3, C = 5
y = rng.integers(5, size=8)                              # 0-based class labels

def loss(weights):
    return cross_entropy_from_logits(summation(x, weights), y).mean()

analytic = weight_grad(x, W, y)
numeric = np.zeros_like(W)
h = {STEP_TEXT}  # near the best step in float64: see "Choosing the step"
for index in np.ndindex(W.shape):
    step = np.zeros_like(W)
    step[index] = h
    numeric[index] = (loss(W + step) - loss(W - step)) / (2 * h)

scale = np.maximum(np.abs(analytic), np.abs(numeric))
relative = np.abs(analytic - numeric) / np.where(scale > 0, scale, 1.0)  # both 0: error 0
print(relative.max())"""
"""The page's example, which tests/test_docs_snippets.py runs from the page."""


_NUDGED = "np.pad([[1e-5]], ((0, 2), (0, 4)))"  # h E_11: 1e-5 at (1, 1), 0 elsewhere
_LOSS = "cross_entropy_from_logits(summation(posts.X, posts.W {} " + _NUDGED + "), posts.Y)"
ONE_WEIGHT = Example(
    "One weight of the posts' example, analytic and numeric",
    f"np.array([weight_grad(posts.X, posts.W, posts.Y)[0, 0], "
    f"({_LOSS.format('+')} - {_LOSS.format('-')}) / 2e-5])",
    text="The posts' $x$, $W$ and label: $\\partial \\mathit{XE} / \\partial W_{11}$ from "
    "`weight_grad`, then its central difference with $h = 10^{-5}$ (`np.pad` puts $h$ at "
    "$(1, 1)$ of a matrix of zeros shaped like $W$). Compare the two numbers.",
)


def sci(value: float, digits: int = 1) -> str:
    """A number as LaTeX to ``digits`` significant digits: 2 \\times 10^{-9}."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else f"{mantissa} \\times {power}"


# -- the exercises' checks ---------------------------------------------------------------------


def _exponential(answer) -> bool:
    """True if the answer is the central difference of e^w, exactly, and tends to e^w."""
    if not isinstance(answer, sp.Eq) or not answer.rhs.has(sinh):
        return False
    quotient = (exp(w + h) - exp(w - h)) / (2 * h)
    exact = sp.simplify((answer.lhs - quotient).rewrite(exp)) == 0
    same = sp.simplify((answer.lhs - answer.rhs).rewrite(exp)) == 0
    return exact and same and sp.limit(answer.rhs, h, 0) == exp(w)


def _best_forward(answer) -> bool:
    """True if the answer's step makes the forward difference's total error stationary, at a
    minimum."""
    if not isinstance(answer, sp.Eq) or answer.lhs != BEST_FORWARD:
        return False
    slope = sp.diff(forward_error, h)
    curvature = sp.diff(forward_error, h, 2).subs(h, answer.rhs)
    return sp.simplify(slope.subs(h, answer.rhs)) == 0 and sp.simplify(curvature).is_positive


def _quartic_error(answer) -> bool:
    """True if the answer is the central difference of w⁴ minus its derivative, exactly."""
    if not isinstance(answer, sp.Eq):
        return False
    error = ((w + h) ** 4 - (w - h) ** 4) / (2 * h) - 4 * w**3
    return sp.expand(answer.lhs - error) == 0 and sp.expand(answer.rhs - error) == 0


def _kink(answer) -> bool:
    """True if the answer is the central difference of |w| at w = d, 0 < d < h (h = d + g)."""
    if not isinstance(answer, sp.Eq):
        return False
    g = sp.Symbol("g", positive=True)
    quotient = (Abs(d + h) - Abs(d - h)) / (2 * h)
    inside = {h: d + g}
    sides = (answer.lhs, answer.rhs)
    return all(sp.simplify((side - quotient).xreplace(inside)) == 0 for side in sides)


def derive() -> Derivation:
    # the numbers the prose states, computed now: NumPy's epsilons, the example's errors
    float64, float32 = np.finfo(np.float64).eps, np.finfo(np.float32).eps
    steps = (
        Step(
            "The central difference",
            "Nudge one weight by $h$ each way, every other fixed, and divide the change of the "
            "loss by $2h$. For a polynomial of degree at most 4 (the definition) the even powers "
            "of $h$ cancel and what is left is exact; for any smooth $f$ it is Taylor's "
            "expansion, and the error $\\frac{h^2}{6} f'''(w)$ is $O(h^2)$.",
            (f(w + h) - f(w - h)) / (2 * h),
            Derivative(f(w), w) + h**2 / 6 * Derivative(f(w), (w, 3)),
            key="central-difference",
        ),
        Step(
            "The forward difference",
            "One loss fewer per weight, but nothing cancels: the error $\\frac{h}{2} f''(w)$ is "
            "$O(h)$, one power of $h$ worse.",
            (f(w + h) - f(w)) / h,
            Derivative(f(w), w)
            + h / 2 * Derivative(f(w), (w, 2))
            + h**2 / 6 * Derivative(f(w), (w, 3))
            + h**3 / 24 * Derivative(f(w), (w, 4)),
            start="the definition of $f$",
        ),
        Step(
            "The best central step",
            "Each loss value carries a rounding error of about $\\varepsilon |L|$, and dividing "
            "by $h$ magnifies it to about $\\varepsilon |L| / h$, while the truncation error, "
            "with $M$ the size of $f'''$, is $M h^2 / 6$. Their sum is least where its "
            "derivative in $h$ vanishes:",
            Subs(Derivative(central_error, h), h, central_step),
            sp.Integer(0),
            start="the total error $\\varepsilon |L|/h + M h^2/6$",
            key="best-central-step",
        ),
        Step(
            "The best forward step",
            "The same balance with the forward difference's truncation error $M h / 2$ ($M$ now "
            "the size of $f''$):",
            Subs(Derivative(forward_error, h), h, forward_step),
            sp.Integer(0),
            start="the total error $\\varepsilon |L|/h + M h/2$",
            key="best-forward-step",
        ),
        Step(
            "A kink within the step",
            "A ReLU's kink at distance $d$ from the point, with $0 < d < h$: the central "
            "difference straddles it and returns the average of the two slopes weighted by "
            "how far the step reaches on each side, not the slope 1 the gradient has there.",
            (relu(d + h) - relu(d - h)) / (2 * h),
            (d + h) / (2 * h),
            relation="=>",
            given=(sp.StrictLessThan(d - h, 0),),
            where=((relu(w), Max(w, 0)),),
            start="the central difference of a ReLU at $w = d$",
            checked="numeric",
            key="kink",
        ),
    )
    rounding = eps * Abs(L) / h
    sections = (
        Section(
            "The check, with the generated functions",
            "For a loss $L(W)$ and one weight $W_{jc}$, the central difference of "
            "{step:central-difference} nudges $W$ by $h E_{jc}$, where $E_{jc}$ is the matrix with "
            "a 1 at $(j, c)$ and 0 elsewhere. With the generated functions, on a batch of random "
            "data:\n\n"
            f"```python\n{EXAMPLE}\n```\n\n"
            "It prints the worst relative error $r$ (defined above); tests/test_docs_snippets.py "
            "runs it from this page and requires it below CS231n's $10^{-7}$. The "
            'figure under "Choosing the step" shows the same error for every step, drawn '
            "from the generated functions.\n\n"
            "Where both values are exactly 0 (a weight whose input is 0 in every sample has no "
            "gradient, and its difference quotient is exactly 0 too) the ratio is $0/0$: the "
            "code above counts it as agreement by dividing by 1 there. Where both are merely "
            "tiny, below the difference quotient's own noise (about "
            f"${sp.latex(rounding)}$, see below), the ratio compares noise with noise, and an "
            "absolute comparison is the right one: this project's tests require "
            "$|a - n| \\le 10^{-8} + 10^{-6} |n|$, an absolute floor under a relative "
            "tolerance. Check at random weights, not at $W = 0$ or other symmetric points, "
            "where different mistakes can give the same number.",
            place="after_steps",
        ),
        Section(
            "Choosing the step",
            "A smaller step is not always better. The machine epsilon $\\varepsilon$ is "
            f"${sci(float64, 2)}$ in float64 and ${sci(float32, 2)}$ in float32 (NumPy's `finfo`). "
            "The rounding error grows like $\\varepsilon / h$ while the central difference's "
            "truncation error falls like $h^2$: {steps:best-central-step and best-forward-step} "
            "find the balance, near $\\varepsilon^{1/3}$ for central differences (in float64 about "
            f"${sci(float64 ** (1 / 3))}$: the example takes $h = {sci(STEP)}$) and near "
            f"$\\varepsilon^{{1/2}}$ for forward differences (about ${sci(float64**0.5)}$), each "
            "times the size of the weight when it is far from 1.\n\n"
            "The figure below was drawn when this site was built, from the generated "
            "`weight_grad` and `cross_entropy_from_logits` on the posts' example: the V of each "
            "curve is that balance. In float32 the rounding floor is so high that no step gives "
            "agreement to more than a few digits: check gradients in float64.\n\n"
            "<figure markdown>\n"
            "  ![Relative error of finite differences against the step]"
            "(../figures/gradient-check-error.svg)\n"
            "  <figcaption>The worst relative error over the 15 weights of the posts' example, "
            "against the step h, for central and forward differences in float64 and central "
            "differences in float32. Drawn at build time by "
            "derive/derivations/cross_entropy.py.</figcaption>\n"
            "</figure>",
            place="after_steps",
        ),
        Section(
            "Tolerances others use",
            TOLERANCES,
            text_after="The loose float32 tolerances are not laxness: they are the rounding floor "
            "in the figure. CS231n's `1e-7` is for smooth functions such as this one; a kink "
            "(ReLU, max) crossed by the step can give a large error with a correct gradient "
            "({step:kink}).",
            place="after_steps",
        ),
        Section(
            "Practice: CS231n's rules",
            "CS231n's notes on gradient checks add four rules of practice. The figure below "
            "shows each one on the generated functions; it is drawn while the site is built (by "
            "`derive/gradient_check.py`), so its numbers are this build's.\n\n"
            "1. **Check a few random coordinates of every parameter.** A full check costs two "
            "loss evaluations per weight; a network has too many. A handful of random entries "
            "of each parameter (not only the first few, which may all take one code path) "
            "catches a wrong formula almost as surely. Panel 1 checks five entries of each of "
            "`mlp_grads`' four gradients for a tanh network: the title gives how many losses "
            "that took, against a full check.\n"
            "2. **Check without the penalty first, then with it.** The penalty's gradient "
            "$l_2 W$ is easy to get right and can be much larger than the data loss's: added to "
            "both sides, it dilutes a bug in the data part below the tolerance. Panel 2 plants "
            "a 2% error in one column of `weight_grad` and checks the sum with the penalty "
            "added: as $l_2$ grows, the relative error of the buggy gradient falls toward "
            '"good", while the correct one stays at the rounding floor.\n'
            "3. **Beware of kinks.** Where a ReLU's pre-activation is within $h$ of 0, the central "
            "difference straddles the kink ({step:kink}): a correct gradient fails. Panel 3 moves "
            "one unit's $z_1$ toward 0 for one sample: the relative error of its bias's gradient "
            "jumps once the kink is closer than the step. Track whether any $z_1$ crossed 0 "
            "between $W - hE$ and $W + hE$ before trusting a failure, or check with a smooth "
            "activation (as panel 1 does).\n"
            "4. **Stay in floating point's active range.** The difference quotient's rounding "
            f"error is about ${sp.latex(rounding)}$, fixed by the loss, while the gradient can "
            "be tiny: near a minimum, or when every gradient entry is tiny. Panel 4 checks "
            "`weight_grad` (with its penalty) on Iris at points ever closer to the minimum: the "
            "gradient shrinks, the loss does not, and the relative error grows to 1 though "
            "nothing is wrong. Check at random weights, away from the optimum, and print the "
            "raw numbers when they are tiny.\n\n"
            "<figure markdown>\n"
            "  ![CS231n's rules for a gradient check, each on the generated functions]"
            "(../figures/gradient-check-practice.svg)\n"
            "  <figcaption>Each panel's relative error against CS231n's thresholds (1e-7: "
            "good; 1e-4: suspicious). 1: five random entries of each gradient of `mlp_grads` "
            "(tanh). 2: `weight_grad` with a planted bug, checked with the penalty added. 3: "
            "`mlp_grads` (ReLU) with a kink at a distance from the point. 4: `weight_grad` near "
            "the minimum of the penalised loss on Iris. Drawn at build time by "
            "derive/gradient_check.py.</figcaption>\n"
            "</figure>",
            place="after_steps",
        ),
        Section(
            "How this project checks its gradients",
            "Every generated derivative declares what it is the derivative of (`DerivativeOf` "
            "in `derive/steps.py`), and the tests in `tests/test_derivatives.py`, driven by the "
            "registry, check each one three ways:\n\n"
            "- against **central differences** (`tests/numerical.py`): step "
            "$10^{-6} \\max(1, |w|)$ (below the optimum, at the cost of about a digit, which the "
            "tolerance leaves room for), relative tolerance $10^{-6}$, absolute $10^{-8}$, in "
            "float64;\n"
            "- against **PyTorch autograd** of the same function, to $10^{-10}$ relative;\n"
            "- in **float32**: the result stays float32 and agrees with the float64 result to "
            "$2 \\times 10^{-4}$ relative.\n\n"
            "On a failure the message names the worst entry and prints both numbers, the "
            "analytic and the numeric, side by side. Independently of all three, "
            "`tests/test_kernels.py` has SymPy evaluate each function's index form entry by "
            "entry and compares it with the generated code, and the proofs on the derivation "
            "pages check each shortcut against its chain-rule product with explicit matrices.",
            place="after_steps",
        ),
    )
    exercises = (
        Exercise(
            "Write the central difference of $e^w$ exactly, without a Taylor series. How close "
            "is it to $e^w$ for small $h$?",
            sp.Eq((exp(w + h) - exp(w - h)) / (2 * h), exp(w) * sinh(h) / h),
            _exponential,
            answer="Take $e^w$ out: $(e^h - e^{-h})/(2h) = \\sinh(h)/h$. Since $\\sinh(h)/h = 1 + "
            "h^2/6 + \\dots$, the relative error is about $h^2/6$, as {step:central-difference} "
            "says with $f''' = f$. SymPy finds both sides equal and the limit $e^w$ as $h \\to 0$.",
            title="The central difference of an exponential",
        ),
        Exercise(
            "Which step minimises the forward difference's total error "
            f"${sp.latex(forward_error)}$?",
            sp.Eq(BEST_FORWARD, forward_step),
            _best_forward,
            answer="Its derivative $-\\varepsilon|L|/h^2 + M/2$ vanishes at "
            "$h^2 = 2\\varepsilon|L|/M$, and the second derivative $2\\varepsilon|L|/h^3$ is "
            "positive: a minimum, near $\\sqrt{\\varepsilon}$, far larger than the central "
            "difference's. SymPy checks both derivatives at the answer.",
            title="The best forward step",
        ),
        Exercise(
            "What error does the central difference make for $f(w) = w^4$?",
            sp.Eq(((w + h) ** 4 - (w - h) ** 4) / (2 * h) - 4 * w**3, 4 * w * h**2),
            _quartic_error,
            answer="The odd powers of $h$ survive the difference: $((w + h)^4 - (w - h)^4)/(2h) = "
            "4w^3 + 4wh^2$, so the error is $4wh^2$, {step:central-difference}'s $\\frac{h^2}{6} "
            "f'''(w)$ with $f''' = 24w$. SymPy expands both sides.",
            title="The error for a quartic",
        ),
        Exercise(
            "What does the central difference of $|w|$ measure at $w = d$, $0 < d < h$?",
            sp.Eq((Abs(d + h) - Abs(d - h)) / (2 * h), d / h),
            _kink,
            answer="$|d + h| = d + h$ and $|d - h| = h - d$, so the quotient is "
            "$2d/(2h) = d/h$: between the slopes $-1$ and $1$, and not the slope 1 that $|w|$ "
            "has at $d$. As $d \\to 0$ it tends to 0, the average of the two slopes. SymPy "
            "writes $h = d + g$ with $g > 0$ and simplifies.",
            title="A kink inside the step",
        ),
    )
    j, c = sp.Idx("j", (1, D)), sp.Idx("c", (1, C))
    N, G, T = (sp.MatrixSymbol(name, D, C) for name in ("N", "G", "T"))
    matrix_result = MatrixResult(
        group="numerics",
        lhs=N,
        rhs=G + h**2 / 6 * T,
        index_form=sp.IndexedBase("G")[j, c] + h**2 / 6 * sp.IndexedBase("T")[j, c],
        entry=((j,), (c,)),
        text="The central differences $N$ of every weight are the gradient $G$ plus "
        "$\\frac{h^2}{6}$ times $T$, each weight's third derivative "
        "$\\partial^3 L / \\partial W_{jc}^3$: exactly for a loss of degree at most 4 in each "
        "weight, up to $O(h^4)$ otherwise (Taylor's expansion).",
    )
    return Derivation(
        name="gradient_check",
        title="Checking a gradient",
        summary="A derivation can be wrong, and so can the code written from it. The standard "
        "check needs no calculus: nudge one weight, see how much the loss moves, and compare that "
        "slope with the gradient the code returns. The steps below show why the central "
        "difference's error falls like $h^2$ and the forward difference's like $h$, which step "
        "balances rounding against truncation, and what a difference measures at a kink; then "
        "an example with the generated functions, the tolerances other tools use, CS231n's "
        "rules of practice, and how this project checks its own gradients.",
        definitions=(
            Definition(
                rel(a_, n_),
                Abs(a_ - n_) / Max(Abs(a_), Abs(n_)),
                "the relative error of a numeric derivative $n$ against the analytic $a$. "
                "Compare relative to the larger of the two, entry by entry, and look at the worst "
                "entry: an absolute difference means nothing without the size of the gradient, "
                "and a mean hides the one wrong entry.",
            ),
            Definition(
                f(w),
                quartic,
                "the loss as a function of one weight $w$, every other fixed: a polynomial of "
                "degree at most 4 with any coefficients, for which the steps below are exact.",
            ),
        ),
        steps=steps,
        identities=(),
        kernels=(),
        sections=sections,
        exercises=exercises,
        examples=(ONE_WEIGHT,),
        matrix_result=matrix_result,
        results={"central_error": central_error, "central_step": central_step},
    )
