"""Every number the posts print, reproduced by the generated functions.

First the data and the comparison are proved on their own: the posts' code,
re-typed here as an independent route, reproduces every printout under the
reading `derive.posts` gives it (rounded by NumPy or repr, or cut by hand), a
wrong value fails, and the errata are what GUIDE.md says. Then the generated
functions meet the same printouts, in the posts' order.
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

from numerical import assert_close, central_jacobian

D, C = posts.W.shape
PRINTOUTS = sorted(name for name in vars(posts) if isinstance(getattr(posts, name), posts.Printed))


def assert_printed(actual, printed: posts.Printed) -> None:
    problem = posts.worst_disagreement(actual, printed)
    if problem is not None:
        pytest.fail(f"{printed.where}: {problem}")


def h():
    """The hypothesis h = softmax(Wᵀx) for the posts' x and W, by the generated code."""
    return softmax(summation(posts.X, posts.W))


# -- the posts' own code, re-typed (flattened lines restored) -------------------------


def posts_softmax(Z):
    eZ = np.exp(Z)
    sm = eZ / np.sum(eZ)
    return sm


def posts_sm_dir(S):
    S_vector = S.reshape(S.shape[0], 1)
    S_matrix = np.tile(S_vector, S.shape[0])
    S_dir = np.diag(S) - (S_matrix * np.transpose(S_matrix))
    return S_dir


def posts_z_dir(Z, W, x):
    """Its code was lost; the text says: dz_k/dw_ij is x_j where i = k, else 0."""
    dir_matrix = np.zeros((W.shape[0] * W.shape[1], W.shape[1]))
    for k in range(W.shape[1]):
        for i in range(W.shape[1]):
            for j in range(W.shape[0]):
                dir_matrix[(i * W.shape[0]) + j][k] = (i == k) * x[j]
    return dir_matrix


def posts_l_dir_shortcut(W, S, x):
    dir_matrix = np.zeros((W.shape[0] * W.shape[1], W.shape[1]))
    for t in range(W.shape[1]):
        for i in range(W.shape[1]):
            for j in range(W.shape[0]):
                dir_matrix[(i * W.shape[0]) + j][t] = S[t] * ((i == t) - S[i]) * x[j]
    return dir_matrix


def posts_x_entropy(y, S):
    return np.sum(-1 * y * np.log(S))


def posts_xe_dir(y, S):
    return (-1 / S) * y


def posts_xe_dir_shortcut(W, S, x, y):
    dir_matrix = np.zeros(W.shape[0] * W.shape[1])
    for i in range(W.shape[1]):
        for j in range(W.shape[0]):
            dir_matrix[(i * W.shape[0]) + j] = (S[i] - y[i]) * x[j]
    return dir_matrix


def the_posts_route() -> dict:
    """Every printout (but Part 1's random input) as the posts' own code computes it."""
    x, W, y, S1 = posts.X, posts.W, posts.Y, posts.PART1_S
    Z = np.dot(np.transpose(W), x)
    h = posts_softmax(Z)
    DS = posts_sm_dir(h)
    DZ = posts_z_dir(Z, W, x)
    DL = np.dot(DS, np.transpose(DZ))
    DXE = posts_xe_dir(y, h)
    return {
        "PART1_DIV": [
            S1[0] * (1 - S1[0]),
            S1[1] * (1 - S1[1]),
            S1[2] * (1 - S1[2]),
            0 - (S1[0] * S1[1]),
            0 - (S1[1] * S1[2]),
            0 - (S1[2] * S1[3]),
        ],
        "PART1_S_DIAG": np.diag(S1),
        "PART1_S_MATRIX": np.tile(S1.reshape(S1.shape[0], 1), S1.shape[0]),
        "PART1_S_MATRIX_T": np.transpose(np.tile(S1.reshape(S1.shape[0], 1), S1.shape[0])),
        "PART1_JACOBIAN": posts_sm_dir(S1),
        "PART2_DS": DS,
        "PART2_DZ": DZ,
        "PART2_DL_LONG": DL,
        "PART2_DL_SHORTCUT": np.transpose(posts_l_dir_shortcut(W, h, x)),
        "PART3_S": h,
        "PART3_XE": posts_x_entropy(y, h),
        "PART3_DXE": DXE,
        "PART3_WEIGHT_GRAD": np.dot(DXE, np.transpose(posts_l_dir_shortcut(W, h, x))),
        "PART3_WEIGHT_GRAD (delta_w)": posts_xe_dir_shortcut(W, h, x, y),
    }


@pytest.mark.parametrize("name", the_posts_route())
def test_the_posts_own_code_reproduces_their_printout(name):
    assert_printed(the_posts_route()[name], getattr(posts, name.split()[0]))


def test_every_printout_is_reproduced_here_or_is_the_random_input():
    assert set(PRINTOUTS) - {name.split()[0] for name in the_posts_route()} == {"PART1_INPUT"}


@pytest.mark.parametrize(
    "name, other",
    [
        ("PART2_DS", "numpy"),
        ("PART2_DL_LONG", "numpy"),
        ("PART2_DL_SHORTCUT", "numpy"),
        ("PART3_DXE", "numpy"),
        ("PART1_JACOBIAN", "truncated"),
        ("PART1_S_DIAG", "truncated"),
        ("PART3_S", "truncated"),
        ("PART3_WEIGHT_GRAD", "truncated"),
    ],
)
def test_each_printout_is_read_the_way_it_was_printed(name, other):
    """Rounded and cut digits are told apart: the other reading rejects the posts' own values."""
    printed = getattr(posts, name)
    if other == "numpy":  # read the hand-cut digits as rounded at the digits they show
        other = "repr"
    misread = posts.Printed(str(printed), printed.where, other)
    assert posts.worst_disagreement(the_posts_route()[name], misread) is not None


@pytest.mark.parametrize("name", PRINTOUTS)
@pytest.mark.parametrize("error", [1e-3, -1e-3])
def test_a_value_off_by_a_thousandth_anywhere_fails(name, error):
    printed = getattr(posts, name)
    values = posts.array(printed).ravel()
    for position in range(values.size):
        wrong = values.copy()
        wrong[position] += error
        problem = posts.worst_disagreement(wrong, printed)
        assert (
            problem is not None
            and np.ravel_multi_index(problem.index, posts.array(printed).shape) == position
        ), (name, position)


def test_numpy_printouts_pin_all_eight_decimals():
    """NumPy drops trailing zeros: '0.' and '0.1' in DZ are exact to 8 decimals."""
    DZ = the_posts_route()["PART2_DZ"]
    assert posts.agrees(DZ, posts.PART2_DZ)
    assert not posts.agrees(DZ + 2e-8, posts.PART2_DZ)
    h = the_posts_route()["PART3_S"]
    assert not posts.agrees(h + np.array([0, 0, 1e-8, 0, 0]), posts.PART3_S)


def test_a_printout_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"^actual: expected 5 numbers as printed \(5,\), got 4"):
        posts.agrees(the_posts_route()["PART3_S"][:4], posts.PART3_S)


def test_the_failure_message_shows_both_numbers():
    wrong = the_posts_route()["PART2_DS"].copy()
    wrong[2, 3] = -0.06
    message = str(posts.worst_disagreement(wrong, posts.PART2_DS))
    assert message.startswith("entry (2, 3): ours -0.06, the post printed -0.050193 ")


# -- the posts' data and errata ----------------------------------------------------------


def test_part1_the_printed_output_is_the_random_input():
    """Erratum: the array printed as the softmax output does not sum to 1, and its
    softmax is not the S that the rest of Part 1 uses."""
    printed = posts.array(posts.PART1_INPUT)
    assert abs(printed.sum() - 1) > 2
    assert not np.allclose(posts_softmax(printed), posts.PART1_S, atol=1e-3)


def test_part1_S_is_a_probability_vector_as_the_diag_printout_shows():
    assert posts.PART1_S.sum() == pytest.approx(1.0, abs=1e-15)
    assert_printed(np.diag(posts.PART1_S), posts.PART1_S_DIAG)


def test_part2_the_long_DL_lost_a_digit():
    """Erratum: DL[1, 4] is printed 0.0810 by the long product, 0.08105 by the shortcut;
    every other entry is the same text."""
    long, shortcut = posts.numbers(posts.PART2_DL_LONG), posts.numbers(posts.PART2_DL_SHORTCUT)
    assert [(i, a, b) for i, (a, b) in enumerate(zip(long, shortcut)) if a != b] == [
        (1 * 15 + 4, "0.0810", "0.08105")
    ]


# -- Part 1: the softmax Jacobian -----------------------------------------------------------


def test_part1_jacobian_for_the_posts_S():
    assert_printed(softmax_jacobian(posts.PART1_S), posts.PART1_JACOBIAN)


def test_part1_diagonal_is_S_times_one_minus_S_and_off_diagonal_is_minus_S_S():
    J = softmax_jacobian(posts.PART1_S)
    assert_printed([J[0, 0], J[1, 1], J[2, 2], J[0, 1], J[1, 2], J[2, 3]], posts.PART1_DIV)


# -- Part 2: the layer ------------------------------------------------------------------------


def test_part2_hypothesis_h():
    assert_printed(h(), posts.PART3_S)


def test_part2_DS_is_the_softmax_jacobian_of_h():
    assert_printed(softmax_jacobian(h()), posts.PART2_DS)


def test_part2_DZ_rows_are_weights_class_major():
    """DZ[i*D + j, k] = dz_k/dW_ji = summation_jacobian[k, j, i]."""
    DZ = summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(C * D, C)
    assert_printed(DZ, posts.PART2_DZ)


@pytest.mark.parametrize("printed", ["PART2_DL_LONG", "PART2_DL_SHORTCUT"])
def test_part2_layer_jacobian_matches_DL(printed):
    """DL[t, i*D + j] = dS_t/dW_ji = layer_jacobian[t, j, i]: columns are weights, class-major."""
    DL = layer_jacobian(posts.X, posts.W).transpose(0, 2, 1).reshape(C, C * D)
    assert_printed(DL, getattr(posts, printed))


def test_part2_DL_is_not_the_layer_jacobian_in_W_order():
    """The layout matters: W's own (row-major) order of the columns does not match."""
    assert not posts.agrees(
        layer_jacobian(posts.X, posts.W).reshape(C, D * C), posts.PART2_DL_SHORTCUT
    )


def test_part2_DL_is_DS_times_DZ_transposed():
    DS = softmax_jacobian(h())
    DZ = summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(C * D, C)
    assert_printed(DS @ DZ.T, posts.PART2_DL_SHORTCUT)


def test_part2_the_lost_digit_is_a_5():
    entry = layer_jacobian(posts.X, posts.W)[1, 1, 1]  # t = 1, W[j = 1, i = 1]: column 1*D + 1
    assert 0.08105 <= entry < 0.08106


# -- Part 3: cross-entropy and the weight gradient ----------------------------------------------


def test_part3_cross_entropy():
    assert_printed(cross_entropy(h(), posts.Y), posts.PART3_XE)


def test_part3_DXE():
    assert_printed(cross_entropy_grad(h(), posts.Y), posts.PART3_DXE)


def test_part3_weight_gradient_class_major_equals_the_printed_numbers():
    """The printed matrix is the class-major vector reshaped (erratum): read it as that vector."""
    assert_printed(weight_grad(posts.X, posts.W, posts.Y).T.ravel(), posts.PART3_WEIGHT_GRAD)


def test_part3_printed_matrix_is_not_the_gradient_in_W_layout():
    assert not posts.agrees(weight_grad(posts.X, posts.W, posts.Y), posts.PART3_WEIGHT_GRAD)


def test_part3_weight_gradient_in_W_layout_equals_central_differences():
    def loss(W):
        return cross_entropy(softmax(summation(posts.X, W)), posts.Y)

    assert_close(
        weight_grad(posts.X, posts.W, posts.Y),
        central_jacobian(loss, posts.W),
        rtol=1e-7,
        atol=1e-10,
        what="weight_grad at the posts' x, W, y",
    )
