"""`twdl book`: build the Jupyter Book site offline from the committed full-profile pages (notebooks/full/), checking
that each was executed from the current source, and checking the build's warnings."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .repo import find_root, module_notebooks, notebooks_dir
from .site_pages import site_page_problems

__all__ = ["ALLOWED_WARNINGS", "BookBuild", "build_book", "unexpected_warnings", "missing_inputs"]

# Build warnings accepted on purpose (regex, why). Everything else fails `twdl book`.
ALLOWED_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"skipping unknown output mime type: application/vnd\.twdl\.record\+json",
     "myst-nb warns once per record bundle (the machine-readable twin that graders read); the page shows the "
     "record's text/plain form, which is what we want"),
)
WARNING_LINE = re.compile(r"(WARNING|ERROR|CRITICAL):")
FRAGMENTS = ("docs/fixes_m1.md", "docs/fixes_m2.md", "docs/fixes_m3.md", "docs/fixes_m4.md")


@dataclass
class BookBuild:
    """Result of a build: where the HTML is, the warnings seen and those not on the allow-list."""

    html: Path
    returncode: int
    warnings: list[str]
    unexpected: list[str]
    log: str

    @property
    def ok(self) -> bool:
        """True when the build succeeded with no unexpected warning."""
        return self.returncode == 0 and not self.unexpected


def unexpected_warnings(log: str, allowed: tuple[tuple[str, str], ...] = ALLOWED_WARNINGS) -> tuple[list[str], list[str]]:
    """Return (all warning lines, those not matched by the allow-list) from a build log."""
    seen = [line.strip() for line in log.splitlines() if WARNING_LINE.search(line)]
    bad = [line for line in seen if not any(re.search(pattern, line) for pattern, _ in allowed)]
    return seen, bad


def missing_inputs(root: Path) -> list[str]:
    """Return what the site needs that is not in the checkout: fix fragments, module sources, and each module's
    full-profile page executed from the current source (`site_page_problems`)."""
    missing = [f"{name} (written by the module's helper, included by docs/fixes.md)"
               for name in FRAGMENTS if not (root / name).is_file()]
    if not module_notebooks(notebooks_dir(root), ".py"):
        missing.append("notebooks/0k_*.py (the module sources)")
    return missing + site_page_problems(root)


def build_book(root: str | Path | None = None, allow_missing: bool = False) -> BookBuild:
    """Build _build/html with jupyter-book (no execution, fresh build) and classify its warnings."""
    root = find_root(root)
    missing = missing_inputs(root)
    if missing and not allow_missing:
        raise FileNotFoundError("the site cannot be built yet; missing: " + "; ".join(missing))
    shutil.rmtree(root / "_build", ignore_errors=True)
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "--builder", "html",
               "--all", "--keep-going"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    log = done.stdout + "\n" + done.stderr
    seen, bad = unexpected_warnings(log)
    return BookBuild(root / "_build" / "html", done.returncode, seen, bad, log)


def add_book_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl book`."""
    parser.add_argument("--root", default=None, help="repository root (default: found from the current folder)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="build even when fix fragments or full-profile pages are missing or stale (drafts only)")


def book_main(args: argparse.Namespace) -> int:
    """Entry point of `twdl book`."""
    try:
        build = build_book(args.root, allow_missing=args.allow_missing)
    except FileNotFoundError as error:
        print(f"twdl book: {error}", file=sys.stderr)
        return 1
    if build.returncode != 0:
        print(build.log[-6000:], file=sys.stderr)
        print(f"twdl book: jupyter-book failed (exit {build.returncode}); its log is above", file=sys.stderr)
        return 1
    allowed = len(build.warnings) - len(build.unexpected)
    if build.unexpected:
        print("twdl book: warnings not on the allow-list (twdl_tools/site.py ALLOWED_WARNINGS):", file=sys.stderr)
        print("\n".join(f"  {line}" for line in build.unexpected), file=sys.stderr)
        return 1
    print(f"site built in {build.html} ({allowed} allowed warning(s)); open {build.html / 'index.html'}")
    return 0
