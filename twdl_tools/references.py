"""`twdl execute-references`: re-execute the committed solution notebooks (smoke profile, CPU, offline) in place, or
with `--profile full` execute each module at the course's settings into the site's pages (notebooks/full/)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.params import check_notebook_parameters, notebook_parameters, parse_parameter_values

from .execute import run_notebook
from .notebooks import finish_notebook, sync
from .repo import batch_environment, configured_mirror, find_root, module_notebooks, notebooks_dir
from .site_pages import add_page_header, site_page_path

__all__ = ["reference_environment", "execute_reference", "execute_references", "page_parameters"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def reference_environment(root: Path, cpu_only: bool = True) -> dict[str, str]:
    """Environment for reference runs: offline, CPU only (unless told otherwise), the data mirror, inline figures,
    batch flag."""
    if configured_mirror(root) is None:
        raise FileNotFoundError("references must be made from the real data: set TWDL_DATA_MIRROR to the offline "
                                "mirror, or `data-mirror` under [tool.twdl] in pyproject.toml")
    # one CPU thread unless told otherwise: the course's nets are tiny, and the tests re-run them on one thread
    threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return batch_environment(root, offline=True, cpu_only=cpu_only, figures=True, extra=threads)


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


def execute_reference(path: Path, env: dict[str, str], timeout: float = 3600,
                      parameters: dict[str, Any] | None = None) -> Any:
    """Execute one solution notebook in its folder with `env` (the shared executor) and `parameters` injected
    (none: its smoke defaults); return it (not saved)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    _check_smoke_defaults(nb, path.name)
    with tempfile.TemporaryDirectory(prefix="twdl-reference-") as scratch:
        out = Path(scratch) / path.name
        result = run_notebook(path, out, parameters or None, cwd=path.parent, timeout=timeout, env=env,
                              max_output_chars=10**9, scratch=scratch)
        if result.status != "ok":
            where = f" in cell {result.cell_index}" if result.cell_index is not None else ""
            raise RuntimeError(f"{path.name} failed{where}: {result.error}")
        executed = nbformat.read(str(out), as_version=4)
    _strip_volatile(executed)
    return executed


def page_parameters(paths: list[Path], pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """Each notebook's -p values for a full-profile run: `name=value` for every notebook, `stem:name=value` for one
    (e.g. `04_finetuning_lora:model_name=bundled`); every value is checked against what the notebook declares."""
    stems = {p.stem for p in paths}
    shared: list[str] = []
    scoped: dict[str, list[str]] = {stem: [] for stem in stems}
    for pair in pairs or []:
        head, sep, _ = pair.partition("=")
        stem, colon, name = head.partition(":")
        if not (sep and colon):
            shared.append(pair)
        elif stem not in stems:
            raise ValueError(f"-p {pair}: {stem!r} is not among the notebooks run ({', '.join(sorted(stems))})")
        else:
            scoped[stem].append(f"{name}={pair.partition('=')[2]}")
    values = {}
    for path in paths:
        given = {**parse_parameter_values(shared), **parse_parameter_values(scoped[path.stem])}
        if "profile" in given:
            raise ValueError("-p profile=... is not allowed: --profile sets it")
        problems = check_notebook_parameters(path, given)
        if problems:
            raise ValueError(f"{path.name}: " + "; ".join(problems))
        values[path.stem] = {"profile": "full", **given}
    return values


def _run_page(root: Path, path: Path, env: dict[str, str], timeout: float, parameters: dict[str, Any]) -> float:
    """Execute one module in the full profile and write its site page (header cell first) atomically."""
    start = time.perf_counter()
    executed = execute_reference(path, env, timeout, parameters)
    seconds = time.perf_counter() - start
    page = site_page_path(root, path.stem)
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(page, finish_notebook(add_page_header(executed, root, path.stem, parameters, seconds)))
    return seconds


def execute_references(root: str | Path | None = None, names: list[str] | None = None, timeout: float = 3600,
                       profile: str = "smoke", parameters: list[str] | None = None, jobs: int = 1,
                       device: str = "cpu") -> dict[str, float]:
    """Re-execute each solution notebook (smoke, CPU, offline) and write its outputs in place; with profile="full",
    execute it at the course's settings (with `parameters`, "[stem:]name=value") into the site's page
    notebooks/full/<stem>.ipynb, `jobs` at a time, on the CPU (device="cpu") or any GPU (device="auto").
    Return the seconds each took."""
    from tqdm.auto import tqdm

    if profile not in ("smoke", "full"):
        raise ValueError(f"profile must be 'smoke' or 'full', got {profile!r}")
    if profile == "smoke" and (parameters or jobs != 1 or device != "cpu"):
        raise ValueError("-p, --jobs and --device apply to --profile full; smoke references run the defaults on "
                         "one CPU thread, one at a time")
    root = find_root(root)
    report = sync(root, check=True, names=names)
    if not report.clean:
        raise RuntimeError(f"cannot make references from stale notebooks: {report.describe(root)}")
    env = reference_environment(root, cpu_only=device == "cpu")
    paths = module_notebooks(notebooks_dir(root))
    if names:
        unknown = set(names) - {p.stem for p in paths} - {p.name for p in paths}
        if unknown:
            raise ValueError(f"no module notebook named {', '.join(sorted(unknown))} in {notebooks_dir(root)}")
        paths = [p for p in paths if p.stem in names or p.name in names]
    seconds: dict[str, float] = {}
    if profile == "smoke":
        for path in tqdm(paths, desc="references", unit="notebook"):
            start = time.perf_counter()
            atomic_write(path, finish_notebook(execute_reference(path, env, timeout)))
            seconds[path.name] = time.perf_counter() - start
            tqdm.write(f"{path.relative_to(root)}: executed in {seconds[path.name]:.0f} s")
        return seconds
    values = page_parameters(paths, parameters)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each run is its own process tree
        futures = {path: pool.submit(_run_page, root, path, env, timeout, values[path.stem]) for path in paths}
        failures = []
        for path, future in futures.items():
            try:
                seconds[path.name] = future.result()
                print(f"{site_page_path(root, path.stem).relative_to(root)}: executed in the full profile in "
                      f"{seconds[path.name] / 60:.1f} min", flush=True)
            except Exception as error:  # noqa: BLE001  (report every module, then fail)
                failures.append(f"{path.name}: {error}")
    if failures:
        raise RuntimeError("; ".join(failures) + (f" (written: {', '.join(seconds)})" if seconds else ""))
    return seconds


def add_execute_references_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `twdl execute-references`."""
    parser.add_argument("names", nargs="*", help="notebook stems (default: every notebooks/0k_*.ipynb)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per notebook")
    parser.add_argument("--profile", choices=["smoke", "full"], default="smoke",
                        help="smoke (default): re-execute notebooks/0k_*.ipynb in place; full: execute at the course's "
                             "settings into the site's pages notebooks/full/0k_*.ipynb")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="[STEM:]NAME=VALUE",
                        help="full profile only: a notebook parameter for every notebook run, or for one with its stem "
                             "(e.g. 04_finetuning_lora:model_name=bundled); repeatable")
    parser.add_argument("--jobs", type=int, default=1, help="full profile only: notebooks executed at once (each on "
                                                            "OMP_NUM_THREADS threads, 1 by default)")
    parser.add_argument("--device", choices=["cpu", "auto"], default="cpu",
                        help="full profile only: cpu (default, GPUs hidden) or auto (a GPU when there is one)")
    parser.add_argument("--root", default=None, help="repository root (default: found from the current folder)")


def execute_references_main(args: argparse.Namespace) -> int:
    """Entry point of `twdl execute-references`."""
    try:
        seconds = execute_references(args.root, args.names or None, args.timeout, args.profile, args.parameter,
                                     args.jobs, args.device)
    except Exception as error:  # noqa: BLE001  (one readable line, not a traceback, for CLI users)
        print(f"twdl execute-references: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    what = "reference notebook(s)" if args.profile == "smoke" else "full-profile site page(s)"
    print(f"executed {len(seconds)} {what} in {sum(seconds.values()):.0f} s")
    from .figures import render_files  # prose quoting a reference notebook's records follows its new outputs

    changed, problems = render_files(find_root(args.root))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if changed:
        print("figures re-rendered in: " + ", ".join(changed))
    return 0
