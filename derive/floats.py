"""Facts about floating point that pages state in prose, computed rather than typed.

A page that says "e^z overflows once z > 709.78" gets 709.78 from NumPy's
float64, and "4e^{-600} ≈ 1.06 · 10^{-260}" from mpmath, so the sentence
cannot drift from the number it names.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np


def overflow_exponent(dtype: str = "float64", digits: int = 2) -> str:
    """The largest z whose e^z is finite in ``dtype``, rounded down: "709.78" for float64."""
    largest = math.log(float(np.finfo(dtype).max))
    scale = 10**digits
    return f"{math.floor(largest * scale) / scale:.{digits}f}"


def latex_scientific(value, digits: int = 3) -> str:
    """``value`` (a number or an mpmath expression's value) as LaTeX: 1.06 \\cdot 10^{-260}."""
    mantissa, exponent = mpmath.nstr(mpmath.mpf(value), digits, min_fixed=1, max_fixed=0).split("e")
    return f"{mantissa} \\cdot 10^{{{int(exponent)}}}"


def smallest_normal(dtype: str = "float64", digits: int = 2) -> str:
    """The smallest positive normal number of ``dtype``, as LaTeX: 2.2 \\cdot 10^{-308}."""
    return latex_scientific(float(np.finfo(dtype).smallest_normal), digits)


def epsilon_ratio_log2(coarse: str = "float32", fine: str = "float64") -> int:
    """log₂ of how many times coarser ``coarse`` rounds than ``fine``: 29 for float32/float64."""
    ratio = float(np.finfo(coarse).eps) / float(np.finfo(fine).eps)
    exponent = round(math.log2(ratio))
    if 2.0**exponent != ratio:
        raise ValueError(f"the machine epsilons of {coarse} and {fine} differ by no power of 2")
    return exponent


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def unicode_power(base: int, exponent: int) -> str:
    """``base`` to the ``exponent`` in plain text, for captions: 2²⁹."""
    return f"{base}{str(exponent).translate(_SUPERSCRIPTS)}"


def unicode_scientific(value: float) -> str:
    """``value`` to one digit in plain text, for captions: 5·10⁸."""
    exponent = math.floor(math.log10(abs(value)))
    return f"{round(value / 10**exponent)}·{unicode_power(10, exponent)}"
