"""The numbers the three posts print, copied by hand from ../shared/posts/.

Stephen Oman, "The Softmax Function Derivative", Parts 1-3 (2019-2020). Each
printed array is kept as the text the post shows (a `Printed`, which is a
`str`), with where it was printed and how its digits were cut:

- ``"numpy"``: NumPy's default print (8 decimals, rounded, trailing zeros
  dropped, so ``0.`` and ``0.1`` are exact to 8 decimals too);
- ``"repr"``: Python's ``print`` of a float, all its digits (rounded);
- ``"truncated"``: NumPy's output shortened by hand to fewer digits, cut
  toward zero (0.154465 where the value is 0.15446554...). Entries the author
  left as NumPy printed them (``-0.``) are read as NumPy's.

`agrees` compares a result with a printed array under that rule; nothing in
this module is computed by the code under test. Import-light: NumPy only.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Self

import numpy as np

HOW = ("numpy", "repr", "truncated")
HOW_TEXT = {  # how a printout's digits were cut, said on the page beside it
    "numpy": "NumPy printed it with its default precision: 8 decimals, rounded to the nearest "
    "(trailing zeros dropped), so each entry is within half a unit of its 8th decimal.",
    "repr": "Python printed each number in full (the shortest text that reads back as the same "
    "float), so it is rounded only in its last digit.",
    "truncated": "The author shortened NumPy's output by hand, cutting digits off toward zero "
    "(0.154465 where the value is 0.15446554...), so the true value lies between the "
    "printed number and one unit of its last digit further from zero.",
}


class Printed(str):
    """The text of one printout, with where the post printed it and how (see `HOW`)."""

    where: str
    how: str

    def __new__(cls, text: str, where: str, how: str) -> Self:
        if how not in HOW:
            raise ValueError(f"how: expected one of {HOW}, got {how!r}")
        printed = super().__new__(cls, text)
        printed.where, printed.how = where, how
        return printed


# -- inputs (Part 2; Part 3 continues with them) ---------------------------------
X = np.array([0.1, 0.5, 0.4])  # Part 2, "The Softmax Layer": x
W = np.array(
    [  # Part 2: W, shape (D, C) = (3 inputs, 5 classes)
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.6, 0.7, 0.8, 0.9, 0.1],
        [0.11, 0.12, 0.13, 0.14, 0.15],
    ]
)
Y = np.zeros(5)
Y[2] = 1  # Part 3: "picking the third class for example purposes"

# -- Part 1 ------------------------------------------------------------------------
# Erratum: printed as "the softmax output", but it does not sum to 1 (it sums to
# 3.787): it looks like the random input x = np.random.random([5]), and from another
# run than the S values below (its softmax differs from them).
PART1_INPUT = Printed(
    "array([0.97337094, 0.85251098, 0.62495691, 0.63957056, 0.6969253 ])",
    "Part 1, 'The Softmax Function': the array called the output",
    "numpy",
)
# S[0..3] as the `div` examples print them, in full (Part 1, "Calculating the
# derivative"). S[4] is printed only to 8 decimals (PART1_S_DIAG), so it is taken
# as 1 - the others, which S must be; that agrees with the printed 0.23190508.
_S = [0.16205870737014744, 0.1530827392322831, 0.22661095862407418, 0.226342511074585]
PART1_S = np.array(_S + [1 - sum(_S)])
# The `div` values of the six example lines, in order:
# S0(1-S0), S1(1-S1), S2(1-S2), -S0 S1, -S1 S2, -S2 S3.
PART1_DIV = Printed(
    """
[0.13579568273566436, 0.12964841418142392, 0.1752584320555523,
 -0.024808390840665155, -0.034690226286226845, -0.051291693411991836]
""",
    "Part 1, 'Calculating the derivative': the six `div :` lines",
    "repr",
)
PART1_S_DIAG = Printed(
    """
array([[0.16205871, 0.        , 0.        , 0.        , 0.        ],
       [0.        , 0.15308274, 0.        , 0.        , 0.        ],
       [0.        , 0.        , 0.22661096, 0.        , 0.        ],
       [0.        , 0.        , 0.        , 0.22634251, 0.        ],
       [0.        , 0.        , 0.        , 0.        , 0.23190508]])
""",
    "Part 1: np.diag(S)",
    "numpy",
)
# np.tile(S_vector, S.shape[0]) and its transpose: S_i along row i, then along column i.
PART1_S_MATRIX = Printed(
    """
[[0.16205871 0.16205871 0.16205871 0.16205871 0.16205871]
 [0.15308274 0.15308274 0.15308274 0.15308274 0.15308274]
 [0.22661096 0.22661096 0.22661096 0.22661096 0.22661096]
 [0.22634251 0.22634251 0.22634251 0.22634251 0.22634251]
 [0.23190508 0.23190508 0.23190508 0.23190508 0.23190508]]
""",
    "Part 1: print(S_matrix)",
    "numpy",
)
PART1_S_MATRIX_T = Printed(
    """
[[0.16205871 0.15308274 0.22661096 0.22634251 0.23190508]
 [0.16205871 0.15308274 0.22661096 0.22634251 0.23190508]
 [0.16205871 0.15308274 0.22661096 0.22634251 0.23190508]
 [0.16205871 0.15308274 0.22661096 0.22634251 0.23190508]
 [0.16205871 0.15308274 0.22661096 0.22634251 0.23190508]]
""",
    "Part 1: the transposed S_matrix",
    "numpy",
)
PART1_JACOBIAN = Printed(
    """
array([[ 0.13579568, -0.02480839, -0.03672428, -0.03668077, -0.03758224],
       [-0.02480839,  0.12964841, -0.03469023, -0.03464913, -0.03550067],
       [-0.03672428, -0.03469023,  0.17525843, -0.05129169, -0.05255223],
       [-0.03668077, -0.03464913, -0.05129169,  0.17511158, -0.05248998],
       [-0.03758224, -0.03550067, -0.05255223, -0.05248998,  0.17812512]])
""",
    "Part 1: np.diag(S) - (S_matrix * np.transpose(S_matrix))",
    "numpy",
)

# -- Part 2 ------------------------------------------------------------------------
PART2_DS = Printed(
    """
[[ 0.154465 -0.038856 -0.041425 -0.044162 -0.030020]
 [-0.038856  0.162106 -0.044162 -0.047081 -0.032004]
 [-0.041425 -0.044162  0.1699015 -0.050193 -0.034120]
 [-0.044162 -0.047081 -0.050193  0.177813 -0.036375]
 [-0.030020 -0.032004 -0.034120 -0.036375  0.132520]]
""",
    "Part 2: DS = sm_dir(h)",
    "truncated",
)
# DZ[i*D + j, k] = dz_k/dW_ji: one row per weight, class-major; one column per z_k.
PART2_DZ = Printed(
    """
[[0.1 0.  0.  0.  0. ] [0.5 0.  0.  0.  0. ] [0.4 0.  0.  0.  0. ]
 [0.  0.1 0.  0.  0. ] [0.  0.5 0.  0.  0. ] [0.  0.4 0.  0.  0. ]
 [0.  0.  0.1 0.  0. ] [0.  0.  0.5 0.  0. ] [0.  0.  0.4 0.  0. ]
 [0.  0.  0.  0.1 0. ] [0.  0.  0.  0.5 0. ] [0.  0.  0.  0.4 0. ]
 [0.  0.  0.  0.  0.1] [0.  0.  0.  0.  0.5] [0.  0.  0.  0.  0.4]]
""",
    "Part 2, 'Derivative of Z': DZ = z_dir(Z, W, x)",
    "numpy",
)
# DL[t, i*D + j] = dS_t/dW_ji = DS . DZ^T, printed twice: the long product, where
# the entry [1, 4] lost a digit ("0.0810": erratum), and the shortcut ("0.08105").
_DL = """
[[ 0.01544  0.07723  0.06178 -0.00388 -0.01942 -0.01554 -0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766 -0.00300 -0.01501 -0.01200]
 [-0.00388 -0.01942 -0.01554  0.01621  {entry}  0.06484 -0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00320 -0.01600 -0.01280]
 [-0.00414 -0.02071 -0.01657 -0.00441 -0.02208 -0.01766  0.01699  0.08495  0.06796 -0.00501 -0.02509 -0.02007 -0.00341 -0.01706 -0.01364]
 [-0.00441 -0.02208 -0.01766 -0.00470 -0.02354 -0.01883 -0.00501 -0.02509 -0.02007  0.01778  0.08890  0.07112 -0.00363 -0.01818 -0.01455]
 [-0.00300 -0.01501 -0.01200 -0.00320 -0.01600 -0.01280 -0.00341 -0.01706 -0.01364 -0.00363 -0.01818 -0.01455  0.01325  0.06626  0.05300]]
"""
PART2_DL_LONG = Printed(
    _DL.format(entry="0.0810 "), "Part 2: DL = np.dot(DS, np.transpose(DZ))", "truncated"
)
PART2_DL_SHORTCUT = Printed(
    _DL.format(entry="0.08105"),
    "Part 2, 'Shortcut!': np.transpose(l_dir_shortcut(W, h, x))",
    "truncated",
)

# -- Part 3 ------------------------------------------------------------------------
# h = softmax(W^T x) is printed only here (Part 2's printout of h was lost).
PART3_S = Printed(
    "[0.19091352 0.20353145 0.21698333 0.23132428 0.15724743]",
    "Part 3, 'Cross Entropy Loss Function': S, the hypothesis h",
    "numpy",
)
PART3_XE = Printed("1.5279347484961026", "Part 3: xe = x_entropy(y, S)", "repr")
PART3_DXE = Printed(
    "[-0. -0. -4.60864 -0. -0. ]", "Part 3, 'Cross Entropy Derivative': xe_dir(y, S)", "truncated"
)
# Erratum: the class-major gradient vector passed through reshape(W.shape), so its
# entries do not sit where their weights sit; read it in row-major order as the
# vector, i.e. weight_grad(x, W, y).T.ravel(). Printed twice, identically.
PART3_WEIGHT_GRAD = Printed(
    """
[[ 0.01909135  0.09545676  0.07636541  0.02035314  0.10176572]
 [ 0.08141258 -0.07830167 -0.39150833 -0.31320667  0.02313243]
 [ 0.11566214  0.09252971  0.01572474  0.07862371  0.06289897]]
""",
    "Part 3: np.dot(DXE, DL_shortcut).reshape(W.shape) and delta_w.reshape(W.shape)",
    "numpy",
)

# -- reading and comparing -----------------------------------------------------------
_TOKEN = re.compile(r"\[|\]|-?\d+\.?\d*(?:e[-+]?\d+)?")
_NUMPY_DECIMALS = 8  # np.get_printoptions()["precision"], the default


def numbers(printed: str) -> list[str]:
    """The numbers of a printout, as text, in reading order."""
    return [token for token in _TOKEN.findall(printed) if token not in "[]"]


def array(printed: str) -> np.ndarray:
    """The printout as a float array, its shape read from the brackets."""
    stack: list[list] = [[]]
    for token in _TOKEN.findall(printed):
        if token == "[":
            stack.append([])
        elif token == "]":
            row = stack.pop()
            stack[-1].append(row)
        else:
            stack[-1].append(float(token))
    (outer,) = stack
    return np.array(outer[0] if len(outer) == 1 else outer, dtype=float)


def decimals(printed: str) -> np.ndarray:
    """How many digits after the point each printed number shows, in reading order."""
    return np.array([len(n.partition(".")[2]) for n in numbers(printed)])


def bounds(printed: str) -> tuple[np.ndarray, np.ndarray]:
    """For each printed number p, the range [low, high] the true value lies in.

    NumPy and repr round: within half a unit of the last digit, either side.
    A hand-shortened number is cut toward zero: the true value is p or further
    from zero, by less than one unit. A few ulps of slack on each side allow
    for another order of the same float operations. A plain `str` (no `how`)
    gets the widest honest reading: within one unit of its last digit.
    """
    how = getattr(printed, "how", None)
    texts = numbers(printed)
    p = np.array([float(t) for t in texts])
    places = decimals(printed)
    if how is None:
        unit = 10.0 ** -places.astype(float)
        return p - unit, p + unit
    # NumPy drops trailing zeros, and the author kept its bare zeros ("-0."): a
    # number NumPy printed is exact to its 8 decimals, however few it shows.
    cut = (how == "truncated") & (places > 0)
    places = np.where(cut | (how == "repr"), places, _NUMPY_DECIMALS)
    unit = 10.0 ** -places.astype(float)
    negative = np.array([t.startswith("-") for t in texts])
    low = np.where(cut, np.where(negative, p - unit, p), p - unit / 2)
    high = np.where(cut, np.where(negative, p, p + unit), p + unit / 2)
    slack = 4 * np.spacing(np.abs(p))
    return low - slack, high + slack


class Disagreement(NamedTuple):
    """The worst entry of a comparison: where, our value, the post's text, the allowed range."""

    index: tuple[int, ...]
    ours: float
    printed: str
    low: float
    high: float

    def __str__(self) -> str:
        return (
            f"entry {self.index}: ours {self.ours!r}, the post printed {self.printed} "
            f"(so the value lies in [{self.low!r}, {self.high!r}])"
        )


def worst_disagreement(actual, printed: str) -> Disagreement | None:
    """The entry of ``actual`` furthest outside what the printout allows, or None.

    Both are read in reading (row-major) order; their sizes must match. The
    index is given in the printout's shape.
    """
    ours = np.asarray(actual, dtype=float).ravel()
    texts = numbers(printed)
    shape = array(printed).shape
    if ours.size != len(texts):
        raise ValueError(
            f"actual: expected {len(texts)} numbers as printed {shape}, "
            f"got {ours.size} (shape {np.shape(actual)})"
        )
    low, high = bounds(printed)
    outside = np.maximum(low - ours, ours - high)
    outside[np.isnan(ours)] = np.inf
    worst = int(np.argmax(outside))
    if outside[worst] <= 0:
        return None
    index = tuple(int(i) for i in np.unravel_index(worst, shape))
    return Disagreement(
        index, float(ours[worst]), texts[worst], float(low[worst]), float(high[worst])
    )


def agrees(actual, printed: str) -> bool:
    """Whether ``actual`` agrees with every digit of the printout."""
    return worst_disagreement(actual, printed) is None
