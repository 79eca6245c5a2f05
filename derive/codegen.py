"""Kernels to Python functions: the lines of each function, printed by ArrayPrinter.

Returns plain data (names, docstrings, lines of code) for the module template;
nothing here touches files.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import sympy as sp
from sympy.concrete.expr_with_limits import ExprWithLimits
from sympy.core.function import AppliedUndef
from sympy.printing.pycode import PythonCodePrinter

from derive._runtime import SPECIAL_FUNCTIONS
from derive.printing import ArrayPrinter, latex
from derive.steps import SHIFT_OVERFLOW, Assign, Derivation, Dispatch, Kernel, Option, Param, Result
from derive.sympy_tools import Maximum

# Model bases whose Python name differs: S is the softmax *output* `s`.
PYTHON_NAMES = {"S": "s"}

_PACKAGE = Path(__file__).resolve().parent
# What a generated module's header hashes besides the derivation modules it comes from: its
# template. Not the engine (printers, this module): an engine edit that changes no body then
# rewrites no file, and one that does shows in the body (and `derive check` compares bodies).
CODE_INPUTS = [_PACKAGE.parent / "templates" / "module.py.j2"]


@dataclass(frozen=True)
class GeneratedFunction:
    """A public function that checks its arguments, and its unchecked core.

    Generated functions call each other's cores (``_softmax(xp, z)``), so the
    arguments are checked once per call from outside, not at every layer.
    """

    name: str
    arguments: str  # "x, W"
    signature: str  # "x: ArrayLike, W: ArrayLike, T: float": what a caller may pass
    docstring: str
    checks: tuple[str, ...]  # the public function's body before it calls the core
    lines: tuple[str, ...]  # the core's body
    calls: tuple[str, ...]  # other generated functions the core calls
    labels_lines: tuple[str, ...] = ()  # the core of the labels form, ``_name_labels``, if any
    runtime: tuple[str, ...] = ()  # helpers of derive._runtime the code calls besides the usual
    returns: str = "Array"  # the return annotation: a tuple for a kernel with several results
    options_signature: str = ""  # ", *, weight: ArrayLike | None = None, ...": keyword-only options
    options_lines: tuple[str, ...] = ()  # the core of the options form, ``_name_options``, if any
    options_core_signature: str = ""  # its parameters: the kernel's, then the form's
    # ", fresh: bool = False" if the core can overwrite arguments its caller gives away
    fresh_parameter: str = ""
    core_signature: str = (
        ""  # the cores' parameters, checked arrays: "x: Array, W: Array, T: float"
    )
    decorators: tuple[str, ...] = ()  # of the public function: "quiet_overflow" (Kernel.overflow)


def _python_name(base: sp.Basic) -> str:
    label = str(base.label if isinstance(base, sp.IndexedBase) else base)
    return PYTHON_NAMES.get(label, label)


def _shape_spec(axes: tuple[str, ...], batched: bool, one_hot: bool = False) -> str:
    parts = (["..."] if batched else []) + list(axes)
    closing = ",)" if len(parts) == 1 and parts != ["..."] else ")"  # (C,) but (...): any shape
    return "(" + ", ".join(parts) + closing + (" one-hot" if one_hot else "")


def _names_in(expr: sp.Basic) -> set[str]:
    bases = {_python_name(b) for b in expr.atoms(sp.IndexedBase)}
    return bases | {_python_name(s) for s in expr.atoms(sp.Symbol)}


def _calls_in(expr: sp.Basic) -> list[str]:
    return sorted({type(f).__name__ for f in expr.atoms(AppliedUndef)})


def _docstring(kernel: Kernel) -> str:
    lines = [kernel.summary, ""]
    for lhs, rhs in (part.equation for part in kernel.parts):
        lines += [f"$$ {latex(lhs)} = {latex(rhs)} $$", ""]
    if kernel.notes:
        lines += [textwrap.fill(kernel.notes, width=88), ""]
    if kernel.overflow:
        note = f"{kernel.overflow}: so NumPy's overflow warning is not raised for it."
        lines += [textwrap.fill(note, width=88), ""]
    if kernel.float16_in_float32:
        note = (
            f"float16 is computed in float32, the result rounded once: {kernel.float16_in_float32}."
        )
        lines += [textwrap.fill(note, width=88), ""]
    if _value_checks(kernel):
        note = (
            f"The checks that read values ({', '.join(_value_checks(kernel))}) run outside "
            "`jax.jit` only: a traced value is not checked. Shapes and dtypes always are."
        )
        lines += [textwrap.fill(note, width=88), ""]
    lines.append("Args:")
    for p in kernel.params:
        shape = _shape_spec(p.axes, p.batched) if not _is_scalar(p) else "(), a number"
        if p.one_hot:
            shape += ", or integer class labels 0..C-1 of shape (...)"
        lines.append(f"    {p.name}: {p.doc}, shape {shape}.")
    lines += ["", "Returns:", f"    {kernel.returns_doc}."]
    return "\n".join(lines)


def _value_checks(kernel: Kernel) -> list[str]:
    """What the checks read from the values, not the shapes: skipped for JAX tracers."""
    checks = []
    if any(p.one_hot or p.labels for p in kernel.params):
        checks.append("class labels in 0..C-1, label rows summing to 1")
    for requirement in kernel.requires:
        symbols = {str(s) for s in requirement.condition.free_symbols}
        checks += [
            f"the requirement on {p.name}"
            for p in kernel.params
            if _is_scalar(p) and p.label in symbols
        ]
    return list(dict.fromkeys(checks))  # two requirements on one argument name it once


def _sizes_used_as_numbers(expr: sp.Basic) -> set[str]:
    """Symbols used as numbers (the K in a mean's 1/K): not a sum's range, an index's
    bounds or an array's declared shape, which the printer turns into axes."""
    if isinstance(expr, sp.Symbol):
        return {str(expr)}
    if isinstance(expr, (sp.Indexed, sp.IndexedBase, sp.Idx)):
        return set()
    if isinstance(expr, ExprWithLimits):
        return _sizes_used_as_numbers(expr.function)
    return set().union(*(_sizes_used_as_numbers(a) for a in expr.args))


def _is_scalar(param) -> bool:
    return not param.axes and not param.batched


def _flatten_lines(param: Param) -> list[str]:
    """A batched parameter reshaped to one batch axis, ``(B, ...)``: only when it has another
    number of axes, since a batch that is already flat (the usual call) needs no view made (a
    reshape is a call and a new array object, 0.2 µs each, per-call overhead at small sizes)."""
    flat = "(-1,)" if param.labels else f"(-1, {', '.join(param.axes)})"  # one label per sample
    axes = 1 + (0 if param.labels else len(param.axes))
    return [
        f"if {param.name}.ndim != {axes}:",
        f"    {param.name} = xp.reshape({param.name}, {flat})",
    ]


def _size_lines(kernel: Kernel, sizes: set[str]) -> list[str]:
    """``C = W.shape[-1]``: each named size read from the first argument that has it."""
    lines = []
    for size in sorted(sizes):
        (owner, position) = next(
            (p, p.axes.index(size) - len(p.axes))
            for p in kernel.params
            if size in p.axes and not p.labels
        )
        lines.append(f"{size} = {owner.name}.shape[{position}]")
    return lines


class _ConditionPrinter(PythonCodePrinter):
    """A requirement's condition as plain Python: the generated modules do not import math."""

    def _print_Infinity(self, expr) -> str:
        return 'float("inf")'


def _samples_check(kernel: Kernel) -> list[str]:
    """A kernel that averages over the batch (``flatten_batch``) needs a sample: a batch of none
    is a ValueError naming the first batched argument. Every other kernel returns an empty
    result for it, with the batch axes kept."""
    if not kernel.flatten_batch:
        return []
    first = next(p for p in kernel.params if p.batched and not _is_scalar(p))
    name, axes = first.name, len(first.axes)
    return [
        f"if 0 in {name}.shape[: {name}.ndim - {axes}]:",
        f'    raise ValueError(f"{name}: expected at least one sample (the result is a mean over '
        f'the samples), got shape {{tuple({name}.shape)}}")',
    ]


def _requirement_checks(kernel: Kernel) -> list[str]:
    """``if not (l2 > 0): raise ValueError(...)`` for each of the kernel's requirements, after
    the check that a kernel averaging over the batch has a sample."""
    lines = _samples_check(kernel)
    axes = {a for p in kernel.params for a in p.axes}
    for requirement in kernel.requires:
        symbols = {str(s) for s in requirement.condition.free_symbols}
        lines += _size_lines(kernel, symbols & axes)
        renamed = requirement.condition.xreplace(
            {s: sp.Symbol(_python_name(s)) for s in requirement.condition.free_symbols}
        )
        # A scalar's value is unknown inside jax.jit (a tracer): the check runs outside only.
        traced = [
            f"not is_traced({p.name}) and "
            for p in kernel.params
            if _is_scalar(p) and str(p.label) in symbols
        ]
        lines += [
            f"if {''.join(traced)}not ({_ConditionPrinter().doprint(renamed)}):",
            f'    raise ValueError(f"{requirement.message}")',
        ]
    return lines


def _without_unused_sizes(lines: list[str]) -> list[str]:
    """Drop ``C = ...`` / ``dtype = ...`` lines that the printed code never reads
    (a delta the printer wrote as a cumulative sum needs neither)."""
    kept = []
    for number, line in enumerate(lines):
        target = line.split(" = ", 1)[0]
        if target in ("dtype", *_SIZE_NAMES) and " = " in line and not line.startswith("return"):
            later = "\n".join(lines[number + 1 :]).replace("return ", "_ = ", 1)
            used = {
                n.id
                for n in ast.walk(ast.parse(textwrap.dedent(later) or "pass"))
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
            if target not in used:
                continue
        kept.append(line)
    return kept


_SIZE_NAMES = ("B", "C", "D", "H", "K")


def _owned(
    body, order: list, given: set[str] = frozenset(), assigned: list | None = None
) -> list[set[str]]:
    """Per expression of ``order`` (the body's and the results', as computed): the
    temporaries it may overwrite.

    A body target that this expression reads, that no later expression
    reads, and that no other generated function returned to it under a name
    it also reads elsewhere: the expression is its last use, so the library
    may reuse its memory (NumPy, in place). ``assigned``: the name each expression
    is assigned to (None for a result); a name assigned again (``centred = centred − m``)
    is a new value, and reads after that are not reads of the old one.
    """
    # a target that is a bare argument (``s = z``) may share its memory: never overwritten
    targets = {
        _python_name(a.target)
        for a in body
        if not isinstance(a.expression, (sp.Indexed, sp.Symbol, sp.Idx))
    } | set(given)  # parameters given away by the caller (``fresh=True``): temporaries too
    assigned = assigned or [None] * len(order)

    def read_later(name: str, number: int) -> bool:
        if assigned[number] == name:  # this expression's reads are the old value's last
            return False
        for expression, target in zip(order[number + 1 :], assigned[number + 1 :]):
            if name in _names_in(expression):
                return True
            if target == name:
                return False
        return False

    return [
        {n for n in _names_in(expression) & targets if not read_later(n, number)}
        for number, expression in enumerate(order)
    ]


def _result_names(returned: list, taken: set[str]) -> list[str]:
    """A Python name for each result computed before the return statement: ``dW2`` for
    ∂L/∂W2, else ``result_1`` (never one the function already uses)."""
    found = []
    for number, result in enumerate(returned):
        target, name = result.target, ""
        if isinstance(target, sp.Derivative) and len(target.variables) == 1:
            (wrt,) = target.variables
            base = wrt.base if isinstance(wrt, sp.Indexed) else wrt
            name = "d" + _python_name(base)
        if not name.isidentifier() or name in taken:
            name = f"result_{number}"
        taken.add(name)
        found.append(name)
    return found


def _labels_function(kernel: Kernel) -> tuple[Kernel, str]:
    """The kernel with its labels form in place of the one-hot form, and the one-hot parameter's name."""
    form = kernel.labels_form
    params = tuple(form.param if p.name == form.param.name else p for p in kernel.params)
    if params == kernel.params:
        raise ValueError(
            f"{kernel.name}: the labels form's parameter {form.param.name} is not a parameter"
        )
    return replace(
        kernel, params=params, body=form.body, returns=form.returns, labels_form=None
    ), form.param.name


def _dispatch(kernel: Kernel, labels: Kernel, name: str) -> list[str]:
    """The public function's first lines: integer labels of the batch shape take the labels form."""
    like = next(p for p in kernel.params if p.batched and p.name != name and not _is_scalar(p))
    arrays = [p for p in labels.params if not _is_scalar(p)]
    array_names = ", ".join(p.name for p in arrays)
    specs = ", ".join(f'{p.name}=({p.name}, "{_spec(p)}")' for p in arrays)
    return [
        f"if is_class_labels({name}, {like.name}, {len(like.axes)}):",
        f"    {array_names} = prepare(xp, {specs})",
        *[f'    {p.name} = scalar("{p.name}", {p.name})' for p in labels.params if _is_scalar(p)],
        *[f"    {line}" for line in _requirement_checks(labels)],
        f"    return _{kernel.name}_labels(xp, {', '.join(p.name for p in kernel.params)})",
    ]


def _checked_numpy_call(kernel: Kernel, form: str) -> str:
    """The line that asks `checked_numpy` whether this NumPy call passed before."""
    arrays = [p for p in kernel.params if not _is_scalar(p)]
    pairs = ", ".join(f'("{p.name}", "{_spec(p)}")' for p in arrays) + ("," * (len(arrays) == 1))
    names = ", ".join(p.name for p in arrays)
    return f'checked = checked_numpy("{kernel.name}", ({pairs}), {form}, {names})'


def _numpy_seen_before(kernel: Kernel, checks: tuple[str, ...]) -> tuple[str, ...]:
    """``checks`` (namespace, prepare, then the rest) with a NumPy call seen before skipping the first two.

    ``checked_numpy`` returns None unless every array is NumPy with shapes and
    dtypes that passed before and values that pass again; the full checks
    then run, and raise, as before. Both ways share the rest (scalars,
    requirements) and the call of the core with ``xp``.
    """
    arrays = [p for p in kernel.params if not _is_scalar(p)]
    if not arrays:  # numbers only: nothing to remember
        return checks
    namespace_line, prepare_line, *rest = checks
    unpacked = ", ".join(p.name for p in arrays) + "," * (len(arrays) == 1)
    return (
        _checked_numpy_call(kernel, "None"),
        "if checked is None:",
        f"    {namespace_line}",
        f"    {prepare_line}",
        "else:",
        "    xp = FAST_NUMPY",
        f"    {unpacked} = checked",
        *rest,
    )


def _labels_seen_before(kernel: Kernel, labels: Kernel, name: str) -> list[str]:
    """The first lines of a function with a labels form: a NumPy call seen before returns at once.

    As `_numpy_seen_before`, with the form `checked_numpy` chose first:
    ``is_class_labels(name, like, axes)``, as the full checks below decide it.
    """
    arrays = [p for p in kernel.params if not _is_scalar(p)]
    scalars = [
        f'    {p.name} = scalar("{p.name}", {p.name})' for p in kernel.params if _is_scalar(p)
    ]
    call = ", ".join(p.name for p in kernel.params)
    like = next(p for p in kernel.params if p.batched and p.name != name and not _is_scalar(p))
    spec = _spec(next(p for p in labels.params if p.name == name))
    form = f'("{name}", "{like.name}", {len(like.axes)}, "{spec}")'
    return [
        _checked_numpy_call(kernel, form),
        "if checked is not None:",
        f"    labels, {', '.join(p.name for p in arrays)} = checked",
        *scalars,
        *[f"    {line}" for line in _requirement_checks(kernel)],
        "    if labels:",
        f"        return _{kernel.name}_labels(FAST_NUMPY, {call})",
        f"    return _{kernel.name}(FAST_NUMPY, {call})",
    ]


def _spec(p) -> str:
    if p.labels:
        return f"(...) labels of {p.axes[-1]}"
    return _shape_spec(p.axes, p.batched, p.one_hot) + (f" {p.check}" if p.check else "")


def generate_function(
    kernel: Kernel, fresh_calls: frozenset[str] = frozenset(), shared: Shared | None = None
) -> GeneratedFunction:
    """The source lines of one kernel's function (and of its labels and options forms);
    ``shared``: its first assignments are a function it shares with others (`shared_bodies`)."""
    if kernel.options_form is None:
        function = _generate_with_labels(kernel, fresh_calls, shared)
    else:
        without = _generate_with_labels(replace(kernel, options_form=None), fresh_calls)
        function = _with_options(kernel, without, fresh_calls)
    if kernel.float16_in_float32:
        function = _float16_in_float32(kernel, function)
    if not kernel.overflow or kernel.overflow == SHIFT_OVERFLOW:
        # the shift's overflow is silenced where it happens, in every function that shifts
        # (`ArrayPrinter._subtract_maximum`): nothing else in the call is silenced
        return function
    return replace(
        function,
        decorators=("quiet_overflow",),
        runtime=tuple(sorted({*function.runtime, "quiet_overflow"})),
    )


def _float16_in_float32(kernel: Kernel, function: GeneratedFunction) -> GeneratedFunction:
    """The public function computes float16 arguments in float32 and rounds the result once
    to float16 (``Kernel.float16_in_float32`` says why), as PyTorch computes half precision
    on the CPU; other dtypes call the core as before."""
    if kernel.more or kernel.options_form is not None or kernel.labels_form is not None:
        raise ValueError(f"{kernel.name}: float16_in_float32 is for one result, without forms")
    arrays = [p.name for p in kernel.params if not _is_scalar(p)]
    widened = ", ".join(
        f"xp.astype({p.name}, xp.float32)" if p.name in arrays else p.name for p in kernel.params
    )
    first = arrays[0]  # the checks gave every array one dtype
    lines = (
        f"if is_float16(xp, {first}):",
        f"    return xp.astype(_{kernel.name}(xp, {widened}), {first}.dtype)",
    )
    return replace(
        function,
        checks=(*function.checks, *lines),
        runtime=tuple(sorted({*function.runtime, "is_float16"})),
    )


_OPTION_TYPES = {"weights": "ArrayLike | None", "index": "int | None", "fraction": "float"}


def _option_type(option: Option) -> str:
    return _OPTION_TYPES.get(option.kind, "str")


def _not_default(option: Option) -> str:
    """The test that ``option`` was set: anything but the default's own type takes the checked
    branch, so an array (``label_smoothing=np.array([.1, .2])``) reaches the option's named
    error instead of NumPy's "truth value of an array is ambiguous"."""
    if option.default is None:
        return f"{option.name} is not None"
    kind = type(option.default).__name__
    return f"type({option.name}) is not {kind} or {option.name} != {option.default!r}"


def _with_options(
    kernel: Kernel, function: GeneratedFunction, fresh_calls: frozenset[str] = frozenset()
) -> GeneratedFunction:
    """``function`` with keyword-only options: a first branch, taken only when an option is not
    at its default, checks them and calls the options form's core ``_name_options``."""
    form = kernel.options_form
    options = {o.kind: o for o in form.options}
    rows = replace(
        kernel,
        params=tuple(replace(p, one_hot=False, domain="real") for p in kernel.params) + form.params,
        body=form.body,
        returns=form.returns,
        labels_form=None,
        options_form=None,
    )
    core = _generate_function(rows, fresh_calls, give=False)
    arrays = [p for p in kernel.params if not _is_scalar(p)]
    names = ", ".join(p.name for p in arrays)
    specs = ", ".join(f'{p.name}=({p.name}, "{_spec(p)}")' for p in arrays)
    index = options.get("index")
    not_default = " or ".join(_not_default(o) for o in form.options)
    reduction = options.get("choice")
    targets = next(p.name for p in kernel.params if p.one_hot)
    fractions = {o.name for o in form.options if o.kind == "fraction"}
    branch = [
        f"if {not_default}:",
        f"    xp = namespace({names})",
        f"    {names}, {', '.join(p.name for p in form.params if p.name not in fractions)}, "
        "shares = class_targets(",
        f"        xp, {options['weights'].name}, "
        + (f'option_index("{index.name}", {index.name}), ' if index else "None, ")
        + f"{specs}",
        "    )",
        *[
            f'    {o.name} = option_fraction("{o.name}", {o.name})'
            for o in form.options
            if o.kind == "fraction"
        ],
    ]
    if reduction is not None:
        branch.append(
            f'    {reduction.name} = option_choice("{reduction.name}", {reduction.name}, '
            f"{reduction.choices!r})"
        )
    arguments = ", ".join(p.name for p in rows.params)
    branch.append(
        f"    return reduce_samples(xp, _{kernel.name}_options(xp, {arguments}), shares, "
        + (reduction.name if reduction is not None else repr(form.reduction))
        + f', gradient={form.gradient}, targets="{targets}")'
    )
    signature = ", *, " + ", ".join(
        f"{o.name}: {_option_type(o)} = {o.default!r}" for o in form.options
    )
    doc = function.docstring.split("\n\nReturns:")
    option_doc = "\n".join(f"    {o.name}: {o.doc}" for o in form.options)
    return replace(
        function,
        checks=(*branch, *function.checks),
        docstring=f"{doc[0]}\n{option_doc}\n\nReturns:{doc[1]}",
        options_signature=signature,
        options_lines=core.lines,
        options_core_signature=core.core_signature,
        calls=tuple(dict.fromkeys(function.calls + core.calls)),
        runtime=tuple(
            sorted(
                {*function.runtime, *core.runtime, "class_targets", "reduce_samples"}
                | ({"option_index"} if index else set())
                | ({"option_choice"} if reduction else set())
                | ({"option_fraction"} if "fraction" in options else set())
            )
        ),
    )


def _generate_with_labels(
    kernel: Kernel, fresh_calls: frozenset[str] = frozenset(), shared: Shared | None = None
) -> GeneratedFunction:
    """The source lines of one kernel's function (and of its labels form, if it has one)."""
    give = kernel.name in fresh_calls  # a core no caller gives arrays to keeps its signature
    if kernel.labels_form is None:
        function = _generate_function(kernel, fresh_calls, give, shared)
        return replace(
            function,
            checks=_numpy_seen_before(kernel, function.checks),
            runtime=tuple(sorted({*function.runtime, "FAST_NUMPY", "checked_numpy"})),
        )
    labels, name = _labels_function(kernel)
    one_hot = _generate_function(kernel, fresh_calls, give)
    with_labels = _generate_function(labels, fresh_calls, give=False)
    checks = list(one_hot.checks)
    checks[1:1] = _dispatch(kernel, labels, name)
    return replace(
        one_hot,
        checks=(*_labels_seen_before(kernel, labels, name), *checks),
        calls=tuple(dict.fromkeys(one_hot.calls + with_labels.calls)),
        labels_lines=with_labels.lines,
        runtime=tuple(
            sorted(
                {*one_hot.runtime, *with_labels.runtime}
                | {"FAST_NUMPY", "checked_numpy", "is_class_labels"}
            )
        ),
    )


def takes_fresh(kernel: Kernel) -> bool:
    """Whether the kernel's core can overwrite array arguments its caller gives away."""
    return bool(_generate_function(kernel).fresh_parameter)


def fresh_callees(kernels: dict[str, Kernel]) -> frozenset[str]:
    """The kernels whose cores others call and that take ``fresh=True`` (`takes_fresh`)."""
    forms = [
        f for k in kernels.values() for f in (k, k.labels_form, k.options_form) if f is not None
    ]
    called = {
        name
        for form in forms
        for assign in (*form.body, form.returns, *(r.returns for r in getattr(form, "more", ())))
        for name in _calls_in(assign.expression)
    }
    return frozenset(n for n in called if n in kernels and takes_fresh(kernels[n]))


def _generate_function(
    kernel: Kernel,
    fresh_calls: frozenset[str] = frozenset(),
    give: bool = True,
    shared: Shared | None = None,
) -> GeneratedFunction:
    """The source lines of one kernel's function.

    ``give``: its core may take ``fresh=True`` from a caller that gives its array
    arguments away (temporaries it reads no more), and then update them in place.
    ``shared``: the body's first assignments are another function's, called in their place.
    """
    names = {p.label: p.name for p in kernel.params}
    names.update(PYTHON_NAMES)
    params = ", ".join(p.name for p in kernel.params)
    # A scalar (l2) stays a Python number: it then takes the arrays' precision (float32 stays).
    scalars = [p for p in kernel.params if _is_scalar(p)]
    arrays = [p for p in kernel.params if not _is_scalar(p)]
    array_names = ", ".join(p.name for p in arrays)
    specs = ", ".join(f'{p.name}=({p.name}, "{_spec(p)}")' for p in arrays)
    checks = [
        f"xp = namespace({array_names})",
        f"{array_names}, = prepare(xp, {specs})"
        if len(arrays) == 1
        else f"{array_names} = prepare(xp, {specs})",
    ]
    checks += [f'{p.name} = scalar("{p.name}", {p.name})' for p in scalars]
    checks += _requirement_checks(kernel)
    lines = []

    label_bases = {p.label for p in kernel.params if p.labels}
    label_names = {p.name for p in kernel.params if p.labels}
    returned = (kernel.returns, *(r.returns for r in kernel.more))
    given = {p.name for p in arrays if not p.labels} if give else set()
    expressions = [a.expression for a in (*kernel.body, *returned)]
    deltas = set().union(*(e.atoms(sp.KroneckerDelta) for e in expressions))
    needed_sizes = {
        str(a.upper)
        for d in deltas
        for a in d.args
        if isinstance(a, sp.Idx) and str(a.label) not in label_bases
    }
    axes = {axis for p in kernel.params for axis in p.axes}
    needed_sizes |= set().union(*(_sizes_used_as_numbers(e) for e in expressions)) & axes
    needed_sizes |= {
        str(n)
        for e in expressions
        for node in sp.preorder_traversal(e)
        if hasattr(node, "sizes_needed")
        for n in node.sizes_needed()
    }
    batched = {p.name for p in kernel.params if p.batched}
    if kernel.flatten_batch:
        needed_sizes |= {
            axis for p in kernel.params if p.batched and not p.labels for axis in p.axes
        }
    lines += _size_lines(kernel, needed_sizes)
    if kernel.flatten_batch:
        for p in kernel.params:
            if p.batched:
                lines += _flatten_lines(p)
        first = next(p for p in kernel.params if p.batched)
        lines.append(f"B = {first.name}.shape[0]  # samples in the batch")
        batched = set()
    if deltas or any(e.has(sp.Heaviside) for e in expressions):
        floats = ", ".join(p.name for p in arrays if not p.labels)
        lines.append(f"dtype = xp.result_type({floats})")

    # z_max = max_k z_k: the values each maximum is the largest of (x − max x cannot overflow up)
    maxima = {
        a.target: a.expression.function.base
        for a in kernel.body
        if isinstance(a.expression, Maximum) and isinstance(a.expression.function, sp.Indexed)
    }

    def printed(assign, may_overwrite: set[str]) -> str:
        printer = ArrayPrinter(
            axes=assign.indices,
            names=names,
            batched=batched,
            labels=label_names,
            owned=may_overwrite,
            given=given,
            fresh_calls=fresh_calls,
            maxima=maxima,
        )
        return printer.doprint(assign.expression)

    # the order of the computations: the body, each result computed right after the
    # body's array it reads last (`Kernel.results_after`), the others in the return
    after = kernel.results_after
    if shared is not None:  # the shared prefix's arrays appear at its call
        after = tuple(p if p is None else max(p, shared.count - 1) for p in after)
    early = [(r, p) for r, p in zip(returned, after) if p is not None]
    taken = {_python_name(a.target) for a in kernel.body} | {p.name for p in kernel.params}
    result_name = dict(zip([r for r, _ in early], _result_names([r for r, _ in early], taken)))
    steps: list[tuple[int | None, Assign]] = []  # (body position, or None for a result)
    for number, assign in enumerate(kernel.body):
        steps.append((number, assign))
        steps += [(None, r) for r, p in early if p == number]
    late = [r for r, p in zip(returned, after) if p is None]
    order = [a.expression for _, a in steps] + [r.expression for r in late]
    assigned = [None if n is None else _python_name(a.target) for n, a in steps]
    owned = _owned(kernel.body, order, given, assigned + [None] * len(late))

    calls: list[str] = []
    made: list[str] = []
    for step, ((number, assign), may_overwrite) in enumerate(zip(steps, owned)):
        calls += _calls_in(assign.expression)
        if number is None:  # a result, computed before the return statement
            lines.append(f"{result_name[assign]} = {printed(assign, may_overwrite)}")
            lines += _free_dead(made, order, step)
            continue
        target = _python_name(assign.target)
        made.append(target)
        if shared is None or number >= shared.count:
            lines.append(f"{target} = {printed(assign, may_overwrite)}")
        elif number == shared.count - 1:
            lines.append(shared.call(kernel))
        # what is computed from batched arrays (or returned by a generated function) is batched
        if not kernel.flatten_batch and (
            _names_in(assign.expression) & batched or _calls_in(assign.expression)
        ):
            batched.add(target)
        if kernel.more:
            lines += _free_dead(made, order, step, target)
    values = []  # several results: one tuple, from the intermediates computed once above
    printed_late = iter(
        printed(r, may_overwrite) for r, may_overwrite in zip(late, owned[len(steps) :])
    )
    for r in returned:
        values.append(result_name[r] if r in result_name else next(printed_late))
    calls += [c for r in late for c in _calls_in(r.expression)]
    lines.append(f"return {values[0]}" if len(values) == 1 else f"return ({', '.join(values)})")
    lines = _without_unused_sizes(lines)
    runtime = tuple(
        h
        for h in (
            "in_place",
            "subtract_maximum",
            "vecdot",
            "subtract_at_labels",
            "take_at_labels",
            "sum_of_others",
            "sum_of_weighted_differences",
            "share_of_weighted_differences",
            "off_diagonal",
            "with_diagonal",
            "outer_product",
            "symmetric_kronecker_sum",
            "solve",
            "is_traced",
            "vector_scale",
            "normal_floor",
            "quiet_divide",
            "heaviside",
            *SPECIAL_FUNCTIONS,
        )
        if any(f"{h}(" in l for l in (*lines, *checks))
    )
    return GeneratedFunction(
        name=kernel.name,
        arguments=params,
        signature=", ".join(
            f"{p.name}: {'float' if _is_scalar(p) else 'ArrayLike'}" for p in kernel.params
        ),
        core_signature=", ".join(
            f"{p.name}: {'float' if _is_scalar(p) else 'Array'}" for p in kernel.params
        ),
        docstring=_docstring(kernel),
        checks=tuple(checks),
        lines=tuple(lines),
        calls=tuple(dict.fromkeys(calls)),
        runtime=runtime,
        returns=_annotation(len(values)),
        fresh_parameter=", fresh: bool = False" if any("=fresh" in l for l in lines) else "",
    )


def _free_dead(made: list[str], order: list, number: int, target: str = "") -> list[str]:
    """``del z2, s``: the body's temporaries that step ``number`` of ``order`` read last.

    ``made``: the body targets computed up to that step, in order; ``target``: the
    step's own, if it is the body's (dead at once if nothing reads it). For a kernel that
    returns several results (a whole training step, say): its intermediates are as
    large as its arguments, and holding every one of them to the end makes each call
    take fresh memory from the system (page faults, measured at a quarter of a
    two-layer step's time on a loaded host).
    """
    later = set().union(set(), *(_names_in(e) for e in order[number + 1 :]))
    read = _names_in(order[number])
    dead = [t for t in dict.fromkeys(made) if t not in later and (t in read or t == target)]
    return [f"del {', '.join(dead)}"] if dead else []


def _annotation(count: int) -> str:
    return "Array" if count == 1 else f"tuple[{', '.join(['Array'] * count)}]"


@dataclass(frozen=True)
class GeneratedDispatch:
    """A public function that calls the public kernels of the choice its string option names."""

    name: str
    signature: str  # "x: ArrayLike, ..., activation: str = \"relu\""
    returns: str  # the return annotation
    docstring: str
    lines: tuple[str, ...]


def generate_dispatch(dispatch: Dispatch, kernels: dict[str, Kernel]) -> GeneratedDispatch:
    """``if activation == "relu": return (k1(...), k2(...))``, one branch per choice, then ValueError."""
    choices = dict(dispatch.choices)
    for choice, names in choices.items():
        for name in names:
            if name not in kernels:
                raise KeyError(
                    f"dispatch {dispatch.name}: {choice!r} calls {name}, not a kernel of this module"
                )
    first = kernels[choices[dispatch.default][0]]
    params = [p.name for p in first.params]
    for name in (n for names in choices.values() for n in names):
        if [p.name for p in kernels[name].params] != params:
            raise ValueError(
                f"dispatch {dispatch.name}: {name} does not take ({', '.join(params)})"
            )
    arguments = ", ".join(params)
    option = dispatch.option
    lines = []
    for choice, names in choices.items():
        calls = [f"{name}({arguments})" for name in names]
        value = calls[0] if len(calls) == 1 else "(" + ", ".join(calls) + ")"
        lines += [f'if {option} == "{choice}":', f"    return {value}"]
    expected = ", ".join(repr(c) for c in sorted(choices))
    lines.append(f'raise ValueError(f"{option}: expected one of {expected}, got {{{option}!r}}")')
    count = len(choices[dispatch.default])
    if count == 1:  # one kernel, which may return several results
        count += len(kernels[choices[dispatch.default][0]].more)
    doc = [dispatch.summary, ""]
    doc.append("Calls, for each value of `" + option + "`:")
    doc += [f"    {choice!r}: {', '.join(names)}" for choice, names in choices.items()]
    doc += ["", "Args:"]
    doc += [
        f"    {p.name}: {p.doc}, shape {_shape_spec(p.axes, p.batched)}"
        + (", or integer class labels 0..C-1 of shape (...)" if p.one_hot else "")
        + "."
        for p in first.params
    ]
    doc += [
        f"    {option}: one of {expected} (default {dispatch.default!r}).",
        "",
        "Returns:",
        f"    {dispatch.returns_doc}.",
        "",
        "Raises:",
        f"    ValueError: for any other `{option}`, and as the kernels do for their arguments.",
    ]
    return GeneratedDispatch(
        name=dispatch.name,
        signature=", ".join(f"{p}: ArrayLike" for p in params)
        + f', {option}: str = "{dispatch.default}"',
        returns=_annotation(count),
        docstring="\n".join(doc),
        lines=tuple(lines),
    )


@dataclass(frozen=True)
class Shared:
    """The first ``count`` assignments of several kernels' bodies, the same in each: written
    once, in the function ``name``, which returns the values the kernels read afterwards."""

    name: str
    count: int
    params: tuple[str, ...]  # what it reads, in the kernels' order
    returned: tuple[str, ...]

    def call(self, kernel: Kernel) -> str:
        """``_, xhat = _layer_norm_shared(xp, x, eps)``: the values ``kernel`` reads, named."""
        rest = [a.expression for a in kernel.body[self.count :]]
        rest += [r.expression for r in (kernel.returns, *(m.returns for m in kernel.more))]
        read = set().union(*(_names_in(e) for e in rest))
        names = [n if n in read else "_" for n in self.returned]
        unpacked = ", ".join(names) + "," * (len(names) == 1)
        return f"{unpacked} = _{self.name}(xp, {', '.join(self.params)})"


SHARED_FROM = 3
"""The fewest leading assignments that several kernels share before they are written once."""


def shared_bodies(kernels: tuple[Kernel, ...]) -> dict[str, Shared]:
    """For each kernel whose body begins with at least `SHARED_FROM` assignments that other
    kernels of its module begin with too (layer_norm, its Jacobian and its VJP all compute μ,
    σ and x̂ first), those assignments as one function they all call. Kernels with labels or
    options forms, or several results, keep their bodies."""
    plain = [k for k in kernels if not (k.labels_form or k.options_form or k.more)]
    groups: dict[Assign, list[Kernel]] = {}
    for k in plain:
        if k.body:
            groups.setdefault(k.body[0], []).append(k)
    found = {}
    for group in (g for g in groups.values() if len(g) > 1):
        count = 0
        while all(len(k.body) > count for k in group) and (
            len({k.body[count] for k in group}) == 1
        ):
            count += 1
        if count < SHARED_FROM:
            continue
        first = group[0]
        prefix = first.body[:count]
        read = set().union(*(_names_in(a.expression) for a in prefix))
        params = tuple(p.name for p in first.params if p.name in read)
        if any(tuple(p.name for p in k.params if p.name in read) != params for k in group):
            continue
        later = set()
        for k in group:
            later |= set().union(*(_names_in(a.expression) for a in k.body[count:]))
            later |= set().union(
                *(_names_in(r.expression) for r in (k.returns, *(m.returns for m in k.more)))
            )
        targets = dict.fromkeys(_python_name(a.target) for a in prefix)
        returned = tuple(t for t in targets if t in later)
        shared = Shared(f"{first.name}_shared", count, params, returned)
        found.update({k.name: shared for k in group})
    return found


def _shared_function(shared: Shared, users: list[Kernel]) -> GeneratedFunction:
    """The function that computes ``shared``'s assignments once and returns what its users read."""
    first = users[0]
    prefix = first.body[: shared.count]
    targets = {_python_name(a.target): a for a in prefix}
    results = [targets[n] for n in shared.returned]

    def named(a: Assign) -> Assign:
        return Assign(a.target, a.indices, a.target[a.indices] if a.indices else a.target)

    kernel = Kernel(
        name=shared.name,
        summary="",
        params=tuple(p for p in first.params if p.name in shared.params),
        body=prefix,
        returns=named(results[0]),
        returns_doc="",
        more=tuple(Result(named(a)) for a in results[1:]),
    )
    function = _generate_function(kernel, give=False)
    named = [f"`{k.name}`" for k in users]
    users_named = ", ".join(named[:-1]) + f" and {named[-1]}"
    return replace(
        function,
        lines=tuple(line for line in function.lines if not line.startswith("del ")),
        docstring=f"What {users_named} all compute first, written once.",
    )


def generate_module(
    derivation: Derivation, owner_of: dict[str, str], fresh_calls: frozenset[str] = frozenset()
) -> dict:
    """The template context of one generated module.

    ``owner_of`` maps every kernel name to the derivation (module) defining it,
    so calls into other modules become imports; ``fresh_calls`` names the cores
    that take ``fresh=True`` (`takes_fresh`), to which a caller gives temporaries.
    """
    shared = shared_bodies(derivation.kernels)
    functions = [generate_function(k, fresh_calls, shared.get(k.name)) for k in derivation.kernels]
    written = [
        _shared_function(s, [k for k in derivation.kernels if shared.get(k.name) == s])
        for s in dict.fromkeys(shared.values())
    ]
    local = {f.name for f in functions}
    imports: dict[str, list[str]] = {}
    for f in functions:
        for call in f.calls:
            if call in local:
                continue
            if call not in owner_of:
                raise KeyError(
                    f"{derivation.name}.{f.name} calls {call}, which no derivation defines"
                )
            imports.setdefault(owner_of[call], []).append(f"_{call}")
    kernels = {k.name: k for k in derivation.kernels}
    return {
        "derivation": derivation,
        "functions": functions,
        "shared": written,
        "runtime": "".join(
            f", {h}" for h in sorted({h for f in (*functions, *written) for h in f.runtime})
        ),
        "dispatches": [generate_dispatch(d, kernels) for d in derivation.dispatches],
        "imports": [
            f"from derive.generated.{module} import {', '.join(sorted(set(names)))}"
            for module, names in sorted(imports.items())
        ],
    }
