"""The array printer: exact printed code for each construct, and clear refusals."""

import pytest
import sympy as sp

from derive.model import C, S, W, class_index, input_index, summation, x, z
from derive.printing import ArrayPrinter, UnsupportedExpression
from derive.sympy_tools import Maximum

i, j, k, t, c = (class_index(n) for n in "ijktc")
d = input_index("d")
jd = input_index("j")


def code(expr, axes, batched=("s", "x", "z"), names=(("S", "s"),)):
    return ArrayPrinter(axes=axes, names=dict(names), batched=batched).doprint(expr)


def test_an_indexed_array_on_its_own_axes_is_printed_bare():
    assert code(S[i], (i,)) == "s"


def test_free_indices_become_axes_placed_with_none():
    assert code(S[t] * x[jd], (t, jd, c)) == "s[..., :, None, None]*x[..., None, :, None]"


def test_an_unbatched_array_needs_no_leading_none():
    assert code(W[jd, c], (t, jd, c), batched=()) == "W"


def test_kronecker_delta_is_an_identity_matrix_on_its_two_axes():
    assert code(sp.KroneckerDelta(t, c), (t, jd, c)) == "xp.eye(C, dtype=dtype)[:, None, :]"


def test_a_sum_reduces_one_more_trailing_axis():
    assert (
        code(sp.Sum(sp.exp(z[k]) * S[i], (k, 1, C)), (i,))
        == "xp.sum(xp.exp(z[..., None, :])*s[..., :, None], axis=-1)"
    )


def test_a_sum_free_of_the_result_axes_keeps_its_axis_to_broadcast():
    assert (
        code(sp.Sum(sp.exp(z[k]), (k, 1, C)), (i,)) == "xp.sum(xp.exp(z), axis=-1, keepdims=True)"
    )
    assert (
        code(sp.Sum(sp.exp(z[k]), (k, 1, C)), (i, j))
        == "xp.sum(xp.exp(z), axis=-1, keepdims=True)[..., None]"
    )
    assert code(sp.Sum(sp.exp(z[k]), (k, 1, C)), ()) == "xp.sum(xp.exp(z), axis=-1)"


def test_a_contraction_with_a_matrix_is_a_matmul():
    assert code(summation(c), (c,)) == "xp.matmul(x, W)"


def test_a_maximum_reduces_like_a_sum():
    assert code(Maximum(z[k], (k, 1, C)), ()) == "xp.max(z, axis=-1)"


def test_an_index_that_is_not_an_axis_is_refused_by_name():
    with pytest.raises(UnsupportedExpression, match=r"index j is not one of the result axes"):
        code(S[i] * x[jd], (i,))


def test_indices_out_of_axis_order_are_refused():
    with pytest.raises(UnsupportedExpression, match="not in the order"):
        code(W[jd, c], (c, jd), batched=())


def test_a_function_outside_the_table_is_refused_by_name():
    with pytest.raises(UnsupportedExpression, match="sin: not in the table"):
        code(sp.sin(S[i]), (i,))


def test_a_piecewise_is_a_selection_with_where():
    y = sp.IndexedBase("y")
    log_s = sp.IndexedBase("log_s")
    selection = sp.Piecewise((0, sp.Eq(y[i], 0)), (log_s[i], True))
    assert code(selection, (i,), batched=("y", "log_s")) == "xp.where(y == 0, 0, log_s)"


def test_a_piecewise_without_an_otherwise_branch_is_refused():
    with pytest.raises(UnsupportedExpression, match="otherwise"):
        code(sp.Piecewise((S[i], sp.Eq(S[i], 0))), (i,))


def test_an_indexed_base_with_a_subscript_is_braced_so_its_index_is_not_a_double_subscript():
    from derive.printing import latex

    k = sp.Idx("k", (1, sp.Symbol("H")))
    assert latex(sp.IndexedBase("z1")[k]) == "{z_{1}}_{k}"  # KaTeX refuses z_{1}_{k}
    assert latex(sp.IndexedBase("x")[k]) == "x_{k}"
