"""The benchmark runs and writes its report (no timing is asserted here)."""

import importlib.util
import json

import pytest

from derive import bench


def test_smoke_run_writes_a_complete_report(tmp_path):
    output = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["mode"] == "smoke"
    assert {"platform", "cpus", "numpy", "torch"} <= set(report["machine"])
    assert report["posts"] and all(
        r["baseline_seconds"] > 0 and r["generated_seconds"] > 0 for r in report["posts"]
    )
    for row in report["training_step"]:
        # JAX's jit beside them when JAX is installed, with the step's and the floor's ratios
        jax = {"jax"} if importlib.util.find_spec("jax") else set()
        assert set(row["seconds"]) == {"generated", "from_logits", "numpy", "torch", "floor"} | jax
        assert all(t > 0 for t in row["seconds"].values())
        assert set(row["ratios"]) >= set(bench.TARGETS)
        assert {"generated / jax", "floor / jax"} <= set(row["ratios"]) or not jax
    whats = {row["what"] for row in report["second_order"]}
    assert whats == {"weight_hvp", "weight_hessian", "newton_step"}
    for row in report["second_order"]:
        assert {"generated", "torch"} <= set(row["seconds"])
        assert all(t > 0 for t in row["seconds"].values())
        assert set(row["targets_met"]) <= set(bench.SECOND_ORDER_TARGETS) and row["targets_met"]
    assert report["two_layer_step"] and report["digits_epoch"]["seconds"]["torch"] > 0
    for row in report["two_layer_step"]:
        assert set(row["seconds"]) == {"generated", "hand", "torch", "floor"}
        assert set(row["targets_met"]) == set(bench.MLP_TARGETS)


def test_only_measures_the_parts_named(tmp_path):
    output = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--only", "two_layer", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["only"] == ["two_layer"] and report["two_layer_step"]
    assert report["posts"] == report["training_step"] == report["training_step_labels"] == []
    assert report["second_order"] == []


def test_the_posts_loops_compute_what_the_generated_functions_compute():
    """The baselines are only fair if they compute the same numbers."""
    import numpy as np

    from derive.generated import (
        layer_jacobian,
        softmax,
        softmax_jacobian,
        summation,
        summation_jacobian,
        weight_grad,
    )

    rng = np.random.default_rng(5)
    x, W = rng.normal(size=4), rng.normal(size=(4, 6))
    y = np.eye(6)[3]
    S = softmax(summation(x, W))
    C, D = 6, 4
    np.testing.assert_allclose(bench.posts_sm_dir(S), softmax_jacobian(S))
    np.testing.assert_allclose(
        bench.posts_z_dir(x, W), summation_jacobian(x, W).transpose(2, 1, 0).reshape(C * D, C)
    )
    np.testing.assert_allclose(
        bench.posts_l_dir_shortcut(W, S, x).T,
        layer_jacobian(x, W).transpose(0, 2, 1).reshape(C, C * D),
    )
    np.testing.assert_allclose(
        bench.posts_xe_dir_shortcut(W, S, x, y), weight_grad(x, W, y).T.ravel()
    )


def test_the_labels_rows_compare_the_same_numbers():
    """The hand-written labels step is the reference; the generated one must compute what it does."""
    import numpy as np

    from derive.generated import weight_grad

    rng = np.random.default_rng(6)
    X, W, labels = rng.normal(size=(9, 4)), rng.normal(size=(4, 5)), rng.integers(5, size=9)
    np.testing.assert_allclose(weight_grad(X, W, labels), bench.numpy_labels_by_hand(X, W, labels))
    np.testing.assert_array_equal(weight_grad(X, W, labels), weight_grad(X, W, np.eye(5)[labels]))


def test_only_second_order_writes_its_rows_alone(tmp_path):
    output = tmp_path / "only.json"
    assert bench.main(["--only", "second_order", "--smoke", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["only"] == ["second_order"] and len(report["second_order"]) == 3
    assert report["posts"] == report["training_step"] == report["training_step_labels"] == []
    assert "two_layer_step" not in report


def test_the_two_layer_rows_compare_the_same_numbers():
    """The hand-written two-layer step is the reference; the generated one must compute what it does."""
    import numpy as np

    from derive.generated import mlp_grads

    X, W1, b1, W2, b2, labels = bench._mlp_problem(9, 4, 5, 3, np.float64)
    hand = bench.numpy_mlp_by_hand(X, W1, b1, W2, b2, labels)
    for ours, theirs in zip(mlp_grads(X, W1, b1, W2, b2, labels), hand, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_only_runs_the_named_parts_and_refuses_others(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--only", "labels", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["only"] == ["labels"]
    assert report["training_step_labels"] and not report["posts"] and not report["training_step"]
    try:
        bench.main(["--smoke", "--only", "training_step_labels"])
    except SystemExit as error:
        assert error.code == 2
    else:
        raise AssertionError("--only training_step_labels was accepted")
    assert "--only: expected parts of" in capsys.readouterr().err


def test_only_some_parts_prints_progress_and_no_empty_heading(tmp_path, capsys):
    """Issue 23.5 and 23.6: a line as each part starts; no heading without its rows."""
    output = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--only", "posts,training_step", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("measuring posts") < printed.index("measuring training_step")
    assert printed.index("measuring training_step") < printed.index("The posts' algorithms")
    for heading in ("integer class labels", "Second order", "two-layer", "digits epoch"):
        assert heading not in printed, printed
    assert "One training-step gradient" in printed


def test_the_overhead_rows_time_each_function_against_its_own_core(tmp_path):
    """Both contenders compute the same numbers (the core is the function's own), every
    case is measured in both dtypes, and the page shows the rows."""
    import numpy as np

    from derive import pages
    from derive.render import environment

    for dtype in (np.float64, np.float32):
        for name, function, arguments in bench.overhead_cases(dtype, "C=5"):
            public, core = function(*arguments), bench._core(function)(*arguments)
            np.testing.assert_array_equal(public, core, err_msg=name)
    rows = bench.overhead_rows(repeats=2, budget=0.0005, smoke=True)
    assert {(r["function"], r["dtype"]) for r in rows} == {
        (name, dtype)
        for dtype in ("float64", "float32")
        for name, _, _ in bench.overhead_cases(np.float64, "C=5")
    }
    assert all(r["seconds"]["public"] > 0 and r["seconds"]["core"] > 0 for r in rows)
    report = json.loads((bench.ROOT / "bench-results" / "latest.json").read_text())
    page = (
        environment()
        .get_template("benchmarks.md.j2")
        .render(**pages.benchmark_context({**report, "overhead": rows}))
    )
    assert "### What the checks cost" in page and "| C=5 | float32 | `weight_grad` |" in page


@pytest.mark.parametrize("sizes", [(3, 5), (6, 4)])
def test_each_posts_row_times_the_same_computation_from_the_same_inputs(sizes):
    """Both sides of a row start from the same values (the posts' side is handed S only where
    the generated side is too) and compute the same numbers, each in its own layout."""
    import ast

    import numpy as np

    inputs = bench.posts_inputs(*sizes)
    for what, theirs, ours in bench.POSTS_ROWS:
        used = [
            {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and n.id in inputs}
            for code in (theirs, ours)
        ]
        assert used[0] == used[1], (what, theirs, ours)
        values = [np.sort(np.ravel(bench.posts_call(c, inputs)())) for c in (theirs, ours)]
        np.testing.assert_allclose(*values, rtol=1e-12, atol=1e-15, err_msg=what)


def test_the_benchmark_page_shows_the_edit_loops_times_and_what_they_were_spent_on():
    """Issue 20.5: both edits' times under make serve, with their repeats and the load."""
    from derive import edit_loop, pages
    from derive.render import environment

    report = json.loads((bench.ROOT / "bench-results" / "latest.json").read_text())
    measured = {
        "times": {"prose": [1.5, 1.25, 2.0], "formula": [3.5, 2.75, 3.0]},
        "parts": {kind: [{"generator": 0.5, "mkdocs": 0.75}] * 3 for kind in ("prose", "formula")},
    }
    report["build_seconds"] = report.get("build_seconds") or {"cold": 9.0, "no-op": 0.2}
    report["serve_seconds"] = {**edit_loop.summary(measured), "load": "0.50 0.60 0.70"}
    page = environment().get_template("benchmarks.md.j2").render(**pages.benchmark_context(report))
    assert "1.50 s for a step's title" in page and "3.00 s for one formula" in page
    assert "title: 1.50, 1.25, 2.00 s; formula: 3.50, 2.75, 3.00 s" in page
    assert "load averages 0.50 0.60 0.70" in page
    assert "the generator took 0.50 s and 0.50 s" in page
    assert "the median of 3 edits each" in page
    assert "it polls every 0.5 s" in page  # MkDocs's own: the hook's was not in the log
    measured["times"]["prose"] += [1.0, 1.0]
    report["serve_seconds"] = {**edit_loop.summary({**measured, "poll": 0.1}), "load": "1 1 1"}
    page = environment().get_template("benchmarks.md.j2").render(**pages.benchmark_context(report))
    assert "the median of 5 and 3 edits" in page and "it polls every 0.1 s" in page
    assert "1.25 s for a step's title" in page


def test_no_contender_always_runs_right_after_the_same_other():
    """The order of each repeat: a permutation, the same on a rerun, and over the repeats of a
    run each contender follows several others (a rotation puts each behind one alone)."""
    names = ["generated", "no checks", "hand", "floor", "torch", "jax"]
    orders = [bench.running_order(names, r) for r in range(15)]
    assert all(sorted(o) == sorted(names) for o in orders)
    assert orders == [bench.running_order(names, r) for r in range(15)]
    sequence = [name for order in orders for name in order]
    before = {name: set() for name in names}
    for previous, name in zip(sequence, sequence[1:]):
        before[name].add(previous)
    assert all(len(others) >= 3 for others in before.values()), before
