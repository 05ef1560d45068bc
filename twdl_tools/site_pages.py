"""The site's module pages: each module executed in the full profile (notebooks/full/0k_name.ipynb), a header cell
that says how it was run (profile, parameters, hardware, data, minutes, date, commit), and the check `twdl book`
makes that every page exists and was executed from the current source."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from twdl_helpers.data.fetch import banner_lines

from .notebooks import solution_cells
from .repo import module_notebooks, notebooks_dir, site_pages_dir

__all__ = ["HEADER_TAG", "RUN_METADATA", "site_page_path", "cpu_model", "hardware_line", "page_header",
           "add_page_header", "site_page_problems"]

HEADER_TAG = "site-run-header"  # the markdown cell added after a page's title
RUN_METADATA = "twdl_site_run"  # notebook metadata key: how the page was executed
INJECTED = "injected-parameters"  # papermill's tag on the cell it adds after the parameters cell
SETUP_LINE = re.compile(r"^profile (\S+), device (.+?)(?:, (\d+) CPU thread\(s\))?, seed (-?\d+)$", re.M)


def site_page_path(root: Path, stem: str) -> Path:
    """Where module `stem`'s site page lives."""
    return site_pages_dir(root) / f"{stem}.ipynb"


def cpu_model() -> str:
    """This machine's CPU model name (from /proc/cpuinfo on Linux), or what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _printed(nb: Any) -> str:
    """Everything the notebook printed (stream outputs), one string."""
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")


def hardware_line(nb: Any) -> str:
    """The hardware an executed notebook ran on, from its setup line (`profile ..., device ..., seed ...`): the GPU
    it names, or this machine's CPU model and the threads torch used."""
    found = SETUP_LINE.search(_printed(nb))
    if found is None:
        return f"CPU: {cpu_model()} (the notebook printed no setup line)"
    device, threads = found.group(2), found.group(3)
    if device.startswith("cpu"):
        return f"CPU: {cpu_model()}, {threads or os.environ.get('OMP_NUM_THREADS', '?')} thread(s)"
    return f"GPU: {device}"


def _commit(root: Path, source: Path) -> str:
    """The checkout's commit, with a note when the module's source differs from it."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    if git("status", "--porcelain", "--", str(source.relative_to(root))):
        commit += f" (with uncommitted changes to {source.relative_to(root).as_posix()})"
    return commit


def _escape(text: str) -> str:
    """Text shown literally in Markdown (no maths from '$', no emphasis from '*' or '_')."""
    return re.sub(r"([\\`*_$\[\]<>|#])", r"\\\1", text)


def _condensed(lines: list[str]) -> list[str]:
    """Banner lines, each after the first shown from the last bracket or word before it differs from the first."""
    shown = lines[:1]
    for line in lines[1:]:
        same = len(os.path.commonprefix([lines[0], line]))
        start = max(line.rfind("(", 0, same), line.rfind("; ", 0, same) + 1)
        shown.append("also …" + line[start:].lstrip() if start > 0 else line)
    return shown


def page_header(run: dict[str, Any]) -> str:
    """The Markdown of a page's header cell, from the run's metadata."""
    changed = run["parameters"]
    given = ", ".join(f"`{name}={value!r}`" for name, value in changed.items()) or "none (the notebook's defaults)"
    data = "; ".join(_escape(line) for line in _condensed(run["data"])) or "no loader announced its data"
    load = (f" (the machine's load average was {run['load']:.1f} on {run['cores']} CPU cores when it finished)"
            if run.get("load") is not None else "")
    return "\n".join([
        f"> **How this page was run.** Profile **{run['profile']}** (the course's settings; a notebook opens in the "
        f"quick `smoke` profile), executed by `twdl execute-references --profile {run['profile']}`.",
        ">",
        f"> - Parameters other than the profile's defaults: {given}",
        f"> - Hardware: {_escape(run['hardware'])}",
        f"> - Data: {data}",
        f"> - Time: {run['minutes']:.1f} minutes{load}, on {run['date']} (UTC)",
        f"> - Source: commit {_escape(run['commit'])}",
    ])


def add_page_header(nb: Any, root: Path, stem: str, parameters: dict[str, Any], seconds: float) -> Any:
    """Insert (or replace) the header cell after the title cell and keep the run's facts in the metadata."""
    import nbformat

    changed = {k: v for k, v in parameters.items() if k != "profile"}
    run = {"profile": parameters.get("profile", "smoke"), "parameters": changed, "hardware": hardware_line(nb),
           "data": banner_lines(_printed(nb)), "minutes": seconds / 60,
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
           "commit": _commit(root, notebooks_dir(root) / f"{stem}.py"),
           "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None, "cores": os.cpu_count()}
    nb.cells = [c for c in nb.cells if HEADER_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_markdown_cell(page_header(run), metadata={"tags": [HEADER_TAG]})
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, cell)
    nb.metadata[RUN_METADATA] = run
    return nb


def _page_cells(nb: Any) -> list[tuple[str, str]]:
    """(cell type, source) of each cell a page was executed from: its header and papermill's injected cell aside."""
    return [(c.cell_type, c.source) for c in nb.cells
            if not {INJECTED, HEADER_TAG} & set(c.get("metadata", {}).get("tags", []))]


def site_page_problems(root: Path) -> list[str]:
    """What keeps the site's module pages from showing the current course at full settings: a page missing, run in
    another profile, or executed from another version of the source (its cells, code and text, differ from what
    notebooks/0k_name.py gives now; its header and papermill's injected parameters cell aside)."""
    import nbformat

    problems = []
    for source in module_notebooks(notebooks_dir(root), ".py"):
        page, stem = site_page_path(root, source.stem), source.stem
        fix = f"run `twdl execute-references --profile full {stem}`"
        where = page.relative_to(root).as_posix()
        if not page.is_file():
            problems.append(f"{where} (the full-profile page; {fix})")
            continue
        nb = nbformat.read(str(page), as_version=4)
        profile = nb.metadata.get(RUN_METADATA, {}).get("profile")
        if profile != "full":
            problems.append(f"{where} was not executed in the full profile (found {profile!r}; {fix})")
            continue
        current, executed = solution_cells(root, stem), _page_cells(nb)
        if current != executed:
            first = next((i for i, (a, b) in enumerate(zip(current, executed)) if a != b),
                         min(len(current), len(executed)))
            kind = current[first][0] if first < len(current) else executed[first][0]
            problems.append(f"{where} was executed from another version of {source.relative_to(root).as_posix()} "
                            f"(cell {first + 1}, {kind}, differs; {len(executed)} cells executed, {len(current)} "
                            f"now; {fix})")
    pages = {p.stem for p in module_notebooks(site_pages_dir(root))}
    sources = {p.stem for p in module_notebooks(notebooks_dir(root), ".py")}
    problems += [f"{site_page_path(root, stem).relative_to(root).as_posix()} has no notebooks/{stem}.py source "
                 f"(delete it)" for stem in sorted(pages - sources)]
    return problems
