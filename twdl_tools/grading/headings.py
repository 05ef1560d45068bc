"""What a student sees of how a question is graded: the heading cell `twdl sync` puts above each question.

For every question declared in a notebook source, `sync` inserts one markdown cell (tagged `question-heading`)
directly above the cell that answers it, in both the solution and the student notebook. It states the question's
title and points and how they are earned: for an auto-graded question, every check, public and hidden, in words
(its docstring's first paragraph, the same words the feedback page shows), with its share of the points and
whether it is required; for a written answer, its rubric (the paragraph of the cell's solution block that starts
with "Rubric": students see it, a model answer above it stays with the TAs). Hidden checks are described, never
shown: no name, no code. The headings are generated from the source on every sync and never edited by hand; a
heading cell found in a source is dropped there (`strip_headings`).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from .checkfile import DECORATOR, HIDDEN_TAG, PUBLIC_TAG, Question, declared_questions

__all__ = ["HEADING_TAG", "CheckWords", "described_checks", "rubric_text", "heading_markdown", "question_headings",
           "with_headings", "is_heading_cell", "strip_headings"]

HEADING_TAG = "question-heading"
RUBRIC = re.compile(r"^Rubric\b", re.M)
RUBRIC_POINTS = re.compile(r"^Rubric\s*\((\d+(?:\.\d+)?) points?\)")
HEADING_CELL = re.compile(r"^# %% \[markdown\][^\n]*[\"']" + HEADING_TAG + r"[\"'][^\n]*\n.*?(?=^# %%|\Z)",
                          re.S | re.M)
MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]<>$])")
DOTTED_NAME = re.compile(r"(?<![\w`])([A-Za-z_]\w+(?:\.(?:<\w+>|\[\w*\]|\w)+)+)")  # data.test, m2.homework.<x>_y


@dataclass(frozen=True)
class CheckWords:
    """One check as a student reads it: what it tests, its weight, whether it is required or hidden."""

    question: str
    description: str
    weight: float = 1.0
    required: bool = False
    hidden: bool = False


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _literal(deco: ast.Call, name: str, default: Any, where: str) -> Any:
    for keyword in deco.keywords:
        if keyword.arg == name:
            try:
                return ast.literal_eval(keyword.value)
            except ValueError as err:
                raise ValueError(f"{where}: write {name}= as a literal (the question's heading states it)") from err
    return default


def _checks_in(source: str, hidden: bool, where: str) -> list[CheckWords]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            func = getattr(deco, "func", None)
            if getattr(func, "attr", getattr(func, "id", "")) != DECORATOR:
                continue
            at = f"{where}: check {node.name}"
            doc = ast.get_docstring(node)
            if not doc or not doc.strip():
                raise ValueError(f"{at} has no docstring: write one sentence a student understands (what it "
                                 "verifies, no threshold); the question's heading and the feedback show it")
            question = deco.args[0].value if deco.args and isinstance(deco.args[0], ast.Constant) else ""
            found.append(CheckWords(str(question), " ".join(doc.split("\n\n")[0].split()),
                                    float(_literal(deco, "points", 1.0, at)),
                                    bool(_literal(deco, "required", False, at)), hidden))
    return found


def described_checks(nb: Any, where: str = "") -> dict[str, list[CheckWords]]:
    """question id -> its checks in words, public ones first, each group in the source's order."""
    public, hidden = [], []
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if cell.cell_type == "code" and (PUBLIC_TAG in tags or HIDDEN_TAG in tags):
            group = hidden if HIDDEN_TAG in tags else public
            group += _checks_in(cell.source, HIDDEN_TAG in tags, f"{where} cell {index}")
    found: dict[str, list[CheckWords]] = {}
    for check in public + hidden:
        found.setdefault(check.question, []).append(check)
    return found


def rubric_text(question: Question, where: str = "") -> str:
    """The rubric students see: the written answer's solution block from its line starting "Rubric" to the end."""
    match = RUBRIC.search(question.rubric)
    if match is None:
        raise ValueError(f"{where}: written answer {question.id!r} has no rubric: end its solution block with a "
                         "paragraph starting 'Rubric (N points)'; students see it in the question's heading")
    rubric = question.rubric[match.start():].strip()
    stated = RUBRIC_POINTS.match(rubric)
    if stated and float(stated.group(1)) != question.points:
        raise ValueError(f"{where}: the rubric of {question.id!r} says {stated.group(1)} points, the question "
                         f"declares points={question.points:g}; make them agree")
    return rubric


def _points(value: float) -> str:
    value = round(value, 2)
    return f"{value:g} point{'' if value == 1 else 's'}"


def _sentence(text: str) -> str:
    """A docstring as one Markdown sentence: dotted names as `code`, other special characters escaped, capitalised,
    with a full stop."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside `code` spans
        pieces = DOTTED_NAME.split(parts[i])  # odd pieces are dotted names
        parts[i] = "".join(f"`{piece}`" if j % 2 else MARKDOWN_SPECIAL.sub(r"\\\1", piece)
                           for j, piece in enumerate(pieces))
    escaped = "`".join(parts)
    escaped = escaped[:1].upper() + escaped[1:]
    return escaped if escaped.endswith((".", "!", "?")) else escaped + "."


def _title(question: Question) -> str:
    number = re.fullmatch(r"q(\d+)", question.id)
    name = f"Question {number.group(1)}" if number else f"Question {question.id}"
    return f"### {name} ({_points(question.points)})" + (f": {question.title}" if question.title else "")


def heading_markdown(question: Question, checks: list[CheckWords], rubric: str = "") -> str:
    """The heading cell's Markdown: title and points, then how they are earned (checks in words, or the rubric)."""
    lines = [_title(question), ""]
    if question.kind == "manual":
        lines += ["*How it is graded:* a written answer, scored by a TA with the rubric below. An answer left blank "
                  "or unchanged scores 0.", ""]
        lines += [f"> {line}".rstrip() for line in rubric.splitlines()]
        return "\n".join(lines)
    total = sum(c.weight for c in checks)
    lines.append(f"*How it is graded:* automatically, by {len(checks)} check{'s' if len(checks) != 1 else ''} "
                 f"that the grader runs on your submitted notebook. Each check that passes earns the points beside "
                 f"it; if a *required* check fails, or a cell of this question raises an error, the question "
                 f"scores 0.")
    for hidden, intro in ((False, f"**Public checks** (run them here with `twdl.check(\"{question.id}\")`):"),
                          (True, "**Hidden checks** (only the grader runs them; your feedback shows how many "
                                 "passed and their points, and each one's result once the course releases them):")):
        group = [c for c in checks if c.hidden == hidden]
        if not group:
            continue
        lines += ["", intro]
        for check in group:
            share = _points(question.points * check.weight / total)
            lines.append(f"- ({share}{', required' if check.required else ''}) {_sentence(check.description)}")
    return "\n".join(lines)


def question_headings(nb: Any, where: str = "") -> dict[str, str]:
    """question id -> its heading's Markdown, for every question declared in `nb` (a notebook read from its .py)."""
    checks = described_checks(nb, where)
    return {q.id: heading_markdown(q, checks.get(q.id, []), rubric_text(q, where) if q.kind == "manual" else "")
            for q in declared_questions(nb, where)}


def is_heading_cell(cell: Any) -> bool:
    """True for a generated question heading."""
    return HEADING_TAG in _tags(cell)


def with_headings(cells: list[Any], headings: dict[str, str]) -> list[Any]:
    """`cells` without any old heading, with each question's heading cell inserted directly above its cell."""
    import nbformat

    out = []
    for cell in cells:
        if is_heading_cell(cell):
            continue
        qid = cell.get("metadata", {}).get("question")
        if isinstance(qid, str) and qid in headings:
            out.append(nbformat.v4.new_markdown_cell(headings[qid], metadata={"tags": [HEADING_TAG]}))
        out.append(cell)
    return out


def strip_headings(text: str) -> str:
    """A jupytext .py source without heading cells (an editor paired with the .ipynb may have written them back)."""
    return HEADING_CELL.sub("", text)
