"""What an interrupted build leaves behind, found without importing SymPy.

A build killed while it replaced files leaves its journal; killed while
staging, temporary files beside the outputs; killed at any time, the folder it
imports the new modules from. ``build`` removes them first (under the lock)
and ``check`` reports them; before answering "nothing changed", the command
line asks ``found()``, or ``check`` and ``build`` would send the user back and
forth. An import folder carries the id of the process that made it, so a
``check`` running beside another does not report the other's live folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from derive import locations, transaction

ROOT = locations.CODE
JOURNAL = locations.state() / ".derive-build.journal"
IMPORT_PREFIX = (  # one project's, found by its next build
    f"derive-generated-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}-"
)
# Where outputs are staged (derive/generated, the pages, the figures, the site's pages, the root)
OUTPUT_FOLDERS = [
    ROOT / "derive" / "generated",
    ROOT / "docs" / "derivations",
    ROOT / "docs",
    ROOT / "docs" / "figures",
    ROOT,
]


def import_prefix() -> str:
    """The name's start of this process's import folder: the project's, then the process id."""
    return f"{IMPORT_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def import_folders() -> list[Path]:
    """This project's import folders whose process has ended (a killed build's)."""
    found = []
    for folder in sorted(Path(tempfile.gettempdir()).glob(f"{IMPORT_PREFIX}*")):
        pid = folder.name.removeprefix(IMPORT_PREFIX).split("-")[0]
        if not (pid.isdigit() and _alive(int(pid))):
            found.append(folder)
    return found


def found() -> list[str]:
    """What an interrupted build left, one line each (empty when nothing)."""
    problems = []
    if JOURNAL.exists():
        problems.append(
            f"{locations.shown(JOURNAL)}: a build was killed while replacing files; "
            "some outputs may be old and some new (the next build restores the old set)"
        )
    problems += [
        f"{locations.shown(path)}: temporary file left by an interrupted build"
        for path in transaction.leftovers(OUTPUT_FOLDERS)
    ]
    problems += [
        f"{folder}: temporary folder left by an interrupted build" for folder in import_folders()
    ]
    return problems
