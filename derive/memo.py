"""What a build made from one derivation, kept for the next build of the same process.

Under ``mkdocs serve`` one process builds after every edit (derive.warm), and a
derivation whose module did not change is the same object from one build to the
next (derive.cache hands it back). What is made from that object and from inputs
that did not change either (its generated module's text, its page's text, its
notation checked) is then the same as last time: ``made`` returns it instead of
making it again, so an edit renders only the derivations it changed and those
using their results (derived again: new objects). A fresh process (``python -m
derive build``) has nothing kept and makes everything.

The rest of what a value is made from (the other modules' names, the templates'
text, the generated code) goes into its ``inputs``; the engine's code does not: an
edit to it makes derive.warm start a fresh process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# (what, derivation name) -> (the derivation object or None, the inputs, the value): one per
# name, so a long-lived process keeps only the latest of each
_kept: dict[tuple[str, str], tuple[object, object, object]] = {}


def made(what: str, derivation, inputs: object, make: Callable[[], T]) -> T:
    """``make()``, or its value from an earlier call with this same ``derivation`` object and
    equal ``inputs``. A ``make`` that raises keeps nothing."""
    return _kept_or_made((what, derivation.name), derivation, inputs, make)


def made_from(what: str, name: str, inputs: object, make: Callable[[], T]) -> T:
    """``make()``, or its value from an earlier call for ``name`` with equal ``inputs``: for
    what is made from a few parts of a derivation (compared by value), which an edit to the
    rest (a step's prose) leaves equal though the derivation is a new object."""
    return _kept_or_made((what, name), None, inputs, make)


def _kept_or_made(key: tuple[str, str], owner, inputs: object, make: Callable[[], T]) -> T:
    """The value kept under ``key`` if it was made for this same ``owner`` object (None: for
    none) from equal ``inputs``; else ``make()``, kept in its place."""
    found = _kept.get(key)
    if found is not None and found[0] is owner and found[1] == inputs:
        return found[2]
    value = make()
    _kept[key] = (owner, inputs, value)
    return value
