"""`mkdocs serve` regenerates the pages when a template changes, and settles.

(With `--no-livereload`, MkDocs 1.6 stops watching files, so this test keeps
livereload on; it fetches pages with urllib, which ignores the reload script.)

Runs on a copy of the project: the test edits a template on purpose.
"""

from __future__ import annotations

import logging
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


def run_hook(project, serving: bool, caplog):
    """The hook's generator step on ``project``, as ``mkdocs serve`` (or build) runs it."""
    import types

    from derive import mkdocs_hook

    caplog.set_level(logging.INFO, logger="mkdocs.plugins.derive")
    mkdocs_hook.on_startup("serve" if serving else "build", dirty=False)
    config = types.SimpleNamespace(config_file_path=str(project / "mkdocs.yml"))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(project)  # the subprocess imports the copy's derive
    try:
        mkdocs_hook._generate(config)
    finally:
        os.environ.pop("PYTHONPATH") if old is None else os.environ.update(PYTHONPATH=old)
    return mkdocs_hook


@pytest.fixture(autouse=True)
def _no_generator_left():
    """The hook keeps its generator process while serving: end it after each test."""
    yield
    from derive import mkdocs_hook

    mkdocs_hook.on_shutdown()
    mkdocs_hook._warm = None


def test_the_hook_shows_the_generators_progress_in_the_terminal(built_project, tmp_path, caplog):
    """Issue 23.5: every line the generator prints reaches the terminal, not only "wrote"."""
    project = copy_project(built_project, tmp_path)
    template = project / "templates" / "module.py.j2"
    template.write_text(template.read_text() + "{# every module changes #}\n")
    run_hook(project, serving=True, caplog=caplog)
    logged = [r.getMessage() for r in caplog.records]
    for name in ("softmax_jacobian", "two_layer"):
        assert any(name in m and "proved" in m for m in logged), logged
    assert any("wrote derive/generated/softmax_jacobian.py" in m for m in logged), logged
    assert any("build finished" in m for m in logged), logged


def test_a_failed_build_while_serving_shows_a_banner_naming_the_derivation_and_step(
    built_project, tmp_path, caplog
):
    """Issue 23.5: the browser shows the failure (every page gets a banner) until a build works."""
    project = copy_project(built_project, tmp_path)
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    source = path.read_text()
    path.write_text(
        source.replace(
            "def derive():\n", "def derive():\n    raise ArithmeticError('injected')\n", 1
        )
    )
    hook = run_hook(project, serving=True, caplog=caplog)
    page = hook.on_page_markdown("# A page\n\nText.\n", page=None, config=None, files=None)
    assert page.endswith("# A page\n\nText.\n")
    banner = page.removesuffix("# A page\n\nText.\n")
    assert "derive build failed" in banner
    assert "softmax_jacobian" in banner and "while deriving" in banner
    assert "ArithmeticError: injected" in banner
    path.write_text(source)  # mended: the next build clears the banner
    hook = run_hook(project, serving=True, caplog=caplog)
    assert hook.on_page_markdown("Text.\n", page=None, config=None, files=None) == "Text.\n"


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


def test_the_kept_generator_picks_up_an_edit_and_restarts_when_the_engine_changes(
    built_project, tmp_path, caplog
):
    """Issue 20.5: under mkdocs serve one generator process serves every rebuild; an edited
    derivation module is imported again (its page changes), an edit elsewhere in derive/
    starts a fresh process."""
    project = copy_project(built_project, tmp_path)
    path = project / "derive" / "derivations" / "softmax_jacobian.py"
    page = project / "docs" / "derivations" / "softmax-jacobian.md"
    step = page.read_text().split("\n### ", 1)[1].split("\n", 1)[0].split(". ", 1)[1]
    step = step.split(" { #", 1)[0]  # the heading's id ({ #step-1 }) is not the title
    assert path.read_text().count(f'"{step}"') == 1, step
    hook = run_hook(project, serving=True, caplog=caplog)
    first = hook._warm.process.pid
    path.write_text(path.read_text().replace(f'"{step}"', f'"{step}, reworded"'))
    hook = run_hook(project, serving=True, caplog=caplog)
    assert hook._failure is None
    assert f"{step}, reworded" in page.read_text()
    assert hook._warm.process.pid == first
    engine = project / "derive" / "notation.py"
    engine.write_text(engine.read_text() + "\n# an edit to the engine\n")
    hook = run_hook(project, serving=True, caplog=caplog)
    assert hook._failure is None
    assert hook._warm.process.pid != first
    assert any("starting the generator afresh" in r.getMessage() for r in caplog.records)


def test_a_dirty_serve_renders_every_page_again_only_when_what_each_shows_changes(tmp_path):
    """With --dirty MkDocs renders only changed Markdown; the nav, the banner or the config
    changing makes the hook mark every built page as older than its source."""
    import types

    from derive import mkdocs_hook

    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    built = []
    for name in ("a", "api"):
        html = tmp_path / f"{name}.html"
        html.write_text("built")
        built.append(types.SimpleNamespace(src_uri=f"{name}.md", abs_dest_path=str(html)))
    files = types.SimpleNamespace(documentation_pages=lambda: built)
    config = types.SimpleNamespace(config_file_path=str(tmp_path / "mkdocs.yml"), nav=["a"])

    def marked() -> list[str]:
        found = [f.src_uri for f in built if os.path.getmtime(f.abs_dest_path) == 0]
        for f in built:
            os.utime(f.abs_dest_path)
        return found

    mkdocs_hook.on_startup("serve", dirty=True)
    mkdocs_hook._failure, mkdocs_hook._code_changed, mkdocs_hook._shown = None, False, None
    mkdocs_hook.on_files(files, config)
    assert marked() == ["a.md", "api.md"]  # the first build
    mkdocs_hook.on_files(files, config)
    assert marked() == []
    mkdocs_hook._code_changed = True
    mkdocs_hook.on_files(files, config)
    assert marked() == ["api.md"]  # it renders the generated code's docstrings
    mkdocs_hook._code_changed = False
    mkdocs_hook._failure = "a failure"
    mkdocs_hook.on_files(files, config)
    assert marked() == ["a.md", "api.md"]  # the banner
    config.nav = ["a", "b"]
    mkdocs_hook.on_files(files, config)
    assert marked() == ["a.md", "api.md"]
    mkdocs_hook._failure = None
    mkdocs_hook.on_startup("build", dirty=False)


def test_a_dirty_serve_does_not_render_again_a_page_whose_header_alone_changed(tmp_path):
    """The home page's generated header changes with any edit of any derivation's module; the
    served page leaves the header out, so it is not rendered again for that (issue 20.5)."""
    import types

    from derive import mkdocs_hook

    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    source, html = tmp_path / "index.md", tmp_path / "index.html"
    header = (
        "<!-- Generated by `python -m derive build` from x. -->\n"
        "<!-- Do not edit: change the derivation or its template, then rebuild. -->\n"
        "<!-- derive: inputs={} body=0 -->\n"
    )
    source.write_text(header.format("1") + "# Home\n")
    html.write_text("built")
    page = types.SimpleNamespace(
        file=types.SimpleNamespace(
            src_uri="index.md", abs_src_path=str(source), abs_dest_path=str(html)
        )
    )
    files = types.SimpleNamespace(documentation_pages=lambda: [page.file])
    config = types.SimpleNamespace(config_file_path=str(tmp_path / "mkdocs.yml"), nav=["a"])
    mkdocs_hook.on_startup("serve", dirty=True)
    mkdocs_hook._failure, mkdocs_hook._code_changed, mkdocs_hook._shown = None, False, None
    try:
        mkdocs_hook.on_files(files, config)
        shown = mkdocs_hook.on_page_markdown(source.read_text(), page, None, None)
        assert shown == "# Home\n"  # served without the header

        def rendered_again() -> bool:
            os.utime(html, (1, 1))  # older than its source, as after the generator wrote it
            mkdocs_hook.on_files(files, config)
            return os.path.getmtime(html) < os.path.getmtime(source)

        source.write_text(header.format("2") + "# Home\n")
        assert not rendered_again()
        source.write_text(header.format("3") + "# Home, reworded\n")
        assert rendered_again()
    finally:
        mkdocs_hook.on_startup("build", dirty=False)
        mkdocs_hook._rendered.clear()


def test_serving_polls_for_edits_more_often_and_watches_what_mkdocs_watched(tmp_path):
    import types

    from mkdocs.livereload import LiveReloadServer

    from derive import mkdocs_hook

    (tmp_path / "docs").mkdir()
    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    server = LiveReloadServer(builder=lambda: None, host="127.0.0.1", port=0, root=tmp_path)
    server.watch(str(tmp_path / "docs"))
    server.watch(str(tmp_path / "mkdocs.yml"))
    before = sorted((e.watch.path, e.watch.is_recursive) for e in server.observer.emitters)
    assert server.observer.timeout > mkdocs_hook.POLL_SECONDS  # MkDocs's own: 0.5 s
    server = mkdocs_hook.on_serve(server, types.SimpleNamespace(), None)
    after = sorted((e.watch.path, e.watch.is_recursive) for e in server.observer.emitters)
    assert after == before
    assert {e.timeout for e in server.observer.emitters} == {mkdocs_hook.POLL_SECONDS}
    assert server.build_delay <= mkdocs_hook.POLL_SECONDS
    server.watch(str(tmp_path))  # what mkdocs.yml's watch: adds after the hook
    assert server.observer.timeout == mkdocs_hook.POLL_SECONDS
    server.server_close()


def test_serving_compiles_each_template_once_until_its_source_changes(tmp_path, monkeypatch):
    """Each rebuild makes a new Jinja environment (MkDocs); the hook's cache hands it the
    templates compiled by an earlier one, and compiles again a template whose source changed."""
    import jinja2

    from derive import mkdocs_hook

    monkeypatch.setattr(mkdocs_hook, "_compiled_templates", mkdocs_hook._CompiledTemplates())
    (tmp_path / "page.html").write_text("<p>{{ title | upper }}</p>")
    compiled = []
    original = jinja2.Environment.compile

    def counting(self, source, *args, **kwargs):
        compiled.append(source)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting)

    def rebuild() -> str:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path))
        env = mkdocs_hook.on_env(env, None, None)
        return env.get_template("page.html").render(title="a")

    mkdocs_hook.on_startup("serve", dirty=True)
    try:
        assert rebuild() == "<p>A</p>" and len(compiled) == 1
        assert rebuild() == "<p>A</p>" and len(compiled) == 1  # a new environment, not compiled
        (tmp_path / "page.html").write_text("<p>{{ title }}</p>")
        assert rebuild() == "<p>a</p>" and len(compiled) == 2
        mkdocs_hook.on_startup("build", dirty=False)
        rebuild()
        assert len(compiled) == 3  # mkdocs build: Jinja's own way, nothing kept
    finally:
        mkdocs_hook.on_startup("build", dirty=False)


def test_serving_does_not_rebuild_for_what_the_generator_wrote(tmp_path):
    """The rebuild that ran the generator has read what it wrote: its writes (the files as it
    wrote them, its temporary files, gone) set off no second rebuild; any other change, or a
    file changed since, does, even when the poll sees it while the generator runs."""
    from watchdog.events import FileCreatedEvent, FileModifiedEvent, FileMovedEvent

    from derive import mkdocs_hook
    from derive.transaction import LEFTOVER

    assert mkdocs_hook.STAGED.pattern == LEFTOVER.pattern  # the hook imports nothing of derive
    seen = []
    handler = wrapped_handler(seen)
    page, source = tmp_path / "page.md", tmp_path / "source.py"
    page.write_text("generated")
    source.write_text("edited")
    staged = tmp_path / ".page.md.0123abcd.tmp"
    with mkdocs_hook._holding():
        handler.dispatch(FileMovedEvent(str(staged), str(page)))  # seen before it says so
        handler.dispatch(FileModifiedEvent(str(source)))
        assert seen == []  # held while the generator runs
        mkdocs_hook._remember_written(page)
    assert seen == [str(source)]
    handler.dispatch(FileModifiedEvent(str(page)))
    handler.dispatch(FileCreatedEvent(str(staged)))  # a temporary file that is gone
    assert seen == [str(source)]
    staged.write_text("still there")
    handler.dispatch(FileCreatedEvent(str(staged)))
    page.write_text("edited by hand")
    handler.dispatch(FileModifiedEvent(str(page)))
    assert seen == [str(source), str(staged), str(page)]
    mkdocs_hook._written.clear()


def wrapped_handler(seen: list):
    """MkDocs's handler, as the hook wraps it: it notes each event's path."""
    from watchdog.events import FileSystemEventHandler

    from derive import mkdocs_hook

    inner = FileSystemEventHandler()
    inner.on_any_event = lambda event: seen.append(event.src_path)
    return mkdocs_hook._NotItsOwnWrites(inner)
