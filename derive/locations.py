"""Where derive writes: the source checkout it runs from, or else a folder of the user's.

Run from a checkout (the package's parent folder holds ``templates/``), the
cache, the build's lock and journal, and the results of ``derive.train``,
``derive.accuracy`` and ``derive.bench`` are in that checkout, where they have
always been. Run from an installed copy, nothing is written beside the code:
they go to ``$XDG_CACHE_HOME/derive`` (``~/.cache/derive`` when it is unset),
or to a path the user names (``--output``). Imports nothing heavy: the
command line asks before deciding whether to import SymPy.
"""

from __future__ import annotations

import os
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]  # the folder that holds the package ``derive``


def checkout() -> Path | None:
    """The source checkout the package is imported from, or None for an installed copy."""
    return CODE if (CODE / "templates" / "module.py.j2").is_file() else None


def user_folder() -> Path:
    """The folder of this user's derive files when not run from a checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "derive"


def state() -> Path:
    """Where the cache, the lock and the journal go: the checkout, or the user's folder."""
    return checkout() or user_folder()


def results(name: str) -> Path:
    """The default JSON report of a tool, e.g. ``results("training-results")``."""
    return (checkout() or user_folder()) / name / "latest.json"


def shown(path: Path) -> str:
    """``path`` as a message prints it: relative to the checkout inside one, else in full."""
    path = Path(path).resolve()
    root = checkout()
    return str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
