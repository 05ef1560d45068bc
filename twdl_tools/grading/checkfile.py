"""Questions declared in a notebook source, and the grader-only check file `twdl sync` writes for each module.

In `notebooks/0k_name.py` a question is declared on the cell that answers it: a code cell
`# %% tags=["homework"] question="q1" points=4 title="..."` is auto-graded by checks; a markdown cell
`# %% [markdown] question="q2" points=2` is a written answer graded by a TA (a `### BEGIN SOLUTION` ..
`### END SOLUTION` block in it holds the rubric and any model answer: TAs see it, students' notebooks leave it out and
show the rubric in the question's heading, twdl_tools/grading/headings.py). Checks live in cells tagged
`checks` (public: they stay in the student notebook, where `twdl.check("q1")` runs them) and `hidden-checks`
(removed from both generated notebooks). `sync` writes `autograder/0k_name.py`: the questions as data, the
export manifest (`EXPORTS`: the notebook objects the checks take, which each submission's kernel exports as
claims), then every public and hidden check cell: the text the grader's trusted scorer runs on the rebuilt claims.
A hidden cell may declare `WITHHELD = {"smoke": {"mnist": 2000}}`: data that profile's notebook never loads,
kept from the sandbox for the checks (twdl_tools/grading/dataview.py).
"""
from __future__ import annotations

import ast
import hashlib
import pprint
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHECKS_DIR", "PUBLIC_TAG", "HIDDEN_TAG", "Question", "CheckFile", "declared_questions",
           "check_file_text", "load_check_file", "check_file_path", "is_hidden_cell", "checked_questions",
           "split_solution", "exported_names"]

CHECKS_DIR = "autograder"  # grader-only: outside both packages and notebooks/, never given to students
PUBLIC_TAG, HIDDEN_TAG = "checks", "hidden-checks"
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DECORATOR = "question_check"
LOADER = "grader_loads"
PROVIDED = ("records", "parameters", "withheld")  # given by the checker (twdl_helpers.questions.PROVIDED)
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass(frozen=True)
class Question:
    """A graded question: its id, points, "auto" (checks) or "manual" (a TA grades the written answer)."""

    id: str
    points: float
    kind: str = "auto"
    title: str = ""
    template: str = ""  # manual questions: the answer cell as students receive it (an unchanged one is blank)
    rubric: str = ""  # manual questions: the model answer or rubric (the cell's solution block), for TAs

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (the check file's QUESTIONS entries)."""
        return asdict(self)

    @property
    def label(self) -> str:
        """"q1 (4 points): title"."""
        points = f"{self.points:g} point{'s' if self.points != 1 else ''}"
        return f"{self.id} ({points})" + (f": {self.title}" if self.title else "")


@dataclass
class CheckFile:
    """A module's grader-only check file: its questions, what the kernel exports, and the source the scorer runs."""

    module: str
    questions: list[Question]
    source: str
    path: Path | None = None
    checks: dict[str, list[str]] = field(default_factory=dict)  # question -> check function names
    exports: list[str] = field(default_factory=list)  # notebook objects the kernel exports (the checks' arguments)
    withheld: dict[str, dict[str, int]] = field(default_factory=dict)  # profile -> dataset -> count kept out
    release_hidden: bool = False  # RELEASE_HIDDEN = True in a hidden cell: feedback shows hidden checks at once

    def digest(self) -> str:
        """SHA-256 of the file's text (part of the key that decides whether a submission is graded again)."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    @property
    def max_points(self) -> float:
        """The sum of every question's points."""
        return float(sum(q.points for q in self.questions))

    def question(self, question_id: str) -> Question:
        """The question with this id (KeyError with the known ids otherwise)."""
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(f"no question {question_id!r} in {self.module}; known: {[q.id for q in self.questions]}")


def split_solution(text: str, where: str = "") -> tuple[str, str]:
    """(the text without its `### BEGIN SOLUTION` .. `### END SOLUTION` blocks, the blocks' contents)."""
    kept, solution, inside = [], [], False
    for line in text.split("\n"):
        if line.strip() == BEGIN:
            if inside:
                raise ValueError(f"{where}: '{BEGIN}' inside another solution block")
            inside = True
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"{where}: '{END}' without a '{BEGIN}' above it")
            inside = False
        else:
            (solution if inside else kept).append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(kept).rstrip(), "\n".join(solution).strip()


def is_hidden_cell(cell: Any) -> bool:
    """True for a cell of hidden checks (removed from the solution and student notebooks)."""
    return HIDDEN_TAG in cell.get("metadata", {}).get("tags", [])


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def checked_questions(source: str, where: str = "") -> dict[str, list[str]]:
    """question id -> names of the functions decorated with `question_check("<id>", ...)` in `source`.

    Refuses a check that could pass on nothing (`twdl_helpers.questions.vacuity_problems`)."""
    from twdl_helpers.questions import vacuity_problems

    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{where}: check cell is not valid Python ({err.msg}, line {err.lineno})") from err
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            if _decorator_name(deco) != DECORATOR:
                continue
            if not deco.args or not isinstance(deco.args[0], ast.Constant) or not isinstance(deco.args[0].value, str):
                raise ValueError(f"{where}: {node.name}: write the question id as a string literal, "
                                 f"e.g. @twdl.question_check(\"q1\")")
            problems = vacuity_problems(node)
            if problems:
                raise ValueError(f"{where}: check {node.name} could pass on nothing: " + "; ".join(problems))
            found.setdefault(deco.args[0].value, []).append(node.name)
    return found


def _decorator_name(deco: ast.expr) -> str:
    if not isinstance(deco, ast.Call):
        return ""
    return deco.func.attr if isinstance(deco.func, ast.Attribute) else getattr(deco.func, "id", "")


def exported_names(sources: list[str]) -> list[str]:
    """The notebook objects the checks in `sources` take: their arguments, minus what the checker provides and what
    the grader loads itself (`@twdl.grader_loads("name")`), sorted."""
    wanted, loaded = set(), set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for deco in node.decorator_list:
                name = _decorator_name(deco)
                if name == DECORATOR:
                    wanted.update(a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs])
                elif name == LOADER and deco.args and isinstance(deco.args[0], ast.Constant):
                    loaded.add(str(deco.args[0].value))
    return sorted(wanted - loaded - set(PROVIDED))


def declared_questions(nb: Any, where: str = "") -> list[Question]:
    """The questions declared on the cells of a notebook read from its .py source, in order; validated."""
    questions: list[Question] = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {})
        if "question" not in meta:
            continue
        at = f"{where} cell {index}"
        qid, points = meta["question"], meta.get("points")
        if not isinstance(qid, str) or not ID_PATTERN.match(qid):
            raise ValueError(f"{at}: question id {qid!r} must be lower-case letters, digits or _, e.g. question=\"q1\"")
        if any(q.id == qid for q in questions):
            raise ValueError(f"{at}: question {qid!r} is declared twice; give each question its own id")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
            raise ValueError(f"{at}: question {qid!r} needs positive points, e.g. points=2 (found {points!r})")
        if PUBLIC_TAG in _tags(cell) or HIDDEN_TAG in _tags(cell):
            raise ValueError(f"{at}: declare question {qid!r} on the cell that answers it, not on a check cell")
        kind = "manual" if cell.cell_type == "markdown" else "auto"
        title = str(meta.get("title", ""))
        template, rubric = split_solution(cell.source, at) if kind == "manual" else ("", "")
        questions.append(Question(qid, float(points), kind, title, template, rubric))
    return questions


def _check_cells(nb: Any, where: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    public, hidden = [], []
    for index, cell in enumerate(nb.cells):
        tags = _tags(cell)
        if PUBLIC_TAG in tags and HIDDEN_TAG in tags:
            raise ValueError(f"{where} cell {index}: a cell is either public checks or hidden checks, not both")
        if PUBLIC_TAG in tags or HIDDEN_TAG in tags:
            if cell.cell_type != "code":
                raise ValueError(f"{where} cell {index}: check cells must be code cells")
            if "### BEGIN SOLUTION" in cell.source:
                raise ValueError(f"{where} cell {index}: a check cell cannot hold a solution block")
            (hidden if HIDDEN_TAG in tags else public).append((index, cell.source))
    return public, hidden


def check_file_text(stem: str, nb: Any, where: str = "") -> str | None:
    """The grader-only check file for notebook `stem` (None when it declares no question); raises ValueError."""
    where = where or f"notebooks/{stem}.py"
    questions = declared_questions(nb, where)
    public, hidden = _check_cells(nb, where)
    if not questions:
        if public or hidden:
            raise ValueError(f"{where}: it has check cells but declares no question (question=\"q1\" points=...)")
        return None
    checked: dict[str, list[str]] = {}
    for index, source in public + hidden:
        for qid, names in checked_questions(source, f"{where} cell {index}").items():
            if qid not in {q.id for q in questions}:
                raise ValueError(f"{where} cell {index}: checks of undeclared question {qid!r}; "
                                 f"declared: {[q.id for q in questions]}")
            checked.setdefault(qid, []).extend(names)
    for q in questions:
        if q.kind == "auto" and not checked.get(q.id):
            raise ValueError(f"{where}: question {q.id!r} is auto-graded but has no check; add a cell tagged "
                             f"\"{PUBLIC_TAG}\" or \"{HIDDEN_TAG}\" with @twdl.question_check(\"{q.id}\")")
        if q.kind == "manual" and checked.get(q.id):
            raise ValueError(f"{where}: question {q.id!r} is a written answer (a markdown cell): it has no checks")
    lines = [
        f'"""Grader-only checks of notebooks/{stem}.py, written by `twdl sync`: do not edit, never give to students.',
        "",
        f"`twdl grade --module {stem}` runs this whole file in its trusted scorer, never in a submission's kernel: the",
        "checks (public and hidden) take the objects it rebuilt from the submission's exported claims (EXPORTS).",
        '"""',
        f"MODULE = {stem!r}",
        "QUESTIONS = " + pprint.pformat([q.to_dict() for q in questions], width=110, sort_dicts=False),
        "# The notebook objects the checks take: each submission's kernel exports these (and its records) as claims.",
        "EXPORTS = " + pprint.pformat(exported_names([source for _, source in public + hidden]), width=110),
    ]
    for index, source in public:
        lines += ["", "", f"# %% public checks (notebooks/{stem}.py cell {index}; also in the student notebook)",
                  source.rstrip()]
    if hidden:
        lines += ["", "", "twdl.questions.hidden_section()  # the checks below are hidden: only the grader runs them"]
    for index, source in hidden:
        lines += ["", "", f"# %% hidden checks (notebooks/{stem}.py cell {index})", source.rstrip()]
    return "\n".join(lines) + "\n"


def check_file_path(root: str | Path, stem: str) -> Path:
    """Where `sync` writes the check file of notebook `stem`."""
    return Path(root) / CHECKS_DIR / f"{stem}.py"


def load_check_file(path: str | Path) -> CheckFile:
    """Read a check file: its QUESTIONS, EXPORTS, WITHHELD and RELEASE_HIDDEN (as data, without running anything)
    and its source."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotFoundError(f"no check file {path}: run `twdl sync` (it writes one per notebook that declares "
                                "questions)") from err
    module, questions, exports, withheld, release = path.stem, None, None, {}, False
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "QUESTIONS":
                questions = [Question(**item) for item in ast.literal_eval(node.value)]
            elif name == "MODULE":
                module = ast.literal_eval(node.value)
            elif name == "EXPORTS":
                exports = list(ast.literal_eval(node.value))
            elif name == "WITHHELD":
                withheld = ast.literal_eval(node.value)
            elif name == "RELEASE_HIDDEN":
                release = ast.literal_eval(node.value)
    if questions is None:
        raise ValueError(f"{path} has no QUESTIONS list: it is not a check file written by `twdl sync`")
    needed = exported_names([source])
    if exports is None or sorted(exports) != needed:
        raise ValueError(f"{path}: its EXPORTS {exports} are not the objects its checks take ({needed}): run `twdl sync`")
    if not isinstance(withheld, dict):
        raise ValueError(f"{path}: WITHHELD must be a dict profile -> dataset -> count")
    if not isinstance(release, bool):
        raise ValueError(f"{path}: RELEASE_HIDDEN must be True or False")
    return CheckFile(module, questions, source, path, checked_questions(source, str(path)), exports, withheld, release)
