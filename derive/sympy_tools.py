"""Small SymPy operations the derivations need and SymPy does not provide.

Each works around a pitfall recorded in GUIDE.md: ``simplify`` raising
``StopIteration`` on un-evaluated sums of KroneckerDeltas, ``Piecewise`` range
conditions left behind by ``doit()``, and the one-hot fact Σy = 1, which SymPy
cannot know.
"""

from __future__ import annotations

from itertools import product

import sympy as sp
from sympy import Idx, Piecewise, Sum
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.relational import Relational
from sympy.simplify.simplify import factor_sum


class Maximum(ExprWithLimits):
    """``Maximum(z[k], (k, 1, C))`` is max over k of z_k, unevaluated.

    Softmax is invariant to shifting every logit by the same number; shifting
    by this maximum keeps ``exp`` from overflowing.
    """

    def _latex(self, printer) -> str:
        (index, _, _) = self.limits[0]
        return rf"\max_{{{printer._print(index)}}} {printer._print(self.function)}"


def _relation_holds(relation: Relational) -> bool | None:
    """True (False) if ``relation`` holds (fails) for every value of its indices.

    Range conditions are linear in each index, so checking every corner of
    the index ranges decides them; anything else is left undecided (None).
    """
    indices = sorted(relation.atoms(Idx), key=str)
    if not indices:
        value = relation
    else:
        corners = {
            relation.subs(dict(zip(indices, corner)))
            for corner in product(*[(ix.lower, ix.upper) for ix in indices])
        }
        value = corners.pop() if len(corners) == 1 else None
    return bool(value) if value in (sp.true, sp.false) else None


def _holds(condition: sp.Basic) -> sp.Basic:
    decided = {}
    for relation in condition.atoms(Relational):
        value = _relation_holds(relation)
        if value is not None:
            decided[relation] = sp.true if value else sp.false
    return condition.xreplace(decided)


class UndecidedCondition(ValueError):
    """A Piecewise branch whose condition the index ranges do not settle."""


def resolve_index_ranges(expr: sp.Expr) -> sp.Expr:
    """Replace each Piecewise by the branch the index ranges select.

    ``Sum(f(k) * KroneckerDelta(j, k), (k, 1, N)).doit()`` gives
    ``Piecewise((f(j), N >= j), (0, True))`` even when j is an ``Idx(j, (1, N))``;
    j is in range by construction, so the first branch is the answer.
    """

    def choose(piecewise: Piecewise) -> sp.Expr:
        for value, condition in piecewise.args:
            decided = _holds(condition)
            if decided == sp.true:
                return value
            if decided != sp.false:
                raise UndecidedCondition(
                    f"cannot decide the range condition {condition} in {piecewise}"
                )
        raise UndecidedCondition(f"no branch of {piecewise} applies")

    return expr.replace(lambda e: isinstance(e, Piecewise), choose)


def evaluate(expr: sp.Expr) -> sp.Expr:
    """``doit()`` then resolve index ranges: sums of deltas collapse to one term.

    ``doit()`` comes before any ``simplify``; the other order raises
    StopIteration on these sums (sympy issue 14570).
    """
    return resolve_index_ranges(sp.expand(expr).doit())


def pull_out_of_sums(expr: sp.Expr) -> sp.Expr:
    """Move factors that do not depend on a sum's index outside the sum."""
    return expr.replace(lambda e: isinstance(e, Sum), factor_sum)


def sums_of(base: sp.IndexedBase, expr: sp.Expr) -> list[Sum]:
    """The sums in ``expr`` of the form Σ_t base[t] (e.g. Σ_t y_t)."""
    return [
        s
        for s in expr.atoms(Sum)
        if isinstance(s.function, sp.Indexed)
        and s.function.base == base
        and s.function.indices == (s.limits[0][0],)
    ]


def is_zero(expr: sp.Expr) -> bool:
    """Whether SymPy can show ``expr`` is identically zero."""
    return sp.simplify(sp.expand(expr)) == 0


def is_zero_in_every_case(expr: sp.Expr) -> bool:
    """Whether ``expr`` is zero both where each Kronecker delta δ_ij is 1 (j = i) and where it is 0.

    SymPy does not know that δ_ij S_j = δ_ij S_i, so an expression that mixes
    the two forms does not simplify to 0; splitting on the delta's two cases does.
    """
    if is_zero(expr):
        return True
    deltas = [d for d in expr.atoms(sp.KroneckerDelta) if all(isinstance(a, Idx) for a in d.args)]
    if not deltas:
        return False
    delta = deltas[0]
    first, second = delta.args
    equal = expr.xreplace({delta: sp.Integer(1)}).xreplace({second: first})
    different = expr.xreplace({delta: sp.Integer(0)})
    return is_zero_in_every_case(equal) and is_zero_in_every_case(different)


def combine_sums(expr: sp.Expr) -> sp.Expr:
    """Σ_k a_k + Σ_k b_k as Σ_k (a_k + b_k), for sums over the same range.

    SymPy folds a pair of complementary Piecewise terms (a where c, 0 elsewhere; 0 where c,
    a elsewhere) into a when they meet inside one sum; in two sums it cannot see that.
    """

    def combine(add: sp.Add) -> sp.Expr:
        by_limits: dict[tuple, list[sp.Expr]] = {}
        rest = []
        for term in add.args:
            if isinstance(term, Sum):
                by_limits.setdefault(term.limits, []).append(term.function)
            else:
                rest.append(term)
        return sp.Add(*rest, *[Sum(sp.Add(*terms), *limits) for limits, terms in by_limits.items()])

    return expr.replace(lambda e: isinstance(e, sp.Add), combine)
