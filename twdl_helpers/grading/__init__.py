"""Batch execution (`twdl run`) and grading (`twdl grade`) of notebooks with papermill; imported on demand."""
from .execution import *  # noqa: F401,F403
from .grader import GradeTask, grade_all, grade_submission, grades_table, plan_tasks  # noqa: F401
from .notebook_parameters import *  # noqa: F401,F403
from .report import write_report  # noqa: F401
from .runner import resolve_notebooks, run_notebooks  # noqa: F401

__all__ = [
    "ResourceLimits", "ExecutionResult", "run_notebook", "check_parameters", "parse_parameter_values",
    "GradeTask", "plan_tasks", "grade_submission", "grade_all", "grades_table", "write_report",
    "resolve_notebooks", "run_notebooks",
]
