"""End-to-end notebook checks: pairs in sync, references executed, nbval re-execution with metric tolerances,
student versions running up to (and past) their homework cells. Each notebook is executed at most twice:
once by nbval (solution) and once by the shared executor (student)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from twdl_tools.execute import run_notebook
from twdl_tools.notebooks import sync
from twdl_tools.references import execute_reference, reference_environment
from twdl_helpers.record import read_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SANITIZE = ROOT / "notebooks" / "nbval_sanitize.cfg"
NAMES = [p.stem for p in NOTEBOOKS]


def nbval(paths: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    """Run nbval (lax) with the tolerance plugin on `paths` in a fresh pytest process."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "twdl_tools.nbval_tolerance",
               "--nbval-lax", "--nbval-sanitize-with", str(SANITIZE), "--nbval-cell-timeout", "1800",
               "--rootdir", str(cwd), *map(str, paths)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def test_pairs_in_sync():
    report = sync(ROOT, check=True)
    assert report.clean, report.describe(ROOT)


@pytest.mark.parametrize("name", NAMES)
def test_reference_is_executed_and_records_metrics(name):
    records = read_records(ROOT / "notebooks" / f"{name}.ipynb")
    assert records, f"notebooks/{name}.ipynb has no recorded outputs: run `make references` and commit it"
    module = name[:2].lstrip("0")
    assert f"m{module}.completed" in records, f"notebooks/{name}.ipynb never records m{module}.completed"


@pytest.mark.parametrize("name", NAMES)
def test_reference_outputs_reproduce_within_tolerance(name):
    done = nbval([ROOT / "notebooks" / f"{name}.ipynb"], ROOT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


@pytest.mark.parametrize("name", NAMES)
def test_student_version_runs_past_its_homework(name, tmp_path):
    path = ROOT / "notebooks" / "student" / f"{name}.ipynb"
    out = tmp_path / path.name
    # papermill reports any error output, even in cells tagged raises-exception, as a failure: checked below
    run_notebook(path, out, cwd=tmp_path, timeout=1800)
    nb = nbformat.read(str(out), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "papermill stopped before the last cell"
    errors = [(c, o) for c in code for o in c.outputs if o.output_type == "error"]
    unexpected = [f"{o.ename}: {o.evalue}" for c, o in errors
                  if o.ename != "NotImplementedError" or "raises-exception" not in c.metadata.get("tags", [])]
    assert not unexpected, f"student notebook {name} failed outside its homework cells: {unexpected}"
    assert errors, f"student notebook {name} has no homework cell raising NotImplementedError"


TINY = '''# %% [markdown]
# # Module 9 — tolerance check
# [![Open In Colab](x)](y)

# %% tags=["colab-setup"]

# %% tags=["parameters"]
profile = "smoke"

# %%
import twdl_helpers as twdl
twdl.record("m9.test_accuracy", 80.0)
twdl.record("m9.perplexity", 40.0)

# %%
twdl.record("m9.completed", False)
'''


def test_tolerance_check_fails_beyond_tolerance_and_passes_within(tmp_path, mirror):
    (tmp_path / "jupytext.toml").write_text('formats = "ipynb,py:percent"\n')
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "09_tiny.py").write_text(TINY)
    sync(tmp_path)
    reference = tmp_path / "notebooks" / "09_tiny.ipynb"
    text = nbformat.writes(execute_reference(reference, reference_environment(tmp_path), timeout=300))
    assert '"value": 80.0' in text and '"value": 40.0' in text
    within = text.replace('"value": 80.0', '"value": 81.5').replace('"value": 40.0', '"value": 41.5')
    beyond = text.replace('"value": 80.0', '"value": 83.0')
    (tmp_path / "ok.ipynb").write_text(within)
    (tmp_path / "bad.ipynb").write_text(beyond)
    done = nbval([tmp_path / "ok.ipynb", tmp_path / "bad.ipynb"], tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 failed" in done.stdout and "bad.ipynb::Cell 2" in done.stdout, done.stdout[-3000:]
    assert "m9.test_accuracy: reference 83.0, fresh run 80.0" in done.stdout
