"""Step numbers in a page's prose, written as references to the steps' keys.

A page numbers its steps by position, so a number typed into the prose ("as step
16 shows") turns false, silently, when a step is inserted before it. The prose
names the step by its key instead (``Step.key``), and the page renders the number
the step has now, as a link to it:

- ``{step:sigmoid-slope}`` -> "step 16"; ``{Step:sigmoid-slope}`` -> "Step 16";
- ``{steps:sigmoid-slope and slope-at-0}`` -> "steps 16 and 17" (``and``, ``,``
  and ``to`` join the keys: "steps 9 to 14").

A key that names no step, two steps with one key, or a reference where the page
does not resolve one (a kernel's notes, which go into the generated code) is a
:class:`~derive.errors.BuildError` naming the derivation, the key and the place.
Resolving reads only the steps' keys and order, never a claim: a prose edit
re-proves nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping

from derive.errors import BuildError

REFERENCE = re.compile(r"(?<![\w\\])\{(step|Step|steps|Steps):([^{}]*)\}")
"""``{step:key}``: braces around a word and a colon occur in neither LaTeX nor Markdown
(not after a command's name either: ``\\text{step: 1}`` is LaTeX, left alone)."""

KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
"""What a key looks like: lower-case words joined by hyphens, ``sigmoid-slope``."""

_JOINS = re.compile(r"(,\s*|\s+and\s+|\s+to\s+)")


def anchor(number: int) -> str:
    """The id the page gives step ``number``'s heading (templates/page.md.j2)."""
    return f"step-{number}"


def numbers(derivation) -> dict[str, int]:
    """Each key of ``derivation``'s steps -> the step's number on the page (1-based)."""
    found: dict[str, int] = {}
    for number, step in enumerate(derivation.steps, 1):
        if not step.key:
            continue
        if step.key in found:
            first = found[step.key]
            raise BuildError(
                f"derivation {derivation.name!r}: step {first} "
                f"({derivation.steps[first - 1].title!r}) and step {number} ({step.title!r}) "
                f"both have the key {step.key!r}; a key names one step"
            )
        found[step.key] = number
    return found


def prose(derivation) -> Iterator[tuple[str, str]]:
    """Every string of ``derivation`` with where it is ("sections[1] ('Title').text"),
    found by walking its fields, so that no place can be missed."""
    yield from _strings(derivation, "", set())


def _strings(value, path: str, seen: set[int]) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if id(value) in seen:
            return
        seen.add(id(value))
        named = getattr(value, "title", "") or getattr(value, "name", "")
        here = f"{path} ({named!r})" if path and isinstance(named, str) and named else path
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name), f"{here}.{f.name}".lstrip("."), seen)
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]", seen)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            yield from _strings(item, f"{path}[{k!r}]", seen)


class StepReferences:
    """Resolves the references of one derivation's prose, and remembers which texts it
    resolved, so that ``check_all_resolved`` finds a reference the page never showed."""

    def __init__(self, derivation):
        self.derivation = derivation
        self.numbers = numbers(derivation)
        self.resolved: set[str] = set()

    def __call__(self, text: str, link_to: str | None = "") -> str:
        """``text`` with each reference replaced by its step's number: a link to
        ``link_to`` + "#step-N" ("" for the page itself), or plain text for None."""
        self.resolved.add(text)
        if "{" not in text:  # most prose: nothing to look for
            return text
        return REFERENCE.sub(lambda m: self._say(m, text, link_to), text)

    def _say(self, match: re.Match, text: str, link_to: str | None) -> str:
        word, inside = match.groups()
        keys, joins = _split(inside)
        if word.lower() == "step" and len(keys) != 1:
            self._fail(text, match, f"names {len(keys)} steps; write {{{word}s:...}}")
        if word.lower() == "steps" and len(keys) < 2:
            self._fail(text, match, f"names one step; write {{{word[:-1]}:...}}")
        found = []
        for key in keys:
            if key not in self.numbers:
                known = ", ".join(self.numbers) or "none"
                self._fail(text, match, f"the key {key!r} names no step (its keys: {known})")
            found.append(self.numbers[key])
        for join, before, after in zip(joins, found, found[1:]):
            if join.strip() == "to" and not before < after:
                self._fail(text, match, f"'to' runs from step {before} back to step {after}")

        def number(n: int) -> str:
            return str(n) if link_to is None else f"[{n}]({link_to}#{anchor(n)})"

        if len(found) == 1:
            said = f"{word} {found[0]}"
            return said if link_to is None else f"[{said}]({link_to}#{anchor(found[0])})"
        return word + " " + "".join(number(n) + j for n, j in zip(found, [*joins, ""]))

    def _fail(self, text: str, match: re.Match, why: str) -> None:
        places = [path for path, s in prose(self.derivation) if s == text] or ["its prose"]
        raise BuildError(
            f"derivation {self.derivation.name!r}: {match.group(0)} in {places[0]}: {why}"
        )

    def check_all_resolved(self) -> None:
        """Raise if a string of the derivation holds a reference this never resolved: a place
        the page does not show, or shows without resolving (a kernel's notes: generated code)."""
        for path, text in prose(self.derivation):
            if text not in self.resolved and (found := REFERENCE.search(text)):
                raise BuildError(
                    f"derivation {self.derivation.name!r}: {found.group(0)} in {path}, where "
                    "the page does not resolve step references (only in the prose it shows: "
                    "steps, sections, examples, exercises, errata, captions); name the step "
                    "by its title there, or move the sentence into the page's prose"
                )


def _split(inside: str) -> tuple[list[str], list[str]]:
    """``"a, b and c"`` -> (["a", "b", "c"], [", ", " and "]): the keys and what joins them."""
    parts = _JOINS.split(inside.strip())
    return parts[0::2], parts[1::2]
