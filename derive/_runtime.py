"""Argument checks shared by the generated functions (hand-written, not generated).

Every generated function starts with ``namespace`` (which array library?) and
``prepare`` (are the shapes what the derivation assumes?), so a wrong shape
raises a ValueError naming the argument instead of broadcasting silently into
a wrong result.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np


def namespace(*arguments: Any) -> Any:
    """The array-API namespace of the arguments; NumPy for lists and scalars."""
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


def _parse(spec: str) -> tuple[bool, tuple[str, ...]]:
    """``"(..., D)"`` -> (batched, ("D",))."""
    parts = [p.strip() for p in spec.strip("()").split(",") if p.strip()]
    batched = bool(parts) and parts[0] == "..."
    return batched, tuple(parts[1:] if batched else parts)


def prepare(xp: Any, **arguments: tuple[Any, str]) -> tuple[Any, ...]:
    """Check each ``name=(value, "(..., D)")`` and return the values as float arrays.

    Sizes with the same name (D, C) must agree across arguments, and batched
    arguments must share one batch shape: nothing broadcasts.
    """
    sizes: dict[str, tuple[int, str]] = {}
    batch: tuple[tuple[int, ...], str] | None = None
    prepared = []
    for name, (value, spec) in arguments.items():
        array = xp.asarray(value)
        if not xp.isdtype(array.dtype, "real floating"):
            if not xp.isdtype(array.dtype, ("integral", "bool")):
                raise TypeError(f"{name}: expected real numbers, got dtype {array.dtype}")
            array = xp.astype(array, xp.float64)
        batched, axes = _parse(spec)
        shape = tuple(array.shape)
        if len(shape) < len(axes) or (not batched and len(shape) != len(axes)):
            raise ValueError(f"{name}: expected shape {spec}, got {shape}")
        core = shape[len(shape) - len(axes):]
        for axis, size in zip(axes, core):
            if axis in sizes and sizes[axis][0] != size:
                known, source = sizes[axis]
                raise ValueError(
                    f"{name}: expected shape {spec} with {axis} = {known} as in {source}, "
                    f"got {shape}"
                )
            sizes.setdefault(axis, (size, f"{name}.shape"))
            if size == 0:
                raise ValueError(f"{name}: expected shape {spec} with {axis} > 0, got {shape}")
        if batched:
            leading = shape[: len(shape) - len(axes)]
            if batch is None:
                batch = (leading, name)
            elif batch[0] != leading:
                raise ValueError(
                    f"{name}: expected batch shape {batch[0]} as in {batch[1]} "
                    f"(shape {spec}), got {shape}"
                )
        prepared.append(array)
    return tuple(prepared)
