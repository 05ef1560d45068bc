"""Record results in executed notebooks (a dedicated MIME bundle) and read them back: the record schema's one owner.

A record is a display bundle `{RECORD_MIME: {"name": ..., "value": ...}}` beside its text form. Every reader
(grading, `twdl run`, the nbval tolerance plugin, reports) uses the functions here.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

import nbformat
import pandas as pd

from .common import to_python

__all__ = ["RECORD_MIME", "record", "recorded", "records_table", "records_in_outputs", "read_records",
           "is_completion_flag", "completed_modules", "flat_records", "record_columns"]

RECORD_MIME = "application/vnd.twdl.record+json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
COMPLETED_PATTERN = re.compile(r"^m\d+\.completed$")  # each module's "homework done" flag: mK.completed
_RECORDS: dict[str, Any] = {}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return json.dumps(value) if not isinstance(value, str) else value


def record(name: str, value: Any, *, show: bool = True) -> Any:
    """Display `name: value` and store it in the notebook's outputs so `read_records` finds it later."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"record name {name!r} must be dotted lower-case words, e.g. 'm1.baseline.test_accuracy'")
    plain = to_python(value)
    json.dumps(plain)  # fail now, not when the notebook is saved
    _RECORDS[name] = plain
    if show:
        bundle = {"text/plain": f"{name}: {_format(plain)}", RECORD_MIME: {"name": name, "value": plain}}
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(bundle, raw=True)
                return value
        except ImportError:
            pass
        print(bundle["text/plain"])
    return value


def recorded() -> dict[str, Any]:
    """Return the values recorded so far in this process (name -> value)."""
    return dict(_RECORDS)


def records_table(prefix: str = "") -> pd.DataFrame:
    """Return this process's records whose name starts with `prefix`, as a two-column table."""
    rows = [(k, v) for k, v in _RECORDS.items() if k.startswith(prefix)]
    return pd.DataFrame(rows, columns=["metric", "value"])


def records_in_outputs(outputs: Iterable[Any]) -> dict[str, Any]:
    """Return name -> value of the record bundles among a cell's outputs, in order."""
    found: dict[str, Any] = {}
    for output in outputs:
        item = (output.get("data") or {}).get(RECORD_MIME)
        if item is not None:
            item = json.loads(item) if isinstance(item, str) else item  # some writers store JSON bundles as text
            found[item["name"]] = item["value"]
    return found


def read_records(notebook: str | Path | nbformat.NotebookNode) -> dict[str, Any]:
    """Return every value recorded in an executed notebook (a path or a loaded notebook), in order."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    found: dict[str, Any] = {}
    for cell in nb.cells:
        found.update(records_in_outputs(cell.get("outputs", [])))
    return found


def is_completion_flag(name: str) -> bool:
    """True for a module's homework flag (`m2.completed`)."""
    return bool(COMPLETED_PATTERN.match(name))


def completed_modules(records: dict[str, Any]) -> list[str]:
    """The modules ("m1", "m3", ...) whose completion flag was recorded as True, sorted."""
    return sorted(name.split(".")[0] for name, value in records.items() if is_completion_flag(name) and value is True)


def flat_records(records: dict[str, Any]) -> dict[str, Any]:
    """Records as table cells: lists and dicts as JSON text, other values unchanged."""
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in records.items()}


def record_columns(names: Iterable[str], fixed: list[str]) -> list[str]:
    """Column order for a table of records: the fixed columns, the completion flags, then the other names sorted."""
    rest = sorted(set(names) - set(fixed))
    flags = [n for n in rest if is_completion_flag(n)]
    return fixed + flags + [n for n in rest if n not in flags]
