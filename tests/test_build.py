"""`python -m derive build | check | list`, run on a copy of the project.

The copy keeps these tests from touching the working tree: they edit
derivations, templates and generated files on purpose.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import derive_in as run  # python -m derive ARGS in a copy, its own derive imported

from derive import derivations
from derive.derivations import MODULES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(built_project, tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(built_project, copy)
    return copy


def snapshot(where: Path) -> dict[str, bytes]:
    files = list((where / "derive" / "generated").glob("*.py"))
    files += list((where / "docs" / "derivations").glob("*.md"))
    return {str(p.relative_to(where)): p.read_bytes() for p in files}


def test_the_copy_imports_its_own_derive(project):
    result = subprocess.run(
        [sys.executable, "-c", "import derive; print(derive.__file__)"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == str(project / "derive" / "__init__.py")


def test_build_prints_one_line_per_derivation_and_is_byte_identical_twice(project):
    before = snapshot(project)
    result = run(project, "build", "--no-figures", "--force")
    assert result.returncode == 0, result.stderr
    assert snapshot(project) == before
    for name in MODULES:
        assert any(line.startswith(name) and " s " in line for line in result.stdout.splitlines())
    assert "0 file(s) changed" in result.stdout


def test_a_build_with_nothing_changed_stops_early_and_writes_nothing(project):
    before = snapshot(project)
    result = run(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "nothing changed since the last build" in result.stdout
    assert snapshot(project) == before


def test_a_build_is_not_up_to_date_once_the_array_library_tests_appear(project):
    """The Benchmarks page names the libraries tests/test_array_libraries.py runs; a copy
    without tests/ said "nothing changed" when the file appeared, and kept the page's old text."""
    page = project / "docs" / "benchmarks.md"
    assert run(project, "build", "--no-figures").returncode == 0
    assert "not known here" in page.read_text()  # the copy has no tests/
    tests = project / "tests"
    tests.mkdir()
    (tests / "test_array_libraries.py").write_text('LIBRARIES = {"numpy-float64": None}\n')
    result = run(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" not in result.stdout
    assert "runs every one of them on NumPy" in page.read_text()


def test_an_edited_derivation_is_derived_again_with_what_uses_it_and_nothing_else(project):
    from derive import derivations

    path = project / "derive" / "derivations" / "layer_jacobian.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    result = run(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    lines = {
        line.split()[0]: line for line in result.stdout.splitlines() if line.split()[0] in MODULES
    }
    again = {name for name, line in lines.items() if "cached" not in line}

    def results_reach(
        name: str,
    ) -> set[str]:  # derivations whose results went into name's, transitively
        used = set(derivations.results_used(name))
        return used.union(*(results_reach(u) for u in used))

    # what calls a function of the edited derivation is not derived again: only results matter
    users = {n for n in MODULES if "layer_jacobian" in results_reach(n)}
    assert again == {"layer_jacobian"} | users
    assert "cross_entropy" in users  # it uses the layer's result, so the edit reaches it


def test_an_engine_comment_changes_no_generated_file(project):
    """Issue 23.4: a header records what its body depends on, not every byte of the engine."""
    before = snapshot(project) | {
        str(p.relative_to(project)): p.read_bytes() for p in (project / "docs").glob("*.md")
    }
    for engine in ("steps.py", "codegen.py", "pages.py", "render.py", "printing/array.py"):
        path = project / "derive" / engine
        path.write_text(path.read_text() + "\n# a comment that changes no output\n")
    result = run(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "nothing changed" not in result.stdout  # the build ran: its inputs changed
    assert "0 file(s) changed" in result.stdout, result.stdout
    after = snapshot(project) | {
        str(p.relative_to(project)): p.read_bytes() for p in (project / "docs").glob("*.md")
    }
    assert after == before
    assert run(project, "check").returncode == 0


def test_check_is_clean_after_a_build(project):
    result = run(project, "check")
    assert result.returncode == 0, result.stderr


def test_check_names_a_generated_file_edited_by_hand(project):
    path = project / "derive" / "generated" / "cross_entropy.py"
    source = path.read_text()
    edited = source.replace("return -y / s", "return -y / (s + 1e-12)")
    assert edited != source
    path.write_text(edited)
    result = run(project, "check")
    assert result.returncode == 1
    assert "derive/generated/cross_entropy.py: edited by hand" in result.stderr


def test_check_names_a_stale_file_when_its_derivation_changed(project):
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    path.write_text(
        path.read_text().replace('title="The softmax Jacobian"', 'title="Softmax Jacobian"')
    )
    result = run(project, "check")
    assert result.returncode == 1
    assert "derive/generated/softmax_jacobian.py: stale" in result.stderr


def test_a_failing_derivation_names_its_step_and_leaves_outputs_untouched(project):
    before = snapshot(project)
    path = project / "derive" / "derivations" / "layer_jacobian.py"
    source = path.read_text()
    broken = source.replace(
        "shortcut = sp.factor(evaluate(chain_substituted))",
        "shortcut = sp.factor(evaluate(chain_substituted)) + x[j]",
    )
    assert broken != source
    path.write_text(broken)
    result = run(project, "build", "--no-figures")
    assert result.returncode == 1
    assert "derivation 'layer_jacobian' failed while proving 'layer_jacobian'" in result.stderr
    assert "previous outputs left as they were" in result.stderr
    assert snapshot(project) == before


BREAK_LAST_STEP = """

_derive_unbroken = derive


def derive():  # appended by the test: the last displayed step made false
    from dataclasses import replace as _replace

    import sympy as _sp

    made = _derive_unbroken()
    last = made.steps[-1]
    wrong = 2 * last.result if isinstance(last.result, _sp.MatrixBase) else last.result + _sp.Rational(1, 7)
    return _replace(made, steps=(*made.steps[:-1], _replace(last, result=wrong)))
"""


# the last module with hand-written steps: a forward definition's steps are the engine's
# (tests/test_differentiate.py shows a false one fails its check)
HAND_WRITTEN = [m for m in MODULES if derivations.builder(m).__name__ == "derive"]


@pytest.mark.parametrize("name", [MODULES[0], HAND_WRITTEN[-1]])
def test_a_false_step_fails_the_build_naming_its_page_and_step(project, name):
    before = snapshot(project)
    path = project / "derive" / "derivations" / f"{name}.py"
    path.write_text(path.read_text() + BREAK_LAST_STEP)
    result = run(project, "build", "--no-figures")
    assert result.returncode == 1
    count = len(derivations.get(name).steps)
    assert f"derivation '{name}' failed while checking step {count}" in result.stderr
    assert f"{name}, step {count}" in result.stderr
    assert "previous outputs left as they were" in result.stderr
    assert snapshot(project) == before


def test_a_template_error_names_the_template_and_leaves_outputs_untouched(project):
    before = snapshot(project)
    template = project / "templates" / "module.py.j2"
    template.write_text(template.read_text().replace("{{ f.signature }}", "{{ f.no_such_field }}"))
    result = run(project, "build", "--no-figures")
    assert result.returncode == 1
    assert "rendering templates/module.py.j2" in result.stderr
    assert "no_such_field" in result.stderr
    assert snapshot(project) == before


def test_list_names_every_derivation_and_its_functions(project):
    result = run(project, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(MODULES)
    assert "weight_grad" in lines[MODULES.index("cross_entropy")]
    # issue 23.6: aligned (every title starts in one column), every function named, no
    # "Title: " with nothing after it
    width = max(len(name) for name in MODULES)
    assert {len(line) - len(line[width:].lstrip()) for line in lines} == {width + 2}, lines
    assert all(not line.rstrip().endswith(":") for line in lines), lines
    import derive.generated as generated

    named = {name.strip() for line in lines for name in line.partition(": ")[2].split(",")}
    assert set(generated.__all__) <= named, sorted(set(generated.__all__) - named)


def test_a_cache_entry_whose_derivation_cannot_be_read_is_not_cached(tmp_path, monkeypatch):
    import pickle

    from derive import cache

    monkeypatch.setattr(cache, "FOLDER", tmp_path)
    cache.store("tanh", b"not a pickle", None, {})
    assert pickle.loads((tmp_path / "tanh.pickle").read_bytes()).own == cache.own_key("tanh")
    assert cache.load("tanh") is None
    stored = cache.store("tanh", pickle.dumps("a derivation"), None, {})
    assert cache.load("tanh").derivation == "a derivation" == stored.derivation


@pytest.mark.parametrize("name", MODULES)
def test_every_derivation_comes_back_from_the_build_cache_unchanged(name):
    """A derivation that changes when pickled is never cached, and re-derived by every build."""
    from derive import cache, derivations

    cache.pickled(derivations.get(name))  # raises PicklingError, naming it, if it changes


def _lock_descriptors(path: str) -> list[str]:
    """In a worker: its open descriptors that refer to ``path``."""
    folder = "/proc/self/fd"
    return [fd for fd in os.listdir(folder) if os.path.realpath(f"{folder}/{fd}") == path]


def test_worker_processes_let_go_of_the_build_lock(tmp_path):
    """A worker forked while the build holds its lock closes its copy: a build killed with
    SIGKILL (which reaches only the parent) left a worker holding the lock, and every later
    build waited for it (the fault harness hung so)."""
    from concurrent.futures import ProcessPoolExecutor

    from derive import build, lock

    path = tmp_path / "build.lock"
    with lock.held(path, 1.0):
        with build._early_process() as early:
            assert early is not None
            assert early.submit(_lock_descriptors, str(path)).result() == []
        workers = build.Workers(force=True)
        try:
            pool = workers._pool()
            assert isinstance(pool, ProcessPoolExecutor)
            assert pool.submit(_lock_descriptors, str(path)).result() == []
        finally:
            workers.close()
        assert _lock_descriptors(str(path))  # this process still holds it


def test_the_early_process_takes_every_waiting_check_while_the_workers_are_not_forked(
    monkeypatch,
):
    """Checks submitted while deriving wait for the workers, forked once every derivation is
    derived; the early process, idle until then, takes the oldest as each of its own ends,
    not only two as each derivation is derived. Each check runs once, its result in place."""
    import time

    from derive import build, claims

    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    derivation = derivations.get("relu")
    with build._early_process() as early, build.Workers(force=True, early=early) as workers:
        workers.submit("relu", derivation)
        submitted = len(workers.pending)
        assert submitted > 2  # more than the early process is given at once
        deadline = time.monotonic() + 120
        while workers.fed < submitted or not all(f.done() for f in workers.early_futures):
            assert time.monotonic() < deadline, f"fed {workers.fed} of {submitted}"
            time.sleep(0.05)
        assert len(workers.early_futures) == submitted
        results = workers.results()
        assert workers.pool is None  # nothing was left for the workers: none was forked
    checked = [c for c in results["relu"] if isinstance(c, claims.ClaimCheck)]
    assert [c.number for c in checked] == [c.number for c in claims.claims(derivation)]
