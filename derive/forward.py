"""A derivation from its forward definition alone: the steps, kernels and page follow.

A module in derive/derivations/ that defines ``FORWARD = Forward(...)`` instead of
a ``derive()`` function is turned into a :class:`~derive.steps.Derivation` here:
the differentiator (derive.differentiate) chooses and records the steps, and the
function and its derivative become kernels that the registry-driven tests check.
Elementwise functions only, for now: each argument is an array of any shape
(broadcast together), each parameter one number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy as sp
from sympy.core.function import AppliedUndef

from derive.differentiate import collapse_delta_sums, collapse_words, differentiate, tidy
from derive.naming import MEAN, NORMALISED, SCALE, SCALED, SCALED_BY, VARIANCE, name_pieces
from derive.printing import latex
from derive.steps import (
    DOMAINS,
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Example,
    Exercise,
    Kernel,
    MatrixResult,
    Param,
    Requirement,
    Section,
    Step,
)
from derive.sympy_tools import Hypot, NormalFloor, VectorScale, pull_out_of_sums

GENERATED_STEPS = (
    "Every step above was chosen and recorded by the differentiator (`derive.differentiate`) "
    "from the forward definition alone: which rule, in what order, the named values it goes "
    "through and the sentence of each rule. None was written for this page; each is checked "
    "by the build as a hand-written step would be."
)


def in_one_go(answer: sp.Eq) -> bool:
    """True if the answer's right side is what SymPy's ``diff`` gives for its left, in one go."""
    if not isinstance(answer, sp.Eq) or not isinstance(answer.lhs, sp.Derivative):
        return False
    return sp.simplify(answer.lhs.doit() - answer.rhs) == 0


def _written_sums(expr: sp.Expr) -> sp.Expr:
    """Each sum over an explicit range written as its terms, innermost first (``Sum.doit``
    confuses a sum inside another over a variable of the same name)."""

    def terms(total: sp.Sum) -> sp.Expr:
        ((k, low, high),) = total.limits
        label = k.label if isinstance(k, sp.Idx) else k
        same = [
            a for a in total.function.atoms(sp.Idx, sp.Symbol) if getattr(a, "label", a) == label
        ]
        return sp.Add(
            *[total.function.xreplace(dict.fromkeys(same, n)) for n in range(low, high + 1)]
        )

    return expr.replace(lambda e: isinstance(e, sp.Sum), terms)


def vjp_at_two(answer: sp.Eq) -> bool:
    """True if, for a vector of two entries written out, the answer's right side equals its left
    (Σ_i g_i ∂x̂_i/∂x_j with x̂ written out, differentiated by SymPy's ``diff``) for each j,
    at a rational point, to 30 digits."""
    if not isinstance(answer, sp.Eq) or not isinstance(answer.lhs, sp.Sum):
        return False
    ((_, _, size),) = answer.lhs.limits
    derivatives = answer.lhs.function.atoms(sp.Derivative)
    if len(derivatives) != 1:
        return False
    ((wrt, _),) = derivatives.pop().variable_count
    (j,) = wrt.indices
    for value in (1, 2):
        lhs, rhs = (_written_sums(side.subs(j, value).subs(size, 2)).doit() for side in answer.args)
        difference = lhs - rhs
        unknowns = sorted(difference.atoms(sp.Indexed) | difference.free_symbols, key=str)
        point = {u: sp.Rational(n + 2, 7 - n) for n, u in enumerate(unknowns)}
        if abs(sp.N(difference.xreplace(point), 30)) > 1e-20:
            return False
    return True


def _how_made(numerics: str) -> tuple[Section, ...]:
    text = GENERATED_STEPS + (f"\n\n**Numerics.** {numerics}" if numerics else "")
    return (Section("How these steps were made", text, place="after_steps"),)


Name = tuple[AppliedUndef, sp.Expr]

KNOWN_NAMES = {
    # value -> (name, the generated function that computes it stably); recognised in a forward
    # expression so the steps go through the name and the code calls the stable function
    "sigmoid": (sp.Function("sigma"), lambda z: 1 / (1 + sp.exp(-z))),
}

_DOMAIN_CONDITIONS = {"positive": lambda s: s > 0}
_DOMAIN_WORDS = {"real": "any real numbers", "positive": "a positive number"}


POSITIVE_SPAN = (1e-3, 1e3)
"""The range the tests draw a positive parameter from when its declaration gives none."""


def _scalar_params(parameters: tuple[tuple, ...]) -> tuple[Param, ...]:
    """One Param per declared number: (δ, "positive") or (δ, "positive", (low, high))."""
    return tuple(
        Param(
            str(s),
            s,
            batched=False,
            doc=_DOMAIN_WORDS.get(d, d),
            domain=d,
            span=(tuple(span[0]) if span else POSITIVE_SPAN) if d == "positive" else None,
        )
        for s, d, *span in parameters
    )


def _requirements(parameters: tuple[tuple, ...]) -> tuple[Requirement, ...]:
    return tuple(
        Requirement(_DOMAIN_CONDITIONS[d](s), f"{s} must be {_DOMAIN_WORDS[d]}, got {s} = {{{s}}}")
        for s, d, *_ in parameters
        if d in _DOMAIN_CONDITIONS
    )


@dataclass(frozen=True)
class Forward:
    """A function by its definition: what the page, the code and the tests are made from.

    ``expression`` is a function of ``arguments`` (arrays, elementwise) and
    ``parameters`` (one number each, with a domain: "positive" adds a check);
    it may use ``names``, intermediates such as r(p) := p − y, each a function
    of ``wrt`` alone. ``stable`` gives, for a name, the equal form the code uses
    (Φ via erfc rather than 1 + erf); each is shown as a checked step.
    """

    name: str
    title: str
    summary: str
    expression: sp.Expr
    wrt: sp.Symbol
    arguments: tuple[sp.Symbol, ...] = ()  # default: (wrt,)
    # (δ, "positive") or (δ, "positive", (1e-3, 1e3)): the range the tests draw a positive
    # number from, log-uniformly (default: POSITIVE_SPAN)
    parameters: tuple[tuple, ...] = ()
    names: tuple[Name, ...] = ()
    stable: tuple[Name, ...] = ()
    reference: str = ""  # the function in PyTorch's own operations: "torch.nn.functional.silu(z)"
    returns_doc: str = "the value at each entry, the shape of the arguments broadcast together"
    examples: tuple[Example, ...] = ()
    numerics: str = ""  # where the code is stable, and how: shown on the page
    conditioning: str = ""  # why no entry-wise error bound holds for the function, if none does
    grad_conditioning: str = ""  # the same for its derivative (a root: the derivative crosses 0)
    # why an overflow inside the derivative's arithmetic gives the right value (Kernel.overflow)
    grad_overflow: str = ""
    group: str = "activations"  # where the home page lists it (derive.derivations.GROUPS)

    def __post_init__(self):
        for symbol, domain, *_ in self.parameters:
            if domain not in DOMAINS:
                raise ValueError(
                    f"Forward {self.name}: parameter {symbol}'s domain must be one of {DOMAINS}, "
                    f"got {domain!r}"
                )
        for name, _ in self.names:
            if name.args != (self.wrt,):
                raise ValueError(
                    f"Forward {self.name}: name {name} must be a function of {self.wrt} alone"
                )


def recognised(expression: sp.Expr, variable: sp.Symbol) -> tuple[sp.Expr, tuple[Name, ...]]:
    """``expression`` with known values replaced by their names (1/(1 + e^{-z}) by σ(z))."""
    names = []
    for function, value in ((f, v(variable)) for f, v in KNOWN_NAMES.values()):
        replaced = expression.subs(value, function(variable))
        if replaced != expression:
            expression = replaced
            names.append((function(variable), value))
    return expression, tuple(names)


def _held(names: tuple[Name, ...]) -> dict[AppliedUndef, sp.Symbol]:
    """Each name as the variable the code holds it in: σ(z) -> sigma."""
    return {name: sp.Symbol(str(name.func)) for name, _ in names}


def _body(forward: Forward, names: tuple[Name, ...]) -> tuple[Assign, ...]:
    held, stable = _held(names), dict(forward.stable)
    calls = {f(forward.wrt): kernel for kernel, (f, _) in KNOWN_NAMES.items()}
    body = []
    for name, value in names:
        if name in calls:
            code = sp.Function(calls[name])(forward.wrt)
        else:
            code = stable.get(name, value)
        body.append(Assign(held[name], (), code.xreplace(held)))
    return tuple(body)


def derivation(forward: Forward) -> Derivation:
    """The derivation ``forward`` defines: steps chosen by the differentiator, two kernels."""
    z = forward.wrt
    expression, found = recognised(forward.expression, z)
    names = (*forward.names, *(n for n in found if n[0] not in dict(forward.names)))
    function = sp.Function(forward.name)
    arguments = forward.arguments or (z,)
    call = function(*arguments, *(s for s, *_ in forward.parameters))
    steps, derivative = differentiate(
        expression, z, names, start=f"the definition of ${latex(call)}$"
    )
    stable_steps = tuple(
        Step(
            f"Stable evaluation of ${latex(name)}$",
            "An equal form the code uses, which keeps its digits where the definition loses them.",
            dict(names)[name],
            value,
            start=f"the definition of ${latex(name)}$",
            checked="numeric",
        )
        for name, value in forward.stable
    )
    params = tuple(
        Param(str(a), a, doc="any real numbers", domain="real") for a in arguments
    ) + _scalar_params(forward.parameters)
    requires = _requirements(forward.parameters)
    held = _held(names)
    body = _body(forward, names)
    python_arguments = ", ".join(p.name for p in params)
    kernels = (
        Kernel(
            name=forward.name,
            summary=f"{forward.title}, elementwise, from its forward definition.",
            params=params,
            body=body,
            returns=Assign(call, (), expression.xreplace(held)),
            math=expression,
            returns_doc=forward.returns_doc,
            reference=forward.reference,
            requires=requires,
            conditioning=forward.conditioning,
        ),
        Kernel(
            name=f"{forward.name}_grad",
            summary=f"The derivative of {forward.title} with respect to {z}, elementwise.",
            params=params,
            body=body,
            returns=Assign(sp.Derivative(call, z), (), derivative.xreplace(held)),
            math=derivative,
            returns_doc=f"the derivative with respect to {z} at each entry",
            derivative=DerivativeOf(
                f"{forward.name}({python_arguments})", wrt=str(z), kind="elementwise"
            ),
            requires=requires,
            conditioning=forward.grad_conditioning,
            overflow=forward.grad_overflow,
        ),
    )
    written = expression.xreplace(dict(names))
    exercise = Exercise(
        "Differentiate the definition in one go, with every named value written out, as "
        "SymPy's `diff` does. Is it the same function as the result above? Which form would "
        "you rather compute, and read?",
        sp.Eq(sp.Derivative(written, z), derivative.xreplace(dict(names))),
        in_one_go,
        answer="The same function, written without the names: longer, and it repeats the "
        "named values' work. SymPy differentiates the written-out definition and finds the "
        "difference from the result, its names written out, 0.",
        title="In one go",
    )
    return Derivation(
        name=forward.name,
        title=forward.title,
        summary=forward.summary,
        definitions=(
            Definition(call, expression, "elementwise, the forward definition"),
            *(Definition(name, value, "a named intermediate") for name, value in names),
        ),
        steps=(*stable_steps, *steps),
        identities=(),
        kernels=kernels,
        examples=forward.examples,
        exercises=(exercise,),
        sections=_how_made(forward.numerics),
        results={"function": written, "derivative": derivative.xreplace(dict(names))},
        matrix_result=elementwise_matrix_result(forward, written, derivative.xreplace(dict(names))),
    )


def elementwise_matrix_result(forward: Forward, written, derivative) -> MatrixResult:
    """Applied to a vector of K entries, the function's Jacobian is diagonal, its derivative at
    each entry on the diagonal: the build checks that ∂f(z_k)/∂z_j, from the definition, is
    entry (k, j) of diag(f′(z)) with f′ the page's result."""
    K = sp.Symbol("K", integer=True, positive=True)
    k, j = sp.Idx("k", (1, K)), sp.Idx("j", (1, K))
    at = {a: sp.IndexedBase(str(a), real=True)[k] for a in forward.arguments or (forward.wrt,)}
    name = f"\\operatorname{{{forward.name}}}"  # upright, as the function prints
    value, slope = sp.IndexedBase(name), sp.IndexedBase(f"{name}'")
    return MatrixResult(
        group=forward.group,
        lhs=sp.MatrixSymbol(f"J_{{{name}}}", K, K),
        rhs=sp.DiagMatrix(sp.MatrixSymbol(f"{name}'", K, 1)),
        index_form=sp.Derivative(value[k], sp.IndexedBase(str(forward.wrt), real=True)[j]),
        entry=((k,), (j,)),
        where=((value[k], written.xreplace(at)), (slope[k], derivative.doit().xreplace(at))),
        text="Applied entry by entry to a vector, its Jacobian is diagonal, the derivative at "
        "each entry on the diagonal: the backward pass never forms it, and multiplies the "
        f"arriving gradient $g$ entrywise by ${name}'$ ($K$ entries).",
    )


@dataclass(frozen=True)
class VectorForward:
    """A function of a vector along the last axis, in index notation: ``output[i] = expression``
    with named values (μ, σ²) that are sums over the vector; the Jacobian, and the
    vector–Jacobian product that a backward pass uses, follow, without forming the Jacobian."""

    name: str
    title: str
    summary: str
    expression: sp.Expr  # written out, (x_i − Σ_k x_k/K)/√(...): or in the names given
    wrt: sp.Indexed  # x_j
    cotangent: sp.IndexedBase  # g, the gradient arriving at the output
    output: sp.Indexed | None = None  # x̂_i; None: the engine names it (y_i if it knows no name)
    parameters: tuple[tuple, ...] = ()  # as Forward's
    names: tuple[Name, ...] = ()  # () : the engine finds the standard ones (derive.naming)
    reference: str = ""
    notation: tuple[tuple[str, str], ...] = ()  # index letters beyond derive/notation.py's
    group: str = "hidden_layer"  # where the home page lists it (derive.derivations.GROUPS)
    numerics: str = ""  # where the code is stable, and how: shown on the page
    conditioning: str = ""  # why no entry-wise error bound holds for the function, if none does
    # each parameter's value that leaves the output unchanged when x is divided by any s > 0
    # (derive.naming.SCALED_BY): ((eps, eps / s**2),). The code then computes the named values
    # from x/s, s a power of two near max(max_k |x_k|, √eps), so no sum or square overflows,
    # and σ as hypot(s √(σ²/s²), √ε); checked steps on the page show each.
    scaled: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()
    float16_in_float32: str = ""  # why float16 is computed in float32 (Kernel's), if it is


CENTRED = sp.IndexedBase("centred")
CENTRED_MEAN = sp.Symbol("centred_mean", real=True)


def _code_body(names: tuple[Name, ...], output: Assign, x: sp.IndexedBase, mean=MEAN):
    """The named values as the code computes them, and the output: where the mean μ is named,
    x − μ is computed once (``centred``) and read by the sums and the output that hold it, a
    pass over memory and a temporary fewer than writing x_k − μ in each."""
    body = [Assign(n, (), v) for n, v in names]
    mean = mean if mean in dict(names) else None
    pieces = {e for _, v in names for e in v.atoms(sp.Add) if mean is not None}
    pieces = {
        e
        for e in pieces | set(output.expression.atoms(sp.Add))
        if mean is not None
        and len(e.args) == 2
        and set(e.args) - {-mean} != set(e.args)
        and all(isinstance(a, sp.Indexed) and a.base == x for a in set(e.args) - {-mean})
    }
    if not pieces:
        return tuple(body), output
    centred = {e: CENTRED[*(set(e.args) - {-mean}).pop().indices] for e in pieces}
    (k,) = next(iter(centred.values())).indices
    at = [n for n, _ in names].index(mean) + 1
    body = [Assign(a.target, a.indices, a.expression.xreplace(centred)) for a in body]
    # the corrected two-pass mean: x − μ, then minus its own mean, 0 as a real number but
    # what makes a constant vector's x − μ exactly 0 (the computed μ can be an ulp away)
    body[at:at] = [
        Assign(CENTRED, (k,), x[k] - mean),
        Assign(CENTRED_MEAN, (), dict(names)[mean].xreplace({x: CENTRED})),
        Assign(CENTRED, (k,), CENTRED[k] - CENTRED_MEAN),
    ]
    output = Assign(output.target, output.indices, output.expression.xreplace(centred))
    return tuple(body), output


def _reciprocals(body: tuple[Assign, ...], returned: tuple[sp.Expr, ...]):
    """Each per-vector number the returned arrays are divided by (σ in the Jacobian and the
    VJP) as its reciprocal, computed once per vector: K divisions per vector become one
    and K products. The same expressions, with 1/σ held in a variable.

    Not the output's own divisor: x̂ = (x/s − μ/s)/(σ/s) keeps its division, since σ/s is
    as small as √ε/s, and 1/(σ/s) overflows for a constant vector of huge entries (where
    the code would then compute 0·∞); σ ≥ √ε keeps 1/σ finite.

    Returns the assignments of the reciprocals, and ``returned`` reading them.
    """
    numbers = [a.target for a in body if not a.indices and isinstance(a.target, sp.Symbol)]
    divisors = {
        p.base for e in returned for p in e.atoms(sp.Pow) if p.exp == -1 and p.base in numbers
    }
    held = {n: sp.Symbol(f"reciprocal_{n}", positive=True) for n in numbers if n in divisors}
    inverted = {1 / n: r for n, r in held.items()}
    assigns = tuple(Assign(r, (), 1 / n) for n, r in held.items())
    return assigns, tuple(e.xreplace(inverted) for e in returned)


def _row_means(vjp: sp.Expr, size: sp.Symbol) -> tuple[tuple[Assign, ...], sp.Expr]:
    """Each sum over the vector in the VJP as a mean computed once per vector (Σ_i g_i/K as
    g_mean, Σ_i g_i x̂_i/K as g_xhat_mean): the code then scales no K-long array by 1/K."""
    means, code = [], vjp
    for total in sorted(vjp.atoms(sp.Sum), key=str):
        parts = [str(f.base) for f in sp.Mul.make_args(total.function) if isinstance(f, sp.Indexed)]
        mean = sp.Symbol("_".join((*parts, "mean")), real=True)
        means.append(Assign(mean, (), total / size))
        code = code.xreplace({total: size * mean})
    return tuple(means), code


SCALED_X = sp.IndexedBase("x_scaled")
RECIPROCAL = sp.Symbol("reciprocal_s", positive=True)


def _as_hypot(value: sp.Expr, parameters: dict) -> sp.Expr | None:
    """√(A + p) (σ = √(σ² + ε)) as hypot(s √(A/s²), √p), with A/s² computed from x/s: no
    overflow, and p kept where p/s² would underflow beside A = 0 (a constant vector)."""
    if not (isinstance(value, sp.Pow) and value.exp == sp.Rational(1, 2)):
        return None
    terms = sp.Add.make_args(value.base)
    kept = [t for t in terms if t in parameters]
    if len(kept) != 1:
        return None
    rest = sp.Add(*(t for t in terms if t not in kept))
    return Hypot(SCALED_BY * sp.sqrt(sp.UnevaluatedExpr(rest / SCALED_BY**2)), sp.sqrt(kept[0]))


def _floor(forward: VectorForward) -> sp.Expr:
    """The s at which each scaled parameter is 1 (√ε): the code's s is at least that, so no
    scaled parameter overflows, and above 0 for a vector of zeros."""
    floors = [
        solution for _, value in forward.scaled for solution in sp.solve(sp.Eq(value, 1), SCALED_BY)
    ]
    return sp.Max(*floors) if floors else sp.Integer(0)


def _scaling_code(forward: VectorForward, names, output: Assign, x: sp.IndexedBase, k: sp.Idx):
    """The names and output computed from x/s, with the assignments of s and x/s first:
    each standard name of x/s held in its own variable (derive.naming.SCALED), the scale σ
    as a hypotenuse, and the output from x/s, dividing by at least the smallest normal number."""
    floor = _floor(forward)
    held = {n: SCALED[n][0] for n, _ in names if n in SCALED}
    on_scaled = {x: SCALED_X, **held}
    guarded = {}  # σ/s, at least √ε/s, which can round to 0 beside x/s − μ/s = 0 (`NormalFloor`)
    code: list = [
        Assign(SCALED_BY, (), VectorScale(x, floor)),
        # 1/s is a power of two too: x times it is x/s exactly, and a product is faster
        Assign(RECIPROCAL, (), 1 / SCALED_BY),
        Assign(SCALED_X, (k,), x[k] * RECIPROCAL),
    ]
    body = []
    for name, value in names:
        hypot = _as_hypot(value, dict(forward.scaled))
        if hypot is not None:  # s √(σ²/s²): σ²/s² is the variance of x/s the code holds
            side, root = hypot.args
            (inside,) = side.atoms(sp.UnevaluatedExpr)
            of_scaled = {SCALED[n][1]: held[n] for n in held}
            inner = of_scaled.get(inside.args[0], inside.args[0].xreplace(on_scaled))
            body.append((name, Hypot(SCALED_BY * sp.sqrt(inner), root)))
            if name in held:
                body.append((held[name], name * RECIPROCAL))
                guarded[held[name]] = NormalFloor(held[name])
        else:
            body.append((held.get(name, name), value.xreplace(on_scaled)))
    expression = output.expression.xreplace(on_scaled).xreplace(guarded)
    output = Assign(output.target, output.indices, expression)
    return tuple(code), tuple(body), output


def _scaling_steps(forward: VectorForward, names, x) -> tuple[Step, ...]:
    """What the code computes from x/s, as checked steps: each standard name of x/s in those
    of x, the scale σ as a hypotenuse, and the output."""
    s = SCALED_BY
    s_ = latex(s)
    values = dict(names)
    steps = []
    first = True
    for name, value in names:
        if name not in SCALED:
            continue
        hypot = _as_hypot(value, dict(forward.scaled))
        if hypot is not None:
            steps.append(
                Step(
                    f"${latex(name)}$ without overflow",
                    f"${latex(SCALED[name][1])} = {latex(sp.sqrt(sp.expand(value.base / s**2)))}$ "
                    f"is the scale of $x/{s_}$, but "
                    f"${latex(hypot.args[1] ** 2 / s**2)}$ can underflow to 0 beside "
                    f"a variance of 0 (a constant vector, where "
                    f"${latex(name)} = {latex(value.xreplace({VARIANCE: 0}))}$): the code takes "
                    f"the hypotenuse $\\sqrt{{a^2 + b^2}}$, which squares neither side, so it "
                    "neither overflows nor loses the parameter.",
                    name,
                    hypot,
                    start=f"the definition of ${latex(name)}$",
                    checked="numeric",
                )
            )
            continue
        on_scaled = value.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == x, lambda e: e / s
        ).xreplace({n: SCALED[n][1] for n in values if n in SCALED and n != name})
        what = "mean" if name == MEAN else "variance" if name == VARIANCE else "value"
        steps.append(
            Step(
                f"The {what} of $x/{s_}$",
                (
                    f"For any ${s_} > 0$ the code may divide each vector by ${s_}$ first; it takes "
                    f"a power of two near $\\max(\\max_k |x_k|, {latex(_floor(forward))})$"
                    f", so every $|x_k/{s_}| < 2$ and no sum or square of $x/{s_}$ can overflow "
                    "(dividing by a power of two is exact). "
                    if first
                    else ""
                )
                + f"The {what} of $x/{s_}$ is that of $x$ times ${latex(SCALED[name][1] / name)}$.",
                on_scaled,
                SCALED[name][1],
                start=f"the definition of ${latex(name)}$",
                checked="numeric",
                key="divide-by-scale" if first else "",  # where the page says the code divides
            )
        )
        first = False
    output = forward.expression
    numerator, denominator = sp.fraction(output)
    steps.append(
        Step(
            f"${latex(forward.output)}$ from $x/{s_}$",
            f"Numerator and denominator divided by ${s_}$: the code computes "
            f"${latex(forward.output)}$ from $x/{s_}$ and its named values, and the Jacobian "
            f"and the vector–Jacobian product, which divide by ${latex(SCALE)}$, from the "
            f"${latex(SCALE)}$ above.",
            output,
            # kept apart through the build cache's pickle (a Mul(evaluate=False) is not)
            sp.expand(numerator / s) / sp.UnevaluatedExpr(denominator / s),
            start=f"the definition of ${latex(forward.output)}$",
            checked="numeric",
        )
    )
    if denominator in values and _as_hypot(values[denominator], dict(forward.scaled)):
        guarded = sp.expand(numerator / s) / NormalFloor(sp.UnevaluatedExpr(denominator / s))
        steps.append(_rounded_to_zero_step(steps[-1], guarded, denominator, values[denominator]))
    return tuple(steps)


def _rounded_to_zero_step(previous: Step, guarded: sp.Expr, scale, value: sp.Expr) -> Step:
    """The output divides by σ/s kept at least ν, the smallest normal number: the same for any
    input the dtype holds, and the code's 0/0 of a constant vector of huge entries becomes 0/ν."""
    s_ = latex(SCALED_BY)
    ratio = f"${latex(scale)}/{s_}$"
    (parameter,) = [t for t in sp.Add.make_args(value.base) if t != VARIANCE]
    floor = f"${latex(sp.sqrt(parameter))}/{s_}$"
    return Step(
        f"Where {ratio} rounds to 0",
        f"{ratio} is at least {floor}, positive, but computed in floating point it rounds to 0 "
        f"(or to a subnormal number) for a constant vector of entries near the largest number "
        f"beside a tiny ${latex(parameter)}$ (the bound is under *Numerics* below). The "
        f"variance is 0 there, every entry of $x/{s_}$ minus its mean is 0, and the division "
        f"would be $0/0$. The code divides by {ratio} kept at least $\\nu$, the dtype's "
        f"smallest normal number: $0/\\nu = 0$ there, which is ${latex(NORMALISED)}$ as "
        f"defined. Elsewhere {ratio}, as a real number, is at least about an ulp of 1 over "
        f"$\\sqrt{{K}}$ (some entry of $x/{s_}$, one of them at least 1 in size, lies that far "
        "from the mean of a vector that is not constant), far above $\\nu$ in float32 and "
        "float64: the two sides are the same.",
        previous.result,
        guarded,
        checked="numeric",
        key="rounds-to-zero",
    )


def _centring_step(output: sp.Indexed, x: sp.IndexedBase, k: sp.Idx, size) -> Step:
    """x_i − μ as the code computes it: minus the mean of every x_k − μ, which is 0 as a real
    number, and which makes a constant vector's x − μ exactly 0 where μ rounds an ulp away."""
    (i,) = output.indices
    centred = x[i] - MEAN
    return Step(
        "Centre twice",
        f"The code computes ${latex(centred)}$, then subtracts the mean of what it got: "
        f"${latex(sp.Sum(x[k] - MEAN, (k, 1, size)))} = 0$ as real numbers, so the two sides "
        f"are equal. In floating point the computed ${latex(MEAN)}$ of $K$ equal entries can "
        f"round an ulp away from them (when $K$ is not a power of two), and every "
        f"${latex(x[k] - MEAN)}$ is then that ulp instead of 0: divided by a scale as small "
        f"as that ulp, ${latex(output)}$ came out far from 0. Those differences are equal and "
        "exact, so their computed mean is exactly their value, and the second subtraction "
        "leaves exactly 0; elsewhere it removes most of the rounding error of the mean (the "
        "corrected two-pass mean). It costs one more sum and one more subtraction per vector.",
        centred,
        centred - sp.Sum(x[k] - MEAN, (k, 1, size)) / size,
        start=f"${latex(centred)}$, in the definition of ${latex(output)}$",
        checked="numeric",
        key="centre-twice",
    )


def _naming_step(written: sp.Expr, named: sp.Expr, names: tuple[Name, ...]) -> Step:
    """The definition as written, equal to it in the names the engine gave its pieces."""
    said = ", ".join(f"${latex(value)}$ as ${latex(name)}$" for name, value in names)
    return Step(
        "Name the pieces",
        f"Read {said}: the standard names, which the derivative goes through instead of the "
        "sums written out.",
        written,
        named,
        start="the forward definition, as written",
        checked="numeric",
    )


def vector_derivation(forward: VectorForward) -> Derivation:
    """The derivation ``forward`` defines: the Jacobian's steps chosen by the differentiator,
    the VJP's contracted from it, and three kernels (function, Jacobian, VJP)."""
    x, g = forward.wrt.base, forward.cotangent
    (j,) = forward.wrt.indices
    size = j.upper
    naming = ()
    if forward.names:
        names, expression, output_base = forward.names, forward.expression, None
    else:  # the engine's own names: μ, σ², σ, x̂
        expression, names, output_base = name_pieces(forward.expression, x, size)
        if names:
            naming = (_naming_step(forward.expression, expression, names),)
    (i,) = [s for s in forward.expression.free_symbols if isinstance(s, sp.Idx) and s != j]
    if forward.output is not None:
        output_base = forward.output.base
    forward = replace(
        forward, output=(output_base or sp.IndexedBase("y"))[i], expression=expression
    )
    steps, jacobian = differentiate(
        forward.expression,
        forward.wrt,
        names,
        start=f"the definition of ${latex(forward.output)}$",
        output=(forward.output, forward.expression),
        checked="numeric",
    )
    # gᵀJ: the Jacobian contracted with the cotangent, its delta collapsed
    contracted = sp.Sum(g[i] * sp.Derivative(forward.output, forward.wrt), (i, 1, size))
    substituted = sp.Sum(g[i] * jacobian, (i, 1, size))
    vjp = tidy(pull_out_of_sums(collapse_delta_sums(substituted)))
    steps = (
        naming
        + steps
        + (
            Step(
                "The vector–Jacobian product",
                f"A backward pass needs $\\sum_i g_i\\, \\partial {latex(forward.output)}/\\partial "
                f"{latex(forward.wrt)}$, not the Jacobian: put the Jacobian in.",
                contracted,
                substituted,
                start="what a backward pass computes",
                checked="numeric",
            ),
            Step(
                "Collapse the sum over the delta",
                f"{collapse_words(substituted)[0]} Each of those sums is computed once for every "
                f"${latex(j)}$: no $K \\times K$ matrix is formed.",
                substituted,
                vjp,
                checked="numeric",
            ),
        )
    )
    params = (
        Param(str(x), x, axes=(str(size),), doc="any real numbers"),
        *_scalar_params(forward.parameters),
    )
    cotangent = Param(str(g), g, axes=(str(size),), doc="the gradient arriving at the output")
    requires = _requirements(forward.parameters)
    output = Assign(forward.output.base, (i,), forward.expression)
    first, code_names, code_x, mean = (), names, x, MEAN
    k = sp.Idx("k", (j.lower, j.upper))
    scaling_steps = ()
    if forward.scaled:
        first, code_names, output = _scaling_code(forward, names, output, x, k)
        code_x, mean = SCALED_X, SCALED[MEAN][0]
        scaling_steps = _scaling_steps(forward, names, x)
    body, output = _code_body(code_names, output, code_x, mean)
    if any(a.target == CENTRED_MEAN for a in body):
        steps += (_centring_step(forward.output, x, k, size),)
    steps += scaling_steps
    body = (*first, *body, output)  # the same first assignments in each kernel: written once
    means, vjp_code = _row_means(vjp, size)
    more, (jacobian_code, vjp_code) = _reciprocals(body, (jacobian, vjp_code))
    arguments = ", ".join(p.name for p in params)
    kernels = (
        Kernel(
            name=forward.name,
            summary=f"{forward.title}, over the last axis.",
            params=params,
            body=body,
            returns=Assign(output.target, output.indices, output.target[output.indices]),
            math=forward.expression,
            returns_doc="the shape of x",
            reference=forward.reference,
            requires=requires,
            float16_in_float32=forward.float16_in_float32,
            conditioning=forward.conditioning,
        ),
        Kernel(
            name=f"{forward.name}_jacobian",
            summary=f"The Jacobian of {forward.name} for each vector along the last axis.",
            params=params,
            body=(*body, *more),
            returns=Assign(sp.Derivative(forward.output, forward.wrt), (i, j), jacobian_code),
            math=jacobian,
            returns_doc=f"shape (..., {size}, {size}): entry (i, j) is ∂x̂_i/∂x_j",
            conditioning="δ_ij − 1/K − x̂_i x̂_j/K is a difference of terms near 1/K that "
            "cancel for some entries: no entry-wise bound holds, and a norm-wise one only where "
            "K > 2. For K = 2, x̂ is ±(1, −1)·√(var/(var + eps)), every entry is "
            "±eps/(2σ(var + eps)), and where eps ≪ var all of it is lost to the cancellation: "
            "the error is then a few ulps of 1/σ, not of the result",
            derivative=DerivativeOf(f"{forward.name}({arguments})", wrt=str(x)),
            requires=requires,
            float16_in_float32=forward.float16_in_float32,
        ),
        Kernel(
            name=f"{forward.name}_vjp",
            summary=f"The vector–Jacobian product gᵀJ of {forward.name}, without forming J.",
            params=(*params, cotangent),
            body=(*body, *more, *means),
            returns=Assign(contracted, (j,), vjp_code),
            math=vjp,
            returns_doc="the gradient with respect to x, the shape of x",
            conditioning="g − mean(g) − x̂·mean(g x̂) subtracts means from g, which can leave "
            "an entry far smaller than the terms it came from: no entry-wise bound holds. For "
            "K = 2 every entry is ±(g_1 − g_2)·eps/(2σ(var + eps)), and where eps ≪ var all of "
            "it is lost to the cancellation: the error is then a few ulps of |g|/σ, not of the "
            "result",
            derivative=DerivativeOf(
                f"{g} * {forward.name}({arguments})", wrt=str(x), kind="elementwise"
            ),
            requires=requires,
            float16_in_float32=forward.float16_in_float32,
        ),
    )
    written_out = dict(reversed(names))  # each name through the ones before it
    out = forward.expression
    for _ in names:
        out = out.xreplace(written_out)
    contracted_out = vjp.replace(
        lambda e: isinstance(e, sp.Indexed) and e.base == forward.output.base,
        lambda e: out.xreplace(dict(zip((i,), e.indices))),
    )
    for _ in names:
        contracted_out = contracted_out.xreplace(written_out)
    exercise = Exercise(
        "Check the vector–Jacobian product for a vector of two entries: write it out, "
        "differentiate with SymPy, and contract the Jacobian with $g$.",
        sp.Eq(sp.Sum(g[i] * sp.Derivative(out, forward.wrt), (i, 1, size)), contracted_out),
        vjp_at_two,
        answer="At $K = 2$ the sums are two terms; SymPy differentiates the written-out "
        "normalisation entry by entry, and the contraction agrees with the VJP at a rational "
        "point to 30 digits, for $j = 1$ and $j = 2$.",
        title="The VJP at K = 2",
    )
    return Derivation(
        name=forward.name,
        title=forward.title,
        summary=forward.summary,
        exercises=(exercise,),
        definitions=(
            Definition(forward.output, forward.expression, "the forward definition"),
            *(Definition(n, v, "a named intermediate") for n, v in names),
        ),
        steps=steps,
        identities=(),
        kernels=kernels,
        sections=_how_made(forward.numerics),
        results={"jacobian": jacobian, "vjp": vjp},
        notation=forward.notation,
        matrix_result=vjp_matrix_result(forward, vjp, size),
    )


def vjp_matrix_result(forward: VectorForward, vjp, size) -> MatrixResult | None:
    """The vector–Jacobian product with vectors: the output and the cotangent as K × 1 columns,
    every other name a scalar; None where the product has another shape."""
    (j,) = forward.wrt.indices
    columns = {
        base: sp.MatrixSymbol(str(base.label), size, 1)
        for base in (forward.output.base, forward.cotangent)
    }
    ones = sp.OneMatrix(size, 1)
    output, cotangent = columns[forward.output.base], columns[forward.cotangent]
    means = (output * (output.T * cotangent) + ones * (ones.T * cotangent)) / size
    expected = sp.MatAdd(cotangent, -means)
    scale = vjp.as_independent(j, sp.Sum)[0]  # the factor the whole product is divided by: 1/σ
    return MatrixResult(
        group=forward.group,
        lhs=sp.MatrixSymbol(f"\\nabla_{{{forward.wrt.base.label}}}", size, 1),
        rhs=scale * expected,
        index_form=vjp,
        entry=((j,), ()),
        text="The backward pass in matrix form: the arriving gradient $g$ minus its mean "
        "($\\mathbf{1}$ is the $K \\times K$ matrix of ones) and minus its component along the "
        "normalised output, divided by the scale; no $K \\times K$ Jacobian is formed.",
    )
