"""Points per question from one graded submission: check results, cells that raised, written answers.

Auto-graded question: 0 when one of its cells raised or a `required` check failed; waiting for a TA ("needs_ta")
when a check could not judge an object the grader cannot rebuild (a model of the student's own class); otherwise
its points times the passed checks' share of the checks' weight. Written (manual) answer: 0 when blank (missing
or unchanged), else pending until a TA's score is merged (`twdl grade --merge-manual`), keyed by a hash of the
answer (for a question that needs a TA: of its cells' code).
"""
from __future__ import annotations

import hashlib
from typing import Any

from .checkfile import CheckFile, Question

__all__ = ["score_questions", "written_answers", "cell_errors", "apply_manual", "finalize_row", "answer_digest",
           "ANSWER_CHARS", "TA_STATES"]

ANSWER_CHARS = 20_000  # longer written answers are cut in the rows (the submission keeps the whole text)
TA_STATES = ("needs_ta", "graded")  # an auto-graded question a TA scores: waiting for one, or scored by one


def answer_digest(text: str) -> str:
    """Short SHA-256 of an answer's text (a TA's score applies only to the answer it was given for)."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:16]


def written_answers(nb: Any) -> dict[str, str]:
    """question id -> the text of the cells carrying that question's metadata in a submission (joined)."""
    answers: dict[str, list[str]] = {}
    for cell in getattr(nb, "cells", []) or []:
        qid = cell.get("metadata", {}).get("question")
        if isinstance(qid, str):
            answers.setdefault(qid, []).append(cell.get("source", ""))
    return {qid: "\n\n".join(parts) for qid, parts in answers.items()}


def cell_errors(nb: Any) -> dict[str, list[str]]:
    """question id -> "cell N: Error: message" for each of its cells that raised in an executed notebook."""
    found: dict[str, list[str]] = {}
    cells = [c for c in getattr(nb, "cells", []) or []
             if not {"papermill-error-cell-tag", "injected-parameters"} & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(cells):
        qid = cell.get("metadata", {}).get("question")
        if not isinstance(qid, str):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.setdefault(qid, []).append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
    return found


def _auto(question: Question, results: list[dict[str, Any]] | None, problem: str, errors: list[str],
          code: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": question.id, "kind": "auto", "max": question.points, "points": 0.0, "checks": []}
    if results is None:
        entry["summary"] = problem
        return entry
    checks = [r for r in results if r.get("question") == question.id]
    if errors:
        checks = [{"question": question.id, "name": "cells_ran", "description": "the question's cells ran without an error",
                   "passed": False, "message": "; ".join(errors), "hint": "", "points": 0.0, "required": True,
                   "hidden": False}] + checks
    entry["checks"] = checks
    if not checks:
        entry["summary"] = "no check of this question reported a result"
        return entry
    failed_required = [c for c in checks if c.get("required") and not c.get("passed") and not c.get("needs_ta")]
    waiting = [c["needs_ta"] for c in checks if c.get("needs_ta")]
    weight = sum(float(c.get("points", 1.0)) for c in checks if c["name"] != "cells_ran")
    earned = sum(float(c.get("points", 1.0)) for c in checks if c.get("passed") and c["name"] != "cells_ran")
    if failed_required:
        entry["summary"] = f"0: {failed_required[0]['description']}: {failed_required[0].get('message', '')}"
    elif waiting:
        reasons = "; ".join(dict.fromkeys(waiting))
        text = f"Needs a TA: {reasons}\n\n{(code or '').strip()}"
        entry.update(points=None, state="needs_ta", answer=text[:ANSWER_CHARS], digest=answer_digest(text),
                     summary=f"needs a TA: {reasons}")
    else:
        entry["points"] = round(question.points * earned / weight, 2) if weight else 0.0
        failed = [c for c in checks if not c.get("passed")]
        entry["summary"] = "all checks pass" if not failed else f"{failed[0]['description']}: {failed[0].get('message', '')}"
    return entry


def _manual(question: Question, answer: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": question.id, "kind": "manual", "max": question.points, "checks": []}
    text = (answer or "").strip()
    if not text or text == question.template.strip():
        entry.update(points=0.0, state="blank", answer="", digest="",
                     summary="no answer written" if answer is None or not text else "the answer cell was left unchanged")
        return entry
    entry.update(points=None, state="pending", answer=text[:ANSWER_CHARS], digest=answer_digest(text),
                 summary="waiting for a TA's score")
    return entry


def score_questions(check_file: CheckFile, *, results: list[dict[str, Any]] | None, problem: str = "",
                    executed: Any = None, submitted: Any = None) -> list[dict[str, Any]]:
    """One entry per question: id, kind, max, points (None while it awaits a TA), checks, summary."""
    errors = cell_errors(executed) if executed is not None else {}
    answers = written_answers(submitted) if submitted is not None else {}
    return [_auto(q, results, problem, errors.get(q.id, []), answers.get(q.id)) if q.kind == "auto"
            else _manual(q, answers.get(q.id)) for q in check_file.questions]


def apply_manual(entries: list[dict[str, Any]], submission: str, scores: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of `entries` with the TA scores of `submission` applied (scores: question -> submission -> score)."""
    merged = []
    for entry in entries:
        entry = dict(entry)
        given = scores.get(entry["id"], {}).get(submission)
        if given is not None and entry.get("state") in ("pending", "needs_ta"):
            if given.get("digest") == entry.get("digest"):
                entry.update(points=float(given["points"]), state="graded",
                             summary=given.get("comment") or "graded by a TA", comment=given.get("comment", ""))
            else:
                entry["summary"] = "the answer changed since a TA scored it: grade it again"
        merged.append(entry)
    return merged


def finalize_row(row: dict[str, Any], check_file: CheckFile, manual: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The row with TA scores applied and its total, max_points and manual_pending (ids awaiting a TA) set."""
    entries = row.get("questions")
    if entries is None or [e["id"] for e in entries] != [q.id for q in check_file.questions]:
        entries = score_questions(check_file, results=None, problem="this submission was not graded with these checks")
    entries = apply_manual(entries, row["submission"], manual)
    total = round(sum(e["points"] or 0.0 for e in entries), 2)
    pending = " ".join(e["id"] for e in entries if e["points"] is None)
    return {**row, "questions": entries, "total": total, "max_points": check_file.max_points, "manual_pending": pending}
