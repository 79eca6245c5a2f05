"""A project copy built once per session, for the tests that run `python -m derive` on a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env(where: Path) -> dict:
    """The environment of a process that imports the copy ``where``'s own derive."""
    return {**os.environ, "PYTHONPATH": str(where), "PYTHONDONTWRITEBYTECODE": "1"}


def derive_in(where: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m derive ARGS`` run in ``where``, importing that copy's own derive."""
    return subprocess.run(
        [sys.executable, "-m", "derive", *args],
        cwd=where,
        env=env(where),
        capture_output=True,
        text=True,
        timeout=300,
        umask=0o022,
    )


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """A copy of derive/, templates/ and docs/ (no figures) with one full build done.

    The build derives and proves everything from nothing; its cache
    (.derive-cache/) then lets a copy of this folder build in seconds, so a
    test about something other than deriving (litter, locks, the MkDocs hook)
    does not pay for the derivations again. Copy it before changing it
    (``shutil.copytree(built_project, ...)``).
    """
    copy = tmp_path_factory.mktemp("project")
    for folder in ("derive", "templates", "docs"):
        if (ROOT / folder).exists():
            shutil.copytree(
                ROOT / folder,
                copy / folder,
                ignore=shutil.ignore_patterns("__pycache__", "figures"),
            )
    result = derive_in(copy, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert (copy / ".derive-cache").is_dir()
    return copy


def seed_cache(source: Path, target: Path) -> None:
    """Copy into ``target``'s .derive-cache/ the derivations and checks ``source``'s holds and
    it lacks, so a build of the same code in ``target`` recalls them instead of proving again.

    Safe because every entry carries the key of what it was made from (a derivation's
    sources, a check's expressions and engine): an entry a build there cannot use is a miss,
    never a wrong result. The record of a build's outputs (outputs.json) belongs to the
    folder it was written in and is not copied. The suite proves everything once, in
    ``built_project``; the site's build in the checkout and the fault harness recall it.
    """
    for entry in (source / ".derive-cache").rglob("*.pickle"):
        there = target / ".derive-cache" / entry.relative_to(source / ".derive-cache")
        if not there.exists():
            there.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry, there)
