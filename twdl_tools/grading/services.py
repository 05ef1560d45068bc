"""Gradescope and PrairieLearn: `twdl autograder SERVICE --module 02 -o OUT` builds what the service runs, and
`python -m twdl_tools.grading.services SERVICE ROOT` is the entry point that runs there.

The entry point grades the one submitted notebook on the same path as `twdl grade` (execute in the sandbox, export
claims, the trusted scorer), then writes the service's results file:

* Gradescope (https://gradescope-autograders.readthedocs.io/en/latest/specs/): the package is a zip with
  `setup.sh` and `run_autograder` at its root, unpacked to /autograder/source; the submission is in
  /autograder/submission; the results go to /autograder/results/results.json: `score`, `execution_time`, `output`
  and `tests`, each with `name`, `score`, `max_score`, `status`, `visibility` (hidden checks `after_published`,
  shown once the TA publishes the grades) and `output`.
* PrairieLearn (https://docs.prairielearn.com/externalGrading/): the question's files are under /grade (the
  student's in /grade/student, the question's tests in /grade/tests) and the entry point writes
  /grade/results/results.json: `gradable`, `score` (0 to 1), `message`, `output` and `tests`, each with `name`,
  `description`, `points`, `max_points`, `message` and `output`.

Written answers are not scored by the autograder: they are listed with 0 of 0 points (the service's own manual
grading scores them), so the autograder's score equals the total `twdl grade` gives before a TA.
"""
from __future__ import annotations

import argparse
import json
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["SERVICES", "CONFIG", "build_package", "run_service", "gradescope_results", "prairielearn_results",
           "add_arguments", "main"]

CONFIG = "twdl-autograder.json"
ENV_ROOT = "TWDL_AUTOGRADER_ROOT"  # where the service's folders are (default /autograder or /grade): for tests
SERVICES = {
    "gradescope": {"root": "/autograder", "config_dir": "source", "submission": "submission",
                   "results": "results/results.json", "container": "Gradescope's container"},
    "prairielearn": {"root": "/grade", "config_dir": "tests", "submission": "student",
                     "results": "results/results.json", "container": "PrairieLearn's grading container"},
}
SOURCE = "twdl"  # the course tooling's source in a Gradescope package (installed by setup.sh)

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu): install the course tooling.
set -euo pipefail
apt-get install -y python3 python3-pip python3-venv bubblewrap
python3 -m venv /opt/twdl
/opt/twdl/bin/pip install "/autograder/source/{source}[tools]"
/opt/twdl/bin/python -m ipykernel install --sys-prefix --name python3
"""
RUN_SH = """#!/usr/bin/env bash
# {service} runs this for every submission: grade it with twdl and write {results}.
ROOT="${{{env}:-{root}}}"
PYTHON="${{TWDL_PYTHON:-{python}}}"
exec "$PYTHON" -m twdl_tools.grading.services {service} "$ROOT"
"""


def _write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def build_package(service: str, module: str, output: str | Path, parameters: dict[str, Any] | None = None, *,
                  timeout: float = 600, release_hidden: bool = False) -> Path:
    """Write the service's package for a module: a zip when `output` ends in .zip, else a folder; return it."""
    from ..repo import resolve_notebooks
    from twdl_helpers.params import run_parameters
    from .plan import check_file_for

    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: one of {sorted(SERVICES)}")
    notebook = resolve_notebooks(module)[0]
    checks = check_file_for(notebook)
    if checks is None:
        raise FileNotFoundError(f"{notebook.stem} has no check file (autograder/{notebook.stem}.py): run `twdl sync`")
    given = dict(parameters or {})
    profile = run_parameters(notebook, given).get("profile")
    config = {"service": service, "module": notebook.stem, "checks": f"checks/{checks.name}",
              "parameters": {**({"profile": profile} if profile else {}), **given}, "timeout": timeout,
              "release_hidden": release_hidden}
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "package"
        (folder / "checks").mkdir(parents=True)
        shutil.copy2(checks, folder / "checks" / checks.name)
        (folder / CONFIG).write_text(json.dumps(config, indent=1))
        spec = SERVICES[service]
        python = "/opt/twdl/bin/python" if service == "gradescope" else "python3"
        run = RUN_SH.format(service=service, results=spec["root"] + "/" + spec["results"], env=ENV_ROOT,
                            root=spec["root"], python=python)
        if service == "gradescope":
            _write_exec(folder / "setup.sh", SETUP_SH.format(source=SOURCE))
            _write_exec(folder / "run_autograder", run)
            root = Path(__file__).resolve().parents[2]  # the installed tooling's own source
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            for part in ("twdl_helpers", "twdl_tools"):
                shutil.copytree(root / part, folder / SOURCE / part, ignore=ignore)
            for name in ("pyproject.toml", "README.md", "LICENSE"):
                if (root / name).exists():
                    shutil.copy2(root / name, folder / SOURCE / name)
        else:
            _write_exec(folder / "run.sh", run)
        if output.suffix == ".zip":
            output.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.rglob("*")):
                    if path.is_file():
                        info = zipfile.ZipInfo.from_file(path, path.relative_to(folder).as_posix())
                        archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        else:
            shutil.copytree(folder, output, dirs_exist_ok=True)
    return output


def _submitted_notebook(folder: Path, module: str) -> Path | None:
    """The notebook a student submitted: the one named like the module, else the only one."""
    found = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    named = [p for p in found if module.lower() in p.name.lower() or module.split("_", 1)[-1] in p.name.lower()]
    return (named or found or [None])[0]


def _grade(notebook: Path, config: dict[str, Any], config_dir: Path, work: Path) -> tuple[dict[str, Any], Any]:
    """Grade one notebook with `twdl grade` into `work`; return its published row and the check file."""
    import contextlib

    from twdl_tools.cli import main as twdl

    from .checkfile import load_check_file
    from .publish import Term, final_rows, read_manifest, stored_rows

    inbox = work / "submission"
    inbox.mkdir(parents=True, exist_ok=True)
    local = inbox / notebook.name
    shutil.copy2(notebook, local)
    out = work / "grades"
    args = ["grade", str(local), "--checks", str(config_dir / config["checks"]), "--out", str(out), "--jobs", "1",
            "--timeout", str(config.get("timeout", 600))]
    for name, value in config.get("parameters", {}).items():
        args += ["-p", f"{name}={value!r}"]
    with contextlib.redirect_stdout(sys.stderr):
        code = twdl(args)
    if code != 0:
        raise RuntimeError(f"twdl grade exited with {code}")
    manifest = read_manifest(out)
    check_file = load_check_file(manifest["checks"])
    rows = final_rows(stored_rows(out, manifest["submissions"]), out, check_file, Term()).rows
    return rows[0], check_file


def _check_points(entry: dict[str, Any], question_points: float) -> list[tuple[dict[str, Any], float, float]]:
    """(check, score, max) per check of an auto-graded question: its share of the points by weight; 0 for every check
    when the question scored 0 or waits for a TA."""
    checks = [c for c in entry.get("checks", []) if c["name"] != "cells_ran"]
    weight = sum(float(c.get("points", 1.0)) for c in checks) or 1.0
    scored = bool(entry.get("points"))
    found = []
    for c in entry.get("checks", []):
        worth = 0.0 if c["name"] == "cells_ran" else question_points * float(c.get("points", 1.0)) / weight
        found.append((c, worth if scored and c.get("passed") else 0.0, worth))
    return found


def _tests(row: dict[str, Any], check_file, release_hidden: bool) -> list[dict[str, Any]]:
    """One neutral test per check (and per written answer, and per question with no check result)."""
    tests = []
    for entry in row.get("questions", []):
        question = check_file.question(entry["id"])
        if entry["kind"] == "manual":
            tests.append({"name": f"{question.label}: written answer", "score": 0.0, "max": 0.0, "passed": None,
                          "hidden": False, "output": f"graded by hand ({question.points:g} points), not by the "
                                                     "autograder"})
            continue
        if not entry.get("checks"):
            tests.append({"name": question.label, "score": 0.0, "max": question.points, "passed": False,
                          "hidden": False, "output": entry.get("summary", "")})
            continue
        if entry.get("points") is None:
            note = f"waits for a TA: {entry.get('summary', '')}"
        elif entry.get("points") == 0 and any(c.get("required") and not c.get("passed") for c in entry["checks"]):
            note = "a required check failed: the question scores 0"
        else:
            note = ""
        for c, score, worth in _check_points(entry, question.points):
            hidden = bool(c.get("hidden"))
            message = (c.get("message") or "") + (f" (hint: {c['hint']})" if c.get("hint") and not c.get("passed")
                                                   else "")
            tests.append({"name": f"{question.label}: {c.get('description') or c['name']}", "score": score,
                          "max": worth, "passed": bool(c.get("passed")), "hidden": hidden,
                          "output": "; ".join(t for t in (message, note) if t),
                          "held_name": f"{question.label}: a hidden check"})
    return tests


def _overall(row: dict[str, Any], container: str) -> str:
    lines = [f"Graded by twdl: execution {row['status']}"
             + (f" (cell {row['failing_cell']}: {row['error']})" if row.get("error") else "") + "."]
    if row.get("sandboxed") is False:
        lines.append(f"The submission ran in {container} without twdl's sandbox (bubblewrap cannot run here); "
                     "the points still come from twdl's trusted scorer, a process no submission code ran in.")
    if row.get("manual_pending"):
        lines.append(f"Waiting for a TA: {row['manual_pending']}.")
    return "\n".join(lines)


def gradescope_results(row: dict[str, Any], check_file, release_hidden: bool = False) -> dict[str, Any]:
    """Gradescope's results.json for one published row."""
    tests = []
    for t in _tests(row, check_file, True):
        test = {"name": t["name"], "score": t["score"], "max_score": t["max"], "output": t["output"],
                "visibility": "after_published" if t["hidden"] and not release_hidden else "visible"}
        if t["passed"] is not None:
            test["status"] = "passed" if t["passed"] else "failed"
        tests.append(test)
    return {"score": float(row.get("total") or 0.0), "execution_time": int(round(row.get("runtime_s") or 0)),
            "output": _overall(row, SERVICES["gradescope"]["container"]), "tests": tests,
            "extra_data": {"twdl": {"status": row["status"], "sandboxed": row.get("sandboxed"),
                                    "module": check_file.module}}}


def prairielearn_results(row: dict[str, Any], check_file, release_hidden: bool = False) -> dict[str, Any]:
    """PrairieLearn's results.json for one published row (hidden checks named only when released)."""
    tests = []
    for t in _tests(row, check_file, release_hidden):
        held = t["hidden"] and not release_hidden
        tests.append({"name": t["held_name"] if held else t["name"], "description": "" if held else t["name"],
                      "points": t["score"], "max_points": t["max"], "message": "" if held else t["output"],
                      "output": ""})
    auto = sum(q.points for q in check_file.questions if q.kind != "manual") or 1.0
    return {"gradable": row["status"] != "invalid", "score": round(min(1.0, float(row.get("total") or 0.0) / auto), 6),
            "message": _overall(row, SERVICES["prairielearn"]["container"]), "output": row.get("error") or "",
            "tests": tests}


def run_service(service: str, root: str | Path) -> dict[str, Any]:
    """The entry point's work: grade the submitted notebook under `root` and write the service's results.json."""
    spec = SERVICES[service]
    root = Path(root)
    config_dir = root / spec["config_dir"]
    config = json.loads((config_dir / CONFIG).read_text())
    results_path = root / spec["results"]
    notebook = _submitted_notebook(root / spec["submission"], config["module"])
    if notebook is None:
        results = {"score": 0.0, "output": f"No .ipynb file was submitted: submit your {config['module']}.ipynb.",
                   "tests": []} if service == "gradescope" else {
            "gradable": False, "score": 0.0, "message": f"No .ipynb file was submitted: submit your "
                                                       f"{config['module']}.ipynb.", "tests": []}
    else:
        try:
            row, check_file = _grade(notebook, config, config_dir, root / "twdl-work")
            build = gradescope_results if service == "gradescope" else prairielearn_results
            results = build(row, check_file, config.get("release_hidden", False) or check_file.release_hidden)
        except Exception as err:  # the grader's own failure: say so, never a silent 0
            text = f"The autograder failed ({type(err).__name__}: {err}); ask the course staff to regrade."
            results = ({"score": 0.0, "output": text, "tests": []} if service == "gradescope" else
                       {"gradable": False, "score": 0.0, "message": text, "tests": []})
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=1))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `twdl autograder`."""
    parser.add_argument("service", choices=sorted(SERVICES), help="the service the package is for")
    parser.add_argument("--module", required=True, help="the module notebook (02, optimization, 02_optimization)")
    parser.add_argument("-o", "--output", required=True,
                        help="the package: a .zip (Gradescope's upload), else a folder (PrairieLearn: the question's "
                             "tests/ folder)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter every submission runs with (checked against the module); repeatable")
    parser.add_argument("--timeout", type=float, default=600, help="wall-clock seconds per submission (default 600)")
    parser.add_argument("--release-hidden", action="store_true",
                        help="show hidden checks at once (Gradescope: visible; PrairieLearn: named, with messages)")


def main(args: argparse.Namespace) -> int:
    """Run `twdl autograder`."""
    from twdl_helpers.params import ParameterError, check_notebook_parameters, parse_parameter_values

    from ..repo import resolve_notebooks

    try:
        values = parse_parameter_values(args.parameter)
        problems = check_notebook_parameters(resolve_notebooks(args.module)[0], values) if values else []
        if problems:
            raise ValueError(problems[0])
        path = build_package(args.service, args.module, args.output, values, timeout=args.timeout,
                             release_hidden=args.release_hidden)
    except (FileNotFoundError, ValueError, ParameterError) as err:
        print(f"twdl autograder: {err}", file=sys.stderr)
        return 2
    where = ("upload it as the assignment's autograder (Configure Autograder > Zip file upload)" if args.service ==
             "gradescope" else "use it as the question's tests/ folder, with externalGradingOptions.entrypoint "
                               "\"/grade/tests/run.sh\" and an image that has the course tooling installed")
    print(f"wrote {path}: {where}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SERVICES:
        raise SystemExit(f"usage: python -m twdl_tools.grading.services {{{','.join(SERVICES)}}} ROOT")
    run_service(sys.argv[1], sys.argv[2])
