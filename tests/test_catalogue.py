"""`python -m derive steps --json` is enough to re-check the whole site with SymPy alone.

This test reads only that JSON (no derive import in the re-check): it rebuilds each step
from its srepr strings, writes every name out through ``where``, takes derivatives once
the function they differentiate is written out, and compares the two sides at random
points at the smallest size each step lists. A second, independent route to what the build's
derive.claims shows; a step it cannot evaluate fails as surely as a false one.
"""

import json
import random
import subprocess
import sys
from functools import cache
from itertools import product
from math import prod
from pathlib import Path

import pytest
import sympy
import sympy.codegen.cfunctions
from sympy.core.function import AppliedUndef

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"C": 3, "D": 2, "B": 2, "H": 2, "K": 3}  # where a step lists none (checked symbolically)
NAMESPACE = {
    **vars(sympy),
    **vars(sympy.codegen.cfunctions),  # log1p, expm1
    "ExprCondPair": sympy.functions.elementary.piecewise.ExprCondPair,
    "MatrixElement": sympy.matrices.expressions.matexpr.MatrixElement,
    "Str": sympy.core.symbol.Str,  # a MatrixSymbol's name
    # derive's named functions on the pages, by their definitions: hypot(a, b) = √(a² + b²);
    # a divisor kept at least the smallest normal number is, as a real number, itself; a
    # quotient whose x/0 the code makes right is, as a real number, the quotient
    "Hypot": lambda a, b: sympy.sqrt(a**2 + b**2),
    "NormalFloor": lambda a: a,
    "QuietQuotient": lambda a, b: a / b,
}


@cache
def catalogue() -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "derive", "steps", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def rebuild(text: str):
    return eval(text, dict(NAMESPACE))


def head(name):
    if isinstance(name, sympy.Indexed):
        return ("indexed", name.base.label)
    if isinstance(name, sympy.core.function.AppliedUndef):
        return ("function", name.func)
    return ("symbol", name)


def write_out(expr, meanings, keep=frozenset()):
    """Every name replaced by its meaning; a derivative taken after writing its function out."""
    for _ in range(30):
        new = substitute(expr, meanings, keep)
        if new == expr:
            return expr
        expr = new
    raise AssertionError(f"names do not resolve in {expr}")


def substitute(expr, meanings, keep):
    if isinstance(expr, sympy.Derivative):
        heads = keep | {head(v) for v, _ in expr.variable_count}
        function = written_as_terms(write_out(expr.expr, meanings, heads)).doit()
        return sympy.diff(function, *expr.variable_count)
    if not expr.args or isinstance(expr, (sympy.Idx, sympy.IndexedBase)):
        found = meanings.get(head(expr)) if isinstance(expr, sympy.Symbol) else None
        return found[1] if found and head(expr) not in keep else expr
    found = meanings.get(head(expr))
    if found is not None and head(expr) not in keep and type(found[0]) is type(expr):
        name, value = found
        args = expr.indices if isinstance(expr, sympy.Indexed) else expr.args
        pattern = name.indices if isinstance(name, sympy.Indexed) else name.args
        return value.xreplace(dict(zip(pattern, args)))
    return expr.func(*[substitute(a, meanings, keep) for a in expr.args])


def written_as_terms(expr):
    """Every sum and product over whole-number ranges written out as its terms.

    The value ``doit`` gives, without its search for a closed form first, which took about
    70% of this test's CPU time (every page re-checked: 104 s with it, 29 s without). A
    range that runs backwards (SymPy's Karr convention) is left to ``doit``."""

    def whole(total) -> bool:
        return all(a.is_Integer and b.is_Integer and a <= b + 1 for _, a, b in total.limits)

    def terms(total):
        body = total.function
        join = sympy.Add if isinstance(total, sympy.Sum) else sympy.Mul
        for index, a, b in total.limits:  # SymPy lists the innermost first
            body = join(*[body.xreplace({index: k}) for k in range(int(a), int(b) + 1)])
        return body

    return expr.replace(lambda e: isinstance(e, (sympy.Sum, sympy.Product)) and whole(e), terms)


def free_indices(expr) -> set:
    bound = {limit[0] for total in expr.atoms(sympy.Sum, sympy.Product) for limit in total.limits}
    return {i for i in expr.atoms(sympy.Idx) if i not in bound}


def matrices_as_entries(expr, numbers):
    def entries(symbol):
        rows, columns = (int(sympy.sympify(n).xreplace(numbers)) for n in symbol.shape)
        base = sympy.IndexedBase(symbol.name)
        return sympy.ImmutableMatrix(  # immutable: an expression's argument (a bare M = ...)
            rows, columns, lambda r, c: base[r + 1] if columns == 1 else base[r + 1, c + 1]
        )

    expr = expr.xreplace({m: entries(m) for m in expr.atoms(sympy.MatrixSymbol)})
    return expr.replace(
        lambda e: isinstance(e, sympy.matrices.expressions.matexpr.MatrixElement),
        lambda e: sympy.Matrix(e.parent.doit())[int(e.i), int(e.j)],
    )


def recheck(step: dict, sizes: dict, rng: random.Random) -> None:
    numbers = {sympy.Symbol(k, integer=True, positive=True): v for k, v in sizes.items()}
    lhs, rhs = rebuild(step["lhs"]), rebuild(step["rhs"])
    meanings = {}
    for name, value in step["where"]:
        name, value = rebuild(name), rebuild(value).xreplace(numbers)
        meanings[head(name.xreplace(numbers))] = (name.xreplace(numbers), value)
    pairs = [(rebuild(a), rebuild(b)) for a, b in (g for g in step["given"] if isinstance(g, list))]
    relations = [rebuild(g) for g in step["given"] if isinstance(g, str)]
    entry = [[rebuild(i) for i in part] for part in step["entry"]]
    indices = sorted(free_indices(lhs) | free_indices(rhs), key=str)
    ranges = [range(1, int(i.upper.xreplace(numbers)) + 1) for i in indices]
    for values in rng.sample(list(product(*ranges)), min(6, len(list(product(*ranges))))):
        fixed = {**dict(zip(indices, values)), **numbers}

        def out(expr, fixed=fixed):
            expr = expr.replace(  # (M)_{ij} counts from 1, SymPy's entries from 0
                lambda m: isinstance(m, sympy.matrices.expressions.matexpr.MatrixElement),
                lambda m: m.parent[m.i - 1, m.j - 1],
            )
            expr = matrices_as_entries(expr.xreplace(fixed), numbers)
            expr = write_out(expr, meanings)  # then the indices the meanings use, sized there
            expr = expr.xreplace({i.xreplace(numbers): v for i, v in fixed.items()})
            expr = written_as_terms(expr).doit()
            if isinstance(expr, sympy.MatrixBase):
                expr = expr.applyfunc(lambda entry: entry.doit())
            return expr

        left, right = out(lhs), out(rhs)
        if entry:
            place = [0, 0]
            for axis, part in enumerate(entry):
                for i in part:
                    place[axis] = place[axis] * int(i.upper.xreplace(numbers)) + fixed[i] - 1
            right = sympy.Matrix(right)[place[0], place[1]].doit()
        constraints = []  # a given with an index of its own holds for each of its values
        rates = {}  # a given rate (ds/dτ = ...): substituted where the derivative appears
        for a, b in pairs:
            if isinstance(a, sympy.Derivative):
                rates[out(a)] = out(b)
                continue
            extra = sorted(free_indices(a) - set(indices), key=str)
            spans = [range(1, int(i.upper.xreplace(numbers)) + 1) for i in extra]
            for own in product(*spans):
                constraints.append(out(a.xreplace(dict(zip(extra, own)))) - b)
        conditions = [out(r) for r in relations]
        difference = (left - right).subs(rates)
        difference = difference if isinstance(difference, sympy.MatrixBase) else [difference]
        unknowns = set()
        for e in (*difference, *constraints, *conditions):
            unknowns |= {a for a in e.atoms(sympy.Indexed)}
            unknowns |= e.atoms(AppliedUndef)  # s(τ), once its rate is substituted: a number
            unknowns |= {s for s in e.free_symbols if not s.is_integer and s.is_Symbol}
        unknowns = sorted(unknowns, key=sympy.default_sort_key)
        solved = {}
        for constraint in constraints:  # Σ y = 1: the last label is 1 minus the others
            constraint = sympy.cancel(sympy.together(constraint.xreplace(solved)))
            if constraint == 0:
                continue  # holds whatever the values (Σ S = 1 with S written out)
            # an entry of an array, or a plain number's symbol where nothing is indexed (y = 0)
            candidates = constraint.atoms(sympy.Indexed) or {
                u for u in constraint.free_symbols if u in unknowns
            }
            last = sorted(candidates, key=sympy.default_sort_key)[-1]
            solved[last] = sympy.solve(constraint, last)[0]
        checked = 0
        for attempt in range(400):  # half the points in (0.05, 0.95), half in (-2, 2)
            low = 50 if attempt % 2 == 0 else -1900
            point = {
                u: sympy.Rational(rng.randint(low, 1900 - 950 * (low > 0)), 1000) for u in unknowns
            }
            # as 50-digit floats: exact rationals make SymPy carry every exponential of the
            # written-out network symbolically into evalf (minutes for the two-layer batch mean)
            point = {u: sympy.Float(abs(v) if u.is_positive else v, 50) for u, v in point.items()}
            point.update({k: v.xreplace(point) for k, v in solved.items()})
            if not all(bool(c.xreplace(point)) for c in conditions):
                continue
            for d in difference:
                value = sympy.N(d.xreplace(point), 40)
                assert value.is_number, f"cannot evaluate {step['page']} step {step['number']}"
                assert abs(value) < 1e-25, (
                    f"{step['page']} step {step['number']} ({step['title']}) at {sizes}, "
                    f"{dict(zip(indices, values))}, {point}: the sides differ by {value}"
                )
            checked += 1
            if checked == 4:
                break
        assert checked == 4, (
            f"{step['page']} step {step['number']}: no point satisfies {conditions}"
        )


def test_the_catalogue_lists_every_displayed_step_with_its_context():
    from derive import derivations

    steps = catalogue()
    expected = sum(len(derivations.get(name).displayed_steps) for name in derivations.MODULES)
    assert len(steps) == expected
    keys = {"page", "number", "title", "relation", "lhs", "rhs", "where", "given"}
    for step in steps:
        assert keys | {"checked", "sizes"} <= set(step)
        assert step["relation"] in ("=", ":=", "convention", "=>")
        assert step["checked"] in ("symbolic", "explicit", "numeric")
        assert (step["sizes"] == []) == (step["checked"] == "symbolic")


def _pages() -> list[str]:
    from derive.derivations import MODULES

    return list(MODULES)


@pytest.mark.parametrize("page", _pages())
def test_every_step_rechecked_from_the_catalogue_alone(page):
    steps = [s for s in catalogue() if s["page"] == page]
    assert steps, f"no step of {page} in the catalogue"
    for step in steps:
        rng = random.Random(f"{page}:{step['number']}")
        recheck(step, _smallest(step["sizes"]) or SIZES, rng)


def _smallest(sizes: list[dict]) -> dict | None:
    """The smallest of a step's listed sizes: this second route re-checks each step once (at
    D = 4, H = 5 the two-layer batch mean alone took 90 s); every listed size is checked by
    derive.claims in tests/test_claims.py."""
    return min(sizes, key=lambda s: prod(s.values())) if sizes else None


@pytest.mark.parametrize(
    "page, number", [("two_layer", 10), ("second_order", 13), ("cross_entropy", 3)]
)
def test_a_step_made_false_fails_the_recheck(page, number):
    """The second route can fail: the step's right side plus 1/7 is found out."""
    (step,) = [s for s in catalogue() if s["page"] == page and s["number"] == number]
    false = {**step, "rhs": sympy.srepr(rebuild(step["rhs"]) + sympy.Rational(1, 7))}
    with pytest.raises(AssertionError, match="differ"):
        recheck(false, _smallest(step["sizes"]) or SIZES, random.Random(0))
