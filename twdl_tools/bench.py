"""`twdl bench`: run the bench/ scripts and write docs/benchmarks.md with the machine description."""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
from pathlib import Path

from twdl_helpers.files import atomic_write

from .figures import BENCH_COLUMNS, render_files, result_rows
from .repo import batch_environment, find_root

__all__ = ["machine_description", "load_results"]

ORDER = ["covertype", "covertype_speed", "mnist", "animal_faces", "lora", "lm_defects", "course"]


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


def load_results(folder: Path) -> dict[str, dict]:
    """Every saved benchmark table in `folder` (bench/results), by script name, in the report's order.

    `gpu.json` (written by scripts/gpu_check.py, `make gpu-check`) is not a table: its section is `gpu.md`.
    """
    found = {path.stem: json.loads(path.read_text()) for path in sorted(Path(folder).glob("*.json"))}
    found = {name: result for name, result in found.items() if isinstance(result, dict) and "rows" in result}
    return {name: found[name] for name in [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))}


def benchmarks_page(folder: Path) -> str:
    """docs/benchmarks.md: the tables of every saved result in `folder`, then the GPU section (gpu.md) if any."""
    gpu = Path(folder) / "gpu.md"
    return render(load_results(folder)) + ("\n" + gpu.read_text() if gpu.is_file() else "")


def render(results: dict[str, dict]) -> str:
    """The markdown page from the saved results alone: what the tables mean, the machine of the latest run, then
    one table per script with when and where it ran (so the page can be regenerated and checked anywhere)."""
    import pandas as pd

    lines = ["# Benchmarks", "",
             "Measured by `twdl bench` (`make bench`); every figure is the median over the repeated runs "
             "given in its row. \"Original\" is the original course's own code path, reproduced in `bench/original_*.py`; "
             "ratios say how many times better the helpers are. `twdl bench NAME` re-measures one table; the others "
             "are kept from their last run (the date, device and machine load are given under each table). "
             "Timings come from a shared machine: compare the two columns of one row (measured in alternation, "
             "under the same load), not rows measured on different days.", ""]
    targets = [(name, row) for name, result in results.items() for row in result_rows(result) if row.get("target")]
    if targets:
        lines += ["## Targets", "", "| benchmark | comparison | ratio | target | met | short by |", "|---|---|---|---|---|---|"]
        for name, row in targets:
            wanted = _target_ratio(row["target"])
            short = (f"{100 * (1 - row['ratio'] / wanted):.0f} %" if wanted and row.get("met") is False
                     and row.get("ratio") else "")
            ratio = f"{row['ratio']:.3g}" if isinstance(row.get("ratio"), (int, float)) else ""
            lines.append(f"| {name} | {row['comparison']} | {ratio} | {row['target']} | {row['met']} | {short} |")
        if any(row.get("met") is False for _, row in targets):
            lines += ["", "Why a target is missed, measured: " + "; ".join(
                f"{name}: {WHY[name]}" for name in dict.fromkeys(n for n, r in targets if r.get("met") is False)
                if name in WHY) + "."]
        lines.append("")
    described = [r for r in results.values() if r.get("machine")]
    if described:
        latest = max(described, key=lambda r: r["date"])
        lines += [f"Machine of the latest run ({latest['date']}):", "", "| machine | |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in latest["machine"].items()]
    for name, result in results.items():
        table = pd.DataFrame(result_rows(result)).reindex(columns=BENCH_COLUMNS)
        where = result.get("device") or (f"on {result['cpu']}" if result.get("cpu") else "")
        load = result.get("load")
        note = (f"Measured {result['date']}" + (" in quick mode (reduced sizes: not for quoting)" if result["quick"]
                                                 else "") + (f", {where}" if where else "")
                + (f", load average {load[0]:.1f} at the start and {load[1]:.1f} at the end" if load else "") + ".")
        lines += ["", f"## {name}", "", note, "", _markdown(table)]
    return "\n".join(lines) + "\n"


def _markdown(table) -> str:
    """A results table in markdown, an empty cell where a row has no value (a formula has no measured side)."""
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=".4g", missingval="")


# Where the measured reasons for a missed target are written up (rendered from the same results).
WHY = {
    "covertype": "the per-step split and each speed change in the covertype_speed table below, explained in "
                 "[What we fixed, module 1](fixes.md) (Speed)",
    "covertype_speed": "the step_* rows of the same table (forward, backward, optimizer, dropout per step)",
    "mnist": "the step_64 / step_1024 rows: the time of one training step on a fixed batch, which both pipelines "
             "pay, against the original's time per step; the ratio cannot exceed theirs",
    "lora": "on galactica-125m's configuration the embeddings (the galactica_embedding_share row) stay at full "
            "precision, as bitsandbytes quantises only nn.Linear layers and peft's k-bit preparation keeps the rest "
            "in fp32",
}


def _target_ratio(target: str) -> float | None:
    """The number in a ">= 6x" style target (None for other kinds of target)."""
    import re

    match = re.match(r"\s*>=\s*([\d.]+)x", target or "")
    return float(match.group(1)) if match else None


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"on CUDA ({torch.cuda.get_device_name(0)}) where the script uses it, CPU otherwise"
    return f"on the CPU ({machine_description()['CPU']}), torch threads as stated in each row"


def _root() -> Path | None:
    try:
        return find_root()
    except FileNotFoundError:
        return None


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl bench`."""
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all in bench/)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the scripts work")
    parser.add_argument("--bench-dir", default="bench", help="folder of the benchmark scripts")
    parser.add_argument("--out", default="docs/benchmarks.md", help="markdown file to write")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite the page and every quoted figure from the saved results")


def bench_main(args: argparse.Namespace) -> int:
    """Run the benchmark scripts, keep each table in bench/results/, and write the markdown page (atomically)."""
    import pandas as pd

    os.environ.update(batch_environment(_root(), offline=True, figures=False))  # the mirror, no downloads
    folder = Path(args.bench_dir)
    if not folder.is_dir():
        raise SystemExit(f"no benchmark folder at {folder.resolve()}; run from the repository root or pass --bench-dir")
    results_dir = folder / "results"
    machine = machine_description()
    for script in ([] if args.render else bench_scripts(folder, args.names)):
        print(f"== {script.stem}", flush=True)
        load_start = os.getloadavg()[0]
        table = _load(script).run(quick=args.quick)
        missing = set(BENCH_COLUMNS) - set(table.columns)
        if missing:
            raise SystemExit(f"{script} returned a table without columns {sorted(missing)}")
        print(_markdown(table), flush=True)
        columns = (["key"] if "key" in table.columns else []) + BENCH_COLUMNS
        result = {"date": dt.date.today().isoformat(), "quick": args.quick, "cpu": machine["CPU"],
                  "device": _device(), "load": [load_start, os.getloadavg()[0]], "machine": machine,
                  "rows": json.loads(pd.DataFrame(table)[columns].to_json(orient="records", double_precision=15))}
        atomic_write(results_dir / f"{script.stem}.json", json.dumps(result, indent=1))
    atomic_write(Path(args.out), benchmarks_page(results_dir))
    print(f"wrote {args.out}")
    changed, problems = render_files(_root() or Path.cwd(), results_dir)
    print("figures re-rendered in: " + (", ".join(changed) if changed else "no file (all up to date)"))
    for problem in problems:
        print(f"warning: {problem}")
    return 1 if problems else 0
