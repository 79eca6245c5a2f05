"""The training run of ``python -m derive.train``, short: the generated gradients train
exactly as PyTorch autograd does, from the same weights on the same batches."""

from __future__ import annotations

import numpy as np
import pytest

from derive import train

from registry import require

torch = require("torch")
require("sklearn")


@pytest.mark.parametrize(("name", "epochs"), [("iris", 3), ("digits", 2)])
def test_per_step_losses_agree_with_pytorch(name, epochs):
    run = train.train(train.TASKS[name], seed=1, epochs=epochs, progress=lambda line: None)
    ours, theirs = np.array(run["step_losses"]), np.array(run["torch_step_losses"])
    assert len(ours) == len(theirs) > epochs
    assert run["max_relative_loss_difference"] < 1e-10, run["max_relative_loss_difference"]
    assert run["history"][-1]["train_loss"] < ours[0], "the loss did not fall"
    assert abs(run["test_accuracy"] - run["torch_test_accuracy"]) < 1e-12


def test_the_committed_results_meet_the_goals():
    import json

    results = json.loads(train.RESULTS.read_text())
    for run in results["runs"]:
        assert run["test_accuracy"] >= run["goal"], run["title"]
        assert run["max_relative_loss_difference"] < 1e-10, run["title"]
        assert len(run["step_losses"]) == len(run["torch_step_losses"])


def test_a_training_run_prints_no_pytorch_warning():
    """Issue 23.6: ``float(loss)`` on a tensor that requires grad warned on every run."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train.train(train.TASKS["iris"], seed=1, epochs=1, progress=lambda line: None)
