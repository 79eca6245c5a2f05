"""The site: a strict build with checked links, then every page in headless
Chromium with the network cut off (only 127.0.0.1 is reachable)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from site_support import CHROMIUM, CHROMIUM_ARGS, ROOT, mkdocs, require_chromium, serve_folder, site_pages

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The generator, then `mkdocs build --strict` (htmlproofer checks links and assets).

    As CI should: the generator runs explicitly, not only through the MkDocs hook
    (which MkDocs' successors ignore); the hook is tested in test_serve.py.
    """
    generator = subprocess.run([sys.executable, "-m", "derive", "build"], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
    assert generator.returncode == 0, generator.stderr
    folder = tmp_path_factory.mktemp("site")
    result = mkdocs("build", "--strict", "--site-dir", str(folder), env_extra={"DERIVE_SKIP_GENERATE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert warnings == []
    return folder


def test_every_derivation_has_a_page_with_figures_and_code(site):
    from derive.derivations import MODULES

    for name in MODULES:
        html = (site / "derivations" / name.replace("_", "-") / "index.html").read_text()
        assert "What SymPy proved" in html
        assert html.count('class="highlight"') >= 2, f"{name}: no code blocks"
    assert (site / "figures" / "softmax-jacobian-heatmap.svg").exists()


def test_every_derivation_page_is_in_the_nav():
    """A new derivation's page must be listed in mkdocs.yml to show in the navigation."""
    from derive.derivations import MODULES

    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [m for m in MODULES if f"derivations/{m.replace('_', '-')}.md" not in nav]
    assert missing == [], f"add these pages to the nav in mkdocs.yml: {missing}"


def test_the_site_loads_nothing_from_another_host(site):
    """Scripts, images, styles and fonts are local (links to other sites are fine)."""
    loads = re.compile(r'(?:src="|<link[^>]*href=")((?:https?:)?//[^"]+)')
    for page in site.rglob("*.html"):
        assert loads.findall(page.read_text()) == [], page
    for sheet in site.rglob("*.css"):
        assert re.findall(r"url\((?:['\"])?(?:https?:)?//", sheet.read_text()) == [], sheet


@pytest.fixture(scope="session")
def served(site):
    server, url = serve_folder(site)
    yield url
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    """A page whose requests to any host but the local server are aborted and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.foreign_requests = []
    tab.console_errors = []
    local = urlparse(served).netloc

    def route(request_route):
        if urlparse(request_route.request.url).netloc == local:
            request_route.continue_()
        else:
            tab.foreign_requests.append(request_route.request.url)
            request_route.abort()

    tab.route("**/*", route)
    tab.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.console_errors.append(str(e)))
    yield tab
    context.close()


def pytest_generate_tests(metafunc):
    if "page_path" in metafunc.fixturenames:
        # The pages are discovered from the docs folder's nav once the site is built;
        # here, from the sources, so that each page is its own test.
        import yaml

        config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

        def walk(items):
            for item in items:
                value = next(iter(item.values())) if isinstance(item, dict) else item
                if isinstance(value, list):
                    yield from walk(value)
                else:
                    yield "" if value == "index.md" else value.removesuffix(".md") + "/"

        metafunc.parametrize("page_path", list(walk(config["nav"])))


@pytest.mark.browser
def test_nav_lists_every_built_page(site, page_path):
    assert page_path in site_pages(site)


@pytest.mark.browser
def test_page_renders_its_math_offline(page, served, page_path):
    page.goto(f"{served}/{page_path}", wait_until="networkidle")
    page.wait_for_function(
        "document.querySelectorAll('.arithmatex').length === "
        "document.querySelectorAll('.arithmatex .katex').length",
        timeout=15000,
    )
    formulas = page.locator(".arithmatex").count()
    assert page.locator(".katex-error").count() == 0
    assert page.foreign_requests == []
    assert page.console_errors == []
    if page_path.startswith("derivations/"):
        assert formulas >= 10
        assert page.locator("div.highlight").count() >= 2
    broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.src)")
    assert broken == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = page_path.strip("/").replace("/", "_") or "index"
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.browser
def test_dark_palette_toggle(page, served):
    page.goto(f"{served}/derivations/softmax-jacobian/", wait_until="networkidle")
    scheme = page.get_attribute("body", "data-md-color-scheme")
    page.locator("label.md-header__button[for^='__palette']").first.click()
    page.wait_for_function(f"document.body.getAttribute('data-md-color-scheme') !== '{scheme}'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "softmax-jacobian_other-palette.png"))
    assert page.locator(".katex-error").count() == 0


@pytest.mark.browser
def test_search_finds_jacobian(page, served):
    page.goto(f"{served}/", wait_until="networkidle")
    search = page.locator("input.md-search__input")
    search.click()
    results = page.locator(".md-search-result__item")
    for _ in range(20):  # the search worker may still be indexing: type again until it answers
        search.fill("")
        search.press_sequentially("Jacobian", delay=20)
        page.wait_for_timeout(500)
        if results.count():
            break
    assert results.count() >= 1
    assert "Jacobian" in page.locator(".md-search-result").inner_text()
    assert page.foreign_requests == []
