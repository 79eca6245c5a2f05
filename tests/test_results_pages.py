"""The results pages' prose against their own tables and JSON (derive.pages).

Every sentence of the Accuracy, Benchmarks and Training pages that states a number, a
bound or a list is parsed back from the rendered page and compared with what this file
computes from the JSON by itself; each page is also rendered from altered data, and the
sentence must change with it. The run's commit, CPU and threads must be shown when the
JSON has them and said to be not recorded when it has not.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest

from derive import accuracy, derivations, pages, provenance
from derive.render import ROOT, environment

ACCURACY = json.loads((ROOT / "accuracy-results" / "latest.json").read_text())
TRAINING = json.loads((ROOT / "training-results" / "latest.json").read_text())
BENCH = json.loads((ROOT / "bench-results" / "latest.json").read_text())
COLUMNS = ["float64, moderate", "float64, extreme", "float32, moderate", "float32, extreme"]


def flat(text: str) -> str:
    return " ".join(text.split())


def ulps(value) -> float:
    """A cell or JSON value as a number: "**inf**" and "inf" are inf."""
    return float(str(value).strip("*"))


# -- the Accuracy page --------------------------------------------------------------------------


def accuracy_page(report: dict) -> str:
    return environment().get_template("accuracy.md.j2").render(**pages.accuracy_context(report))


def table_rows(page: str) -> list[list[str]]:
    """The cells of every table row that starts with a function's name."""
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in page.splitlines()
        if line.startswith("| `")
    ]


def accuracy_table(page: str) -> dict[tuple[str, str], list[str]]:
    """(function, implementation) -> its cells: four entry-wise columns and norm-wise."""
    return {(c[0].strip("`"), c[1]): c[2:] for c in table_rows(page) if len(c) == 7}


def arguments_table(page: str) -> dict[str, tuple[str, str]]:
    """function -> (the arguments the page says were drawn differently for extreme inputs,
    those it says were drawn alike, with why)."""
    return {c[0].strip("`"): (c[1], c[2]) for c in table_rows(page) if len(c) == 3}


def cells_of(report: dict) -> dict[tuple[str, str], dict[str, float]]:
    """(function, implementation) -> column -> max_ulp, straight from the JSON."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for r in report["rows"]:
        column = f"{r['dtype']}, {r['inputs']}"
        cells.setdefault((r["function"], r["implementation"]), {})[column] = ulps(r["max_ulp"])
    return cells


def bound_sentence(page: str) -> tuple[list[str], dict[str, tuple[str, str]], int]:
    """The functions the page says are within the bound, those it says are not (with the
    value and column it gives), and the bound."""
    text = flat(page)
    every = re.search(r"All (\d+) functions without a note above are within (\d+) ulps", text)
    if every:
        return ["(all)"] * int(every[1]), {}, int(every[2])
    m = re.search(
        r"(\d+) of the (\d+) functions without a note above are within (\d+) ulps entry by "
        r"entry in every column of the table(?:: (.*?))?\. These are not \(their largest error "
        r"in ulps, and where\): (.*?)\. ",
        text,
    )
    assert m, "the bound sentence is missing"
    within = re.findall(r"`([^`]+)`", m[4] or "")
    beyond = {
        name: (value, column)
        for name, value, column in re.findall(r"`([^`]+)` \(([^,]+), (float\d+, \w+)\)", m[5])
    }
    assert int(m[1]) == len(within) and int(m[2]) == len(within) + len(beyond), m[0]
    return within, beyond, int(m[3])


def expected_bound(report: dict, bound: float) -> tuple[set[str], set[str]]:
    conditioned = {r["function"] for r in report["rows"] if r["conditioning"]}
    ours = {f: c for (f, who), c in cells_of(report).items() if who == "derive"}
    plain = [f for f in ours if f not in conditioned]
    within = {f for f in plain if max(ours[f].values()) <= bound}
    return within, set(plain) - within


def test_the_bound_sentence_agrees_with_the_json_and_the_table():
    page = accuracy_page(ACCURACY)
    within, beyond, bound = bound_sentence(page)
    expected_within, expected_beyond = expected_bound(ACCURACY, bound)
    if set(within) == {"(all)"}:  # "All N functions ... are within": no names listed
        assert len(within) == len(expected_within) and not expected_beyond
        return
    assert set(within) == expected_within
    assert set(beyond) == expected_beyond
    table = accuracy_table(page)
    for name, (value, column) in beyond.items():
        row = table[(name, "derive")]
        assert row[COLUMNS.index(column)] == value, (name, row)  # the table's own cell
        assert ulps(value) == max(ulps(c) for c in row[:4]), (name, row)  # and its largest


def test_the_bound_is_the_one_tests_test_accuracy_holds():
    source = (ROOT / "tests" / "test_accuracy.py").read_text()
    assert f'row["max_ulp"] <= {pages.ACCURACY_BOUND_ULPS}' in source
    _, _, bound = bound_sentence(accuracy_page(ACCURACY))
    assert bound == pages.ACCURACY_BOUND_ULPS


def test_the_bound_sentence_follows_the_data():
    report = copy.deepcopy(ACCURACY)
    ours = [r for r in report["rows"] if r["implementation"] == "derive"]
    # a function the bound applies to (no conditioning), beyond it in this run if one is, made
    # within it
    bounded = [r for r in ours if not r["conditioning"] and r["function"] != "relu"]
    beyond_it = [r for r in bounded if ulps(r["max_ulp"]) > 4]
    example = (beyond_it or bounded)[0]["function"]
    for r in ours:
        if r["function"] == example:
            r["max_ulp"] = 1.0
        if (r["function"], r["implementation"], r["dtype"], r["inputs"]) == (
            "relu",
            "derive",
            "float32",
            "extreme",
        ):
            r["max_ulp"] = 50.0
    within, beyond, _ = bound_sentence(accuracy_page(report))
    assert example in within and example not in beyond
    assert beyond["relu"] == ("50", "float32, extreme")
    for r in report["rows"]:  # every function within: the page says so in one sentence
        if r["implementation"] == "derive" and not r["conditioning"]:
            r["max_ulp"] = 0.5
    within, beyond, _ = bound_sentence(accuracy_page(report))
    assert not beyond and len(within) == len(expected_bound(report, 4)[0])


def against_sentence(page: str) -> tuple[set[tuple[str, str, str]], int, int]:
    """The (function, equivalent, column) cells the page says ours is more than one ulp less
    accurate in, and its counts of pairs never worse and of all pairs."""
    text = flat(page)
    never = re.search(r"no function is more than one ulp less accurate", text)
    pairs = re.search(r"Against its PyTorch or SciPy equivalent \((\d+) pairs\)", text)
    if never and pairs:
        return set(), int(pairs[1]), int(pairs[1])
    m = re.search(r"Against its PyTorch or SciPy equivalent, (\d+) of the (\d+) pairs", text)
    assert m, "the comparison sentence is missing"
    worse = set()
    for line in page.splitlines():
        said = re.match(r"- `([^`]+)` against (PyTorch|SciPy): (.*)", line)
        if said:
            for column in re.findall(r"\((float\d+, \w+)\)", said[3]):
                worse.add((said[1], said[2], column))
    others = re.search(r"In the other (\d+), ours is", text)
    assert others and int(others[1]) == int(m[2]) - int(m[1]) == len({w[:2] for w in worse})
    return worse, int(m[1]), int(m[2])


def expected_against(report: dict) -> tuple[set[tuple[str, str, str]], int, int]:
    cells = cells_of(report)
    worse, pairs = set(), set()
    for (function, who), theirs in cells.items():
        if who == "derive":
            continue
        pairs.add((function, who))
        for column, value in theirs.items():
            if cells[(function, "derive")][column] > value + 1:
                worse.add((function, who, column))
    return worse, len(pairs) - len({(f, w) for f, w, _ in worse}), len(pairs)


def test_the_comparison_with_pytorch_and_scipy_agrees_with_the_json_and_the_table():
    page = accuracy_page(ACCURACY)
    said = against_sentence(page)
    assert said == expected_against(ACCURACY)
    table = accuracy_table(page)
    for line in page.splitlines():  # each "A against B (column)" is the two cells of the table
        said = re.match(r"- `([^`]+)` against (PyTorch|SciPy): (.*)", line)
        for ours, theirs, column in (
            re.findall(r"(\S+) against (\S+) \((float\d+, \w+)\)", said[3]) if said else []
        ):
            assert table[(said[1], "derive")][COLUMNS.index(column)] == ours, line
            assert table[(said[1], said[2])][COLUMNS.index(column)] == theirs, line


def test_the_comparison_follows_the_data():
    report = copy.deepcopy(ACCURACY)
    theirs = {
        (r["dtype"], r["inputs"]): r["max_ulp"]
        for r in report["rows"]
        if (r["function"], r["implementation"]) == ("newton_step", "PyTorch")
    }
    for r in report["rows"]:
        if (r["function"], r["implementation"]) == ("newton_step", "derive"):
            r["max_ulp"] = theirs[(r["dtype"], r["inputs"])]
        if (r["function"], r["implementation"], r["dtype"], r["inputs"]) == (
            "tanh",
            "derive",
            "float64",
            "moderate",
        ):
            r["max_ulp"] = 10.0
    worse, never, pairs = against_sentence(accuracy_page(report))
    assert not any(f == "newton_step" for f, _, _ in worse)
    assert ("tanh", "PyTorch", "float64, moderate") in worse
    assert (worse, never, pairs) == expected_against(report)


def test_every_inf_cell_is_explained_from_the_entry_the_run_recorded():
    page = accuracy_page(ACCURACY)
    notes = [line for line in page.splitlines() if re.match(r"- `[^`]+`, \w+, float", line)]
    for (function, who), cells in accuracy_table(page).items():
        for column, cell in zip(COLUMNS, cells[:4]):
            if cell == "**inf**":
                assert any(n.startswith(f"- `{function}`, {who}, {column}:") for n in notes)
    assert len(notes) == sum(ulps(r["max_ulp"]) == np.inf for r in ACCURACY["rows"])
    for r in ACCURACY["rows"]:
        if "infinite" not in r:
            continue
        for c in r["infinite"]["rounded_to_0_or_1"]:
            # the claim: a value drawn inside (0, 1) is 0 or 1 once rounded to the dtype
            assert 0 < c["drawn"] < 1 and np.dtype(r["dtype"]).type(c["drawn"]) == c["given"]
        note = next(n for n in notes if n.startswith(f"- `{r['function']}`, {r['implementation']}"))
        assert f"the true value is {r['infinite']['true']}" in note


def test_bces_inf_is_pytorch_returning_a_finite_loss_where_float32_made_p_one():
    row = next(
        r
        for r in ACCURACY["rows"]
        if (r["function"], r["implementation"], r["dtype"], r["inputs"])
        == ("binary_cross_entropy", "PyTorch", "float32", "extreme")
    )
    if ulps(row["max_ulp"]) != np.inf:
        pytest.skip("this run's PyTorch binary cross-entropy cell is finite")
    case = row["infinite"]
    assert case["true"] == "inf" and np.isfinite(case["computed"])
    given = [c["given"] for c in case["rounded_to_0_or_1"] if c["argument"] == "p"]
    assert given and set(given) == {1.0}
    page = flat(accuracy_page(ACCURACY))
    drawn = case["rounded_to_0_or_1"][-1]["drawn"]  # the page lists them all, then the value
    said = re.search(r"`p` drawn as 1 − (\S+) is 1 in float32; there the true value is inf", page)
    assert said and float(said[1]) == pytest.approx(1 - drawn, rel=0.05)
    report = copy.deepcopy(ACCURACY)
    for r in report["rows"]:
        r.pop("infinite", None)
    assert "which entry was infinitely wrong was not recorded" in accuracy_page(report)


def test_every_registered_function_is_in_the_results_with_extreme_arguments():
    known = derivations.kernels()
    registered = {part.id for kernel in known.values() for part in kernel.parts}
    assert {r["function"] for r in ACCURACY["rows"]} == registered
    page = accuracy_page(ACCURACY)
    table, arguments = accuracy_table(page), arguments_table(page)
    assert set(arguments) == registered
    for r in ACCURACY["rows"]:
        assert r["extreme_arguments"], r["function"]
        assert (r["function"], r["implementation"]) in table
        extreme, alike = arguments[r["function"]]
        assert re.findall(r"`([^`]+)`", extreme) == r["extreme_arguments"]
        assert re.findall(r"`([^`]+)`", alike) == list(r["drawn_alike"])
        for why in r["drawn_alike"].values():
            assert why in alike


@pytest.mark.parametrize("name", list(derivations.kernels()))
def test_every_argument_is_extreme_or_says_why_not(name):
    """Each argument the call names is in exactly one of the page's two lists."""
    known = derivations.kernels()
    for kernel in known[name].parts:
        extreme = accuracy.extreme_arguments(kernel, known)
        alike = accuracy.drawn_alike(kernel, known)
        tree = ast.parse(kernel.call, mode="eval")
        named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        called = set(accuracy.variables(kernel, known)) & named
        assert sorted(extreme + list(alike)) == sorted(called), kernel.id
        assert all(why for why in alike.values()), kernel.id


@pytest.mark.parametrize("name", list(derivations.kernels()))
def test_the_extreme_arguments_are_drawn_beyond_the_moderate_range(name):
    """What the page's last columns claim, checked on the draws themselves (no reference):
    probabilities and targets nearer 0 and 1, positive numbers at both ends of their declared
    range (and moderate ones inside it), real numbers larger, one-hot labels alike."""
    known = derivations.kernels()
    kernel = known[name]
    moderate = accuracy.cases(kernel, known, 12, 0, "moderate")
    extreme = accuracy.cases(kernel, known, 12, 0, "extreme")
    params = accuracy.variables(kernel, known)
    for argument in accuracy.extreme_arguments(kernel, known):
        low = np.concatenate([c.values[argument].ravel() for c in moderate])
        high = np.concatenate([c.values[argument].ravel() for c in extreme])
        domain, span = params[argument].domain, params[argument].span
        if domain in ("probability", "target"):
            assert np.min(np.minimum(high, 1 - high)) < np.min(np.minimum(low, 1 - low)) / 1e3
        elif domain == "positive":
            assert (np.min(high), np.max(high)) == span, argument
            assert span[0] < np.min(low) and np.max(low) < span[1], argument
        else:
            assert np.max(np.abs(high)) > 10 * np.max(np.abs(low)), argument
    for argument in accuracy.drawn_alike(kernel, known):  # labels: 0s and 1s in both
        low = np.concatenate([c.values[argument].ravel() for c in moderate])
        high = np.concatenate([c.values[argument].ravel() for c in extreme])
        assert set(np.unique(low)) == set(np.unique(high)) == {0.0, 1.0}, argument


def test_a_function_without_extreme_arguments_is_named_as_such():
    report = copy.deepcopy(ACCURACY)
    for r in report["rows"]:
        if r["function"] == "relu":
            r["extreme_arguments"] = []
    text = flat(accuracy_page(report))
    said = re.search(
        r"These functions have none, so their extreme columns repeat the moderate inputs: (.*?)\.",
        text,
    )
    assert said and re.findall(r"`([^`]+)`", said[1]) == ["relu"]
    assert "These functions have none" not in accuracy_page(ACCURACY)


def test_the_accuracy_page_shows_the_runs_machine_or_says_it_was_not_recorded():
    page = accuracy_page(ACCURACY)
    run = ACCURACY["runs"][-1]
    commit = run["commit"].removesuffix("+dirty")
    assert f"commit: `{commit[:12]}`" in page
    assert f"CPU: {run['cpu_model']}" in page and f"logical CPUs: {run['cpu_count']}" in page
    assert f"PyTorch threads: {run['torch_threads']}" in page
    assert f"took {run['seconds']:.0f} s" in page
    old = copy.deepcopy(ACCURACY)
    del old["runs"]
    page = accuracy_page(old)
    assert "commit: not recorded; CPU: not recorded; logical CPUs: not recorded" in page
    assert commit[:12] not in page


def test_the_heat_map_comes_before_the_table_and_says_what_it_shows():
    page = accuracy_page(ACCURACY)
    figure = page.index("![A heat map of the largest error in ulps")
    assert figure < page.index("| function | library |")
    alt = re.search(r"!\[(.*?)\]\(figures/accuracy-ulps\.svg\)", page)
    assert alt and "float64 and float32" in alt[1] and "moderate and extreme" in alt[1]
    assert "≤ 1, ≤ 4, ≤ 100, ≤ 10⁶, > 10⁶ and inf" in alt[1]


# -- the Benchmarks page ------------------------------------------------------------------------


def bench_page(report: dict | None, tested: list[str] | None) -> str:
    context = pages.benchmark_context(report, tested)
    return environment().get_template("benchmarks.md.j2").render(**context)


def test_the_benchmark_header_shows_what_the_json_recorded():
    machine = BENCH["machine"]
    page = flat(bench_page(BENCH, ["NumPy"]))
    header = re.search(r"Run of .*? \(\w+ mode\) on (.*?)\. ", page)[1]
    assert f"logical CPUs: {machine['cpus']}" in header
    assert f"PyTorch threads: {machine['torch_threads']}" in header
    for key, label in (("commit", "commit"), ("cpu_model", "CPU")):
        if key not in machine:
            assert f"{label}: not recorded" in header
    report = copy.deepcopy(BENCH)
    report["machine"] |= {"commit": "0123456789abcdef" * 2 + "+dirty", "cpu_model": "Test CPU 9000"}
    header = re.search(r"Run of .*? \(\w+ mode\) on (.*?)\. ", flat(bench_page(report, ["NumPy"])))[
        1
    ]
    assert "commit: `0123456789ab` with uncommitted changes; CPU: Test CPU 9000" in header


def test_a_benchmark_run_records_its_commit_and_cpu():
    pytest.importorskip("torch")
    from derive import bench

    machine = bench.machine()
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", machine["commit"] or "0" * 40)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        assert machine["cpu_model"] == (names[0].strip() if names else None)


def libraries_in_the_tests() -> list[str]:
    source = (ROOT / "tests" / "test_array_libraries.py").read_text()
    block = re.search(r"^LIBRARIES = \{(.*?)^\}", source, re.M | re.S)[1]
    return re.findall(r'^\s+"([\w-]+)":', block, re.M)


def test_the_array_libraries_sentence_names_what_the_tests_run():
    keys = libraries_in_the_tests()
    text = flat(bench_page(BENCH, pages.array_libraries_tested()))
    tested = re.search(r"runs every one of them on (.*?), and checks", text)[1]
    untested = re.search(r"\. ([^.]*?) would go through the same path but", text)
    runs_jax = any(k.startswith("jax") for k in keys)
    assert ("JAX" in tested) == runs_jax and ("Dask" in tested) == ("dask" in keys)
    assert untested is None or "JAX" not in untested[1] or not runs_jax


def test_the_array_libraries_sentence_follows_the_tests(tmp_path):
    tests = tmp_path / "test_array_libraries.py"
    tests.write_text(
        'LIBRARIES = {\n    "numpy-float32": (1, 2, 3),\n    "torch-float64": (1, 2, 3),\n}\n'
    )
    tested = pages.array_libraries_tested(tests)
    text = flat(bench_page(None, tested))
    assert "runs every one of them on NumPy and PyTorch (CPU), and checks" in text
    assert "array-api-strict, Dask, JAX (CPU) and CuPy would go through the same path" in text
    assert "not known here" in flat(
        bench_page(None, pages.array_libraries_tested(tmp_path / "none.py"))
    )


# -- the Training page --------------------------------------------------------------------------


def training_page(report: dict) -> str:
    return environment().get_template("training.md.j2").render(**pages.training_context(report))


def spread_sentences(page: str) -> list[re.Match]:
    return list(
        re.finditer(
            r"Over seeds (\d+)–(\d+), the final test accuracy ranges from ([\d.]+)% to "
            r"([\d.]+)% \(median ([\d.]+)%\); the goal of (\d+)% is met with (\d+) of the (\d+) seeds",
            flat(page),
        )
    )


def test_the_seed_spread_agrees_with_the_json():
    said = spread_sentences(training_page(TRAINING))
    assert len(said) == len(TRAINING["runs"]) == len(TRAINING["seeds"])
    for m, run in zip(said, TRAINING["runs"]):
        spread = TRAINING["seeds"][run["name"]]
        accuracies = [s["test_accuracy"] * 100 for s in spread]
        assert (int(m[1]), int(m[2])) == (spread[0]["seed"], spread[-1]["seed"])
        assert float(m[3]) == pytest.approx(min(accuracies), abs=0.05)
        assert float(m[4]) == pytest.approx(max(accuracies), abs=0.05)
        assert float(m[5]) == pytest.approx(statistics.median(accuracies), abs=0.05)
        assert int(m[6]) == round(run["goal"] * 100)
        assert int(m[7]) == sum(a >= run["goal"] * 100 for a in accuracies)
        assert int(m[8]) == len(spread)
        shown = next(s for s in spread if s["seed"] == run["seed"])
        assert shown["test_accuracy"] == run["test_accuracy"]  # the run shown is one of them


def test_the_seed_spread_follows_the_data():
    report = copy.deepcopy(TRAINING)
    name = report["runs"][0]["name"]
    before = int(spread_sentences(training_page(report))[0][7])
    seed = next(s for s in report["seeds"][name] if s["test_accuracy"] >= report["runs"][0]["goal"])
    seed["test_accuracy"] = 0.5
    m = spread_sentences(training_page(report))[0]
    assert float(m[3]) == 50.0 and int(m[7]) == before - 1
    del report["seeds"]
    page = training_page(report)
    assert not spread_sentences(page) and "The spread over seeds was not recorded" in page


def test_the_training_page_shows_the_runs_machine_or_says_it_was_not_recorded():
    run = TRAINING["run"]
    page = flat(training_page(TRAINING))
    assert f"commit: `{run['commit'].removesuffix('+dirty')[:12]}`" in page
    assert f"CPU: {run['cpu_model']}" in page and f"PyTorch threads: {run['torch_threads']}" in page
    old = copy.deepcopy(TRAINING)
    del old["run"]
    page = flat(training_page(old))
    assert "commit: not recorded; CPU: not recorded" in page


# -- derive.provenance ----------------------------------------------------------------------------


def test_the_cpu_model_is_the_first_model_name_of_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n\nmodel name\t: Other\n"
    )
    assert provenance.cpu_model(cpuinfo) == "Example CPU @ 2.0GHz"
    cpuinfo.write_text("processor\t: 0\n")
    assert provenance.cpu_model(cpuinfo) is None
    assert provenance.cpu_model(tmp_path / "missing") is None


def test_the_commit_is_marked_dirty_when_tracked_files_changed(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("no git")

    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("not a change to the tree's files\n")
    assert provenance.commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert provenance.commit(tmp_path) == head + "+dirty"


def test_what_a_run_could_not_find_is_said_to_be_not_found():
    text = pages.run_text({"commit": None, "cpu_model": None, "cpu_count": 2})
    assert text.startswith(
        "commit: not found; CPU: not found; logical CPUs: 2; NumPy's BLAS: not recorded"
    )


def ratios_with_targets(page: str) -> list[tuple[float, float, str]]:
    """Every (measured, target, met or **missed**) ratio row in the page's tables."""
    return [
        (float(m[1]), float(m[2]), m[3])
        for m in re.finditer(r"\| ([\d.]+) \| ≤ ([\d.]+) \| (met|\*\*missed\*\*) \|", page)
    ]


def test_the_figure_opens_the_page_and_its_caption_counts_the_tables_ratios():
    page = bench_page(BENCH, ["NumPy"])
    rows = ratios_with_targets(page)
    assert len(rows) > 30  # every section's ratios with a target
    assert all((measured <= target) == (met == "met") for measured, target, met in rows)
    caption = re.search(r"(\d+) of the (\d+) ratios with a target met it", flat(page))
    assert caption and (int(caption[1]), int(caption[2])) == (
        sum(met == "met" for _, _, met in rows),
        len(rows),
    )
    assert page.index("figures/benchmark-ratios.svg") < page.index("\n## ")
    assert page.index("figures/benchmark-ratios.svg") < page.index("\n|")


def test_the_posts_rows_show_the_code_each_side_runs():
    """Each row of the posts' table shows the posts' code and the generated code it timed; rows
    measured before the generated code was recorded say so, and the page says what they timed."""
    caveat = "were measured before the rows recorded their code"
    report = copy.deepcopy(BENCH)
    for n, row in enumerate(report["posts"]):
        row["generated"] = f"generated_{n}(x, W)"
    page = bench_page(report, ["NumPy"])
    for n, row in enumerate(report["posts"]):  # the table numbers the code listed under it
        item = re.search(
            rf"^(\d+)\. the posts': `{re.escape(row['baseline'])}`; "
            rf"the generated: `generated_{n}\(x, W\)`$",
            page,
            re.MULTILINE,
        )
        assert item, row
        assert f"| {row['size']} | {row['what']} | {item.group(1)} |" in page, row
    assert caveat not in flat(page)
    del report["posts"][0]["generated"]
    page = bench_page(report, ["NumPy"])
    assert caveat in flat(page) and "; the generated: *not recorded*" in page
