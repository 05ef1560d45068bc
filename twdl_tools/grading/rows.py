"""One submission's row: the one place that builds it (every step of the walk returns through here)."""
from __future__ import annotations

from typing import Any

from twdl_helpers.records import completed_modules

from ..execute import one_line
from .plan import GradeTask

__all__ = ["STATUSES", "FIXED_COLUMNS", "SCORE_COLUMNS", "make_row"]

STATUSES = ("ok", "error", "timeout", "invalid")
FIXED_COLUMNS = ["file", "student", "submission", "status", "failing_cell", "error", "runtime_s", "completed_modules"]
SCORE_COLUMNS = ["total", "max_points", "manual_pending"]


def make_row(task: GradeTask, status: str, error: str = "", *, cell: int | None = None, runtime: float = 0.0,
             records: dict[str, Any] | None = None, questions: list[dict[str, Any]] | None = None,
             **kept: Any) -> dict[str, Any]:
    """The row of one submission: the grades.csv columns, its records and scored questions, and `kept` extras
    (sandboxed, checks_s, copies, ...: stored in its .grade.json, not in grades.csv)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    records = records or {}
    row = {"file": task.file, "student": task.student, "submission": task.submission, "status": status,
           "failing_cell": cell, "error": one_line(error), "runtime_s": runtime,
           "completed_modules": " ".join(completed_modules(records)), "records": records}
    if questions is not None:
        row["questions"] = questions
    row.update(kept)
    return row
