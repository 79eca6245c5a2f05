"""Mean squared error over the last axis, and its gradient 2(p − y)/K."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, IndexedBase, KroneckerDelta, Matrix, Sum

from derive.figures import curves
from derive.model import explicit_vector, index, size
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Example,
    Exercise,
    Figure,
    Identity,
    Kernel,
    MatrixResult,
    Param,
    Section,
    Step,
    every,
)
from derive.sympy_tools import evaluate

K = size("K")  # the number of outputs compared
p = IndexedBase("p", shape=(K,))  # predictions
y = IndexedBase("y", shape=(K,))  # targets
MSE = sp.Symbol("MSE")
residual = IndexedBase("residual", shape=(K,))  # (p − y)/K, the code's first step
u = IndexedBase("u", shape=(K,))  # an exercise's inputs: one number per output
w = sp.Symbol("w", real=True)  # an exercise's weight
b = sp.Symbol("b", real=True)  # an exercise's bias


def explicit_gradient(sizes) -> tuple[Matrix, Matrix]:
    """The gradient of an explicit mean of K squares, and 2(p − y)/K."""
    n = sizes["K"]
    ps, ys = explicit_vector("p", n), explicit_vector("y", n)
    mean = sum((ps[k] - ys[k]) ** 2 for k in range(n)) / n
    return Matrix([mean]).jacobian(ps), (2 * (ps - ys) / n).T


def explicit_hessian(sizes) -> tuple[Matrix, Matrix]:
    """The Hessian of an explicit mean of K squares, and 2/K times the identity."""
    n = sizes["K"]
    ps, ys = explicit_vector("p", n), explicit_vector("y", n)
    mean = sum((ps[k] - ys[k]) ** 2 for k in range(n)) / n
    return sp.hessian(mean, list(ps)), 2 * sp.eye(n) / n


def explicit_bias_gradient(sizes) -> tuple[Matrix, Matrix]:
    """∂MSE/∂b for p_k = w u_k + b written out for K entries, and 2/K times the sum of p − y."""
    n = sizes["K"]
    us, ys = explicit_vector("u", n), explicit_vector("y", n)
    predictions = [w * us[k] + b for k in range(n)]
    mean = sum((predictions[k] - ys[k]) ** 2 for k in range(n)) / n
    return Matrix([sp.diff(mean, b)]), Matrix(
        [2 * sum(predictions[k] - ys[k] for k in range(n)) / n]
    )


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
        xlabel="p₁ (with p₂ = 0.5, targets 0)",
        title="A parabola, and its slope 2(p − y)/K",
    )


def derive() -> Derivation:
    k, j = index("k", K), index("j", K)
    mse = Sum((p[k] - y[k]) ** 2, (k, 1, K)) / K
    gradient = sp.diff(mse, p[j])
    collapsed = sp.factor(evaluate(gradient))
    hessian = 2 * KroneckerDelta(j, k) / K
    line = Sum((w * u[k] + b - y[k]) ** 2, (k, 1, K)) / K  # the mean, p_k = w u_k + b written in
    bias_gradient = 2 * Sum(w * u[k] + b - y[k], (k, 1, K)) / K
    steps = (
        Step(
            "Differentiate each square",
            "$\\partial (p_k - y_k)^2/\\partial p_j = 2(p_k - y_k)\\delta_{kj}$: "
            "only the term $k = j$ depends on $p_j$.",
            Derivative(MSE, p[j]),
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
    exercises = (
        Exercise(
            "Differentiate the gradient once more: what is the Hessian "
            "$\\partial^2 \\mathit{MSE} / \\partial p_j \\partial p_k$? What does one Newton step "
            "$p - \\mathcal{H}^{-1} \\nabla \\mathit{MSE}$ do from any $p$?",
            sp.Eq(Derivative(collapsed, p[k]), hessian),
            Identity(
                "mean_squared_error_hessian",
                "the Hessian of the mean squared error is $2\\delta_{jk}/K$",
                long=Derivative(collapsed, p[k]),
                shortcut=hessian,
                explicit=explicit_hessian,
                explicit_sizes=every(K=range(1, 6)),
                long_title="The derivative of the gradient,",
                shortcut_title="$2/K$ times the identity,",
            ),
            answer="Only $p_j$ appears in $2(p_j - y_j)/K$, so the Hessian is $2/K$ times the "
            "identity matrix: the same at every $p$, positive definite, the loss a round bowl. "
            "A Newton step divides the gradient by $2/K$: $p - (p - y) = y$, the minimum, reached "
            "in one step from anywhere. SymPy proves it in index form and, with the Hessian of "
            "the mean written out, for $K = 1..5$.",
            title="The Hessian",
        ),
        Exercise(
            "Fit a line: the predictions are $p_k = w u_k + b$ for inputs $u_k$, a weight $w$ and "
            "a bias $b$. Derive $\\partial \\mathit{MSE} / \\partial b$ with the chain rule through "
            "the $p_k$.",
            sp.Eq(Derivative(line, b), bias_gradient),
            Identity(
                "mean_squared_error_bias_gradient",
                "with $p_k = w u_k + b$, $\\partial \\mathit{MSE} / \\partial b$ is $2/K$ times "
                "the sum of $p_k - y_k$",
                long=Derivative(line, b),
                shortcut=bias_gradient,
                explicit=explicit_bias_gradient,
                explicit_sizes=every(K=range(1, 6)),
                long_title="The derivative of the mean by the bias,",
                shortcut_title="the gradient's entries summed,",
            ),
            answer="$\\partial p_k / \\partial b = 1$ for every $k$, so the chain rule sums the "
            "gradient's entries: $\\sum_k 2(p_k - y_k)/K$, twice the mean residual. (By $w$, each "
            "entry is weighted by $\\partial p_k / \\partial w = u_k$ instead.) It is 0 exactly when "
            "the residuals average to 0, which the best bias achieves. SymPy proves it in index "
            "form and, written out, for $K = 1..5$.",
            title="A gradient with a bias",
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
            # divided by K before doubling: 2(p − y) overflows where the gradient does not
            body=(Assign(residual, (j,), (p[j] - y[j]) / K),),
            returns=Assign(Derivative(MSE, p[j]), (j,), 2 * residual[j]),
            math=collapsed,
            notes="Computed as ((p − y)/K)·2, divided before doubling: 2(p − y) overflows "
            "where the gradient does not (p − y = 1e308 with K = 3 gives 6.7e307; "
            "float16 p − y = 40000 with K = 2 gives 40000).",
            returns_doc="shape (..., K), like p",
            derivative=DerivativeOf("mean_squared_error(p, y)", wrt="p"),
        ),
    )
    matrix_result = MatrixResult(
        group="losses",
        lhs=sp.MatrixSymbol("\\nabla_{p} \\mathit{MSE}", K, 1),
        rhs=2 * (sp.MatrixSymbol("p", K, 1) - sp.MatrixSymbol("y", K, 1)) / K,
        index_form=collapsed,
        entry=((j,), ()),
        text="The gradient of the mean squared error: the residuals, scaled by $2/K$.",
    )
    return Derivation(
        sections=(
            Section(
                "Why these steps are written by hand",
                "These steps are written by hand, not generated from a forward definition (`derive.differentiate`, which makes the SiLU, GELU, Huber and layer normalisation pages). The forward definitions it takes today are elementwise or vector-to-vector (a Jacobian and a vector–Jacobian product); a loss that sums a vector to one number is not one of them yet. Its two steps here (each square differentiated, the delta's sum collapsed) are the ones the differentiator would show.",
                place="after_steps",
            ),
        ),
        matrix_result=matrix_result,
        name="mean_squared_error",
        title="Mean squared error",
        summary="The regression loss $\\frac{1}{K}\\sum_k (p_k - y_k)^2$ over the last axis, and its gradient.",
        definitions=(
            Definition(MSE, mse, "for predictions $p$ and targets $y$ of $K$ entries each"),
        ),
        steps=steps,
        identities=identities,
        exercises=exercises,
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
