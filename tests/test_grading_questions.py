"""Questions, checks and scores: sync writes grader-only checks; `twdl grade` scores fixture submissions exactly."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from twdl_tools.cli import main as twdl
from twdl_tools.grading.checkfile import Question, CheckFile, load_check_file, split_solution
from twdl_tools.grading.canvas import canvas_csv
from twdl_tools.grading.manual import read_manual_csv
from twdl_tools.grading.scoring import apply_manual, answer_digest, score_questions
from twdl_tools.notebooks import sync
from twdl_tools.repo import module_notebooks, notebooks_dir

from conftest import write_course

ROOT = Path(__file__).resolve().parents[1]

TOY = '''# %% [markdown]
# # Module 9 — a toy module with questions
# [![Open In Colab](x)](y)

# %% tags=["colab-setup"]

# %%
import twdl_helpers as twdl
twdl.watch_parameters()

# %% tags=["parameters"]
profile = "smoke"
seed = 0

# %%
params = twdl.validate_parameters(globals())
import torch
data = torch.arange(10.0) + seed

# %% tags=["homework"] question="q1" points=2 title="the mean of data"
# Hint: mean = the mean of data (a float); twdl.record("m9.homework.mean", mean)
### BEGIN SOLUTION
mean = data.mean().item()
twdl.record("m9.homework.mean", mean)
### END SOLUTION

# %% tags=["checks"]
@twdl.question_check("q1", required=True, hint="use data.mean().item()")
def mean_is_the_mean_of_data(mean, data):
    """`mean` is the mean of `data`"""
    assert abs(mean - float(data.mean())) < 1e-6, f"mean is {mean}, the mean of data is {float(data.mean())}"


@twdl.question_check("q1")
def mean_is_recorded(records, mean):
    """the mean is recorded as m9.homework.mean"""
    assert records.get("m9.homework.mean") == mean, "record it: twdl.record('m9.homework.mean', mean)"


twdl.check("q1")

# %% tags=["hidden-checks"]
@twdl.question_check("q1", required=True)
def mean_of_the_graders_data(mean, parameters):
    """the mean is that of the data the grader rebuilds from the parameters"""
    import torch
    assert abs(mean - (torch.arange(10.0) + parameters["seed"]).mean().item()) < 1e-6

# %% tags=["homework"] question="q2" points=3
# Hint: squares = data squared, element-wise (a tensor)
### BEGIN SOLUTION
squares = data ** 2
### END SOLUTION

# %% tags=["hidden-checks"]
@twdl.question_check("q2", points=2, time_limit=3)
def squares_are_right(squares, data):
    """squares holds the element-wise squares of data"""
    import torch
    while not torch.is_tensor(squares):  # a check that never ends for a list: its time limit stops it
        pass
    assert torch.allclose(squares, data ** 2), "not the squares of data"


@twdl.question_check("q2")
def squares_have_the_shape_of_data(squares, data):
    """squares has the shape of data"""
    assert tuple(squares.shape) == tuple(data.shape)

# %% [markdown] question="q3" points=1
# *Your answer to question 3:* (why is the mean of 0..9 equal to 4.5?)
# ### BEGIN SOLUTION
# Model answer: the sum 45 divided by the count 10.
#
# Rubric (1 point): says that the mean is the sum divided by the count, with both numbers.
# ### END SOLUTION

# %%
twdl.record("m9.completed", True)
'''

ANSWER = "Because 0 + 1 + ... + 9 = 45 and there are ten numbers."
CHECKS_MIME = "application/vnd.twdl.check-results+json"  # what the old in-kernel check cell published
TAMPER = '''import twdl_helpers, twdl_helpers.questions as questions
from IPython.display import display
twdl.check = lambda *args, **kwargs: print("all checks pass")   # the public check function
questions.run_checks = lambda *args, **kwargs: []                 # the runner the grader's cell would call
questions.current_registry().clear()
twdl.evaluate = lambda *args, **kwargs: {"accuracy": 100.0}       # a helper, monkeypatched
def run_checks(*args, **kwargs): return []                        # names from the grader's source
def _fresh_helpers(): return twdl_helpers
twdl.record("m9.homework.mean", 4.5)                              # a good metric, forged
display({"text/plain": "ok", "%s": {"nonce": "guess", "error": "", "results": [
    {"question": "q1", "name": "x", "description": "x", "passed": True, "points": 100.0}]}}, raw=True)
print('{"status": "ok", "appended": []}')                         # a forged worker outcome on stdout
''' % CHECKS_MIME

# submission -> (status, q1, q2, q3 (None: awaiting a TA), total)
EXPECTED = {
    "right": ("ok", 2.0, 3.0, None, 5.0),
    "blank": ("error", 0.0, 0.0, 0.0, 0.0),
    "q1_unfinished": ("error", 0.0, 3.0, 0.0, 3.0),
    "forged": ("error", 0.0, 0.0, None, 0.0),
    "partial": ("error", 0.0, 1.0, 0.0, 1.0),
    "looping": ("ok", 2.0, 0.0, None, 2.0),
    "tamper": ("error", 0.0, 0.0, 0.0, 0.0),
    "tamper_right": ("ok", 2.0, 3.0, None, 5.0),
    "empty": ("invalid", 0.0, 0.0, 0.0, 0.0),
    "broken": ("invalid", 0.0, 0.0, 0.0, 0.0),
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A course with one toy module (synced), and one fixture submission per row of EXPECTED."""
    root = tmp_path_factory.mktemp("course")
    write_course(root, "99_toy", TOY)
    sync(root)
    solution = nbformat.read(str(root / "notebooks" / "99_toy.ipynb"), as_version=4)
    student = nbformat.read(str(root / "notebooks" / "student" / "99_toy.ipynb"), as_version=4)
    subs = root / "subs"
    subs.mkdir()

    def cell(nb, question):
        return next(c for c in nb.cells if c.metadata.get("question") == question)

    def save(name, nb, answer=False, **sources):
        nb = copy.deepcopy(nb)
        if answer:
            cell(nb, "q3").source = cell(nb, "q3").source + "\n\n" + ANSWER
        for question, source in sources.items():
            cell(nb, question).source = source
        nbformat.write(nb, str(subs / f"{name}.ipynb"))
        return nb

    save("right", solution, answer=True)
    save("blank", student)
    save("q1_unfinished", student, q2=cell(solution, "q2").source)
    save("forged", student, answer=True, q1='twdl.record("m9.homework.mean", 4.5)')
    save("partial", student, q2="squares = data * 3")
    save("looping", solution, answer=True, q2="squares = [x ** 2 for x in data.tolist()]")
    tampered = save("tamper", student)
    tampered.cells.append(nbformat.v4.new_code_cell(TAMPER))
    nbformat.write(tampered, str(subs / "tamper.ipynb"))
    tampered = save("tamper_right", solution, answer=True)
    tampered.cells.append(nbformat.v4.new_code_cell(TAMPER.replace('twdl.record("m9.homework.mean", 4.5)', "")))
    nbformat.write(tampered, str(subs / "tamper_right.ipynb"))
    nbformat.write(nbformat.v4.new_notebook(), str(subs / "empty.ipynb"))
    (subs / "broken.ipynb").write_text('{"cells": [')
    return root


def test_sync_writes_grader_only_checks_and_keeps_hidden_ones_out_of_both_notebooks(toy):
    checks = load_check_file(toy / "autograder" / "99_toy.py")
    assert [(q.id, q.points, q.kind) for q in checks.questions] == [("q1", 2, "auto"), ("q2", 3, "auto"),
                                                                   ("q3", 1, "manual")]
    assert checks.question("q3").rubric == ("Model answer: the sum 45 divided by the count 10.\n\n"
                                            "Rubric (1 point): says that the mean is the sum divided by the count, "
                                            "with both numbers.")
    assert checks.checks == {"q1": ["mean_is_the_mean_of_data", "mean_is_recorded", "mean_of_the_graders_data"],
                             "q2": ["squares_are_right", "squares_have_the_shape_of_data"]}
    for notebook in (toy / "notebooks" / "99_toy.ipynb", toy / "notebooks" / "student" / "99_toy.ipynb"):
        text = notebook.read_text()
        assert "mean_is_the_mean_of_data" in text  # public checks stay
        assert "mean_of_the_graders_data" not in text and "squares_are_right" not in text  # hidden ones do not
    student = (toy / "notebooks" / "student" / "99_toy.ipynb").read_text()
    assert "Model answer" not in student and '"question": "q3"' in student  # the rubric is in its heading
    assert sync(toy, check=True).clean


@pytest.mark.parametrize("source, message", [
    (TOY.replace('question="q2" points=3', 'question="q1" points=3'), "question 'q1' is declared twice"),
    (TOY.replace('question="q2" points=3', 'question="q2" points=0'), "needs positive points"),
    (TOY.replace('question_check("q2", points=2', 'question_check("q7", points=2'), "undeclared question 'q7'"),
    (TOY.replace('@twdl.question_check("q2")', '@twdl.question_check("q1")').replace(
        'question_check("q2", points=2', 'question_check("q1", points=2'), "'q2' is auto-graded but has no check"),
    (TOY.replace('question="q1" points=2 title', 'question="Q 1" points=2 title'), "question id 'Q 1'"),
    (TOY.replace('    """squares has the shape of data"""\n', ""), "squares_have_the_shape_of_data has no docstring"),
    (TOY.replace("# Rubric (1 point): says", "# Marking: says"), "written answer 'q3' has no rubric"),
    (TOY.replace("Rubric (1 point)", "Rubric (2 points)"), "rubric of 'q3' says 2 points"),
    (TOY.replace('    assert tuple(squares.shape) == tuple(data.shape)',
                 '    assert all(a == b for a, b in zip(squares.shape, data.shape))'),
     "squares_have_the_shape_of_data could pass on nothing: line .*: it loops over `zip"),
])
def test_sync_rejects_bad_question_declarations(tmp_path, source, message):
    write_course(tmp_path, "99_toy", source)
    with pytest.raises(ValueError, match=message):
        sync(tmp_path)


def test_split_solution_keeps_the_prompt_and_returns_the_rubric():
    assert split_solution("prompt\n### BEGIN SOLUTION\nrubric\n### END SOLUTION\n") == ("prompt", "rubric")
    with pytest.raises(ValueError, match="never closed"):
        split_solution("### BEGIN SOLUTION\nx")


def _heading_above(nb, question: str) -> str:
    """The generated heading cell directly above the cell that answers `question` (its Markdown)."""
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("question") == question)
    above = nb.cells[index - 1]
    assert "question-heading" in above.metadata.get("tags", []), f"no heading above question {question}"
    return above.source


def test_each_question_gets_a_heading_with_its_points_and_every_check_in_words(toy):
    for path in (toy / "notebooks" / "99_toy.ipynb", toy / "notebooks" / "student" / "99_toy.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        q1, q2, q3 = (_heading_above(nb, q) for q in ("q1", "q2", "q3"))
        assert sum("question-heading" in c.metadata.get("tags", []) for c in nb.cells) == 3
        assert q1.startswith("### Question 1 (2 points): the mean of data\n")
        public, hidden = q1.index("**Public checks**"), q1.index("**Hidden checks**")
        assert 0 < public < q1.index("- (0.67 points, required) `mean` is the mean of `data`.") < hidden
        assert public < q1.index("- (0.67 points) The mean is recorded as `m9.homework.mean`.") < hidden
        assert hidden < q1.index("- (0.67 points, required) The mean is that of the data the grader rebuilds from "
                                 "the parameters.")
        assert '`twdl.check("q1")`' in q1
        assert q2.startswith("### Question 2 (3 points)\n") and "**Public checks**" not in q2  # hidden checks only
        assert "- (2 points) Squares holds the element-wise squares of data." in q2
        assert "- (1 point) Squares has the shape of data." in q2
        assert "squares_are_right" not in q2 and "allclose" not in q2  # described, never shown
        assert q3.startswith("### Question 3 (1 point)\n") and "scored by a TA" in q3
        assert "> Rubric (1 point): says that the mean is the sum divided by the count, with both numbers." in q3
        assert "Model answer" not in q3


def test_check_words_render_as_markdown_sentences_with_names_as_code():
    from twdl_tools.grading.headings import CheckWords, heading_markdown

    checks = [CheckWords("q4", "each row is recorded as m9.homework.<run>[_bn].accuracy, e.g. 2*x < $y$"),
              CheckWords("q4", "`model` is trained.", weight=3.0, required=True, hidden=True)]
    heading = heading_markdown(Question("q4", 2.0, title="a toy"), checks)
    assert heading.splitlines()[0] == "### Question 4 (2 points): a toy"
    assert ("- (0.5 points) Each row is recorded as `m9.homework.<run>[_bn].accuracy`, e.g. 2\\*x \\< \\$y\\$."
            in heading.splitlines())
    assert "- (1.5 points, required) `model` is trained." in heading.splitlines()
    assert "by 2 checks" in heading and heading.index("**Public checks**") < heading.index("**Hidden checks**")


def test_a_heading_pasted_back_into_the_source_is_regenerated_not_kept(tmp_path):
    pasted = '# %% [markdown] tags=["question-heading"]\n# ### Question 3 (7 points): stale\n\n'
    write_course(tmp_path, "99_toy", TOY.replace('# %% [markdown] question="q3"', pasted + '# %% [markdown] question="q3"'))
    sync(tmp_path)
    assert "question-heading" not in (tmp_path / "notebooks" / "99_toy.py").read_text()
    student = nbformat.read(str(tmp_path / "notebooks" / "student" / "99_toy.ipynb"), as_version=4)
    assert sum("question-heading" in c.metadata.get("tags", []) for c in student.cells) == 3
    assert "stale" not in _heading_above(student, "q3") and sync(tmp_path, check=True).clean


def _docstrings(source: str) -> dict[str, list[tuple[str, bool]]]:
    """question id -> (first docstring paragraph, hidden) of each check in a check file, in its order."""
    import ast

    hidden_from = source.index("twdl.questions.hidden_section()")
    lines = [0] + [len(line) + 1 for line in source.splitlines()]
    offsets = [sum(lines[: i + 1]) for i in range(len(lines))]
    found: dict[str, list[tuple[str, bool]]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if getattr(getattr(deco, "func", None), "attr", "") == "question_check":
                    doc = " ".join((ast.get_docstring(node) or "").split("\n\n")[0].split())
                    found.setdefault(deco.args[0].value, []).append((doc, offsets[node.lineno - 1] > hidden_from))
    return found


def _words(text: str) -> str:
    """Text as words only: no Markdown code marks, escapes or quote marks, one space, lower case."""
    return " ".join(re.sub(r"[`\\]", "", text).replace("\n> ", "\n").split()).lower()


def test_every_student_notebooks_question_headings_show_points_and_criteria_in_words():
    for check_path in module_notebooks(ROOT / "autograder", ".py"):
        check_file = load_check_file(check_path)
        checks = _docstrings(check_file.source)
        student = nbformat.read(str(notebooks_dir(ROOT) / "student" / f"{check_path.stem}.ipynb"), as_version=4)
        for question in check_file.questions:
            heading = _heading_above(student, question.id)
            where = f"{check_path.stem} {question.id}"
            assert re.search(rf"\({question.points:g} points?\)", heading.splitlines()[0]), f"{where}: no points"
            if question.kind == "auto":
                described = [line for line in heading.splitlines() if line.startswith("- (")]
                assert len(described) == len(checks[question.id]), f"{where}: not every check is described"
                public, _, hidden_part = heading.partition("**Hidden checks**")
                for doc, hidden in checks[question.id]:
                    section = hidden_part if hidden else public
                    assert doc and _words(doc) in _words(section), f"{where}: {doc!r} is not in its heading's " \
                                                                   f"{'hidden' if hidden else 'public'} checks"
            else:
                rubric = question.rubric[question.rubric.index("Rubric"):]
                assert _words(rubric) in _words(heading), f"{where}: its rubric is not in its heading"


def test_hidden_checks_are_described_without_their_thresholds():
    names = re.compile(r"`[^`]*`|\b\w+(?:\.[\w<>\[\]]+)+")  # code and record names (m2.homework...) may hold digits
    for check_path in module_notebooks(ROOT / "autograder", ".py"):
        for question, checks in _docstrings(check_path.read_text()).items():
            for doc, hidden in checks:
                if hidden:
                    assert not re.search(r"\d", names.sub("", doc)), \
                        f"{check_path.stem} {question}: the hidden check described as {doc!r} states a number"


def _checks() -> CheckFile:
    questions = [Question("q1", 4.0), Question("q2", 2.0, "manual", template="*Your answer:*")]
    return CheckFile("99_toy", questions, "")


def _result(name, passed, points=1.0, required=False):
    return {"question": "q1", "name": name, "description": name, "passed": passed, "message": "" if passed else "no",
            "hint": "", "points": points, "required": required, "hidden": False}


def test_partial_credit_required_checks_cell_errors_and_written_answers():
    checks = _checks()
    results = [_result("a", True, 3.0), _result("b", False, 1.0)]
    answered = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("*Your answer:* yes", metadata={"question": "q2"})])
    q1, q2 = score_questions(checks, results=results, submitted=answered)
    assert q1["points"] == 3.0 and q2["points"] is None and q2["state"] == "pending"
    q1, _ = score_questions(checks, results=results + [_result("c", False, required=True)])
    assert q1["points"] == 0 and q1["summary"].startswith("0: c")
    raised = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", metadata={"question": "q1"}, outputs=[
        nbformat.v4.new_output("error", ename="KeyError", evalue="'k'", traceback=[])])])
    q1, q2 = score_questions(checks, results=[_result("a", True)], executed=raised, submitted=raised)
    assert q1["points"] == 0 and q1["checks"][0]["message"] == "cell 0: KeyError: 'k'"
    assert q2["state"] == "blank" and q2["points"] == 0  # no answer cell at all
    unchanged = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("*Your answer:*", metadata={"question": "q2"})])
    assert score_questions(checks, results=[], submitted=unchanged)[1]["summary"] == "the answer cell was left unchanged"
    q1, _ = score_questions(checks, results=None, problem="the notebook ran out of time")
    assert q1["points"] == 0 and q1["summary"] == "the notebook ran out of time"


def test_ta_scores_apply_only_to_the_answer_they_were_given_for():
    checks = _checks()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("*Your answer:* yes", metadata={"question": "q2"})])
    entries = score_questions(checks, results=[], submitted=nb)
    given = {"q2": {"ann": {"points": 1.5, "comment": "good", "digest": answer_digest("*Your answer:* yes")}}}
    assert apply_manual(entries, "ann", given)[1]["points"] == 1.5
    stale = {"q2": {"ann": {"points": 1.5, "comment": "", "digest": answer_digest("an older answer")}}}
    merged = apply_manual(entries, "ann", stale)[1]
    assert merged["points"] is None and "changed since a TA scored it" in merged["summary"]


def test_manual_csv_is_validated(tmp_path):
    checks = _checks()
    path = tmp_path / "q2.csv"
    path.write_text("question,submission,state,points,digest\nq2,ann,pending,3,abc\n")
    with pytest.raises(ValueError, match="outside 0..2"):
        read_manual_csv(path, checks, {"ann"})
    path.write_text("question,submission,state,points,digest\nq2,zed,pending,1,abc\n")
    with pytest.raises(ValueError, match="no graded submission named 'zed'"):
        read_manual_csv(path, checks, {"ann"})
    path.write_text("question,submission,state,points,digest\nq1,ann,pending,1,abc\n")
    with pytest.raises(ValueError, match="auto-graded"):
        read_manual_csv(path, checks, {"ann"})
    path.write_text("question,submission,state,points,digest\nq2,ann,pending,,abc\nq2,bob,pending,2,d\n")
    assert read_manual_csv(path, checks, {"ann", "bob"}) == {"q2": {"bob": {"points": 2.0, "comment": "", "digest": "d"}}}


def test_manual_export_never_overwrites_scores_a_ta_has_not_merged(tmp_path, capsys):
    from twdl_tools.grading.manual import export_manual

    checks = _checks()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("*Your answer:* yes", metadata={"question": "q2"})])
    row = {"student": "ann", "submission": "ann", "questions": score_questions(checks, results=[], submitted=nb)}
    export_manual([row], checks, tmp_path)
    sheet = tmp_path / "manual" / "q2.csv"
    table = pd.read_csv(sheet, keep_default_na=False)
    assert list(table["state"]) == ["pending"] and table.loc[0, "answer"] == "*Your answer:* yes"
    export_manual([row], checks, tmp_path)  # nothing typed: rewritten quietly
    assert "not merged yet" not in capsys.readouterr().err
    table.loc[0, "points"] = "1.5"
    table.to_csv(sheet, index=False)
    export_manual([row], checks, tmp_path)  # a TA's typed score is kept until merged
    assert "holds scores not merged yet" in capsys.readouterr().err
    assert pd.read_csv(sheet).loc[0, "points"] == 1.5


def test_canvas_csv_has_the_gradebook_columns_and_one_row_per_student(tmp_path):
    from twdl_tools.grading.canvas import match_roster, read_roster

    table = [{"submission": s, "student": n, "final": t} for s, n, t in [("a1", "ann", 3.0), ("b", "bob", 4.5),
                                                                         ("a2", "ann", 5.0)]]
    rows = canvas_csv(table, "Module 9", 6.0).splitlines()
    assert rows[0] == "Student,ID,SIS User ID,SIS Login ID,Section,Module 9"
    assert rows[1] == "Points Possible,,,,,6" and rows[2:] == ["ann,,,ann,,5", "bob,,,bob,,4.5"]
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\nAnn Lee,101,s1,ann,A\n")
    matched, missing = match_roster(table, read_roster(roster))
    assert canvas_csv(table, "Module 9", 6.0, matched).splitlines()[2] == "Ann Lee,101,s1,ann,A,5" and not missing


def _without_runtimes(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns="runtime_s")


def test_grade_scores_every_fixture_submission_and_merges_ta_scores(toy, capsys):
    out = toy / "out"
    args = ["grade", str(toy / "subs"), "--module", str(toy / "notebooks" / "99_toy.py"), "--out", str(out),
            "--jobs", "2", "--timeout", "300"]
    assert twdl(args) == 0
    grades = pd.read_csv(out / "grades.csv").set_index("submission")
    assert list(grades.columns[:21]) == ["file", "student", "status", "failing_cell", "error", "runtime_s",
                                         "completed_modules", "q1", "q2", "q3", "total", "max_points",
                                         "manual_pending", "user_id", "canvas_late", "late", "days_late", "penalty", "final",
                                         "m9.completed", "m9.homework.mean"]
    for name, (status, q1, q2, q3, total) in EXPECTED.items():
        row = grades.loc[name]
        got = (row["status"], row["q1"], row["q2"], None if pd.isna(row["q3"]) else row["q3"], row["total"])
        assert got == (status, q1, q2, q3, total), f"{name}: {got}"
    assert (grades["max_points"] == 6).all() and grades.loc["right", "manual_pending"] == "q3"
    assert grades.loc["empty", "error"] == "the notebook is empty (it has no code to run)"

    looping = (out / "feedback" / "looping.html").read_text()  # hidden checks held back: a count and points only
    assert "squares holds the element-wise squares" not in looping and "time limit" not in looping
    assert "2 hidden checks, 3 of 3 points" in (out / "feedback" / "right.html").read_text()
    tamper = (out / "feedback" / "tamper.html").read_text()
    assert "the question&#x27;s cells ran without an error" in tamper and "NotImplementedError" in tamper
    report = (out / "report.html").read_text()
    assert "Per-question statistics" in report and "Histogram of total" in report
    executed = (out / "executed" / "right.ipynb").read_text()
    assert "mean_of_the_graders_data" not in executed and CHECKS_MIME not in executed  # no check cell kept
    csv_first = _without_runtimes(out / "grades.csv")

    capsys.readouterr()
    assert twdl(args + ["--force"]) == 0  # graded again from scratch: the same grades
    pd.testing.assert_frame_equal(_without_runtimes(out / "grades.csv"), csv_first)

    manual = pd.read_csv(out / "manual" / "q3.csv", keep_default_na=False).set_index("submission")
    assert manual.loc["right", "answer"].endswith(ANSWER) and manual.loc["blank", "state"] == "blank"
    assert "Model answer: the sum 45" in (out / "manual" / "q3.html").read_text()  # TAs see the model answer
    manual.loc[["right", "forged"], "points"] = ["1", "0.5"]
    manual.loc["right", "comment"] = "clear"
    manual.reset_index().to_csv(out / "filled.csv", index=False)
    assert twdl(["grade", "--merge-manual", str(out / "filled.csv"), "--out", str(out)]) == 0
    merged = pd.read_csv(out / "grades.csv").set_index("submission")
    assert merged.loc["right", "q3"] == 1 and merged.loc["right", "total"] == 6.0
    assert merged.loc["forged", "total"] == 0.5 and pd.isna(merged.loc["looping", "q3"])
    assert "clear" in (out / "feedback" / "right.html").read_text()
    assert "right,,,right,,6" in (out / "canvas.csv").read_text()
    assert json.loads((out / "manual" / "scores.json").read_text())["q3"]["right"]["points"] == 1.0
    assert twdl(["grade", "--release-hidden", "--out", str(out)]) == 0  # released: re-published, nothing executed
    looping = (out / "feedback" / "looping.html").read_text()
    assert "took longer than its time limit of 3 s" in looping and "squares holds the element-wise squares" in looping


def _hidden_check_names(check_file: Path) -> list[str]:
    """Names of the check functions after the hidden section of a check file."""
    import ast

    text = check_file.read_text()
    hidden = text[text.index("twdl.questions.hidden_section()"):]
    return [node.name for node in ast.parse(hidden).body if isinstance(node, ast.FunctionDef)]


def test_hidden_checks_live_only_in_the_grader_only_files():
    from setuptools import find_packages

    files = module_notebooks(ROOT / "autograder", ".py")
    assert [f.stem for f in files] == [p.stem for p in module_notebooks(notebooks_dir(ROOT), ".py")]
    shipped = [*notebooks_dir(ROOT).glob("*.ipynb"), *(notebooks_dir(ROOT) / "student").glob("*.ipynb"),
               *(p for p in (ROOT / "twdl_helpers").rglob("*") if p.is_file() and "__pycache__" not in p.parts)]
    texts = {p: p.read_text(errors="ignore") for p in shipped}
    for check_file in files:
        names = _hidden_check_names(check_file)
        assert names, f"{check_file.name} has no hidden checks"
        leaks = [(name, p.relative_to(ROOT).as_posix()) for name in names for p, t in texts.items() if name in t]
        assert not leaks, f"hidden checks of {check_file.name} appear in {leaks}"
    packages = find_packages(str(ROOT), include=["twdl_helpers*", "twdl_tools*"])
    assert not [p for p in packages if "autograder" in p]  # the check files are not package data


def test_dask_workers_score_with_their_own_scorers(toy, tmp_path):
    from distributed import LocalCluster

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("right", "forged"):
        (subs / f"{name}.ipynb").write_bytes((toy / "subs" / f"{name}.ipynb").read_bytes())
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        assert twdl(["grade", str(subs), "--module", str(toy / "notebooks" / "99_toy.py"), "--out", str(out),
                     "--scheduler", cluster.scheduler_address, "--timeout", "300"]) == 0
    grades = pd.read_csv(out / "grades.csv").set_index("submission")
    for name in ("right", "forged"):
        status, q1, q2, _, total = EXPECTED[name]
        assert (grades.loc[name, "status"], grades.loc[name, "q1"], grades.loc[name, "q2"]) == (status, q1, q2)
