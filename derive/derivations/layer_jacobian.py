"""Part 2: the layer z = Wᵀx, S = softmax(z), differentiated with respect to W."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, KroneckerDelta, Matrix, Sum

from derive.derivations import result
from derive.model import (
    C,
    S,
    W,
    class_index,
    explicit_layer,
    explicit_softmax,
    explicit_vector,
    input_index,
    softmax,
    summation,
    x,
    z,
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
from derive.sympy_tools import evaluate


def explicit_chain_rule(sizes, stable: bool = False) -> tuple[Matrix, Matrix]:
    """DS · DZ with explicit matrices, and the shortcut S_t(δ_tc − S_c)x_j.

    Both are functions of independent logits z: the identity holds for every
    z, so in particular for z = Wᵀx.
    """
    n_inputs, n_classes = sizes["D"], sizes["C"]
    layer = explicit_layer(n_inputs, n_classes)
    xs = layer.x
    logits = explicit_vector("z", n_classes)
    dz_dw = layer.z.jacobian(layer.weights)  # (C, D*C), weights class-major as in the posts
    probabilities = explicit_softmax(logits)
    ds_dz = probabilities.jacobian(logits)  # (C, C)
    def entry(t: int, w: int) -> sp.Expr:
        c = w // n_inputs
        if stable and t == c:  # 1 − S_t written as the sum of the other probabilities
            others = sum(p for k, p in enumerate(probabilities) if k != t)
            return probabilities[t] * others * xs[w % n_inputs]
        return probabilities[t] * (int(t == c) - probabilities[c]) * xs[w % n_inputs]

    return ds_dz * dz_dw, Matrix(n_classes, n_inputs * n_classes, entry)


def explicit_stable_chain_rule(sizes) -> tuple[Matrix, Matrix]:
    """DS · DZ, and the form the code computes: S_t Σ_{m≠t} S_m x_j where t = c."""
    return explicit_chain_rule(sizes, stable=True)


def _layer_jacobian_heatmap(fig, generated, posts) -> None:
    jacobian = generated.layer_jacobian(posts.X, posts.W)  # [t, j, c]
    C, D, _ = jacobian.shape
    class_major = jacobian.transpose(0, 2, 1).reshape(C, C * D)  # the posts' DL
    ax = fig.subplots()
    limit = np.abs(class_major).max()
    image = ax.imshow(class_major, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(C * D), [f"$W_{{{j + 1}{c + 1}}}$" for c in range(C) for j in range(D)],
                  fontsize=7, rotation=90)
    ax.set_yticks(range(C), [f"$S_{t + 1}$" for t in range(C)])
    for c in range(1, C):
        ax.axvline(c * D - 0.5, color="black", linewidth=0.5)
    ax.set_title(r"$\partial S_t / \partial W_{jc}$ for the posts' example, weights class-major")
    fig.colorbar(image, ax=ax)


def derive():
    t, c, k = class_index("t"), class_index("c"), class_index("k")
    j = input_index("j")
    ds_dz = result("softmax_jacobian", "jacobian", i=t, j=k)  # ∂S_t/∂z_k

    dz_dw = evaluate(sp.diff(summation(k), W[j, c]))
    chain = Sum(Derivative(S[t], z[k]) * Derivative(z[k], W[j, c]), (k, 1, C))
    chain_substituted = Sum(ds_dz * dz_dw, (k, 1, C))
    shortcut = sp.factor(evaluate(chain_substituted))
    # The softmax Jacobian's cancellation-free form, on the diagonal block t = c.
    stable = result("softmax_jacobian", "stable_jacobian", i=t, j=c) * x[j]
    m = class_index("m")
    others = result("softmax_jacobian", "one_minus_softmax", i=t)  # Σ_{m≠t} S_m

    steps = (
        Step(
            "Derivative of the summation",
            "$z_k = \\sum_d W_{dk} x_d$; only the weight $W_{jc}$ with $k = c$ appears in $z_k$, "
            "multiplied by $x_j$.",
            Derivative(summation(k), W[j, c]),
            dz_dw,
        ),
        Step(
            "Chain rule",
            "$W$ reaches $S_t$ through every logit $z_k$, so the derivatives through each "
            "$z_k$ add up.",
            Derivative(S[t], W[j, c]),
            chain,
        ),
        Step(
            "Substitute the two Jacobians",
            "$\\partial S_t / \\partial z_k$ from the softmax Jacobian page, "
            "$\\partial z_k / \\partial W_{jc}$ from the first step.",
            chain,
            chain_substituted,
        ),
        Step(
            "Collapse the sum",
            "The delta $\\delta_{kc}$ keeps the single term $k = c$.",
            chain_substituted,
            shortcut,
        ),
        Step("Case t = c", "The delta is 1.", shortcut,
             shortcut.subs(KroneckerDelta(c, t), 1).subs(t, c)),
        Step("Case t ≠ c", "The delta is 0.", shortcut,
             shortcut.subs(KroneckerDelta(c, t), 0)),
        Step(
            "Why the code computes it this way",
            "As for the softmax Jacobian: where $S_t$ rounds to 1, $1 - S_t$ is 0 in floating "
            "point, so on the block $t = c$ the code computes $S_t \\sum_{m \\ne t} S_m x_j$, "
            "which keeps every digit (the probabilities sum to 1).",
            shortcut,
            stable,
        ),
    )
    identities = (
        Identity(
            "layer_jacobian",
            "The chain-rule product Σ_k ∂S_t/∂z_k ∂z_k/∂W_jc equals the shortcut "
            "S_t(δ_tc − S_c)x_j.",
            long=chain_substituted,
            shortcut=shortcut,
            explicit=explicit_chain_rule,
            explicit_sizes=every(C=range(2, 7), D=range(1, 5)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
        Identity(
            "layer_jacobian_stable",
            "The form the code computes, S_t(δ_tc Σ_{m≠t} S_m − (1 − δ_tc) S_c)x_j, equals "
            "S_t(δ_tc − S_c)x_j given Σ S = 1; written out, it equals the chain-rule product.",
            long=stable,
            shortcut=shortcut,
            assumptions={Sum(S[m], (m, 1, C)): sp.Integer(1)},
            explicit=explicit_stable_chain_rule,
            explicit_sizes=every(C=range(2, 6), D=range(1, 4)),
            long_title="The form the code computes, its sum evaluated,",
            shortcut_title="the shortcut,",
        ),
    )
    others_of = sp.IndexedBase("others")
    inputs_and_weights = (
        Param("x", x, ("D",), doc="inputs"),
        Param("W", W, ("D", "C"), batched=False, doc="weights, inputs x classes"),
    )
    kernels = (
        Kernel(
            name="summation",
            summary="The weighted sums z = Wᵀx of a layer with weights W of shape (D, C).",
            params=inputs_and_weights,
            body=(),
            returns=Assign(z, (c,), summation(c)),
            returns_doc="logits, shape (..., C)",
            reference="x @ W",
            conditioning="z_c = Σ_d W_dc x_d adds terms of both signs: where they cancel, z_c is "
            "small but its rounding error is relative to Σ_d |W_dc x_d|, so no bound in ulps of "
            "z_c holds (the norm-wise error, in ulps of the largest entry, stays small).",
        ),
        Kernel(
            name="summation_jacobian",
            summary="∂z_k/∂W_jc for z = Wᵀx: entry [k, j, c].",
            params=inputs_and_weights,
            body=(),
            returns=Assign(Derivative(z[k], W[j, c]), (k, j, c), dz_dw),
            notes="Only W's shape is used: z is linear in W, so its derivative does not depend on W.",
            returns_doc="shape (..., C, D, C); the posts' DZ (C·D, C), rows class-major, is "
            "`xp.permute_dims(summation_jacobian(x, W), (2, 1, 0)).reshape(C * D, C)`",
            derivative=DerivativeOf("summation(x, W)", wrt="W"),
        ),
        Kernel(
            name="layer_jacobian",
            summary="∂S_t/∂W_jc for S = softmax(Wᵀx): entry [t, j, c].",
            params=inputs_and_weights,
            body=(Assign(S, (t,), sp.Function("softmax")(sp.Function("summation")(x, W))),
                  Assign(others_of, (t,), others)),
            returns=Assign(Derivative(S[t], W[j, c]), (t, j, c), stable.xreplace({others: others_of[t]})),
            math=stable,
            returns_doc="shape (..., C, D, C); the posts' DL (C, C·D), columns class-major, is "
            "`xp.permute_dims(layer_jacobian(x, W), (0, 2, 1)).reshape(C, C * D)`",
            derivative=DerivativeOf("softmax(summation(x, W))", wrt="W"),
            conditioning="It computes S = softmax(Wᵀx) itself, so it inherits the cancellation in "
            "z = Wᵀx and the rounding of z_i − max z in softmax.",
        ),
    )
    return Derivation(
        name="layer_jacobian",
        title="The softmax layer's Jacobian",
        summary="How each output $S_t$ of the layer $S = \\operatorname{softmax}(W^T x)$ changes "
        "with each weight $W_{jc}$ (Part 2).",
        definitions=(
            Definition(z[k], summation(k), "the weighted sum for class $k$: $z = W^T x$"),
            Definition(S[t], softmax(t), "the softmax of the logits"),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example("The hypothesis h = softmax(Wᵀx)", "softmax(summation(posts.X, posts.W))",
                    printed="PART3_S"),
            Example("DZ, weights class-major",
                    "summation_jacobian(posts.X, posts.W).transpose(2, 1, 0).reshape(15, 5)",
                    printed="PART2_DZ"),
            Example("DL = DS · DZᵀ", "layer_jacobian(posts.X, posts.W).transpose(0, 2, 1).reshape(5, 15)",
                    printed="PART2_DL_SHORTCUT"),
        ),
        errata=(
            Erratum(
                "Part 2's long product DS · DZᵀ prints `0.0810` in row 2 where the shortcut "
                "version of the same entry prints `0.08105`: one digit was lost. The entry is:",
                "layer_jacobian(posts.X, posts.W)[1, 1, 1]",
            ),
        ),
        figures=(
            Figure("layer-jacobian-heatmap.svg",
                   "The layer's Jacobian for the posts' example (the posts' DL): each block of three "
                   "columns is one class; only the block of S_t's own class has positive entries.",
                   _layer_jacobian_heatmap),
        ),
        results={"summation_derivative": dz_dw, "layer_jacobian": shortcut},
    )
