"""Export: the cell that makes a submission's kernel write its claims, and how the grader takes them out safely.

The cell runs after the student's cells, in the same sandboxed kernel (so whatever it writes is only a claim): it
calls `twdl_helpers.claims.export_claims` on the names of the check file's EXPORTS and the kernel's records, into
a fresh folder of the work directory. The grader then copies that folder's plain files, without following a
link, each within its size limit, to a folder of its own, where the scorer reads them (`twdl_helpers.claims`).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from pathlib import Path

from twdl_helpers.claims import ClaimError, ClaimLimits, read_regular_file

__all__ = ["EXPORT_SECONDS", "new_export_folder", "export_cell", "collect_claims", "why_not_exported"]

EXPORT_SECONDS = 60.0  # added to a submission's time limit for the export cell


def new_export_folder() -> str:
    """A fresh, unguessable folder name in the work directory for one run's export."""
    return f".twdl-claims-{secrets.token_hex(12)}"


def export_cell(names: list[str], folder: str) -> str:
    """The source of the export cell (it holds nothing secret: the checks never enter the kernel)."""
    arguments = json.dumps({"names": names, "folder": folder})
    return ("# twdl grade: export what the module's checks need (not part of the submission)\n"
            "import json as _twdl_json\n"
            "from twdl_helpers.claims import export_claims as _twdl_export_claims\n"
            f"_twdl_arguments = _twdl_json.loads({arguments!r})\n"
            "_twdl_export_claims(globals(), _twdl_arguments['names'], _twdl_arguments['folder'])\n")


def collect_claims(workdir: Path, folder: str, destination: Path) -> str:
    """Copy the exported files to `destination` (replaced); return "" or why the export cannot be used.

    Only regular files directly inside the export folder are taken, opened without following links; a link, FIFO,
    subfolder or oversized file makes the whole export refused (the kernel's own exporter never writes one).
    """
    limits = ClaimLimits()  # the same limits the scorer reads the copy with
    shutil.rmtree(destination, ignore_errors=True)
    source = workdir / folder
    try:
        info = os.lstat(source)
    except OSError:
        return "the notebook exported nothing (the export did not run, or its folder was removed)"
    if not stat.S_ISDIR(info.st_mode):
        return "the export folder was replaced by something that is not a folder"
    try:
        entries = sorted(os.listdir(source))
    except OSError as err:
        return f"the export folder cannot be listed ({err.strerror})"
    if len(entries) > limits.max_files:
        return f"the export holds {len(entries)} files, more than {limits.max_files}"
    destination.mkdir(parents=True)
    total = 0
    try:
        for name in entries:
            data = read_regular_file(source, name, limits.max_file_bytes)
            total += len(data)
            if total > limits.max_total_bytes:
                raise ClaimError(f"the export holds more than {limits.max_total_bytes:,} bytes")
            (destination / name).write_bytes(data)
    except ClaimError as err:
        shutil.rmtree(destination, ignore_errors=True)
        return f"the export was refused: {err}"
    return ""


def why_not_exported(problem: str, status: str, error: str, appended: list[list[dict]]) -> str:
    """The reason shown for every auto-graded question when the claims could not be collected (`problem`)."""
    failed = [o for outputs in appended for o in outputs if o.get("output_type") == "error"]
    if failed:
        return f"the export cell failed: {failed[0].get('ename')}: {failed[0].get('evalue')}"
    if status == "timeout":
        return "the checks did not run: the notebook ran out of time"
    if status == "error" and not appended:
        return f"the checks did not run: {error or 'the kernel stopped first'}"
    return problem
