"""Softmax with a temperature T: softmax(z/T), its Jacobian (diag(S) − SSᵀ)/T, and its limits."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy import Derivative, IndexedBase, Limit, Matrix, Sum, exp

from derive.derivations import result
from derive.model import C, S, class_index, explicit_softmax, explicit_vector, z
from derive.proofs import vanishes
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
    Requirement,
    Step,
    every,
)
from derive.sympy_tools import Maximum, QuietQuotient, evaluate

T = sp.Symbol("T", positive=True)  # the temperature
u = IndexedBase("u", shape=(C,))  # the scaled logits z/T


def explicit_jacobian(sizes) -> tuple[Matrix, Matrix]:
    """The Jacobian of an explicit softmax(z/T), and (diag(S) − SSᵀ)/T.

    The logits are written z = T·w after differentiating, so every exponential
    is e^{w_k} and the proof's rational change of variables applies.
    """
    n = sizes["C"]
    logits, scaled = explicit_vector("z", n), explicit_vector("w", n)
    probabilities = explicit_softmax(logits / T)
    jacobian = probabilities.jacobian(logits).subs(dict(zip(logits, T * scaled)))
    at_w = probabilities.subs(dict(zip(logits, T * scaled)))
    return jacobian, (sp.diag(*at_w) - at_w * at_w.T) / T


TIED = (2, 2, 0)  # two logits tie for the largest


def _tied_limit(answer) -> bool:
    """The answer's right side is the limit T → 0+ of softmax(z/T) for the tied logits."""
    limits = [sp.limit(e, T, 0, "+") for e in explicit_softmax(Matrix(TIED) / T)]
    return [equation.rhs for equation in answer] == limits


def _soft_gradient_vanishes(answer) -> bool:
    """With the student's logits the answer's right side (the teacher's v_j plus one a), the
    soft-target gradient (S_j − t_j)/T, written out for C = 2..4, is 0 at every j, for any T;
    and with v_j alone plus a per-class shift it is not."""
    v = IndexedBase("v")
    for n in range(2, 5):
        teacher = Matrix([v[m] for m in range(1, n + 1)])
        student = Matrix([answer.rhs.xreplace({answer.lhs.indices[0]: m}) for m in range(1, n + 1)])
        gradient = (explicit_softmax(student / T) - explicit_softmax(teacher / T)) / T
        if not all(vanishes(entry) for entry in gradient):
            return False
    return True


def _draw(fig, generated, posts) -> None:
    from derive.figures import subscript

    logits = np.array([2.0, 1.0, 0.0])
    temperatures = np.logspace(-1.5, 1.5, 121)
    s = np.stack([generated.softmax_temperature(logits, t) for t in temperatures])
    ax = fig.subplots()
    for i in range(3):
        n = subscript(i + 1)
        ax.semilogx(temperatures, s[:, i], label=f"S{n} for z{n} = {logits[i]:g}")
    ax.axhline(1 / 3, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("temperature T")
    ax.set_title("softmax(z/T): argmax as T → 0, uniform as T → ∞")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def derive() -> Derivation:
    i, j, k = class_index("i"), class_index("j"), class_index("k")
    softmax_of_u = result("softmax_jacobian", "softmax", i=i).xreplace(
        {z: u}
    )  # S_i as a function of u
    ds_du = result("softmax_jacobian", "jacobian", i=i, j=k)  # ∂S_i/∂u_k, in terms of S
    du_dz = evaluate(sp.diff(z[k] / T, z[j]))
    chain = Sum(ds_du * du_dz, (k, 1, C))
    jacobian = sp.factor(evaluate(chain))
    n = class_index("n")  # Σ_{n≠i} S_n's index (m is the logits' maximum)
    # S_i(1 − S_i) loses S_i's small complement where S_i rounds to 1: the code computes the
    # softmax Jacobian's cancellation-free form (proved on its page), divided by T.
    stable = result("softmax_jacobian", "stable_jacobian", i=i, j=j) / T

    S_i = softmax_of_u.xreplace({u[i]: z[i] / T, u[k]: z[k] / T})  # S_i = softmax(z/T)_i
    # T → 0 for the example z = (2, 1, 0), z_k = 3 − k, one limit per probability
    example = Matrix([3 - number for number in range(1, 4)])
    # the one-hot vector of the argmax
    cold = sp.ImmutableMatrix([sp.limit(e, T, 0, "+") for e in explicit_softmax(example / T)])
    cold_limits = sp.ImmutableMatrix([Limit(S[number], T, 0, "+") for number in range(1, 4)])
    # T → ∞ for any logits: with T = 1/s, S_i is continuous at s = 0, where every e^{z_k s} is 1
    # The code divides z − max z by T, not z: z/T overflows for a small T (or huge logits), and
    # the shift by any number m changes nothing (e^{−m/T} cancels).
    shift = sp.Symbol("m", real=True)
    shifted = exp((z[i] - shift) / T) / Sum(exp((z[k] - shift) / T), (k, 1, C))
    # 0 at the maximum whatever T rounds to in the logits' dtype (0/0 where it rounds to 0)
    # halves first: z_k − m overflows where the logits span more than the dtype's largest number,
    # and −∞/T is nan where T rounds to ∞ there (1e30 in float16); z_k/2 − m/2 cannot overflow
    halved = QuietQuotient(z[k] / 2 - shift / 2, T)  # x/0 = −∞ and the 0/0 selected away: quiet
    scaled_logit = sp.Piecewise((0, sp.Eq(z[k], shift)), (2 * halved, True))
    s_ = sp.Symbol("s", positive=True)
    hot = S_i.xreplace({T: 1 / s_}).subs(s_, 0).doit()  # 1/C
    slope_in_T = -S[i] * (z[i] - Sum(S[k] * z[k], (k, 1, C))) / T**2
    # distillation: the teacher's logits v, softened by the same T, are the targets t
    v, t_soft = IndexedBase("v"), IndexedBase("t")
    teacher = S_i.xreplace({z: v})
    soft_loss = -Sum(t_soft[n] * sp.log(S[n]), (n, 1, C))
    distillation_gradient = (S[j] - t_soft[j]) / T
    # T → ∞ of T² (S_1 − t_1)/T for C = 2: with T = 1/s, SymPy's series at s = 0
    s_small = sp.Symbol("s", positive=True)
    two_student, two_teacher = Matrix([z[1], z[2]]), Matrix([v[1], v[2]])
    written = T * (explicit_softmax(two_student / T)[0] - explicit_softmax(two_teacher / T)[0])
    # expanded: a factored -(…)/4 comes back from the build cache (pickle) in another form
    hot_gradient = sp.expand(sp.limit(written.xreplace({T: 1 / s_small}), s_small, 0, "+"))
    steps = (
        Step(
            "Scale, then softmax",
            "$u_k = z_k / T$, and $S = \\operatorname{softmax}(u)$; the derivative of each $u_k$:",
            Derivative(z[k] / T, z[j]),
            du_dz,
        ),
        Step(
            "Chain rule",
            "$z_j$ reaches $S_i$ through every $u_k$; $\\partial S_i/\\partial u_k$ is the softmax "
            "Jacobian (from its page, in terms of $S$), and the delta keeps $k = j$.",
            Sum(Derivative(S[i], u[k]) * Derivative(u[k], z[j]), (k, 1, C)),
            jacobian,
            where=((S[i], softmax_of_u), (u[k], z[k] / T)),
            start="the chain rule through $u = z/T$",
            # the softmax's sum over k inside a sum over k: in index form the two sums' variables
            # differ and SymPy does not cancel them; exact at explicit sizes
            checked="explicit",
        ),
        Step(
            "Why the code computes it this way",
            "As on the softmax Jacobian's page: $1 - S_i$ is computed as $\\sum_{n \\ne i} S_n$, "
            "which keeps every digit where $S_i$ rounds to 1.",
            jacobian,
            stable,
            relation="=>",
            given=((Sum(S[n], (n, 1, C)), sp.Integer(1)),),
        ),
        Step(
            "Stable evaluation: shift, then divide by T",
            "$z_k/T$ overflows where $T$ is small or the logits are large ($z = (700, 0)$ in "
            "float16 with $T = 0.01$, or any logits with $T = 10^{-309}$), and an overflowed "
            "$+\\infty$ makes the softmax nan. Multiplying numerator and denominator by "
            "$e^{-m/T}$ changes nothing, and with $m = \\max_k z_k$ every $(z_k - m)/T$ is "
            "$\\leq 0$: the largest is 0, the others may round to $-\\infty$, whose exponential "
            "is the 0 it stands for. SymPy pulls $e^{-m/T}$ out of the sum and cancels it, for "
            "any number $m$.",
            shifted,
            S_i,
            start="softmax of the logits shifted by $m$, then divided by $T$",
        ),
        Step(
            "Why the code writes 0 at the maximum",
            "A temperature below the smallest number of the logits' dtype ($1.4 \\cdot 10^{-45}$ "
            "in float32, in which float16 logits are computed) rounds to 0 there, and "
            "$(z_k - m)/T$ is then $0/0$, nan, at the maximum. The quotient is 0 wherever "
            "$z_k = m$, for every $T$: the code writes that 0 (`xp.where`), and the other "
            "quotients are $-\\infty$, their limit. It also halves before it subtracts: "
            "$z_k - m$ overflows to $-\\infty$ where the logits span more than the dtype's "
            "largest number ($\\pm 2 \\cdot 10^{38}$ in float32), and $-\\infty/T$ is nan where "
            "$T$ rounds to $\\infty$ ($T = 10^{39}$ in float32); $z_k/2 - m/2$ cannot overflow. "
            "So the result is finite for every finite $z$ and every $T > 0$, and uniform (the "
            "hot limit) where $T$ is $\\infty$ in the logits' dtype.",
            (z[k] - shift) / T,
            scaled_logit,
            start="a shifted logit divided by $T$",
            checked="numeric",  # a selection on z_k = m: SymPy cannot decide it for symbolic z
        ),
        Step(
            "Cold: T → 0",
            "For $z = (2, 1, 0)$: every probability but the largest logit's goes to 0, "
            "so softmax becomes the one-hot vector of the argmax (a hard max). That needs a "
            "single largest logit: where several logits tie for the largest, they share the "
            "probability equally in the limit and the others get 0, a uniform distribution over "
            "the tie (an exercise below).",
            cold_limits,
            cold,
            where=((z[k], 3 - k),),
            start="the example logits $z = (2, 1, 0)$",
            checked="explicit",  # SymPy takes each limit with the sum written out
            sizes=({"C": 3},),
        ),
        Step(
            "Hot: T → ∞",
            "For any logits, every $z_k/T \\to 0$, so every $e^{z_k/T} \\to 1$: the uniform "
            "distribution. (SymPy writes $T = 1/s$ and sets $s = 0$, where $S_i$ is continuous.)",
            Limit(S[i], T, sp.oo),
            hot,
            start="any logits",
            checked="explicit",  # SymPy takes the limit with the sum written out
        ),
        # Distillation: a student's softmax(z/T) against a teacher's softmax(v/T)
        Step(
            "How each probability moves with the temperature",
            "$S_i$ depends on $T$ through every $u_k = z_k/T$, with $\\partial u_k / \\partial T "
            "= -z_k/T^2$; through the softmax Jacobian, $\\sum_k S_i(\\delta_{ik} - S_k)(-z_k/T^2)$. "
            "Raising $T$ lowers every probability whose logit is above the average "
            "$\\sum_k S_k z_k$ and raises those below it: the distribution flattens.",
            Derivative(S[i], T),
            slope_in_T,
            start="the definition of $S_i$",
        ),
        Step(
            "Distillation: the soft-target loss",
            "A student with logits $z$ learns from a teacher's logits $v$, both softened by the "
            "same $T$: the targets are $t = \\operatorname{softmax}(v/T)$, and the loss is the "
            "cross-entropy $L_T = -\\sum_n t_n \\log S_n$. Its gradient with respect to the "
            "student's logits is the cross-entropy's $S - t$ (the targets sum to 1), times the "
            "$1/T$ of $u = z/T$.",
            Derivative(soft_loss, z[j]),
            distillation_gradient,
            relation="=>",
            where=((S[n], S_i.xreplace({i: n})),),
            given=((Sum(t_soft[n], (n, 1, C)), sp.Integer(1)),),
            start="the soft-target loss",
        ),
        Step(
            "Why Hinton et al. multiply it by T²",
            "For a high temperature the gradient shrinks like $1/T^2$: $S_j - t_j$ is itself "
            "about $(z_j - v_j)/(C T)$ (for logits of zero mean). Two logits $z = (z_1, z_2)$, "
            "$v = (v_1, v_2)$ show it exactly: $T^2$ times the gradient tends to a limit that "
            "does not depend on $T$. Multiplying the soft loss by $T^2$ keeps its share of the "
            "gradient the same whatever $T$ is chosen, next to the hard-label loss at $T = 1$.",
            Limit(T**2 * distillation_gradient.xreplace({j: 1}), T, sp.oo),
            hot_gradient,
            where=((S[n], S_i.xreplace({i: n})), (t_soft[n], teacher.xreplace({i: n}))),
            start="the gradient for $C = 2$, $j = 1$",
            checked="explicit",
            sizes=({"C": 2},),
        ),
    )
    identities = (
        Identity(
            "softmax_temperature_jacobian",
            "the chain rule through $u = z/T$ gives $S_i(\\delta_{ij} - S_j)/T$",
            long=chain,
            shortcut=jacobian,
            explicit=explicit_jacobian,
            explicit_sizes=every(C=range(2, 6)),
            long_title="The chain-rule product,",
            shortcut_title="the shortcut,",
        ),
    )
    exercises = (
        Exercise(
            "Two logits tie for the largest: $z = (2, 2, 0)$. What does "
            "$\\operatorname{softmax}(z/T)$ tend to as $T \\to 0$?",
            # one equation per class: an Eq of two matrices is rebuilt as False when unpickled
            sp.Tuple(
                *(
                    sp.Eq(limit, value, evaluate=False)
                    for limit, value in zip(cold_limits, (sp.Rational(1, 2), sp.Rational(1, 2), 0))
                )
            ),
            _tied_limit,
            answer="Divide by $e^{2/T}$: $S = (1, 1, e^{-2/T})/(2 + e^{-2/T})$, and "
            "$e^{-2/T} \\to 0$. The tied classes share the probability equally, and the others "
            "get 0: the limit is the uniform distribution over the argmax set, a one-hot vector "
            "only when the maximum is unique. SymPy takes the three limits.",
            title="A tie at the top",
        ),
        Exercise(
            "In distillation, for which student logits $z$ is the soft-target gradient "
            "$(S_j - t_j)/T$ zero at every class, for the teacher's logits $v$? Must the student "
            "copy the teacher's logits exactly?",
            sp.Eq(z[j], sp.IndexedBase("v")[j] + sp.Symbol("a", real=True)),
            _soft_gradient_vanishes,
            answer="The gradient is 0 exactly when $S = t$, and softmax$(z/T)$ = "
            "softmax$(v/T)$ when $z/T$ and $v/T$ differ by the same number in every class: "
            "$z_j = v_j + a$ for any $a$. The student matches the teacher's logits up to a "
            "shift, the direction the softmax cannot see. SymPy writes the gradient out at "
            "$z = v + a$ for $C = 2, 3, 4$ and finds every entry 0.",
            title="When the student has learned the teacher",
        ),
    )
    z_max = sp.Symbol("z_max")
    temperature = Param(
        "T",
        T,
        doc="the temperature, a positive number",
        batched=False,
        domain="positive",
        span=(0.1, 10.0),
    )
    positive = (Requirement(sp.Symbol("T") > 0, "T: expected a positive temperature, got T = {T}"),)
    kernels = (
        Kernel(
            name="softmax_temperature",
            overflow="Where (z − max z)/T exceeds the dtype's range (logits far apart, or a small T), 2·(z/2 − max z/2)/T overflows to −∞, and e^{−∞} = 0 is the right term",
            summary="softmax(z/T) over the last axis: T < 1 sharpens the distribution, T > 1 flattens it.",
            params=(Param("z", z, ("C",), doc="logits"), temperature),
            body=(
                Assign(z_max, (), Maximum(z[k], (k, 1, C))),
                Assign(u, (k,), scaled_logit.subs(shift, z_max)),
            ),
            returns=Assign(S, (i,), sp.Function("softmax")(u)),
            math=softmax_of_u.xreplace({u[i]: z[i] / T, u[k]: z[k] / T}),
            returns_doc="probabilities, shape (..., C); finite for every finite z and every T > 0 "
            "(z is shifted by its maximum before the division by T, and the maximum's quotient "
            "is written 0, even where T rounds to 0 in z's dtype); a T beyond z's dtype's largest "
            f"number ({float(np.finfo(np.float32).max):.1e} in float32) is ∞ "
            "there, and gives the uniform distribution, so pass such logits in float64",
            float16_in_float32="float16's largest number is 65504, so a temperature of 10^5 "
            "would be ∞ there, and a masked logit's −∞/∞ nan",
            reference="torch.softmax(z / T, dim=-1)",
            requires=positive,
            conditioning="As softmax's, of z/T: the code rounds (z_i − max z)/T, and e^x turns "
            "that absolute error into a relative error |z_i − max z|/T times larger, so an entry "
            "far below the largest is good to about |z_i − max z|/(2T) ulps (thousands for "
            "logits in the thousands and T = 0.1); PyTorch rounds z/T the same way.",
        ),
        Kernel(
            name="softmax_temperature_jacobian",
            conditioning="Each entry is a product of softmax outputs of z/T and inherits their error: "
            "the rounding of z/T and of z_i − max z, a few ulps more than softmax itself",
            summary="∂S_i/∂z_j of S = softmax(z/T), from its output s: (diag(S) − SSᵀ)/T.",
            params=(
                Param(
                    "s",
                    S,
                    ("C",),
                    doc="the output of `softmax_temperature`: each row sums to 1 (checked)",
                    domain="probability",
                    check="probabilities",
                ),
                temperature,
            ),
            body=(),
            returns=Assign(Derivative(S[i], z[j]), (i, j), stable),
            math=jacobian,
            returns_doc="shape (..., C, C)",
            notes="The diagonal, before the division by T, is computed as s_i Σ_{n≠i} s_n, which is s_i(1 − s_i) only where s sums "
            "to 1 (it keeps the digits 1 − s_i loses): so s is checked, and a row that does not "
            "sum to 1 within 16·C·ε (ε of float32, or of s's dtype if coarser), or that has a "
            "negative entry, is a ValueError naming s; `derive.check_labels(False)` skips the check.",
            requires=positive,
            derivative=DerivativeOf(
                "softmax_temperature(z, T)",
                wrt="z",
                call="softmax_temperature_jacobian(softmax_temperature(z, T), T)",
            ),
        ),
    )
    S_column = sp.MatrixSymbol("S", C, 1)
    matrix_result = MatrixResult(
        group="one_layer",
        lhs=sp.MatrixSymbol("J_T", C, C),
        rhs=(sp.DiagMatrix(S_column) - S_column * S_column.T) / T,
        index_form=jacobian,
        entry=((i,), (j,)),
        text="The Jacobian of $\\operatorname{softmax}(z/T)$: the softmax Jacobian of its "
        "output, divided by $T$.",
    )
    return Derivation(
        matrix_result=matrix_result,
        name="softmax_temperature",
        title="Softmax with a temperature",
        summary="$\\operatorname{softmax}(z/T)$, as in distillation and sampling: its Jacobian is the "
        "softmax Jacobian divided by $T$, and its limits are the argmax and the uniform distribution.",
        definitions=(
            Definition(
                S[i],
                softmax_of_u.xreplace({u[i]: z[i] / T, u[k]: z[k] / T}),
                "for a temperature $T > 0$",
            ),
        ),
        steps=steps,
        identities=identities,
        kernels=kernels,
        examples=(
            Example(
                "Sharper and flatter",
                "[softmax_temperature(np.array([2.0, 1.0, 0.0]), t) for t in (0.5, 1.0, 5.0)]",
                reference="[np.exp(np.array([2.0, 1.0, 0.0]) / t) / np.exp(np.array([2.0, 1.0, 0.0]) / t).sum() "
                "for t in (0.5, 1.0, 5.0)]",
                text="The same logits at $T = 0.5$, $1$ and $5$, against the definition with NumPy.",
            ),
        ),
        figures=(
            Figure("softmax-temperature.svg", "Each probability as the temperature varies.", _draw),
        ),
        exercises=exercises,
        results={"jacobian": jacobian},
    )
