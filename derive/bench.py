"""Benchmarks: ``python -m derive.bench [--quick] [--output FILE]``.

Every ratio is measured side by side in one process: the contenders of a row
are timed in turn, repeatedly, and each gets the median of its repeats.
Prints a table and writes JSON (machine, versions, times, ratios) that the
site's benchmark page renders.

Rows:
- the posts' loop algorithms (re-written here from their description: nested
  loops filling the class-major matrices) against the generated functions;
- the checks' cost per call: a few public functions against their unchecked
  cores ``_name`` on the same arrays, at the posts' size (C = 5) and 256 x 10,
  float64 and float32 (measured with the posts' rows);
- one training-step gradient for a batch: generated ``weight_grad`` (and the
  from-logits path) against hand-written NumPy, PyTorch autograd, and the
  floor: the two matrix products alone;
- the same step with integer class labels: generated ``weight_grad`` against
  the best hand-written NumPy (softmax in place, ``P[arange(B), labels] -= 1``),
  the floor, PyTorch autograd and JAX ``jit(grad)`` (when JAX is installed);
  contenders in a shuffled order, with the fastest and slowest repeat kept;
- second order: ``weight_hvp`` against PyTorch's double backward (and JAX's
  jvp of grad) and its matrix-product floor, ``weight_hessian`` against
  ``torch.func.hessian`` (and ``jax.hessian``), ``newton_step`` at Iris size;
- the two-layer ReLU network's training-step gradient with integer labels:
  generated ``mlp_grads`` against the best hand-written NumPy, PyTorch autograd
  (forward and backward) and the floor (its five matrix products alone); and
  one epoch of ``python -m derive.train``'s digits network, generated against
  PyTorch;
- layer normalisation's generated VJP against PyTorch's backward (the graph of one
  forward kept, and forward and backward together: the VJP takes x, not saved
  statistics) at (256, 768), and against forming the Jacobian and contracting it with
  g, across K;
- ``python -m derive build``, cold and no-op.

``--only two_layer`` (say) measures some parts alone, into a report that is not
committed.
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads otherwise spin for a while after each call and slow
# down whichever contender is timed next; set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from derive import edit_loop, locations, needs

with needs.imports_of("python -m derive.bench", __name__ == "__main__"):
    import numpy as np

    from derive import generated, provenance
    from derive.figures import BENCHMARK_RESULTS, REFERENCE_RATIOS

ROOT = locations.CODE

TARGETS = {"generated / numpy": 1.05, "generated / torch": 1.0, "generated / floor": 1.3}
# Against JAX's jit (when JAX is installed): issue 20's targets at the large step, every size.
JAX_TARGETS = {"generated / jax": 0.95}


# -- timing ------------------------------------------------------------------------------


def measure(
    contenders: dict[str, Callable[[], object]], repeats: int, budget: float
) -> dict[str, float]:
    """Median seconds per call of each contender, timed in turn, ``repeats`` times.

    Each contender runs ``number`` calls per repeat, chosen so that one repeat
    takes about ``budget`` seconds (at least one call).
    """
    numbers = {}
    for name, f in contenders.items():
        f()  # warm up: imports, caches, first allocation
        start = time.perf_counter()
        f()
        once = max(time.perf_counter() - start, 1e-7)
        numbers[name] = max(1, int(budget / once))
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        for name in running_order(names, repeat):
            samples[name].append(
                timeit.timeit(contenders[name], number=numbers[name]) / numbers[name]
            )
    measure.spread = {name: [min(times), max(times)] for name, times in samples.items()}
    return {name: statistics.median(times) for name, times in samples.items()}


measure.spread = {}  # the fastest and slowest repeat of each contender in the last call


def running_order(names: list[str], repeat: int) -> list[str]:
    """The order of the contenders in one repeat: a shuffle seeded by the repeat's number.

    A rotation (``names[r:] + names[:r]``) keeps every contender behind the same
    one in all but one place, so the first to time would always follow the last
    (NumPy after JAX's or PyTorch's threads, which keep spinning for a while after
    their call returns). Shuffled, each follows each other in some repeats;
    seeded, a rerun times in the same order.
    """
    order = list(names)
    random.Random(repeat).shuffle(order)
    return order


def timed_row(sizes: dict, dtype, times: dict, ratios: dict, targets: dict) -> dict:
    """A report row: its sizes and dtype, each contender's median and spread (of the
    ``measure`` just run), the ratios, and whether each one with a target meets it."""
    return {
        **sizes,
        "dtype": np.dtype(dtype).name,
        "seconds": times,
        "spread": dict(measure.spread),
        "ratios": ratios,
        "targets_met": {k: v <= targets[k] for k, v in ratios.items() if k in targets},
    }


# -- the posts' algorithms, written afresh from the posts ------------------------------------


def posts_sm_dir(S):
    """Part 1/2: diag(S) minus the tiled outer product."""
    S_vector = S.reshape(S.shape[0], 1)
    S_matrix = np.tile(S_vector, S.shape[0])
    return np.diag(S) - (S_matrix * np.transpose(S_matrix))


def posts_z_dir(x, W):
    """Part 2: DZ[i*D + j, k] = x_j if i == k, a (C*D, C) matrix filled by loops."""
    D, C = W.shape
    dz = np.zeros((C * D, C))
    for k in range(C):
        for i in range(C):
            for j in range(D):
                if i == k:
                    dz[i * D + j, k] = x[j]
    return dz


def posts_l_dir_shortcut(W, S, x):
    """Part 2: DL[(i*D)+j, t] = S_t (δ_it − S_i) x_j by loops."""
    D, C = W.shape
    dir_matrix = np.zeros((D * C, C))
    for t in range(C):
        for i in range(C):
            for j in range(D):
                dir_matrix[(i * D) + j][t] = S[t] * ((i == t) - S[i]) * x[j]
    return dir_matrix


def posts_xe_dir_shortcut(W, S, x, y):
    """Part 3: the class-major gradient vector by loops."""
    D, C = W.shape
    dir_matrix = np.zeros(D * C)
    for i in range(C):
        for j in range(D):
            dir_matrix[(i * D) + j] = (S[i] - y[i]) * x[j]
    return dir_matrix


def posts_softmax(Z):
    """Parts 2-3: ``softmax(Z)``, e^Z over its sum (no shift by the maximum)."""
    eZ = np.exp(Z)
    return eZ / np.sum(eZ)


POSTS_CODE = {  # the posts' names in the rows' code -> their functions above
    "sm_dir": posts_sm_dir,
    "z_dir": posts_z_dir,
    "l_dir_shortcut": posts_l_dir_shortcut,
    "xe_dir_shortcut": posts_xe_dir_shortcut,
    "softmax": posts_softmax,
}
# Where the generated function computes the logits and the softmax from x and W, the posts'
# side does too, as Part 2 does: Z = np.dot(np.transpose(W), x); h = softmax(Z).
POSTS_H = "softmax(np.dot(np.transpose(W), x))"
POSTS_ROWS = (  # (what, the posts' code, the generated code): each row times exactly these
    ("softmax Jacobian", "sm_dir(S)", "softmax_jacobian(S)"),
    ("summation Jacobian DZ", "z_dir(x, W)", "summation_jacobian(x, W)"),
    ("layer Jacobian", f"l_dir_shortcut(W, {POSTS_H}, x)", "layer_jacobian(x, W)"),
    (
        "layer Jacobian",
        f"np.dot(sm_dir({POSTS_H}), np.transpose(z_dir(x, W)))",
        "layer_jacobian(x, W)",
    ),
    ("weight gradient", f"xe_dir_shortcut(W, {POSTS_H}, x, y)", "weight_grad(x, W, y)"),
)


def posts_inputs(n_inputs: int, n_classes: int) -> dict:
    """x, W, a one-hot y, and S = softmax(Wᵀx), the names the rows' code uses."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=n_inputs)
    W = rng.normal(scale=0.1, size=(n_inputs, n_classes))
    return {"x": x, "W": W, "y": np.eye(n_classes)[1], "S": generated.softmax(W.T @ x)}


def posts_call(code: str, inputs: dict) -> Callable[[], object]:
    """A row's code (the posts' or the generated), as a function of no arguments to time."""
    names = {"np": np, **POSTS_CODE, **{n: getattr(generated, n) for n in generated.__all__}}
    return eval(f"lambda: {code}", {**names, **inputs})  # POSTS_ROWS' own strings


def posts_rows(n_inputs: int, n_classes: int, repeats: int, budget: float) -> list[dict]:
    inputs = posts_inputs(n_inputs, n_classes)
    results = []
    for what, theirs, ours in POSTS_ROWS:
        times = measure(
            {"posts": posts_call(theirs, inputs), "generated": posts_call(ours, inputs)},
            repeats,
            budget,
        )
        results.append(
            {
                "size": f"D={n_inputs}, C={n_classes}",
                "what": what,
                "baseline": theirs,
                "generated": ours,
                "baseline_seconds": times["posts"],
                "generated_seconds": times["generated"],
                "speedup": times["posts"] / times["generated"],
                "spread": dict(measure.spread),
            }
        )
    return results


# -- the cost of the checks: each public function against its unchecked core -----------------


def overhead_cases(dtype, sizes: str) -> list[tuple[str, Callable, tuple]]:
    """(name, public function, arguments) at the posts' size (one sample, D = 3, C = 5) or a
    batch of 256 x 10 (D = 10: the checks do not read x's values, so D only slows the core)."""
    rng = np.random.default_rng(0)
    x_shape, classes = ((3,), 5) if sizes == "C=5" else ((256, 10), 10)
    batch = x_shape[:-1]
    x = rng.normal(size=x_shape).astype(dtype)
    W = rng.normal(scale=0.1, size=(x_shape[-1], classes)).astype(dtype)
    labels = rng.integers(classes, size=batch)
    y = np.eye(classes, dtype=dtype)[labels]
    z = rng.normal(size=(*batch, classes)).astype(dtype)
    s = generated.softmax(z)
    return [
        ("softmax", generated.softmax, (z,)),
        ("softmax_jacobian", generated.softmax_jacobian, (s,)),
        ("weight_grad", generated.weight_grad, (x, W, y)),
        ("cross_entropy_from_logits_grad", generated.cross_entropy_from_logits_grad, (z, y)),
    ]


def _core(function: Callable) -> Callable:
    """The unchecked core ``_name(xp, ...)`` of a generated function, as the function calls it."""
    from derive._runtime import FAST_NUMPY

    core = getattr(sys.modules[function.__module__], f"_{function.__name__}")
    return lambda *arguments: core(FAST_NUMPY, *arguments)


def overhead_rows(repeats: int, budget: float, smoke: bool = False) -> list[dict]:
    """Per-call overhead = (public function − its core ``_name``), medians side by side.

    Both get the same NumPy arrays (already of one float dtype, as the checks
    would leave them), timed in turn in a shuffled order by `measure`; the
    overhead is the difference of the medians, and the ratio public / core;
    also the difference of the fastest repeats, which a shared machine
    disturbs least.
    The arrays' shapes have been seen before (the first call is the warm-up),
    so the public function takes its remembered checks.
    """
    rows = []
    for sizes in ["C=5"] if smoke else ["C=5", "(256, 10)"]:
        for dtype in (np.float64, np.float32):
            for name, function, arguments in overhead_cases(dtype, sizes):
                core = _core(function)
                times = measure(
                    {
                        "public": lambda f=function, a=arguments: f(*a),
                        "core": lambda f=core, a=arguments: f(*a),
                    },
                    repeats,
                    budget,
                )
                rows.append(
                    {
                        "size": sizes,
                        "dtype": np.dtype(dtype).name,
                        "function": name,
                        "seconds": times,
                        "spread": dict(measure.spread),
                        "overhead_seconds": times["public"] - times["core"],
                        "public / core": times["public"] / times["core"],
                        # on a shared machine the fastest repeats are the least disturbed
                        "overhead_fastest_seconds": measure.spread["public"][0]
                        - measure.spread["core"][0],
                    }
                )
    return rows


# -- one training step ------------------------------------------------------------------------


def training_step_row(
    batch: int, n_inputs: int, n_classes: int, dtype, repeats: int, budget: float
) -> dict:
    import torch

    rng = np.random.default_rng(1)
    X = rng.normal(size=(batch, n_inputs)).astype(dtype)
    W = (rng.normal(size=(n_inputs, n_classes)) * 0.05).astype(dtype)
    labels = rng.integers(n_classes, size=batch)
    Y = np.eye(n_classes, dtype=dtype)[labels]
    G = rng.normal(size=(batch, n_classes)).astype(dtype)  # stands for S - Y

    def numpy_by_hand():
        z = X @ W
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return X.T @ (e / e.sum(axis=1, keepdims=True) - Y) / batch

    def from_logits():
        return X.T @ generated.cross_entropy_from_logits_grad(X @ W, Y) / batch

    def floor():
        X @ W
        return X.T @ G

    tX, tlabels = torch.from_numpy(X), torch.from_numpy(labels)
    tW = torch.from_numpy(W.copy()).requires_grad_(True)

    def torch_autograd():
        tW.grad = None
        torch.nn.functional.cross_entropy(tX @ tW, tlabels).backward()
        return tW.grad

    np.testing.assert_allclose(
        generated.weight_grad(X, W, Y), numpy_by_hand(), rtol=1e-3, atol=1e-5
    )
    np.testing.assert_allclose(
        generated.weight_grad(X, W, Y), torch_autograd().numpy(), rtol=1e-3, atol=1e-5
    )
    contenders = {
        "generated": lambda: generated.weight_grad(X, W, Y),
        "from_logits": from_logits,
        "numpy": numpy_by_hand,
        "torch": torch_autograd,
        "floor": floor,
    }
    jax, loss = _jax_loss(dtype, one_hot=True)
    if jax is not None:  # the same one-hot step under jax.jit(jax.grad)
        jX, jW, jY = (jax.numpy.asarray(a) for a in (X, W, Y))
        step = jax.jit(jax.grad(loss))
        assert step(jW, jX, jY).dtype == jW.dtype
        contenders["jax"] = lambda: step(jW, jX, jY).block_until_ready()
        np.testing.assert_allclose(
            np.asarray(contenders["jax"]()), numpy_by_hand(), rtol=1e-3, atol=1e-5
        )
    times = measure(contenders, repeats, budget)
    ratios = {
        "generated / numpy": times["generated"] / times["numpy"],
        "generated / torch": times["generated"] / times["torch"],
        "generated / floor": times["generated"] / times["floor"],
        "from_logits / numpy": times["from_logits"] / times["numpy"],
    }
    if "jax" in times:  # and what the matrix products alone take beside JAX's whole step
        ratios["generated / jax"] = times["generated"] / times["jax"]
        ratios["floor / jax"] = times["floor"] / times["jax"]
    # the page lists TARGETS for every row; the JAX ratio (no JAX, no ratio) is in the table
    return timed_row({"B": batch, "D": n_inputs, "C": n_classes}, dtype, times, ratios, TARGETS)


LABEL_TARGETS = {
    "labels: generated / hand": 1.05,
    "labels: generated / floor": 1.3,
    "labels: generated / jax": 0.95,  # issue 20, when JAX is installed
}


def numpy_labels_by_hand(X, W, labels):
    """The best hand-written NumPy step with class labels: softmax in place, 1 subtracted at the labels."""
    P = X @ W
    P -= P.max(axis=1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(labels)), labels] -= 1
    P /= len(labels)
    return X.T @ P


def training_step_labels_row(
    batch: int, n_inputs: int, n_classes: int, dtype, repeats: int, budget: float
) -> dict:
    """The step with integer class labels: generated, hand-written NumPy, floor, PyTorch, JAX."""
    import torch

    rng = np.random.default_rng(1)
    X = rng.normal(size=(batch, n_inputs)).astype(dtype)
    W = (rng.normal(size=(n_inputs, n_classes)) * 0.05).astype(dtype)
    labels = rng.integers(n_classes, size=batch)
    G = rng.normal(size=(batch, n_classes)).astype(dtype)  # stands for S - Y

    def floor():
        X @ W
        return X.T @ G

    tX, tlabels = torch.from_numpy(X), torch.from_numpy(labels)
    tW = torch.from_numpy(W.copy()).requires_grad_(True)

    def torch_autograd():
        tW.grad = None
        torch.nn.functional.cross_entropy(tX @ tW, tlabels).backward()
        return tW.grad

    from derive._runtime import FAST_NUMPY

    unchecked = sys.modules[generated.weight_grad.__module__]._weight_grad_labels
    contenders = {
        "generated": lambda: generated.weight_grad(X, W, labels),
        # the same core, without the argument checks: what the checks cost
        "generated, no checks": lambda: unchecked(FAST_NUMPY, X, W, labels),
        "hand": lambda: numpy_labels_by_hand(X, W, labels),
        "floor": floor,
        "torch": torch_autograd,
    }
    expected = numpy_labels_by_hand(X, W, labels)
    tolerance = (
        {"rtol": 1e-3, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    )
    np.testing.assert_allclose(generated.weight_grad(X, W, labels), expected, **tolerance)
    np.testing.assert_allclose(torch_autograd().numpy(), expected, rtol=1e-3, atol=1e-5)
    jax, loss = _jax_loss(dtype)
    if jax is not None:
        jX, jW, jlabels = (jax.numpy.asarray(a) for a in (X, W, labels))
        step = jax.jit(jax.grad(loss))
        assert step(jW, jX, jlabels).dtype == jW.dtype
        contenders["jax"] = lambda: step(jW, jX, jlabels).block_until_ready()
        np.testing.assert_allclose(np.asarray(contenders["jax"]()), expected, rtol=1e-3, atol=1e-5)
    times = measure(contenders, repeats, budget)
    spread = dict(measure.spread)
    ratios = {
        "labels: generated / hand": times["generated"] / times["hand"],
        "labels: generated / floor": times["generated"] / times["floor"],
        "labels: hand / floor": times["hand"] / times["floor"],
        "labels: generated, no checks / hand": times["generated, no checks"] / times["hand"],
        "labels: generated / torch": times["generated"] / times["torch"],
    }
    if "jax" in times:
        ratios["labels: generated / jax"] = times["generated"] / times["jax"]
        ratios["labels: floor / jax"] = times["floor"] / times["jax"]
    return {
        "B": batch,
        "D": n_inputs,
        "C": n_classes,
        "dtype": np.dtype(dtype).name,
        "seconds": times,
        "spread": spread,
        "ratios": ratios,
        "targets_met": {k: ratios[k] <= v for k, v in LABEL_TARGETS.items() if k in ratios},
    }


# -- second order ------------------------------------------------------------------------------

SECOND_ORDER_TARGETS = {
    "hvp: generated / torch": 0.5,  # PyTorch's double backward
    "hvp: generated / floor": 1.3,  # the matrix products an HVP cannot avoid
    "hessian: generated / torch": 0.1,  # torch.func.hessian: at least 10 times faster
    "newton: generated / torch": 1.0,  # torch.func.hessian + torch.linalg.solve
    "newton: generated / jax": 1.0,  # the same under jax.jit (issue 20), when JAX is installed
}


def _second_order_data(batch: int, n_inputs: int, n_classes: int, dtype):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(batch, n_inputs)).astype(dtype)
    W = (rng.normal(size=(n_inputs, n_classes)) * 0.05).astype(dtype)
    V = rng.normal(size=(n_inputs, n_classes)).astype(dtype)
    labels = rng.integers(n_classes, size=batch)
    return X, W, V, labels


def _jax_loss(dtype, one_hot: bool = False):
    """The mean cross-entropy in JAX (of class labels, or of one-hot rows), or None when JAX is
    not installed."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None, None
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)

    def loss(weights, inputs, targets):
        log_p = jax.nn.log_softmax(inputs @ weights, axis=-1)
        if one_hot:
            return -jnp.mean(jnp.sum(targets * log_p, axis=-1))
        return -jnp.mean(jnp.take_along_axis(log_p, targets[:, None], axis=-1))

    return jax, loss


def _second_order_row(what, shape, dtype, contenders, expected, ratios, repeats, budget) -> dict:
    tolerance = (
        {"rtol": 1e-3, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-8, "atol": 1e-11}
    )
    for name, f in contenders.items():
        if name != "floor":  # every contender computes the same numbers
            np.testing.assert_allclose(np.asarray(f()), expected, **tolerance, err_msg=name)
    times = measure(contenders, repeats, budget)
    found = {k: times[a] / times[b] for k, (a, b) in ratios.items() if a in times and b in times}
    sizes = {"what": what, "B": shape[0], "D": shape[1], "C": shape[2]}
    return timed_row(sizes, dtype, times, found, SECOND_ORDER_TARGETS)


def hvp_row(batch: int, n_inputs: int, n_classes: int, dtype, repeats: int, budget: float) -> dict:
    """weight_hvp against PyTorch's double backward, JAX's jvp of grad, and its floor."""
    import torch

    X, W, V, labels = _second_order_data(batch, n_inputs, n_classes, dtype)
    Y = np.eye(n_classes, dtype=dtype)[labels]
    G = np.random.default_rng(3).normal(size=(batch, n_classes)).astype(dtype)
    tX, tV, tlabels = torch.from_numpy(X), torch.from_numpy(V), torch.from_numpy(labels)
    tW = torch.from_numpy(W.copy()).requires_grad_(True)

    def floor():  # the forward logits, U = X V, and Xᵀ times a B x C array
        X @ W
        X @ V
        return X.T @ G

    def torch_double_backward():
        (g,) = torch.autograd.grad(
            torch.nn.functional.cross_entropy(tX @ tW, tlabels), tW, create_graph=True
        )
        (hv,) = torch.autograd.grad((g * tV).sum(), tW)
        return hv

    contenders = {
        "generated": lambda: generated.weight_hvp(X, W, V),
        "torch": torch_double_backward,
        "floor": floor,
    }
    jax, loss = _jax_loss(dtype)
    if jax is not None:
        jX, jW, jV, jlabels = (jax.numpy.asarray(a) for a in (X, W, V, labels))
        hvp = jax.jit(lambda w, v: jax.jvp(lambda u: jax.grad(loss)(u, jX, jlabels), (w,), (v,))[1])
        contenders["jax"] = lambda: hvp(jW, jV).block_until_ready()
    assert np.allclose(generated.weight_grad(X, W, Y), generated.weight_grad(X, W, labels))
    return _second_order_row(
        "weight_hvp",
        (batch, n_inputs, n_classes),
        dtype,
        contenders,
        generated.weight_hvp(X, W, V),
        {
            "hvp: generated / torch": ("generated", "torch"),
            "hvp: generated / floor": ("generated", "floor"),
            "hvp: generated / jax": ("generated", "jax"),
        },
        repeats,
        budget,
    )


def hessian_row(
    batch: int, n_inputs: int, n_classes: int, dtype, repeats: int, budget: float
) -> dict:
    """weight_hessian against torch.func.hessian (and jax.hessian) of the mean loss."""
    import torch

    X, W, _, labels = _second_order_data(batch, n_inputs, n_classes, dtype)
    tX, tW, tlabels = torch.from_numpy(X), torch.from_numpy(W), torch.from_numpy(labels)
    hessian = torch.func.hessian(lambda w: torch.nn.functional.cross_entropy(tX @ w, tlabels))
    contenders = {
        "generated": lambda: generated.weight_hessian(X, W),
        "torch": lambda: hessian(tW),
    }
    jax, loss = _jax_loss(dtype)
    if jax is not None:
        jX, jW, jlabels = (jax.numpy.asarray(a) for a in (X, W, labels))
        jhessian = jax.jit(lambda w: jax.hessian(loss)(w, jX, jlabels))
        contenders["jax"] = lambda: jhessian(jW).block_until_ready()
    return _second_order_row(
        "weight_hessian",
        (batch, n_inputs, n_classes),
        dtype,
        contenders,
        generated.weight_hessian(X, W),
        {
            "hessian: generated / torch": ("generated", "torch"),
            "hessian: generated / jax": ("generated", "jax"),
        },
        repeats,
        budget,
    )


def newton_row(
    batch: int, n_inputs: int, n_classes: int, dtype, repeats: int, budget: float
) -> dict:
    """newton_step against torch.func.hessian + torch.linalg.solve (and the same in JAX, jit)."""
    import torch

    X, W, _, labels = _second_order_data(batch, n_inputs, n_classes, dtype)
    Y = np.eye(n_classes, dtype=dtype)[labels]
    l2, n = 1e-2, n_inputs * n_classes
    tX, tW, tlabels = torch.from_numpy(X), torch.from_numpy(W), torch.from_numpy(labels)

    def penalized(w):
        return torch.nn.functional.cross_entropy(tX @ w, tlabels) + l2 / 2 * (w**2).sum()

    torch_hessian, torch_grad = torch.func.hessian(penalized), torch.func.grad(penalized)

    def torch_newton():
        step = torch.linalg.solve(torch_hessian(tW).reshape(n, n), torch_grad(tW).reshape(n))
        return -step.reshape(W.shape)

    contenders = {
        "generated": lambda: generated.newton_step(X, W, Y, l2),
        "torch": torch_newton,
    }
    jax, loss = _jax_loss(dtype)
    if jax is not None:
        jnp = jax.numpy
        jX, jW, jlabels = (jnp.asarray(a) for a in (X, W, labels))

        def jax_penalized(w):
            return loss(w, jX, jlabels) + l2 / 2 * jnp.sum(w**2)

        @jax.jit
        def jax_newton(w):
            hessian = jax.hessian(jax_penalized)(w).reshape(n, n)
            return -jnp.linalg.solve(hessian, jax.grad(jax_penalized)(w).reshape(n)).reshape(
                w.shape
            )

        contenders["jax"] = lambda: jax_newton(jW).block_until_ready()
    return _second_order_row(
        "newton_step",
        (batch, n_inputs, n_classes),
        dtype,
        contenders,
        generated.newton_step(X, W, Y, l2),
        {
            "newton: generated / torch": ("generated", "torch"),
            "newton: generated / jax": ("generated", "jax"),
        },
        repeats,
        budget,
    )


def second_order_rows(
    repeats: int, budget: float, quick: bool = False, smoke: bool = False
) -> list[dict]:
    """The second-order rows: weight_hvp, weight_hessian, newton_step (Iris size: B=120, D=5, C=3)."""
    dtypes = (np.float64,) if quick or smoke else (np.float64, np.float32)
    repeats, budget = min(repeats, 7), min(budget, 0.1)  # torch.func.hessian takes a second a call
    if smoke:
        cells = [(hvp_row, (16, 20, 4)), (hessian_row, (16, 6, 3)), (newton_row, (12, 5, 3))]
    elif quick:
        cells = [(hvp_row, (256, 784, 10)), (hessian_row, (256, 64, 10)), (newton_row, (120, 5, 3))]
    else:
        cells = [
            (hvp_row, (256, 784, 10)),
            (hvp_row, (64, 512, 1000)),
            (hessian_row, (256, 64, 10)),
            (hessian_row, (256, 128, 20)),
            (newton_row, (120, 5, 3)),
        ]
    return [
        row(*shape, dtype, repeats, budget)
        for row, shape in cells
        for dtype in dtypes
        if not (shape == (256, 128, 20) and dtype == np.float32)  # float64 only: the slowest cell
    ]


# -- the two-layer network ---------------------------------------------------------------------

MLP_TARGETS = {
    "mlp: generated / hand": 1.05,
    "mlp: generated / torch": 1.0,
    "mlp: generated / floor": 1.3,
}


def numpy_mlp_by_hand(X, W1, b1, W2, b2, labels):
    """The best hand-written NumPy gradient of the ReLU network, integer labels: in place where it can be."""
    batch = len(labels)
    h = X @ W1
    h += b1
    np.maximum(h, 0, out=h)  # z₁ is not needed again: h > 0 exactly where z₁ > 0
    P = h @ W2
    P += b2
    P -= P.max(axis=1, keepdims=True)
    np.exp(P, out=P)
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(batch), labels] -= 1
    P /= batch  # δ₂ / B
    dW2, db2 = h.T @ P, P.sum(axis=0)
    delta1 = P @ W2.T
    delta1 *= h > 0
    return X.T @ delta1, delta1.sum(axis=0), dW2, db2


def _mlp_problem(batch: int, n_inputs: int, hidden: int, n_classes: int, dtype, seed: int = 2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, n_inputs)).astype(dtype)
    W1 = (rng.normal(size=(n_inputs, hidden)) * np.sqrt(2 / n_inputs)).astype(dtype)
    b1 = (rng.normal(size=hidden) * 0.1).astype(dtype)
    W2 = (rng.normal(size=(hidden, n_classes)) * np.sqrt(1 / hidden)).astype(dtype)
    b2 = np.zeros(n_classes, dtype=dtype)
    labels = rng.integers(n_classes, size=batch)
    return X, W1, b1, W2, b2, labels


def _torch_mlp_grads(X, W1, b1, W2, b2, labels):
    """PyTorch autograd, forward and backward, on tensors sharing the arrays' memory."""
    import torch

    tX, tlabels = torch.from_numpy(X), torch.from_numpy(labels)
    params = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (W1, b1, W2, b2)]

    def step():
        w1, c1, w2, c2 = params
        logits = torch.relu(tX @ w1 + c1) @ w2 + c2
        return torch.autograd.grad(torch.nn.functional.cross_entropy(logits, tlabels), params)

    return step


def mlp_step_row(
    batch: int, n_inputs: int, hidden: int, n_classes: int, dtype, repeats: int, budget: float
) -> dict:
    """The two-layer ReLU network's training-step gradient, integer labels: generated ``mlp_grads``,
    hand-written NumPy, PyTorch autograd and the floor (its five matrix products alone)."""
    X, W1, b1, W2, b2, labels = _mlp_problem(batch, n_inputs, hidden, n_classes, dtype)
    rng = np.random.default_rng(3)
    h = np.maximum(X @ W1 + b1, 0)
    delta2 = rng.normal(size=(batch, n_classes)).astype(dtype)  # stands for (S − y)/B
    delta1 = rng.normal(size=(batch, hidden)).astype(dtype)  # stands for δ₁

    def floor():
        X @ W1, h @ W2, delta2 @ W2.T
        return h.T @ delta2, X.T @ delta1

    torch_step = _torch_mlp_grads(X, W1, b1, W2, b2, labels)
    expected = numpy_mlp_by_hand(X, W1, b1, W2, b2, labels)
    tolerance = (
        {"rtol": 1e-3, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    )
    for ours, theirs, reference in zip(
        generated.mlp_grads(X, W1, b1, W2, b2, labels), torch_step(), expected, strict=True
    ):
        np.testing.assert_allclose(ours, reference, **tolerance)
        np.testing.assert_allclose(theirs.numpy(), reference, rtol=1e-3, atol=1e-5)
    times = measure(
        {
            "generated": lambda: generated.mlp_grads(X, W1, b1, W2, b2, labels),
            "hand": lambda: numpy_mlp_by_hand(X, W1, b1, W2, b2, labels),
            "torch": torch_step,
            "floor": floor,
        },
        repeats,
        budget,
    )
    ratios = {
        "mlp: generated / hand": times["generated"] / times["hand"],
        "mlp: generated / torch": times["generated"] / times["torch"],
        "mlp: generated / floor": times["generated"] / times["floor"],
        "mlp: hand / floor": times["hand"] / times["floor"],
    }
    sizes = {"B": batch, "D": n_inputs, "H": hidden, "C": n_classes}
    return timed_row(sizes, dtype, times, ratios, MLP_TARGETS)


def digits_epoch_row(repeats: int, budget: float) -> dict:
    """One epoch of ``python -m derive.train``'s digits network (float64, batches of 32, SGD):
    the generated ``mlp_grads`` and an in-place update, against the same steps in PyTorch
    (autograd, one thread, as the training run's twin)."""
    import torch

    from derive import train

    task = train.TASKS["digits"]
    x_train, _, y_train, _ = train.load(task.name, seed=0)
    n_classes = int(y_train.max()) + 1
    rng = np.random.default_rng(0)
    start = train.initial_weights(task, x_train.shape[1], n_classes, rng)
    order = rng.permutation(len(x_train))
    batches = [
        (x_train[order[i : i + task.batch_size]], y_train[order[i : i + task.batch_size]])
        for i in range(0, len(order), task.batch_size)
    ]
    names = ("W1", "b1", "W2", "b2")
    ours = {k: v.copy() for k, v in start.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    torch_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def generated_epoch():
        for x, y in batches:
            grads = generated.mlp_grads(x, *(ours[k] for k in names), y)
            for name, gradient in zip(names, grads):
                ours[name] -= task.learning_rate * gradient

    def torch_epoch():
        w1, c1, w2, c2 = (theirs[k] for k in names)
        for x, y in torch_batches:
            loss = torch.nn.functional.cross_entropy(torch.relu(x @ w1 + c1) @ w2 + c2, y)
            grads = torch.autograd.grad(loss, (w1, c1, w2, c2))
            with torch.no_grad():
                for p, gradient in zip((w1, c1, w2, c2), grads):
                    p -= task.learning_rate * gradient

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the training run's twin: matrices of at most 64 x 64
    try:
        generated_epoch(), torch_epoch()  # one epoch each from the same start: the same weights
        for name in names:
            np.testing.assert_allclose(
                ours[name], theirs[name].detach().numpy(), rtol=1e-9, atol=1e-12
            )
        times = measure({"generated": generated_epoch, "torch": torch_epoch}, repeats, budget)
    finally:
        torch.set_num_threads(threads)
    return {
        "steps": len(batches),
        "batch_size": task.batch_size,
        "H": task.hidden,
        "dtype": "float64",
        "seconds": times,
        "spread": dict(measure.spread),
        "ratios": {"digits epoch: generated / torch": times["generated"] / times["torch"]},
    }


def two_layer_section(sizes, repeats: int, budget: float) -> dict:
    """The two-layer rows: the step at each (B, D, H, C) in float64 and float32, one digits epoch."""
    return {
        "two_layer_step": [
            mlp_step_row(b, d, h, c, dtype, repeats, budget)
            for b, d, h, c in sizes
            for dtype in (np.float64, np.float32)
        ],
        "two_layer_targets": MLP_TARGETS,
        "digits_epoch": digits_epoch_row(repeats, budget),
    }


# -- the build ---------------------------------------------------------------------------------


class BuildFailed(RuntimeError):
    """The build measured by ``build_times`` failed; its message is the build's."""


def build_times(rounds: int = 5) -> dict:
    """Wall time of ``python -m derive build`` on a copy of the project: the median of ``rounds``.

    cold: no cache and no generated files (every derivation derived and proved, every file
    and figure written); no-op: nothing changed since; one edit: one derivation's module
    changed (it and what uses its results are derived and proved again, the rest cached).
    Each round starts from a fresh copy; ``runs`` keeps every round's seconds.
    """
    runs = [_build_round() for _ in range(rounds)]
    times: dict = {kind: float(np.median([r[kind] for r in runs])) for kind in runs[0]}
    times["runs"] = {kind: [round(r[kind], 2) for r in runs] for kind in runs[0]}
    return times


def _build_round() -> dict[str, float]:
    """One cold, one no-op and one one-edit build, in that order, on a fresh copy."""
    with tempfile.TemporaryDirectory(prefix="derive-bench-") as folder:
        copy = Path(folder)
        for name in ("derive", "templates", "docs", "bench-results", "accuracy-results"):
            if (ROOT / name).exists():
                shutil.copytree(
                    ROOT / name,
                    copy / name,
                    ignore=shutil.ignore_patterns("__pycache__", "figures"),
                )
        for path in [
            *(copy / "derive" / "generated").glob("*.py"),
            *(copy / "docs" / "derivations").glob("*.md"),
        ]:
            path.unlink()
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        edited = copy / "derive" / "derivations" / "softmax_temperature.py"
        seconds = {}
        for kind in ("cold", "no-op", "one edit"):
            if kind == "one edit":
                edited.write_text(edited.read_text() + "\n# an edit\n")
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "derive", "build"],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
            )
            seconds[kind] = time.perf_counter() - start
            if done.returncode != 0:  # the child's own message, not a CalledProcessError
                raise BuildFailed(
                    f"python -m derive build ({kind}) failed in a copy of the project:\n"
                    + (done.stderr or done.stdout).strip()
                )
    return seconds


def _load() -> str:
    """The machine's load averages (1, 5, 15 minutes) as the measurement ended."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- report --------------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    blas = ""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
    except Exception:  # the BLAS name is nice to have, not needed
        pass
    run = provenance.run_record(torch.get_num_threads())
    return {
        "commit": run["commit"],  # with "+dirty" when tracked files had changes
        "cpu_model": run["cpu_model"],
        "numpy_blas": run["numpy_blas"],  # NumPy's BLAS and its threads, by threadpoolctl
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", ""),
    }


SECTIONS = (
    "posts",
    "training_step",
    "labels",
    "second_order",
    "two_layer",
    "layer_norm",
    "build",
)
"""What ``--only`` selects: the report's parts, in the order a full run measures them."""


LAYER_NORM_TARGETS = {"generated / torch backward": 1.2}


def layer_norm_rows(repeats: int, budget: float, smoke: bool = False) -> dict:
    """``layer_norm_vjp`` against PyTorch at (B, K) = (256, 768) (smoke: (8, 16)), float32
    and float64; and against forming the Jacobian (``layer_norm_jacobian``) and contracting
    it with g, for a growing K at a batch of 16 (B K² entries)."""
    import torch

    rng = np.random.default_rng(0)
    rows = []
    batch, size = (8, 16) if smoke else (256, 768)
    for dtype in (np.float32, np.float64):
        x = rng.normal(size=(batch, size)).astype(dtype)
        g = rng.normal(size=(batch, size)).astype(dtype)
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        kept = xt.clone().requires_grad_(True)
        y = torch.nn.functional.layer_norm(kept, (size,), eps=1e-5)

        def torch_backward(y=y, kept=kept, gt=gt):
            return torch.autograd.grad(y, kept, gt, retain_graph=True)[0]

        def torch_forward_backward(xt=xt, gt=gt):
            leaf = xt.detach().requires_grad_(True)
            out = torch.nn.functional.layer_norm(leaf, (xt.shape[-1],), eps=1e-5)
            return torch.autograd.grad(out, leaf, gt)[0]

        contenders = {
            "generated": lambda x=x, g=g: generated.layer_norm_vjp(x, 1e-5, g),
            "torch backward": torch_backward,
            "torch forward+backward": torch_forward_backward,
        }
        expected = torch_backward().numpy()
        tolerance = 1e-3 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(
            contenders["generated"](), expected, rtol=tolerance, atol=tolerance
        )
        times = measure(contenders, repeats, budget)
        ratios = {
            "generated / torch backward": times["generated"] / times["torch backward"],
            "generated / torch forward+backward": times["generated"]
            / times["torch forward+backward"],
        }
        rows.append(timed_row({"B": batch, "K": size}, dtype, times, ratios, LAYER_NORM_TARGETS))
    jacobian_rows = []
    for size in (4, 16) if smoke else (16, 64, 256, 768):
        x, g = rng.normal(size=(16, size)), rng.normal(size=(16, size))
        contenders = {
            "vjp": lambda x=x, g=g: generated.layer_norm_vjp(x, 1e-5, g),
            "jacobian": lambda x=x, g=g: np.einsum(
                "...i,...ij->...j", g, generated.layer_norm_jacobian(x, 1e-5)
            ),
        }
        np.testing.assert_allclose(contenders["vjp"](), contenders["jacobian"](), atol=1e-9)
        times = measure(contenders, repeats, budget)
        jacobian_rows.append(
            timed_row(
                {"B": 16, "K": size},
                np.float64,
                times,
                {"jacobian / vjp": times["jacobian"] / times["vjp"]},
                {},
            )
        )
    return {"layer_norm": rows, "layer_norm_jacobian": jacobian_rows}


def layer_norm_table(report: dict) -> list[str]:
    if not report.get("layer_norm"):
        return []
    lines = [
        "",
        "Layer normalisation's VJP (seconds per call: median [fastest, slowest repeat])",
    ]
    for r in report["layer_norm"] + report.get("layer_norm_jacobian", []):
        lines.append(
            f"{r['B']}, {r['K']:<8} {r['dtype']:<8} "
            + "  ".join(
                f"{k} {v:.3e} [{r['spread'][k][0]:.2e}, {r['spread'][k][1]:.2e}]"
                for k, v in r["seconds"].items()
            )
        )
        lines.append(
            " " * 18
            + "  ".join(
                f"{k} {v:.2f}"
                + (
                    f" {'met' if r['targets_met'][k] else 'MISSED'}"
                    if k in r["targets_met"]
                    else ""
                )
                for k, v in r["ratios"].items()
            )
        )
    return lines


def run(
    quick: bool = False,
    smoke: bool = False,
    only: set[str] | None = None,
    progress=lambda line: print(line, flush=True),
) -> dict:
    """Measure the parts named in ``only`` (every part if None); ``progress`` gets a line as each
    part starts and ends (a quick run takes minutes)."""

    def wanted(section: str) -> bool:
        return only is None or section in only

    def measured(section: str, measure, empty):
        if not wanted(section):
            return empty
        progress(f"measuring {section} ...")
        start = time.perf_counter()
        value = measure()
        progress(f"measured {section} in {time.perf_counter() - start:.1f} s")
        return value

    # The build first: once PyTorch and JAX have started their thread pools, a build in a
    # child process runs up to half as fast again on 2 CPUs.
    # The build is measured on a copy of the checkout: an installed copy has none to measure.
    build = None
    if not smoke and locations.checkout() is None and wanted("build"):
        progress("not measuring build: it needs a source checkout, and this is an installed copy")
    elif not smoke:
        build = measured("build", build_times, None)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # as many as NumPy's BLAS uses by default
    repeats, budget = (3, 0.002) if smoke else (5, 0.05) if quick else (15, 0.2)
    posts_sizes = [(3, 5)] if smoke else [(3, 5), (784, 10)]
    steps = [(16, 20, 4)] if smoke else [(256, 784, 10), (64, 512, 1000)]
    # (B, D, H, C); --quick measures the first only
    two_layer_sizes = (
        [(16, 20, 8, 4)]
        if smoke
        else [(256, 784, 256, 10)]
        if quick
        else [(256, 784, 256, 10), (64, 512, 512, 1000)]
    )
    report = {
        "mode": "smoke" if smoke else "quick" if quick else "full",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "repeats": repeats,
        "posts": measured(
            "posts",
            lambda: [row for d, c in posts_sizes for row in posts_rows(d, c, repeats, budget)],
            [],
        ),
        "overhead": measured(
            "posts", lambda: overhead_rows(repeats * 3, budget / 4, smoke=smoke), []
        ),
        "training_step": measured(
            "training_step",
            lambda: [
                training_step_row(b, d, c, dtype, repeats, budget)
                for b, d, c in steps
                for dtype in (np.float64, np.float32)
            ],
            [],
        ),
        "targets": TARGETS,
        "training_step_labels": measured(
            "labels",
            lambda: [
                training_step_labels_row(b, d, c, dtype, repeats, budget)
                for b, d, c in steps
                for dtype in (np.float64, np.float32)
            ],
            [],
        ),
        "label_targets": LABEL_TARGETS,
        "second_order": measured(
            "second_order",
            lambda: second_order_rows(repeats, budget, quick=quick, smoke=smoke),
            [],
        ),
        "second_order_targets": SECOND_ORDER_TARGETS,
    }
    report.update(
        measured("two_layer", lambda: two_layer_section(two_layer_sizes, repeats, budget), {})
    )
    report.update(measured("layer_norm", lambda: layer_norm_rows(repeats, budget, smoke), {}))
    if build is not None:  # the page names each section's run: here, this one's
        report["build_seconds"] = {
            **build,
            "date": time.strftime("%Y-%m-%d"),
            "run": provenance.run_record(),
        }
    if only is not None:
        report["only"] = sorted(only)
    return report


def table(report: dict) -> str:
    lines = []
    if report["posts"]:
        lines += [
            "The posts' algorithms against the generated functions (speed-up = posts / generated)",
            f"{'size':<14} {'what':<22} {'posts s':>10} {'ours s':>10} {'speed-up':>9}  "
            "posts' code timed | generated code timed",
        ]
    for r in report["posts"]:
        lines.append(
            f"{r['size']:<14} {r['what']:<22} {r['baseline_seconds']:10.2e} "
            f"{r['generated_seconds']:10.2e} {r['speedup']:9.1f}  "
            f"{r['baseline']} | {r.get('generated', '?')}"
        )
    if report.get("overhead"):
        lines += [
            "",
            "The checks' cost per call: public function against its unchecked core "
            "(median µs [fastest, slowest repeat])",
        ]
    for r in report.get("overhead", []):
        s, spread = r["seconds"], r["spread"]
        lines.append(
            f"{r['size']:<10} {r['dtype']:<8} {r['function']:<31} "
            + "  ".join(
                f"{k} {s[k] * 1e6:7.2f} [{spread[k][0] * 1e6:.2f}, {spread[k][1] * 1e6:.2f}]"
                for k in ("public", "core")
            )
            + f"  overhead {r['overhead_seconds'] * 1e6:6.2f} µs ({r['public / core']:.2f}x; "
            f"fastest repeats {r['overhead_fastest_seconds'] * 1e6:.2f} µs)"
        )
    if report["training_step"]:
        lines += [
            "",
            "One training-step gradient (seconds per call; ratios: lower is better for us)",
        ]
        header = f"{'B, D, C':<16} {'dtype':<8} " + " ".join(
            f"{k:>11}" for k in ("generated", "from_logits", "numpy", "torch", "floor")
        )
        lines.append(header + "  " + "  ".join([*TARGETS, *REFERENCE_RATIOS]))
    for r in report["training_step"]:
        s = r["seconds"]
        cells = " ".join(
            f"{s[k]:11.3e}" for k in ("generated", "from_logits", "numpy", "torch", "floor")
        )
        ratios = "  ".join(
            f"{r['ratios'][k]:.3f} {'met' if r['targets_met'][k] else 'MISSED'} (<= {t})"
            for k, t in TARGETS.items()
        )
        reference = "  ".join(
            f"{s[a] / s[b]:{len(name)}.3f}" for name, (a, b) in REFERENCE_RATIOS.items()
        )
        lines.append(
            f"{r['B']}, {r['D']}, {r['C']:<8} {r['dtype']:<8} {cells}  {ratios}  {reference}"
        )
        if "jax" in s:  # JAX's jit, its spread, and the floor beside it
            met = (
                "met"
                if r["ratios"]["generated / jax"] <= JAX_TARGETS["generated / jax"]
                else "MISSED"
            )
            lines.append(
                " "
                * 26
                + f"jax {s['jax']:.3e} [{r['spread']['jax'][0]:.2e}, {r['spread']['jax'][1]:.2e}]"
                f"  generated / jax {r['ratios']['generated / jax']:.3f} {met} "
                f"(<= {JAX_TARGETS['generated / jax']})  floor / jax {r['ratios']['floor / jax']:.3f}"
            )
    if report.get("training_step_labels"):
        lines += [
            "",
            "The step with integer class labels (seconds per call: median [fastest, slowest "
            "repeat])",
        ]
    for r in report.get("training_step_labels", []):
        lines.append(
            f"{r['B']}, {r['D']}, {r['C']:<8} {r['dtype']:<8} "
            + "  ".join(
                f"{k} {v:.3e} [{r['spread'][k][0]:.2e}, {r['spread'][k][1]:.2e}]"
                for k, v in r["seconds"].items()
            )
        )
        lines.append(
            " " * 26
            + "  ".join(
                f"{k} {v:.3f}"
                + (
                    f" {'met' if r['targets_met'][k] else 'MISSED'} (<= {LABEL_TARGETS[k]})"
                    if k in LABEL_TARGETS
                    else ""
                )
                for k, v in r["ratios"].items()
            )
        )
    lines += second_order_table(report)
    lines += two_layer_table(report)
    lines += layer_norm_table(report)
    if "build_seconds" in report:
        b = report["build_seconds"]
        lines += [
            "",
            f"python -m derive build: cold {b['cold']:.2f} s, no-op {b['no-op']:.2f} s, "
            f"one derivation edited {b.get('one edit', float('nan')):.2f} s",
        ]
    m = report["machine"]
    lines += [
        *([""] if lines else []),
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, NumPy {m['numpy']} "
        f"({m['blas']}), torch {m['torch']} ({m['torch_threads']} threads)",
    ]
    return "\n".join(lines)


def second_order_table(report: dict) -> list[str]:
    if not report.get("second_order"):
        return []
    lines = ["", "Second order (seconds per call: median [fastest, slowest repeat])"]
    for r in report["second_order"]:
        lines.append(
            f"{r['what']:<15} {r['B']}, {r['D']}, {r['C']:<8} {r['dtype']:<8} "
            + "  ".join(
                f"{k} {v:.3e} [{r['spread'][k][0]:.2e}, {r['spread'][k][1]:.2e}]"
                for k, v in r["seconds"].items()
            )
        )
        lines.append(
            " " * 16
            + "  ".join(
                f"{k} {v:.3f}"
                + (
                    f" {'met' if r['targets_met'][k] else 'MISSED'} (<= {SECOND_ORDER_TARGETS[k]})"
                    if k in SECOND_ORDER_TARGETS
                    else ""
                )
                for k, v in r["ratios"].items()
            )
        )
    return lines


def two_layer_table(report: dict) -> list[str]:
    """The two-layer rows of the printed table (none if they were not measured)."""
    if "two_layer_step" not in report:
        return []
    lines = [
        "",
        "The two-layer ReLU network's gradient, integer labels (seconds per call: median "
        "[fastest, slowest repeat])",
    ]
    for r in report["two_layer_step"]:
        lines.append(
            f"{r['B']}, {r['D']}, {r['H']}, {r['C']:<5} {r['dtype']:<8} "
            + "  ".join(
                f"{k} {v:.3e} [{r['spread'][k][0]:.2e}, {r['spread'][k][1]:.2e}]"
                for k, v in r["seconds"].items()
            )
        )
        lines.append(
            " " * 26
            + "  ".join(
                f"{k.removeprefix('mlp: ')} {v:.3f}"
                + (
                    f" {'met' if r['targets_met'][k] else 'MISSED'} (<= {MLP_TARGETS[k]})"
                    if k in MLP_TARGETS
                    else ""
                )
                for k, v in r["ratios"].items()
            )
        )
    e = report["digits_epoch"]
    lines.append(
        f"one digits epoch ({e['steps']} steps of {e['batch_size']}, H = {e['H']}, float64): "
        f"generated {e['seconds']['generated']:.3e} s, PyTorch {e['seconds']['torch']:.3e} s, "
        f"generated / torch {e['ratios']['digits epoch: generated / torch']:.3f}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m derive.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter repeats (under two minutes)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one pass: checks the benchmark runs"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON report (default: "
        "bench-results/latest.json for a full run, which the site's page shows; "
        "bench-results/tmp-MODE.json, not committed, for --quick and --smoke)",
    )
    parser.add_argument(
        "--build-times",
        action="store_true",
        help="measure only the build (cold, no-op, one edit) and the edit loop under make serve "
        "(derive/edit_loop.py), and record them in bench-results/latest.json beside the "
        "timings there",
    )
    parser.add_argument(
        "--serve-times",
        action="store_true",
        help="measure only the edit loop under make serve (derive/edit_loop.py) and record it "
        "in bench-results/latest.json beside the timings there",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated parts to measure ({', '.join(SECTIONS)}); the report goes to "
        "bench-results/tmp-only.json unless --output says otherwise",
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    if only is not None and not only <= set(SECTIONS):
        parser.error(f"--only: expected parts of {', '.join(SECTIONS)}, got {args.only}")
    needs.exit_if_missing(needs.missing_modules("python -m derive.bench", ("torch",)))
    if args.build_times or args.serve_times or (only is not None and "build" in only):
        needs.exit_if_missing(needs.missing_checkout("python -m derive.bench's build part"))
    try:
        return _main(args, only)
    except BuildFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1


def _serve_times(report: dict) -> None:
    """Measure the edit loop under make serve into ``report``, and say what it found."""
    report["serve_seconds"] = {**edit_loop.summary(edit_loop.measure()), "load": _load()}
    print(
        "under make serve: "
        + ", ".join(
            f"{k} edit {v:.2f} s ({report['serve_seconds']['runs'][k]})"
            for k, v in report["serve_seconds"].items()
            if k in edit_loop.EDITS
        )
    )


def _main(args: argparse.Namespace, only: set[str] | None) -> int:
    if args.serve_times and not args.build_times:
        report = json.loads(BENCHMARK_RESULTS.read_text())
        _serve_times(report)
        BENCHMARK_RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {locations.shown(BENCHMARK_RESULTS)}")
        return 0
    if args.build_times:
        report = json.loads(BENCHMARK_RESULTS.read_text())
        report["build_seconds"] = {
            **build_times(),
            "date": time.strftime("%Y-%m-%d"),
            "run": provenance.run_record(),  # this run's, not the machine of the rest
        }
        print(
            ", ".join(
                f"{k} {v:.2f} s ({report['build_seconds']['runs'][k]})"
                for k, v in report["build_seconds"].items()
                if k not in ("date", "runs", "run")
            )
        )
        _serve_times(report)
        BENCHMARK_RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {locations.shown(BENCHMARK_RESULTS)}")
        return 0
    report = run(quick=args.quick, smoke=args.smoke, only=only)
    print(table(report))
    results = locations.results("bench-results")  # the checkout's, or the user's folder
    output = args.output or (
        results
        if report["mode"] == "full" and only is None
        else results.with_name(f"tmp-{'only' if only else report['mode']}.json")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {locations.shown(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
