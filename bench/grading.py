"""What scoring costs: `twdl grade` on copies of each module's solution notebook (smoke profile, --jobs 2).

Scoring runs outside the submission, in two parts. (1) Its kernel exports its claims: one more cell, timed by the
trusted worker (`export_s` in each .grade.json). (2) The grader's scorer rebuilds the claims and runs the checks.
A scorer is long-lived: it starts once per grading thread (Python, torch and the helpers; the language-model
libraries for module 4) and loads each data set once, then every submission costs only its own checks. So the
scorer is measured on the claims a grading collected: one cold job (what a thread pays once) and then the same
job again, warm (what every further submission pays). Per module: the cost per submission in a class of 300 on
2 grading threads is the median export time + the warm scorer time + the once-per-thread cost spread over the
150 submissions each thread grades. For module 2, a class with --jobs 2 is graded at two sizes: the difference
gives the time per further submission (wall and CPU: user + system of every process of the grading, kernels and
scorers included, sampled with psutil), the rest is the fixed cost of a grading (the data view, the scorers'
start, the outputs); both make the estimate for 300. The load average during the runs is given: this machine's
2 cores are shared.
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


def _parameters(module: str) -> dict:
    """The parameters the module's notebook runs with when graded here (its defaults, the smoke profile)."""
    from twdl_helpers.params import run_parameters

    return run_parameters(notebooks_dir(ROOT) / f"{module}.ipynb", {"profile": "smoke"})


def _scorer_cost(out: Path, module: str, repeats: int = 3) -> dict[str, float]:
    """One submission's collected claims scored by a fresh scorer: the cold job, then `repeats` warm ones."""
    from twdl_tools.grading.checkfile import load_check_file
    from twdl_tools.grading.scorer import Scorer, claims_job

    row = rows_of(out)[0]
    check_file = load_check_file(ROOT / "autograder" / f"{module}.py")
    built = sorted((out / ".twdl" / "views").glob("*/ready"))  # the data view this grading built, if any
    view = {part: str(built[0].parent / part) for part in ("mirror", "cache", "withheld")} if built else {}
    job = claims_job(out / ".twdl" / "claims" / row["submission"], check_file, _parameters(module), view, 120, [])
    scorer = Scorer()
    try:
        cold = scorer.score(job, timeout=600)
        warm = [scorer.score(job, timeout=600)["seconds"] for _ in range(repeats)]
    finally:
        scorer.close()
    assert cold["results"] is not None and all(r["passed"] for r in cold["results"]), cold.get("problem")
    once = cold.get("startup_s", 0.0) + cold["import_s"] + max(0.0, cold["seconds"] - statistics.median(warm))
    return {"warm": statistics.median(warm), "once": once}


def _module_cost(tmp: Path, module: str, copies: int, loads: list[float]) -> dict:
    """Runtimes without checks and with them, the export cell's time, and the scorer's costs, for `module`."""
    folder = tmp / module
    folder.mkdir()
    for i in range(copies):
        shutil.copy(notebooks_dir(ROOT) / f"{module}.ipynb", folder / f"student{i:03d}.ipynb")
    rows = {}
    for checks in (False, True):
        out = tmp / f"out_{module}_{checks}"
        grade(folder, out, checks=checks, module=module)
        rows[checks] = rows_of(out)
        assert all(r["status"] == "ok" for r in rows[checks]), [r["error"] for r in rows[checks]]
        loads.append(os.getloadavg()[0])
    scorer = _scorer_cost(tmp / f"out_{module}_True", module)
    loads.append(os.getloadavg()[0])
    return {"without": statistics.median(r["runtime_s"] for r in rows[False]),
            "export": statistics.median(r["export_s"] for r in rows[True]), **scorer, "runs": copies}


def run(quick: bool = False) -> pd.DataFrame:
    """Per module: copies graded without and with checks, the scorer measured cold and warm; a module-2 class at
    two sizes."""
    copies, small, large = (1, 1, 2) if quick else (2, 2, 10)
    per_thread = CLASS_SIZE / 2
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        costs = {module: _module_cost(tmp, module, copies, loads) for module in MODULES}
        classes = {}
        for n in (small, large):
            (tmp / f"class{n}").mkdir()
            for i in range(n):
                shutil.copy(notebooks_dir(ROOT) / f"{CLASS_MODULE}.ipynb", tmp / f"class{n}" / f"student{i:03d}.ipynb")
            classes[n] = grade(tmp / f"class{n}", tmp / f"out_class{n}", checks=True)
            loads.append(os.getloadavg()[0])
        tooling = outputs_seconds(tmp / f"out_class{large}") / large
    load = f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    rows = []
    for module, cost in costs.items():
        extra = cost["export"] + cost["warm"] + cost["once"] / per_thread
        rows.append({
            "key": f"grading.extra.{module[:2]}",
            "comparison": f"module {module[:2]} smoke: seconds per submission without checks (original), and with "
                          f"the export cell ({cost['export']:.2f} s), the scorer's checks ({cost['warm']:.2f} s) and "
                          f"its once-per-thread start ({cost['once']:.1f} s / {per_thread:.0f}) (helpers); "
                          f"medians of {cost['runs']} ({load})",
            "measure": "seconds", "unit": "s", "original": cost["without"], "helpers": cost["without"] + extra,
            "ratio": (cost["without"] + extra) / cost["without"], "target": f"<= +{EXTRA_TARGETS[module]:g} s",
            "met": extra <= EXTRA_TARGETS[module], "runs": cost["runs"]})
    two = costs[CLASS_MODULE]
    overhead = 100.0 * (two["export"] + two["warm"] + two["once"] / per_thread + tooling) / two["without"]
    (wall_s, cpu_s), (wall_l, cpu_l) = classes[small], classes[large]
    wall_each, cpu_each = (wall_l - wall_s) / (large - small), (cpu_l - cpu_s) / (large - small)
    minutes = (wall_s - small * wall_each + CLASS_SIZE * wall_each) / 60
    idle_minutes = (cpu_s - small * cpu_each + CLASS_SIZE * cpu_each) / min(2, os.cpu_count() or 1) / 60
    rows += [
        {"key": "grading.overhead",
         "comparison": f"scoring overhead per module-2 submission: export + scorer + feedback/manual/report writing "
                       f"({tooling:.3f} s each) / the submission without checks",
         "measure": "percent", "unit": "%", "original": float("nan"), "helpers": overhead, "ratio": float("nan"),
         "target": f"<= {OVERHEAD_TARGET:g} %", "met": overhead <= OVERHEAD_TARGET, "runs": two["runs"]},
        {"key": "grading.class_wall",
         "comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, wall: {small} graded in {wall_s:.0f} s and "
                       f"{large} in {wall_l:.0f} s, so {wall_each:.1f} s per further submission and "
                       f"{wall_s - small * wall_each:.0f} s fixed ({load})",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": minutes, "ratio": float("nan"),
         "target": f"< {TARGET_MINUTES:g} min", "met": minutes < TARGET_MINUTES, "runs": 2},
        {"key": "grading.class_idle",
         "comparison": f"{CLASS_SIZE} module-2 submissions, smoke, --jobs 2, on this machine idle: {cpu_each:.1f} CPU s "
                       f"per further submission and {cpu_s - small * cpu_each:.0f} CPU s fixed, / 2 cores",
         "measure": "minutes", "unit": "min", "original": float("nan"), "helpers": idle_minutes,
         "ratio": float("nan"), "target": f"< {TARGET_MINUTES:g} min", "met": idle_minutes < TARGET_MINUTES,
         "runs": 2},
    ]
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
