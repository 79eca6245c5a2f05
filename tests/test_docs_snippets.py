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
