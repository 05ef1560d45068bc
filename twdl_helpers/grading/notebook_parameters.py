"""Command-line notebook parameters: parse `-p name=value` and check them against a notebook before any kernel starts."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

__all__ = ["parse_parameter_values", "declared_parameters", "check_parameters"]

# YAML 1.1 reads these as booleans; on a command line they are almost always meant as words.
_YAML_WORDS = {"yes", "no", "on", "off", "y", "n"}


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    if text.strip().lower() not in _YAML_WORDS:
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        if value is None or isinstance(value, (bool, int, float, list, dict)):
            return value
    return text


def parse_parameter_values(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ["epochs=3", "profile=smoke"] into {"epochs": 3, "profile": "smoke"} (Python/YAML literals, else strings)."""
    parsed: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"-p expects name=value with a Python identifier as name, got {pair!r}; e.g. -p epochs=3")
        parsed[name] = _parse_value(text)
    return parsed


def declared_parameters(notebook: str | Path) -> dict[str, Any] | None:
    """Return name -> default of the notebook's `parameters` cell (papermill's inspection), or None if it has none."""
    import nbformat
    import papermill as pm

    nb = nbformat.read(str(notebook), as_version=4)
    if not any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in nb.cells):
        return None
    found = pm.inspect_notebook(str(notebook))
    declared: dict[str, Any] = {}
    for name, info in found.items():
        try:
            declared[name] = ast.literal_eval(str(info.get("default")))
        except (ValueError, SyntaxError):
            declared[name] = None  # a computed default: any value is accepted
    return declared


def check_parameters(notebook: str | Path, values: dict[str, Any]) -> list[str]:
    """Return the problems (unknown names, wrong types, values outside the allowed choices) of `values` for `notebook`.

    Uses the same rules as the in-notebook `twdl.validate_parameters`, so a run fails in a second, not after a kernel
    start. An empty list means the values are acceptable.
    """
    from ..params import COMMON_CHOICES, type_ok, describe

    declared = declared_parameters(notebook)
    if declared is None:
        if values:
            return [f"{Path(notebook).name} has no cell tagged 'parameters', so -p {', '.join(values)} cannot be set"]
        return []
    problems = []
    unknown = sorted(set(values) - set(declared))
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}")
    for name, value in values.items():
        if name not in declared:
            continue
        default = declared[name]
        if not type_ok(default, value):
            problems.append(f"{name}={value!r} should be {type(default).__name__} like the default {default!r}")
        elif name in COMMON_CHOICES and value not in COMMON_CHOICES[name]:
            problems.append(f"{name}={value!r} must be one of {COMMON_CHOICES[name]}")
    if problems:
        return ["; ".join(problems) + f". Allowed in {Path(notebook).name}: {describe(declared)}"]
    return []
