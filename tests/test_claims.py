"""Displayed steps as claims (derive.claims): a true step with its context holds, a false
one or one missing its context fails, by each method, and the chain between steps is checked."""

from dataclasses import replace
from importlib import import_module

import pytest
import sympy as sp
from sympy import Derivative, KroneckerDelta, Sum, exp

from derive import derivations
from derive.claims import StepFailed, check, check_chain, claims
from derive.model import C, S, class_index, softmax, y, z
from derive.steps import Derivation, Step

i, j, t = class_index("i"), class_index("j"), class_index("t")
XE = sp.Symbol("XE")
sigma = sp.Symbol("sigma", positive=True)
u = sp.Symbol("z", real=True)
SOFTMAX = ((S[i], softmax(i)),)
LOSS = -Sum(y[t] * sp.log(S[t]), (t, 1, C))


def page(*steps: Step, where=SOFTMAX) -> Derivation:
    return Derivation("test", "Test", "", (), tuple(steps), (), (), where=where)


def checked(step: Step, where=SOFTMAX) -> None:
    for claim in claims(page(step, where=where)):
        check(claim)


METHODS = ("symbolic", "explicit", "numeric")


@pytest.mark.parametrize("method", METHODS)
def test_the_softmax_jacobian_step_holds_by_every_method(method):
    step = Step(
        "", "", Derivative(S[i], z[j]), S[i] * (KroneckerDelta(i, j) - S[j]), checked=method
    )
    checked(step)


@pytest.mark.parametrize("method", METHODS)
def test_a_sign_error_fails_by_every_method(method):
    step = Step(
        "", "", Derivative(S[i], z[j]), S[i] * (S[j] - KroneckerDelta(i, j)), checked=method
    )
    with pytest.raises(StepFailed, match="test, step 1"):
        checked(step)


@pytest.mark.parametrize("method", ("explicit", "numeric"))
def test_a_step_that_needs_the_labels_to_sum_to_one_fails_without_saying_so(method):
    gradient = Derivative(XE, z[j])
    where = (*SOFTMAX, (XE, LOSS))
    without = Step("", "", gradient, S[j] - y[j], checked=method)
    with pytest.raises(StepFailed):
        checked(without, where)
    given = ((Sum(y[t], (t, 1, C)), 1),)
    checked(replace(without, relation="=>", given=given), where)


def test_a_name_the_step_leaves_undefined_is_not_taken_on_trust():
    """σ(1 − σ) is the sigmoid's derivative only with σ = 1/(1 + e^{−z}): drawn freely, it fails."""
    derivative = exp(-u) / (1 + exp(-u)) ** 2
    step = Step("", "", derivative, sigma * (1 - sigma), checked="numeric")
    with pytest.raises(StepFailed, match="differ"):
        checked(step, where=())
    checked(replace(step, where=((sigma, 1 / (1 + exp(-u))),)), where=())


def test_a_derivative_is_taken_before_the_variable_it_differentiates_by_is_written_out():
    """∂XE/∂S_t = −y_t/S_t: S must stay a variable inside the derivative, then be written out."""
    step = Step("", "", Derivative(XE, S[t]), -y[t] / S[t], where=((XE, LOSS),), checked="numeric")
    checked(step)


def test_a_convention_is_checked_where_it_is_not_a_choice():
    relu_slope = Step(
        "",
        "",
        sp.Heaviside(u),
        sp.Heaviside(u, 0),
        relation="convention",
        checked="numeric",
        given=(sp.Ne(u, 0),),
    )
    checked(relu_slope, where=())
    wrong = replace(relu_slope, result=sp.Heaviside(-u, 0))
    with pytest.raises(StepFailed):
        checked(wrong, where=())


def test_an_implication_or_convention_must_state_what_it_assumes():
    with pytest.raises(ValueError, match="needs its given"):
        Step("", "", u, u, relation="=>")
    with pytest.raises(ValueError, match="implication"):
        Step("", "", u, u, given=(u > 0,))


def test_a_matrix_entry_is_read_from_one():
    """(δ_ij − S_j)S_i is entry (i, j) of diag(S) − SSᵀ, counting from 1; δ_ij S_i is not."""
    column = sp.MatrixSymbol("S", C, 1)
    matrix = sp.DiagMatrix(column) - column * column.T
    entry = S[i] * (KroneckerDelta(i, j) - S[j])
    checked(Step("", "", entry, matrix, entry=((i,), (j,)), checked="explicit"))
    with pytest.raises(StepFailed, match="differ"):
        checked(
            Step(
                "", "", S[i] * KroneckerDelta(i, j), matrix, entry=((i,), (j,)), checked="explicit"
            )
        )


def test_each_step_starts_where_the_previous_ended_or_says_where():
    first = Step("", "", Derivative(S[i], z[j]), S[i] * (KroneckerDelta(i, j) - S[j]))
    second = Step(
        "", "", S[i] * (KroneckerDelta(i, j) - S[j]), S[i] * KroneckerDelta(i, j) - S[i] * S[j]
    )
    check_chain(page(first, second))
    elsewhere = replace(second, expression=second.result)
    with pytest.raises(StepFailed, match="step 2.*not step 1's result"):
        check_chain(page(first, elsewhere))
    check_chain(page(first, replace(elsewhere, start="the product expanded")))
    with pytest.raises(StepFailed, match="not step 1's result, where it says"):
        check_chain(page(first, replace(elsewhere, start=1)))


def test_an_entry_written_on_a_side_counts_from_one():
    """(diag(S) − SSᵀ)_{ij} = S_i(δ_ij − S_j) with the entry written as M[i, j] on the left."""
    column = sp.MatrixSymbol("S", C, 1)
    matrix = sp.DiagMatrix(column) - column * column.T
    entry = S[i] * (KroneckerDelta(i, j) - S[j])
    checked(Step("", "", matrix[i, j], entry, checked="explicit"))
    with pytest.raises(StepFailed, match="differ"):
        checked(Step("", "", matrix[i, j], S[i] * KroneckerDelta(i, j), checked="explicit"))


def _registered_claims():
    from derive import derivations

    every = [c for name in derivations.MODULES for c in claims(derivations.get(name))]
    return [c for c in every if c.checked != "symbolic" and len(c.sizes) > 1]


@pytest.mark.parametrize("claim", _registered_claims(), ids=lambda c: f"{c.page}-{c.number}")
def test_every_registered_step_holds_at_every_listed_size(claim):
    """A build checks a step at its first size; here, at each of them."""
    check(claim, every_size=True)


# -- the teaching claims: each one made false fails its check --------------------------------

TEACHING_STEPS = (
    ("binary_cross_entropy", "Two classes: softmax is the sigmoid of the difference"),
    ("binary_cross_entropy", "Binary cross-entropy is the two-class cross-entropy"),
    ("binary_cross_entropy", "Only differences of logits are identified"),
    ("binary_cross_entropy", "Its derivative where y is 0 or 1"),
    ("binary_cross_entropy", "The gradient with the loss's selections"),
    ("binary_cross_entropy", "Where the target is 0"),
    ("binary_cross_entropy", "Where the target is 1"),
    ("softmax_temperature", "How each probability moves with the temperature"),
    ("softmax_temperature", "Distillation: the soft-target loss"),
    ("softmax_temperature", "Why Hinton et al. multiply it by T²"),
    ("cross_entropy_from_logits", "The likelihood view: log-sum-exp is the log-partition"),
    ("cross_entropy_from_logits", "Expected minus observed"),
    ("cross_entropy", "Its derivative where y is 0"),
    ("cross_entropy", "The gradient with the loss's selection"),
    ("cross_entropy", "The first branch, where the target is 0"),
    ("cross_entropy", "The likelihood of a data set is the summed loss"),
    ("cross_entropy", "L2 as a Gaussian prior: the MAP estimate"),
    ("cross_entropy_options", "One-hot targets: the loss is never 0"),
    ("cross_entropy_options", "The expected loss over the labels"),
    ("cross_entropy_options", "Any target distribution: the gradient vanishes at S = q"),
    ("cross_entropy_options", "Label smoothing: the optimum is S = t"),
    ("cross_entropy_options", "Class weights: the optimum is S ∝ w ⊙ t"),
    ("cross_entropy_options", "Reached with finite logits when every target is positive"),
    ("cross_entropy_options", "Along a separating direction, the logit gaps scale"),
    ("cross_entropy_options", "The loss along the ray is about $e^{-s\\gamma}$, never 0"),
    ("cross_entropy_options", "The loss pushes s outward, ever more weakly"),
    ("cross_entropy_options", "A quantity that grows exactly like τ"),
    ("cross_entropy_options", "So ‖W‖ grows like log(τ)/γ"),
    ("gradient_check", "The central difference"),
    ("gradient_check", "The forward difference"),
    ("gradient_check", "The best central step"),
    ("gradient_check", "The best forward step"),
    ("gradient_check", "A kink within the step"),
    ("second_order", "The score"),
    ("second_order", "The Fisher information is the Hessian"),
    ("second_order", "In the weights too"),
    ("second_order", "Gauss–Newton drops nothing here"),
    ("second_order", "Logistic regression's Hessian is XᵀRX"),
    ("second_order", "Newton's step is a weighted least-squares fit (IRLS)"),
    ("second_order", "Damping scales Newton's step, direction by direction"),
    ("second_order", "A damped step is never longer than ‖g‖/λ"),
    ("second_order", "The decrease the model predicts"),
    ("two_layer", "Add distributes"),
    ("two_layer", "Multiply swaps"),
    ("two_layer", "Max routes"),
    ("two_layer", "The sigmoid's slope is at most 1/4"),
    ("two_layer", "Its maximum, at 0"),
    ("two_layer", "The tanh's slope is at most 1"),
    ("two_layer", "A ReLU below 0 passes nothing back"),
    ("two_layer", "Through layers, weights and slopes multiply"),
)


@pytest.mark.parametrize("page, title", TEACHING_STEPS, ids=lambda v: str(v)[:40])
def test_a_teaching_step_made_false_fails_its_check(page, title):
    made = derivations.get(page)
    (number,) = [n for n, s in enumerate(made.steps) if s.title == title]
    step = made.steps[number]
    assert check(claims(made)[number]).checked == step.checked  # it holds as written
    # a claim that something is 0 stays true scaled: it is made false by claiming 1/7 instead
    wrong = replace(step, result=step.result * sp.Rational(8, 7) or sp.Rational(1, 7))
    broken = replace(made, steps=(*made.steps[:number], wrong, *made.steps[number + 1 :]))
    with pytest.raises(StepFailed, match=title[:20]):
        check(claims(broken)[number])


@pytest.mark.parametrize(
    "page", [n for n in derivations.MODULES if derivations.get(n).matrix_result is not None]
)
def test_a_matrix_result_transposed_or_scaled_fails_its_check(page):
    """The matrix form is checked against the page's result: twice the right side fails."""
    made = derivations.get(page)
    m = made.matrix_result
    assert m.step.checked == "explicit"
    broken = replace(made, matrix_result=replace(m, rhs=2 * m.rhs))
    with pytest.raises(StepFailed, match="The result in matrix form"):
        check(claims(broken)[-1])


def test_a_matrix_result_whose_shapes_differ_is_refused():
    from derive.model import C, D
    from derive.steps import MatrixResult

    W_like = sp.MatrixSymbol("G", D, C)
    with pytest.raises(ValueError, match="left side"):
        MatrixResult("one_layer", W_like, sp.MatrixSymbol("S", C, D), sp.Integer(0), ((), ()), "")


def test_the_home_page_lists_every_derivation_with_its_matrix_form_and_shapes():
    """Each registered derivation, under its group, with the shape of its result: none left out."""
    from derive.pages import home_output

    made = [derivations.get(name) for name in derivations.MODULES]
    body = home_output(made).body
    road = body[body.index("## Every derivation") : body.index("## Use the code")]
    # a derivation made from a forward definition (derive.forward) has no matrix form yet, and
    # the page says which; every hand-written one has it
    missing = [d.name for d in made if d.matrix_result is None]
    forward = {
        name
        for name in derivations.MODULES
        if {"FORWARD", "VECTOR_FORWARD"} & set(vars(import_module(f"derive.derivations.{name}")))
    }
    assert set(missing) <= forward, sorted(set(missing) - forward)
    if missing:
        assert f"Not yet summarised here: {', '.join(missing)}." in road
    else:
        assert "Not yet summarised" not in road
    for d in made:
        if d.matrix_result is None:
            continue
        link = f"(derivations/{d.name.replace('_', '-')}.md)"
        assert link in road, d.name
        rows, columns = d.matrix_result.lhs.shape
        assert d.matrix_result.group in derivations.GROUPS
        entry = road[road.index(link) :].split("\n- **")[0]
        assert f"{sp.latex(rows)} \\times {sp.latex(columns)}" in entry, d.name
    start = body[body.index("## Start here") : body.index("## Every derivation")]
    links = [f"(derivations/{n.replace('_', '-')}.md)" for n, _ in derivations.START_HERE]
    positions = [start.index(link) for link in links]  # each there, in the path's order
    assert positions == sorted(positions)


def test_the_optimum_and_second_order_exercises_reject_a_wrong_answer():
    """Issue 21 items 3 and 6: each check passes the right answer and refuses a near miss."""
    from derive.derivations import cross_entropy_options as ceo
    from derive.derivations import second_order as so

    assert ceo._weighted_optimum(sp.Eq(ceo.OPTIMUM, sp.Rational(3, 4)))
    assert not ceo._weighted_optimum(sp.Eq(ceo.OPTIMUM, sp.Rational(1, 2)))  # the unweighted one
    gap = sp.log((ceo.C * (1 - ceo.epsilon) + ceo.epsilon) / ceo.epsilon)
    assert ceo._smoothed_gap(sp.Eq(ceo.GAP, gap))
    assert not ceo._smoothed_gap(sp.Eq(ceo.GAP, sp.log((1 - ceo.epsilon) / ceo.epsilon)))
    reached = sp.log(1 / (sp.exp(ceo.LOSS_AT) - 1)) / ceo.margin
    assert ceo._scale_for_loss(sp.Eq(ceo.REACHED, reached))
    assert not ceo._scale_for_loss(sp.Eq(ceo.REACHED, sp.log(1 / ceo.LOSS_AT) / ceo.margin))
    sigma = sp.Function("sigma")
    assert so._bernoulli_fisher(sp.Eq(so.FISHER, sigma(so.u1) * (1 - sigma(so.u1))))
    assert not so._bernoulli_fisher(sp.Eq(so.FISHER, sigma(so.u1)))
    assert so._damped_step(sp.Eq(so.DAMPED, -so.g1 / (so.h1 + so.lam)))
    assert not so._damped_step(sp.Eq(so.DAMPED, -so.g1 / so.h1 - so.g1 / so.lam))
    assert so._halving_damping(sp.Eq(so.lam, so.h1))
    assert not so._halving_damping(sp.Eq(so.lam, 2 * so.h1))  # a third of Newton's step
    assert not so._halving_damping(sp.Eq(so.lam, so.h1 + so.g1))  # depends on g
    from derive.derivations import two_layer as tl

    assert tl._sigmoid_layers(sp.Eq(tl.SLOPES, sp.Rational(1, 4) ** tl.LAYERS))
    assert not tl._sigmoid_layers(sp.Eq(tl.SLOPES, sp.Rational(1, 2) ** tl.LAYERS))
    assert tl._weight_undiminished(sp.Eq(tl.UNDIMINISHED, 4))
    assert not tl._weight_undiminished(sp.Eq(tl.UNDIMINISHED, 2))
    assert tl._max_routes(sp.Eq(tl.MAX_GRADIENT, sp.Matrix([tl.UPSTREAM, 0, 0]), evaluate=False))
    assert not tl._max_routes(
        sp.Eq(tl.MAX_GRADIENT, sp.Matrix([0, 0, tl.UPSTREAM]), evaluate=False)
    )


def test_the_teaching_exercises_reject_a_wrong_answer():
    """The checks of the new exercises can fail: a right answer passes, a near miss does not."""
    from derive.derivations import cross_entropy as ce
    from derive.derivations import softmax_temperature as st

    v, a = sp.IndexedBase("v"), sp.Symbol("a", real=True)
    assert st._soft_gradient_vanishes(sp.Eq(z[j], v[j] + a))
    assert not st._soft_gradient_vanishes(sp.Eq(z[j], 2 * v[j]))  # a scale is not a shift
    decay, w = sp.Symbol("lambda", positive=True), sp.Symbol("w", real=True)
    minus_log_prior = -sp.log(decay / 2 * sp.exp(-decay * sp.Abs(w)))
    assert ce._laplace_penalty(sp.Eq(minus_log_prior, decay * sp.Abs(w) - sp.log(decay / 2)))
    assert not ce._laplace_penalty(sp.Eq(minus_log_prior, decay * w**2 / 2 - sp.log(decay / 2)))
    from derive.derivations import two_layer as tl

    rows, columns = sp.MatrixSymbol("S", tl.B, tl.C), sp.MatrixSymbol("Y", tl.B, tl.C)
    ones = sp.OneMatrix(1, tl.B)
    assert tl._bias_gradient_matrix_form(ones * (rows - columns) / tl.B)
    assert not tl._bias_gradient_matrix_form(ones * (rows - columns))  # the sum, not the mean
    assert not tl._bias_gradient_matrix_form((rows - columns).T * ones.T / tl.B)  # C × 1


def test_a_delta_sum_collapses_to_sympys_term_without_its_deep_doit():
    from derive.claims import _one_term
    from derive.sympy_tools import pull_out_of_sums, resolve_index_ranges

    k = class_index("k")
    total = Sum(KroneckerDelta(k, j) * S[k] * Sum(y[t] * z[k], (t, 1, C)), (k, 1, C))
    assert _one_term(total) == S[j] * Sum(y[t] * z[j], (t, 1, C))
    sympys = resolve_index_ranges(total.doit())
    assert sp.expand(pull_out_of_sums(_one_term(total)) - pull_out_of_sums(sympys)) == 0
    # an inner product that binds k keeps its own k; one that binds j would capture it
    inner = sp.Product(exp(z[k]), (k, 1, C))
    assert _one_term(Sum(KroneckerDelta(k, j) * z[k] * inner, (k, 1, C))) == z[j] * inner
    capture = Sum(KroneckerDelta(k, j) * Sum(z[k] * y[j], (j, 1, C)), (k, 1, C))
    assert _one_term(capture) is None  # SymPy's doit decides it instead
    # an index whose range is not the sum's is not taken to be in it
    other = sp.Idx(sp.Symbol("n", integer=True), (1, sp.Symbol("K", integer=True, positive=True)))
    assert _one_term(Sum(KroneckerDelta(k, other) * z[k], (k, 1, C))) is None


@pytest.mark.parametrize("method", ["symbolic"])
def test_a_wrong_factor_beside_a_collapsed_delta_fails(method):
    k = class_index("k")
    step = Step(
        "",
        "",
        Sum(KroneckerDelta(k, j) * S[k] * y[k], (k, 1, C)),
        S[j] * y[i],
        checked=method,
    )
    with pytest.raises(StepFailed):
        checked(step)
    checked(replace(step, result=S[j] * y[j]))


def test_the_gradient_check_exercises_reject_a_wrong_answer():
    """Each exercise's check on the gradient-check page passes its answer and refuses a near miss."""
    from derive.derivations import gradient_check as gc

    w, h, d = gc.w, gc.h, gc.d
    assert gc._best_forward(sp.Eq(gc.BEST_FORWARD, gc.forward_step))
    assert not gc._best_forward(sp.Eq(gc.BEST_FORWARD, gc.central_step))  # the central one
    quartic = ((w + h) ** 4 - (w - h) ** 4) / (2 * h) - 4 * w**3
    assert gc._quartic_error(sp.Eq(quartic, 4 * w * h**2))
    assert not gc._quartic_error(sp.Eq(quartic, 4 * w * h**2 / 6))
    kink = (sp.Abs(d + h) - sp.Abs(d - h)) / (2 * h)
    assert gc._kink(sp.Eq(kink, d / h))
    assert not gc._kink(sp.Eq(kink, sp.Integer(1)))  # the slope, which it does not measure
    central = (sp.exp(w + h) - sp.exp(w - h)) / (2 * h)
    assert gc._exponential(sp.Eq(central, sp.exp(w) * sp.sinh(h) / h))
    assert not gc._exponential(sp.Eq(central, sp.exp(w) * sp.sinh(h)))


def test_the_exact_zero_test_finds_true_zeros_and_refuses_near_misses():
    """derive.claims._is_zero_exactly: each exponential an unknown of its own, then the
    exponentials as monomials (e^{b−a} = E_b/E_a); a difference of 10⁻³⁰ is not 0."""
    from derive.claims import _is_zero_exactly

    a, b = z[1], z[2]
    s = exp(a) / (exp(a) + exp(b))
    slope = s * (1 - s) - exp(a) * exp(b) / (exp(a) + exp(b)) ** 2  # 0 in the unknowns e^a, e^b
    shifted = s - 1 / (1 + exp(b - a))  # 0 once e^{b−a} is E_b/E_a
    for zero in (slope, shifted):
        assert _is_zero_exactly(zero)
        assert not _is_zero_exactly(zero + sp.Rational(1, 10**30))
    assert not _is_zero_exactly(s - 1 / (1 + exp(b - a + sp.Rational(1, 10**12))))
