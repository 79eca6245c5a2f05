"""``python -m derive build | check | list | nav | steps | show | new``: the command line."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from derive.errors import BuildError
from derive.needs import GENERATE, exit_if_missing, missing_checkout, missing_modules

DESCRIPTION = (
    "Derive the derivatives of a softmax classifier (softmax, cross-entropy, activations, "
    "other losses, layer normalisation, second order, a two-layer network), or of a forward "
    "definition of your own (derive new), with SymPy, prove them, and generate the functions "
    "in derive.generated and the pages of the site."
)
EXIT_CODES = "exit codes: 0 done; 1 {failed}; 2 wrong usage, or something this installation lacks"
COMMANDS = {  # name: (help, example, what exit 1 means)
    "build": (
        "derive, prove, and write the generated files that changed",
        "python -m derive build --no-figures",
        "a derivation, proof, template or write failed (nothing was written)",
    ),
    "check": (
        "exit 1 if a generated file is stale, edited by hand, or left by an interrupted build",
        "python -m derive check",
        "a generated file is stale, edited by hand, missing or left over (each is named)",
    ),
    "list": (
        "list the registered derivations and the functions each generates",
        "python -m derive list",
        "a derivation failed to derive (it is named)",
    ),
    "nav": (
        "print the derivation pages for the site's nav, as JSON (for the MkDocs hook)",
        "python -m derive nav",
        "a generated page could not be read",
    ),
    "steps": (
        "list every displayed step with its context and how the build checks it",
        "python -m derive steps --try sigmoid",
        "a derivation failed to derive; with --try, a step fails its declared check",
    ),
    "show": (
        "print a derivation's definitions and steps in the terminal (no build)",
        "python -m derive show silu --latex",
        "no such derivation, or it failed to derive",
    ),
    "new": (
        "write a derivation module from a forward definition, and its registry line",
        'python -m derive new swish --forward "z/(1 + exp(-z))" --wrt z',
        "the name is taken or the expression cannot be differentiated (the message says why)",
    ),
}


def version() -> str:
    """The installed distribution's version, from its metadata."""
    from importlib import metadata

    from derive.needs import distribution

    try:
        return metadata.version(distribution())
    except metadata.PackageNotFoundError:
        return "unknown (not installed: run from a source folder)"


class _Version(argparse.Action):
    """``--version``, read from the metadata only when asked (it scans the installed packages)."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {version()}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m derive",
        description=textwrap.fill(DESCRIPTION, 79),
        epilog="example: python -m derive build\n"
        + EXIT_CODES.format(failed="the command failed (the message says why)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    main.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    made = {}
    for name, (summary, example, failed) in COMMANDS.items():
        made[name] = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"example: {example}\n" + EXIT_CODES.format(failed=failed),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    made["build"].add_argument(
        "--no-figures", action="store_true", help="skip the matplotlib figures"
    )
    made["build"].add_argument(
        "--force",
        action="store_true",
        help="ignore the cache (.derive-cache/): derive and prove everything again",
    )
    steps = made["steps"]
    steps.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per step (sympy.srepr strings): re-checkable with SymPy alone",
    )
    steps.add_argument(
        "--try",
        dest="try_all",
        action="store_true",
        help="check each step by every method and say which hold (for a module's author)",
    )
    steps.add_argument("names", nargs="*", help="only these derivations (default: all)")
    show = made["show"]
    show.add_argument("name", help="a registered derivation")
    show.add_argument("--latex", action="store_true", help="LaTeX instead of Unicode")
    new = made["new"]
    new.add_argument("name", help="the module, page and function name: silu")
    new.add_argument("--forward", required=True, help='a SymPy expression: "z/(1 + exp(-z))"')
    new.add_argument("--wrt", required=True, help="the variable to differentiate by: z")
    new.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:DOMAIN",
        help="a scalar parameter and its domain (real, positive): delta:positive",
    )
    new.add_argument("--arg", action="append", default=[], help="another array argument: y")
    new.add_argument("--title", default="", help="the page's title (default: the name)")
    new.add_argument("--reference", default="", help='PyTorch: "torch.nn.functional.silu(z)"')
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _larger_sympy_cache()
    try:
        return _run(args)
    except BuildError as error:  # deriving failed (build and check say so themselves)
        print(f"{args.command} failed:\n  {error}", file=sys.stderr)
        return 1


SYMPY_CACHE_SIZE = "100000"  # entries; SymPy's default, 1000, evicts what deriving reuses


def _larger_sympy_cache() -> None:
    """Give SymPy's cache room for a whole build, unless the user set its size.

    SymPy reads ``SYMPY_CACHE_SIZE`` when it is first imported, so this must run
    before: the worker processes, forked, share the setting. With 100,000
    entries a cold build took about 1.4 s less CPU (deriving, proving and
    pickling, measured in one process).
    """
    if "sympy" not in sys.modules:
        os.environ.setdefault("SYMPY_CACHE_SIZE", SYMPY_CACHE_SIZE)


def _run(args: argparse.Namespace) -> int:
    if args.command in ("build", "check", "new"):  # new writes a module into the checkout
        exit_if_missing(missing_checkout(f"python -m derive {args.command}"))
    figures = args.command == "build" and not args.no_figures
    needed = GENERATE + (("matplotlib",) if figures else ())
    exit_if_missing(missing_modules(f"python -m derive {args.command}", needed))

    if args.command in ("show", "new"):
        from derive import scaffold  # only what these need: no build, no proofs

        try:
            if args.command == "show":
                print(scaffold.show(args.name, latex=args.latex))
            else:
                print(scaffold.new(args))
        except (KeyError, ValueError, NotImplementedError) as error:
            print(f"{args.command} {args.name}: {error}", file=sys.stderr)
            return 1
        return 0

    if args.command == "build":
        return build(figures=not args.no_figures, force=args.force)

    if args.command == "nav":
        import json

        from derive.site import derivation_nav

        print(json.dumps(derivation_nav()))
        return 0

    from derive import build as pipeline  # imported late: `--help` stays instant

    if args.command == "list":
        every = [d.derivation for d in pipeline.derive_all(run_proofs=False)]
        width = max(len(d.name) for d in every)
        for d in every:
            functions = ", ".join(d.function_names) or "(a page only: no functions)"
            print(f"{d.name:<{width}}  {d.title}: {functions}")
        return 0
    if args.command == "steps":
        from derive import claims

        every = [
            c
            for d in pipeline.derive_all(run_proofs=False)
            if not args.names or d.derivation.name in args.names
            for c in claims.claims(d.derivation)
        ]
        if args.try_all:
            failed = False
            for d in pipeline.derive_all(run_proofs=False):
                if not args.names or d.derivation.name in args.names:
                    try:
                        claims.check_chain(d.derivation)
                    except claims.StepFailed as problem:
                        print(f"chain: {problem}")
                        failed = True
            for c in every:
                print(f"{c.page} step {c.number} ({c.title}), declared {c.checked}:")
                for method, outcome in claims.try_methods(c).items():
                    print(f"    {method:<9} {outcome}")
                    failed |= method == c.checked and outcome != "holds"
            return 1 if failed else 0
        if args.json:
            import json

            print(json.dumps([claims.catalogue_entry(c) for c in every], indent=1))
        else:
            for c in every:
                print(f"{c.page:<26} {c.number:>3} {c.relation:<10} {c.checked:<9} {c.title}")
        return 0
    if args.command == "check":
        try:
            problems = pipeline.check()
        except pipeline.BuildError as error:
            print(f"check failed, nothing was checked:\n  {error}", file=sys.stderr)
            return 1
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python -m derive build` to regenerate", file=sys.stderr)
            return 1
        print("generated files are up to date")
        return 0
    raise AssertionError(f"unhandled command {args.command}")  # parser() lists only these


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def build(figures: bool = True, force: bool = False, log=print, error=_to_stderr) -> int:
    """``python -m derive build``: its exit code; ``log`` gets its progress, ``error`` its
    failure (``derive.warm`` passes its own, to answer ``mkdocs serve``'s hook)."""
    from derive import (
        cache,  # no SymPy: a build with nothing to do stays instant
        litter,  # what a killed build left: the build must clean it up
    )

    if not force and cache.up_to_date(figures=figures) and not litter.found():
        log("nothing changed since the last build: every output is up to date (--force to rebuild)")
        return 0
    from derive import build as pipeline

    try:
        pipeline.build(log=log, figures=figures, force=force)
    except pipeline.RestoreFailed as failure:
        error(
            f"build failed, and some previous outputs could not be put back:\n  {failure}\n"
            "run `python -m derive build` again: it restores them first"
        )
        return 1
    except pipeline.BuildError as failure:
        error(f"build failed, previous outputs left as they were:\n  {failure}")
        return 1
    return 0
