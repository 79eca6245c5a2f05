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


def test_the_command_line_enlarges_sympys_cache_unless_the_user_sized_it(monkeypatch):
    import os

    from derive import cli

    monkeypatch.delenv("SYMPY_CACHE_SIZE", raising=False)
    monkeypatch.delitem(sys.modules, "sympy", raising=False)  # as before SymPy is imported
    cli._larger_sympy_cache()
    assert os.environ["SYMPY_CACHE_SIZE"] == cli.SYMPY_CACHE_SIZE
    monkeypatch.setenv("SYMPY_CACHE_SIZE", "500")  # the user's own setting stays
    cli._larger_sympy_cache()
    assert os.environ["SYMPY_CACHE_SIZE"] == "500"


def test_the_cache_size_is_not_set_once_sympy_is_imported(monkeypatch):
    import os

    import sympy  # noqa: F401 - read its cache size already: setting it now would mislead

    from derive import cli

    monkeypatch.delenv("SYMPY_CACHE_SIZE", raising=False)
    cli._larger_sympy_cache()
    assert "SYMPY_CACHE_SIZE" not in os.environ


def test_python_m_derive_runs_sympy_with_the_larger_cache():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from derive import cli; cli._larger_sympy_cache();"
            "import sympy.core.cache as c; print(c.SYMPY_CACHE_SIZE)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in __import__("os").environ.items() if k != "SYMPY_CACHE_SIZE"},
    )
    assert done.stdout.strip() == __import__("derive.cli").cli.SYMPY_CACHE_SIZE
