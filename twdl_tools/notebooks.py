"""`twdl sync`: generate the solution and student notebooks from the jupytext .py sources.

The jupytext percent files `notebooks/0k_name.py` are the only source. `sync` writes
`notebooks/0k_name.ipynb` (solutions) and `notebooks/student/0k_name.ipynb` (homework blocks replaced
by `raise NotImplementedError(hint)`, a written answer's solution block left out), rewrites the Colab badge
and the colab-setup cell from `REPOSITORY_URL`, puts above each question a heading that states its points and how
they are earned (twdl_tools/grading/headings.py), and writes the grader-only check file `autograder/0k_name.py` of every notebook that declares
questions (hidden check cells appear in neither generated notebook; see twdl_tools/grading/checkfile.py).
Outputs of a solution notebook survive a sync only while every code cell (source and
tags) is unchanged: markdown edits keep the executed references, any code edit drops them all (run
`make references` again) so that no notebook shows outputs produced by other code.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twdl_helpers import REPOSITORY_URL
from twdl_helpers.files import atomic_write

from .grading.checkfile import CHECKS_DIR, check_file_path, check_file_text, is_hidden_cell, split_solution
from .grading.headings import question_headings, strip_headings, with_headings
from .repo import find_root, module_notebooks, notebooks_dir

__all__ = ["SyncReport", "colab_setup_source", "colab_badge", "student_source", "sync", "finish_notebook", "solution_cells"]

STUDENT_DIR = "student"
FIX_COMMAND = "make sync"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_PATTERN = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
SETUP_CELL_PATTERN = re.compile(r"(^# %%[^\n]*[\"']colab-setup[\"'][^\n]*\n)(.*?)(?=^# %%|\Z)", re.S | re.M)
BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", re.compile(r"^\s*#\s*(Hint:.*?)\s*$")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _repository_url() -> str:
    return REPOSITORY_URL.rstrip("/")


def colab_setup_source() -> str:
    """The exact source of every notebook's colab-setup cell (installs the helpers on Colab only)."""
    return (
        "# Colab only: install the course helpers (keeping Colab's torch). Elsewhere: nothing.\n"
        "import subprocess, sys\n"
        'if "google.colab" in sys.modules:\n'
        '    helpers = ("twdl-helpers @ git+"\n'
        f'               "{_repository_url()}")\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", helpers], check=True)'
    )


def colab_badge(relative_path: str) -> str:
    """The markdown "Open In Colab" badge for a notebook at `relative_path` in the repository (main branch)."""
    repo = _repository_url().removeprefix("https://github.com/")
    return f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/github/{repo}/blob/main/{relative_path})"


def _canonical_source(text: str, notebook_path: str) -> str:
    """Return the .py source with its badge and colab-setup cell rewritten from REPOSITORY_URL (no question heading:
    those are generated into the .ipynb only)."""
    text = strip_headings(text)
    badge = colab_badge(notebook_path)
    if BADGE_PATTERN.search(text):
        text = BADGE_PATTERN.sub(lambda _: badge, text, count=1)
    else:  # insert after the title line of the first markdown cell
        title = re.search(r"^# # .*\n", text, re.M)
        if title is None:
            raise ValueError(f"{notebook_path}: expected a first markdown cell starting with '# # Title'; found none")
        text = text[: title.end()] + f"# {badge}\n" + text[title.end():]
    setup = "\n".join(f"{line}" for line in colab_setup_source().splitlines()) + "\n\n"
    if SETUP_CELL_PATTERN.search(text):
        return SETUP_CELL_PATTERN.sub(lambda m: m.group(1) + setup, text, count=1)
    headers = [m.start() for m in re.finditer(r"^# %%", text, re.M)]
    if len(headers) < 2:
        raise ValueError(f"{notebook_path}: expected a markdown title cell followed by code cells")
    cell = '# %% tags=["colab-setup"]\n' + setup
    return text[: headers[1]] + cell + text[headers[1]:]


def _hint_above(lines: list[str]) -> str | None:
    """The last `# Hint: ...` comment in `lines`, joined with the comment lines that continue it (wrapped hints)."""
    for start in range(len(lines) - 1, -1, -1):
        match = HINT.match(lines[start])
        if match:
            parts = [match.group(1)]
            for line in lines[start + 1:]:
                if not line.strip().startswith("#"):
                    break
                parts.append(line.strip().lstrip("#").strip())
            return " ".join(p for p in parts if p)
    return None


def student_source(source: str, where: str = "") -> str:
    """Replace each `### BEGIN SOLUTION` .. `### END SOLUTION` block by `raise NotImplementedError(<hint>)`."""
    lines, out, i = source.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() != BEGIN:
            if line.strip() == END:
                raise ValueError(f"{where}: '{END}' without a '{BEGIN}' above it")
            out.append(line)
            i += 1
            continue
        hint = _hint_above(out)
        if hint is None:
            raise ValueError(f"{where}: homework block has no '# Hint: ...' line above '{BEGIN}'; add a hint")
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END), None)
        if end is None:
            raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}raise NotImplementedError({json.dumps(hint)})")
        i = end + 1
    return "\n".join(out)


def _code_signature(nb: Any) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells if c.cell_type == "code"]


def finish_notebook(nb: Any) -> str:
    """The notebook as committed: fixed cell ids, no execution or papermill metadata, our kernelspec."""
    import nbformat

    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            cell.metadata.pop("tags")  # papermill adds empty tag lists
    for key in ("jupytext", "papermill", "widgets"):
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nbformat.writes(nb) + "\n"


def _solution_notebook(source_nb: Any, existing: Path) -> tuple[str, bool]:
    """Return (ipynb text, outputs_dropped). Outputs are kept only when every code cell is unchanged."""
    import nbformat

    nb = copy.deepcopy(source_nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if not existing.is_file():
        return finish_notebook(nb), False
    old = nbformat.read(str(existing), as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    if _code_signature(old) != _code_signature(nb):
        return finish_notebook(nb), any(c.get("outputs") for c in old_code)
    for cell, previous in zip((c for c in nb.cells if c.cell_type == "code"), old_code):
        cell.outputs, cell.execution_count = previous.get("outputs", []), previous.get("execution_count")
    for key in ("language_info",):
        if key in old.metadata:
            nb.metadata[key] = old.metadata[key]
    return finish_notebook(nb), False


def _student_notebook(source_nb: Any, name: str, badge_from: str, badge_to: str) -> str:
    nb = copy.deepcopy(source_nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(badge_from, badge_to)
            if BEGIN in cell.source:  # a written answer's model answer or rubric: for TAs only
                cell.source = split_solution(cell.source, f"{name} cell {index}")[0]
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if BEGIN in cell.source:
                cell.source = student_source(cell.source, f"{name} cell {index}")
                tags = list(cell.metadata.get("tags", []))
                cell.metadata["tags"] = tags + [t for t in ("homework", "raises-exception") if t not in tags]
    return finish_notebook(nb)


@dataclass
class SyncReport:
    """What `sync` found: files it (would) rewrite, outputs dropped, orphan notebooks."""

    changed: list[Path] = field(default_factory=list)
    dropped_outputs: list[Path] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every generated file already matches its source."""
        return not self.changed and not self.orphans

    def describe(self, root: Path) -> str:
        """Human-readable summary naming the fix command."""
        if self.clean:
            return "notebooks are in sync with their .py sources"
        rel = lambda paths: ", ".join(str(p.relative_to(root)) for p in paths)  # noqa: E731
        parts = []
        if self.changed:
            parts.append(f"out of sync: {rel(self.changed)}")
        if self.orphans:
            parts.append(f"notebooks without a .py source: {rel(self.orphans)}")
        return "; ".join(parts) + f". Run `{FIX_COMMAND}` (twdl sync) and commit the result."


def solution_cells(root: Path, stem: str) -> list[tuple[str, str]]:
    """(cell type, source) of each cell of module `stem`'s solution notebook as `twdl sync` builds it from
    notebooks/<stem>.py now."""
    import jupytext

    folder = notebooks_dir(root)
    source = folder / f"{stem}.py"
    canonical = _canonical_source(source.read_text(encoding="utf-8"),
                                  (folder / f"{stem}.ipynb").relative_to(root).as_posix())
    nb = jupytext.reads(canonical, fmt="py:percent")
    return [(c.cell_type, c.source) for c in _published_cells(nb, source.relative_to(root).as_posix())]


def _published_cells(source_nb: Any, where: str) -> list[Any]:
    """The cells of a solution notebook built from a source: hidden (grader-only) cells out, each question's
    heading in (points and criteria, in words)."""
    headings = question_headings(source_nb, where)
    return with_headings([c for c in source_nb.cells if not is_hidden_cell(c)], headings)


def sync(root: str | Path | None = None, check: bool = False, names: list[str] | None = None) -> SyncReport:
    """Regenerate (or with check=True only compare) the .py badge/setup cell, solution and student notebooks."""
    import jupytext

    root = find_root(root)
    folder = notebooks_dir(root)
    report = SyncReport()
    sources = module_notebooks(folder, ".py")
    if names:
        sources = [s for s in sources if s.stem in names or s.name in names]
    for source in sources:
        solution_path, student_path = folder / f"{source.stem}.ipynb", folder / STUDENT_DIR / f"{source.stem}.ipynb"
        rel_solution, rel_student = (path.relative_to(root).as_posix() for path in (solution_path, student_path))
        text = source.read_text(encoding="utf-8")
        canonical = _canonical_source(text, rel_solution)
        source_nb = jupytext.reads(canonical, fmt="py:percent")
        checks_text = check_file_text(source.stem, source_nb, source.relative_to(root).as_posix())  # validates questions
        source_nb.cells = _published_cells(source_nb, source.relative_to(root).as_posix())
        solution_text, dropped = _solution_notebook(source_nb, solution_path)
        student_text = _student_notebook(source_nb, source.name, colab_badge(rel_solution), colab_badge(rel_student))
        if dropped:
            report.dropped_outputs.append(solution_path)
        outputs = [(source, canonical), (solution_path, solution_text), (student_path, student_text)]
        checks_path = check_file_path(root, source.stem)
        if checks_text is not None:
            outputs.append((checks_path, checks_text))
        elif checks_path.is_file():  # the notebook no longer declares questions
            report.changed.append(checks_path)
            if not check:
                checks_path.unlink()
        for path, new in outputs:
            if not path.is_file() or path.read_text(encoding="utf-8") != new:
                report.changed.append(path)
                if not check:
                    atomic_write(path, new)
    if not names:
        stems = {s.stem for s in sources}
        generated = [*module_notebooks(folder), *module_notebooks(folder / STUDENT_DIR),
                     *module_notebooks(root / CHECKS_DIR, ".py")]
        for nb_path in generated:
            if nb_path.stem not in stems:
                report.orphans.append(nb_path)
                if not check:
                    nb_path.unlink()
        if not check:
            report.orphans = []
    return report


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl sync`."""
    parser.add_argument("names", nargs="*", help="notebook stems to sync (default: every notebooks/0k_*.py)")
    parser.add_argument("--check", action="store_true", help="only report drift; exit 1 when anything is out of sync")
    parser.add_argument("--root", default=None, help="repository root (default: found from the current folder)")


def sync_main(args: argparse.Namespace) -> int:
    """Entry point of `twdl sync`."""
    root = find_root(args.root)
    try:
        report = sync(root, check=args.check, names=args.names or None)
    except ValueError as err:  # a malformed homework block, question declaration or check cell
        print(f"twdl sync: {err}", file=sys.stderr)
        return 1
    if args.check:
        print(report.describe(root))
        return 0 if report.clean else 1
    for path in report.changed:
        print(f"wrote {path.relative_to(root)}")
    for path in report.dropped_outputs:
        print(f"code changed in {path.relative_to(root)}: its executed outputs were dropped; run `make references`")
    if not report.changed:
        print("nothing to do: notebooks already in sync")
    return 0


