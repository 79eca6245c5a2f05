"""Every number the posts print, reproduced by the generated functions.

The posts truncate their printed numbers; `posts.worst_disagreement` accepts a
value within one unit of the last printed digit, and the failure message shows
ours and theirs side by side. The first test proves the comparison itself on
the posts' own loop code, re-typed here as an independent route.
"""

import numpy as np
import pytest

from derive import posts
from derive.generated import (
    cross_entropy,
    cross_entropy_grad,
    layer_jacobian,
    softmax,
    softmax_jacobian,
    summation,
    summation_jacobian,
    weight_grad,
)

C, D = posts.W.shape[1], posts.W.shape[0]


def assert_printed(actual, printed: str) -> None:
    problem = posts.worst_disagreement(actual, printed)
    if problem is not None:
        position, ours, theirs = problem
        pytest.fail(f"entry {position}: ours {ours!r}, the post printed {theirs}")


def hypothesis():
    return softmax(summation(posts.X, posts.W))


# -- the comparison, checked on the posts' own code ----------------------------------

def posts_sm_dir(S):
    S_vector = S.reshape(S.shape[0], 1)
    S_matrix = np.tile(S_vector, S.shape[0])
    return np.diag(S) - (S_matrix * np.transpose(S_matrix))


def posts_xe_dir_shortcut(W, S, x, y):
    dir_matrix = np.zeros(W.shape[0] * W.shape[1])
    for i in range(0, W.shape[1]):
        for j in range(0, W.shape[0]):
            dir_matrix[(i * W.shape[0]) + j] = (S[i] - y[i]) * x[j]
    return dir_matrix


def test_the_posts_own_code_reproduces_their_numbers():
    Z = np.dot(np.transpose(posts.W), posts.X)
    h = np.exp(Z) / np.sum(np.exp(Z))
    assert_printed(h, posts.PART3_S)
    assert_printed(posts_sm_dir(h), posts.PART2_DS)
    assert_printed(posts_sm_dir(posts.PART1_S), posts.PART1_JACOBIAN)
    assert_printed(posts_xe_dir_shortcut(posts.W, h, posts.X, posts.Y), posts.PART3_WEIGHT_GRAD)


def test_the_comparison_rejects_a_wrong_digit():
    Z = np.dot(np.transpose(posts.W), posts.X)
    h = np.exp(Z) / np.sum(np.exp(Z))
    wrong = h.copy()
    wrong[2] += 2e-8  # one unit in the 8th decimal, beyond the printed digits' slack
    assert posts.worst_disagreement(wrong, posts.PART3_S) is not None
    assert posts.worst_disagreement(h[:4], posts.PART3_S) is not None  # wrong length


# -- Part 1 ---------------------------------------------------------------------------

def test_part1_jacobian_for_the_posts_S():
    assert_printed(softmax_jacobian(posts.PART1_S), posts.PART1_JACOBIAN)


def test_part1_the_diagonal_and_off_diagonal_examples():
    J = softmax_jacobian(posts.PART1_S)
    examples = [J[0, 0], J[1, 1], J[2, 2], J[0, 1], J[1, 2], J[2, 3]]
    assert_printed(examples, posts.PART1_DIV)
    assert_printed(np.diag(J) + posts.PART1_S**2, posts.PART1_S_DIAG)  # diag(S) = J_ii + S_i^2


# -- Part 2 ---------------------------------------------------------------------------

def test_part2_hypothesis_h():
    assert_printed(hypothesis(), posts.PART3_S)


def test_part2_DS_is_the_softmax_jacobian_of_h():
    assert_printed(softmax_jacobian(hypothesis()), posts.PART2_DS)


def test_part2_DZ_rows_are_weights_class_major():
    DZ = summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(C * D, C)
    assert_printed(DZ, posts.PART2_DZ)


@pytest.mark.parametrize("printed", ["PART2_DL_LONG", "PART2_DL_SHORTCUT"])
def test_part2_DL_columns_are_weights_class_major(printed):
    DL = layer_jacobian(posts.X, posts.W).transpose(0, 2, 1).reshape(C, C * D)
    assert_printed(DL, getattr(posts, printed))


def test_part2_the_long_product_lost_a_digit():
    """Erratum: DL[1, 4] printed as 0.0810 in the long product, 0.08105 in the shortcut."""
    entry = layer_jacobian(posts.X, posts.W)[1, 1, 1]  # t = 2, j = 2, c = 2: column 1*D + 1
    assert posts.numbers(posts.PART2_DL_LONG)[15 + 4] == "0.0810"
    assert posts.numbers(posts.PART2_DL_SHORTCUT)[15 + 4] == "0.08105"
    assert 0.08105 <= entry < 0.08106


# -- Part 3 ---------------------------------------------------------------------------

def test_part3_cross_entropy():
    assert_printed([cross_entropy(hypothesis(), posts.Y)], posts.PART3_XE)
    assert float(cross_entropy(hypothesis(), posts.Y)) == pytest.approx(1.5279347484961026, abs=1e-15)


def test_part3_DXE():
    assert_printed(cross_entropy_grad(hypothesis(), posts.Y), posts.PART3_DXE)


def test_part3_weight_gradient_class_major_equals_the_printed_numbers():
    """The printed matrix is the class-major vector reshaped (erratum): compare as a vector."""
    assert_printed(weight_grad(posts.X, posts.W, posts.Y).T.ravel(), posts.PART3_WEIGHT_GRAD)


def test_part3_printed_matrix_is_not_the_gradient_in_W_layout():
    printed = posts.values(posts.PART3_WEIGHT_GRAD).reshape(posts.W.shape)
    assert not np.allclose(weight_grad(posts.X, posts.W, posts.Y), printed, atol=1e-6)


def test_part3_weight_gradient_in_W_layout_equals_central_differences():
    def loss(W):
        return cross_entropy(softmax(summation(posts.X, W)), posts.Y)

    h = 1e-6
    numeric = np.zeros_like(posts.W)
    for index in np.ndindex(posts.W.shape):
        step = np.zeros_like(posts.W)
        step[index] = h
        numeric[index] = (loss(posts.W + step) - loss(posts.W - step)) / (2 * h)
    np.testing.assert_allclose(weight_grad(posts.X, posts.W, posts.Y), numeric, rtol=1e-7, atol=1e-10)
