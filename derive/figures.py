"""Figures drawn at build time from the generated functions (never committed).

Each derivation declares its own figures (``Derivation.figures``); this
module draws them, and the benchmark page's figure, as deterministic SVG
(fixed hash salt, no date) for ``docs/figures/``, so an unchanged figure is
not rewritten and ``mkdocs serve`` does not rebuild in a loop.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from derive.render import ROOT
from derive.steps import Figure

FIGURE_DIR = ROOT / "docs" / "figures"


def annotated_heatmap(fig, matrix, columns, rows, title) -> None:
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


def curves(fig, x, named: dict, xlabel: str = "", title: str = "") -> None:
    """Several functions of one variable on one set of axes."""
    ax = fig.subplots()
    for label, y in named.items():
        ax.plot(x, y, label=label)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


BENCHMARK_RESULTS = ROOT / "bench-results" / "latest.json"
# Ratios without a target, shown beside the targets: how far the hand-written NumPy itself
# is from the floor (the softmax's elementwise passes), and what the from-logits path costs.
REFERENCE_RATIOS = {
    "numpy / floor": ("numpy", "floor"),
    "from_logits / numpy": ("from_logits", "numpy"),
}


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
        ax.bar(
            [i + n * width for i in range(len(rows))],
            [r["ratios"][name] for r in rows],
            width=width,
            label=name,
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        [i + width for i in range(len(rows))],
        [f"{r['B']}x{r['D']}x{r['C']}\n{r['dtype']}" for r in rows],
        fontsize=8,
    )
    ax.set_ylabel("time ratio (below 1: generated is faster)")
    ax.set_title("One training-step gradient")
    ax.legend(fontsize=8)


BENCHMARK_FIGURE = Figure(
    "benchmark-ratios.svg",
    "Generated weight_grad relative to NumPy by hand, PyTorch autograd and the matmul floor.",
    _benchmark_ratios,
)


TRAINING_RESULTS = ROOT / "training-results" / "latest.json"


def _training_curves(fig, generated, posts) -> None:
    """Per run: the loss of every step (generated and PyTorch) and the accuracies after each epoch."""
    import json

    if not TRAINING_RESULTS.exists():
        fig.subplots().text(0.5, 0.5, "no training results committed", ha="center", va="center")
        return
    runs = json.loads(TRAINING_RESULTS.read_text())["runs"]
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for (loss_ax, accuracy_ax), run in zip(axes, runs):
        steps = np.arange(1, len(run["step_losses"]) + 1)
        loss_ax.semilogy(
            steps, run["step_losses"], linewidth=2.5, alpha=0.5, label="generated functions"
        )
        loss_ax.semilogy(
            steps, run["torch_step_losses"], "--", linewidth=0.8, label="PyTorch autograd"
        )
        loss_ax.set_title(f"{run['name']}: mini-batch loss, every step", fontsize=9)
        loss_ax.set_xlabel("step", fontsize=8)
        loss_ax.legend(fontsize=7)
        loss_ax.grid(alpha=0.3)
        epochs = [h["epoch"] for h in run["history"]]
        accuracy_ax.plot(epochs, [h["train_accuracy"] for h in run["history"]], label="train")
        accuracy_ax.plot(epochs, [h["test_accuracy"] for h in run["history"]], label="test")
        accuracy_ax.plot(
            epochs, [h["torch_test_accuracy"] for h in run["history"]], ":", label="test, PyTorch"
        )
        accuracy_ax.axhline(run["goal"], color="gray", linewidth=0.8)
        accuracy_ax.set_title(
            f"{run['name']}: accuracy after each epoch (goal {run['goal']:.0%})", fontsize=9
        )
        accuracy_ax.set_xlabel("epoch", fontsize=8)
        accuracy_ax.legend(fontsize=7)
        accuracy_ax.grid(alpha=0.3)


TRAINING_FIGURE = Figure(
    "training-curves.svg",
    "Training with the generated functions and with PyTorch autograd, from training-results/latest.json.",
    _training_curves,
)


SITE_FIGURES = (BENCHMARK_FIGURE, TRAINING_FIGURE)  # drawn by every build, beside the derivations'


def pyplot():
    """matplotlib's pyplot, drawing off-screen (Agg), set up for deterministic SVG.

    A build calls it before it starts its worker processes, so that they
    inherit the imported matplotlib instead of each importing it (about 1 s).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "derive", "figure.dpi": 100})
    return plt


def _tight(fig) -> bool:
    """Fit panels and colour bars into the figure in one pass, if matplotlib can.

    Its tight layout cannot place a colour bar that several panels share;
    those figures are drawn again with the constrained layout, which can, at
    twice the time (a cold build draws every figure).
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.tight_layout()
    return not any("not compatible with tight_layout" in str(w.message) for w in caught)


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _decade(value: float, _position=None) -> str:
    """A log axis's tick label: "10⁻⁸" at a power of ten, nothing between."""
    exponent = np.log10(value) if value > 0 else np.nan
    if not np.isfinite(exponent) or abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(int(round(exponent))).translate(_SUPERSCRIPTS)


def _plain_decades(fig) -> None:
    """Label log axes' decades in plain text (10⁻⁸), not math text ($10^{-8}$).

    The same label, without matplotlib parsing TeX for every tick (a third of
    the Newton figure's time, 0.95 -> 0.61 s).
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(_decade))
                axis.set_minor_formatter(NullFormatter())


def draw(generated, figure: Figure) -> str:
    """One figure's SVG text, deterministic (fixed hash salt, no date).

    A failure is a BuildError naming the figure's file and the line of the module that
    declares it (raised here, in whichever process draws it, where the traceback is whole).
    """
    import inspect

    from derive.errors import stage

    module = figure.draw.__module__
    owner = module.rpartition(".")[2] if module.startswith("derive.derivations.") else "(site)"
    target = (FIGURE_DIR / figure.file).relative_to(ROOT)
    with stage(owner, f"drawing {target}", within=inspect.getsourcefile(figure.draw)):
        return _draw(generated, figure)


def _draw(generated, figure: Figure) -> str:
    from derive import posts

    plt = pyplot()
    size = (7, 6) if figure is TRAINING_FIGURE else (7, 4)
    fig = plt.figure(figsize=size)
    try:
        figure.draw(fig, generated, posts)
        _plain_decades(fig)
        if len(fig.axes) > 1 and not _tight(fig):  # a colour bar shared by panels
            plt.close(fig)
            fig = plt.figure(figsize=size, layout="constrained")
            figure.draw(fig, generated, posts)
            _plain_decades(fig)
        # one set of axes keeps matplotlib's default margins: a layout engine would double the time
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()


def draw_all(
    generated, figures: Iterable[Figure], elsewhere: Callable[[list[Figure]], list] | None = None
) -> dict[Path, str]:
    """Draw ``figures`` and the site's own: the SVG text of each, by path (nothing is written).

    ``elsewhere(figures)`` may start each figure in another process (a future
    each, taken in order); this process meanwhile draws, from the back of the
    list, every figure none of them has started, so the work is shared out
    however busy the other processes are.
    """
    every = [*figures, *SITE_FIGURES]
    if elsewhere is None:
        return {FIGURE_DIR / f.file: draw(generated, f) for f in every}
    started = elsewhere(every)
    drawn = {}
    for figure, future in reversed(list(zip(every, started))):
        if future.cancel():
            drawn[FIGURE_DIR / figure.file] = draw(generated, figure)
    for figure, future in zip(every, started):
        if not future.cancelled():
            drawn[FIGURE_DIR / figure.file] = future.result()
    return drawn
