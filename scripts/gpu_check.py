"""`make gpu-check`: the students' real path on one CUDA GPU, measured (sized to fit 8 minutes on one GPU; its
run time has not been measured yet: no GPU was available to the project when it was written).

1. Runs the four module notebooks in the FULL profile with device="cuda" on whatever data the machine has (the
   offline mirror when TWDL_DATA_MIRROR points at one); module 4 on the bundled model (galactica-125m itself is
   not downloaded), once with precision "auto" (bf16 where native) and once forced to "fp16". Records each
   module's wall time and every training run's peak CUDA memory (the TWDL_DEVICE_LOG each run appends to).
2. Measures LoRA vs QLoRA on a model with galactica-125m's CONFIGURATION and random weights (memory and speed do
   not depend on the weights' values): tokens/s, base-weight memory, peak and increase, with bf16 and fp16.
3. Writes bench/results/gpu.json, bench/results/gpu.md (the GPU section of docs/benchmarks.md, replaced there
   too) and the GPU rows of twdl_helpers/runtimes.json (the run times the notebooks show at their top).

`--dry-run` runs the same code on the CPU at smoke size (bundled model instead of the galactica configuration)
and writes into --out-dir (default: a temporary folder), never into the committed results.

Usage: python scripts/gpu_check.py [--dry-run] [--modules 01,02,03,04] [--out-dir DIR] [--steps 30]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from twdl_tools.repo import module_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.stem[:2]: path.stem for path in module_notebooks(notebooks_dir(ROOT), ".py")}  # "01": "01_feedforward"
START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"
NOT_MEASURED = "not measured: no GPU was available"


def device_info(device: torch.device) -> dict:
    """What ran the check: the GPU's name, compute capability, native bf16, torch and CUDA versions."""
    from twdl_helpers.common import bf16_native

    info = {"device": str(device), "torch": torch.__version__, "date": datetime.date.today().isoformat()}
    if device.type == "cuda":
        info |= {"name": torch.cuda.get_device_name(device),
                 "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
                 "bf16_native": bf16_native(device), "cuda": torch.version.cuda,
                 "memory_gb": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)}
    else:
        import platform

        info |= {"name": f"CPU ({platform.processor() or platform.machine()})", "bf16_native": False}
    return info


def run_module(notebook: str, profile: str, parameters: dict, out_dir: Path, label: str) -> dict:
    """Execute one notebook with `twdl run`; return its status, wall time and the runs its training logged."""
    log = out_dir / f"{label}.device-log.jsonl"
    env = {**os.environ, "TWDL_DEVICE_LOG": str(log)}
    command = [sys.executable, "-m", "twdl_tools.cli", "run", notebook, "--profile", profile,
               "--output-dir", str(out_dir / label)]
    for name, value in parameters.items():
        command += ["-p", f"{name}={value}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {"notebook": notebook, "label": label, "profile": profile, "parameters": parameters,
            "status": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})",
            "seconds": round(seconds, 1), "error": done.stderr[-1500:] if done.returncode else "",
            "runs": read_device_log(log)}


def read_device_log(path: Path) -> list[dict]:
    """The training runs a notebook logged (one JSON object per line), or [] when none did."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def lm_memory_and_speed(device: torch.device, model: str | Path, steps: int, batch_size: int, block_size: int,
                        precisions: tuple[str, ...]) -> list[dict]:
    """LoRA and QLoRA on `model` with random token blocks, each run measured alone, per precision."""
    from twdl_helpers import lm

    config = json.loads((Path(lm.resolve_model(model)) / "config.json").read_text())
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, config["vocab_size"], (steps * batch_size, block_size), generator=gen)
    blocks, held = lm.Blocks(ids, 0), lm.Blocks(ids[:16], 0)
    rows = []
    for precision in precisions:
        for method in ("lora", "qlora"):
            settings = lm.RunSettings(steps=steps, batch_size=batch_size, learning_rate=2e-4, precision=precision)
            row = lm.finetune(method, model, blocks, held, settings, device, progress=False).row
            rows.append({k: row[k] for k in ("method", "precision", "base_weight_memory_mb", "peak_memory_mb",
                                              "memory_increase_mb", "tokens_per_second", "seconds",
                                              "trainable_params")})
    return rows


def render(results: dict) -> str:
    """The GPU section of docs/benchmarks.md, from the results (or the reason there are none)."""
    lines = [START, "## GPU (`make gpu-check`)", ""]
    info = results.get("machine")
    if not info:
        reason = results.get('reason', NOT_MEASURED)
        lines += [f"{reason[0].upper() + reason[1:]}. `make gpu-check` (scripts/gpu_check.py) "
                  "runs the four notebooks in the full profile on CUDA, LoRA vs QLoRA on galactica-125m's "
                  "configuration in bf16 and forced fp16, and writes this section.", END]
        return "\n".join(lines) + "\n"
    lines += [f"Measured {info['date']} on {info['name']} (compute capability {info.get('capability', '-')}, "
              f"native bf16: {info.get('bf16_native')}), torch {info['torch']}."
              + (" DRY RUN on the CPU at smoke size: not a GPU measurement." if results.get("dry_run") else ""),
              "", "| module | profile | parameters | status | wall time (s) | training runs | peak memory (MB) |",
              "|---|---|---|---|---|---|---|"]
    for m in results["modules"]:
        peaks = [r["peak_memory_mb"] for r in m["runs"] if r.get("peak_memory_mb") is not None]
        lines.append(f"| {m['notebook']} | {m['profile']} | {m['parameters']} | {m['status']} | {m['seconds']} | "
                     f"{len(m['runs'])} | {max(peaks):.0f} |" if peaks else
                     f"| {m['notebook']} | {m['profile']} | {m['parameters']} | {m['status']} | {m['seconds']} | "
                     f"{len(m['runs'])} | - |")
    lines += ["", f"LoRA vs QLoRA, {results['lm']['model']}, {results['lm']['steps']} steps x batch "
              f"{results['lm']['batch_size']} x {results['lm']['block_size']} tokens, each run measured alone:", "",
              "| method | precision | base weights (MB) | peak (MB) | increase (MB) | tokens/s | trainable |",
              "|---|---|---|---|---|---|---|"]
    for r in results["lm"]["rows"]:
        lines.append(f"| {r['method']} | {r['precision']} | {r['base_weight_memory_mb']:.1f} | "
                     f"{r['peak_memory_mb']:.0f} | {r['memory_increase_mb']:.0f} | {r['tokens_per_second']:.0f} | "
                     f"{r['trainable_params']:,} |")
    lines += ["", "Peak memory per training run is in bench/results/gpu.json (`modules[].runs`).", END]
    return "\n".join(lines) + "\n"


def replace_section(page: Path, section: str) -> None:
    """Put `section` between the gpu-check markers of `page` (appended when the markers are missing)."""
    from twdl_helpers.files import atomic_write

    text = page.read_text() if page.is_file() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write(page, text)


def update_runtimes(results: dict, path: Path) -> None:
    """Record each module's measured full-profile GPU wall time in the notebooks' runtimes file."""
    from twdl_helpers.files import atomic_write
    from twdl_helpers.runtimes import read_runtimes

    runtimes = read_runtimes(path)
    for m in results["modules"]:
        if m["status"] == "ok" and m["parameters"].get("precision", "auto") == "auto":
            entry = {"seconds": m["seconds"], "machine": results["machine"]["name"],
                     "date": results["machine"]["date"], "command": "make gpu-check"}
            runtimes.setdefault("modules", {}).setdefault(m["notebook"], {}).setdefault("gpu", {})["full"] = entry
    atomic_write(path, json.dumps(runtimes, indent=1) + "\n")


def record_no_gpu(out_dir: Path, page: Path | None) -> int:
    """Write results that say no GPU ran (gpu.json, gpu.md, and the page's GPU section when `page` is given)."""
    from twdl_helpers.files import atomic_write

    results = {"machine": None, "reason": NOT_MEASURED, "date": datetime.date.today().isoformat(),
               "modules": [], "lm": None}
    atomic_write(out_dir / "gpu.json", json.dumps(results, indent=1) + "\n")
    atomic_write(out_dir / "gpu.md", render(results))
    if page is not None:
        replace_section(page, render(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the check (or its CPU dry run) and write the results."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="CPU, smoke profile, bundled model; nothing committed")
    p.add_argument("--modules", default="01,02,03,04", help='comma-separated module numbers ("" for none)')
    p.add_argument("--out-dir", default=None, help="where results go (default: bench/results, or a temp dir)")
    p.add_argument("--steps", type=int, default=30, help="steps per LoRA/QLoRA measurement")
    p.add_argument("--record-no-gpu", action="store_true",
                   help="write the committed results as 'not measured' (for a project with no GPU)")
    a = p.parse_args(argv)
    if a.record_no_gpu:
        return record_no_gpu(Path(a.out_dir) if a.out_dir else ROOT / "bench" / "results",
                             None if a.out_dir else ROOT / "docs" / "benchmarks.md")
    if not a.dry_run and not torch.cuda.is_available():
        print(f"gpu-check: {NOT_MEASURED} (torch.cuda.is_available() is False). Use --dry-run to exercise the "
              "same code on the CPU; the committed results are left as they are.")
        return 1
    device = torch.device("cpu" if a.dry_run else "cuda")
    profile = "smoke" if a.dry_run else "full"
    out_dir = Path(a.out_dir) if a.out_dir else (Path(tempfile.mkdtemp(prefix="gpu-check-")) if a.dry_run
                                                 else ROOT / "bench" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    from twdl_helpers import lm

    results = {"dry_run": a.dry_run, "machine": device_info(device), "modules": []}
    work = Path(tempfile.mkdtemp(prefix="gpu-check-runs-"))
    wanted = [m for m in a.modules.split(",") if m]
    for number in wanted:
        runs = [({"device": device.type}, number)]
        if number == "04":  # the bundled model; bf16 where native ("auto") and fp16 forced (GPU only)
            runs = [({"device": device.type, "model_name": "bundled", "precision": "auto"}, "04-auto")]
            if device.type == "cuda":
                runs.append(({"device": "cuda", "model_name": "bundled", "precision": "fp16"}, "04-fp16"))
        for parameters, label in runs:
            result = run_module(NOTEBOOKS[number], profile, parameters, work, label)
            print(f"{label}: {result['status']} in {result['seconds']} s, {len(result['runs'])} training runs")
            results["modules"].append(result)
    with tempfile.TemporaryDirectory() as folder:
        if a.dry_run:
            model, steps, batch, block, precisions = "bundled", 2, 2, 32, ("auto",)
        else:
            model = lm.save_random_model(lm.GALACTICA_125M_CONFIG, folder)
            steps, batch, block = a.steps, 8, 128
            precisions = ("auto", "fp16") if lm.choose_precision(device).name == "bf16" else ("fp16",)
        results["lm"] = {"model": "bundled model" if a.dry_run else "galactica-125m configuration, random weights",
                         "steps": steps, "batch_size": batch, "block_size": block,
                         "rows": lm_memory_and_speed(device, model, steps, batch, block, precisions)}
    from twdl_helpers.files import atomic_write

    atomic_write(out_dir / "gpu.json", json.dumps(results, indent=1) + "\n")
    section = render(results)
    atomic_write(out_dir / "gpu.md", section)
    if not a.dry_run:
        replace_section(ROOT / "docs" / "benchmarks.md", section)
        update_runtimes(results, ROOT / "twdl_helpers" / "runtimes.json")
    print(section)
    print(f"results in {out_dir}")
    failed = [m["label"] for m in results["modules"] if m["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
