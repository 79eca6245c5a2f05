// Render the math that pymdownx.arithmatex (generic mode) leaves in .arithmatex
// elements, as \(...\) inline and \[...\] display, with the KaTeX files kept in
// docs/assets/katex: no network needed.
//
// Each element is rendered in place with katex.render (as in arithmatex's
// generic KaTeX example) rather than scanned by auto-render: auto-render wraps
// display math in an inline <span>, which adds a blank line above and below
// every displayed formula.
//
// Material swaps pages without reloading (instant navigation), so render on
// every page it shows, not just on load.
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    const tex = element.textContent.trim();
    const inline = tex.startsWith("\\(") && tex.endsWith("\\)");
    const display = tex.startsWith("\\[") && tex.endsWith("\\]");
    if (!inline && !display) continue; // already rendered
    katex.render(tex.slice(2, -2), element, { displayMode: display, throwOnError: false });
  }
});
