"""Written answers for TAs: one file per question (every student's answer side by side), merged back as scores.

`twdl grade` writes `manual/<question>.csv` (fill in `points` and `comment`) and `manual/<question>.html` (to
read); `twdl grade --merge-manual manual/<question>.csv` stores the scores in `manual/scores.json`, keyed by
submission and by a hash of the answer, so a changed answer is never given an old score.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write

from .checkfile import CheckFile
from .scoring import TA_STATES

__all__ = ["MANUAL_DIR", "SCORES_FILE", "MANUAL_COLUMNS", "export_manual", "read_manual_csv",
           "load_manual_scores", "merged_scores", "store_manual_scores"]

MANUAL_DIR = "manual"
SCORES_FILE = "scores.json"
MANUAL_COLUMNS = ["question", "student", "submission", "state", "points", "max_points", "comment", "digest", "answer"]


def _entry(row: dict[str, Any], qid: str) -> dict[str, Any] | None:
    return next((e for e in row.get("questions", []) if e["id"] == qid), None)


def _unmerged_edits(path: Path, records: list[dict[str, str]]) -> bool:
    """True when `path` holds points or comments a TA typed that differ from what would be written now."""
    try:
        existing = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, csv.Error):
        return False
    def key(points: str | None, comment: str | None) -> tuple:
        try:
            value: Any = float(points) if (points or "").strip() else None
        except ValueError:
            value = points
        return value, (comment or "").strip()

    now = {r["submission"]: key(r["points"], r["comment"]) for r in records}
    return any(key(row.get("points"), row.get("comment")) != now.get(row.get("submission"), (None, ""))
               for row in existing if row.get("state") != "blank")


def export_manual(rows: list[dict[str, Any]], check_file: CheckFile, out_dir: str | Path) -> list[Path]:
    """Write manual/<q>.csv and manual/<q>.html for every written-answer question, and for every auto-graded one
    that some submission's checks left to a TA (its code and the reason); return the paths.

    A CSV holding scores a TA typed but has not merged yet is left as it is (with a warning), never overwritten.
    """
    import sys

    folder = Path(out_dir) / MANUAL_DIR
    written = []
    for question in check_file.questions:
        records = []
        for row in rows:
            entry = _entry(row, question.id)
            if entry is None or (question.kind != "manual" and entry.get("state") not in TA_STATES):
                continue
            points = "" if entry.get("points") is None else f"{entry['points']:g}"
            records.append({"question": question.id, "student": row["student"], "submission": row["submission"],
                            "state": entry.get("state", ""), "points": points, "max_points": f"{question.points:g}",
                            "comment": entry.get("comment", ""), "digest": entry.get("digest", ""),
                            "answer": entry.get("answer", "")})
        if question.kind != "manual" and not records:
            continue  # an auto-graded question no TA has to look at
        target = folder / f"{question.id}.csv"
        if _unmerged_edits(target, records):
            print(f"twdl grade: {target} holds scores not merged yet: left unchanged; merge it with "
                  f"--merge-manual {target}", file=sys.stderr)
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, MANUAL_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
            atomic_write(target, buffer.getvalue())
        atomic_write(folder / f"{question.id}.html", _answers_html(question.label, question.template,
                                                                    question.rubric, records))
        written += [folder / f"{question.id}.csv", folder / f"{question.id}.html"]
    return written


def _answers_html(label: str, template: str, rubric: str, records: list[dict[str, str]]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(r['student'])}<br><small>{html.escape(r['submission'])}</small></td>"
        f"<td class=\"{html.escape(r['state'])}\">{html.escape(r['state'])}"
        f"{'' if not r['points'] else ': ' + html.escape(r['points']) + ' / ' + html.escape(r['max_points'])}</td>"
        f"<td><div class=\"answer\">{html.escape(r['answer']) or '<em>(blank: 0 points, automatic)</em>'}</div></td></tr>"
        for r in records)
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222} table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.4em .6em;vertical-align:top;text-align:left}"
             ".answer{white-space:pre-wrap;max-width:60em} .blank{color:#777} .pending{color:#a35f00}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(label)}</title>"
            f"<style>{style}</style></head><body>\n<h1>{html.escape(label)}</h1>\n"
            f"<p>The prompt as students received it:</p><blockquote class=\"answer\">{html.escape(template)}</blockquote>\n"
            + (f"<p>Model answer / rubric (from the notebook source):</p><blockquote class=\"answer\">"
               f"{html.escape(rubric)}</blockquote>\n" if rubric else "") +
            f"<p>{len(records)} submission(s). Score them in the CSV file of the same name (columns points, comment), "
            "then run <code>twdl grade --merge-manual FILE --out DIR</code>.</p>\n"
            f"<table><thead><tr><th>student</th><th>state</th><th>answer</th></tr></thead><tbody>\n{rows}\n"
            "</tbody></table>\n</body></html>\n")


def read_manual_csv(path: str | Path, check_file: CheckFile, submissions: set[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Scores from a filled-in manual/<q>.csv: question -> submission -> {points, comment, digest}; validated."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read {path}: {err}") from err
    reader = csv.DictReader(io.StringIO(text))
    missing = {"question", "submission", "points", "digest"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; merge the CSV that `twdl grade` wrote "
                         f"in {MANUAL_DIR}/ (fill in points and comment, keep the other columns)")
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for line, row in enumerate(reader, start=2):
        points = (row.get("points") or "").strip()
        if row.get("state") == "blank" or not points:
            continue  # blank answers score 0 by themselves; an empty points cell is not graded yet
        qid, submission = row["question"], row["submission"]
        try:
            question = check_file.question(qid)
        except KeyError as err:
            raise ValueError(f"{path} line {line}: {err.args[0]}") from None
        if question.kind != "manual" and row.get("state") not in TA_STATES:
            raise ValueError(f"{path} line {line}: question {qid!r} is auto-graded; only written answers and "
                             "questions that need a TA are merged")
        if submission not in submissions:
            raise ValueError(f"{path} line {line}: no graded submission named {submission!r} in this output folder")
        try:
            value = float(points)
        except ValueError:
            raise ValueError(f"{path} line {line}: points {points!r} is not a number") from None
        if not 0 <= value <= question.points:
            raise ValueError(f"{path} line {line}: points {value:g} outside 0..{question.points:g} for {qid}")
        found.setdefault(qid, {})[submission] = {"points": value, "comment": (row.get("comment") or "").strip(),
                                                 "digest": row["digest"]}
    return found


def load_manual_scores(out_dir: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The TA scores merged so far into `out_dir` (question -> submission -> score), {} when none."""
    try:
        return json.loads((Path(out_dir) / MANUAL_DIR / SCORES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def merged_scores(paths: list[str | Path], out_dir: str | Path, check_file: CheckFile,
                  submissions: set[str]) -> tuple[dict[str, dict[str, dict[str, Any]]], int]:
    """manual/scores.json's scores with those of the given filled-in CSV files added (validated; nothing written),
    and how many scores the files gave."""
    scores = load_manual_scores(out_dir)
    count = 0
    for path in paths:
        for qid, given in read_manual_csv(path, check_file, submissions).items():
            scores.setdefault(qid, {}).update(given)
            count += len(given)
    return scores, count


def store_manual_scores(scores: dict[str, dict[str, dict[str, Any]]], out_dir: str | Path) -> None:
    """Write manual/scores.json."""
    atomic_write(Path(out_dir) / MANUAL_DIR / SCORES_FILE, json.dumps(scores, indent=1, sort_keys=True))
