"""The site's module pages: `twdl execute-references --profile full` executes a module at full settings into
notebooks/full/ with a header cell (profile, parameters, hardware, data, minutes, date, commit), and `twdl book`
refuses a page that is missing, in another profile, or executed from another version of the source."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from twdl_helpers.data.fetch import BANNER_DATASETS, banner_lines
from twdl_tools.notebooks import sync
from twdl_tools.references import execute_references, page_parameters
from twdl_tools.site import missing_inputs
from twdl_tools.site_pages import HEADER_TAG, RUN_METADATA, hardware_line, page_header, site_page_problems

from conftest import ROOT, write_course

HELPERS = Path(__file__).resolve().parents[1] / "twdl_helpers"

TOY = '''# %% [markdown]
# # Module 9 — a toy page
# [![Open In Colab](x)](y)

# %% tags=["colab-setup"]

# %%
import twdl_helpers as twdl
from twdl_helpers.data.fetch import banner
twdl.watch_parameters()

# %% tags=["parameters"]
profile = "smoke"  # @param ["smoke", "full"]
device = "auto"  # @param ["auto", "cpu", "cuda", "mps"]
seed = 0  # @param {type:"integer"}
# Rows to use. [int >= 1]
rows = 10

# %%
P, dev = twdl.setup(globals(), cpu_threads=1)
banner("Covertype", "real", f"{rows} real rows from $TWDL_DATA_MIRROR/covertype ({P.name})")
twdl.record("m9.rows", rows)
'''


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    write_course(tmp_path, "09_toy", TOY)
    sync(tmp_path)
    return tmp_path


def test_a_full_page_gets_its_header_and_the_book_checks_it_against_the_source(toy, mirror):
    assert "notebooks/full/09_toy.ipynb (the full-profile page" in "; ".join(missing_inputs(toy))
    seconds = execute_references(toy, ["09_toy"], timeout=300, profile="full", parameters=["09_toy:rows=3"])
    assert list(seconds) == ["09_toy.ipynb"]
    page = toy / "notebooks" / "full" / "09_toy.ipynb"
    nb = nbformat.read(str(page), as_version=4)
    header = nb.cells[1]
    assert nb.cells[0].source.startswith("# Module 9") and HEADER_TAG in header.metadata["tags"]
    text = header.source
    assert "Profile **full**" in text and "`rows=3`" in text
    assert re.search(r"Hardware: CPU: .+, 1 thread\(s\)", text), text
    assert r"Data: Covertype: 3 real rows from \$TWDL\_DATA\_MIRROR/covertype (full)" in text, text
    assert re.search(r"Time: \d+\.\d minutes \(the machine's load average was \d+\.\d on \d+ CPU cores when it "
                     r"finished\), on \d{4}-\d\d-\d\d \(UTC\)", text) and "Source: commit" in text, text
    run = nb.metadata[RUN_METADATA]
    assert run["profile"] == "full" and run["parameters"] == {"rows": 3} and run["minutes"] > 0
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "profile full, device cpu" in printed
    smoke = nbformat.read(str(toy / "notebooks" / "09_toy.ipynb"), as_version=4)
    assert not any(c.get("outputs") for c in smoke.cells if c.cell_type == "code"), "the smoke reference changed"
    assert site_page_problems(toy) == [] and missing_inputs(toy) == [
        f"{name} (written by the module's helper, included by docs/fixes.md)"
        for name in ("docs/fixes_m1.md", "docs/fixes_m2.md", "docs/fixes_m3.md", "docs/fixes_m4.md")]

    source = toy / "notebooks" / "09_toy.py"
    source.write_text(source.read_text().replace('twdl.record("m9.rows", rows)', 'twdl.record("m9.rows", 2 * rows)'))
    problems = site_page_problems(toy)
    assert len(problems) == 1 and "executed from another version of notebooks/09_toy.py (cell 5, code, differs" in \
        problems[0] and "twdl execute-references --profile full 09_toy" in problems[0]
    source.write_text(TOY.replace("# Rows to use.", "# How many rows to use."))
    assert "(cell 4, code, differs" in site_page_problems(toy)[0]  # the parameters cell
    source.write_text(TOY.replace("a toy page", "a toy page, renamed"))
    assert "(cell 1, markdown, differs" in site_page_problems(toy)[0]

    source.write_text(TOY)
    nb.metadata[RUN_METADATA]["profile"] = "smoke"
    nbformat.write(nb, str(page))
    assert "was not executed in the full profile (found 'smoke'" in site_page_problems(toy)[0]
    page.unlink()
    assert "notebooks/full/09_toy.ipynb (the full-profile page" in site_page_problems(toy)[0]


def test_full_profile_parameters_are_checked_per_notebook(toy):
    paths = [toy / "notebooks" / "09_toy.ipynb"]
    assert page_parameters(paths, ["rows=4"]) == {"09_toy": {"profile": "full", "rows": 4}}
    assert page_parameters(paths, ["rows=4", "09_toy:rows=5"]) == {"09_toy": {"profile": "full", "rows": 5}}
    with pytest.raises(ValueError, match="'04_finetuning_lora' is not among the notebooks run"):
        page_parameters(paths, ["04_finetuning_lora:model_name=bundled"])
    with pytest.raises(ValueError, match="09_toy.ipynb: .*model_name"):
        page_parameters(paths, ["model_name=bundled"])
    with pytest.raises(ValueError, match="--profile sets it"):
        page_parameters(paths, ["profile=smoke"])
    with pytest.raises(ValueError, match="apply to --profile full"):
        execute_references(toy, ["09_toy"], parameters=["rows=2"])
    with pytest.raises(ValueError, match="no module notebook named 09_other"):
        execute_references(toy, ["09_other"], profile="full")


def test_the_header_says_what_ran_and_shows_text_literally():
    run = {"profile": "full", "parameters": {"model_name": "bundled"}, "hardware": "GPU: cuda (NVIDIA H100)",
           "data": ["MNIST: 60,000 train / 10,000 test digits from $TWDL_DATA_MIRROR/mnist"], "minutes": 3.25,
           "date": "2026-12-08", "commit": "0123456789ab"}
    text = page_header(run)
    assert "`model_name='bundled'`" in text and "Hardware: GPU: cuda (NVIDIA H100)" in text
    assert r"MNIST: 60,000 train / 10,000 test digits from \$TWDL\_DATA\_MIRROR/mnist" in text
    assert "Time: 3.2 minutes, on 2026-12-08 (UTC)" in text and "commit 0123456789ab" in text
    assert "none (the notebook's defaults)" in page_header({**run, "parameters": {}})


def test_hardware_comes_from_the_setup_line():
    gpu = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="profile full, device cuda (NVIDIA H100 80GB HBM3, native bf16: yes), seed 0\n")])])
    assert hardware_line(gpu) == "GPU: cuda (NVIDIA H100 80GB HBM3, native bf16: yes)"
    cpu = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="profile full, device cpu, 2 CPU thread(s), seed 1\n")])])
    assert re.fullmatch(r"CPU: .+, 2 thread\(s\)", hardware_line(cpu))


def test_banner_lines_are_found_and_every_loader_banner_is_known():
    printed = ("x = 1\n*** MNIST: using the bundled sample — 5,000 digits ***\nCovertype: 10 rows\nCovertype: 10 rows\n"
               "q1: 4 of 4 checks pass\n")
    assert banner_lines(printed) == ["MNIST: using the bundled sample — 5,000 digits", "Covertype: 10 rows"]
    calls = [m for path in HELPERS.rglob("*.py") for m in re.findall(r"\bbanner\(\s*\"([^\"]+)\"", path.read_text())]
    assert calls, "no banner(...) call found in twdl_helpers"
    unknown = sorted(set(calls) - set(BANNER_DATASETS))
    assert not unknown, f"banner() datasets missing from fetch.BANNER_DATASETS (the site header quotes them): {unknown}"


@pytest.mark.parametrize("stem", ["01_feedforward", "02_optimization", "03_regularization", "04_finetuning_lora"])
def test_solution_cells_are_the_cells_sync_wrote(stem):
    """The page check compares a page with solution_cells: they must be the solution notebook's cells as `twdl sync`
    builds them (question headings included), or every page would look stale."""
    import nbformat

    from twdl_tools.notebooks import solution_cells

    written = nbformat.read(str(ROOT / "notebooks" / f"{stem}.ipynb"), as_version=4)
    assert solution_cells(ROOT, stem) == [(c.cell_type, c.source) for c in written.cells]
