"""Checks of the homework questions: `twdl.check("q1")` runs a question's public checks on the notebook's objects.

A check is a function registered with `@twdl.question_check("q1")`. Its parameters name the objects it inspects
(`table`, `data`, ...), plus the provided ones: `records` (the values recorded), `parameters` (the notebook's
parameters) and, in the grader only, `withheld` (data the notebook never saw). It passes when it returns without
raising; `assert cond, "message"` explains a failure. The grader runs the same public checks, and hidden ones that
never appear in a notebook, in a separate trusted process on the objects it rebuilt from the notebook's exported
claims (`twdl grade`, see docs/grading.md); `@twdl.grader_loads("data")` names an object the grader loads itself
instead of taking the notebook's.

The registered checks live in a `CheckRegistry`: a notebook has one, and the grader collects each check file into
a fresh one (`collecting()`), so no check of one submission survives into the next.
"""
from __future__ import annotations

import inspect
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

__all__ = ["Check", "CheckResult", "CheckTimeout", "CheckRegistry", "question_check", "grader_loads", "check",
           "run_checks", "registered_checks", "current_registry", "collecting", "hidden_section", "assert_recorded",
           "each", "model_per_row", "holds_up_limit", "assert_holds_up", "vacuity_problems", "DEFAULT_TIME_LIMIT",
           "PROVIDED", "GUARDS", "FALSE_ALARM_LEVEL"]

DEFAULT_TIME_LIMIT = 30.0  # seconds one check may run before it fails
PROVIDED = ("records", "parameters", "withheld")  # names a check receives from the checker, never from the notebook
GUARDS = ("each", "model_per_row", "assert_recorded", "assert_holds_up")  # calls that fail a check on missing evidence
FALSE_ALARM_LEVEL = 0.01  # an honest question fails a held-up check with at most this probability (one-sided)


class CheckTimeout(BaseException):
    """A check ran past its time limit (a BaseException, so that `except Exception` inside a check cannot hide it)."""


@dataclass(frozen=True)
class Check:
    """One registered check of one question."""

    question: str
    name: str
    description: str
    function: Callable[..., Any]
    points: float = 1.0  # its weight among the question's checks
    required: bool = False  # when it fails, the whole question scores 0
    hint: str = ""
    hidden: bool = False
    time_limit: float = DEFAULT_TIME_LIMIT


@dataclass
class CheckResult:
    """The outcome of one check: passed or not and why, or `needs_ta` (why a person must judge it instead)."""

    question: str
    name: str
    description: str
    passed: bool
    message: str = ""
    hint: str = ""
    points: float = 1.0
    required: bool = False
    hidden: bool = False
    needs_ta: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class CheckRegistry:
    """The checks registered in one place (a notebook, or one check file in the grader), and the grader's loaders."""

    checks: dict[str, dict[str, Check]] = field(default_factory=dict)  # question -> name -> Check (re-running replaces)
    loaders: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)  # object name -> loader
    hidden: bool = False  # checks registered from now on are hidden

    def clear(self) -> None:
        """Forget every check and loader (and go back to public checks)."""
        self.checks.clear()
        self.loaders.clear()
        self.hidden = False

    def add(self, item: Check) -> None:
        """Register (or replace) one check."""
        self.checks.setdefault(item.question, {})[item.name] = item

    def select(self, question: str | None = None, hidden: bool | None = None) -> list[Check]:
        """The checks of `question` (all when None) in registration order, filtered by `hidden` unless None."""
        questions = [question] if question is not None else list(self.checks)
        return [c for q in questions for c in self.checks.get(q, {}).values() if hidden is None or c.hidden == hidden]


_NOTEBOOK = CheckRegistry()
_ACTIVE: list[CheckRegistry] = []  # registries being collected (the grader's), innermost last


def current_registry() -> CheckRegistry:
    """The registry that `question_check` registers into now: the one being collected, else the notebook's."""
    return _ACTIVE[-1] if _ACTIVE else _NOTEBOOK


@contextmanager
def collecting() -> Iterator[CheckRegistry]:
    """Register into a fresh registry while the block runs (the grader executes one check file in it)."""
    registry = CheckRegistry()
    _ACTIVE.append(registry)
    try:
        yield registry
    finally:
        _ACTIVE.remove(registry)


def hidden_section(hidden: bool = True) -> None:
    """Mark the checks registered from now on as hidden (the grader's check files call this before hidden checks)."""
    current_registry().hidden = bool(hidden)


def question_check(question: str, *, points: float = 1.0, required: bool = False, hint: str = "",
                   time_limit: float = DEFAULT_TIME_LIMIT) -> Callable[[Callable], Callable]:
    """Decorator: register the function as a check of `question`; its parameter names name the objects it needs.

    `points` weighs it among the question's checks (partial credit); a failing `required` check makes the whole
    question score 0; `hint` is shown when it fails; `time_limit` (seconds) bounds its run time.
    """
    if not isinstance(question, str) or not question:
        raise ValueError(f"question_check needs the question's id, e.g. question_check('q1'); got {question!r}")
    if not points > 0:
        raise ValueError(f"points must be positive, got {points!r}")

    def register(function: Callable) -> Callable:
        doc = inspect.getdoc(function) or function.__name__.replace("_", " ")
        registry = current_registry()
        registry.add(Check(question, function.__name__, " ".join(doc.split("\n\n")[0].split()), function,
                           float(points), bool(required), hint, registry.hidden, float(time_limit)))
        return function

    return register


def grader_loads(name: str) -> Callable[[Callable], Callable]:
    """Decorator for hidden check cells: the grader builds object `name` itself with `function(parameters)`.

    Checks that take `name` then receive the grader's object (e.g. the test digits loaded from the data files),
    not the notebook's; the notebook is never asked to export it.
    """
    if not isinstance(name, str) or not name.isidentifier() or name in PROVIDED:
        raise ValueError(f"grader_loads needs the name of a notebook object, e.g. grader_loads('data'); got {name!r}")

    def register(function: Callable) -> Callable:
        current_registry().loaders[name] = function
        return function

    return register


def assert_recorded(records: dict[str, Any], name: str, expected: float, tolerance: float,
                    source: str = "expected") -> None:
    """Fail a check unless `name` was recorded within `tolerance` of `expected` (recomputed by the check)."""
    assert name in records, f"{name} was not recorded"
    value = records[name]
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{name} is {value!r}, not a number"
    assert abs(value - expected) < tolerance, f"{name} is {value:.6g}, {source} {expected:.6g}"


def each(items: Any, *, at_least: int, what: str) -> list[Any]:
    """The items a check loops over, as a list; fails the check when there are fewer than `at_least`.

    Every loop of a check goes through it (`twdl sync` refuses one that does not), so a check over rows, models or
    keys never passes on an empty table: `for row in twdl.each(table.itertuples(), at_least=4, what="runs")`.
    """
    if not isinstance(at_least, int) or at_least < 1:
        raise ValueError(f"each(..., at_least=N) needs N >= 1, the number the question asks for; got {at_least!r}")
    found = list(items)
    assert len(found) >= at_least, f"{len(found)} {what}: the question asks for at least {at_least}"
    return found


def model_per_row(keys: Any, models: Any, *, at_least: int, what: str) -> list[tuple[Any, Any]]:
    """(key, model) for each of `keys` (at least `at_least`), each with its own model (or list of models) in `models`.

    Fails the check when a key has no model, an empty list of models, or shares a model object with another key
    (the grader's rebuilt claims keep shared objects shared).
    """
    keys = each(keys, at_least=at_least, what=what)
    assert isinstance(models, dict), f"the models of the {what} are a {type(models).__name__}, not a dict by key"
    missing = [k for k in keys if k not in models or (isinstance(models[k], (list, tuple)) and not models[k])]
    assert not missing, f"no trained model for {missing} (the models the table keeps in .attrs['models'])"
    objects = [id(m) for k in keys for m in (models[k] if isinstance(models[k], (list, tuple)) else [models[k]])]
    assert len(set(objects)) == len(objects), f"two {what} share one model object: each needs its own trained model"
    return [(k, models[k]) for k in keys]


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (inverse CDF) by bisection on erf: no SciPy needed in the student runtime."""
    import math

    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p else (low, mid)
    return (low + high) / 2


def holds_up_limit(reported: float, measured: float, n_reported: int, n_unseen: int, comparisons: int = 1,
                   level: float = FALSE_ALARM_LEVEL) -> float:
    """The largest drop (points) from `reported` to `measured` accuracy that binomial noise explains.

    One-sided two-proportion z-test at `level` for the whole question, Bonferroni-split over `comparisons`: both
    accuracies are of one model on two random draws of one pool, so their difference has standard deviation
    sqrt(p (1 - p) (1/n_reported + 1/n_unseen)) with p the pooled accuracy.
    """
    p = (reported * n_reported + measured * n_unseen) / (100 * (n_reported + n_unseen))
    p = min(max(p, 0.5 / (n_reported + n_unseen)), 1 - 0.5 / (n_reported + n_unseen))
    sd = 100 * (p * (1 - p) * (1 / n_reported + 1 / n_unseen)) ** 0.5
    return _normal_quantile(1 - level / max(1, comparisons)) * sd


def assert_holds_up(what: str, reported: float, measured: float, n_reported: int, n_unseen: int,
                    comparisons: int = 1) -> None:
    """Fail a check when accuracy `measured` on withheld data falls below `reported` by more than noise explains."""
    limit = holds_up_limit(reported, measured, n_reported, n_unseen, comparisons)
    assert reported - measured <= limit, (
        f"{what}: {reported:.1f} % on the notebook's {n_reported} evaluation examples but {measured:.1f} % on "
        f"{n_unseen} withheld ones drawn the same way, a drop of {reported - measured:.1f} points where noise "
        f"explains {limit:.1f} (one-sided z-test, level {FALSE_ALARM_LEVEL:g} per question): was it trained on "
        "the data it reports?")


def _guard_name(node: Any) -> str:
    import ast

    if isinstance(node, ast.Call):
        func = node.func
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return ""


def _literal(node: Any) -> bool:
    import ast

    return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and bool(node.elts) and not any(
        isinstance(e, ast.Starred) for e in node.elts)  # a display of items written out: never empty


def vacuity_problems(function: Any) -> list[str]:
    """Why a check (its `ast.FunctionDef`) could pass on nothing: a loop not over `twdl.each(...)`/a literal, or no
    assertion at all. `twdl sync` refuses check cells with any."""
    import ast

    problems, asserts = [], False
    guarded: set[str] = set()  # names bound to what a guard returned (or to its items, in a loop over it)
    fed: set[int] = set()  # comprehensions written as a guard's argument: the guard counts their items
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and _guard_name(node.value) in GUARDS[:2]:
            guarded.update(n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name))
        if isinstance(node, (ast.For, ast.comprehension)) and _guard_name(node.iter) in GUARDS[:2]:
            guarded.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
        if _guard_name(node) in GUARDS[:2]:
            fed.update(id(a) for a in node.args)
    for node in ast.walk(function):
        if isinstance(node, ast.Assert) or _guard_name(node) in GUARDS:
            asserts = True
        iterables = ([node.iter] if isinstance(node, (ast.For, ast.AsyncFor)) else
                     [g.iter for g in node.generators] if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp,
                                                                            ast.GeneratorExp)) and id(node) not in fed
                     else [])
        for it in iterables:
            if not (_guard_name(it) in GUARDS[:2] or _literal(it) or (isinstance(it, ast.Name) and it.id in guarded)):
                problems.append(f"line {it.lineno}: it loops over `{ast.unparse(it)}`, which may be empty; loop over "
                                f"twdl.each({ast.unparse(it)}, at_least=N, what=...) (or twdl.model_per_row)")
    if not asserts:
        problems.append("it asserts nothing: a check passes only by surviving an assert or a twdl guard")
    return problems


def registered_checks(question: str | None = None, *, hidden: bool | None = None) -> list[Check]:
    """The checks of `question` (all when None) in the current registry, in registration order; filter by `hidden`."""
    return current_registry().select(question, hidden)


def _call_with_limit(function: Callable, arguments: dict[str, Any], seconds: float | None) -> Any:
    """Call `function(**arguments)`, raising CheckTimeout after `seconds` (main thread of a POSIX process only)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return function(**arguments)

    def on_alarm(signum, frame):
        raise CheckTimeout(f"took longer than its time limit of {seconds:.3g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return function(**arguments)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _failure_message(err: BaseException, function: Callable) -> str:
    if isinstance(err, CheckTimeout):
        return str(err)
    if isinstance(err, AssertionError) and str(err):
        return str(err)
    if isinstance(err, AssertionError):  # a bare assert: show its line
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.name == function.__name__]
        return f"assertion failed: {frames[-1].line}" if frames and frames[-1].line else "assertion failed"
    return f"{type(err).__name__}: {err}"


def _run_one(item: Check, namespace: dict[str, Any], provided: dict[str, Any], seconds: float,
             needs_ta: Callable[[Any], str] | None) -> CheckResult:
    result = CheckResult(item.question, item.name, item.description, False, "", item.hint, item.points,
                         item.required, item.hidden)
    arguments = {}
    for name in inspect.signature(item.function).parameters:
        if name in provided:
            arguments[name] = provided[name]
        elif name in namespace:
            arguments[name] = namespace[name]
        else:
            result.message = f"`{name}` is not defined: run the cells of question {item.question} first"
            return result
    for name, value in arguments.items():
        reason = needs_ta(value) if needs_ta is not None and name not in provided else ""
        if reason:
            result.needs_ta = f"`{name}`: {reason}"
            result.message = "not run: a TA must judge it (" + result.needs_ta + ")"
            return result
    try:
        outcome = _call_with_limit(item.function, arguments, seconds)
    except BaseException as err:  # noqa: BLE001  (a check's own bug, a timeout or an interrupt is a failed check)
        result.message = _failure_message(err, item.function)
        return result
    if outcome is False:
        result.message = "the check returned False"
        return result
    result.passed = True
    return result


def run_checks(namespace: dict[str, Any], question: str | None = None, *, records: dict[str, Any] | None = None,
               parameters: dict[str, Any] | None = None, withheld: dict[str, Any] | None = None,
               hidden: bool | None = False, budget: float | None = None, registry: CheckRegistry | None = None,
               needs_ta: Callable[[Any], str] | None = None) -> list[CheckResult]:
    """Run the registered checks of `question` (all when None) against `namespace`; never raises.

    `hidden=None` runs public and hidden checks. `budget` (seconds) bounds all of them together: a check that
    would start after it is spent fails without running. `needs_ta(value)` returns why an argument cannot be judged
    automatically (the grader's rebuilt claims: a model of a class it cannot rebuild); such a check is not run.
    """
    registry = registry or current_registry()
    provided = {"records": dict(records or {}), "parameters": dict(parameters or {}), "withheld": dict(withheld or {})}
    start, results = time.monotonic(), []
    for item in registry.select(question, hidden):
        left = None if budget is None else budget - (time.monotonic() - start)
        if left is not None and left <= 0:
            results.append(CheckResult(item.question, item.name, item.description, False,
                                       "not run: the time for all checks was used up", item.hint, item.points,
                                       item.required, item.hidden))
            continue
        seconds = item.time_limit if left is None else min(item.time_limit, left)
        results.append(_run_one(item, namespace, provided, seconds, needs_ta))
    return results


def _report(question: str, results: list[CheckResult]) -> str:
    passed = sum(r.passed for r in results)
    lines = [f"{question}: {passed} of {len(results)} public check(s) pass"]
    for r in results:
        lines.append(f"  {'✔' if r.passed else '✘'} {r.description}")
        if not r.passed:
            lines += [f"      {r.message}"] + ([f"      hint: {r.hint}"] if r.hint else [])
    return "\n".join(lines)


def check(question: str) -> None:
    """Run the public checks of `question` on this notebook's objects and print pass/fail with hints.

    Call it in a notebook (`twdl.check("q1")`); the grader runs these checks again, with hidden ones, on what it
    rebuilds from your submitted notebook. While the grader collects a check file, this call does nothing.
    """
    from .params import declared_parameters
    from .records import recorded

    if _ACTIVE:
        return
    namespace = sys._getframe(1).f_globals
    if not registered_checks(question, hidden=False):
        known = ", ".join(sorted(current_registry().checks)) or "none yet"
        print(f"no public checks are registered for {question!r} (registered: {known}); "
              "run the cell that defines them first")
        return
    parameters = {name: namespace[name] for name in declared_parameters() or {} if name in namespace}
    results = run_checks(namespace, question, records=recorded(), parameters=parameters)
    print(_report(question, results) + "\nThe grader runs these checks, and hidden ones, on your submitted notebook.")
