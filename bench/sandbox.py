"""Grading sandbox overhead: `twdl grade` of a trivial notebook with and without bubblewrap, per submission."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pandas as pd
from nbformat.v4 import new_code_cell, new_notebook

from twdl_tools.grading import grade_submission, plan_tasks
from twdl_tools.sandbox import Sandbox, sandbox_support

TARGET_OVERHEAD_S = 1.0
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def trivial_notebook(path: Path) -> Path:
    """A parameters cell and one print: what is timed is the grading machinery, not the student's code."""
    cells = [new_code_cell("x = 1", metadata={"tags": ["parameters"]}), new_code_cell("print(x + 1)")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC}), str(path))
    return path


def grading_seconds(folder: Path, mode: str, index: int) -> float:
    """Wall-clock seconds of grade_submission for one trivial submission (everything the grader does for it)."""
    source = trivial_notebook(folder / "subs" / f"s{index}.ipynb")
    task = plan_tasks([(source, source.name)], folder / f"out-{mode}", {}, timeout=240,
                      env={"OMP_NUM_THREADS": "1"}, sandbox=mode)[0]
    start = time.perf_counter()
    row = grade_submission(task)
    seconds = time.perf_counter() - start
    if row["status"] != "ok" or row.get("sandboxed") != (mode == "on"):
        raise RuntimeError(f"the trivial notebook did not grade as expected with --sandbox {mode}: {row}")
    return seconds


def empty_sandbox_seconds(folder: Path) -> float:
    """Seconds to start and leave an empty sandbox (`bwrap ... true`) with the grader's view."""
    work = folder / "empty-work"
    work.mkdir(exist_ok=True)
    box = Sandbox(work, {"OMP_NUM_THREADS": "1"}, "python3")
    command = box.command(["/bin/true"])
    start = time.perf_counter()
    subprocess.run(command, env=box.environment(), cwd=work, check=True)
    return time.perf_counter() - start


def run(quick: bool = False) -> pd.DataFrame:
    """Median over `runs` submissions each way, alternating with and without the sandbox (shared-machine drift)."""
    support = sandbox_support()
    if not support.available:
        raise SystemExit(f"bench sandbox: no sandbox on this machine: {support.reason}")
    runs = 3 if quick else 9
    times: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="twdl-bench-sandbox-") as tmp:
        folder = Path(tmp)
        grading_seconds(folder, "off", 999)  # warm the file cache and the kernelspec lookup once
        for index in range(runs):
            for mode in ("off", "on") if index % 2 == 0 else ("on", "off"):
                times[mode].append(grading_seconds(folder, mode, index))
        empty = [empty_sandbox_seconds(folder) for _ in range(runs)]
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    measured = [
        ("`twdl grade` of a trivial notebook, `--sandbox off` (seconds per submission)", off, "", None),
        ("`twdl grade` of a trivial notebook, `--sandbox on` (seconds per submission)", on, "", None),
        ("sandbox overhead per submission (difference of the medians)", on - off, f"<= {TARGET_OVERHEAD_S:g} s",
         bool(on - off <= TARGET_OVERHEAD_S)),
        (f"starting and leaving an empty sandbox ({support.version})", statistics.median(empty), "", None),
    ]
    return pd.DataFrame([
        {"comparison": name, "measure": "seconds", "unit": "s", "original": float("nan"), "helpers": value,
         "ratio": float("nan"), "target": target, "met": met, "runs": runs}
        for name, value, target, met in measured
    ])


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
