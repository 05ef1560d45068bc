"""Plan a grading: which files are submissions, whose they are, and one task per submission with its settings."""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..execute import ResourceLimits
from .checkfile import CHECKS_DIR

__all__ = ["GradeTask", "FORMAT_VERSION", "find_submissions", "student_name", "safe_names", "plan_tasks",
           "check_file_for"]

FORMAT_VERSION = 3  # 3: checks run in the trusted scorer on exported claims; 2: checks ran in the kernel
GRADE_SUFFIX = ".grade.json"


@dataclass(frozen=True)
class GradeTask:
    """Everything one worker needs to grade one submission (picklable: the same task runs locally or on Dask)."""

    source: str  # the submitted file (absolute)
    file: str  # as shown in grades.csv (relative to the submissions folder)
    submission: str  # distinct, file-system-safe name of its outputs
    student: str
    out_dir: str
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = 600.0
    limits: ResourceLimits = ResourceLimits()
    kernel: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    max_output_chars: int = 100_000
    sandbox: str = "auto"  # auto | on | off, resolved where the task runs (a Dask worker checks its own machine)
    checks: str | None = None  # the module's check file (None: execute and tabulate only, no scores)
    check_budget: float = 120.0  # seconds all checks of one submission may take together (in the scorer)
    view: dict[str, str] = field(default_factory=dict)  # the data view (dataview.DataView fields), {} for none

    def key(self) -> str:
        """Hash of the notebook's bytes, the check file's text and every setting that can change its grade."""
        checks = hashlib.sha256(Path(self.checks).read_bytes()).hexdigest() if self.checks else None
        settings = {"parameters": self.parameters, "timeout": self.timeout, "limits": asdict(self.limits),
                    "kernel": self.kernel, "format": FORMAT_VERSION, "sandbox": self.sandbox != "off",
                    "checks": checks, "budget": self.check_budget, "view": self.view}
        digest = hashlib.sha256(Path(self.source).read_bytes())
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    @property
    def executed(self) -> Path:
        """Where the executed notebook goes."""
        return Path(self.out_dir) / "executed" / f"{self.submission}.ipynb"

    @property
    def grade_file(self) -> Path:
        """Where this submission's row and key are stored (beside the executed notebook)."""
        return self.executed.with_suffix(GRADE_SUFFIX)

    @property
    def workdir(self) -> Path:
        """The submission's own working directory (the kernel's current directory)."""
        return Path(self.out_dir) / "work" / self.submission

    @property
    def claims(self) -> Path:
        """Where the grader keeps its copy of the submission's exported claims (outside the work directory)."""
        return Path(self.out_dir) / ".twdl" / "claims" / self.submission


def find_submissions(paths: Iterable[str | Path], exclude: str | Path | None = None) -> list[tuple[Path, str]]:
    """Return (file, shown name) for each .ipynb in the given folders (recursively) or files, sorted."""
    found: list[tuple[Path, str]] = []
    excluded = Path(exclude).resolve() if exclude else None
    for given in map(Path, paths):
        if given.is_dir():
            inside = excluded is not None and excluded in given.resolve().parents  # e.g. a zip unpacked into --out
            for path in sorted(given.rglob("*.ipynb")):
                resolved = path.resolve()
                if ".ipynb_checkpoints" in path.parts or (excluded and excluded in resolved.parents and not inside):
                    continue
                found.append((resolved, path.relative_to(given).as_posix()))
        elif given.exists():
            found.append((given.resolve(), given.name))
        else:
            raise FileNotFoundError(f"submission {given} does not exist; pass a folder of .ipynb files or .ipynb paths")
    return sorted(found, key=lambda item: (item[1], str(item[0])))


def student_name(shown: str, module: str | None = None) -> str:
    """The student a file belongs to: the sortable name of a Canvas download ("smithjohn_LATE_12345_678902_x.ipynb"),
    else its first folder ("alice/01.ipynb"), else its stem minus the module name."""
    from .canvas import parse_canvas_name

    canvas = parse_canvas_name(shown)
    if canvas is not None:
        return canvas.sortable_name
    parts = Path(shown).parts
    if len(parts) > 1:
        return parts[0]
    stem = Path(shown).stem
    name = stem
    for word in filter(None, [module, module.split("_", 1)[-1] if module and "_" in module else None]):
        name = re.sub(re.escape(word), "", name, flags=re.IGNORECASE)
    name = name.strip(" _-.")
    return name or stem


def safe_names(shown: list[str]) -> list[str]:
    """Distinct, file-system-safe output names, in the given order ("a/x.ipynb" -> "a__x"; clashes get -2, -3...)."""
    names, taken = [], set()
    for item in shown:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(Path(item).with_suffix("").parts)).strip("._") or "notebook"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def plan_tasks(
    submissions: list[tuple[Path, str]], out_dir: str | Path, parameters: dict[str, Any], *, module: str | None = None,
    timeout: float | None = 600.0, limits: ResourceLimits = ResourceLimits(), kernel: str | None = None,
    env: dict[str, str] | None = None, max_output_chars: int = 100_000, sandbox: str = "auto",
    checks: str | Path | None = None, check_budget: float = 120.0, view: dict[str, str] | None = None,
) -> list[GradeTask]:
    """One GradeTask per submission, with distinct output names."""
    out_dir = str(Path(out_dir).resolve())
    names = safe_names([shown for _, shown in submissions])
    checks = str(Path(checks).resolve()) if checks else None
    return [
        GradeTask(str(path), shown, name, student_name(shown, module), out_dir, dict(parameters), timeout, limits,
                  kernel, dict(env or {}), max_output_chars, sandbox, checks, check_budget, dict(view or {}))
        for (path, shown), name in zip(submissions, names)
    ]


def check_file_for(module_notebook: Path) -> Path | None:
    """The check file `twdl sync` wrote for a module notebook (autograder/<stem>.py beside notebooks/), else None."""
    path = module_notebook.resolve().parent.parent / CHECKS_DIR / f"{module_notebook.stem}.py"
    return path if path.is_file() else None
