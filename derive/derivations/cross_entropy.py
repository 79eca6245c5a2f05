"""Part 3: the cross-entropy loss XE = −Σ y log S, differentiated with respect to W."""

from __future__ import annotations

import sympy as sp
from sympy import Derivative, Matrix, Sum

from derive.derivations import result
from derive.figures import annotated_heatmap
from derive.model import (
    C,
    S,
    W,
    class_index,
    cross_entropy,
    explicit_labels,
    explicit_layer,
    explicit_softmax,
    explicit_vector,
    input_index,
    x,
    y,
)
from derive.steps import (
    Assign,
    Definition,
    DerivativeOf,
    Derivation,
    Erratum,
    Example,
    Figure,
    Identity,
    Kernel,
    Param,
    Step,
    every,
)
from derive.sympy_tools import evaluate, pull_out_of_sums, sums_of


def explicit_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DXE · DS · DZ with explicit matrices, and the shortcut (S_c − y_c)x_j.

    The one-hot fact is imposed by writing the last label as 1 − Σ of the
    others; both sides are functions of independent logits z.
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    xs = layer.x
    logits = explicit_vector("z", n_classes)
    labels = explicit_labels(n_classes)
    probability_symbols = explicit_vector("S", n_classes, positive=True)
    loss = -sum(labels[c] * sp.log(probability_symbols[c]) for c in range(n_classes))
    probabilities = explicit_softmax(logits)
    dxe_ds = Matrix([loss]).jacobian(probability_symbols).subs(
        dict(zip(probability_symbols, probabilities))
    )
    ds_dz = probabilities.jacobian(logits)
    dz_dw = layer.z.jacobian(layer.weights)  # weights class-major
    shortcut = Matrix(
        1,
        n_inputs * n_classes,
        lambda _, w: (probabilities[w // n_inputs] - labels[w // n_inputs]) * xs[w % n_inputs],
    )
    return dxe_ds * ds_dz * dz_dw, shortcut


# Said in the docstrings of the functions of S: the formula is computed as written.
NAIVE_NOTE = (
    "A probability of exactly 0 (softmax of logits far apart) gives inf, or nan where "
    "y is 0 too (0 · log 0, 0/0); from the logits, `cross_entropy_from_logits` and "
    "`cross_entropy_from_logits_grad` never do."
)


def _gradient_heatmap(fig, generated, posts) -> None:
    gradient = generated.weight_grad(posts.X, posts.W, posts.Y)
    D, C = gradient.shape
    annotated_heatmap(fig, gradient, [f"class {c + 1}" for c in range(C)], [f"$x_{j + 1}$" for j in range(D)],
                      r"$\partial XE/\partial W_{jc}$, laid out like $W$ (true class 3)")


def derive():
    t, c = class_index("t"), class_index("c")  # the loss sums over i
    j = input_index("j")
    ds_dw = result("layer_jacobian", "layer_jacobian", t=t, c=c, j=j)  # S_t(δ_tc − S_c)x_j

    loss = cross_entropy()
    XE = sp.Symbol("XE")
    dxe_ds = evaluate(sp.diff(loss, S[t]))
    chain = Sum(Derivative(XE, S[t]) * Derivative(S[t], W[j, c]), (t, 1, C))
    chain_substituted = Sum(dxe_ds * ds_dw, (t, 1, C))
    collapsed = pull_out_of_sums(evaluate(chain_substituted))
    (labels_total,) = sums_of(y, collapsed)
    one_hot = {labels_total: sp.Integer(1)}
    shortcut = sp.factor(collapsed.xreplace(one_hot))

    B = sp.Symbol("B", integer=True, positive=True)
    b = sp.Idx("b", (1, B))
    X, P, Y = sp.IndexedBase("x"), sp.IndexedBase("S"), sp.IndexedBase("y")
    per_sample = shortcut.xreplace({S[c]: P[b, c], y[c]: Y[b, c], x[j]: X[b, j]})
    batch_mean = Sum(per_sample, (b, 1, B)) / B

    steps = (
        Step(
            "Derivative of the loss",
            "Only the term $i = t$ of the sum contains $S_t$; $d(\\log S)/dS = 1/S$.",
            Derivative(loss, S[t]),
            dxe_ds,
        ),
        Step(
            "Chain rule",
            "$W$ reaches the loss through every output $S_t$.",
            Derivative(XE, W[j, c]),
            chain,
        ),
        Step(
            "Substitute the two Jacobians",
            "$\\partial XE / \\partial S_t$ from the first step, $\\partial S_t / \\partial W_{jc}$ "
            "from the layer page; $S_t$ cancels.",
            chain,
            chain_substituted,
        ),
        Step(
            "Collapse the sum",
            "The delta keeps the term $t = c$; factors without $t$ leave the sum.",
            chain_substituted,
            collapsed,
        ),
        Step(
            "One-hot labels: Σ y = 1",
            "$y$ is one-hot, so its entries add up to 1. SymPy cannot know this; "
            "it is supplied here, and only here.",
            collapsed,
            shortcut,
        ),
        Step(
            "Mean over a batch",
            "The loss of a batch of $B$ samples is the mean of theirs; the derivative of a "
            "mean is the mean of the derivatives, each with its own $x$, $S$ and $y$.",
            Derivative(Sum(sp.IndexedBase("XE")[b], (b, 1, B)) / B, W[j, c]),
            batch_mean,
        ),
    )
    identities = (
        Identity(
            "cross_entropy_weight_grad",
            "The chain-rule product Σ_t ∂XE/∂S_t ∂S_t/∂W_jc equals the shortcut "
            "(S_c − y_c)x_j, given Σ y = 1.",
            long=chain_substituted,
            shortcut=shortcut,
            assumptions=one_hot,
            explicit=explicit_chain_rule,
            explicit_sizes=every(C=range(2, 7), D=range(1, 5)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
    )
    error_share = sp.IndexedBase("error_share")  # each sample's share of the mean's error
    (sum_over_batch,) = batch_mean.atoms(Sum)
    probabilities_and_labels = (
        Param("s", S, ("C",), doc="probabilities, e.g. the output of `softmax`", domain="probability"),
        Param("y", y, ("C",), doc="one-hot labels", one_hot=True),
    )
    kernels = (
        Kernel(
            name="cross_entropy",
            summary="The categorical cross-entropy of probabilities s against one-hot labels y.",
            params=probabilities_and_labels,
            body=(),
            returns=Assign(XE, (), loss),
            returns_doc="the loss of each sample, shape (...)",
            notes=NAIVE_NOTE,
            reference="-(y * torch.log(s)).sum(dim=-1)",
        ),
        Kernel(
            name="cross_entropy_grad",
            summary="∂XE/∂S_t, the derivative of the cross-entropy with respect to the probabilities.",
            params=probabilities_and_labels,
            body=(),
            returns=Assign(Derivative(XE, S[t]), (t,), dxe_ds),
            returns_doc="shape (..., C): the posts' `xe_dir(y, S)`",
            notes=NAIVE_NOTE,
            derivative=DerivativeOf("cross_entropy(s, y)", wrt="s"),
        ),
        Kernel(
            name="weight_grad",
            summary="The gradient of the mean cross-entropy with respect to W, laid out like W.",
            params=(
                Param("x", X, ("D",), doc="inputs: one sample (D,) or a batch (..., D)"),
                Param("W", W, ("D", "C"), batched=False, doc="weights, inputs x classes"),
                Param("y", Y, ("C",), doc="one-hot labels, with the batch shape of x", one_hot=True),
            ),
            body=(
                Assign(P, (b, c), sp.Function("softmax")(sp.Function("summation")(X, W))),
                # 1/B on the B x C errors, not on the D x C result: fewer divisions when D > B
                Assign(error_share, (b, c), (P[b, c] - Y[b, c]) / B),
            ),
            returns=Assign(
                Derivative(XE, W[j, c]),
                (j, c),
                sum_over_batch.xreplace({sum_over_batch.function: X[b, j] * error_share[b, c]}),
            ),
            math=batch_mean,
            returns_doc="shape (D, C), like W; the posts' class-major vector is "
            "`weight_grad(x, W, y).T.ravel()`",
            flatten_batch=True,
            conditioning="Xᵀ(S − Y)/B adds terms of both signs over the batch and the classes: "
            "where they cancel, the error is relative to the sum of their magnitudes, not to the "
            "result (the norm-wise error stays small).",
            derivative=DerivativeOf("cross_entropy(softmax(summation(x, W)), y)", wrt="W",
                                    kind="batch_mean"),
        ),
    )
    return Derivation(
        name="cross_entropy",
        title="The cross-entropy gradient",
        summary="How the loss $XE = -\\sum_i y_i \\log S_i$ of the layer changes with each weight (Part 3).",
        definitions=(Definition(XE, loss, "with $y$ one-hot: $y_i = 1$ for the true class, 0 elsewhere"),),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example("XE for class 3", "cross_entropy(softmax(summation(posts.X, posts.W)), posts.Y)",
                    printed="PART3_XE"),
            Example("DXE = xe_dir(y, S)",
                    "cross_entropy_grad(softmax(summation(posts.X, posts.W)), posts.Y)",
                    printed="PART3_DXE"),
            Example("The weight gradient, class-major", "weight_grad(posts.X, posts.W, posts.Y).T.ravel()",
                    printed="PART3_WEIGHT_GRAD"),
        ),
        errata=(
            Erratum(
                "Part 3's last two matrices are the class-major gradient vector passed through "
                "`reshape(W.shape)`: their entries do not sit where the weights they belong to "
                "sit. Laid out like W, the gradient is the outer product of x and S − y:",
                "weight_grad(posts.X, posts.W, posts.Y)",
            ),
        ),
        figures=(
            Figure("weight-gradient-heatmap.svg",
                   "The weight gradient for the posts' example, in W's layout: only the true "
                   "class's column is negative.", _gradient_heatmap),
        ),
        results={"loss_derivative": dxe_ds, "weight_grad": shortcut, "batch_mean": batch_mean},
    )
