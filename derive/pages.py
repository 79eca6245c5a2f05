"""Derivations to Markdown pages: the steps' LaTeX, the proofs, the generated
source, and worked numbers computed by the generated functions themselves."""

from __future__ import annotations

import inspect
import sys
from functools import partial
from pathlib import Path

import numpy as np
import sympy as sp

from derive import derivations, memo, posts
from derive.claims import claims, method_text
from derive.codegen import CODE_INPUTS
from derive.edit_loop import MKDOCS_POLL
from derive.errors import stage
from derive.figures import (
    ACCURACY_BOUND_ULPS,
    ACCURACY_FIGURE,
    ACCURACY_RESULTS,
    BAND_NAMES,
    BENCHMARK_FIGURE,
    REFERENCE_RATIOS,
    target_points,
)
from derive.printing import latex
from derive.proofs import build_sizes, describe, explicit_sizes, index_form_moves, sizes_text
from derive.render import ROOT, Output, environment, inputs_digest, split_header
from derive.step_references import StepReferences, anchor
from derive.steps import Derivation, Example

PAGES = ROOT / "docs" / "derivations"
# Hashed in a page's header besides its derivation's modules: the data it shows (the posts'
# numbers) and its template; not the engine that renders it (see derive.codegen.CODE_INPUTS).
PAGE_INPUTS = [ROOT / "derive" / "posts.py", ROOT / "templates" / "page.md.j2"]


def page_name(derivation: Derivation) -> str:
    return derivation.name.replace("_", "-")


def _explicit_sizes_text(identity) -> str:
    return sizes_text(explicit_sizes(identity))


def _build_sizes_text(identity) -> str:
    """Which of the explicit sizes every build checks (`derive.proofs.build_sizes`)."""
    checked = build_sizes(identity)
    if len(checked) == len(explicit_sizes(identity)):
        return "every build checks all of them"
    sizes = " and ".join(f"({describe(s)})" for s in checked)
    return f"every build checks {sizes}, the test suite (`tests/test_proofs.py`) all of them"


def _proof_method(identity) -> str:
    """What the symbolic proof of ``identity`` does, as one sentence (derive.proofs)."""
    moves = index_form_moves(identity)
    if identity.assumptions:
        moves.append(
            "substitutes "
            + ", ".join(f"${latex(a)} = {latex(b)}$" for a, b in identity.assumptions.items())
        )
    moves.append(
        "finds the difference of the two sides 0 (expanded, put over one denominator, "
        "simplified where needed)"
    )
    sentence = moves[0] if len(moves) == 1 else ", ".join(moves[:-1]) + " and " + moves[-1]
    return (
        sentence
        + ". This checks the algebra for every size at once; it does not re-derive the pieces substituted."
    )


def headlines(derivation: Derivation) -> list:
    """The identities a page shows in full: those marked ``headline``, else the first two."""
    marked = [i for i in derivation.identities if i.headline]
    return marked or list(derivation.identities[:2])


def _evaluate(call: str, generated) -> np.ndarray:
    """Run an example's Python (shown on the page) with the generated functions."""
    names = {name: getattr(generated, name) for name in generated.__all__}
    return np.asarray(eval(call, {"posts": posts, "np": np, **names}))  # the registry's own strings


def _example(example: Example, generated, say: StepReferences) -> dict:
    """An example's numbers, and its reference's when it has one."""
    ours = _evaluate(example.call, generated)
    context = {
        "title": say(example.title, link_to=None),
        "call": example.call,
        "text": say(example.text),
        "ours": _format(ours),
        "reference": None,
    }
    if example.printed:
        printed = getattr(posts, example.printed)
        cut = f"Printed in {printed.where}. {posts.HOW_TEXT[printed.how]}"
        context["reference"] = {
            "title": "The post printed",
            "code": "",
            "value": printed.strip(),
            "agrees": posts.agrees(ours, printed),
            "agreement": f"Agrees with the post to every printed digit. {cut}",
        }
    elif example.reference:
        theirs = _evaluate(example.reference, generated)
        context["reference"] = {
            "title": say(example.reference_title, link_to=None),
            "code": example.reference,
            "value": _format(theirs),
            "agrees": bool(np.allclose(ours, theirs, rtol=1e-12, atol=0)),
            "agreement": "Agrees to 12 significant digits.",
        }
    return context


def _format(value: np.ndarray) -> str:
    """A number in full, as Python prints it; an array with 8 decimals, as the posts do."""
    value = np.asarray(value)
    if value.ndim == 0:
        return repr(float(value))
    return np.array2string(value, precision=8, max_line_width=72, floatmode="maxprec")


def _equation(expression) -> str:
    """LaTeX of an expression; an equation (sympy Eq) shows both sides."""
    if isinstance(expression, sp.Equality):
        return f"{latex(expression.lhs)} = {latex(expression.rhs)}"
    return latex(expression)


RELATION_SIGNS = {"=": "=", ":=": r"\coloneqq", "convention": "=", "=>": "="}


def _given(given) -> list[str]:
    return [f"{latex(g[0])} = {latex(g[1])}" if isinstance(g, tuple) else latex(g) for g in given]


def _entry_of(matrix: str, entry: tuple) -> str:
    """``(M)_{ij}``: the entry a step's left side is (``Step.entry``), or ``M`` for no entry."""
    if not entry:
        return matrix
    rows, columns = (" ".join(latex(i) for i in part) for part in entry)
    at = f"{rows},\\, {columns}" if columns else rows  # a column vector's entry: its row
    return rf"\left({matrix}\right)_{{{at}}}"


def _step(step, claim, say: StepReferences) -> dict:
    """A step's LaTeX, its context, and how the build checked it (the method it runs)."""
    start = step.start
    if isinstance(start, int):
        start = f"[step {start}](#{anchor(start)})'s result"
    return {
        "title": say(step.title, link_to=None),  # a heading: the number without a link
        "rule": say(step.rule),
        "expression": latex(step.expression),
        "result": _entry_of(latex(step.result), step.entry),
        "sign": RELATION_SIGNS[step.relation],
        "relation": step.relation,
        "given": _given(step.given),
        "where": [{"lhs": latex(n), "rhs": latex(v)} for n, v in step.where],
        "start": say(start) if start else "",
        "checked": method_text(claim),
        "anchor": anchor(claim.number),  # the heading's id, which references link to
    }


def _shape(symbol: sp.MatrixSymbol) -> str:
    rows, columns = symbol.shape
    return f"{latex(rows)} \\times {latex(columns)}"


def matrix_result_context(
    derivation: Derivation, say: StepReferences | None = None, link_to: str = ""
) -> dict | None:
    """The page's result in matrix form, each factor's shape, and how the build checked it.
    Its text's step references link to ``link_to`` (the page's path from another page)."""
    m = derivation.matrix_result
    if m is None:
        return None
    say = say or StepReferences(derivation)
    claim = claims(derivation)[len(derivation.steps)]  # the claim after the steps: m.step's
    shown = latex(m.rhs)
    result, *factors = m.factors
    factors = [result, *sorted(factors, key=lambda f: shown.find(latex(f)))]  # as printed
    return {
        "group": m.group,
        "text": say(m.text, link_to=link_to),
        "lhs": latex(m.lhs),
        "rhs": latex(m.rhs),
        "shapes": [{"name": latex(f), "shape": _shape(f)} for f in factors],
        "shapes_text": "; ".join(f"${latex(f)}$: ${_shape(f)}$" for f in factors),
        "index_form": latex(m.index_form),
        "entry": _entry_of(latex(m.rhs), m.entry),
        "given": _given(m.given),
        "checked": method_text(claim),
    }


def page_context(derivation: Derivation, generated) -> dict:
    """What templates/page.md.j2 shows of ``derivation``, its prose's step references
    resolved (derive.step_references)."""
    module = sys.modules.get(f"{generated.__name__}.{derivation.name}")  # None: a page only
    say = StepReferences(derivation)
    results = []
    for kernel in derivation.kernels:
        lhs, rhs = kernel.equation
        results.append(
            {
                "name": kernel.name,
                "lhs": latex(lhs),
                "rhs": latex(rhs),
                "matrix_form": latex(kernel.matrix_form) if kernel.matrix_form is not None else "",
                "more": [  # the other results of a kernel that returns several
                    {"lhs": latex(part.equation[0]), "rhs": latex(part.equation[1])}
                    for part in kernel.parts[1:]
                ],
                "source": "\n\n".join(
                    inspect.getsource(getattr(module, name)).rstrip()
                    for name in (
                        kernel.name,
                        f"_{kernel.name}_shared",  # what it and other kernels compute first
                        f"_{kernel.name}",
                        f"_{kernel.name}_options",
                    )
                    if hasattr(module, name)
                ),
            }
        )
    examples = [_example(e, generated, say) for e in derivation.examples]
    errata = []
    for erratum in derivation.errata:
        text = ""
        for part, call in ((erratum.text, erratum.call), *erratum.followed_by):
            text += ("\n\n    " if text else "") + say(part)
            if call:
                text += f"\n\n    ```python\n    {call}\n    ```\n\n    ```text\n"
                text += "\n".join(
                    "    " + line for line in _format(_evaluate(call, generated)).splitlines()
                )
                text += "\n    ```"
        errata.append(text)
    sections = [
        {
            "title": say(s.title, link_to=None),
            "text": say(s.text),
            "place": s.place,
            "text_after": say(s.text_after),
            "equations": [{"lhs": latex(a), "rhs": latex(b)} for a, b in s.equations],
            "call": s.call,
            "value": _format(_evaluate(s.call, generated)) if s.call else "",
        }
        for s in derivation.sections
    ]
    exercises = [
        {
            "title": say(e.name, link_to=None),
            "question": say(e.question),
            "answer": say(e.answer),
            "expression": _equation(e.answer_expression),
        }
        for e in derivation.exercises
    ]
    context = {
        "title": derivation.title,  # also the API page's and the nav's: never a reference
        "summary": say(derivation.summary),
        "definitions": [
            {"lhs": latex(d.name), "rhs": latex(d.expression), "text": say(d.text)}
            for d in derivation.definitions
        ],
        "names": [{"lhs": latex(name), "rhs": latex(value)} for name, value in derivation.where],
        "steps": [_step(s, claim, say) for s, claim in zip(derivation.steps, claims(derivation))],
        "identities": [
            {
                "claim": say(i.claim, link_to=None),  # also an admonition's title
                "long_title": say(i.long_title),
                "shortcut_title": say(i.shortcut_title),
                "long": latex(i.long),
                "shortcut": latex(i.shortcut),
                "assumptions": [f"{latex(a)} = {latex(b)}" for a, b in i.assumptions.items()],
                "explicit_sizes": _explicit_sizes_text(i),
                "build_sizes": _build_sizes_text(i) if i.explicit is not None else "",
                "form": "In index form, for symbolic sizes."
                if i.long.atoms(sp.Idx) or i.shortcut.atoms(sp.Idx)
                else "Symbolically.",
                "method": _proof_method(i),
                "headline": i in headlines(derivation),
            }
            for i in derivation.identities
        ],
        "results": results,
        "examples": examples,
        "errata": errata,
        # a caption is also the image's alternative text: the number without a link
        "figures": [
            {"file": f.file, "caption": say(f.caption, link_to=None)} for f in derivation.figures
        ],
        "sections": sections,
        "exercises": exercises,
        "module": f"derive/generated/{derivation.name}.py",
        "matrix_result": matrix_result_context(derivation, say),
    }
    say.check_all_resolved()
    return context


def _page_body(derivation: Derivation, generated) -> str:
    with stage(derivation.name, "rendering templates/page.md.j2"):  # loading it: errors named
        return (
            environment().get_template("page.md.j2").render(**page_context(derivation, generated))
        )


def _code_read(generated) -> tuple[str, ...]:
    """The generated modules a page's numbers and code come from, without their headers (which
    change with any edit of a derivation's module, prose included)."""
    folder = Path(generated.__file__).parent
    return tuple(split_header(p.read_text())[1] for p in sorted(folder.glob("*.py")))


def page_outputs(derived, generated) -> list[Output]:
    outputs = []
    # a page is rendered again when its derivation object, the code or its template changed
    inputs = (_code_read(generated), (ROOT / "templates" / "page.md.j2").read_bytes())
    for d in derived:
        name = d.derivation.name
        body = memo.made("page", d.derivation, inputs, partial(_page_body, d.derivation, generated))
        outputs.append(
            Output(
                path=PAGES / f"{page_name(d.derivation)}.md",
                source=f'the derivation "{name}" (derive/derivations/{name}.py)',
                inputs=inputs_digest(*derivations.sources(name), *CODE_INPUTS, *PAGE_INPUTS),
                body=body,
            )
        )
    with stage("(all)", "rendering templates/api.md.j2"):
        outputs.append(api_output(derived))
    with stage("(benchmarks)", "rendering templates/benchmarks.md.j2"):
        outputs.append(benchmark_output())
    with stage("(accuracy)", "rendering templates/accuracy.md.j2"):
        outputs.append(accuracy_output())
    with stage("(training)", "rendering templates/training.md.j2"):
        outputs.append(training_output())
    with stage("(home)", "rendering templates/index.md.j2"):
        outputs.append(home_output([d.derivation for d in derived]))
    return outputs


def home_context(made: list[Derivation]) -> dict:
    """The road through the site: every derivation under its group, with its result in matrix
    form and its shapes, and the path a newcomer starts on."""
    by_name = {d.name: d for d in made}
    summaries = [
        (d, matrix_result_context(d, link_to=f"derivations/{page_name(d)}.md")) for d in made
    ]
    groups = []
    for key, title in derivations.GROUPS.items():
        entries = []
        for d, m in summaries:
            if m is not None and m["group"] == key:
                entries.append({"title": d.title, "link": f"derivations/{page_name(d)}.md", **m})
        if entries:
            groups.append({"title": title, "entries": entries})
    unlisted = [d.name for d in made if d.matrix_result is None]
    start_here = [
        {
            "title": by_name[name].title,
            "link": f"derivations/{page_name(by_name[name])}.md",
            "why": why,
        }
        for name, why in derivations.START_HERE
        if name in by_name
    ]
    return {"groups": groups, "unlisted": unlisted, "start_here": start_here}


def home_output(made: list[Derivation]) -> Output:
    """The home page: the road through the site (from each derivation's matrix result) and the
    notation list rendered from derive/notation.py's table."""
    from derive import notation

    body = (
        environment().get_template("index.md.j2").render(**notation.context(), **home_context(made))
    )
    sources = [ROOT / "templates" / "index.md.j2", ROOT / "derive" / "notation.py"]
    sources += [source for d in made for source in derivations.sources(d.name)]
    return Output(
        path=ROOT / "docs" / "index.md",
        source="templates/index.md.j2, the notation table (derive/notation.py) and every "
        "derivation's result in matrix form",
        inputs=inputs_digest(*dict.fromkeys(sources), *PAGE_INPUTS),
        body=body,
    )


def api_output(derived) -> Output:
    """The API reference page: one mkdocstrings block per generated module."""
    modules = [
        {
            "name": d.derivation.name,
            "title": d.derivation.title,
            "functions": d.derivation.function_names,
        }
        for d in derived
        if d.derivation.function_names  # a page without functions has no module
    ]
    body = environment().get_template("api.md.j2").render(modules=modules)
    return Output(
        path=ROOT / "docs" / "api.md",
        source="the registry (derive/derivations/__init__.py)",
        inputs=inputs_digest(
            ROOT / "derive" / "derivations" / "__init__.py", ROOT / "templates" / "api.md.j2"
        ),
        body=body,
    )


def run_text(run: dict | None, torch: bool = True) -> str:
    """The commit, CPU and thread counts a results file recorded for its run
    (``derive.provenance.run_record``), as a page says them; each one the file lacks is
    "not recorded", each one the run could not find is "not found". ``torch``: whether
    PyTorch took part (its threads are said only then)."""
    run = run or {}

    def say(key: str, show) -> str:
        if key not in run:
            return "not recorded"
        return "not found" if run[key] is None else show(run[key])

    def commit(value: str) -> str:
        head, dirty = value.removesuffix("+dirty"), value.endswith("+dirty")
        return f"`{head[:12]}`" + (" with uncommitted changes" if dirty else "")

    return "; ".join(
        [
            f"commit: {say('commit', commit)}",
            f"CPU: {say('cpu_model', str)}",
            f"logical CPUs: {say('cpu_count', str)}",
            "NumPy's BLAS: "
            + say("numpy_blas", lambda b: f"{b['library']}, {b['threads']} threads"),
            *([f"PyTorch threads: {say('torch_threads', str)}"] if torch else []),
        ]
    )


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


ARRAY_LIBRARY_TESTS = ROOT / "tests" / "test_array_libraries.py"
ARRAY_LIBRARIES = {  # the array-API libraries the page names: LIBRARIES' key prefix -> name
    "numpy": "NumPy",
    "torch": "PyTorch (CPU)",
    "array-api-strict": "array-api-strict",
    "dask": "Dask",
    "jax": "JAX (CPU)",
    "cupy": "CuPy",
}


def array_libraries_tested(tests: Path = ARRAY_LIBRARY_TESTS) -> list[str] | None:
    """The libraries ``tests/test_array_libraries.py`` runs every generated function on: the
    keys of its ``LIBRARIES`` ("torch-float32" is PyTorch), read without importing it (it
    imports them all); None where the file is not (a copy of the project without tests)."""
    import ast

    if not tests.exists():
        return None
    for node in ast.parse(tests.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["LIBRARIES"]
            and isinstance(node.value, ast.Dict)
        ):
            keys = [ast.literal_eval(k) for k in node.value.keys]
            return [
                name
                for prefix, name in ARRAY_LIBRARIES.items()
                if any(k.split("-float")[0] == prefix for k in keys)
            ]
    raise ValueError(f"{tests}: no LIBRARIES = {{...}} found (the libraries the page names)")


def _array_libraries_text(tested: list[str] | None) -> str:
    if tested is None:
        return (
            "Which libraries the tests run them on is not known here: this copy of the "
            "project has no tests/test_array_libraries.py."
        )
    untested = [name for name in ARRAY_LIBRARIES.values() if name not in tested]
    return (
        f"`tests/test_array_libraries.py` runs every one of them on {_and(tested)}, and "
        "checks that each result is of its input's library and dtype and equals NumPy's "
        "float64 result."
        + (
            f" {_and(untested)} would go through the same path but "
            f"{'is' if len(untested) == 1 else 'are'} not tested here."
            if untested
            else ""
        )
    )


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _code_of(row: dict) -> tuple[str, str]:
    """A posts row's two lines of code timed (generated: "" in rows measured before the
    generated code was recorded)."""
    return row["baseline"], row.get("generated", "")


def _posts_code(rows: list[dict]) -> list[tuple[str, str]]:
    """The distinct code pairs of the posts' rows, in order: listed once under the table, which
    numbers them (the code in the table made it wider than the page)."""
    return list(dict.fromkeys(_code_of(r) for r in rows))


def benchmark_context(report: dict | None, tested: list[str] | None = None) -> dict:
    """The benchmark page's values, formatted; ``report`` is bench-results/latest.json,
    ``tested`` the libraries the array-library tests run (``array_libraries_tested``)."""
    libraries = _array_libraries_text(tested)
    if report is None:
        return {"available": False, "libraries": libraries}
    m = report["machine"]
    machine = (
        f"{m['platform']}, Python {m['python']}, NumPy {m['numpy']} ({m['blas']}), "
        f"PyTorch {m['torch']}"
    )
    renamed = {"cpus": "cpu_count"}  # bench.machine()'s names for derive.provenance's fields
    run = {renamed.get(k, k): v for k, v in m.items()}
    build = ""
    if "build_seconds" in report:
        b = report["build_seconds"]
        build = (
            f"`python -m derive build`: {b['cold']:.2f} s cold (no cache, no generated files: "
            f"every derivation derived and proved, with explicit matrices at two sizes per "
            f"identity, every file and figure written), "
            f"{b['no-op']:.2f} s with nothing changed (it stops before importing SymPy)"
            + (
                f", {b['one edit']:.2f} s after an edit to one derivation (the softmax with a "
                "temperature: it is proved again, every other derivation comes from the cache; "
                "every page and figure is still rendered)"
                if "one edit" in b
                else ""
            )
            + (
                f"; the median of {len(b['runs']['cold'])} rounds, each from a fresh copy "
                f"(cold: {', '.join(f'{t:.2f}' for t in b['runs']['cold'])} s)"
                if "runs" in b
                else ""
            )
            + (f". Measured on {b['date']}" if "date" in b else "")
            + f" ({run_text(b.get('run'), torch=False)})."
        )
    serve = ""
    if "serve_seconds" in report:
        e = report["serve_seconds"]
        serve = (
            f"Under `make serve` (`mkdocs serve --dirty`, the generator kept warm by "
            f"derive/warm.py), from the write of an edit to the served HTML of its page showing "
            f"it: {e['prose']:.2f} s for a step's title (the derivation is derived again, "
            f"nothing proved again), {e['formula']:.2f} s for one formula of a step (its claim "
            f"is checked again); the median of {_edits(e['runs'])} to the "
            f"two-layer network's page (title: {', '.join(f'{t:.2f}' for t in e['runs']['prose'])} "
            f"s; formula: {', '.join(f'{t:.2f}' for t in e['runs']['formula'])} s), "
            f"load averages {e['load']} (derive/edit_loop.py)."
            + (
                " Of those medians, the generator took {g1:.2f} s and {g2:.2f} s, and MkDocs's "
                "rebuild, the generator included, {m1:.2f} s and {m2:.2f} s; the rest is the "
                "server noticing the write (it polls every {poll} s) and the page's fetch.".format(
                    poll=e.get("poll", MKDOCS_POLL),  # a report from before the hook set its own
                    g1=e["parts"]["prose"]["generator"],
                    g2=e["parts"]["formula"]["generator"],
                    m1=e["parts"]["prose"]["mkdocs"],
                    m2=e["parts"]["formula"]["mkdocs"],
                )
                if "parts" in e
                else ""
            )
        )
    rows = [*report["posts"], *report["training_step"]]
    recorded = [
        r["spread"] for r in rows if "spread" in r
    ]  # per contender: [fastest, slowest] repeat
    spread = ""
    if recorded and len(recorded) == len(rows):
        spread = "; ".join(
            f"{name} {_seconds(low)} to {_seconds(high)}"
            for r in recorded
            for name, (low, high) in r.items()
        )
    return {
        "available": True,
        "repeats": report.get("repeats", ""),
        "spread": spread,
        "date": report["date"],
        "mode": report["mode"],
        "machine": machine,
        "run": run_text(run),
        "posts_code": [
            {"baseline": baseline, "generated": generated}
            for baseline, generated in _posts_code(report["posts"])
        ],
        "posts": [
            {
                "size": r["size"],
                "what": r["what"],
                "code": _posts_code(report["posts"]).index(_code_of(r)) + 1,
                "theirs": _seconds(r["baseline_seconds"]),
                "ours": _seconds(r["generated_seconds"]),
                "speedup": f"{r['speedup']:.1f}×",
            }
            for r in report["posts"]
        ],
        "overhead": [
            {
                "size": r["size"],
                "dtype": r["dtype"],
                "function": r["function"],
                "public": _seconds(r["seconds"]["public"]),
                "core": _seconds(r["seconds"]["core"]),
                "overhead": f"{r['overhead_seconds'] * 1e6:.2f} µs",
                "fastest": f"{r['overhead_fastest_seconds'] * 1e6:.2f} µs",
            }
            for r in report.get("overhead", [])  # runs before the overhead rows have none
        ],
        "steps": [
            {
                "shape": f"{r['B']}, {r['D']}, {r['C']}",
                "dtype": r["dtype"],
                **{k: _seconds(v) for k, v in r["seconds"].items()},
                "ratios": [
                    {
                        "name": name,
                        "value": f"{r['ratios'][name]:.3f}",
                        "target": f"≤ {target}",
                        "met": "met" if r["targets_met"][name] else "**missed**",
                    }
                    for name, target in report["targets"].items()
                ]
                + [
                    {
                        "name": name,
                        "value": f"{r['seconds'][a] / r['seconds'][b]:.3f}",
                        "target": "",
                        "met": "for reference",
                    }
                    for name, (a, b) in REFERENCE_RATIOS.items()
                ],
            }
            for r in report["training_step"]
        ],
        "build": build,
        "serve": serve,
        "libraries": libraries,
        "labels": [
            _timed_row(r, report["label_targets"], ("B", "D", "C"))
            for r in report.get("training_step_labels", [])
        ],
        "second_order": _second_order_context(report),
        "figure": BENCHMARK_FIGURE.file,
        "targets": _targets_text(report),
        **two_layer_benchmark_context(report),
    }


def _targets_text(report: dict) -> dict:
    """How many of the ratios with a target (the figure's points) met it."""
    points = target_points(report)
    return {"count": len(points), "met": sum(p["met"] for p in points)}


def two_layer_benchmark_context(report: dict) -> dict:
    """The two-layer rows of the benchmark page (empty when the report has none yet)."""
    from derive.bench import MLP_TARGETS  # the targets are shown even before a run has them

    targets = report.get("two_layer_targets", MLP_TARGETS)
    epoch = report.get("digits_epoch")
    return {
        "two_layer_targets": ", ".join(
            f"{name.removeprefix('mlp: ')} ≤ {value}" for name, value in targets.items()
        ),
        "two_layer": [
            _timed_row(r, targets, ("B", "D", "H", "C"), prefix="mlp: ")
            for r in report.get("two_layer_step", [])
        ],
        "digits_epoch": {
            "steps": epoch["steps"],
            "batch_size": epoch["batch_size"],
            "hidden": epoch["H"],
            "generated": _seconds(epoch["seconds"]["generated"]),
            "torch": _seconds(epoch["seconds"]["torch"]),
            "ratio": f"{epoch['ratios']['digits epoch: generated / torch']:.3f}",
        }
        if epoch
        else None,
    }


def _second_order_context(report: dict) -> list[dict]:
    """The second-order rows (weight_hvp, weight_hessian, newton_step), formatted."""
    targets = report.get("second_order_targets", {})
    return [
        {"what": r["what"], **_timed_row(r, targets, ("B", "D", "C"))}
        for r in report.get("second_order", [])
    ]


def _timed_row(r: dict, targets: dict, sizes: tuple[str, ...], prefix: str = "") -> dict:
    """One benchmark row with the spread of its repeats: each contender's median and
    [fastest, slowest], and each ratio against its target (or "for reference")."""
    return {
        "shape": ", ".join(str(r[size]) for size in sizes),
        "dtype": r["dtype"],
        "cells": [
            {
                "name": name,
                "median": _seconds(v),
                "spread": " – ".join(_seconds(x) for x in r["spread"][name]),
            }
            for name, v in r["seconds"].items()
        ],
        "ratios": [
            {
                "name": name.removeprefix(prefix),
                "value": f"{v:.3f}",
                "target": f"≤ {targets[name]}" if name in targets else "",
                "met": ("met" if r["targets_met"][name] else "**missed**")
                if name in targets
                else "for reference",
            }
            for name, v in r["ratios"].items()
        ],
    }


def benchmark_output() -> Output:
    import json

    from derive.figures import BENCHMARK_RESULTS

    report = json.loads(BENCHMARK_RESULTS.read_text()) if BENCHMARK_RESULTS.exists() else None
    tested = array_libraries_tested()
    body = (
        environment().get_template("benchmarks.md.j2").render(**benchmark_context(report, tested))
    )
    sources = [ROOT / "templates" / "benchmarks.md.j2"]
    sources += [ARRAY_LIBRARY_TESTS] if tested is not None else []
    return Output(
        path=ROOT / "docs" / "benchmarks.md",
        source="bench-results/latest.json (python -m derive.bench)",
        inputs=inputs_digest(*sources, *([BENCHMARK_RESULTS] if report else [])),
        body=body,
    )


def _edits(runs: dict) -> str:
    """How many edits of each kind the edit loop made: "3 edits each", "5 and 3 edits"."""
    prose, formula = len(runs["prose"]), len(runs["formula"])
    return f"{prose} edits each" if prose == formula else f"{prose} and {formula} edits"


def _ulps(value: float | str) -> str:
    value = float(value)
    if value == float("inf"):
        return "**inf**"
    if value < 0.005:  # exact, up to the reference's own last digits
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:.3g}"


def _column(row: dict) -> str:
    return f"{row['dtype']}, {row['inputs']}"


def _within_bound(rows: list[dict]) -> dict:
    """The functions without a conditioning note, by whether every entry-wise cell of ours
    is within ``ACCURACY_BOUND_ULPS``; each one beyond with its largest cell."""
    worst: dict[str, dict] = {}
    for r in rows:
        if r["implementation"] == "derive" and not r["conditioning"]:
            if r["function"] not in worst or float(r["max_ulp"]) > float(
                worst[r["function"]]["max_ulp"]
            ):
                worst[r["function"]] = r
    within = [f for f, r in worst.items() if float(r["max_ulp"]) <= ACCURACY_BOUND_ULPS]
    beyond = [
        f"`{f}` ({_ulps(r['max_ulp'])}, {_column(r)})" for f, r in worst.items() if f not in within
    ]
    return {
        "bound": ACCURACY_BOUND_ULPS,
        "count": len(worst),
        "within": ", ".join(f"`{f}`" for f in within),
        "within_count": len(within),
        "beyond": "; ".join(beyond),
    }


def _against_equivalents(rows: list[dict]) -> dict:
    """Each (function, PyTorch or SciPy) pair, and the cells where ours is more than one ulp
    less accurate than the equivalent's, entry by entry, as the table shows them."""
    ours = {(r["function"], _column(r)): r for r in rows if r["implementation"] == "derive"}
    worse: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["implementation"] == "derive":
            continue
        mine = ours[(r["function"], _column(r))]
        cells = worse.setdefault((r["function"], r["implementation"]), [])
        if float(mine["max_ulp"]) > float(r["max_ulp"]) + 1:
            cells.append(f"{_ulps(mine['max_ulp'])} against {_ulps(r['max_ulp'])} ({_column(r)})")
    never_worse = sum(not cells for cells in worse.values())
    return {
        "pairs": len(worse),
        "never_worse": never_worse,
        "others": len(worse) - never_worse,
        "worse": [
            f"`{function}` against {who}: " + "; ".join(cells)
            for (function, who), cells in worse.items()
            if cells
        ],
    }


def _near(value: float, pole: float) -> str:
    """A drawn value beside the 0 or 1 it rounded to: "1 − 7.8e-11", "3.1e-12"."""
    return f"1 − {1 - value:.2g}" if pole == 1.0 else f"{value:.2g}"


def _infinite_cells(rows: list[dict]) -> list[str]:
    """Why each inf cell is inf, from the entry the run recorded (``derive.accuracy``)."""
    notes = []
    for r in rows:
        if float(r["max_ulp"]) != float("inf"):
            continue
        where = f"`{r['function']}`, {r['implementation']}, {_column(r)}"
        if "infinite" not in r:
            notes.append(f"{where}: which entry was infinitely wrong was not recorded in this run.")
            continue
        case = r["infinite"]
        rounded = [
            f"`{c['argument']}` drawn as {_near(c['drawn'], c['given'])} is "
            f"{c['given']:g} in {r['dtype']}"
            for c in case["rounded_to_0_or_1"]
        ]
        computed = case["computed"]  # a float, or "inf", "-inf", "nan"
        computed = f"{computed:.4g}" if isinstance(computed, float) else computed
        notes.append(
            f"{where}: "
            + (", ".join(rounded) + "; there " if rounded else "")
            + f"the true value is {case['true']} and {r['implementation']} returned {computed}."
        )
    return notes


def _draws_text(draws: dict | None) -> dict:
    """How the moderate and extreme inputs were drawn (``derive.accuracy.DRAWS``)."""
    if draws is None:
        return {}
    return {
        "moderate_scale": "{:g} to {:g}".format(*draws["moderate_scale"]),
        "moderate_probability": "[{:g}, {:g}]".format(*draws["moderate_probability"]),
        "logit_scales": ", ".join(f"{s:g}" for s in draws["logit_scales"]),
        "root_scales": ", ".join(f"{s**0.5:.3g}" for s in draws["logit_scales"]),
        "lift": "{:g} to {:g}".format(*draws["lift"]),
        "tiniest": f"1e-{draws['tiny_exponents'][1]:g}",
        "largest_tiny": f"1e-{draws['tiny_exponents'][0]:g}",
        "positive_moderate": "{:.2g} to {:.2g}".format(*draws["positive_moderate"]),
    }


def _accuracy_runs(report: dict) -> list[str]:
    """The run (or runs, after ``--only``) the rows come from, each with its machine."""
    runs = report.get("runs") or [{"date": report["date"], "functions": None}]
    texts = []
    for run in runs:
        which = (
            "Rows of " + ", ".join(f"`{f}`" for f in run["functions"])
            if run.get("functions")
            else "Every row" + (" not named below" if len(runs) > 1 else "")
        )
        took = f", took {run['seconds']:.0f} s" if "seconds" in run else ""
        texts.append(f"{which}: run of {run['date']}{took}; {run_text(run)}")
    return texts


def _extreme_text(row: dict) -> str:
    """The arguments of ``row``'s function drawn differently for extreme inputs."""
    if "extreme_arguments" not in row:
        return "not recorded"
    return ", ".join(f"`{a}`" for a in row["extreme_arguments"]) or "none"


def _alike_text(row: dict) -> str:
    """The arguments of ``row``'s function drawn alike for both kinds of input, and why."""
    if "drawn_alike" not in row:
        return "not recorded"
    return "; ".join(f"`{a}` ({why})" for a, why in row["drawn_alike"].items()) or "none"


def accuracy_context(report: dict | None) -> dict:
    """The accuracy page's values, formatted; ``report`` is accuracy-results/latest.json."""
    if report is None:
        return {"available": False}
    cells: dict[tuple[str, str], dict] = {}
    for r in report["rows"]:
        row = cells.setdefault(
            (r["function"], r["implementation"]),
            {
                "function": r["function"],
                "call": r["call"],
                "implementation": r["implementation"],
                "normwise": "",
                "extreme": _extreme_text(r),
                "alike": _alike_text(r),
            },
        )
        row[f"{r['dtype']}_{r['inputs']}"] = _ulps(r["max_ulp"])
        if r["conditioning"] and (r["dtype"], r["inputs"]) == ("float64", "extreme"):
            row["normwise"] = _ulps(r["max_ulp_normwise"])
    conditioning = {r["function"]: r["conditioning"] for r in report["rows"] if r["conditioning"]}
    v = report["versions"]
    return {
        "available": True,
        "runs": _accuracy_runs(report),
        "samples": report["samples_per_function"],
        "digits": report["digits"],
        "draws": _draws_text(report.get("draws")),
        "versions": ", ".join(f"{name} {version}" for name, version in v.items()),
        "rows": list(cells.values()),
        "arguments": [row for (f, who), row in cells.items() if who == "derive"],
        "figure": ACCURACY_FIGURE.file,
        "bands": _and(list(BAND_NAMES)),
        "same_inputs": [
            f for (f, who), row in cells.items() if who == "derive" and row["extreme"] == "none"
        ],
        "conditioning": [{"function": f, "text": t} for f, t in conditioning.items()],
        "within": _within_bound(report["rows"]),
        "against": _against_equivalents(report["rows"]),
        "infinite": _infinite_cells(report["rows"]),
    }


def accuracy_output() -> Output:
    import json

    report = json.loads(ACCURACY_RESULTS.read_text()) if ACCURACY_RESULTS.exists() else None
    body = environment().get_template("accuracy.md.j2").render(**accuracy_context(report))
    sources = [ROOT / "templates" / "accuracy.md.j2"]
    return Output(
        path=ROOT / "docs" / "accuracy.md",
        source="accuracy-results/latest.json (python -m derive.accuracy)",
        inputs=inputs_digest(*sources, *([ACCURACY_RESULTS] if report else [])),
        body=body,
    )


def training_context(report: dict | None) -> dict:
    """The training page's values, formatted; ``report`` is training-results/latest.json."""
    if report is None:
        return {"available": False}
    runs = []
    for run in report["runs"]:
        last = run["history"][-1]
        runs.append(
            {
                "title": run["title"],
                "name": run["name"],
                "model": run["model"],
                "dataset": run["dataset"],
                "functions": ", ".join(f"`{f}`" for f in run["functions"]),
                "train": run["samples"]["train"],
                "test": run["samples"]["test"],
                "inputs": run["inputs"],
                "classes": run["classes"],
                "hidden": run["hidden"] or "none",
                "epochs": run["epochs"],
                "batch_size": run["batch_size"],
                "learning_rate": run["learning_rate"],
                "steps": len(run["step_losses"]),
                "seed": run["seed"],
                "test_accuracy": f"{run['test_accuracy']:.1%}",
                "torch_test_accuracy": f"{run['torch_test_accuracy']:.1%}",
                "goal": f"{run['goal']:.0%}",
                "met": "yes" if run["test_accuracy"] >= run["goal"] else "**no**",
                "train_loss": f"{last['train_loss']:.4g}",
                "torch_train_loss": f"{last['torch_train_loss']:.4g}",
                "difference": f"{run['max_relative_loss_difference']:.1e}",
                "seconds": f"{run['seconds']:.1f}",
                "seconds_generated": f"{run['seconds_generated']:.1f}",
                "history": [
                    {
                        "epoch": h["epoch"],
                        "loss": f"{h['train_loss']:.4f}",
                        "train": f"{h['train_accuracy']:.1%}",
                        "test": f"{h['test_accuracy']:.1%}",
                        "torch_test": f"{h['torch_test_accuracy']:.1%}",
                    }
                    for h in run["history"]
                    if h["epoch"] % max(1, run["epochs"] // 10) == 0 or h["epoch"] == 1
                ],
            }
        )
    environment_text = ", ".join(f"{k} {v}" for k, v in report["environment"].items())
    for run, shown in zip(report["runs"], runs):
        shown["seeds"] = _seed_spread(run, report.get("seeds", {}).get(run["name"]))
    recorded = report.get("run")
    return {
        "available": True,
        "runs": runs,
        "environment": environment_text,
        "run": (f"run of {recorded['date']}; " if recorded else "") + run_text(recorded),
        "figure": "training-curves.svg",
    }


def _seeds_text(seeds: list[int]) -> str:
    """The seeds as the page says them: "seeds 0–9", or a list where they have gaps."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(str(s) for s in seeds)


def _seed_spread(run: dict, spread: list[dict] | None) -> dict | None:
    """The test accuracy of ``run``'s model over every seed trained (``derive.train``)."""
    if not spread:
        return None
    accuracies = sorted(s["test_accuracy"] for s in spread)
    met = [s for s in spread if s["test_accuracy"] >= run["goal"]]
    middle = len(accuracies) // 2
    median = (
        accuracies[middle]
        if len(accuracies) % 2
        else (accuracies[middle - 1] + accuracies[middle]) / 2
    )
    return {
        "seeds": _seeds_text([s["seed"] for s in spread]),
        "count": len(spread),
        "met": len(met),
        "lowest": f"{accuracies[0]:.1%}",
        "highest": f"{accuracies[-1]:.1%}",
        "median": f"{median:.1%}",
        "largest_difference": f"{max(s['max_relative_loss_difference'] for s in spread):.1e}",
        "rows": [
            {
                "seed": s["seed"],
                "test": f"{s['test_accuracy']:.1%}",
                "torch_test": f"{s['torch_test_accuracy']:.1%}",
                "met": "yes" if s["test_accuracy"] >= run["goal"] else "**no**",
            }
            for s in spread
        ],
    }


def training_output() -> Output:
    import json

    from derive.figures import TRAINING_RESULTS

    report = json.loads(TRAINING_RESULTS.read_text()) if TRAINING_RESULTS.exists() else None
    body = environment().get_template("training.md.j2").render(**training_context(report))
    sources = [ROOT / "templates" / "training.md.j2"]
    return Output(
        path=ROOT / "docs" / "training.md",
        source="training-results/latest.json (python -m derive.train)",
        inputs=inputs_digest(*sources, *([TRAINING_RESULTS] if report else [])),
        body=body,
    )
