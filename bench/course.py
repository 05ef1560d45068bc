"""Whole-course smoke run: `twdl run all --profile smoke` wall time with --jobs 1 and --jobs 2."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 360.0


def timed_run(jobs: int, modules: str) -> float:
    """Seconds for one `twdl run` of `modules` with `jobs` parallel notebooks; raises if a notebook failed."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "twdl_tools.cli", "run", modules, "--profile", "smoke",
                        "--jobs", str(jobs), "--output-dir", out], cwd=ROOT, check=True)
        return time.perf_counter() - start


def run(quick: bool = False) -> pd.DataFrame:
    """One timed run per --jobs setting (each is minutes long); quick runs module 1 alone."""
    modules = "01" if quick else "all"
    rows = []
    seconds = {jobs: timed_run(jobs, modules) for jobs in (1, 2)}
    for jobs, value in seconds.items():
        rows.append({
            "key": f"jobs{jobs}",
            "comparison": f"`twdl run {modules} --profile smoke --jobs {jobs}` (wall time, kernel starts included)",
            "measure": "seconds", "unit": "s", "original": float("nan"), "helpers": value,
            "ratio": float("nan"), "target": "< 360 s" if modules == "all" else "",
            "met": (value < TARGET_SECONDS) if modules == "all" else None, "runs": 1,
        })
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
