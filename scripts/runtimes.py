"""Measure how long each module notebook takes on this machine's CPU and record it in twdl_helpers/runtimes.json,
the file the notebooks' first cell shows (`twdl.runtime_estimate`). GPU times come from `make gpu-check`.

Usage:
  python scripts/runtimes.py --profile smoke [--modules 01,02,03,04]      # runs `twdl run` per module
  python scripts/runtimes.py --profile smoke --from-summary runs/summary.csv --command "twdl run 01 ..."
      (records the runtime_s column of a `twdl run` summary that was already produced by that command)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ROOT / "twdl_helpers" / "runtimes.json"
NOT_MEASURED = {
    "gpu.smoke": "not measured: no GPU was available (the GPU row comes from `make gpu-check`)",
    "gpu.full": "not measured: no GPU was available (the GPU row comes from `make gpu-check`)",
    "cpu.full": "not measured yet: `python scripts/runtimes.py --profile full` records it",
    "cpu.smoke": "not measured yet: `python scripts/runtimes.py --profile smoke` records it",
}


def cpu_description() -> str:
    """e.g. "AMD EPYC 7B13, 2 cores": the CPU model and the cores this process may use."""
    model = "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores"


def record(summary: pd.DataFrame, profile: str, command: str, path: Path = RUNTIMES) -> dict:
    """Put the `runtime_s` of every notebook that finished ok into the runtimes file (CPU, `profile`)."""
    from twdl_helpers.files import atomic_write
    from twdl_helpers.runtimes import read_runtimes

    runtimes = read_runtimes(path)
    runtimes["not_measured"] = {**NOT_MEASURED, **runtimes.get("not_measured", {})}
    date = datetime.date.today().isoformat()
    for row in summary.itertuples():
        if row.status != "ok":
            continue
        entry = {"seconds": round(float(row.runtime_s), 1), "machine": cpu_description(), "date": date,
                 "command": command.replace("{notebook}", row.notebook)}
        runtimes.setdefault("modules", {}).setdefault(row.notebook, {}).setdefault("cpu", {})[profile] = entry
    atomic_write(path, json.dumps(runtimes, indent=1, sort_keys=True) + "\n")
    return runtimes


def main(argv: list[str] | None = None) -> int:
    """Run (or read) the timings and record them."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=["smoke", "full"], required=True)
    p.add_argument("--modules", default="01,02,03,04")
    p.add_argument("--from-summary", default=None, help="a summary.csv written by `twdl run`")
    p.add_argument("--command", default=None, help="the command that produced --from-summary")
    a = p.parse_args(argv)
    if a.from_summary:
        if not a.command:
            p.error("--from-summary needs --command (what produced it, shown beside the numbers)")
        record(pd.read_csv(a.from_summary), a.profile, a.command)
        return 0
    with tempfile.TemporaryDirectory() as out:
        for module in a.modules.split(","):
            subprocess.run([sys.executable, "-m", "twdl_tools.cli", "run", module, "--profile", a.profile,
                            "-p", "device=cpu", "--output-dir", out], cwd=ROOT, check=False)
        summary = pd.read_csv(Path(out) / "summary.csv")
    record(summary, a.profile, f"twdl run {{notebook}} --profile {a.profile} -p device=cpu (OMP_NUM_THREADS="
                                f"{os.environ.get('OMP_NUM_THREADS', 'unset')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
