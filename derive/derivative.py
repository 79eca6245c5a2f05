"""The derivative of a written-out claim side, by SymPy's own rules, without its zero tests.

``sympy.diff`` asks, at every function it differentiates, whether the inner
derivative is zero (``is_zero``), and first whether the expression holds the
variable at all (its free symbols); on a sum (Σ_k …) either question makes
SymPy rebuild the sum, nested sums included. For the sums, products, powers
and elementary functions the claims are made of, that costs most of a check's
time and decides nothing: here each of SymPy's rules builds the same terms,
and a term is dropped only when it is 0 as written. Anything else (a
derivative by a sum's own variable, an unknown function, a Piecewise, a
matrix) goes to ``sympy.diff`` itself.
"""

from __future__ import annotations

import sympy as sp
from sympy import Derivative, Indexed, Sum

ELEMENTARY = (sp.exp, sp.log, sp.tanh, sp.sinh, sp.cosh, sp.erf, sp.sin, sp.cos)
"""Functions differentiated by the chain rule through their ``fdiff``, as SymPy does."""


def derivative(expr: sp.Basic, *variable_count) -> sp.Basic:
    """``sympy.diff(expr, *variable_count)`` (pairs (variable, times), as ``Derivative.variable_count``)."""
    for variable, times in variable_count:
        for _ in range(int(times)):
            if _handled(expr, variable):
                expr = _Rules(variable)(expr)
            else:
                expr = sp.diff(expr, variable)
    return expr


def _handled(expr: sp.Basic, variable: sp.Basic) -> bool:
    """Whether the rules here apply: a scalar, a variable that is an entry or a symbol, and
    no sum or product binding a symbol of the variable (∂/∂W_jc inside Σ_j …)."""
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixExpr):
        return False
    if not isinstance(variable, (Indexed, sp.Symbol)) or expr.has(sp.MatrixSymbol):
        return False
    symbols = variable.free_symbols
    return not any(
        limit[0] in symbols or any(symbols & sp.sympify(b).free_symbols for b in limit[1:])
        for total in expr.atoms(Sum, sp.Product)
        for limit in total.limits
    )


class _Rules:
    """∂/∂variable of one expression, each distinct subtree once (a written-out sum
    repeats its factors)."""

    def __init__(self, variable: sp.Basic):
        self.variable = variable
        self.label = variable.base.label if isinstance(variable, Indexed) else None
        self.depends_memo: dict = {}
        self.done: dict = {}

    def depends(self, expr: sp.Basic) -> bool:
        """Whether ``expr`` holds the variable (for an entry W_jc: any entry of W)."""
        found = self.depends_memo.get(expr)
        if found is None:
            if isinstance(expr, Indexed) and self.label is not None:
                found = expr.base.label == self.label
            elif expr == self.variable:
                found = True
            else:
                found = any(self.depends(a) for a in expr.args)
            self.depends_memo[expr] = found
        return found

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        result = self.done.get(expr)
        if result is None:
            result = self.done[expr] = self._rule(expr)
        return result

    def _rule(self, expr: sp.Expr) -> sp.Expr:
        if not self.depends(expr):
            return sp.Integer(0)
        if expr == self.variable:
            return sp.Integer(1)
        if isinstance(expr, Indexed):
            return expr.diff(self.variable)  # a product of Kronecker deltas
        if isinstance(expr, sp.Add):
            return sp.Add(*[self(a) for a in expr.args])
        if isinstance(expr, sp.Mul):  # Mul._eval_derivative's terms
            args, terms = list(expr.args), []
            for position, factor in enumerate(args):
                d = self(factor)
                if d != 0:
                    term = sp.Integer(1)
                    for a in args[:position] + [d] + args[position + 1 :]:
                        term = term * a
                    terms.append(term)
            return sp.Add(*terms)
        if isinstance(expr, sp.Pow) and not self.depends(expr.exp):  # Pow._eval_derivative's
            base, exponent = expr.args
            return expr * (self(base) * exponent / base)
        if isinstance(expr, Sum) and not isinstance(expr.function, Derivative):
            *inner, last = expr.limits  # Sum._eval_derivative's: the last limit outside
            function = expr.func(expr.function, *inner) if inner else expr.function
            return expr.func(self(function), last)
        if isinstance(expr, ELEMENTARY) and len(expr.args) == 1:
            inner = self(expr.args[0])
            return expr.fdiff(1) * inner if inner != 0 else sp.Integer(0)
        return sp.diff(expr, self.variable)  # anything else: SymPy's own rules
