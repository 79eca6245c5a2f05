"""The numbers the three posts print, copied by hand from ../shared/posts/.

Stephen Oman, "The Softmax Function Derivative", Parts 1-3 (2019-2020). Each
printed array is kept as the text the post shows; the posts truncate rather
than round, so ``agrees`` compares to the digits shown. The tests and the site
read from here; nothing in this module is computed by the code under test.
"""

from __future__ import annotations

import re

import numpy as np

# -- inputs (Part 2; Part 3 continues with them) ---------------------------------
X = np.array([0.1, 0.5, 0.4])
W = np.array([
    [0.1, 0.2, 0.3, 0.4, 0.5],
    [0.6, 0.7, 0.8, 0.9, 0.1],
    [0.11, 0.12, 0.13, 0.14, 0.15],
])
Y = np.zeros(5)
Y[2] = 1  # "picking the third class for example purposes"

# -- Part 1 ------------------------------------------------------------------------
# Printed as "the softmax output", but it does not sum to 1: it is a random input
# (and not the one behind the S values below: their softmax differs). Erratum.
PART1_INPUT = np.array([0.97337094, 0.85251098, 0.62495691, 0.63957056, 0.6969253])
# S[0..3] as printed in full by the `div` examples; S[4] only appears with 8 digits
# (in the diag printout), so it is taken as 1 - the others: S sums to 1.
_S = [0.16205870737014744, 0.1530827392322831, 0.22661095862407418, 0.226342511074585]
PART1_S = np.array(_S + [1 - sum(_S)])
PART1_S_DIAG = """
[0.16205871, 0.15308274, 0.22661096, 0.22634251, 0.23190508]
"""
PART1_DIV = """
[0.13579568273566436, 0.12964841418142392, 0.1752584320555523,
 -0.024808390840665155, -0.034690226286226845, -0.051291693411991836]
"""  # S0(1-S0), S1(1-S1), S2(1-S2), -S0 S1, -S1 S2, -S2 S3
PART1_JACOBIAN = """
[[ 0.13579568, -0.02480839, -0.03672428, -0.03668077, -0.03758224],
 [-0.02480839,  0.12964841, -0.03469023, -0.03464913, -0.03550067],
 [-0.03672428, -0.03469023,  0.17525843, -0.05129169, -0.05255223],
 [-0.03668077, -0.03464913, -0.05129169,  0.17511158, -0.05248998],
 [-0.03758224, -0.03550067, -0.05255223, -0.05248998,  0.17812512]]
"""

# -- Part 2 ------------------------------------------------------------------------
PART2_DS = """
[[ 0.154465 -0.038856 -0.041425 -0.044162 -0.030020]
 [-0.038856  0.162106 -0.044162 -0.047081 -0.032004]
 [-0.041425 -0.044162  0.1699015 -0.050193 -0.034120]
 [-0.044162 -0.047081 -0.050193  0.177813 -0.036375]
 [-0.030020 -0.032004 -0.034120 -0.036375  0.132520]]
"""
# DZ[i*D + j, k] = dz_k/dW_ji: rows are the weights, class-major.
PART2_DZ = """
[[0.1 0.  0.  0.  0. ] [0.5 0.  0.  0.  0. ] [0.4 0.  0.  0.  0. ]
 [0.  0.1 0.  0.  0. ] [0.  0.5 0.  0.  0. ] [0.  0.4 0.  0.  0. ]
 [0.  0.  0.1 0.  0. ] [0.  0.  0.5 0.  0. ] [0.  0.  0.4 0.  0. ]
 [0.  0.  0.  0.1 0. ] [0.  0.  0.  0.5 0. ] [0.  0.  0.  0.4 0. ]
 [0.  0.  0.  0.  0.1] [0.  0.  0.  0.  0.5] [0.  0.  0.  0.  0.4]]
"""
# DL = DS . DZ^T, printed twice: the long product (with "0.0810", a lost digit:
# erratum) and the shortcut (with "0.08105").
_DL = """
[[ 0.01544  0.07723  0.06178 -0.00388 -0.01942 -0.01554 -0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766 -0.00300 -0.01501 -0.01200]
 [-0.00388 -0.01942 -0.01554  0.01621  {entry}  0.06484 -0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00320 -0.01600 -0.01280]
 [-0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766  0.01699  0.08495  0.06796 -0.00501 -0.02509 -0.02007 -0.00341 -0.01706 -0.01364]
 [-0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00501 -0.02509 -0.02007  0.01778  0.08890  0.07112 -0.00363 -0.01818 -0.01455]
 [-0.00300 -0.01501 -0.01200 -0.00320 -0.01600 -0.01280 -0.00341 -0.01706 -0.01364 -0.00363 -0.01818 -0.01455  0.01325  0.06626  0.05300]]
"""
PART2_DL_LONG = _DL.format(entry="0.0810 ")
PART2_DL_SHORTCUT = _DL.format(entry="0.08105")

# -- Part 3 ------------------------------------------------------------------------
PART3_S = "[0.19091352 0.20353145 0.21698333 0.23132428 0.15724743]"  # h, the hypothesis
PART3_XE = "1.5279347484961026"
PART3_DXE = "[-0. -0. -4.60864 -0. -0. ]"
# np.dot(DXE, DL_shortcut).reshape(W.shape) and delta_w.reshape(W.shape): the
# class-major gradient vector, read here in row-major order (erratum: not W's layout).
PART3_WEIGHT_GRAD = """
[[ 0.01909135  0.09545676  0.07636541  0.02035314  0.10176572]
 [ 0.08141258 -0.07830167 -0.39150833 -0.31320667  0.02313243]
 [ 0.11566214  0.09252971  0.01572474  0.07862371  0.06289897]]
"""

_NUMBER = re.compile(r"-?\d+\.?\d*(?:e-?\d+)?")


def numbers(printed: str) -> list[str]:
    """The numbers of a printed array, as text, in reading order."""
    return _NUMBER.findall(printed)


def values(printed: str) -> np.ndarray:
    """The printed numbers as a flat float array."""
    return np.array([float(n) for n in numbers(printed)])


def decimals(printed: str) -> np.ndarray:
    """How many digits after the point each printed number shows."""
    return np.array([len(n.split(".")[1]) if "." in n else 0 for n in numbers(printed)])


def worst_disagreement(actual, printed: str) -> tuple[int, float, str] | None:
    """The first entry of ``actual`` (flattened) that the printed text does not show.

    A printed number with n decimals stands for any value within one unit of
    its last digit (the posts truncate; rounding would be within half a unit).
    Returns (position, actual value, printed text), or None if all agree.
    """
    actual = np.asarray(actual, dtype=float).ravel()
    shown = numbers(printed)
    if actual.size != len(shown):
        return (-1, float(actual.size), f"{len(shown)} numbers printed")
    for position, (value, text) in enumerate(zip(actual, shown)):
        places = len(text.split(".")[1]) if "." in text else 0
        if abs(value - float(text)) >= 10.0**-places:
            return position, float(value), text
    return None


def agrees(actual, printed: str) -> bool:
    """Whether ``actual`` agrees with every printed digit."""
    return worst_disagreement(actual, printed) is None
