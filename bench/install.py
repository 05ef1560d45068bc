"""The student's install against the TA's: a fresh venv with the runtime only (`pip install .`, what the Colab
setup cell does) and one with the course tooling too (`pip install ".[tools]"`, what every student installed
before the two wings were split): distributions, disk and seconds. Then the runtime venv, given only what Jupyter
itself provides (ipykernel and nbclient), executes all four notebooks' smoke profile offline with the data mirror.

Install seconds depend on pip's cache and the machine's load (both installs use the same cache, alternating);
distributions and disk do not.
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

from twdl_tools.repo import batch_environment, module_notebooks, notebooks_dir

ROOT = Path(__file__).resolve().parents[1]
JUPYTER = ["ipykernel", "nbclient"]  # what Colab and any Jupyter server already have
# The notebook runner inside the runtime venv: nbclient only, no twdl_tools (it is not importable there).
RUNNER = """
import json, sys, time, nbformat
from nbclient import NotebookClient
rows = []
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3").execute()
        status = "ok"
    except Exception as err:
        status = f"{type(err).__name__}: {str(err).splitlines()[-1] if str(err) else ''}"
    rows.append({"notebook": path, "status": status, "seconds": time.perf_counter() - start})
print(json.dumps(rows))
"""


def _pip_env() -> dict[str, str]:
    """This environment without the offline switches `twdl bench` sets for the kernels (pip needs its index)."""
    return {k: v for k, v in os.environ.items() if k not in ("PIP_NO_INDEX", "TWDL_OFFLINE")}


def _pip(python: Path, *specs: str) -> None:
    """`pip install` into the venv of `python`; pip's output is shown only when it fails."""
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *specs], env=_pip_env(),
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pip install {' '.join(specs)} failed:\n{done.stdout}{done.stderr}")


def fresh_install(folder: Path, spec: str) -> dict[str, float]:
    """Create a venv in `folder`, pip-install `spec` into it; its distributions, site-packages MB and seconds."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    start = time.perf_counter()
    _pip(python, spec)
    seconds = time.perf_counter() - start
    listed = json.loads(subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], check=True,
                                       capture_output=True, text=True).stdout)
    site = next(folder.glob("lib/python*/site-packages"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    return {"distributions": len([d for d in listed if d["name"].lower() not in ("pip", "setuptools")]),
            "mb": size / 2**20, "seconds": seconds}


def run_notebooks(venv: Path, work: Path) -> pd.DataFrame:
    """Execute the four notebooks (smoke profile, their defaults) with the runtime venv's own kernel, offline."""
    _pip(venv / "bin" / "python", *JUPYTER)
    copies = []
    for source in module_notebooks(notebooks_dir(ROOT)):
        copies.append(work / source.name)
        shutil.copy(source, copies[-1])
    env = batch_environment(ROOT, offline=True, figures=False, extra={
        "OMP_NUM_THREADS": "1", "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run([str(venv / "bin" / "python"), "-c", RUNNER, *map(str, copies)], cwd=work, env=env,
                          check=True, capture_output=True, text=True)
    return pd.DataFrame(json.loads(done.stdout.strip().splitlines()[-1]))


def run(quick: bool = False) -> pd.DataFrame:
    """Alternate the two installs (`runs` each), keep medians; then run the notebooks in one runtime venv."""
    runs = 1 if quick else 2
    measured: dict[str, list[dict]] = {"runtime": [], "tools": []}
    specs = {"runtime": str(ROOT), "tools": f"{ROOT}[tools]"}
    with tempfile.TemporaryDirectory(prefix="twdl-bench-install-") as tmp:
        for index in range(runs):
            for kind in ("runtime", "tools") if index % 2 == 0 else ("tools", "runtime"):
                folder = Path(tmp) / f"{kind}-{index}"
                measured[kind].append(fresh_install(folder, specs[kind]))
                if not (kind == "runtime" and index == 0):
                    shutil.rmtree(folder)
        work = Path(tmp) / "work"
        work.mkdir()
        notebooks = run_notebooks(Path(tmp) / "runtime-0", work)
    rows = []
    for key, unit, label in [("distributions", "count", "distributions installed (pip list, without pip/setuptools)"),
                             ("mb", "MB", "site-packages size"), ("seconds", "s", "pip install wall time")]:
        runtime = statistics.median(m[key] for m in measured["runtime"])
        tools = statistics.median(m[key] for m in measured["tools"])
        rows.append({"comparison": f"fresh venv, `pip install .[tools]` (before the split every student installed "
                                   f"this) vs `pip install .` (the student's runtime): {label}",
                     "measure": key, "unit": unit, "original": tools, "helpers": runtime,
                     "ratio": tools / runtime if runtime else float("nan"), "target": "", "met": None, "runs": runs})
    for row in notebooks.itertuples():
        rows.append({"comparison": f"{Path(row.notebook).stem}, smoke profile, executed by nbclient in the "
                                   f"runtime-only venv (+ {', '.join(JUPYTER)}), offline, mirror: {row.status}",
                     "measure": "seconds", "unit": "s", "original": float("nan"), "helpers": row.seconds,
                     "ratio": float("nan"), "target": "runs", "met": row.status == "ok", "runs": 1})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_markdown(index=False))
