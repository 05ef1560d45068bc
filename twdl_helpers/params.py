"""Notebook parameters: the one parser of a `parameters` cell (names, defaults, types, ranges) and its checks.

Each parameter is declared once, in the notebook source, beside its assignment:

    # Epoch budget (None: the profile's value). [int >= 1 or None]
    epochs = None
    # Run size.
    profile = "smoke"  # @param ["smoke", "full"]

A bracketed spec at the end of the comment line above the assignment says what is allowed: a type (`int`,
`float`, `bool`, `str`, `path`, `existing path`), optionally a range (`>= 1`, `> 0`, `in [0, 1]`), or choices
(`one of "a", "b"`), with alternatives joined by `or` (`int >= 1 or None`). Colab's form comment
(`# @param ["a", "b"]`, `# @param {type:"integer"}`, sliders with `min`/`max`) also declares one. Without
either, the default's own type is required. The same rules serve the notebook's own check
(`validate_parameters`) and `twdl run`/`twdl grade`, which check values before any kernel starts.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = [
    "ParameterError", "ParameterSpec", "parse_parameters", "parameter_problems", "parameter_message", "validate_parameters",
    "watch_parameters", "declared_parameters", "check_notebook_parameters", "parse_parameter_values",
    "notebook_parameters", "run_parameters", "describe",
]

_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "path": str, "existing path": str, "list": list}
_COLAB_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "slider": "float"}
_DECLARED: dict[str, ParameterSpec] | None = None
_BEFORE: set[str] = set()


class ParameterError(ValueError):
    """An unknown parameter name, a value of the wrong type, or one outside its range or choices."""


@dataclass(frozen=True)
class Alternative:
    """One allowed form of a value: a type with an optional range, or a fixed set of choices, or None."""

    kind: str  # "int" | "float" | "bool" | "str" | "path" | "existing path" | "list" | "none" | "choice" | "any"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def accepts(self, value: Any) -> bool:
        """True when `value` has this form."""
        if self.kind == "any":
            return True
        if self.kind == "none":
            return value is None
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or value is None:
            return False
        if self.kind == "float" and not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if self.kind in ("str", "path", "existing path") and not isinstance(value, str):
            return False
        if self.kind == "list" and not isinstance(value, (list, tuple)):
            return False
        if self.kind == "existing path" and not Path(value).expanduser().exists():
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or not (value >= self.high if self.high_open else value > self.high)

    def __str__(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "none":
            return "None"
        text = self.kind
        if self.low is not None and self.high is not None:
            text += f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text += f" {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text += f" {'<' if self.high_open else '<='} {self.high:g}"
        return text


@dataclass(frozen=True)
class ParameterSpec:
    """A declared parameter: its default and the forms a value may take."""

    name: str
    default: Any
    allowed: tuple[Alternative, ...] = field(default_factory=tuple)

    def problem(self, value: Any) -> str | None:
        """None when `value` is allowed, else a one-line message naming the parameter, the value and the rule."""
        if any(alt.accepts(value) for alt in self.allowed):
            return None
        return f"{self.name}={value!r} is not allowed: expected {self.rule}"

    @property
    def rule(self) -> str:
        """What is allowed, in words ("int >= 1 or None")."""
        return " or ".join(str(a) for a in self.allowed)


def _number(text: str) -> float:
    return float(ast.literal_eval(text.strip()))


def _alternative(text: str) -> Alternative:
    text = text.strip()
    if text in ("None", "none"):
        return Alternative("none")
    if text.startswith("one of "):
        choices = ast.literal_eval("(" + text[len("one of "):] + ",)")
        return Alternative("choice", choices=tuple(choices))
    match = re.fullmatch(r"(existing path|int|float|bool|str|path|list|any)\b\s*(.*)", text)
    if not match:
        raise ValueError(f"cannot read parameter spec {text!r}; use e.g. 'int >= 1', 'float in [0, 1]', "
                         "'one of \"a\", \"b\"', 'existing path or None'")
    kind, rest = match.group(1), match.group(2).strip()
    if not rest:
        return Alternative(kind)
    interval = re.fullmatch(r"in\s*([\[(])\s*([^,]+),\s*([^\])]+)([\])])", rest)
    if interval:
        return Alternative(kind, _number(interval.group(2)), _number(interval.group(3)),
                           interval.group(1) == "(", interval.group(4) == ")")
    bound = re.fullmatch(r"(>=|>|<=|<)\s*(.+)", rest)
    if not bound:
        raise ValueError(f"cannot read the range {rest!r} of parameter spec {text!r}")
    op, value = bound.group(1), _number(bound.group(2))
    return Alternative(kind, low=value, low_open=op == ">") if op in (">", ">=") else \
        Alternative(kind, high=value, high_open=op == "<")


def _spec_from_brackets(comment: str) -> tuple[Alternative, ...] | None:
    match = re.search(r"\[((?:[^\[\]()]|[\[(][^\[\]()]*[\])])+)\]\s*$", comment)
    if not match:
        return None
    parts = re.split(r"\s+or\s+", match.group(1).strip())
    return tuple(_alternative(p) for p in parts)


def _spec_from_colab(comment: str) -> tuple[Alternative, ...] | None:
    match = re.search(r"@param\s*(.*)$", comment)
    if not match:
        return None
    text = match.group(1).strip()
    if text.startswith("["):
        end = text.index("]") + 1
        return (Alternative("choice", choices=tuple(ast.literal_eval(text[:end]))),)
    options = dict(re.findall(r"(\w+)\s*:\s*\"?([^,\"}]+)\"?", text))
    kind = _COLAB_TYPES.get(options.get("type", ""), None)
    if kind is None:
        return None
    low = _number(options["min"]) if "min" in options else None
    high = _number(options["max"]) if "max" in options else None
    return (Alternative(kind, low, high),)


def _spec_from_default(default: Any) -> tuple[Alternative, ...]:
    if default is None:
        return (Alternative("any"),)
    kind = next((k for k, t in _TYPES.items() if k in ("bool", "int", "float", "str", "list") and type(default) is t),
                "any")
    if isinstance(default, tuple):
        kind = "list"
    return (Alternative("float"),) if kind == "float" else (Alternative(kind),)


def _comments_by_line(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """(line -> comment of a comment-only line, line -> comment after code), 1-based line numbers."""
    alone: dict[int, str] = {}
    trailing: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                own_line = token.line.strip().startswith("#")
                (alone if own_line else trailing)[token.start[0]] = token.string
    except (tokenize.TokenError, IndentationError):
        pass
    return alone, trailing


def parse_parameters(source: str) -> dict[str, ParameterSpec]:
    """Return name -> ParameterSpec for the plain assignments of a `parameters` cell's source, in order."""
    alone, trailing = _comments_by_line(source)
    declared: dict[str, ParameterSpec] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            default = None  # a computed default
        above, same = alone.get(node.lineno - 1, ""), trailing.get(node.end_lineno, "")
        allowed = _spec_from_brackets(above) or _spec_from_colab(same) or _spec_from_default(default)
        for target in targets:
            if isinstance(target, ast.Name):
                declared[target.id] = ParameterSpec(target.id, default, allowed)
    return declared


def parameter_problems(declared: dict[str, ParameterSpec], values: dict[str, Any]) -> list[str]:
    """Every problem of `values` against `declared`: unknown names, wrong types, values out of range or choices."""
    problems = []
    unknown = sorted(set(values) - set(declared))
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}")
    for name, value in values.items():
        if name in declared:
            problem = declared[name].problem(value)
            if problem:
                problems.append(problem)
    return problems


def describe(declared: dict[str, ParameterSpec]) -> str:
    """'name: rule' for each declared parameter, separated by semicolons."""
    return "; ".join(f"{name}: {spec.rule}" for name, spec in declared.items())


def parameter_message(problems: list[str], declared: dict[str, ParameterSpec]) -> str:
    """The one-line message for `problems`, the same in a notebook and on the command line."""
    return "; ".join(problems) + f". Allowed parameters: {describe(declared)}"


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


def declared_parameters() -> dict[str, ParameterSpec] | None:
    """What `watch_parameters` captured from this kernel's parameters cell (name -> spec); None before that cell ran."""
    return None if _DECLARED is None else dict(_DECLARED)


def validate_parameters(namespace: dict[str, Any], declared: dict[str, ParameterSpec] | None = None) -> SimpleNamespace:
    """Check the notebook's parameters against their declarations; return them, or raise one ParameterError.

    `declared` defaults to what `watch_parameters` captured from the parameters cell. Names assigned after
    that cell (papermill's injected cell) that were not declared are reported as unknown.
    """
    declared = _DECLARED if declared is None else declared
    if declared is None:  # not under IPython, or the watch cell was skipped: nothing was declared to check
        return SimpleNamespace()
    new = {k: namespace[k] for k in set(namespace) - _BEFORE if not k.startswith("_")}
    values = {**{k: namespace[k] for k in declared if k in namespace}, **new}
    problems = parameter_problems(declared, values)
    if problems:
        raise ParameterError(parameter_message(problems, declared))
    _BEFORE.update(namespace)  # re-running this cell later must not flag the notebook's own variables
    return SimpleNamespace(**{name: namespace.get(name, spec.default) for name, spec in declared.items()})


def parse_parameter_values(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ["epochs=3", "profile=smoke"] into {"epochs": 3, "profile": "smoke"} (Python literals, else strings)."""
    words = {"true": True, "false": False, "none": None, "null": None}
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"-p expects name=value with a Python identifier as name, got {pair!r}; e.g. -p epochs=3")
        text = text.strip()
        try:
            parsed[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed[name] = words[text.lower()] if text.lower() in words else text
    return parsed


def notebook_parameters(notebook: Any) -> dict[str, ParameterSpec] | None:
    """The declared parameters of a notebook (a path or a loaded notebook), or None when it has no parameters cell."""
    if not hasattr(notebook, "cells"):
        import nbformat

        notebook = nbformat.read(str(notebook), as_version=4)
    for cell in notebook.cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return parse_parameters(cell.source)
    return None


def run_parameters(notebook: Any, values: dict[str, Any]) -> dict[str, Any]:
    """What a run of the notebook (a path or a loaded notebook) gets: its declared defaults, overlaid with `values`."""
    declared = notebook_parameters(notebook) or {}
    return {**{name: spec.default for name, spec in declared.items()}, **values}


def check_notebook_parameters(notebook: Any, values: dict[str, Any]) -> list[str]:
    """Problems of `values` for the parameters a notebook (a path) declares, one line each; [] when acceptable."""
    declared = notebook_parameters(notebook)
    if declared is None:
        return [f"{getattr(notebook, 'name', 'the notebook')} has no cell tagged 'parameters', so -p {', '.join(values)} cannot be set"] if values else []
    problems = parameter_problems(declared, values)
    return [parameter_message(problems, declared)] if problems else []
