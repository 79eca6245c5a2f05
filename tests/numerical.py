"""Central finite differences, and a comparison that shows both sides on failure."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def central_jacobian(
    f: Callable[[np.ndarray], np.ndarray], at: np.ndarray, step: float = 1e-6, floor: float = 1.0
) -> np.ndarray:
    """∂f/∂at by central differences: shape f(at).shape + at.shape.

    The step is ``step * max(floor, |at|)``: lower the floor for arguments
    that are small by nature (probabilities), where log(S) bends sharply.
    """
    at = np.asarray(at, dtype=float)
    out = np.asarray(f(at))
    jacobian = np.zeros(out.shape + at.shape)
    for index in np.ndindex(at.shape):
        h = step * max(floor, abs(at[index]))
        forward, backward = at.copy(), at.copy()
        forward[index] += h
        backward[index] -= h
        jacobian[(...,) + index] = (np.asarray(f(forward)) - np.asarray(f(backward))) / (2 * h)
    return jacobian


def assert_close(analytic, numeric, rtol: float = 1e-6, atol: float = 1e-8, what: str = "") -> None:
    """Like np.testing.assert_allclose, but names the worst entry with both values."""
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    assert analytic.shape == numeric.shape, f"{what}: shapes {analytic.shape} vs {numeric.shape}"
    unequal_nan = np.isnan(analytic) != np.isnan(numeric)
    assert not unequal_nan.any(), (
        f"{what}: nan at {np.argwhere(unequal_nan)[:3].tolist()} on one side only"
    )
    assert not np.isnan(numeric).all() or not numeric.size, f"{what}: every value is nan"
    error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if analytic.size and error.max() > 0:
        worst = np.unravel_index(np.argmax(error), error.shape)
        raise AssertionError(
            f"{what}: analytic and finite-difference values disagree at {tuple(map(int, worst))}: "
            f"analytic {float(analytic[worst])!r}, numeric {float(numeric[worst])!r} "
            f"({int((error > 0).sum())} of {error.size} entries off)"
        )
