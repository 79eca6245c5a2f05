"""Step numbers in the pages' prose come from the steps' keys, never typed by hand
(derive.step_references): every string of every derivation, and every string and comment
of its module, is scanned; the errors and the rendered numbers and links are checked."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import replace

import pytest

import derive.generated as generated
from derive import derivations
from derive.claims import claims
from derive.errors import BuildError
from derive.pages import _page_body, matrix_result_context, page_context
from derive.step_references import StepReferences, numbers, prose
from derive.steps import Section

# "step 16", "Steps 9 to 14", "step 5's": a number typed into prose. Not a step size
# ("step 1/L"), whose number is followed by a slash.
BARE_STEP_NUMBER = re.compile(r"\b[Ss]teps?\s+\d+(?![\d/])")


# "the previous step", "the last five steps", "the step above", "the next step but one": a
# step picked by its position from where the sentence stands, which an inserted step moves
# as silently as a typed number. Not "this step" (the step itself), "the steps above" (all
# of them) or "the step *Mean over a batch*" (its title), which no insertion makes false.
_POSITION = (
    r"previous|preceding|next|last|first|second|third|fourth|fifth|penultimate|following|"
    r"earlier|later|prior|former|latter"
)
_COUNT = r"two|three|four|five|six|seven|eight|nine|ten|\d+"
RELATIVE_STEP = re.compile(
    rf"\b(?:{_POSITION})(?:\s+(?:{_COUNT}))?\s+steps?\b"
    r"|\b(?:the|that)\s+step\s+(?:above|below|before|after|earlier|later|back|but\s+one)\b"
    r"|\b(?:previous|preceding)\s+(?:one|result)\b",
    re.IGNORECASE,
)


# "the step *Mean over a batch*", "the steps *A* and *B*", "the page's step “A”": a step named by its title, on this
# page or on the page a link in the same text opens. A renamed step must not leave it behind.
TITLED_STEP = re.compile(r"\b[Ss]teps?\s+(?:\*([^*]+)\*|“([^”]+)”)(?:\s+and\s+\*([^*]+)\*)?")
LINKED_PAGE = re.compile(r"\]\(([a-z0-9-]+)\.md\b")


def step_titles(derivation) -> set[str]:
    """What names a step: its title, or its title up to a colon ("Singular in W" for
    "Singular in W: W + a1ᵀ")."""
    return {t for s in derivation.steps for t in (s.title, s.title.split(":")[0])}


def unknown_step_titles(derivation) -> list[str]:
    """Each step title ``derivation``'s prose names that neither it nor a page the same text
    links to has, with where."""
    found = []
    for path, text in prose(derivation):
        pages = [derivation] + [
            derivations.get(slug.replace("-", "_"))
            for slug in LINKED_PAGE.findall(text)
            if slug.replace("-", "_") in derivations.MODULES
        ]
        titles = set().union(*(step_titles(d) for d in pages))
        for named in TITLED_STEP.finditer(text):
            found += [f"{path}: {t!r}" for t in named.groups() if t and t not in titles]
    return found


def relative_step_phrases(derivation) -> list[str]:
    """Each phrase of ``derivation``'s strings that picks a step by its position, with where."""
    return [
        f"{path}: {found.group(0)!r}"
        for path, text in prose(derivation)
        for found in RELATIVE_STEP.finditer(text)
    ]


def bare_step_numbers(derivation) -> list[str]:
    """Each string of ``derivation`` that types a step number, with where it is."""
    return [
        f"{path}: {text!r}" for path, text in prose(derivation) if BARE_STEP_NUMBER.search(text)
    ]


def numbers_in_source(path) -> list[str]:
    """Each string constant (implicit concatenations joined) and comment of a module that
    types a step number: figure labels and docstrings, which no derivation object holds."""
    source = path.read_text()
    found = [
        f"{path.name}:{node.lineno}: {node.value[:80]!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and BARE_STEP_NUMBER.search(node.value)
    ]
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and BARE_STEP_NUMBER.search(token.string):
            found.append(f"{path.name}:{token.start[0]}: {token.string!r}")
    return found


@pytest.fixture(scope="module")
def sigmoid():
    return derivations.get("sigmoid")


def number_of(derivation, key: str) -> int:
    """The step's position on the page, counted here from the steps themselves."""
    return [s.key for s in derivation.steps].index(key) + 1


def with_section(derivation, text: str):
    return replace(derivation, sections=(*derivation.sections, Section("Extra", text)))


# Each scan of a derivation's prose (or module) for a step it names unchecked, and what to
# write instead.
SCANS = {
    "typed step number": (
        lambda name: bare_step_numbers(derivations.get(name)),
        "write {step:key} instead of a number",
    ),
    "typed step number in the module": (
        lambda name: numbers_in_source(derivations.source(name)),
        "name the step by its key instead",
    ),
    "step picked by its place": (
        lambda name: relative_step_phrases(derivations.get(name)),
        "name the step by its key, {step:key}, instead of",
    ),
    "title no step has": (
        lambda name: unknown_step_titles(derivations.get(name)),
        "no step of its page or of the linked page has this title (renamed?)",
    ),
}


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", derivations.MODULES)
def test_the_prose_names_every_step_it_means_so_that_the_build_can_check_it(name, scan):
    find, advice = SCANS[scan]
    found = find(name)
    assert not found, f"{name}: {advice}: {found}"


def test_the_title_scan_finds_a_title_no_step_has(sigmoid):
    title = sigmoid.steps[0].title
    assert not unknown_step_titles(with_section(sigmoid, f"as the step *{title}* shows"))
    renamed = with_section(sigmoid, f"as the steps *{title}* and *{title}, renamed* show")
    assert unknown_step_titles(renamed) == [
        f"sections[{len(sigmoid.sections)}] ('Extra').text: '{title}, renamed'"
    ]


@pytest.mark.parametrize(
    "phrase",
    [
        "the previous step",
        "Invert the last step",
        "the next step but one",
        "the last five steps",
        "the first step of this section",
        "the step above",
        "the Preceding Step",
        "as the previous one shows",
    ],
)
def test_the_scan_finds_a_step_picked_by_its_position(sigmoid, phrase):
    found = relative_step_phrases(with_section(sigmoid, f"As in {phrase}, so here."))
    assert len(found) == 1 and "('Extra').text" in found[0], found


@pytest.mark.parametrize(
    "text",
    [
        "this step's result",
        "The steps above show it",
        "Every step above was chosen",
        "the step *Mean over a batch*",
        "a gradient step of size below 8",
        "the first damped step's length",
        "the last line of the equation",
        "{step:stable-derivative}",
    ],
)
def test_the_scan_leaves_what_no_inserted_step_makes_false(sigmoid, text):
    assert not relative_step_phrases(with_section(sigmoid, text))


def test_the_scan_finds_a_typed_step_number(sigmoid, tmp_path):
    typed = with_section(sigmoid, "As step 3 shows, and Steps 1 to 2.")
    assert len(bare_step_numbers(typed)) == 1
    assert not bare_step_numbers(with_section(sigmoid, "with step 1/L, the step size 1"))
    module = tmp_path / "typed.py"
    module.write_text('LABEL = "bound (step " "16)"  # as step 4 shows\n')
    assert len(numbers_in_source(module)) == 2


def test_every_reference_in_the_registry_resolves_to_a_key_of_its_derivation():
    for name in derivations.MODULES:
        derivation = derivations.get(name)
        resolve = StepReferences(derivation)
        for _, text in prose(derivation):
            resolve(text)  # raises on an unknown key


def test_a_reference_renders_the_steps_number_as_a_link_to_its_heading(sigmoid):
    n = number_of(sigmoid, "stable-derivative")
    say = StepReferences(sigmoid)
    assert say("{step:stable-derivative}'s form") == f"[step {n}](#step-{n})'s form"
    assert say("{Step:stable-derivative} keeps") == f"[Step {n}](#step-{n}) keeps"
    assert say("{step:stable-derivative}", link_to=None) == f"step {n}"
    m = number_of(sigmoid, "stable-evaluation")
    assert say("{steps:stable-evaluation and stable-derivative}") == (
        f"steps [{m}](#step-{m}) and [{n}](#step-{n})"
    )
    assert say("{Steps:stable-evaluation to stable-derivative}", link_to=None) == (
        f"Steps {m} to {n}"
    )
    assert say("{step:stable-derivative}", link_to="derivations/sigmoid.md") == (
        f"[step {n}](derivations/sigmoid.md#step-{n})"
    )
    assert say("$\\text{step:stable-derivative}$") == "$\\text{step:stable-derivative}$"


def test_a_step_inserted_before_moves_the_number_the_prose_says(sigmoid):
    before = number_of(sigmoid, "stable-derivative")
    extra = replace(sigmoid.steps[0], key="")
    moved = replace(sigmoid, steps=(extra, *sigmoid.steps))
    assert StepReferences(moved)("{step:stable-derivative}", link_to=None) == (f"step {before + 1}")


def test_the_page_resolves_its_prose_and_gives_each_step_heading_its_id(sigmoid):
    n = number_of(sigmoid, "stable-derivative")
    page = page_context(with_section(sigmoid, "See {step:stable-derivative}."), generated)
    assert page["sections"][-1]["text"] == f"See [step {n}](#step-{n})."
    assert [s["anchor"] for s in page["steps"]] == [
        f"step-{i}" for i in range(1, len(sigmoid.steps) + 1)
    ]
    body = _page_body(with_section(sigmoid, "See {step:stable-derivative}."), generated)
    assert f"### {n}. {sigmoid.steps[n - 1].title} {{ #step-{n} }}" in body
    assert f"See [step {n}](#step-{n})." in body


def test_the_home_page_links_a_reference_to_the_derivations_page():
    derivation = derivations.get("cross_entropy")
    key = next(s.key for s in derivation.steps if s.key)
    n = number_of(derivation, key)
    text = replace(derivation.matrix_result, text=f"As {{step:{key}}} shows.")
    shown = matrix_result_context(
        replace(derivation, matrix_result=text), link_to="derivations/cross-entropy.md"
    )
    assert shown["text"] == f"As [step {n}](derivations/cross-entropy.md#step-{n}) shows."


def test_an_unknown_key_names_the_derivation_the_key_and_the_place(sigmoid):
    with pytest.raises(BuildError) as failure:
        page_context(with_section(sigmoid, "See {step:no-such-step}."), generated)
    message = str(failure.value)
    assert "'sigmoid'" in message and "'no-such-step'" in message
    assert "sections[" in message and "('Extra').text" in message


def test_two_steps_with_one_key_is_an_error_naming_both(sigmoid):
    twice = replace(
        sigmoid, steps=(*sigmoid.steps, replace(sigmoid.steps[0], key="stable-derivative"))
    )
    with pytest.raises(BuildError, match=r"'sigmoid'.*step \d+ .*step \d+ .*'stable-derivative'"):
        numbers(twice)
    with pytest.raises(BuildError, match="stable-derivative"):
        page_context(twice, generated)


def test_a_reference_where_the_page_does_not_resolve_one_is_an_error(sigmoid):
    kernel = replace(sigmoid.kernels[0], notes="Layout as in {step:stable-derivative}.")
    in_notes = replace(sigmoid, kernels=(kernel, *sigmoid.kernels[1:]))
    with pytest.raises(BuildError) as failure:
        page_context(in_notes, generated)
    message = str(failure.value)
    assert "'sigmoid'" in message and "{step:stable-derivative}" in message
    assert f"kernels[0] ('{kernel.name}').notes" in message
    titled = replace(sigmoid, title="As {step:stable-derivative}")
    with pytest.raises(BuildError, match=r"in title"):
        page_context(titled, generated)


@pytest.mark.parametrize(
    "text, why",
    [
        ("{step:stable-evaluation and stable-derivative}", "names 2 steps"),
        ("{steps:stable-derivative}", "names one step"),
        ("{steps:stable-derivative to stable-evaluation}", "back to step"),
    ],
)
def test_a_reference_of_the_wrong_form_is_an_error(sigmoid, text, why):
    with pytest.raises(BuildError, match=why):
        page_context(with_section(sigmoid, text), generated)


def test_a_key_is_lower_case_words_joined_by_hyphens(sigmoid):
    with pytest.raises(ValueError, match="key 'Stable derivative'"):
        replace(sigmoid.steps[0], key="Stable derivative")
    assert replace(sigmoid.steps[0], key="stable-derivative-2").key == "stable-derivative-2"


def test_keys_are_not_part_of_what_the_build_checks(sigmoid):
    """A key or a reference is prose: adding or renaming one re-proves nothing."""
    unkeyed = replace(sigmoid, steps=tuple(replace(s, key="") for s in sigmoid.steps))
    assert claims(unkeyed) == claims(sigmoid)
