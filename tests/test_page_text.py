"""What every derivation page must have and must not say, read from the registry."""

import re

import pytest

from derive import derivations

PAGES = {name: derivations.get(name) for name in derivations.MODULES}
MATH_OR_CODE = re.compile(r"\$[^$]*\$|`[^`]*`")
INDEX_NOTATION = re.compile(r"[_^\\]|Σ_|δ_")


def plain_text(markdown: str) -> str:
    """The text outside $math$ and `code`."""
    return MATH_OR_CODE.sub("", markdown)


@pytest.mark.parametrize("name", PAGES)
def test_every_derivation_page_has_exercises(name):
    assert PAGES[name].exercises, f"{name}: no exercise"


@pytest.mark.parametrize("name", PAGES)
def test_titles_write_index_notation_as_mathematics(name):
    derivation = PAGES[name]
    titles = [i.claim for i in derivation.identities]
    titles += [i.long_title for i in derivation.identities]
    titles += [i.shortcut_title for i in derivation.identities]
    titles += [s.title for s in derivation.steps] + [e.name for e in derivation.exercises]
    offending = [t for t in titles if INDEX_NOTATION.search(plain_text(t))]
    assert not offending, f"{name}: index notation outside $…$ in {offending}"


def test_the_check_catches_plain_text_index_notation():
    assert INDEX_NOTATION.search(plain_text("the sum Σ_{m≠i} S_m collapses"))
    assert INDEX_NOTATION.search(plain_text("δ_iℓ picks the label"))
    assert not INDEX_NOTATION.search(plain_text("the sum $\\sum_{m \\ne i} S_m$ of `log_softmax`"))
