"""Grading (`twdl grade`): plan, execute in the sandbox, export claims, score them in a trusted process, publish."""
from .batch import grade_all
from .plan import GradeTask, plan_tasks
from .publish import grades_table, write_outputs
from .report import write_report
from .submission import grade_submission

__all__ = ["GradeTask", "plan_tasks", "grade_submission", "grade_all", "grades_table", "write_outputs",
           "write_report"]
