"""The registry: every derivation, in the order of the posts.

A new derivation is one module in this folder with a ``derive()`` function
returning a :class:`~derive.steps.Derivation`, added to ``MODULES`` below. Its
page, its generated module and its tests follow from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module

from derive.steps import Derivation

MODULES = (
    "softmax_jacobian",  # Part 1
    "layer_jacobian",  # Part 2
    "cross_entropy",  # Part 3
    "cross_entropy_from_logits",  # beyond the posts: the stable loss
)


def builder(name: str) -> Callable[[], Derivation]:
    """The ``derive`` function of the derivation ``name``."""
    if name not in MODULES:
        raise KeyError(f"unknown derivation {name!r}; known: {', '.join(MODULES)}")
    return import_module(f"{__name__}.{name}").derive


@cache
def get(name: str) -> Derivation:
    """The derivation ``name``, derived once per process."""
    derivation = builder(name)()
    if derivation.name != name:
        raise ValueError(f"module {name} returned a derivation named {derivation.name!r}")
    unknown = [u for u in derivation.uses if u not in MODULES[: MODULES.index(name)]]
    if unknown:
        raise ValueError(f"{name} uses {unknown}: they must be registered before it")
    return derivation
