"""The project as a library: what it requires, what it pins, its metadata and its types.

The wheel itself, installed without extras beside an older NumPy and PyTorch, is
checked by `.ci/wheel-check` (`make wheel-check`, run by `.ci/run`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
import types
from pathlib import Path

import pytest
import yaml

from derive import constraints

from registry import require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NAME, VERSION = PROJECT["name"], PROJECT["version"]
GENERATOR = {"sympy", "jinja2", "ruff", "matplotlib"}


def _name(requirement: str) -> str:
    """``"dask[array]>=2026.8"`` -> ``"dask"``."""
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_runtime_requirements_are_ranges_of_numpy_and_array_api_compat():
    requirements = PROJECT["dependencies"]
    assert sorted(_name(r) for r in requirements) == ["array-api-compat", "numpy"]
    for requirement in requirements:
        assert ">=" in requirement and "==" not in requirement, requirement


def test_the_generated_functions_import_none_of_the_generator():
    """A fresh interpreter imports derive.generated and calls a function: it loaded NumPy and
    array-api-compat, and nothing of the generator's or the tools' (the wheel check runs the
    same in a venv that has only the runtime requirements)."""
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import derive.generated as g
        g.weight_grad([[0.1, 0.2], [0.3, 0.4]], [[1.0, 0.0], [0.0, 1.0]], [1, 0])
        print(" ".join(sorted({m.partition(".")[0] for m in set(sys.modules) - before})))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert {"numpy", "array_api_compat"} <= loaded
    assert not loaded & (GENERATOR | {"scipy", "sklearn", "torch", "jax", "mkdocs", "yaml"})


def test_the_generator_is_an_extra_that_docs_and_test_include():
    extras = PROJECT["optional-dependencies"]
    assert {_name(r) for r in extras["generate"]} == GENERATOR
    assert f"{NAME}[generate]" in extras["docs"]
    assert f"{NAME}[docs]" in extras["test"]


def test_every_requirement_is_pinned_in_constraints_txt():
    pinned = constraints.pins()
    declared = {
        _name(r)
        for r in PROJECT["dependencies"]
        + [r for extra in PROJECT["optional-dependencies"].values() for r in extra]
    } - {NAME}
    assert declared - set(pinned) == set()
    assert pinned["numpy"].startswith("2.")  # .ci/wheel-check installs the minor before it


def test_check_reports_a_generator_package_that_is_not_its_pin(tmp_path):
    other = tmp_path / "constraints.txt"
    other.write_text("sympy==0.0.1  # not the installed one\njinja2==0.0.2\n")
    problems = constraints.mismatches(other, packages=("sympy", "jinja2", "ruff"))
    assert len(problems) == 3
    assert problems[0].startswith("sympy ") and "pins 0.0.1" in problems[0]
    assert problems[1].startswith("jinja2 ") and "pins 0.0.2" in problems[1]
    assert problems[2] == "constraints.txt: no pin for ruff (the generated files depend on it)"
    assert constraints.mismatches(tmp_path / "missing.txt") == []  # an install: no checkout


def test_this_environment_has_the_pinned_generator():
    assert constraints.mismatches() == [], (
        "install with: pip install -c constraints.txt -e '.[test]'"
    )


def test_the_distribution_name_is_not_the_import_name_taken_on_the_index():
    assert NAME == "derive-softmax"
    assert (ROOT / "derive" / "__init__.py").exists()


def test_the_version_agrees_in_pyproject_citation_and_changelog():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == VERSION
    releases = re.findall(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == VERSION


def test_the_citation_names_the_project_and_the_posts_it_reproduces():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert NAME in citation["title"]
    posts = [r for r in citation["references"] if "Oman" in str(r["authors"])]
    assert [p["title"] for p in posts] == [
        f"The Softmax Function Derivative (Part {n})" for n in (1, 2, 3)
    ]
    assert any("Bendersky" in str(r["authors"]) for r in citation["references"])


def test_the_metadata_has_classifiers_and_urls():
    assert "Typing :: Typed" in PROJECT["classifiers"]
    assert any(
        c.startswith("Programming Language :: Python :: 3.11") for c in PROJECT["classifiers"]
    )
    assert {"Homepage", "Source", "Changelog"} <= set(PROJECT["urls"])


def test_the_footer_names_the_release():
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert "derive/mkdocs_version_hook.py" in mkdocs
    from derive import mkdocs_version_hook

    config = types.SimpleNamespace(config_file_path=str(ROOT / "mkdocs.yml"), copyright=None)
    assert mkdocs_version_hook.on_config(config).copyright == f"{NAME} {VERSION} · BSD 3-Clause"


USER_CODE = """\
import numpy as np

from derive.array_types import Array
from derive.generated import softmax, softmax_temperature, weight_grad

x = np.ones(3)
W = np.ones((3, 5))
s: Array = softmax(x)
shape = weight_grad(x, W, 2).shape
weight_grad([0.1, 0.2, 0.3], W, [0.0, 1.0, 0.0, 0.0, 0.0], label_smoothing=0.1)
softmax(((0.1, 0.2), (0.3, 0.4)))
softmax(np.float32(1.0))
softmax_temperature(x, 2)
softmax("logits")  # error
softmax(None)  # error
softmax_temperature(x, "hot")  # error
weight_grad(x, W, 2, reduction="sum")  # error
"""


def test_a_type_checker_accepts_arrays_and_numbers_and_refuses_the_rest(tmp_path):
    """mypy on user code: NumPy arrays, NumPy scalars, nested lists and tuples pass; a string,
    None, a string temperature and an option the function lacks are errors (PyTorch, JAX,
    Dask and array-api-strict arrays satisfy `Array` too, but their stubs make mypy slow)."""
    api = require("mypy.api")
    (tmp_path / "user.py").write_text(USER_CODE)
    # array-api-compat, which derive._runtime uses inside the functions (no signature names
    # it), imports PyTorch, JAX and Dask for its own type checking: following it made mypy
    # parse 2,453 modules (29 s of CPU) instead of 284 (3.5 s), with the same errors
    (tmp_path / "mypy.ini").write_text(
        "[mypy]\nfollow_imports = silent\n\n[mypy-array_api_compat.*]\nfollow_imports = skip\n"
    )
    stdout, stderr, status = api.run(
        [
            str(tmp_path / "user.py"),
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
        ]
    )
    errors = sorted({int(m) for m in re.findall(r"user\.py:(\d+): error", stdout)})
    expected = [n for n, line in enumerate(USER_CODE.splitlines(), 1) if line.endswith("# error")]
    assert errors == expected, stdout + stderr


@pytest.mark.parametrize("module", ["derive.generated.cross_entropy", "derive.generated.two_layer"])
def test_the_generated_signatures_use_the_array_types(module):
    import importlib
    import inspect

    for name in importlib.import_module(module).__all__:
        function = getattr(importlib.import_module(module), name)
        annotations = inspect.get_annotations(function)
        assert annotations["return"] in ("Array", "tuple[Array, Array, Array, Array]"), name
        for parameter, annotation in annotations.items():
            if parameter != "return":
                assert annotation in (
                    "ArrayLike",
                    "float",
                    "ArrayLike | None",
                    "int | None",
                    "str",
                ), (
                    name,
                    parameter,
                    annotation,
                )
