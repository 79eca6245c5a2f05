"""Derivations to Markdown pages: the steps' LaTeX, the proofs, the generated
source, and worked numbers computed by the generated functions themselves."""

from __future__ import annotations

import inspect
import sys

import numpy as np
import sympy as sp

from derive import derivations, posts
from derive.claims import claims, method_text
from derive.codegen import CODE_INPUTS
from derive.errors import stage
from derive.figures import REFERENCE_RATIOS
from derive.printing import latex
from derive.proofs import build_sizes, describe, explicit_sizes, index_form_moves, sizes_text
from derive.render import ROOT, Output, environment, inputs_digest
from derive.steps import Derivation, Example

PAGES = ROOT / "docs" / "derivations"
PAGE_INPUTS = [
    ROOT / "derive" / name
    for name in ("pages.py", "posts.py", "figures.py", "proofs.py", "claims.py")
] + [ROOT / "templates" / "page.md.j2"]


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


def _example(example: Example, generated) -> dict:
    """An example's numbers, and its reference's when it has one."""
    ours = _evaluate(example.call, generated)
    context = {
        "title": example.title,
        "call": example.call,
        "text": example.text,
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
            "title": example.reference_title,
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


def _step(step, claim) -> dict:
    """A step's LaTeX, its context, and how the build checked it (the method it runs)."""
    start = step.start
    if isinstance(start, int):
        start = f"step {start}'s result"
    return {
        "title": step.title,
        "rule": step.rule,
        "expression": latex(step.expression),
        "result": latex(step.result),
        "sign": RELATION_SIGNS[step.relation],
        "relation": step.relation,
        "given": _given(step.given),
        "where": [{"lhs": latex(n), "rhs": latex(v)} for n, v in step.where],
        "start": start or "",
        "checked": method_text(claim),
    }


def page_context(derivation: Derivation, generated) -> dict:
    module = sys.modules.get(f"{generated.__name__}.{derivation.name}")  # None: a page only
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
                    for name in (kernel.name, f"_{kernel.name}", f"_{kernel.name}_options")
                    if hasattr(module, name)
                ),
            }
        )
    examples = [_example(e, generated) for e in derivation.examples]
    errata = []
    for erratum in derivation.errata:
        text = ""
        for part, call in ((erratum.text, erratum.call), *erratum.followed_by):
            text += ("\n\n    " if text else "") + part
            if call:
                text += f"\n\n    ```python\n    {call}\n    ```\n\n    ```text\n"
                text += "\n".join(
                    "    " + line for line in _format(_evaluate(call, generated)).splitlines()
                )
                text += "\n    ```"
        errata.append(text)
    sections = [
        {
            "title": s.title,
            "text": s.text,
            "place": s.place,
            "text_after": s.text_after,
            "equations": [{"lhs": latex(a), "rhs": latex(b)} for a, b in s.equations],
            "call": s.call,
            "value": _format(_evaluate(s.call, generated)) if s.call else "",
        }
        for s in derivation.sections
    ]
    exercises = [
        {
            "title": e.name,
            "question": e.question,
            "answer": e.answer,
            "expression": _equation(e.answer_expression),
        }
        for e in derivation.exercises
    ]
    return {
        "title": derivation.title,
        "summary": derivation.summary,
        "definitions": [
            {"lhs": latex(d.name), "rhs": latex(d.expression), "text": d.text}
            for d in derivation.definitions
        ],
        "names": [{"lhs": latex(name), "rhs": latex(value)} for name, value in derivation.where],
        "steps": [_step(s, claim) for s, claim in zip(derivation.steps, claims(derivation))],
        "identities": [
            {
                "claim": i.claim,
                "long_title": i.long_title,
                "shortcut_title": i.shortcut_title,
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
        "figures": [{"file": f.file, "caption": f.caption} for f in derivation.figures],
        "sections": sections,
        "exercises": exercises,
        "module": f"derive/generated/{derivation.name}.py",
    }


def page_outputs(derived, generated) -> list[Output]:
    outputs = []
    for d in derived:
        name = d.derivation.name
        with stage(
            name, "rendering templates/page.md.j2"
        ):  # loading it too: a syntax error is named
            body = (
                environment()
                .get_template("page.md.j2")
                .render(**page_context(d.derivation, generated))
            )
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
        outputs.append(home_output())
    return outputs


def home_output() -> Output:
    """The home page, with the notation list rendered from derive/notation.py's table."""
    from derive import notation

    body = environment().get_template("index.md.j2").render(**notation.context())
    sources = [ROOT / "templates" / "index.md.j2", ROOT / "derive" / "notation.py"]
    return Output(
        path=ROOT / "docs" / "index.md",
        source="templates/index.md.j2 and the notation table (derive/notation.py)",
        inputs=inputs_digest(*sources),
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


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def benchmark_context(report: dict | None) -> dict:
    """The benchmark page's values, formatted; ``report`` is bench-results/latest.json."""
    if report is None:
        return {"available": False}
    m = report["machine"]
    machine = (
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, NumPy {m['numpy']} "
        f"({m['blas']}), PyTorch {m['torch']} ({m['torch_threads']} threads)"
    )
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
            + (f". Measured on {b['date']}." if "date" in b else ".")
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
        "posts": [
            {
                "size": r["size"],
                "what": r["what"],
                "baseline": r["baseline"],
                "theirs": _seconds(r["baseline_seconds"]),
                "ours": _seconds(r["generated_seconds"]),
                "speedup": f"{r['speedup']:.1f}×",
            }
            for r in report["posts"]
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
        "labels": [
            _timed_row(r, report["label_targets"], ("B", "D", "C"))
            for r in report.get("training_step_labels", [])
        ],
        "second_order": _second_order_context(report),
        "figure": "benchmark-ratios.svg",
        **two_layer_benchmark_context(report),
    }


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
    body = environment().get_template("benchmarks.md.j2").render(**benchmark_context(report))
    sources = [ROOT / "templates" / "benchmarks.md.j2", ROOT / "derive" / "pages.py"]
    return Output(
        path=ROOT / "docs" / "benchmarks.md",
        source="bench-results/latest.json (python -m derive.bench)",
        inputs=inputs_digest(*sources, *([BENCHMARK_RESULTS] if report else [])),
        body=body,
    )


ACCURACY_RESULTS = ROOT / "accuracy-results" / "latest.json"


def _ulps(value: float | str) -> str:
    value = float(value)
    if value == float("inf"):
        return "**inf**"
    if value < 0.005:  # exact, up to the reference's own last digits
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:.3g}"


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
            },
        )
        row[f"{r['dtype']}_{r['inputs']}"] = _ulps(r["max_ulp"])
        if r["conditioning"] and (r["dtype"], r["inputs"]) == ("float64", "extreme"):
            row["normwise"] = _ulps(r["max_ulp_normwise"])
    conditioning = {r["function"]: r["conditioning"] for r in report["rows"] if r["conditioning"]}
    v = report["versions"]
    return {
        "available": True,
        "date": report["date"],
        "samples": report["samples_per_function"],
        "digits": report["digits"],
        "logit_scales": ", ".join(f"{s:g}" for s in report["logit_scales"]),
        "versions": ", ".join(f"{name} {version}" for name, version in v.items()),
        "rows": list(cells.values()),
        "conditioning": [{"function": f, "text": t} for f, t in conditioning.items()],
    }


def accuracy_output() -> Output:
    import json

    report = json.loads(ACCURACY_RESULTS.read_text()) if ACCURACY_RESULTS.exists() else None
    body = environment().get_template("accuracy.md.j2").render(**accuracy_context(report))
    sources = [ROOT / "templates" / "accuracy.md.j2", ROOT / "derive" / "pages.py"]
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
    return {
        "available": True,
        "runs": runs,
        "environment": environment_text,
        "figure": "training-curves.svg",
    }


def training_output() -> Output:
    import json

    from derive.figures import TRAINING_RESULTS

    report = json.loads(TRAINING_RESULTS.read_text()) if TRAINING_RESULTS.exists() else None
    body = environment().get_template("training.md.j2").render(**training_context(report))
    sources = [ROOT / "templates" / "training.md.j2", ROOT / "derive" / "pages.py"]
    return Output(
        path=ROOT / "docs" / "training.md",
        source="training-results/latest.json (python -m derive.train)",
        inputs=inputs_digest(*sources, *([TRAINING_RESULTS] if report else [])),
        body=body,
    )
