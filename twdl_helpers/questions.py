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
           "DEFAULT_TIME_LIMIT", "PROVIDED"]

DEFAULT_TIME_LIMIT = 30.0  # seconds one check may run before it fails
PROVIDED = ("records", "parameters", "withheld")  # names a check receives from the checker, never from the notebook


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
