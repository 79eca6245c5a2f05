"""``python -m derive build | check | list | steps | show | new``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m derive",
        description="Derive the softmax layer's derivatives with SymPy; generate code and pages.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", help="derive, prove, and write the generated files that changed"
    )
    build.add_argument("--no-figures", action="store_true", help="skip the matplotlib figures")
    build.add_argument(
        "--force",
        action="store_true",
        help="ignore the cache (.derive-cache/): derive and prove everything again",
    )
    commands.add_parser("check", help="exit 1 if a generated file is stale or was edited by hand")
    commands.add_parser("list", help="list the registered derivations")
    commands.add_parser("nav", help="print the derivation pages for the site's nav, as JSON")
    steps = commands.add_parser(
        "steps", help="list every displayed step with its context and how the build checks it"
    )
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
    show = commands.add_parser(
        "show", help="print a derivation's definitions and steps in the terminal (no build)"
    )
    show.add_argument("name", help="a registered derivation")
    show.add_argument("--latex", action="store_true", help="LaTeX instead of Unicode")
    new = commands.add_parser(
        "new", help="write a derivation module from a forward definition, and its registry line"
    )
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
    args = parser.parse_args(argv)

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

    if args.command == "build" and not args.force:
        from derive import cache  # no SymPy: a build with nothing to do stays instant

        if cache.up_to_date(figures=not args.no_figures):
            print(
                "nothing changed since the last build: every output is up to date "
                "(--force to rebuild)"
            )
            return 0

    if args.command == "nav":
        import json

        from derive.site import derivation_nav

        print(json.dumps(derivation_nav()))
        return 0

    from derive import build as pipeline  # imported late: `--help` stays instant

    if args.command == "list":
        for derived in pipeline.derive_all(run_proofs=False):
            d = derived.derivation
            kernels = ", ".join(k.name for k in d.kernels)
            print(f"{d.name:<20} {d.title}: {kernels}")
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
    try:
        pipeline.build(figures=not args.no_figures, force=args.force)
    except pipeline.RestoreFailed as error:
        print(
            f"build failed, and some previous outputs could not be put back:\n  {error}\n"
            "run `python -m derive build` again: it restores them first",
            file=sys.stderr,
        )
        return 1
    except pipeline.BuildError as error:
        print(f"build failed, previous outputs left as they were:\n  {error}", file=sys.stderr)
        return 1
    return 0
