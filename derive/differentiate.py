"""Step-by-step differentiation: the engine chooses each rule and records it as a checked Step.

Like ``sympy.integrals.manualintegrate``, one small rule per move: the sum,
constant-factor, product, quotient and power rules, the chain rule through a
function (its derivative from SymPy's ``fdiff``) or through a named
intermediate, and each piece of a ``Piecewise``. The expression being worked
on holds unevaluated ``Derivative`` pieces; each step rewrites the first of
them by one rule, so every step is an equation ``before = after`` that
derive.claims checks like a hand-written one. Trivial pieces (∂z/∂z = 1, the
derivative of a constant) are evaluated in the step that creates them.

A named intermediate (σ(z) := 1/(1 + e^{-z})) is differentiated once, in its own
steps, and its derivative written in terms of its name (σ′ = σ(1 − σ)); the main
chain then goes through the name instead of expanding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp
from sympy import Derivative, Piecewise
from sympy.core.function import AppliedUndef

from derive.printing import latex
from derive.steps import Step

Name = tuple[AppliedUndef, sp.Expr]
"""A named intermediate: σ(z) and its value in the variable."""


class CannotDifferentiate(NotImplementedError):
    """An expression no rule of the differentiator applies to."""


@dataclass(frozen=True)
class Move:
    """One rule applied to one derivative: its title, its sentence, and what it gives."""

    title: str
    words: str
    result: sp.Expr


def _d(expr: sp.Expr, variable: sp.Symbol) -> sp.Expr:
    """∂expr/∂variable, left unevaluated unless it is trivial (a constant, the variable)."""
    if not expr.has(variable):
        return sp.Integer(0)
    if expr.is_polynomial(variable) and sp.degree(expr, variable) == 1:
        return expr.coeff(variable)  # a z + b: a (∂z/∂z = 1)
    return Derivative(expr, variable)


def _m(expr: sp.Basic) -> str:
    return f"${latex(expr)}$"


# -- the rules, one per kind of expression ----------------------------------------------------


def _sum_rule(expr: sp.Add, z: sp.Symbol, lemmas: dict) -> Move:
    return Move(
        "Sum rule",
        "The derivative of a sum is the sum of the derivatives of its terms.",
        sp.Add(*[_d(term, z) for term in expr.args]),
    )


def _mul_rule(expr: sp.Mul, z: sp.Symbol, lemmas: dict) -> Move:
    constant, varying = expr.as_independent(z, as_Add=False)
    if constant != 1:
        return Move(
            "Constant factor",
            f"The constant factor {_m(constant)} comes out of the derivative.",
            constant * _d(varying, z),
        )
    numerator, denominator = sp.fraction(expr, exact=True)
    if denominator.has(z) and numerator.has(z):
        return Move(
            "Quotient rule",
            "$(u/v)' = (u' v - u v')/v^2$ with "
            f"$u = {latex(numerator)}$, $v = {latex(denominator)}$.",
            (_d(numerator, z) * denominator - numerator * _d(denominator, z)) / denominator**2,
        )
    first, *rest = expr.args
    rest = sp.Mul(*rest)
    return Move(
        "Product rule",
        f"$(u v)' = u' v + u v'$ with $u = {latex(first)}$, $v = {latex(rest)}$.",
        _d(first, z) * rest + first * _d(rest, z),
    )


def _power_rule(expr: sp.Pow, z: sp.Symbol, lemmas: dict) -> Move:
    base, exponent = expr.args
    if exponent.has(z):
        if base.has(z):
            raise CannotDifferentiate(f"{expr}: a power whose base and exponent both vary")
        return Move(
            "Exponential",
            f"$(a^u)' = a^u \\log a \\, u'$ with $a = {latex(base)}$.",
            expr * sp.log(base) * _d(exponent, z),
        )
    inner = "" if base == z else f", times the derivative of ${latex(base)}$ (chain rule)"
    return Move(
        "Power rule",
        f"$(u^{{{latex(exponent)}}})' = {latex(exponent)}\\, u^{{{latex(exponent - 1)}}}\\, u'$"
        f"{inner}.",
        exponent * base ** (exponent - 1) * _d(base, z),
    )


def _function_rule(expr: sp.Function, z: sp.Symbol, lemmas: dict) -> Move:
    if len(expr.args) != 1:
        raise CannotDifferentiate(f"{type(expr).__name__}: a function of several arguments")
    (argument,) = expr.args
    if isinstance(expr, AppliedUndef):
        if expr.func not in lemmas:
            raise CannotDifferentiate(f"{expr}: an undefined function that is not a named value")
        variable, derivative = lemmas[expr.func]
        outer = derivative.xreplace({variable: argument})
        where = "" if argument == z else ", times the derivative of its argument"
        return Move(
            f"Chain rule through ${latex(expr.func(variable))}$",
            f"The derivative of the named value, found above{where}.",
            outer * _d(argument, z),
        )
    u = sp.Dummy("u")
    outer = expr.func(u).fdiff(1).xreplace({u: argument})
    name = latex(expr.func(sp.Symbol("u")))
    chain = "" if argument == z else f", times the derivative of ${latex(argument)}$ (chain rule)"
    return Move(
        f"Derivative of ${latex(expr.func(sp.Symbol('u')))}$",
        f"$({name})' = {latex(expr.func(u).fdiff(1).xreplace({u: sp.Symbol('u')}))}$ "
        f"(SymPy's rule for it){chain}.",
        outer * _d(argument, z),
    )


def _piecewise_rule(expr: Piecewise, z: sp.Symbol, lemmas: dict) -> Move:
    return Move(
        "Each piece",
        "Away from where the pieces meet, the derivative of each piece on its own range.",
        Piecewise(*[(_d(piece, z), condition) for piece, condition in expr.args], evaluate=False),
    )


RULES = (
    (sp.Add, _sum_rule),
    (sp.Mul, _mul_rule),
    (sp.Pow, _power_rule),
    (Piecewise, _piecewise_rule),
    (sp.Function, _function_rule),
)
"""Which rule rewrites the derivative of which kind of expression: the first that matches."""


def _move(derivative: Derivative, lemmas: dict) -> Move:
    expr, z = derivative.expr, derivative.variables[0]
    for kind, rule in RULES:
        if isinstance(expr, kind):
            return rule(expr, z, lemmas)
    raise CannotDifferentiate(
        f"no rule for {type(expr).__name__} ({expr}); rules: {', '.join(k.__name__ for k, _ in RULES)}"
    )


def _pending(expr: sp.Basic) -> Derivative | None:
    for node in sp.preorder_traversal(expr):
        if isinstance(node, Derivative):
            return node
    return None


# -- whole derivations ------------------------------------------------------------------------


def rule_steps(start: sp.Expr, lemmas: dict, first_start: str | None = None) -> list[Step]:
    """Rewrite ``start`` (which holds a Derivative) one rule at a time until none is left."""
    steps, current = [], start
    while (derivative := _pending(current)) is not None:
        move = _move(derivative, lemmas)
        result = current.xreplace({derivative: move.result})
        steps.append(
            Step(
                move.title,
                move.words,
                current,
                result,
                start=first_start if not steps else None,
            )
        )
        current = result
    return steps


def _tidy(expr: sp.Expr, variable: sp.Symbol | None = None) -> sp.Expr:
    """The shortest of a few equal forms: factored, a minus sign moved into a factor that is
    a sum, that sum collected in ``variable`` (σ(1 + z(1 − σ)))."""
    tidied = []
    for c in (expr, sp.factor(expr)):
        coefficient, rest = c.as_coeff_Mul()
        sums = [f for f in sp.Mul.make_args(rest) if isinstance(f, sp.Add)]
        if coefficient.is_negative and len(sums) == 1:
            others = [f for f in sp.Mul.make_args(rest) if f is not sums[0]]
            c = sp.Mul(-coefficient, *others, sp.expand(-sums[0]))
        tidied.append((sp.count_ops(c), 1, c))
        if variable is not None:
            collected = c.replace(
                lambda e: isinstance(e, sp.Add), lambda e: sp.collect(e, variable)
            )
            tidied.append((sp.count_ops(collected), 0, collected))
    return min(tidied, key=lambda t: (t[0], t[1], len(str(t[2]))))[2]


def in_terms_of(expr: sp.Expr, name: AppliedUndef, value: sp.Expr) -> sp.Expr | None:
    """``expr`` written in the name alone (σ′ = σ(1 − σ)), if one piece of ``value`` can be
    solved for (e^{-z} = (1 − σ)/σ); None if not."""
    symbol = sp.Dummy("n")
    pieces = [a for a in value.atoms(sp.Function, sp.Pow) if a.has(*name.args) and a != value]
    for piece in sorted(pieces, key=sp.count_ops):
        unknown = sp.Dummy("a")
        solutions = sp.solve(sp.Eq(symbol, value.xreplace({piece: unknown})), unknown)
        if len(solutions) != 1:
            continue
        written = sp.simplify(expr.xreplace({piece: solutions[0]}))
        if not written.has(*name.args):
            return _tidy(written).xreplace({symbol: name})
    return None


def _lemma(name: AppliedUndef, value: sp.Expr, lemmas: dict) -> tuple[list[Step], sp.Expr]:
    """The derivative of a named value: written out, the rules, then in terms of its name."""
    (z,) = name.args
    written = Derivative(value, z)
    steps = [
        Step(
            f"Write ${latex(name)}$ out",
            f"Differentiate the definition of ${latex(name.func(z))}$.",
            Derivative(name, z),
            written,
            start=f"the definition of ${latex(name)}$",
        )
    ]
    steps += rule_steps(written, lemmas)
    result = steps[-1].result
    named = in_terms_of(result, name, value)
    if named is not None and named != result:
        steps.append(
            Step(
                f"In terms of ${latex(name)}$",
                f"Solve ${latex(name)} = {latex(value)}$ for a piece of it, substitute and simplify.",
                result,
                named,
            )
        )
        result = named
    return steps, result


def differentiate(
    expression: sp.Expr, variable: sp.Symbol, names: Sequence[Name] = (), start: str = ""
) -> tuple[tuple[Step, ...], sp.Expr]:
    """The steps from ∂expression/∂variable to its simplest form, and that form.

    ``names`` are the named intermediates ``expression`` uses, each a function of
    ``variable`` (σ(z)); each is differentiated once, in steps of its own, first.
    ``start`` says in words where the main chain starts (after the names' steps).
    """
    lemmas: dict = {}
    steps: list[Step] = []
    for name, value in names:
        if not expression.has(name.func):
            continue
        more, derivative = _lemma(name, value, lemmas)
        steps += more
        lemmas[name.func] = (name.args[0], derivative)
    main = rule_steps(
        Derivative(expression, variable),
        lemmas,
        first_start=start or ("the definition" if steps else None),
    )
    if not main:
        raise CannotDifferentiate(f"{expression} does not depend on {variable}")
    steps += main
    result = steps[-1].result
    simplest = _simplest(result, [n for n, _ in names], variable)
    if simplest != result:
        steps.append(
            Step(
                "Simplify",
                "Collect the terms, keeping the named values as they are.",
                result,
                simplest,
            )
        )
    return tuple(steps), simplest


def _simplest(expr: sp.Expr, names: list[AppliedUndef], variable: sp.Symbol) -> sp.Expr:
    """``expr`` tidied with the named values held as symbols (so they are not written out)."""
    held = {n: sp.Dummy(str(n.func)) for n in names}
    back = {v: k for k, v in held.items()}
    if isinstance(expr, Piecewise):
        pieces = [(_simplest(e, names, variable), c) for e, c in expr.args]
        return Piecewise(*pieces)
    return _tidy(expr.xreplace(held), variable).xreplace(back)
