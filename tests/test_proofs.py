"""Every registered identity is proved; a wrong shortcut is caught, not waved through."""

from dataclasses import replace

import pytest
import sympy as sp

from derive import derivations
from derive.model import C, S, class_index, input_index, x
from derive.proofs import (
    ProofFailed,
    build_sizes,
    check_exercise,
    explicit_sizes,
    is_zero_rational,
    prove,
    prove_explicit,
    prove_index_form,
    sizes_text,
)
from derive.steps import Identity, every

IDENTITIES = [
    (name, identity)
    for name in derivations.MODULES
    for identity in derivations.get(name).identities
]


@pytest.mark.parametrize(
    "identity", [i for _, i in IDENTITIES], ids=[i.name for _, i in IDENTITIES]
)
def test_identity_is_proved_in_index_form_and_at_every_explicit_size(identity):
    result = prove(identity)  # a build checks two of the sizes (build_sizes); this, all
    assert result.index_form
    assert [dict(s) for s in result.explicit_sizes] == [dict(s) for s in explicit_sizes(identity)]


@pytest.mark.parametrize(
    "identity",
    [i for _, i in IDENTITIES if i.explicit is not None],
    ids=[i.name for _, i in IDENTITIES if i.explicit is not None],
)
def test_a_build_checks_the_smallest_size_and_one_whose_dimensions_all_differ(identity):
    every_size = [dict(s) for s in explicit_sizes(identity)]
    checked = [dict(s) for s in build_sizes(identity)]
    assert checked[0] == every_size[0]
    assert all(s in every_size for s in checked)
    assert len(checked) == min(2, len(every_size))
    varied = [s for s in every_size[1:] if min(s.values()) >= 2 and len(set(s.values())) == len(s)]
    if len(every_size) > 2:
        assert checked[1] == (varied[0] if varied else every_size[-1])


def test_build_sizes_of_a_grid():
    identity = named("cross_entropy", "cross_entropy_weight_grad")
    grid = type(identity)(
        **{**identity.__dict__, "explicit_sizes": every(C=range(2, 6), D=range(1, 4))}
    )
    assert [dict(s) for s in build_sizes(grid)] == [{"C": 2, "D": 1}, {"C": 2, "D": 3}]
    square = type(identity)(
        **{**identity.__dict__, "explicit_sizes": every(C=range(2, 3), D=range(1, 3))}
    )
    assert [dict(s) for s in build_sizes(square)] == [{"C": 2, "D": 1}, {"C": 2, "D": 2}]


def test_every_explicit_check_names_the_sizes_of_the_dimensions_it_has():
    for _, identity in IDENTITIES:
        for sizes in explicit_sizes(identity):
            identity.explicit(sizes)  # raises KeyError if it reads a dimension not listed


EXERCISES = [e for name in derivations.MODULES for e in derivations.get(name).exercises]


@pytest.mark.parametrize("exercise", EXERCISES, ids=[e.name for e in EXERCISES])
def test_every_exercise_answer_holds_at_every_size(exercise):
    check_exercise(exercise, every_size=True)


def test_a_wrong_exercise_answer_is_named():
    exercise = next(e for e in EXERCISES if isinstance(e.check, Identity))
    wrong = replace(exercise, check=replace(exercise.check, shortcut=exercise.check.shortcut + 1))
    with pytest.raises(ProofFailed, match=f"exercise {exercise.name!r}: its answer is wrong"):
        check_exercise(wrong)


def test_sizes_are_described_by_the_dimensions_they_have():
    assert (
        sizes_text(every(C=range(2, 7), D=range(1, 5)))
        == "every C in 2..6 and D in 1..4 (20 sizes)"
    )
    assert sizes_text(every(C=range(2, 5))) == "every C in 2..4 (3 sizes)"
    assert sizes_text(every(K=[1])) == "K = 1 (1 size)"


def test_the_one_hot_assumption_is_needed_for_the_cross_entropy_shortcut():
    identity = named("cross_entropy", "cross_entropy_weight_grad")
    assert prove_index_form(identity) == ("Sum(y[t], (t, 1, C)) = 1",)
    without = type(identity)(**{**identity.__dict__, "assumptions": {}})
    with pytest.raises(ProofFailed, match="in index form"):
        prove_index_form(without)


def named(derivation: str, identity: str):
    return next(i for i in derivations.get(derivation).identities if i.name == identity)


def test_the_stable_jacobian_needs_the_probabilities_to_sum_to_one():
    identity = named("softmax_jacobian", "softmax_jacobian_stable")
    assert prove_index_form(identity) == ("Sum(S[n], (n, 1, C)) = 1",)
    with pytest.raises(ProofFailed, match="in index form"):
        prove_index_form(type(identity)(**{**identity.__dict__, "assumptions": {}}))


def test_the_case_split_on_a_delta_does_not_prove_a_wrong_stable_form():
    identity = named("softmax_jacobian", "softmax_jacobian_stable")
    i, j, m = class_index("i"), class_index("j"), class_index("m")
    all_of_them = sp.Sum(S[m], (m, 1, C))  # the diagonal with S_i itself counted: wrong
    wrong = S[i] * (sp.KroneckerDelta(i, j) * all_of_them - (1 - sp.KroneckerDelta(i, j)) * S[j])
    with pytest.raises(ProofFailed, match="long - shortcut"):
        prove_index_form(type(identity)(**{**identity.__dict__, "long": wrong}))


def test_a_wrong_shortcut_fails_the_index_form_proof():
    identity = named("layer_jacobian", "layer_jacobian")
    t, c, j = class_index("t"), class_index("c"), input_index("j")
    wrong = S[t] * (sp.KroneckerDelta(t, c) + S[c]) * x[j]  # sign flipped
    with pytest.raises(ProofFailed, match="long - shortcut"):
        prove_index_form(type(identity)(**{**identity.__dict__, "shortcut": wrong}))


def test_a_wrong_shortcut_fails_the_explicit_proof_and_names_the_entry():
    identity = named("layer_jacobian", "layer_jacobian")

    def off_by_one_entry(sizes):
        long, shortcut = identity.explicit(sizes)
        shortcut = shortcut.copy()
        shortcut[0, 1] += sp.Rational(1, 10**6)
        return long, shortcut

    broken = type(identity)(**{**identity.__dict__, "explicit": off_by_one_entry})
    with pytest.raises(ProofFailed, match=r"D=2, C=3 entry \[0, 1\]"):
        prove_explicit(broken, {"D": 2, "C": 3})


def test_the_zero_test_of_a_rational_function_finds_zeros_and_only_zeros():
    a, b = sp.symbols("exp_a exp_b", positive=True)
    u = sp.tanh(sp.Symbol("u"))
    softmax = a / (a + b)
    # S_a + S_b = 1, and S_a (1 - S_a) written over two different denominators
    assert is_zero_rational(softmax + b / (a + b) - 1)
    assert is_zero_rational(softmax * (1 - softmax) - a * b / (a + b) ** 2)
    assert is_zero_rational((1 - u**2) / (1 + u) - (1 - u))  # an atom (tanh) is one unknown
    # off by a little, by a sign, or by a power: not 0
    assert not is_zero_rational(softmax + b / (a + b) - 1 + sp.Rational(1, 10**9))
    assert not is_zero_rational(softmax * (1 - softmax) + a * b / (a + b) ** 2)
    assert not is_zero_rational(softmax * (1 - softmax) - a * b / (a + b) ** 3)
    assert not is_zero_rational((1 - u**2) / (1 + u) - (1 + u))


def test_an_assumption_on_a_sum_applies_whatever_the_sums_dummy_is_called():
    """Σ_k x_k = K μ is assumed; the long side sums over n (and over t, times 2): both match."""
    K = sp.Symbol("K", integer=True, positive=True)
    k, n, t = (sp.Idx(name, (1, K)) for name in "knt")
    xs, mu = sp.IndexedBase("x"), sp.Symbol("mu")
    identity = Identity(
        name="renamed_dummy",
        claim="a mean written with another dummy",
        long=sp.Sum(xs[n], (n, 1, K)) / K + 2 * sp.Sum(xs[t], (t, 1, K)),
        shortcut=mu + 2 * K * mu,
        assumptions={sp.Sum(xs[k], (k, 1, K)): K * mu},
    )
    assert prove_index_form(identity) == (f"{sp.Sum(xs[k], (k, 1, K))} = {K * mu}",)
    # a sum over another range is not the assumed one: the proof fails, naming the identity
    other = replace(identity, long=sp.Sum(xs[n], (n, 2, K)) / K + 2 * sp.Sum(xs[t], (t, 1, K)))
    with pytest.raises(ProofFailed, match="renamed_dummy"):
        prove_index_form(other)


def test_vanishes_finds_true_zeros_and_refuses_near_misses():
    """The ring's quick answer (derive.proofs.vanishes) is exact: a difference of 10⁻³⁰ or a
    slightly wrong exponent is not 0; what the ring cannot show, simplify still can."""
    from derive.proofs import vanishes

    a, b = sp.symbols("a b", real=True)
    softmax = sp.exp(a) / (sp.exp(a) + sp.exp(b))
    assert vanishes(softmax - 1 / (1 + sp.exp(b - a)))
    assert vanishes(sp.diff(softmax, a) - softmax * (1 - softmax))
    assert not vanishes(softmax - 1 / (1 + sp.exp(b - a)) + sp.Rational(1, 10**30))
    assert not vanishes(softmax - 1 / (1 + sp.exp(b - a + sp.Rational(1, 10**12))))
    assert not vanishes(sp.diff(softmax, a) - softmax * (1 + softmax))
    assert vanishes(sp.sin(a) ** 2 + sp.cos(a) ** 2 - 1)  # not a rational function: simplify's


def test_a_step_function_of_a_maximum_is_compared_case_by_case():
    """θ(max(z, 0)) = θ(z) with θ(0) = 0 (ReLU's slope read from its output) is proved; with
    θ(0) = 1 it is false below 0 (θ(max(z, 0)) = θ(0) = 1, θ(z) = 0), and refused."""
    from derive.sympy_tools import is_zero

    v = sp.Symbol("v", real=True)
    assert is_zero(sp.Heaviside(sp.Max(v, 0), 0) - sp.Heaviside(v, 0))
    assert not is_zero(sp.Heaviside(sp.Max(v, 0), 1) - sp.Heaviside(v, 1))
    assert not is_zero(sp.Heaviside(sp.Max(v, 0), 0) - sp.Heaviside(v, 0), thorough=False)
