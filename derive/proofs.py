"""Proofs: SymPy shows every shortcut equal to its long chain-rule product.

Twice: in index form, for symbolic sizes, and with explicit matrices at every
size the identity lists (a map of the dimensions it has: ``{"D": 2, "C": 3}``).
``python -m derive build`` fails unless all hold.

A composed derivative is proved as a product of named, already-proved
results (SymPy cannot cancel exp(Σ…) once written out); its explicit form
writes out the whole composition, so the explicit check covers the chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp
from sympy.polys.rings import ring as polynomial_ring

from derive.steps import Exercise, Identity, Sizes
from derive.sympy_tools import (
    apply_assumptions,
    combine_sums,
    evaluate,
    is_zero,
    is_zero_in_every_case,
    pull_out_of_sums,
)


class ProofFailed(AssertionError):
    """A shortcut that SymPy could not show equal to its chain-rule product."""


@dataclass(frozen=True)
class ProofResult:
    """What was proved, how, and what it needed."""

    identity: str
    claim: str
    index_form: bool  # proved for symbolic sizes
    explicit_sizes: tuple[Sizes, ...]  # the sizes checked with matrices
    assumptions_used: tuple[str, ...]  # e.g. ("Sum(y[t], (t, 1, C)) = 1",)
    seconds: float


def index_form_moves(identity: Identity) -> list[str]:
    """What ``prove_index_form`` does to ``identity``, in words, read from the expressions it works on.

    The same tests the prover's code makes: a Piecewise is folded into one
    sum; sums and derivatives are evaluated (``doit``), and a Kronecker delta
    inside a sum, or one a derivative by an indexed entry makes, leaves one
    term. (The assumptions it substitutes are listed by the page beside these.)
    """
    long = identity.long
    moves = []
    if long.has(sp.Piecewise):
        moves.append("folds the two branches of the selection into one sum")
    derivatives = long.atoms(sp.Derivative)
    if derivatives:
        moves.append("takes the derivatives")
    in_sums = any(
        total.function.has(sp.KroneckerDelta) or total.function.has(sp.Derivative)
        for total in long.atoms(sp.Sum)
    )
    by_entries = any(isinstance(v, sp.Indexed) for d in derivatives for v, _ in d.variable_count)
    if in_sums or by_entries and long.has(sp.Sum):
        moves.append("collapses each sum over a Kronecker delta to its one surviving term")
    elif long.has(sp.Sum):
        moves.append("moves the factors that do not depend on a sum's index out of it")
    return moves


def prove_index_form(identity: Identity) -> tuple[str, ...]:
    """Show ``identity.long == identity.shortcut`` for symbolic sizes.

    Returns the assumptions the proof needed (empty if none); raises
    ProofFailed with the residual if the difference does not simplify to 0.
    An identity with assumptions is first tried without them by the quick
    tests only (``simplify`` spends most of its time failing on a difference
    that is not 0); one that needs ``simplify`` to hold without them is
    reported as using them, which the proof then did.
    """
    if identity.long == identity.shortcut:
        raise ProofFailed(f"{identity.name}: both sides are the same expression: nothing to prove")
    long = identity.long
    if long.has(sp.Piecewise):  # a selection (xp.where) split over two sums: fold them into one
        long = combine_sums(sp.expand_func(long))
    evaluated = pull_out_of_sums(evaluate(long))
    if is_zero(evaluated - identity.shortcut, thorough=not identity.assumptions):
        return ()
    difference = sp.expand(apply_assumptions(evaluated, identity.assumptions) - identity.shortcut)
    if is_zero(difference, thorough=False):
        return tuple(f"{lhs} = {rhs}" for lhs, rhs in identity.assumptions.items())
    residual = sp.simplify(difference)
    if residual != 0 and not is_zero_in_every_case(residual):
        raise ProofFailed(f"{identity.name}: in index form, long - shortcut = {residual}, not 0")
    return tuple(f"{lhs} = {rhs}" for lhs, rhs in identity.assumptions.items())


def as_rational_in_exponentials(matrix: sp.Matrix) -> sp.Matrix:
    """Write each variable z inside an exponential as log(e^z), e^z > 0.

    A change of variables that turns every e^{±z}, e^{2z} into a power of one
    positive symbol: the entries become rational functions, which ``cancel``
    decides quickly (far faster than simplifying exponentials).
    """
    variables = {s for e in matrix.atoms(sp.exp) for s in e.args[0].free_symbols}
    return matrix.subs({v: sp.log(sp.Symbol(f"exp_{v}", positive=True)) for v in variables})


def exponentials_as_monomials(matrix: sp.Matrix) -> sp.Matrix | None:
    """The same change of variables, done directly: e^{2z - w} becomes E_z² / E_w.

    Each exponent a rational combination of monomials (the logits of a softmax,
    z_1 - z_2, or W_11 x_1 + W_21 x_2 written out), one positive symbol per
    monomial: then the entries are rational functions of those symbols, and one
    that is 0 for every value of them is 0 at E = e^{monomial}. None if an
    exponent holds anything else (a log, |z|). A substitution by ``xreplace``
    instead of ``subs`` (no log to evaluate away), several times faster.
    """
    powers, replaced = {}, {}
    for power in matrix.atoms(sp.exp):
        constant, terms = sp.expand(power.args[0]).as_coeff_add()
        monomial = sp.exp(constant)
        for term in terms:
            coefficient, variable = term.as_coeff_Mul()
            if not coefficient.is_Rational or variable.has(sp.exp, sp.log, sp.Abs, sp.Max):
                return None
            if variable not in powers:
                powers[variable] = sp.Symbol(f"exp_{variable}", positive=True)
            base = powers[variable]
            monomial *= base**coefficient
        replaced[power] = monomial
    return matrix.xreplace(replaced)


def is_zero_rational(entry: sp.Expr) -> bool:
    """Whether a rational function is identically 0: its numerator, expanded, is.

    The numerator is computed in a polynomial ring (``_numerator``), each
    denominator kept as the product of the factors it was written with, so no
    greatest common divisor is ever taken: several times faster than SymPy's
    ``together``. A numerator that is not 0 there is looked at again by
    ``together`` (the old way), so only the time changes, never the answer.
    """
    if numerator_is_zero(entry):
        return True
    numerator, _ = sp.together(entry).as_numer_denom()
    return sp.expand(numerator) == 0


def vanishes(expr: sp.Expr) -> bool:
    """Whether ``expr`` is identically 0, as ``simplify(expr) == 0`` says, or shown faster.

    First as a rational function of its exponentials' monomials, by the polynomial
    ring's numerator: exact, and a numerator of 0 there is 0 for every value. Only
    an ``expr`` the ring does not show 0 goes to ``simplify`` (an exercise's check
    that a wrong answer fails is decided there, as before).
    """
    rational = exponentials_as_monomials(sp.Matrix([expr]))
    if rational is not None and numerator_is_zero(rational[0]):
        return True
    return sp.simplify(expr) == 0


def numerator_is_zero(entry: sp.Expr) -> bool:
    """The quick half of ``is_zero_rational``: True only if the ring's numerator is 0."""
    try:
        return _numerator(entry) == 0
    except (ValueError, ZeroDivisionError):  # a shape the ring does not take
        return False


def _numerator(entry: sp.Expr):
    """``entry`` times a common denominator, as a polynomial in the entry's atoms.

    Every part of ``entry`` that is not a sum, product, integer power or rational
    number is one generator (x_1, e^z as exp_z, tanh(u)); a sum over the least common
    multiple of its terms' denominators, each a product of factors counted with their
    powers. Treating dependent atoms as independent can only miss a zero, never make one.
    """
    atoms: dict = {}

    def collect(e: sp.Expr) -> None:
        if e.is_Add or e.is_Mul:
            for a in e.args:
                collect(a)
        elif e.is_Pow and e.exp.is_Integer:
            collect(e.base)
        elif not e.is_Rational:
            atoms.setdefault(e, None)

    collect(entry)
    ring, *generators = polynomial_ring([sp.Dummy() for _ in atoms] or [sp.Dummy()], sp.QQ)
    generator = dict(zip(atoms, generators))

    def product(factors: dict):
        result = ring.one
        for factor, power in factors.items():
            result *= factor**power
        return result

    def convert(e: sp.Expr) -> tuple:  # (numerator, {denominator factor: power})
        if e.is_Rational:
            return ring(e), {}
        if e in generator:
            return generator[e], {}
        if e.is_Add:
            parts = [convert(a) for a in e.args]
            common: dict = {}
            for _, factors in parts:
                for factor, power in factors.items():
                    common[factor] = max(power, common.get(factor, 0))
            total = ring.zero
            for numerator, factors in parts:
                missing = {f: p - factors.get(f, 0) for f, p in common.items()}
                total += numerator * product(missing)
            return total, common
        if e.is_Mul:
            total, common = ring.one, {}
            for a in e.args:
                numerator, factors = convert(a)
                total *= numerator
                for factor, power in factors.items():
                    common[factor] = common.get(factor, 0) + power
            return total, common
        if e.is_Pow:
            numerator, factors = convert(e.base)
            k = int(e.exp)
            if k >= 0:
                return numerator**k, {f: p * k for f, p in factors.items()}
            if numerator == 0:
                raise ZeroDivisionError(f"{e} divides by 0")
            inverted = product({f: -p * k for f, p in factors.items()})
            if numerator.is_ground:
                return inverted * ring(1 / numerator.LC) ** -k, {}
            return inverted, {numerator: -k}
        raise ValueError(f"not a rational function: {e}")

    return convert(entry)[0]


def describe(sizes: Sizes) -> str:
    """``{"D": 2, "C": 3}`` -> "D=2, C=3"."""
    return ", ".join(f"{name}={value}" for name, value in sizes.items())


def prove_explicit(identity: Identity, sizes: Sizes) -> None:
    """Show the identity with explicit matrices at the given sizes."""
    long, shortcut = identity.explicit(sizes)
    if long.shape != shortcut.shape:
        raise ProofFailed(
            f"{identity.name}: for {describe(sizes)} the long form has shape "
            f"{long.shape}, the shortcut {shortcut.shape}"
        )
    difference = long - shortcut
    rational = exponentials_as_monomials(difference)
    if rational is None:
        rational = as_rational_in_exponentials(difference)
    for position, entry in enumerate(rational):
        if not is_zero_rational(entry) and sp.cancel(entry) != 0:
            a, b = long[position], shortcut[position]
            row, column = divmod(position, long.shape[1])
            raise ProofFailed(
                f"{identity.name}: for {describe(sizes)} entry [{row}, {column}] "
                f"differs: long = {a}, shortcut = {b}"
            )


def explicit_sizes(identity: Identity) -> tuple[Sizes, ...]:
    """The sizes at which ``identity`` is checked with explicit matrices."""
    if identity.explicit is None:
        return ()
    if not identity.explicit_sizes:
        raise ValueError(
            f"{identity.name}: an explicit check needs explicit_sizes, e.g. every(C=range(2, 7))"
        )
    return identity.explicit_sizes


def build_sizes(identity: Identity) -> tuple[Sizes, ...]:
    """The explicit sizes every build checks: two of ``explicit_sizes``, the test suite all.

    The smallest size, and the first whose dimensions are all at least 2 and
    all different (so a transposed or mixed-up index cannot pass by symmetry),
    or, if none is, the largest. The index form already holds for every size;
    the explicit check confirms the chain, pieces included, and its larger
    sizes cost most of a cold build's proving time (``tests/test_proofs.py``
    checks every size in ``explicit_sizes``).
    """
    every_size = explicit_sizes(identity)
    if len(every_size) <= 2:
        return every_size
    first = every_size[0]
    varied = next(
        (s for s in every_size[1:] if min(s.values()) >= 2 and len(set(s.values())) == len(s)),
        every_size[-1],
    )
    return (first, varied)


def sizes_text(sizes: tuple[Sizes, ...]) -> str:
    """``every(C=range(2, 7), D=range(1, 5))`` -> "every C in 2..6 and D in 1..4 (20 sizes)"."""
    if not sizes:
        return ""
    names = list(dict.fromkeys(name for s in sizes for name in s))
    parts = []
    for name in names:
        values = sorted({s[name] for s in sizes if name in s})
        span = (
            f"{values[0]}..{values[-1]}"
            if values == list(range(values[0], values[-1] + 1))
            else ", ".join(map(str, values))
        )
        parts.append(f"{name} in {span}" if len(values) > 1 else f"{name} = {values[0]}")
    every = "every " if len(sizes) > 1 else ""
    return every + " and ".join(parts) + f" ({len(sizes)} size{'s' if len(sizes) > 1 else ''})"


def prove(identity: Identity, sizes: tuple[Sizes, ...] | None = None) -> ProofResult:
    """Run both proofs of ``identity`` (explicit ones at ``sizes``, default its own)."""
    start = time.perf_counter()
    assumptions = prove_index_form(identity)
    checked = []
    if identity.explicit is not None:
        for size in sizes if sizes is not None else explicit_sizes(identity):
            prove_explicit(identity, size)
            checked.append(dict(size))
    return ProofResult(
        identity=identity.name,
        claim=identity.claim,
        index_form=True,
        explicit_sizes=tuple(checked),
        assumptions_used=assumptions,
        seconds=time.perf_counter() - start,
    )


def prove_part(identity: Identity, sizes: Sizes | None) -> tuple[tuple[str, ...], float]:
    """One independent part of a proof: the index form (``sizes`` None), or one explicit size.

    Returns the assumptions used and the seconds taken; parts of many
    identities run side by side in worker processes (``derive.build``).
    """
    start = time.perf_counter()
    assumptions = prove_index_form(identity) if sizes is None else ()
    if sizes is not None:
        prove_explicit(identity, sizes)
    return assumptions, time.perf_counter() - start


def check_exercise(exercise: Exercise, every_size: bool = False) -> None:
    """Check an exercise's answer with SymPy; raise ProofFailed naming the exercise if it is wrong.

    An answer that is an identity is proved as the page's identities are: at
    its `build_sizes` in a build, at ``every_size`` in the test suite.
    """
    if isinstance(exercise.check, Identity):
        try:
            prove(exercise.check, None if every_size else build_sizes(exercise.check))
        except ProofFailed as failure:
            raise ProofFailed(
                f"exercise {exercise.name!r}: its answer is wrong: {failure}"
            ) from failure
        return
    if exercise.check(exercise.answer_expression) is not True:
        raise ProofFailed(
            f"exercise {exercise.name!r}: SymPy does not confirm the answer {exercise.answer_expression}"
        )
