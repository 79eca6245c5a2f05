"""The site: a strict build with checked links, then every page in headless
Chromium with the network cut off (only 127.0.0.1 is reachable)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import seed_cache

from site_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    mkdocs,
    require_chromium,
    serve_folder,
    site_pages,
)

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def site(tmp_path_factory, request) -> Path:
    """The generator, then `mkdocs build --strict` (htmlproofer checks links and assets).

    As CI should: the generator runs explicitly, not only through the MkDocs hook
    (which MkDocs' successors ignore); the hook is tested in test_serve.py. In a
    checkout whose cache remembers no proof (a fresh clone, as in CI; `derive steps`
    keeps derivations only) it recalls what ``built_project`` proved of the same code,
    so the suite proves everything once, not twice.
    """
    if not any((ROOT / ".derive-cache" / "checks").glob("*.pickle")):
        seed_cache(request.getfixturevalue("built_project"), ROOT)
    generator = subprocess.run(
        [sys.executable, "-m", "derive", "build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert generator.returncode == 0, generator.stderr
    folder = tmp_path_factory.mktemp("site")
    result = mkdocs(
        "build", "--strict", "--site-dir", str(folder), env_extra={"DERIVE_SKIP_GENERATE": "1"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert warnings == []
    return folder


def test_every_derivation_has_a_page_with_figures_and_code(site):
    from derive.derivations import MODULES, get

    for name in MODULES:
        html = (site / "derivations" / name.replace("_", "-") / "index.html").read_text()
        # a page with identities says what SymPy proved; every page shows its checked steps
        assert ("What SymPy proved" in html) == bool(get(name).identities), name
        assert html.count('class="highlight"') >= 2, f"{name}: no code blocks"
    assert (site / "figures" / "softmax-jacobian-heatmap.svg").exists()


def test_every_derivation_page_is_in_the_nav(site):
    """A registered derivation's page is in the built site's navigation, in registry order,
    without an entry in mkdocs.yml (the hook fills the Derivations section)."""
    from derive.derivations import MODULES

    home = (site / "index.html").read_text()
    links = [f'href="derivations/{m.replace("_", "-")}/"' for m in MODULES]
    assert [link for link in links if link not in home] == []
    assert sorted(links, key=home.index) == links


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
def page(browser):
    """A page whose requests to any host but this machine are aborted and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.foreign_requests = []
    tab.console_errors = []

    def route(request_route):
        if urlparse(request_route.request.url).hostname in ("127.0.0.1", "localhost"):
            request_route.continue_()
        else:
            tab.foreign_requests.append(request_route.request.url)
            request_route.abort()

    tab.route("**/*", route)
    tab.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.console_errors.append(str(e)))
    yield tab
    context.close()


def nav_pages() -> list[str]:
    """The pages in mkdocs.yml's nav, as paths in the built site ('' for the home page)."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def walk(items):
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield "" if value == "index.md" else value.removesuffix(".md") + "/"

    from derive.site import fill_nav

    return list(walk(fill_nav(config["nav"])))


def pytest_generate_tests(metafunc):
    # One test per page, so a failure names its page. Tests are collected before
    # the site is built, so the pages come from the nav here, and
    # test_every_built_page_is_tested checks them against the built site.
    if "page_path" in metafunc.fixturenames:
        metafunc.parametrize("page_path", nav_pages())


def test_every_built_page_is_tested(site):
    """The pages found in the built site are exactly the nav's: none escapes the browser tests."""
    assert sorted(site_pages(site)) == sorted(nav_pages())


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
    # A displayed formula sits in its block with no blank line above or below.
    padding = page.evaluate(
        "[...document.querySelectorAll('div.arithmatex')].map(d => "
        "d.getBoundingClientRect().height - "
        "d.querySelector('.katex-display').getBoundingClientRect().height)"
    )
    assert all(p <= 40 for p in padding), padding
    broken = page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"
    )
    assert broken == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = page_path.strip("/").replace("/", "_") or "index"
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="session")
def served_with_site_url(site, tmp_path_factory):
    """The site built again with site_url set to where it is served.

    Material's instant navigation needs site_url (it reads the page list from
    sitemap.xml), which mkdocs.yml leaves unset and `mkdocs serve` sets itself.
    """
    folder = tmp_path_factory.mktemp("site-with-url")
    server, url = serve_folder(folder)  # bind first: the port goes into the URLs
    script = (
        "import sys; from mkdocs.config import load_config; from mkdocs.commands.build import build; "
        "build(load_config('mkdocs.yml', site_url=sys.argv[1], site_dir=sys.argv[2]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, url + "/", str(folder)],
        cwd=ROOT,
        env={**os.environ, "DERIVE_SKIP_GENERATE": "1", "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    yield url
    server.shutdown()


@pytest.mark.browser
def test_math_renders_after_instant_navigation(page, served_with_site_url):
    """Material swaps the page in place (navigation.instant); katex.js must render the new one."""
    page.goto(f"{served_with_site_url}/", wait_until="networkidle")
    page.evaluate("window.notReloaded = true")
    page.locator(".md-nav__link[href$='derivations/softmax-jacobian/']").first.click()
    page.wait_for_url("**/derivations/softmax-jacobian/")
    page.wait_for_function(
        "document.querySelectorAll('.arithmatex').length > 10 && "
        "document.querySelectorAll('.arithmatex').length === "
        "document.querySelectorAll('.arithmatex .katex').length",
        timeout=15000,
    )
    assert page.evaluate("window.notReloaded === true"), "the page was reloaded, not swapped in"
    assert page.locator(".katex-error").count() == 0
    assert page.console_errors == [] and page.foreign_requests == []


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


LAYOUT = """() => ({
  page: document.documentElement.scrollWidth - window.innerWidth,
  tables: [...document.querySelectorAll('.md-typeset__scrollwrap')].map(w => ({
    overflow: w.scrollWidth - w.clientWidth, scrolls: getComputedStyle(w).overflowX})),
  figures: [...document.querySelectorAll('.md-content figure img')].map(i => ({
    src: i.getAttribute('src'), alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
    right: i.getBoundingClientRect().right, box: i.closest('article').getBoundingClientRect().right})),
  wrapped: [...document.querySelectorAll('td code')]
    .filter(c => !/\\s/.test(c.textContent) && c.getClientRects().length > 1).map(c => c.textContent),
  figureFirst: (() => {
    const f = document.querySelector('.md-content figure'), t = document.querySelector('.md-content table');
    return !!f && !!t && !!(f.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING); })(),
})"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("results_page", ["accuracy/", "benchmarks/"])
def test_results_pages_fit_the_screen(browser, served, results_page, width):
    """At 1280 px every column of every table shows without scrolling, page or table; at
    390 px the page does not scroll sideways, the figures shrink to the screen and a wide
    table scrolls inside its own box. The figure comes before the first table, and no
    name (code without a space) is broken inside a table cell."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        tab = context.new_page()
        tab.goto(f"{served}/{results_page}", wait_until="networkidle")
        layout = tab.evaluate(LAYOUT)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = f"{results_page.strip('/')}_{width}px.png"
        tab.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    finally:
        context.close()
    assert layout["page"] <= 0, layout
    assert layout["figureFirst"], layout
    assert layout["wrapped"] == []
    assert len(layout["figures"]) >= 1
    for figure in layout["figures"]:
        assert figure["loaded"] and len(figure["alt"]) > 40, figure
        assert figure["right"] <= min(figure["box"], width) + 0.5, figure
    for table in layout["tables"]:
        if width >= 1280:
            assert table["overflow"] <= 0, layout["tables"]
        else:
            assert table["overflow"] <= 0 or table["scrolls"] in ("auto", "scroll"), table
