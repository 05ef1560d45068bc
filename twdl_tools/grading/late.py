"""Deadlines and late work: the due date (with its zone), extensions, the penalty rule, and each row's lateness.

A submission is late when its submission time (from the Canvas zip) is after its due date (an extension's, else
`--due`), or, with no time known, when Canvas flagged it LATE. Days late count every started day. The penalty is a
percentage of the assignment's points per started day (`--late-penalty 10`), capped by `--late-cap`; a late flag
with no time costs the flat percentage `--late-flat` (default: one day's). It never takes a total below 0.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LatePolicy", "parse_due", "read_extensions", "lateness", "LATE_COLUMNS"]

LATE_COLUMNS = ["user_id", "canvas_late", "late", "days_late", "penalty", "final"]


def parse_due(text: str, what: str = "--due") -> dt.datetime:
    """A date and time with its zone: ISO 8601 with an offset ("2026-02-06T23:59-05:00", "...Z") or followed by an
    IANA zone name ("2026-02-06 23:59 America/Chicago"); a time without a zone is refused."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = text.strip()
    zone = None
    head, _, tail = text.rpartition(" ")
    if head and ("/" in tail or tail in ("UTC", "GMT")):
        try:
            zone = ZoneInfo(tail)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{what} {text!r}: unknown time zone {tail!r} (use an IANA name such as "
                             "America/Chicago, or an offset such as -05:00)") from None
        text = head
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date and time: write 2026-02-06T23:59-05:00 or "
                         "'2026-02-06 23:59 America/Chicago'") from None
    if zone is not None:
        if when.tzinfo is not None:
            raise ValueError(f"{what}: give either an offset or a zone name, not both")
        when = when.replace(tzinfo=zone)
    if when.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no time zone: add an offset (2026-02-06T23:59-05:00) or a zone name "
                         "('2026-02-06 23:59 America/Chicago'); a deadline without one is ambiguous")
    return when


def read_extensions(path: str | Path) -> dict[str, dt.datetime]:
    """student -> new due date, from a CSV with columns `student` (a Canvas user id, a name or a submission) and
    `due` (as --due)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read the extensions file {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    if not {"student", "due"} <= set(reader.fieldnames or []):
        raise ValueError(f"{path}: an extensions file has the columns student and due (found {reader.fieldnames})")
    found: dict[str, dt.datetime] = {}
    for line, row in enumerate(reader, start=2):
        student = (row.get("student") or "").strip()
        if not student:
            raise ValueError(f"{path} line {line}: no student")
        if student.lower() in found:
            raise ValueError(f"{path} line {line}: {student!r} has a second extension")
        found[student.lower()] = parse_due(row.get("due") or "", f"{path} line {line}: due")
    return found


@dataclass(frozen=True)
class LatePolicy:
    """The due date, the extensions and the penalty rule (percentages of the assignment's points)."""

    due: str | None = None  # ISO 8601 with offset
    per_day: float = 0.0  # percent per started day
    cap: float | None = None  # percent, at most
    flat: float | None = None  # percent for a late flag with no time (default: one day's)
    extensions: dict[str, str] = field(default_factory=dict)  # student (lower case) -> ISO due

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (stored in grading.json, so that a re-publish applies the same rule)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "LatePolicy":
        """The policy stored in grading.json."""
        return cls(**(data or {}))

    def rule(self) -> str:
        """The rule in words (report and feedback pages)."""
        if not self.per_day and not self.flat:
            return "late work is flagged, not penalised (no --late-penalty)"
        parts = [f"{self.per_day:g} % of the points per started day late"]
        if self.cap is not None:
            parts.append(f"at most {self.cap:g} %")
        parts.append(f"{self.flat_percent():g} % when Canvas flagged it late without a submission time")
        due = f"due {self.due}" if self.due else "no due date given"
        extensions = f", {len(self.extensions)} extension(s)" if self.extensions else ""
        return f"{due}{extensions}; penalty {', '.join(parts)}"

    def flat_percent(self) -> float:
        """The percentage a late flag with no known time costs."""
        return self.per_day if self.flat is None else self.flat


def _due_for(row: dict[str, Any], policy: LatePolicy) -> tuple[dt.datetime | None, bool]:
    for key in (row.get("user_id"), row.get("student"), row.get("submission"), row.get("sis_user_id")):
        if key and str(key).lower() in policy.extensions:
            return dt.datetime.fromisoformat(policy.extensions[str(key).lower()]), True
    return (dt.datetime.fromisoformat(policy.due) if policy.due else None), False


def lateness(row: dict[str, Any], policy: LatePolicy, max_points: float) -> dict[str, Any]:
    """late, days_late, penalty (points), final, and late_note (how it was decided) for one row with its total."""
    total = float(row.get("total") or 0.0)
    due, extended = _due_for(row, policy)
    submitted = row.get("submitted_at")
    flag = bool(row.get("late_flag"))
    days, late, note = 0, False, ""
    if submitted and due is not None:
        delay = dt.datetime.fromisoformat(submitted) - due
        late = delay > dt.timedelta(0)
        days = math.ceil(delay / dt.timedelta(days=1)) if late else 0
        when = f"submitted {submitted}, due {due.isoformat()}" + (" (extension)" if extended else "")
        note = f"{when}: {days} started day(s) late" if late else f"{when}: on time"
        if flag and not late:
            note += " (Canvas flagged it late against its own due date)"
        percent = min(policy.per_day * days, policy.cap if policy.cap is not None else math.inf)
    elif flag:
        late = True
        note = "Canvas flagged it late; no submission time is known" + (
            " (an extension exists but cannot be checked without a time)" if extended else "")
        percent = min(policy.flat_percent(), policy.cap if policy.cap is not None else math.inf)
    else:
        percent = 0.0
        if submitted is None and due is not None and row.get("user_id") is None:
            note = "no submission time is known: not checked against the due date"
    penalty = round(min(total, max_points * percent / 100), 2) if late else 0.0
    return {"late": late, "days_late": days, "penalty": penalty, "final": round(total - penalty, 2),
            "late_note": note}
