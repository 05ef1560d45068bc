"""Execute: one submission read, checked and run in its sandboxed kernel, every cell, then the export cell."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twdl_helpers.params import check_notebook_parameters, run_parameters

from ..execute import ExecutionResult, one_line, run_notebook
from ..repo import batch_environment, view_environment
from .export import EXPORT_SECONDS, export_cell, new_export_folder
from .plan import GradeTask

__all__ = ["Prepared", "Executed", "prepare", "execute"]


@dataclass
class Prepared:
    """A submission ready to run: the notebook, its copy in the work directory, the parameters it will run with."""

    notebook: Any
    local: Path
    parameters: dict[str, Any]  # the declared defaults, updated with the injected values


def _read_notebook(task: GradeTask) -> tuple[Any, str]:
    import nbformat

    try:
        text = Path(task.source).read_bytes().decode("utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # malformed JSON, wrong schema, not UTF-8
        return None, f"not a valid notebook ({type(err).__name__}: {one_line(str(err), 200)})"
    if not any(c.cell_type == "code" and c.source.strip() for c in nb.cells):
        return None, "the notebook is empty (it has no code to run)"
    return nb, ""


def prepare(task: GradeTask) -> Prepared | str:
    """A fresh work directory holding the submission, or why it cannot run (not a notebook, bad parameters)."""
    import nbformat

    task.executed.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(task.workdir, ignore_errors=True)
    task.workdir.mkdir(parents=True)
    nb, problem = _read_notebook(task)
    if nb is None:
        task.executed.unlink(missing_ok=True)
        return problem
    local = task.workdir / f"{task.submission}.ipynb"
    nbformat.write(nb, str(local))
    problems = check_notebook_parameters(local, task.parameters)
    if problems:
        return "the notebook was not run: " + problems[0]
    return Prepared(nb, local, run_parameters(nb, task.parameters))


@dataclass
class Executed:
    """One run: what the executor reported, the export folder's name in the work directory, the executed notebook."""

    result: ExecutionResult
    folder: str
    notebook: Any  # None when no executed notebook could be read back


def execute(task: GradeTask, prepared: Prepared, exports: list[str] | None) -> Executed:
    """Run every cell (in the sandbox), then, when `exports` is given, the export cell."""
    import nbformat

    folder = new_export_folder() if exports is not None else ""
    env = batch_environment(figures=False, extra={**task.env, **view_environment(task.view)})  # built where it runs
    after = [export_cell(exports, folder)] if exports is not None else []
    timeout = task.timeout + EXPORT_SECONDS if task.timeout and after else task.timeout
    result = run_notebook(prepared.local, task.executed, task.parameters, cwd=task.workdir, timeout=timeout,
                          limits=task.limits, kernel=task.kernel, env=env, max_output_chars=task.max_output_chars,
                          scratch=Path(task.out_dir) / ".twdl" / "scratch", sandbox=task.sandbox, allow_errors=True,
                          after_cells=after)
    try:
        executed = nbformat.read(str(task.executed), as_version=4)
    except Exception:  # no readable executed notebook: no cell errors to attribute
        executed = None
    return Executed(result, folder, executed)
