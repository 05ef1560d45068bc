"""Copies made visible: submissions whose exported trained weights are byte-identical, or whose answers are.

A flag for the TA, never a penalty: the course is deterministic by seed, so two students who ran the same code
with the same seed export identical weights. Each row keeps `copies` = {"weights": [sha256 of each exported
model file's tensors], "answers": {question: hash of its cells' text}} (in its .grade.json).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from .scoring import answer_digest

__all__ = ["copy_marks", "copy_groups"]

UNTOUCHED = "raise NotImplementedError"  # an auto-graded cell as the student notebook hands it out


def copy_marks(fingerprints: dict[str, str], answers: dict[str, str]) -> dict[str, Any]:
    """What one row keeps to find copies: its model files' fingerprints, a hash of each answered question's cells."""
    return {"weights": sorted(v for k, v in fingerprints.items() if k.startswith("model-")),
            "answers": {q: answer_digest(t) for q, t in answers.items() if t.strip() and UNTOUCHED not in t}}


def copy_groups(rows: list[dict[str, Any]], templates: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Groups of two or more submissions sharing trained weights or an answer: what is shared, and by whom."""
    blank = {q: answer_digest(t) for q, t in (templates or {}).items()}
    shared: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        copies = row.get("copies") or {}
        for digest in set(copies.get("weights") or []):
            shared[("identical trained weights", digest)].add(row["submission"])
        for question, digest in (copies.get("answers") or {}).items():
            if digest != blank.get(question):
                shared[(f"identical answer to {question}", digest)].add(row["submission"])
    groups = [{"shared": kind, "submissions": sorted(names)} for (kind, _), names in shared.items() if len(names) > 1]
    return sorted(groups, key=lambda g: (g["shared"], g["submissions"]))
