"""The math in a step's title and sentence ($\\partial \\hat{x}_{i}/\\partial x_{j}$) as Unicode
for the terminal (∂x̂ᵢ/∂xⱼ): ``python -m derive show`` prints no LaTeX unless asked.

A small reader of the LaTeX the titles use (what derive.printing.latex writes, and the
hand-written titles' few macros): commands, groups, sub- and superscripts. An unknown
command is kept as its name without the backslash, so nothing is lost.
"""

from __future__ import annotations

SYMBOLS = {
    **{
        name: chr(code)
        for name, code in (
            ("alpha", 0x3B1),
            ("beta", 0x3B2),
            ("gamma", 0x3B3),
            ("delta", 0x3B4),
            ("epsilon", 0x3F5),
            ("varepsilon", 0x3B5),
            ("zeta", 0x3B6),
            ("eta", 0x3B7),
            ("theta", 0x3B8),
            ("kappa", 0x3BA),
            ("lambda", 0x3BB),
            ("mu", 0x3BC),
            ("nu", 0x3BD),
            ("xi", 0x3BE),
            ("pi", 0x3C0),
            ("rho", 0x3C1),
            ("sigma", 0x3C3),
            ("tau", 0x3C4),
            ("phi", 0x3C6),
            ("chi", 0x3C7),
            ("psi", 0x3C8),
            ("omega", 0x3C9),
            ("Delta", 0x394),
            ("Sigma", 0x3A3),
            ("Phi", 0x3A6),
        )
    },
    "partial": "∂",
    "cdot": "·",
    "times": "×",
    "approx": "≈",
    "ge": "≥",
    "geq": "≥",
    "le": "≤",
    "leq": "≤",
    "ne": "≠",
    "neq": "≠",
    "in": "∈",
    "infty": "∞",
    "ll": "≪",
    "odot": "⊙",
    "otimes": "⊗",
    "pm": "±",
    "to": "→",
    "dots": "…",
    "ldots": "…",
    "ell": "ℓ",
    "sum": "Σ",
    "prod": "Π",
    "nabla": "∇",
    "log": "log",
    "exp": "exp",
    "max": "max",
    "min": "min",
    "tanh": "tanh",
    "left": "",
    "right": "",
    "|": "‖",
    ",": " ",
    ";": " ",
    " ": " ",
    "{": "{",
    "}": "}",
}
PREFIXES = {"partial", "sum", "prod", "nabla", "left", "right", "sqrt", "frac"} | {"hat"}
ACCENTS = {"hat": "\u0302", "overline": "\u0304", "bar": "\u0304", "tilde": "\u0303"}
LETTERS = {"mathbb": {"1": "𝟙", "R": "ℝ"}, "mathcal": {"L": "ℒ"}}
PLAIN = {"mathbf", "mathrm", "operatorname", "text", "mathit", "boldsymbol"}
SUPERSCRIPTS = dict(zip("0123456789+-=()niT", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱᵀ"))
SUBSCRIPTS = dict(zip("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ"))


class _Reader:
    def __init__(self, text: str):
        self.text, self.at = text, 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def command(self) -> str:
        """The name after a backslash (letters, or one other character)."""
        start = self.at
        while self.peek().isalpha():
            self.at += 1
        if self.at == start:
            self.at += 1
            return self.text[start : self.at]
        name = self.text[start : self.at]
        while name in PREFIXES and self.peek() == " ":  # ∂x, not ∂ x
            self.at += 1
        return name

    def argument(self) -> str:
        """One argument: a group {…}, a command, or one character."""
        while self.peek() == " ":
            self.at += 1
        char = self.peek()
        self.at += 1
        if char == "{":
            return self.until("}")
        if char == "\\":
            return self.one(self.command())
        return char

    def until(self, end: str) -> str:
        out = []
        while self.peek() and self.peek() != end:
            out.append(self.item())
        self.at += 1
        return "".join(out)

    def item(self) -> str:
        char = self.peek()
        self.at += 1
        if char == "\\":
            return self.one(self.command())
        if char == "{":
            return self.until("}")
        if char in "^_":
            return script(self.argument(), SUPERSCRIPTS if char == "^" else SUBSCRIPTS, char)
        return "−" if char == "-" else char

    def one(self, name: str) -> str:
        if name == "frac":
            top, bottom = self.argument(), self.argument()
            return f"{grouped(top)}/{grouped(bottom)}"
        if name == "sqrt":
            return "√" + grouped(self.argument())
        if name in ACCENTS:
            inner = self.argument()
            return inner + ACCENTS[name] if len(inner) == 1 else f"{inner}{ACCENTS[name]}"
        if name in LETTERS:
            inner = self.argument()
            return LETTERS[name].get(inner, inner)
        if name in PLAIN:
            return self.argument()
        return SYMBOLS.get(name, name)


def grouped(text: str) -> str:
    """``text`` as one operand: bracketed unless it is a single name, number or call."""
    text = text.strip()
    return f"({text})" if any(c in text for c in " +−-/·×=") else text


def script(text: str, table: dict, mark: str) -> str:
    """A sub- or superscript in Unicode's small characters, or with its mark if one lacks them."""
    compact = text.replace(" ", "").replace("−", "-")
    if compact and all(c in table for c in compact):
        return "".join(table[c] for c in compact)
    return mark + grouped(text.strip())


def math_to_unicode(latex: str) -> str:
    """One piece of LaTeX math as Unicode text: ``\\frac{1}{K}`` -> ``1/K``."""
    reader = _Reader(latex)
    out = []
    while reader.peek():
        out.append(reader.item())
    text = "".join(out)
    for opening in "([":
        text = text.replace(opening + " ", opening).replace(opening + "− ", opening + "−")
    for before in ("= ", ", "):
        text = text.replace(before + "− ", before + "−")
    if text.startswith("− "):
        text = "−" + text[2:]
    for closing in ")]":
        text = text.replace(" " + closing, closing)
    return " ".join(text.split())


def text_to_unicode(text: str) -> str:
    """Prose with $…$ math (a step's title or sentence): the math as Unicode, the words kept."""
    pieces = text.split("$")
    return "".join(math_to_unicode(p) if n % 2 else p for n, p in enumerate(pieces))
