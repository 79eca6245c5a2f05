"""The command line as users expect it (issue 23.6): what ``--help`` says, ``--version``,
every subcommand's help with an example and the exit codes, and the README's function table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import derive.generated as generated
from derive.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def derive(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "derive", *args], cwd=ROOT, capture_output=True, text=True
    )


def test_help_describes_the_project_as_it_is_now():
    result = derive("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "the softmax layer's derivatives" not in text
    assert "softmax classifier" in text and "two-layer network" in text
    assert "exit codes:" in text


def test_version_is_the_installed_distributions_version():
    (name,) = {d for d in metadata.packages_distributions()["derive"]}
    result = derive("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["python", "-m", "derive", metadata.version(name)]


@pytest.mark.parametrize("command", ["build", "check", "list", "nav", "steps"])
def test_every_subcommand_has_help_with_an_example_and_its_exit_codes(command):
    assert command in COMMANDS
    result = derive(command, "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^example: python -m derive {command}\b", result.stdout, re.M)
    exit_codes = " ".join(result.stdout[result.stdout.index("exit codes:") :].split())
    for code in ("0", "1", "2"):
        assert f" {code} " in exit_codes, exit_codes


def test_a_usage_error_goes_to_stderr_with_exit_code_2():
    result = derive("no-such-command")
    assert result.returncode == 2
    assert result.stdout == "" and "invalid choice" in result.stderr


def test_the_readme_function_table_names_every_generated_function():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("| derivation | functions in `derive.generated` |") :]
    table = section[: section.index("\n\n")]
    named = set(re.findall(r"`(\w+)(?:\([^`]*\))?`", table))
    missing = sorted(set(generated.__all__) - named)
    assert not missing, f"README's function table lacks {missing}"
