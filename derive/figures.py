"""Figures drawn at build time from the generated functions (never committed).

Each figure is declared once in ``FIGURES``; pages list them by derivation,
and ``draw_all`` writes them to ``docs/figures/`` as deterministic SVG (fixed
hash salt, no date), so an unchanged figure is not rewritten and ``mkdocs
serve`` does not rebuild in a loop.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from derive.render import ROOT

FIGURE_DIR = ROOT / "docs" / "figures"


@dataclass(frozen=True)
class Figure:
    derivation: str
    file: str
    caption: str
    draw: Callable  # (axes, generated) -> None


def _annotated_heatmap(fig, matrix, columns, rows, title) -> None:
    """A diverging heat map with each entry written in its cell."""
    ax = fig.subplots()
    limit = np.abs(matrix).max()
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (row, column), value in np.ndenumerate(matrix):
        ax.text(column, row, f"{value:.3f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(matrix.shape[1]), columns)
    ax.set_yticks(range(matrix.shape[0]), rows)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)


def _jacobian_heatmap(fig, generated, posts) -> None:
    jacobian = generated.softmax_jacobian(generated.softmax(generated.summation(posts.X, posts.W)))
    C = jacobian.shape[0]
    _annotated_heatmap(fig, jacobian, [f"$z_{j + 1}$" for j in range(C)], [f"$S_{i + 1}$" for i in range(C)],
                       r"$\partial S_i / \partial z_j$ for the posts' $x$ and $W$")


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


def _gradient_heatmap(fig, generated, posts) -> None:
    gradient = generated.weight_grad(posts.X, posts.W, posts.Y)
    D, C = gradient.shape
    _annotated_heatmap(fig, gradient, [f"class {c + 1}" for c in range(C)], [f"$x_{j + 1}$" for j in range(D)],
                       r"$\partial XE/\partial W_{jc}$, laid out like $W$ (true class 3)")


def _layer_jacobian_heatmap(fig, generated, posts) -> None:
    jacobian = generated.layer_jacobian(posts.X, posts.W)  # [t, j, c]
    C, D, _ = jacobian.shape
    class_major = jacobian.transpose(0, 2, 1).reshape(C, C * D)  # the posts' DL
    ax = fig.subplots()
    limit = np.abs(class_major).max()
    image = ax.imshow(class_major, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(C * D), [f"$W_{{{j + 1}{c + 1}}}$" for c in range(C) for j in range(D)],
                  fontsize=7, rotation=90)
    ax.set_yticks(range(C), [f"$S_{t + 1}$" for t in range(C)])
    for c in range(1, C):
        ax.axvline(c * D - 0.5, color="black", linewidth=0.5)
    ax.set_title(r"$\partial S_t / \partial W_{jc}$ for the posts' example, weights class-major")
    fig.colorbar(image, ax=ax)


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
        ax.text(first, stable.max() / 10, f"  naive: inf from\n  $z_1 - z_2$ = {first:.0f}", color="red")
    ax.set_xlabel("logit gap $z_1 - z_2$ (true class 2)")
    ax.set_ylabel("loss")
    ax.set_title("The loss from the logits stays finite (float64)")
    ax.legend(fontsize=8)


BENCHMARK_RESULTS = ROOT / "bench-results" / "latest.json"
# Ratios without a target, shown beside the targets: how far the hand-written NumPy itself
# is from the floor (the softmax's elementwise passes), and what the from-logits path costs.
REFERENCE_RATIOS = {"numpy / floor": ("numpy", "floor"), "from_logits / numpy": ("from_logits", "numpy")}


def _benchmark_ratios(fig, generated, posts) -> None:
    import json

    ax = fig.subplots()
    if not BENCHMARK_RESULTS.exists():
        ax.text(0.5, 0.5, "no benchmark results committed", ha="center", va="center")
        return
    report = json.loads(BENCHMARK_RESULTS.read_text())
    names = ["generated / numpy", "generated / torch", "generated / floor"]
    rows = report["training_step"]
    width = 0.8 / len(names)
    for n, name in enumerate(names):
        ax.bar([i + n * width for i in range(len(rows))], [r["ratios"][name] for r in rows],
               width=width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + width for i in range(len(rows))],
                  [f"{r['B']}x{r['D']}x{r['C']}\n{r['dtype']}" for r in rows], fontsize=8)
    ax.set_ylabel("time ratio (below 1: generated is faster)")
    ax.set_title("One training-step gradient")
    ax.legend(fontsize=8)


FIGURES = (
    Figure("softmax_jacobian", "softmax-jacobian-heatmap.svg",
           "The softmax Jacobian at the posts' hypothesis h: positive on the diagonal, "
           "negative off it, every row summing to 0.", _jacobian_heatmap),
    Figure("softmax_jacobian", "softmax-along-a-line.svg",
           "Softmax and one column of its Jacobian along a line of logits.", _along_a_line),
    Figure("layer_jacobian", "layer-jacobian-heatmap.svg",
           "The layer's Jacobian for the posts' example (the posts' DL): each block of three "
           "columns is one class; only the block of S_t's own class has positive entries.",
           _layer_jacobian_heatmap),
    Figure("cross_entropy_from_logits", "naive-against-stable.svg",
           "The loss computed from the probabilities overflows to inf once the true class's "
           "probability underflows to 0; computed from the logits, it grows linearly and stays finite.",
           _naive_against_stable),
    Figure("benchmarks", "benchmark-ratios.svg",
           "Generated weight_grad relative to NumPy by hand, PyTorch autograd and the matmul floor.",
           _benchmark_ratios),
    Figure("cross_entropy", "weight-gradient-heatmap.svg",
           "The weight gradient for the posts' example, in W's layout: only the true "
           "class's column is negative.", _gradient_heatmap),
)


def figures_for(derivation: str) -> list[Figure]:
    return [f for f in FIGURES if f.derivation == derivation]


def draw_all(generated) -> dict[Path, str]:
    """Draw every figure: the SVG text of each, by path (nothing is written here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from derive import posts

    plt.rcParams.update({"svg.hashsalt": "derive", "figure.dpi": 100})
    drawn = {}
    for figure in FIGURES:
        fig = plt.figure(figsize=(7, 4), layout="constrained")
        figure.draw(fig, generated, posts)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(fig)
        drawn[FIGURE_DIR / figure.file] = buffer.getvalue()
    return drawn
