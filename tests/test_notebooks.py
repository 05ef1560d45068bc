"""End-to-end notebook checks: pairs in sync, references executed, nbval re-execution with metric tolerances,
the solution scoring full marks and the student version nothing when graded, student versions running past
their homework cells. Each notebook is executed at most three times: once by nbval (solution) and once each
(solution, student) by one grading that two tests share."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from twdl_tools.grading.checkfile import load_check_file
from twdl_tools.grading import grade_all, plan_tasks
from twdl_tools.grading.plan import find_submissions
from twdl_tools.grading.scoring import finalize_row
from twdl_tools.notebooks import sync
from twdl_tools.references import execute_reference, reference_environment
from twdl_tools.repo import module_notebooks, notebooks_dir
from twdl_helpers.records import read_records

from conftest import write_course

ROOT = Path(__file__).resolve().parents[1]
FOLDER = notebooks_dir(ROOT)
NOTEBOOKS = module_notebooks(FOLDER, ".py")
SANITIZE = FOLDER / "nbval_sanitize.cfg"
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
    records = read_records(FOLDER / f"{name}.ipynb")
    assert records, f"notebooks/{name}.ipynb has no recorded outputs: run `make references` and commit it"
    module = name[:2].lstrip("0")
    assert f"m{module}.completed" in records, f"notebooks/{name}.ipynb never records m{module}.completed"


@pytest.mark.parametrize("name", NAMES)
def test_reference_outputs_reproduce_within_tolerance(name):
    done = nbval([FOLDER / f"{name}.ipynb"], ROOT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


_GRADED: dict[str, tuple[dict, Path]] = {}
# The homework not attempted: invented accuracies for untrained models, and a few lines that made every check pass
# when the checks ran in the submission's own kernel. Graded in the trusted scorer, q1 scores 0.
FORGERIES = {"02_optimization": '''import builtins
import pandas as pd
models = twdl.ModelsByRun(sgd=twdl.DeepNet(seed=1), momentum=twdl.DeepNet(seed=2), adam=twdl.DeepNet(seed=3),
                          momentum_bn=twdl.BNDeepNet(seed=4))
table = pd.DataFrame({"run": list(models), "optimizer": ["sgd", "momentum", "adam", "momentum"],
                      "batch_norm": ["no", "no", "no", "yes"], "test_accuracy": [97.1, 97.9, 98.2, 98.4],
                      "train_accuracy": [98.0, 98.9, 99.1, 99.3], "lr": [0.01, 0.01, 0.001, 0.01]})
table.attrs["models"] = models
for row in table.itertuples():
    key = row.optimizer + ("_bn" if row.batch_norm == "yes" else "")
    twdl.record(f"m2.homework.{key}.test_accuracy", row.test_accuracy)
    twdl.record(f"m2.homework.{key}.train_accuracy", row.train_accuracy)
builtins.abs = lambda x: 0  # every |measured - reported| looked like 0
twdl.evaluate = lambda *args, **kwargs: {"accuracy": 98.0, "loss": 0.05}
twdl.predict = lambda model, inputs, **kwargs: __import__("torch").eye(10)[:1].repeat(len(inputs), 1)
'''}


def graded(name: str, tmp_path_factory) -> tuple[dict, Path]:
    """Grade the solution and the student notebook of module `name` once (smoke); rows by submission, out dir."""
    if name not in _GRADED:
        folder = tmp_path_factory.mktemp(f"graded-{name}")
        (folder / "subs").mkdir()
        for kind, path in (("solution", FOLDER / f"{name}.ipynb"),
                           ("student", FOLDER / "student" / f"{name}.ipynb")):
            (folder / "subs" / f"{kind}.ipynb").write_bytes(path.read_bytes())
        if name in FORGERIES:
            nb = nbformat.read(str(ROOT / "notebooks" / "student" / f"{name}.ipynb"), as_version=4)
            next(c for c in nb.cells if c.metadata.get("question") == "q1").source = FORGERIES[name]
            nbformat.write(nb, str(folder / "subs" / "forged.ipynb"))
        checks = ROOT / "autograder" / f"{name}.py"
        tasks = plan_tasks(find_submissions([folder / "subs"]), folder / "out", {"profile": "smoke"}, timeout=1800,
                           checks=checks)
        rows = grade_all(tasks, jobs=2, progress=False)
        check_file = load_check_file(checks)
        _GRADED[name] = ({r["submission"]: finalize_row(r, check_file, {}) for r in rows}, folder / "out")
    return _GRADED[name]


@pytest.mark.parametrize("name", NAMES)
def test_solution_scores_full_marks_and_the_student_version_nothing(name, tmp_path_factory):
    rows, _ = graded(name, tmp_path_factory)
    check_file = load_check_file(ROOT / "autograder" / f"{name}.py")
    auto = [q for q in check_file.questions if q.kind == "auto"]
    assert auto, f"{name} declares no auto-graded question"
    solution, student = rows["solution"], rows["student"]
    for entry in solution["questions"]:
        failed = [f"{c['name']}: {c['message']}" for c in entry["checks"] if not c["passed"]]
        if entry["kind"] == "auto":
            assert entry["points"] == entry["max"], f"{name} {entry['id']}: {entry['summary']} {failed}"
        else:  # the solution's written answer is its rubric: never blank, waiting for a TA
            assert entry["state"] == "pending", f"{name} {entry['id']}: {entry['summary']}"
    assert student["total"] == 0 and not student["manual_pending"], [e["summary"] for e in student["questions"]]
    assert all(e.get("state", "blank") == "blank" for e in student["questions"] if e["kind"] == "manual")


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_invented_results_with_patched_helpers_score_nothing(name, tmp_path_factory):
    rows, _ = graded(name, tmp_path_factory)
    q1 = rows["forged"]["questions"][0]
    assert q1["points"] == 0, q1["summary"]
    assert rows["forged"]["records"]["m2.homework.adam.test_accuracy"] == 98.2  # the claim stands in the table only


@pytest.mark.parametrize("name", NAMES)
def test_student_version_runs_past_its_homework(name, tmp_path_factory):
    _, out = graded(name, tmp_path_factory)
    # grading runs every cell; any error output, even in cells tagged raises-exception, is checked below
    nb = nbformat.read(str(out / "executed" / "student.ipynb"), as_version=4)
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
    write_course(tmp_path, "09_tiny", TINY)
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


BOOK_WIDTH = 88  # characters of code the site's column shows (docs/_static/twdl.css; checked in test_site.py)


def code_cells(path: Path, published: bool = False) -> list[str]:
    """The sources of the code cells of a jupytext percent notebook (`published`: only those the site shows,
    i.e. not the grader-only hidden-checks cells)."""
    cells = re.split(r"^(?=# %%)", path.read_text(), flags=re.M)
    return [c.split("\n", 1)[1] for c in cells if c.startswith("# %%") and "[markdown]" not in c.split("\n", 1)[0]
            and not (published and "hidden-checks" in c.split("\n", 1)[0])]


@pytest.mark.parametrize("name", NAMES)
def test_code_fits_the_book_width(name):
    long = [line for cell in code_cells(FOLDER / f"{name}.py", published=True) for line in cell.splitlines()
            if len(line) > BOOK_WIDTH]
    assert not long, f"{name}: {len(long)} code lines wider than {BOOK_WIDTH} characters, e.g. {long[0]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_leave_devices_to_setup_and_the_helpers(name):
    code = "\n".join(code_cells(FOLDER / f"{name}.py"))
    assert "twdl.setup(globals()" in code, f"{name}: the setup cell must call twdl.setup(globals())"
    moves = re.findall(r".*(?:\.to\(|\.cuda\(\)|set_num_threads|get_device\().*", code)
    assert not moves, f"{name}: moves models or data by hand (build models with device=dev): {moves}"


@pytest.mark.parametrize("name", NAMES)
def test_try_it_cells_show_their_default_output_in_the_references(name):
    nb = nbformat.read(str(FOLDER / f"{name}.ipynb"), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "interactive_or_default(" in c.source]
    for cell in cells:
        texts = [o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
                 for o in cell.outputs]
        assert not any("<function" in t for t in texts), f"{name}: a 'Try it' cell shows a function repr"
        assert any("showing the default settings" in t for t in texts), (
            f"{name}: a 'Try it' cell did not run its default (was TWDL_BATCH set by the executor?)")
