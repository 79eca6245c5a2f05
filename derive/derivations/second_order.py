"""Second order: the Hessian of the cross-entropy, proved positive semi-definite and
singular, Hessian-vector products, and Newton's method with an L2 penalty."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum

from derive._runtime import _PAIRS_FROM
from derive.derivations import result
from derive.model import (
    C,
    D,
    S,
    W,
    class_index,
    explicit_labels,
    explicit_layer,
    explicit_softmax,
    explicit_vector,
    input_index,
    summation,
    x,
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
    MatrixResult,
    Param,
    Requirement,
    Section,
    Step,
    every,
)
from derive.sympy_tools import DenseSolve, MatmulSum, Maximum, SymmetricMatmulSum, evaluate

_EXAMPLE_INPUTS, _EXAMPLE_CLASSES = 128, 20  # the benchmark's largest Hessian, for the page


def _pairs(n: int) -> int:
    """How many pairs i ≤ j of n indices: n(n + 1)/2."""
    return n * (n + 1) // 2


MAX_UNKNOWNS = 4096  # newton_step solves a (D·C) x (D·C) system densely up to this D·C
B = sp.Symbol("B", integer=True, positive=True)  # samples in a batch
b = sp.Idx("b", (1, B))
l2 = sp.Symbol("l2", positive=True)  # the L2 penalty's weight, (l2/2)‖W‖²
v = sp.IndexedBase("v", shape=(C,))  # any direction in logit space
NULLITY = sp.Symbol("\\dim \\ker \\mathcal{H}")  # the first exercise's answer names it


# -- explicit matrices at small sizes ---------------------------------------------------


def _softmax_hessian(probabilities: Matrix) -> Matrix:
    return sp.diag(*probabilities) - probabilities * probabilities.T


def _one_sample_nullity(answer: sp.Eq) -> bool:
    """True if the answer's right side is, at D = 1..4 and C = 2..4, D·C minus the exact rank of
    x xᵀ ⊗ (diag(S) − S Sᵀ), at random rational x ≠ 0 and S > 0 with Σ S = 1."""
    if not isinstance(answer, sp.Eq) or answer.lhs != NULLITY:
        return False
    rng = random.Random(0)
    for n_inputs in range(1, 5):
        for n_classes in range(2, 5):
            inputs = Matrix(
                [
                    rng.choice((-1, 1)) * sp.Rational(rng.randint(1, 9), rng.randint(1, 9))
                    for _ in range(n_inputs)
                ]
            )
            weights = Matrix([sp.Integer(rng.randint(1, 9)) for _ in range(n_classes)])
            probabilities = weights / sum(weights)
            hessian = sp.kronecker_product(inputs * inputs.T, _softmax_hessian(probabilities))
            nullity = n_inputs * n_classes - hessian.rank()
            if answer.rhs.xreplace({D: n_inputs, C: n_classes}) != nullity:
                return False
    return True


def explicit_gradient_along_null(sizes) -> tuple[Matrix, Matrix]:
    """Σ_jc a_j x_j (S_c − y_c) for an explicit softmax and labels with Σ y = 1, and zero."""
    n_inputs, n_classes = sizes["D"], sizes["C"]
    inputs, shift = explicit_vector("x", n_inputs), explicit_vector("a", n_inputs)
    probabilities = explicit_softmax(explicit_vector("z", n_classes))
    labels = explicit_labels(n_classes)
    total = sum(
        shift[j] * inputs[j] * (probabilities[c] - labels[c])
        for j in range(n_inputs)
        for c in range(n_classes)
    )
    return Matrix([total]), Matrix([0])


def _weights_row_major(layer) -> list[sp.Symbol]:
    """W's entries in row-major order, W.ravel(): entry j·C + c is W[j, c]."""
    return list(layer.W)


def explicit_weight_hessian(sizes) -> tuple[Matrix, Matrix]:
    """The Hessian of one sample's loss in W (row-major, Σ y = 1 imposed), and
    (x xᵀ) ⊗ (diag(S) − S Sᵀ).

    After differentiating, W_0c is written as (z_c − Σ_{j>0} W_jc x_j)/x_0, so each
    exponential is one of e^{z_c}: both sides are then rational in e^z (what the
    proof's cancellation needs).
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    loss = sp.expand_log(
        layer.XE.xreplace(dict(zip(layer.y, explicit_labels(n_classes)))), force=True
    )
    logits = explicit_vector("z", n_classes)
    first_row = {
        layer.W[0, c]: (logits[c] - sum(layer.W[j, c] * layer.x[j] for j in range(1, n_inputs)))
        / layer.x[0]
        for c in range(n_classes)
    }
    long = sp.hessian(loss, _weights_row_major(layer)).subs(first_row)
    shortcut = sp.kronecker_product(layer.x * layer.x.T, _softmax_hessian(explicit_softmax(logits)))
    return long, shortcut


def explicit_hvp(sizes) -> tuple[Matrix, Matrix]:
    """((x xᵀ) ⊗ (diag(S) − S Sᵀ)) vec(V), and x_j S_c(U_c − Σ S_d U_d) with U = Vᵀx."""
    n_inputs, n_classes = sizes["D"], sizes["C"]
    inputs = explicit_vector("x", n_inputs)
    probabilities = explicit_vector("S", n_classes, positive=True)
    direction = Matrix(n_inputs, n_classes, lambda j, c: sp.Symbol(f"V_{j}_{c}", real=True))
    hessian = sp.kronecker_product(inputs * inputs.T, _softmax_hessian(probabilities))
    along = direction.T * inputs  # U_c
    mean = sum(probabilities[d] * along[d] for d in range(n_classes))
    shortcut = Matrix(
        n_inputs * n_classes,
        1,
        lambda w, _: (
            inputs[w // n_classes] * probabilities[w % n_classes] * (along[w % n_classes] - mean)
        ),
    )
    return hessian * Matrix(list(direction)), shortcut


DAMPED = sp.Symbol("\\Delta")  # the damping exercise's answer names the step
g1, h1, lam = sp.symbols("g h lambda", real=True)  # a gradient, a curvature, the damping


def _damped_step(answer) -> bool:
    """True if the answer's step minimises the damped quadratic model g Δ + (h + λ) Δ²/2 (its
    slope 0 there) and tends to Newton's −g/h as λ → 0 and to −g/λ as λ → ∞."""
    if not isinstance(answer, sp.Eq) or answer.lhs != DAMPED:
        return False
    step = answer.rhs
    slope = sp.diff(g1 * DAMPED + (h1 + lam) * DAMPED**2 / 2, DAMPED).xreplace({DAMPED: step})
    return (
        sp.simplify(slope) == 0
        and sp.simplify(step.xreplace({lam: 0}) + g1 / h1) == 0
        and sp.limit(lam * step, lam, sp.oo) == -g1
    )


u1 = sp.Symbol("u", real=True)  # the one logit of logistic regression, z_1 − z_2
FISHER = sp.Symbol("F(u)")


def _bernoulli_fisher(answer) -> bool:
    """True if the answer is E[(∂ log p(y|u)/∂u)²] for y ~ Bernoulli(σ(u)), computed from the
    likelihood: σ(u) (∂ log σ(u))² + (1 − σ(u)) (∂ log(1 − σ(u)))²."""
    if not isinstance(answer, sp.Eq) or answer.lhs != FISHER:
        return False
    p = 1 / (1 + sp.exp(-u1))
    fisher = p * sp.diff(sp.log(p), u1) ** 2 + (1 - p) * sp.diff(sp.log(1 - p), u1) ** 2
    sigma = sp.Function("sigma")
    return sp.simplify(fisher - answer.rhs.replace(sigma, lambda t: 1 / (1 + sp.exp(-t)))) == 0


# -- figures --------------------------------------------------------------------------


def _kronecker_structure(fig, generated, posts) -> None:
    from derive.figures import margins

    x1, W1 = posts.X, posts.W
    s = generated.softmax(generated.summation(x1, W1))
    hessian = generated.weight_hessian(x1, W1)
    n = hessian.shape[0] * hessian.shape[1]
    panels = [
        (np.outer(x1, x1), "x xᵀ (D × D)"),
        (
            generated.cross_entropy_from_logits_hessian(generated.summation(x1, W1)),
            "diag(S) − S Sᵀ (C × C)",
        ),
        (
            hessian.reshape(n, n),
            r"$\mathcal{H}_{(jc),(kd)}$ = $x x^T \otimes (\mathrm{diag}(S) - S S^T)$",
        ),
    ]
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 2.2])
    margins(fig, left=0.15, right=0.45, bottom=0.15, top=0.15, wspace=0.08)
    for ax, (matrix, title) in zip(axes, panels):
        limit = np.abs(matrix).max()
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    C1 = s.shape[-1]
    for k in range(1, hessian.shape[0]):
        axes[2].axhline(k * C1 - 0.5, color="black", linewidth=0.6)
        axes[2].axvline(k * C1 - 0.5, color="black", linewidth=0.6)
    fig.colorbar(image, ax=axes[2], shrink=0.8)


def iris(standardized: bool = True):
    """Iris (scikit-learn's bundled copy): standardized features and a constant 1 (the bias).

    Read from the CSV file scikit-learn ships, as its ``load_iris`` reads it,
    without importing scikit-learn (1.3 s of a build's figure).
    """
    import importlib.util

    (package,) = importlib.util.find_spec("sklearn").submodule_search_locations
    table = np.loadtxt(Path(package) / "datasets" / "data" / "iris.csv", delimiter=",", skiprows=1)
    features, labels = table[:, :-1], table[:, -1].astype(np.int64)
    if standardized:
        features = (features - features.mean(axis=0)) / features.std(axis=0)
    return np.hstack([features, np.ones((len(features), 1))]), labels


@functools.lru_cache(maxsize=1)  # both Newton figures draw it, often in one process
def newton_against_gradient_descent(
    generated, penalty: float = 1e-2, tolerance: float = 1e-8, max_iterations: int = 20000
) -> dict[str, dict]:
    """Both methods on Iris softmax regression with (penalty/2)‖W‖², from W = 0, until ‖g‖ < tolerance.

    The gradient norm is kept at every iteration, the loss at log-spaced ones
    and the last (``loss_at`` gives their iterations): a log-log plot needs
    no more, and the loss would double the time of gradient descent's run.
    """
    inputs, labels = iris()
    one_hot = np.eye(3)[labels]
    recorded = {int(i) for i in np.geomspace(1, max_iterations, 150).round()}  # log-spaced

    def objective(weights):
        loss = generated.cross_entropy_from_logits(
            generated.summation(inputs, weights), one_hot
        ).mean()
        return loss + penalty / 2 * np.sum(weights**2)

    def gradient(weights):
        return generated.weight_grad(inputs, weights, one_hot) + penalty * weights

    # 1/L, with L bounding the Hessian: diag(S) − S Sᵀ ≼ I/2 (Böhning), so H ≼ XᵀX/(2B) ⊗ I + l2 I.
    rate = 1 / (np.linalg.eigvalsh(inputs.T @ inputs / len(inputs)).max() / 2 + penalty)
    steps = {  # each step given the weights and their gradient (computed once per iteration)
        "Newton": lambda w, g: w + generated.newton_step(inputs, w, one_hot, penalty),
        f"gradient descent (step 1/L = {rate:.2f})": lambda w, g: w - rate * g,
    }
    runs = {}
    for name, step in steps.items():
        weights = np.zeros((inputs.shape[1], 3))
        slope = gradient(weights)
        losses, loss_at, norms = [objective(weights)], [0], [np.linalg.norm(slope)]
        while norms[-1] >= tolerance and len(norms) <= max_iterations:
            weights = step(weights, slope)
            slope = gradient(weights)
            norms.append(np.linalg.norm(slope))
            if len(norms) - 1 in recorded or norms[-1] < tolerance:
                losses.append(objective(weights))
                loss_at.append(len(norms) - 1)
        if loss_at[-1] != len(norms) - 1:  # stopped at max_iterations: the last loss too
            losses.append(objective(weights))
            loss_at.append(len(norms) - 1)
        runs[name] = {
            "loss": np.array(losses),
            "loss_at": np.array(loss_at),
            "gradient_norm": np.array(norms),
            "iterations": len(norms) - 1,
            "converged": norms[-1] < tolerance,
        }
    return runs


def _newton_figure(fig, generated, posts) -> None:
    from derive.figures import margins

    runs = newton_against_gradient_descent(generated)
    best = min(run["loss"].min() for run in runs.values())
    left, right = fig.subplots(1, 2)
    margins(fig, left=0.65, right=0.15, bottom=0.62, top=0.35, wspace=0.23)
    for name, run in runs.items():
        steps = np.arange(len(run["gradient_norm"]))
        done = (
            f"{run['iterations']} iterations to ‖g‖ < 10⁻⁸"
            if run["converged"]
            else f"not below 10⁻⁸ in {run['iterations']} iterations"
        )
        left.loglog(run["loss_at"] + 1, run["loss"] - best + 1e-16, label=name)
        right.loglog(steps + 1, run["gradient_norm"], label=f"{name}:\n{done}")
    left.set_title("penalized loss minus its minimum", fontsize=9)
    right.set_title("gradient norm ‖g‖", fontsize=9)
    right.axhline(1e-8, color="gray", linewidth=0.6)
    for ax in (left, right):
        ax.set_xlabel("iteration + 1")
        ax.grid(alpha=0.3)
    right.legend(fontsize=7)
    left.legend(fontsize=7)


def newton_cg(
    generated,
    penalty: float = 1e-2,
    tolerance: float = 1e-8,
    max_iterations: int = 50,
) -> dict:
    """Truncated Newton on Iris: each step solves (ℋ + penalty·I) p = −(g + penalty·W) by
    conjugate gradients, with ℋ only through ``weight_hvp`` (never formed), stopping CG at a
    residual below min(1/2, √‖g‖)·‖g‖ (Nocedal and Wright's forcing sequence) or after D·C
    products. Returns the gradient norm at each outer iteration, the products used so far, and
    the last weights."""
    inputs, labels = iris()
    one_hot = np.eye(3)[labels]
    weights = np.zeros((inputs.shape[1], 3))

    def gradient(w):
        return generated.weight_grad(inputs, w, one_hot) + penalty * w

    slope = gradient(weights)
    norms, products = [np.linalg.norm(slope)], [0]
    while norms[-1] >= tolerance and len(norms) <= max_iterations:
        step, residual = np.zeros_like(weights), -slope
        direction, used = residual.copy(), 0
        forcing = min(0.5, np.sqrt(norms[-1])) * norms[-1]
        while np.linalg.norm(residual) > forcing and used < weights.size:
            along = generated.weight_hvp(inputs, weights, direction) + penalty * direction
            used += 1
            length = np.sum(residual**2) / np.sum(direction * along)
            step = step + length * direction
            new_residual = residual - length * along
            direction = new_residual + np.sum(new_residual**2) / np.sum(residual**2) * direction
            residual = new_residual
        weights = weights + step
        slope = gradient(weights)
        norms.append(np.linalg.norm(slope))
        products.append(products[-1] + used)
    return {"gradient_norm": np.array(norms), "products": np.array(products), "weights": weights}


def _newton_cg_figure(fig, generated, posts) -> None:
    from derive.figures import margins

    runs = newton_against_gradient_descent(generated)
    cg = newton_cg(generated)
    unknowns = iris()[0].shape[1] * 3  # D·C
    left, right = fig.subplots(1, 2)
    margins(fig, left=0.65, right=0.15, bottom=0.62, top=0.5, wspace=0.27)
    for name, run in runs.items():
        norms = run["gradient_norm"]
        iterations = np.arange(len(norms))
        # a gradient per iteration; Newton's dense Hessian costs what D·C products do
        cost = iterations * (1 + unknowns) if name == "Newton" else iterations
        label = "Newton (dense ℋ, counted as D·C products)" if name == "Newton" else name
        style = ".-" if name == "Newton" else "-"  # gradient descent: too many points to mark
        left.semilogy(iterations, norms, style, label=label)
        right.loglog(cost + 1, norms, style, label=label)
    norms = cg["gradient_norm"]
    iterations = np.arange(len(norms))
    label = f"Newton–CG (weight_hvp): {cg['products'][-1]} products in all"
    left.semilogy(iterations, norms, "s-", markersize=3, label=label)
    right.loglog(iterations + cg["products"] + 1, norms, "s-", markersize=3, label=label)
    left.set_xlim(-0.5, 3 * len(norms))
    left.set_title("‖g‖ by outer iteration", fontsize=9)
    right.set_title("‖g‖ by work:\ngradients + Hessian-vector products", fontsize=9)
    left.set_xlabel("iteration")
    right.set_xlabel("gradient evaluations + HVPs, + 1")
    for ax in (left, right):
        ax.axhline(1e-8, color="gray", linewidth=0.6)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)


# -- damping: Levenberg–Marquardt on the same problem ---------------------------------------

DAMPING_START = -1.0  # the damping figure starts from this multiple of the minimum's weights
DAMPED_ITERATIONS = 30  # each run's iterations on the damping figure, at most
STEP_RATIO = sp.Symbol("\\Delta_\\lambda / \\Delta_N")  # the damping exercise's answer names it


def _halving_damping(answer) -> bool:
    """True if the answer's λ makes the damped step −g/(h + λ) half of Newton's −g/h, for
    symbolic g and h > 0 (and does not depend on g)."""
    if not isinstance(answer, sp.Eq) or answer.lhs != lam or answer.rhs.has(g1):
        return False
    curvature = sp.Symbol("h", positive=True)
    at = answer.rhs.xreplace({h1: curvature})
    return sp.simplify((-g1 / (curvature + at)) / (-g1 / curvature) - sp.Rational(1, 2)) == 0


def damped_newton(generated, damping: float | None, penalty: float = 1e-2) -> dict:
    """Newton's method on Iris with (penalty/2)‖W‖², from ``DAMPING_START`` times the minimum's
    weights (confidently wrong), each step solving (ℋ + penalty·I + λI) ΔW = −(g + penalty·W)
    with ℋ from ``weight_hessian``: λ = 0 is ``newton_step``'s; a number, that λ throughout;
    None, Levenberg–Marquardt's λ, from 1, divided by 3 after a step whose loss fell by more
    than 3/4 of what the quadratic model predicted, doubled below 1/4 (a step that raised the
    loss refused). Returns the penalised loss and gradient norm after each iteration and the
    λ of each."""
    inputs, labels = iris()
    one_hot = np.eye(3)[labels]
    unknowns = inputs.shape[1] * 3

    def objective(weights):
        logits = generated.summation(inputs, weights)
        loss = generated.cross_entropy_from_logits(logits, one_hot).mean()
        return loss + penalty / 2 * np.sum(weights**2)

    def gradient(weights):
        return generated.weight_grad(inputs, weights, one_hot) + penalty * weights

    weights = DAMPING_START * damping_minimum(generated, penalty)
    rate = 1.0 if damping is None else damping
    losses, norms, used = [objective(weights)], [np.linalg.norm(gradient(weights))], []
    while len(used) < DAMPED_ITERATIONS and norms[-1] >= 1e-8:
        slope = gradient(weights).reshape(-1)
        curvature = generated.weight_hessian(inputs, weights).reshape(unknowns, unknowns)
        curvature += penalty * np.eye(unknowns)
        step = np.linalg.solve(curvature + rate * np.eye(unknowns), -slope)
        trial = weights + step.reshape(weights.shape)
        loss = objective(trial)
        used.append(rate)
        if damping is None:  # the model's predicted decrease against the actual one
            gain = (losses[-1] - loss) / -(slope @ step + step @ curvature @ step / 2)
            rate = rate / 3 if gain > 0.75 else rate * 2 if gain < 0.25 else rate
            if gain <= 0:
                trial, loss = weights, losses[-1]
        weights = trial
        losses.append(loss)
        norms.append(np.linalg.norm(gradient(weights)))
    return {"loss": np.array(losses), "gradient_norm": np.array(norms), "damping": used}


@functools.lru_cache(maxsize=1)
def damping_minimum(generated, penalty: float = 1e-2) -> np.ndarray:
    """The penalised Iris problem's minimum, by ``newton_step`` from W = 0 (it converges there)."""
    inputs, labels = iris()
    one_hot = np.eye(3)[labels]
    weights = np.zeros((inputs.shape[1], 3))
    for _ in range(20):
        weights = weights + generated.newton_step(inputs, weights, one_hot, penalty)
    return weights


def step_lengths(generated, dampings, penalty: float = 1e-2) -> dict:
    """At the damping figure's start: ‖ΔW‖ of the damped step for each λ in ``dampings``, and
    the bound ‖g‖/(penalty + λ) (step damped-bound), from one eigendecomposition of
    ℋ + penalty·I."""
    inputs, labels = iris()
    weights = DAMPING_START * damping_minimum(generated, penalty)
    slope = generated.weight_grad(inputs, weights, np.eye(3)[labels]) + penalty * weights
    unknowns = weights.size
    hessian = generated.weight_hessian(inputs, weights).reshape(unknowns, unknowns)
    curvatures, basis = np.linalg.eigh(hessian)
    along = basis.T @ slope.reshape(-1)
    dampings = np.asarray(dampings)
    lengths = np.linalg.norm(along[:, None] / (curvatures[:, None] + penalty + dampings), axis=0)
    return {"length": lengths, "bound": np.linalg.norm(slope) / (penalty + dampings)}


DAMPINGS_SHOWN = (0.0, 1.0, None)  # Newton (the penalty only), a fixed λ, Levenberg–Marquardt


def _damping_figure(fig, generated, posts) -> None:
    from derive.figures import margins

    left, right = fig.subplots(1, 2)
    margins(fig, left=0.65, right=0.15, bottom=0.62, top=0.35, wspace=0.27)
    for damping in DAMPINGS_SHOWN:
        run = damped_newton(generated, damping)
        name = (
            "Levenberg–Marquardt (λ adapted)"
            if damping is None
            else "Newton (newton_step, λ = 0)"
            if damping == 0
            else f"damped, λ = {damping:g} fixed"
        )
        iterations = len(run["damping"])
        done = (
            f"‖g‖ < 10⁻⁸ in {iterations} iterations"
            if run["gradient_norm"][-1] < 1e-8
            else f"‖g‖ = {run['gradient_norm'][-1]:.1e} after {iterations} iterations"
        )
        left.semilogy(run["loss"], label=f"{name}:\n{done}")
    dampings = np.geomspace(1e-3, 1e3, 25)
    lengths = step_lengths(generated, dampings)
    right.loglog(dampings, lengths["length"], label="‖ΔW‖ of the damped step")
    right.loglog(dampings, lengths["bound"], "--", label="bound ‖g‖ / (l2 + λ)")
    inputs, labels = iris()
    start = DAMPING_START * damping_minimum(generated)
    right_share = np.mean(generated.summation(inputs, start).argmax(axis=1) == labels)
    left.set_title(f"penalized loss, from −W*: {right_share:.0%} of samples right", fontsize=9)
    left.set_xlabel("iteration")
    right.set_title("the first damped step's length against λ", fontsize=9)
    right.set_xlabel("damping λ, added to l2 = 0.01")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


# -- the derivation ---------------------------------------------------------------------


def _times_ten(value: float) -> str:
    """A number as LaTeX, 1.6 \\cdot 10^{11}."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa} \\cdot 10^{{{int(exponent)}}}"


def references_steps(
    i, j, c, d, t, jj, kk, logit_hessian, weight_hessian, logits_of_W, probabilities_sum
) -> tuple[Step, ...]:
    """Second order as the references teach it: the Hessian is the Fisher information and the
    Gauss–Newton matrix (Martens 2020), and Newton's method on it is IRLS (Bishop §4.3.3)."""
    ell = class_index("ell")
    labels_probabilities = ((Sum(S[ell], (ell, 1, C)), sp.Integer(1)),)  # Σ_ℓ S_ℓ = 1
    score_z = KroneckerDelta(i, ell) - S[i]
    X = sp.IndexedBase("x")  # a batch's inputs x_bj
    w, sigma, R = sp.IndexedBase("w"), sp.IndexedBase("sigma"), sp.IndexedBase("R")
    L = sp.Symbol("L")
    spare = input_index("j'")
    binary = (
        (L, -Sum(y[b] * sp.log(sigma[b]) + (1 - y[b]) * sp.log(1 - sigma[b]), (b, 1, B))),
        (sigma[b], 1 / (1 + sp.exp(-Sum(w[spare] * X[b, spare], (spare, 1, D))))),
    )
    working = sp.IndexedBase("\\tilde{z}")  # Bishop's working response z̃
    along_w = Sum(X[b, kk] * w[kk], (kk, 1, D))
    return (
        Step(
            "The score",
            "Read the softmax as a model of the label, $p(\\ell \\mid z) = S_\\ell$ (the "
            "likelihood view). The gradient of its log-probability in the logits, the *score*, "
            "is $e_\\ell - S$: the one-hot row minus the probabilities.",
            Derivative(sp.log(S[ell]), z[i]),
            score_z,
            start="the log-probability of the label $\\ell$",
            key="score",
        ),
        Step(
            "The Fisher information is the Hessian",
            "The Fisher information is the covariance of the score under the model's own labels, "
            "$F = E_{\\ell \\sim S}[\\nabla \\log S_\\ell \\, \\nabla \\log S_\\ell^T]$. Given "
            "$\\sum_\\ell S_\\ell = 1$ it is $\\mathrm{diag}(S) - S S^T$, the Hessian of "
            "{step:logit-hessian}. That is no accident: the logits are the natural parameters of "
            "the categorical distribution (an exponential family), where the Hessian of $-\\log p$ "
            "does not depend on the label, so it equals its own expectation, which is always the "
            "Fisher information.",
            Sum(S[ell] * score_z * score_z.xreplace({i: j}), (ell, 1, C)),
            logit_hessian,
            relation="=>",
            given=labels_probabilities,
            start="the expected outer product of the score",
            key="fisher",
        ),
        Step(
            "In the weights too",
            "The score in $W$ is $x_j (\\delta_{c\\ell} - S_c)$ ({step:weight-hessian}'s chain "
            "rule), and its expected outer product is the Hessian in the weights of "
            "{step:weight-hessian}: natural gradient descent, which preconditions with $F^{-1}$, "
            "is Newton's method for this model.",
            Sum(
                S[ell] * x[jj] * score_z.xreplace({i: c}) * x[kk] * score_z.xreplace({i: d}),
                (ell, 1, C),
            ),
            weight_hessian,
            relation="=>",
            given=labels_probabilities,
            start="the expected outer product of the score in $W$",
            key="fisher-in-weights",
        ),
        Step(
            "Gauss–Newton drops nothing here",
            "For a loss $\\ell(z(W))$ the Hessian is $J^T \\mathcal{H}_z J + \\sum_t (\\partial XE "
            "/ \\partial z_t)\\, \\partial^2 z_t / \\partial W \\partial W$, with $J = \\partial z "
            "/ \\partial W$; the generalised Gauss–Newton matrix keeps the first term only (it is "
            "positive semi-definite whenever the loss is convex in $z$). Here $z = W^T x$ is "
            "linear in $W$, so the dropped term is 0 and the Gauss–Newton matrix **is** the "
            "Hessian ({step:weight-hessian} is $J^T \\mathcal{H}_z J$, proved below): Hessian, "
            "Fisher and Gauss–Newton coincide. With a hidden layer they differ: $z$ is no longer "
            "linear in the first layer's weights.",
            Derivative(z[t], W[jj, c], W[kk, d]),
            sp.Integer(0),
            where=logits_of_W,
            start="the second derivative of a logit in the weights",
            key="gauss-newton",
        ),
        Step(
            "Logistic regression's Hessian is XᵀRX",
            "Two classes with one logit $w^T x$ (the [binary cross-entropy page]"
            "(binary-cross-entropy.md)), Bishop's §4.3.3: differentiating the summed loss "
            "twice gives $\\sum_b x_{bj} x_{bk} \\sigma_b (1 - \\sigma_b)$, that is $X^T R X$ "
            "with $R = \\mathrm{diag}(\\sigma_b (1 - \\sigma_b))$, and the gradient is "
            "$X^T (\\sigma - y)$.",
            Derivative(L, w[jj], w[kk]),
            Sum(X[b, jj] * X[b, kk] * sigma[b] * (1 - sigma[b]), (b, 1, B)),
            where=binary,
            start="the summed binary loss, twice",
            checked="explicit",  # sums of logs of sigmoids: cancelled at explicit sizes
            sizes=({"B": 2, "D": 2},),
            key="logistic-hessian",
        ),
        Step(
            "Newton's step is a weighted least-squares fit (IRLS)",
            "Bishop's working response is $\\tilde z_b = x_b^T w - (\\sigma_b - y_b) / R_b$. "
            "For any weights $R_b \\ne 0$, $X^T R \\tilde z = X^T R X w - X^T (\\sigma - "
            "y)$, so with $R_b = \\sigma_b(1 - \\sigma_b)$ ({step:logistic-hessian}) the weighted "
            "least-squares solution $(X^T R X)^{-1} X^T R \\tilde z$ is $w - \\mathcal{H}^{-1} "
            "g$: **Newton's step**. Each Newton iteration refits a least-squares problem whose "
            "weights $R$ are recomputed from the current $\\sigma$: *iteratively reweighted "
            "least squares*. With $C$ classes the same holds with each sample's weight the "
            "$C \\times C$ block $\\mathrm{diag}(S_b) - S_b S_b^T$ (Bishop §4.3.4): "
            "`newton_step` computes one IRLS iteration.",
            Sum(X[b, jj] * R[b] * working[b], (b, 1, B)),
            Sum(Sum(X[b, jj] * R[b] * X[b, kk] * w[kk], (kk, 1, D)), (b, 1, B))
            - Sum(X[b, jj] * (sigma[b] - y[b]), (b, 1, B)),
            where=((working[b], along_w - (sigma[b] - y[b]) / R[b]),),
            start="$X^T R \\tilde z$, entry $j$",
            checked="explicit",  # the nested sums are ordered differently: written out
            key="irls",
        ),
    )


def damping_steps() -> tuple[Step, ...]:
    """What damping does to one eigen-direction of the Hessian (curvature h ≥ 0, gradient
    component g, damping λ > 0): Newton's step scaled by h/(h + λ), never longer than |g|/λ,
    and the decrease the quadratic model predicts, which Levenberg–Marquardt tests."""
    damped, newton = sp.Symbol("\\Delta_\\lambda"), sp.Symbol("\\Delta_N")
    steps_where = ((damped, -g1 / (h1 + lam)), (newton, -g1 / h1))  # the damped one first
    return (
        Step(
            "Damping scales Newton's step, direction by direction",
            "The Hessian is symmetric: along each of its eigenvectors, with eigenvalue (the "
            "curvature) $h \\ge 0$ and the gradient's component $g$ there, the damped system "
            "$(\\mathcal{H} + \\lambda I)\\,\\Delta = -g$ is one equation, solved by $\\Delta_"
            "\\lambda = -g / (h + \\lambda)$ (the exercise on damping below), and Newton's by $\\Delta_N = "
            "-g / h$. Their ratio is $h / (h + \\lambda)$: directions curved much more than "
            "$\\lambda$ keep Newton's step, flat ones ($h \\ll \\lambda$), where Newton's "
            "step is longest and its model least trustworthy, are cut to the gradient step "
            "$-g / \\lambda$.",
            damped / newton,
            h1 / (h1 + lam),
            where=steps_where,
            start="the damped step over Newton's, along one eigenvector",
            key="damping",
        ),
        Step(
            "A damped step is never longer than ‖g‖/λ",
            "The difference of the squares is a product of factors that are all $\\ge 0$ for "
            "$h \\ge 0$ and $\\lambda > 0$: $|\\Delta_\\lambda| \\le |g| / \\lambda$ in every "
            "direction, and summing the squares over the eigenvectors, $\\|\\Delta\\| \\le "
            "\\|g\\| / \\lambda$, however flat the loss. The L2 penalty is a fixed part "
            "$l_2$ of $\\lambda$; the figure below shows the bound $\\|g\\| / (l_2 + "
            "\\lambda)$ against the step's length.",
            (g1 / lam) ** 2 - damped**2,
            g1**2 * h1 * (h1 + 2 * lam) / (lam**2 * (h1 + lam) ** 2),
            where=steps_where[:1],
            start="the bound squared, minus the damped step squared",
            key="damped-bound",
        ),
        Step(
            "The decrease the model predicts",
            "The quadratic model of the loss, $g \\Delta + h \\Delta^2 / 2$, falls by this at "
            "the damped step: positive whenever $g \\ne 0$, so the step always goes downhill "
            "on the model. Levenberg–Marquardt compares it with the loss's actual decrease: "
            "where the two agree (their ratio above 3/4) the model is trusted and $\\lambda$ "
            "divided by 3; where the loss fell by less than a quarter of the prediction, "
            "$\\lambda$ is doubled, and a step that raised the loss is refused.",
            -(g1 * damped + h1 * damped**2 / 2),
            g1**2 * (h1 + 2 * lam) / (2 * (h1 + lam) ** 2),
            where=steps_where[:1],
            start="the quadratic model's decrease at the damped step",
            key="predicted-decrease",
        ),
    )


def derive():
    # On this page j and k count inputs (W_jc, W_kd; declared below, as d counting classes),
    # so the logits' second index prints n and log-sum-exp's own index r (derive/notation.py).
    i, j, t = class_index("i"), class_index("n"), class_index("t")
    c, d = class_index("c"), class_index("d")
    jj, kk = input_index("j"), input_index("k")  # inputs: W_jc, W_kd
    lse = {class_index("k"): class_index("r")}
    XE = sp.Symbol("XE")

    # The logits: ∂²XE/∂z_i∂z_n, from the loss written with log-softmax (from the logits page).
    log_softmax = result("cross_entropy_from_logits", "log_softmax", i=t).xreplace(lse)
    loss = -Sum(y[t] * log_softmax, (t, 1, C))
    first = evaluate(sp.diff(loss, z[i]))
    second = evaluate(sp.diff(first, z[j]))
    logit_grad = result("cross_entropy_from_logits", "logit_grad", j=i)  # S_i − y_i
    logit_hessian = result("softmax_jacobian", "jacobian", i=i, j=j)  # S_i(δ_in − S_n)
    softmax_i = result("softmax_jacobian", "softmax", i=i).xreplace(lse)  # e^{z_i} / Σ_r e^{z_r}
    S_vector = sp.MatrixSymbol("S", C, 1)
    matrix_form = sp.DiagMatrix(S_vector) - S_vector * S_vector.T

    # Positive semi-definite: vᵀHv is a variance.
    quadratic = Sum(v[i] * Sum(logit_hessian * v[j], (j, 1, C)), (i, 1, C))
    moment, mean = Sum(S[i] * v[i] ** 2, (i, 1, C)), Sum(S[i] * v[i], (i, 1, C))
    quadratic_shortcut = moment - mean * Sum(S[j] * v[j], (j, 1, C))
    m = sp.Symbol("mu", real=True)  # the mean (m is the logits' maximum)
    variance = Sum(S[i] * (v[i] - m) ** 2, (i, 1, C))

    # Singular: H·1 = 0, and W + a1ᵀ has the logits of W shifted by aᵀx.
    null = Sum(logit_hessian, (j, 1, C))
    a = sp.IndexedBase("a", shape=(D,))
    logit = summation(c).xreplace({input_index("d"): jj})  # d counts classes on this page
    ((e, _, _),) = logit.limits
    shifted_logit = Sum((W[e, c] + a[e]) * x[e], (e, 1, D))
    shift_shortcut = logit + Sum(a[e] * x[e], (e, 1, D))

    # The weights: z is linear in W, so only the logit Hessian's term survives the chain rule.
    dz_t = evaluate(sp.diff(summation(t), W[jj, c]))  # x_j δ_tc
    dz_u = evaluate(sp.diff(summation(i), W[kk, d]))  # x_k δ_id
    # ∂²XE/∂z_t∂W_kd first (the inner sum), then through z_t to W_jc: two sums of deltas
    # collapsed one at a time (collapsed together, doit leaves the outer sum).
    inner = evaluate(Sum(result("softmax_jacobian", "jacobian", i=t, j=i) * dz_u, (i, 1, C)))
    chain = Sum(dz_t * inner, (t, 1, C))
    weight_hessian = sp.factor(evaluate(chain))
    X, P = sp.IndexedBase("x"), sp.IndexedBase("S")
    per_sample = {S[c]: P[b, c], S[d]: P[b, d], x[jj]: X[b, jj], x[kk]: X[b, kk]}
    batch_hessian = Sum(weight_hessian.xreplace(per_sample), (b, 1, B)) / B
    share = sp.IndexedBase("share")  # S_bc / B: each sample's share of the mean
    as_products = (
        Sum(X[b, jj] * P[b, c] * X[b, kk], (b, 1, B)) * KroneckerDelta(c, d)
        - Sum(X[b, jj] * P[b, c] * X[b, kk] * P[b, d], (b, 1, B))
    ) / B

    # Hessian times V: two matrix products, U = X V and Xᵀ[S ⊙ U − S (Σ S U)].
    V, U = sp.IndexedBase("V"), sp.IndexedBase("U")
    hvp_long = Sum(Sum(weight_hessian * V[kk, d], (d, 1, C)), (kk, 1, D))  # one sample
    hvp_sample = (
        x[jj]
        * S[c]
        * (Sum(x[kk] * V[kk, c], (kk, 1, D)) - Sum(S[d] * V[kk, d] * x[kk], (d, 1, C), (kk, 1, D)))
    )
    along = Sum(X[b, kk] * V[kk, c], (kk, 1, D))  # U_bc
    hvp = (
        Sum(
            X[b, jj] * P[b, c] * (along - Sum(P[b, d] * along.xreplace({c: d}), (d, 1, C))),
            (b, 1, B),
        )
        / B
    )

    # Why the code computes it this way: where S_c ≈ 1, x_j x_k S_c δ_cd − x_j x_k S_c S_d loses
    # 1 − S_c on the diagonal blocks; the softmax Jacobian's stable form (its page) keeps it.
    stable_logit_hessian = result("softmax_jacobian", "stable_jacobian", i=c, j=d)
    (others_sum,) = stable_logit_hessian.atoms(Sum)  # Σ_{n≠c} S_n
    ((other, _, _),) = others_sum.limits  # its summation index
    stable_sample = x[jj] * x[kk] * stable_logit_hessian
    O = sp.IndexedBase("others")  # O_bc = Σ_{n≠c} S_bn, one per sample and class
    named_others = {others_sum: O[c]}
    batch_stable = (
        Sum(
            stable_sample.xreplace(named_others).xreplace({**per_sample, O[c]: O[b, c]}),
            (b, 1, B),
        )
        / B
    )
    stable_products = (
        KroneckerDelta(c, d) * Sum(X[b, jj] * P[b, c] * O[b, c] * X[b, kk], (b, 1, B))
        - (1 - KroneckerDelta(c, d)) * Sum(X[b, jj] * P[b, c] * X[b, kk] * P[b, d], (b, 1, B))
    ) / B
    batch_others = others_sum.xreplace({S[other]: P[b, other]})  # Σ_{n≠c} S_bn

    # The HVP's factor U_c − Σ_d S_d U_d, with the sums of others: no 1 − S_c lost either.
    Uc = sp.IndexedBase("U")
    others_d = Sum((1 - KroneckerDelta(c, d)) * S[d], (d, 1, C))
    others_weighted = Sum((1 - KroneckerDelta(c, d)) * S[d] * Uc[d], (d, 1, C))
    hvp_factor = S[c] * (Uc[c] - Sum(S[d] * Uc[d], (d, 1, C)))
    hvp_factor_stable = S[c] * (Uc[c] * others_d - others_weighted)
    Q = sp.IndexedBase("others_along")  # Q_bc = Σ_{d≠c} S_bd U_bd
    hvp_stable = Sum(X[b, jj] * P[b, c] * (U[b, c] * O[b, c] - Q[b, c]), (b, 1, B)) / B

    # The L2 penalty (l2/2) Σ_kd W_kd², its gradient and Hessian: the sum has its own indices
    # k, d, apart from the j, c it is differentiated by.
    penalty = l2 / 2 * Sum(Sum(W[kk, d] ** 2, (d, 1, C)), (kk, 1, D))
    penalty_grad = evaluate(sp.diff(penalty, W[jj, c]))  # l2 W_jc
    penalty_hessian = evaluate(sp.diff(penalty_grad, W[kk, d]))  # l2 δ_jk δ_cd

    # Newton's system as the code builds it: the samples' x_b x_bᵀ (B x D²) times, in one
    # matrix product each, the diagonal blocks' S_bc O_bc (B x C) and the S_bc S_bd (B x C²).
    inputs_outer = sp.IndexedBase("inputs_outer")
    penalty_identity = l2 * KroneckerDelta(jj, kk) * KroneckerDelta(c, d)
    # entry [j, k, c, d] of ℋ + l2·I, the penalty inside the diagonal blocks' factor
    kronecker_system = KroneckerDelta(c, d) * (
        Sum(inputs_outer[b, jj, kk] * share[b, c] * O[b, c], (b, 1, B))
        + l2 * KroneckerDelta(jj, kk)
    ) - (1 - KroneckerDelta(c, d)) * Sum(inputs_outer[b, jj, kk] * share[b, c] * P[b, d], (b, 1, B))

    # The Hessian as the code computes it: the samples' x_b x_bᵀ times their stable logit
    # Hessians over B, one sum; both factors symmetric, so the pairs j ≤ k and c ≤ d suffice.
    logit_hessians = sp.IndexedBase("logit_hessians")  # entry [b, c, d], (ℋ_z / B)_bcd
    per_sample_logit_hessian = (
        KroneckerDelta(c, d) * share[b, c] * O[b, c]
        - (1 - KroneckerDelta(c, d)) * share[b, c] * P[b, d]
    )
    kronecker_sum = Sum(inputs_outer[b, jj, kk] * logit_hessians[b, c, d], (b, 1, B))
    logit_hessians_named = (  # what (ℋ_z / B)_bcd is, down to the inputs
        (logit_hessians[b, c, d], per_sample_logit_hessian),
        (share[b, c], P[b, c] / B),
        (O[b, c], batch_others),
    )

    # What the steps' names mean, down to the inputs (derive.claims writes them out).
    labels_sum = ((Sum(y[t], (t, 1, C)), sp.Integer(1)),)  # Σ_t y_t = 1
    probabilities_sum = ((Sum(S[j], (j, 1, C)), sp.Integer(1)),)  # Σ_n S_n = 1
    r = class_index("r")  # log-sum-exp's own index, as in the loss
    Y = sp.IndexedBase("y")  # a batch's labels y_bt
    spare = input_index("j'")  # the logits' own sum over the inputs, apart from j and k
    logits_of_W = ((z[t], Sum(W[spare, t] * x[spare], (spare, 1, D))),)  # z_t = Σ_j' W_j't x_j'
    Z, XEb = sp.IndexedBase("z"), sp.IndexedBase("XE")  # a batch's logits z_bt, losses XE_b
    batch_softmax = (  # S_bt and z_bt, for the steps that use them without the loss
        (P[b, t], sp.exp(Z[b, t]) / Sum(sp.exp(Z[b, r]), (r, 1, C))),
        (Z[b, t], Sum(W[spare, t] * X[b, spare], (spare, 1, D))),
    )
    batch_where = ((XEb[b], -Sum(Y[b, t] * sp.log(P[b, t]), (t, 1, C))), *batch_softmax)
    batch_labels_sum = ((Sum(Y[b, t], (t, 1, C)), sp.Integer(1)),)  # Σ_t y_bt = 1, each b
    batch_probabilities_sum = ((Sum(P[b, d], (d, 1, C)), sp.Integer(1)),)  # Σ_d S_bd = 1

    # The HVP as the code computes it: from the softmax's exponentials E_bc = e^{z_bc − m_b}
    # (m_b the row's maximum), not the probabilities S_bc = E_bc / Σ_r E_br: the factor's
    # terms are products of two probabilities, so (Σ_r E_br)² and B are one divisor per sample.
    E, row_max = sp.IndexedBase("E"), sp.IndexedBase("m")  # in the code: exp_shifted, z_max
    exps_total = Sum(E[b, r], (r, 1, C))
    exps_factor = Sum((1 - KroneckerDelta(c, d)) * E[b, d] * (U[b, c] - U[b, d]), (d, 1, C))
    exps_share = E[b, c] * exps_factor / (B * exps_total**2)
    hvp_from_exps = Sum(X[b, jj] * exps_share, (b, 1, B))
    mean_loss = Sum(XEb[b], (b, 1, B)) / B

    steps = (
        Step(
            "The gradient with respect to the logits",
            "From the page on the loss from the logits: $\\partial XE / \\partial z_i = S_i - y_i$, "
            "given $\\sum_t y_t = 1$.",
            Derivative(XE, z[i]),
            logit_grad,
            relation="=>",
            given=labels_sum,
            key="logit-gradient",
        ),
        Step(
            "Differentiate again",
            "$y$ does not depend on $z$; what remains is the softmax Jacobian of the first page. "
            "The Hessian with respect to the logits **is** the softmax Jacobian: it does not "
            "depend on $y$ at all.",
            Derivative(logit_grad, z[j]),
            logit_hessian,
            start="{step:logit-gradient}'s gradient, differentiated by $z_n$",
            key="logit-hessian",
        ),
        Step(
            "Directly, from the loss",
            "Differentiating $-\\sum_t y_t \\log S_t$ twice without the shortcut: every term "
            "carries the factor $\\sum_t y_t$.",
            Derivative(XE, z[i], z[j]),
            sp.factor_terms(second),
            start="the loss written with the logits",
        ),
        Step(
            "One-hot labels",
            "$\\sum_t y_t = 1$ for one-hot (or any probability) labels: the same Hessian as "
            "{step:logit-hessian}'s, the softmax Jacobian.",
            sp.factor_terms(second),
            logit_hessian,
            relation="=>",
            given=labels_sum,
        ),
        Step(
            "Matrix form",
            "$S_i \\delta_{in}$ is $\\mathrm{diag}(S)$, $S_i S_n$ the outer product.",
            logit_hessian,
            matrix_form,
            checked="explicit",  # a matrix's entries: compared at explicit sizes
            entry=((i,), (j,)),
        ),
        Step(
            "A quadratic form",
            "For any direction $v$ in logit space, the delta keeps $n = i$; the rest is a product "
            "of two sums.",
            quadratic,
            quadratic_shortcut,
            start="$v^T \\mathcal{H} v$, for any direction $v$",
        ),
        Step(
            "The variance reading",
            "Let $V$ be a random variable taking the value $v_i$ with probability $S_i$. Then "
            "$\\sum_i S_i v_i^2 = E[V^2]$ and $\\sum_i S_i v_i = E[V] = \\mu$, so "
            "$v^T \\mathcal{H} v = E[V^2] - E[V]^2$.",
            quadratic_shortcut,
            moment - m**2,
            relation="=>",
            given=((mean, m),),
        ),
        Step(
            "A variance, never negative",
            "$E[V^2] - \\mu^2 = \\operatorname{Var}(V) = \\sum_i S_i (v_i - \\mu)^2 \\geq 0$ "
            "(expand the square and use $\\sum_i S_i = 1$): "
            "**the Hessian is positive semi-definite**, and the loss is convex in $z$ (and in "
            "$W$, since $z$ is linear in $W$). The variance is 0 only when $V$ is constant: "
            "$v$ is a multiple of $\\mathbf{1}$ (every $S_i > 0$).",
            moment - m**2,
            variance,
            relation="=>",
            given=(*probabilities_sum, (mean, m)),
            key="variance",
        ),
        Step(
            "Singular: the direction of ones",
            "Each row of the Hessian sums to $S_i(1 - \\sum_n S_n) = 0$: "
            "$\\mathcal{H} \\mathbf{1} = 0$. "
            "Adding the same number to every logit changes no probability (the softmax shift "
            "proved on the first page), so the loss is flat along $\\mathbf{1}$: of $C$ "
            "logits only $C - 1$ are identified, which is why two classes need one logit, "
            "$z_1 - z_2$ (the [binary cross-entropy page](binary-cross-entropy.md), step *Only "
            "differences of logits are identified*).",
            null,
            sp.Integer(0),
            relation="=>",
            given=probabilities_sum,
            start="$\\mathcal{H} \\mathbf{1}$, row $i$",
        ),
        Step(
            "Singular in W: W + a1ᵀ",
            "Adding a vector $a$ to every column of $W$ adds $a^T x$ to every logit, "
            "which leaves every $S$, hence the loss, unchanged. Each of the $D$ directions "
            "$a = e_1, \\dots, e_D$ is a null vector of the Hessian with respect to $W$, for one "
            "sample and for any batch: its null space has dimension at least $D$. It is exactly "
            "$D$ when the batch's inputs span $\\mathbb{R}^D$ (the tests check the eigenvalues), "
            "and larger otherwise: each direction $u$ orthogonal to every input adds $C - 1$ "
            "more ($W + u w^T$ leaves every logit unchanged, for any $w$), so for one sample "
            "it is $D C - C + 1$ (the first exercise).",
            shifted_logit,
            shift_shortcut,
            start="the logits of $W + a \\mathbf{1}^T$",
            key="null-direction-in-w",
        ),
        Step(
            "Second derivative with respect to the weights",
            "Chain rule twice through $z_t = \\sum_{j'} W_{j't} x_{j'}$: $\\partial z_t / \\partial "
            "W_{jc} = x_j \\delta_{tc}$, and $z$ is linear in $W$, so no second derivative of "
            "$z$ appears; the deltas keep $t = c$, $i = d$.",
            Derivative(XE, W[jj, c], W[kk, d]),
            weight_hessian,
            relation="=>",
            given=labels_sum,
            where=logits_of_W,
            start="the loss, through the logits $z = W^T x$",
            key="weight-hessian",
        ),
        Step(
            "Kronecker form",
            "Entry $[j, c, k, d]$ is $(x x^T)_{jk} \\, (\\mathrm{diag}(S) - S S^T)_{cd}$. With "
            "$W$ flattened row-major (`W.reshape(-1)`, index $j C + c$) the $DC \\times DC$ "
            "Hessian is $x x^T \\otimes (\\mathrm{diag}(S) - S S^T)$; in the posts' class-major "
            "order ($c D + j$) it is $(\\mathrm{diag}(S) - S S^T) \\otimes x x^T$.",
            weight_hessian,
            sp.kronecker_product(
                sp.MatrixSymbol("x", D, 1) * sp.MatrixSymbol("x", D, 1).T, matrix_form
            ),
            checked="explicit",  # a matrix's entries: compared at explicit sizes
            entry=((jj, c), (kk, d)),
        ),
        Step(
            "Mean over a batch",
            "The derivative of a mean is the mean of the derivatives, each sample with its own "
            "$x$ and $S$. A sum of positive semi-definite matrices is positive semi-definite, "
            "and every $W + a 1^T$ direction stays in the null space.",
            Derivative(mean_loss, W[jj, c], W[kk, d]),
            batch_hessian,
            relation="=>",
            given=batch_labels_sum,
            where=batch_where,
            start="the mean loss over a batch of $B$ samples",
            key="batch-hessian",
        ),
        Step(
            "As two matrix products",
            "Expanding the bracket separates a term with $\\delta_{cd}$ from one without; each "
            "is one sum over the batch of a product of per-sample factors, which the generated "
            "code computes as one matrix product ($X^T$ times a $B \\times DC$ outer product), "
            "never forming a $B \\times D \\times C \\times D \\times C$ array.",
            batch_hessian,
            as_products,
            where=batch_softmax,
        ),
        Step(
            "Why the code computes the diagonal blocks as a sum of others",
            "Where a probability $S_c$ is close to 1, the diagonal block $c = d$ of the two "
            "products above is $x_j x_k S_c - x_j x_k S_c S_c$: two nearly equal numbers, whose "
            "difference $x_j x_k S_c (1 - S_c)$ loses the digits of $1 - S_c$ (all of them when "
            "$S_c$ rounds to 1). The softmax Jacobian page's stable form keeps them: on the "
            "diagonal $S_c \\sum_{n \\ne c} S_n$, a product of positive numbers, and off it "
            "$-S_c S_d$, with no subtraction at all. Given $\\sum_n S_n = 1$ it is the same "
            "Hessian.",
            weight_hessian,
            stable_sample,
            relation="=>",
            given=probabilities_sum,
            start=11,
        ),
        Step(
            "As two matrix products, without cancellation",
            "Name the sums of others $O_{bc} = \\sum_{n \\ne c} S_{bn}$ (computed per sample "
            "without subtracting $S_{bc}$ from a sum it is nearly all of: `sum_of_others`). "
            "The $\\delta_{cd}$ "
            "term and the $(1 - \\delta_{cd})$ term each become one sum over the batch: the "
            "first holds on the diagonal blocks and the second off them, so no entry is a "
            "difference of the two (the code joins them per sample, {step:kronecker-sum}). "
            "The cost is that of the two products before, $O(B D^2 C^2)$, never a "
            "$B \\times D \\times C \\times D \\times C$ array. What still cancels is the data: for $j \\ne k$, $x_{bj} x_{bk}$ takes both "
            "signs over the batch; for $j = k$ every term of a sum has the same sign.",
            batch_stable,
            stable_products,
            where=((O[b, c], batch_others), *batch_softmax),
            start="the batch mean of the stable form",
        ),
        Step(
            "As one sum of Kronecker products",
            "Both terms are sums over the batch of $x_{bj} x_{bk}$ times a factor of $b, c, d$ "
            "alone: each sample's stable logit Hessian over $B$, $(\\mathcal{H}_z / B)_{bcd}$, "
            "$S_{bc} O_{bc} / B$ on the diagonal and $-S_{bc} S_{bd} / B$ off it. So the "
            "Hessian is one sum, $\\sum_b x_b x_b^T \\otimes (\\mathcal{H}_z / B)_b$: "
            "entry $[j, c, k, d]$ is a product of the samples' $x x^T$ ($B \\times D^2$) "
            "and their logit Hessians ($B \\times C^2$), summed over the batch.",
            stable_products,
            kronecker_sum,
            where=(
                (inputs_outer[b, jj, kk], X[b, jj] * X[b, kk]),
                *logit_hessians_named,
                *batch_softmax,
            ),
            key="kronecker-sum",
        ),
        Step(
            "Both factors are symmetric: the pairs j ≤ k and c ≤ d suffice",
            "$x_{bj} x_{bk}$ does not change when $j$ and $k$ swap, and a logit Hessian does "
            "not change when $c$ and $d$ do ($S_{bc} S_{bd} / B$ off the diagonal): entry "
            "$[j, c, k, d]$ of {step:kronecker-sum}'s sum is also entry $[k, c, j, d]$, "
            "$[j, d, k, c]$ and $[k, d, j, c]$. The code (`symmetric_kronecker_sum`) "
            "multiplies the $D(D+1)/2$ pairs $j \\le k$ by the $C(C+1)/2$ pairs "
            "$c \\le d$, in one matrix product over the batch, a quarter of the "
            "multiply-adds of all $(j, c)$ by all $(k, d)$ ($B \\times "
            f"{_pairs(_EXAMPLE_INPUTS)}$ by $B \\times {_pairs(_EXAMPLE_CLASSES)}$ at "
            f"$D = {_EXAMPLE_INPUTS}$, $C = {_EXAMPLE_CLASSES}$), and writes each product where "
            f"its entries are (in NumPy, from $D C = {_PAIRS_FROM}$: below, one plain product of "
            "all pairs is faster), so the result is exactly symmetric.",
            logit_hessians[b, c, d],
            logit_hessians[b, d, c],
            where=(*logit_hessians_named, *batch_softmax),
            start="one sample's logit Hessian over $B$",
        ),
        Step(
            "Hessian times V, without the Hessian",
            "Summing one sample's Hessian against a $V$ shaped like $W$: the delta keeps "
            "$d = c$, and $k$ meets only $x_k$ and $V$. Both sums over $k$ are entries of "
            "$U = V^T x$ ($U_c = \\sum_k x_k V_{kc}$; $S_d$ leaves the inner sum): "
            "$x_j S_c (U_c - \\sum_d S_d U_d)$.",
            hvp_long,
            hvp_sample,
            start="one sample's Hessian summed against $V$",
            key="hvp",
        ),
        Step(
            "Hessian times V over a batch",
            "The mean of the samples' products: $U = X V$ ($B \\times C$), then $X^T$ times "
            "$S \\odot (U - \\sum_d S_d U_d)$, over $B$. Two matrix products over the batch "
            "(and the forward pass), no $DC \\times DC$ array: the cost of one gradient.",
            Sum(Sum(batch_hessian * V[kk, d], (d, 1, C)), (kk, 1, D)),
            hvp,
            start="the mean loss's Hessian ({step:batch-hessian}) summed against $V$",
            checked="explicit",  # SymPy does not cancel the sums over k and d in index form
            key="batch-hvp",
        ),
        Step(
            "Why the code computes the HVP's factor with sums of others",
            "$U_c - \\sum_d S_d U_d$ loses the same digits where $S_c \\approx 1$: "
            "$\\sum_d S_d U_d$ is then $U_c$ up to a relative $1 - S_c$. Given "
            "$\\sum_d S_d = 1$, $U_c = U_c \\sum_{d} S_d$, and the $d = c$ terms cancel "
            "exactly in the algebra instead of in floating point: what is left are sums over "
            "the other classes, each computed without subtracting an entry from a sum it is "
            "nearly all of (the printer's sum of others, `sum_of_others`). Where "
            "$S_c \\approx 1$ both terms are small and carry their own digits.",
            hvp_factor,
            hvp_factor_stable,
            relation="=>",
            given=((Sum(S[d], (d, 1, C)), sp.Integer(1)),),
            where=((Uc[c], Sum(x[kk] * V[kk, c], (kk, 1, D))),),
            start="one sample's factor, with $U_c = \\sum_k x_k V_{kc}$",
        ),
        Step(
            "Hessian times V over a batch, as the code computes it",
            "With $O_{bc} = \\sum_{d \\ne c} S_{bd}$ and $Q_{bc} = \\sum_{d \\ne c} S_{bd} "
            "U_{bd}$: still $U = X V$, then $X^T$ times a $B \\times C$ array, two matrix "
            "products over the batch (and the forward pass $X W$).",
            hvp,
            hvp_stable,
            relation="=>",
            given=batch_probabilities_sum,
            where=(
                (O[b, c], batch_others),
                (Q[b, c], Sum((1 - KroneckerDelta(c, d)) * P[b, d] * U[b, d], (d, 1, C))),
                (U[b, c], along),
                *batch_softmax,
            ),
            start=20,
        ),
        Step(
            "Hessian times V from the exponentials",
            "Each term of the factor is a product of two probabilities of one sample, "
            "$S_{bc} S_{bd}$, and each is $E_{bc} / \\sigma_b$ with $E_{bc} = e^{z_{bc} - m_b}$, "
            "the softmax's exponentials before it divides ($m_b$ the row's maximum), and "
            "$\\sigma_b = \\sum_r E_{br}$: so $1 / \\sigma_b^2$ comes out of the factor, and "
            "with $1/B$ it is one divisor per sample. $U_c O_c - Q_c$ is also one sum, "
            "$\\sum_{d \\ne c} S_d (U_c - U_d)$, the same terms regrouped. The code computes "
            "the exponentials and this sum, not the probabilities: the softmax's division "
            "and the division by $B$ become one division per sample (in NumPy, where no "
            "$E_{bc}$ is most of its row, $E_{bc} (U_{bc} - \\bar U_b) / (B \\sigma_b)$ with "
            "$\\bar U_b = \\sum_d E_{bd} U_{bd} / \\sigma_b$): four passes over the "
            "$B \\times C$ array fewer (`share_of_weighted_differences`).",
            hvp_stable,
            hvp_from_exps,
            where=(
                (O[b, c], batch_others),
                (Q[b, c], Sum((1 - KroneckerDelta(c, d)) * P[b, d] * U[b, d], (d, 1, C))),
                (P[b, t], E[b, t] / Sum(E[b, r], (r, 1, C))),
                (E[b, t], sp.exp(Z[b, t] - row_max[b])),
                (U[b, c], along),
            ),
            checked="explicit",
            key="hvp-from-exponentials",
        ),
        Step(
            "The L2 penalty's gradient",
            "Newton's method minimizes $\\overline{XE} + \\frac{l_2}{2}\\|W\\|^2$. Differentiating "
            "the penalty by $W_{jc}$ keeps the one term $k = j$, $d = c$ of its sum: its gradient "
            "is $l_2 W$ ...",
            Derivative(penalty, W[jj, c]),
            penalty_grad,
            start="the penalty $\\frac{l_2}{2}\\|W\\|^2$",
        ),
        Step(
            "... and its Hessian is l2 times the identity",
            "so the Hessian of the penalized loss is $\\mathcal{H} + l_2 I$. $\\mathcal{H}$ is "
            "positive semi-definite, so every eigenvalue of $\\mathcal{H} + l_2 I$ is at least "
            "$l_2 > 0$: the penalized loss is strictly convex and has **exactly one minimum**, "
            "and the Newton step $\\Delta W$ solving $(\\mathcal{H} + l_2 I)\\,"
            "\\mathrm{vec}(\\Delta W) = -\\mathrm{vec}(g + l_2 W)$ (row-major vec) is unique. "
            "With $l_2 = 0$ the system $\\mathcal{H}\\,\\mathrm{vec}(\\Delta W) = "
            "-\\mathrm{vec}(g)$ still has solutions ($g$ is orthogonal to the null space: the "
            "second exercise), but not one: any null direction $a 1^T$ can be added to $\\Delta W$. "
            "And the minimum may not exist: when the classes are linearly separable, scaling a "
            "separating $W$ by $t \\to \\infty$ drives every true-class probability to 1 and the "
            "loss to its infimum 0, which no finite $W$ attains. Iris is not separable as a "
            "whole (versicolor and virginica overlap), but setosa is separable from the other "
            "two: with $a^T x > 0$ exactly on setosa's inputs, adding $t\\,a$ to setosa's "
            "column of $W$ lowers the loss for every $t$, so without the penalty gradient "
            "descent and Newton's method send the weights to infinity along it.",
            Derivative(penalty_grad, W[kk, d]),
            penalty_hessian,
            start="the penalty's gradient $l_2 W_{jc}$",
            key="penalty-hessian",
        ),
        Step(
            "Newton's system from the samples' x xᵀ",
            "Each sample's term of the stable Hessian is $x_{bj} x_{bk}$ times that sample's "
            "logit Hessian, $\\delta_{cd} S_{bc} O_{bc} - (1 - \\delta_{cd}) S_{bc} S_{bd}$: "
            "the Hessian in $W$ is $\\frac{1}{B} \\sum_b x_b x_b^T \\otimes (\\mathrm{diag}"
            "(S_b \\odot O_b) - \\mathrm{offdiag}(S_b S_b^T))$, one sample's Kronecker form summed "
            "over the batch. `newton_step` computes it from the $B \\times D^2$ array of the "
            "samples' $x_b x_b^T$ and each sample's share of the mean, $S_{bc} / B$: the first's "
            "transpose times the share times $O$ ($B \\times C$) gives the diagonal blocks, "
            "times the samples' share times $S_b^T$ ($B \\times C^2$) the others, two matrix "
            "products of entry $[j, k, c, d]$. The penalty's $l_2 \\delta_{jk}$ joins the "
            "diagonal blocks' factor; the middle axes, swapped, give the row-major "
            "$DC \\times DC$ matrix, solved once. The gradient comes from the same "
            "probabilities: the forward pass runs once.",
            batch_stable + penalty_identity,
            kronecker_system,
            where=(
                (inputs_outer[b, jj, kk], X[b, jj] * X[b, kk]),
                (share[b, c], P[b, c] / B),
                (O[b, c], batch_others),
                *batch_softmax,
            ),
            start="the batch mean of the stable form, plus the penalty's Hessian",
        ),
    )

    steps += references_steps(
        i, j, c, d, t, jj, kk, logit_hessian, weight_hessian, logits_of_W, probabilities_sum
    )
    steps += damping_steps()

    # What the steps do not already prove: the Hessian in W and the Hessian times V with
    # explicit matrices, in the row-major Kronecker layout the code uses, at several sizes.
    identities = (
        Identity(
            "weight_hessian",
            "the chain rule through $z = W^T x$ gives $\\partial^2 XE / \\partial W_{jc} "
            "\\partial W_{kd} = x_j x_k S_c(\\delta_{cd} - S_d)$; with explicit matrices, the "
            "Hessian of the loss in $W$ (flattened row-major) is "
            "$x x^T \\otimes (\\mathrm{diag}(S) - S S^T)$",
            long=chain,
            shortcut=weight_hessian,
            explicit=explicit_weight_hessian,
            explicit_sizes=every(C=range(2, 3), D=range(1, 3))
            + every(C=range(3, 4), D=range(1, 2)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "weight_hvp",
            "for one sample and a direction $V$ shaped like $W$, $\\sum_{k, d} "
            "\\mathcal{H}_{jc,kd} V_{kd} = x_j S_c(U_c - \\sum_d S_d U_d)$ with $U = V^T x$; "
            "with explicit matrices, $(x x^T \\otimes (\\mathrm{diag}(S) - S S^T))\\,"
            "\\mathrm{vec}(V)$ (row-major) gives the same",
            long=hvp_long,
            shortcut=hvp_sample,
            explicit=explicit_hvp,
            explicit_sizes=every(C=range(2, 4), D=range(1, 3)),
            long_title="The Hessian summed against $V$,",
            shortcut_title="the two products,",
        ),
    )

    # -- exercises ---------------------------------------------------------------------------
    a_row = sp.IndexedBase("a", shape=(D,))
    # ⟨a1ᵀ, g⟩ for one sample's gradient g_jc = x_j(S_c − y_c), the sum over c inside
    gradient_along_null = Sum(a_row[jj] * x[jj] * Sum(S[c] - y[c], (c, 1, C)), (jj, 1, D))
    exercises = (
        Exercise(
            "For one sample, the Hessian in the weights is $x x^T \\otimes (\\mathrm{diag}(S) - "
            "S S^T)$. What is the dimension of its null space, for $x \\ne 0$? Compare it with "
            "the $D$ directions $W + a 1^T$.",
            sp.Eq(NULLITY, D * C - C + 1),
            _one_sample_nullity,
            answer="The rank of a Kronecker product is the product of the ranks: $x x^T$ has rank "
            "1 and $\\mathrm{diag}(S) - S S^T$ rank $C - 1$ (its null space is the direction "
            "$\\mathbf{1}$ alone, since the variance of {step:variance} vanishes only there). So "
            "the rank is $C - 1$ and the null space has dimension $D C - C + 1$: besides the $D$ "
            "directions $a 1^T$, every $u w^T$ with $u \\perp x$ leaves the logits unchanged. Only "
            "when a batch's inputs span $\\mathbb{R}^D$ is it exactly $D$. SymPy computes the "
            "exact rank of the Kronecker product at random rational $x$ and $S$ (with $\\sum_c S_c "
            "= 1$) for $D = 1..4$, $C = 2..4$, and compares.",
            title="The null space of one sample's Hessian",
        ),
        Exercise(
            "Show that the gradient $g_{jc} = x_j(S_c - y_c)$ is orthogonal to every null "
            "direction $a 1^T$ of the Hessian: $\\sum_{j, c} a_j g_{jc} = 0$. Why does that "
            "mean $\\mathcal{H}\\,\\mathrm{vec}(\\Delta W) = -\\mathrm{vec}(g)$ has solutions "
            "even without the penalty?",
            sp.Eq(gradient_along_null, 0),
            Identity(
                "gradient_orthogonal_to_null_space",
                "the gradient is orthogonal to the null directions $a 1^T$, given "
                "$\\sum_c S_c = 1$ and $\\sum_c y_c = 1$",
                long=gradient_along_null,
                shortcut=sp.Integer(0),
                assumptions={
                    Sum(S[c], (c, 1, C)): sp.Integer(1),
                    Sum(y[c], (c, 1, C)): sp.Integer(1),
                },
                explicit=explicit_gradient_along_null,
                explicit_sizes=every(C=range(2, 5), D=range(1, 4)),
                long_title="The gradient along $a 1^T$,",
                shortcut_title="zero,",
            ),
            answer="$\\sum_{j,c} a_j x_j (S_c - y_c) = (a^T x)(\\sum_c S_c - \\sum_c y_c) = "
            "(a^T x)(1 - 1) = 0$: moving along $a 1^T$ shifts every logit by $a^T x$, which "
            "changes no probability, so the loss does not change to first order either. For a "
            "batch the gradient is a mean of such terms, orthogonal too. $\\mathcal{H}$ is "
            "symmetric, so its range is the orthogonal complement of its null space: $g$ lies "
            "in it and the system has solutions, but not one (any null direction can be added). "
            "SymPy proves it for symbolic sizes and, with the softmax written out, at "
            "$C = 2..4$, $D = 1..3$.",
            title="The gradient is orthogonal to the null space",
        ),
    )

    exercises += (
        Exercise(
            "Logistic regression has one logit $u$ and a label $y \\in \\{0, 1\\}$ drawn with "
            "$p(y = 1) = \\sigma(u)$. What is the Fisher information $F(u) = E[(\\partial "
            "\\log p(y \\mid u) / \\partial u)^2]$? Where have you met it before on this page?",
            sp.Eq(FISHER, sp.Function("sigma")(u1) * (1 - sp.Function("sigma")(u1))),
            _bernoulli_fisher,
            answer="The score is $y - \\sigma(u)$, so $F = \\sigma (1 - \\sigma)^2 + (1 - "
            "\\sigma) \\sigma^2 = \\sigma (1 - \\sigma)$: the second derivative of the binary "
            "loss, and the weight $R_b$ of each sample in IRLS. SymPy computes the expectation "
            "from the likelihood and compares.",
            title="The Fisher information of one logit",
        ),
        Exercise(
            "Damping: in one dimension, with gradient $g$, curvature $h \\ge 0$ and a damping "
            "$\\lambda > 0$, the damped Newton step minimises the model $g \\Delta + (h + "
            "\\lambda) \\Delta^2 / 2$. What is it, and what does it become as $\\lambda \\to 0$ "
            "and as $\\lambda \\to \\infty$?",
            sp.Eq(DAMPED, -g1 / (h1 + lam)),
            _damped_step,
            answer="$\\Delta = -g / (h + \\lambda)$: Newton's $-g/h$ at $\\lambda = 0$, and "
            "about $-g/\\lambda$, a gradient step of length $1/\\lambda$, for large "
            "$\\lambda$. The L2 penalty's $l_2 I$ is such a damping, fixed; "
            "Levenberg–Marquardt adapts $\\lambda$, raising it when the model predicted the "
            "loss's decrease badly. SymPy checks that the answer zeroes the model's slope and "
            "takes both limits.",
            title="Damping interpolates between Newton and gradient descent",
        ),
        Exercise(
            "Along an eigenvector of curvature $h > 0$, for which damping $\\lambda$ is the "
            "damped step $-g / (h + \\lambda)$ half of Newton's $-g / h$? What does that say "
            "about the directions a given $\\lambda$ leaves alone?",
            sp.Eq(lam, h1),
            _halving_damping,
            answer="$h / (h + \\lambda) = 1/2$ at $\\lambda = h$: $\\lambda$ is the curvature at "
            "which damping starts to bite. Directions curved much more than $\\lambda$ keep "
            "Newton's step, flatter ones are cut toward the gradient step $-g/\\lambda$ "
            "({step:damping}). That is why $\\lambda$ is compared with the Hessian's eigenvalues, "
            "and why Levenberg–Marquardt's adapted $\\lambda$ falls toward 0 as the iterates "
            "approach the minimum, where the model is good. SymPy forms the ratio of the two steps "
            "at the answer, for a symbolic $g$ and $h > 0$, and compares it with $1/2$.",
            title="The curvature damping starts to bite",
        ),
    )

    # -- the generated functions ---------------------------------------------------------
    x_param = Param("x", X, ("D",), doc="inputs: one sample (D,) or a batch (..., D)")
    W_param = Param("W", W, ("D", "C"), batched=False, doc="weights, inputs x classes")
    # B ℋ's two parts, entry [j, k, c, d]: Σ_b x_bj x_bk S_bc O_bc, and Σ_b x_bj x_bk S_bc S_bd
    diagonal_sum, products_sum = sp.IndexedBase("diagonal_sum"), sp.IndexedBase("products_sum")
    blocks = sp.IndexedBase("blocks")  # ℋ + l2·I, entry [j, k, c, d]
    regularized, rhs = sp.IndexedBase("regularized"), sp.IndexedBase("rhs")
    Y = sp.IndexedBase("y")
    softmax_of_batch = sp.Function("softmax")(sp.Function("summation")(X, W))
    error_share = sp.IndexedBase("error_share")
    z_max, exp_shifted = sp.IndexedBase("z_max"), sp.IndexedBase("exp_shifted")  # m_b, E_bc
    (hvp_sum,) = [s for s in hvp.atoms(Sum) if s.limits[0][0] == b]
    kernels = (
        Kernel(
            name="cross_entropy_from_logits_hessian",
            overflow=SHIFT_OVERFLOW,
            summary="∂²XE/∂z_i∂z_n = S_i(δ_in − S_n): the Hessian of the cross-entropy in the logits.",
            params=(Param("z", z, ("C",), doc="logits"),),
            body=(Assign(S, (j,), sp.Function("softmax")(z)),),
            # the softmax Jacobian's generated function: its cancellation-free form, proved there
            returns=Assign(Derivative(XE, z[i], z[j]), (i, j), sp.Function("softmax_jacobian")(S)),
            math=logit_hessian,
            matrix_form=matrix_form,
            returns_doc="shape (..., C, C), symmetric, positive semi-definite, singular "
            "(each row sums to 0); it does not depend on the labels",
            derivative=DerivativeOf("cross_entropy_from_logits_grad(z, y)", wrt="z"),
            conditioning="It is softmax_jacobian(softmax(z)): each entry is a product of softmax "
            "outputs and inherits their error, about |z_i − max z|/2 ulps for an entry far below "
            "the largest.",
        ),
        Kernel(
            name="weight_hessian",
            conditioning="Entries with j ≠ k are batch means of x_bj x_bk times the per-sample "
            "factor, and inputs of both signs make those terms cancel: only a norm-wise bound "
            "holds for them. Entries with j = k, and every entry for a batch of one sample, are "
            "sums of terms of one sign (x_bj² S_c Σ_{n≠c} S_n on the diagonal blocks, "
            "−x_bj² S_c S_d off them, no 1 − S_c computed): they add a few ulps to the error of "
            "the probabilities themselves (softmax's, about |z_i − max z|/2 ulps for a small one)",
            summary="The Hessian of the mean cross-entropy over the batch with respect to W.",
            params=(x_param, W_param),
            body=(
                Assign(P, (b, c), softmax_of_batch),
                Assign(share, (b, c), P[b, c] / B),
                Assign(O, (b, c), batch_others),
                Assign(logit_hessians, (b, c, d), per_sample_logit_hessian),
            ),
            # the page's steps "As one sum of Kronecker products" and "Both factors are
            # symmetric": the pairs j ≤ k by the pairs c ≤ d, one matrix product
            returns=Assign(
                Derivative(XE, W[jj, c], W[kk, d]),
                (jj, c, kk, d),
                SymmetricMatmulSum(X[b, jj] * X[b, kk] * logit_hessians[b, c, d], (b, 1, B)),
            ),
            math=batch_stable.xreplace({O[b, c]: batch_others}),
            returns_doc="shape (D, C, D, C), entry [j, c, k, d] = ∂²XE/∂W_jc∂W_kd; "
            "`.reshape(D*C, D*C)` is the Hessian of W flattened row-major (`W.reshape(-1)`)",
            notes="Cost: one matrix product, of the D(D+1)/2 pairs x_bj x_bk (j ≤ k) by the "
            "C(C+1)/2 pairs of each sample's logit Hessian over B (c ≤ d), a quarter of the "
            "multiply-adds of all (j, c) by all (k, d); then each row j of the result gathered "
            "from it (the entry [j, c, k, d] is also [k, c, j, d], [j, d, k, c], [k, d, j, c]). "
            "That is NumPy's route from D·C = 128; below, and in other libraries, one product of "
            "all (j, k) by all (c, d). Memory: in NumPy the product and the pairs are written "
            "into the result's own "
            "memory (the pairs of as many samples at a time as fit there), and nothing else is "
            "the size of the result. The diagonal blocks use S_c Σ_{n≠c} S_n, not "
            "S_c(1 − S_c).",
            flatten_batch=True,
            derivative=DerivativeOf("weight_grad(x, W, y)", wrt="W"),
        ),
        Kernel(
            name="weight_hvp",
            conditioning="The data cancel: U = X V and U_c Σ_{d≠c} S_d − Σ_{d≠c} S_d U_d are sums of "
            "terms of both signs (V and x take both), and so is the batch mean Xᵀ(...): only a "
            "norm-wise bound holds. The factor no longer loses 1 − S_c where S_c ≈ 1 (sums of "
            "the other classes instead)",
            summary="The Hessian of the mean cross-entropy times V, without forming the Hessian.",
            params=(
                x_param,
                W_param,
                Param("V", V, ("D", "C"), batched=False, doc="a direction, shaped like W"),
            ),
            body=(
                # U first: the exponentials' passes then leave them in cache for the sums
                Assign(U, (b, c), along),
                Assign(Z, (b, c), sp.Function("summation")(X, W)),
                Assign(z_max, (b,), Maximum(Z[b, r], (r, 1, C))),
                Assign(exp_shifted, (b, c), sp.exp(Z[b, c] - z_max[b])),
                # S_bc Σ_{d≠c} S_bd (U_bc − U_bd) / B from the exponentials (the step above)
                Assign(error_share, (b, c), exps_share.xreplace({E: exp_shifted})),
            ),
            returns=Assign(
                sp.IndexedBase("HV")[jj, c],
                (jj, c),
                hvp_sum.xreplace({hvp_sum.function: X[b, jj] * error_share[b, c]}),
            ),
            math=hvp_stable.xreplace(
                {
                    O[b, c]: batch_others,
                    Q[b, c]: Sum(
                        (1 - KroneckerDelta(c, d)) * P[b, d] * along.xreplace({c: d}), (d, 1, C)
                    ),
                    U[b, c]: along,
                }
            ),
            returns_doc="shape (D, C), like W: entry [j, c] = Σ_kd ∂²XE/∂W_jc∂W_kd V_kd",
            notes="Cost: the forward pass and two matrix products, X V and Xᵀ(...), as one "
            "gradient evaluation. The factor U_c Σ_{d≠c} S_d − Σ_{d≠c} S_d U_d is computed as "
            "the one sum Σ_{d≠c} S_d (U_c − U_d), the same terms regrouped, and from the "
            "softmax's exponentials E = e^{z − max z}, not S = E / Σ E: the softmax's division "
            "and the mean's 1/B are one division per sample (the page's step “Hessian times V "
            "from the exponentials”). In NumPy two sums per sample where no S_c is most of its row.",
            flatten_batch=True,
            derivative=DerivativeOf("(weight_grad(x, W, y) * V).sum()", wrt="W"),
        ),
        Kernel(
            name="newton_step",
            conditioning="A linear solve: its error grows with the condition number of ℋ + l2·I "
            "(about the largest eigenvalue over l2), so only a norm-wise bound scaled by it holds",
            summary="The Newton step ΔW for the mean cross-entropy plus (l2/2)‖W‖², solved densely.",
            params=(
                x_param,
                W_param,
                Param(
                    "y", Y, ("C",), doc="one-hot labels, with the batch shape of x", one_hot=True
                ),
                Param(
                    "l2",
                    l2,
                    (),
                    batched=False,
                    doc="the L2 penalty's weight, > 0",
                    domain="positive",
                    # below 0.1 the system's condition (about ‖ℋ‖/l2) leaves float32 too
                    # few digits for an entry-by-entry comparison with PyTorch
                    span=(0.1, 10.0),
                ),
            ),
            body=(
                Assign(P, (b, c), softmax_of_batch),  # once, for the Hessian and the gradient
                Assign(O, (b, c), batch_others),
                Assign(share, (b, c), P[b, c] / B),
                Assign(inputs_outer, (b, jj, kk), X[b, jj] * X[b, kk]),
                Assign(
                    diagonal_sum,
                    (jj, kk, c),
                    MatmulSum(inputs_outer[b, jj, kk] * share[b, c] * O[b, c], (b, 1, B)),
                ),
                Assign(
                    products_sum,
                    (jj, kk, c, d),
                    MatmulSum(inputs_outer[b, jj, kk] * share[b, c] * P[b, d], (b, 1, B)),
                ),
                # in the products' layout [j, k, c, d] (contiguous), then viewed as [j, c, k, d]
                Assign(
                    blocks,
                    (jj, kk, c, d),
                    KroneckerDelta(c, d) * (diagonal_sum[jj, kk, c] + l2 * KroneckerDelta(jj, kk))
                    - (1 - KroneckerDelta(c, d)) * products_sum[jj, kk, c, d],
                ),
                Assign(regularized, (jj, c, kk, d), blocks[jj, kk, c, d]),
                Assign(error_share, (b, c), (P[b, c] - Y[b, c]) / B),
                Assign(rhs, (jj, c), -Sum(X[b, jj] * error_share[b, c], (b, 1, B)) - l2 * W[jj, c]),
            ),
            returns=Assign(
                sp.Symbol(r"\operatorname{vec}(\Delta W)"),
                (jj, c),
                DenseSolve(regularized, rhs, (jj, c), penalty=l2),
            ),
            math=-(sp.MatrixSymbol("\\mathcal{H}", D * C, D * C) + l2 * sp.Identity(D * C)).inv()
            * (sp.MatrixSymbol("g", D * C, 1) + l2 * sp.MatrixSymbol("W", D * C, 1)),
            returns_doc="ΔW, shape (D, C), like W: W + ΔW is the next Newton iterate",
            notes=f"Layout: (ℋ + l2·I) vec(ΔW) = −vec(g + l2·W) with vec row-major "
            f"(`W.reshape(-1)`, index j·C + c). One forward pass gives both ℋ, as "
            f"(1/B) Σ_b x_b x_bᵀ ⊗ (its stable logit Hessian) in two matrix products (the "
            f"page's step “As two matrix products, without cancellation”), and g. "
            f"Dense: it forms the (D·C) x (D·C) matrix and solves it, so D·C is limited to "
            f"{MAX_UNKNOWNS}; above that use `weight_hvp` with conjugate gradients. l2 must be "
            "> 0: the Hessian alone is singular, so without the penalty the step is not unique "
            "(and on separable data the loss has no minimum).",
            flatten_batch=True,
            # the outer lambda makes x, y, l2 visible to the inner ones (eval's locals are not)
            reference="(lambda x, W, y, l2: -torch.linalg.solve(torch.func.hessian(lambda w: torch.nn.functional.cross_entropy("
            "x.reshape(-1, x.shape[-1]) @ w, y.reshape(-1, y.shape[-1])) + l2 / 2 * (w ** 2).sum())(W)"
            ".reshape(W.numel(), W.numel()), torch.func.grad(lambda w: torch.nn.functional.cross_entropy("
            "x.reshape(-1, x.shape[-1]) @ w, y.reshape(-1, y.shape[-1])) + l2 / 2 * (w ** 2).sum())(W)"
            ".reshape(-1)).reshape(W.shape))(x, W, y, l2)",
            requires=(
                Requirement(
                    sp.StrictGreaterThan(sp.Symbol("l2"), 0),  # l2 itself is declared positive
                    "l2: expected a penalty > 0 (the Hessian alone is singular: the "
                    "step would not be unique), got {l2}",
                ),
                Requirement(
                    sp.StrictLessThan(sp.Symbol("l2"), sp.oo),
                    "l2: expected a finite penalty (with l2 = inf the step is 0 · inf), got {l2}",
                ),
                Requirement(
                    sp.Le(D * C, MAX_UNKNOWNS),
                    f"newton_step solves a (D*C) x (D*C) system densely: expected "
                    f"D*C <= {MAX_UNKNOWNS}, got D*C = {{D * C}} (D = {{D}}, C = {{C}}); "
                    f"use weight_hvp with conjugate gradients",
                ),
            ),
        ),
    )
    # -- worked numbers, each against NumPy written by hand ------------------------------------
    by_hand_softmax = "np.exp(posts.X @ posts.W) / np.exp(posts.X @ posts.W).sum()"
    direction = "np.arange(15.0).reshape(3, 5) / 10"
    examples = (
        Example(
            "The Hessian in the logits, for the posts' layer",
            "cross_entropy_from_logits_hessian(summation(posts.X, posts.W))",
            reference=f"(lambda s: np.diag(s) - np.outer(s, s))({by_hand_softmax})",
            text="Part 2's $x$ and $W$ (3 inputs, 5 classes): $\\mathrm{diag}(S) - S S^T$, "
            "symmetric, each row summing to 0. It does not depend on the label.",
        ),
        Example(
            "Hessian times V, for the posts' layer",
            f"weight_hvp(posts.X, posts.W, {direction})",
            reference=f"(lambda s, U: np.outer(posts.X, s * (U - s @ U)))({by_hand_softmax}, "
            f"posts.X @ ({direction}))",
            text="A direction $V$ shaped like $W$ ($V_{jc} = (5j + c)/10$ counting from 0): "
            "$x_j S_c (U_c - \\sum_d S_d U_d)$ with $U = V^T x$, against the same formula in "
            "NumPy, without the sums of others.",
        ),
        Example(
            "Along a null direction",
            "weight_hvp(posts.X, posts.W, np.outer([1.0, -2.0, 0.5], np.ones(5)))",
            text="$V = a 1^T$ with $a = (1, -2, 0.5)$, a null direction "
            "({step:null-direction-in-w}): the Hessian times it is 0, here to every digit.",
        ),
        Example(
            "One Newton step for the posts' sample",
            "newton_step(posts.X, posts.W, posts.Y, 0.1)",
            reference="(lambda s: np.linalg.solve(np.kron(np.outer(posts.X, posts.X), np.diag(s) "
            "- np.outer(s, s)) + 0.1 * np.eye(15), -(np.outer(posts.X, s - posts.Y) + 0.1 * "
            f"posts.W).ravel()).reshape(3, 5))({by_hand_softmax})",
            text="Part 3's label (the third class) and $l_2 = 0.1$: the $15 \\times 15$ system "
            "$(x x^T \\otimes (\\mathrm{diag}(S) - S S^T) + l_2 I)\\,\\mathrm{vec}(\\Delta W) = "
            "-\\mathrm{vec}(x (S - y)^T + l_2 W)$, built and solved by hand with NumPy.",
        ),
    )

    x_column = sp.MatrixSymbol("x", D, 1)
    matrix_result = MatrixResult(
        group="second_order",
        lhs=sp.MatrixSymbol("\\mathcal{H}_W", D * C, D * C),
        rhs=sp.kronecker_product(x_column * x_column.T, matrix_form),
        index_form=weight_hessian,
        entry=((jj, c), (kk, d)),
        text="The Hessian of one sample's loss with respect to the weights, flattened "
        "row-major ($W$`.reshape(-1)`): the outer product of the input with itself, Kronecker "
        "the softmax Jacobian. It is never formed: a Hessian-vector product costs one gradient.",
    )
    sections = (
        Section(
            "Second order as the references teach it",
            "{Steps:score to irls} connect this page to the way Bishop (§4.3.3–4.3.4) and the "
            "natural-gradient literature present it. For this model three matrices are one: the "
            "Hessian, the Fisher information (the covariance of the score, "
            "{steps:fisher and fisher-in-weights}) and the Gauss–Newton matrix "
            "({step:gauss-newton}). Newton's method on it is iteratively reweighted least squares "
            "({steps:logistic-hessian and irls}).\n\n"
            "**Why one never inverts.** The Hessian in the weights has $(DC)^2$ entries and a "
            "dense solve costs $O((DC)^3)$: for MNIST's 784 inputs and 10 classes that is "
            f"{(784 * 10) ** 2 / 1e6:.0f} million entries and about "
            f"${_times_ten((784 * 10) ** 3 / 3)}$ multiply-adds per step (a Cholesky solve's "
            "$n^3/3$). Newton–CG needs only products $\\mathcal{H} V$, each the cost of one "
            "gradient (`weight_hvp`, {steps:hvp and batch-hvp}), and stops the conjugate gradients "
            "early, when the residual is small next to the gradient (a *truncated* Newton method): "
            "far from the minimum a rough direction is enough, near it the method becomes "
            "Newton's. The Newton–CG figure compares the three methods on Iris by iterations and "
            "by work.",
            place="after_steps",
        ),
        Section(
            "Damping",
            "Where the Hessian is singular or nearly so (the null directions of "
            "{step:null-direction-in-w}, or separable data, where it vanishes as the weights "
            "grow), and wherever the weights are far from the minimum, the quadratic model "
            "Newton's method minimises is a poor guide and its step can be arbitrarily long. "
            "Adding $\\lambda I$ before solving, $(\\mathcal{H} + \\lambda I)\\,\\Delta = -g$, "
            "*damps* it: {steps:damping to predicted-decrease} take it one eigenvector at a time. "
            "Along a direction of curvature $h$ the step is Newton's times $h / (h + \\lambda)$, "
            "never longer than $\\|g\\| / \\lambda$, and for large $\\lambda$ it is a gradient "
            "step of length $1/\\lambda$. The L2 penalty damps with a fixed $\\lambda = l_2$ "
            "({step:penalty-hessian}); Levenberg–Marquardt adapts $\\lambda$ at every iteration by "
            "comparing the loss's decrease with the one the model predicted "
            "({step:predicted-decrease}), and trust-region methods bound the step's length "
            "directly; a line search on the step length is the other common safeguard.\n\n"
            "The last figure starts the page's problem (Iris, $l_2 = 0.01$) from $-W^*$, the "
            "minimum's weights negated: the logits are the minimum's with their signs flipped, the "
            "samples confidently misclassified (the share still right, computed at build time, is "
            "in the figure's title) and the Hessian nearly flat. Newton's steps, bounded only by "
            "$\\|g\\| / l_2$, throw the weights from one saturated region to another, while the "
            "damped runs descend; the legend gives, computed while this page was built, where each "
            "stood after its iterations. On the right, the first damped step's length against "
            "$\\lambda$ "
            "stays under {step:damped-bound}'s bound, and meets it where $\\lambda$ dwarfs every "
            "curvature.",
            place="after_steps",
        ),
    )
    return Derivation(
        sections=sections,
        matrix_result=matrix_result,
        name="second_order",
        title="Second order",
        summary="The Hessian of the cross-entropy, in the logits and in the weights: proved "
        "positive semi-definite and singular; Hessian-vector products; Newton's method.",
        definitions=(
            Definition(
                XE,
                loss,
                "with $S = \\operatorname{softmax}(z)$, $z = W^T x$, and "
                "$\\sum_t y_t = 1$ (one-hot labels)",
            ),
            Definition(
                sp.Symbol("\\mathcal{H}"),
                Derivative(XE, z[i], z[j]),
                "the Hessian in the logits, "
                "$C \\times C$; in the weights, entry $[j, c, k, d]$ is "
                "$\\partial^2 XE / \\partial W_{jc} \\partial W_{kd}$: on this page $j$ and $k$ "
                "count inputs (and $j'$, the logits' own sum), $c$, $d$, $i$, $n$, $r$ and $t$ "
                "classes, $b$ samples",
            ),
        ),
        where=((S[i], softmax_i),),  # what S means in every step that does not say
        steps=steps,
        identities=identities,
        exercises=exercises,
        kernels=kernels,
        examples=examples,
        figures=(
            Figure(
                "hessian-kronecker.svg",
                "The Hessian in the weights for the posts' x and W: with W flattened "
                "row-major, a D x D grid of C x C blocks, block (j, k) being x_j x_k "
                "(diag(S) − S Sᵀ). Every block's rows sum to 0.",
                _kronecker_structure,
            ),
            Figure(
                "newton-against-gradient-descent.svg",
                "Softmax regression on Iris (150 samples, 4 standardized features and a "
                "constant, 3 classes) with l2 = 0.01, from W = 0: Newton's method "
                "(`newton_step`) against gradient descent with step 1/L. The legend gives the "
                "iterations each needs to reach a gradient norm below 1e-8: Newton converges "
                "quadratically once close, gradient descent linearly, at a rate set by the "
                "condition number of ℋ + l2 I.",
                _newton_figure,
            ),
            Figure(
                "newton-cg.svg",
                "The same problem (Iris, l2 = 0.01, from W = 0) with a third method: "
                "Newton–CG, each step solved by conjugate gradients with `weight_hvp` "
                "(the Hessian never formed), stopped early by a forcing term. Left: the "
                "gradient norm per outer iteration (gradient descent's first iterations "
                "only); right: against the work, a gradient or a Hessian-vector product "
                "counting one, Newton's dense Hessian counting D·C (one product per column).",
                _newton_cg_figure,
            ),
            Figure(
                "damped-newton.svg",
                "Damping on the same problem (Iris, l2 = 0.01), started from −W*, the minimum's "
                "weights negated. Left: the penalized loss per iteration for Newton's method "
                "(`newton_step`), a fixed damping λ = 1 and Levenberg–Marquardt's adapted λ, "
                "each step solving (ℋ + l2 I + λI) ΔW = −(g + l2 W) with ℋ from "
                "`weight_hessian`. Right: the first damped step's length against λ, under the bound "
                "‖g‖/(l2 + λ).",
                _damping_figure,
            ),
        ),
        results={
            "logit_hessian": logit_hessian,
            "weight_hessian": weight_hessian,
            "batch_hessian": batch_hessian,
            "hvp": hvp,
        },
        notation=(("d", "C"), ("k", "D")),  # ∂²XE/∂W_jc∂W_kd: d a class, k an input
    )
