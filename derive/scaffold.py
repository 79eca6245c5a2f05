"""``python -m derive show`` and ``new``: a derivation's steps in the terminal, and a new
module written from a forward definition with its line in the registry."""

from __future__ import annotations

import argparse
import re

import sympy as sp

from derive import derivations
from derive.printing import latex as to_latex
from derive.printing.terminal import text_to_unicode
from derive.step_references import StepReferences
from derive.steps import DOMAINS

SIGNS = {"=": "=", ":=": ":=", "convention": "=", "=>": "="}


# the terminal's names for symbols named for the code (derive.printing.latex.NAMES for LaTeX)
PRETTY = {"std": "σ", "var": "σ²", "xhat": "x̂", "eps": "ε"}


def _pretty_names(expr: sp.Basic) -> sp.Basic:
    return expr.replace(
        lambda e: isinstance(e, (sp.Symbol, sp.IndexedBase)) and str(e) in PRETTY,
        lambda e: (
            sp.IndexedBase(PRETTY[str(e)])
            if isinstance(e, sp.IndexedBase)
            else sp.Symbol(PRETTY[str(e)], **e.assumptions0)
        ),
    )


def _equation(lhs: sp.Basic, rhs: sp.Basic, sign: str, latex: bool) -> str:
    if latex:
        return f"{to_latex(lhs)} {sign} {to_latex(rhs)}"
    lhs, rhs = _pretty_names(lhs), _pretty_names(rhs)
    return sp.pretty(sp.Eq(lhs, rhs, evaluate=False), use_unicode=True).replace("=", sign, 1)


def show(name: str, latex: bool = False) -> str:
    """A registered derivation's definitions and steps, numbered as on its page."""
    derivation = derivations.get(name)
    say = StepReferences(derivation)  # "{step:key}" as the page says it: "step 3"
    lines = [derivation.title, ""]
    for d in derivation.definitions:
        lines += [_equation(d.name, d.expression, ":=", latex), ""]
    for number, step in enumerate(derivation.steps, 1):
        start = step.start
        if isinstance(start, int):
            start = f" (from step {start})"
        else:
            start = f" (from {say(start, link_to=None)})" if start else ""
        given = f", given {', '.join(map(str, step.given))}" if step.given else ""
        line = f"{number}. {step.title}{start}: {say(step.rule, link_to=None)}{given}"
        lines.append(line if latex else text_to_unicode(line))
        lines += [_equation(step.expression, step.result, SIGNS[step.relation], latex), ""]
    return "\n".join(lines)


MODULE = '''"""{title}: {forward}, from its forward definition alone (derive.forward).

Made with
    python -m derive new {name} --forward "{forward}" --wrt {wrt}{options}
The steps, the page and the functions {name}, {name}_grad follow from the definition.
"""

import sympy as sp

from derive.forward import Forward

{symbols}

FORWARD = Forward(
    name="{name}",
    title="{title}",
    summary="${latex}$, differentiated step by step by the engine.",
    expression=sp.parse_expr("{forward}", {local}),
    wrt={wrt},
    arguments={arguments},
    parameters={parameters},
    reference="{reference}",
)
'''


def _parameter(text: str) -> tuple[str, str]:
    name, _, domain = text.partition(":")
    if not name.isidentifier() or domain not in DOMAINS:
        raise ValueError(f"--param {text!r}: expected NAME:DOMAIN, DOMAIN one of {DOMAINS}")
    return name, domain


def _tuple(items: list[str]) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def new(args: argparse.Namespace) -> str:
    """Write derive/derivations/NAME.py and add NAME to the registry; say what was written."""
    name = args.name
    if not name.isidentifier() or name in derivations.MODULES:
        raise ValueError(f"{name!r} is not a new Python name (registered: it must not be)")
    parameters = [_parameter(p) for p in args.param]
    arguments = [args.wrt, *args.arg]
    symbols = {a: sp.Symbol(a, real=True) for a in arguments}
    symbols |= {p: sp.Symbol(p, real=True) for p, _ in parameters}
    expression = sp.parse_expr(args.forward, dict(symbols))
    unknown = expression.free_symbols - set(symbols.values())
    if unknown:
        raise ValueError(
            f"--forward uses {', '.join(sorted(map(str, unknown)))}, which is neither --wrt, "
            "an --arg nor a --param"
        )
    path = derivations.FOLDER / f"{name}.py"
    if path.exists():
        raise ValueError(f"{path} exists already")
    options = "".join(f" --arg {a}" for a in args.arg) + "".join(
        f" --param {p}" for p in args.param
    )
    options += f' --title "{args.title}"' * bool(args.title)
    options += f' --reference "{args.reference}"' * bool(args.reference)
    text = MODULE.format(
        name=name,
        title=args.title or name,
        forward=args.forward,
        wrt=args.wrt,
        options=options,
        latex=to_latex(expression).replace("\\", "\\\\"),
        symbols="\n".join(f'{s} = sp.Symbol("{s}", real=True)' for s in symbols),
        local="{" + ", ".join(f'"{s}": {s}' for s in symbols) + "}",
        arguments=_tuple(arguments),
        parameters=_tuple([f'({p}, "{d}")' for p, d in parameters]),
        reference=args.reference,
    )
    path.write_text(text)
    registry = derivations.FOLDER / "__init__.py"
    source = registry.read_text()
    closing = re.search(r"^MODULES = \((?:.|\n)*?^\)", source, re.M)
    source = source[: closing.end() - 1] + f'    "{name}",\n' + source[closing.end() - 1 :]
    registry.write_text(source)
    return (
        f"wrote {path.relative_to(derivations.FOLDER.parents[1])} and registered {name!r}; "
        "now `python -m derive build`"
    )
