"""derive: the derivatives of a softmax classifier, derived by SymPy.

Stages, data flowing one way:

    model -> derivations (steps) -> proofs -> printers (LaTeX, array code)
          -> render (Jinja templates to files)

The functions people import live in :mod:`derive.generated`; they are written
by ``python -m derive build`` and never edited by hand.
"""

from derive._runtime import check_labels, trusted_labels

__all__ = ["check_labels", "trusted_labels"]
__version__ = "0.1.0"
