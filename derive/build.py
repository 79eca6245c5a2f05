"""The pipeline behind ``python -m derive build`` and ``check``.

derive every registered derivation -> prove its identities -> render its
module -> import the new modules from a temporary folder -> render the pages
(whose worked numbers come from those modules) -> draw the figures -> write
every file whose content changed.

Nothing is written until every derivation, proof and template has succeeded,
so a failure leaves the previous outputs as they were.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from derive import cache, derivations
from derive.codegen import CODE_INPUTS, generate_module
from derive.errors import BuildError, stage
from derive.proofs import ProofResult, check_exercise, prove
from derive.render import (
    ROOT,
    Output,
    edited_by_hand,
    environment,
    format_python,
    inputs_digest,
    write_if_changed,
)
from derive.steps import Derivation

PACKAGE = ROOT / "derive"
GENERATED = PACKAGE / "generated"


@dataclass(frozen=True)
class Derived:
    derivation: Derivation
    proofs: tuple[ProofResult, ...]
    seconds: float


def derive_all(run_proofs: bool = True, log: Callable[[str], None] = lambda _: None,
               force: bool = False) -> list[Derived]:
    """Derive (and prove) every registered derivation, in registry order.

    A derivation whose module, engine and used results are unchanged since the
    last build comes from the cache with its proofs (``force`` ignores it).
    """
    results, kept = [], {}
    for name in derivations.MODULES:
        start = time.perf_counter()
        entry = None if force else cache.load(name)
        if entry is not None and (entry.proofs is not None or not run_proofs):
            derivations.preload(name, entry.derivation, tuple(entry.used))
        else:
            entry = None
        with stage(name, "deriving"):
            derivation = derivations.get(name)
        proofs = entry.proofs if entry is not None else None
        if run_proofs and proofs is None:
            proofs = []
            for identity in derivation.identities:
                with stage(name, f"proving {identity.name!r}"):
                    proofs.append(prove(identity))
            for number, exercise in enumerate(derivation.exercises, 1):
                with stage(name, f"checking exercise {number} ({exercise.name!r})"):
                    check_exercise(exercise)
            proofs = tuple(proofs)
        seconds = time.perf_counter() - start
        results.append(Derived(derivation, proofs or (), seconds))
        kept[name] = entry is not None
        if run_proofs:
            proved = ", ".join(
                f"{p.identity} (index form{f', {len(p.explicit_sizes)} explicit sizes' if p.explicit_sizes else ''})"
                for p in proofs
            )
            how = "cached" if kept[name] else f"{seconds:6.2f} s"
            log(f"{name:<26} {how:>8}  proved: {proved}")
    _store(results, kept, run_proofs)
    return results


def _store(results: list[Derived], kept: dict[str, bool], proved: bool) -> None:
    """Keep what was derived (and proved) in this run for the next build."""
    keys: dict[str, str] = {}

    def key(name: str) -> str:
        if name not in keys:
            entry = cache.load(name)
            keys[name] = entry.key if entry is not None else ""
        return keys[name]

    by_name = {d.derivation.name: d for d in results}
    order = sorted(by_name, key=lambda n: len(derivations.depends_on(n)))  # used before users
    for name in order:
        if kept[name]:
            continue
        used = {other: key(other) for other in derivations.results_used(name)}
        try:
            entry = cache.store(name, by_name[name].derivation,
                                by_name[name].proofs if proved else None, used)
        except (OSError, pickle.PicklingError, AttributeError, TypeError):
            continue  # a cache that cannot be written only makes the next build slower
        keys[name] = entry.key


def code_outputs(derived: list[Derived]) -> list[Output]:
    """The generated modules and ``derive/generated/__init__.py``."""
    env = environment()
    owner = {k.name: d.derivation.name for d in derived for k in d.derivation.kernels}
    outputs = []
    for d in derived:
        name = d.derivation.name
        with stage(name, "rendering templates/module.py.j2"):
            body = env.get_template("module.py.j2").render(**generate_module(d.derivation, owner))
        with stage(name, "formatting the generated module"):
            body = format_python(body)
        outputs.append(Output(
            path=GENERATED / f"{name}.py",
            source=f'the derivation "{name}" (derive/derivations/{name}.py)',
            inputs=inputs_digest(*derivations.sources(name), *CODE_INPUTS),
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
        with tempfile.TemporaryDirectory(prefix="derive-generated-") as folder:
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


def write(outputs: list[Output]) -> list[Path]:
    """Write the outputs whose text changed; the paths written."""
    return [o.path for o in outputs if write_if_changed(o.path, o.text)]


def build(log: Callable[[str], None] = print, figures: bool = True, force: bool = False) -> list[Path]:
    """Regenerate everything; raise BuildError (writing nothing) if any stage fails."""
    start = time.perf_counter()
    derived = derive_all(run_proofs=True, log=log, force=force)
    code = code_outputs(derived)
    for output in code:  # a template that renders invalid Python fails here
        with stage(output.path.stem, f"compiling {output.path.relative_to(ROOT)}"):
            compile(output.text, str(output.path), "exec")
    with generated_package(code) as generated:
        with stage("(all)", "importing the generated modules"):
            generated.__all__  # noqa: B018 - the import above ran them
        pages = page_outputs(derived, generated)
        drawn = {}
        if figures:
            from derive.figures import draw_all

            with stage("(figures)", "drawing"):
                drawn = draw_all(generated, [f for d in derived for f in d.derivation.figures])
    written = write(code) + write(pages) + write_figures(drawn)
    cache.record_outputs(figures, [o.path for o in (*code, *pages)] + list(drawn))
    for path in written:
        log(f"wrote {path.relative_to(ROOT)}")
    log(f"build finished in {time.perf_counter() - start:.2f} s, {len(written)} file(s) changed")
    return written


def write_figures(drawn: dict[Path, str]) -> list[Path]:
    return [path for path, text in drawn.items() if write_if_changed(path, text)]


def check() -> list[str]:
    """Problems with the committed outputs: stale, edited by hand, missing or unexpected."""
    derived = derive_all(run_proofs=False)
    expected = code_outputs(derived)
    problems = _compare(expected)
    if not problems:  # pages are made from the code on disk; check them once it is current
        with generated_package() as generated:
            problems = _compare(page_outputs(derived, generated))
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
