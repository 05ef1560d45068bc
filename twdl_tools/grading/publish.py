"""Publish: grades.csv, report.html and, with a check file, feedback/, manual/ and canvas.csv, from the scored rows.

Everything a course adds after scoring is applied here, to the stored rows, so that re-publishing never executes
anything: the Canvas intake (user id, LATE flag, submission time), the roster, TA scores of written answers,
overrides, and late penalties, in that order. Every input is validated before the first file is written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.records import flat_records, record_columns

from .checkfile import CheckFile
from .late import LATE_COLUMNS, LatePolicy, lateness
from .overrides import OVERRIDES_FILE, Override, apply_overrides, resolve_overrides
from .rows import FIXED_COLUMNS, SCORE_COLUMNS

__all__ = ["Term", "grades_table", "final_rows", "write_outputs", "TERM_COLUMNS", "MANIFEST", "read_manifest",
           "stored_rows"]

MANIFEST = "grading.json"  # in --out: what the last grading was (title, check file, submissions, intake, rules)

TERM_COLUMNS = LATE_COLUMNS  # user_id, canvas_late, late, days_late, penalty, final
INTAKE_KEYS = ("user_id", "late_flag", "submitted_at", "attachment_id", "canvas_file")


@dataclass
class Term:
    """What a course adds to the scored rows at publish time (see the module docstring); all optional."""

    intake: dict[str, dict[str, Any]] = field(default_factory=dict)  # submission -> Canvas file (canvas.CanvasFile)
    superseded: list[dict[str, Any]] = field(default_factory=list)  # older files of a user: file, user_id, kept
    roster: list[dict[str, str]] | None = None  # canvas.read_roster
    late: LatePolicy = field(default_factory=LatePolicy)
    overrides: list[Override] = field(default_factory=list)
    overrides_text: str | None = None  # the validated file, kept as <out>/overrides.csv
    release_hidden: bool = False  # feedback pages show hidden checks' names and messages
    manual: dict[str, dict[str, Any]] | None = None  # TA scores to apply (None: manual/scores.json)
    manual_changed: bool = False  # write `manual` to manual/scores.json


@dataclass
class Published:
    """The final rows and what the report lists beside them."""

    rows: list[dict[str, Any]]
    roster_rows: dict[str, dict[str, str]]
    no_roster_row: list[dict[str, Any]]
    no_submission: list[dict[str, str]]


def read_manifest(out: Path) -> dict[str, Any]:
    """The last grading's manifest in `out` ({} when there is none)."""
    try:
        return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def stored_rows(out: Path, names: list[str]) -> list[dict[str, Any]]:
    """The scored rows stored beside the executed notebooks (executed/<submission>.grade.json), sorted by file."""
    from .plan import GRADE_SUFFIX

    rows = []
    for name in names:
        try:
            rows.append(json.loads((Path(out) / "executed" / f"{name}{GRADE_SUFFIX}").read_text(encoding="utf-8"))["row"])
        except (OSError, ValueError, KeyError):
            continue
    return sorted(rows, key=lambda r: (r["file"], r["submission"]))


def grades_table(rows: list[dict[str, Any]], check_file: CheckFile | None = None):
    """grades.csv as a DataFrame: the fixed columns, one column of points per question, total, max_points and
    manual_pending (with a check file; rows already finalized), user_id, canvas_late (Canvas's LATE flag), late
    (decided by the due date when the time is known), days_late, penalty and final (with a check file; the first
    four always), the mK.completed flags, then every recorded metric.

    A recorded metric cannot overwrite a fixed or score column (a record named "total" is left out).
    """
    import pandas as pd

    term = TERM_COLUMNS if check_file is not None else TERM_COLUMNS[:4]
    scores = ([q.id for q in check_file.questions] + SCORE_COLUMNS) if check_file is not None else []
    taken = scores + term
    flat = []
    for row in rows:
        points = {}
        if check_file is not None:
            points = {e["id"]: e["points"] for e in row.get("questions", [])}
            points.update({c: row.get(c) for c in SCORE_COLUMNS})
        extra = {"user_id": row.get("user_id"), "canvas_late": bool(row.get("late_flag")),
                 "late": bool(row.get("late", row.get("late_flag", False))),
                 "days_late": int(row.get("days_late") or 0)}
        if check_file is not None:
            extra.update(penalty=row.get("penalty", 0.0), final=row.get("final", row.get("total")))
        records = {k: v for k, v in flat_records(row.get("records", {})).items() if k not in taken}
        flat.append({**records, **{c: row.get(c) for c in FIXED_COLUMNS}, **points, **extra})
    columns = record_columns({k for r in flat for k in r} - set(taken), FIXED_COLUMNS)
    columns = columns[:len(FIXED_COLUMNS)] + taken + columns[len(FIXED_COLUMNS):]
    table = pd.DataFrame(flat, columns=columns)
    table["failing_cell"] = table["failing_cell"].astype("Int64")
    table["user_id"] = table["user_id"].astype("string")
    for column in scores + ["penalty", "final"] * (check_file is not None):
        if column != "manual_pending":
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.sort_values(["file", "submission"]).reset_index(drop=True)


def final_rows(rows: list[dict[str, Any]], out: Path, check_file: CheckFile | None, term: Term) -> Published:
    """The rows as published: intake, roster names, TA scores, overrides, lateness; raises before anything is
    written (an OverrideError for a bad override)."""
    from .canvas import match_roster
    from .manual import load_manual_scores
    from .scoring import finalize_row

    rows = [{**row, **{k: v for k, v in term.intake.get(row["submission"], {}).items() if k in INTAKE_KEYS}}
            for row in rows]
    matched, missing = match_roster(rows, term.roster) if term.roster is not None else ({}, [])
    for row in rows:
        person = matched.get(row["submission"])
        if person is not None:
            row.update(student=person["Student"], sis_user_id=person.get("SIS User ID", ""),
                       user_id=row.get("user_id") or person["ID"])
    keys = {str(k).lower() for row in rows for k in (row["submission"], row.get("user_id"), row.get("student"),
                                                    row.get("sis_user_id")) if k}
    unknown = sorted(set(term.late.extensions) - keys)
    if unknown:
        raise ValueError(f"the extensions name no graded submission, Canvas user id or student {unknown}; "
                         "fix the extensions file (no file was changed)")
    if check_file is None:
        rows = [{**row, **(lateness({**row, "total": 0.0}, term.late, 0.0) if term.late else {})} for row in rows]
    else:
        manual = term.manual if term.manual is not None else load_manual_scores(out)
        rows = [finalize_row(row, check_file, manual) for row in rows]
        by_submission = resolve_overrides(term.overrides, rows, check_file, OVERRIDES_FILE) if term.overrides else {}
        for row in rows:
            given = by_submission.get(row["submission"])
            if given:
                row["questions"] = apply_overrides(row["questions"], given)
                row["total"] = round(sum(e["points"] or 0.0 for e in row["questions"]), 2)
                row["manual_pending"] = " ".join(e["id"] for e in row["questions"] if e["points"] is None)
            row.update(lateness(row, term.late, check_file.max_points))
    no_roster = [r for r in rows if term.roster is not None and r["submission"] not in matched]
    return Published(rows, matched, no_roster, missing)


def write_outputs(rows: list[dict[str, Any]], out: Path, check_file: CheckFile | None, *, title: str,
                  histogram: str | None = None, canvas_assignment: str | None = None, term: Term | None = None) -> Any:
    """grades.csv, report.html and, with a check file, feedback/, manual/ and canvas.csv; return the table.

    All rows are computed first (final_rows), so a bad input raises before any file is written."""
    from .canvas import canvas_csv
    from .copies import copy_groups
    from .feedback import write_feedback
    from .manual import export_manual, store_manual_scores
    from .report import choose_histogram_metric, question_summary, write_report

    term = term or Term()
    published = final_rows(rows, out, check_file, term)
    rows = published.rows
    if term.manual is not None and term.manual_changed:
        store_manual_scores(term.manual, out)
    if term.overrides_text is not None:
        atomic_write(out / OVERRIDES_FILE, term.overrides_text)
    summary = copies = None
    if check_file is not None:
        write_feedback(rows, check_file, out, title, release_hidden=term.release_hidden, late_rule=term.late.rule())
        export_manual(rows, check_file, out)
        summary = question_summary(rows, check_file)
        copies = copy_groups(rows, {q.id: q.template for q in check_file.questions if q.kind == "manual"})
    table = grades_table(rows, check_file)
    atomic_write(out / "grades.csv", table.to_csv(index=False))
    if check_file is not None:
        atomic_write(out / "canvas.csv", canvas_csv(rows, canvas_assignment or check_file.module,
                                                    check_file.max_points, published.roster_rows))
    metric = histogram or ("total" if check_file is not None else choose_histogram_metric(table))
    term_sections = _term_sections(published, term, check_file)
    write_report(table, out / "report.html", histogram_metric=metric, title=title, questions=summary, copies=copies,
                 term=term_sections)
    atomic_write(out / "term.json", json.dumps(term_sections, indent=1, default=str))
    return table


def _term_sections(published: Published, term: Term, check_file: CheckFile | None) -> dict[str, Any]:
    """What report.html lists about the term (also written as term.json): late rule and rows, overrides,
    superseded files, roster mismatches."""
    late = [{"submission": r["submission"], "student": r["student"], "user_id": r.get("user_id") or "",
             "days_late": r.get("days_late", 0), "penalty": r.get("penalty", 0.0), "how": r.get("late_note", "")}
            for r in published.rows if r.get("late")]
    overrides = [{"submission": r["submission"], "student": r["student"], "question": e["id"],
                  "was": e["override"]["was"], "now": e["points"], "reason": e["override"]["reason"],
                  "grader": e["override"]["grader"]}
                 for r in published.rows for e in r.get("questions", []) if e.get("override")]
    return {"late_rule": term.late.rule(), "late": late, "overrides": overrides, "superseded": term.superseded,
            "roster": term.roster is not None,
            "no_roster_row": [{"submission": r["submission"], "student": r["student"],
                               "user_id": r.get("user_id") or ""} for r in published.no_roster_row],
            "no_submission": [{"Student": p.get("Student", ""), "ID": p.get("ID", ""),
                               "SIS User ID": p.get("SIS User ID", ""), "Section": p.get("Section", "")}
                              for p in published.no_submission]}
