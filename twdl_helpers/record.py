"""Record results in executed notebooks (a dedicated MIME bundle) and read them back."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd

from .common import to_python

__all__ = ["RECORD_MIME", "record", "recorded", "records_table", "read_records"]

RECORD_MIME = "application/vnd.twdl.record+json"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
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


def read_records(notebook: str | Path | nbformat.NotebookNode) -> dict[str, Any]:
    """Return every value recorded in an executed notebook (a path or a loaded notebook), in order."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    found: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data:
                item = data[RECORD_MIME]
                if isinstance(item, str):  # some writers store JSON bundles as text
                    item = json.loads(item)
                found[item["name"]] = item["value"]
    return found
