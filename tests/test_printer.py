"""The printers: exact printed code for each construct, clear refusals, and names as mathematics."""

import re

import pytest
import sympy as sp

from derive import derivations
from derive.model import C, S, W, class_index, input_index, summation, x, z
from derive.printing import ArrayPrinter, UnsupportedExpression, latex
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


def test_one_minus_a_kronecker_delta_is_the_off_diagonal_ones_without_brackets():
    assert (
        code(1 - sp.KroneckerDelta(t, c), (t, jd, c))
        == "off_diagonal(xp, C, dtype=dtype)[:, None, :]"
    )
    assert code((1 - sp.KroneckerDelta(i, j)) * S[j], (i, j)) == (
        "off_diagonal(xp, C, dtype=dtype)*s[..., None, :]"
    )


def test_the_sum_of_the_others_is_one_runtime_call():
    n = class_index("n")
    assert code(sp.Sum((1 - sp.KroneckerDelta(i, n)) * S[n], (n, 1, C)), (i,)) == (
        "sum_of_others(xp, s)"
    )


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


def test_a_bias_is_added_into_the_new_array_of_a_matmul():
    """Σ_d x_d W_dc + b_c: the product is a new array of the result's shape, so the bias goes
    into it (x + y = y + x exactly); a sum printed as a reduction is not written into."""
    b = sp.IndexedBase("b")
    assert code(summation(c) + b[c], (c,)) == "in_place(xp.add, xp.matmul(x, W), b)"
    assert code(sp.Sum(sp.exp(z[k]), (k, 1, C)) + b[c], (c,)).startswith("b")


def test_a_maximum_reduces_like_a_sum():
    assert code(Maximum(z[k], (k, 1, C)), ()) == "xp.max(z, axis=-1)"


def test_an_index_that_is_not_an_axis_is_refused_by_name():
    with pytest.raises(UnsupportedExpression, match=r"index j is not one of the result axes"):
        code(S[i] * x[jd], (i,))


def test_an_unbatched_array_out_of_axis_order_is_permuted_onto_the_axes():
    assert code(W[jd, c], (c, jd), batched=()) == "xp.permute_dims(W, (1, 0))"
    assert code(W[jd, c], (c, t, jd), batched=()) == "xp.permute_dims(W, (1, 0))[:, None, :]"


def test_batched_indices_out_of_axis_order_are_refused():
    with pytest.raises(UnsupportedExpression, match="not in the order"):
        code(W[jd, c], (c, jd), batched=("W",))


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


# -- LaTeX: names print as mathematics ------------------------------------------------------


def test_a_log_of_s_array_prints_as_log_s_not_as_a_log_with_base_s():
    assert latex(sp.IndexedBase("log_s")[i]) == r"(\log S)_{i}"


def test_elementwise_results_print_their_function_upright():
    assert latex(sp.Symbol("relu_z")) == r"\operatorname{relu}(z)"
    assert latex(sp.Function("relu")(sp.Symbol("z"))) == r"\operatorname{relu}{\left(z \right)}"
    assert latex(sp.Symbol("softplus_z")) == r"\operatorname{softplus}(z)"


def test_the_sums_of_others_and_the_hessian_print_as_the_pages_name_them():
    b = sp.Idx("b")
    assert latex(sp.IndexedBase("others")[b, c]) == "O_{bc}"
    assert latex(sp.IndexedBase("others_along")[b, c]) == "Q_{bc}"
    assert latex(sp.MatrixSymbol("hessian", 4, 4)) == r"\mathcal{H}"


def _displayed(derivation):
    """Every expression a derivation's page prints (derive/pages.py), and its docstrings."""
    for definition in derivation.definitions:
        yield from (definition.name, definition.expression)
    for step in derivation.steps:
        yield from (step.expression, step.result, *(e for pair in step.where for e in pair))
    for identity in derivation.identities:
        yield from (identity.long, identity.shortcut, *identity.assumptions.items())
    for kernel in derivation.kernels:
        for part in kernel.parts:
            yield from part.equation
        yield kernel.matrix_form
    for section in derivation.sections:
        yield from (e for pair in section.equations for e in pair)
    for exercise in derivation.exercises:
        yield exercise.answer_expression
    yield from (e for pair in derivation.where for e in pair)
    m = derivation.matrix_result
    if m is not None:
        yield from (m.lhs, m.rhs, m.index_form, *(e for pair in m.where for e in pair))


WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")  # two letters or more, not a \command
CONVENTIONAL = {"XE", "MSE"}  # the posts' names for the losses, written as they write them


@pytest.mark.parametrize("name", derivations.MODULES)
def test_no_name_on_a_page_prints_as_italic_letters(name):
    """A name the code chose (error_share, log_s) never reaches a page as italic letters."""
    found = set()
    for expr in _displayed(derivations.get(name)):
        for part in expr if isinstance(expr, tuple) else (expr,):
            if isinstance(part, sp.Basic):
                found |= part.atoms(sp.Symbol, sp.MatrixSymbol) - part.atoms(sp.Idx)
    italic = {
        symbol.name: latex(symbol)
        for symbol in found
        if symbol.name not in CONVENTIONAL
        and not isinstance(symbol, sp.Idx)
        and WORD.search(re.sub(r"\\[a-zA-Z]+(\{[^}]*\})?", "", latex(symbol)))
    }
    assert not italic, f"{name}: names printed as italic letters: {italic}"


def test_a_difference_times_a_computed_number_is_written_into_the_difference():
    """(g − m)·r, r = 1/σ computed by the function: the difference is a temporary made here,
    so the product goes into it; times a parameter (δ), the plain product, as before."""
    g = sp.IndexedBase("g")
    m, r, delta = sp.symbols("m reciprocal_std delta")
    batched = ("g", "m", "reciprocal_std")
    assert (
        code(r * (g[i] - m), (i,), batched=batched)
        == "in_place(xp.multiply, g - m[..., None], reciprocal_std[..., None])"
    )
    plain = code(delta * (g[i] - m), (i,), batched=batched, names=(("delta", "delta"),))
    assert not plain.startswith("in_place")


OTHERS = sp.IndexedBase("others")  # Σ_{n≠i} S_n, a temporary of the function


def _jacobian(first, second):
    """S_i's Jacobian as the derivations write it: δ_ij (Σ_{n≠i} S_n) S_i − (1 − δ_ij) S_j S_i."""
    delta = sp.KroneckerDelta(first, second)
    return (delta * OTHERS[first] - (1 - delta) * S[second]) * S[first]


def test_a_delta_over_two_axes_prints_the_off_diagonal_formula_with_the_diagonal_written_over_it():
    # −S_i S_j everywhere, then S_i Σ_{n≠i} S_n (j read as i) over the diagonal
    assert code(_jacobian(i, j), (i, j), batched=("s", "others")) == (
        "with_diagonal(xp, outer_product(xp, -s, s), s*others, C, (-2, -1))"
    )


def test_a_product_of_two_vectors_on_the_two_result_axes_is_one_outer_product():
    assert code(S[i] * S[j], (i, j)) == "outer_product(xp, s, s)"
    assert code(-S[j] * S[i], (i, j)) == "outer_product(xp, -s, s)"
    assert code(S[c] * x[jd], (jd, c)) == "outer_product(xp, x, s)"  # the first is on i
    # anything else is the broadcast product: a third axis, another factor, a squared entry
    assert code(S[t] * x[jd], (t, jd, c)) == "s[..., :, None, None]*x[..., None, :, None]"
    assert code(2 * S[i] * S[j], (i, j)) == "2*s[..., :, None]*s[..., None, :]"
    assert code(S[i] * S[i], (i, j)) == "s[..., :, None]**2"


def test_factors_over_other_axes_multiply_the_result_of_the_split():
    # x_j multiplies O and D alike: the split stays on (t, 1, c), x_j multiplies it once
    assert code(_jacobian(t, c) * x[jd], (t, jd, c), batched=("s", "others", "x")) == (
        "with_diagonal(xp, -s[..., None, None, :]*s[..., :, None, None], "
        "s[..., :, None]*others[..., :, None], C, (-3, -1))*x[..., None, :, None]"
    )


def test_a_delta_that_is_only_multiplied_by_one_array_or_added_is_not_split():
    # δ_tc x_j: nothing off the diagonal to compute; δ_ij − S_i S_j / K: the identity is one
    # pass, and D would take operations of its own
    assert code(sp.KroneckerDelta(t, c) * x[jd], (t, jd, c)) == (
        "xp.eye(C, dtype=dtype)[:, None, :]*x[..., None, :, None]"
    )
    assert code(sp.KroneckerDelta(i, j) - S[i] * S[j] / sp.Symbol("K"), (i, j)) == (
        "xp.eye(C, dtype=dtype) - s[..., :, None]*s[..., None, :]/K"
    )


def test_a_step_function_is_printed_with_its_value_at_zero_and_written_into_a_temporary():
    """θ(z) is `heaviside(xp, z, at_zero, dtype)`; into z only where z is the function's own."""
    assert code(sp.Heaviside(z[k], 0), (k,)) == "heaviside(xp, z, 0, dtype)"
    assert code(sp.Heaviside(z[k], 1), (k,)) == "heaviside(xp, z, 1, dtype)"
    owned = ArrayPrinter(axes=(k,), batched=("z",), owned=("z",))
    assert owned.doprint(sp.Heaviside(z[k], 0)) == "heaviside(xp, z, 0, dtype, owned=True)"
    with pytest.raises(UnsupportedExpression):
        code(sp.Heaviside(z[k]), (k,))  # SymPy's 1/2 at 0: no choice made


def test_a_maximum_with_a_number_is_written_into_an_owned_temporary():
    """max(z, 0) goes into z only where z is the function's own (ReLU over the two-layer
    step's z₁); an argument it does not own keeps the plain call."""
    owned = ArrayPrinter(axes=(k,), batched=("z",), owned=("z",))
    assert owned.doprint(sp.Max(z[k], 0)) == "in_place(xp.maximum, z, 0)"
    assert code(sp.Max(z[k], 0), (k,)) == "xp.maximum(0, z)"


def _batch_and_weight_indices():
    """b over a batch of B, and the weights' two (input, class) index pairs j, k and c, d."""
    b = sp.Idx("b", (1, sp.Symbol("B", integer=True)))
    return b, input_index("j"), input_index("k"), class_index("c"), class_index("d")


def test_a_number_times_a_sum_over_the_batch_multiplies_a_factor_not_the_product():
    # −Σ_b x_bj S_bc x_bk S_bd: the sign on the (B, C) factor, not a pass over the (D·C)² product
    from derive.sympy_tools import MatmulSum

    b, jj, kk, cc, dd = _batch_and_weight_indices()
    X, P = sp.IndexedBase("x"), sp.IndexedBase("S")
    product = MatmulSum(X[b, jj] * P[b, cc] * X[b, kk] * P[b, dd], (b, 1, b.upper))
    plain = code(product, (jj, cc, kk, dd), batched=(), names=(("S", "s"),))
    negated = code(-product, (jj, cc, kk, dd), batched=(), names=(("S", "s"),))
    assert not negated.startswith("-") and "xp.matmul" in negated
    assert negated == plain.replace("(s[:, None, :] * x", "(-s[:, None, :] * x", 1)
    halved = code(product / 2, (jj, cc, kk, dd), batched=(), names=(("S", "s"),))
    assert halved == plain.replace("(s[:, None, :] * x", "((1/2)*s[:, None, :] * x", 1)


def test_a_symmetric_sum_over_the_batch_is_one_runtime_call_on_the_two_factors():
    # Σ_b x_bj x_bk w_bcd: symmetric_kronecker_sum, entry [j, c, k, d], placed on the result's axes
    from derive.printing.array import UnsupportedExpression
    from derive.sympy_tools import SymmetricMatmulSum

    b, jj, kk, cc, dd = _batch_and_weight_indices()
    X, w = sp.IndexedBase("x"), sp.IndexedBase("w")
    total = SymmetricMatmulSum(X[b, jj] * X[b, kk] * w[b, cc, dd], (b, 1, b.upper))
    assert code(total, (jj, cc, kk, dd), batched=()) == "symmetric_kronecker_sum(xp, x, w)"
    assert code(total, (jj, kk, cc, dd), batched=()) == (
        "xp.permute_dims(symmetric_kronecker_sum(xp, x, w), (0, 2, 1, 3))"
    )
    for wrong in (X[b, jj] * w[b, cc, dd], X[b, jj] * X[b, kk] * w[b, cc, dd] * X[b, jj]):
        with pytest.raises(UnsupportedExpression, match="expected"):
            code(SymmetricMatmulSum(wrong, (b, 1, b.upper)), (jj, cc, kk, dd), batched=())


def test_a_weighted_sum_of_differences_with_the_others_is_one_runtime_call():
    n, U = class_index("n"), sp.IndexedBase("U")
    others = (1 - sp.KroneckerDelta(i, n)) * S[n] * (U[i] - U[n])
    assert code(sp.Sum(others, (n, 1, C)), (i,), batched=("s", "U")) == (
        "sum_of_weighted_differences(xp, s, U)"
    )
    # a difference of two other arrays, or the other way round, is not that sum
    V = sp.IndexedBase("V")
    for other in (
        (1 - sp.KroneckerDelta(i, n)) * S[n] * (U[i] - V[n]),
        (1 - sp.KroneckerDelta(i, n)) * S[n] * (U[n] - U[i]),
    ):
        assert "weighted_differences" not in code(sp.Sum(other, (n, 1, C)), (i,))


def test_a_product_of_three_factors_is_written_into_an_owned_temporary():
    # S ⊙ differences / B: both operations into the temporary, none into a parameter
    differences, B = sp.IndexedBase("differences"), sp.Symbol("B")
    expr = S[i] * differences[i] / B

    def printed(owned):
        printer = ArrayPrinter(
            axes=(i,), names={"S": "s"}, batched=("s", "differences"), owned=owned
        )
        return printer.doprint(expr)

    assert printed(("differences",)) == (
        "in_place(xp.divide, in_place(xp.multiply, differences, s), B)"
    )
    assert "in_place" not in printed(())
