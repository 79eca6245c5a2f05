"""Proofs: SymPy shows every shortcut equal to its long chain-rule product.

Twice: in index form, for symbolic sizes, and with explicit matrices for every
size in ``EXPLICIT_SIZES``. ``python -m derive build`` fails unless all hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sympy as sp

from derive.steps import Identity
from derive.sympy_tools import evaluate, is_zero, pull_out_of_sums

# (D inputs, C classes): every C in 2..6 with every D in 1..4.
EXPLICIT_SIZES = tuple((d, c) for c in range(2, 7) for d in range(1, 5))


class ProofFailed(AssertionError):
    """A shortcut that SymPy could not show equal to its chain-rule product."""


@dataclass(frozen=True)
class ProofResult:
    """What was proved, how, and what it needed."""

    identity: str
    claim: str
    index_form: bool  # proved for symbolic sizes
    explicit_sizes: tuple[tuple[int, int], ...]  # (D, C) checked with matrices
    assumptions_used: tuple[str, ...]  # e.g. ("Sum(y[t], (t, 1, C)) = 1",)
    seconds: float


def prove_index_form(identity: Identity) -> tuple[str, ...]:
    """Show ``identity.long == identity.shortcut`` for symbolic sizes.

    Returns the assumptions the proof needed (empty if none); raises
    ProofFailed with the residual if the difference does not simplify to 0.
    """
    evaluated = pull_out_of_sums(evaluate(identity.long))
    if is_zero(evaluated - identity.shortcut):
        return ()
    assumed = evaluated.xreplace(identity.assumptions)
    residual = sp.simplify(sp.expand(assumed - identity.shortcut))
    if residual != 0:
        raise ProofFailed(
            f"{identity.name}: in index form, long - shortcut = {residual}, not 0"
        )
    return tuple(f"{lhs} = {rhs}" for lhs, rhs in identity.assumptions.items())


def as_rational_in_exponentials(matrix: sp.Matrix) -> sp.Matrix:
    """Write each variable z inside an exponential as log(e^z), e^z > 0.

    A change of variables that turns every e^{±z}, e^{2z} into a power of one
    positive symbol: the entries become rational functions, which ``cancel``
    decides quickly (far faster than simplifying exponentials).
    """
    variables = {s for e in matrix.atoms(sp.exp) for s in e.args[0].free_symbols}
    return matrix.subs(
        {v: sp.log(sp.Symbol(f"exp_{v}", positive=True)) for v in variables}
    )


def prove_explicit(identity: Identity, n_inputs: int, n_classes: int) -> None:
    """Show the identity with explicit matrices for D inputs and C classes."""
    long, shortcut = identity.explicit(n_inputs, n_classes)
    if long.shape != shortcut.shape:
        raise ProofFailed(
            f"{identity.name}: for D={n_inputs}, C={n_classes} the long form has shape "
            f"{long.shape}, the shortcut {shortcut.shape}"
        )
    difference = as_rational_in_exponentials(long - shortcut)
    for position, entry in enumerate(difference):
        if sp.cancel(entry) != 0:
            a, b = long[position], shortcut[position]
            row, column = divmod(position, long.shape[1])
            raise ProofFailed(
                f"{identity.name}: for D={n_inputs}, C={n_classes} entry [{row}, {column}] "
                f"differs: long = {a}, shortcut = {b}"
            )


def explicit_sizes(identity: Identity) -> tuple[tuple[int, int], ...]:
    """The (D, C) sizes at which ``identity`` is checked with explicit matrices."""
    if identity.explicit is None:
        return ()
    return identity.explicit_sizes if identity.explicit_sizes is not None else EXPLICIT_SIZES


def prove(identity: Identity, sizes=None) -> ProofResult:
    """Run both proofs of ``identity`` (explicit ones at ``sizes``, default its own)."""
    start = time.perf_counter()
    assumptions = prove_index_form(identity)
    checked = []
    if identity.explicit is not None:
        for n_inputs, n_classes in sizes if sizes is not None else explicit_sizes(identity):
            prove_explicit(identity, n_inputs, n_classes)
            checked.append((n_inputs, n_classes))
    return ProofResult(
        identity=identity.name,
        claim=identity.claim,
        index_form=True,
        explicit_sizes=tuple(checked),
        assumptions_used=assumptions,
        seconds=time.perf_counter() - start,
    )
