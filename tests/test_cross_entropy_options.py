"""PyTorch's cross-entropy options against PyTorch itself (hypothesis), and their errors.

`cross_entropy_from_logits`, `cross_entropy_from_logits_grad` and `weight_grad`
take `weight`, `ignore_index`, `label_smoothing` (and `reduction`) with the
semantics of `torch.nn.functional.cross_entropy`. Every combination of
options, target kind (class indices, probability rows), reduction, dtype and
batch shape ((), (N,), (N, M)) is drawn and compared with PyTorch's value and
its autograd gradient; the combinations of pytorch issues #73205, #69339 and
#91383 are also checked against the formula written out in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.generated import (
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    weight_grad,
)

from registry import require

torch = require("torch")
F = torch.nn.functional

OPTIONS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


@st.composite
def cases(draw):
    """Logits, targets and options; ``torch`` holds the same call for PyTorch."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch = draw(st.sampled_from([(), (3,), (1,), (2, 3), (4, 1)]))
    classes = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(*batch, classes)) * draw(st.sampled_from([1.0, 5.0]))).astype(dtype)
    kind = draw(st.sampled_from(["index", "probabilities"]))
    options = {}
    if draw(st.booleans()):
        weight = rng.uniform(0.0, 3.0, classes)
        if draw(st.booleans()):
            weight[rng.integers(classes)] = 0.0  # a class that weighs nothing
        options["weight"] = weight.astype(dtype)
    if kind == "index":
        y = rng.integers(0, classes, size=batch)
        ignore = draw(st.sampled_from([None, -100, "a class"]))
        if ignore == -100:
            y = np.where(rng.random(batch) < 0.4, -100, y)
            options["ignore_index"] = -100
        elif ignore == "a class":
            options["ignore_index"] = int(rng.integers(classes))
    else:
        y = rng.dirichlet(np.ones(classes), size=batch).astype(dtype)
        if draw(st.booleans()):
            options["ignore_index"] = -100  # changes nothing for probability rows
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.sampled_from([1.0, 0.1, 0.0])) or float(rng.random())
    reduction = draw(st.sampled_from(["none", "sum", "mean", None]))
    if reduction is not None:
        options["reduction"] = reduction
    return z, y, options


def torch_call(z, y, options, reduction=None):
    """F.cross_entropy on the same inputs: the class axis moved to dim 1 for (N, M, C)."""
    logits = torch.tensor(z, requires_grad=True)
    moved = logits.movedim(-1, 1) if logits.ndim > 2 else logits
    target = torch.tensor(y)
    if target.is_floating_point() and target.ndim > 2:
        target = target.movedim(-1, 1)
    kwargs = {k: v for k, v in options.items() if k != "weight"}
    kwargs["reduction"] = reduction or options.get("reduction", "none")
    if kwargs.get("ignore_index") is None:
        kwargs.pop("ignore_index", None)
    if "weight" in options:
        kwargs["weight"] = torch.tensor(options["weight"])
    loss = F.cross_entropy(moved, target, **kwargs)
    if kwargs["reduction"] == "none" and loss.ndim > 1:
        loss = loss  # (N, M): the batch shape, as ours
    return logits, loss


def denominator(y, options) -> float:
    """PyTorch's denominator of "mean", to know when a mean is over no samples."""
    if np.asarray(y).dtype.kind == "f":
        return float(np.prod(np.shape(y)[:-1]))
    labels = np.asarray(y).reshape(-1)
    kept = labels != options.get("ignore_index", -(10**9))
    weight = options.get("weight")
    if weight is None:
        return float(kept.sum())
    return float(np.asarray(weight, dtype=np.float64)[labels[kept]].sum())


def close(ours, theirs, dtype, scale=1.0):
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(
        np.asarray(ours, dtype=np.float64),
        theirs.detach().numpy().astype(np.float64),
        rtol=tolerance["rtol"],
        atol=tolerance["atol"] * scale,
    )


@OPTIONS
@given(cases())
def test_the_loss_and_its_gradient_are_pytorchs(case):
    z, y, options = case
    reduction = options.get("reduction", "none")
    if reduction == "mean" and denominator(y, options) == 0:
        with pytest.raises(ValueError, match="^y: reduction 'mean' over no samples"):
            cross_entropy_from_logits(z, y, **options)
        with pytest.raises(ValueError, match="^y: reduction 'mean' over no samples"):
            cross_entropy_from_logits_grad(z, y, **options)
        return
    logits, loss = torch_call(z, y, options)
    ours = cross_entropy_from_logits(z, y, **options)
    assert np.shape(ours) == tuple(loss.shape)
    assert np.asarray(ours).dtype == z.dtype
    scale = 1.0 + float(loss.detach().abs().max())
    close(ours, loss, z.dtype.type, scale)
    loss.sum().backward()
    gradient = cross_entropy_from_logits_grad(z, y, **options)
    assert gradient.shape == z.shape and gradient.dtype == z.dtype
    close(gradient, logits.grad, z.dtype.type, 1.0 + float(logits.grad.abs().max()))


@OPTIONS
@given(cases(), st.integers(1, 4))
def test_weight_grad_is_pytorchs_gradient_of_the_mean(case, inputs):
    z, y, options = case
    options.pop("reduction", None)
    rng = np.random.default_rng(inputs)
    x = rng.normal(size=(*z.shape[:-1], inputs)).astype(z.dtype)
    W = rng.normal(size=(inputs, z.shape[-1])).astype(z.dtype)
    if denominator(y, options) == 0:
        with pytest.raises(ValueError, match="^y: reduction 'mean' over no samples"):
            weight_grad(x, W, y, **options)
        return
    weights = torch.tensor(W, requires_grad=True)
    logits = torch.tensor(x) @ weights
    target = torch.tensor(y)
    moved = logits.movedim(-1, 1) if logits.ndim > 2 else logits
    if target.is_floating_point() and target.ndim > 2:
        target = target.movedim(-1, 1)
    kwargs = {k: v for k, v in options.items() if k != "weight"}
    if "weight" in options:
        kwargs["weight"] = torch.tensor(options["weight"])
    F.cross_entropy(moved, target, reduction="mean", **kwargs).backward()
    ours = weight_grad(x, W, y, **options)
    assert ours.shape == W.shape and ours.dtype == W.dtype
    close(ours, weights.grad, z.dtype.type, 1.0 + float(weights.grad.abs().max()))


def by_hand(z, labels, weight, ignore_index, epsilon):
    """aten LossNLL.cpp's class-index loss and "mean", written out in NumPy (float64)."""
    log_s = z - z.max(-1, keepdims=True)
    log_s = log_s - np.log(np.exp(log_s).sum(-1, keepdims=True))
    kept = labels != ignore_index
    safe = np.where(kept, labels, 0)
    label_part = -weight[safe] * np.take_along_axis(log_s, safe[:, None], -1)[:, 0] * kept
    smoothing_part = -(log_s * weight).sum(-1) * kept
    denominator = weight[safe][kept].sum()
    return ((1 - epsilon) * label_part.sum() + epsilon / z.shape[-1] * smoothing_part.sum()) / (
        denominator
    )


@pytest.mark.parametrize(
    "issue, weight, ignore_index",
    [
        ("#73205: label smoothing counted ignored samples", None, -100),
        ("#69339: weights with label smoothing", [0.2, 1.0, 3.0, 0.5], None),
        ("#91383: weights, label smoothing and ignore_index", [0.2, 1.0, 3.0, 0.5], -100),
        ("#91383, with an ignored class", [0.2, 1.0, 3.0, 0.5], 2),
    ],
)
def test_the_pytorch_issues_combinations(issue, weight, ignore_index):
    rng = np.random.default_rng(73205)
    z = rng.normal(size=(8, 4)) * 3
    labels = rng.integers(0, 4, 8)
    labels[[1, 4]] = ignore_index if ignore_index is not None else labels[[1, 4]]
    w = np.ones(4) if weight is None else np.asarray(weight)
    options = {"weight": weight and w, "ignore_index": ignore_index, "label_smoothing": 0.3}
    expected = by_hand(z, labels, w, -(10**9) if ignore_index is None else ignore_index, 0.3)
    ours = cross_entropy_from_logits(z, labels, reduction="mean", **options)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, err_msg=issue)
    kwargs = {"weight": torch.tensor(w), "label_smoothing": 0.3}
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    theirs = F.cross_entropy(torch.tensor(z), torch.tensor(labels), **kwargs)
    np.testing.assert_allclose(float(theirs), expected, rtol=1e-12, err_msg=f"torch 2.13, {issue}")


def test_the_default_options_give_todays_results_bit_for_bit():
    """The defaults take the kernel as it was; the options' code, given options that change
    nothing, agrees with it (to rounding: it computes the coefficients a = y)."""
    rng = np.random.default_rng(1)
    z, labels = rng.normal(size=(16, 5)), rng.integers(0, 5, 16)
    rows = np.eye(5)[labels]
    for y in (labels, rows):
        plain = cross_entropy_from_logits(z, y)
        explicit = cross_entropy_from_logits(
            z, y, weight=None, ignore_index=None, label_smoothing=0.0, reduction="none"
        )
        assert np.array_equal(plain, explicit)
        through_options = cross_entropy_from_logits(z, y, weight=np.ones(5))
        np.testing.assert_allclose(through_options, plain, rtol=1e-15)
        np.testing.assert_allclose(
            cross_entropy_from_logits_grad(z, y, weight=np.ones(5)),
            cross_entropy_from_logits_grad(z, y),
            atol=1e-16,
        )


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"weight": np.ones(3)}, ValueError, "^weight: expected shape \\(C,\\) with C = 4"),
        ({"weight": -np.ones(4)}, ValueError, "^weight: expected non-negative finite"),
        ({"weight": np.array([1, np.nan, 1, 1])}, ValueError, "^weight: expected non-negative"),
        ({"weight": np.array([True] * 4)}, TypeError, "^weight: expected real numbers"),
        ({"weight": "heavy"}, TypeError, "^weight: expected an array"),
        (
            {"weight": torch.ones(4, dtype=torch.float64)},
            TypeError,
            "^weight: expected an array of",
        ),
        ({"ignore_index": 1.5}, TypeError, "^ignore_index: expected an int"),
        ({"ignore_index": True}, TypeError, "^ignore_index: expected an int"),
        ({"label_smoothing": 1.5}, ValueError, "^label_smoothing: expected a number in \\[0, 1\\]"),
        ({"label_smoothing": -0.1}, ValueError, "^label_smoothing: expected a number in"),
        ({"label_smoothing": float("nan")}, ValueError, "^label_smoothing: expected a real"),
        ({"label_smoothing": "some"}, TypeError, "^label_smoothing: expected a real number"),
        ({"reduction": "average"}, ValueError, "^reduction: expected one of"),
        ({"reduction": None}, TypeError, "^reduction: expected one of"),
    ],
)
def test_a_bad_option_is_a_named_error(options, error, message):
    z, labels = np.zeros((3, 4)), np.array([0, 1, 2])
    for function in (cross_entropy_from_logits, cross_entropy_from_logits_grad):
        with pytest.raises(error, match=message):
            function(z, labels, **options)
    if "reduction" not in options:
        with pytest.raises(error, match=message):
            weight_grad(np.zeros((3, 2)), np.zeros((2, 4)), labels, **options)


def test_ignore_index_with_probability_rows_is_as_in_pytorch():
    z, rows = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="^ignore_index: only class-index targets"):
        cross_entropy_from_logits(z, rows, ignore_index=1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(torch.tensor(z), torch.tensor(rows), ignore_index=1)
    np.testing.assert_array_equal(
        cross_entropy_from_logits(z, rows, ignore_index=-100), cross_entropy_from_logits(z, rows)
    )


def test_a_label_out_of_range_is_still_an_error_unless_ignored():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="^y: expected class labels in 0..2"):
        cross_entropy_from_logits(z, np.array([0, 3]), ignore_index=-100)
    assert cross_entropy_from_logits(z, np.array([0, -100]), ignore_index=-100)[1] == 0


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_an_empty_batch_is_an_empty_answer_where_nothing_is_averaged(reduction):
    z, labels = np.zeros((0, 3)), np.zeros(0, dtype=int)
    expected = F.cross_entropy(torch.from_numpy(z), torch.from_numpy(labels), reduction=reduction)
    got = cross_entropy_from_logits(z, labels, reduction=reduction)
    assert np.shape(got) == tuple(expected.shape)
    np.testing.assert_array_equal(got, expected.numpy())


def test_the_mean_of_an_empty_batch_is_refused():
    with pytest.raises(ValueError, match="^y: reduction 'mean' over no samples"):
        cross_entropy_from_logits(np.zeros((0, 3)), np.zeros(0, dtype=int), reduction="mean")


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
def test_the_options_run_in_other_array_libraries(library):
    xp = require(library)
    rng = np.random.default_rng(2)
    z, labels = rng.normal(size=(6, 4)), np.array([0, 1, -100, 3, 2, 1])
    options = {"ignore_index": -100, "label_smoothing": 0.2, "reduction": "mean"}
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    expected = cross_entropy_from_logits_grad(z, labels, weight=weight, **options)
    got = cross_entropy_from_logits_grad(
        xp.asarray(z), xp.asarray(labels), weight=xp.asarray(weight), **options
    )
    assert type(got) is type(xp.asarray(z))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)


def test_lists_of_class_labels_are_class_labels():
    """A list of labels gets the class-index semantics (the weighted mean), as an array does."""
    z = np.random.default_rng(3).normal(size=(3, 4))
    weight, labels = [1.0, 2.0, 3.0, 4.0], [0, -100, 3]
    options = {"weight": weight, "ignore_index": -100, "reduction": "mean"}
    theirs = F.cross_entropy(
        torch.tensor(z),
        torch.tensor(labels),
        weight=torch.tensor(weight, dtype=torch.float64),
        reduction="mean",
    )
    for logits in (z, z.tolist()):
        np.testing.assert_allclose(
            cross_entropy_from_logits(logits, labels, **options), float(theirs), rtol=1e-12
        )
