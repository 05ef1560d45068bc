"""One feedback page per submission: points per question, each public check with pass/fail and its message.

Hidden checks are held back by default: a question shows "N hidden checks, X of Y points" (Y: their share of the
question's points by weight, X: the share they earned), never a hidden check's name, description or message.
`release_hidden` (`twdl grade --release-hidden`, e.g. after the deadline) shows them in full. A TA's override
shows as "adjusted by a TA: reason", a late penalty with its rule.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write

from .checkfile import CheckFile
from .scoring import TA_STATES

__all__ = ["FEEDBACK_DIR", "feedback_html", "write_feedback"]

FEEDBACK_DIR = "feedback"
_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}"
          "table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{border:1px solid #ccc;padding:.3em .6em;"
          "text-align:left;vertical-align:top} .pass{color:#17643a} .fail{color:#a31515} .muted{color:#666}"
          ".answer{white-space:pre-wrap;border-left:3px solid #ccc;padding-left:.8em}")


def _points(value: Any, maximum: float) -> str:
    return f"pending / {maximum:g}" if value is None else f"{value:g} / {maximum:g}"


def _hidden_summary(entry: dict[str, Any], points: float) -> str:
    """ "N hidden checks, X of Y points" for a question's hidden checks (no name, no message)."""
    checks = [c for c in entry.get("checks", []) if c["name"] != "cells_ran"]
    hidden = [c for c in checks if c.get("hidden")]
    weight = sum(float(c.get("points", 1.0)) for c in checks)
    if not hidden or not weight:
        return ""
    worth = points * sum(float(c.get("points", 1.0)) for c in hidden) / weight
    earned = points * sum(float(c.get("points", 1.0)) for c in hidden if c.get("passed")) / weight
    return (f"{len(hidden)} hidden check{'s' if len(hidden) != 1 else ''}, {earned:.3g} of {worth:.3g} points "
            "(their names and messages are shown when the course releases them)")


def _summary(entry: dict[str, Any], release_hidden: bool) -> str:
    """The question's summary, unless it quotes a hidden check that is held back."""
    text = entry.get("summary", "")
    if release_hidden or entry.get("override"):
        return text
    for c in entry.get("checks", []):
        if c.get("hidden") and c.get("description") and c["description"] in text:
            return "a required hidden check failed: the question scores 0" if entry.get("points") == 0 else \
                "a hidden check failed"
    return text


def feedback_html(row: dict[str, Any], check_file: CheckFile, title: str = "", *, release_hidden: bool = False,
                  late_rule: str = "") -> str:
    """The feedback page of one graded row (HTML; every student-written text escaped)."""
    e = html.escape
    who = e(row["student"]) + (f" (Canvas user {e(str(row['user_id']))})" if row.get("user_id") else "")
    parts = [f"<h1>{e(title or check_file.module)}: feedback for {who}</h1>",
             f"<p>File <code>{e(row['file'])}</code>. Total <b>{_points(row.get('total'), check_file.max_points)}</b>"
             f"{' (written answers still to be graded)' if row.get('manual_pending') else ''}.</p>"]
    if row.get("late"):
        parts.append(f"<p class=\"fail\">Late: {e(row.get('late_note', ''))}. Penalty "
                     f"{row.get('penalty', 0):g} point(s): total after penalty <b>{row.get('final', 0):g} / "
                     f"{check_file.max_points:g}</b>. Rule: {e(late_rule)}.</p>")
    if row.get("status") != "ok":
        where = f" in cell {row['failing_cell']}" if row.get("failing_cell") is not None else ""
        parts.append(f"<p class=\"fail\">Execution: {e(row.get('status', ''))}{e(where)}: {e(row.get('error') or '')}</p>")
    for entry in row.get("questions", []):
        question = check_file.question(entry["id"])
        parts.append(f"<h2>{e(question.label)}: {_points(entry.get('points'), question.points)}</h2>")
        if entry.get("override"):
            was = entry["override"]["was"]
            parts.append(f"<p><b>Adjusted by a TA: {e(entry['override']['reason'])}</b> (was "
                         f"{'pending' if was is None else f'{was:g}'}; {e(entry['override']['grader'])})</p>")
        if entry["kind"] == "manual":
            parts.append(f"<p>{e(entry.get('summary', ''))}</p>")
            if entry.get("answer"):
                parts.append(f"<div class=\"answer\">{e(entry['answer'])}</div>")
            continue
        if not entry.get("checks"):
            parts.append(f"<p class=\"fail\">{e(entry.get('summary', ''))}</p>")
            continue
        if entry.get("state") in TA_STATES:
            parts.append(f"<p class=\"muted\">{e(_summary(entry, release_hidden))}</p>")
        rows = []
        shown = [c for c in entry["checks"] if release_hidden or not c.get("hidden")]
        for c in shown:
            kind = "hidden" if c.get("hidden") else "public"
            extra = " (required)" if c.get("required") else ""
            note = e(c.get("message", "")) + (f"<br><span class=\"muted\">hint: {e(c['hint'])}</span>"
                                              if c.get("hint") and not c.get("passed") else "")
            outcome = "TA" if c.get("needs_ta") else "pass" if c.get("passed") else "fail"
            rows.append(f"<tr><td class=\"{'pass' if c.get('passed') else 'fail'}\">{outcome}"
                        f"</td><td>{e(c.get('description', ''))}<span class=\"muted\">{extra}</span></td>"
                        f"<td class=\"muted\">{kind}</td><td>{note}</td></tr>")
        if rows:
            parts.append("<table><thead><tr><th></th><th>check</th><th></th><th>message</th></tr></thead><tbody>"
                         + "".join(rows) + "</tbody></table>")
        held = "" if release_hidden else _hidden_summary(entry, question.points)
        if held:
            parts.append(f"<p class=\"muted\">{e(held)}</p>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Feedback: {e(row['student'])}"
            f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_feedback(rows: list[dict[str, Any]], check_file: CheckFile, out_dir: str | Path, title: str = "", *,
                   release_hidden: bool = False, late_rule: str = "") -> list[Path]:
    """Write feedback/<submission>.html for every row; return the paths."""
    paths = []
    for row in rows:
        path = Path(out_dir) / FEEDBACK_DIR / f"{row['submission']}.html"
        atomic_write(path, feedback_html(row, check_file, title, release_hidden=release_hidden, late_rule=late_rule))
        paths.append(path)
    return paths
