"""The pinned versions in constraints.txt that the generated files depend on, against those installed.

pyproject.toml declares ranges, so that the library installs beside other
packages; constraints.txt pins the versions the committed files were made
with. SymPy's printed output, Jinja2's rendering and ruff's formatting change
between releases, so `python -m derive check` first says when the installed
version of one of them is not its pin: a file reported stale after that may
only differ by the version. Outside a checkout (an installed wheel) there is
no constraints.txt and nothing to compare.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"
# What the checked files (code and pages) are made with; matplotlib draws only the figures.
GENERATOR = ("sympy", "jinja2", "ruff")

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s#;]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """``{"sympy": "1.14.0", ...}``: every ``name==version`` line of a constraints file."""
    found = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[_normal(match[1])] = match[2]
    return found


def mismatches(path: Path = CONSTRAINTS, packages: tuple[str, ...] = GENERATOR) -> list[str]:
    """One line per generator package whose installed version is not its pin; [] without the file."""
    if not path.exists():
        return []
    pinned = pins(path)
    problems = []
    for name in packages:
        if name not in pinned:
            problems.append(f"{path.name}: no pin for {name} (the generated files depend on it)")
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned[name]:
            problems.append(
                f"{name} {installed or '(not installed)'} is installed, but {path.name} pins "
                f"{pinned[name]}, the version the generated files are made with "
                f"(pip install -c {path.name} -e '.[generate]')"
            )
    return problems
