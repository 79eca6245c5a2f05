"""LaTeX for the site: SymPy's printer, with indices shown the way the posts write them."""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

NAMES = {
    # what an elementwise kernel returns, named for its code: the function's value, upright
    "relu_z": r"\operatorname{relu}(z)",
    "softplus_z": r"\operatorname{softplus}(z)",
    "tanh_z": r"\tanh(z)",
    # arrays named for the code, and what the pages call them (derive/notation.py NAMES)
    "log_s": r"(\log S)",  # log_s[i]: (log S)_i, not log with base s
    "others": "O",  # O_c = Σ_{n≠c} S_n
    "others_along": "Q",  # Q_c = Σ_{n≠c} S_n U_n
    "hessian": r"\mathcal{H}",  # H is the number of hidden units
    "HV": r"(\mathcal{H} V)",  # the Hessian times V
    "inputs_outer": r"(x x^T)",  # each sample's x_b x_bᵀ
    "logit_hessians": r"(\mathcal{H}_z / B)",  # each sample's logit Hessian, over B
    "share": r"(S/B)",  # each sample's share of the mean, S_bc / B
    # layer normalisation's named values (derive/derivations/layer_norm.py)
    "var": r"\sigma^2",  # the variance
    "std": r"\sigma",  # √(σ² + ε), the scale
    "xhat": r"\hat{x}",
    "eps": r"\varepsilon",
}
"""Symbols (and arrays, matrices) by name -> their LaTeX, where SymPy's would be italic letters."""


class DeriveLatexPrinter(LatexPrinter):
    """Prints ``Idx('j', (1, D))`` as ``j`` (not with its range),
    ∂S_t/∂W_jc as a fraction of the two indexed symbols, and the names in ``NAMES``
    as that table writes them."""

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr.name in NAMES:
            return NAMES[expr.name]
        return super()._print_Symbol(expr, style=style)

    def _print_Idx(self, expr: sp.Idx) -> str:
        return self._print(expr.label)

    def _print_Derivative(self, expr: sp.Derivative) -> str:
        if len(expr.variable_count) == 1 and expr.variable_count[0][1] == 1:
            ((variable, _),) = expr.variable_count
            function = self._print(expr.expr)
            if not isinstance(expr.expr, (sp.Indexed, sp.Symbol)):
                function = rf"\left({function}\right)"
            return rf"\frac{{\partial {function}}}{{\partial {self._print(variable)}}}"
        return super()._print_Derivative(expr)

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """A matrix of ones as the bold 1 of the pages: a row of ones is the column's transpose
        (SymPy prints a bare 1, which reads as the number)."""
        return r"\mathbf{1}^{T}" if expr.shape[0] == 1 and expr.shape[1] != 1 else r"\mathbf{1}"

    def _print_DiagMatrix(self, expr: sp.DiagMatrix) -> str:
        return rf"\operatorname{{diag}}\left({self._print(expr.args[0])}\right)"

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        base = self._print(expr.base)
        if "_" in base:  # z_{1}: braced, or its index would be a second subscript (a TeX error)
            base = f"{{{base}}}"
        indices = "".join(self._print(i) for i in expr.indices)
        return f"{base}_{{{indices}}}"


def latex(expr: sp.Basic, **settings) -> str:
    """LaTeX for ``expr``; a KroneckerDelta prints as ``\\delta_{i j}``.

    Remembered by object: a long-lived process (derive.warm, under ``mkdocs serve``)
    keeps every unchanged derivation's expressions, and prints each once.
    """
    if settings or not isinstance(expr, sp.Basic):
        return DeriveLatexPrinter(settings).doprint(expr)
    printed = _PRINTED.get(id(expr))
    if printed is None or printed[0] is not expr:
        if len(_PRINTED) > 200_000:
            _PRINTED.clear()
        printed = _PRINTED[id(expr)] = (expr, DeriveLatexPrinter(settings).doprint(expr))
    return printed[1]


_PRINTED: dict[int, tuple[sp.Basic, str]] = {}  # id -> (the expression, kept alive; its LaTeX)
