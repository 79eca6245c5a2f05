"""A check's result is kept under what the check reads, and only that.

A prose edit re-proves nothing; a changed formula re-proves its claims; a
changed explicit-check function (code in a derivation module) re-runs it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace

import pytest
import sympy as sp
from conftest import derive_in as run

from derive import cache, claims, derivations
from derive.derivations import MODULES
from derive.proofs import prove_part


@pytest.fixture
def project(built_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(built_project, copy)
    return copy


@pytest.fixture
def checks(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "CHECKS", tmp_path / "checks")
    return tmp_path / "checks"


def _a_claim(name: str = "softmax_jacobian") -> claims.Claim:
    return claims.claims(derivations.get(name))[0]


def test_the_same_claim_has_the_same_key_whatever_was_asked_of_its_symbols():
    claim = _a_claim()
    before = cache.check_key(claims.check, (claim,))
    for symbol in claim.lhs.free_symbols | claim.rhs.free_symbols:
        symbol.is_positive, symbol.is_integer  # noqa: B018 - fills SymPy's assumption cache
    assert cache.check_key(claims.check, (claim,)) == before


def test_a_changed_formula_or_title_changes_the_key():
    claim = _a_claim()
    key = cache.check_key(claims.check, (claim,))
    assert cache.check_key(claims.check, (replace(claim, rhs=claim.rhs + 1),)) != key
    assert cache.check_key(claims.check, (replace(claim, title=claim.title + "!"),)) != key


def test_an_expressions_key_reads_every_part_of_it_and_not_how_it_was_built():
    x, y = sp.symbols("x y")
    f, g = sp.Function("f"), sp.Function("g")

    def key(expr) -> str:
        return cache.check_key(prove_part, (expr,))

    assert key(x + 2 * y) == key(sp.Add(2 * y, x)) == key(sp.sympify("2*y + x"))
    different = [
        x + 2 * y,
        x + 3 * y,
        x * 2 * y,
        sp.Symbol("x", positive=True) + 2 * y,
        f(x) + 2 * y,
        g(x) + 2 * y,
        sp.Float("0.5", 10) + 2 * y,
        sp.Float("0.5", 30) + 2 * y,
    ]
    assert len({key(e) for e in different}) == len(different)


HELPER = """
import sympy as sp

SIZES = (2, 3)


def scaled(sizes):
    return sp.Integer(SIZES[0]) * helper(sizes)


def helper(sizes):
    return sp.Integer(sizes["C"])
"""


def _helper_module(monkeypatch, source: str):
    """``source`` as a module of the derivations' folder (``derive.derivations._key_test``)."""
    import sys
    import types

    module = types.ModuleType("derive.derivations._key_test")
    exec(compile(source, "_key_test.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def _explicit_key(monkeypatch, source: str) -> str:
    identity = next(
        i for name in MODULES for i in derivations.get(name).identities if i.explicit is not None
    )
    explicit = _helper_module(monkeypatch, source).scaled
    return cache.check_key(prove_part, (replace(identity, explicit=explicit), {"C": 2}))


def test_a_function_a_check_calls_is_keyed_by_its_code_not_its_modules_other_text(monkeypatch):
    """Issue 20.5: a prose edit elsewhere in a derivation module re-runs none of its explicit
    checks; an edit to the function, to a function it calls or to a global it reads does."""
    key = _explicit_key(monkeypatch, HELPER)
    prose = "# a paragraph of prose\n\nTITLE = 'a step, reworded'\n\n" + HELPER  # lines move
    assert _explicit_key(monkeypatch, prose) == key
    for edit in (
        ("* helper(sizes)", "* helper(sizes) + 1"),  # the function itself
        ('sizes["C"]', 'sizes["C"] + 1'),  # a function it calls
        ("SIZES = (2, 3)", "SIZES = (4, 3)"),  # a global it reads
    ):
        assert edit[0] in HELPER
        assert _explicit_key(monkeypatch, HELPER.replace(*edit)) != key, edit


def test_a_registered_derivations_check_reads_the_sources_of_the_results_it_uses(
    tmp_path, monkeypatch
):
    """A function of a derivation that uses another's results is keyed by that one's source
    too (what ``result()`` returns is not in the function's code)."""
    import types

    user = next(n for n in MODULES if derivations.depends_on(n))
    function = next(
        f
        for f in vars(sys.modules[f"derive.derivations.{user}"]).values()
        if isinstance(f, types.FunctionType) and f.__module__ == f"derive.derivations.{user}"
    )
    used = derivations.depends_on(user)[0]
    source = tmp_path / f"{used}.py"
    source.write_text("# one version\n")
    real = derivations.source
    monkeypatch.setattr(derivations, "source", lambda name: source if name == used else real(name))
    key = cache.check_key(doubled, (function,))
    source.write_text("# another version\n")
    assert cache.check_key(doubled, (function,)) != key


CALLS: list = []


def doubled(value):
    """A check that counts its calls (module level: a check's function pickles by name)."""
    CALLS.append(value)
    if value < 0:
        raise ValueError("negative")
    return value * 2


def test_a_result_is_remembered_a_failure_is_not_and_force_runs_again(checks):
    CALLS.clear()
    assert cache.remembered(doubled, (3,)) == (6, False)
    assert cache.remembered(doubled, (3,)) == (6, True)
    assert cache.remembered(doubled, (3,), force=True) == (6, False)
    assert CALLS == [3, 3]
    for _ in range(2):
        with pytest.raises(ValueError):
            cache.remembered(doubled, (-1,))
    assert CALLS == [3, 3, -1, -1]


def test_an_unwritable_check_cache_costs_time_not_the_result(checks):
    checks.parent.mkdir(exist_ok=True)
    checks.write_text("a file where the folder should be")
    assert cache.remembered(sp.Integer, (4,)) == (sp.Integer(4), False)


def test_a_prose_edit_re_proves_no_identity_and_no_step(project):
    """The step's words change; its formulas, and so every check's inputs, do not."""
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    text = path.read_text()
    step = claims.claims(derivations.get("softmax_jacobian"))[0]
    assert text.count(f'"{step.title}"') == 1
    path.write_text(text.replace(f'"{step.title}"', f'"{step.title}, reworded"'))
    result = run(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("softmax_jacobian "))
    total = len(derivations.get("softmax_jacobian").steps)
    # every check, the reworded step's own included (a build checks it without its title),
    # but those whose code is in the edited module (explicit checks, exercises checked by a
    # function)
    remembered = int(line.split("(")[-1].split()[0])
    identities = derivations.get("softmax_jacobian").identities
    assert remembered >= total + len(identities)


def test_a_forced_build_keeps_its_checks_results_from_the_parent(checks, monkeypatch):
    """Workers run a forced check only; the parent, with every derivation derived, keeps it
    under the key a worker would have used, and a later build recalls it."""
    from derive import build

    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    derivation = derivations.get("relu")
    with build.Workers(force=True) as workers:
        workers.submit("relu", derivation)
        assert workers.unkept  # run in a worker, not yet kept
        workers.results()
        assert not workers.unkept
    for claim in claims.claims(derivation):  # kept as checked: without its title
        found, result = cache.recall(claims.check, (claims.untitled(claim),))
        assert found and result.page == "relu"
    with build.Workers(force=True) as workers:  # a failed build keeps nothing
        workers.submit("relu", derivation)
        workers.results(keep=False)
        assert workers.unkept
    with build.Workers() as workers:  # unforced, with results to recall: the workers recall
        assert workers.recalling
        workers.submit("relu", derivation)
        assert not workers.unkept
        workers.results()
    shutil.rmtree(checks)
    with build.Workers() as workers:  # unforced and cold: nothing to recall, the parent keeps
        assert not workers.recalling
        workers.submit("relu", derivation)
        assert workers.unkept
        workers.results()
    assert cache.remembers_checks()
