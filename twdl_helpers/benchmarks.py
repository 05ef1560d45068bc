"""`twdl bench`: run the bench/ scripts and write docs/benchmarks.md with the machine description."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

__all__ = ["machine_description", "median_time", "BENCH_COLUMNS"]

BENCH_COLUMNS = ["comparison", "measure", "unit", "original", "helpers", "ratio", "target", "met", "runs"]
ORDER = ["covertype", "mnist", "animal_faces", "lora", "course"]


def median_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall-clock seconds of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_description() -> dict[str, str]:
    """CPU model, cores, memory, Python, torch and GPU of this machine."""
    import psutil
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "CPU": cpu, "cores": str(os.cpu_count()), "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "Python": platform.python_version(), "torch": torch.__version__, "GPU": gpu, "OS": platform.platform(),
    }


def _load(script: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_scripts(folder: Path, only: list[str] | None = None) -> list[Path]:
    """The benchmark scripts in `folder` that expose run(), in the report's order."""
    found = {p.stem: p for p in folder.glob("*.py") if not p.stem.startswith(("original_", "_"))
             and "def run(" in p.read_text()}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    if only:
        unknown = sorted(set(only) - set(found))
        if unknown:
            raise SystemExit(f"unknown benchmark(s) {unknown}; available: {names}")
        names = [n for n in names if n in only]
    return [found[n] for n in names]


def render(results: dict[str, dict], machine: dict[str, str]) -> str:
    """The markdown page: machine, then one table per script with the date it was measured."""
    import pandas as pd

    lines = ["# Benchmarks", "",
             "Measured by `twdl bench` (`make bench`); every figure is the median over the repeated runs "
             "given in its row. Ratios say how many times better the helpers are than the original pipeline "
             "(rewritten from the course specification in `bench/`). `twdl bench NAME` re-measures one "
             "table; the others are kept from their last run (their date is given).", "",
             "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    for name, result in results.items():
        table = pd.DataFrame(result["rows"], columns=BENCH_COLUMNS)
        note = f"Measured {result['date']}" + (" in quick mode (reduced sizes: not for quoting)" if result["quick"]
                                               else "") + (f" on {result['cpu']}" if result.get("cpu") else "") + "."
        lines += ["", f"## {name}", "", note, "", table.to_markdown(index=False, floatfmt=".4g")]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl bench`."""
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all in bench/)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the scripts work")
    parser.add_argument("--bench-dir", default="bench", help="folder of the benchmark scripts")
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to write")


def bench_main(args: argparse.Namespace) -> int:
    """Run the benchmark scripts, keep each table in bench/results/, and write the markdown page (atomically)."""
    import pandas as pd

    folder = Path(args.bench_dir)
    if not folder.is_dir():
        raise SystemExit(f"no benchmark folder at {folder.resolve()}; run from the repository root or pass --bench-dir")
    results_dir = folder / "results"
    machine = machine_description()
    for script in bench_scripts(folder, args.names):
        print(f"== {script.stem}", flush=True)
        table = _load(script).run(quick=args.quick)
        missing = set(BENCH_COLUMNS) - set(table.columns)
        if missing:
            raise SystemExit(f"{script} returned a table without columns {sorted(missing)}")
        print(table.to_markdown(index=False, floatfmt=".4g"), flush=True)
        result = {"date": dt.date.today().isoformat(), "quick": args.quick, "cpu": machine["CPU"],
                  "rows": json.loads(pd.DataFrame(table)[BENCH_COLUMNS].to_json(orient="values"))}
        _write_atomic(results_dir / f"{script.stem}.json", json.dumps(result, indent=1))
    saved = [results_dir / f"{script.stem}.json" for script in bench_scripts(folder)]
    results = {path.stem: json.loads(path.read_text()) for path in saved if path.is_file()}
    gpu = results_dir / "gpu.md"  # the GPU section, written by scripts/gpu_check.py (`make gpu-check`)
    _write_atomic(Path(args.out), render(results, machine) + ("\n" + gpu.read_text() if gpu.is_file() else ""))
    print(f"wrote {args.out}")
    return 0
