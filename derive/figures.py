"""Figures drawn at build time from the generated functions (never committed).

Each derivation declares its own figures (``Derivation.figures``); this
module draws them, and the benchmark page's figure, as deterministic SVG
(fixed hash salt, no date) for ``docs/figures/``, so an unchanged figure is
not rewritten and ``mkdocs serve`` does not rebuild in a loop.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from derive.render import ROOT
from derive.steps import Figure

FIGURE_DIR = ROOT / "docs" / "figures"


def margins(fig, left: float, right: float, bottom: float, top: float, **spacing) -> None:
    """Place the panels by their margins, in inches from each edge of the figure
    (``spacing``: matplotlib's wspace and hspace, fractions of a panel).

    In place of a layout engine (tight or constrained), which lays out every
    label an extra time to find them: a third of the figures' time.
    """
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        **spacing,
    )


def text_width(texts: Iterable[str], size: float, family: str = "sans-serif") -> float:
    """The widest of ``texts`` (plain text, one line each) in inches, as the SVG is written:
    the margin for labels read from a results file, measured without drawing the figure."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    font = FontProperties(size=size, family=family)
    widths = [text_to_path.get_text_width_height_descent(t, font, False)[0] for t in texts]
    return max(widths, default=0.0) / 72  # points to inches


TICK_SPACE = 7 / 72  # in inches: a tick (3.5 points) and the gap to its label (3.5 points)


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
    margins(fig, left=0.5, right=0.15, bottom=0.35, top=0.36)


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
# The report's sections of timed rows, each with the key of its targets and its name on the figure.
BENCHMARK_SECTIONS = (
    ("training_step", "targets", "weight_grad"),
    ("training_step_labels", "label_targets", "weight_grad, labels"),
    ("second_order", "second_order_targets", ""),  # each row names itself ("what")
    ("two_layer_step", "two_layer_targets", "mlp_grads"),
)
SIZE_KEYS = ("B", "D", "H", "C")


def _ratio_spread(name: str, row: dict) -> tuple[float, float]:
    """The range of ratio ``name`` ("prefix: a / b") that the repeats allow: a's fastest
    over b's slowest to a's slowest over b's fastest (the row records each contender's)."""
    a, b = name.split(": ")[-1].split(" / ")
    (a_low, a_high), (b_low, b_high) = row["spread"][a], row["spread"][b]
    return a_low / b_high, a_high / b_low


def target_points(report: dict) -> list[dict]:
    """Every ratio of a benchmark report that has a target, in the page's order: where it
    was measured, its median, the range its repeats allow, its target and whether the run
    met it (as the report recorded)."""
    points = []
    for section, targets_key, what in BENCHMARK_SECTIONS:
        for row in report.get(section, []):
            sizes = "×".join(str(row[k]) for k in SIZE_KEYS if k in row)
            for name, met in row["targets_met"].items():
                points.append(
                    {
                        "label": f"{row.get('what', what)}: {name.split(': ')[-1]}, "
                        f"{sizes} {row['dtype']}",
                        "ratio": row["ratios"][name],
                        "spread": _ratio_spread(name, row),
                        "target": report[targets_key][name],
                        "met": met,
                    }
                )
    return points


def _missing(fig, what: str) -> None:
    fig.subplots().text(0.5, 0.5, f"no {what} committed", ha="center", va="center")


def _benchmark_targets(fig, generated, posts) -> None:
    """Each ratio over its target on one log axis: left of 1 met, right of 1 missed."""
    import json

    if not BENCHMARK_RESULTS.exists():
        return _missing(fig, "benchmark results")
    points = target_points(json.loads(BENCHMARK_RESULTS.read_text()))
    fig.set_size_inches(8, 1.2 + 0.2 * len(points))
    ax = fig.subplots()
    rows = np.arange(len(points))[::-1]
    for met, colour, marker, label in (
        (True, "tab:blue", "o", "met"),
        (False, "tab:red", "X", "missed"),
    ):
        chosen = [i for i, p in enumerate(points) if p["met"] is met]
        scaled = np.array([points[i]["ratio"] / points[i]["target"] for i in chosen])
        spread = np.array([np.array(points[i]["spread"]) / points[i]["target"] for i in chosen])
        ax.errorbar(
            scaled,
            rows[chosen],
            xerr=np.abs(spread.T - scaled) if chosen else None,
            fmt=marker,
            color=colour,
            markersize=5,
            elinewidth=1,
            capsize=2,
            label=f"{label} ({len(chosen)})",
        )
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(rows, [p["label"] for p in points], fontsize=7)
    ax.set_ylim(-0.7, len(points) - 0.3)
    notes = [f"{p['ratio']:.3f}, target ≤ {p['target']:g}" for p in points]
    for row, note in zip(rows, notes):
        ax.annotate(
            note,
            (1, row),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_xlabel(
        "measured ratio / its target (log scale; left of the line: target met)", fontsize=8
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    margins(
        fig,
        left=text_width([p["label"] for p in points], 7) + TICK_SPACE + 0.1,
        right=text_width(notes, 7) + 4 / 72 + 0.1,
        bottom=0.6,  # the decades and the axis's label
        top=0.15,
    )


BENCHMARK_FIGURE = Figure(
    "benchmark-ratios.svg",
    "Every benchmark ratio that has a target, divided by its target, with the range its "
    "repeats allow; left of the line the target is met.",
    _benchmark_targets,
)


ACCURACY_RESULTS = ROOT / "accuracy-results" / "latest.json"
ACCURACY_COLUMNS = (
    ("float64", "moderate"),
    ("float64", "extreme"),
    ("float32", "moderate"),
    ("float32", "extreme"),
)
ACCURACY_BOUND_ULPS = 4
"""The entry-wise bound the accuracy page sorts the functions without a conditioning note
by: the one ``tests/test_accuracy.py`` holds on its smaller sample (tests/test_results_pages.py
checks that the two agree)."""
# The heat map's colour bands, by their upper edges in ulps: to one ulp, within the bound,
# then by decades; the last two bands are every finite value beyond, and inf.
BAND_EDGES = (1, ACCURACY_BOUND_ULPS, 100, 1e6)
BAND_NAMES = ("≤ 1", f"≤ {ACCURACY_BOUND_ULPS}", "≤ 100", "≤ 10⁶", "> 10⁶", "inf")
BAND_COLOURS = ("#f7fbff", "#c6dbef", "#fdd49e", "#fc8d59", "#d7301f", "black")


def ulp_grid(report: dict) -> tuple[list[str], np.ndarray]:
    """Our functions' largest error in ulps (rows: functions in the report's order;
    columns: ``ACCURACY_COLUMNS``), each name marked † where the report says no
    entry-wise bound can hold."""
    ours = [r for r in report["rows"] if r["implementation"] == "derive"]
    functions = list(dict.fromkeys(r["function"] for r in ours))
    grid = np.full((len(functions), len(ACCURACY_COLUMNS)), np.nan)
    for r in ours:
        grid[functions.index(r["function"]), ACCURACY_COLUMNS.index((r["dtype"], r["inputs"]))] = (
            float(r["max_ulp"])
        )
    noted = {r["function"] for r in ours if r["conditioning"]}
    return [f + (" †" if f in noted else "") for f in functions], grid


def ulp_band(value: float) -> int:
    """The colour band of an error of ``value`` ulps: the first whose edge it does not exceed;
    every finite value beyond the last edge is one band, inf the next."""
    if value == np.inf:
        return len(BAND_EDGES) + 1
    return int(np.searchsorted(BAND_EDGES, value, side="left"))


def _ulp_text(value: float) -> str:
    """A cell's number, as the accuracy table writes it (0 below 0.005 ulp)."""
    if value == np.inf:
        return "inf"
    if value < 0.005:
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:.3g}"


def _accuracy_heatmap(fig, generated, posts) -> None:
    """Our largest error in ulps, per function, dtype and kind of input, in colour bands."""
    import json

    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if not ACCURACY_RESULTS.exists():
        return _missing(fig, "accuracy results")
    names, grid = ulp_grid(json.loads(ACCURACY_RESULTS.read_text()))
    fig.set_size_inches(7, 1.4 + 0.21 * len(names))
    ax = fig.subplots()
    bands = np.vectorize(ulp_band)(grid)
    ax.imshow(
        bands,
        cmap=ListedColormap(BAND_COLOURS),
        vmin=-0.5,
        vmax=len(BAND_COLOURS) - 0.5,
        aspect="auto",
    )
    for (row, column), value in np.ndenumerate(grid):
        ax.text(
            column,
            row,
            _ulp_text(value),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if value > 1e6 else "black",
        )
    ax.set_xticks(
        range(len(ACCURACY_COLUMNS)), [f"{d}\n{k}" for d, k in ACCURACY_COLUMNS], fontsize=8
    )
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(names)), names, fontsize=7, family="monospace")
    ax.legend(
        handles=[Patch(color=c, label=n) for c, n in zip(BAND_COLOURS, BAND_NAMES)],
        title="largest error, in ulps",
        title_fontsize=8,
        fontsize=8,
        ncols=len(BAND_NAMES),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
    )
    margins(
        fig,
        left=text_width(names, 7, "monospace") + TICK_SPACE + 0.1,
        right=0.15,
        bottom=0.7,  # the legend, below the map
        top=0.55,  # the columns' names, two lines each
    )


ACCURACY_FIGURE = Figure(
    "accuracy-ulps.svg",
    "The generated functions' largest error in ulps, by function, dtype and kind of input.",
    _accuracy_heatmap,
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
    margins(fig, left=0.6, right=0.18, bottom=0.56, top=0.34, wspace=0.21, hspace=0.35)
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


def _gradient_check_practice(fig, generated, posts) -> None:
    from derive.gradient_check import draw_practice

    draw_practice(fig, generated, posts)


GRADIENT_CHECK_FIGURE = Figure(
    "gradient-check-practice.svg",
    "CS231n's rules for a gradient check, each on the generated functions: a few random entries "
    "of every parameter; the data loss checked before the penalty; kinks; and a gradient large "
    "enough for the loss's rounding.",
    _gradient_check_practice,
)


SITE_FIGURES = (
    BENCHMARK_FIGURE,
    ACCURACY_FIGURE,
    TRAINING_FIGURE,
    GRADIENT_CHECK_FIGURE,
)  # drawn by every build that draws figures, beside the derivations'

_RESULTS_READ = {
    BENCHMARK_FIGURE.file: BENCHMARK_RESULTS,
    ACCURACY_FIGURE.file: ACCURACY_RESULTS,
    TRAINING_FIGURE.file: TRAINING_RESULTS,
}


def plots_results(figure: Figure) -> bool:
    """Whether ``figure`` plots measured results (read from their file), not the generated code."""
    return figure.file in _RESULTS_READ


def results_read(figure: Figure) -> bytes:
    """The measured results a site figure is drawn from (b"" for a derivation's figure, or
    for results not committed): what a build compares to redraw it only when they change."""
    path = _RESULTS_READ.get(figure.file)
    try:
        return path.read_bytes() if path is not None else b""
    except OSError:
        return b""


def pyplot():
    """matplotlib's pyplot, drawing off-screen (Agg), set up for deterministic SVG.

    A build calls it before it starts its worker processes, so that they
    inherit the imported matplotlib instead of each importing it (about 1 s).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "derive",
            "figure.dpi": 100,
            # Titles just above their panel, where matplotlib would place them: left to
            # find the place itself, it lays out the panel's tick labels once more, in case
            # they stand above it (none does), 0.16 s of the figures' 2.9 s.
            "axes.titley": 1.0,
        }
    )
    return plt


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def subscript(number: int) -> str:
    """``number`` in subscript digits, for labels such as S₁ and W₂₃ in plain text.

    Math text ($S_1$) says the same in italics, but matplotlib parses it as TeX:
    0.2 s of the figures' 3.3 s, before the labels were written this way.
    """
    return str(number).translate(_SUBSCRIPTS)


def _decade(value: float, _position=None) -> str:
    """A log axis's tick label: "10⁻⁸" at a power of ten, nothing between."""
    exponent = np.log10(value) if value > 0 else np.nan
    if not np.isfinite(exponent) or abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(int(round(exponent))).translate(_SUPERSCRIPTS)


def _plain_decades(fig) -> None:
    """Label log axes' decades in plain text (10⁻⁸), not math text ($10^{-8}$), and mark
    no minor ticks between them.

    The same labels, without matplotlib parsing TeX for every tick (a third of
    the Newton figure's time, 0.95 -> 0.61 s); the unlabelled marks between
    decades, eight a decade, were a tenth of all the figures' time.
    """
    from matplotlib.ticker import FuncFormatter, NullLocator

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(_decade))
                axis.set_minor_locator(NullLocator())


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
    with drawing(generated, figure) as fig:
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


@contextmanager
def drawing(generated, figure: Figure):
    """``figure`` drawn on a matplotlib figure, not yet saved (closed on leaving).

    No layout engine runs: each figure with panels sets its own margins (``margins``).
    """
    from derive import posts

    plt = pyplot()
    size = (7, 6) if figure == TRAINING_FIGURE else (7, 4)  # == : a worker gets a copy
    fig = plt.figure(figsize=size)
    try:
        with _one_blas_thread():
            figure.draw(fig, generated, posts)
        _plain_decades(fig)
        yield fig
    finally:
        plt.close(fig)


def _one_blas_thread():
    """NumPy's BLAS held to one thread while a figure computes.

    Its matrices are small: a second thread only spins waiting for work, and on a
    busy machine that spinning cost the dead-ReLU figure four times its CPU. Every
    number the figures compute came out the same, bit for bit, with one thread or two.
    """
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits  # scikit-learn's, which the figures read
    except ImportError:
        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def draw_all(
    generated, figures: Iterable[Figure], elsewhere: Callable[[list[Figure]], list] | None = None
) -> dict[Path, str]:
    """Draw ``figures`` (with the site's own among them, as a build asks): the SVG text of
    each, by path (nothing is written).

    ``elsewhere(figures)`` may start each figure in another process (a future
    each, taken in order); this process meanwhile draws, from the back of the
    list, every figure none of them has started, so the work is shared out
    however busy the other processes are.
    """
    every = list(figures)
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
