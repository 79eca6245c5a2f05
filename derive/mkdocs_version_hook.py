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


def installed() -> str | None:
    """The installed distribution's name and version, where no pyproject.toml is beside the
    site (a copy of the docs and the package alone)."""
    from importlib import metadata

    try:
        return f"derive-softmax {metadata.version('derive-softmax')}"
    except metadata.PackageNotFoundError:
        return None


def on_config(config):
    pyproject = Path(config.config_file_path).parent / "pyproject.toml"
    text = release(pyproject) if pyproject.exists() else installed()
    if text is not None:  # else the footer keeps mkdocs.yml's own line
        config.copyright = f"{text} · BSD 3-Clause"
    return config
