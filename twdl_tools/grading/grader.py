"""`twdl grade SUBMISSIONS`: execute every student notebook in its own kernel process and tabulate the results."""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.record import completed_modules, flat_records, record_columns
from twdl_helpers.params import ParameterError, notebook_parameters, parse_parameter_values

from ..execute import ResourceLimits, one_line, run_notebook
from ..repo import batch_environment
from ..run import check_notebook_parameters, resolve_notebooks, thread_env
from ..sandbox import SANDBOX_MODES, Sandbox, SandboxUnavailable, sandbox_support, use_sandbox

__all__ = [
    "STATUSES", "GradeTask", "find_submissions", "student_name", "plan_tasks", "grade_submission", "grade_all",
    "grades_table", "add_arguments", "main",
]

STATUSES = ("ok", "error", "timeout", "invalid")
FIXED_COLUMNS = ["file", "student", "submission", "status", "failing_cell", "error", "runtime_s", "completed_modules"]
GRADE_SUFFIX = ".grade.json"
FORMAT_VERSION = 1


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

    def key(self) -> str:
        """Hash of the notebook's bytes and every setting that can change its grade (decides rerun skipping)."""
        settings = {"parameters": self.parameters, "timeout": self.timeout, "limits": asdict(self.limits),
                    "kernel": self.kernel, "format": FORMAT_VERSION, "sandbox": self.sandbox != "off"}
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


def find_submissions(paths: Iterable[str | Path], exclude: str | Path | None = None) -> list[tuple[Path, str]]:
    """Return (file, shown name) for each .ipynb in the given folders (recursively) or files, sorted."""
    found: list[tuple[Path, str]] = []
    excluded = Path(exclude).resolve() if exclude else None
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(given.rglob("*.ipynb")):
                resolved = path.resolve()
                if ".ipynb_checkpoints" in path.parts or (excluded and excluded in resolved.parents):
                    continue
                found.append((resolved, path.relative_to(given).as_posix()))
        elif given.exists():
            found.append((given.resolve(), given.name))
        else:
            raise FileNotFoundError(f"submission {given} does not exist; pass a folder of .ipynb files or .ipynb paths")
    return sorted(found, key=lambda item: (item[1], str(item[0])))


def student_name(shown: str, module: str | None = None) -> str:
    """The student a file belongs to: its first folder ("alice/01.ipynb"), else its stem minus the module name."""
    parts = Path(shown).parts
    if len(parts) > 1:
        return parts[0]
    stem = Path(shown).stem
    name = stem
    for word in filter(None, [module, module.split("_", 1)[-1] if module and "_" in module else None]):
        name = re.sub(re.escape(word), "", name, flags=re.IGNORECASE)
    name = name.strip(" _-.")
    return name or stem


def _safe_names(shown: list[str]) -> list[str]:
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
) -> list[GradeTask]:
    """One GradeTask per submission, with distinct output names."""
    out_dir = str(Path(out_dir).resolve())
    names = _safe_names([shown for _, shown in submissions])
    return [
        GradeTask(str(path), shown, name, student_name(shown, module), out_dir, dict(parameters), timeout, limits,
                  kernel, dict(env or {}), max_output_chars, sandbox)
        for (path, shown), name in zip(submissions, names)
    ]


def _row(task: GradeTask, status: str, error: str = "", cell: int | None = None, runtime: float = 0.0,
         records: dict[str, Any] | None = None) -> dict[str, Any]:
    records = records or {}
    return {"file": task.file, "student": task.student, "submission": task.submission, "status": status,
            "failing_cell": cell, "error": one_line(error), "runtime_s": runtime, "completed_modules": " ".join(completed_modules(records)),
            "records": records}


def _read_notebook(task: GradeTask):
    import nbformat

    try:
        text = Path(task.source).read_bytes().decode("utf-8")
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        return nb, ""
    except Exception as err:  # malformed JSON, wrong schema, not UTF-8
        return None, f"not a valid notebook ({type(err).__name__}: {one_line(str(err), 200)})"


def grade_submission(task: GradeTask) -> dict[str, Any]:
    """Grade one submission: validate it, execute it in its own directory and process tree, store its row.

    The same function runs in the local pool and on Dask workers; it never raises (a bug becomes an error row).
    """
    try:
        row = _grade(task)
    except Exception as err:
        row = _row(task, "error", f"grader failure: {type(err).__name__}: {err}")
        row["detail"] = traceback.format_exc(limit=5)
    if "detail" not in row:  # a grader failure is not a grade: the next run tries again
        try:
            atomic_write(task.grade_file, json.dumps({"key": task.key(), "row": row}, indent=1, default=str))
        except OSError:
            pass
    return row


def _grade(task: GradeTask) -> dict[str, Any]:
    import nbformat

    task.executed.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(task.workdir, ignore_errors=True)
    task.workdir.mkdir(parents=True)
    nb, problem = _read_notebook(task)
    if nb is None:
        task.executed.unlink(missing_ok=True)
        return _row(task, "invalid", problem)
    local = task.workdir / f"{task.submission}.ipynb"
    nbformat.write(nb, str(local))
    problems = check_notebook_parameters(local, task.parameters)
    if problems:
        return _row(task, "invalid", problems[0])
    scratch = Path(task.out_dir) / ".twdl" / "scratch"
    env = batch_environment(figures=False, extra=task.env)  # built where the task runs (a Dask worker too)
    result = run_notebook(local, task.executed, task.parameters, cwd=task.workdir, timeout=task.timeout,
                          limits=task.limits, kernel=task.kernel, env=env, max_output_chars=task.max_output_chars,
                          scratch=scratch, sandbox=task.sandbox)
    row = _row(task, result.status, result.error, result.cell_index, result.runtime_s, result.records)
    row["sandboxed"] = result.sandboxed  # kept in <submission>.grade.json, not a grades.csv column
    return row


def previous_row(task: GradeTask) -> dict[str, Any] | None:
    """The stored row of an earlier grading with the same notebook bytes and settings, else None."""
    try:
        stored = json.loads(task.grade_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    row = stored.get("row") if isinstance(stored, dict) else None
    if stored.get("key") != task.key() or not isinstance(row, dict) or row.get("status") not in STATUSES:
        return None
    if row["status"] != "invalid" and not task.executed.exists():
        return None
    return row


def _dask_map(tasks: list[GradeTask], address: str) -> Iterator[dict[str, Any]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    client = Client(address)
    try:
        futures = client.map(grade_submission, tasks, pure=False)
        owner = {future.key: task for future, task in zip(futures, tasks)}
        for future in dask_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # e.g. KilledWorker: the task itself never raises
                yield _row(owner[future.key], "error", f"grader failure on Dask: {type(err).__name__}: {err}")
    finally:
        client.close()


def _pool_map(tasks: list[GradeTask], jobs: int) -> Iterator[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each thread supervises one papermill process
        for future in as_completed([pool.submit(grade_submission, t) for t in tasks]):
            yield future.result()


def grade_all(tasks: list[GradeTask], *, jobs: int = 1, force: bool = False, scheduler: str | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Grade every task (skipping those already graded with the same key unless force); return rows sorted by file."""
    from tqdm.auto import tqdm

    rows, todo = [], []
    for task in tasks:
        old = None if force else previous_row(task)
        if old is not None:
            rows.append(old)
        else:
            todo.append(task)
    if progress and len(rows):
        print(f"{len(rows)} submission(s) already graded with the same notebook and settings: skipped "
              "(use --force to grade again)", file=sys.stderr)
    results = _dask_map(todo, scheduler) if scheduler else _pool_map(todo, jobs)
    for row in tqdm(results, total=len(todo), desc="grading", file=sys.stderr, disable=not progress or not todo):
        rows.append(row)
        if progress:
            tqdm.write(f"{row['status']:8s} {row['file']} ({row['runtime_s']:.1f} s)", file=sys.stderr)
    return sorted(rows, key=lambda r: (r["file"], r["submission"]))


def grades_table(rows: list[dict[str, Any]]):
    """grades.csv as a DataFrame: the fixed columns, the mK.completed flags, then every other recorded metric."""
    import pandas as pd

    flat = []
    for row in rows:
        flat.append({**{c: row.get(c) for c in FIXED_COLUMNS}, **flat_records(row.get("records", {}))})
    table = pd.DataFrame(flat, columns=record_columns({k for r in flat for k in r}, FIXED_COLUMNS))
    table["failing_cell"] = table["failing_cell"].astype("Int64")
    return table.sort_values(["file", "submission"]).reset_index(drop=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `twdl grade`."""
    parser.add_argument("submissions", nargs="*", help="a folder of student notebooks (searched recursively) or .ipynb files")
    parser.add_argument("--module", default=None, help="the module the submissions answer (checks -p against it, names students)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="inject a parameter into every submission (e.g. -p profile=smoke); repeatable")
    parser.add_argument("--out", default="grades", help="output folder (default: grades)")
    parser.add_argument("--jobs", type=int, default=2, help="submissions executed at the same time (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="wall-clock seconds per submission (default 600)")
    parser.add_argument("--memory-mb", type=int, default=8192,
                        help="address-space limit per process in MB (RLIMIT_AS; torch alone maps ~3.5 GB; 0 = none)")
    parser.add_argument("--cpu-seconds", type=int, default=None,
                        help="CPU-time limit per process (RLIMIT_CPU; default timeout x threads + 60; 0 = none)")
    parser.add_argument("--file-mb", type=int, default=512, help="largest file a submission may write (RLIMIT_FSIZE; 0 = none)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: python3)")
    parser.add_argument("--max-output-chars", type=int, default=100_000, help="longer text outputs are cut in the kept notebooks")
    parser.add_argument("--histogram", default=None, help="metric shown as a histogram in report.html (default: the most common numeric one)")
    parser.add_argument("--force", action="store_true", help="grade again submissions already graded with the same settings")
    parser.add_argument("--scheduler", default=None, help="address of a dask.distributed scheduler to run the tasks on")
    parser.add_argument("--sandbox", choices=SANDBOX_MODES, default="auto",
                        help="run each submission in a bubblewrap sandbox: auto (default: where supported), on (fail "
                             "where it is not), off (as your user, with your files and network)")
    parser.add_argument("--check-sandbox", action="store_true",
                        help="run the sandbox's probes on this machine, report, and exit (0 when all pass)")


def _precheck(args: argparse.Namespace, values: dict[str, Any], submissions: list[tuple[Path, str]]) -> list[str]:
    """Problems that concern every submission (a TA's typo): fail before any kernel starts."""
    if not values:
        return []
    if args.module:
        return [f"{nb.name}: {p}" for nb in resolve_notebooks(args.module) for p in check_notebook_parameters(nb, values)]
    declared_sets = []
    for path, _ in submissions:
        try:
            found = notebook_parameters(path)
        except Exception:  # invalid submissions are reported per row later
            continue
        if found is not None:
            declared_sets.append(set(found))
    unknown = sorted(n for n in values if declared_sets and not any(n in d for d in declared_sets))
    if unknown:
        return [f"no submission declares parameter(s) {unknown} in its parameters cell"]
    return []


def _sandbox_precheck(args: argparse.Namespace, paths: list[str], env: dict[str, str]) -> str:
    """Why the sandbox cannot grade here (--sandbox on without support, or a folder it would show); warn for off/auto."""
    if args.sandbox == "off":
        print("twdl grade: warning: --sandbox off: submissions run as your user and can read and change your files "
              "(other submissions, grades, your home) and use your network; use it only for code you trust",
              file=sys.stderr)
        return ""
    if args.scheduler:  # each Dask worker checks its own machine (a failure there becomes that submission's row)
        return ""
    try:
        if not use_sandbox(args.sandbox):
            print(f"twdl grade: warning: no sandbox: {sandbox_support().reason}; submissions run as your user "
                  "(pass --sandbox on to refuse instead)", file=sys.stderr)
            return ""
        probe = Sandbox(Path(args.out).resolve() / "work", batch_environment(figures=False, extra=env),
                        args.kernel or "python3")
    except SandboxUnavailable as err:
        return str(err)
    for path in paths:
        root = probe.exposes(path)
        if root is not None:
            return (f"{path} lies inside {root}, which the sandbox shows every submission (read-only); move it, or "
                    "the data mirror/cache/environment, so that they do not overlap")
    return ""


def main(args: argparse.Namespace) -> int:
    """Run `twdl grade`; 0 when every submission was graded (whatever its status), 2 for bad arguments."""
    from .report import choose_histogram_metric, write_report  # noqa: F401  (matplotlib: only when reporting)

    if args.check_sandbox:
        from ..sandbox_check import check_sandbox

        return check_sandbox()
    if not args.submissions:
        print("twdl grade: pass a folder of submissions or .ipynb files (or --check-sandbox)", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        values = parse_parameter_values(args.parameter)
        submissions = find_submissions(args.submissions, exclude=out)
        problems = _precheck(args, values, submissions)
    except (FileNotFoundError, ValueError, ParameterError) as err:
        print(f"twdl grade: {err}", file=sys.stderr)
        return 2
    if problems:
        print("\n".join(f"twdl grade: {p}" for p in problems), file=sys.stderr)
        return 2
    if not submissions:
        print(f"twdl grade: no .ipynb files found in {' '.join(args.submissions)}", file=sys.stderr)
        return 2
    env = {**thread_env(args.jobs), "TWDL_GRADING": "1"}
    problem = _sandbox_precheck(args, [p for p in args.submissions] + [str(out)], env)
    if problem:
        print(f"twdl grade: {problem}", file=sys.stderr)
        return 2
    threads = int(env["OMP_NUM_THREADS"])
    cpu = args.cpu_seconds if args.cpu_seconds is not None else (int(args.timeout * threads + 60) if args.timeout else 0)
    limits = ResourceLimits(args.memory_mb or None, cpu or None, args.file_mb or None)
    module = resolve_notebooks(args.module)[0].stem if args.module else None
    tasks = plan_tasks(submissions, out, values, module=module, timeout=args.timeout or None, limits=limits,
                       kernel=args.kernel or "python3", env=env, max_output_chars=args.max_output_chars,
                       sandbox=args.sandbox)
    rows = grade_all(tasks, jobs=args.jobs, force=args.force, scheduler=args.scheduler)
    table = grades_table(rows)
    atomic_write(out / "grades.csv", table.to_csv(index=False))
    metric = args.histogram or choose_histogram_metric(table)
    write_report(table, out / "report.html", histogram_metric=metric, title=f"Grades: {', '.join(args.submissions)}")
    counts = table["status"].value_counts().to_dict()
    print(f"graded {len(table)} submission(s): " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
          + f"; see {out / 'grades.csv'} and {out / 'report.html'}")
    unconfined = [row["file"] for row in rows if row.get("sandboxed") is False and row["status"] != "invalid"]
    if args.sandbox != "off" and unconfined:
        print(f"twdl grade: warning: {len(unconfined)} submission(s) ran without the sandbox (unsupported where they "
              "ran; see `twdl grade --check-sandbox`)", file=sys.stderr)
    for row in rows:
        if row["status"] != "ok":
            where = f" (cell {row['failing_cell']})" if row.get("failing_cell") is not None else ""
            print(f"  {row['status']}: {row['file']}{where}: {row['error']}", file=sys.stderr)
    return 0
