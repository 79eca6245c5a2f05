"""Figures: every label inside its figure and clear of the others (their margins are set by
hand), log axes labelled without math text, and the results pages' figures' data (every ratio
with a target; ulps in bands)."""

import io
import itertools
import json
import sys

import numpy as np
import pytest

from derive.figures import (
    ACCURACY_FIGURE,
    BAND_COLOURS,
    BAND_NAMES,
    BENCHMARK_FIGURE,
    BENCHMARK_RESULTS,
    SITE_FIGURES,
    _decade,
    drawing,
    margins,
    pyplot,
    subscript,
    target_points,
    ulp_band,
    ulp_grid,
)


def every_figure():
    from derive import derivations

    declared = [f for name in derivations.MODULES for f in derivations.get(name).figures]
    return declared + list(SITE_FIGURES)


def labels_drawn(fig) -> list:
    """Each non-empty text the SVG writer draws (tick labels, titles, legends, notes): its
    words, the panel it belongs to (None for the figure's own), and its box in inches."""
    from matplotlib.text import Text

    found = {}
    draw = Text.draw

    def recording(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            box = text.get_window_extent(renderer)  # in the writer's pixels: 72 to the inch
            found[id(text)] = (text, box.transformed(fig.dpi_scale_trans.inverted()))

    Text.draw = recording
    try:
        fig.savefig(io.StringIO(), format="svg")
    finally:
        Text.draw = draw
    owner = {id(t): panel for panel in fig.axes for t in panel.findobj(Text)}
    return [(text.get_text(), owner.get(key), box) for key, (text, box) in found.items()]


def _overlap(a, b, slack: float) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > slack and min(a.y1, b.y1) - max(a.y0, b.y0) > slack


def misplaced_labels(fig, slack: float = 0.01) -> list[str]:
    """Labels that leave the figure, reach into another panel, or overlap another label (by
    more than ``slack`` inches)."""
    found = labels_drawn(fig)
    width, height = fig.get_size_inches()
    panels = [(p, p.bbox.transformed(fig.dpi_scale_trans.inverted())) for p in fig.axes]
    problems = [
        f"outside the figure: {text!r}"
        for text, _, box in found
        if min(box.x0, box.y0) < -slack or box.x1 > width + slack or box.y1 > height + slack
    ]
    problems += [
        f"inside another panel: {text!r}"
        for text, own, box in found
        for panel, area in panels
        if panel is not own and _overlap(box, area, slack)
    ]
    problems += [
        f"overlapping: {one!r} and {other!r}"
        for (one, _, a), (other, _, b) in itertools.combinations(found, 2)
        if _overlap(a, b, slack)
    ]
    return problems


@pytest.mark.parametrize("figure", every_figure(), ids=lambda f: f.file)
def test_every_label_is_inside_its_figure_and_clear_of_the_others(figure):
    import derive.generated as generated

    with drawing(generated, figure) as fig:
        assert misplaced_labels(fig) == []


def test_a_margin_too_narrow_for_its_labels_is_found():
    plt = pyplot()
    fig = plt.figure(figsize=(7, 4))
    try:
        left, right = fig.subplots(1, 2)
        for ax in (left, right):
            ax.set_yticks([0, 1], ["a long label on the left", "another"])
        margins(fig, left=0.05, right=0.1, bottom=0.5, top=0.3, wspace=0.05)
        problems = misplaced_labels(fig)
    finally:
        plt.close(fig)
    assert "outside the figure: 'a long label on the left'" in problems
    assert "inside another panel: 'a long label on the left'" in problems


def test_log_axes_label_their_decades_in_plain_text():
    assert [_decade(v) for v in (1e-8, 1.0, 100.0, 1e15)] == ["10⁻⁸", "10⁰", "10²", "10¹⁵"]
    assert [_decade(v) for v in (2e-3, 0.0, -10.0, 5.0)] == ["", "", "", ""]


def test_indices_are_written_in_subscript_digits():
    assert [f"W{subscript(12)}", f"S{subscript(3)}", subscript(90)] == ["W₁₂", "S₃", "₉₀"]


# -- the results pages' figures -----------------------------------------------------------------


def test_a_ratios_range_is_its_fastest_over_the_others_slowest_to_the_reverse():
    row = {
        "B": 2,
        "D": 3,
        "C": 4,
        "dtype": "float64",
        "spread": {"generated": [1.0, 2.0], "numpy": [4.0, 5.0]},
        "ratios": {"generated / numpy": 0.3},
        "targets_met": {"generated / numpy": False},
    }
    report = {"training_step": [row], "targets": {"generated / numpy": 0.25}}
    [point] = target_points(report)
    assert point["spread"] == (1.0 / 5.0, 2.0 / 4.0)
    assert (point["ratio"], point["target"], point["met"]) == (0.3, 0.25, False)
    assert point["label"] == "weight_grad: generated / numpy, 2×3×4 float64"


def test_every_ratio_with_a_target_is_a_point_within_its_repeats_range():
    report = json.loads(BENCHMARK_RESULTS.read_text())
    points = target_points(report)
    with_targets = [
        (row["ratios"][name], met)
        for section in ("training_step", "training_step_labels", "second_order", "two_layer_step")
        for row in report[section]
        for name, met in row["targets_met"].items()
    ]
    assert [(p["ratio"], p["met"]) for p in points] == with_targets
    for p in points:
        low, high = p["spread"]
        assert low <= p["ratio"] <= high, p["label"]
        assert p["met"] == (p["ratio"] <= p["target"]), p["label"]


def test_ulps_fall_in_the_band_whose_edge_they_do_not_exceed():
    values = [0.0, 1.0, 1.01, 4.0, 4.5, 100.0, 1e6, 2e6, 1e300, np.inf]
    assert [ulp_band(v) for v in values] == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5]
    assert len(BAND_NAMES) == len(BAND_COLOURS) == 6


def test_the_heat_map_has_a_row_per_function_and_marks_the_conditioned_ones():
    def row(function, dtype, inputs, ulp, note=""):
        return {
            "function": function,
            "implementation": "derive",
            "dtype": dtype,
            "inputs": inputs,
            "max_ulp": ulp,
            "conditioning": note,
        }

    report = {
        "rows": [
            row("b", "float32", "extreme", "inf", "cancels"),
            row("a", "float64", "moderate", 0.5),
            {**row("a", "float64", "moderate", 99.0), "implementation": "PyTorch"},
            row("b", "float64", "moderate", 7.0, "cancels"),
        ]
    }
    names, grid = ulp_grid(report)
    assert names == ["b †", "a"]
    assert grid[0, 3] == np.inf and grid[0, 0] == 7.0 and grid[1, 0] == 0.5
    assert np.isnan(grid[1, 1:]).all()  # PyTorch's 99 is not ours


def test_the_results_figures_are_drawn_at_build_time():
    assert {BENCHMARK_FIGURE, ACCURACY_FIGURE} <= set(SITE_FIGURES)


# -- the teaching figures' computations (issue 21 items 3 and 6), against independent routes ----


def test_reliability_bins_by_confidence_and_weighs_each_gap_by_its_share():
    from derive.derivations.cross_entropy_options import reliability

    confidence = np.array([0.05, 0.15, 0.95, 0.95])
    correct = np.array([False, True, True, False])
    mean, accuracy, share, error = reliability(confidence, correct)
    np.testing.assert_allclose(mean, [0.05, 0.15, 0.95])
    np.testing.assert_allclose(accuracy, [0.0, 1.0, 0.5])
    np.testing.assert_allclose(share, [0.25, 0.25, 0.5])
    assert error == pytest.approx(0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.45)


def test_on_separable_data_the_weights_grow_without_a_penalty_and_settle_with_one():
    """The penalised run ends where Newton's method (a different algorithm) ends."""
    import derive.generated as generated
    from derive.derivations.cross_entropy_options import separable_toy, train_separable

    free, penalised = train_separable(generated, 0.0), train_separable(generated, 1e-2)
    assert np.all(np.diff(free["norm"]) > 0)  # every step lengthens W
    assert np.all(np.diff(free["loss"]) < 0) and free["loss"][-1] < 1e-3
    inputs, labels = separable_toy()
    weights = np.zeros((3, 3))
    for _ in range(30):
        weights = weights + generated.newton_step(inputs, weights, np.eye(3)[labels], 1e-2)
    np.testing.assert_allclose(penalised["weights"], weights, atol=1e-6)
    assert free["norm"][-1] > 2 * penalised["norm"][-1]


def test_newton_cg_reaches_newtons_minimum_with_fewer_products_than_unknowns_per_step():
    import derive.generated as generated
    from derive.derivations.second_order import iris, newton_cg

    run = newton_cg(generated)
    inputs, labels = iris()
    weights = np.zeros((inputs.shape[1], 3))
    for _ in range(20):
        weights = weights + generated.newton_step(inputs, weights, np.eye(3)[labels], 1e-2)
    np.testing.assert_allclose(run["weights"], weights, atol=1e-8)
    steps = len(run["gradient_norm"]) - 1
    assert run["products"][-1] < steps * weights.size  # truncated: fewer than D·C each


def test_damping_brings_newton_home_from_where_plain_newton_wanders():
    """From −W*: newton_step's iterates raise the loss and do not converge; both damped runs
    lower it at every iteration, and Levenberg–Marquardt ends at the minimum newton_step finds
    from W = 0 (the same problem's loss there, computed here by hand)."""
    import derive.generated as generated
    from derive.derivations import second_order as so

    newton, fixed, adapted = (so.damped_newton(generated, d) for d in so.DAMPINGS_SHOWN)
    assert np.any(np.diff(newton["loss"]) > 0) and newton["gradient_norm"][-1] > 1e-3
    for run in (fixed, adapted):
        assert np.all(np.diff(run["loss"]) <= 0)
    inputs, labels = so.iris()
    best = so.damping_minimum(generated)
    logits = inputs @ best
    shifted = logits - logits.max(axis=1, keepdims=True)
    by_hand = np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(150), labels])
    minimum = by_hand + 0.01 / 2 * np.sum(best**2)
    assert adapted["gradient_norm"][-1] < 1e-8
    assert adapted["loss"][-1] == pytest.approx(minimum, rel=1e-12)
    assert adapted["damping"][-1] < adapted["damping"][0]  # λ falls as the model improves


def test_a_damped_step_stays_under_its_bound_and_meets_it_for_large_damping():
    import derive.generated as generated
    from derive.derivations.second_order import step_lengths

    dampings = np.geomspace(1e-3, 1e4, 15)
    found = step_lengths(generated, dampings)
    assert np.all(found["length"] <= found["bound"] * (1 + 1e-12))
    assert np.all(np.diff(found["length"]) < 0)  # more damping, a shorter step
    assert found["length"][-1] / found["bound"][-1] > 0.999


def test_the_intermediates_kept_are_those_the_generated_code_never_deletes():
    """Read from the kernel's body, against the ``del`` statements of the generated function."""
    import ast
    import inspect

    from derive import derivations
    from derive.derivations.two_layer import live_intermediates
    from derive.generated import two_layer

    (kernel,) = [k for k in derivations.get("two_layer").kernels if k.name == "mlp_grads_relu"]
    found = live_intermediates(kernel)
    tree = ast.parse(inspect.getsource(two_layer._mlp_grads_relu))
    assigned = {
        t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
    }
    deleted = {
        t.id for node in ast.walk(tree) if isinstance(node, ast.Delete) for t in node.targets
    }
    ours = {f["name"].lower() for f in found}
    assert ours <= assigned
    kept = {f["name"].lower() for f in found if f["last"] >= len(kernel.body)}
    assert kept == ours - deleted  # read by a gradient: never deleted; every other one is


def test_each_gradient_is_computed_right_after_the_last_array_it_reads():
    """`Kernel.results_after` against the generated step: hᵀ(δ₂/B) and Σ δ₂/B right after
    δ₂/B, before δ₁'s passes (h is then free for ReLU's slope); the first layer's, which read
    δ₁, the body's last array, in the return statement."""
    import ast
    import inspect

    from derive import derivations
    from derive.generated import two_layer

    (kernel,) = [k for k in derivations.get("two_layer").kernels if k.name == "mlp_grads_relu"]
    share = [str(a.target.label) for a in kernel.body].index("error_share")
    assert kernel.results_after == (None, None, share, share)
    (function,) = ast.parse(inspect.getsource(two_layer._mlp_grads_relu)).body
    assigned = [
        t.id for node in function.body if isinstance(node, ast.Assign) for t in node.targets
    ]
    for result in ("dW2", "db2"):
        assert assigned.index("error_share") < assigned.index(result) < assigned.index("backward")
    returned = function.body[-1].value
    assert [getattr(e, "id", None) for e in returned.elts] == [None, None, "dW2", "db2"]
    assert "_relu_grad(xp, h, fresh=True)" in inspect.getsource(two_layer._mlp_grads_relu)


def test_a_large_learning_rate_kills_relu_units():
    """Dead units counted by hand: z₁ ≤ 0 for every image, with the network's own first layer."""
    import derive.generated as generated
    from derive.derivations.two_layer import DEAD_RATES, count_dead_units

    small, large = (count_dead_units(generated, rate) for rate in DEAD_RATES)
    assert np.all(np.diff(large["dead"]) >= 0)  # a dead unit stays dead
    assert large["dead"][-1] > small["dead"][-1] + large["hidden"] // 2
    assert small["accuracy"] > 0.9 > large["accuracy"]


def test_gradients_vanish_through_sigmoids_and_hold_through_tanh_and_relu():
    """Against a backward pass written here with NumPy's own functions: the same norms."""
    import derive.generated as generated
    from derive.derivations import two_layer as tl

    runs = {a: tl.gradients_through_depth(generated, a) for a in tl.DEPTH_ACTIVATIONS}
    sigmoid = runs["sigmoid"]
    assert np.all(sigmoid["mean_slope"] <= 0.25)  # step 16's bound, in every layer
    assert sigmoid["gradient_norm"][0] < 1e-6 * sigmoid["gradient_norm"][-1]
    for holding in ("tanh", "relu"):
        norms = runs[holding]["gradient_norm"]
        assert 0.1 < norms[0] / norms[-1] < 10
    rng = np.random.default_rng(0)  # the run's own draws, in its order, for tanh
    weights = [
        rng.standard_normal((tl.DEPTH_WIDTH, tl.DEPTH_WIDTH)) / np.sqrt(tl.DEPTH_WIDTH)
        for _ in range(tl.DEPTH_LAYERS)
    ]
    hidden, pre = [rng.standard_normal((64, tl.DEPTH_WIDTH))], []
    for layer in weights:
        pre.append(hidden[-1] @ layer)
        hidden.append(np.tanh(pre[-1]))
    error, by_hand = rng.standard_normal((64, tl.DEPTH_WIDTH)), []
    for layer in reversed(range(tl.DEPTH_LAYERS)):
        delta = error * (1 - np.tanh(pre[layer]) ** 2)
        by_hand.append(np.linalg.norm(hidden[layer].T @ delta))
        error = delta @ weights[layer].T
    np.testing.assert_allclose(runs["tanh"]["gradient_norm"], by_hand[::-1], rtol=1e-10)


# -- the gradient-check practice figure: each rule shows what the page says it shows ----------


def test_each_gradient_check_rule_shows_what_the_page_says():
    import derive.generated as generated
    from derive import gradient_check as gc

    sampled = gc.random_coordinates(generated)
    assert max(max(e) for e in sampled["errors"].values()) < gc.THRESHOLD  # mlp_grads is right
    assert sampled["entries"] == 64 * 16 + 16 + 16 * 10 + 10
    hidden = gc.penalty_hides_a_bug(generated)
    assert hidden["correct"].max() < gc.THRESHOLD
    # unpenalised, a column 2% too large is off by 0.02 / 1.02 relative; the penalty dilutes it
    assert hidden["buggy"][0] == pytest.approx(0.02 / 1.02, rel=0.05)
    assert hidden["buggy"][-1] < hidden["buggy"][0] / 100
    kinked = gc.kink(generated)
    assert (kinked["errors"][kinked["offsets"] < gc.STEP / 2] > 1e-2).all()
    assert (kinked["errors"][kinked["offsets"] > 2 * gc.STEP] < gc.THRESHOLD).all()
    near = gc.active_range(generated)
    assert np.all(np.diff(near["gradient_norm"]) < 0)
    assert near["errors"][0] < gc.THRESHOLD and near["errors"][-1] > 1e-2


def test_a_figure_drawn_from_a_copy_is_drawn_alike():
    """A worker process draws a pickled copy of a figure: nothing may depend on its identity
    (the training figure was drawn at the default size from a copy)."""
    import pickle

    from derive.figures import TRAINING_FIGURE, draw

    copy = pickle.loads(pickle.dumps(TRAINING_FIGURE))
    assert copy is not TRAINING_FIGURE
    assert draw(None, copy) == draw(None, TRAINING_FIGURE)


def _tiny_package(value: int) -> list:
    """A generated package of one module whose function returns ``value``."""
    from derive.build import GENERATED
    from derive.render import Output

    def output(name: str, body: str) -> Output:
        return Output(path=GENERATED / name, source="a test", inputs="0", body=body)

    return [
        output("tiny.py", f"def answer():\n    return {value}\n"),
        output("__init__.py", "from derive.generated.tiny import answer\n"),
    ]


def test_a_worker_imports_the_generated_code_once_for_all_its_figures():
    from derive import build

    before = {m: sys.modules.get(m) for m in ("derive.generated", "derive.generated.tiny")}
    with build._generated_once(_tiny_package(1)) as first:
        assert first.answer() == 1
    with build._generated_once(_tiny_package(1)) as again:
        assert again is first  # the same code: not imported again
    with build._generated_once(_tiny_package(2)) as other:
        assert other is not first and other.answer() == 2  # other code: imported
    assert {m: sys.modules.get(m) for m in before} == before  # sys.modules as it was
