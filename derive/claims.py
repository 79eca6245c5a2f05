"""Displayed steps as claims: each step's two sides, written out through the
meanings of its names, are shown equal by the method the step declares.

A step carries its context as data (``Step.where``, ``Step.given``), so the
check needs nothing but the step: every name (σ, δ₂, S, XE) is replaced by its
value until only the derivation's inputs remain (z, W, x, y), derivatives
are taken once the function they differentiate is written out (never
substituting the variable they differentiate by), and the difference of
the two sides must vanish:

* ``symbolic``: in index form, for symbolic sizes (sums of deltas collapsed,
  ``given`` substituted; no ``simplify``, whose failures are slow);
* ``explicit``: at explicit sizes, every free index at every value (or a
  fixed sample of them), sums written out, exactly (rational functions of
  the exponentials);
* ``numeric``: at the same sizes, at random rational points obeying
  ``given``, evaluated with 50 significant digits.

The method is declared by the step (``Step.checked``) and is exactly what
the build runs and the page reports; a step that fails names its page,
number and the difference it found.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, replace
from itertools import product

import sympy as sp
from sympy import Derivative, Idx, Indexed, MatrixExpr, Sum
from sympy.core.function import AppliedUndef
from sympy.core.relational import Relational
from sympy.matrices.expressions.matexpr import MatrixElement

from derive.derivative import derivative
from derive.proofs import (
    ProofFailed,
    exponentials_as_monomials,
    is_zero_rational,
    numerator_is_zero,
)
from derive.steps import Derivation, Step
from derive.sympy_tools import (
    evaluate,
    is_zero,
    pull_out_of_sums,
    relation_holds,
    resolve_index_ranges,
    written_sums,
)

DEFAULT_SIZES = (
    {"C": 3, "D": 2, "B": 2, "H": 2, "K": 3},
    {"C": 2, "D": 3, "B": 3, "H": 3, "K": 2},
)
"""The explicit sizes a step is checked at unless it lists its own: the dimensions differ
from each other within each (a transposed index cannot pass by symmetry)."""

MAX_INDEX_VALUES = 24  # free-index assignments checked per size (a fixed sample beyond this)
NUMERIC_INDEX_VALUES = 6  # the same for a numeric check, whose points are random anyway
DIGITS = 50
TOLERANCE = sp.Float(10) ** -40  # relative: agreement to 40 of the 50 digits


class StepFailed(ProofFailed):
    """A displayed step whose two sides the build could not show equal."""


@dataclass(frozen=True)
class Claim:
    """One displayed equation of a page, with everything needed to check it."""

    page: str  # the registry name
    number: int  # 1-based, as on the page
    title: str
    relation: str  # "=", ":=", "convention" or "=>"
    lhs: sp.Basic
    rhs: sp.Basic
    where: tuple[tuple[sp.Basic, sp.Basic], ...]  # name -> value, every name the step uses
    given: tuple  # (lhs, rhs) pairs and relations, assumed by the step
    checked: str  # one of CHECKS
    sizes: tuple[dict[str, int], ...]  # explicit sizes (explicit, numeric); () for symbolic
    entry: tuple = ()  # ((row indices), (column indices)): lhs is this entry of the matrix rhs


@dataclass(frozen=True)
class ClaimCheck:
    """What the check of a claim did."""

    page: str
    number: int
    checked: str
    sizes: tuple[dict[str, int], ...]
    seconds: float


# -- the names of a page --------------------------------------------------------------------


def _head(name: sp.Basic) -> sp.Basic:
    """What identifies a name: the base of S_i, the function of σ(z), the symbol XE."""
    if isinstance(name, Indexed):
        return name.base.label  # S_i, whatever shape its base was given
    if isinstance(name, AppliedUndef):
        return name.func
    return name


def is_name(expr: sp.Basic) -> bool:
    """Whether ``expr`` can be defined in ``where``: a symbol, S_i (index variables), σ(z)."""
    if isinstance(expr, sp.Symbol) and not isinstance(expr, Idx):
        return True
    if isinstance(expr, Indexed):
        return all(isinstance(i, (Idx, sp.Symbol)) for i in expr.indices)
    return isinstance(expr, AppliedUndef) and all(isinstance(a, sp.Symbol) for a in expr.args)


def page_where(derivation: Derivation) -> tuple[tuple[sp.Basic, sp.Basic], ...]:
    """The names the page defines for every step: its ``where``, then its definitions."""
    defined = [(d.name, d.expression) for d in derivation.definitions if is_name(d.name)]
    return (*derivation.where, *defined)


def step_where(step: Step, derivation: Derivation) -> tuple[tuple[sp.Basic, sp.Basic], ...]:
    """The meanings of the names ``step`` uses, its own first, each name once, only those used."""
    by_head: dict[sp.Basic, tuple[sp.Basic, sp.Basic]] = {}
    for name, value in (*step.where, *page_where(derivation)):
        by_head.setdefault(_head(name), (name, value))
    used, queue = set(), [step.expression, step.result]
    queue += [g for pair in step.given for g in (pair if isinstance(pair, tuple) else (pair,))]
    while queue:
        expr = queue.pop()
        for head, (_, value) in by_head.items():
            if head not in used and _mentions(expr, head):
                used.add(head)
                queue.append(value)
    return tuple(pair for head, pair in by_head.items() if head in used)


def _mentions(expr: sp.Basic, head: sp.Basic) -> bool:
    if any(i.base.label == head for i in expr.atoms(Indexed)):
        return True
    if any(str(m.name) == str(head) for m in expr.atoms(sp.MatrixSymbol)):
        return True  # a matrix's entries are the indexed name's (claims._explicit_matrix)
    if isinstance(head, sp.FunctionClass):
        return any(f.func == head for f in expr.atoms(AppliedUndef))
    return head in expr.free_symbols


def claims(derivation: Derivation) -> list[Claim]:
    """Every displayed step of ``derivation``, as a claim (made once: the build asks twice)."""
    made = _CLAIMS.get(id(derivation))
    if made is None or made[0] is not derivation:
        if len(_CLAIMS) > 64:
            _CLAIMS.clear()  # a test building many copies keeps no more than a few builds' worth
        made = _CLAIMS[id(derivation)] = (derivation, _claims(derivation))
    return list(made[1])


_CLAIMS: dict = {}


def _claims(derivation: Derivation) -> list[Claim]:
    made = []
    for number, step in enumerate(derivation.displayed_steps, 1):
        where = tuple((_shapeless(n), _shapeless(v)) for n, v in step_where(step, derivation))
        made.append(
            Claim(
                page=derivation.name,
                number=number,
                title=step.title,
                relation=step.relation,
                lhs=_shapeless(step.expression),
                rhs=_shapeless(step.result),
                where=where,
                given=tuple(
                    tuple(map(_shapeless, g)) if isinstance(g, tuple) else _shapeless(g)
                    for g in step.given
                ),
                checked=step.checked,
                sizes=tuple(dict(s) for s in step.sizes)
                or _sizes_for((step.expression, step.result, *(v for _, v in where))),
                entry=step.entry,
            )
        )
    return made


def _shapeless(expr: sp.Basic) -> sp.Basic:
    """Indexed bases by their names alone: S with a shape (C,) and a matrix S's entries alike."""
    return expr.replace(
        lambda e: isinstance(e, sp.IndexedBase) and e.shape is not None,
        lambda e: sp.IndexedBase(e.label),
    )


def _sizes_for(expressions) -> tuple[dict[str, int], ...]:
    """The default sizes, restricted to the dimensions the expressions mention."""
    symbols = set()
    for expr in expressions:
        symbols |= {str(s) for s in expr.free_symbols}
        symbols |= {str(i.upper) for i in expr.atoms(Idx)}
    named = [{k: v for k, v in sizes.items() if k in symbols} for sizes in DEFAULT_SIZES]
    return tuple(s for s in named if s) or ({},)


# -- writing a claim out --------------------------------------------------------------------


def _fresh_bound(value: sp.Basic, actual: tuple) -> sp.Basic:
    """``value`` with the variables of its sums that ``actual`` uses renamed apart (no capture)."""
    taken = set().union(*(sp.sympify(a).free_symbols for a in actual))
    renamed = {}
    for total in value.atoms(Sum):
        for limit in total.limits:
            variable = limit[0]
            if variable not in taken:
                continue
            if isinstance(variable, Idx):
                renamed[variable] = Idx(
                    sp.Dummy(str(variable.label), integer=True), variable.args[1]
                )
            else:
                renamed[variable] = sp.Dummy(str(variable), integer=True)
    return value.xreplace(renamed) if renamed else value


class WrittenOut:
    """Replaces names by their values and evaluates derivatives once their function is written out."""

    def __init__(self, where, explicit: bool, outside: bool = True):
        self.rules = {_head(name): (name, value) for name, value in where}
        self.explicit = explicit
        self.outside = outside  # False: names outside derivatives stay free (any value)
        self.memo: dict = {}  # a pure function of its arguments: each subtree done once

    def __call__(
        self, expr: sp.Basic, keep: frozenset = frozenset(), inside: bool = False
    ) -> sp.Basic:
        for _ in range(20):  # names defined through names: until nothing is left to replace
            replaced = self._replace(expr, keep, inside)
            if replaced == expr:
                return expr
            expr = replaced
        raise StepFailed(f"the names do not resolve (a definition refers to itself?): {expr}")

    def _replace(self, expr: sp.Basic, keep: frozenset, inside: bool = False) -> sp.Basic:
        key = (expr, keep, inside)
        if key not in self.memo:
            self.memo[key] = self._replace_once(expr, keep, inside)
        return self.memo[key]

    def _replace_once(self, expr: sp.Basic, keep: frozenset, inside: bool) -> sp.Basic:
        if isinstance(expr, Derivative):
            variables = [v for v, _ in expr.variable_count]
            heads = keep | {_head(v) for v in variables}
            function = self(self._replace(expr.expr, heads, True), heads, inside=True)
            if self.explicit:
                function = written_sums(function)
            return derivative(function, *expr.variable_count)
        head = _head(expr) if is_name(expr) or isinstance(expr, (Indexed, AppliedUndef)) else None
        rule = self.rules.get(head) if head is not None and head not in keep else None
        if not (self.outside or inside):
            rule = None
        if (
            rule is not None
            and type(rule[0]) is type(expr)
            or (rule is not None and isinstance(expr, sp.Symbol) and isinstance(rule[0], sp.Symbol))
        ):
            name, value = rule
            if isinstance(expr, Indexed):
                actual = tuple(self._replace(i, keep, inside) for i in expr.indices)
                value = _fresh_bound(value, actual)
                return _renamed(value, zip(name.indices, actual))
            if isinstance(expr, AppliedUndef):
                actual = tuple(self._replace(a, keep, inside) for a in expr.args)
                return _renamed(value, zip(name.args, actual))
            return value
        if isinstance(expr, sp.FunctionClass) and expr in self.rules and expr not in keep:
            return expr  # a bare function (the activation a in a Lambda): left to AppliedUndef
        if not expr.args or isinstance(expr, (Idx, sp.IndexedBase)):
            return expr
        args = tuple(self._replace(a, keep, inside) for a in expr.args)
        return expr if args == expr.args else expr.func(*args)


def _renamed(value: sp.Basic, pairs) -> sp.Basic:
    """``value`` with each name's own index (argument) replaced by the one used. Only those that
    differ: ``xreplace`` rebuilds every part above a symbol mapped even to itself, and a
    rebuilt sum asks SymPy's assumptions again."""
    renaming = {name: used for name, used in pairs if name != used}
    return value.xreplace(renaming) if renaming else value


# -- the checks -----------------------------------------------------------------------------


def _free_indices(expr: sp.Basic) -> list[Idx]:
    """Indices free in ``expr`` (not the variable of a sum), in a fixed order."""
    bound = set()
    for total in expr.atoms(Sum, sp.Product):  # a product's variable is bound as a sum's
        bound |= {limit[0] for limit in total.limits}
    return sorted(
        {i for i in expr.atoms(Idx) if i not in bound and not i.label.is_number},
        key=lambda i: str(i),
    )


def _given_pairs(claim: Claim) -> tuple[list[tuple], list[Relational]]:
    pairs = [g for g in claim.given if isinstance(g, tuple)]
    relations = [g for g in claim.given if isinstance(g, Relational)]
    return pairs, relations


def _same_sum(a: sp.Basic, b: sp.Basic, wild: dict) -> bool:
    """Whether sum ``a`` is sum ``b`` up to its variable's name and the indices in ``wild``
    (a given's own indices: Σ_t y_bt = 1 for every b matches Σ_t y_{b′t})."""
    if not (isinstance(a, Sum) and isinstance(b, Sum)) or len(a.limits) != len(b.limits):
        return False
    rename = dict(wild)
    for (va, *ra), (vb, *rb) in zip(a.limits, b.limits):
        if [sp.sympify(x) for x in ra] != [sp.sympify(x) for x in rb]:
            return False
        rename[vb] = va
    return a.function.match(b.function.xreplace(rename)) is not None


def _apply_given_symbolic(expr: sp.Basic, pairs: list[tuple], claim: Claim) -> sp.Basic:
    own = set(_free_indices(claim.lhs)) | set(_free_indices(claim.rhs))
    for lhs, rhs in pairs:
        if isinstance(lhs, Sum):
            wild = {i: sp.Wild(f"w{n}") for n, i in enumerate(_free_indices(lhs)) if i not in own}
            expr = expr.replace(
                lambda e, lhs=lhs, wild=wild: _same_sum(e, lhs, wild), lambda e, rhs=rhs: rhs
            )
        else:
            expr = expr.xreplace({lhs: rhs})
    return expr


def _sign_assumptions(relations: list[Relational]) -> dict:
    """z > 0 (z < 0) as z = a (z = −a) with a a positive symbol, for a symbolic check."""
    replaced = {}
    for relation in relations:
        if isinstance(relation, (sp.StrictGreaterThan, sp.StrictLessThan)) and relation.rhs == 0:
            variable = relation.lhs
            if isinstance(variable, sp.Symbol):
                positive = sp.Symbol(f"{variable}_positive", positive=True)
                replaced[variable] = positive if relation.rel_op == ">" else -positive
    return replaced


def check_symbolic(claim: Claim, outside: bool = True) -> None:
    pairs, relations = _given_pairs(claim)
    signs = _sign_assumptions(relations)
    where = [(n, v.xreplace(signs)) for n, v in claim.where]
    write = WrittenOut(where, explicit=False, outside=outside)
    if claim.entry:
        raise StepFailed("a matrix entry claim is checked at explicit sizes, not symbolically")
    lhs, rhs = (write(side.xreplace(signs)) for side in (claim.lhs, claim.rhs))
    difference = lhs - rhs
    if isinstance(difference, (sp.MatrixBase, MatrixExpr)):
        difference = sp.Matrix(difference.doit())
        entries = list(difference)
    else:
        entries = [difference]
    for entry in entries:
        evaluated = None
        ways = (_collapsed, _evaluated) if outside else (_collapsed,)  # quick, then SymPy's doit
        for evaluate_sums in ways:
            evaluated = _apply_given_symbolic(evaluate_sums(entry), pairs, claim)
            # then with sums equal up to their variable's name made one (after the givens,
            # which change the sums)
            if _vanishes(_canonical_variables(evaluated)) or _vanishes(evaluated):
                break
        else:
            raise StepFailed(
                f"in index form the two sides differ by {sp.sstr(evaluated)[:300]} "
                "(declare checked='explicit' or 'numeric' if SymPy cannot cancel it)"
            )


def _evaluated(expr: sp.Expr) -> sp.Expr:
    """Every sum and derivative evaluated by SymPy (``doit``), deltas collapsed: slower, and
    it writes e^{Σ…} as a product on both sides alike, which the quick way does not."""
    return pull_out_of_sums(evaluate(expr.doit()))


def _collapsed(expr: sp.Expr) -> sp.Expr:
    """Sums over a Kronecker delta collapsed, the other sums split by term and left as they are.

    ``Sum.doit`` on a sum without a delta tries telescoping, solving and
    simplifying, for seconds; a step that holds needs none of it.
    """

    def split(total: Sum) -> sp.Expr:
        if len(total.limits) > 1:
            return total
        ((variable, lower, upper),) = total.limits
        return sp.Add(
            *[
                Sum(term, *total.limits) if term.has(variable) else term * (upper - lower + 1)
                for term in sp.Add.make_args(total.function)
            ]
        )

    def collapse(total: Sum) -> sp.Expr:
        variables = {limit[0] for limit in total.limits}
        deltas = [d for d in total.function.atoms(sp.KroneckerDelta) if d.free_symbols & variables]
        if not deltas:
            return total
        collapsed = _one_term(total)
        return collapsed if collapsed is not None else resolve_index_ranges(total.doit())

    expr = sp.expand(expr).replace(lambda e: isinstance(e, Sum), split)
    return pull_out_of_sums(expr.replace(lambda e: isinstance(e, Sum), collapse))


def _one_term(total: Sum) -> sp.Expr | None:
    """Σ_k δ_ka f(k) as f(a), where a is in the sum's range for every value of its indices.

    What ``Sum.doit`` gives once its Piecewise is resolved, without its deep ``doit`` of
    the summand (which evaluates every inner sum symbolically, for seconds). None where
    the shape is not that (several limits, the delta not a factor, an inner sum that
    binds k or captures a, a range the index ranges do not decide): SymPy's way then.
    """
    if len(total.limits) != 1:
        return None
    ((variable, lower, upper),) = total.limits
    factors = sp.Mul.make_args(total.function)
    inner = {limit[0] for s in total.function.atoms(Sum, sp.Product) for limit in s.limits}
    for position, delta in enumerate(factors):
        if not isinstance(delta, sp.KroneckerDelta) or variable not in delta.args:
            continue
        (value,) = [a for a in delta.args if a != variable] or [variable]
        if value.has(variable):
            continue
        if value.free_symbols & (inner - {variable}):
            return None
        within = (sp.GreaterThan(value, lower), sp.LessThan(value, upper))
        if not all(r == sp.true or relation_holds(r) is True for r in within):
            return None
        rest = sp.Mul(*factors[:position], *factors[position + 1 :])
        return _substituted_where_free(rest, variable, value)
    return None


def _substituted_where_free(expr: sp.Basic, variable: sp.Basic, value: sp.Basic) -> sp.Basic:
    """``expr`` with ``variable`` replaced by ``value`` where it is free: not inside an inner
    sum or product that binds a variable of the same name (Π_n over the hidden units)."""
    if expr == variable:
        return value
    if not expr.args or isinstance(expr, (Idx, sp.IndexedBase)):
        return expr
    if isinstance(expr, (Sum, sp.Product)) and any(v == variable for v, *_ in expr.limits):
        bounds = [b for _, *ends in expr.limits for b in ends]
        if any(sp.sympify(b).has(variable) for b in bounds):
            raise StepFailed(f"a sum's range mentions the variable it is bound by: {expr}")
        return expr
    args = tuple(_substituted_where_free(a, variable, value) for a in expr.args)
    return expr if args == expr.args else expr.func(*args)


def _canonical_variables(expr: sp.Basic) -> sp.Basic:
    """Each sum's variable named after what it sums: Σ_c w_c y_c and Σ_r w_r y_r become one term.

    Innermost sums first; the name is a hash of the sum's range and its function with the
    variable blanked out, so two sums equal up to their variable's name get the same one.
    """

    def rename(total: Sum) -> sp.Expr:
        if len(total.limits) > 1:
            return total
        ((variable, lower, upper),) = total.limits
        blank = total.function.xreplace({variable: _BLANK})
        key = hashlib.sha1(sp.srepr((blank, lower, upper)).encode()).hexdigest()[:8]
        label = sp.Symbol(f"_s{key}", integer=True)
        new = Idx(label, (lower, upper)) if isinstance(variable, Idx) else label
        return Sum(total.function.xreplace({variable: new}), (new, lower, upper))

    return expr.replace(lambda e: isinstance(e, Sum), rename)


_BLANK = sp.Symbol("_blank", integer=True)


def _vanishes(expr: sp.Expr) -> bool:
    if is_zero(expr, thorough=False):
        return True
    deltas = [d for d in expr.atoms(sp.KroneckerDelta) if all(isinstance(a, Idx) for a in d.args)]
    if deltas:  # δ_ij S_j = δ_ij S_i: split on the delta's two cases
        first, second = deltas[0].args
        equal = expr.xreplace({deltas[0]: sp.Integer(1)}).xreplace({second: first})
        different = expr.xreplace({deltas[0]: sp.Integer(0)})
        return _vanishes(equal) and _vanishes(different)
    return False


def _instances(claim: Claim, sizes: dict[str, int], limit: int = 0):
    """Each assignment of the claim's free indices (a fixed sample of ``limit`` past it)."""
    limit = limit or MAX_INDEX_VALUES
    numbers = {sp.Symbol(k, integer=True, positive=True): sp.Integer(v) for k, v in sizes.items()}
    free = _free_indices(claim.lhs) + [
        i for i in _free_indices(claim.rhs) if i not in _free_indices(claim.lhs)
    ]
    ranges = []
    for i in free:
        upper = i.upper.xreplace(numbers) if i.upper is not None else None
        if upper is None or not upper.is_Integer:
            raise StepFailed(f"index {i} has no size among {sizes}")
        ranges.append(range(int(i.lower), int(upper) + 1))
    assignments = list(product(*ranges))
    if len(assignments) > limit:
        assignments = random.Random(0).sample(assignments, limit)
    for values in assignments:
        yield numbers, dict(zip(free, map(sp.Integer, values)))


def _for_each_value(given: sp.Basic, claim: Claim, sized: dict, numbers: dict) -> list[dict]:
    """The substitutions a given is instantiated with: once, or once per value of an index
    it has that the claim's sides do not (Σ_t y_bt = 1 for every sample b of a batch)."""
    own = set(_free_indices(claim.lhs)) | set(_free_indices(claim.rhs))
    extra = [i for i in _free_indices(given) if i not in own]
    if not extra:
        return [sized]
    ranges = [range(int(i.lower), int(i.upper.xreplace(numbers)) + 1) for i in extra]
    return [{**sized, **dict(zip(extra, map(sp.Integer, v)))} for v in product(*ranges)]


def _from_zero(expr: sp.Basic) -> sp.Basic:
    """An entry shown as (M)_{ij} counts from 1, as the indices do; SymPy's entries from 0."""
    return expr.replace(
        lambda e: isinstance(e, MatrixElement), lambda e: e.parent[e.i - 1, e.j - 1]
    )


def _explicit_matrix(expr: sp.Basic, numbers: dict) -> sp.Basic:
    """Matrix symbols as matrices of the same-named indexed entries: S (C × 1) -> (S_1, ..., S_C)."""

    def entries(symbol: sp.MatrixSymbol) -> sp.Matrix:
        rows, columns = (int(sp.sympify(n).xreplace(numbers)) for n in symbol.shape)
        base = sp.IndexedBase(symbol.name)
        if columns == 1:
            return sp.ImmutableMatrix(rows, 1, lambda r, _: base[r + 1])
        return sp.ImmutableMatrix(rows, columns, lambda r, c: base[r + 1, c + 1])

    symbols = {s: entries(s) for s in expr.atoms(sp.MatrixSymbol)}
    if not symbols:
        return expr

    def element(e: MatrixElement) -> sp.Expr:
        parent = sp.Matrix(e.parent.xreplace(symbols).doit())
        return parent[int(e.i), int(e.j)]

    expr = expr.replace(lambda e: isinstance(e, MatrixElement), element).xreplace(symbols)
    # Products of explicit matrices multiply out at once; entry by entry, the
    # unevaluated product sums each entry symbolically (x xᵀ ⊗ (diag S − S Sᵀ):
    # 0.5 s against 0.03 s at D = 2, C = 3).
    return expr.doit() if isinstance(expr, MatrixExpr) else expr


def _instantiate(claim: Claim, numbers: dict, values: dict, outside: bool = True) -> tuple:
    """The claim's sides, given and relations at explicit sizes and index values.

    Written out once per size with the free indices still symbols (a derivative
    by z_j at C = 3 gives δ_1j, δ_2j, δ_3j), then each index value substituted:
    most of the work is done once, not once per value. A matrix entry (``entry``,
    or (M)_{ij} on a side) needs the values first.
    """
    if claim.lhs.has(MatrixElement) or claim.rhs.has(MatrixElement):
        return _written(claim, numbers, values, outside)
    key = (id(claim), outside, tuple(sorted(numbers.items(), key=str)))
    if key not in _WRITTEN or _WRITTEN[key][0] is not claim:
        _WRITTEN.clear()  # one claim's sizes at a time: no memory kept across claims
        _WRITTEN[key] = (claim, _written(claim, numbers, {}, outside))
    sized = {i.xreplace(numbers): v for i, v in values.items()}

    def at(expr):
        expr = expr.xreplace(sized)
        return written_sums(expr) if expr.has(Sum, Derivative) else expr

    lhs, rhs, given, relations = _WRITTEN[key][1]
    if claim.entry:  # the whole matrix was written once; this value's entry of it
        rhs = _entry_at(claim, rhs, values, numbers)
    return (
        at(lhs),
        at(rhs),
        [(at(a), at(b)) for a, b in given],
        [at(r) for r in relations],
    )


_WRITTEN: dict = {}


def _written(claim: Claim, numbers: dict, values: dict, outside: bool = True) -> tuple:
    """The claim written out at explicit sizes (and index values, where given)."""
    sized = {**values, **numbers}
    where = [(n.xreplace(numbers), v.xreplace(numbers)) for n, v in claim.where]
    write = WrittenOut(where, explicit=True, outside=outside)
    sides = []
    for side in (claim.lhs, claim.rhs):
        side = _from_zero(side).xreplace(sized)
        side = _explicit_matrix(side, numbers)
        side = written_sums(write(side))
        if isinstance(side, sp.MatrixBase):  # doit leaves a matrix's entries as they were
            side = side.applyfunc(written_sums)
        sides.append(side)
    lhs, rhs = sides
    if claim.entry and values:
        rhs = _entry_at(claim, rhs, values, numbers)
    pairs, relations = _given_pairs(claim)
    given = [
        (written_sums(write(_explicit_matrix(a.xreplace(every), numbers))), b.xreplace(every))
        for a, b in pairs
        for every in _for_each_value(a, claim, sized, numbers)
    ]
    relations = [written_sums(write(r.xreplace(sized))) for r in relations]
    return lhs, rhs, given, relations


def _entry_at(claim: Claim, matrix: sp.Basic, values: dict, numbers: dict) -> sp.Expr:
    """The entry of an ``entry`` claim's matrix side at the free indices' ``values``."""
    rows, columns = claim.entry
    row, column = _flat(rows, values, numbers), _flat(columns, values, numbers)
    return written_sums(sp.Matrix(matrix)[row, column])


def _flat(indices: tuple, values: dict, numbers: dict) -> int:
    """Row-major position of ``indices`` (1-based values) in a matrix of their ranges."""
    position = 0
    for i in indices:
        size = int(i.upper.xreplace(numbers))
        position = position * size + int(values[i]) - 1
    return position


def _solve_given(given: list[tuple]) -> dict:
    """Each equality of ``given`` solved for one of its unknowns: Σ y = 1 as y_C = 1 − Σ others.

    The same givens come back for each value of a claim's free indices (Σ_t y_bt = 1 has
    none of them): solved once, the last solution kept.
    """
    key = tuple(given)
    if _SOLVED.get("key") != key:
        _SOLVED.update(key=key, solved=_solved(given))
    return _SOLVED["solved"]


_SOLVED: dict = {}


def _solved(given: list[tuple]) -> dict:
    solved = {}
    for lhs, rhs in given:
        equation = (lhs - rhs).xreplace(solved)
        if not equation.has(sp.log, sp.Abs, sp.Max, sp.Piecewise):
            equation = sp.cancel(sp.together(equation))  # Σ S = 1 with S written out: 0
        unknowns = sorted(
            equation.atoms(Indexed) | (equation.free_symbols - equation.atoms(Idx)),
            key=sp.default_sort_key,
        )
        if not unknowns:
            if sp.simplify(equation) != 0:
                raise StepFailed(f"the given {lhs} = {rhs} cannot hold")
            continue
        unknown = unknowns[-1]
        (solution,) = sp.solve(equation, unknown, dict=False) or [None]
        if solution is None:
            raise StepFailed(f"cannot solve the given {lhs} = {rhs} for {unknown}")
        solved = {k: v.xreplace({unknown: solution}) for k, v in solved.items()}
        solved[unknown] = solution
    return solved


def _differences(lhs, rhs) -> list[sp.Expr]:
    difference = lhs - rhs
    if isinstance(difference, (sp.MatrixBase, MatrixExpr)):
        return list(sp.Matrix(difference))
    return [difference]


def _as_rational(entry: sp.Expr) -> sp.Expr:
    """The entry with its exponentials as powers of positive symbols, where that is exact."""
    rational = exponentials_as_monomials(sp.Matrix([entry]))
    return entry if rational is None else rational[0]


def _near_zero_at_a_point(entry: sp.Expr) -> bool:
    """A quick look before the exact test: the entry at one random point, to 30 digits.

    A difference that is not 0 nearly always shows it here, in milliseconds, where
    putting it over one denominator can take minutes; one that is 0 goes on to the
    exact test, which alone decides.
    """
    rng = random.Random(0)
    unknowns = _unknowns([entry])
    point = {u: sp.Float(_draw(u, rng, "positive"), 30) for u in unknowns}
    value = sp.N(entry.xreplace(point), 30)
    return not value.is_number or abs(value) < sp.Float(10) ** -20


def _is_zero_exactly(entry: sp.Expr) -> bool:
    """Whether ``entry`` is 0 as a rational function (of its exponentials' monomials).

    The ring's numerator first (fast, whatever the answer), with each exponential taken as
    an unknown of its own (0 for every value of them is 0 for theirs), then with the
    exponentials as monomials (e^{a−b} = E_a/E_b); where it is not 0, the
    quick look at a point, and only then ``together``, which can take minutes on a
    difference that is not 0.
    """
    if numerator_is_zero(entry):  # each exponential its own unknown: most entries are 0 so
        return True
    rational = _as_rational(entry)
    if numerator_is_zero(rational):
        return True
    return _near_zero_at_a_point(entry) and is_zero_rational(rational)


def check_explicit(claim: Claim, outside: bool = True) -> None:
    for sizes in claim.sizes:
        for numbers, values in _instances(claim, sizes):
            lhs, rhs, given, relations = _instantiate(claim, numbers, values, outside)
            if relations:
                raise StepFailed(
                    f"relations {relations} are used only by a numeric check (checked='numeric')"
                )
            solved = _solve_given(given)
            for entry in _differences(lhs, rhs):
                entry = entry.xreplace(solved)
                if not _is_zero_exactly(entry):
                    where = ", ".join(f"{k}={v}" for k, v in values.items())
                    raise StepFailed(
                        f"at {_describe(sizes)}{', ' + where if where else ''} the sides differ: "
                        f"{sp.sstr(lhs)[:200]} against {sp.sstr(rhs)[:200]}"
                    )


def _unknowns(expressions) -> list[sp.Basic]:
    """The numbers a point must give: indexed entries (S_1, W_12) and plain symbols (σ, T)."""
    found = set()
    for expr in expressions:
        entries = expr.atoms(Indexed)
        labels = {i.base.label for i in entries}
        found |= entries
        found |= {
            s
            for s in expr.free_symbols
            if not isinstance(s, (Idx, sp.IndexedBase, Indexed)) and s not in labels
        }
    found = {f for f in found if not (isinstance(f, sp.Symbol) and f.is_integer)}
    return sorted(found, key=sp.default_sort_key)


MODES = ("positive", "negative", "wide", "wide")
"""Where each numeric point's values are drawn: all in (0.05, 0.95) (probabilities and labels
fit); all in (−0.95, −0.05); any in (−2, 2) (a symbol declared positive stays positive)."""


def _draw(symbol: sp.Basic, rng: random.Random, mode: str) -> sp.Rational:
    positive = isinstance(symbol, sp.Symbol) and symbol.is_positive
    if mode == "wide" and not positive:
        return sp.Rational(rng.choice((-1, 1)) * rng.randint(50, 2000), 1000)
    sign = -1 if mode == "negative" and not positive else 1
    return sp.Rational(sign * rng.randint(50, 950), 1000)


def check_numeric(claim: Claim, outside: bool = True) -> None:
    """Compare the two sides at random points (one per mode whose draws satisfy the relations)."""
    rng = random.Random(f"{claim.page}:{claim.number}")
    for sizes in claim.sizes:
        for numbers, values in _instances(claim, sizes, NUMERIC_INDEX_VALUES):
            lhs, rhs, given, relations = _instantiate(claim, numbers, values, outside)
            solved = _solve_given(given)
            differences = [d.xreplace(solved) for d in _differences(lhs, rhs)]
            relations = [r.xreplace(solved) for r in relations]
            unknowns = _unknowns([*differences, *relations])
            taken = 0
            for mode in MODES:
                for _ in range(50):
                    point = {u: _draw(u, rng, mode) for u in unknowns}
                    if all(bool(r.xreplace(point)) for r in relations):
                        _compare_at(sizes, values, differences, lhs, point)
                        taken += 1
                        break
            if taken < 2:
                raise StepFailed(f"fewer than two points found where {relations} hold")


def _compare_at(sizes, values, differences, lhs, point) -> None:
    """Both sides at ``point`` (exact rationals, evaluated with DIGITS digits) agree."""
    point = {u: sp.Float(v, DIGITS) for u, v in point.items()}
    sides = lhs if isinstance(lhs, sp.MatrixBase) else [lhs]
    scale = max(
        [1, *(abs(v) for v in (sp.N(e.xreplace(point), DIGITS) for e in sides) if v.is_number)]
    )
    for difference in differences:
        value = sp.N(difference.xreplace(point), DIGITS)
        if not value.is_number:
            leftover = sorted(map(str, value.free_symbols | value.atoms(AppliedUndef)))
            raise StepFailed(
                f"cannot evaluate: {', '.join(leftover) or sp.sstr(value)[:200]} has no value "
                "(give it a meaning in the step's where)"
            )
        if abs(value) > TOLERANCE * scale:
            where = ", ".join(f"{k}={v}" for k, v in values.items())
            shown = ", ".join(f"{k}={sp.N(v, 4)}" for k, v in list(point.items())[:8])
            raise StepFailed(
                f"at {_describe(sizes)}{', ' + where if where else ''}, {shown}: "
                f"the sides differ by {sp.N(value, 6)}"
            )


def _describe(sizes: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items()) or "no size"


METHODS = {"symbolic": check_symbolic, "explicit": check_explicit, "numeric": check_numeric}


def _holds_for_any_meaning(claim: Claim) -> bool:
    """Whether the claim holds with the names outside its derivatives left free.

    Then it holds for their meanings too (an identity for every value holds for
    one), and most steps that rearrange S_i, y_i or δ₁ need not write the
    network out. Inside a derivative every name is written out: ∂XE/∂z_j is 0
    for a free XE.
    """
    if not claim.where:
        return False
    try:
        METHODS[claim.checked](claim, outside=False)
    except Exception:  # any failure: check with the meanings written out
        return False
    return True


def _defined_beside_a_derivative(claim: Claim) -> bool:
    """Whether a side differentiates and a defined name stands outside every derivative.

    Written out, the derivative is in the inputs (z, W, x) while the name (S, δ₂)
    stays free: such a claim rarely holds for any meaning of its names, so the
    written-out check goes first and the free one is only the fallback.
    """
    if not (claim.lhs.has(Derivative) or claim.rhs.has(Derivative)):
        return False
    heads = {_head(name) for name, _ in claim.where}

    def beside(expr: sp.Basic) -> bool:
        if isinstance(expr, Derivative):
            return False
        if (is_name(expr) or isinstance(expr, Indexed)) and _head(expr) in heads:
            return True
        return any(beside(a) for a in expr.args)

    return beside(claim.lhs) or beside(claim.rhs)


def _check_by_method(claim: Claim) -> None:
    """The declared method, with the names free first (cheap, sound) or last."""
    if not _defined_beside_a_derivative(claim):
        if not _holds_for_any_meaning(claim):
            METHODS[claim.checked](claim)
        return
    try:
        METHODS[claim.checked](claim)
    except Exception:
        if not _holds_for_any_meaning(claim):
            raise


def check(claim: Claim, every_size: bool = False) -> ClaimCheck:
    """Check ``claim`` by its declared method; raise StepFailed naming the page and step.

    A build checks the first of the claim's explicit sizes, the test suite
    (``every_size``) each of them, as for the identities (derive.proofs.build_sizes).
    """
    start = time.perf_counter()
    if not every_size:
        claim = replace(claim, sizes=claim.sizes[:1])
    try:
        _check_by_method(claim)
    except StepFailed as failure:
        raise StepFailed(f"{_which(claim)}, checked {claim.checked}: {failure}") from None
    except Exception as error:  # SymPy raising on the way: the step cannot be checked so
        raise StepFailed(
            f"{_which(claim)}, checked {claim.checked}: "
            f"SymPy raised {type(error).__name__}: {error}"
        ) from error
    return ClaimCheck(
        claim.page,
        claim.number,
        claim.checked,
        () if claim.checked == "symbolic" else claim.sizes,
        time.perf_counter() - start,
    )


def _which(claim: Claim) -> str:
    """The page and step a message names (and the step's title, unless it was left out)."""
    title = f" ({claim.title!r})" if claim.title else ""
    return f"{claim.page}, step {claim.number}{title}"


def untitled(claim: Claim) -> Claim:
    """``claim`` without its title, which its check reads only for its messages: a build
    checks this, so that an edit of a step's title checks nothing again (derive.cache)."""
    return replace(claim, title="")


def check_chain(derivation: Derivation) -> None:
    """Each step starts where the previous one ended, or says where it starts."""
    steps = derivation.steps
    for number, step in enumerate(steps, 1):
        if step.start is None:
            if number > 1 and step.expression != steps[number - 2].result:
                raise StepFailed(
                    f"{derivation.name}, step {number} ({step.title!r}): its left side is not "
                    f"step {number - 1}'s result; say where it starts (Step.start)"
                )
        elif isinstance(step.start, int):
            if not 1 <= step.start < number:
                raise StepFailed(
                    f"{derivation.name}, step {number}: start={step.start} is not an earlier step"
                )
            if step.expression != steps[step.start - 1].result:
                raise StepFailed(
                    f"{derivation.name}, step {number} ({step.title!r}): its left side is not "
                    f"step {step.start}'s result, where it says it starts"
                )


def try_methods(claim: Claim) -> dict[str, str]:
    """Each method's outcome for ``claim``: "holds", or why not (``python -m derive steps --try``)."""
    outcomes = {}
    for method in METHODS:
        try:
            check(replace(claim, checked=method))
            outcomes[method] = "holds"
        except StepFailed as failure:
            outcomes[method] = str(failure).split(f"checked {method}: ", 1)[-1][:400]
    return outcomes


def method_text(claim: Claim) -> str:
    """What the build does to check ``claim``, in words, for its page."""
    if claim.checked == "symbolic":
        return "Checked symbolically: SymPy writes both sides out and cancels them, for every size."
    first, *rest = [_describe(s) for s in claim.sizes if s] or [""]
    suite = f" (the test suite also at {' and '.join(rest)})" if rest else ""
    if claim.checked == "explicit":
        if not first:
            return "Checked exactly: SymPy writes both sides out and finds them equal."
        return (
            f"Checked exactly at {first}{suite}, at every index value (a fixed sample of "
            f"{MAX_INDEX_VALUES} where there are more): SymPy does not cancel it for symbolic sizes."
        )
    at = f" at {first}{suite}" if first else ""
    return (
        f"Checked numerically: both sides at random points of both signs{at}, to {DIGITS} "
        "digits; SymPy does not decide it exactly."
    )


def catalogue_entry(claim: Claim) -> dict:
    """One object of ``python -m derive steps --json``."""
    srepr = sp.srepr
    return {
        "page": claim.page,
        "number": claim.number,
        "title": claim.title,
        "relation": claim.relation,
        "lhs": srepr(claim.lhs),
        "rhs": srepr(claim.rhs),
        "where": [[srepr(n), srepr(v)] for n, v in claim.where],
        "given": [
            [srepr(g[0]), srepr(g[1])] if isinstance(g, tuple) else srepr(g) for g in claim.given
        ],
        "entry": [[srepr(i) for i in part] for part in claim.entry],
        "checked": claim.checked,
        "sizes": [] if claim.checked == "symbolic" else [dict(s) for s in claim.sizes],
    }
