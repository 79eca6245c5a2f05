"""Argument checks shared by the generated functions (hand-written, not generated).

Every generated function starts with ``namespace`` (which array library?) and
``prepare`` (are the shapes what the derivation assumes?), so a wrong shape
raises a ValueError naming the argument instead of broadcasting silently into
a wrong result.
"""

from __future__ import annotations

import contextlib
import math
import operator
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from functools import cache, lru_cache, partial, wraps
from typing import Any, ParamSpec, TypeVar

import array_api_compat
import numpy as np

from derive.array_types import Array, ArrayLike  # noqa: F401 (the generated code imports them from here)

Namespace = Any  # its namespace: numpy, array_api_compat.torch, ...


def _reshape(x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
    return x.reshape(shape) if copy is None else np.reshape(x, shape, copy=copy)


# A reduction over a short last axis (C classes) of many rows is faster as C passes over
# contiguous columns than as one pass per short row: NumPy's inner loop over 10 numbers
# does not vectorise. Measured here (B rows x C): 256 x 10 max 11.2 -> 2.9 µs, sum 6.2 ->
# 3.0 µs; no gain from C = 32 on, or below 64 rows. A sum of float32 or float64 rows is
# faster still as one matrix-vector product with ones (`_row_sums`): 256 x 10 float32
# 2.9 -> 0.9 µs, 4096 x 10 20 -> 9 µs, and no less accurate (the largest error over the
# rows, against a long-double sum: 256 x 10 float32 6.5 -> 5.75 ε, float64 7 -> 5 ε; BLAS
# adds in several partial sums). A row of zeros that are all −0 sums to +0 there.
_SHORT_AXIS, _MANY_ROWS = 16, 64


def _reduce_over_classes(ufunc: np.ufunc):
    """``ufunc.reduce`` as ``xp.sum``/``xp.max`` take it, fast over a short last axis."""

    def reduce(x: Any, /, *, axis: int | None = None, keepdims: bool = False) -> Any:
        classes = x.shape[-1] if x.ndim >= 2 else 0
        if axis == -1 and 0 < classes <= _SHORT_AXIS and x.size >= _MANY_ROWS * classes:
            flat = x.ndim == 2  # (rows, C) already: no reshape either way (0.2 µs each)
            rows = x if flat else x.reshape(-1, classes)
            if ufunc is np.add and x.dtype in _BLAS_FLOATS:
                result = _row_sums(rows)
            else:
                result = ufunc.reduce(np.ascontiguousarray(rows.T), axis=0)  # over (C, rows)
            if not flat:
                result = result.reshape(x.shape[:-1])
            return result[..., None] if keepdims else result
        return ufunc.reduce(x, axis=axis, keepdims=keepdims)

    return reduce


def _fast_numpy() -> types.ModuleType:
    """NumPy, with the functions a generated step calls most bound to their C cores.

    ``np.sum``, ``np.max``, ``np.reshape`` and ``np.matrix_transpose`` are
    Python wrappers around ``np.add.reduce``, ``np.maximum.reduce`` and array
    methods; on a batch of 256 x 10 the wrapping costs as much as the
    arithmetic. Same results (sums up to rounding: they add in another order),
    same errors: everything else is NumPy itself. And ``np.eye(n, dtype=...)``
    is made once per size and dtype, read-only (a generated step uses it as
    a constant, never returns it alone, and `in_place` never writes into it).
    """
    fast = types.ModuleType("numpy", doc=_fast_numpy.__doc__)
    fast.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    fast.__getattr__ = partial(getattr, np)  # names NumPy loads lazily
    fast.sum = _reduce_over_classes(np.add)
    fast.max = _reduce_over_classes(np.maximum)
    fast.reshape = _reshape
    fast.matrix_transpose = operator.attrgetter("mT")
    fast.eye = _eye
    return fast


@cache
def _eye_of(n: int, dtype: Any) -> np.ndarray:
    eye = np.eye(n, dtype=dtype)
    eye.flags.writeable = False
    return eye


def _eye(n: int, m: int | None = None, k: int = 0, dtype: Any = float, **options: Any) -> Any:
    """``np.eye``, made once per size and dtype: an identity of a few classes costs a call to
    make, as much as the product it is used in. Read-only (`in_place` never writes into it)."""
    if m is None and k == 0 and not options:
        return _eye_of(n, dtype)
    return np.eye(n, m, k, dtype, **options)


FAST_NUMPY = _fast_numpy()


def namespace(*arguments: Any) -> Any:
    """The array-API namespace of the arguments; NumPy for lists and scalars.

    NumPy 2 implements the array API itself, so NumPy arrays get NumPy (not
    the compat wrapper, which costs microseconds on every call), in the form
    of ``FAST_NUMPY``. Arrays of two libraries raise a TypeError naming the
    argument that differs from the first.
    """
    if all(type(a) is np.ndarray for a in arguments):
        return FAST_NUMPY
    arrays = [a for a in arguments if array_api_compat.is_array_api_obj(a)]
    if any(type(a) is not np.ndarray and not isinstance(a, np.generic) for a in arrays):
        arrays = [a for a in arrays if not isinstance(a, np.generic)]  # np.int64(3): a number
    if not arrays:
        return array_api_compat.array_namespace(np.empty(0))
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as error:
        raise _mixed_libraries(arrays, sys._getframe(1)) from error


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (inside ``jax.jit``, ``grad``, ``vmap``): no values to read.

    The checks of label values, row sums and class weights need the numbers,
    which a tracer does not have: they are skipped for it and run when the
    function is called outside a transformation. Shapes and dtypes are always
    checked. NumPy arrays never reach the ``isinstance``.
    """
    jax = sys.modules.get("jax")
    return jax is not None and type(value) is not np.ndarray and isinstance(value, jax.core.Tracer)


def _kind(value: Any) -> str:
    return type(value).__module__.partition(".")[0] + "." + type(value).__name__


def _mixed_libraries(arrays: list[Any], caller: types.FrameType) -> TypeError:
    """The error for arrays of two libraries, naming the one that differs from the first.

    ``namespace`` gets the values only; the generated function that called it
    holds them under their argument names, so they are looked up there by
    identity (this runs only on the way to an error).
    """

    def name(value: Any) -> str | None:
        return next((k for k, v in caller.f_locals.items() if v is value), None)

    first = arrays[0]
    other = next(a for a in arrays if _kind(a) != _kind(first))
    advice = "the arguments come from different array libraries; pass arrays of one library"
    if name(first) is None or name(other) is None:
        kinds = ", ".join(sorted({_kind(a) for a in arrays}))
        return TypeError(f"{advice} (got {kinds})")
    return TypeError(
        f"{name(other)}: expected an array of the same library as {name(first)} "
        f"({_kind(first)}), got {_kind(other)} ({advice})"
    )


# The values of one-hot or probability label rows are checked on every call unless this is
# off: see `check_labels`.
_check_label_rows = True


def check_labels(enabled: bool = True) -> bool:
    """Turn the value checks of label rows on or off, for every later call; returns the old setting.

    Labels given as rows of shape (..., C) (one-hot, or probabilities such as
    smoothed labels) are checked on every call: each row must sum to 1 within
    ``16 C ε`` (ε of float32, or of the labels' dtype if coarser; a nan fails).
    ``check_labels(False)`` skips that check once the labels are known to be
    good: it reads every label, about 4 µs per call for 256 x 10 in NumPy
    (a repeated call that skips the other checks takes 1.5 µs) and tens of µs in
    PyTorch on the CPU. Shapes, dtypes and integer class labels (0..C-1) are
    always checked. The same switch covers the other value checks a formula
    needs: label rows without negative entries, softmax outputs (spec
    ``"(..., C) probabilities"``) summing to 1 and without negative entries,
    and values that must lie in [0, 1] (spec ``"(...) in [0, 1]"``: binary
    cross-entropy's p and y). The setting is one per process, not per thread;
    prefer the context manager `trusted_labels`. Inside ``jax.jit`` the values
    are not known, and none of these checks runs (`is_traced`); shapes are
    still checked.
    """
    global _check_label_rows
    previous, _check_label_rows = _check_label_rows, bool(enabled)
    return previous


@contextlib.contextmanager
def trusted_labels() -> Iterator[None]:
    """``with derive.trusted_labels():`` skips the value checks of label rows inside the block.

    See `check_labels`; the previous setting comes back when the block ends.
    """
    previous = check_labels(False)
    try:
        yield
    finally:
        check_labels(previous)


@cache
def _parse(spec: str) -> tuple[bool, tuple[str, ...], bool]:
    """``"(..., C) one-hot"`` -> (batched, ("C",), accepts integer labels)."""
    shape, _, kind = spec.partition(")")
    parts = [p.strip() for p in shape.strip("(").split(",") if p.strip()]
    batched = bool(parts) and parts[0] == "..."
    return batched, tuple(parts[1:] if batched else parts), kind.strip() == "one-hot"


@cache
def _value_check(spec: str) -> str | None:
    """What a spec asks of the values: "rows" (``(..., C) probabilities``: each row sums to 1,
    no entry negative), "unit" (``(...) in [0, 1]``: every value in [0, 1]), or None."""
    kind = spec.partition(")")[2].strip()
    return {"probabilities": "rows", "in [0, 1]": "unit"}.get(kind)


@cache
def _labels_of(spec: str) -> str | None:
    """``"(...) labels of C"`` -> "C": integer class labels 0..C-1 of the batch shape; else None."""
    kind = spec.partition(")")[2].split()
    return kind[-1] if kind[:2] == ["labels", "of"] else None


@cache
def _order(
    names: tuple[str, ...], specs: tuple[str, ...]
) -> tuple[tuple[str, bool, tuple, bool, str], ...]:
    """(name, batched, axes, one_hot, spec) per argument, labels last: they need C and the batch."""
    parsed = [(name, *_parse(spec), spec) for name, spec in zip(names, specs)]
    return tuple(sorted(parsed, key=lambda p: p[3] or _labels_of(p[4]) is not None))


def _is_array(value: Any) -> bool:
    return type(value) is np.ndarray or array_api_compat.is_array_api_obj(value)


def _as_array(xp: Any, name: str, value: Any, spec: str, floats: Any) -> Any:
    """``value`` as an array of ``xp``; lists and scalars of floats in the dtype ``floats``.

    NumPy subclasses (``np.matrix``, memmaps) become plain arrays, so the
    generated code gets the semantics it was written for; a masked array is
    refused, as its masked entries would be taken for numbers. Anything that
    is not an array goes through ``np.asarray`` first, so its failures are
    NumPy's whatever the library, and are reported under the argument's name.
    """
    if type(value) is np.ndarray:
        return value
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: expected an array of shape {spec}, got a masked array "
            "(its masked entries would be used as numbers; pass value.filled(...))"
        )
    if isinstance(value, np.ndarray) or (isinstance(value, np.generic) and _is_numpy(xp)):
        return np.asarray(value)
    if array_api_compat.is_array_api_obj(value) and not isinstance(value, np.generic):
        return value
    if value is None or isinstance(value, (str, bytes, dict)):
        raise TypeError(
            f"{name}: expected an array or a list of numbers of shape {spec}, "
            f"got {'None' if value is None else type(value).__name__}"
        )
    try:
        array = np.asarray(value)
    except ValueError as error:  # NumPy 2: "... has an inhomogeneous shape after 1 dimensions"
        raise ValueError(
            f"{name}: expected shape {spec}, got a ragged list (rows of different lengths)"
        ) from error
    except Exception as error:  # an object whose __array__ or __len__ fails
        raise TypeError(
            f"{name}: expected an array or a list of numbers of shape {spec}, "
            f"got {type(value).__name__}"
        ) from error
    if array.dtype.kind == "O":
        raise TypeError(
            f"{name}: expected an array or a list of numbers of shape {spec}, "
            f"got {type(value).__name__}"
        )
    if array.dtype.kind == "f":
        return xp.asarray(array, dtype=floats)
    if array.dtype.kind in "iu":
        return xp.asarray(array)
    raise TypeError(f"{name}: expected real numbers of shape {spec}, got dtype {array.dtype}")


def _is_numpy(xp: Any) -> bool:
    return xp is FAST_NUMPY or array_api_compat.is_numpy_namespace(xp)


def _check_dtype(xp: Any, name: str, array: Any, what: str) -> None:
    """Real numbers (floats or integers) only; booleans are refused, not read as 0 and 1."""
    real = array.dtype in _float_dtypes(xp) or xp.isdtype(
        array.dtype, ("real floating", "integral")
    )
    if not real:
        raise TypeError(f"{name}: expected {what}, got dtype {_dtype_name(array.dtype)}")


def _dtype_name(dtype: Any) -> str:
    """``bool``, ``float64``, ``datetime64[D]``, whichever library's dtype it is."""
    text = str(dtype)
    for prefix in ("torch.", "array_api_strict.", "<class 'numpy.", "dtype('"):
        text = text.removeprefix(prefix)
    return text.rstrip("'>)").removesuffix("'")


@cache
def _float_dtypes(xp: Any) -> frozenset:
    """The library's float32 and float64 dtypes, as its arrays report them (a fast check)."""
    return frozenset((xp.asarray(0.0, dtype=xp.float32).dtype, _widest(xp, "float64")))


def _widest(xp: Any, name: str) -> Any:
    """``xp.float64`` or ``xp.int64`` as the library's arrays report it: JAX in its default
    32-bit mode makes float32 and int32 of them (and warns when asked, so it is asked once a mode)."""
    jax = sys.modules.get("jax")
    return _widest_in(xp, name, jax is not None and bool(jax.config.jax_enable_x64))


@cache
def _widest_in(xp: Any, name: str, jax_x64: bool) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xp.asarray(0, dtype=getattr(xp, name)).dtype


def _is_float(xp: Any, array: Any) -> bool:
    return array.dtype in _float_dtypes(xp) or xp.isdtype(array.dtype, "real floating")


def _common_float_dtype(xp: Any, values: list[Any], labels: list[bool]) -> Any:
    """The dtype the computation runs in: the floats' common dtype, labels only if alone.

    Follows the library's promotion (``torch.result_type``: float16 with
    float32 is float32); float64 when no argument is a float array. One-hot
    label rows take the dtype of the values beside them rather than widen it:
    ``np.eye(C)[labels]`` is float64 whatever the model's dtype.
    """
    common = _float_dtypes(xp)
    floats = [
        (v.dtype, label)
        for v, label in zip(values, labels)
        if _is_array(v) and (v.dtype in common or _is_dtype(xp, v.dtype, "real floating"))
    ]
    chosen = {d for d, label in floats if not label} or {d for d, _ in floats}
    if len(chosen) == 1:  # the usual case, without the library's result_type (microseconds)
        return chosen.pop()
    return xp.result_type(*chosen) if chosen else _widest(xp, "float64")


def _is_dtype(xp: Any, dtype: Any, kind: str) -> bool:
    try:
        return xp.isdtype(dtype, kind)
    except (TypeError, ValueError, AttributeError):  # a dtype it does not know: datetime64, NumPy's
        return False


def _checked_labels(xp: Any, name: str, labels: Any, classes: int) -> Any:
    """Integer class labels (...) as int64; a label outside 0..C-1 raises.

    Compared in int64 whatever the labels' dtype: in uint8, 300 classes would
    wrap to 44, and label 44 would mark two of them.
    """
    int64 = xp.int64 if xp is FAST_NUMPY else _widest(xp, "int64")
    wide = labels if labels.dtype == int64 else xp.astype(labels, int64)
    if _empty(wide):  # a batch of no samples: no label to check
        return wide
    lowest, highest = (wide, wide) if not wide.ndim else (xp.min(wide), xp.max(wide))
    if is_traced(highest):  # inside jax.jit: no values to check
        return wide
    low, high = int(lowest), int(highest)
    if labels.dtype == getattr(xp, "uint64", None) and (low < 0 or high < low):  # wrapped in int64
        low, high = int(xp.min(labels)), int(xp.max(labels))
    if low < 0 or high >= classes:
        raise ValueError(
            f"{name}: expected class labels in 0..{classes - 1}, got labels from {low} to {high}"
        )
    return wide


def _empty(array: Any) -> bool:
    """Whether an array holds no number (a batch of no samples): min, max, argmin refuse it."""
    return 0 in tuple(array.shape)


def _one_hot(xp: Any, name: str, labels: Any, classes: int, dtype: Any) -> Any:
    """Integer class labels (...) as one-hot rows (..., C); a label outside 0..C-1 raises."""
    wide = _checked_labels(xp, name, labels, classes)
    return xp.astype(wide[..., None] == xp.arange(classes, dtype=wide.dtype), dtype)


def _labels_pass(labels: np.ndarray, classes: int) -> bool:
    """Whether int64 NumPy labels all lie in 0..C-1, fast: one pass, the maximum of the labels
    read as unsigned (a negative label reads as more than 2⁶³)."""
    if not labels.size:
        return True
    if labels.dtype != np.int64:
        return bool(labels.min() >= 0 and labels.max() < classes)
    return bool(np.maximum.reduce(labels.view(np.uint64), axis=None) < classes)


def is_class_labels(labels: Any, like: Any, axes: int) -> bool:
    """Whether ``labels`` are integer class labels of the batch shape of ``like``.

    ``like`` is a batched argument with ``axes`` axes after its batch axes. A
    generated function with a labels form takes it for these, and its one-hot
    form for everything else (float or integer rows, lists), which `prepare`
    checks as before. Reads only dtypes and shapes.
    """
    dtype = getattr(labels, "dtype", None)
    shape, like_shape = getattr(labels, "shape", None), getattr(like, "shape", None)
    if dtype is None or shape is None or like_shape is None:
        return False
    if type(labels) is np.ndarray or isinstance(labels, np.generic):
        integral = dtype.kind in "iu"
    else:
        try:
            integral = array_api_compat.array_namespace(labels).isdtype(dtype, "integral")
        except (TypeError, ValueError):
            return False
    return integral and len(shape) == len(like_shape) - axes


@cache
def _arange(n: int) -> np.ndarray:
    rows = np.arange(n)
    rows.flags.writeable = False
    return rows


@cache
def _row_starts(rows: int, classes: int) -> np.ndarray:
    starts = np.arange(0, rows * classes, classes)
    starts.flags.writeable = False
    return starts


def _flat_at_labels(a: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Where each row's label is in ``a.reshape(-1)`` (``a`` (..., C) C-contiguous, ``labels``
    (...) int64 in 0..C-1): one index into the flat array instead of a row index and a label
    index, which NumPy combines for each entry. Measured at 256 x 10, float32:
    ``a[arange(B), ℓ] -= 1`` 4.2 -> 1.9 µs, the read ``a[arange(B), ℓ]`` 2.1 -> 1.2 µs."""
    classes = a.shape[-1]
    return labels.reshape(-1) + _row_starts(a.size // classes if classes else 0, classes)


def take_at_labels(xp: Any, a: Any, labels: Any) -> Any:
    """``a[..., ℓ]``: each row's entry at its label (``a`` (..., C), ``labels`` (...) int64), shape (...).

    The printing of ``A_ℓ``. NumPy indexes rows and labels; other libraries use
    ``take_along_axis`` (array API 2024.12), or, without it, select with a
    comparison and sum (each row has one nonzero term, so the sum is exact).
    """
    if xp is FAST_NUMPY:
        if a.flags.c_contiguous:
            return a.reshape(-1)[_flat_at_labels(a, labels)].reshape(labels.shape)
        rows = a.reshape(-1, a.shape[-1])
        return rows[_arange(rows.shape[0]), labels.reshape(-1)].reshape(labels.shape)
    if hasattr(xp, "take_along_axis"):
        return xp.take_along_axis(a, labels[..., None], axis=-1)[..., 0]
    classes = xp.arange(a.shape[-1], dtype=labels.dtype)
    return xp.sum(xp.where(labels[..., None] == classes, a, xp.zeros_like(a)), axis=-1)


def subtract_at_labels(xp: Any, a: Any, labels: Any, owned: bool = False) -> Any:
    """``a − e_ℓ``: each row of ``a`` (..., C) with 1 subtracted at its label (``labels`` (...), int64).

    The printing of ``A_c − δ_cℓ`` (see `derive.printing.array`). In NumPy
    (``FAST_NUMPY``) it subtracts in place, ``a[arange(B), ℓ] -= 1`` (through
    one index into the flat array, `_flat_at_labels`), on ``a`` itself when the
    generated code ``owned`` it (a temporary it made and reads no more), else on
    a copy. Other libraries get the functional form, a
    comparison with ``arange(C)``: no library needs item assignment.
    """
    if xp is FAST_NUMPY:
        out = a if owned and a.flags.c_contiguous and a.flags.writeable else np.array(a, order="C")
        out.reshape(-1)[_flat_at_labels(out, labels)] -= 1  # a view: out is C-contiguous
        return out
    classes = xp.arange(a.shape[-1], dtype=labels.dtype)
    return a - xp.astype(labels[..., None] == classes, a.dtype)


@cache
def _off_diagonal_ones(classes: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones((classes, classes), dtype=dtype)
    np.fill_diagonal(ones, 0)
    ones.flags.writeable = False
    return ones


@cache
def _off_diagonal_and_ones(classes: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    return _off_diagonal_ones(classes, dtype), _ones(classes, dtype)


def off_diagonal(xp: Any, classes: int, dtype: Any) -> Any:
    """1 − δ_ij, shape (C, C): ones off the diagonal, zeros on it; read-only in NumPy (made once
    per size and dtype: a generated step uses it as a constant and never writes into it)."""
    if xp is FAST_NUMPY:
        return _off_diagonal_ones(classes, dtype)
    return 1 - xp.eye(classes, dtype=dtype)


def with_diagonal(
    xp: Any, full: Any, diagonal: Any, size: int, axes: tuple[int, int], owned: bool = True
) -> Any:
    """δ_ij D + (1 − δ_ij) O: ``full`` (O, everywhere) with ``diagonal`` (D) where i = j.

    The printing of an expression with a Kronecker delta over two result axes
    (∂S_i/∂z_j = δ_ij S_i Σ_{n≠i} S_n − (1 − δ_ij) S_i S_j): O over all C × C
    entries and D over C, instead of δ·D, (1 − δ)·O and their sum, three
    passes over C × C. ``axes``: the two axes i, j counted from the end (i
    first); ``diagonal`` has the result's axes but j's, ``size`` is C. The same
    numbers as the three passes (there, 0·D and 0·O are 0, added exactly).

    In NumPy D is written over the diagonal of O in place, when O has the
    result's shape and dtype, and the generated code ``owned`` it (a temporary
    it made and reads no more), else over a copy. Otherwise (a result that O
    does not span, other libraries): ``xp.where(I, D, O)``.
    """
    first, second = axes
    if type(full) is np.ndarray and type(diagonal) is np.ndarray and full.dtype is diagonal.dtype:
        shape = full.shape
        if len(shape) >= -first and shape[first] == shape[second] == size:
            flags = full.flags
            if not (owned and flags.writeable and flags.c_contiguous):
                full = np.array(full, order="C")
            # where the diagonal is: a slice of the flattened matrices where i and j are the last
            # two axes, assigned in one step (no view object and no [...]: 0.32 -> 0.21 µs for
            # one matrix of C = 10, where a call takes 5 µs); else a view with one step along i
            # and j as its step along their diagonal
            step = slice(None, None, size + 1)
            if len(shape) == 2:
                target, where = full.ravel(), step
            elif axes == (-2, -1):
                target, where = full.reshape(shape[:-2] + (size * size,)), (Ellipsis, step)
            else:
                strides, i, j = full.strides, len(shape) + first, len(shape) + second
                steps = (strides[i] + strides[j],)
                target = np.ndarray(
                    shape[:j] + shape[j + 1 :],
                    full.dtype,
                    full,
                    0,
                    strides[:i] + steps + strides[i + 1 : j] + strides[j + 1 :],
                )
                where = Ellipsis
            try:
                target[where] = diagonal
                return full
            except ValueError:  # D spans axes O does not (a batch): the result is larger than O
                pass
    if getattr(diagonal, "ndim", 0) >= -second:  # D's own axes reach j's place: make room
        diagonal = xp.expand_dims(diagonal, axis=second)
    gap, after = [1] * (second - first - 1), [1] * (-second - 1)  # axes between i and j, after j
    eye = xp.reshape(xp.eye(size, dtype=xp.bool), (size, *gap, size, *after))
    return xp.where(eye, diagonal, full)


def outer_product(xp: Any, a: Any, b: Any) -> Any:
    """a_i b_j on the last two axes: ``a[..., :, None] * b[..., None, :]``.

    The printing of a product of two vectors on the two result axes (the
    softmax Jacobian's −S_i S_j). For one NumPy vector each, both float32 or
    both float64: the matrix product of m × 1 by 1 × n, the same products (one
    per entry, rounded once) without the setup of NumPy's broadcasting
    iterator: 0.35 against 0.76 µs for C = 10, in a softmax Jacobian of 5 µs.
    A zero product is +0 there (the matrix product adds it to 0) where the
    broadcast product can give −0: equal as numbers. (∞ · 0 warns alike, as
    "invalid value encountered in dot".)
    """
    if (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.ndim == 1 == b.ndim
        and a.dtype is b.dtype
        and a.dtype in _BLAS_FLOATS
    ):
        return a[:, None].dot(b[None, :])
    return a[..., :, None] * b[..., None, :]


_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def vecdot(xp: Any, a: Any, b: Any) -> Any:
    """Σ_k a_k b_k over the last axis, for real arrays: one pass, no a·b temporary.

    The printing of a sum of a product of two arrays (Σ_i g_i x̂_i, Σ_k c_k²). The
    array API's ``vecdot`` where the library has it (NumPy 2, PyTorch through
    array-api-compat, JAX, array-api-strict); else ``sum(a * b)``, the same numbers.
    """
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)
    return xp.sum(a * b, axis=-1)


def _largest_power_of_two(dtype: Any) -> float:
    """The largest power of two ``dtype`` holds: 2¹⁰²³ for float64 (its largest number over
    2 − ε, which rounds to it exactly)."""
    info = np.finfo(np.dtype(str(dtype).rpartition(".")[2]))
    return float(info.max) / (2 - float(info.eps))


_SCALE_WITHOUT_ABS_FROM = 4096  # numbers: measured, 16 x 16 2.9 µs with |x| (4.4 without)

_EXPONENT_BITS = {  # bytes -> (the integer of that width, the exponent field of the float)
    2: (np.int16, np.int16(0x7C00)),
    4: (np.int32, np.int32(0x7F800000)),
    8: (np.int64, np.int64(0x7FF0000000000000)),
}


@cache
def _smallest_normal(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).smallest_normal)


def vector_scale(xp: Any, x: Any, floor: Any) -> Any:
    """For each vector along the last axis, a power of two s near max(max_k |x_k|, floor):
    max_k |x_k|/s < 2 (so every square and sum of x/s is finite), and dividing by it is exact.

    The printing of ``VectorScale`` (derive.sympy_tools). ``floor`` (a positive number) keeps
    s above 0 for a vector of zeros, and above a parameter's own scale (√ε). NumPy keeps the
    exponent bits of the number (s = 2^⌊log₂ m⌋); the array API has no ``frexp``, so elsewhere it is
    2^⌊log₂ m⌋ (within a factor 2 of m whichever way log₂ rounds), kept at most the dtype's
    largest power of two.
    """
    if type(x) is np.ndarray:  # one reduction from the floor up: a few calls for a small array
        least = max(float(floor), _smallest_normal(x.dtype))
        if x.size < _SCALE_WITHOUT_ABS_FROM:  # fewer calls
            magnitude = np.maximum.reduce(np.abs(x), axis=-1, initial=least)
        else:  # no |x| temporary: two reads, half the time of |x| and its maximum at 256 x 768
            largest = np.maximum.reduce(x, axis=-1, initial=least)
            magnitude = np.maximum(largest, -np.minimum.reduce(x, axis=-1, initial=-least))
        # m's exponent bits alone: 2^⌊log₂ m⌋ ≤ m < 2·2^⌊log₂ m⌋ (m is normal: at least tiny)
        integer, mask = _EXPONENT_BITS[magnitude.dtype.itemsize]
        return (np.asarray(magnitude).view(integer) & mask).view(magnitude.dtype)
    if x.shape[-1]:
        magnitude = xp.max(xp.abs(x), axis=-1)
    else:
        magnitude = xp.zeros(x.shape[:-1], dtype=x.dtype)
    magnitude = xp.maximum(magnitude, xp.asarray(floor, dtype=x.dtype))
    tiny = xp.asarray(float(xp.finfo(x.dtype).smallest_normal), dtype=x.dtype)
    magnitude = xp.maximum(magnitude, tiny)  # a floor that rounds to 0 in float16
    exponent = xp.floor(xp.log2(magnitude))
    power = xp.pow(xp.asarray(2.0, dtype=x.dtype), exponent)
    return xp.minimum(power, xp.asarray(_largest_power_of_two(x.dtype), dtype=x.dtype))


def normal_floor(xp: Any, a: Any) -> Any:
    """max(a, the smallest normal number of a's dtype), for a positive divisor that can round
    below it only where its numerator is 0 as well: 0/ν = 0 there, not 0/0 = nan.

    The printing of ``NormalFloor`` (derive.sympy_tools): layer normalisation's σ/s of a
    constant vector of huge entries beside a tiny ε. One ufunc call with a number in NumPy
    (0.8 µs at 256 numbers, where ``where(a == 0, 1, a)`` took 2.8); the smallest normal,
    not the smallest subnormal, since XLA on CPU flushes subnormal numbers to 0.
    """
    if isinstance(a, (np.ndarray, np.generic)):
        return np.maximum(a, _smallest_normal(a.dtype))
    return xp.maximum(a, xp.asarray(float(xp.finfo(a.dtype).smallest_normal), dtype=a.dtype))


_IN_PLACE_FROM = 256  # numbers: a smaller temporary costs less to make than `out=` to parse
# numbers: below, a division costs what a multiplication does, and the test for a power of two
# is most of the call (newton_step at 120 x 3 paid 0.4 µs per division for it)
_RECIPROCAL_FROM = 1024


def in_place(function: Any, a: Any, *others: Any, owned: bool = True) -> Any:
    """``function(a, *others)``, written into ``a`` where NumPy allows it.

    The printing of an operation whose first operand is a temporary the
    generated code made and reads no more (``xp.exp(z - z_max)``, ``e / Σe``,
    ``(s − y) / B``): a NumPy ufunc writes into a NumPy ``a``, saving an array
    and a pass over memory, as a hand-written step does (``np.exp(Z, out=Z)``).
    Only when the result has ``a``'s shape and dtype (``casting="no"``): else,
    and for every other library (no in-place update in array_api_strict or
    JAX), the plain call. Same values either way: the same loop on the same
    numbers. ``owned=False``: ``a`` is an argument its caller did not give away
    (``fresh=False``), so never written. Below ``_IN_PLACE_FROM`` numbers
    the plain call: writing in place saves nothing there, and the keyword
    arguments cost as much as the operation. A division by a power of two
    (``/ B``) is a multiplication by its reciprocal: the same numbers, faster
    (`_as_product`). A division by the int 1 (the mean over one sample) is ``a`` itself when
    owned: x/1 is x exactly, nan and −0 included, and the call saves a pass (0.4 µs in the
    posts' one-sample weight gradient).
    """
    if function is np.divide and owned and type(others[0]) is int and others[0] == 1:
        if type(a) is np.ndarray and a.dtype.kind == "f":  # an int array / 1 is a new float one
            return a
    if type(a) is not np.ndarray or a.size < _IN_PLACE_FROM:
        return function(a, *others)
    if function is np.divide and a.size >= _RECIPROCAL_FROM:
        function, others = _as_product(a, others)
    if owned and type(function) is np.ufunc and a.flags.writeable:
        try:
            return function(a, *others, out=a, casting="no")
        except (TypeError, ValueError):  # a wider dtype, or a larger broadcast shape: not in place
            pass
    return function(a, *others)


def heaviside(xp: Any, z: Any, at_zero: int, dtype: Any, owned: bool = False) -> Any:
    """θ(z) in ``dtype``: 1 where z > 0 (z ≥ 0 when ``at_zero`` is 1), else 0, nan included.

    The printing of ``Heaviside(z, at_zero)``. NumPy compares straight into a
    float array, one pass and no boolean array in between: into z itself when the
    generated code ``owned`` it (a temporary it made and reads no more, as the
    two-layer step's z₁ for ReLU's slope). In a step of 256 x 256 that took the
    slope from 61 to 41 µs. Other libraries cast the comparison, ``xp.astype(z > 0,
    dtype)``: the same numbers.
    """
    if type(z) is np.ndarray and z.dtype == dtype:
        out = z if owned and z.flags.writeable else np.empty_like(z)
        compare = np.greater if at_zero == 0 else np.greater_equal
        return compare(z, 0, out=out, casting="unsafe")  # True, False -> 1.0, 0.0
    return xp.astype(z > 0 if at_zero == 0 else z >= 0, dtype)


_EXACT_RECIPROCAL_BELOW = 2**64  # 1/d is a normal float32 (and float64) for these powers of two


def _as_product(a: np.ndarray, others: tuple) -> tuple[Any, tuple]:
    """``a / d`` as ``a * (1/d)`` where ``d`` is a whole power of two (a batch of 64 or 256
    samples): the same numbers bit for bit (scaling by a power of two is exact, so both round
    the same real number), at a third to half of a division's time (measured at 64 x 1000:
    float64 48 -> 21 µs, float32 18 -> 12 µs, the copy included). Any other divisor, or a
    dtype narrower than float32 (1/d could underflow there), stays a division. Tests an int
    only (a batch's size is one): the test must cost less than it saves."""
    if len(others) == 1:
        (divisor,) = others
        if (
            type(divisor) is int
            and 0 < divisor < _EXACT_RECIPROCAL_BELOW
            and not divisor & (divisor - 1)  # a power of two
            and a.dtype.char in "fdg"
        ):
            return np.multiply, (1.0 / divisor,)
    return np.divide, others


def sum_of_others(xp: Any, a: Any) -> Any:
    """``O[..., i] = Σ_{m≠i} a[..., m]``: every entry of the last axis but the i-th, for each i.

    The printing of Σ_m (1 − δ_im) A_m. Σ_m A_m − A_i would cancel exactly
    where the sum is needed, when A_i is nearly all of it (S_i ≈ 1). The
    array-API route has no subtraction: the sum of the entries before i plus
    the sum of those after it, two cumulative sums, O(C) per row. NumPy takes
    faster routes with the same guarantee (an error of a few ulps of
    Σ_{m≠i} |a_m|, as the cumulative sums'), falling back to the cumulative
    sums where a row is not finite (0 · inf and inf − inf are nan; the
    cumulative sums keep a finite sum of others beside an infinite entry):

    - over a few classes (C ≤ 16, as `_reduce_over_classes`), one matrix
      product with the 0/1 matrix 1 − I: the same terms, added in another
      order, in one call instead of seven;
    - over more, the row's total minus a_i wherever |a_i| is at most half of
      Σ_m |a_m| (then Σ_m |a_m| ≤ 2 Σ_{m≠i} |a_m|, so nothing cancels beyond
      what the others' own sum does), and for the one entry per row that may
      be larger, the sum of its row without it: a few passes, where
      cumulative sums are a sequential loop per row.
    """
    classes = a.shape[-1]
    if xp is FAST_NUMPY and a.dtype.kind == "f" and classes > 0:
        if classes <= _SHORT_AXIS:
            # ndarray.dot and math.isfinite: for a few classes, the calls cost more than the sums
            if a.ndim == 1:  # one row: its sum as a product, half the cost of a reduction
                off, ones = _off_diagonal_and_ones(classes, a.dtype)  # one cached call, not two
                others = a.dot(off)
                total = others.dot(ones)
            else:
                others = a.dot(_off_diagonal_ones(classes, a.dtype))
                total = np.add.reduce(others, axis=None)
            if math.isfinite(total):  # nan or ±inf if any entry is
                return others
        else:
            total = np.add.reduce(a, axis=-1, keepdims=True)
            if math.isfinite(np.add.reduce(total, axis=None)):
                magnitude = np.abs(a)
                dominant = magnitude > 0.5 * np.add.reduce(magnitude, axis=-1, keepdims=True)
                others = np.subtract(total, a)
                if dominant.any():  # at most one entry per row
                    without = np.add.reduce(np.where(dominant, 0, a), axis=-1, keepdims=True)
                    others = np.where(dominant, without, others)
                return others
    before = xp.cumulative_sum(a, axis=-1, include_initial=True)[..., :-1]
    flipped = xp.flip(a, axis=-1)
    after = xp.flip(xp.cumulative_sum(flipped, axis=-1, include_initial=True), axis=-1)[..., 1:]
    return before + after


def _long_numpy_rows(xp: Any, w: Any, a: Any) -> bool:
    """Whether NumPy's routes of the weighted differences apply: w and a NumPy float32 or
    float64 arrays of one shape and dtype, over more than a few classes (over a few, the
    sums of others' one matrix product each is faster)."""
    return (
        xp is FAST_NUMPY
        and type(w) is np.ndarray
        and type(a) is np.ndarray
        and w.shape == a.shape
        and w.dtype == a.dtype
        and w.dtype in _BLAS_FLOATS
        and w.shape[-1] > _SHORT_AXIS
    )


def sum_of_weighted_differences(xp: Any, w: Any, a: Any) -> Any:
    """``D[..., i] = Σ_{m≠i} w[..., m] (a[..., i] − a[..., m])``, for each i of the last axis.

    The printing of Σ_m (1 − δ_im) w_m (a_i − a_m) (the Hessian-vector product's
    factor, w the probabilities). As written, a_i Σ_{m≠i} w_m − Σ_{m≠i} w_m a_m:
    two sums of others, a dozen passes in NumPy. The m = i term is 0, so NumPy
    takes a_i Σ_m w_m − Σ_m w_m a_m, two sums per row and two passes, wherever
    |w_i| is at most half of Σ_m |w_m| (then each term's rounding is a few ulps of
    Σ_{m≠i} |w_m| (|a_i| + |a_m|), as the two sums of others give); the one entry
    per row that may be larger (w_i ≈ 1: the sums would lose 1 − w_i's digits)
    takes its row's other entries, summed without it. Elsewhere (a few classes,
    where a reduction along so short an axis costs more than the sums of others'
    one matrix product each; other libraries, other dtypes, a row that is not
    finite): the two sums of others.
    """
    if _long_numpy_rows(xp, w, a):
        total = np.add.reduce(w, axis=-1, keepdims=True)
        along = np.vecdot(w, a)[..., None]
        # Σ_m w_m a_m is nan or ±inf if any w or a is (0 · inf included): then the sums of others
        if math.isfinite(np.add.reduce(total, axis=None) + np.add.reduce(along, axis=None)):
            if np.minimum.reduce(w, axis=None) >= 0:  # Σ_m |w_m| is the total: no |w| pass
                # 0.5 · total made only if a row may need it: these small arrays' calls were
                # 10 µs of the HVP's 1.9 ms at 64 x 512 x 1000 float32 (one thread, side by side)
                magnitude, half = w, None
                # none over half its row if the largest is at most half the least total (the
                # least of the halves, exactly: halving is monotone)
                least_half = 0.5 * np.minimum.reduce(total, axis=None)
                suspect = np.maximum.reduce(w, axis=None) > least_half
            else:
                magnitude = np.abs(w)
                half = 0.5 * np.add.reduce(magnitude, axis=-1, keepdims=True)
                suspect = True
            differences = np.multiply(a, total)
            np.subtract(differences, along, out=differences)
            if suspect and half is None:
                half = 0.5 * total
            if suspect and (np.maximum.reduce(magnitude, axis=-1, keepdims=True) > half).any():
                dominant = magnitude > half  # at most one entry per row
                others = np.add.reduce(np.where(dominant, 0, w), axis=-1, keepdims=True)
                others_along = np.add.reduce(np.where(dominant, 0, w * a), axis=-1, keepdims=True)
                differences = np.where(dominant, a * others - others_along, differences)
            return differences
    return a * sum_of_others(xp, w) - sum_of_others(xp, w * a)


def is_float16(xp: Any, a: Any) -> bool:
    """Whether ``a`` is float16 in ``xp``'s terms (a library without float16 has none):
    for the functions that compute float16 in float32 (``Kernel.float16_in_float32``)."""
    half = getattr(xp, "float16", None)
    return half is not None and a.dtype == half


def share_of_weighted_differences(xp: Any, w: Any, a: Any, n: Any, owned: bool = False) -> Any:
    """``w_i Σ_{m≠i} w_m (a_i − a_m) / (n (Σ_m w_m)²)`` for each i of the last axis: with
    s = w / Σ_m w_m, ``s_i Σ_{m≠i} s_m (a_i − a_m) / n``, without forming s.

    The printing of that product (the Hessian-vector product's share of the mean, from the
    softmax's unnormalised exponentials w, whose row sums lie in [1, C]): the division by
    Σ_m w_m that would make s, and the division by n, are one per-row divisor, and NumPy
    takes (a_i − ā) w_i / (n Σ_m w_m) with ā = Σ_m w_m a_m / Σ_m w_m: three passes over the
    rows where `sum_of_weighted_differences` and the two divisions take five, and no row
    sums of s (the HVP at 64 x 512 x 1000 float32: 1.27 -> 1.21 ms, side by side).
    a_i − ā is (a_i Σ_m w_m − Σ_m w_m a_m) / Σ_m w_m, the same terms, so it is used where `sum_of_weighted_differences` takes that form (no
    entry over half its row) and the row is finite; elsewhere, and for other libraries,
    that function's result times w / (n (Σ_m w_m)²). ``owned``: a is a temporary the caller
    reads no more, so the result may be written into it.
    """
    if _long_numpy_rows(xp, w, a):  # as `sum_of_weighted_differences`
        total = np.add.reduce(w, axis=-1, keepdims=True)
        along = np.vecdot(w, a)[..., None]
        if (
            math.isfinite(np.add.reduce(total, axis=None) + np.add.reduce(along, axis=None))
            and np.minimum.reduce(w, axis=None) >= 0  # then Σ_m |w_m| is the total
            # no entry over half its row: the largest at most half the least total
            and not np.maximum.reduce(w, axis=None) > 0.5 * np.minimum.reduce(total, axis=None)
        ):
            out = a if owned and a.flags.writeable else None
            out = np.subtract(a, np.divide(along, total, out=along), out=out)
            np.multiply(out, w, out=out)
            return np.divide(out, n * total, out=out)
    total = xp.sum(w, axis=-1, keepdims=True)
    return w * sum_of_weighted_differences(xp, w, a) / (n * (total * total))


def solve(xp: Any, matrix: Any, rhs: Any, penalty: Any = None) -> Any:
    """``xp.linalg.solve(matrix, rhs)``, in float32 for float16, and a singular system named.

    The printing of a dense solve (``DenseSolve``: the Newton system ℋ + l2·I,
    the only one): no library factorises in half precision, so float16 is
    solved in float32 and rounded back. A matrix singular to working precision
    (a penalty l2 too small beside ℋ, e.g. 1e-300, or inputs so large that
    l2 is lost in ℋ's rounding) is a ValueError saying so, instead of the
    library's own error (NumPy's ``LinAlgError``, PyTorch's ``RuntimeError``)
    or a solution made of rounding errors: ℋ is singular (its null directions
    W + a1ᵀ), so the smallest eigenvalue of ℋ + l2·I is l2 itself, and where
    ``penalty`` (l2) is lost in every diagonal entry's rounding the condition
    number exceeds 1/ε. Not checked on a traced l2 (inside ``jax.jit``).
    """
    half = getattr(xp, "float16", None)
    narrow = half is not None and matrix.dtype == half
    if narrow:
        matrix, rhs = xp.astype(matrix, xp.float32), xp.astype(rhs, xp.float32)
    if penalty is not None and not is_traced(penalty) and not is_traced(matrix):
        # NumPy: the diagonal as a view, one pass (this check is a tenth of a small step)
        if xp is FAST_NUMPY:
            diagonal = matrix.diagonal()
            lost = (diagonal - penalty == diagonal).all()
        else:
            diagonal = xp.linalg.diagonal(matrix)
            lost = xp.all(diagonal - penalty == diagonal)
        if bool(lost):
            raise _singular(matrix)
    try:
        solved = xp.linalg.solve(matrix, rhs)
    except (np.linalg.LinAlgError, RuntimeError) as error:
        if "singular" not in str(error).lower():
            raise
        raise _singular(matrix) from error
    return xp.astype(solved, half) if narrow else solved


def _singular(matrix: Any) -> ValueError:
    return ValueError(
        f"l2: the penalised Hessian ℋ + l2·I is singular in {_dtype_name(matrix.dtype)} "
        "(the penalty is lost in the rounding of ℋ); expected a larger l2, or smaller inputs"
    )


_PAIRS_FROM = 128  # D·C from which NumPy takes the pairs: below, one plain product is faster
# numbers, one thread (fastest of 3001 or 301): D·C = 15..28, plain 5-11 µs, pairs 19-35 µs;
# (64, 16, 10) 100 against 103 µs; (256, 16, 10) 328 against 226 µs; (256, 64, 10) 5.8 against 2.5 ms


def symmetric_kronecker_sum(xp: Any, x: Any, w: Any) -> Any:
    """Σ_b x_bj x_bk w_bcd, entry [j, c, k, d], for a ``w`` symmetric in its last two axes.

    The printing of ``SymmetricMatmulSum``: the batch's sum of Kronecker
    products x_b x_bᵀ ⊗ w_b (the Hessian in W, with w_b a sample's logit
    Hessian over B). x is (B, D), w is (B, C, C) with w_bcd = w_bdc; the
    result is (D, C, D, C). Both factors are symmetric, so every entry is one
    of the D(D+1)/2 sample pairs j ≤ k times one of the C(C+1)/2 class pairs
    c ≤ d: in NumPy (float32, float64, D·C ≥ 128) one matrix product of those
    pairs, a quarter of the multiply-adds of all (j, c) by all (k, d), and
    one gather per row j of the result (``_kronecker_rows``); it reads only
    w's entries c ≤ d, so the result is exactly symmetric. Otherwise one
    product of the B x D² outer products by w (B x C²), the middle axes
    swapped (in NumPy copied, so the result is contiguous as the other's).
    """
    numpy = (
        type(x) is np.ndarray
        and type(w) is np.ndarray
        and x.ndim == 2
        and w.ndim == 3
        and x.dtype is w.dtype
        and x.dtype in _BLAS_FLOATS
    )
    if numpy and x.shape[1] * w.shape[-1] >= _PAIRS_FROM:
        return _kronecker_rows(x, w)
    samples, inputs = x.shape
    classes = w.shape[-1]
    outer = xp.reshape(x[:, :, None] * x[:, None, :], (samples, inputs * inputs))
    product = xp.matmul(xp.matrix_transpose(outer), xp.reshape(w, (samples, classes * classes)))
    blocks = xp.permute_dims(xp.reshape(product, (inputs, inputs, classes, classes)), (0, 2, 1, 3))
    return np.ascontiguousarray(blocks) if numpy else blocks


@lru_cache(maxsize=16)  # a few sizes: its last array is 1/D of the result's size
def _pairs_layout(
    inputs: int, classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the pairs j ≤ k and c ≤ d sit, for ``_kronecker_rows``: the first row of each j's
    pairs (j, j..D-1), the row of pair {j, k} for every j, k, the columns c ≤ d of a
    flattened C x C, and for one row j of the result (c, k, d) its entry of the D pair rows
    {j, k} gathered from the product (D x C(C+1)/2, flattened)."""
    starts = np.concatenate(([0], np.cumsum(np.arange(inputs, 0, -1))))
    pair_rows = np.empty((inputs, inputs), dtype=np.intp)
    upper = np.triu_indices(inputs)
    pair_rows[upper] = pair_rows.T[upper] = np.arange(len(upper[0]))
    upper_classes = np.triu_indices(classes)
    pair_columns = np.empty((classes, classes), dtype=np.intp)
    pair_columns[upper_classes] = pair_columns.T[upper_classes] = np.arange(len(upper_classes[0]))
    columns = upper_classes[0] * classes + upper_classes[1]
    row = np.arange(inputs)[None, :, None] * len(columns) + pair_columns[:, None, :]
    return starts, pair_rows, columns, row.reshape(-1)


_KRONECKER_CHUNKS = 4  # more products than this (and their sums) cost more than fresh pairs
# numbers: (256, 64, 10) float32, 2 products 1.30 ms against fresh pairs 1.77 (fastest of 301);
# (120, 5, 3), 14 products: 131 µs against 25 for the plain product


def _kronecker_rows(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``symmetric_kronecker_sum`` in NumPy: the pairs' product, then the result row by row.

    The product (the sample pairs x_bj x_bk, j ≤ k, by w's columns c ≤ d)
    and the sample pairs are written into the result's own memory, the pairs
    after the product (which always fits: a quarter of it or less), as many
    samples at a time as fit there (their products added; in a fresh array
    where that takes more than a few products): no other array of their size
    is made, and the fresh pages are touched once. Row j of the
    result needs the product's rows {j, k}: its own (j, k ≥ j) and those of
    the rows k < j; its memory lies at or after its own rows', so the rows are
    written from the last up, each gathered first (the pairs' rows, then each
    class pair at every c, d: one take each).
    """
    samples, inputs = x.shape
    classes = w.shape[-1]
    starts, pair_rows, columns, row = _pairs_layout(inputs, classes)
    pairs, class_pairs = int(starts[-1]), len(columns)
    result = np.empty((inputs, classes, inputs, classes), dtype=x.dtype)
    memory = result.reshape(-1)
    product = memory[: pairs * class_pairs].reshape(pairs, class_pairs)
    chunk = (memory.size - pairs * class_pairs) // pairs  # samples whose pairs fit after it
    spare = memory[pairs * class_pairs :]
    if chunk * _KRONECKER_CHUNKS < samples:  # not in a few products (C = 1: not one sample)
        chunk, spare = max(samples, 1), np.empty(pairs * samples, dtype=x.dtype)
    class_columns = w.reshape(samples, classes * classes)[:, columns]
    for first in range(0, max(samples, 1), chunk):  # no samples: one empty product, zeros
        last = min(samples, first + chunk)
        sample_pairs = spare[: pairs * (last - first)].reshape(pairs, last - first)
        by_input = np.ascontiguousarray(x[first:last].T)
        for j in range(inputs):
            np.multiply(by_input[j], by_input[j:], out=sample_pairs[starts[j] : starts[j + 1]])
        if first:
            product += sample_pairs @ class_columns[first:last]
        else:
            np.matmul(sample_pairs, class_columns[first:last], out=product)
    gathered = np.empty((inputs, class_pairs), dtype=x.dtype)
    for j in range(inputs - 1, -1, -1):
        np.take(product, pair_rows[j], axis=0, out=gathered, mode="clip")
        np.take(gathered.reshape(-1), row, out=result[j].reshape(-1), mode="clip")
    return result


def _row_tolerance(xp: Any, dtypes: list[Any], classes: int) -> float:
    """How far from 1 a row of C labels may sum: C roundings in float32 or a coarser dtype.

    Never tighter than float32 (C · 1.9e-6): labels often pass through float32
    (PyTorch's default) before they reach float64, and a row that sums to 1
    in float32 is not the mistake this check is for (a row of zeros, two
    classes marked, labels scaled or shifted).
    """
    return 16 * classes * max(_eps(np, np.float32), *(_eps(xp, d) for d in dtypes))


@cache
def _eps(xp: Any, dtype: Any) -> float:
    return float(xp.finfo(dtype).eps)


@cache
def _ones(classes: int, dtype: np.dtype) -> np.ndarray:
    return np.ones(classes, dtype=dtype)


def _in_unit_interval(values: np.ndarray) -> bool:
    """Whether NumPy values all lie in [0, 1] (a nan fails): argmin and argmax, no ufunc."""
    return bool(values.item(values.argmin()) >= 0 and values.item(values.argmax()) <= 1)


def _check_unit_interval(xp: Any, name: str, values: Any) -> None:
    """Values that must lie in [0, 1] (a probability, a binary target); a nan fails."""
    if _empty(values):
        return
    if xp is FAST_NUMPY and _in_unit_interval(values):
        return
    if is_traced(values):  # inside jax.jit: no values to check
        return
    if xp is not FAST_NUMPY and bool(xp.all((values >= 0) & (values <= 1))):
        return
    numbers = _to_numpy(values).astype(np.float64)
    outside = numbers[~((numbers >= 0) & (numbers <= 1))]
    raise ValueError(
        f"{name}: expected values in [0, 1], got {outside.size} outside it, "
        f"from {np.min(outside):.6g} to {np.max(outside):.6g}"
    )


def _rows_pass(rows: np.ndarray, tolerance: float | None) -> bool:
    """Whether NumPy label rows all sum to 1 within the tolerance (a nan fails), fast.

    A matrix-vector product sums short rows faster than ``np.sum`` (2.5 µs
    against 6.5 µs for 256 x 10); `_check_rows` sums NumPy rows the same way,
    so both decide alike. Then the smallest and largest sum, by ``argmin`` and
    ``argmax`` (no ufunc machinery: 0.4 µs each, against 1.1 µs a ufunc call),
    within half the tolerance of 1 (the half covers the rounding of ``sum −
    1`` in `_check_rows`), and only if that fails the test row by row (rows
    just within the tolerance). A nan is its array's argmin and argmax, and
    fails both tests.
    """
    if not rows.size:
        return True
    if rows.dtype.kind != "f":  # integer rows: a sum in uint8 could wrap around to 1
        rows = rows.astype(np.float64)
    if tolerance is None:  # values in [0, 1], not rows
        return _in_unit_interval(rows)
    if not rows.item(rows.argmin()) >= 0:  # a negative entry (or a nan): the full check
        return False
    sums = _row_sums(rows)
    if sums.ndim:
        lowest, highest = sums.item(sums.argmin()), sums.item(sums.argmax())
        if 1 - tolerance / 2 <= lowest and highest <= 1 + tolerance / 2:
            return True
    return bool(np.maximum.reduce(np.abs(sums - 1), axis=None) <= tolerance)


def _row_sums(rows: np.ndarray) -> np.ndarray:
    """The sums of NumPy float rows (..., C), as a matrix-vector product (``ndarray.dot``: no wrapper)."""
    return rows.dot(_ones(rows.shape[-1], rows.dtype))


def _to_numpy(array: Any) -> np.ndarray:
    """A small array of any library as NumPy, for an error message (dask computes it)."""
    if hasattr(array, "detach"):  # a torch tensor that requires grad refuses __array__
        array = array.detach()
    try:
        return np.asarray(array)
    except (TypeError, ValueError, RuntimeError):  # a library with DLPack but no __array__
        return np.from_dlpack(array)


def _check_rows(
    xp: Any, name: str, rows: Any, tolerance: float, what: str = "one-hot or probability rows"
) -> None:
    """Rows (..., C) must each sum to 1 (a nan anywhere in a row fails), with no negative entry.

    A negative entry is refused even in a row that sums to 1 (``[2, -1]``): a
    label row or a softmax output has none, and the formulas that use them
    (−Σ y log S, Σ_{n≠i} S_n for 1 − S_i) assume there is none.
    """
    if _empty(rows):
        return
    sums = _row_sums(rows) if xp is FAST_NUMPY else xp.sum(rows, axis=-1)
    if is_traced(sums):  # inside jax.jit: no values to check
        return
    if bool(xp.max(abs(sums - 1)) <= tolerance):  # max propagates nan, which fails
        if bool(xp.min(rows) >= 0):
            return
        lowest = _to_numpy(xp.min(rows, axis=-1))
        index = np.unravel_index(int(np.argmin(lowest.reshape(-1))), lowest.shape)
        where = (
            f"row {index[0] if len(index) == 1 else tuple(map(int, index))}" if index else "the row"
        )
        raise ValueError(
            f"{name}: expected {what} with no negative entry, but {where} has "
            f"{float(lowest[index]):.9g}"
        )
    sums = _to_numpy(sums)
    good = np.abs(sums - 1) <= tolerance
    index = np.unravel_index(int(np.argmin(good.reshape(-1))), good.shape)
    where = index[0] if len(index) == 1 else tuple(map(int, index))
    row = f"row {where}" if index else "the row"
    raise ValueError(
        f"{name}: expected {what} summing to 1 (within "
        f"{tolerance:.1e}), but {row} sums to {float(sums[index]):.9g}"
    )


# What prepare did to the NumPy calls that passed, keyed by (spec, shape, dtype) per argument:
# a training loop calls with the same shapes every step, and a hit skips the checks (a few
# microseconds). The plan is (casts, rows): the dtype each argument is converted to (None:
# returned as it is) and the (index, tolerance) of each label-rows argument, whose values are
# checked again on every call. Calls with integer class labels converted to one-hot rows are
# not remembered; class labels kept as labels are, with (index, C) checked again on every call.
_Plan = tuple[tuple[Any, ...] | None, tuple[tuple[int, float], ...], tuple[tuple[int, int], ...]]
_PASSED: dict[tuple[tuple[str, tuple[int, ...], Any], ...], _Plan] = {}


def _expected(spec: str, one_hot: bool, batch: tuple[tuple[int, ...], str] | None) -> str:
    """What an argument should have been, for an error message."""
    labels = f", or integer class labels of shape {batch[0]}" if one_hot and batch else ""
    return f"shape {spec}{labels}"


def prepare(xp: Any, **arguments: tuple[Any, str]) -> tuple[Any, ...]:
    """Check each ``name=(value, "(..., D)")`` and return the values as float arrays.

    Sizes with the same name (D, C) must agree across arguments, and batched
    arguments must share one batch shape with at least one sample in it:
    nothing broadcasts. An argument whose spec ends in "one-hot" also takes
    integer class labels (any integer dtype) of the batch shape; given as rows
    (..., C), its rows must sum to 1 (see `check_labels`).

    Types: every value is an array of real numbers. Booleans are refused
    (TypeError), not read as 0 and 1: a mask passed where numbers or labels
    belong is more likely a mistake than a request. The float arguments run
    in their common dtype, promoted by the library's own rules (torch float16
    with float32 gives float32); integer arrays, lists and scalars take that
    dtype, float64 when no argument is a float array. One-hot label rows take
    the values' dtype instead of widening it. Every error is a ValueError
    (shapes, label values) or TypeError (types) whose message starts with the
    argument's name.
    """
    if xp is FAST_NUMPY:  # all NumPy arrays: whether they pass depends on shapes and dtypes only
        key = tuple([(spec, value.shape, value.dtype) for value, spec in arguments.values()])
        plan = _PASSED.get(key)
        if plan is not None:
            casts, rows, label_plan = plan
            if (
                not rows
                or not _check_label_rows
                or all(_rows_pass(arguments[name][0], tolerance) for name, tolerance in rows)
            ):
                if casts is None:
                    result = tuple([value for value, _ in arguments.values()])
                else:
                    result = tuple(
                        [
                            value if dtype is None else value.astype(dtype)
                            for (value, _), dtype in zip(arguments.values(), casts)
                        ]
                    )
                if all(_labels_pass(result[i], classes) for i, classes in label_plan):
                    return result  # else: the checks below name the label out of range
    sizes: dict[str, tuple[int, str]] = {}  # axis -> (size, the argument it came from)
    batch: tuple[tuple[int, ...], str] | None = None  # (shape, argument) of the first batched one
    prepared: dict[str, Any] = {}
    rows: list[tuple[str, float]] = []  # label-rows arguments, with their tolerance
    converted_labels = False
    specs = tuple(spec for _, spec in arguments.values())
    order = _order(tuple(arguments), specs)
    floats = _common_float_dtype(
        xp, [v for v, _ in arguments.values()], [_parse(spec)[2] for spec in specs]
    )
    label_args: list[tuple[int, int]] = []  # class-labels arguments: (position, C)
    for name, batched, axes, one_hot, spec in order:
        array = _as_array(xp, name, arguments[name][0], spec, floats)
        classes_axis = _labels_of(spec)
        if classes_axis is not None:  # integer class labels, kept as int64 labels
            if not _is_dtype(xp, array.dtype, "integral"):
                raise TypeError(
                    f"{name}: expected integer class labels, got dtype {_dtype_name(array.dtype)}"
                )
            shape = tuple(array.shape)
            if batch is None or shape != batch[0]:
                expected = f"{batch[0]} (the batch shape of {batch[1]})" if batch else "(...)"
                raise ValueError(
                    f"{name}: expected integer class labels of shape {expected}, or one-hot "
                    f"rows (..., {classes_axis}), got {shape}"
                )
            if classes_axis not in sizes:
                raise ValueError(f"{name}: class labels need the number of classes {classes_axis}")
            classes = sizes[classes_axis][0]
            prepared[name] = _checked_labels(xp, name, array, classes)
            label_args.append((list(arguments).index(name), classes))
            continue
        _check_dtype(
            xp, name, array, "integer class labels or one-hot rows" if one_hot else "real numbers"
        )
        shape = tuple(array.shape)

        if one_hot and batch and shape == batch[0]:
            if not xp.isdtype(array.dtype, "integral"):
                rows = spec.removesuffix("one-hot").strip()
                raise TypeError(
                    f"{name}: expected integer class labels of shape {shape}, or one-hot "
                    f"rows of shape {rows}, got dtype {_dtype_name(array.dtype)}"
                )
            if axes[-1] not in sizes:
                raise ValueError(f"{name}: class labels need the number of classes {axes[-1]}")
            prepared[name] = _one_hot(xp, name, array, sizes[axes[-1]][0], floats)
            converted_labels = True
            continue
        if len(shape) < len(axes) or (not batched and len(shape) != len(axes)):
            raise ValueError(f"{name}: expected {_expected(spec, one_hot, batch)}, got {shape}")
        for axis, size in zip(axes, shape[len(shape) - len(axes) :]):
            known = sizes.setdefault(axis, (size, name))
            if known[0] != size:
                raise ValueError(
                    f"{name}: expected {_expected(spec, one_hot, batch)} with "
                    f"{axis} = {known[0]} as in {known[1]}.shape, got {shape}"
                )
            if size == 0:
                raise ValueError(f"{name}: expected shape {spec} with {axis} > 0, got {shape}")
        if batched:
            leading = shape[: len(shape) - len(axes)]  # may hold no sample: an empty result
            if batch is None:
                batch = (leading, name)
            elif batch[0] != leading:
                raise ValueError(
                    f"{name}: expected batch shape {batch[0]} as in {batch[1]} "
                    f"({_expected(spec, one_hot, batch)}), got {shape}"
                )
        if one_hot or _value_check(spec) == "rows":  # rows summing to 1: labels, or a softmax's
            float_rows = _is_float(xp, array)
            dtypes = [floats, array.dtype] if float_rows else [floats]
            tolerance = _row_tolerance(xp, dtypes, shape[-1])
            rows.append((name, tolerance))
            if _check_label_rows:
                what = (
                    "one-hot or probability rows" if one_hot else "probability rows (a softmax's)"
                )
                values = array if float_rows else xp.astype(array, floats)
                _check_rows(xp, name, values, tolerance, what)
        elif _value_check(spec) == "unit":
            rows.append((name, None))
            if _check_label_rows:
                _check_unit_interval(xp, name, array)
        prepared[name] = array if array.dtype == floats else xp.astype(array, floats)
    result = tuple(prepared[name] for name in arguments)
    if xp is FAST_NUMPY and not converted_labels:
        if len(_PASSED) >= 1024:
            _PASSED.clear()
        casts = tuple(None if p is v else p.dtype for p, (v, _) in zip(result, arguments.values()))
        _PASSED[key] = (
            casts if any(c is not None for c in casts) else None,
            tuple(rows),
            tuple(label_args),
        )
    return result


# -- the fused check of a repeated NumPy call ---------------------------------------------
#
# A training loop calls a generated function with NumPy arrays of the same shapes and dtypes
# every step. After the step's matrix products every Python-level call costs several times
# what it costs in a tight loop, so such a call gets one runtime call instead of four
# (namespace, is_class_labels, prepare and its lookup): one dict lookup on the shapes and
# dtypes, then only the checks that depend on the values (label range, row sums).

# (function, then shape and dtype per value) -> what to redo: (arguments, labels, form, casts,
# rows, class labels); form None for a call that passed without a plan (integer labels turned
# into one-hot rows): such a call takes the full checks every time.
_SEEN: dict[tuple, tuple] = {}
_SEEN_MOST = 1024  # a program with more distinct calls than this starts over
_NDARRAY = np.ndarray

# One row of at most this many values is checked as Python floats (``tolist``, ``min``, ``sum``)
# rather than by argmin and a product with ones: measured 0.37 against 0.60 µs for 5 values,
# 0.50 against 0.61 for 10, even at 16.
_LISTED_MOST = 12


def checked_numpy(
    function: str,
    arguments: tuple[tuple[str, str], ...],
    labels: tuple[str, str, int, str] | None,
    *values: Any,
) -> tuple[Any, ...] | None:
    """The arguments checked, if all are NumPy arrays whose shapes and dtypes passed before; else None.

    ``function`` names the caller (a string: its hash is kept, a tuple's is
    not); ``arguments`` are the (name, spec) pairs it gives `prepare`;
    ``labels`` is (name, like, axes, spec) for a function with a labels form:
    it takes that form when ``is_class_labels(name, like, axes)``, with the
    argument's spec replaced by ``spec``. Returns the values as `prepare`
    does, after ``(labels form?,)`` for such a function. None (the caller
    then runs its full checks, which raise the errors) for anything else: a
    value that is not exactly ``np.ndarray``, shapes or dtypes not seen
    passing, a label out of range, a row that does not sum to 1.
    """
    # the key built without a loop: most functions take one to three arrays (``_NDARRAY``: a
    # global, not ``np.ndarray``'s two lookups; this path is a third of a small call's checks)
    if len(values) == 1:
        (a,) = values
        if type(a) is not _NDARRAY:
            return None
        key = (function, a.shape, a.dtype)
    elif len(values) == 2:
        a, b = values
        if type(a) is not _NDARRAY or type(b) is not _NDARRAY:
            return None
        key = (function, a.shape, a.dtype, b.shape, b.dtype)
    elif len(values) == 3:
        a, b, c = values
        if type(a) is not _NDARRAY or type(b) is not _NDARRAY or type(c) is not _NDARRAY:
            return None
        key = (function, a.shape, a.dtype, b.shape, b.dtype, c.shape, c.dtype)
    else:
        key = [function]
        for value in values:
            if type(value) is not _NDARRAY:
                return None
            key.append(value.shape)
            key.append(value.dtype)
        key = tuple(key)
    seen = _SEEN.get(key)
    if seen is None or seen[0] is not arguments or seen[1] is not labels:
        return _first_numpy_call(key, arguments, labels, values)
    _, _, form, casts, rows, class_labels = seen
    if form is None:
        return None
    prepared = values
    if casts is not None:
        prepared = tuple([v if d is None else v.astype(d) for v, d in zip(values, casts)])
    for index, classes in class_labels:  # int64 after the casts, none of them empty
        # argmax and argmin: no ufunc machinery and no new array (a view costs as much as a call)
        wide = prepared[index]
        if not (wide.item(wide.argmax()) < classes and wide.item(wide.argmin()) >= 0):
            return None
    if rows and _check_label_rows:  # as `_rows_pass`, inlined: a call costs as much as a check
        for index, converted, listed, ones, low, high in rows:  # none of them empty
            checked = (prepared if converted else values)[index]
            if listed:  # one short row: Python floats
                entries = checked.tolist()
                total = sum(entries)  # exact enough: within half the tolerance, as below
                if not min(entries) >= 0:  # a negative entry (a nan fails the sum's test)
                    return None
                if ones is None:  # values in [0, 1]: a nan makes the total nan
                    if not (max(entries) <= 1 and total == total):
                        return None
                elif not low <= total <= high:  # a nan, or a row not within half the tolerance
                    return None
                continue
            if not checked.item(checked.argmin()) >= 0:  # a negative entry, or a nan
                return None
            if ones is None:  # values in [0, 1]
                if not checked.item(checked.argmax()) <= 1:
                    return None
                continue
            sums = checked.dot(ones)  # as `_row_sums`
            if checked.ndim == 1:  # one row: its sum, a NumPy scalar (a nan fails both tests)
                if not (low <= sums <= high):
                    return None
            elif not (low <= sums.item(sums.argmin()) and sums.item(sums.argmax()) <= high):
                return None  # a nan, or a row not within half the tolerance: the full check
    return form + prepared


def _first_numpy_call(
    key: tuple, arguments: tuple, labels: tuple | None, values: tuple
) -> tuple[Any, ...] | None:
    """`checked_numpy` for shapes and dtypes not seen yet: the full checks, and what to redo.

    Any error returns None: the caller's own checks then raise it, as they
    would without this function.
    """
    names = [name for name, _ in arguments]
    specs = [spec for _, spec in arguments]
    form: tuple = ()
    if labels is not None:
        name, like, axes, labels_spec = labels
        form = (is_class_labels(values[names.index(name)], values[names.index(like)], axes),)
        if form[0]:
            specs[names.index(name)] = labels_spec
    named = {name: (value, spec) for name, value, spec in zip(names, values, specs)}
    try:
        result = prepare(FAST_NUMPY, **named)
    except Exception:
        return None
    passed = _PASSED.get(tuple([(s, v.shape, v.dtype) for v, s in zip(values, specs)]))
    if len(_SEEN) >= _SEEN_MOST:
        _SEEN.clear()
    if passed is None:  # integer labels made one-hot: nothing to replay
        _SEEN[key] = (arguments, labels, None, None, (), ())
        return form + result
    casts, rows, class_labels = passed
    # what the shapes (the key) decide is decided here: an empty array has nothing to check,
    # one short row is read as Python floats
    class_labels = tuple((i, classes) for i, classes in class_labels if values[i].size)
    row_plans = []
    for name, tolerance in rows:  # integer rows are checked as floats, as prepare checks them
        index = names.index(name)
        value = values[index]
        if not value.size:
            continue
        converted = value.dtype.kind != "f"
        listed = value.ndim == 1 and value.size <= _LISTED_MOST
        if tolerance is None:  # values in [0, 1]
            row_plans.append((index, converted, listed, None, 0.0, 1.0))
            continue
        checked = (result if converted else values)[index]
        ones = _ones(checked.shape[-1], checked.dtype)
        row_plans.append((index, converted, listed, ones, 1 - tolerance / 2, 1 + tolerance / 2))
    rows = tuple(row_plans)
    _SEEN[key] = (arguments, labels, form, casts, rows, class_labels)
    return form + result


def scalar(name: str, value: Any) -> float:
    """A scalar argument (a temperature, a penalty) as a Python float, or a named error.

    A Python float takes the precision of the arrays it meets, so float32
    stays float32 whatever the scalar's own type was.
    """
    dtype = getattr(value, "dtype", None)
    if isinstance(value, bool) or dtype is not None and "bool" in str(dtype):
        raise TypeError(f"{name}: expected a real number, got a boolean")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r:.40}")
    if isinstance(value, complex) or dtype is not None and "complex" in str(dtype):
        raise TypeError(f"{name}: expected a real number, got a complex one")
    if getattr(value, "shape", ()) != ():
        raise ValueError(
            f"{name}: expected a single number (shape ()), got shape {tuple(value.shape)}"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        if is_traced(value):  # a number JAX traces (jax.jit): kept as it is, checked outside jit
            return value
        raise TypeError(
            f"{name}: expected a real number, got {type(value).__name__} {value!r:.40}"
        ) from None
    if number != number:
        raise ValueError(f"{name}: expected a real number, got nan")
    return number


# -- keyword-only options (PyTorch's cross-entropy options) -------------------------------


def option_index(name: str, value: Any) -> int | None:
    """A class index option (``ignore_index``): None, or an integer (not a bool)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int (a class index) or None, got {value!r:.40}")
    return int(value)


def option_fraction(name: str, value: Any) -> float:
    """A number in [0, 1] (``label_smoothing``) as a Python float, or a named error."""
    number = scalar(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1], got {number}")
    return number


def option_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (``reduction``), or a named error."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {choices}, got {value!r:.40}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r:.40}")
    return value


def _class_weights(xp: Any, name: str, weight: Any, classes: int, dtype: Any, like: Any) -> Any:
    """Class weights (C,) of non-negative finite numbers in ``dtype``; ones for None."""
    if weight is None:
        return xp.ones(classes, dtype=dtype)
    spec = f"({classes},)"
    array = _as_array(xp, name, weight, spec, dtype)
    try:
        array_api_compat.array_namespace(array, like)
    except TypeError:
        raise TypeError(
            f"{name}: expected an array of the same library as the logits, got {type(weight).__name__}"
        ) from None
    _check_dtype(xp, name, array, "real numbers")
    if tuple(array.shape) != (classes,):
        raise ValueError(
            f"{name}: expected shape (C,) with C = {classes}, got {tuple(array.shape)}"
        )
    array = xp.astype(array, dtype)
    valid = xp.all(xp.isfinite(array)) & xp.all(array >= 0)
    if is_traced(valid):  # inside jax.jit: no values to check
        return array
    if not bool(valid):
        raise ValueError(
            f"{name}: expected non-negative finite class weights, got {_to_numpy(array)}"
        )
    return array


def class_targets(
    xp: Any, weight: Any, ignore_index: int | None, **arguments: tuple[Any, str]
) -> tuple[Any, ...]:
    """`prepare` for a function with cross-entropy options; the targets are the one-hot argument.

    Returns the prepared arguments, the targets as rows (integer class labels
    become one-hot rows, an ignored sample's row zeros), then the class
    weights (C,) (ones for None), each sample's ``keep`` (0 where the label is
    ``ignore_index``, else 1) and its share of the mean's denominator (PyTorch:
    the weight of its class for class labels, 1 for probability rows).
    ``ignore_index`` applies to class labels only: with probability rows a
    non-negative one is an error, a negative one changes nothing (as in
    PyTorch).
    """
    names = list(arguments)
    target = next(n for n in names if _parse(arguments[n][1])[2])
    like_name = next(n for n in names if n != target and _parse(arguments[n][1])[0])
    like, like_spec = arguments[like_name]
    classes_axis = _parse(arguments[target][1])[1][-1]
    labels = arguments[target][0]
    if isinstance(labels, np.generic) or (
        not _is_array(labels) and not isinstance(labels, (str, bytes, dict, type(None)))
    ):
        numbers = np.asarray(labels)  # a list of class labels is class labels, as an array is
        if numbers.dtype.kind in "iu":
            labels = xp.asarray(numbers)
            arguments = {**arguments, target: (labels, arguments[target][1])}
    shaped = like if _is_array(like) else types.SimpleNamespace(shape=np.shape(like))
    class_labels = is_class_labels(labels, shaped, len(_parse(like_spec)[1]))
    if class_labels:
        kept = None if ignore_index is None else _not_ignored(xp, labels, ignore_index)
        if kept is not None:
            labels = xp.where(kept, labels, xp.zeros_like(labels))
        spec = f"(...) labels of {classes_axis}"
        prepared = dict(zip(names, prepare(xp, **{**arguments, target: (labels, spec)})))
        labels = prepared[target]
        owner = next(n for n in names if n != target and classes_axis in _parse(arguments[n][1])[1])
        classes = prepared[owner].shape[-1]
        dtype = prepared[like_name].dtype
        rows = xp.astype(labels[..., None] == xp.arange(classes, dtype=labels.dtype), dtype)
        keep = xp.ones(labels.shape, dtype=dtype) if kept is None else xp.astype(kept, dtype)
        prepared[target] = rows if kept is None else rows * keep[..., None]
    else:
        if ignore_index is not None and ignore_index >= 0:
            raise ValueError(
                f"ignore_index: only class-index targets can be ignored; {target} holds "
                f"probability rows (as in PyTorch, a negative ignore_index changes nothing), "
                f"got {ignore_index}"
            )
        prepared = dict(zip(names, prepare(xp, **arguments)))
        classes, dtype = prepared[target].shape[-1], prepared[target].dtype
        keep = xp.ones(prepared[target].shape[:-1], dtype=dtype)
    weights = _class_weights(xp, "weight", weight, classes, dtype, prepared[like_name])
    # PyTorch's "mean" divides by the weights of the targets' classes (Σ_c w_c y_c of a one-hot
    # row), but by the number of samples for probability rows.
    shares = xp.sum(prepared[target] * weights, axis=-1) if class_labels else keep
    return (*prepared.values(), weights, keep, shares)


def _not_ignored(xp: Any, labels: Any, ignore_index: int) -> Any:
    """``labels != ignore_index`` for integer labels of any dtype; None where nothing is ignored.

    An ``ignore_index`` the labels' dtype cannot hold matches no label: compared
    in the labels' own dtype it would wrap (-100 is 156 in uint8, and 255 is -1
    in int8, an invalid label that would then pass as ignored).
    """
    bounds = xp.iinfo(labels.dtype)
    if not bounds.min <= ignore_index <= bounds.max:
        return None
    return labels != ignore_index


def reduce_samples(
    xp: Any, values: Any, shares: Any, reduction: str, gradient: bool, targets: str = "y"
) -> Any:
    """Apply ``reduction`` ("none", "sum", "mean") to per-sample losses, or to a gradient.

    A loss (``gradient`` False) of shape (...) is summed over every sample
    ("sum"), and divided by the mean's denominator Σ shares ("mean"). A
    gradient of the reduced loss is each sample's own gradient ("none",
    "sum"), divided by the denominator ("mean"). A mean whose denominator is 0
    (every sample ignored, or weighing 0) is a ValueError naming the targets;
    PyTorch returns nan.
    """
    if reduction == "none" or (gradient and reduction == "sum"):
        return values
    total = values if gradient else xp.sum(values)
    if reduction == "sum":
        return total
    denominator = xp.sum(shares)
    if not is_traced(denominator) and not bool(denominator > 0):  # traced: nan, as PyTorch
        raise ValueError(
            f"{targets}: reduction 'mean' over no samples: every target is ignored (ignore_index) "
            f"or its class weighs 0, so the mean's denominator is {float(denominator)} "
            "(PyTorch returns nan)"
        )
    return total / denominator


# -- overflow that gives the right result ---------------------------------------------------
# z − max z overflows to −∞ where the logits span more than the dtype's range (float64
# [1.7e308, −1.7e308], float16 [60000, −60000]), and e^−∞ = 0 is then the right term: the
# result is right and NumPy's "overflow encountered" warning is noise. `np.errstate` costs
# about 1.4 µs a call (a Python context manager), as much as the checks of a small call; the
# context variable it sets costs a tenth of that, set directly. A NumPy without it (before 2.0)
# gets `np.errstate`.

try:
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj
except ImportError:  # pragma: no cover (NumPy 1.x)
    _extobj_contextvar = _make_extobj = None

_OVERFLOW_IGNORED: dict[Any, Any] = {}  # the caller's error state -> the same, overflow ignored

if _extobj_contextvar is not None:  # NumPy's error state, read and set directly
    _get_error_state = _extobj_contextvar.get
    _set_error_state = _extobj_contextvar.set
    _reset_error_state = _extobj_contextvar.reset


def _ignoring(made: dict[Any, Any], current: Any, **ignored: str) -> Any:
    """The error state ``current`` with the ``ignored`` settings changed, every other setting
    the caller's; remembered in ``made`` (one per caller's state)."""
    quiet = made.get(current)
    if quiet is None:
        if len(made) >= 64:  # each np.errstate block makes a new state
            made.clear()
        token = _extobj_contextvar.set(current)
        try:
            quiet = made[current] = _make_extobj(**ignored)
        finally:
            _extobj_contextvar.reset(token)
    return quiet


def _overflow_ignored(current: Any) -> Any:
    """The error state ``current`` with overflow ignored: every other setting the caller's."""
    return _ignoring(_OVERFLOW_IGNORED, current, over="ignore")


_Arguments = ParamSpec("_Arguments")
_Result = TypeVar("_Result")


def quiet_overflow(function: Callable[_Arguments, _Result]) -> Callable[_Arguments, _Result]:
    """``function`` with NumPy's overflow warnings silenced during its calls (no other warning).

    Typed to keep ``function``'s signature: a type checker still refuses a wrong argument.

    For a generated function whose derivation says why an overflow inside it
    gives the right result (`derive.steps.Kernel.overflow`). Divide-by-zero
    and invalid-value warnings, and the caller's other error settings
    (``np.seterr``, ``np.errstate``), are kept. PyTorch and JAX never warn.
    """
    if _extobj_contextvar is None:  # pragma: no cover (NumPy 1.x)

        @wraps(function)
        def quiet(*arguments: _Arguments.args, **options: _Arguments.kwargs) -> _Result:
            with np.errstate(over="ignore"):
                return function(*arguments, **options)

        return quiet

    get, set_state, reset = _get_error_state, _set_error_state, _reset_error_state  # locals: fast

    @wraps(function)
    def quiet(*arguments: _Arguments.args, **options: _Arguments.kwargs) -> _Result:
        current = get()
        token = set_state(_OVERFLOW_IGNORED.get(current) or _overflow_ignored(current))
        try:
            return function(*arguments, **options)
        finally:
            reset(token)

    return quiet


def subtract_maximum(xp: Any, values: Any, maximum: Any, owned: bool = True) -> Any:
    """``values − maximum``, the largest of the values along their axis (z − max z): NumPy's
    overflow warning is not raised for this one subtraction.

    The printing of x_i − max_k x_k. Every difference is ≤ 0, so its only overflow is one
    below the dtype's range, which rounds to −∞, the right value (and e^−∞ = 0 the right
    term of a softmax). Any other overflow in the function still warns: only this
    operation runs with overflow ignored, under the caller's other settings. It costs
    about 0.2 µs, a third of silencing a whole call (`quiet_overflow`). ``owned`` as
    `in_place`'s.
    """
    if _extobj_contextvar is None:  # pragma: no cover (NumPy 1.x)
        with np.errstate(over="ignore"):
            return in_place(xp.subtract, values, maximum, owned=owned)
    current = _get_error_state()
    token = _set_error_state(_OVERFLOW_IGNORED.get(current) or _overflow_ignored(current))
    try:
        if type(values) is np.ndarray and values.size < _IN_PLACE_FROM:
            return xp.subtract(values, maximum)  # `in_place`'s own first case, one call less
        return in_place(xp.subtract, values, maximum, owned=owned)
    finally:
        _reset_error_state(token)


_DIVISION_IGNORED: dict[Any, Any] = {}  # the caller's error state -> the same, x/0 and 0/0 ignored


def quiet_divide(xp: Any, a: Any, b: Any, owned: bool = True) -> Any:
    """``a / b``: NumPy's divide-by-zero, invalid and overflow warnings are not raised for this
    one division.

    The printing of ``QuietQuotient`` (derive.sympy_tools): the temperature's shifted logits
    (z_k/2 − m/2)/T, each ≤ 0, where T > 0 rounds to 0 in the logits' dtype (below its
    smallest number): every quotient but the maximum's is then −∞, its limit, and the
    maximum's 0/0 is replaced by 0 where the code selects it. Every other operation of the
    function warns as NumPy does. ``owned`` as `in_place`'s.
    """
    if _extobj_contextvar is None:  # pragma: no cover (NumPy 1.x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return in_place(xp.divide, a, b, owned=owned)
    current = _get_error_state()
    quiet = _DIVISION_IGNORED.get(current) or _ignoring(
        _DIVISION_IGNORED, current, divide="ignore", invalid="ignore", over="ignore"
    )
    token = _set_error_state(quiet)
    try:
        return in_place(xp.divide, a, b, owned=owned)
    finally:
        _reset_error_state(token)


# -- functions outside the array-API standard ------------------------------------------------
# The one place they are registered: the array printer prints ``name(xp, x)`` for each name
# here, the code generator imports it from this module, and each library gets its own.

SPECIAL_FUNCTIONS = ("erf", "erfc")


def _special(name: str):
    """``name(xp, x)`` elementwise on NumPy (SciPy, or Python's math), PyTorch or JAX, in
    x's dtype."""

    def apply(xp: Any, x: Any) -> Any:
        if array_api_compat.is_torch_array(x):
            return getattr(sys.modules["torch"].special, name)(x)
        if array_api_compat.is_jax_array(x):
            return getattr(sys.modules["jax"].scipy.special, name)(x)
        if not isinstance(x, (np.ndarray, np.generic)):  # another array-API library: via NumPy
            host = (
                np.from_dlpack(x) if hasattr(x, "__dlpack__") else np.asarray(x)
            )  # Dask: no dlpack
            return xp.asarray(apply(np, host))
        x = np.asarray(x)
        try:
            import scipy.special
        except ImportError:  # NumPy alone: Python's math, entry by entry
            import math

            return np.vectorize(getattr(math, name), otypes=[x.dtype])(x)
        return getattr(scipy.special, name)(x)

    apply.__name__ = name
    apply.__doc__ = f"The {name} function, elementwise, for any supported array library."
    return apply


erf = _special("erf")
erfc = _special("erfc")
