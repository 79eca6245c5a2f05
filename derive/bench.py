"""Benchmarks: ``python -m derive.bench [--quick] [--output FILE]``.

Every ratio is measured side by side in one process: the contenders of a row
are timed in turn, repeatedly, and each gets the median of its repeats.
Prints a table and writes JSON (machine, versions, times, ratios) that the
site's benchmark page renders.

Rows:
- the posts' loop algorithms (re-written here from their description: nested
  loops filling the class-major matrices) against the generated functions;
- one training-step gradient for a batch: generated ``weight_grad`` (and the
  from-logits path) against hand-written NumPy, PyTorch autograd, and the
  floor: the two matrix products alone;
- the same step with integer class labels: generated ``weight_grad`` against
  the best hand-written NumPy (softmax in place, ``P[arange(B), labels] -= 1``),
  the floor, PyTorch autograd and JAX ``jit(grad)`` (when JAX is installed);
  contenders in a rotating order, with the fastest and slowest repeat kept;
- ``python -m derive build``, cold and no-op.
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads otherwise spin for a while after each call and slow
# down whichever contender is timed next; set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np

from derive import generated
from derive.figures import BENCHMARK_RESULTS, REFERENCE_RATIOS
from derive.render import ROOT

TARGETS = {"generated / numpy": 1.05, "generated / torch": 1.0, "generated / floor": 1.3}


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
        # rotate the order, so no contender always runs right after the same other one
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            samples[name].append(
                timeit.timeit(contenders[name], number=numbers[name]) / numbers[name]
            )
    measure.spread = {name: [min(times), max(times)] for name, times in samples.items()}
    return {name: statistics.median(times) for name, times in samples.items()}


measure.spread = {}  # the fastest and slowest repeat of each contender in the last call


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


def posts_rows(n_inputs: int, n_classes: int, repeats: int, budget: float) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n_inputs)
    W = rng.normal(scale=0.1, size=(n_inputs, n_classes))
    y = np.eye(n_classes)[1]
    S = generated.softmax(generated.summation(x, W))
    rows = [
        (
            "softmax Jacobian",
            "sm_dir(S)",
            lambda: posts_sm_dir(S),
            lambda: generated.softmax_jacobian(S),
        ),
        (
            "summation Jacobian DZ",
            "z_dir loops",
            lambda: posts_z_dir(x, W),
            lambda: generated.summation_jacobian(x, W),
        ),
        (
            "layer Jacobian",
            "l_dir_shortcut loops",
            lambda: posts_l_dir_shortcut(W, S, x),
            lambda: generated.layer_jacobian(x, W),
        ),
        (
            "layer Jacobian",
            "sm_dir, z_dir, DS · DZᵀ",
            lambda: np.dot(posts_sm_dir(S), np.transpose(posts_z_dir(x, W))),
            lambda: generated.layer_jacobian(x, W),
        ),
        (
            "weight gradient",
            "xe_dir_shortcut loops",
            lambda: posts_xe_dir_shortcut(W, S, x, y),
            lambda: generated.weight_grad(x, W, y),
        ),
    ]
    results = []
    for what, baseline, theirs, ours in rows:
        times = measure({"posts": theirs, "generated": ours}, repeats, budget)
        results.append(
            {
                "size": f"D={n_inputs}, C={n_classes}",
                "what": what,
                "baseline": baseline,
                "baseline_seconds": times["posts"],
                "generated_seconds": times["generated"],
                "speedup": times["posts"] / times["generated"],
                "spread": dict(measure.spread),
            }
        )
    return results


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
    times = measure(
        {
            "generated": lambda: generated.weight_grad(X, W, Y),
            "from_logits": from_logits,
            "numpy": numpy_by_hand,
            "torch": torch_autograd,
            "floor": floor,
        },
        repeats,
        budget,
    )
    ratios = {
        "generated / numpy": times["generated"] / times["numpy"],
        "generated / torch": times["generated"] / times["torch"],
        "generated / floor": times["generated"] / times["floor"],
        "from_logits / numpy": times["from_logits"] / times["numpy"],
    }
    return {
        "B": batch,
        "D": n_inputs,
        "C": n_classes,
        "dtype": np.dtype(dtype).name,
        "seconds": times,
        "spread": dict(measure.spread),
        "ratios": ratios,
        "targets_met": {k: ratios[k] <= v for k, v in TARGETS.items()},
    }


LABEL_TARGETS = {"labels: generated / hand": 1.05, "labels: generated / floor": 1.3}


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

    contenders = {
        "generated": lambda: generated.weight_grad(X, W, labels),
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
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        jax = None
    if jax is not None:
        if dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        jX, jW, jlabels = jnp.asarray(X), jnp.asarray(W), jnp.asarray(labels)

        def loss(weights, inputs, targets):
            log_p = jax.nn.log_softmax(inputs @ weights, axis=-1)
            return -jnp.mean(jnp.take_along_axis(log_p, targets[:, None], axis=-1))

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
        "labels: generated / torch": times["generated"] / times["torch"],
    }
    if "jax" in times:
        ratios["labels: generated / jax"] = times["generated"] / times["jax"]
    return {
        "B": batch,
        "D": n_inputs,
        "C": n_classes,
        "dtype": np.dtype(dtype).name,
        "seconds": times,
        "spread": spread,
        "ratios": ratios,
        "targets_met": {k: ratios[k] <= v for k, v in LABEL_TARGETS.items()},
    }


# -- the build ---------------------------------------------------------------------------------


def build_times() -> dict[str, float]:
    """Wall time of ``python -m derive build`` on a copy of the project.

    cold: no cache and no generated files (every derivation derived and proved, every file
    and figure written); no-op: nothing changed since; one edit: one derivation's module
    changed (it and what uses its results are derived and proved again, the rest cached).
    """
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
            subprocess.run(
                [sys.executable, "-m", "derive", "build"],
                cwd=copy,
                env=env,
                check=True,
                capture_output=True,
            )
            seconds[kind] = time.perf_counter() - start
    return seconds


# -- report --------------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    blas = ""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]["name"]
    except Exception:  # the BLAS name is nice to have, not needed
        pass
    return {
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


# The row groups of a report, which ``--only`` selects from.
GROUPS = ("posts", "training_step", "training_step_labels", "build")


def run(quick: bool = False, smoke: bool = False, only: tuple[str, ...] = GROUPS) -> dict:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # as many as NumPy's BLAS uses by default
    repeats, budget = (3, 0.002) if smoke else (5, 0.05) if quick else (15, 0.2)
    posts_sizes = [(3, 5)] if smoke else [(3, 5), (784, 10)]
    steps = [(16, 20, 4)] if smoke else [(256, 784, 10), (64, 512, 1000)]
    report = {
        "mode": "smoke" if smoke else "quick" if quick else "full",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "repeats": repeats,
        "posts": [
            row
            for d, c in posts_sizes
            if "posts" in only
            for row in posts_rows(d, c, repeats, budget)
        ],
        "training_step": [
            training_step_row(b, d, c, dtype, repeats, budget)
            for b, d, c in steps
            if "training_step" in only
            for dtype in (np.float64, np.float32)
        ],
        "targets": TARGETS,
        "training_step_labels": [
            training_step_labels_row(b, d, c, dtype, repeats, budget)
            for b, d, c in steps
            if "training_step_labels" in only
            for dtype in (np.float64, np.float32)
        ],
        "label_targets": LABEL_TARGETS,
    }
    if not smoke and "build" in only:
        report["build_seconds"] = build_times()
    if only != GROUPS:
        report["only"] = list(only)
    return report


def table(report: dict) -> str:
    lines = [
        "The posts' algorithms against the generated functions (speed-up = posts / generated)",
        f"{'size':<14} {'what':<24} {'posts':<24} {'posts s':>10} {'ours s':>10} {'speed-up':>9}",
    ]
    for r in report["posts"]:
        lines.append(
            f"{r['size']:<14} {r['what']:<24} {r['baseline']:<24} "
            f"{r['baseline_seconds']:10.2e} {r['generated_seconds']:10.2e} {r['speedup']:9.1f}"
        )
    lines += ["", "One training-step gradient (seconds per call; ratios: lower is better for us)"]
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
    lines += [
        "",
        "The step with integer class labels (seconds per call: median [fastest, slowest repeat])",
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
    if "build_seconds" in report:
        b = report["build_seconds"]
        lines += [
            "",
            f"python -m derive build: cold {b['cold']:.2f} s, no-op {b['no-op']:.2f} s, "
            f"one derivation edited {b.get('one edit', float('nan')):.2f} s",
        ]
    m = report["machine"]
    lines += [
        "",
        f"{m['platform']}, {m['cpus']} CPUs, Python {m['python']}, NumPy {m['numpy']} "
        f"({m['blas']}), torch {m['torch']} ({m['torch_threads']} threads)",
    ]
    return "\n".join(lines)


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
        help="measure only the build (cold, no-op, one edit) and record it in "
        "bench-results/latest.json beside the timings there",
    )
    parser.add_argument(
        "--only",
        metavar="GROUP[,GROUP]",
        type=lambda text: tuple(g.strip() for g in text.split(",")),
        default=GROUPS,
        help=f"run only these row groups, of {', '.join(GROUPS)} (the report goes to "
        "bench-results/tmp-only.json unless --output says otherwise)",
    )
    args = parser.parse_args(argv)
    unknown = [g for g in args.only if g not in GROUPS]
    if unknown:
        parser.error(f"--only: unknown group {unknown[0]!r}; expected some of {', '.join(GROUPS)}")
    if args.build_times:
        report = json.loads(BENCHMARK_RESULTS.read_text())
        report["build_seconds"] = {**build_times(), "date": time.strftime("%Y-%m-%d")}
        print(
            ", ".join(f"{k} {v:.2f} s" for k, v in report["build_seconds"].items() if k != "date")
        )
        BENCHMARK_RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {BENCHMARK_RESULTS}")
        return 0
    report = run(quick=args.quick, smoke=args.smoke, only=args.only)
    print(table(report))
    output = args.output or (
        BENCHMARK_RESULTS
        if report["mode"] == "full" and "only" not in report
        else BENCHMARK_RESULTS.with_name(
            f"tmp-{'only' if 'only' in report else report['mode']}.json"
        )
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
