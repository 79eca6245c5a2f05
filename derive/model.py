"""The softmax output layer as SymPy expressions.

Two forms of the same layer:

* index form, with symbolic sizes: ``C`` classes, ``D`` inputs, and indices
  that range over them (what the derivations and the generated code use);
* explicit matrices for a fixed small size (what the proofs check against).

Conventions follow the posts: ``W`` has shape (D, C), ``z = Wᵀx``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy import Idx, IndexedBase, Matrix, Sum


def size(name: str) -> sp.Symbol:
    """A named dimension (C, D, H, K, B, ...): a positive integer symbol."""
    return sp.Symbol(name, integer=True, positive=True)


def index(name: str, over: sp.Symbol) -> Idx:
    """An index ranging over 1..``over``, as the maths counts."""
    return Idx(name, (1, over))


C = size("C")  # number of classes
D = size("D")  # number of inputs

x = IndexedBase("x", shape=(D,))  # the input
W = IndexedBase("W", shape=(D, C))  # the weights, inputs x classes
z = IndexedBase("z", shape=(C,))  # the logits, z = Wᵀx
S = IndexedBase("S", shape=(C,))  # the softmax output
y = IndexedBase("y", shape=(C,))  # the one-hot label


def class_index(name: str) -> Idx:
    """An index over the classes, 1..C."""
    return index(name, C)


def input_index(name: str) -> Idx:
    """An index over the inputs, 1..D."""
    return index(name, D)


def summation(c: Idx) -> sp.Expr:
    """z_c = Σ_d W_dc x_d: one entry of z = Wᵀx."""
    d = input_index("d")
    return Sum(W[d, c] * x[d], (d, 1, D))


def softmax(i: Idx, logits: IndexedBase = z) -> sp.Expr:
    """S_i = exp(z_i) / Σ_k exp(z_k)."""
    k = class_index("k")
    return sp.exp(logits[i]) / Sum(sp.exp(logits[k]), (k, 1, C))


def cross_entropy(probabilities: IndexedBase = S) -> sp.Expr:
    """XE = −Σ_i y_i log S_i, for a one-hot y."""
    i = class_index("i")
    return -Sum(y[i] * sp.log(probabilities[i]), (i, 1, C))


@dataclass(frozen=True)
class ExplicitLayer:
    """The layer written out entry by entry for D inputs and C classes.

    Indices are 0-based here, as in NumPy: ``W[j, c]`` is input j, class c.
    """

    x: Matrix  # (D, 1)
    W: Matrix  # (D, C)
    y: Matrix  # (C, 1), symbols: one-hot-ness is an assumption, not a fact
    z: Matrix  # (C, 1)
    S: Matrix  # (C, 1)
    XE: sp.Expr

    @property
    def weights(self) -> list[sp.Symbol]:
        """W's entries in the posts' class-major order (``W.T.ravel()``)."""
        return list(self.W.T)


def explicit_vector(name: str, n: int, **assumptions) -> Matrix:
    """A column of numbered symbols name_0 .. name_{n-1}."""
    return Matrix(sp.symbols(f"{name}_0:{n}", real=True, **assumptions))


def explicit_softmax(logits: Matrix) -> Matrix:
    """softmax of a column of explicit logits: the one explicit softmax of the project."""
    exps = logits.applyfunc(sp.exp)
    return exps / sum(exps)


def explicit_labels(n_classes: int) -> Matrix:
    """Label symbols with Σ y = 1 imposed: the last is 1 minus the others."""
    free = list(sp.symbols(f"y_0:{n_classes - 1}", real=True))
    return Matrix(free + [1 - sum(free)])


def explicit_layer(n_inputs: int, n_classes: int) -> ExplicitLayer:
    """The layer with numbered symbols x_0.., W_0_0.., y_0.."""
    xs = Matrix(n_inputs, 1, sp.symbols(f"x_0:{n_inputs}", real=True))
    Ws = Matrix(n_inputs, n_classes, lambda j, c: sp.Symbol(f"W_{j}_{c}", real=True))
    ys = Matrix(n_classes, 1, sp.symbols(f"y_0:{n_classes}", real=True))
    zs = Ws.T * xs
    Ss = explicit_softmax(zs)
    XE = -sum(ys[c] * sp.log(Ss[c]) for c in range(n_classes))
    return ExplicitLayer(x=xs, W=Ws, y=ys, z=zs, S=Ss, XE=XE)
