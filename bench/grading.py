"""What scoring costs: `twdl grade` on copies of each module's solution notebook (smoke profile, --jobs 2).

Scoring runs outside the submission: its kernel exports its claims (one more cell, counted in the submission's
`runtime_s`), then the grader's trusted scorer rebuilds them and runs the checks (`checks_s` in each
.grade.json). Per module, the same copies are graded with checks and with --no-checks, alternating; the cost
per submission is the median runtime with the export minus the median without, plus the median scorer time. A
scorer's start (importing torch, loading the data it needs) is paid once per grading thread and is counted in the
class's wall and CPU time. For module 2: a class of N submissions with --jobs 2, its wall time extrapolated
linearly to 300 submissions, and its CPU time (user + system of every process of the grading, kernels and
scorers included, sampled with psutil) divided by the 2 cores: what the same class needs on this machine when
nothing else runs. The load average during the runs is given: this machine's 2 cores are shared.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from twdl_tools.repo import notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("01_feedforward", "02_optimization", "03_regularization", "04_finetuning_lora")
EXTRA_TARGETS = {"01_feedforward": 2.0, "02_optimization": 2.0, "03_regularization": 2.0, "04_finetuning_lora": 5.0}
CLASS_MODULE = "02_optimization"
CLASS_SIZE, TARGET_MINUTES, OVERHEAD_TARGET = 300, 40.0, 10.0


def tree_cpu_seconds(process: subprocess.Popen, interval: float = 0.1) -> float:
    """CPU seconds (user + system) of `process` and all its descendants until it exits, sampled every `interval`.

    getrusage(RUSAGE_CHILDREN) misses processes that no ancestor waits for (kernels in a bubblewrap PID namespace,
    reaped by the namespace's init), so every descendant is polled; each one's last reading counts (up to
    `interval` of CPU per process may be missed at its end).
    """
    import psutil

    root, seen = psutil.Process(process.pid), {}
    while process.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for proc in tree:
            try:
                times = proc.cpu_times()
                seen[(proc.pid, proc.create_time())] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        time.sleep(interval)
    return sum(seen.values())


def grade(folder: Path, out: Path, checks: bool, module: str = CLASS_MODULE) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process) of one `twdl grade` of `folder` (smoke, --jobs 2)."""
    command = [sys.executable, "-m", "twdl_tools.cli", "grade", str(folder), "--module", module, "-p", "profile=smoke",
               "--jobs", "2", "--timeout", "3600", "--out", str(out)] + ([] if checks else ["--no-checks"])
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cpu = tree_cpu_seconds(process)
    output = process.communicate()[0]
    wall = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"twdl grade failed ({process.returncode}):\n{output.decode(errors='replace')[-3000:]}")
    return wall, cpu


def rows_of(out: Path) -> list[dict]:
    """The stored rows of a grading (one per submission)."""
    return [json.loads(p.read_text())["row"] for p in sorted((out / "executed").glob("*.grade.json"))]


def outputs_seconds(out: Path) -> float:
    """Seconds to write grades.csv, report.html, feedback/ and manual/ again from the stored rows."""
    from twdl_tools.grading.checkfile import load_check_file
    from twdl_tools.grading import write_outputs

    check_file = load_check_file(ROOT / "autograder" / f"{CLASS_MODULE}.py")
    rows = rows_of(out)
    start = time.perf_counter()
    write_outputs(rows, out, check_file, title="bench")
    return time.perf_counter() - start


def _module_cost(tmp: Path, module: str, copies: int, rounds: int, loads: list[float]) -> dict:
    """Median runtime without and with checks, and the scorer's median seconds, for `copies` copies of `module`."""
    folder = tmp / module
    folder.mkdir()
    for i in range(copies):
        shutil.copy(notebooks_dir(ROOT) / f"{module}.ipynb", folder / f"student{i:03d}.ipynb")
    runtimes: dict[bool, list[float]] = {True: [], False: []}
    scorer: list[float] = []
    for index in range(rounds):
        for checks in (False, True):
            out = tmp / f"out_{module}_{index}_{checks}"
            grade(folder, out, checks=checks, module=module)
            rows = rows_of(out)
            assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
            runtimes[checks] += [r["runtime_s"] for r in rows]
            scorer += [r["checks_s"] for r in rows if checks]
            loads.append(os.getloadavg()[0])
    without, with_export = statistics.median(runtimes[False]), statistics.median(runtimes[True])
    return {"without": without, "export": with_export - without, "scorer": statistics.median(scorer),
            "runs": len(runtimes[True])}


def run(quick: bool = False) -> pd.DataFrame:
    """Per module: copies graded with and without checks, alternating; then a module-2 class with checks."""
    copies, rounds, n_class = (1, 1, 2) if quick else (2, 2, 6)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        costs = {module: _module_cost(tmp, module, copies, rounds, loads) for module in MODULES}
        (tmp / "class").mkdir()
        for i in range(n_class):
            shutil.copy(notebooks_dir(ROOT) / f"{CLASS_MODULE}.ipynb", tmp / "class" / f"student{i:03d}.ipynb")
        class_wall, class_cpu = grade(tmp / "class", tmp / "out_class", checks=True)
        loads.append(os.getloadavg()[0])
        scored = rows_of(tmp / "out_class")
        assert all(r["status"] == "ok" for r in scored), [r["error"] for r in scored]
        tooling = outputs_seconds(tmp / "out_class") / len(scored)
    load = f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    rows = []
    for module, cost in costs.items():
        extra = cost["export"] + cost["scorer"]
        rows.append({
            "key": f"grading.extra.{module[:2]}",
            "comparison": f"module {module[:2]} smoke: seconds per submission without checks (original) and with the "
                          f"export cell ({cost['export']:+.2f} s) and the trusted scorer ({cost['scorer']:.2f} s) "
                          f"(helpers); medians of {cost['runs']} ({load})",
            "measure": "seconds", "unit": "s", "original": cost["without"], "helpers": cost["without"] + extra,
            "ratio": (cost["without"] + extra) / cost["without"], "target": f"<= +{EXTRA_TARGETS[module]:g} s",
            "met": extra <= EXTRA_TARGETS[module], "runs": cost["runs"]})
    two = costs[CLASS_MODULE]
    overhead = 100.0 * (two["export"] + two["scorer"] + tooling) / two["without"]
    minutes = class_wall * CLASS_SIZE / n_class / 60
    idle_minutes = class_cpu / n_class * CLASS_SIZE / min(2, os.cpu_count() or 1) / 60
    rows += [
        {"key": "grading.overhead",
         "comparison": f"scoring overhead per module-2 submission: export + scorer + feedback/manual/report writing "
                       f"({tooling:.3f} s each) / the submission without checks",
         "measure": "percent", "unit": "%", "original": float("nan"), "helpers": overhead, "ratio": float("nan"),
         "target": f"<= {OVERHEAD_TARGET:g} %", "met": overhead <= OVERHEAD_TARGET, "runs": two["runs"]},
        {"key": "grading.class_wall",
         "comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, measured wall: {n_class} graded in "
                       f"{class_wall:.0f} s, times {CLASS_SIZE}/{n_class} ({load})",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": minutes, "ratio": float("nan"),
         "target": f"< {TARGET_MINUTES:g} min", "met": minutes < TARGET_MINUTES, "runs": 1},
        {"key": "grading.class_idle",
         "comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, on this machine idle: "
                       f"{class_cpu / n_class:.1f} CPU s per submission x {CLASS_SIZE} / 2 cores",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": idle_minutes,
         "ratio": float("nan"), "target": f"< {TARGET_MINUTES:g} min", "met": idle_minutes < TARGET_MINUTES,
         "runs": 1},
    ]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
