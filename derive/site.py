"""The site's navigation of derivation pages, from the registry (used by the MkDocs hook).

A new derivation's page appears in the nav because it is registered; nobody
edits mkdocs.yml. Titles are read from the generated pages, so this needs
no SymPy and no deriving.
"""

from __future__ import annotations

from pathlib import Path

from derive.derivations import MODULES

ROOT = Path(__file__).resolve().parents[1]
SECTION = "Derivations"


def page_path(name: str) -> str:
    """The page of derivation ``name``, relative to docs/."""
    return f"derivations/{name.replace('_', '-')}.md"


def title(page: Path) -> str:
    """A generated page's title: its first Markdown heading."""
    for line in page.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise ValueError(f"{page}: no '# ' title line")


def derivation_nav(docs: Path = ROOT / "docs") -> list[dict[str, str]]:
    """``[{title: page}]`` for every registered derivation whose page exists, in registry order."""
    return [
        {title(docs / page_path(name)): page_path(name)}
        for name in MODULES
        if (docs / page_path(name)).exists()
    ]


def fill_nav(nav: list, docs: Path = ROOT / "docs") -> list:
    """``nav`` with its ``Derivations`` section replaced by the registry's pages."""
    return [
        {SECTION: derivation_nav(docs)} if isinstance(item, dict) and SECTION in item else item
        for item in nav
    ]
