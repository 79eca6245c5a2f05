"""The notation every page follows, as data, and the check the build runs against it.

What each size counts, which letters count it, and which names are kept for one
meaning. The home page's notation list is rendered from these tables
(templates/index.md.j2), and ``check`` fails the build, naming the page and the
letter, where a derivation departs from them:

* an index ranges over something that is not a size of the table;
* one letter counts two different things on one page (an input in one step, a
  class in the next);
* a letter counts something the table does not give it (``d`` over the classes),
  unless the derivation declares it (``Derivation.notation``);
* a letter is an index and also a name on one page (``m``: the logits' maximum
  and a summation index), or a name kept for one meaning is an index;
* a size's letter names something else (``H`` for the Hessian).

Roles are read from each index's range (``Idx("k", (1, C))`` counts classes), so
a derivation that follows the table declares nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass

import sympy as sp

SIZES: dict[str, str] = {
    "C": "classes",
    "D": "inputs",
    "H": "hidden units",
    "B": "samples in a batch",
    "K": "entries of a vector of any length",
}
"""Each size's letter and what it counts."""

INDICES: dict[str, tuple[str, ...]] = {
    "C": ("i", "j", "k", "t", "c", "l", "n", "r", "ell"),
    "D": ("d", "j"),
    "H": ("k", "n"),
    "B": ("b",),
    "K": ("j", "k"),
}
"""The letters that may count each size, the usual one first (SymPy's names: ``ell`` is ℓ).

A letter with a prime counts what the letter counts (``b'``, a second sample).
"""

INDEX_NOTES: tuple[str, ...] = (
    "On one page a letter counts one thing. $j$ is a second class index on the pages "
    "about the logits alone ($\\partial S_i / \\partial z_j$) and an input index on the "
    "pages about the weights ($W_{jc}$); on the two-layer page $k$ and $n$ count hidden "
    "units. Each page's definitions say which.",
    "$\\ell$ is a class label: as an index, the true class ($y = e_\\ell$); as an array, "
    "$\\ell_b$ is sample $b$'s label.",
    "A letter with a prime counts what the letter counts: $b'$ is a second sample.",
)
"""What the home page says about the index letters, besides the table."""

NAMES: dict[str, str] = {
    "x": "the input, $D$ numbers (a batch: $X$, $B \\times D$)",
    "W": "the weights, $D \\times C$: $W_{jc}$ from input $j$ to class $c$",
    "z": "the logits, $z = W^T x$",
    "S": "the softmax output, $S = \\operatorname{softmax}(z)$",
    "y": "the targets, a distribution over the classes",
    "XE": "the cross-entropy loss",
    "m": "the maximum of the logits, $m = \\max_l z_l$, by which log-sum-exp and the "
    "softmax shift them; never an index",
    "H": "the number of hidden units, and only that: the Hessian is $\\mathcal{H}$, the "
    "hidden layer's activations $h$",
    "O": "a sum over the other classes, $O_c = \\sum_{n \\ne c} S_n$: $1 - S_c$ computed "
    "without subtracting",
    "Q": "the same for $S \\odot U$: $Q_c = \\sum_{n \\ne c} S_n U_n$",
    "r": "in $\\operatorname{log1p}(r) = \\log(1 + r)$, the sum of log-sum-exp's shifted "
    "terms other than the largest (the loss from the logits); as an index, a class",
}
"""Names kept for one meaning on every page (the first six are the posts')."""

RESERVED = ("m", "S", "z", "W", "x", "y", "O", "Q", *SIZES)
"""Names that are never an index."""

SAME_MEANING = ("ell",)
"""Letters that may be an index and an array's name on one page, meaning the same thing."""


class NotationError(ValueError):
    """A derivation departs from the notation table; names the letter and where."""


def latex(letter: str) -> str:
    """How an index letter prints: ``ell`` as ``\\ell``, ``b'`` as ``b'``."""
    base = base_letter(letter)
    return ("\\ell" if base == "ell" else base) + letter[len(base) :]


def base_letter(letter: str) -> str:
    """The letter without its primes: ``b'`` -> ``b``."""
    return letter.rstrip("'")


def allowed(letter: str, deviations: dict[str, str] | None = None) -> tuple[str, ...]:
    """The sizes ``letter`` may count: the derivation's declared one, else the table's."""
    base = base_letter(letter)
    if deviations and base in deviations:
        return (deviations[base],)
    return tuple(size for size, letters in INDICES.items() if base in letters)


def context() -> dict:
    """The table as values for the home page's template."""
    return {
        "sizes": [{"letter": s, "counts": what} for s, what in SIZES.items()],
        "indices": [
            {
                "counts": SIZES[size],
                "size": size,
                "letters": ", ".join(f"${latex(letter)}$" for letter in letters),
            }
            for size, letters in INDICES.items()
        ],
        "index_notes": list(INDEX_NOTES),
        "names": [
            {"name": name if len(name) == 1 else f"\\mathit{{{name}}}", "meaning": meaning}
            for name, meaning in NAMES.items()
        ],
    }


# -- the check ------------------------------------------------------------------------------


def _where(field: str, n: int, item: object) -> str:
    """Where on the page an item is: ``step 9 ('Kronecker form')``, ``kernel 'softmax'``."""
    name = getattr(item, "title", "") or getattr(item, "name", "")
    kind = {
        "definitions": "definition",
        "steps": "step",
        "identities": "identity",
        "kernels": "kernel",
        "sections": "section",
        "exercises": "exercise",
        "where": "name",
        "results": "result",
    }[field]
    if field == "results":
        return f"result {item!r}"
    if isinstance(name, str) and name and kind != "step":
        return f"{kind} {name!r}"
    label = f"{kind} {n}"
    return f"{label} ({name!r})" if isinstance(name, str) and name else label


def _expressions(obj: object, seen: set[int]) -> Iterator[sp.Basic]:
    """Every SymPy object inside ``obj``: dataclass fields, tuples, mappings."""
    if isinstance(obj, sp.Basic):
        yield obj
        return
    if id(obj) in seen or callable(obj) and not is_dataclass(obj):
        return
    seen.add(id(obj))
    if is_dataclass(obj):
        for f in fields(obj):
            yield from _expressions(getattr(obj, f.name), seen)
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _expressions(item, seen)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _expressions(key, seen)
            yield from _expressions(value, seen)


def _parts(derivation) -> Iterator[tuple[str, sp.Basic]]:
    """(where, expression) for everything a page and its generated module show."""
    for field in ("definitions", "steps", "identities", "kernels", "sections", "exercises"):
        for n, item in enumerate(getattr(derivation, field), 1):
            where = _where(field, n, item)
            for expr in _expressions(item, set()):
                yield where, expr
    matrix_result = getattr(derivation, "matrix_result", None)
    if matrix_result is not None:
        for expr in _expressions(matrix_result, set()):
            yield "the result in matrix form", expr
    for name, expr in derivation.results.items():
        yield _where("results", 0, name), expr
    for n, pair in enumerate(derivation.where, 1):
        for expr in _expressions(pair, set()):
            yield _where("where", n, pair[0]), expr


def _names(expr: sp.Basic) -> set[str]:
    """The names of ``expr`` that are not indices: symbols, arrays, matrices, functions."""
    labels = {i.label for i in expr.atoms(sp.Idx)}
    names = {s.name for s in expr.atoms(sp.Symbol) if s not in labels}
    names |= {m.name for m in expr.atoms(sp.MatrixSymbol)}
    names |= {type(f).__name__ for f in expr.atoms(sp.core.function.AppliedUndef)}
    return names


def _size_misused(expr: sp.Basic) -> set[str]:
    """Size letters naming something other than the size: an array, a matrix, a number."""
    wrong = {
        s.name
        for s in expr.atoms(sp.Symbol)
        if s.name in SIZES and not (s.is_integer and s.is_positive) and not isinstance(s, sp.Idx)
    }
    wrong |= {m.name for m in expr.atoms(sp.MatrixSymbol) if m.name in SIZES}
    wrong |= {b.name for b in expr.atoms(sp.IndexedBase) if str(b.label) in SIZES}
    return wrong


def _first(places: list[str]) -> str:
    more = f" and {len(places) - 1} more" if len(places) > 1 else ""
    return f"{places[0]}{more}"


def problems(derivation) -> list[str]:
    """How ``derivation`` departs from the table, each naming the letter and where; [] if not."""
    declared = dict(getattr(derivation, "notation", ()))
    found = [
        f"declared index {letter}: {size!r} is not a size ({', '.join(SIZES)})"
        for letter, size in declared.items()
        if size not in SIZES
    ]
    deviations = {letter: size for letter, size in declared.items() if size in SIZES}
    ranges: dict[str, dict[str, list[str]]] = {}  # letter -> what it counts -> where
    names: dict[str, list[str]] = {}
    misused: dict[str, list[str]] = {}
    for where, expr in _parts(derivation):
        for idx in expr.atoms(sp.Idx):
            upper = idx.upper
            counts = (
                str(upper) if idx.lower == 1 and str(upper) in SIZES else f"({idx.lower}, {upper})"
            )
            places = ranges.setdefault(str(idx.label), {}).setdefault(counts, [])
            if where not in places:
                places.append(where)
        for name in _names(expr):
            places = names.setdefault(name, [])
            if where not in places:
                places.append(where)
        for name in _size_misused(expr):
            places = misused.setdefault(name, [])
            if where not in places:
                places.append(where)
    for name, places in misused.items():
        found.append(
            f"{name} is the number of {SIZES[name]} and only that, but names something else in "
            f"{_first(places)}"
        )
    for letter, counted in sorted(ranges.items()):
        base = base_letter(letter)
        where_all = [p for places in counted.values() for p in places]
        for counts, places in counted.items():
            if counts not in SIZES:
                found.append(
                    f"index {letter} ranges over {counts} in {_first(places)}: not 1..size for "
                    f"a size of the table ({', '.join(SIZES)})"
                )
        if len(counted) > 1:
            found.append(
                f"index {letter} counts "
                + " and ".join(
                    f"{SIZES.get(counts, counts)} ({counts}) in {_first(places)}"
                    for counts, places in counted.items()
                )
                + ": one letter, one role on a page"
            )
        if base in RESERVED:
            found.append(
                f"index {letter} in {_first(where_all)}: {base} is a name kept for one meaning "
                "(derive/notation.py NAMES, SIZES), never an index"
            )
            continue
        sizes = allowed(letter, deviations)
        if not sizes:
            found.append(
                f"index {letter} in {_first(where_all)} is not in the notation table "
                "(derive/notation.py INDICES): add it, or use a letter that is"
            )
            continue
        for counts, places in counted.items():
            if counts in SIZES and counts not in sizes:
                declared = " (as this derivation declares)" if base in deviations else ""
                found.append(
                    f"index {letter} counts {SIZES[counts]} ({counts}) in {_first(places)}, "
                    f"but {latex(base)} counts "
                    + " or ".join(f"{SIZES[s]} ({s})" for s in sizes)
                    + declared
                )
        if letter in names and base not in SAME_MEANING:
            found.append(
                f"{letter} is an index in {_first(where_all)} and a name in "
                f"{_first(names[letter])}: one letter, one meaning on a page"
            )
    return found


def check(derivation) -> None:
    """Raise NotationError listing every departure of ``derivation`` from the table."""
    found = problems(derivation)
    if found:
        raise NotationError(
            f"page {derivation.name!r} departs from the notation (derive/notation.py): "
            + "; ".join(found)
        )
