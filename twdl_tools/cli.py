"""The `twdl` command line: each subcommand lives in the module named here (imported only when used)."""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and main(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("twdl_tools.run", "execute module notebooks with papermill (smoke or full profile)"),
    "grade": ("twdl_tools.grading.command", "execute and grade a folder of student notebooks"),
    "autograder": ("twdl_tools.grading.services", "build a Gradescope or PrairieLearn autograder for a module"),
    "sync": ("twdl_tools.notebooks", "regenerate solution and student .ipynb from the .py sources"),
    "execute-references": ("twdl_tools.references", "re-execute the committed reference notebooks"),
    "book": ("twdl_tools.site", "build the Jupyter Book site offline"),
    "bench": ("twdl_tools.bench", "run the benchmark scripts and write docs/benchmarks.md"),
    "lm": ("twdl_tools.lm_pretrain", "language-model tools: `twdl lm pretrain` builds the bundled small LM"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="twdl", description="Thinking with Deep Learning, week 2: course tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            try:
                mod = importlib.import_module(module)
            except ImportError as err:  # the runtime alone was installed
                raise SystemExit(f"twdl {name} needs the course tooling's dependencies ({err}); install them with "
                                 '`pip install "twdl-helpers[tools]"` (or `make install` in the repository)') from err
            adder = getattr(mod, f"add_{name.replace('-', '_')}_arguments", None) or mod.add_arguments
            adder(p)
            p.set_defaults(handler=getattr(mod, f"{name.replace('-', '_')}_main", None) or mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `twdl` console script."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if command is None else 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
