"""What a measurement ran on: recorded in its results JSON when the run happens.

``python -m derive.accuracy``, ``derive.train`` and ``derive.bench`` store :func:`run_record`
in their reports; the results pages show it in their headers (``derive.pages``). Whatever
cannot be found is stored as ``None`` and shown as not recorded, never guessed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commit(root: Path = ROOT) -> str | None:
    """``git rev-parse HEAD``, with "+dirty" when tracked files differ from it; None outside git."""

    def git(*args: str) -> str:
        # --no-optional-locks: `git status` must not write the index of a checkout others share
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if changed else "")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first "model name" of /proc/cpuinfo (Linux); None where there is none."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def numpy_blas_threads() -> dict | None:
    """NumPy's BLAS and its thread count, as threadpoolctl finds them (None without it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    import numpy  # noqa: F401 - loads the BLAS threadpoolctl is to find

    for pool in threadpool_info():
        if pool["user_api"] == "blas" and "numpy" in pool["filepath"]:
            return {"library": pool["internal_api"], "threads": pool["num_threads"]}
    return None


def run_record(torch_threads: int | None = None) -> dict:
    """The commit, CPU and thread counts of this run (``torch_threads``: what PyTorch used,
    when it took part; read from PyTorch when it is imported and not given)."""
    if torch_threads is None and "torch" in sys.modules:
        torch_threads = sys.modules["torch"].get_num_threads()
    return {
        "commit": commit(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy_blas": numpy_blas_threads(),
        "torch_threads": torch_threads,
    }
