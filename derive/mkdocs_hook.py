"""MkDocs hook: run the generator before every build of the site.

A thin adapter over ``python -m derive build``, run in a subprocess before
MkDocs reads the pages (``on_config``, which runs again on every rebuild of
``mkdocs serve``), and over ``python -m derive nav``, which lists every
registered derivation's page for the nav's Derivations section. Both run in
subprocesses: MkDocs loads this module once per ``mkdocs serve``, and a
subprocess picks up every edit to ``derive/`` and ``templates/``. The generator writes only files whose
content changed, so serving does not rebuild in a loop.

The generator's lines are logged as it prints them (``mkdocs serve`` shows its
progress); a build that fails while serving leaves the previous pages, and
each page then opens with a banner giving the generator's message (the
derivation and the step), until a build succeeds.

Set ``DERIVE_SKIP_GENERATE=1`` to build the site from the files as they are
(CI runs the generator itself first).
"""

from __future__ import annotations

import html
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.plugins.derive")
_serving = False
_failure: str | None = None  # the last build's message while it failed, shown on every page
SECTION = "Derivations"  # the nav section derive.site fills (mkdocs.yml leaves it empty)


def on_startup(command: str, dirty: bool) -> None:
    global _serving
    _serving = command == "serve"


def on_config(config):
    """Generate (unless told not to), then list every registered derivation's page in the nav."""
    _generate(config)
    root = Path(config.config_file_path).parent
    result = subprocess.run(
        [sys.executable, "-m", "derive", "nav"],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if result.returncode != 0:
        raise PluginError(f"derive nav failed:\n{result.stderr.strip()}")
    pages = json.loads(result.stdout)
    config.nav = [
        {section: pages} if isinstance(item, dict) and section in item else item
        for item in config.nav
        for section in [SECTION]
    ]
    return config


def _generate(config) -> None:
    """Run the generator, its every line shown as it comes; a failure: raise, or while serving,
    keep the previous pages and put the message on every page (``on_page_markdown``)."""
    global _failure
    if os.environ.get("DERIVE_SKIP_GENERATE") == "1":
        return
    root = Path(config.config_file_path).parent
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ writes under watched derive/
        "PYTHONUNBUFFERED": "1",  # each line as the generator prints it, not at its end
    }
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "derive", "build"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        for line in process.stdout:
            log.info("derive: %s", line.rstrip())
        returncode = process.wait()
        errors.seek(0)
        message = errors.read().strip()
    if returncode == 0:
        _failure = None
        if message:  # a note (an unwritable cache): shown, the build stands
            log.warning("derive: %s", message)
        return
    if _serving:  # keep serving the previous pages; the generator left them intact
        _failure = message or f"python -m derive build exited with {returncode}"
        log.error("derive build failed; serving the previous pages:\n%s", _failure)
        return
    raise PluginError(f"derive build failed:\n{message}")


def on_page_markdown(markdown: str, page, config, files) -> str:
    """While the last build has failed, every page opens with its message."""
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
