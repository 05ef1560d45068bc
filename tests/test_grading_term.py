"""A TA's term: a Canvas download graded in one command (roster, due date, extension, penalty), overrides that last,
hidden checks held back until released, and the Gradescope and PrairieLearn entry points.

Most tests share one grading of a synthetic Canvas zip of the toy module (conftest.write_course: seconds per
notebook); one real module-02 notebook goes through Gradescope's run_autograder and `twdl grade` alike.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from twdl_tools.cli import main as twdl
from twdl_tools.grading.canvas import parse_canvas_name
from twdl_tools.grading.late import LatePolicy, lateness, parse_due
from twdl_tools.notebooks import sync

from conftest import write_course
from test_grading_questions import ANSWER, TOY

ROOT = Path(__file__).resolve().parents[1]
DUE = "2026-02-06T23:59-05:00"
EST = dt.timezone(dt.timedelta(hours=-5))
# user id -> (sortable name, roster name or None (absent from the roster), LATE flag, local submission time, answer)
STUDENTS = {
    "1001": ("adamsann", "Ann Adams", False, (2026, 2, 6, 20, 0), "blank"),
    "1002": ("bakerbo", "Bo Baker", False, (2026, 2, 6, 21, 0), "right"),  # resubmitted: an older file too
    "1003": ("chency", "Cy Chen", False, (2026, 2, 6, 22, 0), "right"),  # resubmitted: an older file too
    "1004": ("davisdee", "Dee Davis", True, (2026, 2, 7, 10, 0), "right"),  # 1 started day late
    "1005": ("evanseve", "Eve Evans", True, (2026, 2, 9, 1, 0), "right"),  # 3 started days late
    "1006": ("fordfay", "Fay Ford", True, (2026, 2, 8, 12, 0), "right"),  # late, but within her extension
    "1007": ("garciagus", "Gus Garcia", False, (2026, 2, 5, 9, 0), "right"),
    "1008": ("hillhal", "Hal Hill", False, (2026, 2, 6, 23, 58), "right"),
    "1009": ("ivesida", "Ida Ives", False, (2026, 2, 6, 12, 0), "right"),
    "1010": ("jonesjo", None, False, (2026, 2, 6, 13, 0), "right"),  # not in the roster
}
EXPECTED_LATE = {"1004": (1, 0.6, 4.4), "1005": (3, 1.8, 3.2)}  # days, penalty (10 %/day of 6 points), final


def _canvas_zip(root: Path) -> Path:
    """12 files as Canvas names them: 10 students, 2 of whom resubmitted (their older file first)."""
    solution = nbformat.read(str(root / "notebooks" / "99_toy.ipynb"), as_version=4)
    student = nbformat.read(str(root / "notebooks" / "student" / "99_toy.ipynb"), as_version=4)
    answered = copy.deepcopy(solution)
    cell = next(c for c in answered.cells if c.metadata.get("question") == "q3")
    cell.source += "\n\n" + ANSWER
    texts = {"right": nbformat.writes(answered), "blank": nbformat.writes(student)}
    path = root / "submissions.zip"
    with zipfile.ZipFile(path, "w") as archive:
        attachment = 500
        for user, (sortable, _, late, when, kind) in STUDENTS.items():
            if user in ("1002", "1003"):  # the first upload, superseded by "-1"
                attachment += 1
                older = zipfile.ZipInfo(f"{sortable}_{user}_{attachment}_99_toy.ipynb", (2026, 2, 5, 8, 0, 0))
                archive.writestr(older, texts["blank"])
            attachment += 1
            suffix = "-1" if user in ("1002", "1003") else ""
            name = f"{sortable}{'_LATE' if late else ''}_{user}_{attachment}_99_toy{suffix}.ipynb"
            archive.writestr(zipfile.ZipInfo(name, (*when, 0)), texts[kind])
    return path


@pytest.fixture(scope="module")
def term(tmp_path_factory) -> Path:
    """The toy course, its Canvas zip, roster and extensions, graded once in one command (into `out`)."""
    root = tmp_path_factory.mktemp("term")
    write_course(root, "99_toy", TOY)
    sync(root)
    _canvas_zip(root)
    lines = ["Student,ID,SIS User ID,SIS Login ID,Section,99_toy (1)", "    Points Possible,,,,,6"]
    lines += [f"{name},{user},sis{user},{sortable},A," for user, (sortable, name, *_) in STUDENTS.items() if name]
    lines.append("Kai King,1011,sis1011,kingkai,B,")  # on the roster, submitted nothing
    (root / "roster.csv").write_text("\n".join(lines) + "\n")
    (root / "extensions.csv").write_text("student,due\n1006,2026-02-08 23:59 America/New_York\n")
    assert twdl(_grade_args(root, root / "out")) == 0
    return root


def _grade_args(root: Path, out: Path) -> list[str]:
    return ["grade", str(root / "submissions.zip"), "--module", str(root / "notebooks" / "99_toy.py"), "--out",
            str(out), "--jobs", "2", "--timeout", "300", "--canvas-roster", str(root / "roster.csv"), "--due", DUE,
            "--extensions", str(root / "extensions.csv"), "--late-penalty", "10"]


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_canvas_names_are_parsed():
    f = parse_canvas_name("smithjohn_LATE_12345_678902_02_optimization-1.ipynb")
    assert (f.sortable_name, f.user_id, f.attachment_id, f.late_flag, f.filename, f.resubmission) == \
        ("smithjohn", "12345", 678902, True, "02_optimization.ipynb", 1)
    assert parse_canvas_name("alice/02_optimization.ipynb") is None and parse_canvas_name("bob_02.ipynb") is None


def test_due_dates_need_a_zone_and_penalties_count_started_days():
    assert parse_due("2026-02-06 23:59 America/Chicago").utcoffset() == dt.timedelta(hours=-6)
    with pytest.raises(ValueError, match="no time zone"):
        parse_due("2026-02-06 23:59")
    policy = LatePolicy(due=parse_due(DUE).isoformat(), per_day=10, cap=25)
    row = {"total": 6.0, "submitted_at": dt.datetime(2026, 2, 9, 5, 0, tzinfo=EST).isoformat()}
    assert lateness(row, policy, 6.0)["days_late"] == 3 and lateness(row, policy, 6.0)["penalty"] == 1.5  # capped
    flagged = lateness({"total": 1.0, "late_flag": True}, policy, 6.0)  # no time: the flat rule (one day's)
    assert flagged["late"] and flagged["penalty"] == 0.6 and flagged["final"] == 0.4
    assert lateness({"total": 0.5, "late_flag": True}, policy, 6.0)["final"] == 0.0  # never below 0


def test_a_canvas_zip_is_graded_in_one_command_with_roster_due_date_extension_and_penalty(term):
    out = term / "out"
    grades = pd.read_csv(out / "grades.csv", dtype={"user_id": str})
    assert sorted(grades["user_id"]) == sorted(STUDENTS)  # 12 files, 10 users: the newest file of each
    by_user = grades.set_index("user_id")
    for user, (sortable, name, flag, _, kind) in STUDENTS.items():
        row = by_user.loc[user]
        assert row["student"] == (name or sortable) and bool(row["canvas_late"]) == flag, user
        assert row["total"] == (0.0 if kind == "blank" else 5.0), user
        days, penalty, final = EXPECTED_LATE.get(user, (0, 0.0, row["total"]))
        assert (bool(row["late"]), row["days_late"], row["penalty"], row["final"]) == \
            (user in EXPECTED_LATE, days, penalty, final), user
    assert by_user.loc["1002", "file"].endswith("99_toy-1.ipynb")  # the resubmission, not the first upload
    canvas = (out / "canvas.csv").read_text().splitlines()
    assert canvas[0] == "Student,ID,SIS User ID,SIS Login ID,Section,99_toy" and canvas[1].endswith(",6")
    assert "Dee Davis,1004,sis1004,davisdee,A,4.4" in canvas and "Eve Evans,1005,sis1005,evanseve,A,3.2" in canvas
    assert "Fay Ford,1006,sis1006,fordfay,A,5" in canvas and "jonesjo,1010,,jonesjo,,5" in canvas
    assert len(canvas) == 2 + 10 and not any("Kai King" in line for line in canvas)
    listed = json.loads((out / "term.json").read_text())
    assert sorted(s["user_id"] for s in listed["superseded"]) == ["1002", "1003"]
    assert [r["user_id"] for r in listed["no_roster_row"]] == ["1010"]
    assert [r["ID"] for r in listed["no_submission"]] == ["1011"]
    assert "10 % of the points per started day" in listed["late_rule"]
    report = (out / "report.html").read_text()
    for title in ("Late work", "Superseded files", "Submissions with no roster row", "Roster students with no "
                  "submission", "Kai King"):
        assert title in report
    late_page = (out / "feedback" / f"{by_user.loc['1004', 'submission']}.html").read_text()
    assert "Canvas user 1004" in late_page and "Penalty 0.6 point(s)" in late_page and "started day" in late_page


def test_overrides_last_through_reruns_and_merges_and_bad_rows_change_nothing(term, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(term / "out", out)
    grades = pd.read_csv(out / "grades.csv", dtype={"user_id": str}).set_index("user_id")
    blank, late = grades.loc["1001", "submission"], grades.loc["1004", "submission"]
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("student,question,points,delta,reason,grader\n"
                         "1001,q1,1.5,,regrade: the mean was computed by hand,TA Kim\n"
                         f"{late},q2,,-1,extra credit taken back: copied squares,TA Lee\n")
    assert twdl(["grade", "--overrides", str(overrides), "--out", str(out)]) == 0

    def check() -> None:
        table = pd.read_csv(out / "grades.csv", dtype={"user_id": str}).set_index("user_id")
        assert (table.loc["1001", "q1"], table.loc["1001", "total"]) == (1.5, 1.5)
        assert (table.loc["1004", "q2"], table.loc["1004", "total"], table.loc["1004", "final"]) == (2.0, 4.0, 3.4)
        page = (out / "feedback" / f"{blank}.html").read_text()
        assert "Adjusted by a TA: regrade: the mean was computed by hand" in page and "TA Kim" in page
        assert "extra credit taken back" in (out / "report.html").read_text()
        assert "Dee Davis,1004,sis1004,davisdee,A,3.4" in (out / "canvas.csv").read_text()

    check()
    assert (out / "overrides.csv").exists()
    assert twdl(_grade_args(term, out)) == 0  # a re-run (nothing changed: nothing executes) keeps them
    check()
    sheet = pd.read_csv(out / "manual" / "q3.csv", keep_default_na=False, dtype=str)
    sheet.loc[sheet["submission"] == late, "points"] = "1"
    sheet.to_csv(tmp_path / "q3.csv", index=False)
    assert twdl(["grade", "--merge-manual", str(tmp_path / "q3.csv"), "--out", str(out)]) == 0
    table = pd.read_csv(out / "grades.csv", dtype={"user_id": str}).set_index("user_id")
    assert (table.loc["1004", "q3"], table.loc["1004", "q2"], table.loc["1004", "final"]) == (1.0, 2.0, 4.4)
    assert (table.loc["1001", "q1"]) == 1.5

    before = _snapshot(out)
    bad_rows = {
        "unknown-student": "nobody,q1,1,,r,g",
        "unknown-question": "1001,q9,1,,r,g",
        "points-out-of-range": "1001,q1,2.5,,r,g",
        "points-or-delta": "1001,q1,1,0.5,r,g",
        "no-reason": "1001,q1,1,,,g",
    }
    for kind, line in bad_rows.items():
        bad = tmp_path / f"{kind}.csv"
        bad.write_text(f"student,question,points,delta,reason,grader\n1002,q1,1,,fine,g\n{line}\n")
        capsys.readouterr()
        code = twdl(["grade", "--overrides", str(bad), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and f"override error [{kind}]" in err and "no file was changed" in err, (kind, err)
        assert _snapshot(out) == before, kind
    bad = tmp_path / "late-delta.csv"  # a delta past the maximum, found against the scored rows during a re-run
    bad.write_text("student,question,points,delta,reason,grader\n1004,q2,,+5,bonus,g\n")
    assert twdl(_grade_args(term, out) + ["--overrides", str(bad)]) == 2
    assert _snapshot(out) == before


def test_hidden_checks_are_held_back_until_released(term, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(term / "out", out)
    hidden = ["mean_of_the_graders_data", "the mean is that of the data the grader rebuilds",
              "squares_are_right", "squares holds the element-wise squares of data", "not the squares of data",
              "squares has the shape of data"]
    pages = sorted((out / "feedback").glob("*.html"))
    assert len(pages) == 10
    for page in pages:
        text = page.read_text()
        assert not [h for h in hidden if h in text], page.name
    right = pd.read_csv(out / "grades.csv", dtype={"user_id": str}).set_index("user_id").loc["1007", "submission"]
    assert "2 hidden checks, 3 of 3 points" in (out / "feedback" / f"{right}.html").read_text()
    assert twdl(["grade", "--release-hidden", "--out", str(out)]) == 0
    text = (out / "feedback" / f"{right}.html").read_text()
    assert "squares holds the element-wise squares of data" in text and "the grader rebuilds" in text


GRADESCOPE_TEST = {"name": str, "score": (int, float), "max_score": (int, float), "output": str, "visibility": str}


def _validate_gradescope(results: dict) -> None:
    """The fields of Gradescope's documented results.json (autograder specifications, "Output format")."""
    assert isinstance(results["score"], float) and isinstance(results["tests"], list) and results["tests"]
    assert isinstance(results["output"], str) and isinstance(results["execution_time"], int)
    for test in results["tests"]:
        for key, kind in GRADESCOPE_TEST.items():
            assert isinstance(test[key], kind), (key, test)
        assert test["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
        assert test.get("status", "passed") in ("passed", "failed") and 0 <= test["score"] <= test["max_score"]


def _run_entry(package: Path, service: str, notebook: Path, tmp_path: Path) -> dict:
    """Lay out the service's folders as it does, run the generated entry point, return its results.json."""
    root = tmp_path / service
    if service == "gradescope":
        with zipfile.ZipFile(package) as archive:
            archive.extractall(root / "source")
        shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
        entry, inbox = root / "run_autograder", root / "submission"
    else:
        shutil.copytree(package, root / "tests")
        entry, inbox = root / "tests" / "run.sh", root / "student"
    inbox.mkdir(parents=True)
    shutil.copy2(notebook, inbox / notebook.name)
    env = {**os.environ, "TWDL_AUTOGRADER_ROOT": str(root), "TWDL_PYTHON": sys.executable}
    result = subprocess.run(["bash", str(entry)], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def test_prairielearn_entry_point_writes_its_results(term, tmp_path, monkeypatch):
    monkeypatch.chdir(term)
    package = tmp_path / "tests-folder"
    assert twdl(["autograder", "prairielearn", "--module", str(term / "notebooks" / "99_toy.py"), "-o",
                 str(package)]) == 0
    notebook = next((term / "out" / ".twdl" / "canvas" / "submissions").glob("garciagus_1007_*.ipynb"))
    results = _run_entry(package, "prairielearn", notebook, tmp_path)
    assert results["gradable"] is True and results["score"] == 1.0  # 5 of the 5 auto-graded points
    assert set(results) >= {"gradable", "score", "message", "output", "tests"}
    for test in results["tests"]:
        assert set(test) >= {"name", "description", "points", "max_points", "message", "output"}
    assert not any("squares holds" in t["name"] + t["message"] for t in results["tests"])  # hidden: held back
    assert sum(t["points"] for t in results["tests"]) == pytest.approx(5.0)


def test_gradescope_run_autograder_gives_the_points_twdl_grade_gives_a_module_02_notebook(tmp_path, mirror):
    notebook = ROOT / "notebooks" / "02_optimization.ipynb"  # the solution: every question answered
    package = tmp_path / "autograder.zip"
    assert twdl(["autograder", "gradescope", "--module", "02", "-o", str(package)]) == 0
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    assert {"setup.sh", "run_autograder", "twdl-autograder.json", "checks/02_optimization.py"} <= set(names)
    results = _run_entry(package, "gradescope", notebook, tmp_path)
    _validate_gradescope(results)
    out = tmp_path / "grades"
    assert twdl(["grade", str(notebook), "--module", "02", "--out", str(out), "--jobs", "1"]) == 0
    total = pd.read_csv(out / "grades.csv").loc[0, "total"]
    assert results["score"] == pytest.approx(total) and total > 0
    hidden = [t for t in results["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["visibility"] in ("visible", "after_published") for t in results["tests"])
    if results["extra_data"]["twdl"]["sandboxed"] is False:
        assert "without twdl's sandbox" in results["output"]


def test_a_module_can_release_its_hidden_checks_in_its_check_file(term, tmp_path):
    from twdl_tools.grading.checkfile import load_check_file
    from twdl_tools.grading.feedback import feedback_html
    from twdl_tools.grading.publish import read_manifest, stored_rows

    text = (term / "autograder" / "99_toy.py").read_text()
    assert not load_check_file(term / "autograder" / "99_toy.py").release_hidden
    released = tmp_path / "99_toy.py"
    released.write_text(text + "\n\nRELEASE_HIDDEN = True\n")
    check_file = load_check_file(released)
    assert check_file.release_hidden
    row = next(r for r in stored_rows(term / "out", read_manifest(term / "out")["submissions"]) if r["status"] == "ok")
    from twdl_tools.grading.scoring import finalize_row

    row = finalize_row(row, check_file, {})
    assert "squares holds the element-wise squares" in feedback_html(row, check_file, release_hidden=True)
    assert "squares holds the element-wise squares" not in feedback_html(row, check_file)
