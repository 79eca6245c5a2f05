"""The step-by-step differentiator (derive.differentiate) and what a forward definition
brings with it: each test reads as a derivation, and every recorded step is checked by
derive.claims as a hand-written one would be."""

import numpy as np
import pytest
import sympy as sp
from sympy import Derivative, exp

from derive import scaffold
from derive.claims import check, check_chain, claims
from derive.differentiate import CannotDifferentiate, differentiate
from derive.printing import ArrayPrinter
from derive.steps import Definition, Derivation, Requirement

z = sp.Symbol("z", real=True)
sigma = sp.Function("sigma")(z)
SIGMOID = 1 / (1 + exp(-z))


def holds(steps, names=()) -> None:
    """Every step, with the names' definitions, holds by its declared check, in a chain."""
    page = Derivation("test", "Test", "", tuple(Definition(n, v) for n, v in names), steps, (), ())
    check_chain(page)
    for claim in claims(page):
        check(claim)


def test_z_times_sigma_is_the_product_rule_then_sigma_prime_in_terms_of_sigma():
    steps, result = differentiate(z * sigma, z, [(sigma, SIGMOID)])
    titles = [s.title for s in steps]
    # σ′ first, in steps of its own, ending in terms of σ; then the product rule through σ
    assert titles.index("Product rule") > titles.index("In terms of $\\sigma{\\left(z \\right)}$")
    in_sigma = steps[titles.index("In terms of $\\sigma{\\left(z \\right)}$")].result
    assert sp.expand(in_sigma - sigma * (1 - sigma)) == 0
    # the chain rule through σ is a trivial move: said in the product rule's step, not its own
    assert titles[-2] == "Product rule" and titles[-1] == "Simplify"
    assert "the chain rule through" in steps[-2].rule
    assert sp.expand(result - (sigma + z * sigma * (1 - sigma))) == 0
    holds(steps, [(sigma, SIGMOID)])


def test_a_quotient_is_differentiated_by_the_quotient_rule():
    steps, result = differentiate(z / (1 + z**2), z)
    assert steps[0].title == "Quotient rule" and steps[0].expression == Derivative(
        z / (1 + z**2), z
    )
    assert sp.simplify(result - sp.diff(z / (1 + z**2), z)) == 0  # SymPy's own diff agrees
    holds(steps)


def test_a_square_root_of_a_sum_is_the_power_rule_then_the_sum_rule():
    steps, result = differentiate(sp.sqrt(1 + z**2), z)
    # the sum rule is trivial: said in the power rule's step, not a step of its own
    assert steps[0].title == "Power rule" and "Then the sum rule" in steps[0].rule
    assert sp.simplify(result - z / sp.sqrt(1 + z**2)) == 0
    holds(steps)


def test_a_wrong_rule_would_fail_its_check():
    steps, _ = differentiate(z * sigma, z, [(sigma, SIGMOID)])
    wrong = steps[-1].__class__(**{**steps[-1].__dict__, "result": steps[-1].result + z})
    with pytest.raises(Exception, match="step"):
        holds((*steps[:-1], wrong), [(sigma, SIGMOID)])


def test_an_expression_without_a_rule_is_named():
    with pytest.raises(CannotDifferentiate, match="base and exponent both vary"):
        differentiate(z**z, z)


def test_irrational_constants_print_as_literals_and_keep_the_dtype():
    code = ArrayPrinter().doprint(sp.sqrt(2) * z / sp.sqrt(sp.pi) + sp.pi)
    assert "sqrt" not in code and "pi" not in code
    for xp, array in ((np, np.float32(0.5) * np.ones(3, dtype=np.float32)),):
        value = eval(code, {"xp": xp, "z": array})
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, np.sqrt(2 / np.pi) * 0.5 + np.pi, rtol=1e-6)
    torch = pytest.importorskip("torch")
    value = eval(code, {"xp": torch, "z": torch.full((3,), 0.5, dtype=torch.float32)})
    assert value.dtype == torch.float32


def test_a_requirement_sympy_decides_at_build_time_is_an_error():
    positive = sp.Symbol("eps", positive=True)
    with pytest.raises(ValueError, match="always True"):
        Requirement(positive > 0, "eps must be positive")


def test_show_prints_the_steps_of_a_forward_definition():
    text = scaffold.show("silu")
    assert "Product rule" in text and "σ(z)" in text
    assert "\\frac" in scaffold.show("silu", latex=True)


def test_new_writes_a_module_and_its_registry_line(tmp_path, monkeypatch):
    from derive import derivations

    registry = tmp_path / "__init__.py"
    registry.write_text((derivations.FOLDER / "__init__.py").read_text())
    monkeypatch.setattr(derivations, "FOLDER", tmp_path)
    args = scaffold.argparse.Namespace(
        name="softsign",
        forward="z/(1 + Abs(z))",
        wrt="z",
        param=[],
        arg=[],
        title="",
        reference="",
    )
    scaffold.new(args)
    assert '    "softsign",\n)' in registry.read_text()
    namespace: dict = {}
    exec((tmp_path / "softsign.py").read_text(), namespace)
    assert namespace["FORWARD"].expression == z / (1 + sp.Abs(z))
    with pytest.raises(ValueError, match="neither --wrt"):
        scaffold.new(scaffold.argparse.Namespace(**{**vars(args), "name": "x2", "forward": "q*z"}))


def test_layer_norm_ends_in_the_shortcut_through_its_named_values():
    from derive.derivations.layer_norm import K, i, j, k, x
    from derive.naming import MEAN as mu
    from derive.naming import NORMALISED as xhat
    from derive.naming import SCALE as std
    from derive.naming import VARIANCE as var

    steps, jacobian = differentiate(
        (x[i] - mu) / std,
        x[j],
        [
            (mu, sp.Sum(x[k], (k, 1, K)) / K),
            (var, sp.Sum((x[k] - mu) ** 2, (k, 1, K)) / K),
            (std, sp.sqrt(var + sp.Symbol("eps", real=True))),
        ],
        output=(xhat[i], (x[i] - mu) / std),
        checked="numeric",
    )
    titles = [s.title for s in steps]
    # ∂μ/∂x_j = 1/K in one step: written out, 1/K out, into the sum, δ, the sum collapsed
    assert titles[0] == "Write $\\mu$ out" and steps[0].result == 1 / K
    assert "the derivative taken inside the sum" in steps[0].rule
    assert "collapsed to $k = j$" in steps[0].rule
    assert len(steps) <= 8  # 23 moves, merged into the steps a reader follows
    # ∂σ²/∂x_j in its named values: Σ_k x_k became K μ (the sum matched whatever its variable)
    lemma = steps[titles.index("In named values")].result
    assert sp.expand(lemma - 2 * (x[j] - mu) / K) == 0
    # the shortcut, typed here by hand as the reference: (δ_ij − 1/K − x̂_i x̂_j/K)/σ
    shortcut = (sp.KroneckerDelta(i, j) - 1 / K - xhat[i] * xhat[j] / K) / std
    assert sp.expand(jacobian - shortcut) == 0
    assert not jacobian.has(x) and not jacobian.has(mu)


def test_the_layer_norm_vjp_is_generated_without_forming_the_jacobian():
    import inspect

    from derive.generated.layer_norm import _layer_norm_vjp, layer_norm, layer_norm_vjp

    code = inspect.getsource(_layer_norm_vjp)
    assert "eye" not in code and "None, :]" not in code  # no K x K array
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    std = np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)  # NumPy, by hand
    xhat = (x - x.mean(-1, keepdims=True)) / std
    np.testing.assert_allclose(layer_norm(x, 1e-5), xhat, rtol=1e-12)
    by_hand = (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)) / std
    np.testing.assert_allclose(layer_norm_vjp(x, 1e-5, g), by_hand, rtol=1e-12)


def test_the_generated_exercises_hold_and_a_wrong_answer_fails():
    from derive import derivations

    for name in ("silu", "huber", "layer_norm"):
        (exercise,) = derivations.get(name).exercises
        answer = exercise.answer_expression
        assert exercise.check(answer), name
        wrong = sp.Eq(answer.lhs, answer.rhs * sp.Rational(11, 10))
        assert not exercise.check(wrong), name


def test_the_engine_names_the_mean_the_variance_and_the_scale_of_a_written_out_definition():
    from derive.naming import MEAN, NORMALISED, SCALE, VARIANCE, name_pieces
    from derive.sympy_tools import same_sum

    K = sp.Symbol("K", integer=True, positive=True)
    i, n, m = (sp.Idx(letter, (1, K)) for letter in ("i", "n", "m"))
    x, eps = sp.IndexedBase("x"), sp.Symbol("eps", real=True)
    # the mean spelled with two dummies, its minus sign where SymPy puts it
    written = (x[i] - sp.Sum(x[n], (n, 1, K)) / K) / sp.sqrt(
        sp.Sum((x[n] - sp.Sum(x[m], (m, 1, K)) / K) ** 2, (n, 1, K)) / K + eps
    )
    named, names, output = name_pieces(written, x, K)
    assert named == (x[i] - MEAN) / SCALE and output == NORMALISED
    assert [name for name, _ in names] == [MEAN, VARIANCE, SCALE]
    assert names[2][1] == sp.sqrt(VARIANCE + eps)
    # each name's value is the sum it replaced, whatever its variable (the build checks the
    # naming step numerically: derive.claims)
    mean_sum, variance_sum = (value * K for _, value in names[:2])
    assert same_sum(mean_sum, sp.Sum(x[n], (n, 1, K)))
    assert same_sum(variance_sum, sp.Sum((x[n] - MEAN) ** 2, (n, 1, K)))
    # no mean in it: nothing named
    assert name_pieces(x[i] ** 2 / K, x, K) == (x[i] ** 2 / K, (), None)


def test_collapsing_a_delta_is_worded_from_the_sum_it_collapses():
    from derive.differentiate import collapse_words

    K = sp.Symbol("K", integer=True, positive=True)
    a, b = sp.Idx("a", (1, K)), sp.Idx("b", (1, K))
    f = sp.IndexedBase("f")
    only, _ = collapse_words(sp.Sum(sp.KroneckerDelta(a, b) * f[a], (a, 1, K)))
    assert "only the term $a = b$ is left" in only
    mixed, phrase = collapse_words(sp.Sum((sp.KroneckerDelta(a, b) - 1 / K) * f[a], (a, 1, K)))
    assert "is left" not in mixed and "the others stay sums over $a$" in mixed
    assert phrase == "the delta's sum over $a$ collapsed to $a = b$"


def test_show_prints_no_latex_in_any_registered_derivations_titles_and_rules():
    from derive import derivations

    for name in derivations.MODULES:
        numbered = [
            line for line in scaffold.show(name).splitlines() if line.split(".")[0].isdigit()
        ]
        assert numbered, name
        for line in numbered:
            assert "$" not in line and "\\" not in line, (name, line)
    assert "∂x̂ᵢ/∂xⱼ" in scaffold.show("layer_norm")
    assert "\\partial" in scaffold.show("layer_norm", latex=True)
