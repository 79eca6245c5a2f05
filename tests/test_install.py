"""An installed copy writes nothing beside its code (issue 23.2).

Simulates an install without installing: the package folder ``derive/`` alone
(no templates/, docs/ or results folders beside it) copied into a folder that
stands for site-packages, imported from there with no bytecode written, run
from another folder with its own cache folder (``XDG_CACHE_HOME``). The
commands either work, writing only to that cache folder or where ``--output``
says, or exit 2 with one line naming what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def install(tmp_path):
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "derive", site / "derive", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "elsewhere").mkdir()
    return site


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def run(site: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    cache = site.parent / "user-cache"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
        "XDG_CACHE_HOME": str(cache),
    }
    code = f"{prelude}import runpy, sys; sys.argv[0] = {args[0]!r}; sys.argv[1:] = {list(args[1:])!r}; runpy.run_module({args[0]!r}, run_name='__main__')"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=site.parent / "elsewhere",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow  # about 20 s: a training run and an accuracy run of one function, both short
def test_an_installed_copy_lists_trains_measures_without_writing_beside_its_code(install):
    before = files(install)
    listed = run(install, "derive", "list")
    assert listed.returncode == 0, listed.stderr
    assert "softmax_jacobian" in listed.stdout
    assert (install.parent / "user-cache" / "derive" / ".derive-cache").is_dir()
    bench = run(install, "derive.bench", "--smoke", "--only", "posts")
    assert bench.returncode == 0, bench.stderr
    report = install.parent / "user-cache" / "derive" / "bench-results" / "tmp-only.json"
    assert report.is_file() and f"wrote {report}" in bench.stdout
    # accuracy measures one function again in a report already in the user's cache folder (the
    # checkout's): where it writes is the point here, and every function took ~20 s of CPU
    kept = install.parent / "user-cache" / "derive" / "accuracy-results" / "latest.json"
    kept.parent.mkdir(parents=True)
    shutil.copyfile(ROOT / "accuracy-results" / "latest.json", kept)
    others = [r for r in json.loads(kept.read_text())["rows"] if r["function"] != "sigmoid"]
    for tool, folder, args in (
        ("train", "training-results", ["--seeds", "1"]),  # ~6 s
        ("accuracy", "accuracy-results", ["--samples", "1", "--only", "sigmoid"]),  # ~3 s
    ):
        ran = run(install, f"derive.{tool}", *args)
        assert ran.returncode == 0, ran.stderr
        report = install.parent / "user-cache" / "derive" / folder / "latest.json"
        assert report.is_file() and f"wrote {report}" in ran.stdout, ran.stdout[-500:]
        shown = run(install, f"derive.{tool}", "--help")
        assert shown.returncode == 0, shown.stderr
        assert str(report) in "".join(shown.stdout.split()), shown.stdout  # help wraps lines
    rows = json.loads(kept.read_text())["rows"]
    assert [r for r in rows if r["function"] != "sigmoid"] == others  # the other rows kept
    assert any(r["function"] == "sigmoid" for r in rows)
    assert files(install) == before


@pytest.mark.parametrize("command", ["build", "check"])
def test_build_and_check_from_an_install_say_they_need_a_checkout(install, command):
    before = files(install)
    result = run(install, "derive", command)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "needs a source checkout" in result.stderr
    assert files(install) == before


@pytest.mark.parametrize(
    ("module", "args", "missing"),
    [
        ("derive", ["list"], "sympy"),
        ("derive.train", [], "sklearn"),
        ("derive.accuracy", [], "scipy"),
        ("derive.bench", ["--smoke"], "torch"),
    ],
)
def test_a_missing_package_is_one_line_naming_it_and_the_extra(install, module, args, missing):
    result = run(install, module, *args, prelude=f"import sys; sys.modules[{missing!r}] = None; ")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "pip install" in line and "[" in line, line
    shown = {"sklearn": "scikit-learn", "torch": "PyTorch"}.get(missing, missing)
    assert shown in line, line


def test_accuracy_only_without_a_report_to_update_says_so(install):
    """``--only`` keeps the other rows of an existing report; from a fresh install there is none."""
    result = run(install, "derive.accuracy", "--only", "softmax")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    report = install.parent / "user-cache" / "derive" / "accuracy-results" / "latest.json"
    assert f"{report}, which does not exist" in " ".join(result.stderr.split())
