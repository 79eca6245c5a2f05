"""Argument checks shared by the generated functions (hand-written, not generated).

Every generated function starts with ``namespace`` (which array library?) and
``prepare`` (are the shapes what the derivation assumes?), so a wrong shape
raises a ValueError naming the argument instead of broadcasting silently into
a wrong result.
"""

from __future__ import annotations

import operator
import types
from functools import cache, partial
from typing import Any

import array_api_compat
import numpy as np

Array = Any  # an array of any array-API library: numpy.ndarray, torch.Tensor, ...
Namespace = Any  # its namespace: numpy, array_api_compat.torch, ...


def _reshape(x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
    return x.reshape(shape) if copy is None else np.reshape(x, shape, copy=copy)


# A reduction over a short last axis (C classes) of many rows is faster as C passes over
# contiguous columns than as one pass per short row: NumPy's inner loop over 10 numbers
# does not vectorise. Measured here (B rows x C): 256 x 10 max 11.2 -> 2.9 µs, sum 6.2 ->
# 3.0 µs; no gain from C = 32 on, or below 64 rows.
_SHORT_AXIS, _MANY_ROWS = 16, 64


def _reduce_over_classes(ufunc: np.ufunc):
    """``ufunc.reduce`` as ``xp.sum``/``xp.max`` take it, fast over a short last axis."""

    def reduce(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Any:
        classes = x.shape[-1] if x.ndim >= 2 else 0
        if axis == -1 and 0 < classes <= _SHORT_AXIS and x.size >= _MANY_ROWS * classes:
            columns = np.ascontiguousarray(x.reshape(-1, classes).T)  # (C, rows)
            result = ufunc.reduce(columns, axis=0).reshape(x.shape[:-1])
            return result[..., None] if keepdims else result
        return ufunc.reduce(x, axis=axis, keepdims=keepdims)

    return reduce


def _fast_numpy() -> types.ModuleType:
    """NumPy, with the four functions a generated step calls most bound to their C cores.

    ``np.sum``, ``np.max``, ``np.reshape`` and ``np.matrix_transpose`` are
    Python wrappers around ``np.add.reduce``, ``np.maximum.reduce`` and array
    methods; on a batch of 256 x 10 the wrapping costs as much as the
    arithmetic. Same results (sums up to rounding: they add in another order),
    same errors: everything else is NumPy itself.
    """
    fast = types.ModuleType("numpy", doc=_fast_numpy.__doc__)
    fast.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    fast.__getattr__ = partial(getattr, np)  # names NumPy loads lazily
    fast.sum = _reduce_over_classes(np.add)
    fast.max = _reduce_over_classes(np.maximum)
    fast.reshape = _reshape
    fast.matrix_transpose = operator.attrgetter("mT")
    return fast


FAST_NUMPY = _fast_numpy()


def namespace(*arguments: Any) -> Any:
    """The array-API namespace of the arguments; NumPy for lists and scalars.

    NumPy 2 implements the array API itself, so NumPy arrays get NumPy (not
    the compat wrapper, which costs microseconds on every call), in the form
    of ``FAST_NUMPY``.
    """
    if all(type(a) is np.ndarray for a in arguments):
        return FAST_NUMPY
    arrays = [a for a in arguments if array_api_compat.is_array_api_obj(a)]
    if not arrays:
        return array_api_compat.array_namespace(np.empty(0))
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as error:
        kinds = ", ".join(sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays}))
        raise TypeError(
            f"the arguments come from different array libraries ({kinds}); "
            "pass arrays of one library"
        ) from error


@cache
def _parse(spec: str) -> tuple[bool, tuple[str, ...], bool]:
    """``"(..., C) one-hot"`` -> (batched, ("C",), accepts integer labels)."""
    shape, _, kind = spec.partition(")")
    parts = [p.strip() for p in shape.strip("(").split(",") if p.strip()]
    batched = bool(parts) and parts[0] == "..."
    return batched, tuple(parts[1:] if batched else parts), kind.strip() == "one-hot"


@cache
def _float_dtypes(xp: Any) -> frozenset:
    """The library's float32 and float64 dtypes, as its arrays report them (a fast check)."""
    return frozenset(xp.asarray(0.0, dtype=d).dtype for d in (xp.float32, xp.float64))


def _as_array(xp: Any, value: Any) -> Any:
    return value if hasattr(value, "shape") and hasattr(value, "dtype") else xp.asarray(value)


def _as_float(xp: Any, name: str, array: Any) -> Any:
    if array.dtype in _float_dtypes(xp) or xp.isdtype(array.dtype, "real floating"):
        return array
    if not xp.isdtype(array.dtype, ("integral", "bool")):
        raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
    return xp.astype(array, xp.float64)


def _one_hot(xp: Any, name: str, labels: Any, classes: int, dtype: Any) -> Any:
    """Integer class labels (...) as one-hot rows (..., C); a label outside 0..C-1 raises."""
    if labels.ndim and xp.any(labels < 0) | xp.any(labels >= classes) or (
        not labels.ndim and not 0 <= int(labels) < classes
    ):
        low, high = int(xp.min(labels)), int(xp.max(labels))
        raise ValueError(
            f"{name}: expected class labels in 0..{classes - 1}, got labels from {low} to {high}"
        )
    return xp.astype(labels[..., None] == xp.arange(classes, dtype=labels.dtype), dtype)


@cache
def _order(names: tuple[str, ...], specs: tuple[str, ...]) -> tuple[tuple[str, bool, tuple, bool, str], ...]:
    """(name, batched, axes, one_hot, spec) per argument, labels last: they need C and the batch."""
    parsed = [(name, *_parse(spec), spec) for name, spec in zip(names, specs)]
    return tuple(sorted(parsed, key=lambda p: p[3]))


# (spec, shape, dtype) per argument of the NumPy calls that passed unchanged: a training
# loop calls with the same shapes every step, and a hit skips the checks (a few microseconds).
_PASSED: set[tuple[tuple[str, tuple[int, ...], Any], ...]] = set()


def prepare(xp: Any, **arguments: tuple[Any, str]) -> tuple[Any, ...]:
    """Check each ``name=(value, "(..., D)")`` and return the values as float arrays.

    Sizes with the same name (D, C) must agree across arguments, and batched
    arguments must share one batch shape: nothing broadcasts. An argument whose
    spec ends in "one-hot" also takes integer class labels of the batch shape.
    """
    if xp is FAST_NUMPY:  # all NumPy arrays: whether they pass depends on shapes and dtypes only
        key = tuple([(spec, value.shape, value.dtype) for value, spec in arguments.values()])
        if key in _PASSED:
            return tuple([value for value, _ in arguments.values()])
    sizes: dict[str, tuple[int, str]] = {}  # axis -> (size, the argument it came from)
    batch: tuple[tuple[int, ...], str] | None = None  # (shape, argument) of the first batched one
    prepared: dict[str, Any] = {}
    specs = tuple(spec for _, spec in arguments.values())
    for name, batched, axes, one_hot, spec in _order(tuple(arguments), specs):
        array = _as_array(xp, arguments[name][0])
        shape = tuple(array.shape)

        def expected() -> str:  # only built for an error message
            labels = f", or integer class labels of shape {batch[0]}" if one_hot and batch else ""
            return f"shape {spec}{labels}"

        if one_hot and batch and shape == batch[0] and xp.isdtype(array.dtype, "integral"):
            if axes[-1] not in sizes:
                raise ValueError(f"{name}: class labels need the number of classes {axes[-1]}")
            dtype = xp.result_type(*prepared.values())
            prepared[name] = _one_hot(xp, name, array, sizes[axes[-1]][0], dtype)
            continue
        array = _as_float(xp, name, array)
        if len(shape) < len(axes) or (not batched and len(shape) != len(axes)):
            raise ValueError(f"{name}: expected {expected()}, got {shape}")
        for axis, size in zip(axes, shape[len(shape) - len(axes):]):
            known = sizes.setdefault(axis, (size, name))
            if known[0] != size:
                raise ValueError(f"{name}: expected {expected()} with {axis} = {known[0]} as in "
                                 f"{known[1]}.shape, got {shape}")
            if size == 0:
                raise ValueError(f"{name}: expected shape {spec} with {axis} > 0, got {shape}")
        if batched:
            leading = shape[: len(shape) - len(axes)]
            if batch is None:
                batch = (leading, name)
            elif batch[0] != leading:
                raise ValueError(f"{name}: expected batch shape {batch[0]} as in {batch[1]} "
                                 f"({expected()}), got {shape}")
        prepared[name] = array
    result = tuple(prepared[name] for name in arguments)
    if xp is FAST_NUMPY and all(p is v for p, (v, _) in zip(result, arguments.values())):
        if len(_PASSED) >= 1024:
            _PASSED.clear()
        _PASSED.add(key)
    return result


def scalar(name: str, value: Any) -> float:
    """A scalar argument (a temperature, a penalty) as a Python float, or a named error.

    A Python float takes the precision of the arrays it meets, so float32
    stays float32 whatever the scalar's own type was.
    """
    if isinstance(value, bool) or getattr(value, "dtype", None) is not None and getattr(value, "shape", ()) != ():
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}"
                        f"{' of shape ' + str(tuple(value.shape)) if hasattr(value, 'shape') else ''}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r:.40}") from None
    if number != number:
        raise ValueError(f"{name}: expected a real number, got nan")
    return number
