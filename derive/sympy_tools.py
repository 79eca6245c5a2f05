"""Small SymPy operations the derivations need and SymPy does not provide.

Each works around a pitfall recorded in GUIDE.md: ``simplify`` raising
``StopIteration`` on un-evaluated sums of KroneckerDeltas, ``Piecewise`` range
conditions left behind by ``doit()``, and the one-hot fact Σy = 1, which SymPy
cannot know.
"""

from __future__ import annotations

from functools import lru_cache
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


class VectorScale(sp.Function):
    """``VectorScale(x, floor)``: for each vector x along the last axis, a power of two s near
    max(max_k |x_k|, floor), unevaluated; printed as derive._runtime's ``vector_scale``.

    A function unchanged when its vector is divided by s (and its parameters scaled to
    match: layer normalisation's ε by s²) is computed on x/s, whose squares and sums cannot
    overflow; dividing by a power of two is exact.
    """

    nargs = 2

    def _latex(self, printer) -> str:
        vector, floor = self.args
        return rf"2^{{\lfloor \log_2 \max(\max_k |{printer._print(vector)}_k|,\, {printer._print(floor)}) \rfloor}}"


class Hypot(sp.Function):
    """``Hypot(a, b)`` = √(a² + b²), computed without squaring (``xp.hypot``): finite wherever
    the result is, and b kept where b² would underflow beside a² = 0."""

    nargs = 2

    def _eval_evalf(self, prec):
        a, b = (arg.doit() for arg in self.args)
        return sp.sqrt(a**2 + b**2)._eval_evalf(prec)

    def doit(self, **hints):
        a, b = (arg.doit(**hints) if hints.get("deep", True) else arg for arg in self.args)
        return sp.sqrt(a**2 + b**2)

    def _latex(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return rf"\operatorname{{hypot}}\left({a},\, {b}\right)"


class NormalFloor(sp.Function):
    """``NormalFloor(a)``: a positive divisor as the code uses it, at least ν, the smallest
    normal number of its dtype; printed as derive._runtime's ``normal_floor``.

    Layer normalisation's σ/s, at least √ε/s, rounds to 0 (or a subnormal) only for a
    constant vector of huge entries beside a tiny ε, where x/s − μ/s is 0 in every entry:
    the code then computes 0/ν = 0, not 0/0. For any input the dtype holds, σ/s as a real
    number is at least ν except there, so as a real number NormalFloor(a) is a itself, which
    is how the steps check it and the references evaluate it.
    """

    nargs = 1

    def _eval_evalf(self, prec):
        return self.args[0].doit()._eval_evalf(prec)

    def doit(self, **hints):
        (a,) = self.args
        return a.doit(**hints) if hints.get("deep", True) else a

    def _latex(self, printer, exp=None) -> str:
        floored = rf"\max\left({printer._print(self.args[0])},\, \nu\right)"
        return floored if exp is None else rf"{{{floored}}}^{{{exp}}}"


class QuietQuotient(sp.Function):
    """``QuietQuotient(a, b)``: a/b where the code knows what a zero or infinite b in the
    dtype gives, printed as derive._runtime's ``quiet_divide`` (NumPy's divide-by-zero and
    invalid warnings not raised for this one division).

    The temperature's (z_k/2 − m/2)/T: T > 0 rounds to 0 in the logits' dtype when it is
    below its smallest number, and then every quotient but the maximum's is −∞ (its limit)
    and the maximum's 0/0 is replaced by 0 (a ``Piecewise`` around it). As a real number it
    is a/b, which is how the steps check it and the references evaluate it.
    """

    nargs = 2

    def _eval_evalf(self, prec):
        return self.doit()._eval_evalf(prec)

    def doit(self, **hints):
        a, b = self.args
        if hints.get("deep", True):
            a, b = a.doit(**hints), b.doit(**hints)
        return a / b

    def _latex(self, printer, exp=None) -> str:
        quotient = printer._print(sp.Mul(self.args[0], sp.Pow(self.args[1], -1), evaluate=False))
        return quotient if exp is None else rf"\left({quotient}\right)^{{{exp}}}"


def relation_holds(relation: Relational) -> bool | None:
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
        value = relation_holds(relation)
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


@lru_cache(maxsize=4096)
def evaluate(expr: sp.Expr) -> sp.Expr:
    """``doit()`` then resolve index ranges: sums of deltas collapse to one term.

    ``doit()`` comes before any ``simplify``; the other order raises
    StopIteration on these sums (sympy issue 14570).

    Remembered by the expression (a pure function of it): a derivation derived again after an
    edit of its prose (derive.warm) asks for the same sums, and most of its time was here.
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


def same_sum(a: sp.Basic, b: Sum) -> bool:
    """Whether ``a`` is the sum ``b`` whatever its dummy variables are called (Σ_n x_n is
    Σ_k x_k): the same ranges, and the same summand once a's variables are renamed to b's."""
    if not isinstance(a, Sum) or len(a.limits) != len(b.limits):
        return False
    rename = {}
    for (va, *ra), (vb, *rb) in zip(a.limits, b.limits):
        if [sp.sympify(r) for r in ra] != [sp.sympify(r) for r in rb]:
            return False
        rename[va] = vb
    return a.function.xreplace(rename) == b.function


def apply_assumptions(expr: sp.Expr, assumptions: dict) -> sp.Expr:
    """``expr`` with each assumption's left side replaced by its right (Σ_k x_k = K μ); a sum
    on the left matches a sum in ``expr`` whatever its dummy is called."""
    for lhs, rhs in assumptions.items():
        if isinstance(lhs, Sum):
            expr = expr.replace(lambda e, lhs=lhs: same_sum(e, lhs), lambda e, rhs=rhs: rhs)
        else:
            expr = expr.xreplace({lhs: rhs})
    return expr


def is_zero(expr: sp.Expr, thorough: bool = True) -> bool:
    """Whether SymPy can show ``expr`` is identically zero.

    Cheapest test first: most differences vanish once expanded, most others
    once put over one denominator (``cancel``); ``simplify``, which tries
    both and much more, only for the rest, and only if ``thorough`` (a fifth
    of a cold build's index-form proving time saved).
    """
    expanded = sp.expand(expr)
    if expanded == 0 or sp.cancel(expanded) == 0:
        return True
    if not thorough:
        return False
    if sp.simplify(expanded) == 0:
        return True
    # a step function of a maximum (θ(max(z, 0)) − θ(z)): SymPy compares them case by case only
    return expanded.has(sp.Heaviside, sp.Max) and sp.simplify(expanded.rewrite(sp.Piecewise)) == 0


def on_each_side_of_zero(identity, variable: sp.Symbol) -> tuple:
    """``identity`` twice: with ``variable`` a positive number ``a``, and ``-a``.

    Stable forms branch on the sign (|z|, max(z, 0)); SymPy simplifies each
    side once it knows the sign, so each sign is proved on its own. Each
    claim says what its ``a`` is. A side on which SymPy already writes both
    expressions the same (a branch that is the definition itself) proves
    nothing: it is left out, and the other side's claim says so.
    """
    from dataclasses import replace

    a = sp.Symbol("a", positive=True)
    sides = [
        replace(
            identity,
            name=f"{identity.name}_{suffix}",
            claim=f"{identity.claim}, for ${variable} = {shown}$ with $a > 0$",
            long=identity.long.subs(variable, value),
            shortcut=identity.shortcut.subs(variable, value),
        )
        for suffix, value, shown in (("positive", a, "a"), ("negative", -a, "-a"))
    ]
    kept = [side for side in sides if side.long != side.shortcut]
    if len(kept) == 1:
        other = "< 0" if kept[0] is sides[0] else "> 0"
        kept[0] = replace(
            kept[0],
            claim=f"{kept[0].claim} (for ${variable} {other}$ the two are the same expression)",
        )
    return tuple(kept)


def chain_rule(
    outer: sp.Expr, inner: sp.IndexedBase, count: int, wrt: sp.Expr
) -> tuple[sp.Expr, sp.Expr]:
    """SymPy's own chain rule, for ``outer`` depending on ``wrt`` through ``inner[1..count]``.

    ``outer`` becomes an unknown function of ``count`` unknown functions of
    ``wrt``; SymPy differentiates that composition, and the result is written
    back with ``outer`` and the entries of ``inner``. Returns the derivative
    asked for and SymPy's answer: the chain rule computed for an explicit count,
    which the index form then writes as a sum.
    """
    functions = [sp.Function(f"{inner.label}_{m}")(wrt) for m in range(1, count + 1)]
    composed = sp.Function(f"outer_{outer}")(*functions)
    back = {composed: outer, **{f: inner[m] for m, f in enumerate(functions, 1)}}
    return sp.Derivative(outer, wrt), sp.diff(composed, wrt).xreplace(back)


class MatmulSum(sp.Sum):
    """A sum over one index (the batch b) printed as one matrix product.

    ``MatmulSum(x[b, j]*S[b, c]*x[b, k]*S[b, d], (b, 1, B))`` is the plain Sum
    (same value, same LaTeX); the array printer splits its factors into a left
    group (free indices j, c) and a right group (k, d) and computes
    ``Lᵀ R`` with L of shape (B, D·C) and R of shape (B, D·C): the
    B × D × C × D × C product of all four factors is never formed.
    """

    def sizes_needed(self) -> set[sp.Symbol]:
        """The sizes the printed code reshapes to: those of the free indices."""
        return {i.upper for i in self.free_symbols if isinstance(i, Idx)}


class SymmetricMatmulSum(MatmulSum):
    """Σ_b x[b, j] x[b, k] w[b, c, d] for a w the derivation proved symmetric in c, d.

    The plain Sum (same value, same LaTeX), the batch's sum of Kronecker
    products x_b x_bᵀ ⊗ w_b; declaring it says w_bcd = w_bdc (a displayed
    step proves it). The array printer computes it from the pairs j ≤ k and
    c ≤ d alone (``symmetric_kronecker_sum``, derive._runtime): a quarter of
    the multiply-adds of a ``MatmulSum``.
    """


class DenseSolve(sp.Expr):
    """The X with Σ_{k..} A[j.., k..] X[k..] = r[j..]: a dense linear solve.

    ``A`` has twice the axes of ``r`` (entry [j, c, k, d] for an r of axes
    [j, c]); the printer flattens both to a matrix and a vector in row-major
    order and calls ``xp.linalg.solve``. ``penalty``: A is a singular matrix
    plus ``penalty`` times I (ℋ + l2·I), so A is singular to working precision
    where the penalty is lost in the rounding of every diagonal entry.
    """

    def __new__(
        cls,
        matrix: sp.IndexedBase,
        rhs: sp.IndexedBase,
        indices: sp.Tuple,
        penalty: sp.Symbol | None = None,
    ):
        extra = () if penalty is None else (penalty,)
        return super().__new__(cls, matrix, rhs, sp.Tuple(*indices), *extra)

    @property
    def penalty(self) -> sp.Symbol | None:
        return self.args[3] if len(self.args) > 3 else None

    @property
    def matrix(self) -> sp.IndexedBase:
        return self.args[0]

    @property
    def rhs(self) -> sp.IndexedBase:
        return self.args[1]

    @property
    def indices(self) -> tuple[Idx, ...]:
        return tuple(self.args[2])

    def sizes_needed(self) -> set[sp.Symbol]:
        return {i.upper for i in self.indices}

    def _latex(self, printer) -> str:
        return (
            rf"\operatorname{{solve}}\left({printer._print(self.matrix)}, "
            rf"{printer._print(self.rhs)}\right)"
        )


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


def written_sums(expr: sp.Basic) -> sp.Basic:
    """Every sum with numbers for limits written out term by term, then anything else evaluated.

    A substitution per term (``xreplace``), innermost sums first: many times faster than
    ``Sum.doit``, which substitutes with ``subs`` and asks assumptions of every term.
    """

    def terms(total: Sum) -> sp.Expr:
        function = total.function
        for variable, lower, upper in reversed(total.limits):
            if not (sp.sympify(lower).is_Integer and sp.sympify(upper).is_Integer):
                return total.doit()
            function = sp.Add(
                *[function.xreplace({variable: sp.Integer(v)}) for v in range(lower, upper + 1)]
            )
        return function

    expr = expr.replace(lambda e: isinstance(e, Sum), terms)
    later = (sp.Derivative, sp.Limit, Sum, sp.Product, sp.UnevaluatedExpr)
    return expr.doit() if expr.has(*later) else expr
