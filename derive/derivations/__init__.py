"""The registry: every derivation, in the order the site lists them.

A new derivation is one module in this folder with a ``derive()`` function
returning a :class:`~derive.steps.Derivation`, or a ``FORWARD`` forward definition
(:class:`derive.forward.Forward`) that the engine differentiates step by step, added
to ``MODULES`` below. Its
page, its generated module and its tests follow from the registry.

Derivations use each other's results by name, ``result("softmax_jacobian",
"jacobian")``; the registry records each such use, so the dependency graph
(what to re-prove when a module changes, which generated module imports which)
comes from what the code does, not from a list kept by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import import_module
from pathlib import Path

import sympy as sp
from sympy.core.function import AppliedUndef

from derive import memo
from derive.steps import Derivation, Kernel

MODULES = (
    "softmax_jacobian",  # Part 1
    "layer_jacobian",  # Part 2
    "cross_entropy",  # Part 3
    "cross_entropy_options",  # PyTorch's options: weights, ignore_index, smoothing, reduction
    "cross_entropy_from_logits",  # beyond the posts: the stable loss
    "gradient_check",  # checking a gradient by finite differences (page only)
    "sigmoid",
    "tanh",
    "relu",
    "binary_cross_entropy",
    "mean_squared_error",
    "softmax_temperature",
    "log_softmax_jacobian",
    "second_order",  # beyond the posts: Hessians and Newton's method
    "softplus",
    "two_layer",  # a hidden layer: backpropagation, and the functions a training loop uses
    "silu",
    "gelu",
    "huber",
    "layer_norm",
)

GROUPS = {
    "one_layer": "One layer: from the logits to the gradient of the weights",
    "losses": "Losses",
    "activations": "Activations",
    "hidden_layer": "A hidden layer",
    "second_order": "Second order",
    "numerics": "Numerics: the same results, computed without overflow or cancellation",
}
"""What a learner wants, in the order the home page lists it; each derivation names its group
(``MatrixResult.group``)."""

START_HERE = (
    (
        "cross_entropy_from_logits",
        "the practical result first: the loss's gradient in the logits is $S - y$, "
        "and no Jacobian is ever formed",
    ),
    ("cross_entropy", "the weights' gradient over a batch, $X^T(S - Y)/B$, from the chain rule"),
    ("two_layer", "a hidden layer: backpropagation sends $S - Y$ back through $W_2$"),
    (
        "softmax_jacobian",
        "the Jacobian the shortcut never forms, $\\operatorname{diag}(S) - SS^T$, by the "
        "quotient rule",
    ),
    ("second_order", "curvature: the Hessian, Newton's method, and why one never inverts it"),
)
"""The path the home page suggests to a newcomer: (derivation, what it teaches)."""

FOLDER = Path(__file__).resolve().parent
if unknown := [n for n, _ in START_HERE if n not in MODULES]:
    raise KeyError(f"START_HERE names derivations that are not registered: {unknown}")

_derived: dict[str, Derivation] = {}  # derived once per process (or loaded from the build cache)
_deriving: list[str] = []  # the derivations being derived, innermost last
_results_used: dict[str, set[str]] = {}  # derivation -> derivations whose results it used


def builder(name: str) -> Callable[[], Derivation]:
    """The ``derive`` function of the derivation ``name``."""
    if name not in MODULES:
        raise KeyError(f"unknown derivation {name!r}; known: {', '.join(MODULES)}")
    module = import_module(f"{__name__}.{name}")
    if hasattr(module, "FORWARD"):  # a forward definition: the steps and kernels follow
        from derive.forward import derivation

        return lambda: derivation(module.FORWARD)
    if hasattr(module, "VECTOR_FORWARD"):  # the same, in index notation over the last axis
        from derive.forward import vector_derivation

        return lambda: vector_derivation(module.VECTOR_FORWARD)
    return module.derive


def get(name: str) -> Derivation:
    """The derivation ``name``, derived once per process."""
    if name in _derived:
        return _derived[name]
    if name in _deriving:
        cycle = " -> ".join([*_deriving[_deriving.index(name) :], name])
        raise RecursionError(f"derivations use each other in a cycle: {cycle}")
    _deriving.append(name)
    _results_used[name] = set()
    try:
        derivation = builder(name)()
    finally:
        _deriving.pop()
    if derivation.name != name:
        raise ValueError(f"module {name} returned a derivation named {derivation.name!r}")
    if derivation.matrix_result is not None and derivation.matrix_result.group not in GROUPS:
        raise ValueError(
            f"derivation {name}: group {derivation.matrix_result.group!r} is not one of "
            f"{', '.join(GROUPS)}"
        )
    _derived[name] = derivation
    return derivation


def preload(name: str, derivation: Derivation, results_used: tuple[str, ...]) -> None:
    """Use a derivation kept from an earlier build (derive.cache) instead of deriving it."""
    _derived[name] = derivation
    _results_used[name] = set(results_used)


def results_used(name: str) -> tuple[str, ...]:
    """The derivations whose results ``name`` used while it was derived."""
    get(name)
    return tuple(sorted(_results_used[name]))


def source(name: str) -> Path:
    """The module a derivation is written in."""
    return FOLDER / f"{name}.py"


def sources(name: str) -> list[Path]:
    """The module of ``name`` and those of every derivation it depends on."""
    return [source(n) for n in (name, *depends_on(name))]


def result(derivation: str, name: str, **indices: sp.Idx) -> sp.Expr:
    """The result ``name`` of another derivation, recorded as a use of it.

    ``indices`` renames its free indices: ``result("softmax_jacobian",
    "jacobian", i=t, j=k)`` is ∂S_t/∂z_k.
    """
    if _deriving:
        _results_used[_deriving[-1]].add(derivation)
    results = get(derivation).results
    if name not in results:
        raise KeyError(
            f"derivation {derivation!r} has no result {name!r}; "
            f"it has: {', '.join(results) or 'none'}"
        )
    expr = results[name]
    free = {str(i.label): i for i in expr.atoms(sp.Idx)}
    unknown = sorted(set(indices) - set(free))
    if unknown:
        raise KeyError(
            f"result {derivation}.{name} has no index {', '.join(unknown)}; "
            f"its indices: {', '.join(sorted(free))}"
        )
    return expr.subs({free[k]: v for k, v in indices.items()}, simultaneous=True)


def kernels() -> dict[str, Kernel]:
    """Every kernel of every registered derivation, by the name of its generated function."""
    return {k.name: k for name in MODULES for k in get(name).kernels}


def owners() -> dict[str, str]:
    """Every generated function's name -> the derivation that defines it."""
    owner: dict[str, str] = {}
    for name in MODULES:
        for function in get(name).function_names:
            if function in owner:
                raise ValueError(f"{name} and {owner[function]} both define {function}")
            owner[function] = name
    for name in MODULES:  # derive.generated.<name> would hide a function of that name
        if name in owner and owner[name] != name:
            raise ValueError(
                f"derivation {name!r} is named like a function of {owner[name]!r}; rename it"
            )
    return owner


def functions_called(derivation: Derivation) -> frozenset[str]:
    """The generated functions the kernels of ``derivation`` call: found once per derivation
    object (``depends_on`` asks for every derivation's, many times a build)."""
    return memo.made("functions called", derivation, None, partial(_functions_called, derivation))


def _functions_called(derivation: Derivation) -> frozenset[str]:
    expressions = [
        a.expression
        for k in derivation.kernels
        for a in (*k.body, k.returns, *(r.returns for r in k.more))
    ]
    return frozenset(type(f).__name__ for e in expressions for f in e.atoms(AppliedUndef))


def uses(name: str) -> tuple[str, ...]:
    """The derivations ``name`` depends on directly: results it used, functions it calls."""
    derivation = get(name)
    owner = owners()
    called = {owner[f] for f in functions_called(derivation) if f in owner}
    return tuple(sorted((_results_used[name] | called) - {name}))


def depends_on(name: str) -> tuple[str, ...]:
    """Every derivation ``name`` depends on, directly or not."""
    seen: list[str] = []
    pending = list(uses(name))
    while pending:
        other = pending.pop()
        if other not in seen:
            seen.append(other)
            pending.extend(uses(other))
    return tuple(sorted(seen))
