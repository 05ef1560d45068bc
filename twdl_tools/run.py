"""`twdl run MODULE|all`: execute the module notebooks with papermill and collect their recorded metrics."""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from twdl_helpers.files import atomic_write
from twdl_helpers.records import flat_records, record_columns
from twdl_helpers.params import ParameterError, check_notebook_parameters, notebook_parameters, parse_parameter_values

from .execute import ExecutionResult, run_notebook
from .repo import batch_environment, find_root, resolve_notebooks, thread_env

__all__ = ["run_notebooks", "summary_table", "add_arguments", "main"]
SUMMARY_COLUMNS = ["notebook", "status", "runtime_s", "error"]


def summary_table(results: dict[str, ExecutionResult]):
    """One row per notebook: notebook, status, runtime_s, error, then one column per recorded metric."""
    import pandas as pd

    rows = []
    for name, result in sorted(results.items()):
        error = result.error if result.cell_index is None or not result.error else f"cell {result.cell_index}: {result.error}"
        rows.append({"notebook": name, "status": result.status, "runtime_s": result.runtime_s, "error": error,
                     **flat_records(result.records)})
    columns = record_columns({k for row in rows for k in row}, SUMMARY_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


def run_notebooks(
    notebooks: list[Path], output_dir: str | Path, values: dict[str, Any], *, jobs: int = 1,
    timeout: float | None = None, kernel: str | None = None, offline: bool = False,
) -> dict[str, ExecutionResult]:
    """Execute each notebook into output_dir (in parallel processes when jobs > 1); write its .metrics.json."""
    from tqdm.auto import tqdm

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    env = batch_environment(_root_of(notebooks), offline=offline, extra=thread_env(jobs))
    tasks = {}
    for nb in notebooks:
        params = dict(values)
        if "output_dir" in (notebook_parameters(nb) or {}) and "output_dir" not in params:
            params["output_dir"] = str((output_dir / nb.stem).resolve())  # figures go beside the run's outputs
        tasks[nb.stem] = (nb, params)
    results: dict[str, ExecutionResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            pool.submit(run_notebook, nb, output_dir / f"{stem}.ipynb", params, cwd=nb.parent, timeout=timeout,
                        kernel=kernel, env=env): stem
            for stem, (nb, params) in tasks.items()
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="notebooks", file=sys.stderr):
            stem = futures[future]
            result = future.result()
            results[stem] = result
            atomic_write(output_dir / f"{stem}.metrics.json", json.dumps(result.records, indent=2) + "\n")
            tqdm.write(f"{result.status:7s} {stem} ({result.runtime_s:.1f} s)", file=sys.stderr)
    return results


def _root_of(notebooks: list[Path]) -> Path | None:
    try:
        return find_root(notebooks[0].parent) if notebooks else None
    except FileNotFoundError:  # notebooks outside a course repository: no repository settings apply
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `twdl run`."""
    parser.add_argument("module", help='"all", a notebook path, stem ("01_feedforward"), prefix ("01") or name ("feedforward")')
    parser.add_argument("--profile", choices=["smoke", "full"], help="run size injected as the `profile` parameter")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="set a notebook parameter (a Python literal, else a string); repeatable")
    parser.add_argument("--output-dir", default="runs", help="where executed notebooks, metrics and summary.csv go")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at the same time (separate processes)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per notebook (default: no limit)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    parser.add_argument("--notebooks-dir", default=None,
                        help="folder holding the module notebooks (default: notebooks/ of the repository around you)")
    parser.add_argument("--offline", action="store_true", help="no downloads: the mirror, the cache or bundled samples")


def main(args: argparse.Namespace) -> int:
    """Run `twdl run`; return 0 when every notebook succeeded, 1 if any failed, 2 for bad arguments."""
    try:
        notebooks = resolve_notebooks(args.module, args.notebooks_dir)
        values = parse_parameter_values(args.parameter)
    except (FileNotFoundError, ValueError, ParameterError) as err:
        print(f"twdl run: {err}", file=sys.stderr)
        return 2
    if args.profile:
        if values.get("profile", args.profile) != args.profile:
            print(f"twdl run: --profile {args.profile} contradicts -p profile={values['profile']}", file=sys.stderr)
            return 2
        values["profile"] = args.profile
    problems = [f"{nb.name}: {p}" for nb in notebooks for p in check_notebook_parameters(nb, values)]
    if problems:
        print("\n".join(f"twdl run: {p}" for p in problems), file=sys.stderr)
        return 2
    output_dir = Path(args.output_dir)
    results = run_notebooks(notebooks, output_dir, values, jobs=args.jobs, timeout=args.timeout, kernel=args.kernel,
                            offline=args.offline)
    table = summary_table(results)
    summary = output_dir / "summary.csv"
    if summary.exists():  # keep the rows of notebooks not run this time
        import pandas as pd

        old = pd.read_csv(summary)
        old = old[~old["notebook"].isin(table["notebook"])]
        if len(old):
            merged = pd.concat([old, table], ignore_index=True).sort_values("notebook")
            table = merged[record_columns(merged.columns, SUMMARY_COLUMNS)]
    atomic_write(summary, table.to_csv(index=False))
    failed = {stem: r for stem, r in sorted(results.items()) if r.status != "ok"}
    for stem, result in failed.items():
        where = f" in cell {result.cell_index}" if result.cell_index is not None and "cell" not in result.error else ""
        print(f"FAILED {stem}: {result.status}{where}: {result.error} (see {result.output})", file=sys.stderr)
    print(f"{len(results) - len(failed)}/{len(results)} notebooks ok; summary in {summary}")
    return 1 if failed else 0
