"""Break `python -m derive build` on purpose, many times, and record what it left.

Run by tests/test_faults.py as ``python fault_harness.py PROJECT REPORT.json``,
with PROJECT a copy of the project (cwd and PYTHONPATH). It measures; the
test decides what is right.

Speed: the derivations are derived once here, without proofs (the write step
does not look at them), and every build or check is a fork of this process
running ``derive.cli.main``; a case costs a render, not a derivation. The
rendered modules and pages are kept by their inputs (the templates' text, and
for pages the generated code they are made from): the two clean builds render
for real and the harness records that they wrote what the kept outputs say;
after that a case whose templates are one whole set reuses them, so its build
is the lock, the tidy-up, the import of the new modules and the write step
(the only step a fault is injected into). A case that breaks a template
misses and renders for real. Figures are three small fixed SVG texts instead
of matplotlib's.

The outputs alternate between two complete sets, "A" and "B": appending a
Jinja comment naming the set to every template changes every output's header.
Each case moves the project from one set towards the other with one fault
injected, then compares every output (bytes and mode) with both sets.

Faults are injected only inside ``transaction.write_all`` (the write step),
by replacing ``os.open``, ``os.write``, ``os.fsync``, ``os.link``,
``os.replace`` and ``os.unlink``: to raise an OSError at their n-th call (once,
or from then on), or to SIGKILL the process there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import stat
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

PROJECT = Path(sys.argv[1]).resolve()
REPORT = Path(sys.argv[2])
os.chdir(PROJECT)
sys.path.insert(0, str(PROJECT))
os.umask(0o022)

import derive.figures  # noqa: E402 - after the working folder and umask are set
from derive import build as pipeline  # noqa: E402
from derive import cli, transaction  # noqa: E402

DERIVED = pipeline.derive_all(run_proofs=False)


def derive_all_once(run_proofs=True, log=lambda _: None, force=False, meanwhile=None, **_):
    """The derivations derived above, with no proofs; ``meanwhile`` runs as in the real one."""
    if meanwhile is not None:
        meanwhile(DERIVED)
    return DERIVED


pipeline.derive_all = derive_all_once

RENDER = {"code": pipeline.code_outputs, "pages": pipeline.page_outputs}
KEPT: dict[tuple, list] = {}
CODE_TEMPLATES = ("module.py.j2", "generated_init.py.j2")  # what code_outputs renders


def _texts(paths) -> tuple[str, ...]:
    return tuple(Path(p).read_text() for p in sorted(paths))


def code_outputs_kept(derived):
    """``code_outputs``, rendered once per text of the code templates."""
    key = ("code", _texts(PROJECT / "templates" / name for name in CODE_TEMPLATES))
    if key not in KEPT:
        KEPT[key] = RENDER["code"](derived)
    return list(KEPT[key])


def page_outputs_kept(derived, generated):
    """``page_outputs``, rendered once per text of every template and of the generated code."""
    code = sorted(Path(generated.__path__[0]).glob("*.py"))
    key = ("pages", _texts(TEMPLATES), _texts(code))
    if key not in KEPT:
        KEPT[key] = RENDER["pages"](derived, generated)
    return list(KEPT[key])


def render_for_real() -> None:
    """A ``prepare``: this build renders every module and page itself."""
    pipeline.code_outputs, pipeline.page_outputs = RENDER["code"], RENDER["pages"]


def both(*prepares):
    """One ``prepare`` that runs each of ``prepares``."""

    def prepare():
        for each in prepares:
            each()

    return prepare


def kept_outputs() -> dict[str, bytes]:
    """What the kept renders for the current templates would write, by path."""
    code = pipeline.code_outputs(DERIVED)
    with pipeline.generated_package(code) as generated:
        pages = pipeline.page_outputs(DERIVED, generated)
    return {str(o.path.relative_to(PROJECT)): o.text.encode() for o in code + pages}


pipeline.code_outputs, pipeline.page_outputs = code_outputs_kept, page_outputs_kept
TEMPLATES = sorted((PROJECT / "templates").glob("*.j2"))
ORIGINAL = {t: t.read_text() for t in TEMPLATES}
OUTPUTS = [
    "derive/generated/*.py",
    "docs/derivations/*.md",
    "docs/api.md",
    "docs/benchmarks.md",
    "docs/accuracy.md",
    "docs/training.md",
    "docs/index.md",
    "docs/figures/*.svg",
]
OPS = ("open", "write", "fsync", "link", "replace", "unlink")
SCRATCH = Path(tempfile.mkdtemp(prefix="fault-harness-"))


def use_set(name: str) -> None:
    """Make the inputs those of output set ``name`` (no build)."""
    for template in TEMPLATES:
        template.write_text(ORIGINAL[template] + f"{{# set {name} #}}\n")
    figures = {
        derive.figures.FIGURE_DIR / f"figure-{i}.svg": f"<svg><!-- set {name}, {i} --></svg>\n"
        for i in range(3)
    }
    derive.figures.draw_all = lambda generated, declared=(), **_: figures
    # the figures of measured results, which a build draws early: none (draw_all gives all)
    pipeline._results_figures = lambda *_: pipeline._EarlyFigures()


def snapshot() -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(PROJECT)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for pattern in OUTPUTS
        for p in sorted(PROJECT.glob(pattern))
    }


def litter() -> list[str]:
    """Temporary files anywhere in the project, a journal, this project's import folders."""
    found = [
        str(p.relative_to(PROJECT))
        for p in PROJECT.rglob("*")
        if p.name.endswith(".tmp") or p.name == pipeline.JOURNAL.name
    ]
    return sorted(found) + [
        str(p) for p in Path(tempfile.gettempdir()).glob(f"{pipeline.IMPORT_PREFIX}*")
    ]


def child(argv: list[str], prepare=lambda: None) -> int:
    """Fork, run ``python -m derive ARGV`` there; the pid (stdout and stderr go to SCRATCH)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(
                    os.open(SCRATCH / f"{os.getpid()}.{name}", os.O_WRONLY | os.O_CREAT, 0o644), fd
                )
            prepare()
            code = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def finish(pid: int) -> dict:
    _, status = os.waitpid(pid, 0)
    output = {name: (SCRATCH / f"{pid}.{name}").read_text() for name in ("stdout", "stderr")}
    return {"rc": os.waitstatus_to_exitcode(status), **output}


def run(argv: list[str], prepare=lambda: None) -> dict:
    return finish(child(argv, prepare))


def inject(fault: dict | None, counts_file: Path):
    """A ``prepare`` for ``child``: the fault, active only while ``transaction.write_all`` runs."""

    def prepare():
        real = {name: getattr(os, name) for name in OPS}
        counts: Counter = Counter()
        fired = []

        def patched(name):
            def call(*args, **kwargs):
                counts[name] += 1
                counts["any"] += 1
                if fault and fault["op"] in (name, "any"):
                    k = counts[fault["op"]]
                    if fault["kind"] == "kill" and k == fault["n"]:
                        os.kill(os.getpid(), signal.SIGKILL)
                    if k == fault["n"] or (fault["persistent"] and k > fault["n"]):
                        fired.append(k)
                        code = fault["errno"]
                        raise OSError(code, os.strerror(code))
                return real[name](*args, **kwargs)

            return call

        original = transaction.write_all

        def write_all(*args, **kwargs):
            for name in OPS:
                setattr(os, name, patched(name))
            try:
                return original(*args, **kwargs)
            finally:
                for name in OPS:
                    setattr(os, name, real[name])
                counts_file.write_text(json.dumps({"counts": counts, "fired": len(fired)}))

        transaction.write_all = write_all

    return prepare


class Cases:
    def __init__(self):
        self.sets = {}
        self.current = None
        self.records = []

    def state(self) -> str:
        now = snapshot()
        return next((name for name, s in self.sets.items() if s == now), "mixed")

    def target(self) -> str:
        target = "B" if self.current == "A" else "A"
        use_set(target)
        return target

    def record(self, kind: str, target: str, result: dict, **extra) -> dict:
        state = self.state()
        entry = {
            "kind": kind,
            **extra,
            **result,
            "old": self.current,
            "new": target,
            "state": "old" if state == self.current else "new" if state == target else "mixed",
            "litter": litter(),
        }
        self.records.append(entry)
        return entry

    def repair(self, entry: dict, target: str) -> None:
        """What an interrupted build leaves: check's report, the journal's rollback, the next build."""
        entry["check"] = run(["check"])
        entry["journal_after"] = pipeline.JOURNAL.exists()
        transaction.recover(pipeline.JOURNAL)
        state = self.state()
        entry["after_recover"] = (
            "old" if state == self.current else "new" if state == target else "mixed"
        )
        repaired = run(["build"])
        entry["repaired_rc"], entry["repaired_stderr"] = repaired["rc"], repaired["stderr"]
        entry["repaired"] = "new" if self.state() == target else "not new"
        entry["litter_after_repair"] = litter()
        self.settle(target)

    def left_alone(self, entry: dict, target: str) -> None:
        """After an interrupted build, with no help: ``check``, then a plain ``build``, then ``check``.

        Unlike ``repair``, nothing is undone by hand: the plain build must find what the
        interrupted one left (it must not answer "nothing changed") and leave outputs ``target``.
        """
        entry["check"] = run(["check"])
        rebuilt = run(["build"])
        entry["rebuilt_rc"], entry["rebuilt_stdout"] = rebuilt["rc"], rebuilt["stdout"]
        entry["rebuilt_stderr"] = rebuilt["stderr"]
        entry["rebuilt"] = "target" if self.state() == target else "not the target"
        entry["litter_after_rebuild"] = litter()
        entry["check_after_rebuild"] = run(["check"])
        self.settle(target)

    def settle(self, target: str) -> None:
        state = self.state()
        if (
            state == "mixed"
        ):  # recorded above; a clean build makes the next case start from a whole set
            run(["build"])
            state = self.state()
        if state == "mixed":  # the rest would measure nonsense
            raise SystemExit(f"outputs mixed after case {self.records[-1]['kind']}; stopping")
        self.current = state
        use_set(state)  # inputs and outputs agree again


def spread(count: int, how_many: int) -> list[int]:
    """``how_many`` call numbers from 1 to ``count``, first and last included."""
    if count <= how_many or how_many == 1:
        return list(range(1, min(count, how_many) + 1))
    return sorted({1 + round(i * (count - 1) / (how_many - 1)) for i in range(how_many)})


def main() -> None:
    cases = Cases()
    counts_file = SCRATCH / "counts.json"
    # Two clean builds, rendering for real: the two sets, and how many calls of each kind a
    # write step makes. What they wrote must be what the kept renders give the other cases.
    kept_is_the_build = []
    for name in ("A", "B"):
        use_set(name)
        result = run(["build"], both(render_for_real, inject(None, counts_file)))
        if result["rc"] != 0:
            raise SystemExit(f"clean build of set {name} failed:\n{result['stderr']}")
        cases.sets[name] = snapshot()
        cases.current = name
        written = {path: body for path, (body, _) in cases.sets[name].items()}
        kept = kept_outputs()
        figures = {path for path in written if path.startswith("docs/figures/")}
        kept_is_the_build.append(kept == {p: b for p, b in written.items() if p not in figures})
    counts = json.loads(counts_file.read_text())["counts"]
    cases.records.append(
        {
            "kind": "clean",
            "counts": counts,
            "litter": litter(),
            "modes": sorted({mode for s in cases.sets.values() for _, mode in s.values()}),
            "files": len(cases.sets["A"]),
            "sets_differ_everywhere": all(
                cases.sets["A"][k] != cases.sets["B"].get(k) for k in cases.sets["A"]
            ),
            "kept_is_the_build": kept_is_the_build,
        }
    )

    errors = [  # kind, call, errno, from then on?, how many call numbers
        ("disk full while writing", "write", errno.ENOSPC, True, 4),
        ("permission denied creating a file", "open", errno.EACCES, True, 3),
        ("I/O error flushing a file", "fsync", errno.EIO, False, 2),
        ("I/O error making a backup", "link", errno.EIO, False, 3),
        ("I/O error replacing a file", "replace", errno.EIO, False, 4),
        ("replacing fails from then on", "replace", errno.EIO, True, 2),
        ("hard links not supported", "link", errno.EPERM, True, 1),
    ]
    for kind, op, code, persistent, how_many in errors:
        for n in spread(counts[op], how_many):
            target = cases.target()
            fault = {"kind": kind, "op": op, "n": n, "errno": code, "persistent": persistent}
            counts_file.unlink(missing_ok=True)
            result = run(["build"], inject(fault, counts_file))
            fired = json.loads(counts_file.read_text())["fired"] if counts_file.exists() else 0
            entry = cases.record(kind, target, result, n=n, fired=fired > 0)
            if kind == "replacing fails from then on":
                cases.repair(entry, target)
            else:
                cases.settle(target)

    for n in spread(counts["any"], 8):
        target = cases.target()
        fault = {"kind": "kill", "op": "any", "n": n, "errno": 0, "persistent": False}
        entry = cases.record(
            "killed while writing",
            target,
            run(["build"], inject(fault, counts_file)),
            n=n,
            fired=True,
        )
        cases.repair(entry, target)

    def kill_while_rendering_pages():
        pipeline.page_outputs = lambda *args: os.kill(os.getpid(), signal.SIGKILL)

    target = cases.target()
    entry = cases.record(
        "killed while the new modules are imported",
        target,
        run(["build"], kill_while_rendering_pages),
        fired=True,
    )
    cases.repair(entry, target)

    # A killed `build --force` with nothing changed since the last build (its outputs would be
    # the same): it leaves this process's import folder; the next plain build must remove it.
    same = cases.current
    use_set(same)
    entry = cases.record(
        "killed --force, nothing changed",
        same,
        run(["build", "--force"], kill_while_rendering_pages),
        fired=True,
    )
    cases.left_alone(entry, same)

    # Killed after the journal landed, before any output was replaced; then the author reverts
    # the edit, so inputs and outputs are the last complete build's: the journal must still go.
    target = cases.target()
    fault = {"kind": "kill", "op": "replace", "n": 2, "errno": 0, "persistent": False}
    entry = cases.record(
        "killed after the journal, sources reverted",
        target,
        run(["build"], inject(fault, counts_file)),
        n=2,
        fired=True,
    )
    use_set(cases.current)
    cases.left_alone(entry, cases.current)

    # Two checks at once: each keeps its import folder a second; the second starts while the
    # first's is live, and must not take it for a killed build's.
    def slow_import():
        real = pipeline.generated_package

        @contextlib.contextmanager
        def slow(code=None):
            with real(code) as package:
                time.sleep(1.0)
                yield package

        pipeline.generated_package = slow

    first = child(["check"], slow_import)
    time.sleep(0.5)
    second = child(["check"], slow_import)
    results = [finish(first), finish(second)]
    cases.records.append(
        {
            "kind": "two checks at once",
            "rcs": [r["rc"] for r in results],
            "stderr": "".join(r["stderr"] for r in results),
            "litter": litter(),
        }
    )

    if os.geteuid() != 0:  # root writes into read-only folders; "permission denied" stands in
        target = cases.target()
        folder = PROJECT / "docs" / "derivations"
        folder.chmod(0o555)
        try:
            result = run(["build"])
        finally:
            folder.chmod(0o755)
        cases.record("read-only output folder", target, result, fired=True)
        cases.settle(target)

    # Two builds at once: each waits 0.4 s inside its write step; the lock must keep those apart.
    target = cases.target()
    times = SCRATCH / "times"

    def slow():
        original = transaction.write_all

        def write_all(*args, **kwargs):
            start = time.time()
            time.sleep(0.4)
            try:
                return original(*args, **kwargs)
            finally:
                with open(times, "a") as f:
                    f.write(f"{start} {time.time()}\n")

        transaction.write_all = write_all

    first, second = child(["build"], slow), child(["build"], slow)
    results = [finish(first), finish(second)]
    intervals = sorted(tuple(map(float, line.split())) for line in times.read_text().splitlines())
    cases.record(
        "two builds at once",
        target,
        {
            "rc": max(r["rc"] for r in results),
            "stdout": "".join(r["stdout"] for r in results),
            "stderr": "".join(r["stderr"] for r in results),
        },
        fired=True,
        intervals=intervals,
    )
    cases.settle(target)

    target = cases.target()
    holder = os.open(pipeline.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)

    def short_wait():
        pipeline.LOCK_TIMEOUT = 0.3

    try:
        cases.record("lock held by another build", target, run(["build"], short_wait), fired=True)
    finally:
        os.close(holder)
    cases.settle(target)

    breakages = [(t.name, "syntax", "{% if %}\n") for t in TEMPLATES] + [
        ("module.py.j2", "invalid Python", "\ndef broken(:\n"),
        ("generated_init.py.j2", "invalid Python", "\ndef broken(:\n"),
    ]
    for name, what, text in breakages:  # on the current set, so that check gets as far as the pages
        template = PROJECT / "templates" / name
        template.write_text(template.read_text() + text)
        result = run(["build"])
        checked = run(["check"]) if what == "syntax" else None
        cases.record(f"template {what}", "broken", result, template=name, fired=True, check=checked)
        use_set(cases.current)  # mends the template

    REPORT.write_text(json.dumps(cases.records, indent=1))


if __name__ == "__main__":
    main()
