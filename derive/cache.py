"""What earlier builds derived and proved, kept so a build redoes only what changed.

Two levels, both in ``.derive-cache/`` (never committed):

* per derivation, the derived :class:`~derive.steps.Derivation` and its proofs,
  keyed on its own module, the engine that derives and proves it, and the keys
  of the derivations whose results it used: an edit re-derives and re-proves
  that derivation and what depends on it, nothing else;
* per check (a step, an identity's proof at one size, an exercise), its result,
  keyed on what the check reads: the claim's expressions, the engine, and the
  source of any derivation module whose functions it calls. An edit to a
  page's prose re-derives its module but re-proves nothing; an edit to one
  formula re-proves the claims that contain it;
* for the whole build, a hash of every input file and of every output written:
  when nothing changed, ``python -m derive build`` stops before importing SymPy.

``python -m derive build --force`` ignores all three (and refills them).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import sys
import tempfile
import types
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.metadata import version
from pathlib import Path

from derive import locations

ROOT = locations.CODE
# In a checkout, its .derive-cache/; from an installed copy, the user's folder: never site-packages
FOLDER = locations.state() / ".derive-cache"
PACKAGE = ROOT / "derive"

# What deriving and proving any derivation depends on, besides its own module; the registry's
# list of modules is left out (adding a derivation changes no other), its code is not.
ENGINE = [
    PACKAGE / name
    for name in (
        "model.py",
        "steps.py",
        "sympy_tools.py",
        "proofs.py",
        "claims.py",
        "differentiate.py",
        "forward.py",
        "figures.py",
        "floats.py",
        "cache.py",
    )
]
REGISTRY = PACKAGE / "derivations" / "__init__.py"


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _versions() -> str:
    return f"{sys.version_info[:2]} sympy {version('sympy')} ruff {version('ruff')}"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- per derivation -----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One derivation as an earlier build derived (and maybe proved) it."""

    own: str  # hash of its module and the engine
    key: str  # own, and the keys of the derivations it used
    used: dict[str, str]  # derivation whose results it used -> that one's key then
    pickled: bytes  # derive.steps.Derivation, by ``pickled``: read only when used
    proofs: tuple | None  # proofs.ProofResult per identity; None if not proved

    @cached_property
    def derivation(self):
        return pickle.loads(self.pickled)


def _registry_code() -> str:
    """The registry module without its ``MODULES = (...)`` list."""
    import ast

    tree = ast.parse(REGISTRY.read_text())
    tree.body = [
        node
        for node in tree.body
        if not (
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", "") == "MODULES" for t in node.targets)
        )
    ]
    return ast.dump(tree)


@cache
def _engine_key() -> str:
    """The engine's part of every derivation's key: read once per process, not once per lookup."""
    return _digest(_versions(), _registry_code(), *(p.read_bytes() for p in ENGINE))


def own_key(name: str) -> str:
    module = PACKAGE / "derivations" / f"{name}.py"
    return _digest(_engine_key(), module.read_bytes())


def _entry_path(name: str) -> Path:
    return FOLDER / f"{name}.pickle"


def load(name: str, _valid: dict | None = None) -> Entry | None:
    """The cached entry of ``name`` if it and everything it used are unchanged."""
    valid = {} if _valid is None else _valid
    if name in valid:
        return valid[name]
    valid[name] = None  # a cycle, or a failure below, reads as "not cached"
    try:
        entry = _read(name)
        if not isinstance(entry, Entry) or entry.own != own_key(name):
            return None
        entry.derivation  # noqa: B018 - read here, where a failure means "not cached"
    except Exception:  # missing, truncated, or made by another version of the code
        return None
    for other, key in entry.used.items():
        used = load(other, valid)
        if used is None or used.key != key:
            return None
    valid[name] = entry
    return entry


_read_before: dict[str, tuple[bytes, Entry]] = {}


def _read(name: str) -> Entry:
    """The entry stored for ``name``: the same object as last time if its file is unchanged.

    A long-lived process (``derive.warm``, under ``mkdocs serve``) then unpickles an unchanged
    derivation once, and what it remembers by object (claims, LaTeX) stays valid.
    """
    data = _entry_path(name).read_bytes()
    before = _read_before.get(name)
    if before is not None and before[0] == data:
        return before[1]
    entry = pickle.loads(data)
    if isinstance(entry, Entry):
        _read_before[name] = (data, entry)
    return entry


def forget(name: str) -> None:
    """Read ``name``'s entry afresh next time (its module was imported again)."""
    _read_before.pop(name, None)


def pickled(derivation) -> bytes:
    """``derivation`` pickled, for `store`; a PicklingError if it comes back changed.

    Done apart from `store`, so that a build can pickle its derivations while
    the last proofs still run (reading one back costs 15 ms).
    """
    data = pickle.dumps(derivation)
    if pickle.loads(data) != derivation:  # e.g. an unevaluated expression evaluated
        raise pickle.PicklingError(
            f"{derivation.name}: the derivation changes when pickled; not cached"
        )
    return data


def store(name: str, derivation: bytes, proofs: tuple | None, used: dict[str, str]) -> Entry:
    """Keep a derivation (``pickled``) and its proofs for the next build; ``used``: name -> key."""
    own = own_key(name)
    entry = Entry(
        own=own,
        key=_digest(own, *(f"{k}={v}" for k, v in sorted(used.items()))),
        used=dict(used),
        pickled=derivation,
        proofs=proofs,
    )
    _write_atomically(_entry_path(name), pickle.dumps(entry))
    return entry


# -- per check (content-addressed) ---------------------------------------------------------

CHECKS = FOLDER / "checks"


DERIVATION_MODULE = "derive.derivations."


class _Fingerprint(pickle.Pickler):
    """Pickles a check's arguments and notes what the functions among them read.

    An expression is written as its ``srepr``, which names only what defines it.

    A function pickles by name only. One of a derivation module is then read
    as what it runs (``_function_parts``): its code, its defaults, and the
    module's globals it names, pickled here in turn, so a function it calls
    is read the same way. Anything else of a derivation module (a class, a
    cached function) and any other function of the package stand for their
    module's whole source (``modules``).
    """

    def __init__(self, file) -> None:
        super().__init__(file, protocol=5)
        self.modules: set[str] = set()
        self.functions: dict[str, types.FunctionType] = {}  # of derivation modules, by name
        self.structures: dict[int, str] = {}  # expression's id -> its _structure, while pickling

    def reducer_override(self, obj):
        from sympy import Basic, srepr  # imported by then; not before a build needs it

        if isinstance(obj, Basic):  # its pickle carries the assumptions queried so far
            return str, (_structure(obj, srepr, self.structures),)
        if isinstance(obj, types.ModuleType):  # a module a function names: by its name
            if obj.__name__.startswith(DERIVATION_MODULE):
                self.modules.add(obj.__name__)
            return importlib.import_module, (obj.__name__,)
        module = getattr(obj, "__module__", None)
        if isinstance(obj, types.FunctionType) and isinstance(module, str):
            if module.startswith(DERIVATION_MODULE) and "<" not in obj.__qualname__:
                self.functions.setdefault(f"{module}.{obj.__qualname__}", obj)
            else:
                self.modules.add(module)
        elif isinstance(obj, type) and isinstance(module, str):
            self.modules.add(module)
        elif callable(obj) and isinstance(module, str) and module.startswith(DERIVATION_MODULE):
            self.modules.add(module)  # a wrapped function (functools.cache): its whole module
        return NotImplemented


def _structure(expr, srepr, seen: dict[int, str]) -> str:
    """``srepr(expr)`` in all but order: the arguments as ``expr.args`` holds them (SymPy's
    canonical order), not sorted for printing, which made the key 2 to 5 times slower.
    An atom is its ``srepr`` (a symbol's assumptions, a float's precision)."""
    text = seen.get(id(expr))
    if text is None:
        if not expr.args:
            text = srepr(expr)
        else:
            from sympy.core.function import AppliedUndef

            head = srepr(expr.func) if isinstance(expr, AppliedUndef) else type(expr).__name__
            text = f"{head}({', '.join(_structure(a, srepr, seen) for a in expr.args)})"
        seen[id(expr)] = text
    return text


def _stable(value):
    """A code object's constant, the same in every process (a frozenset's order is not)."""
    if isinstance(value, types.CodeType):
        return _code_parts(value)
    if isinstance(value, frozenset):
        return ("frozenset", sorted(repr(v) for v in value))
    if isinstance(value, tuple):
        return tuple(_stable(v) for v in value)
    return value


def _code_parts(code: types.CodeType) -> tuple:
    """What a code object runs, without where it sits in its file (its line numbers)."""
    return (
        code.co_code,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
        code.co_exceptiontable,
        _stable(code.co_consts),
    )


def _global_names(code: types.CodeType) -> set[str]:
    """Every name the code (and the functions defined in it) may look up in its globals."""
    nested = (c for c in code.co_consts if isinstance(c, types.CodeType))
    return set(code.co_names).union(*(_global_names(c) for c in nested))


def _function_parts(function: types.FunctionType) -> tuple:
    """What a derivation module's function reads: its code, defaults and closure, and the
    values of the module's globals it names (a global read by a computed name is not seen)."""
    names = sorted(_global_names(function.__code__) & function.__globals__.keys())
    return (
        _code_parts(function.__code__),
        function.__defaults__,
        function.__kwdefaults__,
        tuple(cell.cell_contents for cell in function.__closure__ or ()),
        [(name, function.__globals__[name]) for name in names],
    )


def _module_sources(modules: set[str], derivation_modules: set[str]) -> list[bytes]:
    """The sources of ``modules`` (whole), and of the derivations that the
    ``derivation_modules`` use the results of (their own functions are in the key already)."""
    from derive import derivations  # the registry imports the engine, not back

    files: set[Path] = set()
    for module in modules:
        if module.startswith(DERIVATION_MODULE):
            files.update(derivations.sources(module.rsplit(".", 1)[1]))
        elif module.startswith("derive") and getattr(sys.modules.get(module), "__file__", None):
            files.add(Path(sys.modules[module].__file__))
    for module in derivation_modules:
        name = module.rsplit(".", 1)[1]
        if name in derivations.MODULES:  # (a helper module of the folder uses no results)
            files.update(derivations.source(n) for n in derivations.depends_on(name))
    return [f"{p.name}\0".encode() + p.read_bytes() for p in sorted(files)]


def check_key(function, args: tuple) -> str:
    """What ``function(*args)`` reads: the engine, the arguments, the code of their functions."""
    buffer = io.BytesIO()
    pickler = _Fingerprint(buffer)
    pickler.dump((function, args))
    done: set[str] = set()
    while pending := sorted(pickler.functions.keys() - done):
        for name in pending:  # each pickled in turn: what it names is noted in its turn
            done.add(name)
            try:
                pickler.dump((name, _function_parts(pickler.functions[name])))
            except Exception:  # something it names cannot be pickled: its whole module
                pickler.modules.add(pickler.functions[name].__module__)
    derivation_modules = {f.__module__ for f in pickler.functions.values()}
    return _digest(
        _engine_key(), buffer.getvalue(), *_module_sources(pickler.modules, derivation_modules)
    )


def remembers_checks() -> bool:
    """Whether an earlier build kept any check's result (a cold cache has none to recall)."""
    try:
        return any(CHECKS.glob("*.pickle"))
    except OSError:
        return False


def recall(function, args: tuple) -> tuple[bool, object]:
    """``(True, result)`` if an earlier build ran ``function(*args)`` with the same key."""
    try:
        return True, pickle.loads((CHECKS / f"{check_key(function, args)}.pickle").read_bytes())
    except Exception:  # missing, truncated, or made by another version of the code
        return False, None


def keep(function, args: tuple, result) -> None:
    """Remember ``result`` as ``function(*args)``'s; an unwritable cache costs only time."""
    try:
        _write_atomically(CHECKS / f"{check_key(function, args)}.pickle", pickle.dumps(result))
    except OSError:
        pass


def remembered(function, args: tuple, force: bool = False) -> tuple:
    """``(function(*args), False)``, or ``(its result from an earlier build, True)``.

    A check that raises is not kept (the next build runs it again).
    """
    if not force:
        found, result = recall(function, args)
        if found:
            return result, True
    result = function(*args)
    keep(function, args, result)
    return result, False


# -- the whole build ----------------------------------------------------------------------

_RECORD = FOLDER / "outputs.json"


def inputs_key(figures: bool) -> str:
    """A hash of every file a build reads: the package, the templates, the measured results,
    and the array-library tests; a file that is missing is left out, so one that appears or
    goes changes the hash."""
    files = sorted(
        p
        for p in (
            *PACKAGE.rglob("*.py"),
            *(ROOT / "templates").glob("*"),
            ROOT / "bench-results" / "latest.json",
            ROOT / "accuracy-results" / "latest.json",
            # the Benchmarks page names the libraries it tests (derive.pages.ARRAY_LIBRARY_TESTS)
            ROOT / "tests" / "test_array_libraries.py",
        )
        if p.is_file() and "generated" not in p.parts and "__pycache__" not in p.parts
    )
    return _digest(
        _versions(),
        str(figures),
        *(f"{p.relative_to(ROOT)}" for p in files),
        *(p.read_bytes() for p in files),
    )


def _file_hash(path: Path) -> str:
    return _digest(path.read_bytes()) if path.exists() else "missing"


def record_outputs(figures: bool, outputs: list[Path]) -> None:
    """After a successful build: what it read, and what every output it made contains."""
    record = {
        "inputs": inputs_key(figures),
        "outputs": {str(p.relative_to(ROOT)): _file_hash(p) for p in outputs},
    }
    _write_atomically(_RECORD, json.dumps(record, indent=1).encode())


def up_to_date(figures: bool) -> bool:
    """Whether the last build read the same inputs and its outputs are untouched since."""
    try:
        record = json.loads(_RECORD.read_text())
    except (OSError, ValueError):
        return False
    if record.get("inputs") != inputs_key(figures):
        return False
    return all(_file_hash(ROOT / path) == h for path, h in record.get("outputs", {}).items())
