"""Build failures that name the derivation and the step that failed."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# From derive.locations, not derive.render: the command line imports this before SymPy.
from derive.locations import CODE as ROOT


class BuildError(RuntimeError):
    """A derivation, proof or template failed; names which and where."""


@contextmanager
def stage(derivation: str, what: str, within: str | None = None) -> Iterator[None]:
    """Turn any error into a BuildError naming the derivation and the step.

    The step is ``what`` plus the innermost line of project code that raised,
    so a failing SymPy call inside ``derive()`` points at its line; with
    ``within`` (a file), the innermost line of that file, if it is on the way.
    """
    try:
        yield
    except BuildError:
        raise
    except Exception as error:
        frames = [
            f
            for f in traceback.extract_tb(error.__traceback__)
            if f.filename.startswith(str(ROOT))
            and "site-packages" not in f.filename
            and "/build.py" not in f.filename
            and "/errors.py" not in f.filename
        ]  # the project's own code and templates
        where = ""
        preferred = [f for f in frames if within and Path(f.filename) == Path(within)]
        if preferred or frames:
            f = (preferred or frames)[-1]
            where = (
                f" at {Path(f.filename).relative_to(ROOT)}:{f.lineno} ({(f.line or '').strip()})"
            )
        raise BuildError(
            f"derivation {derivation!r} failed while {what}{where}: {type(error).__name__}: {error}"
        ) from error
