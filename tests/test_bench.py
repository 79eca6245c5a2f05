"""The benchmark runs and writes its report (no timing is asserted here)."""

import json

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
        assert set(row["seconds"]) == {"generated", "from_logits", "numpy", "torch", "floor"}
        assert all(t > 0 for t in row["seconds"].values())
        assert set(row["ratios"]) >= set(bench.TARGETS)


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


def test_only_runs_the_named_row_groups_and_refuses_others(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--only", "training_step_labels", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["only"] == ["training_step_labels"]
    assert report["training_step_labels"] and not report["posts"] and not report["training_step"]
    try:
        bench.main(["--smoke", "--only", "labels"])
    except SystemExit as error:
        assert error.code == 2
    else:
        raise AssertionError("--only labels was accepted")
    assert "unknown group 'labels'" in capsys.readouterr().err
