"""`twdl grade SUBMISSIONS`: execute every student notebook in its own kernel process, run the module's checks, score.

Every cell runs even after one fails; then the module's check file (autograder/0k_name.py, written by `twdl sync`)
runs in the same kernel (twdl_tools/grading/kernel.py), and each question is scored (scoring.py). Outputs:
grades.csv, report.html, feedback/, manual/ (written answers for TAs) and canvas.csv.
"""
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
from twdl_helpers.records import completed_modules, flat_records, record_columns
from twdl_helpers.params import ParameterError, notebook_parameters, parse_parameter_values

from ..execute import ExecutionResult, ResourceLimits, one_line, run_notebook
from ..repo import batch_environment
from ..run import check_notebook_parameters, resolve_notebooks, thread_env
from ..sandbox import SANDBOX_MODES, Sandbox, SandboxUnavailable, sandbox_support, use_sandbox
from .checkfile import CHECKS_DIR, CheckFile, load_check_file
from .kernel import check_cell_source, new_nonce, results_from_outputs
from .scoring import finalize_row, score_questions

__all__ = [
    "STATUSES", "GradeTask", "find_submissions", "student_name", "plan_tasks", "grade_submission", "grade_all",
    "grades_table", "check_file_for", "write_outputs", "add_arguments", "main",
]

STATUSES = ("ok", "error", "timeout", "invalid")
FIXED_COLUMNS = ["file", "student", "submission", "status", "failing_cell", "error", "runtime_s", "completed_modules"]
GRADE_SUFFIX = ".grade.json"
FORMAT_VERSION = 2  # 2: every cell runs after a failure, checks run after the last cell, questions are scored
SCORE_COLUMNS = ["total", "max_points", "manual_pending"]
MANIFEST = "grading.json"


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
    check_budget: float = 120.0  # seconds all checks of one submission may take together

    def key(self) -> str:
        """Hash of the notebook's bytes, the check file's text and every setting that can change its grade."""
        checks = hashlib.sha256(Path(self.checks).read_bytes()).hexdigest() if self.checks else None
        settings = {"parameters": self.parameters, "timeout": self.timeout, "limits": asdict(self.limits),
                    "kernel": self.kernel, "format": FORMAT_VERSION, "sandbox": self.sandbox != "off",
                    "checks": checks, "budget": self.check_budget}
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
    checks: str | Path | None = None, check_budget: float = 120.0,
) -> list[GradeTask]:
    """One GradeTask per submission, with distinct output names."""
    out_dir = str(Path(out_dir).resolve())
    names = _safe_names([shown for _, shown in submissions])
    checks = str(Path(checks).resolve()) if checks else None
    return [
        GradeTask(str(path), shown, name, student_name(shown, module), out_dir, dict(parameters), timeout, limits,
                  kernel, dict(env or {}), max_output_chars, sandbox, checks, check_budget)
        for (path, shown), name in zip(submissions, names)
    ]


def _row(task: GradeTask, status: str, error: str = "", cell: int | None = None, runtime: float = 0.0,
         records: dict[str, Any] | None = None, questions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    records = records or {}
    row = {"file": task.file, "student": task.student, "submission": task.submission, "status": status,
           "failing_cell": cell, "error": one_line(error), "runtime_s": runtime,
           "completed_modules": " ".join(completed_modules(records)), "records": records}
    if questions is not None:
        row["questions"] = questions
    return row


def _read_notebook(task: GradeTask):
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
    check_file = load_check_file(task.checks) if task.checks else None
    nb, problem = _read_notebook(task)
    if nb is None:
        task.executed.unlink(missing_ok=True)
        return _row(task, "invalid", problem, questions=_unscored(check_file, "the file is not a valid notebook"))
    local = task.workdir / f"{task.submission}.ipynb"
    nbformat.write(nb, str(local))
    problems = check_notebook_parameters(local, task.parameters)
    if problems:
        return _row(task, "invalid", problems[0], questions=_unscored(check_file, "the notebook was not run: " + problems[0]))
    scratch = Path(task.out_dir) / ".twdl" / "scratch"
    env = batch_environment(figures=False, extra=task.env)  # built where the task runs (a Dask worker too)
    after, nonce, timeout = [], new_nonce(), task.timeout
    if check_file is not None:
        declared = notebook_parameters(local) or {}
        values = {**{name: spec.default for name, spec in declared.items()}, **task.parameters}
        after = [check_cell_source(check_file, nonce, values, task.check_budget)]
        timeout = task.timeout + task.check_budget + 30 if task.timeout else None  # the checks' time is extra
    result = run_notebook(local, task.executed, task.parameters, cwd=task.workdir, timeout=timeout,
                          limits=task.limits, kernel=task.kernel, env=env, max_output_chars=task.max_output_chars,
                          scratch=scratch, sandbox=task.sandbox, allow_errors=True, after_cells=after)
    if check_file is None:
        row = _row(task, result.status, result.error, result.cell_index, result.runtime_s, result.records)
        row["sandboxed"] = result.sandboxed  # kept in <submission>.grade.json, not a grades.csv column
        return row
    questions, seconds = _scored(check_file, result, nonce, nb, task.executed)
    row = _row(task, result.status, result.error, result.cell_index, result.runtime_s, result.records, questions)
    row["checks_s"] = round(seconds, 3)  # kept in the .grade.json file (benchmarks), not in grades.csv
    row["sandboxed"] = result.sandboxed  # likewise
    return row


def _unscored(check_file: CheckFile | None, why: str) -> list[dict[str, Any]] | None:
    """Every question at 0 points, with `why` (None when grading has no check file)."""
    return None if check_file is None else score_questions(check_file, results=None, problem=why)


def _scored(check_file: CheckFile, result: ExecutionResult, nonce: str, submitted: Any, executed_path: Path):
    """Score the questions from the check cell's own outputs (only the bundle carrying this run's nonce counts)."""
    import nbformat

    seconds = 0.0
    if result.appended:
        results, problem, seconds = results_from_outputs(result.appended[0], nonce)
        if results is not None and problem:  # the check file itself failed before any check ran
            results, problem = None, f"the checks could not run: {problem}"
    else:
        results = None
        problem = {"timeout": "the checks did not run: the notebook ran out of time"}.get(
            result.status, f"the checks did not run: {result.error or 'the kernel stopped first'}")
    try:
        executed = nbformat.read(str(executed_path), as_version=4)
    except Exception:  # no readable executed notebook: no cell errors to attribute
        executed = None
    scored = score_questions(check_file, results=results, problem=problem, executed=executed, submitted=submitted)
    return scored, seconds


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


def grades_table(rows: list[dict[str, Any]], check_file: CheckFile | None = None):
    """grades.csv as a DataFrame: the fixed columns, one column of points per question, total, max_points and
    manual_pending (with a check file; rows already finalized), the mK.completed flags, then every recorded metric.

    A recorded metric cannot overwrite a fixed or score column (a record named "total" is left out).
    """
    import pandas as pd

    scores = ([q.id for q in check_file.questions] + SCORE_COLUMNS) if check_file is not None else []
    flat = []
    for row in rows:
        points = {}
        if check_file is not None:
            points = {e["id"]: e["points"] for e in row.get("questions", [])}
            points.update({c: row.get(c) for c in SCORE_COLUMNS})
        records = {k: v for k, v in flat_records(row.get("records", {})).items() if k not in scores}
        flat.append({**records, **{c: row.get(c) for c in FIXED_COLUMNS}, **points})
    columns = record_columns({k for r in flat for k in r} - set(scores), FIXED_COLUMNS)
    columns = columns[:len(FIXED_COLUMNS)] + scores + columns[len(FIXED_COLUMNS):]
    table = pd.DataFrame(flat, columns=columns)
    table["failing_cell"] = table["failing_cell"].astype("Int64")
    for column in scores:
        if column != "manual_pending":
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.sort_values(["file", "submission"]).reset_index(drop=True)


def check_file_for(module_notebook: Path) -> Path | None:
    """The check file `twdl sync` wrote for a module notebook (autograder/<stem>.py beside notebooks/), else None."""
    path = module_notebook.resolve().parent.parent / CHECKS_DIR / f"{module_notebook.stem}.py"
    return path if path.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `twdl grade`."""
    parser.add_argument("submissions", nargs="*",
                        help="a folder of student notebooks (searched recursively) or .ipynb files; may be left out "
                             "with --merge-manual to re-score the last grading in --out")
    parser.add_argument("--module", default=None,
                        help="the module the submissions answer: checks -p against it, names students, and scores "
                             "its questions with its check file (autograder/<module>.py, written by `twdl sync`)")
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
    parser.add_argument("--histogram", default=None, help="metric shown as a histogram in report.html (default: total, "
                                                          "else the most common numeric one)")
    parser.add_argument("--force", action="store_true", help="grade again submissions already graded with the same settings")
    parser.add_argument("--scheduler", default=None, help="address of a dask.distributed scheduler to run the tasks on")
    parser.add_argument("--sandbox", choices=SANDBOX_MODES, default="auto",
                        help="run each submission in a bubblewrap sandbox: auto (default: where supported), on (fail "
                             "where it is not), off (as your user, with your files and network)")
    parser.add_argument("--check-sandbox", action="store_true",
                        help="run the sandbox's probes on this machine, report, and exit (0 when all pass)")
    parser.add_argument("--checks", default=None, help="a check file to score with (default: the --module's own)")
    parser.add_argument("--no-checks", action="store_true", help="execute and tabulate only: no questions, no scores")
    parser.add_argument("--check-time", type=float, default=120,
                        help="seconds all checks of one submission may take together (default 120; added to --timeout)")
    parser.add_argument("--merge-manual", action="append", default=[], metavar="FILE",
                        help="merge a TA's filled-in manual/<question>.csv into the scores; repeatable")
    parser.add_argument("--canvas-assignment", default=None,
                        help="column name of canvas.csv, Canvas's gradebook import (default: the module's name)")
    parser.add_argument("--canvas-roster", default=None,
                        help="a gradebook export from Canvas: copies each student's ID, SIS User ID and section")


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


def write_outputs(rows: list[dict[str, Any]], out: Path, check_file: CheckFile | None, *, title: str,
                  histogram: str | None = None, canvas_assignment: str | None = None,
                  canvas_roster: str | None = None) -> Any:
    """grades.csv, report.html and, with a check file, feedback/, manual/ and canvas.csv; return the table."""
    from .feedback import write_feedback
    from .manual import canvas_csv, export_manual, load_manual_scores
    from .report import choose_histogram_metric, question_summary, write_report

    summary = None
    if check_file is not None:
        manual = load_manual_scores(out)
        rows = [finalize_row(row, check_file, manual) for row in rows]
        write_feedback(rows, check_file, out, title)
        export_manual(rows, check_file, out)
        summary = question_summary(rows, check_file)
    table = grades_table(rows, check_file)
    atomic_write(out / "grades.csv", table.to_csv(index=False))
    if check_file is not None:
        atomic_write(out / "canvas.csv", canvas_csv(table, canvas_assignment or check_file.module,
                                                    check_file.max_points, canvas_roster))
    metric = histogram or ("total" if check_file is not None else choose_histogram_metric(table))
    write_report(table, out / "report.html", histogram_metric=metric, title=title, questions=summary)
    return table


def _manifest(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _stored_rows(out: Path, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        try:
            rows.append(json.loads((out / "executed" / f"{name}{GRADE_SUFFIX}").read_text(encoding="utf-8"))["row"])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(rows, key=lambda r: (r["file"], r["submission"]))


def _rescore(args: argparse.Namespace, out: Path) -> int:
    """`twdl grade --merge-manual FILE --out DIR` without submissions: merge, then rewrite DIR's outputs."""
    from .manual import merge_manual

    manifest = _manifest(out)
    if not manifest.get("checks") or not manifest.get("submissions"):
        print(f"twdl grade: {out} holds no scored grading ({MANIFEST} missing): grade the submissions with "
              "--module first, or pass them again with --merge-manual", file=sys.stderr)
        return 2
    try:
        check_file = load_check_file(args.checks or manifest["checks"])
        rows = _stored_rows(out, manifest["submissions"])
        merged = merge_manual(args.merge_manual, out, check_file, {r["submission"] for r in rows})
    except (FileNotFoundError, ValueError) as err:
        print(f"twdl grade: {err}", file=sys.stderr)
        return 2
    write_outputs(rows, out, check_file, title=manifest.get("title", "Grades"), histogram=args.histogram,
                  canvas_assignment=args.canvas_assignment, canvas_roster=args.canvas_roster)
    print(f"merged {merged} TA score(s); rewrote {out / 'grades.csv'}, {out / 'report.html'} and feedback/")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run `twdl grade`; 0 when every submission was graded (whatever its status), 2 for bad arguments."""
    from .manual import merge_manual

    if args.check_sandbox:
        from ..sandbox_check import check_sandbox

        return check_sandbox()
    out = Path(args.out)
    if not args.submissions:
        if args.merge_manual:
            return _rescore(args, out)
        print("twdl grade: name a folder of submissions (or .ipynb files), or pass --check-sandbox", file=sys.stderr)
        return 2
    try:
        values = parse_parameter_values(args.parameter)
        submissions = find_submissions(args.submissions, exclude=out)
        problems = _precheck(args, values, submissions)
        module_notebook = resolve_notebooks(args.module)[0] if args.module else None
        checks = None if args.no_checks else (Path(args.checks) if args.checks else
                                              check_file_for(module_notebook) if module_notebook else None)
        check_file = load_check_file(checks) if checks else None
    except (FileNotFoundError, ValueError, ParameterError) as err:
        print(f"twdl grade: {err}", file=sys.stderr)
        return 2
    if problems:
        print("\n".join(f"twdl grade: {p}" for p in problems), file=sys.stderr)
        return 2
    if not submissions:
        print(f"twdl grade: no .ipynb files found in {' '.join(args.submissions)}", file=sys.stderr)
        return 2
    if module_notebook is not None and check_file is None and not args.no_checks:
        print(f"twdl grade: {module_notebook.stem} declares no questions (no {CHECKS_DIR}/{module_notebook.stem}.py): "
              "executing and tabulating only", file=sys.stderr)
    env = {**thread_env(args.jobs), "TWDL_GRADING": "1"}
    problem = _sandbox_precheck(args, [p for p in args.submissions] + [str(out)], env)
    if problem:
        print(f"twdl grade: {problem}", file=sys.stderr)
        return 2
    threads = int(env["OMP_NUM_THREADS"])
    cpu = args.cpu_seconds if args.cpu_seconds is not None else (int(args.timeout * threads + 60) if args.timeout else 0)
    limits = ResourceLimits(args.memory_mb or None, cpu or None, args.file_mb or None)
    module = module_notebook.stem if module_notebook is not None else None
    tasks = plan_tasks(submissions, out, values, module=module, timeout=args.timeout or None, limits=limits,
                       kernel=args.kernel or "python3", env=env, max_output_chars=args.max_output_chars,
                       sandbox=args.sandbox, checks=checks, check_budget=args.check_time)
    rows = grade_all(tasks, jobs=args.jobs, force=args.force, scheduler=args.scheduler)
    title = f"Grades: {module or ', '.join(args.submissions)}"
    if check_file is not None:
        atomic_write(out / MANIFEST, json.dumps({"title": title, "checks": str(Path(checks).resolve()),
                                                 "submissions": [t.submission for t in tasks]}, indent=1))
        if args.merge_manual:
            try:
                merged = merge_manual(args.merge_manual, out, check_file, {t.submission for t in tasks})
            except (FileNotFoundError, ValueError) as err:
                print(f"twdl grade: {err}", file=sys.stderr)
                return 2
            print(f"merged {merged} TA score(s)")
    table = write_outputs(rows, out, check_file, title=title, histogram=args.histogram,
                          canvas_assignment=args.canvas_assignment, canvas_roster=args.canvas_roster)
    counts = table["status"].value_counts().to_dict()
    print(f"graded {len(table)} submission(s): " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
          + f"; see {out / 'grades.csv'} and {out / 'report.html'}"
          + (f", feedback/ and {out / 'manual'}/" if check_file is not None else ""))
    unconfined = [row["file"] for row in rows if row.get("sandboxed") is False and row["status"] != "invalid"]
    if args.sandbox != "off" and unconfined:
        print(f"twdl grade: warning: {len(unconfined)} submission(s) ran without the sandbox (unsupported where they "
              "ran; see `twdl grade --check-sandbox`)", file=sys.stderr)
    for row in rows:
        if row["status"] != "ok":
            where = f" (cell {row['failing_cell']})" if row.get("failing_cell") is not None else ""
            print(f"  {row['status']}: {row['file']}{where}: {row['error']}", file=sys.stderr)
    return 0
