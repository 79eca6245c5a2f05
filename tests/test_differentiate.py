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
    assert "Chain rule through" in titles[-2] and titles[-1] == "Simplify"
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
    assert [s.title for s in steps[:2]] == ["Power rule", "Sum rule"]
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
    from derive.derivations.layer_norm import K, i, j, k, mu, std, var, x, xhat

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
    assert "Exchange the sum and the derivative" in titles
    assert "Collapse the sum over the delta" in titles
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
