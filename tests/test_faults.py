"""The build under faults: killed, out of space, denied, racing, fed broken templates.

Each test works on a copy of the project. Most read one report made by
tests/fault_harness.py, which runs a few dozen builds with one fault each
(see its docstring for how); the test decides what each build should have
left: every output whole-old or whole-new, with mode 0o644 under umask 022, no
temporary file or folder, a message and no traceback.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import derive_in as run  # python -m derive ARGS in a copy, its own derive imported
from conftest import env, seed_cache

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_name("fault_harness.py")
CLEAN = "build failed, previous outputs left as they were"
FAILING_WRITES = [
    "disk full while writing",
    "permission denied creating a file",
    "I/O error flushing a file",
    "I/O error making a backup",
    "I/O error replacing a file",
]
KILLS = ["killed while writing", "killed while the new modules are imported"]
OTHERS = [
    "clean",
    "replacing fails from then on",
    "hard links not supported",
    "two builds at once",
    "lock held by another build",
    "template syntax",
    "template invalid Python",
    "two checks at once",
]
LEFT_ALONE = ["killed --force, nothing changed", "killed after the journal, sources reverted"]
ROOT_IGNORES_PERMISSIONS = os.geteuid() == 0


def copy_project(where: Path) -> Path:
    for folder in ("derive", "templates", "docs"):
        shutil.copytree(
            ROOT / folder, where / folder, ignore=shutil.ignore_patterns("__pycache__", "figures")
        )
    return where


def outputs(where: Path) -> dict[str, bytes]:
    files = [*(where / "derive" / "generated").glob("*.py"), *(where / "docs").rglob("*.md")]
    return {str(p.relative_to(where)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def report(tmp_path_factory, built_project):
    project = copy_project(tmp_path_factory.mktemp("faults"))
    seed_cache(built_project, project)  # the harness derives once; this recalls it instead
    path = tmp_path_factory.mktemp("report") / "report.json"
    result = subprocess.run(
        [sys.executable, str(HARNESS), str(project), str(path)],
        check=False,
        cwd=project,
        env=env(project),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(path.read_text())


def cases(report, kind: str) -> list[dict]:
    found = [c for c in report if c["kind"] == kind]
    assert found, f"the harness ran no case of {kind!r}"
    return found


def test_the_harness_ran_the_kinds_of_fault_this_file_judges(report):
    kinds = set(FAILING_WRITES + KILLS + OTHERS + LEFT_ALONE)
    if not ROOT_IGNORES_PERMISSIONS:
        kinds.add("read-only output folder")
    assert {c["kind"] for c in report} == kinds


def test_clean_builds_write_every_output_with_the_mode_of_an_ordinary_write(report):
    (clean,) = cases(report, "clean")
    assert clean["files"] >= 14 and clean["sets_differ_everywhere"]  # every case below rewrites all
    assert clean["modes"] == [0o644]
    # the other cases reuse these renders: every module and page as the real build wrote it
    assert clean["kept_is_the_build"] == [True, True]
    assert clean["litter"] == []


@pytest.mark.parametrize("kind", FAILING_WRITES)
def test_a_failing_write_leaves_every_previous_output_and_no_temporary_file(report, kind):
    found = cases(report, kind)
    assert len(found) >= 2
    for case in found:
        where = f"{kind} at call {case['n']}"
        assert case["fired"], where
        assert case["rc"] == 1, (where, case["stderr"])
        assert CLEAN in case["stderr"] and "Traceback" not in case["stderr"], (
            where,
            case["stderr"],
        )
        assert re.search(r"writing \S+: \w", case["stderr"]), (
            where,
            case["stderr"],
        )  # names the file
        assert case["state"] == "old", where
        assert case["litter"] == [], where


def test_when_putting_the_old_files_back_fails_too_the_next_build_does_it(report):
    for case in cases(report, "replacing fails from then on"):
        where = f"replace fails from call {case['n']}"
        assert case["rc"] == 1 and "Traceback" not in case["stderr"], (where, case["stderr"])
        if case["state"] == "mixed":  # then it must say so, and leave the journal to undo it
            assert "could not be put back" in case["stderr"] and case["journal_after"], where
        else:
            assert CLEAN in case["stderr"], where
        assert case["after_recover"] == "old", where
        assert case["repaired_rc"] == 0 and case["repaired"] == "new", (
            where,
            case["repaired_stderr"],
        )
        assert case["litter_after_repair"] == [], where
    assert any(c["state"] == "mixed" for c in report if c["kind"] == "replacing fails from then on")


def test_without_hard_links_the_build_makes_copies_for_backups(report):
    for case in cases(report, "hard links not supported"):
        assert case["rc"] == 0, case["stderr"]
        assert case["state"] == "new" and case["litter"] == []


@pytest.mark.parametrize("kind", KILLS)
def test_a_killed_build_is_reported_by_check_and_undone_by_the_next_build(report, kind):
    for case in cases(report, kind):
        where = f"{kind} at call {case.get('n')}"
        assert case["rc"] == -9, where  # SIGKILL
        if case["state"] == "mixed":
            assert case["journal_after"], where  # the only way back
        if case["litter"]:
            assert case["check"]["rc"] == 1, where
            for item in case["litter"]:
                assert item in case["check"]["stderr"], (where, item)
        assert "Traceback" not in case["check"]["stderr"], where
        assert case["after_recover"] in ("old", "new"), where
        assert case["repaired_rc"] == 0 and case["repaired"] == "new", (
            where,
            case["repaired_stderr"],
        )
        assert case["litter_after_repair"] == [], where
    if kind == "killed while writing":  # killed before, during and after replacing
        assert {c["state"] for c in report if c["kind"] == kind} == {"old", "mixed", "new"}
    else:
        assert any("derive-generated-" in item for c in cases(report, kind) for item in c["litter"])


@pytest.mark.parametrize("kind", LEFT_ALONE)
def test_after_a_killed_build_check_reports_it_and_a_plain_build_cleans_up(report, kind):
    """Issue 22.8: ``build`` must not answer "nothing changed" while a killed build's leftovers
    are there (check says run build; build must then do it, or the two loop)."""
    (case,) = cases(report, kind)
    assert case["rc"] == -9  # SIGKILL
    assert case["litter"], "the killed build left nothing: the case tests nothing"
    assert case["check"]["rc"] == 1 and "Traceback" not in case["check"]["stderr"]
    assert case["rebuilt_rc"] == 0, case["rebuilt_stderr"]
    assert "nothing changed" not in case["rebuilt_stdout"], case["rebuilt_stdout"]
    assert case["rebuilt"] == "target"
    assert case["litter_after_rebuild"] == []
    assert case["check_after_rebuild"]["rc"] == 0, case["check_after_rebuild"]["stderr"]


def test_two_checks_at_once_do_not_take_each_other_for_an_interrupted_build(report):
    """Issue 22.9: a live check's import folder is not a killed build's."""
    (case,) = cases(report, "two checks at once")
    assert case["rcs"] == [0, 0], case["stderr"]
    assert "interrupted build" not in case["stderr"]
    assert case["litter"] == []


def test_two_builds_at_once_write_one_after_the_other(report):
    (case,) = cases(report, "two builds at once")
    assert case["rc"] == 0, case["stderr"]
    (_, first_end), (second_start, _) = case["intervals"]
    assert first_end <= second_start, "both builds were in their write step at once"
    assert "waiting for another build to finish" in case["stdout"]
    assert case["state"] == "new" and case["litter"] == []


def test_a_build_that_cannot_get_the_lock_says_so_and_writes_nothing(report):
    (case,) = cases(report, "lock held by another build")
    assert case["rc"] == 1
    assert (
        CLEAN in case["stderr"] and "another build still holds .derive-build.lock" in case["stderr"]
    )
    assert "Traceback" not in case["stderr"]
    assert case["state"] == "old" and case["litter"] == []


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "templates").glob("*.j2")))
def test_a_template_syntax_error_is_named_by_build_and_check(report, template):
    (case,) = [c for c in cases(report, "template syntax") if c["template"] == template]
    for result, message in ((case, CLEAN), (case["check"], "check failed")):
        assert result["rc"] == 1
        assert message in result["stderr"] and "Traceback" not in result["stderr"], result["stderr"]
        assert f"at templates/{template}:" in result["stderr"], result["stderr"]
        assert "TemplateSyntaxError" in result["stderr"]
    assert case["state"] == "old" and case["litter"] == []


def test_a_template_that_renders_invalid_python_is_named(report):
    found = {c["template"]: c for c in cases(report, "template invalid Python")}
    assert set(found) == {"module.py.j2", "generated_init.py.j2"}
    for template, case in found.items():
        assert case["rc"] == 1 and CLEAN in case["stderr"] and "Traceback" not in case["stderr"]
        assert f"rendered from templates/{template}" in case["stderr"], case["stderr"]
        assert case["state"] == "old" and case["litter"] == []
    assert "ruff format failed" in found["module.py.j2"]["stderr"]


@pytest.mark.skipif(
    ROOT_IGNORES_PERMISSIONS,
    reason="root writes into read-only folders; the 'permission denied' cases stand in for it",
)
def test_a_read_only_output_folder_fails_the_build_cleanly(report):
    (case,) = cases(report, "read-only output folder")
    assert case["rc"] == 1 and CLEAN in case["stderr"] and "Traceback" not in case["stderr"]
    assert "Permission denied" in case["stderr"]
    assert case["state"] == "old" and case["litter"] == []


# Through `python -m derive` itself, with nothing patched, on a copy of a built project (its
# cache spares the derivations; tests/test_build.py builds from nothing and with --force).


def test_a_build_removes_what_a_killed_build_left_and_writes_ordinary_modes(
    built_project, tmp_path
):
    project = shutil.copytree(built_project, tmp_path / "project")
    litter = [
        project / "derive" / "generated" / ".cross_entropy.py.0123abcd.tmp",
        project / "docs" / "derivations" / ".cross-entropy.md.89abcdef.tmp",
    ]
    for path in litter:
        path.write_text("half a file")
    template = project / "templates" / "module.py.j2"
    template.write_text(template.read_text() + "{# every module and page changes #}\n")
    checked = run(project, "check")
    assert checked.returncode == 1
    for path in litter:
        assert f"{path.relative_to(project)}: temporary file" in checked.stderr, checked.stderr
    built = run(project, "build", "--no-figures")
    assert built.returncode == 0, built.stderr
    assert not any(path.exists() for path in litter)
    written = [
        line.removeprefix("wrote ")
        for line in built.stdout.splitlines()
        if line.startswith("wrote ")
    ]
    assert len(written) >= 8
    modes = {name: oct((project / name).stat().st_mode & 0o777) for name in written}
    assert set(modes.values()) == {"0o644"}, modes
    assert run(project, "check").returncode == 0


def test_a_raising_derivation_fails_build_and_check_with_a_message_not_a_traceback(
    built_project, tmp_path
):
    project = shutil.copytree(built_project, tmp_path / "project")
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    source = path.read_text()
    broken = source.replace(
        "def derive():\n", "def derive():\n    raise ArithmeticError('injected')\n", 1
    )
    assert broken != source
    path.write_text(broken)
    before = outputs(project)
    for command, message in (("build", CLEAN), ("check", "check failed"), ("list", "list failed")):
        result = run(project, command)
        assert result.returncode == 1, command
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "derivation 'softmax_jacobian' failed while deriving" in result.stderr
        assert "ArithmeticError: injected" in result.stderr
    assert outputs(project) == before


def run_as_a_user(where: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m derive ARGS`` with file permissions enforced, even when the tests run as root.

    Root keeps its user id but loses the capabilities that let it ignore permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a folder without write permission is one.
    """
    prefix = []
    if ROOT_IGNORES_PERMISSIONS:
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "derive", *args],
        cwd=where,
        env=env(where),
        capture_output=True,
        text=True,
        timeout=300,
        umask=0o022,
    )


def read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def test_an_unwritable_cache_is_named_and_the_build_still_writes_and_reports(
    built_project, tmp_path
):
    """Issue 22.10: the build wrote every output, so it says so; the cache is only named."""
    project = shutil.copytree(built_project, tmp_path / "project")
    template = project / "templates" / "module.py.j2"
    template.write_text(template.read_text() + "{# every module changes #}\n")
    read_only(project / ".derive-cache")
    result = run_as_a_user(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "wrote derive/generated/softmax_jacobian.py" in result.stdout, result.stdout
    assert f"{project / '.derive-cache'}" in result.stderr and "Permission denied" in result.stderr
    assert run(project, "check").returncode == 0


def test_check_works_in_a_read_only_checkout(built_project, tmp_path):
    """Issue 22.12: check reads; it needs no write access (another user, a read-only mount)."""
    project = shutil.copytree(built_project, tmp_path / "project")
    (project / ".derive-build.lock").unlink(missing_ok=True)  # as in a fresh clone
    read_only(project)
    try:
        result = run_as_a_user(project, "check")
        assert result.returncode == 0, result.stderr
        assert "generated files are up to date" in result.stdout
        project.chmod(0o755)
        (project / ".derive-build.lock").touch(mode=0o444)  # as another user's lock file
        project.chmod(0o555)
        result = run_as_a_user(project, "check")
        assert result.returncode == 0, result.stderr
    finally:
        for path in [project, *project.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_a_failing_figure_is_named_with_its_file_and_its_derivations_line(built_project, tmp_path):
    """Issue 22.11: not "derivation '(figures)' failed ... at derive/figures.py:240"."""
    project = shutil.copytree(built_project, tmp_path / "project")
    path = project / "derive" / "derivations" / "softplus.py"
    source = path.read_text()
    lines = source.splitlines()
    (at,) = [n for n, line in enumerate(lines) if line.startswith("def _draw(")]
    lines.insert(at + 1, "    raise ValueError('injected into the figure')")
    path.write_text("\n".join(lines) + "\n")
    before = outputs(project)
    result = run(project, "build")
    assert result.returncode == 1
    assert CLEAN in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "docs/figures/softplus.svg" in result.stderr, result.stderr
    assert f"derive/derivations/softplus.py:{at + 2}" in result.stderr, result.stderr
    assert "ValueError: injected into the figure" in result.stderr
    assert outputs(project) == before


def _figure_that_fails(fig, generated, posts):
    raise ValueError("injected into the figure")


@pytest.mark.parametrize("where", ["this process", "a worker process"])
def test_a_failing_figure_is_named_wherever_it_is_drawn(where):
    """Issue 22.11: drawn by a worker, the error came back with only this process's frames
    ("at derive/figures.py:240"); the figure's file and its module's line must survive."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from derive import figures
    from derive.errors import BuildError
    from derive.steps import Figure

    figure = Figure("failing.svg", "A figure that raises.", _figure_that_fails)
    line = _figure_that_fails.__code__.co_firstlineno + 1
    with pytest.raises(BuildError) as raised:
        if where == "this process":
            figures.draw(None, figure)
        else:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
                pool.submit(figures.draw, None, figure).result()
    message = str(raised.value)
    assert "drawing docs/figures/failing.svg" in message, message
    assert f"at tests/test_faults.py:{line}" in message, message
    assert "ValueError: injected into the figure" in message


def test_git_ignores_the_lock_the_journal_and_temporary_files():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = [
        ".derive-build.lock",
        ".derive-build.journal",
        "derive/generated/.softmax.py.0123abcd.tmp",
        "docs/derivations/.softmax.md.0123abcd.tmp",
        "docs/.api.md.0123abcd.tmp",
    ]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.stdout.split() == names
