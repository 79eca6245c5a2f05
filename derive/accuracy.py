"""Accuracy in ulps: ``python -m derive.accuracy [--samples N] [--output FILE]``.

Every generated function (every kernel of the registry, called as its tests
call it: ``softmax_jacobian(softmax(z))``) is evaluated in float32 and float64
on inputs that include extremes, and compared entry by entry with the same
call evaluated at 50 digits: each kernel's own index-form expression, entry by
entry, by SymPy and mpmath, on the very floats the function was given. The
error of an entry is counted in units in the last place (``numpy.spacing``) of
its true value rounded to the dtype. PyTorch's and SciPy's equivalents are
measured on the same inputs.

Where the function's value is a sum that can cancel (``Kernel.conditioning``
says why), no entry-wise bound can hold; the error is also given in ulps of
the largest entry of the sample (a norm-wise error).
"""

from __future__ import annotations

import argparse
import ast
import functools
import itertools
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from derive import locations, needs

with needs.imports_of("python -m derive.accuracy", __name__ == "__main__"):
    import mpmath
    import numpy as np
    import sympy as sp
    from sympy.codegen.cfunctions import log1p
    from sympy.core.function import AppliedUndef

    import derive.generated as generated
    from derive import derivations, provenance
    from derive.model import size
    from derive.steps import Kernel, Param
    from derive.sympy_tools import DenseSolve, Maximum, VectorScale

DIGITS = 50
ROOT = locations.CODE
# In a checkout, its accuracy-results/ (the site's Accuracy page renders it); else the user's
RESULTS = locations.results("accuracy-results")
DTYPES = ("float64", "float32")
SCIPY = {  # the generated function -> SciPy's equivalent, on the same variables
    "softmax": "scipy.special.softmax(z, axis=-1)",
    "log_softmax": "scipy.special.log_softmax(z, axis=-1)",
}
LOGIT_SCALES = (1.0, 30.0, 1e3, 1e4)  # extreme logits: a standard normal times one of these
DRAWS = {  # the ranges ``draw`` takes inputs from; stored with the results, for the page
    "moderate_scale": (0.1, 3.0),  # real arguments: a standard normal times a scale from here
    "moderate_probability": (0.05, 0.95),  # probabilities, and targets, when moderate
    "logit_scales": LOGIT_SCALES,
    "lift": (20.0, 700.0),  # extreme: one logit of a row raised by this much, half the time
    "tiny_exponents": (1.0, 15.0),  # extreme probabilities: 10^-e from 0 or from 1
    # moderate: this part of a positive number's declared range (Param.span), in log scale
    "positive_moderate": (1 / 3, 2 / 3),
}


def variables(kernel: Kernel, known: dict[str, Kernel]) -> dict[str, Param]:
    """The arguments of every generated function the call uses, by name."""
    tree = ast.parse(kernel.call, mode="eval")
    called = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and n.func.id in known]
    params: dict[str, Param] = {}
    for name in called:
        for p in known[name].params:
            params.setdefault(p.name, p)
    return params


REGIMES = ("moderate", "extreme")
"""moderate: logits of a few units, probabilities and targets in [0.05, 0.95], positive numbers
in the middle of their declared range; extreme: logits scaled by up to 1e4, one logit of a row
often far above the others, the other real arguments (inputs, weights, biases) scaled so that
their products reach the logits' scales, probabilities down to 1e-15 from 0 and from 1, targets
also exactly 0 and 1, positive numbers across their whole declared range and at its ends (the
ranges: ``DRAWS``)."""

DRAWN_ALIKE = {
    "one_hot": "one-hot labels: a row of 0s and one 1 has no extreme values",
    "labels": "integer class labels: 0 to C − 1 has no extreme values",
}
"""The domains ``draw`` draws alike in both regimes, and why; every other argument is drawn
extreme in the extreme regime."""


def _named(kernel: Kernel, known: dict[str, Kernel]) -> dict[str, Param]:
    """The arguments ``kernel.call`` names (``softmax_jacobian(softmax(z))``: z, not s)."""
    named = {n.id for n in ast.walk(ast.parse(kernel.call, mode="eval")) if isinstance(n, ast.Name)}
    return {name: p for name, p in variables(kernel, known).items() if name in named}


def extreme_arguments(kernel: Kernel, known: dict[str, Kernel]) -> list[str]:
    """The arguments of ``kernel.call`` that the extreme regime draws differently."""
    return [name for name, p in _named(kernel, known).items() if p.domain not in DRAWN_ALIKE]


def drawn_alike(kernel: Kernel, known: dict[str, Kernel]) -> dict[str, str]:
    """The arguments of ``kernel.call`` drawn alike in both regimes, each with why."""
    return {
        name: DRAWN_ALIKE[p.domain]
        for name, p in _named(kernel, known).items()
        if p.domain in DRAWN_ALIKE
    }


def _log_uniform(low: float, high: float, rng: np.random.Generator, shape) -> np.ndarray:
    return np.exp(rng.uniform(math.log(low), math.log(high), size=shape))


def _near_0_and_1(rng: np.random.Generator, shape, exact: bool) -> np.ndarray:
    """Moderate values, 10^-e from 0 and from 1, and (``exact``) 0 and 1 themselves."""
    tiny = 10.0 ** -rng.uniform(*DRAWS["tiny_exponents"], size=shape)
    moderate = rng.uniform(*DRAWS["moderate_probability"], size=shape)
    kinds = [moderate, tiny, 1 - tiny] + [np.zeros(shape), np.ones(shape)] * exact
    return np.choose(rng.integers(len(kinds), size=shape), kinds)


def draw(
    param: Param,
    batch: tuple[int, ...],
    sizes: dict[str, int],
    rng: np.random.Generator,
    regime: str = "extreme",
) -> np.ndarray:
    """One argument, from its domain, in the given regime."""
    shape = (batch if param.batched else ()) + tuple(sizes[a] for a in param.axes)
    if param.domain == "one_hot":
        return np.eye(shape[-1])[rng.integers(shape[-1], size=shape[:-1])]
    if param.domain == "positive" and regime == "moderate":  # the middle of its range
        low, high = (math.log(b) for b in param.span)
        inner = [math.exp(low + f * (high - low)) for f in DRAWS["positive_moderate"]]
        return _log_uniform(*inner, rng, shape)
    if param.domain == "positive":  # either end of its range a third of the time each, or between
        kinds = [np.full(shape, param.span[0]), np.full(shape, param.span[1])]
        kinds.append(_log_uniform(*param.span, rng, shape))
        return np.choose(rng.integers(3, size=shape), kinds)
    if param.domain in ("probability", "target") and regime == "moderate":
        return rng.uniform(*DRAWS["moderate_probability"], size=shape)
    if param.domain in ("probability", "target"):  # a target (a binary label) may be 0 or 1
        return _near_0_and_1(rng, shape, exact=param.domain == "target")
    if regime == "moderate":
        return rng.normal(size=shape) * rng.uniform(*DRAWS["moderate_scale"])
    scale = LOGIT_SCALES[rng.integers(len(LOGIT_SCALES))]
    if param.label != "z":  # inputs, weights, biases: a logit's scale, or its root (products)
        return rng.normal(size=shape) * scale ** rng.choice([0.5, 1.0])
    values = rng.normal(size=shape) * scale
    if param.axes and rng.random() < 0.5:  # one entry of each row far above the others
        rows = values.reshape(-1, shape[-1])
        rows[np.arange(len(rows)), rng.integers(shape[-1], size=len(rows))] += rng.uniform(
            *DRAWS["lift"]
        )
    return values


# -- the reference: each kernel's own expression at 50 digits -----------------------------------


def _label(base: sp.Basic) -> str:
    return str(base.label if isinstance(base, sp.IndexedBase) else base)


def _exact(value) -> sp.Float:
    return value if isinstance(value, sp.Float) else sp.Float(float(value), DIGITS + 10)


def _entry(
    expr: sp.Expr, values: dict[str, np.ndarray], at: dict[sp.Idx, int], sizes: dict
) -> sp.Float:
    """``expr`` at the (1-based) index values ``at``, arrays looked up entry by entry (0-based)."""
    expr = _at(expr, tuple(at.items()), tuple(sizes.items()))
    expr = expr.replace(
        lambda e: isinstance(e, sp.Indexed),
        lambda e: _exact(values[_label(e.base)][tuple(int(i) - 1 for i in e.indices)]),
    )
    expr = expr.xreplace({s: _exact(values[s.name]) for s in expr.free_symbols if s.name in values})
    expr = expr.replace(lambda e: isinstance(e, _Log1p), _log1p)
    value = sp.N(expr, DIGITS)
    if value in (sp.zoo, sp.oo, -sp.oo, sp.nan):  # log 0 of a probability that rounded to 0 or 1
        return sp.oo if value == sp.zoo else value
    return sp.Float(value, DIGITS)


@functools.lru_cache(maxsize=100_000)
def _at(expr: sp.Expr, at: tuple, sizes: tuple) -> sp.Expr:
    """``expr`` with its indices and sizes made numbers and its sums written out: the part of
    an entry that does not depend on the arrays, kept for the next sample of the same sizes
    (most of the time a reference takes)."""
    # SymPy evaluates log1p(r) of a number as log(1 + r), which at 50 digits is 0 for r < 1e-50;
    # held unevaluated until r is known, then mpmath's log1p keeps every digit of a tiny r.
    expr = expr.replace(lambda e: isinstance(e, log1p), lambda e: _Log1p(*e.args))
    plain = {i: sp.Symbol(str(i.label), integer=True) for i in expr.atoms(sp.Idx)}
    expr = expr.xreplace(plain).xreplace({plain[i]: v for i, v in at}).xreplace(dict(sizes))
    # a vector divided by any s > 0 gives the same result (the derivation's steps prove it for
    # the function it scales): at 50 digits nothing overflows, so the reference takes s = 1
    expr = expr.replace(lambda e: isinstance(e, VectorScale), lambda e: sp.Integer(1))
    return expr.replace(
        lambda e: isinstance(e, Maximum),
        lambda m: sp.Max(
            *[
                m.function.xreplace({m.limits[0][0]: v})
                for v in range(int(m.limits[0][1]), int(m.limits[0][2]) + 1)
            ]
        ),
    ).doit()


_Log1p = sp.Function("Log1p")  # log1p, left alone by SymPy until its argument is a number


def _log1p(e: sp.Expr) -> sp.Float:
    with mpmath.workdps(DIGITS):
        return sp.Float(mpmath.log1p(mpmath.mpf(str(sp.N(e.args[0], DIGITS)))), DIGITS)


def _reference_sample(
    kernel: Kernel, arguments: list, sizes: dict, symbols: dict, known: dict
) -> np.ndarray:
    values = {p.label: a for p, a in zip(kernel.params, arguments)}
    value, results = None, []
    for assign in (*kernel.body, kernel.returns, *(r.returns for r in kernel.more)):
        if isinstance(assign.expression, AppliedUndef):  # another kernel, itself at 50 digits
            value = _reference_call(assign.expression, values, sizes, known)
        elif isinstance(assign.expression, DenseSolve):  # the same system, solved at 50 digits
            value = _solve(
                values[_label(assign.expression.matrix)], values[_label(assign.expression.rhs)]
            )
        else:
            ranges = [range(1, symbols[i.upper] + 1) for i in assign.indices]
            entries = [
                _entry(assign.expression, values, dict(zip(assign.indices, point)), symbols)
                for point in itertools.product(*ranges)
            ]
            value = np.empty(len(entries), dtype=object)
            value[:] = entries
            value = value.reshape([len(r) for r in ranges])
        values[_label(assign.target)] = value
        results.append(value)
    if kernel.more:  # several results from one body: the tuple the generated function returns
        return tuple(results[len(kernel.body) :])
    return value


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Σ_k A[j.., k..] X[k..] = r[j..], flattened row-major, by mpmath's LU at 50 digits."""
    n = int(np.prod(np.shape(rhs)))
    with mpmath.workdps(DIGITS):
        a = mpmath.matrix([[mpmath.mpf(str(v)) for v in row] for row in np.reshape(matrix, (n, n))])
        b = mpmath.matrix([mpmath.mpf(str(v)) for v in np.reshape(rhs, (n,))])
        x = mpmath.lu_solve(a, b)
        solved = np.empty(n, dtype=object)
        solved[:] = [sp.Float(str(x[k]), DIGITS) for k in range(n)]
    return solved.reshape(np.shape(rhs))


def _reference_call(expr: sp.Basic, values: dict, sizes: dict, known: dict):
    if isinstance(expr, AppliedUndef):
        arguments = [_reference_call(a, values, sizes, known) for a in expr.args]
        return reference(known[type(expr).__name__], arguments, sizes, known)
    return values[_label(expr)]


def reference(kernel: Kernel, arguments: list, sizes: dict, known: dict) -> np.ndarray:
    """``kernel`` on ``arguments`` (arrays of floats or of 50-digit numbers), at 50 digits."""
    symbols = {size(name): value for name, value in sizes.items()}
    first = next((p, a) for p, a in zip(kernel.params, arguments) if p.batched)
    batch = np.shape(first[1])[: np.ndim(first[1]) - len(first[0].axes)]
    if kernel.flatten_batch:
        flat = [
            np.reshape(a, (-1,) + np.shape(a)[np.ndim(a) - len(p.axes) :]) if p.batched else a
            for p, a in zip(kernel.params, arguments)
        ]
        symbols[sp.Symbol("B", integer=True, positive=True)] = int(np.prod(batch))
        return _reference_sample(kernel, flat, sizes, symbols, known)
    samples = {}
    for b in np.ndindex(*batch):
        sample = [a[b] if p.batched else a for p, a in zip(kernel.params, arguments)]
        samples[b] = _reference_sample(kernel, sample, sizes, symbols, known)
    result = np.empty(tuple(batch) + np.shape(next(iter(samples.values()))), dtype=object)
    for b, value in samples.items():
        result[b] = value
    return result


# -- the error in ulps ---------------------------------------------------------------------------


def ulps(computed: np.ndarray, true: np.ndarray, dtype: str, normwise: bool = False) -> float:
    """The largest |computed − true| in ulps of the true value (or of the largest |true|)."""
    computed = np.asarray(computed, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=object).ravel()
    rounded = np.array([float(t) for t in true]).astype(dtype)
    unit = np.spacing(np.abs(rounded)).astype(np.float64)
    if normwise:
        unit = np.full_like(unit, np.spacing(np.max(np.abs(rounded))))
    worst = 0.0
    with mpmath.workdps(DIGITS):
        for c, t, u, r in zip(computed, true, unit, rounded):
            if not math.isfinite(c) or not np.isfinite(r):
                if c != float(r) and not (math.isnan(c) and np.isnan(r)):  # nan: both undefined
                    return math.inf
                continue
            worst = max(
                worst, float(abs(mpmath.mpf(c) - mpmath.mpf(str(t))) / mpmath.mpf(float(u)))
            )
    return worst


@dataclass(frozen=True)
class Case:
    values: dict[str, np.ndarray]  # float64; each dtype's run casts them first
    sizes: dict[str, int]


def cases(kernel: Kernel, known: dict, samples: int, seed: int, regime: str) -> list[Case]:
    rng = np.random.default_rng(seed)
    params = variables(kernel, known)
    drawn = []
    for _ in range(samples):
        sizes = {name: int(rng.integers(2, 6)) for name in "CDHK"}
        batch = (int(rng.integers(1, 4)),)
        drawn.append(
            Case({name: draw(p, batch, sizes, rng, regime) for name, p in params.items()}, sizes)
        )
    return drawn


def _torch_call(code: str, values: dict):
    import torch

    result = eval(code, {"torch": torch}, {k: torch.as_tensor(v) for k, v in values.items()})
    return result.numpy()


def _scipy_call(code: str, values: dict):
    import scipy
    import scipy.special

    return eval(code, {"scipy": scipy}, dict(values))


def measure(kernel: Kernel, known: dict, samples: int = 12, seed: int = 0) -> list[dict]:
    """Rows of the accuracy table for one function: ours, PyTorch's, SciPy's, per dtype."""
    call = kernel.call
    contenders = {"derive": lambda values: evaluate(call, values)}
    if kernel.reference:
        contenders["PyTorch"] = lambda values: _torch_call(kernel.reference, values)
    if kernel.name in SCIPY:
        contenders["SciPy"] = lambda values: _scipy_call(SCIPY[kernel.name], values)
    worst = {
        (who, dtype, regime): 0.0 for who in contenders for dtype in DTYPES for regime in REGIMES
    }
    worst_normwise = dict(worst)
    infinite: dict[tuple, dict] = {}  # the first entry that made a cell inf, to show why
    for regime, case in [(r, c) for r in REGIMES for c in cases(kernel, known, samples, seed, r)]:
        for dtype in DTYPES:
            values = {k: v.astype(dtype) for k, v in case.values.items()}
            true = evaluate(call, values, exact=(known, case.sizes))
            for who, run in contenders.items():
                with np.errstate(all="ignore"):
                    computed = run(values)
                key = (who, dtype, regime)
                error = ulps(computed, true, dtype)
                if math.isinf(error) and key not in infinite:
                    infinite[key] = infinite_entry(computed, true, dtype, case.values, values)
                worst[key] = max(worst[key], error)
                worst_normwise[key] = max(
                    worst_normwise[key], ulps(computed, true, dtype, normwise=True)
                )
    rows = []
    for key in worst:  # (who, dtype, regime)
        row = {
            "function": kernel.id,
            "call": call,
            "implementation": key[0],
            "dtype": key[1],
            "inputs": key[2],
            "max_ulp": worst[key],
            "max_ulp_normwise": worst_normwise[key],
            "conditioning": kernel.conditioning,
            "extreme_arguments": extreme_arguments(kernel, known),
            "drawn_alike": drawn_alike(kernel, known),
        }
        if key in infinite:
            row["infinite"] = infinite[key]
        rows.append(row)
    return rows


def infinite_entry(computed, true, dtype: str, drawn: dict, given: dict) -> dict:
    """The first entry where one of computed and true is finite and the other not (an error of
    inf ulps), and the arguments that rounding to ``dtype`` made exactly 0 or 1 (where a
    logarithm of p or of 1 − p is infinite, though it was finite for the value drawn)."""
    computed = np.asarray(computed, dtype=np.float64).ravel()
    rounded = np.array([float(t) for t in np.asarray(true, dtype=object).ravel()]).astype(dtype)
    at = next(
        i
        for i, (c, r) in enumerate(zip(computed, rounded))
        if (math.isfinite(c) != math.isfinite(r)) or (not math.isfinite(c) and c != float(r))
    )
    changed = [
        {"argument": name, "drawn": float(d), "given": float(g)}
        for name in given
        for d, g in zip(np.ravel(drawn[name]), np.ravel(given[name]).astype(np.float64))
        if g in (0.0, 1.0) and d != g
    ]
    return {
        "computed": _number(computed[at]),
        "true": _number(rounded[at]),
        "rounded_to_0_or_1": changed,
    }


def _number(value) -> float | str:
    """A float for JSON: inf and nan as the strings "inf", "-inf", "nan"."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def evaluate(code: str, values: dict, exact: tuple[dict, dict] | None = None):
    """Registry Python such as "softmax_jacobian(softmax(z))": with the generated functions,
    or (``exact=(kernels, sizes)``) with every function evaluated at 50 digits."""
    if exact is None:
        names = {name: getattr(generated, name) for name in generated.__all__}
    else:
        known, sizes = exact
        names = {
            name: (lambda k: lambda *a: reference(k, list(a), sizes, known))(k)  # noqa: B023 - bound by the outer call
            for name, k in known.items()
        }
    return eval(code, {**names, **values})  # the registry's own strings


def run(samples: int = 12, seed: int = 0, only: list[str] | None = None) -> dict:
    import scipy
    import torch

    known = derivations.kernels()
    rows = []
    started = time.perf_counter()
    for name in only or known:  # every kernel (a dispatcher only calls kernels measured here)
        start = time.perf_counter()
        for part in known[name].parts:  # each result of a kernel that returns several
            rows += measure(part, known, samples=samples, seed=seed)
        print(f"{name:32s} {time.perf_counter() - start:6.1f} s", flush=True)
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "functions": only,  # None: every function of the registry
        "seconds": round(time.perf_counter() - started, 1),
        **provenance.run_record(),
    }
    return {
        "runs": [record],  # python -m derive.accuracy --only adds one, for the rows it replaced
        "date": time.strftime("%Y-%m-%d"),
        "samples_per_function": samples,
        "digits": DIGITS,
        "logit_scales": list(LOGIT_SCALES),
        "draws": DRAWS,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "scipy": scipy.__version__,
            "mpmath": mpmath.__version__,
            "sympy": sp.__version__,
        },
        "rows": rows,
    }


def _json_safe(report: dict) -> dict:
    for row in report["rows"]:
        for key in ("max_ulp", "max_ulp_normwise"):
            if math.isinf(row[key]):
                row[key] = "inf"
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m derive.accuracy", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--samples", type=int, default=12, help="input draws per function and dtype"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"where to write the JSON report (default: {RESULTS})",
    )
    parser.add_argument(
        "--only",
        help="comma-separated functions to measure again; the other "
        "rows of the existing report are kept",
    )
    args = parser.parse_args(argv)
    needs.exit_if_missing(needs.missing_modules("python -m derive.accuracy", ("torch", "scipy")))
    only = args.only.split(",") if args.only else None
    if only and not args.output.exists():
        parser.exit(
            2,
            f"--only measures some functions again and keeps the other rows of the report at "
            f"{args.output}, which does not exist: run without --only first, or name a report "
            "with --output\n",
        )
    report = _json_safe(run(samples=args.samples, only=only))
    if only:  # replace those functions' rows, keep the rest as measured before
        previous = json.loads(args.output.read_text())
        known = derivations.kernels()

        def function(row: dict) -> str:  # "mlp_grads_relu[2]": one result of mlp_grads_relu
            return row["function"].split("[")[0]

        # rows of the functions measured again, and of functions that no longer exist, go
        report["rows"] = [
            r for r in previous["rows"] if function(r) not in only and function(r) in known
        ] + report["rows"]
        # a report from before runs were recorded: its date only, the rest not recorded
        earlier = previous.get("runs", [{"date": previous["date"], "functions": None}])
        for record in earlier:  # an earlier --only run keeps the functions not measured again
            if record["functions"] is not None:
                record["functions"] = [f for f in record["functions"] if f not in only]
        report["runs"] = [r for r in earlier if r["functions"] != []] + report["runs"]
        order = {name: n for n, name in enumerate(generated.__all__)}
        report["rows"].sort(key=lambda r: (order.get(function(r), len(order)), r["function"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for r in report["rows"]:
        print(
            f"{r['function']:32s} {r['implementation']:8s} {r['dtype']:8s} {r['inputs']:9s} "
            f"{float(r['max_ulp']):12.3g} ulp  (norm-wise {float(r['max_ulp_normwise']):.3g})"
        )
    print(f"wrote {locations.shown(args.output)}")


if __name__ == "__main__":
    main()
