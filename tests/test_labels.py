"""Integer class labels are accepted wherever one-hot y is, with the same result."""

import numpy as np
import pytest

from derive.generated import (
    cross_entropy,
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    cross_entropy_grad,
    softmax,
    weight_grad,
)

rng = np.random.default_rng(7)
X = rng.normal(size=(2, 3, 4))  # batch (2, 3), D = 4
W = rng.normal(size=(4, 6))  # C = 6
LABELS = rng.integers(6, size=(2, 3))
ONE_HOT = np.eye(6)[LABELS]
Z = X @ W
S = softmax(Z)

CALLS = {
    "cross_entropy": lambda y: cross_entropy(S, y),
    "cross_entropy_grad": lambda y: cross_entropy_grad(S, y),
    "cross_entropy_from_logits": lambda y: cross_entropy_from_logits(Z, y),
    "cross_entropy_from_logits_grad": lambda y: cross_entropy_from_logits_grad(Z, y),
    "weight_grad": lambda y: weight_grad(X, W, y),
}


@pytest.mark.parametrize("name", CALLS)
def test_labels_give_the_same_result_as_one_hot(name):
    np.testing.assert_array_equal(CALLS[name](LABELS), CALLS[name](ONE_HOT))


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize("bad", [6, -1])
def test_a_label_outside_the_classes_is_named(name, bad):
    labels = LABELS.copy()
    labels[1, 2] = bad
    with pytest.raises(ValueError, match=r"^y: expected class labels in 0\.\.5, got labels from"):
        CALLS[name](labels)


def test_a_single_sample_takes_a_scalar_label():
    np.testing.assert_array_equal(weight_grad(X[0, 0], W, 4), weight_grad(X[0, 0], W, np.eye(6)[4]))


def test_labels_keep_float32():
    assert weight_grad(X.astype(np.float32), W.astype(np.float32), LABELS).dtype == np.float32


def test_labels_of_the_wrong_batch_shape_are_refused():
    with pytest.raises(ValueError, match=r"^y: expected .*integer class labels of shape \(2, 3\)"):
        weight_grad(X, W, LABELS[:, :2])
