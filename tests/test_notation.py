"""The notation table and its check: every page follows it, and a page that does not is named."""

import re

import pytest
import sympy as sp

from derive import build, cache, derivations, notation
from derive.errors import BuildError
from derive.model import C, S, W, class_index, input_index, size, x
from derive.pages import home_output
from derive.steps import Derivation, Step

i, k, t = (class_index(n) for n in "ikt")
d_input, d_class = input_index("d"), class_index("d")
B = size("B")
b = sp.Idx("b", (1, B))


def page(*steps: Step, **fields) -> Derivation:
    """A made-up derivation with the given steps and nothing else."""
    return Derivation(
        name="made_up",
        title="Made up",
        summary="",
        definitions=(),
        steps=steps,
        identities=(),
        kernels=(),
        **fields,
    )


def step(title: str, expr: sp.Expr) -> Step:
    return Step(title, "A rule.", expr, expr)


@pytest.mark.parametrize("name", derivations.MODULES)
def test_every_registered_derivation_follows_the_notation(name):
    assert notation.problems(derivations.get(name)) == []


def test_a_letter_counting_two_things_on_one_page_is_named_with_both_places():
    made_up = page(step("Inputs", x[d_input] * W[d_input, i]), step("Classes", S[d_class]))
    found = notation.problems(made_up)
    assert any(
        "index d counts inputs (D) in step 1 ('Inputs')" in p
        and "classes (C) in step 2 ('Classes')" in p
        for p in found
    ), found
    with pytest.raises(notation.NotationError, match=r"page 'made_up' .*index d counts"):
        notation.check(made_up)


def test_a_letter_counting_what_the_table_does_not_give_it_is_named():
    found = notation.problems(page(step("Classes", S[d_class])))
    assert found == ["index d counts classes (C) in step 1 ('Classes'), but d counts inputs (D)"]


def test_m_is_never_an_index():
    m = class_index("m")
    shift = sp.Symbol("m", real=True)
    found = notation.problems(
        page(step("Shift", sp.exp(-shift)), step("Others", sp.Sum(S[m], (m, 1, C))))
    )
    assert len(found) == 1 and found[0].startswith("index m in step 2 ('Others')"), found


def test_h_names_only_the_number_of_hidden_units():
    hessian = sp.IndexedBase("H")
    found = notation.problems(page(step("Hessian", hessian[i, k])))
    assert found == [
        "H is the number of hidden units and only that, but names something else in step 1 "
        "('Hessian')"
    ]
    hidden = sp.Idx("k", (1, sp.Symbol("H", integer=True, positive=True)))
    assert notation.problems(page(step("Hidden", W[i, hidden]))) == []


def test_an_index_and_a_name_with_one_letter_on_one_page_is_named():
    smoothed = sp.IndexedBase("t")
    found = notation.problems(page(step("Sum", sp.Sum(S[t], (t, 1, C))), step("t", smoothed[i])))
    assert found == [
        "t is an index in step 1 ('Sum') and a name in step 2 ('t'): "
        "one letter, one meaning on a page"
    ]


def test_a_letter_outside_the_table_and_a_range_that_is_not_a_size_are_named():
    q, i0 = sp.Idx("q", (1, C)), sp.Idx("i", (0, C))
    found = notation.problems(page(step("q", S[q]), step("From zero", S[i0])))
    assert any(p.startswith("index q in step 1 ('q') is not in the notation table") for p in found)
    assert any("index i ranges over (0, C) in step 2 ('From zero')" in p for p in found), found


def test_a_declared_departure_is_accepted_and_still_one_role_on_the_page():
    assert notation.problems(page(step("Classes", S[d_class]), notation=(("d", "C"),))) == []
    found = notation.problems(
        page(step("Classes", S[d_class]), step("Inputs", x[d_input]), notation=(("d", "C"),))
    )
    assert any("d counts inputs (D) in step 2 ('Inputs')" in p and "declares" in p for p in found)
    assert notation.problems(page(step("Classes", S[d_class]), notation=(("d", "X"),))) == [
        "declared index d: 'X' is not a size (C, D, H, B, K)",
        "index d counts classes (C) in step 1 ('Classes'), but d counts inputs (D)",
    ]


def test_a_primed_letter_counts_what_the_letter_counts():
    other_sample = sp.Idx("b'", (1, B))
    y_rows = sp.IndexedBase("y")
    assert (
        notation.problems(page(step("Two samples", y_rows[b, i] * y_rows[other_sample, i]))) == []
    )
    other_class = sp.Idx("b'", (1, C))
    assert notation.problems(page(step("Wrong", S[other_class]))) == [
        "index b' counts classes (C) in step 1 ('Wrong'), but b counts samples in a batch (B)"
    ]


def test_the_build_fails_naming_the_page_and_the_letter(monkeypatch):
    made_up = page(step("Inputs", x[d_input]), step("Classes", S[d_class]))
    monkeypatch.setattr(derivations, "MODULES", ("made_up",))
    monkeypatch.setattr(derivations, "get", lambda name: made_up)
    monkeypatch.setattr(cache, "load", lambda name: None)
    with pytest.raises(BuildError, match=r"derivation 'made_up' failed .*notation.*index d counts"):
        build.derive_all(run_proofs=True)


# -- the home page shows the table -----------------------------------------------------------


def test_the_home_page_lists_every_size_letter_and_name_of_the_table():
    body = home_output([derivations.get(name) for name in derivations.MODULES]).body
    section = body[body.index("## Notation") : body.index("- **Weights.**")]
    for letter, counts in notation.SIZES.items():
        assert f"${letter}$ {counts}" in section
    for counted, letters in notation.INDICES.items():
        listed = re.search(rf"- {notation.SIZES[counted]}, \$1\.\.{counted}\$: (.*)", section)
        assert listed, counted
        assert listed[1] == ", ".join(f"${notation.latex(letter)}$" for letter in letters)
    for name in notation.NAMES:
        shown = name if len(name) == 1 else f"\\mathit{{{name}}}"
        assert f"- ${shown}$: " in section
