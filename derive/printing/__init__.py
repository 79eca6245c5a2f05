"""Printers: SymPy expressions to LaTeX and to array code, by ``_print_X`` dispatch."""

from derive.printing.array import ArrayPrinter, UnsupportedExpression
from derive.printing.latex import latex

__all__ = ["ArrayPrinter", "UnsupportedExpression", "latex"]
