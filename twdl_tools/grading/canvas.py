"""Canvas in and out: the names of "Download Submissions" files, the zip's entries and their times, the roster
(a gradebook export) and the gradebook import file (`canvas.csv`).

Canvas names each downloaded file `<sortable name>[_LATE]_<user id>_<attachment id>_<the student's file name>`,
and a file a student resubmitted under the same name gets `-1`, `-2` before its extension. The user id is the
`ID` column of the gradebook.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from twdl_helpers.files import atomic_write

__all__ = ["CanvasFile", "parse_canvas_name", "newest_per_user", "extract_zip", "read_roster", "match_roster",
           "canvas_csv", "CANVAS_FIXED", "ZIP_MAX_BYTES"]

CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
ZIP_MAX_BYTES = 200 * 2**20  # the largest notebook taken from a zip (a bigger entry is refused, not unpacked)
_NAME = re.compile(r"^(?P<sortable>[^_/]+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<filename>.+)$")
_RESUBMITTED = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)$")


@dataclass(frozen=True)
class CanvasFile:
    """What a Canvas download's file name says, and when the zip says the file was submitted (UTC, or None)."""

    shown: str  # the file's name as downloaded
    sortable_name: str
    user_id: str
    attachment_id: int
    late_flag: bool
    filename: str  # the student's own file name, resubmission suffix removed
    resubmission: int  # 0 for the first upload, n for "-n"
    submitted_at: str | None = None  # ISO 8601 in UTC, from the zip entry

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (stored in grading.json)."""
        return asdict(self)


def parse_canvas_name(shown: str, submitted_at: str | None = None) -> CanvasFile | None:
    """The parts of a Canvas download's file name (the base name of `shown`), or None when it is not one."""
    name = PurePosixPath(shown).name
    match = _NAME.match(name)
    if match is None:
        return None
    path = PurePosixPath(match["filename"])
    stem, resubmission = path.stem, 0
    again = _RESUBMITTED.match(stem)
    if again:
        stem, resubmission = again["stem"], int(again["n"])
    return CanvasFile(shown, match["sortable"], match["user"], int(match["attachment"]), bool(match["late"]),
                      stem + path.suffix, resubmission, submitted_at)


def newest_per_user(files: list[CanvasFile]) -> tuple[list[CanvasFile], list[tuple[CanvasFile, CanvasFile]]]:
    """The newest file of each user id (latest submission time, then highest attachment id, then resubmission),
    and (superseded, kept instead) for every other file."""
    by_user: dict[str, list[CanvasFile]] = {}
    for f in files:
        by_user.setdefault(f.user_id, []).append(f)
    kept, superseded = [], []
    for user in sorted(by_user):
        ordered = sorted(by_user[user], key=lambda f: (f.submitted_at or "", f.attachment_id, f.resubmission))
        kept.append(ordered[-1])
        superseded += [(old, ordered[-1]) for old in ordered[:-1]]
    return kept, superseded


def _entry_time(info: zipfile.ZipInfo, zone: dt.tzinfo) -> dt.datetime:
    """An entry's time in UTC: the extended-timestamp field (0x5455, UTC) when present, else its DOS time in `zone`."""
    extra = info.extra
    while len(extra) >= 4:
        kind, size = int.from_bytes(extra[:2], "little"), int.from_bytes(extra[2:4], "little")
        body = extra[4:4 + size]
        if kind == 0x5455 and len(body) >= 5 and body[0] & 1:
            return dt.datetime.fromtimestamp(int.from_bytes(body[1:5], "little", signed=True), dt.timezone.utc)
        extra = extra[4 + size:]
    return dt.datetime(*info.date_time, tzinfo=zone).astimezone(dt.timezone.utc)


def extract_zip(path: str | Path, target: str | Path, zone: dt.tzinfo = dt.timezone.utc) -> tuple[Path, dict[str, str]]:
    """Unpack the .ipynb entries of a downloaded zip into `target` (flat, by their base names: nothing outside it is
    ever written) and return the folder and each file's submission time (UTC, ISO) from its entry.

    Entries that are not notebooks, or larger than ZIP_MAX_BYTES, are left in the zip (the latter with a warning).
    When every entry carries the same time (the time of the download, not of each submission), no time is
    returned: lateness then comes from Canvas's LATE flag.
    """
    import sys

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    times: dict[str, str] = {}
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable zip file ({err}); pass the zip Canvas's \"Download Submissions\" "
                         "gave you, or its unpacked folder") from None
    with archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/")).name
            if info.is_dir() or not name.endswith(".ipynb") or name.startswith("."):
                continue
            if info.file_size > ZIP_MAX_BYTES:
                print(f"twdl grade: warning: {name} in {path} holds {info.file_size:,} bytes: not unpacked",
                      file=sys.stderr)
                continue
            with archive.open(info) as source:
                data = source.read(ZIP_MAX_BYTES + 1)
            atomic_write(target / name, data)
            times[name] = _entry_time(info, zone).isoformat()
    if len(times) > 1 and len(set(times.values())) == 1:
        print(f"twdl grade: warning: every entry of {path} carries the same time ({next(iter(times.values()))}): "
              "not a submission time; lateness comes from Canvas's LATE flag", file=sys.stderr)
        times = {}
    return target, times


def read_roster(path: str | Path) -> list[dict[str, str]]:
    """The students of a Canvas gradebook export (its "Points Possible" and test-student rows left out)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read the roster {path}: {err}") from None
    reader = csv.DictReader(io.StringIO(text))
    if not {"Student", "ID"} <= set(reader.fieldnames or []):
        raise ValueError(f"{path}: a Canvas gradebook export has the columns Student and ID (found "
                         f"{reader.fieldnames}); export it from Canvas's Gradebook (Export > Export Entire Gradebook)")
    students = []
    for row in reader:
        name = (row.get("Student") or "").strip()
        if not name or name.lower() in ("points possible", "student, test") or not (row.get("ID") or "").strip():
            continue
        students.append({k: (v or "").strip() for k, v in row.items() if k is not None})
    return students


def match_roster(rows: list[dict[str, Any]], roster: list[dict[str, str]]) -> tuple[dict[str, dict[str, str]],
                                                                                    list[dict[str, str]]]:
    """submission -> its roster row, matched by Canvas user id (`ID`) first, then by the student's name as an SIS
    User ID, SIS Login ID or Student; and the roster students no row matched."""
    by_id = {r["ID"]: r for r in roster}
    by_other: dict[str, dict[str, str]] = {}
    for key in ("SIS User ID", "SIS Login ID", "Student"):
        for r in roster:
            if r.get(key):
                by_other.setdefault(r[key].lower(), r)
    found = {}
    for row in rows:
        person = by_id.get(str(row.get("user_id") or "")) or by_other.get(str(row["student"]).lower())
        if person is not None:
            found[row["submission"]] = person
    used = {id(p) for p in found.values()}
    return found, [r for r in roster if id(r) not in used]


def canvas_csv(rows: list[dict[str, Any]], assignment: str, max_points: float,
               roster: dict[str, dict[str, str]] | None = None) -> str:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then `assignment` (each row's
    total after any late penalty, `final`), with a Points Possible row.

    A row matched to the roster (`roster`: submission -> roster row) copies its columns; otherwise a Canvas user id
    fills ID (Canvas matches by it) and the student's name fills Student and SIS Login ID. One row per student:
    `rows` hold one submission per Canvas user already (the newest); for other layouts a student with several files
    gets the highest of their totals.
    """
    roster = roster or {}
    chosen: dict[str, tuple[list[str], float]] = {}
    for row in rows:
        person = roster.get(row["submission"])
        fixed = ([person.get(k, "") for k in CANVAS_FIXED] if person else
                 [str(row["student"]), str(row.get("user_id") or ""), "", str(row["student"]), ""])
        key = fixed[1] or fixed[0]
        value = float(row.get("final", row.get("total")) or 0.0)
        if key not in chosen or value > chosen[key][1]:
            chosen[key] = (fixed, value)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CANVAS_FIXED + [assignment])
    writer.writerow(["Points Possible", "", "", "", "", f"{max_points:g}"])
    for fixed, value in sorted(chosen.values(), key=lambda item: (item[0][0].lower(), item[0][1])):
        writer.writerow(fixed + [f"{value:g}"])
    return buffer.getvalue()
