"""Grading (`twdl grade`): execute a class's notebooks in their own processes and tabulate the results."""
from .grader import GradeTask, grade_all, grade_submission, grades_table, plan_tasks
from .report import write_report

__all__ = ["GradeTask", "plan_tasks", "grade_submission", "grade_all", "grades_table", "write_report"]
