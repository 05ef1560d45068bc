"""Publish: grades.csv, report.html and, with a check file, feedback/, manual/ and canvas.csv, from the rows."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.records import flat_records, record_columns

from .checkfile import CheckFile
from .rows import FIXED_COLUMNS, SCORE_COLUMNS

__all__ = ["grades_table", "write_outputs"]


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


def write_outputs(rows: list[dict[str, Any]], out: Path, check_file: CheckFile | None, *, title: str,
                  histogram: str | None = None, canvas_assignment: str | None = None,
                  canvas_roster: str | None = None) -> Any:
    """grades.csv, report.html and, with a check file, feedback/, manual/ and canvas.csv; return the table."""
    from .copies import copy_groups
    from .feedback import write_feedback
    from .manual import canvas_csv, export_manual, load_manual_scores
    from .report import choose_histogram_metric, question_summary, write_report
    from .scoring import finalize_row

    summary = copies = None
    if check_file is not None:
        manual = load_manual_scores(out)
        rows = [finalize_row(row, check_file, manual) for row in rows]
        write_feedback(rows, check_file, out, title)
        export_manual(rows, check_file, out)
        summary = question_summary(rows, check_file)
        copies = copy_groups(rows, {q.id: q.template for q in check_file.questions if q.kind == "manual"})
    table = grades_table(rows, check_file)
    atomic_write(out / "grades.csv", table.to_csv(index=False))
    if check_file is not None:
        atomic_write(out / "canvas.csv", canvas_csv(table, canvas_assignment or check_file.module,
                                                    check_file.max_points, canvas_roster))
    metric = histogram or ("total" if check_file is not None else choose_histogram_metric(table))
    write_report(table, out / "report.html", histogram_metric=metric, title=title, questions=summary, copies=copies)
    return table
