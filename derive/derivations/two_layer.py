"""A two-layer network: backpropagation through a hidden layer, derived in index form.

x (D) → z₁ = W₁ᵀx + b₁ (H) → h = a(z₁) → z₂ = W₂ᵀh + b₂ (C) → cross-entropy from the logits z₂.
"""

from __future__ import annotations

import numpy as np
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
from derive.model import z as Z
from derive.steps import (
    Assign,
    Definition,
    Derivation,
    DerivativeOf,
    Dispatch,
    Example,
    Exercise,
    Figure,
    Identity,
    Kernel,
    LabelsForm,
    MatrixResult,
    Param,
    Result,
    Section,
    Step,
    every,
)
from derive.sympy_tools import evaluate, pull_out_of_sums, written_sums

H = size("H")  # hidden units


def exp_ratio(logits: sp.IndexedBase, i: sp.Idx):
    """The softmax of ``logits`` as a function of its entry, its own sum over ``i``."""
    return lambda c: sp.exp(logits[c]) / Sum(sp.exp(logits[i]), (i, 1, C))


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


# The examples' network: two samples, D = 2 inputs, H = 3 hidden units, C = 3 classes.
_NETWORK = (
    "np.array([[0.5, -1.0], [2.0, 0.3]]), np.array([[0.1, -0.4, 0.7], [0.5, 0.2, -0.3]]), "
    "np.array([0.0, 0.1, -0.2]), np.array([[0.3, -0.2, 0.6], [-0.5, 0.4, 0.1], "
    "[0.2, 0.7, -0.6]]), np.array([0.05, -0.05, 0.0])"
)
_TARGETS = "np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])"


def _linear_is_one_layer(answer: sp.Eq) -> bool:
    """True if ``answer`` gives z₂_c of the network with a(u) = u, checked at every c for
    D, H in 1..3 and C in 2..4, the network written out with explicit matrices."""
    if not isinstance(answer, sp.Eq) or not isinstance(answer.lhs, sp.Indexed):
        return False
    if answer.lhs.base != Z2:
        return False
    (c,) = answer.lhs.indices
    for sizes in every(D=range(1, 4), H=range(1, 4), C=range(2, 5)):
        n_in, n_hidden, n_classes = sizes["D"], sizes["H"], sizes["C"]
        xs = Matrix(n_in, 1, lambda j, _: X[j + 1])
        w1 = Matrix(n_in, n_hidden, lambda j, k: W1[j + 1, k + 1])
        b1 = Matrix(n_hidden, 1, lambda k, _: B1[k + 1])
        w2 = Matrix(n_hidden, n_classes, lambda k, t: W2[k + 1, t + 1])
        b2 = Matrix(n_classes, 1, lambda t, _: B2[t + 1])
        logits = w2.T * (w1.T * xs + b1) + b2  # h = a(z₁) = z₁
        numbers = {D: n_in, H: n_hidden, C: n_classes}
        for value in range(1, n_classes + 1):
            claimed = written_sums(answer.rhs.xreplace({c: value}).xreplace(numbers))
            if sp.expand(claimed - logits[value - 1]) != 0:
                return False
    return True


def _bias_gradient_matrix_form(answer: sp.Expr) -> bool:
    """The answer, a matrix expression of S and Y (B × C), is 1 × C and, written out for
    (B, C) = (2, 3) and (3, 2), entry c is the mean over the batch of S_bc − Y_bc (step
    *Mean over a batch*'s ∂L/∂b₂, with δ₂ = S − Y)."""
    for batch, classes in ((2, 3), (3, 2)):
        numbers = {B: batch, C: classes}
        if tuple(sp.sympify(n).xreplace(numbers) for n in answer.shape) != (1, classes):
            return False
        sized = answer.xreplace(numbers)  # S and Y now 2 × 3 (or 3 × 2) matrix symbols
        entries = {
            m: Matrix(*m.shape, lambda r, c, m=m: sp.IndexedBase(m.name)[r + 1, c + 1])
            for m in sized.atoms(sp.MatrixSymbol)
        }
        written = Matrix(sized.xreplace(entries).doit())
        S_, Y_ = sp.IndexedBase("S"), sp.IndexedBase("Y")
        for c in range(1, classes + 1):
            mean = sum(S_[b, c] - Y_[b, c] for b in range(1, batch + 1)) / batch
            if sp.expand(written[0, c - 1] - mean) != 0:
                return False
    return True


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


def _read(expr: sp.Basic) -> set:
    """The labels of the arrays ``expr`` reads: its entries' bases, and whole arrays (an
    activation applied to z₁)."""
    return {i.base.label for i in expr.atoms(sp.Indexed)} | {
        base.label for base in expr.atoms(sp.IndexedBase)
    }


def live_intermediates(kernel: Kernel) -> list[dict]:
    """Each array the kernel's body computes, in order: its name, its sizes (from its indices'
    ranges), the body position that computes it and the last that reads it (a result
    reads where the generated code computes it, `Kernel.results_after`: right after a body
    position, or after the body). A backward pass keeps an intermediate of the forward
    pass until that last read: what the generated code deletes after it."""
    body = kernel.body
    results = [kernel.returns.expression] + [r.returns.expression for r in kernel.more]
    # (position, a result?, expression): the body's, then each result where it is computed,
    # which reads right after its position's array is made
    readers = [(n, False, assign.expression) for n, assign in enumerate(body)] + [
        (len(body) if after is None else after, True, result)
        for result, after in zip(results, kernel.results_after, strict=True)
    ]
    found = []
    for position, assign in enumerate(body):
        label = assign.target.label if isinstance(assign.target, sp.IndexedBase) else assign.target
        reads = [
            n
            for n, result, expr in readers
            if (n > position or (result and n == position)) and label in _read(expr)
        ]
        sizes = tuple(i.upper for i in assign.indices)
        found.append(
            {
                "name": str(label),
                "sizes": sizes,
                "made": position,
                "last": max(reads, default=position),
            }
        )
    return found


def peak_live(found: list[dict], numbers: dict) -> tuple[int, list[str]]:
    """The most numbers held at once by the intermediates, at ``numbers``, and which they are."""
    best, names = 0, []
    for position in range(max(f["last"] for f in found) + 1):
        live = [f for f in found if f["made"] <= position <= f["last"]]
        held = sum(int(sp.Mul(*f["sizes"]).xreplace(numbers)) for f in live)
        if held > best:
            best, names = held, [f["name"] for f in live]
    return best, names


DEAD_RATES = (0.5, 3.0)  # the learning rates the dead-ReLU figure compares


def count_dead_units(generated, rate: float, steps: int = 150, hidden: int = 32) -> dict:
    """Mini-batch gradient descent with ``mlp_grads`` (ReLU) on scikit-learn's digits, He's
    initialisation, from seed 0: every 10 steps, how many hidden units are dead (z₁ ≤ 0 for
    every image), and the final training accuracy."""
    from derive.derivations.cross_entropy_options import digits

    inputs, labels = digits()
    inputs = inputs[:, :-1]  # the first layer has its own bias
    one_hot = np.eye(10)[labels]
    rng = np.random.default_rng(0)
    n_in = inputs.shape[1]
    W1 = rng.standard_normal((n_in, hidden)) * np.sqrt(2 / n_in)
    b1 = np.zeros(hidden)
    W2 = rng.standard_normal((hidden, 10)) * np.sqrt(1 / hidden)
    b2 = np.zeros(10)
    dead, at = [], []
    for step in range(steps + 1):
        if step % 10 == 0:
            dead.append(int(np.sum(np.all(inputs @ W1 + b1 <= 0, axis=0))))
            at.append(step)
        if step == steps:
            break
        batch = rng.integers(0, len(labels), 64)
        grads = generated.mlp_grads(
            inputs[batch], W1, b1, W2, b2, one_hot[batch], activation="relu"
        )
        W1, b1, W2, b2 = (p - rate * g for p, g in zip((W1, b1, W2, b2), grads))
    logits = generated.mlp_logits(inputs, W1, b1, W2, b2, activation="relu")
    return {
        "dead": np.array(dead),
        "at": np.array(at),
        "hidden": hidden,
        "accuracy": float(np.mean(logits.argmax(axis=1) == labels)),
    }


def _dead_relus(fig, generated, posts) -> None:
    ax = fig.subplots()
    for rate in DEAD_RATES:
        run = count_dead_units(generated, rate)
        ax.plot(
            run["at"],
            run["dead"],
            "o-",
            label=f"learning rate {rate:g}: {run['dead'][-1]} of {run['hidden']} dead at the "
            f"end, training accuracy {run['accuracy']:.2f}",
        )
    ax.set_xlabel("mini-batch step (64 images)")
    ax.set_ylabel("dead hidden units")
    ax.set_ylim(0, run["hidden"] + 1)
    ax.set_title("ReLU units with z₁ ≤ 0 on every digit image", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


DEPTH_LAYERS, DEPTH_WIDTH = 20, 32  # the vanishing-gradient figure's network
DEPTH_ACTIVATIONS = ("sigmoid", "tanh", "relu")


def gradients_through_depth(generated, activation: str, seed: int = 0) -> dict:
    """A deep square network without biases, z_l = h_{l−1} W_l and h_l = a(z_l), with Glorot's
    initialisation (He's for ReLU) on 64 random inputs, and a random error at the top: the
    backward pass δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ a'(z_l), with a and a' the generated functions.
    Returns per layer, counted from the input, ‖∂L/∂W_l‖ = ‖h_{l−1}ᵀ δ_l‖ and the mean slope."""
    forward, slope = getattr(generated, activation), getattr(generated, f"{activation}_grad")
    rng = np.random.default_rng(seed)
    gain = 2.0 if activation == "relu" else 1.0
    weights = [
        rng.standard_normal((DEPTH_WIDTH, DEPTH_WIDTH)) * np.sqrt(gain / DEPTH_WIDTH)
        for _ in range(DEPTH_LAYERS)
    ]
    inputs, pre = [rng.standard_normal((64, DEPTH_WIDTH))], []
    for layer in weights:
        pre.append(inputs[-1] @ layer)
        inputs.append(forward(pre[-1]))
    error = rng.standard_normal((64, DEPTH_WIDTH))  # ∂L/∂h at the top
    norms, slopes = [], []
    for layer in reversed(range(DEPTH_LAYERS)):
        local = slope(pre[layer])
        delta = error * local
        norms.append(np.linalg.norm(inputs[layer].T @ delta))
        slopes.append(local.mean())
        error = delta @ weights[layer].T
    return {"gradient_norm": np.array(norms[::-1]), "mean_slope": np.array(slopes[::-1])}


def _vanishing_gradients(fig, generated, posts) -> None:
    from derive.figures import margins

    left, right = fig.subplots(1, 2)
    margins(fig, left=0.65, right=0.15, bottom=0.62, top=0.35, wspace=0.27)
    layers = np.arange(1, DEPTH_LAYERS + 1)
    for activation in DEPTH_ACTIVATIONS:
        run = gradients_through_depth(generated, activation)
        ratio = run["gradient_norm"][0] / run["gradient_norm"][-1]
        left.semilogy(
            layers,
            run["gradient_norm"],
            label=f"{activation}: layer 1 / layer {DEPTH_LAYERS} = {ratio:.1e}",
        )
        right.plot(layers, run["mean_slope"])  # coloured as on the left
    for bound, words in ((0.25, "σ′ ≤ 1/4"), (1.0, "tanh′ ≤ 1")):
        right.axhline(bound, color="gray", linestyle="--", linewidth=0.8)
        right.text(DEPTH_LAYERS, bound + 0.02, words, ha="right", va="bottom", fontsize=7)
    left.set_title("‖∂L/∂W_l‖, one random error sent back", fontsize=9)
    right.set_title("the mean slope a′(z_l), coloured as on the left", fontsize=9)
    right.set_ylim(0, 1.15)
    left.legend(fontsize=7)
    for ax in (left, right):
        ax.set_xlabel("layer l (1: next to the input)")
        ax.grid(alpha=0.3)


LAYERS = sp.Symbol("L", integer=True, positive=True)
SLOPES = sp.Symbol("P")  # the first exercise's answer: the largest product of slopes


def _sigmoid_layers(answer) -> bool:
    """True if the answer is, for L = 1..5, the largest product of L sigmoid slopes: each slope's
    largest value, found by SymPy where its derivative vanishes, to the L-th power."""
    if not isinstance(answer, sp.Eq) or answer.lhs != SLOPES:
        return False
    v = sp.Symbol("v", real=True)
    slope = sp.diff(1 / (1 + sp.exp(-v)), v)
    (peak,) = sp.solve(sp.diff(slope, v), v)  # the one stationary point, v = 0
    largest = sp.simplify(slope.subs(v, peak))
    return all(sp.simplify(answer.rhs.subs(LAYERS, n) - largest**n) == 0 for n in range(1, 6))


UNDIMINISHED = sp.Symbol("w^*")  # the exercise's answer: the weight that makes up for σ'


def _weight_undiminished(answer) -> bool:
    """True if a one-unit sigmoid layer with the answer's weight, at the slope's maximum (found
    by SymPy where its derivative vanishes), passes a gradient on unchanged: w σ'(v*) = 1."""
    if not isinstance(answer, sp.Eq) or answer.lhs != UNDIMINISHED:
        return False
    v = sp.Symbol("v", real=True)
    slope = sp.diff(1 / (1 + sp.exp(-v)), v)
    (peak,) = sp.solve(sp.diff(slope, v), v)
    return sp.simplify(answer.rhs * slope.subs(v, peak) - 1) == 0


MAX_GRADIENT = sp.MatrixSymbol("\\nabla_{(p, q, r)}", 3, 1)  # a column, as the answer
UPSTREAM = sp.Symbol("g", real=True)


def _max_routes(answer) -> bool:
    """True if the answer is g times SymPy's gradient of max(p, q, r) at p = 3, q = 1, r = 2."""
    if not isinstance(answer, sp.Eq) or answer.lhs != MAX_GRADIENT:
        return False
    p, q, r = sp.symbols("p q r", real=True)
    point = {p: 3, q: 1, r: 2}
    gradient = sp.Matrix([sp.diff(sp.Max(p, q, r), u).subs(point) for u in (p, q, r)])
    return sp.Matrix(answer.rhs) - UPSTREAM * gradient == sp.zeros(3, 1)


def _shape_text(sizes: tuple) -> str:
    """An array's shape as LaTeX: B \\times H."""
    return " \\times ".join(sp.latex(n) for n in sizes)


def _phase(found: dict, kernel: Kernel) -> str:
    """Where an intermediate lives, in words: the body's positions it spans."""
    names = [str(a.target.label) for a in kernel.body]
    last = found["last"]
    until = "the end (it is read by a gradient)" if last >= len(names) else f"`{names[last]}`"
    return f"until {until}"


def flow_steps(c, t, k) -> tuple[Step, ...]:
    """CS231n's patterns in the backward flow, each on this page's own layer: an add passes the
    gradient on unchanged, a multiply swaps its inputs, a max routes it to the larger; and the
    slopes that make gradients vanish (σ′ ≤ 1/4) or die (ReLU below 0)."""
    p, q, v = (sp.Symbol(n, real=True) for n in ("p", "q", "v"))
    w1, w2, u1, u2 = (sp.Symbol(n, real=True) for n in ("w_1", "w_2", "u_1", "u_2"))
    sigma = sp.Function("sigma")
    logistic = ((sigma(v), 1 / (1 + sp.exp(-v))),)
    return (
        Step(
            "Add distributes",
            "$z_2 = W_2^T h + b_2$ ends in an addition, and an add node's local derivative is 1 "
            "for each input: the error $\\delta_2$ arriving at $z_2$ goes on **unchanged** to "
            "$b_2$ ({step:b2-gradient}) and to $W_2^T h$ alike.",
            Sum(DELTA2[t] * Derivative(Z2[t], B2[c]), (t, 1, C)),
            DELTA2[c],
            start="the error at $z_2$ sent to $b_2$",
            key="add-distributes",
        ),
        Step(
            "Multiply swaps",
            "Each term $W_{2,kt} h_k$ is a product: the gradient reaching $h_k$ is the error times "
            "the **other** factor, $W_2$; the one reaching $W_{2,kc}$ ({step:w2-gradient}) is the "
            "error times $h_k$. Large activations make large weight gradients, and the reverse.",
            Sum(DELTA2[t] * Derivative(Z2[t], HID[k]), (t, 1, C)),
            Sum(W2[k, t] * DELTA2[t], (t, 1, C)),
            start="the error at $z_2$ sent to $h$",
            key="multiply-swaps",
        ),
        Step(
            "Max routes",
            "A max node passes the whole gradient to whichever input was larger and nothing to "
            "the other: SymPy's derivative of $\\max(p, q)$ in $p$ is the step function of "
            "$p - q$. ReLU is $\\max(z_1, 0)$: $\\delta_1$ is the error $W_2 \\delta_2$ where "
            "$z_1 > 0$, and 0 elsewhere (at a tie the value is a convention: the ReLU page).",
            Derivative(sp.Max(p, q), p),
            sp.Heaviside(p - q),
            start="a max of two numbers",
            key="max-routes",
        ),
        Step(
            "The sigmoid's slope is at most 1/4",
            "With $\\sigma(v) = 1 / (1 + e^{-v})$, $1/4 - \\sigma'(v)$ is a square, so never "
            "negative: $\\sigma' \\le 1/4$, with equality only where $\\sigma = 1/2$, at $v = 0$.",
            sp.Rational(1, 4) - Derivative(sigma(v), v),
            (sigma(v) - sp.Rational(1, 2)) ** 2,
            where=logistic,
            start="the gap between $1/4$ and the sigmoid's slope",
            checked="explicit",  # exponentials: SymPy cancels the written-out sides exactly
            key="sigmoid-slope-bound",
        ),
        Step(
            "Its maximum, at 0",
            "The bound is attained: $\\sigma'(0) = \\sigma(0)(1 - \\sigma(0)) = 1/4$.",
            sp.Subs(Derivative(sigma(v), v), v, 0),
            sp.Rational(1, 4),
            where=logistic,
            start="the slope at 0",
            key="sigmoid-slope-maximum",
        ),
        Step(
            "The tanh's slope is at most 1",
            "$1 - \\tanh'(v) = \\tanh^2(v) \\ge 0$: the slope is at most 1, reached at $v = 0$ "
            "only. Each layer multiplies $\\delta$ by the slope: through sigmoids the factor "
            "is at most $1/4$ per layer, through tanh at most 1 and less wherever a unit "
            "saturates.",
            1 - Derivative(sp.tanh(v), v),
            sp.tanh(v) ** 2,
            start="the gap between 1 and the tanh's slope",
            key="tanh-slope-bound",
        ),
        Step(
            "A ReLU below 0 passes nothing back",
            "Where $z_{1,k} < 0$ the ReLU's slope is 0, so $\\delta_{1,k} = 0$ and, by "
            "{steps:w1-gradient and b1-gradient}, so are the gradients of $W_{1,\\cdot k}$ and "
            "$b_{1,k}$. A unit below 0 for **every** input never changes again: it is *dead*.",
            Derivative(sp.Max(0, v), v),
            sp.Integer(0),
            relation="=>",
            given=(sp.StrictLessThan(v, 0),),
            start="the ReLU's slope",
            checked="numeric",  # a relation (v < 0): checked at points that satisfy it
            key="dead-relu",
        ),
        Step(
            "Through layers, weights and slopes multiply",
            "Two sigmoid layers of one unit each, $u_1 = w_1 v$ and $u_2 = w_2 \\sigma(u_1)$: the "
            "chain rule gives one factor $w_l \\sigma'(u_l)$ per layer, with $\\sigma' = \\sigma(1 "
            "- \\sigma)$. Through $L$ layers the gradient reaching the input is a product of $L$ "
            "such factors, at most $\\prod_l |w_l| / 4^L$ by {step:sigmoid-slope-bound}: unless "
            "the weights grow to compensate, it shrinks geometrically with depth. The last figure "
            "measures it in a network of many units per layer.",
            Derivative(sigma(w2 * sigma(w1 * v)), v),
            w2 * sigma(u2) * (1 - sigma(u2)) * w1 * sigma(u1) * (1 - sigma(u1)),
            where=(*logistic, (u2, w2 * sigma(u1)), (u1, w1 * v)),
            start="the input's gradient through two sigmoid layers",
            checked="explicit",  # exponentials of exponentials: SymPy cancels them written out
            key="through-layers",
        ),
    )


def _kernels(activation: str, batch_mean: dict) -> tuple[Kernel, ...]:
    """mlp_logits_<activation> and the four gradient kernels for one activation."""
    j, d = index("j", D), index("d", D)
    k, m = index("k", H), index("n", H)  # m prints n: m is kept for the logits' maximum
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
        conditioning="z₁ = W₁ᵀx + b₁ and z₂ = W₂ᵀh + b₂ add terms of both signs: where they "
        "cancel, an entry is small but its rounding error is relative to the sum of the terms' "
        "magnitudes, so no bound in ulps of the entry holds (the norm-wise error stays small).",
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
            # ReLU's slope read from its output, θ(h) = θ(z₁) (identity two_layer_relu_slope_from_h):
            # z₁ is then read by the activation alone, which writes h over it, as by hand
            Assign(slope, (b, k), act_grad(HID if activation == "relu" else Z1)),
            Assign(delta1, (b, k), backward[b, k] * slope[b, k]),
        )

    conditioning = (
        "a sum over the batch of terms of both signs (and, for the first layer, over the "
        "classes): where they cancel, the error is relative to the sum of their magnitudes, "
        "not to the result. "
        "S − Y is computed as written: for a sample predicted nearly certainly and correctly, "
        "S_c − 1 at its label is a rounding error of 1 (up to an ulp of 1), not the true "
        "−Σ_{k≠c} S_k (which cross_entropy_from_logits_grad computes); where the other "
        "samples' terms are smaller still (every sample such a one, or saturated hidden "
        "units), even the norm-wise error is of the order of the result."
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
    k, m = index("k", H), index("n", H)  # m prints n: m is kept for the logits' maximum
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
    chain_w1 = Sum(DELTA1[m] * Derivative(Z1[m], W1[j, k]), (m, 1, H))
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
    # What the steps' names mean, through the inputs (the definitions give z₁, h, z₂ and XE):
    # S through z₂, δ₂ through S and y, δ₁ through δ₂ and z₁, and the activation a, which the
    # steps check as tanh (the identities below check each backpropagation step for any a).
    i = index("i", C)  # the softmax's own sum, apart from t and c
    u = sp.Symbol("u", real=True)
    softmax_of = exp_ratio(Z2, i)
    names = (
        (S[c], softmax_of(c)),
        (DELTA2[c], S[c] - y[c]),
        (DELTA1[k], delta1),
        (a(u), sp.tanh(u)),
    )
    labels_sum = ((Sum(y[t], (t, 1, C)), 1),)  # Σ_t y_t = 1: what makes ∂XE/∂z₂ = S − y

    # the batch: sample b's own x, z₁, h, z₂, S, y, δ₂ and δ₁ (rows b), each defined as above
    XE_b, S_b = sp.IndexedBase("XE"), sp.IndexedBase("S")
    # a build checks the first (small), the test suite also the second, every size apart
    batch_sizes = ({"B": 2, "C": 2, "D": 2, "H": 2}, {"B": 2, "C": 3, "D": 4, "H": 5})
    batched = (
        (XE_b[b], -Sum(Y[b, t] * sp.log(S_b[b, t]), (t, 1, C))),
        (S_b[b, c], sp.exp(Z2[b, c]) / Sum(sp.exp(Z2[b, i]), (i, 1, C))),
        (Z2[b, c], Sum(W2[m, c] * HID[b, m], (m, 1, H)) + B2[c]),
        (HID[b, k], a(Z1[b, k])),
        (Z1[b, k], Sum(W1[d, k] * X[b, d], (d, 1, D)) + B1[k]),
        (DELTA1[b, k], delta1.xreplace({DELTA2[t]: DELTA2[b, t], Z1[k]: Z1[b, k]})),
        (DELTA2[b, c], S_b[b, c] - Y[b, c]),
    )
    # Σ_t y_bt = 1 for each sample b (an index of the given's own: it holds for every value)
    batch_labels = ((Sum(Y[b, t], (t, 1, C)), 1),)

    # the one-layer case with a bias: its own logits z = Wᵀx + β, and S through them
    one_layer = (
        (S[c], exp_ratio(Z, i)(c)),
        (Z[c], summation(c) + beta[c]),
    )

    steps = (
        Step(
            "The output error δ₂ = S − y",
            "The loss from the logits is differentiated on its own page: $\\partial XE/\\partial "
            "z_{2,c} = S_c - y_c$, using $\\sum_t y_t = 1$. Name it $\\delta_{2,c}$.",
            Derivative(XE, Z2[c]),
            logit_grad,
            relation="=>",
            given=labels_sum,
        ),
        Step(
            "Second-layer weights: the chain rule through z₂",
            "$W_{2,kc}$ reaches the loss through every logit $z_{2,t}$.",
            Derivative(XE, W2[k, c]),
            chain_w2,
            relation="=>",
            given=labels_sum,
            start="the loss",
            checked="explicit",  # the softmax through z₂: SymPy cancels it at explicit sizes
        ),
        Step(
            "∂XE/∂W₂ = h δ₂ᵀ",
            "Differentiate $z_{2,t} = \\sum_n W_{2,nt} h_n + b_{2,t}$: "
            "$\\partial z_{2,t}/\\partial W_{2,kc} = \\delta_{tc} h_k$, so the sum keeps $t = c$: "
            "an outer product.",
            chain_w2,
            grad_w2,
            key="w2-gradient",
        ),
        Step(
            "∂XE/∂b₂ = δ₂",
            "$\\partial z_{2,t} / \\partial b_{2,c} = \\delta_{tc}$: the chain rule through "
            "$z_2$ keeps $t = c$.",
            Derivative(XE, B2[c]),
            grad_b2,
            relation="=>",
            given=labels_sum,
            start="the loss",
            key="b2-gradient",
        ),
        Step(
            "Back through W₂ and the activation",
            "$z_{1,k}$ reaches the loss through $h_k = a(z_{1,k})$ and every logit. The "
            "activation $a$ is any differentiable function: the build checks the step with "
            "$a = \\tanh$.",
            Derivative(XE, Z1[k]),
            chain_delta1,
            relation="=>",
            given=labels_sum,
            start="the loss",
            checked="explicit",  # the softmax through z₂: SymPy cancels it at explicit sizes
        ),
        Step(
            "δ₁ = (W₂δ₂) ⊙ a′(z₁)",
            "Differentiate $z_{2,t} = \\sum_n W_{2,nt}\\, a(z_{1,n}) + b_{2,t}$: only $n = k$ "
            "depends on $z_{1,k}$, and SymPy keeps $a'$ as the derivative of the unknown "
            "function; $a'(z_{1,k})$ leaves the sum over $t$.",
            chain_delta1,
            delta1,
        ),
        Step(
            "First-layer weights: the chain rule through z₁",
            "$W_{1,jk}$ reaches the loss through every hidden pre-activation $z_{1,n}$, each "
            "with its $\\delta_{1,n} = \\partial XE/\\partial z_{1,n}$.",
            Derivative(XE, W1[j, k]),
            chain_w1,
            relation="=>",
            given=labels_sum,
            start="the loss",
            checked="explicit",  # the softmax through z₂: SymPy cancels it at explicit sizes
        ),
        Step(
            "∂XE/∂W₁ = x δ₁ᵀ",
            "As for $W_2$, one layer down: $\\partial z_{1,n}/\\partial W_{1,jk} = "
            "\\delta_{nk} x_j$, with $\\delta_1$ in place of $\\delta_2$.",
            chain_w1,
            grad_w1,
            key="w1-gradient",
        ),
        Step(
            "∂XE/∂b₁ = δ₁",
            "$\\partial z_{1,n} / \\partial b_{1,k} = \\delta_{nk}$: the chain rule through "
            "$z_1$ keeps $n = k$.",
            Derivative(XE, B1[k]),
            grad_b1,
            relation="=>",
            given=labels_sum,
            start="the loss",
            checked="explicit",  # the softmax through z₂: SymPy cancels it at explicit sizes
            key="b1-gradient",
        ),
        Step(
            "Mean over a batch",
            "$L = \\frac{1}{B}\\sum_b XE_b$: the mean of the per-sample gradients, each sample with its "
            "own row $b$ of $x$, $h$ and the deltas, and its own targets summing to 1 (written out "
            "for the two samples the build checks it with). For $W_1$:",
            Derivative(Sum(XE_b[b], (b, 1, B)) / B, W1[j, k]),
            batch_mean["W1"],
            relation="=>",
            where=batched,
            given=batch_labels,
            start="the mean loss over a batch",
            checked="explicit",  # two samples through the network: cancelled at one size
            sizes=batch_sizes,
        ),
        Step(
            "One layer with a bias: the weights",
            "The posts' layer plus a bias, $z = W^T x + \\beta$: the chain rule through $z$, "
            "with $\\partial XE/\\partial z_t = S_t - y_t$ and $\\partial z_t/\\partial W_{jc} = "
            "\\delta_{tc} x_j$, gives the posts' gradient, unchanged by $\\beta$.",
            Derivative(XE, W[j, c]),
            one_layer_w,
            relation="=>",
            where=one_layer,
            given=labels_sum,
            start="the loss of one layer with a bias",
            checked="explicit",  # the softmax through z: SymPy cancels it at explicit sizes
        ),
        Step(
            "One layer with a bias: the bias",
            "$\\partial z_t/\\partial \\beta_c = \\delta_{tc}$, so the bias gradient is $S - y$.",
            Derivative(XE, beta[c]),
            one_layer_b,
            relation="=>",
            where=one_layer,
            given=labels_sum,
            start="the same loss",
        ),
    )

    steps += flow_steps(c, t, k)

    def full_chain(wrt, through_hidden: bool):
        """Σ_t (S_t − y_t) ∂z₂_t/∂(wrt), with the hidden layer's chain written out when it is in the path;
        each partial derivative of an affine map is SymPy's, its sum of deltas collapsed."""
        if not through_hidden:
            return Sum(logit_grad_t * collapse(sp.diff(z2(t), wrt)), (t, 1, C))
        n = index("k'", H)  # not n (m prints n), the index z₂'s own sum runs over
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

    relu_slope = result("relu", "derivative")  # θ(z, 0), the ReLU page's choice at 0
    (relu_input,) = relu_slope.free_symbols
    identities += (
        Identity(
            "two_layer_relu_slope_from_h",
            "ReLU's slope read from its output: $\\theta(h_k) = \\theta(z_{1,k})$ for "
            "$h_k = \\max(z_{1,k}, 0)$, so the step keeps $h$ and not $z_1$",
            long=relu_slope.subs(relu_input, sp.Max(Z1[k], 0)),
            shortcut=relu_slope.subs(relu_input, Z1[k]),
            long_title="The ReLU page's slope at $h_k$,",
            shortcut_title="its slope at $z_{1,k}$,",
        ),
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
            "sample's label in place, with no one-hot matrix), δ₁ = (δ₂W₂ᵀ) ⊙ a′(z₁) from it "
            "(for ReLU, a′ read from h, which is written over z₁: the last identity), then "
            "the four gradients from those shared intermediates: $x^T\\delta_1$, "
            "$\\sum_b \\delta_1$, $h^T\\delta_2$, $\\sum_b \\delta_2$ (the mean over the batch, "
            "since δ₂ carries the 1/B).",
            place="after_steps",
        ),
    )
    z1k = Z1[k]
    logistic = 1 / (1 + sp.exp(-z1k))  # the sigmoid page's σ, at z₁,k
    (backward,) = delta1.atoms(Sum)  # Σ_t W₂,kt δ₂,t
    exercises = (
        Exercise(
            "Take the sigmoid as the activation, $h = \\sigma(z_1)$. Write $\\delta_{1,k}$ "
            "with $h_k$ alone, without $z_{1,k}$: what does the backward pass need to keep from "
            "the forward pass?",
            sp.Eq(DELTA1[k], backward * HID[k] * (1 - HID[k])),
            Identity(
                "two_layer_sigmoid_delta1",
                "with $a = \\sigma$, $\\delta_{1,k} = h_k (1 - h_k) \\sum_t W_{2,kt} "
                "\\delta_{2,t}$",
                long=delta1.xreplace({Derivative(a(z1k), z1k): sp.diff(logistic, z1k)}),
                shortcut=backward * logistic * (1 - logistic),
                long_title="The first layer's error $\\delta_1$ with $a = \\sigma$,",
                shortcut_title="the same with $h = \\sigma(z_1)$,",
            ),
            answer="The sigmoid page's $\\sigma' = \\sigma(1 - \\sigma)$ gives "
            "$a'(z_{1,k}) = h_k(1 - h_k)$: the backward pass needs only the hidden layer $h$ "
            "it computed going forward, not $z_1$ (for tanh, $1 - h_k^2$ likewise; for ReLU, "
            "whether $h_k > 0$). SymPy proves it in index form.",
            title="The sigmoid's δ₁ from h",
        ),
        Exercise(
            "Take no activation, $a(u) = u$. Show that the logits $z_2$ are then those of one "
            "layer, and say which weights and bias it has. What does the hidden layer add?",
            sp.Eq(
                Z2[c],
                Sum(Sum(W1[d, m] * W2[m, c], (m, 1, H)) * X[d], (d, 1, D))
                + Sum(W2[m, c] * B1[m], (m, 1, H))
                + B2[c],
            ),
            _linear_is_one_layer,
            answer="$z_2 = W_2^T(W_1^T x + b_1) + b_2 = (W_1 W_2)^T x + (W_2^T b_1 + b_2)$: one "
            "layer with weights $W_1 W_2$ ($D \\times C$, of rank at most $H$) and bias "
            "$W_2^T b_1 + b_2$. Without a nonlinear $a$ the hidden layer adds nothing the posts' "
            "layer cannot do (and with $H < \\min(D, C)$ it takes something away). SymPy "
            "checks the answer against the network with $a(u) = u$, written out for every "
            "$D, H \\le 3$, $C \\le 4$.",
            title="Without an activation, one layer",
        ),
        Exercise(
            "Write $\\nabla_{b_2} L$, the second bias's gradient over a batch, in matrix form "
            "with $S$ and $Y$ ($B \\times C$), as the last section writes $\\nabla_{W_1} L$. "
            "What shape must it have, and which matrix turns the sum over the batch into a "
            "product?",
            sp.OneMatrix(1, B) * (sp.MatrixSymbol("S", B, C) - sp.MatrixSymbol("Y", B, C)) / B,
            _bias_gradient_matrix_form,
            answer="$b_2$ has $C$ entries, so its gradient is $1 \\times C$ (a row, as $b_2$ "
            "is added to every row of $Z_2$). Step *Mean over a batch* sums $\\delta_{2,bc}$ "
            "over the samples: a row of $B$ ones times the $B \\times C$ errors, "
            "$(1 \\times B)(B \\times C)$, divided by $B$: the column means of $S - Y$. SymPy "
            "writes it out for $(B, C) = (2, 3)$ and $(3, 2)$ and compares each entry with the "
            "mean of $S_{bc} - Y_{bc}$.",
            title="The bias's gradient in matrix form",
        ),
    )
    examples = (
        Example(
            "One backward pass, tanh",
            f"mlp_grads({_NETWORK}, {_TARGETS}, activation='tanh')[0]",
            reference=f"(lambda x, W1, b1, W2, b2, y: (lambda h: (lambda S: x.T @ (((S - y) / "
            "len(x)) @ W2.T * (1 - h**2)))(np.exp(h @ W2 + b2) / np.exp(h @ W2 + b2).sum(1, "
            f"keepdims=True)))(np.tanh(x @ W1 + b1)))({_NETWORK}, {_TARGETS})",
            reference_title="the same backward pass, written by hand in NumPy",
            text="Two samples ($B = 2$), $D = 2$ inputs, $H = 3$ hidden units, $C = 3$ classes: "
            "$\\partial L/\\partial W_1 = x^T \\delta_1$, the deepest of the four gradients, "
            "with $\\delta_1 = ((S - y)/B)\\,W_2^T \\odot (1 - h^2)$.",
        ),
        Example(
            "A dead ReLU unit, with integer labels",
            f"mlp_grads({_NETWORK}, np.array([2, 0]), activation='relu')[1]",
            reference="(lambda x, W1, b1, W2, b2, y: (lambda z1: (lambda S: ((((S - y) / len(x)) "
            "@ W2.T) * (z1 > 0)).sum(0))((lambda z2: np.exp(z2) / np.exp(z2).sum(1, "
            f"keepdims=True))(np.maximum(z1, 0) @ W2 + b2)))(x @ W1 + b1))({_NETWORK}, "
            "np.eye(3)[[2, 0]])",
            reference_title="the same with one-hot rows, written by hand in NumPy",
            text="The same network with ReLU, the labels given as classes (2 and 0, counted "
            "from 0): $\\partial L/\\partial b_1$. The second hidden unit's $z_{1,2}$ is "
            "negative for both samples ($-0.3$ and $-0.64$), so $a'(z_{1,2}) = 0$ and no "
            "gradient reaches its bias or its weights.",
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
    # In matrix form, for the batch: rows of X (B × D), S and Y (B × C), and a'(Z₁) (B × H)
    slope_entries = sp.IndexedBase("a'(Z_{1})")
    delta1_in_rows = delta1.xreplace({DELTA2[t]: S_b[b, t] - Y[b, t], Z1[k]: Z1[b, k]}).replace(
        lambda e: isinstance(e, Derivative), lambda e: slope_entries[b, k]
    )
    first_layer = batch_mean["W1"].xreplace({DELTA1[b, k]: delta1_in_rows})
    X_rows, S_rows, Y_rows = (
        sp.MatrixSymbol(name, B, width) for name, width in (("X", D), ("S", C), ("Y", C))
    )
    matrix_result = MatrixResult(
        group="hidden_layer",
        lhs=sp.MatrixSymbol("\\nabla_{W_1} L", D, H),
        rhs=X_rows.T
        * sp.HadamardProduct(
            (S_rows - Y_rows) * sp.MatrixSymbol("W2", H, C).T, sp.MatrixSymbol("a'(Z_{1})", B, H)
        )
        / B,
        index_form=first_layer.xreplace({X: sp.IndexedBase("X"), Y: sp.IndexedBase("Y")}),
        entry=((j,), (k,)),
        where=((slope_entries[b, k], sp.diff(a(Z1[b, k]), Z1[b, k])),),
        text="The first layer's gradient over a batch: the output errors $S - Y$ sent back "
        "through $W_2^T$, gated entrywise ($\\circ$) by the activation's slope, then one matrix "
        "product with the inputs. Every inner size matches: $(B \\times C)(C \\times H)$, "
        "then $(D \\times B)(B \\times H)$.",
    )
    exercises += (
        Exercise(
            "A gradient passes back through $L$ sigmoid layers. Ignoring the weights, what is "
            "the largest factor $P$ the $L$ slopes $\\sigma'(v_1) \\cdots \\sigma'(v_L)$ can "
            "contribute?",
            sp.Eq(SLOPES, sp.Rational(1, 4) ** LAYERS),
            _sigmoid_layers,
            answer="Each slope is at most $1/4$ ({step:sigmoid-slope-bound}), reached at $v = 0$, "
            "so the product is at most $4^{-L}$: "
            f"{4.0**-10:.1e} for ten layers. Unless the weights make up for it, the early layers "
            "of a deep sigmoid network learn far more slowly: the *vanishing gradient*. SymPy "
            "finds the slope's one stationary point, its value there, and compares the answer "
            "for $L = 1..5$.",
            title="Vanishing through sigmoids",
        ),
        Exercise(
            "{Step:through-layers} makes each sigmoid layer contribute $w_l \\sigma'(u_l)$. How "
            "large must a weight $w^*$ be for a layer at its steepest point to pass the gradient "
            "on unchanged? Why does making the weights that large not rescue a deep sigmoid "
            "network?",
            sp.Eq(UNDIMINISHED, 4),
            _weight_undiminished,
            answer="$w^* \\sigma'(0) = w^*/4 = 1$ gives $w^* = 4$. But $u_l = w_l h_{l-1}$ "
            "grows with the weight: with weights of that size most units sit far from 0, "
            "where $\\sigma'$ is far below $1/4$ (it decays like $e^{-|u|}$), so the "
            "factors fall again, or, where they exceed 1, the gradient explodes instead. "
            "Initialisations (Glorot's for sigmoid and tanh, He's for ReLU) and activations "
            "with slope 1 near 0 (tanh, ReLU) are the usual answers: the second figure shows "
            "both. SymPy finds the slope's maximum and checks $w^* \\sigma'(0) = 1$.",
            title="The weight that would make up for the slope",
        ),
        Exercise(
            "A max node computes $\\max(p, q, r)$ at $p = 3$, $q = 1$, $r = 2$, and the "
            "gradient $g$ arrives from above. What gradient goes to $(p, q, r)$?",
            sp.Eq(MAX_GRADIENT, sp.Matrix([UPSTREAM, 0, 0]), evaluate=False),
            _max_routes,
            answer="All of $g$ goes to the largest input, $p$; the others get 0 "
            "({step:max-routes}'s pattern, with three inputs). Max pooling routes its gradient the "
            "same way. SymPy differentiates $\\max(p, q, r)$ by each input at the point and "
            "compares.",
            title="A max routes its gradient",
        ),
    )
    relu_grads = next(k for k in kernels if k.name == "mlp_grads_relu")
    found = live_intermediates(relu_grads)
    example = {B: 128, D: 784, H: 256, C: 10}  # a batch of MNIST images, 256 hidden units
    peak, at_peak = peak_live(found, example)
    rows = "\n".join(
        f"| `{f['name']}` | ${_shape_text(f['sizes'])}$ | "
        f"{int(sp.Mul(*f['sizes']).xreplace(example)):,} | "
        f"{_phase(f, relu_grads)} |"
        for f in found
    )
    sections += (
        Section(
            "Patterns in the backward flow",
            "{Steps:add-distributes to through-layers} are CS231n's reading of backpropagation, on "
            "this page's layer. An **add** hands the arriving gradient to each input unchanged "
            "({step:add-distributes}), which is why a bias's gradient is the error itself. A "
            "**multiply** sends each input the error times the *other* input "
            "({step:multiply-swaps} and {step:w2-gradient}): $h$ scales $W_2$'s gradient, $W_2$ "
            "scales $h$'s. A **max** routes the whole gradient to the winner ({step:max-routes}): "
            "ReLU's $\\delta_1$ is the error where $z_1 > 0$ and 0 elsewhere.\n\n"
            "**Vanishing gradients.** Each layer multiplies the error by its activation's slope. "
            "The sigmoid's is at most $1/4$, at 0 "
            "({steps:sigmoid-slope-bound and sigmoid-slope-maximum}), the tanh's at most 1 "
            "({step:tanh-slope-bound}); both fall toward 0 where a unit saturates. Ten sigmoid "
            "layers shrink the error "
            f"by a factor of at least $4^{{10}}$, that is {4**10:,}, before the weights have their say "
            "(the exercise *Vanishing through sigmoids*), and through layers the weights and "
            "slopes multiply ({step:through-layers}). The second figure sends one random error "
            "back "
            f"through {DEPTH_LAYERS} layers of {DEPTH_WIDTH} units with the generated "
            "`sigmoid_grad`, `tanh_grad` and `relu_grad`: with sigmoids the first layer's gradient "
            "ends many orders of magnitude below the last's (the ratio, computed while this page "
            "was built, is in its legend), every layer's mean slope under $1/4$; with tanh and "
            "ReLU, each initialised for it, the norm holds. ReLU's slope is exactly 1 where it is "
            "positive, which is why deep networks use it, but exactly 0 where it is negative "
            "({step:dead-relu}): a unit whose $z_1$ is negative for every input receives no "
            "gradient and never recovers. Too large a learning rate throws units there, as the "
            "first figure shows, drawn from `mlp_grads` while this page was built.\n\n"
            "**What the backward pass keeps.** `mlp_grads` computes the forward pass and keeps, "
            "for the backward one, exactly what the steps read: $z_1$ for the slope $a'(z_1)$, $h$ "
            "for $\\nabla_{W_2} L = h^T \\delta_2$, and $\\delta_2 / B$ for both second-layer "
            "gradients and for $\\delta_1$. The generated code deletes each array after its last "
            "use; the list below is read from the kernel's body, with each array's size at $B = "
            "128$, $D = 784$, $H = 256$, $C = 10$:\n\n"
            "| array | shape | numbers | kept |\n"
            "|---|---|---|---|\n" + rows + "\n\n"
            f"At most {peak:,} numbers are alive at once (while "
            f"{', '.join('`' + n + '`' for n in at_peak)} are), besides the inputs and "
            "parameters: the memory of backpropagation grows with the batch size times the "
            "layers' widths, and no Jacobian is ever formed.",
            place="after_steps",
        ),
    )
    return Derivation(
        figures=(
            Figure(
                "dead-relus.svg",
                "A ReLU network (64 inputs, 32 hidden units, 10 classes) trained on "
                "scikit-learn's digits by mini-batch gradient descent with `mlp_grads`, from "
                "the same initialisation at two learning rates: the number of hidden units "
                "whose pre-activation is at most 0 for every image, which no longer learn.",
                _dead_relus,
            ),
            Figure(
                "vanishing-gradients.svg",
                f"A network of {DEPTH_LAYERS} square layers ({DEPTH_WIDTH} units, no biases, "
                "Glorot's initialisation, He's for ReLU) on 64 random inputs: one random error at "
                "the top sent back with the generated sigmoid_grad, tanh_grad and relu_grad. Left: "
                "the norm of each layer's weight gradient; right: each layer's mean slope, under "
                "the bounds {steps:sigmoid-slope-bound and tanh-slope-bound} prove.",
                _vanishing_gradients,
            ),
        ),
        matrix_result=matrix_result,
        name="two_layer",
        title="A two-layer network",
        summary="Backpropagation through a hidden layer: every δ is the chain rule applied once more.",
        where=names,
        definitions=(
            Definition(
                Z1[k],
                z1(k),
                "the hidden layer's pre-activations, $z_1 = W_1^T x + b_1$ ($H$ of them)",
            ),
            Definition(
                HID[k],
                a(Z1[k]),
                "the hidden layer, for an activation $a$: any differentiable function (the "
                "generated code takes ReLU, sigmoid or tanh). The build checks the steps below "
                "with $a = \\tanh$, the name $a(u)$ below; the identities prove each "
                "backpropagation step for any $a$.",
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
        exercises=exercises,
        examples=examples,
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
