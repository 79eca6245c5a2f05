"""What a command needs that this installation lacks, said in one line (never a traceback).

The generated functions need NumPy and array-api-compat only; the generator,
the site and the tools need more (SymPy, Jinja2, ruff and matplotlib to
generate; PyTorch, SciPy and scikit-learn to measure), which an install may
not have, and the site needs a source checkout. Each command asks here first
and, when something is missing, exits 2 naming it and how to get it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

from derive import locations

GENERATE = ("sympy", "jinja2", "ruff")  # and matplotlib for the figures
EXTRAS = {  # module -> the extra that installs it
    "sympy": "generate",
    "jinja2": "generate",
    "ruff": "generate",
    "matplotlib": "generate",
    "torch": "test",
    "scipy": "test",
    "sklearn": "test",
    "mpmath": "generate",
}
PIP_NAMES = {"sklearn": "scikit-learn", "torch": "PyTorch (torch)"}


def distribution() -> str:
    """The name this package is installed under (the import name is ``derive``)."""
    names = metadata.packages_distributions().get("derive") or ["derive"]
    return names[0]


def missing_modules(command: str, modules: tuple[str, ...]) -> str | None:
    """One line naming what ``command`` needs and is not installed, or None."""
    absent = [m for m in modules if not _installed(m)]
    if not absent:
        return None
    extras = sorted({EXTRAS.get(m, "test") for m in absent})
    names = ", ".join(PIP_NAMES.get(m, m) for m in absent)
    return (
        f"{command} needs {names}, not installed here: "
        f"pip install '{distribution()}[{','.join(extras)}]'"
    )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec: None there means "not importable"
        return sys.modules.get(module) is not None


def missing_checkout(command: str) -> str | None:
    """One line saying ``command`` needs a source checkout, or None when run from one."""
    if locations.checkout() is not None:
        return None
    return (
        f"{command} needs a source checkout (its templates/ and docs/), and this is an installed "
        f"copy ({locations.CODE}): clone the project's repository and run it there"
    )


def exit_if_missing(*problems: str | None) -> None:
    """Exit 2 with the first problem, on stderr."""
    for problem in problems:
        if problem:
            print(problem, file=sys.stderr)
            raise SystemExit(2)


@contextmanager
def imports_of(command: str, main: bool) -> Iterator[None]:
    """Around a tool's imports: run as ``python -m`` (``main``), a missing package is exit 2."""
    try:
        yield
    except ModuleNotFoundError as error:
        if not main or not error.name:
            raise
        exit_if_missing(missing_modules(command, (error.name.partition(".")[0],)))
        raise
