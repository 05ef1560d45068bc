"""`twdl execute-references`: re-execute the committed solution notebooks (smoke profile, CPU, offline) in place."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.params import notebook_parameters

from .execute import run_notebook
from .notebooks import finish_notebook, sync
from .repo import batch_environment, configured_mirror, find_root, module_notebooks, notebooks_dir

__all__ = ["reference_environment", "execute_reference", "execute_references"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def reference_environment(root: Path) -> dict[str, str]:
    """Environment for reference runs: offline, CPU only, the data mirror, inline figures, batch flag."""
    if configured_mirror(root) is None:
        raise FileNotFoundError("references must be made from the real data: set TWDL_DATA_MIRROR to the offline "
                                "mirror, or `data-mirror` under [tool.twdl] in pyproject.toml")
    # one CPU thread unless told otherwise: the course's nets are tiny, and the tests re-run them on one thread
    threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return batch_environment(root, offline=True, cpu_only=True, figures=True, extra=threads)


def _check_smoke_defaults(nb: Any, name: str) -> None:
    declared = notebook_parameters(nb)
    if declared is None:
        raise ValueError(f"{name}: no cell tagged 'parameters'; references run the notebook's defaults")
    profile = declared["profile"].default if "profile" in declared else "smoke"
    device = declared["device"].default if "device" in declared else "auto"
    if profile != "smoke" or device not in ("auto", "cpu"):
        raise ValueError(f"{name}: references run the defaults, which must be profile='smoke' and device 'auto' or "
                         f"'cpu'; found profile={profile!r}, device={device!r}")


def _strip_volatile(nb: Any) -> None:
    """Drop progress-bar widget views (their state is not saved, so they would render as broken widgets)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_MIME not in o.get("data", {})]


def execute_reference(path: Path, env: dict[str, str], timeout: float = 3600) -> Any:
    """Execute one solution notebook in its folder with `env` (the shared executor); return it (not saved)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    _check_smoke_defaults(nb, path.name)
    with tempfile.TemporaryDirectory(prefix="twdl-reference-") as scratch:
        out = Path(scratch) / path.name
        result = run_notebook(path, out, cwd=path.parent, timeout=timeout, env=env, max_output_chars=10**9,
                              scratch=scratch)
        if result.status != "ok":
            where = f" in cell {result.cell_index}" if result.cell_index is not None else ""
            raise RuntimeError(f"{path.name} failed{where}: {result.error}")
        executed = nbformat.read(str(out), as_version=4)
    _strip_volatile(executed)
    return executed


def execute_references(root: str | Path | None = None, names: list[str] | None = None,
                       timeout: float = 3600) -> dict[str, float]:
    """Re-execute each solution notebook (smoke, CPU, offline) and write its outputs in place; return seconds each."""
    from tqdm.auto import tqdm

    root = find_root(root)
    report = sync(root, check=True, names=names)
    if not report.clean:
        raise RuntimeError(f"cannot make references from stale notebooks: {report.describe(root)}")
    env = reference_environment(root)
    paths = module_notebooks(notebooks_dir(root))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
    seconds: dict[str, float] = {}
    for path in tqdm(paths, desc="references", unit="notebook"):
        start = time.perf_counter()
        atomic_write(path, finish_notebook(execute_reference(path, env, timeout)))
        seconds[path.name] = time.perf_counter() - start
        tqdm.write(f"{path.relative_to(root)}: executed in {seconds[path.name]:.0f} s")
    return seconds


def add_execute_references_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl execute-references`."""
    parser.add_argument("names", nargs="*", help="notebook stems (default: every notebooks/0k_*.ipynb)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per notebook")
    parser.add_argument("--root", default=None, help="repository root (default: found from the current folder)")


def execute_references_main(args: argparse.Namespace) -> int:
    """Entry point of `twdl execute-references`."""
    try:
        seconds = execute_references(args.root, args.names or None, args.timeout)
    except Exception as error:  # noqa: BLE001  (one readable line, not a traceback, for CLI users)
        print(f"twdl execute-references: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"executed {len(seconds)} reference notebook(s) in {sum(seconds.values()):.0f} s")
    from .figures import render_files  # prose quoting a reference notebook's records follows its new outputs

    changed, problems = render_files(find_root(args.root))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if changed:
        print("figures re-rendered in: " + ", ".join(changed))
    return 0
