"""MkDocs hook: run the generator before every build of the site.

A thin adapter over the generator (``python -m derive build``), run before
MkDocs reads the pages (``on_config``, which runs again on every rebuild of
``mkdocs serve``). It runs in ``python -m derive.warm``, a process of its own
that the hook keeps for the whole of ``mkdocs serve``: SymPy and every unchanged
derivation stay loaded between rebuilds, an edited derivation module is imported
again, and an edit to the rest of ``derive/`` starts a fresh process (derive.warm).
The same process lists every registered derivation's page for the nav's
Derivations section. The generator writes only files whose content changed, so
serving does not rebuild in a loop.

The generator's lines are logged as it prints them (``mkdocs serve`` shows its
progress); a build that fails while serving leaves the previous pages, and
each page then opens with a banner giving the generator's message (the
derivation and the step), until a build succeeds.

While serving, htmlproofer is switched off (half of every rebuild's time; ``mkdocs
build --strict`` still runs it: CI, ``make site``). With ``mkdocs serve --dirty``
(``make serve``), MkDocs renders only the pages whose Markdown changed; when what
every page shows changes (the nav's titles, the failure banner, the config) or the
generated code changes (the API page reads it), the hook has every page rendered.
A generated page whose Markdown changed only in its header (the hashes, in an HTML
comment, which the served pages leave out) is not rendered again: the home page's
header changes with any edit of any derivation's module, and rendering it took a
third of MkDocs's rebuild after an edit of a step's title.

While serving, the hook also has MkDocs look for edited files every 0.1 s rather
than every 0.5 s (``on_serve``): polling every watched folder takes ~2 ms of CPU. It does
not rebuild for the files the generator has just written (their content what it wrote), which
the rebuild that ran the generator already read: each edit set off a second, idle rebuild.
And the theme's templates are compiled once per server, not once per rebuild (``on_env``).

Set ``DERIVE_SKIP_GENERATE=1`` to build the site from the files as they are
(CI runs the generator itself first).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jinja2
import jinja2.bccache
from mkdocs.exceptions import PluginError
from watchdog.events import FileSystemEventHandler
from watchdog.observers.polling import PollingObserver

log = logging.getLogger("mkdocs.plugins.derive")
_serving = False
_dirty = False
_failure: str | None = None  # the last build's message while it failed, shown on every page
_warm = None  # Warm (below): the generator's process, kept while serving
_shown: tuple | None = None  # what every page shows, as of the last rendering of them all
_code_changed = False  # the last build changed derive/generated/: the API page shows it
_rendered: dict[str, str] = {}  # page -> a hash of its Markdown as last rendered, header left out
POLL_SECONDS = 0.1  # how often MkDocs looks for edited files while serving (MkDocs: 0.5 s)
SECTION = "Derivations"  # the nav section derive.site fills (mkdocs.yml leaves it empty)


def on_startup(command: str, dirty: bool) -> None:
    global _serving, _dirty
    _serving = command == "serve"
    _dirty = dirty


def on_shutdown() -> None:
    if _warm is not None:
        _warm.close()


def on_serve(server, config, builder):
    """Look for edited files every ``POLL_SECONDS``: the same polling observer MkDocs uses,
    with a shorter interval, watching what MkDocs had it watch (``_Observer``)."""
    watched = dict(getattr(server, "_watched_paths", None) or {})  # path -> times watched
    if not watched or server.observer.is_alive():  # not the MkDocs 1.6 this was written for
        return server
    for path, times in watched.items():
        for _ in range(times):
            server.unwatch(path)
    server.observer = _Observer(timeout=POLL_SECONDS)
    for path, times in watched.items():
        for _ in range(times):
            server.watch(path)
    server.build_delay = min(server.build_delay, POLL_SECONDS / 2)  # wait for more changes
    log.info("derive: looking for edited files every %s s", POLL_SECONDS)  # derive.edit_loop
    return server


class _NotItsOwnWrites(FileSystemEventHandler):
    """MkDocs's handler of a watched folder, not told of the generator's own writes.

    While the generator runs, what the poll sees is held and looked at once it has said
    what it wrote (``_holding``): the poll may see a file before the generator says so.
    """

    def __init__(self, handler: FileSystemEventHandler) -> None:
        self.handler = handler

    def dispatch(self, event) -> None:
        with _lock:
            if _held is not None:
                _held.append((self, event))
                return
        self.pass_on(event)

    def pass_on(self, event) -> None:
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        if not all(_written_or_staged(path) for path in paths):
            self.handler.dispatch(event)


_lock = threading.Lock()
_held: list | None = None  # (handler, event) seen while the generator runs; None: not running


@contextmanager
def _holding() -> Iterator[None]:
    """Hold what the poll sees while the generator runs; then pass on what it did not write."""
    global _held
    with _lock:
        _held = []
    try:
        yield
    finally:
        with _lock:
            held, _held = _held, None
        for handler, event in held:
            handler.pass_on(event)


class _Observer(PollingObserver):
    """MkDocs's polling observer, its handlers wrapped in ``_NotItsOwnWrites``."""

    def schedule(self, event_handler, path, **options):
        return super().schedule(_NotItsOwnWrites(event_handler), path, **options)


_written: dict[str, str] = {}  # path -> a hash of what the generator's last build wrote there
STAGED = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")  # derive.transaction.LEFTOVER: its temporaries


def _written_or_staged(path: str) -> bool:
    """Whether ``path`` holds what the generator's last build wrote there, or was one of the
    temporary files it wrote them through (derive.transaction), gone since."""
    if STAGED.match(os.path.basename(path)):
        return not os.path.lexists(path)
    try:
        return _written.get(path) == _file_digest(path)
    except OSError:
        return False


def _file_digest(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def _remember_written(path: Path) -> None:
    """Note what the generator has just written to ``path``, for ``_NotItsOwnWrites`` (as it
    says so: the poll that sees the change most often comes later); a file that cannot be
    read is not noted (its change is seen)."""
    try:
        _written[str(path)] = _file_digest(str(path))
    except OSError:
        pass


class _CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's compiled templates, kept in memory for the whole of ``mkdocs serve``.

    Every rebuild makes a new Jinja environment, which parsed and compiled the theme's
    ~40 templates again: a quarter of MkDocs's own time after an edit. Jinja finds a kept
    template by its name and uses it only while its source is unchanged (a checksum).
    """

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_compiled_templates = _CompiledTemplates()


def on_env(env, config, files):
    """While serving, the pages' templates compiled once (``_CompiledTemplates``)."""
    if _serving:
        env.bytecode_cache = _compiled_templates
    return env


def on_config(config):
    """Generate (unless told not to), then list every registered derivation's page in the nav."""
    if os.environ.get("DERIVE_SKIP_GENERATE") == "1":
        pages = _nav_of_files(Path(config.config_file_path).parent)
    else:
        pages = _generate(config)
    config.nav = [
        {section: pages} if isinstance(item, dict) and section in item else item
        for item in config.nav
        for section in [SECTION]
    ]
    if _serving and "htmlproofer" in config.plugins:
        config.plugins["htmlproofer"].config["enabled"] = False
    return config


def _nav_of_files(root: Path) -> list:
    """The nav's derivation pages as the files are, with no generator run (derive.site)."""
    result = subprocess.run(
        [sys.executable, "-m", "derive", "nav"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if result.returncode != 0:
        raise PluginError(f"derive nav failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


class Warm:
    """One ``python -m derive.warm`` process in ``root``: the generator, kept between builds."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen | None = None

    def build(self, figures: bool = True) -> dict:
        """One build, its lines logged as they come: its last answer (derive/warm.py)."""
        _written.clear()
        with _holding():
            return self._build(figures)

    def _build(self, figures: bool) -> dict:
        for _ in range(2):  # once more after a restart: the fresh process has the new code
            if self.process is None or self.process.poll() is not None:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "derive.warm"],
                    cwd=self.root,
                    env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # none under derive/
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            try:
                self.process.stdin.write(json.dumps({"figures": figures}) + "\n")
                self.process.stdin.flush()
            except BrokenPipeError:  # it has just exited: say how, below
                pass
            for line in self.process.stdout:
                answer = json.loads(line)
                if "log" in answer:
                    log.info("derive: %s", answer["log"])
                    if answer["log"].startswith("wrote "):
                        _remember_written(self.root / answer["log"].removeprefix("wrote "))
                elif "restart" in answer:
                    log.info("derive: %s: starting the generator afresh", answer["restart"])
                    self.close()
                    break
                else:
                    return answer
            else:
                code = self.process.wait()
                self.process = None
                return {"failed": f"python -m derive.warm exited with {code} (see above)"}
        return {"failed": "python -m derive.warm asked to be restarted twice in one build"}

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
            self.process = None


def _generate(config) -> list:
    """Run the generator, its every line shown as it comes; the nav's derivation pages.

    A failure: raise, or while serving, keep the previous pages and put the message on
    every page (``on_page_markdown``).
    """
    global _failure, _warm, _code_changed
    root = Path(config.config_file_path).parent
    if _warm is not None and _warm.root != root:  # another project (the tests run several)
        _warm.close()
        _warm = None
    warm = _warm or Warm(root)
    try:
        answer = warm.build()
    finally:
        if _serving:
            _warm = warm
        else:
            warm.close()
    if "done" in answer:
        _failure = None
        _code_changed = answer["done"]["code"]  # the bodies: what the API page shows
        return answer["done"]["nav"]
    if _serving:  # keep serving the previous pages; the generator left them intact
        _failure = answer["failed"]
        log.error("derive build failed; serving the previous pages:\n%s", _failure)
        return answer.get("nav") or _nav_of_files(root)
    raise PluginError(f"derive build failed:\n{answer['failed']}")


def on_files(files, config):
    """With ``--dirty``: have every page rendered again when what each shows has changed, and
    a page whose Markdown changed only in its generated header not rendered again."""
    global _shown
    if not (_serving and _dirty):
        return files
    config_text = Path(config.config_file_path).read_bytes()
    shown = (repr(config.nav), _failure, hashlib.sha256(config_text).hexdigest())
    every = shown != _shown
    _shown = shown
    for file in files.documentation_pages():
        if not os.path.exists(file.abs_dest_path):
            continue
        if every or (_code_changed and file.src_uri == "api.md"):
            os.utime(file.abs_dest_path, (0, 0))  # older than its source: rendered again
        elif file.src_uri in _rendered and _shows_the_same(file):
            source = os.path.getmtime(file.abs_src_path)
            os.utime(file.abs_dest_path, (source, source))  # as new as its source: kept
    return files


def _without_header(markdown: str) -> str:
    """A generated page's Markdown without its header (derive.render: three comment lines, the
    last with the hashes); any other page as it is."""
    lines = markdown.split("\n", 3)
    if len(lines) == 4 and lines[2].startswith("<!-- derive: inputs="):
        return lines[3]
    return markdown


def _digest(markdown: str) -> str:
    return hashlib.sha256(_without_header(markdown).encode()).hexdigest()


def _shows_the_same(file) -> bool:
    """Whether a page's Markdown, header left out, is what was last rendered of it."""
    if os.path.getmtime(file.abs_dest_path) >= os.path.getmtime(file.abs_src_path):
        return False  # not changed since (MkDocs keeps it anyway): nothing to read
    with open(file.abs_src_path, encoding="utf-8-sig") as source:
        return _digest(source.read()) == _rendered[file.src_uri]


def on_page_markdown(markdown: str, page, config, files) -> str:
    """While serving, a generated page's header is left out (so a change to it alone changes
    nothing shown: on_files); while the last build has failed, every page opens with its
    message."""
    if _serving and page is not None:
        _rendered[page.file.src_uri] = _digest(markdown)
        markdown = _without_header(markdown)
    if _failure is None:
        return markdown
    message = html.escape(_failure)
    return (
        '<div class="admonition failure" markdown="0">\n'
        '<p class="admonition-title">derive build failed: this page is from the last build '
        "that worked</p>\n"
        f"<pre><code>{message}</code></pre>\n"
        "</div>\n\n"
    ) + markdown
