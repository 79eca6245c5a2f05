"""Every generated function, fuzzed through its argument checks (hypothesis).

Driven by the registry: the functions are ``derive.generated.__all__`` and
each argument's shape is read from the docstring's Args line ("shape (..., C)",
"or integer class labels"), so a new derivation is fuzzed the moment it is
registered. Invalid inputs must raise a ValueError or TypeError whose message
starts with the argument's name; valid ones must give a finite result of the
inputs' float dtype, the same numbers as plain float64 NumPy arrays, and leave
every input as it was. The cases tried are counted and printed at the end.
"""

from __future__ import annotations

import copy
import inspect
import re
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive import generated

from registry import BY_NAME, positive, require

torch = require("torch")

settings.register_profile(
    "derive-fuzz",
    max_examples=100,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("derive-fuzz")
TRIED: Counter = Counter()


@dataclass(frozen=True)
class Argument:
    name: str
    batched: bool  # shape (..., axes) rather than (axes)
    axes: tuple[str, ...]
    labels: bool  # also takes integer class labels of the batch shape
    domain: str  # what values it takes (derive.steps.DOMAINS)
    check: str = ""  # what is checked of its values (derive.steps.VALUE_CHECKS)
    span: tuple[float, float] | None = None  # a positive number's declared range

    @property
    def probabilities(self) -> bool:
        """Rows of a softmax (positive, summing to 1) when it has a class axis; else each in (0, 1)."""
        return self.domain == "probability"

    @property
    def scalar(self) -> bool:
        return not self.batched and not self.axes


def arguments_of(function) -> list[Argument]:
    """One Argument per parameter, from the registry's declaration of the function."""
    kernel = BY_NAME[function.__name__]
    return [
        Argument(p.name, p.batched, p.axes, p.one_hot, p.domain, p.check, p.span)
        for p in kernel.params
    ]


FUNCTIONS = {
    name: getattr(generated, name) for name in generated.__all__ if name in BY_NAME
}  # a dispatcher passes its arguments on to these
SPECS = {name: arguments_of(f) for name, f in FUNCTIONS.items()}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_declared_shapes_are_the_checked_ones(name):
    """What the fuzzer reads (the registry) is what prepare checks (the source)."""
    source = inspect.getsource(FUNCTIONS[name])
    checked = dict(re.findall(r'(\w+)=\(\w+, "([^"]*)"\)', source))
    for argument in SPECS[name]:
        if argument.scalar:
            assert f'{argument.name} = scalar("{argument.name}", {argument.name})' in source
            continue
        parts = (("...",) if argument.batched else ()) + argument.axes
        spec = "(" + ", ".join(parts) + ("," if len(parts) == 1 and parts != ("...",) else "") + ")"
        suffix = " one-hot" if argument.labels else f" {argument.check}" if argument.check else ""
        assert checked[argument.name] == spec + suffix


# ---------------------------------------------------------------------------- valid inputs


@dataclass
class Case:
    function: object
    arguments: list[Argument]
    values: list  # as passed
    plain: list  # the same numbers as plain float64 NumPy arrays (integer labels kept)
    library: str
    dtype: str  # of the values: the result's dtype unless only lists are given


def softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


BATCHES = [(), (1,), (3,), (2, 3)]
EMPTY_BATCHES = [(0,), (2, 0), (0, 3)]


def draw_case(data, name: str, batches: list = BATCHES) -> Case:
    arguments = SPECS[name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    axes = {axis for a in arguments for axis in a.axes}
    sizes = {axis: data.draw(st.integers(1, 5), label=axis) for axis in sorted(axes)}
    batch = data.draw(st.sampled_from(batches), label="batch")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    dtype = data.draw(st.sampled_from(["float64", "float32"]), label="dtype")
    plain = []
    for argument in arguments:
        shape = (batch if argument.batched else ()) + tuple(sizes[a] for a in argument.axes)
        if argument.labels:
            classes = sizes[argument.axes[-1]]
            labels = rng.integers(classes, size=batch)
            form = data.draw(st.sampled_from(["integers", "one-hot", "smoothed"]), label="labels")
            if form == "integers":
                integer = data.draw(st.sampled_from(["int8", "uint8", "int16", "int32", "int64"]))
                plain.append(labels.astype(integer))
            else:
                rows = np.eye(classes)[labels]
                plain.append(rows if form == "one-hot" else rows * 0.9 + 0.1 / classes)
        elif argument.domain == "positive":  # T, l2, eps: across its whole declared range
            plain.append(np.float64(positive(argument.span, rng, shape)))
        elif argument.scalar:
            plain.append(np.float64(rng.normal()))
        elif argument.probabilities and argument.axes:
            plain.append(softmax_rows(rng.normal(size=shape)))
        elif argument.probabilities:
            plain.append(rng.uniform(0.05, 0.95, size=shape))
        elif argument.domain == "target":  # a binary label, a soft one, or one near 0 or 1
            plain.append(targets(data, rng, shape))
        else:
            plain.append(rng.normal(size=shape))
    values = [represent(data, library, dtype, value) for value in plain]
    plain = [v.astype(dtype).astype(np.float64) if v.dtype.kind == "f" else v for v in plain]
    return Case(FUNCTIONS[name], arguments, values, plain, library, dtype)


def targets(data, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Targets in [0, 1] as people pass them: exact 0s and 1s (binary labels), soft ones, and
    ones within 1e-12 of 0 or 1, mixed in one array; uniform draws alone would never give 0 or 1."""
    form = data.draw(st.sampled_from(["binary", "soft", "near 0 or 1", "mixed"]), label="targets")
    binary = rng.integers(0, 2, size=shape).astype(np.float64)
    near = np.abs(binary - 10.0 ** rng.uniform(-12, -1, size=shape))
    soft = rng.uniform(0.0, 1.0, size=shape)
    if form == "mixed":
        return np.choose(rng.integers(0, 3, size=shape), [binary, near, soft])
    return {"binary": binary, "soft": soft, "near 0 or 1": near}[form]


def represent(data, library: str, dtype: str, value: np.ndarray):
    """The value in one of the forms people pass: an array (contiguous or not), read-only, a list."""
    if value.dtype.kind == "f":
        value = value.astype(dtype)
    forms = ["array", "list", "strided"] + (
        ["read-only", "fortran"] if library == "numpy" else ["transposed"]
    )
    if value.ndim and not value.size:  # a list of no rows loses the axes after the batch
        forms = [f for f in forms if f != "list"]
    form = data.draw(st.sampled_from(forms if value.ndim else ["array", "list"]), label="form")
    TRIED["argument given as: " + form] += 1
    if form == "list":
        return value.tolist()
    if form == "strided":  # every other entry of a wider array
        wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), dtype=value.dtype)
        wide[..., ::2] = value
        value = wide[..., ::2] if library == "numpy" else torch.asarray(wide)[..., ::2]
        return value
    if form == "read-only":
        value = value.copy()
        value.flags.writeable = False
        return value
    if form == "fortran":
        return np.asfortranarray(value)
    if form == "transposed":
        if value.ndim < 2:
            return torch.asarray(value.copy())
        return torch.asarray(np.ascontiguousarray(np.swapaxes(value, -1, -2))).mT
    return value.copy() if library == "numpy" else torch.asarray(value.copy())


def expected_dtype(case: Case) -> str:
    """The float dtype of the array arguments (label rows only if alone); float64 for lists."""

    def floats(labels: bool) -> list[str]:
        return [
            str(v.dtype).removeprefix("torch.")
            for v, a in zip(case.values, case.arguments)
            if hasattr(v, "dtype")
            and a.labels == labels
            and ("float" in str(v.dtype))
            and not a.scalar
        ]  # a scalar (T, l2) is a number: the arrays decide the precision

    found = floats(False) or floats(True)
    return found[0] if found else "float64"


def to_numpy(array) -> np.ndarray:
    return array.detach().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


def snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    return value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)


def unchanged(before, after) -> bool:
    if isinstance(before, (np.ndarray, torch.Tensor)):
        return np.array_equal(to_numpy(before), to_numpy(after)) and before.shape == after.shape
    return before == after


@pytest.mark.parametrize("name", FUNCTIONS)
@FUZZ
@given(data=st.data())
def test_valid_inputs_give_finite_results_of_their_dtype(name, data):
    case = draw_case(data, name)
    before = [snapshot(v) for v in case.values]
    results = case.function(*case.values)
    TRIED[f"valid: {case.library} {case.dtype}"] += 1
    references = case.function(*case.plain)  # plain float64 NumPy arrays
    if not isinstance(results, tuple):  # a function with several results returns a tuple
        results, references = (results,), (references,)
    for result, reference in zip(results, references, strict=True):
        if case.library == "torch" and any(
            isinstance(v, torch.Tensor) for v, a in zip(case.values, case.arguments) if not a.scalar
        ):
            assert isinstance(result, torch.Tensor)
            assert result.dtype == getattr(torch, expected_dtype(case))
        else:  # a NumPy reduction to shape () gives a NumPy scalar, which is fine
            assert isinstance(result, (np.ndarray, np.generic))
            assert not isinstance(result, np.matrix)
            assert result.dtype == np.dtype(expected_dtype(case))
        numbers = to_numpy(result)
        assert np.isfinite(numbers).all()
        tolerance = 1e-10 if expected_dtype(case) == "float64" else 2e-5
        np.testing.assert_allclose(numbers, reference, rtol=tolerance, atol=tolerance)
    for argument, old, new in zip(case.arguments, before, case.values):
        assert unchanged(old, new), f"{argument.name} was changed"


@pytest.mark.parametrize("name", FUNCTIONS)
@FUZZ
@given(data=st.data())
def test_empty_batches_give_empty_results_of_their_dtype(name, data):
    """A batch of no samples: an empty result with the batch axes kept, or, for a mean over the
    samples, a ValueError naming the first batched argument."""
    case = draw_case(data, name, EMPTY_BATCHES)
    if not any(a.batched for a in case.arguments):
        return
    if BY_NAME[name].flatten_batch:
        first = next(a.name for a in case.arguments if a.batched)
        with pytest.raises(ValueError, match=rf"^{first}: expected at least one sample"):
            case.function(*case.values)
        TRIED["valid: empty batch: a mean over no samples, refused"] += 1
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = case.function(*case.values)
    references = case.function(*case.plain)  # plain float64 NumPy arrays
    TRIED[f"valid: empty batch: {case.library} {case.dtype}"] += 1
    if not isinstance(results, tuple):
        results, references = (results,), (references,)
    for result, reference in zip(results, references, strict=True):
        assert tuple(result.shape) == tuple(reference.shape)
        assert 0 in tuple(result.shape)
        assert str(result.dtype).removeprefix("torch.") == expected_dtype(case)


# -------------------------------------------------------------------------- invalid inputs
# Each mutation takes a valid case and returns (values, exception types, the names an error
# may start with), or None where it does not apply (a size no other argument shares, say).


def replace(case: Case, index: int, value) -> list:
    values = list(case.values)
    values[index] = value
    return values


def numpy_value(case: Case, index: int) -> np.ndarray:
    value = case.values[index]
    return to_numpy(value) if hasattr(value, "shape") else np.asarray(value)


def in_library(case: Case, array: np.ndarray):
    return torch.asarray(array) if case.library == "torch" else array


def is_rows(case: Case, index: int) -> bool:
    """A labels argument given as rows (..., C), not as integer class labels."""
    return np.asarray(numpy_value(case, index)).dtype.kind == "f"


def not_numbers(kind):
    def mutate(case, index, data):
        value = {"None": None, "str": "0.5", "dict": {"x": 1.0}, "object": object()}[kind]
        return replace(case, index, value), (TypeError,), {case.arguments[index].name}

    return mutate


def booleans(case, index, data):
    value = numpy_value(case, index) > 0.2
    return replace(case, index, in_library(case, value)), (TypeError,), {case.arguments[index].name}


def complex_numbers(case, index, data):
    value = numpy_value(case, index).astype(np.complex128)
    return replace(case, index, in_library(case, value)), (TypeError,), {case.arguments[index].name}


def ragged(case, index, data):
    value = numpy_value(case, index)
    if value.ndim < 1:
        return None
    rows = np.atleast_2d(value).tolist()
    rows[-1] = rows[-1] + rows[-1][:1]  # one row longer than the others
    if len(rows) == 1:
        rows.append(rows[0][:-2] or [])
    return replace(case, index, rows), (ValueError,), {case.arguments[index].name}


def scalar(case, index, data):
    if not case.arguments[index].axes:
        return None
    return (
        replace(case, index, in_library(case, np.float64(0.5))),
        (ValueError, TypeError),
        {case.arguments[index].name},
    )


def extra_axis(case, index, data):
    argument = case.arguments[index]
    if argument.batched:
        return None
    value = numpy_value(case, index)
    return (
        replace(case, index, in_library(case, np.stack([value, value]))),
        (ValueError,),
        {argument.name},
    )


def other_size(case, index, data):
    """One size (D, C) that another argument shares changed by one."""
    argument = case.arguments[index]
    if argument.labels and not is_rows(case, index):
        return None
    value = numpy_value(case, index)
    for position, axis in enumerate(argument.axes):
        sharing = {
            a.name
            for i, a in enumerate(case.arguments)
            if axis in a.axes and i != index and (not a.labels or is_rows(case, i))
        }
        if sharing:
            where = value.ndim - len(argument.axes) + position
            grown = np.concatenate([value, np.take(value, [0], axis=where)], axis=where)
            return (
                replace(case, index, in_library(case, grown)),
                (ValueError, TypeError),
                sharing | {argument.name},
            )
    return None


def other_batch(case, index, data):
    """One batched argument with a batch shape the others do not have."""
    argument = case.arguments[index]
    batched = {a.name for a in case.arguments if a.batched}
    if not argument.batched or len(batched) < 2:
        return None
    value = numpy_value(case, index)
    # ValueError, or TypeError where the new shape is that of class labels but not their dtype
    return (
        replace(case, index, in_library(case, np.stack([value, value]))),
        (ValueError, TypeError),
        batched,
    )


def empty_batch(case, index, data):
    """Every batched argument with a batch of no samples: refused where the result is a mean
    over the samples (elsewhere an empty result: `test_an_empty_batch_gives_an_empty_result`)."""
    if not BY_NAME[case.function.__name__].flatten_batch:
        return None
    values = list(case.values)
    batched = set()
    for i, argument in enumerate(case.arguments):
        if argument.batched:
            value = numpy_value(case, i)
            rows = value.ndim - (
                0 if argument.labels and not is_rows(case, i) else len(argument.axes)
            )
            shape = ((0,) + value.shape[1:rows] if rows else (0,)) + value.shape[rows:]
            values[i] = in_library(case, np.zeros(shape, dtype=value.dtype))
            batched.add(argument.name)
    return values, (ValueError,), batched


def nan_label(case, index, data):
    argument = case.arguments[index]
    if not argument.labels:
        return None
    rows = label_rows(case, index).astype(case.dtype)
    rows.reshape(-1, rows.shape[-1])[-1, 0] = np.nan
    return replace(case, index, in_library(case, rows)), (ValueError,), {argument.name}


def _classes(case: Case, index: int) -> int:
    axis = case.arguments[index].axes[-1]
    for i, a in enumerate(case.arguments):
        if axis in a.axes and not a.labels:
            return numpy_value(case, i).shape[
                len(numpy_value(case, i).shape) - len(a.axes) + a.axes.index(axis)
            ]
    raise AssertionError("no argument gives the number of classes")


def label_rows(case: Case, index: int) -> np.ndarray:
    """The labels as float64 rows, C-contiguous (so that a reshape below is a view, not a copy)."""
    value = numpy_value(case, index)
    rows = (
        value.astype(np.float64) if is_rows(case, index) else np.eye(_classes(case, index))[value]
    )
    return np.array(rows, order="C")  # a copy, writeable


def wrong_sum(case, index, data):
    argument = case.arguments[index]
    if not argument.labels:
        return None
    rows = label_rows(case, index)
    scale = data.draw(st.sampled_from([0.0, 0.5, 2.0, 1 + 1e-4]), label="row scale")
    rows.reshape(-1, rows.shape[-1])[0] *= scale
    return replace(case, index, in_library(case, rows)), (ValueError,), {argument.name}


def out_of_range(case, index, data):
    argument = case.arguments[index]
    if not argument.labels or is_rows(case, index):
        return None
    labels = np.array(numpy_value(case, index), dtype=np.int64)  # a copy, writeable, same shape
    bad = data.draw(st.sampled_from([-1, _classes(case, index), 300, 70000]), label="label")
    labels.flat[0] = bad
    return replace(case, index, in_library(case, labels)), (ValueError,), {argument.name}


def float_labels(case, index, data):
    argument = case.arguments[index]
    if not argument.labels or is_rows(case, index):
        return None
    labels = numpy_value(case, index).astype(np.float64)
    return replace(case, index, in_library(case, labels)), (TypeError,), {argument.name}


def is_array(value) -> bool:
    """An array, not a number: a NumPy scalar (np.float32(0.3)) has a shape but is a number,
    accepted beside any library's arrays as a Python float is."""
    return isinstance(value, np.ndarray) or torch.is_tensor(value)


def other_library(case, index, data):
    arrays = [is_array(v) and not a.scalar for v, a in zip(case.values, case.arguments)]
    if sum(arrays) < 2 or not arrays[index]:  # a scalar (T, l2) is a number from any library
        return None
    value = numpy_value(case, index)
    other = np.array(value) if case.library == "torch" else torch.asarray(value.copy())
    return replace(case, index, other), (TypeError,), {a.name for a in case.arguments}


def zero_size(case, index, data):
    argument = case.arguments[index]
    if argument.labels and not is_rows(case, index) or not argument.axes:
        return None  # no size of its own to empty (elementwise, scalar): see "empty batch"
    value = numpy_value(case, index)
    return (
        replace(case, index, in_library(case, value[..., :0])),
        (ValueError,),
        {a.name for a in case.arguments},
    )


def negative_label(case, index, data):
    """A label row that sums to 1 with a negative entry ([2, -1] for two classes)."""
    argument = case.arguments[index]
    if not argument.labels:
        return None
    rows = label_rows(case, index).astype(case.dtype)
    if rows.shape[-1] < 2:
        return None
    last = rows.reshape(-1, rows.shape[-1])
    last[-1] = 0
    last[-1, :2] = (2, -1)
    return replace(case, index, in_library(case, rows)), (ValueError,), {argument.name}


def unnormalised(case, index, data):
    """Softmax outputs whose rows do not sum to 1 (scaled), or with a negative entry."""
    argument = case.arguments[index]
    if argument.check != "probabilities":
        return None
    rows = numpy_value(case, index).astype(case.dtype).copy()
    if data.draw(st.booleans(), label="negative entry") and rows.shape[-1] >= 2:
        flat = rows.reshape(-1, rows.shape[-1])
        flat[-1] = 0
        flat[-1, :2] = (1.5, -0.5)
    else:
        rows = rows * data.draw(st.sampled_from([0.5, 0.9, 1.01, 3.0]), label="scale")
    return replace(case, index, in_library(case, rows)), (ValueError,), {argument.name}


def outside_unit_interval(case, index, data):
    """A value that must lie in [0, 1] (binary cross-entropy's p or y) outside it, or nan."""
    argument = case.arguments[index]
    if argument.check != "in [0, 1]":
        return None
    values = np.atleast_1d(numpy_value(case, index).astype(case.dtype)).copy()
    values.reshape(-1)[-1] = data.draw(st.sampled_from([-1e-3, 1.001, -5.0, 7.0, np.nan]))
    values = values.reshape(np.shape(numpy_value(case, index)))
    return replace(case, index, in_library(case, values)), (ValueError,), {argument.name}


MUTATIONS = {
    "None": not_numbers("None"),
    "str": not_numbers("str"),
    "dict": not_numbers("dict"),
    "object": not_numbers("object"),
    "bool": booleans,
    "complex": complex_numbers,
    "ragged list": ragged,
    "scalar": scalar,
    "extra axis": extra_axis,
    "other size": other_size,
    "other batch": other_batch,
    "empty batch": empty_batch,
    "nan label": nan_label,
    "wrong-sum label": wrong_sum,
    "label out of range": out_of_range,
    "float class labels": float_labels,
    "mixed libraries": other_library,
    "size 0": zero_size,
    "negative label entry": negative_label,
    "unnormalised softmax output": unnormalised,
    "outside [0, 1]": outside_unit_interval,
}


@pytest.mark.parametrize("name", FUNCTIONS)
@FUZZ
@given(data=st.data())
def test_invalid_inputs_are_refused_by_the_arguments_name(name, data):
    case = draw_case(data, name)
    mutation = data.draw(st.sampled_from(sorted(MUTATIONS)), label="mutation")
    order = data.draw(st.permutations(range(len(case.arguments))), label="arguments to try")
    for index in order:  # the first argument the mutation applies to
        mutated = MUTATIONS[mutation](case, index, data)
        if mutated is not None:
            break
    else:
        TRIED[f"invalid: {mutation}: applies to no argument of this case"] += 1
        return
    values, kinds, names = mutated
    try:
        result = case.function(*values)
    except Exception as raised:
        error = raised
    else:
        raise AssertionError(
            f"{mutation} of {case.arguments[index].name}: no error, got {result!r}"
        )
    TRIED[f"invalid: {mutation}: {type(error).__name__}"] += 1
    assert type(error) in kinds, f"{mutation}: {type(error).__name__}: {error}"
    assert re.match(rf"({'|'.join(names)}): ", str(error)), f"{mutation}: {error}"
    if mutation == "empty batch":
        assert "expected at least one sample" in str(error)


@pytest.fixture(scope="module", autouse=True)
def report_the_cases_tried(request):
    """After the module: how many cases each kind of input got, and what they raised."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or not TRIED:
        return
    calls = sum(
        n
        for key, n in TRIED.items()
        if key.startswith(("valid:", "invalid:")) and not key.endswith("of this case")
    )
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\ntest_fuzz: {calls} calls checked")
        for key, count in sorted(TRIED.items()):
            reporter.write_line(f"  {count:5d}  {key}")


# ------------------------------------------------------------------------- the edges (issue 22)
# Narrow torch label dtypes with every option, options given as arrays, zero probabilities
# under y = 0, probabilities near 0 and 1 in float32, extreme logits with a small temperature.

WITH_OPTIONS = [name for name in FUNCTIONS if BY_NAME[name].options_form is not None]
NARROW = ["int8", "uint8", "int16", "int32", "int64"]


def _option_values(kernel, rng, batch, classes, dtype) -> dict:
    from registry import draw_all

    return draw_all(
        {p.name: p for p in kernel.params}, batch, rng, sizes={"C": classes, "D": 3, "H": 3, "K": 3}
    )


@pytest.mark.parametrize("name", WITH_OPTIONS)
@FUZZ
@given(data=st.data())
def test_narrow_label_dtypes_with_every_option_agree_with_int64_labels(name, data):
    """Labels in a narrow dtype (NumPy or torch) with any options give what int64 labels give:
    an ignore_index the dtype cannot hold (-100 in uint8, 255 in int8) ignores nothing, and an
    invalid label is refused, never taken for the ignored one. The int64 route is checked
    against PyTorch itself in tests/test_cross_entropy_options.py."""
    kernel = BY_NAME[name]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    dtype = data.draw(st.sampled_from(NARROW), label="labels dtype")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    float_dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    classes = data.draw(st.sampled_from([2, 3, 5, 120]), label="C")
    batch = data.draw(st.sampled_from([(1,), (4,), (2, 3)]), label="batch")
    values = _option_values(kernel, rng, batch, classes, float_dtype)
    labels = rng.integers(classes, size=batch)
    ignore = data.draw(
        st.sampled_from([None, -100, -1, 255, 256, 65537, -129, 127, "a label present"]),
        label="ignore_index",
    )
    if ignore == "a label present":
        ignore = int(labels.reshape(-1)[0])
    options = {"ignore_index": ignore}
    names = {o.name for o in kernel.options_form.options}
    if data.draw(st.booleans(), label="weight"):
        options["weight"] = rng.uniform(0.5, 2.0, classes)
    options["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.1]), label="smoothing")
    if "reduction" in names:
        options["reduction"] = data.draw(
            st.sampled_from(["none", "sum", "mean"]), label="reduction"
        )
    invalid = data.draw(st.booleans(), label="an invalid label")
    if invalid and np.iinfo(dtype).min < 0:
        labels.reshape(-1)[-1] = -1
    arguments = [labels if p.one_hot else values[p.name].astype(float_dtype) for p in kernel.params]
    narrow = [a.astype(dtype) if a is labels else a for a in arguments]
    if library == "torch":
        narrow = [torch.from_numpy(a) for a in narrow]
        options = {
            k: torch.from_numpy(v.astype(float_dtype)) if isinstance(v, np.ndarray) else v
            for k, v in options.items()
        }
    wide_options = {
        k: to_numpy(v) if isinstance(v, torch.Tensor) else v for k, v in options.items()
    }
    try:
        expected = getattr(generated, name)(*arguments, **wide_options)
    except ValueError as error:  # a mean over no samples, or the invalid label
        with pytest.raises(ValueError, match=re.escape(str(error).split(",")[0])):
            getattr(generated, name)(*narrow, **options)
        TRIED[f"edges: narrow {dtype} labels with options: refused as int64"] += 1
        return
    got = getattr(generated, name)(*narrow, **options)
    TRIED[f"edges: narrow {dtype} labels with options ({library})"] += 1
    tolerance = 1e-12 if float_dtype == "float64" else 1e-5
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", WITH_OPTIONS)
@FUZZ
@given(data=st.data())
def test_options_given_as_arrays_are_refused_by_the_options_name(name, data):
    kernel = BY_NAME[name]
    option = data.draw(st.sampled_from(sorted(o.name for o in kernel.options_form.options)))
    if option in ("weight",):  # an array is what weight takes
        return
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    value = {
        "label_smoothing": [0.1, 0.2],
        "reduction": ["mean", "sum"],
        "ignore_index": [1, 2],
    }[option]
    array = np.array(value)
    if library == "torch" and array.dtype.kind != "U":
        array = torch.asarray(array)
    values = _option_values(kernel, np.random.default_rng(0), (2,), 3, "float64")
    arguments = [np.array([0, 1]) if p.one_hot else values[p.name] for p in kernel.params]
    with pytest.raises((TypeError, ValueError), match=rf"^{option}: "):
        getattr(generated, name)(*arguments, **{option: array})
    TRIED[f"edges: {option} given as an array: refused"] += 1


def _rows_with_zero_probabilities(data) -> tuple:
    """Probability rows with zeros (about 40%), and label rows that are 0 wherever s is 0 (and
    elsewhere drawn), both summing to 1: (rng, batch, C, dtype, library, s, y)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    classes = data.draw(st.integers(2, 6), label="C")
    batch = data.draw(st.sampled_from([(1,), (4,), (2, 3)]), label="batch")
    dtype = data.draw(st.sampled_from(["float32", "float64"]), label="dtype")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    s = rng.uniform(0.0, 1.0, (*batch, classes))
    s[rng.random(s.shape) < 0.4] = 0.0  # zeros, some where y is 0 too
    s[..., 0] += 0.1  # every row has a positive entry
    s /= s.sum(axis=-1, keepdims=True)
    y = np.where(s > 0, rng.uniform(0.0, 1.0, s.shape), 0.0)
    y /= y.sum(axis=-1, keepdims=True)
    return rng, batch, classes, dtype, library, s.astype(dtype), y.astype(dtype)


@FUZZ
@given(data=st.data())
def test_zero_probabilities_under_a_zero_target_add_nothing(data):
    rng, batch, classes, dtype, library, s, y = _rows_with_zero_probabilities(data)
    expected = -np.sum(np.where(y > 0, y * np.log(np.where(y > 0, s, 1.0)), 0.0), axis=-1)
    arguments = (s, y) if library == "numpy" else (torch.from_numpy(s), torch.from_numpy(y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(generated.cross_entropy(*arguments))
    TRIED[f"edges: zero probabilities under y = 0 ({library} {dtype})"] += 1
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


# Every function of probability rows and label rows (the loss, its gradient, and any added later)
PROBABILITIES_AND_TARGETS = [
    name
    for name in FUNCTIONS
    if any(p.domain == "probability" and p.axes for p in BY_NAME[name].params)
    and any(p.one_hot for p in BY_NAME[name].params)
]


@pytest.mark.parametrize("name", PROBABILITIES_AND_TARGETS)
@FUZZ
@given(data=st.data())
def test_a_zero_probability_under_a_zero_target_gives_the_limit(name, data):
    """Zeros in s where y is 0 as well: finite, no warning, and the value as s_t → 0 there (s_t
    the dtype's smallest normal number instead, where 0 · log s_t is 0 and −y_t/s_t is 0 too)."""
    kernel = BY_NAME[name]
    rng, batch, classes, dtype, library, s, y = _rows_with_zero_probabilities(data)
    near = np.where(s == 0, np.finfo(dtype).smallest_normal, s).astype(dtype)
    values = _option_values(kernel, rng, batch, classes, dtype)

    def arguments(probabilities) -> list:
        chosen = [
            probabilities if p.domain == "probability" else y if p.one_hot else values[p.name]
            for p in kernel.params
        ]
        chosen = [np.asarray(a, dtype=dtype) for a in chosen]
        return chosen if library == "numpy" else [torch.from_numpy(a) for a in chosen]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(getattr(generated, name)(*arguments(s)))
        limit = to_numpy(getattr(generated, name)(*arguments(near)))
    TRIED[f"edges: zero probabilities under y = 0, {name} ({library} {dtype})"] += 1
    assert np.all(np.isfinite(got)), got
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got, limit, rtol=tolerance, atol=tolerance)


@FUZZ
@given(data=st.data())
def test_binary_cross_entropy_near_zero_and_one_in_float32(data):
    """p within a few ulps of 0 or 1 in float32 (tiny, or 1 − tiny): within 4 ulps of the loss
    computed in long double from the same float32 numbers."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    size = data.draw(st.integers(1, 8), label="size")
    tiny = 10.0 ** rng.uniform(-38, -1, size)
    near_one = data.draw(st.booleans(), label="near 1")
    p = (1 - tiny if near_one else tiny).astype(np.float32)
    p = np.clip(p, np.float32(1e-38), np.nextafter(np.float32(1), np.float32(0)))
    y = data.draw(st.sampled_from(["0", "1", "any"]), label="y")
    y = {"0": np.zeros(size), "1": np.ones(size), "any": rng.uniform(0, 1, size)}[y].astype(
        np.float32
    )
    P, Y = p.astype(np.longdouble), y.astype(np.longdouble)
    exact = -(Y * np.log(P) + (1 - Y) * np.log1p(-P))
    got = generated.binary_cross_entropy(p, y)
    TRIED[f"edges: binary cross-entropy, p near {1 if near_one else 0} in float32"] += 1
    unit = np.spacing(np.abs(exact).astype(np.float32)).astype(np.longdouble)
    # p ≈ 1 with y < 1: −(1 − y) log1p(−p) of a p that rounds to 1 − 2⁻²⁴ is what float32 can give
    assert np.all(np.abs(got.astype(np.longdouble) - exact) <= 4 * unit + 1e-45), (p, y, got, exact)


@FUZZ
@given(data=st.data())
def test_softmax_temperature_of_extreme_logits_and_small_temperatures(data):
    """Finite, in [0, 1], summing to 1, and ordered like the logits, for any finite logits and
    any temperature down to the smallest subnormal float64 (which rounds to 0 in float16 and
    float32)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    dtype = data.draw(st.sampled_from(["float16", "float32", "float64"]), label="dtype")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    classes = data.draw(st.integers(1, 6), label="C")
    big = float(np.finfo(dtype).max)
    scale = big * data.draw(st.sampled_from([1e-300, 1e-30, 1e-3, 0.5, 1.0]), label="scale")
    z = np.clip(rng.uniform(-1, 1, (3, classes)) * scale, -big, big).astype(dtype)
    T = data.draw(st.sampled_from([5e-324, 1e-309, 1e-30, 1e-3, 0.5, 1.0, 1e30]), label="T")
    logits = z if library == "numpy" else torch.from_numpy(z)
    with warnings.catch_warnings():  # a T that rounds to 0 divided by it: no warning either
        warnings.simplefilter("error")
        got = to_numpy(generated.softmax_temperature(logits, T)).astype(np.float64)
    TRIED[f"edges: softmax_temperature, extreme logits ({library} {dtype})"] += 1
    assert np.all(np.isfinite(got)) and np.all((got >= 0) & (got <= 1))
    np.testing.assert_allclose(got.sum(axis=-1), 1, rtol=0, atol=4 * classes * np.finfo(dtype).eps)
    order = np.argsort(z, axis=-1, kind="stable")
    assert np.all(np.diff(np.take_along_axis(got, order, axis=-1), axis=-1) >= 0)


@FUZZ
@given(data=st.data())
def test_layer_norm_of_a_constant_vector_beside_any_eps(data):
    """A constant vector of any finite value, any ε down to the smallest float64: x̂ = 0 with no
    warning, and, where 1/√ε is finite in the dtype, the Jacobian (I − 1/K)/√ε and the VJP
    (g − mean g)/√ε (σ = √ε exactly). Near the largest number with a tiny ε, σ/s rounded to 0
    and x̂ was 0/0. (A property of normalisation, not of every function the registry holds.)"""
    dtype = data.draw(st.sampled_from(["float16", "float32", "float64"]), label="dtype")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    # any K: for K not a power of two the computed mean of K equal numbers can be an ulp away
    # from them, and with ε below that ulp squared x̂ was ±1 (layer_norm(np.full(3, 0.1),
    # 1e-40) was −1) until the code centred twice (the corrected two-pass mean)
    size = data.draw(st.integers(1, 40) | st.sampled_from([768, 1000]), label="K")
    batch = data.draw(st.sampled_from([(), (1,), (3,)]), label="batch")
    big = float(np.finfo(dtype).max)
    value = data.draw(
        st.sampled_from([big, -big, big / 3, 1.0, 0.0, float(np.finfo(dtype).smallest_subnormal)]),
        label="value",
    )
    eps = data.draw(st.sampled_from([5e-324, 1e-300, 1e-40, 1e-32, 1e-15, 1e-8, 1e-5]), label="eps")
    x = np.full((*batch, size), value, dtype=dtype)
    g = np.random.default_rng(size).uniform(-1, 1, x.shape).astype(dtype)
    xa, ga = (x, g) if library == "numpy" else (torch.from_numpy(x), torch.from_numpy(g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(generated.layer_norm(xa, eps))
    np.testing.assert_array_equal(got, np.zeros(x.shape))
    TRIED[f"edges: layer_norm of a constant vector ({library} {dtype})"] += 1
    sigma = eps**0.5
    if 1 / sigma >= big / 4:  # the Jacobian's entries overflow the dtype: its true value
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jacobian = to_numpy(generated.layer_norm_jacobian(xa, eps)).astype(np.float64)
        vjp = to_numpy(generated.layer_norm_vjp(xa, eps, ga)).astype(np.float64)
    unit = float(np.finfo(dtype).eps) / sigma
    expected = np.broadcast_to((np.eye(size) - 1 / size) / sigma, jacobian.shape)
    np.testing.assert_allclose(jacobian, expected, rtol=0, atol=4 * unit)
    wide = g.astype(np.float64)
    expected_vjp = (wide - wide.mean(axis=-1, keepdims=True)) / sigma
    np.testing.assert_allclose(vjp, expected_vjp, rtol=0, atol=8 * size * unit)
    TRIED[f"edges: layer_norm Jacobian and VJP of a constant vector ({library} {dtype})"] += 1


@FUZZ
@given(data=st.data())
def test_layer_norm_of_one_entry_an_ulp_off_a_constant_vector(data):
    """A constant vector with one entry moved by an ulp: x̂ is that ulp's δ spread as
    δ(K − 1)/K and −δ/K over σ = √(δ²(K − 1)/K² + ε), exact in long double from δ alone.
    In float16 the square of an ulp of x/s is below the smallest normal number, and the
    variance underflowed (K = 32 gave 15.5 where 5.57 is right) until float16 was computed
    in float32. Compared norm-wise, against the largest |x̂|, within 16 + K ulps."""
    dtype = data.draw(st.sampled_from(["float16", "float32", "float64"]), label="dtype")
    library = data.draw(st.sampled_from(["numpy", "torch"]), label="library")
    size = data.draw(st.integers(2, 40) | st.sampled_from([768, 1000]), label="K")
    big = float(np.finfo(dtype).max)
    value = data.draw(st.sampled_from([1.0, 0.1, -3.0, 1000.0, big / 3, -big]), label="value")
    eps = data.draw(st.sampled_from([1e-40, 1e-12, 1e-5, 1e-2]), label="eps")
    x = np.full(size, value, dtype=dtype)
    moved = data.draw(st.integers(0, size - 1), label="moved")
    x[moved] = np.nextafter(x[moved], np.array(0, dtype=dtype))  # toward 0: finite
    delta = np.longdouble(x[moved]) - np.longdouble(x[0 if moved else 1])
    centred = np.full(size, -delta / size)
    centred[moved] = delta * (size - 1) / size
    expected = centred / np.sqrt(delta**2 * (size - 1) / size**2 + np.longdouble(eps))
    xa = x if library == "numpy" else torch.from_numpy(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(generated.layer_norm(xa, eps)).astype(np.longdouble)
    TRIED[f"edges: layer_norm of one entry an ulp off a constant vector ({library} {dtype})"] += 1
    # a sum of K squares is good to about K roundings (PyTorch's own sums reach 43 ulps at
    # K = 768, NumPy's pairwise ones 3): the float16 error this caught was 10⁴ ulps
    scale = np.max(np.abs(expected))
    ulps = 16 + size
    tolerance = ulps * np.finfo(dtype).eps * scale + 4 * np.finfo(dtype).smallest_subnormal
    assert np.max(np.abs(got - expected)) <= tolerance, (got[:3], expected[:3])
