"""A class at once: every task through the local pool or a Dask cluster, skipping those graded before unchanged."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from .plan import GradeTask
from .rows import STATUSES, make_row
from .scorer import close_scorers
from .submission import grade_submission

__all__ = ["previous_row", "grade_all"]


def previous_row(task: GradeTask) -> dict[str, Any] | None:
    """The stored row of an earlier grading with the same notebook bytes and settings, else None."""
    try:
        stored = json.loads(task.grade_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    row = stored.get("row") if isinstance(stored, dict) else None
    if stored.get("key") != task.key() or not isinstance(row, dict) or row.get("status") not in STATUSES:
        return None
    if row["status"] != "invalid" and not task.executed.exists():
        return None
    return row


def _dask_map(tasks: list[GradeTask], address: str) -> Iterator[dict[str, Any]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    client = Client(address)
    try:
        futures = client.map(grade_submission, tasks, pure=False)
        owner = {future.key: task for future, task in zip(futures, tasks)}
        for future in dask_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # e.g. KilledWorker: the task itself never raises
                yield make_row(owner[future.key], "error", f"grader failure on Dask: {type(err).__name__}: {err}")
    finally:
        client.close()


def _pool_map(tasks: list[GradeTask], jobs: int) -> Iterator[dict[str, Any]]:
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each thread supervises one papermill process
            for future in as_completed([pool.submit(grade_submission, t) for t in tasks]):
                yield future.result()
    finally:
        close_scorers()  # one scorer per pool thread, stopped with the pool


def grade_all(tasks: list[GradeTask], *, jobs: int = 1, force: bool = False, scheduler: str | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Grade every task (skipping those already graded with the same key unless force); return rows sorted by file."""
    from tqdm.auto import tqdm

    rows, todo = [], []
    for task in tasks:
        old = None if force else previous_row(task)
        if old is not None:
            rows.append(old)
        else:
            todo.append(task)
    if progress and len(rows):
        print(f"{len(rows)} submission(s) already graded with the same notebook and settings: skipped "
              "(use --force to grade again)", file=sys.stderr)
    results = _dask_map(todo, scheduler) if scheduler else _pool_map(todo, jobs)
    for row in tqdm(results, total=len(todo), desc="grading", file=sys.stderr, disable=not progress or not todo):
        rows.append(row)
        if progress:
            tqdm.write(f"{row['status']:8s} {row['file']} ({row['runtime_s']:.1f} s)", file=sys.stderr)
    return sorted(rows, key=lambda r: (r["file"], r["submission"]))
