"""MkDocs hook: the release in every page's footer ("derive-softmax 0.1.0 · BSD 3-Clause").

Read from the checkout's pyproject.toml, the file the site is built from, so the
footer names the version of the code beside it even where the installed
metadata is older (an editable install keeps the version it was installed
with); no network, no plugin.
"""

from __future__ import annotations

import tomllib
from pathlib import Path


def release(pyproject: Path) -> str:
    """``"derive-softmax 0.1.0"``: the distribution's name and version in ``pyproject``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return f"{project['name']} {project['version']}"


def on_config(config):
    root = Path(config.config_file_path).parent
    config.copyright = f"{release(root / 'pyproject.toml')} · BSD 3-Clause"
    return config
