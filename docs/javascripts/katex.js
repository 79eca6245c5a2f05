// Render the math that pymdownx.arithmatex (generic mode) leaves in .arithmatex
// elements, with the KaTeX files kept in docs/assets/katex: no network needed.
// Material swaps pages without reloading (instant navigation), so render on
// every page it shows, not just on load.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "$$", right: "$$", display: true },
      { left: "$", right: "$", display: false },
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    throwOnError: false,
  });
});
