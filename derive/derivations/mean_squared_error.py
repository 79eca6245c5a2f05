"""Mean squared error over the last axis, and its gradient 2(p − y)/K."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, IndexedBase, Matrix, Sum

from derive.figures import curves
from derive.model import explicit_vector, index, size
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Example,
    Figure,
    Identity,
    Kernel,
    Param,
    Step,
    every,
)
from derive.sympy_tools import evaluate

K = size("K")  # the number of outputs compared
p = IndexedBase("p", shape=(K,))  # predictions
y = IndexedBase("y", shape=(K,))  # targets
MSE = sp.Symbol("MSE")


def explicit_gradient(sizes) -> tuple[Matrix, Matrix]:
    """The gradient of an explicit mean of K squares, and 2(p − y)/K."""
    n = sizes["K"]
    ps, ys = explicit_vector("p", n), explicit_vector("y", n)
    mean = sum((ps[k] - ys[k]) ** 2 for k in range(n)) / n
    return Matrix([mean]).jacobian(ps), (2 * (ps - ys) / n).T


def _draw(fig, generated, posts) -> None:
    t = np.linspace(-2, 2, 161)
    target = np.zeros((len(t), 2))
    predictions = np.stack([t, np.full_like(t, 0.5)], axis=-1)
    curves(
        fig,
        t,
        {
            "MSE, K = 2": generated.mean_squared_error(predictions, target),
            "∂MSE/∂p₁": generated.mean_squared_error_grad(predictions, target)[:, 0],
        },
        xlabel="$p_1$ (with $p_2 = 0.5$, targets 0)",
        title="A parabola, and its slope 2(p − y)/K",
    )


def derive() -> Derivation:
    k, j = index("k", K), index("j", K)
    mse = Sum((p[k] - y[k]) ** 2, (k, 1, K)) / K
    gradient = sp.diff(mse, p[j])
    collapsed = sp.factor(evaluate(gradient))
    steps = (
        Step(
            "Differentiate each square",
            "$\\partial (p_k - y_k)^2/\\partial p_j = 2(p_k - y_k)\\delta_{kj}$: "
            "only the term $k = j$ depends on $p_j$.",
            Derivative(mse, p[j]),
            gradient,
        ),
        Step(
            "Collapse the sum",
            "The delta keeps the single term $k = j$ ($j$ is in $1..K$).",
            gradient,
            collapsed,
        ),
    )
    identities = (
        Identity(
            "mean_squared_error_grad",
            "the derivative of the mean is $2(p_j - y_j)/K$",
            long=gradient,
            shortcut=collapsed,
            explicit=explicit_gradient,
            explicit_sizes=every(K=range(1, 6)),
            long_title="The derivative of the mean,",
            shortcut_title="the shortcut,",
        ),
    )
    arguments = (
        Param("p", p, ("K",), doc="predictions"),
        Param("y", y, ("K",), doc="targets, the shape of p"),
    )
    kernels = (
        Kernel(
            name="mean_squared_error",
            summary="The mean of (p − y)² over the last axis (PyTorch's mse_loss, averaged per sample).",
            params=arguments,
            body=(),
            returns=Assign(MSE, (), mse),
            returns_doc="one number per sample, shape (...)",
            reference="torch.nn.functional.mse_loss(p, y, reduction='none').mean(dim=-1)",
        ),
        Kernel(
            name="mean_squared_error_grad",
            summary="∂MSE/∂p_j = 2(p_j − y_j)/K.",
            params=arguments,
            body=(),
            returns=Assign(Derivative(MSE, p[j]), (j,), collapsed),
            returns_doc="shape (..., K), like p",
            derivative=DerivativeOf("mean_squared_error(p, y)", wrt="p"),
        ),
    )
    return Derivation(
        name="mean_squared_error",
        title="Mean squared error",
        summary="The regression loss $\\frac{1}{K}\\sum_k (p_k - y_k)^2$ over the last axis, and its gradient.",
        definitions=(
            Definition(MSE, mse, "for predictions $p$ and targets $y$ of $K$ entries each"),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "Three outputs",
                "mean_squared_error_grad(np.array([0.5, 2.0, -1.0]), np.array([0.0, 2.0, 1.0]))",
                reference="2 * (np.array([0.5, 2.0, -1.0]) - np.array([0.0, 2.0, 1.0])) / 3",
                text="Against $2(p - y)/K$ written with NumPy.",
            ),
        ),
        figures=(
            Figure(
                "mean-squared-error.svg", "The loss along one prediction, and its slope.", _draw
            ),
        ),
        results={"mean_squared_error": mse, "gradient": collapsed},
    )
