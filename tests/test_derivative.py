"""derive.derivative: the claims' differentiator gives SymPy's derivative, falls back to
SymPy where its rules do not apply, and a wrong derivative is still told apart."""

import pytest
import sympy as sp
from sympy import Idx, IndexedBase, KroneckerDelta, Sum, exp, log

from derive.derivative import _handled, derivative
from derive.sympy_tools import written_sums

W, x, zz = IndexedBase("W"), IndexedBase("x"), IndexedBase("z")
D, C = sp.Symbol("D", integer=True, positive=True), sp.Symbol("C", integer=True, positive=True)
j, c, d, r = Idx("j", (1, D)), Idx("c", (1, C)), Idx("d", (1, D)), Idx("r", (1, C))
T = sp.Symbol("T", positive=True)

LOGITS = Sum(W[d, c] * x[d], (d, 1, D))
SOFTMAX = exp(zz[c] / T) / Sum(exp(zz[r] / T), (r, 1, C))
FORMS = [
    (log(Sum(exp(LOGITS), (c, 1, C))), W[j, r]),  # nested sums, symbolic sizes
    (SOFTMAX * log(SOFTMAX), zz[j]),
    (SOFTMAX, T),  # by a plain symbol
    (sp.tanh(LOGITS) ** 2 + sp.sqrt(1 + LOGITS**2), W[j, c]),
    (sp.Abs(LOGITS) + sp.Max(LOGITS, 0), W[j, c]),  # not its rules: SymPy's
    (Sum(W[j, c] * x[j], (j, 1, D)), W[j, c]),  # the variable's own index is bound: SymPy's
]


@pytest.mark.parametrize("expr, variable", FORMS, ids=range(len(FORMS)))
def test_the_derivative_is_sympys(expr, variable):
    assert _handled(expr, variable) == (FORMS.index((expr, variable)) != len(FORMS) - 1)
    ours, sympys = derivative(expr, (variable, 1)), sp.diff(expr, variable)
    assert sp.simplify((ours - sympys).doit()) == 0


def test_written_out_at_explicit_sizes_it_is_sympys_entry_by_entry():
    sizes = {D: 2, C: 3}
    loss = written_sums(log(Sum(exp(LOGITS), (c, 1, C))).xreplace(sizes))
    for entry in (W[1, 2], W[2, 3]):
        ours = derivative(loss, (entry, 2), (x[1], 1))
        assert sp.cancel(ours - sp.diff(loss, entry, 2, x[1])) == 0


def test_a_derivative_that_is_not_zero_is_not_made_zero():
    """Near misses: each rule's answer differs from a slightly wrong one."""
    u = sp.Symbol("u")
    cases = [
        (exp(2 * u), 2 * exp(2 * u), 2 * exp(2 * u) + sp.Rational(1, 10**9)),
        (log(u**2 + 1), 2 * u / (u**2 + 1), 2 * u / (u**2 + 1 + sp.Rational(1, 10**9))),
        (u**3 * sp.tanh(u), 3 * u**2 * sp.tanh(u) + u**3 * (1 - sp.tanh(u) ** 2), 3 * u**2),
    ]
    for expr, right, wrong in cases:
        ours = derivative(expr, (u, 1))
        assert sp.simplify(ours - right) == 0
        assert sp.simplify(ours - wrong) != 0


def test_an_entry_differentiated_by_another_entry_of_its_matrix_gives_deltas():
    assert derivative(W[d, c], (W[j, c], 1)) == KroneckerDelta(d, j)
    assert derivative(W[1, 2], (W[1, 3], 1)) == 0
    assert derivative(x[d] * W[d, c], (zz[j], 1)) == 0
