"""A derivation as data: definitions, ordered steps, identities to prove, and
the functions to generate from its results.

Pages, proofs and code are all views of a :class:`Derivation`; nothing here
prints or writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import product

import sympy as sp
from sympy import Matrix

from derive.step_references import KEY


@dataclass(frozen=True)
class Definition:
    """``name = expression``, shown before the steps (e.g. S_i = e^{z_i}/Σ e^{z_k})."""

    name: sp.Expr
    expression: sp.Expr
    text: str = ""


RELATIONS = ("=", ":=", "convention", "=>")
"""How a step's two sides relate: equal; the left a name defined as the right; equal
wherever the ``given`` hold, a chosen value elsewhere (the ReLU's slope at 0); equal
given the stated assumptions."""

CHECKS = ("symbolic", "explicit", "numeric")
"""How the build shows a step (derive.claims): in index form for symbolic sizes; at
explicit sizes, exactly; at explicit sizes and random points, to 50 digits."""

Pair = tuple[sp.Basic, sp.Basic]


@dataclass(frozen=True)
class Step:
    """One step: a rule applied to an expression, and what SymPy returned, as a checked claim.

    The build shows ``expression`` and ``result`` equal (derive.claims) after
    writing out every name through ``where`` (the step's own meanings, then
    the derivation's ``where`` and definitions), assuming ``given``. A step
    starts where the previous one ended, unless ``start`` says otherwise (an
    earlier step's number, or words shown on the page: "the definition of σ").
    The page's prose names a step by its ``key``, ``{step:quotient-rule}``, never by
    its number, which moves when a step is inserted (derive.step_references).
    """

    title: str  # what the step does: "Quotient rule"
    rule: str  # why it is allowed, one or two sentences of Markdown
    expression: sp.Expr  # what the rule is applied to
    result: sp.Expr  # what SymPy returned
    relation: str = "="  # one of RELATIONS
    where: tuple[Pair, ...] = ()  # names this step uses: (σ, 1/(1 + e^{-z})), (δ₂_c, S_c − y_c)
    given: tuple = ()  # (Σ_t y_t, 1) pairs and relations (z > 0) the step assumes
    start: int | str | None = None  # None: the previous step's result
    checked: str = "symbolic"  # one of CHECKS: the method the build runs and the page reports
    sizes: tuple[Mapping[str, int], ...] = ()  # explicit sizes (default: derive.claims')
    entry: tuple = ()  # ((row indices), (column indices)): the left side is that entry of the right
    key: str = ""  # how the prose refers to it, "{step:quotient-rule}"; unique in its derivation

    def __post_init__(self):
        if self.key and not KEY.fullmatch(self.key):
            raise ValueError(
                f"Step {self.title!r}: key {self.key!r} is not lower-case words joined by "
                "hyphens (quotient-rule)"
            )
        given = tuple(
            tuple(map(sp.sympify, g)) if isinstance(g, tuple) else sp.sympify(g) for g in self.given
        )
        object.__setattr__(self, "given", given)  # (Σ y_t, 1): the 1 a SymPy number
        if self.relation not in RELATIONS:
            raise ValueError(f"Step {self.title!r}: relation must be one of {RELATIONS}")
        if self.checked not in CHECKS:
            raise ValueError(f"Step {self.title!r}: checked must be one of {CHECKS}")
        if self.relation in ("=>", "convention") and not self.given:
            raise ValueError(f"Step {self.title!r}: relation {self.relation!r} needs its given")
        if self.relation in ("=", ":=") and self.given:
            raise ValueError(
                f"Step {self.title!r}: a step that assumes {self.given} is an implication: "
                "relation='=>'"
            )


Sizes = Mapping[str, int]
"""Named dimensions and their sizes, e.g. ``{"D": 3, "C": 5}``."""

ExplicitCheck = Callable[[Sizes], tuple[Matrix, Matrix]]
"""Given the sizes, the derivative computed directly and the shortcut, as matrices."""


def every(**ranges: range) -> tuple[dict[str, int], ...]:
    """Every combination of the given sizes: ``every(C=range(2, 7), D=range(1, 5))``."""
    names = list(ranges)
    return tuple(dict(zip(names, values)) for values in product(*ranges.values()))


@dataclass(frozen=True)
class Identity:
    """A shortcut that must equal the long chain-rule product.

    ``long`` is evaluated (sums of deltas collapsed, ``assumptions`` applied)
    and must simplify to ``shortcut`` in index form, for symbolic sizes;
    ``explicit`` writes the same derivative out with explicit matrices.
    """

    name: str
    claim: str  # one sentence: what is proved
    long: sp.Expr
    shortcut: sp.Expr
    assumptions: dict[sp.Expr, sp.Expr] = field(default_factory=dict)  # e.g. {Σ y_t: 1}
    explicit: ExplicitCheck | None = None
    explicit_sizes: tuple[Sizes, ...] = ()  # the sizes ``explicit`` is checked at: every(...)
    long_title: str = "The chain-rule product"
    shortcut_title: str = "the shortcut"
    headline: bool = False  # one of the page's main results, shown in full (default: the first two)


DOMAINS = ("real", "positive", "probability", "one_hot", "target", "labels")
"""What values an argument takes, for the tests that draw them: any real number;
a positive one (a temperature); a probability in (0, 1); a one-hot label row
(or integer class labels); a target probability in [0, 1] (binary labels); integer class labels 0..C-1 only
(a `LabelsForm`'s parameter)."""


VALUE_CHECKS = ("", "probabilities", "in [0, 1]")
"""What the generated function checks of an argument's values, beyond its shape and dtype
(derive._runtime.prepare): nothing; rows summing to 1 with no negative entry; values in [0, 1]."""


@dataclass(frozen=True)
class Param:
    """An argument of a generated function, bound to a base (or a scalar symbol) of the model."""

    name: str  # the Python name: "s"
    base: sp.IndexedBase | sp.Symbol  # what it stands for: S; a Symbol for a scalar (T)
    axes: tuple[str, ...] = ()  # its sizes after any batch axes: ("C",); () for a scalar
    batched: bool = True  # whether it takes leading batch axes
    doc: str = ""
    one_hot: bool = False  # also takes integer class labels of the batch shape
    domain: str = "real"  # one of DOMAINS
    labels: bool = (
        False  # integer class labels 0..C-1 of the batch shape (C: its one axis), kept as integers
    )
    # a check of the values the formula needs (VALUE_CHECKS): "probabilities", rows summing to
    # 1 with no negative entry (a softmax output); "in [0, 1]", every value in [0, 1]
    check: str = ""
    # a positive number's range, which the tests draw it from log-uniformly: eps (1e-8, 1),
    # a temperature (0.1, 10); every positive number must declare one
    span: tuple[float, float] | None = None

    def __post_init__(self):
        if self.domain == "positive" and not (
            self.span is not None and 0 < self.span[0] < self.span[1]
        ):
            raise ValueError(
                f"Param {self.name}: a positive argument declares the range the tests draw it "
                f"from, span=(low, high) with 0 < low < high; got {self.span!r}"
            )
        if self.labels and self.domain != "labels":
            object.__setattr__(self, "domain", "labels")
        if self.domain not in DOMAINS:
            raise ValueError(
                f"Param {self.name}: domain must be one of {DOMAINS}, got {self.domain!r}"
            )
        if self.check not in VALUE_CHECKS:
            raise ValueError(
                f"Param {self.name}: check must be one of {VALUE_CHECKS}, got {self.check!r}"
            )
        if self.one_hot and self.domain != "one_hot":
            object.__setattr__(self, "domain", "one_hot")

    @property
    def label(self) -> str:
        """The model's name for it: "S" for ``IndexedBase("S")``, "T" for ``Symbol("T")``."""
        return str(self.base.label if isinstance(self.base, sp.IndexedBase) else self.base)


@dataclass(frozen=True)
class Assign:
    """``target[indices] = expression`` inside a generated function."""

    target: sp.Basic  # IndexedBase, or Symbol for one number per sample
    indices: tuple[sp.Idx, ...]
    expression: sp.Expr


@dataclass(frozen=True)
class DerivativeOf:
    """What a generated derivative is the derivative of, in Python the tests evaluate.

    ``of`` calls generated functions on named variables ("softmax(z)"); ``call``
    calls the derivative on the same variables (default: the kernel on its own
    parameters). The tests check ``call`` against finite differences and
    PyTorch autograd of ``of`` with respect to ``wrt``, for every registered
    kernel that declares one; nobody lists functions by hand.
    """

    of: str  # "cross_entropy_from_logits(summation(x, W), y)"
    wrt: str  # "W"
    call: str = ""  # "softmax_jacobian(softmax(z))"
    # "jacobian" (one sample), "elementwise", "batch_mean" (∂ mean(of) / ∂ wrt), or "reduced"
    # (∂ of / ∂ wrt on a batch, ``of`` already one number: a loss with its reduction)
    kind: str = "jacobian"

    def __post_init__(self):
        if self.kind not in ("jacobian", "elementwise", "batch_mean", "reduced"):
            raise ValueError(f"DerivativeOf({self.of!r}): unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Requirement:
    """A condition on the arguments, checked before computing: ``l2 > 0``, ``D*C <= 4096``.

    ``condition`` uses the parameters' symbols and the size symbols (D, C);
    ``message`` is the ValueError's text, a Python f-string body that may
    name them (``got l2 = {l2}``).
    """

    condition: sp.Basic
    message: str

    def __post_init__(self):
        if self.condition in (sp.true, sp.false):  # decided from the symbols' assumptions
            raise ValueError(
                f"Requirement {self.message!r}: its condition is always {self.condition} "
                "(SymPy decides it from the symbols' assumptions, e.g. a positive=True symbol "
                "> 0); state it on a symbol without that assumption"
            )


@dataclass(frozen=True)
class LabelsForm:
    """The same function for integer class labels, without a one-hot matrix.

    ``param`` (``labels=True``) replaces the kernel's one-hot parameter of the
    same name; the public function takes this form when it is given integer
    labels of the batch shape, and the one-hot form otherwise. The returned
    expression, with y = e_ℓ, must be proved equal to the one-hot one by an
    identity on the page.
    """

    param: Param
    body: tuple[Assign, ...]
    returns: Assign  # a kernel's further results (``more``) are the same in its labels form


@dataclass(frozen=True)
class Result:
    """One more result of a kernel that returns several (``Kernel.more``), from the same body.

    The body's intermediates (a forward pass, the δs) are computed once and
    shared; each result is checked on its own, as a kernel would be.
    """

    returns: Assign
    math: sp.Expr | None = None  # shown in the docstring: returns.target = math
    derivative: DerivativeOf | None = None  # what the tests differentiate to check it


OPTION_KINDS = ("weights", "index", "fraction", "choice")
"""What a keyword-only option takes: class weights, an array (C,) of non-negative finite
numbers (or None); a class index, an int (or None); a fraction, a number in [0, 1]; a
choice, one of the option's ``choices``."""


@dataclass(frozen=True)
class Option:
    """A keyword-only argument of a generated function, with its default."""

    name: str  # "label_smoothing"
    default: object  # None, 0.0, "none": with every option at its default, the kernel runs as is
    kind: str  # one of OPTION_KINDS
    doc: str
    choices: tuple[str, ...] = ()  # for kind "choice"

    def __post_init__(self):
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"Option {self.name}: kind must be one of {OPTION_KINDS}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"Option {self.name}: default {self.default!r} is not a choice")


@dataclass(frozen=True)
class OptionsForm:
    """The same function with PyTorch's cross-entropy options: class weights (``weights``),
    an ignored class (``index``), label smoothing (a ``fraction``) and a ``reduction``.

    The public function takes this form only when an option differs from its
    default, so the default path is the kernel itself, unchanged. The targets
    arrive as rows (class labels become one-hot rows, an ignored sample's row
    zeros), followed by ``params``: the weights, each sample's ``keep`` (0 if
    ignored, else 1) and the smoothing. ``gradient``: the result is a
    gradient of the reduced loss (each sample's own, divided by the mean's
    denominator for "mean"); otherwise a value per sample, which the
    reduction sums or averages. Without a "reduction" option, ``reduction``
    is fixed.
    """

    options: tuple[Option, ...]
    params: tuple[Param, ...]  # after the kernel's own: weight, keep, label_smoothing
    body: tuple[Assign, ...]
    returns: Assign
    gradient: bool = False
    reduction: str = ""  # the fixed reduction when there is no "reduction" option ("mean")
    # What the function with its options set is the derivative of: in its strings, ``options``
    # stands for every option set away from its default, as the tests draw them.
    derivative: DerivativeOf | None = None


SHIFT_OVERFLOW = (
    "Where the logits of a row span more than the dtype's range (float64 [1.7e308, −1.7e308], "
    "float16 [60000, −60000]), z − max z overflows to −∞, and e^{−∞} = 0 is the right term"
)
"""`Kernel.overflow` of every function that shifts the logits by their maximum."""


def _label(target: sp.Basic) -> sp.Basic:
    """An assignment target's name: the IndexedBase's label, or the Symbol itself."""
    return target.label if isinstance(target, sp.IndexedBase) else target


def _labels_read(expression: sp.Basic) -> set[str]:
    """The names of the arrays and numbers an expression reads (an activation applied to a
    whole array, ``relu(z1)``, reads its IndexedBase)."""
    bases = {str(b.label) for b in expression.atoms(sp.IndexedBase)}
    return bases | {str(s) for s in expression.atoms(sp.Symbol)}


@dataclass(frozen=True)
class Kernel:
    """A function to generate: its arguments, body and returned expression."""

    name: str
    summary: str  # the docstring's first line
    params: tuple[Param, ...]
    body: tuple[Assign, ...]
    returns: Assign  # the target names the result in the docstring
    returns_doc: str
    math: sp.Expr | None = None  # shown in the docstring: returns.target = math
    matrix_form: sp.Expr | None = None  # the same result with matrices, for the page
    flatten_batch: bool = False  # reshape batched params to (B, ...): batch index b
    notes: str = ""  # more docstring text (layout, the posts' names)
    derivative: DerivativeOf | None = None  # what the tests differentiate to check it
    reference: str = ""  # its value in PyTorch's own operations, e.g. "torch.sigmoid(z)"
    requires: tuple[Requirement, ...] = ()  # checked by the public function, ValueError if not met
    conditioning: str = (
        ""  # why no entry-wise error bound can hold (a sum that cancels); "" if one does
    )
    labels_form: LabelsForm | None = None  # the same result from integer class labels, if any
    more: tuple[Result, ...] = ()  # further results of the same body: it returns a tuple
    part: int | None = None  # a view made by ``parts``: the element of the tuple it checks
    options_form: OptionsForm | None = None  # keyword-only options (weights, smoothing, ...)
    options_view: bool = False  # a view made by ``with_options``: called with ``**options``
    # Why an overflow inside its arithmetic gives the right result (z − max z to −∞, then
    # e^−∞ = 0), for the docstring: NumPy's overflow warning is silenced for its calls
    # (`quiet_overflow`), or for the shift alone where that is the overflow (SHIFT_OVERFLOW,
    # printed as `subtract_maximum`); "" if no overflow is meant, and then NumPy warns as usual.
    overflow: str = ""
    # Why float16 arguments are computed in float32 and the result rounded once to float16
    # (a square of float16's differences below its smallest number, say), for the docstring;
    # "" to compute in the arguments' own dtype.
    float16_in_float32: str = ""

    @property
    def call(self) -> str:
        """Python calling it as its checks do: the declared call, or on its own parameters."""
        if self.derivative is not None and self.derivative.call:
            return self.derivative.call
        given = ", ".join([p.name for p in self.params] + ["**options"] * self.options_view)
        call = f"{self.name}({given})"
        return call if self.part is None else f"{call}[{self.part}]"

    @property
    def id(self) -> str:
        """Its name, with the element a view checks: ``mlp_grads_relu[2]``, ``weight_grad+options``."""
        name = self.name + "+options" * self.options_view
        return name if self.part is None else f"{name}[{self.part}]"

    @property
    def with_options(self) -> Kernel | None:
        """A view that calls it with every option set away from its default (``**options``),
        checked against its options form's derivative; None for a kernel without options."""
        if self.options_form is None:
            return None
        return replace(self, derivative=self.options_form.derivative, options_view=True)

    @property
    def parts(self) -> tuple[Kernel, ...]:
        """One single-result view per element of the returned tuple (``(self,)`` for one result),
        so every check written for a kernel checks each element."""
        if not self.more:
            return (self,)
        views = [replace(self, more=(), part=0)]
        for n, r in enumerate(self.more, 1):
            form = self.labels_form and replace(self.labels_form, returns=r.returns)
            views.append(
                replace(
                    self,
                    returns=r.returns,
                    math=r.math,
                    derivative=r.derivative,
                    matrix_form=None,
                    labels_form=form,
                    more=(),
                    part=n,
                )
            )
        return tuple(views)

    @property
    def results_after(self) -> tuple[int | None, ...]:
        """Per result (``returns``, then ``more``): the body position right after which the
        generated code computes it, or None for its return statement.

        A kernel that returns several results computes each as soon as the last array it
        reads is made, not after the whole body: then what it reads is still in cache, and
        is freed (or overwritten in place) as soon as the body reads it no more. A two-layer
        step takes hᵀ(δ₂/B) right after δ₂/B, before δ₁'s passes, as a hand-written step
        does: h is then free for ReLU's slope to be written into. A result that is a bare
        array, or that reads the body's last array, stays in the return statement.
        """
        results = (self.returns, *(r.returns for r in self.more))
        if not self.more:
            return (None,)
        made = {str(_label(a.target)): n for n, a in enumerate(self.body)}
        after = []
        for r in results:
            expression = r.expression
            read = [made[n] for n in _labels_read(expression) if n in made]
            bare = isinstance(expression, (sp.Indexed, sp.Symbol))
            last = max(read, default=None)
            after.append(None if bare or last is None or last == len(self.body) - 1 else last)
        return tuple(after)

    @property
    def equation(self) -> tuple[sp.Expr, sp.Expr]:
        """What the function computes, ``lhs = rhs``, for its docstring and page."""
        lhs = self.returns.target
        if isinstance(lhs, sp.IndexedBase):
            lhs = lhs[self.returns.indices]
        return lhs, self.math if self.math is not None else self.returns.expression


@dataclass(frozen=True)
class Dispatch:
    """A public function with a string option that calls the kernels generated for each choice.

    ``choices`` maps each value of the option to the kernels called, in order,
    on the same arguments: one kernel returns its value, several a tuple. The
    kernels of every choice take the same parameters; any other value of the
    option raises ValueError naming it and the choices.
    """

    name: str
    summary: str
    option: str  # the keyword: "activation"
    choices: tuple[tuple[str, tuple[str, ...]], ...]  # ("relu", ("mlp_logits_relu",)), ...
    default: str
    returns_doc: str

    def __post_init__(self):
        if self.default not in dict(self.choices):
            raise ValueError(f"Dispatch {self.name}: default {self.default!r} is not a choice")


@dataclass(frozen=True)
class Example:
    """A worked number on the page, computed at build time by the generated functions.

    It is compared with a reference when there is one: a number a post printed
    (``printed``, a name in derive.posts), or the same quantity computed another
    way with NumPy (``reference``, Python with ``np``), or neither.
    """

    title: str
    call: str  # Python, evaluated with the generated functions, np and derive.posts
    printed: str = ""  # the name in derive.posts of what the post printed
    reference: str = ""  # or: the value computed independently, with NumPy by hand
    reference_title: str = "NumPy, written by hand"
    text: str = ""  # the example's own introduction


@dataclass(frozen=True)
class Figure:
    """A figure on the page, drawn at build time from the generated functions."""

    file: str  # the SVG's name in docs/figures/
    caption: str
    draw: Callable  # (matplotlib figure, derive.generated, derive.posts) -> None


@dataclass(frozen=True)
class Erratum:
    """Where a source is wrong or misleading, and (``call``) the correct result.

    ``followed_by`` continues the argument: more (text, call) pairs, each call
    evaluated and shown like ``call`` (a call may be empty).
    """

    text: str
    call: str = ""
    followed_by: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Section:
    """A section of prose on the page, with results SymPy computed and numbers the code computed.

    ``equations`` are shown as ``lhs = rhs`` after ``text`` (they must be
    results, not typed); ``call`` is evaluated with the generated functions, as
    an example's, and shown after them; ``text_after`` closes the section.
    ``place`` is "after_steps" or "end" (after the worked examples).
    """

    title: str
    text: str
    equations: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    call: str = ""
    text_after: str = ""
    place: str = "end"

    def __post_init__(self):
        if self.place not in ("after_steps", "end"):
            raise ValueError(
                f"Section {self.title!r}: place must be 'after_steps' or 'end', got {self.place!r}"
            )


@dataclass(frozen=True)
class MatrixResult:
    """The page's result in matrix form, with the shape of every factor (dimension analysis).

    ``lhs = rhs`` is written with matrix symbols, whose shapes are the data the
    page's list of shapes and the home page's summary show: SymPy refuses a
    product whose inner sizes differ, and this refuses two sides of different
    shapes. The build checks that ``index_form`` (the page's result, one
    entry, in the page's names) is the entry ``entry`` of ``rhs``, at explicit
    sizes, as a displayed step with an ``entry`` is checked (``step``).
    """

    group: str  # where the home page lists it: a key of derive.derivations.GROUPS
    lhs: sp.Expr  # a matrix symbol: the result's name and shape, dW (D × C)
    rhs: sp.Expr  # of matrix symbols: Xᵀ(S − Y)/B
    index_form: sp.Expr  # the page's result, entry ``entry`` of rhs: Σ_b X_bj (S_bc − Y_bc)/B
    entry: tuple  # ((row indices), (column indices)), as Step.entry
    text: str  # one sentence: what it is, for the page and the home page
    where: tuple[Pair, ...] = ()  # names index_form uses that the page does not define
    given: tuple = ()  # what it assumes, as Step.given (then an implication)
    sizes: tuple[Mapping[str, int], ...] = ()  # explicit sizes (default: derive.claims')

    def __post_init__(self):
        if tuple(self.lhs.shape) != tuple(self.rhs.shape):
            raise ValueError(
                f"MatrixResult {self.lhs}: the left side is {self.lhs.shape}, "
                f"the right side {self.rhs.shape}"
            )

    @property
    def factors(self) -> list[sp.MatrixSymbol]:
        """Every matrix symbol of the equation, the result first, each once."""
        found = [self.lhs]
        for symbol in sp.preorder_traversal(self.rhs):
            if isinstance(symbol, sp.MatrixSymbol) and symbol not in found:
                found.append(symbol)
        return found

    @property
    def step(self) -> Step:
        """The claim the build checks: the page's result is this entry of ``rhs``."""
        return Step(
            "The result in matrix form",
            self.text,
            self.index_form,
            self.rhs,
            relation="=>" if self.given else "=",
            where=self.where,
            given=self.given,
            start="the page's result",
            checked="explicit",
            sizes=self.sizes,
            entry=self.entry,
        )


ExerciseCheck = Callable[[sp.Expr], bool]
"""Given the answer, True if SymPy confirms it (a module-level function: derivations are pickled)."""


@dataclass(frozen=True)
class Exercise:
    """A question for the reader, its answer, and how SymPy checks the answer at build time.

    ``check`` is an :class:`Identity` (proved like the page's identities) or a
    function of ``answer_expression`` returning True; the build fails, naming
    the exercise, if the check fails.
    """

    question: str  # Markdown
    answer_expression: sp.Expr  # shown in the answer; an Eq shows both sides
    check: ExerciseCheck | Identity
    answer: str = ""  # Markdown: the answer explained, before its expression
    title: str = ""  # a short name, for the page and for build errors

    @property
    def name(self) -> str:
        return self.title or self.question.split(".")[0][:60]


@dataclass(frozen=True)
class Derivation:
    """Everything one page and one generated module are made from."""

    name: str  # "softmax_jacobian": the module, page and registry key
    title: str
    summary: str
    definitions: tuple[Definition, ...]
    steps: tuple[Step, ...]
    identities: tuple[Identity, ...]
    kernels: tuple[Kernel, ...]
    examples: tuple[Example, ...] = ()
    errata: tuple[Erratum, ...] = ()
    figures: tuple[Figure, ...] = ()
    sections: tuple[Section, ...] = ()
    exercises: tuple[Exercise, ...] = ()
    results: Mapping[str, sp.Expr] = field(default_factory=dict)  # named, for other derivations
    dispatches: tuple[Dispatch, ...] = ()  # public functions choosing kernels by a string option
    # What the page's names mean, through the inputs, for every step (with its definitions):
    # (S_i, e^{z_i}/Σ_k e^{z_k}), (XE, −Σ_t y_t log S_t)
    where: tuple[Pair, ...] = ()
    # Where the page's indices depart from derive.notation, declared: (letter, size) pairs,
    # ("d", "C") for a d that counts classes; the build refuses an undeclared departure.
    notation: tuple[tuple[str, str], ...] = ()
    # The result in matrix form, with its shapes: the page's last section, the home page's summary
    matrix_result: MatrixResult | None = None

    @property
    def displayed_steps(self) -> tuple[Step, ...]:
        """Every step the page displays and the build checks: the steps, then the matrix form."""
        return self.steps + ((self.matrix_result.step,) if self.matrix_result else ())

    @property
    def function_names(self) -> list[str]:
        """Every public function of the generated module: the kernels, then the dispatchers."""
        return [k.name for k in self.kernels] + [d.name for d in self.dispatches]
