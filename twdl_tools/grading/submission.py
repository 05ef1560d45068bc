"""One submission's straight walk: execute it (sandboxed), collect its exported claims, score them (trusted), row.

The same function runs in the local pool and on Dask workers; it never raises (a bug becomes an error row).
"""
from __future__ import annotations

import hashlib
import json
import traceback
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write

from ..execute import ExecutionResult
from .checkfile import CheckFile, load_check_file
from .copies import UNTOUCHED
from .execution import Prepared, execute, prepare
from .export import collect_claims
from .plan import GradeTask
from .rows import make_row
from .scorer import scorer_for_this_thread
from .scoring import score_questions, written_answers

__all__ = ["grade_submission", "SCORER_MARGIN"]

SCORER_MARGIN = 60.0  # seconds the scorer may take beyond the checks' budget (loading data, rebuilding models)


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
    prepared = prepare(task)
    if not isinstance(prepared, Prepared):
        questions = None if check_file is None else score_questions(check_file, results=None, problem=prepared)
        return make_row(task, "invalid", prepared, questions=questions)
    result, folder = execute(task, prepared, check_file.exports if check_file is not None else None)
    if check_file is None:
        return make_row(task, result.status, result.error, cell=result.cell_index, runtime=result.runtime_s,
                        records=result.records, sandboxed=result.sandboxed)
    answer = _score(task, check_file, prepared, result, folder)
    questions = score_questions(check_file, results=answer.get("results"), problem=answer.get("problem", ""),
                                executed=_executed(task.executed), submitted=prepared.notebook)
    copies = {"weights": sorted(v for k, v in (answer.get("fingerprints") or {}).items() if k.startswith("model-")),
              "answers": {q: hashlib.sha256(t.strip().encode()).hexdigest()[:16]
                          for q, t in written_answers(prepared.notebook).items()
                          if t.strip() and UNTOUCHED not in t}}
    return make_row(task, result.status, result.error, cell=result.cell_index, runtime=result.runtime_s,
                    records=result.records, questions=questions, checks_s=round(float(answer.get("seconds") or 0), 3),
                    sandboxed=result.sandboxed, copies=copies,
                    scorer={"find_class_calls": answer.get("find_class_calls", 0), "problem": answer.get("problem", "")})


def _score(task: GradeTask, check_file: CheckFile, prepared: Prepared, result: ExecutionResult,
           folder: str) -> dict[str, Any]:
    """The trusted scorer's answer for this submission's claims (or why there is none)."""
    problem = collect_claims(task.workdir, folder, task.claims)
    if problem:
        failed = [o for outputs in result.appended for o in outputs if o.get("output_type") == "error"]
        if failed:
            problem = f"the export cell failed: {failed[0].get('ename')}: {failed[0].get('evalue')}"
        elif result.status == "timeout":
            problem = "the checks did not run: the notebook ran out of time"
        elif result.status == "error" and not result.appended:
            problem = f"the checks did not run: {result.error or 'the kernel stopped first'}"
        return {"results": None, "problem": problem}
    job = {"export": str(task.claims), "checks": str(check_file.path), "checks_digest": check_file.digest(),
           "parameters": prepared.parameters, "budget": task.check_budget, "environment": task.view_environment(),
           "withheld": {"folder": task.view["withheld"]} if task.view else None,
           "untrusted": [str(task.workdir), str(task.claims), str(Path(task.source).parent)]}
    return scorer_for_this_thread().score(job, timeout=task.check_budget + SCORER_MARGIN)


def _executed(path: Path) -> Any:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:  # no readable executed notebook: no cell errors to attribute
        return None
