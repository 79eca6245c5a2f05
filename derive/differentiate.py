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
from dataclasses import dataclass, replace

import sympy as sp
from sympy import Derivative, Piecewise
from sympy.core.function import AppliedUndef

from derive.printing import latex
from derive.steps import Step
from derive.sympy_tools import pull_out_of_sums, resolve_index_ranges

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
    short: str = ""  # a trivial move's phrase in a merged step ("the sum rule"); "" if not trivial


_NAMED: list[set] = [set()]  # the heads of the named values being differentiated through


def _depends(expr: sp.Basic, variable: sp.Basic) -> bool:
    """Whether ``expr`` varies with ``variable``: it holds it (any entry of its array, for
    x_j) or a named value (μ, x̂_i), which depends on it through its definition."""
    if isinstance(variable, sp.Indexed):
        if any(i.base == variable.base for i in expr.atoms(sp.Indexed)):
            return True
    elif expr.has(variable):
        return True
    heads = _NAMED[-1]
    return bool(
        expr.free_symbols & heads
        or {i.base for i in expr.atoms(sp.Indexed)} & heads
        or {f.func for f in expr.atoms(AppliedUndef)} & heads
    )


def _heads_in(expr: sp.Basic) -> set:
    return (
        expr.free_symbols
        | {i.base for i in expr.atoms(sp.Indexed)}
        | {f.func for f in expr.atoms(AppliedUndef)}
    )


def _d(expr: sp.Expr, variable: sp.Basic) -> sp.Expr:
    """∂expr/∂variable, left unevaluated unless it is trivial (a constant, the variable)."""
    if not _depends(expr, variable):
        return sp.Integer(0)
    if isinstance(expr, sp.Mul) and expr.as_coeff_Mul()[0] == -1:
        return -_d(-expr, variable)  # −μ: the sign comes out with no step of its own
    if expr == variable:
        return sp.Integer(1)
    if (
        isinstance(variable, sp.Symbol)
        and expr.is_polynomial(variable)
        and sp.degree(expr, variable) == 1
    ):
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
        "the sum rule",
    )


def _mul_rule(expr: sp.Mul, z: sp.Symbol, lemmas: dict) -> Move:
    constant = sp.Mul(*[f for f in expr.args if not _depends(f, z)])
    varying = sp.Mul(*[f for f in expr.args if _depends(f, z)])
    if constant != 1:
        return Move(
            "Constant factor",
            f"The constant factor {_m(constant)} comes out of the derivative.",
            constant * _d(varying, z),
            f"the constant factor {_m(constant)} taken out",
        )
    numerator, denominator = sp.fraction(expr, exact=True)
    if _depends(denominator, z) and _depends(numerator, z):
        return Move(
            "Quotient rule",
            "$(u/v)' = (u' v - u v')/v^2$ with "
            f"$u = {latex(numerator)}$, $v = {latex(denominator)}$.",
            (_d(numerator, z) * denominator - numerator * _d(denominator, z)) / denominator**2,
        )
    first, *rest = [f for f in expr.args if _depends(f, z)] if expr.has(z) else expr.args
    rest = sp.Mul(*rest)
    return Move(
        "Product rule",
        f"$(u v)' = u' v + u v'$ with $u = {latex(first)}$, $v = {latex(rest)}$.",
        _d(first, z) * rest + first * _d(rest, z),
    )


def _power_rule(expr: sp.Pow, z: sp.Symbol, lemmas: dict) -> Move:
    base, exponent = expr.args
    if _depends(exponent, z):
        if _depends(base, z):
            raise CannotDifferentiate(f"{expr}: a power whose base and exponent both vary")
        return Move(
            "Exponential",
            f"$(a^u)' = a^u \\log a \\, u'$ with $a = {latex(base)}$.",
            expr * sp.log(base) * _d(exponent, z),
        )
    u = sp.Symbol("u")
    inner = "" if base == z else f", times the derivative of ${latex(base)}$ (chain rule)"
    return Move(
        "Power rule",
        f"$(u^{{{latex(exponent)}}})' = {latex(exponent * u ** (exponent - 1))}\\, u'${inner}.",
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
            f"the chain rule through {_m(expr.func(variable))} (its derivative found above)",
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


def _entry_rule(expr: sp.Indexed, z: sp.Basic, lemmas: dict) -> Move:
    if isinstance(z, sp.Indexed) and expr.base == z.base:
        (i,), (j,) = expr.indices, z.indices
        return Move(
            f"$\\partial {latex(expr)}/\\partial {latex(z)} = \\delta_{{{latex(i)} {latex(j)}}}$",
            f"One entry by another: 1 if they are the same entry (${latex(i)} = {latex(j)}$), "
            "else 0.",
            sp.KroneckerDelta(i, j),
            f"$\\partial {latex(expr)}/\\partial {latex(z)} = \\delta_{{{latex(i)} {latex(j)}}}$",
        )
    return _named_rule(expr, z, lemmas)


def _named_rule(expr: sp.Basic, z: sp.Basic, lemmas: dict) -> Move:
    head = expr.base if isinstance(expr, sp.Indexed) else expr
    if head not in lemmas:
        raise CannotDifferentiate(f"{expr}: not the variable {z} and not a named value")
    pattern, derivative = lemmas[head]
    renamed = dict(zip(pattern.indices, expr.indices)) if isinstance(expr, sp.Indexed) else {}
    return Move(
        f"Chain rule through ${latex(expr)}$",
        "The derivative of the named value, found above.",
        derivative.xreplace(renamed),
        f"$\\partial {latex(expr)}/\\partial {latex(z)} = {latex(derivative.xreplace(renamed))}$ "
        "from above",
    )


def _exchange_rule(expr: sp.Sum, z: sp.Basic, lemmas: dict) -> Move:
    return Move(
        "Exchange the sum and the derivative",
        "The derivative of a sum is the sum of the derivatives of its terms.",
        sp.Sum(_d(expr.function, z), *expr.limits),
        "the derivative taken inside the sum",
    )


RULES = (
    (sp.Indexed, _entry_rule),
    (sp.Symbol, _named_rule),
    (sp.Sum, _exchange_rule),
    (sp.Add, _sum_rule),
    (sp.Mul, _mul_rule),
    (sp.Pow, _power_rule),
    (Piecewise, _piecewise_rule),
    (sp.Function, _function_rule),
)
"""Which rule rewrites the derivative of which kind of expression: the first that matches."""


def _move(derivative: Derivative, lemmas: dict) -> Move:
    expr, z = derivative.expr, derivative.args[1][0]
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


def collapse_delta_sums(expr: sp.Expr) -> sp.Expr:
    """Sums over a Kronecker delta collapsed (Σ_k δ_kj f_k = f_j), the other terms of those
    sums split off with their constant factors outside; sums still being differentiated
    are left alone."""

    def one(total: sp.Sum) -> sp.Expr:
        if total.has(Derivative) or len(total.limits) != 1:
            return total
        ((k, low, high),) = total.limits
        terms = sp.Add.make_args(sp.expand(total.function))
        if not any(d.has(k) for t in terms for d in t.atoms(sp.KroneckerDelta)):
            return total
        collapsed = []
        for t in terms:
            if not t.has(k):
                collapsed.append(t * (high - low + 1))
            elif any(d.has(k) for d in t.atoms(sp.KroneckerDelta)):
                collapsed.append(resolve_index_ranges(sp.Sum(t, (k, low, high)).doit()))
            else:
                collapsed.append(pull_out_of_sums(sp.Sum(t, (k, low, high))))
        return sp.Add(*collapsed)

    return expr.replace(lambda e: isinstance(e, sp.Sum), one)


def collapse_words(expr: sp.Expr) -> tuple[str, str]:
    """What collapsing the sums over a delta in ``expr`` does, in words generated from the sums
    themselves (their variable, the delta's other index, whether terms without the delta stay):
    a sentence for a step of its own, and a phrase for a merged step."""
    sentences, phrases = [], []
    for total in sorted(expr.atoms(sp.Sum), key=str):
        if total.has(Derivative) or len(total.limits) != 1:
            continue
        ((k, _, _),) = total.limits
        terms = sp.Add.make_args(sp.expand(total.function))
        deltas = [d for t in terms for d in t.atoms(sp.KroneckerDelta) if d.has(k)]
        if not deltas:
            continue
        (j,) = [a for a in deltas[0].args if a != k] or [k]
        k_, j_ = latex(k), latex(j)
        rule = f"$\\sum_{{{k_}}} \\delta_{{{k_} {j_}}} f_{{{k_}}} = f_{{{j_}}}$"
        alone = all(any(d.has(k) for d in t.atoms(sp.KroneckerDelta)) for t in terms)
        rest = (
            f"of the sum over ${k_}$ only the term ${k_} = {j_}$ is left"
            if alone
            else f"the terms with the delta keep only ${k_} = {j_}$; the others stay sums "
            f"over ${k_}$"
        )
        if any(not t.has(k) for t in terms):
            rest += f", and a term without ${k_}$ is counted once for each ${k_}$"
        sentences.append(f"{rule}: {rest}.")
        phrases.append(f"the delta's sum over ${k_}$ collapsed to ${k_} = {j_}$")
    return " ".join(sentences), ", ".join(phrases)


def _merged(group: list[tuple[Step, str]]) -> Step:
    """A run of moves as one step: the one real rule (product, power, ...) it holds, with the
    trivial moves around it (sum rule, a constant factor, δ, a collapsed sum) said after it."""
    main = next((n for n, (_, short) in enumerate(group) if not short), 0)
    first, head = group[0][0], group[main][0]
    title = head.title if main == 0 else f"{first.title}; {head.title[0].lower()}{head.title[1:]}"
    before = [short for _, short in group[:main]]
    after = [short for n, (_, short) in enumerate(group) if n > main]
    words = head.rule
    if before and main:
        words = f"With {', '.join(before)}: {words}"
    if after:
        words += f" Then {', '.join(after)}."
    checks = {step.checked for step, _ in group}
    return replace(
        first,
        title=title,
        rule=words,
        result=group[-1][0].result,
        checked="numeric" if "numeric" in checks else first.checked,
    )


def merge_trivial(moves: list[tuple[Step, str]]) -> list[Step]:
    """Steps a reader follows: each real rule with the trivial moves after it (a move with a
    short phrase is trivial); trivial moves at the start form a step of their own, unless there
    is only one (writing a name out), which joins the first rule."""
    groups: list[list[tuple[Step, str]]] = []
    for move in moves:
        trivial = bool(move[1])
        if trivial and groups:
            groups[-1].append(move)
        elif not trivial and len(groups) == 1 and len(groups[0]) == 1 and groups[0][0][1]:
            groups[0].append(move)
        else:
            groups.append([move])
    return [_merged(g) if len(g) > 1 else g[0][0] for g in groups]


def rule_steps(
    start: sp.Expr,
    lemmas: dict,
    first_start: str | None = None,
    lead: tuple[tuple[Step, str], ...] = (),
) -> list[Step]:
    """Rewrite ``start`` (which holds a Derivative) one rule at a time until none is left,
    a sum over a delta collapsed as soon as it appears; the trivial moves are merged into the
    rule they follow (``merge_trivial``). ``lead``: moves before the first rule."""
    moves, current = list(lead), start
    while (derivative := _pending(current)) is not None:
        move = _move(derivative, lemmas)
        result = current.xreplace({derivative: move.result})
        begin = first_start if len(moves) == len(lead) and not lead else None
        moves.append((Step(move.title, move.words, current, result, start=begin), move.short))
        current = result
        collapsed = collapse_delta_sums(current)
        if collapsed != current:
            sentence, phrase = collapse_words(current)
            moves.append(
                (Step("Collapse the sum over the delta", sentence, current, collapsed), phrase)
            )
            current = collapsed
    return merge_trivial(moves)


def tidy(expr: sp.Expr, variable: sp.Basic | None = None) -> sp.Expr:
    """The shortest of a few equal forms: factored, a minus sign moved into a factor that is
    a sum, that sum collected in ``variable`` (σ(1 + z(1 − σ))), or one named value's
    reciprocal taken out of the expanded rest ((δ_ij − 1/K − x̂_i x̂_j/K)/σ)."""
    tidied = []
    for c in (expr, sp.factor(expr)):
        coefficient, rest = c.as_coeff_Mul()
        sums = [f for f in sp.Mul.make_args(rest) if isinstance(f, sp.Add)]
        if coefficient.is_negative and len(sums) == 1:
            others = [f for f in sp.Mul.make_args(rest) if f is not sums[0]]
            c = sp.Mul(-coefficient, *others, sp.expand(-sums[0]))
        tidied.append((sp.count_ops(c), 1, c))
        if isinstance(variable, sp.Symbol):
            collected = c.replace(
                lambda e: isinstance(e, sp.Add), lambda e: sp.collect(e, variable)
            )
            tidied.append((sp.count_ops(collected), 0, collected))
    for symbol in expr.free_symbols:
        if symbol.is_positive and not isinstance(symbol, sp.Idx):
            rest = sp.expand(expr * symbol)
            if not rest.has(symbol):
                tidied.append((sp.count_ops(rest) + 1, 0, sp.Mul(rest, 1 / symbol)))
    return min(tidied, key=lambda t: (t[0], t[1], len(str(t[2]))))[2]


def _head(name: sp.Basic) -> sp.Basic:
    if isinstance(name, sp.Indexed):
        return name.base
    return name.func if isinstance(name, AppliedUndef) else name


def _solved_for(name: sp.Basic, value: sp.Expr, within: sp.Expr, heads=frozenset()) -> dict:
    """Pieces of ``value`` written in ``name`` (e^{-z} = (1 − σ)/σ; σ² = σ_ε² − ε; for an
    indexed name, each entry of its array that ``within`` holds: x_j = μ + σ x̂_j)."""
    symbol = sp.Dummy("n")
    found = {}
    if isinstance(name, sp.Indexed):  # x̂_i := (x_i − μ)/σ: solve for x_i, at every index
        (entry,) = [e for e in value.atoms(sp.Indexed) if e.indices == name.indices]
        (solution,) = sp.solve(sp.Eq(symbol, value), entry)
        for other in within.atoms(sp.Indexed):
            if other.base == entry.base:
                renamed = dict(zip(name.indices, other.indices))
                found[other] = solution.xreplace({symbol: name.xreplace(renamed)}).xreplace(renamed)
        return found
    if isinstance(name, AppliedUndef):  # a function or power of the variable
        pieces = [a for a in value.atoms(sp.Function, sp.Pow) if a != value and a.has(*name.args)]
    else:  # another named value it is made of: σ² in σ = √(σ² + ε)
        pieces = [a for a in value.free_symbols if a in heads]
    for piece in sorted(pieces, key=sp.count_ops):
        if not within.has(piece):
            continue
        unknown = sp.Dummy("a")
        solutions = sp.solve(sp.Eq(symbol, value.xreplace({piece: unknown})), unknown)
        if len(solutions) == 1:
            return {piece: solutions[0].xreplace({symbol: name})}
    return {}


def _named_sums(expr: sp.Expr, names: Sequence[Name]) -> sp.Expr:
    """Each sum that a named value is a multiple of, whatever its variable is called, as that
    name: Σ_k x_k = K μ, Σ_n x_n = K μ too."""
    for name, value in names:
        sums = list(value.atoms(sp.Sum))
        if len(sums) != 1 or len(sums[0].limits) != 1:
            continue
        (total,) = sums
        factor = sp.simplify(value / total)
        if factor.has(sp.Sum) or factor.has(*total.variables):
            continue
        ((k, low, high),) = total.limits

        def same(other: sp.Basic, total=total, k=k, low=low, high=high) -> bool:
            if not isinstance(other, sp.Sum) or len(other.limits) != 1:
                return False
            ((d, lo, hi),) = other.limits
            return (lo, hi) == (low, high) and other.function.xreplace({d: k}) == total.function

        expr = expr.replace(same, lambda other, name=name, factor=factor: name / factor)
    return expr


def _sums_named(expr: sp.Expr, names: Sequence[Name]) -> str:
    """The sums in ``expr`` that a named value is a multiple of, as the page says them:
    "$\\sum_{k=1}^{K} x_{k} = K \\mu$" (whatever the sum's variable is called)."""
    said = []
    for name, value in names:
        for total in expr.atoms(sp.Sum):
            if _named_sums(total, [(name, value)]) != total:
                said.append(f"${latex(total)} = {latex(_named_sums(total, [(name, value)]))}$")
                break
    return ", ".join(said)


def in_terms_of(expr: sp.Expr, name: sp.Basic, value: sp.Expr, names=()) -> sp.Expr | None:
    """``expr`` written in the name (σ′ = σ(1 − σ); ∂σ²/∂x_j = 2(x_j − μ)/K), if a piece of
    ``value`` can be solved for or a sum is one of ``names``; None if neither helps."""
    if isinstance(name, AppliedUndef):  # a function of the variable: written without it
        solved = _solved_for(name, value, expr)
        if not solved:
            return None
        held = sp.Dummy("n")
        written = sp.simplify(expr.xreplace(solved).xreplace({name: held}))
        if written.has(*name.args):
            return None
        return tidy(written).xreplace({held: name})
    written = _named_sums(sp.expand(expr), names)
    written = written.xreplace(_solved_for(name, value, written, {_head(n) for n, _ in names}))
    return None if written == expr else tidy(written)


def _lemma(name: sp.Basic, value: sp.Expr, variable: sp.Basic, lemmas: dict, names=()):
    """The derivative of a named value: written out, the rules, then in terms of its name."""
    written = Derivative(value, variable)
    shown = latex(name)
    out = Step(
        f"Write ${shown}$ out",
        f"Differentiate the definition of ${shown}$.",
        Derivative(name, variable),
        written,
        start=f"the definition of ${shown}$",
    )
    steps = rule_steps(written, lemmas, lead=((out, f"the definition of ${shown}$ written out"),))
    result = steps[-1].result
    named = in_terms_of(result, name, value, names)
    if named is not None and named != result:
        sums = _sums_named(result, names)
        solved = _solved_for(name, value, result) if isinstance(name, AppliedUndef) else {}
        if sums:
            words = f"Write each sum by the named value it defines ({sums}) and simplify."
        elif solved:
            ((piece, solution),) = solved.items()
            words = (
                f"From ${shown} = {latex(value)}$: ${latex(piece)} = {latex(solution)}$; "
                "substitute it and simplify."
            )
        else:
            words = (
                f"Write what the named values stand for by their names (${shown}$ "
                f"$= {latex(value)}$) and simplify."
            )
        steps.append(
            Step(
                f"In terms of ${shown}$" if isinstance(name, AppliedUndef) else "In named values",
                words,
                result,
                named,
            )
        )
        result = named
    return steps, result


def differentiate(
    expression: sp.Expr,
    variable: sp.Basic,
    names: Sequence[Name] = (),
    start: str = "",
    output: Name | None = None,
    checked: str = "symbolic",
) -> tuple[tuple[Step, ...], sp.Expr]:
    """The steps from ∂expression/∂variable to its simplest form, and that form.

    ``names`` are the named intermediates ``expression`` uses (σ(z); μ, σ²), in the
    order they are defined; each is differentiated once, in steps of its own, first.
    ``start`` says in words where the main chain starts (after the names' steps);
    ``output`` (x̂_i and its value) is also used to write the result in names;
    ``checked`` is how the main chain's steps are checked (the names' steps symbolically):
    "numeric" where the written-out chain is too large to cancel in index form.
    """
    lemmas: dict = {}
    steps: list[Step] = []
    _NAMED.append({_head(n) for n, _ in names})
    try:
        for number, (name, value) in enumerate(names):
            more, derivative = _lemma(name, value, variable, lemmas, names[:number])
            if _NAMED[-1] & ({_head(n) for n, _ in names[:number]}) & _heads_in(value):
                more = [replace(s, checked=checked) for s in more]  # written out, nested: large
            steps += more
            lemmas[_head(name)] = (
                (name.args[0], derivative) if isinstance(name, AppliedUndef) else (name, derivative)
            )
        main = rule_steps(
            Derivative(expression, variable),
            lemmas,
            first_start=start or ("the definition" if steps else None),
        )
    finally:
        _NAMED.pop()
    if not main:
        raise CannotDifferentiate(f"{expression} does not depend on {variable}")
    steps += [replace(s, checked=checked) for s in main]
    result = steps[-1].result
    simplest = _simplest(result, names, variable, output)
    if simplest != result:
        steps.append(
            Step(
                "Simplify" if output is None else "In named values",
                "Collect the terms, keeping the named values as they are."
                if output is None
                else f"Write the result in the named values (${latex(output[0])} = "
                f"{latex(output[1])}$) and simplify.",
                result,
                simplest,
                checked=checked,
            )
        )
    return tuple(steps), simplest


def _simplest(expr: sp.Expr, names, variable: sp.Basic, output: Name | None) -> sp.Expr:
    """``expr`` tidied with the named values held as symbols (so they are not written out)."""
    if isinstance(expr, Piecewise):
        pieces = [(_simplest(e, names, variable, output), c) for e, c in expr.args]
        return Piecewise(*pieces)
    if output is not None:
        heads = {_head(n) for n, _ in names}
        for name, value in reversed((*names, output)):
            expr = expr.xreplace(_solved_for(name, value, expr, heads))
        return tidy(sp.expand(expr), variable)
    held = {n: sp.Dummy(str(n.func)) for n, _ in names if isinstance(n, AppliedUndef)}
    back = {v: k for k, v in held.items()}
    return tidy(expr.xreplace(held), variable).xreplace(back)
