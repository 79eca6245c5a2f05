"""A two-layer network: backpropagation through a hidden layer, derived in index form.

x (D) → z₁ = W₁ᵀx + b₁ (H) → h = a(z₁) → z₂ = W₂ᵀh + b₂ (C) → cross-entropy from the logits z₂.
"""

from __future__ import annotations

import sympy as sp
from sympy import Derivative, Matrix, Sum

from derive.derivations import result
from derive.model import (
    C,
    D,
    S,
    W,
    explicit_labels,
    explicit_softmax,
    explicit_vector,
    index,
    size,
    summation,
    y,
)
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Dispatch,
    Identity,
    Kernel,
    LabelsForm,
    Param,
    Result,
    Section,
    Step,
    every,
)
from derive.sympy_tools import evaluate, pull_out_of_sums

H = size("H")  # hidden units


def collapse(expr: sp.Expr) -> sp.Expr:
    """``evaluate`` until nothing changes (a delta in an inner sum collapses the outer one next),
    then factors out of the sums."""
    while (done := evaluate(expr)) != expr:
        expr = done
    return pull_out_of_sums(expr)


B = sp.Symbol("B", integer=True, positive=True)  # samples in a batch

X, W1, B1, Z1, HID = (sp.IndexedBase(n) for n in ("x", "W1", "b1", "z1", "h"))
W2, B2, Z2 = (sp.IndexedBase(n) for n in ("W2", "b2", "z2"))
Y = sp.IndexedBase("y")
DELTA1, DELTA2 = sp.IndexedBase("delta1"), sp.IndexedBase("delta2")
a = sp.Function("a")  # the activation, generic: SymPy writes its derivative

ACTIVATIONS = ("relu", "sigmoid", "tanh")
EXPLICIT_SIZES = every(D=range(1, 3), H=range(1, 3), C=range(2, 4))
# W₂ and b₂ come after the inputs: D changes h's expression, not the check (D = 1 only)
SECOND_LAYER_SIZES = every(D=range(1, 2), H=range(1, 3), C=range(2, 4))


def explicit_network(sizes, parameter: str) -> tuple[Matrix, Matrix]:
    """∂XE/∂(parameter) of the whole network written out with tanh, and the backprop shortcut.

    The loss is differentiated as one composed expression (SymPy's own chain
    rule, through the softmax, W₂, tanh and W₁). The labels sum to 1 (the last is
    1 minus the others). Before returning, every exponential, checked to be
    e^{Σ n_c z₂_c}, is written Π E_c^{n_c} with E_c = e^{z₂_c}, and each
    tanh(z₁_k) is replaced by T_k: both sides are then rational in those symbols
    and the rest, and a rational function that cancels to 0 with its generators
    taken as independent is 0 for every value they take.
    """
    n_in, n_hidden, n_classes = sizes["D"], sizes["H"], sizes["C"]
    xs = explicit_vector("x", n_in)
    w1 = Matrix(n_in, n_hidden, lambda j, k: sp.Symbol(f"W1_{j}_{k}", real=True))
    b1 = explicit_vector("b1", n_hidden)
    w2 = Matrix(n_hidden, n_classes, lambda k, c: sp.Symbol(f"W2_{k}_{c}", real=True))
    b2 = explicit_vector("b2", n_classes)
    labels = explicit_labels(n_classes)
    z1 = w1.T * xs + b1
    hidden = z1.applyfunc(sp.tanh)
    z2 = w2.T * hidden + b2
    probabilities = explicit_softmax(z2)
    loss = -sum(labels[c] * sp.log(probabilities[c]) for c in range(n_classes))
    u = sp.Symbol("u", real=True)
    slope = sp.diff(sp.tanh(u), u)  # 1 − tanh²(u), SymPy's rule
    delta2 = probabilities - labels
    delta1 = (w2 * delta2).multiply_elementwise(z1.applyfunc(lambda v: slope.subs(u, v)))
    wrt, shortcut = {
        "W2": (
            list(w2),
            [hidden[k] * delta2[c] for k in range(n_hidden) for c in range(n_classes)],
        ),
        "b2": (list(b2), list(delta2)),
        "W1": (list(w1), [xs[j] * delta1[k] for j in range(n_in) for k in range(n_hidden)]),
        "b1": (list(b1), list(delta1)),
    }[parameter]
    long = Matrix([loss]).jacobian(wrt)
    short = Matrix(1, len(shortcut), shortcut)
    exps = [sp.Symbol(f"E_{c}", positive=True) for c in range(n_classes)]  # e^{z₂_c}
    powers = {}
    for e in long.atoms(sp.exp) | short.atoms(sp.exp):  # e^{Σ n_c z₂_c} = Π E_c^{n_c}
        counts = [sp.diff(e.args[0], b2[c]) for c in range(n_classes)]
        if sp.expand(e.args[0] - sum(n * z for n, z in zip(counts, z2))) != 0:
            raise ValueError(f"{e} is not a power of the e^(z2_c)")
        powers[e] = sp.Mul(*(E**n for E, n in zip(exps, counts)))
    tanhs = {sp.tanh(v): sp.Symbol(f"T_{k}", real=True) for k, v in enumerate(z1)}
    return long.xreplace(powers).xreplace(tanhs), short.xreplace(powers).xreplace(tanhs)


# One function per parameter (module-level: derivations are pickled, and compared after it).
def explicit_w1(sizes) -> tuple[Matrix, Matrix]:
    return explicit_network(sizes, "W1")


def explicit_b1(sizes) -> tuple[Matrix, Matrix]:
    return explicit_network(sizes, "b1")


def explicit_w2(sizes) -> tuple[Matrix, Matrix]:
    return explicit_network(sizes, "W2")


def explicit_b2(sizes) -> tuple[Matrix, Matrix]:
    return explicit_network(sizes, "b2")


EXPLICIT = {"W1": explicit_w1, "b1": explicit_b1, "W2": explicit_w2, "b2": explicit_b2}

STEP_SIZES = every(D=range(1, 4), H=range(1, 4), C=range(2, 5))


def explicit_step(sizes, step: str) -> tuple[Matrix, Matrix]:
    """One backpropagation step with explicit matrices, for any activation a.

    The error arriving at the layer (δ₂ at z₂, δ₁ at z₁) is a vector of free
    symbols; SymPy's Jacobian of the layer, contracted with it, is the long
    side, the backprop formula the short one. What reaches δ₂ is S − y, proved
    on the page of the loss from the logits; the whole chain, softmax and all,
    is checked with tanh by the identities above.
    """
    n_in, n_hidden, n_classes = sizes["D"], sizes["H"], sizes["C"]
    xs, b1, z1 = (explicit_vector(n, n_in if n == "x" else n_hidden) for n in ("x", "b1", "z1"))
    hidden = explicit_vector("h", n_hidden)
    w1 = Matrix(n_in, n_hidden, lambda j, k: sp.Symbol(f"W1_{j}_{k}", real=True))
    w2 = Matrix(n_hidden, n_classes, lambda k, c: sp.Symbol(f"W2_{k}_{c}", real=True))
    b2 = explicit_vector("b2", n_classes)
    delta2, delta1 = explicit_vector("delta2", n_classes), explicit_vector("delta1", n_hidden)
    if step in ("W2", "b2"):
        error, outputs = delta2, w2.T * hidden + b2
    elif step == "delta1":
        error, outputs = delta2, w2.T * z1.applyfunc(a) + b2
    else:
        error, outputs = delta1, w1.T * xs + b1
    wrt, shortcut = {
        "W2": (
            list(w2),
            [hidden[k] * delta2[c] for k in range(n_hidden) for c in range(n_classes)],
        ),
        "b2": (list(b2), list(delta2)),
        "delta1": (
            list(z1),
            [(w2 * delta2)[k] * sp.diff(a(z1[k]), z1[k]) for k in range(n_hidden)],
        ),
        "W1": (list(w1), [xs[j] * delta1[k] for j in range(n_in) for k in range(n_hidden)]),
        "b1": (list(b1), list(delta1)),
    }[step]
    return error.T * outputs.jacobian(wrt), Matrix(1, len(shortcut), shortcut)


# One function per step (module-level: derivations are pickled).
def explicit_step_w2(sizes) -> tuple[Matrix, Matrix]:
    return explicit_step(sizes, "W2")


def explicit_step_b2(sizes) -> tuple[Matrix, Matrix]:
    return explicit_step(sizes, "b2")


def explicit_step_delta1(sizes) -> tuple[Matrix, Matrix]:
    return explicit_step(sizes, "delta1")


def explicit_step_w1(sizes) -> tuple[Matrix, Matrix]:
    return explicit_step(sizes, "W1")


def explicit_step_b1(sizes) -> tuple[Matrix, Matrix]:
    return explicit_step(sizes, "b1")


def _kernels(activation: str, batch_mean: dict) -> tuple[Kernel, ...]:
    """mlp_logits_<activation> and the four gradient kernels for one activation."""
    j, d = index("j", D), index("d", D)
    k, m = index("k", H), index("m", H)
    c, t = index("c", C), index("t", C)
    b = sp.Idx("b", (1, B))
    act, act_grad = sp.Function(activation), sp.Function(f"{activation}_grad")
    forward = (
        Param("x", X, ("D",), doc="inputs: one sample (D,) or a batch (..., D)"),
        Param(
            "W1", W1, ("D", "H"), batched=False, doc="first-layer weights, inputs x hidden units"
        ),
        Param("b1", B1, ("H",), batched=False, doc="first-layer biases"),
        Param(
            "W2", W2, ("H", "C"), batched=False, doc="second-layer weights, hidden units x classes"
        ),
        Param("b2", B2, ("C",), batched=False, doc="second-layer biases"),
    )
    labels = Param("y", Y, ("C",), doc="one-hot labels, with the batch shape of x", one_hot=True)
    logits = Kernel(
        name=f"mlp_logits_{activation}",
        summary=f"The logits z₂ = W₂ᵀ{activation}(W₁ᵀx + b₁) + b₂ of the two-layer network.",
        params=forward,
        body=(
            Assign(Z1, (k,), Sum(X[d] * W1[d, k], (d, 1, D)) + B1[k]),
            Assign(HID, (k,), act(Z1)),
        ),
        returns=Assign(Z2, (c,), Sum(HID[m] * W2[m, c], (m, 1, H)) + B2[c]),
        returns_doc="the logits, shape (..., C)",
        reference=_torch_logits(activation),
    )
    share = sp.IndexedBase("error_share")  # each sample's δ₂, divided by B
    slope, backward, delta1 = (
        sp.IndexedBase("slope"),
        sp.IndexedBase("backward"),
        sp.IndexedBase("delta1"),
    )
    probabilities = sp.IndexedBase("S")  # softmax(z₂), each sample's
    labelled = sp.IndexedBase("ell")  # each sample's class label
    delta2 = (probabilities[b, c] - Y[b, c]) / B  # δ₂ = S − y, each sample's share of the mean

    def body(share_of_error: sp.Expr) -> tuple[Assign, ...]:
        """The forward pass, δ₂ / B and δ₁, computed once for the four gradients."""
        return (
            Assign(Z1, (b, k), Sum(X[b, d] * W1[d, k], (d, 1, D)) + B1[k]),
            Assign(HID, (b, k), act(Z1)),
            Assign(Z2, (b, c), Sum(HID[b, m] * W2[m, c], (m, 1, H)) + B2[c]),
            Assign(probabilities, (b, c), sp.Function("softmax")(Z2)),
            Assign(share, (b, c), share_of_error),
            Assign(backward, (b, k), Sum(share[b, t] * W2[k, t], (t, 1, C))),
            Assign(slope, (b, k), act_grad(Z1)),
            Assign(delta1, (b, k), backward[b, k] * slope[b, k]),
        )

    conditioning = (
        "a sum over the batch of terms of both signs (and, for the first layer, over the "
        "classes): where they cancel, the error is relative to the sum of their magnitudes, "
        "not to the result."
    )
    of = f"cross_entropy_from_logits(mlp_logits_{activation}(x, W1, b1, W2, b2), y)"
    results = [
        Result(
            returns=Assign(Derivative(sp.Symbol("L"), target), indices, expression),
            math=batch_mean[name],
            derivative=DerivativeOf(of, wrt=name, kind="batch_mean"),
        )
        for name, target, indices, expression in (
            ("W1", W1[j, k], (j, k), Sum(X[b, j] * delta1[b, k], (b, 1, B))),
            ("b1", B1[k], (k,), Sum(delta1[b, k], (b, 1, B))),
            ("W2", W2[k, c], (k, c), Sum(HID[b, k] * share[b, c], (b, 1, B))),
            ("b2", B2[c], (c,), Sum(share[b, c], (b, 1, B))),
        )
    ]
    gradients = Kernel(
        name=f"mlp_grads_{activation}",
        summary=f"(∂L/∂W1, ∂L/∂b1, ∂L/∂W2, ∂L/∂b2) for the {activation} network, in one pass: the "
        "gradient of the mean cross-entropy over the batch, each laid out like its parameter.",
        params=(*forward, labels),
        body=body(delta2),
        returns=results[0].returns,
        math=results[0].math,
        derivative=results[0].derivative,
        more=tuple(results[1:]),
        returns_doc="(dW1, db1, dW2, db2), shaped (D, H), (H,), (H, C), (C,) like the parameters",
        flatten_batch=True,
        conditioning=conditioning,
        labels_form=LabelsForm(
            param=Param("y", labelled, ("C",), doc="integer class labels", labels=True),
            # S_bc − δ_{c ℓ_b}: 1 subtracted at each sample's label, in place in NumPy
            body=body(delta2.xreplace({Y[b, c]: sp.KroneckerDelta(c, labelled[b])})),
            returns=results[0].returns,
        ),
    )
    return (logits, gradients)


def _torch_logits(activation: str) -> str:
    hidden = {"relu": "torch.relu", "sigmoid": "torch.sigmoid", "tanh": "torch.tanh"}[activation]
    return f"{hidden}(x @ W1 + b1) @ W2 + b2"


def derive() -> Derivation:
    j, d = index("j", D), index("d", D)
    k, m = index("k", H), index("m", H)
    c, t = index("c", C), index("t", C)
    XE = sp.Symbol("XE")

    def z1(n):
        return Sum(W1[d, n] * X[d], (d, 1, D)) + B1[n]

    def z2(n):  # as a function of h
        return Sum(W2[m, n] * HID[m], (m, 1, H)) + B2[n]

    def z2_of_z1(n):  # h = a(z₁) written in
        return Sum(W2[m, n] * a(Z1[m]), (m, 1, H)) + B2[n]

    def slope(n):  # a′(z₁_n), as SymPy writes the derivative of an unknown function
        return sp.diff(a(Z1[n]), Z1[n])

    logit_grad = result("cross_entropy_from_logits", "logit_grad", j=c)  # S_c − y_c
    logit_grad_t = result("cross_entropy_from_logits", "logit_grad", j=t)

    # δ₂ = ∂XE/∂z₂, and the second layer's parameters
    chain_w2 = Sum(DELTA2[t] * Derivative(Z2[t], W2[k, c]), (t, 1, C))
    substituted_w2 = Sum(DELTA2[t] * sp.diff(z2(t), W2[k, c]), (t, 1, C))
    grad_w2 = collapse(substituted_w2)
    substituted_b2 = Sum(DELTA2[t] * sp.diff(z2(t), B2[c]), (t, 1, C))
    grad_b2 = collapse(substituted_b2)
    # δ₁ = ∂XE/∂z₁: back through W₂ and the activation
    chain_delta1 = Sum(DELTA2[t] * Derivative(Z2[t], Z1[k]), (t, 1, C))
    substituted_delta1 = Sum(DELTA2[t] * sp.diff(z2_of_z1(t), Z1[k]), (t, 1, C))
    delta1 = collapse(substituted_delta1)
    # the first layer's parameters
    substituted_w1 = Sum(DELTA1[m] * sp.diff(z1(m), W1[j, k]), (m, 1, H))
    grad_w1 = collapse(substituted_w1)
    substituted_b1 = Sum(DELTA1[m] * sp.diff(z1(m), B1[k]), (m, 1, H))
    grad_b1 = collapse(substituted_b1)

    # the batch mean: sample b's own x, h, δ (rows b)
    b = sp.Idx("b", (1, B))
    rows = {X[j]: X[b, j], HID[k]: HID[b, k], DELTA1[k]: DELTA1[b, k], DELTA2[c]: DELTA2[b, c]}
    batch_mean = {
        name: Sum(g.xreplace(rows), (b, 1, B)) / B
        for name, g in (("W1", grad_w1), ("b1", grad_b1), ("W2", grad_w2), ("b2", grad_b2))
    }

    # the one-layer case with a bias: z = Wᵀx + β
    beta = sp.IndexedBase("beta")
    one_layer_w = collapse(Sum(logit_grad_t * sp.diff(summation(t) + beta[t], W[j, c]), (t, 1, C)))
    one_layer_b = collapse(Sum(logit_grad_t * sp.diff(summation(t) + beta[t], beta[c]), (t, 1, C)))

    delta2_filled = {DELTA2[c]: logit_grad}
    delta1_filled = delta1.xreplace({DELTA2[t]: logit_grad_t})
    steps = (
        Step(
            "The output error δ₂ = S − y",
            "The loss from the logits is differentiated on its own page: $\\partial XE/\\partial z_{2,c} = "
            "S_c - y_c$ (with $\\sum y = 1$). Name it $\\delta_{2,c}$.",
            Derivative(XE, Z2[c]),
            logit_grad,
        ),
        Step(
            "Second-layer weights: the chain rule through z₂",
            "$W_{2,kc}$ reaches the loss through every logit $z_{2,t}$; differentiate $z_{2,t} = "
            "\\sum_m W_{2,mt} h_m + b_{2,t}$.",
            chain_w2,
            substituted_w2,
        ),
        Step(
            "∂XE/∂W₂ = h δ₂ᵀ",
            "The deltas keep $m = k$ and $t = c$: an outer product.",
            substituted_w2,
            grad_w2,
        ),
        Step(
            "∂XE/∂b₂ = δ₂",
            "$\\partial z_{2,t} / \\partial b_{2,c} = \\delta_{tc}$.",
            substituted_b2,
            grad_b2,
        ),
        Step(
            "Back through W₂ and the activation",
            "$z_{1,k}$ reaches the loss through $h_k = a(z_{1,k})$ and every logit; SymPy differentiates "
            "the unknown function $a$ and keeps $a'$ as a derivative.",
            chain_delta1,
            substituted_delta1,
        ),
        Step(
            "δ₁ = (W₂δ₂) ⊙ a′(z₁)",
            "The delta keeps $m = k$; $a'(z_{1,k})$ leaves the sum over $t$.",
            substituted_delta1,
            delta1,
        ),
        Step(
            "∂XE/∂W₁ = x δ₁ᵀ",
            "As for $W_2$, one layer down, with $\\delta_1$ in place of $\\delta_2$.",
            substituted_w1,
            grad_w1,
        ),
        Step(
            "∂XE/∂b₁ = δ₁",
            "$\\partial z_{1,m} / \\partial b_{1,k} = \\delta_{mk}$.",
            substituted_b1,
            grad_b1,
        ),
        Step(
            "Mean over a batch",
            "$L = \\frac{1}{B}\\sum_b XE_b$: the mean of the per-sample gradients, each sample with its "
            "own row of $X$, $H$ and the deltas. For $W_1$:",
            Derivative(Sum(sp.IndexedBase("XE")[b], (b, 1, B)) / B, W1[j, k]),
            batch_mean["W1"],
        ),
        Step(
            "One layer with a bias: the weights",
            "The posts' layer plus a bias, $z = W^T x + \\beta$: the same chain rule with $x$ in place of "
            "$h$ gives the posts' gradient, unchanged by $\\beta$.",
            Sum(logit_grad_t * Derivative(summation(t) + beta[t], W[j, c]), (t, 1, C)),
            one_layer_w,
        ),
        Step(
            "One layer with a bias: the bias",
            "$\\partial z_t/\\partial \\beta_c = \\delta_{tc}$, so the bias gradient is $S - y$.",
            Sum(logit_grad_t * Derivative(summation(t) + beta[t], beta[c]), (t, 1, C)),
            one_layer_b,
        ),
    )

    def full_chain(wrt, through_hidden: bool):
        """Σ_t (S_t − y_t) ∂z₂_t/∂(wrt), with the hidden layer's chain written out when it is in the path;
        each partial derivative of an affine map is SymPy's, its sum of deltas collapsed."""
        if not through_hidden:
            return Sum(logit_grad_t * collapse(sp.diff(z2(t), wrt)), (t, 1, C))
        n = index("n", H)  # not m, the index z₂'s own sum runs over
        return Sum(
            Sum(
                logit_grad_t
                * collapse(sp.diff(z2(t), HID[n]))
                * slope(n)
                * collapse(sp.diff(z1(n), wrt)),
                (n, 1, H),
            ),
            (t, 1, C),
        )

    shortcuts = {
        "W2": grad_w2.xreplace(delta2_filled),
        "b2": grad_b2.xreplace(delta2_filled),
        "W1": grad_w1.xreplace({DELTA1[k]: delta1_filled}),
        "b1": grad_b1.xreplace({DELTA1[k]: delta1_filled}),
    }
    targets = {"W2": W2[k, c], "b2": B2[c], "W1": W1[j, k], "b1": B1[k]}
    formulas = {
        "W2": "h\\,\\delta_2^T",
        "b2": "\\delta_2",
        "W1": "x\\,\\delta_1^T",
        "b1": "\\delta_1",
    }
    identities = tuple(
        Identity(
            f"two_layer_grad_{name}",
            f"the chain-rule product from the loss to ${name[0]}_{name[1]}$ equals ${formulas[name]}$ "
            "(with explicit matrices: tanh as the activation)",
            long=full_chain(targets[name], name in ("W1", "b1")),
            shortcut=shortcuts[name],
            explicit=EXPLICIT[name],
            explicit_sizes=EXPLICIT_SIZES if name in ("W1", "b1") else SECOND_LAYER_SIZES,
            long_title="The chain-rule product,",
            shortcut_title="backpropagation,",
        )
        for name in ("W2", "b2", "W1", "b1")
    )

    def through(error, n, size_, output, wrt):
        """Σ_n error_n ∂output_n/∂wrt, each partial derivative SymPy's, its sum of deltas collapsed."""
        return Sum(error[n] * collapse(sp.diff(output, wrt)), (n, 1, size_))

    identities += tuple(
        Identity(
            f"two_layer_step_{name}",
            f"one backpropagation step: the error at the layer times its Jacobian is ${formula}$ "
            "(with explicit matrices: any activation $a$, the error a vector of symbols)",
            long=long,
            shortcut=short,
            explicit=check,
            explicit_sizes=STEP_SIZES,
            long_title="The chain rule through the layer,",
            shortcut_title="the backpropagation formula,",
        )
        for name, formula, long, short, check in (
            (
                "W2",
                "h\\,\\delta_2^T",
                through(DELTA2, t, C, z2(t), W2[k, c]),
                grad_w2,
                explicit_step_w2,
            ),
            ("b2", "\\delta_2", through(DELTA2, t, C, z2(t), B2[c]), grad_b2, explicit_step_b2),
            (
                "delta1",
                "(W_2\\delta_2) \\odot a'(z_1)",
                through(DELTA2, t, C, z2_of_z1(t), Z1[k]),
                delta1,
                explicit_step_delta1,
            ),
            (
                "W1",
                "x\\,\\delta_1^T",
                through(DELTA1, m, H, z1(m), W1[j, k]),
                grad_w1,
                explicit_step_w1,
            ),
            ("b1", "\\delta_1", through(DELTA1, m, H, z1(m), B1[k]), grad_b1, explicit_step_b1),
        )
    )

    z = sp.Symbol("z", real=True)
    sections = (
        Section(
            "The three activations",
            "$a'$ above is whatever the activation's own page derived; the generated functions take one of "
            "three, each calling that page's generated derivative:",
            equations=tuple(
                (Derivative(a(z), z).subs(a, sp.Function(name)), result(name, "derivative"))
                for name in ACTIVATIONS
            ),
            text_after='`mlp_grads(x, W1, b1, W2, b2, y, activation="tanh")` calls '
            "`mlp_grads_tanh`, which checks its arguments once and makes one pass: the forward pass, "
            "δ₂ = S − y divided by the batch size once (for integer labels, 1 subtracted at each "
            "sample's label in place, with no one-hot matrix), δ₁ = (δ₂W₂ᵀ) ⊙ a′(z₁) from it, then "
            "the four gradients from those shared intermediates: $x^T\\delta_1$, "
            "$\\sum_b \\delta_1$, $h^T\\delta_2$, $\\sum_b \\delta_2$ (the mean over the batch, "
            "since δ₂ carries the 1/B).",
            place="after_steps",
        ),
    )
    kernels = tuple(
        kernel for activation in ACTIVATIONS for kernel in _kernels(activation, batch_mean)
    )
    dispatches = (
        Dispatch(
            name="mlp_logits",
            summary="The logits z₂ = W₂ᵀa(W₁ᵀx + b₁) + b₂ of the two-layer network, for the activation named.",
            option="activation",
            choices=tuple((act, (f"mlp_logits_{act}",)) for act in ACTIVATIONS),
            default="relu",
            returns_doc="the logits, shape (..., C)",
        ),
        Dispatch(
            name="mlp_grads",
            summary="The gradient of the mean cross-entropy over the batch with respect to every parameter "
            "of the two-layer network: (dW1, db1, dW2, db2).",
            option="activation",
            choices=tuple((act, (f"mlp_grads_{act}",)) for act in ACTIVATIONS),
            default="relu",
            returns_doc="(dW1, db1, dW2, db2), shaped (D, H), (H,), (H, C), (C,) like the parameters",
        ),
    )
    return Derivation(
        name="two_layer",
        title="A two-layer network",
        summary="Backpropagation through a hidden layer: every δ is the chain rule applied once more.",
        definitions=(
            Definition(
                Z1[k],
                z1(k),
                "the hidden layer's pre-activations, $z_1 = W_1^T x + b_1$ ($H$ of them)",
            ),
            Definition(
                HID[k], a(Z1[k]), "the hidden layer, for an activation $a$ (ReLU, sigmoid or tanh)"
            ),
            Definition(Z2[c], z2(c), "the logits, $z_2 = W_2^T h + b_2$ ($C$ of them)"),
            Definition(
                XE,
                -Sum(y[t] * sp.log(S[t]), (t, 1, C)),
                "the cross-entropy of $S = \\mathrm{softmax}(z_2)$, computed from the logits",
            ),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        sections=sections,
        dispatches=dispatches,
        results={
            "delta1": delta1,
            "weight_grad_W1": grad_w1,
            "weight_grad_W2": grad_w2,
            "bias_grad_b1": grad_b1,
            "bias_grad_b2": grad_b2,
            **{f"batch_mean_{n}": e for n, e in batch_mean.items()},
        },
    )
