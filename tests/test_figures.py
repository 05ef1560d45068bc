"""Published figures: rendered from bench/results and reference records, and checked against them."""
import json

import pytest

from conftest import ROOT
from twdl_tools.bench import benchmarks_page
from twdl_tools.figures import FigureSources, check_files, render_files, render_text, unsourced_figures


def _results(tmp_path, rows):
    folder = tmp_path / "bench" / "results"
    folder.mkdir(parents=True)
    (folder / "demo.json").write_text(json.dumps({"date": "2026-01-01", "quick": False, "rows": rows}))
    return folder


def test_markers_are_rewritten_from_the_keyed_row_and_column(tmp_path):
    folder = _results(tmp_path, [{"key": "epoch", "original": 1000.0, "helpers": 6543.21, "ratio": 6.54321}])
    sources = FigureSources(folder, tmp_path)
    text = "speed <!--fig demo.epoch.helpers ,.0f-->old<!--/fig--> rows/s, <!--fig demo.epoch.ratio .1f-->9<!--/fig-->x"
    assert render_text(text, sources) == ("speed <!--fig demo.epoch.helpers ,.0f-->6,543<!--/fig--> rows/s, "
                                          "<!--fig demo.epoch.ratio .1f-->6.5<!--/fig-->x")


def test_a_yes_no_source_is_shown_as_one_of_two_words(tmp_path):
    folder = _results(tmp_path, [{"key": "epoch", "met": False}, {"key": "mnist", "met": True}])
    text = "<!--fig demo.epoch.met met|missed-->?<!--/fig--> and <!--fig demo.mnist.met met|missed-->?<!--/fig-->"
    assert render_text(text, FigureSources(folder, tmp_path)) == (
        "<!--fig demo.epoch.met met|missed-->missed<!--/fig--> and <!--fig demo.mnist.met met|missed-->met<!--/fig-->")


def test_check_reports_stale_values_missing_sources_and_figures_without_a_source(tmp_path):
    folder = _results(tmp_path, [{"key": "epoch", "ratio": 6.54321, "original": None}])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fixes_x.md").write_text(
        "<!--quoted: 73.15 %-->\n"
        "a <!--fig demo.epoch.ratio .1f-->7.0<!--/fig-->x b <!--fig demo.nothing.ratio-->1<!--/fig-->\n"
        "c <!--fig demo.epoch.original-->1<!--/fig--> typed 12.5 % and 3x; quoted 73.15 %; `code 9.9 %`\n")
    problems = check_files(tmp_path, folder)
    assert any("shows '7.0' but its source gives '6.5'" in p for p in problems)
    assert any("no row with key 'nothing'" in p for p in problems)
    assert any("NaN" in p for p in problems)
    unsourced = [p for p in problems if "has no source marker" in p]
    assert len(unsourced) == 2 and "'12.5 %'" in unsourced[0] and "'3x'" in unsourced[1]
    changed, still = render_files(tmp_path, folder)
    assert changed == ["docs/fixes_x.md"] and len(still) == 2  # the two bad markers are kept and reported
    assert "6.5<!--/fig-->x" in (tmp_path / "docs" / "fixes_x.md").read_text()


def test_unsourced_figures_ignore_markers_code_links_and_settings_that_are_integers():
    text = "batch 265, 50 epochs, [link](https://x.org/v1.2) <!--fig a.b.c-->0.5<!--/fig--> ```\n1.5 %\n``` 2.5 s"
    assert unsourced_figures(text) == ["2.5 s"]


def test_published_pages_show_exactly_what_their_sources_hold():
    problems = check_files(ROOT)
    assert not problems, "\n".join(problems[:20]) + "\nrun `twdl bench --render` (or fix the page)"


def test_benchmarks_page_is_generated_from_the_saved_results():
    expected = benchmarks_page(ROOT / "bench" / "results")
    assert (ROOT / "docs" / "benchmarks.md").read_text() == expected, "run `twdl bench --render`"


@pytest.mark.parametrize("name", ["covertype", "covertype_speed", "mnist", "animal_faces", "lora", "lm_defects"])
def test_every_benchmark_has_a_full_size_result_with_keyed_rows(name):
    result = json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())
    assert result["quick"] is False
    assert all(isinstance(row, dict) and row.get("key") for row in result["rows"])


def test_twdl_bench_saves_keyed_rows_with_small_values_intact(tmp_path, monkeypatch):
    import argparse

    from twdl_tools.bench import bench_main

    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "demo.py").write_text(
        "import pandas as pd\n"
        "def run(quick=False):\n"
        "    return pd.DataFrame([{'key': 'lr', 'comparison': 'c', 'measure': 'm', 'unit': 'lr', 'original': 1e-11,\n"
        "                          'helpers': 0.5, 'ratio': float('nan'), 'target': '', 'met': None, 'runs': 1}])\n")
    monkeypatch.setattr("twdl_tools.bench.batch_environment", lambda *a, **k: {})  # leave os.environ alone
    monkeypatch.setattr("twdl_tools.bench.render_files", lambda *a, **k: ([], []))  # not the real docs
    args = argparse.Namespace(names=["demo"], quick=False, bench_dir=str(folder), out=str(tmp_path / "b.md"),
                              render=False)
    assert bench_main(args) == 0
    saved = json.loads((folder / "results" / "demo.json").read_text())
    assert saved["rows"][0]["key"] == "lr" and saved["rows"][0]["original"] == 1e-11
    assert len(saved["load"]) == 2 and saved["machine"]["cores"]
    assert "## demo" in (tmp_path / "b.md").read_text()


def test_benchmark_tables_leave_cells_without_a_value_empty():
    from twdl_tools.bench import render

    row = {"comparison": "a formula", "measure": "loss floor", "unit": "loss", "original": 1.165,
           "helpers": float("nan"), "ratio": float("nan"), "target": "", "met": None, "runs": "exact"}
    page = render({"demo": {"date": "2026-01-01", "quick": False, "rows": [row]}})
    line = next(line for line in page.splitlines() if line.startswith("| a formula"))
    assert "nan" not in line.lower() and [cell.strip() for cell in line.strip("|").split("|")][4:6] == ["", ""]
