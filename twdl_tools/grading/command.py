"""`twdl grade SUBMISSIONS`: the command line. A grading walks one straight path, one room per step:

plan (plan.py: the submissions, their tasks, the data view of dataview.py; canvas.py: a Canvas download's zip and
names) -> execute (execution.py: every cell in the sandbox, then the export cell of export.py) -> export
(export.py: the claims copied out) -> score (scorer.py: a trusted process runs the module's checks on the rebuilt
claims; scoring.py: points) -> publish (publish.py: roster, TA scores, overrides.py, late.py, then grades.csv,
report.html, feedback/, manual/, canvas.csv). submission.py walks one submission, batch.py the class (local pool
or Dask, skipping what was graded before), rows.py builds each row.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.params import (ParameterError, check_notebook_parameters, run_parameters,
                                 notebook_parameters,
                                 parse_parameter_values)

from ..execute import ResourceLimits
from ..repo import batch_environment, resolve_notebooks, thread_env
from ..sandbox import SANDBOX_MODES, Sandbox, SandboxUnavailable, sandbox_support, use_sandbox
from .batch import grade_all
from .checkfile import CHECKS_DIR, load_check_file
from .dataview import build_view, withheld_for
from .plan import check_file_for, find_submissions, plan_tasks
from .canvas import extract_zip, newest_per_user, parse_canvas_name, read_roster
from .late import LatePolicy, parse_due, read_extensions
from .overrides import OVERRIDES_FILE, read_overrides
from .publish import MANIFEST, Term, read_manifest, stored_rows, write_outputs
from .rows import STATUSES

__all__ = ["add_arguments", "main"]



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `twdl grade`."""
    parser.add_argument("submissions", nargs="*",
                        help="a folder of student notebooks (searched recursively), .ipynb files, or the zip of "
                             "Canvas's \"Download Submissions\"; left out, the last grading in --out is published "
                             "again (with --merge-manual, --overrides, --release-hidden, --publish), nothing executed")
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
                        help="a gradebook export from Canvas: rows match by its ID column (the Canvas user id), then "
                             "SIS ids; names, ID, SIS ids and section come from it; kept for later publishes")
    parser.add_argument("--due", default=None,
                        help="the deadline, with its zone: 2026-02-06T23:59-05:00 or '2026-02-06 23:59 America/Chicago'")
    parser.add_argument("--extensions", default=None,
                        help="a CSV with columns student (Canvas user id, name or submission) and due: new deadlines")
    parser.add_argument("--late-penalty", type=float, default=None, metavar="PERCENT",
                        help="percent of the assignment's points taken per started day late (e.g. 10)")
    parser.add_argument("--late-cap", type=float, default=None, metavar="PERCENT",
                        help="the most a late penalty takes, in percent of the points")
    parser.add_argument("--late-flat", type=float, default=None, metavar="PERCENT",
                        help="percent taken when Canvas flagged a file LATE but no submission time is known "
                             "(default: one day's penalty)")
    parser.add_argument("--overrides", default=None,
                        help="a CSV of TA score changes (student, question, points or delta, reason, grader), "
                             f"validated as a whole, kept as --out/{OVERRIDES_FILE} and applied at every publish")
    parser.add_argument("--release-hidden", action="store_true",
                        help="feedback pages show hidden checks' names and messages (default: only their count and "
                             "points); kept for later publishes of --out")
    parser.add_argument("--publish", action="store_true",
                        help="without submissions: rewrite --out's outputs from the stored results (executes nothing)")


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


def _data_view(check_file, values: dict[str, Any], module_notebook: Path | None, out: Path) -> dict[str, str]:
    """The data view for the graded profile when the check file withholds data from it ({} otherwise)."""
    if check_file is None or not check_file.withheld:
        return {}
    profile = values.get("profile")
    if profile is None and module_notebook is not None:
        profile = run_parameters(module_notebook, {}).get("profile")
    spec = withheld_for(check_file.withheld, profile)
    if spec:
        print(f"twdl grade: keeping data the {profile} profile never loads from the submissions: "
              + ", ".join(f"{count:,} of {name}" for name, count in spec.items()), file=sys.stderr)
    view = build_view(spec, out)
    return {k: str(v) for k, v in asdict(view).items()} if view is not None else {}


def _warn_late(term: Term, table) -> None:
    """Nothing late passes silently: late rows without a penalty rule, and roster mismatches, are said."""
    late = int(table["late"].sum()) if "late" in table else 0
    if late and not (term.late.per_day or term.late.flat):
        print(f"twdl grade: warning: {late} submission(s) are late and no --late-penalty was given: flagged in "
              "grades.csv and report.html, not penalised", file=sys.stderr)
    if term.superseded:
        print(f"twdl grade: {len(term.superseded)} older Canvas file(s) superseded by a newer one of the same user "
              "(listed in report.html)", file=sys.stderr)


def _late_policy(args: argparse.Namespace, stored: dict[str, Any] | None) -> LatePolicy:
    """The late rule from the options; options not given keep the stored rule's values."""
    base = LatePolicy.from_dict(stored)
    due = parse_due(args.due).isoformat() if args.due else base.due
    extensions = ({k: v.isoformat() for k, v in read_extensions(args.extensions).items()} if args.extensions
                  else base.extensions)
    per_day = args.late_penalty if args.late_penalty is not None else base.per_day
    for name, value in (("--late-penalty", per_day), ("--late-cap", args.late_cap), ("--late-flat", args.late_flat)):
        if value is not None and not 0 <= value <= 100:
            raise ValueError(f"{name} {value:g} is not a percentage between 0 and 100")
    return LatePolicy(due, per_day or 0.0, args.late_cap if args.late_cap is not None else base.cap,
                      args.late_flat if args.late_flat is not None else base.flat, extensions)


def _term(args: argparse.Namespace, out: Path, manifest: dict[str, Any], check_file) -> Term:
    """What publish applies, from the options and what the last grading into `out` stored (validated; raises)."""
    roster = args.canvas_roster or manifest.get("roster")
    overrides_path = Path(args.overrides) if args.overrides else out / OVERRIDES_FILE
    overrides, text = [], None
    if check_file is not None and (args.overrides or overrides_path.exists()):
        overrides = read_overrides(overrides_path, check_file)
        text = overrides_path.read_text(encoding="utf-8-sig") if args.overrides else None
    elif args.overrides:
        raise ValueError("--overrides needs a check file (--module or --checks): overrides change question points")
    return Term(intake=manifest.get("intake", {}), superseded=manifest.get("superseded", []),
                roster=read_roster(roster) if roster else None, late=_late_policy(args, manifest.get("late")),
                overrides=overrides, overrides_text=text,
                release_hidden=bool(args.release_hidden or manifest.get("release_hidden")
                                    or (check_file is not None and check_file.release_hidden)))


def _save_manifest(out: Path, manifest: dict[str, Any], term: Term, roster: str | None) -> None:
    atomic_write(out / MANIFEST, json.dumps({**manifest, "late": term.late.to_dict(), "roster": roster,
                                             "release_hidden": term.release_hidden}, indent=1))


def _rescore(args: argparse.Namespace, out: Path) -> int:
    """`twdl grade --out DIR` without submissions (with --merge-manual, --overrides, --release-hidden, --publish or
    a late rule): merge, then rewrite DIR's outputs from the stored rows; nothing is executed."""
    from .manual import merged_scores

    manifest = read_manifest(out)
    if not manifest.get("checks") or not manifest.get("submissions"):
        print(f"twdl grade: {out} holds no scored grading ({MANIFEST} missing): grade the submissions with "
              "--module first", file=sys.stderr)
        return 2
    try:
        check_file = load_check_file(args.checks or manifest["checks"])
        rows = stored_rows(out, manifest["submissions"])
        term = _term(args, out, manifest, check_file)
        term.manual, merged = merged_scores(args.merge_manual, out, check_file, {r["submission"] for r in rows})
        term.manual_changed = bool(args.merge_manual)
        write_outputs(rows, out, check_file, title=manifest.get("title", "Grades"), histogram=args.histogram,
                      canvas_assignment=args.canvas_assignment, term=term)
    except (FileNotFoundError, ValueError) as err:  # OverrideError is a ValueError
        print(f"twdl grade: {err}", file=sys.stderr)
        return 2
    _save_manifest(out, manifest, term, args.canvas_roster or manifest.get("roster"))
    print(f"merged {merged} TA score(s); rewrote {out / 'grades.csv'}, {out / 'report.html'} and feedback/")
    return 0


def _intake(given: list[str], out: Path, zone) -> tuple[list[str], dict[str, dict[str, Any]], list[dict[str, Any]],
                                                          set[str]]:
    """Canvas's download as given: zips unpacked under --out; each Canvas file's parts, keyed by its shown name
    (newest per user id), the superseded files, and the shown names to leave out."""
    paths = []
    for item in given:
        if item.lower().endswith(".zip"):
            folder, times = extract_zip(item, out / ".twdl" / "canvas" / Path(item).stem, zone)
            paths.append((str(folder), times))
        else:
            paths.append((item, {}))
    found = find_submissions([p for p, _ in paths], exclude=out)
    times = {name: t for _, ts in paths for name, t in ts.items()}
    canvas = [c for c in (parse_canvas_name(shown, times.get(Path(shown).name)) for _, shown in found) if c]
    kept, superseded = newest_per_user(canvas)
    dropped = {old.shown for old, _ in superseded}
    listed = [{"file": old.shown, "user_id": old.user_id, "attachment_id": old.attachment_id,
               "submitted_at": old.submitted_at or "", "kept": new.shown} for old, new in superseded]
    return [p for p, _ in paths], {c.shown: c.to_dict() for c in kept}, listed, dropped


def main(args: argparse.Namespace) -> int:
    """Run `twdl grade`; 0 when every submission was graded (whatever its status), 2 for bad arguments."""
    from .manual import merged_scores

    if args.check_sandbox:
        from ..sandbox_check import check_sandbox

        return check_sandbox()
    out = Path(args.out)
    if not args.submissions:
        if (args.merge_manual or args.overrides or args.release_hidden or args.publish or args.due or args.extensions
                or args.late_penalty is not None or args.canvas_roster):
            return _rescore(args, out)
        print("twdl grade: name a folder of submissions (or .ipynb files, or a Canvas zip), or pass --check-sandbox",
              file=sys.stderr)
        return 2
    try:
        values = parse_parameter_values(args.parameter)
        zone = parse_due(args.due).tzinfo if args.due else None
        given, intake, superseded, dropped = _intake(args.submissions, out, zone or dt.timezone.utc)
        submissions = [s for s in find_submissions(given, exclude=out) if s[1] not in dropped]
        problems = _precheck(args, values, submissions)
        module_notebook = resolve_notebooks(args.module)[0] if args.module else None
        checks = None if args.no_checks else (Path(args.checks) if args.checks else
                                              check_file_for(module_notebook) if module_notebook else None)
        check_file = load_check_file(checks) if checks else None
        before = read_manifest(out)  # a re-run keeps the last grading's late rule, roster and release
        term = _term(args, out, {k: before.get(k) for k in ("late", "roster", "release_hidden")}, check_file)
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
    try:
        view = _data_view(check_file, values, module_notebook, out)
    except (ValueError, OSError) as err:
        print(f"twdl grade: the data view could not be built: {err}", file=sys.stderr)
        return 2
    threads = int(env["OMP_NUM_THREADS"])
    cpu = args.cpu_seconds if args.cpu_seconds is not None else (int(args.timeout * threads + 60) if args.timeout else 0)
    limits = ResourceLimits(args.memory_mb or None, cpu or None, args.file_mb or None)
    module = module_notebook.stem if module_notebook is not None else None
    tasks = plan_tasks(submissions, out, values, module=module, timeout=args.timeout or None, limits=limits,
                       kernel=args.kernel or "python3", env=env, max_output_chars=args.max_output_chars,
                       sandbox=args.sandbox, checks=checks, check_budget=args.check_time, view=view)
    rows = grade_all(tasks, jobs=args.jobs, force=args.force, scheduler=args.scheduler)
    title = f"Grades: {module or ', '.join(args.submissions)}"
    term.intake = {t.submission: {**intake[t.file], "canvas_file": t.file} for t in tasks if t.file in intake}
    term.superseded = superseded
    try:
        if check_file is not None:
            term.manual, merged = merged_scores(args.merge_manual, out, check_file, {t.submission for t in tasks})
            term.manual_changed = bool(args.merge_manual)
            if args.merge_manual:
                print(f"merged {merged} TA score(s)")
        table = write_outputs(rows, out, check_file, title=title, histogram=args.histogram,
                              canvas_assignment=args.canvas_assignment, term=term)
    except (FileNotFoundError, ValueError) as err:  # a bad override or extension: no output was written
        print(f"twdl grade: {err}", file=sys.stderr)
        return 2
    if check_file is not None:
        _save_manifest(out, {"title": title, "checks": str(Path(checks).resolve()),
                             "submissions": [t.submission for t in tasks], "intake": term.intake,
                             "superseded": superseded}, term, args.canvas_roster or before.get("roster"))
    _warn_late(term, table)
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
