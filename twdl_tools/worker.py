"""Run one notebook with papermill under resource limits; started as a script (`python worker.py spec.json`).

This file is executed by path, not imported through the package, so it loads only the standard library and
papermill (not torch): the limits it sets on itself are inherited by the kernel that papermill starts.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

__all__ = ["apply_limits", "execute"]

MB = 1024 * 1024


def apply_limits(limits: dict[str, Any]) -> None:
    """Set RLIMIT_AS (memory_mb), RLIMIT_CPU (cpu_s) and RLIMIT_FSIZE (file_mb) on this process; 0/None = unchanged."""
    if not any(limits.values()):
        return
    try:
        import resource
    except ImportError as err:  # Windows
        raise RuntimeError(f"resource limits {limits} need a POSIX system; pass 0 to disable them") from err
    table = {"memory_mb": (resource.RLIMIT_AS, MB), "cpu_s": (resource.RLIMIT_CPU, 1), "file_mb": (resource.RLIMIT_FSIZE, MB)}
    for key, (which, unit) in table.items():
        value = limits.get(key)
        if value:
            soft = int(value * unit)
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                soft, new_hard = min(soft, hard), hard
            else:  # CPU: SIGXCPU at the soft limit, a kill 5 s later; others: the student cannot raise it back
                new_hard = soft + 5 if which == resource.RLIMIT_CPU else soft
            resource.setrlimit(which, (soft, new_hard))


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute spec["input"] into spec["output"] with papermill; return what happened (status, cell_index, error)."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    outcome: dict[str, Any] = {"status": "ok", "cell_index": None, "error": ""}
    try:
        pm.execute_notebook(
            spec["input"], spec["output"], parameters=spec.get("parameters") or {}, cwd=spec.get("cwd"),
            kernel_name=spec.get("kernel") or None, progress_bar=False, request_save_on_cell_execute=True,
            autosave_cell_every=10, start_timeout=120,
        )
    except pm.PapermillExecutionError as err:
        outcome.update(status="error", cell_index=err.cell_index, error=f"{err.ename}: {err.evalue}")
    except DeadKernelError as err:
        detail = str(err).strip()
        detail = "" if detail.lower() in ("", "kernel died") else f": {detail}"
        outcome.update(status="died", error=f"the kernel died (it exited or crashed, e.g. os._exit or out of memory){detail}")
    except Exception as err:  # anything else papermill or the kernel manager raised
        outcome.update(status="error", error=f"{type(err).__name__}: {err}", detail=traceback.format_exc(limit=5))
    return outcome


def main(spec_path: str) -> int:
    """Read the JSON spec, apply its limits, execute, and write the outcome JSON to spec["result"]."""
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    apply_limits(spec.get("limits") or {})
    outcome = execute(spec)
    tmp = spec["result"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    os.replace(tmp, spec["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
