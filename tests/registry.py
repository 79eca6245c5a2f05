"""What the registry-driven tests need: every kernel, its arguments drawn from the
domain each parameter declares, and its declared derivative evaluated by name.

Nothing here lists a function: a derivation registered in derive/derivations/
is picked up by every test that imports this module.
"""

from __future__ import annotations

import ast
import importlib
import os

import numpy as np
import pytest

import derive.generated as generated
from derive import derivations
from derive.steps import Kernel, Param

BY_NAME: dict[str, Kernel] = derivations.kernels()
# One entry per result: a kernel that returns a tuple is checked element by element (its parts).
KERNELS: list[Kernel] = [part for kernel in BY_NAME.values() for part in kernel.parts]
# A kernel with options (PyTorch's cross-entropy ones) is checked again with every option set.
OPTION_VIEWS: list[Kernel] = [k.with_options for k in BY_NAME.values() if k.options_form]
DISPATCHES = [d for name in derivations.MODULES for d in derivations.get(name).dispatches]
DERIVATIVES = [k for k in KERNELS + OPTION_VIEWS if k.derivative is not None]
REFERENCES = [k for k in KERNELS if k.reference]


def require(module: str):
    """Import an optional test dependency: skipped on a laptop without it, a failure in CI.

    `.ci/run` sets DERIVE_REQUIRE_OPTIONAL=1, so a missing package can never
    silently empty a test there.
    """
    if os.environ.get("DERIVE_REQUIRE_OPTIONAL") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def functions_in(code: str) -> list[str]:
    """The generated functions an expression such as "softmax(summation(x, W))" calls."""
    return [
        node.func.id
        for node in ast.walk(ast.parse(code, mode="eval"))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in BY_NAME
    ]


def variables(kernel: Kernel) -> dict[str, Param]:
    """The named values a kernel's checks use: its own parameters, then those of the
    functions its derivative declaration calls (softmax_jacobian(s) is checked on z)."""
    params = {p.name: p for p in kernel.params}
    if kernel.derivative is not None:
        for name in functions_in(kernel.derivative.of) + functions_in(
            kernel.derivative.call or "x"
        ):
            for p in BY_NAME[name].params:
                params.setdefault(p.name, p)
    return params


def positive(span: tuple[float, float], rng: np.random.Generator, shape=()) -> np.ndarray:
    """Positive numbers drawn log-uniformly from ``span`` (a parameter's declared range):
    eps from (1e-8, 1) is as often near 1e-8 as near 1."""
    low, high = span
    return np.exp(rng.uniform(np.log(low), np.log(high), size=shape))


def draw(
    param: Param, batch: tuple[int, ...], sizes: dict[str, int], rng: np.random.Generator
) -> np.ndarray:
    """One argument, of the kind its domain says."""
    shape = (batch if param.batched else ()) + tuple(sizes[a] for a in param.axes)
    if param.domain == "one_hot":
        return np.eye(shape[-1])[rng.integers(shape[-1], size=shape[:-1])]
    if param.domain == "positive":  # across its declared range, every decade alike
        return positive(param.span, rng, shape)
    if param.domain == "probability" and param.check == "probabilities":
        rows = rng.uniform(0.05, 0.95, size=shape)
        return rows / rows.sum(axis=-1, keepdims=True)
    if param.domain == "probability":
        return rng.uniform(0.05, 0.95, size=shape)
    if param.domain == "target":
        return rng.uniform(0.0, 1.0, size=shape)
    return rng.normal(size=shape)


def draw_all(
    params: dict[str, Param],
    batch: tuple[int, ...],
    rng: np.random.Generator,
    sizes: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    sizes = sizes or {name: int(rng.integers(2, 9)) for name in "CDHK"}
    return {name: draw(p, batch, sizes, rng) for name, p in params.items()}


def draw_options(kernel: Kernel, values: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """Every option of an options view set away from its default, for ``values``.

    Class weights are drawn positive; the ignored label is one some samples have
    and others not (so the mean still has samples), and to matter it needs class
    labels, so one-hot rows among ``values`` become labels (in place); a choice
    takes one of its other values at random.
    """
    options = {}
    one_hot = [p.name for p in kernel.params if p.domain == "one_hot"]
    if not one_hot:
        raise ValueError(f"{kernel.name}: options are drawn for a kernel with one-hot targets")
    classes = values[one_hot[0]].shape[-1]
    for name in one_hot:
        values[name] = np.argmax(values[name], axis=-1)
    for option in kernel.options_form.options:
        if option.kind == "weights":
            options[option.name] = rng.uniform(0.5, 2.0, size=classes)
        elif option.kind == "index":
            labels = values[one_hot[0]].reshape(-1)
            present = labels[-1] if np.any(labels != labels[-1]) else labels[-1] + 1
            options[option.name] = int(present)
        elif option.kind == "fraction":
            options[option.name] = 0.1
        else:
            options[option.name] = str(
                rng.choice([c for c in option.choices if c != option.default])
            )
    return options


def draw_values(kernel: Kernel, batch: tuple[int, ...], rng: np.random.Generator) -> dict:
    """The named values a kernel's checks use (`variables`), with ``options`` for an options view."""
    values = draw_all(variables(kernel), batch, rng)
    if kernel.options_view:
        values["options"] = draw_options(kernel, values, rng)
    return values


def convert(values: dict, function) -> dict:
    """``function`` applied to every array among ``values``, the options' arrays included."""
    return {
        name: convert(v, function)
        if isinstance(v, dict)
        else function(v)
        if isinstance(v, np.ndarray)
        else v
        for name, v in values.items()
    }


def call(kernel: Kernel, *arguments, **options) -> object:
    """The kernel's generated function on ``arguments``: the element a part checks."""
    value = getattr(generated, kernel.name)(*arguments, **options)
    return value if kernel.part is None else value[kernel.part]


def evaluate(code: str, values: dict) -> object:
    """Evaluate registry Python (``of``, ``call``) with the generated functions and ``values``."""
    names = {name: getattr(generated, name) for name in generated.__all__}
    return eval(code, {**names, **values})  # the registry's own strings
