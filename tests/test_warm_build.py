"""Under `make serve` a build after an edit renders only what the edit changed (derive.memo,
derive.warm); it must write exactly the files, with exactly the text, that a full build in a
fresh process writes after the same edits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from conftest import derive_in, env

from derive.edit_loop import EDITS


def outputs(project) -> dict:
    """Every generated module and page of ``project``, by its path."""
    files = [*(project / "derive" / "generated").glob("*.py"), *(project / "docs").rglob("*.md")]
    return {str(p.relative_to(project)): p.read_text() for p in files}


def reword_a_step(project) -> None:
    """A prose edit: a step's title in softmax_jacobian, whose results others use."""
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    page = project / "docs" / "derivations" / "softmax-jacobian.md"
    step = page.read_text().split("\n### ", 1)[1].split("\n", 1)[0].split(". ", 1)[1]
    step = step.split(" { #", 1)[0]  # the heading's id ({ #step-1 }) is not the title
    source = path.read_text()
    assert source.count(f'"{step}"') == 1, step
    path.write_text(source.replace(f'"{step}"', f'"{step}, reworded"'))


def change_a_formula(project) -> None:
    """A formula of a step of two_layer, multiplied through (derive/edit_loop.py's edit)."""
    before, after, _ = EDITS["formula"]
    path = project / "derive" / "derivations" / "two_layer.py"
    source = path.read_text()
    assert source.count(before) == 1
    path.write_text(source.replace(before, after.format(n=3)))


def fresh_build(project) -> list[str]:
    """``python -m derive build`` in a new process: the files it wrote."""
    result = derive_in(project, "build", "--no-figures")
    assert result.returncode == 0, result.stderr
    return sorted(
        line.removeprefix("wrote ")
        for line in result.stdout.splitlines()
        if line.startswith("wrote ")
    )


def test_builds_in_the_kept_process_write_what_fresh_builds_write(built_project, tmp_path):
    warm = shutil.copytree(built_project, tmp_path / "warm")
    fresh = shutil.copytree(built_project, tmp_path / "fresh")
    process = subprocess.Popen(
        [sys.executable, "-m", "derive.warm"],
        cwd=warm,
        env=env(warm),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def build() -> list[str]:
        process.stdin.write(json.dumps({"figures": False}) + "\n")
        process.stdin.flush()
        for line in process.stdout:
            answer = json.loads(line)
            if "log" not in answer:
                assert "done" in answer, answer
                return sorted(answer["done"]["written"])
        raise AssertionError(f"derive.warm exited with {process.wait()}")

    try:
        assert build() == []  # nothing to do: it then renders everything once, writing nothing
        reword_a_step(warm)
        reworded = build()  # what it rendered before is kept for what the edit left alone
        change_a_formula(warm)
        changed = build()  # after a build that rendered: the same
    finally:
        process.stdin.close()
        process.wait(timeout=120)

    reword_a_step(fresh)
    assert reworded == fresh_build(fresh)
    assert "docs/derivations/softmax-jacobian.md" in reworded
    assert "derive/generated/layer_jacobian.py" in reworded  # it uses softmax_jacobian's result
    change_a_formula(fresh)
    assert changed == fresh_build(fresh)
    assert "docs/derivations/two-layer.md" in changed
    assert outputs(warm) == outputs(fresh)


def test_the_warm_up_after_start_stops_when_a_request_waits():
    """derive.warm derives everything once more after start-up (to remember what a prose edit
    asks again), but not while the hook waits for a build: a line in the pipe stops it."""
    import os

    from derive import warm

    read, write = os.pipe()
    with os.fdopen(read) as requests, os.fdopen(write, "w") as hook:
        assert not warm._waiting(requests)
        hook.write("{}\n")
        hook.flush()
        assert warm._waiting(requests)
        assert requests.readline() == "{}\n"
        assert not warm._waiting(requests)
    assert not warm._waiting(["{}\n"])  # a list of requests (tests): nothing to wait for
