"""Run one notebook with papermill under resource limits; started as a script (`python worker.py RESULT_FD`).

This file is executed by path, not imported through the package, so it loads only the standard library and
papermill (not torch): the limits it sets on itself are inherited by the kernel that papermill starts.

The contract with the executor (twdl_tools/execute.py):
* the spec arrives as one JSON object on STDIN (never as a file: it may hold a grader's hidden checks);
* the outcome leaves as one JSON object on the inherited pipe RESULT_FD (never as a file in the work directory,
  where the notebook's code could forge it); the worker marks it non-inheritable first, so the kernel and
  whatever the notebook starts never hold it, and makes itself non-dumpable before any kernel starts, so code
  in the kernel (same user) cannot read its memory, environment or descriptors through /proc or ptrace;
* spec keys: input, output (the executed notebook, written as it runs), parameters, cwd, kernel, limits,
  allow_errors (run every cell even after one fails), after_cells (sources run in the same kernel after the
  notebook's last cell, with store_history=False; they are never added to the saved notebook, and their outputs
  return only inside the outcome, as "appended", with the seconds each took, as "appended_seconds").
"""
from __future__ import annotations

import json
import os
import sys
import time
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


def _engine(after_cells: list[str], appended: list[list[dict]], seconds: list[float]):
    """A papermill engine whose client runs `after_cells` after the notebook, outside the saved notebook."""
    from nbclient.exceptions import CellExecutionError
    from nbformat.v4 import new_code_cell, new_notebook
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class Client(PapermillNotebookClient):
        def papermill_execute_cells(self):
            super().papermill_execute_cells()
            notebook = self.nb
            for source in after_cells:
                started = time.monotonic()
                cell = new_code_cell(source)
                self.nb = new_notebook(cells=[cell])  # the saved notebook (nb_man.nb) never sees this cell
                try:
                    self.execute_cell(cell, 0, store_history=False)
                except CellExecutionError:
                    pass  # its error output is kept in cell.outputs
                finally:
                    self.nb = notebook
                appended.append([dict(output) for output in cell.outputs])
                seconds.append(round(time.monotonic() - started, 4))

    class Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                                        startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                                        log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            return Client(nb_man, **final_kwargs).execute()

    return Engine


def execute(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute spec["input"] into spec["output"] with papermill; return what happened (status, cell_index, error)."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    from papermill.engines import papermill_engines

    appended: list[list[dict]] = []
    seconds: list[float] = []
    papermill_engines.register("twdl", _engine(list(spec.get("after_cells") or []), appended, seconds))
    outcome: dict[str, Any] = {"status": "ok", "cell_index": None, "error": ""}
    try:
        pm.execute_notebook(
            spec["input"], spec["output"], parameters=spec.get("parameters") or {}, cwd=spec.get("cwd"),
            kernel_name=spec.get("kernel") or None, progress_bar=False, request_save_on_cell_execute=True,
            autosave_cell_every=10, start_timeout=120, engine_name="twdl",
            allow_errors=bool(spec.get("allow_errors")),
        )
    except pm.PapermillExecutionError as err:
        outcome.update(status="error", cell_index=err.cell_index, error=f"{err.ename}: {err.evalue}")
    except DeadKernelError as err:
        detail = str(err).strip()
        detail = "" if detail.lower() in ("", "kernel died") else f": {detail}"
        outcome.update(status="died", error=f"the kernel died (it exited or crashed, e.g. os._exit or out of memory){detail}")
    except Exception as err:  # anything else papermill or the kernel manager raised
        outcome.update(status="error", error=f"{type(err).__name__}: {err}", detail=traceback.format_exc(limit=5))
    outcome["appended"] = appended
    outcome["appended_seconds"] = seconds
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
        json.dump(outcome, fh, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
