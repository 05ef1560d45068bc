"""A TA's week on real module-02 notebooks: a synthetic Canvas download graded in one command, then checked.

    python scripts/canvas_term.py --out /tmp/canvas-term [--jobs 2]

Builds a Canvas "Download Submissions" zip of 12 module-02 notebooks (10 students: 2 resubmitted, 3 flagged LATE,
one of them within an extension; one student absent from the roster) and a roster with one student who submitted
nothing, runs `twdl grade` once (roster, due date, extension, 10 %/day penalty), checks every row's user id, late
flag and penalty, canvas.csv's match by ID and the lists of superseded files and unmatched students, and writes
what it measured to OUT/canvas_term.json. Every notebook executes (about 40 s each on one CPU thread, smoke
profile): tests/test_grading_term.py runs the same scenario on the toy module in seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DUE = "2026-02-06T23:59-05:00"
# user id -> (sortable name, roster name or None, LATE flag, local time (-05:00), notebook: solution | student)
STUDENTS = {
    "2001": ("adamsann", "Ann Adams", False, (2026, 2, 6, 20, 0), "student"),
    "2002": ("bakerbo", "Bo Baker", False, (2026, 2, 6, 21, 0), "solution"),
    "2003": ("chency", "Cy Chen", False, (2026, 2, 6, 22, 0), "solution"),
    "2004": ("davisdee", "Dee Davis", True, (2026, 2, 7, 10, 0), "solution"),
    "2005": ("evanseve", "Eve Evans", True, (2026, 2, 9, 1, 0), "solution"),
    "2006": ("fordfay", "Fay Ford", True, (2026, 2, 8, 12, 0), "solution"),
    "2007": ("garciagus", "Gus Garcia", False, (2026, 2, 5, 9, 0), "solution"),
    "2008": ("hillhal", "Hal Hill", False, (2026, 2, 6, 23, 58), "student"),
    "2009": ("ivesida", "Ida Ives", False, (2026, 2, 6, 12, 0), "solution"),
    "2010": ("jonesjo", None, False, (2026, 2, 6, 13, 0), "solution"),
}
RESUBMITTED = ("2002", "2003")
EXPECTED_DAYS = {"2004": 1, "2005": 3}  # 2006 is late against --due but within her extension


def build(folder: Path) -> None:
    """submissions.zip, roster.csv and extensions.csv in `folder`."""
    import nbformat

    texts = {kind: nbformat.writes(nbformat.read(str(path), as_version=4)) for kind, path in
             (("solution", ROOT / "notebooks" / "02_optimization.ipynb"),
              ("student", ROOT / "notebooks" / "student" / "02_optimization.ipynb"))}
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "submissions.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        attachment = 7000
        for user, (sortable, _, late, when, kind) in STUDENTS.items():
            if user in RESUBMITTED:
                attachment += 1
                old = zipfile.ZipInfo(f"{sortable}_{user}_{attachment}_02_optimization.ipynb", (2026, 2, 5, 8, 0, 0))
                archive.writestr(old, texts["student"])
            attachment += 1
            suffix = "-1" if user in RESUBMITTED else ""
            name = f"{sortable}{'_LATE' if late else ''}_{user}_{attachment}_02_optimization{suffix}.ipynb"
            archive.writestr(zipfile.ZipInfo(name, (*when, 0)), texts[kind])
    lines = ["Student,ID,SIS User ID,SIS Login ID,Section,02_optimization", "    Points Possible,,,,,"]
    lines += [f"{name},{user},sis{user},{sortable},A," for user, (sortable, name, *_) in STUDENTS.items() if name]
    lines.append("Kai King,2011,sis2011,kingkai,B,")
    (folder / "roster.csv").write_text("\n".join(lines) + "\n")
    (folder / "extensions.csv").write_text("student,due\n2006,2026-02-08 23:59 America/New_York\n")


def check(out: Path) -> list[str]:
    """What is wrong with the outputs (empty when every expectation holds)."""
    import pandas as pd

    problems = []
    grades = pd.read_csv(out / "grades.csv", dtype={"user_id": str}).set_index("user_id")
    if sorted(grades.index) != sorted(STUDENTS):
        problems.append(f"user ids {sorted(grades.index)}")
    for user, (sortable, name, _, _, _) in STUDENTS.items():
        if user not in grades.index:
            continue
        row = grades.loc[user]
        days = EXPECTED_DAYS.get(user, 0)
        penalty = round(min(row["total"], row["max_points"] * 0.10 * days), 2)
        got = (row["student"], bool(row["late"]), int(row["days_late"]), float(row["penalty"]), float(row["final"]))
        want = (name or sortable, user in EXPECTED_DAYS, days, penalty, round(row["total"] - penalty, 2))
        if got != want:
            problems.append(f"{user}: {got} != {want}")
    canvas = (out / "canvas.csv").read_text().splitlines()
    for user, (_, name, *_) in STUDENTS.items():
        if name and user in grades.index and not any(line.startswith(f"{name},{user},sis{user},") for line in canvas):
            problems.append(f"canvas.csv has no row for {name} by ID {user}")
    term = json.loads((out / "term.json").read_text())
    if sorted(s["user_id"] for s in term["superseded"]) != list(RESUBMITTED):
        problems.append(f"superseded {term['superseded']}")
    if [r["user_id"] for r in term["no_roster_row"]] != ["2010"] or [r["ID"] for r in term["no_submission"]] != ["2011"]:
        problems.append(f"roster mismatches {term['no_roster_row']} {term['no_submission']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="a folder for the download, the roster and the grades")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from twdl_tools.cli import main as twdl

    folder = Path(args.out)
    build(folder)
    start = time.perf_counter()
    code = twdl(["grade", str(folder / "submissions.zip"), "--module", "02", "--out", str(folder / "grades"),
                 "--jobs", str(args.jobs), "--canvas-roster", str(folder / "roster.csv"), "--due", DUE,
                 "--extensions", str(folder / "extensions.csv"), "--late-penalty", "10"])
    seconds = time.perf_counter() - start
    problems = check(folder / "grades") if code == 0 else [f"twdl grade exited with {code}"]
    import pandas as pd

    grades = pd.read_csv(folder / "grades" / "grades.csv", dtype={"user_id": str})
    result = {"files_in_zip": 12, "graded": len(grades), "exit_code": code, "seconds": round(seconds, 1),
              "jobs": args.jobs, "statuses": grades["status"].value_counts().to_dict(),
              "totals": dict(zip(grades["user_id"], grades["total"])), "finals": dict(zip(grades["user_id"],
                                                                                         grades["final"])),
              "problems": problems}
    (folder / "canvas_term.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
