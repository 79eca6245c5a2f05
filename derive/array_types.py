"""The types in the generated functions' signatures, for type checkers (nothing here runs per call).

``Array`` is what every array-API library's arrays have in common: a shape, a
dtype, a number of axes, and arithmetic (a NumPy scalar has them too). It is a structural type (a
Protocol), so ``numpy.ndarray``, ``torch.Tensor``, ``jax.Array``, Dask's and
array-api-strict's arrays all satisfy it without naming this package; a
generated function returns one of the library it was given. ``ArrayLike`` is
what the functions take: an ``Array``, or numbers NumPy makes an array of
(a number, nested lists or tuples of numbers).

    from derive.array_types import Array
    from derive.generated import softmax

    def probabilities(z: Array) -> Array:
        return softmax(z)
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias, runtime_checkable


@runtime_checkable
class Array(Protocol):
    """An array of any array-API library (NumPy, PyTorch, JAX, Dask, array-api-strict, CuPy)."""

    @property
    def shape(self) -> tuple[Any, ...]: ...  # ints; Dask's may hold nan for an unknown size

    @property
    def dtype(self) -> Any: ...  # each library has its own dtype objects

    @property
    def ndim(self) -> int: ...

    def __add__(self, other: Any, /) -> Any: ...

    def __mul__(self, other: Any, /) -> Any: ...


Numbers: TypeAlias = float | list["Numbers"] | tuple["Numbers", ...]
"""A number (an int is one too), or nested lists or tuples of numbers: what NumPy makes an
array of. Not ``numpy.typing.ArrayLike``, which takes strings and bytes too."""

ArrayLike: TypeAlias = Array | Numbers
"""An argument: an array of any array-API library (a NumPy scalar is one), or numbers."""
