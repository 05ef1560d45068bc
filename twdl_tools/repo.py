"""The course repository: where its root is, its settings (`[tool.twdl]` in pyproject.toml), and batch environments.

This module is the one place that knows the repository's layout and the environment a batch run gives a
kernel (the batch flag, the data mirror, offline when asked, deterministic hashing). `twdl run`, `twdl grade`,
`twdl execute-references`, the nbval plugin and the tests all take their environment from here.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from twdl_helpers.files import BATCH_VARIABLE, OFFLINE_ENVIRONMENT, data_mirror

__all__ = ["find_root", "view_environment", "notebooks_dir", "site_pages_dir", "module_notebooks", "MODULE_NOTEBOOK", "settings", "configured_mirror",
           "batch_environment",
           "resolve_notebooks", "thread_env"]

MARKER = "jupytext.toml"  # the repository root holds this file and notebooks/
NOTEBOOKS = "notebooks"  # the module notebooks' folder, under the root
SITE_PAGES = "full"  # under notebooks/: the site's pages, each module executed in the full profile
MODULE_NOTEBOOK = "[0-9][0-9]_*"  # a module notebook's name: two digits, "_", what it teaches (01_feedforward)


def find_root(start: str | Path | None = None) -> Path:
    """The repository root: the nearest folder at or above `start` (default: cwd) with jupytext.toml and notebooks/."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file() and (folder / NOTEBOOKS).is_dir():
            return folder
    raise FileNotFoundError(f"no course repository (a folder with {MARKER} and {NOTEBOOKS}/) at or above {here}; "
                            "run this command inside the course repository or pass --root")


def notebooks_dir(root: Path | None = None) -> Path:
    """The module notebooks' folder of the repository `root` (default: the repository around the current folder)."""
    return (root or find_root()) / NOTEBOOKS


def site_pages_dir(root: Path | None = None) -> Path:
    """Where the site's module pages live: notebooks/full/0k_name.ipynb, each executed in the full profile by
    `twdl execute-references --profile full` (the smoke references in notebooks/ are what nbval and CI re-run)."""
    return notebooks_dir(root) / SITE_PAGES


def module_notebooks(folder: Path, suffix: str = ".ipynb") -> list[Path]:
    """The module notebooks in `folder`, sorted: `01_feedforward.ipynb`, ... (their sources with suffix=".py"; the
    student versions in notebooks/student, the check files in autograder/ are named the same way)."""
    return sorted(Path(folder).glob(MODULE_NOTEBOOK + suffix))


def settings(root: Path) -> dict:
    """The `[tool.twdl]` table of the repository's pyproject.toml (empty when absent)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle).get("tool", {}).get("twdl", {})


def configured_mirror(root: Path | None = None) -> Path | None:
    """The offline data mirror: TWDL_DATA_MIRROR when set, else `data-mirror` of [tool.twdl] if that folder exists."""
    mirror = data_mirror()
    if mirror is not None or root is None:
        return mirror
    value = settings(root).get("data-mirror")
    if not value:
        return None
    folder = (root / value).resolve()
    return folder if folder.is_dir() else None


def view_environment(view: dict[str, str]) -> dict[str, str]:
    """What points a kernel (and the scorer's loaders) at a grading's data view, given as its folders ({} for none)."""
    return {"TWDL_DATA_MIRROR": view["mirror"], "TWDL_CACHE": view["cache"]} if view else {}


def batch_environment(root: Path | None = None, *, base: dict[str, str] | None = None, offline: bool = False,
                      cpu_only: bool = False, figures: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a kernel run without a person watching: batch flag, data mirror, fixed hashing.

    `offline` forbids downloads (package and Hugging Face hub); `cpu_only` hides GPUs (references);
    `figures=False` sets the Agg backend (no images kept in the executed notebook: grading).
    """
    env = dict(os.environ if base is None else base)
    if offline:
        env.update(OFFLINE_ENVIRONMENT)
    env.update({BATCH_VARIABLE: "1", "PYTHONHASHSEED": "0", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    mirror = configured_mirror(root)
    if mirror is not None:
        env["TWDL_DATA_MIRROR"] = str(mirror)
    if cpu_only:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if figures:
        env.pop("MPLBACKEND", None)  # the kernel's inline backend keeps figures in the executed notebook
    else:
        env["MPLBACKEND"] = "Agg"
    env.update(extra or {})
    return env


def resolve_notebooks(selector: str, folder: str | Path | None = None) -> list[Path]:
    """Map "all", a path, a stem ("01_feedforward"), a prefix ("01") or a name part ("feedforward") to notebooks."""
    folder = Path(folder) if folder else notebooks_dir()
    modules = module_notebooks(folder)
    if selector == "all":
        if not modules:
            raise FileNotFoundError(f"no module notebooks matching {MODULE_NOTEBOOK}.ipynb in {folder}; "
                                    "run `twdl sync` first")
        return modules
    path = Path(selector)
    if path.suffix in (".ipynb", ".py") and path.exists():
        notebook = path.with_suffix(".ipynb")
        if not notebook.exists():
            raise FileNotFoundError(f"{path} has no generated {notebook.name}; run `twdl sync` (or jupytext) first")
        return [notebook]
    for rule in (lambda s: s == selector, lambda s: s.startswith(selector), lambda s: selector in s.split("_", 1)[-1]):
        found = [nb for nb in modules if rule(nb.stem)]
        if len(found) == 1:
            return found
        if len(found) > 1:
            raise ValueError(f"{selector!r} matches several notebooks ({', '.join(nb.stem for nb in found)}); be more precise")
    names = ", ".join(nb.stem for nb in modules) or "none"
    raise FileNotFoundError(f"no notebook matches {selector!r} in {folder}; module notebooks: {names}, or use 'all' or a path")


def thread_env(jobs: int) -> dict[str, str]:
    """Thread-count variables that share the CPU cores between `jobs` parallel kernels (unless already set)."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
    return {name: os.environ.get(name, threads) for name in names}
