"""A derivation as data: definitions, ordered steps, identities to prove, and
the functions to generate from its results.

Pages, proofs and code are all views of a :class:`Derivation`; nothing here
prints or writes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp
from sympy import Matrix


@dataclass(frozen=True)
class Definition:
    """``name = expression``, shown before the steps (e.g. S_i = e^{z_i}/Σ e^{z_k})."""

    name: sp.Expr
    expression: sp.Expr
    text: str = ""


@dataclass(frozen=True)
class Step:
    """One step: a rule applied to an expression, and what SymPy returned."""

    title: str  # what the step does: "Quotient rule"
    rule: str  # why it is allowed, one or two sentences of Markdown
    expression: sp.Expr  # what the rule is applied to
    result: sp.Expr  # what SymPy returned


ExplicitCheck = Callable[[int, int], tuple[Matrix, Matrix]]
"""Given (D, C), the derivative computed directly and the shortcut, as matrices."""


@dataclass(frozen=True)
class Identity:
    """A shortcut that must equal the long chain-rule product.

    ``long`` is evaluated (sums of deltas collapsed, ``assumptions`` applied)
    and must simplify to ``shortcut`` in index form, for symbolic sizes;
    ``explicit`` writes the same derivative out with explicit matrices.
    """

    name: str
    claim: str  # one sentence: what is proved
    long: sp.Expr
    shortcut: sp.Expr
    assumptions: dict[sp.Expr, sp.Expr] = field(default_factory=dict)  # e.g. {Σ y_t: 1}
    explicit: ExplicitCheck | None = None
    explicit_sizes: tuple[tuple[int, int], ...] | None = None  # (D, C); None: all of proofs.EXPLICIT_SIZES
    long_title: str = "The chain-rule product"
    shortcut_title: str = "the shortcut"


@dataclass(frozen=True)
class Param:
    """An argument of a generated function, bound to a base of the model."""

    name: str  # the Python name: "s"
    base: sp.IndexedBase  # what it stands for: S
    axes: tuple[str, ...]  # its sizes after any batch axes: ("C",)
    batched: bool = True  # whether it takes leading batch axes
    doc: str = ""
    one_hot: bool = False  # also takes integer class labels of the batch shape


@dataclass(frozen=True)
class Assign:
    """``target[indices] = expression`` inside a generated function."""

    target: sp.Basic  # IndexedBase, or Symbol for one number per sample
    indices: tuple[sp.Idx, ...]
    expression: sp.Expr


@dataclass(frozen=True)
class Kernel:
    """A function to generate: its arguments, body and returned expression."""

    name: str
    summary: str  # the docstring's first line
    params: tuple[Param, ...]
    body: tuple[Assign, ...]
    returns: Assign  # the target names the result in the docstring
    returns_doc: str
    math: sp.Expr | None = None  # shown in the docstring: returns.target = math
    matrix_form: sp.Expr | None = None  # the same result with matrices, for the page
    flatten_batch: bool = False  # reshape batched params to (B, ...): batch index b
    notes: str = ""  # more docstring text (layout, the posts' names)

    @property
    def equation(self) -> tuple[sp.Expr, sp.Expr]:
        """What the function computes, ``lhs = rhs``, for its docstring and page."""
        lhs = self.returns.target
        if isinstance(lhs, sp.IndexedBase):
            lhs = lhs[self.returns.indices]
        return lhs, self.math if self.math is not None else self.returns.expression


@dataclass(frozen=True)
class Example:
    """A worked number on the page: our function on the posts' inputs."""

    title: str
    call: str  # Python, evaluated with the generated functions and derive.posts
    printed: str  # the name in derive.posts of what the post printed
    text: str = ""


@dataclass(frozen=True)
class Erratum:
    """Where a source is wrong or misleading, and (``call``) the correct result."""

    text: str
    call: str = ""


@dataclass(frozen=True)
class Derivation:
    """Everything one page and one generated module are made from."""

    name: str  # "softmax_jacobian": the module, page and registry key
    title: str
    summary: str
    definitions: tuple[Definition, ...]
    steps: tuple[Step, ...]
    identities: tuple[Identity, ...]
    kernels: tuple[Kernel, ...]
    examples: tuple[Example, ...] = ()
    errata: tuple[Erratum, ...] = ()
    uses: tuple[str, ...] = ()  # derivations whose functions the kernels call
