"""Run one notebook with papermill under resource limits; started as a script (`python worker.py RESULT_FD`).

This file is executed by path, not imported through the package, so it loads only the standard library and
papermill (not torch): the limits it sets on itself are inherited by the kernel that papermill starts.
Contract with twdl_tools/execute.py: the JSON spec arrives on stdin (never as a file: it may hold hidden check
code), the outcome JSON leaves on the inherited pipe RESULT_FD (never as a file in the work directory, where the
notebook's code could forge it), and the worker makes itself non-dumpable before any kernel starts, so code in
the kernel (same user) cannot read its memory, environment or file descriptors through /proc or ptrace.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

__all__ = ["apply_limits", "execute", "make_undumpable"]

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


def make_undumpable() -> None:
    """prctl(PR_SET_DUMPABLE, 0) on Linux: /proc/<pid>/{mem,environ,fd} and ptrace of this process need privileges."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE = 4
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


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


def main(result_fd: int) -> int:
    """Read the JSON spec from stdin, become non-dumpable, apply its limits, execute, write the outcome to `result_fd`."""
    os.set_inheritable(result_fd, False)  # the kernel and its children never hold the result pipe
    spec = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the kernel inherits an empty stdin, not the spec's pipe
    os.close(null)
    make_undumpable()
    apply_limits(spec.get("limits") or {})
    outcome = execute(spec)
    with os.fdopen(result_fd, "w", encoding="utf-8") as fh:
        json.dump(outcome, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
