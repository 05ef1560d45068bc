"""`twdl sync` (solution/student notebooks, Colab badge and setup cell) and the record tolerance table."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

import twdl_helpers
from twdl_tools import cli
from twdl_helpers.records import records_in_outputs
from twdl_tools.nbval_tolerance import compare_records, compare_values, tolerance_for
from twdl_tools.notebooks import colab_setup_source, student_source, sync
from conftest import write_course

SOURCE = '''# %% [markdown]
# # Module 9 — A test module
# [![Open In Colab](https://example.com/old.svg)](https://example.com/old)
# What you will learn.

# %% tags=["colab-setup"]
print("stale setup")

# %% tags=["parameters"]
profile = "smoke"  # @param ["smoke", "full"]

# %%
x = 1 + 1
x

# %% tags=["homework"]
def fit():
    # Hint: return the answer as an int.
    ### BEGIN SOLUTION
    answer = 42
    return answer
    ### END SOLUTION

# %%
print("done")
'''


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_course(tmp_path, "09_test", SOURCE)
    return tmp_path


def _code(path: Path) -> list:
    return [c for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code"]


def test_student_source_replaces_block_with_hint_and_keeps_indentation():
    out = student_source("def f():\n    # Hint: add one.\n    ### BEGIN SOLUTION\n    return 2\n    ### END SOLUTION\nz = 3")
    assert out == 'def f():\n    # Hint: add one.\n    raise NotImplementedError("Hint: add one.")\nz = 3'


def test_a_hint_may_continue_on_the_comment_lines_below_it():
    source = "# Hint: call twdl.train(model, data,\n#   epochs=3) and record it.\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    assert student_source(source) == ("# Hint: call twdl.train(model, data,\n#   epochs=3) and record it.\n"
                                      'raise NotImplementedError("Hint: call twdl.train(model, data, epochs=3) and record it.")')


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "no '# Hint: ...' line"),
    ("# Hint: h\n### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a '### BEGIN SOLUTION'"),
])
def test_student_source_rejects_malformed_blocks(source, message):
    with pytest.raises(ValueError, match=message):
        student_source(source, "nb cell 3")


def test_sync_writes_badge_setup_solution_and_student(repo):
    report = sync(repo)
    folder = repo / "notebooks"
    text = (folder / "09_test.py").read_text()
    assert colab_setup_source() in text and "stale setup" not in text
    assert twdl_helpers.REPOSITORY_URL in colab_setup_source()
    repo_path = twdl_helpers.REPOSITORY_URL.removeprefix("https://github.com/")
    assert f"colab.research.google.com/github/{repo_path}/blob/main/notebooks/09_test.ipynb" in text
    solution, student = _code(folder / "09_test.ipynb"), _code(folder / "student" / "09_test.ipynb")
    assert "answer = 42" in solution[3].source and "answer = 42" not in student[3].source
    assert 'raise NotImplementedError("Hint: return the answer as an int.")' in student[3].source
    assert "raises-exception" in student[3].metadata["tags"]
    student_md = nbformat.read(str(folder / "student" / "09_test.ipynb"), as_version=4).cells[0].source
    assert "blob/main/notebooks/student/09_test.ipynb" in student_md
    assert len(report.changed) == 3 and sync(repo, check=True).clean


def test_check_names_the_drifted_file_and_the_fix_command(repo):
    sync(repo)
    source = repo / "notebooks" / "09_test.py"
    source.write_text(source.read_text().replace("x = 1 + 1", "x = 1 + 2"))
    report = sync(repo, check=True)
    assert not report.clean
    assert "notebooks/09_test.ipynb" in report.describe(repo) and "make sync" in report.describe(repo)
    assert cli.main(["sync", "--check", "--root", str(repo)]) == 1
    assert "x = 1 + 1" in _code(repo / "notebooks" / "09_test.ipynb")[2].source  # check mode wrote nothing


def _fake_execution(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[2].execution_count = 3
    code[2].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=3)]
    nbformat.write(nb, str(path))


def test_outputs_survive_markdown_edits_but_not_code_edits(repo):
    sync(repo)
    solution, source = repo / "notebooks" / "09_test.ipynb", repo / "notebooks" / "09_test.py"
    _fake_execution(solution)
    source.write_text(source.read_text().replace("What you will learn.", "What you will learn today."))
    report = sync(repo)
    assert _code(solution)[2].outputs[0]["data"]["text/plain"] == "2" and not report.dropped_outputs
    source.write_text(source.read_text().replace("x = 1 + 1", "x = 1 + 3"))
    report = sync(repo)
    assert report.dropped_outputs == [solution]
    assert all(not c.outputs and c.execution_count is None for c in _code(solution))


def test_notebook_without_source_is_an_orphan(repo):
    sync(repo)
    orphan = repo / "notebooks" / "08_gone.ipynb"
    orphan.write_text((repo / "notebooks" / "09_test.ipynb").read_text())
    assert sync(repo, check=True).orphans == [orphan]
    sync(repo)
    assert not orphan.exists()


def test_tolerance_table_matches_metric_names():
    assert tolerance_for("m1.baseline.test_accuracy").absolute == 2.0
    assert tolerance_for("m4.lora.perplexity_after").relative == 0.05
    assert tolerance_for("m2.batch_size.8.seconds").skip


@pytest.mark.parametrize("name, reference, fresh, ok", [
    ("m1.test_accuracy", 75.0, 76.9, True),
    ("m1.test_accuracy", 75.0, 77.5, False),
    ("m4.perplexity", 40.0, 41.9, True),
    ("m4.perplexity", 40.0, 42.5, False),
    ("m2.train_seconds", 3.0, 300.0, True),
    ("m3.sparsity_per_layer", [50.0, 50.0], [50.2, 49.9], True),
    ("m3.sparsity_per_layer", [50.0, 50.0], [50.0], False),
    ("m1.completed", True, False, False),
    ("m1.model_name", "wide_deep", "wide_deep", True),
])
def test_compare_values_respects_tolerances(name, reference, fresh, ok):
    assert (compare_values(name, reference, fresh) == []) is ok


def test_compare_records_reports_missing_and_extra_names():
    problems = compare_records({"m1.a_accuracy": 70.0, "m1.b": 1}, {"m1.a_accuracy": 70.5, "m1.c": 2})
    assert any("m1.b: recorded in the reference but not" in p for p in problems)
    assert any("m1.c: recorded in the fresh run but not" in p for p in problems)
    assert len(problems) == 2


def test_records_in_outputs_reads_dict_and_string_bundles():
    outputs = [{"output_type": "display_data", "data": {"application/vnd.twdl.record+json": {"name": "a", "value": 1}}},
               {"output_type": "display_data", "data": {"application/vnd.twdl.record+json": json.dumps({"name": "b", "value": 2})}},
               {"output_type": "stream", "text": "hello"}]
    assert records_in_outputs(outputs) == {"a": 1, "b": 2}


def test_generated_files_are_readable_by_others(repo):
    sync(repo)
    assert (repo / "notebooks" / "09_test.ipynb").stat().st_mode & 0o044 == 0o044
