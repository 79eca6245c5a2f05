"""The generator kept warm between the rebuilds of ``mkdocs serve``.

``python -m derive build`` in a fresh interpreter spends about a second importing
SymPy and unpickling every derivation before it does anything. Under ``mkdocs
serve`` the hook (derive/mkdocs_hook.py) keeps this process instead: it reads
one request per line on stdin, builds in this process, and answers with JSON
lines on stdout (``{"log": line}`` as the build prints, then one of ``{"done":
{"nav": ..., "written": [...], "code": changed}}``, ``{"failed": message, "nav": ...}`` or
``{"restart": reason}``). SymPy, the engine and every unchanged derivation stay in memory
(derive.cache hands back the same objects while their files are unchanged), and so
do the modules and pages rendered from them (derive.memo): a build after an edit
renders only the derivations it changed and those using their results. An
edited derivation module is imported again. When any other code of the package
changes, this process answers "restart" and exits, and the hook starts a fresh
one: what it imported is then never stale.

``python -m derive.warm`` is the process; the hook holds the other end of its pipes.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DERIVATIONS = PACKAGE / "derivations"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(f"{path}\0".encode())
        h.update(path.read_bytes() if path.is_file() else b"missing")
    return h.hexdigest()


def engine_files() -> list[Path]:
    """The package's code this process imports once: all of it but the derivation modules
    (the registry, derivations/__init__.py, included) and the generated functions."""
    return [
        p
        for p in PACKAGE.rglob("*.py")
        if "generated" not in p.relative_to(PACKAGE).parts
        and "__pycache__" not in p.parts
        and (p.parent != DERIVATIONS or p.name == "__init__.py")
    ]


def derivation_sources() -> dict[str, str]:
    """Each derivation module's name and a hash of its source."""
    return {p.stem: _digest([p]) for p in DERIVATIONS.glob("*.py") if p.name != "__init__.py"}


def code_bodies() -> dict[str, str]:
    """The generated modules without their headers: what the API page shows of them (a header
    changes with any edit of its derivation's module, prose included)."""
    from derive.render import split_header

    return {p.name: split_header(p.read_text())[1] for p in (PACKAGE / "generated").glob("*.py")}


def _forget_derivations(modules: set[str]) -> None:
    """Import the derivation ``modules`` afresh at their next use, and derive (or load from the
    cache) every derivation again. An unchanged module is kept: the derivations loaded before
    refer to its functions, which must stay the ones its name finds (they are pickled by name).
    """
    from derive import cache, derivations

    for name in modules:
        sys.modules.pop(f"derive.derivations.{name}", None)
        cache.forget(name)
    derivations._derived.clear()
    derivations._results_used.clear()


def _waiting(requests) -> bool:
    """Whether the hook has sent its next request (a line waits in the pipe)."""
    try:
        return bool(select.select([requests.fileno()], [], [], 0)[0])
    except (AttributeError, OSError, ValueError):  # not a pipe (a test's list of requests)
        return False


def _prepare(requests=None) -> None:
    """What a first build after an edit needs, done while the server waits for one: after a
    build that had nothing to do (the outputs were current), nothing is loaded yet. ``check``
    loads every derivation from the cache and renders every output, writing nothing: what it
    renders is kept (derive.memo), so that edit renders only what it changed; and so are
    the derivations' checks, and matplotlib's import (half a second each). Last, every
    derivation is derived once, its result thrown away: what an edit of its prose asks SymPy
    again is then remembered (derive.sympy_tools.evaluate, SymPy's own cache), and the first
    such edit costs what the later ones do (0.26 s -> 0.04 s deriving two_layer). That stops
    as soon as the next request comes (an edit made at once need not wait for it)."""
    from functools import partial

    from derive import build, derivations, memo
    from derive.errors import BuildError
    from derive.figures import pyplot

    try:
        build.check()
        for name in derivations.MODULES:
            derivation = derivations.get(name)
            memo.made("checked", derivation, None, partial(build.check_derivation, derivation))
        pyplot()
    except (BuildError, OSError):  # the next build says what is wrong
        return
    for name in derivations.MODULES:
        if _waiting(requests):
            return
        try:
            derivations.builder(name)()  # not kept: the loaded derivation stays the one in use
        except Exception:  # the next build derives it, and says what is wrong
            pass


def serve(requests=sys.stdin, answers=None) -> None:
    """Answer build requests until stdin closes (the hook's end of the pipe)."""
    sys.dont_write_bytecode = True  # no __pycache__ under derive/, which mkdocs serve watches
    if answers is None:  # the protocol keeps fd 1; anything else printed goes to stderr
        answers = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    from derive import build, cli, site  # noqa: F401 - imported once: SymPy, the engine

    engine = _digest(engine_files())
    modules = derivation_sources()

    def answer(**message) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    rendered = False  # whether this process has rendered every output once (or _prepare has)
    for line in requests:
        request = json.loads(line)
        if _digest(engine_files()) != engine:
            answer(restart="the package's code changed")
            return
        now = derivation_sources()
        _forget_derivations(
            {n for n in now.keys() | modules.keys() if now.get(n) != modules.get(n)}
        )
        modules = now
        failure: list[str] = []
        written: list[str] = []
        bodies = code_bodies()

        def log(message: str, written: list[str] = written) -> None:
            nonlocal rendered
            if message.startswith("wrote "):
                written.append(message.removeprefix("wrote "))
            rendered = rendered or message.startswith("build finished")
            answer(log=message)

        try:
            code = cli.build(figures=request.get("figures", True), log=log, error=failure.append)
        except Exception as error:  # a bug: say so, and derive afresh for the next build
            import traceback

            _forget_derivations(set(modules))
            message = "".join(traceback.format_exception(error)).strip()
            answer(failed=message, nav=site.derivation_nav())
            continue
        if code != 0:
            _forget_derivations(set())  # the failed one is derived again next time
            message = "\n".join(failure) or f"python -m derive build exited with {code}"
            answer(failed=message, nav=site.derivation_nav())  # the previous pages' nav
            continue
        code_changed = code_bodies() != bodies
        answer(done={"nav": site.derivation_nav(), "written": written, "code": code_changed})
        if not rendered and request.get("prepare", True):
            _prepare(requests)
            rendered = True


if __name__ == "__main__":
    serve()
