"""`twdl grade`: bad submissions never stop the others; limits, reruns, the report and the Dask path."""
import dataclasses
import json
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from twdl_tools.cli import main as twdl
from twdl_tools.execute import ResourceLimits
from twdl_tools.grading import grade_all, grades_table, plan_tasks
from twdl_tools.grading.plan import find_submissions, safe_names, student_name
from twdl_tools.grading.report import choose_histogram_metric, render_report
from twdl_tools.sandbox import sandbox_support

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def submission(path: Path, *cells: str, params: str = "x = 1") -> Path:
    """A small student notebook: a parameters cell then `cells` (no torch import unless a cell asks for it)."""
    body = [new_code_cell(params, metadata={"tags": ["parameters"]})] + [new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=body, metadata={"kernelspec": KERNELSPEC}), str(path))
    return path


def test_student_names_and_distinct_output_names(tmp_path):
    assert student_name("alice/01_feedforward.ipynb") == "alice"
    assert student_name("bob_01_feedforward.ipynb", "01_feedforward") == "bob"
    assert student_name("Feedforward-carol.ipynb", "01_feedforward") == "carol"
    assert student_name("dave.ipynb") == "dave"
    assert safe_names(["hw.ipynb", "hw.ipynb", "a b/hw.ipynb", "a_b/hw.ipynb", "HW.ipynb"]) == [
        "hw", "hw-2", "a_b__hw", "a_b__hw-2", "HW-3"]
    for folder in ("one", "two"):
        submission(tmp_path / folder / "hw.ipynb")
    found = find_submissions([tmp_path / "one" / "hw.ipynb", tmp_path / "two" / "hw.ipynb"])
    tasks = plan_tasks(found, tmp_path / "out", {})
    assert [t.file for t in tasks] == ["hw.ipynb", "hw.ipynb"]
    assert len({t.executed for t in tasks}) == 2 and len({t.workdir for t in tasks}) == 2
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_submissions([tmp_path / "missing.ipynb"])


def test_report_is_escaped_sortable_and_summarised():
    table = pd.DataFrame({
        "file": ["a.ipynb", "b.ipynb", "c.ipynb"], "student": ["<script>alert(1)</script>", "b", "c"],
        "submission": ["a", "b", "c"], "status": ["ok", "error", "ok"], "failing_cell": [None, 2, None],
        "error": ["", "x" * 5000, ""], "runtime_s": [1.0, 2.0, 3.0], "completed_modules": ["m1", "", "m1"],
        "m1.completed": [True, None, False], "m1.test_accuracy": [80.0, None, 90.0], "m2.loss": [None, 0.5, 0.7],
    })
    assert choose_histogram_metric(table) == "m1.test_accuracy"
    page = render_report(table, "m1.test_accuracy", title="Week <2>")
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Week &lt;2&gt;" in page and "x" * 201 not in page and "4,800 more characters" in page
    assert 'class="sortable"' in page and "addEventListener" in page and "<svg" in page
    assert "m1.test_accuracy over 2 submission(s)" in page
    assert "<td data-value=\"85\">85</td>" in page  # per-module mean of m1.test_accuracy
    assert render_report(table, "m1.test_accuracy", title="Week <2>") == page  # byte-for-byte reproducible


def test_bad_submissions_never_stop_the_others(tmp_path):
    subs = tmp_path / "subs"
    submission(subs / "good.ipynb", "import os\nopen('cwd.txt', 'w').write(os.getcwd())",
               "import twdl_helpers as twdl\ntwdl.record('m1.completed', True)\ntwdl.record('m1.score', 2.5 * x)\n"
               "twdl.record('m1.curve', [1, 2])")
    submission(subs / "raising.ipynb", "print('partial output')", "y = 1", "{}['missing']", "print('never')")
    submission(subs / "dying.ipynb", "import os\nos._exit(3)")
    submission(subs / "looping.ipynb", "import subprocess\nchild = subprocess.Popen(['sleep', '600'])\n"
               "open('child.pid', 'w').write(str(child.pid))", "while True: pass")
    (subs / "invalid.ipynb").write_text('{"cells": [', encoding="utf-8")
    submission(subs / "huge.ipynb", "print('y' * 3_000_000)")
    submission(subs / "greedy.ipynb", "block = bytearray(3_000_000_000)")
    submission(subs / "writer.ipynb", "open('big.bin', 'wb').write(b'0' * 80_000_000)")
    submission(subs / "alice" / "hw.ipynb", "z = 1")
    submission(subs / "bob" / "hw.ipynb", "z = 2")
    out = tmp_path / "out"
    tasks = plan_tasks(find_submissions([subs]), out, {"x": 2}, timeout=240, limits=ResourceLimits(file_mb=64),
                       max_output_chars=10_000)
    short = {"looping": dict(timeout=8), "greedy": dict(limits=ResourceLimits(memory_mb=2000, file_mb=64))}
    tasks = [dataclasses.replace(t, **short.get(t.submission, {})) for t in tasks]
    rows = grade_all(tasks, jobs=2, progress=False)
    table = grades_table(rows).set_index("submission")

    assert list(table["file"]) == sorted(table["file"])
    status = table["status"].to_dict()
    assert status == {"alice__hw": "ok", "bob__hw": "ok", "dying": "error", "good": "ok", "greedy": "error",
                      "huge": "ok", "invalid": "invalid", "looping": "timeout", "raising": "error", "writer": "error"}
    assert table.loc["raising", "failing_cell"] == 3 and table.loc["raising", "error"] == "KeyError: 'missing'"
    assert table.loc["dying", "failing_cell"] == 1 and "kernel died" in table.loc["dying", "error"]
    assert table.loc["looping", "failing_cell"] == 2 and "timed out after 8 s" in table.loc["looping", "error"]
    assert table.loc["greedy", "error"].startswith("MemoryError")
    assert table.loc["writer", "error"] == "OSError: [Errno 27] File too large"  # RLIMIT_FSIZE (64 MB)
    assert table.loc["invalid", "error"].startswith("not a valid notebook (NotJSONError")
    assert table.loc["good", "m1.score"] == 5.0 and table.loc["good", "m1.completed"] == True  # noqa: E712
    assert table.loc["good", "completed_modules"] == "m1" and table.loc["good", "m1.curve"] == "[1, 2]"
    assert table.loc["alice__hw", "student"] == "alice" and table.loc["bob__hw", "student"] == "bob"

    executed = out / "executed"
    assert (out / "work" / "good" / "cwd.txt").read_text() == str(out / "work" / "good")  # its own directory
    raising = nbformat.read(str(executed / "raising.ipynb"), as_version=4)
    assert any("partial output" in o.get("text", "") for c in raising.cells for o in c.get("outputs", []))
    huge = (executed / "huge.ipynb").read_text()
    assert len(huge) < 50_000 and "characters cut by twdl" in huge
    looping = out / "work" / "looping"
    left = [p for p in psutil.process_iter(["cwd"]) if p.info["cwd"] and Path(p.info["cwd"]) == looping]
    assert not left  # the notebook's `sleep 600` was killed with it (sandboxed or not)
    if not next(r for r in rows if r["submission"] == "looping")["sandboxed"]:  # else the pid is the sandbox's own
        child = int((looping / "child.pid").read_text())
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert {p.stem for p in executed.glob("*.ipynb")} == set(status) - {"invalid"}


def _csv_without_runtimes(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).drop(columns="runtime_s")


def test_grade_cli_reruns_skip_force_and_parameter_checks(tmp_path, capsys):
    subs = tmp_path / "subs"
    submission(subs / "ann.ipynb", "from IPython.display import display\n"
               "display({'text/plain': 's', 'application/vnd.twdl.record+json': {'name': 'm2.score', 'value': x}},"
               " raw=True)")
    submission(subs / "ben.ipynb", "y = 1", params="y = 0")  # does not declare x
    out = tmp_path / "out"
    assert twdl(["grade", str(subs), "-p", "nosuch=1", "--out", str(out)]) == 2
    assert "no submission declares parameter(s) ['nosuch']" in capsys.readouterr().err and not out.exists()

    args = ["grade", str(subs), "-p", "x=3", "--out", str(out), "--timeout", "240", "--jobs", "2"]
    assert twdl(args) == 0
    first = _csv_without_runtimes(out / "grades.csv").set_index("file")
    assert first.loc["ann.ipynb", "status"] == "ok" and first.loc["ann.ipynb", "m2.score"] == 3
    assert first.loc["ben.ipynb", "status"] == "invalid" and "unknown parameter(s) ['x']" in first.loc["ben.ipynb", "error"]
    report = (out / "report.html").read_text()
    assert "Histogram of m2.score" in report and "ann.ipynb" in report
    csv_before = (out / "grades.csv").read_bytes()
    capsys.readouterr()

    start = time.monotonic()
    assert twdl(args) == 0
    assert "2 submission(s) already graded" in capsys.readouterr().err and time.monotonic() - start < 10
    assert (out / "grades.csv").read_bytes() == csv_before

    assert twdl(args + ["--force"]) == 0
    assert "already graded" not in capsys.readouterr().err
    pd.testing.assert_frame_equal(_csv_without_runtimes(out / "grades.csv"), first.reset_index())

    assert twdl(args[:3] + ["x=4"] + args[4:]) == 0  # other parameters: graded again
    assert pd.read_csv(out / "grades.csv").set_index("file").loc["ann.ipynb", "m2.score"] == 4


def test_dask_scheduler_runs_the_same_tasks(tmp_path):
    from distributed import LocalCluster

    subs = tmp_path / "subs"
    submission(subs / "one.ipynb", "print(x)")
    submission(subs / "two.ipynb", "1 / 0")
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        code = twdl(["grade", str(subs), "--out", str(out), "--scheduler", cluster.scheduler_address,
                     "--timeout", "240"])
    assert code == 0
    grades = pd.read_csv(out / "grades.csv")
    assert list(grades["status"]) == ["ok", "error"]
    assert grades.loc[1, "error"] == "ZeroDivisionError: division by zero" and grades.loc[1, "failing_cell"] == 1
    stored = json.loads((out / "executed" / "one.grade.json").read_text())["row"]
    assert stored["status"] == "ok" and stored["sandboxed"] is sandbox_support().available  # the worker's own check


SEARCH_FOR_CHECKS = """
import os, json
found = []
for base in (os.getcwd(), os.path.dirname(os.path.dirname(os.getcwd())), os.path.expanduser('~/.ipython')):
    for folder, _, files in os.walk(base):
        for name in files:
            try:
                if 'SECRET-CHECK-' + 'MARKER' in open(os.path.join(folder, name), errors='ignore').read():
                    found.append(name)
            except OSError:
                pass
print('found:', found)
"""


def test_after_cells_come_in_on_stdin_run_last_and_stay_out_of_every_file(tmp_path):
    """The executor's contract with the worker: cells appended in memory, outputs returned, no file holds them."""
    from twdl_tools.execute import run_notebook

    path = submission(tmp_path / "subs" / "hw.ipynb", "1 / 0", "y = 2 * x", SEARCH_FOR_CHECKS,
                      "import os; os.write(1, b'{\"status\": \"ok\", \"appended\": [[\"forged\"]]}')")
    work = tmp_path / "out" / "work" / "hw"
    work.mkdir(parents=True)
    after = "# SECRET-CHECK-MARKER\nprint('after', y)"
    result = run_notebook(path, tmp_path / "out" / "executed" / "hw.ipynb", {"x": 21}, cwd=work, timeout=240,
                          scratch=tmp_path / "out" / ".twdl", allow_errors=True, after_cells=[after])
    assert result.status == "error" and result.cell_index == 1  # the first failure is reported ...
    executed = nbformat.read(str(tmp_path / "out" / "executed" / "hw.ipynb"), as_version=4)
    texts = ["".join(o.get("text", "")) for c in executed.cells for o in c.get("outputs", [])]
    assert "found: []\n" in texts  # ... every later cell ran, and none found the appended source on disk
    assert result.appended == [[{"output_type": "stream", "name": "stdout", "text": "after 42\n"}]]
    assert "SECRET-CHECK-MARKER" not in (tmp_path / "out" / "executed" / "hw.ipynb").read_text()
