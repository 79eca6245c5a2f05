"""The pipeline behind ``python -m derive build`` and ``check``.

derive every registered derivation -> prove its identities, in worker
processes, while this process renders the modules, imports them from a
temporary folder, draws the figures and renders the pages (whose worked
numbers come from those modules; no page shows a proof's result, only what
is proved) -> write every file whose content changed.

Nothing is written until every derivation, proof and template has succeeded,
and then every changed file is replaced in one transaction (derive.transaction),
so a failure leaves the previous outputs as they were. One build runs at a
time (derive.lock); a build first undoes what an interrupted one left.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from derive import (
    cache,
    claims,
    constraints,
    derivations,
    litter,
    locations,
    lock,
    memo,
    notation,
    transaction,
)
from derive.codegen import CODE_INPUTS, fresh_callees, generate_module
from derive.errors import BuildError, stage
from derive.proofs import ProofResult, build_sizes, check_exercise, prove_part
from derive.render import (
    ROOT,
    Output,
    edited_by_hand,
    environment,
    format_ahead,
    format_python,
    inputs_digest,
    installed_version,
)
from derive.steps import Derivation

PACKAGE = ROOT / "derive"
GENERATED = PACKAGE / "generated"


@dataclass(frozen=True)
class Derived:
    derivation: Derivation
    proofs: tuple[ProofResult | claims.ClaimCheck, ...]  # the identities, then the steps
    seconds: float


def derive_all(
    run_proofs: bool = True,
    log: Callable[[str], None] = lambda _: None,
    force: bool = False,
    meanwhile: Callable[[list[Derived]], None] | None = None,
    workers: Workers | None = None,
) -> list[Derived]:
    """Derive (and prove) every registered derivation, in registry order.

    A derivation whose module, engine and used results are unchanged since the
    last build comes from the cache with its proofs (``force`` ignores it).
    The proofs that remain run side by side in worker processes (``workers``,
    or a pool of its own), forked once every derivation is derived (see
    ``Workers.start``); with a warm cache, only those an earlier build did not run.
    ``meanwhile`` (given the derivations, not yet their proofs) runs in this
    process while they do.
    """
    derived, kept, seconds = {}, {}, {}
    proving = (workers or Workers(force)) if run_proofs else None
    try:
        for name in derivations.MODULES:
            start = time.perf_counter()
            entry = None if force else cache.load(name)
            if entry is not None and (entry.proofs is not None or not run_proofs):
                derivations.preload(name, entry.derivation, tuple(entry.used))
                kept[name] = entry.proofs or ()
            try:
                with stage(name, "deriving"):
                    derived[name] = derivations.get(name)
                if run_proofs:  # once per derivation object in a process (derive.memo)
                    memo.made(
                        "checked", derived[name], None, partial(check_derivation, derived[name])
                    )
            except BuildError:
                if proving is not None:  # a wrong result it used fails its own proof: first
                    proving.recalling = False  # (a key would derive the failing one again)
                    for done in derived:
                        if done not in kept and done not in proving.tasks:
                            proving.submit(done, derived[done])
                    proving.results(keep=False)
                raise
            seconds[name] = time.perf_counter() - start
            if proving is not None and name not in kept and not proving.recalling:
                proving.submit(name, derived[name])  # nothing to recall: the early process
        if proving is not None:  # may take some now; the workers take the rest (start)
            if proving.recalling:  # once every derivation is loaded: a check's key reads
                for name in derivations.MODULES:  # them all (derivations.owners)
                    if name not in kept:
                        proving.submit(name, derived[name])
            proving.start()
        if meanwhile is not None:
            meanwhile([Derived(derived[name], (), 0.0) for name in derivations.MODULES])
        ready = _pickled(derived, kept)  # while the last proofs run
        proofs = dict(kept)
        if proving is not None:
            proofs.update(proving.results())
    finally:
        if proving is not None and workers is None:
            proving.close()
    results = []
    for name in derivations.MODULES:
        spent = seconds[name] + sum(p.seconds for p in proofs.get(name, ()))
        results.append(Derived(derived[name], tuple(proofs.get(name, ())), spent))
        if run_proofs:
            proved = ", ".join(
                f"{p.identity} (index form{f', {len(p.explicit_sizes)} explicit sizes' if p.explicit_sizes else ''})"
                for p in proofs[name]
                if isinstance(p, ProofResult)
            )
            steps = sum(isinstance(p, claims.ClaimCheck) for p in proofs[name])
            again = proving.remembered.get(name, 0) if proving is not None else 0
            if again:
                spent -= proving.seconds_remembered.get(name, 0.0)
            how = "cached" if name in kept else f"{spent:6.2f} s"
            remembered = f" ({again} checks' results remembered: inputs unchanged)" if again else ""
            log(f"{name:<26} {how:>8}  proved: {proved}; {steps} steps checked{remembered}")
    _store(results, {name: name in kept for name in derivations.MODULES}, run_proofs, ready)
    return results


def check_derivation(derivation: Derivation) -> None:
    """The checks of a derivation that need no proof: its notation, and its chain of steps."""
    with stage(derivation.name, "checking its indices and names against derive/notation.py"):
        notation.check(derivation)
    with stage(derivation.name, "checking that each step starts where it says"):
        claims.check_chain(derivation)


class Workers:
    """Worker processes, one per CPU, for the proofs and figures of a build.

    Each proof's index form and each explicit size is one task, and so is each
    figure. The pool is forked by ``start`` (a build whose proofs all come
    from the cache and draws no figure makes none); with one CPU the tasks run
    at once, in this process.
    """

    def __init__(self, force: bool = False, early: ProcessPoolExecutor | None = None) -> None:
        self.force = force  # run every check, even one an earlier build ran with the same inputs
        self.early = early  # a process forked before deriving, idle while this one derives
        self.early_futures: list = []
        self.pool: ProcessPoolExecutor | None = None
        self.tasks: dict[str, list] = {}  # derivation -> [(identity, sizes, future)]
        self.exercises: dict[str, list] = {}  # derivation -> [(exercise, future)]
        self.steps: dict[str, list] = {}  # derivation -> [(claim, future)]
        self.remembered: dict[str, int] = {}  # derivation -> checks an earlier build ran
        self.seconds_remembered: dict[str, float] = {}  # and the seconds they took then
        self.unkept: dict = {}  # future -> (function, args): a forced check the parent keeps
        self.recalling = not force and cache.remembers_checks()  # else nothing to look up
        self.pending: list[_Pending] = []  # submitted before the workers were forked (start)
        self.unstarted: list[tuple] = []  # and their (function, args), in the same order
        self.fed = 0  # how many of them the early process has been given (_feed_early)
        self.lock = threading.RLock()  # the early process's futures call back from a thread

    def _value(self, name: str, future, keep: bool = True):
        value, remembered = future.result()
        if keep and future in self.unkept:
            cache.keep(*self.unkept.pop(future), value)
        self.remembered[name] = self.remembered.get(name, 0) + remembered
        if remembered:  # its seconds were spent by an earlier build
            self.seconds_remembered[name] = self.seconds_remembered.get(name, 0.0) + _seconds(value)
        return value

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _pool(self) -> ProcessPoolExecutor | None:
        if self.pool is None and (os.cpu_count() or 1) > 1:
            self.pool = ProcessPoolExecutor(
                os.cpu_count(),
                mp_context=multiprocessing.get_context("fork"),
                initializer=_forked_worker,
            )
        return self.pool

    def _submit(self, function, *args):
        # The parent recalls (a warm cache) and keeps each result as it collects it. The key
        # reads every derivation (derivations.owners), which a worker forked before they
        # were derived would derive again, each worker all of them (2.5 s of CPU each).
        if self.recalling:
            found, result = cache.recall(function, args)
            if found:
                return _run_now(lambda: (result, True))
        if (os.cpu_count() or 1) == 1:  # recalled above, or nothing to recall: run it, keep it
            return _run_now(cache.remembered, function, args, True)
        if self.pool is None:  # forked by start(): the workers find it in their copy of _TASKS,
            with self.lock:  # unless the early process, idle until then, takes it first
                future = _Pending(len(self.pending))
                self.pending.append(future)
                self.unstarted.append((function, args))
            self._feed_early()
        else:  # the workers were forked before it existed: sent to them pickled
            future = self.pool.submit(_run_unremembered, function, args)
        self.unkept[future] = (function, args)
        return future

    def _early_is_free(self) -> bool:
        """Whether the early process has at most one task waiting (more would make a tail
        after the workers have finished: they take the rest)."""
        if self.early is None or self.recalling:
            return False
        return sum(not f.done() for f in self.early_futures) < 2

    def _feed_early(self, _done=None) -> None:
        """Give the early process, pickled, the oldest tasks no process has, while it has at
        most one waiting and the workers are not forked: called as each task is submitted
        and as each of its tasks finishes. Given only as each derivation was derived, it sat
        idle while the next one was (a third of the deriving time, on two CPUs)."""
        with self.lock:
            while self.pool is None and self.fed < len(self.pending) and self._early_is_free():
                pending = self.pending[self.fed]
                try:
                    future = self.early.submit(_run_unremembered, *self.unstarted[self.fed])
                except RuntimeError:  # shut down (the build failed): the workers never start
                    return
                self.fed += 1
                pending.future = future
                self.early_futures.append(future)
                future.add_done_callback(self._feed_early)

    def start(self) -> None:
        """Fork the workers and start every task submitted so far.

        Forked only now, the workers hold every derivation and check as this process
        made them (with SymPy's cached assumptions): a task is sent as its number in
        ``_TASKS``, not as pickled expressions that a worker would rebuild.
        """
        with self.lock:
            if self.fed == len(self.pending):  # none left, or the early process has them all
                return
            global _TASKS
            _TASKS = self.unstarted  # what the workers forked next find
            pool = self._pool()
            for pending in self.pending[self.fed :]:
                pending.future = pool.submit(_run_task, pending.number)
            self.pending, self.unstarted, self.fed = [], [], 0

    def submit(self, name: str, derivation: Derivation) -> None:
        """Start proving ``derivation``'s identities and checking its exercises."""
        self.tasks[name] = [
            (identity, sizes, self._submit(prove_part, _index_form_only(identity, sizes), sizes))
            for identity in derivation.identities
            for sizes in (None, *build_sizes(identity))
        ]
        self.exercises[name] = [
            (exercise, self._submit(check_exercise, exercise)) for exercise in derivation.exercises
        ]
        self.steps[name] = [
            (claim, self._submit(claims.check, claims.untitled(claim)))
            for claim in claims.claims(derivation)
        ]

    def draw(self, code: list[Output], figures: list) -> list:
        """Start drawing each figure, with the generated ``code`` imported: a future each."""
        self.start()
        pool = self._pool()
        if pool is None:
            return [_not_started() for _ in figures]
        return [pool.submit(_draw_with, code, figure) for figure in figures]

    def results(self, keep: bool = True) -> dict[str, tuple[ProofResult, ...]]:
        """Wait for every proof and exercise; raise the first failure as a BuildError.

        ``keep``: remember in the cache the results of the checks the workers ran (every
        derivation is derived by then; a build that failed deriving one asks only for the
        failures).
        """
        self.start()
        results = {}
        for name, tasks in self.tasks.items():
            parts: dict[str, list] = {}
            for identity, sizes, future in tasks:
                with stage(name, f"proving {identity.name!r}"):
                    assumptions, spent = self._value(name, future, keep)
                parts.setdefault(identity.name, []).append((identity, sizes, assumptions, spent))
            results[name] = tuple(
                ProofResult(
                    identity=identity.name,
                    claim=identity.claim,
                    index_form=True,
                    explicit_sizes=tuple(dict(s) for _, s, _, _ in done if s is not None),
                    assumptions_used=next(a for _, s, a, _ in done if s is None),
                    seconds=sum(t for _, _, _, t in done),
                )
                for done in parts.values()
                for identity in (done[0][0],)
            )
        for name, exercises in self.exercises.items():  # a failed proof is reported first
            for number, (exercise, future) in enumerate(exercises, 1):
                with stage(name, f"checking exercise {number} ({exercise.name!r})"):
                    self._value(name, future, keep)
        for name, steps in self.steps.items():
            checked = []
            for claim, future in steps:
                with stage(name, f"checking step {claim.number} ({claim.title!r})"):
                    checked.append(self._value(name, future, keep))
            results[name] = (*results.get(name, ()), *checked)
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def _seconds(value) -> float:
    """The seconds a check's result records: a proof part's (assumptions, seconds), a step's."""
    if isinstance(value, tuple):
        return value[1]
    return getattr(value, "seconds", 0.0)


def _index_form_only(identity, sizes):
    """The index form reads no explicit check: without it, a prose edit beside the
    check's function does not re-prove the index form (derive.cache.remembered)."""
    return replace(identity, explicit=None) if sizes is None else identity


def _figure_task(code: list[Output], figure) -> tuple:
    """What drawing ``figure`` reads: the generated code, the figure (its function's module
    source goes into the key), the posts' numbers and matplotlib's version; a figure of
    measured results reads those instead of the code (a docstring's edit does not redraw it)."""
    from derive.figures import plots_results, results_read

    reads = (PACKAGE / "posts.py").read_bytes() + installed_version("matplotlib").encode()
    if plots_results(figure):
        return [], figure, reads + results_read(figure)
    # the code as it runs: without its header's hash of the derivation's source (prose), and
    # where it is written relative to the checkout (a copy of it, cache and all, draws none again)
    return [replace(o, inputs="", path=o.path.relative_to(ROOT)) for o in code], figure, reads


def _remembered_figures(code: list[Output], figures: list, force: bool) -> dict[Path, str]:
    """The figures an earlier build drew from the same inputs (for the site's own, the same
    results files)."""
    from derive.figures import FIGURE_DIR

    if force:
        return {}
    found = {}
    for figure in figures:
        known, svg = cache.recall(_draw_with, _figure_task(code, figure))
        if known:
            found[FIGURE_DIR / figure.file] = svg
    return found


class _EarlyFigures(dict):
    """The site's figures of measured results (figure -> its future, or its SVG): they read
    results files, not the generated code, so the early process (_early_process) draws them
    on the CPU that deriving, which runs in this process alone, leaves idle."""

    def collect(self) -> dict[Path, str]:
        from derive.figures import FIGURE_DIR

        drawn = {}
        for figure, svg in self.items():
            with stage("(figures)", f"drawing {figure.file}"):
                if not isinstance(svg, str):  # a future: drawn by the early process
                    svg = svg.result()
                    cache.keep(_draw_with, _figure_task([], figure), svg)
            drawn[FIGURE_DIR / figure.file] = svg
        return drawn


def _results_figures(
    figures: bool, force: bool, early: ProcessPoolExecutor | None
) -> _EarlyFigures:
    """Start drawing, in ``early``, the results figures an earlier build did not draw (see
    _EarlyFigures); without it, draw them here."""
    from derive.figures import FIGURE_DIR, SITE_FIGURES, plots_results

    found = _EarlyFigures()
    wanted = [f for f in SITE_FIGURES if plots_results(f)] if figures else []
    remembered = _remembered_figures([], wanted, force)
    for figure in wanted:
        if FIGURE_DIR / figure.file in remembered:
            found[figure] = remembered[FIGURE_DIR / figure.file]
        elif early is None:
            found[figure] = _run_now(_draw_results, figure)
        else:
            found[figure] = early.submit(_draw_results, figure)
    return found


@contextmanager
def _early_process() -> Iterator[ProcessPoolExecutor | None]:
    """One process, forked before deriving starts, for what needs no derivation (the results
    figures) and for checks pickled to it while this process derives (none with one CPU)."""
    if (os.cpu_count() or 1) == 1:
        yield None
        return
    pool = ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("fork"), initializer=_forked_worker
    )
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def _draw_results(figure) -> str:
    """A figure of measured results, which reads no generated code."""
    from derive.figures import draw

    return draw(None, figure)


def _draw_with(code: list[Output], figure, reads: bytes = b"") -> str:
    """In a worker: import the generated ``code`` and draw ``figure`` with it (``reads``:
    what else the drawing reads, for its key in the cache only)."""
    from derive.figures import draw

    with _generated_once(code) as generated:
        return draw(generated, figure)


_IMPORTED: dict[str, dict] = {}  # the generated modules a worker last imported, by code hash


@contextmanager
def _generated_once(code: list[Output]) -> Iterator:
    """``generated_package(code)``, imported once per process: a worker draws several figures
    from the same code (each import cost 16 ms). The modules, all imported by the package's
    ``__init__``, outlive the temporary folder they were read from."""
    import hashlib

    key = hashlib.sha256("\0".join(o.text for o in code).encode()).hexdigest()
    if key not in _IMPORTED:
        _IMPORTED.clear()  # one build's code at a time
        with generated_package(code):
            _IMPORTED[key] = {m: sys.modules[m] for m in sys.modules if _is_generated(m)}
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_generated(m)}
    sys.modules.update(_IMPORTED[key])
    try:
        yield _IMPORTED[key]["derive.generated"]
    finally:
        for m in [m for m in sys.modules if _is_generated(m)]:
            del sys.modules[m]
        sys.modules.update(saved)


def _is_generated(module: str) -> bool:
    return module == "derive.generated" or module.startswith("derive.generated.")


class _not_started:
    """A task no worker will run: the caller does it (``cancel`` succeeds)."""

    def cancel(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return True


def _forked_worker() -> None:
    """A worker process's first act: let go of the build lock (its parent holds it), and
    where Linux allows, end with its parent, so that a killed build leaves no process behind."""
    lock.forget_in_child()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass  # not Linux: the worker ends when its call queue closes, as before


_TASKS: list[tuple] = []  # the (function, args) a pool's workers were forked with (Workers.start)


class _Pending:
    """A task submitted before the workers exist: its future once ``Workers.start`` sends it."""

    def __init__(self, number: int):
        self.number = number
        self.future = None

    def result(self):
        return self.future.result()


def _run_task(number: int) -> tuple:
    """In a worker: task ``number`` of its copy of ``_TASKS``, neither recalled nor kept."""
    function, args = _TASKS[number]
    return _run_unremembered(function, args)


def _run_unremembered(function, args: tuple) -> tuple:
    """``function(*args)`` as ``cache.remembered`` returns it, neither recalled nor kept."""
    return function(*args), False


class _run_now:
    """A finished "future": the sequential stand-in for a process pool's submit."""

    def __init__(self, function, *args):
        try:
            self.value, self.error = function(*args), None
        except Exception as error:  # raised again, inside its stage, by result()
            self.value, self.error = None, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


def _pickled(derived: dict[str, Derivation], kept: dict) -> dict[str, bytes]:
    """The derivations not from the cache, pickled for it (those that cannot be: left out)."""
    ready = {}
    for name, derivation in derived.items():
        if name not in kept:
            try:
                ready[name] = cache.pickled(derivation)
            except (pickle.PicklingError, AttributeError, TypeError):
                continue  # a cache that cannot be written only makes the next build slower
    return ready


def _store(
    results: list[Derived], kept: dict[str, bool], proved: bool, ready: dict[str, bytes]
) -> None:
    """Keep what was derived (and proved) in this run for the next build (``ready``: pickled)."""
    keys: dict[str, str] = {}

    def key(name: str) -> str:
        if name not in keys:
            entry = cache.load(name)
            keys[name] = entry.key if entry is not None else ""
        return keys[name]

    by_name = {d.derivation.name: d for d in results}
    order = sorted(by_name, key=lambda n: len(derivations.depends_on(n)))  # used before users
    for name in order:
        if kept[name] or name not in ready:
            continue
        used = {other: key(other) for other in derivations.results_used(name)}
        try:
            entry = cache.store(name, ready[name], by_name[name].proofs if proved else None, used)
        except OSError:
            continue  # a cache that cannot be written only makes the next build slower
        keys[name] = entry.key


def code_outputs(derived: list[Derived]) -> list[Output]:
    """The generated modules and ``derive/generated/__init__.py``."""
    env = environment()
    owner = {k.name: d.derivation.name for d in derived for k in d.derivation.kernels}
    fresh_calls = fresh_callees({k.name: k for d in derived for k in d.derivation.kernels})
    template = (ROOT / "templates" / "module.py.j2").read_bytes()
    rendered = {}
    for d in derived:
        name = d.derivation.name
        if not d.derivation.function_names:  # a page only (cross_entropy_options): no module
            continue
        made_from = (  # what the module is made from (module.py.j2 and generate_module)
            d.derivation.title,
            d.derivation.summary,
            d.derivation.kernels,
            d.derivation.dispatches,
            owner,
            fresh_calls,
            template,
        )
        rendered[name] = memo.made_from(
            "module",
            name,
            made_from,
            partial(_module_source, env, d.derivation, owner, fresh_calls),
        )
    format_ahead(list(rendered.values()))  # one ruff process for those not formatted before
    outputs = []
    for name, body in rendered.items():
        with stage(name, "formatting the module rendered from templates/module.py.j2"):
            body = format_python(body)
        outputs.append(
            Output(
                path=GENERATED / f"{name}.py",
                source=f'the derivation "{name}" (derive/derivations/{name}.py)',
                inputs=inputs_digest(*derivations.sources(name), *CODE_INPUTS),
                body=body,
            )
        )
    modules = [
        {"name": d.derivation.name, "functions": d.derivation.function_names}
        for d in derived
        if d.derivation.function_names
    ]
    with stage("(all)", "rendering templates/generated_init.py.j2"):
        body = env.get_template("generated_init.py.j2").render(modules=modules)
    outputs.append(
        Output(
            path=GENERATED / "__init__.py",
            source="the registry (derive/derivations/__init__.py)",
            inputs=inputs_digest(
                PACKAGE / "derivations" / "__init__.py", ROOT / "templates" / "generated_init.py.j2"
            ),
            body=body,
        )
    )
    return outputs


def _module_source(env, derivation: Derivation, owner: dict, fresh_calls: frozenset) -> str:
    """A derivation's generated module as the template renders it (unformatted, no header)."""
    with stage(derivation.name, "rendering templates/module.py.j2"):
        return env.get_template("module.py.j2").render(
            **generate_module(derivation, owner, fresh_calls)
        )


IMPORT_PREFIX = litter.IMPORT_PREFIX  # one project's, found by the next build


@contextmanager
def generated_package(code: list[Output] | None = None) -> Iterator:
    """``derive.generated`` as it is on disk, or as ``code`` would write it.

    With ``code``, the modules are written to a temporary folder and imported
    from there, so pages and figures are made from the new code before any
    file of the project is replaced.
    """
    saved = {
        m: sys.modules.pop(m)
        for m in list(sys.modules)
        if m == "derive.generated" or m.startswith("derive.generated.")
    }
    try:
        with tempfile.TemporaryDirectory(prefix=litter.import_prefix()) as folder:
            location = GENERATED
            if code is not None:
                location = Path(folder)
                for output in code:
                    (location / output.path.name).write_text(output.text)
            spec = importlib.util.spec_from_file_location(
                "derive.generated",
                location / "__init__.py",
                submodule_search_locations=[str(location)],
            )
            package = importlib.util.module_from_spec(spec)
            sys.modules["derive.generated"] = package
            spec.loader.exec_module(package)
            yield package
    finally:
        for m in [
            m for m in sys.modules if m == "derive.generated" or m.startswith("derive.generated.")
        ]:
            del sys.modules[m]
        sys.modules.update(saved)


def page_outputs(derived: list[Derived], generated) -> list[Output]:
    from derive.pages import page_outputs as render_pages  # imports numpy and matplotlib-free

    return render_pages(derived, generated)


class RestoreFailed(BuildError):
    """A write failed and the previous outputs could not all be put back (the journal remains)."""


JOURNAL = litter.JOURNAL  # what a build killed while replacing files must undo
LOCK = locations.state() / ".derive-build.lock"
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


def _import_folders() -> list[Path]:
    """Temporary folders ``generated_package`` made for this project whose process has ended."""
    return litter.import_folders()


@contextmanager
def _locked(log: Callable[[str], None], shared: bool = False) -> Iterator[None]:
    try:
        with lock.held(
            LOCK,
            LOCK_TIMEOUT,
            shared,
            waiting=lambda: log(f"waiting for another build to finish ({LOCK.name})"),
        ):
            yield
    except lock.LockTimeout as error:
        raise BuildError(str(error)) from error
    except OSError as error:
        if error.filename != str(LOCK):
            raise
        raise BuildError(
            f"cannot open the build lock {locations.shown(LOCK)}: {error.strerror}"
        ) from error


def _tidy(log: Callable[[str], None]) -> None:
    """Undo what an interrupted build left: a half-done commit, temporary files and folders."""
    try:
        restored = transaction.recover(JOURNAL)
    except (OSError, ValueError) as error:
        raise RestoreFailed(
            f"restoring the files listed in {JOURNAL.name} (left by an interrupted build): {error}"
        ) from error
    if restored:
        log(f"restored {len(restored)} file(s) an interrupted build had half replaced")
    for path in transaction.remove_leftovers(litter.OUTPUT_FOLDERS):
        log(f"removed {path.relative_to(ROOT)} (left by an interrupted build)")
    for folder in _import_folders():
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Let SymPy allocate without a cyclic garbage collection every 700 new objects.

    The objects made so far (the imported modules) are set aside
    (``gc.freeze``, which the worker processes then share without copying),
    and a collection waits for 50,000 new objects: 4 % off deriving and
    proving. Both are undone on leaving.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


# Modules SymPy imports only when first needed (simplify imports its units to look for a
# Quantity): imported before the early process is forked, it need not import them again.
SYMPY_IMPORTS_LATER = (
    "sympy.physics.units",
    "sympy.assumptions.satask",
    "sympy.assumptions.lra_satask",
    "sympy.assumptions.handlers.matrices",
    "sympy.codegen.cfunctions",
)


def _import_what_sympy_imports_later() -> None:
    """Import ``SYMPY_IMPORTS_LATER`` now, once for this process and the ones it forks
    (0.2 s of CPU each, and this process imports them while deriving anyway)."""
    for module in SYMPY_IMPORTS_LATER:
        importlib.import_module(module)


def build(
    log: Callable[[str], None] = print, figures: bool = True, force: bool = False
) -> list[Path]:
    """Regenerate everything; raise BuildError (writing nothing) if any stage fails."""
    with _locked(log):
        _tidy(log)
        start = time.perf_counter()
        code: list[Output] = []
        pages: list[Output] = []
        drawn: dict[Path, str] = {}

        def meanwhile(derived: list[Derived]) -> None:  # while the proofs run: all but the proofs
            code.extend(code_outputs(derived))
            for output in code:  # a template that renders invalid Python fails here
                template = (
                    "generated_init.py.j2" if output.path.name == "__init__.py" else "module.py.j2"
                )
                with stage(
                    output.path.stem,
                    f"compiling {output.path.relative_to(ROOT)} (rendered from templates/{template})",
                ):
                    compile(output.text, str(output.path), "exec")
            with (
                stage("(all)", "importing the generated modules from a temporary folder"),
                generated_package(code) as generated,
            ):
                generated.__all__  # noqa: B018 - the import above ran them
                pages.extend(page_outputs(derived, generated))  # they show no proof's result
                if figures:  # last: a worker done proving takes a share of them
                    from derive.figures import FIGURE_DIR, SITE_FIGURES, draw_all

                    with stage("(figures)", "drawing"):
                        declared = [f for d in derived for f in d.derivation.figures]
                        declared += [f for f in SITE_FIGURES if f not in early]
                        drawn.update(_remembered_figures(code, declared, force))
                        missing = [f for f in declared if FIGURE_DIR / f.file not in drawn]
                        new = draw_all(generated, missing, elsewhere=partial(workers.draw, code))
                        for figure in missing:  # what draw_all drew, by its path
                            path = FIGURE_DIR / figure.file
                            if path in new:
                                cache.keep(_draw_with, _figure_task(code, figure), new[path])
                        drawn.update(new)

        if figures:  # imported once, here, rather than once in every worker process
            from derive.figures import pyplot

            pyplot()
        _import_what_sympy_imports_later()
        with (
            _fewer_collections(),
            _early_process() as early_process,
            Workers(force, early_process) as workers,
        ):
            early = _results_figures(figures, force, early_process)
            derive_all(run_proofs=True, log=log, force=force, meanwhile=meanwhile, workers=workers)
            drawn.update(early.collect())
        written = write(code + pages, drawn)
        unrecorded = None
        try:
            cache.record_outputs(figures, [o.path for o in (*code, *pages)] + list(drawn))
        except OSError as error:  # the outputs are written: a cache that cannot be is only slower
            unrecorded = error
    for path in written:
        log(f"wrote {path.relative_to(ROOT)}")
    if unrecorded is not None:
        print(
            f"note: the build could not record its outputs in {cache.FOLDER}: "
            f"{unrecorded.strerror or unrecorded}; every output is written, but the next build "
            "cannot tell that nothing changed (make that folder writable, or remove it)",
            file=sys.stderr,
        )
    log(f"build finished in {time.perf_counter() - start:.2f} s, {len(written)} file(s) changed")
    return written


def check() -> list[str]:
    """Problems with the committed outputs: stale, edited by hand, missing, unexpected or litter."""
    with _locked(lambda message: print(message, file=sys.stderr), shared=True):
        problems = constraints.mismatches()  # another SymPy or ruff writes other files
        problems += litter.found()
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
                problems.append(
                    f"{path.relative_to(ROOT)}: unexpected (no derivation generates it)"
                )
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
