"""The generated modules are formatted by ruff, all of a build's with one process."""

from __future__ import annotations

import subprocess

import pytest

from derive import render

UNFORMATTED = ["x = ( 1+2 )\n", "def f( a ):\n  return a*2\n"]


@pytest.fixture
def nothing_formatted(monkeypatch):
    monkeypatch.setattr(render, "_formatted", {})


def test_formatting_ahead_gives_what_formatting_each_gives(nothing_formatted, monkeypatch):
    each = [render.format_python(source) for source in UNFORMATTED]
    assert each != UNFORMATTED  # ruff changed them
    monkeypatch.setattr(render, "_formatted", {})
    runs = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a) or real_run(*a, **k))
    render.format_ahead(UNFORMATTED)
    assert len(runs) == 1  # one process for all
    assert [render.format_python(source) for source in UNFORMATTED] == each
    assert len(runs) == 1  # and none after


def test_a_source_ruff_cannot_format_fails_alone(nothing_formatted):
    broken = "def f(:\n"
    render.format_ahead([*UNFORMATTED, broken])
    assert render.format_python(UNFORMATTED[0]) == "x = 1 + 2\n"
    with pytest.raises(ValueError, match="ruff format failed"):
        render.format_python(broken)
