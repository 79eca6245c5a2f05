"""CS231n's rules for checking a gradient, each shown with the generated functions.

The page "Checking a gradient" (derive/derivations/gradient_check.py) explains the rules;
the figure drawn here (at build time, ``derive.figures.SITE_FIGURES``) shows
each on real calls: a few random coordinates of every parameter, the data
loss before the penalty, kinks, and the range where floating point still
resolves the loss's change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

THRESHOLD = 1e-7  # CS231n: a relative error below this is good for a smooth function
SUSPICIOUS = 1e-4  # ... above this, suspicious
STEP = 1e-5  # the central difference's step, near ε^{1/3} in float64


def relative_error(analytic: float, numeric: float) -> float:
    """|a − n| / max(|a|, |n|), and 0 where both are 0."""
    scale = max(abs(analytic), abs(numeric))
    return 0.0 if scale == 0 else abs(analytic - numeric) / scale


def central_difference(loss: Callable, weights: np.ndarray, index: tuple, h: float = STEP):
    """(L(W + h E) − L(W − h E)) / 2h for the entry ``index`` of ``weights``."""
    step = np.zeros_like(weights)
    step[index] = h
    return (loss(weights + step) - loss(weights - step)) / (2 * h)


def _network(rng, n_in: int = 64, hidden: int = 16, classes: int = 10, batch: int = 32):
    """A random two-layer network and a batch of random inputs and labels."""
    x = rng.standard_normal((batch, n_in))
    labels = rng.integers(classes, size=batch)
    parameters = [
        rng.standard_normal((n_in, hidden)) / np.sqrt(n_in),
        0.1 * rng.standard_normal(hidden),
        rng.standard_normal((hidden, classes)) / np.sqrt(hidden),
        0.1 * rng.standard_normal(classes),
    ]
    return x, labels, parameters


def random_coordinates(generated, per_parameter: int = 5) -> dict:
    """Rule 1: check a few random entries of every parameter of the tanh network (smooth),
    against ``mlp_grads``. Returns each parameter's relative errors, and the counts."""
    rng = np.random.default_rng(0)
    x, labels, parameters = _network(rng)
    grads = generated.mlp_grads(x, *parameters, labels, activation="tanh")
    errors = {}
    for n, name in enumerate(("W1", "b1", "W2", "b2")):

        def loss(value, n=n):
            changed = [*parameters[:n], value, *parameters[n + 1 :]]
            logits = generated.mlp_logits(x, *changed, activation="tanh")
            return generated.cross_entropy_from_logits(logits, labels).mean()

        chosen = rng.choice(parameters[n].size, size=per_parameter, replace=False)
        errors[name] = [
            relative_error(
                grads[n][np.unravel_index(i, parameters[n].shape)],
                central_difference(loss, parameters[n], np.unravel_index(i, parameters[n].shape)),
            )
            for i in chosen
        ]
    return {"errors": errors, "entries": sum(p.size for p in parameters)}


PENALTIES = np.geomspace(1e-4, 1e3, 15)  # rule 2's penalties l2
OFFSETS = np.geomspace(1e-9, 1e-2, 15)  # rule 3's distances of the kink
SCALES = np.geomspace(1, 1e-10, 11)  # rule 4's distances t to the minimum


def penalty_hides_a_bug(generated, penalties=PENALTIES) -> dict:
    """Rule 2: a data gradient with a planted bug (one class's column 2% too large), and the
    correct one, each checked with the penalty (l2/2)‖W‖² added: the worst relative error of
    each, per penalty. The bug's error shrinks as the penalty's gradient outgrows it."""
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((16, 4)), rng.integers(3, size=16)
    W = rng.standard_normal((4, 3))
    data = generated.weight_grad(x, W, labels)
    buggy = data.copy()
    buggy[:, 0] *= 1.02
    worst = {"correct": [], "buggy": []}
    for l2 in penalties:

        def loss(weights, l2=l2):
            logits = generated.summation(x, weights)
            return generated.cross_entropy_from_logits(logits, labels).mean() + (
                l2 / 2 * np.sum(weights**2)
            )

        numeric = np.array([central_difference(loss, W, i) for i in np.ndindex(W.shape)]).reshape(
            W.shape
        )
        for name, gradient in (("correct", data), ("buggy", buggy)):
            total = gradient + l2 * W
            worst[name].append(
                max(relative_error(a, n) for a, n in zip(total.ravel(), numeric.ravel()))
            )
    return {"penalties": penalties, **{k: np.array(v) for k, v in worst.items()}}


def kink(generated, offsets=OFFSETS) -> dict:
    """Rule 3: one ReLU unit's pre-activation placed ``offset`` above 0 for one sample; the
    relative error of ∂L/∂b₁ for that unit, per offset. Within the step of the kink the
    difference quotient straddles it and is wrong, though the gradient is right."""
    rng = np.random.default_rng(2)
    x, labels, (W1, b1, W2, b2) = _network(rng)
    errors = []
    for offset in offsets:
        bias = b1.copy()
        bias[0] = offset - x[0] @ W1[:, 0]  # z₁ of sample 0, unit 0, is the offset

        def loss(value):
            logits = generated.mlp_logits(x, W1, value, W2, b2, activation="relu")
            return generated.cross_entropy_from_logits(logits, labels).mean()

        analytic = generated.mlp_grads(x, W1, bias, W2, b2, labels, activation="relu")[1][0]
        errors.append(relative_error(analytic, central_difference(loss, bias, (0,))))
    return {"offsets": offsets, "errors": np.array(errors)}


def active_range(generated, scales=SCALES, l2: float = 1e-2) -> dict:
    """Rule 4: on Iris with (l2/2)‖W‖², points W* + t (W₀ − W*) ever closer to the minimum W*
    (found by ``newton_step``): the gradient shrinks with t while the loss does not, and the
    difference quotient's rounding error, about ε L / h, swamps it. Returns ‖g‖ and the worst
    relative error at each point."""
    from derive.derivations.second_order import iris

    x, labels = iris()
    one_hot = np.eye(3)[labels]
    optimum = np.zeros((x.shape[1], 3))
    for _ in range(12):
        optimum = optimum + generated.newton_step(x, optimum, one_hot, l2)
    start = np.random.default_rng(3).standard_normal(optimum.shape)

    def loss(weights):
        logits = generated.summation(x, weights)
        return generated.cross_entropy_from_logits(logits, labels).mean() + l2 / 2 * np.sum(
            weights**2
        )

    norms, worst = [], []
    for t in scales:
        W = optimum + t * (start - optimum)
        gradient = generated.weight_grad(x, W, one_hot) + l2 * W
        numeric = [central_difference(loss, W, i) for i in np.ndindex(W.shape)]
        norms.append(np.linalg.norm(gradient))
        worst.append(max(relative_error(a, n) for a, n in zip(gradient.ravel(), numeric)))
    return {"gradient_norm": np.array(norms), "errors": np.array(worst), "loss": loss(optimum)}


def draw_practice(fig, generated, posts) -> None:
    """The four rules, one panel each."""
    fig.set_size_inches(8, 6.5)
    from derive.figures import margins

    (first, second), (third, fourth) = fig.subplots(2, 2)
    margins(fig, left=0.7, right=0.15, bottom=0.55, top=0.33, wspace=0.22, hspace=0.3)
    sampled = random_coordinates(generated)
    for n, (name, errors) in enumerate(sampled["errors"].items()):
        first.semilogy([n] * len(errors), np.maximum(errors, 1e-17), "o", label=name)
    checked = sum(len(e) for e in sampled["errors"].values())
    first.set_xticks(range(4), list(sampled["errors"]))
    first.set_title(
        f"1. {checked} random entries of {sampled['entries']:,}: "
        f"{2 * checked} losses, not {2 * sampled['entries']:,}",
        fontsize=8,
    )
    hidden = penalty_hides_a_bug(generated)
    for name in ("correct", "buggy"):
        second.loglog(hidden["penalties"], hidden[name], "o-", label=f"{name} data gradient")
    second.set_xlabel("penalty l2", fontsize=8)
    second.set_title("2. a 2% bug, checked with the penalty added", fontsize=8)
    kinked = kink(generated)
    third.loglog(kinked["offsets"], np.maximum(kinked["errors"], 1e-17), "o-")
    third.axvline(STEP, color="black", linewidth=0.8, label=f"the step h = {STEP:g}")
    third.set_xlabel("distance of a ReLU's kink from z₁", fontsize=8)
    third.set_title("3. a kink within the step: a correct gradient fails", fontsize=8)
    near = active_range(generated)
    fourth.loglog(near["gradient_norm"], near["errors"], "o-")
    fourth.invert_xaxis()
    fourth.set_xlabel(f"‖g‖ toward the minimum (the loss stays {near['loss']:.2f})", fontsize=8)
    fourth.set_title("4. a gradient below the loss's rounding", fontsize=8)
    from matplotlib.ticker import LogLocator

    for ax in (first, second, third, fourth):
        for axis in (ax.xaxis, ax.yaxis):  # every other decade (no minor ticks: figures.draw)
            if axis.get_scale() == "log":
                axis.set_major_locator(LogLocator(base=100))
        ax.axhline(THRESHOLD, color="tab:green", linewidth=0.8, label="1e-7: good")
        ax.axhline(SUSPICIOUS, color="tab:red", linewidth=0.8, label="1e-4: suspicious")
        ax.set_ylabel("relative error", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
