"""Overrides: a TA's change of a score (a regrade, extra credit) that every later publish applies.

The file is a CSV with columns `student, question, points, delta, reason, grader`: `points` sets the question's
points, `delta` adds to what it scored (one of the two per row). `student` names a submission, a Canvas user id or
a student's name (which must then name one row). The whole file is validated before anything is written: one bad
row is an OverrideError naming its kind, and no output changes. A valid file is kept as `<out>/overrides.csv`, so
re-runs and `--merge-manual` apply it without being given it again.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkfile import CheckFile

__all__ = ["OverrideError", "Override", "OVERRIDES_FILE", "OVERRIDE_COLUMNS", "read_overrides", "resolve_overrides",
           "apply_overrides"]

OVERRIDES_FILE = "overrides.csv"
OVERRIDE_COLUMNS = ["student", "question", "points", "delta", "reason", "grader"]


class OverrideError(ValueError):
    """A row of the overrides file that cannot be applied; `kind` names what is wrong."""

    KINDS = ("unknown-student", "ambiguous-student", "unknown-question", "points-out-of-range", "points-or-delta",
             "no-reason", "duplicate", "bad-file")

    def __init__(self, kind: str, message: str) -> None:
        assert kind in self.KINDS, kind
        super().__init__(f"override error [{kind}]: {message}; no file was changed")
        self.kind = kind


@dataclass(frozen=True)
class Override:
    """One row: who, which question, the new points or the change, why, and by whom."""

    line: int
    student: str
    question: str
    points: float | None
    delta: float | None
    reason: str
    grader: str


def _number(text: str, where: str, column: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise OverrideError("points-or-delta", f"{where}: {column} {text!r} is not a number") from None


def read_overrides(path: str | Path, check_file: CheckFile) -> list[Override]:
    """The rows of an overrides file, each checked on its own (question known, points within 0..max, exactly one of
    points/delta, a reason and a grader, no question of one student twice)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise OverrideError("bad-file", f"cannot read {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = set(OVERRIDE_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise OverrideError("bad-file", f"{path}: missing column(s) {sorted(missing)} (the columns are "
                                        f"{', '.join(OVERRIDE_COLUMNS)})")
    found, seen = [], {}
    for line, row in enumerate(reader, start=2):
        where = f"{path} line {line}"
        student, qid = (row.get("student") or "").strip(), (row.get("question") or "").strip()
        if not student and not qid and not any((v or "").strip() for v in row.values()):
            continue  # an empty line
        try:
            question = check_file.question(qid)
        except KeyError:
            raise OverrideError("unknown-question", f"{where}: {check_file.module} has no question {qid!r} (its "
                                f"questions: {', '.join(q.id for q in check_file.questions)})") from None
        points, delta = _number(row.get("points"), where, "points"), _number(row.get("delta"), where, "delta")
        if (points is None) == (delta is None):
            raise OverrideError("points-or-delta", f"{where}: give either points (the new score) or delta (a change), "
                                                   "not both or neither")
        if points is not None and not 0 <= points <= question.points:
            raise OverrideError("points-out-of-range", f"{where}: points {points:g} outside 0..{question.points:g} "
                                                       f"for {qid}")
        reason, grader = (row.get("reason") or "").strip(), (row.get("grader") or "").strip()
        if not reason or not grader:
            raise OverrideError("no-reason", f"{where}: every override needs a reason and a grader (the student "
                                             "sees the reason)")
        if (student.lower(), qid) in seen:
            raise OverrideError("duplicate", f"{where}: {student} {qid} was already overridden on line "
                                             f"{seen[student.lower(), qid]}")
        seen[student.lower(), qid] = line
        found.append(Override(line, student, qid, points, delta, reason, grader))
    return found


def resolve_overrides(overrides: list[Override], rows: list[dict[str, Any]], check_file: CheckFile,
                      path: str = "overrides") -> dict[str, list[Override]]:
    """submission -> its overrides; every row's student must name one graded submission, and a delta must keep the
    question within 0..max (checked against the scored rows, before anything is written)."""
    by_key: dict[str, set[str]] = {}
    for row in rows:
        for key in (row["submission"], row.get("user_id"), row.get("student"), row.get("sis_user_id")):
            if key:
                by_key.setdefault(str(key).lower(), set()).add(row["submission"])
    entries = {row["submission"]: {e["id"]: e for e in row.get("questions", [])} for row in rows}
    found: dict[str, list[Override]] = {}
    for o in overrides:
        where = f"{path} line {o.line}"
        matches = by_key.get(o.student.lower(), set())
        if not matches:
            raise OverrideError("unknown-student", f"{where}: no graded submission, Canvas user id or student named "
                                                   f"{o.student!r}")
        if len(matches) > 1:
            raise OverrideError("ambiguous-student", f"{where}: {o.student!r} names {len(matches)} submissions "
                                                     f"({', '.join(sorted(matches))}): use the submission's name")
        submission = next(iter(matches))
        if o.delta is not None:
            entry = entries[submission].get(o.question) or {}
            maximum = check_file.question(o.question).points
            if entry.get("points") is None:
                raise OverrideError("points-out-of-range", f"{where}: {o.question} of {submission} has no points yet "
                                                           "(it waits for a TA): give points, not a delta")
            if not 0 <= entry["points"] + o.delta <= maximum:
                raise OverrideError("points-out-of-range", f"{where}: {entry['points']:g} {o.delta:+g} is outside "
                                                           f"0..{maximum:g} for {o.question}")
        found.setdefault(submission, []).append(o)
    return found


def apply_overrides(entries: list[dict[str, Any]], overrides: list[Override]) -> list[dict[str, Any]]:
    """Copy of a row's question entries with its overrides applied (each marked `override`: was, reason, grader)."""
    given = {o.question: o for o in overrides}
    changed = []
    for entry in entries:
        o = given.get(entry["id"])
        if o is not None:
            was = entry.get("points")
            now = o.points if o.points is not None else round(float(was) + o.delta, 2)
            entry = {**entry, "points": now, "override": {"was": was, "reason": o.reason, "grader": o.grader},
                     "summary": f"adjusted by a TA: {o.reason}"}
        changed.append(entry)
    return changed
