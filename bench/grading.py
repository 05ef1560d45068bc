"""What scoring costs: `twdl grade` on copies of module 2's solution notebook (smoke profile, --jobs 2).

Measures (1) the check cell's own time against the student cells' time in the same runs (each submission's
`checks_s` and `runtime_s` from its .grade.json), plus the grader-side outputs (feedback, manual answers,
report) per submission; (2) the same two submissions graded with and without checks, alternating, twice each
(wall time: on a shared machine the noise can exceed the effect); (3) a class of N submissions with --jobs 2:
its wall time extrapolated linearly to 300 submissions (the pool keeps both slots busy, kernel start-up is part
of each submission), and its CPU time (user + system of every process of the grading, kernels included,
sampled with psutil) divided by the 2 cores: what the same class needs on this machine when nothing else runs. The load average during the runs is given: this machine's 2 cores are shared.
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
SOLUTION = notebooks_dir(ROOT) / "02_optimization.ipynb"
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


def grade(folder: Path, out: Path, checks: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process) of one `twdl grade` of `folder` (module 2, smoke, --jobs 2)."""
    command = [sys.executable, "-m", "twdl_tools.cli", "grade", str(folder), "--module", "02", "-p", "profile=smoke",
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
    from twdl_tools.grading.grader import write_outputs

    check_file = load_check_file(ROOT / "autograder" / "02_optimization.py")
    rows = rows_of(out)
    start = time.perf_counter()
    write_outputs(rows, out, check_file, title="bench")
    return time.perf_counter() - start


def run(quick: bool = False) -> pd.DataFrame:
    """Grade N copies with checks (N = 6, quick 2), then 2 copies with and without checks, alternating."""
    n_class, rounds = (2, 1) if quick else (6, 2)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, count in (("class", n_class), ("pair", 2)):
            (tmp / name).mkdir()
            for i in range(count):
                shutil.copy(SOLUTION, tmp / name / f"student{i:03d}.ipynb")
        class_wall, class_cpu = grade(tmp / "class", tmp / "out_class", checks=True)
        loads.append(os.getloadavg()[0])
        runtimes: dict[bool, list[float]] = {True: [], False: []}
        for index in range(rounds):
            for checks in (False, True):
                out = tmp / f"out_pair_{index}_{checks}"
                grade(tmp / "pair", out, checks=checks)
                runtimes[checks] += [r["runtime_s"] for r in rows_of(out)]
                loads.append(os.getloadavg()[0])
        scored = rows_of(tmp / "out_class")
        assert all(r["status"] == "ok" for r in scored), [r["error"] for r in scored]
        ratios = [100.0 * r["checks_s"] / (r["runtime_s"] - r["checks_s"]) for r in scored]
        tooling = outputs_seconds(tmp / "out_class") / len(scored)
        overhead = statistics.median(100.0 * (r["checks_s"] + tooling) / (r["runtime_s"] - r["checks_s"])
                                     for r in scored)
        per_submission = statistics.median(r["runtime_s"] for r in scored)
    load = f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    minutes = class_wall * CLASS_SIZE / n_class / 60
    idle_minutes = class_cpu / n_class * CLASS_SIZE / min(2, os.cpu_count() or 1) / 60
    with_checks, without = statistics.median(runtimes[True]), statistics.median(runtimes[False])
    return pd.DataFrame([
        {"comparison": f"check cell time / student cells time, module 2 smoke (median of {len(scored)}; {load})",
         "measure": "percent", "unit": "%", "original": float("nan"), "helpers": statistics.median(ratios),
         "ratio": float("nan"), "target": "", "met": None, "runs": len(scored)},
        {"comparison": f"scoring overhead per submission: check cell + feedback/manual/report writing "
                       f"({tooling:.3f} s each) / student cells (median of {len(scored)})",
         "measure": "percent", "unit": "%", "original": float("nan"), "helpers": overhead, "ratio": float("nan"),
         "target": f"<= {OVERHEAD_TARGET:g} %", "met": overhead <= OVERHEAD_TARGET, "runs": len(scored)},
        {"comparison": f"submission runtime without checks (original) vs with checks (helpers): median of "
                       f"{len(runtimes[True])} each, gradings alternating ({load})",
         "measure": "seconds", "unit": "s", "original": without, "helpers": with_checks,
         "ratio": with_checks / without, "target": "", "met": None, "runs": len(runtimes[True])},
        {"comparison": f"median submission runtime with checks (kernel start included; {load})",
         "measure": "seconds", "unit": "s", "original": float("nan"), "helpers": per_submission,
         "ratio": float("nan"), "target": "", "met": None, "runs": len(scored)},
        {"comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, measured wall: {n_class} graded in "
                       f"{class_wall:.0f} s, times {CLASS_SIZE}/{n_class} ({load})",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": minutes, "ratio": float("nan"),
         "target": f"< {TARGET_MINUTES:g} min", "met": minutes < TARGET_MINUTES, "runs": 1},
        {"comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, on this machine idle: "
                       f"{class_cpu / n_class:.1f} CPU s per submission x {CLASS_SIZE} / 2 cores",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": idle_minutes,
         "ratio": float("nan"), "target": f"< {TARGET_MINUTES:g} min", "met": idle_minutes < TARGET_MINUTES,
         "runs": 1},
    ])


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
