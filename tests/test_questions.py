"""twdl.check and question_check: public checks run on the notebook's objects, explain failures, never hang."""
import pytest

from twdl_helpers import questions
from twdl_helpers.questions import check, hidden_section, question_check, registered_checks, run_checks


def define(source: str) -> dict:
    """Run check definitions as a notebook cell would (exec: no pytest assertion rewriting); return its namespace."""
    import linecache

    linecache.cache["<cell>"] = (len(source), None, source.splitlines(True), "<cell>")  # as IPython does
    namespace = {"question_check": question_check}
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def empty_registry():
    """Each test registers its own checks."""
    questions.current_registry().clear()
    yield
    questions.current_registry().clear()


def test_checks_receive_notebook_objects_by_name_and_explain_failures():
    define('''
@question_check("q1", required=True, hint="compute it from data")
def total_is_the_sum(total, data):
    """`total` is the sum of `data`"""
    assert total == sum(data), f"total is {total}, the sum is {sum(data)}"

@question_check("q1", points=2)
def recorded(records, total):
    assert records.get("m9.total") == total
''')

    results = run_checks({"data": [1, 2, 3], "total": 5}, "q1", records={"m9.total": 5})
    assert [(r.name, r.passed) for r in results] == [("total_is_the_sum", False), ("recorded", True)]
    first, second = results
    assert first.message == "total is 5, the sum is 6" and first.required and first.hint == "compute it from data"
    assert first.description == "`total` is the sum of `data`" and second.points == 2.0
    assert second.description == "recorded"  # no docstring: the function's name, in words


def test_missing_objects_bare_asserts_and_errors_fail_with_a_readable_message():
    define('''
@question_check("q2")
def needs_table(table):
    """the table exists"""

@question_check("q2")
def bare(x):
    assert x > 1

@question_check("q2")
def broken(x):
    return x.nope
''')

    results = {r.name: r.message for r in run_checks({"x": 1}, "q2")}
    assert results["needs_table"] == "`table` is not defined: run the cells of question q2 first"
    assert results["bare"] == "assertion failed: assert x > 1"
    assert results["broken"] == "AttributeError: 'int' object has no attribute 'nope'"


def test_a_check_that_never_ends_fails_at_its_time_limit_and_the_next_one_still_runs():
    @question_check("q3", time_limit=0.5)
    def forever():
        while True:
            try:
                pass
            except Exception:  # a check cannot swallow its timeout
                pass

    @question_check("q3")
    def quick():
        pass

    forever_result, quick_result = run_checks({}, "q3")
    assert not forever_result.passed and forever_result.message == "took longer than its time limit of 0.5 s"
    assert quick_result.passed


def test_a_spent_budget_fails_the_remaining_checks_without_running_them():
    ran = []

    @question_check("q4", time_limit=5)
    def slow():
        import time
        time.sleep(0.3)

    @question_check("q4")
    def later():
        ran.append(True)

    results = run_checks({}, "q4", budget=0.2)
    assert results[0].message == "took longer than its time limit of 0.2 s"
    assert results[1].message == "not run: the time for all checks was used up" and not ran


def test_check_prints_public_results_with_hints_and_never_runs_hidden_ones(capsys):
    @question_check("q1", hint="divide by the count")
    def mean_is_right(mean):
        """`mean` is 2"""
        assert mean == 2, f"mean is {mean}"

    hidden_section()

    @question_check("q1")
    def secret(mean):
        raise RuntimeError("a hidden check must not run in twdl.check")

    assert [c.name for c in registered_checks("q1", hidden=True)] == ["secret"]
    globals()["mean"] = 3  # twdl.check reads the objects from its caller's globals (a notebook's namespace)
    try:
        check("q1")
    finally:
        del globals()["mean"]
    out = capsys.readouterr().out
    assert "q1: 0 of 1 public check(s) pass" in out and "✘ `mean` is 2" in out
    assert "mean is 3" in out and "hint: divide by the count" in out and "secret" not in out
    check("q9")
    assert "no public checks are registered for 'q9'" in capsys.readouterr().out


def test_question_check_rejects_bad_declarations():
    with pytest.raises(ValueError, match="question's id"):
        question_check("")
    with pytest.raises(ValueError, match="points must be positive"):
        question_check("q1", points=0)


def test_assert_recorded_needs_the_record_within_the_tolerance():
    from twdl_helpers.questions import assert_recorded

    assert_recorded({"m.x": 1.0}, "m.x", 1.0 + 5e-7, 1e-6)
    with pytest.raises(AssertionError, match="m.y was not recorded"):
        assert_recorded({"m.x": 1.0}, "m.y", 1.0, 1e-6)
    with pytest.raises(AssertionError, match="m.x is 1, the table says 1.1"):
        assert_recorded({"m.x": 1.0}, "m.x", 1.1, 1e-6, "the table says")


def test_a_check_file_collects_into_its_own_registry_where_twdl_check_does_nothing(capsys):
    @question_check("q1")
    def notebooks_own(x):
        pass

    with questions.collecting() as registry:
        define('''
@question_check("q1")
def graders(x):
    assert x == 1
''')
        questions.grader_loads("data")(lambda parameters: [parameters["seed"]])
        check("q1")  # a check file's own twdl.check(...) calls: nothing runs, nothing prints
    assert capsys.readouterr().out == ""
    assert [c.name for c in registry.select("q1")] == ["graders"] and list(registry.loaders) == ["data"]
    assert [c.name for c in registered_checks("q1")] == ["notebooks_own"]  # the notebook's registry is untouched
    results = run_checks({"x": 1}, "q1", registry=registry, hidden=None)
    assert [(r.name, r.passed) for r in results] == [("graders", True)]


def test_a_check_whose_argument_needs_a_ta_is_not_run_and_says_why():
    ran = []

    @question_check("q1")
    def uses_the_model(model):
        ran.append(model)

    @question_check("q1")
    def uses_the_records(records):
        pass

    why = lambda value: "a MyNet, which the grader cannot rebuild" if value == "custom" else ""  # noqa: E731
    first, second = run_checks({"model": "custom"}, "q1", needs_ta=why)
    assert not first.passed and first.needs_ta == "`model`: a MyNet, which the grader cannot rebuild" and not ran
    assert second.passed and second.needs_ta == ""
    with pytest.raises(ValueError, match="name of a notebook object"):
        questions.grader_loads("records")


def test_each_and_model_per_row_fail_a_check_on_too_few_rows_missing_or_shared_models():
    import ast

    import torch

    assert questions.each(iter([1, 2, 3]), at_least=3, what="runs") == [1, 2, 3]
    with pytest.raises(AssertionError, match="0 runs: the question asks for at least 4"):
        questions.each([], at_least=4, what="runs")
    with pytest.raises(ValueError, match="at_least"):
        questions.each([1], at_least=0, what="runs")
    a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    assert questions.model_per_row(["x", "y"], {"x": a, "y": [b]}, at_least=2, what="runs") == [("x", a), ("y", [b])]
    for models, message in (({"x": a}, "no trained model for \\['y'\\]"), ({"x": a, "y": []}, "no trained model"),
                            ({"x": a, "y": a}, "two runs share one model object"),
                            ({"x": [a], "y": [b, a]}, "two runs share one model object")):
        with pytest.raises(AssertionError, match=message):
            questions.model_per_row(["x", "y"], models, at_least=2, what="runs")

    def problems(source):
        return questions.vacuity_problems(ast.parse(source).body[0])

    assert problems("def c(table):\n    for r in twdl.each(table.itertuples(), at_least=3, what='rows'):\n"
                    "        assert r.x > 0\n") == []
    assert problems("def c(t):\n    rows = twdl.each(t, at_least=1, what='r')\n    assert all(x for x in rows)\n") == []
    assert problems("def c(t):\n    for s in ('train', 'test'):\n        twdl.assert_recorded({}, s, 1, 1)\n") == []
    assert "loops over `zip(table['run'], table['acc'])`" in problems(
        "def c(table):\n    for run, acc in zip(table['run'], table['acc']):\n        assert acc > 0\n")[0]
    assert "asserts nothing" in problems("def c(table):\n    table.head()\n")[0]
    assert problems("def c(m):\n    assert all(p.requires_grad for p in m.parameters())\n")  # all() of nothing


def test_the_held_up_limit_is_a_one_sided_two_proportion_z_test():
    from scipy import stats

    limit = questions.holds_up_limit(95.0, 93.0, 2000, 2000, comparisons=4)
    p = 0.94
    assert limit == pytest.approx(stats.norm.ppf(1 - 0.01 / 4) * 100 * (p * (1 - p) * (2 / 2000)) ** 0.5, rel=1e-6)
    questions.assert_holds_up("adam", 95.0, 95.0 - 0.99 * limit, 2000, 2000, comparisons=4)
    with pytest.raises(AssertionError, match="adam: 95.0 %.*drop of"):
        questions.assert_holds_up("adam", 95.0, 95.0 - 1.2 * limit, 2000, 2000, comparisons=4)
