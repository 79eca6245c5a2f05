"""Standard names the engine gives the pieces of a forward definition over a vector.

A definition written out in sums, (x_i − Σ_k x_k/K)/√(Σ_k (x_k − Σ_k' x_k'/K)²/K + ε),
is read for the pieces a reader knows by name: the mean μ, the variance σ², the scale
σ = √(σ² + ε), and the normalised entry x̂_i = (x_i − μ)/σ. The differentiator then goes
through the names instead of the written-out sums. A piece is recognised whatever its
summation variable is called and wherever SymPy put its minus sign (−Σ_k x_k/K is −μ).
"""

from __future__ import annotations

import sympy as sp

from derive.sympy_tools import same_sum

MEAN = sp.Symbol("mu", real=True)
VARIANCE = sp.Symbol("var", nonnegative=True)
SCALE = sp.Symbol("std", positive=True)
NORMALISED = sp.IndexedBase("xhat")
SCALED_BY = sp.Symbol("s", positive=True)
SCALED = {
    MEAN: (sp.Symbol("mu_scaled", real=True), MEAN / SCALED_BY),
    VARIANCE: (sp.Symbol("var_scaled", nonnegative=True), VARIANCE / SCALED_BY**2),
    SCALE: (sp.Symbol("std_scaled", positive=True), SCALE / SCALED_BY),
}
"""Each standard name of the vector x/s: the variable the code holds it in, and its value in
the names of x (its mean is μ/s, its variance σ²/s²)."""

Name = tuple[sp.Basic, sp.Expr]


def _first_sum(expr: sp.Expr, summand) -> sp.Sum | None:
    """A sum in ``expr`` whose summand ``summand(variable)`` gives: the one whose variable has
    the plainest name (k before k'), which the name's definition shows."""
    found = [
        total
        for total in expr.atoms(sp.Sum)
        if len(total.limits) == 1 and total.function == summand(total.limits[0][0])
    ]
    return min(found, key=lambda t: (len(str(t.limits[0][0])), str(t)), default=None)


def _named(expr: sp.Expr, total: sp.Sum, size: sp.Symbol, name: sp.Symbol) -> sp.Expr:
    """Each product holding 1/size and ``total`` (any dummy) with those two factors as ``name``."""

    def is_piece(e: sp.Basic) -> bool:
        if not isinstance(e, sp.Mul):
            return False
        factors = e.args
        return 1 / size in factors and any(same_sum(f, total) for f in factors)

    def as_name(e: sp.Mul) -> sp.Expr:
        rest = list(e.args)
        rest.remove(1 / size)
        rest.remove(next(f for f in rest if same_sum(f, total)))
        return sp.Mul(*rest) * name

    return expr.replace(is_piece, as_name)


def name_pieces(expression: sp.Expr, x: sp.IndexedBase, size: sp.Symbol):
    """``expression`` in the standard names the engine found in it, the names with their values
    (in the order they are defined), and the output's name (x̂) if the whole is (x_i − μ)/σ.

    Returns (expression, names, output base or None)."""
    names: list[Name] = []
    mean = _first_sum(expression, lambda k: x[k])
    if mean is not None:
        named = _named(expression, mean, size, MEAN)
        if named != expression:
            expression = named
            names.append((MEAN, mean / size))
    if names:
        variance = _first_sum(expression, lambda k: (x[k] - MEAN) ** 2)
        if variance is not None:
            named = _named(expression, variance, size, VARIANCE)
            if named != expression:
                expression = named
                names.append((VARIANCE, variance / size))
    if len(names) == 2:
        half = sp.Rational(1, 2)
        roots = [  # √(σ² + ε), or its reciprocal where it divides
            p
            for p in expression.atoms(sp.Pow)
            if p.exp in (half, -half)
            and VARIANCE in sp.Add.make_args(p.base)
            and not (p.base - VARIANCE).has(x, MEAN)
        ]
        if len({p.base for p in roots}) == 1:
            expression = expression.xreplace({p: SCALE ** (2 * p.exp) for p in roots})
            names.append((SCALE, sp.sqrt(roots[0].base)))
    output = None
    free = [s for s in expression.free_symbols if isinstance(s, sp.Idx)]
    if len(names) == 3 and len(free) == 1 and expression == (x[free[0]] - MEAN) / SCALE:
        output = NORMALISED
    return expression, tuple(names), output
