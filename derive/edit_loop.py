"""How long an edit takes to reach the open page under ``make serve``, measured end to end.

In a copy of the checkout (its build cache included: a contributor has built
before), ``mkdocs serve --dirty`` runs as ``make serve`` runs it. Each edit is
written to a derivation module, and the served HTML of its page is fetched
every 20 ms until the new text is in it: the time from the write to that fetch
is the edit's. Two edits, each repeated with a new text: a step's title (prose:
the derivation is derived again, nothing is proved again), and one formula of
a step (that step's claim is checked again, and whatever uses the derivation is
derived and proved again). ``python -m derive.bench --build-times`` records them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from derive import locations

ROOT = locations.CODE
MODULE = Path("derive") / "derivations" / "two_layer.py"
PAGE = "derivations/two-layer/"
# (the text in the module, the text an edit writes, the text the page then shows), each with
# {n}, a number new at each repeat. The formula: 1 - tanh' = tanh², multiplied through by n.
EDITS = {
    "prose": (
        '"Add distributes",',
        '"Add distributes, edit {n}",',
        "Add distributes, edit {n}",
    ),
    "formula": (
        "1 - Derivative(sp.tanh(v), v),\n            sp.tanh(v) ** 2,",
        "{n} - {n} * Derivative(sp.tanh(v), v),\n            {n} * sp.tanh(v) ** 2,",
        "{n} \\tanh^{{2}}",
    ),
}
COPIED = ("derive", "templates", "docs", "bench-results", "accuracy-results", "training-results")


class EditLoopFailed(RuntimeError):
    """The server did not start, or an edit did not reach the page in time."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def _copy(root: Path, folder: Path) -> None:
    for name in COPIED:
        if (root / name).exists():
            shutil.copytree(
                root / name, folder / name, ignore=shutil.ignore_patterns("__pycache__")
            )
    for name in ("mkdocs.yml", "pyproject.toml"):
        shutil.copy(root / name, folder / name)
    if (root / ".derive-cache").is_dir():
        shutil.copytree(root / ".derive-cache", folder / ".derive-cache")


def _wait(condition, timeout: float, what: str, log: Path, every: float = 0.02) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if condition():
            return time.perf_counter()
        time.sleep(every)
    raise EditLoopFailed(
        f"timed out after {timeout} s waiting for {what}:\n{log.read_text()[-3000:]}"
    )


def _settle(log: Path, quiet: float = 2.0) -> None:
    """Wait until the server has built what the last edit set off and stays idle for ``quiet`` s
    (every rebuild after the first ends with "Reloading browsers")."""
    last, since = None, time.perf_counter()
    while time.perf_counter() - since < quiet:
        text = log.read_text()
        state = (text.count("Building documentation"), text.count("Reloading browsers"))
        if state != last or state[0] != state[1] + 1:
            last, since = state, time.perf_counter()
        time.sleep(0.1)


MKDOCS_POLL = 0.5  # seconds between MkDocs's looks for edited files, unless the hook logs its own
REPEATS = {"prose": 5, "formula": 3}  # edits of each kind that bench.py records


def measure(repeats: dict[str, int] | int = REPEATS, root: Path = ROOT, dirty: bool = True) -> dict:
    """Seconds from each write to the page showing it: ``{kind: [seconds, ...]}``.

    ``repeats``: how many edits of each kind (one number: as many of each); ``root``: the
    checkout to copy; ``dirty``: serve as ``make serve`` does (before it did, without
    ``--dirty``: for a comparison).
    """
    if isinstance(repeats, int):
        repeats = dict.fromkeys(EDITS, repeats)
    times: dict[str, list[float]] = {kind: [] for kind in EDITS}
    parts: dict[str, list[dict]] = {kind: [] for kind in EDITS}
    with tempfile.TemporaryDirectory(prefix="derive-edit-loop-") as name:
        folder = Path(name)
        _copy(root, folder)
        env = {
            **os.environ,
            "PYTHONPATH": str(folder),
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_MKDOCS_2_WARNING": "1",
        }
        log = folder / "serve.log"
        subprocess.run(
            [sys.executable, "-m", "derive", "build"],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
        )
        port = _free_port()
        with open(log, "w") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mkdocs",
                    "serve",
                    *(["--dirty"] if dirty else []),
                    "-a",
                    f"127.0.0.1:{port}",
                ],
                cwd=folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}/{PAGE}"
        try:
            _wait(lambda: _fetch(url), 300, f"{url} to be served", log, every=0.5)
            _settle(log)
            module = folder / MODULE
            for n in range(2, 2 + max(repeats.values())):
                for kind, (before, after, shown) in EDITS.items():
                    if n >= 2 + repeats[kind]:
                        continue
                    source = module.read_text()
                    old = before if n == 2 else after.format(n=n - 1)
                    if old not in source:
                        raise EditLoopFailed(f"{MODULE}: no {old!r} to edit")
                    text = shown.format(n=n)
                    logged = len(log.read_text())
                    start = time.perf_counter()
                    module.write_text(source.replace(old, after.format(n=n), 1))
                    done = _wait(
                        lambda text=text: text in _fetch(url), 120, f"{text!r} on {url}", log
                    )
                    times[kind].append(done - start)
                    _settle(log)
                    parts[kind].append(_parts(log.read_text()[logged:]))
        finally:
            server.terminate()
            server.wait(timeout=60)
        poll = re.search(r"looking for edited files every ([0-9.]+) s", log.read_text())
    return {"times": times, "parts": parts, "poll": float(poll[1]) if poll else MKDOCS_POLL}


def _parts(logged: str) -> dict[str, float]:
    """The seconds the first rebuild after an edit spent in the generator and in all of MkDocs's
    build (the generator's included), as the serve log reports them."""
    generator = re.search(r"build finished in ([0-9.]+) s", logged)
    site = re.search(r"Documentation built in ([0-9.]+) seconds", logged)
    return {
        "generator": float(generator[1]) if generator else 0.0,
        "mkdocs": float(site[1]) if site else 0.0,
    }


def summary(measured: dict) -> dict:
    """The median of each kind of edit, every repeat's seconds, and the medians of what the
    generator and MkDocs's rebuild (which includes it) took of them."""
    times, parts = measured["times"], measured["parts"]
    return {
        **{kind: statistics.median(seconds) for kind, seconds in times.items()},
        "poll": measured.get("poll", MKDOCS_POLL),  # how often the server looked for edits
        "runs": {kind: [round(s, 2) for s in seconds] for kind, seconds in times.items()},
        "parts": {
            kind: {
                part: statistics.median(p[part] for p in parts[kind])
                for part in ("generator", "mkdocs")
            }
            for kind in parts
        },
    }


if __name__ == "__main__":  # python -m derive.edit_loop [REPEATS [CHECKOUT [--not-dirty]]]
    print(
        summary(
            measure(
                int(sys.argv[1]) if len(sys.argv) > 1 else REPEATS,
                Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT,
                "--not-dirty" not in sys.argv,
            )
        )
    )
