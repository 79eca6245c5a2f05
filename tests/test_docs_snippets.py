"""The Python examples in the README and on the home page run as written."""

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = [
    (path, n, block)
    for path in ("README.md", "docs/index.md")
    for n, block in enumerate(re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), re.S))
]


@pytest.mark.parametrize("path, n, block", SNIPPETS, ids=[f"{p}#{n}" for p, n, _ in SNIPPETS])
def test_snippet_runs_and_gives_the_shapes_it_claims(path, n, block):
    names: dict = {}
    exec(compile(block, path, "exec"), names)
    assert names["J"].shape == (5, 5)
    assert names["G"].shape == (3, 5)
    np.testing.assert_allclose(names["s"].sum(), 1.0)


# -- the hand-written pages say what is true -------------------------------------------------


def _python_blocks(path: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), re.S)


def _gradient_check_example() -> list[str]:
    """The gradient-check page's example: its one Python block that is a script (the worked
    example below it is a single call)."""
    blocks = _python_blocks("docs/derivations/gradient-check.md")
    return [b for b in blocks if b.startswith("import numpy")]


def test_the_gradient_check_example_takes_the_step_its_page_advises_and_agrees():
    (block,) = _gradient_check_example()
    names: dict = {}
    exec(compile(block, "docs/derivations/gradient-check.md", "exec"), names)
    best = np.finfo(float).eps ** (1 / 3)  # "near ε^{1/3} for central differences"
    assert best / 2 < names["h"] < best * 2, f"h = {names['h']}, the page advises about {best:.1e}"
    assert np.isfinite(names["relative"]).all()
    assert names["relative"].max() < 1e-7  # CS231n's "good", which the page quotes
    page = (ROOT / "docs/derivations/gradient-check.md").read_text()
    assert "requires it below CS231n's $10^{-7}$" in page  # what the prose says of it


def test_the_gradient_check_relative_error_is_defined_where_both_values_are_zero():
    (block,) = _gradient_check_example()
    lines = [line for line in block.splitlines() if line.startswith(("scale =", "relative ="))]
    assert lines, "the example computes no relative error"
    names = {"np": np, "analytic": np.array([0.0, 1.0]), "numeric": np.array([0.0, 1.0 + 1e-9])}
    exec("\n".join(lines), names)
    assert names["relative"][0] == 0.0
    np.testing.assert_allclose(names["relative"][1], 1e-9, rtol=1e-6)


def test_the_list_of_generated_files_on_the_contributing_page_is_what_a_build_writes():
    from fnmatch import fnmatch

    from derive import build

    text = (ROOT / "docs" / "contributing.md").read_text()
    listed = re.split(r"\s+are committed", text[text.index("## Generated files") :])[0]
    patterns = re.findall(r"`([^`]+)`", listed)
    derived = build.derive_all(run_proofs=False)
    code = build.code_outputs(derived)
    with build.generated_package(code) as generated:
        pages = build.page_outputs(derived, generated)
    written = [str(o.path.relative_to(ROOT)) for o in (*code, *pages)]
    unlisted = [path for path in written if not any(fnmatch(path, p) for p in patterns)]
    assert not unlisted, f"docs/contributing.md does not list {unlisted} as generated"
    wrong = [p for p in patterns if not any(fnmatch(path, p) for path in written)]
    assert not wrong, f"docs/contributing.md lists {wrong} as generated; no build writes them"


def test_the_gradient_check_page_states_the_tolerances_the_tests_use():
    """The page's account of this project's checks is typed prose about tests/numerical.py:
    its step and tolerances must be the defaults there."""
    import inspect

    from derive.derivations.gradient_check import sci
    from tests import numerical

    step = inspect.signature(numerical.central_jacobian).parameters["step"].default
    tolerances = inspect.signature(numerical.assert_close).parameters
    rtol, atol = tolerances["rtol"].default, tolerances["atol"].default
    page = (ROOT / "docs/derivations/gradient-check.md").read_text()
    assert f"$|a - n| \\le {sci(atol)} + {sci(rtol)} |n|$" in page
    assert f"${sci(step)} \\max(1, |w|)$" in page
    assert f"relative tolerance ${sci(rtol)}$, absolute ${sci(atol)}$" in page
