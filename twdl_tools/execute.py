"""The one notebook executor: papermill in its own process tree, with a timeout and resource limits, keeping outputs.

`twdl run`, `twdl grade`, `twdl execute-references` and the tests all execute notebooks through `run_notebook`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twdl_helpers.claims import read_regular_file
from twdl_helpers.files import atomic_write
from twdl_helpers.records import read_records

from .repo import batch_environment
from .sandbox import Sandbox, use_sandbox

__all__ = ["ResourceLimits", "ExecutionResult", "run_notebook", "truncate_outputs", "kill_process_tree", "one_line"]

WORKER = Path(__file__).with_name("worker.py")  # run by path: it imports only the standard library and papermill
# The files of twdl_tools the sandbox shows the worker (read-only); nothing else of the repository is visible.
WORKER_FILES = (WORKER,)
TOKEN_VARIABLE = "TWDL_EXECUTION_TOKEN"
MAX_OUTCOME_BYTES = 16 * 2**20  # the worker's report on the result pipe (more is read and dropped)


@dataclass(frozen=True)
class ResourceLimits:
    """Limits set on the papermill process and inherited by its kernel (None or 0 = no limit)."""

    memory_mb: int | None = None  # RLIMIT_AS: virtual address space per process (importing torch alone maps ~3.5 GB)
    cpu_s: int | None = None  # RLIMIT_CPU: CPU seconds per process
    file_mb: int | None = None  # RLIMIT_FSIZE: largest file a process may write


@dataclass
class ExecutionResult:
    """What happened to one notebook: status ok | error | timeout, where it failed, its records and runtime."""

    status: str
    runtime_s: float
    error: str = ""
    cell_index: int | None = None  # index into the input notebook's cells (papermill's injected cell not counted)
    records: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    sandboxed: bool = False  # ran inside bubblewrap (twdl_tools.sandbox)
    appended: list[list[dict[str, Any]]] = field(default_factory=list)  # outputs of each `after_cells` cell
    appended_seconds: list[float] = field(default_factory=list)  # how long each took (timed by the worker)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of `text`, cut to `limit` characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[: max_chars // 2]
    tail = text[-max_chars // 4 :]
    return f"{head}\n[... {len(text) - len(head) - len(tail):,} characters cut by twdl ...]\n{tail}"


def truncate_outputs(nb: Any, max_chars: int = 100_000) -> int:
    """Cut every text output of `nb` longer than `max_chars` (in place; records are kept); return how many were cut."""
    cut = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text" in output:
                text = "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
                if len(text) > max_chars:
                    output["text"], cut = _cut(text, max_chars), cut + 1
            for mime, value in list(output.get("data", {}).items()):
                if mime.startswith("text/") and isinstance(value, (str, list)):
                    text = "".join(value) if isinstance(value, list) else value
                    if len(text) > max_chars:
                        output["data"][mime], cut = _cut(text, max_chars), cut + 1
            if output.get("output_type") == "error" and sum(map(len, output.get("traceback", []))) > max_chars:
                output["traceback"], cut = [_cut("\n".join(output["traceback"]), max_chars)], cut + 1
    return cut


def kill_process_tree(pid: int, token: str | None = None) -> int:
    """SIGKILL `pid`, its descendants, and every process of ours whose environment carries `token`; return the count.

    The kernel runs in its own session (jupyter_client uses start_new_session), so killing the worker's process
    group is not enough; the token also catches children that were re-parented after their parent exited.
    """
    import psutil

    victims: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(pid)
        victims[pid] = root
        victims.update({p.pid: p for p in root.children(recursive=True)})
    except psutil.NoSuchProcess:
        pass
    if token:
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me or proc.pid in victims:
                continue
            try:
                if proc.environ().get(TOKEN_VARIABLE) == token:
                    victims[proc.pid] = proc
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
                continue
    for proc in victims.values():
        try:
            proc.kill()  # SIGKILL on POSIX
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(list(victims.values()), timeout=5)
    return len(victims)


def _executed_cells(nb: Any) -> list:
    """The cells as they ran: without the error banner cells papermill adds after a failure."""
    return [c for c in nb.cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]


def _running_cell(nb: Any) -> int | None:
    """The cell papermill marked as running, else the last one it started (a dead kernel's cell is marked completed)."""
    started = None
    for index, cell in enumerate(_executed_cells(nb)):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("status") == "running":
            return index
        if meta.get("start_time"):
            started = index
    return started


def _input_index(nb: Any, index: int | None) -> int | None:
    """Map a cell index of the executed notebook to the input notebook (drop papermill's injected cell)."""
    if index is None or nb is None:
        return index
    cells = _executed_cells(nb)[:index]
    return index - sum(1 for cell in cells if "injected-parameters" in cell.get("metadata", {}).get("tags", []))


def _signal_message(returncode: int, limits: ResourceLimits) -> str:
    if returncode >= 0:
        return f"the execution process exited with code {returncode} without reporting a result"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    hints = {"SIGXFSZ": f"a file grew past the {limits.file_mb} MB limit", "SIGXCPU": f"CPU limit of {limits.cpu_s} s",
             "SIGKILL": "killed, possibly by the out-of-memory killer"}
    return f"the execution process was stopped by {name}" + (f" ({hints[name]})" if name in hints else "")


def _collect(fd: int, into: list[bytes]) -> None:
    """Read the worker's result pipe to its end (kept up to MAX_OUTCOME_BYTES), so the worker never blocks on it."""
    size = 0
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(65536):
            if size < MAX_OUTCOME_BYTES:
                into.append(chunk[: MAX_OUTCOME_BYTES - size])
            size += len(chunk)


def _start_worker(spec: dict[str, Any], env: dict[str, str], log: Any, box: Sandbox | None) -> tuple[subprocess.Popen, int]:
    """Start the worker (inside `box` when given); its spec goes on stdin; return it and our end of the result pipe."""
    read_end, write_end = os.pipe()
    try:
        argv = [sys.executable, str(WORKER), str(write_end)]
        if box is not None:
            argv, env = box.command(argv), box.environment()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, env=env,
                                start_new_session=True, cwd=spec["cwd"], pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    try:
        proc.stdin.write(json.dumps(spec, default=str).encode("utf-8"))  # never a file: the spec may hold hidden check code
        proc.stdin.close()
    except OSError:  # the worker (or bwrap) died before reading it: reported from its exit status and log
        pass
    return proc, read_end


@dataclass
class _Run:
    """One execution, prepared: where everything goes, the worker's spec, its environment and sandbox."""

    output_path: Path
    scratch_dir: Path  # ours: the worker's log
    run_dir: Path  # the worker's: the executed notebook as it is written (in the work directory when sandboxed)
    spec: dict[str, Any]
    env: dict[str, str]
    token: str  # marks every process of this run (the cleanup finds the re-parented ones by it)
    box: Sandbox | None
    submitted: bytes  # the input's bytes: in the sandbox the file lies where the notebook's code can replace it


@dataclass
class _Supervised:
    """What the supervision saw: timed out or not, the worker's exit code and report, the wall time."""

    timed_out: bool
    returncode: int
    outcome: dict[str, Any] | None
    runtime: float


def _prepare(input_path: Path, output_path: Path, parameters: dict[str, Any] | None, cwd: str | Path | None,
             limits: ResourceLimits, kernel: str | None, env: dict[str, str] | None, scratch: str | Path | None,
             sandboxed: bool, allow_errors: bool, after_cells: list[str] | None) -> _Run:
    """Folders, environment, sandbox and the worker's spec (the sandbox is checked before any folder is made)."""
    workdir = Path(cwd).resolve() if cwd else input_path.parent
    token = uuid.uuid4().hex
    child_env = {**(env if env is not None else batch_environment()), TOKEN_VARIABLE: token}
    box = None
    if sandboxed:
        shown = [*WORKER_FILES] + ([] if workdir in input_path.parents else [input_path])
        box = Sandbox(workdir, child_env, kernel, read_only=shown)
        box.check()  # raises now, before any folder is made
    scratch_parent = Path(scratch or output_path.parent)
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch_dir = Path(tempfile.mkdtemp(prefix=".twdl-exec-", dir=scratch_parent))
    run_dir = Path(tempfile.mkdtemp(prefix=".twdl-run-", dir=workdir)) if sandboxed else scratch_dir
    spec = {
        "input": str(input_path), "output": str(run_dir / "executed.ipynb"), "parameters": parameters or {},
        "cwd": str(workdir), "kernel": kernel, "limits": asdict(limits), "allow_errors": allow_errors,
        "after_cells": list(after_cells or []),
    }
    return _Run(output_path, scratch_dir, run_dir, spec, child_env, token, box, input_path.read_bytes())


def _supervise(run: _Run, timeout: float | None) -> _Supervised:
    """Start the worker, wait for it (at most `timeout`), then kill its whole process tree; read its report."""
    start = time.monotonic()
    timed_out = False
    outcome_bytes: list[bytes] = []
    with open(run.scratch_dir / "worker.log", "wb") as log:
        proc, result_fd = _start_worker(run.spec, run.env, log, run.box)
        reader = threading.Thread(target=_collect, args=(result_fd, outcome_bytes), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_process_tree(proc.pid, run.token)  # also removes anything the notebook left running
            proc.wait()
            reader.join(timeout=10)
    try:
        outcome = json.loads(b"".join(outcome_bytes).decode("utf-8")) if outcome_bytes else None
        outcome = outcome if isinstance(outcome, dict) and "status" in outcome else None
    except ValueError:
        outcome = None
    return _Supervised(timed_out, proc.returncode, outcome, time.monotonic() - start)


def _status(seen: _Supervised, executed: Any, timeout: float | None, limits: ResourceLimits) -> tuple[str, str, int | None]:
    """(status, error, failing cell in the input notebook's numbering) from what the supervision saw."""
    outcome = seen.outcome
    if seen.timed_out:
        cell = _running_cell(executed) if executed is not None else None
        error = f"timed out after {timeout:g} s" + (f" while running cell {_input_index(executed, cell)}"
                                                    if cell is not None else "")
        return "timeout", error, _input_index(executed, cell)
    if outcome is None:
        cell = _input_index(executed, _running_cell(executed)) if executed is not None else None
        return "error", _signal_message(seen.returncode, limits), cell
    status, error = ("ok", "") if outcome["status"] == "ok" else ("error", one_line(outcome["error"]))
    cell = outcome.get("cell_index")
    if cell is None and executed is not None and status != "ok":
        cell = _running_cell(executed)
    cell = _input_index(executed, cell)
    if outcome["status"] == "died" and cell is not None:
        error += f" while running cell {cell}"
    return status, error, cell


def _interpret(run: _Run, seen: _Supervised, timeout: float | None, limits: ResourceLimits,
               max_output_chars: int) -> ExecutionResult:
    """Read the executed notebook back (never through a link), decide the status, publish notebook and log."""
    import nbformat

    executed = None
    max_bytes = limits.file_mb * 2**20 if limits.file_mb else None
    try:  # written inside the sandbox: never through a symlink, only a regular file
        executed = nbformat.reads(read_regular_file(run.run_dir, "executed.ipynb", max_bytes).decode("utf-8"),
                                  as_version=4)
    except Exception:  # never written, cut mid-write by a kill, or not a plain file
        pass
    status, error, cell = _status(seen, executed, timeout, limits)
    if executed is None:
        error = (error + "; " if error else "") + "no executed notebook was saved, the input is kept instead"
        executed = nbformat.reads(run.submitted.decode("utf-8"), as_version=4)
    truncate_outputs(executed, max_output_chars)
    try:
        records = read_records(executed)
    except Exception as err:  # a forged or damaged record bundle
        records, error = {}, error or f"could not read the recorded values: {one_line(str(err))}"
    atomic_write(run.output_path, nbformat.writes(executed))
    log_text = (run.scratch_dir / "worker.log").read_bytes()[-20_000:].decode("utf-8", "replace")
    if status != "ok" and log_text.strip():
        atomic_write(run.output_path.with_suffix(".log"), log_text)
    else:
        run.output_path.with_suffix(".log").unlink(missing_ok=True)
    _remove_tree(run.scratch_dir)
    _remove_tree(run.run_dir)
    appended = seen.outcome.get("appended", []) if seen.outcome else []
    seconds = [float(t) for t in seen.outcome.get("appended_seconds", [])] if seen.outcome else []
    return ExecutionResult(status, round(seen.runtime, 3), error, cell, records, str(run.output_path),
                           run.box is not None, appended, seconds)


def run_notebook(
    input_path: str | Path,
    output_path: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    cwd: str | Path | None = None,
    timeout: float | None = None,
    limits: ResourceLimits = ResourceLimits(),
    kernel: str | None = None,
    env: dict[str, str] | None = None,  # the kernel's whole environment (default: a batch environment)
    max_output_chars: int = 100_000,
    scratch: str | Path | None = None,
    sandbox: str | bool = False,  # "on" | "auto" | "off" (or a bool): confine the worker with bubblewrap
    allow_errors: bool = False,
    after_cells: list[str] | None = None,
) -> ExecutionResult:
    """Execute `input_path` with papermill in a separate process (own session, limits, timeout); write `output_path`.

    The executed notebook (partial when a cell fails, the kernel dies or time runs out) is written atomically, with
    text outputs longer than `max_output_chars` cut. Never raises for problems inside the notebook. With a sandbox,
    the worker sees `cwd` (writable) and the runtime (read-only) only, and writes the executed notebook into `cwd`;
    `sandbox="on"` raises SandboxUnavailable where bubblewrap cannot run.
    `allow_errors` runs every cell even after one raised (the status is still "error", naming the first one).
    `after_cells` are run in the same kernel after the last cell; they reach the worker on its stdin, never appear
    in the executed notebook, and their outputs come back only in `ExecutionResult.appended`.
    """
    run = _prepare(Path(input_path).resolve(), Path(output_path).resolve(), parameters, cwd, limits, kernel, env,
                   scratch, use_sandbox(sandbox), allow_errors, after_cells)
    return _interpret(run, _supervise(run, timeout), timeout, limits, max_output_chars)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
