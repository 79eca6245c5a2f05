"""Every registered kernel's generated function computes the index-form
expression it was printed from.

Two routes to the same numbers: the generated array code, and SymPy itself
evaluating the kernel's assignments entry by entry (indices and sizes made
numbers, sums written out, each ``x[j]`` looked up). This checks the printer's
translation of free indices, Kronecker deltas and sums into broadcasting code
for any derivation the moment it is registered. A call to another generated
function inside a kernel (``softmax(summation(x, W))``) is evaluated by that
function, which this same test checks on its own.
"""

from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import pytest
import sympy as sp
from sympy.core.function import AppliedUndef

import derive.generated as generated
from derive.codegen import PYTHON_NAMES
from derive.model import size
from derive.steps import Kernel
from derive.sympy_tools import DenseSolve, Maximum, VectorScale

from registry import BY_NAME, DISPATCHES, KERNELS, call, draw

SIZES = {"D": 3, "C": 4, "H": 2, "K": 3}
BATCHES = [(), (2,), (2, 3)]


def test_every_generated_function_is_a_registered_kernel():
    assert sorted([*BY_NAME] + [d.name for d in DISPATCHES]) == sorted(generated.__all__)


def _value_checks_listed(name: str) -> list[str] | None:
    """The checks a generated function's docstring says read values, or None if it lists none."""
    docstring = " ".join(getattr(generated, name).__doc__.split())
    listed = re.search(r"The checks that read values \((.*?)\) run outside", docstring)
    return None if listed is None else [check.strip() for check in listed.group(1).split(",")]


READS_VALUES = [name for name in sorted(BY_NAME) if _value_checks_listed(name) is not None]


def test_the_functions_with_a_requirement_say_their_checks_read_values():
    assert "newton_step" in READS_VALUES and "weight_grad" in READS_VALUES


@pytest.mark.parametrize("name", READS_VALUES)
def test_a_docstring_names_each_check_that_reads_values_once(name):
    """newton_step has two requirements on l2; its docstring once said "the requirement on l2" twice."""
    checks = _value_checks_listed(name)
    assert len(checks) == len(set(checks)), checks


def _arrays(value) -> list:
    return list(value) if isinstance(value, tuple) else [value]


DISPATCH_CASES = [
    pytest.param(d, choice, id=f"{d.name}-{choice}") for d in DISPATCHES for choice, _ in d.choices
]


@pytest.mark.parametrize(("dispatch", "choice"), DISPATCH_CASES)
def test_a_dispatcher_returns_what_the_kernels_of_its_choice_return(dispatch, choice):
    names = dict(dispatch.choices)[choice]
    params = BY_NAME[names[0]].params
    rng = np.random.default_rng(len(choice))
    arguments = [draw(p, (2, 3) if p.batched else (), SIZES, rng) for p in params]
    ours = getattr(generated, dispatch.name)(*arguments, **{dispatch.option: choice})
    # several kernels give a tuple; so does one kernel with several results
    expected = [a for name in names for a in _arrays(getattr(generated, name)(*arguments))]
    for value, reference in zip(_arrays(ours), expected, strict=True):
        np.testing.assert_array_equal(value, reference)
    if choice == dispatch.default:
        default = getattr(generated, dispatch.name)(*arguments)
        for value, reference in zip(_arrays(default), expected, strict=True):
            np.testing.assert_array_equal(value, reference)


@pytest.mark.parametrize("dispatch", DISPATCHES, ids=[d.name for d in DISPATCHES])
def test_a_dispatcher_names_its_option_and_choices_when_the_choice_is_unknown(dispatch):
    params = BY_NAME[dispatch.choices[0][1][0]].params
    arguments = [
        draw(p, (2,) if p.batched else (), SIZES, np.random.default_rng(0)) for p in params
    ]
    expected = ", ".join(repr(c) for c in sorted(dict(dispatch.choices)))
    with pytest.raises(
        ValueError, match=f"^{dispatch.option}: expected one of {expected}, got 'softsign'$"
    ):
        getattr(generated, dispatch.name)(*arguments, **{dispatch.option: "softsign"})


def _label(base: sp.Basic) -> str:
    return str(base.label if isinstance(base, sp.IndexedBase) else base)


@functools.cache
def numbered(expr: sp.Expr, at: tuple, sizes: tuple) -> sp.Expr:
    """``expr`` with indices and sizes made numbers and its sums written out. It does not depend
    on the arrays, so each batch sample and each batch shape of a kernel reuses it."""
    plain = {i: sp.Symbol(str(i.label), integer=True) for i in expr.atoms(sp.Idx)}
    expr = expr.xreplace(plain).xreplace({plain[i]: v for i, v in at}).xreplace(dict(sizes))
    return expr.replace(
        lambda e: isinstance(e, Maximum),
        lambda m: sp.Max(
            *[
                m.function.xreplace({m.limits[0][0]: v})
                for v in range(int(m.limits[0][1]), int(m.limits[0][2]) + 1)
            ]
        ),
    ).doit()


def as_number(
    expr: sp.Expr, values: dict[str, np.ndarray], at: dict[sp.Idx, int], sizes: dict
) -> float:
    """``expr`` at 1-based index values ``at``, every array entry looked up in ``values`` (0-based)."""
    expr = numbered(expr, tuple(at.items()), tuple(sizes.items()))
    expr = expr.replace(
        lambda e: isinstance(e, sp.Indexed),
        lambda e: sp.Float(values[_label(e.base)][tuple(int(i) - 1 for i in e.indices)], 30),
    )
    expr = expr.xreplace(
        {s: sp.Float(values[s.name], 30) for s in expr.free_symbols if s.name in values}
    )
    return float(sp.N(expr, 20))


def evaluate_kernel(kernel: Kernel, arguments: dict[str, np.ndarray], sizes: dict) -> np.ndarray:
    """The kernel's body and result, entry by entry, for one sample (or one flattened batch)."""
    values = {p.label: arguments[p.name] for p in kernel.params}
    for assign in (*kernel.body, kernel.returns):
        if isinstance(assign.expression, VectorScale):
            # any scale s > 0 gives the same result (the page's scaling steps prove it): s = 1
            # here, so the code's own s is checked against the definition, not against itself
            value = np.float64(1.0)
        elif isinstance(assign.expression, AppliedUndef):  # another generated function
            value = _call(assign.expression, {PYTHON_NAMES.get(k, k): v for k, v in values.items()})
        elif isinstance(
            assign.expression, DenseSolve
        ):  # NumPy's solve on the entries SymPy computed
            matrix, rhs = (
                values[_label(assign.expression.matrix)],
                values[_label(assign.expression.rhs)],
            )
            value = np.linalg.solve(matrix.reshape(rhs.size, rhs.size), rhs.ravel()).reshape(
                rhs.shape
            )
        else:
            ranges = [range(1, sizes[i.upper] + 1) for i in assign.indices]
            value = np.array(
                [
                    as_number(assign.expression, values, dict(zip(assign.indices, point)), sizes)
                    for point in itertools.product(*ranges)
                ]
            ).reshape([len(r) for r in ranges])
        values[_label(assign.target)] = value
    return value


def _call(expr: sp.Basic, arguments: dict[str, np.ndarray]):
    if isinstance(expr, AppliedUndef):
        return getattr(generated, type(expr).__name__)(*[_call(a, arguments) for a in expr.args])
    return arguments[PYTHON_NAMES.get(_label(expr), _label(expr))]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("kernel", KERNELS, ids=[k.id for k in KERNELS])
def test_generated_function_equals_its_index_form_evaluated_by_sympy(kernel, batch):
    rng = np.random.default_rng(len(kernel.name) + len(batch))
    arguments = {p.name: draw(p, batch if p.batched else (), SIZES, rng) for p in kernel.params}
    ours = call(kernel, *arguments.values())
    sizes = {size(name): value for name, value in SIZES.items()}
    if kernel.flatten_batch:  # the kernel reduces over the batch index b = 1..B
        flat = {
            p.name: a.reshape((-1,) + a.shape[a.ndim - len(p.axes) :]) if p.batched else a
            for p, a in zip(kernel.params, arguments.values())
        }
        batch_size = sp.Symbol("B", integer=True, positive=True)
        expected = evaluate_kernel(kernel, flat, {**sizes, batch_size: int(np.prod(batch))})
    else:
        expected = np.empty(ours.shape)
        for b in np.ndindex(batch):
            sample = {
                p.name: a[b] if p.batched else a for p, a in zip(kernel.params, arguments.values())
            }
            expected[b] = evaluate_kernel(kernel, sample, sizes)
    np.testing.assert_allclose(
        ours,
        expected,
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"{kernel.id}: generated code vs SymPy's index form",
    )


POSITIVE = [(k.name, p) for k in KERNELS for p in k.params if p.domain == "positive"]


@pytest.mark.parametrize("name, param", POSITIVE, ids=[f"{n}-{p.name}" for n, p in POSITIVE])
def test_a_positive_argument_is_drawn_across_its_whole_declared_range(name, param):
    """Not from (0.5, 2) whatever it is: eps from its (1e-8, 1), a temperature from (0.1, 10),
    every decade alike, so the checks above meet eps = 1e-8 as often as eps = 0.1."""
    low, high = param.span
    drawn = np.array([draw(param, (), {}, np.random.default_rng(seed)) for seed in range(400)])
    assert np.all((drawn >= low) & (drawn <= high)), (name, param.name)
    decades = np.log10(high / low)
    # each tenth of the range, on a log scale, gets some of the 400 draws
    bins = np.histogram(np.log10(drawn), bins=10, range=(np.log10(low), np.log10(high)))[0]
    assert bins.min() > 0 and decades >= 2, (name, param.name, bins)
    assert drawn.min() < low * 10 ** (decades / 10)  # the low end is reached


def _toy_kernel(name: str, body: tuple, returned: sp.Expr) -> Kernel:
    from derive.steps import Assign, Param

    a = sp.IndexedBase("a")
    k = sp.Idx("k", size("K"))
    return Kernel(
        name=name,
        summary="",
        params=(Param("a", a, axes=("K",)),),
        body=body,
        returns=Assign(sp.IndexedBase(f"{name}_out"), (k,), returned),
        returns_doc="",
    )


def test_kernels_that_begin_alike_share_those_assignments_and_name_only_what_they_read():
    from derive.codegen import SHARED_FROM, generate_module, shared_bodies
    from derive.steps import Assign, Derivation

    a = sp.IndexedBase("a")
    k = sp.Idx("k", size("K"))
    p, q, r, t = (sp.IndexedBase(n) for n in "pqrt")
    first = (
        Assign(p, (k,), a[k] ** 2),
        Assign(q, (k,), p[k] + 1),
        Assign(r, (k,), q[k] * 2),
    )
    assert len(first) == SHARED_FROM
    one = _toy_kernel("one", first, r[k] * a[k])
    two = _toy_kernel("two", (*first, Assign(t, (k,), p[k] - 1)), t[k] * a[k])
    shared = shared_bodies((one, two))
    assert shared["one"] == shared["two"]
    assert shared["one"].count == SHARED_FROM and shared["one"].returned == ("p", "r")
    assert shared["one"].call(one) == "_, r = _one_shared(xp, a)"
    assert shared["one"].call(two) == "p, _ = _one_shared(xp, a)"
    # one assignment fewer in common: each keeps its own body
    shorter = _toy_kernel("three", first[:2] + (Assign(r, (k,), q[k] * 3),), a[k])
    assert shared_bodies((one, shorter)) == {}
    derivation = Derivation(
        "toy", "", "", definitions=(), steps=(), identities=(), kernels=(one, two)
    )
    module = generate_module(derivation, {})
    (written,) = module["shared"]
    assert written.lines[-1] == "return (p, r)"
    assert [f.lines[0] for f in module["functions"]] == [
        shared["one"].call(one),
        shared["one"].call(two),
    ]


def test_layer_norm_writes_its_named_values_once_for_its_three_functions():
    import importlib
    import inspect

    module = importlib.import_module("derive.generated.layer_norm")
    source = inspect.getsource(module)
    assert source.count("vector_scale(xp, x") == 1
    for name in ("_layer_norm", "_layer_norm_jacobian", "_layer_norm_vjp"):
        assert "_layer_norm_shared(xp, x, eps)" in inspect.getsource(getattr(module, name))
