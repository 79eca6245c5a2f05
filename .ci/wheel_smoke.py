"""Every generated function of the installed wheel, run beside another NumPy and PyTorch.

Two steps in two environments (`.ci/wheel-check` runs both):

    python .ci/wheel_smoke.py write CASES   # the checkout's environment (SymPy: the registry)
    python .ci/wheel_smoke.py check CASES   # a fresh venv: the wheel without extras, NumPy, torch
    python .ci/wheel_smoke.py sdist TARBALL # the sdist holds what the tests and `derive check` need

``write`` draws the arguments of every registry function (each part of one that
returns several, and each function with options again with every option set)
from the domains the registry declares, and pickles them with the function's
result computed by the checkout with the pinned NumPy. ``check`` calls the
installed wheel's functions on the same arguments as NumPy arrays and as torch
tensors (float64 and float32) and compares; it fails if `derive` was imported
from anywhere but the venv, or if running every function on NumPy imported a
generator package (SymPy, Jinja2, ruff, matplotlib). Nothing here lists a function.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ("sympy", "jinja2", "ruff", "matplotlib", "scipy", "sklearn")


def write(path: Path) -> None:
    import numpy as np

    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from registry import KERNELS, OPTION_VIEWS, call, draw_all, draw_options

    cases = []
    for seed, kernel in enumerate(KERNELS + OPTION_VIEWS):
        rng = np.random.default_rng(seed)
        values = draw_all({p.name: p for p in kernel.params}, (3,), rng)
        options = draw_options(kernel, values, rng) if kernel.options_view else {}
        arguments = list(values.values())
        expected = np.asarray(call(kernel, *arguments, **options))
        cases.append((kernel.id, kernel.name, kernel.part, arguments, options, expected))
    path.write_bytes(pickle.dumps(cases))
    print(f"wheel smoke test: {len(cases)} cases written to {path}")


# What a source distribution must hold to run the tests, `derive check` and `derive build`.
SDIST_NEEDS = (
    "pyproject.toml",
    "constraints.txt",
    "Makefile",
    "mkdocs.yml",
    "README.md",
    "CHANGELOG.md",
    "CITATION.cff",
    "LICENSE",
    "templates/module.py.j2",
    "docs/index.md",
    "docs/assets/katex/katex.min.js",
    "derive/generated/__init__.py",
    "derive/py.typed",
    "tests/conftest.py",
    "tests/registry.py",
    "tests/numerical.py",
    ".ci/run",
    ".ci/wheel-check",
    "bench-results/latest.json",
    "accuracy-results/latest.json",
    "training-results/latest.json",
)


def sdist(path: Path) -> int:
    """Whether the sdist holds every file of SDIST_NEEDS, and each file git tracks under
    templates/ and tests/ (a new helper module or template is caught too)."""
    import subprocess
    import tarfile

    with tarfile.open(path) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    tracked = subprocess.run(
        ["git", "ls-files", "templates", "tests", "docs", "derive"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    missing = sorted(set(SDIST_NEEDS) - names | {f for f in tracked if f not in names})
    for name in missing:
        print(f"FAILED the sdist {path.name} lacks {name}", file=sys.stderr)
    print(f"sdist: {len(names)} files, {len(missing)} of those needed missing")
    return 1 if missing else 0


def _call(generated, name: str, part: int | None, arguments: list, options: dict):
    value = getattr(generated, name)(*arguments, **options)
    return value if part is None else value[part]


def check(path: Path) -> int:
    start = time.perf_counter()
    from importlib.metadata import version

    import numpy as np

    import derive.generated as generated

    where = Path(generated.__file__).resolve()
    if not where.is_relative_to(Path(sys.prefix).resolve()):
        print(f"derive imported from {where}, not from the venv {sys.prefix}", file=sys.stderr)
        return 1
    cases = pickle.loads(path.read_bytes())
    failures = []

    def compare(case_id: str, library: str, result, expected, tolerance: float) -> None:
        try:
            if hasattr(result, "detach"):
                result = result.detach().cpu().numpy()
            np.testing.assert_allclose(
                np.asarray(result, dtype=np.float64), expected, rtol=tolerance, atol=tolerance
            )
        except AssertionError as error:
            failures.append(f"{case_id} ({library}): {str(error).strip()}")

    for case_id, name, part, arguments, options, expected in cases:
        try:
            compare(case_id, "numpy", _call(generated, name, part, arguments, options), expected, 1e-12)
        except Exception as error:
            failures.append(f"{case_id} (numpy): {type(error).__name__}: {error}")
    imported = sorted(m for m in GENERATOR if m in sys.modules)
    if imported:
        failures.append(f"running the generated functions on NumPy imported {', '.join(imported)}")

    import torch

    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-4)):
        def tensor(a, dtype=dtype):
            if isinstance(a, np.ndarray):
                return torch.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)
            return a

        for case_id, name, part, arguments, options, expected in cases:
            converted = {k: tensor(v) for k, v in options.items()}
            try:
                result = _call(generated, name, part, [tensor(a) for a in arguments], converted)
                if not isinstance(result, torch.Tensor) or result.dtype != dtype:
                    failures.append(f"{case_id} (torch {dtype}): got {type(result).__name__} "
                                    f"of dtype {getattr(result, 'dtype', None)}")
                    continue
                compare(case_id, f"torch {dtype}", result, expected, tolerance)
            except Exception as error:
                failures.append(f"{case_id} (torch {dtype}): {type(error).__name__}: {error}")

    installed = ", ".join(
        f"{name} {version(name)}" for name in ("derive-softmax", "numpy", "array-api-compat", "torch")
    )
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(
        f"wheel smoke test: {len(cases)} cases x (numpy float64, torch float64, torch float32) "
        f"with {installed}: {len(failures)} failed, in {seconds:.1f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check", "sdist"):
        sys.exit(f"usage: python {sys.argv[0]} write|check CASES, or sdist TARBALL")
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    else:
        sys.exit({"check": check, "sdist": sdist}[sys.argv[1]](Path(sys.argv[2])))
