"""Notebook parameters: capture the papermill `parameters` cell's defaults and validate what was injected."""
from __future__ import annotations

import ast
from types import SimpleNamespace
from typing import Any

__all__ = ["ParameterError", "parse_parameters", "watch_parameters", "validate_parameters", "COMMON_CHOICES"]

COMMON_CHOICES: dict[str, tuple] = {
    "profile": ("smoke", "full"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "data_source": ("auto", "full", "sample"),
}
_DECLARED: dict[str, Any] | None = None
_BEFORE: set[str] = set()


class ParameterError(ValueError):
    """An unknown parameter name, a wrong type or a value outside its allowed choices."""


def parse_parameters(source: str) -> dict[str, Any]:
    """Return name -> default for the plain assignments of a parameters cell's source."""
    declared: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        declared[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        declared[target.id] = None  # computed default: any type accepted
    return declared


def watch_parameters() -> None:
    """Call in the cell before the `parameters` cell: the next cell's assignments become the declared parameters."""
    global _DECLARED, _BEFORE
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    _DECLARED, _BEFORE = None, set(shell.user_ns)
    calls = {"n": 0}

    def capture(result: Any) -> None:
        global _DECLARED
        calls["n"] += 1
        if calls["n"] == 1:  # the cell that registered us
            return
        _DECLARED = parse_parameters(result.info.raw_cell)
        shell.events.unregister("post_run_cell", capture)

    shell.events.register("post_run_cell", capture)


def type_ok(default: Any, value: Any) -> bool:
    """True when `value` may replace the parameter default `default` (int for float, None for anything)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def validate_parameters(
    namespace: dict[str, Any],
    declared: dict[str, Any] | None = None,
    choices: dict[str, tuple] | None = None,
) -> SimpleNamespace:
    """Check the notebook's parameters (names, types, choices) and return them; raise ParameterError otherwise.

    `declared` defaults to what `watch_parameters` captured from the parameters cell. Names assigned after
    that cell (papermill's injected cell) that were not declared are reported as unknown.
    """
    declared = _DECLARED if declared is None else declared
    allowed = {**COMMON_CHOICES, **(choices or {})}
    if declared is None:  # not under IPython, or the setup cell was skipped: check what we can
        declared = {k: namespace[k] for k in allowed if k in namespace}
    else:
        unknown = sorted(k for k in set(namespace) - _BEFORE - set(declared) if not k.startswith("_"))
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; allowed: {describe(declared)}")
    problems = []
    for name, default in declared.items():
        value = namespace.get(name, default)
        if not type_ok(default, value):
            problems.append(f"{name}={value!r} should be {type(default).__name__} like the default {default!r}")
        if name in allowed and value not in allowed[name]:
            problems.append(f"{name}={value!r} must be one of {allowed[name]}")
    if problems:
        raise ParameterError("bad parameter value(s): " + "; ".join(problems) + f". Allowed: {describe(declared)}")
    _BEFORE.update(namespace)  # re-running this cell later must not flag the notebook's own variables
    return SimpleNamespace(**{name: namespace.get(name, default) for name, default in declared.items()})


def describe(declared: dict[str, Any]) -> str:
    """Return 'name: type' for each declared parameter, comma separated."""
    return ", ".join(f"{k}: {type(v).__name__ if v is not None else 'any'}" for k, v in declared.items())
