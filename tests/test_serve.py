"""`mkdocs serve` regenerates the pages when a template changes, and settles.

(With `--no-livereload`, MkDocs 1.6 stops watching files, so this test keeps
livereload on; it fetches pages with urllib, which ignores the reload script.)

Runs on a copy of the project: the test edits a template on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from site_support import ROOT, free_port

MARKER = "Regenerated while mkdocs serve was running."


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def copy_project(built_project, tmp_path):
    """A copy of the built project (tests/conftest.py: its cache spares the hook's build the
    derivations and proofs; figures are drawn by that build), with mkdocs.yml."""
    project = shutil.copytree(built_project, tmp_path / "project")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    return project


def test_mkdocs_build_fails_with_the_generators_message_when_a_template_breaks(
    built_project, tmp_path
):
    project = copy_project(built_project, tmp_path)
    page = project / "docs" / "derivations" / "softmax-jacobian.md"
    before = page.read_text()
    template = project / "templates" / "page.md.j2"
    template.write_text(template.read_text().replace("{{ summary }}", "{{ no_such_value }}"))
    env = {**os.environ, "PYTHONPATH": str(project), "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "derive build failed" in result.stderr
    assert "rendering templates/page.md.j2" in result.stderr and "no_such_value" in result.stderr
    assert page.read_text() == before


@pytest.mark.slow
def test_serve_regenerates_a_page_after_a_template_edit_and_does_not_loop(built_project, tmp_path):
    project = copy_project(built_project, tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(project), "NO_MKDOCS_2_WARNING": "1"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mkdocs", "serve", "-a", f"127.0.0.1:{port}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/derivations/softmax-jacobian/"
    try:
        first = wait_for(lambda: fetch(url), 180, f"{url} to be served")
        assert MARKER not in first

        template = project / "templates" / "page.md.j2"
        source = template.read_text()
        template.write_text(
            source.replace("{{ summary }}\n", "{{ summary }}\n\n" + MARKER + "\n", 1)
        )
        wait_for(lambda: MARKER in (fetch(url) or ""), 180, "the edited template to reach the page")
        assert MARKER in (project / "docs" / "derivations" / "softmax-jacobian.md").read_text()

        def builds() -> int:
            return log.read_text().count("Building documentation")

        time.sleep(5)
        settled = builds()
        time.sleep(15)
        assert builds() == settled, f"serve keeps rebuilding:\n{log.read_text()[-3000:]}"
    finally:
        server.terminate()
        server.wait(timeout=30)
