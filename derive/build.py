"""The pipeline behind ``python -m derive build`` and ``check``.

derive every registered derivation -> prove its identities -> render its
module -> import the new modules from a temporary folder -> render the pages
(whose worked numbers come from those modules) -> draw the figures -> write
every file whose content changed.

Nothing is written until every derivation, proof and template has succeeded,
and then every changed file is replaced in one transaction (derive.transaction),
so a failure leaves the previous outputs as they were. One build runs at a
time (derive.lock); a build first undoes what an interrupted one left.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from derive import derivations, lock, transaction
from derive.codegen import generate_module
from derive.proofs import ProofResult, prove
from derive.render import (
    ROOT,
    Output,
    digest,
    edited_by_hand,
    environment,
    format_python,
    inputs_digest,
)
from derive.steps import Derivation

PACKAGE = ROOT / "derive"
GENERATED = PACKAGE / "generated"

# What every generated module is made from, besides its own derivation module.
CODE_INPUTS = [
    PACKAGE / name
    for name in ("model.py", "steps.py", "sympy_tools.py", "codegen.py",
                 "printing/array.py", "printing/latex.py", "render.py")
] + [ROOT / "templates" / "module.py.j2"]


class BuildError(RuntimeError):
    """A derivation, proof or template failed; names which and where."""


@contextmanager
def stage(derivation: str, what: str) -> Iterator[None]:
    """Turn any error into a BuildError naming the derivation and the step.

    The step is ``what`` plus the innermost line of project code that raised,
    so a failing SymPy call inside ``derive()`` points at its line.
    """
    try:
        yield
    except BuildError:
        raise
    except Exception as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename.startswith(str(ROOT)) and "site-packages" not in f.filename
                  and "/build.py" not in f.filename]  # the project's own code and templates
        where = ""
        if frames:
            f = frames[-1]
            where = f" at {Path(f.filename).relative_to(ROOT)}:{f.lineno} ({(f.line or '').strip()})"
        raise BuildError(
            f"derivation {derivation!r} failed while {what}{where}: "
            f"{type(error).__name__}: {error}"
        ) from error


@dataclass(frozen=True)
class Derived:
    derivation: Derivation
    proofs: tuple[ProofResult, ...]
    seconds: float


def derive_all(run_proofs: bool = True, log: Callable[[str], None] = lambda _: None) -> list[Derived]:
    """Derive (and prove) every registered derivation, in registry order."""
    results = []
    for name in derivations.MODULES:
        start = time.perf_counter()
        with stage(name, "deriving"):
            derivation = derivations.get(name)
        proofs = []
        if run_proofs:
            for identity in derivation.identities:
                with stage(name, f"proving {identity.name!r}"):
                    proofs.append(prove(identity))
        seconds = time.perf_counter() - start
        results.append(Derived(derivation, tuple(proofs), seconds))
        if run_proofs:
            proved = ", ".join(
                f"{p.identity} (index form{f', {len(p.explicit_sizes)} explicit sizes' if p.explicit_sizes else ''})"
                for p in proofs
            )
            log(f"{name:<26} {seconds:6.2f} s  proved: {proved}")
    return results


def code_outputs(derived: list[Derived]) -> list[Output]:
    """The generated modules and ``derive/generated/__init__.py``."""
    env = environment()
    owner = {k.name: d.derivation.name for d in derived for k in d.derivation.kernels}
    outputs = []
    for d in derived:
        name = d.derivation.name
        with stage(name, "rendering templates/module.py.j2"):
            body = env.get_template("module.py.j2").render(**generate_module(d.derivation, owner))
        with stage(name, "formatting the module rendered from templates/module.py.j2"):
            body = format_python(body)
        outputs.append(Output(
            path=GENERATED / f"{name}.py",
            source=f'the derivation "{name}" (derive/derivations/{name}.py)',
            inputs=inputs_digest(PACKAGE / "derivations" / f"{name}.py", *CODE_INPUTS),
            body=body,
        ))
    modules = [{"name": d.derivation.name, "functions": [k.name for k in d.derivation.kernels]}
               for d in derived]
    with stage("(all)", "rendering templates/generated_init.py.j2"):
        body = env.get_template("generated_init.py.j2").render(modules=modules)
    outputs.append(Output(
        path=GENERATED / "__init__.py",
        source="the registry (derive/derivations/__init__.py)",
        inputs=inputs_digest(PACKAGE / "derivations" / "__init__.py",
                             ROOT / "templates" / "generated_init.py.j2"),
        body=body,
    ))
    return outputs


IMPORT_PREFIX = f"derive-generated-{digest(str(ROOT))[:8]}-"  # one project's, found by the next build


@contextmanager
def generated_package(code: list[Output] | None = None) -> Iterator:
    """``derive.generated`` as it is on disk, or as ``code`` would write it.

    With ``code``, the modules are written to a temporary folder and imported
    from there, so pages and figures are made from the new code before any
    file of the project is replaced.
    """
    saved = {m: sys.modules.pop(m) for m in list(sys.modules)
             if m == "derive.generated" or m.startswith("derive.generated.")}
    try:
        with tempfile.TemporaryDirectory(prefix=IMPORT_PREFIX) as folder:
            location = GENERATED
            if code is not None:
                location = Path(folder)
                for output in code:
                    (location / output.path.name).write_text(output.text)
            spec = importlib.util.spec_from_file_location(
                "derive.generated", location / "__init__.py",
                submodule_search_locations=[str(location)])
            package = importlib.util.module_from_spec(spec)
            sys.modules["derive.generated"] = package
            spec.loader.exec_module(package)
            yield package
    finally:
        for m in [m for m in sys.modules if m == "derive.generated" or m.startswith("derive.generated.")]:
            del sys.modules[m]
        sys.modules.update(saved)


def page_outputs(derived: list[Derived], generated) -> list[Output]:
    from derive.pages import page_outputs as render_pages  # imports numpy and matplotlib-free

    return render_pages(derived, generated)


class RestoreFailed(BuildError):
    """A write failed and the previous outputs could not all be put back (the journal remains)."""


JOURNAL = ROOT / ".derive-build.journal"  # what a build killed while replacing files must undo
LOCK = ROOT / ".derive-build.lock"
LOCK_TIMEOUT = 600.0  # seconds a build or check waits for another build to finish


def write(outputs: list[Output], figures: dict[Path, str] | None = None) -> list[Path]:
    """Write the outputs and figures whose text changed, all or none; the paths written."""
    files = {o.path: o.text for o in outputs} | (figures or {})
    try:
        return transaction.write_all(files, JOURNAL)
    except transaction.WriteFailed as error:
        where = error.path.relative_to(ROOT) if error.path.is_relative_to(ROOT) else error.path
        message = str(error).replace(str(error.path), str(where), 1)
        raise (BuildError if error.restored else RestoreFailed)(message) from error


def _output_folders() -> list[Path]:
    from derive.figures import FIGURE_DIR
    from derive.pages import PAGES

    return [GENERATED, PAGES, PAGES.parent, FIGURE_DIR, ROOT]


def _import_folders() -> list[Path]:
    """Temporary folders ``generated_package`` made for this project (a killed build leaves them)."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{IMPORT_PREFIX}*"))


@contextmanager
def _locked(log: Callable[[str], None], shared: bool = False) -> Iterator[None]:
    try:
        with lock.held(LOCK, LOCK_TIMEOUT, shared,
                       waiting=lambda: log(f"waiting for another build to finish ({LOCK.name})")):
            yield
    except lock.LockTimeout as error:
        raise BuildError(str(error)) from error
    except OSError as error:
        if error.filename != str(LOCK):
            raise
        raise BuildError(f"cannot open the build lock {LOCK.name}: {error.strerror}") from error


def _tidy(log: Callable[[str], None]) -> None:
    """Undo what an interrupted build left: a half-done commit, temporary files and folders."""
    try:
        restored = transaction.recover(JOURNAL)
    except (OSError, ValueError) as error:
        raise RestoreFailed(f"restoring the files listed in {JOURNAL.name} "
                            f"(left by an interrupted build): {error}") from error
    if restored:
        log(f"restored {len(restored)} file(s) an interrupted build had half replaced")
    for path in transaction.remove_leftovers(_output_folders()):
        log(f"removed {path.relative_to(ROOT)} (left by an interrupted build)")
    for folder in _import_folders():
        shutil.rmtree(folder, ignore_errors=True)


def build(log: Callable[[str], None] = print, figures: bool = True) -> list[Path]:
    """Regenerate everything; raise BuildError (writing nothing) if any stage fails."""
    with _locked(log):
        _tidy(log)
        start = time.perf_counter()
        derived = derive_all(run_proofs=True, log=log)
        code = code_outputs(derived)
        for output in code:  # a template that renders invalid Python fails here
            template = "generated_init.py.j2" if output.path.name == "__init__.py" else "module.py.j2"
            with stage(output.path.stem,
                       f"compiling {output.path.relative_to(ROOT)} (rendered from templates/{template})"):
                compile(output.text, str(output.path), "exec")
        with (stage("(all)", "importing the generated modules from a temporary folder"),
              generated_package(code) as generated):
            generated.__all__  # noqa: B018 - the import above ran them
            pages = page_outputs(derived, generated)
            drawn = {}
            if figures:
                from derive.figures import draw_all

                with stage("(figures)", "drawing"):
                    drawn = draw_all(generated)
        written = write(code + pages, drawn)
    for path in written:
        log(f"wrote {path.relative_to(ROOT)}")
    log(f"build finished in {time.perf_counter() - start:.2f} s, {len(written)} file(s) changed")
    return written


def check() -> list[str]:
    """Problems with the committed outputs: stale, edited by hand, missing, unexpected or litter."""
    with _locked(lambda message: print(message, file=sys.stderr), shared=True):
        problems = []
        if JOURNAL.exists():
            problems.append(f"{JOURNAL.name}: a build was killed while replacing files; "
                            "some outputs may be old and some new (the next build restores the old set)")
        problems += [f"{path.relative_to(ROOT)}: temporary file left by an interrupted build"
                     for path in transaction.leftovers(_output_folders())]
        problems += [f"{folder}: temporary folder left by an interrupted build"
                     for folder in _import_folders()]
        derived = derive_all(run_proofs=False)
        expected = code_outputs(derived)
        mismatched = _compare(expected)
        if not mismatched:  # pages are made from the code on disk; check them once it is current
            with generated_package() as generated:
                mismatched = _compare(page_outputs(derived, generated))
        problems += mismatched
        known = {o.path for o in expected}
        for path in sorted(GENERATED.glob("*.py")):
            if path not in known:
                problems.append(f"{path.relative_to(ROOT)}: unexpected (no derivation generates it)")
        return problems


def _compare(outputs: list[Output]) -> list[str]:
    problems = []
    for output in outputs:
        where = output.path.relative_to(ROOT)
        if not output.path.exists():
            problems.append(f"{where}: missing")
            continue
        current = output.path.read_text()
        if current == output.text:
            continue
        if edited_by_hand(current):
            problems.append(f"{where}: edited by hand (its body no longer matches its header)")
        else:
            problems.append(f"{where}: stale (the build would write something else)")
    return problems
