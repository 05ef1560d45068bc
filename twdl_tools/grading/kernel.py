"""The cell `twdl grade` runs in each submission's kernel after the student's cells, and how its results come back.

The cell's source travels to the worker on its stdin (never as a file), runs with store_history=False, and is
never added to the executed notebook. It runs the module's check file in a fresh namespace where `twdl` is a
fresh copy of the helpers, loaded from the installed package's files: names the student's code rebound or
helpers it monkeypatched (`twdl.check = ...`, `twdl.evaluate = ...`) are not the ones the checks use. Records
come from the live record store (what `twdl.record` stored), and each check recomputes what it judges from the
student's objects. The results come back as one display bundle carrying a per-run nonce; the grader reads
only the bundle with that nonce among this cell's own outputs. See docs/grading.md for what this does not stop.
"""
from __future__ import annotations

import json
import secrets
from typing import Any

from .checkfile import CheckFile

__all__ = ["CHECKS_MIME", "new_nonce", "check_cell_source", "results_from_outputs"]

CHECKS_MIME = "application/vnd.twdl.check-results+json"

# Runs inside the kernel (exec'd in a fresh namespace holding PAYLOAD); standard library and IPython only.
RUNNER = r'''
import builtins, importlib, importlib.util, json, linecache, sys, time
_start = time.perf_counter()
_payload = json.loads(PAYLOAD)
_notebook = sys._getframe(1).f_globals  # the notebook's namespace: where the student's objects live
_alias = "_twdl_grading_" + _payload["nonce"][:16]
_results, _error = [], ""


def _fresh_helpers():
    """A new copy of twdl_helpers executed from its files under a private name (not the student's modules)."""
    found = importlib.util.find_spec("twdl_helpers")
    spec = importlib.util.spec_from_file_location(_alias, found.origin,
                                                  submodule_search_locations=found.submodule_search_locations)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_alias] = module
    spec.loader.exec_module(module)
    if "twdl_helpers.lm" in sys.modules:  # the notebook used the language-model helpers: give the checks theirs
        module.lm = importlib.import_module(_alias + ".lm")
    module.check = lambda *args, **kwargs: None  # the public check cells' own twdl.check(...) calls do nothing
    return module


try:
    _twdl = _fresh_helpers()
    _live = sys.modules.get("twdl_helpers.records")
    _records = dict(getattr(_live, "_RECORDS", None) or {})
    _namespace = {"__builtins__": builtins, "__name__": "__twdl_checks__", "twdl": _twdl}
    _lines = _payload["source"].splitlines(True)
    linecache.cache["<twdl checks>"] = (len(_payload["source"]), None, _lines, "<twdl checks>")  # bare asserts' lines
    exec(compile(_payload["source"], "<twdl checks>", "exec"), _namespace)
    _results = [r.to_dict() for r in _twdl.questions.run_checks(
        _notebook, records=_records, parameters=_payload["parameters"], hidden=None, budget=_payload["budget"])]
except BaseException as _err:  # noqa: BLE001  (reported to the grader: every question's checks then score 0)
    _error = f"{type(_err).__name__}: {_err}"
finally:
    linecache.cache.pop("<twdl checks>", None)
    for _name in [n for n in sys.modules if n == _alias or n.startswith(_alias + ".")]:
        del sys.modules[_name]

from IPython.core.getipython import get_ipython

get_ipython().display_pub.publish(
    data={"text/plain": f"twdl grade: {len(_results)} check(s) run",
          _payload["mime"]: {"nonce": _payload["nonce"], "results": _results, "error": _error,
                             "seconds": time.perf_counter() - _start}},
    metadata={})
'''


def new_nonce() -> str:
    """A fresh random token for one grading run."""
    return secrets.token_hex(16)


def check_cell_source(check_file: CheckFile, nonce: str, parameters: dict[str, Any], budget: float) -> str:
    """The source of the check cell for one submission (the check file, its parameters, the nonce, a time budget)."""
    payload = json.dumps({"nonce": nonce, "source": check_file.source, "parameters": parameters,
                          "budget": budget, "mime": CHECKS_MIME}, default=str)
    return ("# twdl grade: the module's checks, run after the student's cells (not part of the submission)\n"
            "import builtins as _twdl_builtins\n"
            f"_twdl_builtins.exec(_twdl_builtins.compile({RUNNER!r}, '<twdl grading>', 'exec'),\n"
            f"                    {{'__builtins__': _twdl_builtins, 'PAYLOAD': {payload!r}}})\n")


def results_from_outputs(outputs: list[dict[str, Any]], nonce: str) -> tuple[list[dict[str, Any]] | None, str, float]:
    """(check results, error, seconds the check cell took) from its outputs; (None, why, 0) without the nonce's bundle."""
    problem = "the checks did not report (the kernel died or the notebook ran out of time first)"
    for output in outputs:
        if output.get("output_type") == "error":
            problem = f"the check cell failed: {output.get('ename')}: {output.get('evalue')}"
        item = (output.get("data") or {}).get(CHECKS_MIME)
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                continue
        if isinstance(item, dict) and item.get("nonce") == nonce and isinstance(item.get("results"), list):
            return item["results"], str(item.get("error") or ""), float(item.get("seconds") or 0.0)
    return None, problem, 0.0
