"""Index-form expressions printed as broadcasting array-API code.

An index-form result such as ``S[t]*(KroneckerDelta(t, c) - S[c])*x[j]`` has
free indices; the generated function returns an array with one axis per free
index, after any batch axes. The printer is told those axes (``(t, j, c)``)
and places every factor on them by indexing with ``:`` and ``None``::

    s[..., :, None, None] * (xp.eye(C, dtype=dtype)[:, None, :]
                             - s[..., None, None, :]) * x[..., None, :, None]

A sum over an index is printed as a reduction over one more trailing axis,
or as ``xp.matmul`` when it contracts two arrays (Wᵀx, Xᵀ(S - Y)). Only
array-API functions are printed (``xp.exp``, ``xp.sum``, ``xp.matmul``, ...),
so the code runs on any library that ``array_namespace`` knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.numpy import NumPyPrinter

from derive._runtime import SPECIAL_FUNCTIONS
from derive.sympy_tools import (
    DenseSolve,
    Hypot,
    MatmulSum,
    Maximum,
    NormalFloor,
    QuietQuotient,
    SymmetricMatmulSum,
    VectorScale,
)


class UnsupportedExpression(NotImplementedError):
    """An expression the array printer cannot place on its axes."""


# SymPy function -> array-API function: the only elementwise functions printed.
ARRAY_API_FUNCTIONS = {
    "exp": "exp",
    "log": "log",
    "log1p": "log1p",  # sympy.codegen.cfunctions.log1p: log(1 + x) without rounding 1 + x
    "sqrt": "sqrt",
    "Abs": "abs",
    "tanh": "tanh",
    "sign": "sign",
}


class ArrayPrinter(NumPyPrinter):
    """Prints one expression for a known list of result axes.

    ``names`` maps model bases (``S``) to Python names (``s``); ``batched``
    holds the Python names of arrays with leading batch axes; arrays not in it
    (``W``) have exactly one axis per index.
    """

    _module = "xp"
    printmethod = "_arraycode"

    def __init__(
        self,
        axes: Iterable[sp.Idx] = (),
        names: Mapping[str, str] | None = None,
        batched: Iterable[str] = (),
        dtype: str = "dtype",
        labels: Iterable[str] = (),
        owned: Iterable[str] = (),
        given: Iterable[str] = (),
        fresh_calls: Iterable[str] = (),
        maxima: Mapping[sp.Symbol, sp.IndexedBase] | None = None,
    ):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": True})
        self.known_functions = {k: f"{self._module}.{v}" for k, v in ARRAY_API_FUNCTIONS.items()}
        self.axes = list(axes)
        self.names = dict(names or {})
        self.batched = set(batched)
        self.dtype = dtype
        self.labels = set(labels)  # Python names of integer class labels (one per sample)
        self.owned = set(owned)  # temporaries this expression may overwrite (read nowhere else)
        # parameters the caller may give away: owned only when the core's `fresh` is true
        self.given = set(given)
        self.fresh_calls = set(fresh_calls)  # generated cores that take `fresh=True`
        self.maxima = dict(maxima or {})  # z_max -> z, for z_max = max_k z_k

    def _print(self, expr, **kwargs) -> str:
        if expr is getattr(self, "_whole", None):
            split = self._diagonal_split(expr)
            if split:
                return split
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Rational:
            return self._literal(expr)
        if isinstance(expr, sp.Mul):
            number, rest = expr.as_independent(*expr.free_symbols, as_Add=False)
            if number.is_number and not number.is_Rational and rest != 1:
                precedence = sp.printing.precedence.PRECEDENCE["Mul"]
                return f"{self._literal(number)}*{self.parenthesize(rest, precedence)}"
        if isinstance(expr, sp.Function) and type(expr).__name__ in SPECIAL_FUNCTIONS:
            (argument,) = expr.args  # derive._runtime's, which dispatches on the library
            return f"{type(expr).__name__}({self._module}, {self._print(argument)})"
        if isinstance(expr, sp.Function) and not isinstance(expr, AppliedUndef):
            name = type(expr).__name__
            if name not in ARRAY_API_FUNCTIONS and f"_print_{name}" not in ArrayPrinter.__dict__:
                raise UnsupportedExpression(
                    f"{name}: not in the table of array-API functions "
                    f"({', '.join(ARRAY_API_FUNCTIONS)}) nor derive._runtime.SPECIAL_FUNCTIONS "
                    f"({', '.join(SPECIAL_FUNCTIONS)})"
                )
            if name in ARRAY_API_FUNCTIONS and len(expr.args) == 1:
                code = self._in_place(ARRAY_API_FUNCTIONS[name], expr, *expr.args)
                if code:
                    return code
        return super()._print(expr, **kwargs)

    def _literal(self, number: sp.Expr) -> str:
        """An irrational constant (√2, π, √2/√π) as a Python float: a weak scalar, so the result
        keeps the arrays' dtype (``xp.sqrt(2)`` fails on torch; ``numpy.pi`` is not array-API)."""
        value = float(number.evalf(20))
        if not isinstance(number, (sp.Add, sp.Mul, sp.Pow, sp.NumberSymbol, sp.Function)):
            raise UnsupportedExpression(f"{number}: a number the printer cannot write as a float")
        return f"({value!r})" if value < 0 else repr(value)

    def doprint(self, expr, assign_to=None) -> str:
        self._whole = expr  # the expression being printed: where an owned temporary is read
        return super().doprint(expr, assign_to)

    # -- a diagonal written over the rest ------------------------------------------

    def _diagonal_split(self, expr: sp.Basic) -> str | None:
        """δ_ij D + (1 − δ_ij) O, for a δ over two result axes, as ``with_diagonal(xp, O, D, ...)``.

        O (δ_ij = 0) is printed over every (i, j), then D (δ_ij = 1, j read
        as i, on every axis but j) is written over its diagonal
        (derive._runtime): O over C × C and D over C, where the expression as
        written takes three passes over C × C (δ·D, (1 − δ)·O, their sum).
        Only where O spans both axes (else the expression as written is as
        cheap: δ_ij x_j) and both parts print; each part is split again at its
        next such δ. O is the array written into: owned unless it is a
        temporary or parameter read elsewhere (arithmetic, a call: a new array).
        """
        if not isinstance(expr, (sp.Add, sp.Mul)):
            return None
        for delta in sorted(expr.atoms(sp.KroneckerDelta), key=sp.default_sort_key):
            if self._label_delta(delta) or not all(a in self.axes for a in delta.args):
                continue
            first, second = sorted(delta.args, key=self.axes.index)
            if first.upper != second.upper:
                continue
            # factors over other axes only (x_j in ∂S_t/∂W_jc) multiply O and D alike: they
            # multiply the result instead, so the split stays on the delta's axes (C × 1 × C)
            factors = sp.Mul.make_args(expr)
            apart = [
                f for f in factors if self._axes_of(f) and not self._axes_of(f) & {first, second}
            ]
            if apart:
                split = self._diagonal_split(sp.Mul(*[f for f in factors if f not in apart]))
                if split is None:
                    continue
                precedence = sp.printing.precedence.PRECEDENCE["Mul"]
                return "*".join([split, *(self.parenthesize(f, precedence) for f in apart)])
            same = [d for d in expr.atoms(sp.KroneckerDelta) if set(d.args) == {first, second}]
            if self._delta_added(expr, same):
                continue
            off = expr.xreplace(dict.fromkeys(same, sp.S.Zero))
            on = expr.xreplace(dict.fromkeys(same, sp.S.One)).xreplace({second: first})
            if not {first, second} <= off.free_symbols:
                continue
            outer = getattr(self, "_whole", expr)
            # what this statement reads now: both parts (a temporary both read is not owned)
            self._whole = sp.Tuple(*([] if outer is expr else [outer]), off, on)
            try:
                owned = self._fresh(off, off) if isinstance(off, (sp.Indexed, sp.Symbol)) else ""
                full = self._diagonal_split(off) or self._print(off)
                axes, self.axes = self.axes, [a for a in self.axes if a != second]
                try:  # D on every result axis but j
                    diagonal = self._diagonal_split(on) or self._print(on)
                finally:
                    self.axes = axes
            except UnsupportedExpression:  # a part the printer cannot place (P_jjcd)
                continue
            finally:
                self._whole = outer
            positions = tuple(self.axes.index(a) - len(self.axes) for a in (first, second))
            flag = {"": "", ", owned=fresh": ", owned=fresh"}.get(owned, ", owned=False")
            return (
                f"with_diagonal({self._module}, {full}, {diagonal}, "
                f"{self._print(first.upper)}, {positions}{flag})"
            )
        return None

    @staticmethod
    def _delta_added(expr: sp.Basic, deltas: list) -> bool:
        """Whether a δ is a term of a sum (δ_ij − 1/K − ...) other than 1 − δ: printed as the
        identity, it costs one pass over C × C, as little as writing D would, and D then
        takes its own operations (measured: the layer norm's Jacobian, K = 8, 25 → 32 µs)."""
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.Add) and any(n in deltas for n in (node - 1, 1 - node)):
                continue  # 1 − δ, the off-diagonal ones: a factor
            if isinstance(node, sp.Add) and any(
                (term.as_coeff_Mul()[1] in deltas) for term in node.args
            ):
                return True
        return False

    def _axes_of(self, expr: sp.Basic) -> set:
        """The result axes an expression varies along."""
        return {a for a in expr.free_symbols if a in self.axes}

    # -- updates in place ---------------------------------------------------------

    def _in_place(
        self, function: str, node: sp.Basic, first: sp.Basic, *others: sp.Basic
    ) -> str | None:
        """``in_place(xp.f, a, ...)`` when ``node`` may write its result into its first operand.

        That is when the operand is a temporary nobody else holds: the result of
        arithmetic inside this expression, or a temporary the function owns
        (``self.owned``) that the expression reads only inside ``node`` (so
        every read happens before the write). The runtime helper falls back to
        ``xp.f(a, ...)`` where the library, shape or dtype does not allow it.
        """
        condition = self._fresh(first, node)
        if condition is None or not self._covers(first, others):
            return None
        arguments = ", ".join(self._print(a) for a in (first, *others))
        return f"in_place({self._module}.{function}, {arguments}{condition})"

    def _fresh(self, operand: sp.Basic, node: sp.Basic, calls: bool = False) -> str | None:
        """ "" if ``node`` may overwrite ``operand``, ", owned=fresh" if only when the caller
        gave the parameter away, else None. ``calls``: another core's result counts as fresh
        (the cores never return an argument or a view of one: tests/test_in_place.py)."""
        if isinstance(operand, (sp.Add, sp.Mul, sp.Pow)):
            return "" if operand.free_symbols else None  # an array, or a number passed on
        if self._is_product(operand):
            return ""
        if isinstance(operand, sp.Function) and type(operand).__name__ in ARRAY_API_FUNCTIONS:
            return ""
        if calls and isinstance(operand, AppliedUndef):
            return ""
        if isinstance(operand, (sp.Indexed, sp.IndexedBase, sp.Symbol)) and not isinstance(
            operand, sp.Idx
        ):
            label = operand.base.label if isinstance(operand, sp.Indexed) else operand
            name = self._name(label.label if isinstance(label, sp.IndexedBase) else label)
            whole = getattr(self, "_whole", node)
            if name not in self.owned or self._reads(name, whole) != self._reads(name, node):
                return None
            return ", owned=fresh" if name in self.given else ""
        return None

    def _reads(self, name: str, expr: sp.Basic) -> int:
        return sum(
            1 for n in sp.preorder_traversal(expr) if type(n) is sp.Symbol and self._name(n) == name
        )

    def _covers(self, first: sp.Basic, others: tuple[sp.Basic, ...]) -> bool:
        """Whether the result has the first operand's axes (batch included), so it fits in it."""

        def free(e: sp.Basic) -> set:
            return {s for s in e.free_symbols if isinstance(s, sp.Idx)}

        def batched(e: sp.Basic) -> bool:
            return bool({self._name(s) for s in e.free_symbols} & self.batched)

        return all(free(o) <= free(first) and (batched(first) or not batched(o)) for o in others)

    # -- names and placement ------------------------------------------------

    def _name(self, label: sp.Basic) -> str:
        name = str(label.label if isinstance(label, sp.Idx) else label)
        return self.names.get(name, name)

    def _place(self, name: str, indices: tuple[sp.Idx, ...], batched: bool) -> str:
        """``name`` indexed so that its axes (``indices``) sit on ``self.axes``."""
        for index in indices:
            if index not in self.axes:
                raise UnsupportedExpression(
                    f"{name}[{', '.join(map(str, indices))}]: index {index} is not one "
                    f"of the result axes ({', '.join(map(str, self.axes)) or 'none'})"
                )
        positions = [self.axes.index(i) for i in indices]
        if not batched and len(indices) > 1 and len(set(positions)) == len(positions):
            order = sorted(range(len(indices)), key=positions.__getitem__)
            if order != list(range(len(indices))):  # H[j, k, c, d] on axes (j, c, k, d)
                permuted = f"{self._module}.permute_dims({name}, {tuple(order)})"
                return self._place(permuted, tuple(indices[o] for o in order), batched)
        if positions != sorted(positions) or len(set(positions)) != len(positions):
            raise UnsupportedExpression(
                f"{name}[{', '.join(map(str, indices))}]: its indices are not in the "
                f"order of the result axes ({', '.join(map(str, self.axes))})"
            )
        selection = [":" if axis in indices else "None" for axis in self.axes]
        if not batched:
            while selection and selection[0] == "None":
                selection.pop(0)  # broadcasting adds leading axes by itself
        if all(s == ":" for s in selection) and len(selection) == len(indices):
            return name
        return f"{name}[{', '.join((['...'] if batched else []) + selection)}]"

    # -- leaves ------------------------------------------------------------------

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        if len(expr.indices) == 1 and self._is_label(expr.indices[0]):
            return self._take_at_labels(expr)
        name = self._name(expr.base.label)
        return self._place(name, expr.indices, name in self.batched)

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        return self._name(expr.label)

    def _print_Idx(self, expr: sp.Idx) -> str:
        if self._is_label(expr):  # ℓ, one class label per sample
            name = self._name(expr)
            return self._place(name, (), batched=name in self.batched)
        raise UnsupportedExpression(f"a bare index {expr} has no array value")

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        name = self._name(expr)
        if name in self.batched:  # one number per sample, shape (...)
            return self._place(name, (), batched=True)
        return name

    # -- integer class labels -------------------------------------------------------

    def _is_label(self, expr: sp.Basic) -> bool:
        """ℓ (one label per sample) or ℓ_b (a flattened batch's labels), of a labels parameter."""
        if isinstance(expr, sp.Indexed):
            return self._name(expr.base.label) in self.labels
        return isinstance(expr, (sp.Symbol, sp.Idx)) and self._name(expr) in self.labels

    def _label_delta(self, expr: sp.Basic) -> tuple[sp.Idx, sp.Basic] | None:
        """(i, ℓ) if ``expr`` is δ_iℓ, a class index against a label."""
        if not isinstance(expr, sp.KroneckerDelta):
            return None
        labels = [a for a in expr.args if self._is_label(a)]
        if len(labels) != 1:
            return None
        (index,) = [a for a in expr.args if a is not labels[0]]
        return (index, labels[0]) if isinstance(index, sp.Idx) else None

    def _print_label_delta(self, index: sp.Idx, label: sp.Basic) -> str:
        """δ_iℓ as ``ℓ[..., None] == arange(C)`` in the dtype: one comparison, no item assignment."""
        if index not in self.axes:
            raise UnsupportedExpression(f"δ({index}, {label}): {index} is not a result axis")
        outer = self.axes
        self.axes = [a for a in outer if a != index]
        try:
            code = self._print(label)
        finally:
            self.axes = outer
        if outer[-1] != index:
            raise UnsupportedExpression(
                f"δ({index}, {label}): {index} must be the last result axis"
            )
        classes = self._place(
            f"{self._module}.arange({self._print(index.upper)})", (index,), batched=False
        )
        return f"{self._module}.astype({code}[..., None] == {classes}, {self.dtype})"

    def _subtract_at_labels(self, expr: sp.Add) -> str | None:
        """A_i − δ_iℓ, i the last axis, as ``subtract_at_labels(xp, A, ℓ)``: in place when A is owned."""
        terms = sp.Add.make_args(expr)
        if len(terms) != 2:
            return None
        deltas = [t for t in terms if self._label_delta(-t)]
        if len(deltas) != 1:
            return None
        (array,) = [t for t in terms if t is not deltas[0]]
        index, label = self._label_delta(-deltas[0])
        if (
            not isinstance(array, sp.Indexed)
            or list(array.indices) != self.axes
            or self.axes[-1] != index
        ):
            return None
        name = self._name(array.base.label)
        if isinstance(label, sp.Indexed) and list(label.indices) != self.axes[:-1]:
            return None
        label_name = self._name(label.base.label if isinstance(label, sp.Indexed) else label)
        owned = ""
        if name in self.owned:
            owned = ", owned=fresh" if name in self.given else ", owned=True"
        return f"subtract_at_labels({self._module}, {name}, {label_name}{owned})"

    def _take_at_labels(self, expr: sp.Indexed) -> str:
        """A_ℓ, each sample's entry at its label, as ``take_at_labels(xp, A, ℓ)``: one number per sample."""
        (label,) = expr.indices
        name = self._name(expr.base.label)
        if self.axes or name not in self.batched:
            raise UnsupportedExpression(
                f"{expr}: an entry at the label, only as one number per sample"
            )
        return f"take_at_labels({self._module}, {name}, {self._name(label)})"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        at_label = self._label_delta(expr)
        if at_label:
            return self._print_label_delta(*at_label)
        first, second = (
            sorted(expr.args, key=self.axes.index)
            if all(a in self.axes for a in expr.args)
            else expr.args
        )
        if first.upper != second.upper:
            raise UnsupportedExpression(f"{expr}: its indices range over different sizes")
        eye = f"{self._module}.eye({self._print(first.upper)}, dtype={self.dtype})"
        return self._place(eye, (first, second), batched=False)

    def _print_Add(self, expr: sp.Add, order=None) -> str:
        """Positive terms first: ``z - z_max``, not ``-z_max + z`` (one operation less)."""
        at_labels = self._subtract_at_labels(expr)
        if at_labels:
            return at_labels
        off_diagonal = self._off_diagonal(expr)
        if off_diagonal:
            return off_diagonal
        below_maximum = self._subtract_maximum(expr)
        if below_maximum:
            return below_maximum
        in_place = self._add_in_place(expr)
        if in_place:
            return in_place
        terms = sorted(sp.Add.make_args(expr), key=lambda t: t.could_extract_minus_sign())
        precedence = sp.printing.precedence.precedence(expr)
        text = ""
        for term in terms:
            if term.could_extract_minus_sign():
                text += (" - " if text else "-") + self.parenthesize(-term, precedence)
            else:
                text += (" + " if text else "") + self.parenthesize(term, precedence)
        return text

    def parenthesize(self, item, level, strict=False) -> str:
        """As SymPy's, but 1 − δ_ij, printed as one call (`_off_diagonal`), needs no brackets."""
        if isinstance(item, sp.Add) and self._off_diagonal(item):
            return self._print(item)
        return super().parenthesize(item, level, strict)

    def _off_diagonal(self, expr: sp.Add) -> str | None:
        """1 − δ_ij over two result axes as one constant, ``off_diagonal(xp, C, dtype)``: the
        ones off the diagonal, made once per size in NumPy rather than ``1 - eye`` per call."""
        deltas = [-t for t in expr.args if isinstance(-t, sp.KroneckerDelta)]
        if len(expr.args) != 2 or sp.S.One not in expr.args or len(deltas) != 1:
            return None
        (delta,) = deltas
        if self._label_delta(delta) or not all(a in self.axes for a in delta.args):
            return None
        first, second = sorted(delta.args, key=self.axes.index)
        if first.upper != second.upper:
            return None
        size = self._print(first.upper)
        ones = f"off_diagonal({self._module}, {size}, dtype={self.dtype})"
        return self._place(ones, (first, second), batched=False)

    def _subtract_maximum(self, expr: sp.Add) -> str | None:
        """x_i − max_k x_k (``self.maxima``) as ``subtract_maximum(xp, x, x_max)``
        (derive._runtime): a difference that is never above 0, so its one overflow, below the
        dtype's range, is −∞, the right value; NumPy does not warn for it."""
        terms = sorted(sp.Add.make_args(expr), key=lambda t: t.could_extract_minus_sign())
        if len(terms) != 2 or not terms[1].could_extract_minus_sign():
            return None
        values, maximum = terms[0], -terms[1]
        # a maximum per sample (z_max_b, an IndexedBase's entry) or of one vector (a symbol)
        key = maximum.base if isinstance(maximum, sp.Indexed) else maximum
        if not isinstance(values, sp.Indexed) or self.maxima.get(key) != values.base:
            return None
        condition = self._fresh(values, expr) if self._covers(values, (maximum,)) else None
        owned = ", owned=False" if condition is None else condition
        return (
            f"subtract_maximum({self._module}, {self._print(values)}, "
            f"{self._print(maximum)}{owned})"
        )

    def _add_in_place(self, expr: sp.Add) -> str | None:
        """``a + b`` or ``a - b`` written into a, when a (the first, positive term) is a temporary
        the function owns: arithmetic stays as written, for the reader."""
        terms = sorted(sp.Add.make_args(expr), key=lambda t: t.could_extract_minus_sign())
        first = terms[0]
        if len(terms) > 2:  # a − b − c: (a − b) is a temporary made here, c goes into it
            rest, last = sp.Add(*terms[:-1], evaluate=False), terms[-1]
            if last.could_extract_minus_sign():
                return self._in_place("subtract", expr, rest, -last)
            return self._in_place("add", expr, rest, last)
        if len(terms) == 2 and not terms[1].could_extract_minus_sign():
            products = [t for t in terms if self._is_product(t)]
            if products:  # Σ_d x_d W_dk + b_k: the bias goes into the product's new array
                other = terms[1] if terms[0] is products[0] else terms[0]
                return self._in_place("add", expr, products[0], other)
        if len(terms) != 2 or not isinstance(first, (sp.Indexed, sp.Symbol)):
            return None
        if terms[1].could_extract_minus_sign():
            return self._in_place("subtract", expr, first, -terms[1])
        return self._in_place("add", expr, first, terms[1])

    def _is_product(self, expr: sp.Basic) -> bool:
        """Whether ``expr`` prints as ``xp.matmul``: a new array, the result's shape, that an
        addition may write into (x + y = y + x exactly, so the order changes no number)."""
        return isinstance(expr, sp.Sum) and self._contraction(expr) is not None

    def _print_Mul(self, expr: sp.Mul) -> str:
        return (
            self._scaled_matmul_sum(expr)
            or self._share_of_weighted_differences(expr)
            or self._negate_in_place(expr)
            or self._divide_in_place(expr)
            or self._multiply_in_place(expr)
            or self._product_in_place(expr)
            or self._outer_product(expr)
            or super()._print_Mul(expr)
        )

    def _product_in_place(self, expr: sp.Mul) -> str | None:
        """``a * b / n`` (three factors or more) written into a, when a is a temporary the
        function owns and reads no more (the HVP's S ⊙ differences / B): each other factor
        multiplied into it, then each divisor divided, left to right as the plain product
        would (a product of two numbers is the same either way round)."""
        factors = sp.Mul.make_args(expr)
        if len(factors) < 3 or any(f.is_number for f in factors):
            return None
        divisors = [f for f in factors if isinstance(f, sp.Pow) and f.exp == -1]
        multipliers = [f for f in factors if f not in divisors]
        if any(isinstance(f, sp.Pow) and f.exp.is_negative for f in multipliers):
            return None
        for first in multipliers:
            if not isinstance(first, (sp.Indexed, sp.Symbol)):
                continue
            others = [f for f in multipliers if f is not first]
            condition = self._fresh(first, expr)
            if condition is None or not self._covers(first, (*others, *divisors)):
                continue
            code = self._print(first)
            for other in others:
                code = f"in_place({self._module}.multiply, {code}, {self._print(other)}{condition})"
            for divisor in divisors:
                divided = self._print(divisor.base)
                code = f"in_place({self._module}.divide, {code}, {divided}{condition})"
            return code
        return None

    def _outer_product(self, expr: sp.Mul) -> str | None:
        """±a_i b_j on exactly the result axes (i, j), as ``outer_product(xp, ±a, b)``
        (derive._runtime): the products as written, in one call that NumPy takes faster for
        one vector each (the softmax Jacobian's −S_i S_j)."""
        coefficient, rest = expr.as_coeff_Mul()
        factors = sp.Mul.make_args(rest)
        if coefficient not in (1, -1) or len(factors) != 2 or len(self.axes) != 2:
            return None
        if not all(isinstance(f, sp.Indexed) and len(f.indices) == 1 for f in factors):
            return None
        by_axis = {f.indices[0]: f for f in factors}
        if set(by_axis) != set(self.axes) or any(self._is_label(i) for i in by_axis):
            return None
        axes, printed = self.axes, []
        try:
            for axis in axes:  # each vector on its own axis alone: its name, or its batch too
                self.axes = [axis]
                printed.append(self._print(by_axis[axis]))
        finally:
            self.axes = axes
        sign = "-" if coefficient == -1 else ""
        return f"outer_product({self._module}, {sign}{printed[0]}, {printed[1]})"

    def _negate_in_place(self, expr: sp.Mul) -> str | None:
        """−a written into a, when a is a temporary the function owns and reads no more (the
        off-diagonal blocks of the Newton system, −Σ_b ...)."""
        factors = sp.Mul.make_args(expr)
        if len(factors) != 2 or factors[0] != -1 or not isinstance(factors[1], sp.Indexed):
            return None
        if any(self._is_label(i) for i in factors[1].indices):  # A_ℓ: a new array, not A
            return None
        return self._in_place("negative", expr, factors[1])

    def _multiply_in_place(self, expr: sp.Mul) -> str | None:
        """``a * c`` written into a, when a is a temporary the function owns and reads no more
        (x̂ scaled by a mean per vector in the VJP), or a difference made here times one number
        (per vector: the VJP's 1/σ); the same product either way."""
        factors = sp.Mul.make_args(expr)
        if len(factors) != 2 or any(isinstance(f, sp.Pow) and f.exp.is_negative for f in factors):
            return None
        if any(f.is_number for f in factors):
            return None
        for first, other in (factors, factors[::-1]):
            if isinstance(first, (sp.Indexed, sp.Symbol)):
                code = self._in_place("multiply", expr, first, other)
                if code:
                    return code
        for first, other in (factors, factors[::-1]):  # a difference times a computed number
            if (
                isinstance(first, sp.Add)
                and isinstance(other, sp.Symbol)
                and not self._param(other)
            ):
                code = self._in_place("multiply", expr, first, other)
                if code:
                    return code
        return None

    def _param(self, symbol: sp.Symbol) -> bool:
        return symbol in self.names or str(symbol) in self.names

    def _divide_in_place(self, expr: sp.Mul) -> str | None:
        """``a / b`` written into a, when a is a temporary (``e / Σe``, ``(s − y) / B``)."""
        factors = sp.Mul.make_args(expr)
        divisors = [f for f in factors if isinstance(f, sp.Pow) and f.exp == -1]
        if len(factors) != 2 or len(divisors) != 1:
            return None
        (first,) = [f for f in factors if f is not divisors[0]]
        return self._in_place("divide", expr, first, divisors[0].base)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """``Piecewise((a, c), (b, True))`` as ``xp.where(c, a, b)``: a selection, not a product,
        so a branch not taken (log 0 = −inf where y = 0) cannot turn the result into nan."""
        *branches, (otherwise, last) = expr.args
        if last != sp.true:
            raise UnsupportedExpression(f"{expr}: the last branch must hold otherwise (True)")
        code = self._print(otherwise)
        for value, condition in reversed(branches):
            code = f"{self._module}.where({self._print(condition)}, {self._print(value)}, {code})"
        return code

    def _print_Relational(self, expr: sp.core.relational.Relational) -> str:
        """``y[i] == 0`` with Python's operators, which every array library overloads."""
        operators = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        if expr.rel_op not in operators:
            raise UnsupportedExpression(f"{expr}: relation {expr.rel_op} has no array operator")
        return f"{self._print(expr.lhs)} {operators[expr.rel_op]} {self._print(expr.rhs)}"

    # -- calls to other generated functions --------------------------------------

    def _print_Function(self, expr: sp.Function) -> str:
        if isinstance(expr, AppliedUndef):  # another generated function: its unchecked core
            arguments = ", ".join(
                [self._module]
                + [
                    self._name(a.label) if isinstance(a, sp.IndexedBase) else self._print(a)
                    for a in expr.args
                ]
            )
            callee = expr.func.__name__
            fresh = (
                callee in self.fresh_calls
                and len(set(expr.args)) == len(expr.args)  # no array given twice
                and all(self._fresh(a, expr, calls=True) == "" for a in expr.args)
            )
            return f"_{callee}({arguments}{', fresh=True' if fresh else ''})"
        return super()._print_Function(expr)

    # -- elementwise choices ---------------------------------------------------------

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """``xp.where(condition, value, otherwise)``, nested for more branches.

        Both branches are computed, so each must be safe everywhere: the
        derivations write stable branches (e^{-|z|}, never e^{z} unguarded).
        """
        *branches, (last, otherwise) = expr.args
        if otherwise != sp.true:
            raise UnsupportedExpression(f"{expr}: the last branch must hold otherwise (True)")
        text = self._print(last)
        for value, condition in reversed(branches):
            text = f"{self._module}.where({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def _print_Relational(self, expr) -> str:
        precedence = sp.printing.precedence.precedence(expr)
        return (
            f"{self.parenthesize(expr.lhs, precedence)} {expr.rel_op} "
            f"{self.parenthesize(expr.rhs, precedence)}"
        )

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        """H(z) as 1.0 where z > 0, else 0.0 (`derive._runtime.heaviside`): the value at 0 is
        part of the expression; written into z where z is a temporary the function owns."""
        argument, at_zero = expr.args if len(expr.args) == 2 else (expr.args[0], None)
        if at_zero not in (0, 1):
            raise UnsupportedExpression(
                f"{expr}: say Heaviside's value at 0, 0 or 1 (got {at_zero})"
            )
        owned = {None: "", "": ", owned=True"}.get(self._fresh(argument, expr), ", owned=fresh")
        return f"heaviside({self._module}, {self._print(argument)}, {at_zero}, {self.dtype}{owned})"

    def _print_Max(self, expr: sp.Max) -> str:
        """``xp.maximum``, nested for more arguments; max(z, 0) written into z where z is a
        temporary the function owns (ReLU over the two-layer step's z₁, read no more)."""
        arrays = [a for a in expr.args if not a.is_number]
        if len(expr.args) == 2 and len(arrays) == 1:
            (number,) = [a for a in expr.args if a.is_number]
            code = self._in_place("maximum", expr, arrays[0], number)
            if code:
                return code
        *rest, last = expr.args
        text = self._print(last)
        for argument in reversed(rest):
            text = f"{self._module}.maximum({self._print(argument)}, {text})"
        return text

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE['Pow'])}"
        return self._hprint_Pow(expr, rational=rational, sqrt=f"{self._module}.sqrt")

    # -- reductions ---------------------------------------------------------------

    def _reduce(self, function: str, expr: sp.Expr) -> str:
        ((index, lower, upper),) = expr.limits
        if (lower, upper) != (index.lower, index.upper):
            raise UnsupportedExpression(f"{expr}: only sums over an index's whole range")
        outer = self.axes
        if outer and not any(i in outer for i in expr.function.atoms(sp.Idx)):
            # Σ_k e_k inside an expression over i: reduce e alone and keep the axis,
            # which broadcasts against i, rather than placing e on (i, k) first.
            self.axes = [index]
            try:
                body = self._print(expr.function)
            finally:
                self.axes = outer
            extra = ", None" * (len(outer) - 1)
            return f"{self._module}.{function}({body}, axis=-1, keepdims=True)" + (
                f"[...{extra}]" if extra else ""
            )
        self.axes = [*outer, index]
        try:
            body = self._print(expr.function)
        finally:
            self.axes = outer
        return f"{self._module}.{function}({body}, axis=-1)"

    def _print_Sum(self, expr: sp.Sum) -> str:
        return (
            self._contraction(expr)
            or self._vecdot(expr)
            or self._sum_of_weighted_differences(expr)
            or self._sum_of_others(expr)
            or self._leading_sum(expr)
            or self._reduce("sum", expr)
        )

    def _vecdot(self, expr: sp.Sum) -> str | None:
        """Σ_k a_k b_k (or Σ_k a_k²) of two arrays over their one axis (Σ_i g_i x̂_i, a loss's
        Σ_i y_i log S_i): ``vecdot(xp, a, b)``, one pass and no a·b temporary."""
        ((k, lower, upper),) = expr.limits
        function = expr.function
        if isinstance(function, sp.Pow) and function.exp == 2:
            factors = (function.base, function.base)
        else:
            factors = sp.Mul.make_args(function)
        if (lower, upper) != (k.lower, k.upper) or len(factors) != 2:
            return None
        if not all(isinstance(f, sp.Indexed) and f.indices == (k,) for f in factors):
            return None
        outer = self.axes
        self.axes = [k]
        try:
            a, b = (self._print(f) for f in factors)
        finally:
            self.axes = outer
        code = f"vecdot({self._module}, {a}, {b})"
        return code + (f"[...{', None' * len(outer)}]" if outer else "")

    def _leading_sum(self, expr: sp.Sum) -> str | None:
        """Σ_b A[b, ...] over an array's first axis, the rest being the result axes: a bias's
        gradient, summed over the batch, ``xp.sum(A, axis=0)``."""
        ((b, lower, upper),) = expr.limits
        entry = expr.function
        if not isinstance(entry, sp.Indexed) or (lower, upper) != (b.lower, b.upper):
            return None
        name = self._name(entry.base.label)
        if name in self.batched or entry.indices != (b, *self.axes):
            return None
        return f"{self._module}.sum({name}, axis=0)"

    def _sum_of_others(self, expr: sp.Sum) -> str | None:
        """Σ_m (1 − δ_im) A_m (or A_bm, per sample), every entry but the i-th, for each i:
        O(C), not O(C²).

        Printed as ``sum_of_others(xp, A)`` (derive._runtime): never A_i
        subtracted from a sum it is nearly all of (Σ_m A_m − A_i would cancel
        exactly where this sum is needed); two cumulative sums, or in NumPy
        faster routes with the same guarantee.
        """
        ((m, lower, upper),) = expr.limits
        factors = sp.Mul.make_args(expr.function)
        if len(factors) != 2 or (lower, upper) != (m.lower, m.upper):
            return None
        mask, entry = sorted(factors, key=lambda f: isinstance(f, sp.Indexed))
        if not (isinstance(entry, sp.Indexed) and entry.indices[-1] == m):
            return None
        leading = entry.indices[:-1]  # A_bm: one sum of others per sample b (result axes)
        if m in leading or not all(a in self.axes for a in leading):
            return None
        deltas = [i for i in mask.atoms(sp.KroneckerDelta) if m in i.args]
        if len(deltas) != 1:
            return None
        (i,) = [a for a in deltas[0].args if a != m]
        if mask != 1 - deltas[0] or i not in self.axes or i.upper != m.upper:
            return None
        name = self._name(entry.base.label)
        # derive._runtime's: two cumulative sums, or in NumPy over a few classes one product
        others = f"sum_of_others({self._module}, {name})"
        return self._place(others, (*leading, i), name in self.batched)

    def _sum_of_weighted_differences(self, expr: sp.Sum) -> str | None:
        """Σ_m (1 − δ_im) w_m (a_i − a_m) (or w_bm, a_bi, per sample), for each i:
        ``sum_of_weighted_differences(xp, w, a)`` (derive._runtime), O(C) per row.

        As a_i Σ_{m≠i} w_m − Σ_{m≠i} w_m a_m it is two sums of others; the
        runtime takes a_i Σ_m w_m − Σ_m w_m a_m where no entry is most of its
        row, where the m = i term (0) changes nothing but the rounding.
        """
        operands = self._weighted_differences(expr)
        if operands is None:
            return None
        _, _, w, a, leading, i = operands
        code = f"sum_of_weighted_differences({self._module}, {w}, {a})"
        return self._place(code, (*leading, i), w in self.batched)

    def _weighted_differences(self, expr: sp.Basic) -> tuple | None:
        """(w_{..m}, a_{..i}, w's name, a's name, the leading indices, i) if ``expr`` is
        Σ_m (1 − δ_im) w_m (a_i − a_m) on the result axes, else None."""
        if not isinstance(expr, sp.Sum) or len(expr.limits) != 1:
            return None
        ((m, lower, upper),) = expr.limits
        factors = sp.Mul.make_args(expr.function)
        if len(factors) != 3 or (lower, upper) != (m.lower, m.upper):
            return None
        deltas = [f for f in factors if isinstance(1 - f, sp.KroneckerDelta)]
        weights = [f for f in factors if isinstance(f, sp.Indexed)]
        gaps = [f for f in factors if isinstance(f, sp.Add) and f not in deltas]
        if not (len(deltas) == len(weights) == len(gaps) == 1):
            return None
        delta, weight, gap = 1 - deltas[0], weights[0], gaps[0]
        if m not in delta.args or weight.indices[-1] != m:
            return None
        (i,) = [a for a in delta.args if a != m] or [None]
        leading = weight.indices[:-1]
        if i is None or i not in self.axes or i.upper != m.upper or m in leading:
            return None
        if not all(a in self.axes for a in leading):
            return None
        first, second = sorted(sp.Add.make_args(gap), key=lambda g: g.could_extract_minus_sign())
        if not (isinstance(first, sp.Indexed) and isinstance(-second, sp.Indexed)):
            return None
        if first.base != (-second).base or first.indices != (*leading, i):
            return None
        if (-second).indices != (*leading, m):
            return None
        w, a = self._name(weight.base.label), self._name(first.base.label)
        if (w in self.batched) != (a in self.batched):
            return None
        return weight, first, w, a, leading, i

    def _share_of_weighted_differences(self, expr: sp.Mul) -> str | None:
        """w_i Σ_m (1 − δ_im) w_m (a_i − a_m) / (n (Σ_k w_k)²), for each i (the HVP's share of
        the mean from unnormalised exponentials w): ``share_of_weighted_differences(xp, w, a,
        n)`` (derive._runtime), its per-row divisions one divisor; a written into if owned."""
        factors = sp.Mul.make_args(expr)
        sums = [(f, m) for f in factors if (m := self._weighted_differences(f)) is not None]
        if len(sums) != 1:
            return None
        ((summed, (weight, values, w, a, leading, i)),) = sums
        rest = [f for f in factors if f is not summed]
        entry = weight.base[(*leading, i)]

        def weights_total(f: sp.Basic) -> bool:  # Σ_k w_k, the row's total, any k
            if not (isinstance(f, sp.Sum) and len(f.limits) == 1):
                return False
            ((k, lower, upper),) = f.limits
            term = f.function
            return (
                isinstance(term, sp.Indexed)
                and term.base == weight.base
                and term.indices == (*leading, k)
                and (lower, upper) == (1, i.upper)
            )

        squared = [
            f for f in rest if isinstance(f, sp.Pow) and f.exp == -2 and weights_total(f.base)
        ]
        if entry not in rest or len(squared) != 1:
            return None
        rest = [f for f in rest if f != entry and f is not squared[0]]
        divisors = [f.base for f in rest if isinstance(f, sp.Pow) and f.exp == -1]
        if (
            len(rest) > 1
            or len(divisors) != len(rest)
            or any(d.free_symbols & set(self.axes) for d in divisors)
        ):
            return None
        n = self._print(divisors[0]) if divisors else "1"
        condition = self._fresh(values, expr)
        owned = {None: "", "": ", owned=True"}.get(condition, condition)
        code = f"share_of_weighted_differences({self._module}, {w}, {a}, {n}{owned})"
        return self._place(code, (*leading, i), w in self.batched)

    def _print_Maximum(self, expr: Maximum) -> str:
        return self._reduce("max", expr)

    def _number_root(self, expr: sp.Expr) -> str:
        """A square root of a parameter (one number) as ``** 0.5``, which a Python float and a
        traced scalar both take; anything else as usual."""
        if isinstance(expr, sp.Pow) and expr.exp == sp.Rational(1, 2) and expr.base.is_Symbol:
            precedence = sp.printing.precedence.PRECEDENCE["Pow"]
            return f"{self.parenthesize(expr.base, precedence)}**0.5"
        return self._print(expr)

    def _print_VectorScale(self, expr: VectorScale) -> str:
        """``vector_scale(xp, x, floor)`` (derive._runtime): a power of two per vector."""
        vector, floor = expr.args
        return (
            f"vector_scale({self._module}, {self._name(vector.label)}, {self._number_root(floor)})"
        )

    def _print_NormalFloor(self, expr: NormalFloor) -> str:
        """``normal_floor(xp, a)`` (derive._runtime): a divisor kept at least the smallest normal."""
        return f"normal_floor({self._module}, {self._print(expr.args[0])})"

    def _print_QuietQuotient(self, expr: QuietQuotient) -> str:
        """``quiet_divide(xp, a, b)`` (derive._runtime): a/b without NumPy's divide-by-zero and
        invalid warnings, written into a where `_in_place` would."""
        a, b = expr.args
        condition = self._fresh(a, expr)
        if condition is None or not self._covers(a, (b,)):
            condition = ", owned=False"
        return f"quiet_divide({self._module}, {self._print(a)}, {self._print(b)}{condition})"

    def _print_Hypot(self, expr: Hypot) -> str:
        a, b = expr.args
        return f"{self._module}.hypot({self._number_root(a)}, {self._number_root(b)})"

    def _contraction(self, expr: sp.Sum) -> str | None:
        """Σ_k A[.., k] B[k, ..] as ``xp.matmul``, when the axes allow it."""
        ((k, _, _),) = expr.limits
        factors = sp.Mul.make_args(expr.function)
        if len(factors) != 2 or not all(isinstance(f, sp.Indexed) for f in factors):
            return None
        left, right = factors
        return self._matmul(k, left, right) or self._matmul(k, right, left)

    def _matmul(self, k: sp.Idx, left: sp.Indexed, right: sp.Indexed) -> str | None:
        """``left @ right`` contracting k, if its axes are the result axes."""
        left_name, right_name = self._name(left.base.label), self._name(right.base.label)
        if right_name in self.batched or len(right.indices) != 2 or k not in right.indices:
            return None
        (q,) = [i for i in right.indices if i != k]
        right_code = right_name if right.indices == (k, q) else self._transpose(right_name)
        if left.indices == (k,):  # a (batched) vector times a matrix: x @ W
            free, left_code = [q], left_name
        elif len(left.indices) == 2 and k in left.indices and left_name not in self.batched:
            (p,) = [i for i in left.indices if i != k]
            free = [p, q]
            left_code = left_name if left.indices == (p, k) else self._transpose(left_name)
        else:
            return None
        if free != self.axes:
            return None
        return f"{self._module}.matmul({left_code}, {right_code})"

    def _transpose(self, name: str) -> str:
        return f"{self._module}.matrix_transpose({name})"

    # -- second order: contractions over the batch, dense solves ------------------

    def _scaled_matmul_sum(self, expr: sp.Mul) -> str | None:
        """A number times Σ_b Π A_f[b, ..] (−Σ_b ..., the Hessian's blocks off the diagonal): the
        number multiplies one factor of the product, not its result, which has the size of
        both sides together ((D·C)² against B x C: 52 MB and a pass over them saved at D = 128,
        C = 20). A negation (or a power of two) is exact, so the numbers are the same; another
        number is rounded into one factor rather than into the product, as accurate."""
        number, rest = expr.as_coeff_Mul()
        if number == 1 or not isinstance(rest, MatmulSum):
            return None
        return self._print_MatmulSum(rest, scale=number)

    def _print_MatmulSum(self, expr: MatmulSum, scale: sp.Expr = sp.S.One) -> str:
        """Σ_b Π A_f[b, ..] as ``Lᵀ R``: the factors split into two groups of free indices.

        The sum's free indices, in the order of the result axes, are cut into a
        left part (the rows of Lᵀ R) and a right part (its columns) such that
        every factor lies on one side; the cut nearest the middle is taken. L
        (B, left sizes) and R (B, right sizes) are outer products per sample.
        ``scale`` (a number) multiplies the left factor with the fewest axes.
        """
        ((b, lower, upper),) = expr.limits
        if (lower, upper) != (b.lower, b.upper):
            raise UnsupportedExpression(f"{expr}: only sums over an index's whole range")
        factors = sp.Mul.make_args(expr.function)
        if not all(isinstance(f, sp.Indexed) and f.indices[0] == b for f in factors):
            raise UnsupportedExpression(
                f"{expr}: every factor must be an array indexed by {b} first"
            )
        free = [a for a in self.axes if any(a in f.indices[1:] for f in factors)]
        if len(free) != len({i for f in factors for i in f.indices[1:]}):
            raise UnsupportedExpression(f"{expr}: its free indices are not all result axes")
        cuts = [
            n
            for n in range(1, len(free))
            if all(
                set(f.indices[1:]) <= set(free[:n]) or set(f.indices[1:]) <= set(free[n:])
                for f in factors
            )
        ]
        if not cuts:
            raise UnsupportedExpression(
                f"{expr}: no factor-wise split of {free} into rows and columns"
            )
        cut = min(cuts, key=lambda n: abs(2 * n - len(free)))
        sides = []
        outer = self.axes
        for part in (free[:cut], free[cut:]):
            self.axes = [b, *part]
            try:
                group = [f for f in factors if set(f.indices[1:]) <= set(part)]
                if scale != 1:  # on the smallest factor of the left side: B x its sizes
                    smallest = min(group, key=lambda f: len(f.indices))
                    group = [scale * f if f is smallest else f for f in group]
                    scale = sp.S.One
                code = " * ".join(self._print(f) for f in group)
            finally:
                self.axes = outer
            sides.append(
                f"{self._module}.reshape({code}, ({self._print(upper)}, -1))"
                if len(part) > 1
                else code
            )
        product = f"{self._module}.matmul({self._transpose(sides[0])}, {sides[1]})"
        if len(free) > 2:
            shape = ", ".join(self._print(i.upper) for i in free)
            product = f"{self._module}.reshape({product}, ({shape}))"
        return self._place(product, tuple(free), batched=False)

    def _print_SymmetricMatmulSum(self, expr: SymmetricMatmulSum) -> str:
        """Σ_b x_bj x_bk w_bcd (w symmetric in c, d, as the node declares) as
        ``symmetric_kronecker_sum(xp, x, w)`` (derive._runtime), entry [j, c, k, d]: one matrix
        product of the pairs j ≤ k by the pairs c ≤ d."""
        ((b, lower, upper),) = expr.limits
        factors = sp.Mul.make_args(expr.function)
        inputs = sorted(
            (f for f in factors if isinstance(f, sp.Indexed) and len(f.indices) == 2),
            key=lambda f: self.axes.index(f.indices[1]) if f.indices[1] in self.axes else -1,
        )
        weights = [f for f in factors if isinstance(f, sp.Indexed) and len(f.indices) == 3]
        if not (
            (lower, upper) == (b.lower, b.upper)
            and len(factors) == 3
            and len(inputs) == 2
            and len(weights) == 1
            and inputs[0].base == inputs[1].base
            and all(f.indices[0] == b for f in (*inputs, *weights))
        ):
            raise UnsupportedExpression(
                f"{expr}: expected Σ_{b} x[{b}, j] x[{b}, k] w[{b}, c, d] over {b}'s whole range"
            )
        (weight,) = weights
        j, k = (f.indices[1] for f in inputs)
        c, d = sorted(
            weight.indices[1:], key=lambda a: self.axes.index(a) if a in self.axes else -1
        )
        x, w = self._name(inputs[0].base.label), self._name(weight.base.label)
        if {x, w} & self.batched or j.upper != k.upper or c.upper != d.upper:
            raise UnsupportedExpression(f"{expr}: its factors are not one sample per row of {b}")
        code = f"symmetric_kronecker_sum({self._module}, {x}, {w})"
        return self._place(code, (j, c, k, d), batched=False)

    def _print_DenseSolve(self, expr: DenseSolve) -> str:
        """``solve(xp, A, r)`` (``xp.linalg.solve`` with named errors, derive._runtime) on A and r
        flattened in row-major order, reshaped back."""
        if list(expr.indices) != self.axes:
            raise UnsupportedExpression(f"{expr}: its indices are not the result axes {self.axes}")
        sizes = [self._print(i.upper) for i in expr.indices]
        n = "*".join(sizes)
        matrix, rhs = self._name(expr.matrix.label), self._name(expr.rhs.label)
        penalty = "" if expr.penalty is None else f", penalty={self._print(expr.penalty)}"
        solved = (
            f"solve({self._module}, {self._module}.reshape({matrix}, ({n}, {n})), "
            f"{self._module}.reshape({rhs}, ({n},)){penalty})"
        )
        return f"{self._module}.reshape({solved}, ({', '.join(sizes)}))"
