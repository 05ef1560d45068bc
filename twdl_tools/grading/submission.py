"""One submission's straight walk: execute it (sandboxed), collect its exported claims, score them (trusted), row.

The same function runs in the local pool and on Dask workers; it never raises (a bug becomes an error row).
"""
from __future__ import annotations

import json
import traceback
from typing import Any

from twdl_helpers.files import atomic_write

from .checkfile import load_check_file
from .copies import copy_marks
from .execution import Prepared, execute, prepare
from .export import collect_claims, why_not_exported
from .plan import GradeTask
from .rows import make_row
from .scorer import score_claims
from .scoring import score_questions, written_answers

__all__ = ["grade_submission"]


def grade_submission(task: GradeTask) -> dict[str, Any]:
    """Grade one submission and store its row (beside the executed notebook) unless the grader itself failed."""
    try:
        row = _walk(task)
    except Exception as err:
        row = make_row(task, "error", f"grader failure: {type(err).__name__}: {err}",
                       detail=traceback.format_exc(limit=5))
    if "detail" not in row:  # a grader failure is not a grade: the next run tries again
        try:
            atomic_write(task.grade_file, json.dumps({"key": task.key(), "row": row}, indent=1, default=str))
        except OSError:
            pass
    return row


def _walk(task: GradeTask) -> dict[str, Any]:
    check_file = load_check_file(task.checks) if task.checks else None
    prepared = prepare(task)  # plan -> execute: a work directory, the notebook, its parameters
    if not isinstance(prepared, Prepared):
        questions = None if check_file is None else score_questions(check_file, results=None, problem=prepared)
        return make_row(task, "invalid", prepared, questions=questions)
    run = execute(task, prepared, check_file.exports if check_file is not None else None)
    result = run.result
    if check_file is None:
        return make_row(task, result.status, result.error, cell=result.cell_index, runtime=result.runtime_s,
                        records=result.records, sandboxed=result.sandboxed)
    problem = collect_claims(task.workdir, run.folder, task.claims)  # export: the claims out of the work directory
    answer = ({"results": None, "problem": why_not_exported(problem, result.status, result.error, result.appended)}
              if problem else score_claims(task, check_file, prepared.parameters))  # score, in the trusted process
    questions = score_questions(check_file, results=answer.get("results"), problem=answer.get("problem", ""),
                                executed=run.notebook, submitted=prepared.notebook)
    return make_row(task, result.status, result.error, cell=result.cell_index, runtime=result.runtime_s,
                    records=result.records, questions=questions, checks_s=round(float(answer.get("seconds") or 0), 3),
                    export_s=round(sum(result.appended_seconds), 3), sandboxed=result.sandboxed,
                    copies=copy_marks(answer.get("fingerprints") or {}, written_answers(prepared.notebook)),
                    scorer={k: answer.get(k) for k in ("find_class_calls", "problem", "startup_s", "import_s")})
