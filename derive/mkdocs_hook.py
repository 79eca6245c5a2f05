"""MkDocs hook: run the generator before every build of the site.

A thin adapter over ``python -m derive build``, run in a subprocess before
MkDocs reads the pages (``on_config``, which runs again on every rebuild of
``mkdocs serve``), and over ``python -m derive nav``, which lists every
registered derivation's page for the nav's Derivations section. Both run in
subprocesses: MkDocs loads this module once per ``mkdocs serve``, and a
subprocess picks up every edit to ``derive/`` and ``templates/``. The generator writes only files whose
content changed, so serving does not rebuild in a loop.

Set ``DERIVE_SKIP_GENERATE=1`` to build the site from the files as they are
(CI runs the generator itself first).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.plugins.derive")
_serving = False
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
    if os.environ.get("DERIVE_SKIP_GENERATE") == "1":
        return
    root = Path(config.config_file_path).parent
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
    }  # no __pycache__ writes under watched derive/
    result = subprocess.run(
        [sys.executable, "-m", "derive", "build"], cwd=root, env=env, capture_output=True, text=True
    )
    for line in result.stdout.splitlines():
        if line.startswith("wrote "):
            log.info("derive: %s", line)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        if _serving:  # keep serving the previous pages; the generator left them intact
            log.error("derive build failed; serving the previous pages:\n%s", message)
            return
        raise PluginError(f"derive build failed:\n{message}")
