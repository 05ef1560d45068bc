"""`twdl sync` (generate solution and student notebooks from the .py sources) and `twdl execute-references`.

The jupytext percent files `notebooks/0k_name.py` are the only source. `sync` writes
`notebooks/0k_name.ipynb` (solutions) and `notebooks/student/0k_name.ipynb` (homework blocks replaced
by `raise NotImplementedError(hint)`), and rewrites the Colab badge and the colab-setup cell from
`REPOSITORY_URL`. Outputs of a solution notebook survive a sync only while every code cell (source and
tags) is unchanged: markdown edits keep the executed references, any code edit drops them all (run
`make references` again) so that no notebook shows outputs produced by other code.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import BATCH_VARIABLE

__all__ = [
    "SyncReport", "colab_setup_source", "colab_badge", "student_source", "sync", "execute_reference",
    "execute_references", "find_root", "reference_environment",
]

SOURCE_GLOB = "[0-9][0-9]_*.py"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
STUDENT_DIR = "student"
FIX_COMMAND = "make sync"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_PATTERN = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
SETUP_CELL_PATTERN = re.compile(r"(^# %%[^\n]*[\"']colab-setup[\"'][^\n]*\n)(.*?)(?=^# %%|\Z)", re.S | re.M)
BEGIN, END, HINT = "### BEGIN SOLUTION", "### END SOLUTION", re.compile(r"^\s*#\s*(Hint:.*?)\s*$")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _repository_url() -> str:
    from . import REPOSITORY_URL

    return REPOSITORY_URL.rstrip("/")


def find_root(start: str | Path | None = None) -> Path:
    """Return the repository root: the nearest folder at or above `start` (default: cwd) holding jupytext.toml."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "jupytext.toml").is_file() and (folder / "notebooks").is_dir():
            return folder
    package_root = Path(__file__).resolve().parents[1]
    if (package_root / "jupytext.toml").is_file():
        return package_root
    raise FileNotFoundError(f"no repository root (a folder with jupytext.toml and notebooks/) at or above {here}; "
                            "run this command inside the course repository")


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
    """Return the .py source with its badge and colab-setup cell rewritten from REPOSITORY_URL."""
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
        hint = next((m.group(1) for m in map(HINT.match, reversed(out)) if m), None)
        if hint is None:
            raise ValueError(f"{where}: homework block has no '# Hint: ...' line above '{BEGIN}'; add one-line hint")
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == END), None)
        if end is None:
            raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}raise NotImplementedError({json.dumps(hint)})")
        i = end + 1
    return "\n".join(out)


def _code_signature(nb: Any) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells if c.cell_type == "code"]


def _finish(nb: Any) -> str:
    import nbformat

    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"
        cell.metadata.pop("execution", None)
    nb.metadata.pop("jupytext", None)
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
        return _finish(nb), False
    old = nbformat.read(str(existing), as_version=4)
    old_code = [c for c in old.cells if c.cell_type == "code"]
    if _code_signature(old) != _code_signature(nb):
        return _finish(nb), any(c.get("outputs") for c in old_code)
    for cell, previous in zip((c for c in nb.cells if c.cell_type == "code"), old_code):
        cell.outputs, cell.execution_count = previous.get("outputs", []), previous.get("execution_count")
    for key in ("language_info",):
        if key in old.metadata:
            nb.metadata[key] = old.metadata[key]
    return _finish(nb), False


def _student_notebook(source_nb: Any, name: str, badge_from: str, badge_to: str) -> str:
    nb = copy.deepcopy(source_nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(badge_from, badge_to)
        elif cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if BEGIN in cell.source:
                cell.source = student_source(cell.source, f"{name} cell {index}")
                tags = list(cell.metadata.get("tags", []))
                cell.metadata["tags"] = tags + [t for t in ("homework", "raises-exception") if t not in tags]
    return _finish(nb)


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


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; generated files get ordinary permissions
    os.replace(tmp, path)


def sync(root: str | Path | None = None, check: bool = False, names: list[str] | None = None) -> SyncReport:
    """Regenerate (or with check=True only compare) the .py badge/setup cell, solution and student notebooks."""
    import jupytext

    root = find_root(root)
    folder = root / "notebooks"
    report = SyncReport()
    sources = sorted(folder.glob(SOURCE_GLOB))
    if names:
        sources = [s for s in sources if s.stem in names or s.name in names]
    for source in sources:
        rel_solution = f"notebooks/{source.stem}.ipynb"
        rel_student = f"notebooks/{STUDENT_DIR}/{source.stem}.ipynb"
        text = source.read_text(encoding="utf-8")
        canonical = _canonical_source(text, rel_solution)
        source_nb = jupytext.reads(canonical, fmt="py:percent")
        solution_path, student_path = folder / f"{source.stem}.ipynb", folder / STUDENT_DIR / f"{source.stem}.ipynb"
        solution_text, dropped = _solution_notebook(source_nb, solution_path)
        student_text = _student_notebook(source_nb, source.name, colab_badge(rel_solution), colab_badge(rel_student))
        if dropped:
            report.dropped_outputs.append(solution_path)
        for path, new in ((source, canonical), (solution_path, solution_text), (student_path, student_text)):
            if not path.is_file() or path.read_text(encoding="utf-8") != new:
                report.changed.append(path)
                if not check:
                    _write_atomic(path, new)
    if not names:
        stems = {s.stem for s in sources}
        for nb_path in [*folder.glob(NOTEBOOK_GLOB), *(folder / STUDENT_DIR).glob(NOTEBOOK_GLOB)]:
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
    report = sync(root, check=args.check, names=args.names or None)
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


# ---------------------------------------------------------------- executed references

def reference_environment(root: Path, mirror: str | Path | None = None) -> dict[str, str]:
    """Environment for reference runs: offline, CPU only, deterministic hashing, the data mirror, inline figures."""
    mirror_path = Path(mirror) if mirror else root.parent / "shared" / "datasets"
    if not mirror_path.is_dir():
        raise FileNotFoundError(f"the offline data mirror was expected at {mirror_path} but is missing; "
                                "pass --mirror PATH (references must be made from the real data subsets)")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # Agg would hide figures in the notebook
    env.update({
        "TWDL_DATA_MIRROR": str(mirror_path.resolve()), "TWDL_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
        "PYTHONHASHSEED": "0", BATCH_VARIABLE: "1", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
    })
    return env


def _check_smoke_defaults(nb: Any, name: str) -> None:
    from .params import parse_parameters

    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"{name}: no cell tagged 'parameters'; references run the notebook's defaults")
    declared = parse_parameters(cells[0].source)
    if declared.get("profile", "smoke") != "smoke" or declared.get("device", "auto") not in ("auto", "cpu"):
        raise ValueError(f"{name}: references run the defaults, which must be profile='smoke' and device 'auto' or "
                         f"'cpu'; found profile={declared.get('profile')!r}, device={declared.get('device')!r}")


def _strip_volatile(nb: Any) -> None:
    """Drop progress-bar widget views (their state is not saved, so they would render as broken widgets)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]
            cell.metadata.pop("execution", None)


def execute_reference(path: Path, env: dict[str, str], timeout: int = 1800) -> Any:
    """Execute one solution notebook in its folder with `env` and return the executed notebook (not saved)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    _check_smoke_defaults(nb, path.name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _strip_volatile(nb)
    return nb


def execute_references(root: str | Path | None = None, names: list[str] | None = None,
                       mirror: str | Path | None = None, timeout: int = 1800) -> dict[str, float]:
    """Re-execute each solution notebook (smoke, CPU, offline) and write its outputs in place; return seconds each."""
    from tqdm.auto import tqdm

    root = find_root(root)
    report = sync(root, check=True, names=names)
    if not report.clean:
        raise RuntimeError(f"cannot make references from stale notebooks: {report.describe(root)}")
    env = reference_environment(root, mirror)
    paths = sorted((root / "notebooks").glob(NOTEBOOK_GLOB))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
    seconds: dict[str, float] = {}
    for path in tqdm(paths, desc="references", unit="notebook"):
        start = time.perf_counter()
        nb = execute_reference(path, env, timeout)
        text = _finish(nb)
        _write_atomic(path, text)
        seconds[path.name] = time.perf_counter() - start
        tqdm.write(f"{path.relative_to(root)}: executed in {seconds[path.name]:.0f} s")
    return seconds


def add_execute_references_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl execute-references`."""
    parser.add_argument("names", nargs="*", help="notebook stems (default: every notebooks/0k_*.ipynb)")
    parser.add_argument("--mirror", default=None, help="offline data mirror (default: ../shared/datasets)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--root", default=None, help="repository root (default: found from the current folder)")


def execute_references_main(args: argparse.Namespace) -> int:
    """Entry point of `twdl execute-references`."""
    try:
        seconds = execute_references(args.root, args.names or None, args.mirror, args.timeout)
    except Exception as error:  # noqa: BLE001  (one readable line, not a traceback, for CLI users)
        print(f"twdl execute-references: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"executed {len(seconds)} reference notebook(s) in {sum(seconds.values()):.0f} s")
    return 0
